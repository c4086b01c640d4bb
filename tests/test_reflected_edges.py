"""Graph nodes of binary ops with a number operand (``2 ** x``, ``pow(2, x)``, ``x % 2``,
``xlogy(2, x)`` ...) have PyTorch's name and ``next_functions``: the number is no edge, first or
second (``Function.edges``, a slice when the tensor comes after it), so a node hook gets PyTorch's
count of grad_inputs; the gradients are unchanged.  Against torch, float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

CASES = {  # name: f(lib, x, y) with x, y requiring grad
    "2 ** y": lambda L, x, y: 2 ** y,
    "2.5 ** y": lambda L, x, y: 2.5 ** y,
    "np.float64(2) ** y": lambda L, x, y: np.float64(2) ** y,
    "pow(2, y)": lambda L, x, y: L.pow(2, y),
    "y.__rpow__(3)": lambda L, x, y: y.__rpow__(3),
    "float_power(2, y)": lambda L, x, y: L.float_power(2, y),
    "2 / y": lambda L, x, y: 2 / y,
    "y.__rdiv__(2)": lambda L, x, y: y.__rdiv__(2),
    "2 - y": lambda L, x, y: 2 - y,
    "2 // y": lambda L, x, y: 2 // y,
    "x // 2": lambda L, x, y: x // 2,
    "x // y": lambda L, x, y: x // y,
    "floor_divide(2.5, y)": lambda L, x, y: L.floor_divide(2.5, y),
    "2 % y": lambda L, x, y: 2 % y,
    "remainder(2, y)": lambda L, x, y: L.remainder(2, y),
    "x % 2": lambda L, x, y: x % 2,
    "x % y": lambda L, x, y: x % y,
    "fmod(x, 2)": lambda L, x, y: L.fmod(x, 2),
    "fmod(x, y)": lambda L, x, y: L.fmod(x, y),
    "copysign(x, -2)": lambda L, x, y: L.copysign(x, -2.0),
    "copysign(x, y)": lambda L, x, y: L.copysign(x, y),
    "xlogy(2, y)": lambda L, x, y: L.xlogy(2, y),
    "xlogy(x, 2)": lambda L, x, y: L.xlogy(x, 2),
    "xlogy(x, y)": lambda L, x, y: L.xlogy(x, y),
    "special.xlogy(2.5, y)": lambda L, x, y: L.special.xlogy(2.5, y),
    "special.xlog1py(2, y)": lambda L, x, y: L.special.xlog1py(2, y),
    "special.xlog1py(x, 2)": lambda L, x, y: L.special.xlog1py(x, 2),
    "special.zeta(3, y)": lambda L, x, y: L.special.zeta(3.0, y),
    "special.zeta(x + 2, y)": lambda L, x, y: L.special.zeta(x.detach() + 2, y),
    "lerp(x, y, 0.3)": lambda L, x, y: L.lerp(x, y, 0.3),
    "lerp(x, y, y)": lambda L, x, y: L.lerp(x, y, y),
    "clamp(x, 0.6, 1.8)": lambda L, x, y: L.clamp(x, 0.6, 1.8),
    "clamp_min(x, 1)": lambda L, x, y: L.clamp_min(x, 1.0),
    "clamp(x, y, y + 1)": lambda L, x, y: L.clamp(x, y, y + 1),
    "clamp_min(x, y)": lambda L, x, y: L.clamp_min(x, y),
    "addcmul(x, y, y, value=2)": lambda L, x, y: L.addcmul(x, y, y, value=2),
    "addcdiv(x, y, y, value=2)": lambda L, x, y: L.addcdiv(x, y, y, value=2),
    "nan_to_num(x, 0.0)": lambda L, x, y: L.nan_to_num(x, 0.0),
    "logit(x / 4, 1e-3)": lambda L, x, y: L.logit(x / 4, 1e-3),
}


def _run(lib, name, dt):
    x = lib.tensor([1.5, 0.5, 2.0], dtype=getattr(lib, dt), requires_grad=True)
    y = lib.tensor([0.5, 2.0, 1.25], dtype=getattr(lib, dt), requires_grad=True)
    z = CASES[name](lib, x, y)
    fn = z.grad_fn
    seen = []
    fn.register_hook(lambda gi, go: seen.append(
        tuple(None if g is None else g.detach().double().numpy() for g in gi)))
    edges = [None if f is None else f.name() for f, _ in fn.next_functions]
    try:
        z.sum().backward()
    except RuntimeError as e:  # floor_divide and number % tensor have no derivative
        return fn.name(), edges, type(e).__name__, str(e)
    return fn.name(), edges, seen, [None if t.grad is None else t.grad.double().numpy()
                                   for t in (x, y)]


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_number_operand_is_no_edge(name, dt):
    got, want = _run(ember, name, dt), _run(torch, name, dt)
    assert got[:2] == want[:2]
    if isinstance(want[2], str):
        assert got[2:] == want[2:]
        return
    assert len(got[2]) == len(want[2]) == 1
    assert len(got[2][0]) == len(want[2][0]) == len(want[1])
    tol = dict(rtol=1e-6, atol=1e-6) if dt == "float64" else dict(rtol=1e-4, atol=1e-4)
    for g, w in zip(got[2][0] + tuple(got[3]), want[2][0] + tuple(want[3])):
        assert (g is None) == (w is None)
        if g is not None:
            np.testing.assert_allclose(g, w, **tol)


def test_edges_as_a_slice_keep_the_general_backward_path():
    """A node whose edges start after a number leaves the engine's lean path, which pairs
    gradient k with edge k; a chain of them differentiates twice as torch's does."""
    assert not ember.ops.elementwise.PowOfScalar._lean
    assert ember.ops.elementwise.Pow._lean
    for lib in (ember, torch):
        y = lib.tensor([0.5, 1.5], dtype=lib.float64, requires_grad=True)
        z = 2 ** (3 ** y)
        (g,) = lib.autograd.grad(z.sum(), y, create_graph=True)
        (gg,) = lib.autograd.grad(g.sum(), y)
        if lib is ember:
            mine = g.detach().numpy(), gg.numpy()
        else:
            np.testing.assert_allclose(mine[0], g.detach().numpy(), rtol=1e-12)
            np.testing.assert_allclose(mine[1], gg.numpy(), rtol=1e-12)
