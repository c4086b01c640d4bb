"""``autograd.Function``: the one mechanism behind every differentiable op.

An op is a ``Function`` subclass with ``forward(ctx, ...)`` and
``backward(ctx, *grads)`` side by side.  ``Function.apply`` runs ``forward``
and, when grad mode is on and an input requires grad, turns ``ctx`` into the
graph node (the object a result's ``grad_fn`` points to), as PyTorch does.

Built-in ops (``ember/ops``) set ``raw = True``: their ``forward`` receives and
returns backend arrays, so the hot path never builds throw-away tensors.  Their
``backward`` is written with ember ops on tensors, so ``create_graph=True``
gives exact higher derivatives.  User subclasses keep PyTorch's contract:
``forward`` sees tensors and runs under ``no_grad``.

NOTE [ Saved tensors ]
``ctx.save_for_backward`` takes inputs or outputs of ``forward`` (arrays for
raw ops).  After ``forward`` each item is matched by identity, item k against input k
first (so ``x * x.detach()`` keeps the detached operand, as PyTorch does; a raw op that
declares ``saves_inputs``, its item k input k, its result or None, is not matched): an input is
saved as that input tensor with its version, an output as its array only
(a node never holds its own output tensor, which would be a reference cycle;
on unpack the output is rebuilt with ``grad_fn`` set to this node, as
PyTorch's SavedVariable does).  Anything else is saved as a constant.

When recording (``ctx._record``), a raw ``forward`` can read ``ctx.needs_input_grad``
(and ``ctx.next_functions``): the edges are set before ``forward`` runs.  An op with
several differentiable inputs saves only what the gradients of the needed inputs use, as
PyTorch's generated code does (``should_compute_output`` guards in VariableType), so an
in-place change of an input no needed gradient reads does not fail backward.  Outside
recording ``needs_input_grad`` is not set: read it under ``if ctx._record``.
"""
from __future__ import annotations

import functools
import weakref

from .grad_mode import state, no_grad
from . import modes
from .views import CUSTOM, check_view_fresh, link_view
from .. import _backend, _dtype
from .._hooks import add_hook
from .._tensor import Tensor, _make, _version_counter, _type_name

_ARRAY_TYPES = _backend._BY_ARRAY_TYPE  # array type -> (xp, device)
_CPU_ARRAY = _backend.np.ndarray
_new = object.__new__
_FLOAT_NP = _dtype.FLOAT_NP  # dtypes that carry gradients (bfloat16 joins on first use)

# kinds of saved entries (_HOOK: packed by autograd.graph.saved_tensors_hooks)
_IN, _OUT, _CONST, _HOOK = 0, 1, 2, 3


class Node:
    """Graph-node behaviour shared by op contexts and ``AccumulateGrad``."""

    _pre_hooks = None      # {output_nr: {id: hook}} from Tensor.register_hook on outputs
    _node_hooks = None     # hooks on the node itself: hook(grad_inputs, grad_outputs)
    _node_pre_hooks = None
    _trace = None          # forward traceback, recorded under detect_anomaly
    _saved = None          # what backward reads (FunctionCtx; see NOTE [ Saved tensors ])
    next_functions = ()
    metadata_ = None
    # engine.py's lean path takes a built-in op's one-output node or a leaf's AccumulateGrad
    _lean = False          # (until a hook is registered on it)
    _hooked = False

    def name(self) -> str:
        return type(self).__name__

    @property
    def metadata(self) -> dict:
        if self.metadata_ is None:
            self.metadata_ = {}
        return self.metadata_

    def register_hook(self, fn):
        """``fn(grad_inputs, grad_outputs)`` runs after this node's backward."""
        return add_hook(self._hook_dict("_node_hooks"), fn)

    def register_prehook(self, fn):
        """``fn(grad_outputs)`` runs before this node's backward and may replace them."""
        return add_hook(self._hook_dict("_node_pre_hooks"), fn)

    def _hook_dict(self, name: str) -> dict:
        """This node's hooks of kind ``name`` (made on first use; ends its lean path)."""
        self._lean, self._hooked = False, True
        if getattr(self, name) is None:
            setattr(self, name, {})
        return getattr(self, name)

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"


class AccumulateGrad(Node):
    """The node at a leaf: adds the incoming gradient into ``variable.grad``."""

    _n_out = 1

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "torch::autograd::AccumulateGrad"

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


