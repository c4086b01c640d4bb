"""Quantized fused modules (``torch.ao.nn.intrinsic.quantized``): the quantized kernel with
the ReLU applied as a clamp at the output zero point."""
from __future__ import annotations

from ...quantized import modules as _m

__all__ = ["LinearReLU", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "BNReLU2d", "BNReLU3d"]


class LinearReLU(_m.Linear):
    """``relu(linear(x))`` in one quantized kernel."""
    _RELU = True
    _NAME = "quantized::linear_relu"


class ConvReLU1d(_m.Conv1d):
    _RELU = True


class ConvReLU2d(_m.Conv2d):
    """``relu(conv2d(x))`` in one quantized kernel."""
    _RELU = True


class ConvReLU3d(_m.Conv3d):
    _RELU = True


class BNReLU2d(_m.BatchNorm2d):
    """Quantized batch norm followed by relu (a clamp at the zero point)."""

    def forward(self, input):
        from .....ops.activation import relu
        return relu(super().forward(input))


class BNReLU3d(BNReLU2d):
    pass
