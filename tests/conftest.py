import os
import sys

# One BLAS thread for the whole suite: on a busy 2-core machine OpenBLAS's second thread made
# small products 7-50x slower (a seq2seq test took 160 s instead of 15 s).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest
from hypothesis import settings  # noqa: E402

# Hypothesis draws the same examples on every run (a fixed seed per test), so CI on a clean
# clone cannot fail on an example no one has seen; HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.path.insert(0, os.path.dirname(__file__))

torch = pytest.importorskip("torch") if os.environ.get("EMBER_NO_TORCH") else __import__("torch")
torch.set_num_threads(1)
try:  # numpy may have been imported (and its BLAS pool started) before this file
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
except ImportError:
    pass


@pytest.fixture(autouse=True)
def _seed():
    import ember
    np.random.seed(0)
    ember.manual_seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def fresh_compile():
    """ember.compile's caches and its counters empty before and after a test."""
    import ember
    from ember._dynamo.utils import counters
    ember.compiler.reset()
    counters.clear()
    yield
    ember.compiler.reset()


@pytest.fixture
def threaded(monkeypatch):
    """Every pass of ember's ops threads split (no size threshold) over ``k`` threads, ``k``
    given to the yielded ``set_count``; one thread afterwards."""
    from ember.ops import _threads
    monkeypatch.setattr(_threads, "MIN_NUMEL", 0)
    # an earlier test's ember.set_num_threads(n) takes precedence over set_count: clear it
    monkeypatch.setattr(_threads._runtime.state, "num_threads", None)
    yield _threads.set_count
    _threads.set_count(None)
