"""``ember.backends.mps``: ember is not built with MPS."""
from __future__ import annotations

__all__ = ["is_available", "is_built"]


def is_available() -> bool:
    """False: no MPS device is usable by ember."""
    return False


def is_built() -> bool:
    """False: ember has no MPS backend."""
    return False
