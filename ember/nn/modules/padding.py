"""nn layers: padding family (as torch/nn/modules/padding.py)."""
from __future__ import annotations

__all__: list = []
