"""interpolate / Upsample*, pixel_(un)shuffle, channel_shuffle, grid_sample, affine_grid."""
import math
import warnings

import numpy as np
import pytest
import torch

import ember
from opcheck import check, gradcheck, rand, assert_close, to_ember, to_torch

warnings.filterwarnings("ignore", message="Default grid_sample")


def interp(**kw):
    return lambda m, x: m.nn.functional.interpolate(x, **kw)


# ---- interpolate: every mode x align_corners x size / scale_factor ---------------------------

SIZES = [dict(scale_factor=2), dict(scale_factor=0.5), dict(scale_factor=1.7),
         dict(scale_factor=0.63), dict(scale_factor=3), dict(size=7), dict(size=2),
         dict(scale_factor=1.0), dict(scale_factor=1.9)]


@pytest.mark.parametrize("kw", SIZES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "area"])
def test_interpolate_1d(mode, kw):
    check(interp(mode=mode, **kw), None, rand(2, 3, 5, seed=1))


@pytest.mark.parametrize("shape,sf", [((1, 1, 5), 1.1), ((1, 1, 5), 2.05),
                                      ((1, 1, 5, 1, 1), (1.1, 1, 1)),
                                      ((1, 1, 5, 2), (2.05, 1.1))])
def test_nearest_scale_with_same_or_double_size(shape, sf):
    # 1-D / 3-D nearest use the scale factor even when out == in or out == 2 in, the 2-D kernel
    # does not; PyTorch's backward always takes the shortcut (not the adjoint of its 1-D/3-D
    # forward), so ember's gradient is checked against finite differences instead
    check(interp(scale_factor=sf), None, rand(*shape, seed=1), grad=False)
    assert gradcheck(lambda x: ember.nn.functional.interpolate(x, scale_factor=sf),
                     rand(*shape, seed=1))


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("kw", SIZES[:7])
def test_interpolate_linear_align(align, kw):
    check(interp(mode="linear", align_corners=align, **kw), None, rand(2, 3, 5, seed=2))


SIZES2 = [dict(scale_factor=2), dict(scale_factor=(0.5, 1.5)), dict(scale_factor=(1.3, 0.7)),
          dict(size=(4, 9)), dict(size=(1, 1)), dict(size=5), dict(scale_factor=1.0),
          dict(scale_factor=(2.5, 3))]


@pytest.mark.parametrize("kw", SIZES2)
@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("bilinear", False), ("bilinear", True),
                                        ("bicubic", False), ("bicubic", True), ("area", None)])
def test_interpolate_2d(mode, align, kw):
    check(interp(mode=mode, align_corners=align, **kw), None, rand(2, 3, 5, 7, seed=3))


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=(0.5, 1.5, 1.3)),
                                dict(size=(3, 2, 5)), dict(size=1)])
@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("trilinear", False), ("trilinear", True),
                                        ("area", None)])
def test_interpolate_3d(mode, align, kw):
    check(interp(mode=mode, align_corners=align, **kw), None, rand(1, 2, 3, 4, 5, seed=4))


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=0.4),
                                dict(size=(3, 11)), dict(scale_factor=(1.7, 0.45))])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "lanczos"])
def test_interpolate_antialias(mode, kw):
    check(interp(mode=mode, antialias=True, **kw), None, rand(2, 2, 9, 8, seed=5))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_interpolate_recompute_scale_factor(mode):
    check(interp(mode=mode, scale_factor=1.37, recompute_scale_factor=True), None,
          rand(1, 2, 6, 7, seed=6))
    check(interp(mode=mode, scale_factor=(0.71, 1.9), recompute_scale_factor=False), None,
          rand(1, 2, 6, 7, seed=6))


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", True),
                                        ("bicubic", False)])
def test_interpolate_noncontiguous_input(mode, align):
    def fn(m, x):
        return m.nn.functional.interpolate(x.permute(0, 1, 3, 2), scale_factor=(1.5, 0.8),
                                           mode=mode, align_corners=align)
    check(fn, None, rand(1, 3, 6, 5, seed=7))


