"""The fused recurrent layers' reused scratch arrays (NOTE [ Workspace ]): the pool's rules,
and the layers against PyTorch with every array taken from the pool, several graphs alive at
once, outputs kept across later calls, retained graphs, float64 and float32."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn

import ember
import ember.nn.utils.rnn as ernn
from ember.ops import _workspace as ws
from opcheck import assert_close
from test_rnn import build, both, compare, flat

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

I, H, B, T = 3, 5, 4, 6


@pytest.fixture
def pool_everything(monkeypatch):
    """Every scratch array of the fused layers comes from the pool, however small."""
    monkeypatch.setattr(ws, "MIN_BYTES", 0)
    ws.clear()
    yield
    ws.clear()


# ---- the pool ---------------------------------------------------------------------------------

def test_block_is_reused_only_when_nothing_refers_to_it(pool_everything):
    a = ws.empty(np, (4, 8), np.float64)
    b = ws.empty(np, (4, 8), np.float64)
    assert a.base is not b.base  # a is in use: b gets its own block
    blk = id(a.base)  # an id: holding the block itself would keep it in use
    del a
    c = ws.empty(np, (32,), np.float64)  # same dtype and size: a's block again
    assert id(c.base) == blk and c.shape == (32,)
    view = c[3:5]
    del c
    d = ws.empty(np, (8, 4), np.float64)  # a view still holds the block
    assert id(d.base) != blk
    del view
    e = ws.empty(np, (2, 16), np.float64)
    assert id(e.base) == blk
    assert ws.empty(np, (4, 8), np.float32).dtype == np.float32  # dtype is part of the key
    del b, d, e


def test_small_arrays_and_arrays_past_the_cap_are_plain(monkeypatch):
    ws.clear()
    held0 = ws._held[0]  # blocks other tests' live tensors still hold
    small = ws.empty(np, (3,), np.float32)
    assert small.base is None  # below MIN_BYTES: straight from malloc
    monkeypatch.setattr(ws, "MIN_BYTES", 0)
    monkeypatch.setattr(ws, "_KEEP", held0 + 1000)
    kept = ws.empty(np, (100,), np.float64)  # 800 bytes: pooled
    held = ws._held[0]
    big = ws.empty(np, (100,), np.float32)   # 400 more would pass the cap: not pooled
    assert kept.base is not None and big.base is None and ws._held[0] == held
    del kept
    again = ws.empty(np, (100,), np.float32)  # the free block is dropped to make room
    pooled = again.base is not None
    del again
    assert pooled and ws._held[0] == held0 + 400
    ws.clear()
    assert ws._held[0] == held0


def test_zeros_and_threads(pool_everything):
    z = ws.zeros(np, (5, 7), np.float64)
    assert not z.any()
    del z
    got, errors = [], []

    def grab():
        try:
            for _ in range(200):
                a = ws.empty(np, (64,), np.float64)
                a.fill(threading.get_ident())
                got.append(a)
                assert (a == threading.get_ident()).all()
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(a.base) for a in got}) == len(got)  # every live array has its own block
    for a in got:
        assert (a == a[0]).all()


# ---- the layers over pooled arrays ------------------------------------------------------------

CASES = [(m, dt, bi, pk, bf) for m in ("RNN_TANH", "LSTM", "GRU") for dt in ("float64", "float32")
         for bi, pk, bf in ((False, False, True), (True, True, False), (True, False, False))]


@pytest.mark.parametrize("mode,dtype,bidir,packed,batch_first", CASES)
def test_layers_match_torch_with_pooled_arrays(pool_everything, mode, dtype, bidir, packed,
                                               batch_first):
    tm, em = build(mode, dtype, input_size=I, hidden_size=H, num_layers=2, bidirectional=bidir,
                   batch_first=batch_first)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    for _ in range(2):  # the second round runs on the blocks the first one gave back
        xt, xe = both(x)
        it, ie = xt, xe
        if packed:
            it = trnn.pack_padded_sequence(xt, [6, 2, 4, 1], enforce_sorted=False)
            ie = ernn.pack_padded_sequence(xe, [6, 2, 4, 1], enforce_sorted=False)
        for p in list(tm.parameters()) + list(em.parameters()):
            p.grad = None
        compare(tm, em, (it,), (ie,), [xt], [xe], dtype)


def test_dropout_with_pooled_arrays(pool_everything):
    # p = 1 zeroes the second layer's input: deterministic, so comparable with torch
    tm, em = build("LSTM", input_size=I, hidden_size=H, num_layers=3, dropout=1.0)
    x = np.random.default_rng(5).standard_normal((T, B, I))
    xt, xe = both(x)
    compare(tm, em, (xt,), (xe,), [xt], [xe], "float64")


@pytest.mark.parametrize("mode", ["RNN_RELU", "LSTM", "GRU"])
def test_graphs_alive_at_once_and_kept_outputs(pool_everything, mode):
    kw = {"proj_size": 2} if mode == "LSTM" else {}
    tm, em = build(mode, input_size=I, hidden_size=H, **kw)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((T, B, I)) for _ in range(3)]
    outs_e = [flat(em(ember.from_numpy(x.copy()).requires_grad_())) for x in xs]
    kept = [[o.detach().numpy().copy() for o in outs] for outs in outs_e]
    with ember.no_grad():  # more calls while the three graphs hold their blocks
        for x in xs:
            em(ember.from_numpy(x))
    grads_e = []
    for outs, k in zip(outs_e, kept):
        for o, a in zip(outs, k):
            np.testing.assert_array_equal(o.detach().numpy(), a)  # nobody wrote over them
        loss = sum((o * o).sum() for o in outs)
        grads_e.append(ember.autograd.grad(loss, list(em.parameters())))
    for x, ge in zip(xs, grads_e):
        outs_t = flat(tm(torch.from_numpy(x)))
        gt = torch.autograd.grad(sum((o * o).sum() for o in outs_t), list(tm.parameters()))
        assert_close(list(ge), list(gt))


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_retained_graph_with_pooled_arrays(pool_everything, mode):
    _, em = build(mode, input_size=I, hidden_size=H, num_layers=2)
    xe = ember.from_numpy(np.random.default_rng(3).standard_normal((T, B, I)))
    xe.requires_grad_()
    loss = sum((o * o).sum() for o in flat(em(xe)))
    first = ember.autograd.grad(loss, [xe] + list(em.parameters()), retain_graph=True)
    em(xe)  # another call in between must not disturb the retained graph's arrays
    second = ember.autograd.grad(loss, [xe] + list(em.parameters()))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fake_device_keeps_its_own_blocks(pool_everything):
    import fake_device
    dev = fake_device.register()
    try:
        _, em = build("LSTM", input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
        x = np.random.default_rng(4).standard_normal((T, B, I))
        res = {}
        for d in ("cpu", dev):
            em.to(d)
            xe = ember.from_numpy(x.copy()).to(d).requires_grad_()
            out = flat(em(xe))
            assert all(o.device == xe.device for o in out)
            sum((o * o).sum() for o in out).backward()
            res[str(d)] = [o.detach().cpu().numpy() for o in out] + [xe.grad.cpu().numpy()]
            em.zero_grad()
        for a, b in zip(*res.values()):
            np.testing.assert_array_equal(a, b)
        assert any(key[0] is fake_device.fake_xp for key in ws._blocks)
    finally:
        fake_device.unregister()
