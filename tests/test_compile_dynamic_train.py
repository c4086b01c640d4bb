"""ember.compile(dynamic=True) on whole training steps (zero_grad, forward, ahead-of-time
backward, optimizer step): one capture serves every batch size >= 2 (and sequence length where
the ops allow) from the first call, with eager's numbers; sizes 0 and 1 specialise, as
PyTorch's."""
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo.utils import counters
from test_compile import MLP
from test_compile_dynamic import LM as LSTMLM, _frames
from test_compile_step import LeNetBN

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


class GPT(nn.Module):
    """GPT-mini as people write it: positions ``arange(T)`` and the causal mask cut to
    ``T`` at each call; a mean over the sequence too."""

    def __init__(self, vocab=11, d=16, block=16):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        self.block = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.1, batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block))

    def forward(self, idx):
        B, T = idx.shape
        x = self.tok(idx) + self.pos(ember.arange(T))
        x = self.block(x, src_mask=self.mask[:T, :T], is_causal=True)
        x = self.norm(x)
        # a mean over the sequence, broadcast back over it
        return (self.head(x) + 0.1 * x.mean(1, keepdim=True).sum(-1, keepdim=True)).reshape(
            B * T, -1)


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _batch(name, b, t, g):
    if name == "mlp":
        return ember.randn(b, 12, generator=g), ember.randint(0, 5, (b,), generator=g)
    if name == "lenet":
        return ember.randn(b, 1, 10, 10, generator=g), ember.randint(0, 5, (b,), generator=g)
    if name == "gpt":
        return ember.randint(0, 11, (b, t), generator=g), \
            ember.randint(0, 11, (b * t,), generator=g)
    return ember.randint(0, 9, (b, t), generator=g), ember.randint(0, 9, (b * t,), generator=g)


MODELS = {"mlp": MLP, "lenet": LeNetBN, "gpt": GPT, "lstm": LSTMLM}


def _setup(name, compiled, dynamic=True):
    """A model, its Adam and the training step (compiled or not)."""
    ember.manual_seed(0)
    model = MODELS[name]()
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)

    def train_step(x, y):
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        opt.step()
        return loss
    return model, opt, ember.compile(train_step, dynamic=dynamic) if compiled else train_step


def _trajectory(name, shapes, compiled, dynamic=True):
    """Losses, parameters, buffers and Adam's state after a training step per (batch, length)
    of ``shapes``."""
    model, opt, f = _setup(name, compiled, dynamic)
    g = ember.Generator().manual_seed(1)
    losses, frames = [], []
    for b, t in shapes:
        x, y = _batch(name, b, t, g)
        losses.append(float(f(x, y)))
        frames.append(_frames())
    state = [v.numpy().copy() for s in opt.state.values() for v in s.values()
             if isinstance(v, ember.Tensor)]
    return (losses, [p.detach().numpy().copy() for p in model.parameters()],
            [b.numpy().copy() for b in model.buffers()], state, frames)


