"""Normalisation ops: batch, layer, group, instance, RMS and local-response norm.

NOTE [ Fused normalisation ]
``batch_norm``, ``layer_norm`` and ``group_norm`` are one graph node each (one Function, as
PyTorch's ``NativeBatchNormBackward0`` etc.): forward computes the statistics and the affine
map on arrays, backward uses the closed form

    dx = inv_std * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)),   g_hat = g * weight

A plain backward evaluates it on arrays (a handful of passes, no per-op overhead), forming
``x - mean`` again in the buffer that becomes ``dx``: the forward allocates one full-size
array, the backward one (two with a weight outside batch norm: ``g * weight``), as fresh
multi-MB arrays cost page faults worth several passes; nothing but ``x`` and the statistics
is kept, as in PyTorch.  Under
``create_graph`` the same formula is written with ember ops and the statistics are recomputed
from ``x`` with ember ops, so their dependence on ``x`` is in the graph and higher derivatives
are exact.  Half-precision inputs are normalised in float32, as PyTorch does.
Each op views its input in a "work" shape where the statistics reduce over ``stat`` axes and
the weight broadcasts from ``wshape``; the weight/bias gradients reduce over ``paxes``:

    batch_norm  (N, C, S)       stat (0, 2)  weight (C, 1)       paxes (0, 2)  (= stat)
    layer_norm  (R, K)          stat (1,)    weight (K,)         paxes (0,)
    group_norm  (N, G, C/G, S)  stat (2, 3)  weight (G, C/G, 1)  paxes (0, 3)

When ``paxes == stat`` (batch norm) the weight folds into the per-channel scale and the
sums behind ``dweight``/``dbias`` are reused for ``dx``.  Layer norm's plain backward
(``_rows_grads``) writes all four of its sums as matrix-vector products on ``g`` and
``g * (x - mean)`` (BLAS), with no ``x_hat`` pass: fwd + bwd of GPT-mini's (16, 64, 128)
float32 layer norm went from 2.37x to 2.10x torch's thread CPU time at one thread.  A pass
with a broadcast (R, 1) or (K,) operand costs ~2x a same-shape one (one short inner loop per
row), so layer norm's forward (``_rows_normalized``) and backward expand their per-row and
per-column factors into full arrays with rank-2 GEMMs (``_rank2``: NumPy's matmul with an
inner size of 1 misses BLAS) and run same-shape passes only: forward 1.95x -> ~1.7x torch,
fwd + bwd 2.6x -> 2.0x (one thread, thread CPU, loaded machine; switches ``_FAST_FWD`` and
``_RANK2_BWD``).  The variance is two-pass on the centred rows except where each row's mean is
within its spread (NOTE [ One-pass variance ]: forward ~1.5x -> ~1.33x torch).  Batch
norm's passes run on (N, C*S) rows with per-channel factors repeated into one row (NOTE
[ Batch norm on flat rows ]).

Inside a training step the same calls cost ~2-2.5x their time on hot arrays: GPT-mini's 5
layer norms take ~1.2-1.5 ms forward and ~1.6-1.9 ms backward per step (thread time, one
thread, loaded machine; ~110 and ~180 us per call alone), torch's ~0.5 and ~0.6 ms; each
pass then pays for arrays the step's GEMMs pushed out of cache (a py-spy profile puts layer
norm at ~10% of the compiled step, GEMMs at ~65%).  Tried there and not kept (A/B alternating
steps in one process, 40-60 steps, min and median): a forward of row-broadcast passes with no
scratch array (``y = x - mean``, two-pass variance on ``y``, ``y *= inv``, ``*= w``, ``+= b``)
and the one-pass forward against the two-pass one were within noise; a backward with the
per-row factors as broadcasts (``x * c1``, ``+ c0``) within noise; a backward expanding its
three factors by one (3R, 2) GEMM into a 1.5 MB block 1.6-1.7 -> 2.1 ms (the larger scratch).
Where the in-step time goes (per call, min of 30 steps): forward ~290 us of which the first
write of the scratch block (~50 us, 12 hot) and of the output (~43, 19 hot) and the row dots
with the small per-row ops (~65); backward ~340 us, of which ``p = g * x`` into a cold block
(~62) and the first write of the fresh ``dx`` (~58): first touches of cold memory, not
arithmetic.  Also tried there and not kept (issue 17): a scratch array held by the op itself
(one per shape, so always the same memory): the backward's ``p`` whole, unchanged; the
forward's two factors as one K = 3 GEMM into an (R, 2K) array read as strided halves, 1.45 ->
1.9 ms per step, or by 256-row blocks, unchanged; the backward by 256-row blocks 1.7 -> 1.9
ms; the workspace handing out the block released last (hot) first, unchanged; BLAS's GEMM
with ``beta = 1`` (ctypes, as ``_blas.axpy``) adding the rank-2 shift into ``y`` itself (no
scratch) and the ``c0`` term into ``dx``: forward 1.14-1.18 -> 1.20 ms, backward 1.53-1.60 ->
1.67-1.81 ms per step (min of 60; OpenBLAS's update of a cold (1024, 128) ``C`` took 86 us
against 69 for the scratch product and add, 18 against 24 hot); and ``ember.compile``
folding a layer norm into the linear that alone reads it,
``z = [x inv, -mean inv, 1] @ [(W * g)^T; (W @ g)^T; (W @ b + c)^T]`` (norm1 -> in-projection,
norm2 -> FF1, final norm -> head: the norm's output never formed, no bias pass; the relu
after FF1 written over the fused result): the five forwards together -0.4 ms per step, but
the backward's weight gradient from the (N, K + 2) product needs three passes
over (N, K) to undo the folding (``(M_xs + M_shift) * g + dc b``), +0.3-0.4 ms, the whole
step within noise (A/B of two compiled steps in one process, 30-40 interleaved steps, one
thread, loaded machine), so it was not kept.  PyTorch's kernels make one pass each way; so
does ``ember.compile(fn, options={"numba": True})`` (NOTE [ Layer-norm kernels ]).
Passes over (R, K) memory per call, counting each array an operation reads or writes: the
NumPy forward 10 (``x`` read by the mean's GEMV and the row dots, two rank-2 GEMMs writing the
scratch, ``y = x * s`` and ``y += s``), the backward 22 (``p = g * x``, four GEMVs reading
``g`` or ``p``, three rank-2 GEMMs and four binary passes; each binary NumPy operation reads
two arrays and writes one, so that formula has no shorter spelling); the numba kernels 2 and 3
(read ``x``, write ``y``; read ``g`` and ``x``, write ``dx``).
"""
from __future__ import annotations

import collections
import math

from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._tensor import Tensor, _make
from ._util import need_tensor, scalar_name, is_float
from . import _threads
from . import _kernels
from . import _workspace as ws

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm",
           "local_response_norm"]

# ---- shared forward/backward ---------------------------------------------------------------

class _Layout(collections.namedtuple(
        "_Layout", "work sub red pred stat paxes kshape wshape pshape fold")):
    """How an op views its input (NOTE [ Fused normalisation ]).

    ``work``: the shape the input is viewed in; ``sub``: its einsum letters; ``red``/``pred``:
    the letters kept by the statistics' / the parameter gradients' reductions (``stat`` and
    ``paxes`` are the reduced axes); ``kshape``: the statistics' keepdims shape; ``wshape``:
    the weight's broadcast shape in ``work``; ``pshape``: the weight's own shape; ``fold``:
    the parameter reduction is the statistics' one (batch norm).
    """


