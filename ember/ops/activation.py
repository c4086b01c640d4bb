"""Neural-network ops: activation family (forward and backward side by side).

Each differentiable activation is one ``Function``: ``forward`` on backend arrays,
``backward`` with ember ops using PyTorch's formulas (tools/autograd/derivatives.yaml),
including the value chosen at kinks (relu's gradient is 0 at 0, hardtanh's is 0 on
its bounds), so ``create_graph=True`` differentiates them again.  ``softsign`` and
``tanhshrink`` are compositions of elementwise ops, as PyTorch records them.

``softmax`` and ``log_softmax`` are single fused nodes: the forward subtracts the
row maximum (no overflow), and the backward is ``g * y - y * sum(g * y)`` and
``g - exp(y) * sum(g)``, written with ember ops on the saved output (log_softmax keeps
the softmax from its forward for a first-order backward, saving one exp).

The ``inplace=True`` forms run the out-of-place op through ``autograd.inplace.inplace``
(version counter, history rebase, leaf check; see NOTE [ In-place ops ]).  Where
PyTorch names the in-place node differently (``EluBackward1``, ...) a subclass
carries that name.
"""
from __future__ import annotations

import math
import warnings

from .._dtype import from_np
from .._tensor import Tensor, _make
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ..autograd.inplace import inplace as _inplace
from ._util import wrap_dim, is_float, reduce_grad, need_tensor, scalar_name
from . import _workspace as _ws
from . import _pointwise as _pw
from .._backend import xp_of
from .elementwise import (Relu, Erf, sigmoid, tanh, where, exp, erf, logical_or,
                          _not_implemented, _quiet, _FP_ERRORS)
from .movement import cat, narrow

__all__ = [
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "elu",
    "elu_", "selu", "selu_", "celu", "celu_", "gelu", "silu", "mish", "sigmoid", "tanh",
    "softplus", "softsign", "hardtanh", "hardtanh_", "hardsigmoid", "hardswish", "logsigmoid",
    "softmax", "log_softmax", "softmin", "threshold", "threshold_", "glu", "tanhshrink",
    "softshrink", "hardshrink",
]

# Overflow in a branch ``where`` discards (exp of a large input) is expected: see
# NOTE [ Floating-point warnings ] in elementwise.py.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---- the elementwise activation base --------------------------------------------------------

class _Activation(Function):
    """A float-only elementwise activation.

    Subclasses give ``fn(xp, x, *params)`` on arrays, ``grad(g, x, *params)`` on tensors,
    and ``kernel``: the name in PyTorch's not-implemented error for integer input.
    """

    raw = True
    kernel = ""
    saves_inputs = True  # the input (NOTE [ Saved tensors ])
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, *params):
        dt = a.dtype
        if not is_float(dt):
            raise _not_implemented(ctx.kernel, dt)
        # half precision computes in float32 and rounds once, as PyTorch's CPU kernels do
        x = a if dt.itemsize > 2 else a.astype("float32")
        try:
            y = ctx.fn(ctx.xp, x, *params)
        except _FP_ERRORS:  # the user made floating-point warnings errors
            with _quiet(ctx.xp):
                y = ctx.fn(ctx.xp, x, *params)
        if y.dtype != dt:
            y = y.astype(dt)
        if ctx._record:
            ctx.params = params
            ctx.save_for_backward(a)
        return y

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        params = ctx.params
        return (ctx.grad(g, x, *params),) + (None,) * len(params)


def _activation(name: str, kernel: str, fn, grad, backward_name: str = None):
    """An ``_Activation`` op class."""
    return type(name, (_Activation,), {
        "backward_name": backward_name or name + "Backward0", "kernel": kernel,
        "fn": staticmethod(fn), "grad": staticmethod(grad)})


def _inplace_named(cls, backward_name: str, check=None):
    """``cls`` under PyTorch's name for its in-place node; ``check(*params)`` runs in backward."""
    def backward(ctx, g):
        if check is not None:
            check(*ctx.params)
        return cls.backward(ctx, g)
    return type(cls.__name__ + "Inplace", (cls,), {"backward_name": backward_name,
                                                    "backward": staticmethod(backward)})


def _keep(g, mask):
    """``g`` where ``mask`` holds, else 0 (a gradient through a piecewise-linear kink)."""
    return where(mask, g, 0.0)


