"""Sizes that follow an input's dimension, found by capturing twice (PyTorch's
``torch.fx.experimental.symbolic_shapes``, reduced to what ember's captures need).

NOTE [ Sizes from two captures ]
ember's ops keep sizes in their arguments as Python ints (``view(x, (2, 64))``, BatchNorm's
``_Layout(work=(2, 4, 64), ...)``), so one capture cannot tell a batch size from a constant.
Capturing again with some input dimensions grown can: an int that differs between the two
captures follows those dimensions (a ``Sym``: its value ``a`` in the first, ``b`` in the
second).  ``DimTable`` resolves a ``Sym`` to an expression over the inputs' sizes: one input
dimension with the same (a, b), a product of two, a dimension times a constant, or a
dimension plus a constant (``("size", key, axis)``, ``("mul", e, e_or_int)``,
``("add", e, int)``); anything else cannot be expressed and stays baked.  The ONNX exporter
emits the expression as ``Shape``/``Gather``/``Mul`` nodes (``ember/onnx/_builder.py``);
``symbolize`` rewrites an ``ember.fx`` graph (``jit.trace``, ``export``) so that each such
argument is computed by ``sym_size`` and ``operator`` nodes, and a namedtuple extra that holds
one is built by a node calling its class.
Limits: the relation is read from two points, so a size that is not one of those forms (or
that happens to be equal at both sizes, such as ``n // 4`` for n = 2 and 3) is not seen.
"""
from __future__ import annotations

import operator

from ...autograd.modes import Op

__all__ = ["Sym", "diff", "DimTable", "SYM_SIZE", "FULL", "symbolize", "NotSymbolic"]


class Sym:
    """An int that follows a dynamic dimension: ``a`` in the first capture, ``b`` in the
    second."""

    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int):
        self.a, self.b = a, b

    def __int__(self):
        return self.a

    __index__ = __int__

    def __repr__(self):
        return f"Sym({self.a}, {self.b})"


class Rep:
    """A tuple of one value repeated a size's number of times (an RNN's per-step batch sizes,
    ``(B,) * T``): ``item`` (an int or ``Sym``) ``count`` times (a ``Sym``)."""

    __slots__ = ("item", "count")

    def __init__(self, item, count: Sym):
        self.item, self.count = item, count


class NotSymbolic(Exception):
    """Two captures differ in a value that is not an int (a float, a helper object)."""


