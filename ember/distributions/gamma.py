"""``Gamma(concentration, rate)``: shape/rate parameterisation."""
from __future__ import annotations

import ember
from . import constraints
from .exp_family import ExponentialFamily
from .utils import broadcast_all, tiny_of

__all__ = ["Gamma"]


def _clamp_tiny(value):
    """``value`` with zeros raised to the dtype's tiny, leaving its gradient untouched."""
    return value + (value.detach().clamp(min=tiny_of(value.dtype)) - value.detach())


class Gamma(ExponentialFamily):
    """log p(x) = c log(r) + (c - 1) log(x) - r x - lgamma(c); rsample by implicit
    reparameterisation (the gradient of a standard-gamma sample w.r.t. its shape)."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True
    _mean_carrier_measure = 0

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate.pow(2)

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        batch_shape = self.concentration.size()  # numbers broadcast to 0-d tensors
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expand_params(Gamma, batch_shape, _instance, "concentration", "rate")

    def rsample(self, sample_shape=ember.Size()):
        shape = self._extended_shape(sample_shape)
        value = ember._standard_gamma(self.concentration.expand(shape)) / self.rate.expand(
            shape)
        return _clamp_tiny(value)

    def log_prob(self, value):
        value = ember.as_tensor(value, dtype=self.rate.dtype)
        if self._validate_args:
            self._validate_sample(value)
        return (ember.xlogy(self.concentration, self.rate)
                + ember.xlogy(self.concentration - 1, value)
                - self.rate * value - ember.lgamma(self.concentration))

    def entropy(self):
        c = self.concentration
        return c - ember.log(self.rate) + ember.lgamma(c) + (1.0 - c) * ember.digamma(c)

    @property
    def _natural_params(self):
        return (self.concentration - 1, -self.rate)

    def _log_normalizer(self, x, y):
        return ember.lgamma(x + 1) + (x + 1) * ember.log(-y.reciprocal())

    def cdf(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return ember.special.gammainc(self.concentration, self.rate * value)
