"""``ember.optim.swa_utils`` against ``torch.optim.swa_utils``: ``AveragedModel`` (SWA, EMA by
``multi_avg_fn`` and by ``avg_fn``, ``use_buffers``), its state dict, ``update_bn``, and the
errors a user can get; in float32 and float64."""
import numpy as np
import pytest
import torch

import ember


def _model(L, dtype):
    L.manual_seed(0)
    m = L.nn.Sequential(L.nn.Linear(4, 6), L.nn.BatchNorm1d(6), L.nn.Linear(6, 2)).to(dtype)
    rng = np.random.default_rng(0)
    with L.no_grad():
        for p in m.parameters():
            p.copy_(L.tensor(rng.standard_normal(tuple(p.shape))))
    return m, L.tensor(rng.standard_normal((8, 4))).to(dtype)


AVERAGES = {
    "swa": lambda su, m: su.AveragedModel(m),
    "ema-multi": lambda su, m: su.AveragedModel(m, multi_avg_fn=su.get_ema_multi_avg_fn(0.9)),
    "swa-multi": lambda su, m: su.AveragedModel(m, multi_avg_fn=su.get_swa_multi_avg_fn()),
    "ema-avg-fn": lambda su, m: su.AveragedModel(m, avg_fn=su.get_ema_avg_fn(0.8)),
    "swa-avg-fn": lambda su, m: su.AveragedModel(m, avg_fn=su.get_swa_avg_fn()),
    "use-buffers": lambda su, m: su.AveragedModel(m, use_buffers=True),
}


def _train(L, kind, dt, steps=6):
    m, x = _model(L, getattr(L, dt))
    avg = AVERAGES[kind](L.optim.swa_utils, m)
    opt = L.optim.SGD(m.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
        avg.update_parameters(m)
    return avg, x


@pytest.mark.parametrize("kind", list(AVERAGES))
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_averaged_model_matches_torch(kind, dt):
    a, xa = _train(ember, kind, dt)
    b, xb = _train(torch, kind, dt)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    rtol = 1e-5 if dt == "float32" else 1e-12
    for k in sa:
        np.testing.assert_allclose(sa[k].numpy(), sb[k].numpy(), rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(a(xa).detach().numpy(), b(xb).detach().numpy(), rtol=rtol,
                               atol=1e-6)
    assert int(a.n_averaged) == 6


def test_update_bn_matches_torch():
    outs = []
    for L in (ember, torch):
        m, x = _model(L, L.float64)
        loader = [(x[:4], 0), (x[4:], 1)]
        m.eval()
        L.optim.swa_utils.update_bn(loader, m)
        bn = m[1]
        assert not m.training and bn.momentum == 0.1
        outs.append((bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_bad_arguments_raise_torchs_errors():
    for L in (ember, torch):
        su = L.optim.swa_utils
        m = L.nn.Linear(2, 2)
        with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
            su.AveragedModel(m, avg_fn=su.get_swa_avg_fn(),
                             multi_avg_fn=su.get_swa_multi_avg_fn())
        for make in (su.get_ema_avg_fn, su.get_ema_multi_avg_fn):
            with pytest.raises(ValueError, match=r"Invalid decay value 1.5 provided"):
                make(1.5)


@pytest.mark.parametrize("strategy, epochs", [("cos", 4), ("linear", 3), ("cos", 0)])
def test_swalr_matches_torch(strategy, epochs):
    lrs = []
    for L in (ember, torch):
        lin = L.nn.Linear(2, 2)
        opt = L.optim.SGD([{"params": [lin.weight], "lr": 0.5}, {"params": [lin.bias]}],
                          lr=0.1)
        s = L.optim.swa_utils.SWALR(opt, swa_lr=[0.05, 0.02], anneal_epochs=epochs,
                                    anneal_strategy=strategy)
        got = []
        for _ in range(7):
            opt.step()
            s.step()
            got.append(s.get_last_lr())
        s2 = L.optim.swa_utils.SWALR(opt, swa_lr=0.05)
        s2.load_state_dict(s.state_dict())
        assert s2.anneal_func(1.0) == 1.0 and "anneal_func" not in s.state_dict()
        lrs.append(got)
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)


def test_swalr_bad_arguments_raise_torchs_errors():
    for L in (ember, torch):
        opt = L.optim.SGD(L.nn.Linear(2, 2).parameters(), lr=0.1)
        with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
            L.optim.swa_utils.SWALR(opt, 0.05, anneal_strategy="exp")
        with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
            L.optim.swa_utils.SWALR(opt, 0.05, anneal_epochs=-1)
        with pytest.raises(ValueError, match="swa_lr must have the same length"):
            L.optim.swa_utils.SWALR(opt, [0.1, 0.2])
