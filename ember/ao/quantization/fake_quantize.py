"""``FakeQuantize``: an observer plus fake quantization for quantization-aware training
(``torch.ao.quantization.fake_quantize``)."""
from __future__ import annotations

import numpy as np

from ..._dtype import qint8, quint8, quint4x2
from ...nn.modules.module import Module
from ...ops import quantized as _q
from ...ops.quantized import (per_channel_affine, per_channel_symmetric, per_tensor_affine,
                              per_tensor_symmetric, per_channel_affine_float_qparams)
from .observer import (MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver,
                       FixedQParamsObserver, default_fixed_qparams_range_0to1_observer,
                       default_fixed_qparams_range_neg1to1_observer, _with_args, _t)

__all__ = ["FakeQuantizeBase", "FakeQuantize", "FusedMovingAvgObsFakeQuantize",
           "default_fake_quant", "default_weight_fake_quant",
           "default_per_channel_weight_fake_quant", "default_fused_act_fake_quant",
           "default_fused_wt_fake_quant", "default_fused_per_channel_wt_fake_quant",
           "disable_fake_quant", "enable_fake_quant", "disable_observer", "enable_observer",
           "FixedQParamsFakeQuantize", "default_fixed_qparams_range_0to1_fake_quant",
           "default_fixed_qparams_range_neg1to1_fake_quant",
           "default_affine_fixed_qparams_fake_quant",
           "default_symmetric_fixed_qparams_fake_quant", "default_embedding_fake_quant",
           "default_embedding_fake_quant_4bit"]


class FakeQuantizeBase(Module):
    """Fake-quant modules: switches for the observer and the fake quantization."""

    with_args = classmethod(_with_args)

    def __init__(self):
        super().__init__()
        self.register_buffer("fake_quant_enabled", _t(np.array([1], np.uint8)))
        self.register_buffer("observer_enabled", _t(np.array([1], np.uint8)))

    def enable_fake_quant(self, enabled: bool = True) -> None:
        self.fake_quant_enabled._data[0] = 1 if enabled else 0

    def disable_fake_quant(self):
        self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> None:
        self.observer_enabled._data[0] = 1 if enabled else 0

    def disable_observer(self):
        self.enable_observer(False)


class FakeQuantize(FakeQuantizeBase):
    """``(clamp(round(x / scale + zero_point), qmin, qmax) - zero_point) * scale`` with the
    scale and zero point of its observer, updated on every forward while observing."""

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None,
                 is_dynamic=False, **observer_kwargs):
        super().__init__()
        if quant_min is not None and quant_max is not None:
            if quant_min > quant_max:
                raise ValueError("quant_min must be less than or equal to quant_max")
            observer_kwargs.update(quant_min=quant_min, quant_max=quant_max)
        observer_kwargs["is_dynamic"] = is_dynamic
        self.activation_post_process = observer(**observer_kwargs)
        self.quant_min = self.activation_post_process.quant_min
        self.quant_max = self.activation_post_process.quant_max
        self.is_dynamic = is_dynamic
        self.register_buffer("scale", _t(np.array([1.0], np.float32)))
        self.qscheme = self.activation_post_process.qscheme
        # float-qparams schemes (embeddings) keep float zero points, as PyTorch's buffer does
        zp_dtype = np.float32 if self.qscheme is per_channel_affine_float_qparams else np.int32
        self.register_buffer("zero_point", _t(np.array([0], zp_dtype)))
        self.dtype = self.activation_post_process.dtype
        self.ch_axis = getattr(self.activation_post_process, "ch_axis", -1)
        self.is_per_channel = self.qscheme in (per_channel_affine, per_channel_symmetric,
                                               per_channel_affine_float_qparams)
        self.is_symmetric_quant = self.qscheme in (per_tensor_symmetric, per_channel_symmetric)

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def _forward_qparams(self):
        """The qparams the forward fake-quantizes with (the observer's)."""
        return self.calculate_qparams()

    def forward(self, X):
        if self.observer_enabled._data[0] == 1:
            self.activation_post_process(X.detach())
            s, z = self._forward_qparams()
            self.scale._data = s._data.astype(self.scale._data.dtype)
            self.zero_point._data = z._data.astype(self.zero_point._data.dtype)
        if self.fake_quant_enabled._data[0] == 1:
            if self.is_per_channel:
                X = _q.fake_quantize_per_channel_affine(X, self.scale, self.zero_point,
                                                        self.ch_axis, self.quant_min,
                                                        self.quant_max)
            else:
                X = _q.fake_quantize_per_tensor_affine(X, float(self.scale._data[0]),
                                                       int(self.zero_point._data[0]),
                                                       self.quant_min, self.quant_max)
        return X

    def extra_repr(self):
        return (f"fake_quant_enabled={self.fake_quant_enabled}, "
                f"observer_enabled={self.observer_enabled}, quant_min={self.quant_min}, "
                f"quant_max={self.quant_max}, dtype={self.dtype}, qscheme={self.qscheme}, "
                f"ch_axis={self.ch_axis}, scale={self.scale}, zero_point={self.zero_point}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("scale", "zero_point"):  # take the saved shape (per-channel sizes)
            v = state_dict.get(prefix + name)
            if v is not None:
                getattr(self, name)._data = v._data.copy()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class FusedMovingAvgObsFakeQuantize(FakeQuantize):
    """PyTorch's fused observer + fake-quant kernel (``fused_moving_avg_obs_fake_quant``),
    computed unfused: the forward's qparams come from fbgemm's ``ChooseQuantizationParams``
    on the observer's running min/max (symmetric schemes: ``max(|min| / 128, max / 127)``,
    not the observer's ``/ 127.5``); ``calculate_qparams``, which convert uses, stays the
    observer's, as PyTorch's."""

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                 **observer_kwargs):
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        # the fused kernel's switches are int64 (PyTorch re-registers them as torch.long)
        self.fake_quant_enabled._data = np.array([1], np.int64)
        self.observer_enabled._data = np.array([1], np.int64)

    def extra_repr(self):
        apo = self.activation_post_process
        return (f"fake_quant_enabled={self.fake_quant_enabled}, "
                f"observer_enabled={self.observer_enabled}, scale={self.scale}, "
                f"zero_point={self.zero_point}, dtype={self.dtype}, "
                f"quant_min={apo.quant_min}, quant_max={apo.quant_max}, "
                f"qscheme={self.qscheme}, reduce_range={apo.reduce_range}")

    def _forward_qparams(self):
        apo = self.activation_post_process
        lo = np.atleast_1d(apo.min_val._data.astype(np.float32))
        hi = np.atleast_1d(apo.max_val._data.astype(np.float32))
        sym = self.qscheme in (per_tensor_symmetric, per_channel_symmetric)
        pairs = [_q.choose_qparams(float(a), float(b), self.quant_min, self.quant_max, sym)
                 for a, b in zip(lo, hi)]
        return (_t(np.array([p[0] for p in pairs], np.float32)),
                _t(np.array([p[1] for p in pairs], np.int32)))


