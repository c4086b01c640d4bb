"""One converter per op: a captured ``Node`` to ONNX nodes (NOTE [ ONNX export ]).

A converter is ``fn(b, node)``: ``b`` the ``Builder``, ``node.args`` the arguments of the
op's ``Function.apply`` (tensors as ``Value``s, sizes that follow a dynamic axis as ``Sym``s);
it returns the ONNX name of each output.  Converters are keyed by the op's ``Function``
class, since ATen-style names are shared by several forms (``view`` is a reshape and a
3-d linear); ``CONVERTERS_BY_NAME`` holds those keyed by name alone (the offered ops).
"""
from __future__ import annotations

import math

import numpy as np

from ..ops import (activation, attention, conv, convert, elementwise as ew, index, layers,
                   linalg, loss as loss_ops, movement as mv, normalization as norm, padding,
                   pooling, reduce, resample, rnn)
from ._builder import UnsupportedOperatorError
from ._capture import Sym, Value

__all__ = ["CONVERTERS", "CONVERTERS_BY_NAME"]

CONVERTERS = {}
CONVERTERS_BY_NAME = {}
# random draws (offered by the recorder, or a training-mode dropout's mask): never baked in
RANDOM = frozenset(("rand", "randn", "randint", "rand_like", "randn_like", "randint_like",
                    "randperm", "normal", "bernoulli", "multinomial", "dropout_mask"))
_F32 = np.float32


def converts(*classes):
    def deco(fn):
        for c in classes:
            CONVERTERS[c] = fn
        return fn
    return deco


def by_name(*names):
    def deco(fn):
        for n in names:
            CONVERTERS_BY_NAME[n] = fn
        return fn
    return deco


def _unsupported(b, node, what: str):
    raise UnsupportedOperatorError(
        f"Exporting the operator 'aten::{node.name if node else '?'}' ({what}) to ONNX opset "
        f"version {b.opset} is not supported")


def _x(b, node, i=0) -> str:
    return b.name(node.args[i])


def _out_dt(node, i=0):
    return node.outs[i].dtype


# ---- elementwise ----------------------------------------------------------------------------

def _binary(onnx_op, swap=False):
    def fn(b, node):
        a, c = node.args[0], node.args[1]
        dt = _out_dt(node)
        x, y = b.operand(a, dt), b.operand(c, dt)
        if len(node.args) > 3 and node.args[3] != 1:  # alpha of add/sub
            y = b.op("Mul", [y, b.scalar(node.args[3], dt)])
        return b.op(onnx_op, [y, x] if swap else [x, y])
    return fn


for _cls, _op in ((ew.Add, "Add"), (ew.Sub, "Sub"), (ew.Mul, "Mul"), (ew.Div, "Div"),
                  (ew.Maximum, "Max"), (ew.Minimum, "Min"), (ew.PowTensor, "Pow"),
                  (ew.Pow, "Pow"), (ew.PowOfScalar, "Pow")):
    CONVERTERS[_cls] = _binary(_op)
CONVERTERS[ew.Rsub] = CONVERTERS[ew.RsubScalar] = _binary("Sub", swap=True)


@converts(ew.DivMode)
def _div_mode(b, node):
    mode = node.args[3]
    if mode not in ("floor", "trunc") or not np.issubdtype(_out_dt(node), np.floating):
        _unsupported(b, node, f"rounding_mode={mode!r} of integers")
    dt = _out_dt(node)
    q = b.op("Div", [b.operand(node.args[0], dt), b.operand(node.args[1], dt)])
    if mode == "floor":
        return b.op("Floor", [q])
    neg = b.op("Less", [q, b.scalar(0, _out_dt(node))])
    return b.op("Where", [neg, b.op("Ceil", [q]), b.op("Floor", [q])])


@converts(ew.Where)
def _where(b, node):
    c, x, y, dt = node.args
    return b.op("Where", [b.operand(c, np.bool_), b.operand(x, dt), b.operand(y, dt)])


def _unary(onnx_op):
    def fn(b, node):
        return b.op(onnx_op, [_x(b, node)])
    return fn


for _cls, _op in ((ew.Neg, "Neg"), (ew.Abs, "Abs"), (ew.Exp, "Exp"), (ew.Log, "Log"),
                  (ew.Sqrt, "Sqrt"), (ew.Sin, "Sin"), (ew.Cos, "Cos"), (ew.Tan, "Tan"),
                  (ew.Tanh, "Tanh"), (ew.Sigmoid, "Sigmoid"), (ew.Relu, "Relu"),
                  (ew.Erf, "Erf"), (ew.Reciprocal, "Reciprocal"), (ew.Floor, "Floor"),
                  (ew.Ceil, "Ceil"), (ew.Sign, "Sign"), (ew.Asin, "Asin"), (ew.Acos, "Acos"),
                  (ew.Atan, "Atan"), (ew.Sinh, "Sinh"), (ew.Cosh, "Cosh"),
                  (ew.Asinh, "Asinh"), (ew.Acosh, "Acosh"), (ew.Atanh, "Atanh"),
                  (ew.Round, "Round"), (convert.Clone, "Identity")):
    CONVERTERS[_cls] = _unary(_op)


@converts(ew.Trunc)
def _trunc(b, node):
    x = _x(b, node)
    if node.outs[0].dtype.kind in "biu":
        return b.op("Identity", [x])
    neg = b.op("Less", [x, b.scalar(0, _out_dt(node))])
    return b.op("Where", [neg, b.op("Ceil", [x]), b.op("Floor", [x])])


@converts(ew.Rsqrt)
def _rsqrt(b, node):
    return b.op("Reciprocal", [b.op("Sqrt", [_x(b, node)])])


@converts(ew.Log1p)
def _log1p(b, node):
    return b.op("Log", [b.op("Add", [_x(b, node), b.scalar(1, _out_dt(node))])])


@converts(ew.Expm1)
def _expm1(b, node):
    return b.op("Sub", [b.op("Exp", [_x(b, node)]), b.scalar(1, _out_dt(node))])


@converts(ew.Clamp, ew.ClampMin, ew.ClampMax, ew.ClampTensor, ew.ClampMinTensor,
          ew.ClampMaxTensor)
def _clamp(b, node):
    a, lo, hi, dt = node.args[:4]
    x = b.operand(a, dt)
    if isinstance(lo, Value) or isinstance(hi, Value):
        if lo is not None:
            x = b.op("Max", [x, b.operand(lo, dt)])
        if hi is not None:
            x = b.op("Min", [x, b.operand(hi, dt)])
        return x
    return b.op("Clip", [x, "" if lo is None else b.scalar(lo, dt),
                         "" if hi is None else b.scalar(hi, dt)])


@converts(convert.ToCopy)
def _to_copy(b, node):
    return b.cast(_x(b, node), _out_dt(node))


# ---- activations ----------------------------------------------------------------------------

@converts(activation.LeakyRelu, activation.LeakyReluInplace)
def _leaky_relu(b, node):
    return b.op("LeakyRelu", [_x(b, node)], alpha=float(node.args[1]))


