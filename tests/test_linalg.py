"""Linear algebra against PyTorch: products, einsum, tensordot, add* family, torch.linalg."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, gradcheck, to_ember, to_torch, assert_close

# ---------------------------------------------------------------------------------------------
# matmul in every rank case

MATMUL_SHAPES = [
    ((3,), (3,)),                 # dot
    ((2, 3), (3,)),               # mv
    ((3,), (3, 4)),               # vector @ matrix
    ((2, 3), (3, 4)),             # mm
    ((5, 2, 3), (5, 3, 4)),       # bmm
    ((5, 2, 3), (3, 4)),          # batch @ matrix (folded)
    ((2, 3), (5, 3, 4)),          # matrix @ batch
    ((2, 1, 3, 4), (5, 4, 6)),    # broadcast batch dims
    ((3,), (5, 3, 4)),            # vector @ batch
    ((5, 2, 3), (3,)),            # batch @ vector
    ((5, 2, 3), (1, 3, 4)),       # size-1 batch
    ((1, 2, 3), (4, 1, 3, 2)),
    ((0, 3), (3, 2)),             # empty
    ((2, 0), (0, 3)),             # empty inner dim
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_ranks(sa, sb):
    check(lambda m, a, b: m.matmul(a, b), None, rand(*sa, seed=1), rand(*sb, seed=2))
    check(lambda m, a, b: a @ b, None, rand(*sa, seed=3), rand(*sb, seed=4))


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_grad_fn_name(sa, sb):
    e = to_ember(rand(*sa), True) @ to_ember(rand(*sb), True)
    t = to_torch(rand(*sa), True) @ to_torch(rand(*sb), True)
    if len(sa) <= 2 and len(sb) <= 2 or sa == (2, 3) and len(sb) == 3:
        assert e.grad_fn.name() == t.grad_fn.name()
    else:
        assert e.grad_fn.name() == "UnsafeViewBackward0"


def test_matmul_non_contiguous():
    check(lambda m, a, b: a.transpose(0, 1) @ b.mT, None, rand(4, 3), rand(5, 4))
    check(lambda m, a, b: a.permute(2, 0, 1) @ b.transpose(-1, -2), None,
          rand(3, 4, 2), rand(2, 5, 4))
    check(lambda m, a, b: m.matmul(a.t(), b), None, rand(3, 2), rand(3))


def test_rmatmul_and_method():
    check(lambda m, a, b: a.matmul(b) + b.__rmatmul__(a), None, rand(2, 3), rand(3, 2))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=3),
       st.lists(st.booleans(), min_size=3, max_size=3),
       st.integers(0, 3), st.sampled_from(["vec", "mat", "batch"]),
       st.sampled_from(["vec", "mat", "batch"]), st.booleans())
def test_matmul_batch_broadcast(batch, ones_in_a, drop, kind_a, kind_b, transpose):
    # a and b take the same batch shape with some dims set to 1 (or dropped) on one side
    ba = tuple(1 if o else s for s, o in zip(batch, ones_in_a))[min(drop, len(batch)):]
    bb = tuple(batch)
    n, k, p = 2, 3, 4
    sa = {"vec": (k,), "mat": (n, k), "batch": ba + (n, k)}[kind_a]
    sb = {"vec": (k,), "mat": (k, p), "batch": bb + (k, p)}[kind_b]
    if transpose and len(sa) > 1:
        # a non-contiguous a: built transposed, transposed back inside the call
        arr = np.swapaxes(rand(*sa, seed=5), -1, -2).copy()
        check(lambda m, a, b: a.mT @ b, None, arr, rand(*sb, seed=6), dtypes=("float64",))
    else:
        check(lambda m, a, b: a @ b, None, rand(*sa, seed=5), rand(*sb, seed=6),
              dtypes=("float64",))


@pytest.mark.parametrize("dt", ["int64", "int32"])
@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                                    ((2, 2, 3), (3, 4)), ((2, 2, 3), (2, 3, 4))])
def test_matmul_int(dt, sa, sb):
    a = np.random.default_rng(0).integers(-5, 5, sa).astype(dt)
    b = np.random.default_rng(1).integers(-5, 5, sb).astype(dt)
    check(lambda m, x, y: x @ y, None, a, b)


def test_matmul_out():
    a, b = rand(2, 3), rand(3, 4)
    out = ember.empty(2, 4)
    r = ember.matmul(to_ember(a), to_ember(b), out=out)
    assert r is out
    np.testing.assert_allclose(out.numpy(), a @ b)


def test_matmul_double_backward():
    a, b = rand(2, 3, seed=1), rand(3, 4, seed=2)
    assert ember.autograd.gradgradcheck(lambda x, y: x @ y,
                                        [to_ember(a, True), to_ember(b, True)])


# ---------------------------------------------------------------------------------------------
# the other products, table driven: (name, lambda, shapes...)

def _spd(n, seed=0):
    x = rand(n, n, seed=seed)
    return x @ x.T + n * np.eye(n)


PRODUCTS = [
    ("mm", lambda m, a, b: m.mm(a, b), (2, 3), (3, 4)),
    ("mm_T", lambda m, a, b: a.t().mm(b.t()), (3, 2), (4, 3)),
    ("bmm", lambda m, a, b: m.bmm(a, b), (2, 2, 3), (2, 3, 4)),
    ("bmm_T", lambda m, a, b: a.transpose(1, 2).bmm(b), (2, 3, 2), (2, 3, 4)),
    ("mv", lambda m, a, b: m.mv(a, b), (2, 3), (3,)),
    ("mv_T", lambda m, a, b: a.t().mv(b), (3, 2), (3,)),
    ("dot", lambda m, a, b: m.dot(a, b), (4,), (4,)),
    ("dot_strided", lambda m, a, b: a[::2].dot(b), (8,), (4,)),
    ("vdot", lambda m, a, b: m.vdot(a, b), (4,), (4,)),
    ("outer", lambda m, a, b: m.outer(a, b), (3,), (4,)),
    ("ger", lambda m, a, b: a.ger(b), (3,), (4,)),
    ("inner_1d", lambda m, a, b: m.inner(a, b), (3,), (3,)),
    ("inner_nd", lambda m, a, b: m.inner(a, b), (2, 3), (4, 5, 3)),
    ("inner_0d", lambda m, a, b: m.inner(a, b), (), (3, 2)),
    ("kron", lambda m, a, b: m.kron(a, b), (2, 3), (3, 2)),
    ("kron_ranks", lambda m, a, b: a.kron(b), (2,), (3, 2, 2)),
    ("trace", lambda m, a: m.trace(a), (3, 4)),
    ("trace_T", lambda m, a: a.t().trace(), (3, 3)),
    ("cross", lambda m, a, b: m.cross(a, b, dim=1), (4, 3), (4, 3)),
    ("cross_default", lambda m, a, b: m.cross(a, b), (3, 4), (3, 4)),
    ("cross_bcast", lambda m, a, b: m.linalg.cross(a, b), (4, 3), (1, 3)),
    ("tensordot_2", lambda m, a, b: m.tensordot(a, b), (2, 3, 4), (3, 4, 5)),
    ("tensordot_lists", lambda m, a, b: m.tensordot(a, b, dims=([1, 2], [1, 0])),
     (2, 3, 4), (4, 3, 5)),
    ("tensordot_0", lambda m, a, b: m.tensordot(a, b, dims=0), (2, 3), (4,)),
    ("tensordot_ints", lambda m, a, b: m.tensordot(a, b, dims=([0], [1])), (3, 2), (4, 3)),
    ("tensordot_tensor", lambda m, a, b: m.tensordot(a, b, dims=m.tensor(1)), (3, 2), (2, 3)),
    ("addmm", lambda m, i, a, b: m.addmm(i, a, b), (4,), (2, 3), (3, 4)),
    ("addmm_ab", lambda m, i, a, b: m.addmm(i, a, b, beta=0.5, alpha=-2.0), (2, 4), (2, 3),
     (3, 4)),
    ("addmm_beta0", lambda m, i, a, b: i.addmm(a, b, beta=0), (2, 4), (2, 3), (3, 4)),
    ("addmv", lambda m, i, a, b: m.addmv(i, a, b, beta=2.0, alpha=0.5), (2,), (2, 3), (3,)),
    ("addmv_0d", lambda m, i, a, b: m.addmv(i, a, b), (), (2, 3), (3,)),
    ("baddbmm", lambda m, i, a, b: m.baddbmm(i, a, b, beta=0.5, alpha=1.5), (2, 1, 4),
     (2, 2, 3), (2, 3, 4)),
    ("addbmm", lambda m, i, a, b: m.addbmm(i, a, b, alpha=3), (2, 4), (5, 2, 3), (5, 3, 4)),
    ("addr", lambda m, i, a, b: m.addr(i, a, b, beta=2), (1, 4), (3,), (4,)),
    ("chain_matmul", lambda m, a, b: m.chain_matmul(a, b, a.t()), (2, 3), (3, 3)),
]


@pytest.mark.parametrize("name,fn,shapes", [(p[0], p[1], p[2:]) for p in PRODUCTS],
                         ids=[p[0] for p in PRODUCTS])
def test_products(name, fn, shapes):
    check(fn, None, *[rand(*s, seed=i) for i, s in enumerate(shapes)])


@pytest.mark.parametrize("name,fn,shapes", [(p[0], p[1], p[2:]) for p in PRODUCTS[:22]],
                         ids=[p[0] for p in PRODUCTS[:22]])
def test_products_grad_fn(name, fn, shapes):
    e = fn(ember, *[to_ember(rand(*s), True) for s in shapes])
    t = fn(torch, *[to_torch(rand(*s), True) for s in shapes])
    same = {"mm", "mm_T", "bmm", "bmm_T", "mv", "mv_T", "dot", "dot_strided", "vdot", "outer",
            "ger", "trace", "trace_T", "cross", "cross_default", "cross_bcast"}
    if name in same:
        assert e.grad_fn.name() == t.grad_fn.name()
    else:
        assert e.grad_fn is not None


ADD_NAMES = [("addmm", lambda m, i, a, b: m.addmm(i, a, b), (2, 4), (2, 3), (3, 4)),
             ("addmv", lambda m, i, a, b: m.addmv(i, a, b), (2,), (2, 3), (3,)),
             ("baddbmm", lambda m, i, a, b: m.baddbmm(i, a, b), (2, 2, 4), (2, 2, 3), (2, 3, 4)),
             ("addbmm", lambda m, i, a, b: m.addbmm(i, a, b), (2, 4), (2, 2, 3), (2, 3, 4)),
             ("addr", lambda m, i, a, b: m.addr(i, a, b), (2, 3), (2,), (3,))]


@pytest.mark.parametrize("name,fn,si,sa,sb", ADD_NAMES, ids=[a[0] for a in ADD_NAMES])
def test_add_family_grad_fn_and_inplace(name, fn, si, sa, sb):
    i = rand(*si)
    e = fn(ember, to_ember(i, True), to_ember(rand(*sa), True), to_ember(rand(*sb)))
    t = fn(torch, to_torch(i, True), to_torch(rand(*sa), True), to_torch(rand(*sb)))
    assert e.grad_fn.name() == t.grad_fn.name()
    # in-place variant writes into input
    ie, it = to_ember(i), to_torch(i)
    args_e = (to_ember(rand(*sa, seed=1)), to_ember(rand(*sb, seed=2)))
    args_t = (to_torch(rand(*sa, seed=1)), to_torch(rand(*sb, seed=2)))
    re = getattr(ie, name + "_")(*args_e, beta=0.5, alpha=2.0)
    rt = getattr(it, name + "_")(*args_t, beta=0.5, alpha=2.0)
    assert re is ie
    assert_close(ie, rt)


def test_addmm_beta0_ignores_nan():
    i = np.full((2, 4), np.nan)
    check(lambda m, i, a, b: m.addmm(i, a, b, beta=0), None, i, rand(2, 3), rand(3, 4))
    r = ember.addmm(to_ember(i), to_ember(rand(2, 3)), to_ember(rand(3, 4)), beta=0)
    assert not np.isnan(r.numpy()).any()


def test_int_products():
    a = np.arange(6).reshape(2, 3)
    b = np.arange(12).reshape(3, 4)
    check(lambda m, a, b: m.mm(a, b), None, a, b)
    check(lambda m, a, b: m.addmm(b[0], a, b, alpha=2), None, a, b)
    check(lambda m, a: m.trace(a), None, b)
    check(lambda m, a: m.trace(a), None, b.astype("int32"))
    check(lambda m, a, b: m.dot(a[0], b[:, 0]), None, a, b)
    check(lambda m, a, b: m.einsum("ij,jk->ik", a, b), None, a, b)


INT_EINSUM = [(eq, n, dt) for eq, n in [("ij->", 1), ("ij->i", 1), ("ij->ji", 1), ("ii", 1),
                                        ("ii->i", 1), ("ij,jk->ik", 2), ("ij,ij->i", 2)]
              for dt in ["int32", "uint8", "bool"] if not (dt == "bool" and n == 2)]


@pytest.mark.parametrize("eq,n_ops,dt", INT_EINSUM)
def test_einsum_int_dtypes(eq, n_ops, dt):
    x = (np.arange(9).reshape(3, 3) % 2).astype(dt)
    check(lambda m, *ops: m.einsum(eq, *ops), None, *[x] * n_ops)


def test_half_matmul():
    check(lambda m, a, b: a @ b, None, rand(3, 4), rand(4, 2), dtypes=("float16",))
    check(lambda m, a, b: a @ b, None, rand(2, 3, 4), rand(4), dtypes=("float16",))


def test_bfloat16_matmul_keeps_dtype():
    a = ember.ones(2, 3, dtype=ember.bfloat16)
    assert (a @ a.t()).dtype == ember.bfloat16


# ---------------------------------------------------------------------------------------------
# einsum

EINSUM = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("ij,jk", (2, 3), (3, 4)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 4)),
    ("ii", (3, 3)),
    ("ii->i", (3, 3)),
    ("i,j->ij", (3,), (2,)),
    ("ij->ji", (2, 3)),
    ("ij->", (2, 3)),
    ("ij->j", (2, 3)),
    ("...ij,...jk->...ik", (2, 1, 2, 3), (5, 3, 4)),
    ("...ij->...ji", (2, 3)),
    ("b...i,i->b...", (2, 3, 4), (4,)),
    ("i,i", (3,), (3,)),
    ("ij,ij->ij", (1, 3), (2, 3)),
    ("ij,jk->ik", (2, 1), (3, 4)),
    ("iij->ij", (3, 3, 2)),
    ("iji->j", (2, 3, 2)),
    ("ii,i->i", (3, 3), (3,)),
    ("Ba,ab", (2, 3), (3, 5)),
    (" i j , j k -> i k ", (2, 3), (3, 4)),
    ("ijk,jl,kl->il", (2, 3, 4), (3, 5), (4, 5)),
    ("...ij,jk->ik", (4, 2, 3), (3, 5)),
    ("i->", (0,)),
    ("", ()),
]


@pytest.mark.parametrize("eq,shapes", [(e[0], e[1:]) for e in EINSUM], ids=[e[0] for e in EINSUM])
def test_einsum(eq, shapes):
    check(lambda m, *ops: m.einsum(eq, *ops), None, *[rand(*s, seed=i) for i, s in
                                                       enumerate(shapes)])


def test_einsum_list_and_sublist():
    check(lambda m, a, b: m.einsum("ij,jk->ik", [a, b]), None, rand(2, 3), rand(3, 4))
    check(lambda m, a, b: m.einsum(a, [0, 1], b, [1, 2], [0, 2]), None, rand(2, 3), rand(3, 4))
    check(lambda m, a, b: m.einsum(a, [Ellipsis, 0], b, [Ellipsis, 0]), None,
          rand(2, 3), rand(3))


def test_einsum_non_contiguous():
    check(lambda m, a, b: m.einsum("ij,jk->ik", a.t(), b[:, ::2]), None, rand(3, 2), rand(3, 8))


def test_einsum_result_does_not_alias():
    x = ember.ones(3, 3)
    y = ember.einsum("ij->ji", x)
    y.add_(1)
    assert float(x.sum()) == 9.0


@pytest.mark.parametrize("eq,shapes", [("ii->i", [(3, 3)]), ("ij,jk->ik", [(2, 3), (3, 2)]),
                                       ("i,j->ij", [(3,), (2,)]),
                                       ("iij,jk->ik", [(2, 2, 3), (3, 2)])])
def test_einsum_gradcheck(eq, shapes):
    arrs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    assert gradcheck(lambda *ts: ember.einsum(eq, *ts), *arrs)
    ts = [to_ember(a, True) for a in arrs]
    assert ember.autograd.gradgradcheck(lambda *x: ember.einsum(eq, *x), ts)


# ---------------------------------------------------------------------------------------------
# torch.linalg


def _well(n, seed=0, batch=()):
    """A well-conditioned matrix (or batch)."""
    return rand(*batch, n, n, seed=seed) + 4 * np.eye(n)


LINALG = [
    ("det", lambda m, a: m.linalg.det(a), [_well(3)]),
    ("det_batch", lambda m, a: m.det(a), [_well(3, batch=(2,))]),
    ("det_T", lambda m, a: a.mT.det(), [_well(3)]),
    ("slogdet", lambda m, a: m.linalg.slogdet(a), [_well(3) - 8 * np.eye(3)]),
    ("slogdet_old", lambda m, a: m.slogdet(a)[1], [_well(3, batch=(2,))]),
    ("logdet", lambda m, a: m.logdet(a), [_well(3)]),
    ("inv", lambda m, a: m.linalg.inv(a), [_well(3)]),
    ("inv_batch", lambda m, a: m.inverse(a.mT), [_well(3, batch=(2, 2))]),
    ("solve_mat", lambda m, a, b: m.linalg.solve(a, b), [_well(3), rand(3, 2)]),
    ("solve_vec", lambda m, a, b: m.linalg.solve(a, b), [_well(3), rand(3)]),
    ("solve_batch_vec", lambda m, a, b: m.linalg.solve(a, b), [_well(3, batch=(2,)), rand(2, 3)]),
    ("solve_bcast", lambda m, a, b: m.linalg.solve(a, b), [_well(3), rand(4, 3, 2)]),
    ("solve_bcast_A", lambda m, a, b: m.linalg.solve(a, b), [_well(3, batch=(4,)), rand(3, 2)]),
    ("solve_right", lambda m, a, b: m.linalg.solve(a, b, left=False), [_well(3), rand(2, 3)]),
    ("cholesky", lambda m, a: m.linalg.cholesky(a @ a.mT), [_well(3)]),
    ("cholesky_upper", lambda m, a: m.linalg.cholesky(a @ a.mT, upper=True), [_well(3)]),
    ("cholesky_old", lambda m, a: m.cholesky(a @ a.mT), [_well(3, batch=(2,))]),
    ("eigh_vals", lambda m, a: m.linalg.eigvalsh(a + a.mT), [rand(4, 4)]),
    ("eigh_U", lambda m, a: m.linalg.eigh(a, UPLO="U")[0], [rand(3, 3)]),
    ("svdvals", lambda m, a: m.linalg.svdvals(a), [rand(4, 3)]),
    ("svdvals_wide", lambda m, a: m.linalg.svdvals(a), [rand(2, 3, 5)]),
    ("norm_vec", lambda m, a: m.linalg.norm(a), [rand(3, 4)]),
    ("norm_fro", lambda m, a: m.linalg.norm(a, "fro"), [rand(3, 4)]),
    ("norm_nuc", lambda m, a: m.linalg.norm(a, "nuc"), [rand(3, 4)]),
    ("norm_2", lambda m, a: m.linalg.norm(a, 2), [rand(3, 4)]),
    ("norm_dim", lambda m, a: m.linalg.norm(a, dim=1, keepdim=True), [rand(3, 4)]),
    ("matrix_norm", lambda m, a: m.linalg.matrix_norm(a), [rand(2, 3, 4)]),
    ("matrix_norm_1", lambda m, a: m.linalg.matrix_norm(a, 1), [rand(2, 3, 4)]),
    ("matrix_norm_-1", lambda m, a: m.linalg.matrix_norm(a, -1), [rand(3, 4)]),
    ("matrix_norm_inf", lambda m, a: m.linalg.matrix_norm(a, float("inf")), [rand(3, 4)]),
    ("matrix_norm_-inf", lambda m, a: m.linalg.matrix_norm(a, -float("inf")), [rand(3, 4)]),
    ("matrix_norm_-2", lambda m, a: m.linalg.matrix_norm(a, -2), [rand(3, 4)]),
    ("matrix_norm_dims", lambda m, a: m.linalg.matrix_norm(a, "nuc", dim=(2, 0), keepdim=True),
     [rand(3, 2, 4)]),
    ("matrix_norm_keep", lambda m, a: m.linalg.matrix_norm(a, 1, dim=(0, 2), keepdim=True),
     [rand(3, 2, 4)]),
    ("vector_norm_2", lambda m, a: m.linalg.vector_norm(a, dim=(0, 2)), [rand(3, 2, 4)]),
    ("vector_norm_1", lambda m, a: m.linalg.vector_norm(a, 1, dim=-1), [rand(3, 4)]),
    ("vector_norm_inf", lambda m, a: m.linalg.vector_norm(a, float("inf")), [rand(3, 4)]),
    ("vector_norm_3", lambda m, a: m.linalg.vector_norm(a, 3, keepdim=True), [rand(3, 4)]),
    ("norm_vec_ord", lambda m, a: m.linalg.norm(a, 0.5), [rand(5)]),
    ("norm_3d", lambda m, a: m.linalg.norm(a, dim=(0, 2)), [rand(3, 2, 4)]),
    ("torch_norm", lambda m, a: m.norm(a), [rand(3, 4)]),
    ("torch_norm_dim", lambda m, a: a.norm(dim=-1), [rand(3, 4)]),
    ("torch_norm_nuc", lambda m, a: m.norm(a, p="nuc"), [rand(3, 4)]),
    ("multi_dot", lambda m, a, b, c: m.linalg.multi_dot([a, b, c]),
     [rand(3), rand(3, 5), rand(5, 2)]),
    ("multi_dot_4", lambda m, a, b, c, d: m.linalg.multi_dot([a, b, c, d]),
     [rand(8, 2), rand(2, 6), rand(6, 1), rand(1, 4)]),
    ("multi_dot_vv", lambda m, a, b: m.linalg.multi_dot([a, b]), [rand(3), rand(3)]),
    ("matrix_power_3", lambda m, a: m.linalg.matrix_power(a, 3), [rand(3, 3)]),
    ("matrix_power_5", lambda m, a: m.linalg.matrix_power(a, 5), [rand(2, 3, 3) / 2]),
    ("matrix_power_-2", lambda m, a: m.linalg.matrix_power(a, -2), [_well(3)]),
    ("matrix_power_1", lambda m, a: m.linalg.matrix_power(a, 1), [rand(3, 3)]),
    ("matrix_power_0", lambda m, a: m.linalg.matrix_power(a, 0) + a, [rand(3, 3)]),
    ("vecdot", lambda m, a, b: m.linalg.vecdot(a, b), [rand(2, 3), rand(3)]),
    ("linalg_matmul", lambda m, a, b: m.linalg.matmul(a, b), [rand(2, 3), rand(3)]),
    ("method_inverse", lambda m, a: a.inverse(), [_well(3)]),
    ("method_slogdet", lambda m, a: a.slogdet(), [_well(3)]),
    ("method_logdet", lambda m, a: a.logdet(), [_well(3)]),
    ("method_cholesky", lambda m, a: (a @ a.mT).cholesky(upper=True), [_well(3)]),
    ("method_qr", lambda m, a: a.qr(), [rand(4, 3)]),
    ("method_svd_S", lambda m, a: a.svd()[1], [rand(4, 3)]),
    ("logdet_negative", lambda m, a: m.logdet(a), [np.diag([1.0, -2.0, 3.0])]),
]


@pytest.mark.parametrize("name,fn,arrs", LINALG, ids=[x[0] for x in LINALG])
def test_linalg(name, fn, arrs):
    check(fn, None, *arrs)


@pytest.mark.parametrize("name,fn,arrs", LINALG[:20], ids=[x[0] for x in LINALG[:20]])
def test_linalg_grad_fn(name, fn, arrs):
    e = fn(ember, *[to_ember(a, True) for a in arrs])
    t = fn(torch, *[to_torch(a, True) for a in arrs])
    e, t = (e[1], t[1]) if isinstance(t, tuple) else (e, t)
    if name != "logdet":
        assert e.grad_fn.name() == t.grad_fn.name()


def test_det_singular_gradient():
    # torch's first-order det backward returns 0 for an exactly singular matrix; its
    # create_graph path (and ember) give the true gradient, the adjugate
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, 1.0, 7.0]])
    for arr in (a, np.zeros((2, 2)), np.stack([a, a + np.eye(3)])):
        te = to_ember(arr, True)
        tt = to_torch(arr, True)
        ge, = ember.autograd.grad(ember.linalg.det(te).sum(), te)
        gt, = torch.autograd.grad(torch.linalg.det(tt).sum(), tt, create_graph=True)
        assert_close(ge, gt)
    assert gradcheck(lambda x: ember.linalg.det(x), a)


# decompositions with sign/ordering freedom: compare invariants and their gradients


def test_qr():
    check(lambda m, a: m.linalg.qr(a), None, rand(4, 3))
    check(lambda m, a: m.linalg.qr(a), None, rand(3, 3))
    check(lambda m, a: m.linalg.qr(a), None, rand(2, 4, 2))
    check(lambda m, a: m.linalg.qr(a), None, rand(3, 5), dtypes=("float64",))
    check(lambda m, a: m.linalg.qr(a, mode="complete"), None, rand(3, 5), dtypes=("float64",))
    check(lambda m, a: m.linalg.qr(a, mode="r")[1], None, rand(4, 3), grad=False)
    check(lambda m, a: m.qr(a), None, rand(4, 3), dtypes=("float64",))
    r = ember.linalg.qr(to_ember(rand(4, 3), True))
    assert r.Q.grad_fn.name() == "LinalgQrBackward0"


def _eigh_invariants(m, a):
    """Eigenvalues and sign-free functions of the eigenvectors (LAPACK builds may flip signs)."""
    w, v = m.linalg.eigh(a)
    wts = m.tensor([1.0, -2.0, 0.5, 3.0][:v.shape[-1]], dtype=v.dtype)
    return w, v * v, (v * wts) @ v.mT


def _svd_invariants(m, a, full=False):
    u, s, vh = m.linalg.svd(a, full_matrices=full)
    k = s.shape[-1]
    if full:  # only the first k singular vectors are determined
        u = u @ m.tensor(np.eye(u.shape[-1], k), dtype=u.dtype)
        vh = m.tensor(np.eye(k, vh.shape[-1]), dtype=vh.dtype) @ vh
    wts = m.tensor([1.0, -2.0, 0.5, 3.0][:k], dtype=u.dtype)
    return s, u * u, vh * vh, (u * wts) @ vh


@pytest.mark.parametrize("shape", [(4, 4), (3, 3), (2, 3, 3)])
def test_eigh(shape):
    check(lambda m, a: _eigh_invariants(m, a + a.mT), None, rand(*shape, seed=12))
    check(lambda m, a: m.linalg.eigvalsh(a, UPLO="U"), None, rand(*shape))
    v = ember.linalg.eigh(to_ember(rand(*shape), True)).eigenvectors
    assert v.grad_fn.name() == "LinalgEighBackward0"


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (3, 3), (2, 4, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_svd(shape, full):
    # seeded: an unseeded draw is now and then nearly degenerate, and the float32 gradient
    # (through 1/(s_i^2 - s_j^2)) of two LAPACKs then disagrees past the tolerance
    a = rand(*shape, seed=11)
    check(lambda m, a: _svd_invariants(m, a, full), None, a)
    check(lambda m, a: m.linalg.svdvals(a), None, a)


def test_svd_old_api_and_reconstruction():
    a = rand(4, 3, seed=7)
    u, s, v = ember.svd(to_ember(a))
    assert tuple(u.shape) == (4, 3) and tuple(v.shape) == (3, 3)
    np.testing.assert_allclose((u.numpy() * s.numpy()) @ v.numpy().T, a, atol=1e-12)
    u, s, vh = ember.linalg.svd(to_ember(a))
    assert tuple(u.shape) == (4, 4) and tuple(vh.shape) == (3, 3)
    np.testing.assert_allclose((u.numpy()[:, :3] * s.numpy()) @ vh.numpy(), a, atol=1e-12)
    assert s.grad_fn is None
    assert ember.linalg.svd(to_ember(a, True)).S.grad_fn.name() == "LinalgSvdBackward0"


@pytest.mark.parametrize("fn,arrs", [
    (lambda a: ember.linalg.det(a), [_well(3)]),
    (lambda a: ember.linalg.inv(a), [_well(3, batch=(2,))]),
    (lambda a, b: ember.linalg.solve(a, b), [_well(3), rand(2, 3, 2)]),
    (lambda a: ember.linalg.cholesky(a @ a.mT), [_well(3)]),
    (lambda a: ember.linalg.slogdet(a)[1], [_well(3)]),
    (lambda a: ember.linalg.eigh(a + a.mT), [rand(3, 3)]),
    (lambda a: ember.linalg.svd(a, full_matrices=False), [rand(4, 3)]),
    (lambda a: ember.linalg.qr(a), [rand(4, 3)]),
    (lambda a: ember.linalg.qr(a), [rand(2, 4)]),
    (lambda a: ember.linalg.matrix_norm(a, 1), [rand(3, 4)]),
    (lambda a, b, c: ember.addmm(a, b, c, beta=0.5, alpha=2), [rand(3), rand(2, 4), rand(4, 3)]),
    (lambda a, b: ember.tensordot(a, b, dims=([0, 2], [2, 1])), [rand(2, 3, 4), rand(5, 4, 2)]),
    (lambda a, b: ember.linalg.cross(a, b), [rand(2, 3), rand(2, 3)]),
])
def test_gradcheck(fn, arrs):
    assert gradcheck(fn, *arrs)


def test_gradgradcheck_linalg():
    a = to_ember(_well(3), True)
    b = to_ember(rand(3, 2), True)
    assert ember.autograd.gradgradcheck(lambda x: ember.linalg.cholesky(x @ x.mT), [a])
    assert ember.autograd.gradgradcheck(lambda x: ember.linalg.eigh(x + x.mT), [a])
    assert ember.autograd.gradgradcheck(lambda x: ember.linalg.qr(x), [a])
    assert ember.autograd.gradgradcheck(lambda x, y: ember.linalg.solve(x, y, left=False),
                                        [a, to_ember(rand(2, 3), True)])
    assert ember.autograd.gradgradcheck(lambda x: ember.linalg.det(x), [a])
    assert ember.autograd.gradgradcheck(lambda x, y: ember.linalg.solve(x, y), [a, b])
    assert ember.autograd.gradgradcheck(lambda x: ember.linalg.inv(x), [a])


def test_inv_ex_and_cholesky_ex():
    s = np.array([[1.0, 2.0], [2.0, 4.0]])
    for m in (ember, torch):
        inv, info = m.linalg.inv_ex(to_ember(s) if m is ember else to_torch(s))
        assert int(info) == 2
        low, info = m.linalg.cholesky_ex(to_ember(-s) if m is ember else to_torch(-s))
        assert int(info) == 1
    inv, info = ember.linalg.inv_ex(to_ember(_well(3)))
    assert int(info) == 0 and info.dtype == ember.int32
    assert_close(inv, torch.linalg.inv(to_torch(_well(3))))


# ---------------------------------------------------------------------------------------------
# bad inputs: same exception type as torch, and the same message where marked

def _r(*s):
    return rand(*s)


SING = np.array([[1.0, 2.0], [2.0, 4.0]])

ERRORS = [
    # (id, fn(m, *tensors), arrays, compare message)
    ("matmul_0d", lambda m, a, b: m.matmul(a, b), [_r(), _r(3)], True),
    ("dot_size", lambda m, a, b: a @ b, [_r(3), _r(4)], True),
    ("mv_size", lambda m, a, b: a @ b, [_r(2, 3), _r(4)], True),
    ("vm_size", lambda m, a, b: a @ b, [_r(3), _r(4, 5)], True),
    ("mm_size", lambda m, a, b: a @ b, [_r(2, 3), _r(4, 5)], True),
    ("bm_size", lambda m, a, b: a @ b, [_r(5, 2, 3), _r(4)], True),
    ("vb_size", lambda m, a, b: a @ b, [_r(4), _r(5, 3, 4)], True),
    ("mb_size", lambda m, a, b: a @ b, [_r(2, 3), _r(5, 4, 4)], True),
    ("bmat_size", lambda m, a, b: a @ b, [_r(5, 2, 3), _r(5, 3)], True),
    ("bb_size", lambda m, a, b: a @ b, [_r(5, 2, 3), _r(5, 4, 4)], True),
    ("bb_bcast_size", lambda m, a, b: a @ b, [_r(2, 1, 3, 4), _r(5, 5, 6)], True),
    ("bb_batch", lambda m, a, b: a @ b, [_r(5, 2, 3), _r(4, 3, 4)], True),
    ("mm_dtype", lambda m, a, b: a @ b.double(), [_r(2, 3), _r(3, 4)], True),
    ("mm_dtype_int", lambda m, a, b: a.int() @ b.long(), [_r(2, 3), _r(3, 4)], True),
    ("dot_dtype", lambda m, a, b: a @ b.double(), [_r(3), _r(3)], True),
    ("mv_dtype", lambda m, a, b: a @ b.double(), [_r(2, 3), _r(3)], True),
    ("bmm_dtype", lambda m, a, b: a @ b.double(), [_r(2, 2, 3), _r(2, 3, 4)], True),
    ("bool_mm", lambda m, a, b: (a > 0) @ (b > 0), [_r(2, 3), _r(3, 4)], True),
    ("bool_dot", lambda m, a, b: (a > 0) @ (b > 0), [_r(3), _r(3)], True),
    ("matmul_scalar", lambda m, a: m.matmul(a, 2), [_r(3)], True),
    ("mm_1d", lambda m, a, b: m.mm(a, b), [_r(3), _r(3, 4)], True),
    ("mm_1d_b", lambda m, a, b: m.mm(a, b), [_r(2, 3), _r(3)], True),
    ("mm_size2", lambda m, a, b: m.mm(a, b), [_r(2, 3), _r(4, 3)], True),
    ("bmm_2d", lambda m, a, b: m.bmm(a, b), [_r(2, 3), _r(2, 3, 4)], True),
    ("bmm_2d_b", lambda m, a, b: m.bmm(a, b), [_r(2, 2, 3), _r(2, 3)], True),
    ("bmm_batch", lambda m, a, b: m.bmm(a, b), [_r(2, 2, 3), _r(3, 3, 4)], True),
    ("bmm_inner", lambda m, a, b: m.bmm(a, b), [_r(2, 2, 3), _r(2, 4, 4)], True),
    ("mv_1d", lambda m, a, b: m.mv(a, b), [_r(3), _r(3)], True),
    ("mv_2d", lambda m, a, b: m.mv(a, b), [_r(2, 3), _r(3, 1)], True),
    ("dot_2d", lambda m, a, b: m.dot(a, b), [_r(2, 3), _r(2, 3)], True),
    ("outer_2d", lambda m, a, b: m.outer(a, b), [_r(2, 2), _r(3)], True),
    ("inner_size", lambda m, a, b: m.inner(a, b), [_r(2, 3), _r(4, 4)], True),
    ("trace_1d", lambda m, a: m.trace(a), [_r(3)], True),
    ("trace_bool", lambda m, a: m.trace(a > 0), [_r(3, 3)], True),
    ("cross_len", lambda m, a, b: m.linalg.cross(a, b), [_r(3, 4), _r(3, 4)], True),
    ("cross_ndim", lambda m, a, b: m.linalg.cross(a, b), [_r(3), _r(2, 3)], True),
    ("cross_bcast", lambda m, a, b: m.linalg.cross(a, b), [_r(2, 3), _r(4, 3)], True),
    ("tensordot_neg", lambda m, a, b: m.tensordot(a, b, dims=-1), [_r(2, 3), _r(3, 2)], True),
    ("tensordot_len", lambda m, a, b: m.tensordot(a, b, dims=([1], [0, 1])),
     [_r(2, 3), _r(3, 2)], True),
    ("tensordot_size", lambda m, a, b: m.tensordot(a, b, dims=([1, 2], [0, 1])),
     [_r(2, 3, 4), _r(4, 3, 5)], True),
    ("addmm_1d", lambda m, i, a, b: m.addmm(i, a, b), [_r(3), _r(3), _r(3, 3)], True),
    ("addmm_size", lambda m, i, a, b: m.addmm(i, a, b), [_r(2, 3), _r(2, 3), _r(4, 3)], True),
    ("addmm_expand", lambda m, i, a, b: m.addmm(i, a, b), [_r(4, 3), _r(2, 3), _r(3, 3)], True),
    ("addmm_dtype", lambda m, i, a, b: m.addmm(i, a, b.double()), [_r(3), _r(2, 3), _r(3, 3)],
     True),
    ("addmm_dtype_in", lambda m, i, a, b: m.addmm(i.double(), a, b), [_r(3), _r(2, 3), _r(3, 3)],
     True),
    ("addmv_size", lambda m, i, a, b: m.addmv(i, a, b), [_r(3), _r(2, 3), _r(3)], True),
    ("addmv_dims", lambda m, i, a, b: m.addmv(i, a, b), [_r(2), _r(2, 3), _r(3, 1)], True),
    ("baddbmm_2d", lambda m, i, a, b: m.baddbmm(i, a, b), [_r(3), _r(2, 3), _r(2, 4, 3)], True),
    ("baddbmm_batch", lambda m, i, a, b: m.baddbmm(i, a, b), [_r(3), _r(2, 2, 3), _r(3, 3, 3)],
     True),
    ("baddbmm_expand", lambda m, i, a, b: m.baddbmm(i, a, b),
     [_r(5, 2, 3), _r(2, 2, 3), _r(2, 3, 3)], True),
    ("addbmm_batch", lambda m, i, a, b: m.addbmm(i, a, b), [_r(3), _r(2, 2, 3), _r(3, 3, 3)],
     True),
    ("addbmm_inner", lambda m, i, a, b: m.addbmm(i, a, b), [_r(3), _r(2, 2, 3), _r(2, 4, 3)],
     True),
    ("addr_2d", lambda m, i, a, b: m.addr(i, a, b), [_r(3), _r(2, 1), _r(3)], True),
    ("addr_expand", lambda m, i, a, b: m.addr(i, a, b), [_r(3, 3), _r(2), _r(3)], True),
    ("einsum_dtype", lambda m, a, b: m.einsum("ij,jk->ik", a, b.double()), [_r(2, 3), _r(3, 4)],
     True),
    ("einsum_few", lambda m, a: m.einsum("ij,jk->ik", a), [_r(2, 3)], True),
    ("einsum_many", lambda m, a: m.einsum("ij", a, a), [_r(2, 3)], True),
    ("einsum_out_missing", lambda m, a: m.einsum("ij->ik", a), [_r(2, 3)], True),
    ("einsum_out_twice", lambda m, a: m.einsum("ij->ii", a), [_r(2, 3)], True),
    ("einsum_ndim", lambda m, a: m.einsum("ij", a), [_r(2, 3, 4)], True),
    ("einsum_ndim_ell", lambda m, a: m.einsum("ijk...", a), [_r(2, 3)], True),
    ("einsum_repeat", lambda m, a: m.einsum("ii", a), [_r(2, 3)], True),
    ("einsum_char", lambda m, a: m.einsum("i1", a), [_r(2, 3)], True),
    ("einsum_arrow", lambda m, a: m.einsum("i,i->i->", a, a), [_r(3)], True),
    ("einsum_dot", lambda m, a: m.einsum("..i->i", a), [_r(3)], True),
    ("einsum_bcast", lambda m, a, b: m.einsum("ij,ij->ij", a, b), [_r(4, 3), _r(2, 3)], True),
    ("einsum_bcast2", lambda m, a, b: m.einsum("ij,jk->ik", a, b), [_r(2, 3), _r(4, 4)], True),
    ("einsum_ell_bcast", lambda m, a, b: m.einsum("...i,...i", a, b), [_r(4, 3), _r(5, 3)], True),
    ("einsum_not_tensor", lambda m, a: m.einsum("ij,jk->ik", a, 5), [_r(2, 3)], True),
    ("det_rect", lambda m, a: m.linalg.det(a), [_r(2, 3)], True),
    ("det_1d", lambda m, a: m.linalg.det(a), [_r(3)], True),
    ("det_int", lambda m, a: m.linalg.det(a.long()), [_r(3, 3)], True),
    ("inv_rect", lambda m, a: m.linalg.inv(a), [_r(2, 3)], True),
    ("inv_int", lambda m, a: m.linalg.inv(a.long()), [_r(3, 3)], True),
    ("inv_half", lambda m, a: m.linalg.inv(a.half()), [_r(3, 3)], True),
    ("inv_singular", lambda m, a: m.linalg.inv(a), [SING], True),
    ("inv_singular_batch", lambda m, a: m.linalg.inv(a), [np.stack([np.eye(2), SING])], True),
    ("solve_singular", lambda m, a, b: m.linalg.solve(a, b), [SING, _r(2)], True),
    ("solve_singular_b", lambda m, a, b: m.linalg.solve(a, b), [np.stack([SING]), _r(1, 2, 2)],
     True),
    ("solve_shape", lambda m, a, b: m.linalg.solve(a, b), [_r(2, 3, 3), _r(4, 3)], True),
    ("solve_shape_vec", lambda m, a, b: m.linalg.solve(a, b), [_r(3, 3), _r(4)], True),
    ("solve_right_vec", lambda m, a, b: m.linalg.solve(a, b, left=False), [_r(3, 3), _r(3)],
     True),
    ("solve_right_shape", lambda m, a, b: m.linalg.solve(a, b, left=False),
     [_r(3, 3), _r(3, 2)], True),
    ("solve_bcast", lambda m, a, b: m.linalg.solve(a, b), [_r(2, 3, 3), _r(4, 3, 2)], True),
    ("solve_dtype", lambda m, a, b: m.linalg.solve(a, b.double()), [_r(3, 3), _r(3, 2)], True),
    ("cholesky_npd", lambda m, a: m.linalg.cholesky(a), [-np.eye(3)], True),
    ("cholesky_npd_batch", lambda m, a: m.linalg.cholesky(a),
     [np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0])])], True),
    ("eigh_uplo", lambda m, a: m.linalg.eigh(a, UPLO="X"), [_r(3, 3)], True),
    ("qr_mode", lambda m, a: m.linalg.qr(a, mode="x"), [_r(3, 3)], True),
    ("qr_r_backward", lambda m, a: m.linalg.qr(a.requires_grad_(), mode="r")[1].sum().backward(),
     [_r(3, 3)], False),
    ("matrix_norm_ord", lambda m, a: m.linalg.matrix_norm(a, 3), [_r(3, 2)], True),
    ("matrix_norm_1d", lambda m, a: m.linalg.matrix_norm(a), [_r(3)], True),
    ("matrix_norm_dim", lambda m, a: m.linalg.matrix_norm(a, dim=0), [_r(2, 3)], False),
    ("matrix_norm_same", lambda m, a: m.linalg.matrix_norm(a, dim=(0, 0)), [_r(2, 3)], True),
    ("norm_3d_ord", lambda m, a: m.linalg.norm(a, 1), [_r(3, 2, 2)], True),
    ("multi_dot_one", lambda m, a: m.linalg.multi_dot([a]), [_r(3, 2)], True),
    ("multi_dot_shape", lambda m, a, b: m.linalg.multi_dot([a, b]), [_r(3, 2), _r(3, 4)], True),
    ("multi_dot_3d", lambda m, a, b: m.linalg.multi_dot([a, b]), [_r(3, 2, 2), _r(2, 4)], True),
    ("multi_dot_mid", lambda m, a, b, c: m.linalg.multi_dot([a, b, c]),
     [_r(3, 2), _r(2), _r(2, 4)], True),
    ("multi_dot_dtype", lambda m, a, b: m.linalg.multi_dot([a, b.double()]),
     [_r(3, 2), _r(2, 4)], True),
    ("matrix_power_rect", lambda m, a: m.linalg.matrix_power(a, 2), [_r(2, 3)], True),
]


@pytest.mark.parametrize("name,fn,arrs,same_msg", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(name, fn, arrs, same_msg):
    with pytest.raises(Exception) as te:
        fn(torch, *[to_torch(a.astype(np.float32)) for a in arrs])
    with pytest.raises(Exception) as ee:
        fn(ember, *[to_ember(a.astype(np.float32)) for a in arrs])
    tt = type(te.value)
    expected = RuntimeError if tt.__name__ == "_LinAlgError" else tt
    assert isinstance(ee.value, expected), f"{type(ee.value)} vs {tt}: {ee.value}"
    if tt.__name__ == "_LinAlgError":
        assert isinstance(ee.value, ember.linalg.LinAlgError)
    if same_msg:
        assert str(ee.value) == str(te.value)


def test_linalg_error_type():
    assert issubclass(ember.linalg.LinAlgError, RuntimeError)
    with pytest.raises(ember.linalg.LinAlgError):
        ember.linalg.inv(to_ember(SING))
    with pytest.raises(ember.linalg.LinAlgError):
        ember.linalg.cholesky(to_ember(-np.eye(2)))
    with pytest.raises(ember.linalg.LinAlgError):
        ember.linalg.solve(to_ember(SING), to_ember(rand(2)))
