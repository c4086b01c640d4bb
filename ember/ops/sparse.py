"""Sparse-tensor ops: construction, conversion, ``sparse.mm``, ``sparse.sum``,
``sparse.softmax`` (each a ``Function``; the storage is ``ember/_sparse.py``)."""
from __future__ import annotations

import builtins

from .._tensor import Tensor, _make, _wrap_dim
from ..autograd.function import Function
from .. import _sparse as _data
from .._sparse import COO, CSR, not_implemented
from .._layout import strided, sparse_coo, sparse_csr
from ._util import need_tensor

__all__ = ["sparse_coo_tensor", "sparse_csr_tensor", "spmm", "sparse_mm", "sparse_sum",
           "sparse_softmax", "check_sparse_tensor_invariants"]

_SPARSE = (COO, CSR)


def _is_sparse(t) -> bool:
    return type(t._data) in _SPARSE


def _positions(proto) -> tuple:
    """Index arrays of each stored value of ``proto`` (one per sparse dim)."""
    return tuple(proto.indices) if type(proto) is COO else proto.rows_cols()


def _gather(g: Tensor, proto) -> Tensor:
    """The gradient of ``proto``'s values from a gradient ``g`` of the whole tensor."""
    if _is_sparse(g):
        gd = g._data
        if type(gd) is type(proto) and all(a is b for a, b in zip(_pattern(gd), _pattern(proto))):
            return _Values.apply(g)  # the same pattern (sparse.mm's gradient): its values
        g = _ToDense.apply(g)
    return g[tuple(_make(i) for i in _positions(proto))]


def _pattern(d) -> tuple:
    return (d.indices,) if type(d) is COO else (d.crow, d.col)


def _mask_of(proto):
    """The pattern a gradient of ``proto`` has: each stored position once."""
    return proto.coalesce() if type(proto) is COO else proto


class _FromValues(Function):
    """A sparse tensor with ``proto``'s pattern and the given values."""

    raw = True
    backward_name = "SparseCooTensorWithDimsAndTensorsBackward0"

    @staticmethod
    def forward(ctx, values, proto):
        ctx.proto = proto
        return proto.with_values(values)

    @staticmethod
    def backward(ctx, g):
        return _gather(g, ctx.proto), None


class _CsrFromValues(_FromValues):
    backward_name = "SparseCsrTensorBackward0"


def from_values(values: Tensor, proto) -> Tensor:
    cls = _FromValues if type(proto) is COO else _CsrFromValues
    return cls.apply(values, proto)


class _Values(Function):
    """The stored values of a sparse tensor (``Tensor.values()``)."""

    raw = True
    backward_name = "ValuesBackward0"

    @staticmethod
    def forward(ctx, s):
        ctx.proto = s
        return s.values

    @staticmethod
    def backward(ctx, g):
        return from_values(g, ctx.proto)


class _ToDense(Function):
    raw = True
    backward_name = "ToDenseBackward0"

    @staticmethod
    def forward(ctx, s):
        ctx.proto = s
        return s.to_dense()

    @staticmethod
    def backward(ctx, g):
        # PyTorch's gradient is sparse, masked to the input's (coalesced) pattern
        mask = _mask_of(ctx.proto)
        return from_values(_gather(g, mask), mask)


class _ToSparse(Function):
    raw = True
    backward_name = "ToSparseBackward0"

    @staticmethod
    def forward(ctx, a, sparse_dim, csr):
        c = _data.from_dense(a, sparse_dim)
        return _data.csr_from_coo(c) if csr else c

    @staticmethod
    def backward(ctx, g):
        return (_ToDense.apply(g) if _is_sparse(g) else g), None, None


class _Coalesce(Function):
    raw = True
    backward_name = "CoalesceBackward0"

    @staticmethod
    def forward(ctx, s):
        return s.coalesce()

    @staticmethod
    def backward(ctx, g):
        return g  # the same dense tensor: the gradient passes through


