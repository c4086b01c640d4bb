"""``ember.distributed.optim.ZeroRedundancyOptimizer`` against torch's: the assignment of
parameters to ranks (torch's own, on its in-process fake process group), and under
``mpiexec -n 2`` (tests/_zero_redundancy_sd_worker.py) a rank with no parameters, the
consolidated state dict against a plain torch AdamW's, and a run resumed from it."""
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.distributed.optim.zero_redundancy_optimizer import _partition

_WORKER = os.path.join(os.path.dirname(__file__), "_zero_redundancy_sd_worker.py")
_spec = importlib.util.spec_from_file_location("_zero_redundancy_sd_worker", _WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def _torch_shares(sizes, world_size, add_later=False):
    """Each rank's local param groups in torch's ZeroRedundancyOptimizer, as indices over all
    parameters (one fake process group per rank: it partitions without communicating); with
    ``add_later``, the groups after the first added by ``add_param_group``."""
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.testing._internal.distributed.fake_pg import FakeStore
    shares = []
    for rank in range(world_size):
        dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
        try:
            ps = [[torch.nn.Parameter(torch.ones(n)) for n in g] for g in sizes]
            index = {p: i for i, p in enumerate(p for g in ps for p in g)}
            groups = [{"params": g} for g in ps]
            zo = ZeroRedundancyOptimizer(groups[:1] if add_later else groups, torch.optim.SGD,
                                         lr=0.1)
            for g in groups[1:] if add_later else ():
                zo.add_param_group(g)
            shares.append([[index[p] for p in g["params"]] for g in zo.optim.param_groups])
        finally:
            dist.destroy_process_group()
    return shares


def _ember_shares(sizes, world_size):
    ps = [[ember.nn.Parameter(ember.ones(n)) for n in g] for g in sizes]
    index = {id(p): i for i, p in enumerate(p for g in ps for p in g)}
    return [[[index[id(p)] for p in g["params"]] for g in groups]
            for groups in _partition([{"params": g} for g in ps], world_size)]


@pytest.mark.parametrize("sizes,world_size", [
    ([[1], [10, 9]], 2),          # group by group differs from one sort over all parameters
    ([[10, 9, 8, 1]], 2),
    ([[3]], 2),                   # rank 1 owns nothing
    ([[4, 4, 4], [4, 4]], 3),     # ties go to the lowest rank, equal sizes keep their order
    ([[5, 1], [], [2, 7, 7]], 4),  # an empty group
])
def test_partition_equals_torch(sizes, world_size):
    assert _ember_shares(sizes, world_size) == _torch_shares(sizes, world_size)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 12), max_size=4), min_size=1, max_size=3)
       .filter(lambda s: any(s)), st.integers(2, 4))
