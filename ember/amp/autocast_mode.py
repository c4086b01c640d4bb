"""``ember.autocast``: PyTorch's autocast (``torch.amp.autocast_mode``) as a mode on the core's
interception point.

NOTE [ Autocast ]
What it captures: every built-in op run while autocast is enabled for some device type.
Where it hooks in: one ``_AutocastMode`` (a ``TorchFunctionMode``, NOTE [ Modes ] in
``autograd/modes.py``) is on this thread's mode stack exactly while autocast is enabled for
some device type; entering and leaving regions (nested, ``enabled=False`` inside) only change
the per-thread state below, then push or pop that one mode.  No op has an autocast branch.
The life of one call: ``F.linear(x, w, b)`` reaches ``_Linear.apply``, which hands it to the
mode; the mode looks the op's ``Function`` class up in the policy table (``_policy``) and
(1) for a lower-precision op casts its floating inputs to the region's dtype, (2) for a
float32 op casts them to float32, (3) for a promote op casts them to the widest floating
dtype among them; then it runs the op.  The casts are ordinary ``Tensor.to`` calls, above
autograd, so they are recorded (``ToCopyBackward0``) and gradients reach float32 parameters
in float32.  A float32 leaf that requires grad is cast once per region (the weight cache,
dropped when the outermost region exits), as PyTorch's ``cached_cast``.  Internal result-dtype
arguments of an op (a loss's ``dt``, ``cat``'s promoted dtype) are rewritten to the dtype the
op now runs in.  Function modes do not see backward ops (their dtypes follow the forward's,
as in PyTorch), nor ops composed in Python from other ops (each of those is seen instead).

The lists are PyTorch 2.13's CPU lists (its "Autocast Op Reference", checked op by op
against ``torch.autocast("cpu")``): only ops that ember runs as one ``Function`` can be
listed; composite losses that PyTorch lists (``kl_div``, ``poisson_nll_loss``,
``margin_ranking_loss``, ...) run in ember as elementwise ops and stay in the input dtype.
ember has no GPU backend, so ``autocast("cuda")`` warns and disables itself, as PyTorch
does on a CPU-only build; PyTorch's CUDA lists are kept for tensors on a cuda device (the
policy is chosen by the device type of an op's first tensor), which ember does not have yet.
"""
from __future__ import annotations

import collections.abc
import functools
import threading
import warnings
import weakref

import numpy as np

from .. import _dtype
from .._tensor import Tensor
from ..autograd.modes import TorchFunctionMode, push, pop, current_modes

__all__ = ["autocast", "autocast_decorator", "is_autocast_available", "custom_fwd",
           "custom_bwd", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype",
           "set_autocast_dtype", "is_autocast_cache_enabled", "set_autocast_cache_enabled",
           "clear_autocast_cache", "autocast_increment_nesting", "autocast_decrement_nesting",
           "get_autocast_gpu_dtype", "get_autocast_cpu_dtype", "set_autocast_gpu_dtype",
           "set_autocast_cpu_dtype", "is_autocast_cpu_enabled", "set_autocast_cpu_enabled"]

# PyTorch's default autocast dtype per device type (``torch.get_autocast_dtype``)
_DEFAULT_DTYPE = {"cpu": "bfloat16", "cuda": "float16", "xpu": "float16", "mps": "float16",
                  "hpu": "bfloat16", "xla": "bfloat16", "ipu": "float16", "mtia": "float16",
                  "maia": "bfloat16", "privateuseone": "float16"}


class _AutocastState(threading.local):
    """This thread's autocast switches (PyTorch keeps them thread-local too)."""

    def __init__(self):
        self.enabled = {}   # device type -> bool
        self.dtype = {}     # device type -> ember dtype, once set
        self.cache_enabled = True
        self.nesting = 0
        self.cache = {}     # id(leaf) -> (weakref to the leaf, its cast)
        self.mode = None    # the _AutocastMode on the stack, if any


