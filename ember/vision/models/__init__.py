"""ember.vision.models: torchvision's classification models, loadable from its weights.

Design
------
Each builder (``resnet18(weights=None, progress=True, **kwargs)``) makes the model with
torchvision's submodule names and registration order, so ``state_dict()`` keys and shapes are
torchvision's and a ``.pth`` saved by torchvision loads with strict ``load_state_dict``. The
layers come from ``ember.nn`` and ``ember.vision.ops.misc`` (Conv2dNormActivation,
SqueezeExcitation, ...), so nothing here is a new op.

``weights=`` takes a ``WeightsEnum`` member (``ResNet18_Weights.IMAGENET1K_V1``), its name, or
None; a member carries ``url``, ``meta`` (num_params, min_size, metrics) and ``transforms``
(its inference preset). ``get_state_dict`` reads the file from the hub cache
(``ember.hub.load_state_dict_from_url``, which downloads only when it is missing). The legacy
``pretrained=True/False`` keyword is mapped onto ``weights=`` with torchvision's warnings
(``_utils.handle_legacy_interface``). ``get_model``/``list_models`` read the registry that
``@register_model`` fills.

Not here: the other torchvision families (Inception, RegNet, Swin, ...), the
detection/segmentation/video models, and ``meta["categories"]`` (ImageNet's class names).
"""
from __future__ import annotations

from ._api import Weights, WeightsEnum, get_model, get_model_builder, get_model_weights
from ._api import get_weight, list_models
from .alexnet import AlexNet, AlexNet_Weights, alexnet
from .convnext import ConvNeXt, ConvNeXt_Tiny_Weights, convnext_tiny
from .densenet import (DenseNet, DenseNet121_Weights, DenseNet161_Weights, DenseNet169_Weights,
                       DenseNet201_Weights, densenet121, densenet161, densenet169, densenet201)
from .efficientnet import EfficientNet, EfficientNet_B0_Weights, efficientnet_b0
from .mobilenetv2 import MobileNet_V2_Weights, MobileNetV2, mobilenet_v2
from .mobilenetv3 import MobileNet_V3_Small_Weights, MobileNetV3, mobilenet_v3_small
from .resnet import (ResNet, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, resnet18,
                     resnet34, resnet50)
from .squeezenet import (SqueezeNet, SqueezeNet1_0_Weights, SqueezeNet1_1_Weights,
                         squeezenet1_0, squeezenet1_1)
from .vgg import (VGG, VGG11_BN_Weights, VGG11_Weights, VGG16_BN_Weights, VGG16_Weights, vgg11,
                  vgg11_bn, vgg16, vgg16_bn)
from .vision_transformer import ViT_B_16_Weights, VisionTransformer, vit_b_16

__all__ = [
    "Weights", "WeightsEnum", "get_model", "get_model_builder", "get_model_weights",
    "get_weight", "list_models",
    "AlexNet", "AlexNet_Weights", "alexnet", "ConvNeXt", "ConvNeXt_Tiny_Weights", "convnext_tiny",
    "DenseNet", "DenseNet121_Weights", "DenseNet161_Weights", "DenseNet169_Weights",
    "DenseNet201_Weights", "densenet121", "densenet161", "densenet169", "densenet201",
    "EfficientNet", "EfficientNet_B0_Weights", "efficientnet_b0", "MobileNetV2",
    "MobileNet_V2_Weights", "mobilenet_v2", "MobileNetV3", "MobileNet_V3_Small_Weights",
    "mobilenet_v3_small", "ResNet", "ResNet18_Weights", "ResNet34_Weights", "ResNet50_Weights",
    "resnet18", "resnet34", "resnet50", "SqueezeNet", "SqueezeNet1_0_Weights",
    "SqueezeNet1_1_Weights", "squeezenet1_0", "squeezenet1_1", "VGG", "VGG11_Weights",
    "VGG11_BN_Weights", "VGG16_Weights", "VGG16_BN_Weights", "vgg11", "vgg11_bn", "vgg16",
    "vgg16_bn", "VisionTransformer", "ViT_B_16_Weights", "vit_b_16",
]
