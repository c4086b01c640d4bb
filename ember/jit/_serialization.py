"""``jit.save`` / ``jit.load``: a traced (or scripted) module as a zip archive; loading runs
no code from the file.

NOTE [ jit archive ]
The archive is PyTorch's checkpoint container (``ember/serialization.py``): ``ember_jit.pkl``
(pickle protocol 2, tensors as ``torch._utils._rebuild_tensor_v2`` over ``data/<key>``
storage records, 64-byte aligned), ``.format_version``, ``byteorder``, ``version``
(``.data/version`` 10 when the TorchScript records are there, as real torch writes), plus
``ember_jit`` (the marker and format version), ``code/forward.py`` (the graph's code, for
people to read; never executed) and ``extra/<name>`` (``_extra_files``); a traced module
whose ops TorchScript can spell also gets TorchScript's ``data.pkl``, ``constants.pkl`` and
``code/__torch__.py`` (NOTE [ TorchScript records ] in ``_torchscript.py``), which
``ember.jit.load`` never reads.
``ember_jit.pkl`` holds only plain data: ``{"format": "ember.jit", "kind": "traced" |
"scripted" | "function", "module": tree, "graph": [node...], "constants": {name: tensor},
"values": {name: constant}, "in_spec": spec, "methods": {name: {"graph", "in_spec"}}}``
(``methods``: ``trace_module``'s methods other than forward), where a module tree is ``{"name",
"training", "parameters", "buffers", "non_persistent", "children"}``
and a node is a tagged list (``["call", name, op_key, args, kwargs, grad_mode]``...).  Every
constant in an op's arguments is written in a tagged form (``["tuple", ...]``,
``["npdtype", "float32"]``, ``["slice", a, b, c]``...), so the pickle has no globals but
torch's tensor rebuilders and dtypes.  ``load`` reads ``ember_jit.pkl`` with ``ember.load``'s
allow-list unpickler (``weights_only=True``), then checks every field's type; an op is found
by its Function class's ``module:qualname`` among the ``Function`` subclasses ember has already
defined (nothing is imported by a name from the file), a namedtuple constant only among
classes already loaded in an ``ember.`` module, and an op's helper object (a convolution's
geometry) only among plain classes of a loaded ``ember.ops`` module, made without calling any
of its methods by setting the fields the file lists (the only ones its ``__slots__`` allow).
An op's recorded arguments can still be wrong for the op (a hostile file can make it raise
or compute garbage, as a hostile state_dict can); they cannot name code to run.
"""
from __future__ import annotations

import io
import keyword
import operator
import os
import sys
import warnings

import numpy as np

from .. import _dtype
from .._backend import device as _device
from .._size import Size
from .._tensor import Tensor
from ..nn import Module, Parameter
from ._program import _plain_state

__all__ = ["save", "load"]

FORMAT = "ember.jit"
VERSION = 1
_MARKER = f"{FORMAT} {VERSION}\n".encode()


def _bad(msg: str):
    return RuntimeError(f"not a valid ember.jit archive: {msg}")


# ---- ops by name -------------------------------------------------------------------------------
def _special_ops() -> dict:
    """The recorder's own ops and the functions it offers (NOTE [ Op recording ]), by key."""
    import ember
    from ..fx.experimental import proxy_tensor as P
    from ..ops import attention
    from ..fx.experimental.symbolic_shapes import SYM_SIZE
    table = {"operator:getitem": operator.getitem, "proxy:dropout_mask": P.DROPOUT_MASK,
             "proxy:copy_": P.COPY_,
             # symbolic sizes (NOTE [ Sizes from two captures ]): x.size(d), and ints' * and +
             "symbolic:sym_size": SYM_SIZE, "operator:mul": operator.mul,
             "operator:add": operator.add}
    for name in P.OFFERED:
        for owner_name, owner in (("ember", ember), ("Tensor", Tensor)):
            fn = vars(owner).get(name)
            if fn is not None:
                table[f"offered:{owner_name}:{name}"] = P.offered_op(fn, name)
    for dunder, name in P._OFFERED_DUNDERS.items():
        fn = vars(Tensor).get(dunder)
        if fn is not None:
            table[f"offered:Tensor:{dunder}"] = P.offered_op(fn, name)
    table["offered:attention:_canonical_mask"] = P.offered_op(attention._canonical_mask,
                                                              "_canonical_mask")
    return table


