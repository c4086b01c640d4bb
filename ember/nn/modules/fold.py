"""nn layers: fold family (as torch/nn/modules/fold.py)."""
from __future__ import annotations

__all__: list = []
