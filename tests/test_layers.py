"""Linear, Bilinear, Embedding, EmbeddingBag, dropout and flatten layers against torch."""
from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn as enn
import ember.nn.functional as EF
from opcheck import check, gradcheck, rand, assert_close

TF = torch.nn.functional


def _idx(*values, dtype="int64"):
    return np.array(values, dtype=dtype)


# ---- linear (functional) -------------------------------------------------------------------

LINEAR_CASES = [
    # (input shape, weight shape, bias shape or None)
    ((4,), (5, 4), (5,)),
    ((4,), (5, 4), None),
    ((3, 4), (5, 4), (5,)),
    ((3, 4), (5, 4), None),
    ((2, 3, 4), (5, 4), (5,)),
    ((2, 3, 4), (5, 4), None),
    ((2, 1, 3, 4), (5, 4), (5,)),
    ((1, 4), (1, 4), (1,)),
    ((3, 4), (5, 4), ()),          # 0-d bias broadcasts
    ((3, 4), (5, 4), (1,)),        # size-1 bias broadcasts
    ((0, 4), (5, 4), (5,)),        # empty batch
    ((3, 0), (5, 0), (5,)),        # no input features
    ((3, 4), (4,), None),          # vector weight: a matrix-vector product
    ((4,), (4,), ()),
    ((2, 3, 4), (5, 4), (3, 5)),   # matrix bias: PyTorch's composition
]


@pytest.mark.parametrize("xs,ws,bs", LINEAR_CASES)
def test_linear_matches_torch(xs, ws, bs):
    args = [rand(*xs, seed=1), rand(*ws, seed=2)] + ([] if bs is None else [rand(*bs, seed=3)])
    check(lambda m, *a: m.nn.functional.linear(*a), None, *args)


@pytest.mark.parametrize("xs,ws,bs", LINEAR_CASES)
def test_linear_grad_fn_name_matches_torch(xs, ws, bs):
    def run(m):
        x = m.tensor(rand(*xs, seed=1), requires_grad=True)
        w = m.tensor(rand(*ws, seed=2), requires_grad=True)
        b = None if bs is None else m.tensor(rand(*bs, seed=3), requires_grad=True)
        return m.nn.functional.linear(x, w, b).grad_fn.name()
    assert run(ember) == run(torch)


def test_linear_non_contiguous_inputs():
    check(lambda m, x, w, b: m.nn.functional.linear(x.transpose(0, 1), w[:, ::2], b), None,
          rand(6, 3), rand(5, 12), rand(5))


def test_linear_int_inputs_match_torch():
    x, w, b = (np.arange(12).reshape(3, 4), np.arange(20).reshape(5, 4) % 3, np.arange(5))
    check(lambda m, *a: m.nn.functional.linear(*a), None, x, w, b)


@settings(max_examples=20, deadline=None)
@given(lead=st.lists(st.integers(0, 3), min_size=0, max_size=3), fin=st.integers(1, 5),
       fout=st.integers(1, 5), bias=st.booleans())
def test_linear_hypothesis_shapes(lead, fin, fout, bias):
    args = [rand(*lead, fin, seed=4), rand(fout, fin, seed=5)] + ([rand(fout, seed=6)]
                                                                  if bias else [])
    check(lambda m, *a: m.nn.functional.linear(*a), None, *args, dtypes=("float64",))


def _unfused_linear(x, w, b=None):
    y = ember.matmul(x, w.t())
    return y if b is None else y + b


@pytest.mark.parametrize("xs,bias", [((7,), True), ((6, 7), True), ((6, 7), False),
                                     ((2, 3, 7), True)])