@converts(activation.Elu, activation.EluInplace, activation.Celu, activation.CeluInplace)
def _elu(b, node):
    # scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1)): elu, selu and celu
    alpha, scale, input_scale = (float(p) for p in node.args[1:4])
    x, dt = _x(b, node), _out_dt(node)
    if scale == 1 and input_scale == 1:
        return b.op("Elu", [x], alpha=alpha)
    if input_scale == 1 and abs(alpha - 1.6732632423543772) < 1e-12 and \
            abs(scale - 1.0507009873554805) < 1e-12:
        return b.op("Selu", [x], alpha=alpha, gamma=scale)
    neg = b.op("Mul", [b.scalar(alpha, dt), b.op("Sub", [b.op("Exp", [
        b.op("Mul", [x, b.scalar(input_scale, dt)])]), b.scalar(1, dt)])])
    pos = b.op("Greater", [x, b.scalar(0, dt)])
    return b.op("Mul", [b.op("Where", [pos, x, neg]), b.scalar(scale, dt)])


@converts(activation.Gelu)
def _gelu(b, node):
    x, dt = _x(b, node), _out_dt(node)
    approx = node.args[1]
    if b.opset >= 20:
        return b.op("Gelu", [x], approximate=approx)
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        inner = b.op("Mul", [b.op("Add", [x, b.op("Mul", [b.op("Mul", [b.op("Mul", [x, x]), x]),
                                                          b.scalar(0.044715, dt)])]),
                             b.scalar(math.sqrt(2 / math.pi), dt)])
        t = b.op("Tanh", [inner])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = b.op("Erf", [b.op("Mul", [x, b.scalar(1 / math.sqrt(2), dt)])])
    return b.op("Mul", [b.op("Mul", [x, b.scalar(0.5, dt)]),
                        b.op("Add", [t, b.scalar(1, dt)])])


@converts(activation.Silu)
def _silu(b, node):
    x = _x(b, node)
    return b.op("Mul", [x, b.op("Sigmoid", [x])])


def _softplus_of(b, x, dt, beta=1.0, threshold=20.0):
    bx = x if beta == 1 else b.op("Mul", [x, b.scalar(beta, dt)])
    sp = b.op("Softplus", [bx])
    if beta != 1:
        sp = b.op("Div", [sp, b.scalar(beta, dt)])
    return b.op("Where", [b.op("Greater", [bx, b.scalar(threshold, dt)]), x, sp])


@converts(activation.Softplus)
def _softplus(b, node):
    return _softplus_of(b, _x(b, node), _out_dt(node), float(node.args[1]),
                        float(node.args[2]))


@converts(activation.Mish)
def _mish(b, node):
    x = _x(b, node)
    return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])])


@converts(activation.LogSigmoid)
def _log_sigmoid(b, node):
    return b.op("Neg", [b.op("Softplus", [b.op("Neg", [_x(b, node)])])])


@converts(activation.Hardsigmoid)
def _hardsigmoid(b, node):
    return b.op("HardSigmoid", [_x(b, node)], alpha=1 / 6, beta=0.5)


@converts(activation.Hardswish)
def _hardswish(b, node):
    x = _x(b, node)
    if b.opset >= 14:
        return b.op("HardSwish", [x])
    return b.op("Mul", [x, b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])


@converts(activation.Softshrink)
def _softshrink(b, node):
    lam = float(node.args[1])
    return b.op("Shrink", [_x(b, node)], lambd=lam, bias=lam)


@converts(activation.Hardshrink)
def _hardshrink(b, node):
    return b.op("Shrink", [_x(b, node)], lambd=float(node.args[1]), bias=0.0)


@converts(activation.Threshold, activation.ThresholdInplace)
def _threshold(b, node):
    x, dt = _x(b, node), _out_dt(node)
    th, value = node.args[1], node.args[2]
    return b.op("Where", [b.op("Greater", [x, b.scalar(th, dt)]), x, b.scalar(value, dt)])


@converts(activation.Hardtanh)
def _hardtanh(b, node):
    dt = _out_dt(node)
    return b.op("Clip", [_x(b, node), b.scalar(node.args[1], dt), b.scalar(node.args[2], dt)])


@converts(activation.Prelu)
def _prelu(b, node):
    x, w = node.args[0], node.args[1]
    wn = b.name(w)
    if x.ndim >= 2 and w.ndim == 1 and w.shape[0] > 1:  # per channel: (C, 1, ..., 1)
        wn = b.reshape(wn, [w.shape[0]] + [1] * (x.ndim - 2))
    return b.op("PRelu", [b.name(x), wn])


@converts(activation.Glu)
def _glu(b, node):
    x, dim = node.args[0], node.args[1]
    h = x.shape[dim] // 2
    first = b.slice(b.name(x), [0], [h], [dim])
    second = b.slice(b.name(x), [h], [x.shape[dim]], [dim])
    return b.op("Mul", [first, b.op("Sigmoid", [second])])


@converts(activation.Softmax)
def _softmax(b, node):
    return b.op("Softmax", [_x(b, node)], axis=int(node.args[1]))


@converts(activation.LogSoftmax)
def _log_softmax(b, node):
    return b.op("LogSoftmax", [_x(b, node)], axis=int(node.args[1]))


# ---- linear and matrix products -------------------------------------------------------------

def _weight_t(b, w: Value) -> str:
    """``w.T`` of a 2-d weight: folded into an initializer when it is one."""
    if b.fold and w.kind in ("param", "const"):
        key = ("T", id(w))
        got = b.names.get(key)
        if got is None:
            got = b.const(np.ascontiguousarray(w.tensor._data.T))
            b.names[key] = got
        return got
    return b.op("Transpose", [b.name(w)], perm=[1, 0])


@converts(*layers._LINEAR.values())
def _linear(b, node):
    x, w, bias = node.args[:3]
    if x.ndim == 2:
        ins = [b.name(x), b.name(w)] + ([b.name(bias)] if bias is not None else [])
        return b.op("Gemm", ins, transB=1)
    y = b.op("MatMul", [b.name(x), _weight_t(b, w)])
    return y if bias is None else b.op("Add", [y, b.name(bias)])


@converts(linalg.MatMul, linalg._Mm, linalg._Bmm, linalg._Mv, linalg._MatmulMv,
          linalg._VecMat, linalg._Dot, linalg._MatmulDot, linalg._MatBatch)
def _matmul(b, node):
    return b.op("MatMul", [_x(b, node, 0), _x(b, node, 1)])


@converts(linalg._AddProduct)
def _addmm(b, node):
    inp, m1, m2, beta, alpha, kind = node.args
    dt = _out_dt(node)
    if kind == "addr":  # outer product
        p = b.op("Mul", [b.unsqueeze(b.name(m1), [1]), b.unsqueeze(b.name(m2), [0])])
    else:
        p = b.op("MatMul", [b.name(m1), b.name(m2)])
        if kind == "addbmm":
            p = b.axes_op("ReduceSum", p, [0], keepdims=0)
    if alpha != 1:
        p = b.op("Mul", [p, b.scalar(alpha, dt)])
    if beta == 0:
        return p
    i = b.name(inp)
    if beta != 1:
        i = b.op("Mul", [i, b.scalar(beta, dt)])
    return b.op("Add", [p, i])


