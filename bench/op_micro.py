"""``python -m bench.op_micro [ROUNDS] [OP,OP...]``: the fixed cost of single small ops, ember
beside torch in one process, timed in thread CPU time (``time.thread_time``), interleaved, best
of ``ROUNDS`` (each round times 20 calls); run it at ``OPENBLAS_NUM_THREADS=1``.

Each op runs on (32, 64) float32 tensors that require grad, three ways: ``fwd`` (forward alone,
recording the graph), ``nograd`` (forward with grad mode off: the op without its recording) and
``f+b`` (forward, then ``sum().backward()``; mostly the fixed cost of a backward call, in torch
too).  ``fwd - nograd`` is what recording the node costs.  ``bcast+`` adds a (64,) bias and
``bcast*`` multiplies by a (32, 1) scale (their backward sums to shape).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .harness import blas_threads, load_module


def cases(mod) -> dict:
    """Name -> zero-argument call of one op, on inputs built with ``mod``'s API."""
    rng = np.random.default_rng(0)

    def leaf(*shape):
        return mod.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

    h, b, bias, scale = leaf(32, 64), leaf(32, 64), leaf(64), leaf(32, 1)
    return {
        "h*b": lambda: h * b,
        "bcast+": lambda: h + bias,
        "bcast*": lambda: h * scale,
        "h-0.05": lambda: h - 0.05,
        "relu": lambda: h.relu(),
        "tanh": lambda: h.tanh(),
        "sigmoid": lambda: h.sigmoid(),
        "sum(1)": lambda: h.sum(1),
        "mean": lambda: h.mean(),
    }


def _ways(fn) -> dict:
    """Way -> (call, grad mode to time it in)."""
    return {"fwd": (fn, True), "nograd": (fn, False),
            "f+b": (lambda: fn().sum().backward(), True)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 100
    only = set(argv[1].split(",")) if len(argv) > 1 else None
    mods = {b: load_module(b) for b in ("ember", "torch")}
    threads, _ = blas_threads()
    mods["torch"].set_num_threads(threads)
    built = {b: cases(m) for b, m in mods.items()}
    print(f"BLAS {threads}, thread CPU, best of {rounds} x 20 calls, us per call "
          f"(ember / torch = ratio)")
    for name in built["ember"]:
        if only and name not in only:
            continue
        cols = []
        for way in ("fwd", "nograd", "f+b"):
            fns = {b: _ways(built[b][name])[way] for b in mods}
            best = dict.fromkeys(fns, float("inf"))
            for r in range(rounds + 1):
                for b, (f, grad) in fns.items():
                    with mods[b].set_grad_enabled(grad):  # (outside the timed calls)
                        t0 = time.thread_time()
                        for _ in range(20):
                            f()
                        t = time.thread_time() - t0
                    if r:  # (the first round warms up)
                        best[b] = min(best[b], t / 20)
            e, t = best["ember"] * 1e6, best["torch"] * 1e6
            cols.append(f"{way} {e:6.2f} / {t:6.2f} = {e / t:4.2f}")
        print(f"{name:8s} " + "   ".join(cols), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
