"""char-lstm: a character-level LSTM language model on Tiny Shakespeare, with its gates drawn.

Topic 10 (LSTMs and why they remember). An embedding, one ``nn.LSTM`` layer and a linear head
predict each next character of random windows of the text. The cell state c_t = f_t * c_{t-1}
+ i_t * g_t is a running sum the forget gate f_t scales, so the gradient through it is not
squashed at every step as in a plain RNN. After training the recipe replays one line through
the layer's own weights (gates i, f, g, o = chunks of W_ih x + W_hh h + b, PyTorch's order) to
draw the forget and input gates and the cell state, and samples text carrying (h, c).

Data: the first 300 KB of Tiny Shakespeare (``data/tinyshakespeare.txt`` beside this file),
taken from Andrej Karpathy's char-rnn repository (github.com/karpathy/char-rnn,
data/tinyshakespeare/input.txt): passages of Shakespeare's plays, which are in the public
domain. The last 10% is held out for validation.

Run: ``ember train char-lstm`` or ``python ember/recipes/char_lstm.py`` (``--smoke`` for a
few batches). The only framework line is ``import ember as torch``: swap it for ``import torch``
and the file runs on PyTorch. Writes ``last.pt`` (state dicts and the vocabulary, in
PyTorch's format), ``curves.png``, ``gates.png`` and ``sample.txt`` to ``--out``; the last
line printed is ``final val_loss <nats per char>``.
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

NAME = "char-lstm"
TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tinyshakespeare.txt")
DEFAULTS = dict(epochs=15, lr=4e-3, batch_size=32)
BLOCK, EMBD, HIDDEN = 64, 32, 192
STEPS_PER_EPOCH, EVAL_BATCHES = 50, 8
SMOKE_STEPS = 3


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS,
                       epochs_help=f"epochs of {STEPS_PER_EPOCH} steps each")


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> linear head onto the vocabulary."""

    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, EMBD)
        self.lstm = nn.LSTM(EMBD, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, vocab)

    def forward(self, idx, state=None):
        out, state = self.lstm(self.embed(idx), state)
        return self.head(out), state

    @torch.no_grad()
    def generate(self, idx, n, temperature=0.8):
        """Append n characters, each drawn from softmax(logits / temperature), carrying (h, c)."""
        logits, state = self(idx)
        out = [idx]
        for _ in range(n):
            nxt = torch.multinomial((logits[:, -1] / temperature).softmax(-1), 1)
            out.append(nxt)
            logits, state = self(nxt, state)
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def gates(self, idx):
        """The forget gate, input gate and cell state at each step of one sequence (T, HIDDEN)."""
        x = self.embed(idx[0])
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        b = self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0
        h, c = torch.zeros(HIDDEN), torch.zeros(HIDDEN)
        fs, ins, cs = [], [], []
        for t in range(len(x)):
            i, f, g, o = (w_ih @ x[t] + w_hh @ h + b).chunk(4)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
            fs.append(f)
            ins.append(i)
            cs.append(c)
        return torch.stack(fs), torch.stack(ins), torch.stack(cs)


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


def save_gates(path, forget, inp, cell, chars, units=32):
    """Forget gate, input gate and cell state of the first units over one line of text."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(12, 8))
    for ax, arr, title, cmap in ((axes[0], forget, "forget gate f_t", "viridis"),
                                 (axes[1], inp, "input gate i_t", "viridis"),
                                 (axes[2], cell, "cell state c_t", "RdBu")):
        im = ax.imshow(arr[:, :units].T, aspect="auto", cmap=cmap)
        ax.set_xticks(range(len(chars)), chars, fontsize=7)
        ax.set_ylabel("unit")
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
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

    model = CharLSTM(len(vocab))
    epochs = 1 if args.smoke else args.epochs
    steps = SMOKE_STEPS if args.smoke else STEPS_PER_EPOCH
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
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
            loss = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten()).item()
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
        forget, inp, cell = model.gates(torch.tensor([[stoi[c] for c in line]]))
        save_gates(os.path.join(args.out, "gates.png"), forget.numpy(), inp.numpy(),
                   cell.numpy(), line.replace("\n", "|"))
    print(f"saved {args.out}/last.pt, curves.png, gates.png, sample.txt; "
          f"{time.time() - start:.1f}s")
    print(f"final val_loss {history['val_loss'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