def _reduce(xp, lay, a, b=None, out=None):
    """Sum of ``a`` (or ``a * b``) over the axes whose letters ``out`` drops (the statistics').

    einsum reduces several axes in one pass without the temporary ``a * b`` (numpy's
    ``sum`` over a short last axis is several times slower); with ``b`` and reduced trailing
    axes a batched matmul of rows is faster still.  A plain sum over leading or
    trailing axes is a matrix-vector product with ones instead: BLAS, ~4x less call
    overhead than einsum on a layer norm's (64, 256).
    """
    out = out or lay.red
    if b is None:
        k = len(out)
        if a.size and lay.sub[:k] == out:
            m = math.prod(a.shape[k:])
            return xp.matmul(a.reshape(-1, m), _ones(xp, m, a.dtype))
        if a.size and lay.sub[-k:] == out:
            m = math.prod(a.shape[:-k])
            return xp.matmul(_ones(xp, m, a.dtype), a.reshape(m, -1))
        return xp.einsum(f"{lay.sub}->{out}", a)
    sub = lay.sub
    k = len(sub)
    while k and sub[k - 1] not in out:
        k -= 1
    m = math.prod(a.shape[k:])
    if k and m >= 16 and a.flags.c_contiguous and b.flags.c_contiguous:
        # the trailing reduced axes as one batched dot product per row: BLAS, ~1.7x faster
        # than einsum's two-operand loop on a batch norm's (32, 64, 1024)
        # Each row's dot is its own BLAS call, so rows split over threads give the same bits
        # (NOTE [ Threads ]); the sum over the leading axis stays on one thread.
        lead = a.shape[:k]
        r = math.prod(lead)
        a3, b3 = a.reshape(r, 1, m), b.reshape(r, m, 1)
        d = xp.empty((r, 1, 1), xp.result_type(a, b))
        rr = r // lead[0] if lead[0] else 0
        _threads.rows(lambda lo, hi: xp.matmul(a3[lo * rr:hi * rr], b3[lo * rr:hi * rr],
                                               out=d[lo * rr:hi * rr]), lead[0], 2 * a.size)
        d = d.reshape(lead)
        return d if sub[:k] == out else xp.einsum(f"{sub[:k]}->{out}", d)
    return xp.einsum(f"{sub},{sub}->{out}", a, b)


_ONES: dict = {}


def _ones(xp, m, dtype):
    """A cached vector of ``m`` ones (read only)."""
    key = (xp, m, dtype)
    v = _ONES.get(key)
    if v is None:
        if len(_ONES) >= 64:
            _ONES.clear()
        v = _ONES[key] = xp.ones(m, dtype)
    return v


def _up(a):
    """Half-precision arrays in float32, the precision PyTorch computes their statistics in."""
    return a if a is None or a.dtype.itemsize >= 4 else a.astype("float32")


def _empty(xp, shape, lay, dtype):
    """A fresh array of ``shape`` and its view in ``lay.work``.

    Results own their memory: a view would be copied once more on landing in a leaf's
    ``.grad``.
    """
    a = xp.empty(shape, dtype)
    return a, a.reshape(lay.work)


def _stats(xp, lay, xw, eps, shape):
    """Centred input (as ``shape`` and as ``lay.work``), mean, biased variance, 1/sqrt(var +
    eps) (in ``lay.kshape``) and, for batch norm, the mean's residual ``mean(x - mean)``.

    Batch norm's float32 sums run over many large values (a channel of a whole batch): the
    residual makes its mean as exact as a float32 can hold (PyTorch accumulates in double),
    which the backward's ``x - mean`` relies on.  The centred input is left as ``x - mean``;
    the caller folds the residual into the shift.
    """
    n = xw.size // math.prod(lay.kshape) if xw.size else 1
    mean = (_reduce(xp, lay, xw) / n).reshape(lay.kshape)
    xc_full, xc = _empty(xp, shape, lay, xw.dtype)
    _passes(lay, xw, lambda lo, hi: xp.subtract(xw[lo:hi], mean, out=xc[lo:hi]))
    var = (_reduce(xp, lay, xc, xc) / n).reshape(lay.kshape)
    res = None
    if lay.fold and xw.size:
        res = (_reduce(xp, lay, xc) / n).reshape(lay.kshape)
        var -= res * res  # mean((xc - res)^2)
        xp.maximum(var, 0, out=var)
        mean = mean + res
    inv = 1.0 / xp.sqrt(var + eps)
    return xc_full, xc, mean, var, inv, res


def _passes(lay, a, fn) -> None:
    """``fn(lo, hi)`` over row blocks of the work-shaped ``a``: split over threads for batch
    norm (NOTE [ Threads ]), whose statistics broadcast along the rows; one call otherwise."""
    if lay.fold:
        _threads.rows(fn, a.shape[0], a.size)
    else:
        fn(0, a.shape[0])


def _affine(y, scale, shift) -> None:
    """``y = y * scale + shift`` in place (``shift`` may be None)."""
    y *= scale
    if shift is not None:
        y += shift


def _dx(xc, f, s0, g, scale) -> None:
    """Batch norm's ``dx = scale * (g - s0 + xc * f)`` in place of the centred input ``xc``."""
    xc *= f
    xc -= s0
    xc += g
    xc *= scale


# NOTE [ Batch norm on flat rows ]
# Batch norm's (N, C, S) passes with (1, C, 1) per-channel operands run one inner loop of S
# elements per (n, c) row with a stride-0 operand: ~1.6x a same-shape pass at S = 1024 and far
# worse on small maps ((32, 512, 2, 2) float32 forward took 1.8x torch's thread CPU time).
# Viewed as (N, C*S) rows instead, each per-channel factor is repeated S times into one
# (C*S,) row (1/N of the array), which NumPy broadcasts over the N rows with inner loops of
# C*S elements (an in-place pass with such a row costs no more than a same-shape one).  The
# per-channel sums are two GEMVs (``1_N @ a`` over the batch, then ``(C, S) @ 1_S``), the sums
# of products row dot products (``_reduce``; below S = 16 a workspace product and GEMVs), and
# dx is formed in place of the centred input by four row passes, no scratch array.  Same
# formulas as the (N, C, S) path (two-pass variance with the mean's residual; dx from the
# centred input), so the results agree to rounding.  Thread CPU at one thread, ember/torch,
# old -> flat (A/B in one process, best of 30, loaded machine): forward (32, 64, 32, 32)
# 0.58 -> 0.48, (32, 128, 8, 8) 0.72 -> 0.47, (32, 256, 4, 4) 1.42 -> 1.00, (32, 512, 2, 2)
# 1.81 -> 0.61; backward 1.32 -> 1.32, 1.87 -> 1.41, 2.55 -> 2.05, 0.42 -> 0.16 (then
# 1.20 at (32, 64, 32, 32) with NOTE [ Uncentred batch norm backward ]); eval forward 2.07 ->
# 1.14, 3.19 -> 1.96 at (32, 128, 8, 8).  In the workloads (thread CPU per step, one thread):
# resnet_block's two batch norms 17.3 -> 12.5 ms (fwd + bwd), resnet18_step's 28.4 -> 21.3.
# Instance norm (batch norm of (1, N*C, S)) takes it as one row.  Inputs that are not
# C-contiguous in (N, C, S) (channels_last) take the old path; _FLAT = False keeps it always
# (tests run both).
_FLAT = True

