"""Capture a model's ops as a flat list of nodes (the exporter's input; NOTE [ ONNX export ]).

A ``TorchFunctionMode`` on the core's mode stack sees each op's ``Function.apply`` (an ``Op``
named as ATen's, NOTE [ Modes ]); the comparisons and arg-reductions, which have no
gradient and so no ``Function``, are offered to the mode too while capturing (``_offered``).
Two runs with different sizes of the dynamic axes tell which shapes and which integer
arguments follow those axes: an int that differs between the runs becomes a ``Sym``.
"""
from __future__ import annotations

import contextlib

from .. import _tensor
from ..autograd.modes import Op, dispatch
from ..overrides import TorchFunctionMode

__all__ = ["Value", "Node", "Graph", "Sym", "capture"]


class Sym:
    """An int that follows a dynamic axis: ``a`` in the first capture, ``b`` in the second."""

    __slots__ = ("a", "b")

    def __init__(self, a: int, b: int):
        self.a, self.b = a, b

    def __int__(self):
        return self.a

    __index__ = __int__

    def __repr__(self):
        return f"Sym({self.a}, {self.b})"


class Value:
    """A tensor of the graph: an input, a parameter/buffer, a constant or an op's output."""

    __slots__ = ("name", "kind", "tensor", "shape2", "users")

    def __init__(self, name: str, kind: str, tensor, shape2=None):
        self.name, self.kind, self.tensor = name, kind, tensor
        self.shape2 = shape2  # its shape in the second capture (None: no dynamic axes)
        self.users = 0

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor._data.shape)

    @property
    def dtype(self):
        return self.tensor._data.dtype

    @property
    def ndim(self) -> int:
        return self.tensor._data.ndim

    def dynamic(self, axis: int) -> bool:
        """Whether dim ``axis`` follows a dynamic axis."""
        return self.shape2 is not None and self.shape2[axis] != self.shape[axis]

    def __repr__(self):
        return f"%{self.name}"


class Node:
    """One op call: ``op(*args, **kwargs) -> outs`` with tensors replaced by ``Value``s."""

    __slots__ = ("op", "cls", "args", "kwargs", "outs")

    def __init__(self, op, cls, args, kwargs, outs):
        self.op, self.cls, self.args, self.kwargs, self.outs = op, cls, args, kwargs, outs

    @property
    def name(self) -> str:
        return self.op.__name__


class Graph:
    """What ``capture`` returns: inputs, nodes in run order, outputs, and every ``Value``."""

    def __init__(self):
        self.inputs = []
        self.nodes = []
        self.outputs = []
        self.out_tree = None


class _Recorder(TorchFunctionMode):
    """Records each op with its arguments and keeps every tensor alive (ids stay unique)."""

    def __init__(self):
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.calls.append((func, args, kwargs, out))
        return out


# functions without a Function (no gradient): offered to the modes while capturing
_OFFERED = ("eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
            "logical_xor", "argmax", "argmin", "isnan", "isinf", "bitwise_not")
_DUNDERS = {"__eq__": "eq", "__ne__": "ne", "__lt__": "lt", "__le__": "le", "__gt__": "gt",
            "__ge__": "ge", "__invert__": "bitwise_not", "__and__": "logical_and",
            "__or__": "logical_or"}


def _offer(fn, name):
    op = Op(fn, name)

    def offered(*args, **kwargs):
        return dispatch(op, args, kwargs, fn)
    offered.__wrapped__ = fn
    return offered


@contextlib.contextmanager
def _offered():
    """Offer the no-gradient ops above to the modes for the block, then put them back."""
    import ember
    saved = []
    for name in _OFFERED:
        for owner in (ember, _tensor.Tensor):
            fn = owner.__dict__.get(name)
            if fn is not None:
                saved.append((owner, name, fn))
                setattr(owner, name, _offer(fn, name))
    for dunder, name in _DUNDERS.items():
        fn = _tensor.Tensor.__dict__.get(dunder)
        if fn is not None:
            saved.append((_tensor.Tensor, dunder, fn))
            setattr(_tensor.Tensor, dunder, _offer(fn, name))
    try:
        yield
    finally:
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def _flatten(out, leaves):
    """Tensors of a (nested tuple/list of) output(s), and the structure to rebuild it."""
    if isinstance(out, _tensor.Tensor):
        leaves.append(out)
        return None
    if isinstance(out, (tuple, list)):
        return type(out), [_flatten(o, leaves) for o in out]
    raise TypeError(f"the model's output must be tensors or tuples/lists of tensors, got "
                    f"{type(out).__name__}")


def _run(model, args, kwargs):
    """Run ``model`` under the recorder: the calls, the flat outputs and their structure."""
    from ..autograd.grad_mode import no_grad
    rec = _Recorder()
    with no_grad(), _offered(), rec:
        out = model(*args, **kwargs)
    leaves = []
    tree = _flatten(out, leaves)
    return rec.calls, leaves, tree


