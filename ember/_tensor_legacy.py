"""Tensor's legacy storage methods: ``new``, ``resize_``/``resize_as_``/``resize`` and
``record_stream`` (bound onto ``Tensor`` from ``METHODS`` in ember/__init__.py).

``resize_`` works on the tensor's storage as PyTorch's does: the memory its array was cut
from (the last NumPy base, when that is one plain block of the same dtype), read from the
tensor's own start in row-major order.  Shrinking keeps a view of the storage prefix (other
views of the storage still see writes); growing past the storage allocates a larger one with
the old elements first and zeros after (PyTorch leaves them uninitialised) and, unlike
PyTorch, other views keep the old block.
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from ._size import Size
from ._tensor import Tensor


def _sizes(sizes: tuple, name: str) -> tuple:
    """``resize_(2, 3)``, ``resize_((2, 3))`` and ``resize_(Size)`` as one shape tuple."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    for s in sizes:
        if isinstance(s, builtins.bool) or not isinstance(s, (builtins.int, np.integer)):
            raise TypeError(f"{name}(): argument 'size' (position 1) must be tuple of ints, not "
                            f"{type(s).__name__}")
        if s < 0:
            raise RuntimeError("numel: integer multiplication overflow")
    return tuple(builtins.int(s) for s in sizes)


def _storage(arr):
    """``(flat storage, element offset of arr in it)``; arr's own row-major copy when the
    memory it views is not one plain block of its dtype."""
    root = arr
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.dtype == arr.dtype and root.flags.c_contiguous and root.size:
        start = root.__array_interface__["data"][0]
        off = (arr.__array_interface__["data"][0] - start) // arr.itemsize
        return root.reshape(-1), off
    return np.ascontiguousarray(arr).reshape(-1), 0


def resize_(self: Tensor, *sizes, memory_format=None) -> Tensor:
    """Give the tensor shape ``sizes`` over its storage, growing the storage if needed."""
    if self._requires_grad:
        raise RuntimeError("cannot resize variables that require grad")
    shape = _sizes(sizes, "resize_")
    if shape == self._data.shape:
        return self
    n = math.prod(shape)
    flat, off = _storage(self._data)
    if off + n > flat.size:
        grown = np.zeros(off + n, dtype=flat.dtype)
        grown[:flat.size] = flat
        flat = grown
    self._data = flat[off:off + n].reshape(shape)
    return self


def resize_as_(self: Tensor, the_template: Tensor, *, memory_format=None) -> Tensor:
    """``self.resize_(the_template.size())``."""
    return resize_(self, the_template.shape)


def resize(self: Tensor, *sizes) -> Tensor:
    """Deprecated out-of-place resize: a reshape that must keep the number of elements."""
    warnings.warn("non-inplace resize is deprecated", UserWarning, stacklevel=2)
    shape = _sizes(sizes, "resize")
    if math.prod(shape) != self.numel():
        req = "x".join(map(str, shape))
        have = "x".join(map(str, self.shape))
        raise RuntimeError(
            f"requested resize to {req} ({math.prod(shape)} elements in total), but the given "
            f"tensor has a size of {have} ({self.numel()} elements). autograd's resize can only "
            "change the shape of a given tensor, while preserving the number of elements. ")
    return self.contiguous().view(shape)


def new(self: Tensor, *args, **kwargs) -> Tensor:
    """The legacy constructor: ``x.new(2, 3)`` (uninitialised), ``x.new(data)`` (a copy in
    x's dtype), ``x.new(tensor)`` (an alias of it), ``x.new()`` (empty), in x's dtype."""
    from ._creation import empty, tensor
    device = kwargs.pop("device", None)
    if kwargs:
        got = ", ".join([type(a).__name__ for a in args] + [f"{k}={type(v).__name__}"
                                                             for k, v in kwargs.items()])
        raise TypeError(f"new() received an invalid combination of arguments - got ({got})")
    if not args:
        return empty(0, dtype=self.dtype, device=device)
    if len(args) == 1:
        a = args[0]
        if isinstance(a, Tensor):
            if a.dtype != self.dtype:
                raise TypeError(f"expected TensorOptions(dtype={self.dtype}) (got "
                                f"TensorOptions(dtype={a.dtype}))")
            return a.view_as(a)
        if isinstance(a, Size):
            return empty(a, dtype=self.dtype, device=device)
        if isinstance(a, (list, tuple, np.ndarray)):
            return tensor(a, dtype=self.dtype, device=device)
        if isinstance(a, str):
            raise TypeError(f"new(): invalid data type '{type(a).__name__}'")
        if not isinstance(a, (builtins.int, np.integer)) or isinstance(a, builtins.bool):
            raise TypeError(f"new(): data must be a sequence (got {type(a).__name__})")
    if not all(isinstance(a, (builtins.int, np.integer)) and not isinstance(a, builtins.bool)
               for a in args):
        got = ", ".join(type(a).__name__ for a in args)
        raise TypeError(f"new() received an invalid combination of arguments - got ({got})")
    return empty(*args, dtype=self.dtype, device=device)


def record_stream(self: Tensor, stream) -> None:
    """Mark the tensor in use on ``stream``; a cpu tensor has no streams, as in PyTorch."""
    from .cuda import Stream
    if isinstance(stream, Stream):
        raise NotImplementedError("Could not run 'aten::record_stream' with arguments from the "
                                  f"'{self.device.type.upper()}' backend.")
    raise RuntimeError("unknown parameter type")


METHODS = {"new": new, "resize_": resize_, "resize_as_": resize_as_, "resize": resize,
           "record_stream": record_stream}
