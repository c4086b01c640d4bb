"""``torch.nn.quantized``: the same module objects as ``ember.ao.nn.quantized`` and its subpackages
(PyTorch's alias), so ``import ember.nn.quantized.X`` gives ``ember.ao.nn.quantized.X``."""
import sys

from .. import ao as _ao  # loads every quantization subpackage

for _name, _mod in list(sys.modules.items()):
    if _name == "ember.ao.nn.quantized" or _name.startswith("ember.ao.nn.quantized."):
        sys.modules["ember.nn.quantized" + _name[len("ember.ao.nn.quantized"):]] = _mod
_ = _ao
