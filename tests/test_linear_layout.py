"""GEMM layouts (NOTE [ GEMM layouts ] in ember/ops/linalg.py): ``x @ w.T`` computed as the
transposed product written into a C-ordered result, and inner-size-1 products as outer
products; each against torch (values, strides, views, gradients) and against the NT form."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import linalg as LA
from opcheck import check, rand, TOL

# (M, K, N): the transposed form (T) or the NT form (NT), per the rule
SHAPES = [
    ((16, 784, 512), True), ((3, 784, 512), True), ((32, 128, 384), True),
    ((64, 400, 120), True), ((64, 128, 128), False), ((128, 512, 256), False),
    ((16, 128, 10), False), ((32, 128, 65), True), ((48, 128, 65), False), ((2, 784, 512), False),
    ((1, 784, 512), False), ((16, 128, 65), False), ((24, 128, 65), True),
    ((3, 128, 384), False), ((4, 128, 384), True), ((96, 784, 512), False),
]


@pytest.mark.parametrize("mkn,transposed", SHAPES)
def test_rule_table(mkn, transposed):
    assert LA._by_transpose(*mkn) is transposed


def _xwb(m, k, n, seed=0):
    # inputs scaled by 1/sqrt(K) so that float32 sums stay O(1) (tolerances are absolute too)
    return rand(m, k, seed=seed) / np.sqrt(k), rand(n, k, seed=seed + 1), rand(n, seed=seed + 2)


@pytest.mark.parametrize("mkn", [s for s, _ in SHAPES])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_and_grads_match_torch(mkn, bias):
    x, w, b = _xwb(*mkn)
    args = (x, w, b) if bias else (x, w)
    check(lambda m, *a: m.nn.functional.linear(*a), None, *args)


@pytest.mark.parametrize("mkn", [(16, 784, 512), (64, 400, 120), (1, 784, 512)])
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_equals_the_nt_form(mkn, dt):
    """The chosen form against the NT product on the same inputs, to the op tests' tolerance."""
    x, w, b = (a.astype(dt) for a in _xwb(*mkn))
    got = ember.nn.functional.linear(ember.from_numpy(x), ember.from_numpy(w),
                                     ember.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, np.matmul(x, w.T) + b, **TOL[dt])


@pytest.mark.parametrize("mkn", [(16, 784, 512), (3, 784, 512), (64, 400, 120), (8, 128, 128)])
def test_result_layout_matches_torch(mkn):
    x, w, b = (a.astype(np.float32) for a in _xwb(*mkn))
    for bias in (True, False):
        ea = [ember.from_numpy(a) for a in ((x, w, b) if bias else (x, w))]
        ta = [torch.from_numpy(a) for a in ((x, w, b) if bias else (x, w))]
        ye, yt = ember.nn.functional.linear(*ea), torch.nn.functional.linear(*ta)
        assert ye.stride() == yt.stride() and ye.is_contiguous() == yt.is_contiguous()
        # a view that needs C order
        np.testing.assert_allclose(ye.view(-1).numpy(), yt.view(-1).numpy(), **TOL["float32"])
        me, mt = ember.from_numpy(x) @ ember.from_numpy(w).t(), torch.from_numpy(x) @ \
            torch.from_numpy(w).t()
        assert me.stride() == mt.stride()
        np.testing.assert_allclose(me.numpy(), mt.numpy(), **TOL["float32"])


def test_results_do_not_share_the_scratch():
    """Two products in a row: the first result is not overwritten by the second's work."""
    x, w, b = (ember.from_numpy(a.astype(np.float32)) for a in _xwb(16, 784, 512))
    y1 = ember.nn.functional.linear(x, w, b)
    keep = y1.numpy().copy()
    y2 = ember.nn.functional.linear(x * 2, w, b)
    np.testing.assert_array_equal(y1.numpy(), keep)
    assert not np.shares_memory(y1.numpy(), y2.numpy())


def test_three_d_input():
    x = rand(4, 8, 784, seed=3) / 28
    check(lambda m, x, w, b: m.nn.functional.linear(x, w, b), None, x, rand(512, 784, seed=4),
          rand(512, seed=5))


