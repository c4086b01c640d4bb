"""Attention ops: ``scaled_dot_product_attention`` (one fused node) and
``multi_head_attention_forward`` (PyTorch's functional multi-head attention).

NOTE [ Fused attention ]
``scaled_dot_product_attention`` is one graph node (as PyTorch's
``ScaledDotProductFlashAttentionForCpuBackward0``).  Forward, on arrays::

    S = Q K^T * scale (+ mask)      P = softmax(S)      O = dropout(P) V

keeping ``P`` (and the dropout mask) for backward, which is the closed form

    dV = P_d^T dO     dP = (dO V^T) * keep     dS = P * (dP - rowsum(dP * P))
    dQ = dS K * scale     dK = dS^T Q * scale    (dmask = dS, for a float mask)

with ``P_d`` the dropped-out probabilities.  A plain backward runs it on arrays (batched
GEMMs through ``xp.matmul``, no per-op overhead; the scale multiplies the ``(L, E)`` operands
rather than the ``(L, S)`` scores, the scores are laid out by key (NOTE [ Scores by key ]),
``dS`` is formed in place; the output and input gradients are laid out as their inputs,
NOTE [ Results laid out as the inputs ]):
forward + backward of a causal ``(16, 4, 64, 32)`` float32 attention measured 0.77x PyTorch's
thread CPU time at one thread (1.9 ms against 2.4; 0.87x before the by-key layout; 0.81x ->
0.74x with NOTE [ Transposed ] and NOTE [ Causal by adding ], and 0.95x -> 0.86x on GPT-mini's
strided head views, loaded machine), and ~2.8x
faster than ember's unfused matmul -> masked_fill ->
softmax -> matmul.  Under ``create_graph`` the same formula is written with ember ops and
``P`` is recomputed from ``Q`` and ``K`` in the graph, so higher derivatives are exact.
Grouped-query attention (``enable_gqa``) repeats each key/value head ``Hq / Hkv`` times
(``repeat_interleave`` on dim -3); its gradient sums those copies back.
Batch dims broadcast as in ``matmul``; their gradients are summed back to each input's shape.

Rows whose every key is masked out give a zero output and zero gradients: what PyTorch 2.13's
CPU kernels return (a "safe" softmax), rather than the NaN a plain softmax would give.  The
``need_weights=True`` path of ``multi_head_attention_forward`` is PyTorch's composition
(``softmax`` of ``baddbmm``), so there such rows are NaN, as in PyTorch.
"""
from __future__ import annotations

import math
import warnings

from .._backend import xp_of
from .._tensor import Tensor, _make
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ._util import is_float, check_broadcast, scalar_name, c_name
from .activation import softmax
from .layers import linear, dropout, _keep_mask
from .movement import cat
from . import _kernels
from . import _workspace as ws

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

_NEG_INF = float("-inf")


def _size(shape) -> str:
    """A shape as PyTorch prints it in messages."""
    return f"torch.Size({list(shape)})"


def _up(a):
    """Half-precision arrays in float32, the precision PyTorch's CPU kernels compute in."""
    return a if a is None or a.dtype.itemsize >= 4 else a.astype("float32")


def _sum_to(xp, a, shape):
    """Sum the broadcast array ``a`` back to ``shape``."""
    if a.shape == tuple(shape):
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape)
                                      if s == 1 and a.shape[i + lead] != 1)
    return a.sum(axis=axes, keepdims=True).reshape(shape) if axes else a.reshape(shape)


_CAUSAL: dict = {}


def _causal_block(xp, L: int, S: int, by_key: bool = False):
    """Boolean ``(L, S)``: True strictly above the diagonal (the keys a query may not see);
    with ``by_key`` its contiguous transpose ``(S, L)``."""
    key = (xp, L, S, by_key)
    m = _CAUSAL.get(key)
    if m is None:
        if len(_CAUSAL) >= 32:  # e.g. a decoding loop's growing lengths: keep the cache small
            _CAUSAL.clear()
        m = xp.triu(xp.ones((L, S), dtype=bool), 1)
        m = _CAUSAL[key] = xp.ascontiguousarray(m.T) if by_key else m
    return m


# NOTE [ Causal by adding ]
# The causal mask is added as a cached 0 / -inf array (47 us on a (16, 4, 64, 64) float32
# score array at one thread) instead of xp.copyto(..., where=mask) (~100 us).  Adding 0 leaves
# a score as it was and adding -inf gives -inf, except for a NaN or +inf score under the mask,
# which becomes NaN: then some query's maximum is NaN, and that call masks by assignment
# again, so the result is PyTorch's (keys a query may not see never reach its output).
# _CAUSAL_ADD = False keeps the assignment (the tests compare the two).
# Tried and not kept: skipping the masked quarter (keys h:, queries :h) in all six batched
# products as two half-size products each: 156 -> 127 us per (64, 64, 32)-head product alone,
# but GPT-mini's fwd + bwd per call only 1,912 -> 1,856 us at the minimum and unchanged at the
# median (400 interleaved calls), and no better inside the compiled step (one thread, loaded
# machine): the half-size GEMMs, the zero fill of the skipped quarter and the extra calls eat
# the saving.
_CAUSAL_ADD = True

