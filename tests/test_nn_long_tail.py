"""The nn long tail against PyTorch: CTC, multilabel-margin and triplet-with-distance losses,
Softmax2d, lazy batch/instance norm, NonDynamicallyQuantizableLinear."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import check, rand, gradcheck, assert_close

RNG = np.random.default_rng(0)
MLM_T = np.array([[3, 0, -1, 1], [1, 2, 3, -1], [-1, 0, 0, 0], [2, 2, -1, 3]])


def _i(a):
    """An integer array passed to both frameworks as a tensor of the same values."""
    return {"e": ember.tensor(a), "t": torch.tensor(a)}


def _pick(m, d):
    return d["e"] if m is ember else d["t"]


CTC_T = _i(np.array([[1, 2, 2], [3, 1, 0], [4, 4, 4]]))
CTC_FLAT = _i(np.array([1, 2, 2, 3, 1]))
CTC_IL = _i(np.array([6, 5, 4]))
CTC_TL = _i(np.array([3, 2, 0]))


def _ctc(m, x, targets=CTC_T, tl=CTC_TL, il=CTC_IL, **kw):
    lp = x.log_softmax(-1)
    il = _pick(m, il) if isinstance(il, dict) else il
    return m.nn.functional.ctc_loss(lp, _pick(m, targets), il, _pick(m, tl), **kw)


CASES = [  # (id, fn(m, *xs), inputs)
    ("ctc_mean", lambda m, x: _ctc(m, x), [rand(6, 3, 5, seed=1)]),
    ("ctc_sum", lambda m, x: _ctc(m, x, reduction="sum"), [rand(6, 3, 5, seed=1)]),
    ("ctc_none", lambda m, x: _ctc(m, x, reduction="none"), [rand(6, 3, 5, seed=1)]),
    ("ctc_blank", lambda m, x: _ctc(m, x, blank=4, targets=_i(np.array([[1, 2, 2], [3, 1, 0],
                                                                         [0, 0, 0]]))),
     [rand(6, 3, 5, seed=2)]),
    ("ctc_tuple_lens", lambda m, x: m.nn.functional.ctc_loss(
        x.log_softmax(-1), _pick(m, CTC_T), (6, 5, 4), [3, 2, 0]),
     [rand(6, 3, 5, seed=3)]),
    ("ctc_flat_targets", lambda m, x: _ctc(m, x[:, :2], targets=CTC_FLAT,
                                           il=_i(np.array([6, 6])), tl=_i(np.array([3, 2]))),
     [rand(6, 3, 5, seed=4)]),
    ("ctc_unbatched", lambda m, x: m.nn.functional.ctc_loss(
        x.log_softmax(-1), _pick(m, _i(np.array([1, 2, 2]))), (6,), (3,)), [rand(6, 5, seed=5)]),
    ("ctc_unbatched_none", lambda m, x: m.nn.functional.ctc_loss(
        x.log_softmax(-1), _pick(m, _i(np.array([1, 2]))), _pick(m, _i(np.array(5))),
        _pick(m, _i(np.array(2))), reduction="none"), [rand(6, 5, seed=5)]),
    ("ctc_inf_zero", lambda m, x: _ctc(m, x, il=_i(np.array([2, 2, 2])), zero_infinity=True,
                                       reduction="none"), [rand(2, 3, 5, seed=6)]),
    ("ctc_module", lambda m, x: m.nn.CTCLoss(blank=0, zero_infinity=True)(
        x.log_softmax(2), _pick(m, CTC_T), _pick(m, CTC_IL), _pick(m, CTC_TL)),
     [rand(6, 3, 5, seed=7)]),
    ("mlm", lambda m, x: m.nn.functional.multilabel_margin_loss(x, _pick(m, _i(MLM_T))),
     [rand(4, 4, seed=1)]),
    ("mlm_none", lambda m, x: m.nn.functional.multilabel_margin_loss(
        x, _pick(m, _i(MLM_T)), reduction="none"), [rand(4, 4, seed=2)]),
    ("mlm_sum", lambda m, x: m.nn.MultiLabelMarginLoss(reduction="sum")(x, _pick(m, _i(MLM_T))),
     [rand(4, 4, seed=3)]),
    ("mlm_1d", lambda m, x: m.nn.functional.multilabel_margin_loss(
        x, _pick(m, _i(MLM_T[0])), reduction="none"), [rand(4, seed=4)]),
    ("tmd", lambda m, a, p, n: m.nn.functional.triplet_margin_with_distance_loss(a, p, n),
     [rand(5, 3, seed=1), rand(5, 3, seed=2), rand(5, 3, seed=3)]),
    ("tmd_cos_swap", lambda m, a, p, n: m.nn.TripletMarginWithDistanceLoss(
        distance_function=lambda x, y: 1 - m.nn.functional.cosine_similarity(x, y),
        margin=0.5, swap=True, reduction="none")(a, p, n),
     [rand(5, 3, seed=4), rand(5, 3, seed=5), rand(5, 3, seed=6)]),
    ("tmd_module_sum", lambda m, a, p, n: m.nn.TripletMarginWithDistanceLoss(
        reduction="sum", margin=2.0)(a, p, n),
     [rand(5, 3, seed=7), rand(5, 3, seed=8), rand(5, 3, seed=9)]),
    ("softmax2d", lambda m, x: m.nn.Softmax2d()(x), [rand(2, 3, 4, 5, seed=1)]),
    ("softmax2d_3d", lambda m, x: m.nn.Softmax2d()(x), [rand(3, 4, 5, seed=2)]),
]


@pytest.mark.parametrize("name,fn,inputs", CASES, ids=[c[0] for c in CASES])
def test_forward_and_grad(name, fn, inputs):
    check(fn, None, *inputs)


@pytest.mark.parametrize("name,fn,inputs", [c for c in CASES if "inf" not in c[0]],
                         ids=[c[0] for c in CASES if "inf" not in c[0]])
def test_gradcheck(name, fn, inputs):
    assert gradcheck(lambda *xs: fn(ember, *xs), *inputs)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 7), st.integers(1, 3), st.integers(2, 5), st.data())
def test_ctc_random_lengths(n_t, n_b, n_c, data):
    """Any lengths and labels (including impossible alignments) give torch's values."""
    il = data.draw(st.lists(st.integers(0, n_t), min_size=n_b, max_size=n_b))
    tl = data.draw(st.lists(st.integers(0, 4), min_size=n_b, max_size=n_b))
    tg = data.draw(st.lists(st.lists(st.integers(1, n_c - 1), min_size=4, max_size=4),
                            min_size=n_b, max_size=n_b))
    x = rand(n_t, n_b, n_c, seed=n_t * 7 + n_b)
    tg, il_, tl_ = _i(np.array(tg)), _i(np.array(il)), _i(np.array(tl))
    check(lambda m, a: _ctc(m, a, targets=tg, il=il_, tl=tl_, zero_infinity=True,
                            reduction="none"), None, x, dtypes=("float64",))


