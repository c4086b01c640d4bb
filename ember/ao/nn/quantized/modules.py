"""Quantized modules (``torch.ao.nn.quantized``): they take and return quantized tensors and
hold int8 weights; ``from_float`` builds one from a prepared (observed) float module."""
from __future__ import annotations

import numpy as np

from .... import _backend
from ...._dtype import qint8
from ...._tensor import Tensor, _make
from ....autograd.grad_mode import no_grad
from ....nn.modules.module import Module
from ....ops import quantized as _q
from ....ops.quantized import (QTensor, per_channel_affine, per_channel_symmetric,
                               per_channel_affine_float_qparams, _qtensor)

__all__ = ["Quantize", "DeQuantize", "Linear", "Conv1d", "Conv2d", "Conv3d", "BatchNorm2d",
           "BatchNorm3d", "ReLU6", "FloatFunctional", "FXFloatFunctional", "QFunctional",
           "LinearPackedParams"]


def _need_quantized(x, op: str):
    """PyTorch's error for a float tensor given to a quantized kernel."""
    if not isinstance(x, QTensor):
        raise NotImplementedError(
            f"Could not run '{op}' with arguments from the 'CPU' backend. This could be because "
            "the operator doesn't exist for this backend, or was omitted during the "
            "selective/custom build process (if using custom build). "
            f"'{op}' is only available for these backends: [QuantizedCPU].")


def quantize_weight(w: Tensor, observer) -> QTensor:
    """The int8 weight of ``w`` with the qparams ``observer`` chose (per channel or per
    tensor, as the observer's scheme)."""
    scale, zp = observer.calculate_qparams()
    if observer.qscheme is per_channel_affine_float_qparams:  # float zero points
        return _q.quantize_per_channel(w.detach(), scale.float(), zp.float(), observer.ch_axis,
                                       observer.dtype)
    if observer.qscheme in (per_channel_affine, per_channel_symmetric):
        return _q.quantize_per_channel(w.detach(), scale.double(), zp.long(), observer.ch_axis,
                                       observer.dtype)
    return _q.quantize_per_tensor(w.detach(), float(scale._data[0]), int(zp._data[0]),
                                  observer.dtype)


def _output_qparams(mod):
    scale, zp = mod.activation_post_process.calculate_qparams()
    return float(scale._data[0]), int(zp._data[0])


class _WeightPack:
    """A quantized weight prepared for ``int_matmul``: ``(w - zw)`` laid out ``(K, O)`` (a view
    of the int8 weight itself when its zero points are 0, as ``default_qconfig``'s symmetric
    weights; else an int16 copy), the per-output-channel scales and the largest |value|.

    Only integers are kept, so weight memory is a quarter of float32's; ``wt()`` forms the
    float32 operand of the exact GEMM per call (NOTE [ Exact int8 GEMM ]).  Setting
    ``_WeightPack.keep_float32 = True`` before quantizing caches that float32 copy instead
    (1.25x float32's memory, saves one int8 -> float32 pass per call)."""

    keep_float32 = False

    def __init__(self, wq: QTensor, channels_last: bool = False):
        xp = _backend.xp_of(wq._data)
        o = wq._data.shape[0]
        d = wq._data
        if channels_last:  # (O, C, *k) -> (O, *k, C): im2col's column order
            d = xp.moveaxis(d, 1, -1)
        w = d.reshape(o, -1)
        if wq._axis is not None:
            if wq._axis != 0:
                raise NotImplementedError("per-channel weights quantized along axis 0 only")
            zp = wq._zp
            self.scales = wq._scale.astype(xp.float32)
            if (zp != 0).any():
                w = w.astype(xp.int16) - zp.astype(xp.int16)[:, None]
        else:
            self.scales = xp.full(o, wq._scale, xp.float32)
            if wq._zp != 0:
                w = w.astype(xp.int16) - xp.int16(wq._zp)
        self.wmax = int(abs(w.astype(xp.int16)).max(initial=0))
        # sum_k w[o, k], exact in float32 (|sum| <= K * 128): a zero-point shift of the
        # input becomes one correction of the output, acc -= za * colsum
        self.colsum = w.sum(axis=1, dtype=xp.int32).astype(xp.float32)
        self._wt = w.T
        self.k = self._wt.shape[0]
        self._f32 = (xp.ascontiguousarray(self._wt, dtype=xp.float32) if self.keep_float32
                     else None)

    def wt(self, xp):
        """The ``(K, O)`` weight as integer-valued float32 (made per call unless cached)."""
        if self._f32 is not None:
            return self._f32
        return self._wt.astype(xp.float32)

    def nbytes(self) -> int:
        """Bytes this pack holds beyond the quantized weight it views."""
        own = 0 if self._wt.base is not None and self._wt.dtype.itemsize == 1 else \
            self._wt.nbytes
        return own + (0 if self._f32 is None else self._f32.nbytes) + self.scales.nbytes


