"""Top-level type predicates and constants: ``is_tensor``, ``numel``, ``pi``, ... (``torch.*``)."""
from __future__ import annotations

import math

from ._tensor import Tensor

__all__ = ["is_tensor", "is_storage", "is_complex", "is_floating_point", "is_nonzero", "numel",
           "is_same_size", "typename", "pi", "e", "inf", "nan", "newaxis"]

pi = math.pi
e = math.e
inf = math.inf
nan = math.nan
newaxis = None


def _tensor_arg(fn: str, input) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' (position 1) must be Tensor, "
                        f"not {type(input).__name__}")
    return input


def is_tensor(obj) -> bool:
    """Whether ``obj`` is an ember tensor (``torch.is_tensor``)."""
    return isinstance(obj, Tensor)


def is_storage(obj) -> bool:
    """Whether ``obj`` is a storage (``torch.is_storage``); ember exposes none, so False."""
    return False


def is_complex(input) -> bool:
    """Whether ``input``'s dtype is complex (``torch.is_complex``)."""
    return bool(getattr(_tensor_arg("is_complex", input).dtype, "is_complex", False))


def is_floating_point(input) -> bool:
    """Whether ``input``'s dtype is floating (``torch.is_floating_point``)."""
    return _tensor_arg("is_floating_point", input).dtype.is_floating_point


def is_nonzero(input) -> bool:
    """``bool(input)`` of a one-element tensor (``torch.is_nonzero``)."""
    n = _tensor_arg("is_nonzero", input).numel()
    if n == 0:
        raise RuntimeError("Boolean value of Tensor with no values is ambiguous")
    if n > 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(input.item())


def numel(input) -> int:
    """The number of elements of ``input`` (``torch.numel``)."""
    return _tensor_arg("numel", input).numel()


def is_same_size(input, other) -> bool:
    """Whether two tensors have the same shape (``torch.is_same_size``)."""
    _tensor_arg("is_same_size", input)
    if not isinstance(other, Tensor):
        raise TypeError(f"is_same_size(): argument 'other' (position 2) must be Tensor, "
                        f"not {type(other).__name__}")
    return input.shape == other.shape


def typename(obj, /) -> str:
    """The qualified type name of ``obj``; a tensor's legacy type (``torch.typename``)."""
    if isinstance(obj, Tensor):
        return obj.type()
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module = obj.__class__.__module__ or ""
        qualname = obj.__class__.__qualname__
    return qualname if module in ("", "builtins") else f"{module}.{qualname}"


def _assert(condition, message) -> None:
    """``assert condition, message`` as a function (``torch._assert``)."""
    if not condition:
        raise AssertionError(message)


METHODS = {"is_nonzero": is_nonzero, "is_same_size": is_same_size}
