"""torch's top-level in-place functions (``torch.relu_(x)``, ``torch.sigmoid_``, ``torch.zero_``
...) against torch: values, the tensor returned, autograd through them, and their errors
(``ops.elementwise._TOP_LEVEL_INPLACE``, issue 15)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops.elementwise import _TOP_LEVEL_INPLACE

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (1 / -0.0)
UNIT = ["acos_", "arccos_", "asin_", "arcsin_", "atanh_", "arctanh_", "erf_", "logit_"]
POSITIVE = ["acosh_", "arccosh_", "log_", "log10_", "log1p_", "log2_", "sqrt_", "rsqrt_"]
CASES = {  # name -> (args, kwargs) after the input (the rest take none)
    "clamp_": ((), {"min": -0.5, "max": 0.5}), "clip_": ((-0.2,), {}), "clamp_max_": ((0.1,), {}),
    "clamp_min_": ((0.1,), {}), "fill_": ((3.5,), {}), "nan_to_num_": ((), {"nan": 2.0}),
    "round_": ((), {"decimals": 1}), "logit_": ((0.1,), {}),
}
SKIP_VALUES = {"addmv_", "index_put_", "resize_as_", "detach_"}  # (other signatures: below)


def _input(name, mod):
    rng = np.random.default_rng(len(name))
    a = rng.uniform(-0.9, 0.9, (3, 4))
    if name in POSITIVE:
        a = np.abs(a) + 1.1
    else:
        a = a if name in UNIT else a * 3
        a[0, 0] = -0.0
    if name == "nan_to_num_":
        a[1, 1] = np.nan
    return mod.tensor(a, dtype=mod.float64)


def test_every_top_level_in_place_function_ember_has_a_method_for_exists():
    names = [n for n in dir(torch) if n.endswith("_") and not n.startswith("_")]
    missing = [n for n in names if hasattr(ember.Tensor, n) and not hasattr(ember, n)]
    assert missing == []
    assert all(hasattr(torch, n) for n in _TOP_LEVEL_INPLACE)
    assert {"relu_", "sigmoid_", "tanh_", "exp_", "zero_", "fill_"} <= set(_TOP_LEVEL_INPLACE)


@pytest.mark.parametrize("name", [n for n in _TOP_LEVEL_INPLACE if n not in SKIP_VALUES])
def test_values_and_the_returned_tensor_equal_torchs(name):
    args, kwargs = CASES.get(name, ((), {}))
    x, xt = _input(name, ember), _input(name, torch)
    r, rt = getattr(ember, name)(x, *args, **kwargs), getattr(torch, name)(xt, *args, **kwargs)
    assert r is x and rt is xt
    np.testing.assert_allclose(x.numpy(), xt.numpy(), rtol=1e-12, atol=1e-15)
    assert x._version == xt._version


def test_other_signatures_equal_torchs():
    for mod in (ember, torch):
        y = mod.zeros(3, dtype=mod.float64)
        assert mod.addmv_(y, mod.ones(3, 2, dtype=mod.float64), mod.ones(2, dtype=mod.float64),
                          beta=1, alpha=2) is y
        assert y.tolist() == [4.0, 4.0, 4.0]
        z = mod.zeros(4)
        mod.index_put_(z, (mod.tensor([1, 3]),), mod.tensor([5.0, 6.0]))
        assert z.tolist() == [0.0, 5.0, 0.0, 6.0]
        w = mod.zeros(2)
        assert mod.resize_as_(w, mod.ones(2, 3)).shape == (2, 3)
        h = mod.ones(2, requires_grad=True) * 2
        assert mod.detach_(h) is h and not h.requires_grad and h.grad_fn is None


@pytest.mark.parametrize("name", ["relu_", "sigmoid_", "tanh_", "exp_", "neg_", "sin_"])
def test_gradients_through_them_equal_torchs(name):
    a = np.linspace(-2, 2, 12).reshape(3, 4)
    grads = []
    for mod in (ember, torch):
        x = mod.tensor(a, requires_grad=True)
        h = x * 1.5
        out = getattr(mod, name)(h)
        assert out is h and h.grad_fn.name() == out.grad_fn.name()
        (out * out).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


@pytest.mark.parametrize("mod", [ember, torch])
def test_errors_as_torchs(mod):
    for name in ("relu_", "sigmoid_", "zero_", "nan_to_num_", "logit_", "round_"):
        with pytest.raises(TypeError, match=rf"^{name}\(\): argument 'input' \(position 1\) "
                                            "must be Tensor, not int$"):
            getattr(mod, name)(3)
        with pytest.raises(TypeError, match="must be Tensor, not list"):
            getattr(mod, name)([1.0, 2.0])
    leaf = mod.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in "
                                           "an in-place operation."):
        mod.relu_(leaf)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Long"):
        mod.sigmoid_(mod.ones(3, dtype=mod.int64))
