"""Shape and movement ops.  Views share storage with their input, as in PyTorch.

A view op sets ``view = True`` and returns a backend view of input 0 (NumPy basic
slicing, ``reshape`` without copy, ``transpose`` ...), so writes through either
tensor are seen by the other; ``autograd.views.link_view`` gives them one version counter and
records how to replay the view (see NOTE [ Views ] in autograd/views.py).
Ops that must copy (``flip``, ``roll``, ``repeat`` ...) always return fresh memory.
"""
from __future__ import annotations

import builtins
import warnings

from ..autograd.function import Function
from ..autograd.grad_mode import state
from ..autograd.views import link_view
from ..autograd.inplace import copy_into_out, make_inplace
from .._tensor import Tensor, Size, _wrap_dim, _make
from .._dtype import from_np, promote_types
from .._backend import xp_of
from ._util import check_broadcast, scalar_name
from .complex import conj
from . import _workspace as ws

__all__ = ["reshape", "view", "expand", "permute", "transpose", "swapaxes", "swapdims", "t",
           "flatten", "unflatten", "ravel", "squeeze", "unsqueeze", "movedim", "moveaxis",
           "broadcast_to", "broadcast_tensors", "broadcast_shapes", "repeat_interleave", "tile",
           "flip", "fliplr", "flipud", "roll", "rot90", "cat", "concat", "concatenate",
           "stack", "hstack", "vstack", "dstack", "row_stack", "column_stack", "atleast_1d",
           "atleast_2d", "atleast_3d", "split", "tensor_split", "chunk", "unbind", "narrow",
           "select", "tril", "triu", "diagonal", "diag", "diag_embed", "diagflat", "adjoint",
           "meshgrid", "cartesian_prod", "expand_copy", "combinations", "as_strided"]


