"""NumPy scalars as operands are Python numbers, as to PyTorch: ``np.float64`` and
``np.complex128`` (subclasses of float/complex) with float16/bfloat16 tensors through the
reflected operators and functions (they raised KeyError), and ``t ** np.float64(x)`` keeping
float32 (it promoted to float64); results, dtypes, node names and gradients against torch."""
from __future__ import annotations

import operator

import numpy as np
import pytest
import torch

import ember

OPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "pow": operator.pow,
    "radd": lambda t, s: s + t, "rsub": lambda t, s: s - t, "rmul": lambda t, s: s * t,
    "rdiv": lambda t, s: s / t, "rpow": lambda t, s: s ** t,
    "__radd__": lambda t, s: t.__radd__(s), "__rsub__": lambda t, s: t.__rsub__(s),
    "__rpow__": lambda t, s: t.__rpow__(s),
    "torch.add": lambda t, s: t.add(s), "torch.rsub": lambda t, s: _lib(t).rsub(t, s),
    "torch.pow": lambda t, s: _lib(t).pow(t, s), "torch.mul": lambda t, s: _lib(t).mul(t, s),
}
SCALARS = [np.float64(2.5), np.float64(-0.75), np.float32(0.3), np.int64(3), np.bool_(True),
           np.complex128(1 + 2j)]
DTYPES = ["float16", "bfloat16", "float32", "float64"]


def _name(dt) -> str:
    return str(dt).split(".")[-1]


def _lib(t):
    return torch if isinstance(t, torch.Tensor) else ember


def _run(lib, op, dt, s):
    x = lib.tensor([1.5, 0.5, 3.0], dtype=getattr(lib, dt), requires_grad=True)
    try:
        z = op(x, s)
    except Exception as e:  # noqa: BLE001 - the same error type is the expectation
        return type(e)
    loss = z.real if z.is_complex() else z
    g, = lib.autograd.grad(loss.sum(), x)
    return z, g


def _known(name, s, dt) -> bool:
    """Divergences left (each also with Python numbers): complex ** tensor's backward
    (TypeError); complex with half tensors (torch's complex32 and its refusals; bfloat16 pow's
    gradient dtype)."""
    if isinstance(s, np.complex128):
        return "rpow" in name or dt in ("float16", "bfloat16")
    return False


CASES = [(n, s, dt) for n in OPS for s in SCALARS for dt in DTYPES if not _known(n, s, dt)]


@pytest.mark.parametrize("name,s,dt", CASES, ids=[f"{n}-{s!r}-{d}" for n, s, d in CASES])
def test_numpy_scalar_operand_as_torch(name, s, dt):
    want = _run(torch, OPS[name], dt, s)
    assert not isinstance(want, type)  # (the table holds no case torch refuses)
    z, g = _run(ember, OPS[name], dt, s)
    assert _name(z.dtype) == _name(want[0].dtype), (z.dtype, want[0].dtype)
    assert z.grad_fn.name() == want[0].grad_fn.name()
    assert _name(g.dtype) == _name(want[1].dtype)
    tol = dict(rtol=1e-2, atol=1e-2) if z.dtype.itemsize == 2 else dict(rtol=1e-6, atol=1e-6)
    for e, t in zip((z, g), want):
        np.testing.assert_allclose(e.detach().float().numpy() if e.dtype.itemsize == 2 else
                                   e.detach().numpy(),
                                   t.detach().float().numpy() if t.dtype.itemsize == 2 else
                                   t.detach().numpy(), equal_nan=True, **tol)


def test_numpy_float64_exponent_keeps_float32_bits():
    """``x ** np.float64(2.5)`` is ``x ** 2.5``: float32, the same bits."""
    x = ember.tensor([1.5, 0.7, 3.0])
    a, b = x ** np.float64(2.5), x ** 2.5
    assert a.dtype == b.dtype == ember.float32
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("dt", ["int64", "int32", "uint8", "bool", "float32"])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "rsub"])
def test_numpy_bool_is_a_float_operand_as_torch(dt, op):
    """PyTorch reads a NumPy bool as the float 1.0/0.0: ``t - np.bool_(True)`` is computed
    (``t - True`` raises) and an int or bool tensor with one gives float32."""
    res = []
    for lib in (ember, torch):
        t = lib.tensor([1, 0, 1], dtype=getattr(lib, dt))
        f = {"add": lambda: t + np.bool_(True), "sub": lambda: t - np.bool_(True),
             "mul": lambda: t * np.bool_(False), "rsub": lambda: np.bool_(True) - t}[op]
        try:
            r = f()
            res.append((_name(r.dtype), r.tolist()))
        except Exception as e:  # noqa: BLE001 - the same error type is the expectation
            res.append(type(e).__name__)
    assert res[0] == res[1]
