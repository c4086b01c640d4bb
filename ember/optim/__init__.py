"""``ember.optim``: PyTorch's optimizers with its exact update rules."""
from .optimizer import (Optimizer, register_optimizer_step_pre_hook,  # noqa: F401
                        register_optimizer_step_post_hook)
from .sgd import SGD  # noqa: F401
from .adam import *  # noqa: F401,F403
from .adamw import *  # noqa: F401,F403
from .rmsprop import *  # noqa: F401,F403
from .adagrad import *  # noqa: F401,F403
from .adadelta import *  # noqa: F401,F403
from .adamax import *  # noqa: F401,F403
from .nadam import *  # noqa: F401,F403
from .radam import *  # noqa: F401,F403
from .asgd import *  # noqa: F401,F403
from .lbfgs import *  # noqa: F401,F403
from .rprop import *  # noqa: F401,F403
from ._adafactor import *  # noqa: F401,F403
from .sparse_adam import *  # noqa: F401,F403
from . import lr_scheduler  # noqa: F401
from . import swa_utils  # noqa: F401
