"""Copies and casts: ``clone``, ``to(dtype)``, ``contiguous``."""
from __future__ import annotations

from ..autograd.function import Function
from .._tensor import Tensor, _make, _type_name
from .. import _dtype, _backend


class Clone(Function):
    raw = True
    backward_name = "CloneBackward0"

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def clone(input: Tensor, *, memory_format=None) -> Tensor:
    """A copy with its own storage that stays in the graph."""
    return Clone.apply(input)


class ToCopy(Function):
    """Cast to another dtype (and/or device); gradients are cast back."""

    raw = True
    backward_name = "ToCopyBackward0"

    @staticmethod
    def forward(ctx, a, dt, dev):
        ctx.in_dtype = a.dtype
        ctx.in_device = _backend.device_of(a)
        out = a.astype(dt) if dt is not None and a.dtype != dt else a.copy()
        if dev is not None:
            out = _backend.to_device(out, dev)
        return out

    @staticmethod
    def backward(ctx, g):
        if g._data.dtype.kind == "c" and ctx.in_dtype.kind != "c":
            g = g.real  # a real input cast to complex gets the real part of the gradient
        return g.to(dtype=_dtype.from_np(ctx.in_dtype), device=ctx.in_device), None, None


def _parse_to(args, kwargs):
    dt = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
    for a in args:
        if isinstance(a, _dtype.dtype):
            dt = a
        elif isinstance(a, Tensor):
            dt, dev = a.dtype, a.device
        elif isinstance(a, (str, _backend.device)):
            dev = _backend.device(a)
        elif isinstance(a, bool):
            pass
        elif a is not None:
            raise TypeError(f"to() received an invalid combination of arguments: got "
                            f"{type(a).__name__}")
    if dev is not None and not isinstance(dev, _backend.device):
        dev = _backend.device(dev)
    return dt, dev, copy


def to(self: Tensor, *args, **kwargs) -> Tensor:
    """Cast to a dtype and/or move to a device; returns ``self`` when nothing changes."""
    dt, dev, copy = _parse_to(args, dict(kwargs))
    same_dt = dt is None or dt.np == self._data.dtype
    same_dev = dev is None or dev.type == self.device.type
    if same_dt and same_dev and not copy:
        return self
    if dev is not None and dev.type != "cpu":
        _backend.xp_for(dev)  # raises a clear error when the backend is missing
    return ToCopy.apply(self, None if dt is None else dt.np, None if same_dev else dev)


def _caster(dt):
    def cast(self, memory_format=None):
        return to(self, dt)
    cast.__doc__ = f"``self.to({dt})``."
    return cast


def type_as(self: Tensor, other: Tensor) -> Tensor:
    return to(self, other.dtype)


def contiguous(self: Tensor, memory_format=None) -> Tensor:
    """``self`` if already C-contiguous, else a contiguous copy in the graph."""
    if self._data.flags.c_contiguous:
        return self
    return Clone.apply(self)


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


METHODS = {
    "clone": clone, "to": to, "type_as": type_as, "contiguous": contiguous, "type": _type,
    "float": _caster(_dtype.float32), "double": _caster(_dtype.float64),
    "half": _caster(_dtype.float16), "bfloat16": _caster(_dtype.bfloat16),
    "long": _caster(_dtype.int64), "int": _caster(_dtype.int32),
    "short": _caster(_dtype.int16), "char": _caster(_dtype.int8), "byte": _caster(_dtype.uint8),
    "bool": _caster(_dtype.bool_),
}
