"""``python -m bench.ddp``: data-parallel training steps, 2 ranks against 1 process.

``ddp_mlp_step`` (``mlp_step_adam``'s 784-512-256-10 MLP, global batch 128, Adam) and
``ddp_gpt_step`` (``gpt_step``'s 2-layer GPT, global batch 16 x 64 tokens, AdamW) run once in
one process on the whole batch and once as ``DistributedDataParallel`` on 2 MPI ranks
(``embrun --nproc-per-node 2``) on half the batch each, so the global batch and the update
are the same; the 2-rank job runs once per ``--bucket-cap-mb`` (by default PyTorch's default
buckets and 0.25 MiB, the cap tuned for GPT-mini's 1.6 MiB of gradients: overlap needs several
buckets and a small last one, NOTE [ DDP buckets ]). It reports the median step time of each,
the scaling efficiency (t_1 / (2 t_2)), the rank's step under ``no_sync()`` (the same work
without communication) and, per step, how much of the gradient all-reduce backward hid (the
legend printed with the results defines each column). Exposed time is taken on the rank that
ended backward last, so that the ranks' skew (one rank waiting for the other to finish its
backward, large on a loaded machine) is reported apart. Each process's BLAS runs on
``--threads`` threads (default 1). The load average is printed before and after: the figures
mean little when other work shares the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = ("ddp_mlp_step", "ddp_gpt_step")
_CAPS = ("default", "0.25")  # PyTorch's buckets, and the tuned cap for GPT-mini's 1.6 MiB
_BUCKET_MB = os.environ.get("EMBER_BENCH_BUCKET_MB", "default")
_BUCKET_MB = None if _BUCKET_MB == "default" else float(_BUCKET_MB)


def _build(name):
    import ember
    from .wl_amp import _gpt, _mlp
    return (_mlp if name == "ddp_mlp_step" else _gpt)(ember)


def _shard(t, rank, world):
    n = t.shape[0] // world
    return t[rank * n:(rank + 1) * n]


def _time(step, steps, barrier=None):
    times = []
    for _ in range(steps):
        if barrier is not None:
            barrier()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[max(1, steps // 5):])  # the first steps warm up


def _single(name, steps):
    model, inputs, target, loss_fn, opt = _build(name)

    def step():
        opt.zero_grad()
        loss_fn(model(*inputs), target).backward()
        opt.step()

    return {"t1": _time(step, steps)}


def _ranks(name, steps):
    import ember
    import ember.distributed as dist
    from ember.distributed.distributed_c10d import _all_reduce
    from ember.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, inputs, target, loss_fn, opt = _build(name)
    net = DDP(model, bucket_cap_mb=_BUCKET_MB)
    inputs = tuple(_shard(x, rank, world) for x in inputs)
    if name == "ddp_gpt_step":  # the GPT's targets are flattened tokens
        target = target.reshape(-1, inputs[0].shape[1])
        target = _shard(target, rank, world).reshape(-1)
    else:
        target = _shard(target, rank, world)

    def step():
        opt.zero_grad()
        loss_fn(net(*inputs), target).backward()
        opt.step()

    def local_step():
        with net.no_sync():
            step()

    step()  # the first backward records the gradient order; the next forward rebuilds
    waits, early = [], []
    finalize = net._finalize

    def timed_finalize():  # runs when backward has produced its last gradient
        total = sum(b.buffer.nbytes for b in net._buckets)
        early.append(sum(b.buffer.nbytes for b in net._buckets[:-1]
                         if b.work.is_completed()) / total)
        t0 = time.perf_counter()
        for b in net._buckets:  # the wait DDP's _finalize starts with, timed on its own
            b.work.wait()
        waits.append(time.perf_counter() - t0)
        finalize()  # averages the buckets into .grad (the waits are done: no-ops)

    net._finalize = timed_finalize
    cpu, wall = time.process_time(), time.perf_counter()
    t2 = _time(step, steps, dist.barrier)
    cpu_share = (time.process_time() - cpu) / (time.perf_counter() - wall)
    net._finalize = finalize
    t_local = _time(local_step, steps, dist.barrier)
    arrays = [ember.from_numpy(b.buffer) for b in net._buckets]

    def all_reduce():  # the same buckets, one blocking all-reduce each, nothing to overlap
        for a in arrays:
            _all_reduce(a, check=False)

    t_comm = _time(all_reduce, steps, dist.barrier)
    out = {"t2": t2, "t2_no_sync": t_local, "t_allreduce": t_comm, "waits": waits,
           "early": early, "cpu_share": cpu_share, "buckets": len(net._buckets),
           "grad_bytes": sum(a.numel() * a.element_size() for a in arrays)}
    every = [None] * world
    dist.all_gather_object(every, out)
    if rank == 0:
        # per step, the rank that ended backward last waits only for communication it could
        # not hide; the others' extra wait is the skew between ranks (load imbalance)
        skip = max(1, steps // 5)
        per = list(zip(*[e["waits"] for e in every]))[skip:]
        last = [min(range(world), key=lambda r: w[r]) for w in per]
        res = {k: max(e[k] for e in every) for k in ("t2", "t2_no_sync", "t_allreduce")}
        res["cpu_share"] = min(e["cpu_share"] for e in every)
        res.update(grad_bytes=out["grad_bytes"], buckets=out["buckets"],
                   exposed=[w[r] for w, r in zip(per, last)],
                   skew=[max(w) - min(w) for w in per],
                   early=[every[r]["early"][skip + i] for i, r in enumerate(last)])
        print("RESULT " + json.dumps(res), flush=True)
    dist.destroy_process_group()


def _run(cmd, threads, bucket_mb="default"):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), EMBER_BENCH_BUCKET_MB=str(bucket_mb))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"bench.ddp: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _spread(xs, fmt):
    """``median [p10-p90]`` of per-step values."""
    q = statistics.quantiles(xs, n=10, method="inclusive") if len(xs) > 1 else xs * 9
    return f"{fmt(statistics.median(xs))} [{fmt(q[0])}-{fmt(q[-1])}]"


_LEGEND = """\
Per training step, on the 2-rank job (medians over the timed steps, [p10-p90] across them):
  all-reduce  the step's gradient buckets all-reduced blocking, one after another, measured
              separately: the communication a step needs when nothing overlaps it
  exposed     how long the rank that ended backward last then waited for the buckets'
              all-reduces (DDP's final wait): the communication backward did not hide
  hidden      1 - exposed / all-reduce (target on ddp_gpt_step: >= 70%)
  in bwd      share of the gradient bytes whose all-reduce had completed (one MPI test)
              when that rank's backward ended
  skew        how much longer the other rank waited: load imbalance, not communication"""


def _cap(text):
    return text if text == "default" else f"{float(text):g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ddp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=WORKLOADS)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    ap.add_argument("--bucket-cap-mb", action="append", type=_cap, metavar="MB",
                    help="DDP's bucket_cap_mb, repeatable; 'default' is PyTorch's (25 MiB, "
                    f"first bucket 1 MiB); default: {' and '.join(_CAPS)}")
    ap.add_argument("--_single", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--_ranks", metavar="NAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._single:
        print("RESULT " + json.dumps(_single(args._single, args.steps)), flush=True)
        return 0
    if args._ranks:
        _ranks(args._ranks, args.steps)
        return 0
    caps = args.bucket_cap_mb or list(_CAPS)
    cpu_shares = []
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench.ddp: 1 process vs 2 MPI ranks (embrun), same global batch; {args.threads} "
          f"BLAS thread(s) per process, {os.cpu_count()} cores, {args.steps} timed steps; "
          f"load average before: {load}")
    print(_LEGEND)
    ms = lambda x: f"{x * 1e3:.2f}"  # noqa: E731
    pct = lambda x: f"{x:.0%}"  # noqa: E731
    for name in args.only or WORKLOADS:
        one = _run([sys.executable, "-m", "bench.ddp", "--_single", name, "--steps",
                    str(args.steps)], args.threads)
        t1 = one["t1"]
        print(f"\n{name}: 1 process {ms(t1)} ms/step")
        for cap in caps:
            two = _run([sys.executable, "-m", "ember.distributed.run", "--nproc-per-node",
                        "2", "-m", "bench.ddp", "--_ranks", name, "--steps", str(args.steps)],
                       args.threads, cap)
            t2, total = two["t2"], two["t_allreduce"]
            hidden = [1.0 - e / total for e in two["exposed"]]
            cpu_shares.append(two["cpu_share"])
            print(f"  bucket_cap_mb={cap}: {two['grad_bytes'] / 2**20:.2f} MiB of gradients in "
                  f"{two['buckets']} bucket(s); 2 ranks {ms(t2)} ms/step (speed-up "
                  f"{t1 / t2:.2f}, efficiency {t1 / (2 * t2):.0%}; no_sync step "
                  f"{ms(two['t2_no_sync'])} ms; ranks on a core {two['cpu_share']:.0%} of "
                  "the time)")
            print(f"    all-reduce {ms(total)} ms | exposed {_spread(two['exposed'], ms)} ms | "
                  f"hidden {_spread(hidden, pct)} | in bwd {_spread(two['early'], pct)} | "
                  f"skew {_spread(two['skew'], ms)} ms", flush=True)
    print(f"\nload average after (this benchmark's ranks included): "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if min(cpu_shares) < 0.9:
        print(f"WARNING: in some runs the ranks had their cores as little as "
              f"{min(cpu_shares):.0%} of the time (CPU time / wall time of the timed steps; MPI "
              "waits spin, so a quiet machine gives ~100%): in a run under 90% a rank waiting "
              "for the other also waited for a core, so its all-reduce, exposed and hidden "
              "mostly measure the scheduler; rerun on a quiet machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
