"""Adam/AdamW's flat-buffer fast path: same numbers as the per-parameter loop and as PyTorch."""
import numpy as np
import pytest
import torch

import ember

TOL = {"float32": 1e-4, "float64": 1e-5}
CONFIGS = [
    dict(),
    dict(amsgrad=True),
    dict(weight_decay=0.1),
    dict(maximize=True, weight_decay=0.05, amsgrad=True),
    dict(betas=(0.8, 0.99), eps=1e-6),
    dict(adamw=True, weight_decay=0.1),
    dict(adamw=True, amsgrad=True, maximize=True),
]
SMALL_SHAPES = [(7,), (3, 4), (), (5, 2), (1,), (2, 3, 2)] * 17  # 102 small parameters


def make_opt(mod, params, cfg, lr=1e-2):
    cfg = dict(cfg)
    cls = mod.optim.AdamW if cfg.pop("adamw", False) else mod.optim.Adam
    return cls(params, lr=lr, **cfg)


def loop_only(opt):
    """Force the base class's per-parameter loop (the reference path)."""
    opt._flat_step = lambda group: False
    return opt


def params_from(arrays):
    e = [ember.nn.Parameter(ember.from_numpy(a.copy())) for a in arrays]
    t = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    return e, t


def set_grads(ps, grads, mod):
    for p, g in zip(ps, grads):
        p.grad = None if g is None else mod.from_numpy(g.copy())


def uses_flat(opt, group=0):
    """Whether group ``group`` is stepped on its flat buffers (params viewing one buffer)."""
    g = opt.param_groups[group]
    fg = opt._flat.get(id(g))
    return fg is not None and all(p._data.base is fg.flat for p in g["params"])


def assert_same(ea, eb):
    """Bit-for-bit equality of two lists of ember tensors (same formulas, elementwise)."""
    for a, b in zip(ea, eb):
        a, b = a._data, b._data
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def assert_torch(e, t, dtype):
    for a, b in zip(e, t):
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=TOL[dtype],
                                   atol=TOL[dtype] * 1e-2)


def assert_states_same(oa, ob, pa, pb):
    for a, b in zip(pa, pb):
        sa, sb = oa.state[a], ob.state[b]
        assert list(sa) == list(sb)
        for k in sa:
            assert sa[k]._data.dtype == sb[k]._data.dtype
            np.testing.assert_array_equal(sa[k]._data, sb[k]._data)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_small_params_flat_loop_torch(dtype, cfg):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SMALL_SHAPES]
    ef, tp = params_from(arrays)
    el, _ = params_from(arrays)
    of, ol, ot = make_opt(ember, ef, cfg), loop_only(make_opt(ember, el, cfg)), \
        make_opt(torch, tp, cfg)
    for _ in range(50):
        grads = [rng.standard_normal(s).astype(dtype) for s in SMALL_SHAPES]
        set_grads(ef, grads, ember)
        set_grads(el, grads, ember)
        set_grads(tp, grads, torch)
        of.step()
        ol.step()
        ot.step()
    assert uses_flat(of) and not ol._flat
    assert_same(ef, el)
    assert_states_same(of, ol, ef, el)
    assert_torch(ef, tp, dtype)
    for p, q in zip(ef, tp):
        st, sq = of.state[p], ot.state[q]
        assert float(st["step"]) == float(sq["step"]) == 50.0
        np.testing.assert_allclose(st["exp_avg_sq"]._data, sq["exp_avg_sq"].numpy(),
                                   rtol=TOL[dtype], atol=1e-12)


