"""The batch-last im2col ('bl' in NOTE [ Choosing the algorithm ], ember/ops/conv.py) and the
column-blocked GEMMs (``_gemm_wide``) against the paths they replace (``_BL = False``) on the
same inputs, and against torch: LeNet's layers, forward and both gradients, float64/float32."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import conv
from opcheck import to_ember

# (x shape, w shape, padding): LeNet's second layer at its batch (6400 GEMM columns, 16 blocks
# of 400), a batch whose columns leave a remainder block, padded, 5 samples, one sample
LENET = [
    ((64, 6, 14, 14), (16, 6, 5, 5), 0),
    ((7, 6, 14, 14), (16, 6, 5, 5), 0),
    ((5, 3, 10, 10), (8, 3, 5, 5), 2),
    ((1, 6, 9, 8), (4, 6, 5, 5), 0),
]


def _run(mp, bl, x, w, b, gy, pad):
    mp.setattr(conv, "_BL", bl)
    xe, we, be = to_ember(x, True), to_ember(w, True), to_ember(b, True)
    y = ember.nn.functional.conv2d(xe, we, be, padding=pad)
    y.backward(to_ember(gy))
    return [a.detach().numpy() for a in (y, xe.grad, we.grad, be.grad)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("xs,ws,pad", LENET)
def test_bl_matches_old_path_and_torch(xs, ws, pad, dtype, monkeypatch):
    rng = np.random.default_rng(xs[0])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    out = [s + 2 * pad - k + 1 for s, k in zip(xs[2:], ws[2:])]
    gy = rng.standard_normal((xs[0], ws[0], *out)).astype(dtype)
    g = conv._Geom(ws[2:], (1, 1), (1, 1), (pad,) * 2, (pad,) * 2, xs[2:], tuple(out), 1)
    assert conv._algo(xs[1], ws[0], g, np.dtype(dtype)) == "bl"
    new = _run(monkeypatch, True, x, w, b, gy, pad)
    old = _run(monkeypatch, False, x, w, b, gy, pad)
    assert conv._algo(xs[1], ws[0], g, np.dtype(dtype)) == "im2col"
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b)]
    torch.nn.functional.conv2d(*ts, padding=pad).backward(torch.from_numpy(gy))
    ref = [torch.nn.functional.conv2d(*ts, padding=pad).detach().numpy()] + \
        [t.grad.numpy() for t in ts]
    tol = 1e-12 if dtype == "float64" else 1e-5
    for name, n, o, r in zip(("y", "dx", "dw", "db"), new, old, ref):
        scale = np.abs(r).max()
        np.testing.assert_allclose(n, o, rtol=tol, atol=tol * scale, err_msg=name)
        np.testing.assert_allclose(n, r, rtol=tol, atol=tol * scale, err_msg=name)


def test_bl_blocked_batches(monkeypatch):
    # blocks of samples: the weight gradient rebuilds the batch-last im2col per block
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((5, 6, 12, 12)), rng.standard_normal((4, 6, 5, 5))
    b, gy = rng.standard_normal(4), rng.standard_normal((5, 4, 8, 8))
    whole = _run(monkeypatch, True, x, w, b, gy, 0)
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1)
    blocked = _run(monkeypatch, True, x, w, b, gy, 0)
    for a, c in zip(whole, blocked):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [1, 399, 400, 401, 1250])
def test_gemm_wide_matches_matmul(m):
    # column blocks of 400 in one batched call, and the remainder block
    rng = np.random.default_rng(m)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, m))
    np.testing.assert_allclose(conv._gemm_wide(np, a, b), a @ b, rtol=1e-13, atol=1e-13)
