"""Fit y = sin(3x) + noise with a two-layer tanh network built from ember ops.

Ordinary PyTorch code: ``import ember as torch`` is the only difference.  The
network is two weight matrices and two bias vectors (leaf tensors), the loss is
the mean squared error, and the update is SGD with momentum written by hand
under ``no_grad``.

    python examples/regression.py [--steps N] [--every K]
"""
from __future__ import annotations

import argparse
import time

import ember as torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    ap.add_argument("--every", type=int, default=200, help="print the loss every K steps")
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 256).reshape(256, 1)
    y = torch.sin(3 * x) + 0.05 * torch.randn(256, 1)

    hidden, lr, momentum = 32, 0.05, 0.9
    w1 = torch.randn(1, hidden).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = (torch.randn(hidden, 1) / hidden ** 0.5).requires_grad_()
    b2 = torch.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    velocity = [torch.zeros_like(p) for p in params]

    def loss_fn():
        pred = torch.tanh(x @ w1 + b1) @ w2 + b2
        err = pred - y
        return (err * err).mean()

    start = time.perf_counter()
    initial = None
    for step in range(args.steps):
        loss = loss_fn()
        loss.backward()
        with torch.no_grad():
            for p, v in zip(params, velocity):
                v.mul_(momentum).add_(p.grad)  # v = momentum * v + grad
                p -= lr * v
                p.grad = None
        if initial is None:
            initial = loss.item()
        if step % args.every == 0:
            print(f"step {step:5d}  loss {loss.item():.5f}")

    with torch.no_grad():
        final = loss_fn().item()
    print(f"final loss {final:.5f} after {args.steps} steps (initial loss {initial:.5f}, "
          f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
