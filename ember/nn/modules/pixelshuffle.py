"""nn layers: pixelshuffle family (as torch/nn/modules/pixelshuffle.py)."""
from __future__ import annotations

__all__: list = []
