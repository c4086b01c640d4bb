"""``Node``: one operation of an ``ember.fx`` graph (PyTorch's ``torch.fx.Node``)."""
from __future__ import annotations

import builtins
import operator

__all__ = ["Node", "map_arg", "map_aggregate", "Argument", "Target"]

Argument = object  # a Node, a constant, or a tuple/list/dict/slice of Arguments
Target = object    # a callable (call_function) or a qualified name (the other ops)
_OPS = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")


def map_aggregate(a, fn):
    """Apply ``fn`` to every leaf of ``a``, rebuilding tuples, lists, dicts and slices."""
    if isinstance(a, tuple):
        t = tuple(map_aggregate(e, fn) for e in a)
        return t if not hasattr(a, "_fields") else type(a)(*t)  # namedtuples keep their type
    if isinstance(a, list):
        return [map_aggregate(e, fn) for e in a]
    if isinstance(a, dict):
        return {k: map_aggregate(v, fn) for k, v in a.items()}
    if isinstance(a, slice):
        return slice(map_aggregate(a.start, fn), map_aggregate(a.stop, fn),
                     map_aggregate(a.step, fn))
    return fn(a)


def map_arg(a, fn):
    """Apply ``fn`` to every ``Node`` in ``a`` (PyTorch's ``torch.fx.node.map_arg``)."""
    if not callable(fn):
        raise AssertionError("torch.fx.map_arg(a, fn): fn must be a callable")
    return map_aggregate(a, lambda x: fn(x) if isinstance(x, Node) else x)


class Node:
    """An operation in a ``Graph``: ``op`` (one of six kinds), ``target``, ``args``, ``kwargs``.

    Nodes form a doubly linked list in program order; ``users`` holds the nodes that read
    this one (kept in sync whenever ``args``/``kwargs`` change)."""

    def __init__(self, graph, name: str, op: str, target, args: tuple, kwargs: dict,
                 return_type=None):
        if op not in _OPS:
            raise ValueError(f"Node op must be one of {_OPS}, got {op!r}")
        self.graph = graph
        self.name = name
        self.op = op
        self.target = target
        self.type = return_type
        self.users: dict = {}
        self.meta: dict = {}
        self._input_nodes: dict = {}
        self._args: tuple = ()
        self._kwargs: dict = {}
        self._prev = self._next = self
        self._erased = False
        self._update_args_kwargs(args, kwargs)

    # ---- links ----------------------------------------------------------------------------
    @property
    def next(self) -> "Node":
        return self._next

    @property
    def prev(self) -> "Node":
        return self._prev

    def prepend(self, x: "Node") -> None:
        """Move ``x`` right before this node."""
        if x is self:
            return
        x._remove_from_list()
        p = self._prev
        p._next, x._prev, x._next, self._prev = x, p, self, x

    def append(self, x: "Node") -> None:
        """Move ``x`` right after this node."""
        self._next.prepend(x)

    def _remove_from_list(self) -> None:
        p, n = self._prev, self._next
        p._next, n._prev = n, p
        self._prev = self._next = self

    # ---- arguments ------------------------------------------------------------------------
    @property
    def args(self) -> tuple:
        return self._args

    @args.setter
    def args(self, a) -> None:
        self._update_args_kwargs(a, self._kwargs)

    @property
    def kwargs(self) -> dict:
        return self._kwargs

    @kwargs.setter
    def kwargs(self, k) -> None:
        self._update_args_kwargs(self._args, k)

    def _update_args_kwargs(self, args, kwargs) -> None:
        for n in self._input_nodes:
            n.users.pop(self, None)
        self._args = tuple(map_aggregate(tuple(args), lambda x: x))
        self._kwargs = dict(kwargs)
        self._input_nodes = {}
        map_arg((self._args, self._kwargs), self._input_nodes.setdefault)
        for n in self._input_nodes:
            n.users.setdefault(self, None)

    @property
    def all_input_nodes(self) -> list:
        """The nodes this node reads, in order of first appearance."""
        return list(self._input_nodes)

    def update_arg(self, idx: int, arg) -> None:
        args = list(self._args)
        args[idx] = arg
        self.args = tuple(args)

    def update_kwarg(self, key: str, arg) -> None:
        self.kwargs = {**self._kwargs, key: arg}

    def replace_input_with(self, old: "Node", new: "Node") -> None:
        """Read ``new`` wherever this node read ``old``."""
        self._update_args_kwargs(*map_arg((self._args, self._kwargs),
                                          lambda n: new if n is old else n))

    def replace_all_uses_with(self, replace_with: "Node", delete_user_cb=None,
                              *, propagate_meta: bool = False) -> list:
        """Make every user of this node read ``replace_with``; returns the changed users."""
        if propagate_meta:
            for k, v in self.meta.items():
                replace_with.meta.setdefault(k, v)
        changed = []
        for user in list(self.users):
            if delete_user_cb is not None and not delete_user_cb(user):
                continue
            user.replace_input_with(self, replace_with)
            changed.append(user)
        return changed

    # ---- printing -------------------------------------------------------------------------
    def format_node(self) -> str:
        """One line as ``Graph.__str__`` prints it."""
        if self.op == "placeholder":
            default = f" [default={self.args[0]}]" if self.args else ""
            return (f"%{self.name} : [num_users={len(self.users)}] = "
                    f"placeholder[target={self.target}]{default}")
        if self.op == "output":
            return f"return {_fmt(self.args[0])}"
        tgt = _target_name(self.target)
        return (f"%{self.name} : [num_users={len(self.users)}] = {self.op}[target={tgt}]"
                f"(args = {_fmt(self.args)}, kwargs = {_fmt(self.kwargs)})")

    def __repr__(self):
        return self.name


def _fmt(a) -> str:
    return str(map_arg(a, lambda n: _Ref(n.name)))


class _Ref(str):
    def __repr__(self):
        return "%" + self


def _target_name(t) -> str:
    if isinstance(t, str):
        return t
    if getattr(t, "__module__", None) in ("_operator", "operator", "builtins"):
        return t.__name__
    return f"{getattr(t, '__module__', '')}.{getattr(t, '__qualname__', t)}".lstrip(".")


# the Python operators a call_function node may hold, as code prints them
MAGIC = {operator.add: "{} + {}", operator.sub: "{} - {}", operator.mul: "{} * {}",
         operator.truediv: "{} / {}", operator.floordiv: "{} // {}", operator.mod: "{} % {}",
         operator.pow: "{} ** {}", operator.matmul: "{} @ {}", operator.lshift: "{} << {}",
         operator.rshift: "{} >> {}", operator.and_: "{} & {}", operator.or_: "{} | {}",
         operator.xor: "{} ^ {}", operator.eq: "{} == {}", operator.ne: "{} != {}",
         operator.lt: "{} < {}", operator.le: "{} <= {}", operator.gt: "{} > {}",
         operator.ge: "{} >= {}", operator.neg: "-{}", operator.pos: "+{}",
         operator.invert: "~{}", operator.getitem: "{}[{}]", builtins.getattr: "{}.{}"}
