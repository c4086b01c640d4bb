"""``ember.backends.opt_einsum``: whether the opt_einsum package is installed, and PyTorch's
``enabled``/``strategy`` settings.  ember's einsum contracts with NumPy's own path search, so
the settings are recorded for scripts that read them back, not used."""
from __future__ import annotations

import importlib.util

__all__ = ["is_available", "get_opt_einsum", "enabled", "strategy"]


def is_available() -> bool:
    """Whether the ``opt_einsum`` package is installed (found without importing it)."""
    return importlib.util.find_spec("opt_einsum") is not None


def get_opt_einsum():
    """The ``opt_einsum`` module if installed, else None."""
    if not is_available():
        return None
    import opt_einsum
    return opt_einsum


# PyTorch's defaults: on, with the "auto" strategy, when the package is installed
enabled = is_available()
strategy = "auto" if enabled else None
