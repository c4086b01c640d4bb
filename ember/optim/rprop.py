"""Rprop: resilient back-propagation (Riedmiller & Braun, 1993)."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .adam import step_tensor
from .optimizer import Optimizer

__all__ = ["Rprop"]


class Rprop(Optimizer):
    r"""Rprop as PyTorch implements it (single-tensor path).

    s = sign(g·g_prev);  η ← clamp(η·(η₊ if s > 0, η₋ if s < 0, 1 if s = 0), η_min, η_max);
    g ← 0 where s < 0;  θ ← θ - sign(g)·η;  g_prev ← g
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["prev"] = _make(xp.zeros_like(p._data))
        lr = float(group["lr"])
        # a complex parameter is two real ones (PyTorch): the imaginary part gets lr too
        state["step_size"] = _make(xp.full_like(p._data, complex(lr, lr) if p.is_complex()
                                                else lr))

    def _update(self, p, g, state, group, xp):
        eta_minus, eta_plus = group["etas"]
        lo, hi = group["step_sizes"]
        state["step"]._data += 1
        prev, size = state["prev"]._data, state["step_size"]._data
        prod = g * prev
        # the masks stand for PyTorch's sign.gt(0)/lt(0)/eq(0) rewrites of the sign tensor
        up, down = prod > 0, prod < 0
        factor = xp.ones_like(size)
        factor[up] = eta_plus
        factor[down] = eta_minus
        size *= factor
        xp.clip(size, lo, hi, out=size)
        g = g.copy()
        g[down] = 0  # after a sign change the step is skipped and the change forgotten
        p -= xp.sign(g) * size
        prev[...] = g
