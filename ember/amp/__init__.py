"""``ember.amp``: automatic mixed precision, as ``torch.amp``.

Design note.  Mixed precision has two halves.  Loss scaling (``GradScaler``, in
``grad_scaler.py``) is plain Python over ember ops: it multiplies the loss by a float32 0-d
scale tensor, unscales the optimizer's gradients in place under ``no_grad``, skips
``optimizer.step()`` when a gradient overflowed and adjusts the scale, all with PyTorch's exact
arithmetic so the scale trajectory matches ``torch.amp.GradScaler`` step for step; it never
touches the autograd core.  Autocast (the other half, ``autocast_mode.py``, NOTE [ Autocast ]
there) is one ``TorchFunctionMode`` on the mode stack of ``Function.apply``: it casts the
inputs of PyTorch's listed ops with ordinary, recorded ``Tensor.to`` calls.
"""
from .grad_scaler import GradScaler, OptState  # noqa: F401
from .autocast_mode import (autocast, custom_fwd, custom_bwd,  # noqa: F401
                            is_autocast_available, _cast_inputs as _cast)

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available", "GradScaler"]