_state = _AutocastState()


def _device_type(device_type: str) -> str:
    """The device type named by ``device_type`` (``"cuda:0"`` -> ``"cuda"``); PyTorch's
    RuntimeError for an unknown one."""
    from .._backend import device
    return device(device_type).type


def _check_autocast_type(dt: str) -> str:
    if dt not in _DEFAULT_DTYPE:
        raise RuntimeError(f"User specified an unsupported autocast device_type '{dt}'")
    return dt


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast is available for ``device_type`` (``torch.amp.is_autocast_available``)."""
    return _device_type(device_type) in _DEFAULT_DTYPE


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for ``device_type`` (``"cuda"`` when omitted, as PyTorch)."""
    dt = "cuda" if device_type is None else _check_autocast_type(_device_type(device_type))
    return _state.enabled.get(dt, False)


def set_autocast_enabled(device_type, enabled=None) -> None:
    """Turn autocast on or off for ``device_type`` (``set_autocast_enabled(True)``: cuda)."""
    if enabled is None:  # PyTorch's one-argument form is the cuda switch
        device_type, enabled = "cuda", device_type
    dt = _check_autocast_type(_device_type(device_type))
    _state.enabled[dt] = bool(enabled)
    _sync_mode()


def get_autocast_dtype(device_type: str):
    """The lower-precision dtype of autocast regions on ``device_type``."""
    return _lower_dtype(_check_autocast_type(_device_type(device_type)))


def _lower_dtype(dt: str):
    """``get_autocast_dtype`` of a checked device type (the per-op path skips the parsing)."""
    got = _state.dtype.get(dt)
    return got if got is not None else getattr(_dtype, _DEFAULT_DTYPE[dt])


def set_autocast_dtype(device_type: str, dtype) -> None:
    """Set the lower-precision dtype of autocast regions on ``device_type``."""
    _state.dtype[_check_autocast_type(_device_type(device_type))] = dtype


def is_autocast_cache_enabled() -> bool:
    return _state.cache_enabled


def set_autocast_cache_enabled(enabled: bool) -> None:
    _state.cache_enabled = bool(enabled)


def clear_autocast_cache() -> None:
    """Drop the weight-cast cache (PyTorch does this when the outermost region exits)."""
    _state.cache.clear()


def autocast_increment_nesting() -> int:
    _state.nesting += 1
    return _state.nesting


def autocast_decrement_nesting() -> int:
    _state.nesting -= 1
    return _state.nesting


def _deprecated(old: str, new: str):
    warnings.warn(f"torch.{old} is deprecated. Please use torch.{new} instead.",
                  DeprecationWarning, stacklevel=3)


def get_autocast_gpu_dtype():
    _deprecated("get_autocast_gpu_dtype()", "get_autocast_dtype('cuda')")
    return get_autocast_dtype("cuda")


def get_autocast_cpu_dtype():
    _deprecated("get_autocast_cpu_dtype()", "get_autocast_dtype('cpu')")
    return get_autocast_dtype("cpu")


def set_autocast_gpu_dtype(dtype) -> None:
    _deprecated("set_autocast_gpu_dtype(dtype)", "set_autocast_dtype('cuda', dtype)")
    set_autocast_dtype("cuda", dtype)


def set_autocast_cpu_dtype(dtype) -> None:
    _deprecated("set_autocast_cpu_dtype(dtype)", "set_autocast_dtype('cpu', dtype)")
    set_autocast_dtype("cpu", dtype)


def is_autocast_cpu_enabled() -> bool:
    _deprecated("is_autocast_cpu_enabled()", "is_autocast_enabled('cpu')")
    return is_autocast_enabled("cpu")


def set_autocast_cpu_enabled(enabled: bool) -> None:
    _deprecated("set_autocast_cpu_enabled(enabled)", "set_autocast_enabled('cpu', enabled)")
    set_autocast_enabled("cpu", enabled)