# ---- relu family ----------------------------------------------------------------------------

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)``; keeps integer dtypes."""
    input = need_tensor(input, "relu", wrap_arrays=True)
    if inplace:
        return _inplace(input, Relu.apply)
    return Relu.apply(input)


def relu_(input: Tensor) -> Tensor:
    """In-place ``relu``."""
    return _inplace(need_tensor(input, "relu_", wrap_arrays=True), Relu.apply)


class Hardtanh(Function):
    """``clamp(input, min_val, max_val)``; keeps integer dtypes (bounds truncated to ints)."""

    raw = True
    backward_name = "HardtanhBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, lo, hi):
        kind = a.dtype.kind
        if kind == "b":
            raise RuntimeError("Bool inputs not supported for hardtanh")
        if kind in "iu":
            lo, hi = int(lo), int(hi)
        ctx.bounds = (lo, hi)
        ctx.save_for_backward(a)
        y = ctx.xp.clip(a, lo, hi)
        return y if y.dtype == a.dtype else y.astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        lo, hi = ctx.bounds
        return _keep(g, (x > lo) & (x < hi)), None, None


def _check_hardtanh(min_val, max_val):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """``min(max(input, min_val), max_val)``."""
    input = need_tensor(input, "hardtanh", wrap_arrays=True)
    _check_hardtanh(min_val, max_val)
    if inplace:
        return _inplace(input, Hardtanh.apply, min_val, max_val)
    return Hardtanh.apply(input, min_val, max_val)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """In-place ``hardtanh``."""
    input = need_tensor(input, "hardtanh_", wrap_arrays=True)
    _check_hardtanh(min_val, max_val)
    return _inplace(input, Hardtanh.apply, min_val, max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(input, 0), 6)`` (PyTorch records it as a hardtanh)."""
    input = need_tensor(input, "relu6", wrap_arrays=True)
    if inplace:
        return _inplace(input, Hardtanh.apply, 0.0, 6.0)
    return Hardtanh.apply(input, 0.0, 6.0)


def _leaky_fn(xp, x, slope):
    # max(x, x * slope) for 0 < slope <= 1 (min above 1): where's per-element branch is
    # 6-10x slower on random signs (ops/_pointwise.py: in cached blocks on large arrays)
    if x.ndim and slope > 0:
        if x.nbytes >= _ws.MIN_BYTES and _pw.dense_float(x):
            return _pw.leaky_relu(xp, x, slope)
        t = x * slope
        return (xp.maximum if slope <= 1 else xp.minimum)(x, t, out=t)
    return xp.where(x > 0, x, x * slope)


def _blocked_grad(kernel, g, x, *params):
    """``kernel(xp, g, x, *params)`` on the arrays of a large gradient (ops/_pointwise.py)
    when no graph is built and no mode sees the ops; None where it does not apply."""
    if state.grad or state.intercept:
        return None
    gd = g._data
    if gd.nbytes < _ws.MIN_BYTES or not _pw.dense_float(gd):
        return None
    xp = xp_of(gd)
    try:
        out = kernel(xp, gd, x._data, *params)
    except _FP_ERRORS:  # the user made floating-point warnings errors
        with _quiet(xp):
            out = kernel(xp, gd, x._data, *params)
    return None if out is None else _make(out)


def _leaky_grad(g, x, slope):
    out = _blocked_grad(_pw.leaky_relu_grad, g, x, slope)
    return where(x > 0, g, g * slope) if out is None else out


LeakyRelu = _activation("LeakyRelu", "leaky_relu_cpu", _leaky_fn, _leaky_grad)


def _check_leaky_inplace(slope):
    if slope < 0:
        raise RuntimeError(
            "In-place leakyReLu backward calculation is triggered with a negative slope which "
            "is not supported. This is caused by calling in-place forward function with a "
            "negative slope, please call out-of-place version instead. File an issue at "
            "https://github.com/pytorch/pytorch if you do require supporting in-place leakRelu "
            "backward calculation with negative slope")


