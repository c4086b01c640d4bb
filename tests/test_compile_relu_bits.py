"""The compiled backward's relu gradient on integer views (``codegen.relu_grad_into`` with
``codegen._BITS``): bit for bit eager's ``_ReluGrad.formula`` (NOTE [ Blocked pointwise
passes ] in ops/_pointwise.py) and torch's ``threshold_backward`` values, with infinite and
NaN gradients, NaN results, written into a fresh array, a given one, or over the gradient."""
import numpy as np
import pytest
import torch

import ember
from ember._functorch import codegen
from ember.ops.elementwise import _ReluGrad


def _case(dtype, shape=(64, 48), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = -0.0
    x.flat[3] = np.nan
    y = np.maximum(x, np.zeros(shape, dtype))  # relu's forward as the compiled code runs it
    g = rng.standard_normal(shape).astype(dtype)
    g.flat[::11] = np.inf
    g.flat[5::13] = -np.inf
    g.flat[2::17] = np.nan
    return g, y


def _bits(a):
    return a.view(f"uint{8 * a.itemsize}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["fresh", "given", "over_g"])
def test_bits_equal_eager_and_torch(dtype, where):
    g, y = _case(dtype)
    want = _ReluGrad.formula(np, g.copy(), y)
    gg = g.copy()
    out = {"fresh": None, "given": np.empty_like(g), "over_g": gg}[where]
    got = codegen.relu_grad_into(np, gg, y, out)
    if out is not None:
        assert got is out
    np.testing.assert_array_equal(_bits(got), _bits(want))
    ref = torch.ops.aten.threshold_backward(torch.from_numpy(g), torch.from_numpy(y), 0)
    np.testing.assert_array_equal(_bits(got), _bits(ref.numpy()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_mask_path_same_values(dtype):
    """``_BITS`` off: the float mask and its exact fallback give the same values (a masked
    negative gradient may be -0.0 there)."""
    g, y = _case(dtype, seed=1)
    new = codegen.relu_grad_into(np, g, y, None)
    old_flag = codegen._BITS
    codegen._BITS = False
    try:
        old = codegen.relu_grad_into(np, g, y, None)
    finally:
        codegen._BITS = old_flag
    np.testing.assert_array_equal(new, old)


def test_compiled_mlp_step_equals_eager_bits():
    """A compiled forward + backward through two relus gives eager's gradients bit for bit."""
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((256, 64)).astype(np.float32)

    def grads(compiled):
        ember.manual_seed(0)
        model = ember.nn.Sequential(ember.nn.Linear(64, 128), ember.nn.ReLU(),
                                    ember.nn.Linear(128, 128), ember.nn.ReLU(),
                                    ember.nn.Linear(128, 1))
        f = ember.compile(model) if compiled else model
        for _ in range(2):  # the second call runs the generated code
            model.zero_grad()
            f(ember.tensor(x0)).sum().backward()
        return [p.grad.numpy().copy() for p in model.parameters()]
    for a, b in zip(grads(True), grads(False)):
        np.testing.assert_array_equal(a, b)
