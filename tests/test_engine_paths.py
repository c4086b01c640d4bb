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
