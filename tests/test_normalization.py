"""Normalisation ops and layers against PyTorch: outputs, gradients, running stats, errors."""
import collections
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, assert_close, to_ember, to_torch

F_E = ember.nn.functional


def _ones_like_stats(m, c, x):
    return m.zeros(c, dtype=x.dtype) + 0.25, m.ones(c, dtype=x.dtype) * 1.5


# ---- functional forms -------------------------------------------------------------------------

def _bn(training, stats=True, affine=True, bias=True):
    def fn(m, x, w, b):
        c = x.shape[1]
        rm, rv = _ones_like_stats(m, c, x) if stats else (None, None)
        return m.nn.functional.batch_norm(x, rm, rv, w if affine else None,
                                          b if bias else None, training=training, momentum=0.3,
                                          eps=1e-3)
    return fn


BN_CASES = [  # (name, fn, x shape)
    ("train-2d", _bn(True), (6, 3)),
    ("train-3d", _bn(True), (4, 3, 5)),
    ("train-4d", _bn(True), (2, 3, 4, 5)),
    ("train-5d", _bn(True), (2, 3, 2, 3, 2)),
    ("train-nostats", _bn(True, stats=False), (4, 3, 5)),
    ("train-noaffine", _bn(True, affine=False, bias=False), (4, 3, 5)),
    ("train-nobias", _bn(True, bias=False), (4, 3, 5)),
    ("train-weightless", _bn(True, affine=False), (4, 3, 5)),
    ("train-batch1-spatial", _bn(True), (1, 3, 5)),
    ("train-1channel", _bn(True), (5, 1)),
    ("train-empty", _bn(True), (0, 3)),
    ("eval-empty", _bn(False), (0, 3, 2)),
    ("eval-2d", _bn(False), (6, 3)),
    ("eval-4d", _bn(False), (2, 3, 4, 5)),
    ("eval-batch1", _bn(False), (1, 3)),
    ("eval-noaffine", _bn(False, affine=False, bias=False), (4, 3, 5)),
    ("eval-nobias", _bn(False, bias=False), (4, 3, 5)),
]


@pytest.mark.parametrize("name,fn,shape", BN_CASES, ids=[c[0] for c in BN_CASES])
def test_batch_norm(name, fn, shape):
    c = shape[1]
    check(fn, None, rand(*shape, seed=1), rand(c, seed=2), rand(c, seed=3))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_non_contiguous(training):
    def fn(m, x, w, b):
        rm, rv = _ones_like_stats(m, 4, x)
        return m.nn.functional.batch_norm(x.transpose(0, 2)[::2], rm, rv, w, b, training)
    check(fn, None, rand(5, 4, 6, seed=1), rand(4, seed=2), rand(4, seed=3))


def _bn_stats_after(m, x, momentum, training, steps=3):
    """Running mean/var after ``steps`` calls of F.batch_norm on shifted copies of ``x``."""
    c = x.shape[1]
    rm, rv = _ones_like_stats(m, c, x)
    for i in range(steps):
        m.nn.functional.batch_norm(x * (i + 1) + i, rm, rv, training=training,
                                   momentum=momentum)
    return rm, rv


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 2, 2)])
def test_batch_norm_running_stats(shape, momentum, dtype):
    x = rand(*shape, seed=4).astype(dtype)
    for training in (True, False):
        re = _bn_stats_after(ember, to_ember(x), momentum, training)
        rt = _bn_stats_after(torch, to_torch(x), momentum, training)
        assert_close(re, rt, dtype)


LN_CASES = [  # (name, x shape, normalized_shape, weight, bias)
    ("last", (4, 5), (5,), True, True),
    ("last-list", (4, 5), [5], True, True),
    ("two-dims", (3, 4, 5), (4, 5), True, True),
    ("all-dims", (3, 4, 5), (3, 4, 5), True, True),
    ("1d-input", (5,), (5,), True, True),
    ("no-affine", (3, 4, 5), (5,), False, False),
    ("weight-only", (3, 4, 5), (5,), True, False),
    ("bias-only", (3, 4, 5), (5,), False, True),
    ("size-1", (3, 1), (1,), True, True),
    ("empty-batch", (0, 5), (5,), True, True),
]


@pytest.mark.parametrize("name,shape,ns,use_w,use_b", LN_CASES, ids=[c[0] for c in LN_CASES])
def test_layer_norm(name, shape, ns, use_w, use_b):
    pshape = tuple(ns)

    def fn(m, x, w, b):
        return m.nn.functional.layer_norm(x, ns, w if use_w else None, b if use_b else None,
                                          eps=1e-4)
    check(fn, None, rand(*shape, seed=1), rand(*pshape, seed=2), rand(*pshape, seed=3))


