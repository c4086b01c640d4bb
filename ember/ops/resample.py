"""Resampling ops: interpolate, pixel_shuffle, channel_shuffle, grid_sample, affine_grid."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
