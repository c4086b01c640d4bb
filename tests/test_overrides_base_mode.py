"""``torch.overrides.BaseTorchFunctionMode``: a mode whose ``__torch_function__`` calls
``func``; subclasses see each op and defer with ``super()``, eagerly and under compile."""
import numpy as np
import pytest
import torch

import ember


def _counting(lib):
    class Counting(lib.overrides.BaseTorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return super().__torch_function__(func, types, args, kwargs)
    return Counting


@pytest.mark.parametrize("compiled", [False, True])
def test_subclass_defers_to_func_and_sees_ops(compiled):
    x = np.arange(6.0).reshape(2, 3)
    results = []
    for lib in (torch, ember):
        def fn(a, b):
            return a + b * a
        if lib is ember and compiled:
            fn = ember.compile(fn)
        mode = _counting(lib)()
        with mode:
            out = fn(lib.tensor(x), lib.tensor(x + 1))
        assert mode.calls >= 2  # the product and the sum
        results.append(out.numpy())
    np.testing.assert_array_equal(results[1], results[0])


def test_base_mode_alone_changes_nothing():
    x = ember.randn(3, requires_grad=True)
    with ember.overrides.BaseTorchFunctionMode():
        y = (x * 2).sin().sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(2 * x.detach().numpy()), rtol=1e-6)
    assert isinstance(ember.overrides.BaseTorchFunctionMode(),
                      ember.overrides.TorchFunctionMode)
