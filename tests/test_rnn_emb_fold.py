"""An embedding read only by a fused LSTM layer, as one node (NOTE [ Embedding into LSTM ] in
``_functorch/rnn_fold.py``; ``_FusedEmbLstm`` in ``ops/rnn.py``): the node against PyTorch
and against the unfused pair (both directions, packed lengths, with and without biases,
each gradient alone), gradcheck and create_graph, and ``ember.compile`` folding the pair in a
language model, training as eager and as PyTorch, and leaving the cases it must not fold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import rnn
from ember.ops.layers import embedding
from compilecheck import recording_backend
from opcheck import assert_close

V, I, H = 7, 4, 5
NAMES = ("emb", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")


def _inputs(dtype, bias=True, bs=(3, 3, 3, 3), seed=0):
    """Random inputs of the node as numpy arrays (None for absent biases) and indices."""
    r = np.random.default_rng(seed)
    B, N = bs[0], sum(bs)

    def f(*s):
        return (r.standard_normal(s) * 0.5).astype(dtype)
    arrs = dict(emb=f(V, I), h0=f(B, H), c0=f(B, H), w_ih=f(4 * H, I), w_hh=f(4 * H, H),
                b_ih=f(4 * H) if bias else None, b_hh=f(4 * H) if bias else None)
    return arrs, r.integers(0, V, N)


def _ember(arrs, needs=NAMES):
    return {k: None if a is None else ember.from_numpy(a.copy()).requires_grad_(k in needs)
            for k, a in arrs.items()}


def _node(t, idx, reverse, bs):
    """The folded node's ``(y, h_n, c_n)``."""
    return rnn._FusedEmbLstm.apply(t["emb"], idx, t["h0"], t["c0"], t["w_ih"], t["w_hh"],
                                   t["b_ih"], t["b_hh"], reverse, bs, None)


def _pair(t, idx, reverse, bs):
    """The embedding, then the fused layer: what the node replaces."""
    x = embedding(idx, t["emb"])
    return rnn._rnn_layer(x, t["h0"], t["c0"], t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"],
                          None, "LSTM", reverse, bs)


def _same(a, b, rtol=1e-10, atol=1e-12):
    """Two ember results (tensors in lists or dicts) equal to ``rtol``."""
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        a, b = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, rtol, atol)
        return
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=atol)


def _grads(fn, t, idx, reverse, bs, ups):
    outs = fn(t, idx, reverse, bs)
    loss = sum((o * u).sum() for o, u in zip(outs, ups))
    loss.backward()
    return list(outs), {k: v.grad for k, v in t.items() if v is not None and v.requires_grad}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bias", [True, False])
def test_node_equals_torch_embedding_then_lstm(dtype, bias):
    arrs, idx = _inputs(dtype, bias)
    T, B = 4, 3
    tm = torch.nn.LSTM(I, H, bias=bias).to(getattr(torch, dtype))
    with torch.no_grad():
        tm.weight_ih_l0.copy_(torch.from_numpy(arrs["w_ih"]))
        tm.weight_hh_l0.copy_(torch.from_numpy(arrs["w_hh"]))
        if bias:
            tm.bias_ih_l0.copy_(torch.from_numpy(arrs["b_ih"]))
            tm.bias_hh_l0.copy_(torch.from_numpy(arrs["b_hh"]))
    temb = torch.from_numpy(arrs["emb"].copy()).requires_grad_()
    th0 = torch.from_numpy(arrs["h0"].copy()).requires_grad_()
    tc0 = torch.from_numpy(arrs["c0"].copy()).requires_grad_()
    x = torch.nn.functional.embedding(torch.from_numpy(idx.reshape(T, B)), temb)
    ty, (thn, tcn) = tm(x, (th0[None], tc0[None]))
    r = np.random.default_rng(1)
    ups = [r.standard_normal(s).astype(dtype) for s in ((T * B, H), (B, H), (B, H))]
    (ty.reshape(T * B, H) * torch.from_numpy(ups[0])).sum().add(
        (thn[0] * torch.from_numpy(ups[1])).sum() + (tcn[0] * torch.from_numpy(ups[2])).sum()
    ).backward()
    t = _ember(arrs)
    outs, g = _grads(_node, t, ember.from_numpy(idx), False, (B,) * T,
                     [ember.from_numpy(u) for u in ups])
    assert_close(outs, [ty.reshape(T * B, H), thn[0], tcn[0]], dtype, "forward")
    want = {"emb": temb.grad, "h0": th0.grad, "c0": tc0.grad, "w_ih": tm.weight_ih_l0.grad,
            "w_hh": tm.weight_hh_l0.grad}
    if bias:
        want.update(b_ih=tm.bias_ih_l0.grad, b_hh=tm.bias_hh_l0.grad)
    for k, w in want.items():
        assert_close(g[k], w, dtype, k)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bs", [(3, 3, 3, 3), (3, 3, 2, 1)])
