"""``ember.utils.hooks``: the handle that ``register_*_hook`` returns, and hook helpers
(PyTorch's ``torch.utils.hooks``)."""
from __future__ import annotations

import warnings

from .._hooks import RemovableHandle

__all__ = ["RemovableHandle", "unserializable_hook", "warn_if_has_hooks"]


def unserializable_hook(f):
    """Mark ``f`` as a hook that is not saved with its tensor, silencing
    ``warn_if_has_hooks`` for it."""
    f.__torch_unserializable__ = True
    return f


def warn_if_has_hooks(tensor) -> None:
    """Warn for each backward hook on ``tensor`` that saving it will drop."""
    hooks = tensor._hooks or {}
    for hook in hooks.values():
        if not hasattr(hook, "__torch_unserializable__"):
            warnings.warn(f"backward hook {hook!r} on tensor will not be serialized.  If this "
                          "is expected, you can decorate the function with "
                          "@torch.utils.hooks.unserializable_hook to suppress this warning",
                          stacklevel=2)