def accumulate_node(t) -> AccumulateGrad:
    """The (cached, weakly held) AccumulateGrad node of leaf ``t`` (None: a view made with grad
    off of a tensor that requires grad, whose gradient goes nowhere: NOTE [ Views ])."""
    ref = t._accum
    node = ref() if ref is not None else None
    if node is None:
        if t._view_mode is not None and t._base is not None and t._base._requires_grad:
            check_view_fresh(t)
            return None
        node = AccumulateGrad(t)
        t._accum = weakref.ref(node)
    return node


class FunctionCtx(Node):
    """What ``forward`` and ``backward`` see as ``ctx``."""

    _to_save = None
    _freed = False
    _non_diff = None
    _dirty = None
    materialize_grads = True
    _n_out = 1
    _out_meta = None
    _record = False
    xp = _backend.np  # the array module a raw forward computes with (the cpu's unless set)

    def save_for_backward(self, *items):
        """Keep inputs/outputs of ``forward`` for ``backward`` (see NOTE [ Saved tensors ])."""
        if self._record:
            self._to_save = items

    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is None:
            if self._freed:
                _raise_freed()
            return ()
        out = []
        for entry in saved:
            kind = entry[0]
            if kind == _IN:
                _, t, vc, version = entry
                if vc[0] != version:
                    _raise_modified(self, t, vc[0], version)
            elif kind == _OUT:  # the array of this node's output ``idx``: rebuilt as a tensor
                _, t, idx, vc, version = entry
                if vc is not None and vc[0] != version:
                    _raise_modified(self, _make(t), vc[0], version, idx)
                t = _make(t, True, self, idx)
            else:  # a constant, or unpack_hook(packed)
                t = entry[2](entry[1]) if kind == _HOOK else entry[1]
            out.append(t)
        return tuple(out)

    saved_variables = saved_tensors

    def mark_non_differentiable(self, *outputs):
        """Outputs that never get a gradient (indices, masks)."""
        self._non_diff = outputs

    def mark_dirty(self, *tensors):
        """Inputs that ``forward`` modified in place."""
        self._dirty = tensors

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value

    def _free(self):
        # Only a node that saved something fails on a second backward, as in PyTorch.
        if self._saved is not None:
            self._saved = None
            self._freed = True


def _raise_freed():
    raise RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved "
        "tensors after they have already been freed). Saved intermediate values of the "
        "graph are freed when you call .backward() or autograd.grad(). Specify "
        "retain_graph=True if you need to backward through the graph a second time or if "
        "you need to access saved tensors after calling backward.")


def _raise_modified(node, t, now, expected, out_idx=None):
    """PyTorch's error for a saved tensor changed in place after it was saved."""
    if out_idx is not None:  # an output of ``node`` itself
        fn = node
    else:
        fn, out_idx = t._grad_fn, t._output_nr
    where = ""
    if fn is not None:
        op = fn.name().rstrip("0123456789")  # PyTorch names the op without "Backward0"
        if op.endswith("Backward"):
            op = op[:-len("Backward")]
        where = f", which is output {out_idx} of {op},"
    raise RuntimeError(
        "one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [{_type_name(t)} {list(t.shape)}]{where} is at version {now}; "
        f"expected version {expected} instead. Hint: enable anomaly detection to find the "
        "operation that failed to compute its gradient, with "
        "torch.autograd.set_detect_anomaly(True, check_nan=False).")


