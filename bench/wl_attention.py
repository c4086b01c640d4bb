"""Benchmark workloads: attention family (registered when bench.workloads is imported)."""
from __future__ import annotations

import numpy as np

from .harness import workload
from .workloads import _rng, _leaf, _Snapshot

GPT = dict(vocab=65, d_model=128, nhead=4, ff=512, layers=2, seq=64, batch=16)


def _gpt_model(mod, rng):
    """A two-layer pre-norm GPT: token embedding + learned positions, causal encoder layers,
    a final LayerNorm and an LM head; weights from ``rng`` (identical for every backend)."""
    nn = mod.nn
    c = GPT

    class GPTModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(c["vocab"], c["d_model"])
            self.pos = nn.Embedding(c["seq"], c["d_model"])
            self.blocks = nn.ModuleList([
                nn.TransformerEncoderLayer(c["d_model"], c["nhead"], c["ff"], dropout=0.0,
                                           batch_first=True, norm_first=True)
                for _ in range(c["layers"])])
            self.norm = nn.LayerNorm(c["d_model"])
            self.head = nn.Linear(c["d_model"], c["vocab"])
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(
                c["seq"]), persistent=False)
            self.register_buffer("positions", mod.arange(c["seq"]), persistent=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(self.positions)
            for block in self.blocks:
                x = block(x, src_mask=self.mask, is_causal=True)
            return self.head(self.norm(x))

    model = GPTModel()
    state = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == \
                "norm.weight":
            arr = np.ones(shape, np.float32)
        elif len(shape) == 1:
            arr = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        else:
            arr = (rng.standard_normal(shape) * (1.0 / np.sqrt(shape[-1]))).astype(np.float32)
        state[name] = mod.from_numpy(arr)
    model.load_state_dict(state)
    return model


@workload("gpt_step", "ms/step")
def gpt_step(mod):
    """One training step of a GPT-style decoder: 2 ``TransformerEncoderLayer(128, 4, 512,
    dropout=0, batch_first, norm_first)`` with a causal mask (``is_causal``), token embedding +
    learned positions, vocab 65, sequence 64, batch 16, LM head, cross-entropy and
    ``optim.AdamW(lr=1e-3)``.  The step returns the loss followed by the updated parameters."""
    rng = _rng()
    model = _gpt_model(mod, rng)
    c = GPT
    data = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1))
    idx = _leaf(mod, data[:, :-1])
    target = _leaf(mod, data[:, 1:].reshape(-1))
    opt = mod.optim.AdamW(model.parameters(), lr=1e-3)
    F = mod.nn.functional
    params = tuple(model.parameters())

    def step():
        opt.zero_grad()
        logits = model(idx)
        loss = F.cross_entropy(logits.reshape(-1, c["vocab"]), target)
        loss.backward()
        opt.step()
        return _Snapshot(loss.detach().reshape(1), *params)

    return step, lambda s: s * 1e3
