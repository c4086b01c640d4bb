"""``grad``, ``grad_and_value``, ``vjp``, ``jvp``, ``jacrev``, ``jacfwd``, ``hessian`` on
ember's reverse-mode autograd.

Each transform calls ``func`` on fresh leaves standing for the differentiated arguments and
runs ``autograd.grad`` on the result. A leaf is a view of its argument when the caller may
differentiate the result again (the argument requires grad, or we are inside another
transform), so the gradient keeps its graph back to the caller; otherwise it is a detached
copy and the gradient is a plain tensor. Forward mode (``jvp``, ``jacfwd``) is the double-vjp
trick: ``u ↦ uᵀJ`` is linear in a dummy ``u``, so differentiating it along ``v`` gives ``J v``.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

from ..utils._pytree import tree_flatten, tree_unflatten, tree_map

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian"]

_depth = [0]  # how many transforms are running around the current call of ``func``


@contextmanager
def _nested():
    from ..autograd.grad_mode import enable_grad
    _depth[0] += 1
    try:
        with enable_grad():
            yield
    finally:
        _depth[0] -= 1


def _keep_graph(*trees) -> bool:
    """Whether results must stay differentiable: inside a transform, or inputs need grad."""
    from .._tensor import Tensor
    from ..autograd.grad_mode import is_grad_enabled
    if not is_grad_enabled():
        return False
    if _depth[0] > 0:
        return True
    return any(isinstance(x, Tensor) and x.requires_grad for t in trees
               for x in tree_flatten(t)[0])


def _leaf(x, keep: bool):
    from .._tensor import Tensor
    if not isinstance(x, Tensor):
        raise ValueError(f"Thing passed to transform API must be Tensor, got {type(x)}")
    if keep and x.requires_grad:
        return x.view_as(x)
    return x.detach().requires_grad_()


def _wrap_argnum(a, n: int) -> int:
    if not isinstance(a, int):
        raise RuntimeError(f"argnum must be int, got: {type(a)}")
    if 0 <= a < n:
        return a
    if -n <= a < 0:
        return a + n
    raise RuntimeError(f"Got argnum={a}, but only {n} positional inputs")


def _argnums(argnums, n: int):
    """Validated argnums: an int or a non-empty tuple of distinct ints."""
    if isinstance(argnums, int):
        return _wrap_argnum(argnums, n)
    if not isinstance(argnums, tuple):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    nums = tuple(_wrap_argnum(a, n) for a in argnums)
    if len(nums) == 0:
        raise RuntimeError("argnums must be non-empty")
    if len(set(nums)) != len(nums):
        raise RuntimeError(f"argnums elements must be unique, got {argnums}")
    return nums


def _diff_args(args, argnums, keep: bool):
    """``(new_args, diff, flat_leaves, spec)``: args with the differentiated ones made leaves."""
    nums = _argnums(argnums, len(args))
    diff = args[nums] if isinstance(nums, int) else tuple(args[i] for i in nums)
    flat, spec = tree_flatten(diff)
    leaves = [_leaf(x, keep) for x in flat]
    new_diff = tree_unflatten(leaves, spec)
    args = list(args)
    if isinstance(nums, int):
        args[nums] = new_diff
    else:
        for i, v in zip(nums, new_diff):
            args[i] = v
    return tuple(args), leaves, spec


def _grads(outputs, inputs, grad_outputs, keep: bool, retain=None):
    """``autograd.grad`` with zeros for inputs the outputs do not reach."""
    from ..autograd import grad as _grad
    from .. import zeros_like
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if pairs:
        outs, gs = zip(*pairs)
        res = _grad(outs, inputs, gs, retain_graph=retain, create_graph=keep, allow_unused=True)
    else:
        res = (None,) * len(inputs)
    return [zeros_like(x) if g is None else g for g, x in zip(res, inputs)]


def _result(t, keep: bool):
    from .._tensor import Tensor
    return t.detach() if isinstance(t, Tensor) and not keep else t


def _split_aux(out, has_aux: bool, api: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{api}: output of function f should be a tuple: (output, aux) if "
                           "has_aux is True")
    return out


def grad_and_value(func, argnums=0, has_aux=False):
    """``(∇func, func)`` of a scalar ``func`` w.r.t. ``args[argnums]`` (``torch.func``)."""
    from .._tensor import Tensor

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        keep = _keep_graph(args, kwargs)
        with _nested():
            args, leaves, spec = _diff_args(args, argnums, keep)
            output, aux = _split_aux(func(*args, **kwargs), has_aux, "grad_and_value(f)(*args)")
            if not isinstance(output, Tensor):
                raise RuntimeError("grad_and_value(f)(*args): Expected f(*args) to return a "
                                   f"Tensor, got {type(output)}")
            if output.dim() != 0:
                raise RuntimeError("grad_and_value(f)(*args): Expected f(*args) to return a "
                                   f"scalar Tensor, got tensor with {output.dim()} dims. Maybe "
                                   "you wanted to use the vjp or jacrev APIs instead?")
            gs = _grads([output], leaves, [None], keep)
        grads = tree_unflatten([_result(g, keep) for g in gs], spec)
        value = _result(output, keep)
        if has_aux:
            return grads, (value, tree_map(lambda t: _result(t, keep), aux))
        return grads, value
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """``∇func`` of a scalar ``func`` w.r.t. ``args[argnums]`` (``torch.func.grad``)."""
    gv = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


def _float_outputs(flat, api: str) -> None:
    from .._tensor import Tensor
    if (len(flat) == 1 and flat[0] is None) or len(flat) < 1:
        raise RuntimeError(f"{api}: Expected f to be a function that has non-empty output (got "
                           f"output = {flat})")
    for o in flat:
        if not isinstance(o, Tensor):
            raise RuntimeError(f"{api}: expected f(*primals) to return only tensors, got "
                               f"unsupported type {type(o)}")


def vjp(func, *primals, has_aux=False):
    """``(func(*primals), vjp_fn)``: ``vjp_fn(v)`` is ``vᵀJ`` per primal (``torch.func.vjp``)."""
    keep = _keep_graph(primals)
    with _nested():
        flat, spec = tree_flatten(primals)
        leaves = [_leaf(x, keep) for x in flat]
        out, aux = _split_aux(func(*tree_unflatten(leaves, spec)), has_aux, "vjp(f, *primals)")
        flat_out, out_spec = tree_flatten(out)
        _float_outputs(flat_out, "vjp(f, *primals)")
        for o in flat_out:
            if not o.dtype.is_floating_point and not o.dtype.is_complex:
                raise RuntimeError("vjp(f, ...): All outputs of f must be floating-point or "
                                   f"complex Tensors, got Tensor with dtype {o.dtype}")

    def vjp_fn(cotangents, retain_graph=True, create_graph=None):
        from ..autograd.grad_mode import enable_grad, is_grad_enabled
        flat_ct, ct_spec = tree_flatten(cotangents)
        if ct_spec != out_spec:
            raise RuntimeError("Expected pytree structure of cotangents to be the same as pytree "
                               "structure of outputs to the function. cotangents: "
                               f"{ct_spec}, primal output: {out_spec}")
        cg = (keep or _keep_graph(cotangents)) if create_graph is None else create_graph
        cg = cg and is_grad_enabled()
        with enable_grad():
            gs = _grads(flat_out, leaves, flat_ct, cg, retain=retain_graph)
        return tree_unflatten([_result(g, cg) for g in gs], spec)

    res = tree_unflatten([_result(o, keep) for o in flat_out], out_spec)
    if has_aux:
        return res, vjp_fn, tree_map(lambda t: _result(t, keep), aux)
    return res, vjp_fn


def _jvp(func, primals, tangents, argnums=None, has_aux=False, strict=False):
    """``(outputs, J·tangents, aux)`` by the double-vjp trick; ``argnums`` picks primals."""
    from .. import zeros_like
    from .._tensor import Tensor
    api = "jvp(f, primals, tangents)"
    if not isinstance(primals, tuple):
        raise RuntimeError(f"{api}: Expected primals to be a tuple. E.g. it should be valid to "
                           "call f(*primals).")
    keep = _keep_graph(primals, tangents)
    with _nested():
        if argnums is None:
            flat, spec = tree_flatten(primals)
        else:
            nums = _argnums(argnums, len(primals))
            diff = primals[nums] if isinstance(nums, int) else tuple(primals[i] for i in nums)
            flat, spec = tree_flatten(diff)
        flat_t, t_spec = tree_flatten(tangents)
        if spec != t_spec:
            raise RuntimeError(f"{api}: Expected primals and tangents to have the same python "
                               "structure. For example, if primals is a tuple of 3 tensors, "
                               f"tangents also must be. Got primals with structure {spec} and "
                               f"tangents with structure {t_spec}")
        for name, xs in (("primals", flat), ("tangents", flat_t)):
            if not xs:
                raise RuntimeError(f"{api}: Expected {name} to contain at least one Tensor.")
            for x in xs:
                if not isinstance(x, Tensor):
                    raise RuntimeError(f"{api}: Expected {name} to only contain Tensors, got "
                                       f"{type(x)}")
        for p, t in zip(flat, flat_t):
            if p.shape != t.shape:
                raise RuntimeError("Trying to set a forward gradient that has a different size "
                                   "than that of the original Tensor, this is not supported. "
                                   f"Tensor is of size {list(p.shape)} while the given forward "
                                   f"gradient is of size {list(t.shape)}.")
        if argnums is None:
            args, leaves, _ = _diff_args((primals,), 0, keep)
            args = args[0]
        else:
            args, leaves, _ = _diff_args(primals, argnums, keep)
        out, aux = _split_aux(func(*args), has_aux, api)
        flat_out, out_spec = tree_flatten(out)
        _float_outputs(flat_out, api)
        dummies = [zeros_like(o, requires_grad=True) for o in flat_out]
        g_in = _grads(flat_out, leaves, dummies, True)
        pairs = [(g, v) for g, v in zip(g_in, flat_t) if g.requires_grad]
        if pairs:
            from ..autograd import grad as _grad
            gs, vs = zip(*pairs)
            tan = _grad(gs, dummies, vs, create_graph=keep, allow_unused=True)
        else:
            tan = (None,) * len(dummies)
        if strict and any(t is None for t in tan):
            raise RuntimeError("jvp(f, primals, tangents, strict=True): The output of f is "
                               "independent of the inputs. This is not allowed with strict=True.")
        tan = [zeros_like(o) if t is None else t for t, o in zip(tan, flat_out)]
    outs = tree_unflatten([_result(o, keep) for o in flat_out], out_spec)
    tans = tree_unflatten([_result(t, keep) for t in tan], out_spec)
    return outs, tans, (tree_map(lambda t: _result(t, keep), aux) if has_aux else None)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """``(func(*primals), J·tangents)`` (``torch.func.jvp``, by the double-vjp trick)."""
    out, tan, aux = _jvp(func, primals, tangents, has_aux=has_aux, strict=strict)
    return (out, tan, aux) if has_aux else (out, tan)


def _jacobian(func, argnums, has_aux: bool, forward: bool, api: str):
    """The Jacobian transform: reverse rows (one vjp per output element) or forward columns
    (one double-vjp per input element); both give ``out.shape + in.shape`` blocks."""
    from .. import stack, zeros_like, zeros

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        keep = _keep_graph(args, kwargs)
        with _nested():
            new_args, leaves, spec = _diff_args(args, argnums, keep)
            out, aux = _split_aux(func(*new_args, **kwargs), has_aux, f"{api}(f, ...)(*args)")
            flat_out, out_spec = tree_flatten(out)
            _float_outputs(flat_out, f"{api}(f, ...)(*args)")
            blocks = [[None] * len(leaves) for _ in flat_out]
            if not forward:
                for i, o in enumerate(flat_out):
                    flat = o.reshape(-1)
                    rows = [_grads([flat[k]], leaves, [None], keep, retain=True)
                            for k in range(o.numel())]
                    for j, x in enumerate(leaves):
                        col = [r[j] for r in rows]
                        b = stack(col) if col else zeros((0,) + tuple(x.shape), dtype=x.dtype)
                        blocks[i][j] = b.reshape(tuple(o.shape) + tuple(x.shape))
            else:
                from ..autograd import grad as _grad
                dummies = [zeros_like(o, requires_grad=True) for o in flat_out]
                g_in = _grads(flat_out, leaves, dummies, True)
                for j, x in enumerate(leaves):
                    cols = [[] for _ in flat_out]
                    for k in range(x.numel()):
                        e = zeros(x.numel(), dtype=x.dtype)
                        e[k] = 1
                        if g_in[j].requires_grad:
                            tan = _grad([g_in[j]], dummies, [e.reshape(x.shape)],
                                        retain_graph=True, create_graph=keep, allow_unused=True)
                        else:
                            tan = (None,) * len(dummies)
                        for i, (t, o) in enumerate(zip(tan, flat_out)):
                            cols[i].append(zeros_like(o) if t is None else t)
                    for i, o in enumerate(flat_out):
                        c = (stack(cols[i], dim=-1) if cols[i]
                             else zeros(tuple(o.shape) + (0,), dtype=o.dtype))
                        blocks[i][j] = c.reshape(tuple(o.shape) + tuple(x.shape))
        per_out = [tree_unflatten([_result(b, keep) for b in row], spec) for row in blocks]
        jac = tree_unflatten(per_out, out_spec)
        if has_aux:
            return jac, tree_map(lambda t: _result(t, keep), aux)
        return jac
    return wrapper


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None, _preallocate_and_copy=False):
    """The Jacobian of ``func`` w.r.t. ``args[argnums]`` by reverse mode (``torch.func``)."""
    if not (chunk_size is None or chunk_size > 0):
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")
    return _jacobian(func, argnums, has_aux, False, "jacrev")


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """The Jacobian of ``func`` w.r.t. ``args[argnums]``, one column per input element
    (``torch.func.jacfwd``; columns by the double-vjp trick, not true forward mode)."""
    if randomness not in ("error", "different", "same"):
        raise RuntimeError("Only allowed values for randomness are 'error', 'different', or "
                           f"'same'. Got {randomness}")
    return _jacobian(func, argnums, has_aux, True, "jacfwd")


def hessian(func, argnums=0):
    """``jacfwd(jacrev(func, argnums), argnums)``: the Hessian (``torch.func.hessian``)."""
    return jacfwd(jacrev(func, argnums), argnums)
