"""TorchScript records beside ember's own in a ``jit.save`` archive, so real
``torch.jit.load`` reads a traced ember module (the issue's stretch goal).

NOTE [ TorchScript records ]
TorchScript's archive (``torch/csrc/jit/serialization``) is the checkpoint container with:
``data.pkl``, the module object pickled as ``__torch__.<Class>`` objects (NEWOBJ + BUILD of
a dict: ``training``, ``_is_full_backward_hook``, each parameter and buffer as a tensor
record, each child module); ``constants.pkl``, the tuple of tensor constants the code reads
as ``CONSTANTS.cN``; and ``code/__torch__.py``, the classes' TorchScript source.  ember writes
one class per kind of module (named as the module's class; the root, which alone has
``forward``, gets its own), and
``forward`` spells each recorded op as the ``torch.*`` call with PyTorch's semantics
(``_SPELLING``).  Only graphs whose every op has a spelling, over flat tensor inputs and a
tensor or tuple-of-tensors output, get these records; otherwise the archive is ember's only.
The tensor records are shared with ember's own pickle (one ``data/<key>`` per storage).
"""
from __future__ import annotations

import operator
import pickle

from .._tensor import Tensor

__all__ = ["torchscript_records"]


class Unsupported(Exception):
    """The graph has something TorchScript's records cannot spell."""


def _lit(a, var) -> str:
    """A TorchScript literal (or variable) for an op argument."""
    from ..fx.node import Node
    if isinstance(a, Node):
        return var(a)
    if a is None or type(a) in (bool, int):
        return repr(a)
    if type(a) is float:
        return repr(a) if a == a and a not in (float("inf"), float("-inf")) else \
            _unsupported(f"the float {a}")
    if type(a) in (tuple, list) and all(type(e) is int or isinstance(e, Node) for e in a):
        return "[" + ", ".join(var(e) if isinstance(e, Node) else repr(e) for e in a) + "]"
    if type(a) is str and a.isidentifier():
        return repr(a).replace("'", '"')
    return _unsupported(f"the argument {a!r}")


def _unsupported(what):
    raise Unsupported(what)


def _conv(args, L, *_):
    x, w, b, g = args
    if g.lo != g.hi:
        _unsupported("asymmetric convolution padding")
    n = len(g.k)
    if n not in (1, 2, 3):
        _unsupported(f"a {n}-d convolution")
    return (f"torch.conv{n}d({L(x)}, {L(w)}, {L(b)}, {L(list(g.stride))}, {L(list(g.lo))}, "
            f"{L(list(g.dil))}, {L(g.groups)})")


def _pool(args, L, *_):
    x, k, s, p, d, _, ceil = args
    n = len(k)
    if n not in (1, 2, 3):
        _unsupported(f"a {n}-d max pool")
    return (f"torch.max_pool{n}d({L(x)}, {L(list(k))}, {L(list(s))}, {L(list(p))}, "
            f"{L(list(d))}, {L(ceil)})")


def _binary(name):
    def spell(args, L, *_):
        a, b = args[0], args[1]
        if not hasattr(a, "op"):
            _unsupported(f"{name} with a number first")
        return f"torch.{name}({L(a)}, {L(b)})"
    return spell


def _reduce(name):
    def spell(args, L, *_):
        x, dims, keep = args[0], args[1], args[2]
        if len(args) > 3 and args[3] is not None:
            _unsupported(f"{name} with a dtype")
        return f"torch.{name}({L(x)}, {L(list(dims))}, {L(keep)})"
    return spell


def _copy_op():
    from ..fx.experimental.proxy_tensor import COPY_
    return COPY_


def _adaptive_avg(args, L, *_):
    x, size = args[0], args[1]
    n = len(size)
    if n not in (1, 2, 3) or any(s is None for s in size):
        _unsupported("this adaptive average pool")
    return f"torch.adaptive_avg_pool{n}d({L(x)}, {L(list(size))})"


def _layer_norm(args, L, C):
    x, w, b, layout, eps = args
    shape = getattr(C(layout), "pshape", None)
    if shape is None or not all(type(n) is int for n in shape):
        _unsupported("this layer norm")
    return f"torch.layer_norm({L(x)}, {L(list(shape))}, {L(w)}, {L(b)}, {L(eps)}, True)"


def _unary(name):
    return lambda args, L, *_: f"torch.{name}({L(args[0])})"


