"""``ember.backends.cudnn``: cuDNN's switches; ember has no cuDNN, the flags are recorded."""
from __future__ import annotations

from contextlib import contextmanager

from . import _flags

__all__ = ["is_available", "version", "is_acceptable", "flags", "enabled", "benchmark",
           "benchmark_limit", "deterministic", "allow_tf32"]

enabled = True          # PyTorch's defaults
benchmark = False
benchmark_limit = None  # PyTorch's value without cuDNN
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False: ember has no cuDNN."""
    return False


def version():
    """cuDNN's version: None without cuDNN."""
    return None


def is_acceptable(tensor) -> bool:
    """Whether cuDNN could run on ``tensor``: never here."""
    return False


@contextmanager
def flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False,
          allow_tf32=True):
    """Set the flags for the block and restore them after it, as PyTorch's ``cudnn.flags``."""
    module = globals()
    names = ("enabled", "benchmark", "benchmark_limit", "deterministic", "allow_tf32")
    saved = {n: module[n] for n in names}
    new = dict(zip(names, (enabled, benchmark, benchmark_limit, deterministic, allow_tf32)))
    for n in ("enabled", "benchmark", "deterministic", "allow_tf32"):
        _flags.check_bool(new[n], f"set_{n}_cudnn")
    module.update(new)
    try:
        yield
    finally:
        module.update(saved)


_flags.checked(__name__, enabled="set_enabled_cudnn", benchmark="set_benchmark_cudnn",
               deterministic="set_deterministic_cudnn", allow_tf32="set_allow_tf32_cudnn")
