"""torchvision.transforms: v1 transform classes, ``functional``, and ``v2``.

Design: ``functional`` is the one entry point per operation; it dispatches a PIL image to
``_functional_pil`` (Pillow's own operations) and an ember tensor (..., C, H, W) to
``_functional_tensor`` (torchvision's tensor formulas over ember ops: ``interpolate`` with
antialias, ``grid_sample`` on an affine grid, depthwise ``conv2d`` blur). The classes in
``transforms.py`` only validate arguments and draw random parameters from ember's global RNG
in torchvision's order, then call ``functional``. ``v2`` wraps the same classes so they pass
labels and other non-image items of a sample through untouched.
"""
from __future__ import annotations

from . import functional
from .autoaugment import AutoAugment, AutoAugmentPolicy, RandAugment, TrivialAugmentWide
from .functional import InterpolationMode
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = (["functional", "v2", "InterpolationMode", "AutoAugment", "AutoAugmentPolicy",
            "RandAugment", "TrivialAugmentWide"]
           + [n for n in _transforms_all if n != "InterpolationMode"])


def __getattr__(name: str):
    # v2 is imported on first use, as in torchvision (it is a larger module)
    if name == "v2":
        import importlib
        return importlib.import_module(".v2", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
