"""``ember.layout``: how a tensor's elements are stored (``strided``, ``sparse_coo``, ...)."""
from __future__ import annotations

__all__ = ["layout", "strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr",
           "sparse_bsc", "jagged"]


class layout:
    """A storage layout, printed as ``ember.sparse_coo`` (PyTorch's ``torch.sparse_coo``)."""

    __slots__ = ("_name",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'ember.layout' instances")

    @classmethod
    def _make(cls, name: str) -> "layout":
        obj = object.__new__(cls)
        obj._name = name
        return obj

    def __repr__(self) -> str:
        return "ember." + self._name

    def __reduce__(self):
        # a module global of ember: pickling and copying give back the same object
        return self._name


strided = layout._make("strided")
sparse_coo = layout._make("sparse_coo")
sparse_csr = layout._make("sparse_csr")
sparse_csc = layout._make("sparse_csc")
sparse_bsr = layout._make("sparse_bsr")
sparse_bsc = layout._make("sparse_bsc")
jagged = layout._make("jagged")
