"""ember.compile with dynamic shapes: one graph for varying sizes, numbers equal eager's,
recompiles counted, guards (rank, 0/1, equal dims, mark_static) as PyTorch's."""
import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo.utils import counters


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _frames():
    return counters["frames"]["total"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        h = self.drop(F.relu(self.bn(self.fc1(x))))
        return self.fc2(h).view(x.shape[0], -1)


def _step(model, x, y):
    return F.cross_entropy(model(x), y)


def _run(compiled, sizes, dynamic=None):
    """Loss, input gradient and parameter gradients per size, and the final buffers."""
    ember.manual_seed(0)
    model = Net()
    fn = ember.compile(_step, dynamic=dynamic) if compiled else _step
    g = ember.Generator().manual_seed(3)
    out = []
    for b in sizes:
        x = ember.randn(b, 6, generator=g).requires_grad_()
        y = ember.randint(0, 3, (b,), generator=g)
        model.zero_grad()
        loss = fn(model, x, y)
        loss.backward()
        out.append([loss.detach().numpy().copy(), x.grad.numpy().copy()] +
                   [p.grad.numpy().copy() for p in model.parameters()])
    return out, [b.numpy().copy() for b in model.buffers()]


SIZES = [4, 7, 9, 4, 13, 2, 7, 16, 5]


def test_automatic_dynamic_stops_recompiling_and_equals_eager():
    got, got_bufs = _run(True, SIZES)
    assert _frames() == 2  # the first size, then one recompile that makes dim 0 dynamic
    assert counters["stats"]["dynamic_graphs"] == 1
    want, want_bufs = _run(False, SIZES)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_bufs, want_bufs):  # batch norm's running stats, dropout's stream
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dynamic_false_specialises_every_size():
    _run(True, [4, 7, 9, 7], dynamic=False)
    assert _frames() == 3 and counters["stats"]["dynamic_graphs"] == 0


