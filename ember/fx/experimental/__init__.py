"""``ember.fx.experimental``: op-level graph capture (PyTorch's ``torch.fx.experimental``).

``proxy_tensor.make_fx(fn)(*args)`` runs ``fn`` on real inputs with a recording mode on the
core's mode stack (NOTE [ Modes ] in autograd/modes.py) and returns a ``GraphModule`` of the
ops that ran.  ``proxy_tensor.record`` is the reusable form that ``ember.compile``,
``ember.jit.trace`` and the exporters build on (see that module's docstring).
"""
from . import proxy_tensor

__all__ = ["proxy_tensor"]
