"""RMSprop (Hinton) with optional centering, momentum and weight decay."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import decayed_grad, lerp_, step_tensor
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop as PyTorch implements it (single-tensor path).

    g ← g + λθ;  v ← αv + (1-α)g²;  ḡ ← lerp(ḡ, g, 1-α) and ṽ = v - ḡ² if centered;
    a = √ṽ + ε;  b ← μb + g/a, θ ← θ - γb if momentum, else θ ← θ - γ g/a
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["square_avg"] = _make(xp.zeros_like(p._data))
        if group["momentum"] > 0:
            state["momentum_buffer"] = _make(xp.zeros_like(p._data))
        if group["centered"]:
            state["grad_avg"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        alpha, wd, mom = group["alpha"], group["weight_decay"], group["momentum"]
        lr = float(group["lr"])
        state["step"]._data += 1
        if wd != 0:
            g = decayed_grad(p, g, wd, xp)
        sq = state["square_avg"]._data
        tmp = xp.multiply(g, g, out=xp.empty_like(p))
        tmp *= 1 - alpha
        sq *= alpha
        sq += tmp
        if group["centered"]:
            ga = state["grad_avg"]._data
            lerp_(ga, g, 1 - alpha, tmp, xp)
            xp.multiply(ga, ga, out=tmp)
            xp.subtract(sq, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(sq, out=tmp)
        tmp += group["eps"]
        xp.divide(g, tmp, out=tmp)
        if mom > 0:
            buf = state["momentum_buffer"]._data
            buf *= mom
            buf += tmp
            xp.multiply(buf, -lr, out=tmp)
        else:
            tmp *= -lr
        p += tmp
