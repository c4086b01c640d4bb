"""The im2col weight gradient as ``cols @ gy^T`` (``_wgrad_nn`` in ember/ops/conv.py) against
the former ``gy @ cols^T`` (``_WGRAD_NN = False``) on the same inputs, and both against torch:
forward and both gradients, float64 and float32, groups, conv1d/conv3d, blocked batches, the
heuristic's bounds, second order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import conv
from opcheck import check, rand, to_ember

# (x shape, w shape, conv kwargs): LeNet's second layer, grouped, strided, dilated, 1-D, 3-D
CASES = [
    ((4, 6, 14, 14), (16, 6, 5, 5), {}),
    ((3, 8, 9, 9), (12, 2, 3, 3), {"groups": 4, "padding": 1}),
    ((2, 4, 11, 10), (5, 4, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 3, 12, 12), (4, 3, 3, 3), {"dilation": 2, "padding": 2}),
    ((3, 5, 17), (6, 5, 4), {"padding": 1}),
    ((2, 3, 5, 6, 5), (4, 3, 2, 3, 2), {"padding": (1, 0, 1)}),
]


def _nd(x):
    return {3: "conv1d", 4: "conv2d", 5: "conv3d"}[len(x)]


def _grads(mp, nn, thresholds, x, w, gy, kw):
    """Output, input and weight gradients under ``_WGRAD_NN = nn`` with the heuristic's bounds
    ``thresholds`` (``(0, big)`` takes the new product on every shape)."""
    mp.setattr(conv, "_WGRAD_NN", nn)
    mp.setattr(conv, "_WGRAD_NN_CK", thresholds[0])
    mp.setattr(conv, "_WGRAD_NN_L", thresholds[1])
    mp.setattr(conv, "_FORCE", "im2col")
    xe, we = to_ember(x, True), to_ember(w, True)
    y = getattr(ember.nn.functional, _nd(x.shape))(xe, we, **kw)
    y.backward(to_ember(gy))
    return [a.detach().numpy() for a in (y, xe.grad, we.grad)]


def _torch_grads(x, w, gy, kw):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    wt = torch.from_numpy(w.copy()).requires_grad_()
    y = getattr(torch.nn.functional, _nd(x.shape))(xt, wt, **kw)
    y.backward(torch.from_numpy(gy))
    return [a.detach().numpy() for a in (y, xt.grad, wt.grad)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("xs,ws,kw", CASES)
def test_new_product_matches_old_and_torch(xs, ws, kw, dtype, monkeypatch):
    rng = np.random.default_rng(len(xs) * 10 + ws[0])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    shape = getattr(torch.nn.functional, _nd(xs))(torch.from_numpy(x), torch.from_numpy(w),
                                                  **kw).shape
    gy = rng.standard_normal(tuple(shape)).astype(dtype)
    ref = _torch_grads(x, w, gy, kw)
    old = _grads(monkeypatch, False, (0, 1 << 30), x, w, gy, kw)
    new = _grads(monkeypatch, True, (0, 1 << 30), x, w, gy, kw)
    tol = 1e-12 if dtype == "float64" else 2e-5
    for o, n, r in zip(old, new, ref):
        scale = np.abs(r).max()
        np.testing.assert_allclose(n, o, rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(n, r, rtol=tol, atol=tol * scale)


def test_blocked_batches_match_one_block(monkeypatch):
    # blocks of samples recompute the im2col per block and sum the per-block products
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 10, 10))
    w = rng.standard_normal((8, 6, 5, 5))
    gy = rng.standard_normal((5, 8, 6, 6))
    whole = _grads(monkeypatch, True, (0, 1 << 30), x, w, gy, {})
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1)
    blocked = _grads(monkeypatch, True, (0, 1 << 30), x, w, gy, {})
    for a, b in zip(whole, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c,k,hw,expect", [
    (6, 5, 14, True),     # LeNet's second layer: C*K = 150, L = 100
    (1, 5, 28, False),    # LeNet's first: C*K = 25
    (16, 3, 18, True),    # C*K = 144, L = 256
    (16, 3, 19, False),   # L = 289
    (3, 7, 32, False),    # a 7x7 stem
])
def test_heuristic_bounds(c, k, hw, expect, monkeypatch):
    # the new product is taken where it measured faster: C/G*K >= 128 and L <= 256
    calls = []
    real = conv._wgrad_nn
    monkeypatch.setattr(conv, "_wgrad_nn", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(conv, "_FORCE", "im2col")
    rng = np.random.default_rng(2)
    x = to_ember(rng.standard_normal((2, c, hw, hw)).astype(np.float32))
    w = to_ember(rng.standard_normal((4, c, k, k)).astype(np.float32), True)
    ember.nn.functional.conv2d(x, w).sum().backward()
    assert bool(calls) == expect


def test_against_torch_with_bias_and_second_order(monkeypatch):
    monkeypatch.setattr(conv, "_WGRAD_NN_CK", 0)
    monkeypatch.setattr(conv, "_FORCE", "im2col")
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, padding=1, groups=2), None,
          rand(3, 4, 7, 7), rand(6, 2, 3, 3), rand(6))
    # the weight gradient's own backward (T and F of the same geometry), against torch's
    x, w = rand(2, 3, 5, 5, seed=3), rand(4, 3, 3, 3, seed=4)
    got = []
    for m, t in ((ember, to_ember), (torch, lambda a: torch.from_numpy(a.copy()))):
        xt, wt = t(x).requires_grad_(), t(w).requires_grad_()
        gw, = m.autograd.grad(m.nn.functional.conv2d(xt, wt, padding=1).pow(2).sum(), wt,
                              create_graph=True)
        got.append([a.detach().numpy() for a in m.autograd.grad(gw.pow(2).sum(), (xt, wt))])
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