@pytest.mark.parametrize("op", ["matmul", "mm", "addmm", "addmm_scaled"])
def test_transposed_right_operand_matches_torch(op):
    x, w, b = _xwb(16, 784, 512)
    fns = {"matmul": lambda m, x, w, b: m.matmul(x, w.t()),
           "mm": lambda m, x, w, b: m.mm(x, w.t()),
           "addmm": lambda m, x, w, b: m.addmm(b, x, w.t()),
           "addmm_scaled": lambda m, x, w, b: m.addmm(b, x, w.t(), beta=0.5, alpha=2.0)}
    check(fns[op], None, x, w, b)


def test_addmm_with_a_matrix_input():
    x, w, _ = _xwb(16, 784, 512)
    check(lambda m, c, x, w: m.addmm(c, x, w.t()), None, rand(16, 512, seed=9), x, w)
    check(lambda m, c, x, w: m.addmm(c, x, w.t()), None, rand(16, 1, seed=9), x, w)


@pytest.mark.parametrize("sa,sb", [((512, 1), (1, 784)), ((10, 1), (1, 256)), ((3, 4, 1), (1, 5)),
                                   ((2, 1, 6, 1), (3, 1, 7)), ((1,), (1, 5))])
def test_inner_size_one_matches_torch(sa, sb):
    check(lambda m, a, b: m.matmul(a, b), None, rand(*sa, seed=1), rand(*sb, seed=2))


def test_inner_size_one_is_the_exact_outer_product():
    g, x = rand(1, 512, seed=1).astype(np.float32), rand(1, 784, seed=2).astype(np.float32)
    got = (ember.from_numpy(g).t() @ ember.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, np.multiply.outer(g[0], x[0]))
    np.testing.assert_array_equal(got, (torch.from_numpy(g).t() @ torch.from_numpy(x)).numpy())


def test_batch_one_weight_gradient():
    """A batch-1 linear's weight gradient is the outer product ``g.T @ x`` (inner size 1)."""
    check(lambda m, x, w, b: m.nn.functional.linear(x, w, b), None, rand(1, 784, seed=1),
          rand(512, 784, seed=2), rand(512, seed=3))


def test_int_and_complex_inner_size_one():
    a, b = np.arange(6).reshape(6, 1), np.arange(4).reshape(1, 4) - 2
    check(lambda m, a, b: m.matmul(a, b), None, a, b)
    ca, cb = rand(5, 1, seed=1) + 1j * rand(5, 1, seed=2), rand(1, 3, seed=3) + 0j
    e = ember.matmul(ember.from_numpy(ca), ember.from_numpy(cb)).numpy()
    np.testing.assert_allclose(e, (torch.from_numpy(ca) @ torch.from_numpy(cb)).numpy())


def test_empty_inner_size_gives_zeros_and_bias():
    x, w, b = np.zeros((16, 0), np.float32), np.zeros((512, 0), np.float32), rand(512, seed=1)
    check(lambda m, x, w, b: m.nn.functional.linear(x, w, b), None, x, w, b)


def test_mm_into_writes_a_given_output():
    x, w, b = (a.astype(np.float32) for a in _xwb(16, 784, 512))
    out = np.full((16, 512), np.nan, np.float32)
    r = LA.mm_into(np, x, w.T, b, out)
    assert r is out
    np.testing.assert_allclose(out, x @ w.T + b, **TOL["float32"])
    out1 = np.empty((512, 784), np.float32)
    LA.mm_into(np, x[:1].T.copy().reshape(784, 1)[:512], x[:1, :784], None, out1)
    np.testing.assert_array_equal(out1, np.multiply.outer(x[0, :512], x[0]))


