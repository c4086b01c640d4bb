"""``ember.futures``: PyTorch's ``torch.futures`` (``Future``, ``collect_all``, ``wait_all``).

Design note. A ``Future`` is a result that some thread will set later: a value or an
exception guarded by one ``threading.Condition``, plus the callbacks to run once it is set.
It captures nothing from the rest of ember (no devices or streams: ``devices`` is accepted for
PyTorch's signature and kept only to be inherited by ``then``'s children). Life of one call:
``fut.then(cb)`` makes a child Future and registers a callback; when ``set_result`` (or
``set_exception``) completes the parent, waiting threads wake and each callback runs, in
registration order, on the completing thread (or at once if the parent is already done);
the child takes ``cb(parent)``'s return value, or a RuntimeError naming ``cb``'s exception.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, List, Optional, TypeVar

__all__ = ["Future", "collect_all", "wait_all"]

T = TypeVar("T")
S = TypeVar("S")


class Future(Generic[T]):
    """A value (or an exception) to be set once, by any thread; see the module note."""

    def __init__(self, *, devices: Optional[list] = None):
        self._devices = list(devices or [])
        self._cond = threading.Condition()
        self._done = False
        self._value = None
        self._error: Optional[BaseException] = None
        self._callbacks: List[Callable] = []

    def done(self) -> bool:
        """Whether a result or an exception has been set."""
        return self._done

    def wait(self) -> T:
        """Block until the future completes; its value, or its exception raised."""
        with self._cond:
            self._cond.wait_for(lambda: self._done)
        return self.value()

    def value(self) -> T:
        """The value of a completed future (its exception raised); it must be done."""
        if not self._done:
            raise RuntimeError("Future.value() requires a completed Future: call wait() first")
        if self._error is not None:
            raise self._error
        return self._value

    def set_result(self, result: T) -> None:
        """Complete the future with ``result`` and run its callbacks."""
        self._complete(result, None)

    def set_exception(self, result: BaseException) -> None:
        """Complete the future with an exception that ``wait``/``value`` will raise."""
        assert isinstance(result, Exception), (
            f"{result} is of type {type(result)}, not an Exception.")
        self._complete(None, result)

    def _complete(self, value, error) -> None:
        with self._cond:
            if self._done:
                raise RuntimeError("Attempting to mark a completed Future as complete again. "
                                   "Note that a Future can only be marked completed once.")
            self._value, self._error, self._done = value, error, True
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for cb in callbacks:
            cb(self)

    def add_done_callback(self, callback: Callable[["Future[T]"], None]) -> None:
        """Run ``callback(self)`` once the future completes (now, if it already has)."""
        with self._cond:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def then(self, callback: Callable[["Future[T]"], S]) -> "Future[S]":
        """A new Future completed with ``callback(self)`` once this one completes."""
        child: Future = Future(devices=self._devices)

        def run(fut):
            try:
                result = callback(fut)
            except Exception as e:  # PyTorch wraps the callback's error, naming it
                child.set_exception(RuntimeError(
                    f"Got the following error when running the callback: "
                    f"{type(e).__name__}: {e}"))
                return
            child.set_result(result)
        self.add_done_callback(run)
        return child


def collect_all(futures: List[Future]) -> Future[List[Future]]:
    """A Future completed with the list ``futures`` once every one of them is done."""
    result: Future = Future()
    futures = list(futures)
    remaining = [len(futures)]
    lock = threading.Lock()
    if not futures:
        result.set_result([])
        return result

    def one_done(_):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            result.set_result(futures)
    for f in futures:
        f.add_done_callback(one_done)
    return result


def wait_all(futures: List[Future]) -> list:
    """Wait for every future; their values in order (the first exception is raised)."""
    return [f.wait() for f in collect_all(futures).wait()]
