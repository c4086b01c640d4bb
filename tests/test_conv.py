"""Convolution (conv1d/2d/3d, conv_transpose, unfold/fold) ops and layers against torch."""
from __future__ import annotations

import contextlib
import gc
import math
import pathlib
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn as enn
import ember.nn.functional as EF
from opcheck import check, gradcheck, rand, assert_close, to_ember, to_torch

TF = torch.nn.functional
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _fn(nd, transposed=False):
    return (f"conv_transpose{nd}d" if transposed else f"conv{nd}d")


# ---- forward and gradients over a grid -----------------------------------------------------

CONV_CASES = [
    # (nd, input shape, weight shape, bias?, kwargs)
    (1, (2, 3, 9), (4, 3, 3), True, {}),
    (1, (1, 2, 7), (3, 2, 2), False, dict(stride=2, padding=1)),
    (1, (2, 4, 10), (6, 2, 3), True, dict(groups=2, dilation=2, padding=2)),
    (1, (2, 4, 8), (5, 4, 4), True, dict(padding="same")),
    (1, (2, 4, 9), (5, 4, 4), True, dict(padding="same", dilation=3)),
    (1, (2, 4, 9), (5, 4, 2), True, dict(padding="valid", stride=3)),
    (1, (3, 9), (4, 3, 3), True, dict(padding=1)),                       # unbatched
    (1, (2, 3, 50), (4, 3, 3), True, dict(stride=2, padding=1)),         # long rows
    (2, (2, 3, 8, 7), (4, 3, 3, 3), True, {}),
    (2, (1, 3, 7, 9), (4, 3, 3, 2), True, dict(stride=(2, 1), padding=(1, 0))),
    (2, (2, 4, 9, 8), (6, 2, 3, 3), True, dict(groups=2, stride=2, padding=1, dilation=2)),
    (2, (2, 4, 7, 7), (4, 1, 3, 3), True, dict(groups=4, padding=1)),     # depthwise
    (2, (2, 4, 7, 7), (8, 1, 3, 3), False, dict(groups=4, stride=2)),    # depthwise x2
    (2, (2, 3, 8, 7), (5, 3, 4, 2), True, dict(padding="same")),          # even kernels
    (2, (2, 3, 9, 8), (5, 3, 2, 3), True, dict(padding="same", dilation=(3, 2))),
    (2, (2, 3, 5, 5), (4, 3, 5, 5), True, {}),                           # kernel = input
    (2, (2, 3, 6, 6), (4, 3, 1, 1), True, {}),                           # 1x1
    (2, (2, 3, 11, 10), (4, 3, 3, 3), True, dict(stride=3, padding=2, dilation=2)),
    (2, (3, 8, 7), (4, 3, 3, 3), True, dict(padding=1)),                 # unbatched
    (2, (2, 3, 6, 40), (4, 3, 3, 3), True, dict(stride=(1, 2))),         # long rows
    (2, (2, 4, 5, 20), (4, 2, 3, 3), True, dict(padding=1, groups=2)),   # long rows, 'same'
    (2, (1, 2, 5, 6), (3, 2, 3, 3), True, dict(stride=[2], padding=[1])),
    (3, (2, 2, 5, 6, 4), (3, 2, 2, 3, 2), True, dict(stride=(1, 2, 1), padding=(1, 0, 2))),
    (3, (1, 4, 5, 5, 5), (4, 2, 3, 3, 3), True, dict(groups=2, padding="same", dilation=2)),
    (3, (2, 5, 4, 6), (3, 2, 3, 3, 3), False, dict(padding=1)),          # unbatched
]


@pytest.mark.parametrize("nd,xs,ws,bias,kw", CONV_CASES)
def test_conv_matches_torch(nd, xs, ws, bias, kw):
    name = _fn(nd)
    if bias:
        check(lambda m, x, w, b: getattr(m.nn.functional, name)(x, w, b, **kw), None,
              rand(*xs), rand(*ws), rand(ws[0]))
    else:
        check(lambda m, x, w: getattr(m.nn.functional, name)(x, w, **kw), None,
              rand(*xs), rand(*ws))


TRANSPOSE_CASES = [
    # (nd, input shape, weight shape, bias?, kwargs)
    (1, (2, 4, 5), (4, 3, 3), True, {}),
    (1, (2, 4, 5), (4, 3, 3), True, dict(stride=2, padding=1, output_padding=1)),
    (1, (2, 4, 5), (4, 2, 3), False, dict(groups=2, dilation=2, output_padding=1)),
    (1, (4, 6), (4, 3, 2), True, dict(stride=3)),                         # unbatched
    (2, (2, 4, 5, 4), (4, 3, 3, 2), True, dict(stride=2, padding=1, output_padding=1,
                                               groups=2, dilation=2)),
    (2, (1, 3, 4, 5), (3, 2, 3, 3), True, dict(stride=(1, 2), padding=(2, 1))),
    (2, (2, 4, 3, 3), (4, 1, 3, 3), True, dict(groups=4, stride=2)),     # depthwise
    (2, (2, 2, 4, 4), (2, 3, 4, 4), True, dict(stride=2, padding=1)),     # DCGAN-style
    (2, (3, 4, 4), (3, 2, 3, 3), False, dict(padding=1)),                # unbatched
    (3, (1, 2, 3, 4, 3), (2, 3, 2, 3, 2), True, dict(stride=(2, 1, 2), output_padding=(1, 0, 0),
                                                     padding=(0, 1, 1))),
]


