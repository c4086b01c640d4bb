"""One compiled region for every size of a dynamic graph: its size-dependent constants as
expressions over the dynamic sizes.

NOTE [ Size-generic regions ]
A dynamic graph (NOTE [ Dynamic compiled graphs ] in ``_dynamo/dynamic.py``) compiled at two
sizes gives two ``CompiledRegion``s whose generated code differs only in constants: the
shapes passed to reshape/expand/sum-to-size in the backward, the buffer plan's shapes
(``_fspec``), dropout's mask shape, an ``n`` a mean's gradient divides by (a number in the
source text).  ``GenericRegion(a, b, sa, sb)`` lines the two up (each global of the code,
walked through tuples and lists, and the source texts token by token) and fits every
constant that differs as ``c * t + d`` with integers ``c != 0`` and ``d``, where ``t`` is one
dynamic size or the product of two (``sa``/``sb``: the dynamic sizes of each region's
inputs, in ``DynamicGraph.dims`` order); a float is the float of such an expression or its
reciprocal.  Pure multiples (``d == 0``) are tried first.  Everything else must be the same
object or an equal value (the same op classes, pools, functions with the same code and
closure).  Anything that does not fit raises ``NoFit``, and the graph keeps compiling per size.

Two points fix a line but cannot tell it from a curve (``n // 2`` at 8 and 10 is 4, 5: a line
``n / 2`` has no integer slope, but ``n // 4`` at 2 and 3 is constant), so the caller trusts
a fit only after ``matches`` shows it reproduces, exactly, a region built the normal way at a
third size (the same source text, the same value for every constant).  After that, ``at(s)``
makes the region for sizes ``s`` without replaying the graph or tracing the formulas: a
shallow copy of the first region whose globals hold the expressions' values, its forward and
backward made from the same code objects (``_compile`` caches them by source text), its
planned buffers taken from the one shared ``BufferPool`` by the spec for these sizes.
Decisions the code generator took from example values that are not constants (a fresh
result from the workspace when it is large) are the first region's; they change where an
array lives, never its numbers.
"""
from __future__ import annotations

import copy
import io
import re
import tokenize
from ast import literal_eval

from ..autograd.function import Function
from .._backend import xp_of
from .._tensor import Tensor, _make
from .aot_autograd import CompiledRegion, _compile
from .codegen import BufferPool

__all__ = ["GenericRegion", "NoFit"]

_SAME_VALUE = (int, str, bool, bytes, type(None), complex)


class NoFit(Exception):
    """Two regions differ in something an expression over the sizes cannot give."""


def _terms(m: int) -> list:
    """Index tuples of the terms a constant may be linear in: each size, each product."""
    return [(j,) for j in range(m)] + [(j, k) for j in range(m) for k in range(j, m)]


def _term(t, s) -> int:
    v = 1
    for j in t:
        v *= s[j]
    return v


def _fit_int(va: int, vb: int, sa, sb):
    """``(term, c, d)`` with ``c * term + d`` equal to ``va`` at ``sa`` and ``vb`` at ``sb``."""
    terms = _terms(len(sa))
    for pure in (True, False):
        for t in terms:
            xa, xb = _term(t, sa), _term(t, sb)
            if xa == xb:
                continue
            c, r = divmod(vb - va, xb - xa)
            if r or c == 0:
                continue
            d = va - c * xa
            if pure and d:
                continue
            return t, c, d
    return None


