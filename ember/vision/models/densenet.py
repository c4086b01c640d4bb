"""DenseNet-121/161/169/201 (Huang et al., "Densely Connected Convolutional Networks"),
torchvision's layout: each layer reads the concatenation of every earlier feature map."""
from __future__ import annotations

import re
from collections import OrderedDict
from functools import partial

import ember
import ember.nn.functional as F
from ember import nn
from ember._tensor import Tensor

from ..transforms._presets import ImageClassification
from ._api import Weights, WeightsEnum, register_model
from ._utils import _ovewrite_named_param, handle_legacy_interface, weights_meta

__all__ = ["DenseNet", "DenseNet121_Weights", "DenseNet161_Weights", "DenseNet169_Weights",
           "DenseNet201_Weights", "densenet121", "densenet161", "densenet169", "densenet201"]


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bottleneck of ``bn_size * growth_rate``) then BN-ReLU-3x3 conv."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float, memory_efficient: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def bn_function(self, inputs: list) -> Tensor:
        """The bottleneck over the concatenated earlier features."""
        return self.conv1(self.relu1(self.norm1(ember.cat(inputs, 1))))

    def any_requires_grad(self, inputs: list) -> bool:
        return any(t.requires_grad for t in inputs)

    def call_checkpoint_bottleneck(self, inputs: list) -> Tensor:
        """The bottleneck recomputed in backward instead of keeping the concatenation."""
        from ember.utils.checkpoint import checkpoint
        return checkpoint(lambda *xs: self.bn_function(list(xs)), *inputs,
                          use_reentrant=False)

    def forward(self, input) -> Tensor:
        prev_features = [input] if isinstance(input, Tensor) else input
        if self.memory_efficient and self.any_requires_grad(prev_features):
            bottleneck_output = self.call_checkpoint_bottleneck(prev_features)
        else:
            bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each adding ``growth_rate`` channels."""

    _version = 2

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int,
                 growth_rate: int, drop_rate: float, memory_efficient: bool = False) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate=growth_rate,
                                bn_size=bn_size, drop_rate=drop_rate,
                                memory_efficient=memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for _, layer in self.items():
            features.append(layer(features))
        return ember.cat(features, 1)


class _Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then a 2x2 average pool."""

    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1,
                              stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """A 7x7 stem, dense blocks joined by transitions, a final BN and a linear classifier."""

    def __init__(self, growth_rate: int = 32, block_config: tuple = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, drop_rate: float = 0,
                 num_classes: int = 1000, memory_efficient: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3,
                                bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers=num_layers, num_input_features=num_features,
                                bn_size=bn_size, growth_rate=growth_rate, drop_rate=drop_rate,
                                memory_efficient=memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_features, num_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features = num_features // 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(ember.flatten(out, 1))


# the published files name a layer's parts 'norm.1' (an old nn.Module naming); now 'norm1'
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\."
                         r"(?:weight|bias|running_mean|running_var))$")


def _load_state_dict(model: nn.Module, weights, progress: bool) -> None:
    state_dict = weights.get_state_dict(progress=progress, check_hash=True)
    for key in list(state_dict.keys()):
        res = _LEGACY_KEY.match(key)
        if res:
            state_dict[res.group(1) + res.group(2)] = state_dict.pop(key)
    model.load_state_dict(state_dict)


def _densenet(growth_rate, block_config, num_init_features, weights, progress,
              **kwargs) -> DenseNet:
    if weights is not None:
        _ovewrite_named_param(kwargs, "num_classes", weights.meta["num_classes"])
    model = DenseNet(growth_rate, block_config, num_init_features, **kwargs)
    if weights is not None:
        _load_state_dict(model, weights, progress)
    return model


_URL = "https://download.pytorch.org/models/"
_T = partial(ImageClassification, crop_size=224)


def _w(file, num_params, top1, top5):
    return Weights(_URL + file, _T, weights_meta(
        num_params, (29, 29), _metrics={"ImageNet-1K": {"acc@1": top1, "acc@5": top5}}))


class DenseNet121_Weights(WeightsEnum):
    IMAGENET1K_V1 = _w("densenet121-a639ec97.pth", 7978856, 74.434, 91.972)
    DEFAULT = IMAGENET1K_V1


class DenseNet161_Weights(WeightsEnum):
    IMAGENET1K_V1 = _w("densenet161-8d451a50.pth", 28681000, 77.138, 93.560)
    DEFAULT = IMAGENET1K_V1


class DenseNet169_Weights(WeightsEnum):
    IMAGENET1K_V1 = _w("densenet169-b2777c0a.pth", 14149480, 75.600, 92.806)
    DEFAULT = IMAGENET1K_V1


class DenseNet201_Weights(WeightsEnum):
    IMAGENET1K_V1 = _w("densenet201-c1103571.pth", 20013928, 76.896, 93.370)
    DEFAULT = IMAGENET1K_V1


@register_model()
@handle_legacy_interface(DenseNet121_Weights)
def densenet121(*, weights=None, progress: bool = True, **kwargs) -> DenseNet:
    """DenseNet-121: growth 32, blocks (6, 12, 24, 16)."""
    weights = DenseNet121_Weights.verify(weights)
    return _densenet(32, (6, 12, 24, 16), 64, weights, progress, **kwargs)


@register_model()
@handle_legacy_interface(DenseNet161_Weights)
def densenet161(*, weights=None, progress: bool = True, **kwargs) -> DenseNet:
    """DenseNet-161: growth 48, blocks (6, 12, 36, 24), 96 stem channels."""
    weights = DenseNet161_Weights.verify(weights)
    return _densenet(48, (6, 12, 36, 24), 96, weights, progress, **kwargs)


@register_model()
@handle_legacy_interface(DenseNet169_Weights)
def densenet169(*, weights=None, progress: bool = True, **kwargs) -> DenseNet:
    """DenseNet-169: growth 32, blocks (6, 12, 32, 32)."""
    weights = DenseNet169_Weights.verify(weights)
    return _densenet(32, (6, 12, 32, 32), 64, weights, progress, **kwargs)


@register_model()
@handle_legacy_interface(DenseNet201_Weights)
def densenet201(*, weights=None, progress: bool = True, **kwargs) -> DenseNet:
    """DenseNet-201: growth 32, blocks (6, 12, 48, 32)."""
    weights = DenseNet201_Weights.verify(weights)
    return _densenet(32, (6, 12, 48, 32), 64, weights, progress, **kwargs)