# NOTE [ Attention inside the GPT step ]
# Per layer of the compiled GPT step ((16, 4, 64, 32) float32 causal heads, thread CPU, min of
# 30 steps interleaved with torch's, 1 thread, loaded machine): forward ~0.85 ms (Q^T copy
# 110 us, S 199, max/min 40, causal add 53, exp 122, sum 38, normalise 57, P V 220), backward
# ~1.45 ms (packed views 59, dV 295, dO^T copy 87, dP 321, row sums 83, - r 57, * P 28,
# dQ 262, dK 256).  Each (64, 64, 32)-head product takes ~170 us alone with its operands in
# cache, 200-320 in the step: the saved P, Q, K and V are read back cold.  Tried and not kept
# (issue 17): the backward run by chunks of 2, 4 or 8 batch rows, so that dS, P and dO^T stay
# in L2 between their passes: 3.11 -> 3.07 ms per step for both layers (within noise; the
# cold first reads remain).  With ``ember.compile(fn, options={"numba": True})`` the softmax
# runs as one pass per (S, L) block each way (NOTE [ numba softmax kernels ]): the two layers'
# softmax ~0.3 ms forward and ~0.14 ms backward in the step, attention's forward 1.70 -> 1.47
# ms per step (min of 30, thread time, 1 thread, load ~4).


def _causal_neg(xp, L: int, S: int, by_key: bool, dtype):
    """The causal mask as an additive ``(L, S)`` (``(S, L)`` by key) array: -inf or 0."""
    key = (xp, L, S, by_key, dtype, "neg")
    m = _CAUSAL.get(key)
    if m is None:
        if len(_CAUSAL) >= 32:
            _CAUSAL.clear()
        blk = _causal_block(xp, L, S, by_key)
        m = xp.where(blk, xp.asarray(_NEG_INF, dtype), xp.asarray(0, dtype))
        m.flags.writeable = False
        _CAUSAL[key] = m
    return m


# NOTE [ Scores by key ]
# NumPy reduces a short last axis slowly: the row max of a (16, 4, 64, 64) score array took
# 240 us of the forward's ~1.3 ms (one thread), against ~90 us for the same maxima over the
# second-to-last axis taken as pairwise maxima of halves (whole contiguous blocks per call).
# So the scores are computed as S^T = K Q^T, laid out (..., S, L): the softmax reduces over
# axis -2 (maxima by halving, sums as one batched ones-vector product, BLAS), the
# probabilities are kept as their (L, S) view for everything else (the graph backward, the
# dropout mask, drawn in (L, S) order as before), and the backward's products take the
# transposed operands BLAS reads without a copy.  _BY_KEY = False gives the (L, S) layout
# (the tests compare the two).
_BY_KEY = True


# NOTE [ Transposed ]
# NumPy's batched matmul with a transposed second operand (a swapaxes view) ran ~1.8x slower
# than with a contiguous one: (64, 64, 32) @ (64, 32, 64)^T float32 took 287 us at one thread
# against 164 us (the first operand transposed costs nothing extra).  A transposing copy is
# ~45 us, so the by-key scores take Q^T as a contiguous array (written by the scale's pass,
# which costs ~45 us more than a plain one) and the backward's dP = V dO^T a contiguous dO^T.
# _CONTIG_T = False keeps the transposed views (the tests compare the two).
_CONTIG_T = True
_FOLD_SCALE = True  # the backward's scale on dO^T's copy (False: on dQ and dK, for tests)


def _contiguous_t(xp, a, scale=None):
    """``swapaxes(a, -1, -2)`` (times ``scale`` when given) copied into a C-contiguous
    workspace array (a fresh one page-faults: NOTE [ Workspace ])."""
    t = ws.empty(xp, a.shape[:-2] + a.shape[:-3:-1], a.dtype)
    if scale is None:
        xp.copyto(t, xp.swapaxes(a, -1, -2))
    else:
        xp.multiply(xp.swapaxes(a, -1, -2), scale, out=t)
    return t


def _product(xp, a, b):
    """``a @ b`` (batched) into a workspace array."""
    shape = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    out = ws.empty(xp, shape, xp.result_type(a, b))
    return xp.matmul(a, b, out=out)


# NOTE [ Results laid out as the inputs ]
# Multi-head attention's heads are views (N, H, L, D) of an (N, L, H, D) projection.  The
# output and the input gradients are laid out in memory as their input is (PyTorch's CPU kernel
# does so for the output): the products write through strided views of an (N, L, H, D)
# workspace block (BLAS takes the row stride; same time as a contiguous result), so the
# transpose back and the reshape that merges the heads are views.  Contiguous results made that
# reshape copy into a fresh 512 KB array per call on GPT-mini (forward, and each of dQ, dK, dV
# in backward).  _LIKE_INPUT = False keeps contiguous results (the tests compare the two).
_LIKE_INPUT = True


def _like(xp, like, shape, dtype):
    """An empty ``shape`` array (from the workspace) whose leading axes lie in memory in the
    order of ``like``'s strides, the last axis innermost; contiguous when ``like`` is, when
    the shapes' ranks differ, or with _LIKE_INPUT off."""
    n = len(shape)
    if _LIKE_INPUT and like.ndim == n and n >= 3:
        st = like.strides
        order = sorted(range(n - 1), key=lambda i: -st[i]) + [n - 1]  # stable: ties keep order
        if order != list(range(n)):
            base = ws.empty(xp, tuple(shape[i] for i in order), dtype)
            inv = [0] * n
            for j, i in enumerate(order):
                inv[i] = j
            return base.transpose(inv)
    return ws.empty(xp, shape, dtype)