@pytest.mark.parametrize("mode,kw", [("linear", dict(size=450)), ("linear", dict(size=170)),
                                     ("nearest", dict(size=501)), ("nearest", dict(size=130)),
                                     ("nearest", dict(scale_factor=3)),
                                     ("nearest-exact", dict(size=333)), ("area", dict(size=91))])
def test_interpolate_long_axis(mode, kw):
    # axes longer than the dense-matrix limit gather taps (and transposed taps) instead
    check(interp(mode=mode, **kw), None, rand(1, 2, 400, seed=8))


def test_interpolate_long_axis_2d():
    check(interp(mode="bicubic", size=(3, 420), align_corners=True), None,
          rand(1, 1, 4, 300, seed=9))
    check(interp(mode="bilinear", size=(2, 90), antialias=True), None,
          rand(1, 1, 4, 300, seed=9))


def test_interpolate_grad_fn_names():
    x = ember.randn(1, 2, 4, 4, requires_grad=True)
    names = {"nearest": "UpsampleNearest2DBackward0",
             "nearest-exact": "UpsampleNearestExact2DBackward0",
             "bilinear": "UpsampleBilinear2DBackward0", "bicubic": "UpsampleBicubic2DBackward0",
             "area": "AdaptiveAvgPool2DBackward0"}
    for mode, name in names.items():
        assert ember.nn.functional.interpolate(x, scale_factor=2, mode=mode).grad_fn.name() == name
    y = ember.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)
    assert y.grad_fn.name() == "UpsampleBilinear2DAaBackward0"
    x3 = ember.randn(1, 2, 4, requires_grad=True)
    assert ember.nn.functional.interpolate(x3, size=3, mode="linear").grad_fn.name() == \
        "UpsampleLinear1DBackward0"
    x5 = ember.randn(1, 1, 2, 2, 2, requires_grad=True)
    assert ember.nn.functional.interpolate(x5, size=3, mode="trilinear").grad_fn.name() == \
        "UpsampleTrilinear3DBackward0"


@pytest.mark.parametrize("mode,align", [("bilinear", False), ("bicubic", True),
                                        ("nearest", None), ("area", None)])
def test_interpolate_double_backward(mode, align):
    a = rand(1, 2, 3, 4, seed=10)
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        x = conv(a, True)
        y = m.nn.functional.interpolate(x, scale_factor=(1.5, 2), mode=mode, align_corners=align)
        w = conv(rand(*y.shape, seed=11))
        gx, = m.autograd.grad((y * y * w).sum(), x, create_graph=True)
        gg, = m.autograd.grad((gx * gx).sum(), x)
        res.append((gx, gg))
    assert_close(res[0], res[1])


@pytest.mark.parametrize("mode,kw", [("bilinear", dict(scale_factor=1.5)),
                                     ("bicubic", dict(size=(5, 2))),
                                     ("bilinear", dict(size=(2, 3), antialias=True)),
                                     ("nearest-exact", dict(scale_factor=0.7))])
def test_interpolate_gradcheck(mode, kw):
    assert gradcheck(lambda x: ember.nn.functional.interpolate(x, mode=mode, **kw),
                     rand(1, 2, 3, 4, seed=12))


def test_interpolate_dtypes():
    a = rand(1, 2, 4, 5, seed=13)
    for dt in ("float16", "bfloat16"):
        e = ember.nn.functional.interpolate(to_ember(a).to(getattr(ember, dt)),
                                            scale_factor=2, mode="bilinear")
        t = torch.nn.functional.interpolate(to_torch(a).to(getattr(torch, dt)),
                                            scale_factor=2, mode="bilinear")
        assert e.dtype == getattr(ember, dt)
        np.testing.assert_allclose(e.float().numpy(), t.float().numpy(), rtol=2e-2, atol=2e-2)
    u = (a * 50 + 100).astype(np.uint8)
    e = ember.nn.functional.interpolate(ember.from_numpy(u), scale_factor=1.5)
    t = torch.nn.functional.interpolate(torch.from_numpy(u), scale_factor=1.5)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    assert e.dtype == ember.uint8


