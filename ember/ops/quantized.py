"""Quantized tensors, their ops and the int8 kernels (issue 19).

NOTE [ Quantized tensors ]
A quantized tensor is a ``QTensor``: a ``Tensor`` whose backend array is its integer
representation (``int_repr``: int8 for qint8, uint8 for quint8, int32 for qint32) and which
carries its quantization parameters beside it: per tensor ``(scale, zero_point)``, per channel
``(scales, zero_points, axis)``.  Its value is ``(int_repr - zero_point) * scale``.  It never
requires grad.  ``QTensor.__torch_function__`` sees every op a quantized tensor reaches (NOTE
[ Modes ]): ops that only move or select elements (views, max pooling, ``cat`` of equal
qparams) run on the integers and keep the qparams, ``relu`` clamps at the zero point, the
average pools average the integers and round, and every other op raises PyTorch's
"Could not run 'aten::X' with arguments from the 'QuantizedCPU' backend".  Defining the class
turns that check on for every op of the process (about a microsecond per op), which is why
this module is imported only on first use (``ember.quantize_per_tensor`` ... are lazy).

Arithmetic is fbgemm's, bit for bit: quantizing is ``clamp(rint(fma(x, 1/scale, zp)))`` in
float32 (``1/scale`` rounded to float32 first, ``rint`` rounding half to even), dequantizing
``(q - zp) * scale`` in float32.

NOTE [ Exact int8 GEMM ]
NumPy's integer matmul has no BLAS.  A product of a zero-point-shifted uint8 activation
(|a - za| <= 255) and a symmetric int8 weight (|w| <= 128) is below 2^15 in magnitude, so a
float32 dot product of K such terms is exact while K * 255 * 128 <= 2^24, i.e. K <= 514:
every partial sum is an integer below 2^24, which float32 holds exactly whatever order BLAS
adds in.  ``int_matmul`` multiplies the shifted integers carried in float32 in K-blocks of at
most that size with sgemm and adds the blocks' exact sums in int32 (the digits CNN's and the
MLP's layers up to K = 514 are one sgemm); requantization then follows fbgemm:
``acc * (a_scale * w_scale)`` in float32 plus the float bias, quantized again with the
output's scale and zero point (in place on the GEMM's output; the zero point goes in as the
integers are cast).  A convolution takes the input's zero point off before the GEMM or after
it (``acc -= za * colsum(w)``, the weights' column sums computed once), whichever touches
fewer values.  The modules keep only the int8 weights (a quarter of float32's memory), laid
out ``(K, O)``-contiguous so the float32 operand formed per call (``_WeightPack.wt`` in
ember/ao/nn/quantized/modules.py) is the layout sgemm is fastest on.  What is left above
NumPy's float32 GEMM floor (bench/wl_quant.py's numpy column) is that per-call cast and the
elementwise passes around the GEMM.
"""
from __future__ import annotations

import builtins
import struct as _struct
import warnings

from .. import _dtype
from .._dtype import qint8, quint8, qint32, quint4x2, float32
from .._tensor import Tensor, _make
from ..autograd.function import Function
from ._util import need_tensor

__all__ = ["qscheme", "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
           "per_channel_symmetric", "per_channel_affine_float_qparams", "QTensor",
           "quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic",
           "dequantize", "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
           "_fake_quantize_learnable_per_tensor_affine",
           "_fake_quantize_learnable_per_channel_affine", "int_matmul", "im2col", "requantize",
           "q_range",
           "choose_qparams", "_make_per_tensor_quantized_tensor",
           "_make_per_channel_quantized_tensor"]


class qscheme:
    """A quantization scheme, printed as ``ember.per_tensor_affine`` (``torch.qscheme``)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return "ember." + self.name

    def __reduce__(self):
        return (_scheme_by_name, (self.name,))


per_tensor_affine = qscheme("per_tensor_affine")
per_channel_affine = qscheme("per_channel_affine")
per_tensor_symmetric = qscheme("per_tensor_symmetric")
per_channel_symmetric = qscheme("per_channel_symmetric")
per_channel_affine_float_qparams = qscheme("per_channel_affine_float_qparams")
_SCHEMES = {s.name: s for s in (per_tensor_affine, per_channel_affine, per_tensor_symmetric,
                                per_channel_symmetric, per_channel_affine_float_qparams)}


def _scheme_by_name(name: str) -> qscheme:
    return _SCHEMES[name]


_RANGES = {qint8: (-128, 127), quint8: (0, 255), qint32: (-2 ** 31, 2 ** 31 - 1),
           quint4x2: (0, 15)}


def q_range(dtype) -> tuple:
    """The integer range ``(qmin, qmax)`` of a quantized dtype."""
    return _RANGES[dtype]


# NOTE [ Packed quint4x2 ]
# quint4x2 holds values 0..15 two to a byte, as PyTorch stores them: the tensor's elements in
# row-major order, element 2i in the low nibble of byte i and 2i+1 in the high one (an odd
# count leaves the last high nibble 0).  ``int_repr()`` is those bytes (1-d, ceil(n / 2)),
# saved files hold them as a QUInt4x2Storage, and ops that move values run on the unpacked
# values and pack the result again.
def pack4(values):
    """uint8 values 0..15 (any shape) -> ceil(n / 2) bytes, two values a byte."""
    from .. import _backend
    xp = _backend.xp_of(values)
    flat = values.reshape(-1).astype(xp.uint8)
    if flat.size % 2:
        flat = xp.concatenate([flat, xp.zeros(1, xp.uint8)])
    return (flat[0::2] | (flat[1::2] << 4)).astype(xp.uint8)


def unpack4(packed, n: int):
    """The first ``n`` values of ``pack4``'s bytes."""
    from .. import _backend
    xp = _backend.xp_of(packed)
    out = xp.empty(2 * packed.size, xp.uint8)
    out[0::2] = packed & 15
    out[1::2] = packed >> 4
    return out[:n]


