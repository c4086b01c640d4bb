"""Helpers shared by the op families: promotion, gradient reduction, dim handling."""
from __future__ import annotations

import builtins

from .._dtype import from_np, result_type_of, _FLOAT, get_default_dtype
from .._backend import _BY_ARRAY_TYPE as _ARRAY_TYPES
from .._tensor import Tensor, _make, _wrap_dim

wrap_dim = _wrap_dim


def result_dtype(a, b):
    """The backend dtype of ``a op b`` under PyTorch's promotion (fast paths first)."""
    if isinstance(a, Tensor):
        ad = a._data.dtype
        if isinstance(b, Tensor):
            bd = b._data.dtype
            if ad is bd or ad == bd:
                return ad
        elif isinstance(b, builtins.float):
            if is_float(ad):
                return ad
        elif isinstance(b, builtins.int) and not isinstance(b, builtins.bool):
            if ad.kind in "fiu" or ad.name == "bfloat16":
                return ad
    return result_type_of((a, b)).np


def cast(arr, dt):
    """``arr`` in backend dtype ``dt`` (no copy when it already is); scalars pass through."""
    if hasattr(arr, "dtype") and hasattr(arr, "ndim"):
        return arr if arr.dtype == dt else arr.astype(dt)
    return arr


def float_dtype(dt):
    """The dtype a float-only op computes in: ints and bool go to the default float dtype."""
    if is_float(dt):
        return dt
    return get_default_dtype().np


def shape_of(x):
    return x.shape if hasattr(x, "shape") else ()


def reduce_grad(g: Tensor, shape, dtype) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` and cast it to the input's ``dtype``."""
    if tuple(g._data.shape) != tuple(shape):
        from .reduce import sum_to_size
        g = sum_to_size(g, shape)
    if g._data.dtype != dtype:
        g = g.to(from_np(dtype))
    return g


def normalize_dims(dim, ndim: int):
    """A sorted tuple of non-negative dims from an int, a sequence or None (all dims)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (builtins.int,)) or hasattr(dim, "__index__") and not isinstance(
            dim, (tuple, list)):
        return (_wrap_dim(dim, ndim),)
    dims = tuple(_wrap_dim(d, ndim) for d in dim)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
    return tuple(sorted(dims)) if dims else tuple(range(ndim))


def check_broadcast(sa, sb):
    """Raise PyTorch's error when two shapes do not broadcast."""
    for i in range(1, min(len(sa), len(sb)) + 1):
        x, y = sa[-i], sb[-i]
        if x != y and x != 1 and y != 1:
            raise RuntimeError(
                f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                f"non-singleton dimension {max(len(sa), len(sb)) - i}")


def is_float(dt) -> bool:
    """Whether backend dtype ``dt`` is floating (ml_dtypes' bfloat16 has NumPy kind 'V')."""
    return dt.kind == "f" or dt.name == "bfloat16"


def scalar_name(npd) -> str:
    """c10's name of a backend dtype as PyTorch's messages print it ("Float", "Long")."""
    return from_np(npd).scalar_name


def c_name(npd) -> str:
    """The C++ type of a backend dtype as c10's messages print it ("float", "long int")."""
    return from_np(npd).c_name


def need_tensor(x, fn: str, name: str = "input", pos: int = 1, optional: bool = False,
                wrap_arrays: bool = False):
    """``x`` if it is a Tensor, else PyTorch's "fn(): argument 'name' (position pos) must be
    Tensor, not T"; ``optional`` lets None through, ``wrap_arrays`` takes a backend array."""
    if isinstance(x, Tensor) or optional and x is None:
        return x
    if wrap_arrays and type(x) in _ARRAY_TYPES:
        return _make(x)
    raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not "
                    f"{type(x).__name__}")
