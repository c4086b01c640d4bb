"""NAdam, RAdam, ASGD and LBFGS against PyTorch: trajectories, state dicts, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

SHAPES = [(4, 3), (3,), (2, 2, 2), ()]
TOL = {"float64": dict(rtol=1e-5, atol=1e-9), "float32": dict(rtol=1e-4, atol=1e-6)}


# ---- helpers ------------------------------------------------------------------------------
def to_torch_sd(obj):
    """A (nested) ember state dict with its tensors converted to torch through NumPy."""
    if isinstance(obj, ember.Tensor):
        return torch.from_numpy(obj.numpy().copy())
    if isinstance(obj, dict):
        return {k: to_torch_sd(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_torch_sd(v) for v in obj)
    return obj


def to_ember_sd(obj):
    """A (nested) torch state dict with its tensors converted to ember through NumPy."""
    if isinstance(obj, torch.Tensor):
        return ember.from_numpy(obj.detach().numpy().copy())
    if isinstance(obj, dict):
        return {k: to_ember_sd(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_ember_sd(v) for v in obj)
    return obj


def make_params(arrays):
    ep = [ember.nn.Parameter(ember.from_numpy(a.copy())) for a in arrays]
    tp = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return ep, tp


def init_arrays(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def feed_grads(ep, tp, rng, dtype, skip=None):
    """Give both parameter lists the same random gradient (None for index ``skip``)."""
    for i, (e, t) in enumerate(zip(ep, tp)):
        if i == skip:
            e.grad, t.grad = None, None
            continue
        g = rng.standard_normal(e.shape).astype(dtype)
        e.grad = ember.from_numpy(g.copy())
        t.grad = torch.from_numpy(g.copy())


def assert_params(ep, tp, dtype):
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), **TOL[dtype])


def run_steps(eo, to, ep, tp, rng, dtype, n, skip_every=7):
    for i in range(n):
        # every few steps one parameter gets no gradient and must be skipped
        skip = (i % len(ep)) if i % skip_every == 3 else None
        feed_grads(ep, tp, rng, dtype, skip)
        eo.step()
        to.step()


OPTS = {"NAdam": ember.optim.NAdam, "RAdam": ember.optim.RAdam, "ASGD": ember.optim.ASGD}

CASES = [
    ("NAdam", {}),
    ("NAdam", dict(lr=1e-2, betas=(0.8, 0.99))),
    ("NAdam", dict(weight_decay=0.1)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(momentum_decay=0.05, eps=1e-3)),
    ("NAdam", dict(maximize=True, weight_decay=0.05)),
    ("NAdam", dict(betas=(0.3, 0.5))),  # beta1 < 0.5: the other branch of lerp
    ("RAdam", {}),
    ("RAdam", dict(lr=1e-2, betas=(0.8, 0.9))),  # rho_t > 5 reached after a few steps
    ("RAdam", dict(betas=(0.9, 0.6))),  # rho_inf < 5: never rectified
    ("RAdam", dict(weight_decay=0.1)),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(maximize=True, eps=1e-2)),
    ("ASGD", {}),
    ("ASGD", dict(lr=0.05, lambd=1e-2, alpha=0.5)),
    ("ASGD", dict(t0=20)),  # averaging starts mid-run: mu != 1
    ("ASGD", dict(t0=10, weight_decay=0.1, maximize=True)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", CASES)
def test_trajectory_matches_torch(name, kw, dtype):
    ep, tp = make_params(init_arrays(dtype))
    eo = OPTS[name](ep, **kw)
    to = getattr(torch.optim, name)(tp, **kw)
    run_steps(eo, to, ep, tp, np.random.default_rng(1), dtype, 100)
    assert_params(ep, tp, dtype)
    # the state has torch's keys, dtypes and values
    es, ts = eo.state_dict(), to.state_dict()
    assert list(es["param_groups"][0].keys()) == list(ts["param_groups"][0].keys())
    assert es["param_groups"] == ts["param_groups"]
    for i in ts["state"]:
        assert list(es["state"][i].keys()) == list(ts["state"][i].keys())
        for k, tv in ts["state"][i].items():
            ev = es["state"][i][k]
            assert str(ev.dtype).split(".")[-1] == str(tv.dtype).split(".")[-1], k
            np.testing.assert_allclose(ev.numpy(), tv.numpy(), **TOL[dtype])


@pytest.mark.parametrize("name,kw", [c for c in CASES if c[1] == {} or "t0" in c[1]])
@pytest.mark.parametrize("direction", ["ember_to_torch", "torch_to_ember"])
def test_state_dict_round_trip_mid_run(name, kw, direction):
    dtype = "float64"
    arrays = init_arrays(dtype)
    ep, tp = make_params(arrays)
    eo, to = OPTS[name](ep, **kw), getattr(torch.optim, name)(tp, **kw)
    rng = np.random.default_rng(2)
    run_steps(eo, to, ep, tp, rng, dtype, 30)
    # a fresh optimizer on the other side takes over from the state dict
    if direction == "ember_to_torch":
        to = getattr(torch.optim, name)(tp, **kw)
        to.load_state_dict(to_torch_sd(eo.state_dict()))
    else:
        eo = OPTS[name](ep, **kw)
        eo.load_state_dict(to_ember_sd(to.state_dict()))
    run_steps(eo, to, ep, tp, rng, dtype, 30)
    assert_params(ep, tp, dtype)


@pytest.mark.parametrize("name", list(OPTS))
def test_per_group_options_and_frozen(name):
    dtype = "float64"
    ep, tp = make_params(init_arrays(dtype))
    ep[3].requires_grad_(False)
    tp[3].requires_grad_(False)
    frozen = ep[3].detach().numpy().copy()

    def groups(ps):
        return [{"params": ps[:2], "lr": 1e-4}, {"params": ps[2:], "lr": 1e-2}]

    eo, to = OPTS[name](groups(ep), lr=1e-3), getattr(torch.optim, name)(groups(tp), lr=1e-3)
    rng = np.random.default_rng(3)
    for _ in range(50):
        feed_grads(ep[:3], tp[:3], rng, dtype)
        eo.step()
        to.step()
    assert_params(ep, tp, dtype)
    np.testing.assert_array_equal(ep[3].detach().numpy(), frozen)
    assert eo.param_groups[0]["lr"] == 1e-4 and eo.param_groups[1]["lr"] == 1e-2
    assert ep[3] not in eo.state


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(list(OPTS)), lr=st.floats(1e-4, 0.1),
       wd=st.sampled_from([0.0, 0.01]), seed=st.integers(0, 2 ** 16))
def test_random_hyperparameters(name, lr, wd, seed):
    ep, tp = make_params(init_arrays("float64", seed, [(3, 2), (5,)]))
    eo, to = OPTS[name](ep, lr=lr, weight_decay=wd), getattr(torch.optim, name)(
        tp, lr=lr, weight_decay=wd)
    run_steps(eo, to, ep, tp, np.random.default_rng(seed), "float64", 20)
    assert_params(ep, tp, "float64")


def test_radam_rectification_switch():
    """The step before and after rho_t crosses 5 follows torch's two branches."""
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1
    rhos = [rho_inf - 2 * s * beta2 ** s / (1 - beta2 ** s) for s in range(1, 10)]
    assert rhos[4] <= 5 < rhos[5]  # the switch happens at step 6
    ep, tp = make_params([np.ones(3)])
    eo, to = ember.optim.RAdam(ep, lr=0.1), torch.optim.RAdam(tp, lr=0.1)
    rng = np.random.default_rng(4)
    for _ in range(8):
        feed_grads(ep, tp, rng, "float64")
        eo.step()
        to.step()
        np.testing.assert_allclose(ep[0].detach().numpy(), tp[0].detach().numpy(), rtol=1e-12)


