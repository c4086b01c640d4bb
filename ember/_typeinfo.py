"""``ember.finfo`` / ``ember.iinfo``: the numeric limits of a dtype, as ``torch.finfo``/``iinfo``.

Floating limits are derived from each dtype's largest finite value (``dtype.finite_max``) with
IEEE 754's layout, so bfloat16 needs no NumPy support: ``max = (2 - eps) * 2**emax``,
``tiny = 2**(1 - emax)``, ``resolution = 10**-floor(-log10(eps))``.
"""
from __future__ import annotations

import math

from . import _dtype

__all__ = ["finfo", "iinfo"]


def _check_type(fn: str, type_) -> None:
    if not isinstance(type_, _dtype.dtype):
        raise TypeError(f"{fn}(): argument 'type' (position 1) must be torch.dtype, "
                        f"not {type(type_).__name__}")


class finfo:
    """Machine limits of a floating dtype (``torch.finfo``); the default dtype when omitted."""

    __slots__ = ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype")

    def __init__(self, type=None):
        if type is None:
            type = _dtype.get_default_dtype()
        _check_type("finfo", type)
        if getattr(type, "is_complex", False):
            type = type.to_real()  # as torch: a complex dtype reports its real part's limits
        if not type.is_floating_point:
            raise TypeError("torch.finfo() requires a floating point input type. Use "
                            "torch.iinfo to handle 'torch.finfo'")
        largest = type.finite_max
        emax = math.frexp(largest)[1] - 1
        eps = 2.0 - largest / 2.0 ** emax
        self.bits = type.itemsize * 8
        self.eps = eps
        self.max = largest
        self.min = -largest
        self.tiny = self.smallest_normal = 2.0 ** (1 - emax)
        self.resolution = float(f"1e-{math.floor(-math.log10(eps))}")
        self.dtype = type.name

    def __eq__(self, other):
        return isinstance(other, finfo) and other.dtype == self.dtype

    def __hash__(self):
        return hash(("finfo", self.dtype))

    def __repr__(self):
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.smallest_normal:g}, "
                f"tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Machine limits of an integer dtype (``torch.iinfo``)."""

    __slots__ = ("bits", "max", "min", "dtype")

    def __init__(self, type):
        _check_type("iinfo", type)
        if type is _dtype.bool_:
            raise TypeError("torch.bool is not supported by torch.iinfo")
        if type.is_floating_point or getattr(type, "is_complex", False):
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to "
                            "handle 'torch.iinfo'")
        self.bits = type.itemsize * 8
        if type.is_signed:
            self.min, self.max = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        else:
            self.min, self.max = 0, (1 << self.bits) - 1
        self.dtype = type.name

    def __eq__(self, other):
        return isinstance(other, iinfo) and other.dtype == self.dtype

    def __hash__(self):
        return hash(("iinfo", self.dtype))

    def __repr__(self):
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