def test_interpolate_empty_batch():
    check(interp(mode="bilinear", scale_factor=2), None, rand(0, 2, 3, 3))


def test_deprecated_aliases():
    a = rand(1, 2, 3, 4, seed=14)
    F = ember.nn.functional
    for fn, tfn, kw in ((F.upsample, torch.nn.functional.upsample, dict(mode="bilinear")),
                        (F.upsample_nearest, torch.nn.functional.upsample_nearest, {}),
                        (F.upsample_bilinear, torch.nn.functional.upsample_bilinear, {})):
        with pytest.warns(UserWarning, match="is deprecated"):
            e = fn(to_ember(a), scale_factor=2, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = tfn(to_torch(a), scale_factor=2, **kw)
        assert_close(e, t)


def _raises_like(fn):
    """ember raises what torch raises: the same exception type and message."""
    with pytest.raises(Exception) as te:
        fn(torch)
    with pytest.raises(type(te.value)) as ee:
        fn(ember)
    assert type(ee.value) is type(te.value)
    assert str(ee.value).replace("ember.", "torch.") == str(te.value)


@pytest.mark.parametrize("call", [
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, align_corners=True),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, scale_factor=2),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4)),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=(2, 3, 4)),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), scale_factor=(2, 3, 4)),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=(2.5, 3)),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3,
                                          recompute_scale_factor=True),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, mode="linear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4), size=3, mode="bilinear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4), size=3, mode="trilinear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4, 4), size=3, mode="bilinear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4, 4), size=3, mode="bicubic"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 4), size=3),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, mode="foo"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=0),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), scale_factor=0.1,
                                          mode="bilinear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4), size=0, mode="linear"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4, 4), size=(0, 1, 1)),
    lambda m: m.nn.functional.interpolate(m.ones(1, 0, 4, 4), size=3),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 0, 4), size=3),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, antialias=True),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, mode="lanczos"),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), size=3, mode="lanczos",
                                          antialias=True, align_corners=True),
    lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4, dtype=m.long), size=3,
                                          mode="bicubic"),
])
def test_interpolate_errors(call):
    _raises_like(call)


# ---- modules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda nn: nn.Upsample(scale_factor=2),
    lambda nn: nn.Upsample(size=(3, 5), mode="bilinear"),
    lambda nn: nn.Upsample(scale_factor=(1.5, 2), mode="bicubic", align_corners=True),
    lambda nn: nn.UpsamplingNearest2d(scale_factor=2),
    lambda nn: nn.UpsamplingNearest2d(size=5),
    lambda nn: nn.UpsamplingBilinear2d(scale_factor=2),
    lambda nn: nn.PixelShuffle(2),
    lambda nn: nn.PixelUnshuffle(2),
    lambda nn: nn.ChannelShuffle(4),
])
def test_modules(make):
    em, tm = make(ember.nn), make(torch.nn)
    assert repr(em) == repr(tm)
    assert list(em.state_dict()) == list(tm.state_dict())
    check(lambda x: em(x), lambda x: tm(x), rand(2, 8, 4, 6, seed=15))


# ---- pixel shuffle / channel shuffle ---------------------------------------------------------


@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((1, 9, 2, 2), 3), ((3, 2, 4, 2, 3), 1),
                                     ((4, 3, 2), 1), ((2, 3, 18, 1, 1), 3)])
def test_pixel_shuffle(shape, r):
    check(lambda m, x: m.nn.functional.pixel_shuffle(x, r), None, rand(*shape, seed=16))
    x = rand(*shape[:-2], shape[-2] * r, shape[-1] * r, seed=17)
    check(lambda m, x: m.nn.functional.pixel_unshuffle(x, r), None, x)