def _keys_first(xp, mask):
    """A mask broadcastable to (..., L, S) as one broadcastable to (..., S, L)."""
    if mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + mask.shape)
    return xp.swapaxes(mask, -1, -2)


# NOTE [ One softmax shift ]
# Softmax is unchanged by any per-row shift; the row maximum is the usual one (no overflow,
# the largest term exactly 1).  Its reduction over the scores laid out by key (halving,
# _max_over_keys) and the broadcast subtraction took ~180 us of a GPT-mini attention call's
# forward ((16, 4, 64, 64) float32, in the step, one thread).  Where no mask is given and all
# scores of the call lie within _SHIFT_SPAN of each other (computed before the causal mask,
# so the masked scores count too: a looser bound), the whole call is shifted by its largest
# score instead: two contiguous reductions and a scalar subtraction (~65 us against ~165 alone,
# thread CPU).  No term overflows and each row's largest is at least exp(-_SHIFT_SPAN), so no
# row sums to 0; the cost is the rounding of the larger exponent ``s - shift``: at most
# _SHIFT_SPAN / 2 units of its last place relative in a probability (~1.2e-6 in float32,
# cross-entropy's forward makes the same trade, ops/loss.py).  NaN, +-inf, a wider spread or
# a user mask (fully masked rows) keep the row maxima.  _ONE_SHIFT = False keeps them always.
_ONE_SHIFT = True
_SHIFT_SPAN = 20.0


def _max_over_keys(xp, s, by_key: bool):
    """Each query's maximum score, keepdims: over axis -2 by halving when ``by_key``."""
    ax = -2 if by_key else -1
    n = s.shape[ax]
    if n == 0:
        shape = list(s.shape)
        shape[ax] = 1
        return xp.zeros(shape, s.dtype)
    if not by_key:
        return s.max(-1, keepdims=True)
    if n == 1:
        return s.copy()
    a = s
    while n > 1:
        h = n // 2
        r = xp.maximum(a[..., :h, :], a[..., h:2 * h, :])
        if n % 2:
            head = r[..., :1, :]
            xp.maximum(head, a[..., 2 * h:, :], out=head)
        a, n = r, h
    return a


def _sum_over_keys(xp, s, by_key: bool):
    """Each query's sum of ``s``, keepdims (a batched product with ones when ``by_key``)."""
    if by_key:
        return xp.matmul(xp.ones((1, s.shape[-2]), s.dtype), s)
    # einsum sums the short rows ~4x faster than ndarray.sum(-1)
    return xp.einsum("...j->...", s)[..., None]


def _inv_keep(p_drop: float) -> float:
    """The survivors' scale ``1 / (1 - p)``; with ``p = 1`` nothing survives (scale unused)."""
    return 1.0 / (1.0 - p_drop) if p_drop < 1 else 0.0


def _softmax_passes(xp, s, mask, causal: bool, by_key: bool, L: int, S: int):
    """The softmax of the scores ``s`` over the keys with NumPy passes (in place where it
    can): the mask, the causal mask, the shift (NOTE [ One softmax shift ]), exp and the
    normalisation."""
    # one shift for every row where the scores allow (NOTE [ One softmax shift ])
    shift = None
    if _ONE_SHIFT and mask is None and s.size:
        hi = s.max()
        if hi - s.min() <= _SHIFT_SPAN:
            shift = hi
    # rows with no key left exist only under a mask (a causal row always keeps key 0)
    masked = False
    if mask is not None:
        mk = _keys_first(xp, mask) if by_key else mask
        if mask.dtype == bool:
            if mk.ndim <= s.ndim and xp.broadcast_shapes(mk.shape, s.shape) == s.shape:
                xp.copyto(s, _NEG_INF, where=~mk)
            else:
                s = xp.where(mk, s, _NEG_INF)
        else:
            mk = _up(mk)
            if mk.ndim <= s.ndim and xp.broadcast_shapes(mk.shape, s.shape) == s.shape:
                s += mk
            else:
                s = s + mk
        masked = True
    if causal:
        if _CAUSAL_ADD and shift is not None:
            # the shift in the causal mask's pass: 0 - shift is exactly -shift, so the
            # same bits as two passes, one pass fewer (an (L, S) array made per call)
            s += _causal_neg(xp, L, S, by_key, s.dtype) - shift
            shift = 0
        elif _CAUSAL_ADD:  # NOTE [ Causal by adding ]
            s += _causal_neg(xp, L, S, by_key, s.dtype)
        else:
            xp.copyto(s, _NEG_INF, where=_causal_block(xp, L, S, by_key))
    if shift is not None:
        if shift:
            s -= shift  # all scores finite, within _SHIFT_SPAN of it: no NaN or overflow
    else:
        m = _max_over_keys(xp, s, by_key)
        if causal and _CAUSAL_ADD and xp.isnan(m).any():
            # a NaN or +inf score under the mask made NaN: mask by assignment, as PyTorch
            xp.copyto(s, _NEG_INF, where=_causal_block(xp, L, S, by_key))
            m = _max_over_keys(xp, s, by_key)
        if masked:
            m[m == _NEG_INF] = 0  # a fully masked row: exp(-inf) = 0 everywhere, no NaN
        s -= m
    xp.exp(s, out=s)
    d = _sum_over_keys(xp, s, by_key)
    if masked:
        d[d == 0] = 1
    s *= 1 / d
    return s


