"""Reductions, scans and selections against PyTorch: forward, gradients, dtypes, errors."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.ops import reduce as R
from opcheck import check, rand, gradcheck, assert_close, to_ember, to_torch

X3 = rand(3, 4, 5, seed=1)
# rows with repeated extremes: ties decide indices and how gradients are shared
TIES = np.array([[1., 3, 3, 0, 3], [2, 2, 0, 2, -1], [5, 5, 5, 5, 5], [-1, 4, -1, 4, 0]])
ONE_ZERO = np.array([[1.5, 0., 2., -0.5], [0.7, 1.2, -1.1, 2.]])
MANY_ZEROS = np.array([[1.5, 0., 2., 0.], [0., 1.2, 0., 0.], [0.3, -2., 0.5, 1.1]])
ALL_NEG_INF = np.array([[-math.inf, -math.inf, -math.inf], [0.5, -1., 2.]])

DIMS = [None, 0, -1, (0, 2), [-1, 1], ()]


def _fn(m, name):
    # ember.norm is also defined by the linalg family; test this family's own norm here
    return R.norm if m is ember and name == "norm" else getattr(m, name)


def _call(m, name, x, dim, keepdim, **kw):
    fn = _fn(m, name)
    if dim is None:
        return fn(x, **kw) if not keepdim else fn(x, dim=None, keepdim=True, **kw)
    return fn(x, dim=dim, keepdim=keepdim, **kw)


# ---- dim-reductions over every dim form ------------------------------------------------------

DIM_REDUCERS = ["sum", "nansum", "mean", "nanmean", "amax", "amin", "var", "std", "norm",
                "logsumexp"]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", DIM_REDUCERS)
def test_dim_reductions(name, dim, keepdim):
    if name == "logsumexp" and dim is None:
        pytest.raises(TypeError, ember.logsumexp, ember.zeros(2), None)
        return
    if name == "logsumexp" and dim == ():
        return  # torch fails on logsumexp(dim=()) ("output with shape [] doesn't match")
    # torch's var/std backward treats dim=() as "no dims" (N = 1, an inf gradient) while its
    # forward reduces over all dims; ember reduces over all dims in both
    grad = not (name in ("var", "std") and dim == ())
    check(lambda m, x: _call(m, name, x, dim, keepdim), None, X3, grad=grad)


@pytest.mark.parametrize("name", DIM_REDUCERS + ["prod"])
def test_reduction_non_contiguous(name):
    dim = 1 if name == "prod" else (0, 1)
    check(lambda m, x: _fn(m, name)(x.transpose(0, 2), dim=dim), None, X3)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var", "norm", "prod", "nansum",
                                  "logsumexp", "std"])
@pytest.mark.parametrize("shape,dim", [((), None), ((), 0), ((), -1), ((1,), 0), ((3, 1), 1),
                                       ((1, 1), (0, 1))], ids=str)
def test_reduction_small_shapes(name, shape, dim):
    if name == "prod" and isinstance(dim, tuple):
        dim = 0
    if name == "logsumexp" and dim is None:
        dim = 0 if not shape else -1
    warnings.simplefilter("ignore", UserWarning)  # var/std of one element: dof <= 0 as torch
    check(lambda m, x: _call(m, name, x, dim, False), None, np.asarray(rand(*shape, seed=3)))


def test_sum_mean_dtype_argument():
    check(lambda m, x: m.sum(x, 1, dtype=m.float64), None, X3, dtypes=("float32",))
    check(lambda m, x: m.mean(x, (0, 1), True, dtype=m.float64), None, X3, dtypes=("float32",))
    check(lambda m, x: x.sum(dtype=m.float32) * 2, None, X3, dtypes=("float64",))
    check(lambda m, x: m.nansum(x, 0, dtype=m.float64), None, X3, dtypes=("float32",))


def test_grad_fn_names():
    x = ember.tensor(X3, requires_grad=True)
    t = torch.tensor(X3, requires_grad=True)
    calls = [lambda m, x: x.sum(), lambda m, x: x.sum(1), lambda m, x: x.mean(),
             lambda m, x: x.mean(1), lambda m, x: x.prod(), lambda m, x: x.prod(1),
             lambda m, x: x.max(), lambda m, x: x.max(1)[0], lambda m, x: x.amin(1),
             lambda m, x: x.var(), lambda m, x: m.var_mean(x)[0], lambda m, x: m.std_mean(x)[1],
             lambda m, x: x.norm(), lambda m, x: x.logsumexp(0), lambda m, x: x.cumsum(0),
             lambda m, x: x.cumprod(0), lambda m, x: x.topk(2)[0], lambda m, x: x.sort()[0],
             lambda m, x: x.median(), lambda m, x: x.median(0)[0], lambda m, x: x.nansum(),
             lambda m, x: x.nanmean(), lambda m, x: x.kthvalue(1)[0], lambda m, x: x.cummax(0)[0],
             lambda m, x: x.mode(0)[0], lambda m, x: m.aminmax(x)[0], lambda m, x: x.std(),
             lambda m, x: x.logcumsumexp(1), lambda m, x: x.msort(),
             lambda m, x: x.nanmedian(0)[0]]
    for fn in calls:
        assert fn(ember, x).grad_fn.name() == fn(torch, t).grad_fn.name()


# ---- sum / mean / prod dtypes and zeros --------------------------------------------------------

INT_CASES = [
    ("sum_int32", lambda m, x: m.sum(x.to(m.int32))),
    ("sum_bool", lambda m, x: m.sum(x > 0, 0)),
    ("sum_uint8", lambda m, x: (x > 0).to(m.uint8).sum(1)),
    ("sum_int8_dtype", lambda m, x: (x > 0).to(m.int8).sum(dtype=m.int8)),
    ("sum_int_to_float", lambda m, x: x.to(m.int32).sum(0, dtype=m.float32)),
    ("nansum_int", lambda m, x: m.nansum(x.to(m.int16))),
    ("mean_int_dtype", lambda m, x: x.to(m.int64).mean(dtype=m.float64)),
    ("prod_int32", lambda m, x: x.to(m.int32).prod(1)),
    ("prod_bool", lambda m, x: (x > -1).prod()),
    ("prod_int_dtype", lambda m, x: x.to(m.int64).prod(0, dtype=m.float32)),
    ("cumsum_int32", lambda m, x: x.to(m.int32).cumsum(0)),
    ("cumsum_bool", lambda m, x: (x > 0).cumsum(1)),
    ("cumsum_dtype", lambda m, x: x.to(m.int64).cumsum(0, dtype=m.float64)),
    ("cumprod_int32", lambda m, x: x.to(m.int32).cumprod(1)),
    ("amax_int", lambda m, x: x.to(m.int32).amax(1)),
    ("max_int", lambda m, x: x.to(m.int16).max()),
    ("max_int_dim", lambda m, x: x.to(m.int32).max(0)),
    ("max_bool", lambda m, x: (x > 0).max()),
    ("min_bool_dim", lambda m, x: (x > 0).min(1)),
    ("argmax_int", lambda m, x: x.to(m.int32).argmax(1)),
    ("logsumexp_int", lambda m, x: x.to(m.int64).logsumexp(1)),
    ("logsumexp_bool", lambda m, x: (x > 0).logsumexp(0)),
    ("all_float", lambda m, x: x.all(1)),
    ("any_uint8", lambda m, x: (x > 0).to(m.uint8).any(0)),
    ("all_uint8", lambda m, x: (x > 0).to(m.uint8).all()),
    ("count_nonzero_bool", lambda m, x: (x > 0).count_nonzero(0)),
    ("median_int", lambda m, x: (x * 3).to(m.int16).median()),
    ("median_int_dim", lambda m, x: (x * 3).to(m.int64).median(1)),
    ("kthvalue_int", lambda m, x: (x * 1000).to(m.int16).kthvalue(2)),
    ("sort_bool", lambda m, x: (x > 0).sort(1)),
    ("topk_int", lambda m, x: (x * 1000).to(m.int32).topk(2, 0)),
    ("cummax_bool", lambda m, x: (x > 0).cummax(1)),
    ("cummin_int", lambda m, x: (x * 3).to(m.int32).cummin(0)),
    ("unique_int", lambda m, x: m.unique((x * 2).to(m.int64), return_counts=True)),
]


@pytest.mark.parametrize("fn", [c[1] for c in INT_CASES], ids=[c[0] for c in INT_CASES])
def test_integer_and_bool_inputs(fn):
    check(fn, None, rand(4, 5, seed=7), grad=False)


PROD_CASES = [
    ("all", lambda m, x: x.prod()),
    ("dim1", lambda m, x: x.prod(1)),
    ("dim0_keep", lambda m, x: m.prod(x, 0, keepdim=True)),
    ("dim-1", lambda m, x: x.prod(-1)),
    ("nc", lambda m, x: x.t().prod(0)),
]


@pytest.mark.parametrize("data", [X3[0], ONE_ZERO, MANY_ZEROS, np.zeros((2, 3))],
                         ids=["nozero", "one_zero", "many_zeros", "all_zero"])
@pytest.mark.parametrize("fn", [c[1] for c in PROD_CASES], ids=[c[0] for c in PROD_CASES])
def test_prod_with_zeros(fn, data):
    check(fn, None, data)


def _double_backward(fn, data, dtype="float64"):
    """Compare d/dx <grad(fn), v> between ember and torch (create_graph=True)."""
    out = {}
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        x = conv(data.astype(dtype), True)
        y = fn(m, x)
        gy = conv(np.random.default_rng(1).standard_normal(tuple(y.shape)))
        (gx,) = m.autograd.grad(y, x, gy, create_graph=True)
        v = conv(np.random.default_rng(2).standard_normal(data.shape))
        if gx.requires_grad:  # a gradient linear in the upstream one has no graph to x
            (ggx,) = m.autograd.grad((gx * v).sum(), x, allow_unused=True)
        ggx = m.zeros_like(x) if not gx.requires_grad or ggx is None else ggx
        out[m] = (gx, ggx)
    assert_close(out[ember][0], out[torch][0], dtype, "first derivative")
    assert_close(out[ember][1], out[torch][1], dtype, "second derivative")


@pytest.mark.parametrize("data", [ONE_ZERO, MANY_ZEROS, X3[1]], ids=["one", "many", "none"])
@pytest.mark.parametrize("fn", [lambda m, x: x.prod(1), lambda m, x: x.prod(),
                                lambda m, x: x.cumprod(1), lambda m, x: x.cumprod(0)],
                         ids=["prod1", "prod", "cumprod1", "cumprod0"])
def test_prod_cumprod_double_backward_with_zeros(fn, data):
    _double_backward(fn, data)


@pytest.mark.parametrize("fn", [
    lambda m, x: x.var(1), lambda m, x: x.std(0), lambda m, x: x.logsumexp(1),
    lambda m, x: _fn(m, "norm")(x, 3, 1), lambda m, x: _fn(m, "norm")(x, 1.5),
    lambda m, x: _fn(m, "norm")(x, 0.5, 0), lambda m, x: _fn(m, "norm")(x, dim=1),
    lambda m, x: x.max(1)[0], lambda m, x: x.amax(0),
    lambda m, x: x.topk(2)[0], lambda m, x: x.sort(0)[0], lambda m, x: x.cumsum(1),
    lambda m, x: m.std_mean(x, 1)[0], lambda m, x: x.logcumsumexp(1)])
def test_double_backward(fn):
    _double_backward(fn, rand(3, 4, seed=11))


def test_mean_error_names_dtype():
    with pytest.raises(RuntimeError, match="Got: Long"):
        ember.arange(6).mean()
    with pytest.raises(RuntimeError, match="Got: Bool"):
        ember.tensor([True]).mean()
    with pytest.raises(RuntimeError, match="Optional dtype .* Got: Long"):
        ember.ones(3).mean(dtype=ember.int64)


def test_nan_reductions():
    data = X3.copy()
    data[0, 1, 2] = data[2, 0, 0] = data[1, 3, 4] = np.nan
    data[2, :, 3] = np.nan
    for dim in (None, 0, (1, 2)):
        check(lambda m, x: m.nansum(x, dim), None, data)
        check(lambda m, x: m.nanmean(x, dim), None, data)
        check(lambda m, x: _call(m, "amax", x, dim, False), None, data, grad=False)
    check(lambda m, x: x.sum(1), None, data)
    check(lambda m, x: x.max(), None, data)
    check(lambda m, x: x.max(2), None, data)
    check(lambda m, x: x.min(0), None, data)
    check(lambda m, x: x.median(), None, data)
    check(lambda m, x: x.median(2), None, data)
    check(lambda m, x: x.nanmedian(), None, data)
    check(lambda m, x: x.nanmedian(2), None, data)
    # an all-NaN slice: the value matches (NaN); torch's index there comes from its quickselect
    assert_close(ember.tensor(data).nanmedian(1).values, torch.tensor(data).nanmedian(1).values)
    check(lambda m, x: x.sort(2, descending=True), None, data)
    check(lambda m, x: x.sort(2), None, data)
    check(lambda m, x: x.cummax(2), None, data)
    check(lambda m, x: x.cummin(1), None, data)


# ---- var / std ---------------------------------------------------------------------------------

VAR_CASES = [
    ("default", lambda m, f, x: f(x)),
    ("dim", lambda m, f, x: f(x, 1)),
    ("unbiased_pos", lambda m, f, x: f(x, 1, False)),
    ("unbiased_keep_pos", lambda m, f, x: f(x, (0, 2), True, True)),
    ("unbiased_only", lambda m, f, x: f(x, False)),
    ("unbiased_kw", lambda m, f, x: f(x, unbiased=False)),
    ("correction0", lambda m, f, x: f(x, 0, correction=0)),
    ("correction2", lambda m, f, x: f(x, dim=-1, correction=2, keepdim=True)),
    ("correction_float", lambda m, f, x: f(x, correction=0.5)),
    ("dimNone_keep", lambda m, f, x: f(x, None, keepdim=True)),
]


@pytest.mark.parametrize("name", ["var", "std", "var_mean", "std_mean"])
@pytest.mark.parametrize("fn", [c[1] for c in VAR_CASES], ids=[c[0] for c in VAR_CASES])
def test_var_std(name, fn):
    check(lambda m, x: fn(m, getattr(m, name), x), None, X3)


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("correction", [5, 6, 9])
def test_var_correction_at_least_n(name, correction):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check(lambda m, x: getattr(x, name)(1, correction=correction), None, rand(3, 5))
    assert w and all(issubclass(i.category, UserWarning) for i in w)
    assert not any(issubclass(i.category, RuntimeWarning) for i in w)


def test_std_constant_input_gradient_is_zero():
    check(lambda m, x: x.std(1), None, np.ones((2, 4)))
    check(lambda m, x: m.std_mean(x, 0), None, np.ones((3, 2)))


def test_no_warnings_on_ordinary_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = ember.tensor(X3, requires_grad=True)
        (x.var(1).sum() + x.std() + x.logsumexp(0).sum() + R.norm(x, 3) + x.mean()).backward()
        ember.tensor(ALL_NEG_INF).logsumexp(1)
        ember.zeros(3, 0).mean(1)
        R.norm(ember.zeros(3), -1)


# ---- max / min / amax / argmax ---------------------------------------------------------------

EXTREME_CASES = [
    ("max", lambda m, x: x.max()),
    ("min", lambda m, x: m.min(x)),
    ("max_dim", lambda m, x: x.max(1)),
    ("max_dim_keep", lambda m, x: m.max(x, 0, True)),
    ("min_dim_neg", lambda m, x: x.min(dim=-1, keepdim=True)),
    ("max_dim_nc", lambda m, x: x.t().max(1)),
    ("amax", lambda m, x: x.amax()),
    ("amax_dim", lambda m, x: x.amax(1)),
    ("amin_tuple", lambda m, x: m.amin(x, (0, 1), keepdim=True)),
    ("amin_dim", lambda m, x: x.amin(0)),
    ("aminmax", lambda m, x: m.aminmax(x)),
    ("aminmax_dim", lambda m, x: m.aminmax(x, dim=1)),
    ("aminmax_keep", lambda m, x: x.aminmax(dim=0, keepdim=True)),
    ("aminmax_none_keep", lambda m, x: x.aminmax(keepdim=True)),
    ("argmax", lambda m, x: x.argmax()),
    ("argmax_keep", lambda m, x: x.argmax(keepdim=True)),
    ("argmin_dim", lambda m, x: x.argmin(1)),
    ("argmax_dim_keep", lambda m, x: m.argmax(x, 0, keepdim=True)),
    ("median", lambda m, x: x.median()),
    ("median_dim", lambda m, x: x.median(1)),
    ("median_dim0", lambda m, x: x.median(0, keepdim=True)),
    ("nanmedian", lambda m, x: x.nanmedian()),
    ("mode", lambda m, x: x.mode()),
    ("mode_dim0", lambda m, x: x.mode(0, True)),
    ("kthvalue", lambda m, x: x.kthvalue(2)),
    ("kthvalue_dim0", lambda m, x: x.kthvalue(3, 0, True)),
    ("cummax", lambda m, x: x.cummax(1)),
    ("cummin", lambda m, x: m.cummin(x, 0)),
    ("sort", lambda m, x: x.sort()),
    ("sort_desc", lambda m, x: x.sort(0, descending=True)),
    ("sort_stable", lambda m, x: m.sort(x, stable=True, dim=1)),
    ("argsort", lambda m, x: x.argsort(1, descending=True)),
    ("argsort_stable", lambda m, x: m.argsort(x, stable=True, dim=0)),
    ("msort", lambda m, x: x.msort()),
    ("topk", lambda m, x: x.topk(2)),
    ("topk_small", lambda m, x: x.topk(3, 0, largest=False)),
    ("topk_all", lambda m, x: m.topk(x, 5, dim=1)),
]


# torch's CPU topk/kthvalue pick among tied values by quickselect order; ember picks stably
QUICKSELECT = {"topk", "topk_small", "topk_all", "kthvalue", "kthvalue_dim0"}


@pytest.mark.parametrize("data", [TIES, rand(4, 5, seed=5)], ids=["ties", "distinct"])
@pytest.mark.parametrize("fn,name", [(c[1], c[0]) for c in EXTREME_CASES],
                         ids=[c[0] for c in EXTREME_CASES])
def test_selections(fn, name, data):
    if name in QUICKSELECT and data is TIES:
        _check_tied_selection(fn, data)
    else:
        check(fn, None, data)


def _check_tied_selection(fn, data):
    """Values equal torch's; indices point at those values; the gradient lands on them."""
    x = ember.tensor(data, requires_grad=True)
    v, i = fn(ember, x)
    tv, ti = fn(torch, torch.tensor(data))
    assert_close(v, tv)
    idx, vals = i.numpy(), v.detach().numpy()
    if idx.ndim < data.ndim:  # reduced without keepdim (always over the last dim here)
        idx, vals = idx[..., None], vals[..., None]
    dim = 0 if idx.shape[0] != data.shape[0] else -1
    assert np.array_equal(np.take_along_axis(data, idx, dim), vals, equal_nan=True)
    v.sum().backward()
    expect = np.zeros_like(data)
    np.put_along_axis(expect, idx, 1.0, dim)
    assert np.array_equal(x.grad.numpy(), expect)


