"""Run by tests/test_zero_redundancy.py under ``mpiexec -n 2 python this.py OUTDIR``: a
ZeroRedundancyOptimizer where rank 1 owns nothing, and one over two groups whose parameters are
assigned group by group; its consolidated state dict, the error without one, and a resumed run
from it.  Each rank pickles what it saw to OUTDIR/rank<r>.pkl for the test to check against
torch."""
import os
import pickle
import sys

import numpy as np

SIZES = [[1], [10, 9]]  # assigned group by group: not the owners of one sort over all three
STEPS, MORE = 3, 2


def groups_options():
    """Hyper-parameters of the two groups (the second its own lr and weight decay)."""
    return [{}, {"lr": 0.05, "weight_decay": 0.0}]


def initial():
    """Float64 starting values of the parameters, group by group."""
    return [[np.cos(np.arange(n) + 3.0 * i) for i, n in enumerate(g)] for g in SIZES]


def grad(i: int, n: int, step: int):
    """The gradient of the i-th parameter (numbered over all groups) at ``step``."""
    return np.sin(np.arange(n) + 10.0 * i + step) * (step + 1)


def _to_numpy(obj):
    import ember
    if isinstance(obj, ember.Tensor):
        return obj.detach().numpy().copy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v) for v in obj)
    return obj


def main(outdir: str) -> None:
    import ember as torch
    import ember.distributed as dist
    from ember.distributed.optim import ZeroRedundancyOptimizer
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    out = {}
    # rank 1 owns no parameter and still steps (an empty share of the one group)
    p = torch.nn.Parameter(torch.ones(3))
    zo = ZeroRedundancyOptimizer([p], torch.optim.SGD, lr=0.1)
    p.grad = torch.ones(3)
    zo.step()
    out["one"] = (p.detach().numpy().tolist(), [len(g["params"]) for g in zo.optim.param_groups])

    def make():
        ps = [[torch.nn.Parameter(torch.tensor(a)) for a in g] for g in initial()]
        every = [q for g in ps for q in g]
        groups = [dict(o, params=g) for o, g in zip(groups_options(), ps)]
        return every, ZeroRedundancyOptimizer(groups, torch.optim.AdamW, lr=0.1)

    def run(every, opt, steps):
        for s in steps:
            for i, q in enumerate(every):
                q.grad = torch.tensor(grad(i, q.numel(), s))
            opt.step()

    every, zo = make()
    index = {id(q): i for i, q in enumerate(every)}
    out["share"] = [[index[id(q)] for q in g["params"]] for g in zo.optim.param_groups]
    out["group_keys"] = [sorted(g) for g in zo.param_groups]
    run(every, zo, range(STEPS))
    out["after"] = [q.detach().numpy().copy() for q in every]
    zo.consolidate_state_dict(to=1)
    try:
        sd = zo.state_dict()
        out["sd"] = _to_numpy(sd)
    except RuntimeError as e:
        sd, out["sd_error"] = None, str(e)
    got = [sd]
    dist.broadcast_object_list(got, src=1)
    sd = got[0]
    # resume: fresh parameters with the current values and a fresh optimizer, loaded
    again, zo2 = make()
    with torch.no_grad():
        for a, b in zip(again, every):
            a.copy_(b)
    zo2.load_state_dict(sd)
    out["loaded_local_state"] = [i for i, q in enumerate(again) if q in zo2.optim.state]
    run(again, zo2, range(STEPS, STEPS + MORE))
    run(every, zo, range(STEPS, STEPS + MORE))
    out["resumed"] = [q.detach().numpy().copy() for q in again]
    out["continued"] = [q.detach().numpy().copy() for q in every]
    try:
        zo2.load_state_dict({"state": {}, "param_groups": sd["param_groups"][:1]})
    except ValueError as e:
        out["bad_groups"] = str(e)
    # a group added after construction: the same owners as given at once, steps as SGD's
    ps = [[torch.nn.Parameter(torch.tensor(a)) for a in g] for g in initial()]
    zo3 = ZeroRedundancyOptimizer(ps[0], torch.optim.SGD, lr=0.1, momentum=0.9)
    zo3.add_param_group({"params": ps[1], "lr": 0.2})
    flat = [q for g in ps for q in g]
    run(flat, zo3, range(STEPS))
    at = {id(q): i for i, q in enumerate(flat)}
    out["added_share"] = [[at[id(q)] for q in g["params"]] for g in zo3.optim.param_groups]
    out["added"] = [q.detach().numpy().copy() for q in flat]
    with open(os.path.join(outdir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(out, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
