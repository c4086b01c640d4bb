"""``ember.func`` against ``torch.func``: vmap, grad, vjp, jvp, jacobians, functional_call."""
import numpy as np
import pytest
import torch
import torch.func as tf

import ember
import ember.func as ef
from opcheck import assert_close as _assert_close


def _plain(r):
    """Dicts as (key, value) tuples, so opcheck's comparison walks them."""
    if isinstance(r, dict):
        return tuple((k, _plain(v)) for k, v in r.items())
    if isinstance(r, (tuple, list)):
        return tuple(_plain(v) for v in r)
    return r


def assert_close(e, t, dt="float64"):
    _assert_close(_plain(e), _plain(t), dt)


def _np(*shapes, seed=0, dt="float64"):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, s).astype(dt) for s in shapes]


def _both(arrs):
    return [ember.from_numpy(a.copy()) for a in arrs], [torch.from_numpy(a.copy()) for a in arrs]


def _run(build, arrs, dt="float64"):
    """``build(m, f)(*inputs)`` in ember (m=ember, f=ember.func) and torch; compare."""
    e_in, t_in = _both([a.astype(dt) for a in arrs])
    r_e = build(ember, ef)(*e_in)
    r_t = build(torch, tf)(*t_in)
    assert_close(r_e, r_t, dt)
    return r_e


# ---- vmap -----------------------------------------------------------------------------------

VMAP = [  # (id, build, input shapes)
    ("dim0", lambda m, f: f.vmap(lambda x: x.sin() * x.sum()), [(4, 3)]),
    ("dim1", lambda m, f: f.vmap(lambda x: x @ x, in_dims=1), [(3, 5)]),
    ("neg-dim", lambda m, f: f.vmap(lambda x: x.cumsum(0), in_dims=-1), [(3, 5)]),
    ("none", lambda m, f: f.vmap(lambda x, w: w @ x, in_dims=(0, None)), [(5, 3), (2, 3)]),
    ("out1", lambda m, f: f.vmap(lambda x: x.exp(), out_dims=1), [(4, 2, 3)]),
    ("out-tuple", lambda m, f: f.vmap(lambda x: (x.sum(), x * 2), out_dims=(0, 1)), [(4, 3)]),
    ("out-neg", lambda m, f: f.vmap(lambda x: x.exp(), out_dims=-1), [(4, 2, 3)]),
    ("nested", lambda m, f: f.vmap(f.vmap(lambda a, b: a * b), in_dims=(0, None)),
     [(3, 4), (4,)]),
    ("nested-in", lambda m, f: f.vmap(lambda x, y: f.vmap(lambda a: a * y.sum())(x)),
     [(2, 3, 4), (2, 5)]),
    ("dict-in", lambda m, f: (lambda x, y: f.vmap(lambda d: d["a"] * d["b"].sum(),
                                                  in_dims=({"a": 0, "b": 1},))(
        {"a": x, "b": y})), [(3, 4), (5, 3)]),
    ("list-out", lambda m, f: f.vmap(lambda x: [x.max(), x.min()]), [(4, 3)]),
]


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("name,build,shapes", VMAP, ids=[v[0] for v in VMAP])
def test_vmap(name, build, shapes, dt):
    _run(build, _np(*shapes), dt)


def test_vmap_unbatched_output_and_kwargs():
    e_in, t_in = _both(_np((4, 3), (3,)))
    for m, f, (x, w) in ((ember, ef, e_in), (torch, tf, t_in)):
        out = f.vmap(lambda a, *, s: (a * s, s * 2), out_dims=(0, None))(x, s=w)
        if m is ember:
            ours = out
        else:
            assert_close(ours, out)


def test_vmap_is_differentiable():
    arrs = _np((4, 3), (3, 3))
    grads = []
    for m, f in ((ember, ef), (torch, tf)):
        x, w = (m.tensor(a, requires_grad=True) for a in arrs)
        y = f.vmap(lambda r, w: (w @ r).tanh(), in_dims=(0, None))(x, w)
        (y * y).sum().backward()
        grads.append((y, x.grad, w.grad))
    assert_close(grads[0], grads[1])


