"""'fold' with batch-last columns on small maps (``_fold_bl`` in ember/ops/conv.py) against
the batch-first layout it replaces (``_FOLD_BL_L = 0``) on the same inputs, and against torch,
within the existing tolerances, float64/float32, strides, groups, conv1d/conv3d, blocks of
samples; larger maps and 1x1 kernels keep batch-first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import conv
from opcheck import to_ember

# (dims, x shape, w shape, stride, padding, groups): ResNet-18's last stages (3x3 on 2x2,
# stride 2 from 4x4), grouped, odd sizes, conv1d and conv3d
CASES = [
    (2, (6, 64, 2, 2), (32, 64, 3, 3), 1, 1, 1),
    (2, (5, 32, 4, 4), (48, 32, 3, 3), 2, 1, 1),
    (2, (4, 24, 4, 4), (16, 6, 3, 3), 1, 1, 4),
    (2, (3, 16, 3, 5), (8, 16, 3, 3), 1, 1, 1),
    (1, (4, 64, 8), (32, 64, 3), 1, 1, 1),
    (3, (3, 16, 2, 2, 2), (8, 16, 3, 3, 3), 1, 1, 1),
]
IDS = [f"conv{c[0]}d-{'x'.join(map(str, c[1]))}-s{c[3]}-g{c[5]}" for c in CASES]


def _fn(mod, dims):
    return getattr(mod.nn.functional, f"conv{dims}d")


def _run(mp, bl_l, dims, x, w, gy, stride, pad, groups):
    mp.setattr(conv, "_FOLD_BL_L", bl_l)
    xe, we = to_ember(x, True), to_ember(w, True)
    y = _fn(ember, dims)(xe, we, stride=stride, padding=pad, groups=groups)
    y.backward(to_ember(gy))
    return [a.detach().numpy() for a in (y, xe.grad, we.grad)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dims,xs,ws,stride,pad,groups", CASES, ids=IDS)
def test_batch_last_fold_matches_batch_first_and_torch(dims, xs, ws, stride, pad, groups,
                                                       dtype, monkeypatch):
    rng = np.random.default_rng(xs[1])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    y = _fn(torch, dims)(*ts, stride=stride, padding=pad, groups=groups)
    gy = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(gy))
    ref = [y.detach().numpy()] + [t.grad.numpy() for t in ts]
    g = conv._Geom(ws[2:], (stride,) * dims, (1,) * dims, (pad,) * dims, (pad,) * dims,
                   xs[2:], tuple(y.shape[2:]), groups)
    assert conv._algo(xs[1], ws[0], g, np.dtype(dtype), xs[0]) == "fold"
    assert conv._fold_bl(g)
    new = _run(monkeypatch, conv._FOLD_BL_L, dims, x, w, gy, stride, pad, groups)
    old = _run(monkeypatch, 0, dims, x, w, gy, stride, pad, groups)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for name, n, o, r in zip(("y", "dx", "dw"), new, old, ref):
        assert n.dtype == r.dtype and n.shape == r.shape
        scale = np.abs(r).max()
        np.testing.assert_allclose(n, o, rtol=tol, atol=tol * scale, err_msg=name)
        np.testing.assert_allclose(n, r, rtol=tol, atol=tol * scale, err_msg=name)


def test_blocks_of_samples_rebuild_batch_last_columns(monkeypatch):
    # blocks of samples (a tiny block budget): the weight gradient rebuilds each block's
    # batch-last im2col, and the blocks' products are summed
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 4096)
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((7, 32, 2, 2)), rng.standard_normal((16, 32, 3, 3))
    gy = rng.standard_normal((7, 16, 2, 2))
    assert conv._chunk(7, 32 * 9 * 4 * 8) < 7
    new = _run(monkeypatch, conv._FOLD_BL_L, 2, x, w, gy, 1, 1, 1)
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in (x, w)]
    torch.nn.functional.conv2d(*ts, padding=1).backward(torch.from_numpy(gy))
    for n, r in zip(new[1:], [t.grad.numpy() for t in ts]):
        np.testing.assert_allclose(n, r, rtol=1e-12, atol=1e-12)


def test_larger_maps_and_1x1_keep_batch_first():
    # 64 output positions, or one kernel tap: the batch-first layout measured faster there
    g = conv._Geom((3, 3), (2, 2), (1, 1), (1, 1), (1, 1), (16, 16), (8, 8), 1)
    assert conv._algo(64, 128, g, np.dtype("float32"), 32) == "fold"
    assert not conv._fold_bl(g)
    g = conv._Geom((1, 1), (2, 2), (1, 1), (0, 0), (0, 0), (4, 4), (2, 2), 1)
    assert conv._algo(256, 512, g, np.dtype("float32"), 32) == "fold"
    assert not conv._fold_bl(g)
