"""Foreach ops (``torch._foreach_*``): one elementwise op applied across lists of tensors.

PyTorch fuses these into multi-tensor kernels for its optimizers; here each is a loop over the
single-tensor op, so values, result dtypes, gradients and per-tensor errors (an in-place cast
that loses the float, a leaf that requires grad) are that op's own.  What belongs to the
family is argument handling: the overloads (one scalar, a list of scalars, a list of tensors,
one 0-d tensor) and PyTorch's list checks.  Out-of-place forms return a tuple; in-place forms
return the list they were given, as PyTorch's do.
"""
from __future__ import annotations

from .._tensor import Tensor
from ..autograd.inplace import inplace
from . import elementwise as _ew
from .convert import clone as _clone
from .linalg import mm as _mm
from .reduce import vector_norm as _vector_norm, sum as _sum

_NUMBER = (bool, int, float, complex)

_UNARY = ["abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1",
          "floor", "frac", "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal",
          "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "trunc"]

# name -> (the op on a list of tensors, the op with a scalar, has a Tensor overload, has alpha)
_BINARY = {
    "add": (_ew.add, _ew.add, True, True),
    "sub": (_ew.sub, _ew.sub, False, True),
    "mul": (_ew.mul, _ew.mul, True, False),
    "div": (_ew.div, _ew.div, True, False),
    "maximum": (_ew.maximum, _ew.clamp_min, False, False),
    "minimum": (_ew.minimum, _ew.clamp_max, False, False),
    "clamp_min": (_ew.clamp_min, _ew.clamp_min, False, False),
    "clamp_max": (_ew.clamp_max, _ew.clamp_max, False, False),
    "pow": (_ew.pow, _ew.pow, False, False),
}

__all__ = (["_foreach_" + n + s for n in _UNARY + list(_BINARY) for s in ("", "_")]
           + ["_foreach_" + n + s for n in ("addcmul", "addcdiv", "lerp") for s in ("", "_")]
           + ["_foreach_norm", "_foreach_powsum", "_foreach_max", "_foreach_mm",
              "_foreach_clone", "_foreach_copy_", "_foreach_zero_"])


# ---- argument checks, as PyTorch's argument parser and foreach utils word them -------------
def _kind(a) -> str:
    return "Tensor" if isinstance(a, Tensor) else type(a).__name__


def _invalid(fname: str, *args) -> TypeError:
    got = ", ".join(_kind(a) for a in args)
    return TypeError(f"{fname}() received an invalid combination of arguments - got ({got})")


def _tensor_list(arg, fname: str, pos: int, argname: str) -> list:
    """``arg`` as a list of tensors, or PyTorch's TypeError."""
    if not isinstance(arg, (list, tuple)):
        raise TypeError(f"{fname}(): argument '{argname}' (position {pos + 1}) must be tuple of "
                        f"Tensors, not {_kind(arg)}")
    for i, t in enumerate(arg):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument {pos}, but got "
                            f"{_kind(t)}")
    return list(arg)


def _self(arg, fname: str):
    """``arg`` itself (in-place forms return it), checked to be a non-empty tensor list."""
    if not _tensor_list(arg, fname, 0, "self"):
        raise RuntimeError("Tensor list must have at least one tensor.")
    return arg


def _same_length(a: list, b: list) -> None:
    if len(a) != len(b):
        raise RuntimeError(f"Tensor lists must have the same number of tensors, got {len(a)} "
                           f"and {len(b)}")


def _scalars(tensors: list, scalars) -> list:
    if len(scalars) != len(tensors):
        raise RuntimeError("Tensor list must have same number of elements as scalar list.")
    return list(scalars)


def _is_scalar(a) -> bool:
    # a 0-d tensor passes PyTorch's parser as a Number
    return isinstance(a, _NUMBER) or isinstance(a, Tensor) and a.dim() == 0


def _scalar(a):
    return a.item() if isinstance(a, Tensor) else a


def _is_tensors(a) -> bool:
    return isinstance(a, (list, tuple)) and len(a) > 0 and isinstance(a[0], Tensor)


def _run(tensors, in_place: bool, fn, *per_tensor_args):
    """``fn(t, *args_i)`` for each tensor: a tuple of results, or written back into each
    tensor of ``tensors`` (which is returned) when ``in_place``."""
    rows = zip(tensors, *per_tensor_args) if per_tensor_args else ((t,) for t in tensors)
    if in_place:
        for row in rows:
            inplace(row[0], fn, *row[1:])
        return tensors
    return tuple(fn(*row) for row in rows)


# ---- unary ---------------------------------------------------------------------------------
def _unary_op(name: str):
    if name == "lgamma":  # the special-functions family's, imported on first use
        from .special import lgamma
        return lgamma
    return getattr(_ew, name)


