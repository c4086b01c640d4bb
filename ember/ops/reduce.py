"""Reductions, scans and selections over ``dim`` (int, tuple or None) with ``keepdim``.

Value-selecting ops (max/min with ``dim``, topk, sort, kthvalue, median, mode,
cummax) send their gradient back through ``_IndexPut``, a small private
scatter whose own backward is the matching gather, so higher derivatives stay
exact without depending on the indexing family.  Ops whose gradient is split
among ties (max/min without ``dim``, amax/amin) build the constant tie mask in
backward from the saved input and output arrays, as PyTorch does.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import math
import types
import warnings

from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._tensor import Tensor, _make
from .._backend import xp_of
from .._dtype import as_dtype, from_np, promote_types
from ._util import (wrap_dim, float_dtype, is_float, scalar_name, holomorphic, SumToSize,
                    plain)
from ..autograd.inplace import copy_into_out, make_inplace
from .movement import Expand, _inverse_perm, _reshape

__all__ = ["sum", "nansum", "mean", "nanmean", "prod", "var", "std", "var_mean", "std_mean",
           "max", "min", "amax", "amin", "argmax", "argmin", "aminmax", "logsumexp", "norm",
           "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "all", "any",
           "count_nonzero", "topk", "sort", "argsort", "msort", "kthvalue", "median",
           "nanmedian", "mode", "unique", "unique_consecutive", "sum_to_size", "return_types",
           "dist", "searchsorted", "bucketize", "diff", "trapezoid", "trapz",
           "cumulative_trapezoid", "bincount", "histc", "histogram", "isin", "quantile",
           "nanquantile", "cov", "corrcoef"]


# ---- return types ---------------------------------------------------------------------------

def _result_type(name: str, fields=("values", "indices")):
    """A named tuple printed like ``torch.return_types.<name>``."""
    base = collections.namedtuple(name, fields)

    def __repr__(self):
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
        return f"ember.return_types.{name}(\n{body})"
    return type(name, (base,), {"__slots__": (), "__repr__": __repr__,
                                "__module__": "ember.return_types"})


return_types = types.ModuleType("ember.return_types",
                                "Named tuples returned by (values, indices) reductions.")
# each type's fields; a type is built on first use (a namedtuple costs ~0.1 ms at import)
_RETURN_FIELDS = {n: ("values", "indices") for n in (
    "max", "min", "topk", "sort", "kthvalue", "median", "nanmedian", "mode", "cummax", "cummin")}
_RETURN_FIELDS.update(aminmax=("min", "max"), histogram=("hist", "bin_edges"))


def _return_type(name: str):
    """``return_types.<name>``, built once (the module's ``__getattr__``)."""
    if name not in _RETURN_FIELDS:
        raise AttributeError(f"module 'ember.return_types' has no attribute '{name}'")
    return vars(return_types).setdefault(name, _result_type(name, _RETURN_FIELDS[name]))


return_types.__getattr__ = _return_type
return_types.__dir__ = lambda: sorted(set(vars(return_types)) | set(_RETURN_FIELDS))


# ---- helpers --------------------------------------------------------------------------------

_ALL_DIMS = tuple(tuple(range(n)) for n in range(65))  # (NumPy arrays have at most 64 dims)


def _dims(dim, ndim: int) -> tuple:
    """Reduced dims as a sorted tuple (all dims for None or empty); () for a 0-d input."""
    if dim is None:
        return _ALL_DIMS[ndim]
    if dim.__class__ is builtins.int and -ndim <= dim < ndim:  # (the hot case: no wrap_dim)
        return (dim + ndim if dim < 0 else dim,)
    if isinstance(dim, (tuple, list)):
        ds = [wrap_dim(d, ndim) for d in dim]
        if len(set(ds)) != len(ds):
            seen = set()
            for d in ds:
                if d in seen:
                    raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
                seen.add(d)
        dims = tuple(sorted(ds)) if ds else tuple(range(ndim))
    else:
        dims = (wrap_dim(dim, ndim),)
    return dims if ndim else ()


def _keep_shape(shape, dims) -> tuple:
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _restore_dims(g: Tensor, shape, dims, keepdim: bool) -> Tensor:
    """Re-insert reduced dims (size 1) into ``g`` so it broadcasts against ``shape``."""
    if keepdim or not dims:
        return g
    return _reshape(g, _keep_shape(shape, dims))  # a valid shape: skip reshape's checks


def _broadcast_view(xp, d, shape):
    """``broadcast_to(d, shape)`` (a read-only stride-0 view), for a C-contiguous NumPy-type
    ``d`` with ``shape``'s rank (or 0-d) built directly: 0.3 us where ``broadcast_to``'s
    Python wrapper costs 2.3 us."""
    nd = getattr(xp, "ndarray", None)
    if nd is None or not isinstance(d, nd) or not d.flags.c_contiguous or \
            d.ndim and d.ndim != len(shape):
        return xp.broadcast_to(d, shape)
    if d.ndim:
        strides = tuple([0 if n == 1 and s != 1 else st
                         for n, s, st in zip(d.shape, shape, d.strides)])
    else:
        strides = (0,) * len(shape)
    v = nd(shape, d.dtype, d, 0, strides)
    v.flags.writeable = False
    return v


def _expand_back(g: Tensor, shape: tuple, dims, keepdim: bool) -> Tensor:
    """``g`` broadcast back to the reduced input's ``shape`` (PyTorch's ``sum_backward``)."""
    if not state.grad and not state.intercept:  # no graph, no mode: the same view, no nodes
        d = g._data
        if d.ndim and not keepdim and dims:
            d = d.reshape(_keep_shape(shape, dims))
        return plain(_broadcast_view(xp_of(d), d, shape))
    if g._data.ndim:  # (a 0-d ``g``, a full reduction, expands as it is: no reshape node)
        g = _restore_dims(g, shape, dims, keepdim)
    return Expand.apply(g, shape)  # ``shape`` is valid: no need for ``expand``'s checks


def _count(shape, dims) -> int:
    n = 1
    for d in dims:
        n *= shape[d]
    return n


def _np_dtype(dtype):
    return None if dtype is None else as_dtype(dtype).np


class _NoDim:
    """The default of ``prod``/``median``'s ``dim``: torch's overloads take no dim or an int,
    so an explicit ``dim=None`` is a TypeError there."""

    def __repr__(self):
        return "<no dim>"


_NO_DIM = _NoDim()


def _acc_dtype(a, dt, xp):
    """``dt`` if given, else the dtype PyTorch sums/multiplies ``a`` in (bool, int -> int64)."""
    if dt is not None:
        return dt
    dt = a.dtype
    if is_float(dt) or dt.kind == "i" and dt.itemsize == 8 or dt.kind == "c":
        return dt
    return xp.dtype("int64")


def _quiet(xp):
    """Silence the backend's floating-point warnings (PyTorch returns inf/nan silently)."""
    es = getattr(xp, "errstate", None)
    return es(divide="ignore", invalid="ignore", over="ignore") if es else contextlib.nullcontext()


def _wrap(arr, xp) -> Tensor:
    """A result that never carries a gradient (indices, masks, counts)."""
    t = _make(xp.asarray(arr))
    if state.inference:
        t._inference = True
    return t


def _const(arr) -> Tensor:
    return _make(arr)


def _cast_grad(g: Tensor, npd) -> Tensor:
    return g if g._data.dtype == npd else g.to(from_np(npd))


def _check_nonempty(op, a, dims, dim_given):
    """PyTorch's errors for reductions without an identity over an empty dim."""
    if a.size:
        return
    if not dim_given:
        raise RuntimeError(f"{op}(): Expected reduction dim to be specified for input.numel() "
                           "== 0. Specify the reduction dim with the 'dim' argument.")
    for d in dims:
        if a.shape[d] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")


def _moved_last(a, dims, xp):
    """``a`` with ``dims`` moved to the end and flattened into one: (kept..., N)."""
    rest = [d for d in range(a.ndim) if d not in dims]
    perm = rest + list(dims)
    moved = xp.transpose(a, perm)
    return moved.reshape(tuple(a.shape[d] for d in rest) + (-1,)), perm


def _positions(xp, n, ndim, axis):
    """``arange(n)`` laid along ``axis`` of an ``ndim``-d array (size 1 elsewhere)."""
    shape = [1] * ndim
    shape[axis] = n
    return xp.arange(n).reshape(shape)


def _neighbours(ndim, axis):
    """Keys ``(later, earlier)`` selecting elements 1.. and ..-1 along ``axis``."""
    lo = [slice(None)] * ndim
    hi = [slice(None)] * ndim
    lo[axis], hi[axis] = slice(1, None), slice(None, -1)
    return tuple(lo), tuple(hi)


def _full_index(xp, idx, axis):
    """Index arrays addressing ``idx`` (positions along ``axis``) in a full array."""
    return tuple(idx if d == axis else _positions(xp, n, idx.ndim, d)
                 for d, n in enumerate(idx.shape))


# ---- scatter/gather pair behind value-selecting reductions ----------------------------------

class _IndexPut(Function):
    """Zeros of ``shape`` with ``src`` put at ``idx`` along ``axis`` (the adjoint of gather)."""

    raw = True
    backward_name = "ScatterBackward0"

    @staticmethod
    def forward(ctx, src, idx, axis, shape, accumulate=False):
        ctx.meta = (idx, axis, accumulate)
        xp = ctx.xp
        out = xp.zeros(shape, src.dtype)
        if accumulate:
            xp.add.at(out, _full_index(xp, idx, axis), src)
        else:
            xp.put_along_axis(out, idx, src, axis)
        return out

    @staticmethod
    def backward(ctx, g):
        idx, axis, accumulate = ctx.meta
        return _Gather.apply(g, idx, axis, accumulate), None, None, None, None


class _Gather(Function):
    """``a`` read at ``idx`` along ``axis``."""

    raw = True
    backward_name = "GatherBackward0"

    @staticmethod
    def forward(ctx, a, idx, axis, accumulate=False):
        ctx.meta = (idx, axis, a.shape, accumulate)
        return ctx.xp.take_along_axis(a, idx, axis)

    @staticmethod
    def backward(ctx, g):
        idx, axis, shape, accumulate = ctx.meta
        return _IndexPut.apply(g, idx, axis, shape, accumulate), None, None, None


def _select_backward(ctx, g):
    """Gradient of a value-selecting op: ``g`` put back at the selected positions."""
    idx, axis, work_shape, in_shape, keep, accumulate = ctx.sel
    if keep is not None and tuple(g.shape) != keep:
        g = g.reshape(keep)
    gx = _IndexPut.apply(g, idx, axis, work_shape, accumulate)
    return gx.reshape(in_shape) if work_shape != in_shape else gx


class _Where0(Function):
    """``a`` with zeros where the constant ``mask`` is set (``masked_fill(mask, 0)``)."""

    raw = True
    backward_name = "MaskedFillBackward0"

    @staticmethod
    def forward(ctx, a, mask):
        ctx.mask = mask
        return ctx.xp.where(mask, a.dtype.type(0), a)

    @staticmethod
    def backward(ctx, g):
        return _Where0.apply(g, ctx.mask), None


class _AbsPow(Function):
    """``|a| ** q`` (used by p-norm gradients)."""

    raw = True
    backward_name = "PowBackward0"

    @staticmethod
    def forward(ctx, a, q):
        ctx.q = q
        ctx.save_for_backward(a)
        with _quiet(ctx.xp):
            return ctx.xp.abs(a) ** a.dtype.type(q)

    @staticmethod
    def backward(ctx, g):
        a, = ctx.saved_tensors
        q = ctx.q
        if q == 0:
            return g * 0, None
        sgn = _const(xp_of(a._data).sign(a._data))
        return g * q * sgn * _AbsPow.apply(a, q - 1), None


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with zeros where ``den == 0`` (``masked_fill`` as in PyTorch's formulas)."""
    d = den._data
    zero = d == 0
    if not zero.any():
        return num / den
    return _Where0.apply(num / (den + _const(zero.astype(d.dtype))), zero)


# ---- sum / mean ------------------------------------------------------------------------------

class Sum(Function):
    raw = True
    backward_name = "SumBackward1"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        ctx.meta = (a.shape, dims, keepdim, a.dtype)
        if dt is None and a.dtype.kind == "f" and a.dtype.itemsize > 2 and \
                isinstance(a, ctx.xp.ndarray):  # float32/64 sum in their own dtype (the hot
            return ctx.xp.add.reduce(a, axis=dims, keepdims=keepdim)  # case in one test)
        dt = _acc_dtype(a, dt, ctx.xp)
        if dt.kind == "V" and dt.name == "bfloat16":  # ml_dtypes adds in bfloat16 (1024 ones
            # sum to 256); ``kind`` first: a NumPy dtype's ``name`` is slow
            return ctx.xp.sum(a, axis=dims, keepdims=keepdim, dtype="float32").astype(dt)
        if isinstance(a, ctx.xp.ndarray):  # ``sum``'s own kernel, without its ~1.3 us wrapper
            return ctx.xp.add.reduce(a, axis=dims, keepdims=keepdim, dtype=dt)
        return ctx.xp.sum(a, axis=dims, keepdims=keepdim, dtype=dt)  # (a sparse array's sum)

    @staticmethod
    def backward(ctx, g):
        shape, dims, keepdim, in_dt = ctx.meta
        g = _cast_grad(_expand_back(g, shape, dims, keepdim), in_dt)
        return g, None, None, None


class SumAll(Sum):
    backward_name = "SumBackward0"


def sum(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Sum of elements over ``dim`` (all dims when None); integers and bool sum in int64."""
    dims = _dims(dim, input._data.ndim)
    dt = None if dtype is None else _np_dtype(dtype)
    return (SumAll if dim is None else Sum).apply(input, dims, keepdim, dt)


class Nansum(Function):
    raw = True
    backward_name = "NansumBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        ctx.meta = (a.shape, dims, keepdim, a.dtype)
        ctx.save_for_backward(a)
        dt = _acc_dtype(a, dt, ctx.xp)
        return ctx.xp.nansum(a, axis=dims, keepdims=keepdim, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        shape, dims, keepdim, in_dt = ctx.meta
        x, = ctx.saved_tensors
        xd = x._data
        keep = _const((xd == xd).astype(xd.dtype))
        return _cast_grad(_restore_dims(g, shape, dims, keepdim) * keep, in_dt), None, None, None


def nansum(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Sum treating NaN as zero."""
    dims = _dims(dim, input._data.ndim)
    return Nansum.apply(input, dims, keepdim, _np_dtype(dtype))


class Mean(Function):
    raw = True
    backward_name = "MeanBackward1"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        if dt is None:
            dt = a.dtype
            if dt.kind != "f" and not is_float(dt) and dt.kind != "c":  # (kind first: fast)
                raise RuntimeError(
                    "mean(): could not infer output dtype. Input dtype must be either a "
                    f"floating point or complex dtype. Got: {scalar_name(a.dtype)}")
        elif not is_float(dt) and dt.kind != "c":
            raise RuntimeError(
                "mean(): could not infer output dtype. Optional dtype must be either a "
                f"floating point or complex dtype. Got: {scalar_name(dt)}")
        n = _count(a.shape, dims)
        ctx.meta = (a.shape, dims, keepdim, n, a.dtype)
        if n == 0:
            out_shape = _keep_shape(a.shape, dims) if keepdim else tuple(
                s for i, s in enumerate(a.shape) if i not in dims)
            return ctx.xp.full(out_shape, float("nan"), dt)
        if dt.kind == "V" and dt.name == "bfloat16":  # accumulate in float32, as PyTorch
            return ctx.xp.mean(a, axis=dims, keepdims=keepdim, dtype="float32").astype(dt)
        if dt.kind == "f" and isinstance(a, ctx.xp.ndarray):  # NumPy's mean step by step,
            # without its ~2 us Python wrapper
            s = ctx.xp.add.reduce(a, axis=dims, keepdims=keepdim, dtype=dt)
            if type(s) is dt.type:  # a NumPy scalar: ``s / n`` in its own dtype (NumPy's
                # scalar path: 0.1 us, where an ``intp`` operand costs 1.7 us), as PyTorch's
                # ``sum.div_(numel)`` divides in float32/float64 (halves: in float64, rounded)
                return s / n if dt.itemsize > 2 else dt.type(s / ctx.xp.intp(n))
            return ctx.xp.true_divide(s, ctx.xp.intp(n), out=s, casting="unsafe")
        return ctx.xp.mean(a, axis=dims, keepdims=keepdim, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        shape, dims, keepdim, n, in_dt = ctx.meta
        if n == 0:
            return _const(xp_of(g._data).zeros(shape, in_dt)), None, None, None
        d = g._data
        if not state.grad and not state.intercept and d.dtype is in_dt and in_dt.kind == "f" \
                and in_dt.itemsize > 2:  # no graph, no mode: _expand_back's view divided on
            xp = xp_of(d)  # arrays, one tensor made (its ``/`` computes the same)
            if not d.ndim and type(d) is xp.ndarray:  # a full mean: g / n once, then a fill
                out = xp.empty(shape, in_dt)  # (the same quotient in every element: 1.4 us
                out.fill(xp.true_divide(d, float(n), dtype=in_dt))  # where the view's is 3.4)
                return plain(out), None, None, None
            if d.ndim and not keepdim and dims:
                d = d.reshape(_keep_shape(shape, dims))
            return plain(xp.true_divide(_broadcast_view(xp, d, shape), float(n), dtype=in_dt)), \
                None, None, None
        # PyTorch's ``grad.expand(shape) / numel``: a dense gradient, not a stride-0 view
        return _cast_grad(_expand_back(g, shape, dims, keepdim) / float(n), in_dt), None, None, None


class MeanAll(Mean):
    backward_name = "MeanBackward0"


def mean(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Arithmetic mean over ``dim`` (floating inputs, or a floating ``dtype``)."""
    dims = _dims(dim, input._data.ndim)
    dt = None if dtype is None else _np_dtype(dtype)
    return (MeanAll if dim is None else Mean).apply(input, dims, keepdim, dt)


def nanmean(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Mean of the non-NaN elements: ``nansum / count``, as PyTorch composes it."""
    a = input._data
    if not is_float(a.dtype):
        raise RuntimeError("nanmean(): expected input to have floating point or complex dtype "
                           f"but got {scalar_name(a.dtype)}")
    dims = _dims(dim, a.ndim)
    s = nansum(input, dim, keepdim, dtype=dtype)
    count = (a == a).sum(axis=dims, keepdims=keepdim).astype(s._data.dtype)
    return s / _const(xp_of(a).asarray(count))


# ---- prod --------------------------------------------------------------------------------------

def _prod_others_np(xd, dims, xp):
    """For every element, the product of the others in its reduced slice (O(n), zero-safe)."""
    moved, perm = _moved_last(xd, dims, xp)
    n = moved.shape[-1]
    left = xp.ones_like(moved)
    right = xp.ones_like(moved)
    if n > 1:
        left[..., 1:] = xp.cumprod(moved[..., :-1], axis=-1)
        right[..., :-1] = xp.flip(xp.cumprod(xp.flip(moved[..., 1:], -1), axis=-1), -1)
    others = (left * right).reshape(tuple(xd.shape[d] for d in perm))
    return xp.transpose(others, _inverse_perm(perm))


def _with_diag_one(xm: Tensor) -> Tensor:
    """(..., N) -> (..., N, N): row j is ``xm`` with element j replaced by 1 (differentiable)."""
    n = xm.shape[-1]
    xp = xp_of(xm._data)
    eye = xp.eye(n, dtype=xm._data.dtype)
    rows = xm.reshape(tuple(xm.shape[:-1]) + (1, n))
    return rows * _const(1 - eye) + _const(eye)


def _prod_others_graph(x: Tensor, dims) -> Tensor:
    """``_prod_others_np`` built from differentiable ops (for create_graph with zeros)."""
    shape = tuple(x.shape)
    rest = [d for d in range(len(shape)) if d not in dims]
    perm = tuple(rest + list(dims))
    moved = x.permute(perm) if shape else x
    xm = moved.reshape(tuple(shape[d] for d in rest) + (-1,))
    others = prod(_with_diag_one(xm), -1)
    others = others.reshape(tuple(shape[d] for d in perm))
    if not shape:
        return others
    return others.permute(_inverse_perm(perm))


class Prod(Function):
    raw = True
    backward_name = "ProdBackward1"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim, dt):
        ctx.meta = (a.shape, dims, keepdim, a.dtype)
        dt = _acc_dtype(a, dt, ctx.xp)
        out = ctx.xp.prod(a, axis=dims, keepdims=keepdim, dtype=dt)
        ctx.save_for_backward(a, out)
        return out

    @holomorphic
    def backward(ctx, g):
        shape, dims, keepdim, in_dt = ctx.meta
        x, out = ctx.saved_tensors
        g = _restore_dims(g, shape, dims, keepdim)
        xd = x._data
        if not (xd == 0).any():
            gx = g * _restore_dims(out, shape, dims, keepdim) / x
        elif not state.grad:
            gx = g * _const(_prod_others_np(xd, dims, xp_of(xd)))
        else:
            gx = g * _prod_others_graph(x, dims)
        return _cast_grad(gx, in_dt), None, None, None


class ProdAll(Prod):
    backward_name = "ProdBackward0"


def prod(input, dim=_NO_DIM, keepdim=False, *, dtype=None) -> Tensor:
    """Product of elements over one ``dim`` (all elements when not given)."""
    nd = input._data.ndim
    if dim is _NO_DIM:
        return ProdAll.apply(input, tuple(range(nd)), False, _np_dtype(dtype))
    if dim is None:
        raise TypeError("prod(): argument 'dim' must be int, not NoneType")
    if isinstance(dim, (tuple, list)) or isinstance(dim, builtins.float):
        raise TypeError(f"prod(): argument 'dim' must be int, not {type(dim).__name__}")
    d = wrap_dim(dim, nd)
    return Prod.apply(input, (d,) if nd else (), keepdim, _np_dtype(dtype))


# ---- var / std -------------------------------------------------------------------------------

def _var_args(input, dim, unbiased, correction, name):
    if isinstance(dim, builtins.bool):  # var(x, False): the legacy ``unbiased`` overload
        if unbiased is not None:
            raise TypeError(f"{name}() received an invalid combination of arguments")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}() received an invalid combination of arguments - got both "
                        "'unbiased' and 'correction'")
    if isinstance(dim, builtins.float):
        raise TypeError(f"{name}(): argument 'dim' must be tuple of ints, not float")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if not is_float(input._data.dtype) and input._data.dtype.kind != "c":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    return _dims(dim, input._data.ndim), correction


def _var_forward(xp, a, dims, correction, keepdim, name):
    """(var, mean, dof): two-pass variance, accumulated in float32 at least."""
    n = _count(a.shape, dims)
    dof = builtins.max(n - correction, 0)
    if dof <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly "
                      "less than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=4)
    acc = a if a.dtype.itemsize >= 4 else a.astype(xp.float32)
    with _quiet(xp):
        m = xp.sum(acc, axis=dims, keepdims=True) / n if n else xp.full(
            _keep_shape(a.shape, dims), float("nan"), acc.dtype)
        d = acc - m
        vdt = a.dtype
        if d.dtype.kind == "c":  # complex: the mean squared modulus, a real variance
            d = xp.abs(d)
            vdt = d.dtype
        v = xp.sum(d * d, axis=dims, keepdims=keepdim)
        v = xp.true_divide(v, dof) if dof else v / d.dtype.type(0)
    if not keepdim:
        m = m.reshape(v.shape)
    # the forward clamps N - correction at 0; PyTorch's backward does not
    return v.astype(vdt, copy=False), m.astype(a.dtype, copy=False), n - correction


def _var_backward(g, x, dims, keepdim, dof):
    """d var / d x = 2 (x - mean) / (N - correction)."""
    shape = tuple(x.shape)
    g = _restore_dims(g, shape, dims, keepdim)
    centred = x - x.mean(dims if dims else None, keepdim=True)
    if dof > 0:
        return g * (2.0 / dof) * centred
    with _quiet(xp_of(x._data)):  # inf * 0 gives nan silently, as in PyTorch
        return g * (2.0 / dof if dof else math.inf) * centred


def _std_backward(g, out, x, dims, keepdim, dof):
    return _var_backward(_safe_div(g, out * 2), x, dims, keepdim, dof)


def _mean_backward(g, shape, dims, keepdim):
    n = _count(shape, dims)
    return _restore_dims(g / n, shape, dims, keepdim).expand(shape)


class _VarStd(Function):
    """var/std over ``dims``, optionally with the mean as a second output (var_mean/std_mean).

    ``op`` names the op in the degrees-of-freedom warning; ``is_std`` takes the square root.
    """

    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    op = "var"
    is_std = False
    with_mean = False

    @staticmethod
    def forward(ctx, a, dims, correction, keepdim):
        v, m, dof = _var_forward(ctx.xp, a, dims, correction, keepdim, ctx.op)
        ctx.meta = (dims, keepdim, dof)
        if ctx.is_std:
            v = ctx.xp.sqrt(v)
            ctx.save_for_backward(a, v)
        else:
            ctx.save_for_backward(a)
        return (v, m) if ctx.with_mean else v

    @staticmethod
    def backward(ctx, g, gm=None):
        dims, keepdim, dof = ctx.meta
        if ctx.is_std:
            x, out = ctx.saved_tensors
            gx = _std_backward(g, out, x, dims, keepdim, dof)
        else:
            x, = ctx.saved_tensors
            gx = _var_backward(g, x, dims, keepdim, dof)
        if ctx.with_mean:
            gx = gx + _mean_backward(gm, tuple(x.shape), dims, keepdim)
        return gx, None, None, None


class Var(_VarStd):
    backward_name = "VarBackward0"


class Std(_VarStd):
    backward_name = "StdBackward0"
    op = "std"
    is_std = True


class VarMean(_VarStd):
    backward_name = "VarMeanBackward0"
    op = "var_mean"
    with_mean = True


class StdMean(_VarStd):
    backward_name = "StdMeanBackward0"
    op = "std_mean"
    is_std = True
    with_mean = True


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """Variance over ``dim``: sum((x - mean)^2) / max(N - correction, 0)."""
    dims, c = _var_args(input, dim, unbiased, correction, "var")
    return Var.apply(input, dims, c, keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """Standard deviation: ``sqrt(var)``."""
    dims, c = _var_args(input, dim, unbiased, correction, "std")
    return Std.apply(input, dims, c, keepdim)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var, mean)`` in one pass."""
    dims, c = _var_args(input, dim, unbiased, correction, "var_mean")
    return VarMean.apply(input, dims, c, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std, mean)`` in one pass."""
    dims, c = _var_args(input, dim, unbiased, correction, "std_mean")
    return StdMean.apply(input, dims, c, keepdim)


# ---- max / min / amax / amin / argmax / aminmax ---------------------------------------------

def _tie_grad(g: Tensor, x: Tensor, out: Tensor, dims, keepdim, nan_ties) -> Tensor:
    """``g`` shared evenly among the elements of ``x`` equal to their reduced value ``out``.

    The share (``mask / count``) is a constant built from the arrays, as PyTorch does;
    ``nan_ties`` counts NaN as equal to a NaN result.
    """
    xd, od = x._data, out._data
    if not keepdim and dims:
        keep = _keep_shape(xd.shape, dims)
        g, od = g.reshape(keep), od.reshape(keep)
    mask = xd == od
    if nan_ties:
        mask |= (xd != xd) & (od != od)
    with _quiet(xp_of(xd)):
        count = mask.sum(axis=dims, keepdims=True)
        return g * _const((mask / count).astype(xd.dtype))


class _TiedAll(Function):
    """Base of reductions of all elements to one of them (max/min/median without ``dim``).

    Forward saves (input, output); backward shares ``g`` evenly among the elements equal to
    the output, a NaN output counting every NaN, as PyTorch does.
    """

    raw = True

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        return _tie_grad(g, x, out, tuple(range(x.ndim)), True, True)


class _ExtremeAll(_TiedAll):
    """max()/min() over all elements; ties share the gradient evenly."""

    is_max = True

    @staticmethod
    def forward(ctx, a):
        op = "max" if ctx.is_max else "min"
        if a.dtype.kind == "c":
            raise NotImplementedError(f'"{op}_all" not implemented for \'{scalar_name(a.dtype)}\'')
        if a.size == 0:
            raise RuntimeError(f"{op}(): Expected reduction dim to be specified for "
                               "input.numel() == 0. Specify the reduction dim with the 'dim' "
                               "argument.")
        out = ctx.xp.max(a) if ctx.is_max else ctx.xp.min(a)
        ctx.save_for_backward(a, out)
        return out


class MaxAll(_ExtremeAll):
    backward_name = "MaxBackward1"


class MinAll(_ExtremeAll):
    backward_name = "MinBackward1"
    is_max = False


def _select_forward(ctx, a, axis, idx_keep, keepdim):
    """Values at ``idx_keep`` (keepdim-shaped) along ``axis``; records what backward needs."""
    xp = ctx.xp
    vals = xp.take_along_axis(a, idx_keep, axis)
    ctx.sel = (idx_keep, axis, a.shape, ctx.in_shape, idx_keep.shape, False)
    if not keepdim:
        vals = vals.squeeze(axis)
        idx_keep = idx_keep.squeeze(axis)
    return vals, idx_keep


def _as_1d(ctx, a):
    """0-d inputs are handled as 1-element vectors (and reshaped back by the caller)."""
    ctx.in_shape = a.shape
    return a.reshape(1) if a.ndim == 0 else a


def _finish(ctx, outs):
    """Back to 0-d for 0-d inputs; marks the indices (last output) non-differentiable."""
    if not ctx.in_shape:
        outs = tuple(o.reshape(()) for o in outs)
    ctx.mark_non_differentiable(outs[-1])
    return outs


class _ExtremeDim(Function):
    """max/min over one dim: (values, indices); the gradient goes to the selected index."""

    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    is_max = True

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        op = "max" if ctx.is_max else "min"
        if a.dtype.kind == "c":
            raise RuntimeError(f"{op}(): does not support complex input")
        a1 = _as_1d(ctx, a)
        if a1.shape[dim] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {dim} to have non-zero size.")
        xp = ctx.xp
        idx = (xp.argmax if ctx.is_max else xp.argmin)(a1, axis=dim, keepdims=True)
        return _finish(ctx, _select_forward(ctx, a1, dim, idx, keepdim or not ctx.in_shape))

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None, None


class MaxDim(_ExtremeDim):
    backward_name = "MaxBackward0"


class MinDim(_ExtremeDim):
    backward_name = "MinBackward0"
    is_max = False


def _extreme(input, dim, keepdim, other, out, is_max):
    name = "max" if is_max else "min"
    if isinstance(dim, Tensor) or other is not None:
        from . import elementwise
        fn = getattr(elementwise, "maximum" if is_max else "minimum")
        o = dim if other is None else other
        return fn(input, o) if out is None else fn(input, o, out=out)
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}() received an invalid combination of arguments - got "
                            "(keepdim=bool, )")
        return (MaxAll if is_max else MinAll).apply(input)
    if isinstance(dim, (tuple, list, builtins.float)):
        raise TypeError(f"{name}(): argument 'dim' must be int, not {type(dim).__name__}")
    d = wrap_dim(dim, input._data.ndim)
    v, i = (MaxDim if is_max else MinDim).apply(input, d, keepdim)
    return getattr(return_types, name)(v, i)


