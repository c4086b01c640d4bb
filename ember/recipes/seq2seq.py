"""seq2seq: a GRU encoder-decoder with attention that learns to reverse digit strings.

Topic 29 (sequence-to-sequence models and attention). The task is generated: a source of
3 to 10 random digits, the target the same digits reversed, then an end token. The encoder
is an embedding and a GRU; the decoder a GRU cell that, at each output step, scores every
encoder state against its own state (Luong's "general" score s_j = h^T W e_j, padding masked
to -inf), takes the softmax-weighted context c = sum_j a_j e_j, feeds it back with the next
input token (input feeding) and predicts the next token from [h; c]. Training uses teacher
forcing and cross-entropy that ignores padding.

Decoding: greedy (the most likely token at each step) and beam search (keep the k best
partial outputs by summed log-probability; a hypothesis that ended carries on unchanged),
both batched. The metric is exact match: the whole output string right. Reversal needs the
decoder to read the source backwards, so its attention map is an anti-diagonal: the figure
``attention.png`` shows it for three test strings. The last line is
``final beam_exact_match <value>``.

Run: ``ember train seq2seq`` or ``python ember/recipes/seq2seq.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Writes ``last.pt`` (model and optimizer state dicts, in PyTorch's
format), ``curves.png`` and ``attention.png`` to ``--out``.
"""
import math
import os
import sys
import time

import numpy as np

import ember as torch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "seq2seq"
DEFAULTS = dict(epochs=12, lr=3e-3, batch_size=64)
SMOKE_BATCHES = 3
PAD, SOS, EOS = 0, 1, 2  # then the digits 0..9 as tokens 3..12
VOCAB = 13
MIN_LEN, MAX_LEN = 3, 10
N_TRAIN, N_TEST = 8000, 1000
BEAM = 4


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


def make_data(n, rng):
    """``n`` random digit strings (padded, tokens 3..12) and their reversals + EOS."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    src = np.full((n, MAX_LEN), PAD)
    tgt = np.full((n, MAX_LEN + 1), PAD)
    for i, length in enumerate(lengths):
        s = rng.integers(3, VOCAB, length)
        src[i, :length] = s
        tgt[i, :length] = s[::-1]
        tgt[i, length] = EOS
    return torch.tensor(src), torch.tensor(tgt)


class Seq2Seq(nn.Module):
    """GRU encoder; GRU-cell decoder with Luong attention and input feeding."""

    def __init__(self, vocab=VOCAB, emb=32, hidden=96):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=PAD)
        self.encoder = nn.GRU(emb, hidden, batch_first=True)
        self.cell = nn.GRUCell(emb + hidden, hidden)
        self.score = nn.Linear(hidden, hidden, bias=False)  # s_j = h^T W e_j
        self.out = nn.Linear(2 * hidden, vocab)

    def encode(self, src):
        """Encoder states (B, T, H), the padding mask, and the state after the last token."""
        mask = src != PAD
        enc, _ = self.encoder(self.embed(src))
        # padding sits at the end, so the state after the last real token is the summary
        h = enc[torch.arange(len(src)), mask.sum(1) - 1]
        return enc, mask, h

    def step(self, tok, h, ctx, enc, mask):
        """One decoder step: next-token logits, new state, new context, attention (B, T)."""
        h = self.cell(torch.cat([self.embed(tok), ctx], 1), h)
        scores = (enc @ self.score(h).unsqueeze(2)).squeeze(2)
        attn = scores.masked_fill(~mask, float("-inf")).softmax(1)
        ctx = (attn.unsqueeze(1) @ enc).squeeze(1)
        return self.out(torch.cat([h, ctx], 1)), h, ctx, attn

    def forward(self, src, tgt_in):
        """Teacher-forced logits (B, L, V) for the decoder inputs ``tgt_in`` (B, L)."""
        enc, mask, h = self.encode(src)
        ctx = torch.zeros_like(h)
        logits = []
        for t in range(tgt_in.shape[1]):
            out, h, ctx, _ = self.step(tgt_in[:, t], h, ctx, enc, mask)
            logits.append(out)
        return torch.stack(logits, 1)


def shift_right(tgt):
    """Decoder inputs: SOS followed by the target without its last position."""
    return torch.cat([torch.full((len(tgt), 1), SOS, dtype=tgt.dtype), tgt[:, :-1]], 1)


@torch.no_grad()
def greedy(model, src):
    """Greedy decoding: outputs (B, MAX_LEN + 1) and attention (B, MAX_LEN + 1, T)."""
    enc, mask, h = model.encode(src)
    ctx = torch.zeros_like(h)
    tok = torch.full((len(src),), SOS, dtype=torch.long)
    outs, attns = [], []
    for _ in range(MAX_LEN + 1):
        logits, h, ctx, attn = model.step(tok, h, ctx, enc, mask)
        tok = logits.argmax(1)
        outs.append(tok)
        attns.append(attn)
    return torch.stack(outs, 1), torch.stack(attns, 1)


@torch.no_grad()
def beam_search(model, src, k=BEAM):
    """Beam search of width ``k`` for every source at once; the best output (B, L) of each."""
    b = len(src)
    enc, mask, h = model.encode(src)
    # each source's k hypotheses are k consecutive rows
    enc, mask, h = (t.repeat_interleave(k, 0) for t in (enc, mask, h))
    ctx = torch.zeros_like(h)
    tok = torch.full((b * k,), SOS, dtype=torch.long)
    # all k beams start equal: only the first is live, so the first step picks k distinct tokens
    scores = torch.full((b, k), float("-inf"))
    scores[:, 0] = 0.0
    finished = torch.zeros(b * k, dtype=torch.bool)
    seqs = torch.zeros(b * k, 0, dtype=torch.long)
    # an ended hypothesis may only append PAD, at no cost, so its score stays fixed
    ended_row = torch.full((VOCAB,), float("-inf"))
    ended_row[PAD] = 0.0
    for _ in range(MAX_LEN + 1):
        logits, h, ctx, _ = model.step(tok, h, ctx, enc, mask)
        logp = torch.where(finished.unsqueeze(1), ended_row, logits.log_softmax(1))
        total = (scores.reshape(-1, 1) + logp).reshape(b, k * VOCAB)
        scores, idx = total.topk(k, dim=1)
        rows = (torch.arange(b).unsqueeze(1) * k + idx // VOCAB).reshape(-1)
        tok = (idx % VOCAB).reshape(-1)
        h, ctx, finished = h[rows], ctx[rows], finished[rows]
        seqs = torch.cat([seqs[rows], tok.unsqueeze(1)], 1)
        finished = finished | (tok == EOS)
        if bool(finished.all()):
            break
    return seqs.reshape(b, k, -1)[:, 0]  # topk sorts, so beam 0 is the best


def strip(seq):
    """Tokens before the first EOS (a list)."""
    seq = seq.tolist()
    return seq[:seq.index(EOS)] if EOS in seq else seq


def exact_match(pred, tgt):
    """Share of rows whose output before EOS equals the target's (EOS missing = wrong)."""
    ok = [strip(p) == strip(t) and EOS in p.tolist() for p, t in zip(pred, tgt)]
    return sum(ok) / len(ok)


