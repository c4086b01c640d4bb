"""The one place ember.vision imports Pillow (lazily, with an error that names the extra)."""
from __future__ import annotations

import sys


def pil_image():
    """``PIL.Image``, or an ImportError telling the user to install the ``vision`` extra."""
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("this ember.vision function needs Pillow: "
                          "pip install 'ember[vision]' (or pip install Pillow)") from err
    return Image


def is_pil_image(img) -> bool:
    """True for a PIL image, without importing Pillow when the caller never did."""
    if "PIL.Image" not in sys.modules:
        return False
    return isinstance(img, sys.modules["PIL.Image"].Image)
