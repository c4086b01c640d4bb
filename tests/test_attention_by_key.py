"""scaled_dot_product_attention with scores laid out by key (NOTE [ Scores by key ]) against
the (L, S) layout (``attention._BY_KEY = False``) and torch: outputs and every gradient,
float32 and float64, causal, bool/float masks of every rank, odd and single key counts (the
halving maximum), fully masked rows, dropout (same draws in both layouts), GQA, and GPT-mini's
strided head views; each with ``attention._CONTIG_T`` on and off (NOTE [ Transposed ])."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import attention as A

TOL = {np.float32: dict(rtol=3e-5, atol=3e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(autouse=True, params=[True, False], ids=["contig_t", "views_t"])
def contig_t(request):
    """Every test with the contiguous transposed operands (NOTE [ Transposed ]) and the
    additive causal mask (NOTE [ Causal by adding ]), and with neither."""
    old = A._CONTIG_T, A._CAUSAL_ADD
    A._CONTIG_T = A._CAUSAL_ADD = request.param
    yield request.param
    A._CONTIG_T, A._CAUSAL_ADD = old


def _run(m, arrays, mask, needs_mask_grad=False, **kw):
    """Output and gradients (q, k, v[, mask]) of sdpa under module ``m``."""
    ts = [m.tensor(a, requires_grad=True) for a in arrays]
    mt = None
    if mask is not None:
        mt = m.tensor(mask, requires_grad=needs_mask_grad)
    y = m.nn.functional.scaled_dot_product_attention(*ts, attn_mask=mt, **kw)
    g = np.random.default_rng(9).standard_normal(tuple(y.shape)).astype(arrays[0].dtype)
    y.backward(m.tensor(g))
    out = [y.detach().numpy()] + [t.grad.numpy() for t in ts]
    if needs_mask_grad:
        out.append(mt.grad.numpy())
    return out


def _both_layouts(fn):
    res = []
    for by_key in (True, False):
        old = A._BY_KEY
        A._BY_KEY = by_key
        try:
            res.append(fn())
        finally:
            A._BY_KEY = old
    return res


def _check(arrays, mask=None, needs_mask_grad=False, **kw):
    dt = arrays[0].dtype.type
    ref = _run(torch, arrays, mask, needs_mask_grad, **kw)
    new, old = _both_layouts(lambda: _run(ember, arrays, mask, needs_mask_grad, **kw))
    for r, n, o in zip(ref, new, old):
        assert n.dtype == r.dtype and n.shape == r.shape
        np.testing.assert_allclose(n, r, **TOL[dt])
        np.testing.assert_allclose(n, o, **TOL[dt])


def _qkv(qs, ks, vs, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in (qs, ks, vs)]


def _bool(shape, seed=1):
    m = np.random.default_rng(seed).random(shape) > 0.4
    m[..., 0] = True
    return m


CASES = [  # (name, q, k, v, mask maker, kwargs)
    ("plain", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), None, {}),
    ("causal-square", (2, 2, 7, 4), (2, 2, 7, 4), (2, 2, 7, 4), None, dict(is_causal=True)),
    ("causal-L>S", (2, 3, 6, 8), (2, 3, 4, 8), (2, 3, 4, 8), None, dict(is_causal=True)),
    ("causal-L<S", (2, 3, 4, 8), (2, 3, 9, 8), (2, 3, 9, 8), None, dict(is_causal=True)),
    ("one-key", (2, 3, 4, 8), (2, 3, 1, 8), (2, 3, 1, 6), None, {}),
    ("odd-keys", (1, 2, 3, 4), (1, 2, 11, 4), (1, 2, 11, 4), None, {}),
    ("bool-row", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), lambda: _bool((1, 5)), {}),
    ("bool-2d", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), lambda: _bool((4, 5)), {}),
    ("bool-4d", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), lambda: _bool((2, 1, 4, 5)), {}),
    ("bool-col", (2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), lambda: _bool((4, 1)) | True, {}),
    ("gqa-causal", (2, 4, 6, 8), (2, 2, 6, 8), (2, 2, 6, 8), None,
     dict(enable_gqa=True, is_causal=True)),
    ("2d-inputs", (4, 8), (5, 8), (5, 6), None, {}),
    ("batch-bcast", (3, 4, 8), (1, 5, 8), (1, 5, 6), lambda: _bool((3, 4, 5)), {}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,qs,ks,vs,mask,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_torch_and_query_layout(dtype, name, qs, ks, vs, mask, kw):
    _check(_qkv(qs, ks, vs, dtype), None if mask is None else mask(), **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mshape", [(1, 5), (4, 5), (2, 3, 4, 5), (3, 1, 5)])
def test_float_mask_and_its_gradient(dtype, mshape):
    mask = np.random.default_rng(4).standard_normal(mshape).astype(dtype)
    _check(_qkv((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), dtype), mask, needs_mask_grad=True)


def test_fully_masked_rows_zero():
    mask = np.ones((4, 5), bool)
    mask[1] = False
    mask[3, :] = False
    _check(_qkv((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), np.float64), mask)


def test_large_logits_stable():
    """Logits in the thousands (float32: exp overflows without the shift): finite, as torch."""
    q, k, v = _qkv((2, 2, 6, 4), (2, 2, 9, 4), (2, 2, 9, 4), np.float32)
    ref = _run(torch, [q * 30, k * 30, v], None, is_causal=True)
    for got in _both_layouts(lambda: _run(ember, [q * 30, k * 30, v], None, is_causal=True)):
        for r, e in zip(ref, got):
            assert np.isfinite(e).all()
            # saturated rows: torch's gradients carry ~1e-6 of rounding noise where ember's are 0
            np.testing.assert_allclose(e, r, rtol=1e-4, atol=2e-5)


def test_gpt_layout_strided_views():
    """GPT-mini's heads: q, k, v are strided (B, H, T, D) views of one (B, T, 3C) array."""
    B, T, H, D = 4, 16, 4, 8
    qkv0 = np.random.default_rng(5).standard_normal((B, T, 3 * H * D)).astype(np.float32)
    g0 = np.random.default_rng(6).standard_normal((B, H, T, D)).astype(np.float32)

    def run(m):
        qkv = m.tensor(qkv0, requires_grad=True)
        q, k, v = [t.reshape(B, T, H, D).transpose(1, 2) for t in qkv.chunk(3, -1)]
        y = m.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y.backward(m.tensor(g0))
        return y.detach().numpy(), qkv.grad.numpy()

    ref = run(torch)
    for got in _both_layouts(lambda: run(ember)):
        for r, e in zip(ref, got):
            np.testing.assert_allclose(e, r, **TOL[np.float32])


