"""``Tensor.unfold``, ``meshgrid`` and ``cdist`` against PyTorch: values, gradients, errors."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, gradcheck

CASES = [  # (id, fn(m, *xs), inputs)
    ("unfold", lambda m, x: x.unfold(1, 3, 1), [rand(2, 6, seed=1)]),
    ("unfold_step", lambda m, x: x.unfold(0, 2, 3), [rand(7, 3, seed=2)]),
    ("unfold_neg_dim", lambda m, x: x.unfold(-1, 2, 2), [rand(2, 3, 5, seed=3)]),
    ("unfold_full", lambda m, x: x.unfold(0, 4, 1), [rand(4, seed=4)]),
    ("unfold_0d", lambda m, x: x.unfold(0, 1, 1), [np.array(1.5)]),
    ("unfold_twice", lambda m, x: x.unfold(0, 3, 2).unfold(1, 2, 1), [rand(7, 4, seed=5)]),
    ("unfold_nc", lambda m, x: x.t().unfold(1, 2, 1), [rand(3, 4, seed=6)]),
    ("meshgrid_ij", lambda m, a, b: m.meshgrid(a, b, indexing="ij"),
     [rand(3, seed=1), rand(4, seed=2)]),
    ("meshgrid_xy", lambda m, a, b, c: m.meshgrid([a, b, c], indexing="xy"),
     [rand(3, seed=1), rand(4, seed=2), rand(2, seed=3)]),
    ("meshgrid_0d", lambda m, a, b: m.meshgrid(a, b, indexing="xy"),
     [np.array(2.0), rand(3, seed=2)]),
    ("meshgrid_one", lambda m, a: m.meshgrid(a, indexing="xy"), [rand(3, seed=1)]),
    ("cdist", lambda m, a, b: m.cdist(a, b), [rand(4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_batch", lambda m, a, b: m.cdist(a, b), [rand(2, 4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_bcast", lambda m, a, b: m.cdist(a, b), [rand(2, 1, 4, 3, seed=1),
                                                    rand(3, 5, 3, seed=2)]),
    ("cdist_p1", lambda m, a, b: m.cdist(a, b, p=1), [rand(4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_p3", lambda m, a, b: m.cdist(a, b, p=3), [rand(4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_p05", lambda m, a, b: m.cdist(a, b, p=0.5), [rand(4, 3, seed=1),
                                                         rand(5, 3, seed=2)]),
    ("cdist_inf", lambda m, a, b: m.cdist(a, b, p=float("inf")), [rand(4, 3, seed=1),
                                                                  rand(5, 3, seed=2)]),
    ("cdist_p0", lambda m, a, b: m.cdist(a, b, p=0), [rand(4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_mm", lambda m, a, b: m.cdist(a, b, compute_mode="use_mm_for_euclid_dist"),
     [rand(4, 3, seed=1), rand(5, 3, seed=2)]),
    ("cdist_big", lambda m, a, b: m.cdist(a, b), [rand(30, 3, seed=1), rand(6, 3, seed=2)]),
    ("cdist_no_mm", lambda m, a, b: m.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist"),
     [rand(30, 3, seed=1), rand(6, 3, seed=2)]),
]


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_forward_and_grad(name, fn, inputs):
    check(fn, None, *inputs)


@pytest.mark.parametrize("name,fn,inputs", [c for c in CASES if not c[0].endswith("p0")],
                         ids=[c[0] for c in CASES if not c[0].endswith("p0")])
def test_gradcheck(name, fn, inputs):
    assert gradcheck(lambda *xs: fn(ember, *xs), *inputs)


def test_unfold_is_a_view_and_double_backward():
    x = ember.arange(6.0, dtype=ember.float64)
    y = x.unfold(0, 2, 2)
    x[0] = 10.0
    assert float(y[0, 0]) == 10.0
    assert y.grad_fn is None and x.unfold(0, 2, 1).shape == (5, 2)
    xr = ember.tensor([0.5, 1.0, -2.0, 3.0], dtype=ember.float64, requires_grad=True)
    assert xr.unfold(0, 2, 1).grad_fn.name() == "UnfoldBackward0"
    assert ember.autograd.gradgradcheck(lambda a: a.unfold(0, 3, 1) ** 2, (xr,))


def test_cdist_zero_distance_gradient_is_finite():
    rows = rand(3, 2, seed=7)
    res = []
    for m in (ember, torch):
        a = m.tensor(rows, requires_grad=True)
        m.cdist(a, a).sum().backward()
        res.append(a.grad.numpy())
    np.testing.assert_allclose(res[0], res[1])


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 4),
       st.sampled_from([1.0, 2.0, 3.0]))
def test_cdist_shapes(b, p_rows, r_rows, m_cols, p):
    a = rand(b, p_rows, m_cols, seed=p_rows)
    c = rand(r_rows, m_cols, seed=r_rows + 10)
    check(lambda m, x, y: m.cdist(x, y, p=p), None, a, c, dtypes=("float64",))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 8), st.integers(0, 8), st.integers(1, 4))
def test_unfold_shapes(n, size, step):
    size = min(size, n)
    check(lambda m, x: x.unfold(1, size, step), None, rand(2, n, 3, seed=n),
          dtypes=("float64",))


def test_meshgrid_warns_without_indexing():
    a, b = ember.arange(3), ember.arange(2)
    with pytest.warns(UserWarning, match="it will be required to pass the indexing argument"):
        g = ember.meshgrid(a, b)
    assert [tuple(t.shape) for t in g] == [(3, 2), (3, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.meshgrid(a, b, indexing="ij")


BAD = [  # (id, fn(m), exception type, message)
    ("unfold_size", lambda m: m.arange(6.0).unfold(0, 7, 1), RuntimeError,
     "maximum size for tensor at dimension 0 is 6 but size is 7"),
    ("unfold_step", lambda m: m.arange(6.0).unfold(0, 2, 0), RuntimeError,
     "step is 0 but must be > 0"),
    ("unfold_neg", lambda m: m.arange(6.0).unfold(0, -1, 1), RuntimeError,
     "size is -1 but must be >= 0"),
    ("unfold_dim", lambda m: m.arange(6.0).unfold(1, 2, 1), IndexError, "Dimension out of range"),
    ("mesh_2d", lambda m: m.meshgrid(m.ones(2), m.ones(2, 2), indexing="ij"), RuntimeError,
     "Expected 0D or 1D tensor in the tensor list"),
    ("mesh_dtype", lambda m: m.meshgrid(m.ones(2), m.ones(2).long(), indexing="ij"),
     RuntimeError, "meshgrid expects all tensors to have the same dtype"),
    ("mesh_indexing", lambda m: m.meshgrid(m.ones(2), indexing="ab"), RuntimeError,
     'indexing must be one of "xy" or "ij", but received: ab'),
    ("mesh_empty", lambda m: m.meshgrid([], indexing="ij"), RuntimeError,
     "meshgrid expects a non-empty TensorList"),
    ("cdist_1d", lambda m: m.cdist(m.ones(3), m.ones(2, 3)), RuntimeError,
     "cdist only supports at least 2D tensors, X1 got: 1D"),
    ("cdist_cols", lambda m: m.cdist(m.ones(2, 3), m.ones(2, 4)), RuntimeError,
     "X1 and X2 must have the same number of columns. X1: 3 X2: 4"),
    ("cdist_p", lambda m: m.cdist(m.ones(2, 3), m.ones(2, 3), p=-1.0), RuntimeError,
     "cdist only supports non-negative p values"),
    ("cdist_mode", lambda m: m.cdist(m.ones(2, 3), m.ones(2, 3), compute_mode="x"), ValueError,
     "x is not a valid value for compute_mode"),
    ("cdist_int", lambda m: m.cdist(m.ones(2, 3).long(), m.ones(2, 3).long()), RuntimeError,
     "cdist only supports floating-point dtypes, X1 got: Long"),
    ("cdist_mixed", lambda m: m.cdist(m.ones(2, 3), m.ones(2, 3).double()), RuntimeError,
     "expected scalar type Float but found Double"),
    ("cdist_batch", lambda m: m.cdist(m.ones(2, 2, 3), m.ones(3, 2, 3)), RuntimeError,
     "must match the size of tensor b"),
]


@pytest.mark.parametrize("name,fn,exc,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(name, fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(torch)
    with pytest.raises(exc, match=msg):
        fn(ember)


@pytest.mark.parametrize("shape, wrap", [((3, 3), False), ((5, 3), False), ((7, 3), True),
                                         ((3, 5), False), ((3, 5), True), ((2, 2, 2), False),
                                         ((4, 4, 4), True), ((1, 1), False)])
def test_fill_diagonal_matches_torch(shape, wrap):
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    e, t = ember.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    ye, yt = e * 2, t * 2
    assert ye.fill_diagonal_(-1.5, wrap=wrap) is ye
    yt.fill_diagonal_(-1.5, wrap=wrap)
    assert ye.tolist() == yt.tolist()
    (ye * ye).sum().backward()
    (yt * yt).sum().backward()
    assert e.grad.tolist() == t.grad.tolist()  # written positions get no gradient


@pytest.mark.parametrize("shape, message", [((3,), "dimensions must larger than 1"),
                                            ((2, 3, 2), "all dimensions of input must be of "
                                                        "equal length")])
def test_fill_diagonal_bad_shapes_raise_as_torch(shape, message):
    with pytest.raises(RuntimeError, match=message):
        torch.zeros(shape).fill_diagonal_(1)
    with pytest.raises(RuntimeError, match=message):
        ember.zeros(shape).fill_diagonal_(1)
