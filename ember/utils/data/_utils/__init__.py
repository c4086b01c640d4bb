"""Helpers of the DataLoader: collation, fetching, the worker loop and the worker transport.

Mirrors ``torch/utils/data/_utils``.
"""
from . import collate, fetch, worker  # noqa: F401

# How often (seconds) a waiting worker checks that its parent still lives (torch: 5.0).
MP_STATUS_CHECK_INTERVAL = 5.0
