"""``Graph``: the IR of ``ember.fx``, a list of ``Node`` in program order, and its code
generator (PyTorch's ``torch.fx.Graph``)."""
from __future__ import annotations

import builtins
import contextlib
import keyword
import re

from .node import Node, map_arg, MAGIC, _target_name

__all__ = ["Graph", "PythonCode"]


class PythonCode:
    """Generated source and the globals it needs (``Graph.python_code``)."""

    def __init__(self, src: str, globals_: dict):
        self.src = src
        self.globals = globals_


class _Namespace:
    """Unique Python identifiers for node names, as PyTorch derives them from targets."""

    def __init__(self):
        self._used = set(keyword.kwlist) | {"self", "torch", "ember"}
        self._counts = {}

    def create_name(self, candidate: str) -> str:
        name = re.sub(r"[^0-9a-zA-Z_]+", "_", candidate) or "_unnamed"
        if name[0].isdigit():
            name = "_" + name
        if name not in self._used and not hasattr(builtins, name):
            self._used.add(name)
            return name
        m = re.match(r"(.*)_(\d+)$", name)
        base = m.group(1) if m else name
        n = self._counts.get(base, 0)
        while f"{base}_{n}" in self._used or n == 0:
            n += 1
        self._counts[base] = n
        self._used.add(f"{base}_{n}")
        return f"{base}_{n}"


class _Nodes:
    """A live view of a graph's nodes in order (safe to erase the current node while iterating
    forward)."""

    def __init__(self, root: Node, reverse: bool = False):
        self._root = root
        self._reverse = reverse

    def __len__(self):
        return sum(1 for _ in self)

    def __iter__(self):
        n = self._root._prev if self._reverse else self._root._next
        while n is not self._root:
            nxt = n._prev if self._reverse else n._next
            if not n._erased:
                yield n
            n = nxt

    def __reversed__(self):
        return iter(_Nodes(self._root, not self._reverse))


