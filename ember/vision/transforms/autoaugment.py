"""AutoAugment, RandAugment and TrivialAugmentWide (torchvision.transforms.autoaugment).

Each draws one or more named image operations with a magnitude from a per-operation range
(``_SPACES``), in torchvision's order of random draws, and applies them with ``functional``.
Tensors should be uint8 (Posterize and Equalize need it), PIL images mode "L" or "RGB".
"""
from __future__ import annotations

import math
from enum import Enum

import ember
from ember import nn

from . import functional as F
from .functional import InterpolationMode, _check_interpolation

__all__ = ["AutoAugmentPolicy", "AutoAugment", "RandAugment", "TrivialAugmentWide"]


def _apply_op(img, op_name: str, magnitude: float, interpolation, fill):
    """One named operation at ``magnitude`` (shears: the tangent of the shear angle)."""
    if op_name == "ShearX":
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                        shear=[math.degrees(math.atan(magnitude)), 0.0],
                        interpolation=interpolation, fill=fill, center=[0, 0])
    if op_name == "ShearY":
        return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0,
                        shear=[0.0, math.degrees(math.atan(magnitude))],
                        interpolation=interpolation, fill=fill, center=[0, 0])
    if op_name == "TranslateX":
        return F.affine(img, angle=0.0, translate=[int(magnitude), 0], scale=1.0,
                        interpolation=interpolation, shear=[0.0, 0.0], fill=fill)
    if op_name == "TranslateY":
        return F.affine(img, angle=0.0, translate=[0, int(magnitude)], scale=1.0,
                        interpolation=interpolation, shear=[0.0, 0.0], fill=fill)
    if op_name == "Rotate":
        return F.rotate(img, magnitude, interpolation=interpolation, fill=fill)
    enhance = {"Brightness": F.adjust_brightness, "Color": F.adjust_saturation,
               "Contrast": F.adjust_contrast, "Sharpness": F.adjust_sharpness}
    if op_name in enhance:
        return enhance[op_name](img, 1.0 + magnitude)
    if op_name == "Posterize":
        return F.posterize(img, int(magnitude))
    if op_name == "Solarize":
        return F.solarize(img, magnitude)
    plain = {"AutoContrast": F.autocontrast, "Equalize": F.equalize, "Invert": F.invert,
             "Identity": lambda x: x}
    if op_name in plain:
        return plain[op_name](img)
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def _linspace(end: float, num_bins: int) -> list[float]:
    # float32 values, as torchvision's torch.linspace
    return ember.linspace(0.0, end, num_bins).tolist()


def _posterize_bits(num_bins: int, levels: int) -> list[int]:
    """``8 - round(i / ((num_bins - 1) / levels))`` for each bin i (float32, half to even)."""
    return (8 - (ember.arange(num_bins) / ((num_bins - 1) / levels)).round().int()).tolist()


