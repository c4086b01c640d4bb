"""Reductions: sum, mean and friends over ``dim`` (int, tuple or None) with ``keepdim``."""
from __future__ import annotations

from ..autograd.function import Function
from .._tensor import Tensor
from ._util import normalize_dims, float_dtype, is_float
from .._dtype import dtype as _dtype_cls

__all__ = ["sum", "mean", "sum_to_size"]


def _restore_dims(g: Tensor, shape, dims, keepdim: bool) -> Tensor:
    """Re-insert reduced dims (size 1) into ``g`` so it broadcasts against ``shape``."""
    if keepdim or not dims:
        return g
    new_shape = list(shape)
    for d in dims:
        new_shape[d] = 1
    return g.reshape(tuple(new_shape))


class Sum(Function):
    raw = True
    backward_name = "SumBackward1"

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        ctx.meta = (a.shape, dims, keepdim)
        if dt is None:
            # PyTorch sums bool and integer tensors in int64
            dt = a.dtype if is_float(a.dtype) or a.dtype.kind == "i" and a.dtype.itemsize == 8 \
                else ctx.xp.dtype("int64")
        return ctx.xp.sum(a, axis=dims, keepdims=keepdim, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        shape, dims, keepdim = ctx.meta
        return _restore_dims(g, shape, dims, keepdim).expand(shape), None, None, None


def sum(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Sum of elements over ``dim`` (all dims when None)."""
    dims = normalize_dims(dim, input._data.ndim)
    return Sum.apply(input, dims, keepdim, dtype.np if dtype is not None else None)


class Mean(Function):
    raw = True
    backward_name = "MeanBackward1"

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        if dt is None:
            if not is_float(a.dtype):
                raise RuntimeError(
                    "mean(): could not infer output dtype. Input dtype must be either a "
                    f"floating point or complex dtype. Got: {_name(a.dtype)}")
            dt = a.dtype
        n = 1
        for d in dims:
            n *= a.shape[d]
        ctx.meta = (a.shape, dims, keepdim, n)
        return ctx.xp.mean(a, axis=dims, keepdims=keepdim, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        shape, dims, keepdim, n = ctx.meta
        return _restore_dims(g / n, shape, dims, keepdim).expand(shape), None, None, None


def _name(npd) -> str:
    from .._dtype import from_np
    n = from_np(npd).name
    return {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
            "bool": "Bool"}.get(n, n.capitalize())


def mean(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Arithmetic mean over ``dim``."""
    dims = normalize_dims(dim, input._data.ndim)
    return Mean.apply(input, dims, keepdim, dtype.np if dtype is not None else None)


class SumToSize(Function):
    """Sum a broadcast tensor back down to ``shape`` (the adjoint of ``expand``)."""

    raw = True
    backward_name = "SumToSizeBackward0"

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        lead = a.ndim - len(shape)
        dims = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1)
        out = ctx.xp.sum(a, axis=dims, keepdims=True) if dims else a
        return out.reshape(shape) if lead else out

    @staticmethod
    def backward(ctx, g):
        return g.expand(ctx.shape), None


def sum_to_size(input: Tensor, *size) -> Tensor:
    """Sum ``input`` down to a shape it was broadcast from."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    from .._tensor import Size
    ishape = input._data.shape
    ok = len(shape) <= len(ishape) and all(
        s == 1 or s == i for s, i in zip(shape[::-1], ishape[::-1]))
    if not ok:
        raise RuntimeError(f"size {list(shape)} is not expandable to size {list(ishape)}.")
    if tuple(shape) == tuple(ishape):
        return input
    return SumToSize.apply(input, tuple(shape))


METHODS = {"sum": sum, "mean": mean, "sum_to_size": sum_to_size}
