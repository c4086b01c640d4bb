"""``nn.utils.rnn``: PackedSequence, pad/pack helpers."""
from __future__ import annotations

__all__: list = []
