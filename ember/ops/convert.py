"""Copies, casts and moves: ``clone``, ``to`` (dtype, device, memory format), ``cpu``/``cuda``,
``contiguous``, pinning."""
from __future__ import annotations

import builtins
import warnings

from ..autograd.function import Function, _ARRAY_TYPES
from .._tensor import Tensor, _make, _type_name
from .. import _dtype, _backend
from .._creation import _rebuild_tensor
from .._runtime import (memory_format, preserve_format, contiguous_format, check_memory_format, memory_order,
                        is_contiguous_as, copy_as)


class Clone(Function):
    raw = True
    backward_name = "CloneBackward0"

    @staticmethod
    def forward(ctx, a, fmt=None):
        # preserve_format (None) keeps a dense input's strides, as PyTorch's clone
        return a.copy(order="K") if fmt is None else copy_as(a, fmt)

    @staticmethod
    def backward(ctx, g):
        return g, None


def clone(input: Tensor, *, memory_format=None) -> Tensor:
    """A copy with its own storage that stays in the graph (in ``memory_format``'s layout)."""
    check_memory_format(memory_format, "clone")
    if memory_format is preserve_format:
        memory_format = None
    return Clone.apply(input, memory_format)


class ToCopy(Function):
    """Cast to another dtype, memory format and/or device; gradients go back to the input's
    dtype and device."""

    raw = True
    backward_name = "ToCopyBackward0"

    @staticmethod
    def forward(ctx, a, dt, dev, fmt):
        ctx.in_dtype = a.dtype
        ctx.in_device = _backend.device_of(a)
        if dev is None:
            return copy_as(a, fmt, dt)
        # the move copies: cast/lay out without a copy of our own when nothing else changes
        out = a if (dt is None or dt == a.dtype) and fmt in (None, preserve_format) \
            else copy_as(a, fmt, dt)
        return _backend.to_device(out, dev)

    @staticmethod
    def backward(ctx, g):
        if g._data.dtype.kind == "c" and ctx.in_dtype.kind != "c":
            g = g.real  # a real input cast to complex gets the real part of the gradient
        return (g.to(dtype=_dtype.from_np(ctx.in_dtype), device=ctx.in_device), None, None,
                None)


_TO_SIGNATURES = (
    " * (torch.device device = None, torch.dtype dtype = None, bool non_blocking = False, "
    "bool copy = False, *, torch.memory_format memory_format = None)\n"
    " * (torch.dtype dtype, bool non_blocking = False, bool copy = False, *, "
    "torch.memory_format memory_format = None)\n"
    " * (Tensor tensor, bool non_blocking = False, bool copy = False, *, "
    "torch.memory_format memory_format = None)\n")
_TO_KEYWORDS = ("device", "dtype", "non_blocking", "copy", "memory_format")


def _arg_type(a) -> str:
    if isinstance(a, _dtype.dtype):
        return "torch.dtype"
    if isinstance(a, _backend.device):
        return "torch.device"
    if isinstance(a, Tensor):
        return "Tensor"
    if isinstance(a, memory_format):
        return "torch.memory_format"
    return type(a).__name__


def _bad_to(args, kwargs) -> TypeError:
    got = ", ".join(_arg_type(a) for a in args)
    if kwargs:
        got += (", " if got else "") + "".join(f"{k}={_arg_type(v)}, " for k, v in kwargs.items())
    return TypeError(f"to() received an invalid combination of arguments - got ({got}), but "
                     f"expected one of:\n{_TO_SIGNATURES}")


