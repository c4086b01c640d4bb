"""``QConfig``: which observer (or fake-quant) makes a module's activation and weight qparams,
and the default configurations per backend (``torch.ao.quantization.qconfig``)."""
from __future__ import annotations

from collections import namedtuple

from ..._dtype import qint8, float32 as _f32
from ...ops.quantized import per_channel_symmetric, per_tensor_symmetric
from . import observer as _o
from .fake_quantize import (FakeQuantize, FusedMovingAvgObsFakeQuantize, default_fake_quant,
                            default_weight_fake_quant, default_embedding_fake_quant,
                            default_embedding_fake_quant_4bit)

__all__ = ["QConfig", "QConfigDynamic", "default_qconfig", "default_qat_qconfig",
           "default_dynamic_qconfig", "per_channel_dynamic_qconfig",
           "default_per_channel_qconfig", "float_qparams_weight_only_qconfig",
           "float_qparams_weight_only_qconfig_4bit",
           "default_embedding_qat_qconfig", "default_embedding_qat_qconfig_4bit",
           "get_default_qconfig", "get_default_qat_qconfig", "qconfig_equals"]


class QConfig(namedtuple("QConfig", ["activation", "weight"])):
    """Observer (or fake-quant) constructors for activations and weights; pass classes or
    ``with_args`` factories, not instances."""

    __slots__ = ()

    def __new__(cls, activation, weight):
        from ...nn.modules.module import Module
        if isinstance(activation, Module) or isinstance(weight, Module):
            raise ValueError("QConfig received observer instance, please pass observer class "
                             "instead. Use MyObserver.with_args(x=1) to override arguments to "
                             "constructor if needed")
        return super().__new__(cls, activation, weight)


QConfigDynamic = QConfig

default_qconfig = QConfig(activation=_o.default_observer, weight=_o.default_weight_observer)
default_per_channel_qconfig = QConfig(activation=_o.default_observer,
                                      weight=_o.default_per_channel_weight_observer)
default_dynamic_qconfig = QConfig(activation=_o.default_dynamic_quant_observer,
                                  weight=_o.default_weight_observer)
per_channel_dynamic_qconfig = QConfig(activation=_o.default_dynamic_quant_observer,
                                      weight=_o.default_per_channel_weight_observer)
float_qparams_weight_only_qconfig = QConfig(activation=_o.default_placeholder_observer,
                                            weight=_o.default_float_qparams_observer)
float_qparams_weight_only_qconfig_4bit = QConfig(activation=_o.default_placeholder_observer,
                                                 weight=_o.default_float_qparams_observer_4bit)
default_qat_qconfig = QConfig(activation=default_fake_quant, weight=default_weight_fake_quant)
# QAT embeddings: float outputs (a no-op activation observer), float-qparams rows
default_embedding_qat_qconfig = QConfig(activation=_o.NoopObserver.with_args(dtype=_f32),
                                        weight=default_embedding_fake_quant)
default_embedding_qat_qconfig_4bit = QConfig(activation=_o.NoopObserver.with_args(dtype=_f32),
                                             weight=default_embedding_fake_quant_4bit)

_BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")


def get_default_qconfig(backend="x86", version=0) -> QConfig:
    """Post-training static quantization's default for ``backend``: a histogram observer on
    activations (reduced range on x86/fbgemm, whose kernels saturate 16-bit sums) and
    symmetric int8 weights, per channel on x86/fbgemm."""
    if backend not in _BACKENDS:
        raise AssertionError(f"backend: {backend} not supported. backend must be one of "
                             f"{list(_BACKENDS)}")
    if version != 0:
        raise AssertionError(f"Version number: {version} in get_default_qconfig is not "
                             "supported. Version number must be 0")
    if backend in ("x86", "fbgemm"):
        return QConfig(activation=_o.HistogramObserver.with_args(reduce_range=True),
                       weight=_o.default_per_channel_weight_observer)
    if backend == "qnnpack":
        return QConfig(activation=_o.HistogramObserver.with_args(reduce_range=False),
                       weight=_o.default_weight_observer)
    return QConfig(activation=_o.HistogramObserver.with_args(reduce_range=False),
                   weight=_o.default_per_channel_weight_observer)


def get_default_qat_qconfig(backend="x86", version=1) -> QConfig:
    """Quantization-aware training's default for ``backend`` (moving-average observers)."""
    if backend not in _BACKENDS:
        raise AssertionError(f"backend: {backend} not supported. backend must be one of "
                             f"{list(_BACKENDS)}")
    reduce = backend in ("x86", "fbgemm")
    fq = FakeQuantize if version == 0 else FusedMovingAvgObsFakeQuantize
    act = fq.with_args(observer=_o.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                       reduce_range=reduce)
    if backend == "qnnpack":
        w = fq.with_args(observer=_o.MovingAverageMinMaxObserver, quant_min=-128,
                         quant_max=127, dtype=qint8, qscheme=per_tensor_symmetric)
    else:
        w = fq.with_args(observer=_o.MovingAveragePerChannelMinMaxObserver, quant_min=-128,
                         quant_max=127, dtype=qint8, qscheme=per_channel_symmetric)
    return QConfig(activation=act, weight=w)


def qconfig_equals(q1, q2) -> bool:
    """Whether two qconfigs build the same observers."""
    return repr(q1) == repr(q2)