def _rebuild_qtensor_packed4(raw, offset: int, size, params):
    """A quint4x2 tensor from a saved QUInt4x2Storage's bytes (``raw``) and its shape."""
    n = 1
    for v in size:
        n *= v
    nb = (n + 1) // 2
    if offset < 0 or offset + nb > raw.size:
        raise RuntimeError(f"a quint4x2 tensor of {n} values needs {nb} bytes from offset "
                           f"{offset}, the storage holds {raw.size}")
    values = unpack4(raw[offset:offset + nb].copy(), n).reshape(tuple(size))
    return _rebuild_qtensor_torch(_make(values), quint4x2, params)


def _not_here(op: str, backend: str = "QuantizedCPU"):
    return NotImplementedError(
        f"Could not run 'aten::{op}' with arguments from the '{backend}' backend. This could be "
        "because the operator doesn't exist for this backend, or was omitted during the "
        "selective/custom build process (if using custom build).")


def linear_error(input, weight, bias) -> Exception:
    """PyTorch's error for a quantized tensor given to float ``linear`` (input or weight):
    addmm's dtype check with a bias, the missing QuantizedCPU ``mm`` kernel without."""
    if bias is None:
        return _not_here("mm.out")
    first = "mat1" if input.is_quantized else "self"  # addmm's two checks, as PyTorch words them
    return RuntimeError(f"{first} and mat2 must have the same dtype, but got "
                        f"{input.dtype.scalar_name} and {weight.dtype.scalar_name}")


def _scalar_name(v) -> str:
    return v.dtype.scalar_name if isinstance(v, Tensor) else "Float"


def _arithmetic(func, args, kwargs):
    """``add``/``sub``/``mul``/``div`` reaching a quantized tensor: PyTorch's errors (an
    integer scalar fails allocating the output, a float or a float tensor in type promotion,
    two quantized tensors of one dtype for want of a QuantizedCPU kernel)."""
    name = func.__name__.rstrip("_")
    a, b = args[0], args[1]
    if isinstance(b, QTensor) and not isinstance(a, Tensor):
        a, b = b, a  # a reflected scalar op: PyTorch names the tensor first
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if isinstance(a, QTensor) and isinstance(b, QTensor) and a.dtype is b.dtype:
            return _not_here(name + ".out")
    elif isinstance(b, (bool, int)):
        return RuntimeError("empty_strided not supported on quantized tensors yet see "
                            "https://github.com/pytorch/pytorch/issues/74540")
    return RuntimeError("promoteTypes with quantized numbers is not handled yet; figure out "
                        "what the correct rules should be, offending types: "
                        f"{_scalar_name(a)} {_scalar_name(b)}")


# ---- kernels on backend arrays ---------------------------------------------------------------
def quantize_array(xp, x, scale, zero_point, dtype):
    """``clamp(rint(fma(x, 1/scale, zp)))`` as fbgemm computes it; per channel when ``scale``
    and ``zero_point`` are arrays broadcast against ``x``."""
    qmin, qmax = _RANGES[dtype]
    inv = xp.float32(1) / xp.asarray(scale, dtype=xp.float32)
    # the product of two float32 is exact in float64, so one rounding to float32 after adding
    # the zero point is the fused multiply-add fbgemm's AVX2 loop does
    # (asarray: a 0-d input's arithmetic gives a NumPy scalar, which takes no out=)
    y = xp.asarray((x.astype(xp.float64) * inv.astype(xp.float64) + zero_point)
                   .astype(xp.float32))
    y = xp.rint(y, out=y)
    y = xp.clip(y, qmin, qmax, out=y)
    if not xp.isfinite(y).all():  # NaN (0 * inf from a zero scale): qmax, as fbgemm's AVX clamp
        y = xp.nan_to_num(y, nan=qmax, copy=False)
    return y.astype(dtype.np)


def dequantize_array(xp, q, scale, zero_point):
    """``(q - zp) * scale`` in float32 (per channel, as PyTorch, in float64 then rounded)."""
    if hasattr(scale, "ndim") and scale.dtype == xp.float32:  # float qparams: float32 math
        return (q.astype(xp.float32) - zero_point) * scale
    if hasattr(scale, "ndim"):
        return ((q.astype(xp.float64) - zero_point) * scale).astype(xp.float32)
    z = xp.float32(zero_point)
    return xp.asarray((q.astype(xp.float32) - z) * xp.float32(scale))  # 0-d stays an array


def int_matmul(xp, a, b, amax: int = 255, bmax: int = 128):
    """``a @ b`` of integer-valued float32 arrays with ``|a| <= amax``, ``|b| <= bmax``,
    exactly, through float BLAS (NOTE [ Exact int8 GEMM ]): K-blocks of at most
    ``2^24 / (amax * bmax)`` terms in float32 (514 for shifted uint8 times int8), their exact
    sums added in int32; the result is float32 when it fits 2^24, else float64."""
    k = a.shape[-1]
    if a.ndim > 2:  # one GEMM over all rows (NumPy's stacked matmul would loop)
        return int_matmul(xp, a.reshape(-1, k), b, amax, bmax).reshape(a.shape[:-1] + (-1,))
    block = (1 << 24) // max(1, amax * bmax)
    if k <= block:
        return xp.matmul(a, b)
    if block < 64:  # wider integers: float64 holds 2^53
        return xp.matmul(a.astype(xp.float64), b.astype(xp.float64))
    acc = None
    for i in range(0, k, block):
        part = xp.matmul(a[..., i:i + block], b[..., i:i + block, :]).astype(xp.int32)
        acc = part if acc is None else acc + part
    return acc.astype(xp.float64)


