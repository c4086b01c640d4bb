"""``torchvision.transforms.functional``: each function takes a PIL image or an ember tensor
(..., C, H, W) and dispatches to ``_functional_pil`` or ``_functional_tensor``; the
conversions (``to_tensor``, ``pil_to_tensor``, ``to_pil_image``) also take NumPy arrays (HWC)."""
from __future__ import annotations

import math
import numbers
import sys
import warnings
from enum import Enum


import numpy as np

import ember

from .._pil import is_pil_image, pil_image
from . import _functional_pil as F_pil
from . import _functional_tensor as F_t

__all__ = ["InterpolationMode", "get_dimensions", "get_image_size", "get_image_num_channels",
           "to_tensor", "pil_to_tensor", "to_pil_image", "convert_image_dtype", "normalize",
           "resize", "pad", "crop", "center_crop", "resized_crop", "hflip", "vflip",
           "five_crop", "ten_crop", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "rotate", "affine", "rgb_to_grayscale",
           "to_grayscale", "gaussian_blur", "erase", "invert", "posterize", "solarize",
           "adjust_sharpness", "autocontrast", "equalize"]


class InterpolationMode(Enum):
    """Interpolation modes; the tensor paths take NEAREST, NEAREST_EXACT, BILINEAR, BICUBIC."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


# Pillow's integer resampling filters (Image.Resampling)
pil_modes_mapping = {
    InterpolationMode.NEAREST: 0, InterpolationMode.NEAREST_EXACT: 0,
    InterpolationMode.BILINEAR: 2, InterpolationMode.BICUBIC: 3, InterpolationMode.BOX: 4,
    InterpolationMode.HAMMING: 5, InterpolationMode.LANCZOS: 1,
}
_modes_from_int = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR,
                   3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX,
                   5: InterpolationMode.HAMMING, 1: InterpolationMode.LANCZOS}


def _interpolation_modes_from_int(i: int) -> InterpolationMode:
    return _modes_from_int[i]


def _check_interpolation(interpolation) -> InterpolationMode:
    if isinstance(interpolation, int) and not isinstance(interpolation, bool):
        return _interpolation_modes_from_int(interpolation)
    if not isinstance(interpolation, InterpolationMode):
        raise TypeError("Argument interpolation should be a InterpolationMode or a "
                        "corresponding Pillow integer constant")
    return interpolation


def _is_tensor(img) -> bool:
    return isinstance(img, ember.Tensor)


def _check_image(img) -> None:
    if not (_is_tensor(img) or is_pil_image(img)):
        raise TypeError(f"img should be PIL Image or Tensor. Got {type(img)}")


def _pil_or_tensor(pil_fn, tensor_fn, img, *args, **kwargs):
    """``tensor_fn`` on a tensor image, ``pil_fn`` on a PIL one, TypeError for anything else."""
    if _is_tensor(img):
        return tensor_fn(img, *args, **kwargs)
    _check_image(img)
    return pil_fn(img, *args, **kwargs)


def get_dimensions(img) -> list[int]:
    """``[channels, height, width]``."""
    if _is_tensor(img):
        return F_t.get_dimensions(img)
    _check_image(img)
    return F_pil.get_dimensions(img)


def get_image_size(img) -> list[int]:
    """``[width, height]``."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img) -> int:
    return get_dimensions(img)[0]


def _is_numpy_image(img) -> bool:
    return img.ndim in {2, 3}


