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
from .constraint_registry import biject_to, transform_to
from .continuous_bernoulli import ContinuousBernoulli
from .dirichlet import Dirichlet
from .distribution import Distribution
from .exp_family import ExponentialFamily
from .exponential import Exponential
from .fishersnedecor import FisherSnedecor
from .gamma import Gamma
from .generalized_pareto import GeneralizedPareto
from .geometric import Geometric
from .gumbel import Gumbel
from .half_cauchy import HalfCauchy
from .half_normal import HalfNormal
from .independent import Independent
from .inverse_gamma import InverseGamma
from .kumaraswamy import Kumaraswamy
from .kl import kl_divergence, register_kl
from .laplace import Laplace
from .log_normal import LogNormal
from .logistic_normal import LogisticNormal
from .lowrank_multivariate_normal import LowRankMultivariateNormal
from .mixture_same_family import MixtureSameFamily
from .multinomial import Multinomial
from .multivariate_normal import MultivariateNormal
from .negative_binomial import NegativeBinomial
from .normal import Normal
from .one_hot_categorical import OneHotCategorical, OneHotCategoricalStraightThrough
from .pareto import Pareto
from .poisson import Poisson
from .relaxed_bernoulli import LogitRelaxedBernoulli, RelaxedBernoulli
from .relaxed_categorical import ExpRelaxedCategorical, RelaxedOneHotCategorical
from .studentT import StudentT
from .transformed_distribution import TransformedDistribution
from .transforms import *  # noqa: F401,F403
from .uniform import Uniform
from .von_mises import VonMises
from .weibull import Weibull

__all__ = ["Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Chi2", "ContinuousBernoulli",
           "Dirichlet", "Distribution", "ExpRelaxedCategorical", "Exponential", "ExponentialFamily",
           "FisherSnedecor", "Gamma", "GeneralizedPareto", "Geometric", "Gumbel", "HalfCauchy",
           "HalfNormal", "Independent", "InverseGamma", "Kumaraswamy", "Laplace", "LogNormal",
           "LogisticNormal", "LogitRelaxedBernoulli", "LowRankMultivariateNormal",
           "MixtureSameFamily", "Multinomial", "MultivariateNormal", "NegativeBinomial", "Normal",
           "OneHotCategorical", "OneHotCategoricalStraightThrough", "Pareto", "Poisson",
           "RelaxedBernoulli", "RelaxedOneHotCategorical", "StudentT", "TransformedDistribution",
           "Uniform", "VonMises", "Weibull", "biject_to", "constraints", "kl_divergence",
           "register_kl", "transform_to", "transforms"]
__all__.extend(transforms.__all__)
