"""Activations against PyTorch: functional ops and modules, values and gradients at kinks,
in-place forms, softmax family over every dim, stability, reprs and bad inputs."""
import math
import time
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn.functional as EF
import torch.nn.functional as TF
from opcheck import check, rand, gradcheck, assert_close, to_ember, to_torch


def F(m):
    return EF if m is ember else TF


def _with_kinks(*values, shape=(4, 7), seed=0):
    """Random values in (-4, 4) with the given kink points placed at the front."""
    a = rand(*shape, low=-4.0, high=4.0, seed=seed).ravel()
    a[:len(values)] = values
    return a.reshape(shape)


KINK = _with_kinks(0.0, -1.0, 1.0, -3.0, 3.0, 6.0, -0.5, 0.5, 0.1, 20.0, 10.0, -20.0, 2.0)

# name, call (m -> f(x)): every activation with its options
ACTIVATIONS = [
    ("relu", lambda m, x: F(m).relu(x)),
    ("relu6", lambda m, x: F(m).relu6(x * 2)),
    ("leaky_relu", lambda m, x: F(m).leaky_relu(x)),
    ("leaky_relu_slope", lambda m, x: F(m).leaky_relu(x, 0.2)),
    ("leaky_relu_neg_slope", lambda m, x: F(m).leaky_relu(x, negative_slope=-0.3)),
    ("elu", lambda m, x: F(m).elu(x)),
    ("elu_alpha", lambda m, x: F(m).elu(x, alpha=0.7)),
    ("selu", lambda m, x: F(m).selu(x)),
    ("celu", lambda m, x: F(m).celu(x)),
    ("celu_alpha", lambda m, x: F(m).celu(x, alpha=2.5)),
    ("gelu", lambda m, x: F(m).gelu(x)),
    ("gelu_tanh", lambda m, x: F(m).gelu(x, approximate="tanh")),
    ("silu", lambda m, x: F(m).silu(x)),
    ("mish", lambda m, x: F(m).mish(x)),
    ("sigmoid", lambda m, x: F(m).sigmoid(x)),
    ("tanh", lambda m, x: F(m).tanh(x)),
    ("softplus", lambda m, x: F(m).softplus(x)),
    ("softplus_beta", lambda m, x: F(m).softplus(x, beta=2.0, threshold=20.0)),
    ("softplus_low_threshold", lambda m, x: F(m).softplus(x, beta=1.0, threshold=2.0)),
    ("softplus_neg_beta", lambda m, x: F(m).softplus(x, beta=-1.5, threshold=3.0)),
    ("softsign", lambda m, x: F(m).softsign(x)),
    ("hardtanh", lambda m, x: F(m).hardtanh(x)),
    ("hardtanh_bounds", lambda m, x: F(m).hardtanh(x, min_val=-0.5, max_val=3.0)),
    ("hardsigmoid", lambda m, x: F(m).hardsigmoid(x)),
    ("hardswish", lambda m, x: F(m).hardswish(x)),
    ("logsigmoid", lambda m, x: F(m).logsigmoid(x)),
    ("threshold", lambda m, x: F(m).threshold(x, 0.5, -2.0)),
    ("threshold_at_zero", lambda m, x: F(m).threshold(x, 0.0, 7.0)),
    ("tanhshrink", lambda m, x: F(m).tanhshrink(x)),
    ("softshrink", lambda m, x: F(m).softshrink(x)),
    ("softshrink_1", lambda m, x: F(m).softshrink(x, 1.0)),
    ("hardshrink", lambda m, x: F(m).hardshrink(x)),
    ("hardshrink_1", lambda m, x: F(m).hardshrink(x, lambd=1.0)),
    ("rrelu_eval", lambda m, x: F(m).rrelu(x)),
    ("glu", lambda m, x: F(m).glu(x[:, :6])),
    ("glu_dim0", lambda m, x: F(m).glu(x, 0)),
    ("softmax", lambda m, x: F(m).softmax(x, dim=1)),
    ("log_softmax", lambda m, x: F(m).log_softmax(x, dim=0)),
    ("softmin", lambda m, x: F(m).softmin(x, dim=-1)),
    ("prelu_shared", lambda m, x: F(m).prelu(x, m.tensor([0.3], dtype=x.dtype))),
]
IDS = [r[0] for r in ACTIVATIONS]


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=IDS)
def test_forward_and_grad_at_kinks(name, fn):
    check(fn, None, KINK)


@pytest.mark.parametrize("name,fn", ACTIVATIONS, ids=IDS)
def test_non_contiguous(name, fn):
    # a transposed, strided view of a larger array
    x = _with_kinks(0.0, 1.0, -3.0, 3.0, shape=(8, 12), seed=3)
    check(lambda m, a: fn(m, a.transpose(0, 1)[::2, ::2].transpose(0, 1)), None, x)


@pytest.mark.parametrize("name,fn", [r for r in ACTIVATIONS if not r[0].startswith("glu")],
                         ids=[i for i in IDS if not i.startswith("glu")])
@pytest.mark.parametrize("shape", [(), (1,), (0, 3), (2, 1, 3)])
def test_odd_shapes(name, fn, shape):
    x = rand(*shape, seed=5)
    if len(shape) < 2:  # the table's dim=1 / x[:, :6] calls need a 2-d input
        def fn2(m, a, fn=fn):
            return fn(m, a.reshape(1, -1)).reshape(a.shape)
        check(fn2, None, x)
    else:
        check(fn, None, x)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       which=st.sampled_from(IDS), seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(shape, which, seed):
    fn = dict(ACTIVATIONS)[which]
    if which.startswith("glu"):
        shape = [2 * s for s in shape]
        fn = (lambda m, x: F(m).glu(x, -1)) if len(shape) < 2 else fn
        if len(shape) >= 2 and which == "glu":
            fn = (lambda m, x: F(m).glu(x, 1))
    elif len(shape) < 2:
        shape = [1] + shape
    check(fn, None, rand(*shape, low=-5, high=5, seed=seed), dtypes=("float64",))


