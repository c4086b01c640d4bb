"""Segmentation metrics: mean intersection-over-union and Dice over class-index maps (or
one-hot ``[N, C, ...]`` maps), counted over every pixel of the batch."""
from __future__ import annotations

import numpy as np

from ._checks import to_np, result, safe_divide, check_same_shape
from .classification import _check_int_target, _num

__all__ = ["mean_iou", "dice_score"]


def _pixel_counts(preds, target, num_classes, include_background, input_format):
    c = _num(num_classes, "num_classes")
    p, t = to_np(preds, "preds"), to_np(target, "target")
    check_same_shape(p, t)
    if input_format == "one-hot":
        if p.ndim < 2 or p.shape[1] != c:
            raise ValueError(f"Expected one-hot preds and target of shape [N, {c}, ...], but got "
                             f"{list(p.shape)}.")
        p = np.moveaxis(p, 1, -1).reshape(-1, c).astype(bool)
        t = np.moveaxis(t, 1, -1).reshape(-1, c).astype(bool)
    elif input_format == "index":
        _check_int_target(t, c, None, f"num_classes={c}")
        _check_int_target(p, c, None, f"predictions with num_classes={c}")
        p = np.arange(c) == p.reshape(-1, 1)
        t = np.arange(c) == t.reshape(-1, 1)
    else:
        raise ValueError(f"Expected argument `input_format` to be one of 'one-hot', 'index', "
                         f"but got {input_format!r}.")
    tp, fp, fn = (p & t).sum(0), (p & ~t).sum(0), (~p & t).sum(0)
    if not include_background:
        tp, fp, fn = tp[1:], fp[1:], fn[1:]
    return tp, fp, fn


def _average(score, tp, fp, fn, per_class):
    if per_class:
        return result(score)
    seen = (tp + fp + fn) > 0  # a class in neither map has no score to average
    return result(safe_divide(score[seen].sum(), seen.sum(), float("nan")))


def mean_iou(preds, target, num_classes, include_background=True, per_class=False,
             input_format="index"):
    """``tp / (tp + fp + fn)`` per class over all pixels, averaged over the classes present in
    either map (per class with ``per_class``; NaN when no class is present)."""
    tp, fp, fn = _pixel_counts(preds, target, num_classes, include_background, input_format)
    return _average(safe_divide(tp, tp + fp + fn), tp, fp, fn, per_class)


def dice_score(preds, target, num_classes, include_background=True, per_class=False,
               input_format="index"):
    """``2 tp / (2 tp + fp + fn)`` per class over all pixels, averaged as ``mean_iou``."""
    tp, fp, fn = _pixel_counts(preds, target, num_classes, include_background, input_format)
    return _average(safe_divide(2 * tp, 2 * tp + fp + fn), tp, fp, fn, per_class)
