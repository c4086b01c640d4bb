"""``ember.metrics.functional``: every metric as a plain function of ``(preds, target)``
(torchmetrics.functional's names and arguments)."""
from .classification import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403
from . import classification, regression, text, segmentation  # noqa: F401
