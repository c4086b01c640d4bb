"""``ember.cuda.amp``: PyTorch's deprecated CUDA spellings of ``ember.amp``."""
from __future__ import annotations

import warnings

from ..amp import grad_scaler as _grad_scaler
from ..amp.grad_scaler import OptState  # noqa: F401  (torch.cuda.amp keeps it importable)
from .. import _dtype
from ..amp import autocast_mode as _autocast_mode

__all__ = ["autocast", "custom_bwd", "custom_fwd", "GradScaler"]


class GradScaler(_grad_scaler.GradScaler):
    """Deprecated: ``ember.amp.GradScaler("cuda", ...)``.  Warns FutureWarning, then, with no
    GPU backend, warns and disables itself as ``ember.amp.GradScaler("cuda")`` does."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 enabled: bool = True) -> None:
        warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                      "`torch.amp.GradScaler('cuda', args...)` instead.", FutureWarning,
                      stacklevel=2)
        super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor,
                         backoff_factor=backoff_factor, growth_interval=growth_interval,
                         enabled=enabled)


class autocast(_autocast_mode.autocast):
    """Deprecated: ``ember.amp.autocast("cuda", ...)``; warns FutureWarning, then (no GPU
    backend) warns and disables itself as ``ember.autocast("cuda")`` does."""

    def __init__(self, enabled: bool = True, dtype=_dtype.float16, cache_enabled: bool = True):
        warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated. Please use "
                      "`torch.amp.autocast('cuda', args...)` instead.", FutureWarning,
                      stacklevel=2)
        super().__init__("cuda", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


def custom_fwd(fwd=None, *, cast_inputs=None):
    """Deprecated: ``ember.amp.custom_fwd(..., device_type="cuda")``."""
    warnings.warn("`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use "
                  "`torch.amp.custom_fwd(args..., device_type='cuda')` instead.", FutureWarning,
                  stacklevel=2)
    return _autocast_mode.custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)


def custom_bwd(bwd):
    """Deprecated: ``ember.amp.custom_bwd(..., device_type="cuda")``."""
    warnings.warn("`torch.cuda.amp.custom_bwd(args...)` is deprecated. Please use "
                  "`torch.amp.custom_bwd(args..., device_type='cuda')` instead.", FutureWarning,
                  stacklevel=2)
    return _autocast_mode.custom_bwd(bwd, device_type="cuda")
