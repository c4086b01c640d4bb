"""``ember.onnx``: PyTorch's ``torch.onnx.export`` on ember's op capture.

NOTE [ ONNX export ]
What it captures: the ops a model runs on the example inputs, at the op level, through the
shared recorder (``fx.experimental.proxy_tensor.record``, NOTE [ Op recording ]): each
``Function.apply`` as an ``Op`` named as ATen's, with the apply's own arguments
(``_capture.py`` reads its graph); the functions without a ``Function`` (comparisons,
``argmax``, tensors made in forward) are nodes too (``record(offer=True)``).  A tensor that
still reaches an op from outside (a NumPy round trip) is checked by a run on other input
values: if it changes, export refuses rather than bake it.  With ``dynamic_axes`` the
model runs a second time on inputs grown along those axes: a shape or an integer argument
that differs between the two runs follows a dynamic axis (a ``Sym``), and the exporter
computes it in the graph from the inputs' shapes instead of baking it in.
What it produces: an ``onnx.ModelProto`` (the ``onnx`` package is an optional extra,
imported on first use), one converter per op (``_ops.py``, keyed by the op's ``Function``
class, as one ATen name covers several forms) emitting nodes through ``onnx.helper``
(``_builder.py``); parameters and buffers become initializers under their ``state_dict``
names, and an op whose inputs are all constants is folded (its captured output becomes an
initializer).  An op without a converter raises ``UnsupportedOperatorError`` naming the op
and the opset, unless ``register_custom_op_symbolic`` gave one.
The life of one call: ``export`` -> model in eval mode -> ``capture`` (one or two runs) ->
for each node: fold, custom symbolic, or converter -> outputs, dynamic dims named ->
``ModelProto`` -> written to ``f``.  ember has one exporter: ``dynamo=True`` and
``dynamo=False`` both use it (``dynamo=True`` also returns an ``ONNXProgram``).
"""
from __future__ import annotations

import contextlib
import enum
import inspect
import os

from . import errors
from .errors import OnnxExporterError

__all__ = ["export", "is_in_onnx_export", "OperatorExportTypes", "TrainingMode",
           "register_custom_op_symbolic", "unregister_custom_op_symbolic", "ONNXProgram",
           "OnnxExporterError", "errors", "select_model_mode_for_export", "producer_name",
           "producer_version"]

producer_name = "ember"
producer_version = "0.1"

_DEFAULT_OPSET = 17
_MIN_OPSET, _MAX_OPSET = 13, 21
_IN_EXPORT = [False]
_CUSTOM = {}   # op name (namespace dropped) -> [(opset_version, symbolic_fn)]


class OperatorExportTypes(enum.IntEnum):
    """How ops are exported (only ``ONNX`` is honoured: ember has no ATen fallback)."""
    ONNX = 0
    ONNX_ATEN = 1
    ONNX_ATEN_FALLBACK = 2
    ONNX_FALLTHROUGH = 3


class TrainingMode(enum.IntEnum):
    """The module mode the model is exported in."""
    EVAL = 0
    PRESERVE = 1
    TRAINING = 2



def is_in_onnx_export() -> bool:
    """Whether an ``export`` call is running (a model can branch on it)."""
    return _IN_EXPORT[0]


def register_custom_op_symbolic(symbolic_name: str, symbolic_fn, opset_version: int) -> None:
    """Export op ``symbolic_name`` (``"namespace::op"``) with ``symbolic_fn(g, *args)``.

    ``g.op("OnnxOp", *inputs, attr_f=1.0, ...)`` adds a node as in PyTorch (attribute
    suffixes ``_i``, ``_f``, ``_s``, ``_t``, ``_is``, ``_fs``); tensor arguments arrive as
    graph values, the rest as Python values.  Used from ``opset_version`` on.
    """
    import re
    if not isinstance(symbolic_name, str) or not re.match(
            r"^[a-zA-Z0-9-_]*::[a-zA-Z-_]+[a-zA-Z0-9-_]*$", symbolic_name):
        raise ValueError(f"Failed to register operator {symbolic_name}. The symbolic name "
                         f"must match the format domain::name, and should start with a "
                         f"letter and contain only alphanumerical characters")
    if not callable(symbolic_fn):
        raise TypeError("symbolic_fn must be callable")
    name = symbolic_name.split("::")[-1]
    _CUSTOM.setdefault(name, []).append((int(opset_version), symbolic_fn))


