"""Tensor creation and random sampling (``tensor``, ``zeros``, ``arange``, ``randn``, ...).

Arrays come from the namespace of the requested device (``_backend.xp_for``);
random draws use the ``Generator`` in ``ember/random.py``.
"""
from __future__ import annotations

import builtins
import math

from . import _backend, _dtype
from ._dtype import np  # dtype metadata (iinfo/finfo) is host-side, not an array op
from ._dtype import from_np, get_default_dtype
from ._tensor import Tensor, _make
from ._state import state
from ._tensor import _version_counter
from .autograd.inplace import _check_inplace
from ._runtime import check_memory_format, memory_order, copy_as, preserve_format
from .random import _gen


_INT64, _UINT64 = 2 ** 63, 2 ** 64  # PyTorch's Scalar holds the Python ints in [-2**63, 2**64)


def check_scalar_int(v: int) -> int:
    """Python int ``v`` as PyTorch's Scalar takes it (an int64 or a uint64), or its
    OverflowError."""
    if -_INT64 <= v < _UINT64:
        return v
    raise OverflowError("int too big to convert" if v > 0 else
                        "can't convert negative int to unsigned")


def _finish(arr, requires_grad=False, device=None) -> Tensor:
    if device is not None:
        arr = _backend.to_device(arr, device)
    t = _make(arr)
    if state.inference:
        t._inference = True
    if requires_grad:
        t.requires_grad_(True)
    return t


def _xp(device):
    """The array module of ``device`` (the default device when None)."""
    return _backend.xp_for(_backend.default_device(device))


_NO_PINNED = ("pin_memory=True requires a CUDA or other accelerator backend; no pinned memory "
              "allocator is available on this system.")


def _check_pin(pin_memory) -> None:
    # PyTorch's error without an accelerator: there is no pinned-memory allocator to use
    if pin_memory:
        raise RuntimeError(_NO_PINNED)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = s.item()
        if not isinstance(s, builtins.int) and not hasattr(s, "__index__"):
            raise TypeError(f"empty(): argument 'size' must be tuple of ints, but found element "
                            f"of type {type(s).__name__}")
        s = builtins.int(s)
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
        out.append(s)
    return tuple(out)


def _infer_dtype(arr, data):
    """PyTorch's dtype for data given as Python values: float → default, int → int64."""
    leaf = _first_leaf(data)
    if hasattr(leaf, "dtype"):  # NumPy scalars keep their dtype, promoted with the rest
        return _scan_dtype(data)
    k = arr.dtype.kind
    if k == "f":
        return get_default_dtype()
    if k == "i":
        return _dtype.int64
    if k == "b":
        return _dtype.bool_
    if k == "c":
        return _dtype.get_default_complex_dtype()
    if k == "u":  # NumPy widened a Python int past int64
        raise ValueError("Overflow when unpacking long long")
    if k == "O":
        _scan_dtype(data)  # raises PyTorch's error for the offending element
    raise TypeError(f"can't convert {arr.dtype} data to a tensor")


def _first_leaf(data):
    while isinstance(data, (list, tuple)) and len(data):
        data = data[0]
    return data


def _scan_dtype(data):
    """Promote the dtypes of every element (PyTorch's inference with NumPy scalars inside)."""
    dt = None
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
            continue
        if hasattr(x, "dtype"):
            d = from_np(x.dtype)
        elif isinstance(x, builtins.bool):
            d = _dtype.bool_
        elif isinstance(x, builtins.int):
            if not -2 ** 63 <= x < 2 ** 63:
                raise ValueError("Overflow when unpacking long long")
            d = _dtype.int64
        elif isinstance(x, builtins.float):
            d = get_default_dtype()
        elif isinstance(x, builtins.complex):
            d = _dtype.get_default_complex_dtype()
        else:
            raise RuntimeError(f"Could not infer dtype of {type(x).__name__}")
        dt = d if dt is None else _dtype.promote_types(dt, d)
    return dt if dt is not None else get_default_dtype()


