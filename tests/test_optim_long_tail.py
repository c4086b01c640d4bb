"""Rprop, Adafactor and SparseAdam against PyTorch: trajectories, state dicts, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from test_optim_more import (to_torch_sd, to_ember_sd, make_params, init_arrays, run_steps,
                             assert_params)

SHAPES = [(4, 3), (3,), (2, 3, 2), ()]

CASES = [
    ("Rprop", {}),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.7), step_sizes=(1e-3, 0.2))),
    ("Rprop", dict(maximize=True)),
    ("Adafactor", {}),
    ("Adafactor", dict(lr=0.05, beta2_decay=-0.5, d=2.0)),
    ("Adafactor", dict(weight_decay=0.1, eps=(1e-4, 1e-2))),
    ("Adafactor", dict(maximize=True)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_trajectory_and_state_dict(name, kw, dtype):
    arrays = init_arrays(dtype, shapes=SHAPES)
    ep, tp = make_params(arrays)
    eo = getattr(ember.optim, name)(ep, **kw)
    to = getattr(torch.optim, name)(tp, **kw)
    rng = np.random.default_rng(1)
    # gradients with repeated signs, so Rprop's step sizes grow and shrink
    run_steps(eo, to, ep, tp, rng, dtype, 12)
    assert_params(ep, tp, dtype)
    esd, tsd = eo.state_dict(), to.state_dict()
    assert esd["param_groups"] == tsd["param_groups"]
    for k, st in tsd["state"].items():
        assert sorted(esd["state"][k]) == sorted(st)
        for key, val in st.items():
            np.testing.assert_allclose(esd["state"][k][key].numpy(), val.numpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=key)
            assert str(esd["state"][k][key].dtype)[6:] == str(val.dtype)[6:]
    # a torch state dict loads into ember and the runs continue equal
    ep2, tp2 = make_params([p.detach().numpy() for p in tp])
    eo2 = getattr(ember.optim, name)(ep2, **kw)
    eo2.load_state_dict(to_ember_sd(tsd))
    to2 = getattr(torch.optim, name)(tp2, **kw)
    to2.load_state_dict(to_torch_sd(esd))
    run_steps(eo2, to2, ep2, tp2, rng, dtype, 4)
    assert_params(ep2, tp2, dtype)


def test_rprop_sign_logic_on_a_quadratic():
    """Minimising a quadratic: steps grow while the sign holds, shrink when it flips."""
    res = []
    for m in (ember, torch):
        x = m.tensor([3.0, -2.0], dtype=m.float64, requires_grad=True)
        opt = m.optim.Rprop([x], lr=0.5)
        for _ in range(25):
            opt.zero_grad()
            (x * x * m.tensor([1.0, 10.0], dtype=m.float64)).sum().backward()
            opt.step()
        res.append(x.detach().numpy())
    np.testing.assert_allclose(res[0], res[1])
    assert np.abs(res[0]).max() < 0.1


def test_adafactor_state_shapes():
    p = ember.nn.Parameter(ember.randn(3, 4, 5))
    opt = ember.optim.Adafactor([p])
    p.grad = ember.randn(3, 4, 5)
    opt.step()
    st = opt.state[p]
    assert st["row_var"].shape == (3, 4, 1) and st["col_var"].shape == (3, 1, 5)


def test_sparse_adam_update_matches_torch_on_sparse_gradients():
    """The array update on COO indices/values equals torch's SparseAdam, float32 and 64."""
    from ember.optim.sparse_adam import sparse_adam_update
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        w = rng.standard_normal((6, 3)).astype(dtype)
        tp = torch.nn.Parameter(torch.from_numpy(w.copy()))
        to = torch.optim.SparseAdam([tp], lr=0.1, betas=(0.8, 0.9))
        p, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
        group = dict(lr=0.1, betas=(0.8, 0.9), eps=1e-8)
        for step in range(1, 6):
            rows = rng.choice(6, size=3)  # repeated rows are summed by coalesce
            dense = np.zeros_like(w)
            np.add.at(dense, rows, rng.standard_normal((3, 3)).astype(dtype))
            g = torch.from_numpy(dense).to_sparse().coalesce()
            tp.grad = g
            to.step()
            sparse_adam_update(p, g.indices().numpy(), g.values().numpy(), m, v, step, group,
                               np)
            np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(m, to.state[tp]["exp_avg"].numpy(), rtol=1e-5,
                                       atol=1e-7)


