"""Ops a compiled training step runs after its ``backward()``, as generated code over arrays.

NOTE [ Ops after backward ]
A hand-written update or clip (``p -= lr * p.grad``, ``g.mul_(coef)``), ``p.grad.data.clamp_``
or a weight EMA after ``opt.step()`` are ops that read gradients the compiled backward makes,
or parameters the step changes: the compiled forward cannot run them (it runs before both).
So ``_program`` (eval_frame.py) cuts the recorded graph after the first backward/step/clip/
scheduler event whose later ops are not metrics of the forward's values: the ops after it
become a ``Tail``, split into one segment per event they follow, and each segment runs right
after its event is replayed.  A segment is straight-line Python over arrays: a raw op calls its
array-level ``forward`` on a scratch ctx (nothing is saved: the tail builds no autograd graph,
a tail value requiring grad is a break), an in-place write is ``dst[...] = src`` and a bump of
the written tensor's version counter (eager's ``_write``), other ops (comparisons, factories)
call the op on tensors under ``no_grad``.  Its inputs are read at each call: a forward value
from the region's extra outputs, a parameter's (or a ``detach()``/``.data`` of one) array from
the parameter, a gradient from ``param.grad`` as the replayed backward left it.
"""
from __future__ import annotations

import operator

from .._backend import asarray as _asarray, _BY_ARRAY_TYPE as _ARRAY_TYPES
from .._state import state
from .._tensor import Tensor, _make, _version_counter
from ..autograd.modes import Op
from ..fx.experimental.proxy_tensor import COPY_

_new = object.__new__


class TailError(Exception):
    """A tail the generated code cannot hold (the capture reports a break)."""


def _grad_of(p) -> Tensor:
    g = p._grad
    if g is None:  # eager would fail reading None.grad's attribute: say why here
        raise RuntimeError("ember.compile: a compiled step reads the .grad of a parameter that "
                           "has none this call (the capture saw one); run it uncompiled")
    return g


def _call(op, args, kwargs):
    """An op without an array-level spelling, on tensors: its result's array(s)."""
    wrap = (lambda a: _make(a) if hasattr(a, "dtype") and hasattr(a, "shape") and
            not isinstance(a, Tensor) else [wrap(e) for e in a] if isinstance(a, list) else a)
    grad = state.grad
    state.grad = False
    try:
        r = op(*[wrap(a) for a in args], **{k: wrap(v) for k, v in kwargs.items()})
    finally:
        state.grad = grad
    if isinstance(r, Tensor):
        return r._data
    if isinstance(r, (tuple, list)):
        return tuple(e._data if isinstance(e, Tensor) else e for e in r)
    return r


def _write_target(n, nxt):
    """The tensor node an in-place op's result ``n`` is written into right after (the
    recorder's ``copy_`` of it, its only reader), or ``None``."""
    if nxt is None or nxt.target is not COPY_ or nxt.args[1] is not n or len(n.users) != 1:
        return None
    dst, val = nxt.args[0].meta.get("val"), n.meta.get("val")
    if not isinstance(dst, Tensor) or not isinstance(val, Tensor) or \
            dst._data.shape != val._data.shape or dst._data.dtype != val._data.dtype:
        return None
    return nxt.args[0]


def _direct_into(cls, n, args, into):
    """An elementwise op's NumPy spelling with ``out=`` its write target (NOTE [ Planned
    buffers ]'s ``codegen.direct``): the same values eager writes, without the temporary and
    the copy; ``None`` where the op has none."""
    from .._functorch.codegen import direct
    if cls is None:
        return None
    vals = [a.meta["val"]._data if hasattr(a, "op") and isinstance(a.meta.get("val"), Tensor)
            else a for a in n.args]
    if any(hasattr(v, "op") or isinstance(v, (list, tuple)) for v in vals):
        return None
    d = direct(cls, args, vals, {}, n.meta["val"]._data, lambda *a: None)
    if d is None or not d.elementwise or not all(line.startswith("{d} = xp.") for line in d.fmt):
        return None
    return d