class FixedQParamsFakeQuantize(FakeQuantize):
    """Fake quantization with the fixed scale and zero point of its
    ``FixedQParamsObserver`` (what sigmoid and tanh outputs get in prepare and prepare_qat)."""

    def __init__(self, observer):
        super().__init__(observer=observer)
        if type(self.activation_post_process) is not FixedQParamsObserver:
            raise AssertionError(f"{self.__class__.__name__}'s observer must be a "
                                 f"{FixedQParamsObserver.__name__}")
        self._observer_ctr = observer
        self.scale = self.activation_post_process.scale
        self.zero_point = self.activation_post_process.zero_point
        if self.qscheme not in (per_tensor_affine, per_tensor_symmetric):
            raise AssertionError("Only per tensor quantization is supported "
                                 "FixedQParamsFakeQuantize module, got qscheme:"
                                 f"{self.qscheme}")

    def calculate_qparams(self):
        return self.scale, self.zero_point

    def extra_repr(self):
        apo = self.activation_post_process
        return (f"fake_quant_enabled={self.fake_quant_enabled}, "
                f"observer_enabled={self.observer_enabled}, scale={self.scale}, "
                f"zero_point={self.zero_point}, dtype={self.dtype}, "
                f"quant_min={apo.quant_min}, quant_max={apo.quant_max}, "
                f"qscheme={self.qscheme}")


default_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8,
    qscheme=per_tensor_affine, reduce_range=True)
default_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric, reduce_range=False)
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_channel_symmetric, reduce_range=False, ch_axis=0)
default_fused_act_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=quint8)
default_fused_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=qint8,
    qscheme=per_tensor_symmetric)
default_fused_per_channel_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=qint8, qscheme=per_channel_symmetric)
# QAT embeddings: per-row float scale and zero point, the observer takes each batch's rows
# whole (averaging_constant=1)
default_embedding_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, qscheme=per_channel_affine_float_qparams,
    dtype=quint8, quant_min=0, quant_max=255, ch_axis=0, averaging_constant=1)
default_embedding_fake_quant_4bit = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, qscheme=per_channel_affine_float_qparams,
    ch_axis=0, dtype=quint4x2, averaging_constant=1)

default_fixed_qparams_range_0to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_0to1_observer)
default_fixed_qparams_range_neg1to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_neg1to1_observer)
default_affine_fixed_qparams_fake_quant = default_fixed_qparams_range_0to1_fake_quant
default_symmetric_fixed_qparams_fake_quant = default_fixed_qparams_range_neg1to1_fake_quant


def _each_fq(mod, method):
    if isinstance(mod, FakeQuantizeBase):
        getattr(mod, method)()


def disable_fake_quant(mod):
    """``model.apply(disable_fake_quant)``: fake-quant modules pass values through."""
    _each_fq(mod, "disable_fake_quant")


def enable_fake_quant(mod):
    _each_fq(mod, "enable_fake_quant")


def disable_observer(mod):
    """``model.apply(disable_observer)``: freeze the scales and zero points."""
    _each_fq(mod, "disable_observer")


def enable_observer(mod):
    _each_fq(mod, "enable_observer")
