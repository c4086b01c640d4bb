"""GELU's forward arrays, saved derivative and gradient in workspace blocks (NOTE [ Fused
GELU ], NOTE [ Workspace ]) against torch: both forms, float32 and float64, at a size that
takes blocks; several live results and saved derivatives of one shape never share memory.
float32's tolerance (atol 1e-5) covers the A&S erf's error and, for the tanh form at
|x| ~ 10, derivative rounding of ~4e-6 that the op had before its workspace blocks too."""
import numpy as np
import pytest
import torch

import ember

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_interleaved_calls_match_torch(dt, approximate):
    """Two forwards of one shape, then both backwards in reverse order: each result, and each
    gradient (from its own saved derivative), equals torch's."""
    rng = np.random.default_rng(0)
    a = [rng.standard_normal((64, 512)).astype(dt) * s for s in (1, 3)]
    g = [rng.standard_normal((64, 512)).astype(dt) for _ in range(2)]
    xs = [ember.tensor(v, requires_grad=True) for v in a]
    ys = [ember.nn.functional.gelu(x, approximate=approximate) for x in xs]
    assert not np.shares_memory(ys[0].detach().numpy(), ys[1].detach().numpy())
    for i in (1, 0):
        ys[i].backward(ember.tensor(g[i]))
    for v, gi, x, y in zip(a, g, xs, ys):
        xt = torch.tensor(v, requires_grad=True)
        yt = torch.nn.functional.gelu(xt, approximate=approximate)
        yt.backward(torch.tensor(gi))
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), **TOL[dt])
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **TOL[dt])


def test_gelu_without_grad_and_kept_gradient():
    """A result computed without grad, and a gradient the caller keeps, survive later calls."""
    a = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    with ember.no_grad():
        y1 = ember.nn.functional.gelu(ember.tensor(a))
    kept = y1.numpy().copy()
    x = ember.tensor(a, requires_grad=True)
    g1, = ember.autograd.grad(ember.nn.functional.gelu(x).sum(), x)
    kept_g = g1.numpy().copy()
    g2, = ember.autograd.grad((ember.nn.functional.gelu(x * 2.0)).sum(), x)
    np.testing.assert_array_equal(y1.numpy(), kept)
    np.testing.assert_array_equal(g1.numpy(), kept_g)
    assert not np.shares_memory(g1.numpy(), g2.numpy())