@pytest.mark.parametrize("fn", [c[1] for c in EXTREME_CASES], ids=[c[0] for c in EXTREME_CASES])
def test_selections_zero_dim(fn):
    try:
        fn(torch, torch.tensor(2.5))
    except (RuntimeError, IndexError) as e:
        with pytest.raises(type(e)):
            fn(ember, ember.tensor(2.5))
        return
    check(fn, None, np.array(2.5))


def test_selections_3d_non_contiguous():
    for fn in [lambda m, x: x.transpose(0, 2).max(1), lambda m, x: x.permute(2, 0, 1).sort(1),
               lambda m, x: x.transpose(1, 2).topk(2, 1), lambda m, x: x.transpose(0, 1).median(2),
               lambda m, x: x.transpose(0, 2).cummax(0), lambda m, x: x.transpose(0, 1).amax(2)]:
        check(fn, None, X3)


def test_max_returns_named_tuple():
    x = ember.tensor([[1., 3.], [4., 2.]])
    r = ember.max(x, 1)
    assert isinstance(r, ember.return_types.max) and isinstance(r, tuple)
    assert r.values.tolist() == [3., 4.] and r.indices.tolist() == [1, 0]
    v, i = r
    assert v is r[0] and i is r.indices
    assert repr(r).startswith("ember.return_types.max(\nvalues=tensor([3., 4.]),\nindices=")
    assert ember.aminmax(x).max.item() == 4.0
    assert repr(ember.sort(x)).startswith("ember.return_types.sort(")


