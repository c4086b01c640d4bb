"""``autograd.graph``: saved-tensor hooks, gradient edges and versions, against PyTorch."""
import numpy as np
import pytest
import torch

import ember


def _programs():
    def mul_exp(m, x, w):
        return (x * w).exp().sum()

    def linear_relu(m, x, w):
        return m.nn.functional.linear(x[None], w.reshape(1, 3)).relu().sum()

    def tanh_chain(m, x, w):
        return (x.tanh() * w.sigmoid()).pow(2).mean()
    return [mul_exp, linear_relu, tanh_chain]


@pytest.mark.parametrize("prog", _programs(), ids=lambda f: f.__name__)
def test_pack_and_unpack_counts_and_gradients_match_torch(prog):
    xs, ws = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, -0.5])
    got = {}
    for m in (ember, torch):
        calls = {"pack": 0, "unpack": 0}

        def pack(t):
            calls["pack"] += 1
            return t.detach().numpy().copy()  # stored outside the framework

        def unpack(a):
            calls["unpack"] += 1
            return m.from_numpy(a)
        x = m.tensor(xs, requires_grad=True)
        w = m.tensor(ws, requires_grad=True)
        with m.autograd.graph.saved_tensors_hooks(pack, unpack):
            y = prog(m, x, w)
        assert calls["unpack"] == 0
        y.backward()
        got[m.__name__] = (calls, x.grad.numpy().copy(), w.grad.numpy().copy())
    e, t = got["ember"], got["torch"]
    assert e[0] == t[0]
    np.testing.assert_allclose(e[1], t[1], rtol=1e-12)
    np.testing.assert_allclose(e[2], t[2], rtol=1e-12)


def test_innermost_hooks_win_and_outside_no_hooks():
    seen = []
    x = ember.ones(2, requires_grad=True)
    with ember.autograd.graph.saved_tensors_hooks(lambda t: seen.append("outer") or t,
                                                  lambda t: t):
        with ember.autograd.graph.saved_tensors_hooks(lambda t: seen.append("inner") or t,
                                                      lambda t: t):
            x.exp()
        x.exp()
    x.exp()
    assert seen == ["inner", "outer"]


def test_save_on_cpu_gives_the_same_gradients():
    x = ember.tensor([0.3, -0.7], requires_grad=True)
    with ember.autograd.graph.save_on_cpu():
        y = (x.exp() * x.sin()).sum()
    y.backward()
    tx = torch.tensor([0.3, -0.7], requires_grad=True, dtype=torch.float32)
    with torch.autograd.graph.save_on_cpu():
        ty = (tx.exp() * tx.sin()).sum()
    ty.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_disable_saved_tensors_hooks_raises_the_message_as_torch():
    for m in (ember, torch):
        with m.autograd.graph.disable_saved_tensors_hooks("no hooks here"):
            with pytest.raises(RuntimeError, match="no hooks here"):
                with m.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
                    pass


def test_gradient_edge_and_increment_version_as_torch():
    for m in (ember, torch):
        x = m.ones(2, requires_grad=True)
        y = x * 2
        edge = m.autograd.graph.get_gradient_edge(y)
        assert edge.node is y.grad_fn and edge.output_nr == 0
        leaf_edge = m.autograd.graph.get_gradient_edge(x)
        assert leaf_edge.node.name().endswith("AccumulateGrad")
        with pytest.raises(RuntimeError, match="does not require gradients"):
            m.autograd.graph.get_gradient_edge(m.ones(2))
        z = x.exp()
        v = z._version
        m.autograd.graph.increment_version(z)
        assert z._version == v + 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            z.sum().backward()  # exp saved its output, which is now "modified"
