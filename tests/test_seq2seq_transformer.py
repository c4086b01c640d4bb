"""A small ``nn.Transformer`` with sinusoidal positions learns to reverse digit sequences."""
import contextlib
import time

import numpy as np

import ember
import ember.nn as nn

LEN, DIGITS, BOS = 8, 10, 10


class Reverser(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.src_emb = nn.Embedding(DIGITS, d)
        self.tgt_emb = nn.Embedding(DIGITS + 1, d)  # digits and the start token
        self.pos = nn.SinusoidalPositionalEncoding(d, max_len=32, batch_first=True)
        self.transformer = nn.Transformer(d, nhead=4, num_encoder_layers=2,
                                          num_decoder_layers=2, dim_feedforward=128,
                                          dropout=0.0, batch_first=True, norm_first=True)
        self.out = nn.Linear(d, DIGITS)
        self.scale = 1.0  # nn.Embedding's N(0, 1) rows are already on the encoding's scale

    def forward(self, src, tgt_in):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
        h = self.transformer(self.pos(self.src_emb(src) * self.scale),
                             self.pos(self.tgt_emb(tgt_in) * self.scale), tgt_mask=mask,
                             tgt_is_causal=True)
        return self.out(h)

    @ember.no_grad()
    def greedy(self, src):
        memory = self.transformer.encoder(self.pos(self.src_emb(src) * self.scale))
        ys = ember.full((src.shape[0], 1), BOS, dtype=ember.int64)
        for _ in range(LEN):
            mask = nn.Transformer.generate_square_subsequent_mask(ys.shape[1])
            h = self.transformer.decoder(self.pos(self.tgt_emb(ys) * self.scale), memory,
                                         tgt_mask=mask)
            nxt = self.out(h[:, -1]).argmax(-1, keepdim=True)
            ys = ember.cat([ys, nxt], 1)
        return ys[:, 1:]


def batch(rng, n):
    src = rng.integers(0, DIGITS, (n, LEN))
    tgt = src[:, ::-1].copy()
    tgt_in = np.concatenate([np.full((n, 1), BOS), tgt[:, :-1]], 1)
    return (ember.from_numpy(src), ember.from_numpy(tgt_in), ember.from_numpy(tgt))


def _one_blas_thread():
    """One BLAS thread: on a shared, loaded machine two spinning threads per GEMM of these tiny
    matrices cost ~10x (measured 217 vs 25 ms a step)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


STEPS = 200


def test_transformer_learns_to_reverse_digits():
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Reverser()
    opt = ember.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    sched = ember.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=STEPS,
                                                pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    with _one_blas_thread():
        for _ in range(STEPS):
            src, tgt_in, tgt = batch(rng, 64)
            loss = loss_fn(model(src, tgt_in).reshape(-1, DIGITS), tgt.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        src, _, tgt = batch(np.random.default_rng(1), 256)  # unseen sequences
        acc = (model.greedy(src) == tgt).float().mean().item()
    elapsed = time.perf_counter() - t0
    print(f"reverse: token accuracy {acc:.4f} after {STEPS} steps, {elapsed:.1f} s")
    assert acc >= 0.95
    assert loss.item() < 0.05
    assert elapsed < 60
