"""``DistributedDataParallel`` (``torch.nn.parallel.DistributedDataParallel``) on ember.distributed.

NOTE [ DDP buckets ]: the parameters that require grad are grouped into buckets of one dtype
as PyTorch's reducer does (``_compute_bucket_assignment_by_size``: a bucket closes once it
holds at least its limit). The first synchronised backward reduces one bucket per dtype
(unless ``find_unused_parameters=True`` without ``static_graph``: then buckets of
``bucket_cap_mb`` in reverse registration order, the last one, which holds the first-defined
parameters, closed at 1 MiB under the default cap) and records the order in which gradients
became ready; the next forward rebuilds the buckets once in rank 0's recorded order: the
first (earliest) bucket 1 MiB under the default cap (``bucket_cap_mb=None``, i.e. 25 MiB) or
``bucket_cap_mb`` when given, the others ``bucket_cap_mb`` (``DDP_SET_LAST_BUCKET_CAP=1``
makes the last one the small one, as in PyTorch). Each parameter has a post-accumulate-grad
hook. When a parameter's gradient is accumulated during a synchronised backward, the hook
copies it into its bucket's flat buffer; when a bucket is full, a non-blocking all-reduce
(SUM) of the buffer starts, so communication overlaps the rest of backward. Buckets start
strictly in index order (a later bucket that fills first waits for the earlier ones), because
MPI needs every rank to issue its collectives in the same order. When the last bucket has
started, the hook waits for all of them, divides by the world size and copies the averages
into each ``param.grad``. Overlap needs several buckets and a small last one: the last bucket
starts when backward ends, so its all-reduce is never hidden. PyTorch's 25 MiB default suits
large models; a model of a few MiB of gradients (the GPT-mini of ``bench/ddp.py``: 1.6 MiB)
fits in one or two default buckets and overlaps little, so users tune ``bucket_cap_mb`` down
(0.25 for the GPT-mini: seven buckets, the last holding only the embeddings' 66 KiB).

NOTE [ DDP progress ]: MPICH advances a non-blocking all-reduce only while the process is
inside an MPI call (unless ``MPICH_ASYNC_PROGRESS=1``, which costs a core per rank for a
progress thread), so a bucket started early would otherwise sit still while NumPy computes
the rest of backward and finish only in the final wait. Every gradient hook therefore
tests (``MPI_Testall``) the oldest bucket still in flight (``_poke``): MPICH's progress
engine then moves every outstanding request. One test moves an all-reduce one step (MPICH's
2-rank ``Iallreduce`` takes about five), and each step needs the other rank to poke too:
measured with two ranks computing 1 ms between pokes, one test per poke finished an
all-reduce of 16-256 KiB after about 5 pokes, four tests per poke after 2. So a hook tests
up to ``_TESTS_PER_POKE`` = 4 times (a few microseconds). Tests never change the numbers:
they only move data that the final wait would move.

Unused parameters: with ``find_unused_parameters=True`` ``forward`` walks the output's graph;
parameters it does not reach count as ready with zero gradient, and a per-parameter "used"
count is reduced with the last bucket so that a parameter no rank used keeps its ``grad``
untouched, as PyTorch's.

Uneven inputs: ``with model.join():`` (NOTE [ Join ] in ``ember/distributed/algorithms/join.py``)
adds, per forward, one all-reduce of the count of ranks still training and one of "does any
rank sync gradients this iteration"; a rank that has run out of data answers both with 0 and
issues one all-reduce of zeros per bucket (``_DDPJoinHook.main_hook``), so the gradients are
averaged over the initial world size (or, with ``divide_by_initial_world_size=False``, over
the ranks still training). With join enabled, buffers are broadcast from the highest rank
still training, since rank 0 may already have stale ones.
"""
from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from ... import distributed as dist
from ..._creation import from_numpy
from ..._tensor import Tensor
from ...autograd.function import AccumulateGrad
from ...distributed.algorithms.join import Join, Joinable, JoinHook
from ...distributed.distributed_c10d import (
    _DEFAULT_FIRST_BUCKET_BYTES, _all_reduce, _compute_bucket_assignment_by_size)
from ...autograd.grad_mode import is_grad_enabled, no_grad
from ..modules.module import Module

__all__ = ["DistributedDataParallel"]

_TESTS_PER_POKE = 4  # NOTE [ DDP progress ]
_UNFINISHED = (
    "Expected to have finished reduction in the prior iteration before starting a new one. "
    "This error indicates that your module has parameters that were not used in producing "
    "loss. You can enable unused parameter detection by passing the keyword argument "
    "`find_unused_parameters=True` to `torch.nn.parallel.DistributedDataParallel`, and by \n"
    "making sure all `forward` function outputs participate in calculating loss.")


