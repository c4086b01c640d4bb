"""Benchmark workloads: activation checkpointing (registered when bench.workloads is imported).

``mlp12_step`` is one forward+backward of a 12-layer 256-wide ReLU MLP (batch 1024, float32,
so the activations outweigh the weights and their gradients); ``mlp12_ckpt_step`` is the
same step through ``checkpoint_sequential`` in 4 segments (``use_reentrant=False``), and its
line also prints the time it pays for recomputation (ckpt/plain).
``python -m bench.wl_checkpoint`` prints the peak memory (tracemalloc: NumPy's allocations
are traced) of both steps in ember, the number checkpointing exists to lower.
"""
from __future__ import annotations

import tracemalloc

import numpy as np

from .harness import workload
from .workloads import _rng, _leaf, _linear_weights, _load_linears

DEPTH, WIDTH, BATCH, SEGMENTS = 12, 256, 1024, 4


def _build(mod):
    rng = _rng()
    nn = mod.nn
    layers = []
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    model = nn.Sequential(*layers)
    _load_linears(mod, model, _linear_weights(rng, (WIDTH,) * (DEPTH + 1)))
    x = _leaf(mod, rng.standard_normal((BATCH, WIDTH), dtype=np.float32), True)
    return model, x


def _step(mod, checkpointed: bool):
    model, x = _build(mod)
    if mod.__name__ == "torch":
        from torch.utils.checkpoint import checkpoint_sequential
    else:
        from ember.utils.checkpoint import checkpoint_sequential

    def step():
        model.zero_grad()
        x.grad = None
        if checkpointed:
            y = checkpoint_sequential(model, SEGMENTS, x, use_reentrant=False)
        else:
            y = model(x)
        loss = (y * y).mean()
        loss.backward()
        return mod.cat([loss.detach().reshape(1), x.grad.reshape(-1)[:64]])

    return step


@workload("mlp12_step", "ms/step")
def mlp12_step(mod):
    """Forward+backward of a 12-layer 256-wide ReLU MLP, batch 1024, every activation kept."""
    return _step(mod, False), lambda s: s * 1e3


@workload("mlp12_ckpt_step", "ms/step", ratio_to=("mlp12_step", "ckpt/plain"))
def mlp12_ckpt_step(mod):
    """``mlp12_step`` through ``checkpoint_sequential(model, 4, x, use_reentrant=False)``:
    activations inside the first three segments are recomputed in backward."""
    return _step(mod, True), lambda s: s * 1e3


def peak_bytes(checkpointed: bool) -> int:
    """Peak bytes NumPy allocates during one ember step (model and input excluded)."""
    import ember
    step = _step(ember, checkpointed)
    step()  # warm up: first-call allocations are not the step's
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def main() -> None:
    plain, ckpt = peak_bytes(False), peak_bytes(True)
    print(f"mlp12 ember peak memory per step (tracemalloc): plain {plain / 2**20:7.2f} MiB   "
          f"checkpoint_sequential({SEGMENTS}) {ckpt / 2**20:7.2f} MiB   "
          f"ckpt/plain {ckpt / plain:.2f}")


if __name__ == "__main__":
    main()
