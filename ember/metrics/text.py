"""Stateful text metrics: perplexity from summed token NLL, error rates from summed edit
distances, BLEU from summed clipped n-gram counts (each equal to the corpus-level formula)."""
from __future__ import annotations

from .._creation import tensor
from .._dtype import float64
from .metric import Metric
from .functional import text as T

__all__ = ["Perplexity", "BLEUScore", "CharErrorRate", "WordErrorRate"]


class Perplexity(Metric):
    higher_is_better = False
    is_differentiable = True

    def __init__(self, ignore_index=None, **kwargs):
        super().__init__(**kwargs)
        self.ignore_index = ignore_index
        self.add_state("total_log_probs", tensor(0.0, dtype=float64), "sum")
        self.add_state("count", tensor(0), "sum")

    def update(self, preds, target) -> None:
        nll = T.perplexity(preds, target, self.ignore_index).log()  # mean NLL of this batch
        n = target.numel() if self.ignore_index is None else \
            int((target != self.ignore_index).sum())
        self._buffers["total_log_probs"] = self._buffers["total_log_probs"] + nll.double() * n
        self._buffers["count"] = self._buffers["count"] + n

    def compute(self):
        return (self._buffers["total_log_probs"] / self._buffers["count"]).exp().float()


class _ErrorRate(Metric):
    higher_is_better = False
    _split = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("errors", tensor(0), "sum")
        self.add_state("total", tensor(0), "sum")

    def update(self, preds, target) -> None:
        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [target] if isinstance(target, str) else list(target)
        if len(preds) != len(target):
            raise ValueError(f"Expected as many predictions as references, got {len(preds)} and "
                             f"{len(target)}")
        split = type(self)._split
        e = sum(T.edit_distance(split(p), split(t)) for p, t in zip(preds, target))
        n = sum(len(split(t)) for t in target)
        self._buffers["errors"] = self._buffers["errors"] + e
        self._buffers["total"] = self._buffers["total"] + n

    def compute(self):
        return (self._buffers["errors"] / self._buffers["total"]).float()


class CharErrorRate(_ErrorRate):
    _split = staticmethod(list)


class WordErrorRate(_ErrorRate):
    _split = staticmethod(str.split)


class BLEUScore(Metric):
    """Corpus BLEU over every sentence seen (the strings are kept: BLEU's brevity penalty and
    clipping need the whole corpus's counts, which are summed at compute)."""

    higher_is_better = True

    def __init__(self, n_gram: int = 4, smooth: bool = False, weights=None, **kwargs):
        super().__init__(**kwargs)
        self.n_gram, self.smooth, self.weights = n_gram, smooth, weights
        self.add_state("preds", [], "cat")
        self.add_state("target", [], "cat")

    def update(self, preds, target) -> None:
        preds = [preds] if isinstance(preds, str) else list(preds)
        target = [[t] if isinstance(t, str) else list(t) for t in target]
        if len(preds) != len(target):
            raise ValueError(f"Corpus has different size {len(preds)} != {len(target)}")
        self.preds.extend(preds)
        self.target.extend(target)

    def compute(self):
        return T.bleu_score(self.preds, self.target, self.n_gram, self.smooth, self.weights)
