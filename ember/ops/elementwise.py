"""Elementwise ops: arithmetic, unary math, clamps and selections, rounding, comparisons.

Binary ops promote with PyTorch's rules (``result_dtype``) and compute in that
dtype by handing it to the ufunc (``dtype=``), so operands are cast inside the
loop instead of copied first.  The rare cases the fast call rejects (shapes that
do not broadcast, Python ints out of the dtype's range, bfloat16 scalars) go
through ``_slow``, which raises PyTorch's error or casts explicitly.  The
backward of a binary op sums broadcast gradients back to each input's shape and
dtype (``reduce_grad``).  ``a - b`` is not a primitive of its own in spirit
(micrograd writes it as ``a + (-b)``), but it is one node here because that is
what PyTorch records (``SubBackward0``).

Gradient formulas are PyTorch's (tools/autograd/derivatives.yaml), written with
ember ops so ``create_graph=True`` differentiates them again.  Each class saves
what PyTorch saves, so an in-place change of that tensor fails backward the same
way: with several differentiable inputs, an operand only the gradient of another
input reads is kept only when that input needs a gradient (``y = h * c`` keeps ``c``
for h's gradient, and ``h`` only if ``c`` requires grad; see NOTE [ Saved tensors ]).
"""
from __future__ import annotations

import builtins
import contextlib
import math
import operator
import warnings

from .. import _backend
from .._creation import check_scalar_int
from .._dtype import result_type_of
from .._tensor import Tensor, _make, _version_counter
from ..autograd.function import (Function, accumulate_node, _NO_EDGE, _NONE_SAVED, _NEEDS1,
                                  _FLOAT_NP, _IN as _SAVED_IN, _OUT as _SAVED_OUT,
                                  _CONST as _SAVED_CONST)
from ..autograd.inplace import copy_into_out, inplace, make_inplace
from ..autograd.grad_mode import state
from . import _workspace as _ws
from . import _pointwise as _pw
from . import _blas
from . import _util
from ._util import (result_dtype, cast, reduce_grad, shape_of, check_broadcast, float_dtype,
                    need_tensor, scalar_name, c_name, holomorphic, is_float, plain as _plain,
                    scalar_operand, _sum_to, const)

__all__ = [
    # arithmetic
    "add", "sub", "subtract", "rsub", "mul", "multiply", "div", "divide", "true_divide",
    "floor_divide", "remainder", "fmod", "pow", "float_power", "square", "neg", "negative",
    "positive", "abs", "absolute", "sign", "sgn", "signbit", "reciprocal",
    # unary math
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
    "asin", "arcsin", "acos", "arccos", "atan", "arctan", "atan2", "arctan2", "sinh", "cosh",
    "tanh", "asinh", "arcsinh", "acosh", "arccosh", "atanh", "arctanh", "erf", "erfc", "erfinv",
    "sigmoid", "logit", "relu", "hypot", "copysign", "deg2rad", "rad2deg",
    # clamps, selection, blends
    "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "where",
    "lerp", "addcmul", "addcdiv",
    # rounding
    "floor", "ceil", "round", "trunc", "fix", "frac",
    # comparisons, logic, bits, tests
    "eq", "ne", "not_equal", "lt", "less", "le", "less_equal", "gt", "greater", "ge",
    "greater_equal", "equal", "allclose", "isclose", "logical_and", "logical_or", "logical_xor",
    "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "bitwise_left_shift", "bitwise_right_shift", "isnan", "isinf", "isfinite", "isposinf",
    "isneginf", "nan_to_num",
]

# NOTE [ Floating-point warnings ]
# NumPy warns on floating-point edge cases (log(0), x / 0, overflow) that PyTorch computes
# silently; the values are the IEEE ones either way.  This filter, scoped to this module,
# hides them at no cost per call.  Where the user turns warnings into errors (``-W error``,
# pytest's ``filterwarnings = error``, ``np.seterr(all="raise")``) the ufunc raises instead,
# and the op runs again with the backend's error state off (``_quiet``).
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)

_ARRAY_TYPES = _backend._BY_ARRAY_TYPE
_FP_ERRORS = (RuntimeWarning, FloatingPointError)
# What a ufunc called with ``dtype=`` raises for operands it will not take as they are,
# or for floating-point edge cases the user made errors: ``_slow`` handles both.
_SLOW = (ValueError, OverflowError, TypeError) + _FP_ERRORS
_PY_NUMBERS = frozenset((builtins.float, builtins.int))  # operands ``scalar_operand`` takes
_INT64, _UINT64 = 2 ** 63, 2 ** 64  # the Python ints a PyTorch Scalar holds: [-2**63, 2**64)


# ---- operands and results ----------------------------------------------------------------

def _number(x):
    """``x`` as a Tensor or Python number, or None when PyTorch would not take it.

    A Python int outside [-2**63, 2**64) raises PyTorch's OverflowError (its Scalar holds an
    int64 or a uint64), whatever the tensor's dtype."""
    if isinstance(x, Tensor):
        return x
    # NumPy's float64/complex128 subclass float/complex, but NumPy promotes with their dtype
    # (float32 ** np.float64 -> float64) and ember's casts take them for arrays: plain numbers
    if isinstance(x, builtins.float):
        return x if x.__class__ is builtins.float else builtins.float(x)
    if isinstance(x, builtins.complex):
        return x if x.__class__ is builtins.complex else builtins.complex(x)
    if isinstance(x, builtins.int):
        if -_INT64 <= x < _UINT64:
            return x
        return check_scalar_int(x)  # (its OverflowError)
    if type(x) in _ARRAY_TYPES:  # PyTorch's functions refuse a NumPy array (its operators
        return None  # leave it to NumPy: _array_operand)
    if hasattr(x, "dtype") and hasattr(x, "item"):  # a NumPy scalar
        v = x.item()
        # PyTorch reads a NumPy bool as a float: t - np.bool_(True) is t - 1.0 (t - True
        # raises), and an int or bool tensor with one gives float32
        return builtins.float(v) if v.__class__ is builtins.bool else v
    return None


def _operand(x, name: str, arg: str = "other", pos: int = 2):
    """``x`` as an op operand, or PyTorch's TypeError."""
    y = _number(x)
    if y is None:
        raise TypeError(f"{name}(): argument '{arg}' (position {pos}) must be Tensor, not "
                        f"{_type_name(x)}")
    return y


def _type_name(x) -> str:
    """``x``'s type as PyTorch's errors print it (``numpy.ndarray``, ``str``)."""
    tp = type(x)
    return tp.__qualname__ if tp.__module__ == "builtins" else f"{tp.__module__}.{tp.__qualname__}"


def _dt(x):
    return x.dtype if hasattr(x, "dtype") else None


def _meta(a, b, dt=None) -> tuple:
    """``(shape, dtype)`` of both operands (a Python number: ``()``, None) for a backward.

    Given the result's ``dt``: ``_SAME`` when each array operand has the result's shape and
    dtype, so ``reduce_grad`` passes the gradient through without reading them.
    """
    if a.__class__ is not builtins.float and hasattr(a, "dtype"):
        # (``hasattr`` of a missing name costs an exception: floats are tested first)
        if b.__class__ is not builtins.float and hasattr(b, "dtype"):
            sa, sb, da, db = a.shape, b.shape, a.dtype, b.dtype
            return _SAME if sa == sb and da is dt and db is dt else (sa, da, sb, db)
        return _SAME if a.dtype is dt else (a.shape, a.dtype, (), None)
    return (), None, shape_of(b), _dt(b)


_SAME = (None, None, None, None)  # ``reduce_grad(g, None, None)`` is ``g``


def _arr(x):
    return x._data if isinstance(x, Tensor) else x


def _xp(*xs):
    """The array module of the first tensor among ``xs``."""
    for x in xs:
        if isinstance(x, Tensor):
            return _ARRAY_TYPES[type(x._data)][0]
    raise TypeError("expected at least one Tensor argument")


def _out(result: Tensor, out) -> Tensor:
    """Honour PyTorch's ``out=`` argument by copying into the given tensor."""
    if out is None:
        return result
    return copy_into_out(out, result)


def _unary_function(cls, doc: str, checked: bool = False):
    """The public ``name(input, *, out=None)`` of unary op ``cls`` (``name``: its lower case).

    A ``checked`` one refuses a non-Tensor with ``need_tensor``'s error (and takes a NumPy
    array); the others leave that to the op's forward (``_Unary`` names the function itself).
    """
    name = cls.__name__.lower()
    if isinstance(getattr(cls, "saves", None), str):  # (NOTE [ Recorded without apply ])
        def fn(input, *, out=None) -> Tensor:
            if input.__class__ is Tensor and input._requires_grad and state.grad and \
                    out is None and not state.intercept:
                r = _recorded1(cls, input)
                if r is not None:
                    return r
            if checked and not isinstance(input, Tensor):
                input = need_tensor(input, name, wrap_arrays=True)
            return cls.apply(input) if out is None else _out(cls.apply(input), out)
    elif checked:
        def fn(input, *, out=None) -> Tensor:
            if not isinstance(input, Tensor):  # (two calls fewer on the hot path)
                input = need_tensor(input, name, wrap_arrays=True)
            return cls.apply(input) if out is None else _out(cls.apply(input), out)
    else:
        def fn(input, *, out=None) -> Tensor:
            return cls.apply(input) if out is None else _out(cls.apply(input), out)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _binary_function(impl, op, name: str, doc: str):
    """The public ``name(input, other, *, out=None)``: ``impl(op, name, input, other, out)``.

    ``op`` is the ufunc's name or the op class; ``impl``'s errors give ``name``.
    """
    def fn(input, other, *, out=None) -> Tensor:
        return impl(op, name, input, other, out)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _as_dtype(xp, x, dt):
    """Array or Python scalar ``x`` as an array of dtype ``dt``."""
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        return cast(x, dt)
    if isinstance(x, builtins.int) and dt.kind in "iu":
        return xp.asarray(x).astype(dt)  # out-of-range ints wrap around, as in PyTorch
    return xp.asarray(x, dtype=dt)


def _operands(a, b, dt):
    """``a`` and ``b`` cast to ``dt`` explicitly, after PyTorch's broadcast check."""
    sa, sb = shape_of(a), shape_of(b)
    if sa != sb:
        check_broadcast(sa, sb)
    xp = _backend.xp_of(a if hasattr(a, "shape") else b)
    return _as_dtype(xp, a, dt), _as_dtype(xp, b, dt)


def _quiet(xp):
    """A context with the backend's floating-point warnings off (see NOTE above)."""
    errstate = getattr(xp, "errstate", None)
    return errstate(all="ignore") if errstate is not None else contextlib.nullcontext()


def _slow(fn, a, b, dt):
    """The fallback of a binary ufunc call: explicit casts, floating-point warnings off."""
    with _quiet(_backend.xp_of(a if hasattr(a, "shape") else b)):
        return fn(*_operands(a, b, dt))


def _calc(fn, a, b, dt):
    """Ufunc ``fn(a, b)`` computed in dtype ``dt``."""
    try:
        return fn(a, b, dtype=dt)
    except _SLOW:
        return _slow(fn, a, b, dt)


def _arith(fn, a, b, dt, round_operands=False):
    """The arithmetic operators' ``_calc`` (called on the hot path only for 2-byte dtypes): a
    float16/bfloat16 result is computed in float32 and rounded once, as PyTorch's CPU kernels
    do (their "opmath" type), 2-4x faster than NumPy's and ml_dtypes' half loops.  PyTorch's
    add/sub first round a scalar or 0-d operand to the result dtype (``round_operands``);
    its mul/div do not (checked against torch in test_elementwise)."""
    if dt.kind == "f" or dt.name == "bfloat16":
        if round_operands:
            a, b = _operands(a, b, dt)
        return _calc(fn, a, b, "float32").astype(dt)
    return _calc(fn, a, b, dt)


def _fp_safe(forward):
    """``forward`` run again with floating-point warnings off if they were made errors."""
    def run(ctx, *args):
        try:
            return forward(ctx, *args)
        except _FP_ERRORS:
            with _quiet(ctx.xp):
                return forward(ctx, *args)
    return staticmethod(run)


def _bshape(*shapes):
    """The broadcast shape of ``shapes``, raising PyTorch's error when they do not match."""
    out = ()
    for s in shapes:
        if s != out:
            check_broadcast(out, s)
            n = builtins.max(len(out), len(s))
            a, b = (1,) * (n - len(out)) + tuple(out), (1,) * (n - len(s)) + tuple(s)
            out = tuple(y if x == 1 else x for x, y in zip(a, b))
    return out


def _zeros(g: Tensor, shape, dt) -> Tensor:
    """A zero gradient for an input of ``shape`` and dtype ``dt``."""
    return _make(_backend.xp_of(g._data).zeros(shape, dt))


def _not_implemented(kernel: str, dt):
    return NotImplementedError(f'"{kernel}" not implemented for \'{scalar_name(dt)}\'')


def _is_int(dt) -> bool:
    return dt.kind in "iub"


def _is_bool(x) -> bool:
    """Whether array or number ``x`` is boolean."""
    if hasattr(x, "dtype"):
        return x.dtype.kind == "b"
    return x is True or x is False


def _check_zero_division(xp, b, dt):
    """Integer division by zero raises in PyTorch (NumPy would give 0)."""
    if dt.kind in "iu" and xp.any(xp.equal(b, 0)):
        raise RuntimeError("ZeroDivisionError")


# ---- add, sub, mul, div --------------------------------------------------------------------

def _scaled(b, alpha, dt):
    """``alpha * b`` for the ``alpha=`` argument of add/sub."""
    if hasattr(b, "shape"):
        return _calc(_backend.xp_of(b).multiply, b, alpha, dt)
    return b * alpha


def _axpy_new(a, b, alpha, dt):
    """``a + alpha * b`` as a copy of ``a`` and one fused BLAS pass, so that add/sub with
    ``alpha`` round as PyTorch's (and as ``add_``'s fast path: NOTE [ axpy ]) wherever the
    arrays are large, contiguous, of one shape and of float32/64 ``dt``; else None."""
    if dt.kind != "f" or dt.itemsize == 2 or b.__class__ is not a.__class__ or \
            a.dtype is not dt or b.dtype is not dt or a.shape != b.shape or \
            a.size < _blas.MIN_SIZE or builtins.isinstance(alpha, builtins.bool) or \
            not b.flags.c_contiguous:
        return None
    f = _blas.axpy(dt.char)
    if f is None:
        return None
    out = a.copy(order="C")
    return out if f(out, b, alpha) else None


def _check_alpha(alpha, dt):
    if alpha.__class__ is builtins.int:
        _number(alpha)  # (PyTorch's OverflowError beyond a Scalar's range)
    if isinstance(alpha, builtins.bool):
        if dt.kind != "b":
            raise RuntimeError("Boolean alpha only supported for Boolean results.")
    elif isinstance(alpha, builtins.float) and _is_int(dt):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating "
                           "point number.")


