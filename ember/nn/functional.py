"""Functional forms of the neural-network ops (``ember.nn.functional``).

Each function lives beside its forward/backward in ``ember/ops``; this module is
the namespace PyTorch users import as ``F``.
"""
from __future__ import annotations

from ..ops.index import one_hot  # noqa: F401
from ..ops.elementwise import relu, sigmoid, tanh  # noqa: F401
from ..ops.activation import *  # noqa: F401,F403
from ..ops.loss import *  # noqa: F401,F403
from ..ops.normalization import *  # noqa: F401,F403
from ..ops.layers import *  # noqa: F401,F403
from ..ops.conv import *  # noqa: F401,F403
from ..ops.pooling import *  # noqa: F401,F403
from ..ops.padding import *  # noqa: F401,F403
from ..ops.resample import *  # noqa: F401,F403
from ..ops.attention import *  # noqa: F401,F403
