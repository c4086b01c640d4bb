"""``autograd.graph``: the node type a ``grad_fn`` is, for isinstance checks and hooks."""
from .function import Node, AccumulateGrad

__all__ = ["Node", "AccumulateGrad"]
