"""QAT modules (``torch.ao.nn.qat``): float Linear/Conv whose weight passes its fake-quant
on every forward."""
from __future__ import annotations

from ....nn.modules.linear import Linear as _Linear
from ....nn.modules.conv import Conv1d as _Conv1d, Conv2d as _Conv2d, Conv3d as _Conv3d
from ....ops.layers import linear

__all__ = ["Linear", "Conv1d", "Conv2d", "Conv3d"]


def _need_qconfig(qconfig):
    if not qconfig:
        raise AssertionError("qconfig must be provided for QAT module")


class Linear(_Linear):
    """``linear(x, weight_fake_quant(W), b)``."""

    def __init__(self, in_features, out_features, bias=True, qconfig=None, device=None,
                 dtype=None):
        super().__init__(in_features, out_features, bias)
        _need_qconfig(qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input):
        return linear(input, self.weight_fake_quant(self.weight), self.bias)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        float_mod = mod[0] if hasattr(mod, "_modules") and "0" in mod._modules else mod
        q = cls(float_mod.in_features, float_mod.out_features, float_mod.bias is not None,
                qconfig=mod.qconfig)
        q.weight = float_mod.weight
        q.bias = float_mod.bias
        return q


class _ConvNd:
    """``convNd(x, weight_fake_quant(W), b)``: the float conv with its weight fake-quantized
    (mixed in before the float ConvNd class)."""

    def __init__(self, *args, qconfig=None, **kwargs):
        super().__init__(*args, **kwargs)
        _need_qconfig(qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input):
        return self._conv_forward(input, self.weight_fake_quant(self.weight), self.bias)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        c = mod[0] if hasattr(mod, "_modules") and "0" in mod._modules else mod
        q = cls(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride,
                padding=c.padding, dilation=c.dilation, groups=c.groups,
                bias=c.bias is not None, padding_mode=c.padding_mode, qconfig=mod.qconfig)
        q.weight = c.weight
        q.bias = c.bias
        return q


class Conv1d(_ConvNd, _Conv1d):
    """``torch.ao.nn.qat.Conv1d``."""


class Conv2d(_ConvNd, _Conv2d):
    """``torch.ao.nn.qat.Conv2d``."""


class Conv3d(_ConvNd, _Conv3d):
    """``torch.ao.nn.qat.Conv3d``."""
