"""Small-array paths of issue 15's eager chains keep PyTorch's numbers and leave no cycles.

``ops._util.const`` (cached read-only operands: relu's zeros, sigmoid's and the tanh/sigmoid
gradients' ones, the relu gradient's unsigned ones) is checked for values, read-only-ness and
its bound; the ops that use it bit for bit against the same ufunc steps with a scalar operand
and against torch, with special values and a result changed in place afterwards (which must not
reach the cache).  ``_sum_to``'s GEMV by ``dot`` against ``matmul``.  And an eager step of the
benchmark chains (op_overhead, op_overhead_leaves, op_overhead_bcast) makes no reference cycle:
with the collector off, ``gc.collect()`` after a step finds nothing.
"""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import ember
from ember.ops import _util
from ember.ops._util import const

SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, 40.0, -40.0, 100.0, -100.0,
                    np.inf, -np.inf, np.nan, 0.5, -0.5, 1e4])
TOL = {"float32": dict(rtol=1.3e-6, atol=1e-5), "float64": dict(rtol=1e-7, atol=1e-7)}


def _small(dtype, n=4):
    """A (n, 16) array with the special values and random ones, in ``dtype``."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, 16)) * 4
    a[0] = SPECIAL
    return a.astype(dtype)


def test_const_values_read_only_and_cached():
    c = const(np, (3, 4), np.dtype("float32"), 1)
    assert c.dtype == np.float32 and c.shape == (3, 4) and (c == 1).all()
    assert not c.flags.writeable
    assert const(np, (3, 4), np.dtype("float32"), 1) is c
    assert const(np, (3, 4), np.dtype("float64"), 1) is not c
    assert (const(np, (2,), np.dtype("uint32"), 0) == 0).all()
    with pytest.raises(ValueError):
        c[0, 0] = 5


def test_const_cache_is_bounded():
    for n in range(1, 200):
        const(np, (n,), np.dtype("float64"), 0)
    assert len(_util._CONST) <= 64


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_relu_small_forward_matches_torch_and_result_is_its_own(dtype):
    a = _small("float64") if dtype.startswith("float") else np.arange(-8, 8).reshape(2, 8)
    a = a.astype(dtype)
    ref = np.maximum(a, np.zeros_like(a))  # the path before the cache, bit for bit (it gives
    # +0.0 for -0.0 where torch keeps -0.0: equal values, a sign of zero the relu gradient's
    # bit path relies on)
    e, t = ember.from_numpy(a.copy()).relu(), torch.from_numpy(a.copy()).relu()
    assert e.numpy().tobytes() == ref.tobytes()
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    e.add_(5)  # the result owns its memory: the cached zeros stay zeros
    again = ember.from_numpy(a.copy()).relu()
    assert again.numpy().tobytes() == ref.tobytes()


@pytest.mark.parametrize("v", [-2.0, 3.0, 0.0])
def test_relu_zero_dim_gives_a_writeable_array_and_torch_gradient(v):
    x, xt = ember.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    y, yt = x.relu(), xt.relu()  # (a 0-d maximum gives a NumPy scalar: made an array)
    y.backward()
    yt.backward()
    assert y.shape == () and y._data.flags.writeable and y.item() == yt.item()
    assert x.grad.item() == xt.grad.item()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4, 16), (3,), (128, 128)])  # (128, 128) f64: uncached
def test_sigmoid_forward_bits_equal_scalar_formula_and_close_to_torch(dtype, shape):
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(shape) * 6).astype(dtype)
    a.reshape(-1)[:SPECIAL.size] = SPECIAL[:a.size]
    one = a.dtype.type(1)
    with np.errstate(all="ignore"):
        ref = one / (one + np.exp(-a))
    e = ember.from_numpy(a.copy()).sigmoid()
    assert e.numpy().tobytes() == ref.tobytes()
    np.testing.assert_allclose(e.numpy(), torch.from_numpy(a).sigmoid().numpy(), **TOL[dtype])
    e.mul_(0)  # (the cached ones stay ones)
    assert ember.from_numpy(a.copy()).sigmoid().numpy().tobytes() == ref.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "relu"])
def test_small_backward_bits_equal_scalar_formula_and_close_to_torch(dtype, op):
    a = _small(dtype)
    g = np.random.default_rng(3).standard_normal(a.shape).astype(dtype)
    g[1, :3] = [np.inf, -np.inf, np.nan]
    x = ember.from_numpy(a.copy()).requires_grad_()
    y = getattr(x, op)()
    y.backward(ember.from_numpy(g.copy()))
    yd = y.detach().numpy()
    one = a.dtype.type(1)
    with np.errstate(all="ignore"):
        ref = {"tanh": g * (one - yd * yd), "sigmoid": (g * (one - yd)) * yd,
               "relu": np.where(yd != 0, g, a.dtype.type(0))}[op]
    assert x.grad.numpy().tobytes() == ref.tobytes()
    xt = torch.from_numpy(a.copy()).requires_grad_()
    getattr(xt, op)().backward(torch.from_numpy(g.copy()))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,to", [((32, 64), (64,)), ((32, 64), (32, 1)),
                                      ((4, 8, 16), (16,)), ((5, 7), (1, 7))])
def test_sum_to_gemv_dot_equals_matmul(shape, to, dtype):
    a = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    got = _util._sum_to(np, a, to)
    lead = len(shape) - len(to)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(to)
                                      if s == 1 and shape[lead + i] != 1)
    k = len(dims)
    if dims == tuple(range(k)):
        n = int(np.prod(shape[:k]))
        ref = np.matmul(np.ones(n, dtype), a.reshape(n, -1))
    else:
        n = int(np.prod(shape[len(shape) - k:]))
        ref = np.matmul(a.reshape(-1, n), np.ones(n, dtype))
    assert got.shape == to
    assert got.tobytes() == ref.reshape(to).tobytes()


def _chains(lib):
    """The three op_overhead chains of bench/workloads.py, as steps on ``lib``."""
    rng = np.random.default_rng(0)

    def leaf(*shape, grad=True):
        return lib.tensor(rng.standard_normal(shape).astype(np.float32) * 0.5,
                          requires_grad=grad)

    x, b, c = leaf(32, 64), leaf(32, 64, grad=False), leaf(32, 64, grad=False)

    def overhead():
        h = x
        for i in range(4):
            h = (((h * 0.9 + b) - 0.1) / (c.abs() + 1.5))
            h = h.exp() if i % 2 == 0 else h.neg()
        return h.sum()

    a, b2, c2, d = (leaf(32, 64) for _ in range(4))

    def leaves():
        h = a
        for _ in range(2):
            h = ((((h * b2).relu() + c2).tanh() - d).sigmoid() * a / 2.0).exp().neg()
        return h.mean()

    bias, scale = leaf(64), leaf(32, 1)

    def bcast():
        h = x
        for _ in range(4):
            h = (((h + bias) * scale).relu() - 0.05).tanh()
        return h.sum(1).mean()

    return {"overhead": overhead, "leaves": leaves, "bcast": bcast}


@pytest.mark.parametrize("name", ["overhead", "leaves", "bcast"])
def test_eager_step_makes_no_reference_cycles(name):
    step = _chains(ember)[name]
    step().backward()  # (first-use caches filled outside the measured step)
    gc.collect()
    gc.disable()
    try:
        step().backward()
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0


@pytest.mark.parametrize("name", ["overhead", "leaves", "bcast"])
def test_chains_match_torch(name):
    ye, yt = _chains(ember)[name](), _chains(torch)[name]()
    ye.backward()
    yt.backward()
    np.testing.assert_allclose(ye.item(), yt.item(), rtol=1e-5)
