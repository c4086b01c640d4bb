"""A small MLP classifier trained with a DataLoader, Adam and StepLR.

Written as ordinary PyTorch code in the style of the basic examples: a ``Dataset`` subclass,
``DataLoader`` batches, ``nn.Sequential``, ``CrossEntropyLoss``, ``Adam`` with a ``StepLR``
schedule, ``model.eval()`` and ``torch.no_grad()`` for the held-out accuracy. The data and
the starting weights come from NumPy with a fixed seed, so every framework starts equal; the
loader does not shuffle (shuffling would draw from the framework's own generator). Prints
one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn as nn
from torch.optim import Adam
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset


class Blobs(Dataset):
    """Three Gaussian blobs in 8 dimensions."""

    def __init__(self, n, centers, rng):
        self.y = rng.integers(0, 3, size=n)
        self.x = (centers[self.y] + rng.normal(size=(n, 8))).astype(np.float32)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), int(self.y[i])


def init_from_numpy(model, rng):
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.0 if name.endswith("bias") else 1.0 / np.sqrt(p.shape[-1])
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, tuple(p.shape)).astype(np.float32)))


def main():
    rng = np.random.default_rng(0)
    centers = rng.normal(0.0, 1.5, size=(3, 8))
    train = Blobs(256, centers, rng)
    test = Blobs(64, centers, rng)
    loader = DataLoader(train, batch_size=32, shuffle=False)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 3))
    init_from_numpy(model, rng)
    criterion = nn.CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=1e-2)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)

    losses = []
    for epoch in range(5):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * xb.shape[0]
        scheduler.step()
        losses.append(total / len(train))

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x))
        pred = logits.argmax(dim=1)
        acc = (pred == torch.from_numpy(test.y)).float().mean().item()
    print(json.dumps({"epoch_losses": losses, "test_accuracy": acc,
                      "lr": scheduler.get_last_lr()[0],
                      "logit_sum": logits.sum().item(),
                      "weight_norm": sum(p.norm().item() for p in model.parameters())}))


if __name__ == "__main__":
    main()
