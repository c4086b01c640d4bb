"""Stateful classification metrics: counts (tp, fp, tn, fn per class) or a confusion matrix
summed over batches; curve metrics keep every batch's scores and targets."""
from __future__ import annotations

import numpy as np

from .._creation import tensor, zeros
from .._dtype import int64
from .._tensor import Tensor
from .metric import Metric
from .functional import classification as C
from .functional._checks import check_task, check_average, result

__all__ = ["StatScores", "Accuracy", "Precision", "Recall", "F1Score", "FBetaScore",
           "Specificity", "JaccardIndex", "ConfusionMatrix", "MatthewsCorrCoef", "CohenKappa",
           "AUROC", "AveragePrecision", "ROC", "PrecisionRecallCurve", "CalibrationError"]


def _width(task, num_classes, num_labels) -> int:
    check_task(task)
    if task == "binary":
        return 1
    n = num_classes if task == "multiclass" else num_labels
    return C._num(n, "num_classes" if task == "multiclass" else "num_labels")


class StatScores(Metric):
    """Per-class true/false positives/negatives summed over batches (the base of the
    count-based scores); ``compute`` gives ``[tp, fp, tn, fn, support]``."""

    _kind = None

    def __init__(self, task: str, threshold: float = 0.5, num_classes=None, num_labels=None,
                 average="micro", multidim_average="global", top_k: int = 1,
                 ignore_index=None, validate_args=True, zero_division=0.0, **kwargs):
        super().__init__(**kwargs)
        check_average(average)
        if multidim_average not in ("global", "samplewise"):
            raise ValueError(f"Expected argument `multidim_average` to be one of ('global', "
                             f"'samplewise'), but got {multidim_average!r}")
        width = _width(task, num_classes, num_labels)
        self.task, self.threshold, self.num_classes, self.num_labels = (task, threshold,
                                                                         num_classes, num_labels)
        self.average, self.top_k, self.ignore_index = average, top_k, ignore_index
        self.multidim_average, self.zero_division = multidim_average, zero_division
        for name in ("tp", "fp", "tn", "fn"):
            # samplewise keeps one row of counts per sample seen
            if multidim_average == "samplewise":
                self.add_state(name, [], "cat")
            else:
                self.add_state(name, zeros(width, dtype=int64), "sum")

    def update(self, preds, target) -> None:
        counts = C._counts(preds, target, self.task, self.threshold, self.num_classes,
                           self.num_labels, self.top_k, self.ignore_index,
                           self.multidim_average)
        for name, c in zip(("tp", "fp", "tn", "fn"), counts):
            if self.multidim_average == "samplewise":
                getattr(self, name).append(tensor(c))
            else:
                self._buffers[name] = self._buffers[name] + tensor(c)

    def _arrays(self):
        if self.multidim_average == "samplewise":
            return [np.concatenate([c.numpy() for c in getattr(self, n)])
                    for n in ("tp", "fp", "tn", "fn")]
        return [self._buffers[n].numpy() for n in ("tp", "fp", "tn", "fn")]

    def compute(self):
        tp, fp, tn, fn = self._arrays()
        if self._kind is None:
            return result(C.stats_from_counts(tp, fp, tn, fn, self.task, self.average),
                          np.int64)
        return C.score_from_counts(self._kind, tp, fp, tn, fn, self.task, self.average,
                                   self.top_k, self.zero_division, getattr(self, "beta", 1.0))


class Accuracy(StatScores):
    """``functional.accuracy`` accumulated over batches."""
    _kind = "accuracy"
    higher_is_better = True


class Precision(StatScores):
    _kind = "precision"
    higher_is_better = True


class Recall(StatScores):
    _kind = "recall"
    higher_is_better = True


class Specificity(StatScores):
    _kind = "specificity"
    higher_is_better = True


class FBetaScore(StatScores):
    _kind = "fbeta"
    higher_is_better = True

    def __init__(self, task: str, beta: float = 1.0, **kwargs):
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"Expected argument `beta` to be a float larger than 0, but got "
                             f"{beta}.")
        super().__init__(task, **kwargs)
        self.beta = float(beta)


class F1Score(FBetaScore):
    def __init__(self, task: str, **kwargs):
        super().__init__(task, 1.0, **kwargs)


class JaccardIndex(StatScores):
    _kind = "jaccard"
    higher_is_better = True

    def __init__(self, task: str, average="macro", **kwargs):
        super().__init__(task, average=average, **kwargs)


class _ConfmatMetric(Metric):
    """A summed ``[C, C]`` confusion matrix (``[2, 2]`` for binary, per label for
    multilabel)."""

    def __init__(self, task: str, num_classes=None, threshold: float = 0.5, num_labels=None,
                 ignore_index=None, **kwargs):
        super().__init__(**kwargs)
        width = _width(task, num_classes, num_labels)
        self.task, self.num_classes, self.threshold = task, num_classes, threshold
        self.num_labels, self.ignore_index = num_labels, ignore_index
        shape = (width, 2, 2) if task == "multilabel" else ((2, 2) if task == "binary"
                                                            else (width, width))
        self.add_state("confmat", zeros(shape, dtype=int64), "sum")

    def update(self, preds, target) -> None:
        cm = C.confusion_matrix(preds, target, self.task, self.num_classes, None,
                                self.threshold, self.num_labels, self.ignore_index)
        self._buffers["confmat"] = self._buffers["confmat"] + cm