def test_layer_norm_non_contiguous_and_size():
    check(lambda m, x, w: m.nn.functional.layer_norm(x.transpose(0, 1), torch.Size([3]), w),
          None, rand(3, 4, seed=1), rand(3, seed=2))


GN_CASES = [  # (x shape, groups, affine)
    ((2, 6, 5), 3, True),
    ((2, 6, 5), 1, True),
    ((2, 6, 5), 6, True),
    ((3, 4), 2, True),
    ((2, 4, 3, 2), 2, True),
    ((2, 4, 3, 2), 2, False),
    ((1, 4, 3), 4, True),
]


@pytest.mark.parametrize("shape,groups,affine", GN_CASES, ids=str)
def test_group_norm(shape, groups, affine):
    c = shape[1]

    def fn(m, x, w, b):
        return m.nn.functional.group_norm(x, groups, w if affine else None,
                                          b if affine else None, eps=1e-4)
    check(fn, None, rand(*shape, seed=1), rand(c, seed=2), rand(c, seed=3))


def test_group_norm_non_contiguous():
    check(lambda m, x, w, b: m.nn.functional.group_norm(x.transpose(1, 2), 2, w, b), None,
          rand(2, 3, 4, seed=1), rand(4, seed=2), rand(4, seed=3))


IN_CASES = [  # (name, x shape, affine, stats, use_input_stats)
    ("plain", (2, 3, 5), False, False, True),
    ("affine", (2, 3, 5), True, False, True),
    ("2d", (2, 3, 4, 3), True, False, True),
    ("stats", (2, 3, 5), True, True, True),
    ("running", (2, 3, 5), True, True, False),
    ("3d", (2, 2, 2, 3, 2), False, True, True),
]


@pytest.mark.parametrize("name,shape,affine,stats,use_input",
                         IN_CASES, ids=[c[0] for c in IN_CASES])
def test_instance_norm(name, shape, affine, stats, use_input):
    c = shape[1]
    result = {}

    def fn(m, x, w, b):
        rm, rv = _ones_like_stats(m, c, x) if stats else (None, None)
        out = m.nn.functional.instance_norm(x, rm, rv, w if affine else None,
                                            b if affine else None, use_input, 0.2)
        result[m.__name__] = (rm, rv)
        return out
    check(fn, None, rand(*shape, seed=1), rand(c, seed=2), rand(c, seed=3))
    if stats:
        assert_close(result["ember"], result["torch"], "float32")


RMS_CASES = [  # (x shape, normalized_shape, weight, eps)
    ((4, 5), (5,), True, None),
    ((3, 4, 5), (4, 5), True, 1e-3),
    ((3, 4, 5), (5,), False, None),
    ((5,), (5,), True, 0.5),
]


@pytest.mark.parametrize("shape,ns,use_w,eps", RMS_CASES, ids=str)
def test_rms_norm(shape, ns, use_w, eps):
    def fn(m, x, w):
        return m.nn.functional.rms_norm(x, ns, w if use_w else None, eps)
    check(fn, None, rand(*shape, seed=1), rand(*ns, seed=2))


LRN_CASES = [  # (x shape, size, alpha, beta, k)
    ((2, 5, 4), 3, 1e-4, 0.75, 1.0),
    ((2, 5, 4), 2, 0.5, 0.5, 2.0),
    ((2, 5, 3, 2), 4, 0.3, 0.75, 1.0),
    ((1, 3, 2, 2, 2), 5, 0.2, 1.0, 0.5),
    ((2, 3, 4), 1, 0.1, 0.75, 1.0),
    ((2, 3, 4), 8, 0.1, 0.75, 1.0),
]


@pytest.mark.parametrize("shape,size,alpha,beta,k", LRN_CASES, ids=str)
def test_local_response_norm(shape, size, alpha, beta, k):
    check(lambda m, x: m.nn.functional.local_response_norm(x, size, alpha, beta, k), None,
          rand(*shape, seed=1))


def test_local_response_norm_int_and_empty():
    x = np.arange(12).reshape(1, 3, 4)
    check(lambda m, x: m.nn.functional.local_response_norm(x, 2), None, x)
    check(lambda m, x: m.nn.functional.local_response_norm(x, 2), None, np.zeros((0, 3, 2)))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=4), st.integers(1, 2),
       st.booleans())
def test_hypothesis_shapes(shape, k, training):
    shape = tuple(shape)
    k = min(k, len(shape))
    ns = shape[len(shape) - k:]
    x = rand(*shape, seed=5)
    check(lambda m, x, w, b: m.nn.functional.layer_norm(x, ns, w, b), None, x,
          rand(*ns, seed=6), rand(*ns, seed=7), dtypes=("float64",))
    if training and np.prod(shape) // shape[1] == 1:
        return  # one value per channel: training refuses it (tested below)
    check(_bn(training), None, x, rand(shape[1], seed=6), rand(shape[1], seed=7),
          dtypes=("float64",))