def im2col(xp, x, kernel, stride, padding, dilation, fill=0, dtype=None):
    """Channels-last columns: ``x`` of shape ``(N, *S, C)`` -> ``(N, *out, prod(kernel) * C)``,
    kernel positions outer and channels inner (one strided slab copy per kernel position,
    cast to ``dtype`` as it copies), padded with ``fill``."""
    nd = len(kernel)
    n, sp, c = x.shape[0], x.shape[1:1 + nd], x.shape[-1]
    if any(padding):
        xpad = xp.full((n,) + tuple(s + 2 * p for s, p in zip(sp, padding)) + (c,), fill,
                       x.dtype)
        xpad[(slice(None),) + tuple(slice(p, p + s) for s, p in zip(sp, padding))] = x
        x = xpad
        sp = x.shape[1:1 + nd]
    out = tuple((s - d * (k - 1) - 1) // st + 1
                for s, k, st, d in zip(sp, kernel, stride, dilation))
    k_total = 1
    for k in kernel:
        k_total *= k
    cols = xp.empty((n,) + out + (k_total, c), x.dtype if dtype is None else dtype)
    for i, pos in enumerate(_positions(kernel)):
        sl = tuple(slice(p * d, p * d + (o - 1) * st + 1, st)
                   for p, d, o, st in zip(pos, dilation, out, stride))
        cols[(slice(None),) + (slice(None),) * nd + (i,)] = x[(slice(None),) + sl]
    return cols.reshape((n,) + out + (k_total * c,)), out


def _positions(kernel):
    """Every kernel offset, the last dimension fastest (the weight's own order)."""
    if not kernel:
        return [()]
    return [(i,) + rest for i in range(kernel[0]) for rest in _positions(kernel[1:])]


def requantize(xp, acc, mult, bias, scale, zero_point, dtype, relu=False):
    """fbgemm's output stage: ``acc * (a_scale * w_scale) + bias`` in float32, then
    ``rint(y / out_scale) + out_zp`` clamped (at the zero point too for a fused ReLU); in
    place in float32 (its ties may round apart from fbgemm's by one step, as fbgemm's own
    AVX2 and scalar paths may)."""
    if acc.dtype == xp.float32:  # the GEMM's fresh output: every step in place
        y = xp.multiply(acc, mult, out=acc)
    else:
        y = acc.astype(xp.float32) * mult
    if bias is not None:
        y += bias
    y *= xp.float32(1) / xp.float32(scale)
    xp.rint(y, out=y)
    qmin, qmax = _RANGES[dtype]
    # clamped around the zero point, which then goes in as the integers are cast (one pass
    # for add and cast, exact: small integers in float32)
    xp.clip(y, (0 if relu else qmin - zero_point), qmax - zero_point, out=y)
    return xp.add(y, xp.float32(zero_point), out=xp.empty(y.shape, dtype.np),
                  casting="unsafe")


