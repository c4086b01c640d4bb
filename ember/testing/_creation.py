"""``make_tensor``: a random tensor for tests (``torch.testing.make_tensor``)."""
from __future__ import annotations

import math

from .. import _dtype
from .._tensor import Tensor

__all__ = ["make_tensor"]


def _shape(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        return tuple(shape[0])
    return tuple(shape)


def _low_high(low, high, lowest, highest, default_low, default_high):
    """Clamp the user's range into the dtype's (torch's ``_modify_low_high``)."""
    if (low is not None and math.isnan(low)) or (high is not None and math.isnan(high)):
        raise ValueError(f"`low` and `high` cannot be NaN, but got low={low} and high={high}")
    low = default_low if low is None else low
    high = default_high if high is None else high
    return max(low, lowest), min(high, highest)


def make_tensor(*shape, dtype: _dtype.dtype, device, low=None, high=None,
                requires_grad: bool = False, noncontiguous: bool = False,
                exclude_zero: bool = False, memory_format=None) -> Tensor:
    """Random values of ``dtype`` in ``[low, high)`` (integers) or ``[low, high]`` (floats);
    defaults ``[-9, 9]`` (``[0, 10)`` for uint8, ``{False, True}`` for bool)."""
    from .._creation import empty, randint
    size = _shape(shape)
    if dtype is _dtype.bool_:
        result = randint(0, 2, size, dtype=dtype)
    elif not dtype.is_floating_point:
        info_low = 0 if not dtype.is_signed else -(1 << (dtype.itemsize * 8 - 1))
        info_high = (1 << (dtype.itemsize * 8 - int(dtype.is_signed))) - 1
        low, high = _low_high(low, high, info_low, info_high,
                              0 if not dtype.is_signed else -9, 10)
        if low >= high:
            raise ValueError(f"`low` must be less than `high`, but got {low} >= {high}")
        result = randint(math.ceil(low), math.ceil(high), size, dtype=dtype)
    else:
        largest = dtype.finite_max
        low, high = _low_high(low, high, -largest, largest, -9, 9)
        if low > high:
            raise ValueError(f"`low` must be less than or equal to `high`, "
                             f"but got {low} > {high}")
        result = empty(size, dtype=dtype).uniform_(low, high)
    if noncontiguous and result.numel() > 1:
        result = result.repeat_interleave(2, dim=-1)[..., ::2]
    if exclude_zero:
        replacement = (1 if not dtype.is_floating_point
                       else _finfo_tiny(dtype))
        result[result == 0] = replacement
    if requires_grad and dtype.is_floating_point:
        result.requires_grad_(True)
    return result


def _finfo_tiny(dtype) -> float:
    from .._typeinfo import finfo
    return finfo(dtype).tiny
