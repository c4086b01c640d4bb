"""Dynamic shapes: one captured graph for every size of a dimension that varies.

NOTE [ Dynamic compiled graphs ]
ember's ops keep sizes as Python ints in their arguments (``view(x, (4, 5))``), so one capture
cannot tell a batch size from a constant.  When a call at a new size recompiles, the two
captures of the same code differ only in those ints; ``DynamicGraph`` turns each one into an
expression over the inputs' sizes (``symbolize``, NOTE [ Sizes from two captures ]: a
dimension, a product, a dimension times or plus a constant; anything else keeps the graph
static) and keeps that size-generic graph.  At a size not seen before it does not run the
user's Python again: it replays the graph op by op under the recorder (``_replay``: eager
autograd, so this call's numbers and gradients are eager's, random ops draw from the same
stream), and hands the recording to the backend, so the generated code, whose buffers are
planned for static shapes (NOTE [ Planned buffers ]), is made for that size and cached
(``counters["stats"]["dynamic_instances"]``).  No Python re-capture, no new guard entry: a
varying batch size or sequence length stops recompiling.

That replay and the formulas' trace cost a GPT-mini step 70-120 ms at each new size, so the
regions are made size-generic too (NOTE [ Size-generic regions ] in ``_functorch/generic.py``):
the captures' two regions (``seed``; a training step's capture region calls formulas that a
replay lowers, so there the first two replays) give a fit of every size-dependent constant as
an expression over the dynamic sizes (``sizes``), trusted once the next region built the
normal way is exactly what the fit gives at its size (``_learn``;
``counters["stats"]["generic_regions"]``).  From then on a new size gets that one region with
its constants evaluated (``GenericRegion.at``, ~0.2 ms for GPT-mini; ``generic_instances``):
no replay, no trace, no code generation; planned buffers come from the one pool by the spec
for the call's sizes.  A fit the check refutes is dropped and the next two regions are
fitted (three misfits: per size for good); ``GENERIC = False`` turns it off (A/B).

Guards (what the two captures assumed, checked before an instance runs): the rank, dtype and
layout of every input, the static dimensions' sizes (the general key), each dynamic dimension
>= 2 (sizes 0 and 1 are specialised, as PyTorch's: broadcasting and squeezes depend on them),
and dynamic dimensions that were equal in both captures still equal.  A replay runs each op
under the grad mode it was captured in and passes an argument detached where the capture's
did not require grad (``x.detach()`` leaves no node: its array is ``x``'s).  A region fit
holds only where the sizes its two regions shared keep that value (they tell the fit
nothing about themselves); elsewhere the size gets a region of its own.  Two points alone
cannot tell ``n`` from ``min(n, 6)`` nor ``n // 4`` from a constant: the second capture
tracks what Python does with the sizes, adds its size comparisons to the guards and keeps the
sizes static after any other non-linear use (NOTE [ Size decisions ] below).
"""
from __future__ import annotations

import operator
import sys

from .._size import Size, shape_of_array
from .._tensor import Tensor, _version_counter
from ..autograd.grad_mode import set_grad_enabled
from ..autograd.modes import Op, dispatch
from ..fx.experimental.proxy_tensor import COPY_, OP_BODY, OpRecorder, record
from ..fx.experimental.symbolic_shapes import SYM_SIZE, symbolize
from ..fx.node import map_arg
from . import config
from .utils import counters

__all__ = ["ATTEMPTS", "DynamicGraph", "general_leaf", "NotDynamic", "Snapshot", "size_maps",
           "resize"]

# second captures dynamic=True may try (NOTE [ dynamic=True ]): all sizes grown, shrunk, then
# one size at a time
ATTEMPTS = 4
GENERIC = True  # False: a region per size, as before NOTE [ Size-generic regions ] (A/B, tests)


class NotDynamic(Exception):
    """The two compiled versions differ in something sizes cannot explain."""