class _CsrToCoo(Function):
    raw = True
    backward_name = "ToSparseBackward0"

    @staticmethod
    def forward(ctx, s):
        return s.to_coo()

    @staticmethod
    def backward(ctx, g):
        return g


class _SparseMM(Function):
    """``sparse @ dense`` with PyTorch's ``sparse.mm`` gradients: dense for the dense
    operand, sparse with the sparse operand's pattern for it."""

    raw = True
    backward_name = "SparseAddmmBackward0"

    @staticmethod
    def forward(ctx, s, d):
        ctx.proto = s
        ctx.save_for_backward(d)
        return s.matmul(d)

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        s = ctx.proto
        gs = gd = None
        if ctx.needs_input_grad[0]:
            # PyTorch's gradient: g @ d^T masked to the input's coalesced pattern
            sc = _mask_of(s)
            rows, cols = (_make(i) for i in sc.rows_cols())
            prod = g[rows] * d[cols]
            gs = from_values(prod.sum(-1) if d.ndim == 2 else prod, sc)
        if ctx.needs_input_grad[1]:
            rows, cols = s.rows_cols()
            st = COO(_data.stack_rows(cols, rows), s.values, s.shape[::-1])
            gd = _SparseMM.apply(_make(st), g)
        return gs, gd


class _SparseSparseMM(Function):
    """``sparse @ sparse``, a sparse result; each gradient masked to its input's pattern."""

    raw = True
    backward_name = "SparseSparseMatmulBackward0"

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return _data.from_dense(a.matmul(b.to_dense()))

    @staticmethod
    def backward(ctx, g):
        gd = _ToDense.apply(g) if _is_sparse(g) else g
        ga = gb = None
        if ctx.needs_input_grad[0]:
            mask = _mask_of(ctx.a)
            ga = from_values(_gather(gd @ _make(ctx.b.to_dense()).mT, mask), mask)
        if ctx.needs_input_grad[1]:
            mask = _mask_of(ctx.b)
            gb = from_values(_gather(_make(ctx.a.to_dense()).mT @ gd, mask), mask)
        return ga, gb


class _SumAll(Function):
    raw = True
    backward_name = "SumBackward0"

    @staticmethod
    def forward(ctx, s, dt):
        ctx.proto = s
        v = s.values
        return ctx.xp.asarray(v.sum(dtype=dt) if v.size else ctx.xp.zeros((), dt or v.dtype))

    @staticmethod
    def backward(ctx, g):
        mask = _mask_of(ctx.proto)
        return from_values(g.expand(mask.values.shape), mask), None


class _SumDims(Function):
    """Sum of a COO tensor over ``dims``: sparse while a sparse dim is left, else dense."""

    raw = True
    backward_name = "SparseSumBackward0"

    @staticmethod
    def forward(ctx, s, dims):
        s = s.coalesce()
        ctx.proto, ctx.dims = s, dims
        return _data.sum_dims(s, dims)

    @staticmethod
    def backward(ctx, g):
        s, dims = ctx.proto, ctx.dims
        sd = s.sparse_dim
        keep = [d for d in range(sd) if d not in dims]
        gd = _ToDense.apply(g) if _is_sparse(g) else g
        # re-insert the summed dense dims, then pick each stored value's slice
        for d in sorted(d for d in dims if d >= sd):
            gd = gd.unsqueeze(d - len([x for x in dims if x < sd]))
        if keep:
            gv = gd[tuple(_make(s.indices[d]) for d in keep)]
        else:
            gv = gd.unsqueeze(0)
        return from_values(gv.expand(s.values.shape), s), None


class _Softmax(Function):
    raw = True
    backward_name = "SoftmaxBackward0"

    @staticmethod
    def forward(ctx, s, dim):
        s = s.coalesce()
        y, seg, n = _data.segment_softmax(s, dim)
        ctx.proto, ctx.seg, ctx.n = s, seg, n
        out = s.with_values(y)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        y = _Values.apply(out)
        gv = _gather(g, ctx.proto)
        seg = _make(ctx.seg)
        total = (gv * y).new_zeros((ctx.n,) + tuple(y.shape[1:])).index_add(0, seg, gv * y)
        return from_values(y * (gv - total[seg]), ctx.proto), None