def test_pixel_shuffle_round_trip_and_double_backward():
    x = ember.randn(2, 3, 8, 4, 6, requires_grad=True)
    F = ember.nn.functional
    y = F.pixel_shuffle(x, 2)
    assert y.shape == (2, 3, 2, 8, 12) and y.grad_fn.name() == "PixelShuffleBackward0"
    assert F.pixel_unshuffle(y, 2).grad_fn.name() == "PixelUnshuffleBackward0"
    assert (F.pixel_unshuffle(y, 2) == x).all()
    assert (F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2) == x).all()
    g, = ember.autograd.grad((y ** 2).sum(), x, create_graph=True)
    gg, = ember.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), 2 * x.detach().numpy())
    np.testing.assert_allclose(gg.numpy(), 2 * np.ones(x.shape))
    assert gradcheck(lambda t: F.pixel_shuffle(t, 2), rand(1, 4, 2, 3))


@pytest.mark.parametrize("shape,groups", [((2, 8, 3, 3), 2), ((2, 8, 3), 4), ((1, 6, 2, 2, 2), 3),
                                          ((2, 8, 3, 3), 1), ((2, 8, 3, 3), 8)])
def test_channel_shuffle(shape, groups):
    check(lambda m, x: m.nn.functional.channel_shuffle(x, groups), None, rand(*shape, seed=18))
    x = ember.randn(*shape, requires_grad=True)
    assert ember.nn.functional.channel_shuffle(x, groups).grad_fn.name() == \
        "ChannelShuffleBackward0"


@pytest.mark.parametrize("call", [
    lambda m: m.nn.functional.pixel_shuffle(m.ones(2, 8, 4, 4), 3),
    lambda m: m.nn.functional.pixel_shuffle(m.ones(8, 4), 2),
    lambda m: m.nn.functional.pixel_shuffle(m.ones(2, 8, 4, 4), 0),
    lambda m: m.nn.functional.pixel_shuffle(m.ones(2, 8, 4, 4), 2.0),
    lambda m: m.nn.functional.pixel_unshuffle(m.ones(2, 8, 4, 6), 3),
    lambda m: m.nn.functional.pixel_unshuffle(m.ones(2, 8, 6, 4), 3),
    lambda m: m.nn.functional.pixel_unshuffle(m.ones(4, 4), 2),
    lambda m: m.nn.functional.pixel_unshuffle(m.ones(2, 4, 4), -1),
    lambda m: m.nn.functional.channel_shuffle(m.ones(2, 8, 4), 3),
    lambda m: m.nn.functional.channel_shuffle(m.ones(2, 8, 4), 0),
    lambda m: m.nn.functional.channel_shuffle(m.ones(2, 8), 2),
    lambda m: m.nn.functional.channel_shuffle(m.ones(2, 8, 3), 2.0),
    lambda m: m.nn.ChannelShuffle(3)(m.ones(2, 8, 4)),
])
def test_shuffle_errors(call):
    _raises_like(call)


# ---- grid_sample / affine_grid ---------------------------------------------------------------


def _grid(*shape, seed):
    return rand(*shape, low=-1.3, high=1.3, seed=seed)  # some points outside [-1, 1]


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_2d(mode, padding, align):
    def fn(m, x, g):
        return m.nn.functional.grid_sample(x, g, mode=mode, padding_mode=padding,
                                           align_corners=align)
    check(fn, None, rand(2, 3, 5, 6, seed=19), _grid(2, 4, 3, 2, seed=20))


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_3d(mode, padding, align):
    def fn(m, x, g):
        return m.nn.functional.grid_sample(x, g, mode=mode, padding_mode=padding,
                                           align_corners=align)
    check(fn, None, rand(2, 2, 3, 4, 5, seed=21), _grid(2, 2, 3, 2, 3, seed=22))


