"""A second device type for tests: 'fake', NumPy arrays that say they live elsewhere.

``FakeArray`` is a NumPy ``ndarray`` subclass that behaves as CuPy's arrays do where it
matters to ember's device plumbing: ufuncs and NumPy functions on it return ``FakeArray``
(0-d results stay arrays, as CuPy's), ``get()`` copies to host memory, and an operation that
mixes it with a host (plain NumPy) array raises ``TypeError``, so an op that makes host arrays
for a tensor on another device is caught.  ``fake_xp`` is its array module: NumPy's functions,
results on the fake device.  ``register()`` adds the backend to ``ember._backend`` (tests call
it from a fixture and ``unregister()`` afterwards); ember itself never knows about it.
"""
from __future__ import annotations

import types

import numpy as np

from ember import _backend

DEVICE_TYPE = "fake"


def _wrap(x):
    """Results on the fake device: arrays (and tuples/lists of them) become FakeArray."""
    if type(x) is np.ndarray:
        return x.view(FakeArray)
    if isinstance(x, np.generic):  # CuPy returns 0-d arrays where NumPy returns scalars
        return np.asarray(x).view(FakeArray)
    if isinstance(x, tuple):
        return tuple(_wrap(y) for y in x)
    if isinstance(x, list):
        return [_wrap(y) for y in x]
    return x


def _unwrap(x, fn):
    """FakeArray inputs as plain views; a host array among them is a device mix."""
    if isinstance(x, FakeArray):
        return x.view(np.ndarray)
    if type(x) is np.ndarray and x.ndim > 0:
        raise TypeError(f"fake device: {fn} mixes a host (NumPy) array of shape {x.shape} with "
                        "fake-device arrays")
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(y, fn) for y in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, fn) for k, v in x.items()}
    return x


class FakeArray(np.ndarray):
    """A NumPy array on the 'fake' device (see the module docstring)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__
        inputs = _unwrap(inputs, name)
        kwargs = _unwrap(kwargs, name)
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        name = func.__name__
        return _wrap(func(*_unwrap(args, name), **_unwrap(kwargs, name)))

    def __getitem__(self, key):
        return _wrap(super().__getitem__(_unwrap(key, "indexing")))

    def __setitem__(self, key, value):
        super().__setitem__(_unwrap(key, "indexing"), _unwrap(value, "assignment"))

    def get(self):
        """A host copy (CuPy's ``ndarray.get``)."""
        return np.array(self.view(np.ndarray), copy=True, order="K")


_TO_DEVICE = {"asarray", "array", "ascontiguousarray", "asanyarray"}


class _FakeXP(types.ModuleType):
    """NumPy's namespace with results on the fake device."""

    def __getattr__(self, name):
        if name == "ndarray":  # isinstance(a, xp.ndarray) tells device arrays from host ones
            return FakeArray
        if name == "lib":
            return _LIB
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, (type, np.ufunc)):
            return attr
        if name in _TO_DEVICE:
            def to_device(a, *args, **kwargs):
                if isinstance(a, FakeArray):
                    return _wrap(attr(a.view(np.ndarray), *args, **kwargs))
                # host data copied onto the device, as cupy.asarray
                return np.array(attr(a, *args, **kwargs), copy=True, order="K").view(FakeArray)
            return to_device

        def call(*args, **kwargs):
            return _wrap(attr(*_unwrap(args, name), **_unwrap(kwargs, name)))
        return call


def _as_strided(x, shape=None, strides=None, subok=False, writeable=True):
    return _wrap(np.lib.stride_tricks.as_strided(_unwrap(x, "as_strided"), shape, strides,
                                                 writeable=writeable))


_LIB = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=_as_strided, sliding_window_view=lambda x, *a, **k: _wrap(
        np.lib.stride_tricks.sliding_window_view(_unwrap(x, "sliding_window_view"), *a, **k))))
fake_xp = _FakeXP("fake_xp")


def register() -> _backend.device:
    """Add the fake device to ember's backends; returns ``device('fake', 0)``."""
    return _backend.register_backend(DEVICE_TYPE, FakeArray, fake_xp)


def unregister() -> None:
    _backend.unregister_backend(DEVICE_TYPE)
