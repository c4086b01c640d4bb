"""Neural-network ops: layers family (linear, bilinear, embeddings, dropout).

``linear`` is one fused Function: one node instead of three, and forward plus
backward measured ~2x faster than ``matmul(x, w.t()) + b`` on (128, 784) x (512, 784)
and ~1.4x on (4, 8) x (8, 8).  ``embedding`` and ``embedding_bag`` are Functions
whose backward builds the table gradient with ``_EmbeddingDenseBackward`` (itself
differentiable, so ``create_graph=True`` works).  The dropout family multiplies by
a constant mask drawn from ember's default generator (what PyTorch records on CPU:
``MulBackward0``), so ``ember.manual_seed`` makes every mask reproducible.
"""
from __future__ import annotations

import math
import warnings

from ..autograd.function import AccumulateGrad, Function, _version_counter
from ..autograd.grad_mode import no_grad, state
from .._backend import xp_of
from .._dtype import from_np
from .._tensor import Tensor, _make
from ..random import _gen
from ._util import reduce_grad, need_tensor, scalar_name, c_name, is_float, holomorphic
from .elementwise import Mul, Add
from .index import IndexSelect, ScatterAdd
from .sparse import from_values as sparse_from_values
from .._sparse import COO
from .linalg import matmul, lowp_matmul, half_to_float, mm_into
from . import _workspace as ws

__all__ = ["linear", "bilinear", "embedding", "embedding_bag", "dropout", "dropout1d",
           "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]


# ----------------------------------------------------------------------------------------------
# linear


class _Linear(Function):
    """``x @ w.T + b`` over the last dim of ``x``: one GEMM on ``x`` folded to rows."""

    raw = True
    backward_name = "AddmmBackward0"

    @staticmethod
    def forward(ctx, x, w, b):
        _linear_dtypes(x, w, b)  # here, after the modes: autocast casts mixed inputs first
        lead = x.shape[:-1]
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        # the bias joins the product's pass (NOTE [ GEMM layouts ] in ops/linalg.py)
        out = lowp_matmul(ctx.xp, x2, w.T, keep=True, add=b)
        if b is not None:
            ctx.bmeta = (b.shape, b.dtype)
        if out.dtype != x.dtype:  # float16/bfloat16: float32 sum rounded once
            out = out.astype(x.dtype)
        if ctx._record:  # x only for w's gradient, w only for x's (as PyTorch's addmm)
            need_x, need_w = ctx.needs_input_grad[:2]
            ctx.save_for_backward(x if need_w else None, w if need_x else None)
            ctx.xshape = x.shape
        return out if x.ndim == 2 else out.reshape(lead + (w.shape[0],))

    @holomorphic  # complex weights: g @ conj(w), conj(x)^T g (ops/_util.py)
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        xs = ctx.xshape
        g2 = g if len(xs) == 2 else g.reshape(-1, g._data.shape[-1])
        gx = gw = gb = None
        d = g2._data
        if not state.grad and d.dtype.itemsize == 2 and d.dtype.kind in "fV":
            # half precision without a graph: g in float32 once for both GEMMs (each rounded)
            xp = ctx.xp
            g32 = half_to_float(xp, d)
            if need_x:
                gx = _make(xp.matmul(g32, half_to_float(xp, w._data)).astype(d.dtype))
            if need_w:
                x32 = half_to_float(xp, x._data).reshape(-1, xs[-1])
                gw = _make(mm_into(xp, g32.T, x32).astype(d.dtype))  # batch 1: an outer product
        else:
            if need_x:
                gx = g2 @ w
            if need_w:
                # A leaf's .grad is made fresh, which the engine keeps without a copy.  Not
                # where a tensor hook could keep the gradient: the engine sees only the
                # array's references, so .grad would alias it (and += into it); a block from
                # the workspace is copied instead.  (nf is empty in a compiled region.)
                nf = ctx.next_functions
                if state.grad or state.intercept or d.dtype.kind != "f" or len(nf) < 2 or \
                        nf[1][0].__class__ is not AccumulateGrad or nf[1][0].variable._hooks:
                    x2 = x if len(xs) == 2 else x.reshape(-1, xs[-1])
                    gw = g2.mT @ x2
                else:
                    x2 = x._data if len(xs) == 2 else x._data.reshape(-1, xs[-1])
                    gw = _make(mm_into(ctx.xp, d.T, x2, fresh=True))
        if gx is not None and len(xs) != 2:
            gx = gx.reshape(xs)
        if need_b:
            bshape, bdt = ctx.bmeta
            gb = reduce_grad(g2.sum(0), bshape, bdt)
        return gx, gw, gb


# PyTorch's grad_fn for (rank of input capped at 3, has bias)
class _LinearMm(_Linear):
    backward_name = "MmBackward0"


class _LinearView(_Linear):
    backward_name = "ViewBackward0"


class _LinearSqueeze(_Linear):
    backward_name = "SqueezeBackward4"


class _LinearUnsafeView(_Linear):
    backward_name = "UnsafeViewBackward0"


_LINEAR = {(2, True): _Linear, (2, False): _LinearMm, (1, True): _LinearView,
           (1, False): _LinearSqueeze, (3, True): _LinearView, (3, False): _LinearUnsafeView}


def _linear_checks(x, w, b) -> None:
    if x.shape[-1] != w.shape[1]:
        rows = 1
        for s in x.shape[:-1]:
            rows *= s
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{x.shape[-1]} "
                           f"and {w.shape[1]}x{w.shape[0]})")
    if x.dtype.kind == "b":
        raise NotImplementedError("\"addmm_impl_cpu_\" not implemented for 'Bool'")
    if b is not None:
        if b.ndim == 1 and b.shape[0] not in (1, w.shape[0]):
            rows = 1
            for s in x.shape[:-1]:
                rows *= s
            raise RuntimeError(f"The expanded size of the tensor ({w.shape[0]}) must match the "
                               f"existing size ({b.shape[0]}) at non-singleton dimension 1.  "
                               f"Target sizes: [{rows}, {w.shape[0]}].  Tensor sizes: "
                               f"[{b.shape[0]}]")


