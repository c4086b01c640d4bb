"""Losses and distances against PyTorch: values, input and target gradients, reductions,
the cross-entropy matrix, the fused cross-entropy against its composition, modules, errors."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, assert_close, gradcheck

REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(7)
X = rand(4, 3, seed=1)
T = rand(4, 3, seed=2)
P = rng.uniform(0.05, 0.95, (4, 3))        # probabilities, away from the log clamps
TP = rng.uniform(0.0, 1.0, (4, 3))         # targets in [0, 1]
SIGN = np.where(rand(4, 3, seed=3) > 0, 1.0, -1.0)
SIGN1 = np.array([1.0, -1.0, 1.0, -1.0])
IDX = np.array([0, 2, 1, 1])


def F(m):
    return m.nn.functional


def _quiet(fn):
    """``fn`` with PyTorch's and ember's deprecation/size warnings silenced."""
    def run(*args, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kw)
    return run


def _w(m, a, values):
    """A class-weight tensor in the dtype of ``a`` (NLL-style losses require it)."""
    return m.tensor(values, dtype=a.dtype)


# ---- every loss over every reduction: values and gradients (input and target) --------------
# (id, call(m, *inputs, reduction), inputs, grad_inputs or None for every float input)
LOSSES = [
    ("mse", lambda m, a, b, r: F(m).mse_loss(a, b, reduction=r), (X, T), None),
    ("mse_bcast", _quiet(lambda m, a, b, r: F(m).mse_loss(a, b, reduction=r)), (X, T[:1]),
     None),
    ("mse_weight", lambda m, a, b, w, r: F(m).mse_loss(a, b, reduction=r, weight=w),
     (X, T, P), None),
    ("l1", lambda m, a, b, r: F(m).l1_loss(a, b, reduction=r), (X, T), None),
    ("l1_weight", lambda m, a, b, w, r: F(m).l1_loss(a, b, reduction=r, weight=w),
     (X, T, P), None),
    ("smooth_l1", lambda m, a, b, r: F(m).smooth_l1_loss(a, b, reduction=r), (X, T), None),
    ("smooth_l1_beta", lambda m, a, b, r: F(m).smooth_l1_loss(a, b, reduction=r, beta=0.4),
     (X, T), None),
    ("smooth_l1_beta0", lambda m, a, b, r: F(m).smooth_l1_loss(a, b, reduction=r, beta=0.0),
     (X, T), None),
    ("huber", lambda m, a, b, r: F(m).huber_loss(a, b, reduction=r), (X, T), None),
    ("huber_delta", lambda m, a, b, r: F(m).huber_loss(a, b, reduction=r, delta=2.5),
     (X, T), None),
    ("huber_weight", lambda m, a, b, w, r: F(m).huber_loss(a, b, reduction=r, weight=w),
     (X, T, P), None),
    ("bce", lambda m, a, b, r: F(m).binary_cross_entropy(a, b, reduction=r), (P, TP), None),
    ("bce_weight", lambda m, a, b, w, r: F(m).binary_cross_entropy(a, b, w, reduction=r),
     (P, TP, P[0]), (0, 1)),
    ("bce_logits", lambda m, a, b, r: F(m).binary_cross_entropy_with_logits(a, b, reduction=r),
     (X * 4, TP), None),
    ("bce_logits_w_pw", lambda m, a, b, w, pw, r: F(m).binary_cross_entropy_with_logits(
        a, b, w, reduction=r, pos_weight=pw), (X * 4, TP, P[:, :1], P[0] * 3), (0, 1)),
    ("cross_entropy", lambda m, a, r: F(m).cross_entropy(a, m.tensor(IDX), reduction=r),
     (X,), None),
    ("cross_entropy_probs", lambda m, a, b, r: F(m).cross_entropy(a, b, reduction=r),
     (X, TP), None),
    ("nll", lambda m, a, r: F(m).nll_loss(a, m.tensor(IDX), reduction=r), (X,), None),
    ("kl_div", _quiet(lambda m, a, b, r: F(m).kl_div(a, b, reduction=r)), (X, TP), None),
    ("kl_div_batchmean", lambda m, a, b, r: F(m).kl_div(
        a, b, reduction="batchmean" if r == "mean" else r), (X, TP), None),
    ("kl_div_log_target", _quiet(lambda m, a, b, r: F(m).kl_div(a, b, reduction=r,
                                                                 log_target=True)),
     (X, T), None),
    ("poisson", lambda m, a, b, r: F(m).poisson_nll_loss(a, b, reduction=r), (X, TP * 3), None),
    ("poisson_full", lambda m, a, b, r: F(m).poisson_nll_loss(a, b, reduction=r, full=True),
     (X, TP * 3 + 0.5), None),
    ("poisson_linear", lambda m, a, b, r: F(m).poisson_nll_loss(a, b, log_input=False,
                                                                reduction=r),
     (P, TP * 3), None),
    ("gaussian", lambda m, a, b, v, r: F(m).gaussian_nll_loss(a, b, v, reduction=r),
     (X, T, P), None),
    ("gaussian_full_homo", lambda m, a, b, v, r: F(m).gaussian_nll_loss(
        a, b, v, full=True, reduction=r), (X, T, P[:, 0]), None),
    ("gaussian_bcast_var", lambda m, a, b, v, r: F(m).gaussian_nll_loss(a, b, v, reduction=r),
     (X, T, P[:1]), None),
    ("gaussian_float_var", lambda m, a, b, r: F(m).gaussian_nll_loss(a, b, 0.7, reduction=r),
     (X, T), None),
    ("gaussian_clamped_var", lambda m, a, b, v, r: F(m).gaussian_nll_loss(
        a, b, v, eps=0.3, reduction=r), (X, T, P), None),
    ("cosine_embedding", lambda m, a, b, r: F(m).cosine_embedding_loss(
        a, b, m.tensor(SIGN1), margin=0.1, reduction=r), (X, T), None),
    ("cosine_embedding_1d", lambda m, a, b, r: F(m).cosine_embedding_loss(
        a, b, m.tensor(-1.0), margin=-0.5, reduction=r), (X[0], T[0]), None),
    ("margin_ranking", lambda m, a, b, t, r: F(m).margin_ranking_loss(a, b, t, margin=0.2,
                                                                      reduction=r),
     (X[:, 0], T[:, 0], SIGN1), None),
    ("hinge_embedding", lambda m, a, r: F(m).hinge_embedding_loss(a, m.tensor(SIGN),
                                                                  reduction=r), (X,), None),
    ("hinge_embedding_margin", lambda m, a, r: F(m).hinge_embedding_loss(
        a, m.tensor(SIGN), margin=0.5, reduction=r), (X,), None),
    ("triplet", lambda m, a, p, n, r: F(m).triplet_margin_loss(a, p, n, reduction=r),
     (X, T, P), None),
    ("triplet_p1_swap", lambda m, a, p, n, r: F(m).triplet_margin_loss(
        a, p, n, margin=2.0, p=1, swap=True, reduction=r), (X, T, P), None),
    ("multilabel_soft_margin", lambda m, a, b, r: F(m).multilabel_soft_margin_loss(
        a, b, reduction=r), (X, TP), None),
    ("multilabel_soft_margin_w", lambda m, a, b, w, r: F(m).multilabel_soft_margin_loss(
        a, b, w, reduction=r), (X, TP, P[0]), None),
    ("soft_margin", lambda m, a, r: F(m).soft_margin_loss(a, m.tensor(SIGN), reduction=r),
     (X,), None),
    ("multi_margin", lambda m, a, r: F(m).multi_margin_loss(a, m.tensor(IDX), reduction=r),
     (X,), None),
    ("multi_margin_p2_w", lambda m, a, r: F(m).multi_margin_loss(
        a, m.tensor(IDX), p=2, margin=0.5, weight=_w(m, a, [0.5, 1.0, 2.0]), reduction=r),
     (X,), None),
    ("multi_margin_1d", lambda m, a, r: F(m).multi_margin_loss(a, m.tensor(1), reduction=r),
     (X[0],), None),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,inputs,grad_inputs", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_vs_torch(name, fn, inputs, grad_inputs, reduction):
    check(lambda m, *a: fn(m, *a, reduction), None, *inputs, grad_inputs=grad_inputs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,inputs,grad_inputs", LOSSES, ids=[c[0] for c in LOSSES])
def test_loss_non_contiguous(name, fn, inputs, grad_inputs, reduction):
    """The same calls on transposed-back views (non-contiguous memory)."""
    wide = [np.ascontiguousarray(np.swapaxes(a, 0, -1)) if a.ndim > 1 else a for a in inputs]

    def call(m, *a):
        return fn(m, *[x.transpose(0, -1) if x.dim() > 1 else x for x in a], reduction)
    check(call, None, *wide, grad_inputs=grad_inputs, dtypes=("float64",))


# ---- grad_fn names: the fused losses are single nodes named as PyTorch names them -----------

GRAD_FN = [
    lambda m, x: F(m).mse_loss(x, x.detach() * 0.5),
    lambda m, x: F(m).l1_loss(x, x.detach() * 0.5),
    lambda m, x: F(m).l1_loss(x, x.detach() * 0.5, reduction="sum"),
    lambda m, x: F(m).l1_loss(x, x.detach() * 0.5, reduction="none"),
    lambda m, x: F(m).smooth_l1_loss(x, x.detach() * 0.5),
    lambda m, x: F(m).huber_loss(x, x.detach() * 0.5, reduction="none"),
    lambda m, x: F(m).binary_cross_entropy(x.sigmoid(), x.detach().sigmoid()),
    lambda m, x: F(m).binary_cross_entropy_with_logits(x, x.detach().sigmoid()),
    lambda m, x: F(m).soft_margin_loss(x, x.detach().sign()),
    lambda m, x: F(m).nll_loss(x, m.tensor([0, 1, 2, 0])),
    lambda m, x: F(m).cross_entropy(x, m.tensor([0, 1, 2, 0]), reduction="sum"),
    lambda m, x: F(m).cross_entropy(x.reshape(2, 3, 2), m.tensor([[0, 1], [2, 0]])),
    lambda m, x: F(m).cross_entropy(x, m.tensor([0, 1, 2, 0]), label_smoothing=0.1),
    lambda m, x: F(m).nll_loss(x.reshape(1, 3, 2, 2), m.zeros(1, 2, 2, dtype=m.long)),
]


@pytest.mark.parametrize("i", range(len(GRAD_FN)))
def test_grad_fn_names(i):
    xe = ember.tensor(X.T.copy(), requires_grad=True).T
    xt = torch.tensor(X.T.copy(), requires_grad=True).T
    assert GRAD_FN[i](ember, xe).grad_fn.name() == GRAD_FN[i](torch, xt).grad_fn.name()


# ---- cross-entropy matrix -------------------------------------------------------------------
# input shapes: unbatched, (N, C), and 1 to 3 extra dims; C = 3 everywhere
CE_SHAPES = [(3,), (5, 3), (2, 3, 4), (2, 3, 2, 2), (2, 3, 1, 2, 2)]
CLASS_W = [0.2, 1.0, 2.5]


def _index_target(shape, ignore, seed=0):
    r = np.random.default_rng(seed)
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = r.integers(0, 3, tshape)
    if ignore == "some":
        flat = t.reshape(-1)
        flat[::2] = 1          # ignore_index=1 lies inside the class range
    elif ignore == "all":
        t = np.full(tshape, -100)
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("ignore", ["none", "some", "all"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_cross_entropy_index_matrix(shape, weighted, ignore, smoothing, reduction):
    t = _index_target(shape, ignore)
    ignore_index = 1 if ignore == "some" else -100
    x = rand(*shape, seed=11)

    def call(m, a):
        w = _w(m, a, CLASS_W) if weighted else None
        return F(m).cross_entropy(a, m.tensor(t), weight=w, ignore_index=ignore_index,
                                  reduction=reduction, label_smoothing=smoothing)
    check(call, None, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_cross_entropy_prob_matrix(shape, weighted, smoothing, reduction):
    x = rand(*shape, seed=12)
    raw = np.random.default_rng(13).uniform(0, 1, shape)
    probs = raw / raw.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)

    def call(m, a, b):
        w = m.tensor(CLASS_W, dtype=a.dtype) if weighted else None
        return F(m).cross_entropy(a, b, weight=w, reduction=reduction,
                                  label_smoothing=smoothing)
    check(call, None, x, probs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore", ["none", "some", "all"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_nll_matrix(shape, weighted, ignore, reduction):
    t = _index_target(shape, ignore, seed=3)
    ignore_index = 1 if ignore == "some" else -100

    def call(m, a):
        w = _w(m, a, CLASS_W) if weighted else None
        return F(m).nll_loss(a, m.tensor(t), weight=w, ignore_index=ignore_index,
                             reduction=reduction)
    check(call, None, rand(*shape, seed=14))


def test_all_ignored_values():
    """An all-ignored batch: NaN mean (0 / 0), zero sum, zero gradients, as in PyTorch."""
    for smoothing in (0.0, 0.2):
        x = ember.tensor(X, requires_grad=True)
        loss = ember.nn.functional.cross_entropy(x, ember.full((4,), -100),
                                                 label_smoothing=smoothing)
        assert math.isnan(loss.item())
        loss.backward()
        assert not x.grad.numpy().any()
    s = ember.nn.functional.nll_loss(ember.tensor(X), ember.full((4,), -100), reduction="sum")
    assert s.item() == 0.0


def test_empty_batch():
    check(lambda m, a: F(m).cross_entropy(a, m.zeros(0, dtype=m.long)), None, np.zeros((0, 3)))
    check(lambda m, a: F(m).cross_entropy(a, m.zeros(0, dtype=m.long), reduction="sum"), None,
          np.zeros((0, 3)))
    check(lambda m, a: F(m).mse_loss(a, a * 2), None, np.zeros((0, 2)))
    check(lambda m, a: F(m).mse_loss(a, a * 2, reduction="sum"), None, np.zeros((0, 2)))


def test_cross_entropy_odd_values():
    """Huge logits stay finite (log-softmax is shifted); uint8 targets; negative smoothing."""
    big = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 3.0]])
    check(lambda m, a: F(m).cross_entropy(a, m.tensor([0, 2])), None, big)
    check(lambda m, a: F(m).cross_entropy(a, m.tensor([0, 2], dtype=m.uint8)), None, X[:2])
    check(lambda m, a: F(m).cross_entropy(a, m.tensor(IDX), label_smoothing=-0.5), None, X)
    check(lambda m, a: F(m).cross_entropy(a, m.tensor(IDX), label_smoothing=1.0), None, X)
    # (C,) with a (1,) target: PyTorch's own backward refuses this shape, compare the forward
    check(lambda m, a: F(m).nll_loss(a, m.tensor([1])), None, X[0], grad=False)


def test_boundary_values():
    """BCE at probabilities 0 and 1 (logs clamped to -100, PyTorch's huge and infinite
    gradients), hinge targets that are neither 1 nor -1, KL at target 0 (NaN gradient)."""
    p01 = np.array([0.0, 1.0, 0.5, 1e-30])
    t01 = np.array([0.3, 0.6, 1.0, 0.0])
    with np.errstate(all="ignore"):  # log(0) and 0 * inf are expected here
        for r in REDUCTIONS:
            check(lambda m, a, b: F(m).binary_cross_entropy(a, b, reduction=r), None, p01, t01,
                  dtypes=("float64",))
        check(lambda m, a: F(m).hinge_embedding_loss(a, m.tensor([1.0, 0.0, -1.0, 2.0])), None,
              np.array([0.5, -0.2, 0.3, 1.7]))
        check(lambda m, a, b: F(m).kl_div(a, b, reduction="sum"), None,
              np.array([0.1, -1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
        check(lambda m, a, b: F(m).poisson_nll_loss(a, b, full=True, log_input=False), None,
              np.array([0.5, 1.5, 2.0]), np.array([0.0, 1.0, 3.0]))


def test_cross_entropy_half():
    x16 = X.astype(np.float16)
    e = ember.nn.functional.cross_entropy(ember.tensor(x16), ember.tensor(IDX))
    t = torch.nn.functional.cross_entropy(torch.tensor(x16), torch.tensor(IDX))
    assert_close(e, t, "float16")


# ---- fused cross-entropy against the unfused composition ------------------------------------

def _unfused_ce(x, t, weight, ignore_index, reduction, smoothing):
    """``nll_loss(log_softmax(x))`` plus PyTorch's smoothing term, from public ember ops."""
    Fe = ember.nn.functional
    class_dim = 0 if x.dim() == 1 else 1
    logp = Fe.log_softmax(x, class_dim)
    nll = Fe.nll_loss(logp, t, weight, ignore_index=ignore_index, reduction=reduction)
    if not smoothing:
        return nll
    n = x.shape[class_dim]
    if weight is not None:
        wshape = [n if i == class_dim else 1 for i in range(x.dim())]
        smooth = -(logp * weight.reshape(wshape)).sum(class_dim)
    else:
        smooth = -logp.sum(class_dim)
    keep = t != ignore_index
    smooth = smooth.masked_fill(~keep, 0.0)
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        denom = weight[t.masked_select(keep)].sum() if weight is not None else keep.sum()
        smooth = smooth.sum() / denom
    return (1 - smoothing) * nll + smooth * (smoothing / n)


