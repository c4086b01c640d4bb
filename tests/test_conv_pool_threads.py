"""Convolution's and max pooling's passes split over threads (NOTE [ Threads ]): the padded
copies, col2im slice-adds, batch-innermost transposes, the fold/bl output transposes and max
pooling's windows and gradient scatter give the same bits on 1, 2 and 3 threads, and torch's
numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads, conv



def _grads(mod, fn, arrays, g0):
    ts = [mod.tensor(a, requires_grad=True) for a in arrays]
    y = fn(mod, *ts)
    y.backward(mod.tensor(g0))
    return [y.detach().numpy().copy()] + [t.grad.numpy().copy() for t in ts]


def _same_bits_and_torch(threaded, fn, arrays, tol):
    ref = None
    for k in (1, 2, 3):
        threaded(k)
        y = fn(ember, *[ember.tensor(a) for a in arrays])
        g0 = np.random.default_rng(9).standard_normal(tuple(y.shape)).astype(arrays[0].dtype)
        got = _grads(ember, fn, arrays, g0)
        if ref is None:
            ref = got
            continue
        for a, b in zip(got, ref):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    want = _grads(torch, fn, arrays, g0)
    for a, b in zip(ref, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


F = "nn.functional"


def _f(mod):
    return mod.nn.functional


# (name, x shape, w shape, kwargs, forced algorithm): each reaches one of the split passes
CONVS = [
    ("padded im2col", (3, 4, 9, 7), (5, 4, 3, 3), dict(padding=1), "im2col"),
    ("fold + strided T, short rows", (4, 6, 8, 8), (8, 6, 3, 3), dict(stride=2, padding=1),
     None),
    ("T by col2im, no padding", (2, 3, 18, 17), (4, 3, 3, 3), {}, "im2col"),
    ("T by col2im, cropped", (2, 3, 18, 17), (4, 3, 5, 5), dict(padding=1), "im2col"),
    ("bl (LeNet's second layer)", (6, 6, 14, 14), (16, 6, 5, 5), {}, None),
    ("fold, grouped", (4, 8, 4, 4), (8, 4, 3, 3), dict(padding=1, groups=2), "fold"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,xs,ws,kw,algo", CONVS, ids=[c[0] for c in CONVS])
def test_conv_same_bits_any_threads(threaded, monkeypatch, dtype, name, xs, ws, kw, algo):
    monkeypatch.setattr(conv, "_FORCE", algo)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)]
    tol = 1e-4 if dtype == "float32" else 1e-10
    _same_bits_and_torch(threaded, lambda m, x, w: _f(m).conv2d(x, w, **kw), arrays, tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_transpose_and_fold_same_bits(threaded, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 5, 7)).astype(dtype)
    w = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    tol = 1e-4 if dtype == "float32" else 1e-10
    _same_bits_and_torch(threaded, lambda m, x, w: _f(m).conv_transpose2d(
        x, w, stride=2, padding=1, output_padding=1), [x, w], tol)
    cols = rng.standard_normal((2, 4 * 9, 8 * 7)).astype(dtype)
    _same_bits_and_torch(threaded, lambda m, c: _f(m).fold(
        c, (8, 7), 3, padding=1, stride=(1, 1)), [cols], tol)


def _pool_input(shape, dtype, special):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    if special:
        flat = x.reshape(-1)
        flat[::17] = 0.5  # ties
        flat[5::97] = np.nan
        flat[7::101] = np.inf
        flat[11::103] = -np.inf
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("special", [False, True])
@pytest.mark.parametrize("args", [
    dict(kernel_size=3, stride=2, padding=1),       # ResNet's stem pool: overlapping windows
    dict(kernel_size=2),                            # LeNet's: a plain assignment back
    dict(kernel_size=3, stride=2, dilation=2, padding=1, ceil_mode=True),
    dict(kernel_size=5, stride=1, padding=2),       # 25 positions: the argmax path
])
def test_max_pool2d_same_bits_any_threads(threaded, dtype, special, args):
    x = _pool_input((4, 3, 11, 10), dtype, special)
    ref = None
    for k in (1, 2, 3):
        threaded(k)
        xt = ember.tensor(x, requires_grad=True)
        y, i = _f(ember).max_pool2d(xt, return_indices=True, **args)
        g0 = np.random.default_rng(4).standard_normal(tuple(y.shape)).astype(dtype)
        y.backward(ember.tensor(g0))
        got = [y.detach().numpy().copy(), i.numpy().copy(), xt.grad.numpy().copy()]
        if ref is None:
            ref = got
            continue
        for a, b in zip(got, ref):
            assert np.array_equal(a, b, equal_nan=True)
    xt = torch.tensor(x, requires_grad=True)
    y, i = torch.nn.functional.max_pool2d(xt, return_indices=True, **args)
    y.backward(torch.tensor(g0))
    np.testing.assert_array_equal(ref[0], y.detach().numpy())
    np.testing.assert_array_equal(ref[1], i.numpy())
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(ref[2], xt.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("fn,shape,args", [
    ("max_pool1d", (5, 3, 17), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool3d", (3, 2, 5, 6, 7), dict(kernel_size=2, stride=2)),
    ("max_pool2d", (3, 9, 8), dict(kernel_size=3, stride=2)),   # unbatched: split over C
    ("max_pool2d", (1, 3, 9, 8), dict(kernel_size=3, stride=2)),  # one sample: not split
])
def test_max_pool_other_dims_same_bits(threaded, fn, shape, args):
    x = _pool_input(shape, "float32", True)
    arrays = [x]
    _same_bits_and_torch(threaded, lambda m, x: getattr(_f(m), fn)(x, **args), arrays, 1e-5)


def test_max_pool_empty_batch_gradient():
    # an empty batch has an empty gradient (the scatter used to fail reshaping no rows)
    for mod in (ember, torch):
        x = mod.zeros(0, 3, 8, 8, requires_grad=True)
        mod.nn.functional.max_pool2d(x, 2).sum().backward()
        assert tuple(x.grad.shape) == (0, 3, 8, 8)
        assert x.grad.sum().item() == 0


def test_real_threshold_resnet_stem_pool(monkeypatch):
    # at the real threshold ResNet-18's stem pool (an 8 MB input) is split at 2 threads
    monkeypatch.setattr(_threads._runtime.state, "num_threads", None)
    x = np.random.default_rng(5).standard_normal((32, 64, 32, 32)).astype(np.float32)
    calls = []
    real = _threads.rows

    def spy(fn, n, numel, align=1):
        calls.append(numel >= _threads.MIN_NUMEL and n >= 2)
        return real(fn, n, numel, align)
    monkeypatch.setattr(_threads, "rows", spy)
    res = []
    try:
        for k in (1, 2):
            _threads.set_count(k)
            xt = ember.tensor(x, requires_grad=True)
            y = _f(ember).max_pool2d(xt, 3, 2, 1)
            y.backward(ember.ones_like(y))
            res.append((y.detach().numpy().copy(), xt.grad.numpy().copy()))
    finally:
        _threads.set_count(None)
    assert any(calls)
    for a, b in zip(*res):
        assert np.array_equal(a, b)


def _spy_rows(monkeypatch):
    """Records whether each ``rows`` call splits at the real threshold."""
    calls = []
    real = _threads.rows

    def spy(fn, n, numel, align=1, **kw):  # (blas1: conv._bmm's split on a loaded machine)
        calls.append(numel >= _threads.MIN_NUMEL and n // align >= 2)
        return real(fn, n, numel, align, **kw)
    monkeypatch.setattr(_threads, "rows", spy)
    return calls


@pytest.mark.parametrize("c,hw", [(128, 8), (256, 4)])
def test_real_threshold_resnet_deep_winograd_and_batch_norm(monkeypatch, c, hw):
    # ResNet-18's 128- and 256-channel stages: their Winograd blocks (counted by work, not by
    # elements touched) and batch norm's passes split at 2 threads, with the same bits
    monkeypatch.setattr(_threads._runtime.state, "num_threads", None)
    rng = np.random.default_rng(6)
    x0 = rng.standard_normal((32, c, hw, hw)).astype(np.float32)
    w0 = (rng.standard_normal((c, c, 3, 3)) / (3 * c ** 0.5)).astype(np.float32)
    assert conv._algo(c, c, conv._Geom((3, 3), (1, 1), (1, 1), (1, 1), (1, 1), (hw, hw),
                                       (hw, hw), 1), x0.dtype, 32) == "winograd4"
    calls = _spy_rows(monkeypatch)
    res = []
    try:
        for k in (1, 2):
            _threads.set_count(k)
            del calls[:]
            x = ember.tensor(x0, requires_grad=True)
            w = ember.tensor(w0, requires_grad=True)
            bn = ember.nn.BatchNorm2d(c)
            y = bn(_f(ember).conv2d(x, w, padding=1))
            y.backward(ember.tensor(x0))
            res.append([a.detach().numpy().copy() for a in (y, x.grad, w.grad, bn.weight.grad)])
            split = sum(calls)
    finally:
        _threads.set_count(None)
    assert split >= 4  # F, T, batch norm's dx pass and more
    for a, b in zip(*res):
        assert np.array_equal(a, b)
