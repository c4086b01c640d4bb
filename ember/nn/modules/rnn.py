"""nn layers: rnn family (as torch/nn/modules/rnn.py)."""
from __future__ import annotations

__all__: list = []
