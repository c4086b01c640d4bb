"""``ember.nn.init`` against ``torch.nn.init``: statistics, exact fills, errors, generators."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.nn import init as E
from torch.nn import init as T


def _pair(shape, dtype="float32"):
    return (ember.empty(tuple(shape), dtype=getattr(ember, dtype)),
            torch.empty(tuple(shape), dtype=getattr(torch, dtype)))


def _np(t):
    return t.detach().numpy().astype(np.float64)


# ---- calculate_gain and fans ------------------------------------------------------------

GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
         ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
         ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
         ("leaky_relu", 0.2), ("leaky_relu", 3), ("leaky_relu", math.sqrt(5)), ("selu", None)]


@pytest.mark.parametrize("name,param", GAINS)
def test_calculate_gain_matches_torch(name, param):
    assert E.calculate_gain(name, param) == T.calculate_gain(name, param)


@pytest.mark.parametrize("name,param", [("softmax", None), ("gelu", None), ("leaky_relu", True),
                                        ("leaky_relu", "0.1"), ("leaky_relu", [0.1])])
def test_calculate_gain_errors(name, param):
    with pytest.raises(ValueError) as te:
        T.calculate_gain(name, param)
    with pytest.raises(ValueError) as ee:
        E.calculate_gain(name, param)
    assert str(ee.value) == str(te.value)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_fan_in_fan_out_matches_torch(shape):
    e, t = _pair(shape)
    assert E._calculate_fan_in_and_fan_out(e) == T._calculate_fan_in_and_fan_out(t)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_fan_needs_two_dims(shape):
    e, t = _pair(shape)
    with pytest.raises(ValueError) as te:
        T._calculate_fan_in_and_fan_out(t)
    with pytest.raises(ValueError) as ee:
        E._calculate_fan_in_and_fan_out(e)
    assert str(ee.value) == str(te.value)


# ---- distributions ------------------------------------------------------------------------

def _kaiming_std(fan, a=0.0, nl="leaky_relu"):
    return T.calculate_gain(nl, a) / math.sqrt(fan)


SQ3 = math.sqrt(3.0)
# (id, ember call, torch call, shape, expected mean, expected std, bound or None)
DISTS = [
    ("uniform", lambda m, t: m.uniform_(t, -0.5, 1.5), (300, 200), 0.5, 2 / math.sqrt(12),
     (-0.5, 1.5)),
    ("uniform_default", lambda m, t: m.uniform_(t), (300, 200), 0.5, 1 / math.sqrt(12), (0, 1)),
    ("normal", lambda m, t: m.normal_(t, 1.0, 0.3), (300, 200), 1.0, 0.3, None),
    ("xavier_uniform", lambda m, t: m.xavier_uniform_(t), (512, 256), 0.0,
     math.sqrt(2 / 768), (-SQ3 * math.sqrt(2 / 768), SQ3 * math.sqrt(2 / 768))),
    ("xavier_uniform_gain_conv", lambda m, t: m.xavier_uniform_(t, gain=2.0), (64, 32, 3, 3),
     0.0, 2 * math.sqrt(2 / (96 * 9)), (-SQ3 * 2 * math.sqrt(2 / 864), SQ3 * 2 *
                                        math.sqrt(2 / 864))),
    ("xavier_normal", lambda m, t: m.xavier_normal_(t, gain=0.5), (512, 256), 0.0,
     0.5 * math.sqrt(2 / 768), None),
    ("kaiming_uniform", lambda m, t: m.kaiming_uniform_(t), (512, 256), 0.0,
     _kaiming_std(256), (-SQ3 * _kaiming_std(256), SQ3 * _kaiming_std(256))),
    ("kaiming_uniform_linear_default", lambda m, t: m.kaiming_uniform_(t, a=math.sqrt(5)),
     (512, 256), 0.0, _kaiming_std(256, math.sqrt(5)), (-1 / 16, 1 / 16)),
    ("kaiming_uniform_fan_out_relu",
     lambda m, t: m.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu"), (64, 32, 3, 3),
     0.0, math.sqrt(2) / math.sqrt(576), (-SQ3 * math.sqrt(2 / 576), SQ3 * math.sqrt(2 / 576))),
    ("kaiming_normal", lambda m, t: m.kaiming_normal_(t), (512, 256), 0.0, _kaiming_std(256),
     None),
    ("kaiming_normal_fan_out", lambda m, t: m.kaiming_normal_(t, a=0.1, mode="fan_out"),
     (512, 256), 0.0, _kaiming_std(512, 0.1), None),
    ("kaiming_normal_selu", lambda m, t: m.kaiming_normal_(t, nonlinearity="selu"),
     (256, 64, 2, 2), 0.0, 0.75 / 16, None),
    ("trunc_normal_default", lambda m, t: m.trunc_normal_(t), (400, 300), 0.0, 0.8796, (-2, 2)),
    ("trunc_normal_shift", lambda m, t: m.trunc_normal_(t, mean=1.0, std=0.5, a=0.0, b=1.5),
     (400, 300), None, None, (0.0, 1.5)),
    ("trunc_normal_tail", lambda m, t: m.trunc_normal_(t, mean=0.0, std=1.0, a=1.0, b=3.0),
     (400, 300), None, None, (1.0, 3.0)),
]


def _truncnorm_moments(mean, std, a, b):
    al, be = (a - mean) / std, (b - mean) / std
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = 0.5 * (math.erf(be / math.sqrt(2)) - math.erf(al / math.sqrt(2)))
    m = mean + std * (phi(al) - phi(be)) / z
    var = std ** 2 * (1 + (al * phi(al) - be * phi(be)) / z - ((phi(al) - phi(be)) / z) ** 2)
    return m, math.sqrt(var)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shape,mean,std,bound", DISTS, ids=[d[0] for d in DISTS])
def test_distribution_statistics(name, fn, shape, mean, std, bound, dtype):
    e, t = _pair(shape, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fn(E, e) is e
    fn(T, t)
    assert e.dtype == getattr(ember, dtype) and tuple(e.shape) == shape
    a, b = _np(e), _np(t)
    if name.startswith("trunc_normal") and mean is None:
        kw = {"trunc_normal_shift": (1.0, 0.5, 0.0, 1.5), "trunc_normal_tail": (0, 1, 1, 3)}[name]
        mean, std = _truncnorm_moments(*kw)
    n = a.size
    # means within 5 standard errors; stds within 2% of the formula and of torch's own draw
    assert abs(a.mean() - mean) < 5 * std / math.sqrt(n) + 1e-12
    assert abs(b.mean() - mean) < 5 * std / math.sqrt(n) + 1e-12
    assert abs(a.std() / std - 1) < 0.02
    assert abs(a.std() / b.std() - 1) < 0.03
    if bound is not None:
        lo, hi = bound
        assert a.min() >= lo - 1e-6 and a.max() <= hi + 1e-6
        # the draws fill the interval (within 1% of its width at both ends)
        assert a.min() < lo + 0.01 * (hi - lo) and a.max() > hi - 0.01 * (hi - lo)


def test_kaiming_normal_std_within_2_percent_of_torch():
    e, t = _pair((512, 256))
    E.kaiming_normal_(e)
    T.kaiming_normal_(t)
    assert abs(_np(e).std() / _np(t).std() - 1) < 0.02


def test_trunc_normal_far_tail_stays_in_bounds():
    e = ember.empty(2000)
    with pytest.warns(UserWarning, match="mean is more than 2 std"):
        E.trunc_normal_(e, mean=0.0, std=1.0, a=4.0, b=5.0)
    a = _np(e)
    assert a.min() >= 4.0 and a.max() <= 5.0
    m, s = _truncnorm_moments(0, 1, 4, 5)
    assert abs(a.mean() - m) < 5 * s / math.sqrt(a.size)


def test_trunc_normal_warns_like_torch():
    e, t = _pair((10,))
    with pytest.warns(UserWarning) as rt:
        T.trunc_normal_(t, mean=10.0, std=1.0, a=-2.0, b=2.0)
    with pytest.warns(UserWarning) as re:
        E.trunc_normal_(e, mean=10.0, std=1.0, a=-2.0, b=2.0)
    assert str(re[0].message) == str(rt[0].message)
    assert _np(e).max() <= 2.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_dtypes(dtype):
    e = ember.empty(256, 128, dtype=getattr(ember, dtype))
    E.kaiming_uniform_(e, a=math.sqrt(5))
    assert e.dtype == getattr(ember, dtype)
    a = e.float().numpy()
    assert a.max() <= 1 / math.sqrt(128) + 1e-3 and abs(a.std() * math.sqrt(3 * 128) - 1) < 0.03
    E.trunc_normal_(e, std=0.02)
    a = e.float().numpy()
    assert a.max() <= 2.0 and abs(a.std() / 0.02 - 1) < 0.03


# ---- exact fills --------------------------------------------------------------------------

FILLS = [
    ("constant", lambda m, t: m.constant_(t, 0.3), (3, 5)),
    ("constant_int", lambda m, t: m.constant_(t, 7), (2, 3, 4)),
    ("ones", lambda m, t: m.ones_(t), (4,)),
    ("zeros", lambda m, t: m.zeros_(t), (4, 2, 3)),
    ("zeros_0d", lambda m, t: m.zeros_(t), ()),
    ("eye_wide", lambda m, t: m.eye_(t), (3, 5)),
    ("eye_tall", lambda m, t: m.eye_(t), (5, 3)),
    ("eye_square", lambda m, t: m.eye_(t), (4, 4)),
    ("dirac_3d", lambda m, t: m.dirac_(t), (4, 3, 5)),
    ("dirac_4d", lambda m, t: m.dirac_(t), (3, 5, 3, 4)),
    ("dirac_5d", lambda m, t: m.dirac_(t), (2, 2, 3, 3, 3)),
    ("dirac_groups", lambda m, t: m.dirac_(t, groups=2), (6, 2, 3, 3)),
    ("dirac_groups3", lambda m, t: m.dirac_(t, 3), (6, 4, 5)),
    ("dirac_even_kernel", lambda m, t: m.dirac_(t), (2, 2, 4, 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,shape", FILLS, ids=[f[0] for f in FILLS])
def test_exact_fills_match_torch(name, fn, shape, dtype):
    e, t = _pair(shape, dtype)
    e.uniform_()  # garbage that the fill must overwrite
    assert fn(E, e) is e
    fn(T, t)
    assert e.dtype == getattr(ember, dtype)
    np.testing.assert_array_equal(e.numpy(), t.numpy())


def test_eye_on_int_tensor():
    e = ember.zeros(2, 3, dtype=ember.int64)
    E.eye_(e)
    assert e.dtype == ember.int64
    np.testing.assert_array_equal(e.numpy(), np.eye(2, 3))


# ---- orthogonal and sparse ----------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (8, 2, 2, 2), (2, 3, 4), (1, 6)])
@pytest.mark.parametrize("gain", [1, 2.5])
def test_orthogonal(shape, gain):
    e = ember.empty(*shape, dtype=ember.float64)
    assert E.orthogonal_(e, gain=gain) is e
    m = e.numpy().reshape(shape[0], -1) / gain
    r, c = m.shape
    gram = m @ m.T if r <= c else m.T @ m
    np.testing.assert_allclose(gram, np.eye(min(r, c)), atol=1e-10)
    # the QR sign fix makes the result unbiased: torch gives the same structure
    t = torch.empty(*shape, dtype=torch.float64)
    T.orthogonal_(t, gain=gain)
    mt = t.numpy().reshape(shape[0], -1)
    np.testing.assert_allclose(np.linalg.norm(m * gain), np.linalg.norm(mt), rtol=1e-10)


def test_orthogonal_float32_and_empty():
    e = ember.empty(64, 32)
    E.orthogonal_(e)
    m = e.numpy()
    np.testing.assert_allclose(m.T @ m, np.eye(32), atol=1e-5)
    z = ember.empty(0, 3)
    assert E.orthogonal_(z) is z


def test_orthogonal_sign_fix_is_unbiased():
    # without the sign fix, QR's diagonal convention biases the first column
    firsts = []
    g = ember.Generator().manual_seed(3)
    for _ in range(300):
        e = ember.empty(3, 3, dtype=ember.float64)
        E.orthogonal_(e, generator=g)
        firsts.append(e.numpy()[0, 0])
    assert abs(np.mean(firsts)) < 0.1


@pytest.mark.parametrize("shape,sparsity", [((10, 6), 0.3), ((40, 20), 0.1), ((7, 3), 0.0),
                                            ((5, 4), 1.0), ((9, 2), 0.5)])
def test_sparse(shape, sparsity):
    e, t = _pair(shape)
    assert E.sparse_(e, sparsity, std=0.5) is e
    T.sparse_(t, sparsity, std=0.5)
    ze = (e.numpy() == 0).sum(0)
    zt = (t.numpy() == 0).sum(0)
    np.testing.assert_array_equal(ze, zt)
    assert (ze == math.ceil(sparsity * shape[0])).all()


def test_sparse_values_and_columns_differ():
    e = ember.empty(1000, 50)
    E.sparse_(e, 0.2, std=0.05)
    a = e.numpy()
    nz = a[a != 0]
    assert abs(nz.std() / 0.05 - 1) < 0.03
    # each column gets its own random set of zeros
    masks = {tuple(np.flatnonzero(a[:, j] == 0)) for j in range(50)}
    assert len(masks) == 50


# ---- generators, autograd and versions ----------------------------------------------------

GEN_FNS = [
    lambda t, g: E.uniform_(t, -1, 1, generator=g),
    lambda t, g: E.normal_(t, 0, 2, generator=g),
    lambda t, g: E.trunc_normal_(t, generator=g),
    lambda t, g: E.xavier_uniform_(t, generator=g),
    lambda t, g: E.xavier_normal_(t, generator=g),
    lambda t, g: E.kaiming_uniform_(t, generator=g),
    lambda t, g: E.kaiming_normal_(t, generator=g),
    lambda t, g: E.orthogonal_(t, generator=g),
    lambda t, g: E.sparse_(t, 0.5, generator=g),
]


@pytest.mark.parametrize("fn", GEN_FNS)
def test_generator_reproducibility(fn):
    outs = []
    for seed in (5, 5, 6):
        g = ember.Generator().manual_seed(seed)
        outs.append(fn(ember.empty(6, 4), g).numpy().copy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    # the default generator is not touched when one is given
    ember.manual_seed(1)
    ref = ember.rand(3).numpy()
    ember.manual_seed(1)
    fn(ember.empty(6, 4), ember.Generator().manual_seed(0))
    np.testing.assert_array_equal(ember.rand(3).numpy(), ref)


def test_manual_seed_reproducibility():
    ember.manual_seed(11)
    a = E.kaiming_uniform_(ember.empty(5, 4)).numpy().copy()
    ember.manual_seed(11)
    b = E.kaiming_uniform_(ember.empty(5, 4)).numpy().copy()
    np.testing.assert_array_equal(a, b)


ALL_INPLACE = [
    ("uniform_", lambda m, p: m.uniform_(p)),
    ("normal_", lambda m, p: m.normal_(p)),
    ("trunc_normal_", lambda m, p: m.trunc_normal_(p)),
    ("constant_", lambda m, p: m.constant_(p, 2.0)),
    ("ones_", lambda m, p: m.ones_(p)),
    ("zeros_", lambda m, p: m.zeros_(p)),
    ("eye_", lambda m, p: m.eye_(p)),
    ("xavier_uniform_", lambda m, p: m.xavier_uniform_(p)),
    ("xavier_normal_", lambda m, p: m.xavier_normal_(p)),
    ("kaiming_uniform_", lambda m, p: m.kaiming_uniform_(p)),
    ("kaiming_normal_", lambda m, p: m.kaiming_normal_(p)),
    ("orthogonal_", lambda m, p: m.orthogonal_(p)),
    ("sparse_", lambda m, p: m.sparse_(p, 0.5)),
]


@pytest.mark.parametrize("name,fn", ALL_INPLACE, ids=[a[0] for a in ALL_INPLACE])
def test_on_parameters_without_recording(name, fn):
    pe = ember.nn.Parameter(ember.empty(4, 3))
    pt = torch.nn.Parameter(torch.empty(4, 3))
    ve, vt = pe._version, pt._version
    assert fn(E, pe) is pe
    fn(T, pt)
    assert isinstance(pe, ember.nn.Parameter) and pe.is_leaf and pe.requires_grad
    assert pe.grad_fn is None and pt.grad_fn is None
    assert (pe._version > ve) == (pt._version > vt)
    # still a usable leaf: gradients flow as usual
    (pe * 2).sum().backward()
    np.testing.assert_array_equal(pe.grad.numpy(), np.full((4, 3), 2.0, np.float32))


def test_init_on_saved_tensor_is_caught_by_backward():
    pe = ember.nn.Parameter(ember.ones(3))
    y = (pe * pe).sum()
    E.zeros_(pe)
    with pytest.raises(RuntimeError):
        y.backward()


def test_kaiming_zero_element_warns_like_torch():
    for fn_e, fn_t in [(E.kaiming_uniform_, T.kaiming_uniform_),
                       (E.kaiming_normal_, T.kaiming_normal_)]:
        e, t = _pair((0, 3))
        with pytest.warns(UserWarning) as rt:
            fn_t(t)
        with pytest.warns(UserWarning) as re:
            assert fn_e(e) is e
        assert str(re[0].message) == str(rt[0].message)


def test_deprecated_aliases_warn():
    for old in ["uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
                "kaiming_normal", "orthogonal"]:
        e = ember.empty(3, 3)
        with pytest.warns(FutureWarning, match=f"nn.init.{old}_"):
            assert getattr(E, old)(e) is e
    with pytest.warns(FutureWarning):
        E.constant(ember.empty(2), 1.0)


# ---- bad input ---------------------------------------------------------------------------

ERRORS = [
    ("xavier_uniform_1d", lambda m, t: m.xavier_uniform_(t), (5,), ValueError),
    ("xavier_normal_0d", lambda m, t: m.xavier_normal_(t), (), ValueError),
    ("kaiming_uniform_1d", lambda m, t: m.kaiming_uniform_(t), (5,), ValueError),
    ("kaiming_normal_1d", lambda m, t: m.kaiming_normal_(t), (5,), ValueError),
    ("kaiming_bad_mode", lambda m, t: m.kaiming_uniform_(t, mode="fan_avg"), (3, 4), ValueError),
    ("kaiming_normal_bad_mode", lambda m, t: m.kaiming_normal_(t, mode="in"), (3, 4),
     ValueError),
    ("kaiming_bad_nonlinearity", lambda m, t: m.kaiming_normal_(t, nonlinearity="swish"),
     (3, 4), ValueError),
    ("eye_3d", lambda m, t: m.eye_(t), (2, 2, 2), ValueError),
    ("eye_1d", lambda m, t: m.eye_(t), (3,), ValueError),
    ("dirac_2d", lambda m, t: m.dirac_(t), (3, 3), ValueError),
    ("dirac_6d", lambda m, t: m.dirac_(t), (1, 1, 1, 1, 1, 1), ValueError),
    ("dirac_groups", lambda m, t: m.dirac_(t, groups=4), (6, 2, 3), ValueError),
    ("orthogonal_1d", lambda m, t: m.orthogonal_(t), (4,), ValueError),
    ("sparse_3d", lambda m, t: m.sparse_(t, 0.1), (2, 2, 2), ValueError),
    ("uniform_reversed", lambda m, t: m.uniform_(t, 1.0, 0.0), (3,), RuntimeError),
    ("normal_negative_std", lambda m, t: m.normal_(t, 0.0, -1.0), (3,), RuntimeError),
]


@pytest.mark.parametrize("name,fn,shape,exc", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_match_torch(name, fn, shape, exc):
    e, t = _pair(shape)
    with pytest.raises(exc) as te:
        fn(T, t)
    with pytest.raises(exc) as ee:
        fn(E, e)
    if exc is ValueError:
        assert str(ee.value) == str(te.value)
