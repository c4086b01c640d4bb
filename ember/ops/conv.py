"""Convolution ops: conv1d/2d/3d, conv_transpose1d/2d/3d, unfold/fold -- forward and backward.

NOTE [ Convolution as three bilinear maps ]
A convolution with a fixed geometry (kernel, stride, dilation, padding, groups, sizes) is a
bilinear map ``y = F(x, w)``.  Its two adjoints are the other two maps of the family:

    T(g, w)  = dF/dx^T g    (transposed convolution: GEMM, then col2im)
    W(x, g)  = dF/dw^T g    (the weight gradient: GEMM of g against im2col(x))

All three are one raw Function each, and every backward is written with the other two, so
gradients of any order exist: with ``<g, F(x, w)> = <T(g, w), x> = <W(x, g), w>``,

    F(x, w):  dx = T(g, w),  dw = W(x, g)
    T(g, w):  dg = F(h, w),  dw = W(h, g)
    W(x, g):  dx = T(g, h),  dg = F(x, h)

``conv_transpose`` is ``T`` itself (its weight layout ``(in, out/groups, *k)`` is that of the
convolution it is the adjoint of).  The arrays are laid out for BLAS: im2col is the strided view
of ``_window.windows`` copied once into ``(N, C*K, L)`` (``K`` kernel offsets, ``L`` output
positions), so ``F`` is the batched GEMM ``(O, C*K) @ (N, C*K, L)`` and writes ``(N, O, L)``,
the output's own NCHW layout; groups add a batch axis ``(G, O/G, C/G*K)``.  Measured on the
(32, 64, 32, 32) 3x3 conv this beats a channels-last single GEMM (which needs a transpose of
the output) and ``tensordot`` (which copies im2col again) for the weight gradient.  Three
refinements, each measured: large batches go through im2col in blocks of samples (``_chunk``);
``T`` of a unit-stride 'same' convolution is itself a convolution with the flipped kernel
(``_conv_tr``); and col2im of short output rows runs with the batch innermost
(``_conv_tr_block``).

NOTE [ Phase-flat ]
Depthwise convolutions (one input channel a group, ``G > 1``) are ``G * N`` GEMMs of
one-row matrices on that layout, and the col2im of a strided convolution slice-adds along
rows of a few strided elements.  Those go through a second layout instead (``_Flat``): the
padded input split into its ``prod(stride)`` phases ``xpad[..., r::s]``, channels first,
each phase's ``(N, *Q)`` grid flattened into one row.  Every kernel offset then reads one
contiguous slice of one phase row (offset ``k`` at output ``o`` reads
``s*o + d*k = s*(o + d*k // s) + d*k % s``), so depthwise ``F`` (one output a group),
``T`` and ``W`` are ``K`` broadcast multiply-adds (or batched dots) over rows of
``N * prod(Q)`` elements, and any strided ``T`` is one GEMM then ``K`` contiguous
slice-adds.  Positions past the valid outputs (``Q > out``) are computed and dropped, or
read as zeros.  Measured (1 BLAS thread, forward + both gradients): depthwise 3x3 on
(32, 128, 16, 16) 18.7 -> 11.5 ms, the same at stride 2 on (32, 128, 32, 32) 43 -> 24 ms,
stride-2 ``T`` of the dense (32, 64, 32, 32) 3x3 16 -> 13.5 ms.  Grouped convolutions with
several channels a group, and dense ``F``/``W``, stay on im2col: there the GEMM dominates and
the junk positions (13% for a 3x3 at stride 2 on 32x32) cost more than the copies save.

NOTE [ Choosing the algorithm ]
As cuDNN and oneDNN do, ``F`` and ``W`` pick one of four algorithms per geometry (``_algo``; the
same choice in both, so ``W`` can reuse the forward's work array); ``T`` of a unit-stride
'same' convolution is ``F`` of the flipped kernel and so follows the same table:

    'flat'       depthwise (one input channel a group)           NOTE [ Phase-flat ]
    'winograd4'  3x3, stride 1, dilation 1, one group, 2-D,      F(4x4, 3x3): (m+2)^2 = 36 GEMMs
                 C and O >= 16, every output side in [4, 128]     (N*T, C) @ (C, O), T tiles,
                                                                   in cache blocks of samples
    'fold'       output positions L <= 16, or L <= 256 with      one GEMM (O, C*K) @ (C*K, N*L):
                 C/G*K >= 512                                      the batch folded into columns
    'bl'         one group, K >= 25, C*K <= 200, output rows     im2col (C*K, L*N) from a
                 <= 12 (LeNet's second layer)                      (C, *padded, N) copy: GEMMs in
                                                                   column blocks (_gemm_wide)
    'im2col'     everything else                                 per-sample GEMMs (N, C*K, L)

'fold' orders its columns (output position, sample) as 'bl' on maps of up to 16 output
positions (``_fold_bl``: its im2col then copies runs of a row times the batch).
``T`` of a 'same' convolution whose flipped convolution would be 'fold', and of a strided
dense one with output rows shorter than 16, is one GEMM + col2im with the batch innermost.
Measured with Winograd in cache blocks of samples (the comment above ``_WINO_MATS``; one
BLAS thread, forward + both gradients, float32, batch 32 unless noted, ms of thread CPU, min
of 5 interleaved runs at load ~5-6, so +-15%; torch 2.13 / oneDNN in the same process):

    shape (C->O, map)         im2col   fold  F(2x2)  F(4x4)  torch
    64->64, 32x32                117    132      84      47     73    F(4x4)
    64->64, 16x16                 31     37      19      12     17    F(4x4)
    128->128, 8x8                 29     28      14      10     16    F(4x4)
    256->256, 4x4                 40     25      17      16     15    F(4x4)
    512->512, 2x2                256     25      35     117     25    fold
    64->64, 56x56                348    365     282     171    233    F(4x4)
    128->128, 28x28              269    284     179     105    201    F(4x4)
    64->64, 128x128, batch 1      63     64      71      37     41    F(4x4)
    32->32, 32x32                 45     55      29      19     21    F(4x4)
    16->16, 32x32               18.5   22.7    13.2     8.0    6.9    F(4x4)
    16->16, 8x8                  1.2    1.7     1.3     0.8    1.4    F(4x4)
    64->16, 32x32                 56     74      44      21     24    F(4x4)
    16->64, 32x32                 36     38      41      30     22    F(4x4)
    8->8, 32x32                  4.9    9.2     6.9     4.8    4.3    im2col (a tie)
    8->16, 16x16                 1.9    2.4     2.5     2.1    1.5    im2col
    3->64, 32x32                  10     11      18      14     12    im2col

so F(4x4) is faster from 16 channels and more (C and O) and output sides 4 to 128; larger
maps are unmeasured and stay on im2col.  It takes 64 channels and more: its float32 error
(~5e-6 relative, im2col's ~1e-7) moved a public MNIST program's test loss after one epoch from
1.1% off PyTorch's to 10% off (``_WINO_C``).  It also needs 16 tiles in the batch (``_WINO_TILES``): ``U``
(36 * C * O) and the weight gradient's transform cost the same whatever the batch, and
256->256 on 4x4 ran 11.8 ms at batch 1 against fold's 1.9 (batch 4: 9.4 vs 4.2; 64->64 on
4x4 ties at batch 8).  Before the cache blocks, after the Winograd layout (9 runs,
load ~6, +-15%; the strided rows still hold):

    shape (C->O, map)     im2col   fold   F(4x4)   torch
    64->64, 32x32            106    115      71      80    F(4x4)
    64->64, 16x16             33     37      17      21    F(4x4)
    128->128, 8x8             27     26      12      16    F(4x4)
    256->256, 4x4             34     23      16      15    F(4x4)
    512->512, 2x2            115     23      70      23    fold (one 4x4 tile holds
                                                                    4 outputs: no saving)
    3->64 7x7 stride 2, 64x64 25     27       -      18    im2col (no input gradient)
    64->128, 16x16, stride 2  15     15       -      11    fold
    128->256, 8x8, stride 2   16     12       -      10    fold
    256->512, 4x4, stride 2   43     12       -      14    fold

and before that layout (load ~7, +-20%; F(2x2) since unmeasured, F(4x4) as fast or faster):

    shape (C->O, map)     im2col   fold   F(2x2)  F(4x4)   torch
    64->64, 16x16            106    100     103      65      56
    128->128, 8x8             86     91      71      48      50
    256->256, 4x4             85     53      48      40      28
    128->256, 8x8, stride 2   59     46       -       -      34
    LeNet 6->16 5x5, 14x14   7.9   11.8       -       -     2.5    im2col

Per-sample GEMMs of a few columns (ResNet-18's last stages) ran 15-22x slower than torch
before 'fold'; Winograd trades GEMM work (4x fewer products for F(4x4)) for transforms,
which pass by pass over the whole batch ran at memory speed in NumPy (~45% of its time at 64
channels) and kept it to channels >= 64 and maps up to 32x32; block by block of samples
they run from L2/L3 (64->64 on 32x32: F 29 -> 15 ms, T 29 -> 14, W 17 -> 13, one thread),
and F(4x4) wins from 16 channels on (taken from 64: accuracy, above).  Work arrays (im2col matrices, padded copies, Winograd's
transformed tiles) come from the one reference-counted workspace (NOTE [ Workspace ]),
whose 96 MB holds Winograd's working set (since the cache blocks: the ``V`` a forward keeps
for its weight gradient, 18 MB at 64 channels on 32x32, and ~3 MB of blocks a thread):
resnet_block faulted ~2,000 pages a step with conv's former 24 MB pool of given-back arrays
and none with the workspace (thread CPU 1.16 -> 1.05x torch's), and ResNet-18's first-step
RSS growth went 0.77 -> 0.88x torch's.  F(2x2, 3x3) is kept (forcible, tested) as the more
accurate variant; the table does not pick it since F(4x4) measured faster wherever either
applies.  Error bounds (relative to max |output|, against float64 direct convolution,
tests/test_conv_algos.py): float32 F(2x2) 3e-6, F(4x4) 3e-5 (measured 9e-7 and 9e-6 on
128-channel sums; direct im2col ~5e-7); float64 1e-13/1e-12.
Grouped convolutions with several channels a group and conv1d/conv3d use 'fold' or 'im2col'
by the same L and C*K rule.  The L bound was 64 until LeNet's second convolution (6->16 5x5
on 12x12: L = 64, C*K = 150) showed fold losing there; fwd+bwd ms, batch 64/32, one thread:

    shape (C->O, k, map -> out)         C*K    L    im2col   fold   torch
    LeNet 6->16 5x5, 12x12 -> 8x8        150   64     2.76   2.93    1.40
    32->32 3x3, 8x8                      288   64     5.54   6.55    2.47
    64->64 3x3 groups 4, 8x8             144   64     4.13   5.06    2.44
    64->128 1x1 stride 2, 16x16 -> 8x8    64   64     2.42   2.90    2.56
    32->32 3x3, 4x8                      288   32     1.42   1.66    0.73
    128->256 1x1 stride 2, 8x8 -> 4x4    128   16     2.00   2.03    1.90
    256->512 1x1 stride 2, 4x4 -> 2x2    256    4     3.24   1.96    2.05

so fold is kept for L <= 16 (ties at 16, wins clearly at 4) and for C*K >= 512.

'bl' (batch last) is for few channels and large kernels on short output rows, where im2col's
copy, in runs of one output row, costs more than its GEMM: LeNet's 6->16 5x5 on 14x14
(batch 64) copies 960k elements in runs of 10 (0.47 ms) for a 0.29 ms GEMM.  With the batch
innermost every run is an output row times the batch (640 elements, 0.09 ms), and the weight
gradient is ``cols @ gy^T`` on the same layout.  ms, one thread, F / W (thread CPU, min of 30,
loaded machine, +-10%):

    shape (N, C->O, k, map)        im2col        bl
    64, 6->16, 5x5, 14x14        0.79 / 0.35   0.52 / 0.35    bl
    32, 6->16, 5x5 pad 2, 10x10  0.46 / 0.19   0.27 / 0.17    bl
    64, 3->8, 5x5, 14x14         0.36 / 0.12   0.24 / 0.12    bl
    64, 16->32, 5x5, 12x12       2.00 / 1.17   2.77 / 1.72    im2col (C*K = 400)
    32, 8->16, 7x7 pad 3, 12x12  1.57 / 1.12   2.17 / 1.41    im2col (C*K = 392)
    64, 1->6, 5x5 pad 2, 28x28   0.46 / 0.19   0.67 / 0.36    im2col (rows of 28)
    32, 16->16, 3x3, 16x16       0.88 / 0.41   0.97 / 0.47    im2col (K = 9)

``T`` of such a layer already ran as one GEMM + col2im with the batch innermost; that GEMM
goes through ``_gemm_wide`` too (0.39 -> 0.31 ms on LeNet's).  ``_BL = False`` restores the
former paths (tests compare both).  Inside a whole ``lenet_step`` the gain shrinks: there the
4 MB im2col is written to memory no cache holds, whatever the run length, so both copies
run at memory speed; A/B in one process (400 interleaved steps, 1 thread, load ~6): step
minimum 7.45-7.97 ms with 'bl' against 7.61-8.49 without, medians within +-2%.
"""
from __future__ import annotations