class Add(Function):
    raw = True
    backward_name = "AddBackward0"
    edges = 2  # (not ``dt``, ``alpha``)

    @staticmethod
    def forward(ctx, a, b, dt, alpha=1):
        if ctx._record:
            ctx.meta = _meta(a, b, dt) + (alpha,)
        if alpha != 1:
            out = _axpy_new(a, b, alpha, dt)
            if out is not None:
                return out
            b = _scaled(b, alpha, dt)
        if dt.itemsize == 2:
            return _arith(ctx.xp.add, a, b, dt, True)
        try:
            if b.__class__ in _PY_NUMBERS:  # a cached 0-d array, no ``dtype=``: 0.3 us less
                c = scalar_operand(a, b, dt)
                if c is not b:
                    return ctx.xp.add(a, c)
            return ctx.xp.add(a, b, dtype=dt)
        except _SLOW:
            return _slow(ctx.xp.add, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db, alpha = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g, sa, da) if na else None,
                reduce_grad(g if alpha == 1 else g * alpha, sb, db) if nb else None, None, None)


class Sub(Function):
    raw = True
    backward_name = "SubBackward0"
    edges = 2  # (not ``dt``, ``alpha``)

    @staticmethod
    def forward(ctx, a, b, dt, alpha=1):
        if ctx._record:
            ctx.meta = _meta(a, b, dt) + (alpha,)
        if dt.kind == "b":
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        # a bool operand (Python bool, or an array not already in ``dt``) is refused too
        if a.__class__ is bool or b.__class__ is bool or (
                a.__class__ is not builtins.float and getattr(a, "dtype", dt) is not dt and
                _is_bool(a)) or (b.__class__ is not builtins.float and
                                 getattr(b, "dtype", dt) is not dt and _is_bool(b)):
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        if alpha != 1:
            out = _axpy_new(a, b, -alpha, dt)
            if out is not None:
                return out
            b = _scaled(b, alpha, dt)
        if dt.itemsize == 2:
            return _arith(ctx.xp.subtract, a, b, dt, True)
        try:
            if b.__class__ in _PY_NUMBERS:  # a cached 0-d array, no ``dtype=``: 0.3 us less
                c = scalar_operand(a, b, dt)
                if c is not b:
                    return ctx.xp.subtract(a, c)
            return ctx.xp.subtract(a, b, dtype=dt)
        except _SLOW:
            return _slow(ctx.xp.subtract, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db, alpha = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g, sa, da) if na else None,
                reduce_grad(_grad_node(Neg, g) if alpha == 1 else g * -alpha, sb, db) if nb
                else None, None, None)


class Rsub(Sub):
    """``other - alpha * input``: PyTorch records it as its own node."""

    backward_name = "RsubBackward0"

    @staticmethod
    def forward(ctx, a, b, dt, alpha=1):
        return Sub.forward(ctx, b, a, dt, alpha)

    @staticmethod
    def backward(ctx, g):
        sb, db, sa, da, alpha = ctx.meta  # Sub.forward saw (other, input)
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(_grad_node(Neg, g) if alpha == 1 else g * -alpha, sa, da) if na
                else None, reduce_grad(g, sb, db) if nb else None, None, None)


class RsubScalar(Rsub):
    backward_name = "RsubBackward1"
    edges = 1  # (PyTorch's rsub.Scalar: the number is no input)


class Mul(Function):
    raw = True
    backward_name = "MulBackward0"
    edges = 2  # (not ``dt``)
    saves_inputs = True

    @staticmethod
    def forward(ctx, a, b, dt):
        if ctx._record:
            ctx.meta = _meta(a, b, dt)
            need = ctx.needs_input_grad  # PyTorch keeps ``b`` for a's gradient, ``a`` for b's
            ctx.save_for_backward(a if need[1] else None, b if need[0] else None)
        if dt.itemsize == 2:
            return _arith(ctx.xp.multiply, a, b, dt)
        try:
            if b.__class__ in _PY_NUMBERS:  # a cached 0-d array, no ``dtype=``: 0.3 us less
                c = scalar_operand(a, b, dt)
                if c is not b:
                    return ctx.xp.multiply(a, c)
            return ctx.xp.multiply(a, b, dtype=dt)
        except _SLOW:
            return _slow(ctx.xp.multiply, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        gd = g._data
        if state.grad or state.intercept or gd.dtype.kind != "f" or gd.dtype.itemsize == 2:
            return Mul.general_backward(ctx, g)  # a graph to build, a mode, complex, half
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        need = ctx.needs_input_grad
        return (_times(g, gd, b, sa, da) if need[0] else None,
                _times(g, gd, a, sb, db) if need[1] else None, None)

    @holomorphic
    def general_backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g * b, sa, da) if na else None,
                reduce_grad(g * a, sb, db) if nb else None, None)


def _times(g, gd, o, shape, dt, ufunc="multiply", op=operator.mul):
    """``reduce_grad(g * o, shape, dt)`` for a real float ``g`` with no graph to build and no
    mode to see it: ``o`` of ``g``'s dtype and array type (or a Python number) multiplied and
    summed to ``shape`` on arrays, one tensor made (~0.5 us less than ``g * o`` and its
    ``reduce_grad``); other operands through them.  ``ufunc``/``op``: another operator."""
    if isinstance(o, Tensor):
        od = o._data
        ok = od.dtype is gd.dtype and type(od) is type(gd)
    else:
        ok = o.__class__ in _PY_NUMBERS
        od = scalar_operand(gd, o, gd.dtype) if ok else o
    if ok:
        xp = _ARRAY_TYPES[type(gd)][0]
        try:
            r = getattr(xp, ufunc)(gd, od)
        except _SLOW:  # (errors made of floating-point warnings: the general path)
            ok = False
    if not ok:
        return reduce_grad(op(g, o), shape, dt)
    if shape is not None and r.shape != shape:  # ``o`` was broadcast against ``g``
        r = _sum_to(xp, r, tuple(shape))
    if dt is not None and dt is not r.dtype:
        return reduce_grad(_plain(r), shape, dt)  # (a cast: another dtype's operand)
    return _plain(r)


class Div(Function):
    raw = True
    backward_name = "DivBackward0"
    edges = 2  # (not ``dt``)
    saves_inputs = True

    @staticmethod
    def forward(ctx, a, b, dt):
        if ctx._record:
            ctx.meta = _meta(a, b, dt)
            # both gradients read ``b``; only b's reads ``a``
            ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        if dt.itemsize == 2:
            return _arith(ctx.xp.true_divide, a, b, dt)
        try:
            if b.__class__ in _PY_NUMBERS:  # a cached 0-d array, no ``dtype=``: 0.3 us less
                c = scalar_operand(a, b, dt)
                if c is not b:
                    return ctx.xp.true_divide(a, c)
            return ctx.xp.true_divide(a, b, dtype=dt)
        except _SLOW:
            return _slow(ctx.xp.true_divide, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        gd = g._data
        if state.grad or state.intercept or gd.dtype.kind != "f" or gd.dtype.itemsize == 2 \
                or ctx.needs_input_grad[1]:  # (b's gradient: three ops, as written below)
            return Div.general_backward(ctx, g)
        b = ctx.saved_tensors[1]  # (as Mul's: on arrays, one tensor made)
        return _times(g, gd, b, ctx.meta[0], ctx.meta[1], "true_divide", operator.truediv), \
            None, None

    @holomorphic
    def general_backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g / b, sa, da) if na else None,
                reduce_grad(-g * a / (b * b), sb, db) if nb else None, None)


def _checked_div(xp, fn, kernel, a, b, dt):
    """``fn(a, b)`` in ``dt`` (floor division, modulus), refusing bool and division by int 0.

    ``kernel`` is the name PyTorch's error for a bool ``dt`` gives.
    """
    if dt.kind in "bc":
        raise _not_implemented(kernel, dt)
    _check_zero_division(xp, b, dt)
    return _calc(fn, a, b, dt)


def _trunc_div(xp, a, b, dt):
    if dt.kind == "b":
        raise _not_implemented("div_trunc_cpu", dt)
    if dt.kind in "iu":
        _check_zero_division(xp, b, dt)
        a, b = _operands(a, b, dt)
        return xp.floor_divide(a - xp.fmod(a, b), b)  # exact: a - fmod(a, b) is a multiple of b
    return xp.trunc(_calc(xp.true_divide, a, b, dt))


class DivMode(Function):
    """``div`` with ``rounding_mode``: piecewise constant, so its gradient is zero."""

    raw = True
    backward_name = "DivBackward2"
    edges = 2  # (not ``dt``, ``mode``)
    saves_inputs = True

    @staticmethod
    def forward(ctx, a, b, dt, mode):
        if ctx._record:
            ctx.meta = _meta(a, b)
            # Unused by the zero gradient, but PyTorch's DivBackward2 keeps them as
            # DivBackward0 does, so an in-place change of them fails backward the same way.
            ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        if mode == "floor":
            return _checked_div(ctx.xp, ctx.xp.floor_divide, "div_floor_cpu", a, b, dt)
        return _trunc_div(ctx.xp, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        ctx.saved_tensors  # unpacked only for the version check PyTorch makes
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (_zeros(g, sa, da) if na else None, _zeros(g, sb, db) if nb else None, None, None)


class _NoDerivative(Function):
    """Ops PyTorch does not differentiate: backward raises its error."""

    raw = True
    backward_name = "torch::autograd::NotImplemented"
    aten = ""

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError(f"derivative for aten::{ctx.aten} is not implemented")


class FloorDivide(_NoDerivative):
    aten = "floor_divide"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, b, dt):
        return _checked_div(ctx.xp, ctx.xp.floor_divide, "div_floor_cpu", a, b, dt)


class FloorDivideScalar(FloorDivide):
    edges = 1  # (a number ``other`` is no input of PyTorch's node)


class FloorDivideOfScalar(FloorDivide):
    edges = slice(1, 2)  # (``number // tensor``: nor is a number ``input``)


def add(input, other, *, alpha=1, out=None) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    if not isinstance(other, Tensor):
        other = _operand(other, "add")
    dt = result_dtype(input, other)
    if alpha != 1 or alpha is True:
        _check_alpha(alpha, dt)
    r = Add.apply(input, other, dt, alpha)
    return r if out is None else _out(r, out)


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    """``input - alpha * other``."""
    if not isinstance(other, Tensor):
        other = _operand(other, "sub")
    dt = result_dtype(input, other)
    if alpha != 1 or alpha is True:
        _check_alpha(alpha, dt)
    r = Sub.apply(input, other, dt, alpha)
    return r if out is None else _out(r, out)


subtract = sub


def rsub(input, other, *, alpha=1) -> Tensor:
    """``other - alpha * input``."""
    input = need_tensor(input, "rsub", wrap_arrays=True)
    if not isinstance(other, Tensor):
        other = _operand(other, "rsub")
    dt = result_dtype(input, other)
    if alpha != 1 or alpha is True:
        _check_alpha(alpha, dt)
    cls = Rsub if isinstance(other, Tensor) else RsubScalar
    return cls.apply(input, other, dt, alpha)


def mul(input, other, *, out=None) -> Tensor:
    """``input * other``."""
    if not isinstance(other, Tensor):
        other = _operand(other, "mul")
    r = Mul.apply(input, other, result_dtype(input, other))
    return r if out is None else _out(r, out)


multiply = mul


def div(input, other, *, rounding_mode=None, out=None) -> Tensor:
    """``input / other``; ``rounding_mode`` 'trunc' or 'floor' rounds (ints then stay ints)."""
    if not isinstance(other, Tensor):
        other = _operand(other, "div")
    dt = result_dtype(input, other)
    if rounding_mode is None:
        r = Div.apply(input, other, float_dtype(dt))
    elif rounding_mode == "trunc" or rounding_mode == "floor":
        r = DivMode.apply(input, other, dt, rounding_mode)
    else:
        raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                           f"but found '{rounding_mode}'")
    return r if out is None else _out(r, out)


divide = div


def true_divide(dividend, divisor, *, out=None) -> Tensor:
    """``dividend / divisor`` (always true division)."""
    return div(dividend, divisor, out=out)


def floor_divide(input, other, *, out=None) -> Tensor:
    """``input // other``: division rounded towards minus infinity (Python's ``//``)."""
    if not isinstance(other, Tensor):
        other = _operand(other, "floor_divide")
    cls = FloorDivideScalar if not isinstance(other, Tensor) else FloorDivide if isinstance(
        input, Tensor) else FloorDivideOfScalar
    return _out(cls.apply(input, other, result_dtype(input, other)), out)


# ---- remainder, fmod ------------------------------------------------------------------------

class Remainder(Function):
    """``a - floor(a / b) * b``: the result takes the sign of ``b`` (Python's ``%``)."""

    raw = True
    backward_name = "RemainderBackward1"
    rounding = "floor"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, b, dt):
        if ctx._record:
            ctx.meta = _meta(a, b)
            if ctx.needs_input_grad[1]:  # only b's gradient reads the operands
                ctx.save_for_backward(a, b)
        return ctx._compute(ctx.xp, a, b, dt)

    @staticmethod
    def _compute(xp, a, b, dt):
        return _checked_div(xp, xp.remainder, "remainder_cpu", a, b, dt)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gb = None
        if nb:
            a, b = ctx.saved_tensors
            gb = reduce_grad(-g * div(a, b, rounding_mode=ctx.rounding), sb, db)
        return reduce_grad(g, sa, da) if na else None, gb, None


class RemainderScalar(Remainder):
    backward_name = "RemainderBackward0"
    edges = 1  # (PyTorch's remainder.Scalar: the number is no input)


class Fmod(Remainder):
    """``a - trunc(a / b) * b``: the result takes the sign of ``a`` (C's ``fmod``)."""

    backward_name = "FmodBackward1"
    rounding = "trunc"

    @staticmethod
    def _compute(xp, a, b, dt):
        return _checked_div(xp, xp.fmod, "fmod_cpu", a, b, dt)


class FmodScalar(Fmod):
    backward_name = "FmodBackward0"
    edges = 1


class RemainderOfScalar(_NoDerivative):
    """``number % tensor``."""

    aten = "remainder"
    edges = slice(1, 2)  # (the tensor only)

    @staticmethod
    def forward(ctx, a, b, dt):
        return Remainder._compute(ctx.xp, a, b, dt)


def remainder(input, other, *, out=None) -> Tensor:
    """Python's modulus ``input % other`` (sign of the divisor)."""
    if not isinstance(input, Tensor):
        input = _operand(input, "remainder", "input", 1)
        if not isinstance(input, Tensor):
            other = need_tensor(other, "remainder", "other", 2, wrap_arrays=True)
            return _out(RemainderOfScalar.apply(input, other, result_dtype(input, other)), out)
    if not isinstance(other, Tensor):
        other = _operand(other, "remainder")
    cls = Remainder if isinstance(other, Tensor) else RemainderScalar
    return _out(cls.apply(input, other, result_dtype(input, other)), out)


def fmod(input, other, *, out=None) -> Tensor:
    """C's ``fmod``: remainder of truncated division (sign of the dividend)."""
    input = need_tensor(input, "fmod", wrap_arrays=True)
    if not isinstance(other, Tensor):
        other = _operand(other, "fmod")
    cls = Fmod if isinstance(other, Tensor) else FmodScalar
    return _out(cls.apply(input, other, result_dtype(input, other)), out)


# ---- pow ------------------------------------------------------------------------------------