def _parse_to(args, kwargs):
    """``Tensor.to``'s three overloads (device/dtype, dtype, other tensor), as PyTorch parses
    them: returns (dtype, device, non_blocking, copy, memory_format)."""
    if len(args) > 4:
        raise TypeError(f"to() takes from 0 to 4 positional arguments but {len(args)} were "
                        "given")
    for k in kwargs:
        if k not in _TO_KEYWORDS:
            raise _bad_to(args, kwargs)
    if args and isinstance(args[0], type) and args[0] in _dtype._PY_TYPES:  # .to(float)
        args = (_dtype._PY_TYPES[args[0]],) + tuple(args[1:])
    if isinstance(kwargs.get("dtype"), type) and kwargs["dtype"] in _dtype._PY_TYPES:
        kwargs = dict(kwargs, dtype=_dtype._PY_TYPES[kwargs["dtype"]])
    first = args[0] if args else None
    if isinstance(first, Tensor):
        names, (dt, dev) = ("tensor", "non_blocking", "copy"), (first.dtype, first.device)
    elif isinstance(first, _dtype.dtype):
        names, dt, dev = ("dtype", "non_blocking", "copy"), first, None
    else:
        names, dt, dev = ("device", "dtype", "non_blocking", "copy"), None, None
    if len(args) > len(names):
        raise _bad_to(args, kwargs)
    vals = dict(zip(names, args))
    for k, v in kwargs.items():
        if k in vals or (k not in names and k != "memory_format") or \
                (k in ("device", "dtype") and "tensor" in names):
            raise _bad_to(args, kwargs)
        vals[k] = v
    if "device" in names:
        dt = vals.get("dtype")
        dev = vals.get("device")
    elif "dtype" in kwargs:
        raise _bad_to(args, kwargs)
    non_blocking, copy = vals.get("non_blocking", False), vals.get("copy", False)
    fmt = vals.get("memory_format")
    if (dt is not None and not isinstance(dt, _dtype.dtype)) or \
            not isinstance(non_blocking, bool) or not isinstance(copy, bool) or \
            (fmt is not None and not isinstance(fmt, memory_format)):
        raise _bad_to(args, kwargs)
    if dev is not None:
        if isinstance(dev, (float, Tensor)) or isinstance(dev, bool):
            raise _bad_to(args, kwargs)
        dev = _backend.device(dev) if not isinstance(dev, _backend.device) else dev
    return dt, dev, non_blocking, copy, fmt


def _needs_layout(t: Tensor, fmt) -> bool:
    """Whether ``t`` must be copied to be in memory format ``fmt`` (None/preserve: never)."""
    if fmt is None or fmt is preserve_format:
        return False
    memory_order(fmt, t._data.ndim)  # PyTorch's rank check
    return not is_contiguous_as(t._data.shape, t.stride(), fmt)


def _move(self: Tensor, dt, dev, copy: bool, fmt) -> Tensor:
    """``self`` in dtype ``dt``, on ``dev`` and in ``fmt`` (each None: unchanged)."""
    same_dt = dt is None or dt.np == self._data.dtype
    if dev is None:
        same_dev = True
    else:
        here = _ARRAY_TYPES[type(self._data)][1]
        same_dev = dev is here or (dev.type == here.type and dev.index in (None, here.index))
    if same_dt and same_dev and not copy and (fmt is None or not _needs_layout(self, fmt)):
        return self
    if not same_dev:
        _backend.xp_for(dev)  # PyTorch's error when no backend serves that device
        if dev.index not in (None, 0):
            raise RuntimeError(f"Device index {dev.index} is out of range: ember's '{dev.type}'"
                               " backend has one device (index 0)")
    return ToCopy.apply(self, None if same_dt else dt.np, None if same_dev else dev, fmt)


_STR_DEVICES = {}  # device strings seen by ``to``, parsed once (devices are immutable)


def to(self: Tensor, *args, **kwargs) -> Tensor:
    """Cast to a dtype, move to a device and/or lay out in a memory format; ``self`` when
    nothing changes and ``copy`` is False (``Tensor.to``, all three overloads)."""
    if len(args) == 1 and not kwargs:  # the common calls: to(dtype), to(device), to('cpu')
        a = args[0]
        ta = type(a)
        if ta is _dtype.dtype:
            return _move(self, a, None, False, None)
        if ta is str:
            dev = _STR_DEVICES.get(a)
            if dev is None:
                dev = _STR_DEVICES[a] = _backend.device(a)
            return _move(self, None, dev, False, None)
        if ta is _backend.device:
            return _move(self, None, a, False, None)
    dt, dev, _, copy, fmt = _parse_to(args, kwargs)
    return _move(self, dt, dev, copy, fmt)