@pytest.mark.parametrize("needs", [NAMES, ("emb",), ("w_ih",), ("b_hh",), ("w_hh", "h0")])
def test_node_equals_the_pair_for_each_gradient(reverse, bs, needs):
    arrs, idx = _inputs(np.float64, bs=bs)
    r = np.random.default_rng(2)
    N, B = sum(bs), bs[0]
    ups = [ember.from_numpy(r.standard_normal(s)) for s in ((N, H), (B, H), (B, H))]
    got = _grads(_node, _ember(arrs, needs), ember.from_numpy(idx), reverse, bs, ups)
    want = _grads(_pair, _ember(arrs, needs), ember.from_numpy(idx), reverse, bs, ups)
    assert sorted(got[1]) == sorted(k for k in needs if arrs[k] is not None)
    _same(got, want)


def test_gradcheck_and_create_graph():
    arrs, idx = _inputs(np.float64, bs=(2, 2, 1))
    t = _ember(arrs)
    idx = ember.from_numpy(idx)
    keys = [k for k in NAMES if t[k] is not None]

    def fn(*xs):
        d = dict(zip(keys, xs))
        return _node(d, idx, False, (2, 2, 1))
    assert ember.autograd.gradcheck(fn, tuple(t[k] for k in keys))
    # create_graph: the gradient's own gradient, as the pair's
    res = []
    for f in (_node, _pair):
        t = _ember(arrs)
        y, hn, cn = f(t, idx, False, (2, 2, 1))
        g = ember.autograd.grad((y * y).sum() + hn.sum(), [t["emb"], t["w_ih"]],
                                create_graph=True)
        (g[0].pow(2).sum() + g[1].pow(2).sum()).backward()
        res.append([t[k].grad for k in keys])
    _same(res[0], res[1])


@pytest.mark.parametrize("reverse", [False, True])
def test_batch_first_indices_equal_the_transposed_pair(reverse):
    arrs, idx = _inputs(np.float64)
    idx_bt = np.ascontiguousarray(idx.reshape(4, 3).T)  # (B, T) of the same tokens
    r = np.random.default_rng(3)
    ups = [ember.from_numpy(r.standard_normal(s)) for s in ((12, H), (3, H), (3, H))]

    def node(t, idx, reverse, bs):
        return rnn._FusedEmbLstm.apply(t["emb"], ember.from_numpy(idx_bt), t["h0"], t["c0"],
                                       t["w_ih"], t["w_hh"], t["b_ih"], t["b_hh"], reverse, bs,
                                       None, True)
    got = _grads(node, _ember(arrs), None, reverse, (3,) * 4, ups)
    want = _grads(_pair, _ember(arrs), ember.from_numpy(idx), reverse, (3,) * 4, ups)
    _same(got, want)
    res = []  # and under create_graph
    for f, i in ((node, None), (_pair, ember.from_numpy(idx))):
        t = _ember(arrs)
        y, hn, _ = f(t, i, reverse, (3,) * 4)
        g = ember.autograd.grad((y * y).sum() + hn.sum(), [t["emb"]], create_graph=True)
        g[0].pow(2).sum().backward()
        res.append([t[k].grad for k in NAMES])
    _same(res[0], res[1])


def test_index_out_of_range_raises_as_embedding():
    arrs, idx = _inputs(np.float64)
    idx[3] = V
    with pytest.raises(IndexError, match="index out of range in self"):
        _node(_ember(arrs), ember.from_numpy(idx), False, (3,) * 4)


# ---- ember.compile folds the pair ---------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test compiles ``LM.loss`` afresh (its code object's cache is process-wide)."""
    ember.compiler.reset()
    yield
    ember.compiler.reset()


class LM:
    """Embedding -> LSTM -> Linear, the same weights in ember and torch."""

    def __init__(self, lib, vocab=9, padding_idx=None, bidirectional=False, reuse=False,
                 batch_first=False):
        lib.manual_seed(0)
        nn = lib.nn
        self.lib, self.vocab, self.reuse = lib, vocab, reuse
        self.emb = nn.Embedding(vocab, 8, padding_idx=padding_idx)
        self.lstm = nn.LSTM(8, 12, bidirectional=bidirectional, batch_first=batch_first)
        self.head = nn.Linear(24 if bidirectional else 12, vocab)
        self.params = [*self.emb.parameters(), *self.lstm.parameters(),
                       *self.head.parameters()]

    def load(self, other):
        for name in ("emb", "lstm", "head"):
            getattr(self, name).load_state_dict({
                k: ember.from_numpy(v.detach().numpy().copy())
                for k, v in getattr(other, name).state_dict().items()})
        return self

    def loss(self, x, y):
        F = self.lib.nn.functional
        e = self.emb(x)
        out, _ = self.lstm(e)
        loss = F.cross_entropy(self.head(out).reshape(-1, self.vocab), y)
        return loss + e.mean() if self.reuse else loss


