"""``AdaptiveLogSoftmaxWithLoss``: the adaptive softmax of Grave et al. (2016)
(``torch/nn/modules/adaptive.py``).

The frequent classes (below ``cutoffs[0]``) and one token per rarer cluster share a head
softmax; each cluster has its own softmax behind a low-rank projection whose width shrinks by
``div_value`` per cluster. ``log p(c) = log p_head(cluster(c)) + log p_cluster(c)``.
"""
from __future__ import annotations

from collections import namedtuple

from ...ops.activation import log_softmax
from ...ops.movement import cat
from .container import Sequential, ModuleList
from .linear import Linear
from .module import Module

__all__ = ["AdaptiveLogSoftmaxWithLoss"]

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """Adaptive softmax: ``forward(input, target)`` gives each target's log-probability
    (``output``) and their mean negative (``loss``); ``log_prob``/``predict`` cover all
    classes."""

    def __init__(self, in_features: int, n_classes: int, cutoffs, div_value: float = 4.0,
                 head_bias: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted "
                             "in an increasing order, where each value is between 1 and "
                             "n_classes-1")
        kw = dict(device=device, dtype=dtype)
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias, **kw)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hidden = int(in_features // (div_value ** (i + 1)))
            size = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hidden, bias=False, **kw),
                                        Linear(hidden, size, bias=False, **kw)))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for i2h, h2o in self.tail:
            i2h.reset_parameters()
            h2o.reset_parameters()

    def forward(self, input_, target_):
        t_dim = target_.dim()
        if t_dim == 1:
            if input_.size(0) != target_.size(0):
                raise RuntimeError("Input and target should have the same size in the batch "
                                   "dimension.")
            if input_.dim() != 2:
                raise RuntimeError("1D target tensor expects 2D input tensors, but found inputs "
                                   f"with size {input_.size()}")
        elif t_dim == 0:
            if input_.dim() != 1:
                raise RuntimeError("0D target tensor expects 1D input tensors, but found inputs "
                                   f"with size {input_.size()}")
        else:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        batched = t_dim > 0
        x = input_ if batched else input_.unsqueeze(0)
        target = target_ if batched else target_.unsqueeze(0)
        n = target.size(0)
        lo, hi = int(target.min()) if n else 0, int(target.max()) if n else 0
        if n and (lo < 0 or hi >= self.n_classes):
            raise RuntimeError(f"Target values should be in [0, {self.n_classes - 1}], but "
                               f"values in range [{lo}, {hi}] were found. ")
        # the head's column for each row: the class itself, or its cluster's token
        head_col = target.clone()
        output = x.new_zeros(n)
        for i in range(self.n_clusters):
            low, high = self.cutoffs[i], self.cutoffs[i + 1]
            rows = ((target >= low) & (target < high)).nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            head_col[rows] = self.shortlist_size + i
            logp = log_softmax(self.tail[i](x.index_select(0, rows)), 1)
            local = logp.gather(1, (target[rows] - low).unsqueeze(1)).squeeze(1)
            output = output.index_add(0, rows, local)
        head_logp = log_softmax(self.head(x), 1)
        output = output + head_logp.gather(1, head_col.unsqueeze(1)).squeeze(1)
        loss = (-output).mean()
        return _ASMoutput(output if batched else output.squeeze(0), loss)

    def _full_log_prob(self, x, head_out):
        """Log-probabilities of all ``n_classes`` for rows ``x`` with head logits ``head_out``."""
        head_logp = log_softmax(head_out, 1)
        parts = [head_logp[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster = log_softmax(self.tail[i](x), 1)
            parts.append(cluster + head_logp[:, self.shortlist_size + i].unsqueeze(1))
        return cat(parts, 1)

    def log_prob(self, input):
        """``log p(c | input)`` for every class: ``(N, n_classes)``."""
        return self._full_log_prob(input, self.head(input))

    def predict(self, input):
        """The most likely class per row (the full softmax only where the head's argmax is a
        cluster token)."""
        head_out = self.head(input)
        out = head_out.argmax(1)
        far = out >= self.shortlist_size
        if not bool(far.any()):
            return out
        if bool(far.all()):
            return self._full_log_prob(input, head_out).argmax(1)
        out[far] = self._full_log_prob(input[far], head_out[far]).argmax(1)
        return out
