"""Grad modes: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``.

The state is thread-local, as in PyTorch: a mode entered in one thread does not
leak into another.  Each is a context manager and a decorator.
"""
from __future__ import annotations

from .._contextlib import _DecoratorContextManager, _NoParamDecoratorContextManager
from .._state import state


def is_grad_enabled() -> bool:
    """Whether ops record the autograd graph in this thread."""
    return state.grad


def is_inference_mode_enabled() -> bool:
    return state.inference


class no_grad(_NoParamDecoratorContextManager):
    """Disable graph recording: results of ops have ``requires_grad=False``."""

    def __enter__(self):
        self.prev = state.grad
        state.grad = False

    def __exit__(self, *exc):
        state.grad = self.prev


class enable_grad(_NoParamDecoratorContextManager):
    """Re-enable graph recording inside ``no_grad``."""

    def __enter__(self):
        self.prev = state.grad
        state.grad = True

    def __exit__(self, *exc):
        state.grad = self.prev


class set_grad_enabled(_DecoratorContextManager):
    """Set grad mode on or off; takes effect at once, like PyTorch, and undoes on exit."""

    def __init__(self, mode: bool):
        self.prev = state.grad
        self.mode = bool(mode)
        state.grad = self.mode

    def __call__(self, fn):
        state.grad = self.prev  # as a decorator, it only applies inside ``fn``
        return super().__call__(fn)

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        state.grad = self.prev

    def clone(self):
        return self.__class__(self.mode)


class inference_mode(_DecoratorContextManager):
    """``no_grad`` that also marks new tensors as inference tensors (never usable in autograd)."""

    def __new__(cls, mode=True):
        if callable(mode):  # bare ``@inference_mode``
            return cls()(mode)
        return object.__new__(cls)

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self.prev = (state.grad, state.inference)
        if self.mode:
            state.grad = False
            state.inference = True
        else:  # like PyTorch's InferenceMode(false): grad mode on, inference off
            state.grad = True
            state.inference = False

    def __exit__(self, *exc):
        state.grad, state.inference = self.prev

    def clone(self):
        return self.__class__(self.mode)