def _big_ints(xp, arr, plain, dtype):
    """``arr`` of Python data that may hold ints past int64, as PyTorch reads them: each is a
    double in a float, complex or bool tensor (``dtype``, or floats among the data); for an
    integer one its ValueError."""
    big, kind = _scan_ints(plain)
    if not big:
        return arr
    dt = _dtype.as_dtype(dtype, "tensor") if dtype is not None else kind
    if dt is None or dt.np.kind in "iu":
        raise ValueError("Overflow when unpacking long long")
    return xp.asarray(arr if arr.dtype.kind == "f" else arr.astype("float64"))


def _scan_ints(data):
    """(whether ``data`` holds a Python int past int64, the default float or complex dtype
    when it holds a float or complex, else None)."""
    stack = [data]
    big = False
    kind = None
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif x.__class__ is builtins.int:
            big = big or not -_INT64 <= x < _INT64
        elif isinstance(x, builtins.complex):
            kind = _dtype.get_default_complex_dtype()
        elif isinstance(x, builtins.float) and kind is None:
            kind = get_default_dtype()
    return big, kind


def _check_ragged(data):
    """Raise PyTorch's error for nested lists that do not form a rectangular shape."""
    shape = []
    x = data
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    stack = [(data, 0)]
    while stack:
        x, d = stack.pop()
        if d == len(shape):
            if isinstance(x, (list, tuple)):
                raise TypeError(f"'{type(x).__name__}' object cannot be interpreted as an "
                                "integer")
            continue
        if not isinstance(x, (list, tuple)):
            raise TypeError("not a sequence")
        if len(x) != shape[d]:
            raise ValueError(f"expected sequence of length {shape[d]} at dim {d} "
                             f"(got {len(x)})")
        stack.extend((y, d + 1) for y in x)


def _to_plain(data):
    """Replace tensors nested in lists by Python numbers/lists."""
    if isinstance(data, Tensor):
        return data.tolist()
    if isinstance(data, (list, tuple)):
        return [_to_plain(d) for d in data]
    return data


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor that copies ``data`` (nested lists, numbers, arrays or tensors)."""
    _check_pin(pin_memory)
    if device is None and isinstance(data, Tensor) and _backend.get_default_device() is \
            _backend.CPU:  # no default device set: a tensor's copy stays on its device
        device = data.device
    device = _backend.default_device(device)
    xp = _backend.xp_for(device)
    meta = device.type == "meta"
    if meta:  # Python data is read and checked on the host; meta keeps its shape and dtype
        xp = np
    if isinstance(data, Tensor):
        arr = _backend.to_device(data._data, device)
        arr = arr.copy() if arr is data._data else arr
        dt = data.dtype
    elif type(data) in _backend._BY_ARRAY_TYPE:
        arr = _backend.to_device(data, device)
        arr = arr.copy() if arr is data else arr
        dt = from_np(arr.dtype)
    elif hasattr(data, "__array_interface__") and hasattr(data, "dtype"):
        arr = xp.array(data, copy=True)
        dt = from_np(arr.dtype)
    elif hasattr(data, "dtype") and hasattr(data, "item") and not isinstance(data, (list, tuple)):
        arr = xp.asarray(data)  # a NumPy scalar keeps its dtype
        dt = from_np(arr.dtype)
    else:
        plain = _to_plain(data)
        try:
            arr = xp.asarray(plain)
        except (ValueError, TypeError, OverflowError) as e:
            _check_ragged(plain)
            raise ValueError(f"could not convert data to a tensor: {e}") from None
        if arr.dtype.kind in "US":
            if arr.ndim and isinstance(_first_leaf(plain), str):
                raise ValueError("too many dimensions 'str'")
            raise TypeError("new(): invalid data type 'str'")
        if arr.dtype.kind in "uO" or arr.dtype.kind == "f" and arr.size and \
                xp.abs(arr).max() >= _INT64:
            arr = _big_ints(xp, arr, plain, dtype)  # (NumPy's uint64, object or float64)
        dt = _infer_dtype(arr, plain)
    if dtype is not None:
        dt = _dtype.as_dtype(dtype, "tensor")
        if "plain" in locals() and dt.np.kind in "iu" and arr.dtype.kind in "iuf" and arr.size:
            # Python values are converted one by one in torch: one that does not fit raises
            for v in (arr.min(), arr.max()) if arr.dtype.kind != "f" or \
                    not xp.isnan(arr).any() else (math.nan,):
                _check_fill(v.item() if hasattr(v, "item") else v, dt, {})
    npd = dt.np
    if arr.dtype != npd:
        arr = arr.astype(npd)
    return _finish(xp.ascontiguousarray(arr) if arr.ndim else arr, requires_grad,
                   device if meta else None)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """A tensor sharing ``data``'s memory when it already is a suitable array."""
    if isinstance(data, Tensor):  # a tensor stays where it is unless a device is given
        return data.to(dtype=dtype, device=device)
    if type(data) in _backend._BY_ARRAY_TYPE:
        dt = from_np(data.dtype) if dtype is None else dtype
        arr = data if data.dtype == dt.np else data.astype(dt.np)
        return _finish(arr, device=_backend.default_device(device))
    return tensor(data, dtype=dtype, device=device)


