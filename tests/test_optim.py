"""ember.optim against torch.optim: trajectories, state dicts, the Optimizer base, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

TOL = {"float64": dict(rtol=1e-5, atol=1e-8), "float32": dict(rtol=1e-4, atol=1e-6)}
SHAPES = [(4, 3), (3,), (), (2, 1, 3)]

# (optimizer name, kwargs): every option that changes the update
CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.8), eps=1e-3)),  # lerp weight >= 0.5 branch
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("AdamW", dict(lr=0.01, maximize=True, betas=(0.5, 0.9))),
    ("AdamW", dict(lr=0.01, weight_decay=0)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.3, centered=True, maximize=True)),
    ("RMSprop", dict(lr=0.01, eps=1e-2, weight_decay=0.2)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3)),
    ("Adagrad", dict(lr=0.1, maximize=True, lr_decay=0.01)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5)),
    ("Adadelta", dict(weight_decay=0.1, eps=1e-3)),
    ("Adadelta", dict(maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.5), eps=1e-3)),
    ("Adamax", dict(lr=0.01, maximize=True)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in CONFIGS]
DEFAULTS = [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
            ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
            ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)), ("Adadelta", dict()),
            ("Adamax", dict(lr=0.01))]


# ---- helpers ------------------------------------------------------------------------------------
def to_torch_sd(obj):
    """An ember state dict (nested dicts/lists of tensors) as a torch one, through NumPy."""
    if isinstance(obj, ember.Tensor):
        return torch.from_numpy(obj.detach().numpy().copy())
    if isinstance(obj, dict):
        return {k: to_torch_sd(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_torch_sd(v) for v in obj]
    return obj


def to_ember_sd(obj):
    """A torch state dict as an ember one, through NumPy."""
    if isinstance(obj, torch.Tensor):
        return ember.from_numpy(obj.detach().numpy().copy())
    if isinstance(obj, dict):
        return {k: to_ember_sd(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_ember_sd(v) for v in obj]
    return obj


def make_arrays(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


class Pair:
    """The same parameters in ember and torch; parameter 0 is frozen, the last never gets grads."""

    def __init__(self, arrays, frozen=(), no_grad=()):
        self.e = [ember.nn.Parameter(ember.from_numpy(a.copy()), requires_grad=i not in frozen)
                  for i, a in enumerate(arrays)]
        self.t = [torch.nn.Parameter(torch.from_numpy(a.copy()), requires_grad=i not in frozen)
                  for i, a in enumerate(arrays)]
        self.frozen, self.no_grad = set(frozen), set(no_grad)
        self.rng = np.random.default_rng(1)

    def set_grads(self):
        for i, (pe, pt) in enumerate(zip(self.e, self.t)):
            if i in self.frozen or i in self.no_grad:
                continue
            g = self.rng.standard_normal(pe.shape).astype(pe.detach().numpy().dtype)
            pe.grad = ember.from_numpy(g.copy())
            pt.grad = torch.from_numpy(g.copy())


def assert_params(e_params, t_params, dtype):
    for i, (pe, pt) in enumerate(zip(e_params, t_params)):
        np.testing.assert_allclose(pe.detach().numpy(), pt.detach().numpy(), **TOL[dtype],
                                   err_msg=f"parameter {i}")


def assert_state(e_opt, t_opt, dtype):
    """Same state dict layout and values (groups, ids, state keys, dtypes, shapes)."""
    es, ts = e_opt.state_dict(), t_opt.state_dict()
    assert list(es) == list(ts) == ["state", "param_groups"]
    assert len(es["param_groups"]) == len(ts["param_groups"])
    for eg, tg in zip(es["param_groups"], ts["param_groups"]):
        assert list(eg) == list(tg)
        assert eg == tg
    assert sorted(es["state"]) == sorted(ts["state"])
    for k, tstate in ts["state"].items():
        estate = es["state"][k]
        assert list(estate) == list(tstate), k
        for key, tv in tstate.items():
            ev = estate[key]
            assert isinstance(ev, ember.Tensor) == isinstance(tv, torch.Tensor)
            assert str(ev.dtype).split(".")[-1] == str(tv.dtype).split(".")[-1], key
            assert tuple(ev.shape) == tuple(tv.shape), key
            np.testing.assert_allclose(ev.numpy(), tv.numpy(), **TOL[dtype], err_msg=key)


def run(pair, e_opt, t_opt, steps):
    for _ in range(steps):
        pair.set_grads()
        e_opt.step()
        t_opt.step()


# ---- trajectories -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_trajectory_matches_torch(name, kw, dtype):
    arrays = make_arrays([(2, 2)] + SHAPES + [(3,)], dtype)
    pair = Pair(arrays, frozen={0}, no_grad={len(arrays) - 1})
    e_opt = getattr(ember.optim, name)(pair.e, **kw)
    t_opt = getattr(torch.optim, name)(pair.t, **kw)
    run(pair, e_opt, t_opt, 100)
    assert_params(pair.e, pair.t, dtype)
    assert_state(e_opt, t_opt, dtype)
    # frozen and never-graded parameters are untouched
    for i in (0, len(arrays) - 1):
        np.testing.assert_array_equal(pair.e[i].detach().numpy(), arrays[i])


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.lists(st.integers(1, 4), max_size=3).map(tuple), min_size=1,
                       max_size=4),
       which=st.integers(0, len(DEFAULTS) - 1))
def test_trajectory_any_shapes(shapes, which):
    name, kw = DEFAULTS[which]
    pair = Pair(make_arrays(shapes, "float64"))
    e_opt = getattr(ember.optim, name)(pair.e, **kw)
    t_opt = getattr(torch.optim, name)(pair.t, **kw)
    run(pair, e_opt, t_opt, 10)
    assert_params(pair.e, pair.t, "float64")


@pytest.mark.parametrize("name,kw", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_model_loss_with_closure(name, kw):
    """A tiny linear regression trained through ``step(closure)`` on both sides."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    w0, b0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    results = []
    for m in (ember, torch):
        w = m.nn.Parameter(m.from_numpy(w0.copy()))
        b = m.nn.Parameter(m.from_numpy(b0.copy()))
        opt = getattr(m.optim, name)([w, b], **kw)
        xs, ys = m.from_numpy(x), m.from_numpy(y)

        def closure():
            opt.zero_grad()
            loss = ((xs @ w + b - ys) ** 2).mean()
            loss.backward()
            return loss

        losses = [float(opt.step(closure).detach()) for _ in range(100)]
        results.append((losses, w.detach().numpy(), b.detach().numpy()))
    (le, we, be), (lt, wt, bt) = results
    np.testing.assert_allclose(le, lt, **TOL["float64"])
    np.testing.assert_allclose(we, wt, **TOL["float64"])
    np.testing.assert_allclose(be, bt, **TOL["float64"])


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad", "Adamax"])
def test_per_group_options(name):
    """Fine-tuning style groups: backbone lr 1e-4, head 1e-2 plus a group-specific option."""
    arrays = make_arrays([(4, 3), (3,), (3, 2), (2,)], "float64")
    pair = Pair(arrays)
    extra = {"SGD": dict(momentum=0.9), "Adam": dict(amsgrad=True), "RMSprop": dict(alpha=0.9),
             "Adagrad": dict(lr_decay=0.1), "Adamax": dict(betas=(0.8, 0.99))}[name]

    def groups(ps):
        return [{"params": ps[:2], "lr": 1e-4}, {"params": ps[2:], "lr": 1e-2, **extra}]

    e_opt = getattr(ember.optim, name)(groups(pair.e), lr=1e-3)
    t_opt = getattr(torch.optim, name)(groups(pair.t), lr=1e-3)
    run(pair, e_opt, t_opt, 100)
    assert_params(pair.e, pair.t, "float64")
    assert_state(e_opt, t_opt, "float64")
    assert e_opt.param_groups[0]["lr"] == 1e-4 and e_opt.param_groups[1]["lr"] == 1e-2