# NOTE [ Uncentred batch norm backward ]
# The flat backward needs sum(g * (x - mean)) and dx = scale * (g + (x - mean) * f + o) per
# channel.  Where every channel's mean is within its spread (mean^2 <= var + eps, from the
# saved 1/std: conv outputs and most activations), both are taken on x itself:
# sum(g * x) - mean * sum(g) and x * f + (o - mean * f), which saves the pass forming x - mean
# (a full read and write).  Each loses at most about (1 + |mean| / std) <= 2 units of the
# rounding of the centred form; any other channel (or NaN) sends the call to the centred
# passes.  _UNCENTRED = False keeps them always (tests run both).
_UNCENTRED = True


def _flat(lay, xw) -> bool:
    """Whether batch norm's ``xw`` (work shape) takes the flat-row path."""
    return _FLAT and lay.fold and xw.size and xw.flags.c_contiguous


def _chan_sum(xp, a2, c, s, ones_s):
    """Per-channel sums (C,) of an (N, C*S) array: two GEMVs (one for a single row, as
    instance norm's (1, N*C, S)) per block of ``_chan_block`` channels, on this thread (OpenBLAS
    threads a large GEMV by its outputs: the same bits at any thread count; NOTE [ Threads ])."""
    nb = a2.shape[0]
    cb = _chan_block(c, s)
    if _threads.num_threads() > 1 and _threads.loaded():
        # blocks OpenBLAS does not thread: its joins stall on a loaded machine, and the count
        # is not ember's to set here (NOTE [ BLAS under load ]); each sum is the same call
        cb = min(cb, max(4, (_GEMV_THREADED - 1) // max(nb * s, 1) // 4 * 4))
    ones_n = _ones(xp, nb, a2.dtype) if nb > 1 else None
    if cb >= c:  # one block
        r = xp.matmul(ones_n, a2) if nb > 1 else a2
        return xp.matmul(r.reshape(c, s), ones_s)
    out = xp.empty(c, xp.result_type(a2, ones_s))

    def part(lo, hi):
        for i in range(lo, hi, cb):
            j = min(i + cb, hi)
            r = a2[:, i * s:j * s]
            r = xp.matmul(ones_n, r) if nb > 1 else r.reshape(-1)
            xp.matmul(r.reshape(j - i, s), ones_s, out=out[i:j])
    part(0, c)
    return out


def _chan_block(c: int, s: int) -> int:
    """Channels a block of ``_chan_sum``: ``_CHAN_COLS`` columns, in whole groups of 4
    channels (the GEMV kernel's rows), at least 4."""
    return min(c, max(4, _CHAN_COLS // max(s, 1) // 4 * 4))


# Columns a block: its rows stay in cache for the second GEMV.  (32, 64, 32, 32), one
# thread, both GEMVs: float32 140 -> 94 us, float64 502 -> 198 (blocks of 4096 columns);
# smaller arrays were as fast or faster in one call ((32, 128, 8, 8) 30 us, 40 in two
# blocks), so they keep it
_CHAN_COLS = 16384
# OpenBLAS 0.3.31 threads a GEMV from M * N >= 460,800 (NOTE [ Batch-1 linear by GEMV ])
_GEMV_THREADED = 460800


def _rowvec(xp, v, s):
    """A per-channel (C,) vector repeated into a (C*S,) row."""
    return xp.repeat(v.reshape(-1), s)


def _chan_dot(xp, lay, a2, b2):
    """Per-channel sums (C,) of ``a * b`` over (N, C*S) rows: row dot products (BLAS, no
    product array) where S is long enough for them, else the product in a workspace block
    and two GEMVs."""
    nb, c, s = lay.work
    if s >= 16:
        return _reduce(xp, lay, a2.reshape(lay.work), b2.reshape(lay.work)).reshape(c)
    t = ws.empty(xp, a2.shape, a2.dtype)
    _threads.rows(lambda lo, hi: xp.multiply(a2[lo:hi], b2[lo:hi], out=t[lo:hi]), nb,
                  3 * a2.size)
    return _chan_sum(xp, t, c, s, _ones(xp, s, a2.dtype))


def _flat_normalized(xp, x, xw, w, b, lay, eps):
    """Batch norm's training forward on (N, C*S) rows (NOTE [ Batch norm on flat rows ]):
    ``(y, mean, var, inv)``, the statistics in ``lay.kshape``."""
    nb, c, s = lay.work
    dt = xw.dtype
    x2 = xw.reshape(nb, c * s)
    ones_s = _ones(xp, s, dt)
    n = nb * s
    mean = _chan_sum(xp, x2, c, s, ones_s) / n
    y = xp.empty(x2.shape, dt)
    mrow = _rowvec(xp, mean, s)
    # (each pass counts the elements it reads and writes, NOTE [ Threads ]'s threshold)
    _threads.rows(lambda lo, hi: xp.subtract(x2[lo:hi], mrow, out=y[lo:hi]), nb,
                  2 * x2.size)
    var = _chan_dot(xp, lay, y, y) / n
    res = _chan_sum(xp, y, c, s, ones_s) / n
    var -= res * res  # mean((xc - res)^2)
    xp.maximum(var, 0, out=var)
    mean = mean + res
    inv = 1.0 / xp.sqrt(var + eps)
    scale = inv if w is None else inv * w.reshape(-1)
    shift = -res * scale
    if b is not None:
        shift += b.reshape(-1)
    srow, hrow = _rowvec(xp, scale, s), _rowvec(xp, shift, s)
    _threads.rows(lambda lo, hi: _affine(y[lo:hi], srow, hrow), nb, 4 * x2.size)
    ks = lay.kshape
    return (y.reshape(x.shape).astype(x.dtype, copy=False), mean.reshape(ks), var.reshape(ks),
            inv.reshape(ks))


def _flat_grads(xp, lay, gw, xw, mu, inv, w, need_x, need_w, need_b, pdt):
    """Batch norm's (dx array, dweight, dbias) on (N, C*S) rows (NOTE [ Batch norm on flat
    rows ]): ``dx = scale * (g - sum(g) / n - xc * inv^2 * sum(g * xc) / n)`` by four passes
    with (C*S,) rows, in place of the centred input ``xc`` or from ``x`` itself (NOTE
    [ Uncentred batch norm backward ])."""
    nb, c, s = lay.work
    dt = xw.dtype
    g2, x2 = gw.reshape(nb, c * s), xw.reshape(nb, c * s)
    n = nb * s
    inv = inv.reshape(-1)
    sg = _chan_sum(xp, g2, c, s, _ones(xp, s, dt))
    gb = _result(sg, lay.pshape, pdt) if need_b else None
    if not (need_x or need_w):
        return None, None, gb
    mu = mu.reshape(-1)
    # x - mean need not be formed where every channel's mean is within its spread (NOTE
    # [ Uncentred batch norm backward ]); NaN fails the test and takes the centred passes
    centred = not (_UNCENTRED and bool((mu * mu <= 1.0 / (inv * inv)).all()))
    dx = xp.empty(x2.shape, dt) if centred or need_x else None
    if centred:
        mrow = _rowvec(xp, mu, s)
        _threads.rows(lambda lo, hi: xp.subtract(x2[lo:hi], mrow, out=dx[lo:hi]), nb,
                      2 * x2.size)
        sgx = _chan_dot(xp, lay, g2, dx) * inv  # sum(g * xhat)
    else:
        sgx = (_chan_dot(xp, lay, g2, x2) - mu * sg) * inv
    gwt = _result(sgx, lay.pshape, pdt) if need_w else None
    if not need_x:
        return None, gwt, gb
    scale = inv if w is None else inv * _up(w._data).reshape(-1)
    f = inv * (sgx / -n)
    frow = _rowvec(xp, f, s)
    # dx = scale * (g + xc * f - sum(g) / n), xc = x - mean folded into the constant row
    orow = _rowvec(xp, sg / -n if centred else sg / -n - mu * f, s)
    crow = _rowvec(xp, scale, s)

    def dx_pass(lo, hi):
        d = dx[lo:hi]
        if centred:
            d *= frow
        else:
            xp.multiply(x2[lo:hi], frow, out=d)
        d += g2[lo:hi]
        d += orow
        d *= crow

    _threads.rows(dx_pass, nb, 8 * x2.size)
    return dx, gwt, gb


def _normalized(xp, x, w, b, lay, eps):
    """``(y, mean, var, inv)`` for ``x``: the output is the one fresh full-size array."""
    xw = _up(x.reshape(lay.work))
    if _flat(lay, xw):
        return _flat_normalized(xp, x, xw, _up(w), _up(b), lay, eps)
    if _FAST_FWD and lay.sub == "rk" and xw.size and xw.flags.c_contiguous:
        return _rows_normalized(xp, lay, x, xw, _up(w), _up(b), eps)
    y_full, y, mean, var, inv, res = _stats(xp, lay, xw, eps, x.shape)
    w, b = _up(w), _up(b)
    if lay.fold:  # y = (x - mean - res) * scale + b, both passes on each block of rows
        scale = inv if w is None else inv * w.reshape(lay.wshape)
        shift = None if res is None else -res * scale
        if b is not None:
            shift = b.reshape(lay.wshape) if shift is None else b.reshape(lay.wshape) + shift
        _passes(lay, y, lambda lo, hi: _affine(y[lo:hi], scale, shift))
        return y_full.astype(x.dtype, copy=False), mean, var, inv
    y *= inv
    # group norm's per-channel weight as a (G, C/G, S) block broadcast over the batch: inner
    # loops of C*S elements, not one of S per channel (NOTE [ Batch norm on flat rows ])
    rows = _FLAT and lay.sub == "ngcs" and y.flags.c_contiguous
    for p, op in ((w, xp.multiply), (b, xp.add)):
        if p is not None:
            p = p.reshape(lay.wshape)
            op(y, xp.broadcast_to(p, y.shape[1:]).copy() if rows else p, out=y)
    return y_full.astype(x.dtype, copy=False), mean, var, inv


_FAST_FWD = True  # layer norm's forward by _rows_normalized (False: _stats, for tests)
# _rows_normalized's output in a workspace block (NOTE [ Workspace ]; the tensor holds the
# block until it dies): a fresh 512 KB output page-faulted in a GPT step, 5 layer norms
# 1.29 -> 0.91 ms per step.  (dx stays fresh: from the workspace it made the step slower.)
_WS_OUT = True


def _rank2(xp, col, row, out):
    """``out = col ⊗ row`` as an (R, 2) @ (2, K) GEMM with a zero second term.

    NumPy's matmul with an inner size of 1 does not reach BLAS (148 us for (1024, 1) @
    (1, 128) float32 against 11 us with an inner size of 2), and a broadcasting ufunc pass
    with an (R, 1) or (K,) operand runs one short inner loop per row (~2x a same-shape
    pass), so per-row and per-column operands are expanded to full arrays by BLAS first.
    """
    a = xp.zeros((col.shape[0], 2), out.dtype)
    a[:, 0] = col
    r = xp.zeros((2, row.shape[0]), out.dtype)
    r[0] = row
    return xp.matmul(a, r, out=out)


def _rows_normalized(xp, lay, x, xw, w, b, eps):
    """Layer norm's forward on (R, K) rows: ``y = (x - mean) * (inv ⊗ w) + 1 ⊗ b``.

    mean is a GEMV (``x @ ones / K``); ``-mean ⊗ 1``, ``inv ⊗ w`` and ``1 ⊗ b`` are rank-2
    GEMMs (``_rank2``) so that every full-size pass is between same-shape arrays:
    ``y = x + (-mean ⊗ 1)``, the two-pass variance as row dot products of the centred ``y``
    (exact when ``|mean| >> std``, unlike ``E[x^2] - mean^2``), ``y *= inv ⊗ w``,
    ``y += 1 ⊗ b``.  (16, 64, 128) float32: 149 -> ~115 us thread CPU at one thread.
    """
    r, k = xw.shape
    dt = xw.dtype
    ones = _ones(xp, k, dt)
    mean = xp.matmul(xw, ones) / k
    y = ws.empty(xp, xw.shape, dt) if _WS_OUT else xp.empty(xw.shape, dt)
    if _ONE_PASS:
        done = _rows_one_pass(xp, lay, xw, w, b, eps, mean, y)
        if done is not None:
            return (y.reshape(x.shape).astype(x.dtype, copy=False),) + done
    _rank2(xp, -mean, ones, y)
    y += xw
    var = _reduce(xp, lay, y, y) / k
    inv = 1.0 / xp.sqrt(var + eps)
    s = ws.empty(xp, xw.shape, dt)
    _rank2(xp, inv, ones if w is None else w.reshape(-1).astype(dt, copy=False), s)
    y *= s
    if b is not None:
        _rank2(xp, _ones(xp, r, dt), b.reshape(-1).astype(dt, copy=False), s)
        y += s
    del s
    ks = (r, 1)
    return (y.reshape(x.shape).astype(x.dtype, copy=False), mean.reshape(ks), var.reshape(ks),
            inv.reshape(ks))


# NOTE [ One-pass variance ]
# Where every row's mean is within its spread (mean^2 <= var, the usual layer-norm input),
# layer norm's forward takes the variance as E[x^2] - mean^2 (row dot products of x itself)
# and writes y = x * (inv ⊗ w) + [1, -mean * inv] @ [b; w] (two rank-2 GEMMs, two same-shape
# passes): no centred array, 5 full-size passes instead of 7, (16, 64, 128) float32 forward
# ~143 -> ~115 us thread CPU at one thread.  The subtraction loses about (1 + mean^2 / var)
# units of rounding of E[x^2], so at most 2 here; the test is sound on the computed variance
# (it exceeds the true one by at most that rounding of mean^2, so it never passes a row whose
# mean is much larger than its spread), and any other row (or NaN/inf) sends the whole call to
# the two-pass path on the centred rows.  _ONE_PASS = False keeps the two-pass path always.
_ONE_PASS = True


def _rows_one_pass(xp, lay, xw, w, b, eps, mean, y):
    """``(mean, var, inv)`` (keepdims) with ``y`` written (NOTE [ One-pass variance ]), or
    ``None`` (``y`` untouched) where some row's mean is not within its spread."""
    r, k = xw.shape
    dt = xw.dtype
    var = _reduce(xp, lay, xw, xw) / k
    var -= mean * mean
    if not (mean * mean <= var).all():
        return None
    inv = 1.0 / xp.sqrt(var + eps)
    wv = _ones(xp, k, dt) if w is None else w.reshape(-1).astype(dt, copy=False)
    s = ws.empty(xp, xw.shape, dt)
    _rank2(xp, inv, wv, s)
    xp.multiply(xw, s, out=y)
    shift = -mean * inv  # y += [1, -mean * inv] @ [b; w]
    if b is None:
        _rank2(xp, shift, wv, s)
    else:
        a = xp.empty((r, 2), dt)
        a[:, 0] = 1
        a[:, 1] = shift
        rw = xp.empty((2, k), dt)
        rw[0] = b.reshape(-1)
        rw[1] = wv
        xp.matmul(a, rw, out=s)
    y += s
    del s
    ks = (r, 1)
    return mean.reshape(ks), var.reshape(ks), inv.reshape(ks)


class _Normalize(Function):
    """Normalise over the layout's statistics axes, then scale and shift (NOTE above)."""

    raw = True

    @staticmethod
    def forward(ctx, x, w, b, lay, eps):
        kern = _kernels._table and _kernel_for(ctx.xp, lay, x, w, b)
        if kern:  # NOTE [ Layer-norm kernels ]
            y, mean, inv = _kernel_forward(ctx.xp, kern, lay, x, w, b, eps)
        else:
            y, mean, var, inv = _normalized(ctx.xp, x, w, b, lay, eps)
        if ctx._record:
            ctx.lay = lay
            ctx.eps = eps
            ctx.kern = kern or None
            # NOTE [ Uncentred layer-norm backward ]: rows whose mean is within their spread
            ctx.uncentred = not kern and _UNCENTRED and lay.sub == "rk" and mean.size > 0 \
                and bool((mean * mean <= var).all())
            ctx.save_for_backward(x, w, mean, inv)
        return y

    @staticmethod
    def backward(ctx, g):
        return _normalize_grads(ctx, g) + (None, None)


def _normalize_grads(ctx, g):
    """(dx, dweight, dbias): ember ops under create_graph, else the same formula on arrays.

    On arrays the centred input ``x - mean`` is formed again in the buffer that becomes
    ``dx``: one fresh full-size array per backward (as PyTorch, nothing but ``x`` and the
    statistics is kept from the forward).
    """
    x, w, mean, inv = ctx.saved_tensors
    if state.grad:
        return _grads_graph(ctx, g, x, w, mean, inv)
    kern = getattr(ctx, "kern", None)
    if kern is not None and g._data.dtype == x._data.dtype:
        return _kernel_grads(ctx, kern, g._data, x._data, w, mean._data, inv._data)
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    lay = ctx.lay
    xp = ctx.xp
    inv = inv._data
    dt = x._data.dtype
    pdt = dt if w is None else w._data.dtype  # float32 parameters of a half input (mixed type)
    gw = _up(g._data.reshape(lay.work))
    xw = _up(x._data.reshape(lay.work))
    n = xw.size // inv.size if inv.size else 1
    gx = gwt = gb = None
    if _flat(lay, xw) and gw.flags.c_contiguous:
        dx, gwt, gb = _flat_grads(xp, lay, gw, xw, mean._data, inv, w, need_x, need_w,
                                  need_b, pdt)
        if need_x:
            gx = _make(dx.reshape(x._data.shape).astype(dt, copy=False))
        return gx, gwt, gb
    if _FAST and need_x and getattr(ctx, "uncentred", False) and gw.flags.c_contiguous and \
            xw.flags.c_contiguous:
        dx_full, dx = _empty(xp, x._data.shape, lay, xw.dtype)
        gwt, gb = (None if a is None else _result(a, lay.pshape, pdt) for a in
                   _rows_grads_uncentred(xp, gw, xw, mean._data, inv, w, need_w, need_b, dx))
        return _make(dx_full.astype(dt, copy=False)), gwt, gb
    if need_x or need_w:
        dx_full, xc = _empty(xp, x._data.shape, lay, xw.dtype)
        mu = mean._data
        if _FAST and _RANK2_BWD and lay.sub == "rk" and xw.size:  # same-shape passes
            _rank2(xp, -mu.reshape(-1), _ones(xp, xw.shape[1], xw.dtype), xc)
            xc += xw
        else:
            _passes(lay, xw, lambda lo, hi: xp.subtract(xw[lo:hi], mu, out=xc[lo:hi]))
    if lay.fold:
        sg = _reduce(xp, lay, gw).reshape(lay.kshape)
        if need_b:
            gb = _result(sg, lay.pshape, pdt)
        if need_x or need_w:
            sgx = _reduce(xp, lay, gw, xc).reshape(lay.kshape) * inv  # sum(g * xhat)
            if need_w:
                gwt = _result(sgx, lay.pshape, pdt)
        if need_x:
            scale = inv if w is None else inv * _up(w._data).reshape(lay.wshape)
            # dx = scale * (g - (sum(g) + xhat * sum(g * xhat)) / n),  xhat = xc * inv
            f, s0 = inv * (sgx / -n), sg / n
            _passes(lay, xc, lambda lo, hi: _dx(xc[lo:hi], f, s0, gw[lo:hi], scale))
    elif _FAST and lay.sub == "rk" and xw.size:
        xc = xc if need_x or need_w else None
        gx_w = _rows_grads(xp, xw.shape[1], gw, xc, inv, w, need_x, need_w, need_b)
        gwt, gb = (None if a is None else _result(a, lay.pshape, pdt) for a in gx_w[1:])
    else:
        if need_b:
            gb = _result(_reduce(xp, lay, gw, out=lay.pred), lay.pshape, pdt)
        if need_x or need_w:
            xc *= inv  # xhat
        if need_w:
            gwt = _result(_reduce(xp, lay, gw, xc, out=lay.pred), lay.pshape, pdt)
        if need_x:
            # dx = inv * (gh - mean(gh) - xhat * mean(gh * xhat)),  gh = g * weight
            gh = gw if w is None else gw * _up(w._data).reshape(lay.wshape)
            xc *= (_reduce(xp, lay, gh, xc) / -n).reshape(lay.kshape)
            xc -= (_reduce(xp, lay, gh) / n).reshape(lay.kshape)
            xc += gh
            xc *= inv
    if need_x:
        gx = _make(dx_full.astype(dt, copy=False))
    return gx, gwt, gb


_FAST = True  # layer norm's backward by _rows_grads (False: the general path, for tests)
_RANK2_BWD = True  # _rows_grads' per-row/column factors by _rank2 (False: broadcasting passes)


def _rows_grads(xp, n, g, xc, inv, w, need_x, need_w, need_b):
    """Layer norm's (dx in ``xc``, dweight, dbias) on (R, K) rows, every reduction a GEMV.

    With ``p = g * xc`` (the one scratch array, from the workspace) and ``gh = g * weight``:
    ``dbias = 1 @ g``, ``dweight = inv @ p`` (``sum_r g * xhat``), and the per-row sums
    ``sum_k gh = g @ weight``, ``sum_k gh * xhat = inv * (p @ weight)`` are matrix-vector
    products (BLAS) instead of einsum's loops over a formed ``xhat`` and ``gh``; then
    ``dx = inv * gh + xc * (-inv^2 sum(gh xhat) / n) - inv * sum(gh) / n`` in place of ``xc``,
    its per-row and per-column factors expanded by ``_rank2``
    (``xc`` stays ``x - mean``: forming ``xhat`` first costs a pass, and ``g * x`` without
    centring would cancel when the mean is large against the spread).
    """
    gb = _ones(xp, g.shape[0], g.dtype) @ g if need_b else None
    if not (need_x or need_w):
        return None, None, gb
    inv = inv.reshape(-1)
    wv = _ones(xp, n, g.dtype) if w is None else _up(w._data).reshape(-1)
    p = ws.empty(xp, g.shape, xp.result_type(g, xc))
    xp.multiply(g, xc, out=p)
    gwt = inv @ p if need_w else None
    if need_x:
        s1 = g @ wv                      # sum_k gh
        s2 = (p @ wv) * inv              # sum_k gh * xhat
        # the per-row and per-column factors as full arrays from rank-2 GEMMs (_rank2), so
        # each pass is same-shape: 7 passes cost about half of the 5 broadcasting ones
        if not _RANK2_BWD:  # the broadcasting passes (for tests and A/B timing)
            xc *= (inv * inv * s2 / -n)[:, None]
            xc -= (inv * s1 / n)[:, None]
            xp.multiply(g, wv, out=p)
            p *= inv[:, None]
            xc += p
            return None, gwt, gb
        ones = _ones(xp, n, p.dtype)
        _rank2(xp, inv * inv * s2 / -n, ones, p)
        xc *= p
        _rank2(xp, inv, wv, p)
        p *= g
        xc += p
        _rank2(xp, inv * s1 / -n, ones, p)
        xc += p
    return None, gwt, gb


# NOTE [ Uncentred layer-norm backward ]
# Where the forward found every row's mean within its spread (mean^2 <= var, NOTE [ One-pass
# variance ]; recorded as ``ctx.uncentred``), the backward does not form ``x - mean``: with
# ``p = g * x`` and ``mi = mean * inv``,
#     dbias = 1 @ g,   dweight = inv @ p - mi @ g   (the two row sums of g as one (2, R) GEMM)
#     sum_k gh * xhat = inv * (p @ w - mean * (g @ w))
#     dx = g * (inv ⊗ w) + x * (c1 ⊗ 1) + (c0 - mean * c1) ⊗ 1
# with ``c1``, ``c0`` the centred formula's per-row factors (``_rows_grads``).  The centring
# subtractions lose at most about (1 + |mean| / std) units of rounding, so at most ~2 here.
# Two full-size operations fewer (the centring's rank-2 expansion and its add: 8 same-shape
# operations instead of 10).  _UNCENTRED = False keeps the centred backward (tests compare).
_UNCENTRED = True


def _rows_grads_uncentred(xp, g, x, mean, inv, w, need_w, need_b, dx):
    """(dweight, dbias) of layer norm's (R, K) rows, with dx written into ``dx`` (NOTE
    [ Uncentred layer-norm backward ])."""
    r, n = g.shape
    dt = g.dtype
    inv = inv.reshape(-1)
    mean = mean.reshape(-1)
    wv = _ones(xp, n, dt) if w is None else _up(w._data).reshape(-1)
    p = ws.empty(xp, g.shape, dt)
    xp.multiply(g, x, out=p)
    gwt = gb = None
    if need_w or need_b:
        two = xp.empty((2, r), dt)
        two[0] = 1
        xp.multiply(mean, inv, out=two[1])
        sums = two @ g              # [sum_r g; sum_r mean * inv * g]
        gb = sums[0] if need_b else None
        if need_w:
            gwt = inv @ p
            gwt -= sums[1]
    s1 = g @ wv                     # sum_k gh
    s2 = p @ wv                     # sum_k gh * x
    s2 -= mean * s1
    s2 *= inv                       # sum_k gh * xhat
    c1 = inv * inv * s2 / -n        # the factor of x - mean
    c0 = inv * s1 / -n - mean * c1  # the constant, with the centring folded in
    ones = _ones(xp, n, dt)
    _rank2(xp, inv, wv, dx)
    dx *= g
    _rank2(xp, c1, ones, p)
    p *= x
    dx += p
    _rank2(xp, c0, ones, p)
    dx += p
    return gwt, gb


def _result(a, shape, dt) -> Tensor:
    return _make(a.reshape(shape).astype(dt, copy=False))


# NOTE [ Layer-norm kernels ]
# Layer norm's forward and backward as one pass each over the (R, K) rows where the kernel
# table (NOTE [ Kernel tables ] in ``_kernels.py``) has them: ``ember.compile(fn,
# options={"numba": True})`` (``_numba_norm``, NOTE [ numba layer-norm kernels ]).  The
# forward keeps its choice on ``ctx.kern`` for the backward.  The saved statistics have one
# layout either way, and ``create_graph`` takes the graph formula as before.  Only layer norm
# (``rk`` layouts) of C-contiguous float32/float64 inputs whose weight and bias have the
# input's dtype; group norm, half inputs and other layouts keep the NumPy path.
# GPT-mini's compiled step (5 layer norms of (1024, 128) float32), per call in isolation
# (thread time, 1 thread): forward 44 us, backward 69 us (torch's forward 77 us); in the
# step, the five together 2.55 -> 0.96 ms forward + backward (torch's ~1.0).


def _kernel_for(xp, lay, x, w, b):
    """The table's kernels for layer norm of ``x`` (NOTE [ Layer-norm kernels ]), or None."""
    if lay.sub != "rk" or not x.size or not x.flags.c_contiguous:
        return None
    dt = x.dtype
    if w is not None and w.dtype != dt or b is not None and b.dtype != dt:
        return None
    return _kernels.get("layer_norm", xp, dt)


_CONST: dict = {}


def _vec(xp, a, k: int, dt, fill: float):
    """``a`` as a contiguous (k,) vector, or a cached read-only vector of ``fill``."""
    if a is not None:
        return xp.ascontiguousarray(a.reshape(-1))
    key = (xp, k, dt, fill)
    v = _CONST.get(key)
    if v is None:
        if len(_CONST) >= 64:
            _CONST.clear()
        v = _CONST[key] = xp.full(k, fill, dt)
        v.flags.writeable = False
    return v


def _kernel_forward(xp, kern, lay, x, w, b, eps):
    """``(y, mean, inv)`` of layer norm by ``kern.fwd``; ``y`` from the workspace, as the
    NumPy path's (``_WS_OUT``), the statistics (R, 1) as its."""
    xw = x.reshape(lay.work)
    r, k = xw.shape
    dt = xw.dtype
    y = ws.empty(xp, xw.shape, dt) if _WS_OUT else xp.empty(xw.shape, dt)
    mean = xp.empty((r, 1), dt)
    inv = xp.empty((r, 1), dt)
    kern.fwd(xw, _vec(xp, w, k, dt, 1.0), _vec(xp, b, k, dt, 0.0), float(eps), y,
             mean.reshape(-1), inv.reshape(-1))
    return y.reshape(x.shape), mean, inv


def _kernel_grads(ctx, kern, g, x, w, mean, inv):
    """(dx, dweight, dbias) of layer norm by ``kern.bwd`` (NOTE [ Layer-norm kernels ])."""
    xp = ctx.xp
    lay = ctx.lay
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    xw = x.reshape(lay.work)
    r, k = xw.shape
    dt = xw.dtype
    gw = xp.ascontiguousarray(g.reshape(lay.work))
    dx_full = xp.empty(x.shape, dt) if need_x else None
    dx = dx_full.reshape(lay.work) if need_x else xp.empty((0, 0), dt)
    need_wb = need_w or need_b
    dw = xp.zeros(k if need_wb else 0, "float64")
    db = xp.zeros(k if need_wb else 0, "float64")
    kern.bwd(gw, xw, mean.reshape(-1), inv.reshape(-1),
             _vec(xp, None if w is None else w._data, k, dt, 1.0), dx, dw, db, need_x, need_wb)
    pdt = dt if w is None else w._data.dtype
    return (None if dx_full is None else _make(dx_full),
            _result(dw, lay.pshape, pdt) if need_w else None,
            _result(db, lay.pshape, pdt) if need_b else None)


def _grads_graph(ctx, g, x, w, mean, inv):
    """(dx, dweight, dbias) in ember ops, so that they can be differentiated again."""
    lay = ctx.lay
    stat = lay.stat
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    xw = x.reshape(lay.work)
    if need_x:  # the statistics depend on x: recompute them in the graph
        xc = xw - xw.mean(stat, keepdim=True)
        inv = ((xc * xc).mean(stat, keepdim=True) + ctx.eps).rsqrt()
        xhat = xc * inv
    else:
        xhat = (xw - mean) * inv
    gw = g.reshape(lay.work)
    gx = gwt = gb = None
    if lay.fold:
        n = xhat.numel() // inv.numel() if inv.numel() else 1
        sg = gw.sum(stat, keepdim=True)
        sgx = (gw * xhat).sum(stat, keepdim=True)
        if need_b:
            gb = sg.reshape(lay.pshape)
        if need_w:
            gwt = sgx.reshape(lay.pshape)
        if need_x:
            scale = inv if w is None else inv * w.reshape(lay.wshape)
            gx = (gw - (sg + xhat * sgx) / n) * scale
    else:
        if need_b:
            gb = gw.sum(lay.paxes).reshape(lay.pshape)
        if need_w:
            gwt = (gw * xhat).sum(lay.paxes).reshape(lay.pshape)
        if need_x:
            gh = gw if w is None else gw * w.reshape(lay.wshape)
            gx = (gh - gh.mean(stat, keepdim=True)
                  - xhat * (gh * xhat).mean(stat, keepdim=True)) * inv
    if gx is not None:
        gx = gx.reshape(x.shape)
    return gx, gwt, gb


class _LayerNorm(_Normalize):
    backward_name = "NativeLayerNormBackward0"


class _GroupNorm(_Normalize):
    backward_name = "NativeGroupNormBackward0"


class _BatchNormTrain(Function):
    """Batch statistics; updates the running stats in place (unbiased variance)."""

    raw = True
    backward_name = "NativeBatchNormBackward0"

    @staticmethod
    def forward(ctx, x, w, b, running_mean, running_var, lay, momentum, eps):
        y, mean, var, inv = _normalized(ctx.xp, x, w, b, lay, eps)
        if running_mean is not None:
            n = x.size // mean.size
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean.reshape(-1)
            running_var *= 1.0 - momentum
            running_var += (momentum * n / (n - 1)) * var.reshape(-1)
        if ctx._record:
            ctx.lay = lay
            ctx.eps = eps
            ctx.save_for_backward(x, w, mean, inv)
        return y

    @staticmethod
    def backward(ctx, g):
        return _normalize_grads(ctx, g) + (None,) * 5


class _BatchNormEval(Function):
    """Normalise with the running statistics: a per-channel affine map."""

    raw = True
    backward_name = "NativeBatchNormBackward0"

    @staticmethod
    def forward(ctx, x, w, b, running_mean, running_var, lay, eps):
        inv = 1.0 / ctx.xp.sqrt(_up(running_var) + eps)
        scale = inv if w is None else inv * _up(w)
        shift = -_up(running_mean) * scale
        if b is not None:
            shift += _up(b)
        ctx.lay = lay
        ctx.save_for_backward(x, w, running_mean, inv.astype(x.dtype, copy=False))
        xw = _up(x.reshape(lay.work))
        if _flat(lay, xw):  # (N, C*S) rows (NOTE [ Batch norm on flat rows ])
            nb, c, s = lay.work
            x2 = xw.reshape(nb, c * s)
            y = ctx.xp.empty(x2.shape, xw.dtype)
            srow, hrow = _rowvec(ctx.xp, scale, s), _rowvec(ctx.xp, shift, s)

            def affine(lo, hi):
                ctx.xp.multiply(x2[lo:hi], srow, out=y[lo:hi])
                y[lo:hi] += hrow

            _threads.rows(affine, nb, x2.size)
        else:
            y = xw * scale.reshape(lay.wshape)
            y += shift.reshape(lay.wshape)
        return y.astype(x.dtype, copy=False).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        x, w, mean, inv = ctx.saved_tensors
        lay = ctx.lay
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gw = g.reshape(lay.work)
        gx = gwt = gb = None
        if need_x:
            scale = inv if w is None else inv * w
            gx = (gw * scale.reshape(lay.wshape)).reshape(x.shape)
        if need_w:
            gwt = (gw * (x.reshape(lay.work) - mean.reshape(lay.wshape))).sum(lay.stat) * inv
        if need_b:
            gb = gw.sum(lay.stat)
        # mixed type (half input, float32 parameters): each gradient in its input's dtype
        pdt = mean.dtype if w is None else w.dtype
        if gx is not None and gx.dtype != x.dtype:
            gx = gx.to(x.dtype)
        gwt = gwt if gwt is None or gwt.dtype == pdt else gwt.to(pdt)
        gb = gb if gb is None or gb.dtype == pdt else gb.to(pdt)
        return (gx, gwt, gb) + (None,) * 4


# ---- argument checks -----------------------------------------------------------------------

def _check_float(kernel: str, x: Tensor):
    dt = x._data.dtype
    if not is_float(dt):
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{scalar_name(dt)}'")


def _check_same_dtype(x: Tensor, *others):
    dt = x._data.dtype
    params = [o._data.dtype for o in others if o is not None]
    if all(p == dt for p in params):
        return
    # PyTorch's cpu "mixed type": a float16/bfloat16 input with float32 parameters, as
    # autocast produces (a bfloat16 conv output into a float32 BatchNorm); output in x's dtype
    if any(p.name != "float32" for p in params):
        raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
    if not (dt.itemsize == 2 and is_float(dt)):
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def _torch_size(shape) -> str:
    return f"torch.Size({list(shape)})"


def _verify_batch_size(size):
    """PyTorch's check that each channel has more than one value to take statistics of."""
    n = size[0]
    for s in size[2:]:
        n *= s
    if n == 1:
        shown = _torch_size(size) if isinstance(size, tuple) else list(size)
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {shown}")


def _bn_layout(shape):
    n, c = shape[0], shape[1]
    s = math.prod(shape[2:])
    return _Layout((n, c, s), "ncs", "c", "c", (0, 2), (0, 2), (1, c, 1), (c, 1), (c,), True)


# ---- functional API ------------------------------------------------------------------------

def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-05):
    """Normalise each channel (dim 1) over the batch and spatial dims, then scale and shift.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``; in training the batch statistics are
    used and ``running_* = (1 - momentum) * running_* + momentum * batch_stat`` (unbiased var).
    """
    need_tensor(input, "batch_norm")
    for i, (name, t) in enumerate((("running_mean", running_mean),
                                   ("running_var", running_var), ("weight", weight),
                                   ("bias", bias))):
        need_tensor(t, "batch_norm", name, i + 2, optional=True)
    shape = tuple(input._data.shape)
    if training:
        _verify_batch_size(shape)
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    if momentum is None or not isinstance(momentum, (int, float)):
        raise TypeError(f"batch_norm(): argument 'momentum' (position 7) must be float, not "
                        f"{type(momentum).__name__}")
    if (running_mean is None) != (running_var is None):
        if training:
            raise ValueError("running_mean and running_var must either both be None or "
                             "neither be None")
        which = "running_mean" if running_mean is None else "running_var"
        raise RuntimeError(f"{which} must be defined in evaluation mode")
    if not training and running_mean is None:
        raise RuntimeError("running_mean must be defined in evaluation mode")
    c = input.size(1) if input._data.ndim >= 2 else 0  # as ATen: a 1-D input has 0 channels
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t._data.size != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t._data.size}")
    if input._data.ndim < 2:
        input.size(1)  # nothing to check it against: PyTorch's IndexError for dim 1
    _check_float("batch_norm", input)
    _check_same_dtype(input, weight, bias, running_mean, running_var)
    if state.grad:
        for name, t in (("running_mean", running_mean), ("running_var", running_var)):
            if t is not None and t._requires_grad:
                raise RuntimeError(f"The function 'native_batch_norm' is not differentiable "
                                   f"with respect to argument '{name}'. This input cannot have "
                                   f"requires_grad True.")
    if input._data.size == 0:  # nothing to normalise: PyTorch leaves the running stats alone
        return _empty_affine(input, weight, bias, c)
    layout = _bn_layout(shape)
    if training:
        return _BatchNormTrain.apply(input, weight, bias, running_mean, running_var, layout,
                                     momentum, eps)
    return _BatchNormEval.apply(input, weight, bias, running_mean, running_var, layout, eps)


def _empty_affine(input, weight, bias, c):
    """The (empty) result of a normalisation of an empty input, still linked to the graph."""
    shape = (c,) + (1,) * (input.dim() - 2)
    out = input * 1.0
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _normalized_shape(fn: str, normalized_shape) -> tuple:
    if isinstance(normalized_shape, int) or not hasattr(normalized_shape, "__iter__"):
        raise TypeError(f"{fn}(): argument 'normalized_shape' (position 2) must be tuple of "
                        f"ints, not {type(normalized_shape).__name__}")
    ns = tuple(int(s) for s in normalized_shape)
    if not ns:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., "
                           "containing at least one element, but got normalized_shape = []")
    return ns


def _check_normalized(input, ns, sep=", "):
    shape = tuple(input._data.shape)
    k = len(ns)
    if len(shape) < k or shape[len(shape) - k:] != ns:
        raise RuntimeError(f"Given normalized_shape={list(ns)}, expected input with shape "
                           f"[*{sep}{', '.join(map(str, ns))}], but got input of size"
                           f"{list(shape)}")


def _check_param_shape(name: str, t, ns):
    if t is not None and tuple(t._data.shape) != ns:
        raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got "
                           f"{name} of shape {list(t._data.shape)} and normalized_shape = "
                           f"{list(ns)}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Normalise over the trailing ``normalized_shape`` dims, then scale and shift elementwise.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with biased variance.
    """
    need_tensor(input, "layer_norm")
    ns = _normalized_shape("layer_norm", normalized_shape)
    _check_param_shape("weight", weight, ns)
    _check_param_shape("bias", bias, ns)
    _check_normalized(input, ns)
    _check_float("LayerNormKernelImpl", input)
    _check_same_dtype(input, weight, bias)
    k = math.prod(ns)
    r = input._data.size // k if k else 0
    layout = _Layout((r, k), "rk", "r", "k", (1,), (0,), (r, 1), (k,), ns, False)
    return _LayerNorm.apply(input, weight, bias, layout, eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Normalise each group of ``C / num_groups`` channels per sample, then scale and shift."""
    need_tensor(input, "group_norm")
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.dim()}")
    shape = tuple(input._data.shape)
    n, c = shape[0], shape[1]
    _verify_batch_size([n * c // num_groups, num_groups] + list(shape[2:]))
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(shape)} and num_groups="
                           f"{num_groups}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dim() != 1 or t._data.size != c):
            raise RuntimeError(f"Expected {name} to be a vector of size equal to the number of "
                               f"channels in input, but got {name} of shape "
                               f"{list(t._data.shape)} and input of shape {list(shape)}")
    _check_float("GroupNormKernelImpl", input)
    _check_same_dtype(input, weight, bias)
    g = num_groups
    s = math.prod(shape[2:])
    cg = c // g
    layout = _Layout((n, g, cg, s), "ngcs", "ng", "gc", (2, 3), (0, 3), (n, g, 1, 1),
                     (g, cg, 1), (c,), False)
    return _GroupNorm.apply(input, weight, bias, layout, eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-05):
    """Normalise each (sample, channel) over its spatial dims: batch norm of (1, N*C, ...)."""
    need_tensor(input, "instance_norm")
    shape = tuple(input._data.shape)
    if use_input_stats:
        if math.prod(shape[2:]) == 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input "
                             f"size {_torch_size(shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither "
                         "be None")
    if not use_input_stats and running_mean is None:
        raise RuntimeError("Expected running_mean and running_var to be defined when "
                           "use_input_stats is false")
    n, c = shape[0], shape[1]
    flat = input.reshape((1, n * c) + shape[2:])
    w = weight.repeat(n) if weight is not None else None
    b = bias.repeat(n) if bias is not None else None
    rm = rv = None
    if running_mean is not None:
        rm, rv = _tile_stats(running_mean, n), _tile_stats(running_var, n)
    out = batch_norm(flat, rm, rv, w, b, use_input_stats, momentum, eps)
    if running_mean is not None:
        running_mean._data[...] = rm._data.reshape(n, -1).mean(0)
        running_var._data[...] = rv._data.reshape(n, -1).mean(0)
    return out.view(shape)


