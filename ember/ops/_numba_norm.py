"""numba kernels for layer norm over (R, K) rows (the ``numba`` extra).

NOTE [ numba layer-norm kernels ]
What: layer norm's forward and backward each as ONE pass over its rows, where the NumPy path
(NOTE [ Fused normalisation ] in ``normalization.py``) makes 5-10 full-size passes and a
scratch array each way.  Forward (``ln_fwd``): per row, the mean and the two-pass variance
while the row sits in L1, then ``y = (x - mean) * inv * w + b``; it writes ``y`` and the
saved statistics (``mean``, ``inv``: the same layout as the NumPy path's, so either backward
runs after either forward).  Backward (``ln_bwd``): per row, ``sum(g w)`` and
``sum(g w xhat)``, then ``dx = inv (g w - (sum(g w) + xhat sum(g w xhat)) / K)``; the weight
and bias gradients (column sums over the rows) accumulate into (K,) float64 vectors that
stay in L1 over the whole call.
Where it hooks in: ``normalization.py``'s kernel table (``normalization.kernels``), which
``ember.compile(fn, options={"numba": True})`` sets for the duration of each call, as the
LSTM's (NOTE [ Step kernels ] in ``rnn.py``); the forward keeps its choice on ``ctx.kern``
for the backward.  This module is imported only then: ``import ember`` and the default path
never import numba.
Numbers: row sums accumulate in float64 (float32 inputs too); ``fastmath={"reassoc",
"contract"}`` lets LLVM vectorise those sums (a serial sum of 128 floats is a 4-cycle chain
per element) and fuse ``a * b + c``; no assumptions about NaN or inf, which go through as in
the NumPy path.  Results are within float32 rounding of the NumPy path (not bit for bit: the
sums are ordered differently).
Compilation: the signatures are given, so the kernels compile (or load from numba's cache,
``cache=True``, in ``__pycache__`` beside this file) when this module is imported.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

__all__ = ["KERNELS"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
_TYPES = (types.float32, types.float64)


def _ro(t, ndim: int):
    """A read-only C-contiguous array type (writable arrays are accepted too)."""
    return types.Array(t, ndim, "C", readonly=True)


def _rw(t, ndim: int):
    return types.Array(t, ndim, "C")


@njit([types.void(_ro(t, 2), _ro(t, 1), _ro(t, 1), types.float64, _rw(t, 2), _rw(t, 1),
                  _rw(t, 1)) for t in _TYPES], **_OPTS)
def ln_fwd(x, w, b, eps, y, mean, inv):
    """``y = (x - mean) * inv * w + b`` over the rows of ``x``, with each row's ``mean`` and
    ``inv = 1 / sqrt(var + eps)`` (biased, two-pass variance) written too."""
    r_, k_ = x.shape
    for r in range(r_):
        xr, yr = x[r], y[r]
        s = 0.0
        for k in range(k_):
            s += xr[k]
        m = s / k_
        v = 0.0
        for k in range(k_):
            d = xr[k] - m
            v += d * d
        iv = 1.0 / math.sqrt(v / k_ + eps)
        mt = mean.dtype.type(m)  # the saved statistics, rounded as stored
        it = inv.dtype.type(iv)
        mean[r] = mt
        inv[r] = it
        for k in range(k_):
            yr[k] = (xr[k] - mt) * it * w[k] + b[k]


@njit([types.void(_ro(t, 2), _ro(t, 2), _ro(t, 1), _ro(t, 1), _ro(t, 1), _rw(t, 2),
                  _rw(types.float64, 1), _rw(types.float64, 1), types.boolean, types.boolean)
       for t in _TYPES], **_OPTS)
def ln_bwd(g, x, mean, inv, w, dx, dw, db, need_x, need_wb):
    """Layer norm's gradients over the rows: ``dx`` (if ``need_x``) and the column sums
    ``dw = sum_r g xhat``, ``db = sum_r g`` (if ``need_wb``, into the float64 ``dw``, ``db``,
    which start at zero)."""
    r_, k_ = x.shape
    for r in range(r_):
        gr, xr = g[r], x[r]
        m, iv = mean[r], inv[r]
        s1 = 0.0
        s2 = 0.0
        for k in range(k_):
            xh = (xr[k] - m) * iv
            gh = gr[k] * w[k]
            s1 += gh
            s2 += gh * xh
            if need_wb:
                dw[k] += gr[k] * xh
                db[k] += gr[k]
        if need_x:
            c1 = mean.dtype.type(s1 / k_)
            c2 = mean.dtype.type(s2 / k_)
            dr = dx[r]
            if k_ == 1:
                # g w - c1 is exactly 0 here (NaN from inf or NaN), as torch's, but "contract"
                # makes it fma(g, w, -c1): the product's rounding error; s1 - s1 has no product
                dr[0] = iv * ((s1 - s1) - (xr[0] - m) * iv * c2)
                continue
            for k in range(k_):
                xh = (xr[k] - m) * iv
                dr[k] = iv * (gr[k] * w[k] - c1 - xh * c2)


class _LayerNormKernels:
    """Layer norm's kernels, as ``normalization.py`` looks them up."""

    fwd = staticmethod(ln_fwd)
    bwd = staticmethod(ln_bwd)


# (array module, dtype) -> kernels: NumPy's float32 and float64
KERNELS = {(np, np.dtype(t)): _LayerNormKernels for t in ("float32", "float64")}