def _pow_scalar(xp, x, e):
    """``x ** e`` for a Python exponent, with PyTorch's exact fast paths for floats."""
    if x.dtype.kind == "f":
        if e == 2:
            return x * x
        if e == 0.5:
            return xp.sqrt(x)
        if e == 3:
            return x * x * x
        if e == -1:
            return 1 / x
        if e == -2:
            return 1 / (x * x)
        if e == -0.5:
            return 1 / xp.sqrt(x)
    return xp.power(x, e)


def _int_pow(xp, a, e, dt):
    """Integer ``a ** e`` as PyTorch computes it: negative ``e`` gives 0 unless |a| is 1."""
    a, e = _operands(a, e, dt)
    neg = e < 0
    if not xp.any(neg):
        return xp.power(a, e)
    r = xp.power(a, xp.where(neg, 0, e))
    odd = xp.remainder(e, 2) != 0
    inv = xp.where(a == 1, 1, xp.where(a == -1, xp.where(odd, -1, 1), 0))
    return xp.where(neg, inv, r).astype(dt)


def _log_number(v) -> float:
    if v > 0:
        return math.log(v)
    return -math.inf if v == 0 else math.nan


class Pow(Function):
    """``tensor ** number``."""

    raw = True
    backward_name = "PowBackward0"
    edges = 1  # (PyTorch's pow.Tensor_Scalar: the number is no input)

    @_fp_safe
    def forward(ctx, a, e, dt):
        if _is_int(dt):
            if dt.kind == "b":  # a bool exponent: x ** True is x, x ** False is True
                if not isinstance(e, builtins.bool):
                    raise _not_implemented("pow", dt)
                return a.copy() if e else ctx.xp.ones(a.shape, dt)
            if e < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            e = _checked_int(ctx.xp, e, dt)
        ctx.e = e
        ctx.save_for_backward(a)
        return _pow_scalar(ctx.xp, cast(a, dt), e)

    @holomorphic
    def backward(ctx, g):
        a, = ctx.saved_tensors
        e = ctx.e
        if e == 0:
            return _zeros(g, a._data.shape, a._data.dtype), None, None
        ga = g * (e * a.pow(e - 1))
        if e.__class__ is builtins.complex and a._data.dtype.kind != "c":
            ga = ga.real  # a real base under a complex exponent: the real part
        return ga, None, None


class PowTensor(Function):
    """``tensor ** tensor`` (and ``number ** tensor`` as ``PowBackward2``)."""

    raw = True
    backward_name = "PowBackward1"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, e, dt):
        if ctx._record:
            ctx.meta = (shape_of(a), _dt(a), shape_of(e), _dt(e))
        xp = ctx.xp
        if _is_int(dt):
            if dt.kind == "b":
                raise _not_implemented("pow", dt)
            y = _int_pow(xp, a, e, dt)
        else:
            y = _calc(xp.power, a, e, dt)
        ctx.save_for_backward(a, e, y)
        return y

    @holomorphic
    def backward(ctx, g):
        a, e, y = ctx.saved_tensors
        sa, da, se, de = ctx.meta
        ga = ge = None
        if ctx.needs_input_grad[0]:
            ga = reduce_grad(where(e == 0, 0.0, g * (e * a.pow(e - 1))), sa, da)
        if ctx.needs_input_grad[1]:
            if isinstance(a, Tensor):
                # a complex exponent's real part decides, as PyTorch's pow_backward_exponent
                zero_base = logical_and(a == 0, (e.real if e.is_complex() else e) >= 0)
                ge = g * where(zero_base, 0.0, y * a.log())
            else:
                ge = g * (where(e >= 0, 0.0, y * _log_number(a)) if a == 0
                          else y * _log_number(a))
            ge = reduce_grad(ge, se, de)
        return ga, ge, None


class PowOfScalar(PowTensor):
    backward_name = "PowBackward2"
    edges = slice(1, 2)  # (PyTorch's pow.Scalar: the number base is no input)


def pow(input, exponent, *, out=None) -> Tensor:
    """``input ** exponent``; either may be a number, ints raised to negative ints raise."""
    if not isinstance(input, Tensor):
        input = _operand(input, "pow", "self", 1)
        exponent = need_tensor(exponent, "pow", "exponent", 2, wrap_arrays=True)
        if not isinstance(input, Tensor):
            return _out(PowOfScalar.apply(input, exponent, result_dtype(input, exponent)), out)
    if not isinstance(exponent, Tensor):
        exponent = _operand(exponent, "pow", "exponent")
    if isinstance(exponent, Tensor):
        return _out(PowTensor.apply(input, exponent, result_dtype(input, exponent)), out)
    return _out(Pow.apply(input, exponent, result_dtype(input, exponent)), out)


def float_power(input, exponent, *, out=None) -> Tensor:
    """``input ** exponent`` computed in float64 (complex128 when either is complex)."""
    from .._dtype import float64, complex128
    cplx = builtins.any(isinstance(v, builtins.complex) or isinstance(v, Tensor) and
                        v._data.dtype.kind == "c" for v in (input, exponent))
    wide, num = (complex128, builtins.complex) if cplx else (float64, builtins.float)
    if isinstance(input, Tensor):
        input = input.to(wide)
    else:
        input = num(_operand(input, "float_power", "input", 1))
    if isinstance(exponent, Tensor):
        exponent = exponent.to(wide)
    else:
        exponent = num(_operand(exponent, "float_power", "exponent"))
    return pow(input, exponent, out=out)


def square(input, *, out=None) -> Tensor:
    """``input * input`` (as ``input ** 2``)."""
    return pow(input, 2, out=out)


# ---- sign-like unary ops --------------------------------------------------------------------

class Neg(Function):
    raw = True
    backward_name = "NegBackward0"
    saves = ""  # (nothing: for ``_recorded1``)

    @staticmethod
    def forward(ctx, a):
        if a.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return ctx.xp.negative(a)

    @staticmethod
    def formula(xp, a):
        return xp.negative(a)

    @staticmethod
    def backward(ctx, g):
        return _grad_node(Neg, g)


def _sign_array(xp, a):
    """``sign`` with NaN mapped to 0, as PyTorch does."""
    if a.dtype.kind == "b":
        return a.copy()
    if a.dtype.kind == "u":
        return (a > 0).astype(a.dtype)
    if a.dtype.kind == "c":
        raise NotImplementedError("Unlike NumPy, torch.sign is not intended to support complex "
                                  "numbers. Please use torch.sgn instead.")
    return xp.subtract(a > 0, a < 0, dtype=a.dtype)


class Abs(Function):
    raw = True
    backward_name = "AbsBackward0"

    @staticmethod
    def forward(ctx, a):
        if a.dtype.kind == "b":
            raise _not_implemented("abs_cpu", a.dtype)
        ctx.save_for_backward(a)
        return ctx.xp.abs(a)

    @staticmethod
    def backward(ctx, g):
        a, = ctx.saved_tensors
        return g * sgn(a)


class Sign(Function):
    raw = True
    backward_name = "SignBackward0"

    @staticmethod
    def forward(ctx, a):
        ctx.meta = (a.shape, a.dtype)
        return _sign_array(ctx.xp, a)

    @staticmethod
    def backward(ctx, g):
        return _zeros(g, *ctx.meta)


class Sgn(Sign):
    """``sign`` for real inputs; ``z / |z|`` (0 at 0) for complex ones."""

    backward_name = "SgnBackward0"

    @staticmethod
    def forward(ctx, a):
        if a.dtype.kind != "c":
            return Sign.forward(ctx, a)
        ctx.save_for_backward(a)
        xp = ctx.xp
        r = xp.abs(a)
        with _quiet(xp):
            return xp.where(r == 0, 0, a / r).astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        if not ctx.saved_tensors:
            return Sign.backward(ctx, g)
        z, = ctx.saved_tensors
        # s = z/|z|: grad = (g - Re(g * conj(s)) * s) / |z|, 0 at z = 0 (PyTorch's sgn_backward)
        r = z.abs()
        s = z.sgn()
        return where(r == 0, 0.0, (g - (g * s.conj()).real * s) / r)


neg = _unary_function(Neg, "``-input``.", checked=True)
abs = _unary_function(Abs, "``|input|``.", checked=True)
sign = _unary_function(Sign, "-1, 0 or 1 by the sign of each element (0 for NaN).", checked=True)
sgn = _unary_function(Sgn, "``sign`` (the complex-aware name).", checked=True)
negative, absolute = neg, abs


def positive(input) -> Tensor:
    """``+input``: ``input`` itself."""
    input = need_tensor(input, "positive", wrap_arrays=True)
    if input._data.dtype.kind == "b":
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


def signbit(input, *, out=None) -> Tensor:
    """Whether the sign bit is set (True for -0.0)."""
    a = need_tensor(input, "signbit", wrap_arrays=True)._data
    xp = _backend.xp_of(a)
    k = a.dtype.kind
    r = xp.signbit(a) if k == "f" or k == "V" else (a < 0 if k == "i" else xp.zeros(a.shape, bool))
    return _out(_plain(r), out)


# ---- float-valued unary math ----------------------------------------------------------------

class _Unary(Function):
    """A float-valued unary op; integer and bool inputs compute in the default float dtype.

    Subclasses (made by ``_unary``) give ``fn(xp, x)`` on arrays, ``grad(g, x, y)`` on
    tensors and ``saves``: which of input ``x`` and result ``y`` PyTorch keeps.
    """

    raw = True
    saves = ""
    saves_inputs = True  # the input or the result

    @staticmethod
    def forward(ctx, a):
        xp = ctx.xp
        if xp is None:
            raise TypeError(f"{ctx.name()[:-9].lower()}(): argument 'input' (position 1) must "
                            f"be Tensor, not {type(a).__name__}")
        x = a
        dt = a.dtype
        if dt.kind != "f" or dt.itemsize == 2:  # (one test on the float32/float64 hot path)
            if dt.kind != "f":
                a = x = cast(a, float_dtype(dt))
            # half precision computes in float32 and rounds once, as PyTorch's CPU kernels do
            if a.dtype.itemsize == 2:
                x = a.astype("float32")
        try:
            y = ctx.fn(xp, x)
        except _FP_ERRORS:
            with _quiet(xp):
                y = ctx.fn(xp, x)
        if x is not a:
            y = y.astype(a.dtype)
        if ctx._record:  # (nothing to save otherwise: no tuple, no call)
            s = ctx.saves
            if s:
                ctx.save_for_backward(*((a,) if s == "x" else (y,) if s == "y" else (a, y)))
        return y

    @holomorphic
    def backward(ctx, g):
        s = ctx.saves
        saved = ctx.saved_tensors
        x = saved[0] if s[:1] == "x" else None
        y = saved[-1] if s[-1:] == "y" else None
        return ctx.grad(g, x, y)


def _unary(name: str, fn, saves: str, grad, backward_name: str = None):
    """A ``_Unary`` op class: ``fn(xp, x)`` forward, ``grad(g, x, y)`` backward."""
    return type(name, (_Unary,), {
        "backward_name": backward_name or name + "Backward0", "saves": saves,
        "fn": staticmethod(fn), "grad": staticmethod(grad)})


_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

Exp = _unary("Exp", lambda xp, x: xp.exp(x), "y", lambda g, x, y: g * y)
Exp2 = _unary("Exp2", lambda xp, x: xp.exp2(x), "y", lambda g, x, y: g * (y * _LN2))
Expm1 = _unary("Expm1", lambda xp, x: xp.expm1(x), "y", lambda g, x, y: g * (y + 1))
Log = _unary("Log", lambda xp, x: xp.log(x), "x", lambda g, x, y: g / x)
Log2 = _unary("Log2", lambda xp, x: xp.log2(x), "x", lambda g, x, y: g / (x * _LN2))
Log10 = _unary("Log10", lambda xp, x: xp.log10(x), "x", lambda g, x, y: g / (x * _LN10))
Log1p = _unary("Log1p", lambda xp, x: xp.log1p(x), "x", lambda g, x, y: g / (x + 1),
               "Log1PBackward0")
Sqrt = _unary("Sqrt", lambda xp, x: xp.sqrt(x), "y", lambda g, x, y: g / (2 * y))
Rsqrt = _unary("Rsqrt", lambda xp, x: 1 / xp.sqrt(x), "y",
               lambda g, x, y: -0.5 * g * y.pow(3))
Sin = _unary("Sin", lambda xp, x: xp.sin(x), "x", lambda g, x, y: g * x.cos())
Cos = _unary("Cos", lambda xp, x: xp.cos(x), "x", lambda g, x, y: g * -x.sin())
Tan = _unary("Tan", lambda xp, x: xp.tan(x), "y", lambda g, x, y: g * (1 + y.pow(2)))
Asin = _unary("Asin", lambda xp, x: xp.arcsin(x), "x",
              lambda g, x, y: g * (-x * x + 1).rsqrt())
Acos = _unary("Acos", lambda xp, x: xp.arccos(x), "x",
              lambda g, x, y: g * -(-x * x + 1).rsqrt())
Atan = _unary("Atan", lambda xp, x: xp.arctan(x), "x", lambda g, x, y: g / (x * x + 1))
Sinh = _unary("Sinh", lambda xp, x: xp.sinh(x), "x", lambda g, x, y: g * x.cosh())
Cosh = _unary("Cosh", lambda xp, x: xp.cosh(x), "x", lambda g, x, y: g * x.sinh())
Tanh = _unary("Tanh", lambda xp, x: xp.tanh(x), "y",
              lambda g, x, y: _grad_node(_TanhGrad, g, y))
Asinh = _unary("Asinh", lambda xp, x: xp.arcsinh(x), "x",
               lambda g, x, y: g * (x.pow(2) + 1).rsqrt())
Acosh = _unary("Acosh", lambda xp, x: xp.arccosh(x), "x",
               # complex: 1/(sqrt(z-1) sqrt(z+1)), the branch arccosh takes (PyTorch's)
               lambda g, x, y: g * ((x - 1).rsqrt() * (x + 1).rsqrt() if x.is_complex()
                                    else (x.pow(2) - 1).rsqrt()))
Atanh = _unary("Atanh", lambda xp, x: xp.arctanh(x), "x",
               lambda g, x, y: g * (1 / (1 - x.pow(2))))


def _sigmoid(xp, x):
    """``1 / (1 + exp(-x))`` in one temporary: the same numbers, three allocations fewer."""
    if not x.ndim:  # (NumPy gives 0-d results as scalars, which take no ``out=``)
        return 1 / (1 + xp.exp(-x))
    # (not in cached blocks: exp is compute-bound, and blocks measured 6-26% slower, 256 KiB
    # to 8 MiB float32, one thread)
    # (NumPy converts a Python 1 on each call: ~0.15 us a ufunc; against an array of ones,
    # small, it takes its SIMD loop: ``const``)
    one = x.dtype.type(1) if x.nbytes > _CONST_BYTES or type(x) is not xp.ndarray else \
        const(xp, x.shape, x.dtype, 1)
    t = xp.negative(x)
    xp.exp(t, out=t)
    xp.add(t, one, out=t)
    return xp.true_divide(one, t, out=t)


Sigmoid = _unary("Sigmoid", _sigmoid, "y",
                 lambda g, x, y: _grad_node(_SigmoidGrad, g, y))