import itertools
import math

from ..autograd.function import Function
from ._util import need_tensor, scalar_name, c_name
from ._window import windows, add_windows
from . import _workspace as ws
from . import _threads

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "unfold", "fold"]


# ----------------------------------------------------------------------------------------------
# geometry and the array kernels


class _Geom:
    """One convolution's geometry: per spatial dim kernel ``k``, ``stride``, ``dil``, padding
    before/after (``lo``/``hi``), input size ``sp`` and output size ``out``; and ``groups``."""

    __slots__ = ("k", "stride", "dil", "lo", "hi", "sp", "out", "groups", "K", "L")

    def __init__(self, k, stride, dil, lo, hi, sp, out, groups):
        self.k, self.stride, self.dil, self.lo, self.hi = k, stride, dil, lo, hi
        self.sp, self.out, self.groups = sp, out, groups
        self.K = math.prod(k)
        self.L = math.prod(out)




def _padded(xp, x, g: _Geom):
    """``x`` with zeros added before/after each spatial dim (no copy when there are none).

    The copy is a workspace array (``ops/_workspace.py``), reused once nothing refers to it.
    """
    if not any(g.lo) and not any(g.hi):
        return x
    nd = len(g.k)
    lead = x.shape[:-nd]
    shape = lead + tuple(s + a + b for s, a, b in zip(x.shape[-nd:], g.lo, g.hi))
    buf = ws.empty(xp, shape, x.dtype)
    pre = (slice(None),) * len(lead)
    for d, (a, s) in enumerate(zip(g.lo, x.shape[-nd:])):  # zero only the borders
        before = (slice(None),) * d
        buf[pre + before + (slice(0, a),)] = 0
        buf[pre + before + (slice(a + s, None),)] = 0
    inner = tuple(slice(a, a + s) for a, s in zip(g.lo, x.shape[-nd:]))
    _copy(xp, buf[pre + inner], x, max(len(lead) - 1, 0))  # over channels
    return buf


def _im2col(xp, x, g: _Geom, scratch: bool = False):
    """The im2col matrix of ``x`` ``(N, C, *sp)`` as a contiguous ``(N, C*K, L)`` array.

    Rows run over (channel, kernel offset) and columns over output positions, so the copy out
    of the strided window view reads runs of consecutive output positions.  With ``scratch``
    the matrix is a workspace array.
    """
    nd = len(g.k)
    n, c = x.shape[:2]
    xpad = _padded(xp, x, g)
    v = windows(xp, xpad, g.k, g.stride, g.dil)  # (N, C, *out_full, *k)
    if v.shape[2:2 + nd] != g.out:  # output_padding < dilation can leave extra windows
        v = v[(slice(None), slice(None)) + tuple(slice(0, o) for o in g.out)]
    perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    if scratch:
        cols = ws.empty(xp, (n, c * g.K, g.L), x.dtype)
        _copy(xp, cols.reshape((n, c) + g.k + g.out), v.transpose(perm), 0)
    else:
        cols = xp.ascontiguousarray(v.transpose(perm)).reshape(n, c * g.K, g.L)
    return cols


def _col2im(xp, cols, g: _Geom, c: int, batch_last: bool = False):
    """Adjoint of ``_im2col``: sum ``cols`` ``(N, C*K, L)`` into a fresh ``(N, C, *sp)`` array.

    With ``batch_last`` the columns come as ``(C*K, L, N)`` and are summed into a
    ``(C, *padded, N)`` buffer (see ``_conv_tr``).
    """
    nd = len(g.k)
    padded = tuple(s + a + b for s, a, b in zip(g.sp, g.lo, g.hi))
    crop = (slice(None), slice(None)) + tuple(slice(a, a + s) for a, s in zip(g.lo, g.sp))
    win = tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
    if batch_last:
        n = cols.shape[-1]
        v = cols.reshape((c,) + g.k + g.out + (n,))
        v = v.transpose((1 + 2 * nd, 0) + tuple(a - 1 for a in win))
        buf = ws.empty(xp, (c,) + padded + (n,), cols.dtype)
        bt = buf.transpose((nd + 1, 0) + tuple(range(1, nd + 1)))
        _add_windows(xp, v, bt, padded, g, True)
        out = xp.empty((n, c) + g.sp, cols.dtype)
        _copy(xp, out, bt[crop], 1)
        del buf, bt
        return out
    n = cols.shape[0]
    v = cols.reshape((n, c) + g.k + g.out).transpose((0, 1) + win)
    if not any(g.lo) and not any(g.hi):
        out = xp.empty((n, c) + padded, cols.dtype)
        _add_windows(xp, v, out, padded, g, True)
        return out
    buf = ws.empty(xp, (n, c) + padded, cols.dtype)
    _add_windows(xp, v, buf, padded, g, True)
    out = xp.empty((n, c) + g.sp, cols.dtype)
    _copy(xp, out, buf[crop], 1)
    del buf
    return out


def _add_windows(xp, v, out, padded, g: _Geom, zero: bool) -> None:
    """``add_windows`` of ``v`` ``(N, C, *out, *k)`` into ``out`` ``(N, C, *padded)`` (zeroed
    first with ``zero``), split over channels on several threads: a channel's sums are the
    same slice-adds in the same order either way."""
    def part(lo, hi):
        o = out[:, lo:hi]
        if zero:
            o.fill(0)
        add_windows(xp, v[:, lo:hi], padded, g.k, g.stride, g.dil, out=o)
    _threads.rows(part, out.shape[1], v.size + 2 * out.size)


_SHORT_ROW = 16  # output rows shorter than this use the batch-innermost col2im


