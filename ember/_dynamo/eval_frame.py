"""The compiled-function wrapper: guards, the per-code-object cache, capture and graph breaks.

See the design note in ``ember/_dynamo/__init__.py`` for the life of one call.
"""
from __future__ import annotations

import builtins
import collections
import contextlib
import copy
import enum
import functools
import inspect
import itertools
import operator
import os
import sys
import time
import types
import warnings
import weakref

import numpy as _np

from . import config
from .backends import lookup_backend
from .exc import Unsupported
from .. import _dtype as _dtype_mod
from .._state import state
from .._tensor import Tensor, _version_counter
from ..nn import Module
from ..nn.modules import module as _mm
from ..optim.optimizer import Optimizer
from ..autograd import modes as _modes
from ..fx.experimental.proxy_tensor import (COPY_, DROPOUT_MASK, OpRecorder, flatten,
                                            plain_output, record, unflatten)
from .optim_step import (CompiledStep, routed_steps, optimizer_of, capture_hook,
                         compiled_step_for)
from .dynamic import ATTEMPTS, DynamicGraph, NotDynamic, Snapshot, general_leaf, resize, size_maps
from .dynamic import keep_audit, pair_ok, probe_dims, track_sizes
from .utils import counters
from . import utils as _utils
from ..optim import optimizer as _optmod

__all__ = ["OptimizedModule", "optimize", "explain", "reset", "disable", "is_compiling",
           "ExplainOutput", "BreakReason"]

_CACHE = {}          # code object -> _CodeCache
_NESTED = (tuple, list, dict)
_TOKENS = itertools.count()
_PLAIN = (int, float, bool, str, type(None))
_MISSING = object()
_capturing = []      # the captures now running (innermost last)
_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ops whose output shape depends on the values of their input
DATA_DEPENDENT = frozenset(("nonzero", "masked_select", "unique", "unique_consecutive",
                            "unique_dim", "bincount", "histc", "repeat_interleave"))
# Tensor's in-place samplers, offered to the modes while capturing (random nodes)
SAMPLERS_ = ("uniform_", "normal_", "bernoulli_", "exponential_", "log_normal_", "cauchy_",
             "geometric_", "random_")
# Tensor methods that hand tensor data to Python: the graph cannot hold what Python does next
_BREAKING_METHODS = {
    "item": "Tensor.item()",
    "tolist": "Tensor.tolist()",
    "numpy": "Tensor.numpy()",
    "__bool__": "bool(tensor) (data-dependent control flow such as `if tensor:`)",
    "__int__": "int(tensor)",
    "__float__": "float(tensor)",
    "__array__": "numpy.asarray(tensor)",
}


class BreakReason:
    """Why a function could not be captured whole (PyTorch's ``GraphCompileReason``)."""

    def __init__(self, reason: str, user_stack: list):
        self.reason = reason
        self.user_stack = user_stack

    def __repr__(self):
        where = f" ({self.user_stack[-1]})" if self.user_stack else ""
        return f"{self.reason}{where}"


def _user_stack() -> list:
    """``file:line in fn: source`` of the frames outside ember, innermost last."""
    out = []
    f = sys._getframe(2)
    while f is not None:
        fname = os.path.abspath(f.f_code.co_filename)
        if not fname.startswith(_EMBER_DIR) and "/_pytest/" not in fname and \
                "/pluggy/" not in fname:
            import linecache
            src = linecache.getline(fname, f.f_lineno).strip()
            out.append(f'File "{fname}", line {f.f_lineno}, in {f.f_code.co_name}: {src}')
            if len(out) >= 3:
                break
        f = f.f_back
    return out[::-1]


class _Capture:
    """One capture run: the breaks it met and the random draws it checked."""

    def __init__(self, fullgraph: bool):
        self.fullgraph = fullgraph
        self.breaks = []
        self.stepped = set()  # ids of parameters a compiled optimizer step wrote
        self.rec = None
        # NOTE [ Compiled training steps ]: (kind, payload, nodes recorded so far) of each
        # backward(), zero_grad(), optimizer step and item() the function ran
        self.events = []
        self.in_backward = False  # a recorded backward() runs: its ops are not breaks
        self.quiet = 0            # zero_grad() runs: its .grad writes are not breaks
        # NOTE [ Regions around a break ]: every break counted (brk keeps one per reason),
        # the module / compiled-function calls now running, and each finished one as
        # (callee, parent call index or None, whether a break happened inside, op names)
        self.n_breaks = 0
        self.ops = []
        self.calls = []
        self.stack = []
        self.schedulers = []  # lr schedulers whose step() is an event (NOTE [ Compiled
        # training steps ])
        # NOTE [ Ops after backward ]: constants that are a parameter's .grad (name -> the
        # parameter) or a detach()/.data of a parameter or buffer (name -> it): a tail reads
        # them at each call; anywhere else they are breaks
        self.grad_consts = {}
        self.live = {}

    @contextlib.contextmanager
    def call(self, callee):
        """A module call (or an ``ember.compile``d function's) runs inside the capture."""
        parent = self.stack[-1] if self.stack else None
        root = self.rec.graph._root if self.rec is not None else None
        me = [callee, parent, self.n_breaks, len(self.ops), root and root._prev]
        self.stack.append(len(self.calls))
        self.calls.append(None)
        idx = self.stack[-1]
        try:
            yield
        finally:
            self.stack.pop()
            # the graph's last node before and after the call: its nodes (explain's graphs)
            span = (me[4], root._prev) if root is not None else None
            self.calls[idx] = (callee, parent, self.n_breaks != me[2], self.ops[me[3]:], span)

    def event(self, kind: str, *payload) -> None:
        # the user's line now: a break found at the end names where the construct was
        self.events.append((kind, payload, _n_ops(self.rec.graph) if self.rec else 0,
                            _user_stack()))

    @contextlib.contextmanager
    def suspended(self):
        """The recorder off the mode stack (an optimizer step's eager first update)."""
        rec = self.rec
        if rec is None or rec not in state.modes:
            yield
            return
        _modes.pop(rec)
        try:
            yield
        finally:
            _modes.push(rec)

    def brk(self, what: str, stack: list = None) -> None:
        stack = _user_stack() if stack is None else stack
        if self.fullgraph:
            where = f"\n  {stack[-1]}" if stack else ""
            raise Unsupported(f"graph break under fullgraph=True: {what}{where}")
        self.n_breaks += 1
        if not any(b.reason == what for b in self.breaks):
            self.breaks.append(BreakReason(what, stack))


def _n_ops(graph) -> int:
    """Ops recorded so far (a result's ``getitem``, made when it is first used, is none; nor
    is a returned tensor's ``detach``, made at the end)."""
    return sum(1 for n in graph.nodes if n.op == "call_function" and
               n.target is not operator.getitem and n.target is not _DETACH)


# ``Tensor.detach`` is no op (it is not recorded: the detached tensor is its base's value), so
# a returned ``loss.detach()`` would come back from the graph as ``loss``, requiring grad;
# ``_detach_outputs`` puts this node before the output in its place
_DETACH = _modes.Op(Tensor.detach, "detach")


def _detach_outputs(rec, recording) -> None:
    """Each returned tensor that does not require grad where the node it maps to does (a
    ``detach()`` of a graph value) becomes a ``detach`` node of that value."""
    out = list(rec.graph.nodes)[-1]
    leaves, _ = flatten(recording.result)
    nodes, spec = flatten(out.args[0])
    if len(leaves) != len(nodes):  # a structure kept as one constant
        return
    changed = False
    for i, (t, n) in enumerate(zip(leaves, nodes)):
        val = getattr(n, "meta", {}).get("val") if hasattr(n, "op") else None
        if isinstance(t, Tensor) and isinstance(val, Tensor) and val is not t and \
                val.requires_grad and not t.requires_grad:
            with rec.graph.inserting_before(out):
                d = rec.graph.call_function(_DETACH, (n,))
            d.meta["val"] = t
            d.meta["grad_mode"] = n.meta.get("grad_mode")
            nodes[i] = d
            changed = True
    if changed:
        out.args = (unflatten(nodes, spec),)


def _gen_state():
    from ..random import default_generator
    return default_generator._np.bit_generator.state


def _set_gen_state(st) -> None:
    from ..random import default_generator
    default_generator._np.bit_generator.state = st


class _Recorder(OpRecorder):
    """The op recorder with ``ember.compile``'s checks (breaks, random draws)."""

    def __init__(self, cap: _Capture):
        super().__init__(forward_only=True)
        self.cap = cap
        self.rng = _gen_state()
        self.in_dropout = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if state.in_backward:
            if not self.cap.in_backward:
                self.cap.brk("autograd.grad()/autograd.backward(), or a backward() the "
                             "program cannot hold, inside the compiled function")
        elif func.__name__ in DATA_DEPENDENT:
            self.cap.brk(f"{func.__name__} (its output shape depends on the data)")
        # an op may draw random numbers itself (attention dropout): a replay draws them
        # again at the same point; a draw between ops would be baked in
        if not self.in_dropout:
            self.check_rng(f"before {func.__name__}")
        out = super().__torch_dispatch__(func, types, args, kwargs)
        if not self.cap.in_backward:
            self.cap.ops.append(func.__name__)
            # which tensor arguments required grad: a detached one (no node of its own, its
            # array is its source's) is detached again when a dynamic graph replays the op
            self.graph._root._prev.meta["arg_rg"] = tuple(_requires(a) for a in args)
        self.rng = _gen_state()
        return out

    def record_write(self, t, result) -> None:
        # An in-place op that recorded autograd ran on a snapshot of ``t`` (NOTE [ In-place
        # ops ]), so its node saved the snapshot; the graph's op reads ``t``'s node, which the
        # copy_ then overwrites. Read a clone instead, or a replay with autograd (the op-by-op
        # fallback for graphs with copy_) fails in backward with eager's "modified by an
        # inplace operation" where the op saves its input (timm's SiLU(inplace=True)); the
        # clone also lets passes.functionalize drop the write (NOTE [ Functional in-place
        # writes ])
        op = self.node_of(result) if state.grad and result._requires_grad and \
            t._grad_fn is not None else None
        if op is not None and op.op == "call_function" and op.args and \
                hasattr(op.args[0], "users"):
            snap = next((k for k in reversed(self._keep[-8:]) if k is not t and
                         k is not result and self._nodes.get(id(k)) is op.args[0] and
                         k._grad_fn is t._grad_fn and k._output_nr == t._output_nr), None)
            if snap is not None:
                from ..ops.convert import Clone
                with self.graph.inserting_before(op):
                    c = self.graph.call_function(_modes.op_for(Clone), (op.args[0], None))
                c.meta["val"] = snap
                c.meta["grad_mode"] = True
                c.meta["snapshot"] = True
                op.args = (c,) + tuple(op.args[1:])
        super().record_write(t, result)

    def check_rng(self, where: str) -> None:
        if _gen_state() != self.rng:
            self.cap.brk(f"random numbers drawn outside an op ({where}: ember.rand/randn or a "
                         "generator)")

    def record_dropout(self, input, p, kept_dims, inplace):
        self.check_rng("before a dropout")
        self.in_dropout = True  # its mask draw is the DROPOUT_MASK node's
        self.cap.ops.append("dropout")
        try:
            out = super().record_dropout(input, p, kept_dims, inplace)
        finally:
            self.in_dropout = False
        self.rng = _gen_state()
        return out


def _requires(a):
    """``requires_grad`` of a tensor argument, or of each in a list of them."""
    if isinstance(a, Tensor):
        return a._requires_grad
    if isinstance(a, (list, tuple)) and any(isinstance(e, Tensor) for e in a):
        return tuple(isinstance(e, Tensor) and e._requires_grad for e in a)
    return None


# NOTE [ Impure calls ]
# A capture runs the function once and a graph replays its ops, not its Python: a call whose
# result changes from call to call with no op behind it (``random.random()``, ``next()`` on an
# iterator, ``time.time()``, ``os.environ``, ``input()``, an ``ember.Generator`` made inside
# the function) would be frozen into the graph at the capture's value.  PyTorch's dynamo reads
# bytecode and replays or breaks on them; ember sees calls, so during a capture only a profile
# hook (``sys.setprofile``) watches the user's frames for them, and each becomes a graph break
# naming the call and the user's line (``fullgraph=True`` raises).  numpy.random's streams,
# whose Cython calls the hook does not see, are compared by state before and after instead
# (``_object_state``).  ``next()`` resuming one of ember's generators (``next(m.parameters())``)
# is pure; on any other iterator it is a break.
_GEN_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR | inspect.CO_COROUTINE
_STDLIB = os.path.dirname(os.__file__)
_kinds = {}  # code object -> "ember", "lib" (the standard library, installed packages) or "user"


def _kind(code) -> str:
    # keyed with the file name too: code objects compare equal across files when their
    # name, first line and body are the same
    key = (code, code.co_filename)
    k = _kinds.get(key)
    if k is None:
        f = code.co_filename
        if f.startswith("<frozen"):
            k = "lib"
        else:
            # ember's own directory first: a pip-installed ember lives under site-packages,
            # and its own calls (an os.environ read) are never the user's (review rv2 C0)
            f = os.path.abspath(f)
            k = "ember" if f.startswith(_EMBER_DIR) else \
                "lib" if f.startswith(_STDLIB) or "-packages/" in f else "user"
        _kinds[key] = k
    return k


def _caller(frame):
    """``(user frame, outermost library function's name)`` of a call made in ``frame``, or
    ``(None, None)`` where ember made it."""
    name = None
    while frame is not None:
        k = _kind(frame.f_code)
        if k != "lib":
            return (frame, name) if k == "user" else (None, None)
        name = frame.f_code.co_name
        frame = frame.f_back
    return None, None


def _stack_at(frame) -> list:
    """``_user_stack``'s lines from ``frame`` up."""
    import linecache
    out = []
    while frame is not None and len(out) < 3:
        if _kind(frame.f_code) == "user":
            fname = os.path.abspath(frame.f_code.co_filename)
            src = linecache.getline(fname, frame.f_lineno).strip()
            out.append(f'File "{fname}", line {frame.f_lineno}, in '
                       f'{frame.f_code.co_name}: {src}')
        frame = frame.f_back
    return out[::-1]


def _gc_callback(frame) -> bool:
    """Whether ``frame`` runs a ``gc.callbacks`` entry (a collection that happened during the
    capture, such as Hypothesis timing its collections): not the function's own call."""
    import gc
    codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


class _Impure:
    """The profile hook of NOTE [ Impure calls ]: ``found`` holds (what, user stack)."""

    def __init__(self):
        self.found = []
        self.ran = {}  # code object of each user function the capture ran -> its globals

    def __enter__(self):
        self.old = sys.getprofile()
        sys.setprofile(self._hook())
        return self

    def __exit__(self, *exc):
        sys.setprofile(self.old)

    def note(self, what, frame) -> None:
        if len(self.found) < 8:
            self.found.append((f"an impure call, {what}: its value would be frozen into the "
                               "graph", _stack_at(frame)))

    def _hook(self):
        # a closure over locals: it runs at every call and return of the capture
        import random
        from ..random import Generator
        note, kinds, kind, nxt, inp, tm = self.note, _kinds, _kind, next, input, time
        ran = self.ran
        rand, gen_flags = random.Random, _GEN_FLAGS
        watched = {
            Generator.__init__.__code__: "an ember.Generator() made inside the function (a "
            "graph would go on drawing from the capture's generator)",
            os._Environ.__getitem__.__code__: "a read of os.environ",
            os._Environ.__iter__.__code__: "a read of os.environ"}
        pending = [None]  # a next() made by user code, until its iterator shows itself

        def hook(frame, event, arg):
            if event == "call":
                code = frame.f_code
                if code not in ran and (kinds.get(code) or kind(code)) == "user":
                    ran[code] = frame.f_globals  # NOTE [ Python values ]: any depth
                if pending[0] is not None:
                    user, pending[0] = pending[0], None
                    if not (code.co_flags & gen_flags and kind(code) == "ember"):
                        note("next() on an iterator", user)
                if code in watched:
                    user, _ = _caller(frame.f_back)
                    if user is not None:
                        note(watched[code], user)
            elif event == "c_call":
                if pending[0] is not None:
                    note("next() on an iterator", pending[0])
                    pending[0] = None
                if arg is nxt:
                    if (kinds.get(frame.f_code) or kind(frame.f_code)) == "user":
                        pending[0] = frame
                    return
                s = getattr(arg, "__self__", None)
                if s is tm or arg is inp:
                    if kind(frame.f_code) == "user":
                        note(f"{'' if arg is inp else 'time.'}{arg.__name__}()", frame)
                elif isinstance(s, rand):
                    user, name = _caller(frame)
                    if user is not None:
                        note(f"random.{name or arg.__name__}()", user)
            elif pending[0] is not None and arg is nxt:  # c_return, c_exception: a C iterator
                note("next() on an iterator", pending[0])
                pending[0] = None
        return hook