class _Bucket:
    """Parameters of one dtype whose gradients are all-reduced together in one flat buffer."""

    def __init__(self, params, indices) -> None:
        self.params = params
        self.indices = indices  # positions in DDP's parameter list
        self.offsets = []
        n = 0
        for p in params:
            self.offsets.append(n)
            n += p.numel()
        self.buffer = np.zeros(n, dtype=params[0]._data.dtype)
        self.pending = len(params)
        self.work = None


class DistributedDataParallel(Module, Joinable):
    """Data parallelism across processes: each rank runs ``module`` on its share of the batch
    and gradients are averaged over ranks during backward (NOTE [ DDP buckets ])."""

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers=None, init_sync: bool = True, process_group=None,
                 bucket_cap_mb=None, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False,
                 static_graph: bool = False, **kwargs) -> None:
        super().__init__()
        Joinable.__init__(self)
        pg = process_group if process_group is not None else dist.group.WORLD
        if pg is None:
            raise ValueError("Default process group has not been initialized, please make "
                             "sure to call init_process_group.")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't "
                               "have any parameter that requires a gradient.")
        self.module = module
        self.process_group = pg
        self.device_ids = None
        self.output_device = None
        self.dim = dim
        self.broadcast_buffers = True if broadcast_buffers is None else bool(broadcast_buffers)
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb)
                                    * 1024 * 1024)
        # as PyTorch's _BucketCapacityConfig: a small first bucket only under the default cap
        self._first_bucket_bytes = (_DEFAULT_FIRST_BUCKET_BYTES if bucket_cap_mb is None
                                    else self.bucket_bytes_cap)
        self.bucket_bytes_cap_default = self._first_bucket_bytes < self.bucket_bytes_cap
        self._world = dist.get_world_size(pg)
        _verify_same_params(pg, params)
        if init_sync:
            self._broadcast_states([t for t in module.state_dict(keep_vars=True).values()
                                    if isinstance(t, Tensor)])
        self._params = params
        self._index = {id(p): j for j, p in enumerate(params)}
        # NOTE [ DDP buckets ]: one bucket per dtype until the gradient order is known
        if static_graph or not find_unused_parameters:
            limits = [sys.maxsize]
        elif self.bucket_bytes_cap_default:
            limits = [self._first_bucket_bytes, self.bucket_bytes_cap]
        else:
            limits = [self.bucket_bytes_cap]
        groups, _ = _compute_bucket_assignment_by_size(params, limits)
        self._set_buckets(list(reversed(groups)))
        self._ready_order = [] if (static_graph or not find_unused_parameters) else None
        self._has_rebuilt = False
        for p in params:
            p.register_post_accumulate_grad_hook(self._grad_ready)
        self._expect_hooks = False
        self._hooks_fired = False
        self._next_bucket = 0
        self._oldest = 0
        self._used = None
        self._divisor = self._world
        self._divide_by_initial_world_size = True

    # ---- construction -------------------------------------------------------------------
    def _broadcast_states(self, tensors, src: int = 0) -> None:
        """Rank ``src``'s parameters and buffers, in one broadcast per dtype."""
        by_dtype = {}
        for t in tensors:
            by_dtype.setdefault(t._data.dtype, []).append(t)
        with no_grad():
            for ts in by_dtype.values():
                flat = from_numpy(np.concatenate([np.ravel(t._data) for t in ts]))
                dist.broadcast(flat, src, group=self.process_group)
                off = 0
                for t in ts:
                    n = t.numel()
                    t.copy_(flat[off:off + n].view(t.shape))
                    off += n

    def _set_buckets(self, groups) -> None:
        """Make the buckets from lists of parameter positions, in launch order."""
        self._buckets = [_Bucket([self._params[j] for j in g], list(g)) for g in groups]
        self._where = {}
        for b, bucket in enumerate(self._buckets):
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (b, i)

    def _rebuild_buckets(self) -> bool:
        """Once, after the first synchronised backward: buckets in the order gradients became
        ready there (rank 0's order, so every rank agrees), as PyTorch's ``Reducer``."""
        order = self._ready_order
        if order is None or len(order) == 0:
            return False
        seen = set(order)  # a parameter with no gradient then goes last
        order = order + [j for j in reversed(range(len(self._params))) if j not in seen]
        order = self.process_group.comm.bcast(order, root=0)
        self._ready_order = None
        self._has_rebuilt = True
        params = [self._params[j] for j in order]
        limits = [self._first_bucket_bytes, self.bucket_bytes_cap]
        # DDP_SET_LAST_BUCKET_CAP=1 (PyTorch's switch): the small bucket is the last one
        last_small = os.environ.get("DDP_SET_LAST_BUCKET_CAP") == "1"
        if last_small:
            params, order = params[::-1], order[::-1]
        groups, _ = _compute_bucket_assignment_by_size(params, limits, (), order)
        if last_small:
            groups = groups[::-1]
        self._set_buckets(groups)
        return True

    # ---- forward ------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        # as PyTorch: an error only if the last backward reduced some buckets but not all
        if self._expect_hooks and self._hooks_fired:
            raise RuntimeError(_UNFINISHED)
        sync = is_grad_enabled() and self.require_backward_grad_sync
        joining = self._join_config.enable
        self._divisor = self._world
        if joining:
            count = Join.notify_join_context(self)
            self._divisor = (self._world if self._divide_by_initial_world_size
                             else int(count.item()))
        if is_grad_enabled():
            self._rebuild_buckets()
        if self._will_sync_buffers():
            self._sync_buffers(joined=False)
        if joining:  # tells the joined ranks whether to shadow this iteration's backward
            self._any_rank_syncs(sync)
        out = self.module(*inputs, **kwargs)
        self._expect_hooks = False
        self.require_forward_param_sync = sync  # as PyTorch: no buffer sync after a no_sync
        if sync:
            self._prepare_for_backward(out)
        return out

    def _will_sync_buffers(self) -> bool:
        return (self.require_forward_param_sync and self.broadcast_buffers and self._world > 1
                and any(True for _ in self.module.buffers()))

    def _sync_buffers(self, joined: bool) -> None:
        """Broadcast the buffers from rank 0, or under join from the highest training rank."""
        src = 0
        if self._join_config.enable:
            src = self._find_common_rank(dist.get_rank(self.process_group), not joined)
        self._broadcast_states(list(self.module.buffers()), src)

    def _find_common_rank(self, rank: int, candidate: bool) -> int:
        """The highest rank of the group's candidates (PyTorch's ``_find_common_rank``)."""
        t = from_numpy(np.array([rank if candidate else -1], np.int64))
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.process_group)
        if int(t.item()) == -1:
            raise ValueError("Tried to find a common rank but no rank is a candidate")
        return int(t.item())

    def _any_rank_syncs(self, mine: bool) -> bool:
        flag = from_numpy(np.array([1.0 if mine else 0.0], np.float32))
        dist.all_reduce(flag, group=self.process_group)
        return bool(flag.item())

    def _prepare_for_backward(self, out) -> None:
        for bucket in self._buckets:
            bucket.pending = len(bucket.params)
            bucket.work = None
        self._next_bucket = 0
        self._oldest = 0
        self._expect_hooks = True
        self._hooks_fired = False
        if not self.find_unused_parameters:
            return
        self._used = np.zeros(len(self._params), np.int64)
        reached = _reachable_leaves(out)
        for j, p in enumerate(self._params):
            if id(p) in reached:
                self._used[j] = 1
        for j, p in enumerate(self._params):
            if not self._used[j]:
                b, i = self._where[id(p)]
                bucket = self._buckets[b]
                off = bucket.offsets[i]
                bucket.buffer[off:off + p.numel()] = 0
                bucket.pending -= 1
        self._launch_ready()

    # ---- backward -----------------------------------------------------------------------
    def _grad_ready(self, p) -> None:
        """Post-accumulate-grad hook: copy ``p.grad`` into its bucket; start full buckets."""
        if not self._expect_hooks:
            return
        self._hooks_fired = True
        if self._ready_order is not None:
            self._ready_order.append(self._index[id(p)])
        b, i = self._where[id(p)]
        bucket = self._buckets[b]
        off = bucket.offsets[i]
        bucket.buffer[off:off + p.numel()] = np.ravel(p.grad._data)
        bucket.pending -= 1
        self._launch_ready()

    def _launch_ready(self) -> None:
        launched = False
        while (self._next_bucket < len(self._buckets)
               and self._buckets[self._next_bucket].pending == 0):
            bucket = self._buckets[self._next_bucket]
            bucket.work = _all_reduce(from_numpy(bucket.buffer), group=self.process_group,
                                      async_op=True, check=False)
            self._next_bucket += 1
            launched = True
        if launched and self._next_bucket == len(self._buckets):
            self._finalize()
        else:
            self._poke()

    def _poke(self) -> None:
        """A few tests of the oldest bucket still in flight (NOTE [ DDP progress ])."""
        for _ in range(_TESTS_PER_POKE):
            while self._oldest < self._next_bucket:
                if not self._buckets[self._oldest].work.is_completed():
                    break
                self._oldest += 1
            else:
                return  # nothing in flight

    def _finalize(self) -> None:
        """Wait for every bucket and write the averaged gradients into ``param.grad``."""
        used = None
        if self.find_unused_parameters:
            counts = from_numpy(self._used)
            dist.all_reduce(counts, group=self.process_group)
            used = self._used
        for bucket in self._buckets:
            bucket.work.wait()
            bucket.buffer /= self._divisor
        with no_grad():
            for j, p in enumerate(self._params):
                if used is not None and used[j] == 0:
                    continue  # no rank used it: its grad stays as it was, as in PyTorch
                b, i = self._where[id(p)]
                bucket = self._buckets[b]
                off = bucket.offsets[i]
                avg = bucket.buffer[off:off + p.numel()].reshape(p._data.shape)
                if p.grad is None:
                    p.grad = from_numpy(avg.copy())
                else:
                    p.grad.copy_(from_numpy(avg))
        self._expect_hooks = False

    # ---- API ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally; the first one after syncs."""
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def join(self, divide_by_initial_world_size: bool = True, enable: bool = True,
             throw_on_early_termination: bool = False) -> Join:
        """A ``Join`` context for uneven inputs across ranks (NOTE [ Join ])."""
        return Join([self], enable, throw_on_early_termination,
                    divide_by_initial_world_size=divide_by_initial_world_size)

    def join_hook(self, **kwargs) -> JoinHook:
        return _DDPJoinHook(self, kwargs.get("divide_by_initial_world_size", True))

    @property
    def join_device(self):
        from ..._backend import device
        return device("cpu")

    @property
    def join_process_group(self):
        return self.process_group

    def _get_ddp_logging_data(self) -> dict:
        return {"world_size": self._world, "bucket_cap_bytes": self.bucket_bytes_cap,
                "find_unused_parameters": int(self.find_unused_parameters),
                "has_rebuilt_buckets": int(self._has_rebuilt),
                "bucket_sizes": [b.buffer.nbytes for b in self._buckets]}