def test_max_with_tensor_other_is_maximum():
    if not hasattr(ember, "maximum"):
        with pytest.raises(AttributeError):
            ember.max(ember.ones(2), ember.zeros(2))
        return
    check(lambda m, a, b: m.max(a, b), None, rand(3, 4), rand(4, seed=2))
    check(lambda m, a, b: m.min(a, b), None, rand(3, 4), rand(4, seed=2))


def test_max_gradient_split_among_ties():
    x = ember.tensor([[1., 3., 3.], [2., 3., 0.]], dtype=ember.float64, requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [[0, 1 / 3, 1 / 3], [0, 1 / 3, 0]]
    y = ember.tensor([[1., 3., 3.]], requires_grad=True)
    y.max(1).values.sum().backward()
    assert y.grad.tolist() == [[0, 1, 0]]


# ---- logsumexp / norms -------------------------------------------------------------------------

def test_logsumexp_stable_and_inf_rows():
    big = rand(3, 4) * 400
    check(lambda m, x: x.logsumexp(1), None, big)
    check(lambda m, x: m.logsumexp(x, 1, keepdim=True), None, ALL_NEG_INF)
    check(lambda m, x: x.logsumexp(0), None, np.array([math.inf, 1.0]))
    check(lambda m, x: x.logsumexp(1), None, np.zeros((2, 0)))


NORM_ORDS = [2, 1, 3, 1.5, 0.5, 0, -1, math.inf, -math.inf, "fro", None]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 1, (0, 1), -1], ids=str)
@pytest.mark.parametrize("p", NORM_ORDS, ids=str)
def test_norm(p, dim, keepdim):
    data = rand(3, 4, seed=9)
    data[0, 1] = 0.0
    check(lambda m, x: _fn(m, "norm")(x, p, dim, keepdim), None, data)


