"""Tensor kernels of ``transforms.functional``: torchvision's own tensor formulas, written with
ember ops so they give the same numbers (and keep autograd). Images are (..., C, H, W)."""
from __future__ import annotations


import ember
from ember.nn import functional as F_nn


def _int_dtypes():
    return (ember.uint8, ember.int8, ember.int16, ember.int32, ember.int64)


def _assert_image_tensor(img) -> None:
    if not isinstance(img, ember.Tensor) or img.ndim < 2:
        raise TypeError("Tensor is not a torch image.")


def get_dimensions(img) -> list[int]:
    _assert_image_tensor(img)
    channels = 1 if img.ndim == 2 else img.shape[-3]
    return [channels, img.shape[-2], img.shape[-1]]


def _assert_channels(img, permitted: list[int]) -> None:
    c = get_dimensions(img)[0]
    if c not in permitted:
        raise TypeError(f"Input image tensor permitted channel values are {permitted}, "
                        f"but found {c}")


def _max_value(dtype) -> int | float:
    """The largest value of an image dtype: 1.0 for floats, the integer maximum otherwise."""
    if dtype.is_floating_point:
        return 1.0
    return ember.iinfo(dtype).max


def _cast_squeeze_in(img, req_dtypes):
    """As a 4-d batch in one of ``req_dtypes``, with what is needed to undo that."""
    lead = img.shape[:-3] if img.ndim >= 3 else None
    need_squeeze = lead
    if img.ndim < 4 or img.ndim > 4:
        img = img.reshape((-1,) + tuple(img.shape[-3:])) if img.ndim >= 3 else img[None, None]
    out_dtype = img.dtype
    need_cast = out_dtype not in req_dtypes
    if need_cast:
        img = img.to(req_dtypes[0])
    return img, need_cast, need_squeeze, out_dtype


def _cast_squeeze_out(img, need_cast, need_squeeze, out_dtype):
    if need_squeeze is None:  # a 2-d image came in
        img = img[0, 0]
    elif len(need_squeeze) != 1:
        img = img.reshape(tuple(need_squeeze) + tuple(img.shape[-3:]))
    if need_cast:
        if out_dtype in _int_dtypes():
            # float -> int conversion truncates; round first as torchvision does
            img = ember.round(img)
        img = img.to(out_dtype)
    return img


def _blend(img1, img2, ratio: float):
    """``ratio * img1 + (1 - ratio) * img2`` clamped to the dtype's range."""
    ratio = float(ratio)
    bound = _max_value(img1.dtype)
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)


def hflip(img):
    _assert_image_tensor(img)
    return img.flip(-1)


def vflip(img):
    _assert_image_tensor(img)
    return img.flip(-2)


def crop(img, top: int, left: int, height: int, width: int):
    """``img[..., top:top+height, left:left+width]``, zero-padded where it leaves the image."""
    _, h, w = get_dimensions(img)
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        padding_ltrb = [max(-left + min(0, right), 0), max(-top + min(0, bottom), 0),
                        max(right - max(w, left), 0), max(bottom - max(h, top), 0)]
        return pad(img[..., max(top, 0):bottom, max(left, 0):right], padding_ltrb, fill=0)
    return img[..., top:bottom, left:right]


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """ITU-R 601-2 luma: ``L = 0.2989 R + 0.587 G + 0.114 B`` (cast back to the input dtype)."""
    if img.ndim < 3:
        raise TypeError(f"Input image tensor should have at least 3 dimensions, but found "
                        f"{img.ndim}")
    _assert_channels(img, [1, 3])
    if num_output_channels not in (1, 3):
        raise ValueError("num_output_channels should be either 1 or 3")
    if img.shape[-3] == 3:
        r, g, b = img.unbind(dim=-3)
        l_img = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype)
        l_img = l_img.unsqueeze(dim=-3)
    else:
        l_img = img.clone()
    if num_output_channels == 3:
        return l_img.expand(img.shape)
    return l_img


