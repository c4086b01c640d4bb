"""The LSTM step loops with their BLAS calls into preallocated buffers (``rnn._STEP_OUT``)
against the old loops on the same inputs and against PyTorch: outputs, h_n/c_n and the
gradients of the input, weights, biases, h0 and c0; bidirectional, two layers, proj_size,
packed (sorted and unsorted lengths: the reverse direction's growing batch takes the old
path for its index-array steps), batch_first, float32 and float64."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn

import ember
import ember.nn.utils.rnn as ernn
from ember.ops import rnn
from opcheck import assert_close
from test_rnn import both, build, flat

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

I, H, P, B, T = 3, 5, 2, 4, 11  # T > rnn._CHUNK: the forward's gates span two chunks
LENGTHS = [11, 3, 10, 1]


def _run(tm, em, x, packed, batch_first, h0c0, gs_seed=1):
    """Forward torch and ember, backward one random upstream into every output; returns the
    outputs and the gradients (input, h0, c0, then each parameter's) as arrays."""
    dtype = x.dtype.name
    xt, xe = both(x)
    it, ie = xt, xe
    if packed:
        lengths = LENGTHS if packed == "unsorted" else sorted(LENGTHS, reverse=True)
        es = packed == "sorted"
        it = trnn.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted=es)
        ie = ernn.pack_padded_sequence(xe, ember.tensor(lengths), batch_first,
                                       enforce_sorted=es)
    leaves_t, leaves_e = [xt], [xe]
    args_t, args_e = [it], [ie]
    if h0c0 is not None:
        (ht, he), (ct, ce) = both(h0c0[0]), both(h0c0[1])
        args_t.append((ht, ct))
        args_e.append((he, ce))
        leaves_t += [ht, ct]
        leaves_e += [he, ce]
    for mod in (tm, em):
        for p in mod.parameters():
            p.grad = None
    ft, fe = flat(tm(*args_t)), flat(em(*args_e))
    rng = np.random.default_rng(gs_seed)
    gs = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in ft]
    torch.autograd.backward(ft, [torch.from_numpy(g) for g in gs])
    ember.autograd.backward(fe, [ember.from_numpy(g.copy()) for g in gs])
    got_t = [t.detach().numpy() for t in ft] + [t.grad.numpy() for t in leaves_t]
    got_e = [t.detach().numpy() for t in fe] + [t.grad.numpy() for t in leaves_e]
    got_t += [p.grad.numpy() for p in tm.parameters()]
    got_e += [p.grad.numpy() for p in em.parameters()]
    return got_t, got_e


GRID = list(itertools.product((False, True), (1, 2), (0, P), (None, "sorted", "unsorted"),
                              (False, True), (False, True)))


def lstm_case(rng, dtype, bidir, layers, proj, batch_first, with_h0):
    """A torch/ember LSTM pair with the same weights, an input and (h0, c0) or None."""
    tm, em = build("LSTM", dtype, input_size=I, hidden_size=H, num_layers=layers,
                   bidirectional=bidir, batch_first=batch_first, proj_size=proj)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    d = 2 if bidir else 1
    h0c0 = None
    if with_h0:
        h0c0 = (rng.standard_normal((layers * d, B, proj or H)).astype(dtype),
                rng.standard_normal((layers * d, B, H)).astype(dtype))
    return tm, em, x, h0c0


@pytest.mark.parametrize("bidir,layers,proj,packed,batch_first,with_h0", GRID)
def test_step_out_matches_old_loops_and_torch(monkeypatch, bidir, layers, proj, packed,
                                              batch_first, with_h0):
    rng = np.random.default_rng(layers * 7 + proj)
    for dtype in ("float64", "float32"):
        tm, em, x, h0c0 = lstm_case(rng, dtype, bidir, layers, proj, batch_first, with_h0)
        runs = {}
        for flag in (False, True):
            monkeypatch.setattr(rnn, "_STEP_OUT", flag)
            runs[flag] = _run(tm, em, x, packed, batch_first, h0c0)
        (ref, old), (_, new) = runs[False], runs[True]  # torch ran the same case twice
        assert len(new) == len(old) == len(ref)
        for k, (a, b, r) in enumerate(zip(new, old, ref)):
            # the same numbers as the old loops up to the order of a four-term sum
            assert_close(ember.from_numpy(a), torch.from_numpy(b), dtype, f"new vs old {k}")
            assert_close(ember.from_numpy(a), torch.from_numpy(r), dtype, f"vs torch {k}")


def test_step_out_buffers_are_written_by_blas(monkeypatch):
    # The switch changes which calls run, not only their spelling: the backward's per-gate
    # products go through one preallocated buffer (matmul's out=), no fresh product per step
    calls = []
    real = np.matmul

    class Spy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def matmul(a, b, out=None):
            calls.append(out is not None)
            return real(a, b, out=out) if out is not None else real(a, b)

    steps, hp_all, fin = rnn._plan(np, (B,) * T, False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T * B, I))
    w_ih, w_hh = rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, H))
    b_ih, b_hh = rng.standard_normal(4 * H), rng.standard_normal(4 * H)
    h0, c0 = np.zeros((B, H)), np.zeros((B, H))
    outs, keep = rnn._lstm_forward(np, x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, steps, hp_all,
                                   fin, True)
    arrs = [x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, outs[0]] + list(keep)
    dy = rng.standard_normal((T * B, H))
    res = {}
    for flag in (False, True):
        monkeypatch.setattr(rnn, "_STEP_OUT", flag)
        calls.clear()
        res[flag] = rnn._lstm_backward(Spy(), (True,) * 7 + (False,), arrs, dy,
                                       np.zeros((B, H)), None, steps, hp_all, fin)
        res[flag] = (res[flag], list(calls))
    (old, old_calls), (new, new_calls) = res[False], res[True]
    assert new_calls.count(True) == T and old_calls.count(True) == 0
    for a, b in zip(new, old):
        if a is not None:
            np.testing.assert_allclose(a._data, b._data, rtol=1e-12, atol=1e-12)
