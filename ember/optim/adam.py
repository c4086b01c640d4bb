"""Adam (Kingma & Ba, 2014) with L2 or decoupled weight decay and AMSGrad."""
from __future__ import annotations

from .._tensor import Tensor, _make
from .._backend import xp_of
from .. import _dtype
from .optimizer import Optimizer

__all__ = ["Adam"]


def step_tensor(xp, value: float = 0.0) -> Tensor:
    """PyTorch's 0-d ``step`` state: float32, or float64 when that is the default dtype."""
    dt = xp.float64 if _dtype.get_default_dtype() is _dtype.float64 else xp.float32
    return _make(xp.asarray(value, dtype=dt))


def lerp_(a, b, w: float, tmp, xp) -> None:
    """``a ← a + w(b - a)`` in place (``tmp`` is scratch), with PyTorch's two-sided formula."""
    xp.subtract(b, a, out=tmp)
    if w < 0.5:
        tmp *= w
        a += tmp
    else:
        # PyTorch's CPU lerp uses b - (b - a)(1 - w) for large weights
        tmp *= w - 1
        xp.add(b, tmp, out=a)


def decayed_grad(p, g, wd: float, xp):
    """``g + wd·p`` as a new array (PyTorch's ``grad.add(param, alpha=wd)``)."""
    out = xp.multiply(p, wd, out=xp.empty_like(p))
    out += g
    return out


def check_betas(lr, eps, betas, weight_decay) -> None:
    """PyTorch's argument checks shared by the Adam family."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def check_fused(fused, foreach, differentiable) -> None:
    """PyTorch's checks of the (here ignored) ``fused`` flag."""
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


class Adam(Optimizer):
    r"""Adam as PyTorch implements it (single-tensor path).

    g ← g + λθ (or θ ← θ(1 - γλ) if decoupled);  m ← lerp(m, g, 1-β₁);  v ← β₂v + (1-β₂)g²;
    v̂ ← max(v̂, v) if amsgrad;  θ ← θ - γ/(1-β₁ᵗ) · m / (√v̂ / √(1-β₂ᵗ) + ε)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        check_betas(lr, eps, betas, weight_decay)
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)
                or isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)):
            raise ValueError("betas must be either both floats or both Tensors")
        for i, b in enumerate(betas):
            if isinstance(b, Tensor) and b.numel() != 1:
                raise ValueError(f"Tensor betas[{i}] must be 1-element")
        betas = tuple(b.reshape(()) if isinstance(b, Tensor) else b for b in betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        check_fused(fused, foreach, differentiable)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)

    def _init_state(self, p, state, group):
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["exp_avg"] = _make(xp.zeros_like(p._data))
        state["exp_avg_sq"] = _make(xp.zeros_like(p._data))
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        beta1, beta2 = group["betas"]
        if not isinstance(beta1, float):  # 0-d Tensor betas
            beta1, beta2 = float(beta1), float(beta2)
        lr, wd = float(group["lr"]), group["weight_decay"]
        step = state["step"]._data
        step += 1
        t = float(step)
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p *= 1 - lr * wd
            else:
                g = decayed_grad(p, g, wd, xp)
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        tmp = xp.empty_like(p)
        lerp_(m, g, 1 - beta1, tmp, xp)
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - beta2
        v *= beta2
        v += tmp
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]._data
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        # denom = √v / √(1-β₂ᵗ) + ε;  θ ← θ - γ/(1-β₁ᵗ) · m / denom
        xp.sqrt(v, out=tmp)
        tmp /= (1 - beta2 ** t) ** 0.5
        tmp += group["eps"]
        xp.divide(m, tmp, out=tmp)
        tmp *= -(lr / (1 - beta1 ** t))
        p += tmp