def _linear_dtypes(x, w, b) -> None:
    """PyTorch's errors for mixed dtypes (checked in ``_Linear.forward``, after autocast)."""
    if x.dtype != w.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{c_name(x.dtype)} != {c_name(w.dtype)}")
    if b is not None and b.dtype != w.dtype:
        raise RuntimeError(f"self and mat2 must have the same dtype, but got "
                           f"{scalar_name(b.dtype)} and {scalar_name(w.dtype)}")


def linear(input, weight, bias=None):
    """``y = input @ weight.T + bias`` for ``input`` of shape ``(*, in_features)``."""
    need_tensor(input, "linear")
    need_tensor(weight, "linear", "weight", 2)
    if bias is not None:
        need_tensor(bias, "linear", "bias", 3)
    if input.is_quantized or weight.is_quantized:  # before any path runs on the integers
        from .quantized import linear_error
        raise linear_error(input, weight, bias)
    x, w = input._data, weight._data
    b = None if bias is None else bias._data
    if x.ndim == 0 or w.ndim == 0:
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are "
                           f"{x.ndim}D and {w.ndim}D")
    if w.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {w.ndim}D")
    if w.ndim == 1 or b is not None and b.ndim > 1:
        # rare forms (vector weight, matrix bias): PyTorch's own composition
        out = matmul(input, weight.t())
        return out if bias is None else out + bias
    _linear_checks(x, w, b)
    nd = x.ndim if x.ndim < 3 else 3
    return _LINEAR[nd, b is not None].apply(input, weight, bias)


