"""The legacy tensor types ``ember.FloatTensor``, ``LongTensor``, ... (``torch.FloatTensor``).

Each is a class (not a ``Tensor`` subclass, as in PyTorch) whose metaclass makes
``isinstance(t, LongTensor)`` true exactly for int64 cpu tensors, and whose constructor is
PyTorch's legacy one: ``FloatTensor(2, 3)`` is uninitialised, ``FloatTensor([1, 2])`` copies
data, ``FloatTensor(t)`` returns ``t`` when its dtype matches. They are plain classes, so
annotations such as ``Optional[torch.LongTensor]`` evaluate.
"""
from __future__ import annotations

import builtins

from . import _dtype
from ._tensor import Tensor, Size

__all__ = ["FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
           "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
           "set_default_tensor_type"]


class _TensorType(type):
    """Metaclass of the legacy types: ``isinstance`` by dtype and device, repr as torch's."""

    def __instancecheck__(cls, obj) -> bool:
        return (isinstance(obj, Tensor) and obj.dtype is cls.dtype
                and obj.device.type == "cpu")

    def __repr__(cls) -> str:
        return f"<class 'ember.{cls.__name__}'>"


def _options(d) -> str:
    return f"TensorOptions(dtype={d.c_name}, device=cpu)"


def _new(cls, *args, device=None):
    """PyTorch's legacy constructor: sizes, a Size, data, or a tensor of the same dtype."""
    from ._creation import empty, tensor
    d = cls.dtype
    if device is not None and str(device) != "cpu":
        raise RuntimeError(f"legacy constructor expects device type: cpu but device type: "
                           f"{device} was passed")
    if len(args) == 1 and isinstance(args[0], Tensor):
        if args[0].dtype is not d:
            raise TypeError(f"expected {_options(d)} (got {_options(args[0].dtype)})")
        return args[0]
    if len(args) == 1 and isinstance(args[0], Size):
        return empty(*args[0], dtype=d)
    if len(args) == 1 and not isinstance(args[0], builtins.int):
        if isinstance(args[0], (str, bytes)):
            raise TypeError(f"new(): invalid data type '{type(args[0]).__name__}'")
        return tensor(args[0], dtype=d)
    for i, a in enumerate(args):
        if not isinstance(a, builtins.int) or isinstance(a, builtins.bool):
            raise TypeError(f"new(): argument 'size' failed to unpack the object at pos {i + 1} "
                            f"with error \"type must be tuple of ints,but got "
                            f"{type(a).__name__}\"")
        if a < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {a}: "
                               f"{list(args)}")
    return empty(*args, dtype=d) if args else empty(0, dtype=d)


def _make_type(d: _dtype.dtype) -> type:
    doc = f"Legacy constructor of {d.name} cpu tensors (``torch.{d.legacy_name}``)."
    return _TensorType(d.legacy_name, (), {
        "__new__": _new, "dtype": d, "is_cuda": False, "is_sparse": False,
        "__module__": "ember", "__doc__": doc})


FloatTensor = _make_type(_dtype.float32)
DoubleTensor = _make_type(_dtype.float64)
HalfTensor = _make_type(_dtype.float16)
BFloat16Tensor = _make_type(_dtype.bfloat16)
LongTensor = _make_type(_dtype.int64)
IntTensor = _make_type(_dtype.int32)
ShortTensor = _make_type(_dtype.int16)
CharTensor = _make_type(_dtype.int8)
ByteTensor = _make_type(_dtype.uint8)
BoolTensor = _make_type(_dtype.bool_)


def set_default_tensor_type(t) -> None:
    """The deprecated ``torch.set_default_tensor_type``: ``set_default_dtype`` of a floating
    legacy type (``ember.DoubleTensor`` or ``"torch.DoubleTensor"``)."""
    import warnings
    warnings.warn("torch.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use "
                  "torch.set_default_dtype() and torch.set_default_device() as alternatives.",
                  UserWarning, stacklevel=2)
    if isinstance(t, str):
        prefix, _, name = t.rpartition(".")
        found = globals().get(name) if prefix in ("torch", "ember") else None
        if not isinstance(found, _TensorType):
            raise AttributeError(f"module '{prefix or t}' has no attribute '{name}'")
        t = found
    if not isinstance(t, _TensorType):
        raise TypeError("invalid type object: only floating-point types are supported as the "
                        "default type")
    if not t.dtype.is_floating_point:
        raise TypeError("only floating-point types are supported as the default type")
    _dtype.set_default_dtype(t.dtype)