def save_curves(path, history):
    """Training loss and held-out exact match (greedy) per epoch."""
    import matplotlib.pyplot as plt
    ep = range(1, len(history["loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, history["loss"], label="train (teacher forcing)")
    a.plot(ep, history["test_loss"], label="test (teacher forcing)")
    a.set(xlabel="epoch", ylabel="cross-entropy per token", title="loss", yscale="log")
    a.legend()
    b.plot(ep, history["test_exact"], label="greedy")
    b.set(xlabel="epoch", ylabel="exact match", title="test strings reversed exactly",
          ylim=(0, 1.02))
    b.legend()
    save_figure(fig, path)


def save_attention(path, src, pred, attn):
    """Attention of the decoder (rows: output steps) over the source (columns)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(src), figsize=(4 * len(src), 4))
    for ax, s, p, a in zip(axes, src, pred, attn):
        s = [t - 3 for t in s.tolist() if t != PAD]
        p = strip(p)
        out = [str(t - 3) for t in p] + ["<eos>"]
        ax.imshow(a[:len(out), :len(s)], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(s)), [str(t) for t in s])
        ax.set_yticks(range(len(out)), out)
        ax.set(xlabel="source", ylabel="output")
    fig.suptitle("attention weights while reversing (greedy decoding)")
    save_figure(fig, path, dpi=80)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plots = pyplot() is not None
    rng = np.random.default_rng(args.seed)
    src_train, tgt_train = make_data(N_TRAIN, rng)
    src_test, tgt_test = make_data(64 if args.smoke else N_TEST, rng)
    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epochs = 1 if args.smoke else args.epochs
    # cosine decay to 0: at a constant rate the exact-match score keeps jumping by a few points
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, epochs * math.ceil(N_TRAIN / args.batch_size))
    print(f"{NAME}: {sum(p.numel() for p in model.parameters()):,} parameters, reverse "
          f"{MIN_LEN}-{MAX_LEN} digit strings, {N_TRAIN} train / {len(src_test)} test, "
          f"{epochs} epochs")
    history = {"loss": [], "test_loss": [], "test_exact": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        order = torch.randperm(N_TRAIN)
        total, n = 0.0, 0
        for i, lo in enumerate(range(0, N_TRAIN, args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            idx = order[lo:lo + args.batch_size]
            src, tgt = src_train[idx], tgt_train[idx]
            logits = model(src, shift_right(tgt))
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # RNNs: keep one bad batch small
            opt.step()
            sched.step()
            total += loss.item()
            n += 1
        model.eval()
        with torch.no_grad():
            logits = model(src_test, shift_right(tgt_test))
            test_loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt_test.reshape(-1),
                                        ignore_index=PAD).item()
        pred, _ = greedy(model, src_test)
        exact = exact_match(pred, tgt_test)
        history["loss"].append(total / n)
        history["test_loss"].append(test_loss)
        history["test_exact"].append(exact)
        print(f"epoch {epoch:3d}/{epochs}  loss {total / n:.4f}  test loss {test_loss:.4f}  "
              f"greedy exact match {exact:7.2%}  {time.time() - t0:.1f}s", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "epoch": epoch, "args": vars(args)},
                   os.path.join(args.out, "last.pt"))
    pred_greedy, attn = greedy(model, src_test)
    pred_beam = beam_search(model, src_test)
    greedy_exact, beam_exact = exact_match(pred_greedy, tgt_test), exact_match(pred_beam, tgt_test)
    print(f"test exact match: greedy {greedy_exact:.2%}, beam (k={BEAM}) {beam_exact:.2%}")
    for s, p in zip(src_test[:3], pred_beam[:3]):
        print(f"  {''.join(str(t - 3) for t in s.tolist() if t != PAD)} -> "
              f"{''.join(str(t - 3) for t in strip(p) if t > EOS)}")
    if plots:
        save_curves(os.path.join(args.out, "curves.png"), history)
        save_attention(os.path.join(args.out, "attention.png"), src_test[:3], pred_greedy[:3],
                       attn[:3].numpy())
    print(f"saved {args.out}/last.pt, curves.png, attention.png; {time.time() - start:.1f}s")
    print(f"final beam_exact_match {beam_exact:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