# ---- LBFGS ----------------------------------------------------------------------------------
def rosenbrock(m, x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def lstsq_problem(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((20, 4)), rng.standard_normal((20, 2))


def make_lstsq(m, a, b):
    """Closure factory for a small linear least-squares model y = A·W + b."""
    A, B = m.from_numpy(a.copy()), m.from_numpy(b.copy())

    def loss_fn(params):
        W, c = params
        return ((A @ W + c - B) ** 2).mean()
    return loss_fn


def run_lbfgs(m, arrays, loss_fn, n_steps, **kw):
    if m is torch:
        params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    else:
        params = [ember.nn.Parameter(ember.from_numpy(a.copy())) for a in arrays]
    opt = m.optim.LBFGS(params, **kw)
    losses = []

    def closure():
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    for _ in range(n_steps):
        losses.append(opt.step(closure).item())
    return params, opt, losses


LBFGS_CASES = [
    ("rosenbrock", dict(lr=1, max_iter=20)),
    ("rosenbrock", dict(lr=1, max_iter=20, line_search_fn="strong_wolfe")),
    ("rosenbrock", dict(lr=0.5, max_iter=5, history_size=3, line_search_fn="strong_wolfe")),
    ("rosenbrock", dict(lr=0.1, max_iter=7, max_eval=9, history_size=2)),
    ("lstsq", dict(lr=1, max_iter=10)),
    ("lstsq", dict(lr=1, max_iter=10, line_search_fn="strong_wolfe")),
    ("lstsq", dict(lr=0.3, max_iter=4, history_size=2, tolerance_change=1e-12)),
]


@pytest.mark.parametrize("problem,kw", LBFGS_CASES)
def test_lbfgs_matches_torch(problem, kw):
    if problem == "rosenbrock":
        arrays = [np.array([-1.5, 2.0])]

        def loss_for(m):
            return lambda ps: rosenbrock(m, ps[0])
    else:
        a, b = lstsq_problem()
        arrays = [np.random.default_rng(5).standard_normal((4, 2)), np.zeros(2)]

        def loss_for(m):
            return make_lstsq(m, a, b)
    ep, eo, el = run_lbfgs(ember, arrays, loss_for(ember), 4, **kw)
    tp, to, tl = run_lbfgs(torch, arrays, loss_for(torch), 4, **kw)
    np.testing.assert_allclose(el, tl, rtol=1e-6)
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-6,
                                   atol=1e-10)
    es, ts = eo.state[ep[0]], to.state[tp[0]]
    assert es["func_evals"] == ts["func_evals"]
    assert es["n_iter"] == ts["n_iter"]
    assert len(es["old_dirs"]) == len(ts["old_dirs"])
    assert list(eo.state_dict()["param_groups"][0].keys()) == list(
        to.state_dict()["param_groups"][0].keys())
    assert eo.param_groups[0]["max_eval"] == to.param_groups[0]["max_eval"]


def test_lbfgs_float32_rosenbrock():
    arrays = [np.array([-1.2, 1.0], dtype=np.float32)]
    kw = dict(max_iter=10, line_search_fn="strong_wolfe")
    ep, _, el = run_lbfgs(ember, arrays, lambda ps: rosenbrock(ember, ps[0]), 2, **kw)
    tp, _, tl = run_lbfgs(torch, arrays, lambda ps: rosenbrock(torch, ps[0]), 2, **kw)
    assert ep[0].dtype == ember.float32
    np.testing.assert_allclose(ep[0].detach().numpy(), tp[0].detach().numpy(), rtol=1e-3)


def test_lbfgs_converges_and_stops_early():
    """Rosenbrock is solved; started at the optimum, step returns after one evaluation."""
    _, eo, losses = run_lbfgs(ember, [np.array([-1.5, 2.0])],
                              lambda ps: rosenbrock(ember, ps[0]), 10,
                              line_search_fn="strong_wolfe")
    assert losses[-1] < 1e-9
    p = eo.param_groups[0]["params"][0]
    np.testing.assert_allclose(p.detach().numpy(), [1.0, 1.0], rtol=1e-4)
    ps, opt, losses = run_lbfgs(ember, [np.array([1.0, 1.0])],
                                lambda ps: rosenbrock(ember, ps[0]), 1)
    assert losses == [0.0]
    assert opt.state[ps[0]]["func_evals"] == 1 and opt.state[ps[0]]["n_iter"] == 0
    np.testing.assert_array_equal(ps[0].detach().numpy(), [1.0, 1.0])


def test_lbfgs_step_hooks_and_param_without_grad():
    x = ember.nn.Parameter(ember.tensor([3.0, -1.0], dtype=ember.float64))
    unused = ember.nn.Parameter(ember.tensor([5.0], dtype=ember.float64))
    opt = ember.optim.LBFGS([x, unused])
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = (x ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert calls == ["pre", "post"]
    assert unused.item() == 5.0  # grad None counts as zero: never moved
    np.testing.assert_allclose(x.detach().numpy(), [0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("x1,f1,g1,x2,f2,g2,bounds", [
    (0.0, 1.0, -2.0, 1.0, 0.5, 1.0, None),
    (1.0, 0.5, 1.0, 0.0, 1.0, -2.0, None),
    (0.0, 1.0, -1.0, 2.0, 3.0, 5.0, (0.1, 0.5)),
    (0.0, 0.0, 1.0, 1.0, 0.0, 1.0, None),  # no real minimiser: midpoint
])
def test_cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds):
    from ember.optim.lbfgs import _cubic_interpolate
    from torch.optim.lbfgs import _cubic_interpolate as t_cubic
    tg1, tg2 = torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, dtype=torch.float64)
    expected = float(t_cubic(x1, f1, tg1, x2, f2, tg2, bounds=bounds))
    got = float(_cubic_interpolate(x1, f1, np.float64(g1), x2, f2, np.float64(g2),
                                   bounds=bounds))
    assert got == pytest.approx(expected, rel=1e-12)


# ---- bad inputs -----------------------------------------------------------------------------
BAD = [
    ("NAdam", dict(lr=-1.0)), ("NAdam", dict(eps=-1.0)), ("NAdam", dict(betas=(1.0, 0.9))),
    ("NAdam", dict(betas=(0.9, -0.1))), ("NAdam", dict(weight_decay=-1.0)),
    ("NAdam", dict(momentum_decay=-1.0)),
    ("RAdam", dict(lr=-1.0)), ("RAdam", dict(eps=-1.0)), ("RAdam", dict(betas=(-0.1, 0.9))),
    ("RAdam", dict(betas=(0.9, 1.0))), ("RAdam", dict(weight_decay=-1.0)),
    ("ASGD", dict(lr=-1.0)), ("ASGD", dict(weight_decay=-1.0)),
    ("LBFGS", dict(lr=-1.0)),
]


def _raises(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - we compare the type with torch's
        return type(exc), str(exc)
    return None, None


@pytest.mark.parametrize("name,kw", BAD)
def test_bad_hyperparameters(name, kw):
    e_type, e_msg = _raises(lambda: getattr(ember.optim, name)(
        [ember.nn.Parameter(ember.zeros(2))], **kw))
    t_type, t_msg = _raises(lambda: getattr(torch.optim, name)(
        [torch.nn.Parameter(torch.zeros(2))], **kw))
    assert t_type is not None and e_type is t_type
    assert e_msg == t_msg


@pytest.mark.parametrize("name", ["NAdam", "RAdam", "ASGD", "LBFGS"])
@pytest.mark.parametrize("case", ["empty", "not_tensor", "duplicate_groups"])
def test_bad_params(name, case):
    def build(m):
        p = m.nn.Parameter(m.zeros(2))
        q = m.nn.Parameter(m.zeros(2))
        if case == "empty":
            return getattr(m.optim, name)([])
        if case == "not_tensor":
            return getattr(m.optim, name)([p, 3.0])
        return getattr(m.optim, name)([{"params": [p, q]}, {"params": [p]}])
    e_type, _ = _raises(lambda: build(ember))
    t_type, _ = _raises(lambda: build(torch))
    assert t_type is not None and e_type is t_type


def test_lbfgs_param_groups_and_closure_required():
    def build(m):
        p, q = m.nn.Parameter(m.zeros(2)), m.nn.Parameter(m.zeros(2))
        return m.optim.LBFGS([{"params": [p]}, {"params": [q], "lr": 0.1}])
    e_type, e_msg = _raises(lambda: build(ember))
    t_type, t_msg = _raises(lambda: build(torch))
    assert e_type is t_type is ValueError and e_msg == t_msg
    with pytest.raises(TypeError):
        ember.optim.LBFGS([ember.nn.Parameter(ember.zeros(2))]).step()
    x = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.LBFGS([x], line_search_fn="bogus")

    def closure():
        opt.zero_grad()
        loss = (x ** 2).sum()
        loss.backward()
        return loss
    with pytest.raises(RuntimeError, match="strong_wolfe"):
        opt.step(closure)


@pytest.mark.parametrize("name", list(OPTS))
def test_load_state_dict_mismatch(name):
    ep, tp = make_params(init_arrays("float64"))
    eo = OPTS[name](ep)
    sd_groups = OPTS[name]([{"params": ep[:2]}, {"params": ep[2:]}]).state_dict()
    with pytest.raises(ValueError):
        eo.load_state_dict(sd_groups)
    with pytest.raises(ValueError):
        eo.load_state_dict(OPTS[name](ep[:2]).state_dict())


@pytest.mark.parametrize("name", list(OPTS))
def test_scalar_state_follows_default_dtype(name):
    """PyTorch keeps step (and mu_product, eta, mu) in float64 when that is the default."""
    old_e, old_t = ember.get_default_dtype(), torch.get_default_dtype()
    ember.set_default_dtype(ember.float64)
    torch.set_default_dtype(torch.float64)
    try:
        ep, tp = make_params(init_arrays("float64", shapes=[(3,)]))
        eo, to = OPTS[name](ep), getattr(torch.optim, name)(tp)
        run_steps(eo, to, ep, tp, np.random.default_rng(6), "float64", 3)
        for k, tv in to.state[tp[0]].items():
            ev = eo.state[ep[0]][k]
            assert str(ev.dtype).split(".")[-1] == str(tv.dtype).split(".")[-1], k
        assert_params(ep, tp, "float64")
    finally:
        ember.set_default_dtype(old_e)
        torch.set_default_dtype(old_t)