@pytest.mark.parametrize("nd,xs,ws,bias,kw", TRANSPOSE_CASES)
def test_conv_transpose_matches_torch(nd, xs, ws, bias, kw):
    name = _fn(nd, True)
    if bias:
        check(lambda m, x, w, b: getattr(m.nn.functional, name)(x, w, b, **kw), None,
              rand(*xs), rand(*ws), rand(ws[1] * kw.get("groups", 1)))
    else:
        check(lambda m, x, w: getattr(m.nn.functional, name)(x, w, **kw), None,
              rand(*xs), rand(*ws))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), cin=st.integers(1, 3), cout=st.integers(1, 3),
       groups=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 3),
       pad=st.integers(0, 2), dil=st.integers(1, 2), seed=st.integers(0, 100))
def test_conv2d_hypothesis(n, cin, cout, groups, h, w, kh, kw, stride, pad, dil, seed):
    cin, cout = cin * groups, cout * groups
    if h + 2 * pad < dil * (kh - 1) + 1 or w + 2 * pad < dil * (kw - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w))
    wt = rng.standard_normal((cout, cin // groups, kh, kw))
    b = rng.standard_normal(cout)
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, stride, pad, dil, groups), None,
          x, wt, b, dtypes=("float64",))
    # transposed with the same weight read as (in, out/groups, k)
    xt = rng.standard_normal((n, cout, h, w))
    op = rng.integers(0, max(stride, dil))
    size = [(s - 1) * stride - 2 * pad + dil * (k - 1) + op + 1 for s, k in ((h, kh), (w, kw))]
    if min(size) > 0:
        check(lambda m, x, w: m.nn.functional.conv_transpose2d(x, w, None, stride, pad, int(op),
                                                               groups, dil), None,
              xt, wt, dtypes=("float64",))


def test_non_contiguous_input_and_weight():
    x = rand(2, 7, 3, 6)    # permuted below to (2, 3, 6, 7)
    w = rand(3, 3, 4, 5)    # transposed below to (4, 3, 3, 5)... then sliced
    check(lambda m, x, w: m.nn.functional.conv2d(x.permute(0, 2, 3, 1), w.transpose(0, 1)
                                                 [:, :, ::1, 1:4], stride=(1, 2), padding=1),
          None, x, w)
    check(lambda m, x: m.nn.functional.conv1d(x.transpose(1, 2), x[:1].transpose(1, 2)[:, :, :2]
                                              .expand(3, -1, -1)), None, rand(2, 6, 4))


@pytest.mark.parametrize("block", [1, 30000])  # 1 and 2 samples a block
def test_blocked_im2col_matches_torch(monkeypatch, block):
    # Large layers run im2col in blocks of samples (ember.ops.conv._chunk); force tiny blocks.
    import ember.ops.conv as conv_ops
    monkeypatch.setattr(conv_ops, "_BLOCK_BYTES", block)
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, stride=2, padding=1, groups=2),
          None, rand(5, 4, 7, 20), rand(6, 2, 3, 3), rand(6))
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, padding=1), None,
          rand(3, 3, 6, 5), rand(3, 3, 3, 3), rand(3))
    check(lambda m, x, w, b: m.nn.functional.conv_transpose1d(x, w, b, stride=2, padding=1),
          None, rand(3, 4, 6), rand(4, 3, 3), rand(3))



# Depthwise convolutions (one input channel a group, G > 1) run on the phase-flat engine (direct
# multiply-adds over phase-split rows); strided transposed products use its slice-adds too.
FLAT_CASES = [
    # (nd, input shape, weight shape, kwargs)
    (2, (3, 4, 9, 7), (4, 1, 3, 3), dict(groups=4, stride=2, padding=1)),
    (2, (2, 3, 8, 9), (6, 1, 3, 2), dict(groups=3, stride=(3, 2), padding=(2, 0))),  # x2 mult
    (2, (2, 2, 9, 10), (6, 1, 3, 3), dict(groups=2, dilation=(2, 3), padding=(1, 3))),
    (2, (2, 3, 7, 8), (3, 1, 5, 5), dict(groups=3, stride=2, dilation=2, padding=4)),
    (2, (2, 1, 6, 6), (3, 1, 3, 3), dict(stride=2)),                     # groups=1, C_in=1
    (2, (1, 2, 5, 6), (2, 1, 1, 1), dict(groups=2, stride=3)),           # 1x1, stride > kernel
    (1, (2, 5, 11), (10, 1, 4), dict(groups=5, stride=3, padding=2, dilation=2)),
    (3, (2, 3, 5, 6, 5), (3, 1, 3, 2, 3), dict(groups=3, stride=(2, 1, 2), padding=1)),
    (2, (2, 4, 9, 8), (6, 4, 3, 3), dict(stride=2, padding=1)),          # dense, stride 2
    (2, (2, 4, 9, 8), (6, 2, 3, 3), dict(groups=2, stride=(2, 3), padding=(0, 2))),
]