class _SDPA(Function):
    """Softmax attention as one node (NOTE [ Fused attention ])."""

    raw = True
    backward_name = "ScaledDotProductFlashAttentionForCpuBackward0"

    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, p_drop, rk, rv):
        xp = ctx.xp
        dt = q.dtype
        qc, kc, vc = _up(q), _up(k), _up(v)
        if rk > 1:
            kc = xp.repeat(kc, rk, axis=-3)
        if rv > 1:
            vc = xp.repeat(vc, rv, axis=-3)
        # the scale on Q (L x E), not on S (L x S): one smaller pass.  Scores are laid out
        # (S, L) ("by key") when _BY_KEY: NOTE [ Scores by key ]
        by_key = _BY_KEY
        if by_key and _CONTIG_T:  # Q^T scaled into a contiguous array (NOTE [ Transposed ])
            qs = xp.swapaxes(ws.empty(xp, qc.shape[:-2] + qc.shape[:-3:-1], qc.dtype), -1, -2)
            xp.multiply(qc, qc.dtype.type(scale), out=qs)
        else:
            qs = qc * qc.dtype.type(scale)
        a, b = (kc, qs) if by_key else (qs, kc)
        # a workspace array (NOTE [ Workspace ]): a fresh MB-sized one per call page-faults
        s = _product(xp, a, xp.swapaxes(b, -1, -2))
        # NOTE [ numba softmax kernels ]: one pass per (S, L) block under the kernel table
        kern = _kernels.get("softmax_by_key", xp, s.dtype) if by_key and mask is None and \
            s.size and s.flags.c_contiguous else None
        if kern is not None:
            kern.fwd(s.reshape((-1,) + s.shape[-2:]), bool(causal))
        else:
            s = _softmax_passes(xp, s, mask, causal, by_key, qs.shape[-2], kc.shape[-2])
        p = xp.swapaxes(s, -1, -2) if by_key else s  # (L, S) as seen by everything else
        keep = None
        if p_drop > 0:
            keep = _keep_mask(p, p.shape, p_drop)  # drawn in (L, S) order either way
            pd = p * keep
            pd *= pd.dtype.type(_inv_keep(p_drop))
        else:
            pd = p
        # laid out as Q (NOTE [ Results laid out as the inputs ])
        shape = xp.broadcast_shapes(pd.shape[:-2], vc.shape[:-2]) + pd.shape[-2:-1] + \
            vc.shape[-1:]
        out = xp.matmul(pd, vc, out=_like(xp, qc, shape, xp.result_type(pd, vc)))
        if ctx._record:
            ctx.meta = (scale, p_drop, rk, rv, causal)
            ctx.p = p
            ctx.by_key = by_key
            ctx.kern = kern
            ctx.keep = keep
            ctx.save_for_backward(q, k, v, mask)
        return out if out.dtype == dt else out.astype(dt)

    @staticmethod
    def backward(ctx, g):
        q, k, v, mask = ctx.saved_tensors
        if state.grad:
            return _sdpa_grads_graph(ctx, g, q, k, v, mask)
        xp = ctx.xp
        scale, p_drop, rk, rv, _ = ctx.meta
        need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
        qa, ka, va = q._data, k._data, v._data
        dt = qa.dtype
        # the arrays in the forward's layout: (S, L) when by key (NOTE [ Scores by key ])
        by_key = ctx.by_key
        p = xp.swapaxes(ctx.p, -1, -2) if by_key else ctx.p
        gd = _up(g._data)
        gq = gk = gv = gm = None
        if ctx.keep is not None:
            keep = xp.swapaxes(ctx.keep, -1, -2) if by_key else ctx.keep
            drop = keep * p.dtype.type(_inv_keep(p_drop))
            pd = p * drop
        else:
            pd = p
        outs = [None] * 3
        if need_q and need_k and need_v and rk == 1 and rv == 1 and p.dtype == dt:
            outs = _packed_grads(xp, (qa, ka, va), dt) or outs
        if need_v:
            dv = _product_like(xp, pd if by_key else xp.swapaxes(pd, -1, -2), gd, va, rv,
                               outs[2])
            gv = _grad_kv(xp, dv, rv, va.shape, dt)
        if need_q or need_k or need_m:
            vc = _up(va)
            if rv > 1:
                vc = xp.repeat(vc, rv, axis=-3)
            gt = xp.swapaxes(gd, -1, -2)
            sc = p.dtype.type(scale)  # applied to (L, E)-sized operands, not to dS
            # the scale rides on dO^T's transposing copy: dS comes out scaled, and dQ, dK
            # need no pass of their own (strided views, ~1k short inner loops each)
            folded = by_key and _CONTIG_T and _FOLD_SCALE and not need_m and \
                math.isfinite(scale)
            if by_key and _CONTIG_T:  # NOTE [ Transposed ]
                gt = _contiguous_t(xp, gd, sc if folded else None)
            ds = _product(xp, *((vc, gt) if by_key else (gd, xp.swapaxes(vc, -1, -2))))
            if ctx.keep is not None:
                ds *= drop
            # dS = P * (dP - rowsum(P * dP)), in place
            # no temporary of S's size
            kern = getattr(ctx, "kern", None)  # NOTE [ numba softmax kernels ]
            if kern is not None and ds.shape == p.shape and ds.dtype == p.dtype and \
                    ds.flags.c_contiguous and p.flags.c_contiguous:
                kern.bwd(p.reshape((-1,) + p.shape[-2:]), ds.reshape((-1,) + ds.shape[-2:]))
            else:
                r = (xp.einsum("...ji,...ji->...i", p, ds)[..., None, :] if by_key
                     else xp.einsum("...ij,...ij->...i", p, ds)[..., None])
                ds -= r
                ds *= p
            dsl = xp.swapaxes(ds, -1, -2) if by_key else ds  # (L, S)
            if need_m:
                gm = _make(_sum_to(xp, dsl, mask._data.shape).astype(mask._data.dtype,
                                                                      copy=False))
            if need_q:
                kc = _up(ka)
                if rk > 1:
                    kc = xp.repeat(kc, rk, axis=-3)
                dq = _product_like(xp, dsl, kc, qa, 1, outs[0])
                if not folded:
                    dq *= sc
                gq = _make(_sum_to(xp, dq, qa.shape).astype(dt, copy=False))
            if need_k:
                dst = ds if by_key else xp.swapaxes(ds, -1, -2)
                dk = _product_like(xp, dst, _up(qa), ka, rk, outs[1])
                if not folded:
                    dk *= sc
                gk = _grad_kv(xp, dk, rk, ka.shape, dt)
        return gq, gk, gv, gm, None, None, None, None, None


