"""``autograd.graph``: graph nodes and edges, and hooks on what the graph saves.

``saved_tensors_hooks(pack, unpack)``: while active, every tensor an op saves for backward
goes through ``pack`` and comes back through ``unpack`` when backward reads it
(function.py's ``_pack``), as PyTorch's; ``save_on_cpu`` is one such pair.
"""
from __future__ import annotations

from typing import NamedTuple

from .._state import state
from .._hooks import RemovableHandle
from .._tensor import Tensor, _version_counter
from .function import Node, AccumulateGrad, accumulate_node

__all__ = ["Node", "AccumulateGrad", "GradientEdge", "get_gradient_edge", "increment_version",
           "saved_tensors_hooks", "save_on_cpu", "disable_saved_tensors_hooks",
           "RemovableHandle"]


class GradientEdge(NamedTuple):
    """Where a tensor's gradient enters the graph: a node and which of its outputs."""

    node: Node
    output_nr: int


def get_gradient_edge(tensor: Tensor) -> GradientEdge:
    """The edge of ``tensor``: its ``grad_fn`` output, or its leaf's ``AccumulateGrad``."""
    if not tensor.requires_grad:
        raise RuntimeError("It is not possible to get the gradient edge for a Tensor that "
                           "does not require gradients")
    if tensor.grad_fn is None:
        return GradientEdge(accumulate_node(tensor), 0)
    return GradientEdge(tensor.grad_fn, tensor.output_nr)


def increment_version(tensor) -> None:
    """Mark ``tensor`` as modified in place (for changes autograd cannot see)."""
    for t in (tensor,) if isinstance(tensor, Tensor) else tensor:
        _version_counter(t)[0] += 1


class saved_tensors_hooks:
    """``pack_hook(tensor) -> packed`` when a tensor is saved for backward,
    ``unpack_hook(packed) -> tensor`` when backward reads it (PyTorch's)."""

    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook = pack_hook
        self.unpack_hook = unpack_hook

    def __enter__(self):
        if state.saved_hooks_disabled is not None:
            raise RuntimeError(state.saved_hooks_disabled)
        state.saved_hooks = state.saved_hooks + ((self.pack_hook, self.unpack_hook),)
        return self

    def __exit__(self, *exc):
        state.saved_hooks = state.saved_hooks[:-1]


class save_on_cpu(saved_tensors_hooks):
    """Keep saved tensors in host memory until backward needs them (a copy on cpu)."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda"):
        def pack(t):
            return (t.device, t.detach().clone())

        def unpack(packed):
            dev, t = packed
            return t.to(dev)
        super().__init__(pack, unpack)


class disable_saved_tensors_hooks:
    """Entering ``saved_tensors_hooks`` inside this raises ``RuntimeError(error_message)``."""

    def __init__(self, error_message: str):
        self.error_message = error_message

    def __enter__(self):
        self.prev = state.saved_hooks_disabled
        state.saved_hooks_disabled = self.error_message
        return self

    def __exit__(self, *exc):
        state.saved_hooks_disabled = self.prev
