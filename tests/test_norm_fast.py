"""Layer norm's GEMV backward (``normalization._rows_grads``) and rank-2 GEMM forward
(``normalization._rows_normalized``) against the general paths and torch.

Each case runs ember six times on the same inputs, with ``normalization._FAST`` (backward),
``_RANK2_BWD`` (its rank-2 factors), ``_FAST_FWD`` (forward) and ``_ONE_PASS`` (its one-pass
variance, NOTE [ One-pass variance ]) on and off, and torch once: the fast path must match torch
as closely as the general one does, in float32
and float64, for every subset of needed gradients, with and without weight/bias, and on
inputs whose mean is large against their spread (where a formula on uncentred ``x`` would
cancel).
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import normalization as norm

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _run(m, x, w, b, g, needs, ns):
    """(y, dx, dw, db) of ``layer_norm`` under module ``m``; gradients only where needed."""
    def leaf(a, need):
        if a is None:
            return None
        return m.tensor(a, requires_grad=need)
    xt, wt, bt = leaf(x, needs[0]), leaf(w, needs[1]), leaf(b, needs[2])
    y = m.nn.functional.layer_norm(xt, ns, wt, bt, eps=1e-5)
    if any(n and t is not None for n, t in zip(needs, (xt, wt, bt))):
        y.backward(m.tensor(g))
    out = [y.detach().numpy()]
    for t in (xt, wt, bt):
        out.append(None if t is None or t.grad is None else t.grad.numpy())
    return out


def _compare(x, w, b, g, needs, ns):
    """Both ember paths against torch, within float rounding scaled by the rows' conditioning
    ``1 + |mean| / std`` (the rounding of ``x`` itself, relative to the spread)."""
    dt = x.dtype.type
    rows = x.astype(np.float64).reshape(-1, int(np.prod(ns)))
    cond = 1 + np.max(np.abs(rows.mean(1)) / np.sqrt(rows.var(1) + 1e-5))
    tol = {k: v * cond for k, v in TOL[dt].items()}
    ref = _run(torch, x, w, b, g, needs, ns)
    for fast, fwd, r2, one in ((True, True, True, True), (True, True, True, False),
                               (True, True, False, True), (False, True, True, True),
                               (True, False, True, True), (False, False, True, True)):
        old = norm._FAST, norm._FAST_FWD, norm._RANK2_BWD, norm._ONE_PASS
        norm._FAST, norm._FAST_FWD, norm._RANK2_BWD, norm._ONE_PASS = fast, fwd, r2, one
        try:
            got = _run(ember, x, w, b, g, needs, ns)
        finally:
            norm._FAST, norm._FAST_FWD, norm._RANK2_BWD, norm._ONE_PASS = old
        for r, e in zip(ref, got):
            assert (r is None) == (e is None)
            if r is not None:
                assert e.dtype == r.dtype
                np.testing.assert_allclose(e, r, **tol)
    return got


def _inputs(shape, k, dtype, seed, shift=0.0, affine=True, bias=True):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) + shift).astype(dtype)
    w = rng.standard_normal(k).astype(dtype) if affine else None
    b = rng.standard_normal(k).astype(dtype) if bias and affine else None
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, b, g


NEEDS = [(True, True, True), (True, False, False), (False, True, False), (False, False, True),
         (True, True, False), (False, True, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("needs", NEEDS, ids=str)
def test_gpt_shape(dtype, needs):
    """GPT-mini's (16, 64, 128) layer norm, each subset of needed gradients."""
    x, w, b, g = _inputs((16, 64, 128), 128, dtype, 0)
    _compare(x, w, b, g, needs, (128,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_without_parameters(dtype, affine, bias):
    x, w, b, g = _inputs((5, 7, 12), 12, dtype, 1, affine=affine, bias=bias)
    _compare(x, w, b, g, (True, True, True), (12,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_mean(dtype):
    """A mean 30x the spread: the fast path centres before its products, as torch does."""
    x, w, b, g = _inputs((8, 64), 64, dtype, 2, shift=30.0)
    _compare(x, w, b, g, (True, True, True), (64,))


def test_very_large_mean_no_worse_than_general():
    """At 300x, float32's mean of the forward (shared) is off by ~1e-5; the fast backward's
    distance to torch stays within the general path's (no cancellation of its own)."""
    x, w, b, g = _inputs((8, 64), 64, np.float32, 2, shift=300.0)
    ref = _run(torch, x, w, b, g, (True, True, True), (64,))
    errs = {}
    for fast in (True, False):
        old = norm._FAST
        norm._FAST = fast
        try:
            got = _run(ember, x, w, b, g, (True, True, True), (64,))
        finally:
            norm._FAST = old
        errs[fast] = [np.max(np.abs(r - e)) / np.max(np.abs(r)) for r, e in zip(ref, got)]
    for f, s in zip(errs[True], errs[False]):
        assert f <= 1.5 * s + 1e-7


def test_multi_dim_normalized_shape():
    x, w, b, g = _inputs((3, 4, 5, 6), (5, 6), np.float64, 3)
    _compare(x, w, b, g, (True, True, True), (5, 6))


def test_fast_equals_general_path_bits_close():
    """On the same inputs the two ember paths differ only by summation order."""
    x, w, b, g = _inputs((32, 96), 96, np.float64, 4)
    outs = []
    for fast in (True, False):
        old = norm._FAST
        norm._FAST = fast
        try:
            outs.append(_run(ember, x, w, b, g, (True, True, True), (96,)))
        finally:
            norm._FAST = old
    for a, c in zip(*outs):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_retain_graph_twice():
    """The backward writes only its own buffers: a second backward gives the same gradients."""
    x, w, b, g = _inputs((6, 40), 40, np.float32, 5)
    xt = ember.tensor(x, requires_grad=True)
    wt = ember.tensor(w, requires_grad=True)
    y = ember.nn.functional.layer_norm(xt, (40,), wt, None)
    gt = ember.tensor(g)
    first = ember.autograd.grad(y, (xt, wt), gt, retain_graph=True)
    second = ember.autograd.grad(y, (xt, wt), gt)
    for a, c in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(g, gt.numpy())


def test_create_graph_uses_graph_path():
    """Double backward goes through ember ops (the fast path is arrays only): equals torch."""
    x, w, b, g = _inputs((4, 10), 10, np.float64, 6)
    res = []
    for m in (ember, torch):
        xt = m.tensor(x, requires_grad=True)
        wt = m.tensor(w, requires_grad=True)
        y = m.nn.functional.layer_norm(xt, (10,), wt, None)
        (dx,) = m.autograd.grad((y * m.tensor(g)).sum(), xt, create_graph=True)
        (ddx,) = m.autograd.grad((dx * dx).sum(), xt)
        res.append((dx.detach().numpy(), ddx.numpy()))
    for a, c in zip(*res):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(1, 5), min_size=1, max_size=3), k=st.integers(2, 40),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(lead, k, dtype, seed):
    x, w, b, g = _inputs(tuple(lead) + (k,), k, dtype, seed)
    _compare(x, w, b, g, (True, True, True), (k,))


def _forward(x, w, b, fwd, ns=None):
    """``layer_norm``'s output array with the rank-2 forward on or off."""
    ns = ns or (x.shape[-1],)
    old = norm._FAST_FWD
    norm._FAST_FWD = fwd
    try:
        t = lambda a: None if a is None else ember.tensor(a)
        return ember.nn.functional.layer_norm(t(x), ns, t(w), t(b), eps=1e-5).numpy()
    finally:
        norm._FAST_FWD = old


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0.0, 30.0, 1000.0])
def test_forward_matches_general_path_and_torch(dtype, shift):
    """The forward's variance is two-pass on the centred rows: at a mean 1000x the spread it
    is as close to torch (Welford) as the general path, in float32 and float64."""
    x, w, b, _ = _inputs((16, 64, 128), 128, dtype, 7, shift=shift)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (128,), torch.tensor(w),
                                         torch.tensor(b), eps=1e-5).numpy()
    new, gen = _forward(x, w, b, True), _forward(x, w, b, False)
    assert new.dtype == ref.dtype
    err_new, err_gen = np.max(np.abs(new - ref)), np.max(np.abs(gen - ref))
    assert err_new <= 2 * err_gen + 10 * np.finfo(dtype).eps * max(1.0, shift)
    tol = TOL[dtype]["rtol"] * (1 + shift)
    np.testing.assert_allclose(new, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(new, gen, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_forward_half_equals_general_path(dtype):
    """Half inputs are normalised in float32 on both paths: same rounded output as torch's."""
    x, w, b, _ = _inputs((4, 8, 48), 48, np.float32, 8)
    xt, wt, bt = (ember.tensor(a).to(getattr(ember, dtype)) for a in (x, w, b))
    outs = []
    for fwd in (True, False):
        old = norm._FAST_FWD
        norm._FAST_FWD = fwd
        try:
            y = ember.nn.functional.layer_norm(xt, (48,), wt, bt)
        finally:
            norm._FAST_FWD = old
        assert y.dtype == getattr(ember, dtype)
        outs.append(y.float().numpy())
    tx, tw, tb = (torch.tensor(a).to(getattr(torch, dtype)) for a in (x, w, b))
    ref = torch.nn.functional.layer_norm(tx, (48,), tw, tb).float().numpy()
    tol = 1e-2 if dtype == "bfloat16" else 2e-3
    np.testing.assert_allclose(outs[0], outs[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(outs[0], ref, rtol=tol, atol=tol)


def test_forward_non_contiguous_and_empty():
    """A transposed input (copied by the reshape) and an empty one take a valid path."""
    x, w, b, _ = _inputs((8, 40), 40, np.float64, 9)
    xe = ember.tensor(x.T.copy()).t()
    y = ember.nn.functional.layer_norm(xe, (40,), ember.tensor(w), ember.tensor(b)).numpy()
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (40,), torch.tensor(w),
                                         torch.tensor(b)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    e = ember.nn.functional.layer_norm(ember.zeros(0, 40), (40,)).numpy()
    assert e.shape == (0, 40)


@pytest.mark.parametrize("ws_out", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_workspace_output_stays_valid(ws_out, dtype):
    """Outputs from the workspace (``_WS_OUT``) are not reused while their tensor lives: a
    second same-shape call, and an in-place change of the first output, leave each right."""
    old = norm._WS_OUT
    norm._WS_OUT = ws_out
    try:
        xs = [_inputs((16, 64, 128), 128, dtype, s)[0] for s in (20, 21)]
        ys = [ember.nn.functional.layer_norm(ember.tensor(x), (128,)) for x in xs]
        refs = [torch.nn.functional.layer_norm(torch.tensor(x), (128,)).numpy() for x in xs]
        for y, r in zip(ys, refs):
            np.testing.assert_allclose(y.numpy(), r, **TOL[dtype])
        ys[0].add_(1.0)
        z = ember.nn.functional.layer_norm(ember.tensor(xs[1]), (128,))
        np.testing.assert_allclose(ys[0].numpy(), refs[0] + 1, **TOL[dtype])
        np.testing.assert_allclose(z.numpy(), refs[1], **TOL[dtype])
        np.testing.assert_allclose(ys[1].numpy(), refs[1], **TOL[dtype])
    finally:
        norm._WS_OUT = old


# ---- NOTE [ One-pass variance ] ----------------------------------------------------------------
def _forward(x, w, b, one):
    old = norm._ONE_PASS
    norm._ONE_PASS = one
    try:
        return ember.nn.functional.layer_norm(
            ember.tensor(x), x.shape[-1:], None if w is None else ember.tensor(w),
            None if b is None else ember.tensor(b)).numpy()
    finally:
        norm._ONE_PASS = old


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0.0, 0.9, 1.1, 30.0, 1e4])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_one_pass_against_torch_and_two_pass(dtype, shift, affine, bias):
    """Means below, near and far above the spread (the last ones take the two-pass path): both
    switch settings equal torch's forward within float rounding scaled by the rows'
    conditioning, and each other as closely."""
    x, w, b, _ = _inputs((64, 96), 96, dtype, 7, shift=shift, affine=affine, bias=bias)
    rows = x.astype(np.float64)
    cond = 1 + np.max(np.abs(rows.mean(1)) / np.sqrt(rows.var(1) + 1e-5))
    tol = {k: v * cond for k, v in TOL[dtype].items()}
    ref = torch.nn.functional.layer_norm(
        torch.tensor(x), (96,), None if w is None else torch.tensor(w),
        None if b is None else torch.tensor(b)).numpy()
    one, two = _forward(x, w, b, True), _forward(x, w, b, False)
    np.testing.assert_allclose(one, ref, **tol)
    np.testing.assert_allclose(two, ref, **tol)
    np.testing.assert_allclose(one, two, **tol)


def test_one_pass_takes_only_rows_within_their_spread():
    """The one-pass test passes standard-normal rows and fails a call with one row whose mean
    is far above its spread, a constant row, or a NaN (whose output stays NaN, as torch's)."""
    lay = norm._Layout((4, 32), "rk", "r", "k", (1,), (0,), (4, 1), (32,), (32,), False)
    x = np.random.default_rng(8).standard_normal((4, 32))
    mean = x.mean(1)
    y = np.empty_like(x)
    assert norm._rows_one_pass(np, lay, x, None, None, 1e-5, mean, y) is not None
    for bad in (lambda a: a.__setitem__(2, a[2] + 100.0),
                lambda a: a.__setitem__(1, 3.0),
                lambda a: a.__setitem__((3, 5), np.nan)):
        xb = x.copy()
        bad(xb)
        assert norm._rows_one_pass(np, lay, xb, None, None, 1e-5, xb.mean(1), y) is None
    xn = x.copy()
    xn[3, 5] = np.nan
    got = _forward(xn, None, None, True)
    ref = torch.nn.functional.layer_norm(torch.tensor(xn), (32,)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got[:3], ref[:3], rtol=1e-10, atol=1e-10)


def test_one_pass_zero_rows():
    """All-zero rows (mean = var = 0 passes the test): the output is the bias, as torch's."""
    x = np.zeros((8, 16), np.float32)
    x[1] = np.random.default_rng(9).standard_normal(16)
    b = np.arange(16, dtype=np.float32)
    w = np.ones(16, np.float32)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (16,), torch.tensor(w),
                                         torch.tensor(b)).numpy()
    np.testing.assert_allclose(_forward(x, w, b, True), ref, rtol=2e-5, atol=2e-5)