# ---- convolution ----------------------------------------------------------------------------

@converts(conv._Conv)
def _conv(b, node):
    x, w, bias, g = node.args
    ins = [b.name(x), b.name(w)] + ([b.name(bias)] if bias is not None else [])
    return b.op("Conv", ins, kernel_shape=list(g.k), strides=list(g.stride),
                dilations=list(g.dil), pads=list(g.lo) + list(g.hi), group=g.groups)


@converts(conv._ConvTranspose)
def _conv_transpose(b, node):
    x, w, bias, g = node.args
    # g describes the adjoint convolution: g.out is this op's input size, g.sp its output
    outpad = [s - ((i - 1) * st - 2 * p + d * (k - 1) + 1) for s, i, st, p, d, k in
              zip(g.sp, g.out, g.stride, g.lo, g.dil, g.k)]
    ins = [b.name(x), b.name(w)] + ([b.name(bias)] if bias is not None else [])
    return b.op("ConvTranspose", ins, kernel_shape=list(g.k), strides=list(g.stride),
                dilations=list(g.dil), pads=list(g.lo) + list(g.hi), group=g.groups,
                output_padding=outpad if any(outpad) else None)


# ---- pooling --------------------------------------------------------------------------------

def _ceil_mode(x: Value, k, s, p, d, outs) -> int:
    """Whether the recorded output size needs ceil_mode (PyTorch passes sizes, not the flag)."""
    sp = x.shape[-len(k):]
    floor = [(n + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for n, kk, ss, pp, dd in
             zip(sp, k, s, p, d)]
    return int(any(o > f for o, f in zip(outs, floor)))


def _no_indices(b, node, i=1):
    if len(node.outs) > i and isinstance(node.outs[i], Value) and node.outs[i].users:
        _unsupported(b, node, "return_indices=True: PyTorch's per-plane indices")


@converts(pooling._MaxPool, pooling._MaxPool3d, pooling._AdaptiveMaxPoolEven,
          pooling._AdaptiveMaxPool3dEven)
def _max_pool(b, node):
    x, k, s, p, d, outs = node.args[:6]
    _no_indices(b, node)
    y = b.op("MaxPool", [b.name(x)], kernel_shape=list(k), strides=list(s),
             pads=list(p) * 2, dilations=list(d) if any(v != 1 for v in d) else None,
             ceil_mode=_ceil_mode(x, k, s, p, d, outs))
    return [y] + [None] * (len(node.outs) - 1)


@converts(pooling._AvgPool, pooling._AvgPool3d)
def _avg_pool(b, node):
    x, k, s, p, outs, count_include_pad, divisor = node.args
    if divisor is not None:
        _unsupported(b, node, "divisor_override")
    return b.op("AveragePool", [b.name(x)], kernel_shape=list(k), strides=list(s),
                pads=list(p) * 2, count_include_pad=int(bool(count_include_pad)),
                ceil_mode=_ceil_mode(x, k, s, p, (1,) * len(k), outs))


def _along_axis(b, x: str, ndim: int, axis: int, m) -> str:
    """``x`` with dim ``axis`` mapped by matrix ``m`` (out x in): a MatMul on the last dim."""
    perm = list(range(ndim))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    t = x if axis == ndim - 1 else b.op("Transpose", [x], perm=perm)
    y = b.op("MatMul", [t, b.const(np.ascontiguousarray(m.T))])
    return y if axis == ndim - 1 else b.op("Transpose", [y], perm=perm)


@converts(pooling._AdaptiveAvgPool, pooling._AdaptiveAvgPool3d)
def _adaptive_avg_pool(b, node):
    x, outs = node.args[:2]
    nd = len(outs)
    if all(o == 1 for o in outs) and x.ndim == nd + 2:
        return b.op("GlobalAveragePool", [b.name(x)])
    # each output cell averages a bin of [floor(o I / O), ceil((o + 1) I / O)): a matrix per axis
    y = b.name(x)
    for i, o_n in enumerate(outs):
        axis = x.ndim - nd + i
        n = x.shape[axis]
        m = np.zeros((o_n, n), x.dtype)
        for o in range(o_n):
            lo, hi = (o * n) // o_n, -((-(o + 1) * n) // o_n)
            m[o, lo:hi] = 1.0 / (hi - lo)
        y = _along_axis(b, y, x.ndim, axis, m)
    return y


@converts(pooling._AdaptiveMaxPool, pooling._AdaptiveMaxPool3d)
def _adaptive_max_pool(b, node):
    x, outs = node.args[:2]
    _no_indices(b, node)
    if all(o == 1 for o in outs) and x.ndim == len(outs) + 2:
        return [b.op("GlobalMaxPool", [b.name(x)])] + [None] * (len(node.outs) - 1)
    _unsupported(b, node, "adaptive max pooling to a size that does not divide the input")


# ---- normalization --------------------------------------------------------------------------

def _ones_if_none(b, w, n, dt):
    """``w``'s name, or ones of shape ``n`` (ONNX's norms need a scale)."""
    return b.name(w) if w is not None else b.const(np.ones(n, dt))


@converts(norm._BatchNormEval)
def _batch_norm_eval(b, node):
    x, w, bias, rm, rv, lay, eps = node.args
    c = x.shape[1] if x.ndim > 1 else x.shape[0]
    dt = x.dtype
    ins = [b.name(x), _ones_if_none(b, w, c, dt),
           b.name(bias) if bias is not None else b.const(np.zeros(c, dt)),
           b.name(rm), b.name(rv)]
    if x.ndim < 2:
        _unsupported(b, node, "an unbatched 1-d input")
    return b.op("BatchNormalization", ins, epsilon=float(eps))


def _normalize(b, x: Value, w, bias, lay, eps, dt) -> str:
    """The statistics of ``lay`` (NOTE [ Fused normalisation ]) spelled out in ONNX ops."""
    xw = b.reshape(b.name(x), lay.work)
    mean = b.axes_op("ReduceMean", xw, lay.stat, keepdims=1)
    d = b.op("Sub", [xw, mean])
    var = b.axes_op("ReduceMean", b.op("Mul", [d, d]), lay.stat, keepdims=1)
    y = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, b.scalar(eps, dt)])])])
    if w is not None:
        y = b.op("Mul", [y, b.reshape(b.name(w), lay.wshape)])
    if bias is not None:
        y = b.op("Add", [y, b.reshape(b.name(bias), lay.wshape)])
    return b.op("Reshape", [y, b.op("Shape", [b.name(x)])])