Reciprocal = _unary("Reciprocal", lambda xp, x: 1 / x, "y", lambda g, x, y: -g * (y * y))
Deg2rad = _unary("Deg2rad", lambda xp, x: x * (math.pi / 180), "",
                 lambda g, x, y: g * (math.pi / 180), "Deg2RadBackward0")
Rad2deg = _unary("Rad2deg", lambda xp, x: x * (180 / math.pi), "",
                 lambda g, x, y: g * (180 / math.pi), "Rad2DegBackward0")


exp = _unary_function(Exp, "``e ** input``.")
exp2 = _unary_function(Exp2, "``2 ** input``.")
expm1 = _unary_function(Expm1, "``exp(input) - 1``, accurate near 0.")
log = _unary_function(Log, "Natural logarithm.")
log2 = _unary_function(Log2, "Base-2 logarithm.")
log10 = _unary_function(Log10, "Base-10 logarithm.")
log1p = _unary_function(Log1p, "``log(1 + input)``, accurate near 0.")
sqrt = _unary_function(Sqrt, "Square root.")
rsqrt = _unary_function(Rsqrt, "``1 / sqrt(input)``.")
sin = _unary_function(Sin, "Sine.")
cos = _unary_function(Cos, "Cosine.")
tan = _unary_function(Tan, "Tangent.")
asin = _unary_function(Asin, "Inverse sine.")
acos = _unary_function(Acos, "Inverse cosine.")
atan = _unary_function(Atan, "Inverse tangent.")
sinh = _unary_function(Sinh, "Hyperbolic sine.")
cosh = _unary_function(Cosh, "Hyperbolic cosine.")
tanh = _unary_function(Tanh, "Hyperbolic tangent.")
asinh = _unary_function(Asinh, "Inverse hyperbolic sine.")
acosh = _unary_function(Acosh, "Inverse hyperbolic cosine.")
atanh = _unary_function(Atanh, "Inverse hyperbolic tangent.")
sigmoid = _unary_function(Sigmoid, "``1 / (1 + exp(-input))``.")
reciprocal = _unary_function(Reciprocal, "``1 / input``.")
deg2rad = _unary_function(Deg2rad, "Degrees to radians.")
rad2deg = _unary_function(Rad2deg, "Radians to degrees.")
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


class Relu(Function):
    """``max(input, 0)``; keeps integer dtypes.

    -0.0 gives +0.0, where PyTorch keeps -0.0: the gradient's exact bit trick
    (``_ReluGrad.formula``, ``_pw.relu_grad``) needs +0 in the saved result, and the cheapest
    variant that keeps -0.0 found costs the gradient one more pass over the bits (1.20 -> 1.63
    us at (32, 64) float32), so it is not taken.
    """

    raw = True
    backward_name = "ReluBackward0"
    saves_inputs = True  # the result
    saves = "y"  # (what ``_recorded1`` saves: as ``forward``)

    @staticmethod
    def forward(ctx, a):
        dt = a.dtype
        if dt.kind in "bc":
            if dt.kind == "c":  # relu is clamp_min(0) in PyTorch
                raise NotImplementedError("clamp is not supported for complex types")
            raise RuntimeError("Boolean inputs not supported for relu")
        xp = ctx.xp
        big = a.nbytes >= _ws.MIN_BYTES
        if dt.itemsize == 2 and is_float(dt):  # exact either way; float32 is faster
            y = xp.maximum(a.astype("float32"), 0).astype(dt)
        elif a.nbytes >= _pw.RELU_BYTES and _pw.dense_float(a):  # blocks, threads
            y = _pw.relu(xp, a)
        elif getattr(a, "flags", None) is not None and a.flags.c_contiguous:  # against a zero
            # array NumPy takes its SIMD loop: 1.5-3x faster than against a broadcast scalar 0;
            # zeros in a workspace block: a fresh 2 MB one page-faulted (NOTE [ Workspace ]),
            # ~0.8 ms a call in gpt_step, where relu made nearly all of the step's faults
            # (small arrays do not fault: against cached zeros, ``const``, no zero-fill)
            if big:
                y = _ws.zeros(xp, a.shape, dt)
                xp.maximum(a, y, out=y)
            else:
                y = xp.maximum(a, const(xp, a.shape, dt, 0))
        else:  # (keeps the input's memory layout, as PyTorch does)
            y = xp.maximum(a, 0)
        if ctx._record:
            ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        if not (state.grad or state.intercept):  # (``_grad_node``'s formula path, one frame less)
            gd = g._data
            yd = _saved_array(ctx)
            if type(yd) is type(gd):
                return _plain(_ReluGrad.formula(_ARRAY_TYPES[type(gd)][0], gd, yd))
        y, = ctx.saved_tensors
        return _grad_node(_ReluGrad, g, y)


def _saved_array(ctx):
    """The array of ``ctx``'s one saved output, read as ``ctx.saved_tensors[0]._data`` reads it
    (version checked) without making its tensor: ~0.3 us less a node."""
    saved = ctx._saved
    if saved is not None:
        e = saved[0]
        if e[0] == _SAVED_OUT and (e[3] is None or e[3][0] == e[4]):
            return e[1]
    return ctx.saved_tensors[0]._data  # (freed, hooks, a changed version: its error)


class _ReluGrad(Function):
    """``g`` where not ``y <= 0`` else 0 (PyTorch's threshold_backward), as one node.

    ``y`` is relu's result (>= 0 or NaN), so the mask is ``y != 0``: a NaN input passes its
    gradient, as in PyTorch.  ``g * mask`` measured 12x faster than ``where`` on
    (64, 6, 28, 28) float32 (random masks defeat branch prediction); ``where`` only reruns
    when a non-finite ``g`` would leave NaN (inf * 0) where PyTorch gives 0.  Linear in ``g``,
    so its gradient is itself.
    """

    raw = True
    backward_name = "ThresholdBackwardBackward0"

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(y)
        return _ReluGrad.formula(ctx.xp, g, y)

    @staticmethod
    def formula(xp, g, y):
        big = y.nbytes >= _ws.MIN_BYTES  # (small arrays do not fault: plain ones are faster)
        if y.nbytes >= _pw.RELU_BYTES and _pw.dense_float(g):  # exact, two passes (NOTE
            # [ Blocked pointwise passes ]); between MIN_BYTES and RELU_BYTES the mask below
            out = _pw.relu_grad(xp, g, y)
            if out is not None:
                return out
        elif not big and g.dtype is y.dtype and g.shape == y.shape and g.ndim:
            # _pw.relu_grad's exact two passes without its blocks: bits(g) * min(bits(y), 1)
            # (~1 us less than the mask, its bool->float cast and the NaN test at (32, 64))
            ut = _RELU_BITS.get(g.dtype) if type(g) is xp.ndarray else None
            if ut is None and type(g) is xp.ndarray:
                ut = _relu_bits(xp, g.dtype)
            if ut is not None and type(y) is type(g) and _pw._plus_zero(xp, g.dtype):
                # (against cached ones NumPy takes its SIMD loop: see ``const``)
                m = xp.minimum(y.view(ut[0]), const(xp, g.shape, ut[0], 1))
                return xp.multiply(g.view(ut[0]), m, out=m).view(g.dtype)
        mask = xp.not_equal(y, 0, out=_ws.empty(xp, y.shape, bool)) if big else y != 0
        if g.dtype.itemsize == 2 and is_float(g.dtype):  # exact; float32 loops are faster
            out = (g.astype("float32") * mask).astype(g.dtype)
        elif big and g.shape == mask.shape and g.dtype.kind == "f":  # in a workspace block
            out = xp.multiply(g, mask, out=_ws.empty(xp, g.shape, g.dtype))
        else:
            out = g * mask
        if out.dtype != g.dtype:
            out = out.astype(g.dtype)
        # a product is wrong only where it is NaN (inf * 0), and the max propagates NaN: one
        # pass, no mask, no overflow (a sum could), 1.2-2x faster than an all-finite test
        m = xp.maximum.reduce(out, axis=None) if out.size else 0
        if m != m:
            out = xp.where(mask, g, xp.zeros((), dtype=g.dtype))
        return out

    @staticmethod
    def backward(ctx, gg):
        y, = ctx.saved_tensors
        return _grad_node(_ReluGrad, gg, y), None


_CONST_BYTES = _util.CONST_BYTES
_RELU_BITS = {}  # float32/64 dtype -> (the unsigned dtype of its bits, that dtype's 1)


def _relu_bits(xp, dt):
    """``_RELU_BITS[dt]``, made on first use; None for other dtypes."""
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        return None
    u = xp.dtype(f"uint{8 * dt.itemsize}")
    ut = _RELU_BITS[dt] = (u, u.type(1))
    return ut


def _grad_node(cls, g: Tensor, y: Tensor = None) -> Tensor:
    """``cls.apply(g[, y])`` in a backward formula (``_ReluGrad``, ``Neg``...); with no graph
    to build and no mode to see it (no ``create_graph``), its array ``formula`` alone,
    without a node: ~1.5 us less per call."""
    gd = g._data
    if y is None:
        if state.grad or state.intercept:
            return cls.apply(g)
        return _plain(cls.formula(_ARRAY_TYPES[type(gd)][0], gd))
    yd = y._data
    if state.grad or state.intercept or type(gd) is not type(yd):
        return cls.apply(g, y)
    return _plain(cls.formula(_ARRAY_TYPES[type(gd)][0], gd, yd))


def _opmath(fn, g, y):
    """``fn(g, y)`` on arrays; half precision computes in float32 and rounds once (PyTorch's
    CPU kernels' "opmath" type)."""
    if g.dtype.itemsize == 2 and is_float(g.dtype):
        return fn(g.astype("float32"), y.astype("float32")).astype(g.dtype)
    out = fn(g, y)
    return out if out.dtype == g.dtype else out.astype(g.dtype)


def _tanh_grad(g, y):
    return g * (1 - y * y)


def _sigmoid_grad(g, y):
    return (g * (1 - y)) * y


class _TanhGrad(Function):
    """``g * (1 - y * y)`` as one node: PyTorch's ``tanh_backward`` (TanhBackwardBackward0).

    One NumPy expression instead of three recorded ops: the backward of ``tanh`` costs one
    op's overhead, and half precision rounds once, as PyTorch's kernel does.
    """

    raw = True
    backward_name = "TanhBackwardBackward0"

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return _TanhGrad.formula(ctx.xp, g, y)

    @staticmethod
    def formula(xp, g, y):
        if g.nbytes >= _ws.MIN_BYTES and _pw.dense_float(g):  # the temporary in cache
            out = _pw.tanh_grad(xp, g, y)
            if out is not None:
                return out
        return _opmath(_tanh_grad, g, y)

    @holomorphic
    def backward(ctx, gg):
        g, y = ctx.saved_tensors
        return _grad_node(_TanhGrad, gg, y), gg * (-2 * y * g)


class _SigmoidGrad(Function):
    """``g * (1 - y) * y`` as one node: PyTorch's ``sigmoid_backward`` (see ``_TanhGrad``)."""

    raw = True
    backward_name = "SigmoidBackwardBackward0"

    @staticmethod
    def forward(ctx, g, y):
        ctx.save_for_backward(g, y)
        return _SigmoidGrad.formula(ctx.xp, g, y)

    @staticmethod
    def formula(xp, g, y):
        if g.dtype.kind == "f" and g.dtype.itemsize == 2:  # PyTorch's float16 kernel rounds
            return (g * (1 - y)) * y                        # each step (its bfloat16 one not)
        if g.nbytes >= _ws.MIN_BYTES and _pw.dense_float(g):  # the temporary in cache
            out = _pw.sigmoid_grad(xp, g, y)
            if out is not None:
                return out
        return _opmath(_sigmoid_grad, g, y)

    @holomorphic
    def backward(ctx, gg):
        g, y = ctx.saved_tensors
        return _grad_node(_SigmoidGrad, gg, y), gg * g * (1 - 2 * y)


def _tanh_grad_small(xp, g, y, one):
    t = xp.multiply(y, y)  # ``g * (1 - y * y)``: the same steps in one temporary
    xp.subtract(one, t, out=t)
    return xp.multiply(g, t, out=t)


def _sigmoid_grad_small(xp, g, y, one):
    t = xp.subtract(one, y)  # ``(g * (1 - y)) * y``: the same steps in one temporary
    xp.multiply(g, t, out=t)
    return xp.multiply(t, y, out=t)


def _lean_backward(cls, grad_cls, small):
    """``cls.backward`` (Tanh, Sigmoid, Exp) that, with no graph to build and no mode to see
    it (a backward without ``create_graph``), runs ``grad_cls``'s formula on the arrays straight
    from the saved result: no ``_grad_node``/lambda/``holomorphic`` frames; a small array
    (below the blocked kernels' size) in one temporary (``small``): ~0.6 us less a node.
    ``grad_cls`` None: ``small`` is the whole formula, at every size."""
    general = cls.backward

    def backward(ctx, g):
        gd = g._data
        dt = gd.dtype
        if state.grad or state.intercept or dt.kind != "f" or dt.itemsize == 2:
            return general(ctx, g)
        yd = _saved_array(ctx)
        if type(yd) is not type(gd):  # (another device: the general path's error)
            return general(ctx, g)
        xp = _ARRAY_TYPES[type(gd)][0]
        try:
            if yd.dtype is dt and (grad_cls is None or gd.ndim and gd.nbytes < _ws.MIN_BYTES
                                   and type(gd) is xp.ndarray):
                # (the formulas' 1 as cached ones: ``const``; exp's reads none)
                one = dt.type(1) if grad_cls is None else const(xp, gd.shape, dt, 1)
                return _plain(small(xp, gd, yd, one))
            if grad_cls is None:
                return general(ctx, g)
            return _plain(grad_cls.formula(xp, gd, yd))
        except _FP_ERRORS:  # (warnings made errors: the general path, as before)
            return general(ctx, g)
    backward.__doc__ = general.__doc__
    return staticmethod(backward)


Tanh.backward = _lean_backward(Tanh, _TanhGrad, _tanh_grad_small)
Exp.backward = _lean_backward(Exp, None, lambda xp, g, y, one: xp.multiply(g, y))  # g * y
Sigmoid.backward = _lean_backward(Sigmoid, _SigmoidGrad, _sigmoid_grad_small)


def relu(input) -> Tensor:
    """``max(input, 0)``."""
    if input.__class__ is Tensor and input._requires_grad and state.grad and \
            not state.intercept:  # (NOTE [ Recorded without apply ])
        r = _recorded1(Relu, input)
        if r is not None:
            return r
    if not isinstance(input, Tensor):
        input = need_tensor(input, "relu", wrap_arrays=True)
    return Relu.apply(input)


class Logit(Function):
    """``log(p / (1 - p))``, with ``p`` clamped to ``[eps, 1 - eps]`` when ``eps`` is given."""

    raw = True
    backward_name = "LogitBackward0"
    edges = 1  # (PyTorch's inputs: the tensor arguments before the numbers)

    @_fp_safe
    def forward(ctx, a, eps):
        a = cast(a, float_dtype(a.dtype))
        ctx.eps = eps
        ctx.save_for_backward(a)
        x = a if eps is None else ctx.xp.clip(a, eps, 1 - eps)
        return ctx.xp.log(x / (1 - x))

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        eps = ctx.eps
        d = g / (x * (1 - x))
        if eps is None:
            return where(logical_or(x < 0, x > 1), math.nan, d), None
        return where(logical_or(x < eps, x > 1 - eps), 0.0, d), None


