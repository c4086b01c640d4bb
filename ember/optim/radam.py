"""RAdam: Adam with a rectified adaptive learning rate (Liu et al., 2019)."""
from __future__ import annotations

from .._tensor import _make
from .._backend import xp_of
from .optimizer import Optimizer
from .adam import check_betas, decayed_grad, lerp_, step_tensor

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam as PyTorch implements it.

    ρ∞ = 2/(1-β₂) - 1;  ρₜ = ρ∞ - 2tβ₂ᵗ/(1-β₂ᵗ);  if ρₜ > 5:
    θ ← θ - γ·m̂·√(1-β₂ᵗ)/(√v + ε)·rₜ with rₜ = √((ρₜ-4)(ρₜ-2)ρ∞ / ((ρ∞-4)(ρ∞-2)ρₜ)),
    else θ ← θ - γ·m̂.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        check_betas(lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["exp_avg"] = _make(xp.zeros_like(p._data))
        state["exp_avg_sq"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                g = decayed_grad(p, g, wd, xp)
        exp_avg = state["exp_avg"]._data
        exp_avg_sq = state["exp_avg_sq"]._data
        lerp_(exp_avg, g, 1 - beta1, xp.empty_like(p), xp)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        bias_corrected_exp_avg = exp_avg / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            # the variance is tractable: rectified adaptive step
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            sq = xp.sqrt(exp_avg_sq)
            sq += eps
            adaptive_lr = (bias_correction2 ** 0.5) / sq
            p -= bias_corrected_exp_avg * lr * adaptive_lr * rect
        else:
            # too few steps for a variance estimate: plain momentum SGD
            p -= bias_corrected_exp_avg * lr