def adjust_brightness(img, brightness_factor: float):
    if brightness_factor < 0:
        raise ValueError(f"brightness_factor ({brightness_factor}) is not non-negative.")
    _assert_image_tensor(img)
    _assert_channels(img, [1, 3])
    return _blend(img, ember.zeros_like(img), brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    if contrast_factor < 0:
        raise ValueError(f"contrast_factor ({contrast_factor}) is not non-negative.")
    _assert_image_tensor(img)
    _assert_channels(img, [3, 1])
    c = get_dimensions(img)[0]
    dtype = img.dtype if img.is_floating_point() else ember.float32
    if c == 3:
        gray = rgb_to_grayscale(img).to(dtype)
    else:
        gray = img.to(dtype)
    mean = ember.mean(gray, dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    if saturation_factor < 0:
        raise ValueError(f"saturation_factor ({saturation_factor}) is not non-negative.")
    _assert_image_tensor(img)
    _assert_channels(img, [1, 3])
    if get_dimensions(img)[0] == 1:  # saturation of a grayscale image is itself
        return img
    return _blend(img, rgb_to_grayscale(img), saturation_factor)


def _rgb2hsv(img):
    r, g, b = img.unbind(dim=-3)
    maxc = ember.max(img, dim=-3).values
    minc = ember.min(img, dim=-3).values
    # where all channels are equal, hue and saturation are 0: divide by 1 there, not by 0
    eqc = maxc == minc
    cr = maxc - minc
    ones = ember.ones_like(maxc)
    s = cr / ember.where(eqc, ones, maxc)
    cr_divisor = ember.where(eqc, ones, cr)
    rc = (maxc - r) / cr_divisor
    gc = (maxc - g) / cr_divisor
    bc = (maxc - b) / cr_divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = hr + hg + hb
    h = ember.fmod(h / 6.0 + 1.0, 1.0)
    return ember.stack((h, s, maxc), dim=-3)


def _hsv2rgb(img):
    h, s, v = img.unbind(dim=-3)
    i = ember.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(ember.int32)
    p = ember.clamp(v * (1.0 - s), 0.0, 1.0)
    q = ember.clamp(v * (1.0 - s * f), 0.0, 1.0)
    t = ember.clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    i = i % 6
    mask = i.unsqueeze(dim=-3) == ember.arange(6).view(-1, 1, 1)
    a1 = ember.stack((v, q, p, p, t, v), dim=-3)
    a2 = ember.stack((t, v, v, q, p, p), dim=-3)
    a3 = ember.stack((p, p, t, v, v, q), dim=-3)
    a4 = ember.stack((a1, a2, a3), dim=-4)
    return ember.einsum("...ijk, ...xijk -> ...xjk", mask.to(img.dtype), a4)


def adjust_hue(img, hue_factor: float):
    if not (-0.5 <= hue_factor <= 0.5):
        raise ValueError(f"hue_factor ({hue_factor}) is not in [-0.5, 0.5].")
    _assert_image_tensor(img)
    _assert_channels(img, [1, 3])
    if get_dimensions(img)[0] == 1:
        return img
    orig_dtype = img.dtype
    img = convert_image_dtype(img, ember.float32)
    h, s, v = _rgb2hsv(img).unbind(dim=-3)
    h = (h + hue_factor) % 1.0
    out = _hsv2rgb(ember.stack((h, s, v), dim=-3))
    if orig_dtype != out.dtype:
        out = convert_image_dtype(out, orig_dtype)
    return out


def convert_image_dtype(image, dtype=ember.float32):
    """Cast and rescale between [0, 1] floats and [0, max] integers, as torchvision's."""
    if image.dtype == dtype:
        return image
    if image.is_floating_point():
        if dtype.is_floating_point:
            return image.to(dtype)
        # a float32 value 1.0 scaled to int32/int64's maximum is not representable exactly
        if (image.dtype == ember.float32 and dtype in (ember.int32, ember.int64)) or (
                image.dtype == ember.float64 and dtype == ember.int64):
            raise RuntimeError(f"The cast from {image.dtype} to {dtype} cannot be performed "
                               f"safely.")
        # 1 - eps keeps 1.0 below max + 1, so the floor of the cast maps [0, 1] onto [0, max]
        eps = 1e-3
        max_val = float(_max_value(dtype))
        return image.mul(max_val + 1.0 - eps).to(dtype)
    input_max = float(_max_value(image.dtype))
    if dtype.is_floating_point:
        return image.to(dtype) / input_max
    output_max = _max_value(dtype)
    if input_max > output_max:
        factor = int((input_max + 1) // (output_max + 1))
        image = ember.div(image, factor, rounding_mode="floor")
        return image.to(dtype)
    factor = int((output_max + 1) // (input_max + 1))
    return image.to(dtype) * factor


def _pad_symmetric(img, padding: list[int]):
    """Mirror padding that repeats the edge pixel (numpy's 'symmetric'), by index gathering."""
    if min(padding) < 0:
        crop_left, crop_right, crop_top, crop_bottom = [-min(x, 0) for x in padding]
        img = img[..., crop_top:img.shape[-2] - crop_bottom,
                  crop_left:img.shape[-1] - crop_right]
        padding = [max(x, 0) for x in padding]
    h, w = img.shape[-2], img.shape[-1]
    x_idx = list(range(padding[0] - 1, -1, -1)) + list(range(w)) + \
        [-(i + 1) for i in range(padding[1])]
    y_idx = list(range(padding[2] - 1, -1, -1)) + list(range(h)) + \
        [-(i + 1) for i in range(padding[3])]
    x_idx = ember.tensor([i % w for i in x_idx])
    y_idx = ember.tensor([i % h for i in y_idx])
    return img[..., y_idx[:, None], x_idx[None, :]]


def _parse_padding(padding) -> list[int]:
    """``[left, right, top, bottom]`` from an int or a 1-, 2- or 4-sequence (l, t, r, b)."""
    if isinstance(padding, int):
        return [padding] * 4
    padding = [int(p) for p in padding]
    if len(padding) == 1:
        return padding * 4
    if len(padding) == 2:
        return [padding[0], padding[0], padding[1], padding[1]]
    left, top, right, bottom = padding
    return [left, right, top, bottom]


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    _assert_image_tensor(img)
    if fill is None:
        fill = 0
    if not isinstance(padding, (int, tuple, list)):
        raise TypeError("Got inappropriate padding arg")
    if not isinstance(fill, (int, float)):
        raise TypeError("Got inappropriate fill arg")
    if not isinstance(padding_mode, str):
        raise TypeError("Got inappropriate padding_mode arg")
    if isinstance(padding, (tuple, list)) and len(padding) not in (1, 2, 4):
        raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                         f"{len(padding)} element tuple")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    p = _parse_padding(padding)
    if padding_mode == "symmetric":
        return _pad_symmetric(img, p)
    if padding_mode == "edge":
        padding_mode = "replicate"
    lead = tuple(img.shape[:-2])
    x = img.reshape((1, -1) + tuple(img.shape[-2:]))
    out_dtype = x.dtype
    # reflect/replicate pad floats only (as in torchvision): integer images go through float32
    need_cast = padding_mode != "constant" and not x.is_floating_point()
    if need_cast:
        x = x.to(ember.float32)
    if padding_mode in ("reflect", "replicate"):
        x = F_nn.pad(x, p, mode=padding_mode)
    else:
        x = F_nn.pad(x, p, mode="constant", value=float(fill))
    if need_cast:
        x = x.to(out_dtype)
    return x.reshape(lead + tuple(x.shape[-2:]))


def resize(img, size: list[int], interpolation: str = "bilinear", antialias: bool = True):
    """``F.interpolate`` on float (uint8 images: rounded back; bicubic clamped to 0..255)."""
    _assert_image_tensor(img)
    if antialias is None:
        antialias = False
    if interpolation not in ("bilinear", "bicubic"):
        antialias = False
    x, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [ember.float32,
                                                                    ember.float64])
    align_corners = False if interpolation in ("bilinear", "bicubic") else None
    x = F_nn.interpolate(x, size=list(size), mode=interpolation, align_corners=align_corners,
                         antialias=antialias)
    if interpolation == "bicubic" and out_dtype == ember.uint8:
        x = x.clamp(min=0, max=255)
    return _cast_squeeze_out(x, need_cast, need_squeeze, out_dtype)


def _gen_affine_grid(theta, w: int, h: int, ow: int, oh: int):
    """The sampling grid for an inverse affine matrix in pixel units about the image centre.

    Pixel centres of the output, ``x = -ow/2 + 0.5 ... ow/2 - 0.5``, are mapped by ``theta`` and
    rescaled by the input's half-size into grid_sample's [-1, 1] (align_corners=False)."""
    d = 0.5
    x_grid = ember.linspace(-ow * 0.5 + d, ow * 0.5 + d - 1, steps=ow, dtype=theta.dtype)
    y_grid = ember.linspace(-oh * 0.5 + d, oh * 0.5 + d - 1, steps=oh, dtype=theta.dtype)
    base_grid = ember.stack((x_grid.expand(oh, ow), y_grid.unsqueeze(-1).expand(oh, ow),
                             ember.ones(oh, ow, dtype=theta.dtype)), dim=-1)[None]
    rescaled_theta = theta.transpose(1, 2) / ember.tensor([0.5 * w, 0.5 * h],
                                                          dtype=theta.dtype)
    output_grid = base_grid.view(1, oh * ow, 3).bmm(rescaled_theta)
    return output_grid.view(1, oh, ow, 2)


def _apply_grid_transform(img, grid, mode: str, fill):
    """``grid_sample`` with zeros padding; ``fill`` paints where the grid leaves the image
    (found by sampling a ones-channel alongside)."""
    x, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [grid.dtype])
    if x.shape[0] > 1:
        grid = grid.expand(x.shape[0], grid.shape[1], grid.shape[2], grid.shape[3])
    if fill is not None:
        mask = ember.ones((x.shape[0], 1, x.shape[2], x.shape[3]), dtype=x.dtype)
        x = ember.cat((x, mask), dim=1)
    x = F_nn.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        mask = x[:, -1:, :, :]
        x = x[:, :-1, :, :]
        mask = mask.expand_as(x)
        fill_list = list(fill) if isinstance(fill, (tuple, list)) else [float(fill)]
        fill_img = ember.tensor(fill_list, dtype=x.dtype).view(1, len(fill_list), 1, 1)
        fill_img = fill_img.expand_as(x)
        if mode == "nearest":
            x = ember.where(mask < 0.5, fill_img, x)
        else:  # bilinear: a weighted blend at the border
            x = x * mask + (1.0 - mask) * fill_img
    return _cast_squeeze_out(x, need_cast, need_squeeze, out_dtype)


def _assert_grid_transform_inputs(img, matrix, interpolation, fill) -> None:
    _assert_image_tensor(img)
    if matrix is not None and len(matrix) != 6:
        raise ValueError("Argument matrix should be a list with 6 float values")
    if isinstance(fill, (tuple, list)):
        c = get_dimensions(img)[0]
        if len(fill) > 1 and len(fill) != c:
            raise ValueError(f"The number of elements in 'fill' cannot broadcast to match the "
                             f"number of channels of the image ({len(fill)} != {c})")
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"Interpolation mode '{interpolation}' is unsupported with Tensor "
                         f"input")