def _make_unary(name: str, in_place: bool):
    fname = f"_foreach_{name}{'_' if in_place else ''}"

    def op(self):
        return _run(_self(self, fname), in_place, _unary_op(name))

    op.__name__ = op.__qualname__ = fname
    op.__doc__ = f"``[{name}(t) for t in self]``{' in place' if in_place else ''}."
    return op


# ---- binary: a scalar, a list of scalars, a list of tensors or one 0-d tensor --------------
def _make_binary(name: str, in_place: bool):
    list_fn, scalar_fn, tensor_overload, has_alpha = _BINARY[name]
    fname = f"_foreach_{name}{'_' if in_place else ''}"

    def op(self, other, **kwargs):
        tensors = _self(self, fname)
        alpha = kwargs.pop("alpha", 1)
        if kwargs or not has_alpha and alpha != 1:
            raise _invalid(fname, self, other, *kwargs.values())
        if _is_tensors(other):
            other = _tensor_list(other, fname, 1, "other")
            _same_length(tensors, other)
            if alpha != 1:
                return _run(tensors, in_place, lambda t, o: list_fn(t, o, alpha=alpha), other)
            return _run(tensors, in_place, list_fn, other)
        if isinstance(other, (list, tuple)):
            for i, s in enumerate(other):
                if not isinstance(s, _NUMBER):
                    raise TypeError(f"expected Number as element {i} in argument 1, but got "
                                    f"{_kind(s)}")
            return _run(tensors, in_place, scalar_fn, _scalars(tensors, other))
        if isinstance(other, Tensor) and tensor_overload:
            if other.dim() != 0:
                raise RuntimeError(f"scalar tensor expected to be 0 dim but it has {other.dim()} "
                                   f"dimensions and {other.numel()} elements.")
            if alpha != 1:
                return _run(tensors, in_place, lambda t: list_fn(t, other, alpha=alpha))
            return _run(tensors, in_place, lambda t: list_fn(t, other))
        if not _is_scalar(other) or alpha != 1:
            raise _invalid(fname, self, other)
        s = _scalar(other)
        return _run(tensors, in_place, lambda t: scalar_fn(t, s))

    op.__name__ = op.__qualname__ = fname
    where = " in place" if in_place else ""
    op.__doc__ = (f"``{name}(t, o)`` for each ``t`` of ``self`` and ``o`` of ``other`` (a "
                  f"scalar, a list of scalars or a list of tensors){where}.")
    return op


def _pow_scalar_and_tensor(self, exponent):
    """``[pow(self, e) for e in exponent]`` for a scalar base (PyTorch's ScalarAndTensor)."""
    return tuple(_ew.pow(self, e) for e in _self(exponent, "_foreach_pow"))


_foreach_pow_lists = _make_binary("pow", False)


def _foreach_pow(self, exponent):
    """``pow(t, e)`` for each ``t`` of ``self``; ``self`` may be a scalar base instead."""
    if isinstance(self, _NUMBER):
        return _pow_scalar_and_tensor(self, exponent)
    return _foreach_pow_lists(self, exponent)


# ---- addcmul / addcdiv / lerp --------------------------------------------------------------
def _make_pointwise(name: str, in_place: bool):
    fn = getattr(_ew, name)
    fname = f"_foreach_{name}{'_' if in_place else ''}"

    def op(self, tensor1, tensor2, value=1, *, scalars=None):
        tensors = _self(self, fname)
        t1 = _tensor_list(tensor1, fname, 1, "tensor1")
        t2 = _tensor_list(tensor2, fname, 2, "tensor2")
        _same_length(tensors, t1)
        _same_length(tensors, t2)
        if scalars is not None:
            value = scalars
        if isinstance(value, Tensor) and value.dim() != 1:
            raise RuntimeError(f"Expected packed scalar Tensor to be of dimension 1. Got "
                               f"{value.dim()} instead.")
        if isinstance(value, Tensor):
            if value.numel() != len(tensors):
                raise RuntimeError(f"Expected length of scalars to match input of length "
                                   f"{len(tensors)} but got {value.numel()} instead.")
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            values = _scalars(tensors, value)
            return _run(tensors, in_place, lambda t, a, b, v: fn(t, a, b, value=v), t1, t2,
                        values)
        if not isinstance(value, _NUMBER):
            raise _invalid(fname, self, tensor1, tensor2, value)
        return _run(tensors, in_place, lambda t, a, b: fn(t, a, b, value=value), t1, t2)

    op.__name__ = op.__qualname__ = fname
    op.__doc__ = (f"``{name}(t, a, b, value=v)`` for each ``t``, ``a``, ``b`` and ``v`` (one "
                  f"scalar, a list or a 1-d tensor of them){' in place' if in_place else ''}.")
    return op


