"""``RemovableHandle``: what every ``register_*_hook`` returns (``torch.utils.hooks``').

A leaf module, so tensors, graph nodes, modules and optimizers all use this one class.
Hooks are stored in dicts keyed by the handle's ``id`` (insertion order is call order);
``remove()`` takes the hook out of each dict it was registered in.
"""
from __future__ import annotations

import itertools

_ids = itertools.count()


class RemovableHandle:
    """A registered hook: ``handle.remove()``, or leave a ``with handle:`` block."""

    __slots__ = ("id", "_dicts")

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.id = next(_ids)
        extra = () if extra_dict is None else (
            tuple(extra_dict) if isinstance(extra_dict, (list, tuple)) else (extra_dict,))
        self._dicts = (hooks_dict,) + extra

    def remove(self) -> None:
        for d in self._dicts:
            d.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def add_hook(hooks_dict: dict, hook, **kw) -> RemovableHandle:
    """Register ``hook`` at the end of ``hooks_dict``; its handle removes it."""
    h = RemovableHandle(hooks_dict, **kw)
    hooks_dict[h.id] = hook
    return h
