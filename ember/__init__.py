"""ember: PyTorch's API rebuilt from first principles on NumPy.

``import ember as torch`` and ordinary PyTorch code runs unchanged.
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._dtype import (dtype, bool_ as bool, uint8, int8, int16, int32, int64, float16,
                     bfloat16, float32, float64, half, float, double, short, int, long,
                     get_default_dtype, set_default_dtype, promote_types, result_type, can_cast)
from ._backend import device
from ._tensor import Tensor, Size, bind as _bind
from .autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                                 is_grad_enabled, is_inference_mode_enabled)
from . import autograd
from .autograd.anomaly_mode import is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .random import (Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state,
                     default_generator)
from ._creation import (tensor, as_tensor, asarray, from_numpy, zeros, ones, empty, full,
                        zeros_like, ones_like, empty_like, full_like, arange, linspace, logspace,
                        eye, rand, randn, randint, randperm, normal, bernoulli, multinomial,
                        poisson, rand_like, randn_like, randint_like)
from ._printing import set_printoptions
from .ops import _inplace, convert, elementwise, index, linalg as _linalg_ops, movement, reduce
from . import _creation

for _family in (elementwise, reduce, movement, index, _linalg_ops, convert, _inplace, _creation):
    _bind(_family.METHODS)

from .ops.elementwise import *  # noqa: E402,F401,F403
from .ops.reduce import *  # noqa: E402,F401,F403
from .ops.movement import *  # noqa: E402,F401,F403
from .ops.linalg import *  # noqa: E402,F401,F403
from .ops.index import *  # noqa: E402,F401,F403
from .ops.convert import clone  # noqa: E402,F401

from . import linalg  # noqa: E402,F401
from . import nn  # noqa: E402,F401
from .ops import activation as _activation  # noqa: E402

_bind(_activation.METHODS)
from .ops.activation import (softmax, log_softmax, selu, selu_, celu, celu_, prelu,  # noqa: E402,F401
                             rrelu, rrelu_, hardshrink, threshold, threshold_)
from . import optim  # noqa: E402,F401
from .ops import conv as _conv, pooling as _pooling, padding as _padding  # noqa: E402
from .ops import resample as _resample, rnn as _rnn, attention as _attention  # noqa: E402

for _family in (_conv, _pooling, _padding, _resample, _rnn, _attention):
    _bind(_family.METHODS)
from .ops.resample import (pixel_shuffle, pixel_unshuffle, channel_shuffle,  # noqa: E402,F401
                           native_channel_shuffle)
from . import serialization, utils  # noqa: E402,F401
from .serialization import *  # noqa: E402,F401,F403

# Devices without a GPU backend, runtime settings and loss scaling (issue 13)
from . import cuda, accelerator, mps, backends, amp  # noqa: E402,F401
from ._runtime import *  # noqa: E402,F401,F403

# The long tail of top-level names (issue 14): dtype limits, predicates and constants, the
# legacy tensor types, torch.testing, torch.hub. Tensor.is_nonzero is bound here.
from ._typeinfo import finfo, iinfo  # noqa: E402,F401
from ._predicates import *  # noqa: E402,F401,F403
from ._tensor_types import *  # noqa: E402,F401,F403
from . import _predicates, testing, hub  # noqa: E402,F401

for _name, _fn in _predicates.METHODS.items():
    setattr(Tensor, _name, _fn)