def unregister_custom_op_symbolic(symbolic_name: str, opset_version: int) -> None:
    """Undo ``register_custom_op_symbolic`` for that name and opset."""
    name = symbolic_name.split("::")[-1]
    entries = [e for e in _CUSTOM.get(name, []) if e[0] != int(opset_version)]
    if entries:
        _CUSTOM[name] = entries
    else:
        _CUSTOM.pop(name, None)


@contextlib.contextmanager
def select_model_mode_for_export(model, mode: TrainingMode):
    """Put ``model`` in ``mode`` for the block, then back in the mode it had."""
    was = getattr(model, "training", None)
    if mode == TrainingMode.EVAL and was is not None:
        model.train(False)
    elif mode == TrainingMode.TRAINING and was is not None:
        model.train(True)
    try:
        yield
    finally:
        if was is not None:
            model.train(was)


class ONNXProgram:
    """What ``export(..., dynamo=True)`` returns: the model proto, ``save`` and a runner."""

    def __init__(self, model_proto):
        self.model_proto = model_proto
        self._session = None

    @property
    def model(self):
        return self.model_proto

    def save(self, destination, *, include_initializers: bool = True,
             keep_initializers_as_inputs: bool = False, external_data=None) -> None:
        """Write the model to ``destination`` (a path or a binary file)."""
        _write(self.model_proto, destination, external_data)

    def __call__(self, *args):
        """Run the model in onnxruntime on tensors; returns ember tensors."""
        import numpy as np
        from .. import _tensor
        if self._session is None:
            ort = _import("onnxruntime")
            self._session = ort.InferenceSession(self.model_proto.SerializeToString(),
                                                 providers=["CPUExecutionProvider"])
        feeds = {i.name: (a.numpy() if isinstance(a, _tensor.Tensor) else np.asarray(a))
                 for i, a in zip(self._session.get_inputs(), args)}
        import ember
        return [ember.from_numpy(np.asarray(o)) for o in self._session.run(None, feeds)]

    def __repr__(self):
        g = self.model_proto.graph
        return (f"ONNXProgram(inputs={[i.name for i in g.input]}, outputs="
                f"{[o.name for o in g.output]}, nodes={len(g.node)})")


def _import(name: str):
    try:
        import importlib
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(f"ember.onnx needs the '{name}' package: pip install "
                          f"'ember[{name}]' (or pip install {name})") from None


def _write(proto, f, external_data) -> None:
    onnx = _import("onnx")
    if isinstance(f, (str, os.PathLike)):
        big = proto.ByteSize() > 2 ** 31 - 1
        if external_data and big:
            onnx.save_model(proto, os.fspath(f), save_as_external_data=True,
                            location=os.path.basename(os.fspath(f)) + ".data")
        else:
            onnx.save_model(proto, os.fspath(f))
    elif hasattr(f, "write"):
        f.write(proto.SerializeToString())
    else:
        raise TypeError(f"onnx.export: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")


def _dynamic_from_shapes(dynamic_shapes, names):
    """``dynamic_shapes`` (by input name, or a tuple by position: ``{axis: name or Dim}``) as
    ``dynamic_axes``."""
    if isinstance(dynamic_shapes, dict):
        specs = [dynamic_shapes.get(n) for n in names]
    else:
        specs = list(dynamic_shapes)
    out = {}
    for n, spec in zip(names, specs):
        if spec:
            out[n] = {int(ax): d if isinstance(d, str) else
                      getattr(d, "__name__", None) or f"{n}_dim_{ax}"
                      for ax, d in dict(spec).items()}
    return out


