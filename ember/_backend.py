"""Devices and the array namespace behind them.

Ops never import NumPy: they ask the backend for the array module of their
inputs (``xp``), so a CuPy ``cuda`` backend can be registered here without
touching any op (Chainer's ``get_array_module``).
"""
from __future__ import annotations

import numpy as np


class device:
    """Where a tensor's storage lives: ``device('cpu')``, ``device('cuda', 0)``."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device() expected a string or device, got {type!r}")
        if ":" in type:
            type, _, idx = type.partition(":")
            if index is not None or not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}:{idx}'")
            index = int(idx)
        if type not in ("cpu", "cuda", "meta", "mps"):
            raise RuntimeError(
                "Expected one of cpu, cuda, meta, mps device type at start of device "
                f"string: {type}")
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = device("cpu")

# array type -> (array module, device); a cuda backend adds its own row
_BY_ARRAY_TYPE = {np.ndarray: (np, CPU)}


def xp_of(arr):
    """The array module (NumPy on cpu) that owns ``arr``."""
    return _BY_ARRAY_TYPE[type(arr)][0]


def device_of(arr) -> device:
    return _BY_ARRAY_TYPE[type(arr)][1]


def xp_for(dev) -> object:
    """The array module for a device."""
    dev = device(dev) if not isinstance(dev, device) else dev
    if dev.type == "cpu":
        return np
    if dev.type == "cuda":
        raise RuntimeError("Torch not compiled with CUDA enabled: ember's cuda backend "
                           "needs CuPy and a GPU, and neither is available here")
    raise RuntimeError(f"ember has no backend for device '{dev}'")


def to_device(arr, dev):
    """Move an array to ``dev``'s backend (a no-op on cpu)."""
    xp = xp_for(dev)
    if xp_of(arr) is xp:
        return arr
    return xp.asarray(arr)


def asarray(x):
    """An array for a backend scalar (NumPy returns scalars from 0-d ops)."""
    return np.asarray(x)
