"""``ember.compiler``: the user-facing compiler API (PyTorch's ``torch.compiler``) and
``ember.compile``; the machinery is ``ember._dynamo`` (capture, guards, cache) and
``ember._functorch`` (ahead-of-time autograd, generated code)."""
from __future__ import annotations

from .._dynamo import eval_frame as _ef
from .._dynamo.backends import list_backends
from .._dynamo.eval_frame import reset, disable, is_compiling

__all__ = ["compile", "reset", "disable", "is_compiling", "is_dynamo_compiling", "explain",
           "list_backends", "allow_in_graph", "assume_constant_result", "set_stance"]

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
        if options and backend == "inductor":
            _check_options(options)  # when decorating, as PyTorch's
        return lambda m: compile(m, fullgraph=fullgraph, dynamic=dynamic, backend=backend,
                                 mode=mode, options=options, disable=disable)
    if not callable(model):
        raise RuntimeError("torch.compile: model must be callable")
    if options and backend == "inductor":
        _check_options(options)
    if disable:
        return model
    from ..nn import Module
    compiled = _ef.optimize(model, backend=backend, fullgraph=fullgraph, dynamic=dynamic,
                            options=options)
    if isinstance(model, Module):
        return _ef.OptimizedModule(model, compiled)
    return compiled


_OWN_OPTIONS = {"numba": bool}  # ember's own (README, docs/compile.md)


def _check_options(options) -> None:
    """PyTorch's check of inductor ``options``: each name (``-`` read as ``_``) must be one of
    its config's, and the value an instance of that option's type."""
    from .._inductor._options import OPTIONS, TYPES
    known = dict(line.split(" ") for line in OPTIONS.splitlines())
    for key, val in options.items():
        name = key.replace("-", "_")
        if name in _OWN_OPTIONS:
            continue
        code = known.get(name)
        if code is None:
            raise RuntimeError(f"Unexpected optimization option {key}, known options are "
                               f"{list(known)}")
        if code[0] != "-" and not isinstance(val, TYPES[code[0]]):
            raise RuntimeError(f"Unexpected type of attr {key}, got {type(val).__name__} "
                               f"should be {TYPES[code[1]].__name__}")


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


def _forbidden(what) -> None:
    if _ef._capturing:  # PyTorch's dynamo refuses to trace a stance change
        raise AssertionError(f"Attempt to trace forbidden callable {what!r}")


class set_stance:
    """Set how compiled functions behave (``torch.compiler.set_stance``): as a function call
    (until the next one), a context manager or a decorator; NOTE [ Stances ] in
    ``ember/_dynamo/eval_frame.py``."""

    def __init__(self, stance: str = "default", *, skip_guard_eval_unsafe: bool = False,
                 force_backend=None):
        _forbidden(set_stance)
        if force_backend is not None and stance != "default":
            raise RuntimeError("non-default stance cannot have force_backend set")
        # an unknown stance is set, and compiled calls raise PyTorch's error (NOTE [ Stances ]);
        # skip_guard_eval_unsafe is accepted and ignored: ember's guards stay on (safe)
        self.stance, self.force_backend = stance, force_backend
        backend = None if force_backend is None else _ef.lookup_backend(force_backend)
        self._backend, self._unsafe = backend, skip_guard_eval_unsafe
        self.prev = _ef.set_stance(stance, backend, skip_guard_eval_unsafe)

    def __call__(self, fn):
        _ef.set_stance(*self.prev)  # as a decorator it applies only while ``fn`` runs
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            _forbidden(fn)
            prev = _ef.set_stance(self.stance, self._backend, self._unsafe)
            try:
                return fn(*args, **kwargs)
            finally:
                _ef.set_stance(*prev)
        return wrapper

    def __enter__(self):
        _ef.set_stance(self.stance, self._backend, self._unsafe)

    def __exit__(self, *exc):
        _ef.set_stance(*self.prev)
