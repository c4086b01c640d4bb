"""The TorchScript annotations real code calls at import and run time (``torch._jit_internal``).

ember compiles nothing, so each marker records what PyTorch would record (the
``_torchscript_modifier`` attribute) and otherwise hands its argument back unchanged.
"""
from __future__ import annotations

import collections
import enum
import threading
import typing
import warnings
from typing import Final  # noqa: F401  (torch.jit.Final is typing.Final)

__all__ = ["FunctionModifiers", "ignore", "unused", "export", "is_scripting", "is_tracing",
           "Final", "annotate", "isinstance", "fork", "wait", "script_if_tracing",
           "_overload", "_overload_method", "get_modifier", "should_drop", "Error",
           "TracerWarning", "ScriptWarning", "TracingCheckError", "Attribute"]

_builtin_isinstance = isinstance


class FunctionModifiers(enum.Enum):
    """What a TorchScript marker asks of the compiler (``torch._jit_internal``)."""

    UNUSED = "unused (ignored and replaced with raising of an exception)"
    IGNORE = "ignore (leave as a call to Python, cannot be torch.jit.save'd)"
    EXPORT = "export (compile this function even if nothing calls it)"
    DEFAULT = "default (compile if called from a exported function / forward)"
    COPY_TO_SCRIPT_WRAPPER = ("if this method is not scripted, copy the python method onto "
                              "the scripted model")
    _DROP = "_drop (function is fully ignored, declaration can be unscriptable)"


class Error(Exception):
    """An error raised from inside a TorchScript program (``torch.jit.Error``)."""


class TracerWarning(Warning):
    """A trace baked a Python value into the graph (``torch.jit.TracerWarning``)."""

    @staticmethod
    def ignore_lib_warnings():
        # PyTorch filters the warnings its own library code raises while tracing; ember's
        # ops raise none, so there is nothing to filter
        pass


class ScriptWarning(Warning):
    """``torch.jit.ScriptWarning``."""


class TracingCheckError(Exception):
    """``check_trace`` found the trace's outputs or graph differing from the Python code's."""

    def __init__(self, graph_diff_error, tensor_compare_error, extra_msg=None):
        self.message = "Tracing failed sanity checks!\n"
        if extra_msg is not None:
            self.message += extra_msg + "\n"
        if graph_diff_error is not None:
            self.message += "ERROR: Graphs differed across invocations!\n"
            self.message += graph_diff_error + "\n"
        if tensor_compare_error is not None:
            self.message += ("ERROR: Tensor-valued Constant nodes differed in value across "
                             "invocations. This often indicates that the tracer has encountered "
                             "untraceable code.\n")
            self.message += tensor_compare_error + "\n"
        super().__init__(self.message)


def get_modifier(fn):
    """The ``FunctionModifiers`` a marker put on ``fn``, or None."""
    return getattr(fn, "_torchscript_modifier", None)


def should_drop(fn) -> bool:
    """Whether the compiler would replace ``fn`` with a raise (``@unused``, ``@ignore(True)``)."""
    attr = get_modifier(fn)
    return attr is FunctionModifiers.UNUSED or attr is FunctionModifiers._DROP


def export(fn):
    """Mark a method to be compiled even if forward does not call it (``torch.jit.export``)."""
    fn._torchscript_modifier = FunctionModifiers.EXPORT
    return fn


def unused(fn):
    """Mark a function the compiler replaces with a raise (``torch.jit.unused``)."""
    if _builtin_isinstance(fn, property):
        prop = fn
        for f in (prop.fget, prop.fset):
            if f is not None:
                f._torchscript_modifier = FunctionModifiers.UNUSED
        return prop
    fn._torchscript_modifier = FunctionModifiers.UNUSED
    return fn


def ignore(drop=False, **kwargs):
    """Leave a function as a Python call (``torch.jit.ignore``); ``drop=True`` is ``unused``."""
    if callable(drop):  # used bare: @ignore
        drop._torchscript_modifier = FunctionModifiers.IGNORE
        return drop
    if not _builtin_isinstance(drop, bool):
        raise RuntimeError("Argument to @torch.jit.ignore must be a bool or a function but got "
                           f"{drop}")
    drop_on_export = kwargs.pop("drop_on_export", None)
    if drop_on_export:
        warnings.warn("ignore(drop_on_export=True) has been deprecated. TorchScript will now "
                      "drop the function call on compilation. Use torch.jit.unused now. {}",
                      FutureWarning, stacklevel=2)
        drop = drop_on_export
    elif drop:
        warnings.warn("ignore(True) has been deprecated. TorchScript will now drop the function "
                      "call on compilation. Use torch.jit.unused now. {}", FutureWarning,
                      stacklevel=2)

    def decorator(fn):
        fn._torchscript_modifier = (FunctionModifiers.UNUSED if drop
                                    else FunctionModifiers.IGNORE)
        return fn
    return decorator


