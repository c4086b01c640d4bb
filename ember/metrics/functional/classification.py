"""Classification metrics as functions, modelled on ``torchmetrics.functional``.

Every count-based metric goes through one place: the inputs become boolean ``[M, C]``
predictions and targets (``M`` samples after flattening extra dims and dropping
``ignore_index``; ``C`` classes, labels, or 1 for a binary task), from which per-class true and
false positives and negatives are summed (``stat_scores``).  Scores and averages are then
formulas over those four counts, with torchmetrics' ``zero_division`` for empty denominators
and its rule that ``macro`` skips classes absent from both predictions and targets.
Probability metrics (curves, AUROC, average precision, calibration) work on the scores.
``validate_args`` is accepted for torchmetrics' signatures; inputs are always checked.
"""
from __future__ import annotations

import numpy as np

from ._checks import (to_np, result, safe_divide, check_same_shape, check_probabilities,
                      check_task, check_average)

__all__ = ["stat_scores", "accuracy", "precision", "recall", "fbeta_score", "f1_score",
           "specificity", "confusion_matrix", "matthews_corrcoef", "cohen_kappa", "roc",
           "precision_recall_curve", "auroc", "average_precision", "calibration_error",
           "jaccard_index"]


# ---- input formatting -------------------------------------------------------------------------

def _check_int_target(t: np.ndarray, n: int, ignore_index, what: str) -> None:
    if t.dtype.kind == "f":
        raise ValueError(f"Expected argument `target` to be an integer tensor, but got "
                         f"{t.dtype} with shape {list(t.shape)}.")
    vals = t[t != ignore_index] if ignore_index is not None else t
    if vals.size and (vals.min() < 0 or vals.max() >= n):
        bad = sorted(set(np.unique(vals[(vals < 0) | (vals >= n)]).tolist()))
        raise RuntimeError(f"Detected the following values in `target`: {bad} but expected "
                           f"only values in [0, {n - 1}] ({what}); target has shape "
                           f"{list(t.shape)}.")


def _num(n, name: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"Expected argument `{name}` to be a positive integer, but got {n!r}.")
    return n


def _binary_inputs(preds, target, threshold, ignore_index):
    p, t = to_np(preds, "preds"), to_np(target, "target")
    check_same_shape(p, t)
    _check_int_target(t, 2, ignore_index, "a binary task")
    keep = (t != ignore_index).ravel() if ignore_index is not None else slice(None)
    ids = _sample_ids(t)[keep]
    p, t = p.ravel()[keep], t.ravel()[keep]
    if p.dtype.kind == "f":
        check_probabilities(p)
        p = p > threshold
    else:
        _check_int_target(p, 2, None, "binary predictions")
    return p.astype(bool)[:, None], t.astype(bool)[:, None], ids


