"""``ember.nn.attention``: choosing the kernel behind ``F.scaled_dot_product_attention``.

Design note: PyTorch picks one of several attention kernels (flash, memory-efficient, cuDNN,
math) per call; ``sdpa_kernel(backends)`` narrows the choice for a block by setting the
``torch.backends.cuda.*_sdp_enabled`` switches.  ember has one kernel, the math one, on
every device it runs on, so here the switches are set and restored exactly as PyTorch sets
them (code that reads them back sees what it would under PyTorch) while
``F.scaled_dot_product_attention`` computes the same result whichever is chosen, as
PyTorch's CPU path does.
"""
from __future__ import annotations

import contextlib
import enum
from typing import Iterable, Union

from ...backends import cuda as _cuda

__all__ = ["SDPBackend", "sdpa_kernel", "WARN_FOR_UNFUSED_KERNELS"]

WARN_FOR_UNFUSED_KERNELS = False


class SDPBackend(enum.IntEnum):
    """The attention kernels, numbered as PyTorch's ``torch.nn.attention.SDPBackend``."""

    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4

    def __repr__(self):
        return f"<SDPBackend.{self.name}: {self.value}>"


# each backend's switch in ember.backends.cuda (OVERRIDEABLE has none, as in PyTorch)
_SWITCHES = {
    SDPBackend.MATH: (_cuda.math_sdp_enabled, _cuda.enable_math_sdp),
    SDPBackend.FLASH_ATTENTION: (_cuda.flash_sdp_enabled, _cuda.enable_flash_sdp),
    SDPBackend.EFFICIENT_ATTENTION: (_cuda.mem_efficient_sdp_enabled,
                                     _cuda.enable_mem_efficient_sdp),
    SDPBackend.CUDNN_ATTENTION: (_cuda.cudnn_sdp_enabled, _cuda.enable_cudnn_sdp),
}


def _cur_sdpa_kernel_backends() -> list:
    """The backends whose switch is on now."""
    return [b for b, (enabled, _) in _SWITCHES.items() if enabled()]


@contextlib.contextmanager
def sdpa_kernel(backends: Union[SDPBackend, Iterable[SDPBackend]], set_priority: bool = False):
    """Enable only ``backends`` for scaled-dot-product attention inside the block
    (``torch.nn.attention.sdpa_kernel``); the previous switches come back after it."""
    if isinstance(backends, SDPBackend):
        backends = [backends]
    ok = isinstance(backends, (list, tuple, set)) and \
        all(isinstance(b, SDPBackend) for b in backends)
    if not ok:  # PyTorch asserts this
        raise AssertionError("Backend must be an instance of SDPBackend or a list of "
                             f"SDPBackend instances, got {type(backends).__name__}")
    wanted = set(backends)
    saved = _cur_sdpa_kernel_backends()
    for b, (_, enable) in _SWITCHES.items():
        enable(b in wanted)
    try:
        yield {}
    finally:
        for b, (_, enable) in _SWITCHES.items():
            enable(b in saved)
