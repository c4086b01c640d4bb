"""torchvision.transforms.v2 (the common transforms): v1's transforms applied to the images of
a whole sample.

A v2 transform takes one input or several (``t(img, label)``) and any nesting of tuples, lists
and dicts. It transforms the image leaves (PIL images and ember tensors; when there is no PIL
image, only the first tensor, the rest as torchvision passes "pure" tensors through) and
returns everything else untouched. A random transform draws its parameters once per call: the
RNG is rewound before each further image of the sample, so all images of a sample get the same
crop, flip or angle. ``tv_tensors`` (BoundingBoxes, Mask, ...) are not implemented.
"""
from __future__ import annotations

import ember

from .. import autoaugment as _aa
from .. import transforms as _v1
from ..._pil import is_pil_image
from ..functional import InterpolationMode
from . import functional

__all__ = ["Transform", "Compose", "ToImage", "ToDtype", "ToPureTensor", "Identity", "ToTensor",
           "PILToTensor", "ToPILImage", "Normalize", "Resize", "CenterCrop", "RandomCrop",
           "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation",
           "RandomAffine", "ColorJitter", "Grayscale", "RandomGrayscale", "GaussianBlur",
           "RandomErasing", "Pad", "Lambda", "ConvertImageDtype", "RandomApply",
           "RandomChoice", "RandomOrder", "InterpolationMode", "AutoAugment",
           "AutoAugmentPolicy", "RandAugment", "TrivialAugmentWide", "functional"]


def _leaves(obj, path=()):
    """``(path, leaf)`` for every leaf of nested tuples/lists/dicts, in order."""
    if isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _leaves(item, path + (i,))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _leaves(item, path + (key,))
    else:
        yield path, obj