# ember op class -> its TorchScript spelling (args as the recorder saw them)
_SPELLING = {
    "ember.ops.elementwise:Relu": _unary("relu"),
    "ember.ops.elementwise:Tanh": _unary("tanh"),
    "ember.ops.elementwise:Sigmoid": _unary("sigmoid"),
    "ember.ops.elementwise:Exp": _unary("exp"),
    "ember.ops.elementwise:Neg": _unary("neg"),
    "ember.ops.elementwise:Add": _binary("add"),
    "ember.ops.elementwise:Sub": _binary("sub"),
    "ember.ops.elementwise:Mul": _binary("mul"),
    "ember.ops.elementwise:Div": _binary("div"),
    "ember.ops.activation:Gelu": lambda a, L, *_: f"torch.gelu({L(a[0])}, approximate={L(a[1])})",
    "ember.ops.activation:Softmax": lambda a, L, *_: f"torch.softmax({L(a[0])}, {L(a[1])})",
    "ember.ops.activation:LogSoftmax": lambda a, L, *_: f"torch.log_softmax({L(a[0])}, {L(a[1])})",
    "ember.ops.layers:_Linear": lambda a, L, *_: f"torch.linear({L(a[0])}, {L(a[1])}, {L(a[2])})",
    "ember.ops.layers:_LinearView": lambda a, L, *_: (
        f"torch.linear({L(a[0])}, {L(a[1])}, {L(a[2])})"),
    "ember.ops.normalization:_LayerNorm": _layer_norm,
    "ember.ops.linalg:_Mm": lambda a, L, *_: f"torch.mm({L(a[0])}, {L(a[1])})",
    "ember.ops.movement:Reshape": lambda a, L, *_: f"torch.reshape({L(a[0])}, {L(list(a[1]))})",
    "ember.ops.movement:TransposeT": lambda a, L, *_: f"torch.permute({L(a[0])}, {L(list(a[1]))})",
    "ember.ops.conv:_Conv": _conv,
    "ember.ops.pooling:_MaxPool": _pool,
    "ember.ops.normalization:_BatchNormEval": lambda a, L, *_: (
        f"torch.batch_norm({L(a[0])}, {L(a[1])}, {L(a[2])}, {L(a[3])}, {L(a[4])}, False, 0.1, "
        f"{L(a[6])}, False)"),
    "ember.ops.pooling:_AdaptiveAvgPool": _adaptive_avg,
    "ember.ops.reduce:Mean": _reduce("mean"),
    "ember.ops.reduce:Sum": _reduce("sum"),
    "ember.ops.reduce:SumAll": _reduce("sum"),
}


# the size arithmetic of a symbolic trace, by ``_op_key``: TorchScript's int ops
_SIZE_OPS = {"symbolic:sym_size": "torch.size", "operator:mul": "torch.mul",
             "operator:add": "torch.add"}


def _key(target):
    cls = getattr(getattr(target, "_fn", None), "__self__", None)
    return f"{cls.__module__}:{cls.__qualname__}" if isinstance(cls, type) else None


class _TSObject:
    """A ``__torch__.<name>`` object in TorchScript's ``data.pkl``."""

    def __init__(self, name: str, state: dict):
        self.name, self.state = name, state


def _classes(root) -> tuple:
    """``(source of every class, the root's _TSObject)``, one class per module."""
    classes = []
    bodies = {}  # class body -> its name: modules of one kind and layout share a class

    def visit(m):
        i = len(classes)
        classes.append(None)
        params = [n for n, p in m._parameters.items() if p is not None]
        buffers = [n for n, b in m._buffers.items() if b is not None]
        state = {"training": bool(m.training), "_is_full_backward_hook": None}
        lines = ["  __parameters__ = [" + "".join(f'"{n}", ' for n in params) + "]",
                 "  __buffers__ = [" + "".join(f'"{n}", ' for n in buffers) + "]"]
        lines += [f"  {n} : Tensor" for n in params + buffers]
        lines += ["  training : bool", "  _is_full_backward_hook : Optional[bool]"]
        for n in params:
            p = m._parameters[n]
            state[n] = p.detach().requires_grad_(p.requires_grad)
        for n in buffers:
            state[n] = m._buffers[n].detach()
        for n, child in m._modules.items():
            if child is None:
                continue
            cname, obj = visit(child)
            state[n] = obj
            lines.append(f"  {n} : __torch__.{cname}" if n.isidentifier() else
                         f'  __annotations__["{n}"] = __torch__.{cname}')
        kind = getattr(m, "original_name", type(m).__name__)
        kind = kind if kind.isidentifier() else "Module"
        key = (kind, tuple(lines)) if i else None  # the root gets forward: its own class
        name = bodies.get(key)
        if name is None:
            taken = set(bodies.values())
            name = kind if kind not in taken else next(
                f"{kind}_{n}" for n in range(1, len(classes) + 2) if f"{kind}_{n}" not in taken)
            bodies[key] = name
            classes[i] = [f"class {name}(Module):"] + lines
        return name, _TSObject(name, state)

    root_name, obj = visit(root)
    return [c for c in classes if c is not None], obj, root_name


