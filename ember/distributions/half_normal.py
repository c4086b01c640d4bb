"""``HalfNormal(scale)``: |X| for X ~ Normal(0, scale)."""
from __future__ import annotations

import math

from .normal import Normal
from .transformed_distribution import _FoldedAtZero

__all__ = ["HalfNormal"]


class HalfNormal(_FoldedAtZero):
    """log p(x) = log 2 + Normal(0, scale).log_prob(x) on x >= 0."""

    _symmetric = Normal

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HalfNormal, _instance)
        return super().expand(batch_shape, _instance=new)

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def variance(self):
        return self.scale.pow(2) * (1 - 2 / math.pi)