def _replace(obj, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        out[head] = _replace(obj[head], rest, value)
        return out
    out = list(obj)
    out[head] = _replace(obj[head], rest, value)
    return type(obj)(out) if isinstance(obj, tuple) else out


class Transform:
    """Mixin: run the v1 transform ``_apply_one`` on each image leaf of a sample."""

    # plain (not PIL, not ndarray) inputs the transform accepts: tensors
    def _is_image(self, leaf) -> bool:
        return is_pil_image(leaf) or isinstance(leaf, ember.Tensor)

    def _apply_one(self, img):
        raise NotImplementedError

    def __call__(self, *inputs):
        sample = inputs if len(inputs) > 1 else inputs[0]
        leaves = list(_leaves(sample))
        has_pil = any(is_pil_image(leaf) for _, leaf in leaves)
        targets, seen_tensor = [], False
        for path, leaf in leaves:
            if not self._is_image(leaf):
                continue
            if isinstance(leaf, ember.Tensor) and not has_pil:
                if seen_tensor:  # only the first pure tensor is an image
                    continue
                seen_tensor = True
            elif isinstance(leaf, ember.Tensor):
                continue
            targets.append((path, leaf))
        state = ember.get_rng_state()
        for n, (path, leaf) in enumerate(targets):
            if n:
                # the same random parameters for every image of the sample
                ember.set_rng_state(state)
            sample = _replace(sample, path, self._apply_one(leaf))
        return sample


def _wrap(v1_class, doc_name=None):
    """A v2 class: ``v1_class``'s constructor and parameters, ``Transform``'s calling."""
    def _apply_one(self, img):
        return v1_class.__call__(self, img)

    name = doc_name or v1_class.__name__
    cls = type(name, (Transform, v1_class), {"_apply_one": _apply_one,
                                             "__call__": Transform.__call__,
                                             "__module__": __name__,
                                             "__doc__": v1_class.__doc__})
    return cls


Normalize = _wrap(_v1.Normalize)
Resize = _wrap(_v1.Resize)
CenterCrop = _wrap(_v1.CenterCrop)
RandomCrop = _wrap(_v1.RandomCrop)
RandomResizedCrop = _wrap(_v1.RandomResizedCrop)
RandomHorizontalFlip = _wrap(_v1.RandomHorizontalFlip)
RandomVerticalFlip = _wrap(_v1.RandomVerticalFlip)
RandomRotation = _wrap(_v1.RandomRotation)
RandomAffine = _wrap(_v1.RandomAffine)
ColorJitter = _wrap(_v1.ColorJitter)
Grayscale = _wrap(_v1.Grayscale)
RandomGrayscale = _wrap(_v1.RandomGrayscale)
GaussianBlur = _wrap(_v1.GaussianBlur)
Pad = _wrap(_v1.Pad)
ConvertImageDtype = _wrap(_v1.ConvertImageDtype)
ToPILImage = _wrap(_v1.ToPILImage)
PILToTensor = _wrap(_v1.PILToTensor)
ToTensor = _wrap(_v1.ToTensor)
AutoAugment = _wrap(_aa.AutoAugment)
RandAugment = _wrap(_aa.RandAugment)
TrivialAugmentWide = _wrap(_aa.TrivialAugmentWide)
AutoAugmentPolicy = _aa.AutoAugmentPolicy


class RandomErasing(Transform, _v1.RandomErasing):
    """v1's RandomErasing on tensor images (PIL images pass through, as in torchvision v2)."""

    def _is_image(self, leaf) -> bool:
        return isinstance(leaf, ember.Tensor)

    def _apply_one(self, img):
        return _v1.RandomErasing.__call__(self, img)

    __call__ = Transform.__call__


class _Whole:
    """A v2 container transform: hands the whole sample on (``t(img, label)`` works)."""

    def __call__(self, *inputs):
        sample = inputs if len(inputs) > 1 else inputs[0]
        return self._run(sample)


class Compose(_Whole, _v1.Compose):
    def _run(self, sample):
        for t in self.transforms:
            sample = t(sample)
        return sample


class RandomApply(_Whole, _v1.RandomApply):
    def _run(self, sample):
        if self.p < ember.rand(1).item():
            return sample
        for t in self.transforms:
            sample = t(sample)
        return sample


class RandomOrder(_Whole, _v1.RandomOrder):
    def _run(self, sample):
        for i in ember.randperm(len(self.transforms)).tolist():
            sample = self.transforms[i](sample)
        return sample


class RandomChoice(_Whole, _v1.RandomChoice):
    def _run(self, sample):
        import random
        return random.choices(self.transforms, weights=self.p)[0](sample)


class Lambda(Transform, _v1.Lambda):
    """``lambd`` on each image of the sample."""

    def _apply_one(self, img):
        return self.lambd(img)

    __call__ = Transform.__call__


class Identity(Transform):
    def _apply_one(self, img):
        return img

    def __repr__(self) -> str:
        return "Identity()"


class ToImage(Transform):
    """PIL image or HWC ndarray -> a CHW tensor of the same dtype (uint8 stays uint8)."""

    def _is_image(self, leaf) -> bool:
        import numpy as np
        return super()._is_image(leaf) or isinstance(leaf, np.ndarray)

    def _apply_one(self, img):
        return functional.to_image(img)

    def __repr__(self) -> str:
        return "ToImage()"


class ToPureTensor(Identity):
    def __repr__(self) -> str:
        return "ToPureTensor()"


class ToDtype(Transform):
    """Cast images to ``dtype``; ``scale=True`` rescales values as ``convert_image_dtype``."""

    def __init__(self, dtype, scale: bool = False) -> None:
        self.dtype = dtype
        self.scale = scale

    def _is_image(self, leaf) -> bool:
        return isinstance(leaf, ember.Tensor)

    def _apply_one(self, img):
        return functional.to_dtype(img, self.dtype, self.scale)

    def __repr__(self) -> str:
        return f"ToDtype(dtype={self.dtype}, scale={self.scale})"