def _fit(va, vb, sa, sb):
    """A node of the constants' tree: ``("k", value)`` (the same at every size), ``("i" |
    "f" | "r", term, c, d)`` (int, float, reciprocal), ``("t", type, children)``, ``("sl",
    node)`` (a slice), ``("b", xp, value, shape)`` (one value broadcast to a shape),
    ``("rep", item, count)`` (a tuple of one value repeated)."""
    t = type(va)
    if t is not type(vb):
        raise NoFit(f"{va!r} vs {vb!r}")
    if t is int:
        if va == vb:
            return ("k", va)
        e = _fit_int(va, vb, sa, sb)
        if e is None:
            raise NoFit(f"{va} vs {vb}: no size expression")
        return ("i",) + e
    if t is float:
        if va == vb or va != va and vb != vb:
            return ("k", va)
        if va.is_integer() and vb.is_integer():
            e = _fit_int(int(va), int(vb), sa, sb)
            if e is not None:
                return ("f",) + e
        if va and vb:  # a reciprocal 1 / n (a mean's scale), checked exact at both sizes
            ia, ib = round(1.0 / va), round(1.0 / vb)
            if ia and ib and 1.0 / ia == va and 1.0 / ib == vb:
                e = _fit_int(ia, ib, sa, sb)
                if e is not None:
                    return ("r",) + e
        raise NoFit(f"{va} vs {vb}: no size expression")
    if issubclass(t, (tuple, list)):  # Size, a namedtuple of shapes (a norm's layout) too
        if t is tuple and va and vb and len(va) != len(vb) and \
                all(type(e) is int for e in va + vb) and len(set(va)) == 1 and len(set(vb)) == 1:
            # one size repeated another's number of times (an RNN's per-step batch sizes)
            return ("rep", _fit(va[0], vb[0], sa, sb), _fit(len(va), len(vb), sa, sb))
        if len(va) != len(vb):
            raise NoFit(f"{t.__name__} of {len(va)} vs {len(vb)} items")
        kids = [_fit(x, y, sa, sb) for x, y in zip(va, vb)]
        if all(k[0] == "k" for k in kids):
            return ("k", va)
        return ("t", t, kids)
    if t is slice:
        node = _fit((va.start, va.stop, va.step), (vb.start, vb.stop, vb.step), sa, sb)
        return ("k", va) if node[0] == "k" else ("sl", node)
    if _same(va, vb):
        return ("k", va)
    if _filled(va) and _filled(vb) and va._data.dtype == vb._data.dtype and \
            va._data.ndim == vb._data.ndim:
        x, y = va._data.reshape(-1)[0], vb._data.reshape(-1)[0]
        if x == y or x != x and y != y:  # a zero-memory template (a missing gradient's shape)
            return ("b", xp_of(va._data), x, _fit(tuple(va._data.shape),
                                                   tuple(vb._data.shape), sa, sb))
    raise NoFit(f"{t.__name__} constants differ")


def _filled(v) -> bool:
    """``v`` is a tensor over one element broadcast to its shape (every stride 0)."""
    return isinstance(v, Tensor) and v._data.size > 0 and not any(v._data.strides)


def _same(a, b) -> bool:
    """Two values a region's code may take for one another at every size."""
    if a is b:
        return True
    t = type(a)
    if t is not type(b):
        return False
    if t in _SAME_VALUE or t is float:
        return a == b or a != a and b != b
    if isinstance(a, (Function, BufferPool)):  # scratch contexts, the regions' buffer pools
        return True
    code = getattr(a, "__code__", None)
    if code is not None:  # the region's helper lambdas: the same code over the same cells
        return code is getattr(b, "__code__", None) and \
            [c.cell_contents for c in a.__closure__ or ()] == \
            [c.cell_contents for c in b.__closure__ or ()]
    if hasattr(a, "dtype") and hasattr(a, "shape") and not hasattr(a, "_data"):  # an array
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    try:
        return (a == b) is True
    except Exception:  # noqa: BLE001 (an object whose comparison fails is not the same)
        return False


def _eval(node, s):
    kind = node[0]
    if kind == "k":
        return node[1]
    if kind == "t":
        vals = [_eval(k, s) for k in node[2]]
        return node[1](*vals) if hasattr(node[1], "_fields") else node[1](vals)
    if kind == "sl":
        return slice(*_eval(node[1], s))
    if kind == "rep":
        return (_eval(node[1], s),) * _eval(node[2], s)
    if kind == "b":
        return _make(node[1].broadcast_to(node[2], _eval(node[3], s)))
    _, t, c, d = node
    v = c * _term(t, s) + d
    if kind == "i":
        return v
    return float(v) if kind == "f" else 1.0 / v


