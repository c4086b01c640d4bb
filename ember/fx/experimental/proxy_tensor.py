"""``make_fx``: a graph of the ops a function really runs (PyTorch's
``torch.fx.experimental.proxy_tensor``).

NOTE [ Op recording ]
What it captures: ``record(fn, args)`` runs ``fn(*args)`` for real, with an ``OpRecorder`` (a
``TorchDispatchMode``, so backward ops run inside ``fn`` are seen too) on the mode stack.
Every built-in op reaches the recorder from ``Function.apply`` (NOTE [ Modes ]); the recorder
runs it and appends one node.  What it produces: an ``ember.fx.Graph`` (and ``GraphModule``)
whose nodes are, in order:

- ``placeholder`` ``arg0_1, arg1_1, ...``: one per leaf of the flattened ``args`` (tensors and
  plain values alike, so the module takes ``fn``'s flattened arguments);
- ``get_attr`` ``_param_constantN`` (a ``Parameter`` or a leaf that requires grad) or
  ``_tensor_constantN`` (any other tensor that is neither an input nor an op's result: buffers,
  captured constants, tensors made outside ops), one per distinct tensor, in first-use order;
- ``call_function``: ``target`` is the ``ember.autograd.modes.Op`` of the op's Function class
  (``op_for(cls)``: callable, ``__name__`` the ATen-style name ``mul``, ``addmm``,
  ``convolution``...); ``args``/``kwargs`` are exactly what ``Function.apply`` got, with each
  tensor replaced by its node and everything else kept as a constant: Python numbers, tuples,
  NumPy dtypes, internal extras such as a result dtype, and raw backend arrays that some ops
  take as extras.  Calling ``target(*args)`` with tensors runs the op again (with autograd).
  An op with several results gives a tuple; each result used later is an
  ``operator.getitem(node, i)`` node.  An in-place op (``x.add_(y)``) runs out of place and
  writes its result into ``x`` (NOTE [ In-place ops ]): it is the out-of-place node (``add``)
  and a ``copy_(x, add)`` node (target ``COPY_``, ``x.copy_(src)`` with autograd), whose
  value ``x`` is from then on.  With ``record(..., offer=True)``, functions without a
  ``Function`` (comparisons, ``argmax``, ``nonzero``, creation and random functions:
  ``OFFERED``) are offered to the modes while recording, so they are nodes too, with an ``Op``
  of their name over the public function.  A dropout is a ``DROPOUT_MASK`` node (its mask,
  drawn from the default generator when the node runs) and a ``mul``;
- ``output``: ``fn``'s result with each tensor replaced by its node (or constant).

Each ``call_function`` node's ``meta["val"]`` is the real result it produced while recording,
and ``meta["grad_mode"]`` the grad mode it ran under; each placeholder's ``meta["val"]`` is the
real input.  A ``GraphModule`` made from the graph runs on new inputs of the same shapes and
gives the same numbers, with one caveat: tensors computed outside ops (a dropout mask, a
``randn`` call, a value read through ``.numpy()``) are baked in as constants, as PyTorch's
``make_fx`` bakes them, and writes made outside ops (BatchNorm's ``num_batches_tracked``
counter, bumped on its array) are not in the graph.  ``Recording.fresh_constants`` lists the
constants made during the call, so a consumer that must not bake them (``ember.compile``) can
refuse the graph.

The life of one call: ``make_fx(fn)(x)`` -> ``record`` flattens ``x``, makes placeholders,
pushes the recorder, calls ``fn``; ``Mul.apply(a, b, dt)`` -> ``dispatch`` ->
``OpRecorder.__torch_dispatch__`` -> runs ``Mul.apply`` with the recorder off the stack ->
``graph.call_function(op, (n_a, n_b, dt))``; ``fn`` returns -> the output node;
``GraphModule(constants, graph)``.
"""
from __future__ import annotations

import contextlib
import functools
import operator
import threading

from ...autograd import inplace as _inplace
from ...autograd.modes import Op, TorchDispatchMode, TorchFunctionMode
from ..._state import state
from ..._tensor import Tensor, _make
from ...nn.parameter import Parameter
from ..graph import Graph
from ..graph_module import GraphModule

