"""``export.save`` / ``export.load``: an ``ExportedProgram`` as a zip archive of plain data.

The container and the graph's encoding are the ones of NOTE [ jit archive ]
(``ember/jit/_serialization.py``): ``data.pkl`` holds the graph as tagged lists, the graph
signature as (kind, name, target) rows, and the state dict and constants as PyTorch tensor
records; an ``ember_export`` record marks the archive.  ``load`` reads ``data.pkl`` with the
allow-list unpickler and rebuilds every op from ember's own Function classes, so no code from
the file runs.  (PyTorch's own ``.pt2`` layout, with its JSON schema, is not written.)
"""
from __future__ import annotations

import io
import os
import warnings

from .._tensor import Tensor
from .dynamic_shapes import Dim
from .graph_signature import (ConstantArgument, ExportGraphSignature, InputKind, InputSpec,
                              OutputKind, OutputSpec, TensorArgument)

__all__ = ["save", "load"]

FORMAT = "ember.export"
VERSION = 1
_MARKER = f"{FORMAT} {VERSION}\n".encode()


def _bad(msg):
    return RuntimeError(f"not a valid ember.export archive: {msg}")


def _spec_rows(specs, enc, has_persistent):
    rows = []
    for s in specs:
        if isinstance(s.arg, TensorArgument):
            arg = ["tensor", s.arg.name, None]
        else:
            arg = ["constant", s.arg.name, enc.enc(s.arg.value, "signature")]
        row = [s.kind.name, arg, s.target]
        if has_persistent:
            row.append(s.persistent)
        rows.append(row)
    return rows


