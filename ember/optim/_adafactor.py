"""Adafactor (Shazeer & Stern, 2018): Adam-like steps from a factored second moment."""
from __future__ import annotations

import math

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import step_tensor, lerp_
from .optimizer import Optimizer

__all__ = ["Adafactor"]


class Adafactor(Optimizer):
    r"""Adafactor as PyTorch implements it (single-tensor path, no first moment).

    β̂₂ = 1 - t^c (c = beta2_decay);  ρ = min(γ, 1/√t);  α = max(ε₂, RMS(θ))·ρ;
    θ ← θ(1 - γλ);  for a matrix: R ← lerp(R, mean_cols(g²), 1-β̂₂), C ← lerp(C, mean_rows(g²),
    1-β̂₂), v̂ = RC / mean(R); for a vector v ← lerp(v, g², 1-β̂₂), v̂ = v;
    u = g / √max(v̂, ε₁²);  θ ← θ - α u / max(1, RMS(u)/d)
    """

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, foreach=None, maximize=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)

    def _init_state(self, p, state, group):
        if p.is_complex():
            raise RuntimeError("Adafactor does not support complex parameters")
        a = p._data
        xp = xp_of(a)
        state["step"] = step_tensor(xp)
        if a.ndim > 1:
            state["row_var"] = _make(xp.zeros(a.shape[:-1] + (1,), a.dtype))
            state["col_var"] = _make(xp.zeros(a.shape[:-2] + (1, a.shape[-1]), a.dtype))
        else:
            state["variance"] = _make(xp.zeros_like(a))

    def _update(self, p, g, state, group, xp):
        lr, wd, d = float(group["lr"]), group["weight_decay"], group["d"]
        eps1, eps2 = group["eps"]
        if eps1 is None:
            eps1 = float(xp.finfo(p.dtype).eps)
        step = state["step"]._data
        step += 1
        t = float(step)
        w = t ** group["beta2_decay"]  # 1 - β̂₂
        rho = min(lr, 1 / t ** 0.5)
        alpha = max(eps2, float(xp.linalg.norm(p.reshape(-1))) / math.sqrt(p.size)) * rho
        if wd != 0:
            p *= 1 - lr * wd
        g2 = g * g
        if g.ndim > 1:
            row, col = state["row_var"]._data, state["col_var"]._data
            lerp_(row, g2.sum(-1, keepdims=True) / g.shape[-1], w, xp.empty_like(row), xp)
            lerp_(col, g2.sum(-2, keepdims=True) / g.shape[-2], w, xp.empty_like(col), xp)
            var = xp.matmul(row, col)
            var /= xp.maximum(row.mean(-2, keepdims=True), eps1)
        else:
            v = state["variance"]._data
            lerp_(v, g2, w, xp.empty_like(v), xp)
            var = v.copy()
        update = g / xp.sqrt(xp.maximum(var, eps1 * eps1))
        denom = max(1.0, float(xp.linalg.norm(update.reshape(-1))) /
                    (math.sqrt(update.size) * d))
        p += update * (-alpha / denom)
