"""Quantization pieces added after the eager workflow (issue 19): dynamic LSTM/GRU in training
mode and with proj_size, fixed-qparams and recording observers, quantized Embedding and
EmbeddingBag, 3-d QAT modules and packed quint4x2, each against torch.ao (x86 engine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

torch.backends.quantized.engine = "x86"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _twins(build):
    """The same float module in torch and ember (torch's initial weights copied over)."""
    torch.manual_seed(0)
    tm = build(torch)
    em = build(ember)
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    return tm, em


def _dyn(m, mod, kind):
    return m.ao.quantization.quantize_dynamic(mod, {getattr(m.nn, kind)}, dtype=m.qint8)


# ---- dynamic LSTM/GRU: dropout in training mode, proj_size ----------------------------------
X_RNN = np.random.default_rng(1).standard_normal((5, 3, 6)).astype(np.float32)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dynamic_rnn_drops_between_layers_in_training_mode(kind):
    # torch's mask comes from its own generator, so p = 1 (every value dropped: the second
    # layer sees zeros, a deterministic output) is compared against torch, and p = 0.5 is
    # checked to draw a mask per call only in training mode
    outs = []
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            getattr(m.nn, kind)(6, 8, num_layers=2, dropout=1.0)))):
        q = _dyn(m, mod, kind).train()
        assert q[0].training and q[0].dropout == 1.0
        train = q(m.from_numpy(X_RNN))[0].detach().numpy()
        evald = q.eval()(m.from_numpy(X_RNN))[0].detach().numpy()
        assert np.abs(train - evald).max() > 1e-3
        outs.append((train, evald))
    np.testing.assert_allclose(outs[1][0], outs[0][0], atol=1e-6)
    np.testing.assert_allclose(outs[1][1], outs[0][1], atol=1e-6)
    q = _dyn(ember, ember.nn.Sequential(getattr(ember.nn, kind)(6, 8, num_layers=2,
                                                                 dropout=0.5)), kind)
    x = ember.from_numpy(X_RNN)
    a, b = q(x)[0].numpy(), q(x)[0].numpy()
    assert np.abs(a - b).max() > 1e-3  # a fresh mask per call
    ember.manual_seed(5)
    c = q(x)[0].numpy()
    ember.manual_seed(5)
    np.testing.assert_array_equal(q(x)[0].numpy(), c)
    q.eval()
    np.testing.assert_array_equal(q(x)[0].numpy(), q(x)[0].numpy())


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2), dict(bidirectional=True)])
def test_dynamic_lstm_with_proj_size_as_torch(kw):
    # torch's dynamic LSTM has no projection: convert drops proj_size (and weight_hr), and
    # the first forward fails on the h-wide state against the proj-wide w_hh
    for m in (torch, ember):
        q = _dyn(m, m.nn.Sequential(m.nn.LSTM(6, 8, proj_size=3, **kw)), "LSTM")
        assert getattr(q[0], "proj_size", 0) == 0
        n = len(q.state_dict())
        assert n == (2 if kw else 1)
        with pytest.raises(RuntimeError, match="number of rows in the packB should be equal "
                                               "to K: 8"):
            q(m.from_numpy(X_RNN))


def test_dynamic_linear_wrong_width_as_torch():
    for m in (torch, ember):
        q = m.ao.nn.quantized.dynamic.Linear(4, 3)
        with pytest.raises(RuntimeError, match="packB should be equal to K: 5"):
            q(m.zeros(2, 5))
