"""Adadelta (Zeiler, 2012)."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import decayed_grad, step_tensor
from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta as PyTorch implements it (single-tensor path).

    g ← g + λθ;  v ← ρv + (1-ρ)g²;  δ = √(u + ε) / √(v + ε) · g;  u ← ρu + (1-ρ)δ²;  θ ← θ - γδ
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        self._group_setdefaults(foreach=None, maximize=False, differentiable=False,
                                capturable=False)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["square_avg"] = _make(xp.zeros_like(p._data))
        state["acc_delta"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        rho, eps, wd = group["rho"], group["eps"], group["weight_decay"]
        state["step"]._data += 1
        if wd != 0:
            g = decayed_grad(p, g, wd, xp)
        v, u = state["square_avg"]._data, state["acc_delta"]._data
        std = xp.multiply(g, g, out=xp.empty_like(p))
        std *= 1 - rho
        v *= rho
        v += std
        xp.add(v, eps, out=std)
        xp.sqrt(std, out=std)
        delta = xp.add(u, eps, out=xp.empty_like(p))
        xp.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        xp.multiply(delta, delta, out=std)
        std *= 1 - rho
        u *= rho
        u += std
        delta *= -float(group["lr"])
        p += delta
