"""``ember train digits --nproc N`` and the same command under ``embrun``: the main job's
data-parallel plumbing, kept out of the training loop.

``--nproc N`` re-runs the command as ``python -m ember.distributed.run --nproc-per-node N -m
ember train digits ...``. Inside the job each rank trains ``DistributedDataParallel(model)``
on its ``DistributedSampler`` share with a batch of ``--batch-size / N``, so the global batch,
the steps per epoch and the schedule are those of one process; rank 0 alone prints, logs and
saves (every rank loads a checkpoint it resumes from), and the test accuracy every rank acts
on (best model, early stopping) is rank 0's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys

from . import CLIError

__all__ = ["Job", "relaunch"]


def relaunch(args, add_arguments, nproc: int) -> int:
    """Run ``ember train digits`` with ``args`` on ``nproc`` ranks under the launcher."""
    if nproc < 1:
        raise CLIError(f"--nproc must be at least 1, got {nproc}")
    argv = ["train", args.task] + _argv_from(args, add_arguments)
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", str(nproc),
           "-m", "ember", *argv]
    return subprocess.call(cmd)


def _argv_from(args, add_arguments) -> list:
    """The command-line options that give ``args`` (all but --nproc), read off the parser."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    argv = []
    for action in p._actions:
        if action.dest == "nproc" or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") \
            else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


class Job:
    """This process's place in a data-parallel run (one rank of one when not launched)."""

    def __init__(self, mod) -> None:
        self.mod = mod
        self.world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        self.rank = 0
        self.dist = None
        if self.world > 1:
            if getattr(mod, "__name__", "") != "ember":
                raise CLIError("a data-parallel run trains with ember")
            from .. import distributed as dist
            dist.init_process_group("mpi")
            self.dist = dist
            self.rank = dist.get_rank()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batch_size(self, global_batch: int) -> int:
        """Each rank's batch: the global batch split evenly over the ranks."""
        if global_batch % self.world:
            raise CLIError(f"--batch-size {global_batch} must divide evenly over "
                           f"{self.world} processes")
        return global_batch // self.world

    def loader(self, dataset, batch_size: int, seed: int):
        """A shuffling DataLoader over this rank's share of ``dataset``."""
        data = self.mod.utils.data
        if self.dist is None:
            return data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
        sampler = data.DistributedSampler(dataset, shuffle=True, seed=seed)
        return data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)

    def set_epoch(self, loader, epoch: int) -> None:
        if self.dist is not None:
            loader.sampler.set_epoch(epoch)

    def wrap(self, model):
        """``model`` for training: DDP across the ranks, or itself."""
        if self.dist is None:
            return model
        from ..nn.parallel import DistributedDataParallel
        return DistributedDataParallel(model)

    def no_sync(self, net, last_of_group: bool):
        """Skip the gradient all-reduce on micro-batches that do not end an accumulation."""
        if self.dist is None or last_of_group:
            return contextlib.nullcontext()
        return net.no_sync()

    def sums(self, *values):
        """``values`` summed over the ranks (epoch statistics)."""
        if self.dist is None:
            return values
        t = self.mod.tensor([float(v) for v in values], dtype=self.mod.float64)
        self.dist.all_reduce(t)
        return tuple(t.tolist())

    def from_main(self, value):
        """Rank 0's ``value`` on every rank."""
        if self.dist is None:
            return value
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]
