"""``ember.testing``: ``assert_close``, ``assert_allclose`` and ``make_tensor`` (``torch.testing``).

Design: ``assert_close`` walks ``actual`` and ``expected`` together (sequences by position,
mappings by key) down to leaf pairs, each a pair of tensors, of NumPy arrays or of Python
numbers; a leaf pair is compared with PyTorch's per-dtype default tolerances
(``|actual - expected| <= atol + rtol * |expected|``) and a failure raises ``AssertionError``
with PyTorch's message: mismatched element count and the greatest absolute and relative
differences with their indices. ``make_tensor`` draws from ember's generator.
"""
from ._comparison import assert_close, assert_allclose
from ._creation import make_tensor

__all__ = ["assert_close", "assert_allclose", "make_tensor"]