def test_ctc_is_once_differentiable():
    x = ember.tensor(rand(4, 2, 3, seed=1), requires_grad=True)
    loss = _ctc(ember, x, targets=_i(np.array([[1, 2], [2, 2]])), il=_i(np.array([4, 4])),
                tl=_i(np.array([2, 1])))
    (g,) = ember.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError):
        ember.autograd.grad(g.sum(), x)


LAZY = [  # (id, build(m), input shape)
    ("bn1d", lambda m: m.nn.LazyBatchNorm1d(), (4, 3)),
    ("bn1d_3d", lambda m: m.nn.LazyBatchNorm1d(momentum=0.3), (4, 3, 5)),
    ("bn2d", lambda m: m.nn.LazyBatchNorm2d(eps=1e-3), (2, 3, 4, 4)),
    ("bn3d", lambda m: m.nn.LazyBatchNorm3d(affine=False), (2, 3, 2, 2, 2)),
    ("bn_notrack", lambda m: m.nn.LazyBatchNorm1d(track_running_stats=False), (4, 3)),
    ("in1d", lambda m: m.nn.LazyInstanceNorm1d(), (2, 3, 5)),
    ("in2d", lambda m: m.nn.LazyInstanceNorm2d(), (2, 3, 4, 4)),
    ("in3d", lambda m: m.nn.LazyInstanceNorm3d(affine=False), (2, 3, 2, 2, 2)),
]