@converts(norm._LayerNorm)
def _layer_norm(b, node):
    x, w, bias, lay, eps = node.args
    dt = x.dtype
    k = len(lay.pshape)
    if b.opset >= 17:
        ins = [b.name(x), _ones_if_none(b, w, tuple(lay.pshape), dt)]
        if bias is not None:
            ins.append(b.name(bias))
        return b.op("LayerNormalization", ins, axis=-k, epsilon=float(eps))
    return _normalize(b, x, w, bias, lay, eps, dt)


@converts(norm._GroupNorm, norm._Normalize)
def _group_norm(b, node):
    x, w, bias, lay, eps = node.args
    return _normalize(b, x, w, bias, lay, eps, x.dtype)


@converts(norm._BatchNormTrain)
def _batch_norm_train(b, node):
    x, w, bias, rm, rv, lay, momentum, eps = node.args
    if rm is not None:
        _unsupported(b, node, "batch norm in training mode (export with TrainingMode.EVAL)")
    return _normalize(b, x, w, bias, lay, eps, x.dtype)  # instance norm: batch statistics


# ---- embedding, indexing, movement ----------------------------------------------------------

@converts(layers._Embedding)
def _embedding(b, node):
    w, idx = node.args[:2]
    return b.op("Gather", [b.name(w), b.name(idx)], axis=0)


@converts(mv.Reshape, mv.ReshapeCopy)
def _reshape(b, node):
    return b.reshape(_x(b, node), node.args[1])


@converts(mv.Squeeze, mv.SqueezeDim, mv.SqueezeDims)
def _squeeze(b, node):
    dims = node.args[1]
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not dims:
        return b.op("Identity", [_x(b, node)])
    return b.squeeze(_x(b, node), dims)


@converts(mv.Unsqueeze)
def _unsqueeze(b, node):
    d = node.args[1]
    return b.unsqueeze(_x(b, node), [d] if isinstance(d, int) else list(d))


@converts(mv.Permute, mv.Transpose, mv.TransposeT)
def _permute(b, node):
    return b.op("Transpose", [_x(b, node)], perm=[int(d) for d in node.args[1]])


@converts(mv.Expand)
def _expand(b, node):
    return b.op("Expand", [_x(b, node), b.ints(node.args[1])])


@converts(mv.Repeat)
def _repeat(b, node):
    x, reps = node.args[0], list(node.args[1])
    n = b.name(x)
    if len(reps) > x.ndim:
        n = b.unsqueeze(n, list(range(len(reps) - x.ndim)))
    return b.op("Tile", [n, b.ints(reps)])


@converts(mv.Flip)
def _flip(b, node):
    x, dims = node.args[0], list(node.args[1])
    big = np.iinfo(np.int64).max
    return b.slice(b.name(x), [-1] * len(dims), [-big] * len(dims), dims, [-1] * len(dims))


@converts(mv.Cat)
def _cat(b, node):
    *arrays, dim, dt = node.args
    dt = dt if dt is not None else _out_dt(node)
    ins = [b.operand(a, dt) for a in arrays if not (a.ndim == 1 and a.shape[0] == 0)]
    return b.op("Concat", ins, axis=int(dim))


@converts(mv.Stack)
def _stack(b, node):
    *arrays, dim, dt = node.args
    dt = dt if dt is not None else _out_dt(node)
    d = int(dim)
    return b.op("Concat", [b.unsqueeze(b.operand(a, dt), [d]) for a in arrays], axis=d)