asarray = as_tensor


def from_numpy(ndarray) -> Tensor:
    """A tensor that shares memory with a NumPy array (subclasses such as ``np.memmap`` too)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__module__}."
                        f"{type(ndarray).__name__})")
    from_np(ndarray.dtype)  # raises for unsupported dtypes
    if type(ndarray) is not np.ndarray:  # the same memory as a plain ndarray, as PyTorch
        ndarray = ndarray.view(np.ndarray)
    return _make(ndarray)


def _rebuild_tensor(arr, requires_grad):
    t = _make(arr)
    t._requires_grad = requires_grad
    return t


def _dt(dtype, default=None):
    d = _dtype.as_dtype(dtype) if dtype is not None else (default or get_default_dtype())
    return d.np


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False) -> Tensor:
    """A tensor of zeros."""
    _check_pin(pin_memory)
    return _finish(_xp(device).zeros(_size(size), _dt(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None,
         pin_memory=False) -> Tensor:
    """A tensor of ones."""
    _check_pin(pin_memory)
    return _finish(_xp(device).ones(_size(size), _dt(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False, out=None, layout=None,
          pin_memory=False, memory_format=None) -> Tensor:
    """An uninitialised tensor (laid out as ``memory_format``: row-major or channels-last)."""
    _check_pin(pin_memory)
    check_memory_format(memory_format, "empty")
    if memory_format is preserve_format:
        raise RuntimeError("unsupported memory format Preserve")
    arr = _xp(device).empty(_size(size), _dt(dtype))
    if memory_order(memory_format, arr.ndim) is not None:
        arr = copy_as(arr, memory_format)
    return _finish(arr, requires_grad)


def _fill_dtype(v):
    if isinstance(v, Tensor):
        return v.dtype
    if isinstance(v, builtins.bool):
        return _dtype.bool_
    if isinstance(v, (builtins.int, np.integer)):  # NumPy ints are ints to PyTorch (__index__)
        return _dtype.int64
    if isinstance(v, builtins.complex):
        return _dtype.get_default_complex_dtype()
    return get_default_dtype()


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, out=None,
         layout=None, pin_memory=False) -> Tensor:
    """A tensor filled with ``fill_value`` (dtype inferred from it, as PyTorch does)."""
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"full(): argument 'size' (position 1) must be tuple of ints, not "
                        f"{type(size).__name__}")
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    elif not isinstance(fill_value, (builtins.bool, builtins.int, builtins.float,
                                     builtins.complex)) and \
            not (hasattr(fill_value, "dtype") and hasattr(fill_value, "item")):
        raise TypeError(f"full(): argument 'fill_value' (position 2) must be Number, not "
                        f"{type(fill_value).__name__}")
    dt = _dtype.as_dtype(dtype, "full") if dtype is not None else _fill_dtype(fill_value)
    fill_value = _check_fill(fill_value, dt)
    _check_pin(pin_memory)
    return _finish(_xp(device).full(_size((size,)), fill_value, dt.np), requires_grad)


def scalar_tensor(s, *, dtype=None, device=None, requires_grad=False, layout=None,
                  pin_memory=False) -> Tensor:
    """A 0-d tensor holding the number ``s``, of the default dtype unless given
    (``torch.scalar_tensor``; a 0-d tensor is taken as its value, any other tensor refused)."""
    if isinstance(s, Tensor) and s._data.ndim == 0:
        s = s.item()
    if not isinstance(s, (builtins.bool, builtins.int, builtins.float, builtins.complex)) and \
            not (hasattr(s, "dtype") and hasattr(s, "item") and getattr(s, "ndim", 1) == 0):
        raise TypeError(f"scalar_tensor(): argument 's' (position 1) must be Number, not "
                        f"{type(s).__name__}")
    dt = _dtype.as_dtype(dtype, "scalar_tensor") if dtype is not None else get_default_dtype()
    if isinstance(s, builtins.complex) and dt.np.kind != "c":
        if s.imag:  # c10's checked conversion: a lost imaginary part is an overflow
            name = str(dt).split(".")[1]
            raise RuntimeError(f"value cannot be converted to type {_C_NAMES.get(name, name)} "
                               f"without overflow")
        s = s.real
    if dt.np.itemsize == 2 and dt.is_floating_point:  # (torch's half types take it unchecked)
        s = float(check_scalar_int(s)) if s.__class__ is builtins.int else s
    else:
        s = _check_fill(s, dt)
    _check_pin(pin_memory)
    return _finish(_xp(device).full((), s, dt.np), requires_grad)


_C_NAMES = {"int8": "int8_t", "int16": "int16_t", "int32": "int", "int64": "int64_t",
            "uint8": "uint8_t", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
            "float32": "float", "float64": "double"}


def _check_fill(value, dt, names=None):
    """PyTorch's checked scalar conversion: a fill value the dtype cannot hold raises.

    As c10's ``overflows``: NaN/inf never fit an integer type, a finite value past the
    float type's range overflows (inf itself is fine), and an unsigned type also takes
    negatives down to ``-max`` (they wrap, ``-1`` -> 255).  A Python int is first taken as
    PyTorch's Scalar takes it (``check_scalar_int``), as a double for a float, complex or bool
    dtype.  ``names``: the dtype names of the message (C's by default, as ``full``'s).
    """
    if value.__class__ is builtins.int:
        check_scalar_int(value)
        kind = dt.np.kind
        if kind not in "iu" and not -_INT64 <= value < _INT64:  # (NumPy's full refuses it)
            value = value != 0 if kind == "b" else float(value)
    if isinstance(value, bool) or dt.np.kind in "bc" or not isinstance(value, (int, float)):
        return value
    name = str(dt).split(".")[1]
    names = _C_NAMES if names is None else names
    kind = dt.np.kind
    if kind in "iu":
        info = np.iinfo(dt.np)
        bad = (value != value or value in (math.inf, -math.inf) or value > info.max
               or (value < info.min if kind == "i" else -value > info.max))
    else:
        bad = math.isfinite(value) and abs(value) > (dt.finite_max or math.inf)
    if bad:
        raise RuntimeError(f"value cannot be converted to type {names.get(name, name)} "
                           f"without overflow")
    if kind == "u" and value < 0:
        return int(value) % (int(np.iinfo(dt.np).max) + 1)
    return value


def _like_layout(out: Tensor, input: Tensor, memory_format, fn: str) -> Tensor:
    """``out`` (row-major, made like ``input``) laid out as ``memory_format``: by default
    (preserve_format) ``input``'s own strides, as PyTorch's ``empty_like``."""
    check_memory_format(memory_format, fn)
    arr, src = out._data, input._data
    if memory_format is None or memory_format is preserve_format:
        if src.flags.c_contiguous or type(arr) is not type(src) or arr.ndim != src.ndim:
            return out
        new = _backend.xp_of(arr).empty_like(src, dtype=arr.dtype)  # input's order ('K')
        new[...] = arr
    elif memory_order(memory_format, arr.ndim) is None:  # contiguous_format
        return out
    else:
        new = copy_as(arr, memory_format)
    out._data = new
    return out


def _like(fn):
    def like(input, *args, dtype=None, device=None, requires_grad=False, memory_format=None,
             layout=None, pin_memory=False, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"{fn.__name__}_like(): argument 'input' (position 1) must be Tensor, "
                            f"not {type(input).__name__}")
        dt = dtype if dtype is not None else input.dtype
        out = fn(*((input.shape,) + args), dtype=dt, device=device or input.device,
                 pin_memory=pin_memory, **kwargs)
        out = _like_layout(out, input, memory_format, like.__name__)
        return out.requires_grad_(True) if requires_grad else out
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with ``input``'s shape, dtype and device."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False,
              memory_format=None, layout=None, pin_memory=False) -> Tensor:
    """``full`` with ``input``'s shape, dtype, device and (by default) layout."""
    out = full(input.shape, fill_value, dtype=dtype or input.dtype,
               device=device or input.device, pin_memory=pin_memory)
    out = _like_layout(out, input, memory_format, "full_like")
    return out.requires_grad_(True) if requires_grad else out


