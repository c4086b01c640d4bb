"""``replace_pattern``: find every copy of a pattern's graph in a ``GraphModule`` and put the
replacement's graph in its place (PyTorch's ``torch.fx.subgraph_rewriter``).

Matching starts from the pattern's output and walks back through arguments: a pattern
placeholder matches any value; every other pattern node must match a node with the same
``op`` and ``target`` whose arguments match in turn, and constants must be equal.  Nodes
inside a match (all but its output) may have no users outside it.
"""
from __future__ import annotations

from typing import NamedTuple

from .graph_module import GraphModule
from .node import Node
from ._symbolic_trace import symbolic_trace

__all__ = ["replace_pattern", "Match"]


class Match(NamedTuple):
    anchor: Node      # the matched node that corresponds to the pattern's output
    nodes_map: dict   # pattern node -> matched node


def _match(pn: Node, gn, m: dict) -> bool:
    if isinstance(pn, Node):
        if pn.op == "placeholder":
            if pn in m:
                return m[pn] is gn
            m[pn] = gn
            return True
        if not isinstance(gn, Node) or pn.op != gn.op or pn.target != gn.target:
            return False
        if pn in m:
            return m[pn] is gn
        if len(pn.args) != len(gn.args) or set(pn.kwargs) != set(gn.kwargs):
            return False
        m[pn] = gn
        return all(_match(a, b, m) for a, b in zip(pn.args, gn.args)) and \
            all(_match(pn.kwargs[k], gn.kwargs[k], m) for k in pn.kwargs)
    if isinstance(pn, (tuple, list)):
        return isinstance(gn, (tuple, list)) and len(pn) == len(gn) and \
            all(_match(a, b, m) for a, b in zip(pn, gn))
    return not isinstance(gn, Node) and type(pn) is type(gn) and pn == gn


def replace_pattern(gm: GraphModule, pattern, replacement) -> list:
    """Replace each non-overlapping match of ``pattern`` in ``gm`` by ``replacement``."""
    pg = (pattern if isinstance(pattern, GraphModule) else symbolic_trace(pattern)).graph
    rg = (replacement if isinstance(replacement, GraphModule) else
          symbolic_trace(replacement)).graph
    p_out = next(n for n in pg.nodes if n.op == "output").args[0]
    if not isinstance(p_out, Node):
        raise NotImplementedError("replace_pattern supports patterns with one output")
    p_ph = [n for n in pg.nodes if n.op == "placeholder"]
    r_ph = [n for n in rg.nodes if n.op == "placeholder"]
    matches, used = [], set()
    for gn in list(gm.graph.nodes):
        m = {}
        if gn in used or not _match(p_out, gn, m):
            continue
        inner = [v for k, v in m.items() if k.op != "placeholder"]
        if any(v in used for v in inner):
            continue
        if any(u not in inner for v in inner if v is not gn for u in v.users):
            continue  # an inner value is read outside the match
        matches.append(Match(gn, m))
        used.update(inner)
    for match in matches:
        g = gm.graph
        val_map = {r: match.nodes_map[p] for p, r in zip(p_ph, r_ph)}
        with g.inserting_before(match.anchor):
            out = g.graph_copy(rg, val_map)
        match.anchor.replace_all_uses_with(out)
        for v in sorted((v for k, v in match.nodes_map.items() if k.op != "placeholder"),
                        key=lambda n: -_position(g, n)):
            if not v.users:
                g.erase_node(v)
    gm.recompile()
    return matches


def _position(g, node) -> int:
    for i, n in enumerate(g.nodes):
        if n is node:
            return i
    return -1