def _sample_ids(t: np.ndarray) -> np.ndarray:
    """The sample (index along dim 0) of each element of ``t`` flattened."""
    n = t.shape[0] if t.ndim else 1
    return np.repeat(np.arange(n), t.size // max(n, 1))


def _multiclass_inputs(preds, target, num_classes, top_k, ignore_index):
    c = _num(num_classes, "num_classes")
    p, t = to_np(preds, "preds"), to_np(target, "target")
    if p.ndim == t.ndim + 1:
        if p.dtype.kind != "f":
            raise ValueError(f"Expected `preds` of shape {list(p.shape)} (one more dim than "
                             f"target {list(t.shape)}) to hold float scores, got {p.dtype}.")
        if p.shape[1] != c or p.shape[:1] + p.shape[2:] != t.shape:
            raise ValueError(f"Expected preds of shape [N, {c}, ...] matching target [N, ...], "
                             f"but got preds {list(p.shape)} and target {list(t.shape)}.")
        scores = np.moveaxis(p, 1, -1).reshape(-1, c)
    elif p.ndim == t.ndim:
        check_same_shape(p, t)
        if top_k != 1:
            raise ValueError(f"top_k={top_k} needs float scores of shape [N, C, ...], but got "
                             f"preds of shape {list(p.shape)}.")
        _check_int_target(p, c, None, "multiclass predictions")
        scores = None
    else:
        raise ValueError(f"Expected preds to have the shape of target or one more dim, but got "
                         f"preds {list(p.shape)} and target {list(t.shape)}.")
    if not isinstance(top_k, int) or not 1 <= top_k <= c:
        raise ValueError(f"Expected argument `top_k` to be an integer in [1, {c}], but got "
                         f"{top_k!r}.")
    _check_int_target(t, c, ignore_index, f"num_classes={c}")
    ids = _sample_ids(t)
    t = t.ravel()
    keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
    t, ids = t[keep], ids[keep]
    onehot_t = np.zeros((t.size, c), bool)
    onehot_t[np.arange(t.size), t] = True
    if scores is None:
        pp = p.ravel()[keep]
        onehot_p = np.zeros((pp.size, c), bool)
        onehot_p[np.arange(pp.size), pp] = True
    else:
        scores = scores[keep]
        # the top_k classes by score, first index among ties (as torch.topk / argmax)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        onehot_p = np.zeros(scores.shape, bool)
        np.put_along_axis(onehot_p, top, True, axis=1)
    return onehot_p, onehot_t, ids


def _multilabel_inputs(preds, target, num_labels, threshold, ignore_index):
    n = _num(num_labels, "num_labels")
    p, t = to_np(preds, "preds"), to_np(target, "target")
    check_same_shape(p, t)
    if p.ndim < 2 or p.shape[1] != n:
        raise ValueError(f"Expected preds and target of shape [N, {n}, ...], but got "
                         f"{list(p.shape)}.")
    _check_int_target(t, 2, ignore_index, "a multilabel task")
    if p.dtype.kind == "f":
        check_probabilities(p)
        p = p > threshold
    else:
        _check_int_target(p, 2, None, "multilabel predictions")
    ids = _sample_ids(t[:, 0])
    p = np.moveaxis(p, 1, -1).reshape(-1, n)
    t = np.moveaxis(t, 1, -1).reshape(-1, n)
    if ignore_index is not None:
        # an ignored entry counts as neither right nor wrong: drop it from every count
        ign = t == ignore_index
        return p.astype(bool) & ~ign, (t == 1), ign, ids
    return p.astype(bool), t.astype(bool), None, ids


def _counts(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, top_k=1,
            ignore_index=None, multidim_average="global"):
    """Per-class ``(tp, fp, tn, fn)`` as int64 arrays of length C (1 for binary), or
    ``[N, C]`` per sample with ``multidim_average='samplewise'``."""
    check_task(task)
    if multidim_average not in ("global", "samplewise"):
        raise ValueError(f"Expected argument `multidim_average` to be one of ('global', "
                         f"'samplewise'), but got {multidim_average!r}")
    ign = None
    if task == "binary":
        p, t, ids = _binary_inputs(preds, target, threshold, ignore_index)
    elif task == "multiclass":
        p, t, ids = _multiclass_inputs(preds, target, num_classes, top_k, ignore_index)
    else:
        p, t, ign, ids = _multilabel_inputs(preds, target, num_labels, threshold, ignore_index)
    valid = ~ign if ign is not None else True
    cells = (p & t & valid, p & ~t & valid, ~p & ~t & valid, ~p & t & valid)
    if multidim_average == "global":
        return tuple(x.sum(0).astype(np.int64) for x in cells)
    dims = to_np(target).ndim - (1 if task == "multilabel" else 0)
    if dims < 2:
        raise ValueError(f"Expected input to be at least 2D when multidim_average is set to "
                         f"`samplewise`, but got target of shape {list(to_np(target).shape)}")
    n = to_np(target).shape[0]
    out = []
    for x in cells:
        per = np.zeros((n, x.shape[1]), np.int64)
        np.add.at(per, ids, x.astype(np.int64))
        out.append(per)
    return tuple(out)


def stat_scores(preds, target, task, threshold=0.5, num_classes=None, num_labels=None,
                average="micro", multidim_average="global", top_k=1, ignore_index=None,
                validate_args=True):
    """``[tp, fp, tn, fn, support]`` summed (``micro``) or per class (``none``/``macro``);
    one row per sample with ``multidim_average='samplewise'``."""
    tp, fp, tn, fn = _counts(preds, target, task, threshold, num_classes, num_labels, top_k,
                             ignore_index, multidim_average)
    return result(stats_from_counts(tp, fp, tn, fn, task, average), np.int64)


def stats_from_counts(tp, fp, tn, fn, task, average):
    out = np.stack([tp, fp, tn, fn, tp + fn], -1)
    if average == "micro" or task == "binary":
        out = out.sum(-2)
    return out


def _reduce(score, tp, fp, fn, average, task, top_k=1, zero_division=0.0):
    """Average per-class scores: ``macro`` over classes seen in preds or target, ``weighted`` by
    support (``tp + fn``), ``none`` per class (torchmetrics' weights)."""
    if average in ("none", None) or task == "binary":
        return score if task != "binary" else score[..., 0]
    if average == "weighted":
        w = (tp + fn).astype(np.float64)
    else:
        w = np.ones(score.shape)
        if task == "multiclass":
            w[(tp + fp + fn == 0) if top_k == 1 else (tp + fn == 0)] = 0.0
    return safe_divide((w * score).sum(-1), w.sum(-1), zero_division)


def _score(kind, preds, target, task, threshold, num_classes, num_labels, average, top_k,
           ignore_index, zero_division, beta=1.0, multidim_average="global"):
    check_average(average)
    tp, fp, tn, fn = _counts(preds, target, task, threshold, num_classes, num_labels, top_k,
                             ignore_index, multidim_average)
    return score_from_counts(kind, tp, fp, tn, fn, task, average, top_k, zero_division, beta)


def score_from_counts(kind, tp, fp, tn, fn, task, average, top_k=1, zero_division=0.0,
                      beta=1.0):
    """A count-based score (``accuracy``, ``precision``, ``recall``, ``specificity``,
    ``fbeta``, ``jaccard``) from per-class counts, averaged (the stateful metrics' compute)."""
    zd = zero_division
    if average == "micro" and task != "binary":
        tp, fp, tn, fn = (x.sum(-1, keepdims=True) for x in (tp, fp, tn, fn))
    if kind == "accuracy":
        if task == "multiclass":  # per class: recall; micro: correct / all
            s = safe_divide(tp, tp + fn, zd)
        else:
            s = safe_divide(tp + tn, tp + tn + fp + fn, zd)
    elif kind == "precision":
        s = safe_divide(tp, tp + fp, zd)
    elif kind == "recall":
        s = safe_divide(tp, tp + fn, zd)
    elif kind == "specificity":
        s = safe_divide(tn, tn + fp, zd)
    elif kind == "jaccard":
        s = safe_divide(tp, tp + fp + fn, zd)
    else:
        b2 = beta * beta
        s = safe_divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zd)
    if average == "micro" and task != "binary":
        return result(s[..., 0])
    return result(_reduce(s, tp, fp, fn, average, task, top_k, zd))


