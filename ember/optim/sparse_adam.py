"""SparseAdam: Adam whose moments and parameters change only where the gradient is nonzero."""
from __future__ import annotations

import math

from .._tensor import Tensor, _make
from .._backend import xp_of
from ..autograd.function import _version_counter
from .optimizer import Optimizer

__all__ = ["SparseAdam"]


def _sparse_parts(grad):
    """``(indices (ndim, nnz), values (nnz,))`` of a coalesced sparse COO gradient."""
    g = grad.coalesce()
    return g._indices()._data, g._values()._data


def sparse_adam_update(p, idx, vals, m, v, step: int, group, xp) -> None:
    """Adam on the entries ``p[idx]`` only; ``idx`` holds unique COO indices (ndim, nnz)."""
    beta1, beta2 = group["betas"]
    lr = float(group["lr"])
    if vals.size == 0:
        return
    where = tuple(idx)
    old_m, old_v = m[where], v[where]
    dm = (vals - old_m) * (1 - beta1)
    dv = (vals * vals - old_v) * (1 - beta2)
    m[where] += dm
    v[where] += dv
    numer = dm + old_m
    denom = xp.sqrt(dv + old_v) + group["eps"]
    size = lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    p[where] += -size * (numer / denom)


class SparseAdam(Optimizer):
    r"""Lazy Adam for sparse gradients (``nn.Embedding(sparse=True)``), as PyTorch's.

    On the nonzero entries only: m ← m + (1-β₁)(g - m);  v ← v + (1-β₂)(g² - v);
    θ ← θ - γ √(1-β₂ᵗ)/(1-β₁ᵗ) · m / (√v + ε). Dense gradients are refused.
    """

    # why ``ember.compile`` runs ``step`` eagerly (a graph break's reason; PyTorch's compile
    # skips SparseAdam.step too: "optimizer ... step not supported")
    _compile_reason = ("its gradients are sparse: the entries it updates, and their number, "
                       "depend on the data")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, maximize=maximize))
        sparse, complex_ = [], []
        for i, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                if getattr(p, "is_sparse", False):
                    sparse.append([i, j])
                if p.is_complex():
                    complex_.append([i, j])
        if sparse:
            raise ValueError(f"Sparse params at indices {sparse}: SparseAdam requires dense "
                             "parameter tensors")
        if complex_:
            raise ValueError(f"Complex params at indices {complex_}: SparseAdam does not "
                             "support complex parameters")

    def _step_group(self, group):
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if not getattr(grad, "is_sparse", False):
                raise RuntimeError("SparseAdam does not support dense gradients, please "
                                   "consider Adam instead")
            state = self.state.get(p)
            if not state:
                xp = xp_of(p._data)
                state = {"step": 0, "exp_avg": _make(xp.zeros_like(p._data)),
                         "exp_avg_sq": _make(xp.zeros_like(p._data))}
                self.state[p] = state
            state["step"] += 1
            if group["maximize"]:
                grad = -grad
            idx, vals = _sparse_parts(grad)
            sparse_adam_update(p._data, idx, vals, state["exp_avg"]._data,
                               state["exp_avg_sq"]._data, state["step"], group,
                               xp_of(p._data))
            _version_counter(p)[0] += 1