def _sync_mode() -> None:
    """Keep the one autocast mode on the stack exactly while some device type is enabled."""
    on = any(_state.enabled.values())
    mode = _state.mode
    if on and mode is None:
        _state.mode = _AutocastMode()
        push(_state.mode)
    elif not on and mode is not None:
        _state.mode = None
        if mode in current_modes():
            pop(mode)


def autocast_decorator(autocast_instance, func):
    @functools.wraps(func)
    def decorate_autocast(*args, **kwargs):
        with autocast_instance:
            return func(*args, **kwargs)
    return decorate_autocast


class autocast:
    """A region where ops run in an op-specific dtype (``torch.autocast``): context manager or
    decorator; ``dtype`` defaults to ``get_autocast_dtype(device_type)`` (bfloat16 on cpu)."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self.device = device_type
        if not is_autocast_available(self.device):
            raise RuntimeError(
                f"User specified an unsupported autocast device_type '{self.device}'")
        self._cache_enabled = is_autocast_cache_enabled() if cache_enabled is None \
            else cache_enabled
        supported = (_dtype.bfloat16, _dtype.float16)
        if enabled:
            if self.device == "cuda":
                # ember has no GPU backend: PyTorch's behaviour on a CPU-only build
                warnings.warn("CUDA is not available or torch_xla is imported. Disabling "
                              "autocast.", stacklevel=2)
                enabled = False
            elif self.fast_dtype not in supported:
                name = self.device.upper()
                warnings.warn(f"In {name} autocast, but the target dtype is not supported. "
                              f"Disabling autocast.\n{name} Autocast only supports dtypes of "
                              + ", ".join(map(str, supported)) + " currently.", stacklevel=2)
                enabled = False
        self._enabled = enabled

    def __enter__(self):
        self.prev_cache_enabled = is_autocast_cache_enabled()
        self.prev = is_autocast_enabled(self.device)
        self.prev_fastdtype = get_autocast_dtype(self.device)
        dt = _device_type(self.device)
        _state.enabled[dt] = bool(self._enabled)
        set_autocast_dtype(self.device, self.fast_dtype)
        autocast_increment_nesting()
        set_autocast_cache_enabled(self._cache_enabled)
        _sync_mode()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        # the cache lives as long as the outermost region (PyTorch's rule)
        if autocast_decrement_nesting() == 0:
            clear_autocast_cache()
        _state.enabled[_device_type(self.device)] = self.prev
        set_autocast_dtype(self.device, self.prev_fastdtype)
        set_autocast_cache_enabled(self.prev_cache_enabled)
        _sync_mode()
        return False

    def __call__(self, func):
        if not callable(func):
            raise TypeError(
                f"autocast()(func) requires a callable, but got {type(func).__name__}. "
                f"Did you mean to use autocast as a context manager? For example:\n"
                f"    with torch.autocast(device_type=...):\n"
                f"        output = model(input)")
        return autocast_decorator(self, func)


# ----------------------------------------------------------------------------------------------
# the op policy

_LOWER, _FP32, _PROMOTE = 0, 1, 2


@functools.lru_cache(maxsize=None)
def _policy(device_type: str = "cpu") -> dict:
    """``{Function class: policy}`` for ``device_type``: PyTorch 2.13's lists for cpu and for
    cuda (its "Autocast Op Reference") mapped onto ember's ops; other types cast nothing."""
    from ..ops import (linalg, layers, conv, activation, attention, rnn, loss, pooling,
                       resample, reduce, movement, index, normalization, elementwise as ew)
    if device_type not in ("cpu", "cuda"):
        return {}
    lower = [linalg.MatMul, linalg._MatmulDot, linalg._MatmulMv, linalg._VecMat, linalg._Mm,
             linalg._Bmm, linalg._MatBatch, linalg._AddProduct, linalg._Baddbmm,
             linalg._Addbmm, linalg.Einsum, conv._Conv, conv._ConvTranspose,
             activation.Prelu, attention._SDPA, rnn._FusedLayer]
    lower += [cls for cls in set(layers._LINEAR.values())]
    losses = [loss.MseLoss, loss.L1Loss, loss.SmoothL1Loss, loss.HuberLoss,
              loss.BinaryCrossEntropyWithLogits, loss.NllLoss, loss.NllLoss2d,
              loss.CrossEntropyLoss, loss.CrossEntropyLoss2d, loss.CrossEntropyLossSmoothed,
              loss.SoftMarginLoss, loss.MultilabelMarginLoss]
    if device_type == "cuda":  # ember has no GPU backend: kept for the day it has one
        lower += [linalg._Mv, linalg._Addmv, linalg._Addr]
        fp32 = losses + [activation.Softmax, activation.LogSoftmax, activation.Softplus,
                         normalization._LayerNorm, normalization._GroupNorm,
                         ew.Pow, ew.PowTensor, ew.PowOfScalar, ew.Exp, ew.Expm1, ew.Log,
                         ew.Log2, ew.Log10, ew.Log1p, ew.Rsqrt, ew.Sinh, ew.Cosh, ew.Tan,
                         ew.Asin, ew.Acos, ew.Reciprocal, ew.Erfinv, reduce.Sum,
                         reduce.SumAll, reduce.Prod, reduce.ProdAll, reduce.Cumsum,
                         reduce.Cumprod, reduce.VectorNorm]
        promote = [ew.Addcmul, ew.Addcdiv, ew.Atan2, linalg.Cross, linalg._Dot,
                   index.IndexPut, index.ScatterAdd, resample._GridSampler,
                   resample._GridSampler3D]
    else:
        fp32 = losses + [loss.BinaryCrossEntropy, loss.CtcLoss, linalg.Inv, linalg.Cholesky,
                         linalg._CholeskyOld, linalg.Eigh, linalg.Svd, linalg._SvdVals,
                         linalg.Qr, linalg.Solve, linalg.Trace,
                         pooling._AvgPool3d, pooling._MaxPool3d, pooling._MaxUnpool,
                         pooling._MaxUnpool3d, pooling._AdaptiveAvgPool3d,
                         pooling._AdaptiveMaxPool3d, pooling._AdaptiveMaxPool3dEven,
                         resample._GridSampler, resample._GridSampler3D, reduce.Prod,
                         reduce.ProdAll]
        fp32 += list(_pad_classes())
        promote = [movement.Cat, movement.Stack, index.IndexCopy]
    table = {}
    for kind, classes in ((_LOWER, lower), (_FP32, fp32), (_PROMOTE, promote)):
        for cls in classes:
            table[cls] = kind
    return table