@pytest.mark.parametrize("call,name", [
    (lambda m, x, w: m.nn.functional.batch_norm(x, None, None, w, training=True),
     "NativeBatchNormBackward0"),
    (lambda m, x, w: m.nn.functional.batch_norm(x, m.zeros(3, dtype=x.dtype),
                                                m.ones(3, dtype=x.dtype), w),
     "NativeBatchNormBackward0"),
    (lambda m, x, w: m.nn.functional.layer_norm(x, (3,), w), "NativeLayerNormBackward0"),
    (lambda m, x, w: m.nn.functional.group_norm(x, 3, w), "NativeGroupNormBackward0"),
    (lambda m, x, w: m.nn.functional.instance_norm(x.reshape(2, 3, 2), weight=w),
     "ViewBackward0"),
])
def test_grad_fn_names(call, name):
    x = rand(4, 3, seed=1)
    ye = call(ember, to_ember(x, True), to_ember(np.ones(3), True))
    yt = call(torch, to_torch(x, True), to_torch(np.ones(3), True))
    assert ye.grad_fn.name() == yt.grad_fn.name() == name


def test_fused_ops_are_one_node():
    x, w, b = (to_ember(a, True) for a in (rand(4, 3), rand(3), rand(3)))
    for y in (F_E.batch_norm(x, None, None, w, b, training=True),
              F_E.layer_norm(x, (3,), w, b), F_E.group_norm(x, 3, w, b)):
        leaves = [fn.variable for fn, _ in y.grad_fn.next_functions[:3]]
        assert [leaf is t for leaf, t in zip(leaves, (x, w, b))] == [True] * 3


HALF_CASES = {
    "bn-train": lambda m, x: m.nn.functional.batch_norm(x, None, None, training=True),
    "bn-eval": lambda m, x: m.nn.functional.batch_norm(
        x, m.zeros(4, dtype=x.dtype) + 0.5, m.ones(4, dtype=x.dtype) * 2),
    "ln": lambda m, x: m.nn.functional.layer_norm(x, (4,)),
    "gn": lambda m, x: m.nn.functional.group_norm(x, 2),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(HALF_CASES))
def test_half_precision(name, dtype):
    """Half types keep their dtype; statistics are taken in float32 (close to float64)."""
    fn = HALF_CASES[name]
    x, g = rand(6, 4, seed=1), rand(6, 4, seed=2)
    ref = to_torch(x, True)
    fn(torch, ref).backward(to_torch(g))
    xe = to_ember(x).to(getattr(ember, dtype)).requires_grad_()
    y = fn(ember, xe)
    y.backward(to_ember(g).to(getattr(ember, dtype)))
    assert y.dtype == xe.grad.dtype == getattr(ember, dtype)
    tol = 1e-2 if dtype == "float16" else 5e-2
    np.testing.assert_allclose(y.float().detach().numpy(), fn(torch, ref).detach().numpy(),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(xe.grad.float().numpy(), ref.grad.numpy(), rtol=tol, atol=tol)


# ---- fused against the unfused composition ------------------------------------------------

def _unfused_bn(x, w, b, eps=1e-5):
    dims = (0,) + tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / (var + eps).sqrt() * w.reshape(shape) + b.reshape(shape)


def _unfused_ln(x, w, b, eps=1e-5):
    dims = tuple(range(x.dim() - w.dim(), x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    return (x - mean) / (var + eps).sqrt() * w + b


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind,shape", [("bn", (128, 256)), ("bn", (8, 16, 4, 4)),
                                        ("ln", (128, 256)), ("ln", (8, 16, 4, 4))])
def test_fused_matches_unfused(kind, shape, dtype):
    rng = np.random.default_rng(0)
    c = shape[1] if kind == "bn" else shape[-1]
    arrays = [rng.standard_normal(s).astype(dtype) * 2 + 0.5 for s in (shape, c, c)]
    g = ember.tensor(rng.standard_normal(shape).astype(dtype))
    if kind == "bn":
        fused = lambda x, w, b: F_E.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
        unfused = _unfused_bn
    else:
        fused = lambda x, w, b: F_E.layer_norm(x, (c,), w, b)  # noqa: E731
        unfused = _unfused_ln
    results = []
    for fn in (fused, unfused):
        ins = [to_ember(a, True) for a in arrays]
        y = fn(*ins)
        results.append([y] + list(ember.autograd.grad(y, ins, g)))
    for a, b in zip(*results):  # ember against ember: compare through torch tensors
        assert_close(a, torch.from_numpy(b.detach().numpy()), dtype)


# ---- the array backward (NOTE [ Fused normalisation ]) -----------------------------------------

_ARRAY_CASES = {  # name: (call(m, x, w, b), x shape, channels)
    "bn": (lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, True),
           (4, 6, 5, 3), 6),
    "ln": (lambda m, x, w, b: m.nn.functional.layer_norm(x, (5, 3), w.reshape(5, 3),
                                                         b.reshape(5, 3)), (4, 6, 5, 3), 15),
    "gn": (lambda m, x, w, b: m.nn.functional.group_norm(x, 3, w, b), (4, 6, 5, 3), 6),
    # >= 16 values per row: the sums of products are batched matmuls of rows (_reduce)
    "bn_wide": (lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, True),
                (3, 4, 8, 9), 4),
    "ln_wide": (lambda m, x, w, b: m.nn.functional.layer_norm(x, (24,), w, b), (5, 3, 24), 24),
}


