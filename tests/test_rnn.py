"""RNN / LSTM / GRU layers and cells against PyTorch with identical weights (float64, float32);
the fused layer node against the unfused cell composition; create_graph; bad input."""
from __future__ import annotations

import itertools
import pathlib
import sys

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn

import ember
import ember.nn.utils.rnn as ernn
from ember.ops.rnn import _rnn_layer
from opcheck import assert_close

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench/ (test_lstm_lm_step_matches_torch)
# torch's own notice when it runs an LSTM with projections without oneDNN
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

I, H, P, B, T = 3, 4, 2, 4, 5
LENGTHS = [5, 2, 4, 1]          # unsorted; sorted: [5, 4, 2, 1]
NAMES = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def build(mode, dtype="float64", **kw):
    """The same module in torch and ember (ember's weights copied from torch's)."""
    if mode.startswith("RNN"):
        kw["nonlinearity"] = "tanh" if mode == "RNN_TANH" else "relu"
    tm = getattr(torch.nn, NAMES[mode])(**kw).to(getattr(torch, dtype))
    em = getattr(ember.nn, NAMES[mode])(**kw).to(getattr(ember, dtype))
    assert list(em.state_dict()) == list(tm.state_dict())
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    return tm, em


def both(a, rg=True):
    return (torch.from_numpy(a.copy()).requires_grad_(rg),
            ember.from_numpy(a.copy()).requires_grad_(rg))


def flat(out):
    """Tensors of a module's result: output (data if packed) and every state."""
    o, h = out
    o = o.data if isinstance(o, (trnn.PackedSequence, ernn.PackedSequence)) else o
    return [o] + (list(h) if isinstance(h, tuple) else [h])


def compare(tm, em, args_t, args_e, leaves_t, leaves_e, dtype, seed=0):
    """Outputs, then every gradient (leaves and parameters) for one random upstream."""
    rt, re_ = tm(*args_t), em(*args_e)
    ft, fe = flat(rt), flat(re_)
    assert_close(fe, ft, dtype, "forward")
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in ft]
    torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
    ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
    for a, b in zip(leaves_e, leaves_t):
        assert_close(a.grad, b.grad, dtype, "leaf grad")
    for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert_close(q.grad, p.grad, dtype, f"grad of {n}")
    return rt, re_


GRID = [(m, L, bi, bf, pk, h0, bias, proj)
        for m in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
        for L, bi, bf, pk, h0, bias in itertools.product(
            (1, 2), (False, True), (False, True), (None, "sorted", "unsorted"), (False, True),
            (True, False))
        for proj in ((0, P) if m == "LSTM" else (0,))]


@pytest.mark.parametrize("mode,layers,bidir,batch_first,packed,with_h0,bias,proj", GRID)
def test_layer_matches_torch(mode, layers, bidir, batch_first, packed, with_h0, bias, proj):
    rng = np.random.default_rng(hash((mode, layers, bidir, batch_first)) % 1000)
    kw = dict(input_size=I, hidden_size=H, num_layers=layers, bias=bias,
              batch_first=batch_first, bidirectional=bidir)
    if proj:
        kw["proj_size"] = proj
    d = 2 if bidir else 1
    for dtype in ("float64", "float32"):
        tm, em = build(mode, dtype, **kw)
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
        xt, xe = both(x)
        leaves_t, leaves_e = [xt], [xe]
        if packed:
            lengths = LENGTHS if packed == "unsorted" else sorted(LENGTHS, reverse=True)
            es = packed == "sorted"
            it = trnn.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted=es)
            ie = ernn.pack_padded_sequence(xe, ember.tensor(lengths), batch_first,
                                           enforce_sorted=es)
            assert ie.batch_sizes.tolist() == it.batch_sizes.tolist()
        else:
            it, ie = xt, xe
        args_t, args_e = [it], [ie]
        if with_h0:
            h = rng.standard_normal((layers * d, B, proj or H)).astype(dtype)
            ht, he = both(h)
            if mode == "LSTM":
                ct, ce = both(rng.standard_normal((layers * d, B, H)).astype(dtype))
                args_t.append((ht, ct))
                args_e.append((he, ce))
                leaves_t += [ht, ct]
                leaves_e += [he, ce]
            else:
                args_t.append(ht)
                args_e.append(he)
                leaves_t.append(ht)
                leaves_e.append(he)
        rt, re_ = compare(tm, em, args_t, args_e, leaves_t, leaves_e, dtype)
        if packed:
            pt, lt = trnn.pad_packed_sequence(rt[0], batch_first)
            pe, le = ernn.pad_packed_sequence(re_[0], batch_first)
            assert_close(pe, pt, dtype)
            assert le.tolist() == lt.tolist()


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM", "GRU"])
def test_unbatched_input(mode):
    tm, em = build(mode, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = np.random.default_rng(1).standard_normal((T, I))
    xt, xe = both(x)
    compare(tm, em, [xt], [xe], [xt], [xe], "float64")
    h = np.random.default_rng(2).standard_normal((4, H))
    xt, xe = both(x)
    ht, he = both(h)
    if mode == "LSTM":
        ct, ce = both(h + 1)
        compare(tm, em, [xt, (ht, ct)], [xe, (he, ce)], [xt, ht, ct], [xe, he, ce], "float64")
    else:
        compare(tm, em, [xt, ht], [xe, he], [xt, ht], [xe, he], "float64")


# ---- the fused node against the unfused cell composition -----------------------------------

def _layer_inputs(rng, mode, proj, bs):
    G = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}[mode]
    hout = proj or H
    n, b = sum(bs), bs[0]
    return [rng.standard_normal((n, I)), rng.standard_normal((b, hout)),
            rng.standard_normal((b, H)) if mode == "LSTM" else None,
            rng.standard_normal((G * H, I)), rng.standard_normal((G * H, hout)),
            rng.standard_normal(G * H), rng.standard_normal(G * H),
            rng.standard_normal((proj, H)) if proj else None]


