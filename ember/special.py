"""``ember.special``: PyTorch's ``torch.special`` namespace.

Design note: this module holds names only.  The differentiable special functions are
``autograd.Function``s in ``ember/ops/special.py`` (the gamma family, Bessel I, erfcx, the
normal distribution's ndtr/ndtri/log_ndtr, xlogy, zeta, the incomplete gamma) with their
numerics written on arrays there; the rest are existing ember ops under torch.special's
names (``expit`` is ``sigmoid``, ``gammaln`` is ``lgamma``, ``multigammaln`` is
``mvlgamma``).  Functions PyTorch gives no gradient (Bessel J/Y/K, the orthogonal
polynomials, Airy Ai) return tensors without history, as PyTorch's do.
"""
from __future__ import annotations

from .ops import special as _s
from .ops.elementwise import (erf, erfc, erfinv, exp2, expm1, log1p, logit, sigmoid as expit)
from .ops.elementwise import round as _round
from .ops.reduce import logsumexp as _logsumexp
from .ops import activation as _activation

__all__ = ["airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1",
           "chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v",
           "chebyshev_polynomial_w", "digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2",
           "expit", "expm1", "gammainc", "gammaincc", "gammaln", "hermite_polynomial_h",
           "hermite_polynomial_he", "i0", "i0e", "i1", "i1e", "laguerre_polynomial_l",
           "legendre_polynomial_p", "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp",
           "modified_bessel_i0", "modified_bessel_i1", "modified_bessel_k0",
           "modified_bessel_k1", "multigammaln", "ndtr", "ndtri", "polygamma", "psi", "round",
           "scaled_modified_bessel_k0", "scaled_modified_bessel_k1",
           "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u",
           "shifted_chebyshev_polynomial_v", "shifted_chebyshev_polynomial_w", "sinc", "softmax",
           "spherical_bessel_j0", "xlog1py", "xlogy", "zeta"]

digamma = psi = _s.digamma
gammaln = _s.lgamma
polygamma = _s.polygamma
multigammaln = _s.mvlgamma
i0 = _s.i0
i0e = _s.special_i0e
i1 = _s.special_i1
i1e = _s.special_i1e
erfcx = _s.special_erfcx
ndtr = _s.special_ndtr
ndtri = _s.special_ndtri
log_ndtr = _s.special_log_ndtr
entr = _s.special_entr
sinc = _s.sinc
xlogy = _s.xlogy
xlog1py = _s.special_xlog1py
zeta = _s.special_zeta
gammainc = _s.igamma
gammaincc = _s.igammac
airy_ai = _s.special_airy_ai
bessel_j0 = _s.special_bessel_j0
bessel_j1 = _s.special_bessel_j1
bessel_y0 = _s.special_bessel_y0
bessel_y1 = _s.special_bessel_y1
modified_bessel_i0 = _s.special_modified_bessel_i0
modified_bessel_i1 = _s.special_modified_bessel_i1
modified_bessel_k0 = _s.special_modified_bessel_k0
modified_bessel_k1 = _s.special_modified_bessel_k1
scaled_modified_bessel_k0 = _s.special_scaled_modified_bessel_k0
scaled_modified_bessel_k1 = _s.special_scaled_modified_bessel_k1
spherical_bessel_j0 = _s.special_spherical_bessel_j0
chebyshev_polynomial_t = _s.POLYNOMIALS["chebyshev_polynomial_t"]
chebyshev_polynomial_u = _s.POLYNOMIALS["chebyshev_polynomial_u"]
chebyshev_polynomial_v = _s.POLYNOMIALS["chebyshev_polynomial_v"]
chebyshev_polynomial_w = _s.POLYNOMIALS["chebyshev_polynomial_w"]
shifted_chebyshev_polynomial_t = _s.POLYNOMIALS["shifted_chebyshev_polynomial_t"]
shifted_chebyshev_polynomial_u = _s.POLYNOMIALS["shifted_chebyshev_polynomial_u"]
shifted_chebyshev_polynomial_v = _s.POLYNOMIALS["shifted_chebyshev_polynomial_v"]
shifted_chebyshev_polynomial_w = _s.POLYNOMIALS["shifted_chebyshev_polynomial_w"]
hermite_polynomial_h = _s.POLYNOMIALS["hermite_polynomial_h"]
hermite_polynomial_he = _s.POLYNOMIALS["hermite_polynomial_he"]
laguerre_polynomial_l = _s.POLYNOMIALS["laguerre_polynomial_l"]
legendre_polynomial_p = _s.POLYNOMIALS["legendre_polynomial_p"]


def round(input, *, out=None):
    """Round half to even (torch.special.round, no ``decimals``)."""
    return _round(input, out=out)


def logsumexp(input, dim, keepdim=False, *, out=None):
    """``log(sum(exp(input), dim))`` computed stably."""
    r = _logsumexp(input, dim, keepdim)
    return r if out is None else out.copy_(r)


def softmax(input, dim, *, dtype=None):
    """``exp(x) / sum(exp(x), dim)``."""
    return _activation.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim, *, dtype=None):
    """``x - logsumexp(x, dim)``."""
    return _activation.log_softmax(input, dim, dtype=dtype)
