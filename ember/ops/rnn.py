"""Recurrent ops: fused RNN/LSTM/GRU layers (one node per layer and direction) and cells."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