__all__ = ["make_fx", "record", "Recording", "OpRecorder", "flatten", "unflatten",
           "plain_output"]


def flatten(tree) -> tuple:
    """The leaves of nested tuples/lists/dicts, and a spec to rebuild the structure."""
    leaves = []

    def walk(a):
        if isinstance(a, (tuple, list)) and not isinstance(a, Tensor):
            return (type(a), [walk(e) for e in a])
        if isinstance(a, dict):
            return (dict, [(k, walk(v)) for k, v in a.items()])
        leaves.append(a)
        return None
    spec = walk(tree)
    walk = None  # the recursive closure refers to itself: a cycle holding the leaves
    return leaves, spec


def unflatten(leaves, spec):
    """The inverse of ``flatten``."""
    it = iter(leaves)

    def build(s):
        if s is None:
            return next(it)
        kind, items = s
        if kind is dict:
            return {k: build(v) for k, v in items}
        vals = [build(e) for e in items]
        if kind is list:
            return vals
        if kind is tuple:
            return tuple(vals)
        # a namedtuple takes its fields one by one; other tuple subclasses (``Size``) one
        # iterable
        return kind(*vals) if hasattr(kind, "_fields") else kind(vals)
    out = build(spec)
    build = None  # the recursive closure refers to itself: a cycle holding the leaves
    return out


def plain_output(tree) -> tuple:
    """``(plain, rebuild, opaque)`` for a function's result: ``plain`` is ``tree`` with the
    containers a graph's output spells as tuples and dicts (namedtuples, other tuple
    subclasses such as ``Size``, dict subclasses such as ``OrderedDict`` and HuggingFace's
    ``ModelOutput``, dataclasses by their ``__init__`` fields) made plain; ``rebuild(plain)``
    makes those containers again around a replay's values (``None``: nothing to make); and
    ``opaque`` names the type of another object in it that holds tensors (which a graph
    would return as the captured object itself), else ``None``."""
    import dataclasses
    opaque = []

    def walk(a):
        if isinstance(a, Tensor):
            return a, None
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            items = [(f.name, walk(getattr(a, f.name)))
                     for f in dataclasses.fields(a) if f.init]
            return ({k: p for k, (p, _) in items},
                    ("fields", type(a), [(k, r) for k, (_, r) in items]))
        if isinstance(a, (tuple, list)):
            items = [walk(e) for e in a]
            kind = type(a)
            spec = None if kind in (tuple, list) and all(r is None for _, r in items) else \
                ("seq", kind, [r for _, r in items])
            return (list if kind is list else tuple)(p for p, _ in items), spec
        if isinstance(a, dict):
            items = [(k, walk(v)) for k, v in a.items()]
            kind = type(a)
            spec = None if kind is dict and all(r is None for _, (_, r) in items) else \
                ("dict", functools.partial(kind, a.default_factory)
                 if hasattr(a, "default_factory") else kind, [(k, r) for k, (_, r) in items])
            return {k: p for k, (p, _) in items}, spec
        if hasattr(a, "__dict__") and not isinstance(a, type) and \
                any(isinstance(v, Tensor) for v in vars(a).values()):
            opaque.append(type(a).__qualname__)
        return a, None

    def build(p, spec):
        if spec is None:
            return p
        what, kind, subs = spec
        if what == "seq":
            vals = [build(e, r) for e, r in zip(p, subs)]
            if kind is tuple or kind is list:
                return kind(vals)
            return kind(*vals) if hasattr(kind, "_fields") else kind(vals)
        vals = {k: build(p[k], r) for k, r in subs}
        return kind(**vals) if what == "fields" else kind(vals)
    plain, spec = walk(tree)
    walk = None  # the recursive closure refers to itself: a cycle holding the leaves
    rebuild = None if spec is None else functools.partial(build, spec=spec)
    return plain, rebuild, (opaque[0] if opaque else None)


def _plain(a):
    """A tracked size (``SizeInt``, NOTE [ Size decisions ]) as the plain int a graph holds."""
    return int.__int__(a) if getattr(type(a), "_ember_size", False) else a


class _OpBody(threading.local):
    depth = 0


