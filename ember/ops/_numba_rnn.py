"""numba kernels for the fused LSTM's per-step elementwise work (the ``numba`` extra).

NOTE [ numba step kernels ]
What: one float32 LSTM step's elementwise work as ONE compiled pass over its ``(n, H)``
rows, after the step's GEMM (the GEMMs stay NumPy/BLAS).  Forward (``lstm_fwd``): the gates'
nonlinearities, ``c = f c' + i g``, ``tanh(c)``, ``h = o tanh(c)`` and, when recording, the six
factors ``P`` the backward reads (the same layout as the NumPy path's, NOTE [ Fused recurrent
layer ] in ``rnn.py``: either backward runs after either forward).  Backward (``lstm_bwd``):
``dc = dc + P0 dh``, the four gates' gradients and ``dc_prev = f dc``; ``lstm_acc`` adds a
step's four per-gate GEMM products into the rows of ``dZ`` they belong to.
Where it hooks in: ``rnn.py``'s kernel table (``rnn.step_kernels``), which
``ember.compile(fn, options={"numba": True})`` sets for the duration of each call; the fused
node's forward reads it and keeps its choice on its ``ctx`` for the backward.  This module is
imported only then: ``import ember`` and the default path never import numba.
Numbers: ``tanh`` is a rational function (below) that LLVM vectorises, since numba's
``math.tanh`` is a scalar libm call (294 us a forward step against NumPy's 6 us for its one
four-gate ``tanh``).  Only float32 has kernels: float64 would need a double-accurate
vectorisable ``tanh`` (libm's scalar one is ~50x slower than NumPy's passes), so it keeps the
NumPy path.
Compilation: the signatures are given, so the kernels compile (or load from numba's cache,
``cache=True``, in ``__pycache__`` beside this file) when this module is imported.
``error_model="numpy"`` drops the division-by-zero check that otherwise stops vectorisation;
``fastmath={"contract"}`` lets LLVM fuse ``a * b + c`` into FMAs (no reassociation, no
assumptions about NaN or inf): the forward kernel 14.9 -> 11.8 us at B=32, H=128.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["KERNELS"]

_f = np.float32
# tanh(x) ~ x p(x^2) / q(x^2) on |x| <= 9 (beyond, tanh is 1 in float32), coefficients fitted
# here by least squares on relative error with Lawson reweighting: relative error 2e-8 in
# exact arithmetic, at most 5.3 ulp (mean 0.64) evaluated in float32 with FMAs, against
# NumPy's 1.4 ulp (mean 0.33).
# All coefficients are positive, so Horner's sums do not cancel.
_P0, _P1, _P2, _P3, _P4 = (_f(0.9999999794662795), _f(0.13381060393046454),
                           _f(0.003495629288757738), _f(2.0609754319041788e-05),
                           _f(1.3355581194230122e-08))
_Q1, _Q2, _Q3, _Q4 = (_f(0.4671437599732414), _f(0.025877139097187557),
                      _f(0.00032857019125423227), _f(7.776937215942929e-07))
_CLAMP, _ONE, _HALF = _f(9.0), _f(1.0), _f(0.5)

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(inline="always", **_OPTS)
def _tanh(x):
    """``tanh(x)`` in float32 (rational approximation above), branch-free to vectorise; the
    selects are written so that a NaN goes through."""
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    u = x * x
    p = (((_P4 * u + _P3) * u + _P2) * u + _P1) * u + _P0
    q = (((_Q4 * u + _Q3) * u + _Q2) * u + _Q1) * u + _ONE
    y = x * p / q
    y = _ONE if y > _ONE else y  # rounding can leave |y| up to 4 ulp above 1 near the clamp
    return -_ONE if y < -_ONE else y


@njit("void(float32[:, :, ::1], float32[:, ::1], float32[:, ::1], int64, float32[:, ::1], "
      "int64, float32[:, :, ::1], int64, boolean)", **_OPTS)
def lstm_fwd(G, cp, C, crow, Hout, hrow, P, prow, record):
    """One step over rows ``b < n = len(cp)``: ``G[:, b]`` the pre-activations o,i,f,g (the
    sigmoid gates' halved), ``cp`` the previous cells; writes ``c`` to ``C[crow + b]``, ``h``
    to ``Hout[hrow + b, :H]`` and, if ``record``, the factors to ``P[:, prow + b]``."""
    n, H = cp.shape[0], cp.shape[1]
    for b in range(n):
        c_, h_, cp_ = C[crow + b], Hout[hrow + b], cp[b]
        go, gi, gf, gg_ = G[0, b], G[1, b], G[2, b], G[3, b]
        if record:
            p0, p1, p2 = P[0, prow + b], P[1, prow + b], P[2, prow + b]
            p3, p4, p5 = P[3, prow + b], P[4, prow + b], P[5, prow + b]
            for k in range(H):
                o = _HALF * _tanh(go[k]) + _HALF  # sigmoid(a) = 0.5 tanh(a / 2) + 0.5
                i = _HALF * _tanh(gi[k]) + _HALF
                f = _HALF * _tanh(gf[k]) + _HALF
                g = _tanh(gg_[k])
                cpk = cp_[k]
                c = f * cpk + i * g
                tc = _tanh(c)
                c_[k] = c
                h_[k] = o * tc
                p0[k] = o - o * tc * tc        # dc per unit of dh
                p1[k] = (o - o * o) * tc       # d(pre o) per unit of dh
                p2[k] = (i - i * i) * g        # d(pre i), d(pre f), d(pre g) per unit of dc
                p3[k] = (f - f * f) * cpk
                p4[k] = i - i * g * g
                p5[k] = f                      # dc_prev per unit of dc
        else:
            for k in range(H):
                o = _HALF * _tanh(go[k]) + _HALF
                i = _HALF * _tanh(gi[k]) + _HALF
                f = _HALF * _tanh(gf[k]) + _HALF
                c = f * cp_[k] + i * _tanh(gg_[k])
                c_[k] = c
                h_[k] = o * _tanh(c)


@njit("void(float32[:, ::1], int64, float32[:, ::1], int64, float32[:, :, ::1], int64, "
      "float32[:, :, ::1], float32[:, ::1])", **_OPTS)
def lstm_bwd(dH, hrow, dC, crow, P, prow, dG, dcp):
    """One backward step over rows ``b < n = len(dcp)``: ``dh = dH[hrow + b, :H]``,
    ``dc = dC[crow + b] + P0 dh``; writes the gates' gradients o,i,f,g to ``dG[1:, prow + b]``
    and ``f dc`` to ``dcp[b]`` (the previous step's incoming dc)."""
    n, H = dcp.shape[0], dcp.shape[1]
    for b in range(n):
        r = prow + b
        dh_, dc_, out = dH[hrow + b], dC[crow + b], dcp[b]
        p0, p1, p2, p3, p4, p5 = P[0, r], P[1, r], P[2, r], P[3, r], P[4, r], P[5, r]
        go, gi, gf, gg = dG[1, r], dG[2, r], dG[3, r], dG[4, r]
        for k in range(H):
            dh = dh_[k]
            dc = dc_[k] + p0[k] * dh
            go[k] = p1[k] * dh
            gi[k] = p2[k] * dc
            gf[k] = p3[k] * dc
            gg[k] = p4[k] * dc
            out[k] = dc * p5[k]


@njit("void(float32[:, :, ::1], float32[:, ::1])", **_OPTS)
def lstm_acc(M, D):
    """``D[b] += M[0, b] + M[1, b] + M[2, b] + M[3, b]`` for ``b < len(D)`` (a step's per-gate
    products summed into the rows of ``dZ`` they belong to)."""
    n, W = D.shape[0], D.shape[1]
    for b in range(n):
        d, m0, m1, m2, m3 = D[b], M[0, b], M[1, b], M[2, b], M[3, b]
        for k in range(W):
            d[k] += (m0[k] + m2[k]) + (m1[k] + m3[k])  # the NumPy path's pairing


class _LstmKernels:
    """The LSTM's kernels, as ``rnn.py`` looks them up."""

    fwd = staticmethod(lstm_fwd)
    bwd = staticmethod(lstm_bwd)
    acc = staticmethod(lstm_acc)
    no_factors = np.empty((6, 0, 0), np.float32)  # P when not recording


# (array module, dtype) -> kernels: only NumPy's float32 (NOTE above)
KERNELS = {(np, np.dtype(np.float32)): _LstmKernels}