def _axes_of(spec, name):
    """One entry of ``dynamic_axes`` as ``{axis: dim name}``."""
    if isinstance(spec, dict):
        return {int(k): str(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return {int(k): f"{name}_dynamic_axes_{i + 1}" for i, k in enumerate(spec)}
    raise ValueError(f"dynamic_axes[{name!r}] must be a dict or a list of axes, got "
                     f"{type(spec).__name__}")


def _grown(t, axes: dict, rank: int):
    """``t`` grown by a different amount along each dynamic axis (for the second capture)."""
    import ember
    out = t
    for k, ax in enumerate(sorted(axes)):
        if not -t.ndim <= ax < t.ndim:
            raise ValueError(f"dynamic_axes: axis {ax} is out of range for an input of "
                             f"{t.ndim} dims")
        ax %= t.ndim
        extra = rank * 7 + k + 1  # distinct growth per axis, so sizes tell axes apart
        n = out.shape[ax]
        if n == 0:
            raise ValueError("dynamic_axes: cannot grow an empty axis")
        reps = [out.narrow(ax, 0, min(n, extra))]
        while sum(r.shape[ax] for r in reps) < extra:
            reps.append(out.narrow(ax, 0, min(n, extra - sum(r.shape[ax] for r in reps))))
        out = ember.cat([out] + reps, ax)
    return out


def export(model, args=(), f=None, *, kwargs=None, verbose=None, input_names=None,
           output_names=None, opset_version=None, dynamo=True, external_data=True,
           dynamic_shapes=None, custom_translation_table=None, report=False, optimize=True,
           verify=False, profile=False, dump_exported_program=False, artifacts_dir=".",
           export_params=True, keep_initializers_as_inputs=False, dynamic_axes=None,
           training=TrainingMode.EVAL, operator_export_type=OperatorExportTypes.ONNX,
           do_constant_folding=True, custom_opsets=None, export_modules_as_functions=False,
           autograd_inlining=True):
    """Export ``model(*args)`` to ONNX, written to ``f``; an ``ONNXProgram`` when ``dynamo``.

    ``torch.onnx.export``: ``opset_version`` 13-21 (default 17), ``dynamic_axes``
    ``{input or output name: {axis: dim name}}`` (or a list of axes), ``input_names``/
    ``output_names``, ``export_params``, ``keep_initializers_as_inputs``,
    ``do_constant_folding``, ``training``.  Both ``dynamo`` values use ember's one exporter.
    """
    onnx = _import("onnx")
    from .. import _tensor
    if isinstance(args, _tensor.Tensor):
        args = (args,)
    args = tuple(args)
    if args and isinstance(args[-1], dict) and kwargs is None:  # torch's trailing kwargs dict
        kwargs, args = args[-1], args[:-1]
    kwargs = dict(kwargs or {})
    for i, a in enumerate(args):
        if not isinstance(a, _tensor.Tensor):
            raise TypeError(f"onnx.export: args must be tensors, got {type(a).__name__} for "
                            f"input {i}")
    opset = _DEFAULT_OPSET if opset_version is None else int(opset_version)
    if not _MIN_OPSET <= opset <= _MAX_OPSET:
        raise RuntimeError(f"Unsupported onnx_opset_version: {opset} (ember.onnx supports "
                           f"opset versions {_MIN_OPSET} to {_MAX_OPSET})")
    if operator_export_type != OperatorExportTypes.ONNX:
        raise ValueError(f"operator_export_type {OperatorExportTypes(operator_export_type).name}"
                         f" is not supported: ember exports standard ONNX ops only")
    if _IN_EXPORT[0]:
        raise RuntimeError("onnx.export is already running (a nested export)")
    _IN_EXPORT[0] = True
    try:
        with select_model_mode_for_export(model, TrainingMode(training)):
            proto = _export_proto(onnx, model, args, kwargs, input_names, output_names, opset,
                                  dynamic_axes, dynamic_shapes, do_constant_folding,
                                  export_params, keep_initializers_as_inputs)
    finally:
        _IN_EXPORT[0] = False
    if verbose:
        print(onnx.printer.to_text(proto.graph))
    if f is not None:
        _write(proto, f, external_data)
    return ONNXProgram(proto) if dynamo else None


def _input_names(model, n: int, given):
    if given is not None:
        given = list(given)
        if len(given) > n:
            raise ValueError(f"input_names has {len(given)} names for {n} inputs")
    names = list(given or [])
    try:
        fwd = model.forward if hasattr(model, "forward") else model
        params = [p.name for p in inspect.signature(fwd).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    for i in range(len(names), n):
        names.append(params[i] if i < len(params) and params[i] not in names else f"input_{i}")
    return names


def _export_proto(onnx, model, args, kwargs, input_names, output_names, opset, dynamic_axes,
                  dynamic_shapes, fold, export_params, keep_inits):
    from . import _capture, _ops
    from ._builder import Builder
    from .errors import UnsupportedOperatorError
    helper = onnx.helper
    in_names = _input_names(model, len(args), input_names)
    if dynamic_axes is None and dynamic_shapes is not None:
        dynamic_axes = _dynamic_from_shapes(dynamic_shapes, in_names)
    dyn = {k: _axes_of(v, k) for k, v in (dynamic_axes or {}).items()}
    params = {}
    if hasattr(model, "named_parameters"):
        for name, p in model.named_parameters(remove_duplicate=True):
            params.setdefault(id(p), name)
        for name, b in model.named_buffers(remove_duplicate=True):
            params.setdefault(id(b), name)
    args2 = None
    if any(n in dyn for n in in_names):
        args2 = tuple(_grown(a, dyn[n], i) if n in dyn else a
                      for i, (n, a) in enumerate(zip(in_names, args)))
    graph = _capture.capture(model, args, kwargs, params, args2)
    b = Builder(onnx, opset, graph, fold, params)
    for v, n in zip(graph.inputs, in_names):
        b.names[id(v)] = n
        for ax, dn in dyn.get(n, {}).items():
            b.dim_names[(id(v), ax % max(v.ndim, 1))] = dn
    for node in graph.nodes:
        _convert(b, node, _ops, UnsupportedOperatorError)
    # outputs: an Identity each, so names are free and an input can be an output
    n_out = len(graph.outputs)
    out_names = list(output_names or [])
    if len(out_names) > n_out:
        raise ValueError(f"output_names has {len(out_names)} names for {n_out} outputs")
    for i in range(len(out_names), n_out):
        out_names.append("output" if n_out == 1 else f"output_{i}")
    for key in dyn:
        if key not in in_names and key not in out_names:
            import warnings
            warnings.warn(f"Provided key {key} for dynamic axes is not a valid input/output "
                          f"name", UserWarning, stacklevel=3)
    for v, name in zip(graph.outputs, out_names):
        b.nodes.append(helper.make_node("Identity", [b.name(v)], [name],
                                        name=b.fresh("nIdentity")))
    inputs = [_value_info(helper, b, v, n, dyn.get(n, {})) for v, n in
              zip(graph.inputs, in_names)]
    outputs = [_value_info(helper, b, v, n, dyn.get(n), out=True) for v, n in
               zip(graph.outputs, out_names)]
    inits = [onnx.numpy_helper.from_array(a, name) for name, a in b.inits.items()]
    if not export_params:  # parameters become inputs the caller feeds
        pnames = set(params.values())
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in inits if t.name in pnames]
        inits = [t for t in inits if t.name not in pnames]
    elif keep_inits:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in inits]
    g = helper.make_graph(b.nodes, getattr(model, "_get_name", lambda: "main_graph")(),
                          inputs, outputs, inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=producer_name, producer_version=producer_version)
    proto.ir_version = min(proto.ir_version, 10)  # what onnxruntime 1.2x reads
    return proto


def _convert(b, node, _ops, UnsupportedOperatorError) -> None:
    """Emit one captured node: folded, by a custom symbolic, or by its converter."""
    from ._capture import Sym, Value
    flat = list(_flat(list(node.args) + list(node.kwargs.values())))
    tensors = [a for a in flat if isinstance(a, Value)]
    if node.name in _ops.RANDOM:
        raise UnsupportedOperatorError(
            f"Exporting the operator 'aten::{node.name}' to ONNX opset version {b.opset} is "
            f"not supported (a random draw inside forward would be baked in)")
    static_outs = all(isinstance(o, Value) and (o.shape2 is None or o.shape2 == o.shape)
                      for o in node.outs if o is not None)
    # an op of constants is folded; one with no tensor input at all (a tensor made in
    # forward: ember.tensor, zeros, arange) is its recorded value unless its size is dynamic
    if static_outs and not any(isinstance(a, Sym) for a in flat) and (not tensors or (
            b.fold and all(t.kind in ("param", "const") for t in tensors))):
        for o in node.outs:
            if isinstance(o, Value):
                o.kind = "const"
        return
    custom = [e for e in _CUSTOM.get(node.name, []) if e[0] <= b.opset]
    if custom:
        outs = max(custom, key=lambda e: e[0])[1](_SymbolicContext(b), *[
            _Arg(b, a) if isinstance(a, Value) else a for a in node.args])
    else:
        fn = None
        for c in (node.cls.__mro__ if node.cls is not None else ()):
            fn = _ops.CONVERTERS.get(c)  # a subclass made per mode (a resample kernel)
            if fn is not None:
                break
        if fn is None:
            fn = _ops.CONVERTERS_BY_NAME.get(node.name)
        if fn is None:
            raise UnsupportedOperatorError(
                f"Exporting the operator 'aten::{node.name}' to ONNX opset version "
                f"{b.opset} is not supported (ember has no ONNX converter for it; "
                f"register one with ember.onnx.register_custom_op_symbolic)")
        outs = fn(b, node)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    for o, n in zip(node.outs, outs):
        if isinstance(o, Value) and n is not None:
            b.names[id(o)] = n if isinstance(n, str) else n.name


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        elif isinstance(a, slice):
            yield from (a.start, a.stop, a.step)
        else:
            yield a


class _Arg:
    """A graph value as a custom symbolic sees it (its ONNX name, type and shape)."""

    def __init__(self, b, v):
        self.name = b.name(v)
        self.value = v

    def type(self):
        return self

    def sizes(self):
        return list(self.value.shape)

    def scalarType(self):
        return str(self.value.dtype)


class _SymbolicContext:
    """The ``g`` of a custom symbolic: ``g.op(op_type, *inputs, **attrs)`` as PyTorch's."""

    _SUFFIX = ("_i", "_f", "_s", "_t", "_is", "_fs", "_ss")

    def __init__(self, b):
        self._b = b

    def op(self, op_type: str, *inputs, outputs: int = 1, **attrs):
        import numpy as np
        b = self._b
        names = []
        for x in inputs:
            if isinstance(x, _Arg):
                names.append(x.name)
            elif x is None:
                names.append("")
            else:
                names.append(b.const(np.asarray(x)))
        clean = {}
        for k, v in attrs.items():
            for s in sorted(self._SUFFIX, key=len, reverse=True):
                if k.endswith(s):
                    if s == "_t":  # a tensor attribute
                        arr = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
                        v = _import("onnx").numpy_helper.from_array(np.array(arr, order="C"))
                    k = k[:-len(s)]
                    break
            clean[k] = v
        if "::" in op_type:
            op_type = op_type.split("::")[-1]
        outs = b.op(op_type, names, outputs, **clean)
        if outputs == 1:
            return _Named(outs)
        return tuple(_Named(o) for o in outs)


class _Named(_Arg):
    def __init__(self, name):
        self.name = name
        self.value = None


def _value_info(helper, b, v, name, axes, out=False):
    """The graph input/output ``name`` with its dtype and shape; dynamic dims named."""
    dims = list(v.shape)
    if axes:
        for ax, dn in axes.items():
            dims[ax % max(len(dims), 1)] = dn
    if out and v.shape2 is not None:
        for ax in range(len(dims)):
            if isinstance(dims[ax], int) and v.shape2[ax] != v.shape[ax]:
                dims[ax] = _dim_name(b, v.shape[ax], v.shape2[ax], f"{name}_dim_{ax}")
    return helper.make_tensor_value_info(name, b.dtype(v.dtype), dims)


def _dim_name(b, a, c, default):
    """The name the inputs gave the dynamic size (a, c), for an output dim."""
    hit = b._dims.get((a, c))
    if hit is not None:
        v, ax = hit
        return b.dim_names.get((id(v), ax), default)
    return default
