"""Max pooling looks for NaN in its maxima, not its input (``_argmax_loop`` in
ember/ops/pooling.py): windows holding a NaN, windows whose maxima sum to NaN without one
(+inf beside -inf), large (argmax) and small (tree) windows: values, indices and gradients
against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

# (kernel, stride, padding): the pairwise tree (K < 16) and argmax (K >= 16) paths
ARGS = [(2, 2, 0), (3, 1, 1), (4, 2, 1), (5, 1, 2)]


def _input(kind, dtype):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (2, 3, 9, 10)).astype(dtype)  # many ties
    if kind == "nan":
        x[0, 0, rng.integers(0, 9, 8), rng.integers(0, 10, 8)] = np.nan
        x[1, 2, 4, 4:7] = np.nan  # several NaN in one window: the last one wins
    elif kind == "infs":  # maxima +inf and -inf: their sum is NaN, no window holds one
        x[0, 1] = -np.inf
        x[1, 0, 2:5, 2:5] = np.inf
    return x


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["plain", "nan", "infs"])
@pytest.mark.parametrize("k,s,p", ARGS)
def test_max_pool_nan_rule_matches_torch(k, s, p, kind, dtype):
    x = _input(kind, dtype)
    res = []
    for mod in (ember, torch):
        t = mod.tensor(x, requires_grad=True)
        y, i = mod.nn.functional.max_pool2d(t, k, s, p, return_indices=True)
        g = mod.tensor(np.arange(y.numel(), dtype=dtype).reshape(tuple(y.shape)))
        y.backward(g)
        res.append((y.detach().numpy(), i.numpy(), t.grad.numpy()))
    (ye, ie, ge), (yt, it, gt) = res
    np.testing.assert_array_equal(ye, yt)
    np.testing.assert_array_equal(ie, it)
    np.testing.assert_array_equal(ge, gt)


def test_adaptive_max_pool_nan_rule_matches_torch():
    x = _input("nan", "float64")
    ye, ie = ember.nn.functional.adaptive_max_pool2d(ember.tensor(x), (4, 3), True)
    yt, it = torch.nn.functional.adaptive_max_pool2d(torch.tensor(x), (4, 3), True)
    np.testing.assert_array_equal(ye.numpy(), yt.numpy())
    np.testing.assert_array_equal(ie.numpy(), it.numpy())