def _space(kind: str, num_bins: int, image_size: list[int]) -> dict:
    """``op name -> (magnitudes or None, signed)`` for each method's search space."""
    if kind == "wide":  # TrivialAugment's wider ranges
        shear, tx, ty, rot, enh, levels = 0.99, 32.0, 32.0, 135.0, 0.99, 6
    else:
        shear, rot, enh, levels = 0.3, 30.0, 0.9, 4
        tx, ty = 150.0 / 331.0 * image_size[0], 150.0 / 331.0 * image_size[1]
    space = {} if kind == "auto" else {"Identity": (None, False)}
    space.update({
        "ShearX": (_linspace(shear, num_bins), True),
        "ShearY": (_linspace(shear, num_bins), True),
        "TranslateX": (_linspace(tx, num_bins), True),
        "TranslateY": (_linspace(ty, num_bins), True),
        "Rotate": (_linspace(rot, num_bins), True),
        "Brightness": (_linspace(enh, num_bins), True),
        "Color": (_linspace(enh, num_bins), True),
        "Contrast": (_linspace(enh, num_bins), True),
        "Sharpness": (_linspace(enh, num_bins), True),
        "Posterize": (_posterize_bits(num_bins, levels), False),
        "Solarize": (ember.linspace(255.0, 0.0, num_bins).tolist(), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    })
    if kind == "auto":
        space["Invert"] = (None, False)
    return space


def _tensor_fill(img, fill):
    if isinstance(img, ember.Tensor):
        if isinstance(fill, (int, float)):
            return [float(fill)] * F.get_image_num_channels(img)
        if fill is not None:
            return [float(f) for f in fill]
    return fill


class AutoAugmentPolicy(Enum):
    """The policies learned on ImageNet, CIFAR-10 and SVHN (Cubuk et al., 2019)."""

    IMAGENET = "imagenet"
    CIFAR10 = "cifar10"
    SVHN = "svhn"


def _policy(text: str):
    """Sub-policies written one per line as ``Op p m, Op p m`` (m "-" for none)."""
    out = []
    for line in text.strip().splitlines():
        pair = []
        for item in line.split(","):
            name, p, m = item.split()
            pair.append((name, float(p), None if m == "-" else int(m)))
        out.append(tuple(pair))
    return out


# the published AutoAugment sub-policies: (operation, probability, magnitude bin of 10)
_POLICIES = {
    AutoAugmentPolicy.IMAGENET: _policy("""
        Posterize 0.4 8, Rotate 0.6 9
        Solarize 0.6 5, AutoContrast 0.6 -
        Equalize 0.8 -, Equalize 0.6 -
        Posterize 0.6 7, Posterize 0.6 6
        Equalize 0.4 -, Solarize 0.2 4
        Equalize 0.4 -, Rotate 0.8 8
        Solarize 0.6 3, Equalize 0.6 -
        Posterize 0.8 5, Equalize 1.0 -
        Rotate 0.2 3, Solarize 0.6 8
        Equalize 0.6 -, Posterize 0.4 6
        Rotate 0.8 8, Color 0.4 0
        Rotate 0.4 9, Equalize 0.6 -
        Equalize 0.0 -, Equalize 0.8 -
        Invert 0.6 -, Equalize 1.0 -
        Color 0.6 4, Contrast 1.0 8
        Rotate 0.8 8, Color 1.0 2
        Color 0.8 8, Solarize 0.8 7
        Sharpness 0.4 7, Invert 0.6 -
        ShearX 0.6 5, Equalize 1.0 -
        Color 0.4 0, Equalize 0.6 -
        Equalize 0.4 -, Solarize 0.2 4
        Solarize 0.6 5, AutoContrast 0.6 -
        Invert 0.6 -, Equalize 1.0 -
        Color 0.6 4, Contrast 1.0 8
        Equalize 0.8 -, Equalize 0.6 -
    """),
    AutoAugmentPolicy.CIFAR10: _policy("""
        Invert 0.1 -, Contrast 0.2 6
        Rotate 0.7 2, TranslateX 0.3 9
        Sharpness 0.8 1, Sharpness 0.9 3
        ShearY 0.5 8, TranslateY 0.7 9
        AutoContrast 0.5 -, Equalize 0.9 -
        ShearY 0.2 7, Posterize 0.3 7
        Color 0.4 3, Brightness 0.6 7
        Sharpness 0.3 9, Brightness 0.7 9
        Equalize 0.6 -, Equalize 0.5 -
        Contrast 0.6 7, Sharpness 0.6 5
        Color 0.7 7, TranslateX 0.5 8
        Equalize 0.3 -, AutoContrast 0.4 -
        TranslateY 0.4 3, Sharpness 0.2 6
        Brightness 0.9 6, Color 0.2 8
        Solarize 0.5 2, Invert 0.0 -
        Equalize 0.2 -, AutoContrast 0.6 -
        Equalize 0.2 -, Equalize 0.6 -
        Color 0.9 9, Equalize 0.6 -
        AutoContrast 0.8 -, Solarize 0.2 8
        Brightness 0.1 3, Color 0.7 0
        Solarize 0.4 5, AutoContrast 0.9 -
        TranslateY 0.9 9, TranslateY 0.7 9
        AutoContrast 0.9 -, Solarize 0.8 3
        Equalize 0.8 -, Invert 0.1 -
        TranslateY 0.7 9, AutoContrast 0.9 -
    """),
    AutoAugmentPolicy.SVHN: _policy("""
        ShearX 0.9 4, Invert 0.2 -
        ShearY 0.9 8, Invert 0.7 -
        Equalize 0.6 -, Solarize 0.6 6
        Invert 0.9 -, Equalize 0.6 -
        Equalize 0.6 -, Rotate 0.9 3
        ShearX 0.9 4, AutoContrast 0.8 -
        ShearY 0.9 8, Invert 0.4 -
        ShearY 0.9 5, Solarize 0.2 6
        Invert 0.9 -, AutoContrast 0.8 -
        Equalize 0.6 -, Rotate 0.9 3
        ShearX 0.9 4, Solarize 0.3 3
        ShearY 0.8 8, Invert 0.7 -
        Equalize 0.9 -, TranslateY 0.6 6
        Invert 0.9 -, Equalize 0.6 -
        Contrast 0.3 3, Rotate 0.8 4
        Invert 0.8 -, TranslateY 0.0 2
        ShearY 0.7 6, Solarize 0.4 8
        Invert 0.6 -, Rotate 0.8 4
        ShearY 0.3 7, TranslateX 0.9 3
        ShearX 0.1 6, Invert 0.6 -
        Solarize 0.7 2, TranslateY 0.6 7
        ShearY 0.8 4, Invert 0.8 -
        ShearX 0.7 9, TranslateY 0.8 3
        ShearY 0.8 5, AutoContrast 0.7 -
        ShearX 0.7 2, Invert 0.1 -
    """),
}


class AutoAugment(nn.Module):
    """A random sub-policy of ``policy``: two operations, each applied with its probability."""

    def __init__(self, policy: AutoAugmentPolicy = AutoAugmentPolicy.IMAGENET,
                 interpolation=InterpolationMode.NEAREST, fill=None) -> None:
        super().__init__()
        self.policy = policy
        self.interpolation = _check_interpolation(interpolation)
        self.fill = fill
        if policy not in _POLICIES:
            raise ValueError(f"The provided policy {policy} is not recognized.")
        self.policies = _POLICIES[policy]

    @staticmethod
    def get_params(transform_num: int):
        policy_id = int(ember.randint(transform_num, (1,)).item())
        probs = ember.rand((2,))
        signs = ember.randint(2, (2,))
        return policy_id, probs, signs

    def forward(self, img):
        fill = _tensor_fill(img, self.fill)
        transform_id, probs, signs = self.get_params(len(self.policies))
        for i, (op_name, p, magnitude_id) in enumerate(self.policies[transform_id]):
            if probs[i] <= p:
                magnitudes, signed = _space("auto", 10, F.get_image_size(img))[op_name]
                magnitude = float(magnitudes[magnitude_id]) if magnitude_id is not None \
                    else 0.0
                if signed and int(signs[i]) == 0:
                    magnitude *= -1.0
                img = _apply_op(img, op_name, magnitude, self.interpolation, fill)
        return img

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(policy={self.policy}, fill={self.fill})"


class RandAugment(nn.Module):
    """``num_ops`` operations drawn uniformly, each at bin ``magnitude`` of
    ``num_magnitude_bins``, with a random sign (Cubuk et al., 2020)."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation=InterpolationMode.NEAREST, fill=None) -> None:
        super().__init__()
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = _check_interpolation(interpolation)
        self.fill = fill

    def forward(self, img):
        fill = _tensor_fill(img, self.fill)
        for _ in range(self.num_ops):
            space = _space("rand", self.num_magnitude_bins, F.get_image_size(img))
            op_index = int(ember.randint(len(space), (1,)).item())
            op_name = list(space)[op_index]
            magnitudes, signed = space[op_name]
            magnitude = float(magnitudes[self.magnitude]) if magnitudes is not None else 0.0
            if signed and int(ember.randint(2, (1,)).item()):
                magnitude *= -1.0
            img = _apply_op(img, op_name, magnitude, self.interpolation, fill)
        return img

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}"
                f", num_magnitude_bins={self.num_magnitude_bins}, interpolation="
                f"{self.interpolation}, fill={self.fill})")


class TrivialAugmentWide(nn.Module):
    """One operation drawn uniformly at a uniformly drawn magnitude bin (Müller and Hutter,
    2021), over the wide ranges."""

    def __init__(self, num_magnitude_bins: int = 31, interpolation=InterpolationMode.NEAREST,
                 fill=None) -> None:
        super().__init__()
        self.num_magnitude_bins = num_magnitude_bins
        self.interpolation = _check_interpolation(interpolation)
        self.fill = fill

    def forward(self, img):
        fill = _tensor_fill(img, self.fill)
        space = _space("wide", self.num_magnitude_bins, [0, 0])
        op_index = int(ember.randint(len(space), (1,)).item())
        op_name = list(space)[op_index]
        magnitudes, signed = space[op_name]
        magnitude = 0.0
        if magnitudes is not None:
            magnitude = float(magnitudes[int(ember.randint(len(magnitudes), (1,)).item())])
        if signed and int(ember.randint(2, (1,)).item()):
            magnitude *= -1.0
        return _apply_op(img, op_name, magnitude, self.interpolation, fill)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(num_magnitude_bins={self.num_magnitude_bins}, "
                f"interpolation={self.interpolation}, fill={self.fill})")
