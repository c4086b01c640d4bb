"""ember.vision.transforms against torchvision's tensor formulas written in torch (torchvision
itself cannot be installed beside torch 2.13), against NumPy/colorsys, and against Pillow."""
from __future__ import annotations

import colorsys
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.vision import io as vio
from ember.vision import transforms as T
from ember.vision import utils as vutils
from ember.vision.transforms import functional as F
from ember.vision.transforms import v2

Image = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(0)
FLOATS = [np.float32, np.float64]


def img_u8(c=3, h=13, w=17, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (c, h, w)).astype(np.uint8)


def img_f(c=3, h=13, w=17, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random((c, h, w)).astype(dtype)


def E(a):
    return ember.from_numpy(np.ascontiguousarray(a).copy())


def Tt(a):
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def npy(t):
    return t.detach().numpy()


def pil(a):
    """A PIL image from a CHW uint8 array."""
    a = np.ascontiguousarray(a.transpose(1, 2, 0))
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def close(e, t, rtol=1e-5, atol=1e-6):
    e, t = npy(e), t.detach().numpy()
    assert e.shape == t.shape and e.dtype == t.dtype, (e.shape, t.shape, e.dtype, t.dtype)
    if e.dtype.kind == "f":
        np.testing.assert_allclose(e, t, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(e, t)


# ---- torchvision's tensor kernels, written in torch (the reference) ----

def tv_cast_in(img, dtypes):
    squeeze = img.ndim < 4
    if squeeze:
        img = img.unsqueeze(0)
    out = img.dtype
    cast = out not in dtypes
    if cast:
        img = img.to(dtypes[0])
    return img, cast, squeeze, out


def tv_cast_out(img, cast, squeeze, out):
    if squeeze:
        img = img.squeeze(0)
    if cast:
        if not out.is_floating_point:
            img = torch.round(img)
        img = img.to(out)
    return img


def tv_resize(img, size, mode, antialias=True):
    x, cast, sq, out = tv_cast_in(img, [torch.float32, torch.float64])
    align = False if mode in ("bilinear", "bicubic") else None
    x = TF.interpolate(x, size=size, mode=mode, align_corners=align,
                       antialias=antialias and mode in ("bilinear", "bicubic"))
    if mode == "bicubic" and out == torch.uint8:
        x = x.clamp(0, 255)
    return tv_cast_out(x, cast, sq, out)


def tv_affine_grid(theta, w, h, ow, oh):
    d = 0.5
    base = torch.empty(1, oh, ow, 3, dtype=theta.dtype)
    base[..., 0].copy_(torch.linspace(-ow * 0.5 + d, ow * 0.5 + d - 1, steps=ow))
    base[..., 1].copy_(torch.linspace(-oh * 0.5 + d, oh * 0.5 + d - 1, steps=oh).unsqueeze(-1))
    base[..., 2].fill_(1)
    rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=theta.dtype)
    return base.view(1, oh * ow, 3).bmm(rescaled).view(1, oh, ow, 2)


def tv_grid_apply(img, grid, mode, fill):
    x, cast, sq, out = tv_cast_in(img, [grid.dtype])
    if fill is not None:
        x = torch.cat((x, torch.ones_like(x[:, :1])), dim=1)
    x = TF.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        mask = x[:, -1:].expand_as(x[:, :-1])
        x = x[:, :-1]
        f = torch.tensor(fill, dtype=x.dtype).view(1, -1, 1, 1).expand_as(x)
        if mode == "nearest":
            x = torch.where(mask < 0.5, f, x)
        else:
            x = x * mask + (1.0 - mask) * f
    return tv_cast_out(x, cast, sq, out)


def tv_affine(img, matrix, mode, fill, ow=None, oh=None):
    dt = img.dtype if img.is_floating_point() else torch.float32
    theta = torch.tensor(matrix, dtype=dt).reshape(1, 2, 3)
    w, h = img.shape[-1], img.shape[-2]
    grid = tv_affine_grid(theta, w, h, ow or w, oh or h)
    return tv_grid_apply(img, grid, mode, fill)


def tv_blur(img, ksize, sigma):
    dt = img.dtype if img.is_floating_point() else torch.float32

    def k1(k, s):
        x = torch.linspace(-(k - 1) * 0.5, (k - 1) * 0.5, steps=k, dtype=dt)
        pdf = torch.exp(-0.5 * (x / s).pow(2))
        return pdf / pdf.sum()

    kernel = torch.mm(k1(ksize[1], sigma[1])[:, None], k1(ksize[0], sigma[0])[None, :])
    x, cast, sq, out = tv_cast_in(img, [dt])
    kernel = kernel.expand(x.shape[-3], 1, kernel.shape[0], kernel.shape[1])
    x = TF.pad(x, [ksize[0] // 2, ksize[0] // 2, ksize[1] // 2, ksize[1] // 2], mode="reflect")
    x = TF.conv2d(x, kernel, groups=x.shape[-3])
    return tv_cast_out(x, cast, sq, out)


def tv_blend(a, b, r):
    bound = 1.0 if a.is_floating_point() else 255
    return (r * a + (1.0 - r) * b).clamp(0, bound).to(a.dtype)


def tv_gray(img):
    r, g, b = img.unbind(-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(-3)


# ---- conversions ----

@pytest.mark.parametrize("mode,dtype", [("L", np.uint8), ("RGB", np.uint8), ("RGBA", np.uint8),
                                        ("I", np.int32), ("F", np.float32)])
def test_to_tensor_and_pil_to_tensor_modes(mode, dtype):
    c = len(mode) if mode in ("RGB", "RGBA") else 1
    raw = RNG.integers(0, 200, (9, 7, c)).astype(dtype)
    img = Image.fromarray(raw[:, :, 0] if c == 1 else raw)
    assert img.mode == mode
    chw = raw.transpose(2, 0, 1)
    t = F.to_tensor(img)
    want = chw.astype(np.float32) / 255 if dtype == np.uint8 else chw
    np.testing.assert_allclose(npy(t), want, rtol=1e-6)
    assert t.dtype == (ember.float32 if dtype == np.uint8 else ember.from_numpy(chw).dtype)
    p = F.pil_to_tensor(img)
    np.testing.assert_array_equal(npy(p), chw)


def test_to_tensor_ndarray_and_mode_1():
    a = RNG.integers(0, 256, (5, 6, 3)).astype(np.uint8)
    np.testing.assert_allclose(npy(T.ToTensor()(a)), a.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    f = RNG.random((5, 6)).astype(np.float64)
    t = F.to_tensor(f)
    assert t.dtype == ember.float64 and t.shape == (1, 5, 6)
    bw = Image.fromarray(a[:, :, 0] > 128)
    assert bw.mode == "1"
    np.testing.assert_allclose(npy(F.to_tensor(bw))[0], (a[:, :, 0] > 128).astype(np.float32))


@pytest.mark.parametrize("arr,mode", [
    (img_u8(1), "L"), (img_u8(2), "LA"), (img_u8(3), "RGB"), (img_u8(4), "RGBA"),
    (img_f(1), "F"), (img_u8(1).astype(np.int32) * 100, "I"),
])
def test_to_pil_image_modes_round_trip(arr, mode):
    out = F.to_pil_image(E(arr) if mode != "F" else E(arr), mode=None if mode != "F" else "F")
    assert out.mode == mode
    back = F.pil_to_tensor(out)
    np.testing.assert_array_equal(npy(back), arr)
    # HWC ndarrays take the same path
    assert F.to_pil_image(arr.transpose(1, 2, 0)).mode == mode


def test_to_pil_image_float_tensor_scales_by_255():
    x = img_f(3)
    out = np.asarray(T.ToPILImage()(E(x)))
    np.testing.assert_array_equal(out, (torch.from_numpy(x) * 255).byte().numpy()
                                  .transpose(1, 2, 0))


@pytest.mark.parametrize("fn,arg,exc", [
    (F.to_tensor, [1, 2], TypeError),
    (F.to_tensor, np.zeros((1, 2, 3, 4)), ValueError),
    (F.pil_to_tensor, np.zeros((2, 2)), TypeError),
    (F.to_pil_image, [1], TypeError),
    (F.to_pil_image, ember.zeros(1, 1, 2, 2), ValueError),
    (F.to_pil_image, ember.zeros(5, 2, 2), ValueError),
    (lambda x: F.to_pil_image(x, mode="RGB"), ember.zeros(1, 2, 2, dtype=ember.uint8),
     ValueError),
    (lambda x: F.to_pil_image(x, mode="L"), ember.zeros(3, 2, 2, dtype=ember.uint8),
     ValueError),
    (F.to_pil_image, np.zeros((2, 2, 3), np.float64), TypeError),
])
def test_conversion_errors(fn, arg, exc):
    with pytest.raises(exc):
        fn(arg)


# ---- resize ----

RESIZE_CASES = [
    ("bilinear", [7, 9]), ("bilinear", [26, 30]), ("bicubic", [7, 9]), ("bicubic", [20, 11]),
    ("nearest", [7, 9]), ("nearest", [26, 34]), ("nearest-exact", [9, 5]),
]


@pytest.mark.parametrize("mode,size", RESIZE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_resize_tensor_matches_interpolate(mode, size, dtype):
    x = img_u8() if dtype == np.uint8 else img_f(dtype=dtype)
    out = F.resize(E(x), size, interpolation=T.InterpolationMode(mode))
    close(out, tv_resize(Tt(x), size, mode), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("antialias", [True, False])
def test_resize_batched_and_antialias_flag(antialias):
    x = RNG.random((2, 4, 3, 16, 12)).astype(np.float32)
    out = F.resize(E(x), [8, 5], antialias=antialias)
    want = tv_resize(Tt(x.reshape(8, 3, 16, 12)), [8, 5], "bilinear", antialias)
    close(out, want.reshape(2, 4, 3, 8, 5))


@pytest.mark.parametrize("size,max_size,want", [
    (10, None, (10, 13)), ([10], None, (10, 13)), ((6, 4), None, (6, 4)),
    (10, 12, (9, 12)), (13, None, None),
])
def test_resize_output_size(size, max_size, want):
    x = E(img_f(h=13, w=17))
    out = T.Resize(size, max_size=max_size)(x)
    if want is None:  # already that size: returned as is
        assert out is x
    else:
        assert tuple(out.shape[-2:]) == want
        assert pil(img_u8(h=13, w=17)).resize((17, 13)).size == (17, 13)
        assert F.resize(pil(img_u8(h=13, w=17)), size, max_size=max_size).size == want[::-1]


def test_resize_pil_matches_tensor_antialias():
    # torchvision's own check: the antialiased tensor resize agrees with Pillow's
    x = img_u8(3, 40, 48, seed=3)
    for size in ([17, 21], [60, 64]):
        t = npy(F.resize(E(x), size)).astype(np.float64)
        p = F.pil_to_tensor(F.resize(pil(x), size)).numpy().astype(np.float64)
        assert np.abs(t - p).max() <= 1


@pytest.mark.parametrize("args,exc", [
    (([1, 2, 3],), ValueError), (("10",), TypeError), (([10, 10], "bilinear"), TypeError),
    (([10, 10], T.InterpolationMode.BILINEAR, 20), ValueError),
    ((10, T.InterpolationMode.BILINEAR, 8), ValueError),
])
def test_resize_errors(args, exc):
    with pytest.raises(exc):
        F.resize(E(img_f()), *args)


def test_resize_gradient_matches_torch():
    x = img_f(dtype=np.float64)
    xe, xt = E(x).requires_grad_(), Tt(x).requires_grad_()
    g = RNG.random((3, 6, 8))
    F.resize(xe, [6, 8]).backward(E(g))
    tv_resize(xt, [6, 8], "bilinear").backward(Tt(g))
    np.testing.assert_allclose(npy(xe.grad), xt.grad.numpy(), rtol=1e-10)


# ---- crops, pads, flips (exact) ----

@pytest.mark.parametrize("box", [(2, 3, 5, 6), (0, 0, 13, 17), (-2, -3, 6, 8), (8, 12, 9, 9)])
def test_crop_tensor_and_pil(box):
    x = img_u8()
    top, left, h, w = box
    ref = np.zeros((3, h, w), np.uint8)
    for i in range(h):
        for j in range(w):
            if 0 <= top + i < 13 and 0 <= left + j < 17:
                ref[:, i, j] = x[:, top + i, left + j]
    np.testing.assert_array_equal(npy(F.crop(E(x), *box)), ref)
    np.testing.assert_array_equal(npy(F.pil_to_tensor(F.crop(pil(x), *box))), ref)


@pytest.mark.parametrize("size", [5, (4, 6), [3], (15, 20), (13, 18)])
def test_center_crop_tensor_equals_pil(size):
    x = img_u8()
    a = npy(F.center_crop(E(x), size))
    b = npy(F.pil_to_tensor(T.CenterCrop(size)(pil(x))))
    np.testing.assert_array_equal(a, b)
    s = (size, size) if isinstance(size, int) else (size[0],) * 2 if len(size) == 1 else size
    assert a.shape[-2:] == tuple(s)


_NP_MODE = {"constant": "constant", "edge": "edge", "reflect": "reflect",
            "symmetric": "symmetric"}


@pytest.mark.parametrize("padding", [2, [1, 3], (1, 2, 3, 4), [3]])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_tensor_and_pil_match_numpy(padding, mode):
    x = img_u8()
    p = [padding] * 4 if isinstance(padding, int) else list(padding) * (4 // len(padding)) \
        if len(padding) != 2 else [padding[0], padding[1]] * 2
    left, top, right, bottom = p
    kw = {"constant_values": 7} if mode == "constant" else {}
    ref = np.pad(x, ((0, 0), (top, bottom), (left, right)), mode=_NP_MODE[mode], **kw)
    fill = 7 if mode == "constant" else 0
    np.testing.assert_array_equal(npy(F.pad(E(x), padding, fill, mode)), ref)
    np.testing.assert_array_equal(npy(F.pil_to_tensor(T.Pad(padding, fill, mode)(pil(x)))), ref)
    xf = img_f(dtype=np.float64)
    reff = np.pad(xf, ((0, 0), (top, bottom), (left, right)), mode=_NP_MODE[mode], **kw)
    np.testing.assert_array_equal(npy(F.pad(E(xf), padding, fill, mode)), reff)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_negative_crops(mode):
    x = img_u8()
    out = npy(F.pad(E(x), [-1, 2, 3, -2], padding_mode=mode))
    # left -1 and bottom -2 crop; top 2 and right 3 pad
    ref = np.pad(x[:, :-2, 1:], ((0, 0), (2, 0), (0, 3)), mode=_NP_MODE[mode])
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("kwargs,exc", [
    (dict(padding="1"), TypeError), (dict(padding=[1, 2, 3]), ValueError),
    (dict(padding=1, fill="x"), TypeError), (dict(padding=1, padding_mode="wrap"), ValueError),
])
def test_pad_errors(kwargs, exc):
    with pytest.raises(exc):
        F.pad(E(img_u8()), **kwargs)
    with pytest.raises(exc):
        T.Pad(**kwargs)


def test_flips():
    x = img_u8()
    np.testing.assert_array_equal(npy(F.hflip(E(x))), x[..., ::-1])
    np.testing.assert_array_equal(npy(F.vflip(E(x))), x[..., ::-1, :])
    np.testing.assert_array_equal(npy(F.pil_to_tensor(F.hflip(pil(x)))), x[..., ::-1])
    np.testing.assert_array_equal(npy(F.pil_to_tensor(F.vflip(pil(x)))), x[..., ::-1, :])
    assert np.array_equal(npy(T.RandomHorizontalFlip(p=1.0)(E(x))), x[..., ::-1])
    assert np.array_equal(npy(T.RandomVerticalFlip(p=0.0)(E(x))), x)


def test_five_and_ten_crop():
    x = E(img_u8())
    crops = F.ten_crop(x, [4, 5])
    assert len(crops) == 10
    np.testing.assert_array_equal(npy(crops[0]), npy(x)[:, :4, :5])
    np.testing.assert_array_equal(npy(crops[3]), npy(x)[:, -4:, -5:])
    np.testing.assert_array_equal(npy(crops[5]), npy(x)[:, :4, ::-1][:, :, :5])
    with pytest.raises(ValueError):
        F.five_crop(x, 20)


# ---- rotate and affine ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("angle,expand,center,fill", [
    (30.0, False, None, None), (-45.0, True, None, [1.0, 2.0, 3.0]), (17.0, False, [3, 4], None),
    (90.0, True, None, [0.0, 0.0, 0.0]), (123.0, True, [0, 0], [5.0]),
])
def test_rotate_tensor_matches_grid_sample(dtype, mode, angle, expand, center, fill):
    x = img_u8() if dtype == np.uint8 else img_f(dtype=dtype)
    out = F.rotate(E(x), angle, T.InterpolationMode(mode), expand, center, fill)
    cf = [0.0, 0.0] if center is None else [c - s * 0.5 for c, s in zip(center, [17, 13])]
    matrix = F._get_inverse_affine_matrix(cf, -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
    ow, oh = (out.shape[-1], out.shape[-2])
    ref = tv_affine(Tt(x), matrix, mode, fill, ow, oh)
    # where the sampling point falls exactly between two pixels (a quarter turn of an odd-sized
    # image), a 1-ulp difference in the grid may pick the other neighbour (torch's bmm and
    # NumPy's sum in different orders): those pixels are compared loosely
    dt = torch.float64 if dtype == np.float64 else torch.float32
    grid = tv_affine_grid(torch.tensor(matrix, dtype=dt).reshape(1, 2, 3), 17, 13, ow, oh)
    src = ((grid[0] + 1) * torch.tensor([17, 13], dtype=dt) - 1) / 2
    tie = ((src - src.floor() - 0.5).abs() < 1e-6).any(-1).numpy()
    e, t = npy(out), ref.numpy()
    if mode == "nearest":
        e, t = e[:, ~tie], t[:, ~tie]
    if dtype == np.uint8:
        assert np.abs(e.astype(int) - t.astype(int)).max() <= (1 if mode == "bilinear" else 0)
    else:
        np.testing.assert_allclose(e, t, rtol=1e-5, atol=1e-5)


def test_rotate_expand_sizes_and_rot90():
    x = img_u8(h=10, w=16)
    # exact multiples of 90 degrees must not gain a pixel from rounding
    assert F.rotate(E(x), 90.0, expand=True).shape == (3, 16, 10)
    for angle in (45.0, 30.0, -100.0):
        # the expanded canvas is Pillow's
        w, h = F.rotate(pil(x), angle, expand=True).size
        assert F.rotate(E(x), angle, expand=True).shape == (3, h, w)
    # a square image turned a quarter counter-clockwise is torch.rot90, pixel for pixel
    sq = img_u8(h=12, w=12)
    np.testing.assert_array_equal(npy(F.rotate(E(sq), 90.0)), np.rot90(sq, 1, axes=(1, 2)))
    np.testing.assert_array_equal(npy(F.pil_to_tensor(F.rotate(pil(sq), 90.0))),
                                  np.rot90(sq, 1, axes=(1, 2)))


@pytest.mark.parametrize("angle,translate,scale,shear,center", [
    (0.0, [0, 0], 1.0, [0.0, 0.0], None), (25.0, [2, -3], 0.8, [10.0, -5.0], None),
    (-60.0, [1, 1], 1.3, [0.0, 20.0], [2, 9]), (10.0, [0, 4], 1.0, 15.0, None),
])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_affine_tensor_matches_grid_sample(angle, translate, scale, shear, center, mode):
    x = img_f(dtype=np.float64)
    out = F.affine(E(x), angle, translate, scale, shear, T.InterpolationMode(mode), None, center)
    cf = [0.0, 0.0] if center is None else [c - s * 0.5 for c, s in zip(center, [17, 13])]
    sh = [shear, 0.0] if isinstance(shear, float) else shear
    matrix = F._get_inverse_affine_matrix(cf, angle, [float(t) for t in translate], scale, sh)
    close(out, tv_affine(Tt(x), matrix, mode, None), rtol=1e-9, atol=1e-10)


def test_affine_identity_and_translation_are_exact():
    x = img_u8()
    np.testing.assert_array_equal(npy(F.affine(E(x), 0.0, [0, 0], 1.0, 0.0)), x)
    moved = npy(F.affine(E(x), 0.0, [2, 1], 1.0, 0.0))
    np.testing.assert_array_equal(moved[:, 1:, 2:], x[:, :-1, :-2])
    p = F.pil_to_tensor(F.affine(pil(x), 0.0, [2, 1], 1.0, 0.0)).numpy()
    np.testing.assert_array_equal(p, moved)


def test_rotate_pil_agrees_with_tensor():
    x = img_u8(h=20, w=20, seed=5)
    t = npy(F.rotate(E(x), 33.0))
    p = F.pil_to_tensor(F.rotate(pil(x), 33.0)).numpy()
    # nearest sampling: the two differ only on a few pixels where a source position ties
    assert (t != p).any(axis=0).mean() < 0.05


def test_affine_gradient_matches_torch():
    x = img_f(dtype=np.float64)
    xe, xt = E(x).requires_grad_(), Tt(x).requires_grad_()
    m = F._get_inverse_affine_matrix([0.0, 0.0], 20.0, [1.0, 0.0], 1.1, [5.0, 0.0])
    g = RNG.random(x.shape)
    F.affine(xe, 20.0, [1, 0], 1.1, [5.0, 0.0], T.InterpolationMode.BILINEAR).backward(E(g))
    tv_affine(xt, m, "bilinear", None).backward(Tt(g))
    np.testing.assert_allclose(npy(xe.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("call,exc", [
    (lambda x: F.rotate(x, "10"), TypeError),
    (lambda x: F.rotate(x, 10.0, center=3), TypeError),
    (lambda x: F.rotate(x, 10.0, interpolation=T.InterpolationMode.BICUBIC), ValueError),
    (lambda x: F.affine(x, 0.0, [1], 1.0, 0.0), ValueError),
    (lambda x: F.affine(x, 0.0, 1, 1.0, 0.0), TypeError),
    (lambda x: F.affine(x, 0.0, [1, 1], 0.0, 0.0), ValueError),
    (lambda x: F.affine(x, 0.0, [1, 1], 1.0, [1.0, 2.0, 3.0]), ValueError),
    (lambda x: F.rotate(x, 10.0, fill=[1.0, 2.0]), ValueError),
    (lambda x: T.RandomRotation(-5), ValueError),
    (lambda x: T.RandomRotation([1, 2, 3]), ValueError),
    (lambda x: T.RandomAffine(5, translate=(0.5, 1.5)), ValueError),
    (lambda x: T.RandomAffine(5, scale=(0.0, 1.0)), ValueError),
    (lambda x: T.RandomAffine(5, shear=(1, 2, 3)), ValueError),
    (lambda x: T.RandomAffine(5, translate=0.5), TypeError),
])
def test_geometry_errors(call, exc):
    with pytest.raises(exc):
        call(E(img_f()))


# ---- colour ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("factor", [0.0, 0.4, 1.7])
def test_brightness_contrast_saturation_match_formulas(dtype, factor):
    x = img_u8() if dtype == np.uint8 else img_f(dtype=dtype)
    xt = Tt(x)
    close(F.adjust_brightness(E(x), factor), tv_blend(xt, torch.zeros_like(xt), factor))
    fdt = xt.dtype if xt.is_floating_point() else torch.float32
    mean = tv_gray(xt).to(fdt).mean(dim=(-3, -2, -1), keepdim=True)
    close(F.adjust_contrast(E(x), factor), tv_blend(xt, mean, factor))
    close(F.adjust_saturation(E(x), factor), tv_blend(xt, tv_gray(xt), factor))
    close(F.rgb_to_grayscale(E(x)), tv_gray(xt))


@pytest.mark.parametrize("fn,factor", [(F.adjust_brightness, 1.3), (F.adjust_contrast, 0.6),
                                       (F.adjust_saturation, 1.5), (F.adjust_hue, 0.2),
                                       (F.adjust_hue, -0.3)])
def test_colour_pil_agrees_with_tensor(fn, factor):
    x = img_u8(h=16, w=16, seed=7)
    t = npy(fn(E(x), factor)).astype(int)
    p = F.pil_to_tensor(fn(pil(x), factor)).numpy().astype(int)
    # Pillow rounds where torchvision's tensor path truncates, and its HSV is 8-bit
    tol = 2 if fn is not F.adjust_hue else 12
    assert np.abs(t - p).max() <= tol
    assert np.abs(t - p).mean() <= (1.0 if fn is not F.adjust_hue else 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hue", [-0.5, -0.2, 0.0, 0.15, 0.5])
def test_adjust_hue_matches_colorsys(dtype, hue):
    x = img_f(h=5, w=6, dtype=dtype, seed=2)
    out = npy(F.adjust_hue(E(x), hue))
    ref = np.empty_like(x, dtype=np.float64)
    for i in range(5):
        for j in range(6):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].astype(np.float64))
            ref[:, i, j] = colorsys.hsv_to_rgb((h + hue) % 1.0, s, v)
    # computed in float32 whatever the input, as torchvision converts to float32
    np.testing.assert_allclose(out, ref, atol=2e-6)
    assert out.dtype == dtype


def test_hue_on_uint8_and_grayscale_identity():
    x = img_u8(seed=4)
    out = F.adjust_hue(E(x), 0.1)
    assert out.dtype == ember.uint8
    g = E(img_u8(1))
    assert F.adjust_hue(g, 0.3) is g and F.adjust_saturation(g, 0.3) is g


def test_grayscale_pil_and_three_channels():
    x = img_u8(seed=8)
    t = npy(T.Grayscale(3)(E(x)))
    assert t.shape == (3, 13, 17) and (t[0] == t[2]).all()
    p = F.pil_to_tensor(T.Grayscale(1)(pil(x))).numpy().astype(int)
    assert np.abs(p - t[:1].astype(int)).max() <= 1
    assert T.Grayscale(3)(pil(x)).mode == "RGB"


@pytest.mark.parametrize("call,exc", [
    (lambda x: F.adjust_hue(x, 0.6), ValueError),
    (lambda x: F.adjust_brightness(x, -1), ValueError),
    (lambda x: F.adjust_contrast(x, -0.1), ValueError),
    (lambda x: F.adjust_saturation(x, -0.1), ValueError),
    (lambda x: F.rgb_to_grayscale(x[:2]), TypeError),
    (lambda x: F.rgb_to_grayscale(x, 2), ValueError),
    (lambda x: T.ColorJitter(brightness=-1), ValueError),
    (lambda x: T.ColorJitter(hue=0.7), ValueError),
    (lambda x: T.ColorJitter(contrast="a"), TypeError),
    (lambda x: T.ColorJitter(saturation=[1, 2, 3]), TypeError),
    (lambda x: F.adjust_brightness([1], 0.5), TypeError),
])
def test_colour_errors(call, exc):
    with pytest.raises(exc):
        call(E(img_f()))


def test_color_jitter_params_and_determinism():
    cj = T.ColorJitter(brightness=0.5, contrast=(0.2, 0.9), hue=0.1)
    assert cj.brightness == (0.5, 1.5) and cj.contrast == (0.2, 0.9) and cj.saturation is None
    x = E(img_f())
    ember.manual_seed(3)
    a = cj(x)
    ember.manual_seed(3)
    b = cj(x)
    np.testing.assert_array_equal(npy(a), npy(b))
    assert not np.array_equal(npy(a), npy(x))


# ---- blur, normalize, dtype, erasing ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("ksize,sigma", [([3, 3], [1.0, 1.0]), ([5, 3], [0.8, 2.0]),
                                         ([7, 7], None)])
def test_gaussian_blur_matches_conv(dtype, ksize, sigma):
    x = img_u8() if dtype == np.uint8 else img_f(dtype=dtype)
    out = F.gaussian_blur(E(x), ksize, sigma)
    s = sigma or [k * 0.15 + 0.35 for k in ksize]
    ref = tv_blur(Tt(x), ksize, s)
    if dtype == np.uint8:
        # float32 sums in another order may land on the other side of a .5 before rounding
        diff = np.abs(npy(out).astype(int) - ref.numpy().astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    else:
        close(out, ref, rtol=1e-5, atol=1e-6)
    if dtype == np.uint8:  # the PIL path goes through the same tensor kernel
        p = F.pil_to_tensor(F.gaussian_blur(pil(x), ksize, sigma)).numpy()
        np.testing.assert_array_equal(p, npy(out))


@pytest.mark.parametrize("call,exc", [
    (lambda x: F.gaussian_blur(x, 4), ValueError), (lambda x: F.gaussian_blur(x, [3]), ValueError),
    (lambda x: F.gaussian_blur(x, 3, -1.0), ValueError),
    (lambda x: F.gaussian_blur(x, 3.0), TypeError),
    (lambda x: T.GaussianBlur(4), ValueError), (lambda x: T.GaussianBlur(3, (2.0, 1.0)),
                                                ValueError),
    (lambda x: T.GaussianBlur(3, 0), ValueError),
])
def test_blur_errors(call, exc):
    with pytest.raises(exc):
        call(E(img_f()))


@pytest.mark.parametrize("dtype", FLOATS)
def test_normalize(dtype):
    x = img_f(dtype=dtype)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = T.Normalize(mean, std)(E(x))
    ref = (Tt(x) - torch.tensor(mean, dtype=Tt(x).dtype).view(-1, 1, 1)) / \
        torch.tensor(std, dtype=Tt(x).dtype).view(-1, 1, 1)
    close(out, ref)
    xe = E(x)
    F.normalize(xe, mean, std, inplace=True)
    close(xe, ref)
    batch = E(np.stack([x, x]))
    close(F.normalize(batch, mean, std), torch.stack([ref, ref]))


@pytest.mark.parametrize("arg,exc", [
    (img_u8(), TypeError), (np.zeros((3, 4, 4), np.float32), TypeError),
    (img_f()[0], ValueError),
])
def test_normalize_errors(arg, exc):
    x = E(arg) if exc is not TypeError or arg.dtype == np.uint8 else arg
    with pytest.raises(exc):
        F.normalize(x, [0.5], [0.5])
    with pytest.raises(ValueError):
        F.normalize(E(img_f()), [0.5], [0.0])


@pytest.mark.parametrize("src,dst", [
    (np.uint8, ember.float32), (np.uint8, ember.float64), (np.uint8, ember.int32),
    (np.uint8, ember.int16), (np.int32, ember.uint8), (np.int16, ember.int64),
    (np.float32, ember.uint8), (np.float64, ember.int32), (np.float32, ember.int16),
    (np.float32, ember.float64),
])
def test_convert_image_dtype(src, dst):
    info = np.iinfo(src) if np.dtype(src).kind in "iu" else None
    x = (RNG.integers(0, info.max, (2, 3, 4)).astype(src) if info is not None
         else RNG.random((2, 3, 4)).astype(src))
    out = npy(T.ConvertImageDtype(dst)(E(x)))
    ndst = np.dtype(str(dst).split(".")[1])
    if info is not None and ndst.kind == "f":
        ref = x.astype(ndst) / ndst.type(info.max)
    elif info is not None:
        dmax = np.iinfo(ndst).max
        if info.max > dmax:
            ref = (x.astype(np.int64) // ((info.max + 1) // (dmax + 1))).astype(ndst)
        else:
            ref = x.astype(ndst) * ((dmax + 1) // (info.max + 1))
    elif ndst.kind == "f":
        ref = x.astype(ndst)
    else:
        ref = (x * (np.iinfo(ndst).max + 1.0 - 1e-3)).astype(ndst)
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == ndst


def test_convert_image_dtype_unsafe_casts():
    with pytest.raises(RuntimeError):
        F.convert_image_dtype(E(img_f()), ember.int32)
    with pytest.raises(RuntimeError):
        F.convert_image_dtype(E(img_f(dtype=np.float64)), ember.int64)
    with pytest.raises(TypeError):
        F.convert_image_dtype(img_f(), ember.float64)


def test_random_erasing_erases_one_box():
    x = E(img_f(h=20, w=20) + 1.0)
    ember.manual_seed(0)
    out = npy(T.RandomErasing(p=1.0, value=0)(x))
    erased = out == 0
    rows, cols = np.where(erased[0])
    assert erased.any() and (erased[0] == erased[1]).all()
    assert erased[0, rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    area = erased[0].sum() / 400
    assert 0.02 * 0.5 <= area <= 0.33 * 1.5
    rnd = npy(T.RandomErasing(p=1.0, value="random")(x))
    assert (rnd != npy(x)).any()
    per = npy(T.RandomErasing(p=1.0, value=(5, 6, 7))(x))
    assert set(np.unique(per[2][per[2] != npy(x)[2]])) <= {7.0}
    assert np.array_equal(npy(T.RandomErasing(p=0.0)(x)), npy(x))
    y = x.clone()
    T.RandomErasing(p=1.0, inplace=True)(y)
    assert (npy(y) == 0).any()


@pytest.mark.parametrize("kwargs,exc", [
    (dict(value="noise"), ValueError), (dict(scale=(0.5, 1.5)), ValueError),
    (dict(p=1.5), ValueError), (dict(value={1}), TypeError), (dict(scale=0.5), TypeError),
])
def test_random_erasing_errors(kwargs, exc):
    with pytest.raises(exc):
        T.RandomErasing(**kwargs)
    with pytest.raises(ValueError):
        T.RandomErasing(p=1.0, value=[1, 2])(E(img_f()))
    with pytest.raises(TypeError):
        F.erase(pil(img_u8()), 0, 0, 1, 1, 0)


# ---- random crops ----

@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_random_resized_crop_params_in_bounds(h, w, seed):
    ember.manual_seed(seed)
    img = E(np.zeros((1, h, w), np.float32))
    i, j, ch, cw = T.RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
    assert 0 < ch <= h and 0 < cw <= w and 0 <= i <= h - ch and 0 <= j <= w - cw


def test_random_crop_is_a_window_and_pads():
    x = img_u8(h=12, w=12)
    ember.manual_seed(1)
    out = npy(T.RandomCrop(5)(E(x)))
    found = any(np.array_equal(out, x[:, i:i + 5, j:j + 5]) for i in range(8) for j in range(8))
    assert found
    padded = T.RandomCrop((16, 18), pad_if_needed=True, fill=3)(E(x))
    assert padded.shape == (3, 16, 18)
    assert T.RandomCrop(14, padding=1)(pil(x)).size == (14, 14)
    with pytest.raises(ValueError):
        T.RandomCrop(20)(E(x))
    with pytest.raises(ValueError):
        T.CenterCrop((1, 2, 3))


def test_random_resized_crop_output_and_seed():
    x = E(img_f(h=30, w=40))
    t = T.RandomResizedCrop((8, 10), scale=(0.2, 0.9))
    ember.manual_seed(5)
    a = t(x)
    ember.manual_seed(5)
    i, j, h, w = T.RandomResizedCrop.get_params(x, (0.2, 0.9), (3 / 4, 4 / 3))
    assert a.shape == (3, 8, 10)
    close(a, tv_resize(Tt(npy(x))[:, i:i + h, j:j + w], [8, 10], "bilinear"))
    assert t(pil(img_u8(h=30, w=40))).size == (10, 8)


def test_random_rotation_and_affine_seeded():
    x = E(img_f())
    ember.manual_seed(2)
    a = T.RandomRotation((10, 20), fill=1.0)(x)
    ember.manual_seed(2)
    angle = T.RandomRotation.get_params([10.0, 20.0])
    assert 10 <= angle <= 20
    close(a, F.rotate(x, angle, fill=[1.0] * 3))
    ember.manual_seed(4)
    b = T.RandomAffine(30, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=(-5, 5, -5, 5))(x)
    ember.manual_seed(4)
    p = T.RandomAffine.get_params([-30.0, 30.0], (0.2, 0.2), (0.8, 1.2),
                                  [-5.0, 5.0, -5.0, 5.0], [17, 13])
    assert abs(p[1][0]) <= 0.2 * 17 and 0.8 <= p[2] <= 1.2
    close(b, F.affine(x, *p, fill=[0.0] * 3))
    assert T.RandomAffine(10)(pil(img_u8())).size == (17, 13)


def test_compose_lambda_apply_and_repr():
    t = T.Compose([T.Lambda(lambda v: v * 2), T.RandomApply([T.Lambda(lambda v: v + 1)], p=1.0)])
    np.testing.assert_allclose(npy(t(E(img_f()))), img_f() * 2 + 1, rtol=1e-6)
    assert repr(T.Compose([T.ToTensor()])) == "Compose(\n    ToTensor()\n)"
    assert repr(T.Normalize((0.5,), (0.2,))) == "Normalize(mean=(0.5,), std=(0.2,))"
    with pytest.raises(TypeError):
        T.Lambda(3)
    assert T.RandomGrayscale(p=1.0)(E(img_u8())).shape == (3, 13, 17)


# ---- v2 ----

def test_v2_passes_labels_and_shares_params():
    img = pil(img_u8(h=20, w=24))
    t = v2.Compose([v2.ToImage(), v2.RandomResizedCrop(8), v2.RandomHorizontalFlip(),
                    v2.ToDtype(ember.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
    out, label = t(img, 7)
    assert out.shape == (3, 8, 8) and out.dtype == ember.float32 and label == 7
    a = E(img_f(h=20, w=20))
    ember.manual_seed(0)
    s = v2.RandomRotation(40)({"x": a, "y": [pil(img_u8(h=20, w=20)), 3]})
    assert s["y"][1] == 3
    # with a PIL image in the sample, the pure tensor is left alone
    assert s["x"] is a
    p1, p2 = v2.RandomCrop(6)(pil(img_u8(h=20, w=20)), pil(img_u8(h=20, w=20)))
    assert np.array_equal(np.asarray(p1), np.asarray(p2))
    t1, t2 = v2.RandomErasing(p=1.0)(a, a)
    assert t2 is a and (npy(t1) != npy(a)).any()
    img_u = v2.ToImage()(np.zeros((4, 5, 3), np.uint8))
    assert img_u.shape == (3, 4, 5) and img_u.dtype == ember.uint8
    assert v2.ToDtype(ember.float64)(E(img_u8())).dtype == ember.float64
    assert v2.functional.to_dtype(E(img_u8()), ember.float32, scale=True).max() <= 1.0
    aug, lab = v2.TrivialAugmentWide()(pil(img_u8(h=20, w=20)), 5)
    assert aug.size == (20, 20) and lab == 5


# ---- utils and io ----

@pytest.mark.parametrize("n,nrow,padding", [(5, 2, 2), (3, 8, 0), (1, 8, 2), (6, 3, 1)])
def test_make_grid_layout(n, nrow, padding):
    x = RNG.random((n, 3, 4, 5)).astype(np.float32)
    g = npy(vutils.make_grid(E(x), nrow=nrow, padding=padding, pad_value=0.5))
    if n == 1:
        np.testing.assert_array_equal(g, x[0])
        return
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    assert g.shape == (3, rows * (4 + padding) + padding, cols * (5 + padding) + padding)
    for k in range(n):
        r, c = divmod(k, cols)
        y0, x0 = r * (4 + padding) + padding, c * (5 + padding) + padding
        np.testing.assert_array_equal(g[:, y0:y0 + 4, x0:x0 + 5], x[k])
    if padding:
        assert (g[:, :padding, :] == 0.5).all()


def test_make_grid_normalize_and_gray():
    x = RNG.random((4, 1, 3, 3)).astype(np.float32) * 10 - 3
    g = npy(vutils.make_grid(E(x), nrow=2, padding=0, normalize=True))
    assert g.shape == (3, 6, 6) and math.isclose(g.min(), 0.0) and math.isclose(g.max(), 1.0,
                                                                               rel_tol=1e-6)
    each = vutils.make_grid([E(v) for v in x], padding=0, normalize=True, scale_each=True)
    assert npy(each).max() <= 1.0
    r = npy(vutils.make_grid(E(x), normalize=True, value_range=(0.0, 1.0), padding=0))
    np.testing.assert_allclose(r[0, :3, :3], np.clip(x[0, 0], 0, 1), rtol=1e-6)
    with pytest.raises(TypeError):
        vutils.make_grid(E(x), normalize=True, value_range=[0, 1])
    with pytest.raises(TypeError):
        vutils.make_grid([E(x[0]), 3])
    with pytest.raises(TypeError):
        vutils.make_grid(x)


def test_save_image_and_read_image(tmp_path):
    x = RNG.random((2, 3, 4, 5)).astype(np.float32)
    path = tmp_path / "grid.png"
    vutils.save_image(E(x), path, nrow=2, padding=1)
    back = vio.read_image(str(path))
    grid = npy(vutils.make_grid(E(x), nrow=2, padding=1))
    np.testing.assert_array_equal(npy(back), np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8))
    assert back.dtype == ember.uint8 and back.shape == (3, 6, 13)
    gray = vio.read_image(str(path), vio.ImageReadMode.GRAY)
    assert gray.shape == (1, 6, 13)
    np.testing.assert_array_equal(npy(gray)[0], np.asarray(Image.open(path).convert("L")))
    assert vio.read_image(str(path), vio.ImageReadMode.RGB_ALPHA).shape == (4, 6, 13)
    data = vio.read_file(str(path))
    np.testing.assert_array_equal(npy(vio.decode_image(data)), npy(back))
    enc = vio.encode_png(back)
    np.testing.assert_array_equal(npy(vio.decode_png(enc)), npy(back))
    vio.write_jpeg(back, str(tmp_path / "a.jpg"), quality=95)
    assert vio.decode_jpeg(vio.read_file(str(tmp_path / "a.jpg"))).shape == (3, 6, 13)
    with pytest.raises(RuntimeError):
        vio.decode_image(ember.tensor([1, 2, 3], dtype=ember.uint8))
    with pytest.raises(RuntimeError):
        vio.decode_image(ember.zeros(3))
    with pytest.raises(ValueError):
        vio.encode_png(back, compression_level=10)


def test_import_stays_lazy():
    code = ("import sys, ember, ember.vision, ember.vision.transforms, ember.vision.datasets; "
            "assert 'PIL' not in sys.modules and 'ember.vision' not in "
            "__import__('subprocess').check_output([sys.executable, '-c', "
            "'import sys, ember; print(list(sys.modules))'], text=True); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


# ---- the AutoAugment operations and policies ----

def test_posterize_solarize_invert_autocontrast_formulas():
    x = img_u8(seed=11)
    np.testing.assert_array_equal(npy(F.posterize(E(x), 3)), x & 0b11100000)
    np.testing.assert_array_equal(npy(F.solarize(E(x), 100)), np.where(x >= 100, 255 - x, x))
    np.testing.assert_array_equal(npy(F.invert(E(x))), 255 - x)
    xf = img_f(dtype=np.float64)
    np.testing.assert_allclose(npy(F.invert(E(xf))), 1.0 - xf)
    np.testing.assert_allclose(npy(F.solarize(E(xf), 0.5)), np.where(xf >= 0.5, 1 - xf, xf))
    lo = xf.min(axis=(1, 2), keepdims=True)
    hi = xf.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(npy(F.autocontrast(E(xf))), (xf - lo) / (hi - lo), rtol=1e-12)
    const = np.full((3, 4, 4), 7, np.uint8)
    np.testing.assert_array_equal(npy(F.autocontrast(E(const))), const)


@pytest.mark.parametrize("fn,args", [(F.equalize, ()), (F.autocontrast, ()), (F.posterize, (2,)),
                                     (F.solarize, (128,)), (F.invert, ()),
                                     (F.adjust_sharpness, (1.8,)), (F.adjust_sharpness, (0.2,))])
@pytest.mark.parametrize("seed", [0, 1])
def test_autoaugment_ops_tensor_equal_pil(fn, args, seed):
    # equalize/sharpness are Pillow's own algorithms (ImageOps.equalize, ImageEnhance)
    x = img_u8(h=16, w=15, seed=seed)
    t = npy(fn(E(x), *args)).astype(int)
    p = F.pil_to_tensor(fn(pil(x), *args)).numpy().astype(int)
    # the tensor path truncates where Pillow's lookup tables round
    assert np.abs(t - p).max() <= (1 if fn in (F.adjust_sharpness, F.autocontrast) else 0)


def test_sharpness_matches_smoothing_formula():
    x = img_f(dtype=np.float64)
    k = torch.ones(3, 3, dtype=torch.float64)
    k[1, 1] = 5.0
    k = (k / k.sum()).expand(3, 1, 3, 3)
    blurred = Tt(x).clone()
    blurred[:, 1:-1, 1:-1] = TF.conv2d(Tt(x)[None], k, groups=3)[0]
    close(F.adjust_sharpness(E(x), 1.5), tv_blend(Tt(x), blurred, 1.5))
    tiny = E(img_u8(h=2, w=5))
    assert F.adjust_sharpness(tiny, 2.0) is tiny


def test_equalize_batched():
    x = RNG.integers(0, 256, (2, 3, 8, 8)).astype(np.uint8)
    out = npy(F.equalize(E(x)))
    for n in range(2):
        np.testing.assert_array_equal(out[n], npy(F.equalize(E(x[n]))))


@pytest.mark.parametrize("call,exc", [
    (lambda: F.posterize(E(img_u8()), 9), ValueError),
    (lambda: F.posterize(E(img_f()), 2), TypeError),
    (lambda: F.equalize(E(img_f())), TypeError),
    (lambda: F.solarize(E(img_f()), 2.0), TypeError),
    (lambda: F.adjust_sharpness(E(img_u8()), -1), ValueError),
    (lambda: F.invert(E(img_u8(2))), TypeError),
    (lambda: T.AutoAugment("imagenet"), ValueError),
    (lambda: T.autoaugment._apply_op(E(img_u8()), "Blur", 1.0, None, None), ValueError),
])
def test_autoaugment_errors(call, exc):
    with pytest.raises(exc):
        call()


@pytest.mark.parametrize("transform", [
    T.AutoAugment(T.AutoAugmentPolicy.IMAGENET), T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
    T.AutoAugment(T.AutoAugmentPolicy.SVHN, fill=128), T.RandAugment(),
    T.RandAugment(num_ops=3, magnitude=30, interpolation=T.InterpolationMode.BILINEAR),
    T.TrivialAugmentWide(fill=[1, 2, 3]),
])
def test_augment_policies_run_and_are_seeded(transform):
    x = E(img_u8(h=16, w=16, seed=3))
    changed = 0
    for seed in range(12):
        ember.manual_seed(seed)
        a = transform(x)
        ember.manual_seed(seed)
        b = transform(x)
        assert a.shape == x.shape and a.dtype == ember.uint8
        np.testing.assert_array_equal(npy(a), npy(b))
        changed += not np.array_equal(npy(a), npy(x))
        ember.manual_seed(seed)
        assert transform(pil(npy(x))).size == (16, 16)
    assert changed > 0
    batch = E(RNG.integers(0, 256, (2, 3, 16, 16)).astype(np.uint8))
    assert transform(batch).shape == (2, 3, 16, 16)


def test_auto_augment_applies_the_drawn_sub_policy():
    x = E(img_u8(h=16, w=16, seed=4))
    aa = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    space = T.autoaugment._space("auto", 10, [16, 16])
    for seed in range(8):
        ember.manual_seed(seed)
        out = aa(x)
        ember.manual_seed(seed)
        pid, probs, signs = T.AutoAugment.get_params(len(aa.policies))
        ref = x
        for i, (name, p, m) in enumerate(aa.policies[pid]):
            if probs[i] <= p:
                mags, signed = space[name]
                mag = 0.0 if m is None else float(mags[m])
                if signed and int(signs[i]) == 0:
                    mag = -mag
                ref = T.autoaugment._apply_op(ref, name, mag, T.InterpolationMode.NEAREST, None)
        np.testing.assert_array_equal(npy(out), npy(ref))
