"""Tensors in shared memory: ``Tensor.share_memory_()`` / ``is_shared()`` (the
``ember.multiprocessing`` design note says how they travel between processes).

A shared tensor's array lives in an anonymous memory file (``memfd_create``) mapped
``MAP_SHARED``; the file descriptor stays open as long as the mapping does, so another
process that is handed a duplicate of it (``multiprocessing.reduction.DupFd``, as
PyTorch's ``file_descriptor`` strategy) maps the same pages: writes on either side are
seen by both, which is what Hogwild training needs.  A forked child inherits the mapping
itself.  Nothing here is imported by the op hot path.
"""
from __future__ import annotations

import mmap
import os
import weakref

import numpy as np

# id(mapping) -> (mapping's weak reference, fd, size) of every shared mapping of this process
_MAPS = {}


def _forget(key, fd) -> None:
    _MAPS.pop(key, None)
    try:
        os.close(fd)
    except OSError:
        pass


def _register(mm, fd, size) -> None:
    key = id(mm)
    _MAPS[key] = (weakref.ref(mm), fd, size)
    weakref.finalize(mm, _forget, key, fd)


def _root(arr):
    """The object that owns ``arr``'s memory (NumPy keeps the owner as the last base)."""
    b = arr
    while isinstance(b, np.ndarray) and b.base is not None:
        b = b.base
    return b


def shared_info(arr):
    """``(fd, size, offset)`` of an array on a shared mapping, else None."""
    root = _root(arr)
    entry = _MAPS.get(id(root)) if isinstance(root, mmap.mmap) else None
    if entry is None or entry[0]() is not root:
        return None
    start = np.frombuffer(root, np.uint8, 1).__array_interface__["data"][0]
    return entry[1], entry[2], arr.__array_interface__["data"][0] - start


def new_shared(nbytes: int):
    """A fresh shared mapping of ``nbytes`` (at least one page) and its fd."""
    size = max(int(nbytes), 1)
    fd = os.memfd_create("ember-shared", 0)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
    _register(mm, fd, size)
    return mm


def attach(fd: int, size: int, offset: int, shape, dtype, strides):
    """The array another process shared, on this process's own mapping of its memory."""
    mm = mmap.mmap(fd, size)
    _register(mm, fd, size)
    return np.ndarray(shape, dtype, buffer=mm, offset=offset, strides=strides)


def share_memory_(self):
    """Move this tensor's data to shared memory (a no-op when it is already there), in place
    (``Tensor.share_memory_``)."""
    a = self._data
    if type(a) is not np.ndarray:
        raise RuntimeError("share_memory_: only dense cpu tensors can be moved to shared "
                           "memory in ember")
    if shared_info(a) is None:
        mm = new_shared(a.nbytes)
        shared = np.ndarray(a.shape, a.dtype, buffer=mm)
        shared[...] = a
        self._data = shared
    return self


def is_shared(self) -> bool:
    """Whether this tensor's data is in shared memory (``Tensor.is_shared``)."""
    a = self._data
    return type(a) is np.ndarray and shared_info(a) is not None


METHODS = {"share_memory_": share_memory_, "is_shared": is_shared}