def to_tensor(pic):
    """A PIL image or HWC ndarray as a CHW tensor; uint8 data scaled to float [0, 1]."""
    if not (is_pil_image(pic) or isinstance(pic, np.ndarray)):
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    if isinstance(pic, np.ndarray) and not _is_numpy_image(pic):
        raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
    default_float = ember.get_default_dtype()
    if isinstance(pic, np.ndarray):
        if pic.ndim == 2:
            pic = pic[:, :, None]
        img = ember.from_numpy(np.ascontiguousarray(pic.transpose((2, 0, 1))))
        if img.dtype == ember.uint8:
            return img.to(default_float).div(255)
        return img
    mode_to_nptype = {"I": np.int32, "I;16" if sys.byteorder == "little" else "I;16B": np.int16,
                      "F": np.float32}
    arr = np.array(pic, mode_to_nptype.get(pic.mode, np.uint8), copy=True)
    if pic.mode == "1":
        arr = 255 * arr
    arr = arr.reshape(pic.size[1], pic.size[0], get_image_num_channels(pic))
    img = ember.from_numpy(np.ascontiguousarray(arr.transpose((2, 0, 1))))
    if img.dtype == ember.uint8:
        return img.to(default_float).div(255)
    return img


def pil_to_tensor(pic):
    """A PIL image as a CHW tensor of its own dtype (no scaling)."""
    if not is_pil_image(pic):
        raise TypeError(f"pic should be PIL Image. Got {type(pic)}")
    arr = np.array(pic, copy=True)
    arr = arr.reshape(pic.size[1], pic.size[0], get_image_num_channels(pic))
    return ember.from_numpy(np.ascontiguousarray(arr.transpose((2, 0, 1))))


def to_pil_image(pic, mode: str | None = None):
    """A CHW tensor or HWC ndarray as a PIL image (float tensors: ``mul(255).byte()``)."""
    if not (_is_tensor(pic) or isinstance(pic, np.ndarray)):
        raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
    if _is_tensor(pic):
        if pic.ndim not in {2, 3}:
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        if pic.ndim == 2:
            pic = pic.unsqueeze(0)
        if pic.shape[-3] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[-3]} channels.")
    else:
        if pic.ndim not in {2, 3}:
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        if pic.ndim == 2:
            pic = np.expand_dims(pic, 2)
        if pic.shape[-1] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[-1]} channels.")
    npimg = pic
    if _is_tensor(pic):
        if pic.is_floating_point() and mode != "F":
            pic = pic.mul(255).byte()
        npimg = np.transpose(pic.detach().numpy(), (1, 2, 0))
    if not isinstance(npimg, np.ndarray):
        raise TypeError(f"Input pic must be a torch.Tensor or NumPy ndarray, not {type(npimg)}")
    if npimg.shape[2] == 1:
        expected_mode = None
        npimg = npimg[:, :, 0]
        if npimg.dtype == np.uint8:
            expected_mode = "L"
        elif npimg.dtype == np.int16:
            expected_mode = "I;16" if sys.byteorder == "little" else "I;16B"
        elif npimg.dtype == np.int32:
            expected_mode = "I"
        elif npimg.dtype == np.float32:
            expected_mode = "F"
        if mode is not None and mode != expected_mode:
            raise ValueError(f"Incorrect mode ({mode}) supplied for input type {np.dtype}. "
                             f"Should be {expected_mode}")
        mode = expected_mode
    elif npimg.shape[2] == 2:
        permitted = ["LA"]
        if mode is not None and mode not in permitted:
            raise ValueError(f"Only modes {permitted} are supported for 2D inputs")
        if mode is None and npimg.dtype == np.uint8:
            mode = "LA"
    elif npimg.shape[2] == 4:
        permitted = ["RGBA", "CMYK", "RGBX"]
        if mode is not None and mode not in permitted:
            raise ValueError(f"Only modes {permitted} are supported for 4D inputs")
        if mode is None and npimg.dtype == np.uint8:
            mode = "RGBA"
    else:
        permitted = ["RGB", "YCbCr", "HSV"]
        if mode is not None and mode not in permitted:
            raise ValueError(f"Only modes {permitted} are supported for 3D inputs")
        if mode is None and npimg.dtype == np.uint8:
            mode = "RGB"
    if mode is None:
        raise TypeError(f"Input type {npimg.dtype} is not supported")
    Image = pil_image()
    npimg = np.ascontiguousarray(npimg)
    # frombytes with an explicit mode: Pillow's fromarray(mode=...) is deprecated
    return Image.frombytes(mode, (npimg.shape[1], npimg.shape[0]), npimg.tobytes())


