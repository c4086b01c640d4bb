"""Helpers shared by the distributions: parameter broadcasting, logits <-> probs, lazy
properties (torch.distributions.utils)."""
from __future__ import annotations

import numbers
from functools import update_wrapper

import ember
from .._tensor import Tensor
from .._typeinfo import finfo

__all__ = ["broadcast_all", "logits_to_probs", "probs_to_logits", "clamp_probs",
           "lazy_property", "tril_matrix_to_vec", "vec_to_tril_matrix", "euler_constant"]

euler_constant = 0.57721566490153286060


def eps_of(dtype) -> float:
    """``finfo(dtype).eps``."""
    return finfo(dtype).eps


def tiny_of(dtype) -> float:
    """``finfo(dtype).tiny``, the smallest positive normal number."""
    return finfo(dtype).tiny


def broadcast_all(*values):
    """Broadcast tensors and numbers to one shape; numbers become tensors of the default
    (or the tensors') dtype."""
    if not all(isinstance(v, (Tensor, numbers.Number)) for v in values):
        raise ValueError("Input arguments must all be instances of numbers.Number, "
                         "torch.Tensor or objects implementing __torch_function__.")
    if not all(isinstance(v, Tensor) for v in values):
        dtype = ember.get_default_dtype()
        for v in values:
            if isinstance(v, Tensor):
                dtype = v.dtype
                break
        values = [v if isinstance(v, Tensor) else ember.tensor(v, dtype=dtype)
                  for v in values]
    return ember.broadcast_tensors(*values)


def _standard_normal(shape, dtype, device=None):
    return ember.randn(tuple(shape), dtype=dtype)


def _sum_rightmost(value, dim: int):
    """Sum out the ``dim`` rightmost dimensions of ``value``."""
    if dim == 0:
        return value
    required_shape = value.shape[:-dim] + (-1,)
    return value.reshape(required_shape).sum(-1)


def logits_to_probs(logits, is_binary: bool = False):
    """Probabilities from logits: sigmoid when binary, softmax over the last dim otherwise."""
    if is_binary:
        return ember.sigmoid(logits)
    return ember.softmax(logits, dim=-1)


def clamp_probs(probs):
    """``probs`` clamped to ``[eps, 1 - eps]`` of its dtype."""
    eps = eps_of(probs.dtype)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary: bool = False):
    """Logits from probabilities: ``log(p) - log1p(-p)`` when binary, ``log(p)`` otherwise."""
    ps_clamped = clamp_probs(probs)
    if is_binary:
        return ember.log(ps_clamped) - ember.log1p(-ps_clamped)
    return ember.log(ps_clamped)


class lazy_property:
    """A property computed once on first access and then stored on the instance."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        update_wrapper(self, wrapped)

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return _lazy_property_and_property(self.wrapped)
        with ember.enable_grad():
            value = self.wrapped(instance)
        setattr(instance, self.wrapped.__name__, value)
        return value


class _lazy_property_and_property(lazy_property, property):
    """What the class sees: a property (so introspection works) that is also lazy."""

    def __init__(self, wrapped):
        property.__init__(self, wrapped)


class ProbsOrLogitsMixin:
    """For distributions given by exactly one of ``probs`` and ``logits``: stores the given one
    (also as ``_param``), derives the other on first use, and expands whichever is stored.

    PyTorch writes this out in each class (Bernoulli, Binomial, Categorical, ...); here the
    classes share it.  ``_is_binary`` picks sigmoid/logit (True) or softmax/log (False).
    """

    _is_binary = True

    def _set_probs_or_logits(self, probs, logits, *others):
        """Store ``probs`` or ``logits`` broadcast with ``others``; return the broadcast others."""
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        name, value = ("probs", probs) if probs is not None else ("logits", logits)
        *others, param = broadcast_all(*others, value)
        setattr(self, name, param)
        self._param = param
        return others

    def _expand_probs_or_logits(self, new, param_shape):
        """Give ``new`` this distribution's stored probs and/or logits expanded to the shape."""
        if "probs" in self.__dict__:
            new.probs = self.probs.expand(param_shape)
            new._param = new.probs
        if "logits" in self.__dict__:
            new.logits = self.logits.expand(param_shape)
            new._param = new.logits

    def _new(self, *args, **kwargs):
        return self._param.new(*args, **kwargs)

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=self._is_binary)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=self._is_binary)

    @property
    def param_shape(self):
        return self._param.size()


def _tril_positions(n: int, diag: int):
    """Row and column indices of an n x n lower triangle (below diagonal ``diag``), row by row."""
    rows, cols = [], []
    for i in range(n):
        for j in range(n):
            if j - i <= diag:
                rows.append(i)
                cols.append(j)
    return rows, cols


def tril_matrix_to_vec(mat, diag: int = 0):
    """The lower triangle (below diagonal ``diag``) of ``mat`` as a vector, row by row."""
    n = mat.shape[-1]
    if not (-n <= diag < n):
        raise ValueError(f"diag ({diag}) provided is outside [{-n}, {n - 1}].")
    rows, cols = _tril_positions(n, diag)
    return mat[..., rows, cols]


def vec_to_tril_matrix(vec, diag: int = 0):
    """The inverse of ``tril_matrix_to_vec``."""
    n = (-(1 + 2 * diag) + ((1 + 2 * diag) ** 2 + 8 * vec.shape[-1] + 4 * abs(diag) * (
        diag + 1)) ** 0.5) / 2
    eps = eps_of(vec.dtype)
    if not (round(n) - n < eps):
        raise ValueError(f"The size of last dimension is {vec.shape[-1]} which cannot be "
                         "expressed as the lower triangular part of a square D x D matrix.")
    n = int(round(n))
    rows, cols = _tril_positions(n, diag)
    mat = vec.new_zeros(vec.shape[:-1] + (n * n,))
    idx = ember.tensor([r * n + c for r, c in zip(rows, cols)])
    mat = mat.scatter(-1, idx.expand(vec.shape), vec)
    return mat.reshape(vec.shape[:-1] + (n, n))