@pytest.mark.parametrize("maximize", [False, True])
def test_sparse_adam_steps_on_sparse_gradients(maximize):
    """``step`` with ember's sparse COO gradients (``to_sparse``) follows torch's trajectory."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 3))
    ep = ember.nn.Parameter(ember.tensor(w.copy()))
    tp = torch.nn.Parameter(torch.tensor(w.copy()))
    eo = ember.optim.SparseAdam([ep], lr=0.1, maximize=maximize)
    to = torch.optim.SparseAdam([tp], lr=0.1, maximize=maximize)
    for _ in range(4):
        dense = np.zeros_like(w)
        dense[rng.choice(6, 2)] = rng.standard_normal((2, 3))
        ep.grad = ember.tensor(dense).to_sparse()
        tp.grad = torch.tensor(dense).to_sparse()
        eo.step()
        to.step()
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-12)
    assert eo.state_dict()["state"][0]["step"] == to.state_dict()["state"][0]["step"] == 4


def test_sparse_adam_refuses_dense_gradients():
    for m in (ember, torch):
        p = m.nn.Parameter(m.ones(3))
        opt = m.optim.SparseAdam([p])
        p.grad = m.ones(3)
        with pytest.raises(RuntimeError, match="SparseAdam does not support dense gradients, "
                                               "please consider Adam instead"):
            opt.step()
        p.grad = None
        opt.step()  # parameters without gradients are skipped


BAD = [
    ("rprop_lr", lambda m, p: m.optim.Rprop(p, lr=-1.0), ValueError, "Invalid learning rate"),
    ("rprop_etas", lambda m, p: m.optim.Rprop(p, etas=(1.2, 0.5)), ValueError,
     "Invalid eta values: 1.2, 0.5"),
    ("rprop_lr_tensor", lambda m, p: m.optim.Rprop(p, lr=m.ones(2)), ValueError,
     "Tensor lr must be 1-element"),
    ("ada_lr", lambda m, p: m.optim.Adafactor(p, lr=-1.0), ValueError,
     "Learning rate should be >= 0"),
    ("ada_beta", lambda m, p: m.optim.Adafactor(p, beta2_decay=0.5), ValueError,
     "beta2_decay should be <= 0 but is: 0.5"),
    ("ada_eps1", lambda m, p: m.optim.Adafactor(p, eps=(-1.0, 1e-3)), ValueError,
     "epsilon1 should be >= 0"),
    ("ada_eps2", lambda m, p: m.optim.Adafactor(p, eps=(None, -1.0)), ValueError,
     "epsilon2 should be >= 0"),
    ("ada_d", lambda m, p: m.optim.Adafactor(p, d=0.5), ValueError,
     "Clipping threshold d should be >= 1 but is: 0.5"),
    ("ada_wd", lambda m, p: m.optim.Adafactor(p, weight_decay=-1.0), ValueError,
     "weight_decay should be >= 0"),
    ("sadam_lr", lambda m, p: m.optim.SparseAdam(p, lr=0.0), ValueError, "Invalid learning rate"),
    ("sadam_eps", lambda m, p: m.optim.SparseAdam(p, eps=0.0), ValueError,
     "Invalid epsilon value"),
    ("sadam_beta", lambda m, p: m.optim.SparseAdam(p, betas=(1.0, 0.9)), ValueError,
     "Invalid beta parameter at index 0"),
    ("sadam_beta2", lambda m, p: m.optim.SparseAdam(p, betas=(0.9, -0.1)), ValueError,
     "Invalid beta parameter at index 1"),
]


@pytest.mark.parametrize("name,fn,exc,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(name, fn, exc, msg):
    for m in (torch, ember):
        with pytest.raises(exc, match=msg):
            fn(m, [m.nn.Parameter(m.ones(2))])