# ---- argument helpers ------------------------------------------------------------------------
def _shape_arg(size) -> tuple:
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` shapes, as PyTorch does."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        size = size[0]
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = s.item()
        if isinstance(s, builtins.float) or isinstance(s, builtins.bool) or \
                not hasattr(s, "__index__"):
            raise TypeError(f"shape must be a sequence of ints, but got {type(s).__name__}")
        out.append(builtins.int(s))
    return tuple(out)


def _dims_arg(dims) -> tuple:
    """An int or a sequence of ints (or varargs holding either) as a tuple of ints."""
    if isinstance(dims, tuple) and len(dims) == 1:
        dims = dims[0]
    if isinstance(dims, (tuple, list, Size)):
        return tuple(builtins.int(d) for d in dims)
    return (builtins.int(dims),)


def _unique_dims(dims, nd: int) -> tuple:
    out = tuple(_wrap_dim(d, nd) for d in dims)
    for d in out:
        if out.count(d) > 1:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return out


def _inverse_perm(perm) -> tuple:
    """The permutation that undoes ``perm``."""
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d] = i
    return tuple(inv)


def _type(t):
    from .._tensor import _type_name
    return _type_name(t)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


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


# ---- reshape / view --------------------------------------------------------------------------
class Reshape(Function):
    """A reshape that is a view (``view`` / ``reshape`` when strides allow)."""

    raw = True
    view = True
    backward_name = "ViewBackward0"

    @staticmethod
    def forward(ctx, a, shape, must_view=False):
        ctx.in_shape = a.shape
        try:
            return ctx.xp.reshape(a, shape, copy=False)
        except ValueError:
            raise RuntimeError(
                "view size is not compatible with input tensor's size and stride (at least "
                "one dimension spans across two contiguous subspaces). Use .reshape(...) "
                "instead.") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None, None


class ReshapeCopy(Function):
    """A reshape whose strides force a copy (PyTorch's ``_unsafe_view`` of a clone)."""

    raw = True
    backward_name = "UnsafeViewBackward0"

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape = a.shape
        return ctx.xp.reshape(a, shape, copy=True)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None


def _viewable(a, shape) -> bool:
    if a.flags.c_contiguous:
        return True
    try:
        xp_of(a).reshape(a, shape, copy=False)
    except ValueError:
        return False
    return True


def _reshape(input: Tensor, shape: tuple) -> Tensor:
    if _viewable(input._data, shape):
        return Reshape.apply(input, shape)
    return ReshapeCopy.apply(input, shape)


def reshape(input: Tensor, *shape) -> Tensor:
    """The same elements in a new shape (a view when possible)."""
    return _reshape(input, infer_shape(_shape_arg(shape), input._data.size))


def view(input: Tensor, *shape) -> Tensor:
    """A view with a new shape; errors where a copy would be needed."""
    if len(shape) == 1 and (isinstance(shape[0], type) or (
            not isinstance(shape[0], (tuple, list, Size, builtins.int)) and
            not hasattr(shape[0], "__index__"))):  # a dtype, or int/float/bool as one
        return input.to(shape[0]) if input.dtype == shape[0] else _view_dtype(input, shape[0])
    shape = infer_shape(_shape_arg(shape), input._data.size)
    return Reshape.apply(input, shape, True)


def _view_dtype(input, dt):
    """``view(dtype)``: the same bytes read as ``dt`` (not differentiable, as in PyTorch); a
    different element size rescales the last dim, with c10's ``view_dtype`` checks."""
    from .._dtype import as_dtype
    dt = as_dtype(dt, "view")
    arr = input._data
    old, new = arr.dtype.itemsize, dt.itemsize
    if old != new:
        what = (f"to view {input.dtype.scalar_name} as {dt.scalar_name} (different element "
                "sizes)")
        if arr.ndim == 0:
            raise RuntimeError(f"self.dim() cannot be 0 {what}")
        strides = input.stride()
        if new > old:  # c10's order: last size, storage offset, last stride, other strides
            ratio = new // old
            if arr.shape[-1] % ratio:
                raise RuntimeError(f"self.size(-1) must be divisible by {ratio} {what}, but "
                                   f"got {arr.shape[-1]}")
            offset = _storage_offset(arr)
            if offset % ratio:
                raise RuntimeError(f"self.storage_offset() must be divisible by {ratio} "
                                   f"{what}, but got {offset}")
            if strides[-1] != 1:
                raise RuntimeError(f"self.stride(-1) must be 1 {what}, but got {strides[-1]}")
            for d, st in enumerate(strides[:-1]):
                if st % ratio:
                    raise RuntimeError(f"self.stride({d}) must be divisible by {ratio} {what}, "
                                       f"but got {st}")
        if strides[-1] != 1:
            raise RuntimeError(f"self.stride(-1) must be 1 {what}, but got {strides[-1]}")
    if arr.size == 0 and old != new:  # NumPy cannot view an empty non-contiguous array
        shape = arr.shape[:-1] + (arr.shape[-1] * old // new,)
        return _make(xp_of(arr).empty(shape, dt.np))
    return _make(arr.view(dt.np))


def _storage_offset(arr) -> int:
    """``arr``'s offset, in its elements, from the start of the array it views."""
    root = arr
    while hasattr(root, "base") and root.base is not None and hasattr(root.base, "dtype"):
        root = root.base
    ptr = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return ptr // arr.dtype.itemsize


def _alias(input: Tensor) -> Tensor:
    return Reshape.apply(input, input._data.shape)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (a view when strides allow)."""
    shape = input._data.shape
    if not shape:
        return _reshape(input, (1,))
    s, e = _wrap_dim(start_dim, len(shape)), _wrap_dim(end_dim, len(shape))
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    return _reshape(input, shape[:s] + (_numel(shape[s:e + 1]),) + shape[e + 1:])


def ravel(input: Tensor) -> Tensor:
    """The elements as a 1-D tensor (a view when contiguous)."""
    return _reshape(input, (input._data.size,))


def unflatten(input: Tensor, dim: int, sizes) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one entry may be -1)."""
    shape = input._data.shape
    d = _wrap_dim(dim, len(shape))
    sizes = _shape_arg((sizes,))
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    if sizes.count(-1) > 1:
        raise RuntimeError("unflatten: only one dimension can be inferred")
    known = _numel(s for s in sizes if s != -1)
    if (-1 in sizes and (known == 0 or shape[d] % known)) or (
            -1 not in sizes and known != shape[d]):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({shape[d]}) in the input tensor")
    sizes = infer_shape(sizes, shape[d])
    return _reshape(input, shape[:d] + sizes + shape[d + 1:])


# ---- dims: squeeze, unsqueeze, permute, transpose, movedim ------------------------------------
class Squeeze(Function):
    raw = True
    view = True
    backward_name = "SqueezeBackward0"

    @staticmethod
    def forward(ctx, a, dims):
        ctx.in_shape = a.shape
        return ctx.xp.squeeze(a, axis=dims)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None


class SqueezeDim(Squeeze):
    backward_name = "SqueezeBackward1"


class SqueezeDims(Squeeze):
    backward_name = "SqueezeBackward2"


def squeeze(input: Tensor, dim=None) -> Tensor:
    """Drop size-1 dims (all, one, or a tuple of them); other dims are kept."""
    shape = input._data.shape
    if dim is None:
        return Squeeze.apply(input, tuple(i for i, s in enumerate(shape) if s == 1))
    if isinstance(dim, (tuple, list)):
        dims = _unique_dims(dim, len(shape))
        return SqueezeDims.apply(input, tuple(d for d in dims if shape and shape[d] == 1))
    d = _wrap_dim(dim, len(shape))
    return SqueezeDim.apply(input, (d,) if shape and shape[d] == 1 else ())


class Unsqueeze(Function):
    raw = True
    view = True
    backward_name = "UnsqueezeBackward0"

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        return ctx.xp.expand_dims(a, dim)

    @staticmethod
    def backward(ctx, g):
        return squeeze(g, ctx.dim), None


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dim at ``dim``."""
    return Unsqueeze.apply(input, _wrap_dim(dim, input._data.ndim + 1))


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
        return Permute.apply(g, _inverse_perm(ctx.dims)), None


class Transpose(Permute):
    backward_name = "TransposeBackward0"


class TransposeT(Permute):
    backward_name = "TBackward0"


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


def _swap(nd, d0, d1) -> tuple:
    dims = list(range(nd))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return tuple(dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions (a view)."""
    nd = input._data.ndim
    d0, d1 = _wrap_dim(dim0, nd), _wrap_dim(dim1, nd)
    return Transpose.apply(input, _swap(nd, d0, d1) if nd else ())


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    """Transpose a tensor of at most 2 dims."""
    nd = input._data.ndim
    if nd > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {nd}D")
    return TransposeT.apply(input, (1, 0) if nd == 2 else tuple(range(nd)))


def _T(self):
    nd = self._data.ndim
    if nd == 0:
        warnings.warn("Tensor.T is deprecated on 0-D tensors. This function is the identity in "
                      "these cases.", UserWarning, stacklevel=2)
    elif nd != 2:
        warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their "
                      "shape is deprecated and it will throw an error in a future release. "
                      "Consider `x.mT` to transpose batches of matrices or `x.permute(*torch."
                      "arange(x.ndim - 1, -1, -1))` to reverse the dimensions of a tensor.",
                      UserWarning, stacklevel=2)
    return Permute.apply(self, tuple(range(nd - 1, -1, -1)))


def _mT(self):
    if self._data.ndim < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {self._data.ndim}-D tensor.")
    return transpose(self, -2, -1)


def adjoint(input: Tensor) -> Tensor:
    """The conjugate transpose of the last two dims (a plain transpose for real dtypes).

    For complex dtypes the conjugate is materialised (NOTE [ Complex tensors ] in
    ops/complex.py), so it is a new tensor where PyTorch gives a lazy-conj view."""
    t = _mT(input)
    return conj(t) if t._data.dtype.kind == "c" else t


def _H(self: Tensor) -> Tensor:
    t = _T(self)
    return conj(t) if t._data.dtype.kind == "c" else t


