"""``python -m bench.thread_cpu NAME[,NAME...] [ROUNDS] [--ab]``: ember and torch steps of bench
workloads interleaved in one process, timed in thread CPU time (``time.thread_time``), best of
``ROUNDS``; on a machine loaded by other processes this is steadier than wall clock, but only
means something at one thread (``OPENBLAS_NUM_THREADS=1``: torch then runs on the calling
thread too).  With ``--ab`` it times wall clock instead, ember with ``ops/_threads`` off and on
(NOTE [ Threads ]) beside torch, for runs at several BLAS threads; print the load with it.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

from . import workloads  # noqa: F401  (registers the workloads)
from .harness import REGISTRY, blas_threads, load_module


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ab = "--ab" in argv
    args = [a for a in argv if a != "--ab"]
    if not args:
        print(__doc__)
        return 2
    names = args[0].split(",")
    rounds = int(args[1]) if len(args) > 1 else 15
    mods = {b: load_module(b) for b in ("ember", "torch")}
    threads, _ = blas_threads()
    mods["torch"].set_num_threads(threads)
    from ember.ops import _threads
    clock = time.perf_counter if ab else time.thread_time
    for name in names:
        w = REGISTRY[name]
        ember_step, _ = w.fn(mods["ember"])
        torch_step, _ = w.fn(mods["torch"])
        steps = {"ember": ember_step, "torch": torch_step}
        if ab:
            def split(step=ember_step, k=1):
                _threads.set_count(k)
                step()
            steps = {"ember 1": split, "ember split": lambda: split(k=threads),
                     "torch": torch_step}
        for step in steps.values():
            step()
            step()
        times = {k: [] for k in steps}
        load = os.getloadavg()[0]
        for _ in range(rounds):
            for k, step in steps.items():
                t0 = clock()
                step()
                times[k].append(clock() - t0)
        _threads.set_count(None)
        best = {k: min(v) for k, v in times.items()}
        med = {k: statistics.median(v) for k, v in times.items()}
        cols = "  ".join(f"{k} {best[k] * 1e3:.2f} ms (x{best[k] / best['torch']:.3f}, "
                         f"median x{med[k] / med['torch']:.3f})" for k in steps)
        print(f"{name:14s} BLAS {threads}, load {load:.1f}-{os.getloadavg()[0]:.1f}, "
              f"{'wall' if ab else 'thread CPU'}, best of {rounds}: {cols}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
