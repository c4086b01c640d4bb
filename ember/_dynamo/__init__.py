"""``ember._dynamo``: capture a function's ops and run them as compiled code (PyTorch's
``torch._dynamo``), behind ``ember.compile``.

Design note.  What it captures: the ops a call really runs, recorded at the one interception
point (``Function.apply`` -> the mode stack, NOTE [ Modes ]) by ``proxy_tensor.record``
(NOTE [ Op recording ]), not Python bytecode as PyTorch's dynamo does.  The first call with a
new set of guards runs ``fn`` eagerly under the recorder (so its results are eager's), and
meanwhile watches for what a graph cannot hold: ``.item()``, ``bool(t)``, ``.tolist()``,
``.numpy()``, ``print``, ops with data-dependent shapes, a backward or optimizer step inside,
random draws outside ops, parameters written outside ops.  What it produces: a cache entry
per (code object, guards) holding either the backend's compiled callable (``backends.py``;
by default one autograd node with generated forward/backward code, ``ember._functorch``) or,
after a graph break, "run eagerly" with the reasons (``explain``; ``fullgraph=True`` raises
``exc.Unsupported`` naming the construct and the user's line instead).

Guards: the key is the inputs' shapes, dtypes, array types (devices) and ``requires_grad``,
plain-value arguments, grad/inference mode, the active modes (autocast), the ``training``
flags of the modules ``fn`` reaches (itself, ``self``, globals, closures); an entry also
checks that each parameter/buffer it read is still the object its module holds, with the
same shape (a re-assigned ``module.weight`` recompiles).  ``config.cache_size_limit``
entries per code object, then eager with one warning.

The life of one call: ``compiled(x)`` -> ``_Compiled.__call__`` flattens the arguments,
builds the guard key, finds the entry -> ``entry.ok()`` -> ``CompiledRegion(*leaves)`` ->
``CompiledFunction.apply`` -> the generated forward over arrays -> one autograd node; its
backward runs the generated backward.  Parameters are read at each call, so optimizer
updates between calls are seen.  ``EMBER_LOGS=graph,code,recompiles,breaks`` (or
``TORCH_LOGS``) prints what happens.

Optimizer steps (``optim_step.py``, NOTE [ Compiled optimizer steps ]): ``ember.compile(opt.step)``
is one generated update over every parameter's arrays; ``opt.step()`` inside a compiled function
still breaks the graph, but runs that generated update.

Not done (see docs/compile.md): dynamic shapes (a new shape recompiles), partial graphs around
a break (the whole function runs eagerly).
"""
from . import config
from .eval_frame import (OptimizedModule, optimize, explain, reset, disable, is_compiling,
                         ExplainOutput, BreakReason)
from .backends import register_backend, lookup_backend, list_backends
from .exc import Unsupported, InvalidBackend

__all__ = ["config", "OptimizedModule", "optimize", "explain", "reset", "disable",
           "is_compiling", "register_backend", "lookup_backend", "list_backends",
           "Unsupported", "InvalidBackend", "ExplainOutput", "BreakReason", "mark_dynamic",
           "mark_static", "allow_in_graph"]


def mark_dynamic(t, index, **kwargs) -> None:
    """Accepted for PyTorch scripts: ember's graphs have static shapes (a new size
    recompiles, in milliseconds)."""


def mark_static(t, index=None) -> None:
    """Accepted for PyTorch scripts: shapes are static already."""


def allow_in_graph(fn):
    """Accepted for PyTorch scripts: the ops ``fn`` runs are recorded anyway."""
    return fn
