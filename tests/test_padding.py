"""F.pad (constant / reflect / replicate / circular) and the padding layers, against torch."""
import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, gradcheck, assert_close, to_ember, to_torch

MODES = ["constant", "reflect", "replicate", "circular"]

CASES = [  # (shape, pad) valid for every mode
    ((2, 3, 5), (1, 2)),
    ((3, 5), (2, 0)),
    ((1, 3, 5), (0, 4)),
    ((2, 3, 4, 5), (1, 2, 3, 0)),
    ((3, 4, 5), (2, 1, 1, 2)),
    ((2, 2, 3, 4, 5), (1, 2, 2, 1, 0, 2)),
    ((2, 3, 4, 5), (1, 1, 1, 1, 1, 1)),
    ((1, 1, 2, 2), (1, 1, 1, 1)),
]
NEG_CASES = [  # negative pads crop
    ((2, 3, 5), (-1, 2)),
    ((2, 3, 5), (2, -3)),
    ((2, 3, 5), (-2, -1)),
    ((3, 4, 5), (-1, 2, 1, -2)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,pad", CASES + NEG_CASES)
def test_pad_matches_torch(mode, shape, pad):
    if mode == "reflect" and any(p >= min(shape[-len(pad) // 2:]) for p in pad):
        pad = tuple(min(p, 1) for p in pad)
    check(lambda m, x: m.nn.functional.pad(x, pad, mode=mode), None, rand(*shape))


@pytest.mark.parametrize("shape,pad", [((2, 3, 4, 2), (1, 1, 2, 0, 1, 1, 0, 1)),
                                       ((3, 4), (-1, 2, 0, -3)), ((4,), (3, 2)),
                                       ((2, 3, 4), (0, 0, 0, 0, 2, -1))])
def test_constant_any_number_of_dims(shape, pad):
    check(lambda m, x: m.nn.functional.pad(x, pad, value=1.5), None, rand(*shape))


def test_constant_value_and_dtypes():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    for v in (None, 2, 1.5, -3.7, True):
        e = ember.nn.functional.pad(to_ember(x), (1, 2, 1, 0), value=v)
        t = torch.nn.functional.pad(to_torch(x), (1, 2, 1, 0), value=v)
        assert_close(e, t)
    b = np.array([[True, False]])
    assert_close(ember.nn.functional.pad(to_ember(b), (1, 1), value=True),
                 torch.nn.functional.pad(to_torch(b), (1, 1), value=True))
    xi = np.arange(12, dtype=np.int64).reshape(1, 3, 4)
    for mode in ("reflect", "replicate", "circular"):
        assert_close(ember.nn.functional.pad(to_ember(xi), (2, 1), mode=mode),
                     torch.nn.functional.pad(to_torch(xi), (2, 1), mode=mode))
    # a zero value is accepted by the non-constant modes, as torch does
    assert ember.nn.functional.pad(ember.ones(1, 3), (1, 1), "reflect", 0.0).shape == (1, 5)


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_and_empty_batch(mode):
    x = rand(2, 5, 4, 3)
    check(lambda m, x: m.nn.functional.pad(x.transpose(1, 3), (1, 2, 2, 1), mode=mode),
          None, x)
    check(lambda m, x: m.nn.functional.pad(x[:, :, ::2], (1, 2), mode=mode), None,
          rand(2, 3, 7))
    e = ember.nn.functional.pad(ember.zeros(0, 3, 4), (1, 1), mode=mode)
    assert tuple(e.shape) == (0, 3, 6)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_and_double_backward(mode):
    pad = (2, 1, 1, 2)
    assert gradcheck(lambda x: ember.nn.functional.pad(x, pad, mode=mode), rand(2, 3, 4))
    a = rand(2, 3, 4)
    xe, xt = to_ember(a, True), to_torch(a, True)
    ge, = ember.autograd.grad((ember.nn.functional.pad(xe, pad, mode=mode) ** 3).sum(), xe,
                              create_graph=True)
    gt, = torch.autograd.grad((torch.nn.functional.pad(xt, pad, mode=mode) ** 3).sum(), xt,
                              create_graph=True)
    assert_close(ge, gt)
    assert_close(ember.autograd.grad((ge ** 2).sum(), xe)[0],
                 torch.autograd.grad((gt ** 2).sum(), xt)[0])


@pytest.mark.parametrize("mode,pad", [(m, p) for m in MODES
                                      for p in ((1, 1), (1, 1, 1, 1), (1, 1, 1, 1, 1, 1))])
def test_grad_fn_names(mode, pad):
    nd = len(pad) // 2 + 2
    x = rand(*(3,) * nd)
    e = ember.nn.functional.pad(to_ember(x, True), pad, mode=mode)
    t = torch.nn.functional.pad(to_torch(x, True), pad, mode=mode)
    assert e.grad_fn.name() == t.grad_fn.name()


def _raises(exc, match, fn):
    with pytest.raises(exc, match=match):
        fn(ember)
    with pytest.raises(exc, match=match):
        fn(torch)


def test_errors():
    F = lambda m: m.nn.functional  # noqa: E731
    x = lambda m: m.zeros(2, 4, 5)  # noqa: E731
    _raises(RuntimeError, r"Argument #4: Padding size should be less than the corresponding "
            r"input dimension, but got: padding \(5, 1\) at dimension 2 of input \[2, 4, 5\]",
            lambda m: F(m).pad(x(m), (5, 1), mode="reflect"))
    _raises(RuntimeError, r"Argument #6: Padding size should be less than .* padding \(1, 4\) "
            r"at dimension 1", lambda m: F(m).pad(x(m), (1, 1, 1, 4), mode="reflect"))
    _raises(RuntimeError, "Padding length must be divisible by 2",
            lambda m: F(m).pad(x(m), (1, 1, 1)))
    _raises(RuntimeError, "Padding length should be less than or equal to two times the input "
            "dimension but got padding length 8 and input of dimension 3",
            lambda m: F(m).pad(x(m), (1,) * 8))
    _raises(NotImplementedError, "Padding size 2 is not supported for 4D input tensor",
            lambda m: F(m).pad(m.zeros(1, 2, 3, 4), (1, 1), mode="replicate"))
    _raises(NotImplementedError, "Padding size 4 is not supported for 2D input tensor",
            lambda m: F(m).pad(m.zeros(3, 4), (1, 1, 1, 1), mode="circular"))
    _raises(NotImplementedError, "Unrecognised padding mode foo",
            lambda m: F(m).pad(x(m), (1, 1), mode="foo"))
    _raises(RuntimeError, "Padding mode \"reflect\" doesn't take in value argument",
            lambda m: F(m).pad(x(m), (1, 1), mode="reflect", value=2))
    _raises(RuntimeError, "Padding value causes wrapping around more than once",
            lambda m: F(m).pad(x(m), (6, 1), mode="circular"))
    _raises(RuntimeError, "narrow\\(\\): length must be non-negative",
            lambda m: F(m).pad(x(m), (-3, -3)))
    _raises(RuntimeError, r"input \(W: 5\) is too small. Calculated output W: 0",
            lambda m: F(m).pad(x(m), (-4, -1), mode="replicate"))
    _raises(RuntimeError, "Expected 2D or 3D \\(batch mode\\) tensor with possibly 0 batch "
            "size and other non-zero dimensions for input, but got: \\[2, 0, 3\\]",
            lambda m: F(m).pad(m.zeros(2, 0, 3), (1, 1), mode="reflect"))
    _raises(TypeError, "must be tuple of ints, not int", lambda m: F(m).pad(x(m), 1))
    _raises(TypeError, "must be tuple of ints, but found element of type float at pos 0",
            lambda m: F(m).pad(x(m), (1.0, 1)))
    _raises(NotImplementedError, "\"reflection_pad1d\" not implemented for 'Bool'",
            lambda m: F(m).pad(m.zeros(2, 3, dtype=m.bool), (1, 1), mode="reflect"))


def test_circular_pad_beyond_cropped_size_raises():
    # torch reads uninitialised memory here; ember refuses
    with pytest.raises(RuntimeError, match="wrapping around more than once"):
        ember.nn.functional.pad(ember.zeros(2, 3, 5), (4, -3), mode="circular")


MODULES = [
    ("ZeroPad1d", (2,), 3), ("ZeroPad2d", ((1, 2, 3, 0),), 4), ("ZeroPad3d", (1,), 5),
    ("ConstantPad1d", ((2, 1), 3.5), 3), ("ConstantPad2d", (1, -1.0), 4),
    ("ConstantPad3d", ((1, 0, 0, 1, 2, 1), 2), 5),
    ("ReflectionPad1d", (2,), 3), ("ReflectionPad2d", ((1, 2, 2, 0),), 4),
    ("ReflectionPad3d", (1,), 5), ("ReplicationPad1d", ((3, 1),), 2),
    ("ReplicationPad2d", (2,), 3), ("ReplicationPad3d", ((1, 2, 0, 1, 2, 0),), 5),
    ("CircularPad1d", (2,), 3), ("CircularPad2d", ((1, 2, 3, 0),), 4),
    ("CircularPad3d", (1,), 4),
]


@pytest.mark.parametrize("name,args,nd", MODULES)
def test_modules(name, args, nd):
    me, mt = getattr(ember.nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(me) == repr(mt)
    assert me.padding == mt.padding
    assert me.state_dict().keys() == mt.state_dict().keys()
    check(lambda x: me(x), lambda x: mt(x), rand(*(2, 3, 4, 5, 4)[:nd]))


def test_circular_module_checks_input_dim():
    for m in (ember, torch):
        with pytest.raises(ValueError, match=r"expected 3D or 4D input \(got 2D input\)"):
            m.nn.CircularPad2d(1)(m.zeros(3, 3))
