"""sum/mean's fast paths (ops/reduce.py): an int dim without ``wrap_dim``, float32/64 summed
without ``dtype=``; same values, gradients and errors as torch and as the general path."""
import numpy as np
import pytest
import torch

import ember

SHAPES = [(), (5,), (32, 64), (3, 4, 5)]
DTYPES = ["float32", "float64", "float16", "int32"]


def _dims(ndim):
    return [None] + list(range(-max(ndim, 1), max(ndim, 1))) + [tuple(range(ndim))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_matches_torch(shape, dtype, op):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(shape) * 10).astype(dtype)
    for dim in _dims(len(shape)):
        for keepdim in (False, True):
            kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
            if op == "mean" and dtype == "int32":
                with pytest.raises(RuntimeError, match="could not infer output dtype"):
                    getattr(ember.tensor(a), op)(**kw)
                continue
            grad = dtype != "int32"
            e, t = ember.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)
            re, rt = getattr(e, op)(**kw), getattr(t, op)(**kw)
            assert re.dtype == getattr(ember, str(rt.dtype)[6:]) and re.shape == rt.shape
            tol = {"float16": 1e-2, "float32": 1e-5}.get(dtype, 1e-12)
            np.testing.assert_allclose(re.detach().numpy().astype("float64"),
                                       rt.detach().numpy().astype("float64"), rtol=tol, atol=tol)
            if grad:
                re.sum().backward()
                rt.sum().backward()
                np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_sum_is_the_dtype_path(dtype):
    # the reduction without ``dtype=`` is the same loop: bit for bit the explicit one
    a = (np.random.default_rng(1).standard_normal((7, 300, 5)) * 100).astype(dtype)
    for dim in (None, 0, 1, -1, (0, 2)):
        e = ember.tensor(a)
        got = (e.sum(dim) if dim is not None else e.sum()).numpy()
        want = np.add.reduce(a, axis=dim, dtype=dtype)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    got = ember.tensor(a).sum(1, dtype=ember.float64).numpy()
    np.testing.assert_array_equal(got, np.add.reduce(a, axis=1, dtype="float64"))


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("shape,dim", [((2, 3), 2), ((2, 3), -3), ((4,), 1), ((4,), -2),
                                       ((), 1), ((), -2)])
def test_dim_out_of_range(op, shape, dim):
    a = np.ones(shape, "float32")
    with pytest.raises(IndexError) as te:
        getattr(torch.tensor(a), op)(dim)
    with pytest.raises(IndexError) as ee:
        getattr(ember.tensor(a), op)(dim)
    assert str(ee.value) == str(te.value)
