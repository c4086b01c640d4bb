"""``LazyModuleMixin``: layers whose parameter shapes come from their first input
(``torch/nn/modules/lazy.py``)."""
from __future__ import annotations

from ..parameter import is_lazy

__all__: list = []  # torch keeps LazyModuleMixin out of torch.nn too


class LazyModuleMixin:
    """Holds ``UninitializedParameter``s until the first forward, then becomes ``cls_to_become``.

    A subclass calls ``_lazy_setup(dtype)`` in ``__init__`` and implements
    ``initialize_parameters(*inputs)``; a forward pre-hook runs it once and swaps the class.
    """

    cls_to_become = None

    def _lazy_setup(self, dtype) -> None:
        self._lazy_dtype = dtype
        self._lazy_hook = self.register_forward_pre_hook(LazyModuleMixin._infer_parameters)

    def has_uninitialized_params(self) -> bool:
        return (any(is_lazy(p) for p in self._parameters.values() if p is not None)
                or any(is_lazy(b) for b in self._buffers.values() if b is not None))

    @staticmethod
    def _infer_parameters(module, args):
        module.initialize_parameters(*args)
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {module._get_name()} has not been fully initialized")
        module._lazy_hook.remove()
        for name in ("_lazy_hook", "_lazy_dtype"):
            module.__dict__.pop(name, None)
        module.__class__ = module.cls_to_become
