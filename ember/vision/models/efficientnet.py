"""EfficientNet-B0 (Tan & Le, "Rethinking Model Scaling for CNNs"), torchvision's layout."""
from __future__ import annotations

import math
from functools import partial

import ember
from ember import nn
from ember._tensor import Tensor

from ..ops.misc import Conv2dNormActivation, SqueezeExcitation
from ..ops.stochastic_depth import StochasticDepth
from ..transforms._presets import ImageClassification
from ..transforms.functional import InterpolationMode
from ._api import Weights, WeightsEnum, register_model
from ._utils import (_init_conv_net, _make_divisible, _ovewrite_named_param,
                     handle_legacy_interface, load_weights, weights_meta)

__all__ = ["EfficientNet", "EfficientNet_B0_Weights", "efficientnet_b0"]


class MBConvConfig:
    """One stage: expansion, kernel, first stride, channels in/out and block count, scaled by
    the width and depth multipliers."""

    def __init__(self, expand_ratio: float, kernel: int, stride: int, input_channels: int,
                 out_channels: int, num_layers: int, width_mult: float = 1.0,
                 depth_mult: float = 1.0) -> None:
        self.expand_ratio = expand_ratio
        self.kernel = kernel
        self.stride = stride
        self.input_channels = _make_divisible(input_channels * width_mult, 8)
        self.out_channels = _make_divisible(out_channels * width_mult, 8)
        self.num_layers = int(math.ceil(num_layers * depth_mult))
        self.block = MBConv

    @staticmethod
    def adjust_channels(channels: int, width_mult: float) -> int:
        return _make_divisible(channels * width_mult, 8)


class MBConv(nn.Module):
    """1x1 expand (SiLU), depthwise kxk (SiLU), squeeze-excitation, 1x1 project; a residual
    with stochastic depth when the shape is kept."""

    def __init__(self, cnf: MBConvConfig, stochastic_depth_prob: float, norm_layer,
                 se_layer=SqueezeExcitation) -> None:
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        expanded = _make_divisible(cnf.input_channels * cnf.expand_ratio, 8)
        layers = []
        if expanded != cnf.input_channels:
            layers.append(Conv2dNormActivation(cnf.input_channels, expanded, kernel_size=1,
                                               norm_layer=norm_layer, activation_layer=nn.SiLU))
        layers.append(Conv2dNormActivation(expanded, expanded, kernel_size=cnf.kernel,
                                           stride=cnf.stride, groups=expanded,
                                           norm_layer=norm_layer, activation_layer=nn.SiLU))
        squeeze = max(1, cnf.input_channels // 4)
        layers.append(se_layer(expanded, squeeze, activation=partial(nn.SiLU, inplace=True)))
        layers.append(Conv2dNormActivation(expanded, cnf.out_channels, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(nn.Module):
    """Stem conv, MBConv stages (stochastic depth rising linearly over the blocks), 1x1 conv
    to 4x the last width, pool, dropout + linear."""

    def __init__(self, inverted_residual_setting: list[MBConvConfig], dropout: float,
                 stochastic_depth_prob: float = 0.2, num_classes: int = 1000, norm_layer=None,
                 last_channel: int | None = None) -> None:
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("The inverted_residual_setting should not be empty")
        norm_layer = norm_layer or nn.BatchNorm2d
        first = inverted_residual_setting[0].input_channels
        layers = [Conv2dNormActivation(3, first, kernel_size=3, stride=2, norm_layer=norm_layer,
                                       activation_layer=nn.SiLU)]
        total = sum(cnf.num_layers for cnf in inverted_residual_setting)
        block_id = 0
        for cnf in inverted_residual_setting:
            stage = []
            for i in range(cnf.num_layers):
                c = MBConvConfig(cnf.expand_ratio, cnf.kernel, cnf.stride if i == 0 else 1,
                                 cnf.out_channels if i else cnf.input_channels,
                                 cnf.out_channels, cnf.num_layers)
                stage.append(cnf.block(c, stochastic_depth_prob * block_id / total,
                                       norm_layer))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_in = inverted_residual_setting[-1].out_channels
        last_out = last_channel if last_channel is not None else 4 * last_in
        layers.append(Conv2dNormActivation(last_in, last_out, kernel_size=1,
                                           norm_layer=norm_layer, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True),
                                        nn.Linear(last_out, num_classes))
        def uniform_by_fan_out(w):  # the classifier: uniform in +-1/sqrt(out_features)
            bound = 1.0 / math.sqrt(w.shape[0])
            nn.init.uniform_(w, -bound, bound)
        _init_conv_net(self, uniform_by_fan_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(ember.flatten(self.avgpool(self.features(x)), 1))


def _b0_config(width_mult: float = 1.0, depth_mult: float = 1.0) -> list[MBConvConfig]:
    conf = partial(MBConvConfig, width_mult=width_mult, depth_mult=depth_mult)
    return [conf(1, 3, 1, 32, 16, 1), conf(6, 3, 2, 16, 24, 2), conf(6, 5, 2, 24, 40, 2),
            conf(6, 3, 2, 40, 80, 3), conf(6, 5, 1, 80, 112, 3), conf(6, 5, 2, 112, 192, 4),
            conf(6, 3, 1, 192, 320, 1)]


class EfficientNet_B0_Weights(WeightsEnum):
    IMAGENET1K_V1 = Weights(
        "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        partial(ImageClassification, crop_size=224, resize_size=256,
                interpolation=InterpolationMode.BICUBIC),
        weights_meta(5288548, (1, 1), _metrics={"ImageNet-1K": {"acc@1": 77.692,
                                                                 "acc@5": 93.532}}))
    DEFAULT = IMAGENET1K_V1


@register_model()
@handle_legacy_interface(EfficientNet_B0_Weights)
def efficientnet_b0(*, weights=None, progress: bool = True, **kwargs) -> EfficientNet:
    """EfficientNet-B0 (dropout 0.2, stochastic depth 0.2)."""
    weights = EfficientNet_B0_Weights.verify(weights)
    if weights is not None:
        _ovewrite_named_param(kwargs, "num_classes", weights.meta["num_classes"])
    model = EfficientNet(_b0_config(), kwargs.pop("dropout", 0.2), **kwargs)
    return load_weights(model, weights, progress)
