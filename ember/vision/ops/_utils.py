"""Argument handling shared by the RoI ops (torchvision.ops._utils)."""
from __future__ import annotations

import ember
from ember._tensor import Tensor


def check_roi_boxes_shape(boxes) -> None:
    """Boxes must be a Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4]."""
    if isinstance(boxes, (list, tuple)):
        for t in boxes:
            if not (isinstance(t, Tensor) and t.dim() == 2 and t.shape[1] == 4):
                raise AssertionError("The shape of the tensor in the boxes list is not correct "
                                     "as List[Tensor[L, 4]]")
    elif isinstance(boxes, Tensor):
        if not (boxes.dim() == 2 and boxes.shape[1] == 5):
            raise AssertionError("The boxes tensor shape is not correct as Tensor[K, 5]")
    else:
        raise AssertionError("boxes is expected to be a Tensor[L, 5] or a List[Tensor[K, 4]]")


def convert_boxes_to_roi_format(boxes) -> Tensor:
    """A list of per-image (L, 4) boxes as one (K, 5) tensor whose first column is the image."""
    ids = [ember.full((len(b), 1), i, dtype=b.dtype) for i, b in enumerate(boxes)]
    return ember.cat([ember.cat(ids, dim=0), ember.cat(list(boxes), dim=0)], dim=1)


def pair(v) -> tuple[int, int]:
    """An int or a pair as (h, w)."""
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def rois_of(input: Tensor, boxes) -> Tensor:
    """Checked (K, 5) RoIs in the input's dtype family."""
    check_roi_boxes_shape(boxes)
    rois = boxes if isinstance(boxes, Tensor) else convert_boxes_to_roi_format(boxes)
    if rois.dtype != input.dtype:
        raise RuntimeError(f"Expected tensor for argument #1 'input' to have the same type as "
                           f"tensor for argument #2 'rois'; but type {input.dtype} does not "
                           f"equal {rois.dtype}")
    if input.dim() != 4:
        raise RuntimeError(f"input should be a 4d tensor (N, C, H, W), got {input.dim()}D")
    return rois