def accuracy(preds, target, task, threshold=0.5, num_classes=None, average="micro",
             multidim_average="global", top_k=1, num_labels=None, ignore_index=None,
             validate_args=True, zero_division=0.0):
    """Fraction correct: ``(tp + tn) / all`` (binary, per label) or ``tp / support`` per class
    (multiclass; ``micro`` is correct / total, ``top_k`` counts a hit among the k best)."""
    return _score("accuracy", preds, target, task, threshold, num_classes, num_labels, average,
                  top_k, ignore_index, zero_division, multidim_average=multidim_average)


def precision(preds, target, task, threshold=0.5, num_classes=None, average="micro",
              multidim_average="global", top_k=1, num_labels=None, ignore_index=None,
              validate_args=True, zero_division=0.0):
    """``tp / (tp + fp)``."""
    return _score("precision", preds, target, task, threshold, num_classes, num_labels, average,
                  top_k, ignore_index, zero_division, multidim_average=multidim_average)


def recall(preds, target, task, threshold=0.5, num_classes=None, average="micro",
           multidim_average="global", top_k=1, num_labels=None, ignore_index=None,
           validate_args=True, zero_division=0.0):
    """``tp / (tp + fn)``."""
    return _score("recall", preds, target, task, threshold, num_classes, num_labels, average,
                  top_k, ignore_index, zero_division, multidim_average=multidim_average)


