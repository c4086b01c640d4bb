"""``autograd.functional``: Jacobians, Hessians and products built on ``autograd.grad``."""
from __future__ import annotations


def _tuple(x):
    from .._tensor import Tensor
    return (x,) if isinstance(x, Tensor) else tuple(x)


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), vᵀ·J)``."""
    from . import grad
    single = not isinstance(inputs, (tuple, list))
    ins = tuple(x.detach().requires_grad_() for x in _tuple(inputs))
    out = func(*ins)
    gs = grad(out, ins, v, create_graph=create_graph, allow_unused=True, materialize_grads=True)
    return out.detach() if not create_graph else out, gs[0] if single else gs


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs`` (one output tensor; one or many inputs)."""
    from . import grad
    from .. import stack, zeros_like
    single = not isinstance(inputs, (tuple, list))
    ins = tuple(x.detach().requires_grad_() for x in _tuple(inputs))
    out = func(*ins)
    flat = out.reshape(-1)
    rows = [[] for _ in ins]
    for k in range(flat.shape[0]):
        gs = grad(flat[k], ins, retain_graph=True, create_graph=create_graph, allow_unused=True)
        for n, g in enumerate(gs):
            rows[n].append(g if g is not None else zeros_like(ins[n]))
    jac = tuple(stack(r).reshape(tuple(out.shape) + tuple(ins[n].shape))
                for n, r in enumerate(rows))
    return jac[0] if single else jac


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of a scalar ``func`` at ``inputs`` (single input)."""
    from . import grad

    def g(x):
        return grad(func(x), x, create_graph=True)[0]
    return jacobian(g, inputs, create_graph=create_graph)