def _chunk(n: int, per_sample: int) -> int:
    """Samples per im2col block: blocks of at most ``_BLOCK_BYTES`` (at least one sample).

    A whole-batch im2col of a large layer (75 MB for a 3x3 conv of (32, 64, 32, 32)) is
    mmap-ed, page-faulted and unmapped on every call; ~10 MB blocks are recycled by the
    allocator and stay warmer in cache: measured 13% less CPU time for forward and backward of
    that layer, even though the weight gradient then recomputes its im2col block by block.
    """
    return max(1, min(n, _BLOCK_BYTES // max(per_sample, 1)))


_BLOCK_BYTES = 10 << 20


def _flat_chunk(n: int, c: int, cg: int, o: int, g: _Geom, itemsize: int) -> int:
    """Samples per block of the phase-flat engine (``_chunk`` of its largest work arrays)."""
    f = _Flat(g, 1)
    rows = c * f.R + 2 * o if cg == 1 else c * g.K + o
    return max(1, min(n, _FLAT_BLOCK_BYTES // max(rows * f.S * itemsize, 1)))


_FLAT_BLOCK_BYTES = 10 << 20


def _conv_fwd(xp, x, w, g: _Geom, flip: bool = False, keep: bool = True):
    """``F(x, w)``: ``(N, C, *sp)`` * ``(O, C/G, *k)`` -> ``(N, O, *out)``, and the im2col
    (a workspace array) when it was made in one block (else None); Winograd keeps its ``V``
    for the weight gradient only with ``keep`` (and when it fits ``_WINO_BLOCK_BYTES``).

    With ``flip``, ``w`` is a convolution's own ``(C, O/G, *k)`` weight and the kernel is its
    flipped, channel-swapped one (``_conv_tr``): Winograd reads that from ``w`` directly,
    the other algorithms from a flipped copy.
    """
    n, c = x.shape[:2]
    G = g.groups
    o = w.shape[1] * G if flip else w.shape[0]
    if flip and (G > 1 or not n or _algo(c, o, g, x.dtype, n) not in _WINO):
        w, flip = _flipped(xp, w, g), False
    if c == G == o > 1 and n:  # depthwise, one output a group (see NOTE [ Phase-flat ])
        step = _flat_chunk(n, c, 1, o, g, x.dtype.itemsize)
        if step >= n:
            return _flat_fwd(xp, x, w, g)
        y = xp.empty((n, o) + g.out, x.dtype)
        for i in range(0, n, step):
            y[i:i + step], cols = _flat_fwd(xp, x[i:i + step], w, g)
            del cols
        return y, None
    algo = _algo(c, o, g, x.dtype, n)
    if algo in _WINO and n:
        m = _WINO[algo]
        keep = keep and _wino_chunk(n, c, o, g, m, x.dtype.itemsize) >= n
        y = xp.empty((n, o) + g.out, x.dtype)
        v = _wino_fwd(xp, x, _wino_u(xp, w, m, flip), g, m, y, keep)
        return y, v
    w2 = w.reshape(o, -1) if G == 1 else w.reshape(G, o // G, -1)
    step = _chunk(n, c * g.K * g.L * x.dtype.itemsize)
    if n and algo in ("bl", "fold"):
        fwd = _bl_fwd if algo == "bl" else _fold_fwd
        y = xp.empty((n, o) + g.out, x.dtype)
        for i in range(0, n, step):
            cols = fwd(xp, x[i:i + step], w2, g, y[i:i + step])
            if step >= n:
                return y, cols
            del cols
        return y, None
    if step < n and x.dtype.kind in "fc" and x.dtype.name != "bfloat16":
        # blocks of samples: each block's GEMM writes its slice of y (a fresh product per
        # block, copied into y, cost ~5 ms of page faults and copies on ResNet's 7x7 stem)
        y = xp.empty((n, o) + g.out, x.dtype)
        yv = y.reshape(n, o, g.L) if G == 1 else y.reshape(n, G, o // G, g.L)
        for i in range(0, n, step):
            cols = _im2col(xp, x[i:i + step], g, True)
            _bmm(xp, w2, cols if G == 1 else cols.reshape(cols.shape[0], G, -1, g.L),
                 yv[i:i + step])
            del cols
        return y, None
    y = cols = None
    for i in range(0, max(n, 1), step):
        cols = _im2col(xp, x[i:i + step], g, True)
        yi = xp.matmul(w2, cols if G == 1 else cols.reshape(cols.shape[0], G, -1, g.L))
        if step >= n:
            y = yi
            break
        del cols
        if y is None:
            y = xp.empty((n,) + yi.shape[1:], x.dtype)
        y[i:i + step] = yi
    if y.dtype != x.dtype:  # NumPy returns bfloat16 products in float32
        y = y.astype(x.dtype)
    return y.reshape((n, o) + g.out), (cols if step >= n else None)


def _algo(c: int, o: int, g: _Geom, dtype, n=None) -> str:
    """The algorithm of ``F`` and ``W`` for this geometry and batch ``n`` (None: a large one;
    NOTE [ Choosing the algorithm ]): ``'winograd4'``, ``'fold'``, ``'bl'`` or ``'im2col'``
    (``'winograd'``, F(2x2, 3x3), only when forced; depthwise ``'flat'`` is chosen before)."""
    if _FORCE is not None:
        if _FORCE == "bl":
            return "bl" if g.groups == 1 else "im2col"
        if _FORCE not in _WINO or _wino_ok(g, dtype):
            return _FORCE
        return "im2col"
    ck = c // g.groups * g.K
    if _wino_ok(g, dtype) and min(c, o) >= _WINO_C and _WINO_OUT[0] <= min(g.out) and \
            max(g.out) <= _WINO_OUT[1] and (n is None or n * math.prod(_wino_tiles(g, 4)) >=
                                            _WINO_TILES):
        return "winograd4"
    if g.L <= _FOLD_L or (g.L <= _FOLD_L_WIDE and ck >= _FOLD_CK):
        return "fold"
    if _BL and g.groups == 1 and g.K >= _BL_K and ck <= _BL_CK and g.out[-1] <= _BL_ROW:
        return "bl"
    return "im2col"


_FORCE = None  # tests set this to run every algorithm on the same inputs
_FOLD_L, _FOLD_L_WIDE, _FOLD_CK = 16, 256, 512
_BL, _BL_K, _BL_CK, _BL_ROW = True, 25, 200, 12  # _BL = False: never 'bl' (tests: both)
# Faster from 16 channels, but kept from 64: F(4x4)'s float32 error (~5e-6 relative against
# im2col's ~1e-7) moved pytorch/examples' mnist (32->64 channels) one epoch from 1.1% off
# PyTorch's test loss to 10% off (Adadelta at lr 1.0 amplifies it), so below 64 channels,
# where no measured workload gains, numbers stay im2col's
_WINO_C, _WINO_OUT = 64, (4, 128)  # measured: 16-512 channels, 4x4 to 128x128 maps
_WINO_TILES = 16  # 4x4 tiles in the batch at least: fewer cannot pay for U's 36 * C * O
_WINO = {"winograd": 2, "winograd4": 4}  # algorithm -> output tile size m


def _wino_ok(g: _Geom, dtype) -> bool:
    """F(m x m, 3x3) applies: a 2-D 3x3 kernel, unit stride and dilation, one group, real."""
    return g.k == (3, 3) and g.stride == (1, 1) and g.dil == (1, 1) and g.groups == 1 and \
        dtype.kind == "f"


def _bl_cols(xp, x, g: _Geom):
    """The batch-last im2col of ``x`` ``(N, C, *sp)``: a ``(C*K, L*N)`` scratch array, columns
    running over (output position, sample).

    ``x`` is first copied (zero-padded) to ``(C, *padded, N)``, so every row of the im2col is
    copied in runs of a whole output row times the batch (640 elements on LeNet's second layer,
    where ``_im2col`` copies runs of 10: 0.09 against 0.47 ms, one thread).
    """
    nd = len(g.k)
    n, c = x.shape[:2]
    padded = tuple(s + a + b for s, a, b in zip(g.sp, g.lo, g.hi))
    xt = ws.empty(xp, (c,) + padded + (n,), x.dtype)
    if any(g.lo) or any(g.hi):
        xt.fill(0)
    inner = (slice(None),) + tuple(slice(a, a + s) for a, s in zip(g.lo, g.sp))
    _copy(xp, xt[inner], xp.moveaxis(x, 0, -1), 0)
    st = xt.strides
    v = xp.lib.stride_tricks.as_strided(
        xt, (c,) + g.k + g.out + (n,),
        (st[0],) + tuple(st[1 + d] * g.dil[d] for d in range(nd)) +
        tuple(st[1 + d] * g.stride[d] for d in range(nd)) + (st[-1],), writeable=False)
    cols = ws.empty(xp, (c * g.K, g.L * n), x.dtype)
    _copy(xp, cols.reshape((c,) + g.k + g.out + (n,)), v, 0)
    del v, xt
    return cols


_BL_CHUNK = 400  # GEMM columns a call: (16, 150) @ (150, 6400) 0.42 ms whole, 0.31 in 400s


def _gemm_wide(xp, a, b):
    """``a @ b`` for a wide ``b`` ``(K, M)``, in column blocks of ``_BL_CHUNK`` (one batched
    call), into a workspace array: OpenBLAS ran LeNet's ``(16, 150) @ (150, 6400)`` 35% and
    ``(150, 16) @ (16, 6400)`` 25% slower in one piece (one thread)."""
    out = ws.empty(xp, (a.shape[0], b.shape[1]), a.dtype)
    body, rest = _bl_split(xp, b, _BL_CHUNK)
    obody, orest = _bl_split(xp, out, _BL_CHUNK)
    if body.shape[0]:
        xp.matmul(a, body, out=obody)
    if rest.shape[1]:
        xp.matmul(a, rest, out=orest)
    del body, rest, obody, orest
    return out


def _bl_split(xp, a, ch: int):
    """``a`` ``(R, M)`` as ``(M // ch, R, ch)`` column blocks (a strided view) and the rest."""
    r, m = a.shape
    k = m // ch
    body = xp.lib.stride_tricks.as_strided(a, (k, r, ch), (ch * a.itemsize,) + a.strides)
    return body, a[:, k * ch:]


def _bl_fwd(xp, x, w2, g: _Geom, y):
    """``F`` on a block of samples by the batch-last im2col: ``(O, C*K) @ (C*K, L*N)`` in
    column blocks of ``_BL_CHUNK`` (one GEMM over all columns ran 35% slower), the product
    transposed into ``y`` ``(N, O, *out)``; returns the im2col (a scratch array)."""
    n, o = x.shape[0], w2.shape[0]
    cols = _bl_cols(xp, x, g)
    yt = _gemm_wide(xp, w2, cols)
    _copy(xp, y.reshape(n, o, g.L), yt.reshape(o, g.L, n).transpose(2, 0, 1), 1)
    del yt
    return cols


def _bl_wgrad(xp, gy, cols, g: _Geom):
    """``W`` on a block from its batch-last im2col ``(C*K, L*N)``: ``cols @ gy^T`` with
    ``gy^T`` copied to ``(L*N, O)``, in blocks of ``_BL_CHUNK`` rows summed: ``(O, C*K)``."""
    n, o = gy.shape[:2]
    gt = ws.empty(xp, (g.L * n, o), gy.dtype)
    _copy(xp, gt.reshape(g.L, n, o), gy.reshape(n, o, g.L).transpose(2, 0, 1), 0)
    body, rest = _bl_split(xp, cols, _BL_CHUNK)
    k = body.shape[0]
    part = xp.matmul(body, gt[:k * _BL_CHUNK].reshape(k, _BL_CHUNK, o)).sum(0) if k else 0
    if rest.shape[1]:
        part = part + rest @ gt[k * _BL_CHUNK:]
    del gt, body, rest
    return part.T


def _fold_bl(g: _Geom) -> bool:
    """Whether 'fold' lays its columns out batch-last, (output position, sample), as 'bl':
    on maps of up to ``_FOLD_BL_L`` output positions the batch-first im2col copied runs of a
    few elements.  Forward + both gradients, batch 32, float32, one thread, thread CPU, min
    of 10 interleaved (loaded machine), batch-first -> batch-last ms: 512->512 3x3 on 2x2
    23.9 -> 22.5 (F 8.8 -> 7.1), 256->512 stride 2 from 4x4 11.7 -> 11.4, 128->256 stride 2
    from 8x8 12.6 -> 12.5, 128->128 groups 4 on 4x4 3.9 -> 3.1; with L = 64 (64->128 stride 2
    from 16x16) it lost, 15.2 -> 16.2, as the weight gradient's transposed gy then runs in
    elements, not rows.  F makes the same sums over C*K (equal bits on ResNet-18's layers,
    though OpenBLAS's kernels at a block's edge columns may round one differently); W's
    products sum over the columns in the other order (float32 rounding apart).  Not for 1x1
    kernels (one tap: the batch-first copy is a plain gather; 256->512 1x1 stride 2 from 4x4
    2.2 -> 2.6 ms batch-last)."""
    return g.L <= _FOLD_BL_L and g.K > 1


_FOLD_BL_L = 16  # 0: always batch-first (tests compare both)


def _fold_cols(xp, x, g: _Geom):
    """The batch-folded im2col of ``x`` ``(N, C, *sp)``: a ``(C*K, N*L)`` scratch array.

    Rows run over (channel, kernel offset) as in ``_im2col``; columns over (sample, output
    position), so one GEMM covers the whole block of samples, or over (output position,
    sample) where ``_fold_bl``.
    """
    if _fold_bl(g):
        return _bl_cols(xp, x, g)
    nd = len(g.k)
    n, c = x.shape[:2]
    xpad = _padded(xp, x, g)
    v = windows(xp, xpad, g.k, g.stride, g.dil)  # (N, C, *out_full, *k)
    if v.shape[2:2 + nd] != g.out:
        v = v[(slice(None), slice(None)) + tuple(slice(0, o) for o in g.out)]
    perm = (1,) + tuple(range(2 + nd, 2 + 2 * nd)) + (0,) + tuple(range(2, 2 + nd))
    cols = ws.empty(xp, (c * g.K, n * g.L), x.dtype)
    _copy(xp, cols.reshape((c,) + g.k + (n,) + g.out), v.transpose(perm), 1 + nd)
    return cols


def _fold_fwd(xp, x, w2, g: _Geom, y):
    """``F`` on a block of samples as ONE GEMM ``(O, C*K) @ (C*K, N*L)`` (per group), written
    into ``y`` ``(N, O, *out)``; returns the folded im2col (a scratch array)."""
    n = x.shape[0]
    cols = _fold_cols(xp, x, g)
    if w2.ndim == 2:
        yt = _matmul(xp, w2, cols)
    else:
        yt = _matmul(xp, w2, cols.reshape(w2.shape[0], -1, n * g.L))
    o = y.shape[1]
    src = yt.reshape(o, g.L, n).transpose(2, 0, 1) if _fold_bl(g) else \
        yt.reshape(o, n, g.L).transpose(1, 0, 2)
    _copy(xp, y.reshape(n, o, g.L), src, 1, "unsafe")
    del yt, src
    return cols


def _fold_wgrad(xp, gy, cols, g: _Geom):
    """``W`` on a block of samples from its folded im2col ``(C*K, N*L)``: one GEMM
    ``(O, N*L) @ (N*L, C*K)`` per group, as ``(O, C/G*K)`` (or ``(G, O/G, C/G*K)``)."""
    n, o = gy.shape[:2]
    G = g.groups
    if _fold_bl(g):  # gy as (O, L, N), the im2col's column order
        gt = ws.empty(xp, (o, g.L, n), gy.dtype)
        _copy(xp, gt, gy.reshape(n, o, g.L).transpose(1, 2, 0), 0)
    else:
        gt = ws.empty(xp, (o, n, g.L), gy.dtype)
        _copy(xp, gt, gy.reshape(n, o, g.L).transpose(1, 0, 2), 0)
    if G == 1:
        gw = xp.matmul(gt.reshape(o, n * g.L), cols.T)
    else:
        gw = xp.matmul(gt.reshape(G, o // G, n * g.L),
                       cols.reshape(G, -1, n * g.L).transpose(0, 2, 1))
    del gt
    return gw


# Winograd F(m x m, 3x3) (Lavin & Gray, 2016), m = 2 or 4: each m x m output tile of a
# stride-1 3x3 convolution is ``A^T [(G w G^T) * (B^T d B)] A`` of its (m+2)^2 input tile
# ``d``, so the channel sums become (m+2)^2 GEMMs ``(O, C) @ (C, N*T)`` (``T`` tiles a
# sample): 16 products per 4 outputs (m = 2) or 36 per 16 (m = 4) instead of 9 per output.
# Tiles are laid out with the tile offset outermost and channels innermost (``V`` is
# ``((m+2)^2, N*T, C)``), so every GEMM takes row-major operands: the products are tall
# ``(N*T, C) @ (C, O)``, and the input transform ``B^T d B`` and the weight gradient's
# ``A gy A^T`` are two separable GEMMs each, one per tile axis (3x fewer FLOPs than the
# Kronecker product's one GEMM, which the output and weight transforms keep: small there).
# Measured (1 thread, (32, 64, 32, 32) 3x3): F 31.7 -> 27.8 ms, W 18.5 -> 16.5 ms; against
# tiles innermost with Kronecker GEMMs on a transposed operand (the previous layout).
# The passes run block by block of samples (``_wino_nb``: ~384 kB of transformed tiles, one
# sample at 64 channels on 32x32), each block's padded copy, tile gather, two transform GEMMs,
# 36 products and output transform on scratch arrays that stay in L2/L3 (``_WinoScratch``);
# only the forward's ``V``, kept for the weight gradient, is written whole.  Whole-batch pass
# by pass, every pass ran at memory speed: F 29.3 -> 15.3 ms, T 28.8 -> 14.1, the weight
# gradient from a kept ``V`` 17.2 -> 13.3 (1 thread, same layer; the products alone 8.6 ms on
# the whole batch, 5.5 in blocks).  Blocks are split over threads at block boundaries.
_WINO_MATS = {
    2: (((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),           # B^T
        ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1)),             # G
        ((1, 1, 1, 0), (0, 1, -1, -1))),                                        # A^T
    4: (((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
         (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
        ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
         (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1)),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))),
}


def _mat(xp, m: int, which: int, dtype):
    """F(m x m, 3x3)'s 1-D matrix ``which`` (0: B^T, 1: G, 2: A^T) in ``dtype`` (cached)."""
    return _wino_const(xp, m, which, dtype, False)


def _kron(xp, m: int, which: int, dtype):
    """``M (x) M`` of F(m x m, 3x3)'s matrix ``which`` (0: B^T, 1: G, 2: A^T) in ``dtype``:
    the 2-D transform ``M X M^T`` of a row-major flattened tile (cached)."""
    return _wino_const(xp, m, which, dtype, True)


def _wino_const(xp, m, which, dtype, kron):
    # made once per (array module, dtype): np.kron and the casts cost ~0.2 ms a call
    key = (xp, m, which, xp.dtype(dtype), kron)
    a = _WINO_CACHE.get(key)
    if a is None:
        a = xp.asarray(_WINO_MATS[m][which], dtype=xp.float64)
        a = (xp.kron(a, a) if kron else a).astype(dtype)
        a.flags.writeable = False
        _WINO_CACHE[key] = a
    return a


_WINO_CACHE: dict = {}


def _wino_tiles(g: _Geom, m: int):
    return -(-g.out[0] // m), -(-g.out[1] // m)


def _wino_chunk(n: int, c: int, o: int, g: _Geom, m: int, itemsize: int) -> int:
    """Samples whose ``V`` (``(m+2)^2 * max(C, O) * T`` each) fits ``_WINO_BLOCK_BYTES``: the
    forward keeps ``V`` for the weight gradient when the whole batch's fits (measured 105 ->
    87 ms for the (32, 64, 32, 32) conv fwd+bwd, before the cache blocks), else the weight
    gradient recomputes it in blocks of this many samples."""
    th, tw = _wino_tiles(g, m)
    per = (m + 2) ** 2 * max(c, o) * th * tw * itemsize
    return max(1, min(n, _WINO_BLOCK_BYTES // max(per, 1)))


_WINO_BLOCK_BYTES = 20 << 20


def _wino_nb(t: int, tiles: int, c: int, itemsize: int) -> int:
    """Samples per cache block of the Winograd passes: one block's transformed tiles
    (``(m+2)^2 * T * C`` elements) up to ``_WINO_CACHE_BYTES``, at least one sample."""
    return max(1, _WINO_CACHE_BYTES // max(t * t * tiles * c * itemsize, 1))


# A block's scratch arrays (padded samples, gathered tiles, the transform's intermediate,
# products) stay in L2/L3 between the passes over them: one block of 64 channels on 32x32 is
# one sample (590 kB of tiles), measured fastest against 2, 4 and 8 samples (1 thread)
_WINO_CACHE_BYTES = 384 << 10


def _scratch(flat, shape):
    """The first ``prod(shape)`` elements of the 1-d scratch array ``flat`` as ``shape``."""
    return flat[:math.prod(shape)].reshape(shape)


def _pooled(xp, size: int, dtype):
    """A 1-d workspace array of at least ``size`` elements, rounded up to a power of two so
    that the layers of a network share the same few pooled arrays (not one set per layer
    shape; ResNet-18's step peak RSS measured the same either way, 223-226 MB)."""
    return ws.empty(xp, (1 << max(size - 1, 0).bit_length(),), dtype)


class _WinoScratch:
    """One thread's scratch arrays for blocks of up to ``nb`` samples: the samples copied into
    a zero border (``(k, C, *hw)``, the tiles' extent), two arrays that hold the gathered
    tiles and the transforms' intermediates in turn, and (``o``) the products and (``vb``) a
    block's ``V`` where the whole ``V`` is not kept."""

    __slots__ = ("hw", "pitch", "pad", "padv", "a", "b", "p", "v")

    def __init__(self, xp, c: int, o: int, hw, nb: int, t: int, tiles: int, dtype,
                 vb: bool = False):
        big = t * t * nb * tiles * max(c, o)
        self.hw = hw
        # rows one element longer where a channel would span a multiple of 512 bytes: the
        # gather reads the channels of one position at that stride, and at 4 kB (32x32
        # float32) they all fall in one L1 set (gy's tile gather 8.3 -> 3.2 ms, one thread)
        self.pitch = hw[1] + (hw[0] * hw[1] * xp.dtype(dtype).itemsize % 512 == 0)
        self.pad = _pooled(xp, nb * c * hw[0] * self.pitch, dtype)
        self.padv = None
        self.a = _pooled(xp, big, dtype)
        self.b = _pooled(xp, big, dtype)
        self.p = _pooled(xp, t * t * nb * tiles * o, dtype) if o else None
        self.v = _pooled(xp, t * t * nb * tiles * c, dtype) if vb else None

    def padded(self, x, lo):
        """``x`` ``(k, C, h, w)`` copied at offset ``lo`` into the zero border (``x`` itself
        where it fills the tiles' extent)."""
        k, c, h, w = x.shape
        a, b = lo
        if (a, b) == (0, 0) and (h, w) == self.hw and x.strides[1] % 512:
            return x
        buf = self.padv
        if buf is None or buf.shape[0] != k:  # the border is zeroed once per block size
            buf = self.padv = _scratch(self.pad, (k, c, self.hw[0], self.pitch))[
                ..., :self.hw[1]]
            buf[:, :, :a] = 0
            buf[:, :, a + h:] = 0
            buf[:, :, a:a + h, :b] = 0
            buf[:, :, a:a + h, b + w:] = 0
        buf[:, :, a:a + h, b:b + w] = x
        return buf

    def tiles_tf(self, xp, src, m: int, mat, out) -> None:
        """``M d M^T`` of every tile ``d`` of ``src`` (``(k, C, H, W)`` read in ``s x s``
        tiles at stride ``m``, ``s`` = ``mat``'s columns) into ``out`` ``(r*r, k*T, C)``: the
        tiles copied with the offsets outermost and channels innermost, then ``mat`` applied
        along each tile axis, two GEMMs of row-major operands."""
        k, c = src.shape[:2]
        r, s = mat.shape
        th, tw = (src.shape[2] - s) // m + 1, (src.shape[3] - s) // m + 1
        sn, sc, sh, sw = src.strides
        view = xp.lib.stride_tricks.as_strided(src, (s, s, k, th, tw, c),
                                               (sh, sw, sn, m * sh, m * sw, sc),
                                               writeable=False)
        tv = _scratch(self.a, (s, s, k, th, tw, c))
        xp.copyto(tv, view)
        e = _scratch(self.b, (r, s * k * th * tw * c))
        xp.matmul(mat, tv.reshape(s, -1), out=e)
        xp.matmul(mat, e.reshape(r, s, -1), out=out.reshape(r, r, -1))

    def out_tf(self, xp, p, m: int, y, out) -> None:
        """``y`` ``(k, O, *out)`` from the products ``p`` ``((m+2)^2, k*T, O)``: ``A^T p A``
        of every tile, along each tile axis (two GEMMs), copied into place."""
        k, o = y.shape[:2]
        t = m + 2
        th, tw = -(-out[0] // m), -(-out[1] // m)
        at = _mat(xp, m, 2, p.dtype)
        z1 = _scratch(self.a, (t, m, k * th * tw * o))
        xp.matmul(at, p.reshape(t, t, -1), out=z1)
        z2 = _scratch(self.b, (m, m * k * th * tw * o))
        xp.matmul(at, z1.reshape(t, -1), out=z2)
        z6 = z2.reshape(m, m, k, th, tw, o).transpose(2, 5, 3, 0, 4, 1)  # (k, O, th, m, tw, m)
        if (m * th, m * tw) == tuple(out):
            xp.copyto(y.reshape(k, o, th, m, tw, m), z6)
        else:  # the last tiles' extra rows/columns are dropped
            y[...] = z6.reshape(k, o, m * th, m * tw)[:, :, :out[0], :out[1]]


def _wino_blocks(n: int, nb: int, numel: int, make, body) -> None:
    """``body(s, i, k)`` on the blocks ``[i, i + k)`` of ``nb`` samples (the last may be
    shorter), ``s = make()`` a thread's scratch; split over threads at block boundaries, so
    every block is computed alike whatever the thread count (NOTE [ Threads ]).  ``numel``
    is the work in elements of an elementwise pass (``_wino_work``)."""
    def part(lo, hi):
        s = make()
        for i in range(lo, hi, nb):
            body(s, i, min(nb, hi - i))
    _threads.rows(part, n, numel, nb)


def _wino_in(xp, x, g: _Geom, m: int):
    """``V = B^T d B`` of every (m+2)^2 input tile (stride m): ``((m+2)^2, N*T, C)`` scratch,
    channels innermost, so each product ``V_p @ U_p^T`` is a tall GEMM; made in cache blocks
    of samples as in ``_wino_fwd``."""
    n, c = x.shape[:2]
    t = m + 2
    th, tw = _wino_tiles(g, m)
    T = th * tw
    nb = _wino_nb(t, T, c, x.dtype.itemsize)
    v = ws.empty(xp, (t * t, n * T, c), x.dtype)
    bt = _mat(xp, m, 0, x.dtype)

    def make():
        return _WinoScratch(xp, c, 0, (m * th + 2, m * tw + 2), nb, t, T, x.dtype)

    def body(s, i, k):
        s.tiles_tf(xp, s.padded(x[i:i + k], g.lo), m, bt, v[:, i * T:(i + k) * T])

    _wino_blocks(n, nb, _wino_work(t * t * n * T, c), make, body)
    return v


def _wino_work(rows: int, c: int, o: int = 0) -> int:
    """The work of a Winograd pass over ``rows`` transformed tile positions of ``C`` channels
    (and with ``O``, their products) in elements of an elementwise pass, the unit of
    ``_threads.rows``'s threshold: the gather and two transform GEMMs cost ~3 copies of the
    tiles, a product's ``2 * C * O`` FLOPs a row ~10 per copied element.  Counted by the
    elements touched, as before, the 128- and 256-channel layers of ResNet-18 (8x8 and 4x4
    maps: 0.3-0.6M elements, 1-4 ms a pass) ran on one thread at any thread count."""
    return 3 * rows * max(c, o) + rows * c * o // 5


def _wino_u(xp, w, m: int, flip: bool = False):
    """``U_p^T = (G w G^T)_p^T`` of a 3x3 kernel ``w`` ``(O, C, 3, 3)``: ``((m+2)^2, C, O)``.

    With ``flip`` the kernel is ``w``'s flipped, channel-swapped one (``_conv_fwd``):
    ``U^T`` is then ``G`` with its 9 columns reversed times ``w`` as it lies, no copy.
    """
    a, b = w.shape[:2]
    kg = _kron(xp, m, 1, w.dtype)
    if flip:  # kernel (b, a, 3, 3): U^T[p, a, b] = sum_k G[p, 8 - k] w[a, b, k]
        return xp.matmul(xp.ascontiguousarray(kg[:, ::-1]), w.reshape(a * b, 9).T).reshape(
            -1, a, b)
    # the small copy of w (9 per pair) instead of one of U (36 per pair)
    wt = ws.empty(xp, (b, a, 9), w.dtype)
    _copy(xp, wt, w.reshape(a, b, 9).transpose(1, 0, 2), 0)
    u = xp.matmul(kg, wt.reshape(b * a, 9).T).reshape(-1, b, a)
    del wt
    return u


def _wino_fwd(xp, x, ut, g: _Geom, m: int, y, keep: bool = True):
    """Winograd ``F`` on a batch with ``U^T`` ``ut`` (``_wino_u``), written into ``y``; returns
    ``V`` (scratch) with ``keep``, else None.

    Block by cache block of samples (``_wino_nb``), the input transform, the (m+2)^2 products
    ``V_p @ U_p^T`` and the output transform run while the block's arrays are in cache: whole
    batch pass by pass, the transforms ran at memory speed (F of (32, 64, 32, 32) 29 -> 16 ms
    with one thread; see NOTE [ Choosing the algorithm ]).
    """
    n, c = x.shape[:2]
    o = ut.shape[2]
    t = m + 2
    th, tw = _wino_tiles(g, m)
    T = th * tw
    nb = _wino_nb(t, T, max(c, o), x.dtype.itemsize)
    v = ws.empty(xp, (t * t, n * T, c), x.dtype) if keep else None
    bt = _mat(xp, m, 0, x.dtype)

    def make():
        return _WinoScratch(xp, c, o, (m * th + 2, m * tw + 2), nb, t, T, x.dtype, not keep)

    def body(s, i, k):
        vb = v[:, i * T:(i + k) * T] if keep else _scratch(s.v, (t * t, k * T, c))
        s.tiles_tf(xp, s.padded(x[i:i + k], g.lo), m, bt, vb)
        p = _scratch(s.p, (t * t, k * T, o))
        xp.matmul(vb, ut, out=p)
        s.out_tf(xp, p, m, y[i:i + k], g.out)

    _wino_blocks(n, nb, _wino_work(t * t * n * T, c, o), make, body)
    return v


def _wino_wgrad(xp, x, gy, g: _Geom, m: int, v=None):
    """Winograd ``W`` (the adjoint in ``w``): ``G^T [sum_tiles (A gy A^T) * V] G``, the tile sum
    as (m+2)^2 GEMMs ``(O, N*T) @ (N*T, C)``; ``V`` is the forward's when it kept it."""
    n, c = x.shape[:2]
    o = gy.shape[1]
    t = m + 2
    vi = _wino_in(xp, x, g, m) if v is None else v
    dy = _wino_gy(xp, gy, g, m)
    z = _matmul(xp, dy.transpose(0, 2, 1), vi)  # ((m+2)^2, O, C)
    del dy
    if v is None:
        del vi
    gw = xp.matmul(z.reshape(t * t, o * c).T, _kron(xp, m, 1, z.dtype))
    del z
    return gw.reshape(o, c, 3, 3)


def _wino_gy(xp, gy, g: _Geom, m: int):
    """``A gy A^T`` of every m x m tile of ``gy`` (zeros completing the last ones), laid out as
    ``V``: ``((m+2)^2, N*T, O)`` scratch, made in cache blocks as ``_wino_in``."""
    n, o = gy.shape[:2]
    t = m + 2
    th, tw = _wino_tiles(g, m)
    T = th * tw
    dy = ws.empty(xp, (t * t, n * T, o), gy.dtype)
    a = _mat(xp, m, 2, gy.dtype).T  # A: (m+2, m)
    nb = _wino_nb(t, T, o, gy.dtype.itemsize)

    def make():
        return _WinoScratch(xp, o, 0, (m * th, m * tw), nb, t, T, gy.dtype)

    def body(s, i, k):
        s.tiles_tf(xp, s.padded(gy[i:i + k], (0, 0)), m, a, dy[:, i * T:(i + k) * T])

    _wino_blocks(n, nb, _wino_work(t * t * n * T, o), make, body)
    return dy


def _conv_tr(xp, gy, w, g: _Geom):
    """``T(gy, w)``: the adjoint of ``F`` in ``x``, ``(N, O, *out)`` -> ``(N, C, *sp)``."""
    n = gy.shape[0]
    o = w.shape[0]
    G = g.groups
    cg = w.shape[1]
    nd = len(g.k)
    span = tuple(d * (k - 1) for d, k in zip(g.dil, g.k))
    full = None
    if cg * G >= o and all(s == 1 for s in g.stride) and \
            all(a + b == s for a, b, s in zip(g.lo, g.hi, span)) and g.out == g.sp:
        full = _Geom(g.k, g.stride, g.dil, tuple(s - a for s, a in zip(span, g.lo)),
                     tuple(s - b for s, b in zip(span, g.hi)), g.out, g.sp, G)
    if full is not None and (cg == 1 < G or _algo(o, G * cg, full, gy.dtype, n) != "fold"):
        # Unit stride, 'same'-sized output: the adjoint is the 'same' convolution of gy with the
        # flipped kernel, channels swapped -- one im2col and GEMM, ~25% faster than GEMM +
        # col2im + crop on the (32, 64, 32, 32) 3x3 conv.  Its im2col has O*K rows where
        # col2im's has C*K, so only when O <= C.  Not where that convolution would be 'fold':
        # there GEMM + col2im with the batch innermost is one GEMM too, without the flipped
        # copy of the kernel (measured 10.6 -> 7.8 ms on (32, 512, 2, 2), one thread)
        gx, cols = _conv_fwd(xp, gy, w, full, flip=True, keep=False)
        del cols
        return gx
    if (cg == 1 < G or any(s > 1 for s in g.stride) and g.out[-1] >= _SHORT_ROW) and n:
        # (a strided dense T with short output rows is one GEMM + col2im with the batch
        # innermost instead: 6.2 -> 4.4 ms for 128 -> 256 3x3 stride 2 on (32, 128, 8, 8))
        step = _flat_chunk(n, G * cg, cg, o, g, gy.dtype.itemsize)
        if step >= n:
            return _flat_tr(xp, gy, w, g)
        gx = xp.empty((n, G * cg) + g.sp, gy.dtype)
        for i in range(0, n, step):
            gx[i:i + step] = _flat_tr(xp, gy[i:i + step], w, g)
        return gx
    wt = w.reshape(G, o // G, cg * g.K).transpose(0, 2, 1)  # BLAS reads it transposed
    step = _chunk(n, G * cg * g.K * g.L * gy.dtype.itemsize)
    if step >= n:
        return _conv_tr_block(xp, gy, wt, g)
    gx = xp.empty((n, G * cg) + g.sp, gy.dtype)
    for i in range(0, n, step):
        gx[i:i + step] = _conv_tr_block(xp, gy[i:i + step], wt, g)
    return gx


def _conv_tr_block(xp, gy, wt, g: _Geom):
    """``T`` on one block of samples by GEMM and col2im; ``wt`` is ``(G, C/G*K, O/G)``."""
    n = gy.shape[0]
    G, cgk, og = wt.shape
    c = G * cgk // g.K
    if n > 1 and g.out[-1] < _SHORT_ROW:
        # Short output rows: col2im's slice-adds over (N, C, *out) would run along rows of a
        # few elements; with the batch innermost they run along whole (row, batch) blocks
        # (measured 2.2 ms -> 0.9 ms on LeNet's second layer, (64, 16, 10, 10) from 5x5).
        gt = ws.empty(xp, (G, og, g.L, n), gy.dtype)
        _copy(xp, gt, gy.reshape(n, G, og, g.L).transpose(1, 2, 3, 0), 1)
        if G == 1 and _BL and gy.dtype.kind == "f" and gy.dtype.itemsize >= 4 and \
                cgk <= _BL_CK:
            # column blocks as measured on LeNet (C*K = 150); with ResNet-18's strided
            # layers' 576 and 1152 rows one GEMM was 7-10% faster (3.71 -> 3.34 ms on 64 ->
            # 128 3x3 stride 2 from 16x16, 3.22 -> 3.00 on 128 -> 256 from 8x8; one thread)
            cols = _gemm_wide(xp, wt[0], gt.reshape(og, g.L * n))
        else:
            cols = _matmul(xp, wt, gt.reshape(G, og, g.L * n))
        del gt
        gx = _col2im(xp, cols.reshape(G * cgk, g.L, n), g, c, True)
    else:
        cols = _matmul(xp, wt[0], gy.reshape(n, og, g.L)) if G == 1 else \
            _matmul(xp, wt, gy.reshape(n, G, og, g.L))
        gx = _col2im(xp, cols.reshape(n, G * cgk, g.L), g, c)
    del cols
    return gx


def _copy(xp, dst, src, axis: int, casting: str = "same_kind") -> None:
    """``copyto(dst, src)``, split along ``axis`` over threads when large (NOTE [ Threads ]:
    the gathers, transposes and scatters around the GEMMs, which BLAS threads itself).

    A copy touches ``2 * dst.size`` elements; one that reads runs shorter than ``_RUN``
    elements (a transpose, a gather of short rows) counts 4x: NumPy's copy of LeNet's
    ``(16, 100, 64)`` GEMM output transposed took 6x a contiguous copy's time."""
    pre = (slice(None),) * axis
    run = src.shape[-1] if src.ndim and src.strides[-1] == src.itemsize else 1
    _threads.rows(lambda lo, hi: xp.copyto(dst[pre + (slice(lo, hi),)],
                                           src[pre + (slice(lo, hi),)], casting=casting),
                  dst.shape[axis], 2 * dst.size * (4 if run < _RUN else 1))


_RUN = 64


def _flipped(xp, w, g: _Geom):
    """The kernel of ``T`` as a convolution: ``w`` ``(O, C/G, *k)`` channel-swapped per group
    and flipped, ``(C, O/G, *k)``."""
    G = g.groups
    o, cg = w.shape[:2]
    wf = w.reshape((G, o // G, cg) + g.k).swapaxes(1, 2).reshape((G * cg, o // G) + g.k)
    return xp.ascontiguousarray(wf[(Ellipsis,) + (slice(None, None, -1),) * len(g.k)])


def _matmul(xp, a, b):
    """``a @ b`` (broadcast over leading dims) into a workspace array of ``a``'s dtype."""
    shape = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if a.dtype != b.dtype or a.dtype.kind not in "fc" or a.dtype.name == "bfloat16":
        return xp.matmul(a, b).astype(a.dtype, copy=False)
    out = ws.empty(xp, shape, a.dtype)
    _bmm(xp, a, b, out)
    return out


def _bmm(xp, a, b, out) -> None:
    """``matmul(a, b, out=out)``, a batch of products split along ``out``'s leading axis over
    threads when large (NOTE [ Threads ]; an operand without that axis is shared).

    Each product is the same BLAS call either way, run on one BLAS thread inside the split
    (``_threads.rows``), so the bits do not depend on the thread count.  OpenBLAS threads
    every product of a batch on its own, a hand-off and a join per product: at two threads
    on the 2-core machine at load 5.5, the 36 products of Winograd's weight gradient took a
    median of 22-44 ms against 6-9 ms split by products (ResNet-18's 64/128/256-channel
    layers; process CPU 13-23 ms against ~6 ms), but at load ~3 1.95-2.44 against 2.46-3.38
    (best 1.6-2.2 against 1.9-2.6): so only on a loaded machine (``_BMM_SPLIT``, NOTE
    [ BLAS under load ]).
    """
    split = _BMM_SPLIT if _BMM_SPLIT is not None else _threads.loaded()
    if out.ndim < 3 or out.shape[0] < 2 or not split:
        xp.matmul(a, b, out=out)
        return
    nd = out.ndim
    k = a.shape[-1]

    def cut(v, lo, hi):
        return v[lo:hi] if v.ndim == nd and v.shape[0] > 1 else v

    def part(lo, hi):
        xp.matmul(cut(a, lo, hi), cut(b, lo, hi), out=out[lo:hi])
    # the work in elements of an elementwise pass: ~10 FLOPs each (as _wino_work)
    _threads.rows(part, out.shape[0], out.size * k // 5, blas1=True)


# Off: at two threads the split won only on a heavily loaded machine.  resnet18_step, old
# paths against these, alternating with torch in one process: at load 5.5-6.7 best 1.22 ->
# 0.80x torch, median 1.02 -> 0.59x; at load 2.5-3.5 best 1.44 -> 1.54x (median 1.17 ->
# 1.21), and the 36 W products alone 1.6-2.2 -> 1.9-2.6 ms (best of 40): with a core to
# spare, OpenBLAS's spinning workers take each product at once, where the ops worker has to
# be woken.  True splits, False does not (tests run both); None: split while the machine is
# loaded (``_threads.loaded``, NOTE [ BLAS under load ]), where OpenBLAS's joins stall.
_BMM_SPLIT = None


def _conv_wgrad(xp, x, gy, g: _Geom, cols=None):
    """``W(x, gy)``: the adjoint of ``F`` in ``w``, giving ``(O, C/G, *k)``.

    ``cols`` is the forward's im2col of the whole batch when it made one (else recomputed
    block by block, see ``_chunk``).
    """
    n, c = x.shape[:2]
    o = gy.shape[1]
    G = g.groups
    if c == G > 1 and n:
        step = _flat_chunk(n, c, 1, o, g, x.dtype.itemsize)
        gw = None
        for i in range(0, n, step):
            part = _flat_wgrad(xp, x[i:i + step], gy[i:i + step], g)
            gw = part if gw is None else gw + part
        if gw.dtype != x.dtype:
            gw = gw.astype(x.dtype)
        return gw.reshape((o, 1) + g.k)
    algo = _algo(c, o, g, x.dtype, n)  # the forward's choice: cols is its work array
    if algo in _WINO and n:
        m = _WINO[algo]
        step = max(n, 1) if cols is not None else _wino_chunk(n, c, o, g, m, x.dtype.itemsize)
        gw = None
        for i in range(0, n, step):
            part = _wino_wgrad(xp, x[i:i + step], gy[i:i + step], g, m, cols)
            gw = part if gw is None else gw + part
        return gw.astype(x.dtype, copy=False)
    step = max(n, 1) if cols is not None else _chunk(n, c * g.K * g.L * x.dtype.itemsize)
    folded = n and algo == "fold"
    gw = None
    for i in range(0, n, step):
        if n and algo == "bl":
            ci = cols if cols is not None else _bl_cols(xp, x[i:i + step], g)
            part = _bl_wgrad(xp, gy[i:i + step], ci, g)
            if cols is None:
                del ci
            gw = part if gw is None else gw + part
            continue
        if folded:
            ci = cols if cols is not None else _fold_cols(xp, x[i:i + step], g)
            part = _fold_wgrad(xp, gy[i:i + step], ci, g)
            if cols is None:
                del ci
            gw = part if gw is None else gw + part
            continue
        ci = cols if cols is not None else _im2col(xp, x[i:i + step], g, True)
        gi = gy[i:i + step]
        m = gi.shape[0]
        if _WGRAD_NN and c // G * g.K >= _WGRAD_NN_CK and g.L <= _WGRAD_NN_L:
            part = _wgrad_nn(xp, gi, ci, g)
            if cols is None:
                del ci
            gw = part if gw is None else gw + part
            continue
        if G == 1:
            prod = _matmul(xp, gi.reshape(m, o, g.L), ci.transpose(0, 2, 1))
        else:
            prod = _matmul(xp, gi.reshape(m, G, o // G, g.L),
                           ci.reshape(m, G, c // G * g.K, g.L).transpose(0, 1, 3, 2))
        if cols is None:
            del ci
        part = prod.sum(0)
        del prod
        gw = part if gw is None else gw + part
    if gw is None:  # an empty batch
        gw = xp.zeros((o, c // G * g.K), x.dtype)
    if gw.dtype != x.dtype:
        gw = gw.astype(x.dtype)
    return gw.reshape((o, c // G) + g.k)


def _wgrad_nn(xp, gy, cols, g: _Geom):
    """``W`` on one block from its im2col ``(N, C*K, L)`` as ``cols @ gy^T``, per sample
    ``(C/G*K, L) @ (L, O/G)`` with ``gy^T`` copied contiguous, summed over the batch and
    transposed: ``(O, C/G*K)`` (or ``(G, O/G, C/G*K)``).

    ``gy @ cols^T`` reads the large operand transposed, which OpenBLAS ran at ~40% of its GEMM
    rate on LeNet's second layer ((64, 16, 100) @ (64, 100, 150): 0.79 ms, against 0.27 ms for
    this product plus 0.04 ms for the copy of ``gy``; one thread).  Measured over 14 shapes
    (ms, one thread, old -> new): it wins where ``C/G*K >= 128`` and ``L <= 256`` (LeNet's
    6->16 5x5 0.79 -> 0.34, 16->16 3x3 16x16 0.94 -> 0.41, 64->64 3x3 groups 4 8x8
    1.00 -> 0.44, 16->32 3x3 12x12 1.35 -> 0.64) and loses with few rows (LeNet's 1->6 5x5,
    C*K = 25: 0.19 -> 0.46; 3->16 3x3: 0.09 -> 0.15) and on the 7x7 stem (C*K = 147,
    L = 1024: 12.0 -> 16.3), so the old product stays there.
    """
    m, o = gy.shape[:2]
    G = g.groups
    gt = ws.empty(xp, (m, G, g.L, o // G), gy.dtype)
    xp.copyto(gt, gy.reshape(m, G, o // G, g.L).transpose(0, 1, 3, 2))
    prod = _matmul(xp, cols.reshape(m, G, -1, g.L), gt)  # (N, G, C/G*K, O/G)
    del gt
    part = prod.sum(0).transpose(0, 2, 1)
    del prod
    return part[0] if G == 1 else part


_WGRAD_NN = True  # False: the former ``gy @ cols^T`` everywhere (tests compare both)
_WGRAD_NN_CK, _WGRAD_NN_L = 128, 256


# ----------------------------------------------------------------------------------------------
# the phase-flat engine: grouped, depthwise and strided convolutions


class _Flat:
    """Layout of a block of ``n`` samples for the phase-flat engine (NOTE [ Phase-flat ] above).

    The zero-padded input is split into ``R = prod(stride)`` phases (``xpad[..., r::s]``), each
    ``(N, *Q)`` with ``Q = ceil(padded / stride)`` and flattened, channels first: ``(C, R, M)``
    with ``M = N * prod(Q)``.  Output ``o`` of sample ``n`` sits at flat position
    ``n * prod(Q) + ravel(o, Q)``; kernel offset ``k`` reads phase ``r[k]`` shifted by ``t[k]``,
    so every offset is ONE contiguous slice ``[t, t + M)`` of a phase row.
    """

    __slots__ = ("Q", "S", "R", "M", "tail", "offs", "n")

    def __init__(self, g: _Geom, n: int):
        padded = tuple(s + a + b for s, a, b in zip(g.sp, g.lo, g.hi))
        self.Q = tuple(-(-p // s) for p, s in zip(padded, g.stride))
        self.S = math.prod(self.Q)
        self.R = math.prod(g.stride)
        self.n = n
        self.M = n * self.S
        qs = [1] * len(self.Q)
        for d in range(len(self.Q) - 2, -1, -1):
            qs[d] = qs[d + 1] * self.Q[d + 1]
        rs = [1] * len(g.stride)
        for d in range(len(g.stride) - 2, -1, -1):
            rs[d] = rs[d + 1] * g.stride[d + 1]
        offs = []
        for kk in itertools.product(*(range(k) for k in g.k)):
            pos = [d * k for d, k in zip(g.dil, kk)]
            offs.append((sum((p % s) * r for p, s, r in zip(pos, g.stride, rs)),
                         sum((p // s) * q for p, s, q in zip(pos, g.stride, qs))))
        self.offs = offs
        self.tail = max(t for _, t in offs)


def _phase_slices(g: _Geom, f: _Flat):
    """For each phase: its index, and the (phase-grid, input) slices of the input it holds."""
    for rr in itertools.product(*(range(s) for s in g.stride)):
        dst, src = [], []
        for r, s, lo, size in zip(rr, g.stride, g.lo, g.sp):
            q0 = max(0, -(-(lo - r) // s))
            q1 = -(-(lo + size - r) // s)
            if q1 <= q0:
                break
            dst.append(slice(q0, q1))
            start = s * q0 + r - lo
            src.append(slice(start, start + s * (q1 - q0 - 1) + 1, s))
        else:
            yield (sum(r * math.prod(g.stride[d + 1:]) for d, r in enumerate(rr)),
                   tuple(dst), tuple(src))


def _to_flat(xp, x, g: _Geom, f: _Flat):
    """``x`` ``(N, C, *sp)`` as the zero-padded phase-flat ``(C, R, M + tail)`` (scratch)."""
    c = x.shape[1]
    buf = ws.empty(xp, (c, f.R, f.M + f.tail), x.dtype)
    buf.fill(0)
    xt = x.swapaxes(0, 1)
    for r, dst, src in _phase_slices(g, f):
        buf[:, r, :f.M].reshape((c, f.n) + f.Q)[(slice(None), slice(None)) + dst] = \
            xt[(slice(None), slice(None)) + src]
    return buf


def _from_flat(xp, buf, g: _Geom, f: _Flat):
    """Adjoint of ``_to_flat`` (each input position lies in one phase): ``(N, C, *sp)``."""
    c = buf.shape[0]
    x = xp.empty((f.n, c) + g.sp, buf.dtype)
    if 0 in g.sp:
        return x
    xt = x.swapaxes(0, 1)
    for r, dst, src in _phase_slices(g, f):
        xt[(slice(None), slice(None)) + src] = \
            buf[:, r, :f.M].reshape((c, f.n) + f.Q)[(slice(None), slice(None)) + dst]
    return x


def _out_from_flat(xp, yf, g: _Geom, f: _Flat):
    """The valid outputs of ``yf`` ``(O, M)``, as ``(N, O, *out)``."""
    o = yf.shape[0]
    v = yf.reshape((o, f.n) + f.Q)[(slice(None), slice(None)) + tuple(slice(0, a) for a in g.out)]
    return v.swapaxes(0, 1).copy()  # a copy even when contiguous: yf goes back to the pool


def _out_to_flat(xp, gy, g: _Geom, f: _Flat):
    """``gy`` ``(N, O, *out)`` as ``(O, M)``, zero off the valid outputs (scratch)."""
    o = gy.shape[1]
    buf = ws.empty(xp, (o, f.M), gy.dtype)
    if g.out != f.Q:
        buf.fill(0)
    buf.reshape((o, f.n) + f.Q)[(slice(None), slice(None)) +
                                tuple(slice(0, a) for a in g.out)] = gy.swapaxes(0, 1)
    return buf


def _flat_fwd(xp, x, w, g: _Geom):
    """Depthwise ``F`` (``w`` ``(O, 1, *k)``) on a block of samples: ``(N, O, *out)``, None.

    Used for one output channel a group: with a channel multiplier (``O = 2C``) the batched
    GEMMs stay faster (measured 3.9 vs 4.5 ms on (32, 64, 16, 16) -> 128); with one group
    (``C_in = 1``) they are one GEMM (LeNet's first layer: 0.5 vs 2.1 ms).

    ``K`` broadcast multiply-adds over whole phase rows, instead of ``N * G`` GEMMs of one-row
    matrices (measured 5.6 ms -> 4.5 ms forward on (32, 128, 16, 16) 3x3).
    """
    n, c = x.shape[:2]
    o = w.shape[0]
    G = g.groups
    og = o // G
    f = _Flat(g, n)
    xb = _to_flat(xp, x, g, f)
    w3 = w.reshape(G, og, g.K)
    yf = ws.empty(xp, (G, og, f.M), x.dtype)
    tmp = ws.empty(xp, (G, og, f.M), x.dtype)
    for k, (r, t) in enumerate(f.offs):
        xp.multiply(xb[:, r, None, t:t + f.M], w3[:, :, k, None], out=tmp if k else yf)
        if k:
            yf += tmp
    del tmp, xb
    y = _out_from_flat(xp, yf.reshape(o, f.M), g, f)
    del yf
    return y, None


def _flat_tr(xp, gy, w, g: _Geom):
    """``T`` on a block of samples with the phase-flat engine: ``(N, C, *sp)``."""
    n = gy.shape[0]
    o, cg = w.shape[:2]
    G = g.groups
    og = o // G
    f = _Flat(g, n)
    gyf = _out_to_flat(xp, gy, g, f).reshape(G, og, f.M)
    gxb = ws.empty(xp, (G * cg, f.R, f.M + f.tail), gy.dtype)
    gxb.fill(0)
    gxg = gxb.reshape(G, cg, f.R, -1)
    if cg == 1:
        w3 = w.reshape(G, og, g.K)
        tmp = ws.empty(xp, (G, 1, f.M), gy.dtype)
        for k, (r, t) in enumerate(f.offs):
            if og == 1:
                xp.multiply(gyf, w3[:, :, k, None], out=tmp)
                gxg[:, :, r, t:t + f.M] += tmp
            else:
                part = _matmul(xp, w3[:, None, :, k], gyf)
                gxg[:, :, r, t:t + f.M] += part
                del part
        del tmp
    else:
        wt = w.reshape(G, og, cg * g.K).transpose(0, 2, 1)
        colsg = _matmul(xp, wt, gyf).reshape(G, cg, g.K, f.M)
        for k, (r, t) in enumerate(f.offs):
            gxg[:, :, r, t:t + f.M] += colsg[:, :, k]
        del colsg
    del gyf
    gx = _from_flat(xp, gxb, g, f)
    del gxb
    return gx


def _flat_wgrad(xp, x, gy, g: _Geom):
    """Depthwise ``W`` on a block of samples: ``(G, O/G, K)``, one batched dot per offset."""
    n = x.shape[0]
    o = gy.shape[1]
    G = g.groups
    f = _Flat(g, n)
    gyf = _out_to_flat(xp, gy, g, f).reshape(G, o // G, f.M)
    xb = _to_flat(xp, x, g, f)
    gw = xp.empty((G, o // G, g.K), x.dtype)
    for k, (r, t) in enumerate(f.offs):
        gw[:, :, k] = xp.matmul(gyf, xb[:, r, t:t + f.M, None])[..., 0]
    del xb, gyf
    return gw

class _Cols:
    """The forward's im2col, handed to the weight gradient once (not a saved tensor).

    ``_ConvWeight`` gets this holder, not the array, and empties it: a graph that recorded the
    call (``make_fx``) keeps the emptied holder as its constant, so replayed on other inputs the
    weight gradient makes its im2col from its own ``x`` (given the array, a replay used the
    traced inputs' im2col: a wrong weight gradient).  Two emptied holders are equal, so
    ``ember.compile`` can take one capture's constant for another's (its size-generic regions).
    """

    __slots__ = ("cols",)

    def __init__(self, cols):
        self.cols = cols

    def __eq__(self, other):
        return self is other or type(other) is _Cols and self.cols is None is other.cols

    __hash__ = object.__hash__

    def take(self):
        c, self.cols = self.cols, None
        return c


# ----------------------------------------------------------------------------------------------
# the three Functions (NOTE [ Convolution as three bilinear maps ])


def _bias_dims(nd):
    return (0,) + tuple(range(2, 2 + nd))


def _bias_grad(gy, nd: int):
    """The bias gradient ``gy.sum((0, 2, ...))``: by ``_BiasGrad`` where it applies."""
    if gy.dtype.is_floating_point and gy.element_size() >= 4 and gy.numel() and \
            gy.is_contiguous():
        return _BiasGrad.apply(gy)
    return gy.sum(_bias_dims(nd))


class _BiasGrad(Function):
    """``sum(gy, (0, 2, ...))`` of a contiguous float32/float64 ``gy`` ``(N, O, *out)``.

    One matrix-vector product over the ``(N*O, L)`` rows, then a sum over the batch: NumPy's
    sum over (0, 2, 3) ran 2.9-3.8x slower (LeNet's ``(64, 6, 28, 28)`` 56 -> 19.5 us,
    ``(64, 16, 10, 10)`` 36 -> 9.6 us; torch 20 and 8; one thread).  PyTorch names the node of
    this gradient as of the other two, ``ConvolutionBackwardBackward0``.
    """

    raw = True
    backward_name = "ConvolutionBackwardBackward0"

    @staticmethod
    def forward(ctx, gy):
        xp = ctx.xp
        if ctx._record:
            ctx.shape = gy.shape
        n, o = gy.shape[:2]
        rows = gy.reshape(n * o, -1)
        return (rows @ xp.ones(rows.shape[1], gy.dtype)).reshape(n, o).sum(0)

    @staticmethod
    def backward(ctx, h):
        shape = ctx.shape
        return h.reshape((1, -1) + (1,) * (len(shape) - 2)).expand(shape)


def _conv_dtypes(x, w, b) -> None:
    """PyTorch's errors for mixed dtypes; raised in forward, after autocast has cast them."""
    if x.dtype != w.dtype:
        raise RuntimeError(f"expected scalar type {scalar_name(x.dtype)} but found "
                           f"{scalar_name(w.dtype)}")
    if b is not None and b.dtype != x.dtype:
        raise RuntimeError(f"Input type ({c_name(x.dtype)}) and bias type ({c_name(b.dtype)}) "
                           f"should be the same")


def _half(xp, *arrays):
    """float16/bfloat16 arrays in float32, for float32 GEMMs rounded once at the end (NumPy
    has no half-precision BLAS; PyTorch's cpu convolutions accumulate them in float32)."""
    return [a if a is None or a.dtype.itemsize != 2 or a.dtype.kind not in "fV"
            else a.astype(xp.float32) for a in arrays]


class _Conv(Function):
    """``F(x, w) + b``."""

    raw = True
    backward_name = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, x, w, b, g):
        _conv_dtypes(x, w, b)
        xc, wc, bc = _half(ctx.xp, x, w, b)
        with _threads.blas_one():  # NOTE [ BLAS under load ]
            y, cols = _conv_fwd(ctx.xp, xc, wc, g, keep=ctx._record)
        if bc is not None:
            y += bc.reshape((-1,) + (1,) * len(g.k))
        if ctx._record:
            ctx.geom = g
            ctx.cols = _Cols(cols)
            ctx.save_for_backward(x, w)
        else:
            del cols
        return y if y.dtype == x.dtype else y.astype(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        g = ctx.geom
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = _ConvInputGrad.apply(gy, w, None, g) if need_x else None
        gw = _ConvWeight.apply(x, gy, g, ctx.cols) if need_w else None
        ctx.cols.take()  # (frees the im2col where no weight gradient took it)
        gb = _bias_grad(gy, len(g.k)) if need_b else None
        return gx, gw, gb, None


class _ConvTranspose(Function):
    """``T(g, w) + b``: conv_transpose, and the input gradient of ``_Conv``."""

    raw = True
    backward_name = "ConvolutionBackward0"

    @staticmethod
    def forward(ctx, gy, w, b, g):
        _conv_dtypes(gy, w, b)
        gc, wc, bc = _half(ctx.xp, gy, w, b)
        with _threads.blas_one():
            x = _conv_tr(ctx.xp, gc, wc, g)
        if bc is not None:
            x += bc.reshape((-1,) + (1,) * len(g.k))
        if ctx._record:
            ctx.geom = g
            ctx.save_for_backward(gy, w)
        return x if x.dtype == gy.dtype else x.astype(gy.dtype)

    @staticmethod
    def backward(ctx, h):
        gy, w = ctx.saved_tensors
        g = ctx.geom
        need_g, need_w, need_b = ctx.needs_input_grad[:3]
        dg = _Conv.apply(h, w, None, g) if need_g else None
        dw = _ConvWeight.apply(h, gy, g, None) if need_w else None
        db = _bias_grad(h, len(g.k)) if need_b else None
        return dg, dw, db, None


class _ConvInputGrad(_ConvTranspose):
    """``T`` as the input gradient of a convolution (PyTorch names that node so)."""

    backward_name = "ConvolutionBackwardBackward0"


class _ConvWeight(Function):
    """``W(x, g)``: the weight gradient of ``_Conv``."""

    raw = True
    backward_name = "ConvolutionBackwardBackward0"

    @staticmethod
    def forward(ctx, x, gy, g, held):
        cols = held.take() if held is not None else None
        if ctx._record:
            ctx.geom = g
            ctx.save_for_backward(x, gy)
        xc, gc = _half(ctx.xp, x, gy)
        if cols is not None and cols.dtype != xc.dtype:
            cols = None
        with _threads.blas_one():
            gw = _conv_wgrad(ctx.xp, xc, gc, g, cols)
        return gw if gw.dtype == x.dtype else gw.astype(x.dtype)

    @staticmethod
    def backward(ctx, h):
        x, gy = ctx.saved_tensors
        g = ctx.geom
        need_x, need_g = ctx.needs_input_grad[:2]
        dx = _ConvTranspose.apply(gy, h, None, g) if need_x else None
        dg = _Conv.apply(x, h, None, g) if need_g else None
        return dx, dg, None, None


# ----------------------------------------------------------------------------------------------
# argument handling


def _tuple(v, nd: int, name: str) -> tuple:
    """An int or a length-``nd`` sequence as a tuple of ints (PyTorch's expand_param_if_needed)."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1 and nd != 1:
            return tuple(int(v[0]) for _ in range(nd))
        if len(v) != nd:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {nd} "
                               f"values to match the convolution dimensions, but got "
                               f"{name}={list(v)}")
        return tuple(int(a) for a in v)
    return (int(v),) * nd


def _ntuple(v, nd: int) -> tuple:
    """``v`` repeated ``nd`` times unless it is already a sequence (torch's ``_pair`` etc.)."""
    if isinstance(v, (tuple, list)):
        return tuple(v)
    return (v,) * nd


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _check(fn, nd, x, w, b, stride, padding, dilation, groups, transposed=False,
           output_padding=None):
    """PyTorch's argument checks (ConvUtils.h), in its order; returns the batched input dims."""
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to "
                           f"{fn}, but got input of size: {_shape_str(x.shape)}")
    if w.ndim != nd + 2:
        raise RuntimeError(f"Expected {nd + 2}-dimensional weight for {nd + 2}-dimensional "
                           f"input {_shape_str(x.shape if x.ndim == nd + 2 else (1,) + x.shape)}"
                           f", but got {w.ndim}-dimensional weight of size "
                           f"{_shape_str(w.shape)} instead")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got {list(dilation)}")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if transposed and any(p < 0 for p in output_padding):
        raise RuntimeError("negative output_padding is not supported")
    xs = x.shape if x.ndim == nd + 2 else (1,) + x.shape
    if w.shape[0] % groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size [{_shape_str(w.shape)}] "
                           f"instead")
    if transposed:
        if xs[1] != w.shape[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {_shape_str(w.shape)}, "
                               f"expected input{_shape_str(xs)} to have {w.shape[0]} channels, "
                               f"but got {xs[1]} channels instead")
        cout = w.shape[1] * groups
        if b is not None and (b.ndim != 1 or b.shape[0] != cout):
            raise RuntimeError(f"Given transposed=1, weight of size {_shape_str(w.shape)}, "
                               f"expected bias to be 1-dimensional with {cout} elements, but "
                               f"got bias of size {_shape_str(b.shape)} instead")
        for op, s, d in zip(output_padding, stride, dilation):
            if op >= s and op >= d:
                raise RuntimeError(
                    "output padding must be smaller than either stride or dilation, but got "
                    + " ".join(f"output_padding_{a}: {v}" for a, v in zip(_AXES[nd],
                                                                        output_padding))
                    + " " + " ".join(f"stride_{a}: {v}" for a, v in zip(_AXES[nd], stride))
                    + " " + " ".join(f"dilation_{a}: {v}" for a, v in zip(_AXES[nd],
                                                                       dilation)))
    else:
        if xs[1] != w.shape[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {_shape_str(w.shape)}, "
                               f"expected input{_shape_str(xs)} to have {w.shape[1] * groups} "
                               f"channels, but got {xs[1]} channels instead")
        if b is not None and (b.ndim != 1 or b.shape[0] != w.shape[0]):
            raise RuntimeError(f"Given weight of size {_shape_str(w.shape)}, expected bias to be "
                               f"1-dimensional with {w.shape[0]} elements, but got bias of size "
                               f"{_shape_str(b.shape)} instead")
    if x.dtype.kind == "b":  # (mixed dtypes are checked in forward, after autocast)
        raise NotImplementedError("\"slow_conv2d_cpu\" not implemented for 'Bool'")
    return xs


_AXES = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def _sizes_str(sizes) -> str:
    return "(" + " x ".join(str(s) for s in sizes) + ")"


def _conv(fn, nd, input, weight, bias, stride, padding, dilation, groups):
    need_tensor(input, fn)
    need_tensor(weight, fn, "weight", 2)
    if bias is not None:
        need_tensor(bias, fn, "bias", 3)
    x, w = input._data, weight._data
    b = None if bias is None else bias._data
    stride = _tuple(stride, nd, "stride")
    dilation = _tuple(dilation, nd, "dilation")
    same = False
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        elif padding == "same":
            same = True
            padding = (0,) * nd
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        padding = _tuple(padding, nd, "padding")
    if same and any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    xs = _check(fn, nd, x, w, b, stride, padding, dilation, groups)
    k = tuple(w.shape[2:])
    sp = tuple(xs[2:])
    if same:
        # PyTorch pads d*(k-1) in all, the odd one out on the right (_convolution_mode)
        lo = tuple(d * (kk - 1) // 2 for d, kk in zip(dilation, k))
        hi = tuple(d * (kk - 1) - a for d, kk, a in zip(dilation, k, lo))
    else:
        lo = hi = padding
    padded = tuple(s + a + c for s, a, c in zip(sp, lo, hi))
    span = tuple(d * (kk - 1) + 1 for d, kk in zip(dilation, k))
    if any(p < s for p, s in zip(padded, span)):
        raise RuntimeError(f"Calculated padded input size per channel: {_sizes_str(padded)}. "
                           f"Kernel size: {_sizes_str(span)}. Kernel size can't be greater "
                           f"than actual input size")
    out = tuple((p - s) // st + 1 for p, s, st in zip(padded, span, stride))
    g = _Geom(k, stride, dilation, lo, hi, sp, out, groups)
    if x.ndim == nd + 2:
        return _Conv.apply(input, weight, bias, g)
    return _Conv.apply(input.unsqueeze(0), weight, bias, g).squeeze(0)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation of ``(N, C_in, L)`` with ``weight`` ``(C_out, C_in/groups, k)``.

    ``padding`` is an int, a tuple or ``'valid'``/``'same'`` (as ``torch.nn.functional``).
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation of ``(N, C_in, H, W)`` with ``weight`` ``(C_out, C_in/G, kH, kW)``.

    ``out[n, o, p] = bias[o] + sum_{c, k} weight[o, c, k] * input[n, g(o)*C_in/G + c,
    stride*p + dilation*k - padding]`` (zero outside the input), ``g(o)`` the group of ``o``.
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D cross-correlation of ``(N, C_in, D, H, W)`` with ``weight`` ``(C_out, C_in/G, *k)``."""
    return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(fn, nd, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    need_tensor(input, fn)
    need_tensor(weight, fn, "weight", 2)
    if bias is not None:
        need_tensor(bias, fn, "bias", 3)
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    x, w = input._data, weight._data
    b = None if bias is None else bias._data
    stride = _tuple(stride, nd, "stride")
    padding = _tuple(padding, nd, "padding")
    dilation = _tuple(dilation, nd, "dilation")
    output_padding = _tuple(output_padding, nd, "output_padding")
    xs = _check(fn, nd, x, w, b, stride, padding, dilation, groups, True, output_padding)
    k = tuple(w.shape[2:])
    inp = tuple(xs[2:])
    sp = tuple((i - 1) * s - 2 * p + d * (kk - 1) + op + 1 for i, s, p, d, kk, op in
               zip(inp, stride, padding, dilation, k, output_padding))
    if any(s <= 0 for s in sp):
        raise RuntimeError(f"Given input size per channel: {_sizes_str(inp)}. Calculated output "
                           f"size per channel: {_sizes_str(sp)}. Output size is too small")
    # the adjoint of the convolution (in_channels <- out_channels) of an ``sp``-sized input
    g = _Geom(k, stride, dilation, padding, padding, sp, inp, groups)
    if x.ndim == nd + 2:
        return _ConvTranspose.apply(input, weight, bias, g)
    return _ConvTranspose.apply(input.unsqueeze(0), weight, bias, g).squeeze(0)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """1-D transposed convolution (the input gradient of conv1d); ``weight`` ``(C_in, C_out/G, k)``.

    Output length ``(L - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1``.
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """2-D transposed convolution (conv2d's input gradient); ``weight`` ``(C_in, C_out/G, *k)``."""
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """3-D transposed convolution (conv3d's input gradient); ``weight`` ``(C_in, C_out/G, *k)``."""
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


# ----------------------------------------------------------------------------------------------
# unfold / fold (im2col / col2im of 2-D images)


class _Im2Col(Function):
    """``(N, C, H, W)`` -> ``(N, C*kH*kW, L)`` sliding blocks."""

    raw = True
    backward_name = "Im2ColBackward0"

    @staticmethod
    def forward(ctx, x, g):
        ctx.geom = g
        if x.ndim == 3:  # unbatched (C, H, W): one node, as PyTorch's
            return _im2col(ctx.xp, x[None], g)[0]
        return _im2col(ctx.xp, x, g)

    @staticmethod
    def backward(ctx, gc):
        g = ctx.geom
        return _Col2Im.apply(gc, g), None


class _Col2Im(Function):
    """``(N, C*kH*kW, L)`` -> ``(N, C, H, W)``, overlapping blocks summed."""

    raw = True
    backward_name = "Col2ImBackward0"

    @staticmethod
    def forward(ctx, cols, g):
        ctx.geom = g
        if cols.ndim == 2:  # unbatched (C*K, L)
            return _col2im(ctx.xp, cols[None], g, cols.shape[0] // g.K)[0]
        return _col2im(ctx.xp, cols, g, cols.shape[1] // g.K)

    @staticmethod
    def backward(ctx, gx):
        return _Im2Col.apply(gx, ctx.geom), None


def _fold_args(kernel_size, dilation, padding, stride):
    k = _ntuple(kernel_size, 2)
    d = _ntuple(dilation, 2)
    p = _ntuple(padding, 2)
    s = _ntuple(stride, 2)
    for name, v, low in (("kernel", k, 1), ("dilation", d, 1), ("padding", p, 0),
                         ("stride", s, 1)):
        if len(v) != 2:
            raise RuntimeError(f"It is expected {name}_size equals to 2, but got size {len(v)}"
                               if name == "kernel" else
                               f"It is expected {name} equals to 2, but got size {len(v)}")
        if any(a < low for a in v):
            what = {"kernel": "kernel size", "padding": "padding"}.get(name, name)
            rel = "non-negative" if low == 0 else "greater than zero"
            raise RuntimeError(f"{what} should be {rel}, but got "
                               + ", ".join(f"{what.split()[0]}_{a}: {v[i]}" for i, a in
                                           enumerate(("height", "width"))))
    return tuple(int(a) for a in k), tuple(int(a) for a in d), tuple(int(a) for a in p), \
        tuple(int(a) for a in s)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of a ``(N, C, H, W)`` (or ``(C, H, W)``) image as columns:
    ``(N, C * prod(kernel_size), L)`` with ``L`` blocks (im2col)."""
    need_tensor(input, "unfold")
    x = input._data
    if x.ndim not in (3, 4):
        if x.ndim < 3:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-max(x.ndim, 1)}, {max(x.ndim, 1) - 1}], but got {x.ndim})")
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got "
                           f"{x.ndim}D)")
    k, d, p, s = _fold_args(kernel_size, dilation, padding, stride)
    sp = x.shape[-2:]
    out = tuple((i + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for i, pp, dd, kk, ss in zip(sp, p, d, k, s))
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given input with spatial size ({sp[0]}, {sp[1]}), "
                           f"kernel_size=({k[0]}, {k[1]}), dilation=({d[0]}, {d[1]}), "
                           f"padding=({p[0]}, {p[1]}), calculated shape of the array of sliding "
                           f"blocks as ({out[0]}, {out[1]}), but its components must be at "
                           f"least one.")
    return _Im2Col.apply(input, _Geom(k, s, d, p, p, tuple(sp), out, 1))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Sum sliding local blocks ``(N, C * prod(kernel_size), L)`` back into an image
    ``(N, C, *output_size)`` (col2im; the adjoint of ``unfold``)."""
    need_tensor(input, "fold")
    x = input._data
    if x.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 "
                           f"batch size and non-zero dimensions for input, but got: "
                           f"{_shape_str(x.shape)}")
    osz = _ntuple(output_size, 2)
    if len(osz) != 2:
        raise RuntimeError(f"It is expected output_size equals to 2, but got size {len(osz)}")
    osz = tuple(int(a) for a in osz)
    k, d, p, s = _fold_args(kernel_size, dilation, padding, stride)
    K = k[0] * k[1]
    if x.shape[-2] % K:
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the product "
                           f"of kernel_size, but got input.size(1)={x.shape[-2]} and "
                           f"kernel_size=({k[0]}, {k[1]}).")
    out = tuple((i + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for i, pp, dd, kk, ss in zip(osz, p, d, k, s))
    if any(o < 1 for o in out):
        raise RuntimeError(f"Given output_size=({osz[0]}, {osz[1]}), kernel_size=({k[0]}, "
                           f"{k[1]}), dilation=({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), "
                           f"stride=({s[0]}, {s[1]}), calculated shape of the array of sliding "
                           f"blocks as ({out[0]}, {out[1]}), but its components must be at "
                           f"least one.")
    if x.shape[-1] != out[0] * out[1]:
        raise RuntimeError(f"Given output_size=({osz[0]}, {osz[1]}), kernel_size=({k[0]}, "
                           f"{k[1]}), dilation=({d[0]}, {d[1]}), padding=({p[0]}, {p[1]}), "
                           f"stride=({s[0]}, {s[1]}), expected size of input's dimension 2 to "
                           f"match the calculated number of sliding blocks {out[0]} * {out[1]} "
                           f"= {out[0] * out[1]}, but got input.size(2)={x.shape[-1]}.")
    return _Col2Im.apply(input, _Geom(k, s, d, p, p, osz, out, 1))
