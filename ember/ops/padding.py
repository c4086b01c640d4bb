"""``F.pad``: constant, reflect, replicate and circular padding -- forward and backward."""
from __future__ import annotations

__all__: list = []
METHODS: dict = {}
