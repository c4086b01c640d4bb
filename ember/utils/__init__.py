"""``ember.utils``: data loading (``ember.utils.data``) and file formats."""
from . import data  # noqa: F401
