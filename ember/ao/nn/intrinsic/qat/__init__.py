"""Fused modules for quantization-aware training (``torch.ao.nn.intrinsic.qat``): the float
computation with the weight fake-quantized; conv + bn simulates the BN folding that
``convert`` will do, as PyTorch's ``_ConvBnNd`` does."""
from __future__ import annotations

from .....nn.modules.module import Module
from .....ops.conv import conv1d, conv2d, conv3d
from .....ops.activation import relu
from ...qat import (Linear as _QATLinear, Conv1d as _QATConv1d, Conv2d as _QATConv2d,
                   Conv3d as _QATConv3d)

__all__ = ["LinearReLU", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "ConvBn1d", "ConvBn2d",
           "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d", "freeze_bn_stats",
           "update_bn_stats"]


class LinearReLU(_QATLinear):
    """QAT ``relu(linear(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU1d(_QATConv1d):
    """QAT ``relu(conv1d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU2d(_QATConv2d):
    """QAT ``relu(conv2d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU3d(_QATConv3d):
    """QAT ``relu(conv3d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


_CONV = {1: conv1d, 2: conv2d, 3: conv3d}


class _ConvBn(Module):
    """Conv + BatchNorm for QAT: the conv runs with the weight scaled by ``gamma / std`` and
    fake-quantized, its output is un-scaled and batch-normalised, so training sees the
    quantization of the weight ``convert`` will fold."""

    _ND = 2
    _RELU = False

    def __init__(self, conv, bn, qconfig):
        super().__init__()
        self.conv, self.bn = conv, bn
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()
        self.freeze_bn = False
        for a in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                  "dilation", "groups", "padding_mode"):
            setattr(self, a, getattr(conv, a))

    @property
    def weight(self):
        return self.conv.weight

    @property
    def bias(self):
        return self.conv.bias

    def forward(self, input):
        c, bn = self.conv, self.bn
        std = (bn.running_var + bn.eps).sqrt()
        factor = bn.weight / std
        shape = [-1] + [1] * (c.weight.dim() - 1)
        w = self.weight_fake_quant(c.weight * factor.reshape(shape))
        y = _CONV[self._ND](input, w, None, c.stride, c.padding, c.dilation, c.groups)
        y = y / factor.reshape([1, -1] + [1] * self._ND)
        if c.bias is not None:
            y = y + c.bias.reshape([1, -1] + [1] * self._ND)
        y = bn(y)
        return relu(y) if self._RELU else y

    def _folded_weight_bias(self):
        """The conv weight and bias with the BN's running statistics folded in."""
        return fold_conv_bn(self.conv, self.bn)

    def train(self, mode=True):
        super().train(mode)
        if self.freeze_bn:
            self.bn.eval()
        return self

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        q = cls(mod[0], mod[1], mod.qconfig)
        return q


def fold_conv_bn(conv, bn):
    """``w * gamma / std`` and ``(b - mean) * gamma / std + beta``: a conv equal to conv
    followed by eval-mode BN."""
    from .....autograd.grad_mode import no_grad
    with no_grad():
        std = (bn.running_var + bn.eps).sqrt()
        factor = (bn.weight if bn.weight is not None else 1.0) / std
        shape = [-1] + [1] * (conv.weight.dim() - 1)
        w = conv.weight * factor.reshape(shape)
        b = conv.bias if conv.bias is not None else bn.running_mean * 0
        b = (b - bn.running_mean) * factor + (bn.bias if bn.bias is not None else 0.0)
    return w.detach(), b.detach()


class ConvBn2d(_ConvBn):
    """``torch.ao.nn.intrinsic.qat.ConvBn2d``."""


class ConvBnReLU2d(_ConvBn):
    """``torch.ao.nn.intrinsic.qat.ConvBnReLU2d``."""
    _RELU = True


class ConvBn1d(_ConvBn):
    _ND = 1


class ConvBnReLU1d(_ConvBn):
    _ND = 1
    _RELU = True


class ConvBn3d(_ConvBn):
    """``torch.ao.nn.intrinsic.qat.ConvBn3d``."""
    _ND = 3


class ConvBnReLU3d(_ConvBn):
    """``torch.ao.nn.intrinsic.qat.ConvBnReLU3d``."""
    _ND = 3
    _RELU = True


def freeze_bn_stats(mod):
    """``model.apply(freeze_bn_stats)``: stop updating the BN running statistics."""
    if isinstance(mod, _ConvBn):
        mod.freeze_bn = True
        mod.bn.eval()


def update_bn_stats(mod):
    if isinstance(mod, _ConvBn):
        mod.freeze_bn = False
        mod.bn.train(mod.training)

