"""A recorded op graph turned into a list of steps that replays it (traced modules, loaded
archives and ``ExportedProgram.module()`` all run through ``Program.run``).

``get_attr`` steps fetch their tensor from the module at every call, by qualified name, so a
``load_state_dict`` or ``.to()`` after tracing is seen.  A step recorded under ``no_grad`` runs
under ``no_grad`` again.  Nothing here generates or executes Python source.
"""
from __future__ import annotations

import operator

from ..autograd.grad_mode import no_grad
from .._state import state

__all__ = ["Program", "Slot", "fill"]

_PLACEHOLDER, _ATTR, _CALL = 0, 1, 2


class Slot:
    """A reference to the value of step ``i`` inside a step's arguments."""

    __slots__ = ("i",)

    def __init__(self, i: int):
        self.i = i

    def __repr__(self):
        return f"Slot({self.i})"


def fill(a, vals):
    """``a`` with every ``Slot`` replaced by its value (through tuples, lists and dicts)."""
    t = type(a)
    if t is Slot:
        return vals[a.i]
    if t is tuple:
        return tuple(fill(e, vals) for e in a)
    if t is list:
        return [fill(e, vals) for e in a]
    if t is dict:
        return {k: fill(v, vals) for k, v in a.items()}
    if isinstance(a, tuple) and hasattr(a, "_fields"):  # a namedtuple extra
        return t(*(fill(e, vals) for e in a))
    if t is slice:  # a slice whose bound is a symbolic size
        return slice(fill(a.start, vals), fill(a.stop, vals), fill(a.step, vals))
    return a


class Program:
    """The steps of one graph: ``(kind, target, args, kwargs, grad_mode)`` per node."""

    def __init__(self, graph):
        from ..fx.node import Node
        slots = {}
        steps = []
        n_inputs = 0
        out = None

        def to_slot(a):
            if isinstance(a, Node):
                return Slot(slots[a])
            if type(a) in (tuple, list):
                return type(a)(to_slot(e) for e in a)
            if type(a) is dict:
                return {k: to_slot(v) for k, v in a.items()}
            if isinstance(a, tuple) and hasattr(a, "_fields"):
                return type(a)(*(to_slot(e) for e in a))
            if type(a) is slice:
                return slice(to_slot(a.start), to_slot(a.stop), to_slot(a.step))
            return a

        for node in graph.nodes:
            if node.op == "output":
                out = to_slot(node.args[0])
                break
            slots[node] = len(steps)
            if node.op == "placeholder":
                steps.append((_PLACEHOLDER, n_inputs, None, None, True))
                n_inputs += 1
            elif node.op == "get_attr":
                steps.append((_ATTR, tuple(node.target.split(".")), None, None, True))
            elif node.op == "call_function":
                args, kwargs = to_slot(node.args), to_slot(node.kwargs)
                steps.append((_CALL, node.target, args, kwargs, node.meta.get("grad_mode", True)))
            else:
                raise RuntimeError(f"cannot replay a graph node of kind {node.op!r}")
        self.graph = graph
        self.steps = steps
        self.n_inputs = n_inputs
        self.out = out

    def __deepcopy__(self, memo):
        return self  # immutable once built: copies of a traced module share it

    def run(self, root, inputs):
        """The graph's output for the flattened ``inputs``, tensors fetched from ``root``."""
        if len(inputs) != self.n_inputs:
            raise RuntimeError(f"the graph takes {self.n_inputs} input(s) but was given "
                               f"{len(inputs)}")
        vals = []
        append = vals.append
        for kind, target, args, kwargs, grad_mode in self.steps:
            if kind == _CALL:
                a = fill(args, vals)
                k = fill(kwargs, vals) if kwargs else {}
                if grad_mode or not state.grad:
                    append(target(*a, **k))
                else:
                    with no_grad():
                        append(target(*a, **k))
            elif kind == _ATTR:
                obj = root
                for part in target:
                    obj = getattr(obj, part)
                append(obj)
            else:
                append(inputs[target])
        return fill(self.out, vals)

    def signature(self, values=None) -> list:
        """One line per step, ops with their constant arguments (what ``check_trace``
        compares across invocations: a different op or constant is a different trace);
        ``values``: the non-tensor constants that get_attr steps read, shown by value."""
        values = values or {}
        lines = []
        for i, (kind, target, args, kwargs, _) in enumerate(self.steps):
            if kind == _CALL:
                lines.append(f"%{i} = {_op_name(target)}{_show(args)}"
                             + (f" {_show(kwargs)}" if kwargs else ""))
            elif kind == _ATTR:
                name = ".".join(target)
                shown = f" = {_show(values[name])}" if name in values else ""
                lines.append(f"%{i} = get_attr[{name}]{shown}")
            else:
                lines.append(f"%{i} = input[{target}]")
        return lines + [f"return {_show(self.out)}"]

    def step_names(self) -> list:
        """Each step's op name (``None`` for inputs and attributes), aligned with
        ``signature``."""
        return [_op_name(s[1]) if s[0] == _CALL else None for s in self.steps]

    def op_names(self) -> list:
        """The ops in order (what ``check_trace`` compares across invocations)."""
        return [_op_name(s[1]) for s in self.steps if s[0] == _CALL]


def _op_name(target) -> str:
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", repr(target))


def _show(a) -> str:
    if type(a) is Slot:
        return f"%{a.i}"
    if isinstance(a, tuple):
        return "(" + ", ".join(_show(e) for e in a) + ("," if len(a) == 1 else "") + ")"
    if isinstance(a, list):
        return "[" + ", ".join(_show(e) for e in a) + "]"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in a.items()) + "}"
    state = _plain_state(a)
    if state is not None:  # an op's internal extra (a conv geometry): show its fields
        return f"{type(a).__name__}({_show(state)})"
    return repr(a)


def _plain_state(a):
    """An ember-internal extra's fields as a dict (``None`` for anything else)."""
    cls = type(a)
    if not cls.__module__.startswith("ember.") or isinstance(a, (type, tuple)):
        return None
    slots = [n for c in cls.__mro__ for n in getattr(c, "__slots__", ())]
    if slots:
        return {n: getattr(a, n) for n in slots if hasattr(a, n)}
    d = getattr(a, "__dict__", None)
    return dict(d) if d is not None else None
