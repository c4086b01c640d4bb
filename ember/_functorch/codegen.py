"""Direct array code for common ops, and the buffer plan that lets them write with ``out=``.

NOTE [ Planned buffers ]
The generated forward and backward (NOTE [ Compiled regions ]) call each op's own array-level
``forward``, which allocates its result.  For the ops in ``_DIRECT`` (binary arithmetic,
single-ufunc unaries, ``relu`` and its mask-multiply gradient, 2-d products and ``linear``)
this module spells the same computation as NumPy calls that take an ``out=`` array, so that:

- a value that never leaves the region (not returned, not kept for backward, every reader a
  direct op, which reads its inputs and keeps nothing) lives in a buffer allocated once per
  compiled shape (``Plan``); buffers whose values' lifetimes do not overlap are shared
  (linear scan in program order, keyed by shape and dtype);
- an elementwise op whose input is such a value read for the last time writes into that
  input's buffer: a chain ``x * 0.9 + b - 0.1`` runs as in-place passes over one array, and
  linear's bias add and a following ``relu`` run in place on the product;
- a value that escapes (returned, saved for backward, read by an op that may keep it or view
  it) is computed into a fresh array, as eager does: it can never alias a reused buffer; a
  large one comes from the workspace (NOTE [ Workspace ]), as eager's products do; an
  escaping elementwise result whose input is a value only it reads writes over that input,
  which is then made fresh instead of planned (linear + relu saved for backward: one array
  written and read while hot, not a planned buffer and a fresh one);
- in the backward (``aot_autograd._formula_lines``) an elementwise op writes into a gradient or
  temporary it reads for the last time when that backward made the array and nothing else
  refers to it (never the caller's incoming gradient, a view, or an array two gradients
  share): relu's gradient runs in place on the product's gradient, as eager's two exact
  passes over the arrays' bits (``relu_grad_into``: the same bits, no finiteness check).

Each lowering computes bit for bit what the op's ``forward`` computes: the same ufunc on the
same operands, only with ``out=``; an op is lowered only where its operands are float32 or
float64 arrays of the result's dtype (or Python numbers), so no casting rule differs.  The
buffers of one region form a set taken from a pool at the start of a call and given back at
its end, so two threads (or a re-entrant call) never share a set.
"""
from __future__ import annotations

import warnings

from ..ops import elementwise as _ew
from ..ops import linalg as _la
from ..ops import layers as _layers
from ..ops import reduce as _red
from ..ops import _workspace as _ws
from ..ops import _pointwise as _pw

__all__ = ["direct", "Plan", "BufferPool", "relu_grad_into", "fresh_mm", "GENERATED"]

# The module name of generated forward/backward code.  NumPy warns on floating-point edge
# cases PyTorch computes silently (NOTE [ Floating-point warnings ] in ops/elementwise.py);
# the ops' own module filter does not reach a ufunc the generated code calls, this one does
# (and the helpers here and in aot_autograd.py: relu's gradient multiplies inf by 0 as the op
# does, cross-entropy's exp of NaN logits, NOTE [ Compiled cross-entropy ]).
GENERATED = "ember._functorch.generated"
warnings.filterwarnings("ignore", category=RuntimeWarning,
                        module=r"ember\._functorch\.(generated|codegen|aot_autograd)$")

_FLOATS = ("float32", "float64")
_BITS = True  # relu's gradient on integer views (False: the float mask; tests compare)
_SIZES_KEPT = 8  # buffer sets kept for this many sizes of one dynamic graph


def _is_arr(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _float_like(v, dt) -> bool:
    """``v`` is an array of dtype ``dt`` or a plain Python number (never a bool)."""
    if _is_arr(v):
        return v.dtype == dt
    return type(v) in (int, float)


_BINARY = {_ew.Add: "add", _ew.Sub: "subtract", _ew.Mul: "multiply", _ew.Div: "true_divide"}
_UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Sin": "sin", "Cos": "cos",
          "Tanh": "tanh", "Expm1": "expm1", "Log1p": "log1p"}


class Direct:
    """One op's direct spelling: ``emit(dest, out)`` gives the lines computing ``dest`` (into
    buffer ``out``, or a fresh array when ``out`` is ``None``); ``elementwise`` ops may write
    into their own input."""

    def __init__(self, fmt, fresh, elementwise: bool, like=None):
        self.fmt = fmt          # lines with {d} (destination) and {o} (", out=BUF" or "")
        self.fresh = fresh      # lines for a fresh result (None: fmt with {o} empty)
        self.elementwise = elementwise
        self.like = like        # an operand of the result's shape and dtype, if large

    def emit(self, dest: str, out):
        if out is None:
            if self.fresh is not None:
                return [s.format(d=dest) for s in self.fresh]
            if self.like is not None:  # a large fresh result: a workspace block, no faults
                out = f"_wsl({self.like})"
                return [s.format(d=dest, o=f", out={out}", b=out) for s in self.fmt]
            return [s.format(d=dest, o="", b=dest) for s in self.fmt]
        return [s.format(d=dest, o=f", out={out}", b=out) for s in self.fmt]


