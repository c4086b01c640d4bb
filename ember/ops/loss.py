"""Neural-network ops: losses and distances (forward and backward side by side).

The losses PyTorch computes with a kernel of its own are one fused node here too,
each with its reduction inside (``mse_loss``, ``smooth_l1_loss``, ``huber_loss``,
``binary_cross_entropy[_with_logits]``, ``soft_margin_loss``, ``nll_loss``), named
as PyTorch names them; ``l1_loss`` is fused as well (its node takes the name of the
last node of PyTorch's composition).  Their backward is written with ember ops, so
``create_graph=True`` differentiates it again; the hot ones compute a plain backward
on arrays directly.  The losses PyTorch composes from other ops (``kl_div``, the
margin and embedding losses, ``gaussian_nll_loss``, ...) are composed here from
ember ops in the same way, so values, gradients and their edge cases (NaN where
PyTorch gives NaN) follow PyTorch's formulas.

``cross_entropy`` with class-index targets is one fused node (log-softmax and
NLL together): the forward keeps ``exp(x - max)`` and its row sums, and the
backward is ``s * (a * softmax - b)`` with per-row ``a``, ``b`` built from the
class weights, the ignored targets and the label smoothing.  It measured faster
than ``nll_loss(log_softmax(x))`` (see NOTE [ Fused cross-entropy ]).

Reductions follow PyTorch: ``'mean'`` of NLL-style losses divides by the summed
weights of the targets that are not ignored, so an all-ignored batch gives NaN.
"""
from __future__ import annotations

import math
import warnings

from .. import _backend
from .._dtype import from_np, promote_types
from .._tensor import Tensor, _make
from ..autograd.function import Function
from ..autograd.grad_mode import state
from ._util import (result_dtype, reduce_grad, check_broadcast, is_float, wrap_dim,
                    scalar_name)
from . import elementwise as _ew
from .activation import softmax, log_softmax, logsigmoid
from .elementwise import (where, sigmoid, minimum, clamp_min, exp, log, _fp_safe, _quiet,
                          _not_implemented)
from .movement import broadcast_shapes
from . import _workspace as ws

# log(0) in binary_cross_entropy at a probability of exactly 0 or 1 is clamped to -100, as
# PyTorch computes it silently: NumPy's warning is hidden as in elementwise.py (NOTE [
# Floating-point warnings ]), and ``_fp_safe`` reruns a forward the user made raise
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "cosine_embedding_loss", "margin_ranking_loss", "hinge_embedding_loss",
    "triplet_margin_loss", "multilabel_soft_margin_loss", "soft_margin_loss",
    "multi_margin_loss", "normalize", "cosine_similarity", "pairwise_distance",
    "multilabel_margin_loss", "triplet_margin_with_distance_loss", "ctc_loss",
]

# 0 / 0 for the mean over no (unignored) targets is NaN, silently as in PyTorch: see
# NOTE [ Floating-point warnings ] in elementwise.py.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)

_XP = _backend._BY_ARRAY_TYPE


# ---- reduction arguments ------------------------------------------------------------------

def _check_reduction(reduction: str) -> str:
    """PyTorch's validation of ``reduction`` (``_Reduction.get_enum``)."""
    if reduction == "mean" or reduction == "sum" or reduction == "none":
        return reduction
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' "
                      "instead.", stacklevel=4)
        return "mean"
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, stacklevel: int = 4) -> str:
    """The reduction the deprecated ``size_average``/``reduce`` pair stands for (warns)."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{ret}' instead.", stacklevel=stacklevel)
    return ret


def _reduction(size_average, reduce, reduction: str) -> str:
    if size_average is not None or reduce is not None:
        return _legacy_reduction(size_average, reduce)
    return _check_reduction(reduction)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _reduced(xp, loss, reduction: str):
    """An array loss reduced as ``reduction`` says (the mean of nothing is NaN)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if loss.size == 0:
        return xp.full((), math.nan, loss.dtype)
    return loss.mean()


def _no_grad_arg(t, fn: str, arg: str) -> None:
    """PyTorch refuses to record an op for an argument it does not differentiate."""
    if t is not None and t._requires_grad and state.grad:
        raise RuntimeError(f"The function '{fn}' is not differentiable with respect to argument "
                           f"'{arg}'. This input cannot have requires_grad True.")


def _warn_size(input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", stacklevel=3)


def _weighted(loss: Tensor, weight: Tensor, reduction: str, mean_by_weight: bool) -> Tensor:
    """The ``weight=`` path of mse/l1/huber, as PyTorch composes it."""
    loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / weight.sum() if mean_by_weight else loss.mean()
    raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', "
                     "'sum'.")


def _check_weight_size(weight: Tensor, input: Tensor) -> None:
    if weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")


# ---- fused elementwise losses of ``input - target`` -----------------------------------------

class _DiffLoss(Function):
    """A loss of ``d = input - target`` with its reduction, as one node.

    Subclasses give ``value(xp, d, param)`` on arrays and ``slope(m, d, param)``, the
    derivative in ``d``, written once for ``m`` the array module (plain backward) or
    ember's elementwise ops (``create_graph``, differentiable again).
    """

    raw = True
    edges = 2  # (PyTorch's node: input and target, not the dtype, reduction, parameter)

    @_fp_safe
    def forward(ctx, a, b, dt, reduction, param):
        d = ctx.xp.subtract(a, b, dtype=dt)
        if ctx._record:
            ctx.meta = (a.shape, a.dtype, b.shape, b.dtype, dt, reduction, d.size, param)
            ctx.save_for_backward(a, b)
        return _reduced(ctx.xp, ctx.value(ctx.xp, d, param), reduction)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, da, sb, db, dt, reduction, n, param = ctx.meta
        if reduction == "mean" and n:
            g = g / n
        if state.grad:
            if da.kind == "b" or db.kind == "b":  # PyTorch's kernels take bool operands
                a, b = a.to(from_np(dt)), b.to(from_np(dt))
            gd = g * ctx.slope(_ew, a - b, param)
            gd_neg = -gd if ctx.needs_input_grad[1] else None
        else:
            xp = ctx.xp
            d = ctx.slope(xp, xp.subtract(a._data, b._data, dtype=dt), param)
            gd = xp.asarray(xp.multiply(d, g._data, dtype=dt))  # 0-d ufuncs give scalars
            gd_neg = _make(xp.asarray(-gd)) if ctx.needs_input_grad[1] else None
            gd = _make(gd)
        return (reduce_grad(gd, sa, da) if ctx.needs_input_grad[0] else None,
                reduce_grad(gd_neg, sb, db) if gd_neg is not None else None, None, None, None)


class MseLoss(_DiffLoss):
    backward_name = "MseLossBackward0"

    @staticmethod
    def value(xp, d, param):
        return xp.multiply(d, d, out=d) if d.ndim else d * d  # 0-d ufunc results are scalars

    @staticmethod
    def slope(m, d, param):
        return d * 2


class L1Loss(_DiffLoss):
    """``|d|``: PyTorch composes it, so its last node is named after the reduction."""

    _NAMES = {"mean": "MeanBackward0", "sum": "SumBackward0", "none": "AbsBackward0"}

    def name(self) -> str:
        return self._NAMES[self.meta[5]]

    @staticmethod
    def value(xp, d, param):
        return xp.abs(d)

    @staticmethod
    def slope(m, d, param):
        return m.sign(d)


