"""save_checkpoint / load_checkpoint: resuming training continues bit for bit."""
import random

import numpy as np
import pytest
import torch

import ember
from ember.utils.checkpoint_io import load_checkpoint, save_checkpoint

_rs = np.random.RandomState(7)
X = _rs.randn(64, 4).astype(np.float32)
Y = _rs.randn(64, 1).astype(np.float32)


def _make(seed):
    ember.manual_seed(seed)
    model = ember.nn.Sequential(ember.nn.Linear(4, 16), ember.nn.ReLU(), ember.nn.Dropout(0.3),
                                ember.nn.Linear(16, 1))
    opt = ember.optim.Adam(model.parameters(), lr=0.01)
    sched = ember.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
    return model, opt, sched


def _train(model, opt, sched, steps):
    model.train()
    for _ in range(steps):
        idx = np.random.permutation(len(X))[:8]            # NumPy's global RNG shuffles
        scale = random.choice([0.0, 0.01, 0.02])           # Python's RNG picks a noise level
        x = ember.from_numpy(X[idx]) + ember.randn(8, 4) * scale  # ember's RNG (and dropout)
        loss = ((model(x) - ember.from_numpy(Y[idx])) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _seed_all(seed):
    np.random.seed(seed)
    random.seed(seed)
    ember.manual_seed(seed)


def test_resume_is_bit_for_bit(tmp_path):
    _seed_all(0)
    model, opt, sched = _make(1)
    _train(model, opt, sched, 20)
    straight = [p.detach().numpy().copy() for p in model.parameters()]

    _seed_all(0)
    model, opt, sched = _make(1)
    _train(model, opt, sched, 10)
    save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, scheduler=sched, epoch=3,
                    step=10, best_metric=0.25, note="halfway", history=[1.0, 0.5])
    del model, opt, sched
    _seed_all(99)  # a fresh process would have other RNG states and other weights
    model, opt, sched = _make(2)
    ck = load_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, scheduler=sched)
    assert (ck["epoch"], ck["step"], ck["best_metric"]) == (3, 10, 0.25)
    assert ck["note"] == "halfway" and ck["history"] == [1.0, 0.5]
    assert sched.last_epoch == 10
    _train(model, opt, sched, 10)
    resumed = [p.detach().numpy() for p in model.parameters()]
    for a, b in zip(straight, resumed):
        assert np.array_equal(a, b)


def test_checkpoint_is_weights_only_loadable_by_torch(tmp_path):
    model, opt, sched = _make(0)
    _train(model, opt, sched, 2)
    save_checkpoint(tmp_path / "ck.pt", model=model, optimizer=opt, scheduler=sched)
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert set(ck) == {"model", "optimizer", "scheduler", "epoch", "step", "best_metric",
                       "rng_state"}
    assert set(ck["rng_state"]) == {"ember", "numpy", "python"}
    assert ck["rng_state"]["numpy"]["keys"].shape == (624,)
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                               torch.nn.Linear(16, 1))
    tnet.load_state_dict(ck["model"])
    topt = torch.optim.Adam(tnet.parameters(), lr=0.01)
    topt.load_state_dict(ck["optimizer"])
    assert ember.load(tmp_path / "ck.pt")["scheduler"]["last_epoch"] == 2


def test_model_only_checkpoint_and_errors(tmp_path):
    model, opt, _ = _make(0)
    save_checkpoint(tmp_path / "m.pt", model=model)
    ck = load_checkpoint(tmp_path / "m.pt", model=_make(5)[0])
    assert ck["optimizer"] is None and ck["epoch"] == 0
    with pytest.raises(RuntimeError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "m.pt", model=model, optimizer=opt)
    with pytest.raises(TypeError, match=r"extra entries \['rng_state'\] clash"):
        save_checkpoint(tmp_path / "x.pt", model=model, **{"rng_state": 1})
    ember.save({"weights": model.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(RuntimeError, match="not a checkpoint written by save_checkpoint"):
        load_checkpoint(tmp_path / "plain.pt", model=model)
    wrong = ember.nn.Linear(4, 2)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_checkpoint(tmp_path / "m.pt", model=wrong)