# ---- the quantized tensor --------------------------------------------------------------------
class QTensor(Tensor):
    """A quantized tensor: integer storage plus scale(s) and zero point(s)."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        pass

    # ``_qdtype``, ``_qscheme``, ``_scale``, ``_zp`` (per tensor: float, int; per channel:
    # float64 and int64 arrays), ``_axis`` and ``_qshape`` live in the instance dict (set by
    # _qtensor).  A quint4x2 tensor's storage is packed two values a byte (NOTE [ Packed
    # quint4x2 ]), so its shape is ``_qshape``, not the storage's
    @property
    def dtype(self):
        return self._qdtype

    @property
    def shape(self):
        if self._qshape is None:
            return Tensor.shape.fget(self)
        from .._size import Size
        return Size(self._qshape)

    def size(self, dim=None):
        if self._qshape is None or dim is None:
            return Tensor.size(self, dim) if self._qshape is None else self.shape
        from .._tensor import _wrap_dim
        return self._qshape[_wrap_dim(dim, len(self._qshape))]

    @property
    def ndim(self) -> int:
        return self._data.ndim if self._qshape is None else len(self._qshape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        if self._qshape is None:
            return Tensor.numel(self)
        n = 1
        for v in self._qshape:
            n *= v
        return n

    @property
    def nbytes(self) -> int:
        return self._data.nbytes if self._qshape is None else self.numel()

    def stride(self, dim=None):
        if self._qshape is None:
            return Tensor.stride(self, dim)
        st, n = [], 1
        for v in reversed(self._qshape):
            st.append(n)
            n *= max(v, 1)
        st = tuple(reversed(st))
        return st if dim is None else st[dim]

    def __len__(self):
        if self._qshape is None:
            return Tensor.__len__(self)
        if not self._qshape:
            raise TypeError("len() of a 0-d tensor")
        return self._qshape[0]

    def _moved(self, op, *args, **kwargs):
        """A packed 4-bit tensor's view/reshape/index: the op on its values, packed again
        (the float ops read the storage's size before dispatch, so they cannot run on it)."""
        return self._like(getattr(_make(self._unpacked()), op)(*args, **kwargs)._data)

    def view(self, *shape):
        return Tensor.view(self, *shape) if self._qshape is None else self._moved("view", *shape)

    def reshape(self, *shape):
        if self._qshape is None:
            return Tensor.reshape(self, *shape)
        return self._moved("reshape", *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if self._qshape is None:
            return Tensor.flatten(self, start_dim, end_dim)
        return self._moved("flatten", start_dim, end_dim)

    def __getitem__(self, index):
        if self._qshape is None:
            return Tensor.__getitem__(self, index)
        return self._moved("__getitem__", index)

    def _unpacked(self):
        """The integer values in the tensor's shape (quint4x2: unpacked from the bytes)."""
        if self._qshape is None:
            return self._data
        return unpack4(self._data, self.numel()).reshape(self._qshape)

    @property
    def is_quantized(self) -> bool:
        return True

    @property
    def requires_grad(self) -> bool:
        return False

    @requires_grad.setter
    def requires_grad(self, value):
        if value:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require "
                               "gradients")

    def qscheme(self) -> qscheme:
        return self._qscheme

    def _per_channel(self) -> bool:
        return self._axis is not None

    def q_scale(self) -> float:
        if self._per_channel():
            raise RuntimeError("Expected quantizer->qscheme() == kPerTensorAffine to be true, but "
                               "got false.")
        return self._scale

    def q_zero_point(self) -> int:
        if self._per_channel():
            raise RuntimeError("Expected quantizer->qscheme() == kPerTensorAffine to be true, but "
                               "got false.")
        return self._zp

    def _check_channel(self):
        if not self._per_channel():
            raise RuntimeError("Expected quantizer->qscheme() == kPerChannelAffine || "
                               "quantizer->qscheme() == kPerChannelAffineFloatQParams to be "
                               "true, but got false.")

    def q_per_channel_scales(self) -> Tensor:
        self._check_channel()
        return _make(self._scale.copy())

    def q_per_channel_zero_points(self) -> Tensor:
        self._check_channel()
        return _make(self._zp.copy())

    def q_per_channel_axis(self) -> int:
        self._check_channel()
        return self._axis

    def int_repr(self) -> Tensor:
        """The integer storage as a plain tensor (a copy, as PyTorch's)."""
        d = self._data
        if self._qdtype is qint32:
            return _make(d.astype(d.dtype))
        return _make(d.copy())

    def _scale_zp_arrays(self):
        """Scale and zero point shaped to broadcast against the storage."""
        if not self._per_channel():
            return self._scale, self._zp
        shape = [1] * self.ndim
        shape[self._axis] = -1
        return self._scale.reshape(shape), self._zp.reshape(shape)

    def dequantize(self) -> Tensor:
        """The float32 tensor ``(int_repr - zero_point) * scale``."""
        from .. import _backend
        xp = _backend.xp_of(self._data)
        s, z = self._scale_zp_arrays()
        return _make(dequantize_array(xp, self._unpacked(), s, z))

    def _like(self, data) -> "QTensor":
        """A quantized tensor with this one's qparams over other integer storage."""
        return _qtensor(data, self._qdtype, self._qscheme, self._scale, self._zp, self._axis)

    def detach(self) -> "QTensor":
        return self._like(self._unpacked())

    def clone(self, *, memory_format=None) -> "QTensor":
        return self._like(self._unpacked().copy())

    def contiguous(self, memory_format=None) -> "QTensor":
        from .. import _backend
        return self._like(_backend.xp_of(self._data).ascontiguousarray(self._unpacked()))

    def numpy(self, *, force=False):
        raise TypeError("Got unsupported ScalarType " + self._qdtype.scalar_name)

    def __repr__(self):
        from .._printing import tensor_repr
        body = tensor_repr(self.dequantize())[:-1]
        if "size=" not in body:
            body += f", size={tuple(self.shape)}"
        pad = " " * 7
        if self._per_channel():
            scales = tensor_repr(_make(self._scale)).replace("\n", "\n" + pad)
            zps = tensor_repr(_make(self._zp)).replace("\n", "\n" + pad)
            q = (f"quantization_scheme={self._qscheme!r},\n{pad}scale={scales},\n{pad}"
                 f"zero_point={zps}, axis={self._axis})")
        else:
            q = (f"quantization_scheme={self._qscheme!r}, scale={self._scale}, "
                 f"zero_point={self._zp})")
        return f"{body}, dtype={self._qdtype!r},\n{pad}{q}"

    def _torch_reduce(self, storages):
        """``ember.save``'s record: PyTorch's ``_rebuild_qtensor`` over a QInt8/QUInt8/QInt32
        storage, so ``torch.load`` reads it back as a quantized tensor."""
        from ..serialization import _StorageRef, _TorchRef
        from collections import OrderedDict
        ref, offset, size, stride = storages.describe(_make(self._data))
        if self._qshape is not None:  # the packed bytes, viewed with the values' shape
            size, stride = tuple(self._qshape), self.stride()
        pid = ref.pid
        ref = _StorageRef((pid[0], _TorchRef("torch", self._qdtype.scalar_name + "Storage"))
                          + pid[2:])
        # float qparams are written as PyTorch writes them: per_channel_affine, float zps
        scheme = _TorchRef("torch", "per_channel_affine" if self._qscheme is
                           per_channel_affine_float_qparams else self._qscheme.name)
        if self._per_channel():
            params = (scheme, _make(self._scale), _make(self._zp), self._axis)
        else:
            params = (scheme, self._scale, self._zp)
        return (_TorchRef("torch._utils", "_rebuild_qtensor"),
                (ref, offset, size, stride, params, False, OrderedDict()))

    def __reduce_ex__(self, proto):
        return (_rebuild_qtensor, (self._unpacked(), self._qdtype.name, self._qscheme.name,
                                   self._scale, self._zp, self._axis))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """Run the ops quantized tensors support on their integers (NOTE [ Quantized
        tensors ]); every other op raises PyTorch's NotImplementedError."""
        name = getattr(func, "__name__", str(func))
        if name.rstrip("_") in ("add", "sub", "mul", "div", "rsub", "true_divide"):
            raise _arithmetic(func, args, kwargs or {})
        if name in ("mm", "matmul", "bmm"):
            raise _not_here(name + ".out")
        if name == "convolution" and isinstance(args[0], QTensor) and len(args) > 2 and \
                args[2] is not None:  # a float conv's bias check comes first in PyTorch
            bias = {"float32": "float", "float64": "double"}.get(args[2].dtype.name, "float")
            raise RuntimeError(f"Input type (c10::{args[0].dtype.name}) and bias type ({bias}) "
                               "should be the same")
        impl = _Q_OPS.get(name.replace("_", ""))
        if impl is not None and impl is not _integers and any(
                isinstance(a, QTensor) and a._qdtype is quint4x2 for a in args):
            impl = None  # 4-bit values only move (their arithmetic has no kernel)
        if impl is None:
            raise _not_here(name)
        return impl(func, args, kwargs or {})


def _rebuild_qtensor_torch(plain, dtype, params):
    """A quantized tensor from PyTorch's pickled ``(storage tensor, quantizer_params)``."""
    scheme = params[0] if isinstance(params[0], qscheme) else _SCHEMES[str(params[0])]
    if scheme is per_tensor_affine:
        return _qtensor(plain._data, dtype, scheme, builtins.float(params[1]),
                        builtins.int(params[2]))
    if scheme is per_channel_affine_float_qparams or params[2].dtype.is_floating_point:
        # PyTorch writes float-qparams tensors as per_channel_affine with float zero points
        return _qtensor(plain._data, dtype, per_channel_affine_float_qparams,
                        params[1]._data.astype("float32"),
                        params[2]._data.astype("float32"), builtins.int(params[3]))
    return _qtensor(plain._data, dtype, scheme, params[1]._data.astype("float64"),
                    params[2]._data.astype("int64"), builtins.int(params[3]))


def _rebuild_qtensor(data, dtype_name, scheme_name, scale, zp, axis):
    return _qtensor(data, _dtype._by_name(dtype_name), _SCHEMES[scheme_name], scale, zp, axis)


_warned = []


def _qtensor(data, dtype, scheme, scale, zp, axis=None) -> QTensor:
    """The one constructor of quantized tensors (warns once, as PyTorch's Quantizer.cpp)."""
    if not _warned:
        _warned.append(True)
        warnings.warn(
            "torch.quantize_per_tensor, torch.quantize_per_channel and other quantized tensor "
            "creation functions that produce tensors with dtype torch.quint8, torch.qint8, and "
            "torch.qint32 are deprecated and will be removed in a future PyTorch release. Please "
            "see https://github.com/pytorch/pytorch/issues/184982 for more information.",
            UserWarning, stacklevel=3)
    qshape = None
    if dtype is quint4x2:  # values in, two a byte stored (NOTE [ Packed quint4x2 ])
        qshape = tuple(data.shape)
        data = pack4(data)
    t = _make(data, cls=QTensor)
    t._qshape = qshape
    t._qdtype = dtype
    t._qscheme = scheme
    t._scale = scale
    t._zp = zp
    t._axis = axis
    return t


# ---- ops that quantized tensors support (by their ATen name) ------------------------------
def _split(args):
    """The first quantized tensor among ``args`` and the args with each one's integers."""
    first = []

    def plain(a):
        if isinstance(a, QTensor):
            if first and not _same_qparams(first[0], a):
                raise RuntimeError("All inputs of this op must have the same quantization "
                                   "parameters")
            first.append(a)
            return _make(a._unpacked())
        if isinstance(a, (list, tuple)):
            return type(a)(plain(x) for x in a)
        return a
    out = tuple(plain(a) for a in args)
    return first[0], out


def _same_qparams(a, b) -> bool:
    if a._qdtype is not b._qdtype or a._qscheme is not b._qscheme or a._axis != b._axis:
        return False
    if a._axis is None:
        return a._scale == b._scale and a._zp == b._zp
    return bool((a._scale == b._scale).all() and (a._zp == b._zp).all())


def _rewrap(q, out):
    if isinstance(out, Tensor) and out._data.dtype == q._data.dtype:
        return q._like(out._data)
    if isinstance(out, (list, tuple)):
        return type(out)(_rewrap(q, o) for o in out)
    return out


def _integers(func, args, kwargs):
    """An op that only moves or selects elements: run it on the integers, keep the qparams."""
    q, plain = _split(args)
    if q._per_channel() and func.__name__ not in _CHANNEL_SAFE:
        raise _not_here(func.__name__)
    return _rewrap(q, func(*plain, **kwargs))


def _relu(func, args, kwargs):
    q, plain = _split(args)
    from .. import _backend
    xp = _backend.xp_of(q._data)
    if q._per_channel():
        raise _not_here(func.__name__)
    return q._like(xp.maximum(q._data, q._data.dtype.type(q._zp)))


def _averaged(func, args, kwargs):
    """Average pools: average the integers in float32 and round half to even."""
    q, plain = _split(args)
    if q._per_channel():
        raise _not_here(func.__name__)
    from .. import _backend
    xp = _backend.xp_of(q._data)
    plain = tuple(_make(a._data.astype(xp.float32)) if isinstance(a, Tensor) and
                  a._data.dtype == q._data.dtype else a for a in plain)
    out = func(*plain, **kwargs)
    qmin, qmax = _RANGES[q._qdtype]
    return q._like(xp.clip(xp.rint(out._data), qmin, qmax).astype(q._data.dtype))


def _max_pooled(func, args, kwargs):
    """Max pooling of tiled windows (kernel == stride, no padding or dilation, no indices) as
    the maximum of strided views of the integers; other geometries run the float op's loop."""
    if len(args) == 7 and not kwargs:
        x, k, s, p, d, outs, want_idx = args
        if isinstance(x, QTensor) and not want_idx and tuple(k) == tuple(s) and \
                not any(p) and all(v == 1 for v in d) and not x._per_channel():
            # the elementwise maximum of the prod(k) strided views, one window offset each:
            # no reshape copy, and the output keeps the input's (channels-last) layout
            from .. import _backend
            xp = _backend.xp_of(x._data)
            a = x._data
            out = None
            for off in _positions(tuple(k)):
                v = a[(Ellipsis,) + tuple(slice(i, i + o * kk, kk)
                                          for i, o, kk in zip(off, outs, k))]
                out = v.copy(order="K") if out is None else xp.maximum(out, v, out=out)
            return x._like(out)
    return _integers(func, args, kwargs)


# fbgemm's fixed output qparams of the ops whose range is known: (scale, zero point) per dtype
_FIXED_OUT = {"sigmoid": {quint8: (1 / 256, 0), qint8: (1 / 256, -128)},
              "hardsigmoid": {quint8: (1 / 256, 0), qint8: (1 / 256, -128)},
              "tanh": {quint8: (2 / 256, 128), qint8: (2 / 256, 0)}}


def _fixed_range(func, args, kwargs):
    """``sigmoid``/``hardsigmoid``/``tanh``: the float op on the dequantized values, quantized
    to the op's fixed output scale and zero point (whatever the input's)."""
    q = args[0]
    name = func.__name__.rstrip("_")
    out = _FIXED_OUT[name].get(q._qdtype)
    if out is None or q._per_channel():
        raise _not_here(name)
    y = func(q.dequantize(), *args[1:], **kwargs)
    return quantize_per_tensor(y, out[0], out[1], q._qdtype)


_MOVES = ("view", "reshape", "_unsafe_view", "alias", "permute", "transpose", "t", "squeeze",
          "unsqueeze", "expand", "slice", "select", "index", "narrow", "split", "chunk",
          "unbind", "flip", "roll", "repeat", "cat", "stack", "clone", "contiguous",
          "as_strided", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
          "max_pool3d_with_indices", "max_pool1d_with_indices", "upsample_nearest1d",
          "upsample_nearest2d", "upsample_nearest3d", "pixel_shuffle", "pixel_unshuffle",
          "channel_shuffle", "flatten", "dropout", "feature_dropout", "movedim")
_CHANNEL_SAFE = {"clone", "contiguous", "alias", "detach"}
# keyed without underscores: op names derive from Function class names (MaxPool2DWithIndices)
_Q_OPS = {n.replace("_", ""): _integers for n in _MOVES}
_Q_OPS.update({"maxpool2dwithindices": _max_pooled, "maxpool3dwithindices": _max_pooled})
_Q_OPS.update({"relu": _relu, "adaptiveavgpool1d": _averaged, "adaptiveavgpool2d": _averaged,
               "adaptiveavgpool3d": _averaged, "avgpool1d": _averaged, "avgpool2d": _averaged,
               "avgpool3d": _averaged, "sigmoid": _fixed_range, "hardsigmoid": _fixed_range,
               "tanh": _fixed_range})


# ---- quantize / dequantize -------------------------------------------------------------------
def _check_qdtype(dtype, fn: str):
    if dtype not in _RANGES:
        name = getattr(dtype, "scalar_name", type(dtype).__name__)
        raise RuntimeError(f"ScalarType {name} is not supported in new_qtensor.")


def _check_zero_point(zp, dtype, fn: str):
    qmin, qmax = _RANGES[dtype]
    if zp > qmax:
        raise RuntimeError(f"{fn} zero_point {zp} is above upper bound.")
    if zp < qmin:
        raise RuntimeError(f"{fn} zero_point {zp} is below lower bound.")


def _as_float(input: Tensor, fn: str):
    if input._data.dtype != float32.np:
        if isinstance(input, QTensor) or not input.dtype.is_floating_point:
            raise RuntimeError("Quantize only works on Float Tensor, got "
                               f"{input.dtype.scalar_name}")
        if input._data.dtype.itemsize == 8:  # PyTorch's fbgemm path takes float32 only
            raise RuntimeError("Quantize only works on Float Tensor, got Double")
        return input._data.astype(float32.np)
    return input._data


def quantize_per_tensor(input, scale, zero_point, dtype):
    """``clamp(round(input / scale) + zero_point)`` as ``dtype`` (``torch.quantize_per_tensor``;
    a list of tensors gives a list)."""
    if isinstance(input, (list, tuple)):
        return [quantize_per_tensor(t, scale[i] if isinstance(scale, Tensor) else scale,
                                    zero_point[i] if isinstance(zero_point, Tensor)
                                    else zero_point, dtype) for i, t in enumerate(input)]
    input = need_tensor(input, "quantize_per_tensor")
    _check_qdtype(dtype, "quantize_per_tensor")
    scale = builtins.float(scale.item() if isinstance(scale, Tensor) else scale)
    zero_point = builtins.int(zero_point.item() if isinstance(zero_point, Tensor) else zero_point)
    _check_zero_point(zero_point, dtype, "quantize_tensor_per_tensor_affine")
    from .. import _backend
    x = _as_float(input, "quantize_per_tensor")
    data = quantize_array(_backend.xp_of(x), x, scale, zero_point, dtype)
    return _qtensor(data, dtype, per_tensor_affine, scale, zero_point)


def quantize_per_channel(input, scales, zero_points, axis, dtype):
    """Quantize each slice along ``axis`` with its own scale and zero point
    (``torch.quantize_per_channel``)."""
    input = need_tensor(input, "quantize_per_channel")
    scales = need_tensor(scales, "quantize_per_channel", "scales", 2)
    zero_points = need_tensor(zero_points, "quantize_per_channel", "zero_points", 3)
    _check_qdtype(dtype, "quantize_per_channel")
    nd = input._data.ndim
    if not 0 <= axis < nd:
        raise RuntimeError(f"Channel axis out of range in per channel affine quantization. "
                           f"Got: {axis}Expected: [0, {nd})")
    c = input._data.shape[axis]
    if scales._data.ndim != 1 or scales._data.shape[0] != c:
        raise RuntimeError(f"length of scales must equal to channel, expected {c} got, "
                           f"{scales.numel()}")
    if zero_points._data.ndim != 1 or zero_points._data.shape[0] != c:
        raise RuntimeError(f"length of zero_points must equal to channel expected {c}, got "
                           f"{zero_points.numel()}")
    from .. import _backend
    xp = _backend.xp_of(input._data)
    x = _as_float(input, "quantize_per_channel")
    shape = [1] * nd
    shape[axis] = -1
    if zero_points.dtype.is_floating_point:
        # float zero points: per_channel_affine_float_qparams (embedding weights), quantized
        # as rint(x * (1 / scale) + zp) in float32, scales and zero points kept in float32
        s = scales._data.astype(xp.float32)
        z = zero_points._data.astype(xp.float32)
        inv = xp.float32(1) / xp.where(s == 0, xp.float32(1), s)
        qmin, qmax = _RANGES[dtype]
        y = xp.rint(x * inv.reshape(shape) + z.reshape(shape))
        data = xp.clip(y, qmin, qmax).astype(dtype.np)
        return _qtensor(data, dtype, per_channel_affine_float_qparams, s, z, axis)
    s = scales._data.astype(xp.float64)
    z = zero_points._data.astype(xp.int64)
    for zp in (z.min(initial=0), z.max(initial=0)):
        _check_zero_point(builtins.int(zp), dtype, "quantize_tensor_per_channel_affine")
    data = quantize_array(xp, x, s.reshape(shape), z.reshape(shape).astype(xp.float64), dtype)
    return _qtensor(data, dtype, per_channel_affine, s, z, axis)


def _f32(v: float) -> float:
    """``v`` rounded to float32, as a Python float."""
    return _struct.unpack("f", _struct.pack("f", v))[0]


_SMALL_SCALE = _struct.unpack("f", _struct.pack("f", 6.1e-5))[0]  # fbgemm's threshold


def choose_qparams(min_val: float, max_val: float, qmin: int, qmax: int,
                   preserve_sparsity: bool = False) -> tuple:
    """fbgemm's ``ChooseQuantizationParams``: an affine (scale, zero_point) covering
    ``[min(min_val, 0), max(max_val, 0)]`` with 0 exactly representable; symmetric about 0
    with ``preserve_sparsity`` (scale ``max(|min| / 128, max / 127)`` for 8 bits, the fused
    fake-quant's symmetric qparams); scales below 6.1e-5 are raised to it, the range
    stretched alike.  ``min``/``max`` are float32 and the scale float64, as in C++."""
    lo, hi = _f32(min_val), _f32(max_val)
    if lo < 0 < hi and preserve_sparsity:
        sym_min = -((qmax - qmin) // 2 + 1)
        sym_max = (qmax - qmin) // 2
        m = max(abs(_f32(lo / sym_min)), abs(_f32(hi / sym_max)))
        lo, hi = _f32(m * sym_min), _f32(m * sym_max)
    lo = min(lo, 0.0)
    hi = max(hi, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    if _f32(scale) == 0 or _f32(scale) < 1.2e-38:  # 1/scale would overflow float32
        scale = 0.1
    if scale < _SMALL_SCALE:
        org = _f32(scale)
        scale = _SMALL_SCALE
        if lo == 0:
            hi = _f32(_SMALL_SCALE * (qmax - qmin))
        elif hi == 0:
            lo = _f32(-_SMALL_SCALE * (qmax - qmin))
        else:
            amp = _f32(_SMALL_SCALE / org)
            lo, hi = _f32(lo * amp), _f32(hi * amp)
    zp_min = qmin - lo / scale
    zp_max = qmax - hi / scale
    err_min = abs(qmin) - abs(lo / scale)
    err_max = abs(qmax) - abs(hi / scale)
    zp0 = zp_min if err_min < err_max else zp_max
    if lo < 0 < hi and preserve_sparsity:
        zp0 = (qmin + qmax) / 2
    zp = qmin if zp0 < qmin else qmax if zp0 > qmax else builtins.round(zp0)  # half to even
    return scale, zp


def quantize_per_tensor_dynamic(input, dtype, reduce_range: bool):
    """Quantize with a scale and zero point chosen from the input's range
    (``torch.quantize_per_tensor_dynamic``)."""
    input = need_tensor(input, "quantize_per_tensor_dynamic")
    if dtype not in (qint8, quint8):
        raise RuntimeError(f"dtype {dtype!r} is not supported in quantize_per_tensor_dynamic, "
                           "only quint8 and qint8 are supported")
    qmin, qmax = _RANGES[dtype]
    if reduce_range:
        qmin, qmax = qmin // 2, qmax // 2
    x = input._data
    lo = builtins.float(x.min()) if x.size else 0.0
    hi = builtins.float(x.max()) if x.size else 0.0
    scale, zp = choose_qparams(lo, hi, qmin, qmax)
    return quantize_per_tensor(input, scale, zp, dtype)


def dequantize(tensor):
    """The float values of a quantized tensor (a float tensor is returned as it is); a list
    gives a list (``torch.dequantize``)."""
    if isinstance(tensor, (list, tuple)):
        return [dequantize(t) for t in tensor]
    return tensor.dequantize()


def _make_per_tensor_quantized_tensor(input, scale, zero_point):
    """Reinterpret an int8/uint8/int32 tensor as quantized integers (no copy)."""
    by = {"int8": qint8, "uint8": quint8, "int32": qint32}
    dt = by.get(input._data.dtype.name)
    if dt is None:
        raise RuntimeError(f"Could not find a quantized dtype for {input.dtype.scalar_name}")
    return _qtensor(input._data, dt, per_tensor_affine, builtins.float(scale),
                    builtins.int(zero_point))


def _make_per_channel_quantized_tensor(input, scale, zero_point, axis):
    """Reinterpret integers as per-channel quantized values (no copy)."""
    by = {"int8": qint8, "uint8": quint8, "int32": qint32}
    dt = by.get(input._data.dtype.name)
    if dt is None:
        raise RuntimeError(f"Could not find a quantized dtype for {input.dtype.scalar_name}")
    return _qtensor(input._data, dt, per_channel_affine, scale._data.astype("float64"),
                    zero_point._data.astype("int64"), axis % input._data.ndim)


# ---- fake quantization (quantize then dequantize, straight-through gradient) ---------------
def _check_fq_range(qmin, qmax, zp_ok, fn):
    if qmin > qmax:
        raise RuntimeError("`quant_min` should be less than or equal to `quant_max`.")
    if not zp_ok:
        raise RuntimeError("`zero_point` must be between `quant_min` and `quant_max`.")


def _fq_core(xp, x, scale, zp, qmin, qmax, fma=True):
    """The fake-quantized values and the in-range mask of the straight-through gradient, as
    PyTorch's kernels: float32 scale and ``1/scale``; a float32 input is rounded after
    fbgemm's fma (per channel: after the float32 product), a float64 one after a float64
    product; the values come back in float32."""
    s = xp.asarray(scale, dtype=xp.float32)
    inv = (xp.float32(1) / s).astype(xp.float64)
    if fma == "float_zp":  # float zero points (float qparams) are added before rounding
        q = xp.rint(x * inv.astype(x.dtype) + xp.asarray(zp, dtype=x.dtype))
    elif x.dtype == xp.float32 and fma:
        q = xp.rint((x.astype(xp.float64) * inv + zp).astype(xp.float32))
    elif x.dtype == xp.float32:  # the per-channel kernel rounds the product, then adds zp
        q = xp.rint(x * inv.astype(xp.float32)) + zp
    else:
        q = xp.rint(x * inv) + zp
    mask = (q >= qmin) & (q <= qmax)
    y = (xp.clip(q, qmin, qmax).astype(xp.float32) - xp.asarray(zp, dtype=xp.float32)) * s
    return y.astype(x.dtype), mask, q


class FakeQuantize(Function):
    """``(clamp(round(x / s + z), qmin, qmax) - z) * s``; the gradient passes where the
    rounded value is in range (``fake_quantize_per_*_affine``)."""

    raw = True
    backward_name = "FakeQuantizePerTensorAffineCachemaskBackward0"

    @staticmethod
    def forward(ctx, x, scale, zp, qmin, qmax, fma=True):
        y, mask, _ = _fq_core(ctx.xp, x, scale, zp, qmin, qmax, fma)
        ctx.save_for_backward(_make(mask))
        return y

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask, None, None, None, None, None


class FakeQuantizePerChannel(FakeQuantize):
    backward_name = "FakeQuantizePerChannelAffineCachemaskBackward0"


def fake_quantize_per_tensor_affine(input, scale, zero_point, quant_min, quant_max):
    """Quantize and dequantize with one scale and zero point
    (``torch.fake_quantize_per_tensor_affine``)."""
    input = need_tensor(input, "fake_quantize_per_tensor_affine")
    s = builtins.float(scale.item() if isinstance(scale, Tensor) else scale)
    z = builtins.int(zero_point.item() if isinstance(zero_point, Tensor) else zero_point)
    _check_fq_range(quant_min, quant_max, quant_min <= z <= quant_max,
                    "fake_quantize_per_tensor_affine")
    return FakeQuantize.apply(input, s, z, quant_min, quant_max)


def fake_quantize_per_channel_affine(input, scale, zero_point, axis, quant_min, quant_max):
    """Fake quantization with one scale and zero point per slice along ``axis``
    (``torch.fake_quantize_per_channel_affine``)."""
    input = need_tensor(input, "fake_quantize_per_channel_affine")
    nd = input._data.ndim
    if not -nd <= axis < nd:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-nd}, {nd - 1}],"
                         f" but got {axis})")
    axis %= nd
    c = input._data.shape[axis]
    if scale.numel() != c or zero_point.numel() != c:
        raise RuntimeError("dimensions of scale and zero-point are not consistent with input "
                           "tensor")
    floating = zero_point._data.dtype.kind == "f"  # float qparams: any float zero point
    z = zero_point._data.astype("float32" if floating else "int64")
    _check_fq_range(quant_min, quant_max,
                    floating or bool((z >= quant_min).all() and (z <= quant_max).all()),
                    "fake_quantize_per_channel_affine")
    shape = [1] * nd
    shape[axis] = -1
    s = scale._data.astype("float32").reshape(shape)
    return FakeQuantizePerChannel.apply(input, s, z.reshape(shape).astype("float64"),
                                        quant_min, quant_max, "float_zp" if floating else False)


