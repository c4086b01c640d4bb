"""``ember.distributed``: ``torch.distributed``'s process groups and collectives over MPI.

Design note. What it captures: the ``torch.distributed`` calls public training code makes
(``init_process_group``, ``get_rank``/``get_world_size``, ``all_reduce`` and the other
collectives, point-to-point ``send``/``recv``, ``new_group``) with PyTorch's signatures,
in-place semantics and ``Work`` objects. What it runs on: MPI through ``mpi4py`` (the
``distributed`` extra, ``pip install -e '.[distributed]'``, which also installs MPICH), so the
same program scales from ``mpiexec -n 2`` on one machine to a cluster's hostfile or Slurm
``srun``. MPI owns wire-up and transport; ember adds no sockets of its own. Where it hooks
into the core: nowhere in autograd; collectives read and write a tensor's backend array
(a NumPy array, contiguous copy when needed) and bump its version counter, and
``ember.nn.parallel.DistributedDataParallel`` uses ``all_reduce(async_op=True)`` from
``Tensor.register_post_accumulate_grad_hook``. The life of one call: ``all_reduce(t)`` finds
the default group (``init_process_group`` duplicated ``MPI.COMM_WORLD`` into it), copies
``t``'s array into a contiguous buffer, runs ``MPI_Allreduce`` in place on it (``Iallreduce``
under ``async_op=True``, finished by ``Work.wait()``), and copies the result back into ``t``.

``mpi4py`` is imported (and MPI initialised) only by ``init_process_group``, never by
``import ember``. The launcher is ``python -m ember.distributed.run`` (``embrun``).

Beside the collectives (each loaded on first use): ``nn.functional`` (differentiable
collectives, behind ``nn.SyncBatchNorm``), ``algorithms.join`` (``Join`` for uneven inputs,
NOTE [ Join ]), ``rpc`` (remote calls and ``RRef``), ``autograd`` (gradients through RPC,
NOTE [ Distributed autograd ]) and ``optim`` (``DistributedOptimizer``). A collective that
outlives the group's ``timeout`` aborts the job (NOTE [ Collective timeout ]).
"""
from .distributed_c10d import (
    Backend, GroupMember, ProcessGroup, ReduceOp, Work, all_gather, all_gather_into_tensor,
    all_gather_object, all_reduce, all_to_all, all_to_all_single, barrier, broadcast,
    broadcast_object_list, destroy_process_group, gather, get_backend, get_rank,
    get_world_size, group, init_process_group, irecv, is_available, is_initialized,
    is_mpi_available, isend, monitored_barrier, new_group, recv, reduce, reduce_scatter,
    reduce_scatter_tensor, scatter, send)
from .distributed_c10d import _DEFAULT_FIRST_BUCKET_BYTES, _compute_bucket_assignment_by_size

__all__ = [
    "Backend", "GroupMember", "ProcessGroup", "ReduceOp", "Work", "all_gather",
    "all_gather_into_tensor", "all_gather_object", "all_reduce", "all_to_all",
    "all_to_all_single", "barrier", "broadcast", "broadcast_object_list",
    "destroy_process_group", "gather", "get_backend", "get_rank", "get_world_size", "group",
    "init_process_group", "irecv", "is_available", "is_initialized", "is_mpi_available",
    "isend", "monitored_barrier", "new_group", "recv", "reduce", "reduce_scatter",
    "reduce_scatter_tensor", "scatter", "send",
]

_SUBMODULES = ("algorithms", "autograd", "nn", "optim", "rpc")


def __getattr__(name):
    # ``dist.rpc`` etc. without an explicit import, as in PyTorch; loaded on first use
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