def _affine_dtype(img):
    return img.dtype if img.is_floating_point() else ember.float32


def affine(img, matrix: list[float], interpolation: str = "nearest", fill=None):
    _assert_grid_transform_inputs(img, matrix, interpolation, fill)
    theta = ember.tensor(matrix, dtype=_affine_dtype(img)).reshape(1, 2, 3)
    w, h = img.shape[-1], img.shape[-2]
    grid = _gen_affine_grid(theta, w=w, h=h, ow=w, oh=h)
    return _apply_grid_transform(img, grid, interpolation, fill=fill)


def _compute_affine_output_size(matrix: list[float], w: int, h: int) -> tuple[int, int]:
    """The bounding box of the image corners under ``matrix``, shifted to [0, w] x [0, h] as
    Pillow does, in float32 with values truncated to 1e-4 first (as torchvision), so exact
    multiples of 90 degrees do not grow by a pixel."""
    import numpy as np  # a pure-Python helper: four points, no tensor involved
    pts = np.array([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0],
                    [0.5 * w, 0.5 * h, 1.0], [0.5 * w, -0.5 * h, 1.0]], dtype=np.float32)
    theta = np.array(matrix, dtype=np.float32).reshape(2, 3)
    new_pts = pts @ theta.T
    shift = np.array([w * 0.5, h * 0.5], dtype=np.float32)
    min_vals = new_pts.min(axis=0) + shift
    max_vals = new_pts.max(axis=0) + shift
    tol = np.float32(1e-4)
    cmax = np.ceil(np.trunc(max_vals / tol) * tol)
    cmin = np.floor(np.trunc(min_vals / tol) * tol)
    size = cmax - cmin
    return int(size[0]), int(size[1])


