"""The op recorder ``jit.trace`` and ``export`` use: the shared ``OpRecorder`` plus one rule.

An in-place op on a tensor that requires grad runs on a snapshot (``src = t._data.copy()``,
with ``t``'s ``grad_fn`` and ``output_nr``; ``autograd/inplace.py``), so the recorder would
see an unknown tensor and bake it in as a constant: the trace of ``BatchNorm`` followed by
``ReLU(inplace=True)`` would replay the example's activations.  A tensor that carries the
same ``grad_fn`` and ``output_nr`` as a recorded result holds that result's value, so it is
that result's node.
"""
from __future__ import annotations

from ..fx.experimental.proxy_tensor import OpRecorder

__all__ = ["Recorder"]


class Recorder(OpRecorder):
    """``OpRecorder`` that also knows a result by its autograd identity."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._by_fn = {}  # (id(grad_fn), output_nr) -> (tensor, node)

    def bind(self, t, node) -> None:
        super().bind(t, node)
        fn = t._grad_fn
        if fn is not None:
            self._by_fn[(id(fn), t._output_nr)] = (t, node)

    def node_of(self, t):
        fn = t._grad_fn
        if fn is not None and id(t) not in self._nodes and id(t._data) not in self._by_data:
            seen = self._by_fn.get((id(fn), t._output_nr))
            if seen is not None and seen[0]._grad_fn is fn:  # an in-place op's snapshot
                self.bind(t, seen[1])
                return seen[1]
        return super().node_of(t)
