"""Profiling a few training steps with torch.profiler, as the profiler recipe does.

Written as ordinary PyTorch code: ``profile(activities=[ProfilerActivity.CPU],
record_shapes=True)`` around training steps labelled with ``record_function``, then
``key_averages().table(sort_by="cpu_time_total")``, ``group_by_input_shape`` and a Chrome
trace. Timings differ between frameworks, so the JSON line holds what both must agree on:
the losses, which of the common op names were recorded, how often the labelled step ran,
the input shapes of the first layer's product, and that the trace file has its events.
"""
import json
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

COMMON = ["aten::addmm", "aten::mm", "aten::relu", "aten::sum", "aten::mul", "train_step"]


def main():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.3, tuple(p.shape)).astype(np.float32)))
    x = torch.from_numpy(rng.normal(size=(64, 10)).astype(np.float32))
    y = torch.from_numpy(rng.normal(size=(64, 1)).astype(np.float32))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    losses = []
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(4):
            with record_function("train_step"):
                opt.zero_grad()
                loss = F.mse_loss(model(x), y) + 0.001 * (model[0].weight * 2).sum()
                loss.backward()
                opt.step()
            losses.append(loss.item())

    averages = prof.key_averages()
    print(averages.table(sort_by="cpu_time_total", row_limit=8))
    counts = {e.key: e.count for e in averages}
    shapes = sorted(str(e.input_shapes) for e in prof.key_averages(group_by_input_shape=True)
                    if e.key == "aten::addmm")
    path = os.path.join(tempfile.mkdtemp(), "trace.json")
    prof.export_chrome_trace(path)
    with open(path) as f:
        trace = json.load(f)
    names = {ev["name"] for ev in trace["traceEvents"] if ev.get("ph") == "X"}

    print(json.dumps({
        "losses": [round(v, 6) for v in losses],
        "recorded": [name for name in COMMON if name in counts],
        "train_step_count": counts["train_step"],
        "first_layer_shapes": any("[64, 10]" in s for s in shapes),
        "trace_has_steps": "train_step" in names,
    }))


if __name__ == "__main__":
    main()