LAYER_CASES = [(m, p, bs, r) for m in ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")
               for p in ((0, P) if m == "LSTM" else (0,))
               for bs in ((3, 3, 3, 3), (3, 3, 2, 1, 1)) for r in (False, True)]


@pytest.mark.parametrize("mode,proj,bs,reverse", LAYER_CASES)
def test_fused_layer_matches_cell_composition(mode, proj, bs, reverse):
    rng = np.random.default_rng(3)
    arrs = _layer_inputs(rng, mode, proj, bs)
    gouts = [rng.standard_normal((sum(bs), proj or H)), rng.standard_normal((bs[0], proj or H)),
             rng.standard_normal((bs[0], H))]
    res = []
    for fused in (True, False):
        ts = [None if a is None else ember.from_numpy(a.copy()).requires_grad_() for a in arrs]
        outs = [o for o in _rnn_layer(*ts, mode, reverse, bs, fused=fused) if o is not None]
        gr = ember.autograd.grad(outs, [t for t in ts if t is not None],
                                 [ember.from_numpy(g) for g in gouts[:len(outs)]])
        res.append([o.detach().numpy() for o in outs] + [g.numpy() for g in gr])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode,packed", [("RNN_TANH", False), ("LSTM", False), ("GRU", False),
                                         ("LSTM", True), ("GRU", True)])
def test_create_graph_through_fused_layer(mode, packed):
    # Double backward: the fused node's backward recomputes the cell composition in the graph.
    tm, em = build(mode, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = np.random.default_rng(4).standard_normal((T, 3, I))
    xt, xe = both(x)
    it, ie = xt, xe
    if packed:
        it = trnn.pack_padded_sequence(xt, [2, 5, 3], enforce_sorted=False)
        ie = ernn.pack_padded_sequence(xe, [2, 5, 3], enforce_sorted=False)
    lt = sum(o.pow(2).sum() for o in flat(tm(it)))
    le = sum(o.pow(2).sum() for o in flat(em(ie)))
    gt = torch.autograd.grad(lt, [xt] + list(tm.parameters()), create_graph=True)
    ge = ember.autograd.grad(le, [xe] + list(em.parameters()), create_graph=True)
    assert_close(list(ge), list(gt))
    st = sum((g * g).sum() for g in gt)
    se = sum((g * g).sum() for g in ge)
    pt = torch.autograd.grad(st, [xt] + list(tm.parameters()))
    pe = ember.autograd.grad(se, [xe] + list(em.parameters()))
    assert_close(list(pe), list(pt))


@pytest.mark.parametrize("mode", ["RNN_RELU", "LSTM", "GRU"])
def test_retained_graph_and_no_grad(mode):
    kw = {"proj_size": P} if mode == "LSTM" else {}
    _, em = build(mode, input_size=I, hidden_size=H, **kw)
    xe = ember.from_numpy(np.random.default_rng(10).standard_normal((T, B, I)))
    xe.requires_grad_()
    out = flat(em(xe))
    loss = sum((o * o).sum() for o in out)
    loss.backward(retain_graph=True)
    first = [p.grad.numpy().copy() for p in em.parameters()] + [xe.grad.numpy().copy()]
    loss.backward()  # a second backward through the retained graph gives the same again
    second = [p.grad.numpy() for p in em.parameters()] + [xe.grad.numpy()]
    for a, b in zip(first, second):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-12)
    with ember.no_grad():
        again = flat(em(xe))
    assert not any(o.requires_grad for o in again)
    for a, b in zip(again, out):
        np.testing.assert_array_equal(a.numpy(), b.detach().numpy())


