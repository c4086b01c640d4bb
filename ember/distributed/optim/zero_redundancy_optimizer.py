"""``ZeroRedundancyOptimizer`` (``torch.distributed.optim``): each rank keeps the optimizer
state of its share of the parameters only (ZeRO stage 1).

The parameters are assigned to ranks as PyTorch does (``_partition``: group by group, largest
first, each to the rank holding the fewest elements so far); a rank builds ``optimizer_class``
over its share of every group (a share can be empty), and ``step()`` copies each group's
hyper-parameters (an lr a schedule or the program set on ``param_groups``) into it, steps it,
copies them back, then broadcasts every parameter from the rank that owns it, so all ranks hold
the same values after each step.  ``consolidate_state_dict(to)`` gathers every rank's local
state dict on rank ``to``; ``state_dict()`` there is a plain optimizer's over all the
parameters (global indices, group by group); ``load_state_dict`` keeps this rank's share of it.
``overlap_with_ddp``, ``parameters_as_bucket_view`` and a process group other than the
default one are not implemented."""
from __future__ import annotations

from collections import defaultdict

from ..._tensor import Tensor
from ...optim.optimizer import Optimizer, _tname
from .. import distributed_c10d as c10d

__all__ = ["ZeroRedundancyOptimizer"]


def _partition(param_groups: list, world_size: int) -> list:
    """Each rank's param groups (PyTorch's ``_partition_parameters``): every group's
    parameters largest first (stable), each to the rank with the fewest elements so far (the
    lowest such rank), the counts carried from group to group; a rank's group may be empty."""
    shares = [[] for _ in range(world_size)]
    load = [0] * world_size
    for group in param_groups:
        mine = [[] for _ in range(world_size)]
        for p in sorted(group["params"], key=lambda p: p.numel(), reverse=True):
            r = load.index(min(load))
            mine[r].append(p)
            load[r] += p.numel()
        for r in range(world_size):
            share = {k: v for k, v in group.items() if k != "params"}
            share["params"] = mine[r]
            shares[r].append(share)
    return shares


def _sync_groups(src: list, dst: list) -> None:
    """Copy every option but ``params`` from each group of ``src`` to its group in ``dst``."""
    for s, d in zip(src, dst):
        for k, v in s.items():
            if k != "params":
                d[k] = v


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
        if isinstance(params, Tensor):
            raise TypeError("`params` argument should be an iterable of Tensors, but got "
                            + _tname(params))
        params = list(params)
        if not params:
            raise ValueError("ZeroRedundancyOptimizer got an empty parameter list")
        super().__init__(params, defaults)
        self.process_group = process_group
        self.rank = c10d.get_rank(process_group)
        self.world_size = c10d.get_world_size(process_group)
        self._assign()
        # every group, even an empty share of one, so local and global groups pair one to one
        self.optim = optimizer_class(self._shares[self.rank], **defaults)
        _sync_groups(self.optim.param_groups, self.param_groups)  # the class's defaults
        self._all_state = []  # the ranks' local state dicts, on the consolidating rank

    def _assign(self) -> None:
        """Each rank's share of every group (``_shares``) and each parameter's rank."""
        self._shares = _partition(self.param_groups, self.world_size)
        self.owner = {}  # id(param) -> the (group) rank that updates it
        for r, groups in enumerate(self._shares):
            for g in groups:
                for p in g["params"]:
                    self.owner[id(p)] = r

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (on all ranks, as PyTorch's): its parameters go to ranks as the
        constructor's did, the earlier groups' owners unchanged, this rank's share (maybe
        empty) to the local optimizer."""
        super().add_param_group(param_group)
        if getattr(self, "optim", None) is not None:  # (not the constructor's groups)
            self._assign()
            self.optim.add_param_group(self._shares[self.rank][-1])
            _sync_groups(self.optim.param_groups[-1:], self.param_groups[-1:])

    def step(self, closure=None, **kwargs):
        """Step this rank's share (with ``param_groups``' current hyper-parameters), then
        broadcast each parameter from its owner."""
        _sync_groups(self.param_groups, self.optim.param_groups)
        if closure is not None:
            kwargs["closure"] = closure
        loss = self.optim.step(**kwargs)
        _sync_groups(self.optim.param_groups, self.param_groups)
        for g in self.param_groups:
            for p in g["params"]:
                c10d.broadcast(p.data, self.owner[id(p)])
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)

    def consolidate_state_dict(self, to: int = 0) -> None:
        """Gather every rank's local optimizer state on rank ``to`` (for ``state_dict``); called
        on all ranks."""
        _sync_groups(self.param_groups, self.optim.param_groups)
        states = [None] * self.world_size
        c10d.all_gather_object(states, self.optim.state_dict(), self.process_group)
        self._all_state = states if self.rank == to else []

    def state_dict(self) -> dict:
        """The last consolidated state as one optimizer's over all the parameters: parameters
        numbered group by group, ``state`` keyed by those numbers."""
        if not self._all_state:
            raise RuntimeError("Optimizer state has not been consolidated on this rank. Please "
                               f"call `consolidate_state_dict(to={self.rank})` on all ranks "
                               "beforehand if you meant to save the global state.")
        sd = super().state_dict()
        index = {id(p): i for i, p in enumerate(self._every())}
        for local, groups in zip(self._all_state, self._shares):
            for lg, g in zip(local["param_groups"], groups):
                for k, p in zip(lg["params"], g["params"]):
                    if k in local["state"]:
                        sd["state"][index[id(p)]] = local["state"][k]
        sd["state"] = dict(sorted(sd["state"].items()))
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Load ``state_dict`` (as ``state_dict`` gives it): this rank keeps the state of the
        parameters it owns, and every rank takes the groups' hyper-parameters."""
        every = self._every()
        mine = {k: v for k, v in state_dict["state"].items()
                if 0 <= k < len(every) and self.owner[id(every[k])] == self.rank}
        # the base class checks the groups, casts the state and takes the hyper-parameters
        super().load_state_dict({"state": mine, "param_groups": state_dict["param_groups"]})
        self.optim.state.update(self.state)
        self.state = defaultdict(dict)  # the local optimizer holds this rank's state
        _sync_groups(self.param_groups, self.optim.param_groups)

    def _every(self) -> list:
        """All parameters in state-dict order (group by group)."""
        return [p for g in self.param_groups for p in g["params"]]
