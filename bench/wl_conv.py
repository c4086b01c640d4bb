"""Benchmark workloads: conv family (registered when bench.workloads is imported)."""
from __future__ import annotations

from .harness import workload  # noqa: F401
from .workloads import _rng, _leaf  # noqa: F401