def bilinear(input1, input2, weight, bias=None):
    """``y[..., o] = sum_ij input1[..., i] * weight[o, i, j] * input2[..., j] + bias[o]``."""
    for i, (n, t) in enumerate((("input1", input1), ("input2", input2), ("weight", weight))):
        need_tensor(t, "bilinear", n, i + 1)
    a, c, w = input1._data, input2._data, weight._data
    if a.ndim != c.ndim:
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {a.ndim} and "
                           f"{c.ndim}")
    for d in range(a.ndim - 1):
        if a.shape[d] != c.shape[d]:
            raise RuntimeError(f"bilinear(): input batch dimensions do not match at dim {d}: "
                               f"got {a.shape[d]} and {c.shape[d]}")
    if w.ndim != 3:
        raise RuntimeError(f"bilinear(): weight must be 3-D (out_features, in1_features, "
                           f"in2_features), but got {w.ndim}-D")
    if a.shape[-1] != w.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got "
                           f"{a.shape[-1]} but expected {w.shape[1]}")
    if c.shape[-1] != w.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got "
                           f"{c.shape[-1]} but expected {w.shape[2]}")
    if bias is not None and bias._data.ndim and bias._data.shape[0] != w.shape[0]:
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got "
                           f"{bias._data.shape[0]} but expected {w.shape[0]}")
    dts = [a.dtype, c.dtype, w.dtype] + ([bias._data.dtype] if bias is not None else [])
    if any(d != a.dtype for d in dts):
        names = ", ".join(f"{n}: {c_name(d)}" for n, d in zip(
            ("input1", "input2", "weight", "bias"), dts))
        raise RuntimeError(f"All tensors must have the same dtype, got {names}")
    n_out, n1, n2 = w.shape
    lead = a.shape[:-1]
    # (rows, in1) @ (in1, out*in2), then contract in2 against input2 with a batched matmul
    x1 = input1.reshape(-1, n1)
    x2 = input2.reshape(-1, n2)
    t = (x1 @ weight.permute(1, 0, 2).reshape(n1, n_out * n2)).reshape(-1, n_out, n2)
    y = (t @ x2.reshape(-1, n2, 1)).reshape(lead + (n_out,))
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------------------------
# embedding


def _index_type_name(npd) -> str:
    # PyTorch's embedding check prints the legacy type name; bool its old CPUBoolType name
    return "CPUBoolType" if npd.kind == "b" else "torch." + from_np(npd).legacy_name


def _check_indices(idx, fn: str) -> None:
    dt = idx.dtype
    if dt.kind != "i" or dt.itemsize < 4:
        raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                           f"following scalar types: Long, Int; but got "
                           f"{_index_type_name(dt)} instead (while checking "
                           f"arguments for {fn})")


def _padding(padding_idx, n: int, name: str = "Padding_idx") -> int:
    """PyTorch's normalised ``padding_idx`` (-1 for none)."""
    if padding_idx is None:
        return -1
    if padding_idx > 0 and padding_idx >= n or padding_idx < 0 and padding_idx < -n:
        raise AssertionError(f"{name} must be within num_embeddings")
    return padding_idx + n if padding_idx < 0 else padding_idx


def _renorm_(weight: Tensor, idx, max_norm, norm_type) -> None:
    """Scale the rows of ``weight`` that ``idx`` references to norm at most ``max_norm``."""
    w = weight._data
    xp = xp_of(w)
    rows = xp.unique(idx.reshape(-1))
    if rows.size == 0:
        return
    sel = w[rows]
    mag = xp.abs(sel.astype("float64"))
    if norm_type == math.inf:
        norms = mag.max(1)
    elif norm_type == 0:
        norms = (mag != 0).sum(1).astype("float64")
    else:
        norms = (mag ** norm_type).sum(1) ** (1.0 / norm_type)
    big = norms > max_norm
    if big.any():
        scale = max_norm / (norms[big] + 1e-7)
        w[rows[big]] = (sel[big] * scale[:, None]).astype(w.dtype)
    _version_counter(weight)[0] += 1


# NOTE [ Embedding gradient by padded rows ]
# A small table looked up many times (GPT's 65-token vocabulary, 1024 lookups of 128
# floats) sums ~16 gradient rows into each table row.  ``add.reduceat`` over the sorted rows
# (axis 0) runs ~100 us for (1024, 128) float32, ~6x a pass over the data: it reduces each
# segment in its own inner loop.  Placing every row at (its table row, its rank among that
# row's repeats) of a zero (n, L, dim) block, L the largest repeat count, and summing over
# the middle axis is one scatter and one reduce whose inner loops run along dim: alone,
# (65, 1024, 128) 149 -> ~100 us, (500, 2048, 256) 1398 -> ~380 (thread CPU, 1 thread,
# loaded machine).  Inside a GPT step, with the caches cold, (65, 1024, 128) is a wash
# (160 vs 157 us, the block's zero fill ~45 us); there the gains are the radix sort
# (``_stable_order``) and placing never-repeated rows (the positions' 64) without a sort:
# the step's two table gradients 235 -> ~185 us.  The block comes from the workspace (a
# fresh ~1 MB of zeros faults on every page), its size rounded up to a multiple of 8 in L.
# The block is used for rows of 32+ elements while it holds at most 6x the rows
# (n * L <= 6 * rows; (1000, 1024, 128) at 4.9x: 516 -> 224 us, (2000, ...) at 7.8x: 340 ->
# 352, (4000, ...) at 15.6x: 238 -> 647): a few heavy repeats in a large table, and short
# rows ((100, 1000, 8): 39 -> 65 us), keep reduceat.  Sums agree to rounding, not bits.
# The block is laid out rank-major, (L, n, dim): rank k of every table row in one slab, so the
# sum over ranks is L whole-slab adds (inner loops of n * dim) rather than n * L inner loops
# of dim: (65, 1024, 128) float32 144 -> 82 us alone (torch's embedding_dense_backward 67;
# thread CPU, 1 thread, loaded machine).  Each table row is still summed in the order its rows
# occur (rank 0, 1, ...), the order of PyTorch's CPU kernel (zeros, then each looked-up row
# added in turn): the same bits as torch's (tested).  A plain backward (no create_graph)
# calls ``_scatter_rows`` on arrays, without a ``_EmbeddingDenseBackward`` node.
_PAD_ROWS = True