def logit(input, eps=None, *, out=None) -> Tensor:
    """``log(input / (1 - input))``."""
    return _out(Logit.apply(need_tensor(input, "logit", wrap_arrays=True), eps), out)


class Atan2(Function):
    raw = True
    backward_name = "Atan2Backward0"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, b, dt):
        if dt.kind == "c":
            raise _not_implemented("atan2_cpu", dt)
        ctx.meta = _meta(a, b)
        ctx.save_for_backward(a, b)
        return _calc(ctx.xp.arctan2, a, b, dt)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        r = g / (a * a + b * b)
        return (reduce_grad(r * b, sa, da) if ctx.needs_input_grad[0] else None,
                reduce_grad(r * -a, sb, db) if ctx.needs_input_grad[1] else None, None)


def atan2(input, other, *, out=None) -> Tensor:
    """The angle of the point ``(other, input)``: ``atan(input / other)`` in the right quadrant."""
    input = need_tensor(input, "atan2", wrap_arrays=True)
    other = need_tensor(other, "atan2", "other", 2, wrap_arrays=True)
    return _out(Atan2.apply(input, other, float_dtype(result_dtype(input, other))), out)


arctan2 = atan2


class Hypot(Function):
    raw = True
    backward_name = "HypotBackward0"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, b, dt):
        if _is_int(dt) or dt.kind == "c":
            raise _not_implemented("hypot_cpu", dt)
        ctx.meta = _meta(a, b)
        y = _calc(ctx.xp.hypot, a, b, dt)
        if ctx._record:
            need = ctx.needs_input_grad  # each operand is read by its own gradient only
            ctx.save_for_backward(a if need[0] else None, b if need[1] else None, y)
        return y

    @staticmethod
    def backward(ctx, g):
        a, b, y = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        return (reduce_grad(g * a / y, sa, da) if ctx.needs_input_grad[0] else None,
                reduce_grad(g * b / y, sb, db) if ctx.needs_input_grad[1] else None, None)


def hypot(input, other, *, out=None) -> Tensor:
    """``sqrt(input**2 + other**2)`` without overflow."""
    input = need_tensor(input, "hypot", wrap_arrays=True)
    other = need_tensor(other, "hypot", "other", 2, wrap_arrays=True)
    return _out(Hypot.apply(input, other, result_dtype(input, other)), out)


class Copysign(Function):
    raw = True
    backward_name = "CopysignBackward0"
    edges = 2  # (not ``dt``)

    @staticmethod
    def forward(ctx, a, b, dt):
        if dt.kind == "c":
            raise _not_implemented("copysign_cpu", dt)
        ctx.meta = _meta(a, b)
        y = _calc(ctx.xp.copysign, a, b, dt)
        if ctx._record and ctx.needs_input_grad[0]:
            ctx.save_for_backward(a, y)
        return y

    @staticmethod
    def backward(ctx, g):
        # d/da |a| sign(b) = sign(a) sign(b) = y / a, taken as 0 at a = 0 (PyTorch's choice);
        # the sign of ``other`` has a zero gradient
        sa, da, sb, db = ctx.meta
        gb = _make(ctx.xp.zeros(sb, dtype=db)) if ctx.needs_input_grad[1] else None
        if not ctx.needs_input_grad[0]:
            return None, gb, None
        a, y = ctx.saved_tensors
        ratio = where(a == 0, 0.0, y / a)
        return reduce_grad(g * ratio, sa, da), gb, None


def copysign(input, other, *, out=None) -> Tensor:
    """``|input|`` with the sign of ``other`` (a tensor or a number), as a float."""
    input = need_tensor(input, "copysign", wrap_arrays=True)
    if not isinstance(other, Tensor):
        other = _operand(other, "copysign")
    cls = Copysign if isinstance(other, Tensor) else CopysignScalar
    return _out(cls.apply(input, other, float_dtype(result_dtype(input, other))), out)


class CopysignScalar(Copysign):
    backward_name = "CopysignBackward1"
    edges = 1  # (PyTorch's copysign.Scalar: the number is no input)


# ---- erf, erfc, erfinv ----------------------------------------------------------------------
# SciPy has them when installed; otherwise a pure-array fallback: a positive-term series for
# erf below 2.5 (no cancellation), a continued fraction for erfc above, and Halley's method
# on those for erfinv.  Both reach float64 accuracy (~1e-15 relative).

_scipy_special = None  # scipy.special once looked up, False when it is not installed

_ERF_SPLIT = 2.5
_ERF_TERMS = 40        # series terms for |x| < 2.5 (tested to 1.3e-15 relative)
_ERFC_DEPTH = 40       # continued-fraction depth for |x| >= 2.5 (tested to 1.5e-15)


def _special(xp):
    """``scipy.special`` for NumPy arrays when SciPy is importable, else None."""
    global _scipy_special
    if _scipy_special is None:
        try:
            import scipy.special as sp
        except ImportError:
            sp = False
        _scipy_special = sp
    return _scipy_special if _scipy_special and xp.__name__ == "numpy" else None


def _erf_parts(xp, x):
    """``(erf(|x|), erfc(|x|))`` in float64; each accurate where it is not close to 1."""
    a = xp.abs(x.astype("float64"))
    small = a < _ERF_SPLIT
    # erf(a) = 2/sqrt(pi) exp(-a^2) sum_k 2^k a^(2k+1) / (2k+1)!!  (all terms positive)
    s_in = xp.where(small, a, 0.0)
    term = s_in
    total = s_in
    two_a2 = 2 * s_in * s_in
    for k in range(1, _ERF_TERMS + 1):
        term = term * two_a2 / (2 * k + 1)
        total = total + term
    erf_small = _TWO_OVER_SQRT_PI * xp.exp(-s_in * s_in) * total
    # erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))
    c_in = xp.where(small, _ERF_SPLIT, a)
    f = c_in
    for k in range(_ERFC_DEPTH, 0, -1):
        f = c_in + (k / 2) / f
    erfc_large = xp.exp(-c_in * c_in) / (math.sqrt(math.pi) * f)
    erf_a = xp.where(small, erf_small, 1 - erfc_large)
    erfc_a = xp.where(small, 1 - erf_small, erfc_large)
    erf_a = xp.where(a != a, a, erf_a)  # NaN stays NaN
    erfc_a = xp.where(a != a, a, erfc_a)
    return erf_a, erfc_a


def _erf_fallback(xp, x):
    erf_a, _ = _erf_parts(xp, x)
    return xp.where(x < 0, -erf_a, erf_a)


def _erfc_fallback(xp, x):
    _, erfc_a = _erf_parts(xp, x)
    return xp.where(x < 0, 2 - erfc_a, erfc_a)


def _erfinv_fallback(xp, x):
    """Winitzki's closed form (error ~2e-3), then three Halley steps on erf (or erfc)."""
    p = xp.abs(x.astype("float64"))
    inside = p < 1
    q = xp.where(inside, p, 0.5)
    c = 2 / (math.pi * 0.147)
    ln = xp.log1p(-q * q)
    y = xp.sqrt(xp.sqrt((c + ln / 2) ** 2 - ln / 0.147) - (c + ln / 2))
    upper = q > 0.5  # solve erfc(y) = 1 - q there: 1 - q is exact and keeps the tail accurate
    for _ in range(3):
        erf_y, erfc_y = _erf_parts(xp, y)
        f = xp.where(upper, (1 - q) - erfc_y, erf_y - q)
        r = f / (_TWO_OVER_SQRT_PI * xp.exp(-y * y))
        y = y - r / (1 + y * r)
    y = xp.where(inside, y, xp.where(p == 1, math.inf, math.nan))
    y = xp.where(p != p, p, y)
    return xp.where(x < 0, -y, y)


def _special_fn(name, fallback):
    def fn(xp, x):
        sp = _special(xp)
        y = getattr(sp, name)(x) if sp else fallback(xp, x)
        return y.astype(x.dtype, copy=False) if y.dtype != x.dtype else y
    return fn


Erf = _unary("Erf", _special_fn("erf", _erf_fallback), "x",
             lambda g, x, y: _TWO_OVER_SQRT_PI * (-x.pow(2)).exp() * g)
Erfc = _unary("Erfc", _special_fn("erfc", _erfc_fallback), "x",
              lambda g, x, y: -_TWO_OVER_SQRT_PI * (-x.pow(2)).exp() * g)
Erfinv = _unary("Erfinv", _special_fn("erfinv", _erfinv_fallback), "x",
                lambda g, x, y: 0.5 * math.sqrt(math.pi) * x.erfinv().pow(2).exp() * g)


erf = _unary_function(Erf, "The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``.")
erfc = _unary_function(Erfc, "``1 - erf(input)``, accurate where erf is close to 1.")
erfinv = _unary_function(Erfinv, "The inverse of ``erf`` on (-1, 1).")


# ---- clamp, maximum, where, lerp, addcmul ---------------------------------------------------

class Clamp(Function):
    """``min(max(input, lo), hi)`` with number bounds."""

    raw = True
    backward_name = "ClampBackward1"
    edges = 1

    @staticmethod
    def forward(ctx, a, lo, hi, dt):
        ctx.bounds = (lo, hi)
        ctx.save_for_backward(a)
        xp = ctx.xp
        if _is_int(dt):
            if dt.kind == "b":
                kernel = "clamp_max" if lo is None else "clamp_min" if hi is None else "clamp"
                raise _not_implemented(kernel + "_scalar_cpu", dt)
            lo = None if lo is None else _checked_int(xp, lo, dt)
            hi = None if hi is None else _checked_int(xp, hi, dt)
        x = cast(a, dt)
        if lo is not None:
            x = xp.maximum(x, lo)
        if hi is not None:
            x = xp.minimum(x, hi)
        return x.copy() if x is a else x

    @staticmethod
    def backward(ctx, g):
        a, = ctx.saved_tensors
        return where(_within(a, *ctx.bounds), g, 0.0), None, None, None


def _within(a: Tensor, lo, hi) -> Tensor:
    """Where ``lo <= a <= hi`` (a bound may be None): where clamp passes its gradient."""
    if lo is None:
        return a <= hi
    if hi is None:
        return a >= lo
    return logical_and(a >= lo, a <= hi)


_C_TYPES = {"uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int",
            "int64": "int64_t"}


def _checked_int(xp, v, dt):
    """Python int ``v`` as PyTorch converts a scalar argument: range-checked, except that
    negatives wrap around for unsigned types."""
    info = xp.iinfo(dt)
    low = -info.max if dt.kind == "u" else info.min
    if not low <= v <= info.max:
        if not -2 ** 63 <= v < 2 ** 64:
            raise OverflowError("int too big to convert")
        raise RuntimeError(f"value cannot be converted to type {_C_TYPES[dt.name]} without "
                           "overflow")
    return _int_scalar(xp, v, dt)


class ClampMin(Clamp):
    backward_name = "ClampMinBackward0"


class ClampMax(Clamp):
    backward_name = "ClampMaxBackward0"


class ClampTensor(Function):
    """``min(max(input, lo), hi)`` with tensor bounds (either may be None)."""

    raw = True
    backward_name = "ClampBackward0"
    edges = 3  # (clamp_max's are input and max: ClampMaxTensor keeps min's None between)

    @staticmethod
    def forward(ctx, a, lo, hi, dt):
        ctx.meta = tuple((shape_of(v), _dt(v)) for v in (a, lo, hi))
        ctx.save_for_backward(a, lo, hi)
        xp = ctx.xp
        _bshape(*(shape_of(v) for v in (a, lo, hi) if v is not None))
        x = cast(a, dt)
        if lo is not None:
            x = xp.maximum(x, cast(lo, dt))
        if hi is not None:
            x = xp.minimum(x, cast(hi, dt))
        return x

    @staticmethod
    def backward(ctx, g):
        a, lo, hi = ctx.saved_tensors
        (sa, da), (sl, dl), (sh, dh) = ctx.meta
        need = ctx.needs_input_grad
        ga = glo = ghi = None
        if need[0]:
            ga = reduce_grad(where(_within(a, lo, hi), g, 0.0), sa, da)
        if lo is not None and need[1]:
            take = a < lo if hi is None else logical_and(a < lo, lo < hi)
            glo = reduce_grad(where(take, g, 0.0), sl, dl)
        if hi is not None and need[2]:
            take = a > hi if lo is None else logical_or(a > hi, hi < lo)
            ghi = reduce_grad(where(take, g, 0.0), sh, dh)
        return ga, glo, ghi, None


class ClampMinTensor(ClampTensor):
    backward_name = "ClampMinBackward1"
    edges = 2


class ClampMaxTensor(ClampTensor):
    backward_name = "ClampMaxBackward1"


def _clamp(input, lo, hi, name, scalar_cls, tensor_cls):
    input = need_tensor(input, name, wrap_arrays=True)
    lo_t, hi_t = isinstance(lo, Tensor), isinstance(hi, Tensor)
    if lo_t or hi_t:
        if (lo is not None and not lo_t) or (hi is not None and not hi_t):
            if (lo_t and lo._data.ndim) or (hi_t and hi._data.ndim):
                raise TypeError(f"{name}() received an invalid combination of arguments: bounds "
                                "must be all Tensors or all numbers")
            lo = lo.item() if lo_t else lo  # 0-d tensors pass as numbers, as in PyTorch
            hi = hi.item() if hi_t else hi
        else:
            dt = result_type_of((input, lo, hi)).np
            if dt.kind == "c":
                raise NotImplementedError("clamp is not supported for complex types")
            return tensor_cls.apply(input, lo, hi, dt)
    if lo is not None:
        lo = _operand(lo, name, "min")
    if hi is not None:
        hi = _operand(hi, name, "max")
    dt = input._data.dtype
    if dt.kind != "f":  # number bounds never change a float tensor's dtype
        dt = result_type_of((input, lo, hi)).np
        if dt.kind == "c":
            raise NotImplementedError("clamp is not supported for complex types")
    return scalar_cls.apply(input, lo, hi, dt)


