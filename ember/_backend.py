"""Devices and the array namespace behind them.

Ops never import NumPy: they ask the backend for the array module of their
inputs (``xp``), so a CuPy ``cuda`` backend can be registered here without
touching any op (Chainer's ``get_array_module``).

NOTE [ Device backends ]
A backend is one row: an array type, its array module (NumPy's API) and the device it lives
on.  cpu (NumPy) is built in; ``register_backend(device_type, array_type, xp)`` adds another
(a CuPy ``cuda`` backend, or the tests' fake device, a NumPy subclass).  A registered array
module must give NumPy's functions; moving between devices goes through host memory:
``arr.get()`` to the host (CuPy's convention) and ``xp.asarray(host)`` onto the device.
``Function.apply`` compares each tensor argument's array type to the first one's (a pointer
compare on the all-cpu path) and only on a difference asks for their devices, raising
PyTorch's "Expected all tensors to be on the same device" error when they differ.
Factories without ``device=`` use the default device: ``set_default_device`` or the
innermost ``with ember.device(...):``.  ``meta`` (shapes and dtypes, no data) is a backend
like any other, registered on first use (NOTE [ Meta device ] in _meta.py).
"""
from __future__ import annotations

import numpy as np

# PyTorch's device types, in the order its error message lists them
_TORCH_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                "privateuseone")
# device type -> array module of each registered backend (cpu's is NumPy)
_XP_BY_TYPE = {"cpu": np}


class device:
    """Where a tensor's storage lives: ``device('cpu')``, ``device('cuda', 0)``, ``'cuda:0'``.

    Used as a context manager (``with ember.device('cpu'):``) it is the default device of
    factories inside the block, as ``torch.device``.
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            self.type, self.index = type.type, type.index
            return
        if isinstance(type, int) and not isinstance(type, bool):
            # torch.device(0): index 0 of the current accelerator (cuda, when registered)
            if "cuda" not in _XP_BY_TYPE:
                raise RuntimeError("Cannot access accelerator device when none is available.")
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device() expected a string or device, got {type!r}")
        if ":" in type:
            type, _, idx = type.partition(":")
            if index is not None or not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}:{idx}'")
            index = int(idx)
            if index > 2 ** 31 - 1:  # c10 parses the index as a 32-bit int
                raise RuntimeError(f"Could not parse device index '{idx}' in device string "
                                   f"'{type}:{idx}'")
        if type not in _TORCH_TYPES and type not in _XP_BY_TYPE:
            raise RuntimeError(f"Expected one of {', '.join(_TORCH_TYPES)} device type at start "
                               f"of device string: {type}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must be -1 or non-negative, got {index}")
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

    def __reduce__(self):
        return (device, (self.type, self.index))

    def __enter__(self):
        _DEFAULT_STACK.append(_default[0])
        _default[0] = self if self is not CPU else device("cpu")  # an explicit cpu
        return self

    def __exit__(self, *exc):
        _default[0] = _DEFAULT_STACK.pop()


CPU = device("cpu")

# array type -> (array module, device); register_backend adds a row
_BY_ARRAY_TYPE = {np.ndarray: (np, CPU)}
_CPU_ROW = (np, CPU)

_default = [CPU]        # the default device of factories (a one-item list: set in place)
_DEFAULT_STACK = []     # what each open ``with device(...)`` block replaced


def set_default_device(device_) -> None:
    """Make ``device_`` the device factories use when given none (None: back to cpu).

    ``CPU`` itself stands for "no default set": ``tensor(t)`` then keeps ``t``'s device, while
    an explicit ``set_default_device('cpu')`` moves it, as PyTorch's device mode does."""
    _default[0] = CPU if device_ is None else device(_as_device(device_))


def get_default_device() -> device:
    """The device factories use when given none (``torch.get_default_device``)."""
    return _default[0]


def default_device(dev=None) -> device:
    """``dev`` as a device, or the default device when it is None."""
    return _default[0] if dev is None else _as_device(dev)


def _as_device(dev) -> device:
    return dev if type(dev) is device else device(dev)


def register_backend(device_type: str, array_type: type, xp, index=0) -> device:
    """Add a device type whose tensors hold ``array_type`` arrays made by module ``xp``
    (NOTE [ Device backends ]); returns the device, index 0 as PyTorch's cuda tensors (None:
    a device without an index, as ``meta``)."""
    if device_type == "cpu" or array_type in _BY_ARRAY_TYPE:
        raise RuntimeError(f"a backend for '{device_type}' or {array_type.__name__} is already "
                           "registered")
    _XP_BY_TYPE[device_type] = xp
    dev = device(device_type, index)
    _BY_ARRAY_TYPE[array_type] = (xp, dev)
    return dev