def mlp(mod, dtype):
    nn = mod.nn
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                         nn.Linear(12, 5)).to(getattr(mod, dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3], CONFIGS[5]])
def test_mlp_flat_loop_torch(dtype, cfg):
    rng = np.random.default_rng(1)
    mt = mlp(torch, dtype)
    models = [mlp(ember, dtype), mlp(ember, dtype)]
    for m in models:
        for pe, pt in zip(m.parameters(), mt.parameters()):
            pe.data = ember.from_numpy(pt.detach().numpy().copy())
    of = make_opt(ember, models[0].parameters(), cfg, lr=1e-3)
    ol = loop_only(make_opt(ember, models[1].parameters(), cfg, lr=1e-3))
    ot = make_opt(torch, mt.parameters(), cfg, lr=1e-3)
    for _ in range(50):
        x = rng.standard_normal((8, 20)).astype(dtype)
        y = rng.integers(0, 5, 8)
        for m, o in zip(models, (of, ol)):
            o.zero_grad()
            ember.nn.functional.cross_entropy(m(ember.from_numpy(x)),
                                              ember.from_numpy(y)).backward()
            o.step()
        ot.zero_grad()
        torch.nn.functional.cross_entropy(mt(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        ot.step()
    assert uses_flat(of)
    assert_same(list(models[0].parameters()), list(models[1].parameters()))
    assert_torch(list(models[0].parameters()), list(mt.parameters()), dtype)


def trio(shapes, dtype="float64", cfg=None, seed=2):
    """Flat ember, loop ember and torch on the same initial weights."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ef, tp = params_from(arrays)
    el, _ = params_from(arrays)
    cfg = cfg or dict(amsgrad=True, weight_decay=0.01)
    return (rng, [ef, el, tp],
            [make_opt(ember, ef, cfg), loop_only(make_opt(ember, el, cfg)),
             make_opt(torch, tp, cfg)])


def run(rng, ps, opts, steps, shapes, none=()):
    for _ in range(steps):
        grads = [None if i in none else rng.standard_normal(s) for i, s in enumerate(shapes)]
        for p, o, mod in zip(ps, opts, (ember, ember, torch)):
            set_grads(p, grads, mod)
            o.step()


def check(ps, opts):
    assert_same(ps[0], ps[1])
    assert_states_same(opts[0], opts[1], ps[0], ps[1])
    assert_torch(ps[0], ps[2], "float64")


SHAPES = [(4,), (2, 3), (), (5,)]


def test_replace_data_mid_run():
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 5, SHAPES)
    assert uses_flat(opts[0])
    new = np.arange(6.0).reshape(2, 3)
    for p, mod in zip(ps, (ember, ember, torch)):
        p[1].data = mod.from_numpy(new.copy())
    run(rng, ps, opts, 1, SHAPES)
    assert uses_flat(opts[0])  # rebuilt from the current values
    run(rng, ps, opts, 5, SHAPES)
    check(ps, opts)


@pytest.mark.parametrize("edit", [
    lambda p, mod: p.data.copy_(mod.from_numpy(np.full(p.shape, 0.25))),
    lambda p, mod: p.data.mul_(-2.0),
    lambda p, mod: p.detach().add_(1.0),
])
def test_inplace_edit_between_steps(edit):
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 5, SHAPES)
    data = ps[0][0]._data
    for p, mod in zip(ps, (ember, ember, torch)):
        with mod.no_grad():
            edit(p[0], mod)
            edit(p[2], mod)
    assert ps[0][0]._data is data  # edited through the view, in the flat buffer
    run(rng, ps, opts, 5, SHAPES)
    assert uses_flat(opts[0])
    check(ps, opts)


def test_state_edit_between_steps():
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 3, SHAPES)
    for o, p in zip(opts, ps):
        o.state[p[3]]["exp_avg"].mul_(0.5)
    run(rng, ps, opts, 3, SHAPES)
    check(ps, opts)


def test_add_param_group_mid_run():
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 4, SHAPES)
    extra = [np.linspace(-1, 1, 6), np.ones((2, 2))]
    new = params_from(extra)
    new_l = params_from(extra)[0]
    for o, p in zip(opts, (new[0], new_l, new[1])):
        o.add_param_group({"params": p, "lr": 0.05, "weight_decay": 0.0})
    ps = [ps[0] + new[0], ps[1] + new_l, ps[2] + new[1]]
    shapes = SHAPES + [(6,), (2, 2)]
    run(rng, ps, opts, 5, shapes)
    assert uses_flat(opts[0], 0) and uses_flat(opts[0], 1)
    assert opts[0]._flat[id(opts[0].param_groups[0])].flat.size == 16  # own buffers
    check(ps, opts)


def test_grad_none_falls_back():
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 3, SHAPES)
    run(rng, ps, opts, 1, SHAPES, none={2})
    assert not opts[0]._flat  # the loop ran; step counts now differ
    run(rng, ps, opts, 3, SHAPES)
    assert not uses_flat(opts[0])  # unequal steps stay on the loop
    assert float(opts[0].state[ps[0][2]]["step"]) == 6.0
    assert float(opts[0].state[ps[0][0]]["step"]) == 7.0
    check(ps, opts)


def test_grad_none_on_first_step():
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 1, SHAPES, none={0})
    run(rng, ps, opts, 4, SHAPES)
    check(ps, opts)


def test_mixed_dtypes_fall_back():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(4), rng.standard_normal(3).astype("float32")]
    ef, tp = params_from(arrays)
    of, ot = ember.optim.Adam(ef, lr=0.1), torch.optim.Adam(tp, lr=0.1)
    for _ in range(5):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays]
        set_grads(ef, grads, ember)
        set_grads(tp, grads, torch)
        of.step()
        ot.step()
    assert not of._flat
    for a, b in zip(ef, tp):
        np.testing.assert_allclose(a._data, b.detach().numpy(), rtol=1e-5)


def to_torch_sd(sd):
    if isinstance(sd, dict):
        return {k: to_torch_sd(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [to_torch_sd(v) for v in sd]
    if isinstance(sd, ember.Tensor):
        return torch.from_numpy(sd._data.copy())
    return sd


def to_ember_sd(sd):
    if isinstance(sd, dict):
        return {k: to_ember_sd(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [to_ember_sd(v) for v in sd]
    if isinstance(sd, torch.Tensor):
        return ember.from_numpy(sd.numpy().copy())
    return sd


@pytest.mark.parametrize("adamw", [False, True])
def test_state_dict_round_trip(adamw):
    cfg = dict(adamw=adamw, amsgrad=True, weight_decay=0.02)
    rng, ps, opts = trio(SHAPES, cfg=cfg)
    run(rng, ps, opts, 5, SHAPES)
    sd = opts[0].state_dict()
    assert float(sd["state"][1]["step"]) == 5.0
    np.testing.assert_array_equal(sd["state"][3]["exp_avg"]._data,
                                  opts[1].state[ps[1][3]]["exp_avg"]._data)
    # ember → torch: a fresh torch optimizer continues the trajectory
    t2 = [torch.nn.Parameter(torch.from_numpy(p._data.copy())) for p in ps[0]]
    ot2 = make_opt(torch, t2, cfg)
    ot2.load_state_dict(to_torch_sd(sd))
    # torch → ember: back into the flat optimizer itself, which must rebuild its buffers
    tsd = opts[2].state_dict()
    opts[0].load_state_dict(to_ember_sd(tsd))
    opts[1].load_state_dict(to_ember_sd(tsd))
    assert not opts[0]._flat
    ps.append(t2)
    opts.append(ot2)
    for _ in range(5):
        grads = [rng.standard_normal(s) for s in SHAPES]
        for p, o, mod in zip(ps, opts, (ember, ember, torch, torch)):
            set_grads(p, grads, mod)
            o.step()
    assert uses_flat(opts[0])
    check(ps, opts)
    assert_torch(ps[0], t2, "float64")


def test_autograd_after_flat_move():
    """Forward/backward use the moved parameters; version counters are bumped per step."""
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 2, SHAPES)
    p = ps[0][1]
    v0 = p._version
    p.grad = None
    loss = (p * p).sum()
    loss.backward()
    np.testing.assert_array_equal(p.grad._data, 2 * p._data)
    for q in ps[0]:
        q.grad = ember.ones_like(q)
    opts[0].step()
    assert p._version == v0 + 1
    assert uses_flat(opts[0])


def test_stale_graph_detects_update():
    """A graph saved before a flat step sees the in-place update, as with PyTorch."""
    rng, ps, opts = trio(SHAPES)
    run(rng, ps, opts, 2, SHAPES)
    p = ps[0][1]
    loss = (p * p).sum()
    for q in ps[0]:
        q.grad = ember.ones_like(q)
    opts[0].step()
    tp = ps[2][1]
    tloss = (tp * tp).sum()
    for q in ps[2]:
        q.grad = torch.ones_like(q)
    opts[2].step()
    with pytest.raises(RuntimeError):
        tloss.backward()
    with pytest.raises(RuntimeError):
        loss.backward()
