"""``torch.nn.qat``: the same module objects as ``ember.ao.nn.qat`` (PyTorch's alias), so
``import ember.nn.qat`` gives ``ember.ao.nn.qat``."""
import sys

from .. import ao as _ao  # loads every quantization subpackage

for _name, _mod in list(sys.modules.items()):
    if _name == "ember.ao.nn.qat" or _name.startswith("ember.ao.nn.qat."):
        sys.modules["ember.nn.qat" + _name[len("ember.ao.nn.qat"):]] = _mod
_ = _ao