def max(input, dim=None, keepdim=False, *, other=None, out=None):
    """Largest element; with ``dim`` the ``(values, indices)`` pair; with a tensor, maximum."""
    return _extreme(input, dim, keepdim, other, out, True)


def min(input, dim=None, keepdim=False, *, other=None, out=None):
    """Smallest element; with ``dim`` the ``(values, indices)`` pair; with a tensor, minimum."""
    return _extreme(input, dim, keepdim, other, out, False)


class _AmaxAmin(Function):
    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    is_max = True

    @staticmethod
    def forward(ctx, a, dims, keepdim, dim_given):
        if a.dtype.kind == "c":
            raise NotImplementedError(f'"{"max" if ctx.is_max else "min"}_values_cpu" not '
                                      f"implemented for '{scalar_name(a.dtype)}'")
        _check_nonempty("amax" if ctx.is_max else "amin", a, dims, dim_given)
        ctx.meta = (dims, keepdim)
        out = (ctx.xp.max if ctx.is_max else ctx.xp.min)(a, axis=dims, keepdims=keepdim)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        dims, keepdim = ctx.meta
        x, out = ctx.saved_tensors
        return _tie_grad(g, x, out, dims, keepdim, False), None, None, None


class Amax(_AmaxAmin):
    backward_name = "AmaxBackward0"


