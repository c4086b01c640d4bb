"""``ember.save`` / ``ember.load`` in PyTorch's zip format, with an allow-list unpickler."""
from __future__ import annotations

__all__: list = []
