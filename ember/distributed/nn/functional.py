"""Differentiable collectives (``torch.distributed.nn.functional``).

Each is a custom ``autograd.Function`` whose backward is the adjoint collective: the gradient
of ``all_reduce(SUM)`` is the sum over ranks of the ranks' upstream gradients, that of
``all_gather`` is each rank's own slice of the summed gradients, that of ``broadcast`` the sum
reduced to the source. Every rank must run backward through the same collectives in the same
order, as in PyTorch.
"""
from __future__ import annotations

from ...autograd.function import Function
from .. import distributed_c10d as c10d
from ..distributed_c10d import ReduceOp

__all__ = ["all_reduce", "all_gather", "broadcast"]


class _AllReduce(Function):
    @staticmethod
    def forward(ctx, op, group, tensor):
        ctx.group = group
        ctx.op = op
        out = tensor.clone()
        c10d.all_reduce(out, op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        if ctx.op not in (ReduceOp.SUM, ReduceOp.AVG):
            raise RuntimeError(f"Unsupported op {ctx.op.name} for the backward of all_reduce: "
                               "only SUM and AVG are differentiable")
        g = grad.contiguous().clone()
        c10d.all_reduce(g, op=ctx.op, group=ctx.group)
        return None, None, g


class _AllGather(Function):
    @staticmethod
    def forward(ctx, group, tensor):
        ctx.group = group
        out = [tensor.new_empty(tensor.shape) for _ in range(c10d.get_world_size(group))]
        c10d.all_gather(out, tensor.contiguous(), group=group)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        from ... import stack
        summed = stack([g.contiguous() for g in grads]).clone()
        c10d.all_reduce(summed, group=ctx.group)
        return None, summed[c10d.get_rank(ctx.group)]


class _Broadcast(Function):
    @staticmethod
    def forward(ctx, src, group, tensor):
        ctx.src = src
        ctx.group = group
        out = tensor.clone()
        c10d.broadcast(out, src, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        g = grad.contiguous().clone()
        c10d.reduce(g, ctx.src, group=ctx.group)
        if c10d.get_rank() != ctx.src:
            g.zero_()
        return None, None, g


def all_reduce(tensor, op=ReduceOp.SUM, group=None):
    """The reduction of ``tensor`` over ranks, as a new tensor autograd differentiates."""
    return _AllReduce.apply(op, group, tensor)


def all_gather(tensor, group=None) -> tuple:
    """Every rank's ``tensor``, in rank order, as a differentiable tuple."""
    return _AllGather.apply(group, tensor)


def broadcast(tensor, src: int = 0, group=None):
    """Rank ``src``'s ``tensor`` on every rank; the gradient is summed back to ``src``."""
    return _Broadcast.apply(src, group, tensor)
