"""``F.pad``: constant, reflect, replicate and circular padding -- forward and backward.

``pad`` lists ``(left, right)`` pairs starting from the LAST dim, as PyTorch's.  A negative
pad crops.  Every mode is "pad the positive parts on the original, then crop the negative
parts" (what PyTorch computes too).

Constant padding is one node (``ConstantPadNdBackward0``) whose gradient is the same op with
the pads negated (a crop), so it is differentiable to any order.  The other modes read each
output position from one input position (an index map per padded dim, built by ``_index``);
forward is one ``take`` per padded dim and backward (``_IndexPadBackward``) the adjoint: the
output splits into at most three runs (left border, centre, right border) that map to input
positions with step +1, -1 or 0, so it is a handful of slice-adds (step 0, replicate's border,
sums the run).  The backward's own backward is the forward again.
"""
from __future__ import annotations

import builtins
import operator

from ..autograd.function import Function
from .._tensor import Tensor

__all__ = ["pad"]

_MODES = ("constant", "reflect", "replicate", "circular")
_DIM_NAMES = "WHD"


# ---- constant ---------------------------------------------------------------------------------

def _constant_shape(shape, pad):
    out = list(shape)
    for i in range(len(pad) // 2):
        d = len(shape) - 1 - i
        n = shape[d] + pad[2 * i] + pad[2 * i + 1]
        if n < 0:
            raise RuntimeError(
                f"narrow(): length must be non-negative. (padding ({pad[2 * i]}, "
                f"{pad[2 * i + 1]}) on dimension {d} of size {shape[d]} of input "
                f"{list(shape)} gives size {n})")
        out[d] = n
    return tuple(out)


def _slices(shape, pad):
    """Where the input lands in the output (``dst``) and which part of it is kept (``src``)."""
    nd = len(shape)
    src = [slice(None)] * nd
    dst = [slice(None)] * nd
    for i in range(len(pad) // 2):
        d = nd - 1 - i
        lo, hi, n = pad[2 * i], pad[2 * i + 1], shape[d]
        s0, s1 = builtins.max(-lo, 0), n - builtins.max(-hi, 0)
        d0 = builtins.max(lo, 0)
        src[d] = slice(s0, builtins.max(s1, s0))
        dst[d] = slice(d0, d0 + builtins.max(s1 - s0, 0))
    return tuple(src), tuple(dst)


class _ConstantPad(Function):
    """Constant padding; its gradient crops (the same op with negated pads)."""

    raw = True
    backward_name = "ConstantPadNdBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, x, pad, value):
        shape = _constant_shape(x.shape, pad)
        out = ctx.xp.full(shape, value, dtype=x.dtype)
        src, dst = _slices(x.shape, pad)
        out[dst] = x[src]
        ctx.pad = pad
        return out

    @staticmethod
    def backward(ctx, g):
        return _ConstantPad.apply(g, tuple(-p for p in ctx.pad), 0), None, None


# ---- reflect / replicate / circular ----------------------------------------------------------

def _runs(mode, n, lo, hi):
    """Runs ``(out_start, out_stop, in_first, step)`` covering the padded range of one dim.

    Output position ``j`` stands for virtual input position ``j - lo``; the left border
    (virtual < 0), centre and right border (virtual >= n) each map with a fixed step.
    Circular padding wraps the CROPPED input (PyTorch crops first, then wraps).
    """
    if mode == "circular":
        c0 = builtins.max(-lo, 0)
        m = n - c0 - builtins.max(-hi, 0)
        pl, pr = builtins.max(lo, 0), builtins.max(hi, 0)
        runs = [(0, pl, c0 + m - pl, 1), (pl, pl + m, c0, 1), (pl + m, pl + m + pr, c0, 1)]
        return [r for r in runs if r[1] > r[0]]
    a, b = -lo, n + hi  # virtual range kept
    pieces = [(builtins.min(a, 0), 0), (0, n), (n, builtins.max(b, n))]
    runs = []
    for k, (p0, p1) in enumerate(pieces):
        p0, p1 = builtins.max(p0, a), builtins.min(p1, b)
        if p0 >= p1:
            continue
        if k == 1:
            first, step = p0, 1
        elif mode == "reflect":
            first, step = (-p0, -1) if k == 0 else (2 * (n - 1) - p0, -1)
        else:  # replicate
            first, step = (0, 0) if k == 0 else (n - 1, 0)
        runs.append((p0 - a, p1 - a, first, step))
    return runs


def _index(xp, mode, n, lo, hi):
    """Input position read by each output position of one padded dim."""
    if mode == "circular":
        c0 = builtins.max(-lo, 0)
        m = n - c0 - builtins.max(-hi, 0)
        return c0 + xp.arange(-builtins.max(lo, 0), m + builtins.max(hi, 0)) % m
    j = xp.arange(-lo, n + hi)
    if mode == "reflect":
        j = xp.abs(j)
        return xp.where(j >= n, 2 * (n - 1) - j, j)
    return xp.clip(j, 0, n - 1)


def _pad_index(xp, x, mode, pad):
    for i in range(len(pad) // 2):
        ax = x.ndim - 1 - i
        x = x.take(_index(xp, mode, x.shape[ax], pad[2 * i], pad[2 * i + 1]), axis=ax)
    return x


def _unpad_index(xp, g, mode, pad, shape):
    """Adjoint of ``_pad_index``: add every output position's gradient to the input it read."""
    for i in range(len(pad) // 2):
        ax = g.ndim - 1 - i
        n = shape[ax]
        gs = list(g.shape)
        gs[ax] = n
        out = xp.zeros(gs, dtype=g.dtype)
        pre = (slice(None),) * ax
        for o0, o1, first, step in _runs(mode, n, pad[2 * i], pad[2 * i + 1]):
            src = g[pre + (slice(o0, o1),)]
            m = o1 - o0
            if step == 1:
                out[pre + (slice(first, first + m),)] += src
            elif step == -1:
                last = first - m + 1
                out[pre + (slice(last, first + 1),)] += xp.flip(src, axis=ax)
            else:
                out[pre + (slice(first, first + 1),)] += src.sum(axis=ax, keepdims=True)
        g = out
    return g


class _IndexPad(Function):
    """Reflect, replicate or circular padding of the last ``len(pad) // 2`` dims."""

    raw = True

    @staticmethod
    def forward(ctx, x, mode, pad):
        ctx.meta = (mode, pad, x.shape)
        return _pad_index(ctx.xp, x, mode, pad)

    @staticmethod
    def backward(ctx, g):
        mode, pad, shape = ctx.meta
        return _IndexPadBackward.apply(g, mode, pad, shape), None, None


class _IndexPadBackward(Function):
    """Gradient of ``_IndexPad``; its own gradient is ``_IndexPad`` again (the adjoint pair)."""

    raw = True

    @staticmethod
    def forward(ctx, g, mode, pad, shape):
        ctx.meta = (mode, pad)
        return _unpad_index(ctx.xp, g, mode, pad, shape)

    @staticmethod
    def backward(ctx, gg):
        mode, pad = ctx.meta
        return _PAD_CLS[mode, len(pad) // 2].apply(gg, mode, pad), None, None, None


def _named(base, name):
    return type(name.replace("Backward0", ""), (base,), {"backward_name": name})


_PAD_CLS = {(m, k): _named(_IndexPad, f"{c}Pad{k}DBackward0")
            for m, c in (("reflect", "Reflection"), ("replicate", "Replication"))
            for k in (1, 2, 3)}
# PyTorch pads circularly by slice assignment, so its grad_fn is CopySlices.
_PAD_CLS.update({("circular", k): _named(_IndexPad, "torch::autograd::CopySlices")
                 for k in (1, 2, 3)})


# ---- checks and entry point ------------------------------------------------------------------

def _pad_arg(pad) -> tuple:
    if not isinstance(pad, (tuple, list)) and not hasattr(pad, "__len__") or isinstance(
            pad, Tensor):
        raise TypeError(f"pad(): argument 'pad' (position 2) must be tuple of ints, not "
                        f"{type(pad).__name__}")
    out = []
    for i, p in enumerate(pad):
        if isinstance(p, builtins.bool) or not hasattr(p, "__index__"):
            raise TypeError(f"pad(): argument 'pad' (position 2) must be tuple of ints, but "
                            f"found element of type {type(p).__name__} at pos {i}")
        out.append(operator.index(p))
    return tuple(out)


def _check_index_pad(x, mode, pad):
    nd, k = x.ndim, len(pad) // 2
    if k not in (1, 2, 3) or nd not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {nd}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    shape = x.shape
    if x.dtype.kind == "b" and mode != "circular":
        kernel = "reflection" if mode == "reflect" else "replication"
        raise NotImplementedError(f"\"{kernel}_pad{k}d\" not implemented for 'Bool'")
    if mode == "circular":
        for i in range(k):
            n = shape[nd - 1 - i]
            lo, hi = pad[2 * i], pad[2 * i + 1]
            if n + lo + hi < 0:
                raise RuntimeError(
                    f"Negative padding value is resulting in an empty dimension (padding "
                    f"({lo}, {hi}) at dimension {nd - 1 - i} of input {list(shape)})")
            # PyTorch checks against the uncropped size only (and reads uninitialised memory
            # when a pad exceeds the cropped size); the wrap is of the cropped input.
            m = n - builtins.max(-lo, 0) - builtins.max(-hi, 0)
            if lo > m or hi > m:
                raise RuntimeError(
                    f"Padding value causes wrapping around more than once. (padding ({lo}, "
                    f"{hi}) at dimension {nd - 1 - i} of input {list(shape)})")
        return
    if 0 in shape[nd - k - 1:] if nd == k + 2 else 0 in shape:
        raise RuntimeError(
            f"Expected {k + 1}D or {k + 2}D (batch mode) tensor with possibly 0 batch size and "
            f"other non-zero dimensions for input, but got: {list(shape)}")
    for i in range(k):
        n = shape[nd - 1 - i]
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                f"Argument #{4 + 2 * i}: Padding size should be less than the corresponding "
                f"input dimension, but got: padding ({lo}, {hi}) at dimension {nd - 1 - i} of "
                f"input {list(shape)}")
        if n + lo + hi < 1:
            raise RuntimeError(f"input ({_DIM_NAMES[i]}: {n}) is too small. Calculated output "
                               f"{_DIM_NAMES[i]}: {n + lo + hi}")


def pad(input, pad, mode: str = "constant", value=None):
    """Pad ``input``: ``pad = (left_last, right_last, left_2nd_last, ...)``; negative crops.

    Modes as ``torch.nn.functional.pad``: ``constant`` (any number of dims, fill ``value``,
    default 0), ``reflect`` (mirror without the edge), ``replicate`` (repeat the edge),
    ``circular`` (wrap around); the last three pad the last 1-3 dims of a (batched) input.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    p = _pad_arg(pad)
    x = input._data
    if len(p) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(p) // 2 > x.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the "
                           f"input dimension but got padding length {len(p)} and input of "
                           f"dimension {x.ndim}")
    if mode not in _MODES:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and isinstance(value, complex):
        raise TypeError(f"pad(): argument 'value' (position 4) must be float, not complex")
    if mode == "constant":
        return _ConstantPad.apply(input, p, 0 if value is None else value)
    if value is not None and value != 0:
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    _check_index_pad(x, mode, p)
    return _PAD_CLS[mode, len(p) // 2].apply(input, mode, p)