class _DDPJoinHook(JoinHook):
    """A joined rank's share of one DDP iteration: the buffer broadcast, the sync flag, one
    all-reduce of zeros per bucket and, with unused-parameter detection, of the used counts."""

    def __init__(self, ddp, divide_by_initial_world_size: bool) -> None:
        self.ddp = ddp
        ddp._divide_by_initial_world_size = divide_by_initial_world_size

    def main_hook(self) -> None:
        ddp = self.ddp
        ddp._rebuild_buckets()  # the training ranks rebuild in this iteration's forward
        if ddp._will_sync_buffers():
            ddp._sync_buffers(joined=True)
        should_sync = ddp._any_rank_syncs(False)
        ddp.require_forward_param_sync = should_sync
        if not should_sync:
            return
        works = [_all_reduce(from_numpy(np.zeros_like(b.buffer)), group=ddp.process_group,
                             async_op=True, check=False) for b in ddp._buckets]
        for work in works:
            work.wait()
        if ddp.find_unused_parameters:
            dist.all_reduce(from_numpy(np.zeros(len(ddp._params), np.int64)),
                            group=ddp.process_group)

    def post_hook(self, is_last_joiner: bool) -> None:
        """Every rank takes the parameters and buffers of the highest last-joining rank."""
        ddp = self.ddp
        src = ddp._find_common_rank(dist.get_rank(ddp.process_group), is_last_joiner)
        ddp._broadcast_states([t for t in ddp.module.state_dict(keep_vars=True).values()
                               if isinstance(t, Tensor)], src)