def _stable_order(xp, n: int, idx):
    """``argsort(idx, kind="stable")`` of indices in ``[0, n)``: as uint16 keys where ``n``
    allows, which NumPy sorts by radix (1024 random GPT tokens 28 -> 5 us, the same order)."""
    if n <= 1 << 16 and idx.dtype.itemsize > 2:
        idx = idx.astype(xp.uint16)
    return xp.argsort(idx, kind="stable")


def _scatter_rows(xp, n: int, idx, src):
    """Dense ``(n, dim)`` array with row ``src[i]`` added into row ``idx[i]`` (repeats add up).

    ``ufunc.at`` costs ~1.5 us a row and ``reduceat`` ~1.5 us a segment, so the repeats are
    grouped by a sort and the cheaper of the two handles them, or summed in a padded block
    (NOTE [ Embedding gradient by padded rows ]).
    """
    if _PAD_ROWS and idx.size > 1 and src.ndim == 2 and src.shape[1] >= 32:
        out = _padded_rows(xp, n, idx, src)
        if out is not None:
            return out
    out = xp.zeros((n,) + src.shape[1:], src.dtype)
    if idx.size == 0:
        return out
    order = _stable_order(xp, n, idx)
    rows = idx[order]
    first = xp.empty(rows.size, bool)
    first[0] = True
    xp.not_equal(rows[1:], rows[:-1], out=first[1:])
    starts = xp.flatnonzero(first)
    sorted_src = src[order]
    if starts.size == rows.size:  # no repeats
        out[rows] = sorted_src
    elif 2 * starts.size >= rows.size:  # mostly distinct: place the first, add the repeats
        out[rows[starts]] = sorted_src[starts]
        again = ~first
        xp.add.at(out, rows[again], sorted_src[again])
    else:
        out[rows[starts]] = xp.add.reduceat(sorted_src, starts, axis=0)
    return out