# ---- state dicts --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kw", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_state_dict_round_trip_mid_run(name, kw, dtype):
    """torch → ember and ember → torch at step 50; the continued trajectories are unchanged."""
    arrays = make_arrays(SHAPES, dtype)
    ref = Pair(arrays)
    t_ref = getattr(torch.optim, name)(ref.t, **kw)
    e_ref = getattr(ember.optim, name)(ref.e, **kw)
    run(ref, e_ref, t_ref, 50)
    # ember → torch: a fresh torch optimizer on ember's current weights
    t_params = [torch.nn.Parameter(torch.from_numpy(p.detach().numpy().copy())) for p in ref.e]
    t_new = getattr(torch.optim, name)(t_params, **kw)
    t_new.load_state_dict(to_torch_sd(e_ref.state_dict()))
    # torch → ember: a fresh ember optimizer on torch's current weights
    e_params = [ember.nn.Parameter(ember.from_numpy(p.detach().numpy().copy())) for p in ref.t]
    e_new = getattr(ember.optim, name)(e_params, **kw)
    e_new.load_state_dict(to_ember_sd(t_ref.state_dict()))
    assert_state(e_new, t_new, dtype)
    rng = np.random.default_rng(7)
    for _ in range(50):
        for ps in zip(ref.t, t_params, e_params):
            g = rng.standard_normal(ps[0].shape).astype(dtype)
            for p in ps:
                p.grad = (torch if isinstance(p, torch.Tensor) else ember).from_numpy(g.copy())
        t_ref.step()
        t_new.step()
        e_new.step()
    assert_params(t_params, ref.t, dtype)
    assert_params(e_params, ref.t, dtype)
    assert_state(e_new, t_ref, dtype)