def k_major(wq: QTensor) -> QTensor:
    """The same quantized ``(O, K)`` weight over ``(K, O)``-contiguous storage (a transposed
    view): the pack's float32 operand then comes out C-contiguous, which sgemm multiplies
    ~20% faster than the transposed one at the MLP's sizes; no second copy is kept."""
    xp = _backend.xp_of(wq._data)
    d = wq._data
    if d.ndim != 2 or d.T.flags.c_contiguous:
        return wq
    return wq._like(xp.ascontiguousarray(d.T).T)


def _linear_acc(xp, x: QTensor, pack: _WeightPack):
    """The exact int32 accumulators of a quantized input times the packed weight."""
    a = x._data.astype(xp.float32)
    a -= xp.float32(x._zp)
    amax = max(abs(x._zp - lo) for lo in _q.q_range(x._qdtype))
    return _q.int_matmul(xp, a, pack.wt(xp), amax, pack.wmax)


class Quantize(Module):
    """Quantize float input with a fixed scale and zero point (what a QuantStub becomes)."""

    def __init__(self, scale, zero_point, dtype, factory_kwargs=None):
        super().__init__()
        self.register_buffer("scale", _make(np.array([scale], np.float32)))
        self.register_buffer("zero_point", _make(np.array([zero_point], np.int64)))
        self.dtype = dtype

    def forward(self, X):
        return _q.quantize_per_tensor(X, float(self.scale._data[0]),
                                      int(self.zero_point._data[0]), self.dtype)

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        scale, zp = _output_qparams(mod)
        return Quantize(scale, zp, mod.activation_post_process.dtype)

    def extra_repr(self):
        return (f"scale={self.scale}, zero_point={self.zero_point}, dtype={self.dtype}")


class DeQuantize(Module):
    """Back to float (what a DeQuantStub becomes)."""

    def forward(self, Xq):
        return Xq.dequantize()

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return DeQuantize()


class LinearPackedParams(Module):
    """Holds a quantized linear's weight and bias (PyTorch's ``_packed_params``)."""

    _version = 3  # PyTorch's state layout 3: one "_packed_params" (weight, bias) entry

    def __init__(self, dtype=qint8):
        super().__init__()
        self.dtype = dtype
        self._weight_bias = None

    def set_weight_bias(self, weight, bias):
        weight = k_major(weight)
        self._weight_bias = (weight, bias)
        self.pack = _WeightPack(weight)

    def _weight_bias_(self):
        return self._weight_bias

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "dtype"] = self.dtype
        destination[prefix + "_packed_params"] = self._weight_bias

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self.dtype = state_dict.pop(prefix + "dtype", self.dtype)
        w, b = state_dict.pop(prefix + "_packed_params")
        self.set_weight_bias(w, b)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, False, missing_keys,
                                      unexpected_keys, error_msgs)


