"""``autograd.functional``: vjp, jvp, jacobian, hessian, vhp, hvp against torch's."""
import numpy as np
import pytest
import torch

import ember
from opcheck import assert_close


def _f1(m, x):
    return (x ** 3).sin() * 2


def _f2(m, x, y):
    return x.exp() @ y, (x * x).sum()


def _s1(m, x):
    return (x ** 3).sum() + (x[0] * x[1]).exp()


def _s2(m, x, y):
    return (x.sin() @ y).pow(2).sum()


def _ins(dt, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.uniform(-1, 1, s).astype(dt) for s in shapes]
    return ([ember.from_numpy(a.copy()) for a in arrs], [torch.from_numpy(a.copy()) for a in arrs])


def _call(mod, name, fn, ins, tup, **kw):
    f = getattr(mod.autograd.functional, name)
    return f(lambda *a: fn(mod, *a), tuple(ins) if tup else ins[0], **kw)


CASES = [  # (name, fn, input shapes, v shapes: "out" / "in" / None)
    ("vjp", _f1, [(4,)], [(4,)]),
    ("vjp", _f2, [(2, 3), (3,)], [(2,), ()]),
    ("jvp", _f1, [(4,)], [(4,)]),
    ("jvp", _f2, [(2, 3), (3,)], [(2, 3), (3,)]),
    ("jacobian", _f1, [(4,)], None),
    ("jacobian", _f2, [(2, 3), (3,)], None),
    ("hessian", _s1, [(3,)], None),
    ("hessian", _s2, [(2, 3), (3,)], None),
    ("vhp", _s1, [(3,)], [(3,)]),
    ("vhp", _s2, [(2, 3), (3,)], [(2, 3), (3,)]),
    ("hvp", _s1, [(3,)], [(3,)]),
    ("hvp", _s2, [(2, 3), (3,)], [(2, 3), (3,)]),
]


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("name,fn,shapes,vshapes", CASES)
def test_against_torch(name, fn, shapes, vshapes, dt):
    tup = len(shapes) > 1
    e_in, t_in = _ins(dt, *shapes)
    kw_e, kw_t = {}, {}
    if vshapes is not None:
        e_v, t_v = _ins(dt, *vshapes, seed=1)
        kw_e["v"] = tuple(e_v) if len(vshapes) > 1 else e_v[0]
        kw_t["v"] = tuple(t_v) if len(vshapes) > 1 else t_v[0]
    r_e = _call(ember, name, fn, e_in, tup, **kw_e)
    r_t = _call(torch, name, fn, t_in, tup, **kw_t)
    assert_close(r_e, r_t, dt, name)


@pytest.mark.parametrize("name", ["vjp", "jvp", "vhp", "hvp", "jacobian", "hessian"])
def test_create_graph_differentiates_again(name):
    """With ``create_graph=True`` the result is differentiable w.r.t. the caller's inputs."""
    outs = []
    for m in (ember, torch):
        x = m.tensor([0.3, -0.7, 1.1], dtype=m.float64, requires_grad=True)
        v = m.tensor([1.0, 2.0, -1.0], dtype=m.float64)
        f = getattr(m.autograd.functional, name)
        kw = {"v": v} if name in ("vjp", "jvp", "vhp", "hvp") else {}
        fn = (lambda a: (a ** 3).sin()) if name in ("vjp", "jvp", "jacobian") else \
            (lambda a: (a ** 4).sum())
        r = f(fn, x, create_graph=True, **kw)
        r = r[1] if isinstance(r, tuple) else r
        (g,) = m.autograd.grad(r.sum(), x)
        outs.append((r, g))
    assert_close(outs[0], outs[1])
    assert outs[0][0].requires_grad


def test_results_detached_without_create_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    out, g = ember.autograd.functional.vjp(lambda a: a.pow(2).sum(), x)
    assert not out.requires_grad and not g.requires_grad
    assert x.grad is None


def test_independent_input_gives_zeros_and_strict_raises():
    x = ember.tensor([1.0, 2.0])
    y = ember.tensor([3.0])
    jac = ember.autograd.functional.jacobian(lambda a, b: a * 2, (x, y))
    assert jac[1].shape == (2, 1) and float(jac[1].abs().sum()) == 0
    with pytest.raises(RuntimeError, match="independent of input 1"):
        ember.autograd.functional.jacobian(lambda a, b: a * 2, (x, y), strict=True)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        ember.autograd.functional.vjp(lambda a, b: a * 2, (x, y), ember.ones(2), strict=True)
    with pytest.raises(RuntimeError, match="does not require gradients"):
        ember.autograd.functional.vjp(lambda a: ember.ones(2), x, ember.ones(2), strict=True)
    with pytest.raises(RuntimeError, match="twice differentiable"):
        ember.autograd.functional.hessian(lambda a: a.sum() * 3, x, strict=True)


BAD = [  # (name, call, error type, message as torch's)
    ("vjp", lambda m: m.autograd.functional.vjp(lambda a: a * 2, m.ones(3)), RuntimeError,
     "v can only be None"),
    ("jvp", lambda m: m.autograd.functional.jvp(lambda a: a * 2, m.ones(3)), RuntimeError,
     "v can only be None"),
    ("vjp-size", lambda m: m.autograd.functional.vjp(lambda a: a * 2, m.ones(3), m.ones(2)),
     RuntimeError, "v has invalid size"),
    ("jvp-len", lambda m: m.autograd.functional.jvp(lambda a, b: a * b, (m.ones(3), m.ones(3)),
                                                    (m.ones(3),)),
     RuntimeError, "v is a tuple of invalid length"),
    ("type", lambda m: m.autograd.functional.jacobian(lambda a: a, [1.0]), TypeError,
     "must be either a Tensor or a tuple of Tensors"),
    ("out-type", lambda m: m.autograd.functional.jacobian(lambda a: 3.0, m.ones(2)), TypeError,
     "outputs of the user-provided function"),
    ("hess-vec", lambda m: m.autograd.functional.hessian(lambda a: a * 2, m.ones(2)),
     RuntimeError, "should contain a single element"),
    ("hvp-tuple", lambda m: m.autograd.functional.hvp(lambda a: (a.sum(), a.sum()), m.ones(2),
                                                      m.ones(2)),
     RuntimeError, "should return a single Tensor"),
    ("strategy", lambda m: m.autograd.functional.jacobian(lambda a: a, m.ones(2),
                                                          strategy="sideways"),
     AssertionError, "Expected strategy"),
    ("fwd-graph", lambda m: m.autograd.functional.jacobian(lambda a: a, m.ones(2),
                                                           create_graph=True,
                                                           strategy="forward-mode"),
     NotImplementedError, "not supported together"),
]


@pytest.mark.parametrize("name,call,exc,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(name, call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(torch)
    with pytest.raises(exc, match=msg):
        call(ember)


def test_forward_mode_and_vectorize_flags_give_the_same_jacobian():
    x = ember.tensor([0.5, -1.5, 2.0], dtype=ember.float64)
    ref = ember.autograd.functional.jacobian(lambda a: a.exp() * a[0], x)
    for kw in (dict(vectorize=True), dict(vectorize=True, strategy="forward-mode")):
        assert_close(ember.autograd.functional.jacobian(lambda a: a.exp() * a[0], x, **kw),
                     torch.autograd.functional.jacobian(lambda a: a.exp() * a[0],
                                                        torch.tensor(x.numpy()), **kw))
        np.testing.assert_allclose(
            ember.autograd.functional.jacobian(lambda a: a.exp() * a[0], x, **kw).numpy(),
            ref.numpy())
