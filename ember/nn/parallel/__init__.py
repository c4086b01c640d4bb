"""``ember.nn.parallel``: ``DataParallel`` as PyTorch runs it without GPUs (``torch.nn.parallel``).

ember has one device, so there is nothing to scatter to: ``DataParallel`` keeps the wrapped
module as ``.module`` and calls it directly, which is what ``torch.nn.DataParallel`` does when
no CUDA device is available; state-dict keys gain the ``module.`` prefix as in PyTorch.
"""
from .data_parallel import DataParallel, data_parallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel", "data_parallel"]
