"""``python -m bench [--only NAME] [--repeat N] [--quick] [--strict] [--compile
[--torch-compile]]`` from the repository root."""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys

from . import workloads  # noqa: F401  (registers the workloads)
from .harness import REGISTRY, blas_threads, format_result, load_module, run
from .wl_compile import COMPILED, COMPILE_TIMES, EmberEager, TorchCompiled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only this workload (repeatable): {', '.join(REGISTRY)}")
    ap.add_argument("--repeat", type=int, default=None, help="timed samples per backend "
                    "(default 7, 3 with --quick); the median is reported")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter samples")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a workload was skipped")
    ap.add_argument("--compile", action="store_true", help="the compiled workloads "
                    f"({', '.join(COMPILED)}): ember.compile against PyTorch eager")
    ap.add_argument("--torch-compile", action="store_true", help="with --compile, add a "
                    "torch.compile column (slow to compile: seconds per workload)")
    args = ap.parse_args(argv)
    registry = REGISTRY
    if args.compile:
        extra = ("torch.compile",) if args.torch_compile else ()
        registry = {n: dataclasses.replace(w, backends=w.backends + extra)
                    for n, w in COMPILED.items()}
    names = args.only or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(registry)}")
    ordered = []
    for name in names:  # a ratio's reference workload runs first, even if not asked for
        for n in (*registry[name].ratio_to[:1], name):
            if n not in ordered:
                ordered.append(n)
    repeat = args.repeat or (3 if args.quick else 7)
    min_sample_s = 0.02 if args.quick else 0.1

    mods = {b: load_module(b) for b in ("ember", "torch", "numpy")}
    mods["torch.compile"] = TorchCompiled(mods["torch"])
    mods["ember eager"] = EmberEager(mods["ember"])
    threads, source = blas_threads()
    mods["torch"].set_num_threads(threads)  # same thread count as NumPy's BLAS
    print(f"# ember {mods['ember'].__version__} | torch {mods['torch'].__version__} | "
          f"numpy {mods['numpy'].__version__} | python {platform.python_version()}")
    print(f"# threads: numpy BLAS {threads} ({source}), torch {mods['torch'].get_num_threads()}"
          f" | median of {repeat} samples, each >= {min_sample_s * 1e3:.0f} ms")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        # Other processes on the cores skew everything, torch's thread pool most of all.
        print(f"# WARNING: load average {load:.2f} before starting: the machine is busy and "
              "timings are unreliable (OPENBLAS_NUM_THREADS=1 pins both sides to one thread)")
    skipped = False
    results = {}
    for name in ordered:
        result = results[name] = run(registry[name], mods, repeat, min_sample_s)
        skipped |= bool(result.skipped)
        ratio_to = result.workload.ratio_to
        other = results.get(ratio_to[0]) if ratio_to else None
        print(format_result(result, other), flush=True)
    if args.compile:
        for (name, backend), (first, again) in COMPILE_TIMES.items():
            if name in results and backend != "ember eager":
                line = f"# compile time {name:<14} {backend:<13} first call {first:.3f} s"
                print(line + (f", recompile at a new batch size {again:.3f} s"
                              if again is not None else ""))
    return 1 if skipped and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
