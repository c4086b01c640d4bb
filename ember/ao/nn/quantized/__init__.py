"""``torch.ao.nn.quantized``: modules over quantized tensors (also ``ember.nn.quantized``)."""
from __future__ import annotations

from .modules import (Quantize, DeQuantize, Linear, Conv1d, Conv2d, Conv3d,  # noqa: F401
                      BatchNorm2d, BatchNorm3d, ReLU6, FloatFunctional, FXFloatFunctional,
                      QFunctional)
from ....nn.modules.pooling import MaxPool2d  # noqa: F401  (quantized tensors pass through)
from ....nn.modules.dropout import Dropout  # noqa: F401
from .embedding_ops import Embedding, EmbeddingBag  # noqa: F401
from . import dynamic  # noqa: F401

__all__ = ["Quantize", "DeQuantize", "Linear", "Conv1d", "Conv2d", "Conv3d", "BatchNorm2d",
           "BatchNorm3d", "ReLU6", "FloatFunctional", "FXFloatFunctional", "QFunctional",
           "MaxPool2d", "Dropout", "Embedding", "EmbeddingBag", "dynamic"]