# ---- NOTE [ Size decisions ] -------------------------------------------------------------
# A graph fitted from two captures replays the Python that ran at them: a decision made on a
# size (``if x.shape[0] > 4``, ``min(n, 6)``, ``n // 2``) would be replayed at every size.
# So the capture that may make a graph size-generic (a new size of a code that has an entry
# differing only in sizes; ``dynamic=True``'s second capture) reads the dynamic sizes
# through ``SizeInt``: ``Tensor.shape``/``size()``/``numel()`` give one for every dimension
# whose size is a dynamic input size or a value that arithmetic on them made (one symbol per
# distinct size, PyTorch's duck shaping).  ``+``, ``-``, ``*`` and exact division keep a
# ``SizeInt`` (a polynomial over the symbols); a comparison (also ``bool``, ``min``/``max``,
# ``==``) whose outcome is not fixed by the sizes being >= 2 becomes a guard (``n > 4``,
# checked by ``DynamicGraph.ok``: the other side recompiles, as PyTorch's guards do); any
# other use (``//``, ``%``, ``/``, ``float``, ``**``, hashing, ``len()``) is "opaque": the
# sizes stay static (a graph per size, as before dynamic).  Ops that compute a size from an
# array's shape in their own Python (chunk's pieces, a pool's output length) are checked
# on the graph: a fitted size ``n + c`` that no tracked arithmetic made, or a node of an op
# that derives sizes by floor division over a dimension that varies, keeps the sizes
# static (``_derived``).


class _Audit:
    """What one capture's Python did with the dynamic sizes (NOTE [ Size decisions ])."""

    def __init__(self, syms):
        self.syms = syms        # symbol j -> (leaf index, dim) of its first input dimension
        self.values = {}        # size value -> expression (the symbols, arithmetic results)
        self.guards = []        # (expression, comparison, outcome)
        self.opaque = []        # one line per use that keeps the sizes static
        self.made = set()       # expressions arithmetic produced
        self.info = {}          # id(SizeInt) -> (its expression, it)

    def sizes(self, leaves) -> list:
        return [leaves[i]._data.shape[d] for i, d in self.syms]

    def holds(self, vals) -> bool:
        """Whether every guard holds at the symbols' values ``vals``."""
        return all(_CMP[op](_eval(e, vals), 0) is r for e, op, r in self.guards)


_tls = __import__("threading").local()
_CMP = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
        "eq": operator.eq, "ne": operator.ne}
_v = int.__int__  # a SizeInt's plain value, nothing recorded


def _expr(d: dict) -> tuple:
    return tuple(sorted((m, c) for m, c in d.items() if c))


def _lin(a, b, k=1) -> tuple:
    """``a + k * b`` (expressions, or ints as constants)."""
    d = dict(a) if isinstance(a, tuple) else ({(): a} if a else {})
    for m, c in (b if isinstance(b, tuple) else ((((), b),) if b else ())):
        d[m] = d.get(m, 0) + k * c
    return _expr(d)


def _prod(a, b) -> tuple:
    d = {}
    for m1, c1 in a:
        for m2, c2 in b:
            m = tuple(sorted(m1 + m2))
            d[m] = d.get(m, 0) + c1 * c2
    return _expr(d)


def _eval(e, vals):
    total = 0
    for m, c in e:
        for j in m:
            c = c * vals[j]
        total += c
    return total


def _bounds(e):
    """Lower and upper bound of ``e`` over symbols >= 2 (``None``: unbounded)."""
    const = sum(c for m, c in e if not m)
    rest = [c for m, c in e if m]
    at2 = _eval(e, _Twos())
    if all(c > 0 for c in rest):
        return at2, (const if not rest else None)
    if all(c < 0 for c in rest):
        return None, at2
    return None, None


class _Twos:
    def __getitem__(self, j):
        return 2


def _known(e, op):
    """The outcome of ``e <op> 0`` where the sizes being >= 2 fix it, else ``None``."""
    lo, hi = _bounds(e)
    pos = lo is not None and lo > 0      # > 0 at every size
    nonneg = lo is not None and lo >= 0
    neg = hi is not None and hi < 0
    nonpos = hi is not None and hi <= 0
    if op in ("gt", "le"):
        r = True if pos else False if nonpos else None
    elif op in ("ge", "lt"):
        r = True if nonneg else False if neg else None
    elif pos or neg:
        r = False
    else:
        r = True if lo == 0 and hi == 0 else None
    if r is None or op in ("gt", "ge", "eq"):
        return r
    return not r


def _live(x) -> bool:
    """Whether ``x`` is a size of the running probe capture, used outside a recorded op's
    own body (which the graph runs again at each size)."""
    a = getattr(_tls, "audit", None)
    if a is None or OP_BODY.depth or not isinstance(x, SizeInt):
        return False
    got = a.info.get(id(x))
    return got is not None and got[1] is x