class ConfusionMatrix(_ConfmatMetric):
    def __init__(self, task: str, num_classes=None, normalize=None, **kwargs):
        if normalize not in (None, "none", "true", "pred", "all"):
            raise ValueError(f"Expected argument `normalize` to be one of [None, 'none', "
                             f"'true', 'pred', 'all'], but got {normalize!r}.")
        super().__init__(task, num_classes, **kwargs)
        self.normalize = normalize

    def compute(self):
        cm = self._buffers["confmat"].numpy()
        if self.normalize in (None, "none"):
            return result(cm, np.int64)
        axis = {"true": (-1,), "pred": (-2,), "all": (-2, -1)}[self.normalize]
        return result(C.safe_divide(cm, cm.sum(axis, keepdims=True)))


class MatthewsCorrCoef(_ConfmatMetric):
    higher_is_better = True

    def compute(self):
        cm = self._buffers["confmat"].numpy()
        if self.task == "multilabel":
            cm = cm.sum(0)
        return result(C.mcc_from_confmat(cm))


class CohenKappa(_ConfmatMetric):
    higher_is_better = True

    def __init__(self, task: str, num_classes=None, weights=None, **kwargs):
        check_task(task, ("binary", "multiclass"))
        super().__init__(task, num_classes, **kwargs)
        self.weights = weights

    def compute(self):
        return result(C.kappa_from_confmat(self._buffers["confmat"].numpy(), self.weights))


class _ScoreListMetric(Metric):
    """Keeps every batch's scores and targets; compute calls the functional on them all."""

    _fn = None

    def __init__(self, task: str, num_classes=None, num_labels=None, ignore_index=None,
                 **kwargs):
        self._fkw = {k: kwargs.pop(k) for k in list(kwargs) if k in self._extra}
        super().__init__(**kwargs)
        check_task(task)
        self.task, self.num_classes, self.num_labels = task, num_classes, num_labels
        self.ignore_index = ignore_index
        self.add_state("preds", [], "cat")
        self.add_state("target", [], "cat")

    _extra = ()

    def update(self, preds: Tensor, target: Tensor) -> None:
        # checked now, so a bad batch fails at its own update
        C._score_inputs(preds, target, self.task, self.num_classes, self.num_labels,
                        self.ignore_index)
        self.preds.append(preds.detach())
        self.target.append(target.detach())

    def compute(self):
        from ..ops.movement import cat
        p, t = cat(self.preds), cat(self.target)
        kw = dict(self._fkw)
        if self.task == "multilabel":
            kw["num_labels"] = self.num_labels
        return type(self)._fn(p, t, self.task, num_classes=self.num_classes,
                              ignore_index=self.ignore_index, **kw)


class AUROC(_ScoreListMetric):
    _fn = staticmethod(C.auroc)
    _extra = ("average", "max_fpr")
    higher_is_better = True


class AveragePrecision(_ScoreListMetric):
    _fn = staticmethod(C.average_precision)
    _extra = ("average",)
    higher_is_better = True


class ROC(_ScoreListMetric):
    _fn = staticmethod(C.roc)


class PrecisionRecallCurve(_ScoreListMetric):
    _fn = staticmethod(C.precision_recall_curve)


class CalibrationError(_ScoreListMetric):
    _fn = staticmethod(C.calibration_error)
    _extra = ("n_bins", "norm")
    higher_is_better = False

    def __init__(self, task: str, n_bins: int = 15, norm: str = "l1", **kwargs):
        check_task(task, ("binary", "multiclass"))
        super().__init__(task, n_bins=n_bins, norm=norm, **kwargs)


# ---- torchmetrics' task-specific classes: Binary*, Multiclass*, Multilabel* --------------------

def _task_class(base, task, name, macro=False, lead=()):
    """``base`` with ``task`` fixed; ``num_classes``/``num_labels`` (after ``lead`` arguments
    such as ``beta``) may be positional, and averaging metrics default to ``macro`` for
    multiclass/multilabel, as torchmetrics' task classes."""
    size = {"multiclass": "num_classes", "multilabel": "num_labels"}.get(task)

    def __init__(self, *args, **kwargs):
        names = lead + ((size,) if size else ())
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} positional arguments; pass "
                            "the others by keyword")
        kwargs.update(zip(names, args))
        if size and size not in kwargs:
            raise TypeError(f"{name}() missing required argument: '{size}'")
        if macro and task != "binary":
            kwargs.setdefault("average", "macro")
        base.__init__(self, task, **kwargs)

    return type(name, (base,), {"__init__": __init__, "__module__": __name__,
                                "__doc__": f"``{base.__name__}(task={task!r}, ...)``."})


