"""Fit y = sin(3x) + noise with a two-layer network (an ``nn.Module``) and hand-written SGD.

Ordinary PyTorch code: ``import ember as torch`` and ``import ember.nn as nn`` are the only
differences, and swapping in the real ``torch`` runs it unchanged.  The network is
``fc1 -> tanh -> fc2`` (``nn.Linear`` layers), the loss is ``nn.MSELoss``, and the update is
SGD with momentum written by hand under ``no_grad`` over ``model.parameters()``.

    python examples/regression.py [--steps N] [--every K]
"""
from __future__ import annotations

import argparse
import time

import ember as torch
import ember.nn as nn


class TwoLayerNet(nn.Module):
    """``y = W2 tanh(W1 x + b1) + b2``."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    ap.add_argument("--every", type=int, default=200, help="print the loss every K steps")
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 256).reshape(256, 1)
    y = torch.sin(3 * x) + 0.05 * torch.randn(256, 1)

    model = TwoLayerNet(in_dim=1, hidden_dim=32, out_dim=1)
    loss_fn = nn.MSELoss()
    lr, momentum = 0.1, 0.9
    velocity = [torch.zeros_like(p) for p in model.parameters()]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{model}\n{n_params} parameters; SGD lr {lr} momentum {momentum}")

    start = time.perf_counter()
    initial = None
    for step in range(args.steps):
        loss = loss_fn(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p, v in zip(model.parameters(), velocity):
                v.mul_(momentum).add_(p.grad)  # v = momentum * v + grad
                p.sub_(lr * v)
        model.zero_grad()
        if initial is None:
            initial = loss.item()
        if step % args.every == 0:
            print(f"step {step:5d}  loss {loss.item():.5f}")

    model.eval()
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
    print(f"final loss {final:.5f} after {args.steps} steps (initial loss {initial:.5f}, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
