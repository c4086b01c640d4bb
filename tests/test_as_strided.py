"""``Tensor.as_strided`` / ``torch.as_strided`` against torch: the view (values, shared
storage, offsets relative to the storage), its gradient (AsStridedBackward0: overlapping
output strides add up, an input whose own elements overlap divides), in-place writes through
it, and PyTorch's errors for bad sizes, strides and offsets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

# (name, input shape, how the input is made from a leaf, size, stride, storage_offset)
CASES = [
    ("window", (6,), "same", (2, 2), (1, 1), None),
    ("overlap 3x3", (8,), "same", (3, 3), (2, 1), 1),
    ("zero stride", (5,), "same", (2, 3), (0, 1), 2),
    ("transposed input", (3, 4), "t", (3, 3), (1, 2), 1),
    ("sliced input, own offset", (10,), "slice", (2, 3), (3, 1), None),
    ("sliced input, offset 0", (10,), "slice", (2, 2), (1, 1), 0),
    ("expanded input", (3,), "expand", (2, 2), (1, 1), 0),
    ("2-d to 1-d", (3, 4), "same", (6,), (2,), 0),
    ("empty", (4,), "same", (0, 3), (1, 1), 1),
    ("scalar", (4,), "same", (), (), 3),
]


def _prep(L, leaf, how):
    if how == "t":
        return leaf.t()
    if how == "slice":
        return leaf[3:]
    if how == "expand":
        return leaf.expand(2, 3)
    return leaf * 1  # a non-leaf with its own storage


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("form", ["method", "function"])
def test_as_strided_vs_torch(case, dtype, form):
    _, shape, how, size, stride, offset = case
    data = np.random.RandomState(0).randn(*shape)
    res = []
    for L in (ember, torch):
        leaf = L.tensor(data, dtype=getattr(L, dtype), requires_grad=True)
        x = _prep(L, leaf, how)
        args = (size, stride) if offset is None else (size, stride, offset)
        y = x.as_strided(*args) if form == "method" else L.as_strided(x, *args)
        g = np.random.RandomState(1).randn(*size)
        y.backward(L.tensor(g, dtype=getattr(L, dtype)))
        res.append((y.detach().numpy().copy(), tuple(y.shape), y.stride(),
                    leaf.grad.numpy().copy(), y.grad_fn.name()))
    e, t = res
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e[0], t[0], **tol)
    assert e[1] == t[1] and (e[2] == t[2] or 0 in size)
    np.testing.assert_allclose(e[3], t[3], **tol)
    assert e[4] == t[4] == "AsStridedBackward0"


def test_is_a_view_sharing_storage():
    for L in (ember, torch):
        x = L.arange(8.)
        y = x.as_strided((3, 2), (2, 1), 1)
        assert y._base is x
        y[0, 0] = 100.0  # written through the view: seen in the base
        assert x[1].item() == 100.0
        x[4] = -1.0  # and the other way
        assert y[1, 1].item() == -1.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_write_through_view_then_backward(dtype):
    data = np.random.RandomState(2).randn(6)
    res = []
    for L in (ember, torch):
        leaf = L.tensor(data, dtype=getattr(L, dtype), requires_grad=True)
        base = leaf * 2
        v = base.as_strided((2, 2), (2, 1), 1)
        v.mul_(3)
        (base * L.arange(6.).to(getattr(L, dtype))).sum().backward()
        res.append((base.detach().numpy().copy(), leaf.grad.numpy().copy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-6)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)


def test_double_backward_and_gradcheck():
    x = ember.randn(7, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradcheck(lambda a: a.as_strided((3, 3), (2, 1), 0) ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda a: a.as_strided((3, 3), (2, 1), 0) ** 2, (x,))


@given(n=st.integers(1, 12), rows=st.integers(0, 4), cols=st.integers(0, 4),
       s0=st.integers(0, 3), s1=st.integers(0, 3), off=st.integers(0, 4))
@settings(max_examples=40, deadline=None)
def test_random_geometries_vs_torch(n, rows, cols, s0, s1, off):
    data = np.arange(n, dtype=np.float64)
    got = []
    for L in (ember, torch):
        leaf = L.tensor(data, requires_grad=True)
        try:
            y = leaf.as_strided((rows, cols), (s0, s1), off)
        except RuntimeError as e:
            got.append(type(e))
            continue
        y.backward(L.ones(rows, cols, dtype=L.float64))
        got.append((y.detach().numpy().copy(), leaf.grad.numpy().copy()))
    if isinstance(got[1], type):
        assert got[0] is got[1]
        return
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])


BAD = [
    ("lengths differ", ((2, 2), (1,)), RuntimeError, "mismatch in length of strides and shape"),
    ("negative stride", ((2, 2), (-1, 1)), RuntimeError,
     "as_strided: Negative strides are not supported at the moment, got strides: [-1, 1]"),
    ("negative offset", ((2, 2), (1, 1), -1), RuntimeError, "Tensor: invalid storage offset -1"),
    ("negative size", ((-1, 2), (1, 1)), RuntimeError,
     "Storage size calculation overflowed with sizes=[-1, 2] and strides=[1, 1]"),
    ("out of bounds", ((3, 3), (3, 1)), RuntimeError,
     "setStorage: sizes [3, 3], strides [3, 1], storage offset 0, and itemsize 4 requiring a "
     "storage size of 36 are out of bounds for storage of size 24"),
    ("offset out of bounds", ((2, 2), (1, 1), 5), RuntimeError,
     "setStorage: sizes [2, 2], strides [1, 1], storage offset 5, and itemsize 4 requiring a "
     "storage size of 32 are out of bounds for storage of size 24"),
    ("size an int", (4, (1,)), TypeError,
     "as_strided(): argument 'size' (position 1) must be tuple of ints, not int"),
    ("float in size", ((2.0,), (1,)), TypeError,
     "as_strided(): argument 'size' (position 1) must be tuple of ints, but found element of "
     "type float at pos 0"),
    ("bool in stride", ((2,), (True,)), TypeError,
     "as_strided(): argument 'stride' (position 2) must be tuple of ints, but found element "
     "of type bool at pos 0"),
    ("float offset", ((2,), (1,), 4.0), TypeError,
     "as_strided(): argument 'storage_offset' (position 3) must be int, not float"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments_raise_torchs_errors(case):
    _, args, exc, msg = case
    for L in (ember, torch):
        with pytest.raises(exc) as info:
            L.arange(6.).as_strided(*args)
        assert msg in str(info.value), (L.__name__, str(info.value))
