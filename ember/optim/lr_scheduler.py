"""``optim.lr_scheduler``: learning-rate schedules (PyTorch's formulas and state dicts)."""
from __future__ import annotations
