"""Benchmark workloads: rnn family (registered when bench.workloads is imported)."""
from __future__ import annotations

import numpy as np

from .harness import workload
from .workloads import _rng, _leaf, _Snapshot

LM_VOCAB, LM_EMBED, LM_HIDDEN, LM_SEQ, LM_BATCH = 65, 64, 128, 64, 32


def _lm_model(mod, rng):
    """Embedding(65, 64) -> LSTM(64, 128) -> Linear(128, 65) holding weights from ``rng``."""
    nn = mod.nn
    model = nn.ModuleDict({"emb": nn.Embedding(LM_VOCAB, LM_EMBED),
                           "lstm": nn.LSTM(LM_EMBED, LM_HIDDEN),
                           "head": nn.Linear(LM_HIDDEN, LM_VOCAB)})
    bound = 1 / LM_HIDDEN ** 0.5
    with mod.no_grad():
        for name, p in model.named_parameters():  # torch's order; the same in ember
            if name == "emb.weight":
                arr = rng.standard_normal(tuple(p.shape), dtype=np.float32)
            else:
                arr = rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)
            p.copy_(_leaf(mod, arr))
    return model


@workload("lstm_lm_step", "ms/step")
def lstm_lm_step(mod):
    """One Adam training step of an LSTM language model (vocab 65, embed 64, hidden 128, one
    layer, float32): a (64, 32) batch of tokens, cross-entropy of next-token logits over all
    positions; ``zero_grad()``, forward, ``backward()``, ``step()``.  The step returns the loss
    and the updated parameters."""
    rng = _rng()
    model = _lm_model(mod, rng)
    tokens = rng.integers(0, LM_VOCAB, (LM_SEQ + 1, LM_BATCH))
    x = mod.from_numpy(tokens[:-1].copy())
    y = mod.from_numpy(tokens[1:].reshape(-1).copy())
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    F = mod.nn.functional
    params = tuple(model.parameters())
    emb, lstm, head = model["emb"], model["lstm"], model["head"]

    def step():
        opt.zero_grad()
        out, _ = lstm(emb(x))
        loss = F.cross_entropy(head(out).reshape(-1, LM_VOCAB), y)
        loss.backward()
        opt.step()
        return _Snapshot(loss, *params)

    return step, lambda s: s * 1e3


MN_BATCH, MN_SIDE, MN_HIDDEN = 64, 28, 64


@workload("mnist_rnn_step", "ms/step")
def mnist_rnn_step(mod):
    """One Adadelta training step of pytorch/examples' MNIST-RNN model (float32): a (64, 28, 28)
    batch read row by row by ``nn.LSTM(28, 64, batch_first=True)``, its last output through
    ``BatchNorm1d(64)``, ``Linear(64, 32)``, ReLU, ``Linear(32, 10)``, ``log_softmax`` and
    ``nll_loss``.  The example's two dropouts are left out, so that both frameworks compute
    the same numbers (their random streams differ).  The step returns the loss and the
    updated parameters."""
    rng = _rng()
    nn, F = mod.nn, mod.nn.functional
    model = nn.ModuleDict({"rnn": nn.LSTM(MN_SIDE, MN_HIDDEN, batch_first=True),
                           "bn": nn.BatchNorm1d(MN_HIDDEN), "fc1": nn.Linear(MN_HIDDEN, 32),
                           "fc2": nn.Linear(32, 10)})
    with mod.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("bn."):
                bound = 1 / p.shape[-1] ** 0.5
                p.copy_(_leaf(mod, rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)))
    x = _leaf(mod, rng.random((MN_BATCH, MN_SIDE, MN_SIDE), dtype=np.float32))
    y = mod.from_numpy(rng.integers(0, 10, MN_BATCH))
    opt = mod.optim.Adadelta(model.parameters(), lr=0.1)
    params = tuple(model.parameters())
    rnn, bn, fc1, fc2 = model["rnn"], model["bn"], model["fc1"], model["fc2"]

    def step():
        opt.zero_grad()
        out, _ = rnn(x)
        out = fc2(F.relu(fc1(bn(out[:, -1, :]))))
        loss = F.nll_loss(F.log_softmax(out, dim=1), y)
        loss.backward()
        opt.step()
        return _Snapshot(loss, *params)

    return step, lambda s: s * 1e3


GRU_IN, GRU_HIDDEN, GRU_SEQ, GRU_BATCH = 64, 128, 64, 32


@workload("gru_bidir_step", "ms/step")
def gru_bidir_step(mod):
    """One SGD step of a two-layer bidirectional ``nn.GRU(64, 128)`` (float32) on a (64, 32,
    64) sequence: the loss is the mean square of the output plus that of ``h_n``; ``zero_grad()``,
    forward, ``backward()``, ``step()``.  The step returns the loss and the updated
    parameters."""
    rng = _rng()
    gru = mod.nn.GRU(GRU_IN, GRU_HIDDEN, num_layers=2, bidirectional=True)
    bound = 1 / GRU_HIDDEN ** 0.5
    with mod.no_grad():
        for p in gru.parameters():  # torch's order; the same in ember
            p.copy_(_leaf(mod, rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)))
    x = _leaf(mod, rng.standard_normal((GRU_SEQ, GRU_BATCH, GRU_IN), dtype=np.float32))
    opt = mod.optim.SGD(gru.parameters(), lr=0.1)
    params = tuple(gru.parameters())

    def step():
        opt.zero_grad()
        out, h = gru(x)
        loss = (out * out).mean() + (h * h).mean()
        loss.backward()
        opt.step()
        return _Snapshot(loss, *params)

    return step, lambda s: s * 1e3