def _padded_rows(xp, n: int, idx, src):
    """``_scatter_rows`` by a padded (n, L, dim) block (NOTE [ Embedding gradient by padded
    rows ]), or ``None`` where that block would hold more than 6x the rows (reduceat is
    cheaper then); rows that no index repeats are placed as they are, with no sort."""
    r = idx.size
    counts = xp.bincount(idx, minlength=n)
    big = int(counts.max())
    if big < 2:
        out = xp.zeros((n, src.shape[1]), src.dtype)
        out[idx] = src
        return out
    if n * big > 6 * r:
        return None
    order = _stable_order(xp, n, idx)
    rows = idx[order]
    starts = xp.cumsum(counts)
    starts -= counts
    # rank of each sorted row among its repeats, then the slot of each source row in the
    # rank-major (L, n) block
    slot = xp.arange(r)
    slot -= starts[rows]
    slot *= n
    slot += rows
    dest = xp.empty(r, slot.dtype)
    dest[order] = slot
    # a reused workspace block (NOTE [ Workspace ]), its size rounded so that the next
    # batch's largest count mostly finds it again: a fresh ~1 MB zeros faults on every page
    dim = src.shape[1]
    size = n * big * dim
    block = ws.empty(xp, (n * (-(-big // 8) * 8) * dim,), src.dtype)[:size]
    block.fill(0)
    block = block.reshape(big * n, dim)
    block[dest] = src
    return xp.add.reduce(block.reshape(big, n * dim), axis=0).reshape(n, dim)


class _EmbeddingDenseBackward(Function):
    """The table gradient: rows of ``src`` scatter-added at ``idx`` into ``n`` zero rows."""

    raw = True
    backward_name = "EmbeddingDenseBackwardBackward0"

    @staticmethod
    def forward(ctx, src, idx, n):
        ctx.save_for_backward(idx)
        return _scatter_rows(ctx.xp, n, idx, src)

    @staticmethod
    def backward(ctx, gg):
        idx, = ctx.saved_tensors
        return IndexSelect.apply(gg, 0, idx), None, None


class _Embedding(Function):
    """Rows of ``weight`` picked by ``indices``; gradient rows scatter-added back."""

    raw = True
    backward_name = "EmbeddingBackward0"

    @staticmethod
    def forward(ctx, w, idx, padding_idx, scale_grad_by_freq, sparse=False):
        xp = ctx.xp
        # checked here, not only in ``embedding``: compiled code calls this forward directly
        if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):
            raise IndexError("index out of range in self")
        ctx.meta = (w.shape, padding_idx, scale_grad_by_freq, sparse)
        ctx.save_for_backward(idx)
        # the rows go into a reused block (NOTE [ Workspace ]); "clip" since the indices are
        # in range, and "raise" would copy through a temporary
        out = ws.empty(xp, idx.shape + w.shape[1:], w.dtype)
        return xp.take(w, idx, axis=0, out=out, mode="clip")

    @staticmethod
    def backward(ctx, g):
        (n, dim), pad, by_freq, sparse = ctx.meta
        idx, = ctx.saved_tensors
        flat = idx._data.reshape(-1)
        xp = xp_of(flat)
        g2 = g.reshape(-1, dim)
        if sparse:  # PyTorch's sparse gradient: one row per looked-up index, padding left out
            if by_freq:
                raise RuntimeError("embedding_backward: scale_grad_by_freq not supported with "
                                   "sparse gradients")
            keep = xp.nonzero(flat != pad)[0] if pad >= 0 else None
            rows = flat if keep is None else flat[keep]
            vals = g2 if keep is None else g2[_make(keep)]
            proto = COO(rows.reshape(1, -1).astype(xp.int64), None, (n, dim))
            return sparse_from_values(vals, proto), None, None, None, None
        coef = None
        if by_freq:
            coef = 1.0 / xp.bincount(flat, minlength=n)[flat]
        if pad >= 0:
            keep = flat != pad
            coef = keep if coef is None else coef * keep
        if coef is not None:
            g2 = g2 * _make(coef.astype(g._data.dtype).reshape(-1, 1))
        if not state.grad:  # a plain backward: the table gradient on arrays, no node
            return _make(_scatter_rows(xp, n, flat, g2._data)), None, None, None, None
        return _EmbeddingDenseBackward.apply(g2, _make(flat), n), None, None, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """``weight[input]``: rows of the table ``weight`` looked up by integer ``input``.

    With ``sparse=True`` the table's gradient is a sparse COO tensor (for ``SparseAdam``).
    """
    need_tensor(input, "embedding", "indices", 2)
    need_tensor(weight, "embedding", "weight", 1)
    w, idx = weight._data, input._data
    pad = _padding(padding_idx, w.shape[0] if w.ndim else 0)
    if w.ndim != 2:
        raise RuntimeError("'weight' must be 2-D")
    _check_indices(idx, "embedding")
    if max_norm is not None:
        if idx.size and (idx.min() < 0 or idx.max() >= w.shape[0]):  # before any row changes
            raise IndexError("index out of range in self")
        with no_grad():
            _renorm_(weight, idx, max_norm, norm_type)
    return _Embedding.apply(weight, input, pad, scale_grad_by_freq, bool(sparse))


class _EmbeddingBag(Function):
    """Sums, means or maxes of bags of rows of ``weight`` (bags given as contiguous runs)."""

    raw = True
    backward_name = "EmbeddingBagBackward0"

    @staticmethod
    def forward(ctx, w, idx, psw, plan, mode, by_freq):
        xp = ctx.xp
        bag, starts, keep, count, n_bags = plan
        out = xp.zeros((n_bags, w.shape[1]), w.dtype)
        used = idx[:bag.size]
        rows = xp.take(w, used, axis=0)
        ctx.meta = (w.shape, mode, by_freq, plan)
        ctx.save_for_backward(w, idx, psw)
        partial = keep is not None and not keep.all()
        if mode == "max":
            if partial:
                rows[~keep] = -xp.inf  # padding never wins (``rows`` is a fresh copy)
            live = xp.flatnonzero(count > 0)
            arg = None
            if live.size:
                # reduceat segments run from one live bag's start to the next; the rows of
                # all-padding bags in between are -inf, so they change nothing
                first = starts[live]
                best = xp.maximum.reduceat(rows, first, axis=0)
                out[live] = best
                pos = xp.arange(rows.shape[0])
                seg = xp.searchsorted(first, pos, "right") - 1
                hit = xp.where(rows == best[seg], pos.reshape(-1, 1), rows.shape[0])
                # the first position holding the maximum receives the gradient
                arg = used[xp.minimum(xp.minimum.reduceat(hit, first, axis=0),
                                      rows.shape[0] - 1)]
            ctx.argmax = (live, arg)
            return out
        if psw is not None:
            rows *= psw[:bag.size].reshape(-1, 1)
        if partial:
            rows *= keep.reshape(-1, 1)
        filled = xp.flatnonzero(xp.bincount(bag, minlength=n_bags) > 0)
        if filled.size:
            out[filled] = xp.add.reduceat(rows, starts[filled], axis=0)
        if mode == "mean":
            out /= xp.maximum(count, 1).astype(w.dtype).reshape(-1, 1)
        return out

    @staticmethod
    def backward(ctx, g):
        (n, dim), mode, by_freq, plan = ctx.meta
        bag, starts, keep, count, n_bags = plan
        w, idx, psw = ctx.saved_tensors
        xp = xp_of(g._data)
        dt = g._data.dtype
        used = _make(idx._data[:bag.size])  # every element, or none when there are no bags
        gw = gpsw = None
        if mode == "max":
            live, arg = ctx.argmax
            if ctx.needs_input_grad[0]:
                gw = _make(xp.zeros((n, dim), dt))
                if arg is not None:
                    gsel = IndexSelect.apply(g, 0, _make(live))
                    gw = ScatterAdd.apply(gw, 0, _make(arg), gsel)
            return gw, None, None, None, None, None
        grows = IndexSelect.apply(g, 0, _make(bag))  # each element's bag gradient
        coef = None
        if mode == "mean":
            coef = 1.0 / xp.maximum(count, 1)[bag]
        if by_freq:
            flat = used._data
            inv = 1.0 / xp.bincount(flat, minlength=n)[flat]
            coef = inv if coef is None else coef * inv
        if keep is not None and not keep.all():
            coef = keep if coef is None else coef * keep
        if coef is not None:
            grows = grows * _make(coef.astype(dt).reshape(-1, 1))
        if ctx.needs_input_grad[0]:
            src = grows if psw is None else grows * psw[:bag.size].reshape(-1, 1)
            gw = _EmbeddingDenseBackward.apply(src, used, n)
        if psw is not None and ctx.needs_input_grad[2]:
            if bag.size == psw._data.shape[0]:
                gpsw = (grows * IndexSelect.apply(w, 0, used)).sum(1)
            else:  # no bags: no element contributes
                gpsw = _make(xp.zeros(psw._data.shape, psw._data.dtype))
        return gw, None, gpsw, None, None, None


def _bag_plan(xp, idx, offsets, n_idx: int, include_last: bool, pad: int):
    """Bag id per element, bag starts, the non-padding mask and each bag's live count."""
    offs = offsets.astype("int64")
    if offs.size and offs[0] != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the "
                           f"mini-batch has to start from position 0. However, got {offs[0]}")
    if offs.size and offs[-1] > n_idx:
        raise RuntimeError(f"offsets[-1] can not be greater than input's length {n_idx} but "
                           f"got offsets[-1] of {offs[-1]}")
    if offs.size > 1 and (offs[1:] < offs[:-1]).any():
        raise RuntimeError("offsets has to be a non-decreasing sequence of positions in input")
    # With include_last_offset the final offset only closes the list: like PyTorch's general
    # kernel, the last bag runs to the end of ``input`` whatever that offset says.
    n_bags = max(offs.size - 1, 0) if include_last else offs.size
    starts = offs[:n_bags]
    end = n_idx if n_bags else 0
    bag = xp.searchsorted(starts, xp.arange(end), "right") - 1
    keep = None
    if pad >= 0:
        keep = idx[:end] != pad
    live = bag if keep is None else bag[keep]
    count = xp.bincount(live, minlength=n_bags)
    return bag, starts, keep, count, n_bags


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2,
                  scale_grad_by_freq=False, mode="mean", sparse=False, per_sample_weights=None,
                  include_last_offset=False, padding_idx=None):
    """Sums, means or maxes of bags of embeddings: the rows of a 2-D ``input``, or the runs
    of a 1-D ``input`` that start at ``offsets``."""
    need_tensor(input, "embedding_bag", "indices", 2)
    need_tensor(weight, "embedding_bag", "weight", 1)
    if weight.dtype.name == "int64" and input.is_floating_point():
        warnings.warn("Argument order of nn.functional.embedding_bag was changed. Usage "
                      "`embedding_bag(weight, input, ...)` is deprecated, and should now be "
                      "`embedding_bag(input, weight, ...)`.", stacklevel=2)
        weight, input = input, weight
    psw = per_sample_weights
    if psw is not None and tuple(input.shape) != tuple(psw.shape):
        raise ValueError(f"embedding_bag: If per_sample_weights ({psw.shape}) is not None, then "
                         f"it must have the same shape as the input ({input.shape})")
    w, idx = weight._data, input._data
    if w.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {w.ndim}")
    xp = xp_of(w)
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(f"if input is 2D, then offsets has to be None, as input is treated "
                             f"is a mini-batch of fixed length sequences. However, found "
                             f"offsets of type {type(offsets)}")
        if idx.shape[1]:
            offs = xp.arange(0, idx.size, idx.shape[1])
        else:
            offs = xp.zeros(idx.shape[0], "int64")
        include_last_offset = False
        input = input.reshape(-1)
        idx = input._data
        if psw is not None:
            psw = psw.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets._data.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        _check_indices(offsets._data, "embedding_bag")
        offs = offsets._data
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{idx.ndim}")
    if mode == "max":
        if scale_grad_by_freq:
            raise ValueError("max mode does not support scaling the gradient by the frequency")
        if sparse:
            raise ValueError("max mode does not support sparse weights")
    elif mode not in ("sum", "mean"):
        raise ValueError("mode has to be one of sum, mean or max")
    _check_indices(idx, "embedding_bag")
    pad = _padding(padding_idx, w.shape[0], "padding_idx")
    if idx.size:
        bad = xp.flatnonzero((idx < 0) | (idx >= w.shape[0]))
        if bad.size:
            k = int(bad[0])
            raise RuntimeError(f"Index {k} of input takes value {int(idx[k])} which is not in "
                               f"the valid range [0, {w.shape[0]})")
    if max_norm is not None:
        with no_grad():
            _renorm_(weight, idx, max_norm, norm_type)
    if psw is not None:
        if mode != "sum":
            raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. "
                                      f"per_sample_weights is only supported for mode='sum' "
                                      f"(got mode='{mode}'). Please open a feature request on "
                                      f"GitHub.")
        if psw._data.dtype != w.dtype:
            raise RuntimeError(f"Expected tensor for argument #1 'weight' to have the same type "
                               f"as tensor for argument #1 'per_sample_weights'; but type "
                               f"torch.{scalar_name(w.dtype)}Tensor does not equal "
                               f"torch.{scalar_name(psw._data.dtype)}Tensor (while checking "
                               f"arguments for embedding_bag)")
    plan = _bag_plan(xp, idx, offs, idx.size, include_last_offset, pad)
    return _EmbeddingBag.apply(weight, input, psw, plan, mode, scale_grad_by_freq)


