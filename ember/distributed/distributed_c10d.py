"""Process groups and collectives (``torch/distributed/distributed_c10d.py``) over mpi4py."""
from __future__ import annotations

import enum
import importlib.util
import os
import sys
import time
from datetime import timedelta

import numpy as np

from .._tensor import Tensor, _version_counter

__all__ = [
    "Backend", "GroupMember", "ProcessGroup", "ReduceOp", "Work", "all_gather",
    "all_gather_into_tensor", "all_gather_object", "all_reduce", "all_to_all",
    "all_to_all_single", "barrier", "broadcast", "broadcast_object_list",
    "destroy_process_group", "gather", "get_backend", "get_rank", "get_world_size", "group",
    "init_process_group", "irecv", "is_available", "is_initialized", "is_mpi_available",
    "isend", "monitored_barrier", "new_group", "recv", "reduce", "reduce_scatter",
    "reduce_scatter_tensor", "scatter", "send",
]

_NOT_INIT = ("Default process group has not been initialized, please make sure to call "
             "init_process_group.")
_EXTRA = ("ember.distributed runs on MPI through mpi4py, which is not installed: "
          "pip install 'ember[distributed]' (mpi4py and the MPICH wheel)")


def _mpi():
    """The ``mpi4py.MPI`` module; importing it initialises MPI, so only on first use."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(_EXTRA) from e
    return MPI


class Backend(str):
    """A backend name (``torch.distributed.Backend``); every one runs on MPI here."""

    MPI = "mpi"
    GLOO = "gloo"
    NCCL = "nccl"

    def __new__(cls, name: str):
        if not isinstance(name, str):
            raise ValueError(f"Backend constructor parameter must be string-ish, but got: "
                             f"{type(name)}")
        value = name.lower()
        if value not in ("mpi", "gloo", "nccl", "undefined"):
            raise ValueError(f"Invalid backend: '{name}'")
        return str.__new__(cls, value)


class ReduceOp:
    """Reduction operations (``torch.distributed.ReduceOp``)."""

    class RedOpType(enum.Enum):
        SUM = 0
        AVG = 1
        PRODUCT = 2
        MIN = 3
        MAX = 4
        BAND = 5
        BOR = 6
        BXOR = 7

    SUM = RedOpType.SUM
    AVG = RedOpType.AVG
    PRODUCT = RedOpType.PRODUCT
    MIN = RedOpType.MIN
    MAX = RedOpType.MAX
    BAND = RedOpType.BAND
    BOR = RedOpType.BOR
    BXOR = RedOpType.BXOR


class _Watchdog:
    """NOTE [ Collective timeout ]: every blocking MPI call of a process group (and every
    ``Work.wait()``) is armed with the group's ``timeout``; a daemon thread, started with the
    first group, checks once a second and, when a call has run past its deadline (a rank
    hangs or never reaches the collective), prints which call timed out and aborts the whole
    MPI job, as PyTorch's NCCL watchdog does, so no rank waits forever. A rank that raises or
    is killed ends the job sooner: the launcher and the excepthook abort it at once."""

    def __init__(self) -> None:
        self.slot = None   # (deadline, what, seconds) of the blocking call in progress
        self.thread = None

    def arm(self, what: str, seconds: float) -> None:
        self.slot = (time.monotonic() + seconds, what, seconds)
        if self.thread is None:
            import threading
            self.thread = threading.Thread(target=self._run, name="ember-dist-watchdog",
                                           daemon=True)
            self.thread.start()

    def disarm(self) -> None:
        self.slot = None

    def _run(self) -> None:
        while True:
            time.sleep(0.5)
            slot = self.slot
            if slot is None or time.monotonic() < slot[0]:
                continue
            MPI = _mpi()
            if not MPI.Is_initialized() or MPI.Is_finalized():
                return
            rank = MPI.COMM_WORLD.Get_rank()
            sys.stderr.write(f"[Rank {rank}] Watchdog caught collective operation timeout: "
                             f"{slot[1]} ran for {slot[2] * 1000:.0f} milliseconds before "
                             f"timing out (the process group's timeout). Another rank hangs "
                             f"or never reached this call; aborting the job.\n")
            sys.stderr.flush()
            MPI.COMM_WORLD.Abort(1)
            return


_WATCHDOG = _Watchdog()
# the communicator calls that block until the other ranks take part
_BLOCKING = frozenset(("Allgather", "Allreduce", "Alltoallv", "Barrier", "Bcast", "Gather",
                       "Reduce", "Scatter", "Recv", "Send", "allgather", "bcast",
                       "Create_group"))


class _TimedComm:
    """An MPI communicator whose blocking calls are armed with a timeout (NOTE [ Collective
    timeout ]); every other attribute is the communicator's own."""

    def __init__(self, comm, seconds: float) -> None:
        self._comm = comm
        self._seconds = seconds

    def __getattr__(self, name):
        attr = getattr(self._comm, name)
        if name not in _BLOCKING:
            return attr
        seconds = self._seconds

        def timed(*args, **kwargs):
            _WATCHDOG.arm(f"{name} on {self._comm.Get_size()} ranks", seconds)
            try:
                return attr(*args, **kwargs)
            finally:
                _WATCHDOG.disarm()

        return timed


