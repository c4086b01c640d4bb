"""``torch.quantization``: the same module objects as ``ember.ao.quantization`` and its
submodules (PyTorch's alias)."""
import sys

from . import ao as _ao  # loads every quantization submodule

for _name, _mod in list(sys.modules.items()):
    if _name == "ember.ao.quantization" or _name.startswith("ember.ao.quantization."):
        sys.modules["ember.quantization" + _name[len("ember.ao.quantization"):]] = _mod
_ = _ao
