"""``jit.trace``: record the ops a module or function runs on an example, replay them.

The ops are recorded by the shared op-level capture (``ember.fx.experimental.proxy_tensor.
record``, NOTE [ Op recording ]); the graph becomes a ``Program`` (``_program.py``) that a
``TopLevelTracedModule`` or ``TracedFunction`` runs on new inputs.  The traced module mirrors
the original's hierarchy and shares its parameter and buffer dicts, as PyTorch's traced
modules share their parameters.  While recording, ``is_tracing()`` is true and converting a
tensor to a Python value from user code (``bool(t)``, ``.item()``, ``int(t)``, ``.tolist()``,
``.numpy()``) warns with PyTorch's ``TracerWarning``: the value is baked into the trace.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import sys
import threading
import warnings

from .._tensor import Tensor
from ..nn import Module
from . import _jit_internal
from ._jit_internal import TracerWarning, TracingCheckError
from ._program import Program
from ._script import ScriptFunction, ScriptModule

__all__ = ["trace", "trace_module", "TracedModule", "TopLevelTracedModule", "TracedFunction"]

_BAKED = (" might cause the trace to be incorrect. We can't record the data flow of Python "
          "values, so this value will be treated as a constant in the future. This means that "
          "the trace might not generalize to other inputs!")
_CONVERSIONS = {"__bool__": "a Python boolean", "item": "a Python number",
                "__float__": "a Python float", "__int__": "a Python integer",
                "__index__": "a Python index", "tolist": "a Python list",
                "numpy": "a NumPy array", "__complex__": "a Python complex"}


def _user_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside ember."""
    level, f = 1, sys._getframe(1)
    while f is not None:
        name = f.f_globals.get("__name__", "")
        if not (name == "ember" or name.startswith("ember.")):
            return level
        level += 1
        f = f.f_back
    return 1


def _from_user_code() -> bool:
    """Whether the frame calling the patched conversion is outside ember's own package."""
    frame = sys._getframe(2)
    name = frame.f_globals.get("__name__", "")
    return not (name == "ember" or name.startswith("ember."))


def _warning_wrapper(orig, what):
    def conversion(self, *args, **kwargs):
        if _jit_internal.is_tracing() and _from_user_code():
            warnings.warn(f"Converting a tensor to {what}{_BAKED}", TracerWarning, stacklevel=2)
        return orig(self, *args, **kwargs)
    conversion.__name__ = getattr(orig, "__name__", "conversion")
    conversion.__wrapped__ = orig
    return conversion


_patch_lock = threading.Lock()
_patched = {"count": 0, "saved": {}}  # one set of wrappers however many threads trace


@contextlib.contextmanager
def _tracing():
    """``is_tracing()`` on this thread, and the conversion warnings on, for the block (the
    wrappers warn only on a thread that is tracing)."""
    local = _jit_internal._tracing
    depth = getattr(local, "depth", 0)
    with _patch_lock:
        if _patched["count"] == 0:
            for name, what in _CONVERSIONS.items():
                _patched["saved"][name] = Tensor.__dict__[name]
                setattr(Tensor, name, _warning_wrapper(_patched["saved"][name], what))
        _patched["count"] += 1
    local.depth = depth + 1
    try:
        yield
    finally:
        local.depth = depth
        with _patch_lock:
            _patched["count"] -= 1
            if _patched["count"] == 0:
                for name, orig in _patched["saved"].items():
                    setattr(Tensor, name, orig)


def _type_str(a) -> str:
    if isinstance(a, Tensor):
        return "Tensor"
    if isinstance(a, tuple):
        return f"Tuple[{', '.join(_type_str(e) for e in a)}]"
    if isinstance(a, list):
        return f"List[{_type_str(a[0]) if a else 'Tensor'}]"
    if isinstance(a, dict):
        v = next(iter(a.values()), None)
        return f"Dict[str, {_type_str(v) if a else 'Tensor'}]"
    return type(a).__name__


