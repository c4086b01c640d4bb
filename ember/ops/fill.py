"""The in-place ops ``fill_``, ``zero_``, ``fill_diagonal_`` and ``copy_``.

Their autograd semantics (version counters, leaf checks, rebasing views) are autograd's:
``ember/autograd/inplace.py`` (NOTE [ In-place ops ]).
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.inplace import inplace
from .._tensor import Tensor, _make
from .._dtype import from_np
from .._backend import xp_of
from .._creation import _check_fill
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
    if value.__class__ is int or value.__class__ is float:  # (as full's: PyTorch's Scalar)
        value = _check_fill(value, from_np(self._data.dtype))
    return Fill.apply(self, value)


_fill.overlap_ok = True  # one value everywhere: torch fills expanded tensors unchecked


def fill_(self: Tensor, value) -> Tensor:
    """Set every element to ``value``."""
    return inplace(self, _fill, value)


def zero_(self: Tensor) -> Tensor:
    """Set every element to zero."""
    return inplace(self, _fill, 0)


def _diagonal_mask(xp, shape, wrap):
    """Where ``fill_diagonal_`` writes: flat positions 0, s, 2s... with s = 1 + n + n^2...
    (NumPy's ``fill_diagonal``; a tall matrix restarts one row below the square when
    ``wrap``)."""
    n, size = shape[1], 1
    for d in shape:
        size *= d
    step = 1 + sum(n ** k for k in range(1, len(shape))) if len(shape) > 2 else n + 1
    end = size if wrap or len(shape) > 2 else min(shape[0], n) * n
    mask = xp.zeros(size, dtype=bool)
    mask[0:end:step] = True
    return mask.reshape(shape)


def _fill_diagonal(self, value, wrap):
    from .elementwise import where
    return where(_make(_diagonal_mask(xp_of(self._data), self._data.shape, wrap)),
                 _make(xp_of(self._data).asarray(value, dtype=self._data.dtype)), self)


def fill_diagonal_(self: Tensor, fill_value, wrap: bool = False) -> Tensor:
    """Fill the main diagonal (all indices equal) with ``fill_value`` (PyTorch's; ``wrap``
    restarts a tall matrix's diagonal below the square, as NumPy's ``fill_diagonal``)."""
    shape = tuple(self.shape)
    if len(shape) < 2:
        raise RuntimeError("dimensions must larger than 1")
    if len(shape) > 2 and any(d != shape[0] for d in shape):
        raise RuntimeError("all dimensions of input must be of equal length")
    return inplace(self, _fill_diagonal, fill_value, wrap)


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
METHODS = {"fill_": fill_, "zero_": zero_, "fill_diagonal_": fill_diagonal_, "copy_": copy_}