def specificity(preds, target, task, threshold=0.5, num_classes=None, average="micro",
                multidim_average="global", top_k=1, num_labels=None, ignore_index=None,
                validate_args=True, zero_division=0.0):
    """``tn / (tn + fp)``."""
    return _score("specificity", preds, target, task, threshold, num_classes, num_labels,
                  average, top_k, ignore_index, zero_division,
                  multidim_average=multidim_average)


def fbeta_score(preds, target, task, beta=1.0, threshold=0.5, num_classes=None,
                average="micro", multidim_average="global", top_k=1, num_labels=None,
                ignore_index=None, validate_args=True, zero_division=0.0):
    """``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``."""
    if not isinstance(beta, (int, float)) or beta <= 0:
        raise ValueError(f"Expected argument `beta` to be a float larger than 0, but got {beta}.")
    return _score("fbeta", preds, target, task, threshold, num_classes, num_labels, average,
                  top_k, ignore_index, zero_division, beta, multidim_average)


def f1_score(preds, target, task, threshold=0.5, num_classes=None, average="micro",
             multidim_average="global", top_k=1, num_labels=None, ignore_index=None,
             validate_args=True, zero_division=0.0):
    """``2 tp / (2 tp + fn + fp)``: ``fbeta_score`` with ``beta = 1``."""
    return fbeta_score(preds, target, task, 1.0, threshold, num_classes, average,
                       multidim_average, top_k, num_labels, ignore_index,
                       zero_division=zero_division)


def jaccard_index(preds, target, task, threshold=0.5, num_classes=None, num_labels=None,
                  average="macro", ignore_index=None, validate_args=True, zero_division=0.0):
    """Intersection over union ``tp / (tp + fp + fn)`` (averaged as precision/recall)."""
    return _score("jaccard", preds, target, task, threshold, num_classes, num_labels, average,
                  1, ignore_index, zero_division)


# ---- confusion matrix and the agreement scores on it ------------------------------------------

def _confmat(preds, target, task, threshold, num_classes, ignore_index):
    """The ``[C, C]`` counts (rows: target, columns: prediction) of a binary/multiclass task."""
    if task == "binary":
        p, t, _ = _binary_inputs(preds, target, threshold, ignore_index)
        c = 2
    else:
        p, t, _ = _multiclass_inputs(preds, target, num_classes, 1, ignore_index)
        c = num_classes
    if task == "binary":
        pi, ti = p[:, 0].astype(np.int64), t[:, 0].astype(np.int64)
    else:
        pi, ti = p.argmax(1), t.argmax(1)
    return np.bincount(ti * c + pi, minlength=c * c).reshape(c, c)


def confusion_matrix(preds, target, task, num_classes=None, normalize=None, threshold=0.5,
                     num_labels=None, ignore_index=None):
    """Counts ``C[i, j]`` of target ``i`` predicted as ``j`` (``[L, 2, 2]`` per label for
    multilabel); ``normalize`` 'true' (rows), 'pred' (columns) or 'all'."""
    check_task(task)
    if normalize not in (None, "none", "true", "pred", "all"):
        raise ValueError(f"Expected argument `normalize` to be one of [None, 'none', 'true', "
                         f"'pred', 'all'], but got {normalize!r}.")
    if task == "multilabel":
        tp, fp, tn, fn = _counts(preds, target, task, threshold, None, num_labels, 1,
                                 ignore_index)
        cm = np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], -2)
    else:
        cm = _confmat(preds, target, task, threshold, num_classes, ignore_index)
    if normalize in (None, "none"):
        return result(cm, np.int64)
    if normalize == "true":
        cm = safe_divide(cm, cm.sum(-1, keepdims=True))
    elif normalize == "pred":
        cm = safe_divide(cm, cm.sum(-2, keepdims=True))
    else:
        cm = safe_divide(cm, cm.sum((-2, -1), keepdims=True))
    return result(cm)


def matthews_corrcoef(preds, target, task, threshold=0.5, num_classes=None, num_labels=None,
                      ignore_index=None):
    """``(c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t))`` over the confusion matrix (``c``
    correct, ``s`` samples, ``t``/``p`` true/predicted counts per class); 0 when undefined."""
    check_task(task)
    if task == "multilabel":  # one binary matrix over all labels, as torchmetrics
        tp, fp, tn, fn = (x.sum() for x in _counts(preds, target, task, threshold, None,
                                                   num_labels, 1, ignore_index))
        cm = np.array([[tn, fp], [fn, tp]])
    else:
        cm = _confmat(preds, target, task, threshold, num_classes, ignore_index)
    return result(mcc_from_confmat(cm))


