"""Regression metrics as functions, written with ember ops so they are differentiable (as
torchmetrics' are): each takes ``preds`` and ``target`` of one shape, ``[N]`` or ``[N, D]``
(``D`` outputs scored column by column)."""
from __future__ import annotations

from ..._dtype import get_default_dtype
from ..._tensor import Tensor
from ._checks import to_np

__all__ = ["mean_absolute_error", "mean_squared_error", "r2_score", "explained_variance",
           "pearson_corrcoef", "spearman_corrcoef", "cosine_similarity"]


def _pair(preds, target):
    for name, x in (("preds", preds), ("target", target)):
        if not isinstance(x, Tensor):
            raise TypeError(f"Expected `{name}` to be an ember Tensor, got {type(x).__name__}")
    if tuple(preds.shape) != tuple(target.shape):
        raise RuntimeError(f"Predictions and targets are expected to have the same shape, but "
                           f"got preds {list(preds.shape)} and target {list(target.shape)}.")
    # integer inputs are scored in the other input's float dtype, or the default one
    if not preds.is_floating_point():
        preds = preds.to(target.dtype if target.is_floating_point() else get_default_dtype())
    if not target.is_floating_point():
        target = target.to(preds.dtype)
    return preds, target


def _columns(preds, target, name):
    if preds.dim() > 2:
        raise ValueError(f"Expected preds and target of shape [N] or [N, D] for {name}, but got "
                         f"{list(preds.shape)}.")


def mean_absolute_error(preds, target):
    """``mean(|preds - target|)``."""
    preds, target = _pair(preds, target)
    return (preds - target).abs().mean()


def mean_squared_error(preds, target, squared=True, num_outputs=1):
    """``mean((preds - target)^2)``; its square root (RMSE) with ``squared=False``; per output
    column with ``num_outputs > 1``."""
    preds, target = _pair(preds, target)
    err = (preds - target) ** 2
    mse = err.reshape(-1, num_outputs).mean(0) if num_outputs > 1 else err.mean()
    return mse if squared else mse.sqrt()


def _multioutput(score, multioutput, weights=None):
    if multioutput == "raw_values":
        return score
    if multioutput == "uniform_average":
        return score.mean()
    if multioutput == "variance_weighted":
        return (score * weights).sum() / weights.sum()
    raise ValueError(f"Invalid input to argument `multioutput`. Choose one of the following: "
                     f"('raw_values', 'uniform_average', 'variance_weighted'), got "
                     f"{multioutput!r}")


def r2_score(preds, target, adjusted=0, multioutput="uniform_average"):
    """``1 - SS_res / SS_tot`` per output, averaged by ``multioutput``; ``adjusted = k`` gives
    ``1 - (1 - R^2)(n - 1) / (n - k - 1)``."""
    preds, target = _pair(preds, target)
    _columns(preds, target, "r2_score")
    n = preds.shape[0]
    if n < 2:
        raise ValueError(f"Needs at least two samples to calculate r2 score, got preds of shape "
                         f"{list(preds.shape)}.")
    if not isinstance(adjusted, int) or adjusted < 0:
        raise ValueError(f"`adjusted` parameter should be an integer larger or equal to 0, got "
                         f"{adjusted!r}.")
    ss_res = ((target - preds) ** 2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    r2 = 1 - ss_res / ss_tot
    r2 = _multioutput(r2, multioutput, ss_tot)
    if adjusted:
        if adjusted >= n - 1:
            raise ValueError(f"More independent regressions ({adjusted}) than data points "
                             f"({n}); the adjusted r2 score is undefined.")
        r2 = 1 - (1 - r2) * (n - 1) / (n - adjusted - 1)
    return r2


def explained_variance(preds, target, multioutput="uniform_average"):
    """``1 - Var(target - preds) / Var(target)`` per output (population variances)."""
    preds, target = _pair(preds, target)
    _columns(preds, target, "explained_variance")
    diff = target - preds
    num = ((diff - diff.mean(0)) ** 2).mean(0)
    den = ((target - target.mean(0)) ** 2).mean(0)
    return _multioutput(1 - num / den, multioutput, den)


def pearson_corrcoef(preds, target):
    """``cov(x, y) / (std(x) std(y))`` per output column."""
    preds, target = _pair(preds, target)
    _columns(preds, target, "pearson_corrcoef")
    if preds.shape[0] < 2:
        raise ValueError(f"Expected at least two samples, got preds of shape "
                         f"{list(preds.shape)}.")
    xm, ym = preds - preds.mean(0), target - target.mean(0)
    r = (xm * ym).sum(0) / ((xm ** 2).sum(0) * (ym ** 2).sum(0)).sqrt()
    return r.clamp(-1, 1)


def _rank(x: Tensor) -> Tensor:
    """Ranks 1..N along dim 0, ties sharing their average rank (as scipy.stats.rankdata)."""
    import numpy as np
    a = to_np(x)
    order = np.argsort(a, axis=0, kind="stable")
    ranks = np.empty(a.shape, np.float64)
    for col in range(a.shape[1] if a.ndim == 2 else 1):
        v = a[:, col] if a.ndim == 2 else a
        o = order[:, col] if a.ndim == 2 else order
        sv = v[o]
        first = np.r_[True, sv[1:] != sv[:-1]]
        group = np.cumsum(first) - 1
        starts = np.nonzero(first)[0]
        ends = np.r_[starts[1:], sv.size]
        avg = (starts + ends + 1) / 2.0
        r = np.empty(sv.size)
        r[o] = avg[group]
        if a.ndim == 2:
            ranks[:, col] = r
        else:
            ranks = r
    from ..._creation import tensor
    return tensor(ranks.astype(a.dtype))


def spearman_corrcoef(preds, target):
    """Pearson correlation of the ranks (ties get their average rank)."""
    preds, target = _pair(preds, target)
    _columns(preds, target, "spearman_corrcoef")
    return pearson_corrcoef(_rank(preds), _rank(target))


def cosine_similarity(preds, target, reduction="sum"):
    """``x.y / (|x| |y|)`` per row of ``[N, D]`` inputs, then summed, averaged or kept
    (``reduction`` 'sum', 'mean' or 'none')."""
    preds, target = _pair(preds, target)
    if preds.dim() != 2:
        raise ValueError(f"Expected preds and target of shape [N, D], but got "
                         f"{list(preds.shape)}.")
    sim = (preds * target).sum(-1) / (preds.norm(dim=-1) * target.norm(dim=-1))
    if reduction == "sum":
        return sim.sum()
    if reduction == "mean":
        return sim.mean()
    if reduction in ("none", None):
        return sim
    raise ValueError(f"Expected reduction to be one of ['sum', 'mean', 'none', None], but got "
                     f"{reduction!r}")
