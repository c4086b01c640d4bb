"""``Tracer`` and ``symbolic_trace``: run a module's ``forward`` on ``Proxy`` values and
record what it does as a ``Graph`` (PyTorch's ``torch.fx._symbolic_trace``).

While tracing, ``Module.__call__`` and ``Module.__getattr__`` are patched (leaf modules
become ``call_module`` nodes, parameters ``get_attr`` nodes), and so are the functions of
ember's public namespaces, ``math`` and whatever ``wrap`` registered: called with a proxy
among their arguments they record a ``call_function`` node instead of running.  Everything
is restored when tracing ends, also on error.
"""
from __future__ import annotations

import builtins
import functools
import inspect
import math
import operator
import types

from .graph import Graph
from .graph_module import GraphModule
from .node import Node, map_aggregate
from . import proxy as _proxy
from .proxy import Proxy, proxy_dispatching

__all__ = ["Tracer", "symbolic_trace", "wrap"]

_wrapped = []  # (globals dict, name) registered by ``wrap`` at module scope


def wrap(fn_or_name):
    """Record calls of this module-level function as one node instead of tracing into it
    (call at module scope, as PyTorch's ``torch.fx.wrap``)."""
    caller = inspect.currentframe().f_back
    if caller.f_code.co_name != "<module>":
        raise NotImplementedError("wrap must be called at the top level of a module")
    name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
    _wrapped.append((caller.f_globals, name))
    return fn_or_name


class _Patcher:
    """Set attributes for the duration of a trace and put every one back afterwards."""

    def __init__(self):
        self._undo = []

    def set(self, obj, name, value, is_dict=False):
        if is_dict:
            self._undo.append((obj, name, obj.get(name, _MISSING), True))
            obj[name] = value
        else:
            self._undo.append((obj, name, obj.__dict__.get(name, _MISSING), False))
            setattr(obj, name, value)

    def restore(self):
        for obj, name, old, is_dict in reversed(self._undo):
            if is_dict:
                if old is _MISSING:
                    obj.pop(name, None)
                else:
                    obj[name] = old
            elif old is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, old)
        self._undo.clear()


_MISSING = object()


