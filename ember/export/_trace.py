"""``export``: capture a module's ops once, lift its parameters and buffers to graph inputs.

The capture is the shared op recorder (NOTE [ Op recording ] in
``ember/fx/experimental/proxy_tensor.py``).  While it runs, Python control flow on a tensor
computed from the inputs (``if x.sum() > 0``, ``.item()``) raises PyTorch's
``GuardOnDataDependentSymNode`` naming the user's line: one recorded path cannot stand for
all inputs.  A ``Dim`` is made symbolic by a second capture at another size of that
dimension: an int argument that changes with it becomes a size expression in the graph
(NOTE [ Sizes from two captures ]); if the ops change, or a size is no expression of the
inputs' sizes, the export raises ``ConstraintViolationError`` naming the op.
"""
from __future__ import annotations

import contextlib
import inspect
import linecache
import sys
import threading

from .._tensor import Tensor
from ..nn import Module
from .dynamic_shapes import ConstraintViolationError, Dim, DimHint
from .exported_program import ExportedProgram
from .graph_signature import (ExportGraphSignature, InputKind, InputSpec, OutputKind,
                              OutputSpec, TensorArgument, ConstantArgument)

__all__ = ["export", "UserError", "GuardOnDataDependentSymNode"]

_HINT = ("\n\nThe error above occurred when calling ember.export.export: the export records "
         "one run of the code, so a Python branch on a tensor's value cannot be captured. "
         "Compute both sides and select with ember.where, or move the branch out of forward.")


class UserError(RuntimeError):
    """A mistake in how export was called (PyTorch's ``torch._dynamo.exc.UserError``)."""


class GuardOnDataDependentSymNode(RuntimeError):
    """Python control flow on a tensor's value during export (PyTorch's error type)."""


_CONVERSIONS = {"__bool__": "bool()", "item": ".item()", "__int__": "int()",
                "__float__": "float()", "__index__": "an index", "tolist": ".tolist()",
                "numpy": ".numpy()"}


def _recorder():
    from .._state import state
    from ..fx.experimental.proxy_tensor import OpRecorder
    for m in reversed(state.modes):
        if isinstance(m, OpRecorder):
            return m
    return None


