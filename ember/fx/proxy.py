"""``Proxy``: the stand-in value that symbolic tracing passes through user code; every
operation on it records a ``Node`` instead of computing (PyTorch's ``torch.fx.Proxy``)."""
from __future__ import annotations

import dis
import inspect
import operator

__all__ = ["Proxy", "Attribute", "TraceError", "GraphAppendingTracer"]


class TraceError(ValueError):
    """Raised where a traced value would decide Python control flow."""


class Proxy:
    """A node's value during tracing: operators, methods and attributes on it record nodes."""

    def __init__(self, node, tracer=None):
        if not _dispatch_installed and not tracing[0]:
            install_proxy_dispatch()  # a proxy made by hand (NOTE below)
        self.node = node
        self.tracer = tracer if tracer is not None else GraphAppendingTracer(node.graph)

    def __repr__(self):
        return f"Proxy({self.node.name})"

    def __getattr__(self, k):
        if k.startswith("__") and k.endswith("__"):
            raise AttributeError(k)  # Python's protocol probes (copy, pickle ...) are not ops
        return Attribute(self, k)

    def __call__(self, *args, **kwargs):
        return self.tracer.create_proxy("call_method", "__call__", (self,) + args, kwargs)

    def __iter__(self):
        # ``a, b = proxy`` is fine: the caller is unpacking a known count (PyTorch reads the
        # calling frame's current instruction the same way); any other iteration is not.
        frame = inspect.currentframe().f_back
        for inst in dis.get_instructions(frame.f_code):
            if inst.offset == frame.f_lasti:
                if inst.opname == "UNPACK_SEQUENCE":
                    return (self[i] for i in range(inst.argval))
                break
        raise TraceError("Proxy object cannot be iterated. This can be attempted when the Proxy "
                         "is used in a loop or as a *args or **kwargs function argument. See "
                         "the torch.fx docs on pytorch.org for a more detailed explanation of "
                         "what types of control flow can be traced, and check out the Proxy "
                         "docstring for help troubleshooting Proxy iteration errors")

    def __bool__(self):
        raise TraceError("symbolically traced variables cannot be used as inputs to control "
                         "flow")

    def __len__(self):
        raise RuntimeError("'len' is not supported in symbolic tracing by default. If you want "
                           "this call to be recorded, please call torch.fx.wrap('len') at "
                           "module scope")

    def keys(self):
        return self.tracer.create_proxy("call_method", "keys", (self,), {})


class Attribute(Proxy):
    """``proxy.name``: a method call when called, else a ``getattr`` node (made on first use)."""

    def __init__(self, root: Proxy, attr: str):
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node = None

    @property
    def node(self):
        if self._node is None:
            self._node = self.tracer.create_proxy("call_function", getattr,
                                                  (self.root, self.attr), {}).node
        return self._node

    def __call__(self, *args, **kwargs):
        return self.tracer.create_proxy("call_method", self.attr, (self.root,) + args, kwargs)


def _binary(op, reflected=False):
    if reflected:
        def impl(self, other):
            return self.tracer.create_proxy("call_function", op, (other, self), {})
    else:
        def impl(self, other):
            return self.tracer.create_proxy("call_function", op, (self, other), {})
    return impl


def _unary(op):
    def impl(self):
        return self.tracer.create_proxy("call_function", op, (self,), {})
    return impl


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "lshift",
              "rshift", "and_", "or_", "xor"):
    _op = getattr(operator, _name)
    _dunder = _name.rstrip("_")
    setattr(Proxy, f"__{_dunder}__", _binary(_op))
    setattr(Proxy, f"__r{_dunder}__", _binary(_op, reflected=True))
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "getitem"):
    setattr(Proxy, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "invert", "abs"):
    setattr(Proxy, f"__{_name}__", _unary(getattr(operator, _name)))
Proxy.__hash__ = object.__hash__  # __eq__ records a node; proxies still go in dicts and sets


# NOTE [ Proxies in ember's functions ]
# PyTorch's functions hand a Proxy argument to ``Proxy.__torch_function__`` (a check every
# torch function makes in C).  ember's public functions don't check, so they are wrapped: a
# wrapper records a ``call_function`` node of the function when a proxy is among the
# arguments, and otherwise calls it (wrapper and function compare and hash equal, so
# ``node.target == torch.relu`` holds).  ``symbolic_trace`` and ``Transformer`` wrap them for
# the duration of the trace only (``tracing`` counts them) and put the functions back; a
# proxy made by hand outside them (``Proxy(node, GraphAppendingTracer(g))``, PyTorch's recipe
# for building graphs) wraps them for the rest of the process, costing each call a scan of its
# top-level arguments, and ``ember.relu is <the function>`` then no longer holds by identity.
_dispatch_installed = False
tracing = [0]  # symbolic traces and transforms running (they patch the functions themselves)


def _find_proxy(args, kwargs):
    for a in args:
        if isinstance(a, Proxy):
            return a
        if type(a) in (list, tuple):
            for e in a:
                if isinstance(e, Proxy):
                    return e
    for a in kwargs.values():
        if isinstance(a, Proxy):
            return a
    return None


class proxy_dispatching:
    """``fn`` that records a ``call_function`` node of ``fn`` when called with a proxy.

    It equals and hashes as ``fn``, so a node's target (always ``fn``) compares equal to what
    ``ember.relu`` is before and after wrapping, and dicts keyed by either still work."""

    def __init__(self, fn):
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", None)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        p = _find_proxy(args, kwargs)
        if p is None:
            return self.__wrapped__(*args, **kwargs)
        return p.tracer.create_proxy("call_function", self.__wrapped__, args, kwargs)

    def __eq__(self, other):
        return other is self or other is self.__wrapped__

    def __hash__(self):
        return hash(self.__wrapped__)

    def __repr__(self):
        return repr(self.__wrapped__)


def dispatching_namespaces():
    import ember
    return [ember, ember.nn.functional, ember.linalg, ember.fft, ember.special]


def install_proxy_dispatch() -> None:
    """Wrap the public functions of ember's namespaces for good (NOTE above); idempotent."""
    global _dispatch_installed
    if _dispatch_installed:
        return
    _dispatch_installed = True
    from ._symbolic_trace import recording_twin
    for mod in dispatching_namespaces():
        for name, value in list(vars(mod).items()):
            if wrappable(name, value):
                setattr(mod, name, recording_twin(value))


def wrappable(name: str, value) -> bool:
    import types
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType)) and \
        (not name.startswith("_") or name == "_assert")


class GraphAppendingTracer:
    """A tracer that appends to an existing graph: ``Proxy(node, GraphAppendingTracer(g))``
    (PyTorch's ``torch.fx.proxy.GraphAppendingTracer``)."""

    def __new__(cls, graph):
        from ._symbolic_trace import Tracer
        from ..nn import Module
        t = Tracer()
        t.graph = graph
        t.root = Module()
        t._tensor_names = {}
        t._module_names = {}
        return t
