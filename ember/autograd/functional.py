"""``autograd.functional``: Jacobians, Hessians and their products built on ``autograd.grad``.

Each function runs ``func`` on fresh leaves (views of the inputs when ``create_graph``, so
the result stays differentiable in the caller's graph), then takes reverse-mode gradients.
Forward-mode products (``jvp``, ``hvp``) use the double-vjp trick: the vjp ``uᵀJ`` with a
dummy ``u`` that requires grad is linear in ``u``, so its vjp with ``v`` is ``J v``.
Tuple-ness of inputs and outputs is kept as in PyTorch: a lone Tensor in, a lone Tensor out.
"""
from __future__ import annotations

from contextlib import nullcontext

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(inp, arg_name: str, fn_name: str):
    """``(was_tuple, tuple_of_tensors)``, refusing anything but Tensors as PyTorch does."""
    from .._tensor import Tensor
    is_tuple = isinstance(inp, tuple)
    items = inp if is_tuple else (inp,)
    for i, el in enumerate(items):
        if not isinstance(el, Tensor):
            where = f"value at index {i}" if is_tuple else f"given {arg_name}"
            raise TypeError(f"The {arg_name} given to {fn_name} must be either a Tensor or a "
                            f"tuple of Tensors but the {where} has type {type(el)}.")
    return is_tuple, items


def _leaves(inputs, create_graph: bool, need_graph: bool):
    """Fresh differentiable stand-ins for ``inputs`` (views keep the caller's graph)."""
    return tuple(t.view_as(t) if create_graph and t.requires_grad
                 else t.detach().requires_grad_(need_graph) for t in inputs)


def _finish(tensors, create_graph: bool):
    """Detach results unless the caller asked for a graph (nested tuples allowed)."""
    from .._tensor import Tensor
    if create_graph:
        return tensors
    return tuple(t.detach() if isinstance(t, Tensor) else _finish(t, False) for t in tensors)


def _unpack(res, is_tuple):
    return res if is_tuple else res[0]


def _check_v(v, other, is_other_tuple: bool, create_graph: bool, fn: str):
    _, v = _as_tuple(v, "v", fn)
    v = _leaves(v, create_graph, False)
    if len(v) != len(other):
        if is_other_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got "
                               f"{len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (a, b) in enumerate(zip(v, other)):
        if a.shape != b.shape:
            pre = f"Entry {i} in " if is_other_tuple else ""
            raise RuntimeError(f"{pre}v has invalid size: should be {b.shape} but got "
                               f"{a.shape}.")
    return v


def _need_scalar_input(inputs, fn_is_output: bool) -> None:
    """``v=None`` stands for ``1`` only when the relevant side is one single-element Tensor."""
    if len(inputs) != 1 or inputs[0].nelement() != 1:
        what = ("user-provided function returns a single Tensor with a single element."
                if fn_is_output else
                "input to the user-provided function is a single Tensor with a single element.")
        raise RuntimeError(f"The vector v can only be None if the {what}")


_STRICT_MSG = {
    "outputs": ("Output {i} of the user-provided function does not require gradients. The "
                "outputs must be computed in a differentiable manner from the input when "
                "running in strict mode."),
    "grad_inputs": ("The gradient with respect to input {i} is independent of the inputs of "
                    "the user-provided function. This is not allowed in strict mode."),
    "jacobian": ("While computing the hessian, found that the jacobian of the user-provided "
                 "function with respect to input {i} is independent of the input. This is not "
                 "allowed in strict mode. You should ensure that your function is twice "
                 "differentiable and that the jacobian depends on the inputs (this would be "
                 "violated by a linear function for example)."),
    "hessian": ("The hessian of the user-provided function with respect to input {i} is "
                "independent of the input. This is not allowed in strict mode. You should "
                "ensure that your function is thrice differentiable and that the hessian "
                "depends on the inputs."),
}


def _strict_requires_grad(tensors, kind: str, strict: bool) -> None:
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(f"The output of the user-provided function is independent of "
                               f"input {i}. This is not allowed in strict mode.")
        if not t.requires_grad:
            raise RuntimeError(_STRICT_MSG[kind].format(i=i))


def _grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """``autograd.grad`` over the outputs that require grad; ``None`` for unreached inputs."""
    from . import grad
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    outs, gs = zip(*pairs)
    return grad(outs, inputs, gs, allow_unused=True, create_graph=create_graph,
                retain_graph=retain_graph)


_ZERO_MSG = {
    "back": "The output of the user-provided function is independent of input {i}. This is not "
            "allowed in strict mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the "
                  "grad_outputs when using the double backward trick to compute forward mode "
                  "gradients. This is not allowed in strict mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. "
                   "This is not allowed in strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry {i} "
                         "in the grad_jacobian. This is not allowed in strict mode as it "
                         "prevents from using the double backward trick to replace forward mode "
                         "AD.",
}


