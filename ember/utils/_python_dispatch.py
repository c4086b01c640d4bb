"""``ember.utils._python_dispatch``: PyTorch's ``TorchDispatchMode``; the mechanism is
``autograd/modes.py`` (NOTE [ Modes ])."""
from __future__ import annotations

from ..autograd.modes import TorchDispatchMode, current_modes

__all__ = ["TorchDispatchMode", "_get_current_dispatch_mode_stack"]


def _get_current_dispatch_mode_stack() -> list:
    """The active dispatch modes, outermost first."""
    return [m for m in current_modes() if isinstance(m, TorchDispatchMode)]