@pytest.mark.parametrize("p", [2, 1, 3, 1.5, 0.5, -1, math.inf, -math.inf, "fro"], ids=str)
def test_norm_zero_vector_gradient(p):
    check(lambda m, x: _fn(m, "norm")(x, p, dim=1), None, np.array([[0., 0., 0.], [1., -2., 0.5]]))


@pytest.mark.parametrize("ord", [2, 1, math.inf, 0, 3.5, -2])
@pytest.mark.parametrize("dim", [None, 0, (0, 1)], ids=str)
def test_vector_norm(ord, dim):
    from ember.ops.reduce import vector_norm
    check(lambda x: vector_norm(x, ord, dim), lambda x: torch.linalg.vector_norm(x, ord, dim),
          rand(3, 4, seed=4))
    check(lambda x: vector_norm(x, ord, dim, True, dtype=ember.float64),
          lambda x: torch.linalg.vector_norm(x, ord, dim, True, dtype=torch.float64),
          rand(3, 4, seed=4), dtypes=("float32",))


def test_norm_ties_for_inf():
    check(lambda m, x: _fn(m, "norm")(x, math.inf), None, np.array([1., -3., 3., 0.]))
    check(lambda m, x: _fn(m, "norm")(x, -math.inf, 0), None, np.array([[1., -3.], [-1., 3.]]))


