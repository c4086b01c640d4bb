"""``Size``: a tensor's shape (PyTorch's ``torch.Size``)."""
from __future__ import annotations


class Size(tuple):
    """A tensor's shape: a tuple printed as ``ember.Size([32, 1])``."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        t = tuple.__new__(cls, sizes)
        for s in t:
            if type(s) is not int:  # rare: bools, 0-d integer tensors, or a bad argument
                return tuple.__new__(cls, [_as_int(s, i) for i, s in enumerate(t)])
        return t

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


def shape_of_array(arr) -> Size:
    """``arr.shape`` as a Size, unchecked: an array's shape holds ints (the hot path)."""
    return tuple.__new__(Size, arr.shape)


def _as_int(s, i):
    """One size, as ``torch.Size`` takes it: anything with ``__index__``."""
    if isinstance(s, int):
        return int(s)
    index = getattr(type(s), "__index__", None)
    if index is None:
        raise TypeError(f"torch.Size() takes an iterable of 'int' (item {i} is "
                        f"'{type(s).__name__}')")
    try:
        return index(s)
    except (TypeError, RuntimeError, ValueError):
        raise TypeError(f"torch.Size() takes an iterable of 'int' (item {i} is "
                        f"'{type(s).__name__}')") from None
