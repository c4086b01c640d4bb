"""Outputs of matmul/linear, cross-entropy and embedding taken from the reused scratch pool
(NOTE [ Workspace ], issue 15): values and gradients equal PyTorch's, an output never shares
memory with a later call's while it is alive, retained graphs keep their saved softmax, and
the checks the pool's fast paths moved (embedding's index range) still raise PyTorch's errors.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
import torch.nn.functional as TF
from ember.ops import _workspace as ws
from ember.ops.layers import _Embedding

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}
DTYPES = ["float64", "float32"]


@pytest.fixture
def pool_everything(monkeypatch):
    """Every array the fast paths ask for comes from the pool, however small."""
    monkeypatch.setattr(ws, "MIN_BYTES", 0)
    ws.clear()
    yield
    ws.clear()


def _pair(arr, dtype, requires_grad=True):
    t = torch.from_numpy(arr.copy()).to(getattr(torch, dtype)).requires_grad_(requires_grad)
    e = ember.from_numpy(arr.copy()).to(getattr(ember, dtype)).requires_grad_(requires_grad)
    return e, t


def _close(e, t, dtype):
    np.testing.assert_allclose(e.detach().to(ember.float64).numpy(),
                               t.detach().to(torch.float64).numpy(), **TOL[dtype])


def _shares(a, b) -> bool:
    return np.shares_memory(a.detach().numpy(), b.detach().numpy())


# ---- matmul / linear ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_x, bias", [((300, 70), True), ((4, 80, 70), False),
                                           ((300, 70), False)])
def test_linear_from_pool_matches_torch(pool_everything, dtype, shape_x, bias):
    rng = np.random.default_rng(0)
    xe, xt = _pair(rng.standard_normal(shape_x), dtype)
    we, wt = _pair(rng.standard_normal((90, 70)) * 0.1, dtype)
    be, bt = _pair(rng.standard_normal(90), dtype) if bias else (None, None)
    ye, yt = EF.linear(xe, we, be), TF.linear(xt, wt, bt)
    _close(ye, yt, dtype)
    g = rng.standard_normal(yt.shape)
    ye.backward(ember.from_numpy(g).to(ye.dtype))
    yt.backward(torch.from_numpy(g).to(yt.dtype))
    for e, t in ((xe, xt), (we, wt)) + (((be, bt),) if bias else ()):
        _close(e.grad, t.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_outputs_alive_never_share_a_block(pool_everything, dtype):
    rng = np.random.default_rng(1)
    a = ember.from_numpy(rng.standard_normal((50, 40))).to(getattr(ember, dtype))
    b = ember.from_numpy(rng.standard_normal((40, 60))).to(getattr(ember, dtype))
    first = a @ b
    kept = first.numpy().copy()
    view = (a @ b)[1:3]         # only a view of the second product stays alive
    third = a @ (b * 2)
    assert not _shares(first, third) and not _shares(view, third)
    np.testing.assert_array_equal(first.numpy(), kept)  # untouched by the later products
    np.testing.assert_allclose(third.numpy(), 2 * kept, rtol=1e-6)
    blk = id(third.numpy().base)  # an id: holding the block would keep it in use
    del third
    again = a @ b               # a free block is handed out again
    assert id(again.numpy().base) == blk
    np.testing.assert_array_equal(again.numpy(), kept)


def test_matmul_empty_inner_dim_gives_zeros(pool_everything):
    a, b = ember.ones(20, 0), ember.ones(0, 30)
    np.testing.assert_array_equal((a @ b).numpy(), np.zeros((20, 30), np.float32))


def test_leaf_grad_from_pool_is_its_own_memory(pool_everything):
    """A pooled gradient reaching a leaf is copied: the leaf's .grad outlives the block."""
    x = ember.ones(30, 20, requires_grad=True)
    w = ember.ones(40, 20)
    EF.linear(x, w).sum().backward()
    g = x.grad.numpy().copy()
    for _ in range(3):
        EF.linear(ember.ones(30, 20, requires_grad=True), w * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), g)


# ---- cross-entropy -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [{}, dict(ignore_index=2), dict(label_smoothing=0.1),
                                dict(reduction="sum"), dict(reduction="none")])
