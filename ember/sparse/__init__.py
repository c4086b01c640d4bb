"""``ember.sparse``: sparse COO and CSR tensors (PyTorch's ``torch.sparse``).

Design note.  A sparse tensor is an ordinary ``ember.Tensor`` whose ``_data`` is not a
NumPy array but a small container (``ember/_sparse.py``: ``COO`` holds int64 ``indices``
(sparse_dim, nnz), ``values`` (nnz, *dense), the size and a coalesced flag; ``CSR`` holds
``crow``, ``col``, ``values`` and the size).  Each container type is registered in the backend seam
(``_backend._BY_ARRAY_TYPE``) as a cpu array type whose module is NumPy, and answers the
metadata a NumPy array answers (``shape`` is the dense size, ``dtype`` the values' dtype),
so ``Tensor.shape``/``dtype``/``device``/``numel``, ``Function.apply``, the saved-tensor
machinery and the backward engine (which adds gradients with ``+`` and copies them with
``copy()``) work on it unchanged.  Nothing dense changes: no new slot, no subclass with a
``__torch_function__`` (which would switch every op onto the dispatch path), no branch in
any op, so the dense hot path pays nothing (``bench --only op_overhead`` is unchanged).

The sparse ops are ``Function``s in ``ember/ops/sparse.py`` whose forwards read the
container and whose backwards are ember ops.  A dense op given a sparse operand sees the
container through NumPy's protocols: ``matmul`` (so ``torch.mm(sparse, dense)`` and
``sparse @ dense`` work, with PyTorch's dense gradient for the sparse operand), scaling,
``neg``, 2-D ``transpose`` and adding two sparse gradients are answered; anything else
raises PyTorch's ``NotImplementedError: Could not run 'aten::exp' with arguments from the
'SparseCPU' backend``.  Gradients follow PyTorch: ``sparse.mm`` and ``to_dense`` give a
sparse leaf a sparse gradient with its own pattern; a ``values`` tensor that built the
sparse tensor gets the dense gradient of each stored entry.

Life of ``torch.sparse.mm(A, X)``: ``_SparseMM.apply`` passes ``A._data`` (the container)
and ``X._data`` to ``forward``, which scatter-adds ``values[:, None] * X[cols]`` into the
rows (``np.add.at``, no SciPy); backward gives ``X`` the gradient ``A^T @ g`` (the same op
on the transposed pattern) and ``A`` a COO gradient with values ``sum(g[rows] * X[cols])``.
Out-of-range indices raise PyTorch's invariant errors under ``check_invariants=True`` (as
PyTorch) and also on ``coalesce``/``to_dense`` (where PyTorch reads out of bounds).
"""
from __future__ import annotations

from ..ops.sparse import (sparse_mm as mm, sparse_sum as sum, sparse_softmax as softmax,  # noqa
                          spmm, check_sparse_tensor_invariants)
from ..ops.sparse import METHODS  # noqa: F401  (Tensor's sparse methods, bound by ember)
from ._legacy import (FloatTensor, DoubleTensor, HalfTensor, BFloat16Tensor,  # noqa: F401
                      LongTensor, IntTensor, ShortTensor, CharTensor, ByteTensor)

__all__ = ["mm", "sum", "softmax", "log_softmax", "addmm", "spmm",
           "check_sparse_tensor_invariants"]


def log_softmax(input, dim: int, dtype=None):
    """``log(softmax(input, dim))`` over the stored values (``torch.sparse.log_softmax``)."""
    from ..ops.sparse import from_values, _Values
    s = softmax(input, dim, dtype)
    return from_values(_Values.apply(s).log(), s._data)


def addmm(mat, mat1, mat2, *, beta=1.0, alpha=1.0):
    """``beta * mat + alpha * (mat1 @ mat2)`` with a sparse ``mat1`` (``torch.sparse.addmm``)."""
    return beta * mat + alpha * mm(mat1, mat2)