def _check_traceable(args) -> None:
    from ..fx.experimental.proxy_tensor import flatten
    leaves, _ = flatten(args)
    if not all(isinstance(a, Tensor) for a in leaves):
        raise RuntimeError(f"Type '{_type_str(args)}' cannot be traced. Only Tensors and "
                           "(possibly nested) Lists, Dicts, and Tuples of Tensors can be traced")


def _check_output(out, strict: bool) -> None:
    """PyTorch's output rules: tensors in tuples/lists/dicts; with ``strict`` a list warns and
    a dict raises (their structure may change with the inputs)."""
    if isinstance(out, Tensor):
        return
    if isinstance(out, (list, dict)) and strict:
        msg = (f"Encountering a {'list' if isinstance(out, list) else 'dict'} at the output of "
               "the tracer might cause the trace to be incorrect, this is only valid if the "
               "container structure does not change based on the module's inputs. Consider "
               "using a constant container instead (e.g. for `list`, use a `tuple` instead. for "
               "`dict`, use a `NamedTuple` instead). If you absolutely need this and know the "
               "side effects, pass strict=False to trace() to allow this behavior.")
        if isinstance(out, dict):
            raise RuntimeError(msg)
        warnings.warn(msg, TracerWarning, stacklevel=_user_level())
    if isinstance(out, (tuple, list)):
        for o in out:
            _check_output(o, strict)
        return
    if isinstance(out, dict):
        for o in out.values():
            _check_output(o, strict)
        return
    raise RuntimeError("Only tensors, lists, tuples of tensors, or dictionary of tensors can be "
                       f"output from traced functions, got {type(out).__name__}")


def _as_args(example_inputs):
    if isinstance(example_inputs, Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, tuple):
        return example_inputs
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    raise TypeError(f"'{type(example_inputs).__name__}' object is not iterable")


def _bind_kwargs(fn, kwargs: dict) -> tuple:
    """``kwargs`` as positional arguments in ``fn``'s parameter order."""
    params = list(inspect.signature(fn).parameters)
    missing = [k for k in kwargs if k not in params]
    if missing:
        raise RuntimeError(f"example_kwarg_inputs names {missing[0]!r}, which "
                           f"{getattr(fn, '__name__', fn)} does not take")
    used = [p for p in params if p in kwargs]
    if params[:len(used)] != used:
        raise RuntimeError("example_kwarg_inputs must give the leading parameters of the "
                           f"function ({', '.join(params[:len(used)])})")
    return tuple(kwargs[p] for p in used)


def _clone_inputs(args):
    """Fresh copies of the example inputs, so a re-run cannot see the first run's changes."""
    def clone(a):
        if isinstance(a, Tensor):
            c = a.detach().clone()
            return c.requires_grad_(a.requires_grad) if a.is_floating_point() else c
        if isinstance(a, tuple):
            return tuple(clone(e) for e in a)
        if isinstance(a, list):
            return [clone(e) for e in a]
        if isinstance(a, dict):
            return {k: clone(v) for k, v in a.items()}
        return copy.deepcopy(a)
    return clone(args)


def _tensors_of(module) -> list:
    if not isinstance(module, Module):
        return []
    return [t for _, t in module.named_parameters(remove_duplicate=False)] + \
        [t for _, t in module.named_buffers(remove_duplicate=False)]


def _record(fn, args, module):
    from ..fx.experimental.proxy_tensor import record
    from ._recorder import Recorder
    with _tracing():
        rec = record(fn, args, forward_only=True, known=_tensors_of(module), offer=True,
                     recorder=Recorder(forward_only=True))
    return rec


def _attr_names(module) -> dict:
    """id(tensor) -> its qualified name in ``module`` (the first one, if shared)."""
    names = {}
    if isinstance(module, Module):
        for n, t in module.named_parameters(remove_duplicate=False):
            names.setdefault(id(t), n)
        for n, t in module.named_buffers(remove_duplicate=False):
            names.setdefault(id(t), n)
    return names


