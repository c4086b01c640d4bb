"""``python -m ember.distributed.run`` (also ``embrun``): torchrun's command line over mpiexec.

``embrun --nproc-per-node 2 train.py --lr 0.1`` runs ``mpiexec -n 2 python -m
ember.distributed.run --_worker train.py --lr 0.1``; each worker reads its rank from the MPI
launcher's environment (MPICH/Hydra, Open MPI, PMIx or Slurm), sets torchrun's variables
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``, ``TORCHELASTIC_RUN_ID``) and runs the script (or ``-m
module``) as ``__main__``. Several machines: ``--nnodes N --hostfile FILE`` passes the
hostfile to mpiexec (or run the workers under Slurm's ``srun`` yourself).
"""
from __future__ import annotations

import argparse
import os
import runpy
import shutil
import subprocess
import sys
import time
import traceback

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")
_LOCAL_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="embrun", description="Run a script on N processes under mpiexec, with "
        "torchrun's environment variables (python -m ember.distributed.run).")
    p.add_argument("--nproc-per-node", "--nproc_per_node", default="1",
                   help="processes per node (an integer; 'auto' or 'cpu' = CPU count)")
    p.add_argument("--nnodes", default="1", help="number of nodes (an integer)")
    p.add_argument("--node-rank", "--node_rank", type=int, default=0)
    p.add_argument("--master-addr", "--master_addr", default="127.0.0.1")
    p.add_argument("--master-port", "--master_port", type=int, default=29500)
    p.add_argument("--standalone", action="store_true", help="single-node job (the default)")
    p.add_argument("--run-id", "--run_id", default="none")
    p.add_argument("--hostfile", default=None, help="MPI hostfile for several nodes")
    p.add_argument("--mpiexec", default=os.environ.get("EMBER_MPIEXEC", "mpiexec"),
                   help="the MPI launcher to use (default: mpiexec, or $EMBER_MPIEXEC)")
    p.add_argument("-m", "--module", action="store_true",
                   help="run the target as a module, as python -m")
    p.add_argument("--no-python", "--no_python", action="store_true",
                   help="run the target as an executable, not with python")
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p


def _first(names, default):
    for n in names:
        if os.environ.get(n, "") != "":
            return int(os.environ[n])
    return default


def _nproc(value: str) -> int:
    if value in ("auto", "cpu", "gpu"):
        return os.cpu_count() or 1
    n = int(value)
    if n < 1:
        raise SystemExit(f"embrun: --nproc-per-node must be at least 1, got {n}")
    return n


def _worker(args) -> None:
    """Inside one MPI rank: set torchrun's variables and run the target as ``__main__``."""
    nproc = _nproc(args.nproc_per_node)
    rank = _first(_RANK_VARS, 0)
    world = _first(_SIZE_VARS, nproc * int(args.nnodes))
    local = _first(_LOCAL_VARS, rank % nproc)
    os.environ.update({
        "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(nproc), "GROUP_RANK": str(rank // nproc),
        "ROLE_RANK": str(rank), "ROLE_WORLD_SIZE": str(world),
        "MASTER_ADDR": args.master_addr, "MASTER_PORT": str(args.master_port),
        "TORCHELASTIC_RUN_ID": args.run_id,
    })
    target = args.training_script
    sys.argv = [target] + list(args.training_script_args)
    if args.no_python:
        os.execvp(target, sys.argv)
    if args.module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args._worker:
        try:
            _worker(args)
        except SystemExit as e:
            if e.code not in (None, 0):
                _abort(e.code if isinstance(e.code, int) else 1)
            raise
        except BaseException:
            traceback.print_exc()
            _abort(1)
        return 0
    nproc = _nproc(args.nproc_per_node)
    nnodes = int(args.nnodes)
    exe = shutil.which(args.mpiexec)
    if exe is None:
        raise SystemExit(f"embrun: {args.mpiexec!r} not found; install the MPI launcher with "
                         "pip install 'ember[distributed]' (mpi4py and MPICH)")
    cmd = [exe, "-n", str(nproc * nnodes)]
    if args.hostfile:
        cmd += ["-f" if "mpich" in _mpi_flavour(exe) else "--hostfile", args.hostfile]
    passthrough = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes),
                   "--master-addr", args.master_addr, "--master-port", str(args.master_port),
                   "--run-id", args.run_id]
    for flag, on in (("-m", args.module), ("--no-python", args.no_python)):
        if on:
            passthrough.append(flag)
    cmd += [sys.executable, "-u", "-m", "ember.distributed.run", "--_worker", *passthrough,
            args.training_script, *args.training_script_args]
    return subprocess.call(cmd)


def _abort(code: int) -> None:
    """End the whole job: a failed rank must not leave the others blocked in a collective
    (MPI_Finalize at exit would wait for them)."""
    sys.stderr.flush()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        # mpiexec forwards our stderr on its own schedule and Abort tears the job down at
        # once: without a pause a loaded machine loses the traceback after its first line
        time.sleep(0.5)
        mpi.COMM_WORLD.Abort(code)
    os._exit(code)


def _mpi_flavour(exe: str) -> str:
    """'mpich' or 'openmpi' from ``mpiexec --version`` (their hostfile flags differ)."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=20).stdout.lower()
    except (OSError, subprocess.SubprocessError):
        return "mpich"
    return "openmpi" if "open mpi" in out or "openrte" in out else "mpich"


if __name__ == "__main__":
    sys.exit(main())