class Function(FunctionCtx):
    """Base class of differentiable ops: subclass with static ``forward``/``backward``.

    ``MyFn.apply(*args)`` runs it; the result's ``grad_fn`` is the ctx of that call.
    """

    raw = False          # built-ins: forward on backend arrays (see module docstring)
    view = False         # the (first) output is a view of input 0's storage
    backward_name = None  # node name shown in grad_fn, e.g. "AddBackward0"
    saves_inputs = False  # raw ops: saved item k is input k, the output or None (no matching)
    # raw ops: the arguments that are PyTorch's inputs (next_functions): None all, n the first n,
    # or a slice of them (``slice(1, 2)``: the tensor after a number, as ``pow(2, x)``'s); the
    # backward still returns one gradient per argument
    edges = None
    _edges = None  # ``edges`` as a slice

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        e = cls.edges
        cls._edges = slice(e) if e.__class__ is int else e
        # (a multi-output call clears it on its node; the engine's lean path takes the leading
        # gradients, so edges from a later argument on take the general one)
        cls._lean = bool(cls.raw) and not (e.__class__ is slice and e.start)
        # built-in ops take ``_apply_raw`` (a custom subclass of one, ``apply``)
        if "apply" not in cls.__dict__ and cls.raw != (
                getattr(cls.apply, "__func__", None) is _apply_raw):
            cls.apply = _RAW_APPLY if cls.raw else Function.__dict__["apply"]

    def name(self) -> str:
        cls = type(self)
        return cls.backward_name or cls.__name__ + "Backward"

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode AD.")

    vjp = backward

    @staticmethod
    def setup_context(ctx, inputs, output):
        """Override to save state from ``forward(*args)`` (then forward takes no ctx)."""
        raise NotImplementedError("setup_context is not overridden")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run a custom Function: ``forward`` on tensors under no_grad, ``ctx`` as the node.

        Built-in (``raw``) ops get ``_apply_raw`` instead (set by ``__init_subclass__``).
        """
        record = state.grad and any(isinstance(a, Tensor) and a._requires_grad for a in args)
        ctx = _new(cls)
        ctx._record = record
        # Link inputs before forward: ``needs_input_grad`` is readable in forward, and a
        # ``mark_dirty`` input returned as output must not become its own next function.
        if record:
            set_edges(ctx, args)
            ctx._in_meta = [(tuple(a._data.shape), a.dtype) if isinstance(a, Tensor)
                            else None for a in args]
        else:
            ctx.needs_input_grad = (False,) * len(args)
        prev = state.grad
        state.grad = False
        try:
            if cls.setup_context is _base_setup_context:
                out = cls.forward(ctx, *args, **kwargs)
            else:  # the forward(*args) + setup_context(ctx, inputs, output) style
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
        finally:
            state.grad = prev
        return _wrap_outputs(cls, ctx, args, args, kwargs, out, record)


def _apply_raw(cls, *args, **kwargs):
    """``apply`` of a built-in op: ``forward`` on the arguments' arrays; ``ctx`` is the node."""
    if state.intercept:  # a mode or a subclass wants to see it (NOTE [ Modes ])
        return modes.dispatch(modes.op_for(cls), args, kwargs, cls.apply)
    ctx = _new(cls)
    nf = None  # next_functions and needs_input_grad, made at the first input needing grad
    grad_on = not (inference := state.inference) and state.grad  # (inference: no recording)
    a = args[0] if len(args) == 1 else None
    if a.__class__ is Tensor:  # a unary op on a plain tensor: no list, no loop (hot)
        d = a._data
        raw = (d,)
        t0 = type(d)
        if grad_on and a._requires_grad:
            fn = a._grad_fn
            if fn is None:
                fn = a._accum
                fn = fn() if fn is not None else None
                nf = ((fn if fn is not None else accumulate_node(a), 0),)
            else:
                nf = ((fn, a._output_nr),)
            needs = _NEEDS1
        scan = ()
    else:
        raw = list(args)  # (each tensor replaced by its array in place)
        t0 = None
        scan = args
    i = -1
    for a in scan:
        i += 1
        if isinstance(a, Tensor):
            d = raw[i] = a._data
            if t0 is None:
                t0 = type(d)
            elif type(d) is not t0:  # another array type: maybe another device
                t0 = _backend.check_same_device(t0, d, raw[:i])
            if grad_on and a._requires_grad:
                if nf is None:
                    nf, needs = [_NO_EDGE] * len(args), [False] * len(args)
                needs[i] = True
                fn = a._grad_fn
                if fn is None:  # a leaf (accumulate_node's cache hit inlined: hot)
                    fn = a._accum
                    fn = fn() if fn is not None else None
                    nf[i] = (fn if fn is not None else accumulate_node(a), 0)
                else:
                    nf[i] = (fn, a._output_nr)
    if t0 is not _CPU_ARRAY:  # (the cpu's array module is the class default: no store)
        ctx.xp = _ARRAY_TYPES[t0][0] if t0 is not None else None
    if nf is not None:  # edges are set before forward: it saves only what a needed gradient uses
        ctx._record = True
        ctx.next_functions = tuple(nf) if cls._edges is None else tuple(nf[cls._edges])
        ctx.needs_input_grad = tuple(needs)
    res = out = (cls.forward(ctx, *raw, **kwargs) if kwargs else cls.forward(ctx, raw[0])
                 if len(raw) == 1 else cls.forward(ctx, raw[0], raw[1], raw[2]) if len(raw) == 3
                 else cls.forward(ctx, *raw))  # (unary, binary + dtype: no star-call, ~0.1 us)
    tp = type(out)
    if tp not in _ARRAY_TYPES:
        if not hasattr(out, "shape"):  # several outputs, or a plain Python value
            return _wrap_outputs(cls, ctx, args, raw, kwargs, out, nf is not None)
        out = _backend.asarray(out)  # a NumPy scalar
    if nf is not None and out.dtype in _FLOAT_NP and ctx._non_diff is None:  # the hot path
        t = _make(out, True, ctx)
        items = ctx._to_save
        if items is not None:
            ctx._to_save = None
            ctx._saved = _save_args(items, args, res, t) if cls.saves_inputs \
                else _resolve_saved(items, raw, args, (res,), (t,))
        if state.anomaly:
            import traceback  # only under detect_anomaly (import time)
            ctx._trace = "".join(traceback.format_stack()[:-1])
    else:
        t = _make(out)
    if inference:
        t._inference = True
    if cls.view and isinstance(args[0], Tensor):
        link_view(t, args[0], cls, args[1:], kwargs, grad_on)
    return t