# ---- public functions ----------------------------------------------------------------------

class check_sparse_tensor_invariants:
    """Check the indices of every sparse tensor constructed while enabled (PyTorch's
    ``torch.sparse.check_sparse_tensor_invariants``; also a context manager/decorator)."""

    _enabled = False

    def __init__(self, enable: bool = True):
        self.state = enable
        self.saved = None

    @staticmethod
    def is_enabled() -> bool:
        return check_sparse_tensor_invariants._enabled

    @staticmethod
    def enable() -> None:
        check_sparse_tensor_invariants._enabled = True

    @staticmethod
    def disable() -> None:
        check_sparse_tensor_invariants._enabled = False

    def __enter__(self):
        self.saved = check_sparse_tensor_invariants._enabled
        check_sparse_tensor_invariants._enabled = self.state
        return self

    def __exit__(self, *exc):
        check_sparse_tensor_invariants._enabled = self.saved

    def __call__(self, fn):
        def wrapper(*a, **kw):
            with check_sparse_tensor_invariants(self.state):
                return fn(*a, **kw)
        return wrapper


def _as_tensor(x, dtype=None) -> Tensor:
    from .._creation import tensor
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype is dtype else x.to(dtype)
    return tensor(x, dtype=dtype)


def _index_array(idx, name: str):
    from .. import int64
    t = _as_tensor(idx)
    return (t if t.dtype is int64 else t.to(int64))._data


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None,
                      pin_memory: bool = False, requires_grad: bool = False,
                      check_invariants=None, is_coalesced=None) -> Tensor:
    """A COO tensor with ``values[k]`` at ``indices[:, k]`` (``torch.sparse_coo_tensor``)."""
    idx = _index_array(indices, "indices")
    vals = _as_tensor(values, dtype)
    if idx.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(idx.shape)}")
    sd, nnz = idx.shape
    if vals.ndim == 0:
        raise RuntimeError("values must have at least 1 dimension")
    if vals.shape[0] != nnz:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: "
                           f"{nnz}, nnz from values: {vals.shape[0]}")
    dd = vals.ndim - 1
    if size is None:  # each sparse dim just holds its largest index
        size = tuple(int(idx[d].max()) + 1 if nnz else 0 for d in range(sd)) + \
            tuple(vals.shape[1:])
    size = tuple(int(s) for s in size)
    if len(size) != sd + dd:
        raise RuntimeError(f"'len(size) == sparse_dim + dense_dim' is not satisfied: len(size) = "
                           f"{len(size)}, sparse_dim = {sd}, dense_dim = {dd}")
    if tuple(size[sd:]) != tuple(vals.shape[1:]):
        raise RuntimeError(f"values has incorrect size, expected {[nnz, *size[sd:]]}, got "
                           f"{list(vals.shape)}")
    proto = COO(idx, vals._data, size, bool(is_coalesced))
    if check_invariants or (check_invariants is None and
                            check_sparse_tensor_invariants.is_enabled()):
        proto.check()
    out = _FromValues.apply(vals, proto)
    if requires_grad:
        out.requires_grad_(True)
    return out


def sparse_csr_tensor(crow_indices, col_indices, values, size=None, *, dtype=None,
                      device=None, pin_memory: bool = False, requires_grad: bool = False,
                      check_invariants=None) -> Tensor:
    """A CSR matrix from compressed row offsets, column indices and values
    (``torch.sparse_csr_tensor``)."""
    crow = _index_array(crow_indices, "crow_indices")
    col = _index_array(col_indices, "col_indices")
    vals = _as_tensor(values, dtype)
    if crow.ndim != 1 or col.ndim != 1:
        raise RuntimeError("crow_indices and col_indices must be 1-D (batched CSR is not "
                           "supported by ember)")
    if col.shape[0] != vals.shape[0]:
        raise RuntimeError(f"col_indices and values must have the same number of elements, but "
                           f"got col_indices.numel() = {col.shape[0]} and values.numel() = "
                           f"{vals.shape[0]}")
    if size is None:
        size = (crow.shape[0] - 1, int(col.max()) + 1 if col.size else 0)
    proto = CSR(crow, col, vals._data, size)
    if check_invariants or (check_invariants is None and
                            check_sparse_tensor_invariants.is_enabled()):
        proto.check()
    out = _CsrFromValues.apply(vals, proto)
    if requires_grad:
        out.requires_grad_(True)
    return out


