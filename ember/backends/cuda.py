"""``ember.backends.cuda``: cuBLAS and attention-kernel switches, with PyTorch's defaults.

ember is not built with CUDA; the flags are recorded so scripts that set or read them run.
``matmul.allow_tf32`` is the legacy spelling of the float32 matmul precision: it reads True
when ``ember.get_float32_matmul_precision()`` is not "highest", and setting it sets that
precision to "high" or "highest" (PyTorch instead refuses to mix the two APIs).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

from .. import _runtime
from . import _flags

__all__ = ["is_built", "matmul", "flash_sdp_enabled", "enable_flash_sdp",
           "mem_efficient_sdp_enabled", "enable_mem_efficient_sdp", "math_sdp_enabled",
           "enable_math_sdp", "cudnn_sdp_enabled", "enable_cudnn_sdp", "sdp_kernel",
           "is_flash_attention_available"]


def is_built() -> bool:
    """False: ember is not built with CUDA."""
    return False


class cuBLASModule:
    """``matmul``'s settable flags; any other name is an AttributeError, as in PyTorch."""

    _REDUCTIONS = ("allow_fp16_reduced_precision_reduction",
                   "allow_bf16_reduced_precision_reduction")

    def __init__(self):
        # PyTorch's defaults: (allow reduced precision, allow split-k)
        object.__setattr__(self, "_values", {
            "allow_fp16_reduced_precision_reduction": (True, True),
            "allow_bf16_reduced_precision_reduction": (True, True),
            "allow_fp16_accumulation": False})

    @staticmethod
    def _parse_reduction(value, name: str) -> tuple:
        if isinstance(value, bool):
            return value, True
        if isinstance(value, (list, tuple)):
            if not value:
                raise TypeError(f"{name} expects at least one boolean argument")
            if len(value) > 2:
                raise TypeError(f"{name} expects at most two boolean arguments")
            for which, v in zip(("allow_reduced_precision", "allow_splitk"), value):
                if not isinstance(v, bool):
                    raise TypeError(f"{name} expects a bool for {which}, but got {type(v)!r}")
            return value[0], value[1] if len(value) == 2 else True
        raise TypeError(f"{name} expects a bool or a tuple/list of bools, but got {type(value)!r}")

    def __getattr__(self, name):
        if name == "allow_tf32":
            return _runtime.get_float32_matmul_precision() != "highest"
        values = object.__getattribute__(self, "_values")
        if name in self._REDUCTIONS:
            return values[name][0]
        if name.endswith("_split_k") and name[:-len("_split_k")] in self._REDUCTIONS:
            return values[name[:-len("_split_k")]][1]
        if name == "allow_fp16_accumulation":
            return values[name]
        raise AttributeError("Unknown attribute " + name)

    def __setattr__(self, name, value):
        if name == "allow_tf32":
            _flags.check_bool(value, "set_allow_tf32_cublas")
            _runtime.set_float32_matmul_precision("high" if value else "highest")
        elif name in self._REDUCTIONS:
            self._values[name] = self._parse_reduction(value, name)
        elif name == "allow_fp16_accumulation":
            self._values[name] = _flags.check_bool(value, "set_allow_fp16_accumulation_cublas")
        else:
            raise AttributeError("Unknown attribute " + name)


matmul = cuBLASModule()

# scaled_dot_product_attention's kernels: ember has one (the math one); all default on
_sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}


def _sdp_switch(kind: str):
    def enabled() -> bool:
        return _sdp[kind]

    def enable(enabled: bool) -> None:
        _sdp[kind] = _flags.check_bool(enabled, f"set_sdp_use_{kind}")

    enabled.__name__ = enabled.__qualname__ = f"{kind}_sdp_enabled"
    enabled.__doc__ = f"Whether the {kind} attention kernel is enabled (recorded only)."
    enable.__name__ = enable.__qualname__ = f"enable_{kind}_sdp"
    enable.__doc__ = f"Enable or disable the {kind} attention kernel (recorded only)."
    return enabled, enable


flash_sdp_enabled, enable_flash_sdp = _sdp_switch("flash")
mem_efficient_sdp_enabled, enable_mem_efficient_sdp = _sdp_switch("mem_efficient")
math_sdp_enabled, enable_math_sdp = _sdp_switch("math")
cudnn_sdp_enabled, enable_cudnn_sdp = _sdp_switch("cudnn")


@contextmanager
def sdp_kernel(enable_flash: bool = True, enable_math: bool = True,
               enable_mem_efficient: bool = True, enable_cudnn: bool = True):
    """Deprecated: set the attention-kernel switches for the block, restore them after."""
    warnings.warn("`torch.backends.cuda.sdp_kernel()` is deprecated. In the future, this context "
                  "manager will be removed. Please see `torch.nn.attention.sdpa_kernel()` for "
                  "the new context manager, with updated signature.", FutureWarning,
                  stacklevel=3)
    saved = dict(_sdp)
    new = {"flash": enable_flash, "math": enable_math, "mem_efficient": enable_mem_efficient,
           "cudnn": enable_cudnn}
    for kind, value in new.items():
        _flags.check_bool(value, f"set_sdp_use_{kind}")
    _sdp.update(new)
    try:
        yield
    finally:
        _sdp.update(saved)


def is_flash_attention_available() -> bool:
    """False: no flash-attention kernel without CUDA."""
    return False