class Amin(_AmaxAmin):
    backward_name = "AminBackward0"
    is_max = False


def _amax_amin(cls, input, dim, keepdim) -> Tensor:
    given = dim is not None and not (isinstance(dim, (tuple, list)) and len(dim) == 0)
    return cls.apply(input, _dims(dim, input._data.ndim), keepdim, given)


def amax(input, dim=(), keepdim=False) -> Tensor:
    """Maximum over ``dim`` (all dims when empty); ties share the gradient evenly."""
    return _amax_amin(Amax, input, dim, keepdim)


def amin(input, dim=(), keepdim=False) -> Tensor:
    """Minimum over ``dim`` (all dims when empty); ties share the gradient evenly."""
    return _amax_amin(Amin, input, dim, keepdim)


def _arg_extreme(input, dim, keepdim, is_max):
    op = "argmax" if is_max else "argmin"
    a = input._data
    xp = xp_of(a)
    if a.dtype.kind in "bc":
        kind = "bool" if a.dtype.kind == "b" else "complex"
        raise RuntimeError(f"{op}(): does not support {kind} input")
    fn = xp.argmax if is_max else xp.argmin
    if dim is None:
        if a.size == 0:
            raise IndexError(f"{op}(): Expected reduction dim to be specified for "
                             "input.numel() == 0.")
        r = fn(a.reshape(-1))
        if keepdim:
            r = xp.asarray(r).reshape((1,) * a.ndim)
        return _wrap(xp.asarray(r, dtype=xp.int64), xp)
    d = wrap_dim(dim, a.ndim)
    if a.ndim == 0:
        return _wrap(xp.zeros((), xp.int64), xp)
    if a.shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
    return _wrap(xp.asarray(fn(a, axis=d, keepdims=keepdim), dtype=xp.int64), xp)


