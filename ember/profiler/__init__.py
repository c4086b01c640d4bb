"""``ember.profiler``: time every op of a block (PyTorch's ``torch.profiler``).

Design note.  What it captures: one ``FunctionEvent`` per op call (``aten::mm``, forward and
backward alike), per ``record_function`` range and per ``ProfilerStep#N``, each with its
start, end, thread and (``record_shapes=True``) input shapes.  Where it hooks in: the
recorder (``ember/autograd/profiler.py``) is a ``TorchDispatchMode`` pushed on the mode
stack (NOTE [ Modes ] in ``ember/autograd/modes.py``), so no op has a profiler branch and
a program that is not profiled pays nothing.  Life of one call under ``profile()``:
``Function.apply`` sees the mode flag, ``dispatch`` hands the op to the recorder, which
opens an event (its parent is the innermost open ``record_function`` range), runs the op
and closes the event.  What it produces: ``prof.events()``, ``key_averages()`` (count,
self and total CPU time, per name or per name and shapes) with PyTorch's ``table()``, and
Chrome trace-event JSON (``export_chrome_trace``, ``tensorboard_trace_handler``).
``schedule`` gates recording per ``step()`` as PyTorch's does.  CPU only: ember has no
device kernels to time.  ``profile_memory=True`` counts the bytes of each op's outputs
(PyTorch's allocator also counts frees); stacks are not recorded.
"""
from __future__ import annotations

import enum
import os
import time
import warnings
from typing import Callable, Iterable, Optional

from ..autograd.profiler import _Recorder, record_function
from ..autograd.profiler_util import EventList

__all__ = ["profile", "record_function", "ProfilerActivity", "ProfilerAction", "schedule",
           "tensorboard_trace_handler", "supported_activities", "_KinetoProfile"]


class ProfilerActivity(enum.Enum):
    """What a profiler may record; ember records CPU ops only."""

    CPU = 0
    XPU = 1
    MTIA = 2
    CUDA = 3
    HPU = 4
    PrivateUse1 = 5

    def __repr__(self):
        return f"<ProfilerActivity.{self.name}: {self.value}>"


class ProfilerAction(enum.Enum):
    """What a schedule asks of the profiler at a step."""

    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities() -> set:
    return {ProfilerActivity.CPU}


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0,
             skip_first_wait: int = 0) -> Callable:
    """Step -> action: skip ``skip_first``, then cycles of ``wait`` idle, ``warmup`` and
    ``active`` recorded steps (the last one saves), ``repeat`` times (0: forever)."""
    def schedule_fn(step: int) -> ProfilerAction:
        if step < 0:
            raise AssertionError(f"Step must be non-negative. Got {step}.")
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait != 0:  # the first cycle starts without its wait
            step += wait
        num_steps = wait + warmup + active
        if repeat > 0 and step / num_steps >= repeat:
            return ProfilerAction.NONE
        mod = step % num_steps
        if mod < wait:
            return ProfilerAction.NONE
        if mod < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if mod < num_steps - 1 else ProfilerAction.RECORD_AND_SAVE

    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError(
            f"Invalid profiler schedule arguments. Got wait={wait} (need >= 0), "
            f"warmup={warmup} (need >= 0), active={active} (need > 0), repeat={repeat} "
            f"(need >= 0), skip_first={skip_first} (need >= 0).")
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results",
                      stacklevel=2)
    return schedule_fn


def _default_schedule_fn(_: int) -> ProfilerAction:
    return ProfilerAction.RECORD


def tensorboard_trace_handler(dir_name: str, worker_name: Optional[str] = None,
                              use_gzip: bool = False, use_python_export: bool = False):
    """An ``on_trace_ready`` that writes ``<dir>/<worker>.<ms>.pt.trace.json[.gz]`` (the file
    TensorBoard's profiler plugin reads); needs no TensorBoard."""
    def handler_fn(prof) -> None:
        import socket
        os.makedirs(dir_name, exist_ok=True)
        name = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        path = os.path.join(dir_name, f"{name}.{time.time_ns() // 1_000_000}.pt.trace.json")
        if use_gzip:
            path += ".gz"
        prof.export_chrome_trace(path)
    return handler_fn


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