@pytest.mark.parametrize("nd,xs,ws,kw", FLAT_CASES)
def test_depthwise_and_strided_match_torch(nd, xs, ws, kw):
    check(lambda m, x, w, b: getattr(m.nn.functional, _fn(nd))(x, w, b, **kw), None,
          rand(*xs), rand(*ws), rand(ws[0]))
    # the transposed convolution with the same geometry (weight read as (in, out/G, *k))
    g = kw.get("groups", 1)
    tkw = {k: v for k, v in kw.items() if k != "padding" or not isinstance(v, str)}
    check(lambda m, x, w: getattr(m.nn.functional, _fn(nd, True))(x, w, **tkw), None,
          rand(xs[0], ws[0], *xs[2:]), rand(ws[0], xs[1] // g, *ws[2:]))


@pytest.mark.parametrize("block", [1, 3000])  # one sample a block, and a few
def test_blocked_flat_engine_matches_torch(monkeypatch, block):
    import ember.ops.conv as conv_ops
    monkeypatch.setattr(conv_ops, "_FLAT_BLOCK_BYTES", block)
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, stride=2, padding=1, groups=4),
          None, rand(5, 4, 7, 9), rand(4, 1, 3, 3), rand(4))
    check(lambda m, x, w: m.nn.functional.conv_transpose2d(x, w, stride=2, padding=1,
                                                           output_padding=1),
          None, rand(3, 4, 5, 6), rand(4, 3, 3, 3))


def test_depthwise_gradcheck_and_double_backward():
    def fn(x, w, b):
        return EF.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    x, w, b = rand(2, 2, 5, 6, seed=1), rand(4, 1, 3, 2, seed=2), rand(4, seed=3)
    assert gradcheck(fn, x, w, b)
    ts = [ember.from_numpy(a.copy()).requires_grad_() for a in (x, w, b)]
    assert ember.autograd.gradgradcheck(fn, ts)


def test_depthwise_integer_and_float16():
    x = np.arange(2 * 3 * 6 * 5).reshape(2, 3, 6, 5) % 7
    w = np.arange(6 * 1 * 3 * 3).reshape(6, 1, 3, 3) % 5 - 2
    for kw in (dict(groups=3, padding=1), dict(groups=3, stride=2)):
        e = EF.conv2d(ember.from_numpy(x.copy()), ember.from_numpy(w.copy()), **kw)
        t = TF.conv2d(torch.from_numpy(x.copy()), torch.from_numpy(w.copy()), **kw)
        assert_close(e, t)
    xf, wf = rand(2, 3, 6, 5), rand(3, 1, 3, 3)
    e = EF.conv2d(ember.from_numpy(xf.astype("float16")), ember.from_numpy(wf.astype("float16")),
                  groups=3, stride=2)
    t = TF.conv2d(torch.from_numpy(xf.astype("float16")), torch.from_numpy(wf.astype("float16")),
                  groups=3, stride=2)
    assert e.dtype == ember.float16
    np.testing.assert_allclose(e.numpy().astype(float), t.numpy().astype(float), rtol=1e-2,
                               atol=2e-2)

def test_empty_batch():
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, padding=1), None,
          rand(0, 3, 5, 5), rand(4, 3, 3, 3), rand(4))


