"""``ember.distributed.nn``: collectives that autograd differentiates through
(``torch.distributed.nn``); ``SyncBatchNorm`` is built on them."""
from . import functional

__all__ = ["functional"]