def _zeros_for_none(grads, refs, strict: bool, create_graph: bool, stage: str):
    """Replace unreached gradients by zeros (strict mode refuses them, as PyTorch)."""
    from .. import zeros_like
    res = []
    for i, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(_ZERO_MSG[stage].format(i=i))
            g = zeros_like(ref)
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise RuntimeError(f"The {what} of the user-provided function is independent of "
                               f"input {i}. This is not allowed in strict mode when "
                               "create_graph=True.")
        res.append(g)
    return tuple(res)


def _run(func, inputs, fn: str, create_graph: bool, strict: bool):
    """Prepare leaves and call ``func``: ``(is_in_tuple, leaves, is_out_tuple, outputs)``."""
    is_in_tuple, inputs = _as_tuple(inputs, "inputs", fn)
    leaves = _leaves(inputs, create_graph, True)
    is_out_tuple, outputs = _as_tuple(func(*leaves), "outputs of the user-provided function", fn)
    _strict_requires_grad(outputs, "outputs", strict)
    return is_in_tuple, leaves, is_out_tuple, outputs


def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), vᵀ·J)``: vector-Jacobian product (``torch.autograd.functional.vjp``)."""
    from .grad_mode import enable_grad, set_grad_enabled, is_grad_enabled
    with enable_grad():
        is_in_tuple, inputs, is_out_tuple, outputs = _run(func, inputs, "vjp", create_graph,
                                                          strict)
        if v is not None:
            v = _check_v(v, outputs, is_out_tuple, create_graph, "vjp")
        else:
            _need_scalar_input(outputs, True)
    with set_grad_enabled(create_graph or is_grad_enabled()):
        res = _grad(outputs, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "back")
    return (_unpack(_finish(outputs, create_graph), is_out_tuple),
            _unpack(_finish(res, create_graph), is_in_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J·v)`` by the double-vjp trick (``torch.autograd.functional.jvp``)."""
    from .grad_mode import enable_grad, set_grad_enabled
    from .. import zeros_like
    with enable_grad():
        is_in_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _leaves(inputs, create_graph, True)
        if v is not None:
            v = _check_v(v, inputs, is_in_tuple, create_graph, "jvp")
        else:
            _need_scalar_input(inputs, False)
        is_out_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function",
                                          "jvp")
        _strict_requires_grad(outputs, "outputs", strict)
        # uᵀJ is linear in the dummy u, so d(uᵀJ·v)/du = J v
        dummies = tuple(zeros_like(o, requires_grad=True) for o in outputs)
        g_in = _grad(outputs, inputs, dummies, create_graph=True)
        _strict_requires_grad(g_in, "grad_inputs", strict)
    with set_grad_enabled(True) if create_graph else nullcontext():
        res = _grad(g_in, dummies, v, create_graph=create_graph)
        res = _zeros_for_none(res, outputs, strict, create_graph, "back_trick")
    return (_unpack(_finish(outputs, create_graph), is_out_tuple),
            _unpack(_finish(res, create_graph), is_out_tuple))


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """``∂func/∂inputs``: one row of vjps per output element (``torch.autograd.functional``).

    ``vectorize`` is accepted and computes the same rows; ``strategy="forward-mode"`` gives
    the same Jacobian (both are built from reverse-mode vjps here).
    """
    from .grad_mode import enable_grad
    from .. import stack, zeros_like
    if strategy not in ("forward-mode", "reverse-mode"):
        raise AssertionError('Expected strategy to be either "forward-mode" or "reverse-mode". '
                             'Hint: If your function has more outputs than inputs, '
                             '"forward-mode" tends to be more performant. Otherwise, prefer to '
                             'use "reverse-mode".')
    if strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(
                "torch.autograd.functional.jacobian: `create_graph=True` and "
                '`strategy="forward-mode"` are not supported together (yet). Please either '
                'set `create_graph=False` or `strategy="reverse-mode"`.')
        if strict:
            raise RuntimeError(
                "torch.autograd.functional.jacobian: `strict=True` and "
                '`strategy="forward-mode"` are not supported together (yet). Please either '
                'set `strict=False` or `strategy="reverse-mode"`.')
        if not vectorize:
            raise NotImplementedError("Computing Jacobian using forward-AD or forward-over-"
                                      "reverse Hessian isonly implemented for `vectorize=True`.")
    if vectorize and strict:
        raise RuntimeError("torch.autograd.functional.jacobian: `strict=True` and "
                           "`vectorized=True` are not supported together. Please either set "
                           "`strict=False` or `vectorize=False`.")
    with enable_grad():
        is_in_tuple, inputs, is_out_tuple, outputs = _run(func, inputs, "jacobian",
                                                          create_graph, strict)
        jac = []
        for i, out in enumerate(outputs):
            rows = [[] for _ in inputs]
            flat = out.reshape(-1)
            for k in range(out.nelement()):
                gs = _grad((flat[k],), inputs, retain_graph=True, create_graph=create_graph)
                for j, g in enumerate(gs):
                    if g is None:
                        if strict:
                            raise RuntimeError(f"Output {i} of the user-provided function is "
                                               f"independent of input {j}. This is not allowed "
                                               "in strict mode.")
                        g = zeros_like(inputs[j])
                    elif strict and create_graph and not g.requires_grad:
                        raise RuntimeError(f"The jacobian of the user-provided function is "
                                           f"independent of input {i}. This is not allowed in "
                                           "strict mode when create_graph=True.")
                    rows[j].append(g)
            jac.append(tuple(
                (stack(r) if r else zeros_like(inputs[j]).reshape((0,) + tuple(inputs[j].shape)))
                .reshape(tuple(out.shape) + tuple(inputs[j].shape))
                for j, r in enumerate(rows)))
    jac = _finish(tuple(jac), create_graph)
    if not is_in_tuple:
        jac = tuple(row[0] for row in jac)
    return _unpack(jac, is_out_tuple)


