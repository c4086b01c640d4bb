"""The timing loop, the workload registry and thread pinning.

A workload is a function ``fn(mod)`` that takes a module (``ember``, ``torch``
or ``numpy``), builds its inputs with that module's API and returns
``(step, convert)``: ``step()`` runs one unit of work and ``convert(seconds)``
turns the median seconds per step into the reported unit.  Register it with
``@workload(name, unit)``; ``python -m bench`` picks it up.
"""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from typing import Callable

import numpy as np

BACKENDS = ("ember", "torch", "numpy")


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable
    unit: str
    higher_is_better: bool
    backends: tuple  # the first two are compared (ember/torch); the rest are extra columns
    ratio_to: tuple = ()  # (other workload, label): also print this one's time over the other's
    # a ReLU after a convolution: a pre-activation within rounding of 0 may fall on the other
    # side in ember and torch, and batch norm's backward spreads that over its channel
    relu_ties: bool = False


REGISTRY: dict[str, Workload] = {}


def workload(name: str, unit: str, *, higher_is_better: bool = False,
             backends: tuple = ("ember", "torch"), ratio_to: tuple = (),
             relu_ties: bool = False):
    """Register ``fn(mod) -> (step, convert)`` as benchmark ``name`` reported in ``unit``.

    ``ratio_to=(other, label)`` adds, per backend, this workload's value over ``other``'s.
    """
    def register(fn):
        REGISTRY[name] = Workload(name, fn, unit, higher_is_better, backends, ratio_to,
                                  relu_ties)
        return fn
    return register


@dataclasses.dataclass
class Result:
    workload: Workload
    values: dict        # backend -> median in the workload's unit
    skipped: str = ""   # why it did not run
    mismatch: str = ""  # backends whose first result disagreed with torch's


def blas_threads() -> tuple[int, str]:
    """How many threads NumPy's BLAS uses, and how that was found out."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        counts = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        if counts:
            return counts[0], "threadpoolctl"
    # OpenBLAS and MKL honour these variables and otherwise use every core they may run on.
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), var
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)), "cpu count"
    return os.cpu_count() or 1, "cpu count"


def load_module(name: str):
    if name == "numpy":
        return np
    if name == "torch":
        import torch
        return torch
    import ember
    return ember


def _as_array(r):
    """A step's result as a NumPy array, for the ember-vs-torch sanity check."""
    if r is None:
        return None
    if hasattr(r, "detach"):
        r = r.detach()
    if hasattr(r, "numpy") and not isinstance(r, np.ndarray):
        r = r.numpy()
    return np.asarray(r, dtype=np.float64)


def _time(step, number: int) -> float:
    """Seconds per call of ``step`` over ``number`` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(number):
        step()
    return (time.perf_counter() - t0) / number


def run(w: Workload, mods: dict, repeat: int, min_sample_s: float) -> Result:
    """Warm up, calibrate and time every backend of ``w``; samples interleave backends."""
    steps, converts, outs = {}, {}, {}
    for b in w.backends:
        try:
            step, converts[b] = w.fn(mods[b])
            outs[b] = _as_array(step())  # first call: warm-up and the sanity check's value
        except Exception as e:  # a missing op or feature skips the workload, not the run
            return Result(w, {}, skipped=f"{b}: {type(e).__name__}: {e}".splitlines()[0])
        steps[b] = step
    ref = outs["torch"]
    mismatch = [b for b, o in outs.items() if b != "torch" and o is not None and ref is not None
                and not _agrees(o, ref, w.relu_ties)]
    number = {}
    for b, step in steps.items():
        once = _time(step, 1)
        number[b] = max(1, math.ceil(min_sample_s / max(once, 1e-9)))
        _time(step, number[b])  # warm-up at the sampling size (caches, allocator)
    samples = {b: [] for b in steps}
    for _ in range(repeat):
        for b, step in steps.items():
            samples[b].append(_time(step, number[b]))
    values = {b: converts[b](statistics.median(s)) for b, s in samples.items()}
    return Result(w, values, mismatch=",".join(mismatch))


def _agrees(out, ref, relu_ties: bool) -> bool:
    """Whether a backend's first result matches torch's (``relu_ties``: a few may be loose)."""
    scale = float(np.abs(ref).max())
    close = np.isclose(out, ref, rtol=1e-3, atol=1e-3 * scale)
    if close.all():
        return True
    # fewer than 0.1% of values off, each within 2% of the largest: tie flips, not a bug
    return relu_ties and (~close).mean() < 1e-3 and np.allclose(out, ref, rtol=0,
                                                                 atol=2e-2 * scale)


def format_result(r: Result, other: Result | None = None) -> str:
    """One line for ``r``; ``other`` is the result its ``ratio_to`` names, if that ran."""
    w = r.workload
    if r.skipped:
        return f"{w.name:<14} skipped: {r.skipped}"
    v = r.values
    better = "higher" if w.higher_is_better else "lower"
    line = (f"{w.name:<14} ember {v['ember']:>9.4g}   torch {v['torch']:>9.4g}   "
            f"ember/torch {v['ember'] / v['torch']:>6.2f}   {w.unit} ({better} is better)")
    for b in w.backends[2:]:
        line += f"   {b} {v[b]:.4g}  ember/{b} {v['ember'] / v[b]:.2f}"
    if other is not None and other.values:
        ratios = "  ".join(f"{b} {v[b] / other.values[b]:.2f}" for b in w.backends[:2])
        line += f"   {w.ratio_to[1]}: {ratios}"
    if r.mismatch:
        line += f"   WARNING: {r.mismatch} result differs from torch's"
    return line
