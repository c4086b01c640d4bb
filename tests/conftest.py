import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

torch = pytest.importorskip("torch") if os.environ.get("EMBER_NO_TORCH") else __import__("torch")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    import ember
    np.random.seed(0)
    ember.manual_seed(0)
    torch.manual_seed(0)
    yield