FUSED_CASES = [((6, 4), "none", 0.0, False), ((6, 4), "some", 0.2, True),
               ((2, 4, 3), "some", 0.0, True), ((2, 4, 3, 2), "none", 0.4, False),
               ((4,), "none", 0.1, True)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,ignore,smoothing,weighted", FUSED_CASES, ids=str)
def test_fused_cross_entropy_matches_composition(shape, ignore, smoothing, weighted, reduction):
    x_np = rand(*shape, seed=5)
    t_np = _index_target(shape, ignore, seed=6)
    ignore_index = 1 if ignore == "some" else -100
    w = ember.tensor([0.5, 1.5, 1.0, 2.0][:shape[0 if len(shape) == 1 else 1]],
                     dtype=ember.float64) if weighted else None
    t = ember.tensor(t_np)
    g_np = np.random.default_rng(9).standard_normal(() if reduction != "none" else t_np.shape)
    results = []
    for fused in (True, False):
        # an all-ignored draw divides 0 by 0 in the composition: NaN, as PyTorch gives
        with np.errstate(all="ignore"):
            x = ember.tensor(x_np, requires_grad=True)
            loss = (ember.nn.functional.cross_entropy(
                x, t, w, ignore_index=ignore_index, reduction=reduction,
                label_smoothing=smoothing) if fused else
                _unfused_ce(x, t, w, ignore_index, reduction, smoothing))
            gx, = ember.autograd.grad(loss, x, ember.tensor(g_np), create_graph=True)
            # second order: the gradient of <gx, v> in x (the fused node differentiates again)
            v = ember.tensor(np.random.default_rng(10).standard_normal(x_np.shape))
            ggx, = ember.autograd.grad((gx * v).sum(), x)
        results.append((loss, gx, ggx))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_fused_cross_entropy_gradgradcheck():
    t = ember.tensor([0, 2, 1])
    w = ember.tensor([0.5, 1.5, 1.0], dtype=ember.float64)
    x = ember.tensor(rand(3, 3, seed=4), requires_grad=True)
    fn = lambda a: ember.nn.functional.cross_entropy(a, t, w, label_smoothing=0.2)  # noqa: E731
    assert ember.autograd.gradcheck(fn, (x,))
    assert ember.autograd.gradgradcheck(fn, (x,))


def test_second_order_vs_torch():
    """Double backward of the fused losses against PyTorch's."""
    cases = [lambda m, a, b: F(m).mse_loss(a, b), lambda m, a, b: F(m).huber_loss(a, b),
             lambda m, a, b: F(m).l1_loss(a, b, reduction="sum"),
             lambda m, a, b: F(m).binary_cross_entropy(a.sigmoid(), b.sigmoid()),
             lambda m, a, b: F(m).binary_cross_entropy(a.sigmoid(), b.sigmoid(), b[0].detach()),
             lambda m, a, b: F(m).nll_loss(a.log_softmax(1), m.tensor(IDX), b[0].detach()),
             lambda m, a, b: F(m).smooth_l1_loss(a, b, beta=0.5),
             lambda m, a, b: F(m).binary_cross_entropy_with_logits(a, b.sigmoid()),
             lambda m, a, b: F(m).cross_entropy(a, b.softmax(1)),
             lambda m, a, b: F(m).cross_entropy(a, m.tensor(IDX), label_smoothing=0.1),
             lambda m, a, b: F(m).soft_margin_loss(a, b.detach().sign())]
    for fn in cases:
        out = []
        for m in (ember, torch):
            a = m.tensor(X, requires_grad=True)
            b = m.tensor(T, requires_grad=True)
            ga, = m.autograd.grad(fn(m, a, b), a, create_graph=True)
            gg = m.autograd.grad((ga * ga).sum(), [a, b], allow_unused=True)
            out.append([ga] + [g if g is not None else m.zeros_like(a) for g in gg])
        for e, t in zip(*out):
            # PyTorch hands back a lazy ZeroTensor where the second derivative vanishes
            assert_close(e, torch.from_numpy(t.detach().numpy(force=True)))


# ---- distances and normalisation ------------------------------------------------------------

DIST = [
    ("cosine", lambda m, a, b: F(m).cosine_similarity(a, b), (X, T)),
    ("cosine_dim0_eps", lambda m, a, b: F(m).cosine_similarity(a, b, dim=0, eps=0.5), (X, T)),
    ("cosine_bcast", lambda m, a, b: F(m).cosine_similarity(a, b, dim=-1), (X, T[0])),
    ("cosine_tiny_norm", lambda m, a, b: F(m).cosine_similarity(a * 1e-9, b), (X, T)),
    ("cosine_1d", lambda m, a, b: F(m).cosine_similarity(a, b, dim=0), (X[0], T[0])),
    ("pairwise", lambda m, a, b: F(m).pairwise_distance(a, b), (X, T)),
    ("pairwise_p1_keepdim", lambda m, a, b: F(m).pairwise_distance(a, b, p=1, keepdim=True),
     (X, T)),
    ("pairwise_p3", lambda m, a, b: F(m).pairwise_distance(a, b, p=3.0, eps=0.1), (X, T)),
    ("pairwise_pinf", lambda m, a, b: F(m).pairwise_distance(a, b, p=math.inf), (X, T)),
    ("pairwise_bcast", lambda m, a, b: F(m).pairwise_distance(a, b), (X, T[0])),
    ("pairwise_1d", lambda m, a, b: F(m).pairwise_distance(a, b), (X[0], T[0])),
    ("pairwise_0d", lambda m, a, b: F(m).pairwise_distance(a, b), (np.array(0.3),
                                                                   np.array(-1.2))),
    ("normalize", lambda m, a: F(m).normalize(a), (X,)),
    ("normalize_p1_dim0", lambda m, a: F(m).normalize(a, p=1, dim=0), (X,)),
    ("normalize_dims", lambda m, a: F(m).normalize(a, dim=(0, 1), eps=0.5), (X,)),
    ("normalize_zero_row", lambda m, a: F(m).normalize(a * m.tensor([[0.0], [1], [1], [1]],
                                                                    dtype=a.dtype)), (X,)),
    ("normalize_3d", lambda m, a: F(m).normalize(a, p=3, dim=-1), (rand(2, 3, 4, seed=8),)),
]


@pytest.mark.parametrize("name,fn,inputs", DIST, ids=[c[0] for c in DIST])
def test_distances(name, fn, inputs):
    check(fn, None, *inputs)


def test_distance_int_promotion():
    ints = np.array([[1, 2, 0], [3, -1, 2]])
    check(lambda m, a: F(m).cosine_similarity(m.tensor(ints), a), None, X[:2])
    check(lambda m, a: F(m).pairwise_distance(m.tensor(ints), m.tensor(ints[::-1].copy())),
          None, X[:1], grad=False)
    check(lambda m, a: F(m).mse_loss(m.tensor(ints), a), None, X[:2])
    check(lambda m, a: F(m).l1_loss(a, m.tensor(ints)), None, X[:2])
    check(lambda m, a: F(m).mse_loss(a, m.tensor(ints > 0)), None, X[:2])
    # float32 with float64 promotes to float64
    check(lambda m, a: F(m).mse_loss(a.float(), a.double() * 2), None, X, dtypes=("float64",))
    check(lambda m, a: F(m).smooth_l1_loss(a.float(), a.double() * 2), None, X,
          dtypes=("float64",))
    check(lambda m, a, b: F(m).binary_cross_entropy_with_logits(a.float(), b.double()), None,
          X, TP, dtypes=("float64",))


# ---- hypothesis: shapes and broadcasting ----------------------------------------------------

@st.composite
def _broadcast_pair(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    other = [draw(st.sampled_from([d, 1])) for d in shape]
    cut = draw(st.integers(0, len(other)))
    return tuple(shape), tuple(other[cut:])


@settings(max_examples=25, deadline=None)
@given(_broadcast_pair(), st.sampled_from(["mse_loss", "l1_loss", "smooth_l1_loss",
                                           "huber_loss", "soft_margin_loss"]),
       st.sampled_from(REDUCTIONS))
def test_pointwise_broadcasting(shapes, name, reduction):
    sa, sb = shapes
    a, b = rand(*sa, seed=1), rand(*sb, seed=2)
    grad_inputs = (0,) if name == "soft_margin_loss" else None
    check(_quiet(lambda m, x, y: getattr(F(m), name)(x, y, reduction=reduction)), None, a, b,
          grad_inputs=grad_inputs, dtypes=("float64",))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 4), st.integers(1, 5), st.lists(st.integers(1, 3), max_size=2),
       st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.15]), st.booleans())
