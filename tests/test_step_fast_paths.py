"""The two fast paths of an SGD step (issues 15 and 17): ``add_``/``sub_`` with ``alpha``
written straight into the tensor (``_axpy_`` in ember/ops/elementwise.py), and linear's
weight gradient made as a fresh array that becomes a leaf's ``.grad`` without the engine's
copy (``mm_into(fresh=True)``); each against torch and against the general path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember
from ember.ops import elementwise as E
from ember.ops import _workspace as ws
from ember.ops import _blas as B

DTYPES = ["float32", "float64"]
ALPHAS = [1, -1, 2, 0.5, -0.01, 3.0, 0]
METHODS = ["add_", "sub_", "subtract_"]


def _pair(shape, dt, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dt), rng.standard_normal(shape).astype(dt)


def _within_one_rounding(e, t, x, y, alpha):
    """Whether ``e`` and torch's ``t`` (``x + alpha * y``) differ by at most the rounding of
    the product ``alpha * y`` that ember does and torch's fused multiply-add does not, plus
    one rounding of the sum."""
    prod = np.abs(np.asarray(alpha, e.dtype) * y)
    return bool(np.all(np.abs(e - t) <= np.spacing(prod) + np.spacing(np.abs(t))))


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(300, 257), (7,), (), (0, 3)])
def test_inplace_alpha_matches_general_path_and_torch(dt, alpha, method, shape):
    x, y = _pair(shape, dt)
    e, t = ember.tensor(x), torch.tensor(x)
    v0 = e._version
    out = getattr(e, method)(ember.tensor(y), alpha=alpha)
    getattr(t, method)(torch.tensor(y), alpha=alpha)
    assert out is e and e._version == v0 + 1
    if alpha in (1, -1, 2, 0.5, 0) or e.numel() >= B.MIN_SIZE and B.axpy(x.dtype.char):
        # an exact product (one rounding, as torch's), or BLAS's fused axpy (NOTE [ axpy ])
        np.testing.assert_array_equal(e.numpy(), t.numpy())
        return
    # bit for bit what the general path (out of place) gives ...
    ref = (ember.add if method == "add_" else ember.sub)(ember.tensor(x), ember.tensor(y),
                                                          alpha=alpha)
    np.testing.assert_array_equal(e.numpy(), ref.numpy())
    # ... and torch's to within one rounding (torch: one fused multiply-add per element)
    assert _within_one_rounding(e.numpy(), t.numpy(), x, y, alpha)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("alpha", [-0.01, 3.0])
@pytest.mark.parametrize("method", ["add_", "sub_"])
@pytest.mark.parametrize("blas", [True, False])
def test_large_updates_with_and_without_blas(dt, alpha, method, blas, monkeypatch):
    if not blas:  # as where NumPy's BLAS is not the bundled OpenBLAS: the two NumPy passes
        monkeypatch.setattr(B, "_found", {"f": None, "d": None})
    x, y = _pair((300, 257), dt, 4)
    e, t = ember.tensor(x), torch.tensor(x)
    getattr(e, method)(ember.tensor(y), alpha=alpha)
    getattr(t, method)(torch.tensor(y), alpha=alpha)
    assert e._version == 1
    if blas and B.axpy(x.dtype.char):
        np.testing.assert_array_equal(e.numpy(), t.numpy())
    else:
        ref = (ember.add if method == "add_" else ember.sub)(ember.tensor(x), ember.tensor(y),
                                                              alpha=alpha)
        np.testing.assert_array_equal(e.numpy(), ref.numpy())
        assert _within_one_rounding(e.numpy(), t.numpy(), x, y, alpha)
    # non-contiguous operands take the NumPy passes whatever the BLAS
    e2, t2 = ember.tensor(x.T.copy()).t(), torch.tensor(x.T.copy()).t()
    getattr(e2, method)(ember.tensor(y), alpha=alpha)
    getattr(t2, method)(torch.tensor(y), alpha=alpha)
    assert _within_one_rounding(e2.numpy(), t2.numpy(), x, y, alpha)


def test_the_bundled_blas_is_found_where_numpy_ships_it():
    # NumPy's manylinux wheels bundle scipy-openblas: the fused path is then always taken
    if "scipy-openblas" in str(np.show_config(mode="dicts")["Build Dependencies"]["blas"]):
        assert B.axpy("f") is not None and B.axpy("d") is not None
    else:
        assert B.axpy("f") is None or callable(B.axpy("f"))


@pytest.mark.parametrize("dt", DTYPES)
def test_operators_iadd_isub_match_torch(dt):
    x, y = _pair((50, 40), dt)
    e, t = ember.tensor(x), torch.tensor(x)
    e0 = e
    e += ember.tensor(y)
    t += torch.tensor(y)
    e -= ember.tensor(x) * 2
    t -= torch.tensor(x) * 2
    assert e is e0 and e._version == 2
    np.testing.assert_array_equal(e.numpy(), t.numpy())


@pytest.mark.parametrize("alpha", [1, -0.5, 2.0])
def test_aliased_operands_match_torch(alpha):
    x, _ = _pair((6, 9), "float32", 1)
    e, t = ember.tensor(x), torch.tensor(x)
    e.add_(e, alpha=alpha)  # p.add_(p, alpha=...)
    t.add_(t, alpha=alpha)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    e, t = ember.tensor(x).reshape(-1), torch.tensor(x).reshape(-1)
    e[::2].add_(e[1::2], alpha=alpha)  # interleaved: one storage, no element shared
    t[::2].add_(t[1::2], alpha=alpha)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    e, t = ember.tensor(x), torch.tensor(x)
    e.add_(e.t().t(), alpha=alpha)  # another view of the same elements in the same layout
    t.add_(t.t().t(), alpha=alpha)
    np.testing.assert_array_equal(e.numpy(), t.numpy())


def test_a_view_is_written_through_and_its_base_sees_it():
    x, y = _pair((8, 5), "float64")
    e, t = ember.tensor(x), torch.tensor(x)
    ev, tv = e.t(), t.t()  # non-contiguous self
    ev.sub_(ember.tensor(y.T.copy()), alpha=0.25)
    tv.sub_(torch.tensor(y.T.copy()), alpha=0.25)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    assert e._version == ev._version == 1


def test_the_scratch_block_is_not_kept_by_the_result(monkeypatch):
    monkeypatch.setattr(B, "_found", {"f": None, "d": None})  # the two NumPy passes
    x, y = _pair((400, 200), "float32")  # the product is workspace-sized
    e = ember.tensor(x)
    d = e._data
    e.add_(ember.tensor(y), alpha=-0.1)
    assert e._data is d and d.base is None
    s = ws.empty(np, (400, 200), np.float32)  # the block is free again: writing it is harmless
    s.fill(7.0)
    ref = ember.add(ember.tensor(x), ember.tensor(y), alpha=-0.1)
    np.testing.assert_array_equal(e.numpy(), ref.numpy())


def test_broadcast_and_mixed_operands_take_the_general_path_with_torchs_results():
    x, y = _pair((4, 3), "float32")
    cases = [lambda m: m.tensor(y[0]), lambda m: m.tensor(y.astype("float64")),
             lambda m: m.tensor(y.astype("float32"))[0:1]]
    for other in cases:
        e, t = ember.tensor(x), torch.tensor(x)
        e.add_(other(ember), alpha=2)  # an exact product: no fused multiply-add to differ
        t.add_(other(torch), alpha=2)
        np.testing.assert_array_equal(e.numpy(), t.numpy())
    e, t = ember.tensor(x.astype("int64")), torch.tensor(x.astype("int64"))
    e.add_(ember.tensor(y.astype("int64")), alpha=3)
    t.add_(torch.tensor(y.astype("int64")), alpha=3)
    np.testing.assert_array_equal(e.numpy(), t.numpy())


def _raises_like_torch(fn):
    with pytest.raises(Exception) as te:
        fn(torch)
    with pytest.raises(type(te.value)) as ee:
        fn(ember)
    assert str(ee.value) == str(te.value)


BAD = {
    "bool alpha on float": lambda m: m.ones(3).add_(m.ones(3), alpha=True),
    "bool alpha on float, sub": lambda m: m.ones(3).sub_(m.ones(3), alpha=True),
    "float alpha on int": lambda m: m.ones(3, dtype=m.int64).add_(
        m.ones(3, dtype=m.int64), alpha=0.5),
    "shapes": lambda m: m.ones(3).add_(m.ones(4), alpha=2.0),
    "broadcast grows self": lambda m: m.ones(3).add_(m.ones(2, 3), alpha=2.0),
    "float into int": lambda m: m.ones(3, dtype=m.int64).add_(m.ones(3), alpha=2),
    "leaf that requires grad": lambda m: m.ones(3, requires_grad=True).add_(m.ones(3),
                                                                          alpha=2.0),
    "expanded self": lambda m: m.ones(1).expand(3).add_(m.ones(3), alpha=2.0),
    "sub of bools": lambda m: m.ones(3, dtype=m.bool).sub_(m.ones(3, dtype=m.bool)),
    "partial overlap, shifted": lambda m: _shifted(m).add_(_shifted(m, 0), alpha=2.0),
    "partial overlap, alpha 1": lambda m: _shifted(m).sub_(_shifted(m, 0)),
    "partial overlap, transposed": lambda m: _square(m).add_(_square(m).t(), alpha=0.5),
    "partial overlap, recorded": lambda m: _self_transposed(_square(m, True)),
}
_BASE = {}


def _storage(m):
    return _BASE.setdefault(m, m.arange(8.0))


def _shifted(m, start=1):
    return _storage(m)[start:start + 6]


def _square(m, grad=False):
    if grad:  # a non-leaf whose in-place update is recorded
        return m.ones(2, 2, requires_grad=True) * 2
    return _storage(m)[:4].view(2, 2)


def _self_transposed(h):
    return h.add_(h.t())


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_torchs_error(case):
    _raises_like_torch(BAD[case])


def test_inference_tensor_outside_inference_mode_raises_as_torch():
    def fn(m):
        with m.inference_mode():
            x = m.ones(3)
        x.add_(m.ones(3), alpha=2.0)
    _raises_like_torch(fn)
    with ember.inference_mode():
        x = ember.ones(3)
        x.add_(ember.ones(3), alpha=2.0)  # inside it, allowed
    np.testing.assert_array_equal(x.numpy(), [3, 3, 3])


def test_a_leaf_updated_under_no_grad_stays_a_leaf():
    p = ember.nn.Parameter(ember.ones(4))
    g = ember.full((4,), 0.5)
    with ember.no_grad():
        p.add_(g, alpha=-0.1)
    assert p.grad_fn is None and p.requires_grad and p.is_leaf and p._version == 1
    np.testing.assert_array_equal(p.detach().numpy(), np.float32(1) - np.float32(0.05))


@pytest.mark.parametrize("dt", DTYPES)
def test_recorded_inplace_alpha_still_differentiates_as_torch(dt):
    x, y = _pair((5, 4), dt)
    grads = []
    for m in (ember, torch):
        a, b = m.tensor(x, requires_grad=True), m.tensor(y, requires_grad=True)
        h = a * 1.5
        h.sub_(b, alpha=0.25)
        h.add_(a, alpha=-2)
        assert h.grad_fn.name() == "AddBackward0"
        (h * h).sum().backward()
        grads.append((a.grad.numpy(), b.grad.numpy()))
    for ge, gt in zip(*grads):
        np.testing.assert_allclose(ge, gt, rtol=1e-5 if dt == "float32" else 1e-12)


def test_a_mode_sees_the_op():
    from ember.fx.experimental.proxy_tensor import make_fx

    def f(x, y):
        x = x * 1
        x.add_(y, alpha=0.5)
        return x
    gm = make_fx(f)(ember.ones(3), ember.ones(3))
    names = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert any("add" in n for n in names), names


@pytest.mark.parametrize("raising", [False, True])
@pytest.mark.parametrize("reps", [1, 3000])  # NumPy's passes; BLAS's axpy (NOTE [ axpy ])
def test_overflow_gives_ieee_values_without_warnings(raising, reps):
    x = np.tile(np.array([3e38, -3e38, 1.0, np.inf], np.float32), reps)
    y = np.tile(np.array([3e38, -3e38, np.nan, -np.inf], np.float32), reps)
    t = torch.tensor(x).add_(torch.tensor(y), alpha=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise" if raising else "warn"):
            e = ember.tensor(x)
            e.add_(ember.tensor(y), alpha=2.0)
            e2 = ember.tensor(x)
            e2 += ember.tensor(y)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    np.testing.assert_array_equal(e2.numpy(), torch.tensor(x).add_(torch.tensor(y)).numpy())


def test_the_fast_path_runs_for_the_sgd_update(monkeypatch):
    # a Tensor subclass with __torch_function__ defined by an earlier test turns interception
    # on for the process (on the class): this test is about the path without it
    monkeypatch.setattr(type(E.state), "intercept", False)
    if "intercept" in vars(E.state):
        monkeypatch.setattr(E.state, "intercept", False)
    p = ember.nn.Parameter(ember.ones(300, 300))
    p.grad = ember.ones(300, 300)
    calls = []
    real = E._axpy_

    def spy(*a):
        r = real(*a)
        calls.append(r)
        return r
    E._axpy_ = spy
    try:
        with ember.no_grad():
            p.add_(p.grad, alpha=-0.1)
    finally:
        E._axpy_ = real
    assert calls == [True]


# ---- linear's weight gradient --------------------------------------------------------------

LINEAR = [((128, 300), 256), ((1, 300), 256), ((4, 6, 50), 40), ((3, 5), 2), ((128, 784), 512)]


def _linear_step(m, x, w, b, create_graph=False):
    xt = m.tensor(x)
    wt, bt = m.tensor(w, requires_grad=True), m.tensor(b, requires_grad=True)
    out = m.nn.functional.linear(xt, wt, bt)
    (out * out).sum().backward(create_graph=create_graph)
    return wt, bt


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("xshape,n", LINEAR)
def test_weight_grad_is_fresh_and_matches_torch(dt, xshape, n):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(xshape) / np.sqrt(xshape[-1])).astype(dt)
    w = rng.standard_normal((n, xshape[-1])).astype(dt)
    b = rng.standard_normal(n).astype(dt)
    we, be = _linear_step(ember, x, w, b)
    wt, bt = _linear_step(torch, x, w, b)
    tol = dict(rtol=1e-4, atol=1e-4) if dt == "float32" else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), **tol)
    np.testing.assert_allclose(be.grad.numpy(), bt.grad.numpy(), **tol)
    g = we.grad._data
    assert g.base is None and g.flags.c_contiguous  # its own memory, no workspace block


def test_a_kept_grad_is_not_overwritten_by_the_next_step():
    rng = np.random.default_rng(1)
    x = ember.tensor(rng.standard_normal((128, 300)).astype("float32"))
    lin = ember.nn.Linear(300, 256)
    lin(x).square().sum().backward()
    kept = lin.weight.grad
    before = kept.numpy().copy()
    lin.zero_grad()
    x2 = ember.tensor(rng.standard_normal((128, 300)).astype("float32"))
    for _ in range(2):  # other products cycle through the workspace
        lin(x2).square().sum().backward()
        lin.zero_grad()
    np.testing.assert_array_equal(kept.numpy(), before)


def test_second_backward_accumulates_and_hooks_see_the_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 300)).astype("float64")
    w = rng.standard_normal((256, 300)).astype("float64")
    res = {}
    for m in (ember, torch):
        wt = m.tensor(w, requires_grad=True)
        seen = []
        wt.register_hook(lambda g: seen.append(g))  # keeps the gradient it is given
        for _ in range(2):
            m.nn.functional.linear(m.tensor(x), wt).square().sum().backward()
        res[m] = (wt.grad.numpy().copy(), [s.numpy().copy() for s in seen])
    (ge, se), (gt, st) = res[ember], res[torch]
    np.testing.assert_allclose(ge, gt, rtol=1e-10)
    np.testing.assert_allclose(ge, 2 * se[0], rtol=1e-12)  # the kept first one not added to
    for a, b in zip(se, st):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_non_leaf_weight_and_double_backward_match_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 30))
    w = rng.standard_normal((20, 30))
    res = []
    for m in (ember, torch):
        p = m.tensor(w, requires_grad=True)
        xt = m.tensor(x, requires_grad=True)
        wn = p * 2  # a non-leaf weight: its gradient flows on
        out = m.nn.functional.linear(xt, wn).square().sum()
        gx, = m.autograd.grad(out, xt, create_graph=True)
        gx.square().sum().backward()
        res.append(p.grad.numpy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-10)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("fn", ["add", "sub", "rsub"])
@pytest.mark.parametrize("blas", [True, False])
def test_out_of_place_alpha_rounds_as_the_inplace_path(dt, fn, blas, monkeypatch):
    if not blas:
        monkeypatch.setattr(B, "_found", {"f": None, "d": None})
    x, y = _pair((300, 257), dt, 5)
    e = getattr(ember, fn)(ember.tensor(x), ember.tensor(y), alpha=-0.01)
    t = getattr(torch, fn)(torch.tensor(x), torch.tensor(y), alpha=-0.01)
    if blas and B.axpy(x.dtype.char):
        np.testing.assert_array_equal(e.numpy(), t.numpy())
    else:  # NumPy's two roundings
        a, b = (y, x) if fn == "rsub" else (x, y)
        alpha = 0.01 if fn != "add" else -0.01
        assert _within_one_rounding(e.numpy(), t.numpy(), a, b, alpha)
    # and the in-place form, on its fast path or not, gives the same bits
    if fn != "rsub":
        i = ember.tensor(x)
        getattr(i, fn + "_")(ember.tensor(y), alpha=-0.01)
        np.testing.assert_array_equal(i.numpy(), e.numpy())