@pytest.mark.parametrize("name", list(_ARRAY_CASES))
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, False),
                                   (False, True, False), (False, False, True),
                                   (False, True, True)], ids=str)
def test_grad_subsets(name, needs):
    """Every subset of (input, weight, bias) needing a gradient, against torch."""
    call, shape, c = _ARRAY_CASES[name]
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype("float32") for s in (shape, (c,), (c,))]
    g = rng.standard_normal(shape).astype("float32")
    res = []
    for m, conv in ((ember, to_ember), (torch, to_torch)):
        ins = [conv(a, r) for a, r in zip(arrays, needs)]
        y = call(m, *ins)
        wanted = [t for t, r in zip(ins, needs) if r]
        res.append([y] + list(m.autograd.grad(y, wanted, conv(g))))
    assert_close(res[0], res[1], "float32")


@pytest.mark.parametrize("name", list(_ARRAY_CASES))
@pytest.mark.parametrize("offset", [100.0, 1000.0])
def test_large_offset_float32(name, offset):
    """A mean far from zero: float32 results as close to the float64 ones as PyTorch's
    float32 results are (the backward recentres x instead of cancelling large sums)."""
    call, shape, c = _ARRAY_CASES[name]
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(shape) + offset).astype("float32")
    w, b = rng.standard_normal(c).astype("float32"), rng.standard_normal(c).astype("float32")
    g = rng.standard_normal(shape).astype("float32")
    res = []
    for m, conv, dt in ((ember, to_ember, "float32"), (torch, to_torch, "float32"),
                        (torch, to_torch, "float64")):
        ins = [conv(a.astype(dt), True) for a in (x, w, b)]
        y = call(m, *ins)
        outs = [y] + list(m.autograd.grad(y, ins, conv(g.astype(dt))))
        res.append([o.detach().numpy().astype("float64") for o in outs])
    for e, t, ref in zip(*res):
        assert np.abs(e - ref).max() <= 4 * np.abs(t - ref).max() + 1e-6


@pytest.mark.parametrize("name", list(_ARRAY_CASES))
def test_retain_graph_twice_and_leaf_grad_owns_memory(name):
    """A second backward (retain_graph) gives the same gradients: nothing saved is written
    over; the input's .grad is a fresh array of its own, not a view."""
    call, shape, c = _ARRAY_CASES[name]
    rng = np.random.default_rng(3)
    x, w, b = (to_ember(rng.standard_normal(s).astype("float32"), True)
               for s in (shape, (c,), (c,)))
    g = to_ember(rng.standard_normal(shape).astype("float32"))
    y = call(ember, x, w, b)
    y.backward(g, retain_graph=True)
    first = [t.grad.numpy().copy() for t in (x, w, b)]
    # the gradient is stolen as PyTorch's AccumulateGrad steals it: a fresh array, or a whole
    # view of a base nothing else refers to (engine._whole_view), never a part of another
    a = x.grad._data
    assert a.flags.c_contiguous and (a.base is None or a.base.nbytes == a.nbytes)
    for t in (x, w, b):
        t.grad = None
    y.backward(g)
    for t, a in zip((x, w, b), first):
        np.testing.assert_array_equal(t.grad.numpy(), a)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward(g)


def test_batch_norm_input_modified_in_place_raises():
    x = ember.randn(4, 3, 2, requires_grad=True)
    h = x * 1.0
    y = F_E.batch_norm(h, None, None, training=True)
    h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- double backward --------------------------------------------------------------------------

