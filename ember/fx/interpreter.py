"""``Interpreter`` runs a ``GraphModule`` node by node; ``Transformer`` re-traces it into a
new one (PyTorch's ``torch.fx.Interpreter`` / ``Transformer``).  Override the per-op
methods (``call_function``, ``call_module`` ...) to change what each node does."""
from __future__ import annotations

from .graph import Graph
from .graph_module import GraphModule, _fetch
from .node import map_arg
from .proxy import Proxy

__all__ = ["Interpreter", "Transformer"]


class Interpreter:
    """Execute a module's graph on concrete values, one ``run_node`` per node."""

    def __init__(self, module, garbage_collect_values: bool = True, graph: Graph = None):
        self.module = module
        self.submodules = dict(module.named_modules())
        self.graph = graph if graph is not None else module.graph
        self.garbage_collect_values = garbage_collect_values
        self.env = {}
        self.user_to_last_uses = {}
        last = {}
        for node in self.graph.nodes:
            for a in node.all_input_nodes:
                last[a] = node
        for a, user in last.items():
            self.user_to_last_uses.setdefault(user, []).append(a)

    def run(self, *args, initial_env=None, enable_io_processing: bool = True):
        """Run the graph on ``args``; returns what its ``output`` node returns."""
        self.env = dict(initial_env or {})
        self.args_iter = iter(args)
        for node in self.graph.nodes:
            if node in self.env:
                continue
            self.env[node] = self.run_node(node)
            if self.garbage_collect_values:
                for dead in self.user_to_last_uses.get(node, ()):
                    self.env.pop(dead, None)
            if node.op == "output":
                return self.env[node]
        return None

    def run_node(self, n):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        return getattr(self, n.op)(n.target, args, kwargs)

    def placeholder(self, target, args, kwargs):
        if target.startswith("*"):
            return list(self.args_iter)
        try:
            return next(self.args_iter)
        except StopIteration:
            if args:
                return args[0]
            raise RuntimeError(f"Expected positional argument for parameter {target}, but one "
                               "was not passed in!") from None

    def get_attr(self, target, args, kwargs):
        return self.fetch_attr(target)

    def call_function(self, target, args, kwargs):
        return target(*args, **kwargs)

    def call_method(self, target, args, kwargs):
        self_obj, *rest = args
        return getattr(self_obj, target)(*rest, **kwargs)

    def call_module(self, target, args, kwargs):
        return self.fetch_attr(target)(*args, **kwargs)

    def output(self, target, args, kwargs):
        return args[0]

    def fetch_attr(self, target: str):
        try:
            return _fetch(self.module, target)
        except AttributeError:
            raise RuntimeError(f"Node referenced nonexistent target {target}") from None

    def fetch_args_kwargs_from_env(self, n):
        return self.map_nodes_to_values(n.args, n), self.map_nodes_to_values(n.kwargs, n)

    def map_nodes_to_values(self, args, n):
        def load(a):
            if a not in self.env:
                raise RuntimeError(f"Node {n} referenced nonexistent value {a}! Run Graph.lint() "
                                   "to diagnose such issues")
            return self.env[a]
        return map_arg(args, load)


class Transformer(Interpreter):
    """Re-trace a module through its graph: each overridden method may emit other nodes."""

    def __init__(self, module):
        super().__init__(module)
        self.new_graph = Graph()
        from ._symbolic_trace import Tracer

        class _Tracer(Tracer):
            def __init__(self, graph):
                super().__init__()
                self.graph = graph
                self.root = module
                self._tensor_names = {}

            def is_leaf_module(self, m, name):
                return True
        self.tracer = _Tracer(self.new_graph)

    def placeholder(self, target, args, kwargs):
        return Proxy(self.new_graph.placeholder(target, default_value=(args[0] if args else
                                                                       None)), self.tracer)

    def get_attr(self, target, args, kwargs):
        return self.tracer.create_proxy("get_attr", target, args, kwargs)

    def call_function(self, target, args, kwargs):
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def call_method(self, target, args, kwargs):
        return self.tracer.create_proxy("call_method", target, args, kwargs)

    def call_module(self, target, args, kwargs):
        return self.tracer.create_proxy("call_module", target, args, kwargs)

    def transform(self) -> GraphModule:
        """The new ``GraphModule`` built by running every node through this transformer."""
        from . import proxy as _proxy
        _proxy.tracing[0] += 1  # its proxies are made by the transform, not by hand
        try:
            result = super().run(*())
        finally:
            _proxy.tracing[0] -= 1
        if result is not None:
            self.new_graph.output(map_arg(self.tracer.create_arg(result), lambda n: n))
        return GraphModule(self.module, self.new_graph)

    def run(self, *args, **kwargs):
        return super().run(*args, **kwargs)
