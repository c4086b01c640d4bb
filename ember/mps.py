"""``ember.mps``: PyTorch's Apple-GPU namespace, with no MPS backend.

As ``torch.mps`` in a build without MPS: ``is_available()`` is False, ``device_count()`` 0,
``manual_seed`` a no-op (``ember.manual_seed`` may call it), and everything that needs the
device raises PyTorch's ``RuntimeError``.
"""
from __future__ import annotations

__all__ = ["is_available", "device_count", "manual_seed", "seed", "get_rng_state",
           "set_rng_state", "synchronize", "empty_cache", "set_per_process_memory_fraction",
           "current_allocated_memory", "driver_allocated_memory", "recommended_max_memory"]


def _no_mps(what: str) -> RuntimeError:
    return RuntimeError(f"Cannot execute {what}() without MPS backend. (ember has no GPU "
                        "backend installed)")


def is_available() -> bool:
    """False: ember has no MPS backend."""
    return False


def device_count() -> int:
    """0: no MPS devices."""
    return 0


def manual_seed(seed) -> None:
    """Seed the MPS generator: a no-op without MPS, as in PyTorch."""


def seed() -> int:
    """Seed the MPS generator randomly; raises without MPS."""
    raise _no_mps("getDefaultGenerator")


def get_rng_state(device="mps"):
    """The MPS generator's state; raises without MPS."""
    raise _no_mps("getDefaultGenerator")


def set_rng_state(new_state, device="mps") -> None:
    """Set the MPS generator's state; raises without MPS."""
    raise _no_mps("getDefaultGenerator")


def synchronize() -> None:
    """Wait for the MPS device; raises without MPS."""
    raise _no_mps("deviceSynchronize")


def empty_cache() -> None:
    """Release cached MPS memory; raises without MPS."""
    raise _no_mps("emptyCache")


def set_per_process_memory_fraction(fraction) -> None:
    """Cap the MPS memory this process may use; raises without MPS."""
    raise _no_mps("setMemoryFraction")


def current_allocated_memory() -> int:
    """Bytes held by MPS tensors; raises without MPS."""
    raise _no_mps("getCurrentAllocatedMemory")


def driver_allocated_memory() -> int:
    """Bytes the Metal driver holds; raises without MPS."""
    raise _no_mps("getDriverAllocatedMemory")


def recommended_max_memory() -> int:
    """The recommended working-set size; raises without MPS."""
    raise _no_mps("getRecommendedMaxMemory")