def _basic_index(b, x: Value, key) -> str:
    """``x[key]`` for a key of ints, slices, None and Ellipsis (NumPy's basic indexing)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        i = key.index(Ellipsis)
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - used) + key[i + 1:]
    n = b.name(x)
    starts, ends, axes, steps, squeeze, unsq = [], [], [], [], [], []
    axis = 0
    out_axis = 0
    for k in key:
        if k is None:
            unsq.append(out_axis)
            out_axis += 1
            continue
        if isinstance(k, slice):
            size = x.shape[axis]
            if not (k.start in (None, 0) and k.step in (None, 1) and (
                    k.stop is None or (not isinstance(k.stop, Sym) and k.stop >= size) or
                    (isinstance(k.stop, Sym) and x.dynamic(axis) and k.stop.a == size and
                     k.stop.b == x.shape2[axis]))):
                step = 1 if k.step is None else k.step
                big = np.iinfo(np.int64).max
                starts.append((0 if step > 0 else -1) if k.start is None else k.start)
                ends.append((big if step > 0 else -big) if k.stop is None else k.stop)
                axes.append(axis)
                steps.append(step)
            out_axis += 1
        else:  # an int: take it and drop the dim
            i = int(k) if not isinstance(k, Sym) else k
            starts.append(i)
            ends.append(i + 1 if not isinstance(i, Sym) and i != -1 else np.iinfo(np.int64).max)
            if isinstance(i, Sym):
                _unsupported(b, None, "an index that follows a dynamic axis")
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    if axes:
        n = b.slice(n, starts, ends, axes, steps)
    if squeeze:
        n = b.squeeze(n, squeeze)
    if unsq:
        n = b.unsqueeze(n, unsq)
    if not axes and not squeeze and not unsq:
        n = b.op("Identity", [n])
    return n


@converts(mv.BasicIndex, mv.Select, mv.Slice, mv.UnsqueezeIndex, mv.Alias)
def _index_basic(b, node):
    return _basic_index(b, node.args[0], node.args[1])


@converts(mv._Pieces, mv.Split, mv.SplitWithSizes, mv.Unbind)
def _pieces(b, node):
    x, keys = node.args[0], node.args[1]
    return [_basic_index(b, x, k) for k in keys]


@converts(mv.Tril, mv.Triu)
def _trilu(b, node):
    x, k = node.args[0], int(node.args[1])
    upper = int(issubclass(node.cls, mv.Triu))
    if b.opset >= 14:
        return b.op("Trilu", [b.name(x), b.const(np.array(k, np.int64))], upper=upper)
    if any(x.dynamic(a) for a in (-1, -2)):
        _unsupported(b, node, "a triangle of dynamic size before opset 14")
    r, c = x.shape[-2:]
    mask = np.triu(np.ones((r, c), bool), k) if upper else np.tril(np.ones((r, c), bool), k)
    return b.op("Where", [b.const(mask), b.name(x), b.scalar(0, x.dtype)])


@converts(index.IndexSelect)
def _index_select(b, node):
    x, dim, idx = node.args
    return b.op("Gather", [b.name(x), b.name(idx)], axis=int(dim))


@converts(index.Gather)
def _gather(b, node):
    x, dim, idx = node.args
    return b.op("GatherElements", [b.name(x), b.name(idx)], axis=int(dim))


@converts(index.MaskedFill, index.MaskedFillTensor)
def _masked_fill(b, node):
    x, mask, value = node.args
    return b.op("Where", [b.operand(mask, np.bool_), b.operand(value, x.dtype), b.name(x)])


def _index_source(b, arr):
    """The graph value an index array came from (by identity, else by equal contents)."""
    values = list(b.graph.inputs) + [o for n in b.graph.nodes for o in n.outs
                                     if isinstance(o, Value)]
    for v in values:
        if v.tensor._data is arr:
            return v
    for v in values:
        d = v.tensor._data
        if v.kind not in ("param", "const") and d.shape == arr.shape and \
                d.dtype.kind == arr.dtype.kind and np.array_equal(d, arr):
            return v
    return None


@converts(index.Index)
def _index(b, node):
    x, key = node.args
    n = _basic_index(b, x, key.basic) if key.basic not in ((), (Ellipsis,)) else b.name(x)
    adv = key.adv
    if adv is None:
        return n
    adv = adv if isinstance(adv, tuple) else (adv,)
    arrays = [i for i, a in enumerate(adv) if hasattr(a, "dtype")]
    if len(arrays) != 1 or any(a != slice(None) for i, a in enumerate(adv) if i != arrays[0]):
        _unsupported(b, node, "advanced indexing other than one index tensor on one dim")
    arr = adv[arrays[0]]
    if arr.dtype.kind == "b":
        _unsupported(b, node, "boolean mask indexing (a data-dependent shape)")
    src = _index_source(b, arr)
    # an index made by the graph is read from it; any other is a constant of the model
    idx = b.operand(src, np.int64) if src is not None else b.const(np.asarray(arr, np.int64))
    return b.op("Gather", [n, idx], axis=arrays[0])


# ---- reductions -----------------------------------------------------------------------------

def _dims_of(x: Value, dims):
    if dims is None or dims == () or dims == []:
        return list(range(x.ndim))
    return [int(d) % max(x.ndim, 1) for d in ([dims] if isinstance(dims, int) else dims)]


def _reduction(onnx_op, has_dt=True):
    def fn(b, node):
        x, dims, keepdim = node.args[:3]
        dt = node.args[3] if has_dt and node.args[3] is not None else None
        n = b.name(x) if dt is None or dt == x.dtype else b.cast(b.name(x), dt)
        y = b.axes_op(onnx_op, n, _dims_of(x, dims), keepdims=int(bool(keepdim)))
        return y if dt is not None or _out_dt(node) == x.dtype else b.cast(y, _out_dt(node))
    return fn


CONVERTERS[reduce.Sum] = CONVERTERS[reduce.SumAll] = _reduction("ReduceSum")
CONVERTERS[reduce.Mean] = CONVERTERS[reduce.MeanAll] = _reduction("ReduceMean")
CONVERTERS[reduce.Prod] = CONVERTERS[reduce.ProdAll] = _reduction("ReduceProd")
CONVERTERS[reduce.Amax] = _reduction("ReduceMax", False)
CONVERTERS[reduce.Amin] = _reduction("ReduceMin", False)
CONVERTERS[reduce.Logsumexp] = _reduction("ReduceLogSumExp", False)


@converts(reduce.MaxAll, reduce.MinAll)
def _extreme_all(b, node):
    x = node.args[0]
    op = "ReduceMax" if issubclass(node.cls, reduce.MaxAll) else "ReduceMin"
    return b.axes_op(op, b.name(x), list(range(x.ndim)), keepdims=0)


@converts(reduce.MaxDim, reduce.MinDim)
def _extreme_dim(b, node):
    x, dim, keepdim = node.args
    is_max = issubclass(node.cls, reduce.MaxDim)
    vals = b.axes_op("ReduceMax" if is_max else "ReduceMin", b.name(x), [dim],
                     keepdims=int(keepdim))
    idx = b.op("ArgMax" if is_max else "ArgMin", [b.name(x)], axis=int(dim),
               keepdims=int(keepdim), select_last_index=0)
    return [vals, idx]


@converts(reduce.Var, reduce.Std)
def _var_std(b, node):
    x, dims, correction, keepdim = node.args
    axes = _dims_of(x, dims)
    dt = x.dtype
    n = b.name(x)
    mean = b.axes_op("ReduceMean", n, axes, keepdims=1)
    d = b.op("Sub", [n, mean])
    count = math.prod(x.shape[a] for a in axes)
    if any(x.dynamic(a) for a in axes):
        _unsupported(b, node, "var/std over a dynamic axis")
    s = b.axes_op("ReduceSum", b.op("Mul", [d, d]), axes, keepdims=int(keepdim))
    v = b.op("Div", [s, b.scalar(max(count - float(correction), 0), dt)])
    return b.op("Sqrt", [v]) if issubclass(node.cls, reduce.Std) else v


@converts(reduce.Cumsum)
def _cumsum(b, node):
    x, axis, dt = node.args
    n = b.operand(x, dt if dt is not None else _out_dt(node))
    return b.op("CumSum", [n, b.const(np.array(int(axis), np.int64))])


# ---- padding and resampling -----------------------------------------------------------------

def _onnx_pads(ndim: int, pad) -> list:
    """PyTorch's (last-dim-first pairs) pads as ONNX's [begins..., ends...]."""
    lo, hi = [0] * ndim, [0] * ndim
    for i in range(len(pad) // 2):
        lo[ndim - 1 - i], hi[ndim - 1 - i] = int(pad[2 * i]), int(pad[2 * i + 1])
    return lo + hi


@converts(padding._ConstantPad)
def _constant_pad(b, node):
    x, pad, value = node.args
    return b.op("Pad", [b.name(x), b.const(np.array(_onnx_pads(x.ndim, pad), np.int64)),
                        b.scalar(value, x.dtype)], mode="constant")


@converts(padding._IndexPad)
def _index_pad(b, node):
    x, mode, pad = node.args
    onnx_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    if onnx_mode == "wrap" and b.opset < 19:
        _unsupported(b, node, "circular padding (ONNX's 'wrap' mode needs opset 19)")
    if any(p < 0 for p in pad):
        _unsupported(b, node, "negative padding")
    return b.op("Pad", [b.name(x), b.const(np.array(_onnx_pads(x.ndim, pad), np.int64))],
                mode=onnx_mode)


@converts(resample._Resample)
def _resample(b, node):
    x, ops = node.args[0], node.args[1]
    y = b.name(x)
    first = x.ndim - len(ops)
    for i, op in enumerate(ops):
        if op is None or op.identity:
            continue
        axis = first + i
        if op.w is None:  # nearest: a gather of input positions
            y = b.op("Gather", [y, b.const(np.asarray(op.idx[:, 0], np.int64))], axis=axis)
        else:
            y = _along_axis(b, y, x.ndim, axis, np.asarray(op.dense(np.dtype(x.dtype))))
    return y


# ---- recurrent layers -----------------------------------------------------------------------

_GATE_ORDER = {"LSTM": [0, 3, 1, 2],   # PyTorch i f g o -> ONNX i o f c
               "GRU": [1, 0, 2]}        # PyTorch r z n -> ONNX z r h


def _gates(a, mode):
    order = _GATE_ORDER.get(mode)
    if order is None:
        return a
    return np.concatenate([c for c in (np.split(a, len(order), axis=0)[i] for i in order)])


@converts(rnn._FusedLayer)
def _rnn_layer(b, node):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs, y_shape = node.args
    if w_hr is not None:
        _unsupported(b, node, "LSTM with proj_size")
    if len(set(int(s) for s in bs)) > 1:
        _unsupported(b, node, "a PackedSequence of varying lengths")
    for w in (w_ih, w_hh, b_ih, b_hh):
        if w is not None and w.kind not in ("param", "const"):
            _unsupported(b, node, "recurrent weights computed in the graph")
    hidden = w_hh.shape[1]
    dt = x.dtype
    W = b.const(_gates(w_ih.tensor._data, mode)[None])
    R = b.const(_gates(w_hh.tensor._data, mode)[None])
    if b_ih is not None:
        B = np.concatenate([_gates(b_ih.tensor._data, mode), _gates(b_hh.tensor._data, mode)])
    else:
        B = np.zeros(2 * w_hh.shape[0], dt)
    # the packed rows (T * B, in) as (T, B, in); B from h0, T what is left
    seq = b.op("Reshape", [b.name(x), b.op("Concat", [
        b.const(np.array([-1], np.int64)), b.shape_of(h0, 0),
        b.const(np.array([x.shape[1]], np.int64))], axis=0)])
    ins = [seq, W, R, b.const(B[None]), "", b.unsqueeze(b.name(h0), [0])]
    attrs = {"hidden_size": hidden, "direction": "reverse" if reverse else "forward"}
    if mode == "LSTM":
        ins.append(b.unsqueeze(b.name(c0), [0]))
        y, yh, yc = b.op("LSTM", ins, 3, **attrs)
    elif mode == "GRU":
        y, yh = b.op("GRU", ins, 2, linear_before_reset=1, **attrs)
    else:
        act = "Tanh" if mode == "RNN_TANH" else "Relu"
        y, yh = b.op("RNN", ins, 2, activations=[act], **attrs)
    # Y (T, 1, B, H) -> packed rows (T * B, H), or (T, B, H) where the layer gives that view
    y = b.squeeze(y, [1]) if y_shape is not None else b.op(
        "Reshape", [y, b.const(np.array([-1, hidden], np.int64))])
    out = [y, b.squeeze(yh, [0])]
    if mode == "LSTM":
        out.append(b.squeeze(yc, [0]))
    return out


# ---- attention ------------------------------------------------------------------------------

@converts(attention._SDPA)
def _sdpa(b, node):
    q, k, v, mask, causal, scale, p_drop, rk, rv = node.args
    if rk != 1 or rv != 1:
        _unsupported(b, node, "grouped-query attention (enable_gqa)")
    dt = q.dtype
    qs = b.op("Mul", [b.name(q), b.scalar(float(scale), dt)])
    perm = list(range(k.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    s = b.op("MatMul", [qs, b.op("Transpose", [b.name(k)], perm=perm)])
    neg_inf = b.scalar(-np.inf, dt)
    if mask is not None:
        if mask.dtype == np.bool_:
            s = b.op("Where", [b.name(mask), s, neg_inf])
        else:
            s = b.op("Add", [s, b.operand(mask, dt)])
    if causal:  # keep key j <= query i (top-left aligned, as PyTorch's is_causal)
        def positions(t: Value, axis):
            n = b.squeeze(b.shape_of(t, t.ndim - 2), [0])
            return b.op("Range", [b.scalar(0, np.int64), n, b.scalar(1, np.int64)])
        rows = b.unsqueeze(positions(q, q.ndim - 2), [1])
        cols = b.unsqueeze(positions(k, k.ndim - 2), [0])
        s = b.op("Where", [b.op("GreaterOrEqual", [rows, cols]), s, neg_inf])
    p = b.op("Softmax", [s], axis=-1)
    return b.op("MatMul", [p, b.name(v)])


# ---- ops offered while capturing (no gradient, so no Function) -----------------------------

def _compare(onnx_op, negate=False):
    def fn(b, node):
        a, c = node.args[0], node.args[1]
        if isinstance(a, Value) and isinstance(c, Value):
            dt = np.result_type(a.dtype, c.dtype)
        else:
            t, s = (a, c) if isinstance(a, Value) else (c, a)
            dt = t.dtype if not (isinstance(s, float) and t.dtype.kind in "biu") else np.float32
            if isinstance(s, bool) and t.dtype.kind == "b":
                dt = np.bool_
        y = b.op(onnx_op, [b.operand(a, dt), b.operand(c, dt)])
        return b.op("Not", [y]) if negate else y
    return fn


for _n, _op in (("eq", "Equal"), ("lt", "Less"), ("le", "LessOrEqual"), ("gt", "Greater"),
                ("ge", "GreaterOrEqual")):
    CONVERTERS_BY_NAME[_n] = _compare(_op)
CONVERTERS_BY_NAME["ne"] = _compare("Equal", negate=True)


@by_name("logical_and", "logical_or", "logical_xor")
def _logical(b, node):
    op = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}[node.name]
    return b.op(op, [b.operand(node.args[0], np.bool_), b.operand(node.args[1], np.bool_)])


@by_name("logical_not")
def _logical_not(b, node):
    return b.op("Not", [b.operand(node.args[0], np.bool_)])


@by_name("bitwise_not")
def _bitwise_not(b, node):
    x = node.args[0]
    if x.dtype != np.bool_:
        _unsupported(b, node, "bitwise_not of integers")
    return b.op("Not", [b.name(x)])


@by_name("isnan")
def _isnan(b, node):
    return b.op("IsNaN", [b.name(node.args[0])])


@by_name("isinf")
def _isinf(b, node):
    return b.op("IsInf", [b.name(node.args[0])])


@by_name("argmax", "argmin")
def _argmax(b, node):
    x = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    op = "ArgMax" if node.name == "argmax" else "ArgMin"
    n = b.name(x)
    if dim is None:
        n = b.reshape(n, [-1])
        dim = 0
    return b.op(op, [n], axis=int(dim), keepdims=int(bool(keepdim)))


@converts(activation.RreluWithNoise, activation.RreluWithNoiseInplace)
def _rrelu(b, node):
    x, noise = node.args
    dt = x.dtype
    n = b.name(x)
    return b.op("Where", [b.op("Greater", [n, b.scalar(0, dt)]), n,
                          b.op("Mul", [n, b.operand(noise, dt)])])


@by_name("_canonical_mask")
def _canonical_mask(b, node):
    """A bool attention mask as an additive one (True -> -inf), as MultiheadAttention's."""
    mask, dt = node.args[0], node.args[2]
    if mask is None:
        return None
    if mask.dtype != np.bool_:
        return b.op("Identity", [b.name(mask)])
    return b.op("Where", [b.name(mask), b.scalar(-np.inf, dt), b.scalar(0, dt)])


