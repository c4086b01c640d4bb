"""``torch.nn.quantized``: the same module object as ``ember.ao.nn.quantized`` (PyTorch's alias)."""
import sys

from ..ao.nn import quantized as _target

sys.modules[__name__] = _target
