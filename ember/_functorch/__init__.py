"""``ember._functorch``: ahead-of-time autograd for ``ember.compile`` (PyTorch's
``torch._functorch``).

``aot_autograd.CompiledRegion(graph, constants)`` turns a graph captured by
``ember.fx.experimental.proxy_tensor.record`` into one ``autograd.Function``: its forward is
generated Python that calls each op's own array-level ``forward`` in order (no dispatch, no
tensor wrapping, no graph nodes per op), its backward generated Python that calls each op's
own ``backward`` formula in reverse order.  See NOTE [ Compiled regions ] there.
``passes.optimize_graph(gm)`` runs first (the ``inductor``/``aot_eager`` backends): common-
subexpression and dead-code elimination of pure ops (never random ops, batch norm or writes).
"""
from .aot_autograd import CompiledRegion, CompiledFunction, Unsupported

__all__ = ["CompiledRegion", "CompiledFunction", "Unsupported"]
