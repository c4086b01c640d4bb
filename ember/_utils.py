"""Storages and rebuild functions: what torch's checkpoints name, in ember (``torch._utils``).

A checkpoint's pickle (``torch.save``'s ``data.pkl``) rebuilds every tensor by calling
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` on a storage that its
persistent id names as ``torch.<T>Storage``.  These are ember's versions of those callables
and storage types; the allow-list in ``_weights_only_unpickler`` and the full unpickler in
``serialization`` both map torch's names onto them.  Every argument is checked, since a
``weights_only`` load runs them on untrusted data.
"""
from __future__ import annotations

import pickle

import numpy as np

from . import _backend, _dtype
from ._tensor import Tensor, _make
from .nn.parameter import Parameter


class _StorageType:
    """Stands for ``torch.<T>Storage`` in a pickle (torch's own ``StorageType`` marker)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"StorageType(torch.{self.name})"


# torch's typed storages are named after c10's scalar type ("FloatStorage"); an untyped
# storage holds bytes
_STORAGE_TYPES = {d.scalar_name + "Storage": _StorageType(d.scalar_name + "Storage", d)
                  for d in _dtype.ALL + _dtype.QUANTIZED}
_STORAGE_TYPES["UntypedStorage"] = _StorageType("UntypedStorage", _dtype.uint8)


class _Storage:
    """A loaded storage: its bytes (uint8, shared by every tensor viewing it) and dtype."""

    __slots__ = ("raw", "dtype", "location")

    def __init__(self, raw, dtype, location):
        self.raw, self.dtype, self.location = raw, dtype, location

    def size(self):
        return self.raw.nbytes // self.dtype.itemsize

    def nbytes(self):
        return self.raw.nbytes

    def __repr__(self):
        return f"ember storage ({self.dtype}, {self.size()} elements, from {self.location})"


def _check_int(v, what):
    if type(v) is not int:
        raise RuntimeError(f"tensor {what} must be an int, got {type(v).__name__} {v!r}")
    if v < 0:
        raise RuntimeError(f"tensor {what} must be non-negative, got {v}")
    return v


def _tensor_from_storage(storage, storage_offset, size, stride, dtype=None):
    if type(storage) is not _Storage:
        raise RuntimeError(f"expected a storage to rebuild a tensor from, got "
                           f"{type(storage).__name__}")
    dt = storage.dtype if dtype is None else dtype
    if type(dt) is not _dtype.dtype:
        raise RuntimeError(f"expected an ember dtype, got {type(dt).__name__}")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise RuntimeError(f"tensor size and stride must be tuples, got {type(size).__name__} "
                           f"and {type(stride).__name__}")
    size = tuple(_check_int(s, "size") for s in size)
    stride = tuple(_check_int(s, "stride") for s in stride)
    offset = _check_int(storage_offset, "storage offset")
    if len(size) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape: size {list(size)}, "
                           f"stride {list(stride)}")
    npdt = dt.np
    item = npdt.itemsize
    nbytes = storage.raw.nbytes
    numel = 1
    for s in size:
        numel *= s
    if numel == 0:
        if offset * item > nbytes:
            raise RuntimeError(f"storage offset {offset} is out of bounds for storage of size "
                               f"{nbytes}")
        return _make(_on_device(np.empty(size, npdt), storage))
    need = (offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1) * item
    if need > nbytes:
        raise RuntimeError(
            f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset}, "
            f"and itemsize {item} requiring a storage size of {need} are out of bounds for "
            f"storage of size {nbytes}")
    try:
        arr = np.ndarray(size, dtype=npdt, buffer=storage.raw, offset=offset * item,
                         strides=tuple(st * item for st in stride))
    except (ValueError, TypeError, OverflowError) as e:
        raise RuntimeError(f"cannot rebuild a tensor of size {list(size)}, stride "
                           f"{list(stride)}: {e}") from None
    return _make(_on_device(arr, storage))


def _on_device(arr, storage):
    # serialization's loader sets the storage's location to the device it maps to
    loc = storage.location
    return arr if loc == "cpu" else _backend.to_device(arr, loc)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """``torch._utils._rebuild_tensor``."""
    return _tensor_from_storage(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` (hooks and metadata are not restored)."""
    t = _tensor_from_storage(storage, storage_offset, size, stride)
    if requires_grad:
        t.requires_grad_(bool(requires_grad))
    return t


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    """``torch._utils._rebuild_tensor_v3``: a tensor whose dtype differs from its storage's."""
    t = _tensor_from_storage(storage, storage_offset, size, stride, dtype)
    if requires_grad:
        t.requires_grad_(bool(requires_grad))
    return t


def _set_public_state(obj, state):
    """Apply a saved ``__dict__`` (torch's ``_set_obj_state``), public attributes only."""
    if state is None:
        return obj
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    for d in (state, slots):
        if not d:
            continue
        if not isinstance(d, dict):
            raise pickle.UnpicklingError(f"tensor state must be a dict, got {type(d).__name__}")
        for k, v in d.items():
            # new public attributes only: never ember's internals nor a shadowed method
            if type(k) is not str or k.startswith("_") or hasattr(type(obj), k):
                raise pickle.UnpicklingError(f"refusing to set attribute {k!r} on a tensor")
            setattr(obj, k, v)
    return obj


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter`` (backward hooks are not restored)."""
    if not isinstance(data, Tensor):
        raise RuntimeError(f"Parameter data must be a tensor, got {type(data).__name__}")
    return Parameter(data, bool(requires_grad))


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return _set_public_state(_rebuild_parameter(data, requires_grad, backward_hooks), state)


def _rebuild_qtensor(storage, storage_offset, size, stride, quantizer_params, requires_grad,
                     backward_hooks):
    """``torch._utils._rebuild_qtensor``: a quantized tensor (ember/ops/quantized.py)."""
    from .ops.quantized import _rebuild_qtensor_torch, _rebuild_qtensor_packed4
    if type(storage) is _Storage and storage.dtype is _dtype.quint4x2:  # two values a byte
        return _rebuild_qtensor_packed4(storage.raw, _check_int(storage_offset, "offset"),
                                        tuple(_check_int(v, "size") for v in size),
                                        quantizer_params)
    return _rebuild_qtensor_torch(_tensor_from_storage(storage, storage_offset, size, stride),
                                  storage.dtype, quantizer_params)


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter,
               _rebuild_parameter_with_state)