def test_fused_linear_equals_unfused_composition(xs, bias):
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal(xs), rng.standard_normal((4, 7)), rng.standard_normal(4)]
    arrs = arrs if bias else arrs[:2]
    fused = [ember.tensor(a, requires_grad=True) for a in arrs]
    plain = [ember.tensor(a, requires_grad=True) for a in arrs]
    yf, yp = EF.linear(*fused), _unfused_linear(*plain)
    np.testing.assert_allclose(yf.detach().numpy(), yp.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = ember.tensor(rng.standard_normal(tuple(yf.shape)))
    for a, b in zip(ember.autograd.grad(yf, fused, g), ember.autograd.grad(yp, plain, g)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_linear_double_backward():
    assert gradcheck(lambda x, w, b: EF.linear(x, w, b), rand(3, 4), rand(2, 4), rand(2))
    xs = [ember.tensor(rand(2, 3, 4, seed=s), requires_grad=True) for s in (1,)] + [
        ember.tensor(rand(5, 4, seed=2), requires_grad=True),
        ember.tensor(rand(5, seed=3), requires_grad=True)]
    assert ember.autograd.gradgradcheck(lambda x, w, b: EF.linear(x, w, b), xs)


@pytest.mark.parametrize("args", [
    ((128, 100), (512, 784), (512,)),
    ((128, 100), (512, 784), None),
    ((100,), (512, 784), (512,)),
    ((2, 3, 100), (512, 784), None),
])
def test_linear_wrong_feature_size(args):
    xs, ws, bs = args
    def run(m):
        b = None if bs is None else m.zeros(bs)
        m.nn.functional.linear(m.zeros(xs), m.zeros(ws), b)
    with pytest.raises(RuntimeError) as te:
        run(torch)
    with pytest.raises(RuntimeError) as ee:
        run(ember)
    assert str(ee.value) == str(te.value)
    assert "mat1 and mat2 shapes cannot be multiplied" in str(ee.value)


def test_linear_wrong_feature_size_exact_message():
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied "
                                           r"\(128x100 and 784x512\)"):
        enn.Linear(784, 512)(ember.randn(128, 100))


@pytest.mark.parametrize("make", [
    lambda m: (m.zeros(3, 4), m.zeros(5, 4, dtype=m.float64)),              # dtype mismatch
    lambda m: (m.zeros(3, 4), m.zeros(5, 4), m.zeros(5, dtype=m.float64)),  # bias dtype
    lambda m: (m.zeros(3, 4), m.zeros(5, 4), m.zeros(6)),                   # bias size
    lambda m: (m.zeros(2, 3, 4), m.zeros(5, 4), m.zeros(6)),
    lambda m: (m.tensor(1.0), m.zeros(3, 4)),                               # 0-d input
    lambda m: (m.zeros(3, 4), m.zeros(())),                                 # 0-d weight
    lambda m: (m.zeros(3, 4), m.zeros(5, 4, 1)),                            # 3-d weight
    lambda m: (m.zeros(3, 4, dtype=m.long), m.zeros(5, 4)),
])
def test_linear_bad_inputs_raise_like_torch(make):
    with pytest.raises(RuntimeError) as te:
        TF.linear(*make(torch))
    with pytest.raises(RuntimeError) as ee:
        EF.linear(*make(ember))
    assert str(ee.value) == str(te.value)


def test_linear_bool_and_non_tensor_inputs():
    for m, f in ((torch, TF), (ember, EF)):
        with pytest.raises(NotImplementedError):
            f.linear(m.ones(3, 4, dtype=m.bool), m.ones(5, 4, dtype=m.bool))
        with pytest.raises(TypeError):
            f.linear([[1.0, 2.0]], m.ones(5, 2))


# ---- bilinear ------------------------------------------------------------------------------

@pytest.mark.parametrize("s1,s2,bias", [((3, 4), (3, 5), True), ((3, 4), (3, 5), False),
                                        ((2, 3, 4), (2, 3, 5), True), ((4,), (5,), True),
                                        ((0, 4), (0, 5), True), ((1, 4), (1, 5), False)])
def test_bilinear_matches_torch(s1, s2, bias):
    args = [rand(*s1, seed=1), rand(*s2, seed=2), rand(6, 4, 5, seed=3)]
    if bias:
        args.append(rand(6, seed=4))
    check(lambda m, *a: m.nn.functional.bilinear(*a), None, *args)


def test_bilinear_non_contiguous():
    check(lambda m, a, c, w, b: m.nn.functional.bilinear(a.t(), c, w, b), None,
          rand(4, 3), rand(3, 5), rand(2, 4, 5), rand(2))


@pytest.mark.parametrize("make", [
    lambda m: (m.zeros(3, 4), m.zeros(2, 3, 5), m.zeros(6, 4, 5)),
    lambda m: (m.zeros(3, 4), m.zeros(2, 5), m.zeros(6, 4, 5)),
    lambda m: (m.zeros(3, 3), m.zeros(3, 5), m.zeros(6, 4, 5)),
    lambda m: (m.zeros(3, 4), m.zeros(3, 6), m.zeros(6, 4, 5)),
    lambda m: (m.zeros(3, 4), m.zeros(3, 5), m.zeros(6, 4, 5), m.zeros(7)),
    lambda m: (m.zeros(3, 4), m.zeros(3, 5, dtype=m.float64), m.zeros(6, 4, 5), m.zeros(6)),
])
def test_bilinear_bad_inputs(make):
    with pytest.raises(RuntimeError) as te:
        TF.bilinear(*make(torch))
    with pytest.raises(RuntimeError) as ee:
        EF.bilinear(*make(ember))
    assert str(ee.value) == str(te.value)


# ---- embedding -----------------------------------------------------------------------------

EMBEDDING_CASES = [
    (_idx(1, 2, 4, 1, 1), {}),                          # repeated indices accumulate
    (_idx(3), {}),
    (np.array(2), {}),                                   # 0-d index
    (_idx([0, 2], [2, 9]), {}),
    (_idx(1, 2, 1, dtype="int32"), {}),
    (_idx(1, 2, 4, 2, 2), {"padding_idx": 2}),
    (_idx(1, 9, 4, 9), {"padding_idx": -1}),
    (_idx(1, 2, 4, 1, 1, 1), {"scale_grad_by_freq": True}),
    (_idx([1, 2], [1, 3]), {"scale_grad_by_freq": True, "padding_idx": 3}),
    (np.zeros((0,), "int64"), {}),
]


@pytest.mark.parametrize("idx,kw", EMBEDDING_CASES)
def test_embedding_matches_torch(idx, kw):
    out = check(lambda m, i, w: m.nn.functional.embedding(i, w, **kw), None, idx, rand(10, 3))
    assert out


def test_embedding_sparse_flag_gives_sparse_gradient_with_torchs_values():
    idx, base = _idx(1, 2, 1), rand(5, 3)
    tw, ew = torch.tensor(base, requires_grad=True), ember.tensor(base, requires_grad=True)
    TF.embedding(torch.tensor(idx), tw, sparse=True).sum().backward()
    EF.embedding(ember.tensor(idx), ew, sparse=True).sum().backward()
    assert ew.grad.is_sparse and tw.grad.is_sparse
    assert_close(ew.grad.to_dense(), tw.grad.to_dense())


def test_embedding_grad_fn_and_non_contiguous_weight():
    check(lambda m, i, w: m.nn.functional.embedding(i, w.t()), None, _idx(0, 2, 2), rand(3, 5))
    e = EF.embedding(ember.tensor([1]), ember.randn(4, 2, requires_grad=True))
    assert e.grad_fn.name() == "EmbeddingBackward0"


def test_embedding_padding_row_gets_no_gradient():
    w = ember.randn(5, 2, requires_grad=True)
    EF.embedding(ember.tensor([0, 3, 3, 1]), w, padding_idx=3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_embedding_max_norm_renormalises_in_place(norm_type):
    base = rand(10, 4, seed=7) * 2
    idx = _idx([1, 2, 2], [7, 1, 0])
    tw = torch.tensor(base, requires_grad=True)
    ew = ember.tensor(base, requires_grad=True)
    to = TF.embedding(torch.tensor(idx), tw, max_norm=1.5, norm_type=norm_type)
    eo = EF.embedding(ember.tensor(idx), ew, max_norm=1.5, norm_type=norm_type)
    assert_close(eo, to)
    # the referenced rows were rescaled in place, the others kept
    assert_close(ew.detach(), tw.detach())
    assert not np.allclose(ew.detach().numpy(), base)
    np.testing.assert_array_equal(ew.detach().numpy()[3:7], base[3:7])
    assert ew._version == tw._version == 1
    g = rand(*to.shape, seed=8)
    to.backward(torch.tensor(g))
    eo.backward(ember.tensor(g))
    assert_close(ew.grad, tw.grad)


def test_embedding_max_norm_leaves_small_rows():
    w = ember.full((3, 2), 0.1)
    EF.embedding(ember.tensor([0, 1]), w, max_norm=1.0)
    np.testing.assert_array_equal(w.numpy(), np.full((3, 2), 0.1, "float32"))


@pytest.mark.parametrize("make,exc", [
    (lambda m: (m.tensor([10]), m.zeros(10, 3)), IndexError),        # index out of range
    (lambda m: (m.tensor([-1]), m.zeros(10, 3)), IndexError),
    (lambda m: (m.tensor([1.0, 2.0]), m.zeros(10, 3)), RuntimeError),  # float indices
    (lambda m: (m.tensor([True]), m.zeros(10, 3)), RuntimeError),
    (lambda m: (m.tensor([1], dtype=m.uint8), m.zeros(10, 3)), RuntimeError),
    (lambda m: (m.tensor([1], dtype=m.int16), m.zeros(10, 3)), RuntimeError),
    (lambda m: (m.tensor([1]), m.zeros(10)), RuntimeError),           # weight not 2-D
    (lambda m: ([1, 2], m.zeros(10, 3)), TypeError),
])
def test_embedding_bad_inputs(make, exc):
    with pytest.raises(exc) as te:
        TF.embedding(*make(torch))
    with pytest.raises(exc) as ee:
        EF.embedding(*make(ember))
    if exc is not TypeError:
        assert str(ee.value) == str(te.value)


def test_embedding_out_of_range_message():
    with pytest.raises(IndexError, match="index out of range in self"):
        enn.Embedding(10, 3)(ember.tensor([3, 10]))


@pytest.mark.parametrize("pad", [10, -11])
def test_embedding_padding_idx_out_of_range(pad):
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        EF.embedding(ember.tensor([1]), ember.zeros(10, 3), padding_idx=pad)
    with pytest.raises(AssertionError):
        enn.Embedding(10, 3, padding_idx=pad)
    with pytest.raises(AssertionError):
        torch.nn.Embedding(10, 3, padding_idx=pad)


# ---- embedding_bag -------------------------------------------------------------------------

BAG_CASES = [
    # (input, offsets, kwargs)
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 4), {}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 4), {"mode": "sum"}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 4), {"mode": "max"}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 2, 2, 7), {"mode": "mean"}),  # an empty bag
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 2, 2, 7), {"mode": "sum"}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 0, 3, 8), {"mode": "max"}),   # empty first and last
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 3, 8), {"include_last_offset": True}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 3, 3, 8), {"include_last_offset": True,
                                                        "mode": "sum"}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 3, 8), {"include_last_offset": True,
                                                     "mode": "max"}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 4), {"padding_idx": 4}),
    (_idx(1, 4, 4, 5, 4, 4, 2, 9), _idx(0, 1, 3, 6), {"padding_idx": 4, "mode": "sum"}),
    (_idx(1, 4, 4, 5, 4, 4, 2, 9), _idx(0, 1, 3, 6), {"padding_idx": 4, "mode": "max"}),
    (_idx(1, 2, 1, 5, dtype="int32"), _idx(0, 2, dtype="int32"), {}),
    (_idx([1, 2, 4], [5, 4, 3]), None, {}),                               # 2-D: fixed bags
    (_idx([1, 2, 4], [5, 4, 3]), None, {"mode": "max"}),
    (_idx([1, 2, 4], [5, 4, 3]), None, {"mode": "sum", "padding_idx": 4}),
]


