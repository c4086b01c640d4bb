"""Process-wide runtime settings: float32 matmul precision, deterministic algorithms, thread
counts, and the ``memory_format`` values.

Each setting keeps PyTorch's name, defaults and argument checks.  What the setting changes in
ember is said in each docstring: ember computes float32 matmuls in full float32 whatever the
precision (NumPy has no TF32 or bf16x3 path), every ember op is deterministic already, and the
only thread pool ember has is the BLAS library's under NumPy.
"""
from __future__ import annotations

import os
import warnings
from numbers import Integral

_PRECISIONS = ("highest", "high", "medium")


class _State:
    """The settings, in one place so backends' legacy flags read the same values."""

    float32_matmul_precision = "highest"
    deterministic = False
    deterministic_warn_only = False
    num_threads = None          # set_num_threads's value when threadpoolctl is not installed
    num_interop_threads = None  # set once, as PyTorch allows


state = _State()


# --- float32 matmul precision ------------------------------------------------------------

def set_float32_matmul_precision(precision: str) -> None:
    """Record the internal precision of float32 matmuls ('highest', 'high' or 'medium'), as
    ``torch.set_float32_matmul_precision``; ember always multiplies in full float32."""
    if not isinstance(precision, str):
        raise RuntimeError("set_float32_matmul_precision expects a str, but got "
                           f"{type(precision).__name__}")
    if precision not in _PRECISIONS:
        # PyTorch warns and keeps the old value rather than raising
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the current "
                      "setFloat32MatmulPrecision call has no effect.", UserWarning, stacklevel=2)
        return
    state.float32_matmul_precision = precision


def get_float32_matmul_precision() -> str:
    """The value last given to :func:`set_float32_matmul_precision` ('highest' by default)."""
    return state.float32_matmul_precision


# --- deterministic algorithms ------------------------------------------------------------

def _check_bool(value, fn: str, arg: str, pos: int) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}(): argument '{arg}' (position {pos}) must be bool, not "
                        f"{type(value).__name__}")


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Record PyTorch's deterministic-algorithms flag; every ember op is deterministic already
    (NumPy on one device, no atomics), so nothing else changes."""
    _check_bool(mode, "_set_deterministic_algorithms", "mode", 1)
    _check_bool(warn_only, "_set_deterministic_algorithms", "warn_only", 2)
    state.deterministic = mode
    state.deterministic_warn_only = warn_only


def are_deterministic_algorithms_enabled() -> bool:
    """Whether :func:`use_deterministic_algorithms` turned the flag on."""
    return state.deterministic


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    """The ``warn_only`` last given to :func:`use_deterministic_algorithms` (PyTorch keeps it
    even when the flag itself is off)."""
    return state.deterministic_warn_only


_DEBUG_MODES = ("default", "warn", "error")


def set_deterministic_debug_mode(debug_mode) -> None:
    """0/'default' (off), 1/'warn' (on, warn only), 2/'error' (on), as PyTorch's."""
    if isinstance(debug_mode, str):
        if debug_mode not in _DEBUG_MODES:
            raise RuntimeError("invalid value of debug_mode, expected one of `default`, `warn`, "
                               f"`error`, but got {debug_mode}")
        debug_mode = _DEBUG_MODES.index(debug_mode)
    elif not isinstance(debug_mode, Integral):
        raise TypeError(f"debug_mode must be str or int, but got {type(debug_mode)}")
    if debug_mode not in (0, 1, 2):
        raise RuntimeError("invalid value of debug_mode, expected 0, 1, or 2, but got "
                           f"{debug_mode}")
    use_deterministic_algorithms(debug_mode != 0, warn_only=debug_mode == 1)


def get_deterministic_debug_mode() -> int:
    """0 when off, 1 when on with warn_only, 2 when on."""
    if not state.deterministic:
        return 0
    return 1 if state.deterministic_warn_only else 2


# --- threads -----------------------------------------------------------------------------