@by_name("isfinite")
def _isfinite(b, node):
    x = b.name(node.args[0])
    return b.op("Not", [b.op("Or", [b.op("IsNaN", [x]), b.op("IsInf", [x])])])


# ---- tensors made inside forward whose size follows a dynamic axis ---------------------------

def _shape_args(args):
    shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    return list(shape)


@by_name("zeros", "ones", "empty", "full")
def _filled(b, node):
    out = node.outs[0]
    args = list(node.args)
    if node.name == "full":
        shape, value = _shape_args(args[:1]), args[1] if len(args) > 1 else \
            node.kwargs["fill_value"]
    else:
        shape, value = _shape_args(args), 1 if node.name == "ones" else 0
    return b.op("Expand", [b.scalar(value, out.dtype), b.ints(shape)])


@by_name("zeros_like", "ones_like", "empty_like", "full_like")
def _filled_like(b, node):
    out = node.outs[0]
    value = {"zeros_like": 0, "empty_like": 0, "ones_like": 1}.get(node.name)
    if value is None:
        value = node.args[1] if len(node.args) > 1 else node.kwargs["fill_value"]
    return b.op("Expand", [b.scalar(value, out.dtype), b.op("Shape", [_x(b, node)])])


@by_name("arange")
def _arange(b, node):
    args = list(node.args)
    start, end, step = (0, args[0], 1) if len(args) == 1 else (
        args + [1] * (3 - len(args)))[:3]
    dt = node.outs[0].dtype

    def scalar(v):
        if isinstance(v, Sym):
            return b.cast(b.squeeze(b.dim(v), [0]), dt)
        return b.scalar(v, dt)
    return b.op("Range", [scalar(start), scalar(end), scalar(step)])