def clamp(input, min=None, max=None, *, out=None) -> Tensor:
    """Limit each element to ``[min, max]`` (numbers or tensors; one may be None)."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    return _out(_clamp(input, min, max, "clamp", Clamp, ClampTensor), out)


clip = clamp


def clamp_min(input, min) -> Tensor:
    """``max(input, min)``."""
    return _clamp(input, min, None, "clamp_min", ClampMin, ClampMinTensor)


def clamp_max(input, max) -> Tensor:
    """``min(input, max)``."""
    return _clamp(input, None, max, "clamp_max", ClampMax, ClampMaxTensor)


class Maximum(Function):
    """Elementwise max; NaN propagates, ties split the gradient in halves."""

    raw = True
    backward_name = "MaximumBackward0"
    edges = 2  # (not ``dt``)
    ufunc = "maximum"

    @staticmethod
    def forward(ctx, a, b, dt):
        if dt.kind == "c":
            raise RuntimeError(f"{ctx.ufunc} not implemented for complex tensors.")
        ctx.meta = _meta(a, b)
        ctx.save_for_backward(a, b)
        return _calc(getattr(ctx.xp, ctx.ufunc), a, b, dt)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        ga, gb = ctx.split(g, a, b)
        return (reduce_grad(ga, sa, da) if ctx.needs_input_grad[0] else None,
                reduce_grad(gb, sb, db) if ctx.needs_input_grad[1] else None, None)

    @staticmethod
    def split(g, a, b):
        h = where(a == b, g / 2, g)
        return where(a < b, 0.0, h), where(a > b, 0.0, h)


class Minimum(Maximum):
    backward_name = "MinimumBackward0"
    ufunc = "minimum"

    @staticmethod
    def split(g, a, b):
        h = where(a == b, g / 2, g)
        return where(a > b, 0.0, h), where(a < b, 0.0, h)


class Fmax(Maximum):
    """Elementwise max ignoring NaN; ties give the whole gradient to ``input``."""

    backward_name = "FmaxBackward0"
    ufunc = "fmax"

    @staticmethod
    def split(g, a, b):
        first = logical_or(a >= b, isnan(b))
        return where(first, g, 0.0), where(first, 0.0, g)


class Fmin(Maximum):
    backward_name = "FminBackward0"
    ufunc = "fmin"

    @staticmethod
    def split(g, a, b):
        first = logical_or(a <= b, isnan(b))
        return where(first, g, 0.0), where(first, 0.0, g)


def _binary_tensors(cls, name, input, other, out):
    input = need_tensor(input, name, wrap_arrays=True)
    other = need_tensor(other, name, "other", 2, wrap_arrays=True)
    return _out(cls.apply(input, other, result_dtype(input, other)), out)


maximum = _binary_function(_binary_tensors, Maximum, "maximum",
                           "Elementwise maximum (NaN if either is NaN).")
minimum = _binary_function(_binary_tensors, Minimum, "minimum",
                           "Elementwise minimum (NaN if either is NaN).")
fmax = _binary_function(_binary_tensors, Fmax, "fmax",
                        "Elementwise maximum that ignores a NaN operand.")
fmin = _binary_function(_binary_tensors, Fmin, "fmin",
                        "Elementwise minimum that ignores a NaN operand.")


class Where(Function):
    raw = True
    backward_name = "WhereBackward0"
    edges = slice(1, 3)  # (PyTorch's node: self and other, not the condition nor ``dt``)

    @staticmethod
    def forward(ctx, c, x, y, dt):
        ctx.meta = (shape_of(x), _dt(x), shape_of(y), _dt(y))
        ctx.save_for_backward(c)
        xp = ctx.xp
        # A Python scalar branch as a 0-d array of the result dtype: NumPy then skips a
        # per-call scalar conversion (1.5x faster on the relu-backward path).
        if not hasattr(x, "dtype"):
            x = xp.asarray(x, dt)
        if not hasattr(y, "dtype"):
            y = xp.asarray(y, dt)
        try:
            r = xp.where(c, x, y)
        except ValueError:
            _bshape(shape_of(c), shape_of(x), shape_of(y))
            raise
        return cast(r, dt) if hasattr(r, "dtype") else _as_dtype(xp, r, dt)

    @staticmethod
    def backward(ctx, g):
        c, = ctx.saved_tensors
        sx, dx, sy, dy = ctx.meta
        return (None,
                reduce_grad(where(c, g, 0.0), sx, dx) if ctx.needs_input_grad[1] else None,
                reduce_grad(where(c, 0.0, g), sy, dy) if ctx.needs_input_grad[2] else None,
                None)


def where(condition, input=None, other=None, *, out=None):
    """``input`` where ``condition`` holds, else ``other``; one argument gives ``nonzero``."""
    condition = need_tensor(condition, "where", "condition", wrap_arrays=True)
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    kind = condition._data.dtype.kind
    if kind != "b":
        if condition._data.dtype.name != "uint8":
            raise RuntimeError("where expected condition to be a boolean tensor, but got a "
                               f"tensor with dtype {scalar_name(condition._data.dtype)}")
        warnings.warn("where received a uint8 condition tensor. This behavior is deprecated and "
                      "will be removed in a future version of PyTorch. Use a boolean condition "
                      "instead.", UserWarning, stacklevel=2)
        condition = condition.bool()
    if not isinstance(input, Tensor):
        input = _operand(input, "where", "input")
    if not isinstance(other, Tensor):
        other = _operand(other, "where", "other", 3)
    dt = result_dtype(input, other)
    if dt.kind in "iu":
        xp = _xp(condition)
        if isinstance(input, builtins.int):
            input = _checked_int(xp, input, dt)
        if isinstance(other, builtins.int):
            other = _checked_int(xp, other, dt)
    return _out(Where.apply(condition, input, other, dt), out)


def _lerp_array(xp, a, e, w):
    """PyTorch's lerp: ``a + w (e - a)`` for |w| < 0.5, else ``e - (e - a)(1 - w)``."""
    d = e - a
    if not hasattr(w, "shape"):
        return a + w * d if builtins.abs(w) < 0.5 else e - d * (1 - w)
    return xp.where(xp.abs(w) < 0.5, a + w * d, e - d * (1 - w))


class Lerp(Function):
    raw = True
    backward_name = "LerpBackward0"
    edges = 2  # (a number weight is no input of PyTorch's node)

    @_fp_safe
    def forward(ctx, a, e, w):
        if ctx._record:
            ctx.meta = (shape_of(a), _dt(a), shape_of(e), _dt(e), shape_of(w), _dt(w))
            if hasattr(w, "shape"):  # the ends are read by weight's gradient only
                nw = ctx.needs_input_grad[2]
                ctx.save_for_backward(a if nw else None, e if nw else None, w)
            else:  # PyTorch keeps a number weight as a Scalar: nothing to free or check
                ctx.weight = w
        _bshape(shape_of(a), shape_of(e), shape_of(w))
        return _lerp_array(ctx.xp, a, e, w)

    @staticmethod
    def backward(ctx, g):
        a, e, w = ctx.saved_tensors or (None, None, ctx.weight)
        sa, da, se, de, sw, dw = ctx.meta
        need = ctx.needs_input_grad
        return (reduce_grad(g * (1 - w), sa, da) if need[0] else None,
                reduce_grad(g * w, se, de) if need[1] else None,
                reduce_grad(g * (e - a), sw, dw) if need[2] else None)


class LerpTensor(Lerp):
    backward_name = "LerpBackward1"
    edges = None


def lerp(input, end, weight, *, out=None) -> Tensor:
    """Linear interpolation ``input + weight * (end - input)``."""
    input = need_tensor(input, "lerp", wrap_arrays=True)
    end = need_tensor(end, "lerp", "end", 2, wrap_arrays=True)
    dt = input._data.dtype
    if end._data.dtype != dt:
        raise RuntimeError(f"expected dtype {c_name(dt)} for `end` but got dtype "
                           f"{c_name(end._data.dtype)}")
    if isinstance(weight, Tensor):
        if weight._data.dtype != dt:
            raise RuntimeError(f"expected dtype {c_name(dt)} for `weight` but got dtype "
                               f"{c_name(weight._data.dtype)}")
        cls = LerpTensor
    else:
        weight = _operand(weight, "lerp", "weight", 3)
        cls = Lerp
    if _is_int(dt):
        raise _not_implemented("lerp_kernel_scalar" if cls is Lerp else "lerp_kernel_tensor", dt)
    return _out(cls.apply(input, end, weight), out)


class Addcmul(Function):
    raw = True
    backward_name = "AddcmulBackward0"
    edges = 3
    # Whether t2's own gradient reads t2 too: PyTorch then keeps it whatever is needed.
    keep_t2 = False

    @_fp_safe
    def forward(ctx, a, t1, t2, value, dt):
        if ctx._record:
            ctx.meta = tuple((shape_of(v), _dt(v)) for v in (a, t1, t2)) + (value,)
            need = ctx.needs_input_grad  # t1 is read by t2's gradient only; t2 see ``keep_t2``
            if need[1] or need[2] or ctx.keep_t2:  # a node that keeps nothing frees nothing
                ctx.save_for_backward(t1 if need[2] else None,
                                      t2 if need[1] or ctx.keep_t2 else None)
        _bshape(shape_of(a), shape_of(t1), shape_of(t2))
        a, t1, t2 = cast(a, dt), cast(t1, dt), cast(t2, dt)
        return ctx.combine(a, t1, t2, value)

    @staticmethod
    def combine(a, t1, t2, value):
        return a + value * t1 * t2

    @holomorphic
    def backward(ctx, g):
        t1, t2 = ctx.saved_tensors or (None, None)
        (sa, da), (s1, d1), (s2, d2), value = ctx.meta
        need = ctx.needs_input_grad
        return (reduce_grad(g, sa, da) if need[0] else None,
                reduce_grad(g * (t2 * value), s1, d1) if need[1] else None,
                reduce_grad(g * (t1 * value), s2, d2) if need[2] else None, None, None)


class Addcdiv(Addcmul):
    backward_name = "AddcdivBackward0"
    keep_t2 = True

    @staticmethod
    def combine(a, t1, t2, value):
        return a + value * t1 / t2

    @holomorphic
    def backward(ctx, g):
        t1, t2 = ctx.saved_tensors
        (sa, da), (s1, d1), (s2, d2), value = ctx.meta
        need = ctx.needs_input_grad
        return (reduce_grad(g, sa, da) if need[0] else None,
                reduce_grad(g * (value / t2), s1, d1) if need[1] else None,
                reduce_grad(-g * (value * t1 / (t2 * t2)), s2, d2) if need[2] else None,
                None, None)


def _addc(cls, name, input, tensor1, tensor2, value):
    input = need_tensor(input, name, wrap_arrays=True)
    tensor1 = need_tensor(tensor1, name, "tensor1", 2, wrap_arrays=True)
    tensor2 = need_tensor(tensor2, name, "tensor2", 3, wrap_arrays=True)
    if isinstance(value, Tensor):
        raise TypeError(f"{name}(): argument 'value' must be Number, not Tensor")
    if cls is Addcdiv and _is_int(tensor1._data.dtype) and _is_int(tensor2._data.dtype):
        raise RuntimeError(_ADDCDIV_INT)
    dt = result_type_of((input, tensor1, tensor2)).np
    if _is_int(dt):
        if dt.kind == "b":
            raise _not_implemented(name + "_cpu_out", dt)
        # PyTorch casts the scalar to the integer result type
        value = _checked_int(_xp(input), builtins.int(value), dt)
    return cls.apply(input, tensor1, tensor2, value, dt)


_ADDCDIV_INT = (
    "Integer division with addcdiv is no longer supported, and in a future  release addcdiv "
    "will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can be "
    "implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for "
    "integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future "
    "addcdiv behavior is just the latter implementation: (input + value * tensor1 / tensor2), "
    "for all dtypes.")


def addcmul(input, tensor1, tensor2, *, value=1, out=None) -> Tensor:
    """``input + value * tensor1 * tensor2``."""
    return _out(_addc(Addcmul, "addcmul", input, tensor1, tensor2, value), out)


def addcdiv(input, tensor1, tensor2, *, value=1, out=None) -> Tensor:
    """``input + value * tensor1 / tensor2``."""
    return _out(_addc(Addcdiv, "addcdiv", input, tensor1, tensor2, value), out)


# ---- rounding -------------------------------------------------------------------------------

class _Rounding(Function):
    """Piecewise-constant rounding: integers pass through, the gradient is zero."""

    raw = True
    kernel = ""

    @_fp_safe
    def forward(ctx, a, *args):
        ctx.meta = (a.shape, a.dtype)
        k = a.dtype.kind
        if k == "b" or k == "c" and ctx.kernel.startswith("round"):
            raise _not_implemented(ctx.kernel, a.dtype)
        if k == "c":  # floor_vml_cpu -> "floor is not supported ..."
            raise NotImplementedError(f"{ctx.kernel[:-8]} is not supported for complex inputs")
        if k in "iu":
            return a.copy()
        return ctx.fn(ctx.xp, a, *args)

    @staticmethod
    def backward(ctx, g):
        return (_zeros(g, *ctx.meta),) + (None,) * (ctx._n_args - 1)


def _rounding(name, kernel, fn, nargs=1):
    return type(name, (_Rounding,), {"backward_name": name + "Backward0", "kernel": kernel,
                                     "fn": staticmethod(fn), "_n_args": nargs})


Floor = _rounding("Floor", "floor_vml_cpu", lambda xp, x: xp.floor(x))
Ceil = _rounding("Ceil", "ceil_vml_cpu", lambda xp, x: xp.ceil(x))
Trunc = _rounding("Trunc", "trunc_vml_cpu", lambda xp, x: xp.trunc(x))
Round = _rounding("Round", "round_vml_cpu", lambda xp, x: xp.rint(x))  # half to even


def _round_decimals(xp, x, decimals):
    """PyTorch's rounding to ``decimals`` places: scale, round half to even, unscale."""
    if decimals >= 0:
        f = 10.0 ** decimals
        return xp.rint(x * f) / f
    f = 10.0 ** -decimals
    return xp.rint(x / f) * f


class RoundDecimals(_Rounding):
    backward_name = "RoundBackward1"
    edges = 1  # (PyTorch's node: the tensor only, not ``decimals``)
    kernel = "round_cpu"
    _n_args = 2
    fn = staticmethod(_round_decimals)


class Frac(Function):
    raw = True
    backward_name = "FracBackward0"

    @_fp_safe
    def forward(ctx, a):
        if a.dtype.kind in "biuc":
            raise _not_implemented("frac_cpu", a.dtype)
        return a - ctx.xp.trunc(a)

    @staticmethod
    def backward(ctx, g):
        return g


floor = _unary_function(Floor, "Round down to an integer value.", checked=True)
ceil = _unary_function(Ceil, "Round up to an integer value.", checked=True)
trunc = _unary_function(Trunc, "Round towards zero.", checked=True)
frac = _unary_function(Frac, "The fractional part ``input - trunc(input)``.", checked=True)
fix = trunc


def round(input, *, decimals=0, out=None) -> Tensor:
    """Round half to even, to ``decimals`` decimal places."""
    input = need_tensor(input, "round", wrap_arrays=True)
    if decimals == 0:
        return _out(Round.apply(input), out)
    if _is_int(input._data.dtype):
        raise _not_implemented("round_cpu", input._data.dtype)
    return _out(RoundDecimals.apply(input, builtins.int(decimals)), out)


# ---- comparisons, logic, bits ---------------------------------------------------------------

def _compare(ufunc: str, name: str, input, other, out=None):
    input = need_tensor(input, name, wrap_arrays=True)
    if not isinstance(other, Tensor):
        other = _operand(other, name)
    dt = result_dtype(input, other)
    if dt.kind == "c" and name[0] != "e" and name[0] != "n":  # only == and != order-free
        raise _not_implemented(name + "_cpu", dt)
    a = cast(input._data, dt)
    xp = _backend.xp_of(a)
    if isinstance(other, Tensor):
        if type(other._data) is not type(a):  # not through Function.apply: check here
            _backend.check_same_device(type(a), other._data)
        b = cast(other._data, dt)
    elif isinstance(other, builtins.int) and dt.kind in "iu":
        b = _int_scalar(xp, other, dt)
    else:
        b = other
    try:
        r = getattr(xp, ufunc)(a, b)
    except _SLOW:
        r = _slow(getattr(xp, ufunc), a, b, dt)
    return _out(_plain(r), out)