BAD_VMAP = [  # (id, call, exception type, message fragment)
    ("sizes", lambda m, f: f.vmap(lambda a, b: a + b)(m.ones(2), m.ones(3)), ValueError,
     r"same size in the mapped dimension, got sizes \[2, 3\]"),
    ("in-dims-type", lambda m, f: f.vmap(lambda a: a, in_dims=[0])(m.ones(2)), ValueError,
     "expected `in_dims` to be int or a"),
    ("no-inputs", lambda m, f: f.vmap(lambda: m.ones(2))(), ValueError, "got no inputs"),
    ("structure", lambda m, f: f.vmap(lambda a, b: a, in_dims=(0, 0, 0))(m.ones(2), m.ones(2)),
     ValueError, "in_dims is not compatible with the structure of `inputs`"),
    ("range", lambda m, f: f.vmap(lambda a: a, in_dims=2)(m.ones(2, 2)), ValueError,
     "expected in_dim to satisfy -2 <= in_dim < 2"),
    ("non-tensor", lambda m, f: f.vmap(lambda a, b: a, in_dims=(0, 0))(m.ones(2), 3.0),
     ValueError, "We cannot vmap over non-Tensor arguments"),
    ("float-dim", lambda m, f: f.vmap(lambda a: a, in_dims=(1.5,))(m.ones(2)), ValueError,
     "in_dim must be either an integer dimension or None"),
    ("all-none", lambda m, f: f.vmap(lambda a: a, in_dims=None)(m.ones(2)), ValueError,
     "expected `in_dims` to be int or a"),
    ("none-tuple", lambda m, f: f.vmap(lambda a: a, in_dims=(None,))(m.ones(2)), ValueError,
     "Expected at least one Tensor to vmap over"),
    ("out-struct", lambda m, f: f.vmap(lambda a: (a, a), out_dims=(0, 0, 0))(m.ones(2)),
     ValueError, "out_dims is not compatible with the structure of `outputs`"),
    ("out-float", lambda m, f: f.vmap(lambda a: 3.0)(m.ones(2)), ValueError,
     "must only return Tensors"),
    ("randomness", lambda m, f: f.vmap(lambda a: a, randomness="sometimes")(m.ones(2)),
     RuntimeError, "Only allowed values for randomness"),
    ("random-op", lambda m, f: f.vmap(lambda a: a + m.rand(()))(m.ones(2)), RuntimeError,
     "randomness error mode"),
    ("chunk", lambda m, f: f.vmap(lambda a: a, chunk_size=0)(m.ones(2)), ValueError,
     "chunk_size should be None or greater than 0"),
]