def _op_key(target) -> str:
    for key, op in _special_ops().items():
        if op is target or (getattr(op, "_fn", None) is not None and
                            getattr(target, "_fn", None) is op._fn and
                            getattr(target, "__name__", None) == op.__name__):
            return key
    if isinstance(target, type) and _namedtuple(_key(target)) is target:
        return f"namedtuple:{_key(target)}"  # an op's extra rebuilt from symbolic sizes
    cls = getattr(getattr(target, "_fn", None), "__self__", None)
    if cls is None or not isinstance(cls, type):
        raise RuntimeError(f"cannot save a graph calling {target!r}: only ember's ops can be "
                           "saved")
    key = f"{cls.__module__}:{cls.__qualname__}"
    found = _registry().get(key)
    if found is None or not _same_op(found, cls):
        raise RuntimeError(f"cannot save a graph calling {target!r}: its Function class "
                           f"{key} is not one ember can find again by name")
    return key


def _same_op(a, b) -> bool:
    """Whether two Function classes behave alike (ember makes some twice with one name)."""
    if a is b:
        return True
    skip = {"_op", "__dict__", "__weakref__", "__module__", "__qualname__", "__doc__"}
    return a.__bases__ == b.__bases__ and \
        {k: v for k, v in vars(a).items() if k not in skip} == \
        {k: v for k, v in vars(b).items() if k not in skip}


def _registry() -> dict:
    """``module:qualname`` -> the built-in Function class of that name (first one wins)."""
    import importlib
    import ember
    from ..autograd.function import Function
    for name in ember._TORCH_LOADS:  # the ops of namespaces ``import ember`` defers (fft...)
        importlib.import_module("ember." + name)
    found = {}
    stack = list(Function.__subclasses__())
    while stack:
        cls = stack.pop(0)
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("ember."):
            found.setdefault(f"{cls.__module__}:{cls.__qualname__}", cls)
    return found


def _op_from_key(key, registry, special):
    if isinstance(key, str) and key in special:
        return special[key]
    if isinstance(key, str) and key.startswith("namedtuple:"):
        cls = _namedtuple(key[len("namedtuple:"):])  # only a class already loaded
        if cls is None:
            raise _bad(f"it builds an unknown namedtuple ({key!r})")
        return cls
    cls = registry.get(key) if isinstance(key, str) else None
    if cls is None:
        raise _bad(f"it calls an op ember does not have ({key!r})")
    from ..autograd.modes import op_for
    return op_for(cls)


