"""Batch norm's flat-row path (NOTE [ Batch norm on flat rows ] in ops/normalization.py)
against the (N, C, S) path and torch.

Each case runs ember with ``normalization._FLAT`` on and off, and the flat backward with
``_UNCENTRED`` on and off (NOTE [ Uncentred batch norm backward ]), on the same inputs, and
torch once: both paths must match torch within float rounding (scaled by the channels' conditioning
``1 + |mean| / std``), in float32 and float64, for every subset of needed gradients, with and
without weight/bias, with and without running statistics, in training and evaluation, for
1-d, 2-d and 3-d inputs and channels_last.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import normalization as norm

TOL = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}
NEEDS = [(True, True, True), (True, False, False), (False, True, False), (False, False, True),
         (False, True, True)]


def _run(m, x, w, b, g, needs, training=True, stats=True, momentum=0.1, cl=False):
    """(y, dx, dw, db, running_mean, running_var) of ``batch_norm`` under module ``m``."""
    def leaf(a, need):
        return None if a is None else m.tensor(a, requires_grad=need)
    xt, wt, bt = leaf(x, needs[0]), leaf(w, needs[1]), leaf(b, needs[2])
    if cl:
        fmt = m.channels_last if x.ndim == 4 else m.channels_last_3d
        xt = xt.detach().to(memory_format=fmt).requires_grad_(needs[0])
    c = x.shape[1]
    rm = m.tensor(np.linspace(-1, 1, c).astype(x.dtype)) if stats else None
    rv = m.tensor(np.linspace(0.5, 2, c).astype(x.dtype)) if stats else None
    y = m.nn.functional.batch_norm(xt, rm, rv, wt, bt, training, momentum, 1e-5)
    if any(n and t is not None for n, t in zip(needs, (xt, wt, bt))):
        y.backward(m.tensor(g))
    out = [y.detach().numpy()]
    for t in (xt, wt, bt):
        out.append(None if t is None or t.grad is None else t.grad.numpy())
    out += [None if t is None else t.numpy() for t in (rm, rv)]
    return out


def _compare(x, w, b, g, needs=(True, True, True), **kw):
    dt = x.dtype.type
    ax = (0,) + tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    cond = 1 + np.nanmax(np.abs(np.nanmean(x64, ax)) / np.sqrt(np.nanvar(x64, ax) + 1e-5))
    tol = {k: v * cond for k, v in TOL[dt].items()}
    ref = _run(torch, x, w, b, g, needs, **kw)
    for flat, unc in ((True, True), (True, False), (False, True)):
        old = norm._FLAT, norm._UNCENTRED
        norm._FLAT, norm._UNCENTRED = flat, unc
        try:
            got = _run(ember, x, w, b, g, needs, **kw)
        finally:
            norm._FLAT, norm._UNCENTRED = old
        for r, e in zip(ref, got):
            assert (r is None) == (e is None)
            if r is not None:
                assert e.dtype == r.dtype
                np.testing.assert_allclose(e, r, **tol)


def _inputs(shape, dtype, seed=0, shift=0.0, affine=True, bias=True):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + shift).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal(c) + 1).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine and bias else None
    return x, w, b, g


SHAPES = [(8, 16, 4, 4), (4, 32, 2, 2), (6, 8, 5), (3, 4, 2, 3, 2), (16, 8), (2, 3, 16, 16),
          (2, 3, 17, 17)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_against_torch_and_nchw_path(dtype, shape):
    _compare(*_inputs(shape, dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("needs", NEEDS, ids=str)
def test_needed_gradients(dtype, needs):
    _compare(*_inputs((8, 16, 3, 3), dtype), needs=needs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine,bias", [(True, False), (False, False)])
def test_without_parameters(dtype, affine, bias):
    _compare(*_inputs((8, 16, 3, 3), dtype, affine=affine, bias=bias))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training,stats", [(True, False), (False, True), (True, True)])
def test_train_eval_running_stats(dtype, training, stats):
    _compare(*_inputs((8, 16, 4, 4), dtype), training=training, stats=stats, momentum=0.3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [30.0, 1000.0])
def test_large_mean(dtype, shift):
    _compare(*_inputs((8, 16, 2, 2), dtype, shift=shift))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0.5, 0.99, 1.01, 3.0])
def test_mean_near_spread(dtype, shift):
    """Channel means around the uncentred backward's bound (std 2: shift * 2 is the mean)."""
    _compare(*_inputs((8, 16, 4, 4), dtype, shift=shift * 2))