def _verify_same_params(pg, params) -> None:
    """Every rank must wrap the same parameters (PyTorch's check, with its messages)."""
    shapes = [(tuple(p.shape), str(p.dtype).rsplit(".", 1)[-1]) for p in params]
    every = pg.comm.allgather(shapes)
    me = pg.rank()
    for r, theirs in enumerate(every):
        if len(theirs) != len(shapes):
            raise RuntimeError(f"DDP expects same model across all ranks, but Rank {me} has "
                               f"{len(shapes)} params, while rank {r} has inconsistent "
                               f"{len(theirs)} params.")
        for i, (mine, other) in enumerate(zip(shapes, theirs)):
            if mine != other:
                raise RuntimeError(f"[rank {me}]: params[{i}] in this process with sizes "
                                   f"{list(mine[0])} ({mine[1]}) appears not to match sizes "
                                   f"of the same param in process {r}.")


def _reachable_leaves(out) -> set:
    """ids of the leaf tensors whose AccumulateGrad nodes the graph of ``out`` reaches."""
    stack, seen, leaves = [], set(), set()

    def collect(obj):
        if isinstance(obj, Tensor):
            if obj.grad_fn is not None:
                stack.append(obj.grad_fn)
            elif obj.requires_grad:
                leaves.add(id(obj))
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                collect(o)
        elif isinstance(obj, dict):
            for o in obj.values():
                collect(o)

    collect(out)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            leaves.add(id(node.variable))
            continue
        for nxt, _ in node.next_functions or ():
            if nxt is not None:
                stack.append(nxt)
    return leaves
