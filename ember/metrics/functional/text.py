"""Text metrics as functions: perplexity over token logits, corpus BLEU, and character/word
error rates from Levenshtein edit distance (pure Python over the strings)."""
from __future__ import annotations

import collections
import math

from ._checks import result

__all__ = ["perplexity", "bleu_score", "char_error_rate", "word_error_rate", "edit_distance"]


def perplexity(preds, target, ignore_index=None):
    """``exp(mean NLL)`` of ``target`` tokens ``[B, S]`` under logits ``preds`` ``[B, S, V]``
    (entries equal to ``ignore_index`` skipped)."""
    from ...nn import functional as F
    if preds.dim() != 3:
        raise ValueError(f"Input tensor `preds` is expected to have 3 dimensions, [batch_size, "
                         f"seq_len, vocab_size], but got {preds.dim()} (shape "
                         f"{list(preds.shape)}).")
    if target.dim() != 2 or tuple(preds.shape[:2]) != tuple(target.shape):
        raise ValueError(f"Input tensors `preds` and `target` are expected to have equaling "
                         f"first two dimensions, [batch_size, seq_len], but got "
                         f"{list(preds.shape[:2])} and {list(target.shape)}.")
    flat = preds.reshape(-1, preds.shape[-1])
    tgt = target.reshape(-1)
    kw = {"ignore_index": ignore_index} if ignore_index is not None else {}
    return F.cross_entropy(flat, tgt, **kw).exp()


def _ngrams(tokens, n):
    return collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu_score(preds, target, n_gram=4, smooth=False, weights=None):
    """Corpus BLEU: ``BP * exp(sum_n w_n log p_n)`` with clipped n-gram precisions ``p_n`` and
    brevity penalty ``BP = min(1, exp(1 - r / c))`` (``r`` closest reference length);
    ``smooth`` adds one to the counts of n-grams with ``n > 1`` (Lin and Och 2004)."""
    if isinstance(preds, str):
        preds = [preds]
    target = [[t] if isinstance(t, str) else list(t) for t in target]
    if len(preds) != len(target):
        raise ValueError(f"Corpus has different size {len(preds)} != {len(target)}")
    if weights is None:
        weights = [1.0 / n_gram] * n_gram
    if len(weights) != n_gram:
        raise ValueError(f"List of weights has different weights than `n_gram`: "
                         f"{len(weights)} != {n_gram}")
    num = [0.0] * n_gram
    den = [0.0] * n_gram
    c_len = r_len = 0
    for hyp, refs in zip(preds, target):
        h = hyp.split()
        rs = [r.split() for r in refs]
        c_len += len(h)
        r_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, n_gram + 1):
            counts = _ngrams(h, n)
            best = collections.Counter()
            for r in rs:
                best |= _ngrams(r, n)
            num[n - 1] += sum((counts & best).values())
            den[n - 1] += max(len(h) - n + 1, 0)
    if min(num) == 0 and not smooth or c_len == 0:
        return result(0.0)
    if smooth:  # add-one on the n-grams longer than one word (torchmetrics' smoothing)
        prec = [num[0] / den[0]] + [(num[i] + 1) / (den[i] + 1) for i in range(1, n_gram)]
    else:
        prec = [num[i] / den[i] for i in range(n_gram)]
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)
    return result(bp * math.exp(sum(w * math.log(p) for w, p in zip(weights, prec))))


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def _error_rate(preds, target, split):
    if isinstance(preds, str):
        preds = [preds]
    if isinstance(target, str):
        target = [target]
    if len(preds) != len(target):
        raise ValueError(f"Expected as many predictions as references, got {len(preds)} and "
                         f"{len(target)}")
    errors = total = 0
    for p, t in zip(preds, target):
        errors += edit_distance(split(p), split(t))
        total += len(split(t))
    return result(errors / total if total else 0.0)


def char_error_rate(preds, target):
    """Character edit distance over the references' total length."""
    return _error_rate(preds, target, list)


def word_error_rate(preds, target):
    """Word (whitespace token) edit distance over the references' total word count."""
    return _error_rate(preds, target, str.split)