def test_compiled_equals_eager_bit_for_bit(monkeypatch):
    """The generated code calls the same products (``codegen.fresh_mm``), so the same bits
    (with F-ordered training chains off: those are checked within rounding in
    test_compile_transposed.py, NOTE [ Transposed activations ])."""
    from ember._functorch import aot_autograd
    monkeypatch.setattr(aot_autograd, "_T_ROWS", 0)
    rng = np.random.default_rng(0)
    nn = ember.nn
    for batch in (16, 1):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 120),
                              nn.ReLU(), nn.Linear(120, 10))
        x = ember.from_numpy(rng.standard_normal((batch, 784)).astype(np.float32))
        compiled = ember.compile(model)
        for _ in range(2):  # the first call captures, the second runs the generated code
            yc = compiled(x)
            yc.sum().backward()
            gc = [p.grad.numpy().copy() for p in model.parameters()]
            model.zero_grad()
        ye = model(x)
        ye.sum().backward()
        np.testing.assert_array_equal(yc.detach().numpy(), ye.detach().numpy())
        for a, p in zip(gc, model.parameters()):
            np.testing.assert_array_equal(a, p.grad.numpy())


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 80), k=st.integers(1, 300), n=st.integers(1, 200), bias=st.booleans())
def test_hypothesis_shapes_float32(m, k, n, bias):
    x, w, b = _xwb(m, k, n, seed=m + k + n)
    check(lambda mod, *a: mod.nn.functional.linear(*a), None, *((x, w, b) if bias else (x, w)),
          dtypes=("float32",))


@pytest.mark.parametrize("fn,msg", [
    (lambda m, x, w: m.nn.functional.linear(x, w), "mat1 and mat2 shapes cannot be multiplied"),
    (lambda m, x, w: m.matmul(x, w.t()), "mat1 and mat2 shapes cannot be multiplied"),
    (lambda m, x, w: m.mm(x, w.t()), "mat1 and mat2 shapes cannot be multiplied"),
    (lambda m, x, w: m.addmm(m.zeros(512, dtype=m.float64), x, w.t()),
     "mat1 and mat2 shapes cannot be multiplied"),
])
def test_bad_shapes_raise_torch_errors(fn, msg):
    x, w = rand(16, 783), rand(512, 784)
    with pytest.raises(RuntimeError, match=msg) as te:
        fn(torch, torch.from_numpy(x), torch.from_numpy(w))
    with pytest.raises(RuntimeError) as ee:
        fn(ember, ember.from_numpy(x), ember.from_numpy(w))
    assert str(ee.value) == str(te.value)


def test_mixed_dtypes_raise_torch_error():
    x, w = rand(16, 784).astype(np.float32), rand(512, 784)
    with pytest.raises(RuntimeError) as te:
        torch.from_numpy(x) @ torch.from_numpy(w).t()
    with pytest.raises(RuntimeError) as ee:
        ember.from_numpy(x) @ ember.from_numpy(w).t()
    assert str(ee.value) == str(te.value)


@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_half_precision_batch_one_weight_gradient(dt):
    """The half-precision backward's weight gradient at batch 1 (an outer product in float32)."""
    x, w, b = rand(1, 300, seed=1) / 17, rand(200, 300, seed=2), rand(200, seed=3)
    g = rand(1, 200, seed=4)
    grads = {}
    for m in (ember, torch):
        ts = [m.tensor(a.astype(np.float32)).to(getattr(m, dt)).requires_grad_() for a in (x, w, b)]
        y = m.nn.functional.linear(*ts)
        y.backward(m.tensor(g.astype(np.float32)).to(getattr(m, dt)))
        grads[m] = [t.grad.float().numpy() for t in ts]
    for a, t in zip(grads[ember], grads[torch]):
        np.testing.assert_allclose(a, t, rtol=2e-2, atol=2e-2)
    # the weight gradient is the exact outer product of the rounded operands, rounded once
    gh = grads[ember][1]
    xr = ember.tensor(x.astype(np.float32)).to(getattr(ember, dt)).float().numpy()
    gr = ember.tensor(g.astype(np.float32)).to(getattr(ember, dt)).float().numpy()
    want = ember.from_numpy(np.multiply.outer(gr[0], xr[0])).to(getattr(ember, dt)).float()
    np.testing.assert_array_equal(gh, want.numpy())