def rotate(img, matrix: list[float], interpolation: str = "nearest", expand: bool = False,
           fill=None):
    _assert_grid_transform_inputs(img, matrix, interpolation, fill)
    w, h = img.shape[-1], img.shape[-2]
    ow, oh = _compute_affine_output_size(matrix, w, h) if expand else (w, h)
    theta = ember.tensor(matrix, dtype=_affine_dtype(img)).reshape(1, 2, 3)
    grid = _gen_affine_grid(theta, w=w, h=h, ow=ow, oh=oh)
    return _apply_grid_transform(img, grid, interpolation, fill=fill)


def _gaussian_kernel1d(kernel_size: int, sigma: float, dtype):
    ksize_half = (kernel_size - 1) * 0.5
    x = ember.linspace(-ksize_half, ksize_half, steps=kernel_size, dtype=dtype)
    pdf = ember.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


def _gaussian_kernel2d(kernel_size, sigma, dtype):
    kx = _gaussian_kernel1d(kernel_size[0], sigma[0], dtype)
    ky = _gaussian_kernel1d(kernel_size[1], sigma[1], dtype)
    return ember.mm(ky[:, None], kx[None, :])


def gaussian_blur(img, kernel_size: list[int], sigma: list[float]):
    """A depthwise conv with the normalised Gaussian ``exp(-x^2 / (2 sigma^2))``, reflect-padded."""
    _assert_image_tensor(img)
    dtype = img.dtype if img.is_floating_point() else ember.float32
    kernel = _gaussian_kernel2d(kernel_size, sigma, dtype)
    x, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [kernel.dtype])
    kernel = kernel.expand(x.shape[-3], 1, kernel.shape[0], kernel.shape[1])
    padding = [kernel_size[0] // 2, kernel_size[0] // 2, kernel_size[1] // 2, kernel_size[1] // 2]
    x = F_nn.pad(x, padding, mode="reflect")
    x = F_nn.conv2d(x, kernel, groups=x.shape[-3])
    return _cast_squeeze_out(x, need_cast, need_squeeze, out_dtype)


def normalize(tensor, mean, std, inplace: bool = False):
    """``(tensor - mean) / std`` per channel."""
    _assert_image_tensor(tensor)
    if not tensor.is_floating_point():
        raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
    if tensor.ndim < 3:
        raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got "
                         f"tensor.size() = {tensor.size()}")
    if not inplace:
        tensor = tensor.clone()
    dtype = tensor.dtype
    mean = ember.as_tensor(mean, dtype=dtype)
    std = ember.as_tensor(std, dtype=dtype)
    if (std == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to "
                         f"division by zero.")
    if mean.ndim == 1:
        mean = mean.view(-1, 1, 1)
    if std.ndim == 1:
        std = std.view(-1, 1, 1)
    return tensor.sub_(mean).div_(std)