@pytest.mark.parametrize("idx,offsets,kw", BAG_CASES)
def test_embedding_bag_matches_torch(idx, offsets, kw):
    extra = () if offsets is None else (offsets,)
    check(lambda m, i, w, *o: m.nn.functional.embedding_bag(i, w, *o, **kw), None,
          idx, rand(10, 3), *extra)


@pytest.mark.parametrize("idx,offsets,kw", [
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 4), {}),
    (_idx(1, 2, 4, 5, 4, 3, 2, 9), _idx(0, 2, 2, 8), {"include_last_offset": True}),
    (_idx(1, 4, 4, 5, 4, 3, 2, 9), _idx(0, 1, 3), {"padding_idx": 4}),
    (_idx([1, 2, 4], [5, 4, 3]), None, {}),
])
def test_embedding_bag_per_sample_weights(idx, offsets, kw):
    extra = () if offsets is None else (offsets,)
    check(lambda m, i, w, psw, *o: m.nn.functional.embedding_bag(
        i, w, *o, mode="sum", per_sample_weights=psw, **kw), None,
        idx, rand(10, 3), rand(*idx.shape, seed=9), *extra)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_short_last_offset_runs_to_the_end(mode):
    # offsets[-1] < len(input) with include_last_offset: torch's general kernel (float64, max,
    # padding_idx) lets the last bag run to the end of the input; its float32 sum/mean fast
    # path disagrees with itself (sums to offsets[-1], divides by the count to the end)
    check(lambda m, i, w, o: m.nn.functional.embedding_bag(i, w, o, mode=mode,
                                                           include_last_offset=True),
          None, _idx(1, 2, 4, 5, 4, 3, 2, 9), rand(10, 3), _idx(0, 2, 2, 6), dtypes=("float64",))


