"""The storage of a sparse tensor: ``COO`` and ``CSR`` hold what a dense tensor's NumPy
array holds, in the same ``Tensor._data`` slot (design note: ``ember/sparse/__init__.py``).

Each is registered in the backend seam (``_backend._BY_ARRAY_TYPE``) as a cpu array type
whose array module is NumPy, so ``Function.apply``, the engine and ``Tensor``'s metadata
treat it as an array.  It answers the attributes those read (``shape``, ``dtype``,
``ndim``, ``size``, ``copy``, ``astype``, ``base``) and the few NumPy calls that dense ops
make on sparse operands in PyTorch too (``matmul``, scaling, ``transpose``, adding two
sparse gradients); any other NumPy call raises PyTorch's NotImplementedError for the
'SparseCPU' backend.
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._layout import sparse_coo, sparse_csr

# ufunc -> the ATen op PyTorch names in its "Could not run" error
_ATEN = {"multiply": "mul", "true_divide": "div", "add": "add", "subtract": "sub",
         "negative": "neg", "matmul": "mm", "greater": "gt", "less": "lt", "equal": "eq",
         "maximum": "maximum", "minimum": "minimum", "power": "pow", "absolute": "abs"}


def not_implemented(op: str, backend: str = "SparseCPU") -> NotImplementedError:
    """PyTorch's error for an op with no kernel for a sparse layout."""
    return NotImplementedError(
        f"Could not run 'aten::{op}' with arguments from the '{backend}' backend. This could "
        "be because the operator doesn't exist for this backend, or was omitted during the "
        "selective/custom build process (if using custom build).")


def _is_scalar(x) -> bool:
    return isinstance(x, (int, float, bool, np.generic)) or (
        isinstance(x, np.ndarray) and x.ndim == 0)


