"""Elementwise ops: arithmetic, unary math, activations-as-ops, comparisons.

Binary ops promote with PyTorch's rules before the array op runs (``_prep``),
and their backward sums broadcast gradients back to each input's shape and
dtype (``reduce_grad``).  ``a - b`` is not a primitive of its own in spirit
(micrograd writes it as ``a + (-b)``), but it is one node here because that is
what PyTorch records (``SubBackward0``).
"""
from __future__ import annotations

import builtins

from ..autograd.function import Function
from .._tensor import Tensor
from ._util import result_dtype, cast, reduce_grad, shape_of, check_broadcast, float_dtype

__all__ = ["add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "neg", "negative", "exp"]


def _dt(x):
    return x.dtype if hasattr(x, "dtype") else None


def _prep(a, b, dt):
    """Cast array operands to ``dt`` and check that their shapes broadcast."""
    a = cast(a, dt)
    b = cast(b, dt)
    sa, sb = shape_of(a), shape_of(b)
    if sa != sb and sa and sb:
        check_broadcast(sa, sb)
    return a, b


class Add(Function):
    raw = True
    backward_name = "AddBackward0"

    @staticmethod
    def forward(ctx, a, b, dt):
        ctx.meta = (shape_of(a), _dt(a), shape_of(b), _dt(b))
        a, b = _prep(a, b, dt)
        return ctx.xp.add(a, b)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g, sa, da) if na else None,
                reduce_grad(g, sb, db) if nb else None, None)


class Sub(Function):
    raw = True
    backward_name = "SubBackward0"

    @staticmethod
    def forward(ctx, a, b, dt):
        ctx.meta = (shape_of(a), _dt(a), shape_of(b), _dt(b))
        a, b = _prep(a, b, dt)
        if a.dtype.kind == "b" if hasattr(a, "dtype") else False:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        return ctx.xp.subtract(a, b)

    @staticmethod
    def backward(ctx, g):
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g, sa, da) if na else None,
                reduce_grad(-g, sb, db) if nb else None, None)


class Mul(Function):
    raw = True
    backward_name = "MulBackward0"

    @staticmethod
    def forward(ctx, a, b, dt):
        ctx.meta = (shape_of(a), _dt(a), shape_of(b), _dt(b))
        ctx.save_for_backward(a, b)
        a, b = _prep(a, b, dt)
        return ctx.xp.multiply(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g * b, sa, da) if na else None,
                reduce_grad(g * a, sb, db) if nb else None, None)


class Div(Function):
    raw = True
    backward_name = "DivBackward0"

    @staticmethod
    def forward(ctx, a, b, dt):
        ctx.meta = (shape_of(a), _dt(a), shape_of(b), _dt(b))
        ctx.save_for_backward(a, b)
        a, b = _prep(a, b, dt)
        return ctx.xp.true_divide(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db = ctx.meta
        na, nb = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        return (reduce_grad(g / b, sa, da) if na else None,
                reduce_grad(-g * a / (b * b), sb, db) if nb else None, None)


class Neg(Function):
    raw = True
    backward_name = "NegBackward0"

    @staticmethod
    def forward(ctx, a):
        if a.dtype.kind == "b":
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return ctx.xp.negative(a)

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    raw = True
    backward_name = "ExpBackward0"

    @staticmethod
    def forward(ctx, a):
        y = ctx.xp.exp(cast(a, float_dtype(a.dtype)))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        return g * y


def _check_operand(x, name="other"):
    if not isinstance(x, (Tensor, builtins.int, builtins.float, builtins.bool)):
        if hasattr(x, "__index__") or hasattr(x, "__float__"):
            return x.item() if hasattr(x, "item") else builtins.float(x)
        raise TypeError(f"unsupported operand type for ember op: '{type(x).__name__}'")
    return x


def add(input, other, *, alpha=1, out=None) -> Tensor:
    """``input + alpha * other`` with broadcasting."""
    other = _check_operand(other)
    if alpha != 1:
        other = mul(other, alpha)
    return _out(Add.apply(input, other, result_dtype(input, other)), out)


def sub(input, other, *, alpha=1, out=None) -> Tensor:
    """``input - alpha * other``."""
    other = _check_operand(other)
    if alpha != 1:
        other = mul(other, alpha)
    return _out(Sub.apply(input, other, result_dtype(input, other)), out)


subtract = sub


def mul(input, other, *, out=None) -> Tensor:
    """``input * other``."""
    other = _check_operand(other)
    return _out(Mul.apply(input, other, result_dtype(input, other)), out)


multiply = mul


def div(input, other, *, rounding_mode=None, out=None) -> Tensor:
    """``input / other``; integer inputs give floats unless ``rounding_mode`` is set."""
    other = _check_operand(other)
    dt = result_dtype(input, other)
    if rounding_mode is None:
        return _out(Div.apply(input, other, float_dtype(dt)), out)
    raise NotImplementedError("rounding_mode")  # completed below by the family


true_divide = div
divide = div


def neg(input, *, out=None) -> Tensor:
    """``-input``."""
    return _out(Neg.apply(input), out)


negative = neg


def exp(input, *, out=None) -> Tensor:
    """``e ** input``."""
    return _out(Exp.apply(input), out)


def _out(result: Tensor, out) -> Tensor:
    """Honour PyTorch's ``out=`` argument by copying into the given tensor."""
    if out is None:
        return result
    from ._inplace import copy_into_out
    return copy_into_out(out, result)


def _rsub(self, other):
    return Sub.apply(other, self, result_dtype(self, other))


def _rdiv(self, other):
    return Div.apply(other, self, float_dtype(result_dtype(self, other)))


METHODS = {
    "add": add, "sub": sub, "subtract": sub, "mul": mul, "multiply": mul, "div": div,
    "divide": div, "true_divide": div, "neg": neg, "negative": neg, "exp": exp,
    "__add__": add, "__radd__": lambda self, other: Add.apply(other, self,
                                                              result_dtype(self, other)),
    "__sub__": sub, "__rsub__": _rsub,
    "__mul__": mul, "__rmul__": lambda self, other: Mul.apply(other, self,
                                                              result_dtype(self, other)),
    "__truediv__": div, "__rtruediv__": _rdiv,
    "__neg__": neg,
}