def _copy_to_script_wrapper(fn):
    fn._torchscript_modifier = FunctionModifiers.COPY_TO_SCRIPT_WRAPPER
    return fn


def _drop(fn):
    fn._torchscript_modifier = FunctionModifiers._DROP
    return fn


# one flag per thread: a trace on one thread does not make another thread's code "tracing"
_tracing = threading.local()


def is_scripting() -> bool:
    """False: ember never compiles Python into TorchScript (``torch.jit.is_scripting``)."""
    return False


def is_tracing() -> bool:
    """Whether ``jit.trace`` is recording on this thread (``torch.jit.is_tracing``)."""
    return getattr(_tracing, "depth", 0) > 0


def annotate(the_type, the_value):
    """``the_value``: a type hint for the script compiler (``torch.jit.annotate``)."""
    return the_value


class Attribute(collections.namedtuple("Attribute", ["value", "type"])):
    """A ``value`` with its TorchScript type (``torch.jit.Attribute``); a ``ScriptModule``
    stores the value itself when one is assigned to it."""

    __slots__ = ()


def script_if_tracing(fn):
    """``fn`` itself: ember runs it as Python whether tracing or not
    (``torch.jit.script_if_tracing``)."""
    return fn


_overloads: dict = {}


def _overload(func):
    """Record a typed overload declaration (``torch.jit._overload``); the last definition
    under the same name is the one Python calls."""
    _overloads.setdefault(getattr(func, "__qualname__", repr(func)), []).append(func)
    return func


def _overload_method(func):
    """``_overload`` for methods (``torch.jit._overload_method``)."""
    return _overload(func)


def _isinstance_of(obj, target_type) -> bool:
    origin = typing.get_origin(target_type)
    if origin is None:
        if target_type is typing.Any:
            return True
        if target_type is None or target_type is type(None):
            return obj is None
        return _builtin_isinstance(obj, target_type)
    args = typing.get_args(target_type)
    if origin is typing.Union or getattr(origin, "__name__", "") == "UnionType":
        return any(_isinstance_of(obj, a) for a in args)
    if origin in (list, typing.List):
        return _builtin_isinstance(obj, list) and (
            not args or all(_isinstance_of(x, args[0]) for x in obj))
    if origin in (tuple, typing.Tuple):
        if not _builtin_isinstance(obj, tuple):
            return False
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_isinstance_of(x, args[0]) for x in obj)
        return len(args) == len(obj) and all(_isinstance_of(x, a) for x, a in zip(obj, args))
    if origin in (dict, typing.Dict):
        return _builtin_isinstance(obj, dict) and (not args or all(
            _isinstance_of(k, args[0]) and _isinstance_of(v, args[1]) for k, v in obj.items()))
    return _builtin_isinstance(obj, origin)


def isinstance(obj, target_type) -> bool:
    """``isinstance`` that also checks container element types such as ``List[Tensor]``
    (``torch.jit.isinstance``)."""
    if target_type in (list, dict, tuple, typing.List, typing.Dict, typing.Tuple):
        name = getattr(target_type, "_name", None) or target_type.__name__
        if name.endswith("ict"):
            raise RuntimeError(f"Attempted to use {name} without contained types. Please add "
                               f"contained type, e.g. {name}[int, int]")
        raise RuntimeError(f"Attempted to use {name} without a contained type. Please add a "
                           f"contained type, e.g. {name}[int]")
    if typing.get_origin(target_type) in (list, dict, tuple) and \
            _builtin_isinstance(obj, (list, dict, tuple)) and not obj:
        warnings.warn("The inner type of a container is lost when calling torch.jit.isinstance "
                      "in eager mode. For example, List[int] would become list and therefore "
                      "falsely return True for List[float] or List[str].", stacklevel=2)
    return _isinstance_of(obj, target_type)


def fork(func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` and return a completed ``Future`` holding its result
    (``torch.jit.fork``; outside TorchScript PyTorch also runs it at once)."""
    warnings.warn("`torch.jit.fork` is deprecated. Please use `torch.compile` instead.",
                  DeprecationWarning, stacklevel=2)
    from ..futures import Future
    fut = Future()
    fut.set_result(func(*args, **kwargs))  # an exception propagates here, as in PyTorch
    return fut


def wait(future):
    """The value of a ``fork``'s Future (``torch.jit.wait``)."""
    warnings.warn("`torch.jit.wait` is deprecated. Please use `torch.compile` instead.",
                  DeprecationWarning, stacklevel=2)
    return future.wait()