LeakyReluInplace = _inplace_named(LeakyRelu, "LeakyReluBackward1", _check_leaky_inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``input`` where positive, else ``negative_slope * input``."""
    input = need_tensor(input, "leaky_relu", wrap_arrays=True)
    if inplace:
        return _inplace(input, LeakyReluInplace.apply, negative_slope)
    return LeakyRelu.apply(input, negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In-place ``leaky_relu``."""
    input = need_tensor(input, "leaky_relu_", wrap_arrays=True)
    return _inplace(input, LeakyReluInplace.apply, negative_slope)


class RreluWithNoise(Function):
    """``input * noise`` where ``input <= 0``: ``noise`` is sampled per element in training."""

    raw = True
    backward_name = "RreluWithNoiseBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, noise):
        xp = ctx.xp
        slope = xp.where(a > 0, 1, noise).astype(a.dtype, copy=False)
        ctx.save_for_backward(slope)  # a constant: the gradient is ``g * slope``
        return a * slope

    @staticmethod
    def backward(ctx, g):
        slope, = ctx.saved_tensors
        return g * slope, None


RreluWithNoiseInplace = _inplace_named(RreluWithNoise, "RreluWithNoiseBackward1")


def _rrelu(input, lower, upper, training, name, cls):
    input = need_tensor(input, name, wrap_arrays=True)
    if lower > upper:
        raise RuntimeError("Lower bound should be less than or equal to the upper bound")
    dt = input._data.dtype
    if not is_float(dt):
        raise _not_implemented("rrelu_with_noise_out_cpu" if training else "leaky_relu_cpu", dt)
    if training:
        from .._creation import empty_like
        noise = empty_like(input).uniform_(lower, upper)._data
    else:
        noise = (lower + upper) / 2
    if cls is RreluWithNoise:
        return cls.apply(input, noise)
    return _inplace(input, cls.apply, noise)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky relu: slope ~ U(lower, upper) in training, their mean in eval."""
    return _rrelu(input, lower, upper, training, "rrelu",
                  RreluWithNoiseInplace if inplace else RreluWithNoise)


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
           training: bool = False) -> Tensor:
    """In-place ``rrelu``."""
    return _rrelu(input, lower, upper, training, "rrelu_", RreluWithNoiseInplace)


class Prelu(Function):
    """``input`` where positive, else ``weight * input`` (one weight per channel, dim 1)."""

    raw = True
    backward_name = "PreluKernelBackward0"

    @staticmethod
    def forward(ctx, a, w):
        if a.dtype != w.dtype:
            raise RuntimeError(f"prelu: Type promoting not supported. Got "
                               f"{scalar_name(a.dtype)} and {scalar_name(w.dtype)}")
        if w.ndim > 1:
            raise RuntimeError("prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                               f"ndim = {w.ndim}")
        channels = a.shape[1] if a.ndim >= 2 else 1
        if w.size != 1 and w.size != channels:
            raise RuntimeError("Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {w.size} and channel size = {channels}.")
        if not is_float(a.dtype):
            raise _not_implemented("prelu_cpu", a.dtype)
        # the weight broadcast against the input: (C, 1, ..., 1), or a scalar
        wshape = (w.size,) + (1,) * (a.ndim - 2) if w.size > 1 else ()
        ctx.wshape = wshape
        ctx.save_for_backward(a, w)
        return ctx.xp.where(a > 0, a, w.reshape(wshape) * a)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        pos = x > 0
        wb = w.reshape(ctx.wshape)
        gx = where(pos, g, g * wb) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = reduce_grad(where(pos, 0.0, x * g), ctx.wshape, w._data.dtype).reshape(w.shape)
        return gx, gw


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``max(0, input) + weight * min(0, input)``, ``weight`` per channel (dim 1) or shared."""
    input = need_tensor(input, "prelu", wrap_arrays=True)
    weight = need_tensor(weight, "prelu", "weight", 2, wrap_arrays=True)
    return Prelu.apply(input, weight)


# ---- exponential family ---------------------------------------------------------------------

def _elu_fn(xp, x, alpha, scale, input_scale):
    neg = xp.expm1(xp.minimum(x, 0) * input_scale) * (alpha * scale)
    return xp.where(x > 0, x * scale if scale != 1 else x, neg)


def _elu_grad(g, x, alpha, scale, input_scale):
    # exp of min(x, 0): an exp overflowing on the unused side would turn the zero gradient
    # there into nan under double backward.  ``where`` (not clamp) gives a zero second
    # derivative at 0, as PyTorch's
    neg = g * (exp(where(x < 0, x, 0.0) * input_scale) * (alpha * scale * input_scale))
    return where(x > 0, g * scale if scale != 1 else g, neg)


Elu = _activation("Elu", "elu_cpu", _elu_fn, _elu_grad)
Celu = _activation("Celu", "elu_cpu", _elu_fn, _elu_grad)


def _check_elu_inplace(alpha, scale, input_scale):
    if alpha < 0:
        raise RuntimeError(
            "In-place elu backward calculation is triggered with a negative slope which is not "
            "supported. This is caused by calling in-place forward function with a negative "
            "slope, please call out-of-place version instead.")


EluInplace = _inplace_named(Elu, "EluBackward1", _check_elu_inplace)
CeluInplace = _inplace_named(Celu, "CeluBackward1", _check_elu_inplace)


def _run(input, name, inplace, cls, inplace_cls, *params):
    """``cls`` on ``input``, or ``inplace_cls`` written into ``input`` when ``inplace``."""
    input = need_tensor(input, name, wrap_arrays=True)
    if inplace:
        return _inplace(input, inplace_cls.apply, *params)
    return cls.apply(input, *params)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``input`` where positive, else ``alpha * (exp(input) - 1)``."""
    return _run(input, "elu", inplace, Elu, EluInplace, alpha, 1.0, 1.0)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place ``elu``."""
    return _run(input, "elu_", True, Elu, EluInplace, alpha, 1.0, 1.0)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * elu(input, alpha)`` with the self-normalising constants."""
    return _run(input, "selu", inplace, Elu, EluInplace, _SELU_ALPHA, _SELU_SCALE, 1.0)


def selu_(input: Tensor) -> Tensor:
    """In-place ``selu``."""
    return _run(input, "selu_", True, Elu, EluInplace, _SELU_ALPHA, _SELU_SCALE, 1.0)


def _celu_params(alpha):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return alpha, 1.0, 1.0 / alpha


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return _run(input, "celu", inplace, Celu, CeluInplace, *_celu_params(alpha))


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place ``celu``."""
    return _run(input, "celu_", True, Celu, CeluInplace, *_celu_params(alpha))


# ---- smooth gates ---------------------------------------------------------------------------

# NOTE [ Fused GELU ]
# The forward works on arrays in place, in two fresh arrays (erf form: a fresh allocation of
# this size can cost more than the arithmetic, in page faults), and, when recording, also forms
# the derivative ``d = Phi(x) + x * phi(x)`` (tanh form: its derivative), so a plain
# backward is one multiply ``g * d``.  Under ``create_graph`` the derivative is written with
# ember ops on ``x`` instead, so that it differentiates again.
# float32 (and half, computed in float32) takes erf from Abramowitz & Stegun 7.1.26
# (|error| <= 1.5e-7), the formula PyTorch's vectorised CPU erf uses; SciPy's erf runs
# ~15 ns per element, several times the whole fused op.  float64 keeps the exact erf.

_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _gelu_erf_arrays(xp, x, record, y=None, dy=None):
    """``(gelu(x), d)`` with the erf form; ``d`` (the derivative) only when ``record``; in
    ``y`` and ``dy`` when given (a block's, NOTE [ Blocked pointwise passes ])."""
    f = x.dtype.type
    if x.dtype.itemsize == 8:  # exact erf; the buffer of x / sqrt(2) is reused for d
        if y is not None:
            cdf, d = _gelu_erf_arrays(xp, x, record)
            y[...] = cdf
            if record:
                dy[...] = d
            return y, dy
        t = x * _SQRT1_2
        cdf = Erf.fn(xp, t)
        cdf += 1.0
        cdf *= 0.5
        d = None
        if record:
            d = xp.multiply(x, x, out=t)
            d *= -0.5
            xp.exp(d, out=d)
            d *= _INV_SQRT_2PI
            d *= x
            d += cdf
        cdf *= x
        return cdf, d
    # two workspace arrays (fresh ones page-fault): t (then exp(-x^2 / 2), then d) and q
    # (then Phi(x), then the output)
    t = xp.abs(x, out=_ws.empty(xp, x.shape, x.dtype) if dy is None else dy)
    t *= f(_AS_P * _SQRT1_2)
    t += f(1)
    xp.divide(f(1), t, out=t)
    q = xp.multiply(t, f(0.5 * _AS_A[4]), out=_ws.empty(xp, x.shape, x.dtype) if y is None
                    else y)
    for a in _AS_A[3::-1]:
        q += f(0.5 * a)
        q *= t
    e = xp.multiply(x, x, out=t)
    e *= f(-0.5)
    xp.exp(e, out=e)
    q *= e  # Phi(-|x|) = 0.5 * erfc(|x| / sqrt(2))
    # Phi(x) = 0.5 + sign(x) * (0.5 - Phi(-|x|))
    xp.subtract(f(0.5), q, out=q)
    # copysign(q, x) on the bits (|q| | sign(x)): NumPy's copysign loop is not vectorised,
    # these three passes take a third of its time (the same bits)
    qb, sign = q.view("uint32"), xp.uint32(0x80000000)
    xb = xp.bitwise_and(x.view("uint32"), sign, out=_ws.empty(xp, x.shape, "uint32"))
    xp.bitwise_and(qb, ~sign, out=qb)
    xp.bitwise_or(qb, xb, out=qb)
    del xb
    q += f(0.5)
    d = None
    if record:
        d = e
        d *= f(_INV_SQRT_2PI)
        d *= x
        d += q
    q *= x
    return q, d


def _gelu_tanh_arrays(xp, x, record, y=None, dy=None):
    """``(gelu(x), d)`` with the tanh approximation; ``d`` only when ``record``; in ``y``
    and ``dy`` when given."""
    f = x.dtype.type
    t = xp.multiply(x, x, out=_ws.empty(xp, x.shape, x.dtype) if y is None else y)
    t *= f(_TANH_KAPPA)
    t += f(1)
    t *= x
    t *= f(_TANH_BETA)
    xp.tanh(t, out=t)  # tanh(beta * (x + kappa * x^3))
    d = None
    if record:
        # d = 0.5 (1 + t) + 0.5 x (1 - t^2) beta (1 + 3 kappa x^2)
        d = xp.multiply(x, x, out=_ws.empty(xp, x.shape, x.dtype) if dy is None else dy)
        d *= f(3 * _TANH_KAPPA)
        d += f(1)
        d *= x
        d *= f(0.5 * _TANH_BETA)
        t2 = xp.multiply(t, t, out=_ws.empty(xp, x.shape, x.dtype))
        xp.subtract(f(1), t2, out=t2)
        d *= t2
        del t2
    t += f(1)
    t *= f(0.5)
    if record:
        d += t
    t *= x
    return t, d


def _gelu_grad(g, x, approximate):
    if approximate == "tanh":
        x_sq = x * x
        t = tanh((x + x_sq * x * _TANH_KAPPA) * _TANH_BETA)
        left = x * 0.5
        d_inner = (x_sq * (3 * _TANH_KAPPA) + 1) * _TANH_BETA
        return g * ((t + 1) * 0.5 + left * (1 - t * t) * d_inner)
    cdf = (erf(x * _SQRT1_2) + 1) * 0.5
    pdf = exp(x * x * -0.5) * _INV_SQRT_2PI
    return g * (cdf + x * pdf)


def _gelu_run(xp, fn, x, record):
    """``fn(xp, x, record)``; on a large array in cached blocks written into the results,
    over threads (NOTE [ Blocked pointwise passes ]): the same ufunc steps, the same bits."""
    if x.nbytes < _ws.MIN_BYTES or not _pw.dense_float(x):
        return fn(xp, x, record)
    if record:
        return _pw.blocks(xp, lambda xb, yb, db: fn(xp, xb, True, yb, db), (x,), 2)
    return _pw.blocks(xp, lambda xb, yb: fn(xp, xb, False, yb), (x,)), None


class Gelu(Function):
    """``x * Phi(x)`` as one node (NOTE [ Fused GELU ])."""

    raw = True
    backward_name = "GeluBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, approximate):
        dt = a.dtype
        if not is_float(dt):
            raise _not_implemented("GeluKernelImpl", dt)
        # half precision computes in float32 and rounds once, as PyTorch's CPU kernels do
        x = a if dt.itemsize > 2 else a.astype("float32")
        if x.ndim == 0:  # ufuncs on 0-d arrays return scalars: no in-place steps on those
            x = x.reshape(1)
        fn = _gelu_tanh_arrays if approximate == "tanh" else _gelu_erf_arrays
        record = ctx._record
        try:
            y, d = _gelu_run(ctx.xp, fn, x, record)
        except _FP_ERRORS:  # the user made floating-point warnings errors
            with _quiet(ctx.xp):
                y, d = _gelu_run(ctx.xp, fn, x, record)
        if y.dtype != dt or y.shape != a.shape:
            y = y.astype(dt, copy=False).reshape(a.shape)
        if record:
            ctx.approximate = approximate
            ctx.save_for_backward(a, d.reshape(a.shape))
        return y

    @staticmethod
    def backward(ctx, g):
        x, d = ctx.saved_tensors
        if state.grad:  # create_graph: the derivative as ember ops on x
            return _gelu_grad(g, x, ctx.approximate), None
        gd = g._data
        dd = d._data
        if gd.nbytes >= _ws.MIN_BYTES and _pw.dense_float(gd) and _pw.same_layout(gd, dd):
            dx = _pw.mul(ctx.xp, gd, dd)  # split over threads
        elif gd.shape == dd.shape and gd.dtype == dd.dtype:  # a workspace block (no faults)
            dx = ctx.xp.multiply(gd, dd, out=_ws.empty(ctx.xp, gd.shape, gd.dtype))
        else:
            dx = gd * dd
        if dx.dtype != gd.dtype:
            dx = dx.astype(gd.dtype)
        if not dx.ndim:  # 0-d operands give a scalar
            dx = ctx.xp.asarray(dx)
        return _make(dx), None


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``input * Phi(input)`` (Phi: the standard normal CDF), or its tanh approximation."""
    input = need_tensor(input, "gelu", wrap_arrays=True)
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return Gelu.apply(input, approximate)


def _silu_fn(xp, x):
    if x.nbytes >= _ws.MIN_BYTES and _pw.dense_float(x):  # in cached blocks
        return _pw.silu(xp, x)
    return x / (1 + xp.exp(-x))


def _silu_grad(g, x):
    out = _blocked_grad(_pw.silu_grad, g, x)  # these steps on arrays, in cached blocks
    if out is not None:
        return out
    s = sigmoid(x)
    return g * (s * (x * (1 - s) + 1))


Silu = _activation("Silu", "silu_cpu", _silu_fn, _silu_grad)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * sigmoid(input)``."""
    return _run(input, "silu", inplace, Silu, Silu)


def _softplus_fn(xp, x, beta, threshold):
    z = x * beta
    # the clamp only touches elements the linear branch takes: no overflow warning there
    soft = xp.log1p(xp.exp(xp.minimum(z, threshold))) / beta
    return xp.where(z > threshold, x, soft)


def _softplus_grad(g, x, beta, threshold):
    z = x * beta
    return where(z > threshold, g, g * sigmoid(z))


Softplus = _activation("Softplus", "softplus_cpu", _softplus_fn, _softplus_grad)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * input)) / beta``, linear where ``beta * input > threshold``."""
    return Softplus.apply(need_tensor(input, "softplus", wrap_arrays=True), beta, threshold)


def _mish_grad(g, x):
    t = tanh(Softplus.apply(x, 1.0, 20.0))
    return g * (t + x * sigmoid(x) * (1 - t * t))


Mish = _activation("Mish", "mish_cpu", lambda xp, x: x * xp.tanh(xp.logaddexp(x, 0)),
                   _mish_grad)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * tanh(softplus(input))``."""
    return _run(input, "mish", inplace, Mish, Mish)