def erase(img, i: int, j: int, h: int, w: int, v, inplace: bool = False):
    _assert_image_tensor(img)
    if not inplace:
        img = img.clone()
    img[..., i:i + h, j:j + w] = v
    return img


def _assert_3d_1_or_3(img) -> None:
    _assert_image_tensor(img)
    if img.ndim < 3:
        raise TypeError(f"Input image tensor should have at least 3 dimensions, but found "
                        f"{img.ndim}")
    _assert_channels(img, [1, 3])


def _assert_uint8(img) -> None:
    if img.dtype != ember.uint8:
        raise TypeError(f"Only torch.uint8 image tensors are supported, but found {img.dtype}")


def invert(img):
    """``max - img``: ``1 - img`` for floats, the bitwise complement for uint8."""
    _assert_3d_1_or_3(img)
    if img.is_floating_point():
        return 1.0 - img
    if img.dtype == ember.uint8:
        return img.bitwise_not()
    return (_max_value(img.dtype) - img.to(ember.int64)).to(img.dtype)


def posterize(img, bits: int):
    """Keep the top ``bits`` bits of each uint8 value: ``img & -(2 ** (8 - bits))``."""
    _assert_3d_1_or_3(img)
    _assert_uint8(img)
    mask = -int(2 ** (8 - bits))
    return img & mask