# ---- constants ---------------------------------------------------------------------------------
class _Encoder:
    """Turns op arguments into plain data (see NOTE [ jit archive ])."""

    def __init__(self):
        self.arrays = {}

    def enc(self, a, node_name):
        from ..fx.node import Node
        if a is None or type(a) in (bool, int, float, str):
            return a
        if isinstance(a, Node):
            return ["node", a.name]
        if isinstance(a, Tensor):
            raise RuntimeError("a tensor inside an op's arguments is not a graph value")
        if isinstance(a, _dtype.dtype):
            return ["dtype", a.name]
        if isinstance(a, Size):
            return ["size", [int(x) for x in a]]
        if isinstance(a, _device):
            return ["device", str(a)]
        if isinstance(a, np.dtype) or (isinstance(a, type) and issubclass(a, np.generic)):
            return ["npdtype", np.dtype(a).str if np.dtype(a).kind == "V" else np.dtype(a).name]
        if isinstance(a, np.generic):
            return ["npscalar", a.dtype.name, a.item()]
        if isinstance(a, np.ndarray):
            key = f"_array{len(self.arrays)}"
            self.arrays[key] = a
            return ["array", key]
        if isinstance(a, complex):
            return ["complex", a.real, a.imag]
        if isinstance(a, slice):
            return ["slice", self.enc(a.start, node_name), self.enc(a.stop, node_name),
                    self.enc(a.step, node_name)]
        if a is Ellipsis:
            return ["ellipsis"]
        if isinstance(a, tuple) and hasattr(a, "_fields"):
            cls = type(a)
            key = f"{cls.__module__}:{cls.__qualname__}"
            if not cls.__module__.startswith("ember.") or _namedtuple(key) is not cls:
                raise RuntimeError(f"cannot save op {node_name!r}: its argument of type "
                                   f"{cls.__name__} is not an ember namedtuple")
            return ["namedtuple", key, [self.enc(e, node_name) for e in a]]
        state = _plain_state(a)
        if state is not None and _extra_class(_key(type(a))) is type(a):
            return ["object", _key(type(a)), self.enc(state, node_name)]
        if type(a) is tuple:
            return ["tuple", [self.enc(e, node_name) for e in a]]
        if type(a) is list:
            return ["list", [self.enc(e, node_name) for e in a]]
        if type(a) is dict:
            return ["dict", [[self.enc(k, node_name), self.enc(v, node_name)]
                             for k, v in a.items()]]
        raise RuntimeError(f"cannot save op {node_name!r}: its argument {a!r} of type "
                           f"{type(a).__name__} has no archive form")