# ---- losses used at inference ---------------------------------------------------------------

def _tensor_in(b, a, dt) -> str:
    """A ``Value``, a raw array extra (a loss weight) or a number as an input of dtype ``dt``."""
    if isinstance(a, Value):
        return b.operand(a, dt)
    return b.const(np.asarray(a, dt))


def _reduce_loss(b, loss: str, reduction: str, ndim: int) -> str:
    if reduction == "none":
        return loss
    op = "ReduceSum" if reduction == "sum" else "ReduceMean"
    return b.axes_op(op, loss, list(range(ndim)), keepdims=0)


@converts(loss_ops.MseLoss, loss_ops.L1Loss, loss_ops.SmoothL1Loss, loss_ops.HuberLoss)
def _diff_loss(b, node):
    a, t, dt, reduction, param = node.args
    d = b.op("Sub", [b.operand(a, dt), b.operand(t, dt)])
    cls = node.cls
    if issubclass(cls, loss_ops.MseLoss):
        v = b.op("Mul", [d, d])
    else:
        ad = b.op("Abs", [d])
        if issubclass(cls, loss_ops.L1Loss):
            v = ad
        else:  # smooth L1 (beta) / Huber (delta): quadratic inside, linear outside
            p = float(param)
            small = b.op("Less", [ad, b.scalar(p, dt)])
            sq = b.op("Mul", [b.op("Mul", [d, d]), b.scalar(0.5 / p if issubclass(
                cls, loss_ops.SmoothL1Loss) else 0.5, dt)])
            lin = b.op("Sub", [ad, b.scalar(0.5 * p, dt)])
            if issubclass(cls, loss_ops.HuberLoss):
                lin = b.op("Mul", [lin, b.scalar(p, dt)])
            v = b.op("Where", [small, sq, lin])
    ndim = max(a.ndim if isinstance(a, Value) else 0, t.ndim if isinstance(t, Value) else 0)
    return _reduce_loss(b, v, reduction, ndim)


@converts(loss_ops.BinaryCrossEntropy)
def _bce(b, node):
    x, t, w, reduction = node.args
    dt = x.dtype
    xn, tn = b.name(x), b.operand(t, dt)
    one = b.scalar(1, dt)
    floor = b.scalar(-100, dt)  # PyTorch clamps each log at -100
    lx = b.op("Max", [b.op("Log", [xn]), floor])
    l1x = b.op("Max", [b.op("Log", [b.op("Sub", [one, xn])]), floor])
    loss = b.op("Neg", [b.op("Add", [b.op("Mul", [tn, lx]),
                                     b.op("Mul", [b.op("Sub", [one, tn]), l1x])])])
    if w is not None:
        loss = b.op("Mul", [loss, _tensor_in(b, w, dt)])
    return _reduce_loss(b, loss, reduction, x.ndim)


@converts(loss_ops.BinaryCrossEntropyWithLogits)
def _bce_logits(b, node):
    x, t, w, pw, dt, reduction = node.args
    xn, tn = b.operand(x, dt), b.operand(t, dt)
    one = b.scalar(1, dt)
    # (1 - t) x + (1 + (pw - 1) t) softplus(-x), softplus written stably
    sp = b.op("Add", [b.op("Log", [b.op("Add", [one, b.op("Exp", [b.op("Neg", [
        b.op("Abs", [xn])])])])]), b.op("Relu", [b.op("Neg", [xn])])])
    if pw is not None:
        sp = b.op("Mul", [sp, b.op("Add", [one, b.op("Mul", [
            b.op("Sub", [_tensor_in(b, pw, dt), one]), tn])])])
    loss = b.op("Add", [b.op("Mul", [b.op("Sub", [one, tn]), xn]), sp])
    if w is not None:
        loss = b.op("Mul", [loss, _tensor_in(b, w, dt)])
    ndim = max(x.ndim, t.ndim if isinstance(t, Value) else 0)
    return _reduce_loss(b, loss, reduction, ndim)


@converts(loss_ops.NllLoss, loss_ops.NllLoss2d, loss_ops.CrossEntropyLoss,
          loss_ops.CrossEntropyLoss2d)
def _nll(b, node):
    x, t, w, ignore_index, reduction = node.args[:5]
    if x.ndim < 2:
        _unsupported(b, node, "an unbatched input")
    ce = issubclass(node.cls, (loss_ops.CrossEntropyLoss, loss_ops.CrossEntropyLoss2d))
    ins = [b.name(x), b.operand(t, np.int64)]
    if w is not None:
        ins.append(_tensor_in(b, w, x.dtype))
    op = "SoftmaxCrossEntropyLoss" if ce else "NegativeLogLikelihoodLoss"
    return b.op(op, ins, reduction=reduction, ignore_index=int(ignore_index))


# ---- more elementwise maths, norms, sorting and shuffles ------------------------------------

@converts(ew.Exp2)
def _exp2(b, node):
    return b.op("Pow", [b.scalar(2, _out_dt(node)), _x(b, node)])


@converts(ew.Log2, ew.Log10)
def _log_base(b, node):
    base = 2.0 if issubclass(node.cls, ew.Log2) else 10.0
    return b.op("Div", [b.op("Log", [_x(b, node)]), b.scalar(math.log(base), _out_dt(node))])


@converts(ew.FloorDivide, ew.Remainder, ew.RemainderScalar)
def _floor_div_mod(b, node):
    a, c, dt = node.args[:3]
    x, y = b.operand(a, dt), b.operand(c, dt)
    if np.dtype(dt).kind in "iu":
        if issubclass(node.cls, ew.FloorDivide):
            _unsupported(b, node, "integer floor division")
        return b.op("Mod", [x, y], fmod=0)  # the divisor's sign, as Python's %
    q = b.op("Floor", [b.op("Div", [x, y])])
    if issubclass(node.cls, ew.FloorDivide):
        return q
    return b.op("Sub", [x, b.op("Mul", [q, y])])  # a - floor(a / b) b


