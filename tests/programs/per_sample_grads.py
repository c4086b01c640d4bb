"""Per-sample gradients of a small MLP with torch.func (vmap + grad + functional_call).

Written as ordinary PyTorch code, after PyTorch's per-sample-gradient tutorial: the
model's parameters are pulled out as a dict, a loss for ONE sample is written with
``functional_call``, and ``vmap(grad(loss), in_dims=(None, None, 0, 0))`` gives every
sample's gradient at once. It checks the per-sample gradients against a loop of ordinary
``backward()`` calls and prints one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


class MLP(nn.Module):
    def __init__(self, n_in=6, n_hidden=16, n_out=4):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def main():
    rng = np.random.default_rng(0)
    model = MLP()
    with torch.no_grad():  # starting weights from NumPy, so every framework starts equal
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.4, tuple(p.shape)).astype(np.float32)))
    data = torch.from_numpy(rng.normal(size=(8, 6)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(0, 4, size=8))

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def compute_loss(params, buffers, sample, target):
        batch = sample.unsqueeze(0)
        predictions = functional_call(model, (params, buffers), (batch,))
        return F.cross_entropy(predictions, target.unsqueeze(0))

    per_sample = vmap(grad(compute_loss), in_dims=(None, None, 0, 0))(
        params, buffers, data, targets)

    # the same gradients one sample at a time with ordinary autograd
    worst = 0.0
    for i in range(data.shape[0]):
        model.zero_grad()
        F.cross_entropy(model(data[i:i + 1]), targets[i:i + 1]).backward()
        for name, p in model.named_parameters():
            worst = max(worst, (per_sample[name][i] - p.grad).abs().max().item())
    assert worst < 1e-5, worst

    norms = torch.stack([torch.cat([g[i].reshape(-1) for g in per_sample.values()]).norm()
                         for i in range(data.shape[0])])
    print(json.dumps({
        "grad_norms": [round(float(v), 5) for v in norms],
        "mean_fc1_weight_grad_sum": round(float(per_sample["fc1.weight"].mean(0).sum()), 5),
        "shapes": {k: list(v.shape) for k, v in per_sample.items()},
    }))


if __name__ == "__main__":
    main()