def _program(rec) -> Program:
    """The replay of a recording; the example's values are dropped from the graph's nodes
    (they would keep every activation of the example alive as long as the trace)."""
    for node in rec.graph.nodes:
        node.meta.pop("val", None)
    return Program(rec.graph)


def _name_attrs(rec, module) -> dict:
    """Point each ``get_attr`` at the module's parameter/buffer it read; the rest are the
    trace's own constants (returned: name -> tensor)."""
    names = _attr_names(module)
    constants = {}
    for node in rec.graph.nodes:
        if node.op != "get_attr":
            continue
        t = rec.constants[node.target]
        qual = names.get(id(t))
        if qual is None:
            constants[node.target] = t
        else:
            node.target = qual
    return constants


def _warn_fresh(rec) -> None:
    if rec.fresh_constants:
        warnings.warn(
            f"the trace baked {len(rec.fresh_constants)} tensor(s) made outside its ops into "
            "the graph as constants (tensors created from Python data or shapes, random "
            "draws made outside ember's ops): they stay the same on every call, which might "
            "cause the trace to be incorrect for other inputs", TracerWarning,
            stacklevel=_user_level())
    if rec.saw_backward:
        warnings.warn("the traced code ran a backward pass; the trace replays only the forward "
                      "ops", TracerWarning, stacklevel=_user_level())


def _graph_diff(a: list, b: list) -> str:
    diff = difflib.unified_diff(a, b, "trace", "check", lineterm="")
    return "\tGraph diff:\n" + "\n".join("\t\t" + line for line in diff)


def _compare(traced_out, python_out, tol: float) -> None:
    from ..fx.experimental.proxy_tensor import flatten
    from ..testing import assert_close
    got, _ = flatten(traced_out)
    want, _ = flatten(python_out)
    for i, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, Tensor):
            continue
        try:
            # PyTorch's check: rtol=check_tolerance, atol the dtype's default
            atol = 1e-7 if g.dtype.itemsize == 8 and g.is_floating_point() else 1e-5
            assert_close(g.detach(), w.detach(), rtol=tol, atol=atol, equal_nan=True)
        except AssertionError as e:
            warnings.warn(f"Output nr {i + 1}. of the traced function does not match the "
                          "corresponding output of the Python function. Detailed error:\n"
                          f"{e}", TracerWarning, stacklevel=_user_level())
            return


_RANDOM = {"rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm",
           "normal", "bernoulli", "multinomial", "dropout_mask"}


def _values(constants: dict) -> dict:
    return {k: v for k, v in constants.items() if not isinstance(v, Tensor)}


def _check(run_traced, fn, module, program, check_inputs, tol, base) -> None:
    """Re-record on each check input: the ops must be the same (with the same constant
    arguments where the input sizes are the example's) and the outputs close.  ``base``:
    the recording's signature before sizes were made symbolic, and its input shapes."""
    base_sig, base_shapes = base
    random = [line for line, name in zip(program.signature(), program.step_names())
              if name in _RANDOM]
    if random:
        warnings.warn("Trace had nondeterministic nodes. Did you forget call .eval() on your "
                      "model? Nodes:\n" + "\n".join("\t" + line for line in random) +
                      "\nThis may cause errors in trace checking. To disable trace checking, "
                      "pass check_trace=False to torch.jit.trace()", TracerWarning,
                      stacklevel=_user_level())
    for inputs in check_inputs:
        inputs = _clone_inputs(_as_args(inputs))
        rec = _record(fn, inputs, module)
        values = _values(_name_attrs(rec, module))  # renames get_attrs: before Program
        a, b = base_sig, Program(rec.graph).signature(values)
        if _shapes(_leaves(inputs)) != base_shapes:  # sizes may differ: the ops may not
            a, b = [_op_of(line) for line in a], [_op_of(line) for line in b]
        if a != b:
            raise TracingCheckError(_graph_diff(a, b), None)
        _compare(run_traced(*_clone_inputs(inputs)), rec.result, tol)


