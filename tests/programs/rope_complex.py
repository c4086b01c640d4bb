"""Llama-style rotary position embeddings with complex numbers, in a tiny attention model.

Written as ordinary PyTorch code after the Llama reference implementation: the rotation
frequencies are precomputed as unit complex numbers with ``torch.polar``, queries and keys
are viewed as complex pairs with ``view_as_complex``, rotated by a complex multiply and
turned back with ``view_as_real``. A two-layer causal decoder (RMSNorm, multi-head attention
with RoPE, a SwiGLU feed-forward) takes one AdamW step on a toy next-token task; the JSON
line holds the losses, gradient norms and a few rotated values for the runner to compare.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)  # complex64


def reshape_for_broadcast(freqs_cis, x):
    ndim = x.ndim
    assert freqs_cis.shape == (x.shape[1], x.shape[-1])
    shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
    return freqs_cis.view(*shape)


def apply_rotary_emb(xq, xk, freqs_cis):
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs_cis = reshape_for_broadcast(freqs_cis, xq_)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Attention(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = self.wk(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xv = self.wv(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)
        xq, xk, xv = xq.transpose(1, 2), xk.transpose(1, 2), xv.transpose(1, 2)
        scores = torch.matmul(xq, xk.transpose(2, 3)) / math.sqrt(self.head_dim)
        scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        out = torch.matmul(scores, xv).transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.wo(out)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.attention = Attention(dim, n_heads)
        self.feed_forward = FeedForward(dim, 4 * dim)
        self.attention_norm = RMSNorm(dim)
        self.ffn_norm = RMSNorm(dim)

    def forward(self, x, freqs_cis, mask):
        h = x + self.attention(self.attention_norm(x), freqs_cis, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, vocab=17, dim=32, n_layers=2, n_heads=4, max_seq=16):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(Block(dim, n_heads) for _ in range(n_layers))
        self.norm = RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.freqs_cis = precompute_freqs_cis(dim // n_heads, max_seq * 2)

    def forward(self, tokens):
        _, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[:seqlen]
        mask = torch.full((seqlen, seqlen), float("-inf"))
        mask = torch.triu(mask, diagonal=1)
        for layer in self.layers:
            h = layer(h, freqs_cis, mask)
        return self.output(self.norm(h)).float()


def main():
    rng = np.random.default_rng(0)
    model = Transformer()
    with torch.no_grad():  # starting weights from NumPy, so every framework starts equal
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                continue
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.2, tuple(p.shape)).astype(np.float32)))
    tokens = torch.from_numpy(rng.integers(0, 17, size=(3, 12)))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    # the rotation itself: a unit complex multiply keeps norms and only depends on position
    q = torch.from_numpy(rng.normal(size=(1, 6, 2, 8)).astype(np.float32))
    rq, _ = apply_rotary_emb(q, q, model.freqs_cis[:6])
    norm_kept = float((rq.norm(dim=-1) - q.norm(dim=-1)).abs().max())

    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    losses = []
    grad_norms = {}
    for step in range(2):
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grad_norms = {n: round(float(p.grad.norm()), 6)
                          for n, p in model.named_parameters() if "layers.0" in n}
        opt.step()
        losses.append(round(loss.item(), 6))
    with torch.no_grad():
        final = float(F.cross_entropy(model(inputs).reshape(-1, 17), targets.reshape(-1)))

    print(json.dumps({
        "freqs_cis_dtype": str(model.freqs_cis.dtype).split(".")[-1],
        "freqs_cis_sample": [round(float(v), 6) for v in
                             torch.view_as_real(model.freqs_cis[3, :2]).reshape(-1)],
        "rotated_sample": [round(float(v), 6) for v in rq[0, 2, 1, :4]],
        "norm_kept": norm_kept < 1e-5,
        "losses": losses,
        "final_loss": round(final, 6),
        "grad_norms": grad_norms,
    }))


if __name__ == "__main__":
    main()