def _like(args, vals, out_val):
    """The first array operand of ``out_val``'s shape and dtype, where ``out_val`` is large
    enough for a fresh allocation to fault its pages (NOTE [ Workspace ])."""
    if out_val.nbytes < _ws.MIN_BYTES:
        return None
    for a, v in zip(args, vals):
        if _is_arr(v) and v.shape == out_val.shape and v.dtype == out_val.dtype:
            return a
    return None


def direct(cls, args: list, vals: list, kwargs: dict, out_val, zeros):
    """A ``Direct`` for op class ``cls`` called with argument spellings ``args`` (example
    values ``vals``) producing ``out_val``, or ``None`` where the op keeps its own forward;
    ``zeros(shape, dtype)`` spells a read-only array of zeros."""
    if not _is_arr(out_val) or out_val.dtype.name not in _FLOATS:
        return None
    dt = out_val.dtype
    shape = out_val.shape
    if cls in _BINARY:
        if kwargs or len(vals) < 3 or vals[2] != dt:
            return None
        a, b = vals[0], vals[1]
        if len(vals) > 3 and vals[3] != 1:  # alpha
            return None
        if not (_float_like(a, dt) and _float_like(b, dt)) or not (_is_arr(a) or _is_arr(b)):
            return None
        fn = _BINARY[cls]
        return Direct([f"{{d}} = xp.{fn}({args[0]}, {args[1]}{{o}})"], None, True,
                      _like(args[:2], vals[:2], out_val))
    if cls is _ew.Neg or cls.__name__ in _UNARY and issubclass(cls, _ew._Unary) and \
            cls is getattr(_ew, cls.__name__, None):
        if kwargs or len(vals) != 1 or not _is_arr(vals[0]) or vals[0].dtype != dt:
            return None
        fn = "negative" if cls is _ew.Neg else _UNARY[cls.__name__]
        return Direct([f"{{d}} = xp.{fn}({args[0]}{{o}})"], None, True,
                      _like(args[:1], vals[:1], out_val))
    if cls is _ew.Relu:
        if kwargs or not _is_arr(vals[0]) or vals[0].dtype != dt or \
                not vals[0].flags.c_contiguous:
            return None
        # against a zero array (NumPy's SIMD loop, as Relu.forward), made once per shape
        z = zeros(shape, dt)
        if z is None:
            return None
        return Direct([f"{{d}} = xp.maximum({args[0]}, {z}{{o}})"], None, True,
                      _like(args[:1], vals[:1], out_val))
    if cls is _ew._ReluGrad:
        g, y = vals
        if kwargs or not (_is_arr(g) and _is_arr(y)) or g.dtype != dt or g.shape != shape or \
                y.shape != shape:
            return None
        fresh = "None" if g.nbytes < _ws.MIN_BYTES else f"_wsl({args[0]})"
        return Direct([f"{{d}} = _relu_grad({args[0]}, {args[1]}, {{b}})"],
                      [f"{{d}} = _relu_grad({args[0]}, {args[1]}, {fresh})"], True)
    if issubclass(cls, _la.MatMul) and cls in (_la.MatMul, _la._Mm):
        a, b = vals
        if kwargs or not (_is_arr(a) and _is_arr(b)) or a.ndim != 2 or b.ndim != 2 or \
                a.dtype != dt or b.dtype != dt or a.shape[1] == 0:
            return None
        # eager's product, layout rule included (NOTE [ GEMM layouts ] in ops/linalg.py)
        return Direct([f"{{d}} = _fresh_mm({args[0]}, {args[1]}, None, {{b}})"],
                      [f"{{d}} = _fresh_mm({args[0]}, {args[1]})"], False)
    if issubclass(cls, _layers._Linear):
        x, w, b = vals
        if kwargs or not (_is_arr(x) and _is_arr(w)) or x.ndim < 2 or x.dtype != dt or \
                w.dtype != dt or x.shape[-1] == 0 or b is not None and \
                (not _is_arr(b) or b.dtype != dt):
            return None
        # eager's product and bias pass, layout rule included (NOTE [ GEMM layouts ])
        bias = "None" if b is None else args[2]
        if x.ndim == 2:
            lines = [f"{{d}} = _fresh_mm({args[0]}, {args[1]}.T, {bias}, {{b}})"]
            fresh = [f"{{d}} = _fresh_mm({args[0]}, {args[1]}.T, {bias})"]
        else:  # rows folded into one GEMM, as _Linear.forward (a planned buffer is viewed 2-d)
            x2 = f"{args[0]}.reshape(-1, {args[0]}.shape[-1])"
            back = f".reshape({args[0]}.shape[:-1] + {args[1]}.shape[:1])"
            lines = [f"{{d}} = _fresh_mm({x2}, {args[1]}.T, {bias}, {{b}}.reshape(-1, "
                     f"{args[1]}.shape[0])){back}"]
            fresh = [f"{{d}} = _fresh_mm({x2}, {args[1]}.T, {bias}){back}"]
        return Direct(lines, fresh, False)
    if cls is _red.Sum or cls is _red.SumAll:
        if len(vals) != 4 or not _is_arr(vals[0]) or vals[0].dtype != dt or \
                vals[3] is not None or kwargs:
            return None
        return Direct([f"{{d}} = xp.add.reduce({args[0]}, axis={args[1]}, "
                       f"keepdims={args[2]}{{o}})"], None, False)
    return None


