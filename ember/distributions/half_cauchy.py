"""``HalfCauchy(scale)``: |X| for X ~ Cauchy(0, scale)."""
from __future__ import annotations

import math

import ember
from .cauchy import Cauchy
from .transformed_distribution import _FoldedAtZero

__all__ = ["HalfCauchy"]


class HalfCauchy(_FoldedAtZero):
    """log p(x) = log 2 + Cauchy(0, scale).log_prob(x) on x >= 0."""

    _symmetric = Cauchy

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HalfCauchy, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def mean(self):
        return ember.full(tuple(self._extended_shape()), math.inf, dtype=self.scale.dtype)

    @property
    def variance(self):
        return self.base_dist.variance

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        # unlike HalfNormal's, PyTorch's HalfCauchy scores the value in the scale's dtype
        return self._folded_log_prob(ember.as_tensor(value, dtype=self.scale.dtype))