LogSigmoid = _activation(
    "LogSigmoid", "log_sigmoid_cpu",
    lambda xp, x: xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x))),
    lambda g, x: g * sigmoid(-x))


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(input))``, computed without overflow."""
    return LogSigmoid.apply(need_tensor(input, "log_sigmoid", wrap_arrays=True))


def softsign(input: Tensor) -> Tensor:
    """``input / (1 + |input|)`` (a composition, as PyTorch records it)."""
    return input / (input.abs() + 1)


def tanhshrink(input: Tensor) -> Tensor:
    """``input - tanh(input)`` (a composition, as PyTorch records it)."""
    return input - input.tanh()


# ---- hard (piecewise-linear) activations ----------------------------------------------------

Hardsigmoid = _activation(
    "Hardsigmoid", "hardsigmoid_cpu", lambda xp, x: xp.clip(x + 3, 0, 6) / 6,
    lambda g, x: _keep(g / 6, (x > -3) & (x < 3)))


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(input + 3) / 6``."""
    return _run(input, "hardsigmoid", inplace, Hardsigmoid, Hardsigmoid)


def _hardswish_grad(g, x):
    # 0 up to -3, x/3 + 1/2 inside (-3, 3), 1 from 3 on (PyTorch's CPU choice at the kinks)
    return where(x <= -3, 0.0, where(x < 3, g * (x / 3 + 0.5), g))


