"""``ember.cuda``: PyTorch's CUDA namespace on a build with no GPU backend.

Design note.  ember runs on NumPy; a CuPy backend would register in ``ember/_backend.py``, and
until one does, this namespace behaves exactly as ``torch.cuda`` does in PyTorch's CPU-only
build, so device-agnostic scripts (``device = "cuda" if torch.cuda.is_available() else "cpu"``)
run unchanged: queries that PyTorch answers without a GPU return its answers
(``is_available() -> False``, ``device_count() -> 0``, memory counters 0, seeding a no-op that
would be replayed on initialisation), and calls that PyTorch refuses raise the exception type
PyTorch raises there (``AssertionError`` from its lazy initialisation, ``RuntimeError`` from
streams and events, ``AttributeError`` from the missing C bindings), with a message that says
ember has no GPU backend installed.  Nothing here touches tensors or the autograd core.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

from .._backend import device as _device

_NO_CUDA = ("Torch not compiled with CUDA enabled: ember has no GPU backend installed "
            "(it runs on NumPy, on the cpu)")


def _not_compiled():
    # torch.cuda._lazy_init's AssertionError on a build without CUDA
    return AssertionError(_NO_CUDA)


def _no_binding(name: str):
    # PyTorch's CPU build lacks the C binding behind these and fails with AttributeError
    return AttributeError(f"ember.cuda.{name} needs the CUDA runtime: ember has no GPU backend "
                          "installed (torch._C has no attribute '_cuda_...' in a CPU build)")


def _get_device_index(device, optional: bool = False):
    """The CUDA index of ``device`` (an int, 'cuda:N', a ``device``), as
    ``torch.cuda._utils._get_device_index``; None when ``optional`` and it has no index."""
    if isinstance(device, str):
        device = _device(device)
    if isinstance(device, _device):
        if device.type != "cuda":
            raise ValueError(f"Expected a cuda device, but got: {device}")
        index = device.index
    else:
        index = device
    if index is None and not optional:
        raise ValueError("Expected a torch.device with a specified index or an integer, but "
                         f"got:{device}")
    return index


# --- availability and devices -------------------------------------------------------------

def is_available() -> bool:
    """False: ember has no GPU backend installed."""
    return False


def device_count() -> int:
    """0: no CUDA devices are visible to ember."""
    return 0


def is_initialized() -> bool:
    """False: CUDA is never initialised without a backend."""
    return False


def init() -> None:
    """Initialise CUDA; raises, as PyTorch's CPU build does."""
    raise _not_compiled()


def current_device() -> int:
    """The current CUDA device index; raises without a GPU backend."""
    raise _not_compiled()


def set_device(device) -> None:
    """Select the CUDA device; a negative index is a no-op, as in PyTorch."""
    index = _get_device_index(device)
    if index >= 0:
        raise _no_binding("set_device")


def get_device_name(device=None) -> str:
    """The GPU's name; raises without a GPU backend."""
    raise _not_compiled()


def get_device_properties(device=None):
    """The GPU's properties; raises without a GPU backend."""
    raise _not_compiled()


def get_device_capability(device=None):
    """The GPU's (major, minor) compute capability; raises without a GPU backend."""
    raise _not_compiled()


def synchronize(device=None) -> None:
    """Wait for the GPU's queued work; raises without a GPU backend."""
    raise _not_compiled()


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: no CUDA device can run bfloat16 here."""
    return False


def is_tf32_supported() -> bool:
    """False: no CUDA device here."""
    return False


def get_arch_list() -> list:
    """The CUDA architectures ember was built for: none."""
    return []


def get_gencode_flags() -> str:
    """The NVCC gencode flags ember was built with: none."""
    return ""


def mem_get_info(device=None):
    """(free, total) GPU memory; raises without a GPU backend."""
    raise _not_compiled()


def ipc_collect() -> None:
    """Free CUDA IPC memory; raises without a GPU backend."""
    raise _not_compiled()


# --- random numbers ----------------------------------------------------------------------
# PyTorch queues these to run when CUDA initialises, so without CUDA they are no-ops.

def manual_seed(seed) -> None:
    """Seed the current GPU's generator (a no-op without one; ``int(seed)`` checked)."""
    int(seed)


def manual_seed_all(seed) -> None:
    """Seed every GPU's generator (a no-op without GPUs; ``int(seed)`` checked)."""
    int(seed)


def seed() -> None:
    """Seed the current GPU's generator randomly (a no-op without one)."""


def seed_all() -> None:
    """Seed every GPU's generator randomly (a no-op without GPUs)."""


def initial_seed() -> int:
    """The current GPU generator's seed; raises without a GPU backend."""
    raise _not_compiled()


def get_rng_state(device="cuda"):
    """The GPU generator's state; raises without a GPU backend."""
    raise _not_compiled()


def get_rng_state_all() -> list:
    """Every GPU generator's state: an empty list without GPUs."""
    return []


