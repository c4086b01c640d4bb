"""Layer norm's uncentred backward (NOTE [ Uncentred layer-norm backward ] in
ops/normalization.py) against the centred one (``normalization._UNCENTRED = False``) and
torch: float32 and float64, with and without weight/bias, every subset of needed gradients,
rows whose mean exceeds their spread (the centred path then), a strided incoming gradient,
double backward, and Hypothesis shapes."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import normalization as norm

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _run(m, x, w, b, g, needs, ns, transpose_g=False):
    """(y, dx, dw, db) of ``layer_norm``; gradients only where needed (None elsewhere)."""
    def leaf(a, need):
        return None if a is None else m.tensor(a, requires_grad=need)
    xt, wt, bt = leaf(x, needs[0]), leaf(w, needs[1]), leaf(b, needs[2])
    y = m.nn.functional.layer_norm(xt, ns, wt, bt, eps=1e-5)
    gt = m.tensor(g)
    if transpose_g:  # a non-contiguous incoming gradient of the same values
        gt = m.tensor(np.ascontiguousarray(np.swapaxes(g, 0, 1))).transpose(0, 1)
    if any(n and t is not None for n, t in zip(needs, (xt, wt, bt))):
        y.backward(gt)
    return [y.detach().numpy()] + [None if t is None or t.grad is None else t.grad.numpy()
                                   for t in (xt, wt, bt)]


def _both(fn):
    """``fn()`` with the uncentred backward on, then off."""
    out = []
    for flag in (True, False):
        old = norm._UNCENTRED
        norm._UNCENTRED = flag
        try:
            out.append(fn())
        finally:
            norm._UNCENTRED = old
    return out


def _inputs(shape, k, dtype, seed, shift=0.0, weight=True, bias=True):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + shift).astype(dtype)
    w = (1 + 0.5 * rng.standard_normal(k)).astype(dtype) if weight else None
    b = rng.standard_normal(k).astype(dtype) if bias else None
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, b, g


def _check(x, w, b, g, needs, ns, **kw):
    dt = x.dtype.type
    ref = _run(torch, x, w, b, g, needs, ns, **kw)
    new, old = _both(lambda: _run(ember, x, w, b, g, needs, ns, **kw))
    # torch's own float32 rounding error, against float64: a row of nearly equal values
    # (rows=4, k=2, seed=47) magnifies it by 1/sqrt(var + eps) to ~1e-4, where ember's is 4e-6
    up = (lambda a: None if a is None else a.astype(np.float64))
    r64 = _run(torch, *map(up, (x, w, b, g)), needs, ns, **kw) if dt is np.float32 else ref
    for r, n, o, q in zip(ref, new, old, r64):
        assert (r is None) == (n is None) == (o is None)
        if r is not None:
            assert n.dtype == r.dtype
            scale = max(1.0, float(np.abs(r).max()))
            slack = 2 * float(np.abs(r - q).max())
            np.testing.assert_allclose(n, r, rtol=TOL[dt]["rtol"],
                                       atol=TOL[dt]["atol"] * scale + slack)
            np.testing.assert_allclose(n, o, rtol=TOL[dt]["rtol"], atol=TOL[dt]["atol"] * scale)
    return new


NEEDS = [(True, True, True), (True, False, False), (True, True, False), (True, False, True),
         (False, True, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("needs", NEEDS, ids=str)
def test_gpt_shape(dtype, needs):
    """GPT-mini's (16, 64, 128) layer norm."""
    x, w, b, g = _inputs((16, 64, 128), 128, dtype, 0)
    _check(x, w, b, g, needs, (128,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight,bias", [(True, False), (False, True), (False, False)])
def test_without_parameters(dtype, weight, bias):
    x, w, b, g = _inputs((5, 7, 12), 12, dtype, 1, weight=weight, bias=bias)
    _check(x, w, b, g, (True, weight, bias), (12,))


def test_path_taken_only_where_means_are_within_spread():
    """The forward records which backward its rows allow: rows centred near 0 take the
    uncentred one, rows whose mean exceeds their spread (x + 30) the centred one, with
    torch's numbers either way."""
    for shift, want in ((0.0, True), (30.0, False)):
        x, w, b, g = _inputs((8, 64), 64, np.float32, 2, shift=shift)
        y = ember.nn.functional.layer_norm(ember.tensor(x, requires_grad=True), (64,),
                                           ember.tensor(w), ember.tensor(b))
        assert y.grad_fn.uncentred is want
        _check(x, w, b, g, (True, True, True), (64,))


def test_strided_incoming_gradient():
    x, w, b, g = _inputs((6, 5, 32), 32, np.float32, 3)
    _check(x, w, b, g, (True, True, True), (32,), transpose_g=True)


def test_multi_dim_normalized_shape():
    x, w, b, g = _inputs((3, 4, 5, 6), (5, 6), np.float64, 4)
    _check(x, w, b, g, (True, True, True), (5, 6))


def test_double_backward_unchanged():
    """create_graph uses the graph formula: second derivatives equal torch's."""
    x0, w0, b0, g0 = _inputs((4, 10), 10, np.float64, 5)
    res = {}
    for m in (ember, torch):
        x = m.tensor(x0, requires_grad=True)
        w = m.tensor(w0, requires_grad=True)
        y = m.nn.functional.layer_norm(x, (10,), w, m.tensor(b0))
        gx, = m.autograd.grad((y * m.tensor(g0)).sum(), x, create_graph=True)
        (gx * gx).sum().backward()
        res[m] = (gx.detach().numpy(), x.grad.numpy(), w.grad.numpy())
    for a, c in zip(res[ember], res[torch]):
        np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), k=st.integers(2, 70), seed=st.integers(0, 2 ** 16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_shapes(rows, k, seed, dtype):
    """Random shapes (k >= 2: a k = 1 row has zero variance, and 1/sqrt(eps) magnifies
    torch's rounding of its zero gradient past any fixed tolerance)."""
    x, w, b, g = _inputs((rows, k), k, dtype, seed)
    _check(x, w, b, g, (True, True, True), (k,))