def _same(a, b) -> bool:
    """Whether two captured constants are equal (arrays by value, helper objects by field)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    import numpy as np
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
    if type(a).__eq__ is not object.__eq__:
        try:
            return bool(a == b)
        except Exception:  # noqa: BLE001 (an object whose == is not a truth value)
            return False
    slots = [n for c in type(a).__mro__ for n in getattr(c, "__slots__", ())]
    if slots:  # an op's helper object (a convolution's geometry): its fields
        return all(_same(getattr(a, n, None), getattr(b, n, None)) for n in slots)
    da, db = getattr(a, "__dict__", None), getattr(b, "__dict__", None)
    return da is not None and db is not None and da.keys() == db.keys() and \
        all(_same(da[k], db[k]) for k in da)


def diff(a, b, strict: bool = False, same=None):
    """``a`` with each int that differs in ``b`` made a ``Sym`` (through tuples, lists, dicts,
    slices and namedtuples; with ``strict`` a tuple of one int repeated a different number of
    times a ``Rep``).  Any other difference: ``a`` kept, or with ``strict``
    ``NotSymbolic`` raised.  ``same(a, b)``: a pair to keep as ``a`` (graph nodes)."""
    if same is not None and same(a, b):
        return a
    if isinstance(a, bool) or a is None:
        if strict and a is not b:
            raise NotSymbolic(f"{a!r} became {b!r}")
        return a
    if isinstance(a, int) and isinstance(b, int) and not isinstance(b, bool):
        return a if a == b else Sym(a, b)
    if isinstance(a, slice) and isinstance(b, slice):
        return slice(diff(a.start, b.start, strict, same), diff(a.stop, b.stop, strict, same),
                     diff(a.step, b.step, strict, same))
    if strict and type(a) is tuple and type(b) is tuple and a and b and len(a) != len(b) and \
            all(type(e) is int for e in a + b) and len(set(a)) == 1 and len(set(b)) == 1:
        return Rep(diff(a[0], b[0]), Sym(len(a), len(b)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b) \
            and (type(a) is type(b) or not strict):
        items = [diff(x, y, strict, same) for x, y in zip(a, b)]
        if hasattr(a, "_fields"):  # a namedtuple
            return type(a)(*items)
        return type(a)(items)
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {k: diff(v, b[k], strict, same) for k, v in a.items()}
    if strict and not _same(a, b):
        raise NotSymbolic(f"{_short(a)} became {_short(b)}")
    return a


def _short(a) -> str:
    slots = [n for c in type(a).__mro__ for n in getattr(c, "__slots__", ())]
    r = repr(a)
    if slots and r.startswith("<"):  # a helper object: its fields, not its address
        r = f"{type(a).__name__}({', '.join(f'{n}={getattr(a, n, None)!r}' for n in slots)})"
    return r if len(r) <= 120 else r[:117] + "..."


def has_sym(a) -> bool:
    """Whether ``a`` holds a ``Sym`` anywhere."""
    if isinstance(a, (Sym, Rep)):
        return True
    if isinstance(a, (tuple, list)):
        return any(has_sym(e) for e in a)
    if isinstance(a, dict):
        return any(has_sym(e) for e in a.values())
    if isinstance(a, slice):
        return has_sym(a.start) or has_sym(a.stop) or has_sym(a.step)
    return False


class DimTable:
    """The dynamic input dimensions, by their sizes (a, b) in the two captures; resolves a
    ``Sym`` to an expression over them (NOTE [ Sizes from two captures ])."""

    def __init__(self):
        self.dims = {}   # (a, b) -> (key, axis): the first input dimension of those sizes

    def add(self, key, shape_a, shape_b) -> None:
        """Input ``key`` had ``shape_a`` in the first capture and ``shape_b`` in the second."""
        if shape_b is None or len(shape_a) != len(shape_b):
            return
        for ax, (a, b) in enumerate(zip(shape_a, shape_b)):
            if a != b:
                self.dims.setdefault((a, b), (key, ax))

    def resolve(self, s: Sym):
        """An expression for ``s`` (see the note), or ``None``."""
        hit = self.dims.get((s.a, s.b))
        if hit is not None:
            return ("size",) + hit
        items = list(self.dims.items())
        for i, ((a1, b1), h1) in enumerate(items):
            for (a2, b2), h2 in items[i:]:
                if a1 * a2 == s.a and b1 * b2 == s.b:
                    return ("mul", ("size",) + h1, ("size",) + h2)
            # a dynamic dim times a static size (a flattened (B*C) axis)
            if a1 and b1 and s.a % a1 == 0 and s.b % b1 == 0 and s.a // a1 == s.b // b1:
                return ("mul", ("size",) + h1, s.a // a1)
        for (a1, b1), h1 in items:  # a dynamic dim plus a static size
            if s.a - a1 == s.b - b1:
                return ("add", ("size",) + h1, s.a - a1)
        return None


def _sym_size(t, dim: int) -> int:
    """``t.size(dim)`` as a Python int (``aten::sym_size.int``)."""
    return t.shape[dim]


SYM_SIZE = Op(_sym_size, "sym_size")


def _fill_value(t):
    """The one value a tensor holds everywhere (``None`` when not uniform or empty)."""
    a = t._data
    if a.size == 0:
        return None
    v = a.reshape(-1)[0]
    return v.item() if bool((a == v).all()) else None


def _full(size, fill_value, dtype):
    """``full(size, fill_value)`` of a backend dtype (a uniform constant with sizes)."""
    from ... import full
    from ..._dtype import from_np
    return full(size, fill_value, dtype=from_np(dtype))


FULL = Op(_full, "full")


def symbolize(graph, graph2, constants: dict, constants2: dict,
              fill_constants: bool = False) -> list:
    """Rewrite ``graph`` so that every int argument that differs in ``graph2`` (the same
    code captured with some input dimensions grown; placeholders' ``meta["val"]`` are the
    inputs) is computed from the inputs' sizes.  ``constants``: get_attr name -> value
    (a namedtuple extra that changes is rebuilt by a node; its entry is dropped).  Returns
    the problems, one line each (ops that differ, a size no expression gives, a value that
    is not an int but changes); ``graph`` is changed only when there are none.
    ``fill_constants``: a tensor constant holding one value everywhere whose shape follows
    the inputs (an RNN's zero initial state) becomes a ``full`` node (``FULL``)."""
    from ..node import Node
    nodes, nodes2 = list(graph.nodes), list(graph2.nodes)
    name = _op_name
    if len(nodes) != len(nodes2) or any(
            n.op != m.op or name(n) != name(m) for n, m in zip(nodes, nodes2)):
        first = next(((n, m) for n, m in zip(nodes, nodes2)
                      if n.op != m.op or name(n) != name(m)), None)
        where = f": {name(first[0])} became {name(first[1])}" if first else ""
        return [f"the code runs other ops at the other size{where}"]
    table = DimTable()
    pair = {}
    for n, m in zip(nodes, nodes2):
        pair[n] = m
        if n.op == "placeholder":
            va, vb = n.meta.get("val"), m.meta.get("val")
            if hasattr(va, "shape") and hasattr(vb, "shape"):
                table.add(n, tuple(va.shape), tuple(vb.shape))
    inverse = {m: n for n, m in pair.items()}

    def same(a, b):
        return isinstance(a, Node) and isinstance(b, Node) and inverse.get(b) is a

    problems, plan = [], []
    for n, m in zip(nodes, nodes2):
        try:
            if n.op == "get_attr":
                ca, cb = constants.get(n.target), constants2.get(m.target)
                if hasattr(ca, "_data"):
                    if tuple(ca.shape) != tuple(cb.shape) and fill_constants and \
                            not ca.requires_grad and ca.dtype == cb.dtype and \
                            _fill_value(ca) is not None and _fill_value(ca) == _fill_value(cb):
                        shape = diff(tuple(ca.shape), tuple(cb.shape))
                        plan.append((n, "full", (shape, _fill_value(ca), ca._data.dtype)))
                        continue
                    if tuple(ca.shape) != tuple(cb.shape):
                        problems.append(f"a tensor constant of shape {tuple(ca.shape)} "
                                        f"(`{n.target}`) becomes {tuple(cb.shape)}")
                    continue
                new = diff(ca, cb, True, same)
                if has_sym(new):
                    plan.append((n, "const", new))
            elif n.op == "call_function":
                args = diff(tuple(n.args), tuple(m.args), True, same)
                kwargs = diff(dict(n.kwargs), dict(m.kwargs), True, same)
                if has_sym(args) or has_sym(kwargs):
                    plan.append((n, "call", (args, kwargs)))
        except NotSymbolic as e:
            problems.append(f"`{_line(n)}`: {e}")
    for n, kind, new in plan:
        for s in _syms(new):
            if table.resolve(s) is None:
                problems.append(f"`{_line(n)}`: the size {s.a} (then {s.b}) is not a product "
                                "or sum of the inputs' sizes")
                break
    if problems:
        return problems
    built = {}
    # sizes depend on the inputs only: computed right after them, so every use follows them
    head = next(n for n in nodes if n.op != "placeholder")

    def emit(expr):
        got = built.get(expr)
        if got is None:
            if expr[0] == "size":
                with graph.inserting_before(head):
                    got = graph.call_function(SYM_SIZE, (expr[1], expr[2]))
            else:
                fn = operator.mul if expr[0] == "mul" else operator.add
                lhs = emit(expr[1])
                rhs = emit(expr[2]) if isinstance(expr[2], tuple) else expr[2]
                with graph.inserting_before(head):
                    got = graph.call_function(fn, (lhs, rhs))
            built[expr] = got
        return got

    def fill(a):
        if isinstance(a, Sym):
            return emit(table.resolve(a))
        if isinstance(a, Rep):  # (item,) * count, computed
            with graph.inserting_before(head):
                return graph.call_function(operator.mul, ((fill(a.item),), fill(a.count)))
        if isinstance(a, slice):
            return slice(fill(a.start), fill(a.stop), fill(a.step))
        if isinstance(a, tuple):
            t = tuple(fill(e) for e in a)
            return type(a)(*t) if hasattr(a, "_fields") else t
        if isinstance(a, list):
            return [fill(e) for e in a]
        if isinstance(a, dict):
            return {k: fill(v) for k, v in a.items()}
        return a

    first_op = next((n for n in nodes if n.op == "call_function"), None)
    for n, kind, new in plan:
        if kind == "call":
            n.args, n.kwargs = fill(new[0]), fill(new[1])
            continue
        users = [u for u in nodes if u.op in ("call_function", "output") and n in
                 u.all_input_nodes]
        anchor = users[0] if users else first_op
        with graph.inserting_before(anchor):
            if kind == "full":
                built_node = graph.call_function(FULL, (fill(new[0]),) + new[1:])
            else:
                fields = fill(tuple(new))  # a namedtuple extra: a node calls its class
                built_node = graph.call_function(type(new), fields)
        n.replace_all_uses_with(built_node)
        graph.erase_node(n)
        constants.pop(n.target, None)
    return []


def _syms(a):
    if isinstance(a, Sym):
        yield a
    elif isinstance(a, Rep):
        yield from _syms((a.item, a.count))
    elif isinstance(a, (tuple, list)):
        for e in a:
            yield from _syms(e)
    elif isinstance(a, dict):
        for e in a.values():
            yield from _syms(e)
    elif isinstance(a, slice):
        for e in (a.start, a.stop, a.step):
            yield from _syms(e)


def _op_name(n) -> str:
    if n.op != "call_function":
        return n.op
    return getattr(n.target, "__name__", repr(n.target))


def _line(n) -> str:
    """A node as one short line (for messages)."""
    def show(a):
        if hasattr(a, "op") and hasattr(a, "name"):
            return a.name
        if isinstance(a, tuple) and not hasattr(a, "_fields"):
            return "(" + ", ".join(show(e) for e in a) + ("," if len(a) == 1 else "") + ")"
        if isinstance(a, list):
            return "[" + ", ".join(show(e) for e in a) + "]"
        return _short(a)
    if n.op == "get_attr":
        return f"{n.name} = get_attr[{n.target}]"
    return f"{n.name} = {_op_name(n)}({', '.join(show(a) for a in n.args)})"
