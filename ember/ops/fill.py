"""The in-place ops ``fill_``, ``zero_`` and ``copy_``.

Their autograd semantics (version counters, leaf checks, rebasing views) are autograd's:
``ember/autograd/inplace.py`` (NOTE [ In-place ops ]).
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.inplace import inplace
from .._tensor import Tensor, _make
from .._dtype import from_np
from .._backend import xp_of
from ._util import reduce_grad


class Fill(Function):
    raw = True
    backward_name = "FillBackward1"

    @staticmethod
    def forward(ctx, a, value):
        ctx.vmeta = (getattr(value, "shape", None), getattr(value, "dtype", None))
        return ctx.xp.full(a.shape, value, a.dtype)

    @staticmethod
    def backward(ctx, g):
        shape, dt = ctx.vmeta
        gv = g.sum().to(from_np(dt)) if ctx.needs_input_grad[1] else None
        return _zeros_like(g) if ctx.needs_input_grad[0] else None, gv


class Copy(Function):
    raw = True
    backward_name = "CopyBackwards"

    @staticmethod
    def forward(ctx, dst, src):
        ctx.smeta = (src.shape, src.dtype)
        xp = ctx.xp
        return xp.broadcast_to(xp.asarray(src).astype(dst.dtype, copy=False), dst.shape).copy()

    @staticmethod
    def backward(ctx, g):
        shape, dt = ctx.smeta
        return (_zeros_like(g) if ctx.needs_input_grad[0] else None,
                reduce_grad(g, shape, dt) if ctx.needs_input_grad[1] else None)


def _zeros_like(g: Tensor) -> Tensor:
    """The gradient of overwritten values: zero (PyTorch's ``zeros_like(grad)``)."""
    return _make(xp_of(g._data).zeros_like(g._data))


def _fill(self, value):
    if isinstance(value, Tensor) and value._data.ndim != 0:
        raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                           f"{value._data.ndim} dimensions.")
    return Fill.apply(self, value)


_fill.overlap_ok = True  # one value everywhere: torch fills expanded tensors unchecked


def fill_(self: Tensor, value) -> Tensor:
    """Set every element to ``value``."""
    return inplace(self, _fill, value)


def zero_(self: Tensor) -> Tensor:
    """Set every element to zero."""
    return inplace(self, _fill, 0)


def _copy(self, src):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' (position 1) must be Tensor, not "
                        f"{type(src).__name__}")
    ss, ds = src._data.shape, self._data.shape
    if len(ss) > len(ds) or any(a != b and a != 1 for a, b in zip(ss[::-1], ds[::-1])):
        raise RuntimeError(f"The size of tensor a ({ds[-1] if ds else 1}) must match the size of "
                           f"tensor b ({ss[-1] if ss else 1}) at non-singleton dimension "
                           f"{len(ds) - 1 if ds else 0}")
    if type(src._data) is not type(self._data):  # copy_ crosses devices, as PyTorch's
        src = src.to(self.device)
    return Copy.apply(self, src)


def copy_(self: Tensor, src: Tensor, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast and cast) into ``self``."""
    return inplace(self, _copy, src)


# The in-place arithmetic (add_, __iadd__, ...) is bound by ops/elementwise.py.
METHODS = {"fill_": fill_, "zero_": zero_, "copy_": copy_}
