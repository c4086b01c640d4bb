"""adaptive_avg_pool to a single output per channel (a CNN's head) takes a matrix-vector
product over each window (ember/ops/pooling.py): the same numbers as the per-dim means it
replaced and as torch, forward and backward, float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, to_ember


@pytest.mark.parametrize("fn,shape", [
    ("adaptive_avg_pool2d", (4, 5, 2, 2)),
    ("adaptive_avg_pool2d", (3, 7, 5)),        # unbatched
    ("adaptive_avg_pool2d", (2, 3, 1, 6)),
    ("adaptive_avg_pool1d", (2, 3, 7)),
    ("adaptive_avg_pool3d", (2, 3, 2, 3, 2)),
])
def test_global_average_matches_torch(fn, shape):
    nd = int(fn[-2])
    check(lambda m, x: getattr(m.nn.functional, fn)(x, 1 if nd == 1 else (1,) * nd), None,
          rand(*shape))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_average_matches_per_dim_means(dtype):
    # the per-dim path (float16 still takes it) on the same values, and a strided input
    x = np.random.default_rng(0).standard_normal((6, 8, 4, 3)).astype(dtype)
    got = ember.nn.functional.adaptive_avg_pool2d(to_ember(x), 1).numpy()
    ref = x.reshape(6, 8, 4, 1, 3).mean(2).mean(-1)[..., None]
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, ref, **tol)
    xs = to_ember(x).transpose(2, 3)
    np.testing.assert_allclose(ember.nn.functional.adaptive_avg_pool2d(xs, 1).numpy(),
                               xs.numpy().mean((2, 3), keepdims=True), **tol)
    h = ember.nn.functional.adaptive_avg_pool2d(to_ember(x).to(ember.float16), 1)
    assert h.dtype == ember.float16
    t = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).half(), 1)
    np.testing.assert_allclose(h.float().numpy(), t.float().numpy(), rtol=1e-3, atol=1e-3)


def test_global_average_one_element_window_is_a_copy():
    x = to_ember(rand(2, 3, 1, 1), True)
    y = ember.nn.functional.adaptive_avg_pool2d(x, 1)
    assert np.array_equal(y.detach().numpy(), x.detach().numpy())
    assert not np.shares_memory(y.detach().numpy(), x.detach().numpy())