def test_dropout_same_draws_in_both_layouts():
    """The dropout mask is drawn in (L, S) order in both layouts: same seed, same numbers."""
    arrays = _qkv((2, 2, 5, 4), (2, 2, 7, 4), (2, 2, 7, 4), np.float64)

    def run():
        ember.manual_seed(3)
        return _run(ember, arrays, None, dropout_p=0.4)

    new, old = _both_layouts(run)
    for n, o in zip(new, old):
        np.testing.assert_allclose(n, o, rtol=1e-12, atol=1e-14)


def test_double_backward_unchanged():
    """create_graph reads the saved probabilities as (L, S) (a view in the by-key layout)."""
    arrays = _qkv((1, 2, 4, 3), (1, 2, 5, 3), (1, 2, 5, 3), np.float64)
    def grads(m, attend):
        q, k, v = [m.tensor(a, requires_grad=True) for a in arrays]
        (gq,) = m.autograd.grad(attend(q, k, v).sum(), q, create_graph=True)
        (ggk,) = m.autograd.grad((gq * gq).sum(), k)
        return gq.detach().numpy(), ggk.numpy()

    def composed(q, k, v):  # torch's fused CPU kernel has no double backward
        s = (q @ k.mT) / np.sqrt(3.0)
        s = s.masked_fill(torch.ones(4, 5, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(-1) @ v

    ref = grads(torch, composed)
    got = _both_layouts(lambda: grads(ember, lambda q, k, v: ember.nn.functional
                                      .scaled_dot_product_attention(q, k, v, is_causal=True)))
    for res in got:
        for r, e in zip(ref, res):
            np.testing.assert_allclose(e, r, rtol=1e-9, atol=1e-11)


def test_max_over_keys_equals_numpy_max():
    rng = np.random.default_rng(7)
    for n in range(1, 20):
        s = rng.standard_normal((3, n, 4))
        s[0, n // 2, 1] = np.inf
        s[1, :, 2] = -np.inf
        got = A._max_over_keys(np, s, True)
        np.testing.assert_array_equal(got, s.max(-2, keepdims=True))
        assert not np.shares_memory(got, s)


@settings(max_examples=20, deadline=None)
@given(L=st.integers(1, 9), S=st.integers(1, 9), E=st.integers(1, 5),
       causal=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_hypothesis_shapes(L, S, E, causal, seed):
    _check(_qkv((2, L, E), (2, S, E), (2, S, E), np.float64, seed), is_causal=causal)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contiguous_transposes_equal_views(dtype, contig_t):
    """GPT-mini's causal (16, 4, 64, 32): the contiguous Q^T / dO^T give the same products as
    the transposed views up to summation order, and torch's numbers (the fixture's setting
    first, then the other one)."""
    arrays = _qkv((16, 4, 64, 32), (16, 4, 64, 32), (16, 4, 64, 32), dtype, seed=5)
    ref = _run(torch, arrays, None, is_causal=True)
    got = []
    for flag in (contig_t, not contig_t):
        A._CONTIG_T = A._CAUSAL_ADD = flag
        got.append(_run(ember, arrays, None, is_causal=True))
    for r, a, b in zip(ref, *got):
        np.testing.assert_allclose(a, b, **TOL[dtype])
        np.testing.assert_allclose(a, r, **TOL[dtype])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # NumPy's, on inf/NaN
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_key_under_causal_mask(bad, contig_t):
    """A NaN or infinite key that a query may not see does not reach that query's output or
    output (the additive mask falls back to assignment), as in PyTorch; -inf needs no
    fallback."""
    q, k, v = _qkv((2, 2, 6, 4), (2, 2, 6, 4), (2, 2, 6, 4), np.float64, seed=11)
    k[0, 1, 4, 2] = bad  # seen only by queries 4 and 5
    ts = [torch.tensor(a) for a in (q, k, v)]
    ref = torch.nn.functional.scaled_dot_product_attention(*ts, is_causal=True).numpy()
    es = [ember.tensor(a) for a in (q, k, v)]
    got = ember.nn.functional.scaled_dot_product_attention(*es, is_causal=True).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], **TOL[np.float64])
    assert ok[0, 1, :4].all()


# ---- results laid out as the inputs (NOTE [ Results laid out as the inputs ]) ---------------
def _heads_run(m, qkv0, g0, dims, kw):
    B, T, H, D = dims
    qkv = m.tensor(qkv0, requires_grad=True)
    q, k, v = [t.reshape(B, T, H, D).transpose(1, 2)
               for t in qkv.unflatten(-1, (3, H * D)).unbind(-2)]
    y = m.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
    merged = y.transpose(1, 2).reshape(B, T, H * D)
    merged.backward(m.tensor(g0))
    return y, [merged.detach().numpy(), qkv.grad.numpy()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(is_causal=True), {}, dict(dropout_p=0.3)],
                         ids=["causal", "plain", "dropout"])
def test_results_laid_out_as_inputs(dtype, kw, contig_t):
    """GPT-mini's head views: the output has torch's strides (the (B, T, H, D) layout, so the
    heads merge as a view), and output and gradients are bit for bit those of contiguous
    results (``_LIKE_INPUT`` off) and torch's within rounding."""
    dims = B, T, H, D = 4, 16, 4, 8
    rng = np.random.default_rng(12)
    qkv0 = rng.standard_normal((B, T, 3 * H * D)).astype(dtype)
    g0 = rng.standard_normal((B, T, H * D)).astype(dtype)
    got = {}
    old = A._LIKE_INPUT
    try:
        for like in (True, False):
            A._LIKE_INPUT = like
            ember.manual_seed(0)
            y, got[like] = _heads_run(ember, qkv0, g0, dims, kw)
            if like:
                strides = tuple(s // y.element_size() for s in y.detach().numpy().strides)
                assert strides == (T * H * D, D, H * D, 1)
    finally:
        A._LIKE_INPUT = old
    for a, b in zip(got[True], got[False]):
        np.testing.assert_array_equal(a, b)
    if not kw.get("dropout_p"):
        yt, ref = _heads_run(torch, qkv0, g0, dims, kw)
        assert yt.stride() == (T * H * D, D, H * D, 1)
        for r, e in zip(ref, got[True]):
            np.testing.assert_allclose(e, r, **TOL[dtype])


def test_live_outputs_and_gradients_not_reused():
    """An output and the gradients of one call, kept, are not overwritten by the next call
    of the same shape (their workspace blocks stay held)."""
    dims = B, T, H, D = 8, 32, 4, 32  # large enough for workspace blocks
    rng = np.random.default_rng(13)
    qkv0 = rng.standard_normal((B, T, 3 * H * D)).astype(np.float32)
    g0 = rng.standard_normal((B, T, H * D)).astype(np.float32)
    y1, (m1, gx1) = _heads_run(ember, qkv0, g0, dims, dict(is_causal=True))
    kept = y1.detach().numpy().copy(), m1.copy(), gx1.copy()
    y2, (m2, gx2) = _heads_run(ember, qkv0 * 2, g0 * 3, dims, dict(is_causal=True))
    for a, b in zip((y1.detach().numpy(), m1, gx1), kept):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(y1.detach().numpy(), y2.detach().numpy())
