"""Graph passes run on a captured graph before code generation: constant folding, common-
subexpression and dead-code elimination over pure ops only.

An op is pure here when its node calls a raw built-in Function of a family whose ops neither
draw random numbers nor write into their inputs (elementwise, reductions, movement, linear
algebra, activations, convolutions, pooling, padding, losses, casts), its name is not a random
or in-place one, and it records with the same grad mode.  Never merged or removed: dropout
masks, random functions, ``copy_`` writes, batch norm (it updates running statistics inside),
embeddings (``max_norm`` renormalises the table), anything offered to the modes without a
Function.  A graph holding any in-place write (``copy_``) is left as it is: a write through
one alias would reach the value a merged twin shares.  First, ``functionalize`` turns writes
into unaliased intermediates (``relu_`` on a batch norm's result) into dataflow (NOTE
[ Functional in-place writes ]), so most graphs with in-place activations hold none.

NOTE [ Constant folding ]
A node is constant when it is a pure op (above) or a factory (``arange``, ``ones``, ``zeros``,
``full``, ``eye``, ``linspace``, ``logspace``, ``scalar_tensor``, ``*_like`` of a constant; a
literal, ``tensor``/``as_tensor`` of Python numbers, ``_literal``) whose tensor arguments are
all constant, or a ``get_attr`` tensor that does not require grad
(a buffer, a frozen parameter, a captured literal) that no impure node of the graph reads (so
not batch norm's running statistics, which it updates).  ``fold_constants`` replaces each
constant node that a non-constant node reads by a ``get_attr`` of the value the capture
computed for it (``meta["val"]``, the same tensor object, so the backward lowering still
finds it by identity), and erases what only it read: a causal mask ``ones(T, T).triu(1).
bool()`` or positions ``arange(T) * 0.5`` run once, at compile time; so does ``torch.tensor(
[1., 2.])`` (its numbers are in the graph; where they came from a Python variable, the
capture's guards pin that variable's value, NOTE [ Python values ] in ``_dynamo/eval_frame.py``).
A ``tensor(array)`` is no literal: it reads the array at each call, as eager does.  Never
folded: anything reading a placeholder or a parameter that requires grad (an optimizer changes
it in place), random ops, a node whose value is returned (the caller may write into it), graphs
with an in-place write, and dynamic graphs' replays (``gm.meta_no_fold``: their generic region
needs the same constants at every size).  A folded value computed from buffers keeps what
it was computed from: ``Folds.check()`` (run by the region at each call) compares each
source's array and version counter with the folding's and, when one changed (a buffer
written in place between calls, ``model.buf.add_(1)``), recomputes the folded values from
the buffers as they are now, so a call never reads a stale one.  A write that bypasses the
version counter (into ``buf.numpy()``) is not seen, as in PyTorch's frozen graphs.
"""
from __future__ import annotations

import operator

from ..autograd.modes import Op
from ..autograd.function import _version_counter
from ..autograd.grad_mode import no_grad
from ..fx.experimental.proxy_tensor import COPY_
from ..fx.node import map_arg
from .._backend import device as _device
from .._dtype import dtype as _dtype
from .._tensor import Tensor, _make

__all__ = ["pure", "cse", "dce", "fold_constants", "Folds", "optimize_graph"]

_PURE_FAMILIES = frozenset("ember.ops." + f for f in (
    "elementwise", "reduce", "movement", "linalg", "activation", "conv", "pooling", "padding",
    "loss", "convert"))
_MOVEMENT = "ember.ops.movement"  # ops that may return a view of their input
_IMPURE_NAMES = ("rand", "bernoulli", "multinomial", "normal", "dropout", "rrelu", "uniform",
                 "exponential", "geometric", "cauchy", "poisson", "fused_rnn")


def pure(node) -> bool:
    """Whether ``node`` computes a value from its arguments alone, with no side effect."""
    if node.op != "call_function":
        return False
    t = node.target
    if t is operator.getitem:
        return True
    if not isinstance(t, Op):
        return False
    cls = getattr(t._fn, "__self__", None)
    if not isinstance(cls, type) or not getattr(cls, "raw", False) or \
            cls.__module__ not in _PURE_FAMILIES:
        return False
    name = t.__name__
    return not (name.endswith("_") or any(s in name for s in _IMPURE_NAMES))


