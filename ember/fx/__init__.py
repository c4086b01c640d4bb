"""``ember.fx``: programs as graphs (PyTorch's ``torch.fx``).

What it captures: ``symbolic_trace(module)`` runs ``forward`` once on ``Proxy`` values
(``_symbolic_trace.py``); each operation on a proxy (an operator, a method, a function of
ember's namespaces, a leaf submodule's call, a parameter read) appends a ``Node`` to a
``Graph`` instead of computing.  What it produces: a ``GraphModule`` whose ``forward`` is
Python generated from the graph (``graph.py``'s ``python_code``), owning the submodules and
tensors the graph names.  Consumers read or rewrite the graph (``Interpreter``,
``Transformer``, ``passes.shape_prop``, ``replace_pattern``) and ``recompile()``.

This is Python-level capture, as PyTorch's: it sees ``F.relu`` and ``self.fc(x)``, not
ember's op Functions, and it needs no input values.  Op-level capture of real runs (for
``ember.compile`` and tracing of arbitrary control flow) is a mode on ``Function.apply``
instead (NOTE [ Modes ] in autograd/modes.py).

The life of one trace: ``Tracer.trace`` patches ``Module.__call__``/``__getattr__`` and the
public functions, makes a placeholder proxy per ``forward`` argument, calls ``forward``;
``proxy + 1`` calls ``Proxy.__add__`` -> ``tracer.create_proxy("call_function",
operator.add, ...)`` -> ``graph.create_node``; the returned value becomes the ``output``
node; the patches are undone; ``GraphModule(root, graph)`` copies what the nodes reference
and generates ``forward``.
"""
from .graph import Graph
from .graph_module import GraphModule
from .interpreter import Interpreter, Transformer
from .node import Node, map_arg
from .proxy import Proxy, TraceError, Attribute
from ._symbolic_trace import Tracer, symbolic_trace, wrap
from .subgraph_rewriter import replace_pattern
from . import passes

__all__ = ["Graph", "GraphModule", "Interpreter", "Transformer", "Node", "map_arg", "Proxy",
           "TraceError", "Tracer", "symbolic_trace", "wrap", "replace_pattern", "passes"]