def test_grid_sample_edge_cases():
    # unit-size axes, far-away and exactly-on-border points, batch 1
    g = np.array([[[[-1.0, -1.0], [1.0, 1.0], [5.0, -7.5]], [[0.25, 3.0], [-2.0, 0.1],
                                                               [1.0, -1.0]]]])
    for mode in ("bilinear", "nearest", "bicubic"):
        for padding in ("zeros", "border", "reflection"):
            for align in (False, True):
                def fn(m, x, gr):
                    return m.nn.functional.grid_sample(x, gr, mode=mode, padding_mode=padding,
                                                       align_corners=align)
                check(fn, None, rand(1, 2, 1, 4, seed=23), g)


@pytest.mark.parametrize("mode,xshape,gshape", [
    ("bilinear", (2, 7, 5, 6), (2, 3, 4, 2)), ("nearest", (2, 7, 5, 6), (2, 3, 4, 2)),
    ("bicubic", (2, 7, 5, 6), (2, 3, 4, 2)), ("bilinear", (2, 3, 3, 4, 5), (2, 2, 3, 4, 3)),
    ("nearest", (2, 3, 3, 4, 5), (2, 2, 3, 4, 3))])
def test_grid_sample_channel_chunks(monkeypatch, mode, xshape, gshape):
    # the gather and the grad_input scatter work on chunks of channels; a chunk size of two
    # channels runs several chunks and a shorter last one (7 = 2+2+2+1, 3 = 2+1)
    from ember.ops import resample
    nd = len(xshape) - 2
    taps = {"bilinear": 2 ** nd, "nearest": 1, "bicubic": 16}[mode]
    monkeypatch.setattr(resample, "_CHUNK", 2 * taps * math.prod(gshape[:-1]) + 1)

    def fn(m, x, g):
        return m.nn.functional.grid_sample(x, g, mode=mode, padding_mode="zeros",
                                           align_corners=False)
    check(fn, None, rand(*xshape, seed=30), _grid(*gshape, seed=31))


@pytest.mark.parametrize("xshape,gshape", [((2, 0, 4, 4), (2, 3, 3, 2)),
                                           ((2, 3, 4, 4), (2, 0, 3, 2)),
                                           ((0, 3, 4, 4), (0, 3, 3, 2))])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_empty(mode, xshape, gshape):
    def fn(m, x, g):
        return m.nn.functional.grid_sample(x, g, mode=mode, align_corners=False)
    check(fn, None, rand(*xshape, seed=36), _grid(*gshape, seed=37))


@pytest.mark.parametrize("need", ["input", "grid", "both"])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grid_sample_grad_of_one_input(mode, need):
    x, g = rand(2, 3, 4, 5, seed=32), _grid(2, 3, 2, 2, seed=33)
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        xt, gt = conv(x, need != "grid"), conv(g, need != "input")
        y = m.nn.functional.grid_sample(xt, gt, mode=mode, padding_mode="reflection",
                                        align_corners=False)
        wrt = [t for t in (xt, gt) if t.requires_grad]
        res.append(m.autograd.grad((y * y).sum(), wrt))
    assert_close(res[0], res[1])


@pytest.mark.parametrize("padding", ["zeros", "reflection"])
def test_grid_sample_3d_double_backward(padding):
    x, g = rand(1, 2, 3, 4, 2, seed=38), _grid(1, 2, 2, 2, 3, seed=39)
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        xt, gt = conv(x, True), conv(g, True)
        y = m.nn.functional.grid_sample(xt, gt, padding_mode=padding, align_corners=True)
        gx, gg = m.autograd.grad((y * y).sum(), (xt, gt), create_graph=True)
        res.append(m.autograd.grad((gx * gx).sum() + (gg * gg).sum(), (xt, gt)))
    assert_close(res[0], res[1])