def set_rng_state(new_state, device="cuda") -> None:
    """Queue a GPU generator state (a no-op without GPUs; the state is copied, as PyTorch's)."""
    new_state.clone()


def set_rng_state_all(new_states) -> None:
    """Queue a state for each GPU (a no-op without GPUs)."""
    for i, state in enumerate(new_states):
        set_rng_state(state, i)


# --- memory ------------------------------------------------------------------------------

def empty_cache() -> None:
    """Release cached GPU memory: nothing is cached without a GPU."""


def memory_stats(device=None) -> "OrderedDict[str, int]":
    """The caching allocator's statistics: empty without a GPU."""
    return OrderedDict()


def memory_allocated(device=None) -> int:
    """Bytes of GPU memory held by tensors: 0."""
    return memory_stats(device).get("allocated_bytes.all.current", 0)


def max_memory_allocated(device=None) -> int:
    """Peak bytes of GPU memory held by tensors: 0."""
    return memory_stats(device).get("allocated_bytes.all.peak", 0)


def memory_reserved(device=None) -> int:
    """Bytes of GPU memory the allocator holds: 0."""
    return memory_stats(device).get("reserved_bytes.all.current", 0)


def max_memory_reserved(device=None) -> int:
    """Peak bytes of GPU memory the allocator held: 0."""
    return memory_stats(device).get("reserved_bytes.all.peak", 0)


def reset_peak_memory_stats(device=None) -> None:
    """Reset the allocator's peak counters; raises without a GPU backend."""
    raise _no_binding("reset_peak_memory_stats")


def reset_max_memory_allocated(device=None) -> None:
    """Deprecated spelling of :func:`reset_peak_memory_stats` (warns, then raises as it does)."""
    warnings.warn("ember.cuda.reset_max_memory_allocated now calls "
                  "ember.cuda.reset_peak_memory_stats, which resets /all/ peak memory stats.",
                  FutureWarning, stacklevel=2)
    return reset_peak_memory_stats(device=device)


def set_per_process_memory_fraction(fraction, device=None) -> None:
    """Cap this process's share of GPU memory; raises without a GPU backend."""
    raise _not_compiled()


# --- streams and events ------------------------------------------------------------------

class Stream:
    """A CUDA stream; cannot be made without a GPU backend."""

    def __new__(cls, device=None, priority=0, **kwargs):
        raise RuntimeError("ember.cuda.Stream requires CUDA support: ember has no GPU backend "
                           "installed")


class Event:
    """A CUDA event; cannot be made without a GPU backend."""

    def __new__(cls, enable_timing=False, blocking=False, interprocess=False):
        raise RuntimeError("ember.cuda.Event requires CUDA support: ember has no GPU backend "
                           "installed")


class StreamContext:
    """``with stream(s):`` runs the block on ``s``; without CUDA, as in PyTorch, a no-op."""

    def __init__(self, stream):
        self.stream = stream
        self.idx = -1  # no current CUDA device

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def stream(stream) -> StreamContext:
    """A context manager that makes ``stream`` current (a no-op without CUDA)."""
    return StreamContext(stream)


def current_stream(device=None):
    """The current CUDA stream; raises without a GPU backend."""
    raise _not_compiled()


def default_stream(device=None):
    """The default CUDA stream; raises without a GPU backend."""
    raise _not_compiled()


class device:
    """``with ember.cuda.device(i):`` makes GPU ``i`` current; index -1 is a no-op, any other
    index raises on entry without a GPU backend, as in PyTorch."""

    def __init__(self, device):
        self.idx = _get_device_index(device, optional=True)
        self.prev_idx = -1

    def __enter__(self):
        if self.idx is None:
            # PyTorch compares None < 0 here
            raise TypeError("'<' not supported between instances of 'NoneType' and 'int'")
        if self.idx >= 0:
            raise RuntimeError("PyTorch was compiled without CUDA support: ember has no GPU "
                               "backend installed")
        self.prev_idx = -1

    def __exit__(self, *exc):
        return False


class device_of(device):
    """``device`` for the GPU holding ``obj`` (index -1, a no-op, for a cpu tensor)."""

    def __init__(self, obj):
        super().__init__(obj.get_device() if obj.is_cuda else -1)


from . import amp  # noqa: E402,F401  (ember.cuda.amp, as torch.cuda.amp)

__all__ = ["is_available", "device_count", "is_initialized", "init", "current_device",
           "set_device", "get_device_name", "get_device_properties", "get_device_capability",
           "synchronize", "is_bf16_supported", "is_tf32_supported", "get_arch_list",
           "get_gencode_flags", "mem_get_info", "ipc_collect", "manual_seed", "manual_seed_all",
           "seed", "seed_all", "initial_seed", "get_rng_state", "get_rng_state_all",
           "set_rng_state", "set_rng_state_all", "empty_cache", "memory_stats",
           "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_max_memory_allocated",
           "set_per_process_memory_fraction", "Stream", "Event",
           "StreamContext", "stream", "current_stream", "default_stream", "device", "device_of",
           "amp"]