class ProcessGroup:
    """A set of ranks with its own MPI communicator; ``ranks`` are global (WORLD) ranks."""

    def __init__(self, comm, ranks, backend: str, timeout) -> None:
        self.comm = _TimedComm(comm, timeout.total_seconds())
        self.ranks = list(ranks)
        self.backend = backend
        self.timeout = timeout

    def rank(self) -> int:
        return self.comm.Get_rank()

    def size(self) -> int:
        return self.comm.Get_size()

    def name(self) -> str:
        return self.backend.upper()

    def __repr__(self):
        return f"ProcessGroup(backend={self.backend!r}, ranks={self.ranks})"


class GroupMember:
    """``GroupMember.WORLD`` (the default group once initialised) and ``NON_GROUP_MEMBER``."""

    WORLD = None
    NON_GROUP_MEMBER = -100


class group:  # noqa: N801 - torch.distributed.group
    """``torch.distributed.group.WORLD``."""

    WORLD = None


class Work:
    """The handle of an operation (``torch.distributed.Work``): ``wait()`` finishes it."""

    def __init__(self, requests=(), finish=None, result=None) -> None:
        self._requests = list(requests)
        self._finish = finish
        self._result = result
        self._done = not self._requests and finish is None

    def wait(self, timeout=None) -> bool:
        """Block until the operation is complete, then copy results into the tensors; with a
        ``timeout`` (a timedelta or seconds) raise RuntimeError if it is not done by then."""
        if not self._done:
            if timeout is None:
                if self._requests:
                    pg = _State.default
                    _WATCHDOG.arm("Work.wait", pg.timeout.total_seconds() if pg else 1800.0)
                    try:
                        _mpi().Request.Waitall(self._requests)
                    finally:
                        _WATCHDOG.disarm()
            else:
                seconds = (timeout.total_seconds() if isinstance(timeout, timedelta)
                           else float(timeout))
                deadline = time.monotonic() + seconds
                while not _mpi().Request.Testall(self._requests):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"Work timed out after {seconds:g} s: the other "
                                           "ranks have not taken part in the operation")
                    time.sleep(1e-4)
            self._complete()
        return True

    def is_completed(self) -> bool:
        if not self._done and _mpi().Request.Testall(self._requests):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        return self.is_completed()

    def result(self):
        return self._result

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()


class _State:
    default = None     # the WORLD ProcessGroup
    groups = []        # groups made by new_group, freed by destroy_process_group


