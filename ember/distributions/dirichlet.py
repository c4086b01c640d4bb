"""``Dirichlet(concentration)``: distributions on the simplex."""
from __future__ import annotations

import ember
from . import constraints
from .exp_family import ExponentialFamily
from .utils import tiny_of

__all__ = ["Dirichlet"]


def _sample_dirichlet(concentration):
    """Normalised standard-gamma samples; gradients by implicit reparameterisation of each
    gamma (so ``d sample / d concentration`` is unbiased, as PyTorch's)."""
    gammas = ember._standard_gamma(concentration)
    x = gammas / gammas.sum(-1, keepdim=True)
    tiny = tiny_of(x.dtype)
    return x + (x.detach().clamp(min=tiny) - x.detach())


class Dirichlet(ExponentialFamily):
    """log p(x) = sum (c_i - 1) log x_i + lgamma(sum c) - sum lgamma(c_i)."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration, validate_args=None):
        if concentration.dim() < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        batch_shape, event_shape = concentration.shape[:-1], concentration.shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Dirichlet, _instance)
        batch_shape = ember.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        super(Dirichlet, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        concentration = self.concentration.expand(shape)
        return _sample_dirichlet(concentration)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        c = self.concentration
        return (ember.xlogy(c - 1.0, value).sum(-1) + ember.lgamma(c.sum(-1))
                - ember.lgamma(c).sum(-1))

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, True)

    @property
    def mode(self):
        concentrationm1 = (self.concentration - 1).clamp(min=0.0)
        mode = concentrationm1 / concentrationm1.sum(-1, True)
        # where every c_i < 1 the density peaks at a vertex: the largest c_i
        mask = (self.concentration < 1).all(dim=-1, keepdim=True)
        vertex = ember.nn.functional.one_hot(self.concentration.argmax(-1),
                                             concentrationm1.shape[-1]).to(mode.dtype)
        return ember.where(mask, vertex, mode)

    @property
    def variance(self):
        con0 = self.concentration.sum(-1, True)
        return (self.concentration * (con0 - self.concentration)
                / (con0.pow(2) * (con0 + 1)))

    def entropy(self):
        k = self.concentration.size(-1)
        a0 = self.concentration.sum(-1)
        c = self.concentration
        return (ember.lgamma(c).sum(-1) - ember.lgamma(a0) - (k - a0) * ember.digamma(a0)
                - ((c - 1.0) * ember.digamma(c)).sum(-1))

    @property
    def _natural_params(self):
        return (self.concentration,)

    def _log_normalizer(self, x):
        return x.lgamma().sum(-1) - ember.lgamma(x.sum(-1))
