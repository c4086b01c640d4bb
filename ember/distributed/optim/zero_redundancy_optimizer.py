"""``ZeroRedundancyOptimizer`` (``torch.distributed.optim``): each rank keeps the optimizer
state of its share of the parameters only (ZeRO stage 1).

The parameters are assigned to ranks as PyTorch does (largest first, each to the rank holding
the fewest elements so far); a rank builds ``optimizer_class`` over its own share, group by
group, and ``step()`` copies each group's hyper-parameters (an lr a schedule or the program
set on ``param_groups``) into it, steps it, then broadcasts every parameter from the rank that
owns it, so all ranks hold the same values after each step.  ``state_dict`` needs
``consolidate_state_dict`` first, as in PyTorch; ``overlap_with_ddp``,
``parameters_as_bucket_view`` and a process group other than the default one are not
implemented."""
from __future__ import annotations

from ...optim.optimizer import Optimizer
from .. import distributed_c10d as c10d

__all__ = ["ZeroRedundancyOptimizer"]


class ZeroRedundancyOptimizer(Optimizer):
    """Wrap ``optimizer_class`` so that each rank updates (and keeps state for) a share of
    ``params``, then broadcasts it (``torch.distributed.optim.ZeroRedundancyOptimizer``)."""

    def __init__(self, params, optimizer_class, process_group=None,
                 parameters_as_bucket_view: bool = False, overlap_with_ddp: bool = False,
                 **defaults):
        if parameters_as_bucket_view or overlap_with_ddp or process_group is not None:
            raise NotImplementedError("ember's ZeroRedundancyOptimizer: parameters_as_bucket_"
                                      "view, overlap_with_ddp and a process_group other than "
                                      "the default one are not implemented")
        super().__init__(params, defaults)
        self.process_group = process_group
        self.rank = c10d.get_rank(process_group)
        self.world_size = c10d.get_world_size(process_group)
        self.owner = {}  # id(param) -> the (group) rank that updates it
        load = [0] * self.world_size
        every = [p for g in self.param_groups for p in g["params"]]
        for p in sorted(every, key=lambda p: -p.numel()):
            r = min(range(self.world_size), key=lambda k: load[k])
            self.owner[id(p)] = r
            load[r] += p.numel()
        mine = []
        for g in self.param_groups:
            own = {k: v for k, v in g.items() if k != "params"}
            own["params"] = [p for p in g["params"] if self.owner[id(p)] == self.rank]
            mine.append(own)
        self._shares = [len(g["params"]) for g in mine]
        self.optim = optimizer_class([g for g in mine if g["params"]], **defaults)
        self._all_state = None

    def step(self, closure=None):
        """Step this rank's share (with ``param_groups``' current hyper-parameters), then
        broadcast each parameter from its owner."""
        local = iter(self.optim.param_groups)
        for g, n in zip(self.param_groups, self._shares):
            if n:
                mine = next(local)
                for k, v in g.items():
                    if k != "params":
                        mine[k] = v
        loss = self.optim.step(closure) if closure is not None else self.optim.step()
        for g in self.param_groups:
            for p in g["params"]:
                c10d.broadcast(p.data, self.owner[id(p)])
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's optimizer state on rank ``to`` (for ``state_dict``)."""
        states = [None] * self.world_size
        c10d.all_gather_object(states, self.optim.state_dict())
        self._all_state = states if self.rank == to else None

    def state_dict(self):
        if self._all_state is None:
            raise RuntimeError("Optimizer state has not been consolidated on this rank. Please "
                               "call `consolidate_state_dict(to=0)` on all ranks beforehand and "
                               "call `state_dict()` on the destination rank.")
        return {"state": self._all_state, "param_groups": self.param_groups}
