"""ember.vision.ops against the documented formulas written in torch (torchvision itself
cannot be installed beside torch 2.13): box maths, a plain greedy NMS, RoIAlign through
grid_sample, RoIPool through per-bin maxima, the focal loss, and the building-block layers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from ember.vision import ops

FLOATS = [np.float64, np.float32]


def E(a, grad=False):
    return ember.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def Tt(a, grad=False):
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def close(e, t, dtype=np.float64):
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    e, t = e.detach().numpy(), t.detach().numpy()
    assert e.shape == t.shape and e.dtype == t.dtype, (e.shape, t.shape, e.dtype, t.dtype)
    np.testing.assert_allclose(e, t, **tol)


def rand_boxes(n, seed, dtype=np.float64, size=20.0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(0.5, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(dtype)


# ---- box maths: torch references written from the documented formulas, pair by pair ----

def t_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def t_pairwise(b1, b2, kind, eps=1e-7):
    rows = []
    for i in range(len(b1)):
        row = []
        for j in range(len(b2)):
            a, b = b1[i], b2[j]
            iw = (torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0])).clamp(min=0)
            ih = (torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1])).clamp(min=0)
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            iou = inter / union
            cw = torch.maximum(a[2], b[2]) - torch.minimum(a[0], b[0])
            ch = torch.maximum(a[3], b[3]) - torch.minimum(a[1], b[1])
            if kind == "iou":
                v = iou
            elif kind == "giou":
                v = iou - (cw * ch - union) / (cw * ch)
            else:
                d2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + \
                     ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
                v = iou - d2 / (cw ** 2 + ch ** 2 + eps)
                if kind == "ciou":
                    at = torch.atan((b[2] - b[0]) / (b[3] - b[1])) - \
                        torch.atan((a[2] - a[0]) / (a[3] - a[1]))
                    cv = 4 / math.pi ** 2 * at ** 2
                    with torch.no_grad():
                        alpha = cv / (1 - iou + cv + eps)
                    v = v - alpha * cv
            row.append(v)
        rows.append(torch.stack(row))
    return torch.stack(rows)


PAIRWISE = [("iou", ops.box_iou), ("giou", ops.generalized_box_iou),
            ("diou", ops.distance_box_iou), ("ciou", ops.complete_box_iou)]


@pytest.mark.parametrize("kind,fn", PAIRWISE)
@pytest.mark.parametrize("dtype", FLOATS)
def test_pairwise_box_metrics_and_gradients(kind, fn, dtype):
    b1, b2 = rand_boxes(4, 1, dtype), rand_boxes(3, 2, dtype)
    b2[0] = b1[0]  # an identical pair: IoU 1
    e1, e2, t1, t2 = E(b1, True), E(b2, True), Tt(b1, True), Tt(b2, True)
    out_e, out_t = fn(e1, e2), t_pairwise(t1, t2, kind)
    close(out_e, out_t, dtype)
    g = np.random.default_rng(3).standard_normal(out_t.shape).astype(dtype)
    out_e.backward(E(g))
    out_t.backward(Tt(g))
    close(e1.grad, t1.grad, dtype)
    close(e2.grad, t2.grad, dtype)


def test_box_area_and_integer_boxes():
    b = rand_boxes(5, 4)
    close(ops.box_area(E(b)), t_area(Tt(b)))
    ib = np.array([[0, 0, 4, 4], [2, 2, 6, 6]], dtype=np.int64)
    out = ops.box_iou(E(ib), E(ib))
    assert out.dtype == ember.float32
    np.testing.assert_allclose(out.numpy(), [[1, 4 / 28], [4 / 28, 1]], rtol=1e-6)
    assert ops.box_area(E(ib.astype(np.int16))).dtype == ember.int32  # upcast: no overflow


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh", "xyxy"])
def test_box_convert_round_trip_and_formulas(fmt):
    b = rand_boxes(6, 5)
    x1, y1, x2, y2 = b.T
    expect = {"xyxy": b, "xywh": np.stack([x1, y1, x2 - x1, y2 - y1], 1),
              "cxcywh": np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)}[fmt]
    out = ops.box_convert(E(b), "xyxy", fmt)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-12)
    np.testing.assert_allclose(ops.box_convert(out, fmt, "xyxy").numpy(), b, rtol=1e-12)
    for other in ("xywh", "cxcywh"):
        np.testing.assert_allclose(ops.box_convert(ops.box_convert(out, fmt, other), other,
                                                   fmt).numpy(), expect, rtol=1e-12)


def test_box_convert_bad_format_and_copy():
    b = E(rand_boxes(2, 6))
    with pytest.raises(ValueError, match="Unsupported Bounding Box Conversions"):
        ops.box_convert(b, "xyxy", "yxyx")
    c = ops.box_convert(b, "xyxy", "xyxy")
    c[0, 0] = -5.0
    assert b[0, 0].item() != -5.0


def test_clip_and_remove_small():
    b = np.array([[-3.0, -1, 5, 30], [2, 3, 40, 4], [1, 1, 1.2, 9]])
    out = ops.clip_boxes_to_image(E(b), (10, 20))
    expect = b.copy()
    expect[:, 0::2] = expect[:, 0::2].clip(0, 20)
    expect[:, 1::2] = expect[:, 1::2].clip(0, 10)
    np.testing.assert_array_equal(out.numpy(), expect)
    keep = ops.remove_small_boxes(E(b), 1.0)
    assert keep.dtype == ember.int64 and keep.tolist() == [0, 1]
    bb = E(np.stack([b, b]))  # batched boxes (..., 4)
    assert ops.clip_boxes_to_image(bb, (10, 20)).shape == (2, 3, 4)


def test_masks_to_boxes():
    m = np.zeros((2, 6, 7), dtype=bool)
    m[0, 1:4, 2:6] = True
    m[1, 5, 0] = True
    out = ops.masks_to_boxes(E(m))
    np.testing.assert_array_equal(out.numpy(), [[2, 1, 5, 3], [0, 5, 0, 5]])


# ---- NMS: the plain greedy algorithm, written in the test ----

def ref_nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        b = torch.from_numpy(boxes)
        if all(t_pairwise(b[i:i + 1], b[k:k + 1], "iou").item() <= thr for k in keep):
            keep.append(i)
    return keep


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 25), seed=st.integers(0, 10_000),
       thr=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0]))
def test_nms_matches_greedy_reference(n, seed, thr):
    boxes = rand_boxes(n, seed, size=10.0)
    scores = np.random.default_rng(seed + 1).permutation(n).astype(np.float64) / max(n, 1)
    keep = ops.nms(E(boxes), E(scores), thr)
    assert keep.dtype == ember.int64 and keep.dim() == 1
    assert keep.tolist() == ref_nms(boxes, scores, thr)


def test_batched_nms_per_category():
    boxes = rand_boxes(30, 7, size=8.0)
    rng = np.random.default_rng(8)
    scores = rng.permutation(30).astype(np.float64)
    idxs = rng.integers(0, 3, 30)
    keep = ops.batched_nms(E(boxes), E(scores), E(idxs), 0.4).tolist()
    expect = []
    for c in range(3):
        members = np.nonzero(idxs == c)[0]
        expect += [members[k] for k in ref_nms(boxes[members], scores[members], 0.4)]
    expect.sort(key=lambda i: -scores[i])
    assert keep == expect
    empty = ops.batched_nms(E(np.zeros((0, 4))), E(np.zeros(0)), E(np.zeros(0, np.int64)), 0.5)
    assert empty.shape == (0,) and empty.dtype == ember.int64


@pytest.mark.parametrize("boxes,scores,msg", [
    (np.zeros((3, 4, 1)), np.zeros(3), "boxes should be a 2d tensor, got 3D"),
    (np.zeros((3, 5)), np.zeros(3), "boxes should have 4 elements in dimension 1, got 5"),
    (np.zeros((3, 4)), np.zeros((3, 1)), "scores should be a 1d tensor, got 2D"),
    (np.zeros((3, 4)), np.zeros(2), "same number of elements in dimension 0, got 3 and 2"),
])
def test_nms_bad_inputs(boxes, scores, msg):
    with pytest.raises(RuntimeError, match=msg):
        ops.nms(E(boxes), E(scores), 0.5)


# ---- RoIAlign: torch grid_sample at the documented sampling points ----

def ref_roi_align(x, rois, out_hw, scale, ratio, aligned):
    """Average of bilinear samples, each bin a grid of points; a point outside [-1, size] is
    zero and one in [-1, 0] or [size-1, size] reads the edge: grid_sample with border padding
    and align_corners=True, masked."""
    ph, pw = out_hw
    n, c, h, w = x.shape
    outs = []
    for r in rois:
        off = 0.5 if aligned else 0.0
        x1, y1, x2, y2 = (float(v) * scale - off for v in r[1:])
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else math.ceil(rh / ph)
        gw = ratio if ratio > 0 else math.ceil(rw / pw)
        ys = torch.tensor([y1 + i * rh / ph + (k + 0.5) * rh / ph / gh
                           for i in range(ph) for k in range(gh)], dtype=x.dtype)
        xs = torch.tensor([x1 + j * rw / pw + (k + 0.5) * rw / pw / gw
                           for j in range(pw) for k in range(gw)], dtype=x.dtype)
        mask = ((ys >= -1) & (ys <= h))[:, None] & ((xs >= -1) & (xs <= w))[None, :]
        gy, gx = torch.meshgrid(ys.clamp(min=0) / (h - 1) * 2 - 1,
                                xs.clamp(min=0) / (w - 1) * 2 - 1, indexing="ij")
        grid = torch.stack([gx, gy], -1)[None]
        s = TF.grid_sample(x[int(r[0])][None], grid, mode="bilinear", padding_mode="border",
                           align_corners=True)[0] * mask
        outs.append(s.reshape(c, ph, gh, pw, gw).mean((2, 4)) if gh * gw else
                    s.new_zeros(c, ph, pw))
    return torch.stack(outs)


ROI_ALIGN_CASES = [  # (output size, spatial scale, sampling ratio, aligned)
    ((3, 3), 1.0, 2, False), ((2, 4), 0.5, 3, True), ((4, 4), 1.0, -1, False),
    ((3, 2), 0.25, -1, True), ((5, 5), 1.0, 1, True),
]


@pytest.mark.parametrize("out_hw,scale,ratio,aligned", ROI_ALIGN_CASES)
@pytest.mark.parametrize("dtype", FLOATS)
def test_roi_align_matches_grid_sample_reference(out_hw, scale, ratio, aligned, dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    boxes = rand_boxes(5, 12, size=10.0 / scale)
    boxes[0] = [-3.0, -2.0, 4.0, 5.0]            # partly outside the image
    boxes[1] = [9.0 / scale, 7.0 / scale, 14.0 / scale, 12.0 / scale]  # past the far edges
    boxes[2] = [2.0, 2.0, 2.2, 2.1]              # smaller than a pixel
    rois = np.concatenate([rng.integers(0, 2, (5, 1)), boxes], 1).astype(dtype)
    xe, xt = E(x, True), Tt(x, True)
    out_e = ops.roi_align(xe, E(rois), out_hw, scale, ratio, aligned)
    out_t = ref_roi_align(xt, rois, out_hw, scale, ratio, aligned)
    close(out_e, out_t, dtype)
    g = rng.standard_normal(out_t.shape).astype(dtype)
    out_e.backward(E(g))
    out_t.backward(Tt(g))
    close(xe.grad, xt.grad, dtype)


def test_roi_align_list_of_boxes_and_module():
    rng = np.random.default_rng(13)
    x = E(rng.standard_normal((2, 2, 8, 8)))
    b0, b1 = rand_boxes(2, 1, size=6.0), rand_boxes(3, 2, size=6.0)
    rois = np.concatenate([np.r_[0, 0, 1, 1, 1][:, None], np.concatenate([b0, b1])], 1)
    expect = ops.roi_align(x, E(rois), 2, 1.0, 2)
    got = ops.roi_align(x, [E(b0), E(b1)], 2, 1.0, 2)
    np.testing.assert_allclose(got.numpy(), expect.numpy())
    m = ops.RoIAlign((2, 2), 1.0, 2)
    np.testing.assert_allclose(m(x, E(rois)).numpy(), expect.numpy())
    assert repr(m) == "RoIAlign(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, " \
                      "aligned=False)"
    assert ops.roi_align(x, E(np.zeros((0, 5))), 3).shape == (0, 2, 3, 3)


def test_roi_ops_bad_boxes():
    x = E(np.zeros((1, 1, 4, 4)))
    with pytest.raises(AssertionError, match=r"Tensor\[K, 5\]"):
        ops.roi_align(x, E(np.zeros((2, 4))), 2)
    with pytest.raises(AssertionError, match=r"List\[Tensor\[L, 4\]\]"):
        ops.roi_pool(x, [E(np.zeros((2, 5)))], 2)
    with pytest.raises(AssertionError, match="boxes is expected"):
        ops.roi_align(x, np.zeros((2, 5)), 2)
    with pytest.raises(RuntimeError, match="same type"):
        ops.roi_align(x, E(np.zeros((2, 5), np.float32)), 2)


# ---- RoIPool: per-bin maxima of the rounded region ----

def ref_roi_pool(x, rois, out_hw, scale):
    ph, pw = out_hw
    h, w = x.shape[2:]
    rnd = lambda v: int(math.copysign(math.floor(abs(v) + 0.5), v))  # noqa: E731
    outs = []
    for r in rois:
        x1, y1, x2, y2 = (rnd(float(v) * scale) for v in r[1:])
        bh, bw = max(y2 - y1 + 1, 1) / ph, max(x2 - x1 + 1, 1) / pw
        cells = []
        for i in range(ph):
            hs = min(max(math.floor(i * bh) + y1, 0), h)
            he = min(max(math.ceil((i + 1) * bh) + y1, 0), h)
            for j in range(pw):
                ws = min(max(math.floor(j * bw) + x1, 0), w)
                we = min(max(math.ceil((j + 1) * bw) + x1, 0), w)
                if he <= hs or we <= ws:
                    cells.append(x.new_zeros(x.shape[1]))
                else:
                    cells.append(x[int(r[0]), :, hs:he, ws:we].amax((1, 2)))
        outs.append(torch.stack(cells, 1).reshape(-1, ph, pw))
    return torch.stack(outs)


@pytest.mark.parametrize("out_hw,scale", [((2, 2), 1.0), ((3, 4), 0.5), ((1, 1), 1.0)])
@pytest.mark.parametrize("dtype", FLOATS)
def test_roi_pool_matches_reference(out_hw, scale, dtype):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 10, 9)).astype(dtype)
    boxes = rand_boxes(4, 22, size=9.0 / scale)
    boxes[0] = [-4.0, -4.0, -2.5, -3.0]  # wholly outside: empty bins give 0
    rois = np.concatenate([rng.integers(0, 2, (4, 1)), boxes], 1).astype(dtype)
    xe, xt = E(x, True), Tt(x, True)
    out_e = ops.roi_pool(xe, E(rois), out_hw, scale)
    out_t = ref_roi_pool(xt, rois, out_hw, scale)
    close(out_e, out_t, dtype)
    g = rng.standard_normal(out_t.shape).astype(dtype)
    out_e.backward(E(g))
    out_t.backward(Tt(g))
    close(xe.grad, xt.grad, dtype)
    assert repr(ops.RoIPool(out_hw, scale)) == f"RoIPool(output_size={out_hw}, " \
                                               f"spatial_scale={scale})"


# ---- losses and stochastic depth ----

@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1, 2), (0.5, 0), (0.75, 1.5)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_focal_loss(alpha, gamma, reduction, dtype):
    rng = np.random.default_rng(31)
    x = rng.standard_normal((4, 5)).astype(dtype) * 3
    t = (rng.random((4, 5)) > 0.6).astype(dtype)
    xe, xt = E(x, True), Tt(x, True)
    out_e = ops.sigmoid_focal_loss(xe, E(t), alpha, gamma, reduction)
    p = xt.sigmoid()
    tt = Tt(t)
    ce = TF.binary_cross_entropy_with_logits(xt, tt, reduction="none")
    p_t = p * tt + (1 - p) * (1 - tt)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * tt + (1 - alpha) * (1 - tt)) * loss
    out_t = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    close(out_e, out_t, dtype)
    out_e.sum().backward()
    out_t.sum().backward()
    close(xe.grad, xt.grad, dtype)


def test_sigmoid_focal_loss_bad_reduction():
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        ops.sigmoid_focal_loss(E(np.zeros(3)), E(np.zeros(3)), reduction="avg")


def test_stochastic_depth():
    x = E(np.ones((64, 3, 2)), True)
    ember.manual_seed(0)
    assert ops.stochastic_depth(x, 0.5, "row", training=False) is x
    assert ops.stochastic_depth(x, 0.0, "batch") is x
    y = ops.stochastic_depth(x, 0.25, "row").detach().numpy()
    per_row = y.reshape(64, -1)
    assert set(np.unique(per_row)) <= {0.0, 1 / 0.75}
    assert all(len(set(r)) == 1 for r in per_row)  # whole samples are dropped
    assert 0 < (per_row[:, 0] == 0).sum() < 64
    b = ops.stochastic_depth(x, 0.5, "batch").detach().numpy()
    assert len(np.unique(b)) == 1 and np.unique(b)[0] in (0.0, 2.0)
    np.testing.assert_array_equal(ops.stochastic_depth(x, 1.0, "row").detach().numpy(), 0)
    m = ops.StochasticDepth(0.2, "row")
    assert repr(m) == "StochasticDepth(p=0.2, mode=row)"
    assert m.eval()(x) is x
    with pytest.raises(ValueError, match="drop probability has to be between 0 and 1, but got"):
        ops.stochastic_depth(x, 1.5, "row")
    with pytest.raises(ValueError, match="mode has to be either 'batch' or 'row', but got col"):
        ops.stochastic_depth(x, 0.5, "col")


# ---- building blocks: layouts and numerics against torch.nn with the same weights ----

def copy_to_torch(src, dst):
    dst.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                         for k, v in src.state_dict().items()})


def test_conv2d_norm_activation():
    m = ops.Conv2dNormActivation(3, 8, kernel_size=3, stride=2)
    assert list(m.state_dict()) == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                                    "1.running_var", "1.num_batches_tracked"]
    assert m[0].padding == (1, 1) and m[0].bias is None and m.out_channels == 8
    assert m[2].inplace
    m2 = ops.Conv2dNormActivation(4, 4, 5, dilation=2, norm_layer=None,
                                  activation_layer=ember.nn.SiLU, groups=2)
    assert m2[0].padding == (4, 4) and m2[0].bias is not None and len(m2) == 2
    m3 = ops.Conv2dNormActivation(4, 4, (3, 5), activation_layer=None)
    assert m3[0].padding == (1, 2) and len(m3) == 2
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False),
                              torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    copy_to_torch(m, ref)
    x = np.random.default_rng(41).standard_normal((2, 3, 9, 9)).astype(np.float32)
    close(m(E(x)), ref(Tt(x)), np.float32)
    m.eval()
    ref.eval()
    close(m(E(x)), ref(Tt(x)), np.float32)


def test_squeeze_excitation_and_mlp():
    se = ops.SqueezeExcitation(6, 2)
    assert list(se.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    x = np.random.default_rng(42).standard_normal((2, 6, 5, 5))
    w = {k: torch.from_numpy(v.numpy().astype(np.float64)) for k, v in se.state_dict().items()}
    xt = Tt(x)
    s = TF.conv2d(TF.relu(TF.conv2d(xt.mean((2, 3), keepdim=True), w["fc1.weight"],
                                    w["fc1.bias"])), w["fc2.weight"], w["fc2.bias"]).sigmoid()
    close(se.double()(E(x)), s * xt)
    mlp = ops.MLP(5, [7, 9, 3], norm_layer=ember.nn.LayerNorm, dropout=0.1)
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "LayerNorm", "ReLU", "Dropout", "Linear", "LayerNorm", "ReLU",
                     "Dropout", "Linear", "Dropout"]
    assert mlp(E(np.zeros((4, 5), np.float32))).shape == (4, 3)


def test_frozen_batch_norm():
    bn = torch.nn.BatchNorm2d(4)
    rng = np.random.default_rng(43)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean"):
            getattr(bn, name).copy_(torch.from_numpy(rng.standard_normal(4)))
        bn.running_var.copy_(torch.from_numpy(rng.random(4) + 0.5))
    bn.eval()
    f = ops.FrozenBatchNorm2d(4)
    # a BatchNorm2d's state dict (with num_batches_tracked) loads strictly
    f.load_state_dict({k: ember.from_numpy(v.numpy().copy()) for k, v in bn.state_dict().items()})
    assert list(f.parameters()) == [] and repr(f) == "FrozenBatchNorm2d(4, eps=1e-05)"
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    close(f(E(x)), bn(Tt(x)), np.float32)
