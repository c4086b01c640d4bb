"""Top-level type predicates and constants: ``is_tensor``, ``numel``, ``pi``, ... (``torch.*``)."""
from __future__ import annotations

import math

from ._tensor import Tensor

__all__ = ["is_tensor", "is_storage", "is_complex", "is_floating_point", "is_nonzero", "numel",
           "pi", "e", "inf", "nan", "newaxis"]

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


METHODS = {"is_nonzero": is_nonzero}