def _forward(program, in_spec, constants, root_name) -> tuple:
    """The root's ``forward`` source and the tensors ``CONSTANTS`` holds."""
    from ..jit._serialization import _op_key
    graph = program.graph
    names, consts, body, inputs, values = {}, [], [], [], {}
    if in_spec is None or in_spec[0] is not tuple or any(s is not None for s in in_spec[1]):
        _unsupported("nested inputs")

    def var(node):
        return names[node]

    for node in graph.nodes:
        if node.op == "placeholder":
            names[node] = f"i_{node.name}"
            inputs.append(f"{names[node]}: Tensor")
        elif node.op == "get_attr":
            names[node] = f"a_{node.name}"
            if node.target in constants:
                value = constants[node.target]
                if not isinstance(value, Tensor):
                    values[node] = value  # a non-tensor extra (a layout): for spellings only
                    continue
                consts.append(value)
                body.append(f"    {names[node]} = CONSTANTS.c{len(consts) - 1}")
                continue
            expr = "self"
            for part in node.target.split("."):
                expr = f"{expr}.{part}" if part.isidentifier() else f'getattr({expr}, "{part}")'
            body.append(f"    {names[node]} = {expr}")
        elif node.op == "call_function":
            if node.target is operator.getitem:
                _unsupported("an op with several results")
            if node.target is _copy_op():  # an in-place op's write: ``dst`` is ``src`` now
                dst, src = node.args[0], node.args[1]
                if dst.op in ("placeholder", "get_attr"):
                    _unsupported("an in-place write to an input, parameter or buffer")
                names[node] = var(src)
                continue
            if isinstance(node.target, type):  # an op's extra built from symbolic sizes
                values[node] = node.target(*node.args)
                continue
            size_op = _SIZE_OPS.get(_op_key(node.target))
            if size_op is not None:  # a symbolic size (NOTE [ Sizes from two captures ])
                names[node] = f"v_{node.name}"
                body.append(f"    {names[node]} = {size_op}({_lit(node.args[0], var)}, "
                            f"{_lit(node.args[1], var)})")
                continue
            spell = _SPELLING.get(_key(node.target))
            if spell is None:
                _op_key(node.target)  # an op ember cannot name at all raises its own error
                _unsupported(f"op {node.target.__name__}")
            names[node] = f"v_{node.name}"
            expr = spell(node.args, lambda a: _lit(a, var), lambda n: values[n])
            body.append(f"    {names[node]} = {expr}")
        elif node.op == "output":
            out = node.args[0]
            if hasattr(out, "op"):
                body.append(f"    return {var(out)}")
                ret = "Tensor"
            elif type(out) is tuple and out and all(hasattr(o, "op") for o in out):
                body.append("    return (" + ", ".join(var(o) for o in out) + ",)")
                ret = "Tuple[" + ", ".join("Tensor" for _ in out) + "]"
            else:
                _unsupported("an output that is not a tensor or a tuple of tensors")
    head = [f"  def forward(self: __torch__.{root_name}" + "".join(f",\n    {a}" for a in inputs) +
            f") -> {ret}:"]
    return head + body, consts


def torchscript_records(root, program, in_spec, constants, pickler_cls, storages):
    """``{record name: bytes}`` of TorchScript's part of the archive, or None when the graph
    has an op or a signature TorchScript's records cannot spell (NOTE [ TorchScript
    records ])."""
    import io
    try:
        classes, obj, root_name = _classes(root)
        forward, consts = _forward(program, in_spec, constants, root_name)
    except Unsupported:
        return None
    classes[0] = classes[0] + forward
    code = "\n".join("\n".join(c) for c in classes) + "\n"

    class _TSPickler(pickler_cls):
        def save(self, o, save_persistent_id=True):
            if type(o) is _TSObject:
                from ..serialization import _TorchRef
                self._global(_TorchRef("__torch__", o.name), "__torch__", o.name)
                self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
                self.memoize(o)
                self.save(o.state)
                self.write(pickle.BUILD)
                return
            super().save(o, save_persistent_id)

    from ..serialization import _StorageTable, _flat_bytes
    data, const = io.BytesIO(), io.BytesIO()
    _TSPickler(data, 2, storages).dump(obj)
    const_storages = _StorageTable()  # TorchScript reads constants' storages from constants/
    _TSPickler(const, 2, const_storages).dump(tuple(consts))
    records = {"data.pkl": data.getvalue(), "constants.pkl": const.getvalue(),
               "code/__torch__.py": code.encode()}
    for key, arr, _ in const_storages.order:
        records[f"constants/{key}"] = bytes(_flat_bytes(arr))
    return records
