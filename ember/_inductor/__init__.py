"""``ember._inductor`` (PyTorch's ``torch._inductor``): the names programs that call
``torch.compile`` reach in it, so they run under ``ember run`` unchanged.

Design: ember's default backend (``backend="inductor"``) is the ahead-of-time lowering in
``ember/_functorch`` (generated NumPy code); it has no Triton or C++ kernels to tune and no
on-disk cache.  ``config`` holds PyTorch's knobs with PyTorch's defaults, which programs set
(``coordinate_descent_tuning``, ``triton.unique_kernel_names``, ``fx_graph_cache`` ...) and
which ember reads none of; ``utils.fresh_inductor_cache`` is a context manager with nothing to
empty.  Nothing here is imported by ``import ember``."""
from . import config, utils

__all__ = ["config", "utils"]
