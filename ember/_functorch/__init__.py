"""``ember._functorch``: ahead-of-time autograd for ``ember.compile`` (PyTorch's
``torch._functorch``).

``aot_autograd.CompiledRegion(graph, constants)`` turns a graph captured by
``ember.fx.experimental.proxy_tensor.record`` into one ``autograd.Function``: its forward is
generated Python that calls each op's own array-level ``forward`` in order (no dispatch, no
tensor wrapping, no graph nodes per op), its backward generated Python that calls each op's
own ``backward`` formula in reverse order.  See NOTE [ Compiled regions ] there.
``passes.optimize_graph(gm)`` runs first (the ``inductor``/``aot_eager`` backends): common-
subexpression and dead-code elimination of pure ops (never random ops, batch norm or writes).
``codegen`` spells common ops (arithmetic, single-ufunc unaries, relu and its mask-multiply,
products, linear, sums) as NumPy calls with ``out=``: values that stay inside the region live
in buffers planned once per compiled shape and shared where lifetimes do not overlap, chains
run in place, and the dense backward rewrites gradients it owns (NOTE [ Planned buffers ]).
``CompiledRegion(graph, constants, options)``: ``options`` ``{"direct": False}`` (every op
through its own forward), ``{"buffers": False}`` (direct calls, fresh results) and
``{"dense": False}`` (the backward that tests every gradient for None) give the unfused code
the tests compare against.
"""
from .aot_autograd import CompiledRegion, CompiledFunction, Unsupported
from . import config  # torch._functorch.config's knobs (read by nothing)

__all__ = ["CompiledRegion", "CompiledFunction", "Unsupported"]