def test_dynamic_true_and_compiled_numbers_match_torch():
    def f(x, w):
        return (x @ w).tanh().sum(1).reshape(x.shape[0], 1) * x[:, :1]
    cf = ember.compile(f, dynamic=True)
    rng = np.random.default_rng(0)
    wv = rng.standard_normal((5, 3))
    for n in (3, 6, 11, 6, 20):
        xv = rng.standard_normal((n, 5))
        xe = ember.tensor(xv, requires_grad=True)
        we = ember.tensor(wv, requires_grad=True)
        xt = torch.tensor(xv, requires_grad=True)
        wt = torch.tensor(wv, requires_grad=True)
        cf(xe, we).sum().backward()
        f(xt, wt).sum().backward()
        for a, b in ((xe.grad, xt.grad), (we.grad, wt.grad)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert _frames() == 2


def test_sizes_zero_and_one_are_specialised():
    f = ember.compile(lambda x: (x * 2).sum(0))
    for n in (3, 5, 1, 8, 1, 0):
        x = ember.randn(n, 4)
        np.testing.assert_allclose(f(x).numpy(), (x * 2).sum(0).numpy(), rtol=1e-6)
    assert _frames() == 4  # 3, 5 (dynamic from then), 1, 0: 1 and 0 get their own graphs


def test_rank_change_fails_the_guard_and_recompiles():
    f = ember.compile(lambda x: x.relu() + 1)
    f(ember.randn(3, 4))
    f(ember.randn(5, 4))
    assert _frames() == 2
    f(ember.randn(6, 4))
    assert _frames() == 2
    x = ember.randn(2, 3, 4)
    np.testing.assert_allclose(f(x).numpy(), (x.relu() + 1).numpy())
    assert _frames() == 3


def test_dims_equal_in_both_captures_are_guarded_equal():
    f = ember.compile(lambda x, y: x * y)
    f(ember.randn(3, 2), ember.randn(3, 2))
    f(ember.randn(5, 2), ember.randn(5, 2))
    f(ember.randn(6, 2), ember.randn(6, 2))
    assert _frames() == 2
    with pytest.raises(RuntimeError, match="must match the size"):  # eager's broadcast error
        f(ember.randn(6, 2), ember.randn(4, 2))
    with pytest.raises(RuntimeError, match="must match the size"):
        torch.randn(6, 2) * torch.randn(4, 2)


def test_mark_dynamic_under_dynamic_false_and_mark_static():
    f = ember.compile(lambda x: x.sum(1), dynamic=False)
    for n in (3, 5, 7):
        x = ember.randn(n, 4)
        ember._dynamo.mark_dynamic(x, 0)
        f(x)
    assert _frames() == 2
    ember.compiler.reset()
    counters.clear()
    g = ember.compile(lambda x: x.sum(1))
    for n in (3, 5, 7):
        x = ember.randn(n, 4)
        ember._dynamo.mark_static(x, 0)
        g(x)
    assert _frames() == 3 and counters["stats"]["dynamic_graphs"] == 0


@pytest.mark.parametrize("call, err", [
    (lambda: ember._dynamo.mark_dynamic(ember.randn(2, 3), 2), IndexError),
    (lambda: ember._dynamo.mark_dynamic(ember.randn(2, 3), -3), IndexError),
    (lambda: ember._dynamo.mark_static([1, 2], 0), TypeError),
])
def test_mark_dynamic_bad_arguments(call, err):
    with pytest.raises(err):
        call()


def test_a_size_no_expression_gives_stays_static_and_correct():
    def f(x):  # x.shape[0] // 2 is neither a dimension, a product nor a sum of one
        return x.reshape(x.shape[0] // 2, -1).sum(1)
    cf = ember.compile(f)
    for n in (4, 8, 6, 10):
        x = ember.randn(n, 3)
        np.testing.assert_allclose(cf(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert _frames() == 4 and counters["stats"]["dynamic_graphs"] == 0


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(9, 8)
        self.lstm = nn.LSTM(8, 12, batch_first=True)
        self.head = nn.Linear(12, 9)

    def forward(self, x):
        out, _ = self.lstm(self.emb(x))
        return self.head(out).reshape(-1, 9)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(9, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.head = nn.Linear(8, 9)

    def forward(self, x):
        return self.head(self.enc(self.emb(x))).reshape(-1, 9)


# (model, (batch, length) per step, captures): an LSTM's fused layer takes the sequence length
# as a tuple of per-step batch sizes, so only its batch is dynamic; attention takes any length
@pytest.mark.parametrize("model, shapes, frames", [
    (LM, ((2, 5), (3, 5), (4, 5), (3, 5), (5, 5), (2, 5)), 2),
    (LM, ((2, 5), (2, 6), (2, 5)), 2),
    (Encoder, ((2, 5), (2, 7), (2, 9), (3, 7), (3, 4), (2, 6)), 3),
])
def test_varying_batch_and_sequence_length(model, shapes, frames):
    def run(compiled):
        ember.manual_seed(0)
        model_ = model()
        opt = ember.optim.SGD(model_.parameters(), lr=0.1, momentum=0.9)

        def loss_fn(x, y):
            return F.cross_entropy(model_(x), y.reshape(-1))
        f = ember.compile(loss_fn) if compiled else loss_fn
        g = ember.Generator().manual_seed(1)
        losses = []
        for b, t in shapes:
            x = ember.randint(0, 9, (b, t), generator=g)
            y = ember.randint(0, 9, (b, t), generator=g)
            opt.zero_grad()
            loss = f(x, y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.detach().numpy().copy() for p in model_.parameters()]
    got, gp = run(True)
    assert _frames() == frames
    want, wp = run(False)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gp, wp):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_generated_code_is_kept_for_a_bounded_number_of_sizes(monkeypatch):
    monkeypatch.setattr(ember._dynamo.config, "dynamic_instance_limit", 3)
    f = ember.compile(lambda x: (x * 3).sum(1))
    for n in (2, 3, 4, 5, 6, 7, 4, 2):
        x = ember.randn(n, 2)
        np.testing.assert_allclose(f(x).numpy(), (x * 3).sum(1).numpy(), rtol=1e-6)
    from ember._dynamo.eval_frame import _CACHE
    cache = next(iter(_CACHE.values()))
    assert len(cache.instances) <= 3 and all(len(d[2].instances) <= 3 for d in cache.dynamic)
    assert _frames() == 2


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3))


def test_dynamic_true_makes_the_first_call_size_generic():
    out = []
    for compiled in (True, False):
        ember.manual_seed(0)
        m = _mlp()
        f = ember.compile(m, dynamic=True) if compiled else m
        g = ember.Generator().manual_seed(1)
        res = []
        for i, b in enumerate((4, 6, 9, 4, 17)):
            x = ember.randn(b, 6, generator=g).requires_grad_()
            y = f(x)
            y.pow(2).sum().backward()
            res.append((y.detach().numpy().copy(), x.grad.numpy().copy()))
            if compiled and i == 0:  # the graph is generic after the first call
                assert counters["stats"]["dynamic_graphs"] == 1 and _frames() == 1
        out.append(res)
    assert _frames() == 1 and counters["stats"]["unique_graphs"] == 1
    # sizes 6 and 9 replayed (the fit from 4 and 6, checked at 9), 17 from the generic region
    assert counters["stats"]["dynamic_instances"] == 2
    assert counters["stats"]["generic_regions"] == 1 and \
        counters["stats"]["generic_instances"] == 1
    for (a, ga), (b, gb) in zip(*out):  # dropout's stream as eager's (the grown run drew)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-7)


def test_dynamic_true_makes_every_dim_generic_where_the_function_allows():
    f = ember.compile(lambda x, y: (x * 2).softmax(-1) + y, dynamic=True)
    for shape in ((3, 5), (4, 9), (7, 2)):
        x, y = ember.randn(*shape), ember.randn(shape[1])
        np.testing.assert_allclose(f(x, y).numpy(), ((x * 2).softmax(-1) + y).numpy(),
                                   rtol=1e-6)
    assert _frames() == 1 and counters["stats"]["dynamic_graphs"] == 1


def test_dynamic_true_on_batch_norm_in_training_is_generic_from_the_first_call():
    # the second capture updates the running statistics too: they are put back after it
    got, got_bufs = _run(True, [4, 7, 9], dynamic=True)
    assert _frames() == 1 and counters["stats"]["dynamic_graphs"] == 1
    want, want_bufs = _run(False, [4, 7, 9])
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_bufs, want_bufs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_dynamic_true_where_no_size_may_vary_stays_static():
    f = ember.compile(lambda x: x.view(4, 6).sum(0), dynamic=True)  # a baked size
    x = ember.randn(24)
    np.testing.assert_allclose(f(x).numpy(), x.view(4, 6).sum(0).numpy(), rtol=1e-6)
    assert counters["stats"]["dynamic_graphs"] == 0 and _frames() == 1
