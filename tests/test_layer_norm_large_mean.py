"""Layer norm's one-pass variance and its fallback (NOTE [ One-pass variance ] in
ember/ops/normalization.py) against torch and against the two-pass path: forward and every
gradient, float32 and float64, with and without weight and bias, means from 0 to 1e4 times
the spread (rows of 1e4 + N(0, 1) keep torch's error), half precision, NaN and constant
rows, and compiled against eager.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import normalization as norm

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _run(m, x, w, b, g, ns, eps=1e-5):
    """(y, dx, dw, db) of ``layer_norm`` under module ``m``."""
    xt = m.tensor(x, requires_grad=True)
    wt = None if w is None else m.tensor(w, requires_grad=True)
    bt = None if b is None else m.tensor(b, requires_grad=True)
    y = m.nn.functional.layer_norm(xt, ns, wt, bt, eps=eps)
    y.backward(m.tensor(g))
    return [y.detach().numpy()] + [None if t is None else t.grad.numpy() for t in (xt, wt, bt)]


def _ember(x, w, b, g, ns, one_pass: bool):
    old = norm._ONE_PASS
    norm._ONE_PASS = one_pass
    try:
        return _run(ember, x, w, b, g, ns)
    finally:
        norm._ONE_PASS = old


def _inputs(shape, k, dtype, seed, shift=0.0, weight=True, bias=True):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) + shift).astype(dtype)
    w = rng.standard_normal(k).astype(dtype) if weight else None
    b = rng.standard_normal(k).astype(dtype) if bias else None
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, b, g


def _close(got, want, tol):
    for e, r in zip(got, want):
        assert (e is None) == (r is None)
        if r is not None:
            assert e.dtype == r.dtype
            np.testing.assert_allclose(e, r, **tol)


CASES = [((16, 64, 128), 128), ((4, 64), 64), ((3, 5, 96), 96), ((2, 1024), 1024),
         ((7, 63), 63), ((6, 32), 32)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k", CASES, ids=str)
@pytest.mark.parametrize("weight,bias", [(True, True), (True, False), (False, True),
                                         (False, False)])
def test_against_torch_and_two_pass(dtype, shape, k, weight, bias):
    x, w, b, g = _inputs(shape, k, dtype, k, weight=weight, bias=bias)
    ref = _run(torch, x, w, b, g, (k,))
    one = _ember(x, w, b, g, (k,), True)
    two = _ember(x, w, b, g, (k,), False)
    _close(one, ref, TOL[dtype])
    _close(one, two, TOL[dtype])


@pytest.mark.parametrize("shift,taken", [(0.0, True), (0.5, True), (3.0, False), (1e4, False)])
def test_one_pass_declines_rows_with_a_large_mean(shift, taken):
    """The one-pass variance is used only where every row's mean is within its spread; rows
    of shift + N(0, 1) with a larger mean go to the two-pass path (``None``: y untouched)."""
    x = _inputs((16, 128), 128, np.float32, 11, shift=shift)[0]
    lay = norm._Layout((16, 128), "rk", "r", "k", (1,), (0,), (16, 1), (128,), (128,), False)
    mean = x @ np.ones(128, np.float32) / 128
    y = np.full_like(x, 7.0)
    got = norm._rows_one_pass(np, lay, x, None, None, 1e-5, mean, y)
    assert (got is not None) == taken
    if not taken:
        assert (y == 7.0).all()


@pytest.mark.parametrize("shift", [30.0, 1e3, 1e4])
def test_large_row_mean_error_at_torchs_level(shift):
    """float32 rows of 1e4 + N(0, 1): the fallback takes the variance two-pass on the centred
    rows (no E[x^2] - mean^2 cancellation), so the error against a float64 computation on the
    same (rounded) inputs stays within a small multiple of torch's own float32 error."""
    dtype = np.float32
    x, w, b, g = _inputs((16, 64, 128), 128, dtype, 5, shift=shift)
    exact = _run(torch, *(None if a is None else a.astype(np.float64) for a in (x, w, b, g)),
                 (128,))
    got = _ember(x, w, b, g, (128,), True)
    ref = _run(torch, x, w, b, g, (128,))
    assert x.mean() > 0.9 * shift  # the rows really are shift + N(0, 1)
    for e, r, t in zip(got, ref, exact):
        err_e = np.max(np.abs(e - t)) / np.max(np.abs(t))
        err_t = np.max(np.abs(r - t)) / np.max(np.abs(t))
        assert err_e <= 4 * err_t + 8 * np.finfo(dtype).eps


