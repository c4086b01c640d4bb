"""nn layers: channelshuffle family (as torch/nn/modules/channelshuffle.py)."""
from __future__ import annotations

__all__: list = []
