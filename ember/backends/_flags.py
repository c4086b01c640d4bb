"""Flags as module attributes that accept only bools, as ``torch.backends`` checks them."""
from __future__ import annotations

import sys
import types


def check_bool(value, setter: str) -> bool:
    """``value`` if it is a bool, else PyTorch's RuntimeError naming its setter."""
    if not isinstance(value, bool):
        raise RuntimeError(f"{setter} expects a bool, but got {type(value).__name__}")
    return value


def checked(module_name: str, **setters: str) -> None:
    """Make assignments to the named attributes of ``module_name`` accept only bools; each
    keyword is a flag and the name of PyTorch's setter its error message names."""

    class FlagModule(types.ModuleType):
        def __setattr__(self, name, value):
            if name in setters:
                check_bool(value, setters[name])
            super().__setattr__(name, value)

    sys.modules[module_name].__class__ = FlagModule