def test_embedding_bag_without_bags():
    w = ember.randn(10, 3, requires_grad=True)
    out = EF.embedding_bag(ember.tensor([1, 2]), w, ember.tensor([0]), include_last_offset=True)
    t_out = TF.embedding_bag(torch.tensor([1, 2]), torch.randn(10, 3), torch.tensor([0]),
                             include_last_offset=True)
    assert tuple(out.shape) == tuple(t_out.shape) == (0, 3)
    out.sum().backward()  # (torch 2.13 crashes on this backward)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((10, 3), "float32"))


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("offsets", [_idx(0, 5), _idx(0, 3, 3)])
def test_embedding_bag_scale_grad_by_freq(mode, offsets):
    """Each row's gradient is divided by its count in the batch, as ``embedding`` does.

    torch 2.13's CPU embedding_bag divides the k-th distinct index (in sorted order) by the
    count of the k-th *sorted element* instead, so it is compared with the documented
    meaning, built in torch from ``embedding(scale_grad_by_freq=True)``.
    """
    idx = _idx(1, 2, 1, 5, 1, 3, 2, 9)

    def reference(i, w, o):
        rows = TF.embedding(i, w, scale_grad_by_freq=True)
        bag = torch.bucketize(torch.arange(len(i)), o, right=True) - 1
        out = torch.zeros(len(o), w.shape[1], dtype=w.dtype).index_add(0, bag, rows)
        if mode == "mean":
            out = out / torch.bincount(bag, minlength=len(o)).clamp(min=1).unsqueeze(1)
        return out

    check(lambda i, w, o: EF.embedding_bag(i, w, o, mode=mode, scale_grad_by_freq=True),
          reference, idx, rand(10, 3), offsets)


def test_embedding_bag_max_ties_and_grad_fn():
    w = np.array([[1.0, 5.0], [3.0, 5.0], [3.0, 0.0]])
    check(lambda m, i, w, o: m.nn.functional.embedding_bag(i, w, o, mode="max"), None,
          _idx(0, 1, 2, 2, 0), w, _idx(0, 3))
    out = EF.embedding_bag(ember.tensor([1]), ember.randn(3, 2, requires_grad=True),
                           ember.tensor([0]))
    assert out.grad_fn.name() == "EmbeddingBagBackward0"


def test_embedding_bag_max_norm():
    base = rand(10, 3, seed=3) * 3
    tw, ew = torch.tensor(base), ember.tensor(base)
    idx, offs = _idx(1, 2, 2, 5), _idx(0, 2)
    to = TF.embedding_bag(torch.tensor(idx), tw, torch.tensor(offs), max_norm=1.0)
    eo = EF.embedding_bag(ember.tensor(idx), ew, ember.tensor(offs), max_norm=1.0)
    assert_close(eo, to)
    assert_close(ew, tw)


@pytest.mark.parametrize("make,exc", [
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3)), ValueError),
    (lambda m: dict(input=m.tensor([[1, 2]]), weight=m.zeros(10, 3), offsets=m.tensor([0])),
     ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([[0]])),
     ValueError),
    (lambda m: dict(input=m.tensor([[[1]]]), weight=m.zeros(10, 3)), ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10), offsets=m.tensor([0])),
     ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0]),
                    mode="median"), ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0]),
                    mode="max", scale_grad_by_freq=True), ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0]),
                    per_sample_weights=m.ones(3), mode="sum"), ValueError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0]),
                    per_sample_weights=m.ones(2)), NotImplementedError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([1])),
     RuntimeError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0, 3])),
     RuntimeError),
    (lambda m: dict(input=m.tensor([1, 12]), weight=m.zeros(10, 3), offsets=m.tensor([0])),
     RuntimeError),
    (lambda m: dict(input=m.tensor([1.0, 2.0]), weight=m.zeros(10, 3), offsets=m.tensor([0])),
     RuntimeError),
    (lambda m: dict(input=m.tensor([1, 2]), weight=m.zeros(10, 3), offsets=m.tensor([0]),
                    mode="sum", per_sample_weights=m.ones(2, dtype=m.float64)), RuntimeError),
])
def test_embedding_bag_bad_inputs(make, exc):
    with pytest.raises(exc) as te:
        TF.embedding_bag(**make(torch))
    with pytest.raises(exc) as ee:
        EF.embedding_bag(**make(ember))
    # same text, up to torch's C++ type names and a trailing tensor dump in one message
    expected = str(te.value).split("\n[ torch.")[0].replace("ember.", "torch.")
    assert str(ee.value).replace("ember._tensor.", "torch.").replace("ember.", "torch.") == \
        expected.replace("torch.tensor.", "torch.")


@pytest.mark.parametrize("fn", [
    lambda w: EF.embedding(ember.tensor([[1, 2], [2, 4]]), w),
    lambda w: EF.embedding_bag(ember.tensor([1, 2, 2, 0, 3]), w, ember.tensor([0, 2]),
                               mode="mean"),
    lambda w: EF.embedding_bag(ember.tensor([1, 2, 2, 0, 3]), w, ember.tensor([0, 2, 2]),
                               mode="max"),
    lambda w: EF.embedding_bag(ember.tensor([[1, 2], [0, 3]]), w, mode="sum",
                               per_sample_weights=w[:2, :2] * 3),
])
def test_embedding_double_backward(fn):
    w = ember.tensor(rand(5, 3, seed=11), requires_grad=True)
    assert ember.autograd.gradcheck(fn, [w])
    assert ember.autograd.gradgradcheck(fn, [w])


def test_embedding_double_backward_with_altered_gradients():
    # padding_idx and scale_grad_by_freq change the gradient on purpose (no finite-difference
    # check), but the gradient is still differentiated exactly
    w = ember.tensor(rand(5, 3, seed=11), requires_grad=True)
    for kw in ({"scale_grad_by_freq": True}, {"padding_idx": 2}):
        fn = lambda w: EF.embedding(ember.tensor([1, 2, 2, 0]), w, **kw)  # noqa: E731
        assert ember.autograd.gradgradcheck(fn, [w])
    g = ember.ones(4, 3, requires_grad=True)
    gw, = ember.autograd.grad(EF.embedding(ember.tensor([1, 2, 2, 0]), w,
                                           scale_grad_by_freq=True), w, g, create_graph=True)
    assert gw.grad_fn.name() == "EmbeddingDenseBackwardBackward0"


