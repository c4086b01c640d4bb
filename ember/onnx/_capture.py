"""Capture a model's ops as a flat list of nodes (the exporter's input; NOTE [ ONNX export ]).

The shared op recorder (``fx.experimental.proxy_tensor.record``, NOTE [ Op recording ]) sees
each op's ``Function.apply`` (an ``Op`` named as ATen's, NOTE [ Modes ]); with ``offer=True``
the functions without a ``Function`` (comparisons, argmax, tensors made in forward) are
nodes too.  Its fx graph is read here into ``Value``s and ``Node``s
(tuple results split, in-place writes resolved to the value written).
Two runs with different sizes of the dynamic axes tell which shapes and which integer
arguments follow those axes: an int that differs between the runs becomes a ``Sym``
(NOTE [ Sizes from two captures ] in ``ember/fx/experimental/symbolic_shapes.py``, shared
with ``jit.trace`` and ``export``).
"""
from __future__ import annotations

import operator

from .. import _tensor
from ..fx.experimental.symbolic_shapes import Sym, diff
from ..fx.node import Node as FxNode

__all__ = ["Value", "Node", "Graph", "Sym", "capture"]


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


def _run(model, args, kwargs, params):
    """Record ``model(*args, **kwargs)`` with the shared op recorder (NOTE [ Op recording ])."""
    from ..autograd.grad_mode import no_grad
    from ..fx.experimental.proxy_tensor import record
    from ..jit._trace import _tracing
    # offer=True: comparisons, argmax, creation functions... are nodes too, never baked in;
    # as PyTorch's exporter traces, a tensor read into Python (`if x.sum() > 0:`, `.item()`)
    # warns with jit's TracerWarning: that branch is what the file will hold
    with no_grad(), _tracing():
        return record(model, args, kwargs, forward_only=True, known=list(params.values()),
                      offer=True)


def capture(model, args: tuple, kwargs: dict, params: dict, args2=None) -> Graph:
    """Record ``model(*args, **kwargs)``; with ``args2`` (dynamic sizes) also mark ``Sym``s.

    ``params``: ``id(tensor) -> name`` of the parameters and buffers (the initializers).
    """
    rec = _run(model, args, kwargs, tensors_by_id(model))
    _check_fresh_constants(model, args, kwargs, rec)
    rec2 = None if args2 is None else _run(model, args2, kwargs, tensors_by_id(model))
    fx1 = list(rec.graph.nodes)
    fx2 = None if rec2 is None else list(rec2.graph.nodes)
    if fx2 is not None and (len(fx2) != len(fx1) or any(
            a.op != c.op or getattr(a.target, "__name__", a.target) !=
            getattr(c.target, "__name__", c.target) for a, c in zip(fx1, fx2))):
        raise RuntimeError(
            "onnx.export: the model runs different ops for another size of its dynamic_axes "
            "(data-dependent control flow on a shape), which one graph cannot express")
    g = Graph()
    env = {}      # fx node -> Value, or a Python constant (get_attr of a non-tensor)
    counter = [0]

    def fresh(base):
        counter[0] += 1
        return f"{base}_{counter[0]}"

    def val(t, t2, name, kind="const"):
        shape2 = None if t2 is None else tuple(t2._data.shape)
        if id(t) in params:
            return Value(params[id(t)], "param", t)
        v = Value(name, kind, t, shape2)
        if kind == "const":
            _dyn_const(v, t2)
        return v

    def arg(a, a2):
        if isinstance(a, FxNode):
            v = env[a]
            if isinstance(v, Value):
                v.users += 1
                return v
            return v if a2 is None or a2 not in env2 else diff(v, env2[a2])
        if isinstance(a, (tuple, list)):
            a2s = a2 if isinstance(a2, (tuple, list)) and len(a2) == len(a) else [None] * len(a)
            return type(a)(arg(x, y) for x, y in zip(a, a2s))
        if isinstance(a, dict):
            return {k: arg(x, a2.get(k) if isinstance(a2, dict) else None)
                    for k, x in a.items()}
        return a if a2 is None else diff(a, a2)

    env2 = {}
    n_in = 0
    for k, node in enumerate(fx1):
        n2 = fx2[k] if fx2 is not None else None
        if node.op == "placeholder":
            t = node.meta["val"]
            if not isinstance(t, _tensor.Tensor):
                raise TypeError(f"onnx.export: args must be tensors, got {type(t).__name__} "
                                f"for input {n_in}")
            v = Value(f"input_{n_in}", "input", t,
                      None if n2 is None else tuple(n2.meta["val"]._data.shape))
            n_in += 1
            g.inputs.append(v)
            env[node] = v
        elif node.op == "get_attr":
            c = rec.constants[node.target]
            c2 = None if n2 is None else rec2.constants[n2.target]
            if isinstance(c, _tensor.Tensor):
                env[node] = val(c, c2, fresh("const"))
            else:
                env[node] = c
                if n2 is not None:
                    env2[n2] = c2
        elif node.op == "call_function":
            if node.target is operator.getitem:
                src, i = node.args
                env[node] = env[src][i] if isinstance(env[src], list) else env[src]
                continue
            if getattr(node.target, "__name__", "") == "copy_":  # an in-place write
                dst, src = node.args
                env[node] = env[src]
                continue
            a2 = None if n2 is None else list(n2.args)
            nargs = arg(list(node.args), a2)
            nkw = arg(dict(node.kwargs), None if n2 is None else dict(n2.kwargs))
            out = node.meta["val"]
            out2 = None if n2 is None else n2.meta["val"]
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            outs2 = (list(out2) if isinstance(out2, (tuple, list)) else [out2]) \
                if n2 is not None else [None] * len(outs)
            vouts = [Value(fresh(node.target.__name__), "node", o,
                           None if o2 is None else tuple(o2._data.shape))
                     if isinstance(o, _tensor.Tensor) else o for o, o2 in zip(outs, outs2)]
            cls = getattr(getattr(node.target, "_fn", None), "__self__", None)
            g.nodes.append(Node(node.target, cls, nargs, nkw, vouts))
            env[node] = vouts if isinstance(out, (tuple, list)) else vouts[0]
        elif node.op == "output":
            leaves = []
            _leaves(node.args[0], leaves)
            leaves2 = None
            if n2 is not None:
                leaves2 = []
                _leaves(n2.args[0], leaves2)
            for j, a in enumerate(leaves):
                v = arg(a, None)
                if not isinstance(v, Value):
                    raise TypeError(f"the model's outputs must be tensors, got "
                                    f"{type(v).__name__}")
                g.outputs.append(v)
    return g


