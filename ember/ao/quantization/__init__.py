"""``torch.ao.quantization`` (also ``ember.quantization``): observers, fake quantization,
qconfigs, the eager workflow (fuse, prepare, calibrate, convert; dynamic; QAT) and the
torchao-style ``quantize_``."""
from __future__ import annotations

from .observer import *  # noqa: F401,F403
from .observer import ObserverBase, UniformQuantizationObserverBase  # noqa: F401
from .fake_quantize import *  # noqa: F401,F403
from .qconfig import *  # noqa: F401,F403
from .quantize import *  # noqa: F401,F403
from .stubs import *  # noqa: F401,F403
from .quantize_api import (quantize_, Int8WeightOnlyConfig,  # noqa: F401
                           Int8DynamicActivationInt8WeightConfig, Int4WeightOnlyConfig)
from ..nn.intrinsic.qat import freeze_bn_stats, update_bn_stats  # noqa: F401
