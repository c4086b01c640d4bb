"""``ember.distributed.optim``: ``DistributedOptimizer`` (``torch.distributed.optim``).

One ordinary optimizer per worker that owns parameters, created there by ``rpc.remote`` on
the ``RRef``s it owns; ``step(context_id)`` asks each to read the context's gradients
(``ember.distributed.autograd.get_gradients``) into its parameters' ``.grad`` and step,
all at once, and waits for them.
"""
from __future__ import annotations

import threading

from .. import autograd as dist_autograd
from .. import rpc
from .zero_redundancy_optimizer import ZeroRedundancyOptimizer

__all__ = ["DistributedOptimizer", "ZeroRedundancyOptimizer"]


class _LocalOptimizer:
    def __init__(self, optim_cls, param_rrefs, args, kwargs) -> None:
        self.params = [r.local_value() for r in param_rrefs]
        self.optim = optim_cls(self.params, *args, **kwargs)
        self.lock = threading.Lock()

    def step(self, context_id) -> None:
        grads = dist_autograd.get_gradients(context_id)
        with self.lock:
            for p in self.params:
                p.grad = grads.get(p)
            self.optim.step()


def _new_local(optim_cls, param_rrefs, args, kwargs):
    return _LocalOptimizer(optim_cls, param_rrefs, args, kwargs)


def _local_step(opt_rref, context_id) -> None:
    opt_rref.local_value().step(context_id)


class DistributedOptimizer:
    """``optimizer_class(params, *args, **kwargs)`` on each owner of ``params_rref``."""

    def __init__(self, optimizer_class, params_rref, *args, **kwargs) -> None:
        by_owner = {}
        for r in params_rref:
            by_owner.setdefault(r.owner().id, []).append(r)
        self.remote_optimizers = [
            rpc.remote(owner, _new_local, args=(optimizer_class, rrefs, args, kwargs))
            for owner, rrefs in by_owner.items()]

    def step(self, context_id) -> None:
        """One step of every owner's optimizer with the context's gradients."""
        futs = [rpc.rpc_async(o.owner(), _local_step, args=(o, context_id))
                for o in self.remote_optimizers]
        for f in futs:
            f.wait()
