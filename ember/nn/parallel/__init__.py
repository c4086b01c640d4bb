"""``ember.nn.parallel``: ``DataParallel`` as PyTorch runs it without GPUs (``torch.nn.parallel``).

ember has one device, so there is nothing to scatter to: ``DataParallel`` keeps the wrapped
module as ``.module`` and calls it directly, which is what ``torch.nn.DataParallel`` does when
no CUDA device is available; state-dict keys gain the ``module.`` prefix as in PyTorch.
"""
from .data_parallel import DataParallel, data_parallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]


def __getattr__(name):
    # ``DistributedDataParallel`` pulls in ember.distributed: loaded on first use (import time)
    if name == "DistributedDataParallel":
        from .distributed import DistributedDataParallel
        return DistributedDataParallel
    raise AttributeError(f"module 'ember.nn.parallel' has no attribute '{name}'")