def test_fused_layer_gradcheck():
    from opcheck import gradcheck
    bs = (3, 2, 2, 1)
    for mode in ("LSTM", "GRU"):
        arrs = [a for a in _layer_inputs(np.random.default_rng(5), mode, 0, bs) if a is not None]

        def f(*ts, mode=mode):
            c0 = ts[2] if mode == "LSTM" else None
            rest = ts[3:] if mode == "LSTM" else ts[2:]
            outs = _rnn_layer(ts[0], ts[1], c0, *rest, None, mode, True, bs)
            return tuple(o for o in outs if o is not None)
        assert gradcheck(f, *arrs)


# ---- cells ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                    ("RNNCell", {"bias": False}), ("LSTMCell", {}),
                                    ("LSTMCell", {"bias": False}), ("GRUCell", {}),
                                    ("GRUCell", {"bias": False})])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cells_match_torch(cls, kw, dtype):
    tc = getattr(torch.nn, cls)(I, H, **kw).to(getattr(torch, dtype))
    ec = getattr(ember.nn, cls)(I, H, **kw).to(getattr(ember, dtype))
    assert list(ec.state_dict()) == list(tc.state_dict())
    ec.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tc.state_dict().items()})
    rng = np.random.default_rng(6)
    for shape in ((B, I), (I,)):
        hshape = shape[:-1] + (H,)
        for with_h in (False, True):
            xt, xe = both(rng.standard_normal(shape).astype(dtype))
            lt, le = [xt], [xe]
            at, ae = [xt], [xe]
            if with_h:
                ht, he = both(rng.standard_normal(hshape).astype(dtype))
                lt.append(ht)
                le.append(he)
                if cls == "LSTMCell":
                    ct, ce = both(rng.standard_normal(hshape).astype(dtype))
                    lt.append(ct)
                    le.append(ce)
                    at.append((ht, ct))
                    ae.append((he, ce))
                else:
                    at.append(ht)
                    ae.append(he)
            rt, re_ = tc(*at), ec(*ae)
            rt = list(rt) if isinstance(rt, tuple) else [rt]
            re_ = list(re_) if isinstance(re_, tuple) else [re_]
            assert_close(re_, rt, dtype)
            gs = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in rt]
            torch.autograd.backward(rt, [torch.from_numpy(g) for g in gs])
            ember.autograd.backward(re_, [ember.from_numpy(g.copy()) for g in gs])
            for a, b in zip(le, lt):
                assert_close(a.grad, b.grad, dtype)
            for (n, p), (_, q) in zip(tc.named_parameters(), ec.named_parameters()):
                assert_close(q.grad, p.grad, dtype, n)
            tc.zero_grad()
            ec.zero_grad()


# ---- module details -------------------------------------------------------------------------

def test_reprs_match_torch():
    cases = [("RNN", (4, 3), {"nonlinearity": "relu"}),
             ("LSTM", (4, 3, 2), dict(bias=False, batch_first=True, dropout=0.5,
                                      bidirectional=True, proj_size=2)),
             ("GRU", (4, 3), {}), ("RNNCell", (3, 4), dict(nonlinearity="relu", bias=False)),
             ("LSTMCell", (3, 4), {}), ("GRUCell", (3, 4), {"bias": False})]
    for name, args, kw in cases:
        assert repr(getattr(ember.nn, name)(*args, **kw)) == repr(
            getattr(torch.nn, name)(*args, **kw))


