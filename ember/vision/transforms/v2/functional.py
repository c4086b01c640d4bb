"""torchvision.transforms.v2.functional: v1's functional plus ``to_image`` and ``to_dtype``."""
from __future__ import annotations

import numpy as np

import ember

from ..functional import *  # noqa: F401,F403
from ..functional import __all__ as _v1_all
from ..functional import convert_image_dtype, pil_to_tensor

__all__ = list(_v1_all) + ["to_image", "to_dtype", "to_dtype_image"]


def to_image(inpt):
    """PIL image / HWC ndarray / tensor -> a CHW tensor, values and dtype unchanged."""
    if isinstance(inpt, np.ndarray):
        arr = inpt[:, :, None] if inpt.ndim == 2 else inpt
        return ember.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if isinstance(inpt, ember.Tensor):
        return inpt
    return pil_to_tensor(inpt)


def to_dtype(inpt, dtype=ember.float32, scale: bool = False):
    """``inpt.to(dtype)``, rescaled between integer and [0, 1] ranges when ``scale``."""
    if not scale:
        return inpt.to(dtype)
    return convert_image_dtype(inpt, dtype)


to_dtype_image = to_dtype