def mcc_from_confmat(cm) -> float:
    """Matthews correlation of a ``[C, C]`` confusion matrix (0 when undefined)."""
    cm = np.asarray(cm, np.float64)
    t, p, c, s = cm.sum(1), cm.sum(0), np.trace(cm), cm.sum()
    denom = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return safe_divide(c * s - t @ p, denom)


def cohen_kappa(preds, target, task, threshold=0.5, num_classes=None, weights=None,
                ignore_index=None):
    """``1 - sum(w * O) / sum(w * E)``: observed confusion ``O`` against chance ``E`` (outer
    product of the marginals); ``weights`` None, 'linear' or 'quadratic' in ``|i - j|``."""
    check_task(task, ("binary", "multiclass"))
    if weights not in (None, "none", "linear", "quadratic"):
        raise ValueError(f"Expected argument `weights` to be one of [None, 'none', 'linear', "
                         f"'quadratic'], but got {weights!r}.")
    cm = _confmat(preds, target, task, threshold, num_classes, ignore_index)
    return result(kappa_from_confmat(cm, weights))


def kappa_from_confmat(cm, weights=None) -> float:
    """Cohen's kappa of a ``[C, C]`` confusion matrix."""
    cm = np.asarray(cm, np.float64)
    n = cm.shape[0]
    expected = np.outer(cm.sum(1), cm.sum(0)) / max(cm.sum(), 1)
    i, j = np.indices((n, n))
    if weights in (None, "none"):
        w = (i != j).astype(np.float64)
    elif weights == "linear":
        w = np.abs(i - j).astype(np.float64)
    else:
        w = ((i - j) ** 2).astype(np.float64)
    return 1 - safe_divide((w * cm).sum(), (w * expected).sum())


# ---- curves and the areas under them ----------------------------------------------------------

def _score_inputs(preds, target, task, num_classes, num_labels, ignore_index):
    """Float scores ``[M, C]`` and boolean targets ``[M, C]`` (C = 1 for binary)."""
    check_task(task)
    p, t = to_np(preds, "preds"), to_np(target, "target")
    if p.dtype.kind != "f":
        raise ValueError(f"Expected `preds` to be float scores, but got {p.dtype} with shape "
                         f"{list(p.shape)}.")
    check_probabilities(p)
    if task == "multiclass":
        c = _num(num_classes, "num_classes")
        if p.ndim != t.ndim + 1 or p.shape[1] != c or p.shape[:1] + p.shape[2:] != t.shape:
            raise ValueError(f"Expected preds of shape [N, {c}, ...] matching target [N, ...], "
                             f"but got preds {list(p.shape)} and target {list(t.shape)}.")
        _check_int_target(t, c, ignore_index, f"num_classes={c}")
        s = np.moveaxis(p, 1, -1).reshape(-1, c)
        t = t.ravel()
        keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
        return s[keep], np.arange(c)[None, :] == t[keep][:, None], None
    check_same_shape(p, t)
    _check_int_target(t, 2, ignore_index, f"a {task} task")
    if task == "binary":
        t, p = t.ravel(), p.ravel()
        keep = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
        return p[keep][:, None], t[keep][:, None] == 1, None
    n = _num(num_labels, "num_labels")
    if p.ndim < 2 or p.shape[1] != n:
        raise ValueError(f"Expected preds and target of shape [N, {n}, ...], but got "
                         f"{list(p.shape)}.")
    s = np.moveaxis(p, 1, -1).reshape(-1, n)
    t = np.moveaxis(t, 1, -1).reshape(-1, n)
    keep = t != ignore_index if ignore_index is not None else None
    return s, t == 1, keep