def _need_layout(t: Tensor, want, fn: str):
    have = t.layout
    if have is not want and not (want is None and have is not strided):
        names = {strided: "Strided", sparse_coo: "Sparse", sparse_csr: "SparseCsr"}
        kind = {sparse_coo: "sparse coordinate tensor layout",
                sparse_csr: "sparse row compressed tensor layout",
                None: "sparse tensor layout"}[want]
        raise RuntimeError(f"{fn} expected {kind} but got {names[have]}")


def _cast(input: Tensor, dtype) -> Tensor:
    """``input`` with its values cast to ``dtype`` (differentiably)."""
    return from_values(_Values.apply(input).to(dtype), input._data)


def sparse_mm(mat1: Tensor, mat2: Tensor) -> Tensor:
    """``mat1 @ mat2`` with a sparse ``mat1`` (``torch.sparse.mm``): dense for a dense
    ``mat2``, sparse for a sparse one."""
    need_tensor(mat1, "mm")
    need_tensor(mat2, "mm", "mat2", 2)
    if not _is_sparse(mat1):
        from .linalg import mm
        return mm(mat1, mat2)
    if _is_sparse(mat2):
        if mat1.ndim != 2 or mat2.ndim != 2 or mat1.shape[1] != mat2.shape[0]:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                               f"({mat1.shape[0]}x{mat1.shape[1]} and "
                               f"{mat2.shape[0]}x{mat2.shape[1]})")
        return _SparseSparseMM.apply(mat1, mat2)
    if mat2.ndim != 2:
        _wrap_dim(1, mat2.ndim)  # PyTorch's IndexError for a vector
    if mat1.ndim != 2:
        raise RuntimeError("sparse.mm: mat1 must be a matrix")
    if mat1.dtype is not mat2.dtype:
        raise RuntimeError(f"expected mat1 and mat2 to have the same dtype, but got: "
                           f"{mat1.dtype.c_name} != {mat2.dtype.c_name}")
    return _SparseMM.apply(mat1, mat2)


def spmm(input: Tensor, mat2: Tensor) -> Tensor:
    """``torch.spmm``: sparse (or dense) ``input`` times dense ``mat2``; as ``torch.mm``, a
    sparse ``input`` gets a dense gradient."""
    from .linalg import mm
    return mm(input, mat2)


def sparse_sum(input: Tensor, dim=None, dtype=None) -> Tensor:
    """Sum of a COO tensor's values: a dense scalar, or over ``dim`` (``torch.sparse.sum``)."""
    need_tensor(input, "sum")
    _need_layout(input, sparse_coo, "coalesce")
    if dtype is not None:
        input = _cast(input, dtype)
    if dim is None:
        return _SumAll.apply(input, None)
    dims = (dim,) if isinstance(dim, builtins.int) else tuple(dim)
    dims = tuple(sorted(set(_wrap_dim(d, input.ndim) for d in dims)))
    return _SumDims.apply(input, dims)


def sparse_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    """Softmax over each slice's stored values along ``dim``; unstored entries count as
    -inf, so they stay unstored (``torch.sparse.softmax``)."""
    need_tensor(input, "softmax")
    _need_layout(input, sparse_coo, "softmax")
    if dtype is not None:
        input = _cast(input, dtype)
    dim = _wrap_dim(dim, input.ndim)
    if dim >= input._data.sparse_dim or input._data.dense_dim:
        raise not_implemented("_sparse_softmax with dense dims")
    return _Softmax.apply(input, dim)


# ---- Tensor methods ------------------------------------------------------------------------

