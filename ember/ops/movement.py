"""Shape and movement ops.  Views share storage with their input, as in PyTorch."""
from __future__ import annotations

import builtins

from ..autograd.function import Function
from .._tensor import Tensor, Size, _wrap_dim

__all__ = ["reshape", "view", "expand", "permute", "transpose", "swapaxes", "swapdims", "t"]


def _shape_arg(size) -> tuple:
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` shapes, as PyTorch does."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = size[0]
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = s.item()
        if isinstance(s, builtins.float) or isinstance(s, builtins.bool):
            raise TypeError(f"shape must be a sequence of ints, but got {type(s).__name__}")
        out.append(builtins.int(s))
    return tuple(out)


def infer_shape(shape: tuple, numel: int) -> tuple:
    """Resolve one ``-1`` in ``shape`` and check that it holds ``numel`` elements."""
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s}")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = shape[:neg[0]] + (numel // known,) + shape[neg[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


class Reshape(Function):
    """Reshape; a view when the memory layout allows (``reshape``/``view``)."""

    raw = True
    view = True
    backward_name = "ViewBackward0"

    @staticmethod
    def forward(ctx, a, shape, must_view=False):
        ctx.in_shape = a.shape
        try:
            return ctx.xp.reshape(a, shape, copy=False)
        except ValueError:
            if must_view:
                raise RuntimeError(
                    "view size is not compatible with input tensor's size and stride (at least "
                    "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                    "instead.") from None
            return ctx.xp.reshape(a, shape).copy()

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None, None


def reshape(input: Tensor, *shape) -> Tensor:
    """The same elements in a new shape (a view when possible)."""
    shape = infer_shape(_shape_arg(shape), input._data.size)
    if shape == input._data.shape:
        return Reshape.apply(input, shape) if input._requires_grad else _alias(input)
    return Reshape.apply(input, shape)


def view(input: Tensor, *shape) -> Tensor:
    """A view with a new shape; errors where a copy would be needed."""
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, Size, builtins.int)) and \
            not hasattr(shape[0], "__index__"):
        return input.to(shape[0]) if input.dtype == shape[0] else _view_dtype(input, shape[0])
    shape = infer_shape(_shape_arg(shape), input._data.size)
    return Reshape.apply(input, shape, True)


def _view_dtype(input, dt):
    raise RuntimeError(f"view(dtype) from {input.dtype} to {dt} is not supported by ember")


def _alias(input: Tensor) -> Tensor:
    return Reshape.apply(input, input._data.shape)


class Expand(Function):
    """Broadcast to a larger shape without copying (a strided view)."""

    raw = True
    view = True
    backward_name = "ExpandBackward0"

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return ctx.xp.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return g.sum_to_size(ctx.in_shape), None


def expand(input: Tensor, *sizes) -> Tensor:
    """``input`` broadcast to ``sizes`` (``-1`` keeps a dim)."""
    sizes = _shape_arg(sizes)
    ishape = input._data.shape
    if len(sizes) < len(ishape):
        raise RuntimeError(
            f"expand({_type(input)}{{{list(ishape)}}}, size={list(sizes)}): the number of sizes "
            f"provided ({len(sizes)}) must be greater or equal to the number of dimensions in "
            f"the tensor ({len(ishape)})")
    lead = len(sizes) - len(ishape)
    out = list(sizes)
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a "
                                   "leading, non-existing dimension 0")
            continue
        cur = ishape[i - lead]
        if s == -1:
            out[i] = cur
        elif cur != 1 and cur != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(ishape)}")
    out = tuple(out)
    if out == ishape and not input._requires_grad:
        return _alias(input)
    return Expand.apply(input, out)


def _type(t):
    from .._tensor import _type_name
    return _type_name(t)


class Permute(Function):
    raw = True
    view = True
    backward_name = "PermuteBackward0"

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return ctx.xp.transpose(a, dims)

    @staticmethod
    def backward(ctx, g):
        inv = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inv[d] = i
        return g.permute(tuple(inv)), None


def permute(input: Tensor, *dims) -> Tensor:
    """Reorder dimensions (a view)."""
    dims = _shape_arg(dims)
    nd = input._data.ndim
    if len(dims) != nd:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            f"length of the desired ordering of dimensions i.e. input.dim() = {nd} is not equal "
            f"to len(dims) = {len(dims)}")
    dims = tuple(_wrap_dim(d, nd) for d in dims)
    if len(set(dims)) != nd:
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(input, dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions (a view)."""
    nd = input._data.ndim
    d0, d1 = _wrap_dim(dim0, nd), _wrap_dim(dim1, nd)
    dims = list(range(nd))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(input, tuple(dims))


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    """Transpose a tensor of at most 2 dims."""
    nd = input._data.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return transpose(input, 0, 1) if nd == 2 else _alias(input)


def _T(self):
    nd = self._data.ndim
    return Permute.apply(self, tuple(range(nd - 1, -1, -1)))


def _mT(self):
    if self._data.ndim < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {self._data.ndim}-D tensor.")
    return transpose(self, -2, -1)


METHODS = {
    "reshape": reshape, "view": view, "expand": expand, "permute": permute,
    "transpose": transpose, "swapaxes": transpose, "swapdims": transpose, "t": t,
    "T": property(_T), "mT": property(_mT),
    "view_as": lambda self, other: view(self, other.shape),
    "reshape_as": lambda self, other: reshape(self, other.shape),
    "expand_as": lambda self, other: expand(self, other.shape),
}