def test_bilinear_double_backward():
    ts = [ember.tensor(rand(*s, seed=i), requires_grad=True)
          for i, s in enumerate([(3, 2), (3, 4), (2, 2, 4), (2,)])]
    assert ember.autograd.gradgradcheck(EF.bilinear, ts)


# ---- dropout (functional) ------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics_and_scaling(p):
    ember.manual_seed(0)
    x = ember.ones(100_000)
    y = EF.dropout(x, p).numpy()
    zeroed = (y == 0).mean()
    assert abs(zeroed - p) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    assert y.dtype == np.float32


def test_dropout_gradient_is_mask_times_scale():
    ember.manual_seed(1)
    x = ember.randn(50, 40, dtype=ember.float64, requires_grad=True)
    y = EF.dropout(x, 0.3)
    g = ember.randn(50, 40, dtype=ember.float64)
    y.backward(g)
    mask = (y.detach().numpy() != 0)
    np.testing.assert_allclose(x.grad.numpy(), g.numpy() * mask / 0.7, rtol=1e-12)
    np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy() * mask / 0.7, rtol=1e-12)
    assert y.grad_fn.name() == TF.dropout(torch.ones(2, requires_grad=True)).grad_fn.name()


def test_dropout_reproducible_under_manual_seed():
    x = ember.randn(20, 30)
    ember.manual_seed(123)
    a = EF.dropout(x, 0.4)
    ember.manual_seed(123)
    b = EF.dropout(x, 0.4)
    c = EF.dropout(x, 0.4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(b.numpy(), c.numpy())


@pytest.mark.parametrize("fn", ["dropout", "alpha_dropout", "feature_alpha_dropout",
                                "dropout1d", "dropout2d", "dropout3d"])
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 5), (2, 3, 4, 5, 6)])
def test_dropout_eval_and_p0_return_input(fn, shape):
    if fn == "dropout1d" and len(shape) > 3:
        shape = shape[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, training in ((0.5, False), (0.0, True)):
            x, tx = ember.randn(*shape), torch.randn(*shape)
            y, ty = getattr(EF, fn)(x, p, training=training), getattr(TF, fn)(tx, p, training)
            # the input itself, or (unbatched channel dropout) a view with the same values
            assert (y is x) == (ty is tx)
            np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_dropout_p1_gives_zeros_like_torch():
    check(lambda m, x: m.nn.functional.dropout(x, 1.0), None, rand(3, 4))
    check(lambda m, x: m.nn.functional.alpha_dropout(x, 1.0, True), None, rand(3, 4))
    check(lambda m, x: m.nn.functional.dropout2d(x, 1.0), None, rand(2, 3, 4, 4))


def test_dropout_inplace():
    ember.manual_seed(5)
    x = ember.randn(100, 10)
    ref = x.clone()
    y = EF.dropout(x, 0.5, inplace=True)
    assert y is x
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], ref.numpy()[kept] * 2, rtol=1e-6)
    # through autograd: gradient of the in-place result is still mask * scale
    a = ember.randn(30, requires_grad=True)
    b = a * 1.0
    EF.dropout(b, 0.5, inplace=True).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), (b.detach().numpy() != 0) * 2.0)
    assert b.grad_fn.name() == "MulBackward0"


@pytest.mark.parametrize("fn,shape", [("dropout1d", (4, 6, 50)), ("dropout1d", (6, 50)),
                                      ("dropout2d", (4, 6, 5, 10)), ("dropout3d", (4, 6, 2, 5, 5)),
                                      ("dropout3d", (6, 2, 5, 5)), ("dropout2d", (4, 6, 50))])
@pytest.mark.parametrize("inplace", [False, True])
def test_channel_dropout_masks_whole_channels(fn, shape, inplace):
    ember.manual_seed(2)
    x = ember.ones(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = getattr(EF, fn)(x, 0.5, inplace=inplace).numpy()
    lead = 2 if len(shape) in (3, 4, 5) and not (fn == "dropout3d" and len(shape) == 4) and not (
        fn == "dropout1d" and len(shape) == 2) else 1
    per_channel = y.reshape(int(np.prod(shape[:lead])), -1)
    # every channel is all-zero or all-2
    assert all(set(np.unique(r)) <= {0.0} or set(np.unique(r)) <= {2.0} for r in per_channel)
    assert 0 < (per_channel[:, 0] == 0).sum() < per_channel.shape[0]


def test_channel_dropout_gradients_and_grad_fn_names():
    ember.manual_seed(3)
    x = ember.randn(3, 4, 5, dtype=ember.float64, requires_grad=True)
    y = EF.dropout1d(x, 0.5)
    y.backward(ember.ones_like(y))
    np.testing.assert_allclose(x.grad.numpy(), (y.detach().numpy() != 0) * 2.0)
    for fn, shape in (("dropout1d", (3, 4, 5)), ("dropout1d", (4, 5)), ("dropout3d", (4, 2, 2, 2)),
                      ("dropout2d", (2, 3, 4, 4))):
        names = [getattr(m.nn.functional, fn)(m.ones(shape, requires_grad=True), 0.5).grad_fn
                 .name() for m in (ember, torch)]
        assert names[0] == names[1], (fn, shape, names)


@pytest.mark.parametrize("shape,msg", [
    ((3, 4), "Received a 2-D input to dropout2d"),
    ((2, 3, 4), "Received a 3D input to dropout2d"),
])
def test_dropout2d_warnings(shape, msg):
    with pytest.warns(UserWarning, match=msg):
        EF.dropout2d(ember.ones(shape), 0.5)
    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        EF.dropout3d(ember.ones(2, 3, 4), 0.5)


def test_feature_dropout_needs_two_dims():
    with pytest.warns(UserWarning):
        with pytest.raises(RuntimeError) as ee:
            EF.dropout2d(ember.ones(3), 0.5)
    with pytest.warns(UserWarning):
        with pytest.raises(RuntimeError) as te:
            TF.dropout2d(torch.ones(3), 0.5)
    assert str(ee.value) == str(te.value)
    for m in (torch, ember):
        with pytest.raises(RuntimeError, match="dropout1d: Expected 2D or 3D input"):
            m.nn.functional.dropout1d(m.ones(3), 0.5)


@pytest.mark.parametrize("fn", ["dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d",
                                "dropout2d", "dropout3d"])
@pytest.mark.parametrize("p", [1.5, -0.1])
def test_dropout_p_out_of_range(fn, p):
    for m in (torch, ember):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, "
                                             f"but got {p}"):
            getattr(m.nn.functional, fn)(m.ones(2, 3, 4, 4), p)


