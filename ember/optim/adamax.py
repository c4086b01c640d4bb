"""Adamax (Kingma & Ba, 2014): Adam with the infinity norm."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import check_betas, decayed_grad, lerp_, step_tensor
from .optimizer import Optimizer

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax as PyTorch implements it (single-tensor path).

    g ← g + λθ;  m ← lerp(m, g, 1-β₁);  u ← max(β₂u, |g| + ε);  θ ← θ - γ/(1-β₁ᵗ) · m/u
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        check_betas(lr, eps, betas, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._group_setdefaults(foreach=None, maximize=False, differentiable=False,
                                capturable=False)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["exp_avg"] = _make(xp.zeros_like(p._data))
        state["exp_inf"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        beta1, beta2 = group["betas"]
        wd = group["weight_decay"]
        step = state["step"]._data
        step += 1
        if wd != 0:
            g = decayed_grad(p, g, wd, xp)
        m, u = state["exp_avg"]._data, state["exp_inf"]._data
        tmp = xp.empty_like(p)
        lerp_(m, g, 1 - beta1, tmp, xp)
        u *= beta2
        xp.abs(g, out=tmp)
        tmp += group["eps"]
        xp.maximum(u, tmp, out=u)
        xp.divide(m, u, out=tmp)
        tmp *= -(float(group["lr"]) / (1 - beta1 ** float(step)))
        p += tmp