def _tile_stats(t: Tensor, n: int) -> Tensor:
    """``t`` repeated ``n`` times as a flat constant (PyTorch's ``repeat_if_defined``)."""
    return _make(t._data.reshape(1, -1).repeat(n, axis=0).reshape(-1))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dims."""
    need_tensor(input, "rms_norm")
    ns = _normalized_shape("rms_norm", normalized_shape)
    _check_normalized(input, ns, sep="")
    if weight is not None and tuple(weight._data.shape) != ns:
        raise RuntimeError(f"Expected weight to be of same shape as normalized_shape, but got "
                           f"weight of shape {list(weight._data.shape)} and normalized_shape = "
                           f"{list(ns)}")
    _check_float("rms_norm", input)
    if eps is None:
        eps = _finfo_eps(input)
    dims = tuple(range(input.dim() - len(ns), input.dim()))
    out = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    if weight is not None:
        out = out * weight
    return out


def _finfo_eps(t: Tensor) -> float:
    """Machine epsilon of the dtype PyTorch computes ``t``'s op in (float32 for half types)."""
    return 2.220446049250313e-16 if t._data.dtype.itemsize == 8 else 1.1920928955078125e-07


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``x / (k + alpha * mean of x**2 over ``size`` neighbouring channels) ** beta``."""
    need_tensor(input, "local_response_norm")
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          "
                         f"input (got {dim} dimensions)")
    if input.numel() == 0:
        return input
    from .._creation import zeros
    from .movement import cat
    sq = input * input
    shape = tuple(sq._data.shape)
    c = shape[1]
    parts = []
    front, back = size // 2, (size - 1) // 2
    if front:
        parts.append(zeros((shape[0], front) + shape[2:], dtype=sq.dtype))
    parts.append(sq)
    if back:
        parts.append(zeros((shape[0], back) + shape[2:], dtype=sq.dtype))
    padded = cat(parts, 1) if len(parts) > 1 else sq
    window = padded[:, 0:c]
    for i in range(1, size):
        window = window + padded[:, i:i + c]
    # the average over the window; integer input averages with integer division, as torch's
    # avg_pool does
    avg = window / size if sq.is_floating_point() else window // size
    div = (avg * alpha + k) ** beta
    return input / div
