"""``torch.distributed._functional_collectives``: collectives that return a new tensor
instead of writing their argument (what tensor-parallel code such as gpt-fast's ``tp.py``
imports).  Each copies its input and runs the in-place collective of ``distributed_c10d``
on the copy, synchronously, so ``wait_tensor`` has nothing left to wait for.  ``group`` is a
``ProcessGroup`` (or None for the default group); PyTorch's other spellings (a list of ranks,
a device mesh) raise ``NotImplementedError``."""
from __future__ import annotations

from . import distributed_c10d as _c10d

__all__ = ["all_reduce", "all_gather_tensor", "reduce_scatter_tensor", "broadcast",
           "wait_tensor"]

_OPS = {"sum": "SUM", "avg": "AVG", "product": "PRODUCT", "min": "MIN", "max": "MAX",
        "band": "BAND", "bor": "BOR", "bxor": "BXOR"}


def _group(group):
    if group is None or isinstance(group, _c10d.ProcessGroup):
        return group
    raise NotImplementedError(f"ember's functional collectives take a ProcessGroup as group, "
                              f"not {type(group).__name__}")


def _op(reduce_op: str):
    name = _OPS.get(str(reduce_op).lower())
    if name is None:
        raise ValueError(f"Unrecognized reduce op {reduce_op!r}; expected one of "
                         f"{sorted(_OPS)}")
    return getattr(_c10d.ReduceOp, name)


def all_reduce(self, reduceOp: str, group, tag: str = ""):
    """A new tensor: ``self`` reduced over the group (``reduceOp`` ``"sum"``, ``"avg"`` ...)."""
    out = self.clone()
    _c10d.all_reduce(out, op=_op(reduceOp), group=_group(group))
    return out


def all_gather_tensor(self, gather_dim: int, group, tag: str = ""):
    """A new tensor: every rank's ``self`` concatenated along ``gather_dim``."""
    from ..ops.movement import cat
    g = _group(group)
    parts = [self.new_empty(self.shape) for _ in range(_c10d.get_world_size(g))]
    _c10d.all_gather(parts, self.contiguous(), group=g)
    return cat(parts, dim=gather_dim)


def reduce_scatter_tensor(self, reduceOp: str, scatter_dim: int, group, tag: str = ""):
    """A new tensor: ``self`` reduced over the group, this rank's chunk along
    ``scatter_dim``."""
    g = _group(group)
    world = _c10d.get_world_size(g)
    if self.shape[scatter_dim] % world:
        raise AssertionError(f"input dimension {scatter_dim} ({self.shape[scatter_dim]}) must "
                             f"be a multiple of the group size ({world})")
    full = all_reduce(self, reduceOp, g)
    return full.chunk(world, dim=scatter_dim)[_c10d.get_rank(g)].contiguous()


def broadcast(self, src: int, group, tag: str = ""):
    """A new tensor: rank ``src``'s ``self`` on every rank."""
    out = self.clone()
    _c10d.broadcast(out, src, group=_group(group))
    return out


def wait_tensor(tensor):
    """The tensor itself: these collectives finished when they returned."""
    return tensor