def _int_scalar(xp, v, dt):
    """Python int ``v`` in integer dtype ``dt``, wrapped around as PyTorch casts it."""
    try:
        return xp.asarray(v, dtype=dt)
    except OverflowError:
        return _as_dtype(xp, v, dt)


eq = _binary_function(_compare, "equal", "eq", "``input == other`` elementwise.")
ne = _binary_function(_compare, "not_equal", "ne", "``input != other`` elementwise.")
lt = _binary_function(_compare, "less", "lt", "``input < other`` elementwise.")
le = _binary_function(_compare, "less_equal", "le", "``input <= other`` elementwise.")
gt = _binary_function(_compare, "greater", "gt", "``input > other`` elementwise.")
ge = _binary_function(_compare, "greater_equal", "ge", "``input >= other`` elementwise.")


not_equal, less, less_equal, greater, greater_equal = ne, lt, le, gt, ge


class _ComparedInPlace(Function):
    """``self.eq_(other)`` and friends: PyTorch records a node whose gradients are zero."""

    raw = True

    @staticmethod
    def forward(ctx, a, b, result):
        ctx.meta = _meta(a, b)
        return result.astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (_zeros(g, sa, da) if na else None, _zeros(g, sb, db) if nb else None, None)


def _inplace_comparison(fn, op: str):
    """``self.<op>_(other)``: the comparison written into ``self`` as 0 and 1."""
    number = type(op + "Number", (_ComparedInPlace,), {"backward_name": op + "Backward0"})
    tensor = type(op + "Tensor", (_ComparedInPlace,), {"backward_name": op + "Backward1"})

    def compare(self, other):
        r = fn(self, other)._data
        return (tensor if isinstance(other, Tensor) else number).apply(self, other, r)

    def method(self, other):
        return inplace(self, compare, other)
    method.__name__ = fn.__name__ + "_"
    return method


def equal(input, other) -> bool:
    """True when both have the same shape and elements."""
    input = need_tensor(input, "equal", wrap_arrays=True)
    other = need_tensor(other, "equal", "other", 2, wrap_arrays=True)
    if input._data.shape != other._data.shape:
        return False
    return builtins.bool(eq(input, other)._data.all())


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise (infinities must be equal)."""
    input = need_tensor(input, "isclose", wrap_arrays=True)
    other = need_tensor(other, "isclose", "other", 2, wrap_arrays=True)
    a, b = input._data, other._data
    if type(b) is not type(a):
        _backend.check_same_device(type(a), b)
    if a.dtype != b.dtype:
        raise RuntimeError(f"{scalar_name(a.dtype)} did not match {scalar_name(b.dtype)}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    if a.shape != b.shape:
        check_broadcast(a.shape, b.shape)
    xp = _backend.xp_of(a)
    close = a == b
    if equal_nan and a.dtype.kind not in "biu":
        close = close | ((a != a) & (b != b))
    if rtol or atol:
        if a.dtype.kind == "b":
            a = a.astype(float_dtype(a.dtype))
            b = b.astype(a.dtype)
        with _quiet(xp):  # inf - inf
            err = xp.abs(a - b)
            close = close | (xp.isfinite(err) & (err <= atol + xp.abs(rtol * b)))
    return _plain(close)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether every element of ``input`` is close to ``other`` (see ``isclose``)."""
    return builtins.bool(isclose(input, other, rtol, atol, equal_nan)._data.all())


def _logical(ufunc: str, name: str, input, other, out):
    input = need_tensor(input, name, wrap_arrays=True)
    other = need_tensor(other, name, "other", 2, wrap_arrays=True)
    a, b = input._data, other._data
    if type(b) is not type(a):
        _backend.check_same_device(type(a), b)
    try:
        r = getattr(_backend.xp_of(a), ufunc)(a, b)
    except ValueError:
        check_broadcast(a.shape, b.shape)
        raise
    return _out(_plain(r), out)


logical_and = _binary_function(_logical, "logical_and", "logical_and",
                               "Elementwise AND of truth values (nonzero is True).")
logical_or = _binary_function(_logical, "logical_or", "logical_or",
                              "Elementwise OR of truth values.")
logical_xor = _binary_function(_logical, "logical_xor", "logical_xor",
                               "Elementwise XOR of truth values.")


def logical_not(input, *, out=None) -> Tensor:
    """Elementwise NOT of truth values."""
    a = need_tensor(input, "logical_not", wrap_arrays=True)._data
    return _out(_plain(_backend.xp_of(a).logical_not(a)), out)


_SHIFT_KERNELS = {"left_shift": "lshift_cpu", "right_shift": "rshift_cpu"}


def _bitwise(ufunc: str, name: str, input, other, out=None):
    if not isinstance(input, Tensor):
        input = _operand(input, name, "input", 1)
    if not isinstance(other, Tensor):
        other = _operand(other, name)
    check_broadcast(shape_of(input), shape_of(other))  # torch checks shapes before dtypes
    if isinstance(input, Tensor) and isinstance(other, Tensor) and \
            type(other._data) is not type(input._data):
        _backend.check_same_device(type(input._data), other._data)
    dt = result_dtype(input, other)
    if not _is_int(dt) or dt.kind == "b" and "shift" in ufunc:
        raise _not_implemented(_SHIFT_KERNELS.get(ufunc, ufunc + "_cpu"), dt)
    return _out(_plain(_calc(getattr(_xp(input, other), ufunc), _arr(input), _arr(other), dt)),
                out)


bitwise_and = _binary_function(_bitwise, "bitwise_and", "bitwise_and",
                               "Bitwise AND of integer or bool tensors.")
bitwise_or = _binary_function(_bitwise, "bitwise_or", "bitwise_or",
                              "Bitwise OR of integer or bool tensors.")
bitwise_xor = _binary_function(_bitwise, "bitwise_xor", "bitwise_xor",
                               "Bitwise XOR of integer or bool tensors.")
bitwise_left_shift = _binary_function(_bitwise, "left_shift", "bitwise_left_shift",
                                      "``input << other`` for integer tensors.")
bitwise_right_shift = _binary_function(
    _bitwise, "right_shift", "bitwise_right_shift",
    "``input >> other`` for integer tensors (arithmetic shift for signed types).")


def bitwise_not(input, *, out=None) -> Tensor:
    """Bitwise NOT (``~``); logical NOT for bool."""
    a = need_tensor(input, "bitwise_not", wrap_arrays=True)._data
    if not _is_int(a.dtype):
        raise _not_implemented("bitwise_not_cpu", a.dtype)
    return _out(_plain(_backend.xp_of(a).invert(a)), out)


# ---- NaN and infinity -----------------------------------------------------------------------

def _test(input, name, fn, int_value):
    a = need_tensor(input, name, wrap_arrays=True)._data
    xp = _backend.xp_of(a)
    if a.dtype.kind in "biu":  # integers are always finite
        return _plain(xp.full(a.shape, int_value))
    return _plain(fn(xp, a))


def isnan(input) -> Tensor:
    """Whether each element is NaN."""
    return _test(input, "isnan", lambda xp, a: a != a, False)


def isinf(input) -> Tensor:
    """Whether each element is +inf or -inf."""
    return _test(input, "isinf", lambda xp, a: xp.isinf(a), False)


def isfinite(input) -> Tensor:
    """Whether each element is neither infinite nor NaN."""
    return _test(input, "isfinite", lambda xp, a: xp.isfinite(a), True)


def isposinf(input, *, out=None) -> Tensor:
    """Whether each element is +inf."""
    return _out(_test(input, "isposinf", lambda xp, a: a == math.inf, False), out)


def isneginf(input, *, out=None) -> Tensor:
    """Whether each element is -inf."""
    return _out(_test(input, "isneginf", lambda xp, a: a == -math.inf, False), out)


class NanToNum(Function):
    raw = True
    backward_name = "NanToNumBackward0"
    edges = 1

    @staticmethod
    def forward(ctx, a, nan, posinf, neginf):
        ctx.save_for_backward(a)
        if a.dtype.kind in "biu":
            return a.copy()
        return ctx.xp.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, g):
        a, = ctx.saved_tensors
        return g * isfinite(a), None, None, None


def nan_to_num(input, nan=0.0, posinf=None, neginf=None, *, out=None) -> Tensor:
    """Replace NaN by ``nan`` and infinities by ``posinf``/``neginf`` (default: dtype limits)."""
    input = need_tensor(input, "nan_to_num", wrap_arrays=True)
    return _out(NanToNum.apply(input, nan, posinf, neginf), out)


# ---- operators and methods ------------------------------------------------------------------

def _operator(fn, reflected=False, ufunc=None):
    """Python operator form of binary ``fn``: NotImplemented for operands PyTorch rejects
    (``ufunc``: NumPy's, for a NumPy array operand: ``_array_operand``)."""
    def op(self, other):
        if not isinstance(other, Tensor):
            if ufunc is not None and type(other) in _ARRAY_TYPES:
                if ufunc is _AS_TENSOR:  # (``==``: PyTorch compares with the array's values)
                    return fn(self, _make(other))
                if ufunc is _RDIV:  # PyTorch's ``array / t`` is ``t.reciprocal() * array``
                    return _array_operand(reciprocal(self), other, "multiply", False)
                return _array_operand(self, other, ufunc, reflected)
            other = _number(other)
            if other is None:
                return NotImplemented
        return fn(other, self) if reflected else fn(self, other)
    op.__name__ = fn.__name__
    return op


_AS_TENSOR = "as a tensor"  # an operator's ``ufunc`` that takes a NumPy array as a tensor
_RDIV = "reciprocal times"  # ``__rtruediv__``'s


def _array_operand(self, other, ufunc: str, reflected: bool):
    """``self op other`` for a NumPy array ``other``, as PyTorch gives it: its operator leaves
    the array to NumPy, which computes on ``self``'s values with its own promotion (a 0-d array
    is no Python number: float32 ** np.array(2.0) is float64) and gets a tensor back, with no
    history; ``array op tensor`` is a TypeError."""
    if reflected:
        return NotImplemented
    if self._requires_grad and state.grad:  # (PyTorch's Tensor.__array__ refuses it)
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                           "tensor.detach().numpy() instead.")
    d = self._data
    if d.dtype.name == "bfloat16":
        raise TypeError("Got unsupported ScalarType BFloat16")
    xp = _ARRAY_TYPES[type(other)][0]
    with _quiet(xp):
        r = _backend.asarray(getattr(xp, ufunc)(d, other))
    return _make(r.astype("uint8") if r.dtype.kind == "b" else r)  # (as torch's __array_wrap__)


def _arith_operator(cls, ufunc: str, reflected=False, floating=False):
    """The hot arithmetic operators: ``cls`` applied directly, one call frame less.

    With nothing to record (no grad mode: a backward without ``create_graph``, an optimizer
    step; or no operand requires grad) and no mode to see it, float32/float64 operands of
    one dtype go straight to the ufunc ``cls.forward`` would call: ~1.2 us less per op.
    """
    def op(self, other):
        d = self._data
        dt = d.dtype
        # fast paths: a float tensor with a Python float or a tensor of the same dtype
        if dt.kind != "f" or not (type(other) is builtins.float or isinstance(
                other, Tensor) and other._data.dtype is dt):
            if not isinstance(other, Tensor):
                if type(other) in _ARRAY_TYPES:
                    return _array_operand(self, other, ufunc, reflected)
                other = _number(other)
                if other is None:
                    return NotImplemented
            dt = result_dtype(self, other)
            if floating:
                dt = float_dtype(dt)
        elif state.grad and (self._requires_grad or type(other) is not builtins.float and
                             other._requires_grad):
            if dt.itemsize > 2 and not reflected and not state.intercept:
                r = _recorded(cls, ufunc, self, other, d, dt)
                if r is not None:
                    return r
        elif dt.itemsize > 2 and not state.intercept:
            o = other if type(other) is builtins.float else other._data
            if type(o) is builtins.float or type(o) is type(d):  # (one device)
                fn = getattr(_ARRAY_TYPES[type(d)][0], ufunc)
                try:  # (0-d operands give a NumPy scalar: ``_plain`` makes it an array)
                    if type(o) is builtins.float:  # (as in Add.forward: scalar_operand)
                        c = scalar_operand(d, o, dt)
                        if c is not o:
                            return _plain(fn(c, d) if reflected else fn(d, c))
                    return _plain(fn(o, d, dtype=dt) if reflected else fn(d, o, dtype=dt))
                except _SLOW:  # shapes that do not broadcast, errors made of warnings
                    pass
        # (reflected: Add and Mul, as PyTorch's ``self + other``: its node's edges in that order)
        return cls.apply(self, other, dt)
    return op


# NOTE [ Recorded without apply ]
# The arithmetic operators (``_recorded``) and the unary ops that declare what they save
# (``saves``: relu, neg and the ``_Unary`` table, through ``_recorded1``) build their graph
# node themselves when recording on cpu float32/64 tensors: the same node ``cls.apply`` builds
# (class, ``next_functions``, ``needs_input_grad``, ``meta``, the saved entries of NOTE
# [ Saved tensors ]), without ``_apply_raw``'s argument loop and general checks, ``forward``'s
# recording branches and the saving protocol.  In eager chains of small ops that is ~1.5 us a
# binary op and ~0.5 us a unary one, and fewer code paths to bring back into cache after
# another library's step (op_overhead_bcast 1.05-1.07 -> 0.94-0.96 of torch).  Anything
# unusual returns None first and goes through ``apply``: a mode (``state.intercept``: the one
# interception point stays the only one), anomaly or inference mode, saved-tensor hooks,
# another device, scalars the cache refuses, errors; tests/test_recorded_ops.py compares each
# node with ``apply``'s.
_CPU = _backend.np.ndarray
_new = object.__new__


def _edge(t):
    """The graph edge to tensor ``t`` (it requires grad), as ``_apply_raw`` makes it."""
    fn = t._grad_fn
    if fn is not None:
        return (fn, t._output_nr)
    fn = t._accum
    fn = fn() if fn is not None else None
    return (fn if fn is not None else accumulate_node(t), 0)


def _saved_input(t):
    """``t``'s entry in a node's saved tuple (NOTE [ Saved tensors ]), or None when the
    general path must save it (an inference tensor: its error)."""
    if t._inference:
        return None
    b = t if t._base is None else t._base
    vc = b._version_ctr
    if vc is None:
        vc = b._version_ctr = [0]
    return (_SAVED_IN, t, vc, vc[0])