@pytest.mark.parametrize("name,fn", [r for r in ACTIVATIONS if r[0] in (
    "relu", "sigmoid", "tanh", "softsign", "tanhshrink", "hardtanh", "relu6", "threshold")])
def test_half_and_bfloat16_dtype(name, fn):
    # forward in reduced precision keeps the dtype and is close to float32's result
    x = rand(3, 7, seed=2)
    for dt in ("float16", "bfloat16"):
        te = to_ember(x).to(getattr(ember, dt))
        tt = to_torch(x).to(getattr(torch, dt))
        re, rt = fn(ember, te), fn(torch, tt)
        assert str(re.dtype) == "ember." + dt
        np.testing.assert_allclose(re.float().numpy(), rt.float().numpy(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("fn", [
    lambda m, x: F(m).elu(x), lambda m, x: F(m).gelu(x), lambda m, x: F(m).silu(x),
    lambda m, x: F(m).softplus(x), lambda m, x: F(m).hardswish(x),
    lambda m, x: F(m).softmax(x, 1), lambda m, x: F(m).log_softmax(x, 0),
    lambda m, x: F(m).prelu(x, m.tensor([0.1, 0.2, 0.3, 0.4], dtype=x.dtype)),
    lambda m, x: F(m).glu(x, 1)])
def test_half_precision_float_ops(fn):
    x = rand(3, 4, seed=4)
    te, tt = to_ember(x).half(), to_torch(x).half()
    re, rt = fn(ember, te), fn(torch, tt)
    assert re.dtype == ember.float16
    np.testing.assert_allclose(re.float().numpy(), rt.float().numpy(), rtol=1e-2, atol=1e-2)


# ---- integer and bool inputs ----------------------------------------------------------------

INT_FNS = [
    ("relu", lambda m, x: F(m).relu(x)), ("relu6", lambda m, x: F(m).relu6(x)),
    ("hardtanh", lambda m, x: F(m).hardtanh(x)),
    ("hardtanh_frac", lambda m, x: F(m).hardtanh(x, -1.5, 1.5)),
    ("threshold", lambda m, x: F(m).threshold(x, 1, 7)),
    ("threshold_frac", lambda m, x: F(m).threshold(x, -0.5, 7.9)),
    ("sigmoid", lambda m, x: F(m).sigmoid(x)), ("tanh", lambda m, x: F(m).tanh(x)),
    ("softsign", lambda m, x: F(m).softsign(x)), ("tanhshrink", lambda m, x: F(m).tanhshrink(x)),
    ("leaky_relu", lambda m, x: F(m).leaky_relu(x)), ("elu", lambda m, x: F(m).elu(x)),
    ("selu", lambda m, x: F(m).selu(x)), ("celu", lambda m, x: F(m).celu(x)),
    ("gelu", lambda m, x: F(m).gelu(x)), ("silu", lambda m, x: F(m).silu(x)),
    ("mish", lambda m, x: F(m).mish(x)), ("softplus", lambda m, x: F(m).softplus(x)),
    ("hardsigmoid", lambda m, x: F(m).hardsigmoid(x)),
    ("hardswish", lambda m, x: F(m).hardswish(x)),
    ("logsigmoid", lambda m, x: F(m).logsigmoid(x)),
    ("softshrink", lambda m, x: F(m).softshrink(x)),
    ("hardshrink", lambda m, x: F(m).hardshrink(x)), ("glu", lambda m, x: F(m).glu(x)),
    ("rrelu", lambda m, x: F(m).rrelu(x)),
    ("rrelu_train", lambda m, x: F(m).rrelu(x, training=True)),
    ("softmax_last", lambda m, x: F(m).softmax(x, 1)),
    ("softmax_first", lambda m, x: F(m).softmax(x, 0)),
    ("log_softmax", lambda m, x: F(m).log_softmax(x, -1)),
    ("softmin", lambda m, x: F(m).softmin(x, 1)),
]


@pytest.mark.parametrize("name,fn", INT_FNS, ids=[r[0] for r in INT_FNS])
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_integer_and_bool_inputs(name, fn, dtype):
    """Integer/bool results match torch's, or both raise the same error and message."""
    x = np.array([[-2, -1, 0, 1], [2, 3, 0, -5]]).astype(dtype)
    try:
        rt = fn(torch, torch.from_numpy(x.copy()))
    except Exception as e:  # noqa: BLE001 - the error itself is under test
        with pytest.raises(type(e)) as info:
            fn(ember, ember.from_numpy(x.copy()))
        if type(e) is not RuntimeError or "Subtraction" in str(e) or "Bool" in str(e):
            assert str(info.value) == str(e)
        return
    assert_close(fn(ember, ember.from_numpy(x.copy())), rt, "float32")


def test_softmax_dtype_argument():
    x = rand(3, 4, seed=1).astype(np.float32)
    xi = np.array([[1, 2, 3], [0, -1, 5]])
    for name in ("softmax", "log_softmax", "softmin"):
        check(lambda m, a: getattr(F(m), name)(a, 1, dtype=m.float64), None, x,
              dtypes=("float32",))
        assert_close(getattr(EF, name)(ember.tensor(xi), 0, dtype=ember.float64),
                     getattr(TF, name)(torch.tensor(xi), 0, dtype=torch.float64))
        with pytest.raises(NotImplementedError):
            torch.softmax(torch.tensor(x), 0, dtype=torch.int64)
        with pytest.raises(NotImplementedError):
            getattr(EF, name)(ember.tensor(x), 0, dtype=ember.int64)


# ---- gradcheck and double backward ----------------------------------------------------------

SMOOTH = rand(3, 4, seed=7)
SMOOTH[np.abs(SMOOTH) < 0.05] = 0.3  # away from kinks for finite differences
SMOOTH[np.abs(np.abs(SMOOTH) - 0.5) < 0.05] = 1.2


@pytest.mark.parametrize("fn", [
    lambda x: EF.elu(x, 0.7), lambda x: EF.selu(x), lambda x: EF.celu(x, 1.5),
    lambda x: EF.gelu(x), lambda x: EF.gelu(x, approximate="tanh"), lambda x: EF.silu(x),
    lambda x: EF.mish(x), lambda x: EF.softplus(x, 2.0, 3.0), lambda x: EF.logsigmoid(x),
    lambda x: EF.leaky_relu(x, 0.1), lambda x: EF.hardswish(x), lambda x: EF.hardsigmoid(x),
    lambda x: EF.softshrink(x), lambda x: EF.hardshrink(x), lambda x: EF.softmax(x, 1),
    lambda x: EF.log_softmax(x, 0), lambda x: EF.softmin(x, -1), lambda x: EF.glu(x, 1),
    lambda x: EF.threshold(x, 0.2, 3.0)])
def test_gradcheck(fn):
    assert gradcheck(fn, SMOOTH)


def test_gradcheck_prelu_two_inputs():
    assert gradcheck(lambda x, w: EF.prelu(x, w), SMOOTH, np.array([0.1, -0.2, 0.3, 0.4]))
    assert gradcheck(lambda x, w: EF.prelu(x, w), SMOOTH, np.array([0.25]))


@pytest.mark.parametrize("fn", [
    lambda x: EF.softmax(x, 1), lambda x: EF.log_softmax(x, 0), lambda x: EF.gelu(x),
    lambda x: EF.gelu(x, approximate="tanh"), lambda x: EF.softplus(x, 1.5, 2.0),
    lambda x: EF.elu(x), lambda x: EF.silu(x), lambda x: EF.mish(x), lambda x: EF.glu(x, 1)])
def test_gradgradcheck(fn):
    x = ember.from_numpy(SMOOTH.copy()).requires_grad_()
    assert ember.autograd.gradgradcheck(fn, [x])


DOUBLE = [
    ("softmax", lambda m, x: F(m).softmax(x, 1)),
    ("log_softmax", lambda m, x: F(m).log_softmax(x, 0)),
    ("gelu", lambda m, x: F(m).gelu(x)),
    ("gelu_tanh", lambda m, x: F(m).gelu(x, approximate="tanh")),
    ("softplus", lambda m, x: F(m).softplus(x, 2.0, 1.0)),
    ("elu", lambda m, x: F(m).elu(x, 0.5)), ("selu", lambda m, x: F(m).selu(x)),
    ("silu", lambda m, x: F(m).silu(x)), ("mish", lambda m, x: F(m).mish(x)),
    ("logsigmoid", lambda m, x: F(m).logsigmoid(x)), ("glu", lambda m, x: F(m).glu(x, 1)),
    ("relu", lambda m, x: F(m).relu(x)), ("hardswish", lambda m, x: F(m).hardswish(x)),
    ("prelu", lambda m, x: F(m).prelu(x, m.tensor([0.2, 0.1, -0.3, 0.5], dtype=x.dtype))),
]


@pytest.mark.parametrize("name,fn", DOUBLE, ids=[r[0] for r in DOUBLE])
def test_double_backward_vs_torch(name, fn):
    x = _with_kinks(0.0, 3.0, -3.0, 40.0, -40.0, shape=(3, 4), seed=9)
    v = np.random.default_rng(1).standard_normal((3, 4))
    out = {}
    for m in (ember, torch):
        t = (to_ember if m is ember else to_torch)(x, True)
        y = fn(m, t)
        g, = m.autograd.grad(y, t, (to_ember if m is ember else to_torch)(
            np.ones(tuple(y.shape))), create_graph=True)
        gg = None
        if g.requires_grad:  # piecewise-linear ops: torch's gradient is constant in x
            gg, = m.autograd.grad((g * (to_ember if m is ember else to_torch)(v)).sum(), t,
                                  allow_unused=True)
        out[m] = (g, gg)
    assert_close(out[ember][0], out[torch][0])
    # an unused second derivative (None) is zero
    gge, ggt = out[ember][1], out[torch][1]
    gge = np.zeros(x.shape) if gge is None else gge.detach().numpy()
    ggt = np.zeros(x.shape) if ggt is None else ggt.detach().numpy()
    np.testing.assert_allclose(gge, ggt, rtol=1e-7, atol=1e-9)


# ---- in-place forms -------------------------------------------------------------------------

INPLACE = [
    ("relu", lambda m, x: F(m).relu(x, inplace=True), lambda m, x: F(m).relu_(x)),
    ("relu6", lambda m, x: F(m).relu6(x, inplace=True), None),
    ("leaky_relu", lambda m, x: F(m).leaky_relu(x, 0.2, inplace=True),
     lambda m, x: F(m).leaky_relu_(x, 0.2)),
    ("elu", lambda m, x: F(m).elu(x, 0.5, inplace=True), lambda m, x: F(m).elu_(x, 0.5)),
    ("selu", lambda m, x: F(m).selu(x, inplace=True), lambda m, x: F(m).selu_(x)),
    ("celu", lambda m, x: F(m).celu(x, 2.0, inplace=True), lambda m, x: F(m).celu_(x, 2.0)),
    ("silu", lambda m, x: F(m).silu(x, inplace=True), None),
    ("mish", lambda m, x: F(m).mish(x, inplace=True), None),
    ("hardtanh", lambda m, x: F(m).hardtanh(x, -0.5, 1.0, inplace=True),
     lambda m, x: F(m).hardtanh_(x, -0.5, 1.0)),
    ("hardsigmoid", lambda m, x: F(m).hardsigmoid(x, inplace=True), None),
    ("hardswish", lambda m, x: F(m).hardswish(x, inplace=True), None),
    ("threshold", lambda m, x: F(m).threshold(x, 0.5, -1.0, inplace=True),
     lambda m, x: F(m).threshold_(x, 0.5, -1.0)),
    ("rrelu_eval", lambda m, x: F(m).rrelu(x, inplace=True), lambda m, x: F(m).rrelu_(x)),
]


@pytest.mark.parametrize("name,fn,fn_", INPLACE, ids=[r[0] for r in INPLACE])
def test_inplace(name, fn, fn_):
    for f in (fn, fn_) if fn_ is not None else (fn,):
        # values, identity and version bump (no grad)
        te, tt = to_ember(KINK), to_torch(KINK)
        v0 = te._version
        re, rt = f(ember, te), f(torch, tt)
        assert re is te and rt is tt
        assert te._version == v0 + 1
        assert_close(te, tt)
        # history: the in-place result of a non-leaf back-propagates like torch's
        xe, xt = to_ember(KINK, True), to_torch(KINK, True)
        he, ht = xe * 1.5, xt * 1.5
        f(ember, he)
        f(torch, ht)
        assert he.grad_fn.name() == ht.grad_fn.name()
        assert_close(he, ht)
        (he * he).sum().backward()
        (ht * ht).sum().backward()
        assert_close(xe.grad, xt.grad)
        # a leaf that requires grad is refused
        for m, x in ((ember, to_ember(KINK, True)), (torch, to_torch(KINK, True))):
            with pytest.raises(RuntimeError, match="leaf Variable"):
                f(m, x)


@pytest.mark.parametrize("fn", [lambda m, v: F(m).relu(v, inplace=True),
                                lambda m, v: F(m).elu(v, 0.5, inplace=True),
                                lambda m, v: F(m).threshold_(v, 0.3, 9.0)])
@pytest.mark.parametrize("view", [lambda b: b[1], lambda b: b[:, 2], lambda b: b.t()[::2]])
def test_inplace_on_view_updates_base(fn, view):
    out = {}
    for m in (ember, torch):
        x = (to_ember if m is ember else to_torch)(KINK, True)
        base = x * 1
        fn(m, view(base))
        (base * base).sum().backward()
        out[m] = (base, x.grad, base.grad_fn.name())
    assert_close(out[ember][0], out[torch][0])
    assert_close(out[ember][1], out[torch][1])
    assert out[ember][2] == out[torch][2]


def test_inplace_saved_tensor_modified_error():
    for m in (ember, torch):
        x = (to_ember if m is ember else to_torch)(KINK, True)
        h = x * 1
        y = F(m).gelu(h)  # saves h
        F(m).relu(h, inplace=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.parametrize("fn", [lambda m, x: F(m).elu(x, alpha=-1.0, inplace=True),
                                lambda m, x: F(m).celu(x, alpha=-1.0, inplace=True),
                                lambda m, x: F(m).leaky_relu(x, -0.1, inplace=True)])
def test_inplace_negative_slope_backward_error(fn):
    for m in (ember, torch):
        x = (to_ember if m is ember else to_torch)(KINK, True)
        y = fn(m, x * 1)
        with pytest.raises(RuntimeError, match="negative slope"):
            y.sum().backward()


def test_inplace_int_relu_and_error_on_int_leaky():
    for m in (ember, torch):
        x = (to_ember if m is ember else to_torch)(np.array([-1, 2, 0, -3]))
        F(m).relu(x, inplace=True)
        assert x.tolist() == [0, 2, 0, 0]
        with pytest.raises(NotImplementedError):
            F(m).leaky_relu(x, inplace=True)


# ---- softmax family -------------------------------------------------------------------------

SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_every_dim(shape, name):
    x = rand(*shape, low=-3, high=3, seed=len(shape))
    n = max(len(shape), 1)
    for dim in range(-n, n):
        check(lambda m, a: getattr(F(m), name)(a, dim), None, x)
    for dim in (n, -n - 1):
        for m in (ember, torch):
            with pytest.raises(IndexError, match="Dimension out of range"):
                getattr(F(m), name)((to_ember if m is ember else to_torch)(x), dim)


@pytest.mark.parametrize("shape", SHAPES + [(2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_implicit_dim_warns(shape, name):
    x = rand(*shape, seed=2)
    with pytest.warns(UserWarning, match=f"Implicit dimension choice for {name}") as rec:
        re = getattr(EF, name)(to_ember(x))
    assert rec[0].filename == __file__  # the warning points at the caller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = getattr(TF, name)(to_torch(x))
    assert_close(re, rt)


def test_softmax_module_implicit_dim_points_at_caller():
    with pytest.warns(UserWarning, match="Implicit dimension") as rec:
        ember.nn.Softmax()(ember.randn(2, 3))
    assert rec[0].filename == __file__


def test_softmax_empty():
    for shape, dim in (((0, 3), 1), ((0, 3), 0), ((2, 0), 1)):
        check(lambda m, a: F(m).softmax(a, dim), None, np.zeros(shape))
        check(lambda m, a: F(m).log_softmax(a, dim), None, np.zeros(shape))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_softmax_hypothesis(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = rand(*shape, low=-10, high=10, seed=len(shape))
    check(lambda m, a: F(m).softmax(a, dim), None, x, dtypes=("float64",))
    check(lambda m, a: F(m).log_softmax(a, dim), None, x, dtypes=("float32",))


def _unfused_softmax(x, dim):
    e = (x - x.amax(dim, keepdim=True).detach()).exp()
    return e / e.sum(dim, keepdim=True)


def _unfused_log_softmax(x, dim):
    z = x - x.amax(dim, keepdim=True).detach()
    return z - z.exp().sum(dim, keepdim=True).log()


@pytest.mark.parametrize("fused,unfused", [(EF.softmax, _unfused_softmax),
                                           (EF.log_softmax, _unfused_log_softmax)])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_fused_softmax_matches_unfused_composition(fused, unfused, dim):
    x = rand(6, 5, seed=11)
    g = np.random.default_rng(3).standard_normal((6, 5))
    xa, xb = to_ember(x, True), to_ember(x, True)
    ya, yb = fused(xa, dim), unfused(xb, dim)
    assert ya.grad_fn.next_functions[0][0].name() == "torch::autograd::AccumulateGrad"
    np.testing.assert_allclose(ya.detach().numpy(), yb.detach().numpy(), rtol=1e-12, atol=1e-14)
    ga, = ember.autograd.grad(ya, xa, to_ember(g), create_graph=True)
    gb, = ember.autograd.grad(yb, xb, to_ember(g), create_graph=True)
    np.testing.assert_allclose(ga.detach().numpy(), gb.detach().numpy(), rtol=1e-12,
                               atol=1e-14)
    # second order too: the fused backward is built of differentiable ops
    gga, = ember.autograd.grad((ga * ga).sum(), xa)
    ggb, = ember.autograd.grad((gb * gb).sum(), xb)
    np.testing.assert_allclose(gga.numpy(), ggb.numpy(), rtol=1e-10, atol=1e-12)


# ---- large magnitudes -----------------------------------------------------------------------

BIG = np.array([[1000.0, 1.0, -1000.0, 0.0], [-1e30, 1e30, 0.0, 5.0], [88.0, 89.0, 90.0, -90.0],
                [-1e4, -1e4 + 1, -1e4 + 2, -1e4 + 3]])
BIG_FNS = [
    ("softmax", lambda m, x: F(m).softmax(x, 1)), ("softmax0", lambda m, x: F(m).softmax(x, 0)),
    ("log_softmax", lambda m, x: F(m).log_softmax(x, 1)),
    ("log_softmax0", lambda m, x: F(m).log_softmax(x, 0)),
    ("softmin", lambda m, x: F(m).softmin(x, 1)),
    ("silu", lambda m, x: F(m).silu(x)), ("mish", lambda m, x: F(m).mish(x)),
    ("softplus", lambda m, x: F(m).softplus(x)),
    ("softplus_big_thr", lambda m, x: F(m).softplus(x, threshold=1e3)),
    ("logsigmoid", lambda m, x: F(m).logsigmoid(x)), ("gelu", lambda m, x: F(m).gelu(x)),
    ("gelu_tanh", lambda m, x: F(m).gelu(x, approximate="tanh")),
    ("elu", lambda m, x: F(m).elu(x)), ("selu", lambda m, x: F(m).selu(x)),
    ("celu", lambda m, x: F(m).celu(x, 0.5)), ("sigmoid", lambda m, x: F(m).sigmoid(x)),
    ("tanh", lambda m, x: F(m).tanh(x)), ("glu", lambda m, x: F(m).glu(x, 1)),
    ("hardswish", lambda m, x: F(m).hardswish(x)), ("softsign", lambda m, x: F(m).softsign(x)),
]


@pytest.mark.parametrize("name,fn", BIG_FNS, ids=[r[0] for r in BIG_FNS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_magnitudes_stay_finite(name, fn, dtype):
    x = BIG.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warnings leak out either
        xe = to_ember(x, True)
        ye = fn(ember, xe)
        ye.backward(ember.ones_like(ye))
    xt = to_torch(x, True)
    yt = fn(torch, xt)
    yt.backward(torch.ones_like(yt))
    for e, t in ((ye, yt), (xe.grad, xt.grad)):
        # finite wherever torch is (ember may be finite where torch overflows to nan)
        fin = np.isfinite(t.detach().numpy())
        assert np.isfinite(e.detach().numpy())[fin].all()
        np.testing.assert_allclose(e.detach().numpy()[fin], t.detach().numpy()[fin],
                                   rtol=1e-5, atol=1e-6)


def test_softmax_special_values_match_torch():
    inf = math.inf
    x = np.array([[inf, 1.0], [-inf, -inf], [-inf, 0.0], [math.nan, 1.0]])
    for name in ("softmax", "log_softmax"):
        check(lambda m, a: getattr(F(m), name)(a, 1), None, x, grad=False)


# ---- gelu (NOTE [ Fused GELU ]) -------------------------------------------------------------

GELU_RANGE = np.concatenate([np.linspace(-12.0, 12.0, 24001), [-0.0, 1e-30, -1e-30, 5e-8]])


def _gelu_and_grad(m, x, approximate):
    y = F(m).gelu(x, approximate=approximate)
    g, = m.autograd.grad(y.sum(), x)
    return y.detach().numpy().astype("float64"), g.numpy().astype("float64")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_accuracy_over_range(approximate, dtype):
    """Values and gradients against float64 PyTorch over the range and the tails: float64
    to rounding, float32 as close as PyTorch's float32 (its erf is Abramowitz & Stegun 7.1.26,
    |error| <= 1.5e-7, as PyTorch's vectorised CPU erf)."""
    ref = _gelu_and_grad(torch, to_torch(GELU_RANGE, True), approximate)
    x = to_ember(GELU_RANGE.astype(dtype), True)
    got = _gelu_and_grad(ember, x, approximate)
    if dtype == "float32":
        theirs = _gelu_and_grad(torch, to_torch(GELU_RANGE.astype(dtype), True), approximate)
        for e, t, r in zip(got, theirs, ref):
            assert np.abs(e - r).max() <= 1.5 * np.abs(t - r).max() + 2e-7
    else:
        for e, r in zip(got, ref):
            np.testing.assert_allclose(e, r, rtol=1e-12, atol=1e-13)
    y = EF.gelu(x, approximate=approximate)
    assert y.dtype == x.dtype
    # the sign of zero, and 0.5 as the slope at both zeros
    assert np.signbit(y.detach().numpy()[-4]) and not np.signbit(y.detach().numpy()[-3])
    assert got[1][-4] == 0.5 and got[1][-3] == 0.5


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_gelu_zero_dim(approximate, dtype):
    res = []
    for m in (ember, torch):
        x = m.tensor(0.7, dtype=getattr(m, dtype), requires_grad=True)
        y = F(m).gelu(x, approximate=approximate)
        y.backward()
        assert tuple(y.shape) == () and tuple(x.grad.shape) == ()
        assert x.grad.dtype == x.dtype
        res.append((y.detach().float().item(), x.grad.float().item()))
    tol = 1e-2 if dtype in ("float16", "bfloat16") else 1e-6
    np.testing.assert_allclose(res[0], res[1], rtol=tol)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_retain_graph_and_in_place_input(approximate):
    """The derivative kept from the forward serves a second backward unchanged; the input is
    still checked for in-place changes, as in PyTorch."""
    x = ember.randn(5, 6, requires_grad=True)
    g = ember.randn(5, 6)
    y = EF.gelu(x, approximate=approximate)
    y.backward(g, retain_graph=True)
    first = x.grad.numpy().copy()
    x.grad = None
    y.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), first)
    h = x * 1.0
    y = EF.gelu(h, approximate=approximate)
    h.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_gelu_create_graph_uses_the_graph_formula():
    """With create_graph the first derivative is an ember graph (differentiable again);
    without it, a plain array result."""
    x = ember.tensor([-1.5, 0.3, 2.0], requires_grad=True)
    g, = ember.autograd.grad(EF.gelu(x).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    g2, = ember.autograd.grad(g.sum(), x)
    xt = torch.tensor([-1.5, 0.3, 2.0], requires_grad=True)
    gt, = torch.autograd.grad(TF.gelu(xt).sum(), xt, create_graph=True)
    g2t, = torch.autograd.grad(gt.sum(), xt)
    np.testing.assert_allclose(g2.numpy(), g2t.numpy(), rtol=1e-5, atol=1e-6)
    g, = ember.autograd.grad(EF.gelu(x).sum(), x)
    assert not g.requires_grad and g.grad_fn is None


# ---- prelu and rrelu ------------------------------------------------------------------------

@pytest.mark.parametrize("xshape,wshape", [((2, 3), (3,)), ((2, 3, 4), (3,)), ((2, 3, 4, 5), (3,)),
                                           ((2, 3, 4), (1,)), ((2, 3), ()), ((6,), (1,)),
                                           ((), (1,)), ((4, 1, 2), (1,))])
def test_prelu(xshape, wshape):
    x = _with_kinks(0.0, shape=xshape, seed=2) if xshape else np.array(-0.7)
    w = rand(*wshape, low=-0.5, high=0.5, seed=3)
    check(lambda m, a, b: F(m).prelu(a, b), None, x, w)
    check(lambda m, a, b: F(m).prelu(a.transpose(0, -1).transpose(0, -1), b), None, x, w)


def test_rrelu_training_statistics_and_gradient():
    ember.manual_seed(0)
    x = to_ember(-np.abs(rand(200, 50, seed=1)) - 0.01, True)
    y = EF.rrelu(x, 0.1, 0.4, training=True)
    slope = (y / x).detach().numpy()
    assert slope.min() >= 0.1 and slope.max() <= 0.4
    assert abs(slope.mean() - 0.25) < 0.01 and abs(slope.std() - 0.3 / math.sqrt(12)) < 0.01
    y.backward(ember.ones_like(y))
    np.testing.assert_allclose(x.grad.numpy(), slope, rtol=1e-12)
    assert y.grad_fn.name() == "RreluWithNoiseBackward0"
    pos = to_ember(np.abs(rand(5, 5, seed=2)) + 0.01)
    assert ember.equal(EF.rrelu(pos, training=True), pos)


# ---- modules --------------------------------------------------------------------------------

MODULES = [
    ("ReLU", (), {}), ("ReLU", (True,), {}), ("ReLU6", (), {}), ("ReLU6", (), {"inplace": True}),
    ("LeakyReLU", (), {}), ("LeakyReLU", (0.2, True), {}), ("ELU", (), {}),
    ("ELU", (0.5,), {"inplace": True}), ("SELU", (), {}), ("SELU", (True,), {}),
    ("CELU", (), {}), ("CELU", (2.0,), {}), ("GELU", (), {}), ("GELU", ("tanh",), {}),
    ("SiLU", (), {}), ("SiLU", (True,), {}), ("Mish", (), {}), ("Mish", (True,), {}),
    ("Sigmoid", (), {}), ("Tanh", (), {}), ("Softplus", (), {}),
    ("Softplus", (), {"beta": 2, "threshold": 5}), ("Softsign", (), {}), ("Hardtanh", (), {}),
    ("Hardtanh", (-2.0, 2.5, True), {}), ("Hardsigmoid", (), {}), ("Hardsigmoid", (True,), {}),
    ("Hardswish", (), {}), ("Hardswish", (True,), {}), ("LogSigmoid", (), {}),
    ("Softmax", (1,), {}), ("Softmax", (), {"dim": -1}), ("LogSoftmax", (0,), {}),
    ("Softmin", (1,), {}), ("Threshold", (0.1, 20.0), {}), ("Threshold", (0.1, 20, True), {}),
    ("GLU", (), {}), ("GLU", (0,), {}), ("Tanhshrink", (), {}), ("Softshrink", (), {}),
    ("Softshrink", (1.0,), {}), ("Hardshrink", (), {}), ("Hardshrink", (), {"lambd": 2}),
    ("RReLU", (), {}), ("RReLU", (0.1, 0.3, True), {}), ("PReLU", (), {}),
    ("PReLU", (4,), {"init": 0.1}),
]
MOD_IDS = [f"{n}{a}{k}" for n, a, k in MODULES]


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=MOD_IDS)
def test_module_repr_and_state_dict(name, args, kwargs):
    me = getattr(ember.nn, name)(*args, **kwargs)
    mt = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(me) == repr(mt)
    assert list(me.state_dict().keys()) == list(mt.state_dict().keys())
    assert [n for n, _ in me.named_parameters()] == [n for n, _ in mt.named_parameters()]
    for attr in getattr(type(mt), "__constants__", []):
        assert getattr(me, attr) == getattr(mt, attr)


@pytest.mark.parametrize("name,args,kwargs", MODULES, ids=MOD_IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_module_forward_and_grads(name, args, kwargs, mode):
    if name == "RReLU" and mode == "train":
        return test_rrelu_training_statistics_and_gradient()  # random slopes: statistics
    for dt in ("float64", "float32"):
        mt = getattr(torch.nn, name)(*args, **kwargs).to(getattr(torch, dt))
        me = getattr(ember.nn, name)(*args, **kwargs).to(getattr(ember, dt))
        me.load_state_dict({k: ember.tensor(v.detach().numpy())
                            for k, v in mt.state_dict().items()})
        if name == "PReLU":  # distinct weights, so per-channel gradients differ
            with torch.no_grad():
                for p in mt.parameters():
                    p.copy_(torch.linspace(-0.3, 0.4, p.numel(), dtype=p.dtype))
            me.load_state_dict({k: ember.tensor(v.detach().numpy())
                                for k, v in mt.state_dict().items()})
        getattr(me, mode)()
        getattr(mt, mode)()
        x = KINK[:, :4].astype(dt)
        xe, xt = to_ember(x, True), to_torch(x, True)
        # in-place layers need a non-leaf input
        ye, yt = me(xe * 1), mt(xt * 1)
        assert_close(ye, yt, dt)
        g = np.random.default_rng(0).standard_normal(tuple(yt.shape)).astype(dt)
        ye.backward(ember.from_numpy(g.copy()))
        yt.backward(torch.from_numpy(g.copy()))
        assert_close(xe.grad, xt.grad, dt)
        for (n, pe), (_, pt) in zip(me.named_parameters(), mt.named_parameters()):
            assert_close(pe.grad, pt.grad, dt, n)


def test_prelu_module_init_dtype_and_channels():
    m = ember.nn.PReLU(3, init=0.5, dtype=ember.float64)
    assert m.weight.dtype == ember.float64 and m.weight.tolist() == [0.5] * 3
    assert isinstance(m.weight, ember.nn.Parameter) and m.weight.requires_grad
    y = m(ember.randn(2, 3, 4, dtype=ember.float64))
    assert y.grad_fn.name() == "PreluKernelBackward0"
    with pytest.raises(RuntimeError, match="channel size"):
        m(ember.randn(2, 4, dtype=ember.float64))


def test_hardtanh_module_bounds_and_deprecated_names():
    for m in (ember, torch):
        with pytest.raises(AssertionError, match="must be greater than"):
            m.nn.Hardtanh(1.0, 1.0)
        with pytest.warns(FutureWarning, match="min_value"):
            h = m.nn.Hardtanh(min_value=-2.0)
        assert h.min_val == -2.0
        with pytest.warns(FutureWarning, match="max_value"):
            assert m.nn.Hardtanh(max_value=3.0).max_val == 3.0


def test_modules_in_sequential_repr():
    def build(m):
        nn = m.nn
        return nn.Sequential(nn.ReLU(inplace=True), nn.LeakyReLU(0.1), nn.GELU(approximate="tanh"),
                             nn.Softmax(dim=1), nn.PReLU(2), nn.Threshold(0.5, 0.0, True))
    assert repr(build(ember)) == repr(build(torch))
    assert list(build(ember).state_dict()) == list(build(torch).state_dict())


def test_inplace_module_modifies_input():
    for m in (ember, torch):
        x = (to_ember if m is ember else to_torch)(KINK.copy())
        y = m.nn.ReLU(inplace=True)(x)
        assert y is x and float(x.min()) == 0.0


# ---- bad inputs -----------------------------------------------------------------------------

BAD = [
    ("glu_odd", lambda m: F(m).glu(m.randn(2, 5)), RuntimeError, "Halving dimension must be even"),
    ("glu_odd_dim0", lambda m: F(m).glu(m.randn(3, 4), 0), RuntimeError, "dimension 0 is size 3"),
    ("glu_scalar", lambda m: F(m).glu(m.tensor(1.0)), RuntimeError, "does not support scalars"),
    ("glu_dim", lambda m: F(m).glu(m.randn(2, 4), 3), IndexError, "Dimension out of range"),
    ("prelu_mismatch", lambda m: F(m).prelu(m.randn(2, 6), m.rand(3)), RuntimeError,
     "parameter numbers = 3 and channel size = 6"),
    ("prelu_1d_many", lambda m: F(m).prelu(m.randn(6), m.rand(6)), RuntimeError,
     "channel size = 1"),
    ("prelu_empty_w", lambda m: F(m).prelu(m.randn(2, 3), m.rand(0)), RuntimeError,
     "parameter numbers = 0"),
    ("prelu_2d_w", lambda m: F(m).prelu(m.randn(2, 3), m.rand(1, 3)), RuntimeError,
     "ndim = 2"),
    ("prelu_dtypes", lambda m: F(m).prelu(m.randn(2, 3, dtype=m.float64), m.rand(3)),
     RuntimeError, "Type promoting not supported. Got Double and Float"),
    ("prelu_int", lambda m: F(m).prelu(m.tensor([1, 2]), m.tensor([1])), NotImplementedError,
     "prelu_cpu"),
    ("prelu_list", lambda m: F(m).prelu([1.0], m.rand(1)), TypeError, "must be Tensor"),
    ("prelu_w_list", lambda m: F(m).prelu(m.rand(1), [0.1]), TypeError, "'weight'"),
    ("softmax_dim", lambda m: F(m).softmax(m.randn(2, 3), 2), IndexError,
     r"range of \[-2, 1\], but got 2"),
    ("softmax_neg_dim", lambda m: F(m).log_softmax(m.randn(2, 3), -3), IndexError,
     "Dimension out of range"),
    ("softmax_0d_dim", lambda m: F(m).softmax(m.tensor(1.0), 1), IndexError, "out of range"),
    ("softmax_float_dim", lambda m: F(m).softmax(m.randn(3), 0.0), TypeError, None),
    ("softmax_int", lambda m: F(m).softmax(m.tensor([[1, 2]]), 1), NotImplementedError,
     "softmax_lastdim_kernel_impl"),
    ("log_softmax_int", lambda m: F(m).log_softmax(m.tensor([[1, 2]]), 0), NotImplementedError,
     "log_softmax_kernel_impl"),
    ("gelu_approx", lambda m: F(m).gelu(m.randn(2), approximate="fast"), RuntimeError,
     "approximate argument must be either none or tanh"),
    ("hardtanh_bounds", lambda m: F(m).hardtanh(m.randn(2), 2.0, 1.0), ValueError,
     "min_val cannot be greater than max_val"),
    ("softshrink_neg", lambda m: F(m).softshrink(m.randn(2), -1.0), RuntimeError,
     r"lambda must be in range \[0, 3.40282e\+38\] for input dtype Float, but found -1"),
    ("softshrink_neg64", lambda m: F(m).softshrink(m.randn(2, dtype=m.float64), -0.5),
     RuntimeError, r"\[0, 1.79769e\+308\] for input dtype Double, but found -0.5"),
    ("rrelu_bounds", lambda m: F(m).rrelu(m.randn(3), 0.5, 0.1), RuntimeError,
     "Lower bound should be less than or equal to the upper bound"),
    ("celu_alpha0", lambda m: F(m).celu(m.randn(3), alpha=0.0), RuntimeError,
     "alpha cannot be 0 for CELU"),
    ("relu_bool", lambda m: F(m).relu(m.tensor([True])), RuntimeError,
     "Boolean inputs not supported for relu"),
    ("hardtanh_bool", lambda m: F(m).hardtanh(m.tensor([True])), RuntimeError,
     "Bool inputs not supported for hardtanh"),
    ("threshold_bool", lambda m: F(m).threshold(m.tensor([True]), 0, 1), NotImplementedError,
     "threshold_cpu"),
]


@pytest.mark.parametrize("name,fn,exc,msg", BAD, ids=[r[0] for r in BAD])
def test_bad_inputs(name, fn, exc, msg):
    for m in (ember, torch):
        with pytest.raises(exc, match=msg):
            fn(m)


@pytest.mark.parametrize("name", ["relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu",
                                  "silu", "mish", "hardtanh", "hardsigmoid", "hardswish",
                                  "softplus", "softshrink", "hardshrink", "rrelu", "logsigmoid"])
def test_non_tensor_input_is_type_error(name):
    for m in (ember, torch):
        with pytest.raises(TypeError, match="must be Tensor, not list"):
            getattr(F(m), name)([1.0, -1.0])


def test_glu_int_even_dim_not_implemented():
    for m in (ember, torch):
        with pytest.raises(NotImplementedError, match="glu_cpu"):
            F(m).glu(m.tensor([[1, 2]]))


def test_grad_fn_names_match_torch():
    x = rand(4, 6, seed=1)
    for name, fn in ACTIVATIONS:
        ye = fn(ember, to_ember(x, True))
        yt = fn(torch, to_torch(x, True))
        assert ye.grad_fn.name() == yt.grad_fn.name(), name


# ---- timing: fused softmax vs the composition of ember ops ------------------------------------

def _step_time(fn, x, g, reps):
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        y = fn(x, 1)
        y.backward(g)
        best = min(best, time.perf_counter() - t0)
        x.grad = None
    return best


def test_fused_softmax_is_not_slower_than_composition():
    x = ember.randn(128, 1000).requires_grad_()
    g = ember.randn(128, 1000)
    for fused, unfused in ((EF.softmax, _unfused_softmax),
                           (EF.log_softmax, _unfused_log_softmax)):
        tf = _step_time(fused, x, g, 15)
        tu = _step_time(unfused, x, g, 15)
        assert tf < tu * 1.1, (fused.__name__, tf, tu)


# ---- signatures and Tensor methods ----------------------------------------------------------

_EMPTY = object()
# torch's C builtins expose no Python signature: PyTorch's documented parameters instead,
# each checked below by calling torch with every parameter by keyword
BUILTIN_SIGS = {
    "relu_": [("input", _EMPTY)], "selu_": [("input", _EMPTY)],
    "leaky_relu_": [("input", _EMPTY), ("negative_slope", 0.01)],
    "prelu": [("input", _EMPTY), ("weight", _EMPTY)],
    "rrelu_": [("input", _EMPTY), ("lower", 1.0 / 8), ("upper", 1.0 / 3), ("training", False)],
    "elu_": [("input", _EMPTY), ("alpha", 1.0)], "celu_": [("input", _EMPTY), ("alpha", 1.0)],
    "gelu": [("input", _EMPTY), ("approximate", "none")],
    "softplus": [("input", _EMPTY), ("beta", 1.0), ("threshold", 20.0)],
    "hardtanh_": [("input", _EMPTY), ("min_val", -1.0), ("max_val", 1.0)],
    "logsigmoid": [("input", _EMPTY)],
    "threshold_": [("input", _EMPTY), ("threshold", _EMPTY), ("value", _EMPTY)],
    "softshrink": [("input", _EMPTY), ("lambd", 0.5)],
    "hardshrink": [("input", _EMPTY), ("lambd", 0.5)],
}


@pytest.mark.parametrize("name", __import__("ember.ops.activation", fromlist=["x"]).__all__)
def test_signature_matches_torch(name):
    import inspect
    fn = getattr(EF, name)
    got = [(p.name, _EMPTY if p.default is p.empty else p.default)
           for p in inspect.signature(fn).parameters.values()]
    if name in BUILTIN_SIGS:
        want = BUILTIN_SIGS[name]
        kw = {n: (d if d is not _EMPTY else {"input": torch.randn(2, 3), "weight": torch.rand(1),
                                             "threshold": 0.1, "value": 0.0}[n])
              for n, d in want}
        getattr(TF, name)(**kw)  # torch takes exactly these keywords
    else:
        want = [(p.name, _EMPTY if p.default is p.empty else p.default)
                for p in inspect.signature(getattr(TF, name)).parameters.values()]
    assert got[:len(want)] == want
    assert all(d is not _EMPTY for _, d in got[len(want):])  # extras (out=) are optional


def test_tensor_method_table():
    from ember.ops.activation import METHODS
    x = rand(3, 4, seed=3)
    check(lambda m, a: METHODS["softmax"](a, 1) if m is ember else a.softmax(1), None, x)
    check(lambda m, a: METHODS["log_softmax"](a, dim=0, dtype=m.float64) if m is ember
          else a.log_softmax(dim=0, dtype=m.float64), None, x)
    check(lambda m, a: METHODS["hardshrink"](a, 0.3) if m is ember else a.hardshrink(0.3),
          None, x)
    check(lambda m, a, w: METHODS["prelu"](a, w) if m is ember else a.prelu(w), None, x,
          rand(4, seed=4))