def solarize(img, threshold: float):
    """Invert the values at or above ``threshold``."""
    _assert_3d_1_or_3(img)
    if threshold > _max_value(img.dtype):
        raise TypeError("Threshold should be less than bound of img.")
    return ember.where(img >= threshold, invert(img), img)


def _blurred_degenerate_image(img):
    """The 3x3 smoothing [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 of the interior (PIL's SMOOTH),
    the one-pixel border left as it is."""
    dtype = img.dtype if img.is_floating_point() else ember.float32
    kernel = ember.ones((3, 3), dtype=dtype)
    kernel[1, 1] = 5.0
    kernel = kernel / kernel.sum()
    x, need_cast, need_squeeze, out_dtype = _cast_squeeze_in(img, [dtype])
    kernel = kernel.expand(x.shape[-3], 1, 3, 3)
    x = F_nn.conv2d(x, kernel, groups=x.shape[-3])
    x = _cast_squeeze_out(x, need_cast, need_squeeze, out_dtype)
    result = img.clone()
    result[..., 1:-1, 1:-1] = x
    return result


def adjust_sharpness(img, sharpness_factor: float):
    if sharpness_factor < 0:
        raise ValueError(f"sharpness_factor ({sharpness_factor}) is not non-negative.")
    _assert_image_tensor(img)
    _assert_channels(img, [1, 3])
    if img.shape[-1] <= 2 or img.shape[-2] <= 2:
        return img
    return _blend(img, _blurred_degenerate_image(img), sharpness_factor)


def autocontrast(img):
    """Stretch each channel's values to the full range: ``(img - min) * max_value / (max - min)``
    (constant channels unchanged)."""
    _assert_3d_1_or_3(img)
    bound = _max_value(img.dtype)
    dtype = img.dtype if img.is_floating_point() else ember.float32
    minimum = ember.amin(img, dim=(-2, -1), keepdim=True).to(dtype)
    maximum = ember.amax(img, dim=(-2, -1), keepdim=True).to(dtype)
    # a constant channel would have an infinite scale: leave it alone (divide by 1 there)
    spread = maximum - minimum
    constant = spread == 0
    scale = bound / ember.where(constant, ember.ones_like(spread), spread)
    minimum = ember.where(constant, ember.zeros_like(minimum), minimum)
    scale = ember.where(constant, ember.ones_like(scale), scale)
    return ((img - minimum) * scale).clamp(0, bound).to(img.dtype)


def _equalize_channel(chan):
    """PIL's histogram equalisation of one uint8 channel (ImageOps.equalize's lookup table)."""
    hist = ember.bincount(chan.reshape(-1).to(ember.int64), minlength=256)
    nonzero_hist = hist[hist != 0]
    step = ember.div(nonzero_hist[:-1].sum(), 255, rounding_mode="floor")
    if int(step) == 0:
        return chan
    lut = ember.div(ember.cumsum(hist, 0) + ember.div(step, 2, rounding_mode="floor"), step,
                    rounding_mode="floor")
    lut = F_nn.pad(lut, [1, 0])[:-1].clamp(0, 255)
    return lut[chan.to(ember.int64)].to(ember.uint8)


def equalize(img):
    _assert_3d_1_or_3(img)
    _assert_uint8(img)
    flat = img.reshape((-1,) + tuple(img.shape[-2:]))
    out = ember.stack([_equalize_channel(flat[k]) for k in range(flat.shape[0])])
    return out.reshape(img.shape)
