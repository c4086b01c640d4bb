"""Convolution's bias gradient (``_BiasGrad`` in ember/ops/conv.py: a matrix-vector product
where ``gy`` is a contiguous float32/float64 array, ``gy.sum`` otherwise) against torch: first
and second order, conv and conv_transpose, 1-d to 3-d, and the fallback dtypes and layouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import conv

# relative to the largest |value| of each result: second-order values reach ~1e6, and torch's
# own float32 error there is 4e-6 of it (ember's 6e-8; both against float64)
TOL = {"float64": 1e-12, "float32": 2e-5}

# (op name, input shape, weight shape, kwargs)
CASES = [
    ("conv1d", (3, 2, 9), (4, 2, 3), {}),
    ("conv2d", (4, 1, 12, 12), (6, 1, 5, 5), dict(padding=2)),   # LeNet's first layer, small
    ("conv2d", (3, 6, 9, 9), (8, 3, 3, 3), dict(groups=2, stride=2)),
    ("conv3d", (2, 2, 5, 4, 6), (3, 2, 3, 3, 3), dict(padding=1)),
    ("conv_transpose2d", (2, 4, 5, 5), (4, 3, 3, 3), dict(stride=2)),
    ("conv2d", (0, 2, 5, 5), (3, 2, 3, 3), {}),                  # empty batch
]


def _run(mod, name, arrays, kw, second):
    x, w, b = (mod.tensor(a, requires_grad=True) for a in arrays)
    y = getattr(mod.nn.functional, name)(x, w, b, **kw)
    gb, = mod.autograd.grad((y * y).sum(), b, create_graph=second)
    if not second:
        return [gb.numpy()]
    (gb * gb).sum().backward()
    return [gb.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("second", [False, True])
@pytest.mark.parametrize("name,xs,ws,kw", CASES)
def test_bias_grad_matches_torch(name, xs, ws, kw, dtype, second):
    rng = np.random.default_rng(0)
    o = ws[1] * kw.get("groups", 1) if name.startswith("conv_transpose") else ws[0]
    arrays = [rng.standard_normal(s).astype(dtype) for s in (xs, ws, (o,))]
    got = _run(ember, name, arrays, kw, second)
    want = _run(torch, name, arrays, kw, second)
    for g, t in zip(got, want):
        assert g.dtype == t.dtype
        scale = max(1.0, float(np.abs(t).max())) if t.size else 1.0
        np.testing.assert_allclose(g, t, rtol=0, atol=TOL[dtype] * scale)


def test_bias_grad_node_name_as_torch():
    # PyTorch names the bias gradient's node as the other two of a convolution's backward
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in ((2, 3, 6, 6), (4, 3, 3, 3), (4,))]
    names = []
    for mod in (ember, torch):
        x, w, b = (mod.tensor(a, requires_grad=True) for a in arrays)
        gb, = mod.autograd.grad(mod.nn.functional.conv2d(x, w, b).pow(2).sum(), b,
                                create_graph=True)
        names.append(gb.grad_fn.name())
    assert names[0] == names[1] == "ConvolutionBackwardBackward0"


def test_bias_grad_product_equals_sum():
    # the product path and the plain sum agree to float32 rounding on LeNet's shapes
    rng = np.random.default_rng(2)
    for shape in ((64, 6, 28, 28), (64, 16, 10, 10)):
        gy = ember.tensor(rng.standard_normal(shape).astype(np.float32))
        fast = conv._bias_grad(gy, 2).numpy()
        slow = gy.sum((0, 2, 3)).numpy()
        exact = gy.numpy().astype(np.float64).sum((0, 2, 3))
        assert np.abs(fast - exact).max() <= 2e-3 * max(1.0, np.abs(exact).max() * 1e-3)
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=2e-3)


def test_bias_grad_fallbacks():
    # non-contiguous, half-precision and integer-free cases go through gy.sum (its node name)
    rng = np.random.default_rng(3)
    base = ember.tensor(rng.standard_normal((3, 5, 4, 4)).astype(np.float32))
    gt = base.transpose(0, 1)  # (5, 3, 4, 4), not contiguous
    assert conv._bias_grad(gt, 2).grad_fn is None
    np.testing.assert_allclose(conv._bias_grad(gt, 2).numpy(),
                               gt.numpy().sum((0, 2, 3)), rtol=1e-5)
    half = base.to(ember.float16)
    got = conv._bias_grad(half, 2)
    assert got.dtype == ember.float16
    np.testing.assert_allclose(got.numpy().astype(np.float32),
                               torch.tensor(half.numpy()).sum((0, 2, 3)).numpy().astype(
                                   np.float32), rtol=1e-2, atol=1e-2)
    leaf = base.clone().requires_grad_()
    assert conv._bias_grad(leaf, 2).grad_fn.name() == "ConvolutionBackwardBackward0"
    assert conv._bias_grad(leaf.transpose(0, 1), 2).grad_fn.name() == "SumBackward1"
