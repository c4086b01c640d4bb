"""Batch norm's per-channel sums in blocks of channels split over threads
(``normalization._chan_sum``, NOTE [ Threads ]): the same bits on 1, 2 and 3 threads, the
single call's numbers to rounding, and torch's forward and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads, normalization



SHAPES = [(4, 12, 8, 8), (3, 10, 5, 3), (1, 9, 4, 4), (5, 4, 2, 2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cols", [16, 64, 1 << 20])  # blocks of 4, 4 or 8, one block
def test_chan_sum_blocks_same_bits_any_threads(threaded, monkeypatch, dtype, shape, cols):
    monkeypatch.setattr(normalization, "_CHAN_COLS", cols)
    n, c = shape[:2]
    s = shape[2] * shape[3]
    a2 = np.random.default_rng(0).standard_normal((n, c * s)).astype(dtype)
    ones = np.ones(s, dtype)
    threaded(1)
    ref = normalization._chan_sum(np, a2, c, s, ones)
    assert ref.shape == (c,) and ref.dtype == a2.dtype
    for k in (2, 3):
        threaded(k)
        assert np.array_equal(normalization._chan_sum(np, a2, c, s, ones), ref)
    want = a2.reshape(n, c, s).astype(np.float64).sum((0, 2))
    np.testing.assert_allclose(ref, want, rtol=1e-5 if dtype == "float32" else 1e-12,
                               atol=1e-4 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_in_blocks_vs_torch(threaded, monkeypatch, dtype, shape):
    # training forward and backward with blocks of 4 channels, on 1-3 threads, vs torch
    monkeypatch.setattr(normalization, "_CHAN_COLS", 4 * shape[2] * shape[3])
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype) * 2 + 0.5
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)

    def run(mod):
        ts = [mod.tensor(a, requires_grad=True) for a in (x, w, b)]
        rm, rv = mod.zeros(shape[1], dtype=ts[0].dtype), mod.ones(shape[1], dtype=ts[0].dtype)
        y = mod.nn.functional.batch_norm(ts[0], rm, rv, ts[1], ts[2], training=True)
        y.backward(mod.tensor(g))
        return [a.detach().numpy().copy() for a in [y, rm, rv] + [t.grad for t in ts]]
    ref = None
    for k in (1, 2, 3):
        threaded(k)
        got = run(ember)
        ref = got if ref is None else ref
        for a, r in zip(got, ref):
            assert np.array_equal(a, r)
    tol = 2e-5 if dtype == "float32" else 1e-10
    for a, r in zip(ref, run(torch)):
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)


def test_batch_norm_leaves_the_blas_thread_count_alone(threaded, monkeypatch):
    """Batch norm never sets the process's BLAS thread count (a user's threadpoolctl limit in
    another thread could interleave with the set and restore and keep one thread: review)."""
    sets = []
    monkeypatch.setattr(_threads, "_blas_threads", lambda: (lambda: 2, sets.append))
    monkeypatch.setattr(normalization, "_CHAN_COLS", 16)
    threaded(2)
    x = ember.randn(4, 12, 8, 8, requires_grad=True)
    bn = ember.nn.BatchNorm2d(12)
    bn(x).square().sum().backward()
    assert x.grad is not None and sets == []