def test_cross_entropy_shapes(n, c, extra, reduction, smoothing, weighted):
    shape = (n, c, *extra)
    x = rand(*shape, seed=n + c)
    t = np.random.default_rng(c).integers(0, c, (n, *extra))

    def call(m, a):
        w = m.tensor(np.linspace(0.5, 2.0, c), dtype=a.dtype) if weighted else None
        return F(m).cross_entropy(a, m.tensor(t), w, reduction=reduction,
                                  label_smoothing=smoothing)
    check(call, None, x, dtypes=("float64",))


# ---- legacy arguments, warnings -------------------------------------------------------------

LEGACY = [(None, False), (False, None), (False, True), (True, False), (True, None)]


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "kl_div",
                                  "soft_margin_loss"])
def test_legacy_size_average_reduce(name, size_average, reduce):
    outs = []
    for m in (ember, torch):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            out = getattr(F(m), name)(m.tensor(X), m.tensor(SIGN), size_average=size_average,
                                      reduce=reduce)
        msgs = [str(w.message) for w in rec]
        assert any("size_average and reduce args will be deprecated" in s for s in msgs)
        outs.append(out)
    assert_close(*outs)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_legacy_class_losses(name):
    for sa, rd in LEGACY:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = getattr(F(ember), name)(ember.tensor(X), ember.tensor(IDX), size_average=sa,
                                        reduce=rd)
            t = getattr(F(torch), name)(torch.tensor(X), torch.tensor(IDX), size_average=sa,
                                        reduce=rd)
        assert_close(e, t)