@pytest.mark.parametrize("algo", ["im2col", "fold", "winograd4"])
def test_work_arrays_come_from_the_workspace(monkeypatch, algo):
    """conv's work arrays are workspace blocks (NOTE [ Workspace ]): with every array pooled
    the gradients equal torch's, a second graph alive at once changes nothing, and the
    blocks are free again once both graphs are gone."""
    from ember.ops import _workspace as ws
    monkeypatch.setattr(ws, "MIN_BYTES", 0)
    monkeypatch.setattr(sys.modules["ember.ops.conv"], "_FORCE", algo)
    # Blocks an earlier test left in a reference cycle stay held until the collector runs,
    # so count from what is held once it has (CI once saw 512 KiB still held here).
    gc.collect()
    ws.clear()
    base = ws._held[0]
    xs, w = [rand(2, 8, 6, 6), rand(2, 8, 6, 6)], rand(8, 8, 3, 3)
    we = ember.from_numpy(w).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    ye = [EF.conv2d(ember.from_numpy(x), we, padding=1) for x in xs]  # two graphs alive
    yt = [TF.conv2d(torch.from_numpy(x), wt, padding=1) for x in xs]
    for e, t in zip(ye, yt):
        np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-9,
                                   atol=1e-9)
    (ye[0].sum() + (ye[1] ** 2).sum()).backward()
    (yt[0].sum() + (yt[1] ** 2).sum()).backward()
    np.testing.assert_allclose(we.grad.numpy(), wt.grad.numpy(), rtol=1e-9, atol=1e-9)
    assert ws._held[0] > base
    del ye
    ws.clear()  # drops only free blocks: what the conv held is free once its graph is gone
    assert ws._held[0] == base


def test_float16():
    x, w = rand(2, 3, 6, 5), rand(4, 3, 3, 3)
    e = EF.conv2d(ember.from_numpy(x.astype("float16")), ember.from_numpy(w.astype("float16")))
    t = TF.conv2d(torch.from_numpy(x.astype("float16")), torch.from_numpy(w.astype("float16")))
    assert e.dtype == ember.float16
    np.testing.assert_allclose(e.numpy().astype(float), t.numpy().astype(float), rtol=1e-2,
                               atol=2e-2)


def test_integer_inputs_convolve_without_grad():
    x = np.arange(2 * 3 * 5 * 5).reshape(2, 3, 5, 5) % 7
    w = np.arange(4 * 3 * 3 * 3).reshape(4, 3, 3, 3) % 5 - 2
    e = EF.conv2d(ember.from_numpy(x.copy()), ember.from_numpy(w.copy()), padding=1)
    t = TF.conv2d(torch.from_numpy(x.copy()), torch.from_numpy(w.copy()), padding=1)
    assert_close(e, t)
    e = EF.conv_transpose2d(ember.from_numpy(x.copy()), ember.from_numpy(w[:3].copy()), stride=2)
    t = TF.conv_transpose2d(torch.from_numpy(x.copy()), torch.from_numpy(w[:3].copy()), stride=2)
    assert_close(e, t)


# ---- adjointness, gradcheck, double backward -----------------------------------------------

@pytest.mark.parametrize("nd,kw", [
    (1, dict(stride=2, padding=1, dilation=2)),
    (2, dict(stride=(2, 3), padding=(1, 2), dilation=(1, 2), groups=2)),
    (2, dict(stride=1, padding=2)),
    (3, dict(stride=2, padding=1, groups=2)),
])
def test_conv_transpose_is_the_adjoint_of_conv(nd, kw):
    rng = np.random.default_rng(1)
    xs = (2, 4) + (7, 8, 6)[:nd]
    w = ember.from_numpy(rng.standard_normal((6, 2 if kw.get("groups") else 4) + (3,) * nd))
    x = ember.from_numpy(rng.standard_normal(xs))
    y = getattr(EF, _fn(nd))(x, w, **kw)
    yt = ember.from_numpy(rng.standard_normal(tuple(y.shape)))
    # output_padding picks the transposed output size back to x's
    tkw = {k: v for k, v in kw.items()}
    st_ = [kw.get("stride", 1)] * nd if isinstance(kw.get("stride", 1), int) else kw["stride"]
    pd = [kw.get("padding", 0)] * nd if isinstance(kw.get("padding", 0), int) else kw["padding"]
    dl = [kw.get("dilation", 1)] * nd if isinstance(kw.get("dilation", 1), int) else \
        kw["dilation"]
    tkw["output_padding"] = tuple(
        xs[2 + i] - ((y.shape[2 + i] - 1) * st_[i] - 2 * pd[i] + dl[i] * 2 + 1)
        for i in range(nd))
    xt = getattr(EF, _fn(nd, True))(yt, w, **tkw)
    assert tuple(xt.shape) == xs
    lhs = float((y * yt).sum())
    rhs = float((x * xt).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-9)
    # and conv_transpose matches torch on the same arrays
    tt = getattr(TF, _fn(nd, True))(torch.from_numpy(yt.numpy()), torch.from_numpy(w.numpy()),
                                    **tkw)
    assert_close(xt, tt)


GRAD_CASES = [
    lambda x, w, b: EF.conv2d(x, w, b, stride=2, padding=1, groups=2),
    lambda x, w, b: EF.conv2d(x, w, b, padding="same", dilation=(1, 2), groups=2),
    lambda x, w, b: EF.conv_transpose2d(x, w, b[:4], stride=2, padding=1, output_padding=1,
                                        groups=2),
    lambda x, w, b: EF.conv_transpose2d(x, w, b[:4], padding=1, groups=2),
]