def test_cross_entropy_from_pool_matches_torch(pool_everything, dtype, kw):
    rng = np.random.default_rng(2)
    xe, xt = _pair(rng.standard_normal((64, 9)) * 3, dtype)
    y = rng.integers(0, 9, 64)
    le = EF.cross_entropy(xe, ember.from_numpy(y), **kw)
    lt = TF.cross_entropy(xt, torch.from_numpy(y), **kw)
    _close(le, lt, dtype)
    g = rng.standard_normal(lt.shape)
    # twice through a retained graph: the saved softmax must survive the first backward
    for _ in range(2):
        le.backward(ember.from_numpy(g).to(le.dtype), retain_graph=True)
        lt.backward(torch.from_numpy(g).to(lt.dtype), retain_graph=True)
        _close(xe.grad, xt.grad, dtype)


def test_cross_entropy_graphs_alive_at_once(pool_everything):
    rng = np.random.default_rng(3)
    xs = [_pair(rng.standard_normal((16, 5)), "float64") for _ in range(3)]
    y = rng.integers(0, 5, 16)
    le = [EF.cross_entropy(e, ember.from_numpy(y)) for e, _ in xs]
    lt = [TF.cross_entropy(t, torch.from_numpy(y)) for _, t in xs]
    for k in (2, 0, 1):
        le[k].backward()
        lt[k].backward()
    for e, t in xs:
        _close(e.grad, t.grad, "float64")


# ---- embedding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_from_pool_matches_torch(pool_everything, dtype):
    rng = np.random.default_rng(4)
    we, wt = _pair(rng.standard_normal((11, 6)), dtype)
    idx = rng.integers(0, 11, (7, 5))
    outs = [EF.embedding(ember.from_numpy(idx), we) for _ in range(2)]  # both alive
    ot = TF.embedding(torch.from_numpy(idx), wt)
    assert not _shares(outs[0], outs[1])
    for o in outs:
        _close(o, ot, dtype)
    g = rng.standard_normal(ot.shape)
    outs[0].backward(ember.from_numpy(g).to(we.dtype))
    ot.backward(torch.from_numpy(g).to(wt.dtype))
    _close(we.grad, wt.grad, dtype)


@pytest.mark.parametrize("bad", [11, -1, 100])
@pytest.mark.parametrize("max_norm", [None, 1.0])
def test_embedding_index_out_of_range_raises(bad, max_norm):
    w = ember.randn(11, 3)
    wt = torch.randn(11, 3)
    idx = np.array([[0, 3], [bad, 1]])
    # with max_norm PyTorch's renorm meets the index first (another message, same type)
    msg = "index out of range" if max_norm is None else None
    with pytest.raises(IndexError, match=msg):
        TF.embedding(torch.from_numpy(idx), wt, max_norm=max_norm)
    before = w.numpy().copy()
    with pytest.raises(IndexError):
        EF.embedding(ember.from_numpy(idx), w, max_norm=max_norm)
    np.testing.assert_array_equal(w.numpy(), before)  # no row renormalised first


def test_embedding_forward_itself_checks_the_range():
    """Compiled code calls the array-level forward directly: it must not clip silently."""
    w = ember.randn(5, 3)
    with pytest.raises(IndexError, match="index out of range in self"):
        _Embedding.apply(w, ember.tensor([1, 5]), -1, False, False)


# ---- promotion without an import per call -----------------------------------------------------

@pytest.mark.parametrize("other", [np.float64(2.0), np.int32(3), 2.5, 3, True])
@pytest.mark.parametrize("dtype", ["int32", "float16", "float32", "bool"])
def test_result_type_with_scalars_matches_torch(other, dtype):
    e = ember.ones(3, dtype=getattr(ember, dtype))
    t = torch.ones(3, dtype=getattr(torch, dtype))
    assert str(ember.result_type(e, other)).split(".")[1] == \
        str(torch.result_type(t, other)).split(".")[1]


def test_result_type_of_parameter_and_zero_dim():
    p = ember.nn.Parameter(ember.ones(2, dtype=ember.float16))
    z = ember.tensor(1.0, dtype=ember.float64)
    pt = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
    zt = torch.tensor(1.0, dtype=torch.float64)
    assert str(ember.result_type(p, z)) == str(torch.result_type(pt, zt)).replace("torch",
                                                                                 "ember")
    with pytest.raises(TypeError):
        ember.result_type(None, None)
