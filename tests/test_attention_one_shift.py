"""Attention's softmax shifted once per call where the scores allow (NOTE [ One softmax
shift ]): against torch and against the per-row maxima, forward and gradients, and the inputs
that keep the row maxima (a wide spread, NaN, inf, a user mask)."""
import numpy as np
import pytest
import torch

import ember
from ember.ops import attention

SHAPES = [(2, 4, 64, 32), (3, 2, 5, 7, 8), (1, 1, 1, 4)]


def _qkv(shape, dt, spread, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dt) * spread for _ in range(3)]


def _run(mod, arrs, **kw):
    ts = [mod.tensor(a, requires_grad=True) for a in arrs]
    out = mod.nn.functional.scaled_dot_product_attention(*ts, **kw)
    g = np.random.default_rng(9).standard_normal(tuple(out.shape)).astype(arrs[0].dtype)
    out.backward(mod.tensor(g))
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts]


def _close(a, b, dt):
    # float32 against the largest magnitude: spread 3.0 gives sharp softmaxes, large grads
    tol = 2e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spread", [1.0, 3.0])  # 3.0: scores up to ~40 apart at D=32
def test_vs_torch(shape, dt, causal, spread):
    arrs = _qkv(shape, dt, spread)
    for e, t in zip(_run(ember, arrs, is_causal=causal), _run(torch, arrs, is_causal=causal)):
        _close(e, t, dt)


@pytest.mark.parametrize("causal", [False, True])
def test_one_shift_matches_row_maxima(causal, monkeypatch):
    arrs = _qkv((2, 4, 64, 32), np.float32, 1.0)
    calls = []
    orig = attention._max_over_keys
    monkeypatch.setattr(attention, "_max_over_keys",
                        lambda *a: calls.append(1) or orig(*a))
    one = _run(ember, arrs, is_causal=causal)
    assert not calls  # the shift path was taken
    monkeypatch.setattr(attention, "_ONE_SHIFT", False)
    rows = _run(ember, arrs, is_causal=causal)
    assert calls
    for a, b in zip(one, rows):
        np.testing.assert_allclose(a, b, rtol=3e-6, atol=3e-7)


def test_wide_spread_keeps_row_maxima(monkeypatch):
    # scores ~100 apart: one shift would underflow whole rows; the row maxima are used
    arrs = _qkv((1, 2, 16, 8), np.float32, 6.0)
    calls = []
    orig = attention._max_over_keys
    monkeypatch.setattr(attention, "_max_over_keys",
                        lambda *a: calls.append(1) or orig(*a))
    e = _run(ember, arrs, is_causal=True)
    assert calls
    for a, b in zip(e, _run(torch, arrs, is_causal=True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("causal", [False, True])
def test_nonfinite_as_torch(bad, causal):
    q, k, v = _qkv((1, 2, 6, 4), np.float32, 1.0)
    k[0, 1, 4, 2] = bad
    with torch.no_grad():
        t = torch.nn.functional.scaled_dot_product_attention(
            *map(torch.tensor, (q, k, v)), is_causal=causal).numpy()
    e = ember.nn.functional.scaled_dot_product_attention(
        *map(ember.tensor, (q, k, v)), is_causal=causal).numpy()
    np.testing.assert_array_equal(np.isnan(e), np.isnan(t))
    ok = ~np.isnan(t)
    np.testing.assert_allclose(e[ok], t[ok], rtol=2e-5, atol=2e-6)


def test_user_mask_keeps_row_maxima(monkeypatch):
    # a fully masked row is only handled by the row-maxima path (as torch)
    q, k, v = _qkv((1, 1, 4, 4), np.float32, 1.0)
    mask = np.ones((4, 4), bool)
    mask[2] = False
    calls = []
    orig = attention._max_over_keys
    monkeypatch.setattr(attention, "_max_over_keys",
                        lambda *a: calls.append(1) or orig(*a))
    e = ember.nn.functional.scaled_dot_product_attention(
        *map(ember.tensor, (q, k, v)), attn_mask=ember.tensor(mask)).numpy()
    assert calls
    with torch.no_grad():
        t = torch.nn.functional.scaled_dot_product_attention(
            *map(torch.tensor, (q, k, v)), attn_mask=torch.tensor(mask)).numpy()
    np.testing.assert_array_equal(np.isnan(e), np.isnan(t))
    ok = ~np.isnan(t)
    np.testing.assert_allclose(e[ok], t[ok], rtol=2e-5, atol=2e-6)