def _perturbed(t):
    """Another input of ``t``'s shape and dtype (other values, same value set for indices)."""
    import numpy as np
    a = t._data
    if a.dtype.kind == "f":
        b = a * a.dtype.type(0.75) + a.dtype.type(0.125)
    elif a.ndim and a.size > 1:  # indices and masks: the same values, moved
        b = np.roll(a, 1, axis=-1) if a.shape[-1] > 1 else np.roll(a, 1, axis=0)
    else:
        return t
    return _tensor._make(np.ascontiguousarray(b))


def _check_fresh_constants(model, args, kwargs, rec) -> None:
    """Refuse a tensor made outside ops whose values follow the inputs' (it would be baked).

    The recorder lists tensors that reach an op without being an input, a parameter or an
    op's result (``fresh_constants``); the model runs again on other input values, and such
    a tensor that changed was computed from the inputs by something no mode sees.
    """
    fresh = [n for n in getattr(rec, "fresh_constants", ())
             if isinstance(rec.constants.get(n), _tensor.Tensor)]
    if not fresh:
        return
    import numpy as np
    probe = _run(model, tuple(_perturbed(a) for a in args), kwargs, tensors_by_id(model))
    for name in fresh:
        other = probe.constants.get(name)
        a = rec.constants[name]._data
        if not isinstance(other, _tensor.Tensor) or other._data.shape != a.shape:
            continue
        if not np.array_equal(a, other._data, equal_nan=a.dtype.kind in "fc"):
            raise RuntimeError(
                f"onnx.export: a tensor of shape {tuple(a.shape)} and dtype {a.dtype} is "
                f"computed from the inputs outside any recorded op (a NumPy round trip, "
                f".item()/.tolist(), or a function without a Function such as a bitwise "
                f"operator), so the graph would hold this call's values as a constant; "
                f"compute it with ember ops")


def tensors_by_id(model) -> dict:
    """The parameters and buffers of ``model`` (``id -> tensor``)."""
    out = {}
    if hasattr(model, "parameters"):
        for t in list(model.parameters()) + list(model.buffers()):
            out[id(t)] = t
    return out


def _leaves(a, out) -> None:
    if isinstance(a, (tuple, list)):
        for e in a:
            _leaves(e, out)
    elif isinstance(a, dict):
        for e in a.values():
            _leaves(e, out)
    else:
        out.append(a)


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
