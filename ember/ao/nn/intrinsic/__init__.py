"""Fused float modules (``torch.ao.nn.intrinsic``): sequences ``fuse_modules`` makes so that
``convert`` can swap each for one quantized kernel (conv + bn + relu -> one quantized conv)."""
from __future__ import annotations

from ....nn.modules.container import Sequential

__all__ = ["ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "LinearReLU", "ConvBn1d", "ConvBn2d",
           "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d", "BNReLU2d", "BNReLU3d",
           "LinearBn1d"]


class _FusedModule(Sequential):
    """A fused pattern: a Sequential of the float modules it replaces."""


def _fused(name: str, n: int):
    def __init__(self, *mods):
        if len(mods) != n:
            raise AssertionError(f"Incorrect types for input modules{[type(m) for m in mods]}")
        _FusedModule.__init__(self, *mods)
    return type(name, (_FusedModule,), {"__init__": __init__,
                                        "__doc__": f"``torch.ao.nn.intrinsic.{name}``."})


ConvReLU1d, ConvReLU2d, ConvReLU3d = (_fused(f"ConvReLU{d}d", 2) for d in (1, 2, 3))
ConvBn1d, ConvBn2d, ConvBn3d = (_fused(f"ConvBn{d}d", 2) for d in (1, 2, 3))
ConvBnReLU1d, ConvBnReLU2d, ConvBnReLU3d = (_fused(f"ConvBnReLU{d}d", 3) for d in (1, 2, 3))
LinearReLU = _fused("LinearReLU", 2)
LinearBn1d = _fused("LinearBn1d", 2)
BNReLU2d, BNReLU3d = _fused("BNReLU2d", 2), _fused("BNReLU3d", 2)
for _c in (ConvReLU1d, ConvReLU2d, ConvReLU3d, ConvBn1d, ConvBn2d, ConvBn3d, ConvBnReLU1d,
           ConvBnReLU2d, ConvBnReLU3d, LinearReLU, LinearBn1d, BNReLU2d, BNReLU3d):
    _c.__module__ = __name__