Hardswish = _activation("Hardswish", "hardswish_cpu",
                        lambda xp, x: x * xp.clip(x + 3, 0, 6) / 6, _hardswish_grad)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * relu6(input + 3) / 6``."""
    return _run(input, "hardswish", inplace, Hardswish, Hardswish)


def _shrink_mask(x, lambd):
    return logical_or(x < -lambd, x > lambd)


Softshrink = _activation(
    "Softshrink", "softshrink_check",
    lambda xp, x, lambd: xp.where(x > lambd, x - lambd, xp.where(x < -lambd, x + lambd, 0)),
    lambda g, x, lambd: _keep(g, _shrink_mask(x, lambd)))

Hardshrink = _activation(
    "Hardshrink", "hardshrink_cpu",
    lambda xp, x, lambd: xp.where((x >= -lambd) & (x <= lambd), 0, x),
    lambda g, x, lambd: _keep(g, _shrink_mask(x, lambd)))

def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input - lambd`` above ``lambd``, ``input + lambd`` below ``-lambd``, else 0."""
    input = need_tensor(input, "softshrink", wrap_arrays=True)
    dt = input._data.dtype
    top = from_np(dt).finite_max
    if top is not None and not 0 <= lambd <= top:
        raise RuntimeError(f"lambda must be in range [0, {top:g}] for input dtype "
                           f"{scalar_name(dt)}, but found {lambd:g}")
    return Softshrink.apply(input, lambd)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input`` where ``|input| > lambd``, else 0."""
    return Hardshrink.apply(need_tensor(input, "hardshrink", wrap_arrays=True), lambd)


class Threshold(Function):
    """``value`` where ``input <= threshold``, else ``input``; keeps integer dtypes."""

    raw = True
    backward_name = "ThresholdBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, a, threshold, value):
        kind = a.dtype.kind
        if kind == "b":
            raise _not_implemented("threshold_cpu", a.dtype)
        if kind in "iu":  # PyTorch casts both scalars to the input's type (truncation)
            threshold, value = int(threshold), int(value)
        ctx.threshold = threshold
        ctx.save_for_backward(a)
        y = ctx.xp.where(a <= threshold, value, a)
        return y if y.dtype == a.dtype else y.astype(a.dtype)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return where(x <= ctx.threshold, 0.0, g), None, None


ThresholdInplace = _inplace_named(Threshold, "ThresholdBackward1")


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``value`` where ``input <= threshold``, else ``input``."""
    return _run(input, "threshold", inplace, Threshold, ThresholdInplace, threshold, value)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    """In-place ``threshold``."""
    return _run(input, "threshold_", True, Threshold, ThresholdInplace, threshold, value)


