"""Activations on large arrays (ember/ops/_pointwise.py, NOTE [ Blocked pointwise passes ]):
forward and backward against torch with zeros of both signs, NaNs of both signs, infinities
and huge values in the input and the gradient; C-order, channels_last and non-dense
layouts; bit for bit the same numbers in one block or many, on one thread or several, as
the whole-array formulas they replace."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
import torch.nn.functional as TF
from ember.ops import _pointwise, _threads, _workspace

# (4, 8, 24, 24) float32 is 72 KiB: past _workspace.MIN_BYTES, so the blocked kernels run
# (relu's from _pointwise.RELU_BYTES, lowered to that size for these tests)
SHAPE = (4, 8, 24, 24)
UINT = {np.dtype("float32"): np.uint32, np.dtype("float64"): np.uint64}

# name, (ember fn, torch fn)
OPS = {
    "relu": (EF.relu, TF.relu),
    "leaky_relu": (EF.leaky_relu, TF.leaky_relu),
    "leaky_relu_0.2": (lambda x: EF.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "leaky_relu_1": (lambda x: EF.leaky_relu(x, 1.0), lambda x: TF.leaky_relu(x, 1.0)),
    "leaky_relu_3": (lambda x: EF.leaky_relu(x, 3.0), lambda x: TF.leaky_relu(x, 3.0)),
    "leaky_relu_0": (lambda x: EF.leaky_relu(x, 0.0), lambda x: TF.leaky_relu(x, 0.0)),
    "leaky_relu_neg": (lambda x: EF.leaky_relu(x, -0.3), lambda x: TF.leaky_relu(x, -0.3)),
    "gelu": (EF.gelu, TF.gelu),
    "gelu_tanh": (lambda x: EF.gelu(x, approximate="tanh"),
                  lambda x: TF.gelu(x, approximate="tanh")),
    "sigmoid": (ember.sigmoid, torch.sigmoid),
    "tanh": (ember.tanh, torch.tanh),
    "silu": (EF.silu, TF.silu),
}


@pytest.fixture(autouse=True)
def _relu_blocks_from_min_bytes(monkeypatch):
    monkeypatch.setattr(_pointwise, "RELU_BYTES", _workspace.MIN_BYTES)


def _specials(shape, dt, seed):
    """Normal values with every special value a kernel must get right, at random places."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dt)
    flat = a.reshape(-1)
    neg_nan = np.array(-np.nan, dt)  # the sign bit set: x86's default NaN (inf - inf)
    assert np.signbit(neg_nan)
    values = np.array([0.0, -0.0, np.nan, neg_nan, np.inf, -np.inf, 3e38, -3e38, 1e-45,
                       -1e-45], dt)
    idx = rng.choice(flat.size, 40 * values.size, replace=False)
    flat[idx] = np.repeat(values, 40)
    return a


def _for_torch(name, x):
    """``x`` without the inputs where torch's own kernels are off: its vectorised float32
    erf GELU gives NaN at +inf and inf at 3e38 (ember, and torch in float64: inf and 3e38).
    Those inputs are compared bit for bit with the whole-array formulas instead."""
    if name == "gelu" and x.dtype == np.float32:
        x[np.abs(x) > 1e30] = 1.0
    return x


def _torch_pair(name, x, g):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    y = OPS[name][1](xt)
    gx, = torch.autograd.grad(y, xt, torch.from_numpy(g.copy()))
    return y.detach().numpy(), gx.numpy()


def _ember_pair(name, x, g):
    xe = ember.tensor(x, requires_grad=True)
    y = OPS[name][0](xe)
    gx, = ember.autograd.grad(y, xe, ember.tensor(g))
    return y.detach().numpy(), gx.numpy()


def _close(actual, expected, scale, dt="float32"):
    """Equal to within rtol, with atol relative to ``scale`` (the incoming gradient: a
    derivative's absolute error is multiplied by it), NaNs in the same places."""
    rtol, atol = (1e-5, 1e-6) if dt == "float32" else (1e-12, 1e-12)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    a, e = actual[~nan].astype(float), expected[~nan].astype(float)
    s = np.maximum(1.0, np.abs(np.nan_to_num(scale[~nan].astype(float))))
    with np.errstate(invalid="ignore"):
        ok = (a == e) | (np.abs(a - e) <= rtol * np.abs(e) + atol * s)
    assert ok.all(), (a[~ok][:5], e[~ok][:5])


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(UINT[a.dtype]), b.view(UINT[b.dtype]))


