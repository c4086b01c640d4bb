"""torchvision.io (images): read and decode image files to uint8 CHW tensors, and encode
them, through Pillow (the optional extra ``vision``). Video is not implemented."""
from __future__ import annotations

import io as _io
import os
from enum import Enum

import numpy as np

import ember

from .._pil import pil_image

__all__ = ["ImageReadMode", "read_file", "write_file", "decode_image", "decode_png",
           "decode_jpeg", "read_image", "encode_png", "encode_jpeg", "write_png", "write_jpeg"]


class ImageReadMode(Enum):
    """The channels to decode to; UNCHANGED keeps the file's own."""

    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4
    RGBA = 4


_PIL_MODE = {ImageReadMode.GRAY: "L", ImageReadMode.GRAY_ALPHA: "LA",
             ImageReadMode.RGB: "RGB", ImageReadMode.RGB_ALPHA: "RGBA"}


def read_file(path: str) -> ember.Tensor:
    """A file's bytes as a 1-d uint8 tensor."""
    with open(os.fspath(path), "rb") as f:
        data = f.read()
    return ember.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())


def write_file(filename: str, data: ember.Tensor) -> None:
    with open(os.fspath(filename), "wb") as f:
        f.write(data.numpy().tobytes())


def _parse_mode(mode) -> ImageReadMode:
    if isinstance(mode, str):
        try:
            return ImageReadMode[mode.upper()]
        except KeyError:
            raise ValueError(f"Unknown image read mode {mode!r}") from None
    if not isinstance(mode, ImageReadMode):
        raise TypeError(f"mode should be an ImageReadMode or a str, got {type(mode)}")
    return mode


def _to_tensor(img, mode: ImageReadMode) -> ember.Tensor:
    if mode is ImageReadMode.UNCHANGED:
        # palette and 1-bit images decode to their colours / 0..255, as libpng/libjpeg do
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif img.mode == "1":
            img = img.convert("L")
        elif img.mode == "CMYK":
            img = img.convert("RGB")
    else:
        img = img.convert(_PIL_MODE[mode])
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != np.uint8:
        # 16-bit images (Pillow: int32 "I" / uint16 "I;16"): torchvision gives uint16, which
        # ember lacks, so they come back as int32 with their values unchanged
        arr = arr.astype(np.int32)
    return ember.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _open(input):
    Image = pil_image()
    if isinstance(input, (str, os.PathLike)):
        data = read_file(input).numpy().tobytes()
    elif isinstance(input, ember.Tensor):
        if input.dtype != ember.uint8 or input.ndim != 1:
            raise RuntimeError("Expected a 1 dimensional uint8 tensor of encoded bytes, got "
                               f"{input.dtype} with {input.ndim} dims")
        data = input.numpy().tobytes()
    else:
        raise TypeError(f"Expected a str path or a uint8 tensor, got {type(input)}")
    if not data:
        raise RuntimeError("Input tensor must have at least one element (got empty data)")
    try:
        img = Image.open(_io.BytesIO(data))
        img.load()
    except Exception as err:  # Pillow raises several types for bad data
        raise RuntimeError(f"Unsupported image file or corrupted data: {err}") from err
    return img


def decode_image(input, mode=ImageReadMode.UNCHANGED, apply_exif_orientation: bool = False):
    """Encoded bytes (a 1-d uint8 tensor) or a path -> uint8 tensor (C, H, W)."""
    mode = _parse_mode(mode)
    img = _open(input)
    if apply_exif_orientation:
        from PIL import ImageOps
        img = ImageOps.exif_transpose(img)
    return _to_tensor(img, mode)


def decode_png(input, mode=ImageReadMode.UNCHANGED, apply_exif_orientation: bool = False):
    return decode_image(input, mode, apply_exif_orientation)


def decode_jpeg(input, mode=ImageReadMode.UNCHANGED, device="cpu",
                apply_exif_orientation: bool = False):
    if isinstance(input, (list, tuple)):
        return [decode_image(x, mode, apply_exif_orientation) for x in input]
    return decode_image(input, mode, apply_exif_orientation)


def read_image(path: str, mode=ImageReadMode.UNCHANGED,
               apply_exif_orientation: bool = False) -> ember.Tensor:
    """The image file at ``path`` as a uint8 tensor (C, H, W)."""
    return decode_image(read_file(path), mode, apply_exif_orientation)


def _encode(input: ember.Tensor, fmt: str, **kwargs) -> ember.Tensor:
    if not isinstance(input, ember.Tensor) or input.dtype != ember.uint8 or input.ndim != 3:
        raise RuntimeError("Input tensor must be a 3 dimensional uint8 tensor (C, H, W)")
    if input.shape[0] not in (1, 3) and not (fmt == "PNG" and input.shape[0] in (2, 4)):
        raise RuntimeError(f"The number of channels should be 1 or 3, got: {input.shape[0]}")
    arr = np.ascontiguousarray(input.numpy().transpose(1, 2, 0))
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = _io.BytesIO()
    pil_image().fromarray(arr).save(buf, format=fmt, **kwargs)
    return ember.from_numpy(np.frombuffer(buf.getvalue(), dtype=np.uint8).copy())


def encode_png(input: ember.Tensor, compression_level: int = 6) -> ember.Tensor:
    if not 0 <= compression_level <= 9:
        raise ValueError(f"Compression level should be between 0 and 9, got "
                         f"{compression_level}")
    return _encode(input, "PNG", compress_level=compression_level)


def encode_jpeg(input: ember.Tensor, quality: int = 75) -> ember.Tensor:
    if not 1 <= quality <= 100:
        raise ValueError("Image quality should be a positive number between 1 and 100")
    return _encode(input, "JPEG", quality=quality)


def write_png(input: ember.Tensor, filename: str, compression_level: int = 6) -> None:
    write_file(filename, encode_png(input, compression_level))


def write_jpeg(input: ember.Tensor, filename: str, quality: int = 75) -> None:
    write_file(filename, encode_jpeg(input, quality))