class SmoothL1Loss(_DiffLoss):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``."""

    backward_name = "SmoothL1LossBackward0"

    @staticmethod
    def value(xp, d, beta):
        ad = xp.abs(d)
        return xp.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta)

    @staticmethod
    def slope(m, d, beta):
        return m.clip(d / beta, -1.0, 1.0)


class HuberLoss(_DiffLoss):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``."""

    backward_name = "HuberLossBackward0"

    @staticmethod
    def value(xp, d, delta):
        ad = xp.abs(d)
        return xp.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))

    @staticmethod
    def slope(m, d, delta):
        return m.clip(d, -delta, delta)


def _diff_loss(cls, kernel: str, input: Tensor, target: Tensor, reduction: str, param):
    if input.shape != target.shape:
        check_broadcast(tuple(input.shape), tuple(target.shape))
    dt = result_dtype(input, target)
    if cls is not HuberLoss and isinstance(input, Tensor) and isinstance(target, Tensor):
        # PyTorch broadcasts both first, so a 0-d float64 operand counts as dimensioned
        dt = promote_types(input.dtype, target.dtype).np
    if not is_float(dt):
        raise _not_implemented(kernel, dt)
    return cls.apply(input, target, dt, reduction, param)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean",
             weight=None) -> Tensor:
    """Mean squared error ``(input - target)^2``, reduced."""
    _warn_size(input, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if weight is not None:
        _check_weight_size(weight, input)
        return _weighted((input - target) ** 2, weight, reduction, True)
    return _diff_loss(MseLoss, "mse_cpu", input, target, _check_reduction(reduction), None)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
            weight=None) -> Tensor:
    """Mean absolute error ``|input - target|``, reduced."""
    _warn_size(input, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if weight is not None:
        _check_weight_size(weight, input)
        return _weighted((input - target).abs(), weight, reduction, True)
    reduction = _check_reduction(reduction)
    if not is_float(result_dtype(input, target)):  # PyTorch's composition: ints stay ints
        return _reduce((input - target).abs(), reduction)
    return _diff_loss(L1Loss, "l1_cpu", input, target, reduction, None)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0) -> Tensor:
    """Squared error below ``beta``, absolute error above it (beta 0: ``l1_loss``)."""
    _warn_size(input, target)
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0.0:
        return l1_loss(input, target, reduction=reduction)
    return _diff_loss(SmoothL1Loss, "smooth_l1_cpu", input, target, reduction, float(beta))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None) -> Tensor:
    """Squared error below ``delta``, ``delta``-scaled absolute error above it."""
    _warn_size(input, target)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    if weight is not None:
        _check_weight_size(weight, input)
        loss = _diff_loss(HuberLoss, "huber_cpu", input, target, "none", float(delta))
        return _weighted(loss, weight, reduction, False)
    return _diff_loss(HuberLoss, "huber_cpu", input, target, _check_reduction(reduction),
                      float(delta))


# ---- binary cross-entropy -------------------------------------------------------------------

