"""``python -m bench.mem_peak NAME[,NAME...] [STEPS]``: peak memory of bench workloads' steps,
ember against torch, each framework measured in its own fresh subprocess.

Two figures per framework, each after the workload was built (model, inputs, optimizer) and
one warm-up step was taken:

- ``rss``: the peak resident set size over STEPS steps (``VmHWM``, reset after the warm-up
  with ``echo 5 > /proc/self/clear_refs``; ``ru_maxrss`` where that is refused) minus the RSS
  the process had once the workload was built.  It counts what training adds on top of the
  model: gradients, optimizer state, caches (ember's workspace pool, NOTE [ Workspace ]), the
  transient activations, and freed memory the C allocator kept.  This is what a PyTorch user
  compares (``top``, a container's limit) and what issue 15's target (<= 1.2x) uses.
- ``live``: the peak of array bytes alive during a step minus those alive when it starts
  (activations saved for backward, gradients in flight, work arrays): ember's through
  ``tracemalloc`` (NumPy reports its data buffers to it), torch's through
  ``torch.profiler``'s allocation events.  Both tracers start one step before the measured
  ones, so every array a step frees was traced when allocated.  ember's workspace pool is
  off while traced, so its work arrays count as torch's do; memory that stays allocated
  across steps (parameters, momentum) is not in it.

The measurements run in separate processes from the timing (tracemalloc slows Python down).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

STEPS = 3
_FRAMEWORKS = ("ember", "torch")


def _status_kib(field: str) -> int:
    """A ``VmXXX`` line of /proc/self/status, in KiB (0 where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _build(fw: str, name: str):
    from . import workloads  # noqa: F401  (registers the workloads)
    from .harness import REGISTRY, blas_threads, load_module

    mod = load_module(fw)
    if fw == "torch":
        mod.set_num_threads(blas_threads()[0])  # as python -m bench does
    step, _ = REGISTRY[name].fn(mod)
    return mod, step


def _child_rss(fw: str, name: str, steps: int) -> dict:
    mod, step = _build(fw, name)
    built = _status_kib("VmRSS")
    step()                                              # warm-up
    warm = _status_kib("VmRSS")
    reset = _reset_hwm()
    for _ in range(steps):
        step()
    if reset:
        peak, how = _status_kib("VmHWM"), "VmHWM"
    else:
        # ru_maxrss never goes down: it still holds the warm-up's peak, a step's twin.
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"
    out = {"built_kib": built, "warm_kib": warm, "peak_kib": peak, "how": how}
    if fw == "ember":
        from ember.ops import _workspace
        out["pool_bytes"] = _workspace._held[0]
    return out


def live_bytes_ember(step, steps: int = STEPS) -> int:
    """Peak array bytes alive during ``steps`` calls of ``step`` less those alive before."""
    import tracemalloc
    tracemalloc.start()
    try:
        step()                                          # what later steps free is now traced
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(steps):
            step()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def live_bytes_torch(step, steps: int = STEPS) -> int:
    """``live_bytes_ember`` for a torch step, from ``torch.profiler``'s allocation events."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        mark = time.time_ns()       # kineto's clock is the wall clock in ns too
        for _ in range(steps):
            step()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        stack.extend(e.children)
        if e.tag == _EventType.Allocation and e.extra_fields.device.type == "cpu":
            events.append((e.start_time_ns, e.extra_fields.alloc_size))
    events.sort()
    # Allocations add bytes and frees subtract them: the running sum is the live bytes
    # relative to the start; its peak after the mark less its value there is ember's figure.
    live = at_mark = peak = 0
    seen_mark = False
    for t, size in events:
        if not seen_mark and t >= mark:
            seen_mark, at_mark, peak = True, live, live
        live += size
        if seen_mark:
            peak = max(peak, live)
    return peak - at_mark


def _child_live(fw: str, name: str, steps: int) -> dict:
    mod, step = _build(fw, name)
    step()                                              # warm-up, untraced
    if fw == "ember":
        # Work arrays are plain allocations while traced, so they count as torch's do: the
        # pool only keeps freed blocks, it never makes more of them alive at once.
        from ember.ops import _workspace
        _workspace.clear()
        _workspace._KEEP = 0
    fn = live_bytes_ember if fw == "ember" else live_bytes_torch
    return {"live_bytes": fn(step, steps)}


def _run_child(kind: str, fw: str, name: str, steps: int) -> dict:
    cmd = [sys.executable, "-m", "bench.mem_peak", "--child", kind, fw, name, str(steps)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"{fw} {kind} child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(name: str, steps: int = STEPS) -> dict:
    """{framework: {rss_mib, transient_rss_mib, live_mib, ...}} for workload ``name``."""
    out = {}
    for fw in _FRAMEWORKS:
        r = _run_child("rss", fw, name, steps)
        live = _run_child("live", fw, name, steps)
        out[fw] = {
            "rss_mib": (r["peak_kib"] - r["built_kib"]) / 1024,
            "transient_rss_mib": (r["peak_kib"] - r["warm_kib"]) / 1024,
            "live_mib": live["live_bytes"] / 2**20,
            "how": r["how"],
            "pool_mib": r.get("pool_bytes", 0) / 2**20,
        }
    return out


def _line(label: str, e: float, t: float, note: str = "") -> str:
    ratio = f"{e / t:5.2f}x" if t > 0 else "    -"
    return f"  {label:<34} ember {e:8.1f} MiB  torch {t:8.1f} MiB  ember/torch {ratio}{note}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        kind, fw, name, steps = argv[1], argv[2], argv[3], int(argv[4])
        fn = _child_rss if kind == "rss" else _child_live
        print(json.dumps(fn(fw, name, steps)))
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    steps = int(argv[1]) if len(argv) > 1 else STEPS
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"# peak memory over {steps} steps after one warm-up, each framework in its own "
          f"process | load average {load:.2f}")
    for name in argv[0].split(","):
        m = measure(name, steps)
        e, t = m["ember"], m["torch"]
        print(f"{name}  (RSS from {e['how']})")
        print(_line("peak RSS - RSS once built [target]", e["rss_mib"], t["rss_mib"],
                    f"  (ember's workspace pool holds {e['pool_mib']:.1f} MiB)"))
        print(_line("peak RSS - RSS after warm-up", e["transient_rss_mib"],
                    t["transient_rss_mib"]))
        print(_line("peak live array bytes in a step", e["live_mib"], t["live_mib"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