def test_dropout_int_input_raises_like_torch():
    with pytest.raises(RuntimeError) as te:
        TF.dropout(torch.ones(3, dtype=torch.long), 0.5)
    with pytest.raises(RuntimeError) as ee:
        EF.dropout(ember.ones(3, dtype=ember.long), 0.5)
    assert str(ee.value) == str(te.value)


def test_alpha_dropout_keeps_mean_and_variance():
    ember.manual_seed(4)
    x = ember.randn(200_000)
    y = EF.alpha_dropout(x, 0.2, training=True).numpy()
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02
    # dropped units all take the same value: -alpha' * a + alpha' * a * p (affine of 0)
    alpha = 1.7580993408473766
    a = 1 / math.sqrt((alpha ** 2 * 0.2 + 1) * 0.8)
    dropped = np.isclose(y, -alpha * a + alpha * a * 0.2, atol=1e-6)
    assert abs(dropped.mean() - 0.2) < 0.01
    xt = ember.randn(10, 4, requires_grad=True)
    yt = EF.alpha_dropout(xt, 0.5, True)
    assert yt.grad_fn.name() == TF.alpha_dropout(torch.ones(2, requires_grad=True), 0.5,
                                                 True).grad_fn.name()


def test_feature_alpha_dropout_is_channel_wise():
    ember.manual_seed(6)
    y = EF.feature_alpha_dropout(ember.zeros(8, 16, 10), 0.5, training=True).numpy()
    assert (y.std(axis=2) < 1e-6).all()                     # one value per channel
    assert len(np.unique(y.round(5))) == 2


# ---- modules vs torch ----------------------------------------------------------------------

def _copy_weights(em, tm):
    return em.load_state_dict({k: ember.tensor(v.detach().numpy())
                               for k, v in tm.state_dict().items()})


def _compare_modules(make, inputs, modes=(True, False), dtypes=("float64", "float32"),
                     seed=0):
    """Same weights in both; outputs, input gradients and parameter gradients agree."""
    rng = np.random.default_rng(seed)
    for dt in dtypes:
        tm, em = make(torch).to(getattr(torch, dt)), make(ember).to(getattr(ember, dt))
        _copy_weights(em, tm)
        for mode in modes:
            tm.train(mode)
            em.train(mode)
            t_in, e_in = [], []
            for a in inputs:
                if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                    a = a.astype(dt)
                    t_in.append(torch.tensor(a, requires_grad=True))
                    e_in.append(ember.tensor(a, requires_grad=True))
                else:
                    t_in.append(torch.tensor(a))
                    e_in.append(ember.tensor(a))
            to, eo = tm(*t_in), em(*e_in)
            assert_close(eo, to, dt, f"output [{dt}, train={mode}]")
            g = rng.standard_normal(tuple(to.shape)).astype(dt)
            to.backward(torch.tensor(g))
            eo.backward(ember.tensor(g))
            for a, b in zip(e_in, t_in):
                if b.grad is not None:
                    assert_close(a.grad, b.grad, dt, "input grad")
            tp = dict(tm.named_parameters())
            for name, p in em.named_parameters():
                if tp[name].grad is None:
                    assert p.grad is None or not p.grad.numpy().any(), name
                else:
                    assert_close(p.grad, tp[name].grad, dt, f"grad of {name} [{dt}]")
            tm.zero_grad()
            em.zero_grad()


MODULE_CASES = [
    ("linear-1d", lambda m: m.nn.Linear(4, 3), [rand(4)]),
    ("linear-2d", lambda m: m.nn.Linear(4, 3), [rand(5, 4)]),
    ("linear-3d", lambda m: m.nn.Linear(4, 3), [rand(2, 5, 4)]),
    ("linear-nobias", lambda m: m.nn.Linear(4, 3, bias=False), [rand(5, 4)]),
    ("bilinear", lambda m: m.nn.Bilinear(3, 4, 2), [rand(5, 3), rand(5, 4, seed=1)]),
    ("bilinear-nobias", lambda m: m.nn.Bilinear(3, 4, 2, bias=False), [rand(5, 3),
                                                                       rand(5, 4, seed=1)]),
    ("embedding", lambda m: m.nn.Embedding(10, 3), [_idx([1, 2, 2], [9, 0, 1])]),
    ("embedding-pad", lambda m: m.nn.Embedding(10, 3, padding_idx=2), [_idx(1, 2, 2, 5)]),
    ("embedding-freq", lambda m: m.nn.Embedding(10, 3, scale_grad_by_freq=True),
     [_idx(1, 2, 2, 5, 2)]),
    ("embeddingbag-mean", lambda m: m.nn.EmbeddingBag(10, 3), [_idx([1, 2], [2, 5])]),
    ("embeddingbag-sum", lambda m: m.nn.EmbeddingBag(10, 3, mode="sum"),
     [_idx(1, 2, 2, 5, 7), _idx(0, 1, 1)]),
    ("embeddingbag-max", lambda m: m.nn.EmbeddingBag(10, 3, mode="max", padding_idx=7),
     [_idx(1, 2, 2, 5, 7), _idx(0, 1, 4)]),
    ("sequential", lambda m: m.nn.Sequential(m.nn.Flatten(), m.nn.Linear(12, 6), m.nn.Dropout(0.3),
                                             m.nn.Linear(6, 4), m.nn.Unflatten(1, (2, 2)),
                                             m.nn.Identity()), [rand(5, 3, 4)]),
]