class BinaryCrossEntropy(Function):
    """``-w (t log(x) + (1 - t) log(1 - x))``, each log clamped to >= -100."""

    raw = True
    backward_name = "BinaryCrossEntropyBackward0"

    @_fp_safe
    def forward(ctx, x, t, w, reduction):
        xp = ctx.xp
        log_x = xp.maximum(xp.log(x), -100.0)
        log_1mx = xp.maximum(xp.log1p(-x), -100.0)
        loss = (t - 1) * log_1mx - t * log_x
        if w is not None:
            loss *= w
        if ctx._record:
            ctx.meta = (reduction, loss.size, w)
            ctx.save_for_backward(x, t)
        return _reduced(xp, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        reduction, n, w = ctx.meta
        if reduction == "mean" and n:
            g = g / n
        if state.grad:  # create_graph: ember ops, differentiable again
            if w is not None:
                g = g * _make(w)
            gx = gt = None
            if ctx.needs_input_grad[0]:
                gx = g * (x - t) / clamp_min(x * (1 - x), 1e-12)
            if ctx.needs_input_grad[1]:
                gt = g * ((-x).log1p() - x.log())  # -logit(x)
            return gx, gt, None, None
        return _bce_grads(ctx, g._data if w is None else g._data * w, x._data, t._data)


def _bce_grads(ctx, g, x, t):
    """The plain (not ``create_graph``) BCE gradients, on arrays."""
    xp = ctx.xp
    gx = gt = None
    if ctx.needs_input_grad[0]:
        gx = _make(xp.asarray(g * (x - t) / xp.maximum(x * (1 - x), 1e-12)))
    if ctx.needs_input_grad[1]:
        with _quiet(xp):  # log(0) at x = 0: an infinite gradient, as in PyTorch
            gt = _make(xp.asarray(g * (xp.log1p(-x) - xp.log(x))))
    return gx, gt, None, None


def _bce_checks(input: Tensor, target: Tensor, weight):
    x, t = input._data, target._data
    if not is_float(x.dtype):
        if t.dtype == x.dtype:
            raise _not_implemented("binary_cross_entropy", x.dtype)
    if t.dtype != x.dtype:
        raise RuntimeError(f"Found dtype {scalar_name(t.dtype)} but expected "
                           f"{scalar_name(x.dtype)}")
    xp = _XP[type(x)][0]
    if not bool(xp.all((x >= 0) & (x <= 1))):
        raise RuntimeError("all elements of input should be between 0 and 1")
    if not bool(xp.all((t >= 0) & (t <= 1))):
        raise RuntimeError("all elements of target should be between 0 and 1")
    if weight is None:
        return None
    _no_grad_arg(weight, "binary_cross_entropy", "weight")
    return _expanded(weight._data, target.shape, x.dtype)


def _expanded(w, shape, dt):
    """Weight array ``w`` in dtype ``dt``, checked to broadcast to exactly ``shape``."""
    out = tuple(broadcast_shapes(shape, w.shape))
    if out != tuple(shape):
        raise RuntimeError(f"output with shape {list(shape)} doesn't match the broadcast shape "
                           f"{list(out)}")
    return w if w.dtype == dt else w.astype(dt)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` against ``target`` in [0, 1]."""
    reduction = _reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input "
                         f"size ({input.shape}) is deprecated. Please ensure they have the same "
                         "size.")
    w = _bce_checks(input, target, weight)
    return BinaryCrossEntropy.apply(input, target, w, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """``(1 - t) x - (1 + (pw - 1) t) log(sigmoid(x))``, times ``w``: stable for any ``x``."""

    raw = True
    backward_name = "BinaryCrossEntropyWithLogitsBackward0"

    @_fp_safe
    def forward(ctx, xa, ta, w, pw, dt, reduction):
        xp = ctx.xp
        x = xa.astype(dt, copy=False)
        t = ta.astype(dt, copy=False)
        log_sig = xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))
        if pw is not None:
            log_sig = log_sig * ((pw - 1) * t + 1)
        loss = (1 - t) * x - log_sig
        if w is not None:
            loss = loss * w
        if ctx._record:
            ctx.meta = (reduction, loss.size, w, pw)
            ctx.save_for_backward(xa, ta)
        return _reduced(xp, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        reduction, n, w, pw = ctx.meta
        if reduction == "mean" and n:
            g = g / n
        if w is not None:
            g = g * _make(w)
        pw = _make(pw) if pw is not None else None
        gx = gt = None
        if ctx.needs_input_grad[0]:
            if pw is None:
                gx = g * (sigmoid(x) - t)
            else:
                pt = pw * t
                gx = g * ((pt + 1 - t) * sigmoid(x) - pt)
            gx = reduce_grad(gx, x._data.shape, x._data.dtype)
        if ctx.needs_input_grad[1]:
            gt = -x if pw is None else (1 - pw) * logsigmoid(x) - x
            gt = reduce_grad(g * gt, t._data.shape, t._data.dtype)
        return gx, gt, None, None, None, None


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None) -> Tensor:
    """Binary cross-entropy of ``sigmoid(input)``, computed stably from the logits."""
    reduction = _reduction(size_average, reduce, reduction)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    return _bce_logits(input, target, weight, pos_weight, reduction)


def _bce_logits(input, target, weight, pos_weight, reduction):
    x, t = input._data, target._data
    if not is_float(x.dtype):
        raise _not_implemented("log_sigmoid_cpu", x.dtype)
    dt = result_dtype(input, target)
    if not is_float(t.dtype):
        raise RuntimeError(f"result type {scalar_name(dt)} can't be cast to the desired output "
                           f"type {scalar_name(t.dtype)}")
    shape = broadcast_shapes(input.shape, target.shape)
    w = pw = None
    if weight is not None:
        _no_grad_arg(weight, "binary_cross_entropy_with_logits", "weight")
        check_broadcast(tuple(shape), tuple(weight.shape))
        w = _expanded(weight._data, shape, dt)
    if pos_weight is not None:
        _no_grad_arg(pos_weight, "binary_cross_entropy_with_logits", "pos_weight")
        check_broadcast(tuple(pos_weight.shape), tuple(shape))
        pw = _expanded(pos_weight._data, shape, dt)
    return BinaryCrossEntropyWithLogits.apply(input, target, w, pw, dt, reduction)


# ---- negative log-likelihood and cross-entropy ----------------------------------------------

def _as_rows(xp, x):
    """``x`` (C), (N, C) or (N, C, d1, ...) as a (rows, C) array: the class dim last."""
    if x.ndim == 2:
        return x
    if x.ndim == 1:
        return x.reshape(1, -1)
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def _from_rows(xp, a, shape):
    """The inverse of ``_as_rows``: a (rows, C) array back in the layout ``shape``."""
    if len(shape) == 2:
        return a
    if len(shape) == 1:
        return a.reshape(shape)
    return xp.moveaxis(a.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1)


def _row_layout(v, shape):
    """A per-row array ``v`` shaped to broadcast against the input layout ``shape``."""
    if len(shape) == 1:
        return v.reshape(())
    return v.reshape((shape[0], 1) + tuple(shape[2:]))


def _targets(xp, t, ignore_index, n_classes: int):
    """Flat class indices (ignored ones set to 0) and the kept mask (None: all kept)."""
    t = t.reshape(-1)
    if not t.size:
        return t, None
    low = t.min()
    if ignore_index >= 0 or low < 0:  # (else no target can equal ignore_index: all kept)
        keep = t != ignore_index
        if bool(keep.all()):
            keep = None
        else:
            t = xp.where(keep, t, 0)
            low = t.min()
    else:
        keep = None
    if low < 0 or t.max() >= n_classes:
        bad = (t < 0) | (t >= n_classes)
        raise IndexError(f"Target {int(t[bad][0])} is out of bounds.")
    return t, keep


def _row_weights(t, keep, w, dt):
    """Each row's class weight, 0 where ignored (None: every row weighs 1)."""
    if w is None:
        return None if keep is None else keep.astype(dt)
    lw = w[t]
    return lw if keep is None else lw * keep


def _finish_rows(xp, loss, keep, lw, reduction, tshape, dt):
    """Reduce per-row losses: the mean divides by the summed weights of kept rows."""
    if keep is not None:
        loss = xp.where(keep, loss, 0)
    if reduction == "none":
        return loss.reshape(tshape).astype(dt, copy=False), None
    total = loss.sum()
    if reduction == "sum":
        return total.astype(dt), None
    weight_sum = loss.dtype.type(loss.shape[0]) if lw is None else lw.sum()
    return _divide(xp, total, weight_sum).astype(dt), weight_sum


def _divide(xp, a, b):
    """``a / b``; a zero ``b`` gives inf or NaN silently, as in PyTorch."""
    if b:
        return a / b
    with _quiet(xp):
        return a / b


def _compute_dtype(xp, dt):
    """Half-precision class losses compute in float32, as PyTorch accumulates them."""
    return dt if dt.itemsize > 2 else xp.dtype("float32")


class NllLoss(Function):
    """``-w[t] * input[t]`` along the class dim, ignored targets dropped, reduced."""

    raw = True
    backward_name = "NllLossBackward0"

    @_fp_safe
    def forward(ctx, x, target, w, ignore_index, reduction):
        xp = ctx.xp
        x2 = _as_rows(xp, x)
        t, keep = _targets(xp, target, ignore_index, x2.shape[1])
        lw = _row_weights(t, keep, w, x.dtype)
        picked = x2[xp.arange(x2.shape[0]), t]
        loss = -picked if lw is None else -(picked * lw)
        tshape = () if x.ndim == 1 else target.shape
        out, weight_sum = _finish_rows(xp, loss, keep, lw, reduction, tshape, x.dtype)
        if ctx._record:
            ctx.meta = (x.shape, x.dtype, t, keep, lw, weight_sum, reduction)
        return out

    @staticmethod
    def backward(ctx, g):
        shape, dt, t, keep, lw, weight_sum, reduction = ctx.meta
        xp = _XP[type(g._data)][0]
        rows = t.shape[0]
        pattern = xp.zeros((rows, shape[-1] if len(shape) == 1 else shape[1]), dt)
        val = -lw if lw is not None else dt.type(-1)
        if reduction == "mean":
            val = _divide(xp, val, weight_sum)
            if keep is not None:  # ignored rows get exactly 0, even when the divisor is 0
                val = xp.where(keep, val, 0)
        pattern[xp.arange(rows), t] = val
        if reduction == "none" and len(shape) > 1:
            g = g.unsqueeze(1)
        return g * _make(_from_rows(xp, pattern, shape)), None, None, None, None


class NllLoss2d(NllLoss):
    backward_name = "NllLoss2DBackward0"


def _check_class_shapes(ishape, tshape) -> None:
    """PyTorch's shape checks for class-index targets (``nll_loss_nd``)."""
    nd = len(ishape)
    if nd < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {nd})")
    tb = tshape[0] if tshape else 0
    if nd != 1 and ishape[0] != tb:
        raise ValueError(f"Expected input batch_size ({ishape[0]}) to match target batch_size "
                         f"({tb}).")
    if nd <= 2:
        if len(tshape) > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if nd == 1 and len(tshape) == 1 and tshape[0] != 1:
            raise ValueError("For 1D input, 1D target must have size 1, but got target size: "
                             f"{tshape[0]}")
    elif nd == 4:
        if len(tshape) != 3:
            raise RuntimeError("only batches of spatial targets supported (3D tensors) but got "
                               f"targets of dimension: {len(tshape)}")
        if tuple(tshape[1:]) != tuple(ishape[2:]):
            raise RuntimeError(f"size mismatch (got input: {list(ishape)} , target: "
                               f"{list(tshape)}")
    elif tuple(tshape[1:]) != tuple(ishape[2:]):
        raise RuntimeError(f"Expected target size {[ishape[0], *ishape[2:]]}, got "
                           f"{list(tshape)}")


def _class_args(input: Tensor, target: Tensor, weight, kernel: str, fn: str):
    """Validate an NLL-style call; returns the weight array (or None)."""
    x, t = input._data, target._data
    _check_class_shapes(x.shape, t.shape)
    k, size = t.dtype.kind, t.dtype.itemsize
    if not (k == "i" and size == 8 or k == "u" and size == 1):  # int64 or uint8
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{scalar_name(t.dtype)}")
    if not is_float(x.dtype):
        raise _not_implemented(kernel, x.dtype)
    if weight is None:
        return None
    n_classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = weight._data
    if w.ndim != 1 or w.size != n_classes:
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes "
                           f"or no classes but got weight tensor of shape: {list(w.shape)}")
    if w.dtype != x.dtype:
        raise RuntimeError(f"expected scalar type {scalar_name(x.dtype)} but found "
                           f"{scalar_name(w.dtype)}")
    _no_grad_arg(weight, fn, "weight")
    return w


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``."""
    reduction = _reduction(size_average, reduce, reduction)
    w = _class_args(input, target, weight, "nll_loss_out_frame", "nll_loss_forward")
    cls = NllLoss if input._data.ndim <= 2 else NllLoss2d
    return cls.apply(input, target, w, ignore_index, reduction)


# NOTE [ Fused cross-entropy ]
# With class-index targets, cross_entropy is one node.  Per row i, with p = softmax(x_i),
# kept mask m, row weight w_t (the target's class weight), class weights w_c (all 1 without
# ``weight``), smoothing e over C classes, the loss is
#     (1 - e) w_t (-log p_t) + (e / C) sum_c w_c (-log p_c)        (0 for ignored rows)
# and its gradient is s * (a * p - b) with a = (1 - e) w_t + (e / C) sum_c w_c and
# b_c = (1 - e) w_t [c == t] + (e / C) w_c, s the upstream gradient (divided by the summed
# w_t of kept rows for 'mean').  The forward keeps exp(x - max) and its row sums, so the
# backward is one pass over the input plus a scatter at the targets.  The shift before exp is
# the largest logit overall when all logits lie within 20 of each other (``_logit_shift``),
# and the row sums are a GEMV: at (2048, 65) float32 (lstm_lm_step's head) NumPy's row max
# and row sum were ~170 and ~105 us of a ~300 us forward.  Measured against
# ``nll_loss(log_softmax(x, 1), t)`` (forward + backward, float32): (128, 10) 0.65x and
# (128, 1000) 0.62x of the composition's time.  Under ``create_graph`` the backward is
# written with ember ops on ``softmax(x)`` instead, so it differentiates again.

# The largest logit range over which the forward shifts every row by the one largest logit
# (NOTE [ Fused cross-entropy ]).
_SHIFT_RANGE = 20.0


def _logit_shift(x2):
    """What the forward subtracts from the logits ``x2`` (R, C) before ``exp``: the largest
    logit of all rows when all logits lie within ``_SHIFT_RANGE`` of each other, else each
    row's largest (R, 1).

    Any shift gives the same loss; the row's largest keeps ``exp`` from overflowing and the
    row's sum from underflowing.  Within a range of 20 the global largest does too (every row
    sums to at least ``exp(-20)``) and adds at most ~20 ulp-sized absolute error to ``log``
    of the sum, while NumPy's max over short rows (65 classes: ~170 us for 2048 rows) costs
    ~20x the global max and min.  NaN or inf in ``x2`` takes the per-row path.
    """
    if x2.size == 0:
        return x2.max(axis=1, keepdims=True)
    hi, lo = x2.max(), x2.min()
    if hi - lo <= _SHIFT_RANGE:
        return hi
    return x2.max(axis=1, keepdims=True)


class CrossEntropyLoss(Function):
    """Cross-entropy of logits ``x`` at class indices: log-softmax and NLL in one node."""

    raw = True
    backward_name = "NllLossBackward0"

    @_fp_safe
    def forward(ctx, x, target, w, ignore_index, reduction, eps):
        xp = ctx.xp
        dt = x.dtype
        x2 = _as_rows(xp, x)
        rows, n_classes = x2.shape
        cdt = _compute_dtype(xp, dt)
        x2 = x2.astype(cdt, copy=False)
        t, keep = _targets(xp, target, ignore_index, n_classes)
        w = w.astype(cdt, copy=False) if w is not None else None
        lw = _row_weights(t, keep, w, cdt)
        # z (kept as exp(z) for backward) in a reused block: no page faults (NOTE [ Workspace ])
        z = ws.empty(xp, x2.shape, cdt)
        if n_classes:
            xp.subtract(x2, _logit_shift(x2), out=z)
        else:
            z[...] = x2
        picked = z[xp.arange(rows), t]
        if eps:  # the smoothing term needs sum_c w_c z_c before z becomes exp(z)
            zw = z.sum(axis=1) if w is None else z @ w
        e = xp.exp(z, out=z)
        # row sums as a GEMV: NumPy's sum over short rows (65 classes) is ~10x slower
        se = xp.matmul(e, xp.ones(n_classes, cdt)) if cdt.itemsize >= 4 else e.sum(axis=1)
        lse = xp.log(se)
        loss = lse - picked
        if lw is not None:
            loss *= lw
        if eps:
            w_all = n_classes if w is None else w.sum()
            smooth = lse * w_all - zw
            if keep is not None:
                smooth *= keep
            loss = (1 - eps) * loss + (eps / n_classes) * smooth
        tshape = () if x.ndim == 1 else target.shape
        out, weight_sum = _finish_rows(xp, loss, keep, lw, reduction, tshape, dt)
        if ctx._record:
            ctx.meta = (x.shape, dt, t, keep, lw, w, weight_sum, reduction, eps)
            ctx.exp_z = (e, se)
            ctx.save_for_backward(x)
        return out

    @_fp_safe
    def backward(ctx, g):
        shape, dt, t, keep, lw, w, weight_sum, reduction, eps = ctx.meta
        e, se = ctx.exp_z
        xp = _XP[type(e)][0]
        rows, n_classes = e.shape
        cdt = e.dtype
        ones = cdt.type(1)
        lwv = lw if lw is not None else ones
        keepv = keep.astype(cdt) if keep is not None else ones
        # per-row coefficients of the softmax (a) and of the one-hot target (b_t)
        a = lwv if not eps else (1 - eps) * lwv + (eps / n_classes) * (
            n_classes if w is None else w.sum()) * keepv
        b_t = lwv if not eps else (1 - eps) * lwv
        if state.grad:  # create_graph: differentiable in x through softmax(x)
            return _ce_backward_graph(ctx, g, a, b_t, keepv, xp), None, None, None, None, None
        gd = g._data.astype(cdt, copy=False)
        s = gd.reshape(-1) if reduction == "none" else gd
        if reduction == "mean":
            s = _divide(xp, s, weight_sum)
        if keep is not None:  # ignored rows get exactly 0, even when s is inf or NaN
            s = xp.where(keep, s, 0)
        gx = xp.multiply(e, (s * a / se).reshape(-1, 1), out=ws.empty(xp, e.shape, cdt))
        gx[xp.arange(rows), t] -= s * b_t
        if eps:
            sk = (s * (eps / n_classes) * keepv) * ones
            gx -= sk.reshape(-1, 1) if w is None else xp.multiply.outer(sk.reshape(-1), w)
        gx = _from_rows(xp, gx, shape).astype(dt, copy=False)
        return _make(gx), None, None, None, None, None


def _ce_backward_graph(ctx, g, a, b_t, keepv, xp):
    """The cross-entropy gradient with ember ops on ``softmax(x)`` (for ``create_graph``)."""
    shape, dt, t, keep, lw, w, weight_sum, reduction, eps = ctx.meta
    x, = ctx.saved_tensors
    rows, n_classes = ctx.exp_z[0].shape
    cdt = ctx.exp_z[0].dtype
    p = softmax(x, 0 if len(shape) == 1 else 1)
    s = g
    if reduction == "none" and len(shape) > 1:
        s = g.unsqueeze(1)
    if reduction == "mean":
        s = s * (1.0 / float(weight_sum) if weight_sum else math.inf)
    if keep is not None:
        s = where(_make(_row_layout(keep, shape)), s, 0.0)
    a_rows = xp.broadcast_to(xp.asarray(a, cdt), (rows,))
    b = xp.zeros((rows, n_classes), cdt)
    b[xp.arange(rows), t] = b_t
    if eps:
        b += (eps / n_classes) * xp.multiply.outer(
            xp.broadcast_to(keepv, (rows,)), w if w is not None else xp.ones(n_classes, cdt))
    a_c = _make(_row_layout(a_rows, shape).astype(dt))
    b_c = _make(_from_rows(xp, b, shape).astype(dt))
    return s * (p * a_c - b_c)


class CrossEntropyLoss2d(CrossEntropyLoss):
    backward_name = "NllLoss2DBackward0"


class CrossEntropyLossSmoothed(CrossEntropyLoss):
    backward_name = "AddBackward0"  # PyTorch's last node: (1 - e) * nll + e / C * smooth


def _cross_entropy_probs(input, target, weight, reduction, eps):
    """Cross-entropy against class probabilities, composed as PyTorch composes it."""
    x, t = input._data, target._data
    if not is_float(t.dtype):
        raise RuntimeError("Expected floating point type for target with class probabilities, "
                           f"got {scalar_name(t.dtype)}")
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    if weight is not None and (weight.dim() != 1 or weight.numel() != n_classes):
        raise RuntimeError(f"cross_entropy: weight tensor should be defined either for all "
                           f"{n_classes} classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    logp = log_softmax(input, class_dim)
    if eps:
        target = target * (1 - eps) + eps / n_classes
    prod = logp * target
    if weight is not None:
        if x.ndim > 1:
            weight = weight.view([n_classes if i == 1 else 1 for i in range(x.ndim)])
        prod = prod * weight
    if reduction == "none":
        return -prod.sum(class_dim)
    if reduction == "sum":
        return -prod.sum()
    return -prod.sum() / (x.size // n_classes if x.size else math.nan)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0) -> Tensor:
    """Cross-entropy of logits ``input`` against class indices or class probabilities."""
    reduction = _reduction(size_average, reduce, reduction)
    eps = float(label_smoothing) if label_smoothing > 0 else 0.0
    if eps > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if input.shape == target.shape:
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        return _cross_entropy_probs(input, target, weight, reduction, eps)
    w = _class_args(input, target, weight, "log_softmax_lastdim_kernel_impl", "nll_loss_forward")
    cls = CrossEntropyLossSmoothed if eps else (
        CrossEntropyLoss if input._data.ndim <= 2 else CrossEntropyLoss2d)
    return cls.apply(input, target, w, ignore_index, reduction, eps)


# ---- divergences and likelihoods ------------------------------------------------------------

class Xlogy(Function):
    """``t * log(t)`` (0 where ``t == 0``): PyTorch's ``xlogy(t, t)``."""

    raw = True
    backward_name = "XlogyBackward0"

    @_fp_safe
    def forward(ctx, t):
        xp = ctx.xp
        ctx.save_for_backward(t)
        return xp.where(t == 0, t.dtype.type(0), t * xp.log(t))

    @staticmethod
    def backward(ctx, g):
        t, = ctx.saved_tensors
        # PyTorch's two partials of xlogy(x, y) at x = y = t: log(t) (0 at t = 0) and t / t
        return g * (where(t != 0, log(t), 0.0) + t / t)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean",
           log_target=False) -> Tensor:
    """Pointwise KL divergence ``target * (log(target) - input)``, ``input`` in log space."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    else:
        if reduction == "mean":
            warnings.warn("reduction: 'mean' divides the total loss by both the batch size and "
                          "the support size.'batchmean' divides only by the batch size, and "
                          "aligns with the KL div math definition.'mean' will be changed to "
                          "behave the same as 'batchmean' in the next major release.",
                          stacklevel=2)
        if reduction != "batchmean":
            reduction = _check_reduction(reduction)
    if not is_float(input._data.dtype) or not is_float(target._data.dtype):
        raise RuntimeError("kl_div: Integral inputs not supported.")
    if log_target:
        out = exp(target) * (target - input)
    else:
        out = Xlogy.apply(target) - target * input
    if reduction == "batchmean":
        out = out.sum()
        return out / input.shape[0] if input.dim() != 0 else out
    return _reduce(out, reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean") -> Tensor:
    """Poisson NLL: ``exp(input) - target * input`` (or ``input - target * log(input + eps)``)."""
    reduction = _reduction(size_average, reduce, reduction)
    if log_input:
        loss = exp(input) - target * input
    else:
        loss = input - target * log(input + eps)
    if full:
        stirling = (target * log(target) - target
                    + 0.5 * log(2 * math.pi * target))
        loss = loss + stirling.masked_fill(target <= 1, 0)
    return _reduce(loss, reduction)


class _ClampMinNoGrad(Function):
    """``max(x, lo)`` whose gradient passes as if unclamped (PyTorch clamps under no_grad)."""

    raw = True
    backward_name = "CloneBackward0"

    @staticmethod
    def forward(ctx, a, lo):
        return ctx.xp.maximum(a, a.dtype.type(lo))

    @staticmethod
    def backward(ctx, g):
        return g, None


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean") -> Tensor:
    """Gaussian NLL ``0.5 (log(var) + (input - target)^2 / var)``, ``var`` clamped to ``eps``."""
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * input.new_ones(input.shape)
    elif not isinstance(var, Tensor):
        raise TypeError(f"gaussian_nll_loss(): argument 'var' must be Tensor or float, not "
                        f"{type(var).__name__}")
    elif bool((var < 0).any()):
        raise ValueError("var has negative entry/entries")
    if var.shape != input.shape:
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif not (input.dim() == var.dim() and sum(
                y for x, y in zip(input.shape, var.shape) if x != y) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = _ClampMinNoGrad.apply(var, eps)
    loss = 0.5 * (log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ---- margin and embedding losses ------------------------------------------------------------

def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction="mean") -> Tensor:
    """``1 - cos(x1, x2)`` for target 1, ``max(0, cos(x1, x2) - margin)`` for target -1."""
    reduction = _reduction(size_average, reduce, reduction)
    tdim = target.dim()
    if tdim not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    need = 2 if tdim == 1 else 1
    if input1.dim() != need or input2.dim() != need:
        raise RuntimeError(f"{tdim}D target tensor expects {need}D input tensors, but found "
                           f"inputs with sizes {list(input1.shape)} and {list(input2.shape)}.")
    eps = 1e-12
    prod = (input1 * input2).sum(tdim)
    mag1 = (input1 * input1).sum(tdim) + eps
    mag2 = (input2 * input2).sum(tdim) + eps
    cos = prod / (mag1 * mag2).sqrt()
    zeros = cos.new_zeros(cos.shape)
    loss = where(target == 1, 1 - cos, zeros) + where(target == -1,
                                                      clamp_min(cos - margin, 0), zeros)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction="mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``."""
    reduction = _reduction(size_average, reduce, reduction)
    if input1.dim() != input2.dim() or input1.dim() != target.dim():
        raise RuntimeError("margin_ranking_loss : All input tensors should have same dimension "
                           f"but got sizes: input1: {input1.shape}, input2: {input2.shape}, "
                           f"target: {target.shape} ")
    return _reduce(clamp_min(-target * (input1 - input2) + margin, 0), reduction)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction="mean") -> Tensor:
    """``input`` where target is 1, ``max(0, margin - input)`` where it is -1."""
    reduction = _reduction(size_average, reduce, reduction)
    zeros = input.new_zeros(input.shape)
    loss = (where(target != 1, clamp_min(margin - input, 0), zeros)
            + where(target != -1, input, zeros))
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean") -> Tensor:
    """``max(0, margin + d(anchor, positive) - d(anchor, negative))``, ``d`` the p-distance."""
    reduction = _reduction(size_average, reduce, reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, po, n = anchor.dim(), positive.dim(), negative.dim()
    if not (a == po == n):
        raise RuntimeError("The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {a}D, positive {po}D, "
                           f"and negative {n}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(clamp_min(margin + d_pos - d_neg, 0), reduction)


class SoftMarginLoss(Function):
    """``log(1 + exp(-target * input))``."""

    raw = True
    backward_name = "SoftMarginLossBackward0"

    @_fp_safe
    def forward(ctx, x, t, dt, reduction):
        xp = ctx.xp
        z = xp.multiply(x, t, dtype=dt)
        loss = xp.log1p(xp.exp(-z))
        if ctx._record:
            ctx.meta = (x.shape, x.dtype, reduction, loss.size)
            ctx.save_for_backward(x, t)
        return _reduced(xp, loss, reduction)

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        shape, dt, reduction, n = ctx.meta
        if reduction == "mean" and n:
            g = g / n
        return reduce_grad(g * -t * sigmoid(-t * x), shape, dt), None, None, None


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean") -> Tensor:
    """Two-class logistic loss ``log(1 + exp(-target * input))``."""
    reduction = _reduction(size_average, reduce, reduction)
    _no_grad_arg(target, "soft_margin_loss", "target")
    if input.shape != target.shape:
        check_broadcast(tuple(input.shape), tuple(target.shape))
    dt = input._data.dtype  # PyTorch writes the loss in the input's dtype
    if not is_float(dt):
        raise _not_implemented("soft_margin_loss", dt)
    return SoftMarginLoss.apply(input, target, dt, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean") -> Tensor:
    """Per-class logistic loss averaged over the classes (last dim), then reduced."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    # -(t log(sigmoid(x)) + (1 - t) log(sigmoid(-x))) is the elementwise BCE of the logits
    loss = _bce_logits(input, target, None, None, "none")
    if weight is not None:
        loss = loss * weight
    class_dim = input.dim() - 1
    loss = loss.sum(class_dim) / input.shape[class_dim]
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction="mean") -> Tensor:
    """Multi-class hinge: ``sum_{j != y} max(0, margin - x[y] + x[j])^p / C``, reduced."""
    reduction = _reduction(size_average, reduce, reduction)
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.dim() != 1:
        raise ValueError("weight must be one-dimensional")
    nd = input.dim()
    if nd > 2:
        raise RuntimeError("Expected non-empty vector or matrix with optional 0-dim batch size, "
                           f"but got: {list(input.shape)}")
    x = input if nd == 2 else input.reshape(1, -1)
    n, n_classes = x.shape
    if target.numel() != n or target.dim() > 1:
        raise RuntimeError("multi_margin_loss: target tensor should be 1-D with size equal to "
                           "the number of input samples (batch size). Expected target size "
                           f"[{n}], but got {list(target.shape)}. Input has shape "
                           f"{list(input.shape)}.")
    if weight is not None and weight.numel() != n_classes:
        raise RuntimeError(f"inconsistent weight size, expected {n_classes} but got "
                           f"{list(weight.shape)}")
    t = target.reshape(-1, 1)
    td = t._data
    if td.size and bool(((td < 0) | (td >= n_classes)).any()):
        raise RuntimeError("target out of range")
    z = clamp_min(margin - x.gather(1, t) + x, 0)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight[t]
    xp = _XP[type(td)][0]
    others = xp.arange(n_classes) != td
    loss = (z * _make(others.astype(z._data.dtype))).sum(1) / n_classes
    if nd == 1 and target.dim() == 0:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


# ---- normalisation and distances ------------------------------------------------------------

def normalize(input, p=2.0, dim=1, eps=1e-12, out=None) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``."""
    denom = clamp_min(input.norm(p, dim, keepdim=True), eps).expand_as(input)
    if out is None:
        return input / denom
    from .elementwise import div
    return div(input, denom.detach(), out=out)


def cosine_similarity(x1, x2, dim=1, eps=1e-8) -> Tensor:
    """``<x1 / max(|x1|, eps), x2 / max(|x2|, eps)>`` along ``dim`` (broadcasting)."""
    dt = result_dtype(x1, x2)
    if not is_float(dt):
        raise RuntimeError("expected common dtype to be floating point, yet common dtype is "
                           f"{scalar_name(dt)}")
    if not is_float(x1._data.dtype):
        x1 = x1.to(from_np(dt))
    if not is_float(x2._data.dtype):
        x2 = x2.to(from_np(dt))
    if x1.shape != x2.shape:
        from .movement import broadcast_tensors
        x1, x2 = broadcast_tensors(x1, x2)
    dim = wrap_dim(dim, x1.dim())
    n1 = _ClampMinNoGrad.apply(x1.norm(2, dim, keepdim=True), eps)
    n2 = _ClampMinNoGrad.apply(x2.norm(2, dim, keepdim=True), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dim."""
    last = max(x1.dim(), x2.dim()) - 1
    d = x1 - x2 + eps
    if not is_float(d._data.dtype):
        d = d.to(result_dtype(d, 1.0))
    return d.norm(p, last, keepdim)


# ---- multilabel margin, triplet with a distance function, CTC --------------------------------

class MultilabelMarginLoss(Function):
    """``sum_{j target, i not target} max(0, 1 - (x[y_j] - x[i])) / C`` per sample.

    The loss is piecewise linear, so the forward keeps the gradient's coefficients
    ``∂loss/∂x`` as a constant; the backward is ``g`` times them.
    """

    raw = True
    backward_name = "MultilabelMarginLossBackward0"

    @_fp_safe
    def forward(ctx, x, t, reduction):
        xp = ctx.xp
        n_classes = x.shape[-1]
        # targets count until the first -1; each listed class counts as often as it is listed
        valid = xp.cumprod(t != -1, axis=-1).astype(bool)
        cls = xp.where(valid, t, 0)
        onehot = (cls[..., None] == xp.arange(n_classes)) & valid[..., None]
        count = onehot.sum(-2).astype(x.dtype)                      # (N, C) times listed
        other = (count == 0).astype(x.dtype)                        # (N, C) not a target
        m = 1 - x[..., :, None] + x[..., None, :]                   # (N, j, i)
        w = count[..., :, None] * other[..., None, :]
        hinge = xp.maximum(m, 0) * w
        loss = hinge.sum((-2, -1)) / n_classes
        if ctx._record:
            active = (m > 0) * w / n_classes
            ctx.coef = active.sum(-2) - active.sum(-1)
            ctx.meta = (reduction, loss.size)
        return _reduced(xp, loss, reduction).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        reduction, n = ctx.meta
        if reduction == "mean" and n:
            g = g / n
        if reduction == "none":
            g = g.unsqueeze(-1)
        return g * _make(ctx.coef), None, None


def multilabel_margin_loss(input, target, size_average=None, reduce=None,
                           reduction="mean") -> Tensor:
    """Multi-class multi-label hinge loss; ``target`` lists class indices, ended by -1."""
    reduction = _reduction(size_average, reduce, reduction)
    nd = input.dim()
    if nd > 2:
        raise RuntimeError("Expected non-empty vector or matrix with optional 0-dim batch size, "
                           f"but got: {list(input.shape)}")
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"inconsistent target size: {list(target.shape)} for input of size: "
                           f"{list(input.shape)}")
    if target.dtype.name != "int64":
        raise RuntimeError(f"expected scalar type Long but found {target.dtype.scalar_name}")
    if not is_float(input._data.dtype):
        raise _not_implemented("multilabel_margin_loss", input._data.dtype)
    x = input.reshape(1, -1) if nd < 2 else input
    t = target.reshape(1, -1) if nd < 2 else target
    td = t._data
    if td.size and bool(((td < -1) | (td >= x.shape[-1])).any()):
        raise RuntimeError("argument #2 'target' is out of range")
    loss = MultilabelMarginLoss.apply(x, t.detach(), reduction)
    if nd < 2 and reduction == "none":
        loss = loss.reshape(())
    return loss


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction="mean") -> Tensor:
    """``max(0, margin + d(anchor, positive) - d(anchor, negative))`` for any distance ``d``
    (``pairwise_distance`` by default), reduced."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    a, po, n = anchor.dim(), positive.dim(), negative.dim()
    if not (a == po == n):
        raise RuntimeError("The anchor, positive, and negative tensors are expected to have the "
                           f"same number of dimensions, but got: anchor {a}D, positive {po}D, "
                           f"and negative {n}D inputs")
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = minimum(d_neg, dist(positive, negative))
    return _reduce(clamp_min(margin + d_pos - d_neg, 0), reduction)


def _logsumexp3(xp, a, b, c):
    """``log(e^a + e^b + e^c)`` elementwise, -inf when all three are -inf."""
    m = xp.maximum(xp.maximum(a, b), c)
    ms = xp.where(xp.isneginf(m), 0, m)
    return ms + xp.log(xp.exp(a - ms) + xp.exp(b - ms) + xp.exp(c - ms))


class CtcLoss(Function):
    """Connectionist temporal classification: ``-log Σ_alignments Π_t p_t(label)``.

    The forward runs the alpha recursion over the extended label sequence (blanks around
    and between the labels) in log space, vectorised over the batch; the backward runs
    the beta recursion and gives PyTorch's gradient ``exp(lp) - exp(log(αβ)_c + nll - lp)``
    (the gradient through a log-softmax, as PyTorch's kernel computes it), zero past each
    input length and for infinite losses under ``zero_infinity``.
    """

    raw = True
    backward_name = "CtcLossBackward0"

    @staticmethod
    def forward(ctx, lp, targets, in_lens, tg_lens, blank, zero_infinity):
        with _quiet(ctx.xp):  # log(0) = -inf is the recursion's "no path", not an error
            return _ctc_alpha(ctx, lp, targets, in_lens, tg_lens, blank, zero_infinity)

    @staticmethod
    def backward(ctx, g):
        (lp_t,) = ctx.saved_tensors
        return CtcLossBackward.apply(lp_t, g, ctx.arrays), None, None, None, None, None


class CtcLossBackward(Function):
    """The CTC gradient; like PyTorch's ``_ctc_loss_backward`` it has no derivative."""

    raw = True
    backward_name = "CtcLossBackwardBackward0"

    @staticmethod
    def forward(ctx, lp, g, arrays):
        return _ctc_grad(arrays, lp, g)

    @staticmethod
    def backward(ctx, gg):
        raise RuntimeError("derivative for aten::_ctc_loss_backward is not implemented")


def _ctc_alpha(ctx, lp, targets, in_lens, tg_lens, blank, zero_infinity):
    """The per-sample CTC losses by the alpha recursion (arrays in, arrays out)."""
    xp = ctx.xp
    n_t, n_b, _ = lp.shape
    s_max = targets.shape[1]
    ext = xp.full((n_b, 2 * s_max + 1), blank, dtype=targets.dtype)
    ext[:, 1::2] = targets
    n_s = ext.shape[1]
    s_idx = xp.arange(n_s)
    inside = s_idx[None, :] <= 2 * tg_lens[:, None]            # (N, S') real positions
    # s-2 may be skipped into s when s is a label different from the label at s-2
    skip = xp.zeros((n_b, n_s), bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    neg = xp.asarray(-xp.inf, lp.dtype)
    emit = xp.take_along_axis(lp, xp.broadcast_to(ext[None], (n_t,) + ext.shape), 2)
    alpha = xp.full((n_t, n_b, n_s), neg, lp.dtype)
    alpha[0, :, 0] = emit[0, :, 0]
    alpha[0, :, 1] = xp.where(tg_lens > 0, emit[0, :, 1], neg) if n_s > 1 else neg
    alpha[0] = xp.where(inside, alpha[0], neg)
    for t in range(1, n_t):
        prev = alpha[t - 1]
        p1 = xp.concatenate([xp.full((n_b, 1), neg, lp.dtype), prev[:, :-1]], 1)
        p2 = xp.concatenate([xp.full((n_b, 2), neg, lp.dtype), prev[:, :-2]], 1)
        alpha[t] = xp.where(inside, emit[t] + _logsumexp3(xp, prev, p1,
                                                           xp.where(skip, p2, neg)), neg)
    last = xp.maximum(in_lens - 1, 0)
    end = alpha[last, xp.arange(n_b)]                           # (N, S')
    a_end = xp.take_along_axis(end, (2 * tg_lens)[:, None], 1)[:, 0]
    a_pre = xp.take_along_axis(end, xp.maximum(2 * tg_lens - 1, 0)[:, None], 1)[:, 0]
    a_pre = xp.where(tg_lens > 0, a_pre, neg)
    nll = -_logsumexp3(xp, a_end, a_pre, neg)
    nll = xp.where(in_lens == 0, xp.where(tg_lens == 0, 0, xp.inf), nll).astype(lp.dtype)
    if ctx._record:
        ctx.save_for_backward(lp)
        ctx.arrays = (alpha, emit, ext, inside, skip, nll, in_lens, tg_lens, zero_infinity)
    if zero_infinity:
        nll = xp.where(xp.isinf(nll), 0, nll).astype(lp.dtype)
    return nll


def _ctc_grad(arrays, lp, g):
    """PyTorch's CTC gradient w.r.t. the log-probabilities, times ``g`` per sample."""
    alpha, emit, ext, inside, skip, nll, in_lens, tg_lens, zero_inf = arrays
    xp = _backend.xp_of(lp)
    with _quiet(xp):
        n_t, n_b, n_c = lp.shape
        n_s = ext.shape[1]
        neg = xp.asarray(-xp.inf, lp.dtype)
        beta = xp.full((n_t, n_b, n_s), neg, lp.dtype)
        s_idx = xp.arange(n_s)
        # skip[s + 2] says whether s may jump to s + 2
        skip_next = xp.concatenate([skip[:, 2:], xp.zeros((n_b, 2), bool)], 1)
        for t in range(n_t - 1, -1, -1):
            start = (t == in_lens - 1)[:, None]
            init = xp.where((s_idx[None] == 2 * tg_lens[:, None]) |
                            ((s_idx[None] == 2 * tg_lens[:, None] - 1) & (tg_lens[:, None] > 0)),
                            emit[t], neg)
            if t + 1 < n_t:
                nxt = beta[t + 1]
                n1 = xp.concatenate([nxt[:, 1:], xp.full((n_b, 1), neg, lp.dtype)], 1)
                n2 = xp.concatenate([nxt[:, 2:], xp.full((n_b, 2), neg, lp.dtype)], 1)
                rec = emit[t] + _logsumexp3(xp, nxt, n1, xp.where(skip_next, n2, neg))
            else:
                rec = xp.full((n_b, n_s), neg, lp.dtype)
            before = (t < in_lens - 1)[:, None]
            beta[t] = xp.where(inside & start, init, xp.where(inside & before, rec, neg))
        ab = alpha + beta                                            # (T, N, S')
        m = ab.max(-1, keepdims=True)
        ms = xp.where(xp.isneginf(m), 0, m)
        onehot = (ext[:, :, None] == xp.arange(n_c)).astype(lp.dtype)   # (N, S', C)
        occ = xp.einsum("tns,nsc->tnc", xp.exp(ab - ms), onehot)
        lcab = xp.log(occ) + ms
        grad = xp.exp(lp) - xp.exp(lcab + nll[None, :, None] - lp)
        live = xp.arange(n_t)[:, None] < in_lens[None, :]            # (T, N)
        grad = xp.where(live[..., None], grad, 0)
        if zero_inf:
            grad = xp.where(xp.isinf(nll)[None, :, None], 0, grad)
    return (grad * g.reshape(1, -1, 1)).astype(lp.dtype, copy=False)


def _lengths(x, name: str) -> list:
    if isinstance(x, Tensor):
        if x.dtype.is_floating_point:
            raise RuntimeError(f"{name} must be integral")
        return [int(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, int):
        return [x]
    return [int(v) for v in x]


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False) -> Tensor:
    """The CTC loss of (T, N, C) (or unbatched (T, C)) log-probabilities against padded
    (N, S) or concatenated targets; ``'mean'`` divides each loss by its target length."""
    reduction = _check_reduction(reduction)
    unbatched = log_probs.dim() == 2
    lp = log_probs.unsqueeze(1) if unbatched else log_probs
    if lp.dim() != 3:
        raise RuntimeError(f"Expected 3-dimensional tensor, but got {lp.dim()}-dimensional "
                           "tensor for argument #1 'log_probs' (while checking arguments for "
                           "ctc_loss_allocate_outputs)")
    if not is_float(lp._data.dtype):
        raise NotImplementedError(f'"ctc_loss_cpu" not implemented for '
                                  f"'{from_np(lp._data.dtype).scalar_name}'")
    n_t, n_b, n_c = lp.shape
    if isinstance(input_lengths, Tensor) != isinstance(target_lengths, Tensor):
        raise TypeError("ctc_loss() received an invalid combination of arguments: "
                        "input_lengths and target_lengths must both be Tensors or both be "
                        "tuples of ints")
    in_lens = _lengths(input_lengths, "input_lengths")
    tg_lens = _lengths(target_lengths, "target_lengths")
    if len(in_lens) != n_b:
        raise RuntimeError("input_lengths must be of size batch_size")
    if len(tg_lens) != n_b:
        raise RuntimeError("target_lengths must be of size batch_size")
    if not 0 <= blank < n_c:
        raise RuntimeError("blank must be in label range")
    for name, lens, most in (("input_lengths", in_lens, n_t), ("target_lengths", tg_lens, None)):
        for v in lens:
            if v < 0:
                raise RuntimeError(f"Expected {name} to have value at least 0, but got value {v} "
                                   "(while checking arguments for ctc_loss_allocate_outputs)")
            if most is not None and v > most:
                raise RuntimeError(f"Expected {name} to have value at most {most}, but got value "
                                   f"{v} (while checking arguments for ctc_loss_allocate_outputs)")
    xp = _backend.xp_of(lp._data)
    t = targets._data.astype(xp.int64)
    s_max = max(tg_lens) if tg_lens else 0
    if unbatched:
        t = t.reshape(1, -1)
    if t.ndim == 1:  # concatenated targets: cut them into padded rows
        if t.shape[0] != sum(tg_lens):
            raise RuntimeError(f"Expected tensor to have size {sum(tg_lens)} at dimension 0, but "
                               f"got size {t.shape[0]} for argument #2 'targets' (while checking "
                               "arguments for ctc_loss_allocate_outputs)")
        padded = xp.zeros((n_b, s_max), xp.int64)
        offs = 0
        for i, n in enumerate(tg_lens):
            padded[i, :n] = t[offs:offs + n]
            offs += n
        t = padded
    elif t.shape[1] < s_max:
        raise RuntimeError(f"Expected tensor to have size at least {s_max} at dimension 1, but "
                           f"got size {t.shape[1]} for argument #2 'targets' (while checking "
                           "arguments for ctc_loss_allocate_outputs)")
    in_a = xp.asarray(in_lens, xp.int64)
    tg_a = xp.asarray(tg_lens, xp.int64)
    loss = CtcLoss.apply(lp, _make(xp.ascontiguousarray(t)), in_a, tg_a, int(blank),
                         bool(zero_infinity))
    if reduction == "mean":
        return (loss / _make(xp.maximum(tg_a, 1).astype(lp._data.dtype))).mean()
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(()) if unbatched else loss