def movedim(input: Tensor, source, destination) -> Tensor:
    """Move dims ``source`` to positions ``destination`` (a view); others keep their order."""
    nd = input._data.ndim
    src = _dims_arg(source)
    dst = _dims_arg(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    src = tuple(_wrap_dim(d, nd) for d in src)
    dst = tuple(_wrap_dim(d, nd) for d in dst)
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(_dims_arg(source))})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` "
                           f"({list(_dims_arg(destination))})")
    order = [None] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    perm = tuple(o if o is not None else next(rest) for o in order)
    return Permute.apply(input, perm)


moveaxis = movedim


# ---- broadcasting ----------------------------------------------------------------------------
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
    return Expand.apply(input, tuple(out))


def broadcast_to(input: Tensor, size) -> Tensor:
    """``input`` broadcast to ``size`` (a view)."""
    return expand(input, size)


def broadcast_shapes(*shapes) -> Size:
    """The shape that all ``shapes`` broadcast to."""
    out = ()
    for k, s in enumerate(shapes):
        s = (s,) if isinstance(s, builtins.int) else tuple(s)
        for i in range(1, min(len(out), len(s)) + 1):
            if out[-i] != s[-i] and out[-i] != 1 and s[-i] != 1:
                raise RuntimeError(
                    f"Attempting to broadcast a dimension of length {s[-i]} at {-i}! Mismatching "
                    f"argument at index {k} had {s}; but expected shape should be broadcastable "
                    f"to {list(out)}")
        out = _merge_shapes(out, s)
    return Size(out)


def _merge_shapes(a: tuple, b: tuple) -> tuple:
    """The broadcast of two shapes already checked to be compatible."""
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + a
    pb = (1,) * (n - len(b)) + b
    return tuple(y if x == 1 else x for x, y in zip(pa, pb))


def _broadcast_shape(tensors) -> tuple:
    out = ()
    for t in tensors:
        s = t._data.shape
        if s != out:
            check_broadcast(out, s)
            out = _merge_shapes(out, s)
    return out


def broadcast_tensors(*tensors):
    """Every tensor expanded to their common broadcast shape (views)."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    shape = _broadcast_shape(tensors)
    return tuple(Expand.apply(t, shape) for t in tensors)


# ---- copies: repeat, flip, roll, rot90 -------------------------------------------------------
class Repeat(Function):
    raw = True
    backward_name = "RepeatBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, reps):
        padded = (1,) * (len(reps) - a.ndim) + a.shape
        ctx.meta = (a.shape, padded, reps)
        return ctx.xp.tile(a.reshape(padded), reps)

    @staticmethod
    def backward(ctx, g):
        shape, padded, reps = ctx.meta
        # out dim i is reps[i] copies of padded[i]: split it in two and sum the copies
        inter = []
        for r, s in zip(reps, padded):
            inter += [r, s]
        g = g.reshape(tuple(inter)).sum(tuple(range(0, 2 * len(reps), 2)))
        return g.reshape(shape), None


def _check_reps(reps, shape):
    if any(r < 0 for r in reps):
        padded = (1,) * (len(reps) - len(shape)) + tuple(shape)
        out = [r * s for r, s in zip(reps, padded)]
        raise RuntimeError(f"Trying to create tensor with negative dimension "
                           f"{next(o for o in out if o < 0)}: {out}")


def repeat(input: Tensor, *sizes) -> Tensor:
    """Tile ``input`` ``sizes[i]`` times along each dim (leading dims are added)."""
    reps = _shape_arg(sizes)
    if len(reps) < input._data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    _check_reps(reps, input._data.shape)
    return Repeat.apply(input, reps)


def tile(input: Tensor, dims) -> Tensor:
    """``repeat`` that pads ``dims`` with leading ones when shorter than the tensor's rank."""
    reps = _shape_arg((dims,))
    reps = (1,) * (input._data.ndim - len(reps)) + reps
    _check_reps(reps, input._data.shape)
    return Repeat.apply(input, reps)


def repeat_interleave(input: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:
    """Repeat each element ``repeats`` times (an int, or one count per element along ``dim``)."""
    from .index import index_select
    xp = _xp(input)
    if repeats is None:  # torch.repeat_interleave(counts): indices repeated by their counts
        counts = input._data
        if counts.ndim > 1:
            raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
        _check_counts(counts)
        return _make(xp.repeat(xp.arange(counts.shape[0], dtype="int64"), counts))
    if dim is None:
        input = flatten(input)
        dim = 0
    d = _wrap_dim(dim, input._data.ndim)
    if isinstance(repeats, Tensor) and repeats._data.size == 1 and repeats._data.ndim <= 1:
        _check_counts(repeats._data.reshape(1))
        repeats = builtins.int(repeats._data.reshape(()))
    if not isinstance(repeats, Tensor):
        r = builtins.int(repeats)
        if r < 0:
            raise RuntimeError("Repeats must be non-negative")
        shape = input._data.shape
        big = shape[:d + 1] + (r,) + shape[d + 1:]
        out = unsqueeze(input, d + 1).expand(big).clone()
        return flatten(out, d, d + 1)
    counts = repeats._data
    if counts.ndim != 1:
        raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
    _check_counts(counts)
    if counts.shape[0] != input._data.shape[d]:
        raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                           f"repeats.size(0) = {counts.shape[0]} and input.size({d}) = "
                           f"{input._data.shape[d]}")
    idx = xp.repeat(xp.arange(counts.shape[0], dtype="int64"), counts)
    return index_select(input, d, _make(idx))


def _check_counts(counts):
    if counts.dtype.kind not in "iu":
        raise NotImplementedError(f'"repeat_interleave_cpu" not implemented for '
                                  f"'{scalar_name(counts.dtype)}'")
    if counts.size and counts.min() < 0:
        raise RuntimeError("repeats can not be negative")


def _xp(t: Tensor):
    return xp_of(t._data)


class Flip(Function):
    raw = True
    backward_name = "FlipBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        if a.ndim == 0:
            return a.copy()
        return ctx.xp.flip(a, dims).copy()

    @staticmethod
    def backward(ctx, g):
        return Flip.apply(g, ctx.dims), None


def flip(input: Tensor, *dims_args, dims=None) -> Tensor:
    """Reverse the order of elements along ``dims`` (a copy, as in PyTorch)."""
    dims = _dims_arg(dims_args if dims is None else (dims,))
    return Flip.apply(input, _unique_dims(dims, input._data.ndim))


def fliplr(input: Tensor) -> Tensor:
    """Flip dim 1 (left/right)."""
    if input._data.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return Flip.apply(input, (1,))


def flipud(input: Tensor) -> Tensor:
    """Flip dim 0 (up/down)."""
    if input._data.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return Flip.apply(input, (0,))


class Roll(Function):
    raw = True
    backward_name = "RollBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, shifts, dims):
        ctx.meta = (shifts, dims)
        if dims is None:
            return ctx.xp.roll(a, shifts[0])
        return ctx.xp.roll(a, shifts, axis=dims)

    @staticmethod
    def backward(ctx, g):
        shifts, dims = ctx.meta
        return Roll.apply(g, tuple(-s for s in shifts), dims), None, None


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Rotate elements along ``dims`` by ``shifts``; no dims rolls the flattened tensor."""
    shifts = _dims_arg(shifts)
    nd = input._data.ndim
    if dims is None or isinstance(dims, (tuple, list)) and not dims:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                               "dims:0")
        return Roll.apply(input, shifts, None)
    dims = _dims_arg(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    if nd == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    return Roll.apply(input, shifts, tuple(_wrap_dim(d, nd) for d in dims))


class Rot90(Function):
    raw = True
    backward_name = "Rot90Backward0"

    @staticmethod
    def forward(ctx, a, k, dims):
        ctx.meta = (k, dims)
        return ctx.xp.ascontiguousarray(ctx.xp.rot90(a, k, axes=dims))

    @staticmethod
    def backward(ctx, g):
        k, dims = ctx.meta
        return Rot90.apply(g, -k, dims), None, None


def rot90(input: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane of ``dims`` (from dims[0] towards dims[1])."""
    dims = _dims_arg(dims)
    nd = input._data.ndim
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if nd < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {nd}")
    d0, d1 = _wrap_dim(dims[0], nd), _wrap_dim(dims[1], nd)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and "
                           f"dim1 = {d1}")
    return Rot90.apply(input, builtins.int(k) % 4, (d0, d1))


# ---- joining ---------------------------------------------------------------------------------
def _tensor_list(tensors, fn: str) -> list:
    if isinstance(tensors, Tensor):
        raise TypeError(f"{fn}(): argument 'tensors' (position 1) must be tuple of Tensors, "
                        "not Tensor")
    tensors = list(tensors)
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got "
                            f"{type(x).__name__}")
    return tensors


def _promoted(tensors):
    """The backend dtype all ``tensors`` promote to (None when they already agree)."""
    first = tensors[0]._data.dtype
    same = True
    for x in tensors:
        if x._data.dtype != first:
            same = False
            break
    if same:
        return None
    dt = tensors[0].dtype
    for x in tensors[1:]:
        dt = promote_types(dt, x.dtype)
    return dt.np


class Cat(Function):
    raw = True
    backward_name = "CatBackward0"

    @staticmethod
    def forward(ctx, *args):
        *arrays, dim, dt = args
        ctx.meta = (dim, [(a.shape, a.dtype) for a in arrays])
        kept = [a for a in arrays if a.ndim != 1 or a.shape[0] != 0]
        if not kept:
            return ctx.xp.empty((0,), dt or arrays[0].dtype)
        if dt is None:
            return ctx.xp.concatenate(kept, axis=dim)
        return ctx.xp.concatenate(kept, axis=dim, dtype=dt, casting="unsafe")

    @staticmethod
    def backward(ctx, g):
        dim, metas = ctx.meta
        live = [i for i, (s, _) in enumerate(metas) if len(s) != 1 or s[0] != 0]
        grads = [None] * (len(metas) + 2)
        if live:
            pieces = split(g, [metas[i][0][dim] for i in live], dim)
            for i, p in zip(live, pieces):
                if ctx.needs_input_grad[i]:
                    grads[i] = p if p._data.dtype == metas[i][1] else p.to(from_np(metas[i][1]))
        for i, (s, dt) in enumerate(metas):
            if grads[i] is None and ctx.needs_input_grad[i]:  # a skipped empty tensor
                grads[i] = _make(_xp(g).zeros(s, dt))
        return tuple(grads)


def cat(tensors, dim: int = 0, *, out=None) -> Tensor:
    """Join tensors along an existing dim (1-D empty tensors are skipped, as in PyTorch)."""
    tensors = _tensor_list(tensors, "cat")
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    ref = None
    for i, x in enumerate(tensors):
        s = x._data.shape
        if len(s) != 1 or s[0] != 0:
            if not s:
                raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be "
                                   "concatenated")
            if ref is None:
                ref = s
    dt = _promoted(tensors)
    if ref is None:
        return _finish(Cat.apply(*tensors, 0, dt), out)
    d = _wrap_dim(dim, len(ref))
    try:
        result = Cat.apply(*tensors, d, dt)
    except ValueError:  # the backend refused the shapes: raise PyTorch's error
        _cat_shape_error(tensors, ref, d)
        raise
    return _finish(result, out)


def _cat_shape_error(tensors, ref, d):
    for i, x in enumerate(tensors):
        s = x._data.shape
        if len(s) == 1 and s[0] == 0:
            continue
        if len(s) != len(ref):
            raise RuntimeError(f"Tensors must have same number of dimensions: got {len(ref)} and "
                               f"{len(s)}")
        for j in range(len(s)):
            if j != d and s[j] != ref[j]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {ref[j]} but got size {s[j]} for tensor "
                                   f"number {i} in the list.")


concat = concatenate = cat


def _finish(result: Tensor, out) -> Tensor:
    if out is None:
        return result
    return copy_into_out(out, result)


class Stack(Function):
    raw = True
    backward_name = "StackBackward0"

    @staticmethod
    def forward(ctx, *args):
        *arrays, dim, dt = args
        ctx.meta = (dim, [a.dtype for a in arrays])
        if dt is None:
            return ctx.xp.stack(arrays, axis=dim)
        return ctx.xp.stack(arrays, axis=dim, dtype=dt, casting="unsafe")

    @staticmethod
    def backward(ctx, g):
        dim, dts = ctx.meta
        grads = []
        for p, dt, need in zip(unbind(g, dim), dts, ctx.needs_input_grad):
            if need and p._data.dtype != dt:
                p = p.to(from_np(dt))
            grads.append(p if need else None)
        return tuple(grads) + (None, None)


def stack(tensors, dim: int = 0, *, out=None) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = _tensor_list(tensors, "stack")
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    s0 = tensors[0]._data.shape
    for i, x in enumerate(tensors):
        if x._data.shape != s0:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(s0)} "
                               f"at entry 0 and {list(x._data.shape)} at entry {i}")
    d = _wrap_dim(dim, len(s0) + 1)
    return _finish(Stack.apply(*tensors, d, _promoted(tensors)), out)


def atleast_1d(*tensors):
    """Each tensor viewed with at least one dim."""
    return _atleast(tensors, 1)


def atleast_2d(*tensors):
    """Each tensor viewed with at least two dims."""
    return _atleast(tensors, 2)


def atleast_3d(*tensors):
    """Each tensor viewed with at least three dims: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    return _atleast(tensors, 3)


def _atleast(tensors, n):
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return _atleast_one(tensors[0], n)
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    return tuple(_atleast_one(x, n) for x in tensors)


def _atleast_all(tensors, n) -> list:
    return [_atleast_one(x, n) for x in tensors]


def _atleast_one(x: Tensor, n: int) -> Tensor:
    s = x._data.shape
    if len(s) >= n:
        return x
    if n == 1 or len(s) == 0:
        return _reshape(x, (1,) * n)
    if n == 2:
        return unsqueeze(x, 0)
    return _reshape(x, (1, s[0], 1) if len(s) == 1 else s + (1,))


def hstack(tensors, *, out=None) -> Tensor:
    """Concatenate column-wise (dim 0 for 1-D tensors, else dim 1)."""
    ts = _atleast_all(_tensor_list(tensors, "hstack"), 1)
    return cat(ts, 0 if ts and ts[0]._data.ndim == 1 else 1, out=out)


def vstack(tensors, *, out=None) -> Tensor:
    """Concatenate row-wise after making every tensor at least 2-D."""
    return cat(_atleast_all(_tensor_list(tensors, "vstack"), 2), 0, out=out)


row_stack = vstack


def dstack(tensors, *, out=None) -> Tensor:
    """Concatenate depth-wise (dim 2) after making every tensor at least 3-D."""
    return cat(_atleast_all(_tensor_list(tensors, "dstack"), 3), 2, out=out)


def column_stack(tensors, *, out=None) -> Tensor:
    """Stack 1-D tensors as columns, concatenate 2-D ones along dim 1."""
    ts = [x if x._data.ndim > 1 else _reshape(x, (x._data.size, 1))
          for x in _tensor_list(tensors, "column_stack")]
    return cat(ts, 1, out=out)


# ---- basic slicing: select / slice / narrow --------------------------------------------------
class BasicIndex(Function):
    """``a[key]`` for a key of ints, slices, None and Ellipsis: a NumPy view."""

    raw = True
    view = True
    backward_name = "SliceBackward0"

    @staticmethod
    def forward(ctx, a, key):
        ctx.meta = (a.shape, key)
        return a[key]

    @staticmethod
    def backward(ctx, g):
        shape, key = ctx.meta
        return BasicIndexGrad.apply(g, shape, key), None


class Select(BasicIndex):
    backward_name = "SelectBackward0"


class Slice(BasicIndex):
    backward_name = "SliceBackward0"


class UnsqueezeIndex(BasicIndex):
    backward_name = "UnsqueezeBackward0"


class Alias(BasicIndex):
    backward_name = "AliasBackward0"


class BasicIndexGrad(Function):
    """Zeros of the indexed tensor's shape with ``g`` written at ``key`` (slicing's adjoint)."""

    raw = True
    backward_name = "SliceBackwardBackward0"

    @staticmethod
    def forward(ctx, g, shape, key):
        ctx.key = key
        z = ctx.xp.zeros(shape, g.dtype)
        z[key] = g
        return z

    @staticmethod
    def backward(ctx, gg):
        return BasicIndex.apply(gg, ctx.key), None, None


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """The slice at ``index`` along ``dim``, with that dim removed (a view)."""
    shape = input._data.shape
    if not shape:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _wrap_dim(dim, len(shape))
    i = builtins.int(index)
    if i < -shape[d] or i >= shape[d]:
        raise IndexError(f"select(): index {i} out of range for tensor of size {list(shape)} at "
                         f"dimension {d}")
    return Select.apply(input, (slice(None),) * d + (i, Ellipsis))


def narrow(input: Tensor, dim: int, start, length: int) -> Tensor:
    """Elements ``start .. start+length`` along ``dim`` (a view)."""
    shape = input._data.shape
    if not shape:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _wrap_dim(dim, len(shape))
    n = shape[d]
    start = builtins.int(start)
    length = builtins.int(length)
    if start < -n or start > n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but "
                         f"got {start})")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return Slice.apply(input, (slice(None),) * d + (slice(start, start + length), Ellipsis))


# ---- splitting -------------------------------------------------------------------------------
# NOTE [ Joining piece gradients ]
# split, chunk and unbind's backward writes each piece's gradient at the piece's own index of
# one input-shaped array from the workspace (NOTE [ Workspace ]): cat / stack allocated a fresh
# array, and on GPT-mini's q/k/v unbind (a (16, 64, 3, 128) float32 gradient) its page faults
# made the join ~0.9 ms per call (one thread).  Under create_graph or a mode the join stays an
# op (cat / stack), so it is differentiable and recorded; the compiled backward calls this
# formula as eager's engine does.  _JOIN_INTO = False keeps cat / stack (the tests compare).
_JOIN_INTO = True


class _Pieces(Function):
    """``a[key]`` for each of ``keys`` (basic-index views along ``dim``); see ``_piece_views``."""

    raw = True

    @staticmethod
    def forward(ctx, a, keys, dim):
        ctx.dim = dim
        ctx.keys = keys
        ctx.whole = (a.shape, a.dtype)
        return tuple(a[k] for k in keys)


def _join_into(ctx, grads):
    """The input's gradient with each piece's gradient written at its key (zeros where a piece
    got none) in one workspace array (NOTE [ Joining piece gradients ]); ``None`` where the
    gradients are not plain arrays of the input's dtype (the op then joins them)."""
    shape, dt = ctx.whole
    xp = ctx.xp
    arrays = []
    for g in grads:
        if g is None:
            arrays.append(None)
            continue
        a = g._data
        if a.dtype != dt or xp_of(a) is not xp:
            return None
        arrays.append(a)
    whole = _joined_already(arrays, ctx.keys, shape)
    if whole is not None:
        return _make(whole)
    out = ws.empty(xp, shape, dt)
    for k, a in zip(ctx.keys, arrays):
        out[k] = 0 if a is None else a
    return _make(out)


def _joined_already(arrays, keys, shape):
    """The contiguous ``shape`` array whose ``[key]`` views the piece gradients already are
    (an op wrote them into one array, NOTE [ Packed head gradients ] in ops/attention.py), or
    ``None``: nothing to copy then."""
    roots = []
    for a in arrays:
        if a is None:
            return None
        r = a
        while getattr(r, "base", None) is not None:  # the array that owns the memory
            r = r.base
        roots.append(r)
    root = roots[0]
    size = 1
    for n in shape:
        size *= n
    if any(r is not root for r in roots) or not hasattr(root, "flags") or \
            not root.flags.c_contiguous or root.dtype != arrays[0].dtype or root.size != size:
        return None
    whole = root.reshape(shape)
    for k, a in zip(keys, arrays):
        w = whole[k]
        if w.shape != a.shape or w.strides != a.strides or w.ctypes.data != a.ctypes.data:
            return None
    return whole


def _join_grads(ctx, grads, join):
    """(input gradient, None, None): written in place (``_join_into``) on a plain backward,
    else ``join(grads, dim)`` as an op."""
    if _JOIN_INTO and not (state.grad or state.intercept):
        out = _join_into(ctx, grads)
        if out is not None:
            return out, None, None
    return join(grads, ctx.dim), None, None


class Split(_Pieces):
    """Consecutive pieces along ``dim``; backward joins the gradients (NOTE [ Joining piece
    gradients ])."""

    backward_name = "SplitBackward0"

    @staticmethod
    def backward(ctx, *grads):
        return _join_grads(ctx, grads, cat)


class SplitWithSizes(Split):
    backward_name = "SplitWithSizesBackward0"


def _piece_views(cls, input: Tensor, keys: tuple, d: int, view_cls) -> tuple:
    """``cls.apply`` (a ``_Pieces``) with each output linked as a replayable ``view_cls`` view."""
    outs = cls.apply(input, keys, d)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for o, k in zip(outs, keys):
        link_view(o, input, view_cls, (k,), {}, multi=True)
    return outs


def _split_views(cls, input: Tensor, sizes, d: int):
    lead = (slice(None),) * d
    keys = []
    start = 0
    for s in sizes:
        keys.append(lead + (slice(start, start + s), Ellipsis))
        start += s
    return _piece_views(cls, input, tuple(keys), d, Slice)


def split(tensor: Tensor, split_size_or_sections, dim: int = 0):
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
    shape = tensor._data.shape
    if not shape:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _wrap_dim(dim, len(shape))
    n = shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [builtins.int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative "
                               f"entries, but got split_sizes={sizes}")
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
        return _split_views(SplitWithSizes, tensor, sizes, d)
    size = builtins.int(split_size_or_sections)
    if size < 0:
        raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
    if size == 0 and n != 0:
        raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension "
                           f"size of {n}")
    return _split_views(Split, tensor, _even_sizes(n, size), d)


def _even_sizes(n: int, size: int) -> list:
    if n == 0 or size == 0:
        return [0]
    return [size] * (n // size) + ([n % size] if n % size else [])


def chunk(input: Tensor, chunks: int, dim: int = 0):
    """At most ``chunks`` pieces of equal size (the last may be smaller) along ``dim``."""
    chunks = builtins.int(chunks)
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    shape = input._data.shape
    if not shape:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = _wrap_dim(dim, len(shape))
    n = shape[d]
    if n == 0:
        return _split_views(Split, input, [0] * chunks, d)
    return _split_views(Split, input, _even_sizes(n, -(-n // chunks)), d)


def tensor_split(input: Tensor, indices_or_sections, dim: int = 0):
    """Split into ``n`` near-equal sections or at the given indices (views)."""
    shape = input._data.shape
    if not shape:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    d = _wrap_dim(dim, len(shape))
    n = input.size(d)  # read as Tensor.size: tracked while a capture may go size-generic
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        ios = ios.item() if ios._data.ndim == 0 else ios.tolist()
    if isinstance(ios, (list, tuple)):
        bounds = [builtins.int(i) for i in ios]
        bounds = [min(max(b + n if b < 0 else b, 0), n) for b in bounds]
        starts = [0] + bounds
        ends = bounds + [n]
    else:
        k = builtins.int(ios)
        if k <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {k}")
        q, r = divmod(n, k)
        starts, ends, s = [], [], 0
        for i in range(k):
            size = q + (1 if i < r else 0)
            starts.append(s)
            ends.append(s + size)
            s += size
    lead = (slice(None),) * d
    return tuple(Slice.apply(input, lead + (slice(a, max(a, b)), Ellipsis))
                 for a, b in zip(starts, ends))


class Unbind(_Pieces):
    """The slices along ``dim``; backward joins the gradients (NOTE [ Joining piece
    gradients ])."""

    backward_name = "UnbindBackward0"

    @staticmethod
    def backward(ctx, *grads):
        return _join_grads(ctx, grads, stack)


def unbind(input: Tensor, dim: int = 0):
    """The slices along ``dim`` as a tuple of views."""
    shape = input._data.shape
    if not shape:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = _wrap_dim(dim, len(shape))
    lead = (slice(None),) * d
    keys = tuple(lead + (i, Ellipsis) for i in range(shape[d]))
    if not keys:
        return ()
    return _piece_views(Unbind, input, keys, d, Select)


# ---- triangles and diagonals -----------------------------------------------------------------
class _Triangle(Function):
    """``a`` with the elements outside one triangle of the last two dims zeroed.

    The op is its own adjoint (a fixed mask), so backward applies the same class to ``g``.
    """

    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    op = "tril"

    @staticmethod
    def forward(ctx, a, k):
        ctx.k = k
        return getattr(ctx.xp, ctx.op)(a, k)

    @staticmethod
    def backward(ctx, g):
        return type(ctx).apply(g, ctx.k), None


class Tril(_Triangle):
    backward_name = "TrilBackward0"


class Triu(_Triangle):
    backward_name = "TriuBackward0"
    op = "triu"


def _triangle(cls, input: Tensor, diagonal, out) -> Tensor:
    if input._data.ndim < 2:
        raise RuntimeError(f"{cls.op}: input tensor must have at least 2 dimensions")
    return _finish(cls.apply(input, builtins.int(diagonal)), out)


def tril(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    """Keep the lower triangle (``j - i <= diagonal``) of the last two dims, zero the rest."""
    return _triangle(Tril, input, diagonal, out)


def triu(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    """Keep the upper triangle (``j - i >= diagonal``) of the last two dims, zero the rest."""
    return _triangle(Triu, input, diagonal, out)


def _diag_view(xp, a, offset, d1, d2):
    """A writable view of a diagonal (NumPy marks its diagonal views read-only)."""
    v = xp.diagonal(a, offset, d1, d2)
    if a.flags.writeable and not v.flags.writeable:
        v.flags.writeable = True
    return v


class Diagonal(Function):
    raw = True
    view = True
    backward_name = "DiagonalBackward0"

    @staticmethod
    def forward(ctx, a, offset, d1, d2):
        ctx.meta = (a.shape, offset, d1, d2)
        return _diag_view(ctx.xp, a, offset, d1, d2)

    @staticmethod
    def backward(ctx, g):
        shape, offset, d1, d2 = ctx.meta
        return DiagEmbedTo.apply(g, shape, offset, d1, d2), None, None, None


class DiagonalCopy(Diagonal):
    view = False
    backward_name = "DiagonalBackward0_copy"

    @staticmethod
    def forward(ctx, a, offset, d1, d2):
        ctx.meta = (a.shape, offset, d1, d2)
        return ctx.xp.diagonal(a, offset, d1, d2).copy()


class DiagEmbedTo(Function):
    """Zeros of ``shape`` with ``g`` on the (offset, d1, d2) diagonal (``diagonal``'s adjoint)."""

    raw = True
    backward_name = "DiagEmbedBackward0"

    @staticmethod
    def forward(ctx, g, shape, offset, d1, d2):
        ctx.meta = (offset, d1, d2)
        z = ctx.xp.zeros(shape, g.dtype)
        _diag_view(ctx.xp, z, offset, d1, d2)[...] = g
        return z

    @staticmethod
    def backward(ctx, gg):
        offset, d1, d2 = ctx.meta
        return Diagonal.apply(gg, offset, d1, d2), None, None, None, None


def _diag_dims(nd, dim1, dim2):
    d1, d2 = _wrap_dim(dim1, nd), _wrap_dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return d1, d2


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the (dim1, dim2) planes, appended as the last dim (a view)."""
    d1, d2 = _diag_dims(input._data.ndim, dim1, dim2)
    return Diagonal.apply(input, builtins.int(offset), d1, d2)


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Tensor whose (dim1, dim2) planes have ``input``'s last dim on their diagonal."""
    shape = input._data.shape
    nd = len(shape) + 1
    d1, d2 = _diag_dims(nd, dim1, dim2)
    offset = builtins.int(offset)
    n = shape[-1] + abs(offset)
    out = list(shape[:-1])
    lo, hi = min(d1, d2), max(d1, d2)
    out.insert(lo, n)
    out.insert(hi, n)
    return DiagEmbedTo.apply(input, tuple(out), offset, d1, d2)


def diag(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    """1-D: a square matrix with ``input`` on a diagonal; 2-D: that diagonal, as a copy."""
    nd = input._data.ndim
    if nd == 1:
        return _finish(diag_embed(input, diagonal, 0, 1), out)
    if nd == 2:
        return _finish(DiagonalCopy.apply(input, builtins.int(diagonal), 0, 1), out)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {nd}D")


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """A 2-D tensor with the flattened ``input`` on diagonal ``offset``."""
    return diag_embed(flatten(input), offset, 0, 1)


class Unfold(Function):
    raw = True
    view = True
    backward_name = "UnfoldBackward0"

    @staticmethod
    def forward(ctx, a, d, size, step):
        ctx.meta = (a.shape, d, size, step)
        if a.ndim == 0:
            return a.reshape(1)
        n = (a.shape[d] - size) // step + 1
        shape = a.shape[:d] + (n,) + a.shape[d + 1:] + (size,)
        strides = a.strides[:d] + (a.strides[d] * step,) + a.strides[d + 1:] + (a.strides[d],)
        return ctx.xp.lib.stride_tricks.as_strided(a, shape, strides,
                                                   writeable=a.flags.writeable)

    @staticmethod
    def backward(ctx, g):
        shape, d, size, step = ctx.meta
        return UnfoldBackward.apply(g, shape, d, size, step), None, None, None


class UnfoldBackward(Function):
    """Adds each window of ``g`` back onto the positions it read (``unfold``'s adjoint)."""

    raw = True
    backward_name = "UnfoldBackwardBackward0"

    @staticmethod
    def forward(ctx, g, shape, d, size, step):
        ctx.meta = (d, size, step)
        xp = ctx.xp
        if len(shape) == 0:
            return g.reshape(())
        out = xp.zeros(shape, g.dtype)
        n = g.shape[d]
        pre = (slice(None),) * d
        for k in range(size):  # one strided slice-add per window offset
            out[pre + (slice(k, k + step * (n - 1) + 1, step),)] += g[..., k]
        return out

    @staticmethod
    def backward(ctx, gg):
        d, size, step = ctx.meta
        return unfold(gg, d, size, step), None, None, None, None


def unfold(input: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """A view of every ``size``-long slice of ``dimension`` taken ``step`` apart, the slices
    along a new last dim (``Tensor.unfold``)."""
    nd = input._data.ndim
    d = _wrap_dim(dimension, builtins.max(nd, 1))
    length = input._data.shape[d] if nd else 1
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is "
                           f"{size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    return Unfold.apply(input, d, builtins.int(size), builtins.int(step))


def meshgrid(*tensors, indexing=None) -> tuple:
    """Coordinate grids of 0-D/1-D tensors, each input expanded along its own dim
    (``torch.meshgrid``; ``indexing='xy'`` swaps the first two dims)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if not tensors:
        raise RuntimeError("meshgrid expects a non-empty TensorList")
    for t in tensors:
        if t.dim() > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                               f"got: {t}")
    if any(t.dtype != tensors[0].dtype for t in tensors):
        raise RuntimeError("meshgrid expects all tensors to have the same dtype")
    if indexing not in ("ij", "xy"):
        raise RuntimeError('torch.meshgrid: indexing must be one of "xy" or "ij", but '
                           f"received: {indexing}")
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0
    sizes = [tensors[i].numel() for i in order]
    grids = []
    for i, t in enumerate(tensors):
        shape = [1] * len(tensors)
        shape[order.index(i)] = -1
        grids.append(t.reshape(shape).expand(sizes))
    return tuple(grids)


def expand_copy(input: Tensor, size, *, implicit: bool = False) -> Tensor:
    """``input.expand(size)`` as a tensor of its own (not a view)."""
    return expand(input, size).clone()


def cartesian_prod(*tensors) -> Tensor:
    """Every combination of the 1-D tensors' elements, one per row (``itertools.product``)."""
    for t in tensors:
        if t.dim() != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([g.reshape(-1) for g in grids], dim=1)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """Length-``r`` combinations of a 1-D tensor's elements, one per row, as
    ``itertools.combinations`` (``combinations_with_replacement`` with ``with_replacement``)."""
    import itertools
    if input.dim() != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return input.new_empty((0,))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = [i for combo in pick(range(input.shape[0]), r) for i in combo]
    xp = xp_of(input._data)
    index = _make(xp.asarray(rows, dtype=xp.int64))
    # a gather of the chosen positions, so the gradient sums back over repeats
    return input.index_select(0, index).reshape(-1, r)


# ---- as_strided ------------------------------------------------------------------------------
def _storage_of(arr):
    """``arr``'s storage as a flat array of its dtype (the last array down its ``.base`` chain,
    through stride tricks' wrappers) and ``arr``'s offset in it, in elements."""
    root, obj = arr, arr
    while True:
        b = getattr(obj, "base", None)
        if b is None or b is obj:
            break
        if hasattr(b, "dtype") and hasattr(b, "strides"):
            root = b
        obj = b
    flat = xp_of(arr).ravel(root, order="K")  # (a view: an owner's memory is contiguous)
    if flat.dtype != arr.dtype:  # a dtype view (``x.view(torch.int32)``) reads it in its type
        flat = flat.view(arr.dtype)
    start = flat.__array_interface__["data"][0]
    return flat, (arr.__array_interface__["data"][0] - start) // arr.itemsize


def _positions(xp, size, stride, offset):
    """The storage position of each element of a strided geometry (an int64 array of ``size``)."""
    pos = xp.full(size, offset, dtype=xp.int64)
    for d, (n, st) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[d] = n
        pos = pos + xp.arange(n, dtype=xp.int64).reshape(shape) * st
    return pos


class AsStrided(Function):
    """A view of the input's storage with the given sizes, strides (in elements) and offset."""

    raw = True
    view = True
    backward_name = "AsStridedBackward0"

    @staticmethod
    def forward(ctx, a, size, stride, offset):
        flat, own = _storage_of(a)
        ctx.meta = (a.shape, tuple(st // a.itemsize for st in a.strides), own, size, stride,
                    offset)
        item = a.itemsize
        return ctx.xp.lib.stride_tricks.as_strided(flat[offset:], size,
                                                   tuple(st * item for st in stride),
                                                   writeable=a.flags.writeable)

    @staticmethod
    def backward(ctx, g):
        # PyTorch's AsStridedBackward0: the gradient summed onto the storage positions the
        # output read (overlapping strides add up), then read back in the input's geometry,
        # each position divided by how many input elements share it (an expanded input)
        in_shape, in_stride, own, size, stride, offset = ctx.meta
        xp = ctx.xp
        zeros = g.new_zeros(in_shape)
        if not zeros.numel() or not g.numel():
            return zeros, None, None, None
        out_pos = _positions(xp, size, stride, offset).reshape(-1)
        in_pos = _positions(xp, in_shape, in_stride, own).reshape(-1)
        lo = min(int(out_pos.min()), int(in_pos.min()))
        n = max(int(out_pos.max()), int(in_pos.max())) + 1 - lo
        storage = g.new_zeros((n,)).index_add(0, _make(out_pos - lo), g.reshape(-1))
        gi = storage.index_select(0, _make(in_pos - lo)).reshape(in_shape)
        count = xp.bincount(in_pos - lo, minlength=n)
        if count.max() > 1:
            gi = gi / _make(count[in_pos - lo].reshape(in_shape).astype(g._data.dtype))
        return gi, None, None, None


def _int_tuple(v, what: str, pos: int) -> tuple:
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"as_strided(): argument '{what}' (position {pos}) must be tuple of "
                        f"ints, not {type(v).__name__}")
    for i, e in enumerate(v):
        if isinstance(e, builtins.bool) or not hasattr(e, "__index__"):
            raise TypeError(f"as_strided(): argument '{what}' (position {pos}) must be tuple of "
                            f"ints, but found element of type {type(e).__name__} at pos {i}")
    return tuple(e.__index__() for e in v)


def as_strided(input: Tensor, size, stride, storage_offset=None) -> Tensor:
    """A view of ``input``'s storage with ``size``, ``stride`` (elements) and
    ``storage_offset`` (``None``: ``input``'s own), as ``torch.as_strided``."""
    size = _int_tuple(size, "size", 1)
    stride = _int_tuple(stride, "stride", 2)
    if storage_offset is not None and (isinstance(storage_offset, builtins.bool) or
                                       not hasattr(storage_offset, "__index__")):
        raise TypeError(f"as_strided(): argument 'storage_offset' (position 3) must be int, "
                        f"not {type(storage_offset).__name__}")
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    if any(st < 0 for st in stride):
        raise RuntimeError("as_strided: Negative strides are not supported at the moment, got "
                           f"strides: {list(stride)}")
    flat, own = _storage_of(input._data)
    offset = own if storage_offset is None else storage_offset.__index__()
    if offset < 0:
        raise RuntimeError(f"Tensor: invalid storage offset {offset}")
    if any(n < 0 for n in size):
        raise RuntimeError(f"Storage size calculation overflowed with sizes={list(size)} and "
                           f"strides={list(stride)}")
    item = input._data.itemsize
    if all(size):
        need = (offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1) * item
        if need > flat.size * item:
            raise RuntimeError(
                f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset "
                f"{offset}, and itemsize {item} requiring a storage size of {need} are out of "
                f"bounds for storage of size {flat.size * item}")
    elif offset > flat.size:  # (an empty view reads nothing: NumPy still needs its start)
        offset = flat.size
    return AsStrided.apply(input, size, stride, offset)


METHODS = {
    "reshape": reshape, "view": view, "expand": expand, "permute": permute,
    "transpose": transpose, "swapaxes": transpose, "swapdims": transpose, "t": t,
    "T": property(_T), "mT": property(_mT), "H": property(_H), "mH": property(adjoint),
    "adjoint": adjoint,
    "view_as": lambda self, other: view(self, other.shape),
    "reshape_as": lambda self, other: reshape(self, other.shape),
    "expand_as": lambda self, other: expand(self, other.shape),
    "flatten": flatten, "unflatten": unflatten, "ravel": ravel, "squeeze": squeeze,
    "unsqueeze": unsqueeze, "movedim": movedim, "moveaxis": movedim,
    "broadcast_to": broadcast_to, "repeat": repeat, "repeat_interleave": repeat_interleave,
    "tile": tile, "flip": flip, "fliplr": fliplr, "flipud": flipud, "roll": roll, "rot90": rot90,
    "split": split, "tensor_split": tensor_split, "chunk": chunk, "unbind": unbind,
    "narrow": narrow, "select": select, "tril": tril, "triu": triu, "diagonal": diagonal,
    "diag": diag, "diag_embed": diag_embed, "diagflat": diagflat, "unfold": unfold,
    "tril_": make_inplace(tril), "triu_": make_inplace(triu), "as_strided": as_strided,
}
