"""Adagrad (Duchi et al., 2011) with learning-rate decay."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import check_fused, decayed_grad, step_tensor
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad as PyTorch implements it (single-tensor path).

    g ← g + λθ;  γ̃ = γ / (1 + (t-1)η);  s ← s + g²;  θ ← θ - γ̃ g / (√s + ε)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        check_fused(fused, foreach, differentiable)
        # PyTorch creates the state at construction, from the constructor's accumulator value
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, self.state[p], group)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["sum"] = _make(xp.full_like(p._data, self.defaults["initial_accumulator_value"]))

    def _update(self, p, g, state, group, xp):
        step = state["step"]._data
        step += 1
        wd = group["weight_decay"]
        if wd != 0:
            g = decayed_grad(p, g, wd, xp)
        clr = float(group["lr"]) / (1 + (float(step) - 1) * group["lr_decay"])
        s = state["sum"]._data
        tmp = xp.multiply(g, g, out=xp.empty_like(p))
        s += tmp
        xp.sqrt(s, out=tmp)
        tmp += group["eps"]
        xp.divide(g, tmp, out=tmp)
        tmp *= -clr
        p += tmp