@pytest.mark.parametrize("name,kw", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_torch_ember_torch_round_trip(name, kw):
    """A torch state dict survives ember unchanged: loaded back into torch it continues alike."""
    ref = Pair(make_arrays(SHAPES, "float32"))
    t_ref = getattr(torch.optim, name)(ref.t, **kw)
    e_ref = getattr(ember.optim, name)(ref.e, **kw)
    run(ref, e_ref, t_ref, 30)
    sd = t_ref.state_dict()
    e_params = [ember.nn.Parameter(ember.from_numpy(p.detach().numpy().copy())) for p in ref.t]
    e_mid = getattr(ember.optim, name)(e_params, **kw)
    e_mid.load_state_dict(to_ember_sd(sd))
    back = to_torch_sd(e_mid.state_dict())
    assert back["param_groups"] == sd["param_groups"]
    assert list(back["state"]) == list(sd["state"])
    for k, st_ in sd["state"].items():
        assert list(back["state"][k]) == list(st_)
        for key, v in st_.items():
            assert back["state"][k][key].dtype == v.dtype
            torch.testing.assert_close(back["state"][k][key], v, rtol=0, atol=0)
    t_params = [torch.nn.Parameter(p.detach().clone()) for p in ref.t]
    t_new = getattr(torch.optim, name)(t_params, **kw)
    t_new.load_state_dict(back)
    rng = np.random.default_rng(11)
    for _ in range(20):
        for p, q in zip(ref.t, t_params):
            g = rng.standard_normal(p.shape).astype("float32")
            p.grad, q.grad = torch.from_numpy(g.copy()), torch.from_numpy(g.copy())
        t_ref.step()
        t_new.step()
    for p, q in zip(ref.t, t_params):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_tensor_lr_and_betas(name):
    arrays = make_arrays([(5,), ()], "float32")
    pair = Pair(arrays)
    e_opt = getattr(ember.optim, name)(pair.e, lr=ember.tensor(0.01),
                                       betas=(ember.tensor(0.8), ember.tensor([0.95])))
    t_opt = getattr(torch.optim, name)(pair.t, lr=torch.tensor(0.01),
                                       betas=(torch.tensor(0.8), torch.tensor([0.95])))
    run(pair, e_opt, t_opt, 50)
    assert_params(pair.e, pair.t, "float32")
    assert [b.shape for b in e_opt.param_groups[0]["betas"]] == [(), ()]


def test_state_dict_is_torch_layout_with_several_groups():
    pair = Pair(make_arrays([(2,), (3,), (2, 2)], "float32"), no_grad={1})
    e_opt = ember.optim.Adam([{"params": pair.e[:2]}, {"params": pair.e[2:], "lr": 0.1}])
    t_opt = torch.optim.Adam([{"params": pair.t[:2]}, {"params": pair.t[2:], "lr": 0.1}])
    assert_state(e_opt, t_opt, "float32")  # empty state, same groups
    run(pair, e_opt, t_opt, 2)
    sd = e_opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == [0, 2]
    assert_state(e_opt, t_opt, "float32")


def test_state_dict_loading_casts_to_param_dtype():
    """float32 state loaded for float64 parameters is cast, except ``step`` (as torch)."""
    pt = torch.nn.Parameter(torch.ones(3))
    t_opt = torch.optim.Adam([pt])
    pt.grad = torch.ones(3)
    t_opt.step()
    pe = ember.nn.Parameter(ember.ones(3, dtype=ember.float64))
    e_opt = ember.optim.Adam([pe])
    e_opt.load_state_dict(to_ember_sd(t_opt.state_dict()))
    state = e_opt.state[pe]
    assert state["exp_avg"].dtype == ember.float64
    assert state["step"].dtype == ember.float32


def test_adamw_loads_adam_state_as_decoupled():
    pt = torch.nn.Parameter(torch.ones(3))
    sd = torch.optim.Adam([pt]).state_dict()
    e_opt = ember.optim.AdamW([ember.nn.Parameter(ember.ones(3))])
    t_opt = torch.optim.AdamW([pt])
    e_opt.load_state_dict(to_ember_sd(sd))
    t_opt.load_state_dict(sd)
    assert e_opt.param_groups[0] == {**t_opt.param_groups[0], "params": e_opt.param_groups[0]
                                     ["params"]}
    assert e_opt.param_groups[0]["decoupled_weight_decay"] is True
    assert issubclass(ember.optim.AdamW, ember.optim.Adam)


def test_old_state_dict_gets_default_keys():
    """A state dict without newer group keys gets PyTorch's defaults (through __setstate__)."""
    pt = torch.nn.Parameter(torch.ones(3))
    sd = torch.optim.Adam([pt]).state_dict()
    for key in ("amsgrad", "foreach", "decoupled_weight_decay", "fused"):
        del sd["param_groups"][0][key]
    e_opt = ember.optim.Adam([ember.nn.Parameter(ember.ones(3))])
    t_opt = torch.optim.Adam([pt])
    e_opt.load_state_dict(to_ember_sd(sd))
    t_opt.load_state_dict(sd)
    assert sorted(e_opt.param_groups[0]) == sorted(t_opt.param_groups[0])


def test_adagrad_state_exists_at_construction():
    arrays = make_arrays([(2, 3), (4,)], "float32")
    pair = Pair(arrays, frozen={1})
    kw = dict(initial_accumulator_value=0.25)
    e_opt, t_opt = ember.optim.Adagrad(pair.e, **kw), torch.optim.Adagrad(pair.t, **kw)
    assert_state(e_opt, t_opt, "float32")
    # a later group starts from the constructor's accumulator value when it first steps
    extra = make_arrays([(3,)], "float32", seed=5)
    more = Pair(extra)
    e_opt.add_param_group({"params": more.e, "initial_accumulator_value": 2.0})
    t_opt.add_param_group({"params": more.t, "initial_accumulator_value": 2.0})
    assert_state(e_opt, t_opt, "float32")
    more.set_grads()
    pair.set_grads()
    e_opt.step()
    t_opt.step()
    assert_state(e_opt, t_opt, "float32")


def test_step_is_float64_under_float64_default():
    ember.set_default_dtype(ember.float64)
    torch.set_default_dtype(torch.float64)
    try:
        pair = Pair(make_arrays([(3,)], "float64"))
        e_opt, t_opt = ember.optim.Adam(pair.e), torch.optim.Adam(pair.t)
        run(pair, e_opt, t_opt, 3)
        assert_state(e_opt, t_opt, "float64")
    finally:
        ember.set_default_dtype(ember.float32)
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("kind", ["groups", "sizes"])
def test_load_state_dict_mismatch(kind):
    pe = [ember.nn.Parameter(ember.ones(2)) for _ in range(3)]
    pt = [torch.nn.Parameter(torch.ones(2)) for _ in range(3)]
    if kind == "groups":
        src = torch.optim.SGD([{"params": pt[:1]}, {"params": pt[1:]}], lr=0.1).state_dict()
    else:
        src = torch.optim.SGD(pt[:2], lr=0.1).state_dict()
    t_opt = torch.optim.SGD(pt, lr=0.1)
    e_opt = ember.optim.SGD(pe, lr=0.1)
    with pytest.raises(ValueError) as te:
        t_opt.load_state_dict(src)
    with pytest.raises(ValueError) as ee:
        e_opt.load_state_dict(to_ember_sd(src))
    assert str(ee.value) == str(te.value)


# ---- the Optimizer base -------------------------------------------------------------------------
def test_add_param_group_with_own_lr():
    arrays = make_arrays([(3,), (2, 2)], "float64")
    pair = Pair(arrays)
    e_opt = ember.optim.SGD(pair.e[:1], lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(pair.t[:1], lr=0.1, momentum=0.9)
    e_opt.add_param_group({"params": pair.e[1], "lr": 0.01})
    t_opt.add_param_group({"params": pair.t[1], "lr": 0.01})
    assert e_opt.param_groups[1]["lr"] == 0.01
    assert e_opt.param_groups[1]["momentum"] == 0.9
    assert e_opt.param_groups[1]["params"][0] is pair.e[1]
    run(pair, e_opt, t_opt, 20)
    assert_params(pair.e, pair.t, "float64")
    assert_state(e_opt, t_opt, "float64")


def _bad_params(m):
    """Bad ``params`` arguments and ``add_param_group`` calls, each with a torch-equal error."""
    a, b = m.nn.Parameter(m.ones(2)), m.nn.Parameter(m.ones(3))
    nonleaf = m.ones(2, requires_grad=True) * 2
    return {
        "empty": lambda: m.optim.SGD([], lr=0.1),
        "tensor": lambda: m.optim.SGD(a, lr=0.1),
        "non-tensor": lambda: m.optim.SGD([a, 1.0], lr=0.1),
        "set-add": lambda: m.optim.SGD([a], lr=0.1).add_param_group({"params": {b}}),
        "set-group": lambda: m.optim.SGD([{"params": {a}}], lr=0.1),
        "two-groups": lambda: m.optim.SGD([{"params": [a]}, {"params": [a, b]}], lr=0.1),
        "add-twice": lambda: m.optim.SGD([a], lr=0.1).add_param_group({"params": [a]}),
        "add-non-dict": lambda: m.optim.SGD([a], lr=0.1).add_param_group([b]),
        "add-non-tensor": lambda: m.optim.SGD([a], lr=0.1).add_param_group({"params": ["x"]}),
        "non-leaf": lambda: m.optim.SGD([nonleaf], lr=0.1),
    }


@pytest.mark.parametrize("case", list(_bad_params(torch)))
def test_bad_params(case):
    with pytest.raises(Exception) as te:
        _bad_params(torch)[case]()
    with pytest.raises(type(te.value)) as ee:
        _bad_params(ember)[case]()
    assert type(ee.value) is type(te.value)
    if case not in ("add-non-dict",):  # torch prints "<class 'list'>"
        assert str(ee.value) == str(te.value)


BAD_ARGS = [
    ("SGD", dict(lr=-1)), ("SGD", dict(momentum=-0.1)), ("SGD", dict(weight_decay=-1)),
    ("SGD", dict(nesterov=True)), ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=-1)), ("Adam", dict(betas=(1.0, 0.999))), ("Adam", dict(betas=(0.9, 1.0))),
    ("Adam", dict(betas=(-0.1, 0.999))), ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(weight_decay=-0.1)), ("Adam", dict(betas=(0, 0.9))),
    ("AdamW", dict(lr=-0.5)),
    ("AdamW", dict(betas=(0.9, 1.5))), ("AdamW", dict(weight_decay=-1)),
    ("RMSprop", dict(lr=-1)), ("RMSprop", dict(alpha=-0.1)), ("RMSprop", dict(eps=-1)),
    ("RMSprop", dict(momentum=-1)), ("RMSprop", dict(weight_decay=-1)),
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(eps=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1)), ("Adadelta", dict(weight_decay=-1)),
    ("Adamax", dict(lr=-1)), ("Adamax", dict(betas=(1.0, 0.9))), ("Adamax", dict(eps=-1)),
    ("Adamax", dict(betas=(0.9, -0.5))), ("Adamax", dict(weight_decay=-1)),
]