def _assert_same(got, want):
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for part in (1, 2, 3):
        assert len(got[part]) == len(want[part])
        for a, b in zip(got[part], want[part]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# (model, (batch, length) per step): sizes >= 2, the first call's size back in the middle;
# the LSTM's fused layer takes its per-step batch sizes as a tuple as long as the sequence
# (``(B,) * T``, a ``Rep`` of the two captures)
CASES = {
    "mlp": [(8, 0), (3, 0), (13, 0), (8, 0), (2, 0), (21, 0), (5, 0)],
    "lenet": [(4, 0), (6, 0), (2, 0), (9, 0), (4, 0), (3, 0)],
    "gpt": [(3, 6), (2, 6), (4, 9), (3, 4), (5, 2), (2, 11), (3, 6)],
    "lstm": [(3, 5), (4, 5), (2, 7), (7, 3), (3, 5), (5, 9), (2, 2)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_dynamic_true_training_step_is_generic_from_the_first_call(name):
    got = _trajectory(name, CASES[name], True)
    assert counters["stats"]["dynamic_graphs"] == 1
    assert got[4] == [1] * len(CASES[name])  # one capture for every size: no recompile
    # the first new sizes replay the graph; from the fourth on one region serves every size
    assert counters["stats"]["generic_regions"] == 1 and \
        counters["stats"]["generic_instances"] >= 1
    _assert_same(got, _trajectory(name, CASES[name], False))


def test_size_one_specialises_once_as_pytorch():
    # PyTorch specialises sizes 0 and 1 (broadcasting and squeezes depend on them): a batch
    # of 1 gets its own graph once; the generic one keeps serving every size >= 2
    shapes = [(8, 0), (1, 0), (5, 0), (1, 0), (3, 0)]
    got = _trajectory("mlp", shapes, True)
    assert got[4] == [1, 2, 2, 2, 2]
    _assert_same(got, _trajectory("mlp", shapes, False))


def test_the_automatic_path_makes_a_training_step_dynamic_at_a_second_size():
    shapes = [(8, 0), (3, 0), (13, 0), (8, 0), (2, 0)]
    got = _trajectory("mlp", shapes, True, dynamic=None)
    assert got[4] == [1, 2, 2, 2, 2] and counters["stats"]["dynamic_graphs"] == 1
    _assert_same(got, _trajectory("mlp", shapes, False))


def test_dynamic_false_recompiles_each_size():
    shapes = [(8, 0), (3, 0), (8, 0), (5, 0)]
    got = _trajectory("mlp", shapes, True, dynamic=False)
    assert got[4] == [1, 2, 2, 3] and counters["stats"]["dynamic_graphs"] == 0
    _assert_same(got, _trajectory("mlp", shapes, False))


def test_a_size_no_expression_gives_specialises_and_says_so(monkeypatch, capsys):
    # n // 2 is no product or sum of the inputs' sizes: under dynamic=True the graph stays
    # per size, each new size recompiles (never a wrong reshape), and the log says why
    monkeypatch.setenv("EMBER_LOGS", "recompiles")

    def f(x):
        return x.reshape(x.shape[0] // 2, -1).sum(1)
    cf = ember.compile(f, dynamic=True)
    for n in (8, 6, 10, 8):
        x = ember.randn(n, 3)
        np.testing.assert_allclose(cf(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert _frames() == 3  # (its dim 1 may be dynamic: the reshape allows it)
    err = capsys.readouterr().err
    assert "stay static" in err and "is not a product or sum" in err


class Stats(nn.Module):
    """Batch norm statistics and in-place writes into a buffer and into the input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.register_buffer("seen", ember.zeros(8))

    def forward(self, x):
        x = x.clone()
        x.mul_(0.5)  # an in-place write on a tensor the graph computes
        h = self.bn(self.fc(x))
        with ember.no_grad():
            self.seen.add_(h.detach().abs().mean(0))  # a buffer written in place
        return h.relu().mean() + h.var(0).sum()


@pytest.mark.parametrize("dynamic", [True, None])
def test_batch_norm_statistics_and_in_place_writes_under_dynamic(dynamic):
    def run(compiled):
        ember.manual_seed(0)
        m = Stats()
        opt = ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

        def step(x):
            opt.zero_grad()
            loss = m(x)
            loss.backward()
            opt.step()
            return loss
        f = ember.compile(step, dynamic=dynamic) if compiled else step
        g = ember.Generator().manual_seed(2)
        out = [float(f(ember.randn(b, 6, generator=g))) for b in (4, 7, 2, 9, 4, 5)]
        return out, [t.detach().numpy().copy() for t in (*m.parameters(), *m.buffers())]
    got, got_state = run(True)
    assert _frames() == (1 if dynamic else 2) and counters["stats"]["dynamic_graphs"] == 1
    want, want_state = run(False)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(got_state, want_state):  # running stats, num_batches_tracked, `seen`
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_second_run_leaves_no_trace():
    # dynamic=True runs the function once more at other sizes: parameters, gradients,
    # optimizer state, buffers, version counters and the random stream are as eager leaves them
    def run(compiled):
        m, opt, f = _setup("mlp", compiled)
        g = ember.Generator().manual_seed(1)
        f(*_batch("mlp", 6, 0, g))
        return ([p.detach().numpy().copy() for p in m.parameters()],
                [p.grad.numpy().copy() for p in m.parameters()],
                [p._version for p in m.parameters()],
                [v.numpy().copy() for s in opt.state.values() for v in s.values()],
                ember.rand(3).numpy())
    got, want = run(True), run(False)
    assert counters["stats"]["dynamic_graphs"] == 1
    assert got[2] == want[2]
    for a, b in zip(got, want):
        if isinstance(a, list):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b)


def test_guards_of_a_dynamic_dim_check_rank_and_dtype():
    f = ember.compile(lambda x: x.reshape(x.shape[0], -1).mean(1), dynamic=True)
    for x in (ember.randn(4, 3, 2), ember.randn(7, 3, 2), ember.randn(5, 3, 2).double(),
              ember.randn(6, 6)):
        np.testing.assert_allclose(f(x).numpy(), x.reshape(x.shape[0], -1).mean(1).numpy(),
                                   rtol=1e-6)
    assert _frames() == 3  # float64 and the rank change recompile; 7 does not


def test_mark_static_keeps_a_dim_static_under_dynamic_true():
    f = ember.compile(lambda x: (x * 2).sum(1), dynamic=True)
    for n in (3, 5, 9):
        x = ember.randn(n, 4)
        ember._dynamo.mark_static(x, 0)
        np.testing.assert_allclose(f(x).numpy(), (x * 2).sum(1).numpy(), rtol=1e-6)
    assert _frames() == 3  # dim 1 may be dynamic, dim 0 never


hyp = pytest.importorskip("hypothesis")
st = hyp.strategies


@hyp.settings(max_examples=15, deadline=None)
@hyp.given(st.lists(st.tuples(st.integers(2, 9), st.integers(2, 9)), min_size=2, max_size=5))
def test_size_dependent_ops_over_random_sizes_equal_torch(shapes):
    import torch
    ember.compiler.reset()
    counters.clear()

    def f(x, mod):
        B, T = x.shape[0], x.shape[1]
        h = x.reshape(B * T, -1) * mod.arange(T).repeat(B).reshape(-1, 1)
        return h.view(B, T, -1).mean(1).softmax(-1) + x.mean((0, 1))
    cf = ember.compile(f, dynamic=True)
    rng = np.random.default_rng(0)
    # first sizes that differ from each other and from the feature size: dims of one size
    # are guarded equal (duck shaping), so a later call where they differ would recompile
    for b, t in [(5, 4)] + shapes:
        v = rng.standard_normal((b, t, 3))
        xe, xt = ember.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
        ye, yt = cf(xe, ember), f(xt, torch)
        (ye * ye).sum().backward()
        (yt * yt).sum().backward()
        np.testing.assert_allclose(ye.detach().numpy(), yt.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), rtol=1e-10)
    assert _frames() == 1


def test_a_detached_operand_stays_detached_at_new_sizes():
    # x.detach() leaves no node of its own (its array is x's): the graph's replay at a new
    # size must pass it detached, or the gradient doubles
    f = ember.compile(lambda x: (x * x.detach()).sum() + x.detach().exp().mean())
    for n in (3, 5, 7, 9, 11, 13):
        x = ember.randn(n, requires_grad=True)
        f(x).backward()
        np.testing.assert_allclose(x.grad.numpy(), x.detach().numpy(), rtol=1e-6)
    assert _frames() == 2 and counters["stats"]["generic_instances"] >= 1


def test_a_fit_holds_only_for_the_sizes_that_varied():
    # regions fitted at (3, 2) and (3, 3) learn nothing about the first dim: (2, 2) must not
    # take their constants for it
    def f(x):
        B, T = x.shape[0], x.shape[1]
        return x.reshape(B * T, -1).view(B, T, -1).mean(1).softmax(-1)
    cf = ember.compile(f, dynamic=True)
    for shape in ((5, 4, 3), (3, 2, 3), (3, 3, 3), (3, 4, 3), (2, 2, 3), (6, 5, 2)):
        x = ember.randn(*shape)
        np.testing.assert_allclose(cf(x).numpy(), f(x).numpy(), rtol=1e-6)
    assert _frames() == 1


def test_an_input_written_in_place_is_written_once_at_the_first_call():
    # the weight refuses other feature sizes, so the second capture that succeeds resizes only
    # x's batch and passes acc as it is: its write into acc is put back
    w = ember.randn(3, 5)

    def f(x, acc):
        h = x @ w
        acc.add_(h.sum(0))
        return h.relu().sum(1)
    cf = ember.compile(f, dynamic=True)
    acc, want_acc = ember.zeros(5), ember.zeros(5)
    g = ember.Generator().manual_seed(4)
    for n in (4, 6, 2, 9):
        x = ember.randn(n, 3, generator=g)
        np.testing.assert_allclose(cf(x, acc).numpy(), f(x, want_acc).numpy(), rtol=1e-6)
        np.testing.assert_allclose(acc.numpy(), want_acc.numpy(), rtol=1e-6)
    assert _frames() == 1 and acc._version == want_acc._version
