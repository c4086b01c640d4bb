"""Learning-rate schedulers: every step's lr (and cycled momentum/betas) equals PyTorch's."""
import copy
import math
import warnings

import pytest
import torch

import ember
import ember.optim as eoptim

STEPS = 300
RTOL = 1e-12


class _Scale:
    """A callable object: LambdaLR saves its __dict__ in state dicts (as PyTorch)."""

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, epoch):
        return self.rate ** epoch


def _opt(m, kind="sgd", groups=2, momentum=0.9):
    """The same optimizer in ember (m=ember) or torch (m=torch) on dummy parameters."""
    params = [m.zeros(2, requires_grad=True) for _ in range(groups)]
    lrs = [0.1, 0.01, 0.5][:groups]
    spec = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    if kind == "sgd":
        return m.optim.SGD(spec, lr=0.1, momentum=momentum)
    return m.optim.Adam(spec, lr=0.1, betas=(0.9, 0.99))


def _seq(m, o):
    s = m.optim.lr_scheduler
    return s.SequentialLR(o, [s.LinearLR(o, 0.1, total_iters=10), s.ExponentialLR(o, 0.99)],
                          milestones=[10])


def _seq3(m, o):
    s = m.optim.lr_scheduler
    return s.SequentialLR(o, [s.ConstantLR(o, 0.5, total_iters=5),
                              s.CosineAnnealingLR(o, T_max=40, eta_min=1e-4),
                              s.StepLR(o, 20, 0.5)], milestones=[30, 120])


def _chain(m, o):
    s = m.optim.lr_scheduler
    return s.ChainedScheduler([s.LinearLR(o, 0.2, total_iters=20),
                               s.CosineAnnealingWarmRestarts(o, T_0=15, T_mult=2),
                               s.MultiStepLR(o, [50, 100, 100], 0.5)])


def _chain_seq(m, o):
    s = m.optim.lr_scheduler
    warm = s.ChainedScheduler([s.ConstantLR(o, 0.5, total_iters=4),
                               s.ExponentialLR(o, 0.98)])
    return s.SequentialLR(o, [warm, s.StepLR(o, 7, 0.8)], milestones=[50])


CASES = {
    "lambda": lambda m, o: m.optim.lr_scheduler.LambdaLR(o, lambda e: 0.97 ** e),
    "lambda_list": lambda m, o: m.optim.lr_scheduler.LambdaLR(
        o, [lambda e: 1 / (1 + e), _Scale(0.99)]),
    "multiplicative": lambda m, o: m.optim.lr_scheduler.MultiplicativeLR(o, lambda e: 0.99),
    "step": lambda m, o: m.optim.lr_scheduler.StepLR(o, 30, 0.5),
    "multistep": lambda m, o: m.optim.lr_scheduler.MultiStepLR(o, [10, 50, 50, 200], 0.3),
    "constant": lambda m, o: m.optim.lr_scheduler.ConstantLR(o, 0.25, total_iters=40),
    "constant_default": lambda m, o: m.optim.lr_scheduler.ConstantLR(o),
    "linear": lambda m, o: m.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, total_iters=100),
    "linear_down": lambda m, o: m.optim.lr_scheduler.LinearLR(o, 1.0, 0.05, total_iters=77),
    "exponential": lambda m, o: m.optim.lr_scheduler.ExponentialLR(o, 0.985),
    "polynomial": lambda m, o: m.optim.lr_scheduler.PolynomialLR(o, total_iters=150, power=2.0),
    "polynomial_default": lambda m, o: m.optim.lr_scheduler.PolynomialLR(o),
    "cosine": lambda m, o: m.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=1e-3),
    "cosine_long": lambda m, o: m.optim.lr_scheduler.CosineAnnealingLR(o, T_max=300),
    "warm_restarts": lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=20),
    "warm_restarts_mult": lambda m, o: m.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        o, T_0=7, T_mult=2, eta_min=1e-4),
    "cyclic_tri": lambda m, o: m.optim.lr_scheduler.CyclicLR(o, 0.001, 0.1, step_size_up=20),
    "cyclic_tri2": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, [0.001, 0.0001], [0.1, 0.05], step_size_up=15, step_size_down=25,
        mode="triangular2", base_momentum=0.7, max_momentum=[0.95, 0.9]),
    "cyclic_exp": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, 0.001, 0.1, step_size_up=10, mode="exp_range", gamma=0.995),
    "cyclic_fn_cycle": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, 0.01, 0.2, step_size_up=9, scale_fn=lambda x: 1.0 / x, cycle_momentum=False),
    "cyclic_fn_iter": lambda m, o: m.optim.lr_scheduler.CyclicLR(
        o, 0.01, 0.2, step_size_up=9, scale_fn=lambda x: 0.99 ** x, scale_mode="iterations"),
    "onecycle": lambda m, o: m.optim.lr_scheduler.OneCycleLR(o, 0.5, total_steps=STEPS),
    "onecycle_epochs_linear": lambda m, o: m.optim.lr_scheduler.OneCycleLR(
        o, [0.5, 0.05], epochs=10, steps_per_epoch=30, pct_start=0.25,
        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0),
    "onecycle_three": lambda m, o: m.optim.lr_scheduler.OneCycleLR(
        o, 0.3, total_steps=STEPS + 5, three_phase=True, base_momentum=0.8,
        max_momentum=[0.95, 0.92]),
    "onecycle_no_mom": lambda m, o: m.optim.lr_scheduler.OneCycleLR(
        o, 0.3, total_steps=STEPS, cycle_momentum=False),
    "sequential": _seq,
    "sequential3": _seq3,
    "chained": _chain,
    "chained_in_sequential": _chain_seq,
}
ADAM_CASES = ["cyclic_tri", "cyclic_exp", "onecycle", "onecycle_three"]