def test_uncentred_only_when_every_channel_mean_within_spread(monkeypatch):
    calls = []
    real = norm._chan_dot
    monkeypatch.setattr(norm, "_chan_dot", lambda xp, lay, a, b: calls.append(b) or
                        real(xp, lay, a, b))
    x, w, b, g = _inputs((4, 3, 5, 5), np.float64)

    def centred(x0):
        calls.clear()
        xt = ember.tensor(x0, requires_grad=True)
        ember.nn.functional.batch_norm(xt, None, None, training=True).backward(ember.tensor(g))
        back = calls[-1]  # the backward's sum of products: on x itself or on x - mean
        return not np.shares_memory(back, xt.detach().numpy())

    assert not centred(x)
    x1 = x.copy()
    x1[:, 1] += 50.0  # one channel's mean far outside its spread: the whole call is centred
    assert centred(x1)
    _compare(x1, w, b, g)
    x2 = x.copy()
    x2[0, 2, 0, 0] = np.nan  # NaN fails the test too
    assert centred(x2)
    _compare(x2, w, b, g)


@pytest.mark.parametrize("shape", [(4, 8, 3, 3), (2, 4, 3, 2, 2)], ids=str)
def test_channels_last(shape):
    _compare(*_inputs(shape, np.float32), cl=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 8, 5, 5), (3, 6, 2, 2), (2, 4, 7)], ids=str)