class _QuantizedWeighted(Module):
    """Output scale/zero point buffers-as-attributes shared by quantized Linear and Conv."""

    _FLOAT = None
    _RELU = False

    def _set_out(self, scale, zero_point):
        self.scale = float(scale)
        self.zero_point = int(zero_point)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # PyTorch saves ``torch.tensor(self.scale)``: a float32 tensor
        destination[prefix + "scale"] = _make(np.array(self.scale, np.float32))
        destination[prefix + "zero_point"] = _make(np.array(self.zero_point, np.int64))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self.scale = float(state_dict.pop(prefix + "scale")._data)
        self.zero_point = int(state_dict.pop(prefix + "zero_point")._data)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, False, missing_keys,
                                      unexpected_keys, error_msgs)

    @classmethod
    def _observed(cls, mod):
        """The float module to take weights from, and its weight observer."""
        from ...quantization.fake_quantize import FakeQuantizeBase
        float_mod = mod[0] if _is_fused(mod) else mod
        if hasattr(mod, "weight_fake_quant"):  # a QAT module: its fake quant observed the weight
            wobs = mod.weight_fake_quant
            if isinstance(wobs, FakeQuantizeBase):
                wobs = wobs.activation_post_process
            return float_mod, wobs
        if not hasattr(mod, "qconfig") or mod.qconfig is None:
            raise AssertionError("Input float module must have qconfig defined")
        wobs = mod.qconfig.weight()
        wobs(float_mod.weight)
        return float_mod, wobs


    @staticmethod
    def _qat_weight_bias(mod, float_mod, use_precomputed_fake_quant=False):
        """The weight and bias to quantize: a QAT conv-bn / linear-bn's with its BN folded
        in; a QAT module's weight passes its fake quant once more first, so the observer
        sees it as PyTorch's ``from_float`` makes it (``weight_post_process(mod.weight)``)."""
        weight, bias = float_mod.weight, float_mod.bias
        if hasattr(mod, "_folded_weight_bias"):
            weight, bias = mod._folded_weight_bias()
        if hasattr(mod, "weight_fake_quant") and not use_precomputed_fake_quant:
            with no_grad():
                mod.weight_fake_quant(weight)
        return weight, bias


def _is_fused(mod) -> bool:
    """A float fused Sequential (conv, relu ...); QAT fused modules are fused modules too (as
    PyTorch's) but are the conv / linear themselves."""
    from ..intrinsic import _FusedModule
    return isinstance(mod, _FusedModule) and not hasattr(mod, "weight_fake_quant")