@pytest.fixture
def threads():
    """``use(k)``: split every pass (no size threshold) over ``k`` threads."""
    old = _threads.MIN_NUMEL

    def use(k):
        _threads.MIN_NUMEL = 0 if k > 1 else old
        _threads.set_count(k)
    yield use
    _threads.MIN_NUMEL = old
    _threads.set_count(None)


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPS))
def test_against_torch_with_special_values(name, dt, threads):
    threads(1)
    x, g = _for_torch(name, _specials(SHAPE, dt, 0)), _specials(SHAPE, dt, 1)
    ye, ge = _ember_pair(name, x, g)
    yt, gt = _torch_pair(name, x, g)
    _close(ye, yt, np.ones_like(x), dt)
    _close(ge, gt, g, dt)


def _counting(monkeypatch, name):
    """Count the calls of ``_pointwise.<name>`` that return a result."""
    calls = []
    fn = getattr(_pointwise, name)

    def counted(*args):
        out = fn(*args)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(_pointwise, name, counted)
    return calls


def test_relu_is_exact(monkeypatch):
    # relu and its gradient are selections: every bit equals torch's, but for relu(-0.0),
    # which is +0.0 here (NumPy's maximum against +0) and -0.0 in torch
    calls = _counting(monkeypatch, "relu"), _counting(monkeypatch, "relu_grad")
    for dt in ("float32", "float64"):
        x, g = _specials(SHAPE, dt, 2), _specials(SHAPE, dt, 3)
        ye, ge = _ember_pair("relu", x, g)
        yt, gt = _torch_pair("relu", x, g)
        yt[(yt == 0)] = 0.0
        _same_bits(ye, yt)
        _same_bits(ge, gt)
    assert calls == ([True, True], [True, True])  # the blocked kernels ran


# blocked passes per forward + backward: tanh's forward is one ufunc already, sigmoid's is
# not blocked (compute-bound: blocks were slower); leaky_relu's
# forward with a slope <= 0 keeps ``where`` (max(x, x * slope) does not hold)
PASSES = {"tanh": 1, "sigmoid": 1, "leaky_relu_0": 1, "leaky_relu_neg": 1}


@pytest.mark.parametrize("name", list(OPS))
def test_the_blocked_kernels_run(name, monkeypatch):
    calls = _counting(monkeypatch, "blocks")
    x, g = _specials(SHAPE, "float32", 13), _specials(SHAPE, "float32", 14)
    _ember_pair(name, x, g)
    assert len(calls) == PASSES.get(name, 2)


def _whole(name, x, g, monkeypatch):
    """The op's numbers from its whole-array formulas (the blocked kernels off)."""
    with monkeypatch.context() as m:
        m.setattr(_pointwise, "dense_float", lambda a: False)
        return _ember_pair(name, x, g)


@pytest.mark.parametrize("k,block", [(1, 1 << 20), (1, 3 << 12), (2, 1 << 14), (3, 3 << 12)])
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPS))
def test_blocks_and_threads_give_the_same_bits(name, dt, k, block, threads, monkeypatch):
    # many blocks with a short last one, split over threads: the whole-array formulas' bits
    x, g = _specials(SHAPE, dt, 4), _specials(SHAPE, dt, 5)
    y0, g0 = _whole(name, x, g, monkeypatch)
    monkeypatch.setattr(_pointwise, "BLOCK_BYTES", block)
    threads(k)
    y1, g1 = _ember_pair(name, x, g)
    _same_bits(y1, y0)
    _same_bits(g1, g0)


