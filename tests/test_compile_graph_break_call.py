"""``torch._dynamo.graph_break()``: a break where it is called (explain names it, fullgraph
raises Unsupported as PyTorch's), eager's numbers and gradients, nothing when not compiling."""
import numpy as np
import pytest
import torch

import ember
import ember._dynamo


def _fn(lib):
    def fn(x):
        temp = x + 10
        lib._dynamo.graph_break()
        temp = temp * 2
        lib._dynamo.graph_break("second")
        return temp.sin().sum()
    return fn


def test_eager_call_does_nothing():
    x = ember.ones(3)
    assert ember._dynamo.graph_break() is None
    assert float(_fn(ember)(x)) == pytest.approx(3 * np.sin(22.0))


def test_explain_counts_the_breaks_with_their_messages():
    report = ember._dynamo.explain(_fn(ember))(ember.randn(4))
    reasons = [b.reason for b in report.break_reasons]
    assert report.graph_break_count == 2
    assert reasons == ["torch._dynamo.graph_break()", "torch._dynamo.graph_break(): second"]


def test_fullgraph_raises_unsupported():
    # PyTorch 2.13 raises torch._dynamo.exc.Unsupported here too (checked by hand: running
    # torch.compile in the test process leaves dynamo state that upsets other torch oracles)
    with pytest.raises(ember._dynamo.exc.Unsupported, match="graph_break"):
        ember.compile(_fn(ember), fullgraph=True, backend="eager")(ember.ones(3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_values_and_gradients_equal_torch(dtype):
    x0 = np.random.default_rng(0).standard_normal((5, 3))
    outs = []
    for lib in (torch, ember):  # torch eager as the oracle (its compile is slow to start)
        x = lib.tensor(x0, dtype=getattr(lib, dtype), requires_grad=True)
        f = ember.compile(_fn(lib), backend="aot_eager") if lib is ember else _fn(lib)
        for _ in range(2):  # the capture call, then the call after it
            x.grad = None
            y = f(x)
            y.backward()
        outs.append((y.item(), x.grad.numpy().copy()))
    assert outs[1][0] == pytest.approx(outs[0][0], rel=1e-6)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-6)
