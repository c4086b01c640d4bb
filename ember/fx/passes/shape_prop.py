"""``ShapeProp``: run a ``GraphModule`` once and record each node's tensor metadata
(PyTorch's ``torch.fx.passes.shape_prop``)."""
from __future__ import annotations

from typing import NamedTuple

from ..._tensor import Tensor
from ..interpreter import Interpreter
from ..node import map_aggregate

__all__ = ["ShapeProp", "TensorMetadata"]


class TensorMetadata(NamedTuple):
    shape: object
    dtype: object
    requires_grad: bool
    stride: tuple
    memory_format: object
    is_quantized: bool
    qparams: dict


def _extract(t: Tensor) -> TensorMetadata:
    from ... import contiguous_format
    fmt = contiguous_format if t.is_contiguous() else None
    return TensorMetadata(t.shape, t.dtype, t.requires_grad, t.stride(), fmt, False, {})


class ShapeProp(Interpreter):
    """``ShapeProp(gm).propagate(*args)`` sets ``node.meta['tensor_meta']`` and ``['type']``."""

    def run_node(self, n):
        result = super().run_node(n)
        found = []

        def meta(x):
            if isinstance(x, Tensor):
                found.append(True)
                return _extract(x)
            return x
        m = map_aggregate(result, meta)
        if found:
            n.meta["tensor_meta"] = m
        n.meta["type"] = type(result)
        return result

    def propagate(self, *args):
        return super().run(*args)