def save(ep, f, *, extra_files=None, opset_version=None, pickle_protocol: int = 2) -> None:
    """Write ``ep`` to ``f`` (a path or binary file): ``torch.export.save``."""
    from .. import serialization as S
    from ..jit import _serialization as J
    from .exported_program import ExportedProgram
    if not isinstance(ep, ExportedProgram):
        raise TypeError(f"The 'ep' parameter must be an instance of 'ExportedProgram', got "
                        f"'{type(ep).__name__}' instead.")
    enc = J._Encoder()
    gm = ep.graph_module
    values = {n.target: getattr(gm, n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    leaves = list(ep.example_inputs[0]) + [ep.example_inputs[1][k] for k in ep._kwarg_names]
    data = {"format": FORMAT, "version": VERSION,
            "graph": J._graph_records(gm.graph, enc),
            "values": {k: enc.enc(v, k) for k, v in values.items()},
            "input_specs": _spec_rows(ep.graph_signature.input_specs, enc, True),
            "output_specs": _spec_rows(ep.graph_signature.output_specs, enc, False),
            "state_dict": dict(ep.state_dict), "constants": dict(ep.constants),
            "range_constraints": {k: list(v) for k, v in ep.range_constraints.items()},
            "in_spec": J._spec_data(ep._in_spec), "out_spec": J._spec_data(ep._out_spec),
            "input_meta": [[n, None if s is None else list(s), None if d is None else d.name]
                           for n, s, d in ep._input_meta],
            "dynamic": [{i: [d.__name__, d.min, d.max] for i, d in dims.items()}
                        for dims in ep._dynamic],
            "kwarg_names": list(ep._kwarg_names),
            "example_inputs": leaves if all(isinstance(t, Tensor) for t in leaves) else None,
            "n_args": len(ep.example_inputs[0])}
    data["arrays"] = {k: J._tensor_of(a) for k, a in enc.arrays.items()}
    storages = S._StorageTable()
    buf = io.BytesIO()
    S._Pickler(buf, pickle_protocol, storages).dump(data)
    out = io.BytesIO()
    is_path = isinstance(f, (str, os.PathLike))
    name = os.path.splitext(os.path.basename(os.fspath(f)))[0] if is_path else ""
    zw = S._ZipWriter(out, name if name.isidentifier() else "archive")
    zw.record("data.pkl", buf.getbuffer())
    zw.record(".format_version", b"1")
    zw.record(".storage_alignment", str(S._ALIGN).encode())
    zw.record("byteorder", __import__("sys").byteorder.encode())
    zw.record("ember_export", _MARKER)
    zw.record("code/forward.py", ("# ember.export graph code, for reading only: loading never "
                                  "runs it\n" + gm.code).encode())
    for k, content in (extra_files or {}).items():
        if not isinstance(k, str) or not k or "/" in k or k in (".", ".."):
            raise ValueError(f"invalid extra_files name {k!r}")
        zw.record(f"extra/{k}", content.encode() if isinstance(content, str) else
                  bytes(content))
    for key, root, _ in storages.order:
        zw.record(f"data/{key}", S._flat_bytes(root))
    zw.record("version", b"3\n")
    zw.record(".data/serialization_id", S._serialization_id().encode())
    zw.finish()
    if is_path:
        with open(f, "wb") as fh:
            fh.write(out.getbuffer())
    else:
        f.write(out.getbuffer())


def _specs(rows, dec, input_side):
    kinds = InputKind if input_side else OutputKind
    out = []
    if type(rows) is not list:
        raise _bad("malformed graph signature")
    for row in rows:
        if type(row) is not list or len(row) != (4 if input_side else 3) or \
                row[0] not in kinds.__members__ or type(row[1]) is not list or len(row[1]) != 3:
            raise _bad("a malformed graph signature row")
        argkind, name, value = row[1]
        if type(name) is not str or row[2] is not None and type(row[2]) is not str:
            raise _bad("a malformed graph signature row")
        arg = TensorArgument(name) if argkind == "tensor" else \
            ConstantArgument(name, dec.dec(value))
        if input_side:
            if row[3] not in (None, True, False):
                raise _bad("a malformed persistent flag")
            out.append(InputSpec(kinds[row[0]], arg, row[2], row[3]))
        else:
            out.append(OutputSpec(kinds[row[0]], arg, row[2]))
    return out


def load(f, *, extra_files=None, expected_opset_version=None):
    """Read an archive written by ``ember.export.save`` (``torch.export.load``); nothing in
    the file is executed."""
    from .. import serialization as S
    from .. import _dtype
    from ..fx.graph_module import GraphModule
    from ..jit import _serialization as J
    from ..nn import Module
    from .exported_program import ExportedProgram
    raw = J._read_all(f)
    if raw[:4] != b"PK\x03\x04":
        raise RuntimeError("ember.export.load: the file is not an ember.export archive "
                           f"(expected a zip archive, but it starts with {raw[:8]!r})")
    archive = S._Archive(io.BytesIO(raw))
    archive.budget = S._budget(archive, len(raw), None)
    if not archive.has("ember_export"):
        if archive.has("archive_format") or archive.has("models/model.json"):
            raise RuntimeError("ember.export.load: this is a .pt2 archive written by PyTorch's "
                               "torch.export.save, whose JSON program format ember does not "
                               "read; export the model with ember.export instead")
        raise RuntimeError("ember.export.load: the archive is not an ember.export archive (it "
                           "has no ember_export record)")
    if archive.read("ember_export") != _MARKER:
        raise RuntimeError("ember.export.load: unsupported archive version")
    for k in list(extra_files or {}):
        if archive.has(f"extra/{k}"):
            extra_files[k] = archive.read(f"extra/{k}").decode("utf-8", "replace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = S.load(io.BytesIO(raw), weights_only=True)
    if type(data) is not dict or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise _bad("its data.pkl is not an ember.export record")
    for key, t in (("state_dict", dict), ("constants", dict), ("arrays", dict),
                   ("values", dict), ("range_constraints", dict), ("input_meta", list),
                   ("dynamic", list), ("kwarg_names", list), ("n_args", int)):
        if type(data.get(key)) is not t:
            raise _bad(f"its {key!r} is missing or malformed")
    for k, v in list(data["state_dict"].items()) + list(data["constants"].items()) + \
            list(data["arrays"].items()):
        if type(k) is not str or not isinstance(v, Tensor):
            raise _bad("a state_dict or constant entry that is not a named tensor")
    arrays = {k: v.numpy() for k, v in data["arrays"].items()}
    dec = J._Decoder({}, arrays)
    values = {J._check_name(k, "constant"): dec.dec(v) for k, v in data["values"].items()}
    graph = J._build_graph(data.get("graph"), arrays, Module(), set(values))
    gm = GraphModule(values, graph)
    sig = ExportGraphSignature(_specs(data.get("input_specs"), dec, True),
                               _specs(data.get("output_specs"), dec, False))
    meta = []
    for row in data["input_meta"]:
        if type(row) is not list or len(row) != 3 or type(row[0]) is not str:
            raise _bad("malformed input metadata")
        shape = None if row[1] is None else tuple(int(x) for x in row[1])
        dt = None if row[2] is None else next((d for d in _dtype.ALL if d.name == row[2]), None)
        meta.append((row[0], shape, dt))
    dynamic = []
    for dims in data["dynamic"]:
        if type(dims) is not dict:
            raise _bad("malformed dynamic shapes")
        dynamic.append({int(i): Dim(d[0], min=d[1], max=d[2]) for i, d in dims.items()})
    in_spec, out_spec = J._spec_from(data.get("in_spec")), J._spec_from(data.get("out_spec"))
    example = data.get("example_inputs")
    n_args, kw = data["n_args"], data["kwarg_names"]
    if example is not None and type(example) is list and len(example) == n_args + len(kw):
        example = (tuple(example[:n_args]), dict(zip(kw, example[n_args:])))
    else:
        example = None
    ranges = {k: tuple(v) for k, v in data["range_constraints"].items()}
    ep = ExportedProgram(gm, sig, data["state_dict"], data["constants"], ranges, example,
                         in_spec, out_spec, meta, dynamic)
    ep._kwarg_names = [k for k in kw if type(k) is str]
    ep._in_types = ", ".join(m[0] for m in meta)
    return ep
