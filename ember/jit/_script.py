"""``jit.script`` as PyTorch runs it with ``PYTORCH_JIT=0``: nothing is compiled.

``script(module)`` gives a ``RecursiveScriptModule``: ScriptModule's interface (``code``,
``graph``, ``save``, ``original_name``, scripted submodules) over the original module, whose
Python ``forward`` runs eagerly.  The wrapper shares the original's parameter and buffer
dicts, so ``state_dict``, ``load_state_dict``, ``to`` and the optimizer see one set of
tensors.  ``script(fn)`` gives a ``ScriptFunction`` that calls ``fn``.
"""
from __future__ import annotations

import functools
import inspect
import warnings

from ..nn import Module
from ._jit_internal import Attribute

__all__ = ["ScriptModule", "RecursiveScriptModule", "ScriptFunction", "CompilationUnit",
           "script", "script_method", "interface", "freeze", "optimize_for_inference",
           "run_frozen_optimizations", "NOT_COMPILED"]

NOT_COMPILED = (
    "{what} is not compiled: ember.jit.script runs the Python code eagerly, as PyTorch does with "
    "PYTORCH_JIT=0, so there is no TorchScript {kind}. For a graph use ember.jit.trace or "
    "ember.export.export.")


class NotCompiledGraph:
    """What ``.graph`` of a scripted (not compiled) object is: it says so when printed."""

    def __init__(self, what: str):
        self._msg = NOT_COMPILED.format(what=what, kind="graph")

    def __str__(self):
        return self._msg

    __repr__ = __str__

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(self._msg)


class ScriptModule(Module):
    """Base of scripted and traced modules (``torch.jit.ScriptModule``); subclassing it, as
    PyTorch's legacy API does, gives an ordinary module whose methods run as Python."""

    def __setattr__(self, name, value):
        if isinstance(value, Attribute):  # PyTorch's ScriptModule stores the value itself
            value = value.value
        super().__setattr__(name, value)

    @property
    def original_name(self) -> str:
        return type(self).__name__

    def _not_compiled_what(self) -> str:
        return f"module {self.original_name!r}"

    @property
    def code(self) -> str:
        """A comment saying the module is not compiled (a traced module gives its code)."""
        return "# " + NOT_COMPILED.format(what=self._not_compiled_what(), kind="code")

    @property
    def graph(self):
        return NotCompiledGraph(self._not_compiled_what())

    @property
    def inlined_graph(self):
        return self.graph

    @property
    def code_with_constants(self):
        return self.code, {}

    def save(self, f, **kwargs) -> None:
        """``ember.jit.save(self, f)``."""
        from ._serialization import save
        save(self, f, **kwargs)

    def save_to_buffer(self, _extra_files=None) -> bytes:
        """The archive ``save`` writes, as bytes."""
        import io
        buf = io.BytesIO()
        self.save(buf, _extra_files=_extra_files)
        return buf.getvalue()

    def define(self, src):
        raise RuntimeError("ScriptModule.define compiles TorchScript source, which ember does "
                           "not do (it has no script compiler); write the method in Python")