def normalize(tensor, mean, std, inplace: bool = False):
    """``(tensor - mean[c]) / std[c]`` per channel of a float tensor image."""
    if not _is_tensor(tensor):
        raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
    return F_t.normalize(tensor, mean=mean, std=std, inplace=inplace)


def convert_image_dtype(image, dtype=ember.float32):
    if not _is_tensor(image):
        raise TypeError("Input img should be Tensor Image")
    return F_t.convert_image_dtype(image, dtype)


def _compute_resized_output_size(image_size, size, max_size=None) -> list[int]:
    if len(size) == 1:  # match the shorter edge, keeping the aspect ratio
        h, w = image_size
        short, long = (w, h) if w <= h else (h, w)
        requested_new_short = size[0]
        new_short, new_long = requested_new_short, int(requested_new_short * long / short)
        if max_size is not None:
            if max_size <= requested_new_short:
                raise ValueError(f"max_size = {max_size} must be strictly greater than the "
                                 f"requested size for the smaller edge size = {size}")
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = size
    return [new_h, new_w]


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size: int | None = None,
           antialias: bool | None = True):
    """Resize to ``size`` (h, w), or the shorter edge to ``size`` when it is one number."""
    interpolation = _check_interpolation(interpolation)
    if isinstance(size, (list, tuple)):
        if len(size) not in (1, 2):
            raise ValueError(f"Size must be an int or a 1 or 2 element tuple/list, not a "
                             f"{len(size)} element tuple/list")
        if max_size is not None and len(size) != 1:
            raise ValueError("max_size should only be passed if size specifies the length of "
                             "the smaller edge, i.e. size should be an int or a sequence of "
                             "length 1 in torchscript mode.")
    elif not isinstance(size, int):
        raise TypeError(f"Size should be int or sequence. Got {type(size)}")
    _, image_height, image_width = get_dimensions(img)
    if isinstance(size, int):
        size = [size]
    output_size = _compute_resized_output_size((image_height, image_width), list(size),
                                               max_size)
    if [image_height, image_width] == output_size:
        return img
    if not _is_tensor(img):
        if antialias is False:
            warnings.warn("Anti-alias option is always applied for PIL Image input. Argument "
                          "antialias is ignored.")
        return F_pil.resize(img, size=output_size,
                            interpolation=pil_modes_mapping[interpolation])
    return F_t.resize(img, size=output_size, interpolation=interpolation.value,
                      antialias=antialias)


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad by ``padding`` (int; (lr, tb); or (l, t, r, b)) with a constant, edge, reflect or
    symmetric border; negative padding crops."""
    if not isinstance(padding, (numbers.Number, tuple, list)):
        raise TypeError("Got inappropriate padding arg")
    if not isinstance(fill, (numbers.Number, tuple, list)) and fill is not None:
        raise TypeError("Got inappropriate fill arg")
    if not isinstance(padding_mode, str):
        raise TypeError("Got inappropriate padding_mode arg")
    if isinstance(padding, (tuple, list)) and len(padding) not in (1, 2, 4):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                         f"{len(padding)} element tuple")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    return _pil_or_tensor(F_pil.pad, F_t.pad, img, padding=padding, fill=fill,
                          padding_mode=padding_mode)


def crop(img, top: int, left: int, height: int, width: int):
    """The ``height`` x ``width`` box at (``top``, ``left``); zero-filled outside the image."""
    return _pil_or_tensor(F_pil.crop, F_t.crop, img, top, left, height, width)


def center_crop(img, output_size):
    """The central ``output_size`` box (padded with zeros first when it is larger)."""
    if isinstance(output_size, numbers.Number):
        output_size = (int(output_size), int(output_size))
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 1:
        output_size = (output_size[0], output_size[0])
    _, image_height, image_width = get_dimensions(img)
    crop_height, crop_width = output_size
    if crop_width > image_width or crop_height > image_height:
        padding_ltrb = [
            (crop_width - image_width) // 2 if crop_width > image_width else 0,
            (crop_height - image_height) // 2 if crop_height > image_height else 0,
            (crop_width - image_width + 1) // 2 if crop_width > image_width else 0,
            (crop_height - image_height + 1) // 2 if crop_height > image_height else 0,
        ]
        img = pad(img, padding_ltrb, fill=0)
        _, image_height, image_width = get_dimensions(img)
        if crop_width == image_width and crop_height == image_height:
            return img
    crop_top = int(round((image_height - crop_height) / 2.0))
    crop_left = int(round((image_width - crop_width) / 2.0))
    return crop(img, crop_top, crop_left, crop_height, crop_width)


def resized_crop(img, top: int, left: int, height: int, width: int, size,
                 interpolation=InterpolationMode.BILINEAR, antialias: bool | None = True):
    img = crop(img, top, left, height, width)
    return resize(img, size, interpolation, antialias=antialias)


def hflip(img):
    return _pil_or_tensor(F_pil.hflip, F_t.hflip, img)


def vflip(img):
    return _pil_or_tensor(F_pil.vflip, F_t.vflip, img)


def five_crop(img, size):
    """The four corner crops and the central crop, in that order."""
    if isinstance(size, numbers.Number):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 1:
        size = (size[0], size[0])
    if len(size) != 2:
        raise ValueError("Please provide only two dimensions (h, w) for size.")
    _, image_height, image_width = get_dimensions(img)
    crop_height, crop_width = size
    if crop_width > image_width or crop_height > image_height:
        msg = "Requested crop size {} is bigger than input size {}"
        raise ValueError(msg.format(size, (image_height, image_width)))
    tl = crop(img, 0, 0, crop_height, crop_width)
    tr = crop(img, 0, image_width - crop_width, crop_height, crop_width)
    bl = crop(img, image_height - crop_height, 0, crop_height, crop_width)
    br = crop(img, image_height - crop_height, image_width - crop_width, crop_height,
              crop_width)
    center = center_crop(img, [crop_height, crop_width])
    return tl, tr, bl, br, center


def ten_crop(img, size, vertical_flip: bool = False):
    first_five = five_crop(img, size)
    img = vflip(img) if vertical_flip else hflip(img)
    return first_five + five_crop(img, size)


def adjust_brightness(img, brightness_factor: float):
    """``img * brightness_factor``, clamped."""
    return _pil_or_tensor(F_pil.adjust_brightness, F_t.adjust_brightness, img, brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    """Blend with the mean of the grayscale image: ``f * img + (1 - f) * mean``."""
    return _pil_or_tensor(F_pil.adjust_contrast, F_t.adjust_contrast, img, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    """Blend with the grayscale image: ``f * img + (1 - f) * gray``."""
    return _pil_or_tensor(F_pil.adjust_saturation, F_t.adjust_saturation, img, saturation_factor)


def adjust_hue(img, hue_factor: float):
    """Rotate the hue (in HSV) by ``hue_factor`` of a turn, ``hue_factor`` in [-0.5, 0.5]."""
    return _pil_or_tensor(F_pil.adjust_hue, F_t.adjust_hue, img, hue_factor)


def _get_inverse_affine_matrix(center, angle: float, translate, scale: float, shear,
                               inverted: bool = True) -> list[float]:
    """The (inverse) affine map ``T * C * RotateScaleShear * C^-1`` as a flat 2x3 matrix.

    ``RotateScaleShear = Rotate(a) * Shear(sx, sy) * Scale(s)`` with angles in degrees, as
    torchvision's docstring derives it."""
    rot = math.radians(angle)
    sx = math.radians(shear[0])
    sy = math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    if inverted:
        matrix = [d, -b, 0.0, -c, a, 0.0]
        matrix = [x / scale for x in matrix]
        matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
        matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
        matrix[2] += cx
        matrix[5] += cy
    else:
        matrix = [a, b, 0.0, c, d, 0.0]
        matrix = [x * scale for x in matrix]
        matrix[2] += matrix[0] * (-cx) + matrix[1] * (-cy)
        matrix[5] += matrix[3] * (-cx) + matrix[4] * (-cy)
        matrix[2] += cx + tx
        matrix[5] += cy + ty
    return matrix


