"""A GRU encoder-decoder learns to reverse digit sequences (teacher forcing in training, greedy
decoding at test), end to end on ember: Embedding, GRU (packed encoder input), Linear,
cross-entropy and Adam."""
from __future__ import annotations

import contextlib
import ctypes
import time

import numpy as np

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember.nn.utils.rnn import pack_padded_sequence

DIGITS, SOS, EMBED, HIDDEN = 10, 10, 32, 128
MIN_LEN, MAX_LEN = 5, 8


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(DIGITS, EMBED)
        self.encoder = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.tgt_emb = nn.Embedding(DIGITS + 1, EMBED)
        self.decoder = nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, DIGITS)

    def encode(self, src, lengths):
        """Final encoder state of each (right-padded) source sequence of ``lengths``."""
        packed = pack_padded_sequence(self.src_emb(src), lengths, batch_first=True,
                                      enforce_sorted=False)
        return self.encoder(packed)[1]

    def forward(self, src, lengths, tgt_in):
        """Teacher forcing: logits for every target position given the true previous ones."""
        out, _ = self.decoder(self.tgt_emb(tgt_in), self.encode(src, lengths))
        return self.out(out)

    def greedy(self, src, lengths, steps):
        h = self.encode(src, lengths)
        tok = ember.full((src.shape[0], 1), SOS, dtype=ember.int64)
        preds = []
        for _ in range(steps):
            out, h = self.decoder(self.tgt_emb(tok), h)
            tok = self.out(out).argmax(-1)
            preds.append(tok)
        return ember.cat(preds, 1)


def batch(rng, n):
    """Right-padded sources of random lengths, their reversals and the lengths."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    src = np.zeros((n, MAX_LEN), np.int64)
    tgt = np.zeros((n, MAX_LEN), np.int64)
    mask = np.zeros((n, MAX_LEN), bool)
    for b, k in enumerate(lengths):
        seq = rng.integers(0, DIGITS, k)
        src[b, :k] = seq
        tgt[b, :k] = seq[::-1]
        mask[b, :k] = True
    return src, tgt, mask, lengths


@contextlib.contextmanager
def one_blas_thread():
    """NumPy's OpenBLAS on one thread: on a loaded 2-core machine its threads make the small
    GEMMs of this model ~50x slower (4 ms instead of 80 us each).  A no-op where the library
    or its symbols cannot be found."""
    lib = get = put = None
    try:
        path = next(line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line)
        lib = ctypes.CDLL(path)
        for suffix in ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads"):
            if hasattr(lib, suffix.format("set")):
                get = getattr(lib, suffix.format("get"))
                put = getattr(lib, suffix.format("set"))
                break
    except (OSError, StopIteration):
        pass
    if put is None:
        yield
        return
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


def test_gru_seq2seq_learns_to_reverse_digits():
    with one_blas_thread():
        train_and_check()


def train_and_check():
    start = time.perf_counter()
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Seq2Seq()
    steps = 800
    opt = ember.optim.Adam(model.parameters(), lr=5e-3)
    # a linear decay to zero: the last steps polish the greedy (exposure) accuracy
    sched = ember.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
    for _ in range(steps):
        src, tgt, mask, lengths = batch(rng, 64)
        tgt_in = np.concatenate([np.full((64, 1), SOS), tgt[:, :-1]], 1)
        logits = model(ember.from_numpy(src), ember.from_numpy(lengths),
                       ember.from_numpy(tgt_in))
        flat_mask = ember.from_numpy(mask.reshape(-1))
        # padded positions are ignored (-100, cross_entropy's default ignore_index)
        target = ember.where(flat_mask, ember.from_numpy(tgt.reshape(-1)),
                             ember.full((mask.size,), -100, dtype=ember.int64))
        loss = F.cross_entropy(logits.reshape(-1, DIGITS), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with ember.no_grad():
        src, tgt, mask, lengths = batch(np.random.default_rng(1), 1000)
        pred = model.greedy(ember.from_numpy(src), ember.from_numpy(lengths), MAX_LEN).numpy()
    acc = (pred == tgt)[mask].mean()
    elapsed = time.perf_counter() - start
    assert acc >= 0.95, (acc, float(loss))  # 0.987 with this seed
    assert elapsed < 60, elapsed