_UINT = {4: "uint32", 8: "uint64"}


def relu_grad_into(xp, g, y, out):
    """relu's gradient, ``g`` where ``y`` (relu's result) is not 0, else 0, written into
    ``out`` (a fresh array when ``None``).

    As eager's backward computes it (NOTE [ Blocked pointwise passes ] in ops/_pointwise.py):
    ``bits(g) * clip(bits(y), 0, 1)`` over unsigned views, two passes and exact (an infinite
    or NaN ``g`` where ``y`` is 0 gives +0, no ``inf * 0``), where relu's forward never
    leaves ``-0.0`` (``_plus_zero``); (1024, 512) float32 104 us against 215 for the float
    mask below and its finiteness check (one thread).  Otherwise the mask is made as 1.0/0.0
    in ``g``'s dtype and multiplied float by float (a bool mask's multiply casts it in
    buffered chunks, 2.6x slower); a finite sum of the products shows that every product is
    finite in one read, and only an infinite or NaN sum (or an overflowing one) pays for
    the exact test."""
    if out is None:
        out = xp.empty(g.shape, g.dtype)
    ut = _UINT.get(g.dtype.itemsize)
    if _BITS and ut is not None and y.dtype == g.dtype and y.shape == g.shape and \
            out.dtype == g.dtype and _pw._plus_zero(xp, g.dtype):
        t = xp.dtype(ut).type
        m = out.view(ut)
        if xp.may_share_memory(out, g):  # in place over the gradient: the mask its own
            m = _ws.empty(xp, g.shape, ut)
        xp.clip(y.view(ut), t(0), t(1), out=m)
        xp.multiply(g.view(ut), m, out=out.view(ut))
        return out
    mask = out
    if xp.may_share_memory(out, g):  # in place over the gradient: the mask needs its own
        mask = _ws.empty(xp, g.shape, g.dtype)
    xp.not_equal(y, 0, out=mask)
    xp.multiply(g, mask, out=out)
    mask = None
    if not xp.isfinite(xp.add.reduce(out, axis=None)) and \
            not xp.logical_and.reduce(xp.isfinite(out), axis=None):
        out[...] = xp.where(y != 0, g, xp.zeros((), dtype=g.dtype))
    return out


# ``fresh_mm(xp, a, b, add=None, out=None)``: ``a @ b (+ add)`` as eager's 2-d products
# compute it, into ``out`` or a new array (a large one from the workspace); the function
# itself, not a wrapper: batch-1 inference makes three of these calls per step
fresh_mm = _la.mm_into


class Plan:
    """Buffers for values that never leave a region, reused once their value is dead
    (NOTE [ Planned buffers ]); ``spec()`` describes them for ``BufferPool``."""

    def __init__(self):
        self.bufs = []   # ("empty" or "zeros", shape, dtype name) per buffer
        self.free = {}   # (shape, dtype name) -> [buffer index]

    def take(self, shape, dtype) -> int:
        free = self.free.get((shape, dtype.name))
        if free:
            return free.pop()
        self.bufs.append(("empty", shape, dtype.name))
        return len(self.bufs) - 1

    def zeros(self, shape, dtype) -> int:
        """A read-only array of zeros (``relu``'s second operand), one per shape."""
        spec = ("zeros", shape, dtype.name)
        if spec not in self.bufs:
            self.bufs.append(spec)
        return self.bufs.index(spec)

    def give(self, i: int) -> None:
        kind, shape, dt = self.bufs[i]
        self.free.setdefault((shape, dt), []).append(i)

    def spec(self) -> tuple:
        return tuple(self.bufs)


class BufferPool:
    """Sets of a region's planned buffers, keyed by the plan's spec: a call takes a set and
    gives it back, so concurrent calls never share one.  The spec is a global of the generated
    code, so an instance of a dynamic graph (``_dynamo/dynamic.py``) at other sizes, which
    shares this pool, gets buffers of its own sizes."""

    __slots__ = ("xp", "by_spec", "last", "last_sets")

    def __init__(self, xp):
        self.xp = xp
        self.by_spec = {}
        self.last = self.last_sets = None

    def __eq__(self, other):  # two captures' pools are the same kind of thing (dynamic.py)
        return type(other) is BufferPool

    __hash__ = object.__hash__

    def sets(self, spec) -> list:
        if spec is self.last:
            return self.last_sets
        sets = self.by_spec.get(spec)
        if sets is None:
            if len(self.by_spec) >= _SIZES_KEPT:  # a dynamic size seen long ago: drop it
                self.by_spec.pop(next(iter(self.by_spec)), None)
            sets = self.by_spec[spec] = []
        self.last, self.last_sets = spec, sets
        return sets

    def alloc(self, spec) -> tuple:
        xp = self.xp
        return tuple((xp.empty if kind == "empty" else xp.zeros)(shape, dt)
                     for kind, shape, dt in spec)
