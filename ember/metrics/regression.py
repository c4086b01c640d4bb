"""Stateful regression metrics: running sums where the formula allows (MAE, MSE, R2), all
batches kept where it does not (rank and correlation metrics)."""
from __future__ import annotations

from .._creation import tensor
from .._dtype import float32, float64
from .metric import Metric
from .functional import regression as R

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "R2Score", "ExplainedVariance",
           "PearsonCorrCoef", "SpearmanCorrCoef", "CosineSimilarity"]


class MeanAbsoluteError(Metric):
    is_differentiable = True
    higher_is_better = False
    _dtype = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("sum_abs_error", tensor(0.0, dtype=float64), "sum")
        self.add_state("total", tensor(0), "sum")

    def update(self, preds, target) -> None:
        p, t = R._pair(preds, target)
        self._buffers["sum_abs_error"] = self._buffers["sum_abs_error"] + (p - t).abs().sum()
        self._buffers["total"] = self._buffers["total"] + t.numel()
        self._dtype = p.dtype

    def compute(self):
        # summed in float64; the value in the inputs' dtype, as the functional form
        return (self._buffers["sum_abs_error"] / self._buffers["total"]).to(self._dtype or float32)


class MeanSquaredError(Metric):
    is_differentiable = True
    higher_is_better = False
    _dtype = None

    def __init__(self, squared: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.squared = squared
        self.add_state("sum_squared_error", tensor(0.0, dtype=float64), "sum")
        self.add_state("total", tensor(0), "sum")

    def update(self, preds, target) -> None:
        p, t = R._pair(preds, target)
        self._buffers["sum_squared_error"] = (self._buffers["sum_squared_error"]
                                              + ((p - t) ** 2).sum())
        self._buffers["total"] = self._buffers["total"] + t.numel()
        self._dtype = p.dtype

    def compute(self):
        mse = self._buffers["sum_squared_error"] / self._buffers["total"]
        mse = mse.to(self._dtype or float32)
        return mse if self.squared else mse.sqrt()


class _CatMetric(Metric):
    """Keeps every batch; compute applies the functional form to them all."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("preds", [], "cat")
        self.add_state("target", [], "cat")

    def update(self, preds, target) -> None:
        p, t = R._pair(preds, target)
        self.preds.append(p.detach())
        self.target.append(t.detach())

    def _all(self):
        from ..ops.movement import cat
        return cat(self.preds), cat(self.target)


class R2Score(_CatMetric):
    higher_is_better = True

    def __init__(self, adjusted: int = 0, multioutput: str = "uniform_average", **kwargs):
        super().__init__(**kwargs)
        self.adjusted, self.multioutput = adjusted, multioutput

    def compute(self):
        return R.r2_score(*self._all(), adjusted=self.adjusted, multioutput=self.multioutput)


class ExplainedVariance(_CatMetric):
    higher_is_better = True

    def __init__(self, multioutput: str = "uniform_average", **kwargs):
        super().__init__(**kwargs)
        self.multioutput = multioutput

    def compute(self):
        return R.explained_variance(*self._all(), multioutput=self.multioutput)


class PearsonCorrCoef(_CatMetric):
    higher_is_better = True

    def compute(self):
        return R.pearson_corrcoef(*self._all())


class SpearmanCorrCoef(_CatMetric):
    higher_is_better = True

    def compute(self):
        return R.spearman_corrcoef(*self._all())


class CosineSimilarity(_CatMetric):
    higher_is_better = True

    def __init__(self, reduction: str = "sum", **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction

    def compute(self):
        return R.cosine_similarity(*self._all(), reduction=self.reduction)
