"""A captured convolution backward (``make_fx``) replayed on other inputs: the weight
gradient must not reuse the im2col the forward made while tracing (``_Cols`` in
ember/ops/conv.py), for every algorithm that hands its im2col on."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.fx.experimental.proxy_tensor import make_fx
from ember.ops import conv

# (x shape, w shape, kwargs): im2col, 'bl' (LeNet's second layer), 'fold', Winograd F(4x4)
CASES = [
    ((2, 3, 6, 6), (4, 3, 3, 3), dict(padding=1)),
    ((3, 6, 14, 14), (16, 6, 5, 5), {}),
    ((2, 8, 4, 4), (4, 8, 3, 3), dict(padding=1)),
    ((1, 64, 8, 8), (64, 64, 3, 3), dict(padding=1)),
]


def _step(x, w, b, kw):
    y = ember.nn.functional.conv2d(x, w, b, **kw).relu()
    return ember.autograd.grad(y.pow(2).sum(), (x, w, b))


@pytest.mark.parametrize("xs,ws,kw", CASES)
def test_make_fx_conv_backward_replays_on_new_inputs(xs, ws, kw):
    rng = np.random.default_rng(0)

    def leaf(shape):
        return ember.tensor(rng.standard_normal(shape), requires_grad=True)

    x, w, b = leaf(xs), leaf(ws), leaf(ws[:1])
    gm = make_fx(lambda x, w, b: _step(x, w, b, kw))(x, w, b)
    for args in ((leaf(xs), w, b), (leaf(xs), leaf(ws), leaf(ws[:1])), (x, w, b)):
        got = gm(*args)
        want = _step(*args, kw)
        for g, t in zip(got, want):
            np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=1e-10,
                                       atol=1e-10)


def test_weight_gradient_takes_the_im2col_once():
    # retain_graph: the second backward recomputes the im2col and gives the same gradient
    rng = np.random.default_rng(1)
    x = ember.tensor(rng.standard_normal((3, 6, 14, 14)))
    w = ember.tensor(rng.standard_normal((16, 6, 5, 5)), requires_grad=True)
    assert conv._algo(6, 16, conv._Geom((5, 5), (1, 1), (1, 1), (0, 0), (0, 0), (14, 14),
                                         (10, 10), 1), x.numpy().dtype, 3) == "bl"
    y = ember.nn.functional.conv2d(x, w).pow(2).sum()
    g1, = ember.autograd.grad(y, w, retain_graph=True)
    g2, = ember.autograd.grad(y, w)
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())