class Tail:
    """The segments of ops after a step's events (NOTE [ Ops after backward ]).

    ``segments``: event index -> the tail nodes run after that event, in order.  ``inputs``:
    forward node -> its index among the region's extra outputs.  ``grads``: constant name ->
    the parameter whose ``.grad`` it was; ``live``: constant name -> the tensor whose array
    to read (a parameter for a ``detach()`` of it).  ``wanted``: the tail nodes whose values
    are read after their segment (results, ``item()``)."""

    def __init__(self, segments: dict, inputs: dict, constants: dict, grads: dict,
                 live: dict, wanted, xp):
        from .._functorch.aot_autograd import _op_class
        self.env = env = {"xp": xp, "_grad": _grad_of, "_vc": _version_counter, "_call": _call,
                          "_make": _make, "_asarray": _asarray, "_AT": _ARRAY_TYPES}
        self.names = names = {}   # node -> variable
        self.slot = {}            # node -> index in the values list (read after its segment)
        self.src = []
        later = set(wanted)
        tail = [n for nodes in segments.values() for n in nodes]
        seg_of = {n: i for i, nodes in segments.items() for n in nodes}
        for n in tail:
            for a in n.all_input_nodes:
                if a in seg_of and seg_of[a] != seg_of[n]:
                    later.add(a)
        for n in tail:
            if n in later:
                self.slot[n] = len(self.slot)
        self.n_slots = len(self.slot)
        self.roots = {}  # node -> the name of the tensor it writes through (a version bump)

        def bind(v) -> str:
            key = f"k{len(env)}"
            env[key] = v
            return key

        def spell(a, lines, local) -> str:
            """How segment code reads ``a`` (``local``: this segment's input variables)."""
            if isinstance(a, (list, tuple)):
                inner = ", ".join(spell(e, lines, local) for e in a)
                return f"[{inner}]" if isinstance(a, list) else f"({inner},)"
            if not hasattr(a, "op"):
                if isinstance(a, (int, float, bool, str, type(None))) and \
                        repr(a) not in ("inf", "-inf", "nan"):
                    return repr(a)
                return bind(a)
            if a in local:
                return local[a]
            if a in seg_of:
                if a in names and seg_of[a] == cur[0]:
                    return names[a]
                var = local[a] = f"v_{a.name}"  # a value of an earlier segment
                lines.append(f"{var} = V[{self.slot[a]}]")
                return var
            var = local[a] = f"x_{a.name}"
            if a.op == "get_attr":
                if a.target in grads:
                    tname = f"G_{a.name}"
                    lines.append(f"{tname} = _grad({bind(grads[a.target])})")
                    self.roots[a] = ("grad", a)
                else:
                    v = live.get(a.target, constants.get(a.target))
                    if not isinstance(v, Tensor):
                        local[a] = bind(v)
                        return local[a]
                    tname = self.roots[a] = bind(v)
            elif a in inputs:
                tname = self.roots[a] = f"X[{inputs[a]}]"
            else:
                raise TailError(f"a value the tail cannot read ({a.name})")
            lines.append(f"{var} = {tname}._data")
            return var

        def root_name(node, lines, local):
            r = self.roots.get(node)
            if isinstance(r, tuple):  # a gradient: its tensor as this segment read it
                spell(r[1], lines, local)
                return f"G_{r[1].name}"
            return r
        cur = [None]
        for i in sorted(segments):
            lines, local = [], {}
            cur[0] = i
            seg = segments[i]
            for j, n in enumerate(seg):
                var = names[n] = f"v_{n.name}"
                args = [spell(a, lines, local) for a in n.args]
                kw = {k: spell(v, lines, local) for k, v in n.kwargs.items()}
                if n.target is operator.getitem:
                    lines.append(f"{var} = {args[0]}[{args[1]}]")
                elif n.target is COPY_:
                    dst, val = args
                    lines.append(f"if {val} is not {dst}:")
                    lines.append(f"    {dst}[...] = {val}")
                    lines.append(f"{var} = {dst}")
                    if n.args[0] in self.roots:
                        self.roots[n] = self.roots[n.args[0]]
                        lines.append(f"_vc({root_name(n, lines, local)})[0] += 1")
                elif getattr(n.target, "__name__", "") == "detach":
                    lines.append(f"{var} = {args[0]}")
                    if n.args[0] in self.roots:
                        self.roots[n] = self.roots[n.args[0]]
                else:
                    cls = _op_class(n.target)
                    rest = ", ".join(args + [f"{k}={v}" for k, v in kw.items()])
                    into = _write_target(n, seg[j + 1] if j + 1 < len(seg) else None)
                    d = _direct_into(cls, n, args, into) if into is not None and not kw \
                        else None
                    if d is not None:  # an in-place op's result made in its target
                        lines += d.emit(var, spell(into, lines, local))
                    elif cls is not None:
                        scratch = _new(cls)
                        scratch.xp = xp
                        lines.append(f"{var} = {bind(cls.forward)}({bind(scratch)}, {rest})")
                        if isinstance(n.meta.get("val"), Tensor):  # a reduction's NumPy scalar
                            lines.append(f"if type({var}) not in _AT:")
                            lines.append(f"    {var} = _asarray({var})")
                    elif isinstance(n.target, Op):
                        kws = "{" + ", ".join(f"{k!r}: {v}" for k, v in kw.items()) + "}"
                        lines.append(f"{var} = _call({bind(n.target)}, "
                                     f"[{', '.join(args)}], {kws})")
                    else:
                        raise TailError(f"{n.target} after backward()")
                if n in self.slot:
                    lines.append(f"V[{self.slot[n]}] = {var}")
            src = f"def seg_{i}(X, V):\n" + "".join(f"    {line}\n" for line in lines) + \
                "    return V\n"
            self.src.append(src)
            exec(compile(src, f"<ember.compile tail {i}>", "exec"), env)
        self.run = {i: env[f"seg_{i}"] for i in segments}
        self.tensors = {n: r for n in wanted if isinstance(r := self.roots.get(n), str)}

    def value(self, values, node, extras) -> Tensor:
        """A wanted node's value after the tail ran: the tensor written in place (a returned
        ``p.mul_(...)``), else a fresh tensor of its array."""
        root = self.tensors.get(node)
        if root is not None:
            if root.startswith("X["):
                return extras[int(root[2:-1])]
            if root.startswith("k"):
                return self.env[root]
        return _make(values[self.slot[node]])
