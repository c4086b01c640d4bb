"""``ember.autograd``: reverse-mode automatic differentiation (PyTorch's ``torch.autograd``).

The reading order of the core and the life of one op: ``ember/autograd/README.md``.
"""
from __future__ import annotations

from .grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                        is_grad_enabled, is_inference_mode_enabled, state as _state)
from .function import Function, FunctionCtx, once_differentiable, InplaceFunction
from .engine import run_backward
from .._backend import xp_of as _xp_of
from .._tensor import Tensor as _Tensor, _make
from .anomaly_mode import detect_anomaly, set_detect_anomaly, is_anomaly_enabled
from .gradcheck import gradcheck, gradgradcheck

__all__ = ["backward", "grad", "Function", "no_grad", "enable_grad", "set_grad_enabled",
           "inference_mode", "gradcheck", "gradgradcheck", "detect_anomaly",
           "set_detect_anomaly", "once_differentiable", "functional", "graph"]


def _as_tuple(x):
    if x is None:
        return None
    if isinstance(x, _Tensor):
        return (x,)
    return tuple(x)


def _make_grads(outputs, grads, create_graph):
    """Default each output's gradient to ones for scalars, and check given ones' shapes."""
    out = []
    for i, (t, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if not t._requires_grad:
                raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                                   "have a grad_fn")
            if t._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if not t.dtype.is_floating_point:
                raise RuntimeError("grad can be implicitly created only for real scalar "
                                   f"outputs but got {t.dtype}")
            g = _make(_xp_of(t._data).empty(t._data.shape, t._data.dtype))
            g._data.fill(1)  # (``ones``' Python wrapper: 0.45 us more)
        else:
            if not isinstance(g, _Tensor):
                from .._creation import tensor
                g = tensor(g, dtype=t.dtype)
            if tuple(g._data.shape) != tuple(t._data.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{g.shape} and output[{i}] has a shape of {t.shape}.")
            if not t._requires_grad:
                raise RuntimeError(f"element {i} of tensors does not require grad and does not "
                                   "have a grad_fn")
            if not create_graph:
                g = _make(g._data)
        out.append(g)
    return out


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             grad_variables=None, inputs=None):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of graph leaves."""
    tensors = _as_tuple(tensors)
    if grad_tensors is None:
        grad_tensors = grad_variables
    grads = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; got "
                           f"{len(grads)} gradients for {len(tensors)} tensors")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = _as_tuple(inputs)
        if len(inputs) == 0:
            raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    grads = _make_grads(tensors, grads, create_graph)
    run_backward(tensors, grads, retain_graph, create_graph, inputs=inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned instead of accumulated."""
    outputs = _as_tuple(outputs)
    single_input = isinstance(inputs, _Tensor)
    inputs = _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    for t in inputs:
        if not isinstance(t, _Tensor):
            raise TypeError(f"grad(): inputs must be Tensors, got {type(t).__name__}")
    grads = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad_outputs has {len(grads)} elements but outputs has "
                           f"{len(outputs)}")
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    grads = _make_grads(outputs, grads, create_graph)  # checks the outputs first, as PyTorch
    for t in inputs:
        if not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    result = run_backward(outputs, grads, retain_graph, create_graph, inputs=inputs,
                          capture=True, allow_unused=allow_unused)
    if materialize_grads:
        result = [g if g is not None else _make(_xp_of(t._data).zeros_like(t._data))
                  for g, t in zip(result, inputs)]
    return tuple(result)


def __getattr__(name):
    # submodules loaded on first use (import time): the legacy ``torch.autograd.profiler`` API,
    # saved-tensor hooks and graph edges, and the jacobian/hessian functions
    if name in ("profiler", "graph", "functional"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'ember.autograd' has no attribute '{name}'")
