"""``ember.sparse.FloatTensor`` and friends: PyTorch's legacy sparse constructors, still used
by older graph code (``torch.sparse.FloatTensor(indices, values, size)``)."""
from __future__ import annotations

import warnings

from .. import _dtype
from .._tensor import Tensor
from .._tensor_types import _TensorType
from .._sparse import COO
from ..ops.sparse import sparse_coo_tensor


class _SparseTensorType(_TensorType):
    """``isinstance`` by dtype, device and the sparse COO layout."""

    def __instancecheck__(cls, obj) -> bool:
        return super().__instancecheck__(obj) and type(obj._data) is COO

    def __repr__(cls) -> str:
        return f"<class 'ember.sparse.{cls.__name__}'>"


def _new(cls, *args, device=None):
    """``(indices, values[, size])``: a COO tensor (of the values' dtype, as PyTorch keeps
    it); ``(*sizes)``: an empty one of this dtype."""
    d = cls.dtype
    if args and isinstance(args[0], Tensor):
        warnings.warn("torch.sparse.SparseTensor(indices, values, shape, *, device=) is "
                      "deprecated.  Please use torch.sparse_coo_tensor(indices, values, shape, "
                      "dtype=, device=).", UserWarning, stacklevel=2)
        size = args[2] if len(args) > 2 else None
        return sparse_coo_tensor(args[0], args[1], size)
    warnings.warn("torch.sparse.SparseTensor(shape, *, device=) is deprecated.  Please use "
                  "torch.sparse_coo_tensor(shape, dtype=, device=).", UserWarning, stacklevel=2)
    from .. import empty, int64
    sizes = tuple(args[0]) if len(args) == 1 and isinstance(args[0], tuple) else args
    return sparse_coo_tensor(empty(len(sizes), 0, dtype=int64), empty(0, dtype=d), sizes)


def _make(d: _dtype.dtype) -> type:
    doc = f"Legacy constructor of sparse {d.name} tensors (``torch.sparse.{d.legacy_name}``)."
    return _SparseTensorType(d.legacy_name, (), {
        "__new__": _new, "dtype": d, "is_cuda": False, "is_sparse": True,
        "__module__": "ember.sparse", "__doc__": doc})


FloatTensor = _make(_dtype.float32)
DoubleTensor = _make(_dtype.float64)
HalfTensor = _make(_dtype.float16)
BFloat16Tensor = _make(_dtype.bfloat16)
LongTensor = _make(_dtype.int64)
IntTensor = _make(_dtype.int32)
ShortTensor = _make(_dtype.int16)
CharTensor = _make(_dtype.int8)
ByteTensor = _make(_dtype.uint8)
