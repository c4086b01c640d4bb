"""The mode stack: the one place where a feature sees every op as it runs.

NOTE [ Modes ]
``Function.apply``, the entry of every built-in op, first reads one thread-local flag,
``state.intercept``.  Off (no mode, no Tensor subclass with ``__torch_function__``), the op
runs its fast path and nothing here costs anything.  On, ``dispatch`` offers the op, as
PyTorch does, to: (1) the innermost ``TorchFunctionMode`` (``ember.overrides``), above
autograd, so what its ``__torch_function__(func, types, args, kwargs)`` does is recorded;
it does not see the backward pass's ops (PyTorch's backward formulas are below it); (2) the
innermost ``TorchDispatchMode`` (``ember.utils._python_dispatch``), which sees backward ops
too; ember has no lower op layer, so ``func(*args)`` there runs the same recorded op;
(3) ``__torch_function__`` of Tensor subclasses among the arguments, subclasses first;
(4) the op itself.  A handler runs with its own mode off the stack (a dispatch handler
also without function modes: they had their turn), so ``func(*args)`` goes on to the
next.  ``func`` is an ``Op``: callable, ``__name__`` the ATen-style name (``mul``,
``addmm``); its args are ``Function.apply``'s, which for built-ins may include internal
extras (a result dtype).  A user's ``autograd.Function`` is not an op here: as in PyTorch,
modes see the ops its ``forward`` runs.  Autocast, graph capture, the profiler and
quantization observers are each a mode pushed here; none adds a branch to an op.
"""
from __future__ import annotations

import re

from .._state import state, _State
from .._tensor import Tensor, _disabled_torch_function_impl

__all__ = ["TorchFunctionMode", "TorchDispatchMode", "Op", "dispatch", "current_modes"]


class _Mode:
    """A context manager that pushes itself on this thread's mode stack."""

    def __enter__(self):
        push(self)
        return self

    def __exit__(self, *exc):
        pop(self)


class TorchFunctionMode(_Mode):
    """Sees every op above autograd: override ``__torch_function__`` (``torch.overrides``')."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError


class TorchDispatchMode(_Mode):
    """Sees every op, backward ones too: override ``__torch_dispatch__`` (PyTorch's)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        raise NotImplementedError


def push(mode) -> None:
    state.modes = state.modes + (mode,)
    _sync()


def pop(mode) -> None:
    modes = state.modes
    if mode not in modes:
        raise RuntimeError(f"{type(mode).__name__} is not on the mode stack")
    i = len(modes) - 1 - modes[::-1].index(mode)
    state.modes = modes[:i] + modes[i + 1:]
    _sync()


def current_modes() -> tuple:
    """This thread's active modes, outermost first."""
    return state.modes


def _sync() -> None:
    if state.modes:
        state.intercept = True
    else:  # back to the class default: True only while a __torch_function__ subclass exists
        state.__dict__.pop("intercept", None)


class Op:
    """What a mode sees as ``func``: an op, callable, named as PyTorch's ATen op."""

    __slots__ = ("_fn", "__name__", "__qualname__")

    def __init__(self, fn, name: str):
        self._fn = fn
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    @property
    def overloadpacket(self) -> "Op":
        return self

    def __repr__(self):
        return f"ember.ops.{self.__name__}"


def op_for(cls) -> Op:
    """The (cached) ``Op`` of a Function class: ``MulBackward0`` -> ``mul``."""
    op = cls.__dict__.get("_op")
    if op is None:
        name = (cls.backward_name or cls.__name__).rsplit("::", 1)[-1]
        name = re.sub(r"Backward\d*$", "", name)
        name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
        op = Op(cls.apply, name)
        cls._op = op
    return op


def dispatch(op: Op, args: tuple, kwargs: dict, impl, composite: bool = False):
    """Offer ``op`` to the modes, then to overriding subclasses, else run ``impl`` plainly.

    A ``composite`` (``Tensor.backward``) is offered to function modes only, and ``impl``
    runs with the modes still on, since each op it runs is dispatched on its own.
    """
    modes = state.modes
    if modes:
        func_i = disp_i = None
        for i in range(len(modes) - 1, -1, -1):
            if isinstance(modes[i], TorchFunctionMode):
                if func_i is None and not state.in_backward:
                    func_i = i
            elif disp_i is None and not composite:
                disp_i = i
        if func_i is not None:
            mode = modes[func_i]
            rest = modes[:func_i] + modes[func_i + 1:]
            handler = mode.__torch_function__
        elif disp_i is not None:
            mode = modes[disp_i]
            rest = tuple(m for m in modes[:disp_i] if not isinstance(m, TorchFunctionMode))
            handler = mode.__torch_dispatch__
        if func_i is not None or disp_i is not None:
            state.modes = rest
            _sync()
            try:
                return handler(op, _types(args), args, kwargs)
            finally:
                state.modes = modes
                _sync()
    if _State.intercept and not state.subclass_off:
        overloaded = _overloaded(args, kwargs)
        if overloaded:
            types = tuple(overloaded)
            for t in overloaded:
                ret = t.__torch_function__(op, types, args, kwargs)
                if ret is not NotImplemented:
                    return ret
            raise TypeError(f"no implementation found for '{op.__name__}' on types that "
                            f"implement __torch_function__: {list(types)}")
    if composite:
        return impl(*args, **kwargs)
    # run the op itself: nothing of this dispatch may see it again (``_sync`` restores)
    state.intercept = False
    try:
        return impl(*args, **kwargs)
    finally:
        _sync()


def _types(args) -> tuple:
    return tuple(dict.fromkeys(type(a) for a in _flat(args) if isinstance(a, Tensor)))


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _overloaded(args, kwargs) -> list:
    """Argument types whose ``__torch_function__`` is their own, subclasses first."""
    found = []
    for a in (*_flat(args), *kwargs.values()):
        t = type(a)
        tf = getattr(t, "__torch_function__", None)
        if tf is None or t is Tensor or t in found or \
                getattr(tf, "__func__", tf) is _disabled_torch_function_impl:
            continue
        found.append(t)
    # subclasses before their bases (PyTorch's order)
    found.sort(key=lambda t: -len(t.__mro__))
    return found