def _wrap_outputs(cls, ctx, args, raw, kwargs, out, record):
    """Tensors for what ``forward`` returned (several outputs, or a custom Function's)."""
    single = type(out) is not tuple
    outs = (out,) if single else out
    results = []
    non_diff = ctx._non_diff
    inference = state.inference
    dirty = ctx._dirty
    for i, o in enumerate(outs):
        if cls.raw:
            if type(o) not in _ARRAY_TYPES:
                if not hasattr(o, "dtype"):  # a plain Python value passes through
                    results.append(o)
                    continue
                o = _backend.asarray(o)
            t = _make(o)
        elif isinstance(o, Tensor):
            t = o
            if record and (t._grad_fn is not None or t._requires_grad) and not (
                    dirty is not None and _in(t, dirty)):
                t = _make(t._data)  # alias: never rewrite the history of a returned input
            if t is not o or o._base is not None and not _in(o, args):
                t._view_mode = CUSTOM  # a view or an input: no in-place write (NOTE [ Views ])
        else:
            results.append(o)
            continue
        if inference:
            t._inference = True
        if record and (non_diff is None or not _in(o, non_diff)) and (
                t.dtype.is_floating_point or t.dtype.is_complex):
            if dirty is not None and _in(t, dirty):
                _version_counter(t)[0] += 1  # PyTorch bumps a dirty output once more
            t._requires_grad = True
            t._grad_fn = ctx
            t._output_nr = i
        results.append(t)
    if cls.view and isinstance(args[0], Tensor) and isinstance(results[0], Tensor):
        link_view(results[0], args[0], cls, args[1:], kwargs)

    if record:
        ctx._n_out = len(outs)
        if not single:
            ctx._lean = False
            ctx._out_meta = [(r._data.shape, r._data.dtype, _backend.xp_of(r._data))
                             if isinstance(r, Tensor) else None for r in results]
        if ctx._to_save is not None:
            ctx._saved = _resolve_saved(ctx._to_save, raw, args, outs, results)
            ctx._to_save = None
        if state.anomaly:
            import traceback
            ctx._trace = "".join(traceback.format_stack()[:-1])
    return results[0] if single else tuple(results)


_RAW_APPLY = classmethod(_apply_raw)
_NEEDS1 = (True,)
_NO_EDGE = (None, 0)
_NONE_SAVED = (_CONST, None)


def set_edges(ctx, args) -> None:
    """Point ``ctx`` at the nodes that produced its inputs (``next_functions``)."""
    nf = []
    needs = []
    for a in args:
        if isinstance(a, Tensor) and a._requires_grad:
            fn = a._grad_fn
            nf.append((fn, a._output_nr) if fn is not None else (accumulate_node(a), 0))
            needs.append(True)
        else:
            nf.append(_NO_EDGE)
            needs.append(False)
    ctx.next_functions = tuple(nf)
    ctx.needs_input_grad = tuple(needs)


def _in(x, seq) -> bool:
    """Whether ``x`` itself (not an equal tensor) is in ``seq``."""
    return any(s is x for s in seq)


