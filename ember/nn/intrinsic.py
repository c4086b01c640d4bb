"""``torch.nn.intrinsic``: the same module object as ``ember.ao.nn.intrinsic`` (PyTorch's alias)."""
import sys

from ..ao.nn import intrinsic as _target

sys.modules[__name__] = _target
