"""Optimizers on complex parameters of every layout against torch (issue 17, review rv2 C3):
PyTorch steps a complex parameter as ``view_as_real`` pairs; a 0-d or non-contiguous one took
ember's complex arithmetic instead (Adam's squared gradient ``g * g`` mixes the parts), and
Rprop's imaginary step size started at 0.  Eager steps and ``ember.compile(opt.step)``, both
complex dtypes, Adam/AdamW's flags; ``fused=True`` on a complex parameter raises torch's
error."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


@pytest.fixture(autouse=True)
def _fresh():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


BASE = np.arange(6).reshape(2, 3) * (1 + 0.5j) - (1 - 2j)
SHAPES = {
    "0-d": lambda L, dt: L.tensor(1.0 + 0.5j, dtype=dt),
    "1-element": lambda L, dt: L.tensor([1.0 + 0.5j], dtype=dt),
    "2-d": lambda L, dt: L.tensor(BASE, dtype=dt),
    "transposed": lambda L, dt: L.tensor(BASE, dtype=dt).t(),  # not contiguous
}
OPTIMIZERS = {
    "Adam": {},
    "Adam amsgrad maximize wd": {"amsgrad": True, "maximize": True, "weight_decay": 0.1},
    "Adam foreach": {"foreach": True},
    "Adam foreach=False": {"foreach": False},
    "AdamW": {},
    "AdamW amsgrad": {"amsgrad": True},
    "AdamW foreach": {"foreach": True},
    "Adamax": {},
    "NAdam": {},
    "RAdam": {},
    "RMSprop": {"momentum": 0.5, "centered": True},
    "Adagrad": {},
    "Adadelta": {},
    "Rprop": {},
    "SGD": {"momentum": 0.9},
}


def _run(L, opt_name, shape, dtype, compiled=False, steps=4):
    dt = getattr(L, dtype)
    p = L.nn.Parameter(SHAPES[shape](L, dt))
    opt = getattr(L.optim, opt_name.split()[0])([p], lr=0.1, **OPTIMIZERS[opt_name])
    step = ember.compile(opt.step) if compiled else opt.step
    for i in range(steps):
        # a gradient whose parts differ in sign and size, changing with the step
        p.grad = L.ones_like(p) * complex(0.3 * (i + 1), -0.7 + 0.2 * i)
        step()
    state = {k: v.detach().numpy().copy() for k, v in opt.state[p].items()
             if isinstance(v, L.Tensor) and v.dim() > 0 or isinstance(v, L.Tensor)
             and v.is_complex()}
    return p.detach().numpy().copy(), state


def _compare(got, want, dtype):
    rtol = 1e-5 if dtype == "complex64" else 1e-12
    np.testing.assert_allclose(got[0], want[0], rtol=rtol, atol=rtol)
    assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
    assert sorted(got[1]) == sorted(want[1])
    for k in want[1]:
        assert got[1][k].shape == want[1][k].shape and got[1][k].dtype == want[1][k].dtype, k
        np.testing.assert_allclose(got[1][k], want[1][k], rtol=rtol, atol=rtol, err_msg=k)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_complex_parameter_step(opt_name, shape, dtype):
    _compare(_run(ember, opt_name, shape, dtype), _run(torch, opt_name, shape, dtype), dtype)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("shape", ["0-d", "transposed"])
@pytest.mark.parametrize("opt_name", ["Adam", "AdamW amsgrad", "Rprop"])
def test_complex_parameter_compiled_step(opt_name, shape, dtype):
    _compare(_run(ember, opt_name, shape, dtype, compiled=True),
             _run(torch, opt_name, shape, dtype), dtype)


def test_complex_0d_adam_first_step_state():
    # review rv2 e08: exp_avg_sq is (1-β₂)·(re², im²) as pairs, not (1-β₂)·g²
    res = []
    for L in (ember, torch):
        p = L.nn.Parameter(L.tensor(1.0 + 0.5j, dtype=L.complex64))
        opt = L.optim.Adam([p], lr=0.1)
        p.grad = L.tensor(0.3 - 0.7j, dtype=L.complex64)
        opt.step()
        res.append((p.item(), opt.state[p]["exp_avg_sq"].item()))
    np.testing.assert_allclose(res[0], res[1], rtol=1e-6)


@pytest.mark.parametrize("shape", ["0-d", "2-d"])
@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_fused_rejects_complex_parameters(opt_name, shape):
    msgs = []
    for L in (ember, torch):
        p = L.nn.Parameter(SHAPES[shape](L, L.complex64))
        opt = getattr(L.optim, opt_name)([p], lr=0.1, fused=True)  # constructs, as torch
        p.grad = L.ones_like(p)
        before = p.detach().clone()
        with pytest.raises(RuntimeError) as e:
            opt.step()
        assert bool((p.detach() == before).all())  # nothing stepped
        assert not opt.state.get(p)
        msgs.append(str(e.value).replace("torch.", "ember."))
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_fused_float_parameters_still_step(opt_name):
    got = []
    for L in (ember, torch):
        p = L.nn.Parameter(L.tensor([1.0, -2.0], dtype=L.float64))
        opt = getattr(L.optim, opt_name)([p], lr=0.1, fused=True)
        p.grad = L.tensor([0.5, -0.25], dtype=L.float64)
        opt.step()
        got.append(p.detach().numpy())
    np.testing.assert_allclose(got[0], got[1], rtol=1e-12)
