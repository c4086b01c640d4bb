"""``ember.cpu``: PyTorch's ``torch.cpu`` (the host device's small API and its ``amp``).

Design note.  ember's arrays live on the host, so the device queries answer for one cpu
device and ``synchronize`` has nothing to wait for; ``ember.cpu.amp.autocast`` is the
deprecated spelling of ``ember.autocast("cpu")`` (``ember/amp/autocast_mode.py``).
"""
from __future__ import annotations

from . import amp  # noqa: F401

__all__ = ["amp", "is_available", "device_count", "current_device", "synchronize"]


def is_available() -> bool:
    """Always True: the cpu is there."""
    return True


def device_count() -> int:
    return 1


def current_device() -> str:
    return "cpu"


def synchronize(device=None) -> None:
    """Nothing to wait for: host work is synchronous."""