def _folds(regions) -> int:
    return sum(getattr(n.target, "__name__", "") == "fused_rnn_emb_layer"
               for r in regions for n in r.gm.graph.nodes)


_recording_backend = recording_backend


def _train(model, compiled, x, y, steps=4):
    regions, backend = _recording_backend()
    f = ember.compile(model.loss, backend=backend) if compiled else model.loss
    opt = model.lib.optim.Adam(model.params, lr=0.01)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = f(x, y)
        loss.backward()
        opt.step()
        losses.append(loss.detach().reshape(1))
    return losses + [p.detach() for p in model.params], regions


@pytest.mark.parametrize("kw, folds", [
    ({}, 1),
    ({"batch_first": True}, 1),      # the rows transposed to time-major: the indices are
    ({"padding_idx": 0}, 0),         # the padding row's gradient: left to the embedding
    ({"vocab": 257}, 0),             # a word vocabulary: a table of more rows than it saves
    ({"bidirectional": True}, 0),    # two layers read the rows
    ({"reuse": True}, 0),            # the loss reads them too
])
def test_compiled_lm_folds_only_where_it_should_and_trains_as_eager_and_torch(kw, folds):
    vocab = kw.get("vocab", 9)
    g = np.random.default_rng(3)
    xs, ys = g.integers(0, vocab, (8, 6)), g.integers(0, vocab, 48)
    tmod = LM(torch, **kw)
    emods = [LM(ember, **kw).load(tmod) for _ in range(2)]  # before torch's training
    want, _ = _train(tmod, False, torch.from_numpy(xs), torch.from_numpy(ys))
    eager, _ = _train(emods[0], False, ember.from_numpy(xs), ember.from_numpy(ys))
    got, regions = _train(emods[1], True, ember.from_numpy(xs), ember.from_numpy(ys))
    assert _folds(regions) == folds
    assert_close(got, want, "float32", "compiled vs torch")
    _same(got, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_fold_without_grad_equals_eager(dtype):
    g = np.random.default_rng(7)
    model = LM(ember)
    for p in model.params:
        p.data = p.data.to(getattr(ember, dtype))
    x, y = ember.from_numpy(g.integers(0, 9, (8, 6))), ember.from_numpy(g.integers(0, 9, 48))
    regions, backend = _recording_backend()
    f = ember.compile(model.loss, backend=backend)
    with ember.no_grad():
        got, want = f(x, y), model.loss(x, y)
    assert _folds(regions) == 1 and got.dtype == getattr(ember, dtype)
    _same(got, want, rtol=1e-12 if dtype == "float64" else 1e-5)


def test_compiled_fold_with_an_out_of_range_index_raises():
    g = np.random.default_rng(4)
    model = LM(ember)
    f = ember.compile(model.loss)
    x, y = g.integers(0, 9, (8, 6)), ember.from_numpy(g.integers(0, 9, 48))
    f(ember.from_numpy(x), y).backward()
    x[2, 3] = 9
    with pytest.raises(IndexError, match="index out of range in self"):
        f(ember.from_numpy(x), y)


def test_compiled_fold_with_numba_step_kernels_trains_as_eager():
    pytest.importorskip("numba")  # the optional ``numba`` extra
    g = np.random.default_rng(5)
    xs, ys = ember.from_numpy(g.integers(0, 9, (8, 6))), ember.from_numpy(g.integers(0, 9, 48))
    eager, _ = _train(LM(ember), False, xs, ys)
    model = LM(ember)
    regions, backend = _recording_backend()
    f = ember.compile(model.loss, backend=backend, options={"numba": True})
    opt = ember.optim.Adam(model.params, lr=0.01)
    got = []
    for _ in range(4):
        opt.zero_grad()
        loss = f(xs, ys)
        loss.backward()
        opt.step()
        got.append(loss.detach().reshape(1))
    assert _folds(regions) == 1
    _same(got + [p.detach() for p in model.params], eager, rtol=1e-4, atol=1e-5)


def test_compiled_fold_at_varying_batch_and_length_trains_as_eager():
    g = np.random.default_rng(6)
    shapes = [(6, 8), (6, 10), (6, 12), (7, 12), (6, 9), (5, 8)]
    data = [(g.integers(0, 9, s), g.integers(0, 9, s[0] * s[1])) for s in shapes]
    res = []
    for compiled in (False, True):
        model = LM(ember)
        regions, backend = _recording_backend()
        f = ember.compile(model.loss, backend=backend) if compiled else model.loss
        opt = ember.optim.Adam(model.params, lr=0.01)
        out = []
        for x, y in data:
            opt.zero_grad()
            loss = f(ember.from_numpy(x), ember.from_numpy(y))
            loss.backward()
            opt.step()
            out.append(loss.detach().reshape(1))
        res.append(out + [p.detach() for p in model.params])
    assert regions and _folds(regions) == len(regions)  # every graph compiled has the node
    _same(res[1], res[0], rtol=1e-5, atol=1e-6)