def test_parameter_names_shapes_and_all_weights():
    tm, em = build("LSTM", input_size=3, hidden_size=5, num_layers=2, bidirectional=True,
                   proj_size=2)
    for (n, p), (m, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert n == m and tuple(p.shape) == tuple(q.shape)
    assert [[tuple(w.shape) for w in ws] for ws in em.all_weights] == \
        [[tuple(w.shape) for w in ws] for ws in tm.all_weights]
    assert em.all_weights[1][0] is em.weight_ih_l0_reverse
    assert em._flat_weights_names == tm._flat_weights_names
    before = [p.detach().numpy().copy() for p in em.parameters()]
    assert em.flatten_parameters() is None
    assert all((a == p.detach().numpy()).all() for a, p in zip(before, em.parameters()))


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "GRUCell"])
def test_default_init_is_uniform_in_one_over_sqrt_hidden(name):
    m = getattr(ember.nn, name)(16, 64) if name.endswith("Cell") else \
        getattr(ember.nn, name)(16, 64, num_layers=2)
    bound = 1 / 8
    vals = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert np.abs(vals).max() <= bound
    assert abs(vals.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert abs(vals.mean()) < 0.02 * bound


def test_state_dict_round_trip_to_torch():
    em = ember.nn.GRU(3, 4, 2, bidirectional=True).double()
    tm = torch.nn.GRU(3, 4, 2, bidirectional=True).double()
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in
                        em.state_dict().items()})
    x = np.random.default_rng(7).standard_normal((T, B, 3))
    assert_close(flat(em(ember.from_numpy(x.copy()))), flat(tm(torch.from_numpy(x))))


# ---- dropout between layers ---------------------------------------------------------------

def test_dropout_one_matches_torch_and_eval_ignores_dropout():
    tm, em = build("LSTM", input_size=I, hidden_size=H, num_layers=2, dropout=1.0)
    x = np.random.default_rng(8).standard_normal((T, B, I))
    for train in (True, False):  # p = 1 zeroes the second layer's input: deterministic
        tm.train(train)
        em.train(train)
        assert_close(flat(em(ember.from_numpy(x.copy()))), flat(tm(torch.from_numpy(x))))


def test_dropout_between_layers_statistics_and_seed(monkeypatch):
    import ember.nn.modules.rnn as rnn_modules
    seen = []
    real = ember.nn.functional.dropout

    def spy(x, p, training=True, inplace=False):
        out = real(x, p, training, inplace)
        seen.append((x.detach().numpy(), out.detach().numpy(), p, training))
        return out
    monkeypatch.setattr(rnn_modules, "_dropout", spy)
    em = ember.nn.GRU(8, 64, num_layers=3, dropout=0.3).double()
    x = ember.from_numpy(np.random.default_rng(9).standard_normal((20, 16, 8)))
    ember.manual_seed(1)
    a = em(x)[0].detach().numpy()
    assert len(seen) == 2  # after layers 0 and 1, never after the last
    for inp, out, p, training in seen:
        assert p == 0.3 and training
        kept = out != 0
        assert abs(kept.mean() - 0.7) < 0.02
        np.testing.assert_allclose(out[kept], inp[kept] / 0.7)
    ember.manual_seed(1)
    assert (em(x)[0].detach().numpy() == a).all()
    ember.manual_seed(2)
    assert not np.allclose(em(x)[0].detach().numpy(), a)
    seen.clear()
    em.eval()
    e1 = em(x)[0].detach().numpy()
    assert not seen
    np.testing.assert_array_equal(em(x)[0].detach().numpy(), e1)


# ---- bad input ------------------------------------------------------------------------------