# > 0 while a recorded op runs: what its Python decides from sizes is decided again when the
# graph runs (NOTE [ Size decisions ] in ``_dynamo/dynamic.py`` does not track it)
OP_BODY = _OpBody()


class OpRecorder(TorchDispatchMode):
    """A mode that appends one ``call_function`` node per op it sees (NOTE [ Op recording ]).

    ``forward_only=True`` skips ops run by a backward pass inside the recorded region (they
    still run) and notes that one ran in ``saw_backward``.
    """

    def __init__(self, graph: Graph = None, forward_only: bool = False):
        self.graph = Graph() if graph is None else graph
        self.forward_only = forward_only
        self.saw_backward = False
        self.constants = {}        # get_attr name -> tensor
        self.fresh_constants = []  # names of constants made during the recorded call
        self._nodes = {}           # id(tensor) -> node (or (tuple node, index) not yet split)
        self._keep = []            # the tensors in _nodes, alive so their ids stay unique
        self._known = set()        # ids of tensors that existed before the call (see record)
        # id(array) -> (tensor, node): a saved output that backward rebuilds is a new tensor
        # over the same array (NOTE [ Saved tensors ]); it is that node's value
        self._by_data = {}
        # (id(grad_fn), output_nr) -> tensor: an in-place op on a tensor that requires grad
        # runs on a copy of it (``autograd.inplace``), a new tensor over a new array but with
        # the original's history, so it is the original's value
        self._by_fn = {}
        self._n_param = self._n_tensor = self._n_other = 0
        self.written = set()       # ids of tensors an in-place op wrote (``copy_`` nodes)
        # the custom ``autograd.Function`` classes applied with grad recorded: their forward's
        # ops are nodes, their backward is not (``ember.compile`` breaks the graph there)
        self.custom_functions = []

    def bind(self, t: Tensor, node) -> None:
        """From now on ``t`` (and any tensor over the same array) is the value of ``node``."""
        self._nodes[id(t)] = node
        self._by_data[id(t._data)] = (t, node)
        self._keep.append(t)
        if t._grad_fn is not None:
            self._by_fn[(id(t._grad_fn), t._output_nr)] = t

    def node_of(self, t: Tensor):
        """The node whose value ``t`` is, making a ``get_attr`` for a tensor seen first here."""
        n = self._nodes.get(id(t))
        if type(n) is tuple:  # one result of a multi-result op: split it off on first use
            n = self.graph.call_function(operator.getitem, n)
            n.meta["val"] = t
            self._nodes[id(t)] = n
        elif n is None:
            seen = self._by_data.get(id(t._data))
            if seen is not None and seen[0]._data is t._data and id(seen[0]) in self._nodes:
                n = self.node_of(seen[0])
                self.bind(t, n)
                return n
            same = self._by_fn.get((id(t._grad_fn), t._output_nr)) if t._grad_fn else None
            if same is not None and same is not t:
                n = self.node_of(same)
                self.bind(t, n)
                return n
            if isinstance(t, Parameter) or (t.requires_grad and t.grad_fn is None):
                name = f"_param_constant{self._n_param}"
                self._n_param += 1
            else:
                name = f"_tensor_constant{self._n_tensor}"
                self._n_tensor += 1
            if id(t) not in self._known:
                self.fresh_constants.append(name)
            self.constants[name] = t
            n = self._get_attr(name)
            n.meta["val"] = t
            self.bind(t, n)
        return n

    def map(self, a):
        """``a`` with each tensor (inside tuples, lists, dicts too) replaced by its node."""
        if isinstance(a, Tensor):
            return self.node_of(a)
        if isinstance(a, list):
            return [self.map(e) for e in a]
        if isinstance(a, tuple):
            if type(a) is not tuple and not any(isinstance(e, Tensor) for e in a):
                # generated code writes tuples as literals: an op's namedtuple extra (a
                # layout) stays its own object, read from the module as ``_constantN``
                return self.constant(a)
            return tuple(self.map(e) for e in a)  # a (values, indices) result: a tuple
        if isinstance(a, dict):
            return {k: self.map(v) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(_plain(a.start), _plain(a.stop), _plain(a.step))
        return _plain(a)

    def constant(self, value):
        """A ``get_attr`` node for a non-tensor constant the generated code cannot spell."""
        n = self._nodes.get(id(value))
        if n is None:
            name = f"_constant{self._n_other}"
            self._n_other += 1
            self.constants[name] = value
            n = self._get_attr(name)
            self._nodes[id(value)] = n
            self._keep.append(value)
        return n

    def _get_attr(self, name: str):
        first = _first_op(self.graph)
        if first is None:
            return self.graph.get_attr(name)
        with self.graph.inserting_before(first):
            return self.graph.get_attr(name)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if state.in_backward:
            self.saw_backward = True
            if self.forward_only:
                return func(*args, **kwargs)
        grad_mode = state.grad
        OP_BODY.depth += 1  # NOTE [ Size decisions ]: its Python runs again at each replay
        try:
            out = func(*args, **kwargs)
        finally:
            OP_BODY.depth -= 1
        node = self.graph.call_function(func, self.map(args), self.map(kwargs))
        node.meta["val"] = out
        node.meta["grad_mode"] = grad_mode
        if args and isinstance(args[0], Tensor):  # kept once values are dropped (NOTE [ Size
            node.meta["shape0"] = args[0]._data.shape  # decisions ]: a pool's input)
        if isinstance(out, Tensor):
            self.bind(out, node)
        elif isinstance(out, tuple):
            for i, o in enumerate(out):
                if isinstance(o, Tensor):
                    self._nodes[id(o)] = (node, i)
                    self._keep.append(o)
                    self._by_data[id(o._data)] = (o, (node, i))
        return out

    def record_write(self, t: Tensor, result: Tensor) -> None:
        """An in-place op wrote ``result`` into ``t``: a ``copy_`` node is ``t``'s value now."""
        node = self.graph.call_function(COPY_, (self.node_of(t), self.node_of(result)))
        node.meta["val"] = t
        node.meta["grad_mode"] = state.grad
        self.bind(t, node)
        self.written.add(id(t))

    def record_dropout(self, input: Tensor, p: float, kept_dims: int, inplace: bool):
        """``input * mask`` with the mask a ``DROPOUT_MASK`` node (see ``record``)."""
        from ...ops.elementwise import Mul
        x = input._data
        shape = x.shape if kept_dims < 0 else \
            x.shape[:kept_dims] + (1,) * (x.ndim - kept_dims)
        mask = _make(dropout_mask_array(x, shape, p))
        node = self.graph.call_function(DROPOUT_MASK, (self.node_of(input), shape, p))
        node.meta["val"] = mask
        node.meta["grad_mode"] = state.grad
        self.bind(mask, node)
        if inplace:
            return input.mul_(mask)
        return Mul.apply(input, mask, x.dtype)


def dropout_mask_array(x, shape: tuple, p: float):
    """Dropout's scaled keep-mask for array ``x``: one draw from the default generator."""
    from ...ops.layers import _keep_mask
    return _keep_mask(x, shape, p) * x.dtype.type(1.0 / (1.0 - p))


def _dropout_mask(x: Tensor, shape: tuple, p: float) -> Tensor:
    """``dropout_mask_array`` as a tensor (what a ``DROPOUT_MASK`` node computes)."""
    return _make(dropout_mask_array(x._data, shape, p))


# A dropout's mask, drawn when the node runs: a replay draws from the generator at the same
# point of the op sequence as eager does, so it consumes the same random stream
DROPOUT_MASK = Op(_dropout_mask, "dropout_mask")


def _copy_into(t: Tensor, src: Tensor) -> Tensor:
    """``t.copy_(src)``: an in-place op's write of its result into ``t``."""
    return t.copy_(src)


COPY_ = Op(_copy_into, "copy_")


def _first_op(graph: Graph):
    """The first node that is not a placeholder or get_attr (``None``: the end)."""
    for n in graph.nodes:
        if n.op not in ("placeholder", "get_attr"):
            return n
    return None


class Recording:
    """What ``record`` returns: the graph, its constants and the call's real results."""

    def __init__(self, recorder: OpRecorder, inputs: list, in_spec, result):
        self.graph = recorder.graph
        self.constants = recorder.constants
        self.fresh_constants = recorder.fresh_constants
        self.saw_backward = recorder.saw_backward
        self.inputs = inputs      # the flattened arguments, one per placeholder
        self.in_spec = in_spec
        self.result = result      # what fn returned

    def graph_module(self, class_name: str = "GraphModule") -> GraphModule:
        return GraphModule(dict(self.constants), self.graph, class_name)


def record(fn, args=(), kwargs=None, *, forward_only: bool = False,
           known=(), recorder: OpRecorder = None, offer: bool = False,
           arg_names=None) -> Recording:
    """Run ``fn(*args, **kwargs)`` for real and record its ops (NOTE [ Op recording ]).

    ``known``: tensors that existed before the call (parameters, buffers); any other tensor
    that reaches an op without being an input or an op's result is listed in
    ``fresh_constants``.  ``kwargs`` are passed through as constants (no placeholders).
    ``recorder``: an ``OpRecorder`` (a subclass) to record with instead of a new one.
    ``offer``: record the ``OFFERED`` functions as nodes too (else their results are
    constants, as ``make_fx`` has them).  ``arg_names``: the placeholders' names (else
    ``fn``'s parameter names where the arguments are flat, else ``arg0_1, ...``).
    """
    leaves, spec = flatten(tuple(args))
    rec = OpRecorder(forward_only=forward_only) if recorder is None else recorder
    rec._known = {id(t) for t in known}
    names = arg_names or (_arg_names(fn, len(leaves)) if len(leaves) == len(args) else None)
    for i, a in enumerate(leaves):
        ph = rec.graph.placeholder(f"{names[i]}_1" if names else f"arg{i}_1")
        ph.meta["val"] = a
        if isinstance(a, Tensor) and id(a) not in rec._nodes:  # a repeated input: first one
            rec.bind(a, ph)
    write = _inplace._write

    def recording_write(t, result, overlap_ok=False):
        # in-place ops run out of place and write into ``t`` (NOTE [ In-place ops ]): the
        # mode sees the op, this patch (for the recording only, as fx's tracer patches) sees
        # the write
        write(t, result, overlap_ok)
        if rec in state.modes:
            rec.record_write(t, result)
    from ...ops import layers
    dropout = layers._dropout

    def recording_dropout(input, p, training, inplace, kept_dims=-1, alpha=False):
        # dropout draws its mask outside ops: record the draw as a node, so a replay draws
        # a new mask (and eager's random stream) rather than baking this call's mask in
        x = input._data
        if rec not in state.modes or alpha or p == 0 or p == 1 or not training or \
                x.size == 0 or (kept_dims >= 0 and x.ndim < 2):
            return dropout(input, p, training, inplace, kept_dims, alpha)
        return rec.record_dropout(input, p, kept_dims, inplace)
    from ...autograd.function import Function
    apply = Function.__dict__["apply"]

    def recording_apply(cls, *args, **kwargs):
        # a custom Function (not a built-in op) runs its forward's ops, which the recorder
        # sees, under a node whose backward is the user's: noted, as the graph lacks it
        if rec in state.modes and state.grad and \
                any(isinstance(a, Tensor) and a._requires_grad for a in args):
            rec.custom_functions.append(cls)
        return apply.__func__(cls, *args, **kwargs)
    _inplace._write = recording_write
    layers._dropout = recording_dropout
    Function.apply = classmethod(recording_apply)
    try:
        with offering() if offer else contextlib.nullcontext(), rec:
            result = fn(*unflatten(leaves, spec), **(kwargs or {}))
    finally:
        _inplace._write = write
        layers._dropout = dropout
        Function.apply = apply
    rec.graph.output(rec.map(result))
    return Recording(rec, leaves, spec, result)


def _arg_names(fn, n: int):
    """``fn``'s first ``n`` positional parameter names (PyTorch names placeholders ``x_1``)."""
    import inspect
    code = getattr(inspect.unwrap(fn), "__code__", None)
    skip = 1 if inspect.ismethod(fn) else 0
    if code is None or code.co_flags & inspect.CO_VARARGS or code.co_argcount - skip < n:
        return None
    names = code.co_varnames[skip:skip + n]
    return names if len(names) == n else None


# Functions that make tensors without a ``Function`` (no gradient: comparisons, arg-reductions,
# index finding; creation and random draws): offered to the modes while recording, each as an
# ``Op`` of that name, so that the graph computes them rather than baking their results in
OFFERED = ("eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
           "logical_xor", "bitwise_not", "argmax", "argmin", "isnan", "isinf", "isfinite",
           "nonzero", "unique", "bincount", "bernoulli", "multinomial",
           "zeros", "ones", "full", "empty", "arange", "linspace", "eye", "tensor", "as_tensor",
           "scalar_tensor",
           "zeros_like", "ones_like", "full_like", "empty_like", "rand", "randn", "randint",
           "rand_like", "randn_like", "randint_like", "randperm", "normal")
_OFFERED_DUNDERS = {"__eq__": "eq", "__ne__": "ne", "__lt__": "lt", "__le__": "le",
                    "__gt__": "gt", "__ge__": "ge", "__invert__": "bitwise_not",
                    "__and__": "logical_and", "__or__": "logical_or"}
_OFFERED_OPS = {}


def offered_op(fn, name: str) -> Op:
    """The (cached) ``Op`` under which function ``fn`` is offered to the modes."""
    op = _OFFERED_OPS.get((fn, name))
    if op is None:
        op = _OFFERED_OPS[(fn, name)] = Op(fn, name)
    return op


def _offer(fn, name: str):
    from ...autograd.modes import dispatch
    op = offered_op(fn, name)

    @functools.wraps(fn)
    def offered(*args, **kwargs):
        if not state.modes:
            return fn(*args, **kwargs)
        return dispatch(op, args, kwargs, fn)
    return offered


@contextlib.contextmanager
def offering():
    """Offer the ``OFFERED`` functions (and their methods/operators) to the modes."""
    import ember
    saved = []
    for name in OFFERED:
        for owner in (ember, Tensor):
            fn = owner.__dict__.get(name)
            if fn is not None:
                saved.append((owner, name, fn))
                setattr(owner, name, _offer(fn, name))
    for dunder, name in _OFFERED_DUNDERS.items():
        fn = Tensor.__dict__.get(dunder)
        if fn is not None:
            saved.append((Tensor, dunder, fn))
            setattr(Tensor, dunder, _offer(fn, name))
    from ...ops import attention
    # MultiheadAttention/Transformer turn a bool mask into an additive one on arrays
    saved.append((attention, "_canonical_mask", attention._canonical_mask))
    attention._canonical_mask = _offer(attention._canonical_mask, "_canonical_mask")
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def make_fx(f, decomposition_table=None, tracing_mode: str = "real",
            _allow_non_fake_inputs: bool = False, *, pre_dispatch: bool = False,
            record_module_stack: bool = False, _allow_fake_constant: bool = False,
            _error_on_data_dependent_ops: bool = True):
    """``make_fx(f)(*args)``: a ``GraphModule`` of the ops ``f(*args)`` runs (PyTorch's).

    ember has no fake tensors: ``"fake"`` and ``"symbolic"`` modes run on the real inputs too,
    which gives the same graph for the static shapes ember captures.  ``decomposition_table``
    maps an ``Op`` to a function run in its place (its ops are recorded instead).
    """
    if tracing_mode not in ("real", "fake", "symbolic"):
        raise AssertionError(f"tracing_mode must be real/fake/symbolic, got {tracing_mode}")
    table = dict(decomposition_table or {})

    def wrapped(*args):
        if not table:
            return record(f, args).graph_module()
        with _Decompose(table):
            rec = record(f, args)
        return rec.graph_module()
    return wrapped


class _Decompose(TorchFunctionMode):
    """Runs ``table[op]`` in place of ``op``, so its ops are what the recorder sees."""

    def __init__(self, table):
        self.table = table

    def __torch_function__(self, func, types, args=(), kwargs=None):
        fn = self.table.get(func)
        if fn is None:
            return func(*args, **(kwargs or {}))
        with self:  # ops inside a decomposition may decompose further
            return fn(*args, **(kwargs or {}))