def test_partition_equals_torch_any_layout(sizes, world_size):
    assert _ember_shares(sizes, world_size) == _torch_shares(sizes, world_size)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the worker's two ranks saw."""
    if shutil.which("mpiexec") is None:
        pytest.skip("no mpiexec (the distributed extra installs MPICH's)")
    out = tmp_path_factory.mktemp("zero")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(_WORKER)))
    r = subprocess.run(["mpiexec", "-n", "2", sys.executable, _WORKER, str(out)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return [pickle.loads((out / f"rank{k}.pkl").read_bytes()) for k in range(2)]


def _torch_run(steps, opt=None, ps=None):
    """Plain torch AdamW over the worker's groups for ``steps``."""
    if opt is None:
        ps = [torch.nn.Parameter(torch.tensor(a)) for g in worker.initial() for a in g]
        it = iter(ps)
        groups = [dict(o, params=[next(it) for _ in g])
                  for o, g in zip(worker.groups_options(), worker.SIZES)]
        opt = torch.optim.AdamW(groups, lr=0.1)
    for s in steps:
        for i, p in enumerate(ps):
            p.grad = torch.tensor(worker.grad(i, p.numel(), s))
        opt.step()
    return opt, ps


def test_rank_without_parameters_steps(ranks):
    """torch's local optimizer takes a group with no parameters; every rank gets the update."""
    assert [r["one"] for r in ranks] == [([np.float32(0.9).item()] * 3, [1]),
                                        ([np.float32(0.9).item()] * 3, [0])]


def test_owners_and_groups_equal_torch(ranks):
    assert [r["share"] for r in ranks] == _torch_shares(worker.SIZES, 2)
    torch_opt, _ = _torch_run([])
    for r in ranks:  # the wrapper's groups carry the wrapped class's defaults, as torch's
        assert r["group_keys"] == [sorted(g) for g in torch_opt.param_groups]


def test_state_dict_equals_plain_optimizers(ranks):
    """Consolidated on rank 1, ZeRO's state dict is a plain AdamW's over all the parameters:
    global indices group by group, state keyed by them (torch's documented format)."""
    opt, ps = _torch_run(range(worker.STEPS))
    for r in ranks:
        for got, want in zip(r["after"], ps):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-14)
    want = opt.state_dict()
    sd = ranks[1]["sd"]
    assert [g["params"] for g in sd["param_groups"]] == [g["params"]
                                                          for g in want["param_groups"]]
    for g, w in zip(sd["param_groups"], want["param_groups"]):
        assert {k: v for k, v in g.items() if k != "betas"} == \
            {k: v for k, v in w.items() if k != "betas"}
        assert tuple(g["betas"]) == tuple(w["betas"])
    assert list(sd["state"]) == list(want["state"]) == [0, 1, 2]
    for k, s in sd["state"].items():
        assert sorted(s) == sorted(want["state"][k])
        for name, v in s.items():
            np.testing.assert_allclose(v, want["state"][k][name].numpy(), rtol=1e-12,
                                       atol=1e-15)


def test_state_dict_without_consolidating_raises_torchs_error(ranks):
    assert ranks[0]["sd_error"] == (
        "Optimizer state has not been consolidated on this rank. Please call "
        "`consolidate_state_dict(to=0)` on all ranks beforehand if you meant to save the "
        "global state.")
    assert "sd_error" not in ranks[1]


def test_load_state_dict_keeps_this_ranks_share_and_resumes(ranks):
    """Each rank loads only the state of the parameters it owns; the resumed run equals the
    uninterrupted one bit for bit, and torch's plain AdamW over all the steps."""
    assert [r["loaded_local_state"] for r in ranks] == [[0, 2], [1]]
    opt, ps = _torch_run(range(worker.STEPS))
    _torch_run(range(worker.STEPS, worker.STEPS + worker.MORE), opt, ps)
    for r in ranks:
        for a, b, want in zip(r["resumed"], r["continued"], ps):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, want.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_load_state_dict_with_other_groups_raises_valueerror(ranks):
    assert ranks[0]["bad_groups"] == ranks[1]["bad_groups"] == (
        "loaded state dict has a different number of parameter groups")


def test_bad_params_raise_torchs_errors():
    from ember.distributed.optim import ZeroRedundancyOptimizer
    with pytest.raises(ValueError, match="ZeroRedundancyOptimizer got an empty parameter list"):
        ZeroRedundancyOptimizer([], ember.optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match="should be an iterable of Tensors, but got "
                                        "torch.FloatTensor"):
        ZeroRedundancyOptimizer(ember.nn.Parameter(ember.ones(2)), ember.optim.SGD, lr=0.1)


def test_add_param_group_as_torch(ranks):
    """A group added after construction: torch's owners (earlier groups' unchanged) and a
    plain torch SGD's values."""
    assert [r["added_share"] for r in ranks] == _torch_shares(worker.SIZES, 2, add_later=True)
    ps = [torch.nn.Parameter(torch.tensor(a)) for g in worker.initial() for a in g]
    opt = torch.optim.SGD(ps[:1], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": ps[1:], "lr": 0.2})
    _torch_run(range(worker.STEPS), opt, ps)
    for r in ranks:
        for got, want in zip(r["added"], ps):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-14)