def _clf_curve(scores, target):
    """Cumulative ``(fps, tps, thresholds)`` at each distinct score, highest first."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], target[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.zeros(0, np.int64)
    tps = np.cumsum(t)[last]
    fps = 1 + last - tps
    return fps, tps, s[last]


def _roc1(scores, target):
    fps, tps, thr = _clf_curve(scores, target)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thr = np.r_[1.0, thr]
    fpr = safe_divide(fps, fps[-1]) if fps[-1] > 0 else np.zeros_like(fps)
    tpr = safe_divide(tps, tps[-1]) if tps[-1] > 0 else np.zeros_like(tps)
    return fpr, tpr, thr


def _pr1(scores, target):
    fps, tps, thr = _clf_curve(scores, target)
    prec = safe_divide(tps, tps + fps)
    rec = safe_divide(tps, tps[-1]) if tps.size and tps[-1] > 0 else np.zeros_like(tps)
    # from the lowest threshold up, ending at (recall 0, precision 1) as sklearn
    return np.r_[prec[::-1], 1.0], np.r_[rec[::-1], 0.0], thr[::-1]


def _per_column(fn, s, t, keep):
    cols = []
    for k in range(s.shape[1]):
        m = keep[:, k] if keep is not None else slice(None)
        cols.append(fn(s[m, k], t[m, k]))
    return cols


def roc(preds, target, task, num_classes=None, num_labels=None, ignore_index=None):
    """``(fpr, tpr, thresholds)`` at every distinct score, from threshold 1 (nothing positive)
    down; lists of them per class (one-vs-rest) or per label."""
    s, t, keep = _score_inputs(preds, target, task, num_classes, num_labels, ignore_index)
    dt = np.float64 if s.dtype == np.float64 else np.float32
    curves = [tuple(result(a, dt) for a in c) for c in _per_column(_roc1, s, t, keep)]
    if task == "binary":
        return curves[0]
    return tuple(list(x) for x in zip(*curves))


def precision_recall_curve(preds, target, task, num_classes=None, num_labels=None,
                           ignore_index=None):
    """``(precision, recall, thresholds)`` at every distinct score, lowest threshold first,
    ending at precision 1, recall 0 (sklearn's layout); lists per class or label."""
    s, t, keep = _score_inputs(preds, target, task, num_classes, num_labels, ignore_index)
    dt = np.float64 if s.dtype == np.float64 else np.float32
    curves = [tuple(result(a, dt) for a in c) for c in _per_column(_pr1, s, t, keep)]
    if task == "binary":
        return curves[0]
    return tuple(list(x) for x in zip(*curves))


def _trapezoid(y, x) -> float:
    """Area under ``y(x)`` by the trapezoid rule (``np.trapezoid`` needs NumPy 2)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _auc1(scores, target, max_fpr=None):
    fpr, tpr, _ = _roc1(scores, target)
    if max_fpr is None or max_fpr == 1:
        return _trapezoid(tpr, fpr)
    # McClish's standardised partial AUC up to max_fpr (sklearn's roc_auc_score)
    stop = np.searchsorted(fpr, max_fpr, "right")
    tpr_cut = np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])
    part = _trapezoid(np.r_[tpr[:stop], tpr_cut], np.r_[fpr[:stop], max_fpr])
    lo, hi = 0.5 * max_fpr ** 2, max_fpr
    return 0.5 * (1 + (part - lo) / (hi - lo))


def _ap1(scores, target):
    prec, rec, _ = _pr1(scores, target)
    return -np.sum(np.diff(rec) * prec[:-1])


def _area(fn, preds, target, task, num_classes, num_labels, average, ignore_index, **kw):
    check_average(average, ("micro", "macro", "weighted", "none", None))
    s, t, keep = _score_inputs(preds, target, task, num_classes, num_labels, ignore_index)
    dt = np.float64 if s.dtype == np.float64 else np.float32
    if task == "binary":
        return result(fn(s[:, 0], t[:, 0], **kw), dt)
    if average == "micro":  # every (sample, class) pair as one binary problem
        m = keep.ravel() if keep is not None else slice(None)
        return result(fn(s.ravel()[m], t.ravel()[m], **kw), dt)
    vals = np.array(_per_column(lambda a, b: fn(a, b, **kw), s, t, keep))
    support = (t & keep).sum(0) if keep is not None else t.sum(0)
    if average in ("none", None):
        return result(vals, dt)
    if average == "weighted":
        return result(safe_divide((vals * support).sum(), support.sum()), dt)
    return result(vals.mean(), dt)


def auroc(preds, target, task, num_classes=None, num_labels=None, average="macro",
          max_fpr=None, ignore_index=None):
    """Area under the ROC curve (trapezoid rule); one-vs-rest per class, averaged; ``max_fpr``
    gives McClish's standardised partial AUC (binary)."""
    if max_fpr is not None and (not isinstance(max_fpr, float) or not 0 < max_fpr <= 1):
        raise ValueError(f"Arguments `max_fpr` should be a float in range (0, 1], but got: "
                         f"{max_fpr}")
    kw = {"max_fpr": max_fpr} if max_fpr is not None else {}
    return _area(_auc1, preds, target, task, num_classes, num_labels, average, ignore_index,
                 **kw)


def average_precision(preds, target, task, num_classes=None, num_labels=None, average="macro",
                      ignore_index=None):
    """``sum_n (R_n - R_{n-1}) P_n`` over the precision-recall curve (no interpolation)."""
    return _area(_ap1, preds, target, task, num_classes, num_labels, average, ignore_index)


def calibration_error(preds, target, task, n_bins=15, norm="l1", num_classes=None,
                      ignore_index=None):
    """Expected (``l1``), RMS (``l2``) or maximum (``max``) gap between confidence and accuracy
    over ``n_bins`` equal-width confidence bins, weighted by each bin's share of samples."""
    check_task(task, ("binary", "multiclass"))
    if norm not in ("l1", "l2", "max"):
        raise ValueError(f"Argument `norm` is expected to be one of 'l1', 'l2', 'max' but got "
                         f"{norm!r}")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"Expected argument `n_bins` to be an integer larger than 0, but got "
                         f"{n_bins}")
    s, t, _ = _score_inputs(preds, target, task, num_classes, None, ignore_index)
    dt = np.float64 if s.dtype == np.float64 else np.float32
    if task == "binary":  # the positive class's probability against the label, as torchmetrics
        conf, acc = s[:, 0].astype(np.float64), t[:, 0].astype(np.float64)
    else:
        conf = s.max(1).astype(np.float64)
        acc = (s.argmax(1) == t.argmax(1)).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, "right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_bin = safe_divide(np.bincount(idx, conf, n_bins), count)
    acc_bin = safe_divide(np.bincount(idx, acc, n_bins), count)
    prop = count / max(conf.size, 1)
    gap = np.abs(acc_bin - conf_bin)
    if norm == "l1":
        return result((gap * prop).sum(), dt)
    if norm == "max":
        return result(gap.max(), dt)
    return result(np.sqrt((gap ** 2 * prop).sum()), dt)


