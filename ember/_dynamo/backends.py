"""The compiler backends: what turns a captured ``GraphModule`` into a callable.

A backend is ``backend(gm, example_inputs) -> callable`` (PyTorch's custom-backend contract);
the callable takes the graph's placeholders' values.  ``"inductor"`` (the default) and
``"aot_eager"`` lower the graph to one autograd node with generated forward and backward code
(``ember._functorch``, NOTE [ Compiled regions ]); ``"eager"`` runs the graph's ops one by one
with ember's autograd (the ``GraphModule`` itself).
"""
from __future__ import annotations

from .exc import InvalidBackend

__all__ = ["register_backend", "lookup_backend", "list_backends"]

_BACKENDS = {}


def register_backend(compiler_fn=None, name: str = None):
    """Register ``compiler_fn(gm, example_inputs)`` under ``name`` (a decorator too)."""
    if compiler_fn is None:
        return lambda fn: register_backend(fn, name)
    _BACKENDS[name or compiler_fn.__name__] = compiler_fn
    return compiler_fn


def lookup_backend(backend):
    """The compiler function for a name or callable (``InvalidBackend`` for an unknown one)."""
    if callable(backend):
        if backend in _BACKENDS.values() or getattr(backend, "__wrapped__", None) is not None:
            return backend
        return _custom(backend)
    if isinstance(backend, str) and backend in _BACKENDS:
        return _BACKENDS[backend]
    raise InvalidBackend(backend)


def _custom(backend):
    """A user's ``backend(gm, example_inputs)``; a ``CompiledRegion`` it returns over ``gm``'s
    own graph gets ``gm``, as the default backend's does: ``create_graph=True`` recomputes the
    region's ops with eager autograd by running ``gm`` (``_recompute_grads``), and a region
    without it could not."""
    import functools

    @functools.wraps(backend)
    def compile_with(gm, example_inputs):
        out = backend(gm, example_inputs)
        from .._functorch.aot_autograd import CompiledRegion
        if isinstance(out, CompiledRegion) and getattr(out, "gm", None) is None and \
                getattr(out, "graph", None) is gm.graph:
            gm.recompile()  # (the backend may have edited the graph without regenerating)
            out.gm = gm
        return out
    compile_with._ember_custom = True  # NOTE [ Custom backends and sizes ] in eval_frame.py
    return compile_with


_DEBUG = ("eager", "aot_eager")  # tagged "debug", as PyTorch tags them


def list_backends(exclude_tags=("debug", "experimental")) -> list:
    """Registered backend names, those tagged ``exclude_tags`` left out (PyTorch's)."""
    skip = "debug" in (exclude_tags or ())
    return sorted(n for n in _BACKENDS if not (skip and n in _DEBUG))


@register_backend(name="eager")
def eager(gm, example_inputs):
    """Run the captured ops one by one, with ember's autograd."""
    return gm


def _region(gm, example_inputs):
    from .._functorch.aot_autograd import CompiledRegion, Unsupported
    from .._functorch.passes import optimize_graph
    gm.meta_passes = optimize_graph(gm)  # constant folding, CSE and DCE of pure ops
    folds, fgm = gm.meta_folds, gm.meta_folded  # fgm: gm with its constants folded
    consts = {n.target: getattr(fgm, n.target) for n in fgm.graph.nodes if n.op == "get_attr"}
    try:
        region = CompiledRegion(fgm.graph, consts)
    except Unsupported as e:
        gm.meta_unsupported = str(e)  # explain() reports why the graph runs op by op
        return gm  # as captured, unfolded
    region.gm = gm
    region._folds = folds
    return region


@register_backend(name="inductor")
def inductor(gm, example_inputs):
    """The default: the graph as one autograd node with generated forward/backward code."""
    return _region(gm, example_inputs)


@register_backend(name="aot_eager")
def aot_eager(gm, example_inputs):
    """Ahead-of-time autograd: in ember the same lowering as ``"inductor"``."""
    return _region(gm, example_inputs)