def _single_scalar(out, fn: str) -> None:
    from .._tensor import Tensor
    if isinstance(out, tuple) or not isinstance(out, Tensor):
        raise RuntimeError(f"The function given to {fn} should return a single Tensor")
    if out.nelement() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn} should contain a "
                           "single element")


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """``∂²func/∂inputs²`` of a scalar ``func``: the Jacobian of its gradient."""
    is_in_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    if outer_jacobian_strategy not in ("forward-mode", "reverse-mode"):
        raise AssertionError('Expected strategy to be either "forward-mode" or "reverse-mode".')

    def scalar_func(*inp):
        out = func(*inp)
        _, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _strict_requires_grad(outs, "outputs", strict)
        _single_scalar(out, "hessian")
        return out.squeeze()

    def grad_func(*inp):
        g = jacobian(scalar_func, inp, create_graph=True)
        _strict_requires_grad(g, "jacobian", strict)
        return g

    res = jacobian(grad_func, inputs, create_graph=create_graph, strict=strict,
                   vectorize=vectorize)
    if not is_in_tuple:  # rows and columns both lose their tuple
        return res[0][0]
    return res


def _scalar_and_grad(func, inputs, v, fn: str, create_graph: bool, strict: bool):
    """Shared start of vhp/hvp: leaves, checked ``v``, the scalar output and its gradient."""
    is_in_tuple, inputs = _as_tuple(inputs, "inputs", fn)
    inputs = _leaves(inputs, create_graph, True)
    if v is not None:
        v = _check_v(v, inputs, is_in_tuple, create_graph, fn)
    else:
        _need_scalar_input(inputs, False)
    out = func(*inputs)
    is_out_tuple, outputs = _as_tuple(out, "outputs of the user-provided function", fn)
    _strict_requires_grad(outputs, "outputs", strict)
    _single_scalar(out, fn)
    jac = _grad(outputs, inputs, create_graph=True)
    _strict_requires_grad(jac, "jacobian", strict)
    return is_in_tuple, inputs, v, outputs, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), vᵀ·H)`` for a scalar ``func`` (``torch.autograd.functional.vhp``)."""
    from .grad_mode import enable_grad, set_grad_enabled, is_grad_enabled
    with enable_grad():
        is_in_tuple, inputs, v, outputs, jac = _scalar_and_grad(func, inputs, v, "vhp",
                                                                create_graph, strict)
    with set_grad_enabled(create_graph or is_grad_enabled()):
        res = _grad(jac, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back")
    return _finish(outputs, create_graph)[0], _unpack(_finish(res, create_graph), is_in_tuple)


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H·v)`` by the double-vjp trick (``torch.autograd.functional.hvp``)."""
    from .grad_mode import enable_grad, set_grad_enabled, is_grad_enabled
    from .. import zeros_like
    with enable_grad():
        is_in_tuple, inputs, v, outputs, jac = _scalar_and_grad(func, inputs, v, "hvp",
                                                                create_graph, strict)
        dummies = tuple(zeros_like(t, requires_grad=True) for t in inputs)
        back = _grad(jac, inputs, dummies, create_graph=True)
        _strict_requires_grad(jac, "hessian", strict)
    with set_grad_enabled(create_graph or is_grad_enabled()):
        res = _grad(back, dummies, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back_trick")
    return _finish(outputs, create_graph)[0], _unpack(_finish(res, create_graph), is_in_tuple)
