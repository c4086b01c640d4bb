"""char-gpt: a small character-level GPT trained on Tiny Shakespeare, sampling text at the end.

Topics 11 and 27 (self-attention, transformers). A decoder-only transformer: token and learned
position embeddings, pre-norm blocks of causal multi-head self-attention
(softmax(Q K^T / sqrt(d)) V with the future masked to -inf) and a GELU MLP, each with a residual
connection, a final LayerNorm and a linear head onto the characters. It is trained with AdamW,
a cosine learning-rate schedule and gradient clipping to predict each next character of random
windows of the text; one epoch is a fixed number of steps.

Data: the first 300 KB of Tiny Shakespeare (``data/tinyshakespeare.txt`` beside this file),
taken from Andrej Karpathy's char-rnn repository (github.com/karpathy/char-rnn,
data/tinyshakespeare/input.txt): passages of Shakespeare's plays, which are in the public
domain. The last 10% is held out for validation.

Run: ``ember train char-gpt`` or ``python ember/recipes/char_gpt.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Writes ``last.pt`` (state dicts and the vocabulary, in PyTorch's
format), ``curves.png``, ``attention.png`` (each head's attention over a line of text) and
``sample.txt`` to ``--out``; the last line printed is ``final val_loss <nats per char>``.
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

NAME = "char-gpt"
TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tinyshakespeare.txt")
DEFAULTS = dict(epochs=30, lr=3e-3, batch_size=32)
BLOCK, EMBD, HEADS, LAYERS = 64, 64, 4, 2
STEPS_PER_EPOCH, EVAL_BATCHES = 50, 8
SMOKE_STEPS = 3


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS,
                       epochs_help=f"epochs of {STEPS_PER_EPOCH} steps each")


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t sees only positions <= t."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(EMBD, 3 * EMBD)
        self.proj = nn.Linear(EMBD, EMBD)
        self.register_buffer("mask", torch.tril(torch.ones(BLOCK, BLOCK)).bool())
        self.weights = None  # the last attention weights, kept for the figure

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(EMBD, dim=2)
        # (B, T, C) -> (B, heads, T, head size): the heads attend independently
        q, k, v = (t.view(B, T, HEADS, C // HEADS).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // HEADS)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        self.weights = att.detach()
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x)): pre-norm keeps the residual path clean."""

    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(EMBD)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(EMBD)
        self.mlp = nn.Sequential(nn.Linear(EMBD, 4 * EMBD), nn.GELU(), nn.Linear(4 * EMBD, EMBD))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Embeddings, LAYERS blocks, a final LayerNorm and the head onto the vocabulary."""

    def __init__(self, vocab):
        super().__init__()
        self.tok = nn.Embedding(vocab, EMBD)
        self.pos = nn.Embedding(BLOCK, EMBD)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(EMBD)
        self.head = nn.Linear(EMBD, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))

    @torch.no_grad()
    def generate(self, idx, n, temperature=0.8):
        """Append n characters, each drawn from softmax(logits / temperature)."""
        for _ in range(n):
            logits = self(idx[:, -BLOCK:])[:, -1] / temperature
            idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1)], dim=1)
        return idx


def batch(data, rng, size):
    """``size`` random windows of BLOCK characters and the same windows shifted by one."""
    starts = rng.integers(0, len(data) - BLOCK - 1, size)
    rows = starts[:, None] + np.arange(BLOCK)
    return torch.tensor(data[rows]), torch.tensor(data[rows + 1])


def save_curves(path, history):
    """Train and validation loss per epoch (matplotlib, if installed)."""
    plt = pyplot()
    if plt is None:
        return False
    ep = range(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ep, history["loss"], label="train")
    ax.plot(ep, history["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="cross-entropy (nats/char)", title=NAME)
    ax.legend()
    save_figure(fig, path)
    return True


def save_attention(path, weights, chars):
    """Each head's attention weights (last layer) over one line of text."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, HEADS, figsize=(4 * HEADS, 4.4))
    for h, ax in enumerate(axes):
        ax.imshow(weights[h], cmap="viridis")
        ax.set_xticks(range(len(chars)), chars, fontsize=6)
        ax.set_yticks(range(len(chars)), chars, fontsize=6)
        ax.set_title(f"head {h}")
    fig.suptitle("last layer's attention: row = query position, column = key it reads")
    save_figure(fig, path)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    vocab = sorted(set(text))
    stoi = {c: i for i, c in enumerate(vocab)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    # the same validation windows every epoch, so the curve measures the model, not the draw
    val_batches = [batch(val, np.random.default_rng(1000 + i), args.batch_size)
                   for i in range(1 if args.smoke else EVAL_BATCHES)]

    model = GPT(len(vocab))
    epochs = 1 if args.smoke else args.epochs
    steps = SMOKE_STEPS if args.smoke else STEPS_PER_EPOCH
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{NAME}: {n_params:,} parameters, {len(vocab)} characters, {len(train):,} train / "
          f"{len(val):,} validation characters, {epochs} epochs of {steps} steps")
    history = {"loss": [], "val_loss": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        total = 0.0
        for _ in range(steps):
            x, y = batch(train, rng, args.batch_size)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
                           for x, y in val_batches) / len(val_batches)
        history["loss"].append(total / steps)
        history["val_loss"].append(val_loss)
        print(f"epoch {epoch:3d}/{epochs}  loss {total / steps:.4f}  val loss {val_loss:.4f} "
              f"({val_loss / math.log(2):.3f} bits/char)  lr {sched.get_last_lr()[0]:.2e}  "
              f"{time.time() - t0:.1f}s", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "epoch": epoch, "vocab": "".join(vocab),
                    "args": vars(args)}, os.path.join(args.out, "last.pt"))

    prompt = torch.tensor([[stoi["\n"]]])
    sample = "".join(vocab[i] for i in model.generate(prompt, 60 if args.smoke else 400)[0])
    with open(os.path.join(args.out, "sample.txt"), "w", encoding="utf-8") as f:
        f.write(sample)
    print("sample:", sample, sep="\n")
    if save_curves(os.path.join(args.out, "curves.png"), history):
        line = "ROMEO:\nBut soft, what light through yonder window"
        with torch.no_grad():
            model(torch.tensor([[stoi[c] for c in line]]))
        save_attention(os.path.join(args.out, "attention.png"),
                       model.blocks[-1].attn.weights[0].numpy(), line.replace("\n", "⏎"))
    print(f"saved {args.out}/last.pt, curves.png, attention.png, sample.txt; "
          f"{time.time() - start:.1f}s")
    print(f"final val_loss {history['val_loss'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
