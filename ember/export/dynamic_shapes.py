"""``Dim``: a named dimension allowed to vary in an exported program
(``torch.export.dynamic_shapes``)."""
from __future__ import annotations

import enum
import sys

__all__ = ["Dim", "dims", "DimHint", "ConstraintViolationError"]

_INT_MAX = sys.maxsize - 1


class ConstraintViolationError(RuntimeError):
    """A dimension asked to be dynamic cannot be (PyTorch's
    ``torch.fx.experimental.symbolic_shapes.ConstraintViolationError``)."""


class DimHint(enum.Enum):
    """``Dim.AUTO``, ``Dim.STATIC``, ``Dim.DYNAMIC``."""

    AUTO = "AUTO"
    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"

    def __repr__(self):
        return f"DimHint({self.value})"

    __str__ = __repr__


class Dim:
    """A symbolic size with a name and an inclusive range (``torch.export.Dim``)."""

    AUTO = DimHint.AUTO
    STATIC = DimHint.STATIC
    DYNAMIC = DimHint.DYNAMIC

    def __init__(self, name: str, *, min=None, max=None):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Dim name must be a valid identifier, got {name!r}")
        lo = 0 if min is None else min
        hi = _INT_MAX if max is None else max
        if lo > hi:
            raise ValueError(f"Dim {name} has invalid range [{lo}, {hi}]: min > max")
        self.__name__ = name
        self.min = lo
        self.max = hi

    def __repr__(self):
        parts = [repr(self.__name__)]
        if self.min != 2:  # PyTorch's repr leaves out its smallest dynamic size
            parts.append(f"min={self.min}")
        if self.max != _INT_MAX:
            parts.append(f"max={self.max}")
        return f"Dim({', '.join(parts)})"

    def __eq__(self, other):
        return isinstance(other, Dim) and (self.__name__, self.min, self.max) == (
            other.__name__, other.min, other.max)

    def __hash__(self):
        return hash((self.__name__, self.min, self.max))


def dims(*names: str, min=None, max=None) -> tuple:
    """One ``Dim`` per name, sharing a range (``torch.export.dims``)."""
    return tuple(Dim(n, min=min, max=max) for n in names)
