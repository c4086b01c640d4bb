"""``ember.overrides``: PyTorch's ``torch.overrides`` (``TorchFunctionMode`` and the
``__torch_function__`` protocol); the mechanism is ``autograd/modes.py`` (NOTE [ Modes ])."""
from __future__ import annotations

from ._tensor import Tensor, _disabled_torch_function_impl
from .autograd.modes import TorchFunctionMode, Op, dispatch

__all__ = ["TorchFunctionMode", "BaseTorchFunctionMode", "has_torch_function",
           "handle_torch_function",
           "is_tensor_like", "_disabled_torch_function_impl"]


class BaseTorchFunctionMode(TorchFunctionMode):
    """A mode whose ``__torch_function__`` calls ``func`` as it is: subclasses change ``func``
    or the arguments and defer to it with ``super().__torch_function__``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def is_tensor_like(inp) -> bool:
    """Whether ``inp`` is a Tensor or has a ``__torch_function__`` of its own."""
    return type(inp) is Tensor or hasattr(inp, "__torch_function__")


def has_torch_function(relevant_args) -> bool:
    """Whether any argument's type overrides ``__torch_function__`` (Tensor itself does not)."""
    for a in relevant_args:
        t = type(a)
        tf = getattr(t, "__torch_function__", None)
        if t is not Tensor and tf is not None and \
                getattr(tf, "__func__", tf) is not _disabled_torch_function_impl:
            return True
    return False


def handle_torch_function(public_api, relevant_args, *args, **kwargs):
    """Offer a Python-level function to the modes and subclasses, as ``Function.apply`` does."""
    name = getattr(public_api, "__name__", "function")
    return dispatch(Op(public_api, name), args, kwargs, public_api, composite=True)