def _op_of(line: str) -> str:
    """A signature line without its arguments (``%3 = view``)."""
    return line.split("(", 1)[0].split(" = get_attr")[0]


def _shapes(leaves) -> list:
    return [tuple(a.shape) if isinstance(a, Tensor) else None for a in leaves]


_GROW = 3  # dim 0 grows by this much for the second capture (NOTE [ Sizes from two captures ])


def _grown(args):
    """The inputs with dimension 0 of every tensor ``_GROW`` larger (its rows repeated)."""
    from .. import arange

    def grow(a):
        if isinstance(a, Tensor):
            if a.dim() == 0 or a.shape[0] == 0:
                return a
            idx = arange(a.shape[0] + _GROW) % a.shape[0]
            return a.detach().index_select(0, idx).requires_grad_(a.requires_grad) \
                if a.is_floating_point() else a.index_select(0, idx)
        if isinstance(a, tuple):
            return tuple(grow(e) for e in a)
        if isinstance(a, list):
            return [grow(e) for e in a]
        if isinstance(a, dict):
            return {k: grow(v) for k, v in a.items()}
        return a
    return grow(args)


@contextlib.contextmanager
def _buffers_kept(module):
    """The module's buffers as they were before the block (a second capture in training
    mode must not update BatchNorm's running statistics twice)."""
    saved = [(b, b._data.copy()) for b in (module.buffers() if isinstance(module, Module)
                                           else ())]
    try:
        yield
    finally:
        for b, data in saved:
            b._data[...] = data


def _generalise(fn, module, rec, args, constants) -> tuple:
    """Make the sizes that follow dimension 0 of the inputs symbolic in ``rec.graph``, as
    PyTorch's trace records ``x.size(0)``: capture again with that dimension grown and turn
    every int argument that changed into ``sym_size``/arithmetic nodes (NOTE [ Sizes from
    two captures ]).  Warns where a size stays baked.  Returns the base signature and input
    shapes (what ``check_trace`` compares with)."""
    from ..fx.experimental.symbolic_shapes import symbolize
    leaves = _leaves(args)
    base = (Program(rec.graph).signature(_values(constants)), _shapes(leaves))
    if not any(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] > 0 for a in leaves):
        return base
    try:
        with warnings.catch_warnings(), _buffers_kept(module):
            warnings.simplefilter("ignore")
            rec2 = _record(fn, _grown(args), module)
    except Exception:  # the code does not accept another size at all: nothing to replay
        return base
    problems = symbolize(rec.graph, rec2.graph, constants, _name_attrs(rec2, module))
    if problems:
        warnings.warn("the trace keeps the size of dimension 0 of its inputs as a constant "
                      f"(traced again with that size {_GROW} larger, {problems[0]}), so "
                      "calling it with other sizes fails or gives wrong results; trace with "
                      "the size it will be called with", TracerWarning,
                      stacklevel=_user_level())
    return base


def _leaves(args):
    from ..fx.experimental.proxy_tensor import flatten
    return flatten(args)[0]


