"""Sparse COO/CSR tensors (ember/sparse, ember/ops/sparse.py) against torch."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

pytestmark = pytest.mark.filterwarnings("ignore:Sparse (invariant|CSR)")

IDX = [[0, 1, 1, 0], [2, 0, 2, 2]]   # (0, 2) twice: uncoalesced
VAL = [3.0, 4.0, 5.0, -1.0]
SIZE = (2, 3)


def _np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def _both(fn, dtype="float64"):
    """``fn(m, dt)`` with m=ember and m=torch."""
    return fn(ember, getattr(ember, dtype)), fn(torch, getattr(torch, dtype))


def _dense(t):
    return _np(t.to_dense()) if t.layout is not (ember.strided if isinstance(t, ember.Tensor)
                                                  else torch.strided) else _np(t)


def _coo(m, dt, requires_grad=False):
    return m.sparse_coo_tensor(m.tensor(IDX), m.tensor(VAL, dtype=dt), SIZE,
                               requires_grad=requires_grad)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_construction_metadata_and_dense_value(dtype):
    e, t = _both(_coo, dtype)
    for fn in (lambda s: s.shape, lambda s: s.is_sparse, lambda s: s.is_sparse_csr,
               lambda s: s.is_coalesced(), lambda s: s._nnz(), lambda s: s.sparse_dim(),
               lambda s: s.dense_dim(), lambda s: s.numel(), lambda s: s.dim(),
               lambda s: s.coalesce().is_coalesced(), lambda s: s.coalesce()._nnz(),
               lambda s: repr(s.layout).split(".")[1], lambda s: str(s.dtype).split(".")[1]):
        assert tuple(np.atleast_1d(fn(e))) == tuple(np.atleast_1d(fn(t)))
    np.testing.assert_allclose(_dense(e), _dense(t))
    ce, ct = e.coalesce(), t.coalesce()
    np.testing.assert_array_equal(ce.indices().numpy(), ct.indices().numpy())
    np.testing.assert_allclose(ce.values().numpy(), ct.values().numpy())


def test_size_inferred_and_hybrid_values():
    for m in (ember, torch):
        assert tuple(m.sparse_coo_tensor([[0, 4]], [1.0, 2.0]).shape) == (5,)
        h = m.sparse_coo_tensor(m.tensor([[0, 2]]), m.tensor([[1.0, 2.0], [3.0, 4.0]]), (3, 2))
        assert (h.sparse_dim(), h.dense_dim(), tuple(h.shape)) == (1, 1, (3, 2))
    e = ember.sparse_coo_tensor(ember.tensor([[0, 2]]), ember.tensor([[1.0, 2.0], [3.0, 4.0]]))
    t = torch.sparse_coo_tensor(torch.tensor([[0, 2]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(_dense(e), _dense(t))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_to_sparse_round_trips_and_csr(dtype):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 5)) * (rng.random((4, 5)) < 0.4)
    outs = []
    for m in (ember, torch):
        x = m.tensor(a, dtype=getattr(m, dtype))
        s = x.to_sparse()
        c = x.to_sparse_csr()
        outs.append((s.indices().numpy(), s.values().numpy(), c.crow_indices().numpy(),
                     c.col_indices().numpy(), c.values().numpy(), _dense(c),
                     _dense(s.to_sparse_csr()), _dense(c.to_sparse()), _dense(x.to_sparse(1)),
                     x.to_sparse(1).sparse_dim()))
    for a_, b_ in zip(*outs):
        np.testing.assert_allclose(a_, b_)


def test_csr_constructor():
    outs = []
    for m in (ember, torch):
        c = m.sparse_csr_tensor(m.tensor([0, 1, 3]), m.tensor([2, 0, 2]),
                                m.tensor([3.0, 4.0, 5.0]), (2, 3))
        outs.append((_dense(c), c._nnz(), c.is_sparse_csr, c.is_sparse, tuple(c.shape)))
        assert tuple(m.sparse_csr_tensor(m.tensor([0, 1, 3]), m.tensor([2, 0, 2]),
                                         m.tensor([3.0, 4.0, 5.0])).shape) == (2, 3)
    np.testing.assert_allclose(outs[0][0], outs[1][0])
    assert outs[0][1:] == outs[1][1:]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", ["sparse.mm", "mm", "matmul", "@", "spmm", "csr"])
def test_sparse_dense_products_and_gradients(op, dtype):
    rng = np.random.default_rng(1)
    d = rng.normal(size=(3, 2))
    g = rng.normal(size=(2, 2))
    res = []
    for m in (ember, torch):
        dt = getattr(m, dtype)
        s = _coo(m, dt, requires_grad=True)
        if op == "csr":
            s = m.sparse_csr_tensor(m.tensor([0, 1, 3]), m.tensor([2, 0, 2]),
                                    m.tensor([3.0, 4.0, 5.0], dtype=dt), SIZE,
                                    requires_grad=True)
        x = m.tensor(d, dtype=dt, requires_grad=True)
        y = {"sparse.mm": lambda: m.sparse.mm(s, x), "mm": lambda: m.mm(s, x),
             "matmul": lambda: m.matmul(s, x), "@": lambda: s @ x,
             "spmm": lambda: m.spmm(s, x), "csr": lambda: m.sparse.mm(s, x)}[op]()
        y.backward(m.tensor(g, dtype=dt))
        res.append((y, x.grad, s.grad))
    (ye, xe, se), (yt, xt, sg) = res
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else {}
    np.testing.assert_allclose(_np(ye), _np(yt), **tol)
    np.testing.assert_allclose(_np(xe), _np(xt), **tol)
    # torch.mm/spmm/matmul give the sparse operand a dense gradient, sparse.mm a sparse one
    assert (se.layout is ember.strided) == (sg.layout is torch.strided)
    np.testing.assert_allclose(_dense(se), _dense(sg), **tol)
    assert ye.grad_fn.name() == yt.grad_fn.name()


def test_gradient_to_values_and_through_to_dense():
    outs = []
    for m in (ember, torch):
        v = m.tensor(VAL, dtype=m.float64, requires_grad=True)
        s = m.sparse_coo_tensor(m.tensor(IDX), v, SIZE)
        x = m.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]], dtype=m.float64)
        (m.sparse.mm(s, x) ** 2).sum().backward()
        leaf = _coo(m, m.float64, requires_grad=True)
        (leaf.to_dense() * m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64)).sum() \
            .backward()
        outs.append((_np(v.grad), leaf.grad.layout is getattr(m, "sparse_coo"),
                     _dense(leaf.grad), type(s.grad_fn).__name__ if m is torch else
                     s.grad_fn.name()))
    np.testing.assert_allclose(outs[0][0], outs[1][0])
    assert outs[0][1] and outs[1][1]
    np.testing.assert_allclose(outs[0][2], outs[1][2])
    assert outs[0][3] == outs[1][3]


@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1)])
def test_sparse_sum(dim):
    outs = []
    for m in (ember, torch):
        s = _coo(m, m.float64, requires_grad=True)
        r = m.sparse.sum(s) if dim is None else m.sparse.sum(s, dim=dim)
        (r.to_dense() if r.layout is not getattr(m, "strided") else r).sum().backward()
        outs.append((_dense(r), r.layout is getattr(m, "strided"), _dense(s.grad)))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("dim", [0, 1])
def test_sparse_softmax_and_its_gradient(dim):
    outs = []
    w = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for m in (ember, torch):
        v = m.tensor(VAL, dtype=m.float64, requires_grad=True)
        s = m.sparse_coo_tensor(m.tensor(IDX), v, SIZE).coalesce()
        y = m.sparse.softmax(s, dim)
        (y.to_dense() * m.tensor(w)).sum().backward()
        outs.append((_dense(y), _np(v.grad)))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_scaling_transpose_and_add_keep_sparse():
    for fn in (lambda s: s * 2, lambda s: 2 * s, lambda s: -s, lambda s: s / 4, lambda s: s.t(),
               lambda s: s.coalesce() + s.coalesce()):
        e, t = fn(_coo(ember, ember.float64)), fn(_coo(torch, torch.float64))
        assert e.is_sparse and t.is_sparse
        np.testing.assert_allclose(_dense(e), _dense(t))


def test_repr_matches_torch_with_ember_names():
    cases = [lambda m: _coo(m, m.float32), lambda m: _coo(m, m.float32).coalesce(),
             lambda m: _coo(m, m.float64, True), lambda m: m.eye(3).to_sparse(1),
             lambda m: m.eye(3).to_sparse_csr()]
    for fn in cases:
        assert repr(fn(ember)).replace("ember.", "torch.") == repr(fn(torch))


def test_layouts():
    assert ember.zeros(2).layout is ember.strided and not ember.zeros(2).is_sparse
    assert repr(ember.sparse_coo) == "ember.sparse_coo"
    import pickle
    assert pickle.loads(pickle.dumps(ember.sparse_csr)) is ember.sparse_csr
    with pytest.raises(TypeError):
        ember.layout()


def _raises(fn, exc):
    """The same exception type (and message) from ember and torch."""
    msgs = []
    for m in (ember, torch):
        with pytest.raises(exc) as info:
            fn(m)
        msgs.append(str(info.value).split(" This could")[0])
    assert msgs[0] == msgs[1]


@pytest.mark.parametrize("fn", [
    lambda m: m.sparse_coo_tensor(m.tensor([[0, 5]]), m.tensor([1.0, 2.0]), (3,),
                                  check_invariants=True),
    lambda m: m.sparse_coo_tensor(m.tensor([[0, -1]]), m.tensor([1.0, 2.0]), (3,),
                                  check_invariants=True),
    lambda m: m.sparse_coo_tensor(m.tensor([[0, 1]]), m.tensor([1.0, 2.0, 3.0]), (3,)),
    lambda m: m.sparse_coo_tensor(m.tensor([[0, 1]]), m.tensor([1.0, 2.0]), (3, 2)),
    lambda m: m.sparse.mm(m.eye(2).to_sparse(), m.ones(3, 2)),
    lambda m: _coo(m, m.float32).indices(),
    lambda m: _coo(m, m.float32).values(),
    lambda m: m.eye(2).indices(),
    lambda m: m.eye(2).values(),
    lambda m: m.eye(2).coalesce(),
    lambda m: m.eye(2).crow_indices(),
    lambda m: _coo(m, m.float32).crow_indices(),
    lambda m: m.sparse.sum(m.eye(2).to_sparse_csr()),
])
def test_bad_input_raises_runtime_error_as_torch(fn):
    _raises(fn, RuntimeError)


def test_invariant_check_mode_and_ember_refuses_out_of_range_on_densify():
    with ember.sparse.check_sparse_tensor_invariants():
        with pytest.raises(RuntimeError, match="size is inconsistent with indices"):
            ember.sparse_coo_tensor([[0, 5]], [1.0, 2.0], (3,))
    s = ember.sparse_coo_tensor([[0, 5]], [1.0, 2.0], (3,))  # unchecked, as in torch
    for fn in (s.to_dense, s.coalesce):  # torch reads out of bounds here; ember refuses
        with pytest.raises(RuntimeError, match="for dim 0, size is 3 but found index 5"):
            fn()


@pytest.mark.parametrize("fn", [lambda m: _coo(m, m.float32).exp(),
                                lambda m: _coo(m, m.float32).cos(),
                                lambda m: _coo(m, m.float32).view(-1)])
def test_unsupported_dense_ops_raise_not_implemented(fn):
    for m in (ember, torch):
        with pytest.raises(NotImplementedError, match="with arguments from the 'SparseCPU'"):
            fn(m)


def test_sparse_mm_vector_raises_index_error():
    for m in (ember, torch):
        with pytest.raises(IndexError):
            m.sparse.mm(m.eye(2).to_sparse(), m.ones(2))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 6), j=st.integers(1, 4), seed=st.integers(0, 99))
def test_random_patterns_match_torch(n, k, j, seed):
    rng = np.random.default_rng(seed)
    nnz = int(rng.integers(0, n * k + 3))
    idx = np.stack([rng.integers(0, n, nnz), rng.integers(0, k, nnz)])
    val = rng.normal(size=nnz)
    d = rng.normal(size=(k, j))
    outs = []
    for m in (ember, torch):
        s = m.sparse_coo_tensor(m.tensor(idx), m.tensor(val), (n, k), requires_grad=True)
        x = m.tensor(d, requires_grad=True)
        y = m.sparse.mm(s, x)
        y.sum().backward()
        c = s.detach().coalesce()
        outs.append((_np(y), _np(x.grad), _dense(s.grad), c.indices().numpy(),
                     c.values().numpy(), _dense(s.detach().to_dense().to_sparse_csr())))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_sparse_gradient_and_sparse_adam_match_torch(padding_idx):
    res = []
    for m in (ember, torch):
        e = m.nn.Embedding(5, 2, sparse=True, padding_idx=padding_idx)
        with m.no_grad():
            e.weight.copy_(m.tensor(np.arange(10.0).reshape(5, 2)))
        opt = m.optim.SparseAdam(e.parameters(), lr=0.1)
        i = m.tensor([[1, 0, 3], [3, 3, 4]])
        for _ in range(3):
            opt.zero_grad()
            (e(i) ** 2).sum().backward()
            g = e.weight.grad
            opt.step()
        res.append((e.weight.detach().numpy(), g.is_sparse, g._indices().numpy(),
                    g._values().numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_embedding_sparse_with_scale_grad_by_freq_raises_as_torch():
    for m in (ember, torch):
        e = m.nn.Embedding(5, 2, sparse=True, scale_grad_by_freq=True)
        with pytest.raises(RuntimeError, match="scale_grad_by_freq not supported with sparse"):
            e(m.tensor([1, 1])).sum().backward()


def test_sparse_log_softmax_and_addmm():
    outs = []
    for m in (ember, torch):
        v = m.tensor(VAL, dtype=m.float64, requires_grad=True)
        s = m.sparse_coo_tensor(m.tensor(IDX), v, SIZE).coalesce()
        y = m.sparse.log_softmax(s, 1)
        y.to_dense().sum().backward()
        base = m.ones(2, 2, dtype=m.float64)
        d = m.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=m.float64)
        outs.append((_dense(y), _np(v.grad), _np(m.sparse.addmm(base, s, d, beta=0.5, alpha=2.0))))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_sparse_times_sparse_and_its_gradients():
    outs = []
    b_idx, b_val = [[0, 2, 2], [1, 0, 1]], [2.0, -1.0, 0.5]
    for m in (ember, torch):
        a = _coo(m, m.float64, requires_grad=True)
        b = m.sparse_coo_tensor(m.tensor(b_idx), m.tensor(b_val, dtype=m.float64), (3, 2),
                                requires_grad=True)
        y = m.sparse.mm(a, b)
        (y.to_dense() * m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64)).sum().backward()
        outs.append((y.is_sparse, _dense(y), _dense(a.grad), _dense(b.grad)))
    assert outs[0][0] and outs[1][0]
    for x, z in zip(outs[0][1:], outs[1][1:]):
        np.testing.assert_allclose(x, z)
    _raises(lambda m: m.sparse.mm(m.ones(2, 3).to_sparse(), m.ones(2, 3).to_sparse()),
            RuntimeError)


def test_casts_copies_full_sum_and_dense_plus_sparse():
    for fn in (lambda m, s: _dense(s.double()), lambda m, s: _dense(s.to(m.float64)),
               lambda m, s: _dense(s.clone()), lambda m, s: s.clone().is_sparse,
               lambda m, s: _np(s.sum()), lambda m, s: _np(m.ones(2, 3) + s)):
        a, b = fn(ember, _coo(ember, ember.float32)), fn(torch, _coo(torch, torch.float32))
        np.testing.assert_allclose(a, b)
    _raises(lambda m: _coo(m, m.float32) + m.ones(2, 3), RuntimeError)


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True},
                                {"momentum": 0.9, "dampening": 0.3}])
def test_sgd_with_sparse_embedding_gradients_matches_torch(kw):
    res = []
    for m in (ember, torch):
        e = m.nn.Embedding(5, 2, sparse=True)
        with m.no_grad():
            e.weight.copy_(m.tensor(np.arange(10.0).reshape(5, 2)))
        opt = m.optim.SGD(e.parameters(), lr=0.1, **kw)
        for i in range(3):
            opt.zero_grad()
            (e(m.tensor([1, 3, 3, i])) ** 2).sum().backward()
            opt.step()
        res.append(e.weight.detach().numpy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-5, atol=1e-6)  # float32 steps


def test_legacy_sparse_constructors_as_torch():
    outs = []
    for m in (ember, torch):
        with pytest.warns(UserWarning, match=r"SparseTensor\(indices, values, shape"):
            s = m.sparse.FloatTensor(m.tensor(IDX), m.tensor([1, 2, 3, 4]), m.Size(SIZE))
        with pytest.warns(UserWarning, match=r"SparseTensor\(shape, \*, device=\) is deprec"):
            e = m.sparse.DoubleTensor(2, 3)
        outs.append((str(s.dtype).split(".")[1], s.is_sparse, _dense(s).tolist(),
                     isinstance(s, m.sparse.FloatTensor), isinstance(m.ones(2),
                                                                     m.sparse.FloatTensor),
                     isinstance(s, m.sparse.DoubleTensor), tuple(e.shape), e._nnz(),
                     str(e.dtype).split(".")[1]))
    assert outs[0] == outs[1]