FLAG_ERRORS = [
    ("Adam", dict(fused=True, foreach=True)), ("Adam", dict(fused=True, differentiable=True)),
    ("AdamW", dict(fused=True, foreach=True)), ("Adagrad", dict(fused=True, foreach=True)),
    ("Adagrad", dict(fused=True, differentiable=True)),
]


@pytest.mark.parametrize("name,kw", FLAG_ERRORS, ids=[f"{n}-{list(k)}" for n, k in FLAG_ERRORS])
def test_fused_flag_errors(name, kw):
    with pytest.raises(RuntimeError) as te:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kw)
    with pytest.raises(RuntimeError) as ee:
        getattr(ember.optim, name)([ember.nn.Parameter(ember.ones(2))], **kw)
    assert str(ee.value) == str(te.value)


@pytest.mark.parametrize("name,kw", BAD_ARGS,
                         ids=[f"{n}-{list(k.items())}" for n, k in BAD_ARGS])
def test_bad_hyperparameters(name, kw):
    with pytest.raises(ValueError) as te:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kw)
    with pytest.raises(ValueError) as ee:
        getattr(ember.optim, name)([ember.nn.Parameter(ember.ones(2))], **kw)
    assert str(ee.value) == str(te.value)


@pytest.mark.parametrize("name,kw", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_group_keys_match_torch(name, kw):
    e = getattr(ember.optim, name)([ember.nn.Parameter(ember.ones(2))], **kw)
    t = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **kw)
    assert list(e.defaults) == list(t.defaults)
    assert e.defaults == t.defaults
    assert list(e.param_groups[0]) == list(t.param_groups[0])


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    pe = [ember.nn.Parameter(ember.ones(2, 3)), ember.nn.Parameter(ember.ones(2))]
    opt = ember.optim.SGD(pe, lr=0.1)
    pe[0].grad = ember.ones(2, 3)
    opt.zero_grad(set_to_none=set_to_none)
    if set_to_none:
        assert pe[0].grad is None
    else:
        assert pe[0].grad.shape == (2, 3)
        np.testing.assert_array_equal(pe[0].grad.numpy(), np.zeros((2, 3), np.float32))
    assert pe[1].grad is None
    opt.zero_grad()  # the default sets to None
    assert pe[0].grad is None


