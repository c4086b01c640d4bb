"""SGD's blocked update (NOTE [ Blocked SGD ] in ember/optim/sgd.py): a large group updated in
blocks over 1-3 threads gives the per-parameter loop's bits and torch's numbers, and the
groups it cannot take (first steps, maximize, tensor lr, non-contiguous or mixed dtypes) go
through the loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads
from ember.optim import sgd

# shapes straddling block ends: 300,000 elements, odd sizes, a 0-d and an empty parameter
SHAPES = [(600, 500), (3,), (), (7001,), (2, 3, 4), (0, 5)]
CONFIGS = [
    dict(lr=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True),   # the loop
]
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}


@pytest.fixture
def threads():
    """Set the split's thread count (its size threshold as it is); default afterwards."""
    old = _threads._runtime.state.num_threads
    _threads._runtime.state.num_threads = None
    yield _threads.set_count
    _threads.set_count(None)
    _threads._runtime.state.num_threads = old


def _arrays(dtype, steps=3, shapes=SHAPES):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return params, grads


def _run(mod, params, grads, kw):
    ps = [mod.nn.Parameter(mod.tensor(p.copy())) for p in params]
    opt = mod.optim.SGD(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = mod.tensor(g.copy())
        opt.step()
    return [p.detach().numpy().copy() for p in ps], opt


def _count_blocked(monkeypatch):
    """Count the steps that took the blocked path."""
    calls = []
    real = sgd._blocked_work

    def spy(opt, group):
        work = real(opt, group)
        calls.append(work is not None)
        return work
    monkeypatch.setattr(sgd, "_blocked_work", spy)
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in
                                                                 kw.items()))
def test_blocked_equals_loop_and_torch(kw, dtype, threads, monkeypatch):
    params, grads = _arrays(dtype)
    monkeypatch.setattr(sgd, "_blocked_work", lambda opt, group: None)
    loop, _ = _run(ember, params, grads, kw)
    monkeypatch.undo()
    ref, _ = _run(torch, params, grads, kw)
    for a, b in zip(loop, ref):
        np.testing.assert_allclose(a, b, **TOL[dtype])
    calls = _count_blocked(monkeypatch)
    for k in (1, 2, 3):
        for block in (sgd._BLOCK, 1000):  # 1000: many blocks a parameter, cut mid-row
            monkeypatch.setattr(sgd, "_BLOCK", block)
            threads(k)
            got, _ = _run(ember, params, grads, kw)
            for a, b in zip(got, loop):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert np.array_equal(a, b), (k, block)
    # the first step makes the momentum buffers in the loop; the later ones are blocked
    # (with momentum), every one without; maximize always runs the loop
    expect = [] if kw.get("maximize") else ([True] * 3 if not kw.get("momentum") else
                                            [False, True, True])
    assert calls == expect * 6 if expect else not any(calls)


def test_blocked_bumps_versions_and_keeps_state(threads):
    params, grads = _arrays("float32", steps=2)
    threads(2)
    got, opt = _run(ember, params, grads, dict(lr=0.1, momentum=0.9))
    ps = opt.param_groups[0]["params"]
    assert [p._version for p in ps] == [2] * len(ps)
    _, topt = _run(torch, params, grads, dict(lr=0.1, momentum=0.9))
    for p, tp in zip(ps, topt.param_groups[0]["params"]):
        b = opt.state[p]["momentum_buffer"].numpy()
        tb = topt.state[tp]["momentum_buffer"].numpy()
        np.testing.assert_allclose(b, tb, **TOL["float32"])


def test_parameters_without_grad_are_skipped(threads):
    params, grads = _arrays("float64", steps=2)
    for gs in grads:
        gs[1] = None
    ps = [ember.nn.Parameter(ember.tensor(p.copy())) for p in params]
    opt = ember.optim.SGD(ps, lr=0.1, momentum=0.9)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = None if g is None else ember.tensor(g.copy())
        opt.step()
    assert np.array_equal(ps[1].detach().numpy(), params[1])
    assert ps[1] not in opt.state
    assert ps[1]._version == 0


@pytest.mark.parametrize("case,blocked", [("tensor_lr", False), ("non_contiguous", False),
                                          ("small", False), ("mixed_dtypes", True)])
def test_groups_the_blocked_path_refuses(case, blocked, monkeypatch):
    """Refused groups run the loop; parameters of several dtypes in one group do not need it
    (each block is one parameter's)."""
    shapes = [(600, 500), (3, 4)] if case != "small" else [(30, 20), (3, 4)]
    params, grads = _arrays("float32", shapes=shapes)
    kw = dict(lr=0.05, momentum=0.9)
    if case == "mixed_dtypes":
        params[1], grads = params[1].astype("float64"), [[a, b.astype("float64")]
                                                        for a, b in grads]
    if case == "non_contiguous":  # a gradient laid out transposed
        grads = [[np.asfortranarray(a), b] for a, b in grads]
    calls = _count_blocked(monkeypatch)
    ps = [ember.nn.Parameter(ember.tensor(p.copy())) for p in params]
    tps = [torch.nn.Parameter(torch.tensor(p.copy())) for p in params]
    lr = (ember.tensor(0.05), torch.tensor(0.05)) if case == "tensor_lr" else (0.05, 0.05)
    opt = ember.optim.SGD(ps, **{**kw, "lr": lr[0]})
    topt = torch.optim.SGD(tps, **{**kw, "lr": lr[1]})
    for gs in grads:
        for p, tp, g in zip(ps, tps, gs):
            p.grad = ember.from_numpy(g.copy(order="K"))
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    assert calls == ([False, True, True] if blocked else [False] * 3)
    for p, tp in zip(ps, tps):
        assert p.dtype == {torch.float32: ember.float32, torch.float64: ember.float64}[tp.dtype]
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), **TOL["float32"])


def test_subclass_update_is_respected():
    class Halved(ember.optim.SGD):
        def _update(self, p, g, state, group, xp):
            p -= group["lr"] * 0.5 * g

    params, grads = _arrays("float64", steps=1)
    ps = [ember.nn.Parameter(ember.tensor(p.copy())) for p in params]
    opt = Halved(ps, lr=0.1)
    for p, g in zip(ps, grads[0]):
        p.grad = ember.tensor(g.copy())
    opt.step()
    for p, p0, g in zip(ps, params, grads[0]):
        np.testing.assert_allclose(p.detach().numpy(), p0 - 0.05 * g, rtol=1e-15)


def test_a_parameter_listed_twice_runs_the_loop(monkeypatch):
    """Two segments of one array would be updated by two threads at once: the group runs the
    per-parameter loop (each listing updates the parameter in turn)."""
    params, grads = _arrays("float32", shapes=[(600, 500)])
    calls = _count_blocked(monkeypatch)
    p = ember.nn.Parameter(ember.tensor(params[0].copy()))
    with pytest.warns(UserWarning):
        opt = ember.optim.SGD([p, p], lr=0.05, momentum=0.9)
    want = params[0].copy()
    buf = None
    for (g,) in grads:
        p.grad = ember.from_numpy(g.copy())
        opt.step()
        for _ in range(2):  # the loop's two updates of the one parameter, by hand
            buf = g.copy() if buf is None else buf * np.float32(0.9) + g
            want -= np.float32(0.05) * buf
    assert calls == [False] * 3
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-6, atol=1e-6)
