"""Pooling ops: max/avg/adaptive/lp pooling and max_unpool -- forward and backward.

NOTE [ Pooling kernels ]
Max and average pooling read their windows through ``_window.windows`` (a strided view
``(*lead, *out, *kernel)`` of the padded input) and reduce them with one vectorised pass per
kernel offset over output-sized arrays (windows of 16+ positions: one copy and an ``argmax``)
-- no Python loop over pixels.

Max pooling keeps a running maximum and, when a gradient or the indices are wanted, the flat
per-plane input index of it.  As PyTorch's kernel, a window's candidate index starts at its
first position inside the input and moves only on a strictly greater value or a NaN, so ties
pick the first maximum in window order and a NaN wins (the last NaN of its window).  Padding
reads ``-inf`` and is never chosen.  The gradient is a scatter-add of ``grad_output`` to those
indices (``_ScatterPlanes``), whose own gradient is the matching gather (``_GatherPlanes``);
so max pooling is differentiable to any order, as PyTorch's.  Adaptive max pooling with
uneven bins gathers the (clamped) bins into the same ``(*lead, *out, *kernel)`` layout and
runs the same loop; bins that divide evenly are plain max pooling.

Average pooling sums its windows the same way and divides by PyTorch's divisor (see
``_divisors``); backward spreads ``grad / divisor`` back with ``add_windows`` (col2im), and
the backward's backward is average pooling again (the op is linear).  Adaptive average
pooling is separable: along each dim it is a reshape-mean when the size divides evenly and a
product with a fixed ``(L, out)`` bin-averaging matrix otherwise.

The 1-d ops run the 2-d ones on ``input.unsqueeze(-2)`` (PyTorch's own composition, so the
grad_fn is ``SqueezeBackward1`` there too).

Max pooling's padded copy and window loop run over ranges of the batch, and its gradient
scatter over ranges of planes, on several threads for a large input (NOTE [ Threads ]): every
window and plane is computed by the same passes in the same order, so the bits do not depend
on the thread count.  ResNet-18's stem pool ((32, 64, 32, 32), 3x3 stride 2) was the one
pass of its step left on one thread outside convolution and the optimizer (~9 ms at 1
thread); its fwd + bwd main-thread CPU time at 2 threads went 9.0-10.0 -> 4.7-5.2 ms.
"""
from __future__ import annotations

import builtins
import itertools
import math

from ..autograd.function import Function
from .._backend import xp_of
from .._tensor import _make
from ._util import need_tensor, scalar_name, is_float
from ._window import windows, add_windows, out_size
from . import _threads

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
           "max_pool2d_with_indices", "max_pool3d_with_indices", "max_unpool1d",
           "max_unpool2d", "max_unpool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
           "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
           "adaptive_max_pool3d_with_indices", "lp_pool1d", "lp_pool2d", "lp_pool3d",
           "fractional_max_pool2d", "fractional_max_pool3d",
           "fractional_max_pool2d_with_indices", "fractional_max_pool3d_with_indices"]

_NUM = {1: "one", 2: "two", 3: "three"}
_DNAMES = {2: ("H", "W"), 3: ("T", "H", "W")}


# ---- argument handling ----------------------------------------------------------------------

