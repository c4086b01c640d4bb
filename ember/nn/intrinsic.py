"""``torch.nn.intrinsic``: the same module objects as ``ember.ao.nn.intrinsic`` and its subpackages
(PyTorch's alias), so ``import ember.nn.intrinsic.X`` gives ``ember.ao.nn.intrinsic.X``."""
import sys

from .. import ao as _ao  # loads every quantization subpackage

for _name, _mod in list(sys.modules.items()):
    if _name == "ember.ao.nn.intrinsic" or _name.startswith("ember.ao.nn.intrinsic."):
        sys.modules["ember.nn.intrinsic" + _name[len("ember.ao.nn.intrinsic"):]] = _mod
_ = _ao
