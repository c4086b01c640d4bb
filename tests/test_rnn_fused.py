"""The fused LSTM's step GEMM over ``[h | x | 1]`` (NOTE [ Fused recurrent layer ],
``_lstm_forward``): every subset of inputs that needs a gradient (the input product and the
weight GEMM are shared, so each part is checked alone), stale workspace blocks, random shapes
and packed lengths against PyTorch, and the bench's MNIST-RNN step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn
from hypothesis import given, settings, strategies as st

import ember
import ember.nn.utils.rnn as ernn
from ember.ops import _workspace as ws
from opcheck import assert_close
from test_rnn import build, both, flat

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

I, H, P, B, T = 3, 5, 2, 4, 6
LENGTHS = [5, 2, 6, 1]


def _run(tm, em, x, packed, needs, gs=None, seed=0, only_output=False):
    """Forward both modules, backward one random upstream (or ``gs``) into every output (or
    the output alone: no gradient reaches the final states), compare what needs a gradient;
    returns the upstream gradients."""
    xt, xe = both(x, "x" in needs)
    it, ie = xt, xe
    if packed:
        it = trnn.pack_padded_sequence(xt, LENGTHS, enforce_sorted=False)
        ie = ernn.pack_padded_sequence(xe, ember.tensor(LENGTHS), enforce_sorted=False)
    for mod in (tm, em):
        for name, p in mod.named_parameters():
            p.requires_grad_(name.split("_l")[0] in needs)
            p.grad = None
    ft, fe = flat(tm(it)), flat(em(ie))
    dtype = x.dtype.name
    assert_close(fe, ft, dtype, "forward")
    if only_output:
        ft, fe = ft[:1], fe[:1]
    rng = np.random.default_rng(seed)
    if gs is None:
        gs = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in ft]
    torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
    ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
    if "x" in needs:
        assert_close(xe.grad, xt.grad, dtype, "input grad")
    for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert (q.grad is None) == (p.grad is None), n
        if p.grad is not None:
            assert_close(q.grad, p.grad, dtype, f"grad of {n}")
    return gs


NEEDS = [{"x"}, {"weight_ih"}, {"weight_hh"}, {"bias_ih", "bias_hh"}, {"bias_hh"},
         {"weight_hr"}, {"x", "weight_hh"}, {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}]


@pytest.mark.parametrize("needs", NEEDS, ids=lambda s: "+".join(sorted(s)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lstm_gradients_of_each_part(needs, dtype):
    # x without requires_grad takes the step GEMM without the input columns
    tm, em = build("LSTM", dtype, input_size=I, hidden_size=H, num_layers=2, proj_size=P,
                   bidirectional=True)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)
    for packed in (False, True):
        _run(tm, em, x, packed, needs)


@pytest.fixture
def pool_everything(monkeypatch):
    """Every scratch array of the fused layers comes from the pool, however small."""
    monkeypatch.setattr(ws, "MIN_BYTES", 0)
    ws.clear()
    yield
    ws.clear()


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_stale_workspace_blocks(pool_everything, bias):
    # The backward writes each previous cell state's gradient instead of adding to a zeroed
    # array: a second call over blocks full of the first call's values must not see them.
    tm, em = build("LSTM", "float64", input_size=I, hidden_size=H, bias=bias,
                   bidirectional=True)
    x = np.random.default_rng(2).standard_normal((T, B, I))
    big = _run(tm, em, x, True, {"x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"})
    big = [g * 1e3 for g in big]
    _run(tm, em, x, True, {"x", "weight_hh"}, gs=big)
    _run(tm, em, x, True, {"x", "weight_ih"}, gs=big[:1], only_output=True)


@settings(max_examples=12, deadline=None)
@given(t=st.integers(1, 5), b=st.integers(1, 4), i=st.integers(1, 4), h=st.integers(1, 6),
       bidir=st.booleans(), packed=st.booleans(), batch_first=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_lstm_random_shapes_match_torch(t, b, i, h, bidir, packed, batch_first, seed):
    rng = np.random.default_rng(seed)
    tm, em = build("LSTM", "float64", input_size=i, hidden_size=h, bidirectional=bidir,
                   batch_first=batch_first)
    x = rng.standard_normal((b, t, i) if batch_first else (t, b, i))
    xt, xe = both(x)
    it, ie = xt, xe
    if packed:
        lengths = rng.integers(1, t + 1, b).tolist()
        it = trnn.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted=False)
        ie = ernn.pack_padded_sequence(xe, ember.tensor(lengths), batch_first,
                                       enforce_sorted=False)
    ft, fe = flat(tm(it)), flat(em(ie))
    assert_close(fe, ft, "float64", "forward")
    gs = [rng.standard_normal(tuple(o.shape)) for o in ft]
    torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
    ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
    assert_close(xe.grad, xt.grad, "float64", "input grad")
    for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert_close(q.grad, p.grad, "float64", f"grad of {n}")


@pytest.mark.parametrize("chunk", [1, 3, 8])
@pytest.mark.parametrize("proj", [0, P])
def test_lstm_gate_chunks_match_torch(monkeypatch, chunk, proj):
    # The forward keeps the gates of `chunk` steps at once; sequences longer than a chunk,
    # ending mid-chunk, packed in both directions
    from ember.ops import rnn
    monkeypatch.setattr(rnn, "_CHUNK", chunk)
    tm, em = build("LSTM", "float64", input_size=I, hidden_size=H, proj_size=proj,
                   bidirectional=True, num_layers=2)
    lengths = [11, 3, 10, 7, 1]
    x = np.random.default_rng(chunk).standard_normal((11, len(lengths), I))
    for packed in (False, True):
        xt, xe = both(x)
        it, ie = xt, xe
        if packed:
            it = trnn.pack_padded_sequence(xt, lengths, enforce_sorted=False)
            ie = ernn.pack_padded_sequence(xe, ember.tensor(lengths), enforce_sorted=False)
        ft, fe = flat(tm(it)), flat(em(ie))
        assert_close(fe, ft, "float64", "forward")
        gs = [np.random.default_rng(1).standard_normal(tuple(o.shape)) for o in ft]
        torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
        ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
        assert_close(xe.grad, xt.grad, "float64", "input grad")
        for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
            assert_close(q.grad, p.grad, "float64", f"grad of {n}")
            p.grad = q.grad = None


def test_lstm_output_is_contiguous():
    # The states live in a wider array beside the inputs; the output is PyTorch's dense layout
    out, _ = ember.nn.LSTM(I, H)(ember.randn(T, B, I))
    assert out.is_contiguous()
    assert out.view(T, -1).shape == (T, B * H)


def test_mnist_rnn_step_matches_torch():
    from bench import workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY, _as_array
    outs = {}
    for mod in (ember, torch):
        step, convert = REGISTRY["mnist_rnn_step"].fn(mod)
        outs[mod] = [_as_array(step()) for _ in range(3)]
        assert convert(1.0) > 0
    for e, t in zip(outs[ember], outs[torch]):
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-4 * np.abs(t).max())
    assert not np.allclose(outs[ember][0], outs[ember][1])  # the update moved the weights
