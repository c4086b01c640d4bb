"""nn layers: upsampling family (as torch/nn/modules/upsampling.py)."""
from __future__ import annotations

__all__: list = []
