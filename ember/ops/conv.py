"""Convolution ops: conv1d/2d/3d, conv_transpose, unfold/fold (im2col) -- forward and backward."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
