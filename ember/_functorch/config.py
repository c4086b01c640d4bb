"""``torch._functorch.config``: PyTorch's knobs of ahead-of-time autograd with PyTorch 2.13's
defaults.  ember's AOT lowering (``aot_autograd.py``) reads none of them; programs set them
(``enable_autograd_cache``), so they are plain attributes, and other names can be set too."""
from .._dynamo.config import patcher as _patcher

enable_autograd_cache = True
activation_memory_budget = 1.0
donated_buffer = True
view_replay_for_aliased_outputs = True
ban_recompute_reductions = True
recompute_views = False
functionalize_rng_ops = False
debug_assert = False
cse = True
strict_autograd_cache = False

patch = _patcher(__import__("sys").modules[__name__])
