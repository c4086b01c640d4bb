"""``VonMises(loc, concentration)``: the circular normal distribution on angles."""
from __future__ import annotations

import math

import ember
from . import constraints
from .distribution import Distribution
from .utils import broadcast_all, lazy_property

__all__ = ["VonMises"]


def _log_i0(k):
    """``log I0(k)`` without overflow: log(i0e(k)) + k."""
    return ember.log(ember.special.i0e(k)) + k


def _rejection_sample(loc, concentration, proposal_r, shape):
    """Best & Fisher (1979): propose from a wrapped Cauchy, accept by a squeeze test."""
    x = ember.zeros(shape, dtype=loc.dtype)
    done = ember.zeros(shape, dtype=ember.bool)
    while not bool(done.all()):
        u1, u2, u3 = ember.rand((3,) + tuple(shape), dtype=loc.dtype).unbind()
        z = ember.cos(math.pi * u1)
        f = (1 + proposal_r * z) / (proposal_r + z)
        c = concentration * (proposal_r - f)
        accept = ((c * (2 - c) - u2) > 0) | ((c / u2).log() + 1 - c >= 0)
        x = ember.where(accept & ~done, (u3 - 0.5).sign() * f.acos(), x)
        done = done | accept
    return (x + math.pi + loc) % (2 * math.pi) - math.pi


class VonMises(Distribution):
    """log p(x) = kappa cos(x - loc) - log(2 pi I0(kappa)); angles are taken modulo 2 pi."""

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, concentration, validate_args=None):
        self.loc, self.concentration = broadcast_all(loc, concentration)
        batch_shape = self.loc.shape
        super().__init__(batch_shape, ember.Size(), validate_args)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_prob = self.concentration * ember.cos(value - self.loc)
        return log_prob - math.log(2 * math.pi) - _log_i0(self.concentration)

    @lazy_property
    def _proposal_r(self):
        kappa = self.concentration.double()
        tau = 1 + (1 + 4 * kappa ** 2).sqrt()
        rho = (tau - (2 * tau).sqrt()) / (2 * kappa)
        proposal_r = (1 + rho ** 2) / (2 * rho)
        return ember.where(kappa < 1e-5, 1 / kappa + kappa, proposal_r)

    def sample(self, sample_shape=ember.Size()):
        # in double precision: single precision stalls the rejection loop for tiny kappa
        shape = tuple(self._extended_shape(sample_shape))
        with ember.no_grad():
            loc = self.loc.double().expand(shape)
            kappa = self.concentration.double().expand(shape)
            r = self._proposal_r.expand(shape)
            return _rejection_sample(loc, kappa, r, shape).to(self.loc.dtype)

    def expand(self, batch_shape, _instance=None):
        return self._expand_params(VonMises, batch_shape, _instance, "loc", "concentration")

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @lazy_property
    def variance(self):
        """The circular variance 1 - I1(kappa) / I0(kappa)."""
        k = self.concentration
        return 1 - ember.special.i1e(k) / ember.special.i0e(k)
