"""Python-number operands as cached 0-d arrays (``ops._util.scalar_operand``, issue 15).

``h - 0.05``, ``h * 0.9``, ``h / 2.0``, ``h + 1`` on float32/64 tensors run their ufunc against a
cached read-only 0-d array of the tensor's dtype instead of the Python number.  Checked: the
cache (what it holds, what it refuses: other dtypes, 0 and -0.0, NaN, infinities, values beyond
the dtype's range; its bound), and each operator bit for bit against the ufunc with the number
(the path before), recorded and not, forward and gradient, against torch, with special values
in the tensor, with warnings made errors, and with results changed in place afterwards.
"""
from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest
import torch

import ember
from ember.ops import _util
from ember.ops._util import scalar_operand

SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, 1e30, -1e30, np.inf, -np.inf, np.nan,
                    0.5, -0.5, 1e-40, 2.0 ** 24 + 1])
SCALARS = [0.05, -0.1, 1 / 3, 2.0, 2, -7, 1e-40, 1e-50, 2 ** 24 + 1, 2 ** 60, 3.0e38, 1e300,
           0.0, -0.0, 0, float("inf"), float("nan")]
OPS = {"add": (operator.add, np.add), "sub": (operator.sub, np.subtract),
       "mul": (operator.mul, np.multiply), "div": (operator.truediv, np.true_divide)}
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (x / 0 on the old path)


def _data(dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((4, 15)) * 3).astype(dtype)
    a[0] = SPECIAL.astype(dtype)
    return a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cache_holds_the_weak_scalar_cast_read_only(dtype):
    dt = np.dtype(dtype)
    a = np.ones(3, dt)
    for v in (0.05, 2, -7, 1e-40, 2 ** 60):
        c = scalar_operand(a, v, dt)
        assert type(c) is np.ndarray and c.shape == () and c.dtype == dt
        assert not c.flags.writeable
        assert c.tobytes() == np.array(v).astype(dt).tobytes()
        assert scalar_operand(a, v, dt) is c
    with pytest.raises(ValueError):
        scalar_operand(a, 0.05, dt)[()] = 1


def test_cache_refuses_what_it_cannot_hold_the_same():
    f32 = np.dtype("float32")
    a = np.ones(3, f32)
    for v in (0.0, -0.0, 0, float("nan"), float("inf"), -float("inf"), 1e300, 2 ** 200):
        assert scalar_operand(a, v, f32) is v  # (0 and -0.0 would share a key)
    assert scalar_operand(np.ones(3, np.int32), 2, np.dtype("int32")) == 2
    assert scalar_operand(a, 2.0, np.dtype("float64")) == 2.0  # ``a`` of another dtype
    assert scalar_operand(np.ones(3, np.float16), 2.0, np.dtype("float16")) == 2.0


def test_sparse_arrays_keep_the_number():
    from ember._sparse import COO
    s = ember.ones(2, 3).to_sparse()._data
    assert type(s) is COO and scalar_operand(s, 0.25, s.dtype) == 0.25  # (its module: dense)
    e, t = ember.ones(2, 3).to_sparse() * 0.25, torch.ones(2, 3).to_sparse() * 0.25
    np.testing.assert_array_equal(e.to_dense().numpy(), t.to_dense().numpy())


def test_cache_is_bounded():
    f64 = np.dtype("float64")
    a = np.ones(3, f64)
    for k in range(1, 1000):
        scalar_operand(a, k + 0.5, f64)
    assert len(_util._SCALARS[f64][0]) <= 256


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("grad", [False, True])
def test_operator_bits_equal_the_ufunc_with_the_number_and_torch(dtype, name, grad):
    op, uf = OPS[name]
    a = _data(dtype)
    for v in SCALARS:
        with np.errstate(all="ignore"):
            ref = uf(a, v, dtype=a.dtype)  # the path before the cache
        x = ember.tensor(a.copy(), requires_grad=grad)
        e = op(x, v).detach()
        assert e.dtype == x.dtype
        assert e.numpy().tobytes() == ref.tobytes(), (v, name)
        t = op(torch.tensor(a.copy()), v)
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-6, atol=0, equal_nan=True)
        e.add_(1)  # the result owns its memory: the cached operand is untouched
        again = op(ember.tensor(a.copy()), v)
        assert again.numpy().tobytes() == ref.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["mul", "div"])
def test_gradient_through_the_number_equals_torch(dtype, name):
    op = OPS[name][0]
    a = _data(dtype)[1:]
    g = np.random.default_rng(4).standard_normal(a.shape).astype(dtype)
    for v in (0.9, 2.0, -3, 1e-40, 0.0):
        x, xt = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        op(x, v).backward(ember.tensor(g))
        op(xt, v).backward(torch.tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("name", list(OPS))
def test_warnings_made_errors_still_give_the_ieee_result(name):
    op = OPS[name][0]
    a = np.array([3e38, -3e38, 1.0, 0.0], np.float32)
    for v in (1e38, 1e-39):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            e = op(ember.tensor(a), v)
            eg = op(ember.tensor(a, requires_grad=True), v)
        t = op(torch.tensor(a), v)
        np.testing.assert_allclose(e.numpy(), t.numpy(), rtol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(e.numpy(), eg.detach().numpy())


def test_reflected_and_other_dtypes_keep_their_paths():
    a = _data("float32")
    x = ember.tensor(a)
    with np.errstate(all="ignore"):
        assert (2.0 - x).numpy().tobytes() == np.subtract(2.0, a, dtype=a.dtype).tobytes()
    np.testing.assert_array_equal((3 / x).numpy(), (3 / torch.tensor(a)).numpy())
    i = ember.tensor(np.arange(-4, 4, dtype=np.int32))
    assert (i * 3).dtype == ember.int32 and (i * 3).tolist() == [-12, -9, -6, -3, 0, 3, 6, 9]
    assert (i * 0.5).dtype == ember.float32 and (i / 2).tolist() == (torch.arange(-4, 4) / 2
                                                                       ).tolist()
    h = ember.tensor(a.astype(np.float16))
    np.testing.assert_array_equal((h * 0.1).numpy(),
                                  (torch.tensor(a.astype(np.float16)) * 0.1).numpy())