class _Sparse:
    """What COO and CSR share: array metadata and the NumPy protocol hooks."""

    __slots__ = ()
    base = None  # never a view of another array (the engine's copy-on-accumulate test)
    backend = "SparseCPU"

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:  # elements of the dense tensor it stands for (Tensor.numel)
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        return self.values.itemsize

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    def __array__(self, dtype=None, copy=None):
        layout = "Sparse" if isinstance(self, COO) else "SparseCsr"
        raise TypeError(f"can't convert {layout} layout tensor to numpy. Use Tensor.to_dense() "
                        "first.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__":
            dest = kwargs.get("out")
            if dest is not None:  # dense += / -= sparse (an optimizer's step), in place
                d = dest[0]
                if ufunc in (np.add, np.subtract) and len(inputs) == 2 and \
                        inputs[0] is d and inputs[1] is self and d.shape == self.shape:
                    c = self if isinstance(self, COO) else self.to_coo()
                    vals = c.values if ufunc is np.add else -c.values
                    np.add.at(d, tuple(c.indices), vals.astype(d.dtype, copy=False))
                    return d
                if ufunc is np.add and len(inputs) == 2 and type(inputs[0]) is COO and \
                        type(inputs[1]) is COO:  # sparse + sparse stays sparse
                    return inputs[0] + inputs[1]
            else:
                out = self._ufunc(ufunc, inputs, kwargs.get("dtype"))
                if out is not None:
                    return out
        raise not_implemented(_ATEN.get(ufunc.__name__, ufunc.__name__), self.backend)

    # Python's operators on the storage itself (optimizers update arrays with them)
    def __mul__(self, other):
        return np.multiply(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return np.true_divide(self, other)

    def __neg__(self):
        return np.negative(self)

    def __imul__(self, other):
        """Scale the stored values in place (a momentum buffer ``b *= mu``)."""
        if not _is_scalar(other):
            raise not_implemented("mul_", self.backend)
        self.values *= other
        return self

    def _ufunc(self, ufunc, inputs, dtype):
        a = inputs[0]
        if ufunc is np.matmul and a is self and isinstance(inputs[1], np.ndarray):
            return self.matmul(inputs[1])
        if ufunc is np.add and len(inputs) == 2:
            b = inputs[1]
            if type(a) is COO and type(b) is COO:
                out = a + b
                return out if dtype is None else out.astype(dtype)
            if isinstance(a, np.ndarray) and b is self:  # dense + sparse is dense
                return np.add(a, self.to_dense(), dtype=dtype)
            if a is self and isinstance(b, np.ndarray):
                raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, "
                                   "sparse) instead.")
        if ufunc is np.negative:
            return self.with_values(np.negative(self.values))
        if ufunc in (np.multiply, np.true_divide) and len(inputs) == 2:
            other = inputs[1] if a is self else a
            if _is_scalar(other) and (a is self or ufunc is np.multiply):
                return self.with_values(ufunc(self.values, other, dtype=dtype))
        return None

    def __array_function__(self, func, types, args, kwargs):
        if func is np.transpose and self.ndim == 2 and isinstance(self, COO):
            return self.transpose()
        axis = kwargs.get("axis")
        every = axis is None or sorted(np.atleast_1d(axis) % max(self.ndim, 1)) == \
            list(range(self.ndim))
        if func is np.sum and len(args) == 1 and every and not kwargs.get("keepdims"):
            # the sum of every element: a dense scalar
            return np.asarray(self.values.sum(dtype=kwargs.get("dtype")))
        raise not_implemented(func.__name__, self.backend)

    def rows_cols(self):
        """Row and column index of each stored value of a 2-D tensor."""
        raise NotImplementedError


class COO(_Sparse):
    """Coordinate format: ``indices`` (sparse_dim, nnz) int64, ``values`` (nnz, *dense)."""

    __slots__ = ("indices", "values", "shape", "coalesced")
    layout = sparse_coo
    backend = "SparseCPU"

    def __init__(self, indices, values, shape, coalesced=False):
        self.indices = indices
        self.values = values
        self.shape = tuple(int(s) for s in shape)
        self.coalesced = bool(coalesced)

    @property
    def sparse_dim(self) -> int:
        return self.indices.shape[0]

    @property
    def dense_dim(self) -> int:
        return self.values.ndim - 1

    @property
    def nnz(self) -> int:
        return self.values.shape[0]

    def with_values(self, values) -> "COO":
        return COO(self.indices, values, self.shape, self.coalesced)

    def copy(self, **kwargs) -> "COO":
        return COO(self.indices.copy(), self.values.copy(), self.shape, self.coalesced)

    def astype(self, dtype, **kwargs) -> "COO":
        return self.with_values(self.values.astype(dtype))

    def check(self) -> None:
        """PyTorch's invariant checks of ``sparse_coo_tensor(check_invariants=True)``."""
        idx = self.indices
        for d in range(idx.shape[0]):
            if idx.shape[1] == 0:
                break
            lo, hi = int(idx[d].min()), int(idx[d].max())
            if lo < 0:
                raise RuntimeError(f"found negative index {lo} for dim {d}")
            if hi >= self.shape[d]:
                raise RuntimeError(f"size is inconsistent with indices: for dim {d}, size is "
                                   f"{self.shape[d]} but found index {hi}")

    def coalesce(self) -> "COO":
        """Indices sorted and unique, duplicates' values summed."""
        if self.coalesced:
            return self
        self.check()  # PyTorch reads out of bounds here; ember refuses
        idx, vals = self.indices, self.values
        sshape = self.shape[:self.sparse_dim]
        if self.nnz == 0:
            return COO(idx, vals, self.shape, True)
        lin = np.ravel_multi_index(tuple(idx), sshape) if sshape else np.zeros(self.nnz, int)
        uniq, inv = np.unique(lin, return_inverse=True)
        out = np.zeros((len(uniq),) + vals.shape[1:], vals.dtype)
        np.add.at(out, inv.reshape(-1), vals)
        new_idx = np.stack(np.unravel_index(uniq, sshape)).astype(np.int64) if sshape else \
            np.zeros((0, len(uniq)), np.int64)
        return COO(new_idx.reshape(len(sshape), -1), out, self.shape, True)

    def to_dense(self):
        self.check()
        out = np.zeros(self.shape, self.values.dtype)
        if self.nnz:
            np.add.at(out, tuple(self.indices), self.values)
        return out

    def rows_cols(self):
        return self.indices[0], self.indices[1]

    def transpose(self) -> "COO":
        return COO(self.indices[::-1].copy(), self.values, self.shape[::-1])

    def matmul(self, dense):
        return _spmm(self.rows_cols(), self.values, self.shape, dense)

    def __add__(self, other):
        if not isinstance(other, COO) or other.shape != self.shape:
            return NotImplemented
        idx = np.concatenate([self.indices, other.indices], axis=1)
        vals = np.concatenate([self.values, other.values.astype(self.values.dtype)])
        return COO(idx, vals, self.shape).coalesce()

    def __iadd__(self, other):
        """``self += other`` in place (gradient accumulation, a momentum buffer)."""
        s = self + other
        if s is NotImplemented:
            return s
        self.indices, self.values, self.coalesced = s.indices, s.values, s.coalesced
        return self


class CSR(_Sparse):
    """Compressed sparse rows: ``crow`` (rows + 1), ``col`` (nnz), ``values`` (nnz)."""

    __slots__ = ("crow", "col", "values", "shape")
    layout = sparse_csr
    backend = "SparseCsrCPU"

    def __init__(self, crow, col, values, shape):
        self.crow = crow
        self.col = col
        self.values = values
        self.shape = tuple(int(s) for s in shape)

    sparse_dim = 2

    @property
    def dense_dim(self) -> int:
        return self.values.ndim - 1

    @property
    def nnz(self) -> int:
        return self.values.shape[0]

    def with_values(self, values) -> "CSR":
        return CSR(self.crow, self.col, values, self.shape)

    def copy(self, **kwargs) -> "CSR":
        return CSR(self.crow.copy(), self.col.copy(), self.values.copy(), self.shape)

    def astype(self, dtype, **kwargs) -> "CSR":
        return self.with_values(self.values.astype(dtype))

    def check(self) -> None:
        """PyTorch's compressed-index invariants (``check_invariants=True``)."""
        crow, col, n = self.crow, self.col, self.nnz
        if crow.shape[0] != self.shape[0] + 1:
            raise RuntimeError(f"crow_indices.shape[-1] must be equal to the number of rows + 1 "
                               f"(={self.shape[0] + 1}), but got {crow.shape[0]}")
        if int(crow[0]) != 0:
            raise RuntimeError("`crow_indices[..., 0] == 0` is not satisfied.")
        if int(crow[-1]) != n:
            raise RuntimeError("`crow_indices[..., -1] == nnz` is not satisfied.")
        if (np.diff(crow) < 0).any():
            raise RuntimeError("`0 <= crow_indices[..., 1:] - crow_indices[..., :-1] <= ncols` "
                               "is not satisfied.")
        if n and (int(col.min()) < 0 or int(col.max()) >= self.shape[1]):
            raise RuntimeError("`0 <= col_indices < ncols` is not satisfied.")

    def rows_cols(self):
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.crow))
        return rows, self.col

    def to_coo(self) -> COO:
        rows, cols = self.rows_cols()
        return COO(np.stack([rows, cols]), self.values, self.shape, True)

    def to_dense(self):
        self.check()
        return self.to_coo().to_dense()

    def matmul(self, dense):
        self.check()
        return _spmm(self.rows_cols(), self.values, self.shape, dense)