def _resolve_saved(items, raw, args, outs, results):
    """Map saved items to inputs/outputs by identity (NOTE [ Saved tensors ])."""
    saved = []
    n = len(raw)
    for k, item in enumerate(items):
        if item is None:
            saved.append(_NONE_SAVED)
            continue
        # Item k is most often input k (``save_for_backward(a, b)``): no scan, no type test.
        t = args[k] if k < n and raw[k] is item else None
        if not isinstance(t, Tensor):
            t = None
            tp = type(item)
            if tp is float or tp not in _ARRAY_TYPES and not hasattr(item, "shape"):
                saved.append((_CONST, item))  # a Python scalar
                continue
            for j, r in enumerate(raw):
                if r is item and isinstance(args[j], Tensor):
                    t = args[j]
                    break
            else:
                saved.append(_saved_output(item, tp, outs, results))
                continue
        if t._inference and not state.inference:
            _raise_inference_saved()
        b = t if t._base is None else t._base  # (_version_counter inlined: hot)
        vc = b._version_ctr
        if vc is None:
            vc = b._version_ctr = [0]
        saved.append((_IN, t, vc, vc[0]))
    if state.saved_hooks:
        return _pack(saved, results)
    return tuple(saved)


def _saved_output(item, tp, outs, results):
    """The saved entry of an output of the op, or of a constant (an intermediate value)."""
    for j, o in enumerate(outs):
        if o is item:
            r = results[j]
            if r._grad_fn is None:  # non-differentiable output: plain constant
                return (_CONST, r)
            b = r if r._base is None else r._base
            vc = b._version_ctr
            if vc is None:
                vc = b._version_ctr = [0]
            return (_OUT, r._data, j, vc, vc[0])
    return (_CONST, _make(item) if tp in _ARRAY_TYPES else item)


def _save_args(items, args, out, t):
    """Saved entries of a ``saves_inputs`` op: item k is input k, the output ``out`` (whose
    fresh tensor is ``t``) or None, taken as declared without matching."""
    saved = []
    k = -1
    for item in items:
        k += 1
        if item is out:
            vc = t._version_ctr
            if vc is None:
                vc = t._version_ctr = [0]
            saved.append((_OUT, t._data, 0, vc, vc[0]))
        elif item is None:
            saved.append(_NONE_SAVED)
        else:
            a = args[k]
            if isinstance(a, Tensor):
                if a._inference and not state.inference:
                    _raise_inference_saved()
                b = a if a._base is None else a._base
                vc = b._version_ctr
                if vc is None:
                    vc = b._version_ctr = [0]
                saved.append((_IN, a, vc, vc[0]))
            else:  # a Python scalar (or an array passed as is: a constant tensor)
                saved.append((_CONST, _make(item) if type(item) in _ARRAY_TYPES else item))
    return _pack(saved, (t,)) if state.saved_hooks else saved


def _raise_inference_saved():
    raise RuntimeError(
        "Inference tensors cannot be saved for backward. Please do not use Tensors created in "
        "inference mode in computation tracked by autograd. To work around this, you can make "
        "a clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` "
        "instead of `torch.inference_mode()`.")


def _pack(saved, results):
    """Hand each saved tensor to the innermost ``saved_tensors_hooks``' pack hook."""
    pack, unpack = state.saved_hooks[-1]
    packed = []
    for entry in saved:
        kind = entry[0]
        t = entry[1] if kind == _IN else results[entry[2]] if kind == _OUT else entry[1]
        if isinstance(t, Tensor):
            with no_grad():
                entry = (_HOOK, pack(t), unpack)
        packed.append(entry)
    return tuple(packed)


class _DelayedError(Function):
    """Stands in for a gradient that cannot be differentiated again (once_differentiable)."""

    @staticmethod
    def forward(ctx, x):
        return x.detach() if hasattr(x, "detach") else x

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")


def once_differentiable(fn):
    """Decorate a ``backward`` that is not itself differentiable: runs it under no_grad."""
    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        create = state.grad
        with no_grad():
            out = fn(ctx, *grads)
        if not create:
            return out
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        if not any(getattr(g, "_requires_grad", False) for g in grads):
            return out
        # The result was computed under no_grad: give it a node that fails when differentiated.
        wrapped = tuple(_DelayedError.apply(o.detach().requires_grad_())
                        if isinstance(o, Tensor) and o.dtype.is_floating_point else o
                        for o in outs)
        return wrapped[0] if single else wrapped
    return wrapper


_base_setup_context = Function.setup_context


class InplaceFunction(Function):
    pass


class NestedIOFunction(Function):
    pass