class _KinetoProfile:
    """Start/stop recording and read the results (PyTorch's base of ``profile``)."""

    def __init__(self, *, activities: Optional[Iterable[ProfilerActivity]] = None,
                 record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False,
                 with_modules: bool = False, experimental_config=None,
                 execution_trace_observer=None, acc_events: bool = False,
                 custom_trace_id_callback=None):
        self.activities = set(activities) if activities else supported_activities()
        self.record_shapes = record_shapes
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self._recorder = None
        self._events = None

    def start(self) -> None:
        self._recorder = _Recorder(self.record_shapes, self.profile_memory)
        self._recorder.start()

    def stop(self) -> None:
        if self._recorder is not None:
            self._recorder.stop()
            self._events = self._recorder.take()

    def events(self) -> EventList:
        """The recorded events (of the last saved cycle under a schedule)."""
        if self._events is None:
            raise AssertionError("Profiler must be initialized before getting events")
        return self._events

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        return self.events().key_averages(group_by_input_shape)

    def export_chrome_trace(self, path: str) -> None:
        """Write Chrome trace-event JSON (``.gz`` paths are gzipped)."""
        if path.endswith(".gz"):
            import gzip
            import json
            from ..autograd.profiler_util import chrome_trace
            with gzip.open(path, "wt") as f:
                json.dump(chrome_trace(self.events()), f)
        else:
            self.events().export_chrome_trace(path)


class profile(_KinetoProfile):
    """Profile the ops of a block, optionally per ``schedule`` of ``step()`` calls
    (``torch.profiler.profile``)."""

    def __init__(self, *, activities: Optional[Iterable[ProfilerActivity]] = None,
                 schedule: Optional[Callable[[int], ProfilerAction]] = None,
                 on_trace_ready: Optional[Callable] = None, record_shapes: bool = False,
                 profile_memory: bool = False, with_stack: bool = False,
                 with_flops: bool = False, with_modules: bool = False,
                 experimental_config=None, execution_trace_observer=None,
                 acc_events: bool = False, use_cuda: Optional[bool] = None,
                 custom_trace_id_callback=None, post_processing_timeout_s=None):
        super().__init__(activities=activities, record_shapes=record_shapes,
                         profile_memory=profile_memory, with_stack=with_stack)
        self.schedule = schedule if schedule is not None else _default_schedule_fn
        self.record_steps = schedule is not None
        self.on_trace_ready = on_trace_ready
        self.step_num = 0
        self.current_action = self.schedule(self.step_num)
        self._step_evt = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self) -> None:
        super().start()
        self._enter_action(self.current_action)

    def stop(self) -> None:
        self._close_step()
        rec = self._recorder
        if rec is None:
            return
        rec.stop()
        self._recorder = None
        if rec.recording:  # a cycle cut short by the end of the block is saved, as PyTorch's
            self._events = rec.take()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
        elif self._events is None:
            self._events = rec.take()

    def step(self) -> None:
        """Signal the end of a training step: the schedule may start or save a cycle."""
        self._close_step()
        prev = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        if prev == ProfilerAction.RECORD_AND_SAVE and self._recorder is not None:
            self._events = self._recorder.take()
            if self.on_trace_ready is not None:
                self.on_trace_ready(self)
        self._enter_action(self.current_action)

    def _enter_action(self, action) -> None:
        rec = self._recorder
        if rec is None:
            return
        rec.recording = action in _RECORDING
        if rec.recording and self.record_steps:
            self._step_evt = rec.begin(f"ProfilerStep#{self.step_num}", None, True)

    def _close_step(self) -> None:
        if self._step_evt is not None and self._recorder is not None:
            self._recorder.end(self._step_evt)
        self._step_evt = None
