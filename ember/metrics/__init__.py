"""``ember.metrics``: evaluation metrics with torchmetrics' API.

Design note.  Two layers, as torchmetrics: ``functional`` holds every metric as a function of
``(preds, target)``, and each stateful class is a ``Metric`` (an ``nn.Module``) whose
``update`` adds one batch to its state and whose ``compute`` applies the same formula to the
accumulated state.  State is declared with ``add_state`` (tensors are buffers, lists go through
``get_extra_state``), so it is in ``state_dict`` and survives save/load.  ``forward`` returns the
batch's own value and merges the batch into the global state by each state's reduction (sum,
cat, min, max).  Classification metrics count on the host with NumPy (integer bookkeeping,
no gradient); regression metrics are ember ops, so they are differentiable.  Bad input
(shapes that do not match, probabilities outside [0, 1], class indices >= num_classes, an
unknown task) raises ValueError/RuntimeError naming the shapes or values.  Not imported by
``import ember``; ``import ember.metrics`` loads it.
"""
from . import functional  # noqa: F401
from .metric import Metric, MetricCollection  # noqa: F401
from .classification import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403
from .text import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403
