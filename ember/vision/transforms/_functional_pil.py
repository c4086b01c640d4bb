"""PIL kernels of ``transforms.functional``: Pillow's own operations, as torchvision calls them."""
from __future__ import annotations

import numpy as np

from .._pil import is_pil_image, pil_image


def _assert_pil(img) -> None:
    if not is_pil_image(img):
        raise TypeError(f"img should be PIL Image. Got {type(img)}")


def get_dimensions(img) -> list[int]:
    _assert_pil(img)
    channels = len(img.getbands())
    width, height = img.size
    return [channels, height, width]


def _parse_fill(fill, img, name: str = "fillcolor") -> dict:
    """Pillow's fill argument: one value per band, ints unless the image is mode "F"."""
    num_channels = get_dimensions(img)[0]
    if fill is None:
        fill = 0
    if isinstance(fill, (int, float)) and num_channels > 1:
        fill = tuple([fill] * num_channels)
    if isinstance(fill, (list, tuple)):
        if len(fill) == 1:
            fill = tuple(fill) * num_channels
        elif len(fill) != num_channels:
            raise ValueError(f"The number of elements in 'fill' does not match the number of "
                             f"channels of the image ({len(fill)} != {num_channels})")
        fill = tuple(fill)
    if img.mode != "F":
        fill = tuple(int(x) for x in fill) if isinstance(fill, tuple) else int(fill)
    return {name: fill}


def hflip(img):
    _assert_pil(img)
    return img.transpose(pil_image().Transpose.FLIP_LEFT_RIGHT)


def vflip(img):
    _assert_pil(img)
    return img.transpose(pil_image().Transpose.FLIP_TOP_BOTTOM)


def crop(img, top: int, left: int, height: int, width: int):
    _assert_pil(img)
    return img.crop((left, top, left + width, top + height))


def resize(img, size: list[int], interpolation: int):
    _assert_pil(img)
    if not (isinstance(size, list) and len(size) == 2):
        raise TypeError(f"Got inappropriate size arg: {size}")
    return img.resize(tuple(size[::-1]), interpolation)


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    _assert_pil(img)
    from PIL import ImageOps
    if isinstance(padding, tuple):
        padding = list(padding)
    if isinstance(padding, list) and len(padding) == 1:
        padding = padding[0]
    if padding_mode == "constant":
        opts = _parse_fill(fill, img, name="fill")
        if isinstance(padding, list):  # Pillow takes an int or a tuple
            padding = tuple(padding)
        if img.mode == "P":
            palette = img.getpalette()
            image = ImageOps.expand(img, border=padding, **opts)
            image.putpalette(palette)
            return image
        return ImageOps.expand(img, border=padding, **opts)
    if isinstance(padding, int):
        p = [padding] * 4
    elif len(padding) == 2:
        p = [padding[0], padding[1], padding[0], padding[1]]
    else:
        p = list(padding)
    pad_left, pad_top, pad_right, pad_bottom = p
    crop_left, crop_top, crop_right, crop_bottom = [-min(x, 0) for x in p]
    if any((crop_left, crop_top, crop_right, crop_bottom)):
        img = img.crop((crop_left, crop_top, img.width - crop_right, img.height - crop_bottom))
    pad_left, pad_top, pad_right, pad_bottom = [max(x, 0) for x in p]
    palette = img.getpalette() if img.mode == "P" else None
    arr = np.asarray(img)
    widths = [(pad_top, pad_bottom), (pad_left, pad_right)] + [(0, 0)] * (arr.ndim - 2)
    out = pil_image().fromarray(np.pad(arr, widths, mode=padding_mode))
    if palette is not None:
        out.putpalette(palette)
    return out


def to_grayscale(img, num_output_channels: int = 1):
    _assert_pil(img)
    if num_output_channels == 1:
        return img.convert("L")
    if num_output_channels == 3:
        gray = np.array(img.convert("L"), dtype=np.uint8)
        return pil_image().fromarray(np.dstack([gray, gray, gray]))
    raise ValueError("num_output_channels should be either 1 or 3")


def _enhance(name: str, img, factor: float):
    _assert_pil(img)
    from PIL import ImageEnhance
    return getattr(ImageEnhance, name)(img).enhance(factor)


def adjust_brightness(img, brightness_factor: float):
    return _enhance("Brightness", img, brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    return _enhance("Contrast", img, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    return _enhance("Color", img, saturation_factor)


def adjust_hue(img, hue_factor: float):
    """Shift the H band of Pillow's HSV by ``hue_factor * 255``, wrapping around uint8."""
    if not (-0.5 <= hue_factor <= 0.5):
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    _assert_pil(img)
    Image = pil_image()
    input_mode = img.mode
    if input_mode in {"L", "1", "I", "F"}:
        return img
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    # the shift wraps around modulo 256, as the uint8 addition does in torchvision
    np_h = (np_h.astype(np.int64) + int(hue_factor * 255)) % 256
    h = Image.fromarray(np_h.astype(np.uint8))
    return Image.merge("HSV", (h, s, v)).convert(input_mode)


def rotate(img, angle: float, interpolation: int = 0, expand: bool = False, center=None,
           fill=None):
    _assert_pil(img)
    opts = _parse_fill(fill, img)
    return img.rotate(angle, interpolation, expand, center, **opts)


def affine(img, matrix: list[float], interpolation: int = 0, fill=None):
    _assert_pil(img)
    opts = _parse_fill(fill, img)
    return img.transform(img.size, pil_image().Transform.AFFINE, matrix, interpolation, **opts)


def _image_ops(name: str, img, *args):
    _assert_pil(img)
    from PIL import ImageOps
    return getattr(ImageOps, name)(img, *args)


def invert(img):
    return _image_ops("invert", img)


def posterize(img, bits: int):
    return _image_ops("posterize", img, bits)


def solarize(img, threshold: float):
    return _image_ops("solarize", img, threshold)


def autocontrast(img):
    return _image_ops("autocontrast", img)


def equalize(img):
    return _image_ops("equalize", img)


def adjust_sharpness(img, sharpness_factor: float):
    return _enhance("Sharpness", img, sharpness_factor)