# ---- torchmetrics' task-specific names: binary_*, multiclass_*, multilabel_* -------------------

def _task_form(fn, task, name, macro=False, lead=()):
    """``fn`` with ``task`` fixed, taking ``num_classes``/``num_labels`` (after any ``lead``
    arguments such as fbeta's ``beta``) positionally as torchmetrics' ``multiclass_*``
    functions do; averaging metrics default to ``macro`` there, as torchmetrics'."""
    size = {"multiclass": "num_classes", "multilabel": "num_labels"}.get(task)

    def form(preds, target, *args, **kwargs):
        names = lead + ((size,) if size else ())
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {2 + len(names)} positional arguments; "
                            "pass the others by keyword")
        kwargs.update(zip(names, args))
        if size and size not in kwargs:
            raise TypeError(f"{name}() missing required argument: '{size}'")
        if macro and task != "binary":
            kwargs.setdefault("average", "macro")
        return fn(preds, target, task, **kwargs)

    form.__name__ = form.__qualname__ = name
    form.__doc__ = f"``{fn.__name__}(preds, target, task={task!r}, ...)``."
    return form


binary_stat_scores = _task_form(stat_scores, "binary", "binary_stat_scores")
multiclass_stat_scores = _task_form(stat_scores, "multiclass", "multiclass_stat_scores", True)
multilabel_stat_scores = _task_form(stat_scores, "multilabel", "multilabel_stat_scores", True)
binary_accuracy = _task_form(accuracy, "binary", "binary_accuracy")
multiclass_accuracy = _task_form(accuracy, "multiclass", "multiclass_accuracy", True)
multilabel_accuracy = _task_form(accuracy, "multilabel", "multilabel_accuracy", True)
binary_precision = _task_form(precision, "binary", "binary_precision")
multiclass_precision = _task_form(precision, "multiclass", "multiclass_precision", True)
multilabel_precision = _task_form(precision, "multilabel", "multilabel_precision", True)
binary_recall = _task_form(recall, "binary", "binary_recall")
multiclass_recall = _task_form(recall, "multiclass", "multiclass_recall", True)
multilabel_recall = _task_form(recall, "multilabel", "multilabel_recall", True)
binary_specificity = _task_form(specificity, "binary", "binary_specificity")
multiclass_specificity = _task_form(specificity, "multiclass", "multiclass_specificity", True)
multilabel_specificity = _task_form(specificity, "multilabel", "multilabel_specificity", True)
binary_f1_score = _task_form(f1_score, "binary", "binary_f1_score")
multiclass_f1_score = _task_form(f1_score, "multiclass", "multiclass_f1_score", True)
multilabel_f1_score = _task_form(f1_score, "multilabel", "multilabel_f1_score", True)
binary_fbeta_score = _task_form(fbeta_score, "binary", "binary_fbeta_score", lead=("beta",))
multiclass_fbeta_score = _task_form(fbeta_score, "multiclass", "multiclass_fbeta_score", True,
                                    ("beta",))
