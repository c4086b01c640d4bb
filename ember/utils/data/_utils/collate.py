"""Collation: merge a list of samples into a batch (``default_collate``) or convert one sample
(``default_convert``), with PyTorch's rules (``torch/utils/data/_utils/collate.py``).

Tensors are stacked; NumPy arrays become tensors and are stacked; Python floats become a
float64 tensor, ints an int64 tensor, bools a bool tensor; NumPy scalars keep their dtype;
strings and bytes stay a list; mappings, namedtuples and sequences are collated field by field.
"""
from __future__ import annotations

import collections.abc
import copy
import re

import numpy as np

from ...._tensor import Tensor
from ...._creation import tensor as _tensor, as_tensor as _as_tensor
from ...._dtype import float64 as _float64
from ....ops.movement import stack as _stack

__all__ = ["collate", "default_collate", "default_convert", "default_collate_fn_map",
           "default_collate_err_msg_format", "collate_tensor_fn", "collate_numpy_array_fn",
           "collate_numpy_scalar_fn", "collate_float_fn", "collate_int_fn", "collate_str_fn"]

np_str_obj_array_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, "
    "dicts or lists; found {}"
)


def default_convert(data):
    """Convert each NumPy array (or NumPy scalar) inside ``data`` into a tensor.

    Used when auto-batching is off (``batch_size=None``); containers are rebuilt with converted
    elements and everything else passes through unchanged, as in PyTorch.
    """
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_",
                                                                       "bytes_"):
        if elem_type.__name__ == "ndarray" \
                and np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data
        return _as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:  # the mapping type cannot be rebuilt from a dict
            return {key: default_convert(data[key]) for key in data}
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]  # a list, as PyTorch (backwards compatibility)
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


class _StackedSamples(collections.abc.Sequence):
    """A batch of ``TensorDataset`` samples held as one gathered tensor per field.

    ``TensorDataset.__getitems__`` returns it: ``default_collate`` takes the gathered tensors
    as they are (one fancy index per field instead of a per-sample index plus a stack), and
    any other collate function sees an ordinary sequence of per-sample tuples.
    """

    __slots__ = ("stacked",)

    def __init__(self, stacked):
        self.stacked = tuple(stacked)

    def __len__(self):
        return self.stacked[0].shape[0]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return tuple(t[i] for t in self.stacked)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        return repr(list(self))


def _check_equal_sizes(shapes):
    """Raise torch.stack's error naming the first shape that differs from entry 0's."""
    s0 = shapes[0]
    for i, s in enumerate(shapes):
        if s != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(s)} at entry {i}")


def collate(batch, *, collate_fn_map=None):
    """Collate ``batch`` (a list of samples) by the type of its first element.

    ``collate_fn_map`` maps an element type (or tuple of types) to ``fn(batch, *,
    collate_fn_map)``; exact type matches win, then the first ``isinstance`` match in order.
    """
    if type(batch) is _StackedSamples and collate_fn_map is not None \
            and collate_fn_map.get(Tensor) is collate_tensor_fn:
        # TensorDataset.__getitems__ already gathered the batch with one fancy index per
        # tensor: the same tensors stacking its samples would give.
        return list(batch.stacked)
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map)
                              for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch],
                                           collate_fn_map=collate_fn_map) for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map)
                    for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map)
                           for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        sizes = [len(e) for e in batch]
        if any(s != sizes[0] for s in sizes):
            # torch's wording, plus the sizes so the bad sample can be found
            raise RuntimeError("each element in list of batch should be of equal size "
                               f"(got sizes {sizes})")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            # a list, as PyTorch (backwards compatibility)
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(samples, collate_fn_map=collate_fn_map)
                              for samples in transposed])
        except TypeError:
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def collate_tensor_fn(batch, *, collate_fn_map=None):
    """Stack tensors along a new first dim."""
    return _stack(list(batch), 0)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    """NumPy arrays become one tensor (string/object arrays are refused, as in PyTorch)."""
    elem = batch[0]
    if np_str_obj_array_pattern.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    dt = elem.dtype
    if all(type(b) is np.ndarray and b.dtype == dt for b in batch):
        # Same result as stacking one tensor per array, without the per-array tensors.
        _check_equal_sizes([b.shape for b in batch])
        return _as_tensor(np.stack(batch))
    return collate([_as_tensor(b) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    """NumPy scalars keep their dtype (``torch.as_tensor`` of the list)."""
    return _as_tensor(np.array(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    """Python floats become float64 whatever the default dtype (as PyTorch)."""
    return _tensor(batch, dtype=_float64)


def collate_int_fn(batch, *, collate_fn_map=None):
    """Python ints become int64 (bools, a subclass of int, become a bool tensor)."""
    return _tensor(batch)


def collate_str_fn(batch, *, collate_fn_map=None):
    """Strings and bytes stay a list."""
    return batch


default_collate_fn_map = {Tensor: collate_tensor_fn}
default_collate_fn_map[np.ndarray] = collate_numpy_array_fn
default_collate_fn_map[(np.bool_, np.number, np.object_)] = collate_numpy_scalar_fn
default_collate_fn_map[float] = collate_float_fn
default_collate_fn_map[int] = collate_int_fn
default_collate_fn_map[str] = collate_str_fn
default_collate_fn_map[bytes] = collate_str_fn


def default_collate(batch):
    """Put each field of the samples in ``batch`` into a tensor with a new batch dim.

    Tensor -> stacked tensor; ndarray -> tensor; float -> float64 tensor; int -> int64 tensor;
    str/bytes -> unchanged list; Mapping/namedtuple/Sequence -> collated per field
    (a tuple gives a list). See ``torch.utils.data.default_collate``.
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)

