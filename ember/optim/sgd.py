"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .._tensor import _make
from .optimizer import Optimizer, required


class SGD(Optimizer):
    r"""SGD as PyTorch documents it.

    g ← g + λθ;  b ← μb + (1-τ)g  (b₁ = g);  g ← g + μb if nesterov else b;  θ ← θ - γg
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _update(self, p, g, state, group, xp):
        wd, mom = group["weight_decay"], group["momentum"]
        if wd != 0:
            # out= keeps a 0-d result an array (a ufunc alone returns a NumPy scalar)
            g = xp.add(g, xp.multiply(p, wd), out=xp.empty_like(p))
        if mom != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = _make(g.copy())
            else:
                b = buf._data
                b *= mom
                b += (1 - group["dampening"]) * g
            if group["nesterov"]:
                g = xp.add(g, xp.multiply(buf._data, mom), out=xp.empty_like(p))
            else:
                g = buf._data
        p -= group["lr"] * g