def _product_like(xp, a, b, like, r: int, out=None):
    """``a @ b``, an input's gradient before ``_grad_kv`` / ``_sum_to``: laid out as the input
    ``like`` (NOTE [ Results laid out as the inputs ]) when it has exactly its shape and dtype
    (no repeated heads, no broadcast batch dims, no half-precision upcast), else fresh;
    into ``out`` (a view of ``like``'s shape and dtype, ``_packed_grads``) when given."""
    shape = xp.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    dt = xp.result_type(a, b)
    if r == 1 and shape == like.shape and dt == like.dtype:
        return xp.matmul(a, b, out=_like(xp, like, shape, dt) if out is None else out)
    return xp.matmul(a, b)


# NOTE [ Packed head gradients ]
# Multi-head attention's q, k and v are views of one packed in-projection ((N, L, 3, E)
# viewed (N, L, H, D) and transposed), which ``unbind`` split.  When the three are views of
# one contiguous array that they exactly fill, with the same shape and strides, dQ, dK and dV
# are written through the same views of one new array laid out as that base: unbind's
# backward then finds each piece's gradient already at its place and returns that array
# without joining (NOTE [ Joining piece gradients ] in ops/movement.py): on GPT-mini a
# (16, 64, 3, 128) float32 copy less per layer, ~0.3 ms of a ~2.5 ms attention forward +
# backward at one thread.  _PACKED = False keeps three separate arrays (the tests compare).
_PACKED = True


def _packed_grads(xp, arrays, dt):
    """Views of one new workspace array, laid out and offset as ``arrays`` (q, k, v) are in
    their common base, when they exactly fill it (NOTE [ Packed head gradients ]); else
    ``None``."""
    a0 = arrays[0]
    base = a0.base
    if not _PACKED or base is None or a0.dtype != dt or base.dtype != dt or \
            not base.flags.c_contiguous or base.size != a0.size * len(arrays) or \
            any(a.base is not base or a.shape != a0.shape or a.strides != a0.strides
                for a in arrays):
        return None
    p0 = base.ctypes.data
    offs = [a.ctypes.data - p0 for a in arrays]
    if any(o % dt.itemsize for o in offs) or len(set(offs)) != len(offs):
        return None
    whole = ws.empty(xp, (base.size,), dt)
    return [xp.ndarray(a0.shape, dt, buffer=whole, offset=o, strides=a0.strides) for o in offs]