@pytest.mark.parametrize("name,make,inputs", MODULE_CASES, ids=[c[0] for c in MODULE_CASES])
def test_module_matches_torch(name, make, inputs):
    modes = (False,) if name == "sequential" else (True, False)
    _compare_modules(make, inputs, modes)


@pytest.mark.parametrize("cls", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                                 "FeatureAlphaDropout"])
def test_dropout_modules(cls):
    te, ee = getattr(torch.nn, cls)(0.25), getattr(enn, cls)(0.25)
    assert repr(ee) == repr(te) == f"{cls}(p=0.25, inplace=False)"
    assert repr(getattr(enn, cls)(inplace=True)) == repr(getattr(torch.nn, cls)(inplace=True))
    assert (ee.p, ee.inplace) == (0.25, False)
    ee.eval()
    shape = {"Dropout1d": (8, 16, 4), "Dropout2d": (8, 16, 4, 4)}.get(cls, (8, 16, 4, 4, 4))
    x = ember.randn(*shape)
    np.testing.assert_array_equal(ee(x).numpy(), x.numpy())
    if cls not in ("Dropout1d", "Dropout3d"):
        assert ee(x) is x
    ee.train()
    ember.manual_seed(0)
    y = ee(ember.ones(*shape))
    assert not np.allclose(y.numpy(), 1.0)
    assert list(ee.state_dict()) == []
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got 1.5"):
        getattr(enn, cls)(1.5)


REPR_CASES = [
    lambda m: m.nn.Linear(4, 3),
    lambda m: m.nn.Linear(4, 3, bias=False),
    lambda m: m.nn.Bilinear(2, 3, 4),
    lambda m: m.nn.Bilinear(2, 3, 4, bias=False),
    lambda m: m.nn.Embedding(10, 3),
    lambda m: m.nn.Embedding(10, 3, padding_idx=-1, max_norm=2.0, norm_type=1.0,
                             scale_grad_by_freq=True, sparse=True),
    lambda m: m.nn.EmbeddingBag(10, 3),
    lambda m: m.nn.EmbeddingBag(10, 3, max_norm=1.0, norm_type=3, mode="max", padding_idx=0,
                                scale_grad_by_freq=False),
    lambda m: m.nn.Flatten(),
    lambda m: m.nn.Flatten(0, 2),
    lambda m: m.nn.Unflatten(1, (2, 3)),
    lambda m: m.nn.Unflatten(-1, [2, 3]),
    lambda m: m.nn.Identity(54, unused_argument1=0.1),
    lambda m: m.nn.LazyLinear(7),
    lambda m: m.nn.Sequential(m.nn.Linear(3, 4), m.nn.Dropout(), m.nn.Linear(4, 1)),
]


@pytest.mark.parametrize("make", REPR_CASES)
def test_repr_and_state_dict_keys_match_torch(make):
    em, tm = make(ember), make(torch)
    assert repr(em) == repr(tm)
    assert list(em.state_dict().keys()) == list(tm.state_dict().keys())
    assert [n for n, _ in em.named_parameters()] == [n for n, _ in tm.named_parameters()]


def test_dtype_kwarg_is_honoured():
    for make in (lambda m, dt: m.nn.Linear(3, 2, dtype=dt), lambda m, dt: m.nn.Bilinear(
            2, 3, 4, dtype=dt), lambda m, dt: m.nn.Embedding(5, 2, dtype=dt),
            lambda m, dt: m.nn.EmbeddingBag(5, 2, dtype=dt)):
        em = make(ember, ember.float64)
        assert all(p.dtype == ember.float64 for p in em.parameters())
        assert all(p.requires_grad for p in em.parameters())
    lin = enn.Linear(3, 2, dtype=ember.float64, device="cpu")
    assert lin(ember.ones(4, 3, dtype=ember.float64)).dtype == ember.float64


def test_linear_reset_parameters_redraws():
    lin = enn.Linear(4, 3)
    before = lin.weight.detach().clone()
    lin.reset_parameters()
    assert not np.array_equal(before.numpy(), lin.weight.detach().numpy())
    assert lin.weight.requires_grad and lin.weight.is_leaf


# ---- initialisation statistics ---------------------------------------------------------------

def _stats(a):
    a = np.asarray(a, dtype=np.float64)
    return a.min(), a.max(), a.std(), a.mean()