def rotate(img, angle: float, interpolation=InterpolationMode.NEAREST, expand: bool = False,
           center=None, fill=None):
    """Rotate by ``angle`` degrees counter-clockwise about ``center`` (default: the middle)."""
    interpolation = _check_interpolation(interpolation)
    if not isinstance(angle, (int, float)):
        raise TypeError("Argument angle should be int or float")
    if center is not None and not isinstance(center, (list, tuple)):
        raise TypeError("Argument center should be a sequence")
    if not _is_tensor(img):
        _check_image(img)
        return F_pil.rotate(img, angle=angle, interpolation=pil_modes_mapping[interpolation],
                            expand=expand, center=center, fill=fill)
    center_f = [0.0, 0.0]
    if center is not None:
        _, height, width = get_dimensions(img)
        # the centre in pixel units relative to the image's middle
        center_f = [1.0 * (c - s * 0.5) for c, s in zip(center, [width, height])]
    # the tensor path maps output to input, hence -angle
    matrix = _get_inverse_affine_matrix(center_f, -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    return F_t.rotate(img, matrix=matrix, interpolation=interpolation.value, expand=expand,
                      fill=fill)


def affine(img, angle: float, translate, scale: float, shear,
           interpolation=InterpolationMode.NEAREST, fill=None, center=None):
    """Rotate by ``angle``, translate by ``translate`` pixels, scale, and shear (degrees)."""
    interpolation = _check_interpolation(interpolation)
    if not isinstance(angle, (int, float)):
        raise TypeError("Argument angle should be int or float")
    if not isinstance(translate, (list, tuple)):
        raise TypeError("Argument translate should be a sequence")
    if len(translate) != 2:
        raise ValueError("Argument translate should be a sequence of length 2")
    if scale <= 0.0:
        raise ValueError("Argument scale should be positive")
    if not isinstance(shear, (numbers.Number, list, tuple)):
        raise TypeError("Shear should be either a single value or a sequence of two values")
    if isinstance(angle, int):
        angle = float(angle)
    if isinstance(translate, tuple):
        translate = list(translate)
    if isinstance(shear, numbers.Number):
        shear = [shear, 0.0]
    if isinstance(shear, tuple):
        shear = list(shear)
    if len(shear) == 1:
        shear = [shear[0], shear[0]]
    if len(shear) != 2:
        raise ValueError(f"Shear should be a sequence containing two values. Got {shear}")
    if center is not None and not isinstance(center, (list, tuple)):
        raise TypeError("Argument center should be a sequence")
    _, height, width = get_dimensions(img)
    if not _is_tensor(img):
        # Pillow's centre is in pixel units from the top-left corner
        if center is None:
            center = [width * 0.5, height * 0.5]
        matrix = _get_inverse_affine_matrix(center, angle, translate, scale, shear)
        return F_pil.affine(img, matrix=matrix, interpolation=pil_modes_mapping[interpolation],
                            fill=fill)
    center_f = [0.0, 0.0]
    if center is not None:
        center_f = [1.0 * (c - s * 0.5) for c, s in zip(center, [width, height])]
    translate_f = [1.0 * t for t in translate]
    matrix = _get_inverse_affine_matrix(center_f, angle, translate_f, scale, shear)
    return F_t.affine(img, matrix=matrix, interpolation=interpolation.value, fill=fill)


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """``L = 0.2989 R + 0.587 G + 0.114 B``, as 1 or 3 channels."""
    return _pil_or_tensor(F_pil.to_grayscale, F_t.rgb_to_grayscale, img, num_output_channels)


def to_grayscale(img, num_output_channels: int = 1):
    if is_pil_image(img):
        return F_pil.to_grayscale(img, num_output_channels)
    raise TypeError("Input should be PIL Image")


def gaussian_blur(img, kernel_size, sigma=None):
    """Blur with a normalised Gaussian kernel of odd ``kernel_size`` (x, y) and ``sigma``
    (default ``0.3 * ((k - 1) * 0.5 - 1) + 0.8``, written ``0.15 k + 0.35``)."""
    if not isinstance(kernel_size, (int, list, tuple)):
        raise TypeError(f"kernel_size should be int or a sequence of integers. Got "
                        f"{type(kernel_size)}")
    if isinstance(kernel_size, int):
        kernel_size = [kernel_size, kernel_size]
    if len(kernel_size) != 2:
        raise ValueError(f"If kernel_size is a sequence its length should be 2. Got "
                         f"{len(kernel_size)}")
    for ksize in kernel_size:
        if ksize % 2 == 0 or ksize < 0:
            raise ValueError(f"kernel_size should have odd and positive integers. Got "
                             f"{kernel_size}")
    if sigma is None:
        sigma = [ksize * 0.15 + 0.35 for ksize in kernel_size]
    if sigma is not None and not isinstance(sigma, (int, float, list, tuple)):
        raise TypeError(f"sigma should be either float or sequence of floats. Got "
                        f"{type(sigma)}")
    if isinstance(sigma, (int, float)):
        sigma = [float(sigma), float(sigma)]
    if isinstance(sigma, (list, tuple)) and len(sigma) == 1:
        sigma = [sigma[0], sigma[0]]
    if len(sigma) != 2:
        raise ValueError(f"If sigma is a sequence, its length should be 2. Got {len(sigma)}")
    for s in sigma:
        if s <= 0.0:
            raise ValueError(f"sigma should have positive values. Got {sigma}")
    t_img = img
    if not _is_tensor(img):
        # Pillow's own blur is a different kernel: go through a tensor, as torchvision does
        _check_image(img)
        t_img = pil_to_tensor(img)
    output = F_t.gaussian_blur(t_img, list(kernel_size), list(sigma))
    if not _is_tensor(img):
        output = to_pil_image(output, mode=img.mode)
    return output


def invert(img):
    """``max - img`` (the colours' negative)."""
    return _pil_or_tensor(F_pil.invert, F_t.invert, img)


def posterize(img, bits: int):
    """Keep the top ``bits`` bits of each channel (uint8 tensors or PIL images)."""
    if not (0 <= bits <= 8):
        raise ValueError(f"The number if bits should be between 0 and 8. Got {bits}")
    return _pil_or_tensor(F_pil.posterize, F_t.posterize, img, bits)


def solarize(img, threshold: float):
    """Invert every value at or above ``threshold``."""
    return _pil_or_tensor(F_pil.solarize, F_t.solarize, img, threshold)


def adjust_sharpness(img, sharpness_factor: float):
    """Blend with a 3x3-smoothed copy: 0 blurs, 1 is the image, 2 sharpens."""
    return _pil_or_tensor(F_pil.adjust_sharpness, F_t.adjust_sharpness, img, sharpness_factor)


def autocontrast(img):
    """Stretch each channel to the full value range."""
    return _pil_or_tensor(F_pil.autocontrast, F_t.autocontrast, img)


def equalize(img):
    """Equalise each channel's histogram (uint8 tensors or PIL images)."""
    return _pil_or_tensor(F_pil.equalize, F_t.equalize, img)


def erase(img, i: int, j: int, h: int, w: int, v, inplace: bool = False):
    """``img[..., i:i+h, j:j+w] = v`` (on a copy unless ``inplace``)."""
    if not _is_tensor(img):
        raise TypeError(f"img should be Tensor Image. Got {type(img)}")
    return F_t.erase(img, i, j, h, w, v, inplace=inplace)
