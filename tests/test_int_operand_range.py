"""Python int operands outside a PyTorch Scalar's range ([-2**63, 2**64)) raise OverflowError
with torch's message, for every dtype, operator and function form (``ops.elementwise._number``,
issue 15); the values at the boundaries compute as torch's."""
from __future__ import annotations

import operator

import pytest
import torch

import ember

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (2**64 cast to float16)
OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
       "radd": lambda a, v: v + a, "rsub": lambda a, v: v - a, "rmul": lambda a, v: v * a,
       "rdiv": lambda a, v: v / a, "torch.add": lambda a, v: a.__class__.add(a, v),
       "mul_": lambda a, v: a.clone().mul_(v), "add_": lambda a, v: a.clone().add_(v),
       "eq": operator.eq, "lt": operator.lt, "mod": operator.mod, "floordiv": operator.floordiv,
       "clamp": lambda a, v: a.clamp(max=v)}
DTYPES = ["float32", "float64", "float16", "bfloat16", "complex64", "int64", "int32", "uint8"]
TOO_BIG = [2 ** 64, -2 ** 63 - 1, 2 ** 100, -2 ** 100]
EDGES = [2 ** 64 - 1, 2 ** 63, -2 ** 63, 2 ** 63 - 1]


def _outcome(mod, dtype, name, v):
    x = mod.ones(2, dtype=getattr(mod, dtype))
    try:
        r = OPS[name](x, v)
    except (OverflowError, RuntimeError, TypeError, NotImplementedError) as e:
        return type(e), str(e)
    return str(r.dtype).split(".")[-1], [complex(t) for t in r.tolist()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("v", TOO_BIG)
def test_ints_a_scalar_cannot_hold_raise_torchs_overflow_error(dtype, name, v):
    e, t = _outcome(ember, dtype, name, v), _outcome(torch, dtype, name, v)
    assert t[0] is OverflowError
    assert e == t


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "complex64"])
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "radd", "rsub", "rmul", "rdiv"])
@pytest.mark.parametrize("v", EDGES)
def test_ints_at_the_boundaries_compute_as_torch(dtype, name, v):
    assert _outcome(ember, dtype, name, v) == _outcome(torch, dtype, name, v)


def test_a_tensor_requiring_grad_raises_before_recording():
    x = ember.ones(3, requires_grad=True)
    with pytest.raises(OverflowError, match="^int too big to convert$"):
        x * 2 ** 64
    with pytest.raises(OverflowError, match="^can't convert negative int to unsigned$"):
        ember.mul(x, -2 ** 70)
    assert (x * (2 ** 64 - 1)).grad_fn.name() == "MulBackward0"


@pytest.mark.parametrize("v", TOO_BIG)
@pytest.mark.parametrize("call", [
    lambda m, v: m.add(m.ones(3), 1, alpha=v), lambda m, v: m.sub(m.ones(3), m.ones(3), alpha=v),
    lambda m, v: m.rsub(m.ones(3), 1, alpha=v), lambda m, v: m.ones(3).add_(m.ones(3), alpha=v),
    lambda m, v: m.ones(9000).sub_(m.ones(9000), alpha=v)])  # (the BLAS axpy's size too)
def test_alpha_beyond_a_scalar_raises_torchs_overflow_error(call, v):
    out = []
    for mod in (ember, torch):
        with pytest.raises(OverflowError) as e:
            call(mod, v)
        out.append(str(e.value))
    assert out[0] == out[1]