class Tracer:
    """Turns a module or function into a ``Graph`` by running it on proxies."""

    def __init__(self, autowrap_modules=(math,), autowrap_functions=(),
                 param_shapes_constant: bool = False):
        self.autowrap_functions = tuple(autowrap_functions)
        self.param_shapes_constant = param_shapes_constant
        self.graph = None
        self.root = None

    # ---- what becomes a node ----------------------------------------------------------------
    def is_leaf_module(self, m, module_qualified_name: str) -> bool:
        """Modules of ``ember.nn`` (but containers) are recorded, not traced into."""
        from ..nn import Sequential
        return (m.__module__.startswith(("ember.nn", "torch.nn")) and
                not isinstance(m, Sequential))

    def path_of_module(self, mod) -> str:
        name = self._module_names.get(id(mod))
        if name is None:
            raise NameError("module is not installed as a submodule")
        return name

    def call_module(self, m, forward, args, kwargs):
        qual = self.path_of_module(m)
        if not self.is_leaf_module(m, qual):
            self._patch_globals(getattr(type(m).forward, "__globals__", None))
            return forward(*args, **kwargs)
        return self.create_proxy("call_module", qual, args, kwargs)

    def getattr(self, attr: str, attr_val, parameter_proxy_cache: dict):
        """A parameter read inside ``forward`` becomes a ``get_attr`` proxy."""
        from ..nn import Parameter
        if isinstance(attr_val, Parameter):
            name = self._tensor_names.get(id(attr_val))
            if name is not None:
                if name not in parameter_proxy_cache:
                    parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
                return parameter_proxy_cache[name]
        return attr_val

    # ---- building ---------------------------------------------------------------------------
    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None) -> Node:
        return self.graph.create_node(kind, target, args, kwargs, name, type_expr)

    def proxy(self, node: Node) -> Proxy:
        return Proxy(node, self)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                     proxy_factory_fn=None) -> Proxy:
        node = self.create_node(kind, target, self.create_arg(args), self.create_arg(kwargs),
                                name, type_expr)
        return self.proxy(node) if proxy_factory_fn is None else proxy_factory_fn(node)

    def create_arg(self, a):
        """A node argument for ``a``: proxies become their nodes, tensors ``get_attr`` nodes."""
        from .._tensor import Tensor
        from ..nn import Module
        if isinstance(a, Proxy):
            return a.node
        if isinstance(a, Tensor):
            name = self._tensor_names.get(id(a))
            if name is None:  # a constant made outside forward: kept on the root, as PyTorch
                i = 0
                while hasattr(self.root, f"_tensor_constant{i}"):
                    i += 1
                name = f"_tensor_constant{i}"
                setattr(self.root, name, a)
                self._tensor_names[id(a)] = name
            return self.create_node("get_attr", name, (), {})
        if isinstance(a, Module):
            raise NotImplementedError(f"argument of type: {type(a)}")
        if isinstance(a, tuple):
            items = tuple(self.create_arg(e) for e in a)
            return type(a)(*items) if hasattr(a, "_fields") else items
        if isinstance(a, list):
            return [self.create_arg(e) for e in a]
        if isinstance(a, dict):
            return {k: self.create_arg(v) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(self.create_arg(a.start), self.create_arg(a.stop),
                         self.create_arg(a.step))
        return a

    def create_args_for_root(self, root_fn, is_module: bool, concrete_args=None) -> list:
        sig = inspect.signature(root_fn)
        params = list(sig.parameters.values())[1 if is_module else 0:]
        concrete_args = concrete_args or {}
        out = []
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise NotImplementedError("symbolic_trace does not support *args/**kwargs in "
                                          "the traced signature")
            default = () if p.default is p.empty else (p.default,)
            if p.name in concrete_args:
                value = concrete_args[p.name]
                self.graph._namespace.create_name(p.name)  # as PyTorch: the node is `name_1`
                ph = self.create_proxy("placeholder", p.name, default, {}, name=p.name)
                self._assert_specialised(ph, p.name, value)
                out.append(value)
            else:
                out.append(self.create_proxy("placeholder", p.name, default, {}))
        return out

    def _assert_specialised(self, ph, name, value) -> None:
        import ember
        if isinstance(value, (bool, int, float, str, type(None))):
            eq = self.create_proxy("call_function", operator.eq, (ph, value), {})
            self.create_proxy("call_function", ember._assert,
                              (eq, f"{name} has been specialized to have value {value} but "
                                   "got another value"), {})

    # ---- the trace ----------------------------------------------------------------------------
    def trace(self, root, concrete_args=None) -> Graph:
        """Run ``root`` (a module or function) on proxies and return the recorded graph."""
        from ..nn import Module
        is_module = isinstance(root, Module)
        self.root = root if is_module else Module()
        fn = type(root).forward if is_module else root
        self.graph = Graph(tracer_cls=type(self))
        self._module_names = {id(m): n for n, m in self.root.named_modules()}
        self._tensor_names = {id(t): n for n, t in self.root.named_parameters()}
        self._tensor_names.update({id(t): n for n, t in self.root.named_buffers()})
        self._patcher = _Patcher()
        _proxy.tracing[0] += 1
        try:
            self._patch_everything(fn)
            args = self.create_args_for_root(fn, is_module, concrete_args)
            result = fn(root, *args) if is_module else fn(*args)
            self.create_node("output", "output", (self.create_arg(result),), {})
        finally:
            self._patcher.restore()
            _proxy.tracing[0] -= 1
        return self.graph

    def _patch_everything(self, fn) -> None:
        from ..nn import Module
        tracer = self
        orig_call, orig_getattr = Module.__call__, Module.__getattr__
        cache = {}

        def module_call(mod, *args, **kwargs):
            return tracer.call_module(mod, lambda *a, **k: orig_call(mod, *a, **k), args, kwargs)

        def module_getattr(mod, name):
            return tracer.getattr(name, orig_getattr(mod, name), cache)
        self._patcher.set(Module, "__call__", module_call)
        self._patcher.set(Module, "__getattr__", module_getattr)
        for mod in _proxy.dispatching_namespaces():  # for this trace only (NOTE in proxy.py)
            for name, value in list(vars(mod).items()):
                if _proxy.wrappable(name, value):
                    self._patcher.set(mod, name, recording_twin(value))
        for name, value in list(vars(math).items()):
            if callable(value) and not name.startswith("_"):
                self._patcher.set(math, name, recording_twin(value))
        for f in self.autowrap_functions:
            self._patch_name(getattr(fn, "__globals__", {}), f.__name__, f)
        for g, name in _wrapped:
            self._patch_name(g, name, g.get(name, getattr(builtins, name, None)))
        self._patch_globals(getattr(fn, "__globals__", None))

    def _patch_name(self, g: dict, name: str, orig) -> None:
        if orig is not None and callable(orig):
            self._patcher.set(g, name, recording_twin(orig), is_dict=True)

    def _patch_globals(self, g) -> None:
        """Names a module bound to ember's functions before they were wrapped (``from torch
        import relu`` early) are pointed at the wrappers for the trace."""
        if not g:
            return
        for name, value in list(g.items()):
            if callable(value) and not isinstance(value, proxy_dispatching):
                w = _ember_wrapper_of(value)
                if w is not None:
                    self._patcher.set(g, name, w, is_dict=True)


_TWINS = {}  # id(function) -> its recording twin, made once per process


def recording_twin(fn):
    """``fn``'s ``proxy_dispatching`` wrapper (itself when it is one), made once per process."""
    if isinstance(fn, proxy_dispatching):
        return fn
    w = _TWINS.get(id(fn))
    if w is None or w.__wrapped__ is not fn:
        w = _TWINS[id(fn)] = proxy_dispatching(fn)
    return w


def _ember_wrapper_of(fn):
    w = _TWINS.get(id(fn))
    return w if w is not None and w.__wrapped__ is fn else None


def symbolic_trace(root, concrete_args=None) -> GraphModule:
    """Trace ``root`` (a module or function) into a ``GraphModule`` (``torch.fx``'s)."""
    tracer = Tracer()
    graph = tracer.trace(root, concrete_args)
    from ..nn import Module
    name = type(root).__name__ if isinstance(root, Module) else root.__name__
    return GraphModule(tracer.root, graph, name)
