"""nn.Linear makes its weight 64-byte aligned (NOTE [ Aligned weights ] in ember/ops/_blas.py):
the same numbers as torch, and the weight's storage is exactly its own elements for every
consumer of storages (save/load, torch.load of ember's files, share_memory_, resize_)."""
import io

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
from ember._tensor_legacy import _storage
from ember.ops import _blas


SHAPES = [(784, 512), (512, 256), (256, 10), (3, 7)]


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("fan_in,fan_out", SHAPES)
def test_linear_weight_is_aligned_and_its_own_storage(fan_in, fan_out, dt):
    ember.manual_seed(0)
    lin = nn.Linear(fan_in, fan_out, dtype=getattr(ember, dt))
    w = lin.weight._data
    assert w.shape == (fan_out, fan_in) and w.dtype == np.dtype(dt)
    assert w.flags.c_contiguous and w.flags.writeable
    if w.nbytes >= _blas.MIN_ALIGNED:
        assert w.ctypes.data % _blas.ALIGN == 0
    flat, off = _storage(w)
    assert off == 0 and flat.size == w.size and flat.ctypes.data == w.ctypes.data
    # the default init still draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)) into it
    bound = fan_in ** -0.5
    assert np.abs(w).max() <= bound and np.abs(w).max() > bound / 2


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_aligned_linear_equals_torch(dt):
    rng = np.random.default_rng(1)
    lin = nn.Linear(784, 512, dtype=getattr(ember, dt))
    tlin = torch.nn.Linear(784, 512, dtype=getattr(torch, dt))
    with torch.no_grad():
        tlin.weight.copy_(torch.from_numpy(lin.weight.detach().numpy()))
        tlin.bias.copy_(torch.from_numpy(lin.bias.detach().numpy()))
    for rows in (1, 5):
        xa = rng.standard_normal((rows, 784)).astype(dt)
        x, tx = ember.tensor(xa, requires_grad=True), torch.tensor(xa, requires_grad=True)
        y, ty = lin(x), tlin(tx)
        tol = 1e-5 if dt == "float32" else 1e-12
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_allclose(lin.weight.grad.numpy(), tlin.weight.grad.numpy(),
                                   rtol=tol, atol=tol)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)
        lin.zero_grad()
        tlin.zero_grad()


def test_load_state_dict_keeps_the_aligned_array():
    lin = nn.Linear(784, 512)
    w = lin.weight._data
    lin.load_state_dict({"weight": ember.randn(512, 784), "bias": ember.randn(512)})
    assert lin.weight._data is w and w.ctypes.data % _blas.ALIGN == 0


def test_save_load_and_torch_load_see_the_weight_alone():
    ember.manual_seed(2)
    lin = nn.Linear(784, 512)
    buf = io.BytesIO()
    ember.save(lin.state_dict(), buf)
    buf.seek(0)
    back = ember.load(buf)
    np.testing.assert_array_equal(back["weight"].numpy(), lin.weight.detach().numpy())
    buf.seek(0)
    tback = torch.load(buf)
    assert tback["weight"].untyped_storage().nbytes() == 512 * 784 * 4
    assert tback["weight"].storage_offset() == 0
    np.testing.assert_array_equal(tback["weight"].numpy(), lin.weight.detach().numpy())


def test_share_memory_and_resize_of_an_aligned_weight():
    lin = nn.Linear(784, 512)
    before = lin.weight.detach().numpy().copy()
    lin.share_memory()
    assert lin.weight.is_shared()
    np.testing.assert_array_equal(lin.weight.detach().numpy(), before)
    t = ember.empty(0)
    t._data = _blas.aligned(ember.empty(64, 64))._data  # an aligned array, resized as torch
    t.resize_(32, 64)
    assert tuple(t.shape) == (32, 64)


def test_aligned_leaves_other_arrays_alone():
    small = ember.empty(2, 3)
    a = small._data
    assert _blas.aligned(small)._data is a
    strings = ember.empty(0)
    assert _blas.aligned(strings)._data is strings._data
