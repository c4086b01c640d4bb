"""Graph passes run on a captured graph before code generation: common-subexpression and
dead-code elimination over pure ops only.

An op is pure here when its node calls a raw built-in Function of a family whose ops neither
draw random numbers nor write into their inputs (elementwise, reductions, movement, linear
algebra, activations, convolutions, pooling, padding, losses, casts), its name is not a random
or in-place one, and it records with the same grad mode.  Never merged or removed: dropout
masks, random functions, ``copy_`` writes, batch norm (it updates running statistics inside),
embeddings (``max_norm`` renormalises the table), anything offered to the modes without a
Function.  A graph holding any in-place write (``copy_``) is left as it is: a write through
one alias would reach the value a merged twin shares.
"""
from __future__ import annotations

import operator

from ..autograd.modes import Op
from ..fx.experimental.proxy_tensor import COPY_

__all__ = ["pure", "cse", "dce", "optimize_graph"]

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


def dce(graph) -> int:
    """Erase pure nodes whose value nothing uses; returns how many were erased."""
    erased = 0
    for n in reversed(list(graph.nodes)):
        if not n.users and pure(n):
            graph.erase_node(n)
            erased += 1
    return erased


def optimize_graph(gm) -> dict:
    """CSE then DCE on ``gm``'s graph, recompiling ``gm``; returns the counts."""
    merged = cse(gm.graph)
    erased = dce(gm.graph)
    if merged or erased:
        gm.recompile()
    return {"cse": merged, "dce": erased}