@pytest.mark.parametrize("name,build,shape", LAZY, ids=[c[0] for c in LAZY])
def test_lazy_norm(name, build, shape):
    x = rand(*shape, seed=3).astype(np.float32)
    res = []
    for m in (ember, torch):
        mod = build(m)
        before = (repr(mod), list(mod.state_dict()))
        xi = m.tensor(x, requires_grad=True)
        out = mod(xi)
        out.pow(2).sum().backward()
        after = dict(mod.state_dict())
        res.append((before, type(mod).__name__, repr(mod), out, xi.grad,
                    tuple(after.values()), list(after)))
    (b_e, cls_e, r_e, *rest_e, keys_e), (b_t, cls_t, r_t, *rest_t, keys_t) = res
    assert b_e[0].replace("ember", "torch") == b_t[0] and b_e[1] == b_t[1]
    assert (cls_e, r_e, keys_e) == (cls_t, r_t, keys_t)
    assert_close(tuple(rest_e), tuple(rest_t), "float32")


def test_lazy_norm_dtype_and_uninitialized_buffers():
    m = ember.nn.LazyBatchNorm2d(dtype=ember.float64)
    assert isinstance(m.running_mean, ember.nn.UninitializedBuffer)
    assert m.has_uninitialized_params()
    m(ember.randn(2, 3, 4, 4, dtype=ember.float64))
    assert type(m) is ember.nn.BatchNorm2d
    assert m.weight.dtype == ember.float64 and m.running_mean.dtype == ember.float64
    assert int(m.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="expected 4D input"):
        ember.nn.LazyBatchNorm2d()(ember.ones(3, 4))


def test_non_dynamically_quantizable_linear():
    from ember.nn.modules.linear import NonDynamicallyQuantizableLinear as E
    from torch.nn.modules.linear import NonDynamicallyQuantizableLinear as T
    e, t = E(3, 2), T(3, 2)
    assert repr(e) == repr(t) and list(e.state_dict()) == list(t.state_dict())
    assert isinstance(e, ember.nn.Linear)
    assert type(ember.nn.MultiheadAttention(4, 2).out_proj) is E
    assert not hasattr(ember.nn, "NonDynamicallyQuantizableLinear")


# ---- fractional max pooling ---------------------------------------------------------------

FRAC = [  # (id, input shape, kernel, output_size or None, output_ratio or None)
    ("2d", (2, 3, 7, 9), (2, 3), (4, 5), None),
    ("2d_unbatched", (3, 10, 10), 2, (5, 4), None),
    ("2d_ratio", (2, 2, 8, 9), 2, None, (0.5, 0.7)),
    ("2d_one", (1, 2, 5, 5), 3, 1, None),
    ("2d_full", (1, 2, 5, 6), 1, (5, 6), None),
    ("3d", (2, 2, 6, 7, 8), (2, 3, 2), (3, 4, 5), None),
    ("3d_unbatched", (2, 5, 5, 6), 2, None, 0.6),
]


def _samples(shape, nd, seed):
    batch = 1 if len(shape) == nd + 1 else shape[0]
    return np.random.default_rng(seed).uniform(size=(batch, shape[-nd - 1], nd))


@pytest.mark.parametrize("name,shape,k,size,ratio", FRAC, ids=[f[0] for f in FRAC])
def test_fractional_max_pool_equals_torch_exactly(name, shape, k, size, ratio):
    nd = 3 if name.startswith("3d") else 2
    for dt in ("float64", "float32"):
        x = np.random.default_rng(1).normal(size=shape).astype(dt)
        x[..., 0] = x[..., 1]  # ties: the first maximum in window order wins
        s = _samples(shape, nd, 2).astype(dt)
        res = []
        for m in (ember, torch):
            f = getattr(m.nn.functional, f"fractional_max_pool{nd}d")
            res.append(f(m.tensor(x), k, size, ratio, return_indices=True,
                         _random_samples=m.tensor(s)))
        np.testing.assert_array_equal(res[0][0].numpy(), res[1][0].numpy())
        np.testing.assert_array_equal(res[0][1].numpy(), res[1][1].numpy())
        assert res[0][1].dtype == ember.int64


