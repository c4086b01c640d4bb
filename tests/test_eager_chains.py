"""Issue 15's per-op and per-node paths of eager chains, against torch.

The engine's per-node slots (``[dependencies left, gradient buffer, node]`` instead of two
dicts): chains, fan-out and fan-in, a multi-output node, several roots, a node reached twice from
one op, ``retain_graph`` and a second backward, ``inputs=`` and ``autograd.grad``.
``Function.apply`` calling ``forward`` without a star-call for one and three arguments (others,
keyword arguments: as before), and the class-default array module.  A full ``mean``'s gradient
as one quotient filled in (bit for bit torch's ``grad / numel``, dense, writable, its own).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

DTYPES = ["float32", "float64"]


def _pair(a, requires_grad=True):
    return (ember.tensor(a.copy(), requires_grad=requires_grad),
            torch.tensor(a.copy(), requires_grad=requires_grad))


def _chains(m, x, w, b):
    """One expression per graph shape the engine's slots see."""
    h = (x * w).tanh()
    fan = h * h + h.relu() - h.sigmoid()             # one node read by four ops
    parts = m.split(fan, [1, 2], dim=0)               # a multi-output node
    first = parts[0].exp().sum() + parts[1].mean()
    v, i = fan.max(dim=1)                             # a multi-output node, one output used
    return first + (v * b[: v.shape[0]]).sum() + (x + x).mean()  # a node reached twice


@pytest.mark.parametrize("dtype", DTYPES)
def test_graph_shapes_match_torch(dtype):
    rng = np.random.default_rng(0)
    a, w, b = (rng.standard_normal(s).astype(dtype) for s in ((3, 5), (3, 5), (5,)))
    (x, xt), (we, wt), (be, bt) = _pair(a), _pair(w), _pair(b)
    y, yt = _chains(ember, x, we, be), _chains(torch, xt, wt, bt)
    y.backward(retain_graph=True)
    yt.backward(retain_graph=True)
    y.backward()  # a second pass through the retained graph accumulates
    yt.backward()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for e, t in ((x, xt), (we, wt), (be, bt)):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), **tol)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_several_roots_inputs_and_grad_match_torch():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 3))
    (x, xt) = _pair(a)
    outs = [(x * 2).sin().sum(), (x.exp() * x).mean()]
    outs_t = [(xt * 2).sin().sum(), (xt.exp() * xt).mean()]
    g = ember.autograd.grad(outs, [x], create_graph=False)
    gt = torch.autograd.grad(outs_t, [xt])
    np.testing.assert_allclose(g[0].numpy(), gt[0].numpy(), rtol=1e-12)
    h, ht = x.tanh(), xt.tanh()
    h.retain_grad()
    ht.retain_grad()
    (h * h).sum().backward(inputs=[h])  # (retain_grad and inputs=: stored once)
    (ht * ht).sum().backward(inputs=[ht])
    assert x.grad is None and xt.grad is None
    np.testing.assert_allclose(h.grad.numpy(), ht.grad.numpy(), rtol=1e-12)
    ember.autograd.backward([(x * 2).sin().sum(), (x * 3).sum()],
                            [ember.tensor(2.0, dtype=ember.float64), ember.tensor(0.5)])
    torch.autograd.backward([(xt * 2).sin().sum(), (xt * 3).sum()],
                            [torch.tensor(2.0, dtype=torch.float64), torch.tensor(0.5)])
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_apply_with_one_three_and_other_argument_counts():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    (x, xt) = _pair(a)
    cases = [  # (ember, torch): forward's argument count differs per op
        (lambda m, t: t.neg(), 1), (lambda m, t: t * t, 3), (lambda m, t: m.add(t, t, alpha=2), 4),
        (lambda m, t: t.sum(1, keepdim=True), 4), (lambda m, t: t.clamp(min=-0.5, max=0.5), 0),
        (lambda m, t: t.transpose(0, 1), 0), (lambda m, t: m.where(t > 0, t, -t), 0),
    ]
    for fn, _ in cases:
        e, t = fn(ember, x), fn(torch, xt)
        np.testing.assert_array_equal(e.detach().numpy(), t.detach().numpy())
        e.sum().backward()
        t.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
        x.grad = None
        xt.grad = None


def test_ctx_array_module_is_the_arrays():
    seen = []

    class Probe(ember.autograd.Function):
        raw = True

        @staticmethod
        def forward(ctx, a):
            seen.append(ctx.xp)
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = ember.ones(3, requires_grad=True)
    Probe.apply(x).sum().backward()
    assert seen == [np] and x.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(32, 64), (7,), (3, 4, 5), (1,), ()])
def test_full_mean_gradient_bits_equal_torch(dtype, shape):
    a = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    for gv in (1.0, 3.7, np.inf, np.nan, -0.0, 1e-40, 1e300):
        (x, xt) = _pair(a)
        x.mean().backward(ember.tensor(gv, dtype=getattr(ember, dtype)))
        xt.mean().backward(torch.tensor(gv, dtype=getattr(torch, dtype)))
        e, t = x.grad.numpy(), xt.grad.numpy()
        assert e.shape == t.shape and e.dtype == t.dtype
        assert e.tobytes() == t.tobytes() or np.isnan(e).all() and np.isnan(t).all()
        assert e.flags.writeable and e.flags.c_contiguous and e.base is None
    (x, _) = _pair(a)
    x.mean().backward()
    first = x.grad
    x.grad = None
    x.mean().backward()
    assert x.grad._data is not first._data  # each backward makes its own


def test_partial_mean_and_create_graph_keep_their_paths():
    a = np.random.default_rng(4).standard_normal((4, 6))
    (x, xt) = _pair(a)
    (x.mean(1) ** 2).sum().backward()
    (xt.mean(1) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    (x, xt) = _pair(a)
    g, = ember.autograd.grad(x.mean() * x.sum(), [x], create_graph=True)
    gt, = torch.autograd.grad(xt.mean() * xt.sum(), [xt], create_graph=True)
    g.sum().backward()
    gt.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
