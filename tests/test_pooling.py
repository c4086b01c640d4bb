"""Max / avg / adaptive / lp pooling and max_unpool (functional and layers), against torch."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

import ember
from opcheck import check, rand, gradcheck, assert_close, to_ember, to_torch


def _valid(size, k, s, p, d, ceil):
    """Whether torch accepts these pooling parameters on ``size``."""
    if p > ((k - 1) * d + 1) // 2 or p > k // 2:
        return False
    span = size + 2 * p - d * (k - 1) - 1
    return span >= 0


def _reads_input(size, k, s, p, d, ceil):
    n = ember.ops._window.out_size(size, k, s, p, d, ceil)
    return all(any(0 <= o * s - p + j * d < size for j in range(k)) for o in range(n))


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _ok2(shape, k, s, p, d, c):
    k, p, d = _pair(k), _pair(p), _pair(d)
    s = k if s is None else _pair(s)
    return all(_valid(shape[-2 + i], k[i], s[i], p[i], d[i], c) for i in range(2))


SHAPE_2D = (2, 3, 7, 6)
# every combination torch accepts (the rejected ones are in test_errors)
GRID_2D = [(k, s, p, d, c) for k, s, p, d, c in itertools.product(
    (1, 2, 3, (2, 3)), (None, 1, 2, (1, 3)), (0, 1), (1, 2), (False, True))
    if _ok2(SHAPE_2D, k, s, p, d, c)]
GRID_AVG = [(k, s, p, c) for k, s, p, c in itertools.product(
    (1, 2, 3, (3, 2)), (None, 1, 2, (2, 1)), (0, 1), (False, True))
    if _ok2(SHAPE_2D, k, s, p, 1, c)]


@pytest.mark.parametrize("k,s,p,d,ceil", GRID_2D)
def test_max_pool2d_grid(k, s, p, d, ceil):
    check(lambda m, x: m.nn.functional.max_pool2d(x, k, s, p, d, ceil, return_indices=True),
          None, rand(*SHAPE_2D))


@pytest.mark.parametrize("k,s,p,ceil", GRID_AVG)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_pool2d_grid(k, s, p, ceil, cip):
    check(lambda m, x: m.nn.functional.avg_pool2d(x, k, s, p, ceil, cip), None,
          rand(*SHAPE_2D))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       ceil=st.booleans(), seed=st.integers(0, 99))
def test_pool2d_random_shapes(n, c, h, w, k, s, p, d, ceil, seed):
    assume(_valid(h, k, s, p, d, ceil) and _valid(w, k, s, p, d, ceil))
    # a dilated window can miss the input entirely; torch's backward then writes out of
    # bounds (it can abort the process), so those are checked in test_window_reading_nothing
    assume(_reads_input(h, k, s, p, d, ceil) and _reads_input(w, k, s, p, d, ceil))
    x = rand(n, c, h, w, seed=seed)
    check(lambda m, x: m.nn.functional.max_pool2d(x, k, s, p, d, ceil, return_indices=True),
          None, x)
    if d == 1:
        check(lambda m, x: m.nn.functional.avg_pool2d(x, k, s, p, ceil), None, x)


@pytest.mark.parametrize("div", [None, 1, 5])
@pytest.mark.parametrize("ceil", [False, True])
def test_avg_pool2d_divisor_override(div, ceil):
    check(lambda m, x: m.nn.functional.avg_pool2d(x, 3, 2, 1, ceil, False, div), None,
          rand(2, 3, 8, 7))


@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (3, 1, 1, 2), (4, 3, 2, 1, True),
                                  (2, 3, 0, 1, True), (5, 2, 2, 1, True)])
def test_max_pool1d(args):
    check(lambda m, x: m.nn.functional.max_pool1d(x, *args, return_indices=True), None,
          rand(2, 3, 11))
    check(lambda m, x: m.nn.functional.max_pool1d(x, *args), None, rand(3, 11))


@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (3, 2, 1, True, False), (4, 3, 2, True)])
def test_avg_pool1d(args):
    check(lambda m, x: m.nn.functional.avg_pool1d(x, *args), None, rand(2, 3, 11))
    check(lambda m, x: m.nn.functional.avg_pool1d(x, *args), None, rand(3, 11))


@pytest.mark.parametrize("args", [(2,), ((2, 1, 3), 1, (1, 0, 1)), (3, 2, 1, 2, True),
                                  ((1, 3, 2), (2, 1, 2), 0, (1, 2, 1), True)])
def test_max_pool3d(args):
    check(lambda m, x: m.nn.functional.max_pool3d(x, *args, return_indices=True), None,
          rand(2, 2, 5, 7, 6))
    check(lambda m, x: m.nn.functional.max_pool3d(x, *args), None, rand(2, 5, 7, 6))


@pytest.mark.parametrize("args", [(2,), ((2, 1, 3), 1, (1, 0, 1)), (3, 2, 1, True, False),
                                  (3, 2, 1, True, True, 7)])
def test_avg_pool3d(args):
    check(lambda m, x: m.nn.functional.avg_pool3d(x, *args), None, rand(2, 2, 5, 7, 6))
    check(lambda m, x: m.nn.functional.avg_pool3d(x, *args), None, rand(2, 5, 7, 6))


@pytest.mark.parametrize("fn", ["max_pool2d", "avg_pool2d"])
def test_unbatched_batch1_noncontiguous(fn):
    f = lambda m, x: getattr(m.nn.functional, fn)(x, 3, 2, 1, ceil_mode=True)  # noqa: E731
    check(f, None, rand(3, 7, 8))
    check(f, None, rand(1, 1, 5, 5))
    check(lambda m, x: f(m, x.transpose(1, 3)), None, rand(2, 8, 7, 3))
    check(lambda m, x: f(m, x[:, ::2, 1:]), None, rand(2, 6, 9, 8))


def test_max_pool_ties_pick_first_max():
    x = np.random.default_rng(1).integers(0, 3, (2, 3, 9, 8)).astype(np.float64)
    for args in [(2,), (3, 1, 1), (3, 2, 1, 2, True), ((2, 3), 1), (4, 1, 2), (5, 2, 2, 1, True)]:
        check(lambda m, x: m.nn.functional.max_pool2d(x, *args, return_indices=True), None, x)
    check(lambda m, x: m.nn.functional.max_pool1d(x, 3, 1, 1, return_indices=True), None,
          x[0])
    check(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, (4, 3), True), None, x)
    check(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, (2, 3), True), None, x)
    # all -inf windows keep their first input position (loop and argmax paths)
    z = np.full((1, 2, 7, 7), -np.inf)
    z[0, 1, 3:, 3:] = 1.0
    for k in (2, 4):
        ye, ie = ember.nn.functional.max_pool2d(to_ember(z), k, 1, k // 2, return_indices=True)
        yt, it = torch.nn.functional.max_pool2d(to_torch(z), k, 1, k // 2, return_indices=True)
        assert_close(ye, yt)
        assert_close(ie, it)
    z = np.zeros((1, 1, 4, 4))
    check(lambda m, x: m.nn.functional.max_pool2d(x, 3, 1, 1, return_indices=True), None, z)


def test_max_pool_tree_ties_nan_and_lowest():
    # the pairwise tree (< 16 positions) must keep PyTorch's rules for every window size,
    # odd ones included: first maximum on ties, the last NaN, padding never chosen
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, (2, 2, 9, 9)).astype(np.float32)
    xn = x.copy()
    xn[0, 0, rng.integers(0, 9, 6), rng.integers(0, 9, 6)] = np.nan
    for a in (x, xn):
        for args in [(2,), ((1, 3),), ((3, 5), 1, 1), ((1, 2), 1), ((3, 1), 2, (1, 0)),
                     (3, 3, 0, 1, True)]:
            ye, ie = ember.nn.functional.max_pool2d(to_ember(a), *args, return_indices=True)
            yt, it = torch.nn.functional.max_pool2d(to_torch(a), *args, return_indices=True)
            assert_close(ye, yt, "float32")
            assert_close(ie, it)
    x3 = rng.integers(0, 2, (1, 2, 5, 6, 7)).astype(np.float64)
    x3[0, 1, 2, 3, 4] = np.nan
    check(lambda m, x: m.nn.functional.max_pool3d(x, 2, 2, 1, return_indices=True), None, x3)
    check(lambda m, x: m.nn.functional.max_pool3d(x, 3, 2, 1, return_indices=True), None, x3)
    # integers: windows of only the lowest value keep their first input position
    lo = np.iinfo(np.int64).min
    xi = np.where(rng.random((1, 2, 6, 6)) < 0.7, lo, rng.integers(-3, 3, (1, 2, 6, 6)))
    for args in [(2, 1, 1), (3, 2, 1), (3, 1, 1, 1, True)]:
        ye, ie = ember.nn.functional.max_pool2d(to_ember(xi), *args, return_indices=True)
        yt, it = torch.nn.functional.max_pool2d(to_torch(xi), *args, return_indices=True)
        assert_close(ye, yt)
        assert_close(ie, it)


def test_max_pool_nan_and_inf():
    x = rand(2, 2, 6, 7)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = x[1, 1, 4, 4] = np.nan
    x[0, 1] = -np.inf
    x[1, 0, :3, :3] = -np.inf
    for dt in ("float64", "float32"):
        a = x.astype(dt)
        for args in [(2,), (3, 1, 1), (3, 2, 1, 1, True), (4, 1, 2)]:
            ye, ie = ember.nn.functional.max_pool2d(to_ember(a), *args, return_indices=True)
            yt, it = torch.nn.functional.max_pool2d(to_torch(a), *args, return_indices=True)
            assert_close(ye, yt, dt)
            assert_close(ie, it)
        ye, ie = ember.nn.functional.adaptive_max_pool2d(to_ember(a), (4, 5), True)
        yt, it = torch.nn.functional.adaptive_max_pool2d(to_torch(a), (4, 5), True)
        assert_close(ye, yt, dt)
        assert_close(ie, it)
    ye = ember.nn.functional.max_pool2d(to_ember(x), 3, 1, 1)  # the no-index path
    assert_close(ye, torch.nn.functional.max_pool2d(to_torch(x), 3, 1, 1))


def test_window_reading_nothing():
    # kernel 2, dilation 2, padding 1 on size 1: the window reads positions -1 and 1, neither
    # in the input; torch outputs -inf with an index past the window and no gradient
    for shape in [(1, 1, 1, 1), (1, 2, 1, 3)]:
        a = rand(*shape)
        ye, ie = ember.nn.functional.max_pool2d(to_ember(a, True), 2, (3, 1), 1, 2,
                                                return_indices=True)
        with torch.no_grad():
            yt, it = torch.nn.functional.max_pool2d(to_torch(a), 2, (3, 1), 1, 2,
                                                    return_indices=True)
        assert_close(ye.detach(), yt)
        assert_close(ie, it)
        g, = ember.autograd.grad(ye.sum(), ye.grad_fn.next_functions[0][0].variable)
        assert not g.numpy().any()
    assert gradcheck(lambda x: ember.nn.functional.max_pool2d(x, 2, 1, 1, 2).clamp(-9, 9),
                     rand(1, 1, 2, 3))


def test_integer_inputs():
    x = np.random.default_rng(2).integers(-50, 50, (2, 3, 7, 7))
    for fn, args in [("max_pool2d", (3, 2, 1)), ("avg_pool2d", (3, 2, 1)),
                     ("avg_pool2d", (2, 2, 0, False, True, 3)), ("avg_pool1d", (2,))]:
        a = x[0] if fn.endswith("1d") else x
        assert_close(getattr(ember.nn.functional, fn)(to_ember(a), *args),
                     getattr(torch.nn.functional, fn)(to_torch(a), *args))


@pytest.mark.parametrize("size,out", [(7, 3), (8, 4), (5, 5), (7, 9), (10, 3), (6, 1),
                                      (11, (4, None)), (9, (2, 5))])
def test_adaptive_2d(size, out):
    x = rand(2, 3, size, size + 1)
    check(lambda m, x: m.nn.functional.adaptive_avg_pool2d(x, out), None, x)
    check(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, out, True), None, x)
    check(lambda m, x: m.nn.functional.adaptive_avg_pool2d(x, out), None, x[0])
    check(lambda m, x: m.nn.functional.adaptive_max_pool2d(x, out, True), None, x[0])


@pytest.mark.parametrize("size,out", [(7, 3), (8, 4), (5, 7), (9, 1)])
def test_adaptive_1d_3d(size, out):
    check(lambda m, x: m.nn.functional.adaptive_avg_pool1d(x, out), None, rand(2, 3, size))
    check(lambda m, x: m.nn.functional.adaptive_max_pool1d(x, out, True), None,
          rand(2, 3, size))
    check(lambda m, x: m.nn.functional.adaptive_max_pool1d(x, out), None, rand(3, size))
    x = rand(2, 2, size, 5, size - 1)
    o3 = (out, None, 2)
    check(lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, o3), None, x)
    check(lambda m, x: m.nn.functional.adaptive_max_pool3d(x, o3, True), None, x)


def test_adaptive_zero_output_size():
    x = rand(2, 3, 7, 8)
    for fn in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        assert_close(getattr(ember.nn.functional, fn)(to_ember(x), 0),
                     getattr(torch.nn.functional, fn)(to_torch(x), 0))


@pytest.mark.parametrize("p,args", [(2, (3,)), (1, (2, 1)), (3, (3, 2, True)),
                                    (1.5, ((2, 3), (1, 2)))])
def test_lp_pool(p, args):
    pos = p not in (1, 2)  # fractional / odd powers of negatives are NaN in both
    x = rand(2, 3, 7, 8, low=0.1 if pos else -2.0)
    check(lambda m, x: m.nn.functional.lp_pool2d(x, p, *args), None, x)
    a1 = args if not isinstance(args[0], tuple) else (3,)
    check(lambda m, x: m.nn.functional.lp_pool1d(x, p, *a1), None, x[0])
    check(lambda m, x: m.nn.functional.lp_pool3d(x, p, 2), None, x)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_round_trip(nd):
    shape = (2, 3) + (7, 6, 5)[:nd]
    pool = getattr(torch.nn.functional, f"max_pool{nd}d")
    epool = getattr(ember.nn.functional, f"max_pool{nd}d")
    unpool = f"max_unpool{nd}d"
    osz = tuple(shape[2:])

    def f(m, x):
        p = epool if m is ember else pool
        y, i = p(x, 2, return_indices=True)
        return getattr(m.nn.functional, unpool)(y, i, 2, output_size=osz)
    check(f, None, rand(*shape))

    def g(m, x):
        p = epool if m is ember else pool
        y, i = p(x, 3, 2, 1, return_indices=True)
        return getattr(m.nn.functional, unpool)(y, i, 3, 2, 1, output_size=osz)
    check(g, None, rand(*shape))


def test_max_unpool2d_unbatched_and_output_size_forms():
    x = rand(3, 8, 8)
    for osz in [None, (9, 9), (2, 3, 9, 9)]:
        def f(m, x):
            y, i = m.nn.functional.max_pool2d(x, 2, return_indices=True)
            return m.nn.functional.max_unpool2d(y, i, 2, output_size=osz)
        check(f, None, x)


@pytest.mark.parametrize("name,fn", [
    ("max2", lambda x: ember.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("max3", lambda x: ember.nn.functional.max_pool3d(x[None], 2, 1)),
    ("avg2", lambda x: ember.nn.functional.avg_pool2d(x, 3, 2, 1, True, False)),
    ("avg3", lambda x: ember.nn.functional.avg_pool3d(x[None], 2, 1, 1)),
    ("aavg", lambda x: ember.nn.functional.adaptive_avg_pool2d(x, (3, 2))),
    ("amax", lambda x: ember.nn.functional.adaptive_max_pool2d(x, (3, 4))),
    ("lp", lambda x: ember.nn.functional.lp_pool2d(x.abs() + 0.5, 2, 2)),
    ("unpool", lambda x: ember.nn.functional.max_unpool2d(
        x, ember.tensor([[[[0, 3, 4], [11, 13, 9], [20, 16, 24]]]] * 2).expand(2, 2, 3, 3),
        2, 2)),
])
def test_gradcheck(name, fn):
    x = rand(2, 2, 5, 5) if name != "unpool" else rand(2, 2, 3, 3)
    assert gradcheck(fn, x)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nn.functional.max_pool2d(x, 3, 2, 1),
    lambda m, x: m.nn.functional.avg_pool2d(x, 3, 2, 1, True, False),
    lambda m, x: m.nn.functional.adaptive_avg_pool2d(x, (3, 2)),
    lambda m, x: m.nn.functional.adaptive_max_pool2d(x, (3, 2)),
])
def test_double_backward(fn):
    a = rand(2, 2, 6, 5)
    xe, xt = to_ember(a, True), to_torch(a, True)
    ge, = ember.autograd.grad((fn(ember, xe) ** 3).sum(), xe, create_graph=True)
    gt, = torch.autograd.grad((fn(torch, xt) ** 3).sum(), xt, create_graph=True)
    assert_close(ge, gt)
    assert_close(ember.autograd.grad((ge ** 2).sum(), xe)[0],
                 torch.autograd.grad((gt ** 2).sum(), xt)[0])


def test_grad_fn_names():
    a = rand(2, 3, 8, 8)
    calls = [lambda m, x: m.nn.functional.max_pool2d(x, 2),
             lambda m, x: m.nn.functional.max_pool2d(x, 2, return_indices=True)[0],
             lambda m, x: m.nn.functional.max_pool3d(x, 2),
             lambda m, x: m.nn.functional.max_pool1d(x[0], 2),
             lambda m, x: m.nn.functional.avg_pool2d(x, 2),
             lambda m, x: m.nn.functional.avg_pool3d(x, 2),
             lambda m, x: m.nn.functional.avg_pool1d(x[0], 2),
             lambda m, x: m.nn.functional.adaptive_avg_pool2d(x, 3),
             lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, 3),
             lambda m, x: m.nn.functional.adaptive_max_pool2d(x, 3),
             lambda m, x: m.nn.functional.adaptive_max_pool2d(x, 4),
             lambda m, x: m.nn.functional.adaptive_max_pool3d(x, 3),
             lambda m, x: m.nn.functional.lp_pool2d(x, 2, 2)]
    for f in calls:
        assert f(ember, to_ember(a, True)).grad_fn.name() == f(torch, to_torch(a, True)) \
            .grad_fn.name()
    ye, ie = ember.nn.functional.max_pool2d(to_ember(a, True), 2, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(to_torch(a, True), 2, return_indices=True)
    assert ember.nn.functional.max_unpool2d(ye, ie, 2).grad_fn.name() == \
        torch.nn.functional.max_unpool2d(yt, it, 2).grad_fn.name()
    assert not ie.requires_grad and ie.dtype == ember.int64


def _raises(exc, match, fn):
    with pytest.raises(exc, match=match):
        fn(ember)
    with pytest.raises(exc, match=match):
        fn(torch)


def test_errors():
    F = lambda m: m.nn.functional  # noqa: E731
    x = lambda m: m.zeros(2, 3, 7, 7)  # noqa: E731
    x1 = lambda m: m.zeros(2, 3, 7)  # noqa: E731
    too_small = r"Given input size: \(3x7x7\). Calculated output size: \(3x0x0\). " \
        r"Output size is too small"
    _raises(RuntimeError, too_small, lambda m: F(m).max_pool2d(x(m), 8))
    _raises(RuntimeError, too_small, lambda m: F(m).avg_pool2d(x(m), 8))
    _raises(RuntimeError, r"Output size is too small", lambda m: F(m).max_pool3d(
        m.zeros(2, 3, 5, 5, 5), 6))
    _raises(RuntimeError, r"\(3x1x7\). Calculated output size: \(3x1x0\). Output size is too "
            "small", lambda m: F(m).avg_pool1d(x1(m), 8))
    _raises(RuntimeError, "max_pool1d\\(\\) Invalid computed output size: 0",
            lambda m: F(m).max_pool1d(x1(m), 8))
    half = "pad should be at most half of effective kernel size, but got pad=2, " \
        "kernel_size=3 and dilation=1"
    _raises(RuntimeError, half, lambda m: F(m).max_pool2d(x(m), 3, padding=2))
    _raises(RuntimeError, half, lambda m: F(m).avg_pool2d(x(m), 3, padding=2))
    _raises(RuntimeError, half, lambda m: F(m).max_pool3d(m.zeros(1, 5, 5, 5), 3, padding=2))
    _raises(RuntimeError, "max_pool1d\\(\\) padding should be at most half of kernel size, "
            "but got padding=2 and kernel_size=3", lambda m: F(m).max_pool1d(x1(m), 3, 1, 2))
    _raises(RuntimeError, "pad should be smaller than or equal to half of kernel size, but "
            "got padW = 1, padH = 2, kW = 3, kH = 3",
            lambda m: F(m).max_pool2d(x(m), 3, 1, (2, 1), 2))
    _raises(RuntimeError, "pad should be smaller than or equal to half of kernel size, but "
            "got kT: 3 kW: 3 kH: 3 padT: 2 padW: 2 padH: 2",
            lambda m: F(m).max_pool3d(m.zeros(1, 1, 5, 5, 5), 3, 1, 2, 2))
    _raises(RuntimeError, "stride should not be zero", lambda m: F(m).max_pool2d(x(m), 2, 0))
    _raises(RuntimeError, "stride should not be zero", lambda m: F(m).avg_pool2d(x(m), 2, 0))
    _raises(RuntimeError, "stride should not be zero", lambda m: F(m).avg_pool1d(x1(m), 2, 0))
    _raises(RuntimeError, "max_pool1d\\(\\) stride must be greater than zero, but got 0",
            lambda m: F(m).max_pool1d(x1(m), 2, 0))
    _raises(RuntimeError, r"stride should be greater than zero, but got dH: -1 dW: -1",
            lambda m: F(m).avg_pool2d(x(m), 2, -1))
    _raises(RuntimeError, r"kernel size should be greater than zero, but got kH: -1 kW: -1",
            lambda m: F(m).max_pool2d(x(m), -1))
    _raises(RuntimeError, r"dilation should be greater than zero, but got dilationH: 0 "
            r"dilationW: 0", lambda m: F(m).max_pool2d(x(m), 2, dilation=0))
    _raises(RuntimeError, "pad must be non-negative, but got pad: -1",
            lambda m: F(m).max_pool2d(x(m), 2, padding=-1))
    _raises(RuntimeError, "max_pool2d: kernel_size must either be a single int, or a tuple of "
            "two ints", lambda m: F(m).max_pool2d(x(m), (2, 2, 2)))
    _raises(RuntimeError, "avg_pool2d: stride must either be omitted, a single int, or a "
            "tuple of two ints", lambda m: F(m).avg_pool2d(x(m), 2, (1, 2, 3)))
    _raises(RuntimeError, "non-empty 3D or 4D \\(batch mode\\) tensor expected for input",
            lambda m: F(m).max_pool2d(m.zeros(7, 7), 2))
    _raises(RuntimeError, "Expected 3D or 4D \\(batch mode\\) tensor with optional 0 dim "
            "batch size for input, but got:\\[2, 3, 0, 7\\]",
            lambda m: F(m).max_pool2d(m.zeros(2, 3, 0, 7), 2))
    _raises(RuntimeError, "max_pool1d: Expected 2D or 3D \\(batch mode\\) tensor with optional 0 "
            "dim batch size for input, but got:\\[7\\]", lambda m: F(m).max_pool1d(m.zeros(7), 2))
    _raises(RuntimeError, "Expected 2 to 3 dimensions, but got 1-dimensional tensor for "
            "argument #1 'self' \\(while checking arguments for avg_pool1d\\)",
            lambda m: F(m).avg_pool1d(m.zeros(7), 2))
    _raises(RuntimeError, "divisor must be not zero",
            lambda m: F(m).avg_pool2d(x(m), 2, divisor_override=0))
    _raises(NotImplementedError, "\"max_pool2d\" not implemented for 'Bool'",
            lambda m: F(m).max_pool2d(m.zeros(1, 4, 4, dtype=m.bool), 2))
    # adaptive
    _raises(RuntimeError, "adaptive_avg_pool2d: output_size must be 2",
            lambda m: F(m).adaptive_avg_pool2d(x(m), (3,)))
    _raises(RuntimeError, r"adaptive_avg_pool2d: elements of output_size must be greater than "
            r"or equal to 0 but received \{-1, -1\}",
            lambda m: F(m).adaptive_avg_pool2d(x(m), -1))
    _raises(RuntimeError, r"adaptive_avg_pool2d\(\): Expected 3D or 4D tensor, but got "
            r"\[7, 7\]", lambda m: F(m).adaptive_avg_pool2d(m.zeros(7, 7), 2))
    _raises(RuntimeError, r"adaptive_max_pool2d\(\): Expected input to have non-zero size for "
            r"non-batch dimensions, but input has sizes \[2, 3, 0, 7\] with dimension 2 being "
            r"empty", lambda m: F(m).adaptive_max_pool2d(m.zeros(2, 3, 0, 7), 2))
    _raises(RuntimeError, r"adaptive_max_pool1d\(\) argument 'output_size' should contain one "
            r"int \(got 2\)", lambda m: F(m).adaptive_max_pool1d(x1(m), (3, 4)))
    # max_unpool

    def unpool(m, **kw):
        v, ix = F(m).max_pool2d(m.zeros(2, 3, 8, 8), 2, return_indices=True)
        for key, f in kw.items():
            if key == "idx":
                ix = f(ix)
        return F(m).max_unpool2d(v, ix, 2, output_size=kw.get("osz"))
    _raises(ValueError, r"invalid output_size \"\(12, 12\)\" \(dim 0 must be between 6 and "
            r"10\)", lambda m: unpool(m, osz=(12, 12)))
    _raises(ValueError, "output_size should be a sequence containing 2 or 4 elements, but it "
            "has a length of '1'", lambda m: unpool(m, osz=(9,)))
    _raises(RuntimeError, "elements in indices should be type int64 but got: Float$",
            lambda m: unpool(m, idx=lambda t: t.float()))
    _raises(RuntimeError, r"Expected shape of indices to be same as that of the input tensor "
            r"\(\[2, 3, 4, 4\]\) but got indices tensor with shape: \[2, 3, 2, 4\]",
            lambda m: unpool(m, idx=lambda t: t[:, :, :2]))
    _raises(RuntimeError, r"Found an invalid max index: \d+ \(output volumes are of size 6x6\)",
            lambda m: F(m).max_unpool2d(*F(m).max_pool2d(
                m.arange(49.).reshape(1, 1, 7, 7), 2, return_indices=True), 2))


MODULES = [
    ("MaxPool1d", (3, 2, 1), {}, 3), ("MaxPool2d", (2,), {}, 4),
    ("MaxPool2d", ((3, 2), 1, (1, 0), 1, False, True), {}, 4),
    ("MaxPool3d", (2,), {"ceil_mode": True}, 5),
    ("AvgPool1d", (3, 2, 1, True, False), {}, 3), ("AvgPool2d", (2,), {}, 4),
    ("AvgPool2d", (3, 2, 1), {"divisor_override": 3}, 4), ("AvgPool3d", (2, 1, 1), {}, 5),
    ("AdaptiveAvgPool1d", (3,), {}, 3), ("AdaptiveAvgPool2d", ((3, None),), {}, 4),
    ("AdaptiveAvgPool3d", (2,), {}, 5), ("AdaptiveMaxPool1d", (4,), {}, 3),
    ("AdaptiveMaxPool2d", (3,), {}, 4), ("AdaptiveMaxPool3d", ((2, 3, None),), {}, 5),
    ("LPPool1d", (2, 3), {}, 3), ("LPPool2d", (1, 3, 2, True), {}, 4),
    ("LPPool3d", (2, 2), {}, 5),
]


@pytest.mark.parametrize("name,args,kw,nd", MODULES)
def test_modules(name, args, kw, nd):
    me, mt = getattr(ember.nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw)
    assert repr(me) == repr(mt)
    assert me.state_dict().keys() == mt.state_dict().keys()
    check(lambda x: me(x), lambda x: mt(x), rand(*(2, 3, 7, 6, 5)[:nd]))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_unpool_modules(nd):
    shape = (2, 3) + (8, 6, 4)[:nd]
    pe = getattr(ember.nn, f"MaxPool{nd}d")(2, return_indices=True)
    pt = getattr(torch.nn, f"MaxPool{nd}d")(2, return_indices=True)
    ue, ut = getattr(ember.nn, f"MaxUnpool{nd}d")(2), getattr(torch.nn, f"MaxUnpool{nd}d")(2)
    assert repr(ue) == repr(ut) and repr(pe) == repr(pt)
    check(lambda x: ue(*pe(x), output_size=shape[2:]), lambda x: ut(*pt(x),
          output_size=shape[2:]), rand(*shape))