# ops whose explicit dtype= argument (at this index of apply's args) makes them ineligible
_EXPLICIT_DTYPE = {"Prod": 3, "ProdAll": 3, "Sum": 3, "SumAll": 3, "Cumsum": 2, "Cumprod": 2}


@functools.lru_cache(maxsize=None)
def _pad_classes() -> frozenset:
    """The reflect/replicate/circular pad Functions (one named subclass per mode and rank)."""
    from ..ops.padding import _PAD_CLS
    return frozenset(_PAD_CLS.values())


def _skip(cls, args) -> bool:
    """Calls PyTorch's lists leave out although ember runs them through a listed Function."""
    name = cls.__name__
    i = _EXPLICIT_DTYPE.get(name)
    if i is not None:
        return args[i] is not None  # an explicit dtype= is never autocast
    if name == "_FusedLayer":
        return args[8] == "GRU"  # PyTorch's cpu GRU is cells that promote back to float32
    if cls in _pad_classes():  # reflection_pad1d/2d and replication_pad1d/2d/3d only
        mode, pad = args[1], args[2]
        return not (mode == "replicate" or mode == "reflect" and len(pad) <= 4)
    return False


_ELIGIBLE = ("float32", "float16", "bfloat16")  # float64 is never cast


def _eligible(a, device_type: str) -> bool:
    return isinstance(a, Tensor) and a.dtype.name in _ELIGIBLE and \
        a.device.type == device_type