@pytest.mark.parametrize("name,call,exc,msg", BAD_VMAP, ids=[b[0] for b in BAD_VMAP])
def test_vmap_bad_inputs(name, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(torch, tf)
    with pytest.raises(exc, match=msg):
        call(ember, ef)


def test_vmap_randomness_same_and_different():
    same = ef.vmap(lambda a: a + ember.rand(()), randomness="same")(ember.zeros(4))
    assert len(set(same.tolist())) == 1
    diff = ef.vmap(lambda a: a + ember.rand(()), randomness="different")(ember.zeros(4))
    assert len(set(diff.tolist())) == 4
    # the default generator works again after a refused random op
    with pytest.raises(RuntimeError):
        ef.vmap(lambda a: ember.randn(2))(ember.zeros(2))
    assert ember.rand(3).shape == (3,)


# ---- grad, vjp, jvp, jacobians -----------------------------------------------------------------

def _loss(m, x, y):
    return ((x.sin() * y).sum() ** 2)


TRANSFORMS = [  # (id, build, input shapes)
    ("grad", lambda m, f: f.grad(lambda x, y: _loss(m, x, y)), [(3,), (3,)]),
    ("grad-argnums", lambda m, f: f.grad(lambda x, y: _loss(m, x, y), argnums=(0, 1)),
     [(3,), (3,)]),
    ("grad-neg", lambda m, f: f.grad(lambda x, y: _loss(m, x, y), argnums=-1), [(3,), (3,)]),
    ("grad-dict", lambda m, f: (lambda x, y: f.grad(lambda d: _loss(m, d["x"], d["y"]))(
        {"x": x, "y": y})), [(3,), (3,)]),
    ("grad_and_value", lambda m, f: f.grad_and_value(lambda x, y: _loss(m, x, y)),
     [(3,), (3,)]),
    ("grad-aux", lambda m, f: f.grad(lambda x: (x.exp().sum(), x.cos()), has_aux=True),
     [(4,)]),
    ("value-aux", lambda m, f: f.grad_and_value(lambda x: (x.exp().sum(), x.cos()),
                                                has_aux=True), [(4,)]),
    ("grad-grad", lambda m, f: f.grad(f.grad(lambda x: x.sin() * x ** 3)), [()]),
    ("vmap-grad", lambda m, f: f.vmap(f.grad(lambda x, y: _loss(m, x, y)), in_dims=(0, None)),
     [(5, 3), (3,)]),
    ("grad-vmap", lambda m, f: f.grad(lambda x: f.vmap(lambda r: r.sin().sum())(x).prod()),
     [(3, 2)]),
    ("jvp", lambda m, f: (lambda x, v: f.jvp(lambda a: a.sin() * a.sum(), (x,), (v,))),
     [(4,), (4,)]),
    ("jvp-two", lambda m, f: (lambda x, y, u, v: f.jvp(lambda a, b: (a * b.exp(), a.sum()),
                                                       (x, y), (u, v))),
     [(3,), (3,), (3,), (3,)]),
    ("jvp-aux", lambda m, f: (lambda x, v: f.jvp(lambda a: (a.exp(), a.sum()), (x,), (v,),
                                                 has_aux=True)), [(3,), (3,)]),
    ("jacrev", lambda m, f: f.jacrev(lambda x: x.sin() * x.sum()), [(4,)]),
    ("jacrev-2d", lambda m, f: f.jacrev(lambda x, w: (w @ x).tanh(), argnums=(0, 1)),
     [(3,), (2, 3)]),
    ("jacrev-tuple-out", lambda m, f: f.jacrev(lambda x: (x.exp(), x.sum()), argnums=0),
     [(2, 2)]),
    ("jacrev-aux", lambda m, f: f.jacrev(lambda x: (x ** 2, x.sum()), has_aux=True), [(3,)]),
    ("jacfwd", lambda m, f: f.jacfwd(lambda x: x.sin() * x.sum()), [(4,)]),
    ("jacfwd-2d", lambda m, f: f.jacfwd(lambda x, w: (w @ x).tanh(), argnums=(0, 1)),
     [(3,), (2, 3)]),
    ("jacfwd-dict", lambda m, f: (lambda x: f.jacfwd(lambda d: d["a"].exp() * 2)({"a": x})),
     [(3,)]),
    ("hessian", lambda m, f: f.hessian(lambda x: (x.sin() * x[0]).sum()), [(3,)]),
    ("hessian-2", lambda m, f: f.hessian(lambda x, y: (x * y.exp()).sum() ** 2,
                                         argnums=(0, 1)), [(2,), (2,)]),
    ("jacrev-jacrev", lambda m, f: f.jacrev(f.jacrev(lambda x: x.sin().prod())), [(3,)]),
]


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("name,build,shapes", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_transforms(name, build, shapes, dt):
    _run(build, _np(*shapes), dt)


def test_vjp_against_torch():
    arrs = _np((3,), (2, 3), (2,))
    res = []
    for m, f in ((ember, ef), (torch, tf)):
        x, w, v = (m.tensor(a) for a in arrs)
        out, fn = f.vjp(lambda a, b: (b @ a).sin(), x, w)
        out2, fn2, aux = f.vjp(lambda a: ({"s": a.exp()}, a.sum()), x, has_aux=True)
        res.append((out, fn(v), out2["s"], fn2({"s": x}), aux))
    assert_close(res[0], res[1])
    assert isinstance(res[0][1], tuple)


def test_results_are_plain_tensors_at_top_level():
    x = ember.tensor([1.0, 2.0])
    g = ef.grad(lambda a: (a ** 3).sum())(x)
    assert not g.requires_grad
    j = ef.jacrev(lambda a: a ** 3)(x)
    assert not j.requires_grad


def test_grad_keeps_the_callers_graph():
    """An argument that requires grad makes the result differentiable, as in torch."""
    outs = []
    for m, f in ((ember, ef), (torch, tf)):
        x = m.tensor([0.5, -1.0, 2.0], dtype=m.float64, requires_grad=True)
        g = f.grad(lambda a: (a.sin() * a).sum())(x)
        (h,) = m.autograd.grad(g.sum(), x)
        outs.append((g, h))
    assert_close(outs[0], outs[1])


BAD_TRANSFORMS = [
    ("non-scalar", lambda m, f: f.grad(lambda a: a * 2)(m.ones(2)), RuntimeError,
     "to return a scalar Tensor, got tensor with 1 dims"),
    ("not-tensor", lambda m, f: f.grad(lambda a: 3.0)(m.ones(2)), RuntimeError,
     "to return a Tensor, got"),
    ("aux", lambda m, f: f.grad(lambda a: a.sum(), has_aux=True)(m.ones(2)), RuntimeError,
     r"should be a tuple: \(output, aux\)"),
    ("argnum-range", lambda m, f: f.grad(lambda a: a.sum(), argnums=1)(m.ones(2)), RuntimeError,
     "Got argnum=1, but only 1 positional inputs"),
    ("argnum-type", lambda m, f: f.grad(lambda a: a.sum(), argnums=[0])(m.ones(2)),
     RuntimeError, "argnums must be int or Tuple"),
    ("argnum-dup", lambda m, f: f.grad(lambda a, b: a.sum(), argnums=(0, 0))(m.ones(2),
                                                                          m.ones(2)),
     RuntimeError, "argnums elements must be unique"),
    ("argnum-empty", lambda m, f: f.grad(lambda a: a.sum(), argnums=())(m.ones(2)),
     RuntimeError, "argnums must be non-empty"),
    ("grad-float-arg", lambda m, f: f.grad(lambda a: a * 2)(2.0), ValueError,
     "Thing passed to transform API must be Tensor"),
    ("vjp-int", lambda m, f: f.vjp(lambda a: (a > 0).long(), m.ones(2)), RuntimeError,
     "must be floating-point or complex Tensors"),
    ("vjp-struct", lambda m, f: f.vjp(lambda a: a * 2, m.ones(2))[1]((m.ones(2),)),
     RuntimeError, "Expected pytree structure of cotangents"),
    ("jvp-list", lambda m, f: f.jvp(lambda a: a, [m.ones(2)], [m.ones(2)]), RuntimeError,
     "Expected primals to be a tuple"),
    ("jvp-struct", lambda m, f: f.jvp(lambda a: a, (m.ones(2),), (m.ones(2), m.ones(2))),
     RuntimeError, "Expected primals and tangents to have the same python structure"),
    ("jvp-shape", lambda m, f: f.jvp(lambda a: a, (m.ones(2),), (m.ones(3),)), RuntimeError,
     "different size than that of the original Tensor"),
    ("jacrev-chunk", lambda m, f: f.jacrev(lambda a: a, chunk_size=0)(m.ones(2)), ValueError,
     "`chunk_size` should be greater than 0"),
]


@pytest.mark.parametrize("name,call,exc,msg", BAD_TRANSFORMS, ids=[b[0] for b in BAD_TRANSFORMS])
def test_transform_bad_inputs(name, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(torch, tf)
    with pytest.raises(exc, match=msg):
        call(ember, ef)


# ---- functional_call, stack_module_state, per-sample gradients ---------------------------------

def _mlp(m, seed=0):
    torch_like = m.nn
    net = torch_like.Sequential(torch_like.Linear(4, 8), torch_like.Tanh(),
                                torch_like.Linear(8, 3))
    rng = np.random.default_rng(seed)
    with m.no_grad():
        for p in net.parameters():
            p.copy_(m.tensor(rng.normal(0, 0.5, tuple(p.shape))))
    return net


def test_functional_call_swaps_and_restores():
    res = []
    for m, f in ((ember, ef), (torch, tf)):
        net = _mlp(m)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        new = {k: v * 2 for k, v in net.named_parameters()}
        x = m.tensor(_np((5, 4), dt="float32")[0])
        out = f.functional_call(net, new, (x,))
        out1 = f.functional_call(net, ({"0.weight": new["0.weight"]}, {"2.bias": new["2.bias"]}),
                                 x)
        res.append((out, out1, net(x)))
        for k, v in net.state_dict().items():
            assert m.equal(v, before[k])
        assert isinstance(net[0].weight, m.nn.Parameter)
    assert_close(res[0], res[1], "float32")


def test_functional_call_restores_on_exception():
    net = ember.nn.Linear(3, 2)
    w = net.weight

    class Boom(Exception):
        pass

    def hook(mod, args):
        raise Boom
    h = net.register_forward_pre_hook(hook)
    with pytest.raises(Boom):
        ef.functional_call(net, {"weight": ember.zeros(2, 3)}, ember.ones(3))
    h.remove()
    assert net.weight is w


def test_functional_call_buffers_kwargs_and_ties():
    def tied_class(m):
        class Tied(m.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = m.nn.Linear(2, 2, bias=False)
                self.b = m.nn.Linear(2, 2, bias=False)
                self.b.weight = self.a.weight
                with m.no_grad():
                    self.a.weight.copy_(m.tensor([[0.5, -1.0], [2.0, 0.25]]))
                self.register_buffer("scale", m.ones(2))

            def forward(self, x, *, shift=0.0):
                return self.b(self.a(x)) * self.scale + shift
        return Tied

    res = []
    for m, f in ((ember, ef), (torch, tf)):
        mod = tied_class(m)()
        x = m.tensor([1.0, -2.0])
        w = m.tensor([[1.0, 2.0], [3.0, 4.0]])
        vals = {"a.weight": w, "scale": m.tensor([2.0, 3.0])}
        res.append((f.functional_call(mod, vals, (x,), {"shift": 1.0}),
                    f.functional_call(mod, vals, (x,), tie_weights=False)))
        with pytest.raises(ValueError, match="which are tied"):
            f.functional_call(mod, {"a.weight": w, "b.weight": w * 2}, (x,))
        with pytest.raises(RuntimeError, match="Missing key"):
            f.functional_call(mod, {"a.weight": w}, (x,), strict=True)
        with pytest.raises(RuntimeError, match="Unexpected key"):
            f.functional_call(mod, {"a.weight": w, "scale": w[0], "zzz": w}, (x,), strict=True)
        with pytest.raises(ValueError, match="appeared in multiple dictionaries"):
            f.functional_call(mod, ({"scale": w[0]}, {"scale": w[0]}), (x,))
        with pytest.raises(ValueError, match="Expected parameter_and_buffer_dicts"):
            f.functional_call(mod, 3, (x,))
    assert_close(res[0], res[1])


def test_stack_module_state_ensemble():
    res = []
    x = _np((6, 4), seed=3, dt="float32")[0]
    for m, f in ((ember, ef), (torch, tf)):
        models = [_mlp(m, seed=s) for s in range(3)]
        params, buffers = f.stack_module_state(models)
        assert list(params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        assert params["0.weight"].shape == (3, 8, 4) and params["0.weight"].is_leaf
        base = _mlp(m)

        def call(p, b, xb):
            return f.functional_call(base, (p, b), (xb,))
        out = f.vmap(call, in_dims=(0, 0, None))(params, buffers, m.tensor(x))
        out.sum().backward()
        res.append((out, params["0.weight"].grad))
        with pytest.raises(RuntimeError, match="at least one model"):
            f.stack_module_state([])
        with pytest.raises(RuntimeError, match="same training/eval mode"):
            f.stack_module_state([_mlp(m), _mlp(m).eval()])
        with pytest.raises(RuntimeError, match="same class"):
            f.stack_module_state([_mlp(m), m.nn.Linear(2, 2)])
    assert_close(res[0], res[1], "float32")


@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_per_sample_gradients_recipe(dt):
    """PyTorch's per-sample-gradient tutorial: vmap(grad(loss), in_dims=(None, 0, 0))."""
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(6, 4)).astype(dt)
    ys = rng.integers(0, 3, size=6)
    res = []
    for m, f in ((ember, ef), (torch, tf)):
        net = _mlp(m).to(getattr(m, dt))
        params = {k: v.detach() for k, v in net.named_parameters()}
        buffers = {k: v.detach() for k, v in net.named_buffers()}

        def loss(p, b, x, y):
            out = f.functional_call(net, (p, b), (x.unsqueeze(0),))
            return m.nn.functional.cross_entropy(out, y.unsqueeze(0))
        g = f.vmap(f.grad(loss), in_dims=(None, None, 0, 0))(params, buffers, m.tensor(xs),
                                                              m.tensor(ys))
        res.append(g)
        assert g["0.weight"].shape == (6, 8, 4)
    assert_close(res[0], res[1], dt)
    # the per-sample gradients average to the batch gradient
    net = _mlp(ember).to(getattr(ember, dt))
    ember.nn.functional.cross_entropy(net(ember.tensor(xs)), ember.tensor(ys)).backward()
    np.testing.assert_allclose(res[0]["0.weight"].mean(0).numpy(), net[0].weight.grad.numpy(),
                               rtol=1e-4, atol=1e-6)


def test_stateless_functional_call_is_deprecated_alias():
    res = []
    for m in (ember, torch):
        net = _mlp(m)
        new = {k: v * 0.5 for k, v in net.named_parameters()}
        x = m.tensor(_np((3, 4), dt="float32")[0])
        with pytest.warns(FutureWarning, match="torch.func.functional_call"):
            res.append(m.nn.utils.stateless.functional_call(net, new, (x,)))
    assert_close(res[0], res[1], "float32")