@pytest.mark.parametrize("name", list(OPS))
def test_layouts(name, threads):
    # channels_last (dense, permuted): the result keeps the input's strides; a slice (not
    # dense) and a gradient of another layout than the input take the general formulas
    threads(2)
    x, g = _specials((4, 24, 24, 8), "float32", 6), _specials((4, 24, 24, 8), "float32", 7)
    x = _for_torch(name, x)
    xcl = x.transpose(0, 3, 1, 2)  # NCHW view of NHWC memory
    for xx, gg in ((xcl, g.transpose(0, 3, 1, 2)), (xcl, np.ascontiguousarray(xcl)),
                   (x[:, ::2], g[:, ::2]), (x[..., ::-1], g)):
        xe = ember.from_numpy(np.array(xx, copy=True, order="K")).requires_grad_()
        ye = OPS[name][0](xe)
        gx, = ember.autograd.grad(ye, xe, ember.from_numpy(np.array(gg, order="K")))
        yt, gt = _torch_pair(name, np.ascontiguousarray(xx), np.ascontiguousarray(gg))
        _close(ye.detach().numpy(), yt, np.ones_like(yt))
        _close(gx.numpy(), gt, np.ascontiguousarray(gg))
        if xx is xcl:
            assert ye.stride() == tuple(s // 4 for s in xcl.strides)


def test_relu_grad_without_the_plus_zero_guarantee(monkeypatch):
    # where NumPy's maximum may leave -0.0, the backward takes the general formula
    x, g = _specials(SHAPE, "float32", 8), _specials(SHAPE, "float32", 9)
    monkeypatch.setitem(_pointwise._PLUS_ZERO, (np, np.dtype("float32")), False)
    ye, ge = _ember_pair("relu", x, g)
    yt, gt = _torch_pair("relu", x, g)
    np.testing.assert_array_equal(ge, gt)
    assert _pointwise._plus_zero(np, np.dtype("float64"))  # true on this machine's NumPy


def test_relu_results_do_not_share_memory():
    # results come from workspace blocks: two live results never alias
    x = ember.randn(*SHAPE, requires_grad=True)
    y1, y2 = EF.relu(x), EF.relu(x * 2)
    assert not np.shares_memory(y1.detach().numpy(), y2.detach().numpy())
    g1, = ember.autograd.grad(y1, x, ember.ones(*SHAPE))
    g2, = ember.autograd.grad(y2, x, ember.ones(*SHAPE))
    assert not np.shares_memory(g1.numpy(), g2.numpy())
    np.testing.assert_array_equal(2 * g1.numpy(), g2.numpy())
    assert _workspace.MIN_BYTES <= y1.detach().numpy().nbytes


def test_relu_double_backward_and_create_graph():
    x0, g0 = _specials(SHAPE, "float64", 10), _specials(SHAPE, "float64", 11)
    for mod, f in ((ember, EF), (torch, TF)):
        x = mod.tensor(x0, requires_grad=True)
        g = mod.tensor(g0, requires_grad=True)
        gx, = mod.autograd.grad(f.relu(x), x, g, create_graph=True)
        gg, = mod.autograd.grad(gx, g, mod.ones(SHAPE, dtype=mod.float64))
        if mod is ember:
            ge, gge = gx.detach().numpy(), gg.numpy()
        else:
            np.testing.assert_array_equal(ge, gx.detach().numpy())
            np.testing.assert_array_equal(gge, gg.numpy())


def _gelu_erf_copysign(x):
    """The float32 erf GELU's steps as they were with NumPy's copysign (the oracle for the
    bitwise copysign that replaced it)."""
    f = np.float32
    t = np.abs(x) * f(0.3275911 * np.sqrt(0.5)) + f(1)
    t = f(1) / t
    q = t * f(0.5 * 1.061405429)
    for a in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        q += f(0.5 * a)
        q *= t
    q *= np.exp(x * x * f(-0.5))
    q = np.copysign(f(0.5) - q, x) + f(0.5)
    return q * x


def test_gelu_float32_bitwise_copysign():
    x = _specials((300, 500), "float32", 12)
    with np.errstate(all="ignore"):
        expected = _gelu_erf_copysign(x)
    for xx in (x, x[:7, :9]):  # blocked, and the whole-array formula on a small array
        _same_bits(EF.gelu(ember.tensor(xx)).numpy(), expected[:xx.shape[0], :xx.shape[1]])


@pytest.mark.parametrize("name", list(OPS))
def test_another_array_module(name):
    # the kernels take their array module from the arrays (ops never import NumPy): on the
    # fake device (a NumPy subclass with its own module) results stay there, same numbers
    import fake_device
    fake_device.register()
    try:
        x, g = _specials(SHAPE, "float32", 15), _specials(SHAPE, "float32", 16)
        xf = ember.tensor(x, device="fake", requires_grad=True)
        yf = OPS[name][0](xf)
        gf, = ember.autograd.grad(yf, xf, ember.tensor(g, device="fake"))
        assert type(yf._data) is fake_device.FakeArray
        assert type(gf._data) is fake_device.FakeArray
        ye, ge = _ember_pair(name, x, g)
        _same_bits(yf.detach().cpu().numpy(), ye)
        _same_bits(gf.cpu().numpy(), ge)
    finally:
        fake_device.unregister()


@pytest.mark.parametrize("kib,blocked", [(96, False), (256, False), (512, True)])
def test_relu_blocks_only_from_relu_bytes(kib, blocked, monkeypatch):
    # the size rule, at its real value; the numbers equal torch's either way
    monkeypatch.setattr(_pointwise, "RELU_BYTES", 512 << 10)
    calls = _counting(monkeypatch, "relu"), _counting(monkeypatch, "relu_grad")
    shape = (kib, 256)  # float32: kib KiB
    x, g = _specials(shape, "float32", 21), _specials(shape, "float32", 22)
    ye, ge = _ember_pair("relu", x, g)
    yt, gt = _torch_pair("relu", x, g)
    yt[(yt == 0)] = 0.0
    _same_bits(ye, yt)
    np.testing.assert_array_equal(ge, gt)
    assert calls == (([True], [True]) if blocked else ([], []))
