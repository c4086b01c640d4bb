"""A small CNN (conv, BatchNorm, ReLU, max-pool, dropout-free head) trained with SGD momentum.

Written in the style of the MNIST example: an ``nn.Module`` with ``Conv2d``/``BatchNorm2d``/
``MaxPool2d``/``AdaptiveAvgPool2d`` layers and ``F.log_softmax`` + ``F.nll_loss``, a
``TensorDataset`` + ``DataLoader``, ``SGD`` with momentum and weight decay, ``model.eval()``
(BatchNorm switches to its running statistics). The 12x12 images are stripes drawn with
NumPy (horizontal = class 0, vertical = class 1, diagonal = class 2, plus noise), and the
starting weights come from NumPy, so every framework starts equal. Prints one JSON line.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def stripes(n, rng):
    yy, xx = np.mgrid[0:12, 0:12]
    patterns = [np.sin(yy * 1.3), np.sin(xx * 1.3), np.sin((xx + yy) * 0.9)]
    labels = rng.integers(0, 3, size=n)
    images = np.stack([patterns[c] for c in labels]) + rng.normal(0, 0.5, size=(n, 12, 12))
    return images[:, None].astype(np.float32), labels


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(self.pool(x), 1)
        return F.log_softmax(self.fc(x), dim=1)


def main():
    rng = np.random.default_rng(0)
    x, y = stripes(96, rng)
    xt, yt = stripes(48, rng)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16)
    model = Net()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bn" in name:
                continue  # BatchNorm keeps its (1, 0) start
            fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else 1
            scale = 0.0 if name.endswith("bias") else 1.0 / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    losses = []
    for epoch in range(3):
        model.train()
        for data, target in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())

    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(xt))
        test_loss = F.nll_loss(out, torch.from_numpy(yt), reduction="sum").item() / len(yt)
        correct = out.argmax(dim=1).eq(torch.from_numpy(yt)).sum().item()
    print(json.dumps({"losses": losses, "test_loss": test_loss, "correct": correct,
                      "bn1_running_mean": model.bn1.running_mean.tolist(),
                      "bn2_running_var_sum": model.bn2.running_var.sum().item(),
                      "num_batches_tracked": model.bn1.num_batches_tracked.item()}))


if __name__ == "__main__":
    main()