class LearnableFakeQuantize(Function):
    """Fake quantization with LSQ's gradients for the scale and the zero point (Esser et al.,
    2020), as ``torch._fake_quantize_learnable_per_*_affine``."""

    raw = True
    backward_name = "FakeQuantizeLearnablePerTensorAffineBackward0"

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax, grad_factor, shape):
        xp = ctx.xp
        s = scale.astype(xp.float32).reshape(shape)
        zf = zero_point.astype(xp.float32).reshape(shape)
        z = xp.clip(xp.rint(zf), qmin, qmax)  # the forward rounds the learnt zero point
        per_channel = len([n for n in shape if n != 1]) > 0
        y, mask, q = _fq_core(xp, x, s, z.astype(xp.float64), qmin, qmax, not per_channel)
        ctx.meta = (shape, grad_factor, scale.shape, scale.dtype, zero_point.dtype)
        # per tensor, the backward's zero point is c10's (zp + 0.5) truncated and clamped; per
        # channel it is the forward's
        zb = z if per_channel else xp.clip(xp.trunc(zf + xp.float32(0.5)), qmin, qmax)
        inv = xp.float32(1) / s
        qb = xp.rint((x.astype(xp.float64) * inv.astype(xp.float64) + zb).astype(xp.float32))
        low, high = qb < qmin, qb > qmax
        ds = xp.where(low, qmin - zb, xp.where(high, qmax - zb,
                                                ((xp.clip(qb, qmin, qmax) - zb) * s - x) * inv))
        dz = xp.where(low | high, -s, xp.float32(0)) * xp.ones_like(x)
        ctx.save_for_backward(_make(~(low | high)), _make(ds.astype(x.dtype)),
                              _make(dz.astype(x.dtype)))
        return y

    @staticmethod
    def backward(ctx, g):
        mask, ds, dz = ctx.saved_tensors
        shape, factor, sshape, sdt, zdt = ctx.meta
        keep = [i for i, n in enumerate(shape) if n != 1]
        dims = [i for i in range(g.dim()) if i not in keep]

        def total(t):
            r = (g * t).sum(dims) if dims else g * t
            return (r * factor).reshape(sshape)
        from .._dtype import from_np
        return (g * mask, total(ds).to(from_np(sdt)), total(dz).to(from_np(zdt)),
                None, None, None, None)


def _fake_quantize_learnable_per_tensor_affine(input, scale, zero_point, quant_min, quant_max,
                                               grad_factor=1.0):
    """Fake quantization whose scale and zero point (1-element tensors) get LSQ gradients."""
    input = need_tensor(input, "_fake_quantize_learnable_per_tensor_affine")
    return LearnableFakeQuantize.apply(input, scale, zero_point, quant_min, quant_max,
                                       builtins.float(grad_factor), (1,) * input._data.ndim)


def _fake_quantize_learnable_per_channel_affine(input, scale, zero_point, axis, quant_min,
                                                quant_max, grad_factor=1.0):
    """Per-channel fake quantization with LSQ gradients for ``scale`` and ``zero_point``."""
    input = need_tensor(input, "_fake_quantize_learnable_per_channel_affine")
    nd = input._data.ndim
    shape = [1] * nd
    shape[axis % nd] = -1
    return LearnableFakeQuantize.apply(input, scale, zero_point, quant_min, quant_max,
                                       builtins.float(grad_factor), tuple(shape))