@pytest.mark.parametrize("fn", GRAD_CASES)
def test_gradcheck_and_double_backward(fn):
    x, w, b = rand(1, 4, 4, 5, seed=1), rand(4, 2, 3, 2, seed=2), rand(4, seed=3)
    assert gradcheck(fn, x, w, b)
    ts = [ember.from_numpy(a.copy()).requires_grad_() for a in (x, w, b)]
    assert ember.autograd.gradgradcheck(fn, ts)


def test_double_backward_matches_torch():
    # d/dw of <grad_x, v> needs conv's second derivatives (grad-of-grad through T and W)
    x, w, v = rand(2, 3, 6, 5, seed=1), rand(4, 3, 3, 3, seed=2), rand(2, 3, 6, 5, seed=3)
    res = {}
    for m in (ember, torch):
        xt, wt = (to_ember if m is ember else to_torch)(x, True), \
            (to_ember if m is ember else to_torch)(w, True)
        y = m.nn.functional.conv2d(xt, wt, stride=2, padding=1)
        gx, = m.autograd.grad((y ** 2).sum(), xt, create_graph=True)
        vt = (to_ember if m is ember else to_torch)(v)
        gw, gxx = m.autograd.grad((gx * vt).sum(), [wt, xt])
        res[m] = (gx, gw, gxx)
    assert_close(res[ember], res[torch])
    assert res[ember][0].grad_fn.name() == "ConvolutionBackwardBackward0"


def test_grad_fn_names():
    x = ember.randn(1, 3, 5, 5, requires_grad=True)
    w = ember.randn(4, 3, 3, 3, requires_grad=True)
    assert EF.conv2d(x, w).grad_fn.name() == "ConvolutionBackward0"
    assert EF.conv_transpose2d(EF.conv2d(x, w), w).grad_fn.name() == "ConvolutionBackward0"
    assert EF.unfold(x, 2).grad_fn.name() == "Im2ColBackward0"
    assert EF.fold(EF.unfold(x, 2), (5, 5), 2).grad_fn.name() == "Col2ImBackward0"
    # unbatched input: PyTorch adds and drops the batch dim around conv, but not unfold/fold
    assert EF.conv2d(x[0], w).grad_fn.name() == "SqueezeBackward1"
    assert EF.unfold(x[0], 2).grad_fn.name() == "Im2ColBackward0"
    assert EF.fold(EF.unfold(x[0], 2), (5, 5), 2).grad_fn.name() == "Col2ImBackward0"


def test_backward_twice_with_retain_graph():
    x = ember.randn(2, 3, 5, 5, requires_grad=True)
    w = ember.randn(4, 3, 3, 3, requires_grad=True)
    y = EF.conv2d(x, w, padding=1).sum()
    y.backward(retain_graph=True)
    g1 = w.grad.clone()
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * g1.numpy(), rtol=1e-6)


# ---- unfold / fold -------------------------------------------------------------------------

FOLD_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=(2, 3), padding=1, stride=2, dilation=(1, 2)),
    dict(kernel_size=3, padding=(0, 1), stride=(1, 2), dilation=2),
]


@pytest.mark.parametrize("kw", FOLD_CASES)
@pytest.mark.parametrize("batched", [True, False])
def test_unfold_fold_match_torch(kw, batched):
    x = rand(2, 3, 7, 8) if batched else rand(3, 7, 8)
    check(lambda m, x: m.nn.functional.unfold(x, **kw), None, x)
    cols = TF.unfold(torch.from_numpy(x), **kw)
    c = rand(*cols.shape)
    check(lambda m, c: m.nn.functional.fold(c, (7, 8), **kw), None, c)
    check(lambda m, x: m.nn.Fold((7, 8), **kw)(m.nn.Unfold(**kw)(x)), None, x)
    assert gradcheck(lambda x: EF.fold(EF.unfold(x, **kw) * 2, (7, 8), **kw), x)


def test_fold_double_backward():
    kw = dict(kernel_size=2, stride=1)
    ts = [ember.from_numpy(rand(1, 2, 3, 4)).requires_grad_()]
    assert ember.autograd.gradgradcheck(lambda x: EF.fold(EF.unfold(x, **kw) ** 2, (3, 4), **kw),
                                        ts)


# ---- modules -------------------------------------------------------------------------------

def _copy_state(em, tm):
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})


MODULE_CASES = [
    ("Conv1d", (3, 4, 3), dict(padding=1), (2, 3, 9)),
    ("Conv1d", (4, 6, 3), dict(groups=2, padding="same", dilation=2), (4, 9)),
    ("Conv2d", (3, 6, 3), dict(stride=2, padding=1, bias=False), (2, 3, 8, 9)),
    ("Conv2d", (4, 4, (3, 2)), dict(groups=4, padding="same"), (2, 4, 6, 7)),
    ("Conv3d", (2, 3, 2), dict(stride=(1, 2, 1), padding="valid"), (1, 2, 4, 5, 3)),
    ("ConvTranspose1d", (4, 3, 3), dict(stride=2, output_padding=1), (2, 4, 5)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, groups=2, dilation=2), (2, 4, 4, 5)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=2, bias=False), (1, 2, 3, 2, 3)),
]


