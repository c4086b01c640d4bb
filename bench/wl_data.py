"""Benchmark workloads: data family (registered when bench.workloads is imported).

``loader_cpu_w0`` / ``loader_cpu_w2``: one epoch of a map-style dataset whose ``__getitem__``
does ~1 ms of pure-Python work, loaded in the main process / by 2 worker processes. The
2-worker loaders are built once with ``persistent_workers=True``, so a step is an epoch on
warm workers (process start-up is not timed; the first, untimed call starts them).
``loader_tensor``: 3 epochs of batches of 128 from a 60000x784 float32 ``TensorDataset``
(MNIST-sized), no workers: the per-batch overhead of sampling, fetching and collating.
"""
from __future__ import annotations

import numpy as np

from .harness import workload
from .workloads import _rng

CPU_ITEMS = 96
CPU_BATCH = 8
BUSY_ITERS = 12000  # ~1 ms of interpreter work on the 2-core development machine


class _BusyDataset:
    """Sample ``i``: 16 float32s after ~1 ms of CPU work (an LCG loop; the same for both)."""

    def __len__(self):
        return CPU_ITEMS

    def __getitem__(self, i):
        s = i
        for _ in range(BUSY_ITERS):
            s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        return np.full(16, i, dtype=np.float32)


def _cpu_loader(mod, workers):
    kw = dict(num_workers=workers, persistent_workers=True) if workers else {}
    loader = mod.utils.data.DataLoader(_BusyDataset(), batch_size=CPU_BATCH, **kw)

    def step():
        out = None
        for out in loader:
            pass
        return out

    return step, lambda s: CPU_ITEMS / s


@workload("loader_cpu_w0", "samples/s", higher_is_better=True)
def loader_cpu_w0(mod):
    """96 samples of ~1 ms CPU work each, batch 8, num_workers=0."""
    return _cpu_loader(mod, 0)


@workload("loader_cpu_w2", "samples/s", higher_is_better=True,
          ratio_to=("loader_cpu_w0", "w2/w0"))
def loader_cpu_w2(mod):
    """The same epoch with num_workers=2 (persistent workers, created once)."""
    return _cpu_loader(mod, 2)


TENSOR_N, TENSOR_D, TENSOR_BATCH, TENSOR_EPOCHS = 60000, 784, 128, 3
_tensor_data = {}


def _mnist_like():
    if not _tensor_data:  # one copy shared by both backends (from_numpy does not copy)
        rng = _rng()
        _tensor_data["x"] = rng.standard_normal((TENSOR_N, TENSOR_D), dtype=np.float32)
        _tensor_data["y"] = rng.integers(0, 10, TENSOR_N)
    return _tensor_data["x"], _tensor_data["y"]


@workload("loader_tensor", "µs/batch")
def loader_tensor(mod):
    """3 epochs of sequential batches of 128 from TensorDataset(60000x784 float32, labels)."""
    x, y = _mnist_like()
    ds = mod.utils.data.TensorDataset(mod.from_numpy(x), mod.from_numpy(y))
    loader = mod.utils.data.DataLoader(ds, batch_size=TENSOR_BATCH)
    n_batches = TENSOR_EPOCHS * len(loader)

    def step():
        xb = None
        for _ in range(TENSOR_EPOCHS):
            for xb, _ in loader:
                pass
        return xb

    return step, lambda s: s * 1e6 / n_batches
