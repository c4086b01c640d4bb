"""Hogwild training: two processes update one shared model, after PyTorch's mnist_hogwild.

Written as ordinary PyTorch code: ``model.share_memory()``, then ``torch.multiprocessing``
starts the workers, each with its own SGD optimizer over the shared parameters and its own
data. To make the result deterministic (the runner compares it between frameworks), the
workers take turns step by step through a shared counter and a condition variable; every
update still goes through the shared memory, so the parent sees both workers' steps.
Prints one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

STEPS = 8
N_PROCS = 2


def make_data(rank):
    rng = np.random.default_rng(100 + rank)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    w = np.arange(1.0, 7.0, dtype=np.float32).reshape(6, 1) / 6
    return torch.from_numpy(x), torch.from_numpy(x @ w + 0.5)


def train(rank, model, turn, cond):
    torch.set_num_threads(1)
    x, y = make_data(rank)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    for step in range(STEPS):
        with cond:
            cond.wait_for(lambda: turn.value == rank)
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
            turn.value = (rank + 1) % N_PROCS
            cond.notify_all()


def total_loss(model):
    with torch.no_grad():
        return sum(F.mse_loss(model(x), y).item() for x, y in map(make_data, range(N_PROCS)))


def main():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.4, tuple(p.shape)).astype(np.float32)))
    model.share_memory()
    before = total_loss(model)
    ctx = mp.get_context("spawn")
    turn, cond = ctx.Value("i", 0), ctx.Condition()
    mp.spawn(train, args=(model, turn, cond), nprocs=N_PROCS, join=True)
    after = total_loss(model)
    print(json.dumps({
        "shapes": [list(p.shape) for p in model.parameters()],
        "all_shared": all(p.is_shared() for p in model.parameters()),
        "loss_before": round(before, 5),
        "loss_after": round(after, 5),
        "loss_decreased": after < before,
        "param_sum": round(sum(p.sum().item() for p in model.parameters()), 4),
    }))


if __name__ == "__main__":
    main()