# ----------------------------------------------------------------------------------------------
# dropout

_SELU_ALPHA = 1.7580993408473766  # -selu's negative saturation: -scale * alpha


def _check_p(p) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(x, shape, p):
    """Boolean Bernoulli(1 - p) mask of ``shape`` from ember's default generator."""
    if not is_float(x.dtype):
        raise RuntimeError(f"result type Float can't be cast to the desired output type "
                           f"{scalar_name(x.dtype)}")
    u = _gen(None).random(shape, dtype="float64" if x.dtype.itemsize == 8 else "float32")
    return xp_of(x).asarray(u < 1.0 - p)  # drawn on the host: onto x's device


def _multiply(input: Tensor, factor, inplace: bool) -> Tensor:
    t = _make(factor)
    if inplace:
        return input.mul_(t)
    return Mul.apply(input, t, input._data.dtype)


def _dropout(input: Tensor, p, training, inplace, kept_dims=-1, alpha=False) -> Tensor:
    """PyTorch's ``_dropout_impl``, the body of every dropout variant.

    ``kept_dims`` leading dims get their own mask entries and the rest share one (2: one
    entry per (sample, channel), feature dropout); -1 masks every element.
    """
    x = input._data
    if p == 0 or not training or x.size == 0:
        return input
    if p == 1:
        return _multiply(input, xp_of(x).zeros((), x.dtype), inplace)
    if kept_dims < 0:
        shape = x.shape
    else:
        if x.ndim < 2:
            raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
        shape = x.shape[:kept_dims] + (1,) * (x.ndim - kept_dims)
    keep = _keep_mask(x, shape, p)
    if not alpha:
        return _multiply(input, keep * x.dtype.type(1.0 / (1.0 - p)), inplace)
    a = 1.0 / math.sqrt((_SELU_ALPHA ** 2 * p + 1) * (1 - p))
    shift = xp_of(x).where(keep, _SELU_ALPHA * a * p, _SELU_ALPHA * a * p - _SELU_ALPHA * a)
    shift = _make(shift.astype(x.dtype))
    out = _multiply(input, keep * x.dtype.type(a), inplace)
    if inplace:
        return out.add_(shift)
    return Add.apply(out, shift, x.dtype)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale survivors by ``1 / (1 - p)``."""
    _check_p(p)
    need_tensor(input, "dropout")
    return _dropout(input, p, training, inplace)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout that keeps SELU's zero mean and unit variance (dropped units go to -alpha')."""
    _check_p(p)
    need_tensor(input, "alpha_dropout")
    return _dropout(input, p, training, inplace, alpha=True)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """``alpha_dropout`` with one mask entry per channel (dim 1)."""
    _check_p(p)
    need_tensor(input, "feature_alpha_dropout")
    return _dropout(input, p, training, inplace, kept_dims=2, alpha=True)