@converts(ew.NanToNum)
def _nan_to_num(b, node):
    a, nan, posinf, neginf = node.args
    dt = a.dtype
    if dt.kind in "biu":
        return b.op("Identity", [b.name(a)])
    info = np.finfo(dt)
    x = b.name(a)
    x = b.op("Where", [b.op("IsNaN", [x]), b.scalar(0.0 if nan is None else nan, dt), x])
    x = b.op("Where", [b.op("IsInf", [x], detect_negative=0),
                       b.scalar(info.max if posinf is None else posinf, dt), x])
    return b.op("Where", [b.op("IsInf", [x], detect_positive=0),
                          b.scalar(info.min if neginf is None else neginf, dt), x])


@converts(reduce.VectorNorm)
def _vector_norm(b, node):
    a, ord_, dims, keepdim = node.args
    axes = _dims_of(a, dims)
    x, k = b.name(a), int(bool(keepdim))
    if ord_ == 2:
        return b.axes_op("ReduceL2", x, axes, keepdims=k)
    if ord_ == 1:
        return b.axes_op("ReduceL1", x, axes, keepdims=k)
    if ord_ in (math.inf, -math.inf):
        op = "ReduceMax" if ord_ > 0 else "ReduceMin"
        return b.axes_op(op, b.op("Abs", [x]), axes, keepdims=k)
    if ord_ == 0:
        nz = b.cast(b.op("Not", [b.op("Equal", [x, b.scalar(0, a.dtype)])]), a.dtype)
        return b.axes_op("ReduceSum", nz, axes, keepdims=k)
    p = float(ord_)
    s = b.axes_op("ReduceSum", b.op("Pow", [b.op("Abs", [x]), b.scalar(p, a.dtype)]), axes,
                  keepdims=k)
    return b.op("Pow", [s, b.scalar(1 / p, a.dtype)])


@converts(reduce.VarMean, reduce.StdMean)
def _var_std_mean(b, node):
    x, dims, correction, keepdim = node.args
    axes = _dims_of(x, dims)
    if any(x.dynamic(a) for a in axes):
        _unsupported(b, node, "var/std over a dynamic axis")
    dt, n = x.dtype, b.name(x)
    mean = b.axes_op("ReduceMean", n, axes, keepdims=1)
    d = b.op("Sub", [n, mean])
    count = math.prod(x.shape[a] for a in axes)
    s = b.axes_op("ReduceSum", b.op("Mul", [d, d]), axes, keepdims=int(keepdim))
    v = b.op("Div", [s, b.scalar(max(count - float(correction), 0), dt)])
    if issubclass(node.cls, reduce.StdMean):
        v = b.op("Sqrt", [v])
    return [v, mean if keepdim else b.squeeze(mean, axes)]


@converts(reduce.Topk)
def _topk(b, node):
    a, k, axis, largest = node.args
    if a.ndim == 0:
        _unsupported(b, node, "a 0-d input")
    vals, idx = b.op("TopK", [b.name(a), b.ints([k])], 2, axis=int(axis),
                     largest=int(bool(largest)), sorted=1)
    return [vals, idx]


@converts(reduce.Sort)
def _sort(b, node):
    a, axis, descending = node.args
    if a.ndim == 0:
        _unsupported(b, node, "a 0-d input")
    axis = int(axis) % a.ndim
    # TopK over the whole axis; ties keep no particular order (ember's sort is stable)
    vals, idx = b.op("TopK", [b.name(a), b.ints([Sym(a.shape[axis], a.shape2[axis])
                                                 if a.dynamic(axis) else a.shape[axis]])],
                     2, axis=axis, largest=int(bool(descending)), sorted=1)
    return [vals, idx]


@converts(mv.Roll)
def _roll(b, node):
    a, shifts, dims = node.args
    x = b.name(a)
    if dims is None or dims == () or dims == []:
        flat = b.reshape(x, [-1])
        n = math.prod(a.shape)
        s = int(shifts[0] if isinstance(shifts, (tuple, list)) else shifts) % max(n, 1)
        big = np.iinfo(np.int64).max
        y = b.op("Concat", [b.slice(flat, [n - s], [big], [0]), b.slice(flat, [0], [n - s],
                                                                        [0])], axis=0)
        return b.op("Reshape", [y, b.op("Shape", [x])])
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    big = np.iinfo(np.int64).max
    for s, d in zip(shifts, dims):
        d = int(d) % a.ndim
        if a.dynamic(d):
            _unsupported(b, node, "roll along a dynamic axis")
        n = a.shape[d]
        s = int(s) % max(n, 1)
        if s:
            x = b.op("Concat", [b.slice(x, [n - s], [big], [d]), b.slice(x, [0], [n - s], [d])],
                     axis=d)
    return x


@converts(linalg.Einsum)
def _einsum(b, node):
    plan, *arrays = node.args
    return b.op("Einsum", [b.name(a) for a in arrays], equation=plan.np_eq)


def _shuffle(b, x: Value, shape, perm, out_shape) -> str:
    """``x`` viewed as ``shape``, permuted and viewed as ``out_shape`` (batch dim kept)."""
    y = b.reshape(b.name(x), [0] + list(shape[1:]))
    y = b.op("Transpose", [y], perm=list(perm))
    return b.reshape(y, [0] + list(out_shape[1:]))


@converts(resample._PixelShuffle)
def _pixel_shuffle(b, node):
    x, r = node.args
    if x.ndim != 4:
        _unsupported(b, node, "an input that is not 4-d")
    n, c, h, w = x.shape
    co = c // (r * r)
    return _shuffle(b, x, (n, co, r, r, h, w), (0, 1, 4, 2, 5, 3), (n, co, h * r, w * r))


@converts(resample._PixelUnshuffle)
def _pixel_unshuffle(b, node):
    x, r = node.args
    if x.ndim != 4:
        _unsupported(b, node, "an input that is not 4-d")
    n, c, h, w = x.shape
    ho, wo = h // r, w // r
    return _shuffle(b, x, (n, c, ho, r, wo, r), (0, 1, 3, 5, 2, 4), (n, c * r * r, ho, wo))


@converts(resample._ChannelShuffle)
def _channel_shuffle(b, node):
    x, g = node.args
    if x.ndim != 4:
        _unsupported(b, node, "an input that is not 4-d")
    n, c, h, w = x.shape
    return _shuffle(b, x, (n, g, c // g, h, w), (0, 2, 1, 3, 4), (n, c, h, w))


@converts(loss_ops._ClampMinNoGrad)
def _clamp_min_no_grad(b, node):
    a, lo = node.args
    return b.op("Max", [b.name(a), b.operand(lo, a.dtype)])
