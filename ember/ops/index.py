"""Indexing: ``t[...]`` reads and writes, gather/scatter and friends."""
from __future__ import annotations

__all__ = []

METHODS = {}