BinaryStatScores = _task_class(StatScores, "binary", "BinaryStatScores")
MulticlassStatScores = _task_class(StatScores, "multiclass", "MulticlassStatScores", True)
MultilabelStatScores = _task_class(StatScores, "multilabel", "MultilabelStatScores", True)
BinaryAccuracy = _task_class(Accuracy, "binary", "BinaryAccuracy")
MulticlassAccuracy = _task_class(Accuracy, "multiclass", "MulticlassAccuracy", True)
MultilabelAccuracy = _task_class(Accuracy, "multilabel", "MultilabelAccuracy", True)
BinaryPrecision = _task_class(Precision, "binary", "BinaryPrecision")
MulticlassPrecision = _task_class(Precision, "multiclass", "MulticlassPrecision", True)
MultilabelPrecision = _task_class(Precision, "multilabel", "MultilabelPrecision", True)
BinaryRecall = _task_class(Recall, "binary", "BinaryRecall")
MulticlassRecall = _task_class(Recall, "multiclass", "MulticlassRecall", True)
MultilabelRecall = _task_class(Recall, "multilabel", "MultilabelRecall", True)
BinarySpecificity = _task_class(Specificity, "binary", "BinarySpecificity")
MulticlassSpecificity = _task_class(Specificity, "multiclass", "MulticlassSpecificity", True)
MultilabelSpecificity = _task_class(Specificity, "multilabel", "MultilabelSpecificity", True)
BinaryF1Score = _task_class(F1Score, "binary", "BinaryF1Score")
MulticlassF1Score = _task_class(F1Score, "multiclass", "MulticlassF1Score", True)
MultilabelF1Score = _task_class(F1Score, "multilabel", "MultilabelF1Score", True)
BinaryFBetaScore = _task_class(FBetaScore, "binary", "BinaryFBetaScore", lead=("beta",))
MulticlassFBetaScore = _task_class(FBetaScore, "multiclass", "MulticlassFBetaScore", True,
                                   ("beta",))
MultilabelFBetaScore = _task_class(FBetaScore, "multilabel", "MultilabelFBetaScore", True,
                                   ("beta",))
BinaryJaccardIndex = _task_class(JaccardIndex, "binary", "BinaryJaccardIndex")
MulticlassJaccardIndex = _task_class(JaccardIndex, "multiclass", "MulticlassJaccardIndex", True)
MultilabelJaccardIndex = _task_class(JaccardIndex, "multilabel", "MultilabelJaccardIndex", True)
BinaryConfusionMatrix = _task_class(ConfusionMatrix, "binary", "BinaryConfusionMatrix")
MulticlassConfusionMatrix = _task_class(ConfusionMatrix, "multiclass",
                                        "MulticlassConfusionMatrix")
MultilabelConfusionMatrix = _task_class(ConfusionMatrix, "multilabel",
                                        "MultilabelConfusionMatrix")
BinaryMatthewsCorrCoef = _task_class(MatthewsCorrCoef, "binary", "BinaryMatthewsCorrCoef")
MulticlassMatthewsCorrCoef = _task_class(MatthewsCorrCoef, "multiclass",
                                         "MulticlassMatthewsCorrCoef")
MultilabelMatthewsCorrCoef = _task_class(MatthewsCorrCoef, "multilabel",
                                         "MultilabelMatthewsCorrCoef")
BinaryCohenKappa = _task_class(CohenKappa, "binary", "BinaryCohenKappa")
MulticlassCohenKappa = _task_class(CohenKappa, "multiclass", "MulticlassCohenKappa")
BinaryAUROC = _task_class(AUROC, "binary", "BinaryAUROC")
MulticlassAUROC = _task_class(AUROC, "multiclass", "MulticlassAUROC")
MultilabelAUROC = _task_class(AUROC, "multilabel", "MultilabelAUROC")
BinaryAveragePrecision = _task_class(AveragePrecision, "binary", "BinaryAveragePrecision")
MulticlassAveragePrecision = _task_class(AveragePrecision, "multiclass",
                                         "MulticlassAveragePrecision")
MultilabelAveragePrecision = _task_class(AveragePrecision, "multilabel",
                                         "MultilabelAveragePrecision")
BinaryROC = _task_class(ROC, "binary", "BinaryROC")
MulticlassROC = _task_class(ROC, "multiclass", "MulticlassROC")
MultilabelROC = _task_class(ROC, "multilabel", "MultilabelROC")
BinaryPrecisionRecallCurve = _task_class(PrecisionRecallCurve, "binary",
                                         "BinaryPrecisionRecallCurve")
MulticlassPrecisionRecallCurve = _task_class(PrecisionRecallCurve, "multiclass",
                                             "MulticlassPrecisionRecallCurve")
MultilabelPrecisionRecallCurve = _task_class(PrecisionRecallCurve, "multilabel",
                                             "MultilabelPrecisionRecallCurve")
BinaryCalibrationError = _task_class(CalibrationError, "binary", "BinaryCalibrationError")
MulticlassCalibrationError = _task_class(CalibrationError, "multiclass",
                                         "MulticlassCalibrationError")

__all__ += [n for n in list(globals()) if n.startswith(("Binary", "Multiclass", "Multilabel"))]