@pytest.mark.parametrize("name,args,kw,xs", MODULE_CASES)
def test_module_matches_torch(name, args, kw, xs):
    tm = getattr(torch.nn, name)(*args, **kw).double()
    em = getattr(enn, name)(*args, **kw).double()
    assert list(em.state_dict()) == list(tm.state_dict())
    assert repr(em) == repr(tm)
    _copy_state(em, tm)
    x = rand(*xs)
    xe, xt = to_ember(x, True), to_torch(x, True)
    ye, yt = em(xe), tm(xt)
    assert_close(ye, yt)
    g = rand(*yt.shape, seed=5)
    ye.backward(ember.from_numpy(g.copy()))
    yt.backward(torch.from_numpy(g.copy()))
    assert_close(xe.grad, xt.grad)
    for (n, pe), (_, pt) in zip(em.named_parameters(), tm.named_parameters()):
        assert_close(pe.grad, pt.grad, msg=n)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes(mode, padding):
    tm = torch.nn.Conv2d(3, 4, (3, 4), padding=padding, padding_mode=mode).double()
    em = enn.Conv2d(3, 4, (3, 4), padding=padding, padding_mode=mode).double()
    _copy_state(em, tm)
    assert repr(em) == repr(tm)
    x = rand(2, 3, 6, 7)
    check(em, tm, x, dtypes=("float64",))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv1d_conv3d_padding_modes(mode):
    for cls, xs in (("Conv1d", (2, 3, 7)), ("Conv3d", (1, 3, 4, 5, 4))):
        tm = getattr(torch.nn, cls)(3, 2, 3, padding=1, padding_mode=mode).double()
        em = getattr(enn, cls)(3, 2, 3, padding=1, padding_mode=mode).double()
        _copy_state(em, tm)
        check(em, tm, rand(*xs), dtypes=("float64",))


def test_conv_transpose_output_size():
    tm = torch.nn.ConvTranspose2d(3, 2, 3, stride=3, padding=1).double()
    em = enn.ConvTranspose2d(3, 2, 3, stride=3, padding=1).double()
    _copy_state(em, tm)
    x = rand(1, 3, 4, 4)
    for size in ([10, 12], [1, 2, 11, 10], (12, 11)):
        check(lambda m, x: (em if m is ember else tm)(x, output_size=size), None, x,
              dtypes=("float64",))
    with pytest.raises(ValueError, match=r"requested an output size of \[13, 10\], but valid "
                                         r"sizes range from \[10, 10\] to \[12, 12\]"):
        em(to_ember(x), output_size=[13, 10])
    with pytest.raises(ValueError, match="ConvTranspose2D: for 4D input, output_size must have "
                                         "2 or 4 elements \\(got 3\\)"):
        em(to_ember(x), output_size=[1, 10, 10])


@pytest.mark.parametrize("cls,args", [("Conv1d", (6, 4, 3)), ("Conv2d", (6, 9, (3, 5))),
                                      ("Conv3d", (4, 2, 2)),
                                      ("ConvTranspose2d", (6, 4, 3)),
                                      ("Conv2d", (6, 9, 3, 1, 0, 1, 3))])
def test_default_init_bounds(cls, args):
    em = getattr(enn, cls)(*args)
    tm = getattr(torch.nn, cls)(*args)
    assert em.weight.shape == tm.weight.shape and em.bias.shape == tm.bias.shape
    fan_in = tm.weight.shape[1] * math.prod(tm.weight.shape[2:])
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
    w, b = em.weight.detach().numpy(), em.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # uniform, not a narrower law: the extremes come near the bound
    assert np.abs(w).max() > 0.8 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.35)
    assert em.weight.dtype == ember.float32


def test_lazy_conv():
    em = enn.LazyConv2d(4, 3, padding=1)
    assert em.weight.__class__.__name__ == "UninitializedParameter"
    y = em(ember.randn(2, 3, 5, 5))
    assert type(em) is enn.Conv2d and em.in_channels == 3
    assert tuple(em.weight.shape) == (4, 3, 3, 3) and tuple(y.shape) == (2, 4, 5, 5)
    et = enn.LazyConvTranspose1d(6, 3, groups=2, stride=2)
    y = et(ember.randn(4, 5))
    assert type(et) is enn.ConvTranspose1d and tuple(et.weight.shape) == (4, 3, 3)
    assert tuple(y.shape) == (6, 11)


# ---- bad input -----------------------------------------------------------------------------