class RecursiveScriptModule(ScriptModule):
    """``script(module)``'s result: the original module behind ScriptModule's interface."""

    @classmethod
    def _wrap(cls, original: Module) -> "RecursiveScriptModule":
        self = cls.__new__(cls)
        Module.__init__(self)
        d = self.__dict__
        d["_c"] = original
        d["training"] = original.training
        # one set of tensors: the wrapper reads and writes the original's own dicts
        d["_parameters"] = original._parameters
        d["_buffers"] = original._buffers
        d["_non_persistent_buffers_set"] = original._non_persistent_buffers_set
        for name, child in original._modules.items():
            d["_modules"][name] = None if child is None else script_module(child)
        return self

    @property
    def original_name(self) -> str:
        return type(self._c).__name__

    def forward(self, *args, **kwargs):
        return self._c(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            c = self.__dict__.get("_c")
            if c is None:
                raise
            return getattr(c, name)

    def train(self, mode: bool = True):
        super().train(mode)
        self._c.training = mode
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self._c._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, *args, **kwargs):
        self._c._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"original_name={self.original_name}"

    def _child(self, key):
        from ..nn import ModuleDict
        if isinstance(self._c, ModuleDict):
            return self._modules[key]
        children = list(self._modules.values())
        if isinstance(key, slice):
            return children[key]
        return children[key]

    def __getitem__(self, key):
        return self._child(key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        from ..nn import ModuleDict
        if isinstance(self._c, ModuleDict):
            return iter(self._modules)
        return iter(self._modules.values())

    def __contains__(self, key):
        return key in self._modules


def script_module(module: Module) -> ScriptModule:
    return module if isinstance(module, ScriptModule) else RecursiveScriptModule._wrap(module)


class ScriptFunction:
    """``script(fn)``'s result: calls ``fn`` (``torch.jit.ScriptFunction``, not compiled)."""

    def __init__(self, fn):
        self._fn = fn
        self.__wrapped__ = fn
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            if hasattr(fn, attr):
                setattr(self, attr, getattr(fn, attr))

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        # scripted in a class body: a method, bound as the function would be
        return self if obj is None else functools.partial(self._fn, obj)

    @property
    def name(self) -> str:
        return getattr(self._fn, "__name__", type(self._fn).__name__)

    @property
    def qualified_name(self) -> str:
        return f"__torch__.{self.name}"

    @property
    def schema(self) -> str:
        try:
            sig = str(inspect.signature(self._fn))
        except (TypeError, ValueError):
            sig = "(...)"
        return f"{self.name}{sig}"

    @property
    def code(self) -> str:
        return "# " + NOT_COMPILED.format(what=f"function {self.name!r}", kind="code")

    @property
    def graph(self):
        return NotCompiledGraph(f"function {self.name!r}")

    inlined_graph = graph

    def graph_for(self, *args, **kwargs):
        return self.graph

    def save(self, f, **kwargs):
        raise RuntimeError(f"cannot save script function {self.name!r}: it is not compiled "
                           "(ember.jit.script runs Python eagerly) and ember never stores "
                           "Python code in an archive; trace it (ember.jit.trace) and save that")

    def __repr__(self):
        return f"<ember.jit.ScriptFunction object at {hex(id(self))}>"


class CompilationUnit:
    """``torch.jit.CompilationUnit``: compiles TorchScript source, which ember cannot."""

    def __init__(self, lang=None, _frames_up=0):
        if lang is not None:
            self.define(lang)

    def define(self, src, rcb=None, _frames_up=0):
        raise RuntimeError("CompilationUnit compiles TorchScript source, which ember does not "
                           "do (it has no script compiler); write the functions in Python")


def _deprecated(name: str, alt: str = "`torch.compile` or `torch.export`") -> None:
    warnings.warn(f"`torch.jit.{name}` is deprecated. Please switch to {alt}.",
                  DeprecationWarning, stacklevel=3)


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """The scripted form of ``obj`` without compiling (PyTorch's ``torch.jit.script`` under
    ``PYTORCH_JIT=0``): a module gets ScriptModule's interface, a function becomes a
    ``ScriptFunction``; both run their Python code eagerly."""
    _deprecated("script")
    if isinstance(obj, (ScriptModule, ScriptFunction)):
        return obj
    if isinstance(obj, Module):
        return script_module(obj)
    if inspect.isclass(obj):
        if issubclass(obj, Module):
            raise RuntimeError(f"Type '{obj}' cannot be compiled since it inherits from "
                               "nn.Module, pass an instance instead")
        if obj.__module__ == "builtins":
            raise TypeError(f"{obj} is a built-in class")
        return obj  # a TorchScript class: ember runs it as Python
    if isinstance(obj, (dict, list)):
        return obj
    if callable(obj):
        return ScriptFunction(obj)
    raise TypeError(f"{type(obj)} is a built-in class" if type(obj).__module__ == "builtins"
                    else f"cannot script an object of type {type(obj).__name__}")


def script_method(fn):
    """The method itself (``torch.jit.script_method``, for ScriptModule subclasses)."""
    _deprecated("script_method")
    return fn


def interface(obj):
    """The class itself: ember checks no interfaces (``torch.jit.interface``)."""
    if not inspect.isclass(obj):
        raise RuntimeError("interface must be applied to a class")
    warnings.warn("`torch.jit.interface` is deprecated. Please use `torch.compile` instead.",
                  DeprecationWarning, stacklevel=2)
    return obj


def freeze(mod, preserved_attrs=None, optimize_numerics: bool = True):
    """``mod`` itself, checked as PyTorch checks it (``torch.jit.freeze``): ember has no
    TorchScript graph to inline parameters into."""
    warnings.warn("`torch.jit.freeze` is deprecated. Please use `torch.compile` instead.",
                  DeprecationWarning, stacklevel=2)
    if not isinstance(mod, ScriptModule):
        raise RuntimeError("Freezing expects a ScriptModule as input. Please use "
                           "torch.jit.script or torch.jit.trace to script your 'nn.Module'.")
    if mod.training:
        raise RuntimeError("Freezing is currently only implemented for modules in eval mode. "
                           "Please call .eval() on your module before freezing.")
    return mod


def run_frozen_optimizations(mod, optimize_numerics: bool = True, preserved_methods=None):
    """Nothing to do: ember runs no graph optimisations."""
    return None


def optimize_for_inference(mod, other_methods=None):
    """``freeze`` for an eval-mode module (``torch.jit.optimize_for_inference``)."""
    warnings.warn("`torch.jit.optimize_for_inference` is deprecated. Please use `torch.compile` "
                  "instead.", DeprecationWarning, stacklevel=2)
    if not isinstance(mod, ScriptModule):
        raise RuntimeError("optimize_for_inference expects a ScriptModule as input. Please use "
                           "torch.jit.script or torch.jit.trace to script your 'nn.Module'.")
    if mod.training:
        mod = mod.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return freeze(mod)