class Linear(_QuantizedWeighted):
    """``y = x W^T + b`` on quantized tensors: int8 weights, int32 accumulation, requantized
    to ``scale``/``zero_point`` (``torch.ao.nn.quantized.Linear``)."""

    _version = 3
    _NAME = "quantized::linear"

    def __init__(self, in_features, out_features, bias_=True, dtype=qint8):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._packed_params = LinearPackedParams(dtype)
        w = _q.quantize_per_tensor(_make(np.zeros((out_features, in_features), np.float32)),
                                   1.0, 0, qint8)
        self._packed_params.set_weight_bias(
            w, _make(np.zeros(out_features, np.float32)) if bias_ else None)
        self._set_out(1.0, 0)

    def weight(self):
        return self._packed_params._weight_bias[0]

    def bias(self):
        return self._packed_params._weight_bias[1]

    def set_weight_bias(self, w, b):
        self._packed_params.set_weight_bias(w, b)

    def forward(self, x):
        _need_quantized(x, self._NAME)
        xp = _backend.xp_of(x._data)
        pack = self._packed_params.pack
        lead = x._data.shape[:-1]
        flat = _qtensor(x._data.reshape(-1, x._data.shape[-1]), x._qdtype, x._qscheme,
                        x._scale, x._zp)
        acc = _linear_acc(xp, flat, pack)
        b = self.bias()
        q = _q.requantize(xp, acc, xp.float32(x._scale) * pack.scales,
                          None if b is None else b._data.astype(xp.float32), self.scale,
                          self.zero_point, x._qdtype, self._RELU)
        return _qtensor(q.reshape(*lead, -1), x._qdtype, _q.per_tensor_affine, self.scale,
                        self.zero_point)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        float_mod, wobs = cls._observed(mod)
        if wobs.dtype is not qint8:
            raise AssertionError("Weight observer must have dtype torch.qint8")
        weight, b = cls._qat_weight_bias(mod, float_mod, use_precomputed_fake_quant)
        wq = quantize_weight(weight, wobs)
        q = cls(float_mod.in_features, float_mod.out_features, dtype=wobs.dtype)
        q.set_weight_bias(wq, None if b is None else b.detach().float())
        q._set_out(*_output_qparams(mod))
        return q

    def extra_repr(self):
        w = self.weight()
        scheme = w.qscheme()
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scale={self.scale}, zero_point={self.zero_point}, qscheme={scheme}")


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _ConvNd(_QuantizedWeighted):
    """Quantized convolution: columns of the shifted quantized input times the int8 weight,
    exactly (``int_matmul``), requantized as Linear."""

    _ND = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        n = self._ND
        if padding_mode != "zeros":
            raise NotImplementedError("Only 'zeros' padding_mode is supported by quantized "
                                      "convolution")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.padding = _tuple(stride, n), _tuple(padding, n)
        self.dilation, self.groups = _tuple(dilation, n), groups
        self.padding_mode = padding_mode
        w = _q.quantize_per_tensor(_make(np.zeros((out_channels, in_channels // groups) +
                                                  self.kernel_size, np.float32)), 1.0, 0, qint8)
        self.set_weight_bias(w, _make(np.zeros(out_channels, np.float32)) if bias else None)
        self._set_out(1.0, 0)

    def set_weight_bias(self, w, b):
        # the int8 weight stored channels-last (a view keeps PyTorch's (O, C, *k) shape), so
        # the packs below view it instead of copying it
        xp = _backend.xp_of(w._data)
        w = w._like(xp.moveaxis(xp.ascontiguousarray(xp.moveaxis(w._data, 1, -1)), -1, 1))
        self._weight, self._bias = w, b
        self._packs = []
        g = self.groups
        og = w._data.shape[0] // g
        for i in range(g):
            part = w._data[i * og:(i + 1) * og]
            if w._axis is None:
                sub = _qtensor(part, w._qdtype, w._qscheme, w._scale, w._zp)
            else:
                sub = _qtensor(part, w._qdtype, w._qscheme, w._scale[i * og:(i + 1) * og],
                               w._zp[i * og:(i + 1) * og], 0)
            self._packs.append(_WeightPack(sub, channels_last=True))
        self._scales = np.concatenate([p.scales for p in self._packs])

    def weight(self):
        return self._weight

    def bias(self):
        return self._bias

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # PyTorch's order: weight, bias, then the output scale and zero point
        destination[prefix + "weight"] = self._weight
        destination[prefix + "bias"] = self._bias
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self.set_weight_bias(state_dict.pop(prefix + "weight"), state_dict.pop(prefix + "bias"))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, input):
        name = f"quantized::conv{self._ND}d" + ("_relu" if self._RELU else "")
        _need_quantized(input, name)
        if input._data.ndim != self._ND + 2:
            raise ValueError(f"Input shape must be `(N, C, {', '.join('HW'[-self._ND:])})`!"
                             if self._ND == 2 else f"Input shape must be {self._ND + 2}-D")
        xp = _backend.xp_of(input._data)
        # channels last, as fbgemm: a previous quantized conv's output is already laid out so.
        # The input's zero point is taken off either before the GEMM (two passes over the
        # input: cast, subtract) or after it (sum_k (a - za) w = sum_k a w - za * colsum(w):
        # the raw integers, padded with za, are cast to float32 as im2col copies them, then
        # one pass over the output), whichever touches fewer values; every term is an integer
        # float32 holds exactly within int_matmul's block (|a| <= 255 as |a - za|)
        x = xp.moveaxis(input._data, 1, -1)
        za = input._zp
        n_out = x.shape[0] * self.out_channels
        for s, k, st, p, d in zip(x.shape[1:-1], self.kernel_size, self.stride, self.padding,
                                  self.dilation):
            n_out *= (s + 2 * p - d * (k - 1) - 1) // st + 1
        shift_first = za and 2 * x.size < n_out
        if shift_first:
            x = x.astype(xp.float32)
            x -= xp.float32(za)
            amax = max(abs(za - lo) for lo in _q.q_range(input._qdtype))
        else:
            amax = max(abs(lo) for lo in _q.q_range(input._qdtype))
        fill = 0 if shift_first else za
        g = self.groups
        cg = x.shape[-1] // g
        outs = []
        for i, pack in enumerate(self._packs):
            part = x if g == 1 else x[..., i * cg:(i + 1) * cg]
            cols, osz = _q.im2col(xp, part, self.kernel_size, self.stride, self.padding,
                                  self.dilation, fill=fill, dtype=xp.float32)
            acc = _q.int_matmul(xp, cols, pack.wt(xp), amax, pack.wmax)
            if fill:
                acc -= acc.dtype.type(za) * pack.colsum.astype(acc.dtype)
            outs.append(acc)
        acc = outs[0] if g == 1 else xp.concatenate(outs, axis=-1)
        b = self._bias
        q = _q.requantize(xp, acc, xp.float32(input._scale) * self._scales,
                          None if b is None else b._data.astype(xp.float32), self.scale,
                          self.zero_point, input._qdtype, self._RELU)
        # (N, *out, O) viewed as (N, O, *out): PyTorch's quantized conv output is channels-last
        q = xp.moveaxis(q, -1, 1)
        return _qtensor(q, input._qdtype, _q.per_tensor_affine, self.scale, self.zero_point)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        float_mod, wobs = cls._observed(mod)
        weight, bias = cls._qat_weight_bias(mod, float_mod, use_precomputed_fake_quant)
        wq = quantize_weight(weight, wobs)
        c = float_mod
        q = cls(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                c.groups, bias is not None, c.padding_mode)
        q.set_weight_bias(wq, None if bias is None else bias.detach().float())
        q._set_out(*_output_qparams(mod))
        return q

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, scale={self.scale}, zero_point={self.zero_point}")
        if any(self.padding):
            s += f", padding={self.padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self._bias is None:
            s += ", bias=False"
        return s


