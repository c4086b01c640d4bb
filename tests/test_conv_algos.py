"""Convolution algorithms (NOTE [ Choosing the algorithm ] in ember/ops/conv.py): every
algorithm forced on the same inputs and compared with the per-sample im2col path (the old one)
and with torch, forward and both gradients, float64 and float32; Winograd's error bounds;
blocked batches; the heuristic table's choices."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import conv
from opcheck import check, gradcheck, rand, to_ember

ALGOS = ("im2col", "fold", "winograd", "winograd4", "bl")

# Winograd's error, relative to the largest |output|, against float64 direct convolution.
# The transforms multiply by at most 8 (F(4x4, 3x3)'s A^T) and 1/24 (its G), so its float32
# error is ~10x direct convolution's; measured up to 9e-6 (F(4x4)) and 9e-7 (F(2x2)) on
# 128-channel sums, so the bounds below leave ~3x room.  float64: ~1e-14 measured.
BOUND = {"float64": {"winograd": 1e-13, "winograd4": 1e-12},
         "float32": {"winograd": 3e-6, "winograd4": 3e-5}}

# (n, c, o, h, w, padding): odd and even outputs, padding 0/1/2, one sample, tiles cut short
GEOMS = [
    (2, 3, 4, 7, 7, 1),
    (3, 5, 4, 7, 6, 0),
    (1, 4, 6, 6, 9, 2),
    (2, 8, 5, 5, 5, "same"),
    (2, 2, 3, 3, 3, 0),    # one output: one tile, mostly padding
    (2, 6, 6, 12, 10, 1),
    (2, 3, 4, 8, 16, 1),   # Winograd's gy tiles in scratch rows one longer (8*16*4 = 512 B)
    (2, 3, 2, 5, 13, 1),   # F(2x2)'s padded float32 input likewise (8x16 tiles' extent)
    (2, 4, 3, 6, 6, 0),    # tiles that fill the input exactly: read from x and gy directly
]


def _conv_once(algo, mp, x, w, gy, padding):
    """Forward, input and weight gradients of conv2d under ``algo``, as float64 arrays."""
    mp.setattr(conv, "_FORCE", algo)
    xe, we = to_ember(x, True), to_ember(w, True)
    y = ember.nn.functional.conv2d(xe, we, padding=padding)
    y.backward(to_ember(gy))
    return [a.detach().numpy().astype(np.float64) for a in (y, xe.grad, we.grad)]


@pytest.mark.parametrize("algo", ALGOS[1:])
@pytest.mark.parametrize("n,c,o,h,w,padding", GEOMS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_algorithm_matches_im2col(algo, n, c, o, h, w, padding, dtype, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    p = 1 if padding == "same" else padding
    gy = rng.standard_normal((n, o, h + 2 * p - 2, w + 2 * p - 2)).astype(dtype)
    ref = _conv_once("im2col", monkeypatch, x, wt, gy, padding)
    got = _conv_once(algo, monkeypatch, x, wt, gy, padding)
    exact = _conv_once("im2col", monkeypatch, x.astype(np.float64), wt.astype(np.float64),
                       gy.astype(np.float64), padding)
    bound = BOUND[dtype].get(algo, 1e-13 if dtype == "float64" else 1e-6)
    for name, a, r, e in zip(("output", "input grad", "weight grad"), got, ref, exact):
        scale = np.abs(e).max()
        assert np.abs(a - e).max() <= bound * scale, (name, np.abs(a - e).max() / scale)
        # the old path is as close to the exact values as its own rounding allows
        assert np.abs(a - r).max() <= (bound + 1e-6 * (dtype == "float32")) * scale, name


@pytest.mark.parametrize("algo", ALGOS)
def test_algorithm_matches_torch(algo, monkeypatch):
    monkeypatch.setattr(conv, "_FORCE", algo)
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, padding=1), None,
          rand(2, 4, 6, 5), rand(3, 4, 3, 3), rand(3))


@pytest.mark.parametrize("algo", ALGOS)
def test_algorithm_second_order(algo, monkeypatch):
    # the backward is written with the three Functions, so each algorithm's double backward
    # is checked by finite differences too
    monkeypatch.setattr(conv, "_FORCE", algo)
    gradcheck(lambda x, w: ember.nn.functional.conv2d(x, w, padding=1), rand(1, 2, 4, 5),
              rand(2, 2, 3, 3))
    x = to_ember(rand(1, 2, 4, 5), True)
    w = to_ember(rand(2, 2, 3, 3), True)
    tx = torch.from_numpy(x.detach().numpy()).requires_grad_()
    tw = torch.from_numpy(w.detach().numpy()).requires_grad_()
    outs = []
    for m, a, b in ((ember, x, w), (torch, tx, tw)):
        y = m.nn.functional.conv2d(a, b, padding=1)
        gx, = m.autograd.grad((y * y).sum(), a, create_graph=True)
        gw, = m.autograd.grad((gx * gx).sum(), b)
        outs.append(gw.detach().numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_blocked_batches(algo, dtype, monkeypatch):
    # a tiny block size runs every path sample block by sample block: the weight gradient
    # then recomputes its im2col (or Winograd transform) per block instead of reusing it
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1)
    monkeypatch.setattr(conv, "_WINO_BLOCK_BYTES", 1)
    monkeypatch.setattr(conv, "_FORCE", algo)
    # fixed inputs: F(4x4, 3x3)'s float32 error is bounded relative to the output's largest
    # value (BOUND above, tested there), which check()'s absolute float32 tolerance does not
    # allow for at an element near 0 on every random draw (1 in 720 was 4.7e-5 off in one run)
    check(lambda m, x, w: m.nn.functional.conv2d(x, w, padding=1), None,
          rand(5, 3, 6, 6, seed=5), rand(4, 3, 3, 3, seed=6), dtypes=(dtype,))


@pytest.mark.parametrize("algo", ["winograd", "winograd4"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("nb", [1, 2])
def test_winograd_cache_blocks(algo, dtype, nb, monkeypatch):
    # Winograd runs block by block of nb samples (_wino_nb): 5 samples in blocks of 1, and of
    # 2 with a shorter last one; forward with and without grad (V kept or not), both
    # gradients, against the whole batch in one block and against torch
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4, 9, 7)).astype(dtype)
    wt = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    gy = rng.standard_normal((5, 6, 9, 7)).astype(dtype)
    whole = _conv_once(algo, monkeypatch, x, wt, gy, 1)
    m = conv._WINO[algo]
    per = (m + 2) ** 2 * len(range(0, 9, m)) * len(range(0, 7, m)) * 6 * x.itemsize
    monkeypatch.setattr(conv, "_WINO_CACHE_BYTES", nb * per)
    assert conv._wino_nb(m + 2, per // ((m + 2) ** 2 * 6 * x.itemsize), 6, x.itemsize) == nb
    got = _conv_once(algo, monkeypatch, x, wt, gy, 1)
    with ember.no_grad():
        y = ember.nn.functional.conv2d(to_ember(x), to_ember(wt), padding=1).numpy()
    for a, r in zip(got + [y], whole + whole[:1]):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12 * np.abs(r).max())
    check(lambda m_, a, b: m_.nn.functional.conv2d(a, b, padding=1), None, x, wt,
          dtypes=(dtype,))


@pytest.mark.parametrize("algo", ["im2col", "fold", "bl"])
@pytest.mark.parametrize("nd,xs,ws,kw", [
    (2, (3, 8, 5, 6), (6, 4, 3, 3), dict(groups=2, padding=1)),           # 4 channels a group
    (2, (2, 12, 4, 4), (12, 3, 3, 3), dict(groups=4, stride=2, padding=1)),
    (3, (2, 4, 4, 5, 3), (6, 4, 3, 3, 3), dict(padding=1)),                # conv3d
    (3, (2, 6, 3, 4, 4), (4, 3, 2, 3, 3), dict(groups=2, stride=(1, 2, 1))),
    (1, (3, 4, 9), (5, 4, 3), dict(padding=1)),
])
def test_grouped_and_3d(algo, nd, xs, ws, kw, monkeypatch):
    monkeypatch.setattr(conv, "_FORCE", algo)
    check(lambda m, x, w: getattr(m.nn.functional, f"conv{nd}d")(x, w, **kw), None,
          rand(*xs), rand(*ws))


def test_winograd_falls_back_where_it_does_not_apply(monkeypatch):
    # F(m x m, 3x3) needs a 2-D 3x3 kernel at unit stride and dilation, one group: forced on
    # anything else the table answers im2col, and the numbers stay torch's
    monkeypatch.setattr(conv, "_FORCE", "winograd4")
    for kw, ws in ((dict(stride=2, padding=1), (3, 4, 3, 3)), (dict(dilation=2), (3, 4, 3, 3)),
                   (dict(groups=2, padding=1), (4, 2, 3, 3)), ({}, (3, 4, 5, 5))):
        check(lambda m, x, w: m.nn.functional.conv2d(x, w, **kw), None, rand(2, 4, 9, 9),
              rand(*ws), dtypes=("float64",))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 5), o=st.integers(1, 5), h=st.integers(3, 11),
       w=st.integers(3, 11), p=st.integers(0, 2), algo=st.sampled_from(ALGOS))
def test_algorithms_hypothesis(n, c, o, h, w, p, algo):
    rng = np.random.default_rng(n * 1000 + c * 100 + o * 10 + h + w + p)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((o, c, 3, 3))
    gy = rng.standard_normal((n, o, h + 2 * p - 2, w + 2 * p - 2))
    res = {}
    for a in ("im2col", algo):
        with pytest.MonkeyPatch.context() as mp:
            res[a] = _conv_once(a, mp, x, wt, gy, p)
    for a, r in zip(res[algo], res["im2col"]):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12 * np.abs(r).max())


@pytest.mark.parametrize("c,o,hw,k,stride,groups,expect", [
    (64, 64, 32, 3, 1, 1, "winograd4"),   # the ResNet block of bench's resnet_block
    (64, 64, 56, 3, 1, 1, "winograd4"),   # larger maps (measured up to 128x128)
    (64, 64, 256, 3, 1, 1, "im2col"),     # beyond: unmeasured, the per-sample GEMMs
    (64, 64, 16, 3, 1, 1, "winograd4"),   # ResNet-18 stages 1-3 at 64x64 inputs
    (128, 128, 8, 3, 1, 1, "winograd4"),
    (256, 256, 4, 3, 1, 1, "winograd4"),
    (512, 512, 2, 3, 1, 1, "fold"),       # one 4x4 tile would hold 4 outputs: no saving
    (128, 256, 8, 3, 2, 1, "fold"),       # strided: one GEMM over the batch
    (3, 64, 64, 7, 2, 1, "im2col"),       # the 7x7 stem (32x32 outputs)
    (16, 16, 16, 3, 1, 1, "im2col"),      # 16-63 channels: F(4x4) 2.3x faster, less exact
    (32, 64, 24, 3, 1, 1, "im2col"),      # pytorch/examples' mnist conv2 (NOTE: accuracy)
    (8, 16, 16, 3, 1, 1, "im2col"),       # fewer: the transforms dominate
    (16, 16, 2, 3, 1, 1, "fold"),         # a 2x2 output is one tile holding 4 outputs
    (64, 64, 8, 3, 1, 4, "im2col"),       # grouped, 8x8 map: few rows (C/G*K = 144)
    (64, 64, 4, 3, 1, 4, "fold"),         # grouped, 4x4 map
    (6, 16, 8, 5, 1, 1, "bl"),            # as LeNet's second conv: L = 64, C*K = 150
    (6, 16, 14, 5, 1, 1, "im2col"),       # output rows of 14: the batch-last copy gains less
    (16, 32, 12, 5, 1, 1, "im2col"),      # C*K = 400: the GEMM dominates
    (1, 6, 28, 5, 1, 1, "im2col"),        # LeNet's first conv: rows of 28
    (256, 512, 4, 1, 2, 1, "fold"),       # ResNet-18's last downsample: L = 4
    (128, 256, 8, 1, 2, 1, "fold"),       # L = 16
])
def test_heuristic_table(c, o, hw, k, stride, groups, expect):
    out = (hw + 2 * (k // 2) - k) // stride + 1
    g = conv._Geom((k, k), (stride, stride), (1, 1), (k // 2,) * 2, (k // 2,) * 2, (hw, hw),
                   (out, out), groups)
    assert conv._algo(c, o, g, np.dtype("float32")) == expect


@pytest.mark.parametrize("algo", ["winograd", "winograd4"])
@pytest.mark.parametrize("nb", [1, 2])
def test_winograd_blocks_over_threads_bit_identical(algo, nb, monkeypatch):
    # the blocks are split over threads at block boundaries (rows(..., align=nb)), so two or
    # three threads compute every block as one thread does: the same bits
    from ember.ops import _threads
    monkeypatch.setattr(_threads, "MIN_NUMEL", 0)
    monkeypatch.setattr(_threads._runtime.state, "num_threads", None)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 4, 9, 7)).astype(np.float32)
    wt = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((7, 6, 9, 7)).astype(np.float32)
    m = conv._WINO[algo]
    per = (m + 2) ** 2 * len(range(0, 9, m)) * len(range(0, 7, m)) * 6 * x.itemsize
    monkeypatch.setattr(conv, "_WINO_CACHE_BYTES", nb * per)
    # each block's transform waits a little, so the workers wake in time to take blocks
    names = set()
    tiles_tf = conv._WinoScratch.tiles_tf

    def slow(self, *args):
        time.sleep(0.002)
        names.add(threading.current_thread().name)
        return tiles_tf(self, *args)

    monkeypatch.setattr(conv._WinoScratch, "tiles_tf", slow)
    res = []
    try:
        for k in (1, 2, 3):
            _threads.set_count(k)
            res.append(_conv_once(algo, monkeypatch, x, wt, gy, 1))
    finally:
        _threads.set_count(None)
    assert len(names) > 1
    for got in res[1:]:
        for a, r in zip(got, res[0]):
            assert np.array_equal(a, r)


@pytest.mark.parametrize("n,expect", [(1, "fold"), (15, "fold"), (16, "winograd4")])
def test_winograd_needs_enough_tiles(n, expect):
    # U costs 36 * C * O whatever the batch: below 16 4x4 tiles in the batch F(4x4) lost
    # (256->256 on 4x4, batch 1: 11.8 ms against fold's 1.9); forward, input and weight
    # gradients all take the batch's choice (the weight gradient reuses the forward's array)
    g = conv._Geom((3, 3), (1, 1), (1, 1), (1, 1), (1, 1), (4, 4), (4, 4), 1)
    assert conv._algo(64, 64, g, np.dtype("float32"), n) == expect
    assert conv._algo(64, 64, g, np.dtype("float32")) == "winograd4"  # no batch: a large one
    check(lambda m, x, w: m.nn.functional.conv2d(x, w, padding=1), None,
          rand(n, 64, 4, 4, seed=n), rand(64, 64, 3, 3, seed=2) * 0.1, dtypes=("float64",))


def test_half_precision_winograd_matches_float32(monkeypatch):
    # bfloat16/float16 convolutions compute in float32 and round once, whatever the algorithm
    monkeypatch.setattr(conv, "_FORCE", "winograd4")
    x = rand(2, 4, 6, 6).astype(np.float32)
    w = rand(5, 4, 3, 3).astype(np.float32)
    for dt in (ember.float16, ember.bfloat16):
        y = ember.nn.functional.conv2d(to_ember(x).to(dt), to_ember(w).to(dt), padding=1)
        t = torch.nn.functional.conv2d(torch.from_numpy(x).to(getattr(torch, str(dt)[6:])),
                                       torch.from_numpy(w).to(getattr(torch, str(dt)[6:])),
                                       padding=1)
        assert y.dtype == dt
        np.testing.assert_allclose(y.float().numpy(), t.float().numpy(), rtol=2e-2, atol=3e-2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c,o,hw,stride,k", [(4, 6, 8, 2, 3), (3, 5, 9, 2, 3), (4, 4, 7, 3, 2),
                                             (2, 3, 20, 2, 3)])
def test_strided_input_grad_paths_agree(dtype, c, o, hw, stride, k):
    # a strided dense T goes through the phase-flat engine (long output rows) or GEMM +
    # col2im with the batch innermost (short rows): both on the same inputs, against torch's
    rng = np.random.default_rng(hw)
    pad = k // 2
    out = (hw + 2 * pad - k) // stride + 1
    g = conv._Geom((k, k), (stride,) * 2, (1, 1), (pad,) * 2, (pad,) * 2, (hw, hw), (out, out),
                   1)
    gy = rng.standard_normal((3, o, out, out)).astype(dtype)
    w = rng.standard_normal((o, c, k, k)).astype(dtype)
    flat = conv._flat_tr(np, gy, w, g)
    block = conv._conv_tr_block(np, gy, w.reshape(1, o, c * k * k).transpose(0, 2, 1), g)
    ref = torch.nn.grad.conv2d_input((3, c, hw, hw), torch.from_numpy(w), torch.from_numpy(gy),
                                     stride=stride, padding=pad).numpy()
    tol = 1e-12 if dtype == "float64" else 2e-5
    for a in (flat, block):
        np.testing.assert_allclose(a, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_blocked_im2col_writes_each_block_into_the_output(monkeypatch):
    # blocks of samples (the 7x7 stem's im2col is 19 MB) give the one-block numbers
    monkeypatch.setattr(conv, "_FORCE", "im2col")
    rng = np.random.default_rng(4)
    x = to_ember(rng.standard_normal((5, 3, 12, 12)).astype(np.float32))
    w = to_ember(rng.standard_normal((4, 3, 7, 7)).astype(np.float32))
    whole = ember.nn.functional.conv2d(x, w, stride=2, padding=3).numpy()
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1)
    blocked = ember.nn.functional.conv2d(x, w, stride=2, padding=3).numpy()
    assert np.array_equal(whole, blocked)
    for groups in (1, 3):
        check(lambda m, x, w: m.nn.functional.conv2d(x, w, stride=2, padding=3, groups=groups),
              None, rand(5, 3, 12, 12), rand(6, 3 // groups, 7, 7))
