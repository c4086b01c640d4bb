"""A character-level LSTM language model, in the style of the word_language_model example.

An ``nn.Embedding`` -> two-layer ``nn.LSTM`` (dropout between layers, off here so both
frameworks draw nothing) -> ``nn.Linear`` decoder, trained with truncated backpropagation
through time: the hidden state is carried across batches and ``detach``ed, the gradient is
clipped with ``clip_grad_norm_``, ``Adam`` steps, and a ``StepLR`` halves the rate. The corpus
is a fixed string, the weights come from NumPy with a fixed seed, so every framework starts
equal. Ends with the held-out loss, perplexity, and a few greedily generated characters.
Prints one JSON line of numbers for the runner to compare.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import clip_grad_norm_
from torch.optim.lr_scheduler import StepLR

RTOL = 1e-3  # float32 through 14 steps of a recurrent network

TEXT = ("the quick brown fox jumps over the lazy dog. " * 6
        + "a stitch in time saves nine; many hands make light work. " * 4)


class CharLSTM(nn.Module):
    def __init__(self, vocab, emb=16, hidden=32, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, dropout=0.0)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)  # (seq, batch, hidden)
        return self.decoder(out), state


def init_from_numpy(model, rng):
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.0 if name == "decoder.bias" else 0.3
            p.copy_(torch.from_numpy(rng.uniform(-scale, scale, tuple(p.shape))
                                     .astype(np.float32)))


def batchify(ids, batch):
    """(steps, batch) columns of the id stream, as the example's ``batchify``."""
    n = ids.size(0) // batch
    return ids[:n * batch].view(batch, n).t().contiguous()


def detach(state):
    return tuple(s.detach() for s in state)


def main():
    rng = np.random.default_rng(0)
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([stoi[c] for c in TEXT], dtype=torch.long)
    split = int(0.85 * len(ids))
    train, val = batchify(ids[:split], 4), batchify(ids[split:], 2)
    model = CharLSTM(len(chars))
    init_from_numpy(model, rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    scheduler = StepLR(optimizer, step_size=4, gamma=0.5)
    bptt = 16

    losses, norms = [], []
    model.train()
    state = None
    steps = 0
    for epoch in range(2):
        for i in range(0, train.size(0) - 1, bptt):
            if steps == 16:
                break
            seq = min(bptt, train.size(0) - 1 - i)
            x, y = train[i:i + seq], train[i + 1:i + 1 + seq]
            if state is not None:
                state = detach(state)
            optimizer.zero_grad()
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.view(-1, len(chars)), y.reshape(-1))
            loss.backward()
            norms.append(float(clip_grad_norm_(model.parameters(), max_norm=0.25)))
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            steps += 1

    model.eval()
    with torch.no_grad():
        logits, _ = model(val[:-1])
        val_loss = F.cross_entropy(logits.view(-1, len(chars)), val[1:].reshape(-1)).item()
        # greedy generation from "the "
        x = torch.tensor([[stoi[c]] for c in "the "], dtype=torch.long)
        out, state = model(x)
        generated = []
        nxt = out[-1].argmax(dim=-1, keepdim=True)
        for _ in range(8):
            generated.append(int(nxt.item()))
            out, state = model(nxt, state)
            nxt = out[-1].argmax(dim=-1, keepdim=True)
    print(json.dumps({"losses": losses, "grad_norms": norms, "val_loss": val_loss,
                      "val_perplexity": math.exp(val_loss), "lr": scheduler.get_last_lr()[0],
                      "generated": generated,
                      "weight_sum": sum(p.sum().item() for p in model.parameters())}))


if __name__ == "__main__":
    main()
