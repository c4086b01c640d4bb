"""``ember._dynamo``: capture a function's ops and run them as compiled code (PyTorch's
``torch._dynamo``), behind ``ember.compile``.

Design note.  What it captures: the ops a call really runs, recorded at the one interception
point (``Function.apply`` -> the mode stack, NOTE [ Modes ]) by ``proxy_tensor.record`` (NOTE [
Op recording ]), not Python bytecode as PyTorch's dynamo does.  The first call with a new set of
guards runs ``fn`` eagerly under the recorder (so its results are eager's), and meanwhile
watches for what a graph cannot hold: ``.item()``, ``bool(t)``, ``.tolist()``, ``.numpy()``,
``print``, ops with data-dependent shapes, a backward/step the program cannot hold (NOTE [
Compiled training steps ]), random draws outside ops, parameters written outside ops.  What it
produces: a cache entry per (code object, guards) holding either the backend's compiled callable
(``backends.py``; by default one autograd node with generated forward/backward code,
``ember._functorch``) or, after a graph break, "run eagerly" with the reasons (``explain``;
``fullgraph=True`` raises ``exc.Unsupported`` naming the construct and the user's line instead).

Guards: the key is the inputs' shapes, dtypes, array types (devices) and ``requires_grad``,
plain-value arguments, grad/inference mode, the active modes (autocast), the ``training``
flags of the modules ``fn`` reaches (itself, ``self``, globals, closures); an entry also
checks that each parameter/buffer it read is still the object its module holds, with the
same shape (a re-assigned ``module.weight`` recompiles), and that no module it reached had a
child, parameter or buffer replaced, added or deleted since (NOTE [ Module tree guard ] in
``eval_frame.py``: ``model[2] = nn.Linear(...)`` recompiles rather than replaying the old
child's weights).  ``config.cache_size_limit``
entries per code object, then eager with one warning.

NOTE [ Guard cost ]
Building the key tuple, hashing it and running ``entry.ok()``'s loops cost ~5 us a call on a
batch-1 MLP (as much as 10% of the call).  So the first time an entry's guards pass for a
flat positional call with no modes active, ``_fast_guard`` generates one function (``<ember.
compile guard>``; ``EMBER_LOGS=guards`` prints it) that checks everything the key and ``ok()``
check as one ``and`` chain over bound constants: argument count, grad/inference mode, default
dtype, the discovered modules' ``training`` flags, each input's array type, shape, strides,
dtype and ``requires_grad``, each parameter's identity, shape, dtype and ``requires_grad``,
closure cells (their tensors' shapes and dtypes too), each reached module's tree count (NOTE
[ Module tree guard ]), plain attributes and globals (``is`` for None/bools; other values by
identity with the captured object first, then ``==``).  The wrapper remembers ``(epoch,
guard, entry)`` of the entry the last call ran and tries that guard first; an entry
leaving a cache (a failed guard, ``reset()``, an evicted dynamic size) or a module hook
registered or removed (NOTE [ Hook guard ]) bumps ``_epoch``, and a re-discovery of what the function reaches fails the guard by identity.  A guard that fails
only sends the call down the general path (never runs a stale entry); ~1.8 us instead of ~5.
On a batch-1 inference call the guard's cost is mostly cache misses, not bytecode: the call's
weights (2.1 MB on the MLP, twice L2) have just streamed through, so each object the guard
reads (module dicts, parameters, their arrays, bound values) comes from L3 or memory; the same
guard costs ~1.7 us hot and ~3 us between such calls (a minimal hand-written one ~2).  So it
reads as few objects as it can: ``is`` before ``==`` (``==`` reads both objects), ``not in``
for an absent name, no shapes of the constants the inference call checks itself (NOTE
[ Batch-1 inference ]), a module's ``training`` flag from the module dict the plain-value
checks read anyway (not through the module object; the attribute where a class defines
``training`` as a data descriptor or has its own ``__getattribute__``), and
``OptimizedModule.__call__`` runs this fast path itself (one frame fewer).  An inference entry's
guard holds the generated inference function's body after its checks (one more frame fewer;
the function is called instead where their globals share a name).

The life of one call: ``compiled(x)`` -> ``_Compiled.__call__`` flattens the arguments,
builds the guard key, finds the entry -> ``entry.ok()`` -> ``CompiledRegion(*leaves)`` ->
``CompiledFunction.apply`` -> the generated forward over arrays -> one autograd node; its
backward runs the generated backward.  Parameters are read at each call, so optimizer
updates between calls are seen.  ``EMBER_LOGS=graph,code,recompiles,breaks`` (or
``TORCH_LOGS``) prints what happens.

Optimizer steps (``optim_step.py``, NOTE [ Compiled optimizer steps ]): ``ember.compile(opt.step)``
is one generated update over every parameter's arrays.

NOTE [ Compiled training steps ]
A function that runs ``opt.zero_grad(); loss = ...; loss.backward(); opt.step(); return
loss.item()`` compiles whole.  While the capture runs, ``Tensor.backward``, ``zero_grad``
(``Optimizer``'s and ``Module``'s) and ``Tensor.item`` are patched to record *events*
(``_Capture.event``: kind, payload, ops recorded so far, the user's line), and a routed
``opt.step()`` records one (its update runs with the recorder off).  At the end ``_program``
checks them: zero_grad may come anywhere before the forward's last op and before any
backward/step (it moves ahead of the compiled forward); one ``backward()`` on a tensor the
graph computes, optimizer steps, later zero_grads and ``item()`` must come after the last op,
except that ops after them which read neither a parameter (nor a view of one) nor a gradient,
write nothing and draw nothing (a metric of the forward's values, ``(out.argmax(1) == y).
sum()``: ``_hoistable``) run in the compiled forward, before them; an ``item()`` value may
only be returned (found by identity).  The graph's output becomes ``(result, extras)``, the extras
being the tensors the events use.  ``_Program`` replays: pre-forward zero_grads, the compiled
forward, then the events in order (``backward()`` on the region's output runs its compiled
backward and accumulates through eager's engine; the step is ``compiled_step_for(opt)``; a
scheduler's ``step()`` (without arguments, or ``ReduceLROnPlateau``'s metric from the graph)
is an event too, replayed as it is, since a compiled step reads ``lr`` at each call, and so is
``nn.utils.clip_grad_norm_``/``clip_grad_value_``, run on the gradients the compiled backward
made, its norm returned as the call's own), then ``item()`` into the result.  Other ops after
the first backward/step (a hand-written update or clip, a weight EMA) run as a compiled tail
after the event they follow (NOTE [ Ops after backward ] in ``tail.py``).  A ``bool(tensor)`` is an
event too: the program checks the value after the compiled forward and, on a mismatch, puts
the random draws back and runs the call eagerly (``_GuardMismatch``; only for graphs whose ops
can be taken back, ``_undoable``).  Anything else (a ``bool`` of a tail value, a hook on a
graph tensor, a ``.grad`` assigned in Python, ``retain_graph``/``create_graph``,
``autograd.grad``, a second backward) is a break, found and named as before.

Dynamic shapes (``dynamic.py``, NOTE [ Dynamic compiled graphs ]): a second size on a
dimension makes the graph size-generic for it (``dynamic=None``, PyTorch's automatic
dynamic; ``mark_dynamic``; ``dynamic=False`` specialises every size).

NOTE [ dynamic=True ]
The first call's capture is followed at once by a second one at other sizes
(``_Compiled._grow``, as ``export`` checks its ``Dim``s), not lowered, not counted as a frame.
The sizes (``dynamic.size_maps``): every input size >= 2 grown (equal sizes by equal amounts,
PyTorch's duck shaping: a later call where they differ recompiles; a size that is the product
of a run of another input's dimensions, a flattened target, follows them); where the function
refuses that (a feature size a weight fixes) all shrunk; then one size at a time, leading
dimensions first (at most ``dynamic.ATTEMPTS`` captures).  The first pair of graphs that
differ only in what sizes explain makes the ``DynamicGraph`` the automatic path makes at a
second size.  The second run is made invisible: ``dynamic.Snapshot`` puts back every array,
version counter and ``.grad`` of the parameters, buffers and tensors the function reaches,
each optimizer's state and flat buffers, and the random stream; so training steps (backward
and ``opt.step()`` inside), batch-norm statistics and in-place writes are generic from the
first call.  A function with Python side effects outside ops that do not break the graph
would run them once more at the first call.  Sizes 0 and 1 specialise (PyTorch's 0/1
specialisation): a batch of 1 compiles its own graph once.  A tuple of one size repeated
another's number of times (the fused LSTM's per-step batch sizes, ``(B,) * T``) follows both.
An argument no expression gives (``n // 2``) keeps its sizes static and says so under
``EMBER_LOGS=recompiles`` (each new size recompiles).

NOTE [ Regions around a break ]
Without rewriting bytecode a frame cannot be resumed after a break, so a function that breaks
is compiled at module granularity instead.  While the capture that hit the break runs, every
``nn.Module`` call (``Module.__call__`` is patched) and every ``ember.compile``d function it
calls is noted with whether a break happened inside it (``_Capture.call``).  The outermost
calls with no break inside (a call nested in a clean call belongs to it; the children of a
call that broke are candidates again) become the pieces.  Later calls run the function
eagerly with ``Module.__call__`` routed (``_routed_modules``): a piece module's call, outside
any other routed call, goes through a ``_Compiled`` region of its own (``_Compiled._pieces``,
its own guards and cache, captured on its first routed call, so a piece that breaks on its
own stays eager); compiled functions already run their own entries; optimizer steps run the
compiled update (``routed_steps``).  So a step with ``print(loss.item())`` or gradient
clipping between backward and step still runs its model's forward and backward and its
``opt.step`` compiled.  ``explain`` counts the pieces as graphs (``pieces``; ``graphs`` holds each
piece's recorded nodes as a ``GraphModule``, values from outside as placeholders);
``fullgraph=True`` still raises at the break.  Breaks found only at the end of a capture
(a side effect, a parameter written outside ops) are not placed in a call; the region's own
capture finds them again if they are its own.  A module with hooks (its own, a submodule's,
global ones) is no piece, and a routed module that gained a hook since runs eagerly: a hook's
Python would not be replayed.
"""
from . import config, utils
from .eval_frame import (OptimizedModule, optimize, explain, reset, disable, is_compiling,
                         ExplainOutput, BreakReason)