def _channel_dropout(input, p, training, inplace, batched: bool) -> Tensor:
    """Channel-wise dropout; an unbatched input is a batch of one, as in PyTorch."""
    if batched:
        return _dropout(input, p, training, inplace, kept_dims=2)
    if inplace:  # one mask entry per channel: the same masks as a batch of one
        return _dropout(input, p, training, True, kept_dims=1)
    return _dropout(input.unsqueeze(0), p, training, False, kept_dims=2).squeeze(0)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, L)`` or ``(C, L)`` input with probability ``p``."""
    _check_p(p)
    need_tensor(input, "dropout1d")
    nd = input._data.ndim
    if nd not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {nd}D input. "
                           "Note that dropout1d exists to provide channel-wise dropout on inputs "
                           "with 1 spatial dimension, a channel dimension, and an optional batch "
                           "dimension (i.e. 2D or 3D inputs).")
    return _channel_dropout(input, p, training, inplace, nd == 3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, H, W)`` input with probability ``p``."""
    _check_p(p)
    need_tensor(input, "dropout2d")
    nd = input._data.ndim
    if nd not in (3, 4):
        warnings.warn(f"dropout2d: Received a {nd}-D input to dropout2d, which is deprecated "
                      "and will result in an error in a future release. To retain the behavior "
                      "and silence this warning, please use dropout instead. Note that dropout2d "
                      "exists to provide channel-wise dropout on inputs with 2 spatial "
                      "dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      "3D or 4D inputs).", stacklevel=2)
    if nd == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim. This behavior will change in "
                      "a future release to interpret the input as one without a batch dimension, "
                      "i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, "
                      "please switch to using dropout1d instead.", stacklevel=2)
    return _dropout(input, p, training, inplace, kept_dims=2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input with probability p."""
    _check_p(p)
    need_tensor(input, "dropout3d")
    nd = input._data.ndim
    if nd not in (4, 5):
        warnings.warn(f"dropout3d: Received a {nd}-D input to dropout3d, which is deprecated "
                      "and will result in an error in a future release. To retain the behavior "
                      "and silence this warning, please use dropout instead. Note that dropout3d "
                      "exists to provide channel-wise dropout on inputs with 3 spatial "
                      "dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      "4D or 5D inputs).", stacklevel=2)
    return _channel_dropout(input, p, training, inplace, nd == 5)