def _check(node, v, s) -> bool:
    """Whether value ``v`` of a region built at sizes ``s`` is what ``node`` gives there."""
    kind = node[0]
    if kind == "k":
        want = node[1]
        if isinstance(want, (tuple, list)):
            return type(v) is type(want) and len(v) == len(want) and \
                all(_check(("k", x), y, s) for x, y in zip(want, v))
        return _same(want, v)
    if kind == "t":
        return type(v) is node[1] and len(v) == len(node[2]) and \
            all(_check(k, x, s) for k, x in zip(node[2], v))
    if kind == "sl":
        return type(v) is slice and _check(node[1], (v.start, v.stop, v.step), s)
    if kind == "rep":
        return type(v) is tuple and v == _eval(node, s)
    if kind == "b":
        if not _filled(v) or v._data.dtype != node[2].dtype:
            return False
        x = v._data.reshape(-1)[0]
        return (x == node[2] or x != x and node[2] != node[2]) and \
            _check(node[3], tuple(v._data.shape), s)
    want = _eval(node, s)
    return type(v) is type(want) and v == want


def _numbers(src: str) -> list:
    """The tokens of generated source ``src``: (type, text, start, end)."""
    return [(t.type, t.string, t.start, t.end)
            for t in tokenize.generate_tokens(io.StringIO(src).readline)]


def _norm(src: str) -> str:
    """``src`` without its workspace allocations (``_wsl``: a fresh array from the workspace
    where it is large, NOTE [ Workspace ]): where an array lives, never its numbers, so two
    sizes on either side of the threshold are the same program."""
    return _WSL_ARG.sub("None", _WSL_OUT.sub("", src))


_WSL_OUT = re.compile(r", out=_wsl\([\w.]+\)")
_WSL_ARG = re.compile(r"_wsl\([\w.]+\)")


def _row_numbers(toks) -> dict:
    """Row -> the NUMBER tokens on it, in order."""
    rows = {}
    for t in toks:
        if t[0] == tokenize.NUMBER:
            rows.setdefault(t[2][0], []).append(t)
    return rows


def _source(sa: str, sb: str, prefix: str, sizes_a, sizes_b):
    """The source of ``sa`` and ``sb`` that allocates from the workspace more (the larger
    size's), with each number that differs between them replaced by a global named ``prefix``
    and an index, and those globals' fits: ``(template source, [(name, node)])``."""
    raw = sa if sa.count("_wsl(") >= sb.count("_wsl(") else sb
    na, nb = _norm(sa), _norm(sb)
    if na == nb:
        return raw, []
    ta, tb = _numbers(na), _numbers(nb)
    if len(ta) != len(tb):
        raise NoFit("the generated code differs")
    rows = _row_numbers(ta)
    slots = []  # (row, index among the row's numbers, node)
    for x, y in zip(ta, tb):
        if x[:2] == y[:2]:
            continue
        if x[0] != tokenize.NUMBER or y[0] != tokenize.NUMBER or x[2][0] != x[3][0]:
            raise NoFit("the generated code differs")
        node = _fit(literal_eval(x[1]), literal_eval(y[1]), sizes_a, sizes_b)
        slots.append((x[2][0], rows[x[2][0]].index(x), node))
    # _norm drops no number and keeps every line, so the k-th number of a row is the same
    # number in the raw source
    raw_rows = _row_numbers(_numbers(raw))
    lines = raw.splitlines(True)
    names = []
    for i, (row, k, node) in reversed(list(enumerate(slots))):
        tok = raw_rows[row][k]
        c0, c1 = tok[2][1], tok[3][1]
        name = f"{prefix}{i}"
        lines[row - 1] = lines[row - 1][:c0] + name + lines[row - 1][c1:]
        names.append((name, node))
    return "".join(lines), names[::-1]