def _key(a):
    """A hashable spelling of argument ``a`` that tells 1, 1.0, True and -0.0 apart."""
    if hasattr(a, "op") and hasattr(a, "users"):
        return ("node", id(a))
    if isinstance(a, (tuple, list)):
        return (type(a), tuple(_key(e) for e in a))
    if isinstance(a, dict):
        return (dict, tuple((k, _key(v)) for k, v in a.items()))
    if isinstance(a, (int, float, bool, complex, str, type(None))):
        return (type(a), repr(a))
    return ("obj", id(a))  # a dtype, a layout: the same object only


def _returned(n) -> bool:
    """Whether ``n``'s array reaches the output, itself or through views of it."""
    todo, seen = [n], set()
    while todo:
        m = todo.pop()
        for u in m.users:
            if u.op == "output":
                return True
            if id(u) not in seen and (u.target is operator.getitem or pure(u) and
                                      u.target._fn.__self__.__module__ == _MOVEMENT):
                seen.add(id(u))
                todo.append(u)
    return False


def cse(graph) -> int:
    """Replace each pure node that repeats an earlier one (same op, same arguments) by the
    earlier node; returns how many were replaced."""
    nodes = list(graph.nodes)
    if any(n.op == "call_function" and n.target is COPY_ for n in nodes):
        return 0
    seen = {}
    replaced = 0
    for n in nodes:
        if not pure(n):
            continue
        if _returned(n):
            continue  # two returned tensors (or views of them) must stay two arrays, as eager's
        k = (id(n.target), _key(n.args), _key(n.kwargs), n.meta.get("grad_mode"))
        first = seen.get(k)
        if first is None or _returned(first):
            seen[k] = n
            continue
        # the merged node's value is the survivor's too: a saved tensor of a later op that
        # was this node's value is found by the backward lowering (NOTE [ Compiled regions ])
        first.meta.setdefault("aliases", []).append(n.meta.get("val"))
        first.meta["aliases"] += n.meta.get("aliases", [])
        n.replace_all_uses_with(first)
        graph.erase_node(n)
        replaced += 1
    return replaced


def _may_alias(n) -> bool:
    """Whether node ``n``'s result may share memory with an argument (a view, a getitem,
    a movement op, anything that is not a raw Function)."""
    if n.op != "call_function" or n.target is operator.getitem or not isinstance(n.target, Op):
        return True
    cls = getattr(n.target._fn, "__self__", None)
    return not isinstance(cls, type) or not getattr(cls, "raw", False) or \
        getattr(cls, "view", False) or cls.__module__ == _MOVEMENT


def functionalize(graph) -> int:
    """Turn in-place writes into unaliased intermediates into dataflow; returns how many.

    NOTE [ Functional in-place writes ]
    ``x.relu_()`` on an op's fresh result records ``clone(x)`` (what eager's in-place op
    read, NOTE [ In-place ops ]), ``relu(clone)`` and ``copy_(x, relu)``, and a graph holding
    ``copy_`` runs op by op. Where ``x`` is a non-view result no view of it was taken from,
    its array no input or constant shares, and the op's result feeds only the write, the
    write is renaming: later uses of the ``copy_`` read the op's result, which reads ``x``
    directly. The capture's values move along (``meta["val"]``/``aliases``, by which the
    backward lowering finds saved tensors): ``x``'s node takes the snapshot eager's op saved,
    the op's node also names the written tensor. A write recorded without autograd (no
    snapshot: the op read ``x`` itself, whose values before the write are gone) goes only
    where nothing else read ``x``; its node is marked ``written`` and never folded.
    """
    import numpy as np
    from ..ops.convert import Clone
    clone = Clone.__dict__.get("_op")
    nodes = list(graph.nodes)
    outside = [n.meta["val"]._data for n in nodes if n.op in ("placeholder", "get_attr")
               and isinstance(n.meta.get("val"), Tensor)]
    done = 0
    for c in nodes:
        if c.op != "call_function" or c.target is not COPY_ or len(c.args) != 2:
            continue
        t_node, r = c.args
        if _may_alias(t_node) or _may_alias(r):
            continue
        k = r.args[0] if r.args else None
        snapshot = clone is not None and getattr(k, "target", None) is clone and \
            k.args[0] is t_node and k.meta.get("snapshot") and set(k.users) == {r}
        # without autograd eager's op read ``x`` itself: only where nothing else read it
        if not snapshot and (k is not t_node or not set(t_node.users) <= {r, c}):
            continue
        t = c.meta.get("val")
        if not isinstance(t, Tensor) or t._base is not None or \
                any(u is not k and u is not c and _may_alias(u) for u in t_node.users) or \
                any(np.may_share_memory(t._data, a) for a in outside):
            continue
        c.replace_all_uses_with(r)
        graph.erase_node(c)
        aliases = t_node.meta.setdefault("aliases", [])
        if any(a is t for a in aliases):
            aliases[:] = [a for a in aliases if a is not t]
        if snapshot:
            r.args = (t_node,) + tuple(r.args[1:])
            graph.erase_node(k)
            if t_node.meta.get("val") is t:
                t_node.meta["val"] = k.meta["val"]
            else:
                aliases.append(k.meta["val"])
        else:
            # its values before the write are gone: a stand-in of its shape, never folded
            if t_node.meta.get("val") is t:
                t_node.meta["val"] = _make(t._data.copy())
            t_node.meta["written"] = True
        r.meta.setdefault("aliases", []).append(t)
        done += 1
    return done


