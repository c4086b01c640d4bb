"""The fused GRU (``_gru_forward``/``_gru_backward``: factors kept per chunk of steps, gates
ordered n,z,r / z,r,n) and the Elman layer against PyTorch: every subset of inputs that needs a
gradient, chunk boundaries, stale workspace blocks, the no-grad path, random shapes with
packed lengths, h0's gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn
from hypothesis import given, settings, strategies as st

import ember
import ember.nn.utils.rnn as ernn
from ember.ops import rnn
from opcheck import assert_close
from test_rnn import build, both, flat
from test_rnn_fused import _run, pool_everything  # noqa: F401  (a fixture)

I, H, B, T = 3, 5, 4, 6

NEEDS = [{"x"}, {"weight_ih"}, {"weight_hh"}, {"bias_ih"}, {"bias_hh"}, {"x", "weight_hh"},
         {"x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"}]


@pytest.mark.parametrize("needs", NEEDS, ids=lambda s: "+".join(sorted(s)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["GRU", "RNN_TANH"])
def test_gradients_of_each_part(mode, needs, dtype):
    tm, em = build(mode, dtype, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)
    for packed in (False, True):
        _run(tm, em, x, packed, needs)


def _fwd_bwd(tm, em, x, lengths, packed, h0=None, batch_first=False, seed=1):
    """Forward (packed or not, with or without h0), backward a random upstream, compare."""
    xt, xe = both(x)
    it, ie = xt, xe
    if packed:
        it = trnn.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted=False)
        ie = ernn.pack_padded_sequence(xe, ember.tensor(lengths), batch_first,
                                       enforce_sorted=False)
    extra_t, extra_e = (), ()
    if h0 is not None:
        ht, he = both(h0)
        extra_t, extra_e = (ht,), (he,)
    ft, fe = flat(tm(it, *extra_t)), flat(em(ie, *extra_e))
    assert_close(fe, ft, "float64", "forward")
    gs = [np.random.default_rng(seed).standard_normal(tuple(o.shape)) for o in ft]
    torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
    ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
    assert_close(xe.grad, xt.grad, "float64", "input grad")
    if h0 is not None:
        assert_close(extra_e[0].grad, extra_t[0].grad, "float64", "h0 grad")
    for (n, p), (_, q) in zip(tm.named_parameters(), em.named_parameters()):
        assert_close(q.grad, p.grad, "float64", f"grad of {n}")
        p.grad = q.grad = None


@pytest.mark.parametrize("chunk", [1, 3, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_gru_factor_chunks_match_torch(monkeypatch, chunk, bias):
    # The forward stores the backward's factors every `chunk` steps: sequences longer than a
    # chunk, ending mid-chunk, packed (the batch shrinking forward, growing in reverse)
    monkeypatch.setattr(rnn, "_CHUNK", chunk)
    tm, em = build("GRU", "float64", input_size=I, hidden_size=H, bias=bias,
                   bidirectional=True, num_layers=2)
    lengths = [11, 3, 10, 7, 1]
    x = np.random.default_rng(chunk).standard_normal((11, len(lengths), I))
    h0 = np.random.default_rng(7).standard_normal((4, len(lengths), H))
    for packed in (False, True):
        _fwd_bwd(tm, em, x, lengths, packed, h0)


@pytest.mark.parametrize("mode", ["GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("bias", [True, False])
def test_stale_workspace_blocks(pool_everything, mode, bias):  # noqa: F811
    # Every scratch array is a reused block: a second call over blocks full of the first
    # call's (scaled) values must not see them
    tm, em = build(mode, "float64", input_size=I, hidden_size=H, bias=bias, bidirectional=True)
    x = np.random.default_rng(2).standard_normal((T, B, I))
    big = _run(tm, em, x, True, {"x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"})
    big = [g * 1e3 for g in big]
    _run(tm, em, x, True, {"x", "weight_hh"}, gs=big)
    _run(tm, em, x, True, {"x", "weight_ih"}, gs=big[:1], only_output=True)


@pytest.mark.parametrize("mode", ["GRU", "RNN_TANH"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_no_grad_forward_matches_torch(mode, dtype):
    # Without recording the forward keeps one step's buffers and no factors
    tm, em = build(mode, dtype, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = np.random.default_rng(3).standard_normal((11, 5, I)).astype(dtype)
    lengths = [11, 3, 10, 7, 1]
    for packed in (False, True):
        it, ie = torch.from_numpy(x.copy()), ember.from_numpy(x.copy())
        if packed:
            it = trnn.pack_padded_sequence(it, lengths, enforce_sorted=False)
            ie = ernn.pack_padded_sequence(ie, ember.tensor(lengths), enforce_sorted=False)
        with torch.no_grad():
            ft = flat(tm(it))
        with ember.no_grad():
            fe = flat(em(ie))
        assert_close(fe, ft, dtype, "forward")


@settings(max_examples=15, deadline=None)
@given(mode=st.sampled_from(["GRU", "RNN_TANH", "RNN_RELU"]), t=st.integers(1, 12),
       b=st.integers(1, 4), i=st.integers(1, 4), h=st.integers(1, 6),
       layers=st.integers(1, 2), bidir=st.booleans(), packed=st.booleans(),
       batch_first=st.booleans(), with_h0=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_random_shapes_match_torch(mode, t, b, i, h, layers, bidir, packed, batch_first,
                                   with_h0, seed):
    rng = np.random.default_rng(seed)
    tm, em = build(mode, "float64", input_size=i, hidden_size=h, num_layers=layers,
                   bidirectional=bidir, batch_first=batch_first)
    x = rng.standard_normal((b, t, i) if batch_first else (t, b, i))
    h0 = rng.standard_normal((layers * (2 if bidir else 1), b, h)) if with_h0 else None
    lengths = rng.integers(1, t + 1, b).tolist()
    _fwd_bwd(tm, em, x, lengths, packed, h0, batch_first, seed)


def test_gru_bidir_step_matches_torch():
    from bench import workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY, _as_array
    outs = {}
    for mod in (ember, torch):
        step, convert = REGISTRY["gru_bidir_step"].fn(mod)
        outs[mod] = [_as_array(step()) for _ in range(3)]
        assert convert(1.0) > 0
    for e, t in zip(outs[ember], outs[torch]):
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-4 * np.abs(t).max())
    assert not np.allclose(outs[ember][0], outs[ember][1])  # the update moved the weights
