"""Device-agnostic training with a ``GradScaler``: the pattern most PyTorch scripts follow.

Ordinary PyTorch code: ``import ember as torch`` and ``import ember.nn as nn`` are the only
differences, and swapping in the real ``torch`` runs it unchanged with the same numbers (the
data and the initial weights come from NumPy, so both libraries start from the same values).
It picks ``device = "cuda" if torch.cuda.is_available() else "cpu"``, moves the model and
each batch there, and trains an MLP with AdamW, the forward under
``torch.autocast(device_type=device, dtype=torch.bfloat16)`` and the update under
``torch.amp.GradScaler(device)``: ``scaler.scale(loss).backward()``,
``scaler.unscale_(optimizer)`` before ``clip_grad_norm_``, ``scaler.step(optimizer)``,
``scaler.update()``.

One training label is missing (NaN): the batch holding it has a NaN loss and NaN gradients,
and the scaler skips that step and halves the scale instead of wrecking
the weights; ``growth_interval`` clean steps later the scale doubles again.  (bfloat16 has
float32's range, so nothing else overflows here; with ``dtype=torch.float16`` the scaler is
what keeps small gradients from underflowing.)

    python examples/amp_device_agnostic.py [--epochs N] [--every K]
"""
from __future__ import annotations

import argparse

import numpy as np

import ember as torch
import ember.nn as nn

N, D, HIDDEN, BATCH = 512, 8, 32, 64
CORRUPT = 37  # index of the missing label, in the first batch of every epoch


def make_data(rng: np.random.Generator):
    """``y = sin(x @ w) + noise`` on 512 points in 8 dimensions, with one label missing."""
    x = rng.normal(size=(N, D)).astype(np.float32)
    w = rng.normal(size=(D, 1)).astype(np.float32) / np.sqrt(D)
    y = (np.sin(x @ w) + 0.05 * rng.normal(size=(N, 1))).astype(np.float32)
    y[CORRUPT] = np.nan
    return torch.from_numpy(x), torch.from_numpy(y)


def make_model(rng: np.random.Generator) -> nn.Module:
    model = nn.Sequential(nn.Linear(D, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, 1))
    with torch.no_grad():  # NumPy's weights, so PyTorch and ember start from the same ones
        for p in model.parameters():
            scale = 1.0 / np.sqrt(p.shape[-1])
            p.copy_(torch.from_numpy(rng.uniform(-scale, scale, tuple(p.shape))
                                     .astype(np.float32)))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    ap.add_argument("--every", type=int, default=10, help="print every K epochs")
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device {device}, {torch.cuda.device_count()} cuda device(s)")

    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    model = make_model(rng).to(device)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    scaler = torch.amp.GradScaler(device, init_scale=2.0**16, growth_interval=5)

    skipped = steps = 0
    for epoch in range(args.epochs):
        losses = []
        for start in range(0, N, BATCH):
            xb, yb = x[start:start + BATCH].to(device), y[start:start + BATCH].to(device)
            optimizer.zero_grad()
            # forward and loss in mixed precision: the Linear layers run in bfloat16, the
            # MSE loss in float32; backward (outside the region) follows the forward's dtypes
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                loss = loss_fn(model(xb), yb)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            scale = scaler.get_scale()
            scaler.step(optimizer)  # skipped when a gradient is inf/NaN
            scaler.update()
            steps += 1
            if scaler.get_scale() < scale:  # the scale backs off only after a skipped step
                skipped += 1
            else:
                losses.append(loss.item())
        if epoch % args.every == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch:3d}  loss {np.mean(losses):.6f}  scale {scaler.get_scale():g}"
                  f"  skipped {skipped}/{steps}")

    clean = np.arange(N) != CORRUPT
    model.eval()
    with torch.no_grad():
        pred = model(x.to(device)).cpu().numpy()
    final = float(np.mean((pred[clean] - y.numpy()[clean]) ** 2))
    print(f"final loss {final:.6f} on the known labels; skipped {skipped} of {steps} steps; "
          f"scaler state {scaler.state_dict()}")


if __name__ == "__main__":
    main()
