"""Embedding's table gradient by a padded block (NOTE [ Embedding gradient by padded rows ]):
the padded sum against the sorted reduceat path and against torch, and when each is used."""
import numpy as np
import pytest
import torch

import ember
from ember.ops import layers

# (table rows, lookups, dim): GPT's vocabulary, block near its 6x limit, past it, short rows
CASES = [(65, 1024, 128), (256, 1024, 64), (1000, 1024, 32), (4000, 1024, 32),
         (10, 100, 16), (3, 40, 33), (64, 64, 128)]


def _reduceat(n, idx, src, monkeypatch):
    monkeypatch.setattr(layers, "_PAD_ROWS", False)
    try:
        return layers._scatter_rows(np, n, idx, src)
    finally:
        monkeypatch.setattr(layers, "_PAD_ROWS", True)


@pytest.mark.parametrize("n,r,d", CASES)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("idt", [np.int64, np.int32])
def test_padded_matches_reduceat(n, r, d, dt, idt, monkeypatch):
    rng = np.random.default_rng(n + r + d)
    idx = rng.integers(0, n, r).astype(idt)
    src = rng.standard_normal((r, d)).astype(dt)
    got = layers._scatter_rows(np, n, idx, src)
    want = _reduceat(n, idx, src, monkeypatch)
    assert got.shape == (n, d) and got.dtype == dt
    tol = 1e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_when_padded_is_used():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((1024, 128)).astype(np.float32)
    heavy = rng.integers(0, 65, 1024)
    assert layers._padded_rows(np, 65, heavy, src) is not None
    # no repeats: a plain placement (exact); a large table with one heavy row: reduceat
    perm = rng.permutation(1024)
    placed = layers._padded_rows(np, 1030, perm, src)
    assert placed is not None and not placed[1024:].any()
    np.testing.assert_array_equal(placed[perm], src)
    sparse = np.arange(1024) % 4000
    sparse[:100] = 7
    assert layers._padded_rows(np, 4000, sparse, src) is None


@pytest.mark.parametrize("n,idt", [(65, np.int64), (65, np.int32), (65536, np.int64),
                                   (70000, np.int64)])
def test_stable_order_is_argsort(n, idt):
    # the uint16 radix keys give the very permutation of a stable argsort, up to n = 2**16
    idx = np.random.default_rng(n).integers(0, n, 3000).astype(idt)
    idx[:3] = n - 1
    np.testing.assert_array_equal(layers._stable_order(np, n, idx),
                                  np.argsort(idx, kind="stable"))


def test_padded_skips_empty_rows_and_strided_src():
    # rows of the table nobody looks up stay zero; a transposed (strided) source is read right
    idx = np.array([5, 5, 5, 0, 5, 0] * 8)
    src = np.arange(64 * idx.size, dtype=np.float32).reshape(64, idx.size).T
    got = layers._padded_rows(np, 8, idx, src)
    want = np.zeros((8, 64), np.float32)
    np.add.at(want, idx, src)
    np.testing.assert_array_equal(got, want)
    assert not got[[1, 2, 3, 4, 6, 7]].any()


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("kw", [{}, {"padding_idx": 3}, {"scale_grad_by_freq": True}])
def test_embedding_grad_vs_torch(dt, kw):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((65, 128)).astype(dt)
    idx = rng.integers(0, 65, (16, 64))
    g = rng.standard_normal((16, 64, 128)).astype(dt)
    ew = ember.tensor(w, requires_grad=True)
    ember.nn.functional.embedding(ember.tensor(idx), ew, **kw).backward(ember.tensor(g))
    tw = torch.tensor(w, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(idx), tw, **kw).backward(torch.tensor(g))
    tol = 1e-5 if dt == "float32" else 1e-12
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=tol, atol=tol)


def test_embedding_double_backward_vs_torch():
    # the table gradient stays differentiable (create_graph) through the padded sum
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 40))
    idx = rng.integers(0, 20, 200)
    gv = rng.standard_normal((200, 40))
    res = []
    for mod in (ember, torch):
        wt = mod.tensor(w, requires_grad=True)
        g = mod.tensor(gv, requires_grad=True)
        out = mod.nn.functional.embedding(mod.tensor(idx), wt)
        gw, = mod.autograd.grad(out, wt, g, create_graph=True)
        (gw * gw).sum().backward()
        res.append((gw.detach().numpy(), g.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# the rank-major block sums each table row in the order its rows occur, as PyTorch's CPU
# kernel does: its bits, not only its value to rounding (heavy repeats, padding_idx, int32)
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("n,r,d,pad", [(65, 1024, 128, None), (65, 1024, 128, 0),
                                       (65, 1024, 128, 64), (8, 500, 40, 3),
                                       (300, 1024, 64, None)])
def test_table_gradient_bits_of_torch(dt, n, r, d, pad):
    rng = np.random.default_rng(n * r + d)
    w = rng.standard_normal((n, d)).astype(dt)
    idx = rng.integers(0, n, (r // 64, 64) if r % 64 == 0 else r).astype(np.int32)
    idx.reshape(-1)[:5] = 0  # the padding row (when 0) looked up too
    g = rng.standard_normal(idx.shape + (d,)).astype(dt)
    ew = ember.tensor(w, requires_grad=True)
    ember.nn.functional.embedding(ember.tensor(idx), ew, padding_idx=pad).backward(
        ember.tensor(g))
    tw = torch.tensor(w, requires_grad=True)
    torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=pad).backward(
        torch.tensor(g))
    np.testing.assert_array_equal(ew.grad.numpy(), tw.grad.numpy())
    if pad is not None:
        assert not ew.grad.numpy()[pad].any()


def test_padded_block_rank_major_layout_bits():
    # the (L, n, dim) block gives the very bits of a sequential sum in occurrence order
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 65, 1024)
    src = (rng.standard_normal((1024, 128)) * 10 ** rng.uniform(-3, 3, (1024, 1))).astype(
        np.float32)
    got = layers._padded_rows(np, 65, idx, src)
    want = np.zeros((65, 128), np.float32)
    for i, row in enumerate(idx):
        want[row] += src[i]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_plain_backward_equals_graph_backward():
    # a plain backward makes the table gradient on arrays; create_graph keeps the node: the
    # same numbers, and the graph one is differentiable
    rng = np.random.default_rng(4)
    w = rng.standard_normal((30, 48)).astype(np.float32)
    idx = ember.tensor(rng.integers(0, 30, (8, 20)))
    g = ember.tensor(rng.standard_normal((8, 20, 48)).astype(np.float32), requires_grad=True)
    a = ember.tensor(w, requires_grad=True)
    ember.nn.functional.embedding(idx, a).backward(g)
    b = ember.tensor(w, requires_grad=True)
    gb, = ember.autograd.grad(ember.nn.functional.embedding(idx, b), b, g, create_graph=True)
    assert a.grad.grad_fn is None and gb.grad_fn is not None
    np.testing.assert_array_equal(a.grad.numpy(), gb.detach().numpy())
