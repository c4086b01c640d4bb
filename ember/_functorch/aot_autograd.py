"""A captured graph as one autograd node with generated forward and backward code.

NOTE [ Compiled regions ]
What it takes: a forward graph recorded by ``proxy_tensor.record`` (NOTE [ Op recording ]):
placeholders, ``get_attr`` tensors, ``call_function`` nodes whose targets are ops of raw
built-in Functions (plus ``getitem`` and ``DROPOUT_MASK``), each node's ``meta["val"]`` the
real value it had.  What it produces: ``CompiledRegion``, a callable over the placeholders'
values whose result is ``CompiledFunction.apply(region, *tensors)``: ONE node of ember's
autograd graph for the whole region.

Forward: generated Python calls each op's ``forward(ctx, *arrays)`` directly, in program
order, on the arrays of the inputs and parameters (read at each call, so an optimizer's
in-place update is seen).  The per-op costs of eager mode are gone: the mode check, argument
unwrapping, edge setting, tensor wrapping of every result and saved-tensor bookkeeping.

Backward, derived ahead of time from the ops' own formulas (so gradients are eager's): at
compile time each recorded op's ``backward`` is run once on the capture's own autograd node
under a recorder whose inputs are the forward code's variables (``_lower``).  A formula that
reads only forward values and the incoming gradient, runs only raw ops (no raw-array
arguments, no in-place writes, no values read into Python) becomes straight-line array calls
in the generated backward; its op's forward then runs with a shared scratch ``ctx`` that saves
nothing.  Any other formula (convolutions, norms, attention, ``nll_loss``: they save
intermediates or build arrays themselves) is called as it is, with tensors, on a ``ctx`` the
forward recorded.  The forward returns only what backward reads (those values and contexts);
the backward drops each value and gradient after its last use, as eager's engine does.

Forward and backward spell the ops ``codegen.direct`` knows as NumPy calls instead (the same
ufunc on the same operands, bit for bit), with planned ``out=`` buffers in the forward and
in-place writes into gradients the dense backward owns (NOTE [ Planned buffers ] in
``codegen.py``); the backward has a dense body for the usual call where every incoming
gradient is given, which knows at compile time which gradients exist.  Float32 chains of
linear, relu, linear (up to ``_T_ROWS`` rows) keep their hidden values and gradients F-ordered
inside the region, where OpenBLAS's products are faster (NOTE [ Transposed activations ] in
``ops/linalg.py``; ``_transposed_chains``).  Without grad mode the region runs its forward
without building the node.

Limits (each makes ``CompiledRegion`` raise ``Unsupported``, and ``ember.compile`` then runs
the captured graph through its ops instead): a node that is neither a raw op nor a function
offered to the modes (an in-place write, ``copy_``), an output that is not a tensor.
A second backward through a region raises (its values were freed); ``create_graph=True``
recomputes the captured ops from the region's saved inputs with eager autograd
(``_recompute_grads``), and raises where the region draws random numbers (the forward's draws
cannot be repeated).  The region saves its inputs as eager ops do, so an input changed in
place before backward raises eager's error.
"""
from __future__ import annotations

import functools
import operator
import weakref

import numpy as np

from ..autograd.function import Function, _resolve_saved, _save_args
from ..autograd.grad_mode import state, no_grad
from ..autograd.modes import Op
from ..fx.experimental.proxy_tensor import (DROPOUT_MASK, OpRecorder, dropout_mask_array,
                                            flatten, unflatten)
from .._backend import xp_of, asarray as _asarray, _BY_ARRAY_TYPE as _ARRAY_TYPES
from ..ops.movement import Permute, Reshape
from .._tensor import Tensor, _make
from ..ops import _workspace as _ws
from ..ops import _blas
from ..ops import _pointwise as _pw
from ..ops.layers import _Linear
from ..ops import loss as _loss
from ..ops.elementwise import Relu as _Relu, _FP_ERRORS
from ..ops.linalg import mm_t
from . import codegen as _codegen
from .codegen import GENERATED, BufferPool, Direct, Plan, direct, fresh_mm, relu_grad_into

__all__ = ["CompiledRegion", "CompiledFunction", "Unsupported"]

_new = object.__new__
_RANDOM = ("bernoulli", "multinomial", "rand", "randn", "randint", "rand_like", "randn_like",
           "randint_like", "randperm", "normal", "fused_rnn_layer",
           "scaled_dot_product_flash_attention_for_cpu", "native_dropout",
           # the in-place samplers ember.compile's capture offers (_dynamo/eval_frame.py)
           "uniform_", "normal_", "bernoulli_", "exponential_", "log_normal_", "cauchy_",
           "geometric_", "random_")
_FRESH_MM = {}  # array module -> ``fresh_mm`` bound to it
_MM_T = {}  # array module -> ``linalg.mm_t`` bound to it (NOTE [ Transposed activations ])
_CONST, _HOOK = 2, 3  # saved-entry kinds (NOTE [ Saved tensors ] in autograd/function.py)
_T_ROWS = 128  # F-ordered linear products up to this many rows (NOTE [ Transposed activations ])


class Unsupported(Exception):
    """The graph holds something the region compiler does not lower."""


def _saved(c) -> None:
    """Turn what ``save_for_backward`` kept into saved entries (done only if backward runs)."""
    items = c._to_save
    if items is not None:
        # (a NumPy scalar a forward kept, its own 0-d result: an array, NOTE [ 0-d values
        # are arrays ])
        c._saved = tuple((_CONST, _make(i if type(i) in _ARRAY_TYPES else _asarray(i))
                          if hasattr(i, "dtype") and hasattr(i, "shape") else i)
                         for i in items)
        c._to_save = None


