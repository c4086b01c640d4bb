"""Compiled optimizer steps of the optimizers beyond SGD/Adam (NOTE [ Compiled optimizer
steps ]): 20-step trajectories equal eager ember's and torch's, inside a compiled training
step too; state dicts round-trip after compiled steps; what is not covered runs eagerly."""
import numpy as np
import pytest
import torch

import ember
from ember._dynamo.optim_step import _STEPS

# (optimizer, options): weight decay, momentum, centering, maximize where the optimizer has them
CASES = [
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("Adamax", dict(lr=1e-2, weight_decay=0.1)),
    ("Adamax", dict(lr=1e-2, maximize=True)),
    ("NAdam", dict(lr=1e-2, weight_decay=0.1)),
    ("NAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=1e-2, weight_decay=0.1)),
    ("RAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, rho=0.8, maximize=True)),
    ("ASGD", dict(lr=1e-2, t0=5, weight_decay=0.1)),
    ("ASGD", dict(lr=1e-2, lambd=1e-3, maximize=True)),
    ("Rprop", dict(lr=1e-2)),
    ("Rprop", dict(lr=1e-2, etas=(0.4, 1.3), step_sizes=(1e-4, 1.0), maximize=True)),
    # a (5, 3) weight takes the factored row/column path, the (3,) bias the full one
    ("Adafactor", dict(lr=1e-2)),
    ("Adafactor", dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    ("Adafactor", dict(lr=5e-2, beta2_decay=-0.5, eps=(1e-12, 1e-2), d=2.0)),
    ("Adafactor", dict(lr=1e-2, weight_decay=0.05, d=1.5, maximize=True)),
]
IDS = [f"{n}-{'-'.join(kw)}" for n, kw in CASES]

_W = np.random.default_rng(0).standard_normal((5, 3))
_B = np.random.default_rng(1).standard_normal(3)
_X = np.random.default_rng(2).standard_normal((8, 5))
_Y = np.random.default_rng(3).standard_normal((8, 3))


def _setup(lib, name, kw, dtype):
    """Two parameters (a weight and a bias), the optimizer and a loss closure in ``lib``."""
    dt = getattr(lib, dtype)
    w = lib.tensor(_W, dtype=dt, requires_grad=True)
    b = lib.tensor(_B, dtype=dt, requires_grad=True)
    x, y = lib.tensor(_X, dtype=dt), lib.tensor(_Y, dtype=dt)
    opt = getattr(lib.optim, name)([w, b], **kw)

    def loss():
        return ((lib.tanh(x @ w + b) - y) ** 2).mean()
    return (w, b), opt, loss


def _train(params, opt, loss, step, n=20):
    for _ in range(n):
        opt.zero_grad()
        loss().backward()
        step()
    return [p.detach().numpy().copy() for p in params]


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)


def _state_equal(a, b):
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for key in sa[k]:
            np.testing.assert_array_equal(np.asarray(sa[k][key]), np.asarray(sb[k][key]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_compiled_step_trajectory_equals_eager_and_torch(name, kw, dtype):
    pe, oe, le = _setup(ember, name, kw, dtype)
    eager = _train(pe, oe, le, oe.step)
    pc, oc, lc = _setup(ember, name, kw, dtype)
    step = ember.compile(oc.step)
    compiled = _train(pc, oc, lc, step)
    pt, ot, lt = _setup(torch, name, kw, dtype)
    ref = _train(pt, ot, lt, ot.step)
    for e, c, t in zip(eager, compiled, ref):
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=0)
        np.testing.assert_allclose(c, t, **_tol(dtype))
    _state_equal(oe, oc)
    # one generated function over both parameters, never regenerated
    assert step.kind == "called" and step.recompiles == 0
    assert step.code.count("_update(opt, ") == 2


@pytest.mark.parametrize("name,kw", CASES[::2], ids=IDS[::2])
def test_opt_step_inside_a_compiled_training_step(name, kw):
    ember.compiler.reset()  # one cache per code object: each case starts from none
    (we, be), oe, _ = _setup(ember, name, kw, "float32")
    (wc, bc), oc, _ = _setup(ember, name, kw, "float32")
    x, y = ember.tensor(_X, dtype=ember.float32), ember.tensor(_Y, dtype=ember.float32)

    def train_step(opt, w, b, x, y):
        opt.zero_grad()
        out = ((ember.tanh(x @ w + b) - y) ** 2).mean()
        out.backward()
        opt.step()
        return out
    cf = ember.compile(train_step)
    for _ in range(20):
        a = train_step(oe, we, be, x, y)
        c = cf(oc, wc, bc, x, y)
        assert float(c) == pytest.approx(float(a), rel=1e-5)
    for e, c in zip((we, be), (wc, bc)):
        np.testing.assert_allclose(c.detach().numpy(), e.detach().numpy(), rtol=1e-5)
    _state_equal(oe, oc)
    assert _STEPS[oc].version is not None  # the update ran as the generated function
    assert ember.compiler.explain(train_step)(oc, wc, bc, x, y).graph_break_count == 0


@pytest.mark.parametrize("name,kw", CASES[1::2], ids=IDS[1::2])
def test_state_dict_round_trips_after_compiled_steps(name, kw, tmp_path):
    pe, oe, le = _setup(ember, name, kw, "float64")
    eager = _train(pe, oe, le, oe.step, 20)
    pc, oc, lc = _setup(ember, name, kw, "float64")
    _train(pc, oc, lc, ember.compile(oc.step), 10)
    ember.save({"opt": oc.state_dict(), "params": [p.detach() for p in pc]},
               tmp_path / "ck.pt")
    ck = ember.load(tmp_path / "ck.pt")
    # fresh optimizers from the checkpoint, their next ten steps eager and compiled
    runs = []
    for compiled in (False, True):
        pr, orr, lr = _setup(ember, name, kw, "float64")
        with ember.no_grad():
            for p, q in zip(pr, ck["params"]):
                p.copy_(q)
        orr.load_state_dict(ck["opt"])
        runs.append((_train(pr, orr, lr, ember.compile(orr.step) if compiled else orr.step,
                            10), orr))
    (re_, oe2), (rc, oc2) = runs
    for e, a, b in zip(eager, re_, rc):
        np.testing.assert_array_equal(b, a)
        # load_state_dict casts float state (NAdam's mu_product) to the parameter's dtype,
        # as PyTorch's does, so the resumed run differs from the uninterrupted one in rounding
        np.testing.assert_allclose(b, e, rtol=1e-6)
    _state_equal(oe2, oc2)
    # the state dict is PyTorch's: torch's optimizer loads it and holds the same keys
    pt, ot, _ = _setup(torch, name, kw, "float64")
    ot.load_state_dict(torch.load(tmp_path / "ck.pt")["opt"])
    assert ot.state_dict()["state"][0].keys() == oc.state_dict()["state"][0].keys()


class _MyRMSprop(ember.optim.RMSprop):
    """An update the compiler cannot know: it must run as written."""

    def _update(self, p, g, state, group, xp):
        super()._update(p, g, state, group, xp)
        p *= 0.5


class _MyAdafactor(ember.optim.Adafactor):
    """A step of its own around the stock update: it must run as written."""

    def _step_group(self, group):
        super()._step_group(group)
        for p in group["params"]:
            p.data.mul_(0.5)


@pytest.mark.parametrize("make", [
    lambda ps: _MyRMSprop(ps, lr=1e-2),
    lambda ps: _MyAdafactor(ps, lr=1e-2),
], ids=["overridden-update", "overridden-step-group"])
def test_an_optimizer_not_covered_runs_its_eager_step(make):
    ws = [ember.tensor(_W, requires_grad=True) for _ in range(2)]
    opts = [make([w]) for w in ws]
    step = ember.compile(opts[1].step)
    x = ember.tensor(_X)
    for _ in range(5):
        for k, (w, o) in enumerate(zip(ws, opts)):
            o.zero_grad()
            (x @ w).sin().sum().backward()
            o.step() if k == 0 else step()
    assert step.kind is None and step.version is None
    np.testing.assert_array_equal(ws[1].detach().numpy(), ws[0].detach().numpy())


def test_complex_parameters_and_first_steps_run_eagerly():
    # a complex gradient is updated as real pairs by eager's step: never by generated code
    zs = [ember.tensor(np.array([1 + 2j, -0.5j]), requires_grad=True) for _ in range(2)]
    opts = [ember.optim.RMSprop([z], lr=1e-2) for z in zs]
    step = ember.compile(opts[1].step)
    for _ in range(3):
        for k, (z, o) in enumerate(zip(zs, opts)):
            o.zero_grad()
            (z * z.conj()).real.sum().backward()
            o.step() if k == 0 else step()
    assert step.version is None
    np.testing.assert_array_equal(zs[1].detach().numpy(), zs[0].detach().numpy())
    zt = torch.tensor(np.array([1 + 2j, -0.5j]), requires_grad=True)
    ot = torch.optim.RMSprop([zt], lr=1e-2)
    for _ in range(3):
        ot.zero_grad()
        (zt * zt.conj()).real.sum().backward()
        ot.step()
    np.testing.assert_allclose(zs[1].detach().numpy(), zt.detach().numpy(), rtol=1e-12)


def test_an_uncovered_optimizer_inside_a_compiled_step_breaks_with_eagers_numbers():
    ember.compiler.reset()
    ws = [ember.tensor(_W, requires_grad=True) for _ in range(2)]
    opts = [_MyRMSprop([w], lr=1e-2) for w in ws]
    x = ember.tensor(_X)

    def train_step(opt, w):
        opt.zero_grad()
        out = (x @ w).sin().sum()
        out.backward()
        opt.step()
        return out
    cf = ember.compile(train_step)
    for _ in range(5):
        a = train_step(opts[0], ws[0])
        b = cf(opts[1], ws[1])
        assert float(b) == float(a)
    np.testing.assert_array_equal(ws[1].detach().numpy(), ws[0].detach().numpy())
    reasons = [r.reason for r in ember.compiler.explain(train_step)(opts[1], ws[1]).break_reasons]
    assert any("_MyRMSprop.step()" in r for r in reasons)
