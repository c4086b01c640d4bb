"""NAdam: Adam with Nesterov momentum and a momentum-decay schedule (Dozat, 2016)."""
from __future__ import annotations

from .._tensor import _make
from .._backend import xp_of
from .optimizer import Optimizer
from .adam import check_betas, decayed_grad, lerp_, step_tensor

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam as PyTorch implements it.

    μₜ = β₁(1 - ½·0.96^{tψ});  θ ← θ - γ(1-μₜ)/(1-Πμ) · g/d - γμₜ₊₁/(1-Πμ·μₜ₊₁) · m/d,
    with d = √(v/(1-β₂ᵗ)) + ε.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        check_betas(lr, eps, betas, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["mu_product"] = step_tensor(xp, 1.0)
        state["exp_avg"] = _make(xp.zeros_like(p._data))
        state["exp_avg_sq"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        psi = group["momentum_decay"]
        step_t = state["step"]._data
        step_t += 1
        step = float(step_t)
        bias_correction2 = 1 - beta2 ** step
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                g = decayed_grad(p, g, wd, xp)
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        # the product lives in a float32 (scalar-dtype) tensor, as PyTorch keeps it
        mu_product = state["mu_product"]._data
        mu_product *= mu
        mu_prod = float(mu_product)
        mu_product_next = mu_prod * mu_next
        exp_avg = state["exp_avg"]._data
        exp_avg_sq = state["exp_avg_sq"]._data
        lerp_(exp_avg, g, 1 - beta1, xp.empty_like(p), xp)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g
        denom = xp.sqrt(exp_avg_sq / bias_correction2)
        denom += eps
        p += (-lr * (1.0 - mu) / (1.0 - mu_prod)) * (g / denom)
        p += ((-lr * mu_next) / (1.0 - mu_product_next)) * (exp_avg / denom)
