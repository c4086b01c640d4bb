"""``ember.export``: PyTorch's ``torch.export`` on ember's op-level graph capture.

Design note.
What it captures: ``export(mod, args)`` runs ``mod`` once under the shared op recorder
(``ember.fx.experimental.proxy_tensor.record``, NOTE [ Op recording ]), with Python control
flow on a tensor's value refused (``GuardOnDataDependentSymNode``, naming the user's line).
What it produces: an ``ExportedProgram`` whose ``graph_module`` takes the parameters,
buffers and lifted constant tensors as placeholders before the user inputs, described by
``graph_signature`` as PyTorch's (``p_fc_weight: PARAMETER target='fc.weight'``, ...);
``module()`` binds them back and checks inputs against the exported shapes (a ``Dim`` lets a
dimension vary: a second capture at another size finds the op arguments that follow it, which
the graph then computes with ``sym_size`` nodes; NOTE [ Sizes from two captures ] in
``ember/fx/experimental/symbolic_shapes.py``).
``run_decompositions()`` returns a copy (the graph is already ember's core ops).
``save``/``load`` write a zip archive of plain data (``_serialize.py``), read back through
the allow-list unpickler: no code from the file runs.
Where it hooks into the core: only the recorder on the mode stack, plus, while capturing,
wrappers on ``Tensor``'s Python-conversion methods that raise for data-dependent values.
The life of one call: ``export(m, (x,))`` -> ``_trace.export`` -> ``record`` -> lift
get_attr nodes to placeholders -> ``ExportedProgram`` -> ``ep.module()(y)`` -> ``_unlift``
guards ``y``'s shape -> ``Program.run(graph, params + buffers + [y])``.
"""
from .dynamic_shapes import ConstraintViolationError, Dim, DimHint, dims
from .exported_program import ExportedProgram
from .graph_signature import (ConstantArgument, ExportBackwardSignature, ExportGraphSignature,
                              InputKind, InputSpec, OutputKind, OutputSpec, TensorArgument)
from ._trace import GuardOnDataDependentSymNode, UserError, export
from ._serialize import load, save

__all__ = ["Constraint", "Dim", "dims", "export", "ExportBackwardSignature",
           "ExportedProgram", "ExportGraphSignature", "load", "save", "default_decompositions",
           "InputKind", "InputSpec", "OutputKind", "OutputSpec", "TensorArgument",
           "ConstantArgument", "draft_export", "register_dataclass", "ShapesCollection",
           "UserError", "GuardOnDataDependentSymNode", "ConstraintViolationError", "DimHint"]

Constraint = Dim


def default_decompositions() -> dict:
    """Empty: ember's graphs are already made of its core ops."""
    return {}


def draft_export(mod, args, kwargs=None, *, dynamic_shapes=None, strict=False, **kw):
    """``export`` (ember has no separate best-effort mode)."""
    return export(mod, args, kwargs, dynamic_shapes=dynamic_shapes, strict=strict)


def register_dataclass(cls, *, serialized_type_name=None):
    """Accepted: ember flattens inputs itself and needs no registration."""
    return cls


class ShapesCollection:
    """Dynamic shapes per input tensor, built by ``collection[tensor] = {0: Dim(...)}``."""

    def __init__(self):
        self._shapes = {}

    def __setitem__(self, t, shape):
        self._shapes[id(t)] = (t, shape)

    def __getitem__(self, t):
        return self._shapes[id(t)][1]

    def dynamic_shapes(self, m, args, kwargs=None):
        out = []
        for a in list(args) + list((kwargs or {}).values()):
            out.append(self._shapes[id(a)][1] if id(a) in self._shapes else None)
        return tuple(out)