def _diff(a, b):
    """``a`` with each int that differs in ``b`` (the second capture's) made a ``Sym``."""
    if isinstance(a, bool) or a is None:
        return a
    if isinstance(a, int) and isinstance(b, int):
        return a if a == b else Sym(a, b)
    if isinstance(a, slice) and isinstance(b, slice):
        return slice(_diff(a.start, b.start), _diff(a.stop, b.stop), _diff(a.step, b.step))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        items = [_diff(x, y) for x, y in zip(a, b)]
        if hasattr(a, "_fields"):  # a namedtuple
            return type(a)(*items)
        return type(a)(items)
    return a


def capture(model, args: tuple, kwargs: dict, params: dict, args2=None) -> Graph:
    """Record ``model(*args, **kwargs)``; with ``args2`` (dynamic sizes) also mark ``Sym``s.

    ``params``: ``id(tensor) -> name`` of the parameters and buffers (the initializers).
    """
    calls, leaves, tree = _run(model, args, kwargs)
    calls2 = leaves2 = None
    if args2 is not None:
        calls2, leaves2, _ = _run(model, args2, kwargs)
        if len(calls2) != len(calls) or any(c[0].__name__ != d[0].__name__
                                            for c, d in zip(calls, calls2)):
            raise RuntimeError(
                "onnx.export: the model runs different ops for another size of its "
                "dynamic_axes (data-dependent control flow on a shape), which one graph "
                "cannot express")
    g = Graph()
    g.out_tree = tree
    values = {}   # id(tensor) -> Value
    counter = [0]
    names = set()

    def fresh(base):
        counter[0] += 1
        name = f"{base}_{counter[0]}"
        names.add(name)
        return name

    for i, t in enumerate(args):
        if not isinstance(t, _tensor.Tensor):
            raise TypeError(f"onnx.export: args must be tensors, got {type(t).__name__} "
                            f"for input {i}")
        v = Value(f"input_{i}", "input", t, None if args2 is None else args2[i]._data.shape)
        values[id(t)] = v
        g.inputs.append(v)

    def value_of(t, t2):
        v = values.get(id(t))
        if v is None:
            if id(t) in params:
                v = Value(params[id(t)], "param", t)
            else:
                v = Value(fresh("const"), "const", t,
                          None if t2 is None else tuple(t2._data.shape))
                v.kind = "const"
                v.shape2 = None if t2 is None else tuple(t2._data.shape)
                _dyn_const(v, t2)
            values[id(t)] = v
        v.users += 1
        return v

    def convert(a, a2):
        if isinstance(a, _tensor.Tensor):
            return value_of(a, a2 if isinstance(a2, _tensor.Tensor) else None)
        if isinstance(a, (tuple, list)) and not hasattr(a, "_fields"):
            a2s = a2 if isinstance(a2, (tuple, list)) and len(a2) == len(a) else [None] * len(a)
            return type(a)(convert(x, y) for x, y in zip(a, a2s))
        return a if a2 is None else _diff(a, a2)

    for k, (func, cargs, ckw, out) in enumerate(calls):
        c2 = calls2[k] if calls2 is not None else None
        nargs = convert(list(cargs), list(c2[1]) if c2 is not None else None)
        nkw = {key: convert(val, c2[2].get(key) if c2 is not None else None)
               for key, val in ckw.items()}
        cls = getattr(getattr(func, "_fn", None), "__self__", None)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        outs2 = (c2[3] if isinstance(c2[3], (tuple, list)) else (c2[3],)) if c2 else None
        vouts = []
        for j, o in enumerate(outs):
            if isinstance(o, _tensor.Tensor):
                shape2 = None if outs2 is None else tuple(outs2[j]._data.shape)
                v = Value(fresh(func.__name__), "node", o, shape2)
                values[id(o)] = v  # an in-place op's output takes over its input's id
                vouts.append(v)
            else:
                vouts.append(o)
        g.nodes.append(Node(func, cls, nargs, nkw, vouts))
    for j, t in enumerate(leaves):
        t2 = leaves2[j] if leaves2 is not None else None
        g.outputs.append(value_of(t, t2))
    return g


def _dyn_const(v, t2) -> None:
    """A constant made inside forward whose shape follows a dynamic axis: arange or a fill."""
    v.shape2 = None if t2 is None else tuple(t2._data.shape)
    if v.shape2 is None or v.shape2 == v.shape:
        v.shape2 = None
        return
    import numpy as np
    a = v.tensor._data
    if a.ndim == 1 and a.size and np.array_equal(a, np.arange(a.size)):
        v.kind = "arange"
    elif a.size and np.all(a == a.reshape(-1)[0]):
        v.kind = "fill"
    else:
        raise RuntimeError(
            f"onnx.export: a tensor made inside forward (shape {tuple(a.shape)}) changes "
            f"size with the dynamic axes and is neither an arange nor a constant fill; "
            f"compute it from the inputs with ops instead")