def _np_random(v) -> bool:
    """A NumPy random stream (a Generator, RandomState or bit generator)."""
    return type(v).__module__.startswith("numpy.random")


def _np_streams(objects, allmods) -> list:
    """numpy.random's global stream and the NumPy streams held by the containers and modules
    a function reaches (one level in): their state is compared before and after a capture."""
    npr = sys.modules.get("numpy.random")
    if npr is None:  # not imported: nothing drew from it
        return []
    out = [npr.mtrand._rand]
    for o in (*objects, *(m.__dict__ for m in allmods)):
        if isinstance(o, dict) and len(o) <= _GUARD_ITEMS or isinstance(o, (list, tuple)) and \
                len(o) <= _GUARD_ITEMS:
            out += [v for v in (o.values() if isinstance(o, dict) else o) if _np_random(v)]
    return out


def _np_state(v):
    import pickle
    bg = getattr(v, "bit_generator", getattr(v, "_bit_generator", v))
    return pickle.dumps(bg.state)


class _Patches:
    """Tensor methods and ``print`` that report a graph break while a capture runs."""

    def __init__(self, rec: _Recorder):
        self.rec = rec
        self.saved = []

    def _wrap(self, orig, what):
        rec = self.rec

        @functools.wraps(orig)
        def patched(*args, **kwargs):
            # a recorded backward()'s formulas run again, for real, at each replay
            if rec in state.modes and not rec.cap.in_backward:
                rec.cap.brk(what)
            return orig(*args, **kwargs)
        return patched

    def _set(self, owner, name, fn):
        self.saved.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, fn)

    def __enter__(self):
        rec = self.rec
        cap = rec.cap
        for name, what in _BREAKING_METHODS.items():
            orig = getattr(Tensor, name, None)
            if orig is None:
                continue
            kind = {"item": "item", "__bool__": "bool"}.get(name)
            self._set(Tensor, name, self._wrap(orig, what) if kind is None else
                      _value_patch(orig, rec, kind))
        self.saved.append((builtins, "print", builtins.print))
        builtins.print = self._wrap(builtins.print, "print() (a Python side effect)")
        # NOTE [ Compiled training steps ]: backward(), zero_grad() and .grad writes
        self._set(Tensor, "backward", _backward_patch(Tensor.backward, rec))
        # NOTE [ Regions around a break ]: which module calls had a break inside
        mcall = Module.__call__

        def module_call(m, *args, **kwargs):
            if rec not in state.modes or cap.in_backward:
                return mcall(m, *args, **kwargs)
            with cap.call(m):
                return mcall(m, *args, **kwargs)
        self._set(Module, "__call__", module_call)
        for owner in (Optimizer, Module):
            self._set(owner, "zero_grad", _zero_grad_patch(owner.zero_grad, rec))
        from ..optim.lr_scheduler import LRScheduler
        todo = [LRScheduler]  # every scheduler class with a step of its own (SequentialLR,
        # ChainedScheduler, ReduceLROnPlateau, a user's subclass)
        while todo:
            cls = todo.pop()
            todo += cls.__subclasses__()
            if "step" in cls.__dict__:
                self._set(cls, "step", _sched_patch(cls.__dict__["step"], rec))
        # tensors made from NumPy arrays and Python data are nodes too (``offering()`` offers
        # tensor/as_tensor to every recording; jit.trace warns on these as PyTorch's does)
        import ember
        from ..fx.experimental.proxy_tensor import _offer
        for owner, name in ((ember, "from_numpy"), (Tensor, "new_tensor")):
            self._set(owner, name, _offer(owner.__dict__[name], name))
        # the in-place samplers are nodes that draw when they run, as randn's are (gpt-fast's
        # sampling: ``torch.empty_like(p).exponential_(1)``), not draws baked into the graph
        for name in SAMPLERS_:
            self._set(Tensor, name, _offer(Tensor.__dict__[name], name))
        # the legacy constructors (``torch.Tensor([...])``, ``FloatTensor(...)``,
        # ``x.new(...)``) make their tensors with the offered factories: literals as nodes
        from .. import _tensor_types
        self._set(Tensor, "new", _legacy_patch(Tensor.__dict__["new"], rec))
        for cls in [Tensor] + [getattr(_tensor_types, n) for n in _tensor_types.__all__]:
            if isinstance(cls, type) and "__new__" in cls.__dict__:
                self._set(cls, "__new__", staticmethod(_legacy_patch(
                    cls.__dict__["__new__"].__func__, rec)))
        from ..nn import utils as nn_utils
        from ..nn.utils import clip_grad
        for name in ("clip_grad_norm_", "clip_grad_value_"):
            patched = _clip_patch(getattr(clip_grad, name), rec)
            for owner in (clip_grad, nn_utils):
                self._set(owner, name, patched)
        grad = Tensor.__dict__["grad"]

        def set_grad(t, value):
            if rec in state.modes and not cap.quiet:
                cap.brk("a .grad assigned in Python (not by zero_grad())")
            grad.__set__(t, value)
        self._set(Tensor, "grad", property(grad.fget, set_grad, grad.fdel, grad.__doc__))
        # NOTE [ Tensor indices ]: an index key is parsed into arrays before the op runs
        # (ops/index.py), so a graph would hold this call's index values as constants and
        # replay them for other inputs (``logp[arange(B), y]`` with the next batch's y, a
        # KV cache's ``cache[:, :, pos] = k``).  A tensor in a key breaks the graph instead,
        # unless it is a literal made in the function (``x[:, torch.tensor([2, 0])]``, whose
        # Python values are guarded, NOTE [ Python values ]); Python ints, slices and lists
        # are constants of the code and stay in the graph.
        from ..ops import index as index_ops
        from .._functorch.passes import _literal
        entry = index_ops._entry

        def literal(k) -> bool:
            n = rec._nodes.get(id(k))
            return getattr(n, "op", None) == "call_function" and _literal(n)

        def key_entry(k, xp):
            if isinstance(k, Tensor) and rec in state.modes and not cap.in_backward and \
                    not literal(k):
                cap.brk("indexing with a tensor (t[idx], t[mask], t[idx] = v: the graph would "
                        "hold this call's index values)")
            return entry(k, xp)
        self._set(index_ops, "_entry", key_entry)
        # the common keys with one integer tensor (``freqs[pos]``, ``mask[None, None, pos]``,
        # ``cache[:, :, pos] = k``) are spelt with ops that take the index as a tensor, so the
        # graph reads each call's index: index_select (negative indices wrapped by a where),
        # and index_copy_/index_fill_ for a write along a 1-d index under full slices
        getitem, setitem = Tensor.__dict__["__getitem__"], Tensor.__dict__["__setitem__"]

        def tensor_key(t, key):
            one = _one_index(t, key)
            if one is None or rec not in state.modes or cap.in_backward or literal(one[2]):
                return None
            return one

        def index_getitem(t, key):
            one = tensor_key(t, key) if type(key) is not int else None
            if one is None:
                return getitem(t, key)
            basic, d, idx = one
            xb = getitem(t, basic)
            flat = _wrapped(idx.reshape(-1), xb.shape[d])
            out = xb.index_select(d, flat)
            return out.reshape(tuple(xb.shape[:d]) + tuple(idx.shape) + tuple(xb.shape[d + 1:]))

        def index_setitem(t, key, value):
            one = tensor_key(t, key)
            if one is not None and one[2].dim() <= 1 and all(
                    e is Ellipsis or e == slice(None) for e in one[0]) and (
                    isinstance(value, (int, float)) and not isinstance(value, bool) or
                    isinstance(value, Tensor) and value.dtype == t.dtype and
                    value.dim() <= t.dim() - (one[2].dim() == 0)):
                _, d, idx = one
                flat = _wrapped(idx.reshape(-1).long(), t.shape[d])
                if isinstance(value, Tensor):
                    shape = list(t.shape)
                    shape[d] = flat.shape[0]
                    if idx.dim() == 0:  # t[:, pos] has no dim d: v broadcasts to the rest
                        value = value.expand(shape[:d] + shape[d + 1:]).unsqueeze(d)
                    t.index_copy_(d, flat, value.expand(shape))
                else:
                    t.index_fill_(d, flat, value)
                return
            setitem(t, key, value)
        self._set(Tensor, "__getitem__", index_getitem)
        self._set(Tensor, "__setitem__", index_setitem)
        data = Tensor.__dict__["data"]

        def set_data(t, value):
            # the tensor now holds another array: the compiled code would keep reading the
            # one the capture saw (a replay does not re-point it)
            if rec in state.modes and not cap.in_backward:
                cap.brk("a tensor's .data assigned in Python (t.data = ...)")
            data.__set__(t, value)
        self._set(Tensor, "data", property(data.fget, set_data, data.fdel, data.__doc__))
        for name in ("register_hook", "retain_grad"):
            orig = Tensor.__dict__[name]
            self._set(Tensor, name, _hook_patch(orig, rec, name))
        return self

    def __exit__(self, *exc):
        for owner, name, orig in reversed(self.saved):
            if orig is None:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)


def _value_patch(orig, rec, kind: str):
    """``Tensor.item`` / ``__bool__`` while capturing: an event of ``kind`` ("item": its value
    may only be returned; "bool": the program guards on its value)."""
    @functools.wraps(orig)
    def read(self):
        v = orig(self)
        cap = rec.cap
        if rec in state.modes and not cap.in_backward:  # a formula's: not the program's
            first = next((e[2] for e in cap.events if e[0] in _POST), None)
            if kind == "bool" and first is not None and _made_after(rec, self, first):
                # a value computed after a backward/step: no guard can hold it (guards are
                # checked right after the compiled forward), so the break is here
                cap.brk(_BREAKING_METHODS["__bool__"])
            cap.event(kind, self, v)
        return v
    return read


def _made_after(rec, t, first: int) -> bool:
    """Whether tensor ``t`` is the value of an op recorded after the first ``first`` ops."""
    node = rec._nodes.get(id(t))
    if node is None or type(node) is tuple:
        return False
    k = 0
    for n in rec.graph.nodes:
        if n.op == "call_function" and n.target is not operator.getitem and \
                n.target is not _DETACH:
            k += 1
        if n is node:
            return k > first
    return False


def _backward_patch(orig, rec):
    """``Tensor.backward`` while capturing: an event, when the program can hold it."""
    @functools.wraps(orig)
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        cap = rec.cap
        if rec not in state.modes or cap.in_backward:
            return orig(self, gradient, retain_graph, create_graph, inputs)
        if create_graph or retain_graph or inputs is not None:
            cap.brk("backward(create_graph=, retain_graph= or inputs=) inside the compiled "
                    "function")
        else:
            cap.event("backward", self, gradient)
        cap.in_backward = True
        try:
            return orig(self, gradient, retain_graph, create_graph, inputs)
        finally:
            cap.in_backward = False
    return backward


def _zero_grad_patch(orig, rec):
    """``Optimizer.zero_grad``/``Module.zero_grad`` while capturing: an event."""
    @functools.wraps(orig)
    def zero_grad(self, set_to_none: bool = True):
        cap = rec.cap
        if rec not in state.modes:
            return orig(self, set_to_none)
        cap.event("zero_grad", self, set_to_none)
        cap.quiet += 1
        try:
            with cap.suspended():  # writes arrays (set_to_none=False): no ops to record
                return orig(self, set_to_none)
        finally:
            cap.quiet -= 1
    return zero_grad


def _sched_patch(orig, rec):
    """A scheduler's ``step()`` while capturing: an event the program replays as it is, after
    the compiled optimizer step (Python over the optimizer's hyper-parameters, which a compiled
    step reads at each call).  The outermost call is the event (``SequentialLR``'s children
    run inside it); ``ReduceLROnPlateau``'s metric is a graph value (or an ``item()`` of one)
    read at each replay.  Other arguments (a deprecated ``epoch``) stay a side effect (a
    break).  PyTorch 2.13's dynamo breaks the graph at every scheduler ``step``."""
    from ..optim.lr_scheduler import ReduceLROnPlateau

    @functools.wraps(orig)
    def step(self, *args, **kwargs):
        cap = rec.cap
        metric = isinstance(self, ReduceLROnPlateau) and len(args) == 1 and not kwargs
        if rec not in state.modes or cap.in_backward or (args or kwargs) and not metric:
            return orig(self, *args, **kwargs)
        cap.event("sched", self, *args)
        cap.schedulers.append(self)
        with cap.suspended():
            return orig(self, *args)
    return step


def _legacy_patch(orig, rec):
    """A legacy constructor while capturing: the ``tensor``/``empty`` it calls are the offered
    ``ember.tensor``/``ember.empty``, so its literal is a node (folded and guarded as
    ``torch.tensor([...])``'s is) rather than a tensor made outside ops."""
    @functools.wraps(orig)
    def make(*args, **kwargs):
        if rec not in state.modes:
            return orig(*args, **kwargs)
        import ember
        from .. import _creation
        saved = _creation.tensor, _creation.empty
        _creation.tensor, _creation.empty = ember.tensor, ember.empty
        try:
            return orig(*args, **kwargs)
        finally:
            _creation.tensor, _creation.empty = saved
    return make


def _clip_patch(orig, rec):
    """``nn.utils.clip_grad_norm_``/``clip_grad_value_`` while capturing: an event the program
    replays as it is, where it came (after ``backward()``: it reads and scales the gradients
    the compiled backward makes; PyTorch's dynamo traces it without a break).  The norm it
    returns may be returned (the replay's norm is); ops on it are a break."""
    @functools.wraps(orig)
    def clip(parameters, *args, **kwargs):
        cap = rec.cap
        if rec not in state.modes or cap.in_backward:
            return orig(parameters, *args, **kwargs)
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        with cap.suspended():  # array work on gradients: nothing for the graph
            out = orig(params, *args, **kwargs)
        cap.event("clip", orig, params, args, kwargs, out)
        return out
    return clip


def _hook_patch(orig, rec, name):
    """``register_hook``/``retain_grad`` on a non-leaf while capturing: a break (the compiled
    backward has no node for the tensor to hook)."""
    @functools.wraps(orig)
    def patched(self, *args, **kwargs):
        if rec in state.modes and self._grad_fn is not None:
            rec.cap.brk(f"Tensor.{name}() on a tensor the graph computes")
        return orig(self, *args, **kwargs)
    return patched


_CALL_IMPL = Module.__call__


class _routed_modules:
    """While active, a call of a module in ``routes`` (id -> compiled region) that is not
    inside another routed call runs its region (NOTE [ Regions around a break ])."""

    table = None  # the routes now active
    depth = 0     # routed calls running

    def __init__(self, routes):
        self.routes = routes

    def __enter__(self):
        self.saved = _routed_modules.table
        if self.routes is not None:
            _routed_modules.table = self.routes
            # installed once, not per call: assigning a class's __call__ updates the call slot
            # of every Module subclass (~150 us a call measured); left in place it costs a
            # module call one more Python frame, until reset()
            if Module.__dict__["__call__"] is _CALL_IMPL:
                Module.__call__ = _route_call
        return self

    def __exit__(self, *exc):
        if self.routes is not None:
            _routed_modules.table = self.saved


def _hooked_globally() -> bool:
    return bool(_mm._global_forward_pre_hooks or _mm._global_forward_hooks or
                _mm._global_backward_hooks or _mm._global_backward_pre_hooks)


def _hooked(m) -> bool:
    """Whether a call of ``m`` runs module hooks (its own, a submodule's or global ones): a
    hook's Python (an activation collected into a list) is not replayed by compiled code, so
    such a call stays eager."""
    if _mm._global_forward_pre_hooks or _mm._global_forward_hooks or \
            _mm._global_backward_hooks or _mm._global_backward_pre_hooks:
        return True
    return any(s._forward_pre_hooks or s._forward_hooks or s._backward_hooks or
               s._backward_pre_hooks for s in m.modules())


def _route_call(m, *args, **kwargs):
    table = _routed_modules.table
    region = None if table is None or _routed_modules.depth or _capturing else \
        table.get(id(m))
    if region is None or m._forward_pre_hooks or m._forward_hooks or m._backward_hooks or \
            m._backward_pre_hooks:  # a hook added since: eager
        return _CALL_IMPL(m, *args, **kwargs)
    _routed_modules.depth += 1
    try:
        return region(*args, **kwargs)
    finally:
        _routed_modules.depth -= 1


