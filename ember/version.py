"""``ember.version`` (``torch.version``): the version, and no CUDA/HIP/XPU toolkit."""
from . import __version__  # noqa: F401

cuda = None
hip = None
rocm = None
xpu = None
debug = False
git_version = "unknown"