def test_instance_norm(dtype, shape):
    """instance_norm is batch norm of (1, N*C, S): one row on the flat path."""
    x, w, b, g = _inputs(shape, dtype)
    ref = None
    for flat, unc in ((None, None), (True, True), (True, False), (False, True)):
        m = torch if flat is None else ember
        old = norm._FLAT, norm._UNCENTRED
        if flat is not None:
            norm._FLAT, norm._UNCENTRED = flat, unc
        try:
            xt, wt, bt = (m.tensor(a, requires_grad=True) for a in (x, w, b))
            y = m.nn.functional.instance_norm(xt, weight=wt, bias=bt)
            y.backward(m.tensor(g))
            got = [t.detach().numpy() for t in (y, xt.grad, wt.grad, bt.grad)]
        finally:
            norm._FLAT, norm._UNCENTRED = old
        if ref is None:
            ref = got
            continue
        for e, r in zip(got, ref):
            np.testing.assert_allclose(e, r, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("shape,groups", [((4, 8, 5, 5), 4), ((3, 6, 7), 3), ((2, 4, 3), 1)],
                         ids=str)
def test_group_norm_weight_rows(dtype, affine, bias, shape, groups):
    """Group norm's forward applies its weight and bias as (G, C/G, S) blocks under _FLAT
    (the (G, C/G, 1) broadcast without): both against torch, forward and gradients."""
    x, w, b, g = _inputs(shape, dtype, affine=affine, bias=bias)
    ref = None
    for flat in (None, True, False):
        m = torch if flat is None else ember
        old = norm._FLAT
        if flat is not None:
            norm._FLAT = flat
        try:
            xt = m.tensor(x, requires_grad=True)
            wt, bt = (None if a is None else m.tensor(a, requires_grad=True) for a in (w, b))
            y = m.nn.functional.group_norm(xt, groups, wt, bt)
            y.backward(m.tensor(g))
            got = [None if t is None else (t if t is y else t.grad).detach().numpy()
                   for t in (y, xt, wt, bt)]
        finally:
            norm._FLAT = old
        if ref is None:
            ref = got
            continue
        for e, r in zip(got, ref):
            assert (e is None) == (r is None)
            if r is not None:
                np.testing.assert_allclose(e, r, **TOL[dtype])


def test_momentum_none_module():
    """BatchNorm2d(momentum=None): the cumulative average over steps, as torch."""
    x, _, _, g = _inputs((8, 16, 4, 4), np.float32)
    outs = {}
    for m in (ember, torch):
        bn = m.nn.BatchNorm2d(16, momentum=None)
        for k in range(3):
            xt = m.tensor(x + k, requires_grad=True)
            bn(xt).backward(m.tensor(g))
        outs[m] = [t.detach().numpy() for t in (bn.running_mean, bn.running_var, xt.grad,
                                                bn.weight.grad, bn.bias.grad)]
    for e, r in zip(outs[ember], outs[torch]):
        np.testing.assert_allclose(e, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_equals_nchw_path(dtype):
    """Half inputs are normalised in float32 on either path: the same bits up to rounding
    of the float32 statistics, and the output in the input's dtype."""
    x, w, b, g = _inputs((4, 8, 3, 3), np.float32)
    res = []
    for flat in (True, False):
        norm._FLAT, old = flat, norm._FLAT
        try:
            xt = ember.tensor(x).to(getattr(ember, dtype)).requires_grad_()
            y = ember.nn.functional.batch_norm(xt, None, None, None, None, True)
            y.backward(ember.tensor(g).to(getattr(ember, dtype)))
            assert y.dtype == getattr(ember, dtype) and xt.grad.dtype == y.dtype
            res.append([t.float().detach().numpy() for t in (y, xt.grad)])
        finally:
            norm._FLAT = old
    for a, r in zip(*res):
        np.testing.assert_allclose(a, r, rtol=1e-2, atol=1e-2)


def test_flat_path_taken_only_on_contiguous_inputs(monkeypatch):
    seen = []
    real = norm._flat_normalized
    monkeypatch.setattr(norm, "_flat_normalized", lambda *a: seen.append(1) or real(*a))
    f = ember.nn.functional.batch_norm
    f(ember.randn(4, 8, 3, 3), None, None, training=True)
    f(ember.randn(2, 2, 32, 32), None, None, training=True)
    assert seen == [1, 1]
    monkeypatch.setattr(norm, "_FLAT", False)
    f(ember.randn(4, 8, 3, 3), None, None, training=True)
    assert seen == [1, 1]


def test_output_not_reused_while_alive():
    """The scratch block comes from the workspace; outputs and gradients stay fresh."""
    x, w, b, g = _inputs((8, 64, 4, 4), np.float32)
    xt = ember.tensor(x, requires_grad=True)
    y1 = ember.nn.functional.batch_norm(xt, None, None, training=True)
    y1.backward(ember.tensor(g))
    d1 = xt.grad.clone()
    keep = y1.detach().numpy().copy()
    y2 = ember.nn.functional.batch_norm(ember.tensor(x + 1), None, None, training=True)
    assert np.array_equal(y1.detach().numpy(), keep)
    assert not np.shares_memory(y1.detach().numpy(), y2.numpy())
    assert np.array_equal(xt.grad.numpy(), d1.numpy())


def test_create_graph_matches_torch():
    """Under create_graph the graph path runs (not the flat arrays): second derivatives."""
    x, w, b, g = _inputs((4, 8, 2, 2), np.float64)
    res = []
    for m in (ember, torch):
        xt = m.tensor(x, requires_grad=True)
        wt = m.tensor(w, requires_grad=True)
        y = m.nn.functional.batch_norm(xt, None, None, wt, None, True)
        (dx,) = m.autograd.grad((y * m.tensor(g)).sum(), xt, create_graph=True)
        (dw,) = m.autograd.grad((dx * dx).sum(), wt)
        res.append([dx.detach().numpy(), dw.numpy()])
    for a, r in zip(*res):
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), c=st.integers(1, 9), s=st.lists(st.integers(1, 5), max_size=2),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(n, c, s, dtype, seed):
    _compare(*_inputs((n, c, *s), dtype, seed=seed))