def _render(src: str, slots, s) -> str:
    """The template source with the slots' values at sizes ``s`` spelled as the code
    generator spells them (``repr``), for comparing with a region built the normal way."""
    for name, node in slots:
        src = re.sub(rf"\b{name}\b", repr(_eval(node, s)), src)
    return src


_ATTRS = ("_tensor_args", "_n_placeholders", "_random", "_nondiff", "_n_region_outs",
          "_single", "_out_spec", "records", "options", "_out_views", "_grad_inside")


class GenericRegion:
    """A ``CompiledRegion`` for every size of its dynamic dimensions (NOTE [ Size-generic
    regions ]), fitted from regions ``a`` and ``b`` built at dynamic sizes ``sa`` and ``sb``."""

    def __init__(self, a, b, sa, sb):
        if type(a) is not CompiledRegion or type(b) is not CompiledRegion:
            raise NoFit("not a compiled region")
        for attr in _ATTRS:
            if getattr(a, attr) != getattr(b, attr):
                raise NoFit(f"the regions' {attr} differ")
        if len(a._consts) != len(b._consts) or \
                any(x is not y for x, y in zip(a._consts, b._consts)):
            raise NoFit("the regions read different constant tensors")
        if (a._bwd is None) != (b._bwd is None):
            raise NoFit("one region has a backward")
        self.base = a
        self.fsrc, fslots = _source(a.forward_src, b.forward_src, "_zf", sa, sb)
        self.bsrc, bslots = _source(a.backward_src, b.backward_src, "_zb", sa, sb)
        self.slots = fslots + bslots
        ea, eb = a._env, b._env
        if ea.keys() != eb.keys():
            raise NoFit("the regions' globals differ")
        self.env = {}   # global -> node, only those that vary
        for k, va in ea.items():
            node = _fit(va, eb[k], sa, sb)
            if node[0] != "k":
                self.env[k] = node
        self.outs = _fit(a._out_leaves, b._out_leaves, sa, sb)

    def matches(self, r, s) -> bool:
        """Whether region ``r``, built the normal way at sizes ``s``, is what ``at(s)``
        would give (the check before a fit is trusted)."""
        a = self.base
        if type(r) is not CompiledRegion or any(getattr(a, x) != getattr(r, x)
                                                for x in _ATTRS):
            return False
        if len(r._consts) != len(a._consts) or \
                any(x is not y for x, y in zip(a._consts, r._consts)):
            return False
        fs = [sl for sl in self.slots if sl[0].startswith("_zf")]
        bs = [sl for sl in self.slots if sl[0].startswith("_zb")]
        if _norm(_render(self.fsrc, fs, s)) != _norm(r.forward_src) or \
                _norm(_render(self.bsrc, bs, s)) != _norm(r.backward_src):
            return False
        if r._env.keys() != a._env.keys():
            return False
        for k, v in r._env.items():
            node = self.env.get(k)
            if not (_check(node, v, s) if node is not None else _check(("k", a._env[k]), v, s)):
                return False
        return _check(self.outs, r._out_leaves, s)

    def at(self, s):
        """The region at dynamic sizes ``s``: the base region's code over constants for them."""
        a = self.base
        env = dict(a._env)
        for k, node in self.env.items():
            env[k] = _eval(node, s)
        for name, node in self.slots:
            env[name] = _eval(node, s)
        r = copy.copy(a)
        r._env = env
        r._fwd = _compile(self.fsrc, env, "forward")
        r._bwd = None if a._bwd is None else _compile(self.bsrc, env, "backward")
        r._out_leaves = _eval(self.outs, s)
        r.forward_src, r.backward_src = _render(self.fsrc, [x for x in self.slots
                                                            if x[0].startswith("_zf")], s), \
            _render(self.bsrc, [x for x in self.slots if x[0].startswith("_zb")], s)
        return r