@pytest.mark.parametrize("fan_in", [9, 100, 784])
def test_linear_init_statistics(fan_in):
    bound = 1 / math.sqrt(fan_in)
    w = enn.Linear(fan_in, 100_000 // fan_in + 1).weight.detach().numpy()
    b = np.concatenate([enn.Linear(fan_in, 2000).bias.detach().numpy() for _ in range(20)])
    tw = torch.nn.Linear(fan_in, 100_000 // fan_in + 1).weight.detach().numpy()
    for arr, ref in ((w, tw), (b, None)):
        lo, hi, std, mean = _stats(arr)
        assert -bound <= lo < -0.99 * bound and 0.99 * bound < hi <= bound
        assert abs(std - bound / math.sqrt(3)) < 0.01 * bound       # U(-b, b) has std b/sqrt(3)
        assert abs(mean) < 0.01 * bound
        if ref is not None:
            assert abs(std - ref.std()) < 0.015 * bound


def test_bilinear_and_embedding_init_statistics():
    w = enn.Bilinear(16, 30, 200).weight.detach().numpy()
    lo, hi, std, _ = _stats(w)
    assert -0.25 <= lo < -0.249 and 0.249 < hi <= 0.25 and abs(std - 0.25 / math.sqrt(3)) < 2e-3
    e = enn.Embedding(20_000, 5, padding_idx=3).weight.detach().numpy()
    assert abs(e.mean()) < 0.02 and abs(e.std() - 1) < 0.02
    np.testing.assert_array_equal(e[3], 0)
    eb = enn.EmbeddingBag(100, 4, padding_idx=-1).weight.detach().numpy()
    np.testing.assert_array_equal(eb[99], 0)


# ---- Embedding modules ---------------------------------------------------------------------

def test_embedding_from_pretrained():
    table = ember.tensor([[1.0, 2.3, 3.0], [4.0, 5.1, 6.3]])
    emb = enn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    np.testing.assert_allclose(emb(ember.tensor([1])).numpy(), [[4.0, 5.1, 6.3]], rtol=1e-6)
    emb2 = enn.Embedding.from_pretrained(table, freeze=False, padding_idx=0)
    assert emb2.weight.requires_grad and emb2.padding_idx == 0
    np.testing.assert_allclose(emb2.weight.detach().numpy()[0], [1.0, 2.3, 3.0], rtol=1e-6)
    assert emb2.weight._data is table._data  # shares the table's memory, as in torch
    assert repr(emb2) == repr(torch.nn.Embedding.from_pretrained(torch.ones(2, 3),
                                                                 padding_idx=0))
    bag = enn.EmbeddingBag.from_pretrained(table, mode="sum")
    assert not bag.weight.requires_grad
    np.testing.assert_allclose(bag(ember.tensor([[0, 1]])).numpy(), [[5.0, 7.4, 9.3]],
                               rtol=1e-6)
    with pytest.raises(AssertionError):
        enn.Embedding.from_pretrained(ember.ones(3))
    with pytest.raises(AssertionError):
        enn.Embedding(3, 2, _weight=ember.ones(2, 3))


def test_embedding_module_max_norm_and_freeze():
    te = torch.nn.Embedding(10, 4, max_norm=1.0)
    ee = enn.Embedding(10, 4, max_norm=1.0)
    _copy_weights(ee, te)
    idx = _idx([1, 2, 3], [3, 3, 9])
    assert_close(ee(ember.tensor(idx)), te(torch.tensor(idx)), "float32")
    assert_close(ee.weight.detach(), te.weight.detach(), "float32")
    frozen = enn.Embedding(5, 2, _freeze=True)
    assert not frozen.weight.requires_grad
    assert frozen(ember.tensor([1])).grad_fn is None


# ---- Lazy / Flatten / Identity ---------------------------------------------------------------

def test_lazy_linear_materialises_on_first_forward():
    torch_lazy = torch.nn.LazyLinear(3)
    lazy = enn.LazyLinear(3)
    assert repr(lazy) == repr(torch_lazy) == "LazyLinear(in_features=0, out_features=3, bias=True)"
    y = lazy(ember.randn(2, 5))
    torch_lazy(torch.randn(2, 5))
    assert type(lazy) is enn.Linear and repr(lazy) == repr(torch_lazy)
    assert tuple(lazy.weight.shape) == (3, 5) and tuple(lazy.bias.shape) == (3,)
    assert type(lazy.weight) is enn.Parameter and lazy.weight.requires_grad
    assert tuple(y.shape) == (2, 3)
    bound = 1 / math.sqrt(5)
    assert np.abs(lazy.weight.detach().numpy()).max() <= bound
    y.sum().backward()
    assert lazy.weight.grad is not None
    assert list(lazy.state_dict()) == ["weight", "bias"]
    nb = enn.LazyLinear(2, bias=False, dtype=ember.float64)
    nb(ember.ones(1, 4, dtype=ember.float64))
    assert nb.bias is None and nb.weight.dtype == ember.float64


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.nn.Flatten(), (2, 3, 4, 5)),
    (lambda m: m.nn.Flatten(0, -1), (2, 3, 4)),
    (lambda m: m.nn.Flatten(-2), (2, 3, 4)),
    (lambda m: m.nn.Unflatten(1, (2, 3)), (4, 6)),
    (lambda m: m.nn.Unflatten(-1, (-1, 2)), (4, 6)),
    (lambda m: m.nn.Unflatten(0, [1, 4]), (4, 6)),
    (lambda m: m.nn.Identity(), (3,)),
])
def test_flatten_modules_match_torch(make, shape):
    check(lambda m, x: make(m)(x), None, rand(*shape))


def test_flatten_bad_inputs():
    for m in (torch, ember):
        with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints, but "
                                            "found type int"):
            m.nn.Unflatten(1, 3)
        with pytest.raises(TypeError, match="found element of type float at pos 1"):
            m.nn.Unflatten(1, (2, 3.0))
        with pytest.raises(IndexError):
            m.nn.Flatten(3)(m.ones(2, 3))
        with pytest.raises(RuntimeError):
            m.nn.Unflatten(1, (4, 2))(m.ones(2, 6))


def test_identity_passes_through():
    x = ember.randn(3)
    assert enn.Identity(1, 2, key=3)(x) is x


# ---- the seed network ----------------------------------------------------------------------

SEED_CODE = '''
import torch
import torch.nn as nn

class TwoLayerNet(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)   # W1, b1
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)  # W2, b2

    def forward(self, x):
        h = self.relu(self.fc1(x))  # h = ReLU(W1 x + b1)
        return self.fc2(h)           # y = W2 h + b2

model = TwoLayerNet(in_dim=10, hidden_dim=64, out_dim=1)
x = torch.randn(32, 10)   # batch of 32 inputs
y_hat = model(x)           # forward pass — calls model.forward(x)
print(y_hat.shape)         # torch.Size([32, 1])
'''


def test_seed_two_layer_net_runs_with_ember():
    code = SEED_CODE.replace("import torch.nn as nn", "import ember.nn as nn").replace(
        "import torch\n", "import ember as torch\n")
    assert "import ember as torch" in code and "import ember.nn as nn" in code
    out = io.StringIO()
    scope = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "seed", "exec"), scope)
    assert out.getvalue() == "ember.Size([32, 1])\n"
    model = scope["model"]
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    # the same network in torch, with ember's weights, computes the same numbers
    tscope = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(SEED_CODE, "seed", "exec"), tscope)
    tmodel = tscope["model"]
    tmodel.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    x = scope["x"]
    assert_close(model(x), tmodel(torch.tensor(x.numpy())), "float32")
