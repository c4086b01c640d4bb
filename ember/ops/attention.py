"""Attention ops: scaled_dot_product_attention (one fused node) and multi_head_attention_forward."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
