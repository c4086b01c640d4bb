"""Safetensors files for ember tensors, through the ``safetensors`` package's NumPy API.

Files are interchangeable with ``safetensors.torch`` (bfloat16 through ``ml_dtypes``).  As
``safetensors.torch`` does, saving refuses tensors that share memory (RuntimeError) and
non-contiguous tensors (ValueError): call ``.clone()`` / ``.contiguous()`` first.
"""
from __future__ import annotations

import os

import numpy as np

from .. import _dtype
from .._tensor import Tensor, _make
from ..serialization import _root_array

__all__ = ["save_file", "load_file", "save", "load"]

# safetensors' dtype tags -> ember dtype names (unsigned 16/32/64 widen to int64 on load)
_TAGS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
         "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
         "BOOL": "bool"}


def _lib():
    try:
        import safetensors
        import safetensors.numpy  # noqa: F401
    except ImportError:
        raise ImportError("ember.utils.safetensors needs the 'safetensors' package: "
                          "pip install 'ember[safetensors]'") from None
    return safetensors


def _arrays(tensors) -> dict:
    """Check ``tensors`` as safetensors.torch does and return their NumPy arrays."""
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, torch.Tensor] but received {type(tensors)}")
    arrays = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise ValueError(f"Key `{k!r}` is invalid, expected str keys")
        if not isinstance(v, Tensor):
            raise ValueError(f"Key `{k}` is invalid, expected torch.Tensor but received "
                             f"{type(v)}")
        arrays[k] = v._data if isinstance(v._data, np.ndarray) else v._data.get()
    groups = {}
    for k, a in arrays.items():
        if a.size == 0:
            continue
        lo = a.__array_interface__["data"][0]
        # lowest and one-past-highest byte the array touches
        span = sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s > 0)
        neg = sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s < 0)
        groups.setdefault(id(_root_array(a)), []).append((lo + neg, lo + span + a.itemsize, k))
    failing = []
    for areas in groups.values():
        areas.sort()
        cur, stop = {areas[0][2]}, areas[0][1]
        for start, end, name in areas[1:]:
            if start >= stop:
                if len(cur) > 1:
                    failing.append(cur)
                cur = {name}
            else:
                cur.add(name)
            stop = max(stop, end)
        if len(cur) > 1:
            failing.append(cur)
    if failing:
        raise RuntimeError(
            "Some tensors share memory, this will lead to duplicate memory on disk and potential "
            f"differences when loading them again: {[sorted(s) for s in failing]}. Save "
            "`.clone()`s of the shared tensors instead.")
    for k, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ValueError(
                f"You are trying to save a non contiguous tensor: `{k}` which is not allowed. It "
                "either means you are trying to save tensors which are reference of each other "
                "in which case it's recommended to save only the full tensors, and reslice at "
                "load time, or simply call `.contiguous()` on your tensor to pack it before "
                "saving.")
    return arrays


def _check_metadata(metadata):
    if metadata is not None and (not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ValueError("metadata must be a dict of str to str")


def save(tensors: dict, metadata: dict | None = None) -> bytes:
    """The safetensors bytes of a dict of tensors (``safetensors.torch.save``)."""
    lib = _lib()
    _check_metadata(metadata)
    return lib.numpy.save(_arrays(tensors), metadata=metadata)


def save_file(tensors: dict, filename, metadata: dict | None = None) -> None:
    """Write a dict of tensors to a ``.safetensors`` file (``safetensors.torch.save_file``)."""
    lib = _lib()
    _check_metadata(metadata)
    lib.numpy.save_file(_arrays(tensors), os.fspath(filename), metadata=metadata)


def _dtype_of(tag, name):
    if tag not in _TAGS:
        if tag in ("U16", "U32", "U64"):
            return np.dtype(tag.replace("U", "uint"))
        raise ValueError(f"tensor '{name}' has dtype {tag}, which ember does not support")
    return _dtype._BY_NAME[_TAGS[tag]].np  # bfloat16 needs ml_dtypes (clear error without)


def _wrap(arr):
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:  # no ember uint16/32/64: widen
        arr = arr.astype(np.int64)
    if not arr.flags.writeable:
        arr = arr.copy()
    return _make(arr)


def load(data: bytes) -> dict:
    """Tensors from safetensors bytes (``safetensors.torch.load``)."""
    lib = _lib()
    out = {}
    for name, v in lib.deserialize(data):
        arr = np.frombuffer(v["data"], dtype=_dtype_of(v["dtype"], name))
        out[name] = _wrap(arr.reshape(v["shape"]))
    return out


def load_file(filename, device="cpu") -> dict:
    """Tensors from a ``.safetensors`` file (``safetensors.torch.load_file``)."""
    from .._backend import device as _device
    dev = _device(device if not isinstance(device, int) else "cuda:%d" % device)
    lib = _lib()
    out = {}
    with lib.safe_open(os.fspath(filename), framework="np") as f:
        for name in f.keys():
            _dtype_of(f.get_slice(name).get_dtype(), name)  # resolves ml_dtypes for BF16
            out[name] = _wrap(f.get_tensor(name))
    if dev.type != "cpu":
        out = {k: v.to(dev) for k, v in out.items()}
    return out