class _GuardMismatch(Exception):
    """A ``bool(tensor)`` a program guards on came out the other way this call."""


# a program whose bool guards failed this many times runs eagerly from then on (its branch
# depends on the data: the compiled forward would be wasted work)
_MISMATCH_LIMIT = 3


class _Program:
    """A compiled training step (NOTE [ Compiled training steps ]): the graph's compiled
    forward, then the recorded ``zero_grad``/``backward``/optimizer steps/``item`` in their
    order, on the graph's outputs."""

    def __init__(self, run, pre, post, items, spec, guards=(), random=False, tail=None):
        self.run = run          # the backend's callable: returns (result, extras)
        self.pre = pre          # zero_grad calls made before the forward's last op
        self.post = post        # (kind, payload) after it
        self.items = items      # result leaf position -> extras index (an item() value)
        self.spec = spec        # how to rebuild the result from its leaves
        self.guards = guards    # (extras index, value) of each bool(tensor) the capture took
        self.random = random    # the graph draws random numbers (restored on a mismatch)
        self.mismatches = 0
        self.tail = tail        # ops after the events (NOTE [ Ops after backward ]) or None

    def __call__(self, *leaves):
        for ref, set_to_none in self.pre:
            ref().zero_grad(set_to_none)
        if self.guards:
            rng = _gen_state() if self.random else None
            result, extras = self.run(*leaves)
            for k, v in self.guards:
                if bool(extras[k]) is not v:  # Python took the other branch: eager runs
                    if rng is not None:
                        _set_gen_state(rng)  # as if the compiled forward never drew
                    self.mismatches += 1
                    raise _GuardMismatch()
        else:
            result, extras = self.run(*leaves)
        norms = None
        tail = self.tail
        values = None if tail is None else [None] * tail.n_slots
        for i, (kind, a, b) in enumerate(self.post):
            if kind == "backward":
                extras[a].backward(None if b is None else extras[b])
            elif kind == "zero_grad":
                a().zero_grad(b)
            elif kind == "sched":
                if b is None:
                    a().step()
                else:  # ReduceLROnPlateau's metric: (from the tail?, where, item?)
                    m = tail.value(values, b[1], extras) if b[0] else extras[b[1]]
                    a().step(m.item() if b[2] else m)
            elif kind == "clip":  # (function, parameters, args, kwargs), result positions
                norm = a[0](a[1], *a[2], **a[3])
                if b:
                    norms = (norms or []) + [(pos, norm) for pos in b]
            else:  # "step"
                compiled_step_for(a())()
            if tail is not None and i in tail.run:
                tail.run[i](extras, values)
        if self.items or norms or tail is not None and tail.results:
            flat, _ = flatten(result)
            for pos, node, item in tail.results if tail is not None else ():
                v = tail.value(values, node, extras)
                flat[pos] = v.item() if item else v
            for pos, k in self.items.items():
                flat[pos] = extras[k].item()
            for pos, norm in norms or ():
                flat[pos] = norm
            result = unflatten(flat, self.spec)
        return result


def _hoistable(rec, cap, pos: int) -> bool:
    """Whether the ops recorded after the first ``pos`` may run before the events that came
    between (``backward()``, optimizer steps, clipping), as the compiled forward runs them:
    each a pure op or an offered function (a comparison, ``argmax``) that draws and writes
    nothing and reads no parameter (nor a view of one) that a step changes.  So metrics of the
    forward's values after the step (``(out.argmax(1) == y).sum()``) are part of the graph:
    eager computes them from the same arrays."""
    from .._functorch.aot_autograd import _RANDOM, _op_class
    from .._functorch.passes import _MOVEMENT, pure

    def stepped(t) -> bool:
        return isinstance(t, Tensor) and (t.requires_grad and t.grad_fn is None or
                                          id(t) in cap.stepped)

    def param_view(a, seen) -> bool:
        if id(a) in seen:
            return False
        seen.add(id(a))
        if a.op == "get_attr":  # a gradient or a parameter's detach() is read after too
            return stepped(rec.constants.get(a.target)) or a.target in cap.grad_consts or \
                a.target in cap.live
        if a.op == "placeholder":
            return stepped(a.meta.get("val"))
        if a.target is operator.getitem or pure(a) and \
                a.target._fn.__self__.__module__ == _MOVEMENT:  # a view's values are its base's
            return any(param_view(b, seen) for b in a.all_input_nodes)
        return False
    k = 0
    for n in rec.graph.nodes:
        if n.op != "call_function" or n.target is operator.getitem or n.target is _DETACH:
            continue
        k += 1
        if k <= pos:
            continue
        name = getattr(n.target, "__name__", "")
        if n.target is COPY_ or n.target is DROPOUT_MASK or name.endswith("_") or \
                name in _RANDOM or name in DATA_DEPENDENT or not pure(n) and \
                (not isinstance(n.target, _modes.Op) or _op_class(n.target) is not None):
            return False
        if any(param_view(a, set()) for a in n.all_input_nodes):
            return False
    return True


def _undoable(graph) -> bool:
    """Whether running ``graph`` can be taken back (a bool guard's mismatch): every op is
    pure (``passes.pure``), a function offered to the modes, or a random draw (the generator's
    state is put back); no in-place write, no batch norm updating its statistics."""
    from .._functorch.aot_autograd import _RANDOM, _op_class
    from .._functorch.passes import pure
    for n in graph.nodes:
        if n.op != "call_function" or pure(n) or n.target is DROPOUT_MASK:
            continue
        name = getattr(n.target, "__name__", "")
        if name in _RANDOM and not name.endswith("_"):  # a sampler writes in place: kept
            continue
        if n.target is COPY_ or name.endswith("_") or _op_class(n.target) is not None or \
                not isinstance(n.target, _modes.Op):
            return False
    return True


def _unlowered(*leaves):
    raise RuntimeError("ember.compile: a graph captured only to be symbolized was run")


def _program(cap, rec, recording):
    """Check the events a capture recorded and turn the graph into a program's graph (its
    output gains the tensors the events use); returns what ``_Program`` needs, or ``None``
    after a break (NOTE [ Compiled training steps ])."""
    events = cap.events
    if not events:
        return None
    out = list(rec.graph.nodes)[-1]
    end = _n_ops(rec.graph)  # events after the forward's last op
    extras, pre, post, items = [], [], [], {}

    def extra(t):
        if not isinstance(t, Tensor) or (id(t) not in rec._nodes and
                                         id(t._data) not in rec._by_data):
            return None
        with rec.graph.inserting_before(out):  # a result's getitem, split off here
            extras.append(rec.node_of(t))
        return len(extras) - 1
    result_leaves, spec = flatten(recording.result)
    if sum(1 for e in events if e[0] == "backward") > 1:
        cap.brk("backward() called more than once inside the function")
        return None
    guards = []
    seen_post = False  # a backward/step/clip came: a later zero_grad stays in its place
    # NOTE [ Ops after backward ]: ops after the first backward/step that are no metric of
    # the forward's values run after their event, as a tail of their own
    first = next((pos for kind, _, pos, _ in events if kind in _POST), None)
    tail = _tail_nodes(rec, first) if first is not None and first < end and \
        not _hoistable(rec, cap, first) else {}
    tail_items, post_pos = [], []
    metrics = {id(e[1][1]) for e in events if e[0] == "sched" and len(e[1]) > 1}
    for kind, payload, pos, stack in events:
        if kind in ("bool", "item") and tail and isinstance(payload[0], Tensor) and \
                rec._nodes.get(id(payload[0])) in tail:
            at = [i for i, leaf in enumerate(result_leaves) if leaf is payload[1]]
            if kind == "bool" or not at or pos < end:  # Python used a tail value
                cap.brk(_BREAKING_METHODS["__bool__" if kind == "bool" else "item"], stack)
                return None
            tail_items += [(i, rec._nodes[id(payload[0])]) for i in at]
            continue
        if kind == "bool":
            k = extra(payload[0])
            if k is None or not _undoable(rec.graph):
                cap.brk(_BREAKING_METHODS["__bool__"], stack)
                return None
            guards.append((k, payload[1]))
            continue
        if kind == "item" and pos < end:
            cap.brk(_BREAKING_METHODS["item"], stack)  # its value fed later ops
            return None
        if kind == "item" and id(payload[1]) in metrics and \
                not any(leaf is payload[1] for leaf in result_leaves):
            continue  # a scheduler's metric only: the replay reads it
        if pos < end and kind != "zero_grad" and not tail and not _hoistable(rec, cap, pos):
            cap.brk(f"{_EVENT_NAMES[kind]} before ops the function runs after it (the "
                    "compiled forward runs first)", stack)
            return None
        if kind == "zero_grad":
            fn = type(payload[0]).zero_grad
            if fn not in (Optimizer.zero_grad, Module.zero_grad) and \
                    getattr(fn, "__wrapped__", None) not in (Optimizer.zero_grad,
                                                            Module.zero_grad):
                cap.brk(f"{type(payload[0]).__name__}.zero_grad() overridden", stack)
                return None
            # held weakly: the cache must not keep an optimizer alive (the function holds it)
            if pos < end and not seen_post:
                pre.append((weakref.ref(payload[0]), payload[1]))
            else:
                post.append(("zero_grad", weakref.ref(payload[0]), payload[1]))
        elif kind == "backward":
            t, g = payload
            k = extra(t)
            kg = extra(g) if g is not None else None
            if k is None or extras[k].op != "call_function" or (g is not None and kg is None):
                cap.brk("backward() on a tensor the graph does not compute", stack)
                return None
            post.append(("backward", k, kg))
        elif kind == "sched" and len(payload) > 1:  # ReduceLROnPlateau's metric
            got = _metric(rec, events, payload[1], tail, extra)
            if got is None:
                cap.brk("lr_scheduler.step(metric) with a metric the graph does not compute",
                        stack)
                return None
            post.append((kind, weakref.ref(payload[0]), got))
        elif kind in ("step", "sched"):
            post.append((kind, weakref.ref(payload[0]), None))
        elif kind == "clip":
            norm = payload[4]
            node = rec._nodes.get(id(norm)) if isinstance(norm, Tensor) else None
            if node is not None and any(u.op != "output" for u in node.users):
                cap.brk(f"ops on the norm {payload[0].__name__}() returned (the compiled "
                        "forward runs first)", stack)
                return None
            at = tuple(i for i, leaf in enumerate(result_leaves)
                       if norm is not None and leaf is norm)
            post.append(("clip", payload[:4], at))
        else:  # item: its value may only be returned, as it is
            t, v = payload
            k = extra(t)
            at = [i for i, leaf in enumerate(result_leaves) if leaf is v]
            if k is None or not at:  # its value is used (only returning it is compiled)
                cap.brk(_BREAKING_METHODS["item"], stack)
                return None
            for i in at:
                items[i] = k
        seen_post = seen_post or kind in _POST
        if len(post_pos) < len(post):
            post_pos.append(pos)
    run_tail = None
    if tail:
        run_tail = _make_tail(cap, rec, tail, post_pos, extras, tail_items,
                              [b[1] for kind, _, b in post if kind == "sched" and b and b[0]])
        if run_tail is None:
            return None
    elif cap.grad_consts or cap.live:
        return None  # read in the forward: ``_capture`` reports it
    out.args = ((out.args[0], tuple(extras)),)
    from .._functorch.aot_autograd import _RANDOM  # the ops that draw
    random = any(n.op == "call_function" and (n.target is DROPOUT_MASK or getattr(
        n.target, "__name__", "") in _RANDOM) for n in rec.graph.nodes)
    return pre, post, items, spec, tuple(guards), random, run_tail


_POST = ("backward", "step", "sched", "clip")


def _metric(rec, events, m, tail, extra):
    """Where a replay finds ``ReduceLROnPlateau.step``'s metric ``m``: ``(tail?, node or extras
    index, item?)``, or ``None`` where the graph does not compute it."""
    item = False
    if not isinstance(m, Tensor):  # a Python number: an item() of a graph value?
        m = next((e[1][0] for e in events if e[0] == "item" and e[1][1] is m), None)
        if m is None:
            return None
        item = True
    node = rec._nodes.get(id(m))
    if node is not None and node in tail:
        return True, node, item
    k = extra(m)
    return None if k is None else (False, k, item)


def _tail_nodes(rec, first: int) -> dict:
    """The op nodes recorded after the first ``first`` ops (and the ``getitem``/``detach``
    nodes of them), each with its op count (NOTE [ Ops after backward ])."""
    tail, k = {}, 0
    for n in rec.graph.nodes:
        if n.op != "call_function":
            continue
        counted = n.target is not operator.getitem and n.target is not _DETACH
        k += counted
        if counted and k > first or not counted and any(a in tail for a in
                                                       n.all_input_nodes):
            tail[n] = k
    return tail


def _make_tail(cap, rec, tail: dict, post_pos: list, extras: list, tail_items: list,
               metrics: list):
    """Cut the ``tail`` nodes out of the graph into a ``tail.Tail`` whose segments run after
    the program's events (NOTE [ Ops after backward ]); ``None`` after a break."""
    from .tail import Tail, TailError
    from .._backend import xp_of
    for name in (*cap.grad_consts, *cap.live):  # read by the forward: not a tail's
        for n in rec.graph.nodes:
            if n.op == "get_attr" and n.target == name and any(u not in tail
                                                               for u in n.users):
                return None
    segments = {}
    for n, k in tail.items():
        i = max(j for j, pos in enumerate(post_pos) if pos < k)
        segments.setdefault(i, []).append(n)
    out = list(rec.graph.nodes)[-1]
    inputs = {}
    for n in tail:
        for a in n.all_input_nodes:
            if a not in tail and a.op != "get_attr" and a not in inputs:
                inputs[a] = len(extras)
                extras.append(a)
    leaves, spec = flatten(out.args[0])
    results = [(i, a) for i, a in enumerate(leaves) if a in tail]
    wanted = [a for _, a in results] + [a for _, a in tail_items] + metrics
    for n in wanted:  # the tail builds no autograd graph: eager's result would have one
        v = n.meta.get("val")
        if isinstance(v, Tensor) and v.grad_fn is not None and n.target is not COPY_:
            kind, _, _, stack = next(e for e in cap.events if e[0] in _POST)
            cap.brk(f"{_EVENT_NAMES[kind]} before ops that build an autograd graph (a result "
                    "that requires grad; the compiled forward runs first)", stack)
            return None
    xp = next((xp_of(v._data) for n in tail if isinstance(v := n.meta.get("val"), Tensor)),
              None)
    try:
        t = Tail(segments, inputs, rec.constants, cap.grad_consts, cap.live, wanted, xp)
    except TailError as e:
        cap.brk(str(e), cap.events[-1][3])
        return None
    if results:
        for i, _ in results:
            leaves[i] = None
        out.args = (unflatten(leaves, spec),)
    for n in reversed(list(tail)):
        rec.graph.erase_node(n)
    for n in list(rec.graph.nodes):  # the gradients' (and the tail's own) constants
        if n.op == "get_attr" and not n.users and (n.target in cap.grad_consts or
                                                   n.target in cap.live):
            rec.graph.erase_node(n)
            rec.constants.pop(n.target, None)
    t.results = results + [(i, a, True) for i, a in tail_items]
    t.results = [(r[0], r[1], len(r) == 3) for r in t.results]
    # the tail's code may spell a forward value's sizes (a view's shape): a program whose tail
    # reads forward values recompiles at each new size rather than becoming size-generic
    t.static = bool(inputs)
    return t


_EVENT_NAMES = {"backward": "backward()", "step": "optimizer.step()", "item": "Tensor.item()",
                "sched": "lr_scheduler.step()", "clip": "gradient clipping"}


# NOTE [ Module tree guard ]
# A graph holds the modules its function reached as they were: ``model[2] = nn.Linear(...)``,
# ``model.fc = ...``, ``del model.fc``, ``register_buffer``/``register_parameter`` or a
# parameter set to None leave every tensor the graph read where it was (the old child still
# holds its weights), so guarding those tensors' identity is not enough.  Each module counts
# the changes to its children, parameters and buffers (``_tree_version`` in its ``__dict__``,
# bumped by ``Module.__setattr__``/``__delattr__``/``register_*``/``add_module``, the
# containers' ``insert``/``del``/``clear`` and quantization's swaps, all through
# ``nn.modules.module._tree_changed``; absent until the first change), and an entry checks
# each reached module's count (``_Entry.tree``, taken after the capture ran, so a lazy
# module's first call is its state): the general guard, the generated fast guard and the
# batch-1 inference guard read it from the module dict they read ``training`` from (no other
# object touched).  A change recompiles; the new capture discovers the tree again.  Not seen:
# a user's own write into the private ``_modules``/``_parameters``/``_buffers`` dicts (PyTorch
# sees those through its ``_modules`` guards).