def _grad_kv(xp, a, r: int, shape, dt) -> Tensor:
    """A key/value gradient: repeated heads summed back, broadcast dims reduced."""
    if r > 1:
        a = a.reshape(a.shape[:-3] + (a.shape[-3] // r, r) + a.shape[-2:]).sum(-3)
    return _make(_sum_to(xp, a, shape).astype(dt, copy=False))


def _sdpa_grads_graph(ctx, g, q, k, v, mask):
    """The backward of ``_SDPA`` in ember ops (P recomputed in the graph): create_graph."""
    from .reduce import sum_to_size
    scale, p_drop, rk, rv, causal = ctx.meta
    need_q, need_k, need_v, need_m = ctx.needs_input_grad[:4]
    kr = k.repeat_interleave(rk, -3) if rk > 1 else k
    vr = v.repeat_interleave(rv, -3) if rv > 1 else v
    s = (q @ kr.mT) * scale
    if mask is not None:
        s = s + mask if mask.dtype.is_floating_point else s.masked_fill(~mask, _NEG_INF)
    if causal:
        L, S = s.shape[-2:]
        s = s.masked_fill(_make(_causal_block(ctx.xp, L, S)), _NEG_INF)
    # fully masked rows: softmax of zeros, then zeroed (a constant mask: no gradient through it)
    dead = _make(ctx.p.sum(-1, keepdims=True) == 0)
    p = softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    if g.dtype != p.dtype:
        g = g.to(p.dtype)
    drop = None
    if ctx.keep is not None:
        drop = _make((ctx.keep * _inv_keep(p_drop)).astype(ctx.p.dtype))
    pd = p if drop is None else p * drop
    gq = gk = gv = gm = None
    if need_v:
        dv = pd.mT @ g
        gv = _graph_kv(dv, rv, v)
    if need_q or need_k or need_m:
        dp = g @ vr.mT
        if drop is not None:
            dp = dp * drop
        pdp = dp * p
        ds = pdp - p * pdp.sum(-1, keepdim=True)
        if need_m:
            gm = sum_to_size(ds, mask.shape).to(mask.dtype)
        ds = ds * scale
        if need_q:
            gq = sum_to_size(ds @ kr, q.shape).to(q.dtype)
        if need_k:
            gk = _graph_kv(ds.mT @ q.to(ds.dtype), rk, k)
    return gq, gk, gv, gm, None, None, None, None, None


def _graph_kv(a: Tensor, r: int, like: Tensor) -> Tensor:
    from .reduce import sum_to_size
    if r > 1:
        sh = tuple(a.shape)
        a = a.reshape(sh[:-3] + (sh[-3] // r, r) + sh[-2:]).sum(-3)
    return sum_to_size(a, like.shape).to(like.dtype)


def _batch_error(a, b, n: int, what: str):
    bsz = 1
    for s in a.shape[:-2]:
        bsz *= s
    return RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                        f"[{bsz}, {n}] but got: [{bsz}, {what}].")


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """``softmax(Q K^T * scale + mask) V`` over the last two dims, as one fused node.

    ``attn_mask``: boolean (True = may attend) or additive float, broadcastable to
    ``(..., L, S)``; ``is_causal``: the top-left aligned lower-triangular mask;
    ``scale`` defaults to ``1 / sqrt(E)``; ``enable_gqa`` repeats key/value heads (dim -3) to
    the query's head count.  See NOTE [ Fused attention ].
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention(): argument '{name}' must be Tensor, "
                            f"not {type(t).__name__}")
    q, k, v = query._data, key._data, value._data
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise RuntimeError(f"Expected query, key, and value to all be  at least 2 dimensional, "
                           f"but got query.dim: {q.ndim} key.dim: {k.ndim} and value.dim: "
                           f"{v.ndim} instead.")
    if not (q.dtype == k.dtype == v.dtype):
        raise RuntimeError(f"Expected query, key, and value to have the same dtype, but got "
                           f"query.dtype: {c_name(q.dtype)} key.dtype: {c_name(k.dtype)} and "
                           f"value.dtype: {c_name(v.dtype)} instead.")
    if not is_float(q.dtype):
        raise RuntimeError(f"expected scalar type Float but found {scalar_name(q.dtype)}")
    m = None
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"scaled_dot_product_attention(): argument 'attn_mask' must be "
                            f"Tensor, not {type(attn_mask).__name__}")
        m = attn_mask._data
        if not (m.dtype == bool or m.dtype == q.dtype or m.dtype.name == "float32"):
            raise RuntimeError(f"Expected attn_mask dtype to be bool or float or to match query "
                               f"dtype, but got attn_mask.dtype: {c_name(m.dtype)} and  "
                               f"query.dtype: {c_name(q.dtype)} instead.")
        if is_causal:
            # documented ("An error is thrown if both attn_mask and is_causal are set"), and
            # what PyTorch's math kernel raises; its CPU flash kernel applies both instead
            raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be "
                               "set when is_causal=True")
    if dropout_p < 0.0 or dropout_p > 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    rk = rv = 1
    if enable_gqa:
        if q.ndim < 3 or k.ndim < 3 or v.ndim < 3:
            raise IndexError(f"Dimension out of range (expected to be in range of [-2, 1], but "
                             f"got -3)")
        hq, hk, hv = q.shape[-3], k.shape[-3], v.shape[-3]
        if hq % hk or hq % hv:
            raise RuntimeError("Number of heads in key and value must divide the number of "
                               "heads in ")
        rk, rv = hq // hk, hq // hv
    if k.shape[-1] != q.shape[-1]:
        raise _batch_error(q, k, q.shape[-1], k.shape[-1])
    if v.shape[-2] != k.shape[-2]:
        raise _batch_error(q, v, k.shape[-2], v.shape[-2])
    hk_shape = k.shape[:-3] + (k.shape[-3] * rk,) if k.ndim >= 3 else ()
    hv_shape = v.shape[:-3] + (v.shape[-3] * rv,) if v.ndim >= 3 else ()
    check_broadcast(q.shape[:-2], hk_shape)
    check_broadcast(q.shape[:-2], hv_shape)
    if m is not None:
        bshape = _broadcast(_broadcast(q.shape[:-2], hk_shape), hv_shape)
        check_broadcast(bshape + (q.shape[-2], k.shape[-2]), m.shape)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else math.inf
    return _SDPA.apply(query, key, value, attn_mask, bool(is_causal), float(scale),
                       float(dropout_p), rk, rv)


def _broadcast(a, b) -> tuple:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    return tuple(x if y == 1 else y for x, y in zip(a, b))


# ----------------------------------------------------------------------------------------------
# multi-head attention


def _dim(t) -> int:
    return t._data.ndim


def _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """PyTorch's checks of the ranks of the inputs; True when they are batched."""
    qd = _dim(query)
    if qd not in (2, 3):
        raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received "
                             f"{qd}-D query tensor")
    kind = "batched (3-D)" if qd == 3 else "unbatched (2-D)"
    if _dim(key) != qd or _dim(value) != qd:
        raise AssertionError(f"For {kind} `query`, expected `key` and `value` to be {qd}-D but "
                             f"found {_dim(key)}-D and {_dim(value)}-D tensors respectively")
    if key_padding_mask is not None and _dim(key_padding_mask) != qd - 1:
        raise AssertionError(f"For {kind} `query`, expected `key_padding_mask` to be `None` or "
                             f"{qd - 1}-D but found {_dim(key_padding_mask)}-D tensor instead")
    if attn_mask is not None:
        if _dim(attn_mask) not in (2, 3):
            raise AssertionError(f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D or "
                                 f"3-D but found {_dim(attn_mask)}-D tensor instead")
        if qd == 2 and _dim(attn_mask) == 3:
            expected = (num_heads, query.shape[0], key.shape[0])
            if tuple(attn_mask.shape) != expected:
                raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got "
                                     f"{_size(attn_mask.shape)}")
    return qd == 3


def _canonical_mask(mask, mask_name: str, target_dtype, other=None, other_name: str = ""):
    """A bool mask as an additive float one (True -> -inf); float masks pass through.

    ``target_dtype`` is a backend dtype; ``other`` the mask whose dtype this one should share
    (PyTorch warns when they differ).
    """
    if mask is None:
        return None
    md = mask._data.dtype
    if md != bool and not is_float(md):
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if other is not None and other._data.dtype != md:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. "
                      f"Use same type for both instead.", stacklevel=3)
    if md == bool:
        out = xp_of(mask._data).zeros(mask._data.shape, dtype=target_dtype)
        out[mask._data] = _NEG_INF
        return _make(out)
    return mask


