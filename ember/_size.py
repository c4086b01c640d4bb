"""``Size``: a tensor's shape (PyTorch's ``torch.Size``)."""
from __future__ import annotations


class Size(tuple):
    """A tensor's shape: a tuple printed as ``ember.Size([32, 1])``."""

    def __repr__(self):
        return f"ember.Size({list(self)})"

    __str__ = __repr__

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return Size(r) if isinstance(i, slice) else r

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))

    def __reduce__(self):
        return (Size, (tuple(self),))
