"""Binary ops' graph nodes have PyTorch's inputs as ``next_functions`` (``Function.edges``):
no edge for the dtype, ``alpha`` or rounding-mode argument, none for the number of
``rsub``/``pow`` with a scalar; so a node hook gets PyTorch's count of grad_inputs.  Against
torch: edge count, which edges are None, the hook's grad_inputs and the gradients; through the
operators (the recorded-without-apply path for float32/64) and the functions (``apply``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

CASES = {  # name: f(lib, x, y, c) with x, y requiring grad, c not
    "x + y": lambda L, x, y, c: x + y,
    "x + c": lambda L, x, y, c: x + c,
    "x + 2.0": lambda L, x, y, c: x + 2.0,
    "2.0 + x": lambda L, x, y, c: 2.0 + x,
    "add alpha": lambda L, x, y, c: L.add(x, y, alpha=2),
    "add(x, 3)": lambda L, x, y, c: L.add(x, 3),
    "x - y": lambda L, x, y, c: x - y,
    "x.sub(y, alpha)": lambda L, x, y, c: x.sub(y, alpha=0.5),
    "2.0 - x": lambda L, x, y, c: 2.0 - x,
    "rsub(x, y)": lambda L, x, y, c: L.rsub(x, y),
    "rsub(x, 2.0)": lambda L, x, y, c: L.rsub(x, 2.0),
    "x * y": lambda L, x, y, c: x * y,
    "c * y": lambda L, x, y, c: c * y,
    "x * 2.0": lambda L, x, y, c: x * 2.0,
    "mul(x, y)": lambda L, x, y, c: L.mul(x, y),
    "x / y": lambda L, x, y, c: x / y,
    "x / 2.0": lambda L, x, y, c: x / 2.0,
    "div floor": lambda L, x, y, c: L.div(x, y, rounding_mode="floor"),
    "x ** 2.5": lambda L, x, y, c: x ** 2.5,
    "pow(x, 3)": lambda L, x, y, c: L.pow(x, 3),
    "x ** y": lambda L, x, y, c: x ** y,
    "atan2": lambda L, x, y, c: L.atan2(x, y),
    "hypot": lambda L, x, y, c: L.hypot(x, y),
    "maximum": lambda L, x, y, c: L.maximum(x, y),
    "minimum(c, y)": lambda L, x, y, c: L.minimum(c, y),
    "fmax": lambda L, x, y, c: L.fmax(x, y),
}


def _run(lib, name, dt):
    x = lib.tensor([1.5, 0.5, 2.0], dtype=getattr(lib, dt), requires_grad=True)
    y = lib.tensor([0.5, 2.0, 2.0], dtype=getattr(lib, dt), requires_grad=True)
    c = lib.tensor([3.0, 1.0, 0.5], dtype=getattr(lib, dt))
    z = CASES[name](lib, x, y, c)
    seen = []
    z.grad_fn.register_hook(lambda gi, go: seen.append(
        tuple(None if g is None else g.detach().double().numpy() for g in gi)))
    edges = [f is None for f, _ in z.grad_fn.next_functions]
    z.sum().backward()
    return z.grad_fn.name(), edges, seen, [None if t.grad is None else t.grad.double().numpy()
                                          for t in (x, y)]


@pytest.mark.parametrize("dt", ["float32", "float64", "float16"])
@pytest.mark.parametrize("name", list(CASES))
def test_edges_and_hook_inputs_as_torch(name, dt):
    got, want = _run(ember, name, dt), _run(torch, name, dt)
    assert got[:2] == want[:2]
    assert len(got[2]) == len(want[2]) == 1
    assert len(got[2][0]) == len(want[2][0])
    for g, w in zip(got[2][0], want[2][0]):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
    for g, w in zip(got[3], want[3]):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-3)