class Graph:
    """An ordered list of nodes: placeholders first, one ``output`` last."""

    def __init__(self, owning_module=None, tracer_cls=None):
        self._root = Node(self, "", "placeholder", "", (), {})
        self._insert = self._root.prepend  # where create_node puts new nodes: at the end
        self._namespace = _Namespace()
        self.owning_module = owning_module
        self._tracer_cls = tracer_cls

    @property
    def nodes(self) -> _Nodes:
        return _Nodes(self._root)

    def find_nodes(self, *, op: str, target=None) -> list:
        return [n for n in self.nodes if n.op == op and (target is None or n.target == target)]

    # ---- building -------------------------------------------------------------------------
    def create_node(self, op, target, args=None, kwargs=None, name=None, type_expr=None) -> Node:
        name = self._namespace.create_name(name or _candidate(op, target))
        n = Node(self, name, op, target, args or (), kwargs or {}, type_expr)
        self._insert(n)
        return n

    def placeholder(self, name: str, type_expr=None, default_value=None) -> Node:
        args = () if default_value is None else (default_value,)
        return self.create_node("placeholder", name, args, type_expr=type_expr, name=name)

    def get_attr(self, qualified_name: str, type_expr=None) -> Node:
        return self.create_node("get_attr", qualified_name, type_expr=type_expr)

    def call_module(self, module_name: str, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_module", module_name, args, kwargs, type_expr=type_expr)

    def call_method(self, method_name: str, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_method", method_name, args, kwargs, type_expr=type_expr)

    def call_function(self, the_function, args=None, kwargs=None, type_expr=None) -> Node:
        return self.create_node("call_function", the_function, args, kwargs,
                                type_expr=type_expr)

    def output(self, result, type_expr=None) -> Node:
        return self.create_node("output", "output", (result,), type_expr=type_expr,
                                name="output")

    @contextlib.contextmanager
    def inserting_before(self, n: Node = None):
        prev = self._insert
        self._insert = (self._root._next if n is None else n).prepend
        try:
            yield
        finally:
            self._insert = prev

    @contextlib.contextmanager
    def inserting_after(self, n: Node = None):
        prev = self._insert
        self._insert = _after(self._root if n is None else n)
        try:
            yield
        finally:
            self._insert = prev

    def erase_node(self, to_erase: Node) -> None:
        """Remove a node that nothing reads any more."""
        if to_erase.users:
            raise RuntimeError(f"Tried to erase Node {to_erase} but it still had "
                               f"{len(to_erase.users)} users in the graph: {to_erase.users}!")
        to_erase._update_args_kwargs((), {})
        to_erase._remove_from_list()
        to_erase._erased = True

    def node_copy(self, node: Node, arg_transform=lambda x: x) -> Node:
        """A copy of ``node`` (from any graph) here, its inputs mapped by ``arg_transform``."""
        args = map_arg(node.args, arg_transform)
        kwargs = map_arg(node.kwargs, arg_transform)
        n = self.create_node(node.op, node.target, args, kwargs, node.name, node.type)
        n.meta = dict(node.meta)
        return n

    def graph_copy(self, g: "Graph", val_map: dict, return_output_node: bool = False):
        """Copy ``g``'s nodes (but its output) here; returns what ``g`` outputs, mapped."""
        for node in g.nodes:
            if node in val_map:
                continue
            if node.op == "output":
                out = map_arg(node.args[0], lambda n: val_map[n])
                return (out, node) if return_output_node else out
            val_map[node] = self.node_copy(node, lambda n: val_map[n])
        return None

    def eliminate_dead_code(self) -> bool:
        """Erase nodes whose value nothing uses (placeholders and outputs stay)."""
        changed = False
        for node in reversed(self.nodes):
            if node.op not in ("placeholder", "output") and not node.users and \
                    not _impure(node):
                self.erase_node(node)
                changed = True
        return changed

    def lint(self) -> None:
        """Check the invariants: inputs defined before use, users in sync, one output last."""
        seen = set()
        outputs = 0
        for node in self.nodes:
            if node.graph is not self:
                raise RuntimeError(f"Node {node} does not belong to this Graph")
            for a in node.all_input_nodes:
                if a not in seen:
                    raise RuntimeError(f"Argument '{a}' of Node '{node}' was used before it "
                                       "has been defined! Please check that Nodes in the "
                                       "graph are topologically ordered")
                if node not in a.users:
                    raise RuntimeError(f"Node {node} is not a user of its input {a}")
            if node.op == "output":
                outputs += 1
            elif outputs:
                raise RuntimeError(f"Node {node} comes after the output")
            seen.add(node)

    # ---- code generation ------------------------------------------------------------------
    def python_code(self, root_module: str = "self") -> PythonCode:
        """Python source of ``forward`` for this graph, and the globals it refers to."""
        globals_ = {"getattr": getattr, "inf": float("inf"), "nan": float("nan")}
        params, body = [], []
        last_use = {}
        for node in self.nodes:
            for a in node.all_input_nodes:
                last_use[a] = node
        dies = {}
        for a, user in last_use.items():
            dies.setdefault(user, []).append(a.name)

        def ref(a):
            return _repr_arg(map_arg(a, lambda n: _Raw(n.name)), globals_)

        for node in self.nodes:
            op, tgt = node.op, node.target
            if op == "placeholder":
                params.append(node.name if not node.args else
                              f"{node.name} = {_repr_arg(node.args[0], globals_)}")
                continue
            if op == "output":
                body.append(f"return {ref(node.args[0])}")
                break
            if op == "get_attr":
                rhs = _attr_expr(root_module, tgt)
            elif op == "call_module":
                rhs = f"{_attr_expr(root_module, tgt)}({_call_args(node, ref)})"
            elif op == "call_method":
                rhs = f"{ref(node.args[0])}.{tgt}({_call_args(node, ref, skip=1)})"
            elif tgt in MAGIC and not node.kwargs and (
                    tgt is not builtins.getattr or (len(node.args) == 2 and
                                                    isinstance(node.args[1], str) and
                                                    node.args[1].isidentifier())):
                args = [ref(a) for a in node.args]
                if tgt is builtins.getattr:
                    args[1] = node.args[1]
                rhs = MAGIC[tgt].format(*args)
            else:
                rhs = f"{_global_name(tgt, globals_)}({_call_args(node, ref)})"
            line = f"{node.name} = {rhs}"
            if node in dies:
                line += f";  {' = '.join(dies[node])} = None"
            body.append(line)
        src = f"\n\ndef forward({', '.join([root_module] + params)}):\n" + \
            "".join(f"    {b}\n" for b in body)
        return PythonCode(src, globals_)

    def __str__(self):
        lines = ["graph():"] + [f"    {n.format_node()}" for n in self.nodes]
        return "\n".join(lines)

    def print_tabular(self) -> None:
        """Print the nodes as a table: opcode, name, target, args, kwargs."""
        rows = [("opcode", "name", "target", "args", "kwargs")] + [
            (n.op, n.name, _target_name(n.target), str(n.args), str(n.kwargs))
            for n in self.nodes]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for k, r in enumerate(rows):
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if k == 0:
                print("  ".join("-" * w for w in widths))


def _after(n: Node):
    state = {"last": n}

    def insert(x):
        state["last"].append(x)
        state["last"] = x
    return insert


def _impure(node: Node) -> bool:
    """In-place methods and ops (``add_``) and ``_assert`` keep their node alive."""
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return node.op in ("call_method", "call_function") and (
        name.endswith("_") and not name.endswith("__") or name == "_assert") or \
        node.op == "call_module"


def _candidate(op: str, target) -> str:
    if op == "call_module" or op == "get_attr":
        return target.replace(".", "_")
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", "fn")


class _Raw(str):
    def __repr__(self):
        return str(self)


def _repr_arg(a, globals_) -> str:
    if isinstance(a, tuple) and not isinstance(a, _Raw):
        inner = ", ".join(_repr_arg(e, globals_) for e in a)
        return f"({inner},)" if len(a) == 1 else f"({inner})"
    if isinstance(a, list):
        return "[" + ", ".join(_repr_arg(e, globals_) for e in a) + "]"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k!r}: {_repr_arg(v, globals_)}" for k, v in a.items()) + "}"
    if isinstance(a, slice):
        return f"slice({_repr_arg(a.start, globals_)}, {_repr_arg(a.stop, globals_)}, " \
               f"{_repr_arg(a.step, globals_)})"
    if isinstance(a, (_Raw, str, int, float, bool, type(None))) or a is Ellipsis:
        r = repr(a)
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(r, r)
    return _global_name(a, globals_)  # dtypes, devices, functions ...