def _heads(t: Tensor, n: int, h: int, d: int) -> Tensor:
    """``(N, S, E)`` -> ``(N, H, S, D)``."""
    return t.reshape(n, -1, h, d).transpose(1, 2)


def _mha_core(query, key, value, num_heads, in_proj_weight, in_proj_bias, bias_k, bias_v,
              add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training,
              key_padding_mask, need_weights, attn_mask, separate, q_proj_weight,
              k_proj_weight, v_proj_weight, static_k, static_v, average_attn_weights,
              is_causal):
    """Multi-head attention on batch-first ``(N, L, E)`` inputs (masks already canonical).

    PyTorch's ``multi_head_attention_forward`` works on ``(L, N, E)``; every step here is the
    same computation in the batch-first layout, which spares two transposes per call for
    ``batch_first=True`` modules.  Returns ``(N, L, E)`` output and the weights.
    """
    bsz, tgt_len, embed_dim = query.shape
    src_len = key.shape[1]
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if separate:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise AssertionError(f"key's sequence and batch dims {_size(key.shape[1::-1])} do "
                                 f"not match value's {_size(value.shape[1::-1])}")
    elif tuple(key.shape) != tuple(value.shape):
        raise AssertionError(f"key shape {_size(_sf(key.shape))} does not match value shape "
                             f"{_size(_sf(value.shape))}")

    # ---- input projections
    if not separate:
        if in_proj_weight is None:
            raise AssertionError("use_separate_proj_weight is False but in_proj_weight is None")
        E = embed_dim
        if key is value and query is key:
            proj = linear(query, in_proj_weight, in_proj_bias)
            q, k, v = proj.unflatten(-1, (3, E)).unbind(-2)
        elif key is value:
            w_q, w_kv = in_proj_weight.split([E, 2 * E])
            b_q, b_kv = (None, None) if in_proj_bias is None else in_proj_bias.split([E, 2 * E])
            q = linear(query, w_q, b_q)
            k, v = linear(key, w_kv, b_kv).unflatten(-1, (2, E)).unbind(-2)
        else:
            w_q, w_k, w_v = in_proj_weight.chunk(3)
            b_q = b_k = b_v = None
            if in_proj_bias is not None:
                b_q, b_k, b_v = in_proj_bias.chunk(3)
            q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
    else:
        for name, w in (("q", q_proj_weight), ("k", k_proj_weight), ("v", v_proj_weight)):
            if w is None:
                raise AssertionError(f"use_separate_proj_weight is True but {name}_proj_weight "
                                     f"is None")
        b_q = b_k = b_v = None
        if in_proj_bias is not None:
            b_q, b_k, b_v = in_proj_bias.chunk(3)
        eq, ek, ev = query.shape[-1], key.shape[-1], value.shape[-1]
        for what, w, want in (("query weights", q_proj_weight, (eq, eq)),
                              ("key weights", k_proj_weight, (eq, ek)),
                              ("value weights", v_proj_weight, (eq, ev))):
            if tuple(w.shape) != want:
                raise AssertionError(f"expecting {what} shape of {want}, but got "
                                     f"{_size(w.shape)}")
        q = linear(query, q_proj_weight, b_q)
        k = linear(key, k_proj_weight, b_k)
        v = linear(value, v_proj_weight, b_v)

    # ---- masks: attn_mask (L, S) or (N * H, L, S)
    if attn_mask is not None:
        if _dim(attn_mask) == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {_size(attn_mask.shape)}, "
                                   f"but should be {(tgt_len, src_len)}.")
        elif _dim(attn_mask) == 3:
            want = (bsz * num_heads, tgt_len, src_len)
            if tuple(attn_mask.shape) != want:
                raise RuntimeError(f"The shape of the 3D attn_mask is {_size(attn_mask.shape)}, "
                                   f"but should be {want}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {_dim(attn_mask)} is not supported")

    from .padding import pad
    if bias_k is not None and bias_v is not None:
        if static_k is not None:
            raise AssertionError("bias cannot be added to static key.")
        if static_v is not None:
            raise AssertionError("bias cannot be added to static value.")
        k = cat([k, bias_k.reshape(1, 1, -1).expand(bsz, 1, embed_dim)], 1)
        v = cat([v, bias_v.reshape(1, 1, -1).expand(bsz, 1, embed_dim)], 1)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    elif bias_k is not None:
        raise AssertionError("bias_k is set but bias_v is None")
    elif bias_v is not None:
        raise AssertionError("bias_v is set but bias_k is None")

    # ---- heads: (N, H, S, D)
    q = _heads(q, bsz, num_heads, head_dim)
    k = _heads(k, bsz, num_heads, head_dim) if static_k is None else _static(
        static_k, "static_k", bsz, num_heads, head_dim)
    v = _heads(v, bsz, num_heads, head_dim) if static_v is None else _static(
        static_v, "static_v", bsz, num_heads, head_dim)
    if add_zero_attn:
        from .._creation import zeros
        k = cat([k, zeros((bsz, num_heads, 1, head_dim), dtype=k.dtype)], 2)
        v = cat([v, zeros((bsz, num_heads, 1, head_dim), dtype=v.dtype)], 2)
        if attn_mask is not None:
            attn_mask = pad(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = pad(key_padding_mask, (0, 1))
    src_len = k.shape[2]

    # ---- merge the masks into one additive mask broadcastable to (N, H, L, S)
    if attn_mask is not None and _dim(attn_mask) == 3:
        attn_mask = attn_mask.reshape(bsz, num_heads, tgt_len, src_len)
    if key_padding_mask is not None:
        kshape = tuple(key_padding_mask.shape)
        if kshape[0] != bsz:
            raise AssertionError(f"Expected key_padded_mask.shape[0] to be {bsz}, but got "
                                 f"{kshape[0]}")
        if kshape[1] != src_len:
            raise AssertionError(f"Expected key_padded_mask.shape[1] to be {src_len}, but got "
                                 f"{kshape[1]}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0

    if need_weights:
        if is_causal and attn_mask is None:
            raise AssertionError("FIXME: is_causal not implemented for need_weights")
        # PyTorch's composition: softmax(mask + (q / sqrt(D)) k^T), dropout, @ v
        w = (q * math.sqrt(1.0 / float(head_dim))) @ k.mT
        if attn_mask is not None:
            w = attn_mask + w
        w = softmax(w, -1)
        if dropout_p > 0.0:
            w = dropout(w, p=dropout_p)
        out = w @ v
        if average_attn_weights:
            w = w.mean(1)
    else:
        out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        w = None
    out = out.transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
    return linear(out, out_proj_weight, out_proj_bias), w


def _sf(shape):
    """A batch-first shape as the sequence-first one PyTorch's message names."""
    return (shape[1], shape[0]) + tuple(shape[2:])


def _static(t, name, bsz, num_heads, head_dim):
    if t.shape[0] != bsz * num_heads:
        raise AssertionError(f"expecting {name}.size(0) of {bsz * num_heads}, but got "
                             f"{t.shape[0]}")
    if t.shape[2] != head_dim:
        raise AssertionError(f"expecting {name}.size(2) of {head_dim}, but got {t.shape[2]}")
    return t.reshape(bsz, num_heads, t.shape[1], head_dim)


def _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
         bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
         training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
         use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
         v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
         is_causal=False, batch_first=False):
    """``multi_head_attention_forward`` with a ``batch_first`` switch (the layer's entry)."""
    is_batched = _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not is_batched:
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not batch_first:  # work batch-first; keep the identities self-attention relies on
        same_kv = key is value
        same_qk = query is key
        query = query.transpose(0, 1)
        key = query if same_qk else key.transpose(0, 1)
        value = key if same_kv else value.transpose(0, 1)
    dt = query._data.dtype
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", dt, attn_mask,
                                       "attn_mask")
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the "
                           "Transformer module method `generate_square_subsequent_mask` to "
                           "create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        # the mask is the causal one (the caller's hint): let the fused op build it
        attn_mask = None
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", dt)
        if key_padding_mask is not None:
            is_causal = False
    embed_dim = query.shape[-1]
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but "
                             f"got {embed_dim}")
    out, w = _mha_core(query, key, value, num_heads, in_proj_weight, in_proj_bias, bias_k,
                       bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                       training, key_padding_mask, need_weights, attn_mask,
                       use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight,
                       static_k, static_v, average_attn_weights, is_causal)
    if not is_batched:
        out = out.squeeze(0)
        if w is not None:
            w = w.squeeze(0)
    elif not batch_first:
        out = out.transpose(0, 1)
    return out, w


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """Multi-head attention on ``(L, N, E)`` (or unbatched ``(L, E)``) inputs, as PyTorch's.

    ``Q = query W_q^T + b_q`` (likewise K, V), split into ``num_heads`` heads of
    ``E / num_heads``; per head ``softmax(Q K^T / sqrt(D) + mask) V``; heads concatenated and
    projected by ``out_proj``.  Returns ``(output, weights)``, weights ``None`` unless
    ``need_weights`` (then averaged over heads when ``average_attn_weights``).
    """
    return _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
                in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight,
                out_proj_bias, training, key_padding_mask, need_weights, attn_mask,
                use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight,
                static_k, static_v, average_attn_weights, is_causal, batch_first=False)
