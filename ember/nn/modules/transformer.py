"""nn layers: transformer family (as torch/nn/modules/transformer.py)."""
from __future__ import annotations

__all__: list = []
