"""Helpers shared by the op families: promotion, gradient reduction, dim handling."""
from __future__ import annotations

import builtins
import math

from .._dtype import from_np, result_type_of, _FLOAT, get_default_dtype, float32, float64
from .._backend import _BY_ARRAY_TYPE as _ARRAY_TYPES, asarray
from .._state import state
from .._tensor import Tensor, _make, _wrap_dim
from ..autograd.function import Function

wrap_dim = _wrap_dim


def result_dtype(a, b):
    """The backend dtype of ``a op b`` under PyTorch's promotion (fast paths first)."""
    if isinstance(a, Tensor):
        ad = a._data.dtype
        if isinstance(b, Tensor):
            bd = b._data.dtype
            if ad is bd or ad == bd:
                return ad
        elif isinstance(b, builtins.float):
            if is_float(ad):
                return ad
        elif isinstance(b, builtins.int) and not isinstance(b, builtins.bool):
            if ad.kind in "fiuc" or ad.name == "bfloat16":
                return ad
    return result_type_of((a, b)).np


def cast(arr, dt):
    """``arr`` in backend dtype ``dt`` (no copy when it already is); scalars pass through."""
    if hasattr(arr, "dtype") and hasattr(arr, "ndim"):
        return arr if arr.dtype == dt else arr.astype(dt)
    return arr


def float_dtype(dt):
    """The dtype a float-only op computes in: ints and bool go to the default float dtype."""
    if is_float(dt) or dt.kind == "c":
        return dt
    return get_default_dtype().np


def shape_of(x):
    return x.shape if hasattr(x, "shape") else ()


class SumToSize(Function):
    """Sum a broadcast tensor back down to ``shape`` (the adjoint of ``expand``)."""

    raw = True
    backward_name = "SumToSizeBackward0"

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return _sum_to(ctx.xp, a, shape)

    @staticmethod
    def backward(ctx, g):
        return g.expand(ctx.shape), None


# (broadcast shape, shape) -> (the dims _sum_to sums, its GEMV plan or None): a step repeats
# its shapes
_SUM_DIMS = {}
# gradients up to this size sum by GEMV (see _sum_to): kept small so that no BLAS build
# threads the call (at 2 threads a (64, 256) float32 bias gradient measured no faster)
_GEMV_BYTES = 32 << 10
_ONES = {}              # (xp, n, dtype) -> a read-only vector of n ones


