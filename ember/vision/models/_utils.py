"""Helpers shared by the model builders (torchvision.models._utils)."""
from __future__ import annotations

import functools
import warnings

from ember import nn
from ._api import WeightsEnum, _weights_of

_IMAGENET_MEAN = (0.485, 0.456, 0.406)


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """``v`` rounded to a multiple of ``divisor``, never more than 10% below ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _init_conv_net(model, init_linear_weight) -> None:
    """The initialisation torchvision's MobileNets and EfficientNet share: Kaiming (fan_out)
    convolutions, unit norms, zero biases, ``init_linear_weight(w)`` for Linear weights."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            init_linear_weight(m.weight)
            nn.init.zeros_(m.bias)


def _ovewrite_named_param(kwargs: dict, param: str, new_value) -> None:
    """Set ``kwargs[param]`` to what the weights need, refusing a different explicit value."""
    if param in kwargs:
        if kwargs[param] != new_value:
            raise ValueError(f"The parameter '{param}' expected value {new_value} but got "
                             f"{kwargs[param]} instead.")
    else:
        kwargs[param] = new_value


def handle_legacy_interface(weights_enum: type[WeightsEnum], default="IMAGENET1K_V1"):
    """Accept the pre-0.13 ``pretrained=`` keyword (with torchvision's deprecation warnings)
    as ``weights=`` (the default weights when True, None when False), and register the
    builder's weights enum for ``get_model_weights``."""
    def decorator(builder):
        @functools.wraps(builder)
        def inner(*args, **kwargs):
            if "pretrained" in kwargs:
                pretrained = kwargs.pop("pretrained")
                if kwargs.get("weights") is not None:
                    raise ValueError("The parameter 'pretrained' is deprecated, please use "
                                     "'weights' instead.")
                warnings.warn("The parameter 'pretrained' is deprecated since 0.13 and may be "
                              "removed in the future, please use 'weights' instead.")
                weights = None
                if pretrained:
                    weights = weights_enum[default]
                    warnings.warn(
                        "Arguments other than a weight enum or `None` for 'weights' are "
                        "deprecated since 0.13 and may be removed in the future. The current "
                        f"behavior is equivalent to passing `weights={weights!r}`. You can "
                        f"also use `weights={weights_enum.__name__}.DEFAULT` to get the most "
                        "up-to-date weights.")
                kwargs["weights"] = weights
            return builder(*args, **kwargs)
        _weights_of[inner] = weights_enum
        return inner
    return decorator


def load_weights(model, weights, progress: bool):
    """Load ``weights`` (a WeightsEnum member or None) into ``model``; returns the model."""
    if weights is not None:
        model.load_state_dict(weights.get_state_dict(progress=progress, check_hash=True))
    return model


def weights_meta(num_params: int, min_size, **extra) -> dict:
    """The meta dict of an ImageNet-1k classifier's weights."""
    meta = {"num_params": num_params, "min_size": min_size, "num_classes": 1000}
    meta.update(extra)
    return meta
