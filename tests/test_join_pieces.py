"""split / chunk / unbind's backward written into one workspace array (NOTE [ Joining piece
gradients ] in ops/movement.py), and relu's forward and gradient in workspace blocks, against
the op-based join (``movement._JOIN_INTO = False``) and torch: values, gradients where only
some pieces get one, float32 and float64, leaves, create_graph, outputs kept alive across
calls (a workspace block is never handed out while a tensor holds it)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import movement

DTYPES = (np.float32, np.float64)


def _pieces(m, x, how, arg, dim):
    if how == "split":
        return x.split(arg, dim)
    if how == "chunk":
        return x.chunk(arg, dim)
    return x.unbind(dim)


def _grads(m, a, how, arg, dim, used, weights, create_graph=False):
    """x.grad after a weighted sum of the pieces ``used`` (the others get no gradient)."""
    x = m.tensor(a, requires_grad=True)
    pieces = _pieces(m, x, how, arg, dim)
    loss = sum(((p * p) if create_graph else p * w).sum() * w
               for i, (p, w) in enumerate(zip(pieces, weights)) if i in used)
    if create_graph:
        g, = m.autograd.grad(loss, x, create_graph=True)
        (g * g).sum().backward()
        return g.detach().numpy(), x.grad.numpy()
    loss.backward()
    return x.grad.numpy()


CASES = [  # (shape, how, arg, dim)
    ((16, 6, 3, 8), "unbind", None, -2),
    ((5, 7), "unbind", None, 0),
    ((4, 9), "split", 4, 1),
    ((4, 9), "split", [2, 0, 7], -1),
    ((6, 3, 5), "chunk", 3, 0),
    ((6, 12), "chunk", 5, 1),
]


@pytest.mark.parametrize("shape,how,arg,dim", CASES)
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("which", ["all", "some"])
def test_join_matches_torch_and_op_path(shape, how, arg, dim, dt, which):
    a = np.random.default_rng(0).standard_normal(shape).astype(dt)
    n = len(_pieces(torch, torch.tensor(a), how, arg, dim))
    used = set(range(n)) if which == "all" else set(range(0, n, 2))
    weights = [float(i + 1) for i in range(n)]
    ref = _grads(torch, a, how, arg, dim, used, weights)
    old = movement._JOIN_INTO
    try:
        for join in (True, False):
            movement._JOIN_INTO = join
            got = _grads(ember, a, how, arg, dim, used, weights)
            assert got.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)  # a copy of each piece: exact
    finally:
        movement._JOIN_INTO = old


@pytest.mark.parametrize("dt", DTYPES)
def test_join_under_create_graph(dt):
    """create_graph keeps the join an op, so the gradient is differentiable again."""
    a = np.random.default_rng(1).standard_normal((4, 3, 6)).astype(dt)
    ref = _grads(torch, a, "unbind", None, 1, {0, 2}, [1.0, 2.0, 3.0], create_graph=True)
    got = _grads(ember, a, "unbind", None, 1, {0, 2}, [1.0, 2.0, 3.0], create_graph=True)
    for r, e in zip(ref, got):
        np.testing.assert_allclose(e, r, rtol=1e-6)


def test_join_gradient_blocks_are_not_shared():
    """Two gradients joined from same-shaped pieces, both alive, hold different memory, and a
    leaf's .grad is its own array (not a workspace view that a later call could overwrite)."""
    a = np.ones((32, 64, 3, 128), np.float32)  # above the workspace's minimum size
    x = ember.tensor(a, requires_grad=True)
    y = ember.tensor(a, requires_grad=True)
    for t, w in ((x, 1.0), (y, 2.0)):
        q, k, v = t.unbind(-2)
        ((q + k + v) * w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 1.0)
    np.testing.assert_array_equal(y.grad.numpy(), 2.0)
    g1 = x.grad.numpy().copy()
    z = ember.tensor(a, requires_grad=True)
    q, k, v = z.unbind(-2)
    ember.autograd.grad((q * 3.0).sum() + k.sum() + v.sum(), z)
    np.testing.assert_array_equal(x.grad.numpy(), g1)


def test_join_with_a_gradient_of_another_dtype_uses_the_op():
    """A piece whose gradient arrives in another dtype (a hook changed it) goes through cat,
    which promotes, as before."""
    x = ember.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    a, b = x.split([1, 2], 1)
    a.register_hook(lambda g: g.double())
    (a.sum() + b.sum() * 2).backward()
    assert x.grad.dtype == ember.float32
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 2, 2], [1, 2, 2]])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 3),
       st.integers(1, 4), st.sampled_from(["split", "chunk", "unbind"]))
def test_join_any_shape(dims, dim, arg, how):
    dim = dim % len(dims)
    a = np.random.default_rng(len(dims)).standard_normal(dims)
    n = len(_pieces(torch, torch.tensor(a), how, arg, dim))
    weights = [float(i + 1) for i in range(n)]
    used = set(range(0, n, 2))
    np.testing.assert_array_equal(_grads(ember, a, how, arg, dim, used, weights),
                                  _grads(torch, a, how, arg, dim, used, weights))


# ---- relu in workspace blocks --------------------------------------------------------------
@pytest.mark.parametrize("dt", DTYPES)
def test_relu_large_matches_torch_and_outputs_stay_distinct(dt):
    """Two live relu results of one (workspace-sized) shape are different arrays; forward
    and gradient equal torch's, including a NaN input (its gradient passes) and an inf
    incoming gradient where the mask is 0 (PyTorch gives 0, not inf * 0)."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((64, 512)).astype(dt)
    a[0, :3] = [np.nan, 0.0, -0.0]
    g = rng.standard_normal((64, 512)).astype(dt)
    g[1, np.argmax(a[1] < 0)] = np.inf
    xs = [ember.tensor(a * s, requires_grad=True) for s in (1, -1)]
    ys = [ember.relu(x) for x in xs]
    assert not np.shares_memory(ys[0].detach().numpy(), ys[1].detach().numpy())
    for x, y, s in zip(xs, ys, (1, -1)):
        xt = torch.tensor(a * s, requires_grad=True)
        yt = torch.relu(xt)
        np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
        y.backward(ember.tensor(g))
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


def test_relu_grad_kept_while_another_is_computed():
    """A gradient from relu's backward that the caller keeps is not overwritten by the next."""
    a = np.random.default_rng(3).standard_normal((64, 512)).astype(np.float32)
    x = ember.tensor(a, requires_grad=True)
    g1, = ember.autograd.grad(ember.relu(x).sum(), x)
    kept = g1.numpy().copy()
    g2, = ember.autograd.grad((ember.relu(x) * 3.0).sum(), x)
    np.testing.assert_array_equal(g1.numpy(), kept)
    np.testing.assert_array_equal(g2.numpy(), kept * 3)


def test_relu_grad_of_overflowing_sum_is_exact():
    """Finite products whose sum overflows take the exact check and stay as they are."""
    a = np.ones((64, 512), np.float32)
    x = ember.tensor(a, requires_grad=True)
    big = np.full((64, 512), 3e38, np.float32)
    ember.relu(x).backward(ember.tensor(big))
    np.testing.assert_array_equal(x.grad.numpy(), big)
