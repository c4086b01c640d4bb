"""``ember.accelerator``: PyTorch's device-generic accelerator API, with no accelerator.

ember has no GPU backend, so this behaves as ``torch.accelerator`` does on a machine without
one: ``is_available()`` is False, ``current_accelerator()`` None, ``device_count()`` 0, and the
calls that need a device raise PyTorch's ``RuntimeError``.
"""
from __future__ import annotations

import warnings

from ._backend import device as _device

__all__ = ["is_available", "current_accelerator", "device_count", "synchronize",
           "current_device_index", "current_device_idx", "set_device_index", "set_device_idx",
           "current_stream", "set_stream", "device_index", "empty_cache", "memory_stats",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_accumulated_memory_stats", "get_memory_info"]

_NONE = ("Cannot access accelerator device when none is available. (ember has no GPU backend "
         "installed)")


def _none_available() -> RuntimeError:
    return RuntimeError(_NONE)


def _index(device) -> int:
    """The index of ``device`` (an int, or an accelerator device/string), as PyTorch's
    ``_get_device_index(device, optional=False)``."""
    if isinstance(device, str):
        device = _device(device)
    if isinstance(device, _device):
        # no device type is an accelerator here, so none is accepted
        raise RuntimeError("Accelerator expected (ember has no GPU backend installed)")
    if isinstance(device, bool) or not isinstance(device, int):
        raise ValueError("Expected a torch.device with a specified index or an integer, but "
                         f"got:{device}")
    return device


def is_available() -> bool:
    """False: ember has no accelerator backend installed."""
    return False


def current_accelerator(check_available: bool = False):
    """The accelerator's device type (``device('cuda')``, ...): None without one."""
    return None


def device_count() -> int:
    """0: no accelerator devices."""
    return 0


def synchronize(device=None) -> None:
    """Wait for the accelerator's queued work; raises without an accelerator."""
    if device is not None:
        _index(device)
    raise _none_available()


def current_device_index() -> int:
    """The current accelerator index; raises without an accelerator."""
    raise _none_available()


def current_device_idx() -> int:
    """Deprecated spelling of :func:`current_device_index`."""
    warnings.warn("Use `current_device_index` instead.", FutureWarning, stacklevel=2)
    return current_device_index()


def set_device_index(device, /) -> None:
    """Select the accelerator device; index -1 is a no-op, as in PyTorch."""
    if _index(device) >= 0:
        raise _none_available()


def set_device_idx(device, /) -> None:
    """Deprecated spelling of :func:`set_device_index`."""
    warnings.warn("Use `set_device_index` instead.", FutureWarning, stacklevel=2)
    set_device_index(device)


def current_stream(device=None):
    """The accelerator's current stream; raises without an accelerator."""
    raise _none_available()


def set_stream(stream) -> None:
    """Make ``stream`` current; no stream can exist without an accelerator."""
    raise TypeError("set_stream(): expected a torch.Stream, got "
                    f"{type(stream).__name__} (ember has no accelerator streams)")


class device_index:
    """``with device_index(i):`` makes accelerator ``i`` current; None is a no-op."""

    def __init__(self, device, /) -> None:
        self.idx = device
        self.prev_idx = -1

    def __enter__(self) -> None:
        if self.idx is not None:
            raise _none_available()

    def __exit__(self, *exc_info) -> None:
        return None


def _memory(name: str, doc: str):
    def query(device_index=None):
        raise _none_available()
    query.__name__ = query.__qualname__ = name
    query.__doc__ = doc + "; raises without an accelerator."
    return query


empty_cache = _memory("empty_cache", "Release the accelerator's cached memory")
memory_stats = _memory("memory_stats", "The accelerator allocator's statistics")
memory_allocated = _memory("memory_allocated", "Bytes held by tensors on the accelerator")
max_memory_allocated = _memory("max_memory_allocated", "Peak bytes held by tensors")
memory_reserved = _memory("memory_reserved", "Bytes the accelerator allocator holds")
max_memory_reserved = _memory("max_memory_reserved", "Peak bytes the allocator held")
reset_peak_memory_stats = _memory("reset_peak_memory_stats", "Reset the peak counters")
reset_accumulated_memory_stats = _memory("reset_accumulated_memory_stats",
                                         "Reset the accumulated counters")
get_memory_info = _memory("get_memory_info", "(free, total) accelerator memory")
