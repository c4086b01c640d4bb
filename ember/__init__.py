"""ember: PyTorch's API rebuilt from first principles on NumPy.

``import ember as torch`` and ordinary PyTorch code runs unchanged.
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._dtype import (dtype, bool_ as bool, uint8, int8, int16, int32, int64, float16,
                     bfloat16, float32, float64, half, float, double, short, int, long,
                     complex64, complex128, cfloat, cdouble, qint8, quint8, qint32, quint4x2,
                     get_default_dtype,
                     set_default_dtype, promote_types, result_type, can_cast)
from ._backend import device, set_default_device, get_default_device
from ._tensor import Tensor, Size
from .autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                                 is_grad_enabled, is_inference_mode_enabled)
from . import autograd
from .autograd.anomaly_mode import is_anomaly_enabled, set_detect_anomaly  # noqa: F401
from .random import (Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state,
                     default_generator)
from ._creation import (tensor, as_tensor, asarray, from_numpy, zeros, ones, empty, full,
                        zeros_like, ones_like, empty_like, full_like, arange, linspace, logspace,
                        eye, rand, randn, randint, randperm, normal, bernoulli, multinomial,
                        poisson, rand_like, randn_like, randint_like, scalar_tensor)
from ._printing import set_printoptions
from . import _creation
from .ops import (activation as _activation, convert as _convert, elementwise as _elementwise,
                  fill as _fill, index as _index, linalg as _linalg_ops, movement as _movement,
                  reduce as _reduce, special as _special_ops, complex as _complex_ops)
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.movement import *  # noqa: F401,F403
from .ops.linalg import *  # noqa: F401,F403
from .ops.index import *  # noqa: F401,F403
from .ops.convert import clone  # noqa: F401
from .ops.complex import *  # noqa: F401,F403
from .ops.special import *  # noqa: F401,F403
from .ops.foreach import *  # noqa: F401,F403  (torch._foreach_*)
from .ops.activation import (softmax, log_softmax, selu, selu_, celu, celu_, prelu,  # noqa: F401
                             rrelu, rrelu_, hardshrink, threshold, threshold_)
from .ops.resample import (pixel_shuffle, pixel_unshuffle, channel_shuffle,  # noqa: F401
                           native_channel_shuffle)

# runtime settings (issue 13); devices and mixed precision load on first use (NOTE below)
from ._runtime import *  # noqa: E402,F401,F403
from . import sparse  # noqa: E402,F401  (its METHODS are Tensor's, bound below)

# The long tail of top-level names (issue 14): dtype limits, predicates and constants, the
# legacy tensor types, windows and stft, sparse layouts and constructors.
from ._typeinfo import finfo, iinfo  # noqa: E402,F401
from ._predicates import *  # noqa: E402,F401,F403
from ._predicates import _assert  # noqa: E402,F401
from ._tensor_types import *  # noqa: E402,F401,F403
from .ops.spectral import *  # noqa: E402,F401,F403
from ._layout import (layout, strided, sparse_coo, sparse_csr, sparse_csc,  # noqa: E402,F401
                      sparse_bsr, sparse_bsc, jagged)
from .ops.sparse import sparse_coo_tensor, sparse_csr_tensor, spmm  # noqa: E402,F401
from . import _predicates, _tensor_legacy, _shared  # noqa: E402
from .ops import spectral as _spectral  # noqa: E402
from .ops import quantized_methods as _quantized_methods  # noqa: E402

# Tensor's methods and operators: each family's METHODS table, bound in this one loop (later
# families win a shared name).  ``Tensor.sum`` is ops/reduce.py's ``sum``; ``_tensor.py``
# holds only what is a tensor's own.
_METHOD_FAMILIES = (_elementwise, _reduce, _movement, _index, _linalg_ops, _convert, _fill,
                    _creation, _activation, _special_ops, _complex_ops, _predicates,
                    _tensor_legacy, _spectral, sparse, _shared, _quantized_methods)
for _family in _METHOD_FAMILIES:
    for _name, _fn in _family.METHODS.items():
        setattr(Tensor, _name, _fn)

# NOTE [ Lazy namespaces ]: ``import ember`` loads only what a program needs to make tensors,
# run ops and call backward (above: the rule is within 50 ms of ``import numpy``); every other
# namespace (nn, optim, data loading, save/load, devices and mixed precision, linalg/fft/special,
# fx, jit ...) loads on first attribute access (``__getattr__`` below) or by any ``import
# ember.X`` / ``from ember.X import Y``, so ``ember.nn``, ``from ember import nn`` and pickled
# class paths give the same objects as an eager import would.  Code that finds ember's classes
# only among loaded modules (jit's op registry) loads ``_TORCH_LOADS`` first, as ``ember run``
# does.  Top-level functions that take tensors stay eager: fx's symbolic trace wraps the ones
# present when it starts.  tests/test_import_time.py lists what ``import ember`` must not load.
_LAZY = {"distributions": ("ember.distributions", None), "fx": ("ember.fx", None),
         "func": ("ember.func", None), "vmap": ("ember.func", "vmap"),
         "profiler": ("ember.profiler", None), "hub": ("ember.hub", None),
         "testing": ("ember.testing", None), "futures": ("ember.futures", None),
         "multiprocessing": ("ember.multiprocessing", None),
         "jit": ("ember.jit", None), "export": ("ember.export", None),
         "onnx": ("ember.onnx", None), "overrides": ("ember.overrides", None)}
# ember.compile (issue 17): the function, torch.compiler's namespace and the machinery
_LAZY.update({"compile": ("ember.compiler", "compile"), "compiler": ("ember.compiler", None),
              "_dynamo": ("ember._dynamo", None), "_functorch": ("ember._functorch", None),
              "_inductor": ("ember._inductor", None), "_logging": ("ember._logging", None)})

# quantization (issue 19): the namespaces and the quantized-tensor functions of ops/quantized.py
_LAZY.update({"ao": ("ember.ao", None), "quantization": ("ember.ao.quantization", None)})
_LAZY.update({n: ("ember.ops.quantized", n) for n in (
    "quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic", "dequantize",
    "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
    "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine",
    "_make_per_tensor_quantized_tensor", "_make_per_channel_quantized_tensor", "qscheme",
    "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
    "per_channel_affine_float_qparams")})

# what ``import torch`` loads and ``import ember`` defers: ``ember run`` (compat.install) loads
# them up front, so their modules answer missing names in torch's words as before
_TORCH_LOADS = ("nn", "optim", "utils", "serialization", "linalg", "special", "fft", "version",
                "cuda", "accelerator", "mps", "backends", "amp", "cpu", "_utils",
                "_weights_only_unpickler")
_LAZY.update({n: ("ember." + n, None) for n in _TORCH_LOADS})
# ``torch.save``/``torch.load`` and friends: serialization.py's __all__
_LAZY.update({n: ("ember.serialization", n) for n in (
    "save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
    "safe_globals")})
# mixed precision (issue 13)
_LAZY.update({n: ("ember.amp.autocast_mode", n) for n in (
    "autocast", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype",
    "set_autocast_dtype", "is_autocast_cache_enabled", "set_autocast_cache_enabled",
    "clear_autocast_cache", "autocast_increment_nesting", "autocast_decrement_nesting",
    "get_autocast_gpu_dtype", "get_autocast_cpu_dtype", "set_autocast_gpu_dtype",
    "set_autocast_cpu_dtype", "is_autocast_cpu_enabled", "set_autocast_cpu_enabled")})


def __getattr__(name):
    import importlib
    if name not in _LAZY:
        raise AttributeError(f"module 'ember' has no attribute '{name}'")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    value = getattr(value, attr) if attr else value
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