class TracedModule(ScriptModule):
    """A traced (sub)module: the original's hierarchy, parameters and buffers; the top level
    replays the recorded graph (``torch.jit.TracedModule``)."""

    _program = None

    @classmethod
    def _mirror(cls, original: Module, name: str = None):
        self = cls.__new__(cls)
        Module.__init__(self)
        d = self.__dict__
        d["_original_name"] = name or type(original).__name__
        d["training"] = original.training
        d["_parameters"] = original._parameters
        d["_buffers"] = original._buffers
        d["_non_persistent_buffers_set"] = original._non_persistent_buffers_set
        for n, child in original._modules.items():
            d["_modules"][n] = None if child is None else TracedModule._mirror(child)
        return self

    @property
    def original_name(self) -> str:
        return self.__dict__.get("_original_name", type(self).__name__)

    def _not_compiled_what(self) -> str:
        return f"submodule {self.original_name!r} (only the top-level traced module has a graph)"

    def forward(self, *args, **kwargs):
        if self._program is None:
            if self.__dict__.get("_scripted"):
                raise RuntimeError(
                    f"{self.original_name} was saved from ember.jit.script, which does not "
                    "compile: the archive holds its parameters, buffers and hierarchy but no "
                    "graph. Build the Python module and load this one's state_dict() into it, "
                    "or save a module traced with ember.jit.trace")
            raise RuntimeError(f"{self.original_name} was not traced on its own: call the "
                               "top-level traced module (or trace this submodule)")
        return _run(self, self._program, args, kwargs, self.original_name)

    @property
    def graph(self):
        if self._program is None:
            return super().graph
        return self._program.graph

    @property
    def code(self) -> str:
        if self._program is None:
            return super().code
        return _code(self._program.graph)

    def extra_repr(self) -> str:
        return f"original_name={self.original_name}"

    def _get_name(self) -> str:  # PyTorch prints a traced module under its original name
        return self.original_name

    def __getitem__(self, key):
        children = list(self._modules.values())
        return self._modules[key] if isinstance(key, str) else children[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class TopLevelTracedModule(TracedModule):
    """What ``jit.trace(module, ...)`` returns."""


def _code(graph) -> str:
    return graph.python_code(root_module="self").src.strip("\n") + "\n"


def _run(owner, program, args, kwargs, name, root=None):
    from ..fx.experimental.proxy_tensor import flatten
    if kwargs:
        raise RuntimeError(f"{name}() got unexpected keyword arguments "
                           f"{', '.join(map(repr, kwargs))}: a traced module takes the "
                           "positional inputs it was traced with")
    leaves, spec = flatten(tuple(args))
    if spec != owner._in_spec:
        raise RuntimeError(f"{name}() expected inputs shaped as the example it was traced "
                           f"with ({owner._in_types}) but received {_type_str(tuple(args))}")
    return program.run(owner if root is None else root, leaves)


class TracedFunction(ScriptFunction):
    """What ``jit.trace(fn, ...)`` returns: replays ``fn``'s recorded ops."""

    def __init__(self, fn, program, in_spec, in_types, constants):
        super().__init__(fn)
        self._program = program
        self._in_spec = in_spec
        self._in_types = in_types
        self._root = Module()
        for k, t in constants.items():
            object.__setattr__(self._root, k, t)

    def __call__(self, *args, **kwargs):
        from ..fx.experimental.proxy_tensor import flatten
        if kwargs:
            raise RuntimeError(f"{self.name}() got unexpected keyword arguments")
        leaves, spec = flatten(tuple(args))
        if spec != self._in_spec:
            raise RuntimeError(f"{self.name}() expected inputs shaped as the example it was "
                               f"traced with ({self._in_types}) but received "
                               f"{_type_str(tuple(args))}")
        return self._program.run(self._root, leaves)

    def __get__(self, obj, objtype=None):
        return self  # the replay takes the traced inputs only

    @property
    def graph(self):
        return self._program.graph

    inlined_graph = graph

    @property
    def code(self) -> str:
        return _code(self._program.graph)

    def save(self, f, **kwargs):
        from ._serialization import save
        save(self, f, **kwargs)


def _deprecated(name):
    warnings.warn(f"`torch.jit.{name}` is deprecated. Please switch to `torch.compile` or "
                  "`torch.export`.", DeprecationWarning, stacklevel=3)


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None,
          check_tolerance=1e-5, strict=True, _force_outplace=False, _module_class=None,
          _compilation_unit=None, example_kwarg_inputs=None, _store_inputs=True):
    """Record the ops ``func`` runs on ``example_inputs`` into a ``TopLevelTracedModule`` (a
    module) or ``TracedFunction`` that replays them (``torch.jit.trace``)."""
    _deprecated("trace")
    if isinstance(func, (ScriptModule, ScriptFunction)):
        warnings.warn("The input to trace is already a ScriptModule, tracing it is a no-op. "
                      "Returning the object as is.", stacklevel=2)
        return func
    if example_inputs is None and example_kwarg_inputs is None:
        raise RuntimeError("example_kwarg_inputs or example_inputs must be provided")
    if isinstance(func, Module):
        inputs = example_inputs
        if example_kwarg_inputs is not None:
            inputs = _bind_kwargs(func.forward, example_kwarg_inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return trace_module(func, {"forward": inputs}, None, check_trace, None,
                                check_tolerance, strict, _check_inputs_list=check_inputs)
    args = _as_args(example_inputs) if example_kwarg_inputs is None else \
        _bind_kwargs(func, example_kwarg_inputs)
    _check_traceable(args)
    module = getattr(func, "__self__", None)  # a bound method of a module: its tensors
    rec = _record(func, args, module)
    _check_output(rec.result, strict)
    constants = _name_attrs(rec, module)
    base = _generalise(func, module, rec, args, constants)
    program = _program(rec)
    _warn_fresh(rec)
    from ..fx.experimental.proxy_tensor import flatten
    _, spec = flatten(tuple(args))
    traced = TracedFunction(func, program, spec, _type_str(args), constants)
    if module is not None:  # a bound method reads the module's tensors live
        traced._root = _method_root(module, constants)
    if check_trace:
        _check(traced, func, module, program, check_inputs or [args], check_tolerance,
               base)
    return traced


def _method_root(module, constants):
    root = TracedModule._mirror(module)
    for k, t in constants.items():
        object.__setattr__(root, k, t)
    return root


def trace_module(mod, inputs, optimize=None, check_trace=True, check_inputs=None,
                 check_tolerance=1e-5, strict=True, _force_outplace=False, _module_class=None,
                 _compilation_unit=None, example_inputs_is_kwarg=False, _store_inputs=True,
                 _check_inputs_list=None):
    """Trace ``mod``'s methods named in ``inputs`` (``{"forward": example}``) into one
    ``TopLevelTracedModule`` (``torch.jit.trace_module``)."""
    _deprecated("trace_method")
    if not isinstance(mod, Module):
        raise AttributeError("expected torch.nn.Module as the first argument")
    if not isinstance(inputs, dict):
        raise AttributeError("expected a dictionary of (method_name, input) pairs")
    top = TopLevelTracedModule._mirror(mod)
    for method_name, example in inputs.items():
        method = getattr(mod, method_name)
        if example_inputs_is_kwarg:
            args = _bind_kwargs(method, example)
        else:
            args = _as_args(example)
        _check_traceable(args)
        fn = mod if method_name == "forward" else method
        rec = _record(fn, args, mod)
        _check_output(rec.result, strict)
        constants = _name_attrs(rec, mod)
        base = _generalise(fn, mod, rec, args, constants)
        if method_name != "forward":  # each method's own constants under its own names
            for node in rec.graph.nodes:
                if node.op == "get_attr" and node.target in constants:
                    node.target = f"_{method_name}{node.target}"
            constants = {f"_{method_name}{k}": v for k, v in constants.items()}
        for k, t in constants.items():
            object.__setattr__(top, k, t)
        program = _program(rec)
        _warn_fresh(rec)
        from ..fx.experimental.proxy_tensor import flatten
        _, spec = flatten(tuple(args))
        if method_name == "forward":
            top.__dict__.update(_program=program, _in_spec=spec, _in_types=_type_str(args))
            runner = top
        else:
            runner = _BoundTrace(top, program, spec, _type_str(args), method_name)
            object.__setattr__(top, method_name, runner)
        if check_trace:
            checks = _check_inputs_list if method_name == "forward" and _check_inputs_list \
                else [c[method_name] for c in check_inputs] if check_inputs else [args]
            _check(runner, fn, mod, program, checks, check_tolerance, base)
    return top


class _BoundTrace:
    """A traced method other than forward: replays its graph on the traced module."""

    def __init__(self, top, program, spec, types, name):
        self._top, self._program, self._in_spec, self._in_types = top, program, spec, types
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        return _run(self, self._program, args, kwargs, self.__name__, self._top)