# ---- scans -------------------------------------------------------------------------------------

SCAN_CASES = [
    ("cumsum0", lambda m, x: x.cumsum(0)),
    ("cumsum-1", lambda m, x: m.cumsum(x, -1)),
    ("cumsum_nc", lambda m, x: x.transpose(0, 2).cumsum(1)),
    ("cumsum_dtype", lambda m, x: x.cumsum(1, dtype=m.float64)),
    ("cumprod1", lambda m, x: x.cumprod(1)),
    ("cumprod_nc", lambda m, x: x.transpose(0, 1).cumprod(-1)),
    ("logcumsumexp", lambda m, x: x.logcumsumexp(2)),
    ("logcumsumexp_nc", lambda m, x: m.logcumsumexp(x.transpose(0, 2), 0)),
]


@pytest.mark.parametrize("fn", [c[1] for c in SCAN_CASES], ids=[c[0] for c in SCAN_CASES])
def test_scans(fn):
    check(fn, None, X3)


@pytest.mark.parametrize("data", [ONE_ZERO, MANY_ZEROS, np.zeros((2, 3)),
                                  np.array([[0., 2., 3.], [1., 0., 0.]])])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumprod_with_zeros(data, dim):
    check(lambda m, x: x.cumprod(dim), None, data)


@pytest.mark.parametrize("name", ["cumsum", "cumprod", "logcumsumexp"])
def test_scans_zero_dim_and_size_one(name):
    check(lambda m, x: getattr(x, name)(0), None, np.array(1.5))
    check(lambda m, x: getattr(x, name)(-1), None, rand(3, 1))
    check(lambda m, x: getattr(x, name)(0), None, np.zeros((0, 2)))