def _spmm(rows_cols, values, shape, dense):
    """``A @ dense`` for a 2-D sparse ``A`` given as (rows, cols, values): one gather, one
    scaled copy and one scatter-add over the stored entries."""
    rows, cols = rows_cols
    if dense.shape[0] != shape[1]:
        raise RuntimeError(f"addmm: Argument #3 (dense): Expected dim 0 size {shape[1]}, got "
                           f"{dense.shape[0]}")
    vec = dense.ndim == 1
    d = dense[:, None] if vec else dense
    out = np.zeros((shape[0], d.shape[1]), np.result_type(values.dtype, dense.dtype))
    if len(rows):
        np.add.at(out, rows, values[:, None] * d[cols])
    return out[:, 0] if vec else out


def from_dense(a, sparse_dim=None) -> COO:
    """The COO form of a dense array (coalesced), its first ``sparse_dim`` dims sparse."""
    sd = a.ndim if sparse_dim is None else sparse_dim
    lead = a.reshape(a.shape[:sd] + (-1,)) if sd < a.ndim else a[..., None]
    mask = (lead != 0).any(axis=-1) if lead.shape[-1] else np.zeros(lead.shape[:-1], bool)
    idx = np.stack(np.nonzero(mask)).astype(np.int64).reshape(sd, -1)
    vals = a[tuple(idx)]
    return COO(idx, vals, a.shape, True)


def csr_from_coo(c: COO) -> CSR:
    c = c.coalesce()
    rows, cols = c.indices
    crow = np.zeros(c.shape[0] + 1, np.int64)
    np.add.at(crow, rows + 1, 1)
    return CSR(np.cumsum(crow), cols.copy(), c.values, c.shape)


# cpu arrays whose module is NumPy, as far as Function.apply and the engine are concerned
_backend._BY_ARRAY_TYPE[COO] = (np, _backend.CPU)
_backend._BY_ARRAY_TYPE[CSR] = (np, _backend.CPU)


def stack_rows(*rows):
    """Index rows stacked into a (k, nnz) int64 array."""
    return np.stack(rows).astype(np.int64, copy=False)


def sum_dims(c: COO, dims) -> object:
    """A coalesced COO tensor summed over ``dims``: COO while a sparse dim is left, else a
    dense array."""
    sd = c.sparse_dim
    vals = c.values
    dense_axes = tuple(d - sd + 1 for d in dims if d >= sd)
    if dense_axes:
        vals = vals.sum(axis=dense_axes)
    keep = [d for d in range(sd) if d not in dims]
    shape = tuple(s for i, s in enumerate(c.shape) if i not in dims)
    if not keep:
        return np.asarray(vals.sum(axis=0))
    return COO(c.indices[keep], vals, shape).coalesce()


def segment_softmax(c: COO, dim: int):
    """Softmax of a coalesced COO tensor's values along sparse dim ``dim``, over the stored
    entries of each slice: (values, slice id of each value, number of slices)."""
    others = [d for d in range(c.sparse_dim) if d != dim]
    if others:
        key = np.ravel_multi_index(tuple(c.indices[others]), tuple(c.shape[d] for d in others))
        uniq, seg = np.unique(key, return_inverse=True)
        seg = seg.reshape(-1)
    else:
        uniq, seg = np.zeros(1), np.zeros(c.nnz, np.int64)
    n = len(uniq)
    v = c.values
    top = np.full((n,) + v.shape[1:], -np.inf, v.dtype)
    np.maximum.at(top, seg, v)
    e = np.exp(v - top[seg])
    tot = np.zeros_like(top)
    np.add.at(tot, seg, e)
    return e / tot[seg], seg.astype(np.int64), n