def dce(graph) -> int:
    """Erase pure nodes whose value nothing uses; returns how many were erased."""
    erased = 0
    for n in reversed(list(graph.nodes)):
        if not n.users and pure(n):
            graph.erase_node(n)
            erased += 1
    return erased


_FACTORIES = frozenset(("arange", "ones", "zeros", "full", "eye", "linspace", "logspace",
                        "scalar_tensor", "ones_like", "zeros_like", "full_like"))


_LITERALS = frozenset(("tensor", "as_tensor"))


def _plain(a) -> bool:
    """Python numbers (in lists and tuples) and immutable options, not an array or other object
    whose values may change between calls."""
    if isinstance(a, (list, tuple)):
        return all(_plain(e) for e in a)
    if isinstance(a, dict):
        return all(_plain(v) for v in a.values())
    return a is None or isinstance(a, (bool, int, float, complex, str, _dtype, _device))


def _literal(n) -> bool:
    """A ``tensor``/``as_tensor`` node of Python data: a constant (NOTE [ Constant folding ])."""
    return n.target.__name__ in _LITERALS and _plain(n.args) and _plain(n.kwargs)


def _writes(n) -> bool:
    return n.op == "call_function" and (n.target is COPY_ or
                                        getattr(n.target, "__name__", "").endswith("_"))


def _factory(n) -> bool:
    t = n.target
    return n.op == "call_function" and isinstance(t, Op) and \
        (t.__name__ in _FACTORIES or _literal(n)) and \
        not isinstance(getattr(t._fn, "__self__", None), type)


class Folds:
    """The folded values of one graph and what they were computed from (NOTE [ Constant
    folding ]): ``check()`` recomputes them when a source buffer changed since."""

    __slots__ = ("steps", "outs", "sources")

    def __init__(self, steps, outs, sources):
        self.steps = steps      # (target, args, kwargs) over step indices (``_Ref``)
        self.outs = outs        # (step index, folded tensor)
        self.sources = sources  # (tensor, its array, its version) the values were made from

    def check(self) -> None:
        for t, arr, ver in self.sources:
            if t._data is not arr or _version_counter(t)[0] != ver:
                self.refresh()
                return

    def refresh(self) -> None:
        """Recompute every folded value from the sources as they are now."""
        vals = []
        with no_grad():
            for target, args, kwargs in self.steps:
                get = lambda r: vals[r.i]  # noqa: E731
                if target is None:  # a source tensor
                    vals.append(args)
                    continue
                vals.append(target(*_deref(args, get), **_deref(kwargs, get)))
        for i, t in self.outs:
            t._data = vals[i]._data  # the region reads ``._data`` at each call
        self.sources = tuple((t, t._data, _version_counter(t)[0]) for t, _, _ in self.sources)


