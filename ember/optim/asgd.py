"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky, 1992)."""
from __future__ import annotations

from .._tensor import _make
from .._backend import xp_of
from .optimizer import Optimizer
from .adam import step_tensor

__all__ = ["ASGD"]


class ASGD(Optimizer):
    r"""ASGD as PyTorch implements it.

    θ ← θ(1 - λη) - ηg;  ā ← ā + μ(θ - ā);  η = γ/(1 + λγt)^α;  μ = 1/max(1, t - t₀).
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0,
                 foreach=None, maximize=False, differentiable=False, capturable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        foreach=foreach, maximize=maximize, differentiable=differentiable,
                        capturable=capturable)
        super().__init__(params, defaults)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["eta"] = step_tensor(xp, group["lr"])
        state["mu"] = step_tensor(xp, 1.0)
        state["ax"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        lr, lambd, wd = group["lr"], group["lambd"], group["weight_decay"]
        step_t = state["step"]._data
        step_t += 1
        if wd != 0:
            g = g + wd * p
        eta = state["eta"]._data
        mu = state["mu"]._data
        eta_value = float(eta)
        p *= 1 - lambd * eta_value
        p += -eta_value * g
        ax = state["ax"]._data
        if float(mu) != 1:
            ax += (p - ax) * mu
        else:
            ax[...] = p
        step = float(step_t)
        # eta and mu are float32 tensors in PyTorch: round the new values the same way
        eta[...] = lr / ((1 + lambd * lr * step) ** group["alpha"])
        mu[...] = 1 / max(1, step - group["t0"])
