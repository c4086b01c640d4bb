"""Stateful segmentation metrics: per-class pixel counts summed over batches."""
from __future__ import annotations

from .._creation import tensor, zeros
from .._dtype import int64
from .metric import Metric
from .functional import segmentation as S
from .functional._checks import safe_divide

__all__ = ["MeanIoU", "DiceScore"]


class _PixelMetric(Metric):
    higher_is_better = True

    def __init__(self, num_classes: int, include_background: bool = True,
                 per_class: bool = False, input_format: str = "index", **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.include_background = num_classes, include_background
        self.per_class, self.input_format = per_class, input_format
        width = num_classes - (0 if include_background else 1)
        for n in ("tp", "fp", "fn"):
            self.add_state(n, zeros(width, dtype=int64), "sum")

    def update(self, preds, target) -> None:
        counts = S._pixel_counts(preds, target, self.num_classes, self.include_background,
                                 self.input_format)
        for n, c in zip(("tp", "fp", "fn"), counts):
            self._buffers[n] = self._buffers[n] + tensor(c)

    def compute(self):
        tp, fp, fn = (self._buffers[n].numpy() for n in ("tp", "fp", "fn"))
        return S._average(self._score(tp, fp, fn), tp, fp, fn, self.per_class)


class MeanIoU(_PixelMetric):
    @staticmethod
    def _score(tp, fp, fn):
        return safe_divide(tp, tp + fp + fn)


class DiceScore(_PixelMetric):
    @staticmethod
    def _score(tp, fp, fn):
        return safe_divide(2 * tp, 2 * tp + fp + fn)
