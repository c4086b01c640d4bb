"""A custom backend (``backend(gm, example_inputs)``) that returns a ``CompiledRegion`` itself:
``create_graph=True`` through it recomputes with eager autograd as the default backend's
region does (``_dynamo/backends.py`` gives it ``gm``); over a graph of its own it raises the
real reason, and a region that draws random numbers still raises its own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember._dynamo.backends import lookup_backend
from ember._functorch.aot_autograd import CompiledRegion
from ember.fx import Graph

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _consts(gm):
    return {n.target: getattr(gm, n.target) for n in gm.graph.nodes if n.op == "get_attr"}


def region_of_gm(gm, example_inputs):
    """The region over ``gm``'s own graph, returned as it is."""
    return CompiledRegion(gm.graph, _consts(gm))


def region_of_a_copy(gm, example_inputs):
    """The region over a copy of ``gm``'s graph: ``gm`` cannot stand for it."""
    g = Graph()
    g.output(g.graph_copy(gm.graph, {}))
    return CompiledRegion(g, _consts(gm))


W = np.array([[0.5, -1.0, 0.25], [1.5, 0.75, -0.5]])
X = np.array([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6], [-0.7, 0.8, 0.9], [1.0, -1.1, 0.2]])


def _second_derivative(lib, f, dtype):
    x = lib.tensor(X, dtype=dtype, requires_grad=True)
    w = lib.tensor(W, dtype=dtype, requires_grad=True)
    f(x, w)  # (ember: the capture)
    (g,) = lib.autograd.grad(f(x, w), x, create_graph=True)
    gx, gw = lib.autograd.grad((g * g).sum(), (x, w))
    return g.detach().numpy(), gx.numpy(), gw.numpy()


def _loss(lib):
    return lambda x, w: lib.tanh(x @ w.T).pow(3).sum()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_create_graph_through_a_region_a_custom_backend_returned(dtype):
    f = ember.compile(_loss(ember), backend=region_of_gm)
    got = _second_derivative(ember, f, getattr(ember, dtype))
    want = _second_derivative(ember, _loss(ember), getattr(ember, dtype))
    ref = _second_derivative(torch, _loss(torch), getattr(torch, dtype))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for a, b, c in zip(got, want, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(a, c, rtol=rtol, atol=rtol)
    assert isinstance(f.explained.compiled, CompiledRegion)


def test_a_region_over_another_graph_names_the_real_reason():
    f = ember.compile(_loss(ember), backend=region_of_a_copy)
    x = ember.tensor(X, requires_grad=True)
    w = ember.tensor(W, requires_grad=True)
    f(x, w)
    with pytest.raises(RuntimeError, match=r"region\.gm") as e:
        ember.autograd.grad(f(x, w), x, create_graph=True)
    assert "random" not in str(e.value)
    (g,) = ember.autograd.grad(f(x, w), x)  # first-order gradients need no recompute
    (want,) = ember.autograd.grad(_loss(ember)(x, w), x)
    np.testing.assert_allclose(g.numpy(), want.numpy(), rtol=1e-6)


def test_a_region_drawing_random_numbers_still_says_so():
    def f(x):
        return ember.nn.functional.dropout(x.sin(), 0.5, training=True).sum()
    cf = ember.compile(f, backend=region_of_gm)
    x = ember.randn(8, requires_grad=True)
    cf(x)
    with pytest.raises(RuntimeError, match="random numbers"):
        ember.autograd.grad(cf(x), x, create_graph=True)


def test_a_custom_backend_is_wrapped_once_and_named_as_itself():
    b = lookup_backend(region_of_gm)
    assert b.__wrapped__ is region_of_gm and b.__name__ == "region_of_gm"
    assert lookup_backend(b) is b
    inductor = lookup_backend("inductor")
    assert lookup_backend(inductor) is inductor