@pytest.mark.parametrize("shift", [30.0, 1e4])
def test_large_row_mean_float64(shift):
    x, w, b, g = _inputs((16, 64, 128), 128, np.float64, 5, shift=shift)
    tol = {key: v * (1 + shift) for key, v in TOL[np.float64].items()}
    _close(_ember(x, w, b, g, (128,), True), _run(torch, x, w, b, g, (128,)), tol)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_in_float32(dtype):
    """Half inputs are normalised in float32 and rounded once, as torch does."""
    x, w, b, g = _inputs((8, 32, 128), 128, np.float32, 6)
    xs = [torch.tensor(a).to(getattr(torch, dtype)) for a in (x, w, b, g)]
    xt, wt, bt = (t.clone().requires_grad_(True) for t in xs[:3])
    yt = torch.nn.functional.layer_norm(xt, (128,), wt, bt)
    yt.backward(xs[3])
    es = [ember.tensor(t.float().numpy()).to(getattr(ember, dtype)) for t in xs]
    xe, we, be = (t.clone().requires_grad_(True) for t in es[:3])
    ye = ember.nn.functional.layer_norm(xe, (128,), we, be)
    ye.backward(es[3])
    assert ye.dtype == getattr(ember, dtype)
    # error relative to the largest value: the forward is rounded once (torch's differs from
    # float32 by its own rounding); the parameter gradients sum 256 rows in float32 and round
    tol = 5e-3 if dtype == "float16" else 4e-2
    for e, r in ((ye, yt), (xe.grad, xt.grad), (we.grad, wt.grad), (be.grad, bt.grad)):
        e, r = e.float().detach().numpy(), r.float().detach().numpy()
        assert np.max(np.abs(e - r)) <= tol * np.max(np.abs(r))


def test_nan_and_inf_rows_as_torch():
    """A NaN or an infinite value poisons its own row only, as in torch."""
    x, w, b, g = _inputs((6, 128), 128, np.float32, 7)
    x[1, 3] = np.nan
    x[4, 0] = np.inf
    ref = _run(torch, x, w, b, g, (128,))
    got = _ember(x, w, b, g, (128,), True)
    for e, r in zip(got[:2], ref[:2]):  # y and dx: rows 1 and 4 NaN, the others finite
        np.testing.assert_array_equal(np.isnan(e), np.isnan(r))
        fin = np.isfinite(r)
        np.testing.assert_allclose(e[fin], r[fin], rtol=2e-5, atol=2e-5)


def test_constant_rows():
    """Zero variance: inv = 1/sqrt(eps), y = bias, as torch."""
    x = np.full((4, 128), 3.5, np.float32)
    x[2] = -1.25
    _, w, b, g = _inputs((4, 128), 128, np.float32, 8)
    _close(_ember(x, w, b, g, (128,), True), _run(torch, x, w, b, g, (128,)), TOL[np.float32])


def test_output_not_aliased_or_reused():
    """The output comes from the workspace: a live output is never written by a later call,
    and changing it in place leaves the next call's result right."""
    x, w, b, g = _inputs((16, 64, 128), 128, np.float32, 9)
    xt, wt, bt = ember.tensor(x), ember.tensor(w), ember.tensor(b)
    y1 = ember.nn.functional.layer_norm(xt, (128,), wt, bt)
    kept = y1.numpy().copy()
    y2 = ember.nn.functional.layer_norm(xt * 2, (128,), wt, bt)
    np.testing.assert_array_equal(y1.numpy(), kept)
    assert not np.shares_memory(y1.numpy(), y2.numpy())
    y1.add_(1.0)
    y3 = ember.nn.functional.layer_norm(xt, (128,), wt, bt)
    np.testing.assert_array_equal(y3.numpy(), kept)


def test_compiled_equals_eager():
    """The compiled region calls the same forward: bit for bit eager's."""
    x, w, b, g = _inputs((16, 64, 128), 128, np.float32, 10)
    ln = ember.nn.LayerNorm(128)
    with ember.no_grad():
        ln.weight.copy_(ember.tensor(w))
        ln.bias.copy_(ember.tensor(b))
    f = ember.compile(lambda t: ln(t) * 2.0)
    outs = []
    for fn in (f, lambda t: ln(t) * 2.0):
        xt = ember.tensor(x, requires_grad=True)
        ln.zero_grad()
        y = fn(xt)
        y.backward(ember.tensor(g))
        outs.append([y.detach().numpy(), xt.grad.numpy(), ln.weight.grad.numpy(),
                     ln.bias.grad.numpy()])
    for a, e in zip(*outs):
        np.testing.assert_array_equal(a, e)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), k=st.integers(64, 200), shift=st.sampled_from([0.0, 5.0, 1e3]),
       seed=st.integers(0, 2 ** 16))
def test_shapes_hypothesis(rows, k, shift, seed):
    x, w, b, g = _inputs((rows, k), k, np.float64, seed, shift=shift)
    ref = _run(torch, x, w, b, g, (k,))
    cond = 1 + abs(shift)
    _close(_ember(x, w, b, g, (k,), True), ref,
           {key: v * cond for key, v in TOL[np.float64].items()})


def test_bad_inputs_raise_torchs_errors():
    x = ember.randn(4, 128)
    with pytest.raises(RuntimeError):
        ember.nn.functional.layer_norm(x, (64,))
    with pytest.raises(RuntimeError):
        ember.nn.functional.layer_norm(x, (128,), ember.ones(64))
    with pytest.raises(RuntimeError):
        ember.nn.functional.layer_norm(ember.ones(4, 128, dtype=ember.int64), (128,))