def argmax(input, dim=None, keepdim=False) -> Tensor:
    """Index of the (first) maximum, over the flattened input when ``dim`` is None."""
    return _arg_extreme(input, dim, keepdim, True)


def argmin(input, dim=None, keepdim=False) -> Tensor:
    """Index of the (first) minimum, over the flattened input when ``dim`` is None."""
    return _arg_extreme(input, dim, keepdim, False)


class Aminmax(Function):
    raw = True
    backward_name = "AminmaxBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        if a.dtype.kind == "c":
            raise NotImplementedError(f"\"aminmax_cpu\" not implemented for "
                                      f"'{scalar_name(a.dtype)}'")
        if a.size == 0 and (not dims or builtins.any(a.shape[d] == 0 for d in dims)):
            raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as "
                               "the operation has no identity.")
        xp = ctx.xp
        lo = xp.min(a, axis=dims, keepdims=keepdim)
        hi = xp.max(a, axis=dims, keepdims=keepdim)
        ctx.meta = (dims, keepdim)
        ctx.save_for_backward(a, lo, hi)
        return lo, hi

    @staticmethod
    def backward(ctx, glo, ghi):
        dims, keepdim = ctx.meta
        x, lo, hi = ctx.saved_tensors
        return (_tie_grad(glo, x, lo, dims, keepdim, False)
                + _tie_grad(ghi, x, hi, dims, keepdim, False)), None, None


