"""The engine's lean path (a built-in op's node with one output and no hooks, a leaf's
AccumulateGrad) and its general path (hooks, several outputs, custom Functions, ``inputs=``,
anomaly mode) give torch's gradients, hook calls and errors on the same graphs."""
import numpy as np
import pytest
import torch

import ember

RNG = np.random.default_rng(7)
A = RNG.standard_normal((4, 5))
B = RNG.standard_normal(5)
C = RNG.uniform(0.5, 1.5, (4, 1))


def _leaves(mod, dtype):
    dt = getattr(mod, dtype)
    return [mod.tensor(a, dtype=dt, requires_grad=True) for a in (A, B, C)]


def _fan_in(mod, a, b, c):
    """fan-out and fan-in, broadcasting leaves, a unary chain and a reduction"""
    h = (a + b) * c
    return ((h.relu() - 0.1).tanh() * h + h.sigmoid() * a).sum(1).mean()


def _multi_out(mod, a, b, c):
    """nodes with several outputs (max's values, unbind), one output unused"""
    v, _ = mod.max(a * c, dim=1)
    u0, u1, _, _ = (a + b).unbind(0)
    return (v * 2).sum() + (u0 * u1).sum()


def _no_flow(mod, a, b, c):
    """a branch whose gradient never arrives (an integer-valued op blocks it)"""
    k = (a * 0).argmax()
    return (a * b).sum() + (c * k).sum()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("graph", [_fan_in, _multi_out, _no_flow])
def test_gradients_match_torch(graph, dtype):
    te, tt = _leaves(ember, dtype), _leaves(torch, dtype)
    graph(ember, *te).backward()
    graph(torch, *tt).backward()
    tol = 1e-12 if dtype == "float64" else 1e-5
    for e, t in zip(te, tt):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("where", ["tensor", "node_pre", "node_post", "leaf_node"])
def test_hooks_leave_the_lean_path(where):
    def run(mod):
        a, b, c = _leaves(mod, "float64")
        calls = []
        h = (a + b) * c
        y = h.tanh()
        if where == "tensor":
            h.register_hook(lambda g: calls.append("t") or g * 2)
        elif where == "node_pre":
            y.grad_fn.register_prehook(lambda go: calls.append("pre") or (go[0] * 3,))
        elif where == "node_post":
            h.grad_fn.register_hook(lambda gi, go: calls.append("post"))
        else:  # the AccumulateGrad of ``c`` (reached through the graph)
            acc = h.grad_fn.next_functions[1][0]
            acc.register_prehook(lambda go: calls.append("acc") or (go[0] * 0.5,))
        y.sum().backward()
        return calls, [t.grad.numpy() for t in (a, b, c)]

    ce, ge = run(ember)
    ct, gt = run(torch)
    assert ce == ct and ce
    for e, t in zip(ge, gt):
        np.testing.assert_allclose(e, t, rtol=1e-12, atol=1e-12)


def test_second_backward_and_retain_graph():
    for mod in (ember, torch):
        a, b, c = _leaves(mod, "float64")
        y = (a * b * c).sum()
        y.backward(retain_graph=True)
        y.backward()
        np.testing.assert_allclose(a.grad.numpy(), 2 * B * C)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.backward()


def test_inputs_and_grad_take_the_general_path():
    outs = []
    for mod in (ember, torch):
        a, b, c = _leaves(mod, "float64")
        y = _fan_in(mod, a, b, c)
        ga, gc = mod.autograd.grad(y, (a, c), retain_graph=True)
        y.backward(inputs=[b])
        outs.append((ga.numpy(), gc.numpy(), b.grad.numpy(), a.grad))
    (ea, ec, eb, eag), (ta, tc, tb, tag) = outs
    assert eag is None and tag is None
    for e, t in ((ea, ta), (ec, tc), (eb, tb)):
        np.testing.assert_allclose(e, t, rtol=1e-12, atol=1e-12)