DOUBLE_CASES = {
    "bn-train": lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, True),
    "bn-train-nobias": lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, None,
                                                                     True),
    "bn-eval": lambda m, x, w, b: m.nn.functional.batch_norm(
        x, m.zeros(3, dtype=x.dtype) + 0.5, m.ones(3, dtype=x.dtype) * 2, w, b),
    "ln": lambda m, x, w, b: m.nn.functional.layer_norm(x.transpose(0, 1).reshape(4, 2, 3),
                                                        (3,), w, b),
    "gn": lambda m, x, w, b: m.nn.functional.group_norm(x.reshape(4, 3, 2), 3, w, b),
}


@pytest.mark.parametrize("name", list(DOUBLE_CASES))
def test_double_backward(name):
    """Second derivatives through create_graph=True match torch's."""
    fn = DOUBLE_CASES[name]
    arrays = [rand(4, 3, 2, seed=1), rand(3, seed=2) + 2.5, rand(3, seed=3)]
    gy, v = rand(4, 3, 2, seed=4), rand(4, 3, 2, seed=5)
    out = {}
    for m, make in ((ember, to_ember), (torch, to_torch)):
        ins = [make(a, True) for a in arrays]
        y = fn(m, *ins)
        gs = m.autograd.grad(y, ins, make(gy.reshape(tuple(y.shape))), create_graph=True,
                             allow_unused=True)
        gs = [g for g in gs if g is not None]
        total = (gs[0] * make(v)).sum() + sum((g * g).sum() for g in gs[1:])
        second = m.autograd.grad(total, ins, allow_unused=True)
        out[m.__name__] = (y, gs, [s if s is not None else m.zeros(1) for s in second])
    e, t = out["ember"], out["torch"]
    assert_close(e[0], t[0])
    assert_close(e[1], t[1], msg="first derivatives")
    for a, b in zip(e[2], t[2]):
        if b.shape == (1,) and not b.any():
            assert not a.detach().numpy().any()
            continue
        assert_close(a, b, msg="second derivatives")


# ---- modules ----------------------------------------------------------------------------------

def _pair(name, *args, **kwargs):
    """The torch module, the ember module with torch's state loaded, in float64."""
    tm = getattr(torch.nn, name)(*args, **kwargs)
    em = getattr(ember.nn, name)(*args, **kwargs)
    with torch.no_grad():  # non-trivial affine parameters and running stats
        for k, v in tm.state_dict().items():
            if v.is_floating_point():
                v.add_(torch.rand(v.shape) * 0.5)
    em.load_state_dict({k: ember.tensor(v.detach().numpy())
                        for k, v in tm.state_dict().items()})
    return tm, em


def _compare_state(em, tm, dtype):
    se, st_ = em.state_dict(), tm.state_dict()
    assert list(se.keys()) == list(st_.keys())
    for k in st_:
        assert_close(se[k], st_[k], dtype, f"state {k}")


def _run_steps(tm, em, shape, dtype, steps=3):
    """Forward/backward a few batches in train then eval mode; compare everything each time."""
    rng = np.random.default_rng(0)
    for mode in ("train", "eval"):
        getattr(tm, mode)()
        getattr(em, mode)()
        for i in range(steps):
            x = (rng.standard_normal(shape) * (i + 1) + i).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            xe, xt = to_ember(x, True), to_torch(x, True)
            ye, yt = em(xe), tm(xt)
            assert_close(ye, yt, dtype, f"{mode} output {i}")
            ye.backward(to_ember(g))
            yt.backward(to_torch(g))
            assert_close(xe.grad, xt.grad, dtype, f"{mode} input grad {i}")
            for (ne, pe), (nt, pt) in zip(em.named_parameters(), tm.named_parameters()):
                assert ne == nt
                assert_close(pe.grad, pt.grad, dtype, f"{mode} grad of {ne} {i}")
                pe.grad = None
                pt.grad = None
            _compare_state(em, tm, dtype)


