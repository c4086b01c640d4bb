"""``ember.compiler``: the user-facing compiler API (PyTorch's ``torch.compiler``) and
``ember.compile``; the machinery is ``ember._dynamo`` (capture, guards, cache) and
``ember._functorch`` (ahead-of-time autograd, generated code)."""
from __future__ import annotations

from .._dynamo import eval_frame as _ef
from .._dynamo.backends import list_backends
from .._dynamo.eval_frame import reset, disable, is_compiling

__all__ = ["compile", "reset", "disable", "is_compiling", "is_dynamo_compiling", "explain",
           "list_backends", "allow_in_graph", "assume_constant_result"]

_MODES = ("default", "lite", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")


def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="inductor",
            mode=None, options=None, disable: bool = False):
    """Compile a function or module (PyTorch's ``torch.compile``; a decorator too).

    The first call with new guards runs eagerly while its ops are captured; later calls run
    the compiled graph (see ``ember/_dynamo/__init__.py``).  ``dynamic``: ``None`` makes a
    dimension dynamic when a second size arrives, ``False`` specialises every size, ``True``
    makes the first call's graph size-generic where running it again at grown sizes leaves
    nothing behind, else as ``None`` (NOTE [ Dynamic compiled graphs ], [ dynamic=True ]).  ``mode``/``options`` are checked as
    PyTorch checks them and otherwise ignored.
    """
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be "
                           "specified at the same time.")
    if mode is not None and mode not in _MODES:
        raise RuntimeError(f"Unrecognized mode={mode}, should be one of: {', '.join(_MODES)}")
    _ef.lookup_backend(backend)  # an unknown backend fails here, as in PyTorch
    if model is None:
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                 mode=mode, options=options, disable=disable)
    if not callable(model):
        raise RuntimeError("torch.compile: model must be callable")
    if disable:
        return model
    from ..nn import Module
    compiled = _ef.optimize(model, backend=backend, fullgraph=fullgraph, dynamic=dynamic,
                            options=options)
    if isinstance(model, Module):
        return _ef.OptimizedModule(model, compiled)
    return compiled


def explain(fn, *args, **kwargs):
    """``explain(fn)(*args)``: graphs, graph breaks and their reasons (``torch._dynamo``'s)."""
    return _ef.explain(fn, *args, **kwargs)


def is_dynamo_compiling() -> bool:
    return is_compiling()


def allow_in_graph(fn):
    """Accepted for PyTorch scripts: ember records the ops ``fn`` runs anyway."""
    return fn


def assume_constant_result(fn):
    """Accepted for PyTorch scripts: the result is recorded as the constant it was."""
    return fn