multilabel_fbeta_score = _task_form(fbeta_score, "multilabel", "multilabel_fbeta_score", True,
                                    ("beta",))
binary_jaccard_index = _task_form(jaccard_index, "binary", "binary_jaccard_index")
multiclass_jaccard_index = _task_form(jaccard_index, "multiclass", "multiclass_jaccard_index",
                                      True)
multilabel_jaccard_index = _task_form(jaccard_index, "multilabel", "multilabel_jaccard_index",
                                      True)
binary_confusion_matrix = _task_form(confusion_matrix, "binary", "binary_confusion_matrix")
multiclass_confusion_matrix = _task_form(confusion_matrix, "multiclass",
                                         "multiclass_confusion_matrix")
multilabel_confusion_matrix = _task_form(confusion_matrix, "multilabel",
                                         "multilabel_confusion_matrix")
binary_matthews_corrcoef = _task_form(matthews_corrcoef, "binary", "binary_matthews_corrcoef")
multiclass_matthews_corrcoef = _task_form(matthews_corrcoef, "multiclass",
                                          "multiclass_matthews_corrcoef")
multilabel_matthews_corrcoef = _task_form(matthews_corrcoef, "multilabel",
                                          "multilabel_matthews_corrcoef")
binary_cohen_kappa = _task_form(cohen_kappa, "binary", "binary_cohen_kappa")
multiclass_cohen_kappa = _task_form(cohen_kappa, "multiclass", "multiclass_cohen_kappa")
binary_roc = _task_form(roc, "binary", "binary_roc")
multiclass_roc = _task_form(roc, "multiclass", "multiclass_roc")
multilabel_roc = _task_form(roc, "multilabel", "multilabel_roc")
binary_precision_recall_curve = _task_form(precision_recall_curve, "binary",
                                           "binary_precision_recall_curve")
multiclass_precision_recall_curve = _task_form(precision_recall_curve, "multiclass",
                                               "multiclass_precision_recall_curve")
multilabel_precision_recall_curve = _task_form(precision_recall_curve, "multilabel",
                                               "multilabel_precision_recall_curve")
binary_auroc = _task_form(auroc, "binary", "binary_auroc")
multiclass_auroc = _task_form(auroc, "multiclass", "multiclass_auroc")
multilabel_auroc = _task_form(auroc, "multilabel", "multilabel_auroc")
binary_average_precision = _task_form(average_precision, "binary", "binary_average_precision")
multiclass_average_precision = _task_form(average_precision, "multiclass",
                                          "multiclass_average_precision")
multilabel_average_precision = _task_form(average_precision, "multilabel",
                                          "multilabel_average_precision")
binary_calibration_error = _task_form(calibration_error, "binary", "binary_calibration_error")
multiclass_calibration_error = _task_form(calibration_error, "multiclass",
                                          "multiclass_calibration_error")

__all__ += [n for n in list(globals()) if n.startswith(("binary_", "multiclass_",
                                                         "multilabel_"))]