class Conv1d(_ConvNd):
    """``torch.ao.nn.quantized.Conv1d``."""
    _ND = 1


class Conv2d(_ConvNd):
    """``torch.ao.nn.quantized.Conv2d``."""
    _ND = 2


class Conv3d(_ConvNd):
    """``torch.ao.nn.quantized.Conv3d``."""
    _ND = 3


class _BatchNorm(Module):
    """Quantized batch norm: normalise the dequantized values, requantize to the output's
    scale and zero point."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, device=None, dtype=None):
        super().__init__()
        from ....nn.modules.batchnorm import BatchNorm2d as _F
        self._float = _F(num_features, eps, momentum)
        self._float.eval()
        self.num_features, self.eps = num_features, eps
        self.scale, self.zero_point = 1.0, 0

    def forward(self, input):
        _need_quantized(input, "quantized::batch_norm2d")
        y = self._float(input.dequantize())
        return _q.quantize_per_tensor(y, self.scale, self.zero_point, input._qdtype)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        float_mod = mod[0] if _is_fused(mod) else mod
        q = cls(float_mod.num_features, float_mod.eps)
        q._float.load_state_dict(float_mod.state_dict())
        q.scale, q.zero_point = _output_qparams(mod)
        return q


class BatchNorm2d(_BatchNorm):
    """``torch.ao.nn.quantized.BatchNorm2d``."""


class BatchNorm3d(_BatchNorm):
    """``torch.ao.nn.quantized.BatchNorm3d``."""


class ReLU6(Module):
    """``min(max(x, 0), 6)`` on a quantized tensor: clamp between the zero point and q(6)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        _need_quantized(input, "quantized::relu6")
        xp = _backend.xp_of(input._data)
        lo, hi = _q.q_range(input._qdtype)
        six = min(hi, input._zp + int(round(6.0 / input._scale)))
        return input._like(xp.clip(input._data, input._zp, six).astype(input._data.dtype))

    @staticmethod
    def from_float(mod, use_precomputed_fake_quant=False):
        return ReLU6(mod.inplace)