def _layout(self) -> object:
    return getattr(self._data, "layout", strided)


def to_dense(self, dtype=None, *, masked_grad=None) -> Tensor:
    """The dense tensor a sparse one stands for (itself when already dense)."""
    out = _ToDense.apply(self) if _is_sparse(self) else self
    return out if dtype is None else out.to(dtype)


def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None) -> Tensor:
    """The COO (or ``layout``) form of a tensor (``Tensor.to_sparse``)."""
    if layout is sparse_csr:
        return to_sparse_csr(self)
    if layout not in (None, sparse_coo):
        raise RuntimeError(f"to_sparse: ember supports sparse_coo and sparse_csr, not {layout}")
    d = self._data
    if type(d) is COO:
        return self
    if type(d) is CSR:
        return _CsrToCoo.apply(self)
    if sparse_dim is not None and not 0 < sparse_dim <= self.ndim:
        raise RuntimeError(f"sparse_dim argument must be in [0, {self.ndim}] range, but "
                           f"{sparse_dim} is given")
    return _ToSparse.apply(self, sparse_dim, False)


def to_sparse_coo(self) -> Tensor:
    return to_sparse(self)


def to_sparse_csr(self, dense_dim=None) -> Tensor:
    """The CSR form of a 2-D tensor (``Tensor.to_sparse_csr``)."""
    d = self._data
    if type(d) is CSR:
        return self
    if self.ndim != 2:
        raise RuntimeError(f"to_sparse_csr: expected a 2-D tensor, got {self.ndim}-D (ember "
                           "has no batched CSR)")
    if type(d) is COO:
        return _CsrFromValues.apply(_Values.apply(_Coalesce.apply(self)),
                                    _data.csr_from_coo(d.coalesce()))
    return _ToSparse.apply(self, None, True)


def coalesce(self) -> Tensor:
    _need_layout(self, sparse_coo, "coalesce")
    return self if self._data.coalesced else _Coalesce.apply(self)


def is_coalesced(self) -> bool:
    _need_layout(self, sparse_coo, "is_coalesced")
    return self._data.coalesced


def indices(self) -> Tensor:
    _need_layout(self, sparse_coo, "indices")
    if not self._data.coalesced:
        raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call "
                           ".coalesce() first")
    return _make(self._data.indices)


def _indices(self) -> Tensor:
    _need_layout(self, sparse_coo, "_indices")
    return _make(self._data.indices)


def values(self) -> Tensor:
    _need_layout(self, None, "values")
    if type(self._data) is COO and not self._data.coalesced:
        raise RuntimeError("Cannot get values on an uncoalesced tensor, please call "
                           ".coalesce() first")
    return _Values.apply(self)


def _values(self) -> Tensor:
    _need_layout(self, None, "_values")
    return _Values.apply(self)


def crow_indices(self) -> Tensor:
    _need_layout(self, sparse_csr, "crow_indices")
    return _make(self._data.crow)


def col_indices(self) -> Tensor:
    _need_layout(self, sparse_csr, "col_indices")
    return _make(self._data.col)


def _nnz(self) -> int:
    _need_layout(self, None, "_nnz")
    return self._data.nnz


def sparse_dim(self) -> int:
    return self._data.sparse_dim if _is_sparse(self) else 0


def dense_dim(self) -> int:
    return self._data.dense_dim if _is_sparse(self) else self.ndim


METHODS = {
    "layout": property(_layout),
    "is_sparse": property(lambda self: type(self._data) is COO),
    "is_sparse_csr": property(lambda self: type(self._data) is CSR),
    "to_dense": to_dense, "to_sparse": to_sparse, "to_sparse_coo": to_sparse_coo,
    "to_sparse_csr": to_sparse_csr, "coalesce": coalesce, "is_coalesced": is_coalesced,
    "indices": indices, "_indices": _indices, "values": values, "_values": _values,
    "crow_indices": crow_indices, "col_indices": col_indices, "_nnz": _nnz,
    "sparse_dim": sparse_dim, "dense_dim": dense_dim,
}
