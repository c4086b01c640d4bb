"""Fused modules for quantization-aware training (``torch.ao.nn.intrinsic.qat``): the float
computation with the weight fake-quantized; conv + bn simulates the BN folding that
``convert`` will do, as PyTorch's ``_ConvBnNd`` does.  As PyTorch's, each is the float
conv / linear itself (a subclass, and a ``_FusedModule``) with the children ``bn`` and
``weight_fake_quant``, so its state-dict keys are ``weight``, ``bias``, ``bn.*``,
``weight_fake_quant.*`` in PyTorch's order and checkpoints load either way."""
from __future__ import annotations

import math

from .....autograd.grad_mode import no_grad
from .....nn import init
from .....nn.modules.batchnorm import (BatchNorm1d as _BatchNorm1d,
                                       BatchNorm2d as _BatchNorm2d, BatchNorm3d as _BatchNorm3d)
from .....nn.modules.conv import Conv1d as _Conv1d, Conv2d as _Conv2d, Conv3d as _Conv3d
from .....nn.modules.linear import Linear as _Linear
from .....nn.parameter import Parameter
from ..... import _creation
from .....ops.activation import relu
from .....ops.layers import linear
from ... import intrinsic as _nni
from ...qat import (Linear as _QATLinear, Conv1d as _QATConv1d, Conv2d as _QATConv2d,
                   Conv3d as _QATConv3d, _need_qconfig)

__all__ = ["LinearReLU", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "ConvBn1d", "ConvBn2d",
           "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d", "LinearBn1d",
           "freeze_bn_stats", "update_bn_stats"]