# NOTE [ Hook guard ]
# A capture runs the module hooks present then (their ops are in the graph) and none that
# came later, so an entry holds only while every reached module (and the global registry)
# has the same forward/backward hooks, by handle id.  Checking each module's four hook dicts
# on every call would cost more than the rest of the guard, so registering or removing such
# a hook (``nn.modules.module._HookHandle``) bumps ``_epoch``, which every remembered fast
# guard is checked against: the next call of each compiled function takes the general path,
# where ``_Entry.ok`` compares the hooks once (``_hook_state``) and, if they are the same,
# notes the epoch as seen.  A hook added on an ``OptimizedModule`` itself runs eagerly
# around the compiled call, as PyTorch's.  PyTorch skips these guards by default
# (``torch._dynamo.config.skip_nnmodule_hook_guards = True``, documented as unsafe: the
# first-compiled hooks keep running); ember's default is False, the numbers eager gives, and
# True skips them as PyTorch does.  Not seen: a user's own write into a module's hook dicts.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


def _hook_state(tree) -> tuple:
    """The handle ids of the global module hooks and of each module's (``tree``: the
    entry's module dicts) in call order: what a captured graph assumed (NOTE [ Hook guard ])."""
    out = [tuple(_mm._global_forward_pre_hooks), tuple(_mm._global_forward_hooks),
           tuple(_mm._global_backward_pre_hooks), tuple(_mm._global_backward_hooks)]
    for i, (d, _) in enumerate(tree):
        for n in _HOOK_DICTS:
            h = d.get(n)
            if h:
                out.append((i, n, tuple(h)))
    return tuple(out)


# NOTE [ Buffers assigned in forward ]
# ``self.steps = self.steps + 1`` or ``self.ema = 0.9 * self.ema + 0.1 * x.mean()`` in a
# forward puts a new tensor in the module's ``_buffers`` each call.  A graph that read the old
# buffer as a constant would fail its identity guard on every later call (a capture per call,
# then the cache limit and eager); so, as PyTorch's dynamo does, the capture makes each such
# buffer (``_lift_buffers``): its old value read by the graph a placeholder fed from the
# module's ``_buffers`` at each call and guarded by layout (``_Entry.lifted``), and its new
# value one more output of the graph, which ``_WriteBack`` assigns back into ``_buffers``
# after the compiled call (no tree change: NOTE [ Module tree guard ]).  Only where every
# buffer that changed holds a tensor the graph computed that needs no gradient, in a graph
# that is no training step; otherwise, as before, each call captures.  A second size makes
# a dynamic graph as for any graph (its instances run inside a copy of the ``_WriteBack``),
# where both captures read and write the same buffers with the same layouts; ``dynamic=True``
# waits for that second size (a second capture at once would write the buffers twice).  Such
# an entry gets no batch-1 inference call.
def _lift_buffers(rec, recording, before) -> tuple:
    """``(lifted, written)`` for the buffers a capture re-assigned (NOTE [ Buffers assigned
    in forward ]), rewriting its graph: ``lifted`` (dict, name, layout) per placeholder added,
    ``written`` (dict, name) per output added; ``((), None)`` where it does not apply."""
    changed = [(d, k, old, d.get(k, _MISSING)) for d, k, old in before
               if d.get(k, _MISSING) is not old]
    if not changed or any(not isinstance(new, Tensor) or new.requires_grad or
                          id(new) not in rec._nodes for _, _, _, new in changed):
        return (), None
    graph = rec.graph
    nodes = list(graph.nodes)
    out = nodes[-1]
    phs = [n for n in nodes if n.op == "placeholder"]
    lifted = []
    for d, k, old, _ in changed:
        name = next((nm for nm, t in recording.constants.items() if t is old), None)
        if name is None:
            continue  # the old value was never read
        reads = [n for n in graph.nodes if n.op == "get_attr" and n.target == name]
        where = graph.inserting_after(phs[-1]) if phs else graph.inserting_before(nodes[0])
        with where:
            ph = graph.placeholder(f"b_{k}")
        ph.meta["val"] = old
        phs.append(ph)
        for n in reads:
            n.replace_all_uses_with(ph)
            graph.erase_node(n)
        del recording.constants[name]
        lifted.append((d, k, _leaf_key(old)))
    out.args = ((out.args[0], tuple(rec.node_of(new) for _, _, _, new in changed)),)
    return lifted, [(d, k) for d, k, _, _ in changed]


class _WriteBack:
    """A compiled graph whose forward re-assigns buffers (NOTE [ Buffers assigned in
    forward ]): each lifted buffer read as one more input, each new value assigned back."""

    __slots__ = ("run", "lifted", "written")

    def __init__(self, run, lifted, written):
        # ``run``: the compiled graph (a dynamic graph's instance at each size, as a program's)
        self.run, self.lifted, self.written = run, lifted, written

    def __call__(self, *leaves):
        res, new = self.run(*leaves, *[d[k] for d, k, _ in self.lifted])
        for (d, k), t in zip(self.written, new):
            d[k] = t
        return res


# NOTE [ Custom backends and sizes ]
# PyTorch's automatic dynamic hands a custom ``backend(gm, example_inputs)`` the first size's
# graph, then, at a second size, the size-generic graph, and never again for further sizes
# (sizes 0 and 1 are specialised: each its own graph).  ember makes a dynamic graph from two
# captures, after the second one ran; so a recompile's graph is handed to a user's backend
# only after that (``_Deferred``): where the two captures make a ``DynamicGraph`` the backend
# gets its size-generic graph (``sym_size`` nodes read the sizes from the inputs) and the
# callable it returns runs every size (``DynamicGraph.fixed``); otherwise it gets the
# capture's own graph, in the same call.  ember's own backends still make code per size
# (NOTE [ Dynamic compiled graphs ]).  A training step's program (a backward inside) keeps
# handing each size's graph.
class _Deferred:
    """A backend call put off to the end of the capturing call (NOTE [ Custom backends and
    sizes ]): ``target`` is what the backend returned (or the dynamic graph's callable)."""

    __slots__ = ("compiler", "gm", "example", "target")

    def __init__(self, compiler, gm, example):
        self.compiler, self.gm, self.example, self.target = compiler, gm, example, None

    def force(self) -> None:
        if self.target is None:
            self.target = self.compiler(self.gm, self.example)
        self.example = None

    def __call__(self, *args):
        if self.target is None:
            self.force()
        return self.target(*args)


def _tree_shape(m) -> tuple:
    """A module's tree count, then its children, parameters and buffers by name and (but for
    the buffers' values) identity."""
    return (m.__dict__.get("_tree_version", _MISSING), tuple(m._buffers),
            tuple((k, id(v)) for k, v in m._parameters.items()),
            tuple((k, id(v)) for k, v in m._modules.items()))


def _lifts(entry) -> tuple:
    """The buffers an entry reads as inputs and writes back (NOTE [ Buffers assigned in
    forward ]): two captures make one dynamic graph only where these are the same."""
    run = entry.run
    return ([(id(d), k, lay) for d, k, lay in entry.lifted],
            [(id(d), k) for d, k in run.written] if isinstance(run, _WriteBack) else None)


class _Entry:
    """One compiled version of a function, valid while its guards hold."""

    __slots__ = ("key", "owned", "cells", "values", "run", "breaks", "side", "gm", "compiled",
                 "compile_time", "unsupported", "steps", "template", "dynamic", "regions",
                 "pieces", "fast", "tree", "hooks", "lifted", "rebuild")

    def ok(self) -> bool:
        hooks = self.hooks  # NOTE [ Hook guard ]: looked at again only when one came or went
        if hooks[0] != _epoch[0]:
            if not config.skip_nnmodule_hook_guards and _hook_state(self.tree) != hooks[1]:
                return False
            hooks[0] = _epoch[0]
        for d, k, lay in self.lifted:  # NOTE [ Buffers assigned in forward ]
            t = d.get(k)
            if not isinstance(t, Tensor) or _leaf_key(t) != lay:
                return False
        for d, v in self.tree:  # NOTE [ Module tree guard ]
            if d.get("_tree_version", _MISSING) != v:
                return False
        # each tensor's (shape, dtype): ``m.double()`` swaps arrays under the same parameters
        for d, k, t, lay, rg in self.owned:
            a = t._data
            if d.get(k) is not t or a.shape != lay[0] or a.dtype != lay[1] or \
                    t._requires_grad != rg:
                return False
        for cell, t, lay in self.cells:  # (a closure's tensor: as owned's)
            a = t._data
            if cell.cell_contents is not t or a.shape != lay[0] or a.dtype != lay[1]:
                return False
        for d, keys, vals in self.values:  # plain attributes and globals Python may branch on
            got = tuple([d.get(k, _MISSING) for k in keys])
            # by type too: 2 == 2.0, but x * 2 is integer where x * 2.0 is float
            if got != vals or tuple(map(type, got)) != tuple(map(type, vals)):
                return False
        return True


# bumped whenever an entry leaves a cache, and when a module hook is registered or removed
# (NOTE [ Hook guard ]): a remembered fast guard is stale
_epoch = _mm._guard_epoch


def _fast_guard(entry, key, disc, leaves):
    """One generated function checking, for a flat positional call, all that the guard key
    lookup and ``entry.ok()`` check (NOTE [ Guard cost ]), or ``None`` where the call's form
    needs the general path (keyword or nested arguments, active modes)."""
    n_args, kw, grad, inference, msig, training, leaf_keys, dflt = key[1]
    if kw or msig or len(leaf_keys) != n_args:
        return None
    env = {"state": state, "_dm": _dtype_mod, "Tensor": Tensor, "DISC": disc, "M": _MISSING}
    conds = [f"len(args) == {n_args}", f"state.grad is {grad!r}",
             f"state.inference is {inference!r}", "not state.modes",
             "_dm._default_float is DFLT"]
    env["DFLT"] = dflt

    def bind(v) -> str:
        name = f"c{len(env)}"
        env[name] = v
        return name
    conds.append("self._disc is DISC")
    for i, (m, flag) in enumerate(zip(disc[0] if disc is not None else (), training)):
        if _in_dict(m, "training"):
            # the flag read from the dict the value guards below read too: the module object
            # itself is one cache line fewer to miss (NOTE [ Guard cost ])
            conds.append(f"{bind(m.__dict__)}['training'] is {flag!r}")
        else:
            conds.append(f"{bind(m)}.training is {flag!r}")
    dicts = {}  # NOTE [ Module tree guard ]: each count read from the dict bound above
    for c, v in env.items():
        if type(v) is dict and c.startswith("c"):
            dicts.setdefault(id(v), c)
    for d, v in entry.tree:
        dn = dicts.get(id(d)) or bind(d)
        conds.append(f"'_tree_version' not in {dn}" if v is _MISSING else
                     f"{dn}['_tree_version'] == {v!r}")
    for j, (d, k, (typ, shape, strides, dtype, rg)) in enumerate(entry.lifted):
        # NOTE [ Buffers assigned in forward ]: the buffer this call reads, by layout
        conds.append(f"isinstance(b{j} := {bind(d)}[{k!r}], Tensor) and "
                     f"type(e{j} := b{j}._data) is {bind(typ)} and e{j}.shape == {shape!r} and "
                     f"e{j}.strides == {strides!r} and e{j}.dtype is {bind(dtype)} and "
                     f"b{j}._requires_grad is {rg!r}")
    fetch = []
    for i, lk in enumerate(leaf_keys):
        fetch.append(f"a{i} = args[{i}]")
        if len(lk) == 5:
            typ, shape, strides, dtype, rg = lk
            conds.append(f"isinstance(a{i}, Tensor)")
            conds.append(f"type(d{i} := a{i}._data) is {bind(typ)}")
            conds.append(f"d{i}.shape == {shape!r}")
            conds.append(f"d{i}.strides == {strides!r}")
            conds.append(f"d{i}.dtype is {bind(dtype)}")
            conds.append(f"a{i}._requires_grad is {rg!r}")
        elif lk[0] == "id":
            conds.append(f"not isinstance(a{i}, Tensor) and id(a{i}) == {lk[1]!r}")
        else:
            conds.append(f"type(a{i}) is {bind(lk[0])} and a{i} == {bind(lk[1])}")
    run = entry.run
    infer = getattr(run, "_infer", None)
    if infer is None or entry.side or grad is not False or run._folds is not None:
        infer = None
    # the inference call checks its constants' arrays by identity, and their shapes when one
    # is another array (NOTE [ Batch-1 inference ]): reading each array's shape here again
    # costs cache misses once its weights have streamed through
    checked = {id(t) for t in getattr(run, "_infer_consts", ())} if infer is not None else ()
    for d, k, t, lay, rg in entry.owned:
        tn = bind(t)
        conds.append(f"{bind(d)}[{k!r}] is {tn} and " +
                     ("" if id(t) in checked else f"{tn}._data.shape == {lay[0]!r} and "
                      f"{tn}._data.dtype is {bind(lay[1])} and ") +
                     f"{tn}._requires_grad is {rg!r}")
    for cell, t, lay in entry.cells:
        tn = bind(t)
        conds.append(f"{bind(cell)}.cell_contents is {tn}" +
                     ("" if id(t) in checked else f" and {tn}._data.shape == {lay[0]!r} and "
                      f"{tn}._data.dtype is {bind(lay[1])}"))
    for d, keys, vals in entry.values:
        dn = bind(d)
        for k, v in zip(keys, vals):
            if v is _MISSING:
                conds.append(f"{k!r} not in {dn}")
            elif v is None or type(v) is bool:
                conds.append(f"{dn}[{k!r}] is {v!r}")
            else:
                # the captured object itself first: ``==`` reads both objects, each a cache
                # miss once a batch-1 call's weights have streamed through (NOTE [ Guard cost ])
                vn = bind(v)
                conds.append(f"((g := {dn}[{k!r}]) is {vn} or (g == {vn} and type(g) is "
                             f"{bind(type(v))}))")
    # subscripts, not .get: a key gone (a deleted attribute) fails the guard by KeyError
    src = "def fast(self, args):\n    if not (" + conds[0] + "):\n        return False\n"
    src += "".join(f"    {line}\n" for line in fetch)
    if infer is not None:
        # NOTE [ Batch-1 inference ] (_functorch/aot_autograd.py): the guard, then the
        # region's generated inference call, from one call of the caller's.  The entry is
        # not bound (entry -> guard -> entry would be a cycle): a region entry's run is never
        # re-assigned after its guard is made (a dynamic instance's only from its first call)
        conds.append("not state.intercept")
        src += "    try:\n        if not (" + "\n                and ".join(conds[1:]) + \
            "):\n            return False\n    except KeyError:\n        return False\n"
        # the inference function's body follows the checks in this function (one frame
        # fewer), its globals beside the guard's where no name is in both; else it is called
        genv, body = infer.__globals__, getattr(run, "infer_src", "")
        if body.startswith("def infer(flat):\n") and \
                not any(k in genv for k in env if not k.startswith("__")):
            env.update((k, v) for k, v in genv.items() if not k.startswith("__"))
            src += "    flat = args\n" + body.split("\n", 1)[1]
        else:
            env["INFER"] = infer
            src += "    return INFER(args)\n"
    else:
        src += "    try:\n        return (" + "\n                and ".join(conds[1:]) + ")\n"
        src += "    except KeyError:\n        return False\n"
    if _log_on("guards"):
        print(f"[ember.compile] guard:\n{src}", file=sys.stderr)
    exec(compile(src, "<ember.compile guard>", "exec"), env)
    return env.pop("fast")  # not left in its own globals: a cycle holding what they bind


def _in_dict(obj, name: str) -> bool:
    """Whether ``obj.<name>`` reads ``obj.__dict__[name]``: it is there, no data descriptor of
    that name is on the class and the class reads attributes as ``object`` does."""
    cls = type(obj)
    if name not in getattr(obj, "__dict__", ()) or \
            cls.__getattribute__ is not object.__getattribute__:
        return False
    for k in cls.__mro__:
        if name in k.__dict__:
            return not hasattr(type(k.__dict__[name]), "__set__")
    return True


