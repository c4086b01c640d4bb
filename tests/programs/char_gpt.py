"""A character-level GPT (token + position embeddings, causal self-attention, AdamW).

Written in the style of the well-known minimal GPT scripts: a ``Head`` with a registered
lower-triangular ``tril`` buffer and ``masked_fill(-inf)``, multi-head attention by
concatenation, pre-norm ``Block``s with a GELU MLP, a bigram-style ``generate`` loop (greedy
here, so both frameworks pick the same characters). Batches are drawn with NumPy's
generator and the starting weights come from NumPy, so every framework starts equal.
Prints one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

TEXT = ("first citizen: before we proceed any further, hear me speak. all: speak, speak. "
        "first citizen: you are all resolved rather to die than to famish? all: resolved. "
        "resolved. first citizen: first, you know caius marcius is chief enemy to the people.")
BLOCK, EMBD, HEADS, LAYERS = 16, 32, 4, 2


class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(EMBD, head_size, bias=False)
        self.query = nn.Linear(EMBD, head_size, bias=False)
        self.value = nn.Linear(EMBD, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(BLOCK, BLOCK)))

    def forward(self, x):
        B, T, C = x.shape
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(wei, dim=-1)
        return wei @ self.value(x)


class MultiHeadAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList([Head(EMBD // HEADS) for _ in range(HEADS)])
        self.proj = nn.Linear(EMBD, EMBD)

    def forward(self, x):
        return self.proj(torch.cat([h(x) for h in self.heads], dim=-1))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.sa = MultiHeadAttention()
        self.ffwd = nn.Sequential(nn.Linear(EMBD, 4 * EMBD), nn.GELU(), nn.Linear(4 * EMBD, EMBD))
        self.ln1 = nn.LayerNorm(EMBD)
        self.ln2 = nn.LayerNorm(EMBD)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, EMBD)
        self.position_embedding_table = nn.Embedding(BLOCK, EMBD)
        self.blocks = nn.Sequential(*[Block() for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(EMBD)
        self.lm_head = nn.Linear(EMBD, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok = self.token_embedding_table(idx)
        pos = self.position_embedding_table(torch.arange(T))
        logits = self.lm_head(self.ln_f(self.blocks(tok + pos)))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -BLOCK:])
            idx_next = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def main():
    rng = np.random.default_rng(0)
    chars = sorted(set(TEXT))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in TEXT], dtype=torch.long)

    model = GPT(len(chars))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "ln" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.from_numpy(rng.normal(0.0, 0.1, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

    losses = []
    for step in range(12):
        ix = rng.integers(0, len(data) - BLOCK - 1, size=8)
        xb = torch.stack([data[i:i + BLOCK] for i in ix])
        yb = torch.stack([data[i + 1:i + BLOCK + 1] for i in ix])
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    start = torch.tensor([[stoi["f"]]], dtype=torch.long)
    out = model.generate(start, 12)[0].tolist()
    logits, _ = model(data[:BLOCK].unsqueeze(0))
    print(json.dumps({"losses": losses, "generated": "".join(chars[i] for i in out),
                      "final_logits_mean": logits.mean().item(),
                      "final_logits_std": logits.std().item(),
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