def _cast(t: Tensor, target) -> Tensor:
    """``t.to(target)``, once per region for a float32 leaf that requires grad."""
    st = _state
    if (st.cache_enabled and t.dtype is _dtype.float32 and t._requires_grad and
            t._grad_fn is None and t._base is None and
            target is _lower_dtype(t.device.type)):
        hit = st.cache.get(id(t))
        if hit is not None and hit[0]() is t:
            return hit[1]
        out = t.to(target)
        st.cache[id(t)] = (weakref.ref(t), out)
        return out
    return t.to(target)


class _AutocastMode(TorchFunctionMode):
    """The one mode that applies the op policy (NOTE [ Autocast ])."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        cls = getattr(getattr(func, "_fn", None), "__self__", None)
        first = next((a for a in args if isinstance(a, Tensor)), None)
        if first is None:
            return func(*args, **kwargs)
        dev = first.device.type
        kind = _policy(dev).get(cls)
        if kind is None or not _state.enabled.get(dev, False) or _skip(cls, args):
            return func(*args, **kwargs)
        if kind == _LOWER:
            target = _lower_dtype(dev)
        elif kind == _FP32:
            target = _dtype.float32
        else:
            dts = {a.dtype for a in args if _eligible(a, dev)}
            if len(dts) < 2:
                return func(*args, **kwargs)
            target = _dtype.float32  # any two of float32, float16, bfloat16 promote to it
        new = []
        for a in args:
            if _eligible(a, dev) and a.dtype is not target:
                a = _cast(a, target)
            elif isinstance(a, np.dtype) and a.name in _ELIGIBLE:
                a = target.np  # the op's internal result dtype follows its new inputs
            new.append(a)
        return func(*new, **kwargs)


# ----------------------------------------------------------------------------------------------
# custom autograd Functions


def _cast_inputs(value, device_type: str, dtype):
    """Floating tensors (not float64) on ``device_type`` in ``value`` cast to ``dtype``."""
    if isinstance(value, Tensor):
        ok = value.is_floating_point() and value.device.type == device_type and \
            value.dtype is not _dtype.float64
        return value.to(dtype) if ok else value
    if isinstance(value, (str, bytes, np.ndarray)):
        return value
    if isinstance(value, collections.abc.Mapping):
        return {_cast_inputs(k, device_type, dtype): _cast_inputs(v, device_type, dtype)
                for k, v in value.items()}
    if isinstance(value, collections.abc.Iterable):
        it = (_cast_inputs(v, device_type, dtype) for v in value)
        return type(value)(it) if isinstance(value, (list, tuple)) else it
    return value


def custom_fwd(fwd=None, *, device_type: str, cast_inputs=None):
    """Decorate a custom Function's ``forward``: with ``cast_inputs``, inside an enabled
    region, run it on inputs cast to that dtype with autocast off (``torch.amp.custom_fwd``)."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        args[0]._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            args[0]._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        args[0]._fwd_used_autocast = False
        if is_autocast_enabled(device_type):
            with autocast(device_type=device_type, enabled=False):
                return fwd(*_cast_inputs(args, device_type, cast_inputs),
                           **_cast_inputs(kwargs, device_type, cast_inputs))
        return fwd(*args, **kwargs)

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """Decorate a custom Function's ``backward`` to run under the autocast state its
    ``forward`` saw (``torch.amp.custom_bwd``)."""
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        with autocast(device_type=device_type, enabled=args[0]._fwd_used_autocast,
                      dtype=args[0]._dtype):
            return bwd(*args, **kwargs)

    return decorate_bwd
