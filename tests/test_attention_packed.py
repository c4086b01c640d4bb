"""Packed head gradients (NOTE [ Packed head gradients ] in ops/attention.py): q, k and v
unbound from one in-projection get dQ, dK and dV written into one array laid out as that
projection, and unbind's backward then joins nothing (``movement._joined_already``); and the
backward's scale carried by dO^T's transposing copy (``attention._FOLD_SCALE``).  Each is
compared bit for bit with the path it replaces and against torch."""
import numpy as np
import pytest
import torch

import ember
from ember.ops import attention as A
from ember.ops import movement as M

TOL = {np.float32: dict(rtol=3e-5, atol=3e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _close(e, r, dtype):
    """Within rounding of torch's: the absolute tolerance scaled by the result's magnitude
    (a weight gradient sums many products, and small entries cancel)."""
    tol = TOL[dtype]
    np.testing.assert_allclose(e, r, rtol=tol["rtol"],
                               atol=tol["atol"] * max(1.0, float(np.abs(r).max())))


@pytest.fixture
def joins(monkeypatch):
    """What each ``_joined_already`` call returned: True where it found the pieces in place."""
    seen = []
    orig = M._joined_already

    def spy(arrays, keys, shape):
        r = orig(arrays, keys, shape)
        seen.append(r is not None)
        return r
    monkeypatch.setattr(M, "_joined_already", spy)
    return seen


def _heads(m, qkv, dims, split="unbind"):
    """GPT-style heads of a packed (B, T, 3 * H * D) projection: (B, H, T, D) views."""
    B, T, H, D = dims
    if split == "unbind":
        parts = qkv.unflatten(-1, (3, H * D)).unbind(-2)
    else:
        parts = qkv.split(H * D, dim=-1)
    return [t.reshape(B, T, H, D).transpose(1, 2) for t in parts]


def _run(m, x0, w0, g0, dims, kw, split="unbind", retain=False):
    """Output and gradients of an in-projection followed by attention and merged heads."""
    B, T, H, D = dims
    x = m.tensor(x0, requires_grad=True)
    w = m.tensor(w0, requires_grad=True)
    q, k, v = _heads(m, x @ w, dims, split)
    if retain:
        q.retain_grad()
    y = m.nn.functional.scaled_dot_product_attention(q, k, v, **kw)
    y.transpose(1, 2).reshape(B, T, H * D).backward(m.tensor(g0))
    out = [y.detach().numpy(), x.grad.numpy(), w.grad.numpy()]
    if retain:
        out.append(q.grad.numpy())
    return out


def _data(dtype, dims, seed=0):
    B, T, H, D = dims
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((B, T, 16)).astype(dtype)
    w0 = (rng.standard_normal((16, 3 * H * D)) * 0.3).astype(dtype)
    g0 = rng.standard_normal((B, T, H * D)).astype(dtype)
    return x0, w0, g0


def _with(flag_name, value, fn):
    old = getattr(A, flag_name)
    setattr(A, flag_name, value)
    try:
        ember.manual_seed(0)
        return fn()
    finally:
        setattr(A, flag_name, old)


CASES = [dict(is_causal=True), {}, dict(dropout_p=0.3), dict(scale=0.7, is_causal=True)]
IDS = ["causal", "plain", "dropout", "scale"]


@pytest.mark.parametrize("split", ["unbind", "split"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", CASES, ids=IDS)
def test_packed_equals_separate_and_torch(dtype, kw, split, joins):
    """Packed gradients: bit for bit the separate arrays' numbers, torch's within rounding,
    and the join found the pieces in place (nothing copied)."""
    dims = (4, 16, 4, 8)  # (16, 4, 64, 32) float32 pieces are workspace-sized: one case
    x0, w0, g0 = _data(dtype, dims)
    packed = _with("_PACKED", True, lambda: _run(ember, x0, w0, g0, dims, kw, split))
    assert joins == [True]
    separate = _with("_PACKED", False, lambda: _run(ember, x0, w0, g0, dims, kw, split))
    assert joins == [True, False]
    for a, b in zip(packed, separate):
        np.testing.assert_array_equal(a, b)
    if not kw.get("dropout_p"):
        for r, e in zip(_run(torch, x0, w0, g0, dims, kw, split), packed):
            _close(e, r, dtype)


def test_packed_workspace_sized_and_retained_grad(joins):
    """GPT-mini's (16, 4, 64, 32) float32 heads (workspace blocks); a retained ``q.grad``
    (a view into the packed array) keeps its numbers after the step and a second call."""
    dims = (16, 64, 4, 32)
    x0, w0, g0 = _data(np.float32, dims, seed=3)
    got = _run(ember, x0, w0, g0, dims, dict(is_causal=True), retain=True)
    kept = [a.copy() for a in got]
    _run(ember, x0 * 2, w0, g0 * 3, dims, dict(is_causal=True), retain=True)
    assert joins == [True, True]
    for a, b in zip(got, kept):
        np.testing.assert_array_equal(a, b)
    ref = _run(torch, x0, w0, g0, dims, dict(is_causal=True), retain=True)
    for r, e in zip(ref, got):
        # a (16, 3 * 128) weight gradient sums 1,024 rows: float32 rounding of the largest
        np.testing.assert_allclose(e, r, rtol=1e-4, atol=1e-5 * float(np.abs(r).max()))


def test_not_packed_when_heads_do_not_fill_the_base(joins):
    """q, k, v views of a wider projection (an extra column block), of separate arrays, or
    with only some gradients wanted: separate gradients, joined by copying, torch's numbers."""
    B, T, H, D = dims = (2, 8, 2, 4)
    rng = np.random.default_rng(5)
    wide0 = rng.standard_normal((B, T, 4 * H * D)).astype(np.float32)
    g0 = rng.standard_normal((B, H, T, D)).astype(np.float32)
    res = {}
    for m in (ember, torch):
        wide = m.tensor(wide0, requires_grad=True)
        q, k, v, _ = [t.reshape(B, T, H, D).transpose(1, 2) for t in
                      wide.unflatten(-1, (4, H * D)).unbind(-2)]
        m.nn.functional.scaled_dot_product_attention(q, k, v).backward(m.tensor(g0))
        res[m] = wide.grad.numpy()
    np.testing.assert_allclose(res[ember], res[torch], **TOL[np.float32])
    assert joins == [False]
    for m in (ember, torch):  # only q and v require grad: no packed array
        qkv = m.tensor(wide0[..., :3 * H * D])
        q, k, v = _heads(m, qkv, dims)
        q = q.detach().requires_grad_()
        v = v.detach().requires_grad_()
        m.nn.functional.scaled_dot_product_attention(q, k, v).backward(m.tensor(g0))
        res[m] = (q.grad.numpy(), v.grad.numpy())
    for a, b in zip(res[ember], res[torch]):
        np.testing.assert_allclose(a, b, **TOL[np.float32])


def test_packed_grads_helper():
    """``_packed_grads``: views of one new array at the pieces' offsets and strides; None
    for pieces of different strides, a base they do not fill, or another dtype."""
    base = np.arange(2 * 3 * 12, dtype=np.float32).reshape(2, 3, 12)
    parts = [base[..., i * 4:(i + 1) * 4] for i in range(3)]
    views = A._packed_grads(np, parts, np.dtype(np.float32))
    assert views is not None
    whole = views[0].base
    assert all(v.base is whole for v in views) and whole.size == base.size
    for i, v in enumerate(views):
        v[...] = i + 1
        assert v.strides == parts[i].strides
    np.testing.assert_array_equal(whole.reshape(2, 3, 12)[..., 4:8], 2)
    assert A._packed_grads(np, parts[:2], np.dtype(np.float32)) is None  # base not filled
    assert A._packed_grads(np, [parts[0], parts[1].copy(), parts[2]],
                           np.dtype(np.float32)) is None
    assert A._packed_grads(np, parts, np.dtype(np.float64)) is None
    odd = [base[..., 0:4], base[..., 4:8], base[..., 8:12:2]]
    assert A._packed_grads(np, odd, np.dtype(np.float32)) is None


def test_joined_already_helper():
    """``_joined_already``: the whole array when every piece is its ``[key]`` view, else None
    (a missing piece, pieces out of order, another array's pieces, a shape mismatch)."""
    whole = np.zeros((2, 3, 4), np.float32)
    keys = tuple((slice(None), i, Ellipsis) for i in range(3))
    pieces = [whole[k] for k in keys]
    got = M._joined_already(pieces, keys, (2, 3, 4))
    assert got is not None and got.shape == (2, 3, 4) and np.shares_memory(got, whole)
    assert M._joined_already([pieces[0], None, pieces[2]], keys, (2, 3, 4)) is None
    assert M._joined_already(pieces[::-1], keys, (2, 3, 4)) is None
    assert M._joined_already([p.copy() for p in pieces], keys, (2, 3, 4)) is None
    assert M._joined_already(pieces, keys, (3, 2, 4)) is None
    bigger = np.zeros((2, 4, 4), np.float32)
    assert M._joined_already([bigger[k] for k in keys], keys, (2, 3, 4)) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", CASES, ids=IDS)
def test_fold_scale_against_unfolded_and_torch(dtype, kw):
    """The scale on dO^T's copy: the unfolded path's numbers within rounding, and torch's."""
    dims = (2, 16, 4, 8)
    x0, w0, g0 = _data(dtype, dims, seed=7)
    folded = _with("_FOLD_SCALE", True, lambda: _run(ember, x0, w0, g0, dims, kw))
    plain = _with("_FOLD_SCALE", False, lambda: _run(ember, x0, w0, g0, dims, kw))
    for a, b in zip(folded, plain):
        _close(a, b, dtype)
    if not kw.get("dropout_p"):
        for r, e in zip(_run(torch, x0, w0, g0, dims, kw), folded):
            _close(e, r, dtype)


def test_float_mask_gradient_unscaled():
    """A float mask that requires grad gets dS itself (the scale is not folded there)."""
    rng = np.random.default_rng(8)
    q0, k0, v0 = (rng.standard_normal((2, 3, 5, 4)).astype(np.float64) for _ in range(3))
    m0 = rng.standard_normal((5, 5))
    res = {}
    for m in (ember, torch):
        q, k, v = (m.tensor(a, requires_grad=True) for a in (q0, k0, v0))
        mask = m.tensor(m0, requires_grad=True)
        m.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                     scale=0.3).sum().backward()
        res[m] = [t.grad.numpy() for t in (q, k, v, mask)]
    for a, b in zip(res[ember], res[torch]):
        np.testing.assert_allclose(a, b, **TOL[np.float64])