def _momenta(o):
    return [g["betas"] if "betas" in g else g.get("momentum") for g in o.param_groups]


def _close(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _close(x, y)
    else:
        assert a == pytest.approx(b, rel=RTOL, abs=0), (a, b)


def _run(sched, o, n):
    out = []
    for _ in range(n):
        o.step()
        sched.step()
        out.append((list(sched.get_last_lr()), copy.deepcopy(_momenta(o)),
                    [g["lr"] for g in o.param_groups], getattr(sched, "last_epoch", None)))
    return out


def _compare(case, kind):
    eo, to = _opt(ember, kind), _opt(torch, kind)
    es, ts = CASES[case](ember, eo), CASES[case](torch, to)
    _close(es.get_last_lr(), ts.get_last_lr())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning-free order raises nothing
        er = _run(es, eo, STEPS)
    tr = _run(ts, to, STEPS)
    for i, (e, t) in enumerate(zip(er, tr)):
        _close(e[:3], t[:3])
        assert e[3] == t[3], i
    return eo, to, es, ts


@pytest.mark.parametrize("case", sorted(CASES))
def test_sequence_matches_torch(case):
    _compare(case, "sgd")


@pytest.mark.parametrize("case", ADAM_CASES)
def test_adam_beta1_cycling(case):
    eo, to, _, _ = _compare(case, "adam")
    assert eo.param_groups[0]["betas"][1] == 0.99
    _close(_momenta(eo), _momenta(to))


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_round_trip(case):
    eo, to = _opt(ember), _opt(torch)
    es, ts = CASES[case](ember, eo), CASES[case](torch, to)
    _run(es, eo, 120)
    _run(ts, to, 120)
    sd = es.state_dict()
    tsd = ts.state_dict()
    assert list(sd) == list(tsd)
    if "_schedulers" in sd:
        assert [list(c) for c in sd["_schedulers"]] == [list(c) for c in tsd["_schedulers"]]
    # a fresh ember pair (optimizer state restored) continues exactly as the original run
    eo2 = _opt(ember)
    es2 = CASES[case](ember, eo2)
    eo2.load_state_dict(eo.state_dict())
    es2.load_state_dict(copy.deepcopy(sd))
    _close(es2.get_last_lr(), es.get_last_lr())
    a = _run(es, eo, STEPS - 130)
    b = _run(es2, eo2, STEPS - 130)
    c = _run(ts, to, STEPS - 130)
    for x, y, z in zip(a, b, c):
        _close(x[:3], y[:3])
        _close(x[:3], z[:3])


def test_lambda_state_saves_callable_objects_only():
    for m in (ember, torch):
        o = _opt(m)
        s = m.optim.lr_scheduler.LambdaLR(o, [lambda e: 1.0, _Scale(0.5)])
        assert s.state_dict()["lr_lambdas"] == [None, {"rate": 0.5}]
        s.load_state_dict({**s.state_dict(), "lr_lambdas": [None, {"rate": 0.25}]})
        assert s.lr_lambdas[1].rate == 0.25


def _plateau_metrics():
    seq = []
    for i in range(STEPS):
        phase = i // 37
        if phase % 3 == 0:
            seq.append(10.0 / (1 + i))           # improving
        elif phase % 3 == 1:
            seq.append(5.0 + 1e-6 * (i % 5))     # flat plateau (within threshold)
        else:
            seq.append(5.0 + 0.01 * (i % 7))     # noisy worse values
    return seq


PLATEAU = {
    "default": dict(),
    "max_abs": dict(mode="max", threshold=0.05, threshold_mode="abs", patience=3),
    "min_abs_cool": dict(threshold=1e-3, threshold_mode="abs", patience=2, cooldown=4,
                         factor=0.5),
    "max_rel_minlr": dict(mode="max", factor=0.3, patience=1, cooldown=2, min_lr=1e-4),
    "minlr_list_eps": dict(factor=0.5, patience=0, min_lr=[1e-3, 1e-5], eps=1e-4),
}


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_reduce_on_plateau(name):
    kw = PLATEAU[name]
    sign = -1.0 if kw.get("mode") == "max" else 1.0
    eo, to = _opt(ember), _opt(torch)
    es = ember.optim.lr_scheduler.ReduceLROnPlateau(eo, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(to, **kw)
    metrics = _plateau_metrics()
    for i, v in enumerate(metrics):
        eo.step()
        to.step()
        es.step(sign * v if i % 2 else ember.tensor(sign * v))
        ts.step(sign * v if i % 2 else torch.tensor(sign * v))
        _close(es.get_last_lr(), ts.get_last_lr())
        assert (es.best, es.num_bad_epochs, es.cooldown_counter, es.last_epoch) == \
            (ts.best, ts.num_bad_epochs, ts.cooldown_counter, ts.last_epoch)
        if i == 150:
            sd = es.state_dict()
            assert list(sd) == list(ts.state_dict())
            eo2 = _opt(ember)
            eo2.load_state_dict(eo.state_dict())
            es2 = ember.optim.lr_scheduler.ReduceLROnPlateau(eo2)
            es2.load_state_dict(copy.deepcopy(sd))
        if i > 150:
            eo2.step()
            es2.step(sign * v)
            _close(es2.get_last_lr(), es.get_last_lr())
    reductions = sum(1 for a, b in zip(es.get_last_lr(), [0.1, 0.01]) if a < b)
    assert reductions >= 1


@pytest.mark.parametrize("T_0,T_mult", [(10, 1), (5, 2), (3, 3)])
def test_warm_restarts_fractional_epochs(T_0, T_mult):
    eo, to = _opt(ember), _opt(torch)
    es = ember.optim.lr_scheduler.CosineAnnealingWarmRestarts(eo, T_0, T_mult, eta_min=1e-3)
    ts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(to, T_0, T_mult, eta_min=1e-3)
    for i in range(STEPS):
        epoch = i * 0.37 + (i % 4) / 10
        eo.step()
        to.step()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            es.step(epoch)
            ts.step(epoch)
        _close(es.get_last_lr(), ts.get_last_lr())
        assert (es.T_i, es.last_epoch) == (ts.T_i, ts.last_epoch)
        _close(es.T_cur, ts.T_cur)


@pytest.mark.parametrize("case", ["step", "multistep", "constant", "linear", "exponential",
                                  "polynomial", "cosine"])
def test_step_with_epoch_uses_closed_form(case):
    eo, to = _opt(ember), _opt(torch)
    es, ts = CASES[case](ember, eo), CASES[case](torch, to)
    for epoch in [3, 10, 0, 57, 200, 41, 299]:
        eo.step()
        to.step()
        with pytest.warns(UserWarning, match="epoch parameter"):
            es.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts.step(epoch)
        _close(es.get_last_lr(), ts.get_last_lr())


def test_initial_lr_and_resume():
    for m in (ember, torch):
        o = _opt(m)
        m.optim.lr_scheduler.StepLR(o, 5)
        assert [g["initial_lr"] for g in o.param_groups] == [0.1, 0.01]
        o2 = _opt(m)
        with pytest.raises(KeyError, match="param 'initial_lr' is not specified in "
                                           "param_groups\\[0\\]"):
            m.optim.lr_scheduler.StepLR(o2, 5, last_epoch=3)
    # resuming with initial_lr present continues the schedule from last_epoch
    eo, to = _opt(ember), _opt(torch)
    for o in (eo, to):
        for g in o.param_groups:
            g["initial_lr"] = g["lr"] * 2
    es = ember.optim.lr_scheduler.CosineAnnealingLR(eo, 30, last_epoch=12)
    ts = torch.optim.lr_scheduler.CosineAnnealingLR(to, 30, last_epoch=12)
    _close(es.get_last_lr(), ts.get_last_lr())
    for e, t in zip(_run(es, eo, 60), _run(ts, to, 60)):
        _close(e[:3], t[:3])


def test_call_order_warning():
    o = _opt(ember)
    s = ember.optim.lr_scheduler.StepLR(o, 5)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()
    o = _opt(ember)
    s = ember.optim.lr_scheduler.StepLR(o, 5)
    o.step = lambda closure=None: None
    with pytest.warns(UserWarning, match="has been overridden"):
        s.step()


def test_get_lr_outside_step_warns():
    o = _opt(ember)
    s = ember.optim.lr_scheduler.StepLR(o, 5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        s.get_lr()


def test_lr_scheduler_alias_and_base():
    assert issubclass(ember.optim.lr_scheduler._LRScheduler,
                      ember.optim.lr_scheduler.LRScheduler)
    with pytest.raises(NotImplementedError):
        ember.optim.lr_scheduler.LRScheduler(_opt(ember))


def test_onecycle_past_total_steps():
    for m in (ember, torch):
        o = _opt(m)
        s = m.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=5)
        for _ in range(4):
            o.step()
            s.step()
        o.step()
        s.step()
        with pytest.raises(ValueError, match="Tried to step 6 times. The specified number of "
                                             "total steps is 5"):
            s.step()


def _bad(m):
    ls = m.optim.lr_scheduler
    return {
        "not_optimizer": (lambda: ls.StepLR(object(), 3)),
        "lambda_count": (lambda: ls.LambdaLR(_opt(m), [lambda e: 1.0])),
        "mult_not_callable": (lambda: ls.MultiplicativeLR(_opt(m), 0.5)),
        "constant_factor": (lambda: ls.ConstantLR(_opt(m), factor=1.5)),
        "linear_start": (lambda: ls.LinearLR(_opt(m), start_factor=0.0)),
        "linear_end": (lambda: ls.LinearLR(_opt(m), end_factor=1.5)),
        "restarts_T0": (lambda: ls.CosineAnnealingWarmRestarts(_opt(m), 0)),
        "restarts_T0_float": (lambda: ls.CosineAnnealingWarmRestarts(_opt(m), 2.5)),
        "restarts_Tmult": (lambda: ls.CosineAnnealingWarmRestarts(_opt(m), 3, T_mult=0)),
        "restarts_eta": (lambda: ls.CosineAnnealingWarmRestarts(_opt(m), 3, eta_min="x")),
        "restarts_neg_epoch": (lambda: ls.CosineAnnealingWarmRestarts(_opt(m), 3).step(-1)),
        "cyclic_mode": (lambda: ls.CyclicLR(_opt(m), 0.1, 1.0, mode="bad")),
        "cyclic_no_momentum": (lambda: ls.CyclicLR(_no_momentum_opt(m), 0.1, 1.0)),
        "cyclic_lr_list": (lambda: ls.CyclicLR(_opt(m), [0.1], 1.0)),
        "onecycle_no_steps": (lambda: ls.OneCycleLR(_opt(m), 0.1)),
        "onecycle_steps": (lambda: ls.OneCycleLR(_opt(m), 0.1, total_steps=0)),
        "onecycle_epochs": (lambda: ls.OneCycleLR(_opt(m), 0.1, epochs=0, steps_per_epoch=3)),
        "onecycle_spe": (lambda: ls.OneCycleLR(_opt(m), 0.1, epochs=2, steps_per_epoch=-1)),
        "onecycle_pct": (lambda: ls.OneCycleLR(_opt(m), 0.1, total_steps=9, pct_start=1.5)),
        "onecycle_anneal": (lambda: ls.OneCycleLR(_opt(m), 0.1, total_steps=9,
                                                  anneal_strategy="exp")),
        "onecycle_no_momentum": (lambda: ls.OneCycleLR(_no_momentum_opt(m), 0.1,
                                                       total_steps=9)),
        "plateau_factor": (lambda: ls.ReduceLROnPlateau(_opt(m), factor=1.0)),
        "plateau_mode": (lambda: ls.ReduceLROnPlateau(_opt(m), mode="avg")),
        "plateau_threshold_mode": (lambda: ls.ReduceLROnPlateau(_opt(m), threshold_mode="x")),
        "plateau_min_lr_len": (lambda: ls.ReduceLROnPlateau(_opt(m), min_lr=[0.1])),
        "plateau_not_optimizer": (lambda: ls.ReduceLROnPlateau("sgd")),
        "sequential_empty": (lambda: ls.SequentialLR(_opt(m), [], [])),
        "sequential_milestones": (lambda: _seq_bad_milestones(m)),
        "sequential_plateau": (lambda: _with_plateau(m, "SequentialLR")),
        "sequential_other_opt": (lambda: _other_opt(m, "SequentialLR")),
        "sequential_no_optimizer": (lambda: ls.SequentialLR(_opt(m), [object()], [])),
        "chained_empty": (lambda: ls.ChainedScheduler([])),
        "chained_plateau": (lambda: _with_plateau(m, "ChainedScheduler")),
        "chained_other_opt": (lambda: _other_opt(m, "ChainedScheduler")),
    }


def _no_momentum_opt(m):
    class Plain(m.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

    return Plain([m.zeros(1, requires_grad=True)])


def _seq_bad_milestones(m):
    o = _opt(m)
    ls = m.optim.lr_scheduler
    return ls.SequentialLR(o, [ls.StepLR(o, 2), ls.StepLR(o, 3)], milestones=[1, 2])


def _with_plateau(m, cls):
    o = _opt(m)
    ls = m.optim.lr_scheduler
    scheds = [ls.StepLR(o, 2), ls.ReduceLROnPlateau(o)]
    if cls == "SequentialLR":
        return ls.SequentialLR(o, scheds, milestones=[3])
    return ls.ChainedScheduler(scheds)


def _other_opt(m, cls):
    o, o2 = _opt(m), _opt(m)
    ls = m.optim.lr_scheduler
    scheds = [ls.StepLR(o, 2), ls.StepLR(o2, 3)]
    if cls == "SequentialLR":
        return ls.SequentialLR(o, scheds, milestones=[3])
    return ls.ChainedScheduler(scheds)


@pytest.mark.parametrize("name", sorted(_bad(torch)))
def test_bad_input_raises_torch_type(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as t_err:
            _bad(torch)[name]()
        with pytest.raises(Exception) as e_err:
            _bad(ember)[name]()
    assert e_err.type is t_err.type, (e_err.value, t_err.value)
    e_msg, t_msg = str(e_err.value), str(t_err.value)
    if name.endswith("other_opt"):
        # the message embeds the optimizer's repr; compare the part before it
        e_msg, t_msg = e_msg.split(" has ")[0], t_msg.split(" has ")[0]
    assert e_msg == t_msg


def test_plateau_new_group_with_min_lr_list():
    for m in (ember, torch):
        o = _opt(m)
        s = m.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0, min_lr=[0.0, 0.0])
        o.add_param_group({"params": [m.zeros(1, requires_grad=True)], "lr": 0.2})
        s.step(1.0)
        with pytest.raises(RuntimeError, match="number of param groups"):
            s.step(2.0)