class LinearReLU(_QATLinear, _nni._FusedModule):
    """QAT ``relu(linear(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU1d(_QATConv1d, _nni._FusedModule):
    """QAT ``relu(conv1d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU2d(_QATConv2d, _nni._FusedModule):
    """QAT ``relu(conv2d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


class ConvReLU3d(_QATConv3d, _nni._FusedModule):
    """QAT ``relu(conv3d(x))``."""

    def forward(self, input):
        return relu(super().forward(input))


_BN = {1: _BatchNorm1d, 2: _BatchNorm2d, 3: _BatchNorm3d}
# ConvBn*d's version-1 state-dict names of its BN's entries
_V1_NAMES = {"bn.weight": "gamma", "bn.bias": "beta", "bn.running_mean": "running_mean",
             "bn.running_var": "running_var", "bn.num_batches_tracked": "num_batches_tracked"}


class _ConvBnNd:
    """Conv + BatchNorm for QAT, a float ``ConvNd`` holding its BN as the child ``bn``
    (PyTorch's ``_ConvBnNd``, so the state-dict keys are ``weight``, ``bias``, ``bn.*``,
    ``weight_fake_quant.*``).  The conv runs with the weight scaled by ``gamma / std`` and
    fake-quantized, its output is un-scaled and batch-normalised, so training sees the
    quantization of the weight ``convert`` will fold.  Mixed in before the float ConvNd."""

    _version = 2
    _RELU = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=None, padding_mode="zeros", eps=1e-05,
                 momentum=0.1, freeze_bn=False, qconfig=None):
        # the conv's own bias slot stays first in _parameters; it is filled after bn and the
        # fake quant exist, as PyTorch does, so the key order matches
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, dilation=dilation, groups=groups, bias=False,
                         padding_mode=padding_mode)
        self._add_bn(_BN[self._nd](out_channels, eps, momentum, True, True), qconfig, bias,
                     freeze_bn)
        self._enable_slow_path_for_better_numerical_stability = False

    def _add_bn(self, bn, qconfig, bias: bool, freeze_bn: bool) -> None:
        """The child ``bn``, the weight's fake quant and a fresh bias, as PyTorch's
        ``_ConvBnNd.__init__`` (and ``LinearBn1d``'s) set them up."""
        _need_qconfig(qconfig)
        self.qconfig = qconfig
        self.freeze_bn = freeze_bn if self.training else True
        self.bn = bn
        self.weight_fake_quant = qconfig.weight()
        if bias:
            self.bias = Parameter(_creation.empty(bn.num_features))
        else:
            self.register_parameter("bias", None)
        self.reset_bn_parameters()
        if self.training and not freeze_bn:
            self.update_bn_stats()
        else:
            self.freeze_bn_stats()

    def reset_running_stats(self):
        self.bn.reset_running_stats()

    def reset_bn_parameters(self):
        """PyTorch's: fresh running statistics, ``gamma ~ U(0, 1)``, ``beta = 0``, the conv
        bias ``U(±1/sqrt(fan_in))``."""
        self.bn.reset_running_stats()
        init.uniform_(self.bn.weight)
        init.zeros_(self.bn.bias)
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def update_bn_stats(self):
        self.freeze_bn = False
        self.bn.training = True
        return self

    def freeze_bn_stats(self):
        self.freeze_bn = True
        self.bn.training = False
        return self

    def _bn_shapes(self):
        nd = self.weight.dim()
        return [-1] + [1] * (nd - 1), [1, -1] + [1] * (nd - 2)

    def _forward(self, input):
        if self._enable_slow_path_for_better_numerical_stability:
            return self._forward_slow(input)
        return self._forward_approximate(input)

    def _forward_approximate(self, input):
        """``bn(conv(x, fq(W * s)) / s + b)`` with ``s = gamma / sqrt(running_var + eps)``."""
        bn = self.bn
        if bn.running_var is None:
            raise AssertionError("self.bn.running_var must not be None")
        w_shape, b_shape = self._bn_shapes()
        scale_factor = bn.weight / (bn.running_var + bn.eps).sqrt()
        scaled_weight = self.weight_fake_quant(self.weight * scale_factor.reshape(w_shape))
        # the conv's bias is added after the un-scaling (a zero bias in PyTorch)
        y = self._conv_forward(input, scaled_weight, None) / scale_factor.reshape(b_shape)
        if self.bias is not None:
            y = y + self.bias.reshape(b_shape)
        return bn(y)

    def _forward_slow(self, input):
        """PyTorch's two-pass fusion (arXiv:1806.08342): the batch statistics of the
        float conv, the conv of the fake-quantized folded weight rescaled by
        ``running_std / batch_std``; handles ``gamma == 0``."""
        bn = self.bn
        w_shape, b_shape = self._bn_shapes()
        if bn.training:
            conv_out = self._conv_forward(input, self.weight, None)
            with no_grad():  # updates the running statistics only
                bn(conv_out if self.bias is None else conv_out + self.bias.reshape(b_shape))
            running_std = (bn.running_var + bn.eps).sqrt()
            scale_factor = bn.weight / running_std
            scaled_weight = self.weight_fake_quant(self.weight * scale_factor.reshape(w_shape))
            conv_bn = self._conv_forward(input, scaled_weight, None)
            dims = [0] + list(range(2, self.weight.dim()))
            batch_mean = conv_out.mean(dims)
            batch_var = ((conv_out - batch_mean.reshape(b_shape)) ** 2).mean(dims)
            batch_std = (batch_var + bn.eps).sqrt()
            conv_bn = conv_bn * (running_std / batch_std).reshape(b_shape)
            fused_mean, fused_std = batch_mean, batch_std
        else:
            running_std = (bn.running_var + bn.eps).sqrt()
            scale_factor = bn.weight / running_std
            scaled_weight = self.weight_fake_quant(self.weight * scale_factor.reshape(w_shape))
            conv_bn = self._conv_forward(input, scaled_weight, None)
            fused_mean = bn.running_mean - (self.bias if self.bias is not None else 0)
            fused_std = running_std
        fused_bias = bn.bias - bn.weight * fused_mean / fused_std
        conv_bn = conv_bn + fused_bias.reshape(b_shape)
        if self.bias is not None:  # keeps the conv bias in the graph, as PyTorch does
            conv_bn = conv_bn + (self.bias - self.bias).reshape(b_shape)
        return conv_bn

    def forward(self, input):
        y = self._forward(input)
        return relu(y) if self._RELU else y

    def train(self, mode=True):
        """A frozen BN keeps its eval mode through ``model.train()`` (PyTorch's)."""
        self.training = mode
        if not self.freeze_bn:
            for module in self.children():
                module.train(mode)
        return self

    def _folded_weight_bias(self):
        """The conv weight and bias with the BN's running statistics folded in."""
        return fold_conv_bn(self, self.bn)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Version-1 checkpoints (``gamma``, ``beta``, ``running_mean`` ... on the module
        itself) load as the ``bn.*`` keys of version 2, as PyTorch's."""
        if local_metadata.get("version", None) in (None, 1):
            for new, old in _V1_NAMES.items():
                if prefix + old in state_dict:
                    state_dict[prefix + new] = state_dict.pop(prefix + old)
                elif prefix + new not in state_dict and strict:
                    missing_keys.append(prefix + new)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        """The QAT module of a fused float ``nni.ConvBn*d``: it shares the float module's
        parameters and BN buffers."""
        _check_float(cls, mod)
        conv, bn = mod[0], mod[1]
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                conv.padding_mode, bn.eps, bn.momentum, False, mod.qconfig)
        q.weight = conv.weight
        q.bias = conv.bias
        _share_bn(q.bn, bn)
        return q

    def to_float(self):
        """The float conv with the BN folded in (``nni.ConvReLU*d`` with the ReLU)."""
        from .....nn.modules.activation import ReLU
        conv = _FLOAT_CONV[self._nd](self.in_channels, self.out_channels, self.kernel_size,
                                     self.stride, self.padding, self.dilation, self.groups,
                                     True, self.padding_mode)
        w, b = self._folded_weight_bias()
        conv.weight = Parameter(w)
        conv.bias = Parameter(b)
        if self._RELU:
            conv = getattr(_nni, f"ConvReLU{self._nd}d")(conv, ReLU())
        conv.train(self.training)
        return conv


def _check_float(cls, mod):
    """PyTorch's checks on the float module a QAT ``from_float`` takes."""
    if type(mod) is not cls._FLOAT_MODULE:
        raise AssertionError(f"qat.{cls.__name__}.from_float only works for "
                             f"{cls._FLOAT_MODULE.__name__}")
    if not hasattr(mod, "qconfig"):
        raise AssertionError("Input float module must have qconfig defined")
    if not mod.qconfig:
        raise AssertionError("Input float module must have a valid qconfig")


def _share_bn(dst, src):
    """``dst`` takes ``src``'s affine parameters and running statistics (the same tensors)."""
    dst.weight = src.weight
    dst.bias = src.bias
    dst.running_mean = src.running_mean
    dst.running_var = src.running_var
    dst.num_batches_tracked = src.num_batches_tracked


def fold_conv_bn(conv, bn):
    """``w * gamma / std`` and ``(b - mean) * gamma / std + beta``: a conv equal to conv
    followed by eval-mode BN (also a Linear followed by BatchNorm1d)."""
    with no_grad():
        std = (bn.running_var + bn.eps).sqrt()
        factor = (bn.weight if bn.weight is not None else 1.0) / std
        shape = [-1] + [1] * (conv.weight.dim() - 1)
        w = conv.weight * factor.reshape(shape)
        b = conv.bias if conv.bias is not None else bn.running_mean * 0
        b = (b - bn.running_mean) * factor + (bn.bias if bn.bias is not None else 0.0)
    return w.detach(), b.detach()


_FLOAT_CONV = {1: _Conv1d, 2: _Conv2d, 3: _Conv3d}


class ConvBn1d(_ConvBnNd, _Conv1d, _nni._FusedModule):
    """``torch.ao.nn.intrinsic.qat.ConvBn1d``."""
    _FLOAT_MODULE = _nni.ConvBn1d


class ConvBnReLU1d(ConvBn1d):
    """``torch.ao.nn.intrinsic.qat.ConvBnReLU1d``: ``relu(ConvBn1d(x))``."""
    _FLOAT_MODULE = _nni.ConvBnReLU1d
    _RELU = True


class ConvBn2d(_ConvBnNd, _Conv2d, _nni._FusedModule):
    """``torch.ao.nn.intrinsic.qat.ConvBn2d``."""
    _FLOAT_MODULE = _nni.ConvBn2d


class ConvBnReLU2d(ConvBn2d):
    """``torch.ao.nn.intrinsic.qat.ConvBnReLU2d``: ``relu(ConvBn2d(x))``."""
    _FLOAT_MODULE = _nni.ConvBnReLU2d
    _RELU = True


class ConvBn3d(_ConvBnNd, _Conv3d, _nni._FusedModule):
    """``torch.ao.nn.intrinsic.qat.ConvBn3d``."""
    _FLOAT_MODULE = _nni.ConvBn3d


class ConvBnReLU3d(ConvBn3d):
    """``torch.ao.nn.intrinsic.qat.ConvBnReLU3d``: ``relu(ConvBn3d(x))``."""
    _FLOAT_MODULE = _nni.ConvBnReLU3d
    _RELU = True


class LinearBn1d(_QATLinear, _nni._FusedModule):
    """``torch.ao.nn.intrinsic.qat.LinearBn1d``: Linear + BatchNorm1d for QAT, the weight
    scaled by ``gamma / std`` and fake-quantized, the output un-scaled, biased and
    batch-normalised (keys ``weight``, ``bias``, ``bn.*``, ``weight_fake_quant.*``)."""

    _FLOAT_MODULE = _nni.LinearBn1d

    def __init__(self, in_features, out_features, bias=True, eps=1e-05, momentum=0.1,
                 freeze_bn=False, qconfig=None):
        _Linear.__init__(self, in_features, out_features, bias)
        _ConvBnNd._add_bn(self, _BatchNorm1d(out_features, eps, momentum, True, True), qconfig,
                          bias, freeze_bn)

    reset_running_stats = _ConvBnNd.reset_running_stats
    update_bn_stats = _ConvBnNd.update_bn_stats
    freeze_bn_stats = _ConvBnNd.freeze_bn_stats
    train = _ConvBnNd.train
    _folded_weight_bias = _ConvBnNd._folded_weight_bias

    def reset_bn_parameters(self):
        """Fresh running statistics, ``gamma ~ U(0, 1)``, ``beta = 0`` (PyTorch's)."""
        self.bn.reset_running_stats()
        init.uniform_(self.bn.weight)
        init.zeros_(self.bn.bias)

    def forward(self, input):
        """``bn(linear(x, fq(W * s)) / s + b)`` with ``s = gamma / sqrt(running_var + eps)``."""
        bn = self.bn
        if bn.running_var is None:
            raise AssertionError("self.bn.running_var must not be None")
        scale_factor = bn.weight / (bn.running_var + bn.eps).sqrt()
        scaled_weight = self.weight_fake_quant(self.weight * scale_factor.reshape(-1, 1))
        y = linear(input, scaled_weight, None) / scale_factor.reshape(1, -1)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1)
        return bn(y)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        """The QAT module of a fused float ``nni.LinearBn1d`` (sharing its tensors)."""
        _check_float(cls, mod)
        lin, bn = mod[0], mod[1]
        q = cls(lin.in_features, lin.out_features, lin.bias is not None, bn.eps, bn.momentum,
                False, mod.qconfig)
        q.weight = lin.weight
        q.bias = lin.bias
        _share_bn(q.bn, bn)
        return q

    def to_float(self):
        """The float Linear with the BN folded in."""
        lin = _Linear(self.in_features, self.out_features)
        w, b = self._folded_weight_bias()
        lin.weight = Parameter(w)
        lin.bias = Parameter(b)
        lin.train(self.training)
        return lin


_CONV_BN_TYPES = (ConvBn1d, ConvBnReLU1d, ConvBn2d, ConvBnReLU2d, ConvBn3d, ConvBnReLU3d)


def freeze_bn_stats(mod):
    """``model.apply(freeze_bn_stats)``: stop updating the conv-bn running statistics (not
    ``LinearBn1d``'s, as PyTorch's; call its own ``freeze_bn_stats()``)."""
    if type(mod) in _CONV_BN_TYPES:
        mod.freeze_bn_stats()


def update_bn_stats(mod):
    """``model.apply(update_bn_stats)``: conv-bn running statistics update again."""
    if type(mod) in _CONV_BN_TYPES:
        mod.update_bn_stats()