# ---- glu ------------------------------------------------------------------------------------

class Glu(Function):
    """``a * sigmoid(b)`` for the halves ``a, b`` of ``input`` along ``dim``."""

    raw = True
    backward_name = "GluBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)

    @staticmethod
    def forward(ctx, x, dim):
        if x.ndim == 0:
            raise RuntimeError("glu does not support scalars because halving size must be even")
        dim = wrap_dim(dim, x.ndim)
        n = x.shape[dim]
        if n % 2:
            raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {n}")
        if not is_float(x.dtype):
            raise _not_implemented("glu_cpu", x.dtype)
        h = n // 2
        lead = (slice(None),) * dim
        a, b = x[lead + (slice(0, h),)], x[lead + (slice(h, n),)]
        ctx.dim = dim
        ctx.save_for_backward(x)
        with _quiet(ctx.xp):  # exp(-b) overflows to inf for very negative b: sigmoid is 0
            return a / (1 + ctx.xp.exp(-b))

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        dim = ctx.dim
        h = x.shape[dim] // 2
        a, b = narrow(x, dim, 0, h), narrow(x, dim, h, h)
        s = sigmoid(b)
        ga = g * s
        return cat([ga, ga * a * (1 - s)], dim), None


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """``a * sigmoid(b)``, ``a`` and ``b`` the two halves of ``input`` along ``dim``."""
    return Glu.apply(need_tensor(input, "glu", wrap_arrays=True), dim)