from .backends import register_backend, lookup_backend, list_backends
from .exc import Unsupported, InvalidBackend

__all__ = ["config", "utils", "OptimizedModule", "optimize", "explain", "reset", "disable",
           "is_compiling", "register_backend", "lookup_backend", "list_backends",
           "Unsupported", "InvalidBackend", "ExplainOutput", "BreakReason", "mark_dynamic",
           "mark_static", "allow_in_graph", "graph_break"]


def _dims(t, index) -> set:
    from .._tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"mark_dynamic/mark_static expect a tensor, got {type(t).__name__}")
    dims = [index] if isinstance(index, int) else list(index)
    for d in dims:
        if not -t.dim() <= d < max(t.dim(), 1):
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-t.dim()}, {t.dim() - 1}], but got {d})")
    return {d % t.dim() for d in dims}


def mark_dynamic(t, index, **kwargs) -> None:
    """Mark dimension(s) ``index`` of ``t`` dynamic: when it is called at a second size the
    compiled function gets one size-generic graph for them, even under ``dynamic=False``
    (NOTE [ Dynamic compiled graphs ]); ``min``/``max`` are accepted."""
    dims = _dims(t, index)
    t._dynamo_dynamic_indices = getattr(t, "_dynamo_dynamic_indices", set()) | dims


def mark_static(t, index=None) -> None:
    """Mark dimension(s) ``index`` of ``t`` (all when ``None``) static: a new size there
    recompiles a specialised graph, never a dynamic one."""
    dims = set(range(t.dim())) if index is None else _dims(t, index)
    t._dynamo_static_indices = getattr(t, "_dynamo_static_indices", set()) | dims


def allow_in_graph(fn):
    """Accepted for PyTorch scripts: the ops ``fn`` runs are recorded anyway."""
    return fn


def graph_break(msg: str = "") -> None:
    """Force a graph break here (``torch._dynamo.graph_break``); eagerly, nothing."""
    from .eval_frame import _capturing
    if _capturing:
        _capturing[-1].brk("torch._dynamo.graph_break()" + (f": {msg}" if msg else ""))