def test_anomaly_mode_checks_lean_nodes():
    for mod in (ember, torch):
        a = mod.tensor([0.0, 1.0], requires_grad=True)
        with mod.autograd.detect_anomaly(), pytest.warns(UserWarning):
            y = a.sqrt()
            with pytest.raises(RuntimeError, match="returned nan values in its 0th output"):
                (y * 0).sum().backward()


def test_wrong_gradient_count_raises():
    class Two(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="returned an incorrect number of gradients"):
        Two.apply(x, x).sum().backward()


def test_built_in_nodes_skip_the_general_path(monkeypatch):
    """Built-in one-output nodes and leaves run without ``_call_node``; a hook or ``inputs=``
    sends them through it (the lean path is what makes small-op backward cheap)."""
    from ember.autograd import engine
    calls = []
    general = engine._call_node
    monkeypatch.setattr(engine, "_call_node", lambda node, *a: calls.append(node) or general(
        node, *a))
    a, b, c = _leaves(ember, "float32")
    _fan_in(ember, a, b, c).backward()
    assert calls == []
    y = (a * b).tanh()
    y.grad_fn.register_prehook(lambda go: None)
    y.sum().backward()
    assert [n.name() for n in calls] == ["TanhBackward0"]
    calls.clear()
    (a * b).sum().backward(inputs=[a])
    assert len(calls) == 3  # SumBackward0, MulBackward0, a's AccumulateGrad


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_kept_by_a_hook_is_not_changed_by_the_next_backward(dtype):
    # AccumulateGrad keeps the incoming gradient as .grad only when no one else holds it;
    # a hook that keeps it must see the first backward's values after the second one
    kept = {}
    for m in (ember, torch):
        w = m.ones(3, dtype=getattr(m, dtype), requires_grad=True)
        seen = []
        w.register_hook(lambda g, seen=seen: seen.append(g))
        (w * 2).sum().backward()
        (w * 3).sum().backward()
        kept[m] = [s.detach().numpy().tolist() for s in seen] + [w.grad.numpy().tolist()]
    assert kept[ember] == kept[torch] == [[2.0] * 3, [3.0] * 3, [5.0] * 3]


def test_built_in_ops_take_the_raw_apply():
    """A built-in op class gets ``_apply_raw``; a custom subclass of one gets ``apply``."""
    from ember.autograd.function import Function, _apply_raw
    from ember.ops.elementwise import Mul, Relu

    class Twice(Relu):  # a custom Function built on a built-in op's class
        raw = False

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    assert Mul.apply.__func__ is _apply_raw and Relu.apply.__func__ is _apply_raw
    assert Twice.apply.__func__ is Function.apply.__func__
    x = ember.tensor([1.0, -2.0], requires_grad=True)
    Twice.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unary_edges_match_torch(dtype):
    """A unary op's one-input path (leaf, non-leaf, Parameter, no grad) records torch's edges."""
    got, want = [], []
    for mod, out in ((ember, got), (torch, want)):
        dt = getattr(mod, dtype)
        x = mod.tensor(A, dtype=dt, requires_grad=True)
        p = mod.nn.Parameter(mod.tensor(A, dtype=dt))
        c = mod.tensor(A, dtype=dt)
        h = x.tanh()
        y = h.relu()
        out.append([t.grad_fn.name() if t.grad_fn is not None else None
                    for t in (h, y, p.exp(), c.exp())])
        out.append([[n is not None and n.name() for n, _ in t.grad_fn.next_functions]
                    for t in (h, y)])
        (y.sum() + p.exp().sum()).backward()
        out.append([x.grad.tolist(), p.grad.tolist()])
    assert got[0] == ["TanhBackward0", "ReluBackward0", "ExpBackward0", None] == want[0]
    assert got[1] == [["torch::autograd::AccumulateGrad"], ["TanhBackward0"]] == want[1]
    np.testing.assert_allclose(got[2][0], want[2][0], rtol=1e-6)
    np.testing.assert_allclose(got[2][1], want[2][1], rtol=1e-6)