# ---- softmax family -------------------------------------------------------------------------

def _softmax_input(a, dim: int, op: str):
    """``a`` as the array to reduce over ``dim`` (0-d as 1-d), after PyTorch's dtype check."""
    if not is_float(a.dtype):
        last = dim == a.ndim - 1 or a.ndim == 0
        raise _not_implemented(f"{op}_{'lastdim_' if last else ''}kernel_impl", a.dtype)
    # half precision computes in float32 and rounds once, as PyTorch's CPU kernels do
    x = a if a.dtype.itemsize > 2 else a.astype("float32")
    return x if x.ndim else x.reshape(1)


class Softmax(Function):
    """``exp(x - max) / sum(exp(x - max))`` along ``dim``: one node."""

    raw = True
    backward_name = "SoftmaxBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    saves_inputs = True  # the result

    @staticmethod
    def forward(ctx, a, dim):
        x = _softmax_input(a, dim, "softmax")
        axis = ctx.dim = dim
        dt = a.dtype
        if x.size == 0:
            y = x.copy()
        else:
            with _quiet(ctx.xp):  # inf - inf gives nan, as in PyTorch
                y = x - x.max(axis, keepdims=True)
                ctx.xp.exp(y, out=y)
                y *= 1 / y.sum(axis, keepdims=True)
        if y.dtype != dt or y.shape != a.shape:
            y = y.astype(dt, copy=False).reshape(a.shape)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        gy = g * y
        return gy - y * gy.sum(ctx.dim, keepdim=True), None