def test_warnings():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        ember.nn.functional.kl_div(ember.tensor(X), ember.tensor(TP))
    with pytest.warns(UserWarning, match="Using a target size"):
        ember.nn.functional.mse_loss(ember.tensor(X), ember.tensor(T[0]))
    with pytest.warns(UserWarning, match="elementwise_mean"):
        ember.nn.functional.mse_loss(ember.tensor(X), ember.tensor(T),
                                     reduction="elementwise_mean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # batchmean and matching sizes do not warn
        ember.nn.functional.kl_div(ember.tensor(X), ember.tensor(TP), reduction="batchmean")
        ember.nn.functional.mse_loss(ember.tensor(X), ember.tensor(T))


# ---- bad inputs: PyTorch's exception types --------------------------------------------------

def _long(m, v):
    return m.tensor(v, dtype=m.long)


BAD = [
    ("nll_float_target", lambda m: F(m).nll_loss(m.tensor(X), m.zeros(4)), "Float"),
    ("ce_float_target_shape", lambda m: F(m).cross_entropy(m.tensor(X), m.zeros(4)), "Float"),
    ("ce_int32_target", lambda m: F(m).cross_entropy(m.tensor(X), m.zeros(4, dtype=m.int32)),
     "Long or Byte"),
    ("ce_bool_target", lambda m: F(m).cross_entropy(m.tensor(X), m.zeros(4, dtype=m.bool)),
     "Bool"),
    ("ce_target_oob", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, [0, 5, 1, 1])),
     "Target 5 is out of bounds."),
    ("ce_target_negative", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, [0, -1, 1, 1]),
                                                        reduction="none"),
     "Target -1 is out of bounds."),
    ("ce_target_oob_3d", lambda m: F(m).cross_entropy(m.tensor(X).reshape(2, 3, 2),
                                                      _long(m, [[0, 3], [1, 1]])), "Target 3"),
    ("nll_target_oob", lambda m: F(m).nll_loss(m.tensor(X), _long(m, [0, 1, 7, 1])), "7"),
    ("ce_batch_mismatch", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, [0, 1, 1])),
     "batch_size (4) to match target batch_size (3)"),
    ("ce_spatial_mismatch", lambda m: F(m).cross_entropy(m.tensor(X).reshape(2, 3, 2),
                                                         m.zeros(2, 3, dtype=m.long)),
     "Expected target size [2, 2], got [2, 3]"),
    ("ce_4d_target_dims", lambda m: F(m).cross_entropy(m.tensor(X).reshape(1, 3, 2, 2),
                                                       m.zeros(1, 4, dtype=m.long)),
     "3D tensors"),
    ("ce_4d_mismatch", lambda m: F(m).cross_entropy(m.tensor(X).reshape(1, 3, 2, 2),
                                                    m.zeros(1, 2, 3, dtype=m.long)),
     "[1, 3, 2, 2]"),
    ("ce_multi_target", lambda m: F(m).cross_entropy(m.tensor(X), m.zeros(4, 1, dtype=m.long)),
     "multi-target"),
    ("nll_0d_input", lambda m: F(m).nll_loss(m.tensor(1.0), m.tensor(0)), "got 0"),
    ("nll_1d_big_target", lambda m: F(m).nll_loss(m.tensor(X[0]), m.zeros(2, dtype=m.long)),
     "size 1"),
    ("ce_weight_size", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, IDX),
                                                    weight=m.ones(4, dtype=m.float64)),
     "all 3 classes"),
    ("ce_weight_dtype", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, IDX),
                                                     weight=m.ones(3)), "Double"),
    ("ce_prob_weight_size", lambda m: F(m).cross_entropy(m.tensor(X), m.tensor(TP),
                                                         weight=m.ones(2)), "all 3 classes"),
    ("ce_prob_int_target", lambda m: F(m).cross_entropy(m.tensor(X), m.ones(4, 3, dtype=m.long)),
     "floating point type"),
    ("ce_prob_ignore_index", lambda m: F(m).cross_entropy(m.tensor(X), m.tensor(TP),
                                                          ignore_index=1), "ignore_index"),
    ("ce_smoothing_gt_1", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, IDX),
                                                       label_smoothing=1.5), "1.5"),
    ("ce_int_input", lambda m: F(m).cross_entropy(m.ones(4, 3, dtype=m.long), _long(m, IDX)),
     "not implemented for 'Long'"),
    ("nll_int_input", lambda m: F(m).nll_loss(m.ones(4, 3, dtype=m.long), _long(m, IDX)),
     "not implemented for 'Long'"),
    ("nll_weight_requires_grad", lambda m: F(m).nll_loss(
        m.tensor(X), _long(m, IDX), weight=m.ones(3, dtype=m.float64, requires_grad=True)),
     "not differentiable with respect to argument 'weight'"),
    ("bad_reduction_mse", lambda m: F(m).mse_loss(m.tensor(X), m.tensor(T), reduction="avg"),
     "avg is not a valid value for reduction"),
    ("bad_reduction_ce", lambda m: F(m).cross_entropy(m.tensor(X), _long(m, IDX),
                                                      reduction="avg"), "avg"),
    ("bad_reduction_l1", lambda m: F(m).l1_loss(m.tensor(X), m.tensor(T), reduction="x"), "x"),
    ("bad_reduction_kl", lambda m: F(m).kl_div(m.tensor(X), m.tensor(T), reduction="x"), "x"),
    ("bad_reduction_poisson", lambda m: F(m).poisson_nll_loss(m.tensor(X), m.tensor(T),
                                                              reduction="x"), "x"),
    ("bad_reduction_gaussian", lambda m: F(m).gaussian_nll_loss(
        m.tensor(X), m.tensor(T), m.tensor(P), reduction="x"), "x is not valid"),
    ("bad_reduction_weighted_mse", lambda m: F(m).mse_loss(
        m.tensor(X), m.tensor(T), weight=m.tensor(P), reduction="x"), "Invalid reduction mode"),
    ("bad_reduction_multilabel", lambda m: F(m).multilabel_soft_margin_loss(
        m.tensor(X), m.tensor(TP), reduction="x"), "x"),
    ("mse_shape_mismatch", lambda m: F(m).mse_loss(m.tensor(X), m.ones(3, 3)),
     "The size of tensor a (4) must match the size of tensor b (3)"),
    ("mse_int_int", lambda m: F(m).mse_loss(m.ones(3, dtype=m.long), m.ones(3, dtype=m.long)),
     "mse"),
    ("l1_int_int", lambda m: F(m).l1_loss(m.ones(3, dtype=m.long), m.ones(3, dtype=m.long)),
     "mean"),
    ("mse_weight_size", lambda m: F(m).mse_loss(m.tensor(X), m.tensor(T), weight=m.ones(3)),
     "Weights and input must have the same size."),
    ("smooth_l1_negative_beta", lambda m: F(m).smooth_l1_loss(m.tensor(X), m.tensor(T),
                                                              beta=-1.0), "negative"),
    ("huber_zero_delta", lambda m: F(m).huber_loss(m.tensor(X), m.tensor(T), delta=0.0),
     "non-positive"),
    ("bce_size", lambda m: F(m).binary_cross_entropy(m.tensor(P), m.tensor(TP[:, :1])),
     "different to the input size"),
    ("bce_input_range", lambda m: F(m).binary_cross_entropy(m.tensor(P + 1), m.tensor(TP)),
     "all elements of input should be between 0 and 1"),
    ("bce_nan_input", lambda m: F(m).binary_cross_entropy(m.tensor([math.nan]), m.tensor([0.5])),
     "input"),
    ("bce_target_range", lambda m: F(m).binary_cross_entropy(m.tensor(P), m.tensor(TP + 2)),
     "all elements of target should be between 0 and 1"),
    ("bce_target_dtype", lambda m: F(m).binary_cross_entropy(m.tensor(P),
                                                             m.ones(4, 3, dtype=m.float32)),
     "Found dtype Float but expected Double"),
    ("bce_weight_bad", lambda m: F(m).binary_cross_entropy(m.tensor(P), m.tensor(TP),
                                                           weight=m.ones(2)), "broadcast"),
    ("bce_weight_bigger", lambda m: F(m).binary_cross_entropy(m.tensor(P), m.tensor(TP),
                                                              weight=m.ones(2, 4, 3)),
     "doesn't match the broadcast shape"),
    ("bce_logits_size", lambda m: F(m).binary_cross_entropy_with_logits(
        m.tensor(X), m.tensor(TP[:, :1])), "must be the same as input size"),
    ("bce_logits_int_target", lambda m: F(m).binary_cross_entropy_with_logits(
        m.tensor(X), m.ones(4, 3, dtype=m.long)), "can't be cast"),
    ("bce_logits_int_input", lambda m: F(m).binary_cross_entropy_with_logits(
        m.ones(4, 3, dtype=m.long), m.tensor(TP)), "not implemented"),
    ("bce_logits_pos_weight", lambda m: F(m).binary_cross_entropy_with_logits(
        m.tensor(X), m.tensor(TP), pos_weight=m.ones(4)), "must match"),
    ("bce_logits_weight_grad", lambda m: F(m).binary_cross_entropy_with_logits(
        m.tensor(X), m.tensor(TP), weight=m.ones(3, requires_grad=True)), "'weight'"),
    ("gaussian_negative_var", lambda m: F(m).gaussian_nll_loss(m.tensor(X), m.tensor(T),
                                                               -m.tensor(P)), "negative"),
    ("gaussian_negative_float", lambda m: F(m).gaussian_nll_loss(m.tensor(X), m.tensor(T),
                                                                 -1.0), "negative"),
    ("gaussian_var_size", lambda m: F(m).gaussian_nll_loss(m.tensor(X), m.tensor(T),
                                                           m.ones(2)), "incorrect size"),
    ("gaussian_int_var", lambda m: F(m).gaussian_nll_loss(m.tensor(X), m.tensor(T), 1), None),
    ("kl_int", lambda m: F(m).kl_div(m.ones(3, dtype=m.long), m.ones(3, dtype=m.long),
                                     reduction="sum"), "Integral"),
    ("triplet_margin", lambda m: F(m).triplet_margin_loss(m.tensor(X), m.tensor(T), m.tensor(P),
                                                          margin=0.0), "greater than 0"),
    ("triplet_dims", lambda m: F(m).triplet_margin_loss(m.tensor(X), m.tensor(T),
                                                        m.tensor(P[0])), "1D inputs"),
    ("cosine_emb_target_dims", lambda m: F(m).cosine_embedding_loss(
        m.tensor(X), m.tensor(T), m.ones(4, 1)), "multi-target"),
    ("cosine_emb_input_dims", lambda m: F(m).cosine_embedding_loss(
        m.tensor(X).reshape(4, 3, 1), m.tensor(T).reshape(4, 3, 1), m.ones(4)), "[4, 3, 1]"),
    ("margin_ranking_dims", lambda m: F(m).margin_ranking_loss(m.tensor(X), m.tensor(T[:, 0]),
                                                               m.ones(4)), "same dimension"),
    ("soft_margin_target_grad", lambda m: F(m).soft_margin_loss(
        m.tensor(X), m.tensor(SIGN, requires_grad=True)), "'target'"),
    ("soft_margin_shapes", lambda m: F(m).soft_margin_loss(m.tensor(X), m.ones(4)), "size"),
    ("multi_margin_p", lambda m: F(m).multi_margin_loss(m.tensor(X), _long(m, IDX), p=3),
     "only p == 1 and p == 2"),
    ("multi_margin_target_size", lambda m: F(m).multi_margin_loss(m.tensor(X), _long(m, [0, 1])),
     "Expected target size [4], but got [2]"),
    ("multi_margin_oob", lambda m: F(m).multi_margin_loss(m.tensor(X), _long(m, [0, 1, 5, 1])),
     "target out of range"),
    ("multi_margin_weight", lambda m: F(m).multi_margin_loss(m.tensor(X), _long(m, IDX),
                                                             weight=m.ones(2, dtype=m.float64)),
     "inconsistent weight size"),
    ("cosine_sim_ints", lambda m: F(m).cosine_similarity(m.ones(3, 2, dtype=m.long),
                                                         m.ones(3, 2, dtype=m.long)), "Long"),
    ("cosine_sim_shapes", lambda m: F(m).cosine_similarity(m.ones(3, 2), m.ones(3)), "size"),
    ("cosine_sim_dim", lambda m: F(m).cosine_similarity(m.ones(3, 2), m.ones(3, 2), dim=2),
     "Dimension out of range"),
    ("normalize_int", lambda m: F(m).normalize(m.ones(2, 3, dtype=m.long)), "Long"),
    ("normalize_dim", lambda m: F(m).normalize(m.ones(3)), "Dimension out of range"),
]