def test_grid_sample_nearest_double_backward():
    x, g = rand(1, 2, 3, 4, seed=34), _grid(1, 2, 3, 2, seed=35)
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        xt, gt = conv(x, True), conv(g, True)
        y = m.nn.functional.grid_sample(xt, gt, mode="nearest", align_corners=False)
        gx, = m.autograd.grad((y * y).sum(), (xt,), create_graph=True)
        res.append(m.autograd.grad((gx * gx).sum(), (xt,)))
    assert_close(res[0], res[1])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_grid_sample_gradcheck_and_double_backward(mode):
    x, g = rand(1, 2, 3, 4, seed=24), _grid(1, 2, 3, 2, seed=25)

    def fn(a, b):
        return ember.nn.functional.grid_sample(a, b, mode=mode, padding_mode="border",
                                               align_corners=False)
    assert gradcheck(fn, x, g)
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        xt, gt = conv(x, True), conv(g, True)
        y = m.nn.functional.grid_sample(xt, gt, mode=mode, padding_mode="reflection",
                                        align_corners=True)
        gx, gg = m.autograd.grad((y * y).sum(), (xt, gt), create_graph=True)
        res.append(m.autograd.grad((gx * gx).sum() + (gg * gg).sum(), (xt, gt)))
    assert_close(res[0], res[1])


@pytest.mark.parametrize("call", [
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 3, 3),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(3, 3, 3, 2),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 2),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 3, 3, 2),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4), m.ones(2, 3, 1),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 0, 4), m.ones(2, 3, 3, 2),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4, 4), m.ones(2, 3, 3, 3, 3),
                                          mode="bicubic", align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 3, 2,
                                                                     dtype=m.float64),
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 3, 2), mode="foo",
                                          align_corners=False),
    lambda m: m.nn.functional.grid_sample(m.ones(2, 3, 4, 4), m.ones(2, 3, 3, 2),
                                          padding_mode="foo", align_corners=False),
])
def test_grid_sample_errors(call):
    _raises_like(call)


def test_grid_sample_align_corners_warning():
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        ember.nn.functional.grid_sample(ember.ones(1, 1, 2, 2), ember.zeros(1, 1, 1, 2))
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        ember.nn.functional.affine_grid(ember.ones(1, 2, 3), (1, 1, 2, 2))


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 3, 1, 4), (2, 3, 1, 6)])
def test_affine_grid(size, align):
    theta = rand(2, len(size) - 2, len(size) - 1, seed=26)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unit-size grid warning
        check(lambda m, t: m.nn.functional.affine_grid(t, size, align_corners=align), None,
              theta)


def test_affine_grid_then_grid_sample():
    def fn(m, t, x):
        grid = m.nn.functional.affine_grid(t, (2, 3, 6, 5), align_corners=False)
        return m.nn.functional.grid_sample(x, grid, align_corners=False)
    check(fn, None, rand(2, 2, 3, low=-0.8, high=0.8, seed=27), rand(2, 3, 4, 4, seed=28))
    assert gradcheck(lambda t: ember.nn.functional.affine_grid(t, (1, 1, 2, 3),
                                                               align_corners=True),
                     rand(1, 2, 3, seed=29))


@pytest.mark.parametrize("call", [
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 3), (2, 3, 4, 4, 4), align_corners=False),
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 4), (2, 3, 4, 4), align_corners=False),
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 3), (2, 3, 4), align_corners=False),
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 3), (2, 3, 0, 4), align_corners=False),
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 3), (3, 3, 2, 4), align_corners=False),
    lambda m: m.nn.functional.affine_grid(m.ones(2, 2, 3, dtype=m.long), (2, 3, 2, 4),
                                          align_corners=False),
])
def test_affine_grid_errors(call):
    _raises_like(call)


@pytest.mark.parametrize("mode,kw", [("bilinear", dict(scale_factor=(2, 0.6))),
                                     ("bicubic", dict(size=(7, 3), align_corners=True)),
                                     ("nearest", dict(scale_factor=(1.5, 0.7))),
                                     ("area", dict(size=(3, 4))),
                                     ("bicubic", dict(scale_factor=0.6, antialias=True))])
def test_interpolate_taps_path(monkeypatch, mode, kw):
    # force every axis through the gathered taps (forward) and transposed taps (adjoint)
    import ember.ops.resample as R
    monkeypatch.setattr(R, "_DENSE_PER_TAP", 0)
    check(interp(mode=mode, **kw), None, rand(2, 3, 5, 6, seed=30))
