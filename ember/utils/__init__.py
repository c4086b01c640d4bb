"""``ember.utils``: data loading (``ember.utils.data``) and file formats."""
from . import data  # noqa: F401
from . import checkpoint, checkpoint_io, safetensors  # noqa: F401