def _call_args(node: Node, ref, skip: int = 0) -> str:
    parts = [ref(a) for a in node.args[skip:]]
    parts += [f"{k} = {ref(v)}" for k, v in node.kwargs.items()]
    return ", ".join(parts)


def _attr_expr(root: str, qualname: str) -> str:
    """``self.seq.weight``, or ``getattr(self.seq, "0")`` where a part is no identifier."""
    expr = root
    for part in qualname.split("."):
        expr = f"{expr}.{part}" if part.isidentifier() and not keyword.iskeyword(part) \
            else f'getattr({expr}, "{part}")'
    return expr


def _global_name(obj, globals_: dict) -> str:
    """A name under which generated code reaches ``obj``: ``ember.relu`` where that path leads
    back to it, else a private global."""
    import ember
    name = getattr(obj, "__name__", None)
    for prefix, mod in (("ember", ember), ("ember.nn.functional", ember.nn.functional),
                        ("ember.linalg", ember.linalg), ("ember.fft", ember.fft),
                        ("ember.special", ember.special)):
        found = getattr(mod, name, None) if name else None
        if found is not None and (found is obj or getattr(found, "__wrapped__", None) is obj):
            globals_["ember"] = ember
            return f"{prefix}.{name}"
    if isinstance(obj, ember.dtype):
        globals_["ember"] = ember
        return f"ember.{obj.name if obj.name != 'bool' else 'bool'}"
    if isinstance(obj, ember.device):
        globals_["ember"] = ember
        return f"ember.device({str(obj)!r})"
    if name and getattr(builtins, name, None) is obj:
        return name
    key = re.sub(r"\W", "_", f"_{name or type(obj).__name__}")
    while key in globals_ and globals_[key] is not obj:
        key += "_"
    globals_[key] = obj
    return key