def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` over one ``dim`` (all elements when None)."""
    nd = input._data.ndim
    if dim is None:
        dims = tuple(range(nd))
        if keepdim:
            lo, hi = Aminmax.apply(input, dims, True)
            return return_types.aminmax(lo, hi)
    else:
        d = wrap_dim(dim, nd)
        dims = (d,) if nd else ()
    return return_types.aminmax(*Aminmax.apply(input, dims, keepdim))


# ---- logsumexp / norms -----------------------------------------------------------------------

class Logsumexp(Function):
    raw = True
    backward_name = "LogsumexpBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        xp = ctx.xp
        ctx.meta = (dims, keepdim)
        x = a.astype(float_dtype(a.dtype), copy=False)
        if _count(x.shape, dims) == 0:
            shape = _keep_shape(x.shape, dims) if keepdim else _squeeze_shape(x.shape, dims)
            out = xp.full(shape, -math.inf, x.dtype)
        else:
            m = xp.max(x, axis=dims, keepdims=True)
            # shift by the max for stability; slices whose max is +-inf stay unshifted
            m = xp.where(xp.isfinite(m), m, x.dtype.type(0))
            with _quiet(xp):
                out = xp.log(xp.sum(xp.exp(x - m), axis=dims, keepdims=True)) + m
            if not keepdim:
                out = out.reshape(_squeeze_shape(x.shape, dims))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        dims, keepdim = ctx.meta
        x, out = ctx.saved_tensors
        shape = tuple(x.shape)
        g = _restore_dims(g, shape, dims, keepdim)
        out = _restore_dims(out, shape, dims, keepdim)
        if xp_of(out._data).isfinite(out._data).all():
            return g * (x - out).exp(), None, None
        with _quiet(xp_of(out._data)):  # -inf - -inf: NaN, silently as in PyTorch
            return g * (x - out).exp(), None, None


def _squeeze_shape(shape, dims) -> tuple:
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def logsumexp(input, dim, keepdim=False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, computed stably (shifted by the max)."""
    if dim is None:
        raise TypeError("logsumexp(): argument 'dim' must be tuple of ints, not NoneType")
    return Logsumexp.apply(input, _dims(dim, input._data.ndim), keepdim)


class VectorNorm(Function):
    raw = True
    backward_name = "LinalgVectorNormBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, ord, dims, keepdim):
        xp = ctx.xp
        ctx.meta = (ord, dims, keepdim)
        x = a
        if a.dtype.kind == "c":  # the norm of the moduli, a real result
            a = xp.abs(a)
        with _quiet(xp):
            if ord == 2:
                out = xp.sqrt(xp.sum(a * a, axis=dims, keepdims=keepdim))
            elif ord == 1:
                out = xp.sum(xp.abs(a), axis=dims, keepdims=keepdim)
            elif ord == math.inf:
                out = xp.max(xp.abs(a), axis=dims, keepdims=keepdim)
            elif ord == -math.inf:
                out = xp.min(xp.abs(a), axis=dims, keepdims=keepdim)
            elif ord == 0:
                out = xp.sum(a != 0, axis=dims, keepdims=keepdim).astype(a.dtype)
            else:
                p = a.dtype.type(ord)
                s = xp.sum(xp.abs(a) ** p, axis=dims, keepdims=keepdim)
                out = s ** (a.dtype.type(1) / p)
        out = xp.asarray(out, dtype=a.dtype)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        ord, dims, keepdim = ctx.meta
        x, norm = ctx.saved_tensors
        if ord == 0:  # piecewise constant (PyTorch returns no gradient at all)
            return _const(xp_of(x._data).zeros(x._data.shape, x._data.dtype)), None, None, None
        xd = x._data
        xp = xp_of(xd)
        shape = xd.shape
        g = _restore_dims(g, shape, dims, keepdim)
        norm = _restore_dims(norm, shape, dims, keepdim)
        if xd.dtype.kind == "c":  # z / |z| (0 at 0) plays sign's part
            with _quiet(xp):
                ax = xp.abs(xd)
                sgn = _const(xp.where(ax == 0, 0, xd / ax).astype(xd.dtype))
        else:
            sgn = _const(xp.sign(xd))
        if ord == 1:
            gx = g * sgn
        elif ord == 2:
            gx = g * _safe_div(x, norm)
        elif math.isinf(ord):
            absx = xp.abs(xd)
            nd = norm._data
            mask = (absx == nd) | (absx != absx)
            count = mask.sum(axis=dims, keepdims=True)
            gx = sgn * _const(mask.astype(xd.dtype)) * (g / _const(count.astype(xd.dtype)))
        elif ord < 1:
            scaled = sgn * _Where0.apply(_AbsPow.apply(x, ord - 1), xd == 0)
            gx = scaled * g * _AbsPow.apply(norm, 1 - ord)
        else:
            scaled = sgn * _AbsPow.apply(x, ord - 1) if ord < 2 else x * _AbsPow.apply(x, ord - 2)
            gx = scaled * _safe_div(g, _AbsPow.apply(norm, ord - 1))
        return gx, None, None, None


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """``linalg.vector_norm``: ``sum(|x|^ord)^(1/ord)`` (inf: max |x|, 0: count of nonzeros)."""
    if isinstance(ord, str) or not isinstance(ord, (builtins.int, builtins.float)):
        raise TypeError("linalg_vector_norm(): argument 'ord' (position 2) must be Number, not "
                        f"{type(ord).__name__}")
    a = x._data
    if not is_float(a.dtype) and a.dtype.kind != "c":
        raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor as "
                           f"input. Got {scalar_name(a.dtype)}")
    if dtype is not None and dtype.np != a.dtype:
        if promote_types(from_np(a.dtype), dtype) is not dtype:
            raise RuntimeError(f"linalg.vector_norm: the dtype of the input "
                               f"({scalar_name(a.dtype)}) should be convertible without narrowing "
                               "to the specified dtype "
                               f"({scalar_name(dtype.np)})")
        x = x.to(dtype)
        a = x._data
    dims = _dims(dim, a.ndim)
    if math.isinf(ord) and a.size == 0:
        what = "-inf" if ord < 0 else "inf"
        if dim is None:
            raise RuntimeError(f"linalg.vector_norm cannot compute the {what} norm on an empty "
                               "tensor because the operation does not have an identity")
        for d in dims:
            if a.shape[d] == 0:
                raise RuntimeError(f"linalg.vector_norm cannot compute the {what} norm on the "
                                   f"dimension {d}because this dimension is empty and the "
                                   "operation does not have an identity")
    return VectorNorm.apply(x, float(ord), dims, keepdim)


def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None) -> Tensor:
    """``torch.norm``: vector norms (``'fro'`` is the 2-norm); ``'nuc'`` via ``linalg``."""
    if isinstance(p, str):
        ndim = len(dim) if isinstance(dim, (tuple, list)) else 1
        if p == "fro" and (dim is None or ndim <= 2):
            result = vector_norm(input, 2, dim, keepdim, dtype=dtype)
        else:
            result = _matrix_norm(input, p, dim, keepdim, dtype)
    else:
        result = vector_norm(input, 2 if p is None else p, dim, keepdim, dtype=dtype)
    if out is not None:
        return copy_into_out(out, result)
    return result


def _matrix_norm(input, p, dim, keepdim, dtype):
    if p not in ("fro", "nuc"):
        raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
    if input._data.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 "
                           "dimensions.")
    dims = tuple(range(input._data.ndim)) if dim is None else tuple(dim)
    if len(dims) != 2:
        raise RuntimeError("linalg.matrix_norm: dim must be a 2-tuple. Got "
                           + " ".join(str(d) for d in dims))
    import importlib
    try:
        fn = importlib.import_module("ember.linalg").matrix_norm
    except (ImportError, AttributeError):
        raise NotImplementedError("norm(p='nuc') needs ember.linalg.matrix_norm") from None
    return fn(input, p, dims, keepdim, dtype=dtype)


# ---- scans -----------------------------------------------------------------------------------

class Cumsum(Function):
    raw = True
    backward_name = "CumsumBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, axis, dt):
        dt = _acc_dtype(a, dt, ctx.xp)
        ctx.meta = (axis, a.dtype)
        if a.ndim == 0:
            return a.astype(dt)
        return ctx.xp.cumsum(a, axis=axis, dtype=dt)

    @staticmethod
    def backward(ctx, g):
        axis, in_dt = ctx.meta
        if g.ndim == 0:
            return _cast_grad(g, in_dt), None, None
        return _cast_grad(_ReverseCumsum.apply(g, axis), in_dt), None, None


class _ReverseCumsum(Function):
    """Sums from each position to the end of ``axis`` (the adjoint of cumsum)."""

    raw = True
    backward_name = "FlipBackward0"

    @staticmethod
    def forward(ctx, a, axis):
        ctx.axis = axis
        xp = ctx.xp
        return xp.flip(xp.cumsum(xp.flip(a, axis), axis=axis), axis)

    @staticmethod
    def backward(ctx, g):
        return Cumsum.apply(g, ctx.axis, None), None


def _scan_dim(input, dim, name) -> int:
    if dim is None or isinstance(dim, (tuple, list, builtins.float)):
        raise TypeError(f"{name}(): argument 'dim' must be int, not {type(dim).__name__}")
    return wrap_dim(dim, input._data.ndim)


def cumsum(input, dim, *, dtype=None) -> Tensor:
    """Running sum along ``dim``; integers and bool accumulate in int64."""
    return Cumsum.apply(input, _scan_dim(input, dim, "cumsum"), _np_dtype(dtype))


def _cumprod_zero_grad_np(xd, gd, axis, xp):
    """Cumprod's gradient for inputs with zeros, O(n) (PyTorch's first-zero case split)."""
    x = xp.moveaxis(xd, axis, -1)
    g = xp.moveaxis(gd, axis, -1)
    zeros = x == 0
    nz = xp.cumsum(zeros, axis=-1)
    before = nz == 0
    first = zeros & (nz == 1)
    safe = xp.where(before, x, x.dtype.type(1))
    out = xp.cumprod(safe, axis=-1)
    w = xp.where(before, g * out, x.dtype.type(0))
    rev = xp.flip(xp.cumsum(xp.flip(w, -1), axis=-1), -1)
    grad = xp.where(before, rev / safe, x.dtype.type(0))
    # at the first zero: prod(x before it) * sum_{i >= z} g_i * prod_{z < k <= i} x_k
    after = xp.where((nz >= 1) & ~first, x, x.dtype.type(1))
    tail = xp.sum(xp.where(nz >= 1, g * xp.cumprod(after, axis=-1), x.dtype.type(0)),
                  axis=-1, keepdims=True)
    head = xp.prod(safe, axis=-1, keepdims=True)
    grad = xp.where(first, head * tail, grad)
    return xp.moveaxis(grad, -1, axis)


def _cumprod_zero_grad_graph(g: Tensor, x: Tensor, axis: int) -> Tensor:
    """d cumprod: grad_j = sum_{i >= j} g_i prod_{k <= i, k != j} x_k, from differentiable ops."""
    nd = x.ndim
    perm = [d for d in range(nd) if d != axis] + [axis]
    xm = x.permute(tuple(perm))
    gm = g.permute(tuple(perm))
    n = xm.shape[-1]
    xp = xp_of(x._data)
    prods = cumprod(_with_diag_one(xm), -1)           # [..., j, i]
    upper = _const(xp.triu(xp.ones((n, n), x._data.dtype)))   # i >= j
    gm = gm.reshape(tuple(gm.shape[:-1]) + (1, n))
    return sum(prods * (gm * upper), -1).permute(_inverse_perm(perm))


class Cumprod(Function):
    raw = True
    backward_name = "CumprodBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, axis, dt):
        dt = _acc_dtype(a, dt, ctx.xp)
        ctx.meta = (axis, a.dtype)
        out = a.astype(dt) if a.ndim == 0 else ctx.xp.cumprod(a, axis=axis, dtype=dt)
        ctx.save_for_backward(a, out)
        return out

    @holomorphic
    def backward(ctx, g):
        axis, in_dt = ctx.meta
        x, out = ctx.saved_tensors
        xd = x._data
        if xd.ndim == 0 or xd.shape[axis] <= 1:
            return _cast_grad(g, in_dt), None, None
        if not (xd == 0).any():
            gx = _ReverseCumsum.apply(g * out, axis) / x
        elif not state.grad:
            gx = _const(_cumprod_zero_grad_np(xd, g._data.astype(xd.dtype), axis, xp_of(xd)))
        else:
            gx = _cumprod_zero_grad_graph(g, x, axis)
        return _cast_grad(gx, in_dt), None, None


def cumprod(input, dim, *, dtype=None) -> Tensor:
    """Running product along ``dim``."""
    return Cumprod.apply(input, _scan_dim(input, dim, "cumprod"), _np_dtype(dtype))


class _CumExtreme(Function):
    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    is_max = True

    @staticmethod
    def forward(ctx, a, axis):
        if a.dtype.kind == "c":
            raise NotImplementedError(f'"{"cummax" if ctx.is_max else "cummin"}_cpu" not '
                                      f"implemented for '{scalar_name(a.dtype)}'")
        a1 = _as_1d(ctx, a)
        xp = ctx.xp
        vals = (xp.maximum if ctx.is_max else xp.minimum).accumulate(a1, axis=axis)
        # the latest position that reached the running extreme (NaN sticks, as in PyTorch)
        hit = (a1 == vals) | (a1 != a1)
        pos = _positions(xp, a1.shape[axis], a1.ndim, axis)
        idx = xp.maximum.accumulate(xp.where(hit, pos, 0), axis=axis)
        ctx.sel = (idx, axis, a1.shape, ctx.in_shape, None, True)
        return _finish(ctx, (vals, idx))

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None


class Cummax(_CumExtreme):
    backward_name = "CummaxBackward0"


class Cummin(_CumExtreme):
    backward_name = "CumminBackward0"
    is_max = False


def cummax(input, dim):
    """Running maximum along ``dim`` and the index where it was reached."""
    return return_types.cummax(*Cummax.apply(input, _scan_dim(input, dim, "cummax")))


def cummin(input, dim):
    """Running minimum along ``dim`` and the index where it was reached."""
    return return_types.cummin(*Cummin.apply(input, _scan_dim(input, dim, "cummin")))


class Logcumsumexp(Function):
    raw = True
    backward_name = "LogcumsumexpBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, axis):
        if not is_float(a.dtype):
            raise NotImplementedError(f"\"logcumsumexp_out_cpu\" not implemented for "
                                      f"'{scalar_name(a.dtype)}'")
        ctx.axis = axis
        out = a.copy() if a.ndim == 0 else ctx.xp.logaddexp.accumulate(a, axis=axis)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        if x.ndim == 0 or x.numel() == 0:
            return g, None
        axis = ctx.axis
        xp = xp_of(out._data)
        # grad_j = sum_{i >= j} g_i exp(x_j - out_i)
        if not state.grad:
            return _const(_logcumsumexp_grad_np(x._data, out._data, g._data, axis, xp)), None
        # differentiable form, shifted by a per-slice constant c
        c = xp.take(out._data, [-1], axis=axis)
        c = _const(xp.where(xp.isfinite(c), c, c.dtype.type(0)))
        return (x - c).exp() * _ReverseCumsum.apply(g * (c - out).exp(), axis), None


def _logcumsumexp_grad_np(x, out, g, axis, xp):
    """Logcumsumexp's gradient in log space, split by the sign of ``g`` (no overflow)."""
    res = xp.zeros(x.shape, x.dtype)
    with _quiet(xp):
        for sign in (1, -1):
            lg = xp.where(sign * g > 0, xp.log(xp.abs(g)), x.dtype.type(-math.inf))
            r = xp.flip(xp.logaddexp.accumulate(xp.flip(lg - out, axis), axis=axis), axis)
            res += sign * xp.exp(r + x)
    return res


def logcumsumexp(input, dim) -> Tensor:
    """``log(cumsum(exp(x)))`` along ``dim``, computed stably."""
    return Logcumsumexp.apply(input, _scan_dim(input, dim, "logcumsumexp"))


# ---- boolean reductions and counts -----------------------------------------------------------

def _logical(input, dim, keepdim, is_all):
    a = input._data
    xp = xp_of(a)
    if isinstance(dim, (tuple, list)) and len(dim) == 0:
        r = a.astype(bool)  # PyTorch reduces over no dims here: an elementwise test
    else:
        dims = _dims(dim, a.ndim)
        r = (xp.all if is_all else xp.any)(a, axis=dims, keepdims=keepdim)
    return _wrap(xp.asarray(r, dtype=a.dtype if a.dtype == xp.uint8 else bool), xp)


def all(input, dim=None, keepdim=False) -> Tensor:
    """Whether every element over ``dim`` is nonzero (bool; uint8 for uint8 input)."""
    return _logical(input, dim, keepdim, True)


def any(input, dim=None, keepdim=False) -> Tensor:
    """Whether some element over ``dim`` is nonzero (bool; uint8 for uint8 input)."""
    return _logical(input, dim, keepdim, False)


def count_nonzero(input, dim=None) -> Tensor:
    """Number of nonzero elements over ``dim`` (int64)."""
    a = input._data
    xp = xp_of(a)
    dims = _dims(dim, a.ndim)
    return _wrap(xp.asarray(xp.sum(a != 0, axis=dims), dtype=xp.int64), xp)


# ---- sorting and selection -------------------------------------------------------------------

def _argsort(xp, a, axis, descending):
    """(indices, sorted values), stable: equal elements keep their order; NaN sorts largest.

    The sorted values do not depend on stability, and without ties (or NaN) a quicksort's
    indices are the stable ones; only inputs with ties pay for the slower stable sort.
    """
    vals = xp.sort(a, axis=axis)
    tied = False
    if a.shape[axis] > 1:
        lo, hi = _neighbours(a.ndim, axis)
        tied = (vals[lo] == vals[hi]).any() or (vals != vals).any()
    if not tied:
        idx = xp.argsort(a, axis=axis)
        if descending:
            return xp.flip(idx, axis), xp.flip(vals, axis)
        return idx, vals
    if not descending:
        return xp.argsort(a, axis=axis, kind="stable"), vals
    r = xp.argsort(xp.flip(a, axis), axis=axis, kind="stable")
    return (a.shape[axis] - 1) - xp.flip(r, axis), xp.flip(vals, axis)


class Sort(Function):
    raw = True
    backward_name = "SortBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, axis, descending):
        if a.dtype.kind == "c":
            raise RuntimeError(" Sort does not support complex dtypes on CPU")
        a1 = _as_1d(ctx, a)
        xp = ctx.xp
        idx, vals = _argsort(xp, a1, axis, descending)
        ctx.sel = (idx, axis, a1.shape, ctx.in_shape, None, False)
        return _finish(ctx, (vals, idx))

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None, None


def sort(input, dim=-1, descending=False, stable=False):
    """Sorted values and their indices along ``dim`` (ties keep their order)."""
    d = wrap_dim(dim, input._data.ndim)
    return return_types.sort(*Sort.apply(input, d, builtins.bool(descending)))


def argsort(input, dim=-1, descending=False, stable=False) -> Tensor:
    """Indices that sort ``input`` along ``dim``."""
    a = input._data
    xp = xp_of(a)
    d = wrap_dim(dim, a.ndim)
    if a.dtype.kind == "c":
        raise RuntimeError(" Sort does not support complex dtypes on CPU")
    if a.ndim == 0:
        return _wrap(xp.zeros((), xp.int64), xp)
    return _wrap(_argsort(xp, a, d, descending)[0], xp)


def msort(input) -> Tensor:
    """``sort(input, dim=0).values``."""
    return sort(input, 0).values


class Topk(Function):
    raw = True
    backward_name = "TopkBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, k, axis, largest):
        a1 = _as_1d(ctx, a)
        if k < 0 or k > a1.shape[axis]:
            raise RuntimeError("selected index k out of range")
        if not ctx.in_shape:
            k = 1  # PyTorch returns the element of a 0-d input for k = 0 too
        if a.dtype.kind in "bc":
            what = "bool" if a.dtype.kind == "b" else "complex"
            raise RuntimeError(f"{'' if what == 'bool' else ' '}topk does not support {what} "
                               "dtypes on CPU")
        xp = ctx.xp
        n = a1.shape[axis]
        if 0 < k and 8 * k < n and n > 1024:
            # select the k candidates in O(n), then order only those
            cand = xp.argpartition(a1, n - k if largest else k - 1, axis=axis)
            cand = xp.take(cand, xp.arange(n - k, n) if largest else xp.arange(k), axis=axis)
            order = _argsort(xp, xp.take_along_axis(a1, cand, axis), axis, largest)[0]
            idx = xp.take_along_axis(cand, order, axis)
        else:
            idx = xp.take(_argsort(xp, a1, axis, largest)[0], xp.arange(k), axis=axis)
        vals = xp.take_along_axis(a1, idx, axis)
        ctx.sel = (idx, axis, a1.shape, ctx.in_shape, None, False)
        return _finish(ctx, (vals, idx))

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None, None, None


def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices."""
    d = wrap_dim(dim, input._data.ndim)
    return return_types.topk(*Topk.apply(input, builtins.int(k), d, builtins.bool(largest)))


class _KthSelect(Function):
    """The k-th smallest value along a dim (stable order among ties), with its index."""

    raw = True
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, k, axis, keepdim, op):
        a1 = _as_1d(ctx, a)
        n = a1.shape[axis]
        if n == 0:
            raise IndexError(f"{op}(): Expected reduction dim {axis} to have non-zero size.")
        if a.dtype.kind == "b":
            raise NotImplementedError(f"\"{op}_cpu\" not implemented for 'Bool'")
        xp = ctx.xp
        order = xp.argsort(a1, axis=axis, kind="stable")
        if op == "kthvalue":
            if k < 1 or k > n:
                raise RuntimeError(f"kthvalue(): selected number k out of range for dimension "
                                   f"{axis}")
            pos = xp.full(_keep_shape(a1.shape, (axis,)), k - 1)
        else:
            nans = xp.sum(a1 != a1, axis=axis, keepdims=True)
            if op == "median":  # any NaN makes the median NaN: pick the first NaN
                pos = xp.where(nans > 0, n - nans, (n - 1) // 2)
            else:               # nanmedian: lower median of the non-NaN values
                valid = n - nans
                pos = xp.where(valid > 0, (valid - 1) // 2, 0)
        idx = xp.take_along_axis(order, pos, axis)
        outs = _select_forward(ctx, a1, axis, idx, keepdim or not ctx.in_shape)
        return _finish(ctx, outs)

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None, None, None, None


class Kthvalue(_KthSelect):
    backward_name = "KthvalueBackward0"


class MedianDim(_KthSelect):
    backward_name = "MedianBackward1"


class NanmedianDim(_KthSelect):
    backward_name = "NanmedianBackward1"


def kthvalue(input, k, dim=-1, keepdim=False):
    """The ``k``-th smallest element along ``dim`` and its index."""
    d = wrap_dim(dim, input._data.ndim)
    return return_types.kthvalue(*Kthvalue.apply(input, builtins.int(k), d, keepdim,
                                                 "kthvalue"))


class _MedianAll(_TiedAll):
    """Lower median of all elements; ties share the gradient evenly (as PyTorch)."""

    ignore_nan = False

    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        if a.dtype.kind in "bc":
            raise NotImplementedError(f"\"median_cpu\" not implemented for "
                                      f"'{scalar_name(a.dtype)}'")
        flat = a.reshape(-1)
        if ctx.ignore_nan:
            flat = flat[flat == flat]
        n = flat.size
        if n == 0 or not ctx.ignore_nan and (flat != flat).any():
            out = xp.asarray(float("nan") if n == 0 or is_float(a.dtype) else 0, dtype=a.dtype)
        else:
            out = xp.partition(flat, (n - 1) // 2)[(n - 1) // 2]
        ctx.save_for_backward(a, out)
        return out


class MedianAll(_MedianAll):
    backward_name = "MedianBackward0"


class NanmedianAll(_MedianAll):
    backward_name = "NanmedianBackward0"
    ignore_nan = True


def median(input, dim=_NO_DIM, keepdim=False):
    """Lower median of all elements, or ``(values, indices)`` along ``dim``."""
    if dim is _NO_DIM:
        return MedianAll.apply(input)
    if dim is None:
        raise TypeError("median(): argument 'dim' must be int, not NoneType")
    d = wrap_dim(dim, input._data.ndim)
    return return_types.median(*MedianDim.apply(input, 0, d, keepdim, "median"))


def nanmedian(input, dim=None, keepdim=False):
    """``median`` ignoring NaN values."""
    if dim is None:
        return NanmedianAll.apply(input)
    d = wrap_dim(dim, input._data.ndim)
    return return_types.nanmedian(*NanmedianDim.apply(input, 0, d, keepdim, "nanmedian"))


class Mode(Function):
    """Most frequent value along a dim (the smallest among equals) and its last index."""

    raw = True
    backward_name = "ModeBackward0"

    @staticmethod
    def forward(ctx, a, axis, keepdim):
        a1 = _as_1d(ctx, a)
        n = a1.shape[axis]
        if n == 0:
            raise IndexError(f"mode(): Expected reduction dim {axis} to have non-zero size.")
        xp = ctx.xp
        order = xp.argsort(a1, axis=axis, kind="stable")
        s = xp.take_along_axis(a1, order, axis)
        pos = _positions(xp, n, a1.ndim, axis)
        new_run = xp.ones(s.shape, bool)
        lo, hi = _neighbours(a1.ndim, axis)
        new_run[lo] = s[lo] != s[hi]
        start = xp.maximum.accumulate(xp.where(new_run, pos, 0), axis=axis)
        # the first position where a run reaches the longest length ends the smallest mode
        end = xp.argmax(pos - start, axis=axis, keepdims=True)
        idx = xp.take_along_axis(order, end, axis)
        outs = _select_forward(ctx, a1, axis, idx, keepdim or not ctx.in_shape)
        return _finish(ctx, outs)

    @staticmethod
    def backward(ctx, g, gi=None):
        return _select_backward(ctx, g), None, None


def mode(input, dim=-1, keepdim=False):
    """Most frequent value along ``dim`` and the index of its last occurrence."""
    d = wrap_dim(dim, input._data.ndim)
    return return_types.mode(*Mode.apply(input, d, keepdim))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """Distinct elements (sorted), optionally with inverse indices and counts."""
    a = input._data
    xp = xp_of(a)
    if dim is None:
        res = xp.unique(a.reshape(-1), return_inverse=True, return_counts=True,
                        equal_nan=False)
        vals, inv, counts = res
        inv = inv.reshape(a.shape)
    else:
        d = wrap_dim(dim, a.ndim)
        vals, inv, counts = xp.unique(a, return_inverse=True, return_counts=True, axis=d,
                                      equal_nan=False)
        inv = inv.reshape(-1)
    return _unique_result(xp, vals, inv, counts, return_inverse, return_counts)


def _unique_result(xp, vals, inv, counts, return_inverse, return_counts):
    out = [_wrap(vals, xp)]
    if return_inverse:
        out.append(_wrap(inv.astype(xp.int64), xp))
    if return_counts:
        out.append(_wrap(counts.astype(xp.int64), xp))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal consecutive elements (or slices along ``dim``)."""
    a = input._data
    xp = xp_of(a)
    if dim is None:
        rows = a.reshape(-1, 1)
        axis = 0
        src = a.reshape(-1)
    else:
        axis = wrap_dim(dim, a.ndim)
        src = a
        rows = xp.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)
    n = rows.shape[0]
    change = xp.ones(n, bool)
    if n > 1:
        change[1:] = xp.any(rows[1:] != rows[:-1], axis=1)
    starts = xp.nonzero(change)[0]
    vals = xp.take(src, starts, axis=axis)
    inv = xp.cumsum(change) - 1
    if dim is None:
        inv = inv.reshape(a.shape)
    counts = xp.diff(xp.append(starts, n))
    return _unique_result(xp, vals, inv, counts, return_inverse, return_counts)


# ---- sum_to_size (the adjoint of expand) -----------------------------------------------------

def sum_to_size(input: Tensor, *size) -> Tensor:
    """Sum ``input`` down to a shape it was broadcast from."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    ishape = input._data.shape
    ok = len(shape) <= len(ishape) and builtins.all(
        s == 1 or s == i for s, i in zip(shape[::-1], ishape[::-1]))
    if not ok:
        raise RuntimeError(f"size {list(shape)} is not expandable to size {list(ishape)}.")
    if tuple(shape) == tuple(ishape):
        return input
    return SumToSize.apply(input, tuple(shape))


def _unique_method(self, sorted=True, return_inverse=False, return_counts=False, dim=None):
    return unique(self, sorted, return_inverse, return_counts, dim)


# ---- dist, searchsorted, bucketize ----------------------------------------------------------

def dist(input, other, p=2) -> Tensor:
    """``torch.dist``: the p-norm of ``input - other`` (broadcast), ``vector_norm``'s ord."""
    if isinstance(p, (str, builtins.bool)) or not isinstance(p, (builtins.int, builtins.float)):
        raise TypeError(f"dist(): argument 'p' must be Number, not {type(p).__name__}")
    for t in (input, other):
        if not is_float(t._data.dtype) and t._data.dtype.kind != "c":
            raise RuntimeError("norm(): input dtype should be either floating point or complex. "
                               f"Got {scalar_name(t._data.dtype)} instead.")
    return vector_norm(input - other, p)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None, out=None) -> Tensor:
    """Where each value of ``input`` would go in the innermost dim of ``sorted_sequence`` to
    keep it sorted: before equal values, or after them with ``right=True``/``side='right'``."""
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    seq = sorted_sequence._data
    xp = xp_of(seq)
    values = input._data if isinstance(input, Tensor) else xp.asarray(input)
    if sorter is not None:
        if sorter._data.shape != seq.shape:
            raise RuntimeError(f"torch.searchsorted(): boundary and sorter must have the same "
                               f"size, but got boundary tensor {list(seq.shape)}and got sorter "
                               f"tensor {list(sorter._data.shape)}")
        seq = xp.take_along_axis(seq, sorter._data, -1)
    if seq.ndim > 1 and (values.ndim == 0 or seq.shape[:-1] != values.shape[:-1]):
        raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or the "
                           "first N-1 dimensions of boundaries tensor and input value tensor must "
                           f"match, but we got boundaries tensor {list(seq.shape)} and input "
                           f"value tensor {list(values.shape)}")
    how = "right" if right else "left"
    if seq.ndim <= 1:
        idx = xp.searchsorted(seq, values, side=how)
    else:  # one search per leading index
        rows = zip(seq.reshape(-1, seq.shape[-1]), values.reshape(-1, values.shape[-1]))
        idx = xp.stack([xp.searchsorted(s, v, side=how) for s, v in rows])
        idx = idx.reshape(values.shape)
    result = _wrap(xp.asarray(idx, dtype=xp.int32 if out_int32 else xp.int64), xp)
    return result if out is None else copy_into_out(out, result)


def bucketize(input, boundaries, *, out_int32=False, right=False, out=None) -> Tensor:
    """The bucket of each value of ``input`` among 1-D ``boundaries``: ``i`` with
    ``boundaries[i-1] < x <= boundaries[i]`` (``<= x <`` with ``right=True``)."""
    if boundaries._data.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got "
                           f"dim({boundaries._data.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right, out=out)


# ---- diff and the trapezoid rule -----------------------------------------------------------

def diff(input, n=1, dim=-1, prepend=None, append=None) -> Tensor:
    """The ``n``-th forward difference ``x[i+1] - x[i]`` along ``dim`` (``!=`` for bool),
    after ``prepend``/``append`` are concatenated there."""
    from .movement import cat
    if input.dim() == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = wrap_dim(dim, input.dim())
    parts = [t for t in (prepend, input, append) if t is not None]
    if builtins.any(t.dim() != input.dim() for t in parts):
        raise RuntimeError("diff expects prepend or append to be the same dimension as input")
    x = cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        length = x.shape[d]
        if length == 0:
            break
        hi, lo = x.narrow(d, 1, length - 1), x.narrow(d, 0, length - 1)
        x = hi != lo if x._data.dtype.kind == "b" else hi - lo
    return x


def _trapezoid_parts(y, x, dx, dim, name):
    d = wrap_dim(dim, y.dim())
    length = y.shape[d]
    if x is not None and x.dim() == 1 and x.shape[0] != length:
        raise RuntimeError(f"{name}: There must be one `x` value for each sample point")
    ends = (y.narrow(d, 1, length - 1) + y.narrow(d, 0, length - 1)) / 2
    if x is None:
        return ends * (1 if dx is None else dx), d
    if x.dim() == 1:  # the sample points of every row along ``dim``
        shape = [1] * y.dim()
        shape[d] = length
        x = x.reshape(shape)
    return ends * diff(x, dim=d), d


def trapezoid(y, x=None, *, dx=None, dim=-1) -> Tensor:
    """The trapezoid rule along ``dim``: ``sum((x[i+1] - x[i]) (y[i+1] + y[i]) / 2)`` (spacing
    ``dx``, default 1, without ``x``)."""
    if y.shape[wrap_dim(dim, y.dim())] == 0:
        return sum(y * 1.0, dim)
    parts, d = _trapezoid_parts(y, x, dx, dim, "trapezoid")
    return sum(parts, d)


def trapz(y, x=None, *, dx=None, dim=-1) -> Tensor:
    """``trapezoid`` under NumPy's older name."""
    return trapezoid(y, x, dx=dx, dim=dim)


def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1) -> Tensor:
    """The running trapezoid rule along ``dim`` (one fewer element than ``y`` there)."""
    parts, d = _trapezoid_parts(y, x, dx, dim, "cumulative_trapezoid")
    return cumsum(parts, d)


# ---- counting, histograms, membership (no gradient, as PyTorch) --------------------------------

def bincount(input, weights=None, minlength=0) -> Tensor:
    """Count of each value ``0 .. max(input)`` in a 1-D non-negative integer tensor (or the sum
    of ``weights`` falling on it); at least ``minlength`` bins."""
    a = input._data
    xp = xp_of(a)
    if a.dtype.kind not in "iu":
        raise NotImplementedError(f"\"bincount_cpu\" not implemented for '{scalar_name(a.dtype)}'")
    if a.ndim != 1 or a.size and a.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if weights is None:
        return _wrap(xp.bincount(a, minlength=minlength).astype(xp.int64), xp)
    w = weights._data
    if w.ndim != 1 or w.shape[0] != a.shape[0]:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    # float32 weights count in float32; every other weight dtype counts in float64
    out_dt = w.dtype if w.dtype == xp.float32 else xp.float64
    return _wrap(xp.bincount(a, w.astype(xp.float64), minlength).astype(out_dt), xp)


def _fmt(v) -> str:
    """A bound as PyTorch's C++ prints it in messages (``1``, ``2.5``, ``inf``, ``-nan``)."""
    v = builtins.float(v)
    return "-nan" if v != v else f"{v:g}"


def _linspace(xp, lo, hi, steps, dt):
    """``torch.linspace`` in dtype ``dt``: stepped up from ``lo`` for the first half and down
    from ``hi`` for the rest, so both ends are exact (bin edges then match torch's bit for
    bit)."""
    lo, hi = xp.asarray(lo, dt), xp.asarray(hi, dt)
    step = (hi - lo) / dt.type(steps - 1)
    i = xp.arange(steps)
    half = steps // 2
    return xp.where(i < half, lo + step * i.astype(dt), hi - step * (steps - 1 - i).astype(dt))


def _bin_counts(xp, a, w, lo, hi, bins, edges):
    """Counts of ``a`` (weighted by ``w``) in ``bins`` equal bins over ``[lo, hi]`` (the last
    bin closed), computed in ``a``'s dtype as PyTorch's kernel; values outside the range or NaN
    are dropped.  With ``edges`` the linear guess is corrected by a search among its
    neighbouring edges (torch.histogram's local search; torch.histc has none)."""
    lo, hi = xp.asarray(lo, a.dtype), xp.asarray(hi, a.dtype)
    keep = (a >= lo) & (a <= hi)
    x = a[keep]
    pos = ((x - lo) * a.dtype.type(bins) / (hi - lo)).astype(xp.int64)
    if edges is not None:
        # upper_bound among edges[pos - 1 : pos + 2] (sorted, so a count of those <= x) - 1
        first = xp.maximum(pos - 1, 0)
        stop = xp.minimum(pos + 2, bins + 1)
        pos = first - 1
        for k in range(3):
            j = first + k
            pos = pos + ((j < stop) & (edges[xp.minimum(j, bins)] <= x))
    pos = xp.minimum(pos, bins - 1)
    ww = None if w is None else w[keep]
    return xp.bincount(pos, ww, minlength=bins)[:bins]


def histc(input, bins=100, min=0, max=0, *, out=None) -> Tensor:
    """Histogram of ``input`` in ``bins`` equal bins over ``[min, max]`` (the data's range when
    ``min == max``; widened by 1 each side when that is a single value)."""
    a = input._data
    xp = xp_of(a)
    if not is_float(a.dtype):
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for "
                                  f"'{scalar_name(a.dtype)}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    lo, hi = builtins.float(min), builtins.float(max)
    flat = a.reshape(-1)
    if lo == hi and flat.size:
        lo, hi = builtins.float(flat.min()), builtins.float(flat.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{_fmt(lo)}, {_fmt(hi)}] is not finite")
    counts = _bin_counts(xp, flat, None, lo, hi, bins, None)
    result = _wrap(counts.astype(a.dtype), xp)
    return result if out is None else copy_into_out(out, result)


def histogram(input, bins, *, range=None, weight=None, density=False, out=None):
    """``(hist, bin_edges)`` of the flattened ``input``: ``bins`` equal bins over ``range``
    (default the data's, widened by 0.5 each side when a single value) or the given
    increasing edges; ``density`` divides by the total and the bin widths."""
    a = input._data
    xp = xp_of(a)
    if not is_float(a.dtype):
        raise NotImplementedError(f"\"histogramdd\" not implemented for "
                                  f"'{scalar_name(a.dtype)}'")
    w = None
    if weight is not None:
        w = weight._data
        if w.shape != a.shape:
            raise RuntimeError(
                "torch.histogramdd: if weight tensor is provided it should have the same shape "
                "as the input tensor excluding its innermost dimension, but got input with "
                f"shape {list(a.shape) + [1]} and weight with shape {list(w.shape)}")
        w = w.reshape(-1).astype(xp.float64)
    flat = a.reshape(-1)
    if isinstance(bins, Tensor):
        e = bins._data
        if e.ndim != 1:
            raise RuntimeError(f"torch.histogramdd: bins tensor should have one dimension, but "
                               f"got {e.ndim} dimensions in the bins tensor for dimension 0")
        if e.shape[0] < 1:
            raise RuntimeError("torch.histogramdd: bins tensor should have at least 1 element, "
                               "but got 0 elements for dimension 0")
        edges = e.astype(a.dtype)
        e64 = edges.astype(xp.float64)
        nb = e64.shape[0] - 1
        keep = (flat >= e64[0]) & (flat <= e64[-1]) if nb > 0 else flat != flat
        x = flat[keep]
        pos = xp.minimum(xp.searchsorted(e64, x, side="right") - 1, builtins.max(nb - 1, 0))
        counts = xp.bincount(pos, None if w is None else w[keep], minlength=nb)[:nb]
    else:
        if bins <= 0:
            raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for "
                               "dimension 0")
        if range is not None:
            lo, hi = (builtins.float(v) for v in range)
            if lo > hi:
                raise RuntimeError(f"torch.histogramdd: min should not exceed max, but got min "
                                   f"{_fmt(lo)} max {_fmt(hi)} for dimension 0")
        elif flat.size:
            lo, hi = builtins.float(flat.min()), builtins.float(flat.max())
        else:
            lo, hi = 0.0, 1.0
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise RuntimeError(f"torch.histogramdd: dimension 0's range [{_fmt(lo)}, {_fmt(hi)}] "
                               "is not finite")
        edges = _linspace(xp, lo, hi, bins + 1, a.dtype)
        nb = bins
        counts = _bin_counts(xp, flat, w, lo, hi, bins, edges)
    counts = counts.astype(xp.float64)
    if density:
        widths = xp.diff(edges.astype(xp.float64))
        counts = counts / (counts.sum() * widths)
    hist, bin_edges = _wrap(counts.astype(a.dtype), xp), _wrap(edges, xp)
    if out is not None:
        hist, bin_edges = copy_into_out(out[0], hist), copy_into_out(out[1], bin_edges)
    return return_types.histogram(hist, bin_edges)


def isin(elements, test_elements, *, assume_unique=False, invert=False, out=None) -> Tensor:
    """Whether each of ``elements`` is among ``test_elements`` (``not`` with ``invert``)."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError(f"isin() received an invalid combination of arguments - got "
                        f"({type(elements).__name__}, {type(test_elements).__name__}), but "
                        "expected one of: (Tensor elements, Tensor test_elements), (Number "
                        "element, Tensor test_elements), (Tensor elements, Number test_element)")
    ref = elements if isinstance(elements, Tensor) else test_elements
    xp = xp_of(ref._data)
    arrays = [t._data if isinstance(t, Tensor) else xp.asarray(t)
              for t in (elements, test_elements)]
    for arr in arrays:
        if arr.dtype.kind in "bc":
            raise RuntimeError(f"Unsupported input type encountered for isin(): "
                               f"{scalar_name(arr.dtype)}")
    result = _wrap(xp.isin(arrays[0], arrays[1], invert=invert), xp)
    return result if out is None else copy_into_out(out, result)


# ---- quantiles (differentiable: a sort, a gather and a lerp) ---------------------------------

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name, input, q, dim, keepdim, interpolation, ignore_nan):
    a = input._data
    xp = xp_of(a)
    if a.size == 0:
        raise RuntimeError("quantile() input tensor must be non-empty")
    if not is_float(a.dtype) or a.dtype.itemsize < 4:
        raise RuntimeError("quantile() input tensor must be either float or double dtype")
    if isinstance(q, Tensor):
        qa = q._data
        if qa.ndim > 1:
            raise RuntimeError("quantile() q must be a scalar or 1D tensor")
        if qa.dtype != a.dtype:
            raise RuntimeError("quantile() q tensor must be same dtype as the input tensor")
        scalar_q = qa.ndim == 0
        qa = qa.reshape(-1)
    else:
        scalar_q = True
        qa = xp.asarray([builtins.float(q)], dtype=a.dtype)  # ranks in the input's precision
    if qa.size and (xp.any(qa < 0) or xp.any(qa > 1)):
        bad = builtins.float(qa[(qa < 0) | (qa > 1)][0])
        if scalar_q and not isinstance(q, Tensor):
            raise RuntimeError(f"quantile() q must be in the range [0, 1] but got {bad:g}")
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError("quantile() interpolation must be one of linear, lower, higher, "
                           f"midpoint or nearest, but got {interpolation}")
    if dim is None:
        x, keep_shape = input.reshape(-1), [1] * a.ndim
    else:
        d = wrap_dim(dim, builtins.max(a.ndim, 1))
        x = input.reshape(1) if a.ndim == 0 else input.movedim(d, -1)
        keep_shape = list(a.shape)
        if a.ndim:
            keep_shape[d] = 1
    s = x.sort(dim=-1).values  # NaNs sort last
    n = s.shape[-1]
    nans = xp.sum(s._data != s._data, axis=-1, keepdims=True)
    valid = n - nans if ignore_nan else xp.where(nans > 0, 0, n)
    # a row with no valid value reads a NaN entry: the last (quantile) or first (nanquantile)
    rank = xp.where(valid > 0, qa * (valid - 1).astype(a.dtype), 0 if ignore_nan else n - 1)
    rank = rank.astype(a.dtype)
    if interpolation == "nearest":
        rank = xp.round(rank)  # half to even, as PyTorch
    lo = xp.floor(rank).astype(xp.int64)
    hi = xp.minimum(xp.ceil(rank).astype(xp.int64), n - 1)
    below = s.gather(-1, _wrap(lo, xp))
    if interpolation in ("lower", "nearest"):
        out = below
    else:
        above = s.gather(-1, _wrap(hi, xp))
        if interpolation == "higher":
            out = above
        else:
            frac = 0.5 if interpolation == "midpoint" else _wrap((rank - lo).astype(a.dtype), xp)
            out = below.lerp(above, frac)
    out = out.movedim(-1, 0)  # [len(q), *rows]
    if keepdim:
        out = out.reshape([qa.shape[0]] + keep_shape)
    elif dim is None:
        out = out.reshape([qa.shape[0]])
    return out[0] if scalar_q else out


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None) -> Tensor:
    """The ``q``-th quantiles of ``input`` (flattened, or along ``dim``) between the two
    nearest sorted values, joined by ``interpolation``; any NaN makes a row's quantile NaN."""
    result = _quantile("quantile", input, q, dim, keepdim, interpolation, False)
    return result if out is None else copy_into_out(out, result)


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear",
                out=None) -> Tensor:
    """``quantile`` of the non-NaN values (NaN for a row with none)."""
    result = _quantile("nanquantile", input, q, dim, keepdim, interpolation, True)
    return result if out is None else copy_into_out(out, result)


# ---- covariance and correlation -------------------------------------------------------------

def cov(input, *, correction=1, fweights=None, aweights=None) -> Tensor:
    """Covariance of the rows (variables) of ``input`` over its columns (observations):
    ``sum_i w_i (x_i - avg)(y_i - avg) / (sum(w) - correction * sum(w * a) / sum(w))`` with
    ``w = fweights * aweights``."""
    from .linalg import mm
    a = input._data
    xp = xp_of(a)
    if a.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an "
                           f"input with {a.ndim} dimensions")
    if a.dtype.kind == "b":
        raise RuntimeError("cov(): bool dtype is not supported for input")
    x = input.reshape(1, -1) if a.ndim < 2 else input
    if not is_float(a.dtype) and a.dtype.kind != "c":
        x = x.to(from_np(float_dtype(a.dtype)))
    n_obs = x.shape[1]
    w = None
    for wname, wt, integral in (("fweights", fweights, True), ("aweights", aweights, False)):
        if wt is None:
            continue
        wa = wt._data
        if wa.ndim > 1:
            raise RuntimeError(f"cov(): expected {wname} to have one or fewer dimensions but got "
                               f"{wname} with {wa.ndim} dimensions")
        if wa.size != n_obs:
            raise RuntimeError(f"cov(): expected {wname} to have the same numel as there are "
                               f"observations in the input but got {wa.size} != {n_obs}")
        if integral and wa.dtype.kind not in "iu":
            raise RuntimeError(f"cov(): expected fweights to have integral dtype but got "
                               f"fweights with {scalar_name(wa.dtype)} dtype")
        if not integral and not is_float(wa.dtype):
            raise RuntimeError(f"cov(): expected aweights to have floating point dtype but got "
                               f"aweights with {scalar_name(wa.dtype)} dtype")
        if wa.size and xp.any(wa < 0):
            raise RuntimeError(f"cov(): {wname} cannot be negative")
        w = wt if w is None else w * wt
    if w is None:
        w_sum = n_obs
        avg = x.mean(dim=1) if n_obs else x.sum(dim=1) / 0.0
    else:
        w_sum = w.sum()
        avg = (x * w).sum(dim=1) / w_sum
    if w is None or correction == 0:
        norm = w_sum - correction
    elif aweights is None:
        norm = w_sum - correction
    else:
        norm = w_sum - correction * (w * aweights).sum() / w_sum
    if builtins.float(norm._data if isinstance(norm, Tensor) else norm) <= 0:
        warnings.warn("cov(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the number of observations.", UserWarning, stacklevel=2)
        norm = 0 * norm
    xm = x - avg.unsqueeze(1)
    xw = xm if w is None else xm * w
    c = mm(xm, xw.t().conj())
    return (c / norm).squeeze()


def corrcoef(input) -> Tensor:
    """Pearson correlation of the rows of ``input``: ``cov / sqrt(diag ⊗ diag)``, its real part
    clipped to ``[-1, 1]``."""
    if input.dim() > 2:
        raise RuntimeError(f"corrcoef(): expected input to have two or fewer dimensions but got "
                           f"an input with {input.dim()} dimensions")
    c = cov(input)
    if c.dim() == 0:
        return c / c
    sd = c.diagonal().sqrt() if not c.is_complex() else c.diagonal().real.sqrt()
    c = c / sd.unsqueeze(1) / sd.unsqueeze(0)
    return c.clamp(-1, 1) if not c.is_complex() else c


METHODS = {
    "sum": sum, "nansum": nansum, "mean": mean, "nanmean": nanmean, "prod": prod, "var": var,
    "std": std, "max": max, "min": min, "amax": amax, "amin": amin, "argmax": argmax,
    "argmin": argmin, "aminmax": aminmax, "logsumexp": logsumexp, "norm": norm,
    "cumsum": cumsum, "cumprod": cumprod, "cummax": cummax, "cummin": cummin,
    "logcumsumexp": logcumsumexp, "all": all, "any": any, "count_nonzero": count_nonzero,
    "topk": topk, "sort": sort, "argsort": argsort, "msort": msort, "kthvalue": kthvalue,
    "median": median, "nanmedian": nanmedian, "mode": mode, "unique": _unique_method,
    "unique_consecutive": unique_consecutive, "sum_to_size": sum_to_size,
    "cumsum_": make_inplace(cumsum), "cumprod_": make_inplace(cumprod), "dist": dist,
    "bincount": bincount, "histc": histc, "histogram": histogram, "quantile": quantile,
    "nanquantile": nanquantile, "cov": cov, "corrcoef": corrcoef,
    "diff": lambda self, n=1, dim=-1, prepend=None, append=None: diff(self, n, dim, prepend,
                                                                      append),
}
