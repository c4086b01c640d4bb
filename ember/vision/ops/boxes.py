"""Box maths and non-maximum suppression (``torchvision.ops.boxes``); boxes are (x1, y1, x2, y2)
unless a format is named."""
from __future__ import annotations

import math

import ember
from ember import _backend
from ember._tensor import Tensor, _make

__all__ = ["nms", "batched_nms", "remove_small_boxes", "clip_boxes_to_image", "box_convert",
           "box_area", "box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou",
           "masks_to_boxes"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: Tensor) -> Tensor:
    """Half floats to float32, small integers to int32, so products cannot overflow."""
    if t.is_floating_point():
        return t if t.dtype in (ember.float32, ember.float64) else t.float()
    return t if t.dtype in (ember.int32, ember.int64) else t.int()


def _nms_keep(xp, boxes, scores, iou_threshold: float):
    """Greedy NMS on arrays: indices kept, by decreasing score (torchvision's cpu kernel)."""
    order = xp.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = xp.zeros(boxes.shape[0], dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        w = xp.maximum(xp.minimum(x2[i], x2[rest]) - xp.maximum(x1[i], x1[rest]), 0)
        h = xp.maximum(xp.minimum(y2[i], y2[rest]) - xp.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        # a box overlapping by more than the threshold is dropped, as the kernel's "ovr > thr";
        # two empty boxes give 0/0 = nan, which suppresses nothing, as in the kernel
        with xp.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return xp.asarray(keep, dtype=xp.int64)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes kept by greedy non-maximum suppression, by decreasing score:
    a box is dropped when its IoU with a kept higher-scoring box is > ``iou_threshold``."""
    if boxes.dim() != 2:
        raise RuntimeError(f"boxes should be a 2d tensor, got {boxes.dim()}D")
    if boxes.shape[1] != 4:
        raise RuntimeError(f"boxes should have 4 elements in dimension 1, got {boxes.shape[1]}")
    if scores.dim() != 1:
        raise RuntimeError(f"scores should be a 1d tensor, got {scores.dim()}D")
    if boxes.shape[0] != scores.shape[0]:
        raise RuntimeError("boxes and scores should have same number of elements in dimension "
                           f"0, got {boxes.shape[0]} and {scores.shape[0]}")
    if boxes.dtype != scores.dtype:
        raise RuntimeError(f"boxes and scores should have the same type, got "
                           f"{boxes.dtype} and {scores.dtype}")
    xp = _backend.xp_of(boxes._data)
    return _make(_nms_keep(xp, boxes._data, scores._data, float(iou_threshold)))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """``nms`` run separately for each category in ``idxs``; the kept indices of all categories,
    by decreasing score."""
    xp = _backend.xp_of(boxes._data)
    if boxes.numel() == 0:
        return _make(xp.empty((0,), dtype=xp.int64))
    b, s, c = boxes._data, scores._data, idxs._data
    keep_mask = xp.zeros(s.shape[0], dtype=bool)
    for cls in xp.unique(c):
        members = xp.nonzero(c == cls)[0]
        keep_mask[members[_nms_keep(xp, b[members], s[members], float(iou_threshold))]] = True
    kept = xp.nonzero(keep_mask)[0]
    return _make(kept[xp.argsort(-s[kept], kind="stable")].astype(xp.int64))


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both >= ``min_size``."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return ember.where((ws >= min_size) & (hs >= min_size))[0]


def clip_boxes_to_image(boxes: Tensor, size) -> Tensor:
    """Boxes (..., 4) clamped to the image: x into [0, width], y into [0, height]."""
    height, width = size
    xs = boxes[..., 0::2].clamp(min=0, max=width)
    ys = boxes[..., 1::2].clamp(min=0, max=height)
    return ember.stack((xs, ys), dim=boxes.dim()).reshape(boxes.shape)


def _to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return ember.stack([a, b, a + c, b + d], dim=-1)
    if fmt == "cxcywh":
        return ember.stack([a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d], dim=-1)
    return boxes


def _from_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return ember.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    if fmt == "cxcywh":
        return ember.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return boxes


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Boxes converted between 'xyxy' (corners), 'xywh' (corner and size) and 'cxcywh' (centre
    and size)."""
    if in_fmt not in _FORMATS or out_fmt not in _FORMATS:
        raise ValueError("Unsupported Bounding Box Conversions for given in_fmt and out_fmt")
    if in_fmt == out_fmt:
        return boxes.clone()
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)


def box_area(boxes: Tensor) -> Tensor:
    """``(x2 - x1) * (y2 - y1)`` of each box."""
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_inter_union(boxes1: Tensor, boxes2: Tensor):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = ember.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = ember.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter, area1[:, None] + area2 - inter


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(N, M) intersection over union of every pair: ``|A & B| / |A | B|``."""
    inter, union = _box_inter_union(boxes1, boxes2)
    return inter / union


def _enclosing(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(N, M, 2) width and height of the smallest box enclosing each pair."""
    lti = ember.min(boxes1[:, None, :2], boxes2[:, :2])
    rbi = ember.max(boxes1[:, None, 2:], boxes2[:, 2:])
    return _upcast(rbi - lti).clamp(min=0)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(N, M) generalized IoU: ``IoU - |C \\ (A | B)| / |C|``, C the enclosing box."""
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    whi = _enclosing(boxes1, boxes2)
    areai = whi[:, :, 0] * whi[:, :, 1]
    return iou - (areai - union) / areai


def _box_diou_iou(boxes1: Tensor, boxes2: Tensor, eps: float):
    iou = box_iou(boxes1, boxes2)
    whi = _enclosing(boxes1, boxes2)
    diagonal_sq = whi[:, :, 0] ** 2 + whi[:, :, 1] ** 2 + eps
    x_p, y_p = (boxes1[:, 0] + boxes1[:, 2]) / 2, (boxes1[:, 1] + boxes1[:, 3]) / 2
    x_g, y_g = (boxes2[:, 0] + boxes2[:, 2]) / 2, (boxes2[:, 1] + boxes2[:, 3]) / 2
    centers_sq = (_upcast(x_p[:, None] - x_g[None, :]) ** 2
                  + _upcast(y_p[:, None] - y_g[None, :]) ** 2)
    return iou - centers_sq / diagonal_sq, iou


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """(N, M) distance IoU: ``IoU - d(centres)^2 / diag(C)^2``, C the enclosing box."""
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    return _box_diou_iou(boxes1, boxes2, eps)[0]


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """(N, M) complete IoU: distance IoU ``- alpha * v`` with
    ``v = 4/pi^2 (atan(w_g/h_g) - atan(w/h))^2`` and ``alpha = v / (1 - IoU + v)`` (no grad)."""
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    diou, iou = _box_diou_iou(boxes1, boxes2, eps)
    w_pred = boxes1[:, None, 2] - boxes1[:, None, 0]
    h_pred = boxes1[:, None, 3] - boxes1[:, None, 1]
    w_gt = boxes2[:, 2] - boxes2[:, 0]
    h_gt = boxes2[:, 3] - boxes2[:, 1]
    v = (4 / math.pi ** 2) * (ember.atan(w_gt / h_gt) - ember.atan(w_pred / h_pred)) ** 2
    with ember.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def masks_to_boxes(masks: Tensor) -> Tensor:
    """(N, 4) float boxes (x1, y1, x2, y2) bounding the nonzero pixels of each (H, W) mask."""
    xp = _backend.xp_of(masks._data)
    m = masks._data
    out = xp.zeros((m.shape[0], 4), dtype=xp.float32)
    for i in range(m.shape[0]):
        ys, xs = xp.nonzero(m[i])
        out[i] = (xs.min(), ys.min(), xs.max(), ys.max())
    return _make(out)