def is_available() -> bool:
    """True: ember.distributed is always built (it needs mpi4py at ``init_process_group``)."""
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py is installed (checked without initialising MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_gloo_available() -> bool:
    """``backend="gloo"`` runs on MPI here, so it is available when MPI is."""
    return is_mpi_available()


def is_nccl_available() -> bool:
    return False


def is_initialized() -> bool:
    """Whether the default process group has been initialised."""
    return _State.default is not None


def _env_int(name: str, given: int) -> int:
    if given is not None and given != -1:
        return int(given)
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else -1


def init_process_group(backend=None, init_method=None, timeout=None, world_size: int = -1,
                       rank: int = -1, store=None, group_name: str = "", pg_options=None,
                       device_id=None) -> None:
    """Join the job's default process group (``torch.distributed.init_process_group``).

    The ranks are MPI's: run the program under ``mpiexec -n N`` or ``python -m
    ember.distributed.run``. ``world_size``/``rank`` (or torchrun's ``WORLD_SIZE``/``RANK``)
    must agree with MPI's; ``init_method`` and ``store`` are accepted, MPI does the wire-up.
    """
    if _State.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    if init_method is not None and store is not None:
        raise ValueError("Cannot specify both init_method and store.")
    name = Backend(backend if backend is not None else "mpi")
    if name == "nccl":
        raise RuntimeError("Distributed package doesn't have NCCL built in")
    if timeout is not None and not isinstance(timeout, timedelta):
        raise TypeError(f"Expected timeout argument to be of type datetime.timedelta, got "
                        f"{type(timeout)}")
    MPI = _mpi()
    world = MPI.COMM_WORLD
    size, me = world.Get_size(), world.Get_rank()
    want_size = _env_int("WORLD_SIZE", world_size)
    want_rank = _env_int("RANK", rank)
    if want_size != -1 and want_size != size:
        raise RuntimeError(
            f"init_process_group: world_size={want_size} but MPI started {size} process(es); "
            f"launch the job with `mpiexec -n {want_size} python ...`, `python -m "
            f"ember.distributed.run --nproc-per-node {want_size} ...` or "
            f"ember.multiprocessing.spawn(fn, args, nprocs={want_size}), whose processes "
            f"form one MPI job (processes started otherwise cannot join one another)")
    if want_rank != -1 and want_rank != me:
        raise RuntimeError(f"init_process_group: rank={want_rank} but this process is MPI "
                           f"rank {me}; ranks are assigned by mpiexec")
    _abort_on_uncaught_exception(MPI)
    # a duplicate, so the job's own MPI traffic never matches ours
    pg = ProcessGroup(world.Dup(), range(size), name, timeout or timedelta(minutes=30))
    _State.default = pg
    GroupMember.WORLD = pg
    group.WORLD = pg


def _abort_on_uncaught_exception(MPI) -> None:
    """A rank that dies of an exception aborts the job (after printing it): otherwise the
    other ranks would wait forever in their next collective, and this one in MPI_Finalize."""
    previous = sys.excepthook
    if getattr(previous, "_ember_abort", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
            sys.stderr.flush()
            # mpiexec's forwarder reads our stderr pipe on its own schedule, and Abort tears
            # the job down at once: give it a moment so the traceback's last line (the error
            # itself) reaches the user, which a loaded machine otherwise cut off
            time.sleep(0.5)
            MPI.COMM_WORLD.Abort(1)

    hook._ember_abort = True
    sys.excepthook = hook


def destroy_process_group(group=None) -> None:
    """Free ``group``'s communicator, or every group when ``group`` is None (the default)."""
    if _State.default is None:
        raise AssertionError("Process group cannot be None")
    if group is None or group is _State.default:
        for pg in _State.groups + [_State.default]:
            pg.comm.Free()
        _State.groups = []
        _State.default = None
        GroupMember.WORLD = None
        globals()["group"].WORLD = None
    elif group is not GroupMember.NON_GROUP_MEMBER:
        group.comm.Free()
        _State.groups.remove(group)


def _group(g) -> ProcessGroup:
    if _State.default is None:
        raise ValueError(_NOT_INIT)
    return _State.default if g is None else g


def _skip(g) -> bool:
    """A rank outside ``g`` takes no part in its collectives (PyTorch returns None too)."""
    return g is GroupMember.NON_GROUP_MEMBER


def get_backend(group=None) -> str:
    return _group(group).backend


def get_rank(group=None) -> int:
    """This process's rank in ``group`` (the default group when None); -1 outside it."""
    if _skip(group):
        return -1
    return _group(group).rank()


def get_world_size(group=None) -> int:
    """The number of processes in ``group``; -1 for a rank outside it."""
    if _skip(group):
        return -1
    return _group(group).size()


def get_process_group_ranks(group) -> list:
    return list(_group(group).ranks)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None,
              use_local_synchronization: bool = False, group_desc=None):
    """A group of the given global ranks (sorted, as PyTorch does); all ranks call it."""
    world = _group(None)
    if ranks is None:
        ranks = list(range(world.size()))
    ranks = sorted(int(r) for r in ranks)
    for r in ranks:
        if r < 0 or r >= world.size():
            raise ValueError("The new group's rank should be within the world_size set by "
                             "init_process_group")
    if world.rank() not in ranks:
        return GroupMember.NON_GROUP_MEMBER
    # MPI_Comm_create_group is collective over the members only, as use_local_synchronization
    mpi_group = world.comm.Get_group().Incl(ranks)
    comm = world.comm.Create_group(mpi_group)
    mpi_group.Free()
    pg = ProcessGroup(comm, ranks, Backend(backend or world.backend), timeout or world.timeout)
    _State.groups.append(pg)
    return pg


def _group_rank(g: ProcessGroup, global_rank: int) -> int:
    try:
        return g.ranks.index(int(global_rank))
    except ValueError:
        raise ValueError(f"Global rank {global_rank} is not part of group {g}") from None


# ---- arrays -----------------------------------------------------------------------------
def _check(t, name="tensor") -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type "
                        f"torch.Tensor\n             but got {type(t)} instead.")