def cpu(self: Tensor, memory_format=preserve_format) -> Tensor:
    """A copy in host memory, or ``self`` when already there."""
    check_memory_format(memory_format, "cpu")
    return _move(self, None, _backend.CPU, False, memory_format)


def cuda(self: Tensor, device=None, non_blocking: bool = False,
         memory_format=preserve_format) -> Tensor:
    """``self.to('cuda')``: PyTorch's AssertionError while ember has no GPU backend."""
    check_memory_format(memory_format, "cuda")
    dev = _backend.device("cuda" if device is None else device)  # an int: the accelerator's
    if dev.type != "cuda":
        raise RuntimeError(f"Invalid device, must be cuda device")
    return _move(self, None, dev, False, memory_format)


_NO_PINNING = ("Cannot access accelerator device when none is available. (ember has no GPU "
               "backend, so it has no pinned host memory)")


def _pin_device_warning(fn: str, device) -> None:
    if device is not None:
        warnings.warn(f"The argument 'device' of Tensor.{fn}() is deprecated. Please do not pass "
                      "this argument.", DeprecationWarning, stacklevel=3)


def pin_memory(self: Tensor, device=None) -> Tensor:
    """Page-locked copy for fast transfers to an accelerator; without one, PyTorch's error."""
    _pin_device_warning("pin_memory", device)
    if self.device.type != "cpu":
        raise RuntimeError(f"cannot pin '{_type_name(self)}' only dense CPU tensors can be "
                           "pinned")
    raise RuntimeError(_NO_PINNING)


def is_pinned(self: Tensor, device=None) -> bool:
    """False: ember never allocates pinned memory (PyTorch's answer without an accelerator)."""
    _pin_device_warning("is_pinned", device)
    return False


def _caster(dt):
    def cast(self, memory_format=preserve_format):
        check_memory_format(memory_format, dt.name)
        return _move(self, dt, None, False, memory_format)
    cast.__doc__ = f"``self.to({dt})``."
    return cast


def type_as(self: Tensor, other: Tensor) -> Tensor:
    """``self.to(other.dtype)``."""
    return _move(self, other.dtype, None, False, None)


def contiguous(self: Tensor, memory_format=None) -> Tensor:
    """``self`` if already dense in ``memory_format`` (row-major by default), else a copy in
    that layout that stays in the graph."""
    check_memory_format(memory_format, "contiguous")
    if memory_format is None or memory_format is contiguous_format:
        if self._data.flags.c_contiguous:
            return self
        return Clone.apply(self, contiguous_format)
    if memory_format is preserve_format:
        if self._data.flags.c_contiguous:
            return self
        raise RuntimeError("preserve memory format is unsupported by the contiguous operator")
    if not _needs_layout(self, memory_format):
        return self
    return Clone.apply(self, memory_format)


def is_contiguous(self: Tensor, memory_format=None) -> bool:
    """Whether ``self`` is dense in ``memory_format``'s layout (row-major by default)."""
    check_memory_format(memory_format, "is_contiguous")
    if memory_format is None or memory_format is contiguous_format or \
            memory_format is preserve_format:  # (meta: its contiguous strides, as stride())
        return self._data.flags.c_contiguous or _backend.is_meta(self._data)
    return is_contiguous_as(self._data.shape, self.stride(), memory_format)


def _type(self, dtype=None, non_blocking=False):
    if dtype is None:
        return _type_name(self)
    if isinstance(dtype, str):
        names = {"torch." + d.legacy_name: d for d in _dtype.ALL}
        if dtype not in names:
            raise ValueError(f"invalid type: '{dtype}'")
        dtype = names[dtype]
    elif isinstance(dtype, type):  # a legacy type: t.type(ember.LongTensor)
        dtype = dtype.dtype
    return to(self, dtype)


# ---- conversion to Python values and NumPy ---------------------------------------------------
def item(self):
    """The value of a one-element tensor as a Python number."""
    if self._data.size != 1:
        raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                           "to Scalar")
    return self._data.reshape(()).item() if self.dtype.name != "bfloat16" else builtins.float(
        self._data.reshape(()))


def tolist(self):
    if self.dtype.name == "bfloat16":
        return self._data.astype("float32").tolist()
    return self._data.tolist()