def test_cumsum_inplace():
    a, b = ember.tensor([[1, 2], [3, 4]], dtype=ember.int32), torch.tensor([[1, 2], [3, 4]],
                                                                           dtype=torch.int32)
    assert_close(a.cumsum_(0), b.cumsum_(0))
    assert a.dtype == ember.int32
    check(lambda m, x: (x * 1).cumprod_(1), None, rand(2, 3))


# ---- boolean reductions and counts -------------------------------------------------------------

@pytest.mark.parametrize("name", ["all", "any"])
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1), ()], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_all_any(name, dim, keepdim):
    data = np.array([[1., 0., 2.], [0., 0., 0.], [3., 1., 1.]])
    check(lambda m, x: _call(m, name, x, dim, keepdim), None, data, grad=False)
    check(lambda m, x: _call(m, name, x > 0, dim, keepdim), None, data, grad=False)
    check(lambda m, x: _call(m, name, x.to(m.uint8), dim, keepdim), None, data, grad=False)


@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1), [1, 0], ()], ids=str)
def test_count_nonzero(dim):
    data = np.array([[1., 0., 2.], [0., 0., 0.]])
    check(lambda m, x: m.count_nonzero(x, dim) if dim is not None else x.count_nonzero(), None,
          data, grad=False)


def test_empty_reductions():
    e = np.zeros((2, 0))
    for fn in [lambda m, x: x.sum(1), lambda m, x: x.prod(1), lambda m, x: x.mean(1),
               lambda m, x: x.sum(), lambda m, x: x.mean(), lambda m, x: x.all(),
               lambda m, x: x.any(1),
               lambda m, x: x.amax(0), lambda m, x: x.max(0), lambda m, x: _fn(m, "norm")(x),
               lambda m, x: x.count_nonzero(), lambda m, x: x.sort(1), lambda m, x: x.topk(0),
               lambda m, x: x.cumsum(1), lambda m, x: x.median(), lambda m, x: x.detach().unique(),
               lambda m, x: x.cummax(1), lambda m, x: x.argsort(0), lambda m, x: x.nansum(0)]:
        check(fn, None, e)


# ---- unique ------------------------------------------------------------------------------------

UNIQUE_CASES = [
    ("plain", lambda m, x: m.unique(x)),
    ("inverse", lambda m, x: m.unique(x, return_inverse=True)),
    ("counts", lambda m, x: x.unique(return_counts=True)),
    ("both", lambda m, x: m.unique(x, sorted=True, return_inverse=True, return_counts=True)),
    ("unsorted", lambda m, x: m.unique(x, sorted=False)),
    ("dim0", lambda m, x: m.unique(x, dim=0, return_inverse=True, return_counts=True)),
    ("dim1", lambda m, x: m.unique(x, dim=-1)),
    ("consecutive", lambda m, x: m.unique_consecutive(x)),
    ("consecutive_all", lambda m, x: m.unique_consecutive(x, return_inverse=True,
                                                         return_counts=True)),
    ("consecutive_dim", lambda m, x: x.unique_consecutive(return_counts=True, dim=0)),
    ("consecutive_dim1", lambda m, x: m.unique_consecutive(x, True, True, dim=1)),
]


