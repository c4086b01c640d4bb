"""nn layers: channelshuffle family (as torch/nn/modules/channelshuffle.py)."""
from __future__ import annotations

from ...ops.resample import channel_shuffle
from .module import Module

__all__ = ["ChannelShuffle"]


class ChannelShuffle(Module):
    """Interleave ``groups`` groups of channels (ShuffleNet): (N, C, *) -> (N, C, *)."""

    __constants__ = ["groups"]

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input):
        return channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