def numpy(self, *, force: bool = False):
    """The NumPy array sharing this tensor's memory (no copy on cpu)."""
    if self._requires_grad and not force:
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                           "tensor.detach().numpy() instead.")
    if self.device.type != "cpu":
        if not force:
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. "
                            "Use Tensor.cpu() to copy the tensor to host memory first.")
        return self._data.get()
    return self._data


def _array(self, dtype=None, copy=None):
    a = numpy(self)
    return a if dtype is None else a.astype(dtype)


def _len(self):
    if self._data.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return self._data.shape[0]


def _iter(self):
    if self._data.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return iter(self.unbind(0))


def _bool(self):
    if self._data.size != 1:
        raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous")
    d = self._data.reshape(())
    # (another device's array through item: a meta tensor's raises, it has no data)
    return builtins.bool(d if d.__class__ is _backend.np.ndarray else d.item())


def _scalar(self):
    if self._data.size != 1:
        raise ValueError("only one element tensors can be converted to Python scalars")
    return item(self)


def _float(self):
    return builtins.float(_scalar(self))


def _int(self):
    return builtins.int(_scalar(self))


def _index(self):
    if self.dtype.is_floating_point or self._data.size != 1:
        raise TypeError("only integer tensors of a single element can be converted to an "
                        "index")
    d = self._data.reshape(())
    return builtins.int(d if d.__class__ is _backend.np.ndarray else d.item())


def _complex(self):
    return complex(_scalar(self))


def _format(self, spec):
    if self._data.ndim == 0:
        return format(item(self), spec)
    return object.__format__(self, spec)


def _deepcopy(self, memo):
    """``copy.deepcopy``: leaves only; the data, ``requires_grad``, ``.grad`` and attributes."""
    if self._grad_fn is not None:
        raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                           "support the deepcopy protocol at the moment.")
    new = _make(self._data.copy(), self._requires_grad, cls=type(self))
    new.__dict__.update({k: v for k, v in self.__dict__.items()
                         if k not in ("_accum", "_base", "_view_chain", "_version_ctr",
                                      "_hooks", "_post_acc_hooks", "_views", "_grad",
                                      "_retain_hook", "_retains_grad", "_view_mode")})
    if self.grad is not None:
        new.grad = _deepcopy(self.grad, memo)
    memo[id(self)] = new
    return new


def _reduce_ex(self, protocol):
    """Pickling: the array and ``requires_grad``."""
    return (_rebuild_tensor, (self._data, self._requires_grad))


def get_device(self) -> int:
    """The device index; -1 on the cpu, as PyTorch's ``Tensor.get_device``."""
    d = self.device
    return -1 if d.type == "cpu" or d.type == "meta" else (d.index or 0)


# the other device and tensor kinds PyTorch's Tensor asks about; none exists in ember
_NO_SUCH_KIND = property(lambda self: False)


METHODS = {
    "item": item, "tolist": tolist, "numpy": numpy, "__array__": _array, "__len__": _len,
    "__iter__": _iter, "__bool__": _bool, "__float__": _float, "__int__": _int,
    "__index__": _index, "__complex__": _complex, "__format__": _format,
    "__deepcopy__": _deepcopy, "__reduce_ex__": _reduce_ex, "get_device": get_device,
    **{f"is_{kind}": _NO_SUCH_KIND for kind in ("xpu", "mps", "quantized", "mkldnn",
                                                "nested", "vulkan", "ipu", "maia", "mtia")},
    "is_meta": property(lambda self: _backend.is_meta(self._data)),
    "clone": clone, "to": to, "type_as": type_as, "contiguous": contiguous, "type": _type,
    "is_contiguous": is_contiguous, "cpu": cpu, "cuda": cuda, "pin_memory": pin_memory,
    "is_pinned": is_pinned,
    "float": _caster(_dtype.float32), "double": _caster(_dtype.float64),
    "half": _caster(_dtype.float16), "bfloat16": _caster(_dtype.bfloat16),
    "long": _caster(_dtype.int64), "int": _caster(_dtype.int32),
    "short": _caster(_dtype.int16), "char": _caster(_dtype.int8), "byte": _caster(_dtype.uint8),
    "bool": _caster(_dtype.bool_),
}
