"""``torch.quantization``: the same module object as ``ember.ao.quantization`` (PyTorch's
alias)."""
import sys

from .ao import quantization as _target

sys.modules[__name__] = _target