def arange(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad=False,
           out=None, layout=None, pin_memory=False) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` in steps of ``step``."""
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    for v in vals:
        if v.__class__ is builtins.int:
            check_scalar_int(v)
    start, end, step = vals
    if dtype is not None:
        dtype = _dtype.as_dtype(dtype, "arange")
        if dtype.np.kind in "bc":
            raise NotImplementedError(f"\"arange_cpu\" not implemented for "
                                      f"'{dtype.scalar_name}'")
    for v in (start, end):
        if isinstance(v, builtins.float) and not math.isfinite(v):
            raise RuntimeError(f"unsupported range: {start} -> {end}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dtype is None:  # integers (Python or NumPy) give int64, anything else the default float
        dtype = _dtype.int64 if all(hasattr(v, "__index__") for v in vals) \
            else get_default_dtype()
    # integers count in int64 (the end too for int64 itself), and sizes in double but for int64
    if dtype.np.kind in "iu" and not all(-_INT64 <= v < _INT64 for v in (
            vals if dtype is _dtype.int64 else (start, step))):
        raise RuntimeError("value cannot be converted to type int64_t without overflow")
    n = math.ceil((end - start) / step) if dtype is _dtype.int64 else \
        math.ceil((float(end) - float(start)) / float(step))
    _check_pin(pin_memory)
    xp = _xp(device)
    arr = (start + xp.arange(n, dtype="float64") * step) if dtype.is_floating_point else \
        xp.arange(start, end, step)
    return _finish(arr.astype(dtype.np), requires_grad)


def range_(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Deprecated ``torch.range``: includes ``end``."""
    return arange(start, end + step / 2 if isinstance(step, float) else end + step, step,
                  dtype=dtype or get_default_dtype(), device=device, requires_grad=requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False, out=None,
             layout=None) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = dtype or get_default_dtype()
    for v in (start, end):
        if v.__class__ is builtins.int:
            check_scalar_int(v)
    arr = _xp(device).linspace(float(start), float(end), steps, dtype="float64")
    return _finish(arr.astype(dt.np), requires_grad)


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False,
             out=None, layout=None) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    dt = dtype or get_default_dtype()
    arr = _xp(device).logspace(float(start), float(end), steps, base=base, dtype="float64")
    return _finish(arr.astype(dt.np), requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False, out=None, layout=None):
    """The identity matrix (``n × m``)."""
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m is not None and m < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    return _finish(_xp(device).eye(n, m, dtype=_dt(dtype)), requires_grad)


# ---- random sampling ---------------------------------------------------------------------

def _float_only(dtype, kernel: str):
    """PyTorch's error for a floating-point sampler asked for an integer dtype."""
    if dtype is not None and not dtype.is_floating_point:
        raise NotImplementedError(f'"{kernel}" not implemented for '
                                  f"'{dtype.scalar_name}'")


def _complex_draw(fn, size, generator, dtype, device, requires_grad, scale):
    """A complex sample: real and imaginary parts drawn as trailing pairs of ``fn``'s real
    samples, times ``scale`` (``randn``'s parts have variance 1/2 each, as PyTorch's)."""
    pairs = fn(*(_size(size) + (2,)), generator=generator, dtype=dtype.to_real())._data
    arr = (pairs * scale).view(dtype.np)[..., 0]
    return _finish(arr, requires_grad, _backend.default_device(device))


def _on_meta(device) -> bool:
    """Whether factories with ``device`` make meta tensors (which draw nothing: PyTorch's meta
    kernels neither fill them nor advance the generator)."""
    return _backend.default_device(device).type == "meta"


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None,
         layout=None, pin_memory=False) -> Tensor:
    """Uniform samples on [0, 1) (each part of a complex dtype)."""
    _check_pin(pin_memory)
    if dtype is not None and dtype.is_complex:
        return _complex_draw(rand, size, generator, dtype, device, requires_grad, 1.0)
    _float_only(dtype, "check_uniform_bounds")
    dt = _dt(dtype)
    if _on_meta(device):
        return _finish(_xp(device).empty(_size(size), dt), requires_grad)
    g = _gen(generator)
    if dt.itemsize == 2:
        # k / 2**digits, exact in the 16-bit type: rounding a float32 draw could give 1.0
        digits = 8 if dt.name == "bfloat16" else 11
        arr = g.integers(0, 2 ** digits, _size(size)) * (1.0 / 2 ** digits)
    else:
        arr = g.random(_size(size), dtype="float64" if dt.itemsize == 8 else "float32")
    return _finish(arr.astype(dt, copy=False), requires_grad, _backend.default_device(device))


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None,
          layout=None, pin_memory=False) -> Tensor:
    """Standard normal samples (complex: parts of variance 1/2, so E|z|^2 = 1)."""
    _check_pin(pin_memory)
    if dtype is not None and dtype.is_complex:
        return _complex_draw(randn, size, generator, dtype, device, requires_grad, 0.5 ** 0.5)
    _float_only(dtype, "normal_kernel_cpu")
    dt = _dt(dtype)
    if _on_meta(device):
        return _finish(_xp(device).empty(_size(size), dt), requires_grad)
    arr = _gen(generator).standard_normal(_size(size),
                                          dtype="float64" if dt.itemsize == 8 else "float32")
    return _finish(arr.astype(dt, copy=False), requires_grad, _backend.default_device(device))


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False, out=None, layout=None, pin_memory=False) -> Tensor:
    """Integers uniform on [low, high)."""
    _check_pin(pin_memory)
    if size is None:  # randint(high, size)
        if high is None:
            raise TypeError("randint() missing required argument 'size'")
        low, high, size = 0, low, high
    if high is None:
        raise TypeError("randint() missing required argument 'high'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    if _on_meta(device):
        return _finish(_xp(device).empty(_size((size,) if isinstance(size, int) else size),
                                         _dt(dtype, _dtype.int64)), requires_grad)
    arr = _gen(generator).integers(low, high, _size((size,) if isinstance(size, int) else size))
    return _finish(arr.astype(_dt(dtype, _dtype.int64)), requires_grad,
                   _backend.default_device(device))


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False, out=None,
             layout=None, pin_memory=False) -> Tensor:
    """A random permutation of ``0 .. n-1``."""
    _check_pin(pin_memory)
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    if _on_meta(device):
        return _finish(_xp(device).empty((n,), _dt(dtype, _dtype.int64)), requires_grad)
    arr = _gen(generator).permutation(n)
    return _finish(arr.astype(_dt(dtype, _dtype.int64)), requires_grad,
                   _backend.default_device(device))


def normal(mean=0.0, std=1.0, size=None, *, generator=None, out=None, dtype=None, device=None,
           requires_grad=False) -> Tensor:
    """Normal samples; ``mean``/``std`` may be tensors (broadcast) or numbers with ``size``."""
    g = _gen(generator)
    mt, st = isinstance(mean, Tensor), isinstance(std, Tensor)
    if not mt and not st:
        if size is None:
            raise TypeError("normal() missing required argument 'size'")
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        _float_only(dtype, "normal_kernel_cpu")
        dt = _dt(dtype)
        if _on_meta(device):
            return _finish(_xp(device).empty(_size((size,) if isinstance(size, int) else size),
                                             dt), requires_grad)
        arr = g.normal(mean, std, _size((size,) if isinstance(size, int) else size))
        return _finish(arr.astype(dt), requires_grad, device)
    ref = mean if mt else std
    if _backend.is_meta(ref._data):
        shape = _backend.xp_of(ref._data).broadcast_shapes(
            *(x.shape for x in (mean, std) if isinstance(x, Tensor)))
        return _finish(_backend.xp_of(ref._data).empty(shape, ref._data.dtype), requires_grad)
    m = _host(mean._data) if mt else mean
    s = _host(std._data) if st else std
    if st and (s < 0).any():
        raise RuntimeError("normal expects all elements of std >= 0.0")
    ref = mean if mt else std
    shape = _backend.xp_of(ref._data).broadcast_shapes(getattr(m, "shape", ()),
                                                       getattr(s, "shape", ()))
    arr = m + s * g.standard_normal(shape)
    return _finish(_onto(arr.astype(ref._data.dtype), ref._data), requires_grad)


def _host(arr):
    """``arr`` in host memory: the generator draws there (NumPy's PCG64)."""
    return _backend.to_device(arr, _backend.CPU)


def _onto(arr, like):
    """Host draws ``arr`` moved onto the device of array ``like`` (a no-op on cpu)."""
    return _backend.xp_of(like).asarray(arr)


def bernoulli(input, p=None, *, generator=None, out=None) -> Tensor:
    """Samples in {0, 1} with probabilities ``input`` (or scalar ``p``)."""
    if _backend.is_meta(input._data):
        return _finish(input._data.copy())
    probs = _host(input._data) if p is None else p
    if p is None and ((probs < 0) | (probs > 1)).any():
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    u = _gen(generator).random(input._data.shape)
    return _finish(_onto((u < probs).astype(input._data.dtype), input._data))


def multinomial(input, num_samples, replacement=False, *, generator=None, out=None) -> Tensor:
    """Indices drawn from the rows of ``input`` (non-negative weights)."""
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{input.dtype.scalar_name}")
    w = _host(input._data).astype("float64")
    if w.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if (w < 0).any() or not (w == w).all() or (w == float("inf")).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    rows = w.reshape(-1, w.shape[-1])
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples")
    g = _gen(generator)
    xp = _backend.xp_of(w)
    out = xp.empty((rows.shape[0], num_samples), dtype="int64")
    for i, r in enumerate(rows):
        tot = r.sum()
        if tot <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if replacement:
            out[i] = g.choice(r.size, num_samples, replace=True, p=r / tot)
        else:
            # top-k of w / Exp(1) samples without replacement in proportion to the weights;
            # zero-weight categories come last (PyTorch's cpu kernel also returns them)
            keys = r / g.standard_exponential(r.size)
            out[i] = xp.argsort(-keys, kind="stable")[:num_samples]
    return _finish(_onto(out.reshape(w.shape[:-1] + (num_samples,)), input._data))


def poisson(input, generator=None) -> Tensor:
    """Poisson samples with rates ``input``."""
    draws = _gen(generator).poisson(_host(input._data)).astype(input._data.dtype)
    return _finish(_onto(draws, input._data))


def rand_like(input, *, dtype=None, device=None, requires_grad=False, generator=None,
              memory_format=None, layout=None, pin_memory=False):
    """``rand`` with ``input``'s shape, dtype, device and (by default) layout."""
    out = rand(input.shape, dtype=dtype or input.dtype, device=device or input.device,
               generator=generator, pin_memory=pin_memory)
    out = _like_layout(out, input, memory_format, "rand_like")
    return out.requires_grad_(True) if requires_grad else out


def randn_like(input, *, dtype=None, device=None, requires_grad=False, generator=None,
               memory_format=None, layout=None, pin_memory=False):
    """``randn`` with ``input``'s shape, dtype, device and (by default) layout."""
    out = randn(input.shape, dtype=dtype or input.dtype, device=device or input.device,
                generator=generator, pin_memory=pin_memory)
    out = _like_layout(out, input, memory_format, "randn_like")
    return out.requires_grad_(True) if requires_grad else out


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False,
                 generator=None, memory_format=None, layout=None, pin_memory=False):
    """``randint`` with ``input``'s shape, dtype, device and (by default) layout."""
    if high is None:
        low, high = 0, low
    out = randint(low, high, input.shape, dtype=dtype or input.dtype,
                  device=device or input.device, generator=generator, pin_memory=pin_memory)
    return _like_layout(out, input, memory_format, "randint_like")


# ---- in-place samplers (used by nn.init) -------------------------------------------------

def _sample_into(t: Tensor, draw, generator=None) -> Tensor:
    """Fill ``t`` with ``draw(gen, shape)``, drawn on the host; a meta tensor draws nothing
    (no data, and the generator does not advance, as PyTorch's meta kernels)."""
    _check_inplace(t)
    if state.grad and t._requires_grad and t._grad_fn is None:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    if not _backend.is_meta(t._data):
        t._data[...] = _onto(draw(_gen(generator), t._data.shape), t._data)
    _version_counter(t)[0] += 1
    return t


def uniform_(self, a=0.0, b=1.0, *, generator=None) -> Tensor:
    """Fill with samples from U(a, b)."""
    if a > b:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > "
                           f"to={b}")
    return _sample_into(self, lambda g, shape: g.uniform(a, b, shape), generator)


def normal_(self, mean=0.0, std=1.0, *, generator=None) -> Tensor:
    """Fill with samples from N(mean, std²)."""
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _sample_into(self, lambda g, shape: g.normal(mean, std, shape), generator)


def bernoulli_(self, p=0.5, *, generator=None) -> Tensor:
    pr = _host(p._data) if isinstance(p, Tensor) and not _backend.is_meta(self._data) else p
    return _sample_into(self, lambda g, shape: g.random(shape) < pr, generator)


def exponential_(self, lambd=1.0, *, generator=None) -> Tensor:
    return _sample_into(self, lambda g, shape: g.exponential(1.0 / lambd, shape), generator)


def log_normal_(self, mean=1.0, std=2.0, *, generator=None) -> Tensor:
    return _sample_into(self, lambda g, shape: g.lognormal(mean, std, shape), generator)


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None) -> Tensor:
    return _sample_into(self, lambda g, shape: median + sigma * g.standard_cauchy(shape),
                        generator)


def geometric_(self, p, *, generator=None) -> Tensor:
    return _sample_into(self, lambda g, shape: g.geometric(p, shape), generator)


def random_(self, from_=0, to=None, *, generator=None) -> Tensor:
    if to is None:
        from_, to = 0, from_ if from_ else 2 ** 24
    return _sample_into(self, lambda g, shape: g.integers(from_, to, shape), generator)


def _new_method(fn):
    def method(self, *args, dtype=None, device=None, requires_grad=False, **kw):
        return fn(*args, dtype=dtype or self.dtype, device=device or self.device,
                  requires_grad=requires_grad, **kw)
    method.__name__ = "new_" + fn.__name__
    method.__doc__ = f"``{fn.__name__}`` with this tensor's dtype and device by default."
    return method


def _new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                  requires_grad=requires_grad)


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                requires_grad=requires_grad)


METHODS = {
    "uniform_": uniform_, "normal_": normal_, "bernoulli_": bernoulli_,
    "exponential_": exponential_, "log_normal_": log_normal_, "cauchy_": cauchy_,
    "geometric_": geometric_, "random_": random_,
    "bernoulli": lambda self, p=None, generator=None: bernoulli(self, p, generator=generator),
    "multinomial": multinomial,
    "new_zeros": _new_method(zeros), "new_ones": _new_method(ones),
    "new_empty": _new_method(empty), "new_tensor": _new_tensor, "new_full": _new_full,
}