def _recorded(cls, ufunc, x, y, d, dt):
    """``x op y`` recorded for the arithmetic operators (``cls`` Add, Sub, Mul or Div), with
    ``x`` a cpu float32/64 tensor and ``y`` a tensor of its dtype or a Python float: the node
    ``cls.apply(x, y, dt)`` makes (edges, ``meta``, saved entries), built here without
    ``_apply_raw``'s argument loop, ``forward``'s and ``_meta``'s frames and the saving
    protocol (~1.5 us less an op).  None (nothing done) leaves the op to the general path:
    anomaly mode, inference mode, saved-tensor hooks, another device, scalars the cache does
    not take, errors (shapes that do not broadcast, warnings made errors)."""
    if d.__class__ is not _CPU or state.anomaly or state.inference or state.saved_hooks:
        return None
    if y.__class__ is builtins.float:
        o = scalar_operand(d, y, dt)
        if o is y:
            return None
        nb = False
        eb = _NO_EDGE
    else:
        o = y._data
        if o.__class__ is not _CPU:
            return None
        nb = y._requires_grad
        eb = _edge(y) if nb else _NO_EDGE
    try:
        out = getattr(_backend.np, ufunc)(d, o)
    except _SLOW:
        return None
    if out.__class__ is not _CPU:  # (0-d operands give a NumPy scalar)
        out = _backend.asarray(out)
    na = x._requires_grad
    ctx = _new(cls)
    ctx._record = True
    ctx.next_functions = (_edge(x) if na else _NO_EDGE, eb)
    ctx.needs_input_grad = (na, nb, False)
    if y.__class__ is builtins.float:
        meta = _SAME
    else:  # (both operands are of dtype ``dt``)
        sa, sb = d.shape, o.shape
        meta = _SAME if sa == sb else (sa, dt, sb, dt)
    t = _make(out, True, ctx)
    if cls is Mul or cls is Div:
        ctx.meta = meta
        # Mul keeps ``y`` for x's gradient and ``x`` for y's; Div ``y`` for both
        sx = _saved_input(x) if nb else _NONE_SAVED
        if sx is None:
            return None
        if y.__class__ is builtins.float:
            sy = (_SAVED_CONST, y) if na or cls is Div else _NONE_SAVED
        else:
            sy = _saved_input(y) if na or cls is Div else _NONE_SAVED
            if sy is None:
                return None
        ctx._saved = [sx, sy]
    else:
        ctx.meta = meta + (1,)
    return t


def _recorded1(cls, x):
    """Unary op ``cls`` (its ``saves``: "x", "y", "xy" or "") on a cpu tensor ``x`` that
    requires grad, recorded as ``cls.apply(x)`` records it: ``forward`` runs with nothing to
    record (it saves nothing) and the node's one edge and saved entries are made here, without
    ``_apply_raw``'s general steps and the saving protocol (~0.5 us less an op).  None (nothing
    done) leaves the op to the general path, as ``_recorded``."""
    d = x._data
    if d.__class__ is not _CPU or state.anomaly or state.inference or state.saved_hooks or \
            x._inference:
        return None
    ctx = _new(cls)
    y = cls.forward(ctx, d)
    if y.__class__ is not _CPU or y.dtype not in _FLOAT_NP:  # (a NumPy scalar; ints)
        return None
    ctx._record = True
    ctx.next_functions = (_edge(x),)
    ctx.needs_input_grad = _NEEDS1
    t = _make(y, True, ctx)
    s = cls.saves
    if s:
        saved = [_saved_input(x)] if s[0] == "x" else []
        if s[-1] == "y":
            vc = t._version_ctr = [0]
            saved.append((_SAVED_OUT, y, 0, vc, 0))
        ctx._saved = saved
    return t


def _rsub_op(other, self):
    cls = Rsub if isinstance(other, Tensor) else RsubScalar
    return cls.apply(self, other, result_dtype(self, other))


def _rdiv_op(other, self):
    if isinstance(other, Tensor):
        return Div.apply(other, self, float_dtype(result_dtype(self, other)))
    return reciprocal(self) * other  # what PyTorch records for ``number / tensor``


def _where_method(self, condition, other):
    return where(condition, self, other)


def _invert(self):
    if not _is_int(self._data.dtype):
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type "
                        "tensors")
    return bitwise_not(self)


def _inplace_methods(names):
    g = globals()
    return {name + "_": make_inplace(g[name]) for name in names}


def _axpy_(self, other, alpha, sign) -> bool:
    """``self += sign * alpha * other`` on the arrays (float32/64, one dtype and shape, nothing
    to record, no mode), as ``add_``/``sub_`` do; False leaves it to the general path.

    The general path is three passes and two fresh temporaries (``alpha * other``, the sum,
    the copy into ``self``); this is one pass for ``alpha == 1`` and two otherwise, the
    product in a workspace block.  Results are bit for bit the general path's: the product
    and the sum are each rounded, where PyTorch's kernel rounds one fused multiply-add, so
    about 1 element in 50 differs from PyTorch's by one ulp when ``alpha != 1`` (an exact
    float64 sum costs 4x).  NumPy's ufuncs give overlapping operands (``p.add_(p)``, a
    shifted view) the result of unaliased copies."""
    d = self._data
    dt = d.dtype
    if state.intercept or dt.kind != "f" or dt.itemsize == 2 or not isinstance(other, Tensor):
        return False
    o = other._data
    if o.dtype is not dt or type(o) is not type(d) or o.shape != d.shape or \
            state.grad and (self._requires_grad or other._requires_grad) or \
            self._inference and not state.inference:
        return False
    if (alpha.__class__ is not builtins.float and alpha.__class__ is not builtins.int) or \
            not getattr(d, "flags", _READ_ONLY).writeable or \
            not -_INT64 <= alpha < _UINT64:  # (bool alpha; expanded, sparse; out of range)
        return False
    a = alpha if sign == 1 else -alpha
    xp = _ARRAY_TYPES[type(d)][0]
    if a == 1 or a == -1:
        fn, s = (xp.add if a == 1 else xp.subtract), o
    else:
        if d.size >= _blas.MIN_SIZE:  # one fused pass, PyTorch's rounding (NOTE [ axpy ])
            f = _blas.axpy(dt.char)
            if f is not None and f(d, o, a):
                _version_counter(self)[0] += 1
                return True
        fn, s = xp.add, _ws.empty(xp, d.shape, dt)
        try:
            xp.multiply(o, a, out=s)
        except _FP_ERRORS:
            pass  # raised after the loop (NOTE [ Floating-point warnings ]): s is written
        except _SLOW:  # an alpha the dtype cannot hold: the general path says so
            return False
    try:
        fn(d, s, out=d)
    except _FP_ERRORS:
        pass  # likewise: d holds the sum
    _version_counter(self)[0] += 1
    return True


class _ReadOnly:
    writeable = False


_READ_ONLY = _ReadOnly()


def _dense(a) -> bool:
    """Whether strided array ``a`` covers its memory span exactly once (PyTorch's
    non-overlapping-and-dense: some permutation of a contiguous layout)."""
    step = a.itemsize
    for st, n in sorted((st, n) for st, n in zip(a.strides, a.shape) if n != 1):
        if st != step:
            return False
        step *= n
    return True


def _check_partial_overlap(d, o) -> None:
    """PyTorch's error when ``other`` and the written-to tensor share some memory but not all
    of it in the same layout (as its ``assert_no_partial_overlap``: only dense layouts are
    judged; ``p.add_(p)`` is fine)."""
    if o is d or d.base is None and o.base is None or not _backend_may_share(d, o):
        return  # (two arrays that own their memory share none)
    if d.ctypes.data == o.ctypes.data and d.strides == o.strides and d.shape == o.shape:
        return
    if d.size and o.size and _dense(d) and _dense(o) and min(d.strides + o.strides) >= 0:
        raise RuntimeError("unsupported operation: some elements of the input tensor and the "
                           "written-to tensor refer to a single memory location. Please "
                           "clone() the tensor before performing the operation.")


def _backend_may_share(d, o) -> bool:
    """Whether two strided arrays of one type may share memory (their bounds overlap)."""
    xp = _ARRAY_TYPES.get(type(d))
    if xp is None or type(o) is not type(d):
        return False
    xp = xp[0]
    return isinstance(d, xp.ndarray) and xp.may_share_memory(d, o)  # (not sparse storage)


def _axpy_method(fn, sign):
    """``add_``/``sub_`` (and ``+=``/``-=``): ``_axpy_`` when it applies, else ``inplace``."""
    general = make_inplace(fn)

    def method(self, *args, **kwargs):
        if len(args) == 1 and (not kwargs or len(kwargs) == 1 and "alpha" in kwargs):
            other = args[0]
            if isinstance(other, Tensor):
                _check_partial_overlap(self._data, other._data)
            if _axpy_(self, other, kwargs["alpha"] if kwargs else 1, sign):
                return self
        return general(self, *args, **kwargs)
    method.__name__ = general.__name__
    method.__doc__ = general.__doc__
    return method


_INPLACE = [
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "fmod", "pow", "float_power", "square", "neg", "negative", "abs", "absolute",
    "sign", "sgn", "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt",
    "rsqrt", "sin", "cos", "tan", "asin", "arcsin", "acos", "arccos", "atan", "arctan", "atan2",
    "arctan2", "sinh", "cosh", "tanh", "asinh", "arcsinh", "acosh", "arccosh", "atanh",
    "arctanh", "erf", "erfc", "erfinv", "sigmoid", "logit", "relu", "hypot", "copysign", "deg2rad",
    "rad2deg", "clamp", "clip", "clamp_min", "clamp_max", "lerp", "addcmul", "addcdiv", "floor",
    "ceil", "round", "trunc", "fix", "frac", "logical_and", "logical_or", "logical_xor",
    "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    "bitwise_left_shift", "bitwise_right_shift", "nan_to_num",
]  # the comparisons' in-place forms are ``_inplace_comparison``


def _float_power_(self, exponent):
    if self._data.dtype.name != "float64":
        raise RuntimeError(f"the base given to float_power_ has dtype "
                           f"{scalar_name(self._data.dtype)} but the operation's result requires "
                           "dtype Double")
    return inplace(self, float_power, exponent)


def _augmented(method):
    """``t += other`` and the other augmented assignments: ``method`` (``add_``, ...), or
    NotImplemented for an operand PyTorch's in-place dunders refuse (an ndarray, a str, a
    list), so Python falls back to ``t + other`` (an ndarray: NumPy's result, a new tensor;
    anything else: Python's "unsupported operand" TypeError), as in PyTorch."""
    def augmented(self, other):
        if other.__class__ is not Tensor and not isinstance(other, Tensor) and \
                _number(other) is None:
            return NotImplemented
        return method(self, other)
    augmented.__name__ = augmented.__qualname__ = method.__name__
    return augmented


def _methods():
    plain = {name: globals()[name] for name in __all__ if name not in (
        "where", "equal", "allclose", "isclose", "rsub", "true_divide")}
    ops = {
        "__add__": _arith_operator(Add, "add"), "__radd__": _arith_operator(Add, "add", True),
        "__sub__": _arith_operator(Sub, "subtract"),
        "__rsub__": _operator(_rsub_op, True, "subtract"),
        "__mul__": _arith_operator(Mul, "multiply"),
        "__rmul__": _arith_operator(Mul, "multiply", True),
        "__truediv__": _arith_operator(Div, "true_divide", floating=True),
        "__rtruediv__": _operator(_rdiv_op, True, _RDIV),
        "__rdiv__": _operator(_rdiv_op, True, _RDIV),
        "__floordiv__": _operator(floor_divide, ufunc="floor_divide"),
        "__rfloordiv__": _operator(floor_divide, True, "floor_divide"),
        "__mod__": _operator(remainder, ufunc="remainder"),
        "__rmod__": _operator(remainder, True, "remainder"),
        "__pow__": _operator(pow, ufunc="power"), "__rpow__": _operator(pow, True, "power"),
        "__and__": _operator(bitwise_and, ufunc="bitwise_and"),
        "__rand__": _operator(bitwise_and, True, "bitwise_and"),
        "__or__": _operator(bitwise_or, ufunc="bitwise_or"),
        "__ror__": _operator(bitwise_or, True, "bitwise_or"),
        "__xor__": _operator(bitwise_xor, ufunc="bitwise_xor"),
        "__rxor__": _operator(bitwise_xor, True, "bitwise_xor"),
        "__lshift__": _operator(bitwise_left_shift, ufunc="left_shift"),
        "__rlshift__": _operator(bitwise_left_shift, True, "left_shift"),
        "__rshift__": _operator(bitwise_right_shift, ufunc="right_shift"),
        "__rrshift__": _operator(bitwise_right_shift, True, "right_shift"),
        "__eq__": _operator(eq, ufunc=_AS_TENSOR), "__ne__": _operator(ne), "__lt__": _operator(lt),
        "__le__": _operator(le), "__gt__": _operator(gt), "__ge__": _operator(ge),
        "__neg__": neg, "__pos__": positive, "__abs__": abs, "__invert__": _invert,
        # NumPy defers to ``Tensor``'s reflected operators instead of converting it
        "__array_priority__": 1000,
    }
    inplace = _inplace_methods(_INPLACE)
    for name, sign in (("add", 1), ("sub", -1), ("subtract", -1)):
        inplace[name + "_"] = _axpy_method(globals()[name], sign)
    for names, op in ((("eq",), "Eq"), (("ne", "not_equal"), "Ne"), (("lt", "less"), "Lt"),
                      (("le", "less_equal"), "Le"), (("gt", "greater"), "Gt"),
                      (("ge", "greater_equal"), "Ge")):
        for name in names:
            inplace[name + "_"] = _inplace_comparison(globals()[name], op)
    for op, name in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div"),
                     ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "pow"),
                     ("and", "bitwise_and"), ("or", "bitwise_or"), ("xor", "bitwise_xor"),
                     ("lshift", "bitwise_left_shift"), ("rshift", "bitwise_right_shift")):
        ops[f"__i{op}__"] = _augmented(inplace[name + "_"])
    inplace["float_power_"] = _float_power_
    return {**plain, **ops, **inplace, "where": _where_method, "true_divide": true_divide,
            "equal": equal, "allclose": allclose, "isclose": isclose}


METHODS = _methods()

# torch's top-level in-place functions: ``torch.relu_(x)`` is ``x.relu_()``, one for each
# in-place method ember has (of every family: the methods are bound in ember/__init__.py after
# this module loads, so each function looks its method up when called)
_TOP_LEVEL_INPLACE = (
    "abs_", "acos_", "acosh_", "addmv_", "arccos_", "arccosh_", "arcsin_", "arcsinh_", "arctan_",
    "arctanh_", "asin_", "asinh_", "atan_", "atanh_", "ceil_", "clamp_", "clamp_max_",
    "clamp_min_", "clip_", "conj_physical_", "cos_", "cosh_", "deg2rad_", "detach_", "erf_",
    "erfc_", "exp2_", "exp_", "expm1_", "fill_", "fix_", "floor_", "frac_", "index_put_",
    "log10_", "log1p_", "log2_", "log_", "logit_", "nan_to_num_", "neg_", "negative_",
    "rad2deg_", "reciprocal_", "relu_", "resize_as_", "round_", "rsqrt_", "sigmoid_", "sin_",
    "sinh_", "sqrt_", "square_", "tan_", "tanh_", "trunc_", "zero_")


def _top_level_inplace(name: str):
    """``torch.<name>(input, ...)``: ``input.<name>(...)``, refusing a non-Tensor as torch."""
    def fn(input, *args, **kwargs) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                            f"{type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``input.{name}(...)`` (torch.{name})."
    return fn


globals().update({_n: _top_level_inplace(_n) for _n in _TOP_LEVEL_INPLACE})
__all__ += list(_TOP_LEVEL_INPLACE)  # (after METHODS: Tensor's own methods stay as they are)
