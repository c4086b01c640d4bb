"""Grad modes: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

Thread-local, as in PyTorch; each a context manager and a decorator.  Entered at every eager
optimizer step and inference call, so each is a slotted object whose ``__enter__``/``__exit__``
only save (in the object: nested modes unwind) and restore the state.
"""
from __future__ import annotations

from .._contextlib import _DecoratorContextManager
from .._state import state


def is_grad_enabled() -> bool:
    """Whether ops record the autograd graph in this thread."""
    return state.grad


def is_inference_mode_enabled() -> bool:
    return state.inference


class _Mode(type):
    """``M(mode)`` in one frame (no ``__new__``/``__init__``, unless a subclass has its own
    ``__init__``); a bare ``@M`` or ``orig_func=`` decorates."""

    def __call__(cls, mode=True, orig_func=None, _new=object.__new__):
        if orig_func is not None or (mode is not True and mode is not False and callable(mode)):
            return cls()(mode if orig_func is None else orig_func)  # (PyTorch's orig_func=)
        if cls.__init__ is not _GradMode.__init__:  # a user's subclass: its __init__ runs
            return type.__call__(cls) if mode is True else type.__call__(cls, mode)
        self = _new(cls)
        self.mode = mode
        return self


class _GradMode(_DecoratorContextManager, metaclass=_Mode):
    __slots__ = ("mode", "prev")
    grad = False  # the grad mode inside

    def __init__(self, mode=True):
        self.mode = mode

    def __enter__(self):
        self.prev = state.grad
        state.grad = self.grad

    def __exit__(self, exc_type, exc_value, traceback):
        state.grad = self.prev

    def clone(self):
        return self.__class__()


class no_grad(_GradMode):
    """Disable graph recording: results of ops have ``requires_grad=False``."""
    __slots__ = ()


class enable_grad(_GradMode):
    """Re-enable graph recording inside ``no_grad``."""
    __slots__ = ()
    grad = True


class inference_mode(_GradMode):
    """``no_grad`` that also marks new tensors as inference tensors (never usable in autograd);
    ``inference_mode(False)``: grad mode on and inference mode off, as PyTorch's."""
    __slots__ = ()

    def __enter__(self):
        self.prev = (state.grad, state.inference)
        state.grad = off = not self.mode
        state.inference = not off

    def __exit__(self, exc_type, exc_value, traceback):
        state.grad, state.inference = self.prev

    def clone(self):
        return self.__class__(self.mode)


class set_grad_enabled(_DecoratorContextManager):
    """Set grad mode on or off; takes effect at once, like PyTorch, and undoes on exit."""
    __slots__ = ("mode", "prev")

    def __init__(self, mode: bool):
        self.prev = state.grad
        self.mode = bool(mode)
        state.grad = self.mode

    def __call__(self, fn):
        state.grad = self.prev  # as a decorator, it only applies inside ``fn``
        return super().__call__(fn)

    def __enter__(self):
        state.grad = self.mode  # (again: the object may be entered a second time, as PyTorch's)

    __exit__, clone = _GradMode.__exit__, inference_mode.clone
