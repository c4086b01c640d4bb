"""nn layers: pooling family (as torch/nn/modules/pooling.py)."""
from __future__ import annotations

__all__: list = []
