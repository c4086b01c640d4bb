"""ember.vision: torchvision's Python API on ember (``import torchvision`` under ``ember run``).

Design
------
Laid out as torchvision: ``datasets`` (MNIST family, CIFAR, SVHN, ImageFolder, FakeData,
reading the files torchvision itself leaves under ``root``, downloads from the same URLs with
md5 checks), ``transforms`` (v1, ``transforms.v2`` and ``transforms.functional``), ``io``
(``read_image``/``decode_image``) and ``utils`` (``make_grid``/``save_image``).

Images are PIL images, NumPy arrays (HWC, for the conversions) or ember tensors (..., C, H, W).
A tensor transform is written with ember ops, transliterating torchvision's own tensor
kernels (``interpolate`` with antialias for resize, ``grid_sample`` on an affine grid for
rotate/affine, a depthwise ``conv2d`` for blur), so it gives torchvision's numbers and keeps
autograd. A PIL transform calls Pillow, as torchvision does. Pillow is the optional extra
``vision`` and is imported only inside the functions that need it, so ``import ember`` (and
``import ember.vision``) stay fast and work without it.

Not here: video, ``tv_tensors`` (boxes, masks) in ``transforms.v2``. ``models`` (classifiers with
torchvision's state-dict layout and weights enums) and ``ops`` (boxes, NMS, RoI ops, losses,
model building blocks) have their own design notes.
"""
from __future__ import annotations

from . import datasets, io, models, ops, transforms, utils

__version__ = "0.20.0+ember"

__all__ = ["datasets", "io", "models", "ops", "transforms", "utils", "__version__"]