def _check_list(ts, name) -> None:
    if not isinstance(ts, (list, tuple)) or not all(isinstance(t, Tensor) for t in ts):
        raise TypeError(f"Invalid function argument. Expected parameter `{name}` of type "
                        f"List[torch.Tensor]\n             but got {type(ts)} instead.")


def _buf(t: Tensor) -> np.ndarray:
    """``t``'s values as a C-contiguous array (its own memory when already contiguous)."""
    return np.ascontiguousarray(t._data)


def _bytes(a: np.ndarray) -> np.ndarray:
    """A contiguous array's bytes: data movement is dtype-blind (bfloat16 included)."""
    return a.reshape(-1).view(np.uint8)


def _write(t: Tensor, a: np.ndarray) -> None:
    """Copy ``a`` into ``t`` in place (through views) and count it as an in-place write."""
    if a is not t._data:  # an all-reduce in place on t's own contiguous array is already done
        np.copyto(t._data, a.reshape(t._data.shape), casting="unsafe")
    _version_counter(t)[0] += 1


_NATIVE = {np.dtype(d) for d in ("float32", "float64", "int8", "int16", "int32", "int64",
                                 "uint8", "uint16", "uint32", "uint64", "complex64",
                                 "complex128")}


def _mpi_op(op, dtype):
    MPI = _mpi()
    table = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
             ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
             ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}
    if op not in table:
        raise ValueError(f"Unsupported ReduceOp {op!r}")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype.kind not in "iub":
        raise RuntimeError(f"Cannot use ReduceOp.{op.name} with {dtype} tensors")
    return table[op]


def _as_reducible(a: np.ndarray, op):
    """An array MPI can reduce: bool as uint8 (SUM is OR, PRODUCT is AND), half as float32."""
    if a.dtype == np.bool_:
        fold = {ReduceOp.SUM: ReduceOp.MAX, ReduceOp.AVG: ReduceOp.MAX,
                ReduceOp.PRODUCT: ReduceOp.MIN}
        return a.astype(np.uint8), fold.get(op, op)
    if a.dtype not in _NATIVE:
        return a.astype(np.float32), op  # float16 / bfloat16: reduce in float32, round once
    return a, op


def _finish_avg(a: np.ndarray, op, n: int) -> np.ndarray:
    if op is ReduceOp.AVG:
        if a.dtype.kind in "fc":
            a /= n
        else:
            a //= n
    return a


def _allreduce(comm, a: np.ndarray, op, nonblocking=False):
    """Reduce contiguous ``a`` across ``comm``; returns (result array, request or None)."""
    MPI = _mpi()
    work, mop = _as_reducible(a, op)
    if work is a:
        work = a  # reduced in place: a is already our own contiguous buffer
    mpi_op = _mpi_op(mop, work.dtype)
    if nonblocking:
        return work, comm.Iallreduce(MPI.IN_PLACE, work, op=mpi_op)
    comm.Allreduce(MPI.IN_PLACE, work, op=mpi_op)
    return work, None


def _to_dtype(work: np.ndarray, dtype) -> np.ndarray:
    if work.dtype == dtype:
        return work
    if dtype == np.bool_:
        return work != 0
    return work.astype(dtype)