def test_step_hooks_called_and_removable():
    p = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.SGD([p], lr=0.1)
    calls = []

    def pre(o, args, kwargs):
        assert o is opt and args[0] is opt and kwargs == {}
        calls.append(("pre", float(p.detach().numpy()[0])))

    def post(o, args, kwargs):
        assert o is opt
        calls.append(("post", float(p.detach().numpy()[0])))

    h1, h2 = opt.register_step_pre_hook(pre), opt.register_step_post_hook(post)
    p.grad = ember.ones(2)
    opt.step()
    assert calls == [("pre", 1.0), ("post", pytest.approx(0.9))]
    h1.remove()
    h2.remove()
    opt.step()
    assert len(calls) == 2
    np.testing.assert_allclose(p.detach().numpy(), [0.8, 0.8], rtol=1e-6)


def test_pre_hook_can_replace_closure():
    p = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.SGD([p], lr=0.1)
    opt.register_step_pre_hook(lambda o, args, kwargs: ((o, lambda: 7.0), {}))
    p.grad = ember.ones(2)
    assert opt.step() == 7.0


def test_global_hooks():
    p = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.SGD([p], lr=0.1)
    seen = []
    h1 = ember.optim.register_optimizer_step_pre_hook(lambda o, a, k: seen.append("pre"))
    h2 = ember.optim.register_optimizer_step_post_hook(lambda o, a, k: seen.append("post"))
    try:
        p.grad = ember.ones(2)
        opt.step()
    finally:
        h1.remove()
        h2.remove()
    opt.step()
    assert seen == ["pre", "post"]