def _tup(v, nd: int, fn: str, name: str, omit: bool = False) -> tuple:
    """An int or a 1/nd-sequence as an nd-tuple of ints, with PyTorch's error otherwise."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]),) * nd
        if len(v) == nd:
            return tuple(int(a) for a in v)
    elif hasattr(v, "__index__"):
        return (int(v),) * nd
    what = "either be omitted, a single int," if omit else "either be a single int,"
    raise RuntimeError(f"{fn}: {name} must {what} or a tuple of {_NUM[nd]} ints")


def _check_input(fn: str, x, nd: int) -> None:
    shape = x.shape
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for "
                           f"input")
    if 0 in shape[x.ndim - nd - 1:]:
        raise RuntimeError(f"Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional "
                           f"0 dim batch size for input, but got:{list(shape)}")
    if x.dtype.kind == "b":
        raise NotImplementedError(f"\"{fn}\" not implemented for 'Bool'")


def _check_params(k, s, p, d, nd) -> None:
    names = _DNAMES[nd]
    if any(a <= 0 for a in k):
        raise RuntimeError("kernel size should be greater than zero, but got " + " ".join(
            f"k{n}: {a}" for n, a in zip(names, k)))
    if any(a == 0 for a in s):
        raise RuntimeError("stride should not be zero")
    if any(a < 0 for a in s):
        raise RuntimeError("stride should be greater than zero, but got " + " ".join(
            f"d{n}: {a}" for n, a in zip(names, s)))
    if any(a <= 0 for a in d):
        raise RuntimeError("dilation should be greater than zero, but got " + " ".join(
            f"dilation{n}: {a}" for n, a in zip(names, d)))
    for kk, pp, dd in zip(k, p, d):
        if pp < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {pp}")
        if pp > ((kk - 1) * dd + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={pp}, kernel_size={kk} and dilation={dd}")
    # PyTorch then also bounds the padding by half the plain (undilated) kernel
    if any(pp > kk // 2 for kk, pp in zip(k, p)):
        if nd == 2:
            got = f"padW = {p[1]}, padH = {p[0]}, kW = {k[1]}, kH = {k[0]}"
        else:
            got = (f"kT: {k[0]} kW: {k[2]} kH: {k[1]} padT: {p[0]} padW: {p[2]} "
                   f"padH: {p[1]}")
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but "
                           f"got {got}")


def _out_shape(x, k, s, p, d, ceil, nd) -> tuple:
    sp = x.shape[-nd:]
    outs = tuple(out_size(sp[i], k[i], s[i], p[i], d[i], ceil) for i in range(nd))
    if any(o < 1 for o in outs):
        c = x.shape[-nd - 1]
        raise RuntimeError(f"Given input size: ({'x'.join(map(str, (c,) + sp))}). Calculated "
                           f"output size: ({'x'.join(map(str, (c,) + outs))}). Output size is "
                           f"too small")
    return outs


def _pool_args(fn, input, nd, kernel_size, stride, padding, dilation, ceil_mode):
    need_tensor(input, fn)
    k = _tup(kernel_size, nd, fn, "kernel_size")
    s = k if stride is None or isinstance(stride, (tuple, list)) and not stride else \
        _tup(stride, nd, fn, "stride", omit=True)
    p = _tup(padding, nd, fn, "padding")
    d = _tup(dilation, nd, fn, "dilation")
    _check_input(fn, input._data, nd)
    _check_params(k, s, p, d, nd)
    outs = _out_shape(input._data, k, s, p, d, ceil_mode, nd)
    return k, s, p, d, outs


# ---- shared array helpers -------------------------------------------------------------------

def _padded(xp, x, nd, p, outs, k, s, d, fill):
    """``x`` padded by ``p`` on the left and as much as the last window needs on the right."""
    sp = x.shape[-nd:]
    right = [builtins.max(0, (outs[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - sp[i] - p[i])
             for i in range(nd)]
    if not any(p) and not any(right):
        return x
    shape = x.shape[:-nd] + tuple(sp[i] + p[i] + right[i] for i in range(nd))
    out = xp.full(shape, fill, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(p[i], p[i] + sp[i]) for i in range(nd))] = x
    return out


def _window_view(xp, xpad, nd, outs, k, s, d):
    w = windows(xp, xpad, k, s, d)
    return w[(Ellipsis,) + tuple(slice(0, o) for o in outs) + (slice(None),) * nd]


def _lowest(xp, dt):
    return -math.inf if is_float(dt) else xp.iinfo(dt).min


def _plane_strides(sp) -> list:
    st, acc = [], 1
    for n in reversed(sp):
        st.append(acc)
        acc *= n
    return st[::-1]


def _bcast(a, i, nd):
    """1-d array ``a`` shaped to broadcast along output dim ``i`` of ``nd``."""
    return a.reshape((-1,) + (1,) * (nd - 1 - i))


def _argmax_loop(xp, w, sp, want_idx, starts, dil, lens=None):
    """Max (and flat argmax) over the trailing kernel dims of ``w`` ``(*lead, *out, *kernel)``.

    Along dim ``i`` output ``o`` reads input positions ``starts[i][o] + j * dil[i]``, or with
    ``lens`` (adaptive bins) ``starts[i][o] + min(j, lens[i][o] - 1)``; positions outside the
    input hold the lowest value and never win.  See NOTE [ Pooling kernels ] for the tie and
    NaN rules.  The windows are copied once to ``(K, *lead, *out)`` (every pass over strided
    windows costs ~10x a contiguous one) and reduced by a pairwise tree in window order, the
    later half winning only when strictly greater (or NaN): that is the first maximum (the
    last NaN), PyTorch's rule.  The kernel offset is tracked in a small int and turned into the
    flat index once at the end.  Large windows (>= 16 positions) are ``argmax``-ed
    instead (argmax's first maximum is the same rule) unless one holds a NaN.
    """
    nd = len(starts)
    kernel = w.shape[-nd:]
    offsets = list(itertools.product(*(range(n) for n in kernel)))
    first = w[(Ellipsis,) + offsets[0]]
    if not want_idx:
        best = first.copy()
        for off in offsets[1:]:
            xp.maximum(best, w[(Ellipsis,) + off], out=best)  # maximum propagates NaN
        return best, None
    K = len(offsets)
    kdt = "int8" if K < 127 else "int16" if K < 32767 else "int32"
    kst = _plane_strides(kernel)
    lowest = _lowest(xp, first.dtype)
    # a window's index starts at its first position inside the input (PyTorch's init): it
    # stays there when every value is the lowest (all padding or -inf)
    kid0 = None
    if lens is None:
        for i in range(nd):
            j0 = xp.maximum(0, -(starts[i] // dil[i]))
            if j0.any():
                kid0 = xp.zeros(first.shape, dtype=kdt) if kid0 is None else kid0
                kid0 += _bcast((j0 * kst[i]).astype(kdt), i, nd)

    def tree(has_nan):
        n = w.ndim - nd
        cols = w.transpose(tuple(range(n, w.ndim)) + tuple(range(n))).copy()
        best, kid = _tree_argmax(xp, list(cols.reshape((K,) + first.shape)), kdt, has_nan)
        return best.copy(), kid  # a row of cols: a view would keep all K rows alive (issue 15)

    if K >= 16:
        cols = w.reshape(first.shape + (K,))
        am = cols.argmax(-1)[..., None]
        best = xp.take_along_axis(cols, am, -1)[..., 0]
        kid = am[..., 0].astype(kdt)
    else:
        best, kid = tree(False)
    # A window holding a NaN has a NaN maximum (both paths propagate it), so NaN is looked for
    # in the K times smaller output, not the input (LeNet's first 2x2 pool: 54 -> 7 us); such
    # windows are computed again by the NaN rule (argmax picks the first NaN, PyTorch the last)
    if first.dtype.kind == "f" and bool(xp.isnan(best).any()):
        best, kid = tree(True)
    if kid0 is not None:
        kid = xp.where(best == lowest, kid0, kid)
    return best, _kid_to_flat(xp, kid, kernel, kst, sp, starts, dil, lens)


def _max_windows(xp, x, k, s, p, d, outs, want_idx, starts):
    """Max pooling's padded copy and ``_argmax_loop``, over ranges of ``x``'s first axis (the
    batch) on several threads for a large input: each window's maximum, index and NaN rule
    are its own, so the results are the same bits as one call's (NOTE [ Threads ])."""
    nd = len(k)
    sp = x.shape[-nd:]

    def run(xr):
        xpad = _padded(xp, xr, nd, p, outs, k, s, d, _lowest(xp, x.dtype))
        w = _window_view(xp, xpad, nd, outs, k, s, d)
        return _argmax_loop(xp, w, sp, want_idx, starts, d)
    shape = x.shape[:-nd] + tuple(outs)
    numel = x.size + math.prod(shape) * math.prod(k)  # (the padded copy, the windows)
    if x.ndim == nd or x.shape[0] < 2 or numel < _threads.MIN_NUMEL or \
            _threads.num_threads() < 2:
        return run(x)
    out = xp.empty(shape, x.dtype)
    idx = xp.empty(shape, "int64") if want_idx else None

    def part(lo, hi):
        b, i = run(x[lo:hi])
        out[lo:hi] = b
        if want_idx:
            idx[lo:hi] = i
    _threads.rows(part, x.shape[0], numel)
    return out, idx


def _tree_argmax(xp, vals, kdt, has_nan):
    """(max, first argmax) of the private arrays ``vals`` (overwritten), pairwise."""
    kids = list(range(len(vals)))
    while len(vals) > 1:
        nv, nk = [], []
        for j in range(0, len(vals) - 1, 2):
            lo, hi, klo, khi = vals[j], vals[j + 1], kids[j], kids[j + 1]
            m = xp.greater(hi, lo)
            if has_nan:
                m |= xp.isnan(hi)
            nv.append(xp.maximum(lo, hi, out=lo))  # maximum propagates NaN
            if isinstance(klo, int) and isinstance(khi, int):
                k = m.astype(kdt)
                if khi - klo != 1:
                    k *= khi - klo
            else:  # klo + m * (khi - klo): where() is several times slower on int8
                k = xp.subtract(khi, klo, dtype=kdt)
                k *= m
            if not isinstance(klo, int) or klo:
                k += klo
            nk.append(k)
        if len(vals) % 2:
            nv.append(vals[-1])
            nk.append(kids[-1])
        vals, kids = nv, nk
    kid = kids[0]
    if isinstance(kid, int):
        kid = xp.zeros(vals[0].shape, dtype=kdt)
    return vals[0], kid


def _kid_to_flat(xp, kid, kernel, kst, sp, starts, dil, lens):
    """Flat per-plane input index of kernel offset ``kid`` in each window."""
    nd = len(kernel)
    K = math.prod(kernel)
    pst = _plane_strides(sp)
    if lens is None:  # flat = window start + a per-offset table
        table = xp.zeros(K, dtype="int64")
        for i in range(nd):
            table += (xp.arange(K) // kst[i] % kernel[i]) * (dil[i] * pst[i])
        idx = table.take(kid.astype(xp.intp))  # (take with int8 indices is ~10x slower)
        grid = 0  # the window starts as one output-sized array: one pass over idx, not nd
        for i in range(nd):
            grid = grid + _bcast(starts[i] * pst[i], i, nd)
        idx += grid
        return idx
    idx = None
    for i in range(nd):
        j = (kid // kst[i]) % kernel[i] if nd > 1 else kid
        pi = xp.minimum(j, _bcast(lens[i] - 1, i, nd)) + _bcast(starts[i], i, nd)
        pi = pi * pst[i] if pst[i] != 1 else pi
        idx = pi if idx is None else idx + pi
    return idx.astype("int64", copy=False)


def _flat_index(xp, idx, lead_n, plane):
    return (idx.reshape(lead_n, -1) + (xp.arange(lead_n, dtype="int64") * plane)[:, None])


class _ScatterPlanes(Function):
    """Add ``g`` ``(*lead, *out)`` into zero planes ``(*lead, *sp)`` at flat indices ``idx``."""

    raw = True
    backward_name = "MaxPoolBackwardBackward0"

    @staticmethod
    def forward(ctx, g, idx, sp, unique, keep=None):
        xp = ctx.xp
        nd = len(sp)
        lead = g.shape[:g.ndim - nd]
        plane = math.prod(sp)
        n = math.prod(lead)
        ctx.meta = (idx, sp, keep)
        if keep is not None:  # windows with no input position send no gradient
            g = g * keep
        out = xp.empty((n, plane), dtype=g.dtype)
        m = math.prod(idx.shape[len(lead):])
        g2, i2 = g.reshape(n, m), idx.reshape(n, m)

        def part(lo, hi):
            # planes lo..hi: each plane's adds run in the same order as over all planes, so
            # the same bits on any number of threads (NOTE [ Threads ])
            o = out[lo:hi].reshape(-1)
            o.fill(0)
            flat = _flat_index(xp, i2[lo:hi], hi - lo, plane).reshape(-1)
            if unique:  # windows never overlap: a plain assignment
                o[flat] = g2[lo:hi].reshape(-1)
            else:  # overlapping windows: ufunc.at (measured 3x faster than bincount here)
                xp.add.at(o, flat, g2[lo:hi].reshape(-1))
        if g.size:
            _threads.rows(part, n, out.size + 3 * g.size)
        else:  # an empty batch (or no windows): no gradient
            out.fill(0)
        return out.reshape(lead + tuple(sp))

    @staticmethod
    def backward(ctx, gg):
        idx, sp, keep = ctx.meta
        return _GatherPlanes.apply(gg, idx, len(sp), keep), None, None, None, None


class _GatherPlanes(Function):
    """``x`` ``(*lead, *sp)`` read at flat per-plane indices ``idx`` ``(*lead, *out)``."""

    raw = True
    backward_name = "GatherBackward0"

    @staticmethod
    def forward(ctx, x, idx, nd, keep=None):
        xp = ctx.xp
        sp = x.shape[x.ndim - nd:]
        lead = x.shape[:x.ndim - nd]
        n = math.prod(lead)
        ctx.meta = (idx, sp, keep)
        flat = _flat_index(xp, idx, n, math.prod(sp))
        out = x.reshape(-1)[flat].reshape(idx.shape)
        return out if keep is None else out * keep

    @staticmethod
    def backward(ctx, g):
        idx, sp, keep = ctx.meta
        return _ScatterPlanes.apply(g, idx, sp, False, keep), None, None, None


# ---- max pooling ----------------------------------------------------------------------------

def _empty_windows(xp, idx, starts, d, sp):
    """``(safe idx, keep mask or None)``: windows (dilated, with padding) that read no input.

    PyTorch outputs ``-inf`` there with an index past the window (kept in the returned
    indices, as PyTorch's) and sends them no gradient; the scatter gets index 0 and a zero.
    """
    nd = len(sp)
    keep = None
    for i in range(nd):
        first = starts[i] + xp.maximum(0, -(starts[i] // d[i])) * d[i]
        ok = first < sp[i]
        if not ok.all():
            ok = _bcast(ok, i, nd)
            keep = ok if keep is None else keep & ok
    if keep is None:
        return idx, None
    keep = xp.broadcast_to(keep, idx.shape)
    return xp.where(keep, idx, 0), keep


class _MaxPool(Function):
    """Max pooling over the last ``len(kernel)`` dims; outputs (values, flat indices)."""

    raw = True
    backward_name = "MaxPool2DWithIndicesBackward0"

    @staticmethod
    def forward(ctx, x, k, s, p, d, outs, return_indices):
        xp = ctx.xp
        nd = len(k)
        sp = x.shape[-nd:]
        starts = [xp.arange(outs[i]) * s[i] - p[i] for i in range(nd)]
        want = return_indices or ctx._record
        out, idx = _max_windows(xp, x, k, s, p, d, outs, want, starts)
        if want:
            # windows that never overlap scatter their gradient by plain assignment
            unique = all(s[i] >= d[i] * (k[i] - 1) + 1 for i in range(nd))
            ctx.meta = _empty_windows(xp, idx, starts, d, sp) + (sp, unique)
        if return_indices:
            ctx.mark_non_differentiable(idx)
            return out, idx
        return out

    @staticmethod
    def backward(ctx, g, *_):
        idx, keep, sp, unique = ctx.meta
        return (_ScatterPlanes.apply(g, idx, sp, unique and keep is None, keep),) + (None,) * 6


class _MaxPool3d(_MaxPool):
    backward_name = "MaxPool3DWithIndicesBackward0"


def _max_pool(fn, cls, nd, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    k, s, p, d, outs = _pool_args(fn, input, nd, kernel_size, stride, padding, dilation,
                                  ceil_mode)
    return cls.apply(input, k, s, p, d, outs, bool(return_indices))


def _check_1d(fn, input):
    need_tensor(input, fn)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.ndim}-dimensional "
                           f"tensor for argument #1 'self' (while checking arguments for {fn})")


def _one(v, fn, name, what="should contain one int"):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise RuntimeError(f"{fn}() argument '{name}' {what} (got {len(v)})")
        return int(v[0])
    return int(v)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-d max pooling over ``(N, C, L)`` or ``(C, L)``: ``max`` over each dilated window."""
    fn = "max_pool1d"
    need_tensor(input, fn)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 "
                           f"dim batch size for input, but got:{list(input.shape)}")
    k = _one(kernel_size, fn, "kernel_size")
    s = k if stride is None or isinstance(stride, (tuple, list)) and not stride else \
        _one(stride, fn, "stride")
    p, d = _one(padding, fn, "padding"), _one(dilation, fn, "dilation")
    if k <= 0:
        raise RuntimeError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise RuntimeError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise RuntimeError(f"max_pool1d() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise RuntimeError(f"max_pool1d() padding should be at most half of kernel size, but "
                           f"got padding={p} and kernel_size={k}")
    if d <= 0:
        raise RuntimeError(f"max_pool1d() dilation must be greater than zero, but got {d}")
    if out_size(input.shape[-1], k, s, p, d, ceil_mode) < 1:
        raise RuntimeError(f"max_pool1d() Invalid computed output size: "
                           f"{out_size(input.shape[-1], k, s, p, d, ceil_mode)}")
    r = max_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d), ceil_mode,
                   return_indices)
    if return_indices:
        return r[0].squeeze(-2), r[1].squeeze(-2)
    return r.squeeze(-2)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-d max pooling over ``(N, C, H, W)`` or ``(C, H, W)``; indices are flat ``h * W + w``."""
    return _max_pool("max_pool2d", _MaxPool, 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """3-d max pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""
    return _max_pool("max_pool3d", _MaxPool3d, 3, input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


# ---- max unpooling --------------------------------------------------------------------------

class _MaxUnpool(Function):
    """Place ``x`` at flat indices ``idx`` of zero planes ``sp`` (a repeated index: last wins)."""

    raw = True
    backward_name = "MaxUnpool2DBackward0"

    @staticmethod
    def forward(ctx, x, idx, sp):
        xp = ctx.xp
        nd = len(sp)
        lead = x.shape[:x.ndim - nd]
        n, plane = math.prod(lead), math.prod(sp)
        out = xp.zeros(n * plane, dtype=x.dtype)
        out[_flat_index(xp, idx, n, plane).reshape(-1)] = x.reshape(-1)
        ctx.meta = (idx, nd)
        return out.reshape(lead + tuple(sp))

    @staticmethod
    def backward(ctx, g, *_):
        idx, nd = ctx.meta
        return _GatherPlanes.apply(g, idx, nd), None, None


class _MaxUnpool3d(_MaxUnpool):
    backward_name = "MaxUnpool3DBackward0"


def _unpool_output_size(input, kernel_size, stride, padding, output_size):
    nd = len(kernel_size)
    default = [(input.shape[input.ndim - nd + d] - 1) * stride[d] + kernel_size[d]
               - 2 * padding[d] for d in range(nd)]
    if output_size is None:
        return tuple(default)
    output_size = tuple(output_size)
    if len(output_size) == nd + 2:
        output_size = output_size[2:]
    if len(output_size) != nd:
        raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} "
                         f"elements, but it has a length of '{len(output_size)}'")
    for d in range(nd):
        lo, hi = default[d] - stride[d], default[d] + stride[d]
        if not lo < output_size[d] < hi:
            raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be between '
                             f'{lo} and {hi})')
    return tuple(int(o) for o in output_size)


def _max_unpool(nd, cls, input, indices, kernel_size, stride, padding, output_size):
    fn = f"max_unpool{nd}d"
    need_tensor(input, fn)
    k = _tup(kernel_size, nd, fn, "kernel_size")
    s = k if stride is None else _tup(stride, nd, fn, "stride")
    p = _tup(padding, nd, fn, "padding")
    x, idx = input._data, indices._data
    if x.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Input to max_unpooling{nd}d should be a {nd + 1}d or {nd + 2}d "
                           f"Tensor, but got a tensor with {x.ndim} dimensions.")
    if idx.dtype.name != "int64":
        raise RuntimeError(f"elements in indices should be type int64 but got: "
                           f"{scalar_name(idx.dtype)}")
    if idx.shape != x.shape:
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(x.shape)}) but got indices tensor with shape: "
                           f"{list(idx.shape)}")
    sp = _unpool_output_size(input, k, s, p, output_size)
    plane = math.prod(sp)
    if idx.size:
        bad = (idx < 0) | (idx >= plane)
        if bad.any():
            raise RuntimeError(f"Found an invalid max index: {int(idx[bad].reshape(-1)[0])} "
                               f"(output volumes are of size {'x'.join(map(str, sp))})")
    return cls.apply(input, idx, sp)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of ``max_pool1d``: values back at their indices, zeros elsewhere."""
    k = _one(kernel_size, "max_unpool1d", "kernel_size")
    s = k if stride is None else _one(stride, "max_unpool1d", "stride")
    p = _one(padding, "max_unpool1d", "padding")
    if output_size is not None:
        output_size = tuple(output_size)
        if len(output_size) in (1, 3):
            output_size = output_size[:-1] + (1, output_size[-1])
    return max_unpool2d(input.unsqueeze(-2), indices.unsqueeze(-2), (1, k), (1, s), (0, p),
                        output_size).squeeze(-2)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of ``max_pool2d``: default output ``(in - 1) * stride - 2 * pad + kernel``."""
    return _max_unpool(2, _MaxUnpool, input, indices, kernel_size, stride, padding,
                       output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Inverse of ``max_pool3d``."""
    return _max_unpool(3, _MaxUnpool3d, input, indices, kernel_size, stride, padding,
                       output_size)


# ---- average pooling ------------------------------------------------------------------------

def _divisors(xp, sp, k, s, p, outs, count_include_pad, divisor_override, dtype):
    """PyTorch's per-window divisor, broadcast over the output (as its CPU kernel).

    ``end = min(start + k, size + pad)`` bounds the counted window (so ceil_mode's extra
    windows never count the area past the padding); without ``count_include_pad`` only the
    part inside the input counts.
    """
    if divisor_override is not None:
        return divisor_override
    nd = len(k)
    div = None
    for i in range(nd):
        start = xp.arange(outs[i]) * s[i] - p[i]
        end = xp.minimum(start + k[i], sp[i] + p[i])
        if count_include_pad:
            c = end - start
        else:
            c = xp.minimum(end, sp[i]) - xp.maximum(start, 0)
        c = _bcast(c, i, nd)
        div = c if div is None else div * c
    return div.astype(dtype) if dtype.kind == "f" else div


class _AvgPool(Function):
    """Average pooling over the last ``len(kernel)`` dims."""

    raw = True
    backward_name = "AvgPool2DBackward0"

    @staticmethod
    def forward(ctx, x, k, s, p, outs, count_include_pad, divisor_override):
        xp = ctx.xp
        nd = len(k)
        sp = x.shape[-nd:]
        ones = (1,) * nd
        w = _window_view(xp, _padded(xp, x, nd, p, outs, k, s, ones, 0), nd, outs, k, s, ones)
        offsets = list(itertools.product(*(range(n) for n in k)))
        acc = w[(Ellipsis,) + offsets[0]].copy()
        for off in offsets[1:]:
            acc += w[(Ellipsis,) + off]
        div = _divisors(xp, sp, k, s, p, outs, count_include_pad, divisor_override, x.dtype)
        ctx.meta = (k, s, p, outs, count_include_pad, divisor_override, sp)
        if x.dtype.kind in "iu":  # integer division truncates, as PyTorch's
            return (xp.trunc(acc / div)).astype(x.dtype)
        acc /= div
        return acc

    @staticmethod
    def backward(ctx, g):
        return (_AVG_BWD[len(ctx.meta[0])].apply(g, *ctx.meta),) + (None,) * 6


class _AvgPool3d(_AvgPool):
    backward_name = "AvgPool3DBackward0"


class _AvgPoolBackward(Function):
    """Gradient of ``_AvgPool``: ``g / divisor`` added back over each window (col2im)."""

    raw = True
    backward_name = "AvgPool2DBackwardBackward0"

    @staticmethod
    def forward(ctx, g, k, s, p, outs, count_include_pad, divisor_override, sp):
        xp = ctx.xp
        nd = len(k)
        ctx.meta = (k, s, p, outs, count_include_pad, divisor_override)
        gd = g / _divisors(xp, sp, k, s, p, outs, count_include_pad, divisor_override, g.dtype)
        if gd.dtype != g.dtype:
            gd = gd.astype(g.dtype)
        padded = tuple(builtins.max(sp[i] + p[i], (outs[i] - 1) * s[i] + k[i])
                       for i in range(nd))
        if tuple(s) == tuple(k):
            # windows tile the input: a repeat per dim instead of prod(k) strided adds
            lead = gd.shape[:gd.ndim - nd]
            nl = len(lead)
            tiled = gd
            for i in range(nd):
                if k[i] > 1:
                    tiled = tiled.repeat(k[i], axis=nl + i)
            if tiled.shape[nl:] == padded:
                gx = tiled
            else:
                gx = xp.zeros(lead + padded, dtype=gd.dtype)
                gx[(Ellipsis,) + tuple(slice(0, n) for n in tiled.shape[nl:])] = tiled
        else:
            cols = xp.broadcast_to(gd.reshape(gd.shape + (1,) * nd), gd.shape + tuple(k))
            gx = add_windows(xp, cols, padded, k, s)
        if any(p) or padded != tuple(sp):
            gx = gx[(Ellipsis,) + tuple(slice(p[i], p[i] + sp[i]) for i in range(nd))]
            gx = xp.ascontiguousarray(gx)
        return gx

    @staticmethod
    def backward(ctx, gg):
        k = ctx.meta[0]
        cls = _AvgPool3d if len(k) == 3 else _AvgPool
        return (cls.apply(gg, *ctx.meta),) + (None,) * 7


class _AvgPool3dBackward(_AvgPoolBackward):
    backward_name = "AvgPool3DBackwardBackward0"


_AVG_BWD = {2: _AvgPoolBackward, 3: _AvgPool3dBackward}


def _avg_pool(fn, cls, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    k, s, p, _, outs = _pool_args(fn, input, nd, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    return cls.apply(input, k, s, p, outs, bool(count_include_pad), divisor_override)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-d average pooling over ``(N, C, L)`` or ``(C, L)``."""
    fn = "avg_pool1d"
    _check_1d(fn, input)
    k = _one(kernel_size, fn, "kernel_size")
    s = k if stride is None or isinstance(stride, (tuple, list)) and not stride else \
        _one(stride, fn, "stride")
    p = _one(padding, fn, "padding")
    return avg_pool2d(input.unsqueeze(-2), (1, k), (1, s), (0, p), ceil_mode,
                      count_include_pad).squeeze(-2)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-d average pooling: window sum / divisor (see ``_divisors`` for PyTorch's rule)."""
    return _avg_pool("avg_pool2d", _AvgPool, 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-d average pooling over ``(N, C, D, H, W)`` or ``(C, D, H, W)``."""
    return _avg_pool("avg_pool3d", _AvgPool3d, 3, input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override)


# ---- adaptive pooling -----------------------------------------------------------------------

def _bins(n: int, o: int):
    """PyTorch's adaptive bins along one dim: ``[floor(i n / o), ceil((i + 1) n / o))``."""
    start = [(i * n) // o for i in range(o)]
    end = [-((-(i + 1) * n) // o) for i in range(o)]
    return start, end


def _adaptive_size(fn, input, output_size, nd):
    """Output sizes (``None`` keeps the input's size), with PyTorch's checks."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            if nd == 1:
                raise RuntimeError(f"{fn}() argument 'output_size' should contain one int "
                                   f"(got {len(output_size)})")
            raise RuntimeError(f"{fn}: output_size must be {nd}")
        sizes = tuple(output_size)
    else:
        sizes = (output_size,) * nd
    x = input._data
    sp = x.shape[x.ndim - nd:]
    sizes = tuple(sp[i] if o is None else int(o) for i, o in enumerate(sizes))
    if any(o < 0 for o in sizes):
        raise RuntimeError(f"{fn}: elements of output_size must be greater than or equal to 0 "
                           f"but received {{{', '.join(map(str, sizes))}}}")
    return sizes


def _check_adaptive_input(fn, input, nd, colon=""):
    need_tensor(input, fn)
    x = input._data
    if x.ndim not in (nd + 1, nd + 2):
        if nd == 1:
            raise RuntimeError(f"Expected 2 to 3 dimensions, but got {x.ndim}-dimensional "
                               f"tensor for argument #1 'self' (while checking arguments for "
                               f"{fn})")
        raise RuntimeError(f"{fn}(): Expected {nd + 1}D or {nd + 2}D tensor, but got{colon} "
                           f"{list(x.shape)}")
    for dim in range(x.ndim - nd, x.ndim):
        if x.shape[dim] == 0:
            raise RuntimeError(f"{fn}(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(x.shape)} with dimension "
                               f"{dim} being empty")


def _avg_matrix(xp, n, o, dtype):
    """``(n, o)`` matrix whose column ``i`` averages adaptive bin ``i``."""
    start, end = _bins(n, o)
    pos = xp.arange(n)[:, None]
    st, en = xp.array(start)[None, :], xp.array(end)[None, :]
    return (((pos >= st) & (pos < en)) / (en - st)).astype(dtype)


def _along(xp, a, ax, fn):
    """Apply ``fn`` (acting on the last axis) to axis ``ax`` of ``a``."""
    if ax == a.ndim - 1:
        return fn(a)
    return xp.moveaxis(fn(xp.moveaxis(a, ax, -1)), -1, ax)


class _AdaptiveAvgPool(Function):
    """Adaptive average pooling, separable: a mean or a bin matrix along each dim."""

    raw = True
    backward_name = "AdaptiveAvgPool2DBackward0"

    @staticmethod
    def forward(ctx, x, outs):
        xp = ctx.xp
        nd = len(outs)
        sp = x.shape[-nd:]
        ctx.meta = (sp, outs)
        k = math.prod(sp)
        if all(o == 1 for o in outs) and k > 1 and x.dtype.kind == "f" and \
                x.dtype.itemsize >= 4:
            # global pooling (a CNN's head): one matrix-vector product over each window, ~6x
            # faster than a mean per dim over short strided axes on (32, 512, 2, 2)
            y = xp.matmul(x.reshape(-1, k), xp.ones(k, x.dtype))
            y /= k
            return y.reshape(x.shape[:-nd] + (1,) * nd)
        y = x
        for i in range(nd):
            ax, n, o = x.ndim - nd + i, sp[i], outs[i]
            if n == o:
                continue
            if o and n % o == 0:
                y = y.reshape(y.shape[:ax] + (o, n // o) + y.shape[ax + 1:]).mean(ax + 1)
            else:
                a = _avg_matrix(xp, n, o, y.dtype)
                y = _along(xp, y, ax, lambda t: t @ a)
        if y is x:
            y = x.copy()
        return y if y.dtype == x.dtype else y.astype(x.dtype)

    @staticmethod
    def backward(ctx, g):
        sp, outs = ctx.meta
        nd = len(outs)
        xp = xp_of(g._data)
        for i in range(nd):
            ax, n, o = g.ndim - nd + i, sp[i], outs[i]
            if n == o:
                continue
            if o and n % o == 0:
                k = n // o
                shape = tuple(g.shape)
                g = (g / k).unsqueeze(ax + 1).expand(
                    shape[:ax + 1] + (k,) + shape[ax + 1:]).reshape(
                    shape[:ax] + (n,) + shape[ax + 1:])
            else:
                at = _make(xp.ascontiguousarray(_avg_matrix(xp, n, o, g._data.dtype).T))
                g = (g.transpose(ax, -1) @ at).transpose(ax, -1)
        return g, None


class _AdaptiveAvgPool3d(_AdaptiveAvgPool):
    backward_name = "AdaptiveAvgPool3DBackward0"


class _AdaptiveMaxPool(Function):
    """Adaptive max pooling with uneven bins: gather the clamped bins, then the max loop."""

    raw = True
    backward_name = "AdaptiveMaxPool2DBackward0"

    @staticmethod
    def forward(ctx, x, outs, return_indices):
        xp = ctx.xp
        nd = len(outs)
        sp = x.shape[-nd:]
        starts, lens, kmax = [], [], []
        g = x
        for i in range(nd):
            start, end = _bins(sp[i], outs[i])
            km = builtins.max([e - b for b, e in zip(start, end)], default=1)
            st, ln = xp.array(start, dtype="int64"), xp.array(end, dtype="int64")
            ln -= st
            # a bin shorter than kmax repeats its last position (harmless for a max)
            pi = st[:, None] + xp.minimum(xp.arange(km)[None, :], ln[:, None] - 1)
            starts.append(st)
            lens.append(ln)
            kmax.append(km)
            g = g.take(pi.reshape(-1), axis=x.ndim - nd + i)
        lead = x.shape[:x.ndim - nd]
        shape = lead + tuple(d for i in range(nd) for d in (outs[i], kmax[i]))
        g = g.reshape(shape)
        nl = len(lead)
        g = g.transpose(tuple(range(nl)) + tuple(nl + 2 * i for i in range(nd))
                        + tuple(nl + 2 * i + 1 for i in range(nd)))
        out, idx = _argmax_loop(xp, g, sp, True, starts, (1,) * nd, lens)
        ctx.meta = (idx, sp)
        if return_indices:
            ctx.mark_non_differentiable(idx)
            return out, idx
        return out

    @staticmethod
    def backward(ctx, g, *_):
        idx, sp = ctx.meta
        return _ScatterPlanes.apply(g, idx, sp, False), None, None


class _AdaptiveMaxPoolEven(_MaxPool):
    backward_name = "AdaptiveMaxPool2DBackward0"


class _AdaptiveMaxPool3d(_AdaptiveMaxPool):
    backward_name = "AdaptiveMaxPool3DBackward0"


class _AdaptiveMaxPool3dEven(_MaxPool):
    backward_name = "AdaptiveMaxPool3DBackward0"


def _adaptive_max(fn, nd, input, output_size, return_indices):
    _check_adaptive_input(fn, input, nd, colon=":")
    outs = _adaptive_size(fn, input, output_size, nd)
    x = input._data
    if x.ndim == nd + 2 and x.shape[1] == 0:  # batched: the channels are non-batch too here
        raise RuntimeError(f"{fn}(): Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {list(x.shape)} with dimension 1 "
                           "being empty")
    sp = x.shape[x.ndim - nd:]
    if 0 not in outs and all(n % o == 0 for n, o in zip(sp, outs)):
        k = tuple(n // o for n, o in zip(sp, outs))
        cls = _AdaptiveMaxPool3dEven if nd == 3 else _AdaptiveMaxPoolEven
        return cls.apply(input, k, k, (0,) * nd, (1,) * nd, outs, bool(return_indices))
    cls = _AdaptiveMaxPool3d if nd == 3 else _AdaptiveMaxPool
    return cls.apply(input, outs, bool(return_indices))


def adaptive_avg_pool1d(input, output_size):
    """Average over PyTorch's adaptive bins of ``(N, C, L)`` or ``(C, L)``."""
    fn = "adaptive_avg_pool1d"
    _check_adaptive_input(fn, input, 1)
    o = _adaptive_size(fn, input, output_size, 1)
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, o[0])).squeeze(-2)


def adaptive_avg_pool2d(input, output_size):
    """Average over bins ``[floor(i L / out), ceil((i + 1) L / out))`` of the last 2 dims."""
    fn = "adaptive_avg_pool2d"
    _check_adaptive_input(fn, input, 2)
    return _AdaptiveAvgPool.apply(input, _adaptive_size(fn, input, output_size, 2))


def adaptive_avg_pool3d(input, output_size):
    """Adaptive average pooling of the last 3 dims."""
    fn = "adaptive_avg_pool3d"
    _check_adaptive_input(fn, input, 3)
    return _AdaptiveAvgPool3d.apply(input, _adaptive_size(fn, input, output_size, 3))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over PyTorch's adaptive bins of ``(N, C, L)`` or ``(C, L)``."""
    fn = "adaptive_max_pool1d"
    _check_adaptive_input(fn, input, 1)
    o = _adaptive_size(fn, input, output_size, 1)
    r = adaptive_max_pool2d(input.unsqueeze(-2), (1, o[0]), return_indices)
    if return_indices:
        return r[0].squeeze(-2), r[1].squeeze(-2)
    return r.squeeze(-2)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over adaptive bins of the last 2 dims; indices are flat ``h * W + w``."""
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Max over adaptive bins of the last 3 dims."""
    return _adaptive_max("adaptive_max_pool3d", 3, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool1d(input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool2d(input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=True):
    return adaptive_max_pool3d(input, output_size, True)


# ---- power-average pooling ------------------------------------------------------------------

def _lp(input, norm_type, kernel_size, stride, ceil_mode, nd):
    from .activation import relu
    from .elementwise import sign, abs as _abs
    k = _tup(kernel_size, nd, f"lp_pool{nd}d", "kernel_size")
    pool = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}[nd]
    ks = k[0] if nd == 1 else k
    if stride is not None:
        out = pool(input.pow(norm_type), ks, stride, 0, ceil_mode)
    else:
        out = pool(input.pow(norm_type), ks, padding=0, ceil_mode=ceil_mode)
    # PyTorch's formula: sign(out) * relu(|out|) keeps odd powers' sign, then the p-th root
    return (sign(out) * relu(_abs(out))).mul(math.prod(k)).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling: ``(sum_window x^p)^(1/p)`` (PyTorch's formula via avg_pool1d)."""
    return _lp(input, norm_type, kernel_size, stride, ceil_mode, 1)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over 2-d windows: ``(sum_window x^p)^(1/p)``."""
    return _lp(input, norm_type, kernel_size, stride, ceil_mode, 2)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over 3-d windows: ``(sum_window x^p)^(1/p)``."""
    return _lp(input, norm_type, kernel_size, stride, ceil_mode, 3)


# ---- fractional max pooling -----------------------------------------------------------------

def _intervals(xp, u, n: int, o: int, k: int, dt):
    """Window starts ``(P, o)`` for samples ``u`` ``(P,)``, in the input's float type as
    PyTorch's kernel: ``start_i = int((i + u)·α) - int(u·α)``, ``α = (n - k)/(o - 1)``, and
    the last window ends at the input's end."""
    u = u.astype(dt)
    seq = xp.empty((u.shape[0], o), dtype="int64")
    if o > 1:
        alpha = dt.type(n - k) / dt.type(o - 1)
        i = xp.arange(o - 1).astype(dt)
        seq[:, :-1] = (((i[None, :] + u[:, None]) * alpha).astype("int64")
                       - (u * alpha).astype("int64")[:, None])
    if o > 0:
        seq[:, -1] = n - k
    return seq


class _FractionalMaxPool(Function):
    """Max over pseudo-random windows: per plane, the starts along each dim come from one
    uniform sample (``_random_samples``); outputs (values, flat per-plane indices)."""

    raw = True
    backward_name = "FractionalMaxPool2DBackward0"

    @staticmethod
    def forward(ctx, x, k, outs, samples):
        xp = ctx.xp
        nd = len(k)
        lead = x.shape[:-nd]
        sp = x.shape[-nd:]
        planes = math.prod(lead)
        dt = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else xp.dtype("float32")
        u = samples.reshape(-1, samples.shape[-1])[:planes]
        g = x.reshape((planes,) + sp)
        pos = []
        for i in range(nd):  # gather each dim's windows: (P, ..., o_i * k_i, ...)
            start = _intervals(xp, u[:, i], sp[i], outs[i], k[i], dt)
            p_i = (start[:, :, None] + xp.arange(k[i])).reshape(planes, -1)
            pos.append(p_i.reshape(planes, outs[i], k[i]))
            shape = [planes] + [1] * nd
            shape[1 + i] = -1
            g = xp.take_along_axis(g, p_i.reshape(shape), 1 + i)
        g = g.reshape((planes,) + tuple(d for i in range(nd) for d in (outs[i], k[i])))
        g = g.transpose((0,) + tuple(1 + 2 * i for i in range(nd))
                        + tuple(2 + 2 * i for i in range(nd)))
        cols = g.reshape((planes,) + tuple(outs) + (-1,))
        if cols.shape[-1] == 0:  # an empty window (kernel 0): -inf, as PyTorch's kernel
            out = xp.full(cols.shape[:-1], -xp.inf, x.dtype)
            am = xp.zeros(cols.shape[:-1], "int64")
        else:
            # the first maximum in window order, or the last NaN (PyTorch's comparison)
            am = cols.argmax(-1)
            nan = xp.isnan(cols)
            if nan.any():
                last = cols.shape[-1] - 1 - nan[..., ::-1].argmax(-1)
                am = xp.where(nan.any(-1), last, am)
            out = xp.take_along_axis(cols, am[..., None], -1)[..., 0]
        idx = xp.zeros(am.shape, "int64")
        kst = _plane_strides(k)
        pst = _plane_strides(sp)
        for i in range(nd):  # the flat input index of the chosen window position
            j = am // kst[i] % k[i] if k[i] else am
            start = pos[i][:, :, 0].reshape([planes] + [1] * i + [-1] + [1] * (nd - 1 - i))
            idx += (start + j) * pst[i]
        out = out.reshape(lead + tuple(outs))
        idx = idx.reshape(lead + tuple(outs))
        ctx.meta = (idx, sp)
        ctx.mark_non_differentiable(idx)
        return out, idx

    @staticmethod
    def backward(ctx, g, _):
        idx, sp = ctx.meta
        return _ScatterPlanes.apply(g, idx, sp, False), None, None, None


class _FractionalMaxPool3d(_FractionalMaxPool):
    backward_name = "FractionalMaxPool3DBackward0"


def _fractional(nd, input, kernel_size, output_size, output_ratio, return_indices,
                _random_samples):
    fn = f"fractional_max_pool{nd}d"
    if output_size is None and output_ratio is None:
        raise ValueError(f"{fn} requires specifying either an output_size or an output_ratio")
    need_tensor(input, fn)
    if output_size is None:
        if nd == 2 and isinstance(output_ratio, (tuple, list)) and len(output_ratio) > 2:
            raise ValueError(f"{fn} requires output_ratio to either be a single Int or tuple of "
                             "Ints.")
        ratio = (tuple(output_ratio) if isinstance(output_ratio, (tuple, list))
                 else (output_ratio,) * nd)
        output_size = [int(input.shape[-nd + i] * ratio[i]) for i in range(nd)]
    k = _tup(kernel_size, nd, fn, "kernel_size")
    outs = _tup(output_size, nd, fn, "output_size")
    if input.dim() not in (nd + 1, nd + 2):
        raise RuntimeError(f"{fn}(): non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor "
                           f"expected for input, but got: ndim {input.dim()}")
    channels = input.shape[-nd - 1]
    batch = 1 if input.dim() == nd + 1 else input.shape[0]
    if _random_samples is None:
        from .._creation import rand
        _random_samples = rand(batch, channels, nd, dtype=input.dtype)
    s = _random_samples
    if s.dtype != input.dtype:
        raise RuntimeError("Expect _random_samples to have the same dtype as input")
    if s.dim() != 3:
        raise RuntimeError(f"Expect _random samples to have 3 dimensions, got {s.dim()}")
    if s.shape[0] < batch:
        raise RuntimeError("Expect _random_samples.size(0) no less then input batch size.")
    if s.shape[1] != channels:
        raise RuntimeError("Expect _random_samples.size(1) equals to input channel size.")
    if s.shape[2] != nd:
        raise RuntimeError(f"Expect _random_samples.size(2) equals to {nd}; got {s.shape[2]}.")
    names = {2: (("height", "height"), ("width", "width")),
             3: (("time", "time"), ("height", "height"), ("width", "width"))}[nd]
    where = f"{fn}()" if nd == 2 else f"{fn}_out()"
    for i in range(nd):
        n = input.shape[-nd + i]
        if outs[i] + k[i] - 1 > n:
            raise RuntimeError(f"{where}: pool {names[i][0]} {k[i]} too large relative to input "
                               f"{names[i][1]} {n}")
    # PyTorch's samples hold (W, H) for 2-d planes and (T, H, W) for 3-d ones
    sd = s._data[:batch].reshape(-1, nd)
    if nd == 2:
        sd = sd[:, ::-1]
    cls = _FractionalMaxPool3d if nd == 3 else _FractionalMaxPool
    out, idx = cls.apply(input, k, outs, sd)
    return (out, idx) if return_indices else out


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    """Max pooling over pseudo-random, overlapping ``kernel_size`` windows whose starts step
    by a fractional stride to give ``output_size`` (or ``output_ratio`` × input) outputs."""
    return _fractional(2, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    """Fractional max pooling over (T, H, W) windows (``fractional_max_pool2d`` in 3-d)."""
    return _fractional(3, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """``(values, indices)`` of ``fractional_max_pool2d``."""
    return _fractional(2, input, kernel_size, output_size, output_ratio, True, _random_samples)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None, output_ratio=None,
                                       return_indices=False, _random_samples=None):
    """``(values, indices)`` of ``fractional_max_pool3d``."""
    return _fractional(3, input, kernel_size, output_size, output_ratio, True, _random_samples)