def _sum_plan(a, shape):
    """``_SUM_DIMS``' entry for array shape ``a.shape`` summed to ``shape``: the dims, and
    for a GEMV (dims leading or trailing) whether ones go first, the 2-d view's shape and
    whether the product needs reshaping to ``shape``."""
    lead = a.ndim - len(shape)
    dims = tuple(range(lead)) + tuple([
        lead + i for i, s in enumerate(shape) if s == 1 and a.shape[lead + i] != 1])
    plan = None
    if dims and a.size:
        k = len(dims)
        if dims == tuple(range(k)):  # the leading dims: ones(m) @ a as (m, rest)
            n = math.prod(a.shape[:k])
            plan = (True, n, (n, a.size // n), len(shape) != 1)
        elif dims == tuple(range(a.ndim - k, a.ndim)):  # the trailing: a as (rest, n) @ ones(n)
            n = math.prod(a.shape[a.ndim - k:])
            plan = (False, n, (a.size // n, n), len(shape) != 1)
    return dims, plan


def _sum_to(xp, a, shape):
    """Array ``a`` summed down to ``shape``, a shape it was broadcast from.

    A small (32 KiB) float32/64 C-contiguous gradient summed over its leading or trailing dims
    (a bias's, a per-row scale's) is one GEMV against a vector of ones: ~0.6 us against
    ``add.reduce``'s 1.6-1.9 at (32, 64) float32, the same sums to rounding (``add.reduce`` over
    leading dims adds row after row too; over at most 8k trailing elements BLAS's lanes'
    partial sums are as accurate as NumPy's pairwise blocks to float tolerance).
    """
    key = (a.shape, shape)
    entry = _SUM_DIMS.get(key)
    if entry is None:
        if len(_SUM_DIMS) > 4096:  # (bounded where shapes keep changing)
            _SUM_DIMS.clear()
        entry = _SUM_DIMS[key] = _sum_plan(a, shape)
    dims, plan = entry
    if not dims:  # (no leading dims either)
        return a
    if plan is not None and a.nbytes <= _GEMV_BYTES and isinstance(a, xp.ndarray) and \
            a.flags.c_contiguous:
        ones = _ONES.get((xp, plan[1], a.dtype))
        if ones is None:
            ones = _ones(xp, plan[1], a.dtype)
        if ones is not False:
            # (``dot``: the same BLAS gemv as ``matmul``, bit for bit, ~0.35 us less a call)
            out = xp.dot(ones, a.reshape(plan[2])) if plan[0] else \
                xp.dot(a.reshape(plan[2]), ones)
            return out.reshape(shape) if plan[3] else out
    # ``sum``'s kernel without its Python wrapper (a sparse array has only the method)
    out = xp.add.reduce(a, axis=dims, keepdims=True) if isinstance(a, xp.ndarray) else a.sum(
        axis=dims, keepdims=True)
    return out.reshape(shape) if a.ndim != len(shape) else out


# (xp, shape, dtype, value) -> a read-only array of ``value``: an operand for small ufunc
# calls, where NumPy takes its SIMD loop against an array of the result's shape and a slower
# one against a number: (32, 64) float32 relu's maximum(a, 0) 1.0 -> 0.66 us, sigmoid's
# 1 + t and 1 / t 0.3 us less, a uint32 minimum(b, 1) 1.9 -> 1.05 us (thread CPU, 1 thread)
_CONST = {}
CONST_BYTES = 64 << 10  # larger operands are not cached (64 entries: at most 4 MiB held)


def const(xp, shape, dt, value):
    """A cached read-only array of ``shape`` and dtype ``dt`` filled with ``value``."""
    key = (xp, shape, dt, value)
    c = _CONST.get(key)
    if c is None:
        if len(_CONST) >= 64:  # (bounded where shapes keep changing)
            _CONST.clear()
        c = _CONST[key] = xp.full(shape, value, dt)
        c.flags.writeable = False
    return c


# float32/64 dtype -> {Python number: that number as a read-only 0-d array of the dtype}: a
# ufunc against a cached 0-d array takes NumPy's trivial loop, against a Python number first its
# weak-scalar conversion: (32, 64) float32 ``h - 0.05`` 0.92 -> 0.58 us, and after another
# library's step has evicted the caches ~1 us less (thread CPU, 1 thread)
_SCALARS = {float32._np: ({}, 3.4028234663852886e38), float64._np: ({}, 1.7976931348623157e308)}


def scalar_operand(a, v, dt):
    """Python number ``v`` as the other operand of array ``a``'s ufunc in ``a``'s dtype ``dt``,
    float32/64: a cached 0-d array of ``dt`` and ``a``'s array type, holding ``v`` cast as NumPy
    casts a weak scalar (the same bits); ``v`` itself for other dtypes, for an ``a`` of another
    dtype, and for 0, NaN and values beyond the dtype's."""
    entry = _SCALARS.get(dt) if a.dtype is dt else None
    if entry is None:
        return v
    cache = entry[0]
    c = cache.get(v)
    if c is None or c.__class__ is not a.__class__:
        # (0 and -0.0 share a key; NaN never finds its own)
        if c is not None or not 0 < abs(v) <= entry[1] or a.__class__ not in _ARRAY_TYPES:
            return v
        c = _ARRAY_TYPES[a.__class__][0].asarray(v, dtype=dt)
        if c.__class__ is not a.__class__:  # (a sparse array's module makes a dense one)
            return v
        if len(cache) >= 256:  # (bounded where scalars keep changing)
            cache.clear()
        c.flags.writeable = False
        cache[v] = c
    return c


def _ones(xp, n, dt):
    """``_ONES[(xp, n, dt)]``, made on first use: False for dtypes BLAS does not take."""
    if len(_ONES) > 256:
        _ONES.clear()
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        ones = False
    else:
        ones = xp.ones(n, dt)
        ones.flags.writeable = False
    _ONES[(xp, n, dt)] = ones
    return ones


def plain(arr) -> Tensor:
    """A result with no history (comparisons, tests); honours inference mode."""
    if type(arr) not in _ARRAY_TYPES:  # ufuncs give scalars for 0-d inputs
        arr = asarray(arr)
    t = _make(arr)
    if state.inference:
        t._inference = True
    return t


def reduce_grad(g: Tensor, shape, dtype) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` and cast it to the input's ``dtype``."""
    if shape is None:  # the input had the result's shape and dtype (``_meta``'s ``_SAME``)
        return g
    gs = g._data.shape
    if gs != shape and gs != tuple(shape):  # ``g`` was broadcast from ``shape``: no checks
        if state.grad or state.intercept:
            g = SumToSize.apply(g, tuple(shape))
        else:  # no graph to build, no mode to see it: the sum alone (~1.5 us less)
            d = g._data
            g = plain(_sum_to(_ARRAY_TYPES[type(d)][0], d, tuple(shape)))
    if g._data.dtype is not dtype and g._data.dtype != dtype:
        if g._data.dtype.kind == "c" and dtype.kind != "c":
            g = g.real  # a real input of a complex result gets the real part (PyTorch's rule)
        g = g.to(from_np(dtype))
    return g


def conj_grads(grads):
    """Each complex tensor of ``grads`` conjugated (others as they are)."""
    out = []
    for g in grads:
        if g is not None and isinstance(g, Tensor) and g._data.dtype.kind == "c":
            g = g.conj()
        out.append(g)
    return tuple(out)


def holomorphic(backward):
    """Decorate the ``backward`` of an op whose real formula is its complex derivative.

    NOTE [ Complex gradients ]
    PyTorch's gradient of a real loss L w.r.t. a complex z is the conjugate Wirtinger
    derivative, conj(dL/dz); for a holomorphic f the chain rule is then
    grad_in = grad_out * conj(f'(z)) = conj(conj(grad_out) * f'(z)).  So the real formula
    (``grad_out * f'(z)``, linear in the gradient) serves complex inputs unchanged when it
    is fed ``conj(grad_out)`` and its results are conjugated; real results (a real input's
    share of a complex product, see ``reduce_grad``) are conj-free.  Real gradients go
    straight through: the float path pays one dtype test.  Ops that are real-linear (add,
    sum, views, indexing) need no decoration; non-holomorphic ones (abs, angle, real, conj)
    write their complex formula in ops/complex.py.
    """
    def run(ctx, g, *rest):  # (one gradient, real: one test, no packing; ~0.1 us a node)
        if rest or g is not None and g._data.dtype.kind == "c":
            grads = (g,) + rest
            if any(x is not None and x._data.dtype.kind == "c" for x in grads):
                return conj_grads(_as_tuple(backward(ctx, *conj_grads(grads))))
            return backward(ctx, *grads)
        return backward(ctx, g)
    run.__name__ = backward.__name__
    run.__doc__ = backward.__doc__
    return staticmethod(run)


def _as_tuple(x):
    return x if type(x) is tuple else (x,)


def normalize_dims(dim, ndim: int):
    """A sorted tuple of non-negative dims from an int, a sequence or None (all dims)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (builtins.int,)) or hasattr(dim, "__index__") and not isinstance(
            dim, (tuple, list)):
        return (_wrap_dim(dim, ndim),)
    dims = tuple(_wrap_dim(d, ndim) for d in dim)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"dim {dims} appears multiple times in the list of dims")
    return tuple(sorted(dims)) if dims else tuple(range(ndim))


def check_broadcast(sa, sb):
    """Raise PyTorch's error when two shapes do not broadcast."""
    for i in range(1, min(len(sa), len(sb)) + 1):
        x, y = sa[-i], sb[-i]
        if x != y and x != 1 and y != 1:
            raise RuntimeError(
                f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                f"non-singleton dimension {max(len(sa), len(sb)) - i}")


def is_float(dt) -> bool:
    """Whether backend dtype ``dt`` is floating (ml_dtypes' bfloat16 has NumPy kind 'V')."""
    return dt.kind == "f" or dt.name == "bfloat16"


def is_complex(dt) -> bool:
    """Whether backend dtype ``dt`` is complex."""
    return dt.kind == "c"


def refuse_complex(dt, msg: str, exc=RuntimeError):
    """Raise ``exc(msg)`` (PyTorch's words, ``{}`` filled with c10's dtype name) when backend
    dtype ``dt`` is complex."""
    if dt.kind == "c":
        raise exc(msg.format(scalar_name(dt)))


def scalar_name(npd) -> str:
    """c10's name of a backend dtype as PyTorch's messages print it ("Float", "Long")."""
    return from_np(npd).scalar_name


def c_name(npd) -> str:
    """The C++ type of a backend dtype as c10's messages print it ("float", "long int")."""
    return from_np(npd).c_name


def need_tensor(x, fn: str, name: str = "input", pos: int = 1, optional: bool = False,
                wrap_arrays: bool = False):
    """``x`` if it is a Tensor, else PyTorch's "fn(): argument 'name' (position pos) must be
    Tensor, not T"; ``optional`` lets None through, ``wrap_arrays`` takes a backend array."""
    if isinstance(x, Tensor) or optional and x is None:
        return x
    if wrap_arrays and type(x) in _ARRAY_TYPES:
        return _make(x)
    raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be Tensor, not "
                    f"{type(x).__name__}")
