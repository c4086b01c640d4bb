"""Fit y = sin(3x) + noise with a two-layer network (an ``nn.Module``), SGD and a schedule.

Ordinary PyTorch code: ``import ember as torch`` and ``import ember.nn as nn`` are the only
differences, and swapping in the real ``torch`` runs it unchanged.  The network is
``fc1 -> tanh -> fc2`` (``nn.Linear`` layers), the loss is ``nn.MSELoss``, the optimizer is
``torch.optim.SGD`` with momentum and the learning rate follows
``torch.optim.lr_scheduler.CosineAnnealingLR`` (``optimizer.step()``, then
``scheduler.step()``, PyTorch's order).

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
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    # the rate falls from 0.1 to 0 along half a cosine over the run
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{model}\n{n_params} parameters; {optimizer.__class__.__name__} lr 0.1 momentum 0.9, "
          f"{scheduler.__class__.__name__} T_max={args.steps}")

    start = time.perf_counter()
    initial = None
    for step in range(args.steps):
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if initial is None:
            initial = loss.item()
        if step % args.every == 0:
            print(f"step {step:5d}  loss {loss.item():.5f}  lr {lr:.5f}")

    model.eval()
    with torch.no_grad():
        final = loss_fn(model(x), y).item()
    print(f"final loss {final:.5f} after {args.steps} steps (initial loss {initial:.5f}, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