class _Ref:
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def _deref(a, get):
    if isinstance(a, _Ref):
        return get(a)
    if isinstance(a, (tuple, list)):
        return type(a)(_deref(e, get) for e in a)
    if isinstance(a, dict):
        return {k: _deref(v, get) for k, v in a.items()}
    return a


def fold_constants(gm):
    """Evaluate the graph's constant subgraphs at compile time (NOTE [ Constant folding ]);
    returns ``(nodes folded away, GraphModule to compile, Folds or None)``; ``gm`` itself is
    left as captured (a dynamic graph is built from it, a ``create_graph`` backward replays
    it), the folded graph is a copy."""
    from ..fx.graph import Graph
    from ..fx.graph_module import GraphModule
    nodes = list(gm.graph.nodes)
    if any(_writes(n) for n in nodes):
        return 0, gm, None
    impure_reads = set()
    for n in nodes:
        if n.op == "call_function" and not pure(n) and not _factory(n):
            impure_reads.update(id(a) for a in n.all_input_nodes)
    const = {}  # id(node) -> node, the constant ones in program order
    for n in nodes:
        if n.op == "get_attr":
            v = getattr(gm, n.target, None)
            if isinstance(v, Tensor) and not v.requires_grad and id(n) not in impure_reads:
                const[id(n)] = n
        elif (pure(n) or _factory(n)) and not n.meta.get("written") and \
                all(id(a) in const for a in n.all_input_nodes) and \
                isinstance(n.meta.get("val"), Tensor) and not n.meta["val"].requires_grad:
            const[id(n)] = n
    frontier = [n for n in const.values() if n.op == "call_function" and not _returned(n) and
                any(id(u) not in const for u in n.users)]
    if not frontier:
        return 0, gm, None
    # the subgraph the frontier needs, as steps to recompute it when a source changes
    index, steps, sources = {}, [], []
    for n in const.values():
        index[id(n)] = len(steps)
        if n.op == "get_attr":
            v = getattr(gm, n.target)
            steps.append((None, v, None))
            sources.append((v, v._data, _version_counter(v)[0]))
        else:
            ref = lambda a: _Ref(index[id(a)])  # noqa: E731
            steps.append((n.target, map_arg(n.args, ref), map_arg(n.kwargs, ref)))
    graph = Graph()
    copy = {}
    graph.output(graph.graph_copy(gm.graph, copy))
    attrs = {n.target: getattr(gm, n.target) for n in nodes if n.op == "get_attr"}
    outs = []
    for k, n in enumerate(frontier):
        val = n.meta["val"]
        name = f"_folded_constant{k}"
        attrs[name] = val
        c = copy[n]
        with graph.inserting_before(c):
            g = graph.get_attr(name)
        g.meta.update(c.meta)
        c.replace_all_uses_with(g)
        outs.append((index[id(n)], val))
    folded = 0
    for n in reversed(nodes):  # what only the folded values read goes
        c = copy[n] if n.op != "output" else None
        if id(n) in const and not c.users:
            folded += n.op == "call_function"
            graph.erase_node(c)
    fgm = GraphModule(attrs, graph)
    folds = Folds(steps, outs, tuple(sources)) if sources else None
    return folded, fgm, folds


def optimize_graph(gm) -> dict:
    """CSE then DCE on ``gm``'s graph, recompiling ``gm``, then constant folding into a copy
    (``gm.meta_folded``, with ``gm.meta_folds`` the ``Folds`` the compiled code must check at
    each call); returns the counts."""
    from .rnn_fold import fold_embedding_lstm  # NOTE [ Embedding into LSTM ]
    fused = fold_embedding_lstm(gm.graph)
    gm.meta_functionalized = functionalize(gm.graph)  # NOTE [ Functional in-place writes ]
    from .conv_fold import fold_conv_bn, keep_conv_work  # NOTE [ Batch norm into convolution ]
    fused += fold_conv_bn(gm.graph) + keep_conv_work(gm.graph)
    merged = cse(gm.graph)
    erased = dce(gm.graph)
    if merged or erased or fused or gm.meta_functionalized:
        gm.recompile()
    folded, gm.meta_folded, gm.meta_folds = (0, gm, None) if \
        getattr(gm, "meta_no_fold", False) else fold_constants(gm)
    return {"fold": folded, "cse": merged, "dce": erased}
