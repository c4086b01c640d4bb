"""numba kernels for attention's softmax over scores laid out by key (the ``numba`` extra).

NOTE [ numba softmax kernels ]
What: the softmax of ``scaled_dot_product_attention``'s scores, laid out (B, S, L) by key
(NOTE [ Scores by key ] in ``attention.py``), as ONE pass over memory per (S, L) block, the
block's own passes running while it sits in L1: each query's (column's) maximum over the keys
it may see (causal: key ``j`` sees queries ``i >= j``), ``exp(s - max)`` and its sum, then the
scale by ``1 / sum``, with the causal mask's entries written 0.  The NumPy path makes five to
seven passes over the whole array (the shift, the mask's add, exp, the sum as a GEMV and the
normalisation).  Backward (``softmax_bwd``): ``dS = P * (dP - sum_j P dP)`` in place of
``dP``, the column sums and the update in one pass per block (NumPy: einsum and two passes).
Where it hooks in: the kernel table (NOTE [ Kernel tables ] in ``_kernels.py``); the
attention forward keeps its choice on ``ctx.kern`` for the backward.
Numbers: ``exp`` is Cephes' ``expf`` (Cody-Waite reduction by ln 2, a degree-6 polynomial,
the power of two made from its bits), since numba's ``math.exp`` is a scalar libm call
(~5x NumPy's SIMD exp on (16, 4, 64, 64)); its inputs are ``s - max <= 0``, within 1-2 ulp of
NumPy's; below -87.3 (where float32's normal range ends) it returns 0 (NumPy: denormals
< 1.2e-38).  Each query is shifted by its own maximum (the NumPy path may shift the whole
call by one value, NOTE [ One softmax shift ]), so the probabilities agree with the NumPy
path's to float32 rounding, not bit for bit.  A query with a NaN or +inf score, or with
every visible score -inf, gets NaN probabilities, as PyTorch's.  Only float32 has kernels
(float64 keeps the NumPy path: its exp would need a double-accurate polynomial).
Compilation: the signatures are given, so the kernels compile (or load from numba's cache,
``cache=True``) when this module is imported.  ``fastmath={"contract"}`` only: FMAs, no
reassociation (the reductions run over the outer loop, vectorised along the queries) and no
assumptions about NaN or inf.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["KERNELS"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})

_f = np.float32
_LOG2E = _f(1.44269504088896341)
_LN2_HI, _LN2_LO = _f(0.693359375), _f(-2.12194440e-4)
_LO = _f(-87.33654)  # exp(_LO) is float32's smallest normal number
_HALF, _ONE = _f(0.5), _f(1.0)
# Cephes expf: exp(r) ~ 1 + r + r^2 p(r) on |r| <= ln 2 / 2
_E0, _E1, _E2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_E3, _E4, _E5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)


@intrinsic
def _f32_bits(typingctx, i):
    """The float32 whose bits are the int32 ``i``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(inline="always", **_OPTS)
def _exp0(x):
    """``exp(x)`` in float32 for ``x <= 0`` (``-inf`` and anything below ``_LO`` give 0; a
    NaN gives 0 too, the caller's columns with one are NaN already)."""
    z = x if x > _LO else _LO
    n = np.floor(z * _LOG2E + _HALF)
    r = z - n * _LN2_HI
    r = r - n * _LN2_LO
    p = (((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5) * (r * r) + r + _ONE
    y = p * _f32_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return y if x > _LO else _f(0.0)


_F3 = types.Array(types.float32, 3, "C")
_F3_RO = types.Array(types.float32, 3, "C", readonly=True)


@njit(types.void(_F3, types.boolean), **_OPTS)
def softmax_fwd(s, causal):
    """The softmax over axis 1 (the keys) of each (S, L) block of ``s``, in place; with
    ``causal``, entries ``(j, i)`` with ``j > i`` are masked (0)."""
    nb, ns, nl = s.shape
    m = np.empty(nl, np.float32)
    d = np.empty(nl, np.float32)
    chk = np.empty(nl, np.float32)
    zero = _f(0.0)
    neg_inf = _f(-np.inf)
    for b in range(nb):
        blk = s[b]
        m[:] = neg_inf
        chk[:] = zero
        # whole rows with the mask as selects: a loop starting at j does not vectorise well
        for j in range(ns):
            row = blk[j]
            for i in range(nl):
                v = row[i]
                seen = i >= j or not causal
                m[i] = max(m[i], v if seen else neg_inf)
                chk[i] += (v - v) if seen else zero  # NaN once a NaN or an infinite score
        for i in range(nl):
            if chk[i] != chk[i]:  # rare: NaN or +inf make the query's row NaN (-inf is 0)
                bad = m[i] == -neg_inf or m[i] == neg_inf
                for j in range(min(i + 1, ns) if causal else ns):
                    bad = bad or blk[j, i] != blk[j, i]
                m[i] = np.nan if bad else m[i]
        d[:] = zero
        for j in range(ns):
            row = blk[j]
            for i in range(nl):
                e = _exp0(row[i] - m[i])
                e = e if i >= j or not causal else zero
                row[i] = e
                d[i] += e
        for i in range(nl):
            d[i] = _ONE / d[i] if m[i] == m[i] else m[i]
        for j in range(ns):
            row = blk[j]
            for i in range(nl):
                row[i] *= d[i]


@njit(types.void(_F3_RO, _F3), **_OPTS)
def softmax_bwd(p, ds):
    """``ds = p * (ds - sum_j p ds)`` over axis 1 of each (S, L) block, in place."""
    nb, ns, nl = p.shape
    r = np.empty(nl, np.float32)
    for b in range(nb):
        pb, db = p[b], ds[b]
        r[:] = 0
        for j in range(ns):
            pr, dr = pb[j], db[j]
            for i in range(nl):
                r[i] += pr[i] * dr[i]
        for j in range(ns):
            pr, dr = pb[j], db[j]
            for i in range(nl):
                dr[i] = (dr[i] - r[i]) * pr[i]


class _SoftmaxKernels:
    """The by-key softmax's kernels, as ``attention.py`` looks them up."""

    fwd = staticmethod(softmax_fwd)
    bwd = staticmethod(softmax_bwd)


# (array module, dtype) -> kernels: only NumPy's float32 (NOTE above)
KERNELS = {(np, np.dtype(np.float32)): _SoftmaxKernels}
