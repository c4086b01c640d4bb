"""Nested containers flattened to a list of leaves and back (``torch.utils._pytree``).

Tuples, lists, dicts (keys kept in insertion order) and namedtuples are containers; anything
else, ``None`` included, is a leaf. ``ember.func`` uses it for ``in_dims``/``out_dims`` and for
arguments that are dicts of parameters.
"""
from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["TreeSpec", "LeafSpec", "tree_flatten", "tree_unflatten", "tree_map",
           "tree_leaves", "broadcast_prefix"]


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class TreeSpec(NamedTuple):
    """The shape of a container tree: node type, its context (dict keys) and children."""
    type: Any
    context: Any
    children: list

    @property
    def num_leaves(self) -> int:
        return sum(c.num_leaves for c in self.children)

    def is_leaf(self) -> bool:
        return False

    def __repr__(self) -> str:
        name = getattr(self.type, "__name__", str(self.type))
        kids = ", ".join(repr(c) for c in self.children)
        return f"TreeSpec({name}, {self.context!r}, [{kids}])"


class LeafSpec:
    """The spec of one leaf (printed ``*`` as PyTorch prints it)."""
    num_leaves = 1
    children: list = []

    def is_leaf(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return isinstance(other, LeafSpec)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "*"


def _children(tree):
    """``(type, context, children)`` of a container, or ``None`` for a leaf."""
    if _is_namedtuple(tree):
        return type(tree), None, list(tree)
    if isinstance(tree, (tuple, list)):
        return type(tree), None, list(tree)
    if isinstance(tree, dict):
        return type(tree), list(tree.keys()), list(tree.values())
    return None


def tree_flatten(tree) -> tuple[list, Any]:
    """``(leaves, spec)`` with the leaves in depth-first order."""
    node = _children(tree)
    if node is None:
        return [tree], LeafSpec()
    typ, ctx, kids = node
    leaves, specs = [], []
    for k in kids:
        sub, spec = tree_flatten(k)
        leaves.extend(sub)
        specs.append(spec)
    return leaves, TreeSpec(typ, ctx, specs)


def _build(typ, ctx, values):
    if isinstance(typ, type) and issubclass(typ, dict):
        return typ(zip(ctx, values))
    if isinstance(typ, type) and issubclass(typ, tuple) and hasattr(typ, "_fields"):
        return typ(*values)
    return typ(values)


def tree_unflatten(leaves, spec):
    """The inverse of ``tree_flatten``."""
    it = iter(leaves)

    def build(s):
        if s.is_leaf():
            return next(it)
        return _build(s.type, s.context, [build(c) for c in s.children])
    return build(spec)


def tree_leaves(tree) -> list:
    return tree_flatten(tree)[0]


def tree_map(fn, tree):
    """``tree`` with ``fn`` applied to every leaf."""
    leaves, spec = tree_flatten(tree)
    return tree_unflatten([fn(x) for x in leaves], spec)


def broadcast_prefix(prefix, spec):
    """Leaves of ``prefix`` repeated over the subtrees of ``spec`` they stand for, or ``None``
    if ``prefix`` is not a prefix of ``spec`` (how ``in_dims=(0, None)`` covers nested args)."""
    out: list = []

    def walk(p, s) -> bool:
        node = _children(p)
        if node is None:
            out.extend([p] * s.num_leaves)
            return True
        if s.is_leaf():
            return False
        typ, ctx, kids = node
        same_kind = (issubclass(s.type, dict) == isinstance(p, dict)
                     and (isinstance(p, dict) or len(kids) == len(s.children)))
        if not same_kind:
            return False
        if isinstance(p, dict):
            if set(ctx) != set(s.context):
                return False
            kids = [p[k] for k in s.context]
        if len(kids) != len(s.children):
            return False
        return all(walk(k, c) for k, c in zip(kids, s.children))
    return out if walk(prefix, spec) else None