@pytest.mark.parametrize("fn", [c[1] for c in UNIQUE_CASES], ids=[c[0] for c in UNIQUE_CASES])
def test_unique(fn):
    data = np.array([[3., 1., 1.], [3., 1., 1.], [2., 2., 0.], [3., 1., 1.]])
    check(fn, None, data, grad=False)
    check(fn, None, data.astype(np.int64), grad=False)


def test_unique_zero_dim():
    check(lambda m, x: m.unique(x, return_inverse=True), None, np.array(3.), grad=False)


# ---- bad inputs: the same exception type as torch ------------------------------------------

BAD = [
    ("dim_out_of_range", lambda m: m.zeros(2, 3).sum(2)),
    ("dim_out_of_range_neg", lambda m: m.zeros(2, 3).amax(-3)),
    ("dim_out_of_range_0d", lambda m: m.tensor(1.).sum(1)),
    ("repeated_dims", lambda m: m.zeros(2, 3).sum((0, 0))),
    ("repeated_dims_neg", lambda m: m.zeros(2, 3).mean((1, -1))),
    ("repeated_var", lambda m: m.zeros(2, 3).var((0, -2))),
    ("repeated_count", lambda m: m.zeros(2, 3).count_nonzero((0, 0))),
    ("repeated_all", lambda m: m.zeros(2, 3).all((1, 1))),
    ("float_dim", lambda m: m.zeros(2, 3).sum(1.0)),
    ("str_dim", lambda m: m.zeros(2, 3).var("a")),
    ("prod_tuple_dim", lambda m: m.zeros(2, 3).prod((0, 1))),
    ("mean_int", lambda m: m.arange(4).mean()),
    ("mean_int_dtype", lambda m: m.ones(3).mean(dtype=m.int32)),
    ("nanmean_int", lambda m: m.arange(4).nanmean()),
    ("var_int", lambda m: m.arange(4).var()),
    ("std_int", lambda m: m.arange(4).std(0)),
    ("var_mean_bool", lambda m: m.var_mean(m.tensor([True, False]))),
    ("var_float_dim", lambda m: m.ones(3).var(1.5)),
    ("var_unbiased_and_correction", lambda m: m.ones(3).var(0, unbiased=True, correction=1)),
    ("norm_int", lambda m: _fn(m, "norm")(m.arange(4))),
    ("norm_bad_order", lambda m: _fn(m, "norm")(m.ones(3, 3), "abc")),
    ("norm_fro_3dims", lambda m: _fn(m, "norm")(m.ones(2, 2, 2), "fro", (0, 1, 2))),
    ("norm_nuc_1d", lambda m: _fn(m, "norm")(m.ones(3), "nuc")),
    ("norm_narrow_dtype", lambda m: _fn(m, "norm")(m.ones(3, dtype=m.float64), dtype=m.float32)),
    ("norm_inf_empty", lambda m: _fn(m, "norm")(m.zeros(0, 3), math.inf)),
    ("norm_inf_empty_dim", lambda m: _fn(m, "norm")(m.zeros(0, 3), -math.inf, 0)),
    ("topk_k_too_large", lambda m: m.zeros(2, 3).topk(4)),
    ("topk_negative_k", lambda m: m.zeros(2, 3).topk(-1)),
    ("topk_bool", lambda m: m.tensor([True, False]).topk(1)),
    ("topk_bad_dim", lambda m: m.zeros(2, 3).topk(1, 2)),
    ("kthvalue_k_too_large", lambda m: m.zeros(2, 3).kthvalue(4)),
    ("kthvalue_k_zero", lambda m: m.zeros(2, 3).kthvalue(0)),
    ("kthvalue_empty", lambda m: m.zeros(0).kthvalue(1)),
    ("argmax_empty", lambda m: m.zeros(0).argmax()),
    ("argmin_empty_dim", lambda m: m.zeros(2, 0).argmin(1)),
    ("argmax_bool", lambda m: m.tensor([True, False]).argmax()),
    ("max_empty", lambda m: m.zeros(2, 0).max()),
    ("min_empty_dim", lambda m: m.zeros(2, 0).min(1)),
    ("max_keepdim_no_dim", lambda m: m.zeros(2, 3).max(keepdim=True)),
    ("max_tuple_dim", lambda m: m.zeros(2, 3).max((0, 1))),
    ("amax_empty", lambda m: m.zeros(0, 3).amax()),
    ("amin_empty_dim", lambda m: m.zeros(2, 0).amin(1)),
    ("aminmax_empty", lambda m: m.zeros(0).aminmax()),
    ("median_empty_dim", lambda m: m.zeros(2, 0).median(1)),
    ("median_bool", lambda m: m.tensor([True, False]).median()),
    ("mode_empty", lambda m: m.zeros(0).mode()),
    ("sort_bad_dim", lambda m: m.zeros(2, 3).sort(2)),
    ("argsort_bad_dim", lambda m: m.zeros(2, 3).argsort(-3)),
    ("cumsum_bad_dim", lambda m: m.zeros(2, 3).cumsum(2)),
    ("cumsum_no_dim", lambda m: m.zeros(2, 3).cumsum()),
    ("cumsum_none_dim", lambda m: m.zeros(2, 3).cumsum(None)),
    ("cumprod_tuple_dim", lambda m: m.zeros(2, 3).cumprod((0,))),
    ("logsumexp_no_dim", lambda m: m.logsumexp(m.zeros(2, 3))),
    ("logsumexp_none", lambda m: m.zeros(2, 3).logsumexp(None)),
    ("logcumsumexp_int", lambda m: m.arange(3).logcumsumexp(0)),
    ("unique_bad_dim", lambda m: m.zeros(2, 3).unique(dim=3)),
    ("count_nonzero_bad_dim", lambda m: m.zeros(2, 3).count_nonzero(5)),
    ("cummax_bad_dim", lambda m: m.zeros(2, 3).cummax(-3)),
]