MODULE_CASES = [  # (class name, args, kwargs, input shape)
    ("BatchNorm1d", (3,), {}, (6, 3)),
    ("BatchNorm1d", (3,), {}, (4, 3, 5)),
    ("BatchNorm1d", (3,), {"momentum": None}, (4, 3, 5)),
    ("BatchNorm1d", (3,), {"affine": False}, (6, 3)),
    ("BatchNorm1d", (3,), {"track_running_stats": False}, (6, 3)),
    ("BatchNorm1d", (3,), {"bias": False, "eps": 1e-3, "momentum": 0.3}, (6, 3)),
    ("BatchNorm2d", (3,), {}, (2, 3, 4, 5)),
    ("BatchNorm2d", (3,), {"momentum": None, "affine": False}, (2, 3, 4, 5)),
    ("BatchNorm3d", (2,), {}, (2, 2, 3, 2, 2)),
    ("BatchNorm3d", (2,), {"track_running_stats": False, "affine": False}, (2, 2, 3, 2, 2)),
    ("LayerNorm", (5,), {}, (3, 4, 5)),
    ("LayerNorm", ((4, 5),), {"eps": 1e-3}, (3, 4, 5)),
    ("LayerNorm", ([5],), {"elementwise_affine": False}, (3, 4, 5)),
    ("LayerNorm", (5,), {"bias": False}, (3, 4, 5)),
    ("GroupNorm", (2, 4), {}, (3, 4, 5)),
    ("GroupNorm", (1, 4), {"affine": False}, (3, 4, 2, 2)),
    ("GroupNorm", (4, 4), {"bias": False, "eps": 1e-2}, (3, 4)),
    ("InstanceNorm1d", (3,), {}, (2, 3, 5)),
    ("InstanceNorm1d", (3,), {"affine": True, "track_running_stats": True}, (2, 3, 5)),
    ("InstanceNorm1d", (3,), {"affine": True}, (3, 5)),
    ("InstanceNorm2d", (3,), {"track_running_stats": True, "momentum": 0.4}, (2, 3, 4, 3)),
    ("InstanceNorm2d", (3,), {"affine": True, "track_running_stats": True}, (3, 4, 3)),
    ("InstanceNorm3d", (2,), {"affine": True}, (2, 2, 2, 3, 2)),
    ("RMSNorm", (5,), {}, (3, 4, 5)),
    ("RMSNorm", ((4, 5),), {"eps": 1e-3}, (3, 4, 5)),
    ("RMSNorm", (5,), {"elementwise_affine": False}, (3, 4, 5)),
    ("LocalResponseNorm", (3,), {}, (2, 5, 4)),
    ("LocalResponseNorm", (2, 0.1, 0.5, 2.0), {}, (2, 5, 3, 2)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,args,kwargs,shape", MODULE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MODULE_CASES)])
def test_module_against_torch(name, args, kwargs, shape, dtype):
    tm, em = _pair(name, *args, **kwargs)
    assert repr(em) == repr(tm)
    assert list(em.state_dict().keys()) == list(tm.state_dict().keys())
    assert [n for n, _ in em.named_buffers()] == [n for n, _ in tm.named_buffers()]
    if dtype == "float64":
        tm.double()
        em.double()
    _compare_state(em, tm, dtype)
    _run_steps(tm, em, shape, dtype)


def test_num_batches_tracked_and_cumulative_average():
    tm, em = _pair("BatchNorm1d", 2, momentum=None)
    tm.reset_running_stats()
    em.reset_running_stats()
    xs = [(rand(5, 2, seed=i) * (i + 1)).astype(np.float32) for i in range(4)]
    v0 = em.num_batches_tracked._version, tm.num_batches_tracked._version
    for x in xs:
        em(to_ember(x))
        tm(to_torch(x))
    assert em.num_batches_tracked.dtype == ember.int64
    assert int(em.num_batches_tracked) == 4
    assert em.num_batches_tracked._version - v0[0] == tm.num_batches_tracked._version - v0[1]
    # with momentum None the running mean is the plain average of the batch means
    expect = np.mean([x.mean(0) for x in xs], axis=0)
    np.testing.assert_allclose(em.running_mean.numpy(), expect, rtol=1e-5)
    _compare_state(em, tm, "float32")


def test_eval_without_running_stats_uses_batch_stats():
    tm, em = _pair("BatchNorm2d", 3, track_running_stats=False)
    tm.eval()
    em.eval()
    x = rand(2, 3, 2, 2, seed=1).astype(np.float32)
    assert_close(em(to_ember(x)), tm(to_torch(x)), "float32")
    assert em.running_mean is None and em.num_batches_tracked is None


def test_reset_parameters_and_running_stats():
    em = ember.nn.BatchNorm1d(3)
    em(to_ember(rand(4, 3).astype(np.float32)))
    with ember.no_grad():
        em.weight.mul_(3.0)
    em.reset_parameters()
    assert em.running_mean.numpy().tolist() == [0, 0, 0]
    assert em.running_var.numpy().tolist() == [1, 1, 1]
    assert int(em.num_batches_tracked) == 0
    assert em.weight.tolist() == [1, 1, 1] and em.bias.tolist() == [0, 0, 0]
    assert em.weight.requires_grad and em.weight.grad_fn is None
    for m in (ember.nn.LayerNorm((2, 3)), ember.nn.GroupNorm(2, 4), ember.nn.RMSNorm(3)):
        assert (m.weight.detach().numpy() == 1).all()
        if getattr(m, "bias", None) is not None:
            assert (m.bias.detach().numpy() == 0).all()


def test_load_state_dict_without_num_batches_tracked():
    """A version-1 checkpoint has no num_batches_tracked; it loads as torch's does."""
    tm = torch.nn.BatchNorm1d(3)
    em = ember.nn.BatchNorm1d(3)
    sd = collections.OrderedDict((k, ember.tensor(v.numpy())) for k, v in tm.state_dict().items()
                                 if k != "num_batches_tracked")
    sd._metadata = {"": {"version": 1}}
    res = em.load_state_dict(sd)
    assert list(res.missing_keys) == [] and list(res.unexpected_keys) == []
    sd._metadata = {"": {"version": 2}}
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        em.load_state_dict(sd)


def test_state_dict_metadata_version():
    for name in ("BatchNorm1d", "InstanceNorm1d"):
        em = getattr(ember.nn, name)(3, track_running_stats=True)
        tm = getattr(torch.nn, name)(3, track_running_stats=True)
        assert em.state_dict()._metadata[""] == tm.state_dict()._metadata[""]


def test_modules_inside_sequential():
    tm = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                             torch.nn.LayerNorm(6))
    em = ember.nn.Sequential(ember.nn.Linear(4, 6), ember.nn.BatchNorm1d(6),
                             ember.nn.LayerNorm(6))
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    assert repr(em) == repr(tm)
    assert list(em.state_dict().keys()) == list(tm.state_dict().keys())
    x = rand(5, 4, seed=1).astype(np.float32)
    assert_close(em(to_ember(x)), tm(to_torch(x)), "float32")


def test_instance_norm_mismatched_features_warns():
    x = rand(2, 3, 5, seed=1).astype(np.float32)
    em, tm = ember.nn.InstanceNorm1d(4), torch.nn.InstanceNorm1d(4)
    with pytest.warns(UserWarning, match="does not match num_features"):
        ye = em(to_ember(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yt = tm(to_torch(x))
    assert_close(ye, yt, "float32")


def test_module_dtype_and_device_kwargs():
    m = ember.nn.BatchNorm1d(3, dtype=ember.float64, device="cpu")
    assert m.weight.dtype == ember.float64 and m.running_var.dtype == ember.float64
    assert m.num_batches_tracked.dtype == ember.int64
    assert ember.nn.LayerNorm(3, dtype=ember.float64).weight.dtype == ember.float64


# ---- bad input --------------------------------------------------------------------------------

def _stats3(m):
    return m.zeros(3), m.ones(3)


ERROR_CASES = [  # (id, call(m) raising in both, exact-message-matches)
    ("bn-running-mean-size", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), m.zeros(4), m.ones(3), training=True), True),
    ("bn-running-var-size", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), m.zeros(3), m.ones(4), training=False), True),
    ("bn-weight-size", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), *_stats3(m), m.ones(4), training=True), True),
    ("bn-bias-size", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), *_stats3(m), None, m.ones(2), training=True), True),
    ("bn-batch-of-one", lambda m: m.nn.functional.batch_norm(
        m.randn(1, 3), *_stats3(m), training=True), True),
    ("bn-one-stat-missing-train", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), m.zeros(3), None, training=True), True),
    ("bn-eval-no-stats", lambda m: m.nn.functional.batch_norm(m.randn(4, 3), None, None),
     True),
    ("bn-eval-no-var", lambda m: m.nn.functional.batch_norm(m.randn(4, 3), m.zeros(3), None),
     True),
    ("bn-eps-zero", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), None, None, training=True, eps=0.0), True),
    ("bn-eps-negative", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), *_stats3(m), eps=-1.0), True),
    ("bn-momentum-none", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), *_stats3(m), training=True, momentum=None), True),
    ("bn-int-input", lambda m: m.nn.functional.batch_norm(
        m.ones(4, 3, dtype=m.int64), None, None, training=True), True),
    ("bn-mixed-dtype", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3, dtype=m.float64), *_stats3(m), training=True), True),
    ("bn-1d", lambda m: m.nn.functional.batch_norm(m.randn(5), None, None, training=True),
     False),
    ("bn-not-tensor", lambda m: m.nn.functional.batch_norm([1.0, 2.0], None, None), False),
    ("bn-stats-require-grad", lambda m: m.nn.functional.batch_norm(
        m.randn(4, 3), m.zeros(3, requires_grad=True), m.ones(3)), True),
    ("BatchNorm1d-4d", lambda m: m.nn.BatchNorm1d(3)(m.randn(2, 3, 4, 5)), True),
    ("BatchNorm2d-3d", lambda m: m.nn.BatchNorm2d(3)(m.randn(2, 3, 4)), True),
    ("BatchNorm3d-4d", lambda m: m.nn.BatchNorm3d(3)(m.randn(2, 3, 4, 4)), True),
    ("BatchNorm1d-batch-of-one", lambda m: m.nn.BatchNorm1d(3)(m.randn(1, 3)), True),
    ("BatchNorm1d-wrong-channels", lambda m: m.nn.BatchNorm1d(4)(m.randn(2, 3)), True),
    ("BatchNorm1d-wrong-channels-nostats", lambda m: m.nn.BatchNorm1d(
        4, track_running_stats=False)(m.randn(2, 3)), True),
    ("ln-shape-mismatch", lambda m: m.nn.functional.layer_norm(m.randn(4, 3), (4,)), True),
    ("ln-shape-mismatch-2d", lambda m: m.nn.functional.layer_norm(m.randn(4, 3), (2, 3)),
     True),
    ("ln-too-many-dims", lambda m: m.nn.functional.layer_norm(m.randn(3), (2, 3)), True),
    ("ln-empty-shape", lambda m: m.nn.functional.layer_norm(m.randn(4, 3), ()), True),
    ("ln-int-shape", lambda m: m.nn.functional.layer_norm(m.randn(4, 3), 3), True),
    ("ln-weight-shape", lambda m: m.nn.functional.layer_norm(m.randn(4, 3), (3,), m.ones(4)),
     True),
    ("ln-bias-shape", lambda m: m.nn.functional.layer_norm(
        m.randn(4, 3), (3,), None, m.ones(2)), True),
    ("ln-int-input", lambda m: m.nn.functional.layer_norm(m.ones(2, 3, dtype=m.int64), (3,)),
     True),
    ("LayerNorm-mismatch", lambda m: m.nn.LayerNorm(3)(m.randn(2, 4)), True),
    ("gn-not-divisible", lambda m: m.nn.functional.group_norm(m.randn(4, 3, 1), 2), True),
    ("gn-1d", lambda m: m.nn.functional.group_norm(m.randn(3), 3), True),
    ("gn-one-value", lambda m: m.nn.functional.group_norm(m.randn(1, 3, 1), 3), True),
    ("gn-weight-size", lambda m: m.nn.functional.group_norm(m.randn(4, 3, 2), 3, m.ones(2)),
     True),
    # torch's message shows the (absent) weight's shape [0] here; ember shows the bias's
    ("gn-bias-size", lambda m: m.nn.functional.group_norm(
        m.randn(4, 3, 2), 3, None, m.ones(2)), False),
    ("gn-int-input", lambda m: m.nn.functional.group_norm(m.ones(2, 4, dtype=m.int64), 2),
     True),
    ("GroupNorm-not-divisible", lambda m: m.nn.GroupNorm(2, 3), True),
    ("in-one-spatial", lambda m: m.nn.functional.instance_norm(m.randn(2, 3, 1)), True),
    ("in-stats-size", lambda m: m.nn.functional.instance_norm(
        m.randn(2, 3, 4), m.zeros(4), m.ones(4)), True),
    ("in-one-stat", lambda m: m.nn.functional.instance_norm(m.randn(2, 3, 4), m.zeros(3)),
     True),
    ("in-no-stats-eval", lambda m: m.nn.functional.instance_norm(
        m.randn(2, 3, 4), use_input_stats=False), True),
    ("InstanceNorm1d-4d", lambda m: m.nn.InstanceNorm1d(3)(m.randn(2, 3, 4, 5)), True),
    ("InstanceNorm2d-1d", lambda m: m.nn.InstanceNorm2d(3)(m.randn(3)), True),
    ("InstanceNorm3d-3d", lambda m: m.nn.InstanceNorm3d(3)(m.randn(3, 2, 2)), True),
    ("InstanceNorm1d-affine-features", lambda m: m.nn.InstanceNorm1d(4, affine=True)(
        m.randn(2, 3, 5)), True),
    ("InstanceNorm1d-affine-unbatched", lambda m: m.nn.InstanceNorm1d(4, affine=True)(
        m.randn(3, 5)), True),
    ("rms-shape-mismatch", lambda m: m.nn.functional.rms_norm(m.randn(4, 3), (4,)), True),
    ("rms-weight-shape", lambda m: m.nn.functional.rms_norm(m.randn(4, 3), (3,), m.ones(4)),
     True),
    ("rms-int-input", lambda m: m.nn.functional.rms_norm(m.ones(2, 3, dtype=m.int64), (3,)),
     True),
    ("lrn-2d", lambda m: m.nn.functional.local_response_norm(m.randn(2, 3), 2), True),
    ("LocalResponseNorm-2d", lambda m: m.nn.LocalResponseNorm(2)(m.randn(2, 3)), True),
]


@pytest.mark.parametrize("name,call,same_message", ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_bad_input(name, call, same_message):
    with pytest.raises(Exception) as et:
        call(torch)
    with pytest.raises(et.type) as ee:
        call(ember)
    if same_message:
        assert str(ee.value) == str(et.value)
    else:
        assert str(ee.value)