def _key(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _loaded_class(key: str, prefix: str):
    """A class by ``module:qualname`` from an already-loaded module under ``prefix``."""
    if type(key) is not str:
        return None
    mod_name, _, qual = key.partition(":")
    if not mod_name.startswith(prefix):
        return None
    obj = sys.modules.get(mod_name)
    for part in qual.split("."):
        if obj is None or not part.isidentifier():
            return None
        obj = vars(obj).get(part) if hasattr(obj, "__dict__") else None
    return obj if isinstance(obj, type) else None


def _namedtuple(key: str):
    """An ember namedtuple class, only if its module is loaded."""
    cls = _loaded_class(key, "ember.")
    if cls is not None and issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return cls
    return None


def _extra_class(key: str):
    """A plain helper class of an op module (a conv's ``_Geom``): built without calling any
    of its methods, by setting its fields (NOTE [ jit archive ])."""
    from ..autograd.function import Function
    cls = _loaded_class(key, "ember.ops.")
    if cls is None or issubclass(cls, (Function, Tensor, Module, tuple)) or \
            cls.__new__ is not object.__new__ or "__setstate__" in vars(cls):
        return None
    return cls


class _Decoder:
    def __init__(self, nodes: dict, arrays: dict):
        self.nodes = nodes
        self.arrays = arrays
        self.depth = 0

    def dec(self, a):
        if a is None or type(a) in (bool, int, float, str):
            return a
        if type(a) is not list or not a or type(a[0]) is not str:
            raise _bad(f"a constant of type {type(a).__name__} in the graph")
        self.depth += 1
        if self.depth > 64:
            raise _bad("constants nested too deeply")
        try:
            return self._tagged(a[0], a[1:])
        finally:
            self.depth -= 1

    def _tagged(self, tag, rest):
        def arity(n):
            if len(rest) != n:
                raise _bad(f"a malformed {tag!r} constant")
        if tag == "node":
            arity(1)
            if rest[0] not in self.nodes:
                raise _bad(f"a reference to an unknown node {rest[0]!r}")
            return self.nodes[rest[0]]
        if tag in ("tuple", "list"):
            arity(1)
            if type(rest[0]) is not list:
                raise _bad(f"a malformed {tag!r} constant")
            items = [self.dec(e) for e in rest[0]]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict":
            arity(1)
            out = {}
            for kv in rest[0] if type(rest[0]) is list else [None]:
                if type(kv) is not list or len(kv) != 2:
                    raise _bad("a malformed 'dict' constant")
                k = self.dec(kv[0])
                if not isinstance(k, (str, int, float, bool, type(None))):
                    raise _bad("a dict constant with an unhashable key")
                out[k] = self.dec(kv[1])
            return out
        if tag == "dtype":
            arity(1)
            for cand in _dtype.ALL:
                if cand.name == rest[0]:
                    return cand
            raise _bad(f"an unknown dtype {rest[0]!r}")
        if tag == "npdtype":
            arity(1)
            if type(rest[0]) is not str or not rest[0].replace("<", "").replace(
                    "|", "").isalnum():
                raise _bad("a malformed NumPy dtype")
            try:
                return np.dtype(rest[0])
            except TypeError:
                raise _bad(f"an unknown NumPy dtype {rest[0]!r}") from None
        if tag == "npscalar":
            arity(2)
            try:
                dt = np.dtype(rest[0]) if type(rest[0]) is str and rest[0].isalnum() else None
            except TypeError:
                dt = None
            if dt is None or dt.kind not in "biufc" or type(rest[1]) not in (
                    bool, int, float, complex):
                raise _bad("a malformed NumPy scalar")
            return dt.type(rest[1])
        if tag == "size":
            arity(1)
            if type(rest[0]) is not list or not all(type(x) is int for x in rest[0]):
                raise _bad("a malformed Size")
            return Size(rest[0])
        if tag == "device":
            arity(1)
            if type(rest[0]) is not str:
                raise _bad("a malformed device")
            return _device(rest[0])
        if tag == "complex":
            arity(2)
            if not all(type(x) in (int, float) for x in rest):
                raise _bad("a malformed complex")
            return complex(rest[0], rest[1])
        if tag == "slice":
            arity(3)
            return slice(*(self.dec(x) for x in rest))
        if tag == "ellipsis":
            arity(0)
            return Ellipsis
        if tag == "array":
            arity(1)
            t = self.arrays.get(rest[0]) if type(rest[0]) is str else None
            if t is None:
                raise _bad(f"a reference to an unknown array {rest[0]!r}")
            return t
        if tag == "namedtuple":
            arity(2)
            cls = _namedtuple(rest[0]) if type(rest[0]) is str else None
            if cls is None or type(rest[1]) is not list or len(rest[1]) != len(cls._fields):
                raise _bad(f"an unknown namedtuple constant {rest[0]!r}")
            return cls(*(self.dec(e) for e in rest[1]))
        if tag == "object":
            arity(2)
            cls = _extra_class(rest[0])
            fields = self.dec(rest[1])
            if cls is None or type(fields) is not dict:
                raise _bad(f"an unknown op helper {rest[0]!r}")
            allowed = {n for c in cls.__mro__ for n in getattr(c, "__slots__", ())}
            obj = object.__new__(cls)
            for k, v in fields.items():
                if type(k) is not str or not k.isidentifier() or k.startswith("__") or (
                        allowed and k not in allowed):
                    raise _bad(f"a field {k!r} of {rest[0]!r}")
                object.__setattr__(obj, k, v)
            return obj
        raise _bad(f"an unknown constant tag {tag!r}")


# ---- saving -----------------------------------------------------------------------------------
def _module_tree(m: Module) -> dict:
    return {"name": getattr(m, "original_name", type(m).__name__),
            "training": bool(m.training),
            "parameters": dict(m._parameters),
            "buffers": dict(m._buffers),
            "non_persistent": sorted(m._non_persistent_buffers_set),
            "children": {n: None if c is None else _module_tree(c)
                         for n, c in m._modules.items()}}


def _graph_records(graph, enc: _Encoder) -> list:
    """A graph's nodes as plain data (see NOTE [ jit archive ])."""
    out = []
    for node in graph.nodes:
        if node.op == "placeholder":
            out.append(["placeholder", node.name])
        elif node.op == "get_attr":
            out.append(["get_attr", node.name, node.target])
        elif node.op == "call_function":
            out.append(["call", node.name, _op_key(node.target),
                        enc.enc(tuple(node.args), node.name),
                        enc.enc(dict(node.kwargs), node.name),
                        bool(node.meta.get("grad_mode", True))])
        elif node.op == "output":
            out.append(["output", enc.enc(node.args[0], "output")])
    return out


def _spec_data(spec):
    """``flatten``'s spec as plain data."""
    if spec is None:
        return None
    kind, items = spec
    if kind is dict:
        return ["dict", [[k, _spec_data(v)] for k, v in items]]
    if kind in (tuple, list):
        return [kind.__name__, [_spec_data(e) for e in items]]
    raise RuntimeError(f"cannot save a trace whose inputs contain a {kind.__name__}")


def _spec_from(data, depth=0):
    if data is None:
        return None
    if depth > 64 or type(data) is not list or len(data) != 2 or type(data[1]) is not list:
        raise _bad("a malformed input spec")
    if data[0] == "dict":
        return (dict, [(kv[0], _spec_from(kv[1], depth + 1)) for kv in data[1]
                       if type(kv) is list and len(kv) == 2 and type(kv[0]) is str])
    if data[0] in ("tuple", "list"):
        return ({"tuple": tuple, "list": list}[data[0]],
                [_spec_from(e, depth + 1) for e in data[1]])
    raise _bad("a malformed input spec")


def _payload(m):
    from ._trace import TracedFunction, TracedModule, _BoundTrace
    from ._script import ScriptModule, ScriptFunction
    enc = _Encoder()
    if isinstance(m, TracedFunction):
        kind, program, root, spec = "function", m._program, m._root, m._in_spec
        tree = _module_tree(root) if isinstance(root, Module) else _module_tree(Module())
    elif isinstance(m, TracedModule) and m._program is not None:
        kind, program, root, spec = "traced", m._program, m, m._in_spec
        tree = _module_tree(m)
    elif isinstance(m, ScriptModule):
        kind, program, root, spec = "scripted", None, m, None
        tree = _module_tree(m)
    elif isinstance(m, ScriptFunction):
        m.save(None)  # raises its explanation
    else:
        raise TypeError(f"expected a ScriptModule (from ember.jit.trace or ember.jit.script), "
                        f"got {type(m).__name__}")
    data = {"format": FORMAT, "version": VERSION, "kind": kind, "module": tree,
            "graph": None, "constants": {}, "values": {}, "in_spec": None}
    if program is not None:
        data["graph"] = _graph_records(program.graph, enc)
        data["in_spec"] = _spec_data(spec)
        # trace_module's other methods: one graph each, beside forward's
        methods = {k: v for k, v in root.__dict__.items() if isinstance(v, _BoundTrace)}
        data["methods"] = {k: {"graph": _graph_records(v._program.graph, enc),
                               "in_spec": _spec_data(v._in_spec)} for k, v in methods.items()}
        graphs = [program.graph] + [v._program.graph for v in methods.values()]
        consts = {n.target: getattr(root, n.target) for g in graphs for n in g.nodes
                  if n.op == "get_attr" and "." not in n.target and
                  n.target not in root._parameters and n.target not in root._buffers
                  and n.target not in root._modules}
        data["values"] = {k: enc.enc(v, k) for k, v in consts.items()
                          if not isinstance(v, Tensor)}
        consts = {k: v for k, v in consts.items() if isinstance(v, Tensor)}
        consts.update({k: _tensor_of(a) for k, a in enc.arrays.items()})
        data["constants"] = consts
    code = program and program.graph.python_code(root_module="self").src
    ts = None if program is None or kind != "traced" else (root, program, spec, {
        n.target: getattr(root, n.target) for n in program.graph.nodes
        if n.op == "get_attr" and "." not in n.target and n.target in root.__dict__})
    return data, code, ts


def _tensor_of(arr):
    from .._tensor import _make
    return _make(np.ascontiguousarray(arr), False)


def save(m, f, _extra_files=None) -> None:
    """Write a traced or scripted module to ``f`` (a path or binary file) as a zip archive
    (``torch.jit.save``; layout in NOTE [ jit archive ])."""
    warnings.warn("`torch.jit.save` is deprecated. Please switch to `torch.export`.",
                  DeprecationWarning, stacklevel=2)
    from .. import serialization as S
    from ._torchscript import torchscript_records
    data, code, ts = _payload(m)
    storages = S._StorageTable()
    buf = io.BytesIO()
    S._Pickler(buf, 2, storages).dump(data)
    # PyTorch's TorchScript records too, when the graph can be spelled in TorchScript
    ts_records = ts and torchscript_records(*ts, S._Pickler, storages)
    out = io.BytesIO()
    is_path = isinstance(f, (str, os.PathLike))
    name = os.path.splitext(os.path.basename(os.fspath(f)))[0] if is_path else ""
    zw = S._ZipWriter(out, name if name.isidentifier() else "archive")
    zw.record("ember_jit.pkl", buf.getbuffer())
    for rec_name, content in (ts_records or {}).items():
        zw.record(rec_name, content)
    zw.record(".format_version", b"1")
    zw.record(".storage_alignment", str(S._ALIGN).encode())
    zw.record("byteorder", sys.byteorder.encode())
    zw.record("ember_jit", _MARKER)
    if code:
        zw.record("code/forward.py", ("# ember.jit graph code, for reading only: loading never "
                                      "runs it\n" + code).encode())
    for name, content in (_extra_files or {}).items():
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid _extra_files name {name!r}")
        zw.record(f"extra/{name}", content.encode() if isinstance(content, str) else
                  bytes(content))
    for key, root, _ in storages.order:
        zw.record(f"data/{key}", S._flat_bytes(root))
    # TorchScript reads the operator schema version from .data/version: 10 is the one real
    # torch writes for these ops (gelu's ``approximate`` needs at least 10)
    zw.record(".data/version" if ts_records else "version", b"10\n" if ts_records else b"3\n")
    zw.record(".data/serialization_id", S._serialization_id().encode())
    zw.finish()
    if is_path:  # written whole to a temporary name, then renamed: never a torn archive
        tmp = f"{os.fspath(f)}.ember-tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(out.getbuffer())
            os.replace(tmp, f)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        f.write(out.getbuffer())
        if hasattr(f, "flush"):
            f.flush()


# ---- loading ----------------------------------------------------------------------------------
def _read_all(f) -> bytes:
    if isinstance(f, (str, os.PathLike)):
        if not os.path.exists(f):
            raise ValueError(f"The provided filename {os.fspath(f)} does not exist")
        if os.path.isdir(f):
            raise ValueError(f"The provided filename {os.fspath(f)} is a directory")
        with open(f, "rb") as fh:
            return fh.read()
    if not hasattr(f, "read"):
        raise TypeError(f"f must be a path or a readable binary file object, got "
                        f"{type(f).__name__}")
    return f.read()


def load(f, map_location=None, _extra_files=None, _restore_shapes=False):
    """Read an archive written by ``ember.jit.save`` into a ScriptModule (``torch.jit.load``);
    nothing in the file is executed: see NOTE [ jit archive ]."""
    warnings.warn("`torch.jit.load` is deprecated. Please switch to `torch.export`.",
                  DeprecationWarning, stacklevel=2)
    from .. import serialization as S
    raw = _read_all(f)
    if raw[:4] != b"PK\x03\x04":
        raise RuntimeError("ember.jit.load: the file is not an ember.jit archive (expected a zip "
                           f"archive written by ember.jit.save, but it starts with {raw[:8]!r})")
    fh = io.BytesIO(raw)
    archive = S._Archive(fh)
    archive.budget = S._budget(archive, len(raw), None)
    if not archive.has("ember_jit"):
        if archive.has("constants.pkl") or any("/code/__torch__" in n for n in archive.names):
            raise RuntimeError("ember.jit.load: this is a TorchScript archive written by "
                               "PyTorch's torch.jit.save; ember cannot run TorchScript code. "
                               "Load the model's state_dict into the Python module instead")
        raise RuntimeError("ember.jit.load: the archive is not an ember.jit archive (it has no "
                           "ember_jit record; a checkpoint from ember.save/torch.save is read "
                           "with ember.load)")
    marker = archive.read("ember_jit")
    if marker != _MARKER:
        raise RuntimeError(f"ember.jit.load: unsupported archive version {marker[:32]!r}")
    extra = {}
    for name in (_extra_files or {}):
        if archive.has(f"extra/{name}"):
            extra[name] = archive.read(f"extra/{name}")
    data = _unpickle(S, archive, map_location)
    module = _build(data)
    if _extra_files is not None:
        for name in list(_extra_files):
            if name in extra:
                _extra_files[name] = extra[name]
    return module


def _unpickle(S, archive, map_location):
    """``ember_jit.pkl`` through ember.load's allow-list unpickler and storage loader."""
    import pickle
    S._check_map_location(map_location)
    byteorder = "little"
    if archive.has("byteorder"):
        byteorder = archive.read("byteorder").decode("ascii", "replace")
        if byteorder not in ("little", "big"):
            raise ValueError("Unknown endianness type: " + byteorder)
    loader = S._StorageLoader(archive, byteorder, map_location)
    body = io.BytesIO(archive.read("ember_jit.pkl"))
    try:
        return S._WeightsOnlyUnpickler(body, loader, "utf-8").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(S._wo_message(str(e))) from None


def _check_name(name, what):
    if type(name) is not str or not name.isidentifier() or keyword.iskeyword(name):
        raise _bad(f"{what} {name!r} is not a valid name")
    return name


def _build_tree(tree, cls, depth=0):
    if depth > 256 or type(tree) is not dict:
        raise _bad("a malformed module tree")
    need = {"name": str, "training": bool, "parameters": dict, "buffers": dict,
            "non_persistent": list, "children": dict}
    for k, t in need.items():
        if type(tree.get(k)) is not t:
            raise _bad(f"a module record whose {k!r} is missing or malformed")
    m = cls.__new__(cls)
    Module.__init__(m)
    m.__dict__["_original_name"] = tree["name"]
    m.__dict__["training"] = tree["training"]
    for n, p in tree["parameters"].items():
        _check_name(n, "parameter")
        if p is not None and not isinstance(p, Parameter):
            raise _bad(f"parameter {n!r} is not a Parameter")
        m._parameters[n] = p
    for n, b in tree["buffers"].items():
        _check_name(n, "buffer")
        if b is not None and not isinstance(b, Tensor):
            raise _bad(f"buffer {n!r} is not a tensor")
        m._buffers[n] = b
    for n in tree["non_persistent"]:
        if n not in m._buffers:
            raise _bad(f"non-persistent buffer {n!r} is not a buffer")
        m._non_persistent_buffers_set.add(n)
    for n, c in tree["children"].items():
        if not (type(n) is str and n.isdigit()):  # Sequential's children are named 0, 1 ...
            _check_name(n, "submodule")
        m._modules[n] = None if c is None else _build_tree(c, _traced_cls(), depth + 1)
    return m


def _traced_cls():
    from ._trace import TracedModule
    return TracedModule


def _build(data):
    from ._program import Program
    from ._trace import TopLevelTracedModule, TracedFunction, _BoundTrace
    if type(data) is not dict or data.get("format") != FORMAT:
        raise _bad("its ember_jit.pkl is not an ember.jit record")
    if data.get("version") != VERSION:
        raise _bad(f"unsupported version {data.get('version')!r}")
    kind = data.get("kind")
    if kind not in ("traced", "scripted", "function"):
        raise _bad(f"unknown kind {kind!r}")
    root = _build_tree(data.get("module"), TopLevelTracedModule)
    if kind == "scripted":
        root.__dict__["_program"] = None
        root.__dict__["_scripted"] = True
        return root
    constants = data.get("constants")
    if type(constants) is not dict or not all(
            isinstance(t, Tensor) for t in constants.values()):
        raise _bad("malformed constants")
    arrays = {k: t for k, t in constants.items() if k.startswith("_array")}
    for k, t in constants.items():
        if not k.startswith("_array"):
            _check_name(k, "constant")
            object.__setattr__(root, k, t)
    arrays = {k: t.numpy() for k, t in arrays.items()}
    values = data.get("values")
    if type(values) is not dict:
        raise _bad("malformed constant values")
    dec = _Decoder({}, arrays)
    for k, v in values.items():
        _check_name(k, "constant")
        object.__setattr__(root, k, dec.dec(v))
    graph = _build_graph(data.get("graph"), arrays, root, set(values))
    program = Program(graph)
    spec = _spec_from(data.get("in_spec"))
    types = "the traced inputs"
    if kind == "function":
        fn = TracedFunction.__new__(TracedFunction)
        fn._fn = None
        fn.__name__ = fn.__qualname__ = "forward"
        fn._program, fn._in_spec, fn._in_types, fn._root = program, spec, types, root
        return fn
    root.__dict__.update(_program=program, _in_spec=spec, _in_types=types)
    methods = data.get("methods") or {}  # (absent from archives of forward alone)
    if type(methods) is not dict:
        raise _bad("malformed methods")
    for name, rec in methods.items():
        _check_name(name, "method")
        if name == "forward" or name in root.__dict__ or type(rec) is not dict:
            raise _bad(f"a malformed method {name!r}")
        method = Program(_build_graph(rec.get("graph"), arrays, root, set(values)))
        object.__setattr__(root, name, _BoundTrace(root, method, _spec_from(rec.get("in_spec")),
                                                   types, name))
    return root


def _build_graph(records, arrays, root, values):
    from ..fx.graph import Graph
    if type(records) is not list or not records:
        raise _bad("malformed graph")
    registry = _registry()
    special = _special_ops()
    g = Graph()
    nodes = {}
    dec = _Decoder(nodes, arrays)
    done = False
    for r in records:
        if done or type(r) is not list or not r or type(r[0]) is not str:
            raise _bad("a malformed graph node")
        op = r[0]
        if op == "placeholder" and len(r) == 2:
            nodes[_check_name(r[1], "node")] = g.placeholder(r[1])
        elif op == "get_attr" and len(r) == 3:
            target = r[2]
            if type(target) is not str or not all(
                    p.isidentifier() or p.isdigit() for p in target.split(".")):
                raise _bad(f"a get_attr of {target!r}")
            obj = root
            if target not in values:
                for part in target.split("."):  # must name a tensor the archive holds
                    obj = _member(obj, part)
                    if obj is None:
                        raise _bad(f"get_attr {target!r} names nothing in the archive")
                if not isinstance(obj, Tensor):
                    raise _bad(f"get_attr {target!r} is not a tensor")
            nodes[_check_name(r[1], "node")] = g.get_attr(target)
        elif op == "call" and len(r) == 6:
            fn = _op_from_key(r[2], registry, special)
            args, kwargs = dec.dec(r[3]), dec.dec(r[4])
            if type(args) is not tuple or type(kwargs) is not dict or not all(
                    type(k) is str for k in kwargs) or type(r[5]) is not bool:
                raise _bad("a malformed call node")
            if fn in (operator.mul, operator.add, special["symbolic:sym_size"]) and (
                    kwargs or len(args) != 2 or type(args[1]) not in (int, type(args[0])) or
                    not hasattr(args[0], "op")):  # size arithmetic: on sizes and ints only
                raise _bad(f"a malformed size node {r[1]!r}")
            n = g.call_function(fn, args, kwargs)
            n.meta["grad_mode"] = r[5]
            nodes[_check_name(r[1], "node")] = n
        elif op == "output" and len(r) == 2:
            g.output(dec.dec(r[1]))
            done = True
        else:
            raise _bad(f"a malformed {op!r} node")
    if not done:
        raise _bad("the graph has no output")
    return g


def _member(obj, part):
    d = obj.__dict__
    for table in ("_parameters", "_buffers", "_modules"):
        if part in d.get(table, {}):
            return d[table][part]
    v = d.get(part)
    return v if isinstance(v, Tensor) else None