@pytest.mark.parametrize("name,shape,k,size,ratio", FRAC, ids=[f[0] for f in FRAC])
def test_fractional_max_pool_grad(name, shape, k, size, ratio):
    nd = 3 if name.startswith("3d") else 2
    fn = f"fractional_max_pool{nd}d"
    s = _samples(shape, nd, 3)
    check(lambda m, x, smp: getattr(m.nn.functional, fn)(x, k, size, ratio,
                                                           _random_samples=smp),
          None, rand(*shape, seed=4), s, grad_inputs=[0])
    assert gradcheck(lambda x: getattr(ember.nn.functional, fn)(
        x, k, size, ratio, _random_samples=ember.tensor(s)), rand(*shape, seed=4))


def test_fractional_max_pool_module_and_random_samples():
    x = rand(2, 3, 8, 8, seed=5)
    s = _samples(x.shape, 2, 6)
    res = []
    for m in (ember, torch):
        mod = m.nn.FractionalMaxPool2d(3, output_ratio=0.5, return_indices=True,
                                       _random_samples=m.tensor(s))
        xi = m.tensor(x, requires_grad=True)
        out, idx = mod(xi)
        out.sum().backward()
        res.append((repr(mod), list(mod.state_dict()), out, idx, xi.grad,
                    out.grad_fn.name()))
    assert res[0][0] == res[1][0] and res[0][1] == res[1][1] == ["_random_samples"]
    assert res[0][5] == res[1][5] == "FractionalMaxPool2DBackward0"
    assert_close(res[0][2:5], res[1][2:5])
    # without samples the windows are random, but each output is a max of its input plane
    y = ember.nn.FractionalMaxPool3d(2, output_size=3)(ember.tensor(rand(1, 2, 5, 5, 5)))
    assert y.shape == (1, 2, 3, 3, 3)
    assert repr(ember.nn.FractionalMaxPool3d(2, output_size=3)) == "FractionalMaxPool3d()"


# ---- adaptive softmax -------------------------------------------------------------------------

def _asm(m, **kw):
    mod = m.nn.AdaptiveLogSoftmaxWithLoss(8, 15, [4, 10], **kw).double()
    with m.no_grad():
        for i, p in enumerate(mod.parameters()):
            p.copy_(m.tensor(np.random.default_rng(i).normal(size=tuple(p.shape))))
    return mod


@pytest.mark.parametrize("kw", [dict(div_value=2.0, head_bias=True), {}])
@pytest.mark.parametrize("target", [[0, 3, 5, 9, 12, 14, 4], [1, 2, 3, 0, 1, 2, 3],
                                    [14, 13, 12, 11, 10, 10, 10], 11])
def test_adaptive_log_softmax(kw, target):
    t = np.array(target)
    x = np.random.default_rng(9).normal(size=(7, 8) if t.ndim else (8,))
    res = []
    for m in (ember, torch):
        mod = _asm(m, **kw)
        xi = m.tensor(x, requires_grad=True)
        out = mod(xi, m.tensor(t))
        out.loss.backward()
        grads = tuple(p.grad if p.grad is not None else m.zeros_like(p)
                      for p in mod.parameters())
        rows = m.tensor(x.reshape(-1, 8))
        res.append((repr(mod), list(mod.state_dict()), type(out).__name__, out._fields,
                    (out.output, out.loss, xi.grad) + grads,
                    (mod.log_prob(rows), mod.predict(rows))))
    assert res[0][:4] == res[1][:4]
    assert_close(res[0][4], res[1][4])
    assert_close(res[0][5], res[1][5])


def test_adaptive_log_softmax_predict_mixed_rows():
    """Rows whose head argmax is a shortlist class and rows that need the full softmax."""
    x = np.random.default_rng(3).normal(size=(40, 8)) * 3
    preds = [_asm(m).predict(m.tensor(x)) for m in (ember, torch)]
    assert_close(preds[0], preds[1])
    assert 0 < int((preds[1] >= 4).sum()) < 40