def _check_threads(n, fn: str) -> None:
    # PyTorch's checks: an int that is not a bool, then n > 0
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise RuntimeError(f"{fn} expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError(f"{fn} expects a positive integer")


def _blas_pools():
    """threadpoolctl's BLAS entries, or None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [p for p in threadpool_info() if p.get("user_api") == "blas"]


def set_num_threads(n: int) -> None:
    """Set the number of threads ember's intra-op work uses: the BLAS library's pool under
    NumPy, through threadpoolctl (``pip install 'ember[train]'``).  Without threadpoolctl the
    value is only recorded for :func:`get_num_threads` and no thread count changes (set
    ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` before starting Python instead)."""
    _check_threads(n, "set_num_threads")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        state.num_threads = int(n)
        return
    # not used as a context manager: the limit stays until the next call, as PyTorch's
    threadpool_limits(limits=int(n), user_api="blas")
    state.num_threads = int(n)


def get_num_threads() -> int:
    """The BLAS pool's thread count as threadpoolctl reads it (the largest when NumPy loads
    several BLAS libraries); without threadpoolctl, the last :func:`set_num_threads` value, else
    the number of CPUs this process may run on (``os.sched_getaffinity``, else
    ``os.cpu_count()``), the count PyTorch's intra-op pool starts with."""
    pools = _blas_pools()
    if pools:
        return max(int(p["num_threads"]) for p in pools)
    if state.num_threads is not None:
        return state.num_threads
    return _cpu_count()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_interop_threads(n: int) -> None:
    """Record the inter-op thread count; ember runs ops one after another (it has no inter-op
    pool), and, as in PyTorch, the value may be set only once."""
    _check_threads(n, "set_num_interop_threads")
    if state.num_interop_threads is not None:
        raise RuntimeError("Error: cannot set number of interop threads after parallel work has "
                           "started or set_num_interop_threads called")
    state.num_interop_threads = int(n)


def get_num_interop_threads() -> int:
    """The recorded inter-op thread count, else the number of CPUs (PyTorch's default)."""
    if state.num_interop_threads is not None:
        return state.num_interop_threads
    return _cpu_count()


# --- memory formats ----------------------------------------------------------------------

class memory_format:
    """A tensor memory layout, printed as ``ember.channels_last``.  ember's arrays are always
    stored in NumPy's row-major order, so the values are accepted and recorded, not acted on."""

    __slots__ = ("_name",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'ember.memory_format' instances")

    @classmethod
    def _make(cls, name: str) -> "memory_format":
        obj = object.__new__(cls)
        obj._name = name
        return obj

    def __repr__(self) -> str:
        return "ember." + self._name

    def __reduce__(self):
        # a module global: unpickling and copying give back the same object
        return self._name

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


contiguous_format = memory_format._make("contiguous_format")
channels_last = memory_format._make("channels_last")
channels_last_3d = memory_format._make("channels_last_3d")
preserve_format = memory_format._make("preserve_format")

# channels-last formats: the rank they need and the dimension order of their memory
_LAST = {channels_last: (4, (0, 2, 3, 1)), channels_last_3d: (5, (0, 2, 3, 4, 1))}


def check_memory_format(fmt, fn: str) -> None:
    """PyTorch's TypeError for a ``memory_format=`` that is not one (None is allowed)."""
    if fmt is not None and type(fmt) is not memory_format:
        raise TypeError(f"{fn}(): argument 'memory_format' must be torch.memory_format, not "
                        f"{type(fmt).__name__}")


def memory_order(fmt, ndim: int):
    """The order of dimensions in memory for ``fmt`` (None: row-major), checking the rank."""
    spec = _LAST.get(fmt)
    if spec is None:
        return None
    if ndim != spec[0]:
        raise RuntimeError(f"required rank {spec[0]} tensor to use {fmt._name} format")
    return spec[1]


def is_contiguous_as(shape, strides, fmt) -> bool:
    """Whether element ``strides`` are ``fmt``'s dense layout for ``shape`` (c10's rule:
    size-1 dimensions may have any stride); preserve_format asks for row-major."""
    spec = _LAST.get(fmt)
    if spec is None:
        order = range(len(shape))
    elif len(shape) != spec[0]:
        return False
    else:
        order = spec[1]
    expected = 1
    for d in reversed(order):
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def copy_as(arr, fmt, dtype=None):
    """A copy of ``arr`` (cast to ``dtype``) laid out as ``fmt``: row-major for
    contiguous_format, channels-last, or ``arr``'s own order for preserve_format/None."""
    dtype = arr.dtype if dtype is None else dtype
    if getattr(dtype, "kind", "") in "fV" and arr.dtype.kind == "f" and \
            dtype.itemsize < arr.dtype.itemsize:
        # a narrowing float cast: out-of-range values become inf silently, as in PyTorch
        # (NumPy would warn "overflow encountered in cast")
        import numpy
        with numpy.errstate(over="ignore"):
            return _copy_as(arr, fmt, dtype)
    return _copy_as(arr, fmt, dtype)


def _copy_as(arr, fmt, dtype):
    order = memory_order(fmt, arr.ndim)
    if order is not None:
        inverse = sorted(range(arr.ndim), key=order.__getitem__)
        return arr.transpose(order).astype(dtype, order="C").transpose(inverse)
    # as PyTorch's preserve_format: a dense input keeps its strides ('K' also sorts others)
    return arr.astype(dtype, order="C" if fmt is contiguous_format else "K")

__all__ = ["set_float32_matmul_precision", "get_float32_matmul_precision",
           "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
           "is_deterministic_algorithms_warn_only_enabled", "set_deterministic_debug_mode",
           "get_deterministic_debug_mode", "set_num_threads", "get_num_threads",
           "set_num_interop_threads", "get_num_interop_threads", "memory_format",
           "contiguous_format", "channels_last", "channels_last_3d", "preserve_format"]
