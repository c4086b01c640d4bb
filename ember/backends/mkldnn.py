"""``ember.backends.mkldnn``: oneDNN's switches.  ember has no oneDNN (PyTorch's own builds do,
so ``is_available()`` is True there and False here); the flags keep PyTorch's defaults."""
from __future__ import annotations

from . import _flags

__all__ = ["is_available", "enabled", "deterministic"]

enabled = True
deterministic = False


def is_available() -> bool:
    """False: ember's ops run on NumPy, not oneDNN."""
    return False


_flags.checked(__name__, enabled="set_enabled_mkldnn", deterministic="set_deterministic_mkldnn")
