"""The op recorder behind ``ember.profiler`` and PyTorch's legacy ``torch.autograd.profiler``
API (``profile``, ``record_function``); the design note is in ``ember/profiler/__init__.py``."""
from __future__ import annotations

import functools
import itertools
import threading
import time

from .grad_mode import state
from .modes import TorchDispatchMode
from .profiler_util import EventList, FunctionEvent
from .._tensor import Tensor

__all__ = ["profile", "record_function", "emit_nvtx", "emit_itt", "EventList", "FunctionEvent"]

_local = threading.local()  # .recorders: the recorders started on this thread, innermost last
_ids = itertools.count()


def _now_us() -> float:
    return time.perf_counter_ns() / 1000.0


def _recorders() -> list:
    rec = getattr(_local, "recorders", None)
    if rec is None:
        rec = _local.recorders = []
    return rec


def _shape(a):
    if isinstance(a, Tensor):
        return list(a.shape)
    if isinstance(a, (list, tuple)) and a and all(isinstance(x, Tensor) for x in a):
        return [list(x.shape) for x in a]
    return []


class _Recorder(TorchDispatchMode):
    """A dispatch mode that times every op, forward and backward, into ``FunctionEvent``s.

    ``recording`` switches collection on and off without leaving the mode stack (a
    profiler schedule's wait and warm-up steps); nested ``record_function`` ranges are
    parents of the ops run inside them, so each event knows its self time.
    """

    def __init__(self, record_shapes: bool = False, profile_memory: bool = False):
        super().__init__()
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.recording = True
        self.events = []
        self._open = []  # events begun and not yet ended, innermost last
        self._tid = threading.get_ident() % (1 << 31)

    def begin(self, name, shapes=None, user=False) -> FunctionEvent:
        evt = FunctionEvent(next(_ids), name, self._tid, _now_us(), shapes, user,
                            state.in_backward)
        if self._open:
            evt.cpu_parent = self._open[-1]
            self._open[-1].children.append(evt)
        self._open.append(evt)
        return evt

    def end(self, evt) -> None:
        evt.end_us = _now_us()
        if self._open and self._open[-1] is evt:
            self._open.pop()
        elif evt in self._open:
            self._open.remove(evt)
        self.events.append(evt)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.recording:
            return func(*args, **kwargs)
        shapes = None
        if self.record_shapes:  # internal extras (a result dtype) are not inputs
            shapes = [_shape(a) for a in args if isinstance(a, (Tensor, int, float, list,
                                                                tuple, bool))]
        evt = self.begin("aten::" + func.__name__, shapes)
        try:
            out = func(*args, **kwargs)
        finally:
            self.end(evt)
        if self.profile_memory:  # what the op allocated: its outputs' bytes
            evt.own_memory = sum(o._data.nbytes for o in (out if isinstance(out, tuple)
                                                          else (out,))
                                 if isinstance(o, Tensor))
        return out

    def start(self) -> None:
        _recorders().append(self)
        self.__enter__()

    def stop(self) -> None:
        self.__exit__(None, None, None)
        rec = _recorders()
        if self in rec:
            rec.remove(self)

    def take(self) -> EventList:
        """The finished events, in start order, and a fresh list for the next ones."""
        done, self.events = self.events, []
        done.sort(key=lambda e: e.start_us)
        return EventList(done)


class record_function:
    """Label a block (or a decorated function) as one range in the profile
    (``torch.profiler.record_function``); nothing is recorded when no profiler runs."""

    def __init__(self, name: str, args=None):
        self.name = name
        self.args = args
        self._open = []

    def __enter__(self):
        self._open = [(r, r.begin(self.name, None, True)) for r in _recorders() if r.recording]
        return self

    def __exit__(self, *exc):
        for r, evt in self._open:
            r.end(evt)
        self._open = []
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            with record_function(self.name, self.args):
                return fn(*a, **kw)
        return wrapper


class profile:
    """PyTorch's legacy profiler (``torch.autograd.profiler.profile``): records every op
    run inside the block; ``key_averages().table()``, ``export_chrome_trace(path)``."""

    def __init__(self, enabled: bool = True, *, use_cuda: bool = False, use_device=None,
                 record_shapes: bool = False, with_flops: bool = False,
                 profile_memory: bool = False, with_stack: bool = False,
                 with_modules: bool = False, use_kineto: bool = False, use_cpu: bool = True,
                 experimental_config=None, acc_events: bool = False,
                 custom_trace_id_callback=None):
        self.enabled = enabled
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.function_events = None
        self._recorder = None

    def __enter__(self):
        if self.enabled:
            if self._recorder is not None:
                raise RuntimeError("Profiler context manager is not reentrant")
            self._recorder = _Recorder(self.record_shapes, self.profile_memory)
            self._recorder.start()
        return self

    def __exit__(self, *exc):
        if self._recorder is not None:
            self._recorder.stop()
            self.function_events = self._recorder.take()
            self._recorder = None
        return False

    def _check_finished(self) -> EventList:
        if self.function_events is None:
            raise RuntimeError("Profiler didn't finish running")
        return self.function_events

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        return self._check_finished().key_averages(group_by_input_shape)

    def total_average(self):
        return self._check_finished().total_average()

    def table(self, sort_by=None, row_limit: int = 100, max_src_column_width: int = 75,
              max_name_column_width: int = 55, max_shapes_column_width: int = 80, header=None,
              top_level_events_only: bool = False) -> str:
        return self._check_finished().table(
            sort_by=sort_by, row_limit=row_limit, max_name_column_width=max_name_column_width,
            max_shapes_column_width=max_shapes_column_width, header=header,
            top_level_events_only=top_level_events_only)

    def export_chrome_trace(self, path: str) -> None:
        self._check_finished().export_chrome_trace(path)

    @property
    def self_cpu_time_total(self) -> float:
        return self._check_finished().self_cpu_time_total

    def __str__(self):
        return self.table()


class emit_nvtx:
    """PyTorch's NVTX range emitter for the CUDA profiler: ember has no GPU tools to feed,
    so the block runs unchanged (``torch.autograd.profiler.emit_nvtx``)."""

    def __init__(self, enabled: bool = True, record_shapes: bool = False):
        self.enabled = enabled
        self.record_shapes = record_shapes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class emit_itt(emit_nvtx):
    """PyTorch's Intel ITT range emitter; as ``emit_nvtx``, a block that runs unchanged."""
