"""A compiled function that leaves a module's training flag changed (``m.eval()`` as a
statement) breaks its graph, so every call leaves the flag as eager does (review rv2 C15: the
replays returned eval outputs but left the module in train mode); a save-and-restore inside
stays one graph."""
import numpy as np
import pytest

import ember
from ember._dynamo.utils import counters


def _model():
    ember.manual_seed(0)
    return ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.BatchNorm1d(8),
                               ember.nn.Dropout(0.5), ember.nn.Linear(8, 2))


def _left_in_eval(m, a):
    m.eval()
    return m(a)


def _net_zero(m, a):
    was = m.training
    m.eval()
    out = m(a)
    m.train(was)
    return out


@pytest.mark.parametrize("fn, breaks", [(_left_in_eval, 1), (_net_zero, 0)])
def test_training_flag_after_each_call_equals_eager(fn, breaks):
    m, ref = _model(), _model()
    counters.clear()
    f = ember.compile(lambda a: fn(m, a))
    x = ember.randn(5, 4)
    for _ in range(3):
        m.train()
        ref.train()
        got, want = f(x), fn(ref, x)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
        assert m.training is ref.training
        assert [s.training for s in m] == [s.training for s in ref]
    assert (sum(counters["graph_break"].values()) > 0) == bool(breaks)
    if breaks:
        assert any("training flag" in k for k in counters["graph_break"])