def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        ember.nn.LSTM(4, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        ember.nn.LSTM(4, 3, proj_size=-1)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        ember.nn.GRU(4, 3, proj_size=1)
    with pytest.raises(ValueError, match=r"Unknown nonlinearity 'sig'\. Select from 'tanh' "
                                         r"or 'relu'\."):
        ember.nn.RNN(4, 3, nonlinearity="sig")
    for p in (1.5, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\]"):
            ember.nn.GRU(4, 3, dropout=p)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1, "
                                         "but got dropout=0.5 and num_layers=1"):
        ember.nn.LSTM(4, 3, dropout=0.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        ember.nn.LSTM(4, 0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        ember.nn.LSTM(4, 3, 0)
    with pytest.raises(TypeError, match="input_size should be of type int, got: float"):
        ember.nn.LSTM(4.0, 3)
    cell = ember.nn.RNNCell(4, 3, nonlinearity="sig")
    with pytest.raises(RuntimeError, match="Unknown nonlinearity: sig"):
        cell(ember.randn(2, 4))


def test_bad_forward_arguments():
    m = ember.nn.LSTM(4, 20)
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. "
                                           r"Expected 4, got 5"):
        m(ember.randn(2, 3, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 3, 20\), got "
                                           r"\[1, 2, 20\]"):
        m(ember.randn(2, 3, 4), (ember.randn(1, 3, 20), ember.randn(1, 2, 20)))
    with pytest.raises(RuntimeError, match=r"For batched 3-D input, hx and cx should also be "
                                           r"3-D but got \(2-D, 3-D\) tensors"):
        m(ember.randn(2, 3, 4), (ember.randn(3, 20), ember.randn(1, 3, 20)))
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
        m(ember.randn(0, 3, 4))
    out, (h, c) = m(ember.randn(3, 0, 4))  # an empty batch is fine, as in torch
    assert tuple(out.shape) == (3, 0, 20) and tuple(h.shape) == tuple(c.shape) == (1, 0, 20)
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        m(ember.randn(2, 3, 4, 1))
    with pytest.raises(ValueError, match=r"RNN input dtype \(.*float64\) does not match weight "
                                         r"dtype \(.*float32\)"):
        m(ember.randn(2, 3, 4).double())
    r = ember.nn.RNN(4, 20)
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 3, 20\), got "
                                           r"\[1, 2, 20\]"):
        r(ember.randn(2, 3, 4), ember.randn(1, 2, 20))
    with pytest.raises(ValueError, match="RNN: Expected input to be 2D or 3D, got 1D tensor "
                                         "instead"):
        r(ember.randn(4))
    g = ember.nn.GRU(4, 20)
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx should also be 3-D but "
                                           "got 2-D tensor"):
        g(ember.randn(2, 3, 4), ember.randn(3, 20))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D but "
                                           "got 3-D tensor"):
        g(ember.randn(2, 4), ember.randn(1, 1, 20))
    packed = ernn.pack_sequence([ember.randn(3, 4), ember.randn(2, 4)])
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 2, 20\), got "
                                           r"\[1, 3, 20\]"):
        g(packed, ember.randn(1, 3, 20))


def test_bad_cell_arguments():
    with pytest.raises(RuntimeError, match="input has inconsistent input_size: got 5 expected 4"):
        ember.nn.GRUCell(4, 20)(ember.randn(3, 5))
    with pytest.raises(RuntimeError, match="Input batch size 3 doesn't match hidden0 batch "
                                           "size 2"):
        ember.nn.LSTMCell(4, 20)(ember.randn(3, 4), (ember.randn(2, 20), ember.randn(3, 20)))
    with pytest.raises(RuntimeError, match="Input batch size 3 doesn't match hidden1 batch "
                                           "size 2"):
        ember.nn.LSTMCell(4, 20)(ember.randn(3, 4), (ember.randn(3, 20), ember.randn(2, 20)))
    with pytest.raises(RuntimeError, match="hidden0 has inconsistent hidden_size: got 21, "
                                           "expected 20"):
        ember.nn.RNNCell(4, 20)(ember.randn(3, 4), ember.randn(3, 21))
    with pytest.raises(ValueError, match="RNNCell: Expected input to be 1D or 2D, got 3D "
                                         "instead"):
        ember.nn.RNNCell(4, 20)(ember.randn(3, 4, 1))
    with pytest.raises(ValueError, match=r"LSTMCell: Expected hx\[1\] to be 1D or 2D, got 3D "
                                         r"instead"):
        ember.nn.LSTMCell(4, 20)(ember.randn(3, 4), (ember.randn(3, 20), ember.randn(1, 3, 20)))
    with pytest.raises(ValueError, match="GRUCell: Expected hidden to be 1D or 2D, got 3D "
                                         "instead"):
        ember.nn.GRUCell(4, 20)(ember.randn(3, 4), ember.randn(1, 3, 20))


# ---- the bench workload computes torch's numbers --------------------------------------------

def test_lstm_lm_step_matches_torch():
    from bench import workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY, _as_array
    outs = {}
    for mod in (ember, torch):
        step, convert = REGISTRY["lstm_lm_step"].fn(mod)
        outs[mod] = [_as_array(step()) for _ in range(3)]
        assert convert(1.0) > 0
    for e, t in zip(outs[ember], outs[torch]):
        assert e.shape == t.shape
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-4 * np.abs(t).max())
    assert not np.allclose(outs[ember][0], outs[ember][1])  # the update moved the weights