@pytest.mark.parametrize("fn", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_inputs_raise_like_torch(fn):
    with pytest.raises(Exception) as et:
        fn(torch)
    with pytest.raises(Exception) as ee:
        fn(ember)
    assert et.type is ee.type or (et.type is NotImplementedError and ee.type is RuntimeError), \
        f"torch raised {et.type.__name__}, ember {ee.type.__name__}: {ee.value}"


def test_dim_out_of_range_message():
    with pytest.raises(IndexError, match=r"expected to be in range of \[-2, 1\], but got 2"):
        ember.zeros(2, 3).sum(2)
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times in the list of dims"):
        ember.zeros(2, 3).sum((0, -2))
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        ember.zeros(3).topk(4)


# ---- gradcheck and hypothesis ---------------------------------------------------------------

GRADCHECK = [
    ("var", lambda x: x.var(1)), ("std", lambda x: x.std()),
    ("prod", lambda x: x.prod(0)), ("cumprod", lambda x: x.cumprod(1)),
    ("logsumexp", lambda x: x.logsumexp((0, 1))), ("norm3", lambda x: R.norm(x, 3, 1)),
    ("max_dim", lambda x: x.max(1)[0]), ("topk", lambda x: x.topk(2)[0]),
    ("sort", lambda x: x.sort(0)[0]), ("median", lambda x: x.median(1)[0]),
    ("logcumsumexp", lambda x: x.logcumsumexp(0)), ("std_mean", lambda x: ember.std_mean(x, 0)),
]


@pytest.mark.parametrize("fn", [c[1] for c in GRADCHECK], ids=[c[0] for c in GRADCHECK])
def test_gradcheck(fn):
    assert gradcheck(fn, rand(3, 4, seed=21))


def test_gradgradcheck_prod_with_zero():
    x = ember.tensor(ONE_ZERO, requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda t: t.prod(1), (x,))
    assert ember.autograd.gradgradcheck(lambda t: t.cumprod(1), (x,))


@st.composite
def shape_and_dims(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    nd = len(shape)
    if nd == 0:
        dim = draw(st.sampled_from([None, 0, -1]))
    else:
        dims = draw(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                             unique_by=lambda d: d % nd))
        dim = draw(st.sampled_from([None, dims[0], tuple(dims)]))
    return shape, dim, draw(st.booleans())


@settings(max_examples=25, deadline=None)
@given(shape_and_dims(), st.sampled_from(["sum", "mean", "var", "amax"]))
def test_hypothesis_reductions(sd, name):
    shape, dim, keepdim = sd
    data = np.asarray(rand(*shape, seed=len(shape)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check(lambda m, x: _call(m, name, x, dim, keepdim), None, data, dtypes=("float64",))


def test_topk_and_sort_long_dims():
    data = rand(3, 64, seed=8)
    data[1, 5] = np.nan
    for fn in [lambda m, x: x.topk(3), lambda m, x: x.topk(4, largest=False),
               lambda m, x: x.t().topk(2, 0), lambda m, x: x.sort(1, descending=True),
               lambda m, x: x.argsort(1), lambda m, x: x.topk(7, sorted=True)]:
        check(fn, None, data)
    ties = np.round(data * 2)
    _check_tied_selection(lambda m, x: x.topk(3), ties)
    long = rand(2, 3000, seed=9)  # k much smaller than the dim: the partition path
    long[0, 7] = np.nan
    check(lambda m, x: x.topk(5), None, long)
    check(lambda m, x: x.t().topk(4, 0, largest=False), None, long)
    check(lambda m, x: x.sort(stable=True, dim=1, descending=True), None, ties)


def test_logcumsumexp_wide_range():
    check(lambda m, x: x.logcumsumexp(0), None, np.array([-100., 0., 50., -3., 120.]))
    check(lambda m, x: x.logcumsumexp(1), None, np.array([[-math.inf, -math.inf, 1.], [2., -5, 0]]))