class FloatFunctional(Module):
    """Float ``add``/``mul``/``cat``/``add_relu`` as a module, so an observer can watch their
    output; ``convert`` turns it into ``QFunctional``."""

    def __init__(self):
        super().__init__()
        from ....nn.modules.linear import Identity
        self.activation_post_process = Identity()

    def forward(self, x):
        raise RuntimeError("FloatFunctional is not intended to use the 'forward'. Please use "
                           "the underlying operation")

    def add(self, x, y):
        return self.activation_post_process(x + y)

    def add_scalar(self, x, y):
        return x + y  # not observed: the output qparams follow the input's (PyTorch's)

    def mul(self, x, y):
        return self.activation_post_process(x * y)

    def mul_scalar(self, x, y):
        return x * y

    def cat(self, x, dim=0):
        from ....ops.movement import cat
        return self.activation_post_process(cat(x, dim))

    def add_relu(self, x, y):
        from ....ops.activation import relu
        return self.activation_post_process(relu(x + y))

    def matmul(self, x, y):
        return self.activation_post_process(x @ y)


FXFloatFunctional = FloatFunctional


class QFunctional(Module):
    """The quantized twin of ``FloatFunctional``: each op dequantizes, computes in float32
    and quantizes to this module's ``scale``/``zero_point``."""

    def __init__(self):
        super().__init__()
        self.scale, self.zero_point = 1.0, 0
        from ....nn.modules.linear import Identity
        self.activation_post_process = Identity()

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "scale"] = _make(np.array(self.scale, np.float64))
        destination[prefix + "zero_point"] = _make(np.array(self.zero_point, np.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args):
        self.scale = float(state_dict.pop(prefix + "scale")._data)
        self.zero_point = int(state_dict.pop(prefix + "zero_point")._data)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, x):
        raise RuntimeError("Functional is not intended to use the 'forward'. Please use the "
                           "underlying operation")

    def _out(self, y, like):
        return _q.quantize_per_tensor(y, self.scale, self.zero_point, like._qdtype)

    def add(self, x, y):
        _need_quantized(x, "quantized::add")
        return self._out(x.dequantize() + y.dequantize(), x)

    def add_scalar(self, x, y):
        """``x + y``: the zero point moves by ``round(y / scale)`` and the integers stay,
        unless that leaves the range (then the scale widens), as PyTorch's qadd_scalar."""
        _need_quantized(x, "quantized::add_scalar")
        qmin, qmax = _q.q_range(x._qdtype)
        s, z = x._scale, x._zp
        zc = z - int(round(y / s))
        if qmin <= zc <= qmax:
            return _qtensor(x._data, x._qdtype, x._qscheme, s, zc)
        if zc < qmin:
            s2, z2 = (qmax - zc) / (qmax - qmin) * s, qmin
        else:
            s2, z2 = (zc - qmin) / (qmax - qmin) * s, qmax
        return _q.quantize_per_tensor(x.dequantize() + y, s2, z2, x._qdtype)

    def mul(self, x, y):
        _need_quantized(x, "quantized::mul")
        return self._out(x.dequantize() * y.dequantize(), x)

    def mul_scalar(self, x, y):
        """``x * y``: the scale becomes ``scale * |y|``; a negative ``y`` mirrors the integers
        and the zero point in the range (PyTorch's qmul_scalar)."""
        _need_quantized(x, "quantized::mul_scalar")
        if y >= 0:
            return _qtensor(x._data, x._qdtype, x._qscheme, x._scale * y, x._zp)
        qmin, qmax = _q.q_range(x._qdtype)
        data = (qmax + qmin - x._data.astype("int64")).astype(x._data.dtype)
        return _qtensor(data, x._qdtype, x._qscheme, x._scale * -y, qmax + qmin - x._zp)

    def cat(self, x, dim=0):
        from ....ops.movement import cat
        _need_quantized(x[0], "quantized::cat")
        return self._out(cat([t.dequantize() for t in x], dim), x[0])

    def add_relu(self, x, y):
        from ....ops.activation import relu
        _need_quantized(x, "quantized::add_relu")
        return self._out(relu(x.dequantize() + y.dequantize()), x)

    def matmul(self, x, y):
        _need_quantized(x, "quantized::matmul")
        return self._out(x.dequantize() @ y.dequantize(), x)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        q = QFunctional()
        q.scale, q.zero_point = _output_qparams(mod)
        return q
