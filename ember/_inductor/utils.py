"""``torch._inductor.utils``: the helpers programs call around a compile."""
from __future__ import annotations

import contextlib

__all__ = ["fresh_inductor_cache", "fresh_cache"]


@contextlib.contextmanager
def fresh_cache(cache_entries=None, dir=None, delete: bool = True):
    """Run the block with empty compile caches on disk (``torch._inductor.utils.fresh_cache``):
    ember keeps none (its compiled entries live in memory; ``torch.compiler.reset()`` clears
    them), so there is nothing to swap out."""
    yield


fresh_inductor_cache = fresh_cache  # PyTorch's older name, still exported