class SizeInt(int):
    """A size read during a capture that may make a graph size-generic: an int that knows
    its expression over the dynamic sizes and reports what it is used for (NOTE [ Size
    decisions ])."""

    _ember_size = True  # the recorder writes it into graphs as a plain int
    # no __dict__ (an object the collector would track: more collections while capturing);
    # the expression lives in the audit, by id, the object held there
    __slots__ = ()

    def __new__(cls, value, expr, audit):
        self = int.__new__(cls, value)
        audit.info[id(self)] = (expr, self)
        return self

    @property
    def expr(self):
        return _tls.audit.info[id(self)][0]  # only read where ``_live``

    @property
    def audit(self):
        return _tls.audit

    def _other(self, o):
        """``o``'s expression (an int: a constant), or ``None`` (not an int)."""
        if _live(o):
            return o.expr
        if isinstance(o, int):
            return _lin((), _v(o))
        return None

    def _make(self, value, expr):
        a = self.audit
        a.made.add(expr)
        if not any(m for m, _ in expr):  # no symbol left (n - n): a plain int
            return int(value)
        if all(m for m, _ in expr):  # 2n, B*T: a size a tensor may have (n - 2 may be anything)
            a.values.setdefault(_v(value), expr)
        return SizeInt(value, expr, a)

    def _opaque(self, what, result):
        if _live(self):
            self.audit.opaque.append(f"{what} on a dynamic size ({_v(self)})")
        return result

    def _cmp(self, o, op):
        try:
            r = _CMP[op](_v(self), _v(o) if isinstance(o, int) else o)
        except TypeError:
            return NotImplemented
        if not _live(self):
            return r
        e = self._other(o)
        if e is None:  # a float: the guard is on the value itself
            self.audit.opaque.append(f"a comparison of a dynamic size with {o!r}")
            return r
        d = _lin(self.expr, e, -1)
        if _known(d, op) is None:
            self.audit.guards.append((d, op, r))
        return r

    def __lt__(self, o):
        return self._cmp(o, "lt")

    def __le__(self, o):
        return self._cmp(o, "le")

    def __gt__(self, o):
        return self._cmp(o, "gt")

    def __ge__(self, o):
        return self._cmp(o, "ge")

    def __eq__(self, o):
        return self._cmp(o, "eq")

    def __ne__(self, o):
        return self._cmp(o, "ne")

    def __bool__(self):
        return self._cmp(0, "ne")

    def __hash__(self):
        return self._opaque("hashing (a dict or set key)", int.__hash__(_v(self)))

    def _arith(self, o, k, rev=False):
        v = _v(self) + k * _v(o) if not rev else _v(o) - _v(self)
        if not _live(self):
            return v
        e = self._other(o)
        if e is None:
            return NotImplemented
        return self._make(v, _lin(self.expr, e, k) if not rev else _lin(e, self.expr, -1))

    def __add__(self, o):
        return self._arith(o, 1) if isinstance(o, int) else _v(self) + o

    __radd__ = __add__

    def __sub__(self, o):
        return self._arith(o, -1) if isinstance(o, int) else _v(self) - o

    def __rsub__(self, o):
        return self._arith(o, -1, True) if isinstance(o, int) else o - _v(self)

    def __mul__(self, o):
        if type(o) in (list, tuple):  # ``[b] * n``: a repeat the fit reads as one (``Rep``)
            return o * _v(self)
        if not isinstance(o, int):
            return self._opaque(f"multiplying by {type(o).__name__}", _v(self) * o)
        v = _v(self) * _v(o)
        if not _live(self):
            return v
        return self._make(v, _prod(self.expr, self._other(o)))

    __rmul__ = __mul__

    def __neg__(self):
        return self._arith(0, -1, True)

    def __pos__(self):
        return self

    def __floordiv__(self, o):
        v = _v(self).__floordiv__(o)
        if _live(self) and type(o) is int and o > 0 and all(c % o == 0 for _, c in self.expr):
            return self._make(v, tuple((m, c // o) for m, c in self.expr))  # exact
        return self._opaque(f"// {o!r}", v)

    def __mod__(self, o):
        v = _v(self).__mod__(o)
        if _live(self) and type(o) is int and o > 0 and all(c % o == 0 for _, c in self.expr):
            return 0  # a multiple of o at every size
        return self._opaque(f"% {o!r}", v)

    def __truediv__(self, o):
        return self._opaque(f"/ {o!r}", _v(self) / o)

    def __pow__(self, o, mod=None):
        if type(o) is int and 0 < o <= 4 and mod is None and _live(self):
            r = self
            for _ in range(o - 1):
                r = r * self
            return r
        return self._opaque(f"** {o!r}", pow(_v(self), o, mod))

    def _other_side(name, what):
        def f(self, o, *rest):
            return self._opaque(what, getattr(_v(self), name)(o, *rest))
        f.__name__ = name
        return f

    __rfloordiv__ = _other_side("__rfloordiv__", "a number // it")
    __rmod__ = _other_side("__rmod__", "a number % it")
    __rtruediv__ = _other_side("__rtruediv__", "a number / it")
    __rpow__ = _other_side("__rpow__", "a number ** it")
    __divmod__ = _other_side("__divmod__", "divmod")
    __rdivmod__ = _other_side("__rdivmod__", "divmod")
    __and__ = _other_side("__and__", "&")
    __rand__ = _other_side("__rand__", "&")
    __or__ = _other_side("__or__", "|")
    __ror__ = _other_side("__ror__", "|")
    __xor__ = _other_side("__xor__", "^")
    __rxor__ = _other_side("__rxor__", "^")
    __lshift__ = _other_side("__lshift__", "<<")
    __rshift__ = _other_side("__rshift__", ">>")
    del _other_side

    def __float__(self):
        return self._opaque("float()", float(_v(self)))

    def __abs__(self):
        return self

    def __int__(self):
        if _live(self):
            self.audit.made.add(self.expr)
        return _v(self)

    __index__ = __int__

    def __round__(self, n=None):
        return self

    __trunc__ = __floor__ = __ceil__ = __round__

    def __reduce__(self):
        return (int, (_v(self),))


class _TrackedSize(Size):
    """A ``Size`` of ``SizeInt``s that stays one when sliced."""

    __slots__ = ()

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return tuple.__new__(_TrackedSize, r) if isinstance(i, slice) else r

    def numel(self):
        n = 1
        for s in self:
            n = s * n
        return n


def _tracked(shape, audit):
    vals = audit.values
    return tuple.__new__(_TrackedSize, [SizeInt(n, vals[n], audit) if n in vals else n
                                        for n in shape])


class track_sizes:
    """Context: a capture whose dynamic sizes are ``SizeInt``s (NOTE [ Size decisions ]).
    ``dims``: leaf index -> dims; the audit is ``.audit`` (``None`` with no dims)."""

    def __init__(self, leaves, dims):
        self.audit = None
        if not dims:
            return
        syms, values = [], {}
        for i in sorted(dims):
            for d in sorted(dims[i]):
                n = leaves[i]._data.shape[d]
                if n not in values:
                    values[n] = _expr({(len(syms),): 1})
                    syms.append((i, d))
        self.audit = _Audit(syms)
        self.audit.values.update(values)

    def __enter__(self):
        if self.audit is not None:
            self.prev = getattr(_tls, "audit", None)
            _tls.audit = self.audit
            _patch(1)
        return self

    def __exit__(self, *exc):
        if self.audit is not None:
            _tls.audit = self.prev
            _patch(-1)
        return False


_NAMES = ("shape", "size", "numel", "nelement", "__len__")
_ORIG = {n: Tensor.__dict__[n] for n in _NAMES}
_patched = [0, __import__("threading").Lock()]  # captures tracking now, on any thread


def _shape(t):
    a = getattr(_tls, "audit", None)
    return shape_of_array(t._data) if a is None else _tracked(t._data.shape, a)


def _size(t, dim=None):
    a = getattr(_tls, "audit", None)
    if a is None or dim is None:
        return _ORIG["size"](t) if a is None and dim is None else \
            _ORIG["size"](t, dim) if a is None else _tracked(t._data.shape, a)
    n = _ORIG["size"](t, dim)
    e = a.values.get(n)
    return n if e is None else SizeInt(n, e, a)


def _numel(t):
    a = getattr(_tls, "audit", None)
    return _ORIG["numel"](t) if a is None else _tracked(t._data.shape, a).numel()


def _len(t):
    n = _ORIG["__len__"](t)
    a = getattr(_tls, "audit", None)
    if a is not None and n in a.values:
        a.opaque.append(f"len() of a tensor whose first dimension is dynamic ({n})")
    return n


_PATCHES = {"shape": property(_shape), "size": _size, "numel": _numel, "nelement": _numel,
            "__len__": _len}


def _patch(k: int) -> None:
    """Install the tracking size methods on ``Tensor`` while any capture tracks (they answer
    as the originals on a thread with no audit), the originals back after the last."""
    with _patched[1]:
        _patched[0] += k
        if _patched[0] == (1 if k > 0 else 0):
            for n in _NAMES:
                setattr(Tensor, n, _PATCHES[n] if k > 0 else _ORIG[n])


def _contiguous(shape, strides, itemsize) -> bool:
    want = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != want:
            return False
        want *= n
    return True


def general_leaf(k, dims):
    """A leaf's guard key with the sizes of ``dims`` left out (``_leaf_key``'s form)."""
    if not dims or k[0] in ("id",) or len(k) != 5:
        return k
    typ, shape, strides, dtype, rg = k
    lay = "C" if _contiguous(shape, strides, dtype.itemsize) else strides
    return (typ, tuple(None if i in dims else n for i, n in enumerate(shape)), lay, dtype, rg)


class Snapshot:
    """What running a function again may change, put back afterwards (NOTE [ dynamic=True ]):
    each tensor's array (the object and its values) and version counter, its ``.grad`` (the
    object and values), each optimizer's per-parameter state and flat buffers."""

    def __init__(self, tensors, optimizers):
        self.arrays = []    # (tensor, array, copy of its values, version, grad)
        self.grads = []     # (grad tensor, array, copy)
        self.flat = []      # (array, copy): Adam's flat group buffers
        self.opts = []      # (optimizer, {param: its state dict's items}, _flat dict)
        seen = set()
        for o in optimizers:
            st = {p: dict(s) for p, s in o.state.items()}
            self.opts.append((o, st, dict(getattr(o, "_flat", {}))))
            tensors = list(tensors) + [v for s in st.values() for v in s.values()
                                       if isinstance(v, Tensor)]
            for fg in getattr(o, "_flat", {}).values():
                for a in (fg.flat, fg.m, fg.v, fg.vmax, fg.steps):
                    if a is not None:
                        self.flat.append((a, a.copy()))
            for g in o.param_groups:
                tensors = tensors + list(g["params"])
        for t in tensors:
            if not isinstance(t, Tensor) or id(t) in seen:
                continue
            seen.add(id(t))
            g = t._grad
            self.arrays.append((t, t._data, t._data.copy(), _version_counter(t)[0], g))
            if g is not None and id(g) not in seen:
                seen.add(id(g))
                self.grads.append((g, g._data, g._data.copy()))

    def restore(self) -> None:
        for o, st, flat in self.opts:
            for p in [p for p in o.state if p not in st]:
                del o.state[p]
            for p, items in st.items():
                o.state[p].clear()
                o.state[p].update(items)
            if hasattr(o, "_flat"):
                o._flat = flat
        for a, c in self.flat:
            a[...] = c
        for t, a, c in self.grads:
            t._data = a
            a[...] = c
        for t, a, c, v, g in self.arrays:
            t._data = a
            if getattr(getattr(a, "flags", None), "writeable", True):
                a[...] = c
            _version_counter(t)[0] = v
            t._grad = g


def probe_dims(cache, key, leaves, dynamic) -> dict:
    """Leaf index -> dims a capture at ``key`` may make dynamic: those in which it differs
    from an earlier entry of the same code, and those already dynamic (NOTE [ Size
    decisions ]: that capture tracks them)."""
    from .eval_frame import _changed_dims, _general_key
    dims = {}
    for old_key, old in cache.entries.items():
        if old.run is None:
            continue
        for i, ds in (_changed_dims(old_key, key, leaves, dynamic) or {}).items():
            dims.setdefault(i, set()).update(ds)
    for dk, ddims, _, _ in cache.dynamic:
        if _general_key(key, ddims) == dk:
            for i, ds in ddims.items():
                dims.setdefault(i, set()).update(ds)
    return dims


def keep_audit(entry, ts) -> None:
    """Hand a probe capture's audit to its graph (``DynamicGraph`` reads it from there)."""
    if ts.audit is not None and entry.gm is not None:
        entry.gm.meta_sizes = ts.audit


def _ph_vals(gm) -> list:
    return [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]


def pair_ok(gm_new, gm_old) -> bool:
    """Whether the size comparisons the capture of ``gm_new`` made come out the same at the
    sizes of ``gm_old`` (else the two took different sides of a decision)."""
    audit = getattr(gm_new, "meta_sizes", None)
    if audit is None or not audit.guards:
        return True
    vals = _ph_vals(gm_old)
    try:
        return audit.holds([vals[i].shape[d] for i, d in audit.syms])
    except (AttributeError, IndexError):
        return False


def _check_sizes(audit, dims, vals, graph) -> None:
    """NOTE [ Size decisions ]: raise ``NotDynamic`` unless every dynamic size was tracked by
    the second capture, used linearly or in comparisons that hold at the first capture's
    sizes, and every ``n + c`` the fit put in the graph was made by tracked arithmetic."""
    if audit is None:
        raise NotDynamic("the capture did not track its sizes")
    if audit.opaque:
        raise NotDynamic(audit.opaque[0])
    for i, ds in dims.items():
        for d in ds:
            e = audit.values.get(vals[1][i].shape[d])
            if e is None or len(e) != 1 or len(e[0][0]) != 1 or e[0][1] != 1:
                raise NotDynamic(f"input {i} dim {d} was not tracked")
    if not audit.holds([vals[0][i].shape[d] for i, d in audit.syms]):
        raise NotDynamic("the two captures took different sides of a size comparison")
    phs = [n for n in graph.nodes if n.op == "placeholder"]
    for n in graph.nodes:
        if n.target is operator.add and len(n.args) == 2 and type(n.args[1]) is int and \
                getattr(n.args[0], "target", None) is SYM_SIZE:
            ph, ax = n.args[0].args
            sym = audit.values.get(vals[1][phs.index(ph)].shape[ax])
            if sym is None or _lin(sym, n.args[1]) not in audit.made:
                raise NotDynamic(f"a size {vals[1][phs.index(ph)].shape[ax] + n.args[1]} "
                                 f"(the dimension {n.args[1]:+d}) was computed inside an op "
                                 "from an array's shape (a floor division?), not by tracked "
                                 "arithmetic")


# ops whose arguments hold sizes their public function derived from the input's by floor
# division (NOTE [ Size decisions ]): op name -> the input axes they divide (chunk/split's
# pieces; a pool's output size, every axis but the first: channels do not vary); a pair of
# captures whose input differs along one cannot tell ``n // k`` from a constant.  (Conv's
# and interpolate's helper objects hold the input size: they differ, so stay static anyway.)
_DERIVED = {"split": lambda n, nd: (n.args[2],)}
_POOLS = ("max_pool", "avg_pool", "fractional_max_pool")


def _derived_axes(n):
    name = getattr(n.target, "__name__", "")
    if name in _DERIVED:
        return _DERIVED[name]
    if name.startswith(_POOLS):
        return lambda n, nd: range(1, nd)
    return None


def _check_derived(graph_a, graph_b) -> None:
    for n, m in zip(graph_a.nodes, graph_b.nodes):
        axes = _derived_axes(n) if n.op == "call_function" else None
        if axes is None:
            continue
        sa, sb = n.meta.get("shape0"), m.meta.get("shape0")
        if sa is None or sb is None or len(sa) != len(sb):
            raise NotDynamic(f"{n.target.__name__} of an unknown input")
        for ax in axes(n, len(sa)):
            if sa[ax] != sb[ax]:
                raise NotDynamic(f"{n.target.__name__} divides a dimension that varies "
                                 f"({sa[ax]}, then {sb[ax]}): its pieces' sizes are floor "
                                 "divisions")


def size_maps(shapes, static):
    """Candidate size changes for a second capture (NOTE [ dynamic=True ]): dicts old size ->
    new size, most dimensions first.  ``shapes``: the tensor inputs' shapes; ``static``: per
    input the dimensions marked static.  A size that is the product of a run of adjacent
    dimensions of another input (a flattened target) follows them."""
    derived = {}
    for sh in shapes:
        for i in range(len(sh)):
            for j in range(i + 2, len(sh) + 1):
                run = sh[i:j]
                prod = 1
                for n in run:
                    prod *= n
                if all(n >= 2 for n in run) and prod not in sh:
                    derived.setdefault(prod, run)
    free = sorted({n for sh, st in zip(shapes, static) for d, n in enumerate(sh)
                   if n >= 2 and d not in st and n not in derived})
    lead = [n for n in free if any(len(sh) and sh[0] == n for sh in shapes)]
    grow = {n: n + 3 + 2 * j for j, n in enumerate(free)}  # order (so distinctness) kept
    # equal sizes move equally (PyTorch's duck shaping: one symbol per distinct size); n // 2
    # moves too (a step of 1 would let n // 2 pass for n - c)
    shrink = {n: n - 2 for n in free if n >= 4}
    plans = [grow, shrink]
    plans += [{n: grow[n]} for n in lead] + [{n: grow[n]} for n in free if n not in lead]
    out = []
    for plan in plans:
        if not plan:
            continue
        full = dict(plan)
        for prod, run in derived.items():
            if any(n in plan for n in run):
                v = 1
                for n in run:
                    v *= plan.get(n, n)
                full[prod] = v
        if full not in out:
            out.append(full)
    return out


def resize(t, sizes: dict, static=()):
    """``t`` with each dimension's size ``n`` made ``sizes[n]`` (its own entries repeated or
    cut), detached, ``requires_grad`` as ``t``'s."""
    from .. import arange
    out = t.detach()
    for d, n in enumerate(t.shape):
        m = sizes.get(n)
        if m is not None and d not in static:
            out = out.index_select(d, arange(m) % n)
    return out.requires_grad_(t.requires_grad) if out is not t else t


def key_shapes(leaves) -> list:
    return [t._data.shape if isinstance(t, Tensor) else () for t in leaves]


class _Replayer:
    """A generic instance's ``gm``: the size-generic graph run with eager autograd."""

    def __init__(self, dg):
        self.dg = dg

    def __call__(self, *flat):
        return self.dg._replay(flat)


class DynamicGraph:
    """A size-generic graph from two captures (NOTE [ Dynamic compiled graphs ]).

    ``graph(*leaves)`` runs the compiled instance for the leaves' sizes (made on first use);
    ``ok(leaves)`` checks the guards the two captures assumed."""

    def __init__(self, gm_a, gm_b, compiler, dims: dict):
        from ..fx.graph import Graph
        self.dims = dims              # leaf index -> dynamic dimensions
        g = Graph()
        out = g.graph_copy(gm_a.graph, {})
        g.output(out)
        consts = {n.target: getattr(gm_a, n.target) for n in gm_a.graph.nodes
                  if n.op == "get_attr"}
        consts_b = {n.target: getattr(gm_b, n.target) for n in gm_b.graph.nodes
                    if n.op == "get_attr"}
        _check_derived(gm_a.graph, gm_b.graph)  # NOTE [ Size decisions ]
        problems = symbolize(g, gm_b.graph, consts, consts_b, fill_constants=True)
        if problems:
            raise NotDynamic(problems[0])
        vals = [_ph_vals(gm) for gm in (gm_a, gm_b)]
        self.audit = getattr(gm_b, "meta_sizes", None)
        _check_sizes(self.audit, dims, vals, g)
        self.graph, self.consts, self.compiler = g, consts, compiler
        self.known = [v for v in consts.values() if isinstance(v, Tensor)]
        groups = {}  # dynamic dims equal in both captures: the graph may rely on it
        for i, ds in dims.items():
            for d in ds:
                groups.setdefault((vals[0][i].shape[d], vals[1][i].shape[d]), []).append((i, d))
        for i, ds in dims.items():  # one symbol per distinct size: they stay equal
            for d in ds:
                groups.setdefault(("sym", vals[1][i].shape[d]), []).append((i, d))
        self.equal = [grp for grp in groups.values() if len(grp) > 1]
        self.instances = {}
        self.generic = None   # a trusted GenericRegion (NOTE [ Size-generic regions ])
        self._fit = None      # a fit from two regions, not yet checked at a third size
        self._built = []      # (dynamic sizes, region) of the last two regions built by replay
        self._misfits = 0
        self.fixed = None     # a user backend's callable for every size (NOTE [ Custom
        # backends and sizes ] in eval_frame.py)

    def sizes(self, shapes) -> tuple:
        """The dynamic sizes of inputs with these shapes, in ``dims`` order."""
        return tuple(shapes[i][d] for i in sorted(self.dims) for d in sorted(self.dims[i]))

    def seed(self, *runs) -> None:
        """Learn from the regions the captures compiled (a training step's program holds its
        region as ``run``): two make the fit that the next size's region checks."""
        from .._functorch.aot_autograd import CompiledRegion
        for r in runs:
            if not isinstance(r, CompiledRegion):
                r = getattr(r, "run", None)
            if isinstance(r, CompiledRegion) and r._ph_vals and \
                    all(isinstance(r._ph_vals[i], Tensor) for i in self.dims):
                self._learn(self.sizes([t._data.shape if isinstance(t, Tensor) else ()
                                        for t in r._ph_vals]), r)
        if self._fit is None and len(self._built) == 2:
            # a training step's capture ran its backward before lowering, so its region calls
            # the formulas that a replay's lowers: no fit with those; the replays make one
            self._built, self._misfits = [], 0

    def _learn(self, s, region) -> None:
        """NOTE [ Size-generic regions ]: check the pending fit against ``region``, built the
        normal way at sizes ``s`` (trusted if it reproduces it), else fit the last two."""
        from .._functorch.generic import GenericRegion, NoFit
        from .eval_frame import _log_on
        if self.generic is not None or self._misfits >= 3 or not GENERIC:
            return
        if self._fit is not None:
            if self._fit.matches(region, s):
                self.generic = self._fit
                self._built = []
                counters["stats"]["generic_regions"] += 1
                if _log_on("dynamic"):
                    print(f"[ember.compile] one region for every size of dims {self.dims}: "
                          f"{len(self.generic.env) + len(self.generic.slots)} constants "
                          "are size expressions", file=sys.stderr)
                return
            self._fit = None
            self._misfits += 1
        if self._built and self._built[-1][0] == s:
            return
        self._built = (self._built + [(s, region)])[-2:]
        if len(self._built) == 2:
            (sa, a), (sb, b) = self._built
            try:
                self._fit = GenericRegion(a, b, sa, sb)
                # a size the two regions share tells the fit nothing about itself: the fit
                # holds only where it keeps that value (else a region per size)
                self._fit.fixed = [(j, n) for j, (n, m) in enumerate(zip(sa, sb)) if n == m]
            except NoFit as e:
                self._misfits += 1
                if _log_on("dynamic"):
                    print(f"[ember.compile] the region stays per size: {e}", file=sys.stderr)

    def ok(self, leaves) -> bool:
        for i, ds in self.dims.items():
            shape = leaves[i]._data.shape
            for d in ds:
                if shape[d] < 2:  # 0 and 1 are specialised
                    return False
        for grp in self.equal:
            i0, d0 = grp[0]
            n = leaves[i0]._data.shape[d0]
            if any(leaves[i]._data.shape[d] != n for i, d in grp[1:]):
                return False
        audit = self.audit  # the size comparisons the capture made (NOTE [ Size decisions ])
        return not audit.guards or audit.holds(audit.sizes(leaves))

    def __call__(self, *leaves):
        key = tuple(leaves[i]._data.shape for i in self.dims)
        inst = self.instances.get(key)
        if inst is not None:
            return inst(*leaves)
        if self.fixed is not None:
            self._keep(key, self.fixed)
            return self.fixed(*leaves)
        s = self.sizes(key_shapes(leaves))
        if self.generic is not None and all(s[j] == n for j, n in self.generic.fixed):
            inst = self.generic.at(s)  # the one region, its constants at these sizes
            inst.gm = _Replayer(self)  # create_graph recomputes with this size's graph
            self._keep(key, inst)
            counters["stats"]["generic_instances"] += 1
            return inst(*leaves)
        rec = OpRecorder(forward_only=True)
        recording = record(lambda *a: self._replay(a), leaves, known=self.known, recorder=rec)
        gm = recording.graph_module()
        gm.meta_no_fold = True  # a generic region needs the same constants at every size
        inst = self.compiler(gm, list(leaves))
        self._keep(key, inst)
        counters["stats"]["dynamic_instances"] += 1
        self._learn(s, inst)
        return recording.result

    def _keep(self, key, inst) -> None:
        if len(self.instances) >= config.dynamic_instance_limit:
            self.instances.pop(next(iter(self.instances)))  # the oldest size's code
        self.instances[key] = inst

    def _replay(self, leaves):
        """Run the graph's ops on ``leaves`` with eager autograd, each offered to the modes."""
        env = {}
        it = iter(leaves)
        for n in self.graph.nodes:
            if n.op == "placeholder":
                env[n] = next(it)
                continue
            if n.op == "get_attr":
                env[n] = self.consts[n.target]
                continue
            args = map_arg(n.args, env.__getitem__)
            if n.op == "output":
                return args[0]
            kwargs = map_arg(n.kwargs, env.__getitem__)
            rg = n.meta.get("arg_rg")
            if rg is not None:
                args = tuple(_detached(a, r) for a, r in zip(args, rg))
            f = n.target
            with set_grad_enabled(n.meta.get("grad_mode", True)):  # a no_grad() block's ops
                if isinstance(f, Op) and f is not SYM_SIZE and f is not COPY_ and \
                        not isinstance(getattr(f._fn, "__self__", None), type):
                    # an offered function or a dropout mask: a node of the recording, not a
                    # constant (the recorder sees Function ops and in-place writes by itself)
                    env[n] = dispatch(f, args, kwargs, f._fn)
                else:
                    env[n] = f(*args, **kwargs)
        return None


def _detached(a, rg):
    """Argument ``a`` as the capture passed it: detached where it did not require grad then
    (``x.detach()`` leaves no node: its array is ``x``'s, so the graph names ``x``)."""
    if rg is False and isinstance(a, Tensor) and a._requires_grad:
        return a.detach()
    if isinstance(rg, tuple) and isinstance(a, (list, tuple)):
        return type(a)(_detached(e, r) for e, r in zip(a, rg))
    return a