def _both(fn, exc, match):
    """``fn(m)`` raises ``exc`` matching ``match`` in ember and the same type in torch."""
    with pytest.raises(exc):
        fn(torch)
    with pytest.raises(exc, match=match):
        fn(ember)


def _t(m, *shape, dtype=None):
    return m.zeros(*shape, dtype=dtype or m.float32)


@pytest.mark.parametrize("fn,exc,match", [
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 4, 8, 8), _t(m, 6, 3, 3, 3)), RuntimeError,
     r"Given groups=1, weight of size \[6, 3, 3, 3\], expected input\[1, 4, 8, 8\] to have 3 "
     r"channels, but got 4 channels instead"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 4, 5, 5), _t(m, 4, 3, 3, 3), groups=2),
     RuntimeError, r"Given groups=2, weight of size \[4, 3, 3, 3\], expected input\[1, 4, 5, 5\] "
                   r"to have 6 channels, but got 4 channels instead"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 2, 2), _t(m, 6, 3, 3, 3)), RuntimeError,
     r"Calculated padded input size per channel: \(2 x 2\). Kernel size: \(3 x 3\). Kernel size "
     r"can't be greater than actual input size"),
    (lambda m: m.nn.functional.conv1d(_t(m, 1, 3, 5), _t(m, 6, 3, 3), dilation=3), RuntimeError,
     r"padded input size per channel: \(5\). Kernel size: \(7\)"),
    (lambda m: m.nn.functional.conv2d(_t(m, 3, 5), _t(m, 6, 3, 3, 3)), RuntimeError,
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: "
     r"\[3, 5\]"),
    (lambda m: m.nn.functional.conv3d(_t(m, 1, 1, 2, 3, 5, 5), _t(m, 6, 3, 3, 3, 3)),
     RuntimeError, r"Expected 4D \(unbatched\) or 5D \(batched\) input to conv3d"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 3, 3, 3, 3), groups=2),
     RuntimeError, r"Given groups=2, expected weight to be divisible by 2 at dimension 0"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), stride=2,
                                      padding="same"),
     RuntimeError, r"padding='same' is not supported for strided convolutions"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), padding="foo"),
     RuntimeError, r"Invalid padding string: 'foo'"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), stride=0),
     RuntimeError, r"non-positive stride is not supported"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), padding=-1),
     RuntimeError, r"negative padding is not supported"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), dilation=0),
     RuntimeError, r"dilation should be greater than zero, but got \[0, 0\]"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), stride=(1, 1, 1)),
     RuntimeError, r"expected stride to be a single integer value or a list of 2 values to match "
                   r"the convolution dimensions, but got stride=\[1, 1, 1\]"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3), _t(m, 5)),
     RuntimeError, r"Given weight of size \[6, 3, 3, 3\], expected bias to be 1-dimensional "
                   r"with 6 elements, but got bias of size \[5\] instead"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5, dtype=m.float64), _t(m, 6, 3, 3, 3)),
     RuntimeError, r"expected scalar type Double but found Float"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3),
                                      _t(m, 6, dtype=m.float64)),
     RuntimeError, r"Input type \(float\) and bias type \(double\) should be the same"),
    (lambda m: m.nn.functional.conv1d(_t(m, 1, 3, 5, dtype=m.bool), _t(m, 2, 3, 3, dtype=m.bool)),
     NotImplementedError, r"\"slow_conv2d_cpu\" not implemented for 'Bool'"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 6, 5, 5), _t(m, 4, 3, 3, 3), groups=2, stride=2,
                                      padding="same"),
     RuntimeError, r"padding='same' is not supported for strided convolutions"),
    (lambda m: m.nn.functional.conv2d(_t(m, 1, 3, 5, 5).numpy(), _t(m, 6, 3, 3, 3)),
     TypeError, r"conv2d\(\): argument 'input' \(position 1\) must be Tensor, not ndarray"),
    (lambda m: m.nn.functional.conv_transpose2d(_t(m, 1, 3, 5, 5), _t(m, 6, 3, 3, 3)),
     RuntimeError, r"Given transposed=1, weight of size \[6, 3, 3, 3\], expected input"
                   r"\[1, 3, 5, 5\] to have 6 channels, but got 3 channels instead"),
    (lambda m: m.nn.functional.conv_transpose2d(_t(m, 1, 6, 5, 5), _t(m, 6, 3, 3, 3),
                                                output_padding=1),
     RuntimeError, r"output padding must be smaller than either stride or dilation, but got "
                   r"output_padding_height: 1 output_padding_width: 1 stride_height: 1"),
    (lambda m: m.nn.functional.conv_transpose2d(_t(m, 1, 6, 1, 1), _t(m, 6, 3, 3, 3), padding=2),
     RuntimeError, r"Given input size per channel: \(1 x 1\). Calculated output size per "
                   r"channel: \(-1 x -1\). Output size is too small"),
    (lambda m: m.nn.functional.conv_transpose2d(_t(m, 1, 6, 5, 5), _t(m, 6, 3, 3, 3),
                                                padding="same"),
     TypeError, r"conv_transpose2d\(\): argument 'padding' must be tuple of ints, not str"),
    (lambda m: m.nn.functional.unfold(_t(m, 1, 2, 3, 3), 4), RuntimeError,
     r"Given input with spatial size \(3, 3\), kernel_size=\(4, 4\), dilation=\(1, 1\), "
     r"padding=\(0, 0\), calculated shape of the array of sliding blocks as \(0, 0\)"),
    (lambda m: m.nn.functional.unfold(_t(m, 2, 3), 2), IndexError, r"Dimension out of range"),
    (lambda m: m.nn.functional.fold(_t(m, 1, 12, 4), (4, 4), 2), RuntimeError,
     r"expected size of input's dimension 2 to match the calculated number of sliding blocks "
     r"3 \* 3 = 9, but got input.size\(2\)=4"),
    (lambda m: m.nn.functional.fold(_t(m, 1, 13, 4), (4, 4), 2, stride=2), RuntimeError,
     r"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but "
     r"got input.size\(1\)=13 and kernel_size=\(2, 2\)"),
    (lambda m: m.nn.Conv2d(3, 4, 3, groups=2), ValueError, r"in_channels must be divisible by "
                                                           r"groups"),
    (lambda m: m.nn.Conv2d(4, 3, 3, groups=2), ValueError, r"out_channels must be divisible by "
                                                           r"groups"),
    (lambda m: m.nn.Conv2d(4, 4, 3, groups=0), ValueError, r"groups must be a positive integer"),
    (lambda m: m.nn.Conv2d(4, 4, 3, stride=2, padding="same"), ValueError,
     r"padding='same' is not supported for strided convolutions"),
    (lambda m: m.nn.Conv2d(4, 4, 3, padding="foo"), ValueError,
     r"Invalid padding string 'foo', should be one of \{'valid', 'same'\}"),
    (lambda m: m.nn.Conv1d(4, 4, 3, padding_mode="foo"), ValueError,
     r"padding_mode must be one of .*'reflect'.*, but got padding_mode='foo'"),
    (lambda m: m.nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), ValueError,
     r"Only \"zeros\" padding mode is supported for ConvTranspose2d"),
    (lambda m: m.nn.Conv2d(3, 4, 3)(_t(m, 1, 4, 8, 8)), RuntimeError,
     r"expected input\[1, 4, 8, 8\] to have 3 channels, but got 4 channels instead"),
])
def test_bad_input(fn, exc, match):
    _both(fn, exc, match)


