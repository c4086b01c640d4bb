"""``ember.backends.openmp``: ember has no OpenMP loops of its own (its only thread pool is
the BLAS library's under NumPy, see ``ember.set_num_threads``), so OpenMP is reported as not
available, where PyTorch's builds report True."""
from __future__ import annotations

__all__ = ["is_available"]


def is_available() -> bool:
    """False: ember's parallelism is BLAS's own pool, not OpenMP."""
    return False