def unregister_backend(device_type: str) -> None:
    """Remove a backend added by :func:`register_backend` (tests clean up with it)."""
    _XP_BY_TYPE.pop(device_type, None)
    for t, (_, dev) in list(_BY_ARRAY_TYPE.items()):
        if dev.type == device_type:
            del _BY_ARRAY_TYPE[t]


def xp_of(arr):
    """The array module (NumPy on cpu) that owns ``arr``."""
    return _BY_ARRAY_TYPE[type(arr)][0]


def device_of(arr) -> device:
    return _BY_ARRAY_TYPE[type(arr)][1]


NO_CUDA = ("Torch not compiled with CUDA enabled: ember has no GPU backend installed (it runs "
           "on NumPy, on the cpu)")


def xp_for(dev) -> object:
    """The array module for a device; PyTorch's error when no backend serves it."""
    dev = _as_device(dev)
    xp = _XP_BY_TYPE.get(dev.type)
    if xp is not None:
        return xp
    if dev.type == "meta":  # registered on first use (NOTE [ Meta device ] in _meta.py)
        from . import _meta
        return _meta.meta_xp
    if dev.type == "cuda":  # torch.cuda._lazy_init's error on a build without CUDA
        raise AssertionError(NO_CUDA)
    raise RuntimeError(f"ember has no backend for device '{dev}' (its devices: "
                       f"{', '.join(_XP_BY_TYPE)})")


def to_device(arr, dev):
    """Move an array to ``dev``'s backend through host memory (a no-op when already there)."""
    xp = xp_for(dev)
    src = _BY_ARRAY_TYPE[type(arr)][0]
    if src is xp:
        return arr
    host = arr if src is np else arr.get()
    return host if xp is np else xp.asarray(host)


def check_same_device(first_type, arr, arrays=None) -> type:
    """Raise PyTorch's error when ``arr`` is not on the device of arrays of ``first_type``
    (called by ``Function.apply`` only when the two array types differ); returns the array
    type of the op's device.  A 0-d cpu tensor joins a tensor of any device, as PyTorch's cpu
    scalars do (``arrays``: the op's arrays so far, to tell whether the first was one)."""
    r0, r1 = _BY_ARRAY_TYPE.get(first_type), _BY_ARRAY_TYPE.get(type(arr))
    if r0 is None or r1 is None:  # a NumPy scalar some op left in a tensor: host data, let be
        return first_type
    d0, d1 = r0[1], r1[1]
    if d0 == d1:
        return first_type
    if d1 is CPU and arr.ndim == 0:
        return first_type
    if d0 is CPU and arrays is not None and all(a.ndim == 0 for a in arrays
                                                if type(a) is first_type):
        return type(arr)  # every earlier tensor was a cpu scalar: the op runs on arr's device
    if d0.type == "meta" or d1.type == "meta":  # the meta kernels' device check
        raise RuntimeError(f"Tensor on device {d1} is not on the expected device {d0}!")
    raise RuntimeError("Expected all tensors to be on the same device, but found at least "
                       f"two devices, {d0} and {d1}!")


def asarray(x):
    """An array for a backend scalar (NumPy returns scalars from 0-d ops)."""
    return np.asarray(x)


# ---- memory layout of arrays (in-place writes through views) -------------------------------
def is_meta(arr) -> bool:
    """Whether ``arr`` is a meta tensor's array (NOTE [ Meta device ] in _meta.py)."""
    return arr.__class__ is not np.ndarray and _BY_ARRAY_TYPE.get(
        type(arr), _CPU_ROW)[1].type == "meta"


def has_internal_overlap(a) -> bool:
    """c10's ``has_internal_overlap``: a stride-0 dim of size > 1 (an expanded dim); never
    on meta, whose strides are all zero and which is never written."""
    if a.__class__ is not np.ndarray and is_meta(a):
        return False
    return any(st == 0 and n > 1 for n, st in zip(a.shape, a.strides))


def writable_alias(a):
    """A writable alias of read-only view ``a`` whose memory is writable: NumPy marks
    ``broadcast_to`` results read-only, PyTorch writes through expanded views wherever the
    written elements are distinct.  ``a`` itself when there is no such memory."""
    root = obj = a
    while getattr(obj, "base", None) is not None:
        obj = obj.base
        if hasattr(obj, "flags") and hasattr(obj, "strides"):
            root = obj
    if root is a or not root.flags.writeable or not (root.flags.c_contiguous or
                                                     root.flags.f_contiguous):
        return a
    flat = root.ravel(order="K")
    start = a.__array_interface__["data"][0] - flat.__array_interface__["data"][0]
    if start < 0 or start % a.itemsize:
        return a
    return xp_of(a).lib.stride_tricks.as_strided(flat[start // a.itemsize:], a.shape,
                                                 a.strides, writeable=True)