def _user_frame():
    """The innermost frame outside ember (the line of the user's code that asked)."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_globals.get("__name__", "")
        if not (name == "ember" or name.startswith("ember.")):
            return f
        f = f.f_back
    return None


_RANDOM = {"rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm",
           "normal", "bernoulli", "multinomial", "dropout_mask"}


def _data_dependent(rec, t) -> bool:
    """Whether ``t``'s value comes from the inputs, parameters, buffers or a random draw (a
    tensor built from Python constants alone is known when exporting)."""
    node = rec._nodes.get(id(t))
    if node is None and id(t._data) in rec._by_data:
        node = rec._by_data[id(t._data)][1]
    if type(node) is tuple:
        node = node[0]
    if node is None:
        return False
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "placeholder" or getattr(n.target, "__name__", "") in _RANDOM:
            return True
        if n.op == "get_attr" and isinstance(rec.constants.get(n.target), Tensor):
            return True
        stack.extend(n.all_input_nodes)
    return False


def _guard_wrapper(orig, what):
    def conversion(self, *args, **kwargs):
        rec = _recorder()
        if rec is not None and _data_dependent(rec, self):
            f = _user_frame()
            where = ""
            if f is not None:
                line = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
                where = (f"\n\nThe following call raised this error:\n  File "
                         f"\"{f.f_code.co_filename}\", line {f.f_lineno}, in "
                         f"{f.f_code.co_name}\n    {line}")
            raise GuardOnDataDependentSymNode(
                f"Could not guard on data-dependent expression: {what} of a tensor computed "
                f"from the inputs (its value is not known when exporting){where}{_HINT}")
        return orig(self, *args, **kwargs)
    conversion.__wrapped__ = orig
    return conversion


_patch_lock = threading.Lock()
_patched = {"count": 0, "saved": {}}  # one set of wrappers however many threads export


@contextlib.contextmanager
def _data_dependent_guards():
    """Wrappers on the conversions that raise for a value the recorder computed (they act
    only on a thread whose mode stack holds a recorder)."""
    with _patch_lock:
        if _patched["count"] == 0:
            for name, what in _CONVERSIONS.items():
                _patched["saved"][name] = Tensor.__dict__[name]
                setattr(Tensor, name, _guard_wrapper(_patched["saved"][name], what))
        _patched["count"] += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patched["count"] -= 1
            if _patched["count"] == 0:
                for name, orig in _patched["saved"].items():
                    setattr(Tensor, name, orig)


def _flat_inputs(mod, args, kwargs):
    """Positional args then kwargs values (in ``forward``'s parameter order), and names."""
    try:
        params = list(inspect.signature(mod.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    order = [p.name for p in params if p.name in kwargs] + \
        [k for k in kwargs if k not in {p.name for p in params}]
    return names, order


def _record(mod, args, kwargs, order):
    from ..fx.experimental.proxy_tensor import record
    from ..jit._recorder import Recorder
    n = len(args)

    def call(*flat):
        return mod(*flat[:n], **dict(zip(order, flat[n:])))

    known = [t for _, t in mod.named_parameters(remove_duplicate=False)] + \
        [t for _, t in mod.named_buffers(remove_duplicate=False)]
    with _data_dependent_guards():
        return record(call, tuple(args) + tuple(kwargs[k] for k in order), forward_only=True,
                      known=known, offer=True, recorder=Recorder(forward_only=True))


def _signature(rec) -> list:
    """The recorded ops with their constant arguments, non-tensor constants spelled out."""
    from ..jit._program import Program
    consts = {k: v for k, v in rec.constants.items() if not isinstance(v, Tensor)}
    return Program(rec.graph).signature(consts)


def _dynamic_dims(dynamic_shapes, args, kwargs, names, order) -> list:
    """One ``{dim: Dim}`` per top-level input (positional args, then kwargs)."""
    n = len(args) + len(order)
    if dynamic_shapes is None:
        return [{} for _ in range(n)]
    if isinstance(dynamic_shapes, dict):
        keyed = names[:len(args)] + order
        unknown = [k for k in dynamic_shapes if k not in keyed]
        if unknown:
            raise UserError(f"dynamic_shapes names {unknown[0]!r}, which is not an input of "
                            f"forward (its inputs: {keyed})")
        per = [dynamic_shapes.get(k) for k in keyed]
    elif isinstance(dynamic_shapes, (tuple, list)):
        if len(dynamic_shapes) != n:
            raise UserError(f"dynamic_shapes has {len(dynamic_shapes)} entries but there are "
                            f"{n} inputs")
        per = list(dynamic_shapes)
    else:
        raise UserError(f"dynamic_shapes must be a dict, tuple or list, got "
                        f"{type(dynamic_shapes).__name__}")
    out = []
    values = list(args) + [kwargs[k] for k in order]
    for spec, value in zip(per, values):
        if spec is None:
            out.append({})
            continue
        if not isinstance(value, Tensor):
            raise UserError("dynamic_shapes can only describe tensor inputs (ember does not "
                            "export nested inputs with dynamic sizes)")
        if isinstance(spec, (tuple, list)):
            spec = dict(enumerate(spec))
        if not isinstance(spec, dict):
            raise UserError(f"a tensor's dynamic shape must be a dict or a list of Dims, got "
                            f"{type(spec).__name__}")
        dims = {}
        for i, d in spec.items():
            if d is None or d is DimHint.STATIC:
                continue
            if d in (DimHint.AUTO, DimHint.DYNAMIC):
                d = Dim(f"dim{i}")
            if not isinstance(d, Dim):
                raise UserError(f"dynamic_shapes entry {d!r} is not a Dim")
            if not -value.dim() <= i < value.dim():
                raise UserError(f"dynamic_shapes names dimension {i} of a {value.dim()}-d "
                                "input")
            size = value.shape[i]
            if not d.min <= size <= d.max:
                raise ConstraintViolationError(f"{size} not in range [{d.min}, {d.max}]")
            dims[i % value.dim()] = d
        out.append(dims)
    return out


def _resized(t: Tensor, dim: int, n: int) -> Tensor:
    """``t`` with ``n`` entries along ``dim`` (its own entries, repeated)."""
    from .. import arange
    idx = arange(n) % t.shape[dim]
    return t.detach().index_select(dim, idx)


def _check_dynamic(mod, args, kwargs, order, dyn, rec, names) -> None:
    """Make each ``Dim``'s size symbolic in ``rec.graph``: capture again with every dynamic
    dimension moved (by a different amount per ``Dim``, one amount per name) and turn the int
    arguments that change into size expressions (NOTE [ Sizes from two captures ]); a size
    that stays baked raises ``ConstraintViolationError`` naming the op."""
    from ..fx.experimental.symbolic_shapes import symbolize
    values = list(args) + [kwargs[k] for k in order]
    moved, step, named = list(values), {}, []
    for pos, dims in enumerate(dyn):
        for i, d in dims.items():
            size = values[pos].shape[i]
            grow = step.setdefault(d.__name__, 3 + 2 * len(step))  # n // 2 changes too
            other = next((n for n in (size + grow, size - grow, size + 1, size - 1)
                          if max(d.min, 1) <= n <= d.max and n != size), None)
            if other is None:  # the range holds one usable size: nothing can vary
                continue
            moved[pos] = _resized(moved[pos], i, other)
            name = names[pos] if pos < len(names) else f"input {pos}"
            named.append((d, f"{name}.size()[{i}]"))
    if not named:
        return
    from ..jit._trace import _buffers_kept
    try:
        with _buffers_kept(mod):  # BatchNorm's statistics: updated by one capture only
            rec2 = _record(mod, moved[:len(args)], dict(zip(order, moved[len(args):])), order)
    except Exception as e:  # noqa: BLE001 (the model refuses the other size)
        problems = [f"the model raised {type(e).__name__} at the other size: {e}"]
    else:
        problems = symbolize(rec.graph, rec2.graph, rec.constants, rec2.constants)
    if problems:
        which = " and ".join(f"{d.__name__} = {where}" for d, where in named)
        d = named[0][0]
        raise ConstraintViolationError(
            f"Not all values of {which} in the specified range {d.min} <= {d.__name__} <= "
            f"{d.max} are valid because {d.__name__} was inferred to be a constant: ember's "
            f"graph keeps that size in an op's arguments:\n" + "\n".join(problems))


def export(mod, args, kwargs=None, *, dynamic_shapes=None, strict: bool = False,
           preserve_module_call_signature=(), prefer_deferred_runtime_asserts_over_guards=False):
    """Capture ``mod(*args, **kwargs)``'s ops as an ``ExportedProgram`` with parameters and
    buffers lifted to graph inputs (``torch.export.export``)."""
    from ..fx.graph import Graph
    from ..fx.graph_module import GraphModule
    from ..fx.experimental.proxy_tensor import flatten
    if not isinstance(mod, Module):
        raise ValueError(f"Expected `mod` to be an instance of `torch.nn.Module`, got "
                         f"{type(mod)}.")
    if not isinstance(args, tuple):
        raise UserError(f"Expecting `args` to be a tuple of example positional inputs, got "
                        f"{type(args)}")
    kwargs = dict(kwargs or {})
    names, order = _flat_inputs(mod, args, kwargs)
    dyn = _dynamic_dims(dynamic_shapes, args, kwargs, names, order)
    rec = _record(mod, args, kwargs, order)
    if dynamic_shapes is not None:
        _check_dynamic(mod, args, kwargs, order, dyn, rec, names)

    # ---- lift: parameters, buffers, constants, then user inputs become placeholders --------
    g = Graph()
    specs = []
    env = {}
    non_persistent = set()
    for prefix, m in mod.named_modules():
        non_persistent |= {f"{prefix}.{b}" if prefix else b for b in m._non_persistent_buffers_set}
    state_dict, constants = {}, {}
    lifted = {}
    for n_, p in mod.named_parameters():
        lifted[id(p)] = g.placeholder("p_" + n_.replace(".", "_"))
        specs.append(InputSpec(InputKind.PARAMETER, TensorArgument(lifted[id(p)].name), n_))
        state_dict[n_] = p
    for n_, b in mod.named_buffers():
        lifted[id(b)] = g.placeholder("b_" + n_.replace(".", "_"))
        persistent = n_ not in non_persistent
        specs.append(InputSpec(InputKind.BUFFER, TensorArgument(lifted[id(b)].name), n_,
                               persistent))
        (state_dict if persistent else constants)[n_] = b
    n_lifted = 0
    others = {}
    for node in rec.graph.nodes:
        if node.op != "get_attr":
            continue
        value = rec.constants[node.target]
        if not isinstance(value, Tensor):
            others[node.target] = value
            continue
        if id(value) in lifted:  # a parameter or buffer (an alias is the same object)
            env[node] = lifted[id(value)]
            continue
        target = f"lifted_tensor_{n_lifted}"
        n_lifted += 1
        ph = g.placeholder("c_" + target)
        specs.append(InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(ph.name), target))
        constants[target] = value
        env[node] = ph
    user_names = (names[:len(args)] if len(names) >= len(args) else []) + order
    flat_top, _ = flatten(tuple(args) + tuple(kwargs[k] for k in order))
    placeholders = [n for n in rec.graph.nodes if n.op == "placeholder"]
    simple = len(flat_top) == len(user_names) == len(placeholders)
    input_meta = []
    for i, node in enumerate(placeholders):
        ph = g.placeholder(user_names[i] if simple else f"arg{i}_1")
        env[node] = ph
        value = node.meta.get("val")
        if isinstance(value, Tensor):
            specs.append(InputSpec(InputKind.USER_INPUT, TensorArgument(ph.name), None))
            input_meta.append((ph.name, tuple(value.shape), value.dtype))
        else:
            specs.append(InputSpec(InputKind.USER_INPUT, ConstantArgument(ph.name, value),
                                   None))
            input_meta.append((ph.name, None, None))
    for node in rec.graph.nodes:
        if node.op == "get_attr" and node.target in others:
            env[node] = g.get_attr(node.target)
    out_specs = []
    for node in rec.graph.nodes:
        if node.op == "call_function":
            new = g.node_copy(node, lambda n: env[n])
            new.meta.update(node.meta)
            env[node] = new
        elif node.op == "output":
            leaves, out_spec = flatten(node.args[0])
            mapped = tuple(env[x] if x in env else x for x in leaves)
            g.output(mapped)
            for x in mapped:
                if hasattr(x, "op"):
                    out_specs.append(OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(x.name),
                                                None))
                else:
                    out_specs.append(OutputSpec(OutputKind.USER_OUTPUT,
                                                ConstantArgument("", x), None))
    gm = GraphModule(others, g)
    ranges = {d.__name__: (d.min, d.max) for dims in dyn for d in dims.values()}
    _, in_spec = flatten(tuple(args) + tuple(kwargs[k] for k in order))
    ep = ExportedProgram(gm, ExportGraphSignature(specs, out_specs), state_dict, constants,
                         ranges, (tuple(args), kwargs), in_spec, out_spec, input_meta,
                         _per_leaf(dyn, args, kwargs, order, len(input_meta)))
    ep._kwarg_names = order
    ep._in_types = ", ".join(m[0] for m in input_meta)
    return ep


def _per_leaf(dyn, args, kwargs, order, n_leaves) -> list:
    """The Dims of each flattened tensor input (nested inputs are static)."""
    values = list(args) + [kwargs[k] for k in order]
    if len(values) == n_leaves and all(isinstance(v, Tensor) for v in values):
        return dyn
    return [{} for _ in range(n_leaves)]
