"""``GraphModule``: a module whose ``forward`` is Python generated from a ``Graph``
(PyTorch's ``torch.fx.GraphModule``)."""
from __future__ import annotations

import linecache

from ..nn import Module, Parameter
from .._tensor import Tensor
from .graph import Graph

__all__ = ["GraphModule"]

_count = [0]


def _exec(src: str, globals_: dict):
    """Compile generated source under a unique file name, so tracebacks show its lines."""
    _count[0] += 1
    key = f"<eval_with_key>.{_count[0]}"
    linecache.cache[key] = (len(src), None, src.splitlines(True), key)
    exec(compile(src, key, "exec"), globals_)
    return globals_["forward"]


def _fetch(root, qualname: str):
    obj = root
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _assign(value, to: Module, qualname: str) -> None:
    """Put ``value`` at ``qualname`` under ``to``, making empty modules for missing parents."""
    *path, last = qualname.split(".")
    for part in path:
        sub = to._modules.get(part) if hasattr(to, "_modules") else None
        if sub is None:
            sub = Module()
            to.add_module(part, sub)
        to = sub
    if isinstance(value, Module):
        to.add_module(last, value)
    elif isinstance(value, Parameter):
        to.register_parameter(last, value)
    elif isinstance(value, Tensor):
        to.register_buffer(last, value)
    else:
        setattr(to, last, value)


class GraphModule(Module):
    """``graph``'s code as ``forward``, owning the submodules and tensors the graph names."""

    def __new__(cls, *args, **kwargs):
        # each instance gets its own class, so that its generated forward is its own
        for base in cls.__mro__:
            if base.__name__ == "GraphModuleImpl":
                cls = base.__bases__[0]
                break
        impl = type("GraphModuleImpl", (cls,), {})
        return super().__new__(impl)

    def __init__(self, root, graph: Graph, class_name: str = "GraphModule"):
        super().__init__()
        type(self).__name__ = class_name
        for node in graph.nodes:
            if node.op in ("get_attr", "call_module"):
                if isinstance(root, Module):
                    value = _fetch(root, node.target)
                elif isinstance(root, dict):
                    if node.target not in root:
                        raise RuntimeError(f"Node {node} referenced target {node.target} but "
                                           "that target was not provided in ``root``!")
                    value = root[node.target]
                else:
                    raise RuntimeError("Unsupported type " + str(root) + " passed for root!")
                try:
                    _fetch(self, node.target)
                except AttributeError:
                    _assign(value, self, node.target)
        self.graph = graph

    @property
    def graph(self) -> Graph:
        return self._graph

    @graph.setter
    def graph(self, g: Graph) -> None:
        self.__dict__["_graph"] = g
        g.owning_module = self
        self.recompile()

    @property
    def code(self) -> str:
        """The Python source of ``forward``."""
        return self._code

    def recompile(self):
        """Regenerate ``forward`` from ``graph`` (after editing the graph)."""
        python_code = self._graph.python_code(root_module="self")
        self.__dict__["_code"] = python_code.src
        type(self).forward = _exec(python_code.src, python_code.globals)
        return python_code

    def print_readable(self, print_output: bool = True):
        """``forward``'s code, under the class name."""
        src = f"class {type(self).__name__}(ember.nn.Module):" + \
            "".join(f"    {line}\n" if line else "\n" for line in self._code.split("\n"))
        if print_output:
            print(src)
        return src

    def __reduce__(self):
        raise NotImplementedError("pickling a GraphModule is not supported; save its "
                                  "state_dict and trace again")

    def __deepcopy__(self, memo):
        import copy
        root = Module()
        for n, m in self._modules.items():
            root.add_module(n, copy.deepcopy(m, memo))
        for n, p in self._parameters.items():
            root.register_parameter(n, copy.deepcopy(p, memo))
        for n, b in self._buffers.items():
            root.register_buffer(n, copy.deepcopy(b, memo))
        g = Graph()
        out = g.graph_copy(self._graph, {})
        g.output(out)
        return GraphModule(root, g, type(self).__name__)
