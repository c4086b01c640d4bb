"""The ONNX graph under construction: nodes, initializers, and the opset-dependent spellings."""
from __future__ import annotations

import numpy as np

from ..fx.experimental.symbolic_shapes import DimTable
from ._capture import Sym, Value
from .errors import UnsupportedOperatorError

__all__ = ["Builder", "UnsupportedOperatorError"]


class Builder:
    """Emits ONNX nodes for converters; ``name(v)`` gives a ``Value``'s ONNX name."""

    def __init__(self, onnx, opset: int, graph, fold: bool, param_names: dict):
        self.onnx, self.helper = onnx, onnx.helper
        self.opset = opset
        self.graph = graph
        self.fold = fold
        self.nodes = []
        self.inits = {}          # name -> numpy array
        self.names = {}          # id(Value) -> ONNX name
        self.param_names = param_names
        self._n = 0
        self._consts = {}        # (dtype, shape, bytes) -> name: one initializer per constant
        # the dynamic input dims: (a, b) of a dynamic size -> (Value, axis) holding it
        self._table = DimTable()
        self._dims = self._table.dims
        self.dim_names = {}      # (id(input Value), axis) -> the name dynamic_axes gave it
        for v in graph.inputs:
            self._table.add(v, v.shape, v.shape2)

    # ---- names and nodes ---------------------------------------------------------------
    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def name(self, v) -> str:
        """The ONNX name of ``Value`` ``v`` (an initializer on first use of a constant)."""
        got = self.names.get(id(v))
        if got is not None:
            return got
        if v.kind == "param":
            name = v.name
            self.inits[name] = np.array(v.tensor._data, order="C")
        elif v.kind == "const":
            name = self.const(v.tensor._data)
        elif v.kind == "arange":
            n = self.squeeze(self.dim(Sym(v.shape[0], v.shape2[0])), [0])
            name = self.op("Range", [self.scalar(0, v.dtype), self.cast(n, v.dtype),
                                     self.scalar(1, v.dtype)])
        elif v.kind == "fill":
            shape = self.ints([Sym(a, b) if a != b else a for a, b in zip(v.shape, v.shape2)])
            fill = self.const(np.array(v.tensor._data.reshape(-1)[0], v.dtype))
            name = self.op("Expand", [fill, shape])
        else:
            raise RuntimeError(f"onnx.export: value {v.name} used before it was computed")
        self.names[id(v)] = name
        return name

    def op(self, op_type: str, inputs, n_out: int = 1, **attrs):
        """Add one node; its output name (a list when ``n_out`` > 1)."""
        outs = [self.fresh(op_type) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs,
                                                name=self.fresh("n" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, arr, dtype=None) -> str:
        """An initializer holding ``arr`` (equal constants share one)."""
        a = np.asarray(arr, dtype=dtype)
        if a.dtype == object:
            raise TypeError(f"onnx.export: cannot make a constant of {arr!r}")
        a = np.array(a, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        key = (a.dtype.str, a.shape, a.tobytes()) if a.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh("const")
        self.inits[name] = a
        if key is not None:
            self._consts[key] = name
        return name

    def dtype(self, dt) -> int:
        """ONNX's TensorProto element type of NumPy dtype ``dt``."""
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dt))

    # ---- shapes ---------------------------------------------------------------------------
    def shape_of(self, v, axis: int) -> str:
        """Size of dim ``axis`` of ``Value`` ``v`` as an int64 [1] (a constant if static)."""
        if not v.dynamic(axis):
            return self.const(np.array([v.shape[axis]], np.int64))
        key = ("dim", id(v), axis)
        got = self.names.get(key)
        if got is None:
            axis %= v.ndim
            # PyTorch's spelling, Shape -> Gather(scalar) -> Unsqueeze: onnxruntime's fusions
            # expect it (a Gather of a [1] index miscompiles in its ENABLE_ALL level)
            got = self.unsqueeze(self.op("Gather", [self.op("Shape", [self.name(v)]),
                                                    self.const(np.array(axis, np.int64))]),
                                 [0])
            self.names[key] = got
        return got

    def dim(self, s) -> str:
        """An int64 [1] tensor holding ``s`` (an int, or a ``Sym`` found among the inputs)."""
        if not isinstance(s, Sym):
            return self.const(np.array([int(s)], np.int64))
        got = self._resolve(s)
        if got is None:
            raise UnsupportedOperatorError(
                f"onnx.export: a size ({s.a}, then {s.b} in the dynamic run) is not a dim of "
                f"any input nor a product of two: cannot express it in the graph")
        return got

    def _resolve(self, s):
        """``s`` computed from the inputs' shapes (NOTE [ Sizes from two captures ])."""
        expr = self._table.resolve(s)
        return None if expr is None else self._emit(expr)

    def _emit(self, expr) -> str:
        if isinstance(expr, int):
            return self.const(np.array([expr], np.int64))
        if expr[0] == "size":
            return self.shape_of(expr[1], expr[2])
        return self.op("Mul" if expr[0] == "mul" else "Add",
                       [self._emit(expr[1]), self._emit(expr[2])])

    def ints(self, seq, reshape: bool = False) -> str:
        """A 1-D int64 tensor of ``seq`` (ints and ``Sym``s); for Reshape one unknown is -1."""
        seq = list(seq)
        if not any(isinstance(s, Sym) for s in seq):
            return self.const(np.array(seq, np.int64).reshape(len(seq)))
        parts = []
        unknown = [i for i, s in enumerate(seq) if isinstance(s, Sym) and
                   self._resolve(s) is None]
        if reshape and len(unknown) == 1 and all(int(s) != -1 for s in seq):
            seq[unknown[0]] = -1
        for s in seq:
            parts.append(self.dim(s))
        return self.op("Concat", parts, axis=0)

    # ---- opset-dependent spellings --------------------------------------------------------
    def axes_op(self, op_type: str, x: str, axes, **attrs) -> str:
        """A reduction over ``axes`` (an attribute before opset 18, an input from 18)."""
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const(np.array(axes, np.int64))], **attrs)
        return self.op(op_type, [x], axes=axes, **attrs)

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", [x, self.const(np.array(list(axes), np.int64))])

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", [x, self.const(np.array(list(axes), np.int64))])

    def reshape(self, x: str, shape) -> str:
        return self.op("Reshape", [x, self.ints(shape, reshape=True)])

    def slice(self, x: str, starts, ends, axes, steps=None) -> str:
        ins = [x, self.ints(starts), self.ints(ends), self.const(np.array(axes, np.int64))]
        if steps is not None:
            ins.append(self.const(np.array(steps, np.int64)))
        return self.op("Slice", ins)

    def cast(self, x: str, dt) -> str:
        return self.op("Cast", [x], to=self.dtype(dt))

    def scalar(self, value, dt) -> str:
        """A 0-d constant of ``value`` in dtype ``dt``."""
        return self.const(np.array(value, dtype=np.dtype(dt)))

    def operand(self, a, dt) -> str:
        """A tensor ``Value`` or Python number as an ONNX input of dtype ``dt``."""
        if isinstance(a, Value):
            n = self.name(a)
            return n if a.dtype == np.dtype(dt) else self.cast(n, dt)
        return self.scalar(a, dt)
