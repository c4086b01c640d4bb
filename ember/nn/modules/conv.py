"""nn layers: conv family (as torch/nn/modules/conv.py)."""
from __future__ import annotations

__all__: list = []