def _make_lerp(in_place: bool):
    fname = f"_foreach_lerp{'_' if in_place else ''}"

    def op(self, tensors1, weight):
        tensors = _self(self, fname)
        ends = _tensor_list(tensors1, fname, 1, "tensors1")
        _same_length(tensors, ends)
        if _is_tensors(weight):
            weights = _tensor_list(weight, fname, 2, "weights")
            _same_length(tensors, weights)
            return _run(tensors, in_place, _ew.lerp, ends, weights)
        if isinstance(weight, (list, tuple)):
            return _run(tensors, in_place, _ew.lerp, ends, _scalars(tensors, weight))
        if not _is_scalar(weight):
            raise _invalid(fname, self, tensors1, weight)
        w = _scalar(weight)
        return _run(tensors, in_place, lambda t, e: _ew.lerp(t, e, w), ends)

    op.__name__ = op.__qualname__ = fname
    op.__doc__ = (f"``lerp(t, e, w)``: ``t + w * (e - t)`` for each tensor, with one weight, a "
                  f"list of scalars or a list of tensors{' in place' if in_place else ''}.")
    return op


# ---- reductions and the rest ---------------------------------------------------------------
def _ord(ord, fname: str):
    if not _is_scalar(ord):
        raise TypeError(f"{fname}(): argument 'ord' (position 2) must be Number, not "
                        f"{_kind(ord)}")
    return _scalar(ord)


def _foreach_norm(self, ord=2, dtype=None) -> tuple:
    """``[linalg.vector_norm(t, ord, dtype=dtype) for t in self]``."""
    tensors = _self(self, "_foreach_norm")
    p = _ord(ord, "_foreach_norm")
    return tuple(_vector_norm(t, p, dtype=dtype) for t in tensors)


def _foreach_powsum(self, ord=2, dtype=None) -> tuple:
    """``[sum(|t| ** ord) for t in self]`` (the norm before its root; ``0 ** 0`` is 1)."""
    tensors = _self(self, "_foreach_powsum")
    p = _ord(ord, "_foreach_powsum")
    for t in tensors:
        if not (t.is_floating_point() or t.is_complex()):
            raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor "
                               f"as input. Got {t.dtype.scalar_name}")
    return tuple(_sum(_ew.pow(_ew.abs(t if dtype is None else t.to(dtype)), p)) for t in tensors)


def _foreach_max(self) -> tuple:
    """``[t.max() for t in self]``."""
    tensors = _self(self, "_foreach_max")
    for t in tensors:
        if t.numel() == 0:
            raise RuntimeError("_foreach_max cannot compute the maximum of an empty tensor; max "
                               "over zero elements is undefined.")
    return tuple(t.max() for t in tensors)


def _foreach_mm(self, mat2) -> tuple:
    """``[mm(a, b) for a, b in zip(self, mat2)]``."""
    tensors = _self(self, "_foreach_mm")
    others = _tensor_list(mat2, "_foreach_mm", 1, "mat2")
    _same_length(tensors, others)
    return tuple(_mm(a, b) for a, b in zip(tensors, others))


def _foreach_clone(self, *, memory_format=None) -> tuple:
    """``[t.clone() for t in self]``."""
    return tuple(_clone(t, memory_format=memory_format) for t in _self(self, "_foreach_clone"))


def _foreach_copy_(self, src, non_blocking: bool = False):
    """``t.copy_(s)`` for each ``t`` of ``self`` and ``s`` of ``src`` (``s`` broadcasts)."""
    tensors = _self(self, "_foreach_copy_")
    sources = _tensor_list(src, "_foreach_copy_", 1, "src")
    _same_length(tensors, sources)
    for t, s in zip(tensors, sources):
        t.copy_(s, non_blocking)
    return self


def _foreach_zero_(self):
    """``t.zero_()`` for each tensor."""
    for t in _self(self, "_foreach_zero_"):
        t.zero_()
    return self


def _define():
    g = globals()
    for in_place in (False, True):
        s = "_" if in_place else ""
        for name in _UNARY:
            g[f"_foreach_{name}{s}"] = _make_unary(name, in_place)
        for name in _BINARY:
            if f"_foreach_{name}{s}" not in g:
                g[f"_foreach_{name}{s}"] = _make_binary(name, in_place)
        for name in ("addcmul", "addcdiv"):
            g[f"_foreach_{name}{s}"] = _make_pointwise(name, in_place)
        g[f"_foreach_lerp{s}"] = _make_lerp(in_place)


_define()