BAD = [  # (id, fn(m), exception type, message)
    ("asm_cutoffs_empty", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, []), ValueError,
     "cutoffs should be a sequence of length larger than 0"),
    ("asm_cutoffs_order", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [5, 3]),
     ValueError, "cutoffs should be a sequence of unique, positive integers"),
    ("asm_cutoffs_range", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3, 10]),
     ValueError, "each value is between 1 and n_classes-1"),
    ("asm_batch", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(
        m.zeros(3, 8), m.zeros(2).long()), RuntimeError,
     "Input and target should have the same size in the batch dimension."),
    ("asm_target_range", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(
        m.zeros(3, 8), m.tensor([0, 10, 2])), RuntimeError,
     r"Target values should be in \[0, 9\], but values in range \[0, 10\] were found."),
    ("asm_target_2d", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(
        m.zeros(3, 8), m.zeros(3, 1).long()), RuntimeError,
     "0D or 1D target tensor expected, multi-target not supported"),
    ("asm_input_3d", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(
        m.zeros(3, 2, 8), m.zeros(3).long()), RuntimeError,
     "1D target tensor expects 2D input tensors"),
    ("asm_input_0d_target", lambda m: m.nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3])(
        m.zeros(3, 8), m.tensor(1)), RuntimeError, "0D target tensor expects 1D input tensors"),
    ("frac_pool_h", lambda m: m.nn.functional.fractional_max_pool2d(
        m.zeros(2, 3, 7, 9), (5, 3), (4, 5), _random_samples=m.full((2, 3, 2), 0.5)),
     RuntimeError, "pool height 5 too large relative to input height 7"),
    ("frac_pool_w", lambda m: m.nn.functional.fractional_max_pool2d(
        m.zeros(2, 3, 7, 9), (2, 6), (4, 5), _random_samples=m.full((2, 3, 2), 0.5)),
     RuntimeError, "pool width 6 too large relative to input width 9"),
    ("frac_pool_t", lambda m: m.nn.functional.fractional_max_pool3d(
        m.zeros(2, 2, 5, 5), 2, output_size=3), RuntimeError,
     "fractional_max_pool3d_out\\(\\): pool time 2 too large relative to input time 2"),
    ("frac_samples_batch", lambda m: m.nn.functional.fractional_max_pool2d(
        m.zeros(2, 3, 7, 9), 2, (4, 5), _random_samples=m.full((1, 3, 2), 0.5)),
     RuntimeError, "Expect _random_samples.size\\(0\\) no less then input batch size."),
    ("frac_samples_dim2", lambda m: m.nn.functional.fractional_max_pool2d(
        m.zeros(2, 3, 7, 9), 2, (4, 5), _random_samples=m.full((2, 3, 1), 0.5)),
     RuntimeError, "Expect _random_samples.size\\(2\\) equals to 2; got 1."),
    ("frac_samples_dtype", lambda m: m.nn.functional.fractional_max_pool2d(
        m.zeros(2, 3, 7, 9), 2, (4, 5), _random_samples=m.full((2, 3, 2), 0.5).double()),
     RuntimeError, "Expect _random_samples to have the same dtype as input"),
    ("frac_no_size", lambda m: m.nn.functional.fractional_max_pool2d(m.zeros(2, 3, 7, 9), 2),
     ValueError, "fractional_max_pool2d requires specifying either an output_size or an "
                 "output_ratio"),
    ("frac_mod_ratio", lambda m: m.nn.FractionalMaxPool2d(2, output_ratio=1.5), ValueError,
     "output_ratio must be between 0 and 1 \\(got 1.5\\)"),
    ("frac_mod_none", lambda m: m.nn.FractionalMaxPool3d(2), ValueError,
     "FractionalMaxPool3d requires specifying either an output size, or a pooling ratio"),
    ("frac_mod_both", lambda m: m.nn.FractionalMaxPool2d(2, output_size=2, output_ratio=0.5),
     ValueError, "only one of output_size and output_ratio may be specified"),
    ("ctc_short_targets", lambda m: _ctc(m, m.zeros(6, 3, 5), targets=_i(np.ones((3, 1), int))),
     RuntimeError, "Expected tensor to have size at least 3 at dimension 1"),
    ("ctc_long_input", lambda m: _ctc(m, m.zeros(6, 3, 5), il=_i(np.array([7, 5, 4]))),
     RuntimeError,
     "Expected input_lengths to have value at most 6, but got value 7"),
    ("ctc_neg_target_len", lambda m: _ctc(m, m.zeros(6, 3, 5), tl=_i(np.array([-1, 1, 1]))),
     RuntimeError, "Expected target_lengths to have value at least 0"),
    ("ctc_in_batch", lambda m: _ctc(m, m.zeros(6, 3, 5), il=_i(np.array([6, 5]))),
     RuntimeError,
     "input_lengths must be of size batch_size"),
    ("ctc_tg_batch", lambda m: _ctc(m, m.zeros(6, 3, 5), tl=_i(np.array([1, 1]))),
     RuntimeError, "target_lengths must be of size batch_size"),
    ("ctc_blank", lambda m: _ctc(m, m.zeros(6, 3, 5), blank=5), RuntimeError,
     "blank must be in label range"),
    ("ctc_float_len", lambda m: _ctc(m, m.zeros(6, 3, 5), il=m.tensor([6.0, 5.0, 4.0])),
     RuntimeError, "input_lengths must be integral"),
    ("ctc_reduction", lambda m: _ctc(m, m.zeros(6, 3, 5), reduction="foo"), ValueError,
     "foo is not a valid value for reduction"),
    ("ctc_flat_size", lambda m: _ctc(m, m.zeros(6, 3, 5), targets=CTC_FLAT,
                                     tl=_i(np.array([3, 2, 1]))), RuntimeError,
     "Expected tensor to have size 6 at dimension 0, but got size 5"),
    ("ctc_long_input_dtype", lambda m: m.nn.functional.ctc_loss(
        m.zeros(6, 3, 5).long(), _pick(m, CTC_T), _pick(m, CTC_IL), _pick(m, CTC_TL)),
     NotImplementedError, "not implemented for 'Long'"),
    ("mlm_shape", lambda m: m.nn.functional.multilabel_margin_loss(
        m.zeros(3, 4), m.zeros(3, 3).long()), RuntimeError,
     r"inconsistent target size: \[3, 3\] for input of size: \[3, 4\]"),
    ("ctc_mixed_lens", lambda m: _ctc(m, m.zeros(6, 3, 5), il=(6, 5, 4)), TypeError,
     "ctc_loss\\(\\) received an invalid combination of arguments"),
    ("mlm_float_target", lambda m: m.nn.functional.multilabel_margin_loss(
        m.zeros(3, 4), m.zeros(3, 4)), RuntimeError, "expected scalar type Long but found Float"),
    ("mlm_3d", lambda m: m.nn.functional.multilabel_margin_loss(
        m.zeros(2, 3, 4), m.zeros(2, 3, 4).long()), RuntimeError,
     "Expected non-empty vector or matrix"),
    ("mlm_range", lambda m: m.nn.functional.multilabel_margin_loss(
        m.zeros(3, 4), m.full((3, 4), 7)), RuntimeError, "'target' is out of range"),
    ("mlm_range_neg", lambda m: m.nn.functional.multilabel_margin_loss(
        m.zeros(4), m.tensor([0, -1, -5, 2])), RuntimeError, "'target' is out of range"),
    ("tmd_margin", lambda m: m.nn.functional.triplet_margin_with_distance_loss(
        m.ones(2, 3), m.ones(2, 3), m.ones(2, 3), margin=0), ValueError,
     "margin must be greater than 0, got 0"),
    ("tmd_module_margin", lambda m: m.nn.TripletMarginWithDistanceLoss(margin=-1.0),
     ValueError, "TripletMarginWithDistanceLoss: expected margin to be greater than 0"),
    ("tmd_dims", lambda m: m.nn.functional.triplet_margin_with_distance_loss(
        m.ones(2, 3), m.ones(3), m.ones(2, 3)), RuntimeError,
     "anchor 2D, positive 1D, and negative 2D inputs"),
    ("tmd_reduction", lambda m: m.nn.functional.triplet_margin_with_distance_loss(
        m.ones(2, 3), m.ones(2, 3), m.ones(2, 3), reduction="avg"), ValueError,
     "avg is not a valid value for reduction"),
    ("softmax2d_dim", lambda m: m.nn.Softmax2d()(m.ones(3)), ValueError,
     "Softmax2d: expected input to be 3D or 4D, got 1D instead"),
]


@pytest.mark.parametrize("name,fn,exc,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(name, fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(torch)
    with pytest.raises(exc, match=msg):
        fn(ember)