def _agree(g: ProcessGroup, what: str, *tensors, extra=None) -> None:
    """Raise on every rank when the ranks' tensors (dtype, shape) or arguments differ.

    MPI would otherwise truncate, or fill part of a buffer, on some ranks only; one small
    all-gather per collective lets every rank name the mismatch instead."""
    mine = (tuple((str(t.dtype).rsplit(".", 1)[-1], tuple(t.shape)) for t in tensors), extra)
    every = g.comm.allgather(mine)
    if any(x != every[0] for x in every):
        desc = "; ".join(f"rank {g.ranks[r]}: " + ", ".join(f"{d} {list(sh)}" for d, sh in x[0])
                         + (f" ({x[1]})" if x[1] is not None else "")
                         for r, x in enumerate(every))
        raise RuntimeError(f"{what}: the ranks' tensors or arguments differ, every rank must "
                           f"pass the same dtype and shape: {desc}")


_DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES


def _compute_bucket_assignment_by_size(tensors, bucket_size_limits, expect_sparse_gradient=(),
                                       tensor_indices=()):
    """Group ``tensors`` into buckets of one dtype, as ``dist._compute_bucket_assignment_by_size``.

    Walking the tensors in order, each joins its dtype's open bucket; a bucket closes once it
    holds ``>= limit`` bytes, and each dtype then moves to the next limit in
    ``bucket_size_limits`` (the last one repeats). A tensor expecting a sparse gradient gets a
    bucket of its own (limit 0). Returns (buckets as lists of indices, each bucket's limit);
    the indices are ``tensor_indices[i]`` when given (tensors then come in gradient-ready
    order, kept as is), else positions, and the buckets are sorted by their smallest index."""
    if len(tensors) == 0:
        raise RuntimeError("_compute_bucket_assignment_by_size expects at least one tensor")
    if len(bucket_size_limits) == 0:
        raise RuntimeError("_compute_bucket_assignment_by_size expects a bucket size limit")
    result, open_ = [], {}   # dtype -> [indices, size, position in bucket_size_limits]
    for i, t in enumerate(tensors):
        index = tensor_indices[i] if len(tensor_indices) else i
        if len(expect_sparse_gradient) and expect_sparse_gradient[i]:
            result.append(([index], 0))
            continue
        acc = open_.setdefault(t.dtype, [[], 0, 0])
        acc[0].append(index)
        acc[1] += t.numel() * t.element_size()
        limit = bucket_size_limits[acc[2]]
        if acc[1] >= limit:
            result.append((acc[0], limit))
            acc[0], acc[1] = [], 0
            acc[2] = min(acc[2] + 1, len(bucket_size_limits) - 1)
    result.extend((acc[0], bucket_size_limits[acc[2]]) for acc in open_.values() if acc[0])
    if not len(tensor_indices):
        result.sort(key=lambda b: min(b[0]))
    return [b[0] for b in result], [b[1] for b in result]