@pytest.mark.parametrize("name,fn,msg", BAD, ids=[c[0] for c in BAD])
def test_bad_inputs_raise_like_torch(name, fn, msg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as te:
            fn(torch)
        with pytest.raises(Exception) as ee:
            fn(ember)
    assert ee.type is te.type, f"ember raised {ee.type.__name__}: {ee.value}; torch raised " \
                               f"{te.type.__name__}: {te.value}"
    if msg is not None:
        assert msg in str(ee.value), str(ee.value)


def test_index_error_message_matches_torch():
    for m in (torch, ember):
        with pytest.raises(IndexError, match=r"^Target 5 is out of bounds\.$"):
            F(m).cross_entropy(m.tensor(X), _long(m, [0, 5, 1, 1]))


def test_nll_float_target_names_dtype():
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got "
                                           "Float"):
        ember.nn.functional.nll_loss(ember.tensor(X), ember.zeros(4))


# ---- modules --------------------------------------------------------------------------------

# (class name, constructor kwargs builder(m, dt), forward inputs builder(m, dt),
#  indices of forward inputs that require grad)
MODULES = [
    ("MSELoss", lambda m, d: {}, lambda m, d: (X, T), (0, 1)),
    ("MSELoss", lambda m, d: {"reduction": "sum"}, lambda m, d: (X, T), (0, 1)),
    ("L1Loss", lambda m, d: {"reduction": "none"}, lambda m, d: (X, T), (0, 1)),
    ("SmoothL1Loss", lambda m, d: {"beta": 0.5}, lambda m, d: (X, T), (0, 1)),
    ("HuberLoss", lambda m, d: {"delta": 0.5, "reduction": "sum"}, lambda m, d: (X, T), (0, 1)),
    ("CrossEntropyLoss", lambda m, d: {}, lambda m, d: (X, IDX), (0,)),
    ("CrossEntropyLoss", lambda m, d: {"weight": m.tensor(CLASS_W, dtype=d), "ignore_index": 1,
                                       "label_smoothing": 0.1},
     lambda m, d: (X, IDX), (0,)),
    ("CrossEntropyLoss", lambda m, d: {"reduction": "none"}, lambda m, d: (X, TP), (0, 1)),
    ("NLLLoss", lambda m, d: {"weight": m.tensor(CLASS_W, dtype=d)}, lambda m, d: (X, IDX),
     (0,)),
    ("BCELoss", lambda m, d: {"weight": m.tensor(P[0], dtype=d)}, lambda m, d: (P, TP), (0, 1)),
    ("BCEWithLogitsLoss", lambda m, d: {"pos_weight": m.tensor(P[0] * 2, dtype=d)},
     lambda m, d: (X, TP), (0, 1)),
    ("BCEWithLogitsLoss", lambda m, d: {"weight": m.tensor(P[:, :1], dtype=d),
                                        "reduction": "none"}, lambda m, d: (X, TP), (0, 1)),
    ("KLDivLoss", lambda m, d: {"reduction": "batchmean", "log_target": True},
     lambda m, d: (X, T), (0, 1)),
    ("PoissonNLLLoss", lambda m, d: {"full": True}, lambda m, d: (X, TP * 4), (0, 1)),
    ("GaussianNLLLoss", lambda m, d: {"full": True, "eps": 1e-3}, lambda m, d: (X, T, P),
     (0, 1, 2)),
    ("CosineEmbeddingLoss", lambda m, d: {"margin": 0.2}, lambda m, d: (X, T, SIGN1), (0, 1)),
    ("MarginRankingLoss", lambda m, d: {"margin": 0.3},
     lambda m, d: (X[:, 0], T[:, 0], SIGN1), (0, 1, 2)),
    ("HingeEmbeddingLoss", lambda m, d: {"margin": 2.0}, lambda m, d: (X, SIGN), (0,)),
    ("TripletMarginLoss", lambda m, d: {"margin": 0.5, "p": 1.0, "swap": True},
     lambda m, d: (X, T, P), (0, 1, 2)),
    ("MultiLabelSoftMarginLoss", lambda m, d: {"weight": m.tensor(P[0], dtype=d)},
     lambda m, d: (X, TP), (0, 1)),
    ("SoftMarginLoss", lambda m, d: {}, lambda m, d: (X, SIGN), (0,)),
    ("MultiMarginLoss", lambda m, d: {"p": 2, "weight": m.tensor(CLASS_W, dtype=d)},
     lambda m, d: (X, IDX), (0,)),
    ("CosineSimilarity", lambda m, d: {"dim": 0, "eps": 1e-6}, lambda m, d: (X, T), (0, 1)),
    ("PairwiseDistance", lambda m, d: {"p": 1.0, "keepdim": True}, lambda m, d: (X, T), (0, 1)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kwargs,inputs,grads", MODULES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(MODULES)])
def test_modules_vs_torch(name, kwargs, inputs, grads, dtype):
    outs, in_grads, mods = [], [], []
    for m in (ember, torch):
        d = getattr(m, dtype)
        mod = getattr(m.nn, name)(**kwargs(m, d))
        mod.train(name != "MSELoss")   # losses behave the same in train and eval
        ins = [m.tensor(a, dtype=d if a.dtype.kind == "f" else None, requires_grad=i in grads)
               for i, a in enumerate(inputs(m, d))]
        out = mod(*ins)
        (out.sum() * 1.5).backward()
        outs.append(out)
        in_grads.append([ins[i].grad for i in grads])
        mods.append(mod)
    assert_close(outs[0], outs[1], dtype)
    assert_close(in_grads[0], in_grads[1], dtype)
    em, tm = mods
    assert repr(em) == repr(tm)
    assert list(em.state_dict().keys()) == list(tm.state_dict().keys())
    assert [k for k, _ in em.named_buffers()] == [k for k, _ in tm.named_buffers()]
    public = {k: v for k, v in vars(tm).items() if not k.startswith("_") and k != "training"}
    for k, v in public.items():
        assert getattr(em, k) == v, k


def test_weight_buffers_load_and_move():
    tm = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]))
    em = ember.nn.CrossEntropyLoss(weight=ember.ones(3))
    assert list(em.state_dict()) == ["weight"]
    em.load_state_dict({k: ember.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    assert_close(em.weight, tm.weight)
    assert_close(em(ember.tensor(X, dtype=ember.float32), ember.tensor(IDX)),
                 tm(torch.tensor(X, dtype=torch.float32), torch.tensor(IDX)), "float32")
    em.double()
    assert em.weight.dtype == ember.float64
    em2 = ember.nn.BCEWithLogitsLoss(pos_weight=ember.ones(3))
    assert list(em2.state_dict()) == ["pos_weight"]
    assert em2.weight is None
    assert list(ember.nn.BCEWithLogitsLoss().state_dict()) == []
    seq_e = ember.nn.Sequential(ember.nn.Linear(3, 3), ember.nn.CrossEntropyLoss(),
                                ember.nn.PairwiseDistance())
    seq_t = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.CrossEntropyLoss(),
                                torch.nn.PairwiseDistance())
    assert repr(seq_e) == repr(seq_t)


def test_module_legacy_args_and_errors():
    for m in (ember, torch):
        with pytest.warns(UserWarning, match="size_average and reduce"):
            assert m.nn.MSELoss(size_average=False).reduction == "sum"
        with pytest.warns(UserWarning):
            assert m.nn.CrossEntropyLoss(reduce=False).reduction == "none"
        with pytest.raises(ValueError, match="greater than 0"):
            m.nn.TripletMarginLoss(margin=0.0)
        with pytest.raises(ValueError, match="only p == 1 and p == 2"):
            m.nn.MultiMarginLoss(p=3)
        with pytest.raises(ValueError, match="1D tensor"):
            m.nn.MultiMarginLoss(weight=m.ones(2, 2))
        with pytest.raises(TypeError, match="delta must be a float or int"):
            m.nn.HuberLoss(delta="1")
        with pytest.raises(ValueError, match="not a valid value for reduction"):
            m.nn.L1Loss(reduction="avg")(m.ones(2), m.ones(2))


def test_gradcheck_composites():
    """ember's own finite differences on a few composed losses (float64)."""
    tp = TP + 0.1
    assert gradcheck(lambda a, b: ember.nn.functional.kl_div(a, b, reduction="batchmean"), X, tp)
    assert gradcheck(lambda a, b: ember.nn.functional.binary_cross_entropy(
        a, b, reduction="sum"), P, TP)
    assert gradcheck(lambda a, b, v: ember.nn.functional.gaussian_nll_loss(a, b, v), X, T, P)
    assert gradcheck(lambda a, b: ember.nn.functional.cosine_similarity(a, b), X, T)


def test_bce_at_probability_0_and_1_is_silent_and_clamped():
    """log(0) is clamped to -100 with no NumPy warning, as PyTorch computes it (checked in a
    fresh interpreter with Python's default warning filters), and the same values."""
    import subprocess
    import sys
    code = ("import ember, ember.nn.functional as F\n"
            "x = ember.tensor([0.0, 1.0, 0.5, 1.0]); t = ember.tensor([0.0, 1.0, 1.0, 0.0])\n"
            "print(F.binary_cross_entropy(x, t, reduction='none').tolist())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    want = torch.nn.functional.binary_cross_entropy(
        torch.tensor([0.0, 1.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 1.0, 0.0]), reduction="none")
    assert eval(proc.stdout) == want.tolist()