def _probe(size: int, dt):
    """``((i % 13) * 0.37 - 2.1)`` for ``i < size`` in dtype ``dt``: the incoming gradient a
    backward formula is traced with (``_lower``).  The 13 values are computed once and tiled:
    the same numbers as the float64 arithmetic over every element, which took a third of
    GPT-mini's compile time (~70 of 220 ms)."""
    return np.tile((np.arange(13) * 0.37 - 2.1).astype(dt), -(-size // 13))[:size]


def _wsl(xp, a):
    """A workspace array of ``a``'s shape and dtype, F-ordered where ``a`` is (a transposed
    activation's gradient, NOTE [ Transposed activations ]), else C-ordered."""
    if a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous:
        return _ws.empty(xp, a.shape[::-1], a.dtype).T
    return _ws.empty(xp, a.shape, a.dtype)


def _relu_grad(xp, g, y, out):
    """``codegen.relu_grad_into``; over the transposes where every operand is F-ordered (its
    mask buffer is C-ordered: two layouts in a pass are slow, NOTE [ Transposed activations ])."""
    if g.ndim == 2 and not g.flags.c_contiguous and g.flags.f_contiguous and \
            y.flags.f_contiguous and (out is None or out.flags.f_contiguous):
        return relu_grad_into(xp, g.T, y.T, None if out is None else out.T).T
    return relu_grad_into(xp, g, y, out)


_UCLIP = np._core.umath.clip if hasattr(np, "_core") else np.core.umath.clip  # the ufunc
_UINTS = {4: np.uint32, 8: np.uint64}


def _relu_grad_y(xp, g, y, out):
    """``_relu_grad`` where ``y`` (an F-ordered relu's result) is read for the last time: its
    bits become the mask in place, ``clip(bits(y), 0, 1)``, then ``bits(g) * mask`` into
    ``out``: the same two exact passes, without a workspace mask (an array fewer in the
    step) or ``np.clip``'s Python layers (NOTE [ Transposed activations ])."""
    ut = _UINTS.get(g.dtype.itemsize)
    if xp is np and ut is not None and g.ndim == 2 and y.dtype == g.dtype and \
            out.dtype == g.dtype and g.shape == y.shape == out.shape and \
            g.flags.f_contiguous and y.flags.f_contiguous and out.flags.f_contiguous and \
            _codegen._BITS and _pw._plus_zero(xp, g.dtype):
        m = y.T.view(ut)
        _UCLIP(m, ut(0), ut(1), out=m)
        xp.multiply(g.T.view(ut), m, out=out.T.view(ut))
        return out
    return _relu_grad(xp, g, y, out)


# NOTE [ Compiled cross-entropy ]
# ``cross_entropy`` at class indices (``ops/loss.py``'s fused ``CrossEntropyLoss`` node) is a
# called op in a compiled region: its formula saves intermediates.  Its plain case (2-d float
# logits, no class weights, no smoothing, 'mean', every target a class) is most training
# steps' loss, and the op's forward there runs a dozen helper frames around its NumPy calls,
# three to five times their hot cost once a step's GEMMs have evicted the caches (~120 us of
# mlp_step_nn's forward for a (128, 10) loss; thread time, 1 thread, interleaved with torch).
# ``_ce_forward``/``_ce_backward`` make those calls directly, the op's own in the op's order
# (its ``_logit_shift``, the row sums as a GEMV), so the loss and gradient are the op's bits
# (tests/test_compile_step_memory.py checks them against the op); any other call (a target
# out of range, one equal to a non-negative ignore_index, a weight, an empty batch) runs the
# op itself on a context, so its errors and numbers are the op's.
_CE_ROWS = {}  # rows -> arange(rows), the rows' index (read only)
_CE_ONES = {}  # (classes, dtype) -> a vector of ones (read only)


def _ce_const(cache, key, make):
    a = cache.get(key)
    if a is None:
        a = cache[key] = make()
        a.flags.writeable = False
    return a


def _ce_forward(cls, needs, x, target, w, ignore_index, reduction, eps):
    """``(loss, saved)``: the plain case's loss and what ``_ce_backward`` reads, or the op's
    own forward with its context (NOTE [ Compiled cross-entropy ])."""
    if type(x) is np.ndarray and type(target) is np.ndarray and x.ndim == 2 and \
            x.dtype.char in "fd" and target.dtype.char in "lq" and target.ndim == 1 and \
            w is None and not eps and reduction == "mean" and ignore_index < 0 and \
            x.shape[0] and x.shape[1] and target.shape[0] == x.shape[0]:
        rows, n = x.shape
        # every target a class, in one read (a negative one is past 2**63 as unsigned);
        # else the op raises, or ignores the rows equal to ignore_index
        if target.view(np.uint64).max() < n:
            dt = x.dtype
            try:
                z = np.subtract(x, _loss._logit_shift(x))
                ar = _ce_const(_CE_ROWS, rows, lambda: np.arange(rows))
                picked = z[ar, target]
                e = np.exp(z, out=z)
                se = np.matmul(e, _ce_const(_CE_ONES, (n, dt), lambda: np.ones(n, dt)))
                loss = np.log(se)
                loss -= picked
                weight_sum = dt.type(rows)
                return (loss.sum() / weight_sum).astype(dt), (e, se, target, ar, weight_sum)
            except _FP_ERRORS:  # made errors (np.seterr, warning filters): the op reruns quietly
                pass
    c = _new(cls)
    c.xp = xp_of(x)
    c._record = True
    c.needs_input_grad = needs
    return cls.forward(c, x, target, w, ignore_index, reduction, eps), c


def _ce_backward(cls, saved, g):
    """The input gradient (as the op's backward returns it) from ``_ce_forward``'s
    ``saved``; the op's own backward for its context."""
    if type(saved) is not tuple:
        _saved(saved)
        return _tup(cls.backward(saved, _make(g)))
    try:
        gx = _ce_grad(g, *saved)
    except _FP_ERRORS:  # made errors (np.seterr, warning filters): quietly, as the op's
        with np.errstate(all="ignore"):
            gx = _ce_grad(g, *saved)
    return _make(gx), None, None, None, None, None


def _ce_grad(g, e, se, t, ar, weight_sum):
    """The plain case's input gradient, ``s (softmax - onehot)``, as the op computes it."""
    one = e.dtype.type(1)
    s = g.astype(e.dtype, copy=False) / weight_sum
    gx = np.multiply(e, (s * one / se).reshape(-1, 1))
    gx[ar, t] -= s * one
    return gx


def _acc(a, b):
    """``a + b`` for gradients, either of which may be absent."""
    if b is None:
        return a
    if a is None:
        return b
    if a.ndim:
        return a + b
    s = a.copy()  # 0-d arrays add up to a NumPy scalar, which is no gradient array
    s += b
    return s


def _put(buf, a):
    """``a`` copied into ``buf`` (a planned buffer of its shape and dtype), returned."""
    buf[...] = a
    return buf


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _tup(r):
    return r if type(r) is tuple else (r,)


def _zeros(g, like):
    """A missing gradient of a multi-result op, materialised as eager's engine does."""
    if g is not None:
        return _make(g)
    return _make(xp_of(like._data).zeros(like._data.shape, like._data.dtype))


_DATA_READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__array__")


def _reading(fn, flags: list):
    def method(*args, **kwargs):
        flags.append(fn)
        return fn(*args, **kwargs)
    return method


def _data(t):
    """A gradient tensor's array (``None`` stays ``None``)."""
    return None if t is None else t._data


def _zero_d(v) -> bool:
    """Whether a captured value is a 0-d tensor (NOTE [ 0-d values are arrays ]).

    NOTE [ 0-d values are arrays ]
    NumPy returns a scalar (``np.float32``, ``np.int64``), not a 0-d array, from a full
    reduction, an all-integer index and any ufunc of 0-d operands.  ``Function.apply`` makes
    such a result an array before it becomes a tensor; the generated code calls the ops'
    ``forward``s and formulas directly, so a 0-d value is made an array (``xp.asarray``, no
    copy of an array) right where it is computed, in the forward and in each lowered
    backward formula.  A scalar fed on crashed an op that reads its array type (a cast's
    ``device_of``: ``(a > 2).sum().float()``) and made gradient tensors over scalars."""
    return isinstance(v, Tensor) and v._data.ndim == 0


def _needs_grad(v) -> bool:
    if isinstance(v, (tuple, list)):
        return any(_needs_grad(e) for e in v)
    return isinstance(v, Tensor) and v.requires_grad


def _unwrap(r):
    """An offered function's result as arrays (tensors unwrapped, inside tuples too)."""
    if isinstance(r, Tensor):
        return r._data
    if isinstance(r, tuple):
        return tuple(_unwrap(e) for e in r)
    return r


def _seq(a, fn) -> str:
    inner = ", ".join(fn(e) for e in a)
    if isinstance(a, list):
        return f"[{inner}]"
    return f"({inner},)" if len(a) == 1 else f"({inner})"


def _op_class(target):
    """The raw Function class behind an ``Op`` (``None`` for anything else)."""
    if not isinstance(target, Op):
        return None
    cls = getattr(target._fn, "__self__", None)
    if isinstance(cls, type) and issubclass(cls, Function) and cls.raw:
        return cls
    return None


class _Line:
    """A backward formula's op spelled directly (``codegen.Direct``): written into an operand
    it reads for the last time where the dense backward owns that array."""

    __slots__ = ("var", "direct", "reads", "meta")

    def __init__(self, var, direct, reads, meta):
        self.var, self.direct, self.reads, self.meta = var, direct, reads, meta

    def emit(self, out=None) -> list:
        return self.direct.emit(self.var, out)


def _var_of(line) -> str:
    return line.var if isinstance(line, _Line) else line.split(" = ", 1)[0]


def _reads(line) -> set:
    """The variables a formula line reads (every identifier of a plain line)."""
    if isinstance(line, _Line):
        return set(line.reads)
    import re
    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", line.split(" = ", 1)[1]))


class _FormulaRecorder(OpRecorder):
    """Records one op's backward formula; forward values become placeholders named after
    the forward code's variables (see ``CompiledRegion._lower``)."""

    def __init__(self, by_id: dict, by_data: dict, saved: dict):
        super().__init__()
        self.fwd_by_id = by_id
        self.fwd_by_data = by_data
        self.saved = saved  # id(tensor) -> ``sv_<node>[k]``: an intermediate forward saved
        self.fwd_used = {}  # variable -> placeholder

    def node_of(self, t):
        if id(t) not in self._nodes:
            var = self.saved.get(id(t)) or self.fwd_by_id.get(id(t))
            if var is None:
                hit = self.fwd_by_data.get(id(t._data))
                if hit is not None and hit[0]._data is t._data:
                    var = hit[1]
            if var is not None:
                n = self.fwd_used.get(var)
                if n is None:
                    n = self.fwd_used[var] = self.graph.placeholder(var)
                    n.meta["val"] = t  # its example value, for the direct spelling of ops
                self.bind(t, n)
                return n
        return super().node_of(t)


class CompiledRegion:
    """A recorded forward graph as generated forward/backward code (NOTE [ Compiled regions ]).

    ``region(*flat_inputs)`` takes the placeholders' values and returns what the graph
    returns; ``forward_src`` and ``backward_src`` are the generated sources."""

    _folds = None  # the graph's values folded from buffers (``passes.Folds``), checked per call

    def __init__(self, graph, constants: dict, options: dict = None):
        self.graph = graph
        nodes = list(graph.nodes)
        self._env = env = {"_new": _new, "_saved": _saved, "_acc": _acc, "_tup": _tup,
                           "_zeros": _zeros, "_mask": dropout_mask_array, "_make": _make,
                           "_unwrap": _unwrap, "_data": _data, "_put": _put}
        self.options = dict(options or {})
        self._meta_of = {}  # variable of the generated backward -> (shape, dtype)
        self._name = name = {}  # node -> variable holding its array (or tuple of arrays)
        tensors = []     # the region's tensor arguments: (source, index)
        params = []
        arg_nodes = []   # the nodes of the tensor arguments, in argument order
        n_ph = 0
        consts = []
        for n in nodes:
            if n.op == "placeholder":
                v = n.meta.get("val")
                if isinstance(v, Tensor):
                    name[n] = f"a{len(tensors)}"
                    params.append(name[n])
                    tensors.append(("input", n_ph))
                    arg_nodes.append(n)
                n_ph += 1
            elif n.op == "get_attr":
                v = constants[n.target]
                if isinstance(v, Tensor):
                    name[n] = f"a{len(tensors)}"
                    params.append(name[n])
                    tensors.append(("const", len(consts)))
                    consts.append(v)
                    arg_nodes.append(n)
                else:
                    name[n] = f"k_{n.name}"
                    env[name[n]] = v
        self._tensor_args = tensors
        self._consts = consts
        # ``_gather(flat, consts)``: the forward's array arguments (read at each call, so an
        # optimizer's in-place update or a re-pointed ``.data`` is seen)
        gsrc = "def gather(flat, consts):\n    return (" + "".join(
            f"flat[{i}]._data, " if kind == "input" else f"consts[{i}]._data, "
            for kind, i in tensors) + ")\n"
        self._gather = _compile(gsrc, {}, "gather")
        self._n_placeholders = n_ph
        self._ph_vals = [n.meta.get("val") for n in nodes if n.op == "placeholder"]
        # a region that draws random numbers cannot be recomputed for create_graph
        self._random = any(n.target is DROPOUT_MASK or
                           getattr(n.target, "__name__", "") in _RANDOM for n in nodes
                           if n.op == "call_function")
        arg = self._arg

        fwd = {}         # node -> (kind, cls, args, kwargs, record)
        order = []       # forward nodes in program order
        last_use = {}
        for n in nodes:
            for a in n.all_input_nodes:
                last_use[a] = n
        xp = None
        for n in nodes:
            if n.op != "call_function":
                continue
            var = name[n] = f"v_{n.name}"
            order.append(n)
            if n.target is operator.getitem:
                src, i = n.args
                fwd[n] = ("line", f"{var} = {name[src]}[{i}]")
                continue
            if n.target is DROPOUT_MASK:
                x, shape, p = n.args
                fwd[n] = ("line", f"{var} = _mask({name[x]}, {arg(shape)}, {arg(p)})")
                continue
            cls = _op_class(n.target)
            if cls is None and isinstance(n.target, Op):
                # a function offered to the modes (no gradient: a comparison, arange, ...):
                # called on tensors over the arrays, its result unwrapped
                if _needs_grad(n.meta.get("val")):
                    raise Unsupported(f"{n.target.__name__} has a gradient but no Function")
                fname = f"F_{n.name}"
                env[fname] = n.target._fn

                def wrapped(a):
                    if hasattr(a, "op") and isinstance(a.meta.get("val"), Tensor):
                        # a direct full reduction gives a NumPy scalar: a 0-d array here
                        return f"_make(xp.asarray({name[a]}))"
                    return arg(a)
                call = [wrapped(a) if not isinstance(a, (list, tuple)) else
                        _seq(a, wrapped) for a in n.args]
                call += [f"{k}={wrapped(a)}" for k, a in n.kwargs.items()]
                fwd[n] = ("line", f"{var} = _unwrap({fname}({', '.join(call)}))")
                continue
            if cls is None:
                raise Unsupported(f"op {getattr(n.target, '__name__', n.target)} is not a "
                                  "built-in raw op")
            args = []
            needs = []
            for a in n.args:
                if hasattr(a, "op"):
                    av = a.meta.get("val")
                    if isinstance(av, Tensor):
                        if xp is None:
                            xp = xp_of(av._data)
                        needs.append(bool(av.requires_grad))
                    else:  # a constant the code cannot spell (a layout), or a plain value
                        needs.append(False)
                    args.append(name[a])
                    continue
                if isinstance(a, (list, tuple)) and any(hasattr(e, "op") for e in a):
                    raise Unsupported(f"op {n.target.__name__} takes a list of tensors")
                needs.append(False)
                args.append(arg(a))
            if any(hasattr(a, "op") for a in n.kwargs.values()):
                raise Unsupported(f"op {n.target.__name__} takes a tensor keyword")
            args += [f"{k}={arg(a)}" for k, a in n.kwargs.items()]
            record = bool(n.meta.get("grad_mode")) and any(needs)
            fwd[n] = ("op", cls, args, tuple(needs), record)
        self._xp = env["xp"] = xp = xp if xp is not None else np
        mm = _FRESH_MM.get(xp)
        if mm is None:  # no Python frame of its own; one object per xp, so the globals of two
            # regions match (a size-generic region needs that, generic.py)
            mm = _FRESH_MM[xp] = functools.partial(fresh_mm, xp)
        env["_fresh_mm"] = mm
        env["_relu_grad"] = lambda g, y, out: _relu_grad(xp, g, y, out)
        env["_relu_grad_y"] = lambda g, y, out: _relu_grad_y(xp, g, y, out)
        env["_ce_f"] = _ce_forward
        env["_ce_b"] = _ce_backward
        env["_wsl"] = lambda a: _wsl(xp, a)
        mt = _MM_T.get(xp)
        if mt is None:
            mt = _MM_T[xp] = functools.partial(mm_t, xp)
        env["_fresh_mm_t"] = mt

        out_node = nodes[-1]
        leaves, self._out_spec = flatten(out_node.args[0])
        self._out_leaves = []   # per output leaf: ("region", k) / ("input", i) / ("value", v)
        region_outs = []
        nondiff = []
        ph_index = {n: i for i, n in enumerate(x for x in nodes if x.op == "placeholder")}
        for leaf in leaves:
            if hasattr(leaf, "op"):
                if leaf.op == "call_function":
                    val = leaf.meta.get("val")
                    if not isinstance(val, Tensor):
                        raise Unsupported("the graph returns a non-tensor value")
                    self._out_leaves.append(("region", len(region_outs)))
                    if not (val.requires_grad and val.grad_fn is not None):
                        nondiff.append(len(region_outs))
                    region_outs.append(leaf)
                elif leaf.op == "placeholder":
                    self._out_leaves.append(("input", ph_index[leaf]))
                else:
                    self._out_leaves.append(("value", constants[leaf.target]))
            else:
                self._out_leaves.append(("value", leaf))
        self._nondiff = tuple(nondiff)
        self._n_region_outs = len(region_outs)
        self._out_views = _out_views(region_outs)
        # fn returned one computed tensor: the region's output is the result as it is
        self._single = self._out_spec is None and len(region_outs) == 1

        # ---- backward plan: each recorded op's formula lowered to array code, or called ----
        recorded = [n for n in order if fwd[n][0] == "op" and fwd[n][4]]
        # ops that ran with grad on: where the caller's grad mode is off, the function turned
        # it on itself (``with enable_grad():``), so a call under no_grad records the node too
        self._grad_inside = bool(recorded)
        self._fwd_maps = None
        lowered = {}
        for n in recorded:
            low = self._lower(n, fwd[n][1], nodes)
            if low is not None:
                lowered[n] = low
        opaque = [n for n in recorded if n not in lowered]
        keep = [f"c_{n.name}" for n in opaque]
        used = []
        for n in recorded:
            if n in lowered:
                for v in lowered[n][1]:
                    v = v.split("[", 1)[0]  # sv_<node>[k]: the node's saved items
                    if v not in used and v not in keep:
                        used.append(v)
        keep += used
        saves = {n for n in lowered if any("[" in v for v in lowered[n][1])}
        self.lowered = sorted(n.name for n in lowered)
        self.called = sorted(n.name for n in opaque)

        # ---- forward code ---------------------------------------------------------------
        fplan, fstore, fdirect = self._plan_forward(order, fwd, lowered, saves, region_outs,
                                                     keep, last_use, env)
        body, ibody = [], []  # ibody: the same for ``_infer``, its batch-1 linears inline
        for n in order:
            start = len(body)
            f = fwd[n]
            d = fdirect.get(n)
            if d is not None:  # NOTE [ Planned buffers ]: NumPy calls, into a buffer if planned
                b = fstore.get(n)
                body += d.emit(name[n], self._into.get(n) if b is None else f"B{b}")
            elif f[0] == "line":
                body.append(f[1])
            else:
                _, cls, args, needs, record = f
                cname = f"C_{n.name}"
                env[cname + "_f"] = cls.forward
                if record and n not in lowered and cls is _loss.CrossEntropyLoss:
                    # NOTE [ Compiled cross-entropy ]: the plain case without the op's frames
                    env[cname] = cls
                    env[f"nig_{n.name}"] = needs
                    body.append(f"{name[n]}, c_{n.name} = _ce_f({cname}, nig_{n.name}, "
                                f"{', '.join(args)})")
                else:
                    if record and (n not in lowered or n in saves):  # a ctx that saves
                        c = f"c_{n.name}"
                        env[cname] = cls
                        env[f"nig_{n.name}"] = needs
                        body.append(f"{c} = _new({cname}); {c}.xp = xp; {c}._record = True; "
                                    f"{c}.needs_input_grad = nig_{n.name}")
                    else:  # nothing to save: one scratch ctx per op, made once
                        c = f"s_{n.name}"
                        scratch = _new(cls)
                        scratch.xp = self._xp
                        env[c] = scratch
                    body.append(f"{name[n]} = {cname}_f({c}, {', '.join(args)})")
                    if n in saves:  # what save_for_backward kept, for the lowered formula
                        body.append(f"sv_{n.name} = {c}._to_save; {c} = None")
            if _zero_d(n.meta.get("val")):  # NOTE [ 0-d values are arrays ]
                body.append(f"{name[n]} = xp.asarray({name[n]})")
            ibody += self._infer_row(n) if n in self._rowplan else body[start:]
            dead = [name[a] for a, user in last_use.items() if user is n and
                    a.op == "call_function" and a not in region_outs and name[a] not in keep
                    and a not in fstore]  # a planned buffer lives on in the pool
            if dead:
                body.append(" = ".join(dead) + " = None")
                ibody.append(body[-1])
        self.records = bool(recorded)
        self.forward_ops = [n.name for n in order]  # what the forward runs, after the passes
        self.direct = sorted(n.name for n in fdirect)  # spelled as NumPy calls
        self.planned = sorted(n.name for n in fstore)  # ... into planned buffers
        ret_outs = ", ".join(name[o] for o in region_outs)
        src = [f"def forward({', '.join(params)}):"]
        src += self._buffer_lines(fplan, "B", "_fpool", "_fspec", body)
        src.append(f"    return ({', '.join(keep)}{',' if keep else ''}), "
                   f"({ret_outs}{',' if region_outs else ''})")
        self.forward_src = "\n".join(src) + "\n"
        self._fwd = _compile(self.forward_src, env, "forward")
        self._infer = None
        if self._single and not recorded and self._rowplan:
            self._infer = self._make_infer(params, fplan, ibody, name[region_outs[0]])

        # ---- backward code: arrays throughout; a called formula gets tensors -------------
        self.backward_src = ""
        self._bwd = None
        if not recorded:
            self._drop_capture_values(nodes)
            return
        gname = {}
        for n in order:
            v = n.meta.get("val")
            if fwd[n][0] == "op" and type(v) is tuple:
                gname[n] = [f"g_{n.name}_{i}" for i in range(len(v))]
            else:
                gname[n] = f"g_{n.name}"
        for n in arg_nodes:
            gname[n] = f"g_{name[n]}"
        gos = [f"go{i}" for i in range(len(region_outs))]
        lines = [f"def backward(saved{''.join(', ' + g for g in gos)}):"]
        if keep:
            lines.append(f"    {', '.join(keep)}, = saved")
            lines.append("    saved = None")  # each value goes as soon as its last reader ran
        last_reader = {}
        for n in order:  # forward order: the first reader is the last to run in backward
            for v in lowered.get(n, (None, ()))[1]:
                last_reader.setdefault(v.split("[", 1)[0], n)
        frees = {}
        for v, n in last_reader.items():
            frees.setdefault(n, []).append(v)
        init = []
        for g in gname.values():
            init.extend(g if isinstance(g, list) else [g])
        lines.append("    " + " = ".join(init) + " = None")
        plan = (order, fwd, lowered, frees, gname, region_outs, arg_nodes, env)
        if gos and self.options.get("dense", True):
            # every incoming gradient given (the usual case): which gradients exist is known
            # here, so the code has no None tests and adds without _acc
            lines.append(f"    if {' and '.join(g + ' is not None' for g in gos)}:")
            lines += ["    " + ln for ln in self._backward_body(True, *plan)]
        lines += self._backward_body(False, *plan)
        self.backward_src = "\n".join(lines) + "\n"
        self._bwd = _compile(self.backward_src, env, "backward")
        self._drop_capture_values(nodes)

    def _drop_capture_values(self, nodes) -> None:
        """Forget the capture's intermediate values (each node's ``meta["val"]``, which holds
        the capture step's activations and autograd graph): the code is generated and only
        the placeholders' values are read again (``_recompute_grads``, dynamic shapes)."""
        self._fwd_maps = None
        for n in nodes:
            if n.op == "call_function":
                n.meta.pop("val", None)

    def _formula_lines(self, inplace, sub_lines, gs, outs, owned, leaf_outs=()) -> list:
        """One lowered formula's statements.  With ``inplace`` (the dense backward) an
        elementwise op writes into an operand of its shape and dtype
        that this backward made, that nothing else refers to (not a view of it, not another
        gradient) and that no later statement reads: the incoming gradient, or a temporary.
        ``owned`` says which gradient variables are such arrays, and learns the results.
        ``leaf_outs``: results that become a region input's gradient (a parameter's
        ``.grad``): a large one is computed into a new array, not a workspace block, which
        the engine would copy (a ``.grad`` needs memory of its own; 1.6 MB, ~0.1 ms, per
        step for the MLP's first weight)."""
        out_vars = {o for _, o in outs}
        mine = {gs} if owned.get(gs) else set()
        later = [_reads(ln) for ln in sub_lines]
        aliased = set()
        for ln in sub_lines:
            if not isinstance(ln, _Line):
                aliased |= _reads(ln)  # a view, reshape or called op may keep a reference
        res = []
        for i, ln in enumerate(sub_lines):
            if not isinstance(ln, _Line):
                res.append(ln)
                continue
            out = None
            if inplace and ln.direct.elementwise and ln.meta[0]:  # (a 0-d result: a scalar)
                rest = set().union(*later[i + 1:])
                for a in ln.reads:
                    if a in mine and a not in aliased and a not in rest and \
                            a not in out_vars and self._meta_of.get(a) == ln.meta:
                        out = a
                        break
            if out is None and ln.var in leaf_outs and not ln.direct.elementwise and \
                    ln.meta[1].itemsize * _prod(ln.meta[0]) >= _ws.MIN_BYTES:
                out = f"xp.empty({ln.meta[0]!r}, xp.{ln.meta[1].name})"
            res += ln.emit(out)
            self._meta_of[ln.var] = ln.meta
            if out is not None:
                mine.discard(out)
            mine.add(ln.var)  # a direct op's result is a fresh array (or the one it took)
        for _, o in outs:
            owned[o] = o in mine
        return res

    def _direct_formula_op(self, cls, m, args):
        """A backward formula's op ``m`` as NumPy calls (``codegen.direct``), or ``None``."""
        if not self.options.get("direct", True) or m.kwargs:
            return None
        val = m.meta.get("val")
        if not isinstance(val, Tensor):
            return None
        vals = []
        for a in m.args:
            if hasattr(a, "op"):
                v = a.meta.get("val")
                if not isinstance(v, Tensor):
                    return None
                vals.append(v._data)
            else:
                vals.append(a)
        return direct(cls, args, vals, {}, val._data, lambda shape, dt: None)

    def _backward_body(self, dense, order, fwd, lowered, frees, gname, region_outs,
                       arg_nodes, env) -> list:
        """The backward's statements (indented once): each gradient variable's state (absent,
        present, or maybe None) is followed, so code tests for None only where it may be."""
        st = {}
        arg_set = set(arg_nodes)
        # gradient variable -> whether, when it is not None, it is the only reference to an
        # array this backward made (so an op may write into it after its last read)
        owned = {}
        lines = []

        def acc(ind, target, src, src_maybe, cond):
            t = st.get(target, "none")
            maybe = src_maybe or cond
            if t == "none":
                lines.append(f"{ind}{target} = {src}")
                st[target] = "maybe" if maybe else "yes"
                owned[target] = owned.get(src, False)
            elif t == "yes" and not src_maybe and target not in zd:
                lines.append(f"{ind}{target} = {target} + {src}")  # _acc's sum, unwrapped
                owned[target] = True  # a new array
            else:  # a new sum, or whichever of the two is not None
                lines.append(f"{ind}{target} = _acc({target}, {src})")
                st[target] = "yes" if t == "yes" or not maybe else "maybe"
                owned[target] = owned.get(target, False) and owned.get(src, False)

        for n in order:  # each gradient's shape and dtype: its value's
            v = n.meta.get("val")
            if isinstance(v, Tensor) and not isinstance(gname[n], list):
                self._meta_of[gname[n]] = (v._data.shape, v._data.dtype)
        # 0-d gradients add up with _acc: ``+`` of two 0-d arrays gives a NumPy scalar
        zd = {gname[n] for n in (*order, *arg_nodes)
              if _zero_d(n.meta.get("val")) and not isinstance(gname[n], list)}
        for i, o in enumerate(region_outs):
            if isinstance(gname[o], list):
                raise Unsupported("the graph returns a multi-result op's tuple")
            acc("    ", gname[o], f"go{i}._data" if dense else f"_data(go{i})", not dense,
                False)
        for n in reversed(order):
            if n.target is operator.getitem:
                src_, i = n.args
                target = gname[src_][i] if isinstance(gname.get(src_), list) else None
                if target is None:
                    raise Unsupported("getitem of a single result")
                s = st.get(gname[n], "none")
                if s != "none":
                    acc("    ", target, gname[n], s == "maybe", False)
                    lines.append(f"    {gname[n]} = None")
                continue
            if fwd[n][0] != "op" or not fwd[n][4]:
                continue
            cls = fwd[n][1]
            gs = gname[n]
            if n in lowered:
                s = st.get(gs, "none")
                if s != "none":
                    sub_lines, _, outs = lowered[n]
                    cond = s == "maybe"
                    ind = "        " if cond else "    "
                    if cond:
                        lines.append(f"    if {gs} is not None:")
                    leaf_outs = {o for j, o in outs if n.args[j] in arg_set}
                    dx = 0  # the gradient of an F-ordered input is made so too
                    if n in self._tin:
                        dx = next((f"{o} = _fresh_mm(" for j, o in outs if j == 0), 0)
                    # an F-ordered relu's result read here for the last time: its mask
                    ry = n in self._trelu and self._name[n] in frees.get(n, ())
                    for line in self._formula_lines(dense, sub_lines, gs, outs, owned,
                                                    leaf_outs):
                        if dx and line.startswith(dx):
                            line = line.replace("_fresh_mm(", "_fresh_mm_t(", 1)
                        elif ry and " = _relu_grad(" in line:
                            line = line.replace(" = _relu_grad(", " = _relu_grad_y(", 1)
                        lines.append(f"{ind}{line}")
                    srcs = [o for _, o in outs]
                    for j, o in outs:
                        a = n.args[j]
                        if a in gname and not isinstance(gname[a], list):
                            acc(ind, gname[a], o, False, cond)
                            if srcs.count(o) > 1:  # an array two gradients share
                                owned[gname[a]] = False
                    temps = [_var_of(ln) for ln in sub_lines]
                    lines.append(f"{ind}{' = '.join(temps + [gs])} = None")
                if n in frees:
                    lines.append(f"    {' = '.join(frees[n])} = None")
                continue
            cname = f"C_{n.name}"
            c = f"c_{n.name}"
            env[cname + "_b"] = cls.backward
            if isinstance(gs, list):
                states = [st.get(g, "none") for g in gs]
                vals = n.meta["val"]
                for i, t in enumerate(vals):
                    # a zero-memory template: shape and dtype are all ``_zeros`` reads
                    env[f"like_{n.name}_{i}"] = _make(self._xp.broadcast_to(
                        self._xp.zeros((), t._data.dtype), t._data.shape)) \
                        if isinstance(t, Tensor) else None
                call = ", ".join(f"_zeros({g}, like_{n.name}_{i})" if isinstance(vals[i], Tensor)
                                 else g for i, g in enumerate(gs))
                conds = [f"{g} is not None" for g, x in zip(gs, states) if x == "maybe"]
                cond = None if "yes" in states else " or ".join(conds)
            else:
                states = [st.get(gs, "none")]
                cond = f"{gs} is not None" if states[0] == "maybe" else None
                call = f"_make({gs})"
            if all(x == "none" for x in states):
                lines.append(f"    {c} = None")
                continue
            ind = "        " if cond else "    "
            if cond:
                lines.append(f"    if {cond}:")
            if cls is _loss.CrossEntropyLoss and not isinstance(gs, list):
                env[cname] = cls
                lines.append(f"{ind}r = _ce_b({cname}, {c}, {gs})")  # the plain case's
            else:
                lines.append(f"{ind}_saved({c})")
                lines.append(f"{ind}r = _tup({cname}_b({c}, {call}))")
            for j, a in enumerate(n.args):
                if hasattr(a, "op") and isinstance(a.meta.get("val"), Tensor) and \
                        a.meta["val"].requires_grad and a in gname:
                    ga = gname[a]
                    if isinstance(ga, list):
                        raise Unsupported("a multi-result tuple used as an argument")
                    acc(ind, ga, f"_data(r[{j}])", True, bool(cond))
            dead = gs if isinstance(gs, list) else [gs]
            lines.append(f"    {' = '.join(dead + [c])} = r = None")
        grads = [gname[n] if st.get(gname[n], "none") != "none" else "None" for n in arg_nodes]
        lines.append(f"    return ({', '.join(grads)}{',' if grads else ''})")
        return lines

    def _plan_forward(self, order, fwd, lowered, saves, region_outs, keep, last_use, env):
        """The forward's directly spelled ops and their buffers (NOTE [ Planned buffers ]):
        ``(plan, node -> buffer index, node -> Direct)``."""
        fdirect = {}
        plan, store = Plan(), {}
        rows = {}  # batch-1 linears -> their argument spellings (NOTE [ Batch-1 linear by GEMV ])
        self._into = {}  # node -> the variable of the input it writes over
        self._rowplan = {}
        self._xcache = {}
        self._tout = self._tin = self._trelu = frozenset()  # NOTE [ Transposed activations ]
        if not self.options.get("direct", True):
            return plan, store, fdirect
        self._tout, self._tin, self._trelu = self._transposed_chains(order, fwd, lowered,
                                                                     saves, region_outs)
        cur = [None]

        def zeros(shape, dt):
            if cur[0] in self._trelu:  # an F-ordered relu: zeros of its layout
                return f"B{plan.zeros(shape[::-1], dt)}.T"
            return f"B{plan.zeros(shape, dt)}"
        for n in order:
            f = fwd[n]
            cur[0] = n
            if f[0] != "op" or f[4] and (n not in lowered or n in saves):
                continue  # an op whose ctx saves for a called formula runs its own forward
            val = n.meta.get("val")
            if not isinstance(val, Tensor):
                continue
            vals = []
            for a in n.args:
                if hasattr(a, "op"):
                    v = a.meta.get("val")
                    vals.append(v._data if isinstance(v, Tensor) else v)
                else:
                    vals.append(a)
            d = direct(f[1], f[2][:len(n.args)], vals, n.kwargs, val._data, zeros)
            if d is not None and n in self._tout:  # into a planned buffer: its own layout
                x, w, b = f[2][:3]
                d = Direct([f"{{d}} = _fresh_mm_t({x}, {w}.T, {b}, {{b}})"],
                           [f"{{d}} = _fresh_mm_t({x}, {w}.T, {b})"], False)
            if d is not None:
                fdirect[n] = d
                # (a weight the graph computes, weight_norm's, is no array a buffer set holds)
                if issubclass(f[1], _Linear) and self._row_linear(vals) and \
                        all(getattr(a, "op", "get_attr") in ("placeholder", "get_attr")
                            for a in n.args[1:3]):
                    rows[n] = f[2][:3] + [(vals[0].shape, vals[0].dtype)]
        if not self.options.get("buffers", True):
            return plan, store, fdirect
        outs = set(region_outs)
        planned = {n for n in fdirect if n not in outs and self._name[n] not in keep and
                   n.users and all(u in fdirect for u in n.users)}
        key = {n: (n.meta["val"]._data.shape, n.meta["val"]._data.dtype) for n in fdirect}
        # an elementwise op whose result escapes (linear + relu, relu saved for backward)
        # writes over its input when that input is a value only it reads: the input is then
        # made fresh, not in a planned buffer, and becomes the escaping result (one array
        # written and read hot, instead of a planned buffer plus a fresh one)
        into = {}
        for n in order:
            if n in fdirect and n not in planned and fdirect[n].elementwise:
                for a in n.all_input_nodes:
                    if a in planned and len(a.users) == 1 and key[a] == key[n] and \
                            key[n][0] and sum(x is a for x in n.args) == 1:  # (0-d: scalars)
                        planned.discard(a)
                        into[n] = self._name[a]
                        break
        self._into = into
        scratch = {}  # an escaping batch-1 linear: GEMV into a buffer it alone uses, then copy
        xcopy = {}  # a batch-1 linear whose input is not a planned buffer: its row copied first
        for n in order:
            if n in rows and n not in planned:
                scratch[n] = plan.take(*key[n])  # never given back
            if n in rows and n.args[0] not in store:
                xcopy[n] = plan.take(*rows[n][3])  # never given back
            if n in planned:
                b = None
                if fdirect[n].elementwise:  # write over an input read here for the last time
                    for a in n.all_input_nodes:
                        if a in store and last_use.get(a) is n and key[a] == key[n]:
                            b = store[a]
                            break
                store[n] = plan.take(*key[n]) if b is None else b
            for a in set(n.all_input_nodes):
                if a in store and last_use.get(a) is n and store[a] != store.get(n):
                    plan.give(store[a])
        self._rowplan = {}  # for ``_infer``: node -> (x, w, b, x buffer, copy x?, out buffer)
        self._xcache = {}  # for ``_infer``: row index -> its cache list's place in a set
        for n, (x, w, b, _) in rows.items():
            self._rowplan[n] = (x, w, b, xcopy[n] if n in xcopy else store[n.args[0]],
                                n in xcopy, store[n] if n in store else scratch[n],
                                n not in store, key[n][1].char)
            fn = f"_row_{n.name}"
            xp = self._xp
            self._env[fn] = _blas.linear_row(
                key[n][1].char, lambda x, w, b, out, xp=xp: fresh_mm(xp, x, w.T, b, out))
            if n in xcopy:
                # a new input array each call (the caller's, or a fresh value) would have its
                # pointer read each call (~2.5 us); a (1, K) copy into a buffer is ~0.2
                call = f"{fn}(_put(B{xcopy[n]}, {x}), {w}, {b}, "
            else:
                call = f"{fn}({x}, {w}, {b}, "
            if n in store:
                fdirect[n] = Direct(["{d} = " + call + "{b})"], None, False)
            elif n in scratch:
                # the result escapes: a fresh array, as eager's (a copy of a (1, N) row is
                # cheaper than reading a new array's pointer)
                fdirect[n] = Direct([f"{{d}} = {call}B{scratch[n]})"],
                                    [f"{{d}} = {call}B{scratch[n]}).copy()"], False)
        return plan, store, fdirect

    def _transposed_chains(self, order, fwd, lowered, saves, region_outs) -> tuple:
        """``(linears, reading linears, relus)``: the float32 linears of a training region whose
        product is made F-ordered, each read only by a relu read only by linears (as their
        input), every one of them with a lowered formula and none returned; the linears that
        read such a relu, whose input gradient is then made F-ordered; those relus (NOTE
        [ Transposed activations ])."""
        outs = set(region_outs)
        tout, tin, trelu = set(), set(), set()
        if _blas._openblas.active():  # its kernels make w @ x.T other bits than x @ w.T, and
            return tout, tin, trelu   # no layout is faster there (NOTE [ BLAS kernels ])

        def plain(n, cls, returned=False) -> bool:
            f = fwd.get(n)
            return f is not None and f[0] == "op" and issubclass(f[1], cls) and f[4] and \
                n in lowered and n not in saves and (returned or n not in outs)

        for n in order:
            if not plain(n, _Linear) or len(n.args) < 3 or len(n.users) != 1:
                continue
            val = n.meta.get("val")
            x = n.args[0].meta.get("val") if hasattr(n.args[0], "op") else None
            if not (isinstance(val, Tensor) and isinstance(x, Tensor)) or \
                    val._data.dtype != np.float32 or x._data.ndim != 2 or val._data.ndim != 2:
                continue
            m, k = x._data.shape
            if not (2 <= m <= _T_ROWS and k and val._data.shape[1] >= 64):
                continue
            r = next(iter(n.users))
            if not plain(r, _Relu) or not r.users or r.args[0] is not n:
                continue
            if not all(plain(u, _Linear, True) and u.args[0] is r and
                       all(a is not r for a in u.args[1:]) for u in r.users):
                continue
            tout.add(n)
            trelu.add(r)
            tin.update(r.users)
        return tout, tin, trelu

    # NOTE [ Batch-1 inference ]
    # A region that returns one tensor, records nothing and has batch-1 linears (a model's
    # eval() call on one sample) gets ``_infer(flat)``: one generated function that reads the
    # arrays, takes a buffer set, runs the forward with each linear spelled inline as the bias
    # copied into its output buffer and one ``cblas_?gemv`` over an argument tuple made when the
    # set was (NOTE [ Batch-1 linear by GEMV ] in ops/_blas.py), and wraps the result.  A set
    # is (buffers, argument tuples, the weight arrays the tuples point into, the region's other
    # constant arrays); it is remade when one of those arrays is another object (``.data =``,
    # ``load_state_dict`` into a new array), a weight one GEMV cannot take (strided, another
    # dtype) sends the call to the general path, and a constant of another type, shape or
    # dtype than the capture's makes ``_infer`` return False: the guard's failure, so the
    # caller's general path checks the entry (a new shape recompiles).  The guard therefore
    # reads no shape of these constants at each call (their arrays were cache misses there).
    # A linear reading the caller's input copies it into the set's x buffer, unless the last
    # two calls of the set had that same array: it then gets its own argument tuple, made once
    # (``_infer_row``; a read-only array never does), and is read in place.
    # Weights are read in place at each call, so in-place writes (versioned or not: ``.data``,
    # ``.numpy()``) are seen; a transposed copy (OpenBLAS's other kernel, 1.02-1.07x faster)
    # would go stale through writes that bump no version counter (``p.data.mul_(2)``), so it
    # is not made.  ``ember.compile``'s guard runs ``_infer``'s body (``infer_src``) after its
    # own checks when its entry runs such a region without grad (``_fast_guard`` in
    # _dynamo/eval_frame.py): a call is then the user's frame, ``OptimizedModule.__call__``
    # (which runs the wrapper's fast path itself), the guard and ``_make``.  A copy of the
    # region (a dynamic instance at other sizes) never runs the original's ``_infer``
    # (``__copy__``).  Nothing here refers back to the region (``_slow`` is a weak method), so
    # a dropped region frees its buffers without the garbage collector.
    def _infer_row(self, n) -> list:
        """Batch-1 linear ``n`` as ``_infer`` spells it: the bias into the output buffer and
        one GEMV over an argument tuple of the buffer set (NOTE [ Batch-1 inference ])."""
        x, w, b, xb, copy_x, ob, fresh, _ = self._rowplan[n]
        k = list(self._rowplan).index(n)
        lines = [f"B{ob}[...] = {b}"] if b != "None" else []
        if copy_x and n.args[0].op == "placeholder":
            # the caller's input: copied into the x buffer, unless it is the array the last
            # two calls of this set got (a caller refilling one input tensor), whose own
            # argument tuple is then made once (its pointer, ~1-2.5 us) and used from then on;
            # X: [that array, its tuple, the last call's array]
            self._xcache[k] = len(self._xcache)
            lines += [f"if {x} is X{k}[0]:", f"    _gemv{k}(*X{k}[1])", "else:",
                      f"    B{xb}[...] = {x}", f"    _gemv{k}(*G{k})",
                      f"    if {x} is X{k}[2]:",
                      f"        _gx{k} = _row_args({w}, {x}, B{ob}, {b != 'None'})",
                      f"        if _gx{k} is not None:  # (None: a read-only array)",
                      f"            X{k}[0], X{k}[1] = {x}, _gx{k}",
                      f"    X{k}[2] = {x}"]
        else:
            lines = ([f"B{xb}[...] = {x}"] if copy_x else []) + lines + [f"_gemv{k}(*G{k})"]
        lines.append(f"{self._name[n]} = B{ob}" + (".copy()" if fresh else ""))
        return lines

    def _make_infer(self, params, plan, body, out):
        """``infer(flat)``: the region's inference call as one generated function (NOTE
        [ Batch-1 inference ])."""
        env = dict(self._env)
        rows = list(self._rowplan.values())
        nb, nr = len(plan.bufs), len(rows)
        lines = ["def infer(flat):"]
        for p, (kind, i) in zip(params, self._tensor_args):
            if kind == "input":
                lines.append(f"    {p} = flat[{i}]._data")
            else:
                env[f"_K{i}"] = self._consts[i]
                lines.append(f"    {p} = _K{i}._data")
        names = [f"B{i}" for i in range(nb)] + [f"G{k}" for k in range(nr)]
        # the arrays a set holds and is checked against by identity: each GEMV's weight, then
        # the region's other constants; a constant's shape and dtype are checked when a set is
        # made, so the guard need not read them at each call (NOTE [ Batch-1 inference ])
        consts = {p: self._consts[i] for p, (kind, i) in zip(params, self._tensor_args)
                  if kind == "const"}
        held = [w for _, w, *_r in rows]
        held += [p for p in consts if p not in held]
        want = [(type(consts[p]._data), consts[p]._data.shape, consts[p]._data.dtype)
                if p in consts else None for p in held]
        self._infer_consts = tuple(consts.values())
        stale = " or ".join(f"S[{nb + nr + j}] is not {v}" for j, v in enumerate(held))
        lines += ["    try:", "        S = _L.pop()", "    except IndexError:",
                  "        S = None",
                  f"    if S is None{' or ' + stale if stale else ''}:",
                  f"        S = _mkset({''.join(v + ', ' for v in held)})",
                  "        if S is None:  # a weight one GEMV cannot take: the general call",
                  "            return _slow()(flat)",
                  "        if S is False:  # a constant of another shape or dtype: the guard's",
                  "            return False  # failure (the caller takes its general path)"]
        xnames = [f"X{k}" for k in self._xcache]
        if names:  # (the whole set unpacked: no slice made)
            lines.append(f"    {', '.join(names + [f'_h{j}' for j in range(len(held))] + xnames)}"
                         ", = S")
        # relu's ufunc bound once (not looked up in NumPy's namespace at each call)
        lines += [f"    {ln.replace('xp.maximum(', '_maximum(')}" for ln in body]
        lines += ["    _L.append(S)", f"    o = {out}"]
        if out not in {self._name[n] for n, r in self._rowplan.items() if r[6]}:
            # (a returned GEMV row is a fresh array already)
            lines += ["    if type(o) not in _ARRAYS and hasattr(o, 'shape'):  # a NumPy scalar",
                      "        o = _asarray(o)"]
        lines += ["    t = _make(o)", "    if _st.inference:", "        t._inference = True",
                  "    return t"]
        spec, xp = plan.spec(), self._xp

        def mkset(*arrays):
            """A new set of buffers and the GEMVs' argument tuples over them and the weights
            (the first of ``arrays``); False where a constant is not of the captured type,
            shape and dtype, None where one GEMV cannot take a weight."""
            for a, w in zip(arrays, want):
                if w is not None and (type(a) is not w[0] or a.shape != w[1] or
                                      a.dtype != w[2]):
                    return False
            bufs = BufferPool(xp).alloc(spec)
            gs = []
            for w, (_, _, b, xb, _, ob, _, _) in zip(arrays, rows):
                g = _blas.row_args(w, bufs[xb], bufs[ob], b != "None")
                if g is None:
                    return None
                gs.append(g)
            # the arrays after the tuples: held while their pointers are; then each input
            # row's cache (``_infer_row``)
            return (*bufs, *gs, *arrays, *([None, None, None] for _ in xnames))
        env.update(_L=[], _mkset=mkset, _slow=weakref.WeakMethod(self._general),
                   _maximum=getattr(xp, "maximum", None), _row_args=_blas.row_args,
                   _ARRAYS=_ARRAY_TYPES,
                   _asarray=_asarray, _st=state)
        for k, row in enumerate(rows):
            env[f"_gemv{k}"] = _blas.gemv_fn(row[7])
        self.infer_src = "\n".join(lines) + "\n"
        return _compile(self.infer_src, env, "infer")

    def _row_linear(self, vals) -> bool:
        """Whether a linear with example arguments ``vals`` runs as one GEMV (NOTE [ Batch-1
        linear by GEMV ] in ``ops/_blas.py``): a (1, K) float row, an (N, K) weight (N, K >= 2:
        NumPy's product is a dot or a loop otherwise, and eager's numbers are its), the
        bundled OpenBLAS found; a region made with ``options={"blas": False}`` keeps NumPy's
        product (``ember.compile``'s ``options`` do not reach regions)."""
        x, w = vals[0], vals[1]
        return self.options.get("blas", True) and x.ndim == 2 and x.shape[0] == 1 and \
            w.ndim == 2 and min(w.shape) > 1 and x.shape[1] == w.shape[1] and \
            self._xp is np and _blas.gemv_fn(x.dtype.char) is not None

    def _buffer_lines(self, plan, prefix, pool, spec, body) -> list:
        """``body`` (indented) between taking a set of ``plan``'s buffers from the region's
        pool and giving it back (a fresh set when another call holds the pooled ones)."""
        if not plan.bufs:
            return [f"    {line}" for line in body]
        self._env[pool] = BufferPool(self._xp)
        self._env[spec] = plan.spec()
        bufs = ", ".join(f"{prefix}{i}" for i in range(len(plan.bufs))) + ","
        return [f"    _S = {pool}.sets({spec})", "    try:", f"        {bufs} = _S.pop()",
                "    except IndexError:", f"        {bufs} = {pool}.alloc({spec})"] + \
            [f"    {line}" for line in body] + [f"    _S.append(({bufs}))"]

    def _arg(self, a):
        """How generated code spells argument ``a`` (a node's variable or a constant)."""
        if hasattr(a, "op"):
            if a not in self._name:
                raise Unsupported(f"node {a} has no value")
            return self._name[a]
        if isinstance(a, (int, float, bool, str, type(None))) and \
                repr(a) not in ("inf", "-inf", "nan"):
            return repr(a)
        key = f"k{len(self._env)}"
        self._env[key] = a
        return key

    def _resave(self, n, ctx, cls, val) -> bool:
        """Give a node whose saved tensors backward freed (the capture ran ``backward()``: a
        compiled training step) the entries its forward saves, by running that forward again
        on the capture's values, so that its formula can be traced (``_lower``); the output
        entry is the capture's output.  Not for ops that draw random numbers."""
        if self._random or n.kwargs or not isinstance(val._data, tuple(_ARRAY_TYPES)):
            return False
        args = [a.meta.get("val") if hasattr(a, "op") else a for a in n.args]
        if any(hasattr(a, "op") and not isinstance(v, Tensor) for a, v in zip(n.args, args)):
            return False
        raw = [a._data if isinstance(a, Tensor) else a for a in args]
        c = _new(cls)
        c.xp, c._record, c.needs_input_grad = ctx.xp, True, ctx.needs_input_grad
        try:
            with no_grad():
                out = cls.forward(c, *raw)
        except Exception:
            return False
        if not hasattr(out, "shape") or out.shape != val._data.shape or c._to_save is None:
            return False
        ctx._saved = _save_args(c._to_save, args, out, val) if cls.saves_inputs else \
            _resolve_saved(c._to_save, raw, args, (out,), (val,))
        ctx._freed = False
        return True

    def _lower(self, n, cls, nodes):
        """Node ``n``'s backward formula as array code: ``(lines, forward variables it
        reads, [(input index, gradient variable)])``, or ``None`` to call the formula.

        The formula is run once on the capture's own autograd node under a recorder whose
        forward values are the forward code's variables.  It lowers only if every value it
        reads is a forward value or the incoming gradient, and every op it runs is a raw op
        without raw-array arguments (anything else may depend on data the graph does not see).
        """
        val = n.meta.get("val")
        if not isinstance(val, Tensor):
            return None
        ctx = val.grad_fn
        if type(ctx) is not cls:
            return None
        if ctx._saved is None and ctx._freed:
            # the capture ran backward (a compiled training step): saved again to be traced
            if not self._resave(n, ctx, cls, val):
                return None
            try:
                return self._lower(n, cls, nodes)
            finally:
                ctx._saved, ctx._freed = None, True
        if self._fwd_maps is None:  # forward values by tensor and by array, built once
            by_id, by_data = {}, {}
            for m in nodes:
                v = m.meta.get("val")
                if m not in self._name:
                    continue
                # a node CSE merged away has the survivor's variable (``passes.cse``)
                for v in (v, *m.meta.get("aliases", ())):
                    if isinstance(v, Tensor):
                        by_id.setdefault(id(v), self._name[m])
                        by_data.setdefault(id(v._data), (v, self._name[m]))
            self._fwd_maps = by_id, by_data
        saved = {}
        for k, entry in enumerate(ctx._saved or ()):
            if entry[0] == _HOOK:  # packed by saved_tensors_hooks: call the formula
                return None
            if entry[0] == _CONST and isinstance(entry[1], Tensor):
                # an intermediate forward saved (a mean, a 1/std): the forward keeps the
                # ctx's saved items as ``sv_<node>`` for the lowered formula to read
                saved[id(entry[1])] = f"sv_{n.name}[{k}]"
        rec = _FormulaRecorder(*self._fwd_maps, saved)
        xp = xp_of(val._data)
        # a random incoming gradient, so that a value computed from it outside ops is never
        # mistaken for a constant
        shape, dt = val._data.shape, val._data.dtype
        g = _make(xp.asarray(_probe(val._data.size, dt).reshape(shape)))
        gvar = f"g_{n.name}"
        rec.graph.placeholder(gvar).meta["val"] = g
        rec.bind(g, list(rec.graph.nodes)[-1])
        rec.fwd_used[gvar] = None
        from ..autograd import inplace as _inplace
        wrote = []
        write = _inplace._write

        def watch(t, result, overlap_ok=False):
            wrote.append(t)
            write(t, result, overlap_ok)
        _inplace._write = watch
        saved = [(m, Tensor.__dict__[m]) for m in _DATA_READS if m in Tensor.__dict__]
        for m, fn in saved:  # a formula that reads values into Python branches on data
            setattr(Tensor, m, _reading(fn, wrote))
        try:
            with no_grad(), rec:
                out = _tup(cls.backward(ctx, g))
        except Exception:
            return None
        finally:
            _inplace._write = write
            for m, fn in saved:
                setattr(Tensor, m, fn)
        if wrote or rec.constants:
            return None
        outs = []
        for j, o in enumerate(out):
            if o is None:
                continue
            if not isinstance(o, Tensor) or j >= len(n.args):
                return None
            outs.append((j, rec.node_of(o)))
        if rec.constants:  # an output that is not computed from the formula's inputs
            return None
        sub = {}
        for m in rec.graph.nodes:
            if m.op == "placeholder":
                sub[m] = m.target
        lines = []
        for m in rec.graph.nodes:
            if m.op != "call_function":
                continue
            var = sub[m] = f"b_{n.name}_{m.name}"
            if m.target is operator.getitem:
                lines.append(f"{var} = {sub[m.args[0]]}[{m.args[1]}]")
                continue
            scls = _op_class(m.target)
            if scls is None:
                return None
            args = []
            for a in m.args:
                if hasattr(a, "op"):
                    args.append(sub[a])
                elif hasattr(a, "shape") and getattr(a, "ndim", 0) > 0 or \
                        isinstance(a, (list, tuple)) and any(hasattr(e, "shape") for e in a):
                    return None  # a raw array: data the recording cannot follow
                else:
                    args.append(self._arg(a))
            if m.kwargs:
                if any(hasattr(a, "op") for a in m.kwargs.values()):
                    return None
                args += [f"{k}={self._arg(a)}" for k, a in m.kwargs.items()]
            d = self._direct_formula_op(scls, m, args)
            if d is not None:  # NOTE [ Planned buffers ]: NumPy calls (in place or fresh)
                v = m.meta["val"]._data
                lines.append(_Line(var, d, [a for a in args if a in sub.values()],
                                   (v.shape, v.dtype)))
                continue
            if scls is Reshape:
                # the formula saw a contiguous gradient where the runtime one may be strided:
                # reshape (a view when strides allow, else a copy) gives the same numbers
                lines.append(f"{var} = xp.reshape({args[0]}, {args[1]})")
                continue
            if issubclass(scls, Permute) and len(args) == 2 and not m.kwargs:
                # the view Permute.forward makes, without its frame and scratch context (a
                # linear's weight gradient reads its gradient transposed: g.T @ x)
                lines.append(f"{var} = {args[0]}.transpose({args[1]})" if self._xp is np else
                             f"{var} = xp.transpose({args[0]}, {args[1]})")
                continue
            key = f"S_{scls.__name__}"
            if key not in self._env:
                scratch = _new(scls)
                scratch.xp = self._xp
                self._env[key] = scratch
                self._env[key + "_f"] = scls.forward
            lines.append(f"{var} = {key}_f({key}, {', '.join(args)})")
        zd = {sub[m] for m in rec.graph.nodes
              if m.op == "call_function" and _zero_d(m.meta.get("val"))}
        if zd:  # NOTE [ 0-d values are arrays ]: each 0-d result made an array where computed
            lines = [e for ln in lines for e in ((ln, f"{_var_of(ln)} = xp.asarray("
                                                      f"{_var_of(ln)})")
                                                 if _var_of(ln) in zd else (ln,))]
        reads = [v for v in rec.fwd_used if v != gvar]
        return lines, reads, [(j, sub[o]) for j, o in outs]

    def __call__(self, *flat):
        inf = self._infer
        if inf is not None and not (state.grad or state.intercept) and \
                len(flat) == self._n_placeholders and self._folds is None:
            r = inf(flat)  # NOTE [ Batch-1 inference ]
            if r is not False:  # (False: a constant changed shape or dtype)
                return r
        return self._general(flat)

    def __copy__(self):
        # a copy is a dynamic instance at other sizes (``generic.py``): ``_infer`` is not its own
        r = _new(type(self))
        r.__dict__.update(self.__dict__)
        r._infer = None
        return r

    def _general(self, flat):
        if len(flat) != self._n_placeholders:
            raise TypeError(f"compiled graph takes {self._n_placeholders} inputs, got "
                            f"{len(flat)}")
        if self._folds is not None:  # values folded from buffers (NOTE [ Constant folding ])
            self._folds.check()
        consts = self._consts
        if self._single and not (state.grad or state.intercept or self._grad_inside):
            # inference's one result: the arrays gathered by one generated expression, the
            # result wrapped inline (a batch-1 MLP call is ~50 us; this path was ~5 of it)
            o = self._fwd(*self._gather(flat, consts))[1][0]
            if type(o) not in _ARRAY_TYPES and hasattr(o, "shape"):  # a NumPy scalar
                o = _asarray(o)
            t = _make(o)
            if state.inference:
                t._inference = True
            return t
        args = [flat[i] if kind == "input" else consts[i] for kind, i in self._tensor_args]
        if state.grad:
            outs = CompiledFunction.apply(self, *args)
        elif self._grad_inside and not state.inference:
            state.grad = True  # as the function's ``enable_grad()`` did (not in inference mode)
            try:
                outs = CompiledFunction.apply(self, *args)
            finally:
                state.grad = False
        elif state.intercept:
            outs = CompiledFunction.apply(self, *args)
        else:  # nothing to record: the node's forward without building one (inference)
            outs = _wrap_outs(self._fwd(*[a._data for a in args])[1])
        if self._single:
            return outs
        if type(outs) is not tuple:
            outs = (outs,)
        if self._out_views:  # outputs that view other outputs: made again from them
            outs = list(outs)
            for k, j, steps in self._out_views:
                v = outs[j]
                for op, rest, kw in steps:
                    v = op(v, *rest, **kw)
                outs[k] = v
        leaves = []
        for kind, v in self._out_leaves:
            if kind == "region":
                leaves.append(outs[v])
            elif kind == "input":
                leaves.append(flat[v])
            else:
                leaves.append(v)
        return unflatten(leaves, self._out_spec)


def _out_views(region_outs) -> tuple:
    """``(k, j, steps)`` for each region output ``k`` made by view ops (``steps``: each op and
    its other arguments) from output ``j``: the region makes them again from ``j``'s tensor at
    each call, so that they are autograd views of it as in eager (a write through one rebases
    the other's history; AOTAutograd regenerates such outputs the same way)."""
    first = {}
    for k, n in enumerate(region_outs):
        first.setdefault(n, k)
    found = []
    for k, n in enumerate(region_outs):
        steps = []
        m = n
        while m.op == "call_function" and m not in (first if steps else ()):
            cls = _op_class(m.target)
            if cls is None or not getattr(cls, "view", False) or not m.args or \
                    not hasattr(m.args[0], "op") or \
                    any(hasattr(a, "op") for a in (*m.args[1:], *m.kwargs.values())):
                break
            steps.append((m.target, m.args[1:], dict(m.kwargs)))
            m = m.args[0]
        if steps and m in first and first[m] != k and \
                region_outs[first[m]] is not n:
            found.append((k, first[m], tuple(reversed(steps))))
    return tuple(found)


def _wrap_outs(outs):
    """The region's result arrays as ``Function.apply`` wraps a forward's result when it
    records nothing (a NumPy scalar made an array, the inference flag set)."""
    inference = state.inference
    res = []
    for o in outs:
        if type(o) not in _ARRAY_TYPES and hasattr(o, "shape"):  # a NumPy scalar
            o = _asarray(o)
        t = _make(o)
        if inference:
            t._inference = True
        res.append(t)
    return res[0] if len(res) == 1 else tuple(res)


_CODE: dict = {}  # generated source -> code object, the most recent _CODE_KEPT of them
_CODE_KEPT = 256


def _compile(src: str, env: dict, fn_name: str):
    """``fn_name`` of ``src`` as a function over the globals ``env``.  The code object is
    compiled once per distinct source: a dynamic graph's instance at a new size, and a
    recompile that changes only constants, generate the same text (sizes and constants are
    globals) and skip Python's compiler (~4 ms per function of GPT-mini)."""
    import linecache
    from ..fx.graph_module import _count  # unique file names: tracebacks show the lines
    src = src.replace(f"def {fn_name}(", "def forward(", 1)
    code = _CODE.get(src)
    if code is None:
        _count[0] += 1
        key = f"<eval_with_key>.{_count[0]}"
        linecache.cache[key] = (len(src), None, src.splitlines(True), key)
        code = compile(src, key, "exec")
        if len(_CODE) >= _CODE_KEPT:
            _CODE.pop(next(iter(_CODE)))
        _CODE[src] = code
    g = dict(env)
    g["__name__"] = GENERATED  # NumPy's floating-point warnings are silenced there, as in ops
    exec(code, g)
    return g.pop("forward")  # not left in its own globals: a cycle holding the buffers they bind


def _recompute_grads(region, inputs, grads) -> tuple:
    """``create_graph=True``: eager's double-differentiable gradients, from running the
    captured graph's ops again on the region's own inputs (which carry their history)."""
    from ..autograd import grad as autograd_grad
    from ..autograd.grad_mode import enable_grad
    if region._random:
        raise RuntimeError("ember.compile: create_graph=True through a compiled region that "
                           "draws random numbers (dropout) cannot recompute the same draws; "
                           "compile with backend='eager' for higher-order gradients")
    if getattr(region, "gm", None) is None:  # (a custom backend's region over another graph)
        raise RuntimeError("ember.compile: create_graph=True through a compiled region runs "
                           "its ops again from its GraphModule (region.gm), which this region "
                           "lacks: a backend returning a CompiledRegion over a graph other "
                           "than gm.graph should set region.gm, or compile with "
                           "backend='eager' for higher-order gradients")
    flat = list(region._ph_vals)
    for (kind, i), t in zip(region._tensor_args, inputs):
        if kind == "input":
            flat[i] = t
    with enable_grad():
        leaves, _ = flatten(region.gm(*flat))
    outs, gouts = [], []
    k = 0
    for (kind, _), leaf in zip(region._out_leaves, leaves):
        if kind == "region":
            if k not in region._nondiff and grads[k] is not None and leaf.requires_grad:
                outs.append(leaf)
                gouts.append(grads[k])
            k += 1
    wrt = [t for t in inputs if t.requires_grad]
    got = iter(autograd_grad(outs, wrt, gouts, create_graph=True, allow_unused=True)
               if outs and wrt else ())
    return tuple(next(got) if t.requires_grad else None for t in inputs)


class CompiledFunction(Function):
    """The autograd node of a compiled region (PyTorch's ``CompiledFunctionBackward``)."""

    raw = True
    backward_name = "CompiledFunctionBackward"
    cs = None  # what the forward kept for backward (values and contexts), until backward

    @staticmethod
    def forward(ctx, region, *arrays):
        cs, outs = region._fwd(*arrays)
        if ctx._record:
            ctx.region = region
            ctx.cs = cs
            # the inputs, as eager saves them: an input changed in place before backward
            # raises as in eager, and create_graph recomputes from them (backward below)
            ctx.save_for_backward(*arrays)
        if region._nondiff:
            # a 0-d result may be a NumPy scalar, which apply makes a new array: mark that one
            outs = [o if type(o) in _ARRAY_TYPES else _asarray(o) for o in outs]
            # apply tells outputs apart by identity: a detached result that is also returned
            # with its gradient (``loss.detach()`` and ``loss``) is a view of its own
            diff = {id(o) for i, o in enumerate(outs) if i not in region._nondiff}
            for i in region._nondiff:
                if id(outs[i]) in diff:
                    outs[i] = outs[i].view()
            outs = tuple(outs)
            ctx.mark_non_differentiable(*[outs[i] for i in region._nondiff])
        if len(outs) == 1:
            return outs[0]  # one array: apply's fast path
        return outs

    @staticmethod
    def backward(ctx, *grads):
        region = ctx.region
        inputs = ctx.saved_tensors  # version checks; a second backward raises here, as eager
        if state.grad:
            return (None,) + _recompute_grads(region, inputs, grads)
        if region._bwd is None:
            return (None,) * (1 + len(region._tensor_args))
        if ctx.cs is None:
            raise RuntimeError("ember.compile: a compiled region frees its saved values in its "
                               "first backward; backward through it a second time "
                               "(retain_graph=True) is not supported: compile with "
                               "backend='eager' for that")
        # grad mode is off here (on, create_graph returned above); the saved values go with
        # the call, freed as backward proceeds
        gs = region._bwd(ctx.__dict__.pop("cs"), *grads)
        return (None,) + tuple(None if g is None else _make(
            g if type(g) in _ARRAY_TYPES else _asarray(g)) for g in gs)

    def _free(self):
        # the engine frees a node's saved values after its backward (unless retain_graph)
        self.cs = None
        super()._free()
