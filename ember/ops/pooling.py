"""Pooling ops: max/avg/adaptive/lp pooling and max_unpool -- forward and backward."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