class _CodeCache:
    def __init__(self):
        self.entries = {}
        self.warned = False
        self.instances = {}  # exact key -> entry of a dynamic graph's instance (dynamic.py)
        self.dynamic = []    # (general key, dims, DynamicGraph, template entry)


def _limit() -> int:
    return min(config.cache_size_limit, config.recompile_limit)


def _accumulated_limit() -> int:
    return min(config.accumulated_cache_size_limit, config.accumulated_recompile_limit)


def _leaf_key(v):
    if isinstance(v, Tensor):
        d = v._data
        return (type(d), d.shape, d.strides, d.dtype, v._requires_grad)
    if v is None or type(v) in (int, float, bool, str):
        return (type(v), v)
    return ("id", id(v))


def _discover(fn, depth: int = 4):
    """Modules, tensors, plain globals and other objects (optimizers, schedulers) ``fn``
    reaches: itself, ``self``, its globals, closure cells and defaults, the helpers it names
    (``depth`` calls deep) and the class attributes its code names."""
    modules, owned, cells, plain, seen, objects = [], [], [], [], set(), []

    def add(v, where):
        if where is not None and where[0] in ("dict", "cell") and _guardable(v):
            # a number in a closure cell too: a ``nonlocal`` setter changes it (NOTE [ Python
            # values ])
            plain.append((where[1], where[2], v) if where[0] == "dict" else
                         (_Cell(where[1], where[2]), "contents", v))
        elif isinstance(v, Module):
            if id(v) not in seen:
                seen.add(id(v))
                modules.append(v)
            # the name holds this module (``==`` is identity): a re-assigned ``model``
            # recompiles rather than running the old one's graph
            if where is not None and where[0] in ("dict", "cell"):
                plain.append((where[1], where[2], v) if where[0] == "dict" else
                             (_Cell(where[1]), "contents", v))
        elif isinstance(v, Tensor):
            if where is not None:
                (cells if where[0] == "cell" else owned).append((where, v))
        elif isinstance(v, Optimizer):
            for g in v.param_groups:
                for p in g["params"]:
                    owned.append((None, p))
            objects.append(v)
        elif where is not None and (_stateful(v) or isinstance(v, _CONTAINERS) or
                                    _np_random(v)) and id(v) not in seen:
            seen.add(id(v))
            objects.append(v)

    def classes(cls, names):
        # ``Cfg.scale`` / ``type(self).scale``: a user class's plain attributes the code names
        for k in getattr(cls, "__mro__", ()):
            if k.__module__.startswith(("ember.", "builtins")) or issubclass(k, enum.Enum):
                continue
            d = k.__dict__
            for name in names:
                if name in d and _guardable(d[name]):
                    plain.append((d, name, d[name]))

    def visit(f, depth):
        if isinstance(f, Module):
            add(f, None)
            f = type(f).forward
        me = None
        if inspect.ismethod(f):
            me = f.__self__
            if _stateful(me) and not isinstance(me, (Tensor, Optimizer)):
                add(me, ("self",))  # a plain object (a trainer): reached as a global is
            else:
                add(me, None)
                me = None
            f = f.__func__
        f = inspect.unwrap(f) if callable(f) else f
        code = getattr(f, "__code__", None)
        if code is None or id(f) in seen:
            return
        seen.add(id(f))
        if me is not None:  # the attributes it names (``self.model``, ``self.scale``) as globals
            d = vars(me)
            for name in code.co_names:
                if name in d:
                    add(d[name], ("dict", d, name))
            classes(type(me), code.co_names)
        # a mutable default (``def f(x, cfg={...})``) is a container it reaches
        for v in (*(getattr(f, "__defaults__", None) or ()),
                  *(getattr(f, "__kwdefaults__", None) or {}).values()):
            add(v, ("default",))
        g = getattr(f, "__globals__", {})
        for name in _global_names(code):
            v = g.get(name)
            add(v, ("dict", g, name))
            if depth > 0 and inspect.isfunction(v) and not v.__module__.startswith("ember"):
                visit(v, depth - 1)
            if isinstance(v, type):
                classes(v, code.co_names)
            if isinstance(v, types.ModuleType):  # ``config.SCALE``: its plain attributes the
                # code names are guarded as globals are (NOTE [ Python values ])
                d = vars(v)
                for attr in code.co_names:
                    if attr in d and _guardable(d[attr]):
                        plain.append((d, attr, d[attr]))
        for name, cell in zip(code.co_freevars, f.__closure__ or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            add(v, ("cell", cell, name))
            if depth > 0 and inspect.isfunction(v):
                visit(v, depth - 1)
    visit(fn, depth)
    hooks = set()
    while True:
        allmods = []
        for m in modules:
            for sub in m.modules():
                if sub not in allmods:
                    allmods.append(sub)
        # the module hooks a call runs are its code too (NOTE [ Hook guard ]): what they reach
        # (a list an activation is appended to) is checked for side effects as fn's globals are
        new = [h for h in (*_mm._global_forward_pre_hooks.values(),
                           *_mm._global_forward_hooks.values(),
                           *(h for m in allmods for n in ("_forward_pre_hooks", "_forward_hooks")
                             for h in m.__dict__.get(n, {}).values()))
               if id(h) not in hooks]
        if not new:
            break
        for h in new:
            hooks.add(id(h))
            visit(h, depth)
    for m in allmods:  # a user module class's attributes its forward names
        fwd = getattr(type(m).forward, "__code__", None)
        if fwd is not None and not type(m).__module__.startswith("ember."):
            classes(type(m), fwd.co_names)
    visit = None  # the recursive closure refers to itself: a cycle holding what it reached
    return allmods, owned, cells, plain, objects


def _stateful(v) -> bool:
    """An instance whose plain attributes Python code may change (an lr scheduler, a
    counter): not a module, class, function or tensor."""
    return hasattr(v, "__dict__") and not isinstance(v, (type, types.ModuleType, Tensor)) \
        and not callable(getattr(v, "__code__", None)) and not inspect.isroutine(v)


def _object_state(objects) -> list:
    """The plain values of objects ``fn`` reaches, and each optimizer's hyper-parameters:
    a capture that changes them (``scheduler.step()``) has a side effect a replay would not
    repeat."""
    out = []
    for o in objects:
        if isinstance(o, Optimizer):
            out.append([{k: v for k, v in g.items() if k != "params" and
                         (type(v) in _PLAIN or type(v) is tuple)} for g in o.param_groups])
        elif isinstance(o, (list, tuple, collections.deque)):  # an append (a loss history)
            out.append([id(e) for e in o])
        elif isinstance(o, dict):  # OrderedDict and defaultdict too
            out.append([(k, id(v)) for k, v in o.items()])
        elif isinstance(o, (set, frozenset)):
            out.append(set(map(id, o)))
        elif _np_random(o):  # NOTE [ Impure calls ]: its draws by its state
            out.append(_np_state(o))
        else:  # a tensor re-bound too (``state.h = state.h + x``): by identity
            out.append({k: v if _guardable(v) else ("id", id(v)) for k, v in vars(o).items()})
    return out


def _value_guards(allmods, plain) -> list:
    """``(dict, keys, values)`` of the plain-valued module attributes and globals ``fn``
    reaches: a changed flag or size that Python code branched on recompiles."""
    out = []
    for m in allmods:
        # (the tree's count has a guard of its own: NOTE [ Module tree guard ])
        # (tuples too: Conv2d's padding, stride and dilation, which a graph bakes in)
        keys = tuple(k for k, v in m.__dict__.items() if _guardable(v) and
                     k != "training" and k != "_tree_version")
        if keys:
            out.append((m.__dict__, keys, tuple(m.__dict__[k] for k in keys)))
    by_dict = {}
    for d, k, v in plain:
        by_dict.setdefault(id(d), (d, {}))[1][k] = v
    for d, kv in by_dict.values():
        out.append((d, tuple(kv), tuple(d.get(k, _MISSING) for k in kv)))
    return out


# NOTE [ Python values ]
# PyTorch's dynamo specialises the Python numbers a function reads (``torch.tensor(cfg["s"])``,
# ``x * self.scale``, ``torch.tensor([w[0], 2.])``) and guards on them where it read them.
# ember records ops, not bytecode, so it cannot see where a number in the graph came from: the
# graph holds the number itself (a literal is folded, NOTE [ Constant folding ]).  So an entry
# guards on every plain value (None, bool, int, float, str, NumPy scalars, Enum members, tuples
# of them: ``_guardable``) in the containers and objects the function reaches: the dicts (and
# subclasses), lists, tuples, sets, deques and plain objects named by its globals, closure
# cells and default arguments, passed as arguments, or its bound method's ``self``, the
# dicts, lists and objects of the modules it reaches (a library module's ``_private`` ones
# excepted), and those inside them (two levels); for a list its length too, and a list of more
# than ``_GUARD_ITEMS`` numbers as one tuple (compared at C speed).  Numbers in closure cells,
# globals, a Python module's attributes (``config.SCALE``) and a user class's attributes
# (``Cfg.scale``, ``type(self).scale``) the code names are guarded too, in the function and
# the helpers it names up to ``depth`` calls deep (``_discover``), and a tensor the graph holds
# as a constant, read from one of those containers, by identity (``_Ids``).  A changed value
# recompiles, as PyTorch's guard does (a value that keeps changing ends at the cache limit,
# eager with a warning); a value the function changes itself is a side effect, a break.  Not
# guarded: optimizers and lr schedulers (a compiled step reads their hyper-parameters at each
# call), lists of more than ``_LONG_ITEMS`` entries or long lists of anything but numbers (a
# data set's), objects reached only inside a helper deeper than ``depth`` (its globals' plain
# values and containers are guarded: the capture records every user function it ran and its
# globals, ``_ran_values``), containers a function builds or reads through another object's
# method, and values read from anything else (a NumPy array's elements).  Impure calls are
# breaks (NOTE [ Impure calls ]).
_GUARD_ITEMS = 64


class _Cell:
    """A closure cell seen as a mapping of ``"contents"`` (a value guard's container)."""

    __slots__ = ("cell", "name")

    def __init__(self, cell, name: str = "contents"):
        self.cell = cell
        self.name = name  # the variable's name, for a break's reason

    def __getitem__(self, k):
        try:
            return self.cell.cell_contents
        except ValueError:  # emptied
            raise KeyError(k) from None

    def get(self, k, default=None):
        try:
            return self[k]
        except KeyError:
            return default


class _Items:
    """A list (tuple, deque) seen as a mapping of its indices, ``"len"`` and ``"all"`` (the
    whole of a long list as one tuple) (a value guard's container)."""

    __slots__ = ("seq",)

    def __init__(self, seq):
        self.seq = seq

    def __getitem__(self, k):
        seq = self.seq
        if k == "len":
            return len(seq)
        if k == "all":
            return tuple(seq)
        if k < len(seq):
            return seq[k]
        raise KeyError(k)

    def get(self, k, default=None):
        try:
            return self[k]
        except KeyError:
            return default


class _Set:
    """A set seen as a mapping of ``"set"``, its frozen contents (a value guard's container)."""

    __slots__ = ("seq",)

    def __init__(self, seq):
        self.seq = seq

    def __getitem__(self, k):
        return frozenset(self.seq)

    def get(self, k, default=None):
        return frozenset(self.seq)


class _Ids:
    """A container's slots seen by the identity of what they hold: a tensor a graph holds as
    a constant, read from a dict, list or object (``CFG["mask"]``), re-bound between calls."""

    __slots__ = ("seq",)

    def __init__(self, seq):
        self.seq = seq

    def __getitem__(self, k):
        return id(self.seq[k])

    def get(self, k, default=None):
        try:
            return id(self.seq[k])
        except (KeyError, IndexError):
            return default


# what a Python value guard walks into: dicts (and subclasses), lists, tuples, sets, deques
_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
_LONG_ITEMS = 1 << 16  # a longer list is neither guarded nor walked (a data set's)


def _guardable(v) -> bool:
    """A value a graph may bake in and a guard compares by ``==`` and type: None, bool, int,
    float, str, a NumPy scalar, an Enum member, tuples of them."""
    t = type(v)
    return t in _PLAIN or t is tuple and len(v) <= 16 and all(_guardable(e) for e in v) or \
        isinstance(v, (_np.generic, enum.Enum))


_INTERNALS = []


def _module_internals() -> frozenset:
    """The attribute names every Module has (its parameter, buffer and hook dicts)."""
    if not _INTERNALS:
        _INTERNALS.append(frozenset(vars(Module())))
    return _INTERNALS[0]


def _walk(objects, allmods):
    """``(mapping, items)`` of each container and object a function reaches (NOTE [ Python
    values ]), two levels in."""
    from ..optim.lr_scheduler import LRScheduler
    skip = (Module, Tensor, Optimizer, LRScheduler, _Compiled, CompiledStep)
    todo = [(o, 0) for o in objects]
    internals = _module_internals()
    for m in allmods:
        # a user module's ``_private`` containers too; a library module's are its own
        lib = type(m).__module__.startswith("ember.")
        todo += [(v, 1) for k, v in m.__dict__.items() if k not in internals and
                 not (lib and k.startswith("_")) and
                 (isinstance(v, _CONTAINERS) or _stateful(v))]
    seen = set()
    while todo:
        o, depth = todo.pop(0)
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        if isinstance(o, dict):
            d, items = o, list(o.items())
        elif isinstance(o, (list, tuple, collections.deque)):
            d, items = _Items(o), [("len", len(o))] + list(enumerate(o))
        elif isinstance(o, (set, frozenset)):
            d, items = _Set(o), list(o)
            if len(items) <= _LONG_ITEMS and all(map(_guardable, items)):
                yield d, [("set", frozenset(items))], depth
            continue
        elif _stateful(o):
            d, items = vars(o), list(vars(o).items())
        else:
            continue
        if len(items) > _GUARD_ITEMS + 1:
            # a long list of numbers: one guard on all of it (a tuple compared at C speed);
            # anything else long (a data set's list) is neither guarded nor walked
            if type(d) is _Items and len(items) <= _LONG_ITEMS + 1 and \
                    all(_guardable(v) for _, v in items):
                yield d, [("all", tuple(o))], depth
            continue
        yield d, items, depth
        if depth < 2:
            todo += [(v, depth + 1) for _, v in items
                     if not _guardable(v) and (isinstance(v, _CONTAINERS) or _stateful(v))]


def _python_values(objects, allmods) -> list:
    """``(mapping, keys, values)`` of the plain values in the containers and objects a
    function reaches (NOTE [ Python values ])."""
    out = []
    for d, items, _ in _walk(objects, allmods):
        whole = type(d) is _Set or type(d) is _Items and items[0][0] == "all"
        kv = items if whole else [(k, v) for k, v in items if _guardable(v)]
        if kv and len(kv) <= _GUARD_ITEMS:
            out.append((d, tuple(k for k, _ in kv), tuple(v for _, v in kv)))
    return out


_GLOBAL_OPS = frozenset(("LOAD_GLOBAL", "LOAD_NAME"))
_global_names_cache: dict = {}


def _global_names(code) -> tuple:
    """The names ``code`` (and the comprehensions/lambdas inside it) loads as globals.

    ``co_names`` also holds attribute names: a module-level ``for step in range(N):`` loop
    variable would be guarded by a capture whose code calls ``opt.step()`` and recompile every
    iteration (PyTorch guards only the globals a frame loads)."""
    names = _global_names_cache.get(code)
    if names is None:
        import dis
        found = dict.fromkeys(i.argval for i in dis.get_instructions(code)
                              if i.opname in _GLOBAL_OPS)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                found.update(dict.fromkeys(_global_names(c)))
        names = _global_names_cache[code] = tuple(found)
    return names


def _ran_values(ran, values, objects) -> list:
    """Value guards for the globals the user functions a capture ran name (a helper deeper
    than ``_discover``'s walk, a submodule's ``forward``) that the entry does not guard yet: the
    plain ones, and those in the dicts and lists they hold."""
    have = {(id(d), k) for d, keys, _ in values for k in keys}
    known = {id(o) for o in objects}
    plain, more = [], []
    for code, g in ran.items():
        for name in _global_names(code):
            v = g.get(name, _MISSING)
            if v is _MISSING or (id(g), name) in have:
                continue
            if _guardable(v):
                have.add((id(g), name))
                plain.append((g, name, v))
            elif isinstance(v, _CONTAINERS) and id(v) not in known:
                known.add(id(v))
                more.append(v)
    return _value_guards((), plain) + _python_values(more, ())


def _tensor_slots(objects, allmods, consts, owners) -> list:
    """``(_Ids(container), keys, ids)`` of the slots of the containers and objects a function
    reaches that hold a tensor the graph holds as a constant (NOTE [ Python values ])."""
    out = []
    for d, items, _ in _walk(objects, allmods):
        keys = tuple(k for k, v in items if isinstance(v, Tensor) and id(v) in consts and
                     id(v) not in owners)
        if keys:
            seq = d.seq if type(d) is _Items else d
            out.append((_Ids(seq), keys, tuple(id(seq[k]) for k in keys)))
    return out


def _owners(allmods, owned) -> dict:
    """id(tensor) -> (dict, key) where the tensor is found by name."""
    out = {}
    for m in allmods:
        for d in (m._parameters, m._buffers, m.__dict__):
            for k, t in d.items():
                if isinstance(t, Tensor) and id(t) not in out:
                    out[id(t)] = (d, k)
    for where, t in owned:
        if where is not None and id(t) not in out:
            out[id(t)] = (where[1], where[2])
    return out


# what ``torch._logging.set_logs`` turned on (``ember/_logging``): it replaces the environment
# variable's list, as PyTorch's set_logs overrides TORCH_LOGS; None: read the variable
_logs_set = [None]


def _one_index(t, key):
    """``(basic key, dim, index)`` for a key of one integer tensor among ints, slices, None and
    Ellipsis (NOTE [ Tensor indices ]): ``t[basic]`` is a view whose dim ``dim`` the index
    selects from; else None."""
    items = key if type(key) is tuple else (key,)
    pos = None
    for i, e in enumerate(items):
        if isinstance(e, Tensor):
            dt = e.dtype
            if pos is not None or dt.is_floating_point or dt.is_complex or \
                    dt is _dtype_mod.bool_ or dt is _dtype_mod.uint8:  # (uint8: a mask)
                return None
            pos = i
        elif not (e is None or e is Ellipsis or type(e) is int or type(e) is slice):
            return None
    if pos is None or sum(e is Ellipsis for e in items) > 1:
        return None
    consumed = sum(1 for e in items if e is not None and e is not Ellipsis)
    if consumed > t.dim():
        return None  # the plain path raises PyTorch's error
    d = 0
    for e in items[:pos]:
        if e is Ellipsis:
            d += t.dim() - consumed
        elif e is None or type(e) is slice:
            d += 1
    basic = items[:pos] + (slice(None),) + items[pos + 1:]
    return basic, d, items[pos]


def _wrapped(flat, n: int):
    """Indices with the negative ones counted from the end (as ``t[idx]`` reads them)."""
    from ..ops.elementwise import where
    return where(flat < 0, flat + n, flat)


def _log_on(what: str) -> bool:
    if _logs_set[0] is not None:
        return what in _logs_set[0]
    return what in os.environ.get("EMBER_LOGS", os.environ.get("TORCH_LOGS", "")).replace(
        "+", "").split(",")


class _Compiled:
    """``ember.compile(fn)``: the callable that looks its guards up and runs the cached code."""

    def __init__(self, fn, backend, fullgraph: bool, dynamic, code):
        self.fn = fn
        self.backend = backend
        self.compiler = lookup_backend(backend)
        self.fullgraph = fullgraph
        self.dynamic = dynamic
        self.code = code
        self.explained = None  # explain(): the last capture's report
        # entries are keyed by this wrapper too: two closures of one code object (the same
        # lambda made twice over different models) never share a graph
        self._token = next(_TOKENS)
        functools.update_wrapper(self, fn if not hasattr(fn, "forward") else fn.forward,
                                 updated=())
        self._disc = None
        self._pieces = {}  # id(module) -> its compiled region (held: the id stays its own)
        self._last = None  # (epoch, fast guard, entry) of the entry the last call ran
        self._explaining = False
        self._defer = False  # NOTE [ Custom backends and sizes ]

    def __get__(self, obj, objtype=None):
        """``@compile`` on a method (a Module's ``forward`` too) binds ``self`` as a function
        does (torch.compile returns a function): the instance is the first argument, guarded
        as any argument is (a module argument's parameters are inputs, not constants)."""
        if obj is None or not inspect.isfunction(self.fn):
            return self
        return types.MethodType(self, obj)

    def __reduce__(self):
        # a copy or pickle compiles afresh: the cache holds this object's tensors
        return (optimize, (self.fn,), {"backend": self.backend, "fullgraph": self.fullgraph,
                                       "dynamic": self.dynamic})

    def __setstate__(self, kw):
        self.__init__(self.fn, kw["backend"], kw["fullgraph"], kw["dynamic"], self.code)

    def _names(self, leaves):
        """Placeholder names from ``fn``'s parameters, where the arguments are flat."""
        from ..fx.experimental.proxy_tensor import _arg_names
        fn = self.fn.forward if isinstance(self.fn, Module) else self.fn
        names = _arg_names(fn, len(leaves))
        return [f"l_{n}" for n in names] if names else None

    def _guard_key(self, leaves, n_args, kw):
        modes = state.modes
        msig = tuple((type(m), getattr(m, "fast_dtype", None), getattr(m, "_enabled", None))
                     for m in modes) if modes else ()
        allmods = self._disc[0] if self._disc is not None else ()
        return (n_args, kw, state.grad, state.inference, msig,
                tuple(m.training for m in allmods), tuple(_leaf_key(v) for v in leaves),
                _dtype_mod._default_float)

    def __call__(self, *args, **kwargs):
        if _capturing or _disabled[0] or _stance[0] is _FORCE_EAGER:
            # inside a capture: its ops are recorded by the outer one
            if _capturing and not _disabled[0]:
                with _capturing[-1].call(self):  # a piece of its own on later calls
                    return self.fn(*args, **kwargs)
            return self.fn(*args, **kwargs)
        last = self._last  # NOTE [ Guard cost ]: the entry the last call ran, checked in one go
        if last is not None and not kwargs and last[0] == _epoch[0] and \
                (ok := last[1](self, args)) is not False:
            if ok is not True:  # a region's inference call ran inside the guard: its result
                return ok       # (NOTE [ Batch-1 inference ] in _functorch/aot_autograd.py)
            return self._passed(last[2], args)
        if _stance_invalid[0] is not None:  # NOTE [ Stances ]
            raise RuntimeError(_stance_invalid[0])
        if self._disc is None:
            self._disc = _discover(self.fn)
        if kwargs or any(isinstance(a, _NESTED) for a in args):
            leaves, _ = flatten((args, kwargs))
        else:
            leaves = args  # flat already: the common call
        key = (self._token, self._guard_key(leaves, len(args), tuple(kwargs)))
        cache = _CACHE.get(self.code)
        if cache is None:
            cache = _CACHE[self.code] = _CodeCache()
        entry = cache.entries.get(key)
        if entry is None:
            entry = cache.instances.get(key)
            if entry is None and cache.dynamic:
                entry = _dynamic_instance(cache, key, leaves)
        if entry is not None:
            if entry.ok():
                fast = entry.fast  # (guard, the discovery it reads) or None
                if leaves is args and (fast is _MISSING or fast is not None and
                                       fast[1] is not self._disc):
                    guard = _fast_guard(entry, key, self._disc, leaves)
                    fast = entry.fast = None if guard is None else (guard, self._disc)
                self._last = None if fast is None or fast is _MISSING else \
                    (_epoch[0], fast[0], entry)
                return self._run(entry, args, kwargs, leaves)
            reason = ("a submodule, parameter or buffer was replaced, added or deleted, a "
                      "captured tensor re-assigned or changed shape, or a module attribute or "
                      "global it read changed")
            _epoch[0] += 1
            cache.entries.pop(key, None)
            cache.instances.pop(key, None)
            cache.dynamic = [d for d in cache.dynamic if d[3] is not (entry.template or
                                                                      entry)]
        else:
            reason = _what_changed(cache, key)
        # the limit is per compiled function (each compiled instance of one module class is
        # its own, as PyTorch's instances share one graph and never recompile for another
        # instance: the regional-compilation recipe's 64 compiled layers), and all of them
        # together keep at most accumulated_cache_size_limit entries of one code object
        mine = sum(1 for k in cache.entries if k[0] == self._token)
        if mine >= _limit() or len(cache.entries) >= _accumulated_limit():
            if not cache.warned:
                cache.warned = True
                which = "cache_size_limit" if mine >= _limit() else \
                    "accumulated_cache_size_limit"
                name = getattr(self.fn, "__name__", None) or type(self.fn).__name__
                warnings.warn(f"ember.compile: {name} hit config.{which} "
                              f"({_limit() if mine >= _limit() else _accumulated_limit()}) "
                              f"recompiles; last reason: {reason}. It now runs eagerly for "
                              f"new guards.", stacklevel=2)
            return self.fn(*args, **kwargs)
        if _stance[0] is not None and _stance_says_eager(self, cache, reason):
            return self.fn(*args, **kwargs)
        if cache.entries and _log_on("recompiles"):
            print(f"[ember.compile] recompiling {getattr(self.fn, '__name__', 'function')}: "
                  f"{reason}", file=sys.stderr)
        disc = _discover(self.fn)  # the modules reached now (a child replaced: another tree)
        if [id(m) for m in disc[0]] != [id(m) for m in self._disc[0]]:
            # keyed by the new tree's training flags, as the next call's key will be (NOTE
            # [ Module tree guard ]): else that call misses and captures once more
            self._disc = disc
            key = (self._token, self._guard_key(leaves, len(args), tuple(kwargs)))
        # NOTE [ Custom backends and sizes ]: a recompile's graph reaches a user's backend
        # only once it is known not to become a dynamic graph
        self._defer = getattr(self.compiler, "_ember_custom", False) and \
            any(k[0] == self._token for k in cache.entries)
        # NOTE [ Size decisions ]: a capture that may make a size-generic graph tracks sizes
        probe = probe_dims(cache, key, leaves, self.dynamic) if \
            self.dynamic is not False or _marked(leaves) else None
        try:
            with track_sizes(leaves, probe) as ts:
                result, entry = self._capture(args, kwargs, leaves)
        finally:
            self._defer = False
        keep_audit(entry, ts)
        entry.key = key
        cache.entries[key] = entry
        if entry.run is not None and (self.dynamic is not False or _marked(leaves)) and \
                not getattr(getattr(entry.run, "tail", None), "static", False):
            _make_dynamic(cache, key, entry, leaves, self.dynamic, self.compiler)
            if self.dynamic is True and entry.dynamic is None and \
                    not isinstance(entry.run, _WriteBack):  # (its second run would write)
                self._grow(cache, key, entry, args, kwargs)
        deferred = entry.compiled
        if isinstance(deferred, _Deferred):
            deferred.force()  # not made dynamic: the backend gets this size's graph now
            entry.compiled = deferred.target
            if entry.run is deferred:
                entry.run = deferred.target
        return result

    def _passed(self, entry, args):
        """Run ``entry`` for a flat positional call whose fast guard passed."""
        run = entry.run
        if run is not None and not entry.side:  # ``_run``'s common case, inline
            try:
                out = run(*args)
            except _GuardMismatch:
                return self._mismatch(entry, args, {})
            rebuild = entry.rebuild
            return out if rebuild is None else rebuild(out)
        return self._run(entry, args, {}, args)

    def _grow(self, cache, key, entry, args, kwargs) -> None:
        """``dynamic=True``: make the first capture's graph size-generic now, by capturing
        again with the inputs' sizes changed (as ``export`` does for its ``Dim``s) and
        symbolizing the two graphs (NOTE [ dynamic=True ]).  What the second run changes
        (parameters, buffers, gradients, optimizer state, the random stream) is put back."""
        flat, spec = flatten((args, kwargs))
        tensors = [i for i, v in enumerate(flat) if isinstance(v, Tensor) and v.dim()]
        if not tensors or entry.gm is None:
            return
        static = [getattr(flat[i], "_dynamo_static_indices", set()) for i in tensors]
        plans = size_maps([tuple(flat[i].shape) for i in tensors], static)
        allmods, owned, cells, _, objects = self._disc
        allmods = allmods + [m for v in flat if isinstance(v, Module) for m in v.modules()]
        snap_tensors = [t for m in allmods for t in (*m._parameters.values(),
                                                     *m._buffers.values(),
                                                     *m.__dict__.values())
                        if isinstance(t, Tensor)] + [t for _, t in owned] + \
            [t for _, t in cells] + [v for v in flat if isinstance(v, Tensor)]  # an input
        # the plan leaves as it is would be written in place by the second run too
        optimizers = [o for o in objects + flat if isinstance(o, Optimizer)]
        raised = False
        for n, plan in enumerate(plans[:ATTEMPTS]):
            if n == 1 and not raised:
                continue  # the shrunk sizes: only where the grown ones were refused
            moved = list(flat)
            for i, st in zip(tensors, static):
                moved[i] = resize(flat[i], plan, st)
            args2, kwargs2 = unflatten(moved, spec)
            key2 = (self._token, self._guard_key(moved, len(args2), tuple(kwargs2)))
            dims = _changed_dims(key, key2, flat, True)
            if dims is None:
                continue
            rng, explained = _gen_state(), self.explained
            snap = Snapshot(snap_tensors, optimizers)
            try:
                with track_sizes(moved, dims) as ts:  # NOTE [ Size decisions ]
                    _, entry2 = self._capture(args2, kwargs2, moved, lower=False)
                keep_audit(entry2, ts)
            except Exception:  # noqa: BLE001 (the function refuses these sizes)
                raised = True
                continue
            finally:
                snap.restore()    # as if the second run never happened
                _set_gen_state(rng)
                self.explained = explained
            if entry2.run is None:
                continue
            if getattr(entry.gm, "meta_passes", None) is not None:
                # the backend simplified the first graph in place (dead stacks gone): the
                # second the same way, so that the two line up op for op
                from .._functorch.passes import optimize_graph
                optimize_graph(entry2.gm)
            try:
                dg = DynamicGraph(entry.gm, entry2.gm, self.compiler, dims)
            except NotDynamic as e:
                if _log_on("dynamic") or _log_on("recompiles"):
                    print(f"[ember.compile] dynamic=True: sizes {sorted(plan)} stay static: "
                          f"{e}", file=sys.stderr)
                continue
            # a training step's region calls the formulas its capture's backward ran: no fit
            _register_dynamic(cache, key, dims, dg, entry,
                              () if isinstance(entry.run, _Program) else (entry.run,),
                              "dynamic=True: ")
            return

    def _run(self, entry, args, kwargs, leaves):
        """Run an entry whose guards hold."""
        if entry.run is None:  # a graph break: the function runs eagerly, its optimizer
            # steps and the module calls around the break compiled
            with _routed_modules(entry.regions):
                if entry.steps:
                    with routed_steps():
                        return self.fn(*args, **kwargs)
                return self.fn(*args, **kwargs)
        try:
            out = entry.run(*leaves)
        except _GuardMismatch:
            return self._mismatch(entry, args, kwargs)
        for t, delta in entry.side:
            t._data += delta
            _version_counter(t)[0] += 1
        rebuild = entry.rebuild
        return out if rebuild is None else rebuild(out)

    def _mismatch(self, entry, args, kwargs):
        """A program's ``bool(tensor)`` guard failed: this call runs eagerly (nothing the
        program did so far is visible: zero_grad again is the same, random draws were put
        back); past ``_MISMATCH_LIMIT`` the entry runs eagerly for good."""
        prog = entry.run
        if prog.mismatches >= _MISMATCH_LIMIT:
            entry.run = None
            entry.breaks = [BreakReason(_BREAKING_METHODS["__bool__"] + ": its value changed "
                                        f"{prog.mismatches} times", [])]
        if _log_on("recompiles") or _log_on("guards"):
            print("[ember.compile] a bool(tensor) guard failed: this call runs eagerly",
                  file=sys.stderr)
        with _routed_modules(entry.regions):
            if entry.steps:
                with routed_steps():
                    return self.fn(*args, **kwargs)
            return self.fn(*args, **kwargs)

    def _regions(self, cap):
        """The pieces around a capture's breaks (NOTE [ Regions around a break ]): the
        outermost module calls and ``ember.compile``d functions with no break inside (a call
        nested in a clean one is part of it); returns ``(routes, pieces)``: id(module) -> its
        compiled region, and (callee, op names) of each piece for ``explain``."""
        calls = cap.calls
        bad = {id(c) for c, _, broke, _, _ in calls if broke}
        routes, pieces, seen = {}, [], set()
        for callee, parent, broke, ops, span in calls:
            if broke or id(callee) in bad or callee is self.fn or id(callee) in seen:
                continue
            if parent is not None:
                up = calls[parent][0]
                if up is not self.fn and id(up) not in bad:
                    continue  # inside a clean call: that call's region holds it
            seen.add(id(callee))
            if not ops:
                continue  # no ops: nothing to compile
            pieces.append((callee, ops, span))
            if isinstance(callee, Module) and not isinstance(callee, OptimizedModule) and \
                    not _hooked(callee):
                region = self._pieces.get(id(callee))
                if region is None:
                    region = self._pieces[id(callee)] = _Compiled(
                        callee, self.backend, False, self.dynamic, object())
                    counters["stats"]["regions"] += 1
                routes[id(callee)] = region
        return routes, pieces

    def _capture(self, args, kwargs, leaves, lower: bool = True):
        """Run ``fn`` for real under the recorder; build the entry the next calls replay
        (``lower=False``: the graph only, not handed to the backend)."""
        t0 = time.perf_counter()
        allmods, owned, cells, plain, objects = self._disc = _discover(self.fn)
        buffers_before = [(m._buffers, k, t) for m in allmods for k, t in m._buffers.items()]
        trees_before = {id(m): _tree_shape(m) for m in allmods}
        objects = objects + [v for v in leaves if isinstance(v, Optimizer) or
                                       (not isinstance(v, Module) and _stateful(v))]
        objects = objects + _np_streams(objects, allmods)  # NOTE [ Impure calls ]
        objects_before = _object_state(objects)
        for v in leaves:  # a module passed as an argument: its parameters are not constants
            if isinstance(v, Module):
                allmods = allmods + [m for m in v.modules() if m not in allmods]
        owners = _owners(allmods, owned)
        known = [t for m in allmods for t in (*m._parameters.values(), *m._buffers.values(),
                                               *m.__dict__.values())
                 if isinstance(t, Tensor)] + [t for _, t in owned] + [t for _, t in cells]
        versions = [(t, _version_counter(t)[0]) for t in known]
        values_before = _value_guards(allmods, plain)
        python_before = _python_values(objects, allmods)  # NOTE [ Python values ]
        cap = _Capture(self.fullgraph)
        rec = cap.rec = _Recorder(cap)
        # the parameters' gradients (held, so that their ids stay theirs while we look)
        grads = [t._grad for t in known if t._grad is not None]
        fn = self.fn
        _capturing.append(cap)
        hook = _optmod.register_optimizer_step_pre_hook(capture_hook)
        grad_before = state.grad
        training_before = [m.training for m in allmods]
        try:
            with _Patches(rec), routed_steps(), _Impure() as impure:
                # the graph returns the result's containers as plain tuples and dicts: each
                # call makes the namedtuples, dataclasses ... again (``entry.rebuild``)
                held = []
                recording = record(lambda a, k: _held(held, fn(*a, **k)), (args, kwargs),
                                   known=known, recorder=rec, offer=True,
                                   arg_names=self._names(leaves))
        finally:
            hook.remove()
            _capturing.pop()
        recording.result, rebuild, opaque = held
        if opaque is not None:
            cap.brk(f"the function returns a {opaque} object holding tensors: a replay would "
                    "return the captured object itself")
        rec.check_rng("at the end")
        for what, stack in impure.found:  # NOTE [ Impure calls ]
            cap.brk(what, stack)
        if state.grad != grad_before:
            cap.brk("a Python side effect: the function changed grad mode "
                    "(set_grad_enabled(...) as a statement), which a compiled replay would not")
        changed = [m for m, was in zip(allmods, training_before) if m.training != was]
        if changed:  # (a save and restore, ``m.eval(); ...; m.train(was)``, changes nothing)
            cap.brk(f"a Python side effect: the function left {type(changed[0]).__name__}'s "
                    f"training flag {changed[0].training} (m.eval()/m.train() as a statement), "
                    "which a compiled replay would not")
        for cls in dict.fromkeys(rec.custom_functions):
            # its forward's ops were recorded, its own backward would be lost on replays
            cap.brk(f"a custom autograd.Function ({cls.__qualname__}.apply) with inputs that "
                    "require grad: the graph would record its forward's ops, not its backward")
        if _mm._global_backward_hooks or _mm._global_backward_pre_hooks or \
                any(m._backward_hooks or m._backward_pre_hooks for m in allmods):
            # NOTE [ Hook guard ]: the hook runs in eager's backward, which a compiled region's
            # one node does not have
            cap.brk("a module backward hook (register_full_backward_hook or "
                    "register_full_backward_pre_hook): the compiled backward would not run it")
        entry = _Entry()
        entry.rebuild = rebuild
        # an instance of a dynamic graph points at the entry it copies; None: this one (not
        # itself: the self-reference kept the region's buffers until a collection)
        entry.template = None
        entry.dynamic = None
        entry.side = []
        entry.gm = entry.compiled = None
        entry.unsupported = None
        entry.steps = bool(cap.stepped)
        entry.regions, entry.pieces = None, ()
        entry.fast = _MISSING  # the generated guard, made at the first call that checks it
        entry.lifted = ()
        written = rec.written
        bn_counters = {id(m.num_batches_tracked): m for m in allmods
                       if getattr(m, "num_batches_tracked", None) is not None}
        done = set()
        for t, v in versions:
            if id(t) in done:
                continue
            done.add(id(t))
            now = _version_counter(t)[0]
            if now == v or id(t) in written:
                continue
            m = bn_counters.get(id(t))
            if m is not None and m.momentum is not None:
                entry.side.append((t, now - v))  # BatchNorm's counter, bumped in Python
            elif id(t) in cap.stepped:
                continue  # written by a compiled optimizer step, a break already
            else:
                cap.brk("a parameter or buffer was modified outside ops (optimizer.step() or "
                        "a write to .data)")
        grads += [t._grad for t in known if t._grad is not None]  # backward's, too
        grad_ids = {id(g) for g in grads} | {id(g._data) for g in grads}
        owner_of = {}  # a gradient (or its array) -> its parameter, as backward left it
        for t in known:
            if t._grad is not None:
                owner_of[id(t._grad)] = owner_of[id(t._grad._data)] = t
        known_data = {id(t._data): t for t in known}
        for name in recording.fresh_constants:
            t = recording.constants[name]
            if isinstance(t, Tensor) and id(t._data) in known_data and \
                    id(t._data) not in grad_ids:  # a detach()/.data of a parameter
                cap.live[name] = known_data[id(t._data)]
            elif isinstance(t, Tensor) and not _uniform(t) and id(t) not in grad_ids and \
                    id(t._data) not in grad_ids:  # a .grad read is its own break, below
                cap.brk(f"a tensor of shape {tuple(t.shape)} computed outside ops: its values "
                        "would be baked into the graph")
        for name, t in recording.constants.items():
            if isinstance(t, Tensor) and (id(t) in grad_ids or id(t._data) in grad_ids):
                p = owner_of.get(id(t), owner_of.get(id(t._data)))
                if p is None:
                    cap.brk("a parameter's .grad read or written by ops inside the function")
                else:  # NOTE [ Ops after backward ]: a tail may read it
                    cap.grad_consts[name] = p
            if isinstance(t, Tensor) and t.grad_fn is not None:
                cap.brk("a tensor with autograd history made outside the graph (a custom "
                        "autograd.Function, or a tensor from an earlier call)")
        entry.breaks = cap.breaks
        entry.owned = []
        entry.cells = [(w[1], t, (t._data.shape, t._data.dtype)) for w, t in cells]
        entry.values = _value_guards(allmods, plain)
        entry.tree = [(m.__dict__, m.__dict__.get("_tree_version", _MISSING)) for m in allmods]
        entry.hooks = [_epoch[0], _hook_state(entry.tree)]  # NOTE [ Hook guard ]
        # a scheduler's step() is replayed (an event): its and its optimizer's changes are not
        # side effects
        replayed = {id(o) for s in cap.schedulers for o in (s, s.optimizer, *_children(s))}
        for o, a, b in zip(objects, objects_before, _object_state(objects)):
            if a != b and id(o) not in replayed:
                if _np_random(o):  # NOTE [ Impure calls ]
                    cap.brk("an impure call, a numpy.random draw: its values would be frozen "
                            "into the graph")
                    break
                what = "contents" if type(o) in (list, dict) else "attributes"
                cap.brk(f"a Python side effect: the function changed a {type(o).__name__}'s "
                        f"{what} (an append, a counter?), which a compiled replay "
                        "would not")
                break
        for (d, keys, vals), (_, keys2, vals2) in zip(values_before, entry.values):
            if keys != keys2 or vals != vals2:
                changed = [k for k, a, b in zip(keys, vals, vals2) if a != b] or list(keys2)
                what = f"the closure variable {d.name!r} (nonlocal)" if type(d) is _Cell \
                    else f"{changed[0]!r} (a module attribute or global)"
                cap.brk(f"a Python side effect: the function changed {what}, which a compiled "
                        "replay would not")
                break
        python_after = _python_values(objects, allmods)
        if [(id(getattr(d, "seq", d)), k, v) for d, k, v in python_before] != \
                [(id(getattr(d, "seq", d)), k, v) for d, k, v in python_after]:
            if not any(b.reason.startswith("a Python side effect") for b in cap.breaks):
                cap.brk("a Python side effect: the function changed a value in a dict, list "
                        "or object it reaches, which a compiled replay would not")
        elif not cap.breaks:  # an entry that runs eagerly needs no guard on them
            entry.values += python_after
            # a constant tensor read from a container (``CFG["mask"]``): that slot by identity
            consts = {id(t) for t in recording.constants.values() if isinstance(t, Tensor)}
            entry.values += _tensor_slots(objects, allmods, consts, owners)
            entry.values += _ran_values(impure.ran, entry.values, objects)
        if not cap.breaks:
            _detach_outputs(rec, recording)
        program = _program(cap, rec, recording) if not cap.breaks else None
        if program is None and not cap.breaks and (cap.grad_consts or cap.live):
            stack = cap.events[-1][3] if cap.events else None
            if cap.grad_consts:
                cap.brk("a parameter's .grad read or written by ops inside the function (not "
                        "after its backward())", stack)
            else:
                t = cap.live[next(iter(cap.live))]
                cap.brk(f"a tensor of shape {tuple(t.shape)} computed outside ops (a detach() "
                        "of a parameter read by the compiled forward)", stack)
        counters["frames"]["total"] += lower  # a dynamic=True second capture is no frame
        for b in cap.breaks if lower else ():
            counters["graph_break"][b.reason] += 1
        if cap.breaks:
            entry.run = None
            routes, entry.pieces = self._regions(cap)
            entry.regions = routes or None
            if _log_on("breaks") or _log_on("graph_breaks"):
                for b in cap.breaks:
                    print(f"[ember.compile] graph break: {b!r}; the function runs eagerly",
                          file=sys.stderr)
                if entry.pieces:
                    print("[ember.compile] compiled around the breaks: " +
                          ", ".join(_callee_name(p[0]) for p in entry.pieces), file=sys.stderr)
            if self._explaining and entry.pieces:
                consts = dict(recording.constants)
                entry.pieces = [(c, ops, _piece_graph(consts, span, _callee_name(c)))
                                for c, ops, span in entry.pieces]
        else:
            written = None
            if program is None:  # NOTE [ Buffers assigned in forward ]
                entry.lifted, written = _lift_buffers(rec, recording, buffers_before)
            if written:
                # the capture's own buffer assignments, which each call now makes, are no
                # change of the tree: earlier entries (other sizes) stay valid
                ids = {id(d) for d, _ in written}
                for m in allmods:
                    if id(m._buffers) in ids and _tree_shape(m)[1:] == trees_before[id(m)][1:]:
                        if trees_before[id(m)][0] is _MISSING:
                            m.__dict__.pop("_tree_version", None)
                        else:
                            m.__dict__["_tree_version"] = trees_before[id(m)][0]
                entry.tree = [(m.__dict__, m.__dict__.get("_tree_version", _MISSING))
                              for m in allmods]
            for name, t in recording.constants.items():
                if isinstance(t, Tensor) and id(t) in owners:
                    d, k = owners[id(t)]
                    entry.owned.append((d, k, t, (t._data.shape, t._data.dtype),
                                        t._requires_grad))
            gm = entry.gm = recording.graph_module()
            if not lower:
                entry.run = _unlowered
                return recording.result, entry
            counters["frames"]["ok"] += 1
            counters["stats"]["unique_graphs"] += 1
            counters["stats"]["calls_captured"] += sum(1 for n in gm.graph.nodes
                                                       if n.op == "call_function")
            compiler = _stance_backend[0] or self.compiler  # set_stance's force_backend
            example = list(leaves) + [d[k] for d, k, _ in entry.lifted] if written else leaves
            if self._defer and compiler is self.compiler:
                compiled = _Deferred(compiler, gm, example)  # NOTE [ Custom backends and sizes ]
            else:
                compiled = compiler(gm, example)
            entry.compiled = compiled
            entry.unsupported = getattr(gm, "meta_unsupported", None)
            entry.run = compiled if program is None else _Program(compiled, *program)
            if written:
                entry.run = _WriteBack(compiled, entry.lifted, written)
            if _log_on("graph"):
                print(f"[ember.compile] captured graph:\n{gm.code}", file=sys.stderr)
            if _log_on("code") and hasattr(compiled, "forward_src"):
                print(f"[ember.compile] generated code:\n{compiled.forward_src}\n"
                      f"{compiled.backward_src}", file=sys.stderr)
        entry.compile_time = time.perf_counter() - t0
        self.explained = entry
        return recording.result, entry


def _held(held: list, result):
    """``result`` made plain for the graph (``plain_output``), what it gives kept in
    ``held``: the real result, the rebuild, the type of an opaque object holding tensors."""
    plain, rebuild, opaque = plain_output(result)
    held[:] = [result, rebuild, opaque]
    return plain


def _children(sched) -> list:
    """The schedulers a ``SequentialLR``/``ChainedScheduler`` steps, at every depth."""
    out = []
    for c in getattr(sched, "_schedulers", ()):
        out += [c, *_children(c)]
    return out


def _marked(leaves) -> bool:
    """Whether an input carries ``mark_dynamic`` dimensions (dynamic even if dynamic=False)."""
    return any(getattr(t, "_dynamo_dynamic_indices", None) for t in leaves
               if isinstance(t, Tensor))


def _general_key(key, dims: dict):
    """The guard key with the sizes of the dynamic ``dims`` (leaf index -> dims) left out."""
    token, k = key
    leaves = tuple(general_leaf(lk, dims.get(i)) for i, lk in enumerate(k[6]))
    return (token, k[:6] + (leaves,) + k[7:])


def _changed_dims(old, new, leaves, dynamic):
    """Leaf index -> dims whose size differs between two guard keys that differ only there,
    or ``None`` when they differ otherwise or a dim may not be dynamic (sizes 0/1,
    ``mark_static``, ``dynamic=False`` without ``mark_dynamic``)."""
    if old[0] != new[0] or old[1][:6] != new[1][:6] or old[1][7:] != new[1][7:]:
        return None
    ko, kn = old[1][6], new[1][6]
    if len(ko) != len(kn):
        return None
    dims = {}
    for i, (a, b) in enumerate(zip(ko, kn)):
        if a == b:
            continue
        if len(a) != 5 or len(b) != 5 or a[0] != b[0] or a[3:] != b[3:] or \
                len(a[1]) != len(b[1]):
            return None
        ds = {d for d, (x, y) in enumerate(zip(a[1], b[1])) if x != y}
        t = leaves[i]
        marked = getattr(t, "_dynamo_dynamic_indices", set())
        static = getattr(t, "_dynamo_static_indices", set())
        for d in ds:
            if min(a[1][d], b[1][d]) < 2 or d in static or (dynamic is False and
                                                            d not in marked):
                return None
        if general_leaf(a, ds) != general_leaf(b, ds):  # a layout change, not a size
            return None
        dims[i] = ds
    return dims or None


def _make_dynamic(cache, key, entry, leaves, dynamic, compiler) -> None:
    """After a capture at a new size: make the graph size-generic with an earlier version of
    the same code that differs only in sizes (NOTE [ Dynamic compiled graphs ])."""
    for old_key, old in list(cache.entries.items()):
        # (an entry whose guards other than sizes fail now holds another tree's or another
        # parameter's graph: NOTE [ Module tree guard ])
        if old is entry or old.run is None or not old.ok() or _lifts(old) != _lifts(entry):
            continue
        dims = _changed_dims(old_key, key, leaves, dynamic)
        if dims is None or not pair_ok(entry.gm, old.gm):  # NOTE [ Size decisions ]
            continue
        for dk, ddims, _, _ in cache.dynamic:  # dims already dynamic for this code stay so
            if _general_key(key, ddims) == dk:
                for i, ds in ddims.items():
                    dims[i] = dims.get(i, set()) | ds
        try:
            dg = DynamicGraph(old.gm, entry.gm, compiler, dims)
        except NotDynamic as e:
            if _log_on("dynamic") or _log_on("recompiles"):
                print(f"[ember.compile] sizes stay static: {e}", file=sys.stderr)
            return
        if isinstance(entry.compiled, _Deferred) and entry.run is entry.compiled:
            # NOTE [ Custom backends and sizes ]: the size-generic graph, once, for every size
            from ..fx.graph_module import GraphModule
            gm = GraphModule(dict(dg.consts), dg.graph)
            gm.meta_no_fold = True
            dg.fixed = entry.compiled.target = compiler(gm, list(leaves))
        _register_dynamic(cache, key, dims, dg, entry, (old.run, entry.run), "")
        return


def _register_dynamic(cache, key, dims, dg, entry, runs, how: str) -> None:
    """Keep ``dg`` as ``entry``'s size-generic graph for the sizes of ``dims`` and seed its
    region fit with the compiled ``runs`` (NOTE [ Size-generic regions ])."""
    gk = _general_key(key, dims)
    cache.dynamic = [d for d in cache.dynamic if d[0] != gk]
    cache.dynamic.append((gk, dims, dg, entry))
    entry.dynamic = dg
    dg.seed(*runs)
    counters["stats"]["dynamic_graphs"] += 1
    if _log_on("dynamic") or _log_on("recompiles"):
        shown = {i: sorted(ds) for i, ds in dims.items()}
        print(f"[ember.compile] {how}dims {shown} (input: dims) are dynamic from now on",
              file=sys.stderr)


def _dynamic_instance(cache, key, leaves):
    """An entry that runs a dynamic graph at these sizes, or ``None``."""
    for gk, dims, dg, tmpl in cache.dynamic:
        if _general_key(key, dims) != gk or not dg.ok(leaves):
            continue
        entry = _Entry()
        for name in _Entry.__slots__:
            setattr(entry, name, getattr(tmpl, name))
        entry.template = tmpl.template or tmpl
        entry.key = key
        entry.fast = _MISSING
        # a training step's program runs the instance in its place
        holder = copy.copy(tmpl.run) if isinstance(tmpl.run, (_Program, _WriteBack)) else entry
        inst = dg.instances.get(tuple(leaves[i]._data.shape for i in dg.dims))
        if inst is None:
            def first(*leaves, holder=holder, dg=dg):
                out = dg(*leaves)  # replays the graph; the code for this size is made
                holder.run = dg.instances[tuple(leaves[i]._data.shape for i in dg.dims)]
                return out
            inst = first
        holder.run = inst
        if holder is not entry:
            entry.run = holder
        if len(cache.instances) >= config.dynamic_instance_limit:
            cache.instances.pop(next(iter(cache.instances)))  # the oldest size
            _epoch[0] += 1
        cache.instances[key] = entry
        return entry
    return None


def _uniform(t) -> bool:
    """One value everywhere (a zeros/full made inside a library function): safe to bake."""
    a = t._data
    return a.size == 0 or bool((a == a.reshape(-1)[0]).all())


def _what_changed(cache: _CodeCache, key) -> str:
    if not cache.entries:
        return "first call"
    last = list(cache.entries)[-1]
    if last[0] != key[0]:
        return "another closure of the same code (its captured objects differ)"
    last, key = last[1], key[1]
    names = ("number of arguments", "keyword arguments", "grad mode", "inference mode",
             "autocast/modes", "module training flags", "input shapes/dtypes/requires_grad",
             "default dtype")
    diff = [n for n, a, b in zip(names, last, key) if a != b]
    return "guard failed: " + ", ".join(diff or ["inputs"])


_disabled = [0]

# NOTE [ Stances ]: ``torch.compiler.set_stance`` (``ember/compiler``).  ``_stance[0]`` is None
# for "default", else the stance's name.  "force_eager" makes every compiled function call its
# function as it is (checked first, with the capture and disable flags); the others act only
# where a call would capture (a first call or a recompile), as PyTorch's act where dynamo would
# compile a frame: "eager_on_recompile" runs that call eagerly, "fail_on_recompile" raises,
# "eager_then_compile" (and "aot_eager_then_compile") runs a function's first call eagerly
# and captures from its second.  Cached entries run as before under every stance but
# force_eager.  Setting a stance bumps ``_epoch``, so no fast guard skips these checks.  An
# unknown stance is set without complaint and every compiled call then raises PyTorch's
# RuntimeError (``_stance_invalid``: its message), as PyTorch's does.
_FORCE_EAGER = "force_eager"
_STANCES = (None, "force_eager", "eager_on_recompile", "fail_on_recompile",
            "eager_then_compile", "aot_eager_then_compile")
_stance = _utils.stance
_stance_backend = [None]  # force_backend's callable (stance "default" only), else None
_stance_unsafe = [False]  # skip_guard_eval_unsafe: accepted, ember's guards stay on
_stance_invalid = [None]
_ran_eager_first = weakref.WeakSet()  # eager_then_compile: functions whose first call ran


def _stance_says_eager(compiled, cache, reason) -> bool:
    """Whether the current stance runs this capturing call eagerly (raises for
    "fail_on_recompile")."""
    stance = _stance[0]
    if stance == "eager_on_recompile":
        return True
    if stance == "fail_on_recompile":
        code = compiled.code
        where = (f"filename: '{getattr(code, 'co_filename', '?')}', function name: "
                 f"'{getattr(compiled.fn, '__name__', type(compiled.fn).__name__)}', "
                 f"line number: {getattr(code, 'co_firstlineno', '?')}")
        msg = f"Detected recompile when torch.compile stance is 'fail_on_recompile'. {where}"
        if cache.entries:
            msg += f"\n    triggered by the following guard failure(s):\n    - {reason}"
        raise RuntimeError(msg)
    if stance in ("eager_then_compile", "aot_eager_then_compile") and not cache.entries and \
            compiled not in _ran_eager_first:
        _ran_eager_first.add(compiled)
        return True
    return False


def set_stance(stance: str, backend=None, unsafe: bool = False) -> tuple:
    """Set the stance (and ``force_backend``'s compiler) every compiled function reads; returns
    the previous values, for ``torch.compiler.set_stance`` to put back."""
    prev = (_stance[0], _stance_backend[0], _stance_unsafe[0])
    _stance[0] = None if stance == "default" else stance
    _stance_backend[0] = backend
    _stance_unsafe[0] = unsafe
    _stance_invalid[0] = None if _stance[0] in _STANCES else (
        f"invalid torch.compile stance 'DynamoStance(stance={stance!r}, "
        f"skip_guard_eval_unsafe={unsafe!r}, backend=None)'")
    _epoch[0] += 1
    return prev


def is_compiling() -> bool:
    """Whether a capture is running (PyTorch's ``torch.compiler.is_compiling``)."""
    return bool(_capturing)


def disable(fn=None, recursive: bool = True, *, reason: str = None):
    """Run ``fn`` eagerly, and break the graph where a compiled function calls it."""
    if fn is None:
        return functools.partial(disable, recursive=recursive, reason=reason)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _capturing:
            _capturing[-1].brk(f"a function marked ember.compiler.disable ({fn.__name__})")
        _disabled[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _disabled[0] -= 1
    wrapper._ember_disabled = True
    return wrapper


def reset() -> None:
    """Forget every compiled entry (PyTorch's ``torch.compiler.reset``; ``counters`` stay, as
    PyTorch's)."""
    _CACHE.clear()
    _epoch[0] += 1
    if Module.__dict__["__call__"] is _route_call and _routed_modules.table is None:
        Module.__call__ = _CALL_IMPL  # module calls as fast as before any region ran


def _code_of(fn):
    if isinstance(fn, Module):
        return type(fn).forward.__code__
    f = inspect.unwrap(fn.__func__ if inspect.ismethod(fn) else fn)
    return getattr(f, "__code__", f)


def optimize(fn, *, backend="inductor", fullgraph=False, dynamic=None, options=None):
    """The compiled form of ``fn`` (a function, bound method or module's ``__call__``)."""
    opt = optimizer_of(fn)
    if opt is not None and backend in ("inductor", "aot_eager"):
        # NOTE [ Compiled optimizer steps ]
        return CompiledStep(opt, scheduled=not inspect.ismethod(fn))
    if options and options.get("numba"):
        return _WithKernels(fn, backend, fullgraph, dynamic, _code_of(fn))
    return _Compiled(fn, backend, fullgraph, dynamic, _code_of(fn))


class _WithKernels(_Compiled):
    """``options={"numba": True}``: each call runs with the fused LSTM's numba step kernels
    (NOTE [ Step kernels ] in ``ops/rnn.py``) and the other ops' (layer norm, attention's
    softmax: NOTE [ Kernel tables ] in ``ops/_kernels.py``); numba is imported here, not
    before."""

    def __init__(self, fn, backend, fullgraph, dynamic, code):
        from ..ops import rnn, _kernels
        self._switch, self._table = rnn.step_kernels, rnn.numba_kernels()
        self._use, self._ops = _kernels.use, _kernels.numba_table()
        super().__init__(fn, backend, fullgraph, dynamic, code)

    def __call__(self, *args, **kwargs):
        with self._switch(self._table), self._use(self._ops):
            return super().__call__(*args, **kwargs)

    def __reduce__(self):  # a copy keeps the option
        f, args, state = super().__reduce__()
        return functools.partial(f, options={"numba": True}), args, state


class OptimizedModule(Module):
    """``ember.compile(module)``: the module with a compiled ``__call__`` (PyTorch's)."""

    def __init__(self, mod, compiled):
        super().__init__()
        self._orig_mod = mod
        self.__dict__["_compiled"] = compiled

    def __call__(self, *args, **kwargs):
        c = self._compiled
        if kwargs or type(c) is not _Compiled:  # (``_WithKernels`` wraps its calls)
            return self._hooked_call(c, args, kwargs)
        # the compiled function's fast path (NOTE [ Guard cost ]) without its frame: a batch-1
        # call's frames and the objects they touch are cache misses after its weights streamed
        last = c._last
        if last is not None and last[0] == _epoch[0] and \
                not (_capturing or _disabled[0] or _stance[0] is _FORCE_EAGER) and \
                (ok := last[1](c, args)) is not False:
            if ok is not True:  # NOTE [ Batch-1 inference ] (_functorch/aot_autograd.py)
                return ok
            return c._passed(last[2], args)
        return self._hooked_call(c, args, {})

    def _hooked_call(self, c, args, kwargs):
        """A call off the fast path: with hooks on this wrapper (or global ones) they run
        around the compiled call, as Module.__call__ runs them (NOTE [ Hook guard ])."""
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or \
                self._backward_pre_hooks or _hooked_globally():
            try:
                return _CALL_IMPL(self, *args, **kwargs)
            finally:
                # registering a hook bumped the epoch; this keeps the fast path, which does
                # not look at this wrapper's hooks, off until they are gone
                c._last = None
        return c(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            mods = self.__dict__.get("_modules")
            if not mods or "_orig_mod" not in mods:  # half-made (a copy in progress)
                raise
            return getattr(mods["_orig_mod"], name)


def _piece_graph(consts, span, name):
    """A ``GraphModule`` of the nodes a piece's call recorded (``explain``): values from
    outside become placeholders, constants stay ``get_attr``s, values used after it are its
    outputs."""
    from ..fx.graph import Graph
    from ..fx.graph_module import GraphModule
    from ..fx.node import map_arg
    first, last = span
    nodes, n = [], first._next
    while first is not last:
        if n.op not in ("placeholder", "get_attr", "output"):
            nodes.append(n)
        if n is last:
            break
        n = n._next
    inside = set(nodes)
    g = Graph()
    env = {}
    external = []

    def find(a):
        if a not in inside and a not in env and a not in external:
            external.append(a)
        return a
    for n in nodes:
        map_arg((n.args, n.kwargs), find)
    for a in external:
        if a.op != "get_attr":
            env[a] = g.placeholder(a.name)
    for a in external:
        if a.op == "get_attr":
            env[a] = g.get_attr(a.target)
    for n in nodes:
        env[n] = g.node_copy(n, env.__getitem__)
    outs = [n for n in nodes if any(u not in inside for u in n.users)] or nodes[-1:]
    g.output(env[outs[0]] if len(outs) == 1 else tuple(env[n] for n in outs))
    return GraphModule({k: consts[k] for k in {a.target for a in external
                                               if a.op == "get_attr"}}, g, name)


def _callee_name(c) -> str:
    if isinstance(c, Module):
        return type(c).__name__
    return getattr(c, "__name__", type(c).__name__)


class ExplainOutput:
    """What ``explain(fn)(*args)`` found (PyTorch's ``torch._dynamo.explain``)."""

    def __init__(self, entry: _Entry):
        self.graphs = [entry.gm] if entry.gm is not None else []
        self.break_reasons = list(entry.breaks)
        self.graph_break_count = len(self.break_reasons)
        self.ops_per_graph = [[n.target for n in g.graph.nodes if n.op == "call_function"]
                              for g in self.graphs]
        # after a break: the module calls / compiled functions compiled on their own (NOTE [
        # Regions around a break ]), with the names of the ops each ran in this capture
        self.pieces = [_callee_name(p[0]) for p in entry.pieces]
        if entry.gm is None and entry.pieces:
            self.graphs = [p[2] for p in entry.pieces]  # explain's capture made them
            self.ops_per_graph = [[n.target for n in g.graph.nodes if n.op == "call_function"]
                                  for g in self.graphs]
        self.graph_count = len(self.ops_per_graph)
        self.op_count = sum(len(o) for o in self.ops_per_graph)
        self.out_guards = []
        self.compile_times = f"{entry.compile_time:.4f}"
        self.unsupported = entry.unsupported
        # a compiled training step: what runs, in order (NOTE [ Compiled training steps ])
        run = entry.run
        self.program = []
        if isinstance(run, _Program):
            segs = run.tail.run if run.tail is not None else ()
            self.program = ["zero_grad"] * len(run.pre) + ["graph"] + \
                ["bool guard"] * len(run.guards) + \
                [k for i, (kind, _, _) in enumerate(run.post)
                 for k in ((kind, "ops") if i in segs else (kind,))] + \
                ["item"] * len(run.items)

    def __str__(self):
        lines = [f"Graph Count: {self.graph_count}",
                 f"Graph Break Count: {self.graph_break_count}",
                 f"Op Count: {self.op_count}", "Break Reasons:"]
        for i, b in enumerate(self.break_reasons, 1):
            lines.append(f"  Break Reason {i}:")
            lines.append(f"    Reason: {b.reason}")
            for s in b.user_stack[-1:]:
                lines.append(f"    User Stack: {s}")
        lines.append("Ops per Graph:")
        for i, ops in enumerate(self.ops_per_graph, 1):
            lines.append(f"  Ops {i}:")
            lines += [f"    {getattr(o, '__name__', o)}" for o in ops]
        if self.unsupported:
            lines.append(f"Graph runs op by op (not lowered): {self.unsupported}")
        if self.program:
            lines.append("Compiled step: " + " -> ".join(self.program))
        if self.pieces:
            lines.append("Compiled around the breaks: " + ", ".join(self.pieces))
        return "\n".join(lines) + "\n"


def explain(fn, *extra_args, **extra_kwargs):
    """``explain(fn)(*args)``: capture ``fn`` once (not cached) and report graphs and breaks."""
    opt = optimizer_of(fn)
    if opt is not None and inspect.ismethod(fn):
        # ``opt.step`` itself: the step the capture routes to its compiled update, as
        # ``ember.compile(opt.step)`` runs it (the bound method would be eager's)
        fn = functools.wraps(fn)(lambda *a, **k: type(opt).step(opt, *a, **k))

    def inner(*args, **kwargs):
        c = _Compiled(fn, "eager", False, None, object())
        c._explaining = True
        if c._disc is None:
            c._disc = _discover(fn)
        leaves, _ = flatten((args, kwargs))
        _, entry = c._capture(args, kwargs, leaves)
        return ExplainOutput(entry)
    if extra_args or extra_kwargs:
        return inner(*extra_args, **extra_kwargs)
    return inner
