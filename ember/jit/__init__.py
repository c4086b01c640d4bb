"""``ember.jit``: PyTorch's ``torch.jit`` API over ember's op-level graph capture.

Design note.
What it captures: ``trace`` runs the module or function once on example inputs under the
shared op recorder (``ember.fx.experimental.proxy_tensor.record``, NOTE [ Op recording ]) and
keeps the ops that ran as an ``ember.fx.Graph``.  What it produces: a ``TopLevelTracedModule``
(or ``TracedFunction``) that replays that graph on new inputs (``_program.Program``), with
PyTorch's ``TracerWarning`` where a Python value was baked in and ``check_trace`` re-recording
and comparing.  ``script`` does not compile: it is PyTorch's ``PYTORCH_JIT=0`` behaviour, an
object with ScriptModule's interface running the Python code eagerly, whose ``.code`` and
``.graph`` say so.  ``save``/``load`` write and read a zip archive (graph as plain data,
parameters and buffers in PyTorch's tensor records, module hierarchy) through the allow-list
unpickler, so loading runs no code from the file (``_serialization.py``); when every op of a
trace has a TorchScript spelling the archive also holds TorchScript's records, which real
``torch.jit.load`` runs (``_torchscript.py``).  The compatibility markers (``ignore``,
``unused``, ``Final``, ``is_scripting`` ...) are in ``_jit_internal.py``.
Where it hooks into the core: only through the mode stack the recorder pushes (``_recorder``:
the shared recorder plus the in-place-snapshot rule), plus, while a trace records, wrappers
on ``Tensor``'s Python-conversion methods that warn.
Sizes: ember's ops keep sizes in their arguments as ints (``view`` after ``Flatten``,
BatchNorm's layout), where PyTorch's trace records ``x.size(0)``.  So ``trace`` records the
code a second time with dimension 0 of every input grown, and each int argument that changed
becomes a ``sym_size``/arithmetic expression in the graph (NOTE [ Sizes from two captures ] in
``ember/fx/experimental/symbolic_shapes.py``, shared with ``export`` and ``onnx``): the trace
runs at other batch sizes.  A size that is no such expression (``n // 2``), or code that runs
other ops at the other size, stays baked and a ``TracerWarning`` says so.  Other dimensions
(sequence length, image size) stay as traced.
What differs from PyTorch: the traced code runs twice (once more at the grown size; buffers
such as BatchNorm's running statistics are restored after it); the replay runs what was
recorded, so a trace made in training mode keeps training-mode ops whatever ``eval()`` says
later, as PyTorch's does.
The life of one call: ``trace(m, x)`` -> ``trace_module`` -> ``record(m, (x,))`` -> graph ->
get_attr nodes renamed to ``m``'s parameter names -> ``record`` again on ``x`` grown, sizes
made symbolic -> ``Program`` -> ``check_trace`` re-records on a copy of ``x`` and compares ops
and outputs -> ``traced(y)`` runs ``Program.run(traced, [y])``.
"""
from ._jit_internal import (Attribute, Error, Final, FunctionModifiers, ScriptWarning,
                            TracerWarning, TracingCheckError, _overload, _overload_method,
                            annotate, export, fork, ignore, is_scripting, is_tracing,
                            isinstance, script_if_tracing, unused, wait, _drop,
                            _copy_to_script_wrapper)
from ._script import (CompilationUnit, RecursiveScriptModule, ScriptFunction, ScriptModule,
                      freeze, interface, optimize_for_inference, run_frozen_optimizations,
                      script, script_method)
from ._trace import TopLevelTracedModule, TracedFunction, TracedModule, trace, trace_module
from ._serialization import load, save
from ..futures import Future

_script_if_tracing = script_if_tracing
_isinstance = isinstance

__all__ = ["Attribute", "CompilationUnit", "Error", "Future", "ScriptFunction", "ScriptModule",
           "annotate", "enable_onednn_fusion", "export", "fork", "freeze", "interface",
           "ignore", "isinstance", "load", "onednn_fusion_enabled", "optimize_for_inference",
           "save", "script", "script_if_tracing", "set_fusion_strategy", "strict_fusion",
           "trace", "trace_module", "unused", "wait", "Final", "is_scripting", "is_tracing",
           "TracerWarning", "TracingCheckError", "ScriptWarning", "RecursiveScriptModule",
           "TracedModule", "TopLevelTracedModule", "script_method", "optimized_execution",
           "fuser", "last_executed_optimized_graph", "run_frozen_optimizations",
           "FunctionModifiers", "TracedFunction", "_overload", "_overload_method", "_drop",
           "_copy_to_script_wrapper", "_script_if_tracing", "_isinstance"]

_onednn = [False]


def enable_onednn_fusion(enabled: bool) -> None:
    """Record the flag; ember has no fuser (``torch.jit.enable_onednn_fusion``)."""
    _onednn[0] = bool(enabled)


def onednn_fusion_enabled() -> bool:
    return _onednn[0]


def set_fusion_strategy(strategy):
    """Accepted and returned as the previous strategy; ember has no fuser."""
    prev = getattr(set_fusion_strategy, "_strategy", [("STATIC", 2), ("DYNAMIC", 10)])
    set_fusion_strategy._strategy = list(strategy)
    return prev


class strict_fusion:  # noqa: N801 (PyTorch's name)
    """A no-op context manager: ember fuses nothing (``torch.jit.strict_fusion``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class optimized_execution:  # noqa: N801
    """A no-op context manager (``torch.jit.optimized_execution``)."""

    def __init__(self, should_optimize=True):
        self.should_optimize = should_optimize

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fuser(name):
    """A no-op context manager (``torch.jit.fuser``): ember has no fusers to pick."""
    if name not in ("fuser0", "fuser1", "fuser2", "fuser3", "none"):
        raise Exception(f"unrecognized fuser option (name: {name})")
    return strict_fusion()


def last_executed_optimized_graph():
    raise RuntimeError("ember runs no TorchScript executor, so there is no optimized graph")


def export_opnames(m):
    """The ATen-style names of the ops a traced module's graph calls."""
    program = getattr(m, "_program", None)
    return sorted(set(program.op_names())) if program is not None else []