# ---- collectives ------------------------------------------------------------------------
def barrier(group=None, async_op: bool = False, device_ids=None):
    """Block until every rank of ``group`` has called it."""
    if _skip(group):
        return None
    g = _group(group)
    if async_op:
        return Work([g.comm.Ibarrier()])
    g.comm.Barrier()
    return None


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False):
    """``barrier`` (MPI reports a rank that died; there is no per-rank monitor here)."""
    return barrier(group)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` across ranks in place: every rank ends with the result."""
    return _all_reduce(tensor, op, group, async_op, check=True)


def _all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False, check=True):
    """``all_reduce``; DDP's buckets skip the agreement check (equal by construction)."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    if check:
        _agree(g, "all_reduce", tensor, extra=f"op={op.name}")
    a = np.array(tensor._data, order="C", copy=True) if tensor._data.ndim == 0 else _buf(tensor)
    work, req = _allreduce(g.comm, a, op, nonblocking=async_op)
    n = g.size()

    def finish():
        _write(tensor, _to_dtype(_finish_avg(work, op, n), tensor._data.dtype))

    if async_op:
        return Work([req], finish, [tensor])
    finish()
    return None


def reduce(tensor, dst: int = 0, op=ReduceOp.SUM, group=None, async_op: bool = False,
           group_dst=None):
    """Reduce ``tensor`` across ranks into rank ``dst``'s ``tensor``."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    root = group_dst if group_dst is not None else _group_rank(g, dst)
    _agree(g, "reduce", tensor, extra=f"op={op.name}, dst={root}")
    MPI = _mpi()
    a = np.array(tensor._data, order="C", copy=True)
    work, mop = _as_reducible(a, op)
    mine = g.rank() == root
    g.comm.Reduce(MPI.IN_PLACE if mine else work, work if mine else None,
                  op=_mpi_op(mop, work.dtype), root=root)
    if mine:
        _write(tensor, _to_dtype(_finish_avg(work, op, g.size()), tensor._data.dtype))
    return Work() if async_op else None


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False, group_src=None):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor``."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    root = group_src if group_src is not None else _group_rank(g, src)
    _agree(g, "broadcast", tensor, extra=f"src={root}")
    a = np.array(tensor._data, order="C", copy=True)
    if async_op:
        req = g.comm.Ibcast(_bytes(a), root=root)
        return Work([req], lambda: _write(tensor, a), [tensor])
    g.comm.Bcast(_bytes(a), root=root)
    if g.rank() != root:
        _write(tensor, a)
    return None


def _same_bytes(ts, nbytes, what) -> None:
    for t in ts:
        if t._data.nbytes != nbytes:
            raise RuntimeError(f"{what}: every tensor must have the input's size and dtype, got "
                               f"{tuple(t.shape)} {t.dtype} ({t._data.nbytes} bytes, expected "
                               f"{nbytes})")


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """``tensor_list[i]`` becomes rank ``i``'s ``tensor``, on every rank."""
    _check_list(tensor_list, "tensor_list")
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    n = g.size()
    if len(tensor_list) != n:
        raise RuntimeError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the group "
                           f"has {n} ranks")
    _agree(g, "all_gather", tensor)
    a = _buf(tensor)
    _same_bytes(tensor_list, a.nbytes, "all_gather")
    out = np.empty((n, a.nbytes), np.uint8)
    g.comm.Allgather(_bytes(a), out)
    for t, row in zip(tensor_list, out):
        _write(t, row.view(t._data.dtype))
    return Work() if async_op else None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """``output_tensor`` becomes every rank's ``input_tensor`` concatenated (or stacked)."""
    _check(output_tensor, "output_tensor")
    _check(input_tensor, "input_tensor")
    if _skip(group):
        return None
    g = _group(group)
    a = _buf(input_tensor)
    if output_tensor.dtype != input_tensor.dtype:
        raise RuntimeError("output tensor must have the same type as input tensor")
    if output_tensor.numel() != g.size() * input_tensor.numel():
        raise RuntimeError("output tensor size must be equal to world_size times input "
                           "tensor size")
    _agree(g, "all_gather_into_tensor", input_tensor)
    out = np.empty(output_tensor._data.shape, output_tensor._data.dtype)
    g.comm.Allgather(_bytes(a), _bytes(out))
    _write(output_tensor, out)
    return Work() if async_op else None


def _reduce_stack(g, arrays, op, dtype):
    stacked = np.ascontiguousarray(np.stack(arrays))
    work, _ = _allreduce(g.comm, stacked, op)
    return _to_dtype(_finish_avg(work, op, g.size()), dtype)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """``output`` on rank ``r`` becomes the reduction over ranks of ``input_list[r]``."""
    _check(output, "output")
    _check_list(input_list, "input_list")
    if _skip(group):
        return None
    g = _group(group)
    if len(input_list) != g.size():
        raise RuntimeError(f"reduce_scatter: input_list has {len(input_list)} tensors, the "
                           f"group has {g.size()} ranks")
    for t in input_list:
        if tuple(t.shape) != tuple(output.shape) or t.dtype != output.dtype:
            raise RuntimeError("reduce_scatter: every input must have the output's shape and "
                               "dtype")
    _agree(g, "reduce_scatter", output, extra=f"op={op.name}")
    res = _reduce_stack(g, [t._data for t in input_list], op, output._data.dtype)
    _write(output, res[g.rank()])
    return Work() if async_op else None


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Rank ``r``'s ``output`` is the ``r``-th of ``world_size`` equal chunks of the reduced
    ``input``."""
    _check(output, "output")
    _check(input, "input")
    if _skip(group):
        return None
    g = _group(group)
    if input.numel() != g.size() * output.numel():
        raise RuntimeError("input tensor must be the same size as output size times world "
                           "size")
    _agree(g, "reduce_scatter_tensor", output, input, extra=f"op={op.name}")
    flat = _buf(input).reshape(g.size(), -1)
    res = _reduce_stack(g, list(flat), op, output._data.dtype)
    _write(output, res[g.rank()])
    return Work() if async_op else None


def gather(tensor, gather_list=None, dst: int = 0, group=None, async_op: bool = False,
           group_dst=None):
    """Rank ``dst``'s ``gather_list[i]`` becomes rank ``i``'s ``tensor``."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    root = group_dst if group_dst is not None else _group_rank(g, dst)
    _agree(g, "gather", tensor, extra=f"dst={root}")
    a = _buf(tensor)
    if g.rank() == root:
        if gather_list is None or len(gather_list) != g.size():
            raise ValueError("Argument ``gather_list`` must be specified on destination rank.")
        _check_list(gather_list, "gather_list")
        _same_bytes(gather_list, a.nbytes, "gather")
        out = np.empty((g.size(), a.nbytes), np.uint8)
        g.comm.Gather(_bytes(a), out, root=root)
        for t, row in zip(gather_list, out):
            _write(t, row.view(t._data.dtype))
    else:
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on "
                             "non-destination ranks.")
        g.comm.Gather(_bytes(a), None, root=root)
    return Work() if async_op else None


def scatter(tensor, scatter_list=None, src: int = 0, group=None, async_op: bool = False,
            group_src=None):
    """Rank ``i``'s ``tensor`` becomes rank ``src``'s ``scatter_list[i]``."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    root = group_src if group_src is not None else _group_rank(g, src)
    _agree(g, "scatter", tensor, extra=f"src={root}")
    out = np.empty(tensor._data.shape, tensor._data.dtype)
    if g.rank() == root:
        if scatter_list is None or len(scatter_list) != g.size():
            raise ValueError("Argument ``scatter_list`` must be specified on source rank.")
        _check_list(scatter_list, "scatter_list")
        _same_bytes(scatter_list, out.nbytes, "scatter")
        send = np.ascontiguousarray(np.stack([_bytes(_buf(t)) for t in scatter_list]))
        g.comm.Scatter(send, _bytes(out), root=root)
    else:
        if scatter_list:
            raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source "
                             "ranks.")
        g.comm.Scatter(None, _bytes(out), root=root)
    _write(tensor, out)
    return Work() if async_op else None


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op: bool = False):
    """Split ``input`` along dim 0 and send the ``i``-th split to rank ``i``; ``output``
    receives the splits from every rank in rank order."""
    _check(output, "output")
    _check(input, "input")
    if _skip(group):
        return None
    g = _group(group)
    n = g.size()
    a = _buf(input)

    def counts(t, splits):
        rows = t.shape[0] if t.dim() else 1
        row_bytes = t._data.nbytes // max(rows, 1)
        if splits is None:
            if rows % n:
                raise RuntimeError(f"Tensor's dim 0 ({rows}) does not divide equally across "
                                   f"group size {n}")
            splits = [rows // n] * n
        if len(splits) != n or sum(splits) != rows:
            raise RuntimeError("Split sizes doesn't match total dim 0 size")
        c = [s * row_bytes for s in splits]
        return c, [sum(c[:i]) for i in range(n)]

    sc, sd = counts(input, input_split_sizes)
    rc, rd = counts(output, output_split_sizes)
    out = np.empty(output._data.shape, output._data.dtype)
    MPI = _mpi()
    g.comm.Alltoallv([_bytes(a), sc, sd, MPI.BYTE], [_bytes(out), rc, rd, MPI.BYTE])
    _write(output, out)
    return Work() if async_op else None


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op: bool = False):
    """Rank ``i``'s ``output_tensor_list[j]`` becomes rank ``j``'s ``input_tensor_list[i]``."""
    _check_list(output_tensor_list, "output_tensor_list")
    _check_list(input_tensor_list, "input_tensor_list")
    if _skip(group):
        return None
    g = _group(group)
    n = g.size()
    if len(output_tensor_list) != n or len(input_tensor_list) != n:
        raise RuntimeError(f"all_to_all: both lists need {n} tensors (the group's size)")
    ins = [_bytes(_buf(t)) for t in input_tensor_list]
    sc = [b.nbytes for b in ins]
    rc = [t._data.nbytes for t in output_tensor_list]
    send = np.concatenate(ins) if ins else np.empty(0, np.uint8)
    recv = np.empty(sum(rc), np.uint8)
    MPI = _mpi()
    g.comm.Alltoallv([send, sc, [sum(sc[:i]) for i in range(n)], MPI.BYTE],
                     [recv, rc, [sum(rc[:i]) for i in range(n)], MPI.BYTE])
    off = 0
    for t, c in zip(output_tensor_list, rc):
        _write(t, recv[off:off + c].view(t._data.dtype))
        off += c
    return Work() if async_op else None


def all_gather_object(object_list, obj, group=None) -> None:
    """``object_list[i]`` becomes rank ``i``'s ``obj`` (pickled between the job's ranks)."""
    if _skip(group):
        return None
    g = _group(group)
    got = g.comm.allgather(obj)
    if len(object_list) != len(got):
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries, the "
                         f"group has {len(got)} ranks")
    object_list[:] = got
    return None


def broadcast_object_list(object_list, src: int = 0, group=None, device=None,
                          group_src=None) -> None:
    """Every rank's ``object_list`` becomes rank ``src``'s (pickled between the job's ranks)."""
    if _skip(group):
        return None
    g = _group(group)
    root = group_src if group_src is not None else _group_rank(g, src)
    got = g.comm.bcast(list(object_list) if g.rank() == root else None, root=root)
    object_list[:] = got
    return None


# ---- point to point ---------------------------------------------------------------------
def _peer(g, rank, what):
    if rank is None:
        return None
    if int(rank) == get_rank() and g is _State.default:
        raise ValueError(f"Invalid {what} rank: {what} rank should not be the same as the "
                         "rank of the current process.")
    return _group_rank(g, rank)


def isend(tensor, dst=None, group=None, tag: int = 0, group_dst=None):
    """Start sending ``tensor`` to global rank ``dst``; returns a ``Work``."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    peer = group_dst if group_dst is not None else _peer(g, dst, "dst")
    a = np.array(tensor._data, order="C", copy=True)  # the tensor may change before wait()
    return Work([g.comm.Isend(_bytes(a), dest=peer, tag=tag)], None, [tensor])


def irecv(tensor, src=None, group=None, tag: int = 0, group_src=None):
    """Start receiving into ``tensor`` from global rank ``src`` (any rank when None)."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    MPI = _mpi()
    peer = group_src if group_src is not None else _peer(g, src, "src")
    a = np.empty(tensor._data.shape, tensor._data.dtype)
    req = g.comm.Irecv(_bytes(a), source=MPI.ANY_SOURCE if peer is None else peer, tag=tag)
    return Work([req], lambda: _write(tensor, a), [tensor])


def send(tensor, dst=None, group=None, tag: int = 0, group_dst=None) -> None:
    """Send ``tensor`` to global rank ``dst``, blocking until it is buffered or received."""
    _check(tensor)
    if _skip(group):
        return None
    g = _group(group)
    peer = group_dst if group_dst is not None else _peer(g, dst, "dst")
    g.comm.Send(_bytes(_buf(tensor)), dest=peer, tag=tag)
    return None


def recv(tensor, src=None, group=None, tag: int = 0, group_src=None) -> int:
    """Receive into ``tensor`` from global rank ``src`` (any when None); returns the sender."""
    _check(tensor)
    if _skip(group):
        return -1
    g = _group(group)
    MPI = _mpi()
    peer = group_src if group_src is not None else _peer(g, src, "src")
    a = np.empty(tensor._data.shape, tensor._data.dtype)
    status = MPI.Status()
    g.comm.Recv(_bytes(a), source=MPI.ANY_SOURCE if peer is None else peer, tag=tag,
                status=status)
    _write(tensor, a)
    return g.ranks[status.Get_source()]