# ---- bench workloads compute torch's numbers -----------------------------------------------

def _one_blas_thread():
    """One BLAS thread, as torch runs here (conftest) and as the bench pins both sides: on a
    loaded machine a multi-threaded BLAS spends most of these mid-sized GEMMs waiting."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


@pytest.mark.parametrize("name", ["lenet_step", "resnet_block", "conv_gflops"])
def test_bench_workload_matches_torch(name):
    sys.path.insert(0, str(ROOT))
    from bench import workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY, _as_array
    outs = {}
    with _one_blas_thread():
        for mod in (ember, torch):
            step, convert = REGISTRY[name].fn(mod)
            # two steps: the second starts from the first one's update (lenet) or zeroed
            # gradients (the others)
            outs[mod] = [_as_array(step()) for _ in range(2)]
            assert convert(1.0) > 0
    for e, t in zip(outs[ember], outs[torch]):
        assert e.shape == t.shape
        # lenet: [loss, parameters after the Adam step]; each parameter moves by ~lr = 1e-3,
        # well above this tolerance (the loss, ~2.3, is the largest value), so a missing or
        # wrong update fails.  Adam's g / (|g| + eps) lets a float32 gradient near eps move its
        # element by a different fraction of lr: one of LeNet's 61,707 values does, by 4e-5.
        tol = dict(rtol=1e-4, atol=1e-4 * np.abs(t).max())
        if name == "resnet_block":
            # a pre-activation within float32 rounding of 0 (|x| ~ 1e-6, Winograd's error;
            # 2 of the block's 2M first-ReLU inputs) can take the other side of the ReLU;
            # batch norm's backward spreads that one element over its channel, so the few
            # values it reaches are checked loosely and every other value tightly
            far = ~np.isclose(e, t, **tol)
            assert far.mean() < 1e-3, far.mean()
            np.testing.assert_allclose(e, t, rtol=0, atol=2e-2 * np.abs(t).max())
            continue
        np.testing.assert_allclose(e, t, **tol)
    if name == "lenet_step":
        first, second = outs[ember]
        moved = np.abs(second[1:] - first[1:])
        assert np.median(moved) > 5e-4 > 1e-4 * np.abs(first).max() * 2
