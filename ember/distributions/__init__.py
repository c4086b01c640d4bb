"""``ember.distributions``: PyTorch's ``torch.distributions``.

Design note.  A ``Distribution`` holds its parameters as ember tensors and computes
``log_prob``, ``entropy``, ``mean``/``variance``, ``cdf``/``icdf`` with ordinary ember ops, so
every value is differentiable w.r.t. the parameters through the normal autograd graph; no
distribution has its own backward.  Shapes follow PyTorch: a sample has shape
``sample_shape + batch_shape + event_shape``.  Sampling draws from ember's generator
(``ember.manual_seed`` makes it repeat; the streams are not PyTorch's).  ``rsample`` is the
reparameterised sample: ``loc + scale * eps`` for location-scale families, and for Gamma
(hence Beta, Dirichlet, Chi2, StudentT) ``ember._standard_gamma`` (ops/special.py), whose
backward is the implicit-reparameterisation derivative of a standard-gamma sample with respect
to its shape.  ``validate_args`` (on by default, as ``__debug__``) checks parameters against
``arg_constraints`` at construction and values against ``support`` in ``log_prob``, raising
PyTorch's ``ValueError`` messages.  ``kl_divergence`` dispatches on the pair of types through
the ``register_kl`` registry (kl.py).  Transforms (transforms.py) are invertible maps with
log-Jacobians; ``TransformedDistribution`` pushes a base distribution through them.
"""
from . import constraints, transforms  # noqa: F401
from .bernoulli import Bernoulli
from .beta import Beta
from .binomial import Binomial
from .categorical import Categorical
from .cauchy import Cauchy
from .chi2 import Chi2
from .dirichlet import Dirichlet
from .distribution import Distribution
from .exp_family import ExponentialFamily
from .exponential import Exponential
from .gamma import Gamma
from .geometric import Geometric
from .gumbel import Gumbel
from .independent import Independent
from .kl import kl_divergence, register_kl
from .laplace import Laplace
from .log_normal import LogNormal
from .mixture_same_family import MixtureSameFamily
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .one_hot_categorical import OneHotCategorical, OneHotCategoricalStraightThrough
from .poisson import Poisson
from .relaxed_bernoulli import LogitRelaxedBernoulli, RelaxedBernoulli
from .relaxed_categorical import ExpRelaxedCategorical, RelaxedOneHotCategorical
from .studentT import StudentT
from .transformed_distribution import TransformedDistribution
from .transforms import *  # noqa: F401,F403
from .uniform import Uniform

__all__ = ["Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Chi2", "Dirichlet",
           "Distribution", "ExponentialFamily", "Exponential", "ExpRelaxedCategorical",
           "Gamma", "Geometric", "Gumbel", "Independent", "Laplace", "LogNormal",
           "LogitRelaxedBernoulli", "MixtureSameFamily", "MultivariateNormal", "Normal",
           "OneHotCategorical", "OneHotCategoricalStraightThrough", "Poisson",
           "RelaxedBernoulli", "RelaxedOneHotCategorical", "StudentT",
           "TransformedDistribution", "Uniform", "constraints", "kl_divergence",
           "register_kl", "transforms"]
__all__.extend(transforms.__all__)