class LogSoftmax(Function):
    """``x - max - log(sum(exp(x - max)))`` along ``dim``: one node."""

    raw = True
    backward_name = "LogSoftmaxBackward0"
    edges = 1  # (PyTorch's node: the tensor only, not the numbers after it)
    saves_inputs = True  # the result

    @staticmethod
    def forward(ctx, a, dim):
        x = _softmax_input(a, dim, "log_softmax")
        axis = ctx.dim = dim
        dt = a.dtype
        probs = None
        if x.size == 0:
            y = probs = x.copy()
        else:
            xp = ctx.xp
            with _quiet(xp):
                y = x - x.max(axis, keepdims=True)
                e = xp.exp(y)
                total = e.sum(axis, keepdims=True)
                y -= xp.log(total)
                if ctx._record:  # softmax, kept so a first-order backward needs no exp
                    e *= 1 / total
                    probs = e
        if y.dtype != dt or y.shape != a.shape:
            y = y.astype(dt, copy=False).reshape(a.shape)
        if ctx._record:
            ctx.probs = probs.astype(dt, copy=False).reshape(a.shape)
            ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors  # checks that the output was not modified in place
        # exp(y) is the softmax; under create_graph it must be an op on y to differentiate
        probs = exp(y) if state.grad else _make(ctx.probs)
        return g - probs * g.sum(ctx.dim, keepdim=True), None


def _implicit_dim(name: str, ndim: int, stacklevel: int) -> int:
    """PyTorch's legacy choice of dim when none is given (with its deprecation warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_like(cls, name, input, dim, stacklevel, dtype, negate=False):
    input = need_tensor(input, name, wrap_arrays=True)
    if dim is None:
        dim = _implicit_dim(name, input._data.ndim, stacklevel + 1)
    dim = wrap_dim(dim, input._data.ndim)
    if negate:
        input = -input
    if dtype is not None:
        input = input.to(dtype)
    return cls.apply(input, dim)


def softmax(input: Tensor, dim: int = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``exp(input) / sum(exp(input))`` along ``dim``, computed stably."""
    return _softmax_like(Softmax, "softmax", input, dim, _stacklevel, dtype)


def log_softmax(input: Tensor, dim: int = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``log(softmax(input))`` along ``dim``, computed stably."""
    return _softmax_like(LogSoftmax, "log_softmax", input, dim, _stacklevel, dtype)


def softmin(input: Tensor, dim: int = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``softmax(-input)`` along ``dim``."""
    return _softmax_like(Softmax, "softmin", input, dim, _stacklevel, dtype, negate=True)


def _softmax_method(self, dim, dtype=None):
    return _softmax_like(Softmax, "softmax", self, dim, 3, dtype)


def _log_softmax_method(self, dim, dtype=None):
    return _softmax_like(LogSoftmax, "log_softmax", self, dim, 3, dtype)


# Tensor methods PyTorch has for this family (relu/relu_/sigmoid/tanh come from elementwise).
METHODS = {"softmax": _softmax_method, "log_softmax": _log_softmax_method,
           "hardshrink": hardshrink, "prelu": prelu}