def test_step_closure_runs_with_grad_enabled():
    p = ember.nn.Parameter(ember.tensor([1.0, 2.0]))
    opt = ember.optim.SGD([p], lr=0.1)
    seen = []

    def closure():
        seen.append(ember.is_grad_enabled())
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with ember.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert float(loss) == 5.0
    np.testing.assert_allclose(p.detach().numpy(), [0.8, 1.6], rtol=1e-6)
    assert opt.step() is None
    assert p.grad_fn is None and p.requires_grad


def test_step_bumps_version_and_keeps_identity():
    p = ember.nn.Parameter(ember.ones(3))
    data = p._data
    opt = ember.optim.Adam([p], lr=0.1)
    p.grad = ember.ones(3)
    v0 = p._version
    opt.step()
    assert p._data is data and p._version == v0 + 1


def test_replaced_data_is_used():
    """Replacing ``p.data`` between steps is picked up (state keyed by the parameter)."""
    pair = Pair(make_arrays([(3,)], "float64"))
    e_opt, t_opt = ember.optim.Adam(pair.e, lr=0.1), torch.optim.Adam(pair.t, lr=0.1)
    run(pair, e_opt, t_opt, 3)
    new = np.arange(3.0)
    pair.e[0].data = ember.from_numpy(new.copy())
    pair.t[0].data = torch.from_numpy(new.copy())
    run(pair, e_opt, t_opt, 3)
    assert_params(pair.e, pair.t, "float64")


def test_repr_matches_torch_with_two_groups():
    import torch as _torch
    pt = _torch.nn.Parameter(_torch.ones(2))
    extra_t = _torch.nn.Parameter(_torch.ones(1))
    pe = ember.nn.Parameter(ember.ones(2))
    extra_e = ember.nn.Parameter(ember.ones(1))
    t = _torch.optim.SGD([{"params": [pt]}, {"params": [extra_t], "lr": 0.1}], lr=0.01)
    e = ember.optim.SGD([{"params": [pe]}, {"params": [extra_e], "lr": 0.1}], lr=0.01)
    assert repr(e) == repr(t)
