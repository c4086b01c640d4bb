"""``ember.backends``: PyTorch's per-backend switches, with PyTorch's defaults.

Design note.  Each submodule mirrors ``torch.backends.<name>``: availability queries answer
for ember (no cuDNN, CUDA, MPS or oneDNN: ember runs on NumPy), and the flags scripts set
(``cudnn.benchmark = True``, ``cuda.matmul.allow_tf32 = True``, ``mkldnn.enabled``...) are
module attributes with PyTorch's defaults and PyTorch's bool check on assignment
(``_flags.checked``).  A flag is recorded, not acted on: NumPy has one way to run each op, so
benchmark/deterministic/tf32 choices change nothing in ember's results, which is also why
ember's results equal PyTorch's with the flags at their defaults.  ``cuda.matmul.allow_tf32``
reads and writes the float32 matmul precision kept in ``ember/_runtime.py``.
"""
from . import cpu, cuda, cudnn, mkldnn, mps, openmp, opt_einsum  # noqa: F401

__all__ = ["cpu", "cuda", "cudnn", "mkldnn", "mps", "openmp", "opt_einsum"]
