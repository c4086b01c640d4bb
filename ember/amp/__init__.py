"""``ember.amp``: automatic mixed precision, as ``torch.amp``.

Design note.  Mixed precision has two halves.  Loss scaling (``GradScaler``, in
``grad_scaler.py``) is plain Python over ember ops: it multiplies the loss by a float32 0-d
scale tensor, unscales the optimizer's gradients in place under ``no_grad``, skips
``optimizer.step()`` when a gradient overflowed and adjusts the scale, all with PyTorch's exact
arithmetic so the scale trajectory matches ``torch.amp.GradScaler`` step for step; it never
touches the autograd core.  Autocast (the other half) will hook the mode stack of
``Function.apply`` and lives beside it.
"""
from .grad_scaler import GradScaler, OptState  # noqa: F401

__all__ = ["GradScaler"]
