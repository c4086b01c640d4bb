"""``python -m bench.ddp``: data-parallel training steps, 2 ranks against 1 process.

``ddp_mlp_step`` (``mlp_step_adam``'s 784-512-256-10 MLP, global batch 128, Adam) and
``ddp_gpt_step`` (``gpt_step``'s 2-layer GPT, global batch 16 x 64 tokens, AdamW) run once in
one process on the whole batch and once as ``DistributedDataParallel`` on 2 MPI ranks
(``embrun --nproc-per-node 2``) on half the batch each, so the global batch and the update
are the same. It reports the median step time of each, the scaling efficiency
(t_1 / (2 t_2)), the rank's step with ``no_sync()`` (the same work without communication),
and how much of the gradient all-reduce backward hides: "exposed" is the time backward
waits for the all-reduces after its last gradient (DDP's ``_finalize``), "all-reduce" the
time of the same buckets' all-reduces on their own, hidden = 1 - exposed / all-reduce, and
"in bwd" the share of the gradient bytes whose all-reduce had finished when backward ended.
On an oversubscribed machine "exposed" also holds the ranks' skew (one rank waits for the
other to finish its backward). Each process's BLAS runs on ``--threads`` threads (default 1).
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
_BUCKET_MB = float(os.environ.get("EMBER_BENCH_BUCKET_MB", "25"))  # DDP's default


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

    waits, early = [], []
    finalize = net._finalize
    total = sum(b.buffer.nbytes for b in net._buckets)

    def timed_finalize():  # what backward waits for after its last gradient: exposed comm
        # the share of the gradient bytes already all-reduced when backward ends
        early.append(sum(b.buffer.nbytes for b in net._buckets[:-1]
                         if b.work.is_completed()) / total)
        t0 = time.perf_counter()
        finalize()
        waits.append(time.perf_counter() - t0)

    net._finalize = timed_finalize
    t2 = _time(step, steps, dist.barrier)
    net._finalize = finalize
    t_wait = statistics.median(waits[max(1, steps // 5):])
    t_local = _time(local_step, steps, dist.barrier)
    import ember

    def all_reduce():
        works = [_all_reduce(ember.from_numpy(b.buffer), async_op=True, check=False)
                 for b in net._buckets]
        for w in works:
            w.wait()

    t_comm = _time(all_reduce, steps, dist.barrier)
    nbytes = sum(b.buffer.nbytes for b in net._buckets)
    out = {"t2": t2, "t2_no_sync": t_local, "t_allreduce": t_comm, "t_wait": t_wait,
           "reduced_in_backward": statistics.mean(early[max(1, steps // 5):]),
           "grad_bytes": nbytes,
           "buckets": len(net._buckets)}
    every = [None] * world
    dist.all_gather_object(every, out)
    if rank == 0:
        # the slower rank sets the pace of a synchronous step
        print("RESULT " + json.dumps({k: max(e[k] for e in every) for k in out}), flush=True)
    dist.destroy_process_group()


def _run(cmd, threads, bucket_mb=25.0):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), EMBER_BENCH_BUCKET_MB=str(bucket_mb))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"bench.ddp: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ddp", description=__doc__)
    ap.add_argument("--only", action="append", choices=WORKLOADS)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    ap.add_argument("--bucket-cap-mb", type=float, default=25.0,
                    help="DDP's bucket_cap_mb (default 25, PyTorch's)")
    ap.add_argument("--_single", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--_ranks", metavar="NAME", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._single:
        print("RESULT " + json.dumps(_single(args._single, args.steps)), flush=True)
        return 0
    if args._ranks:
        _ranks(args._ranks, args.steps)
        return 0
    print(f"bench.ddp: 1 process vs 2 MPI ranks, same global batch; {args.threads} BLAS "
          f"thread(s) per process, {os.cpu_count()} cores, bucket_cap_mb "
          f"{args.bucket_cap_mb:g}")
    print(f"{'workload':<14} {'1 proc':>9} {'2 ranks':>9} {'speed-up':>9} {'efficiency':>10} "
          f"{'no_sync':>9} {'all-reduce':>10} {'exposed':>9} {'hidden':>7} {'in bwd':>7}")
    for name in args.only or WORKLOADS:
        one = _run([sys.executable, "-m", "bench.ddp", "--_single", name, "--steps",
                    str(args.steps)], args.threads)
        two = _run([sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", "2",
                    "-m", "bench.ddp", "--_ranks", name, "--steps", str(args.steps)],
                   args.threads, args.bucket_cap_mb)
        t1, t2 = one["t1"], two["t2"]
        exposed = two["t_wait"]
        hidden = max(0.0, 1.0 - exposed / two["t_allreduce"]) if two["t_allreduce"] else 1.0
        ms = 1e3
        print(f"{name:<14} {t1 * ms:8.2f}ms {t2 * ms:8.2f}ms {t1 / t2:9.2f} "
              f"{t1 / (2 * t2):10.0%} {two['t2_no_sync'] * ms:8.2f}ms "
              f"{two['t_allreduce'] * ms:9.2f}ms {exposed * ms:8.2f}ms {hidden:7.0%} "
              f"{two['reduced_in_backward']:7.0%}  "
              f"({two['grad_bytes'] / 2**20:.2f} MiB of gradients in {two['buckets']} "
              f"bucket(s))", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
