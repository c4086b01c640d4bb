"""One compiled region for every size of a dynamic graph (NOTE [ Size-generic regions ]):
numbers and gradients equal eager's and torch's at many sizes, one fitted region after the
check at a third size (counters), fits that a third size refutes fall back, dropout's stream
as eager's."""
import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo import dynamic
from ember._dynamo.backends import _region
from ember._dynamo.utils import counters
from ember._functorch.generic import GenericRegion, NoFit, _fit
from ember.fx.experimental.proxy_tensor import make_fx
from test_compile_dynamic import LM  # the small LSTM LM both files train


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _stats(name):
    return counters["stats"][name]


# ---- the fit ------------------------------------------------------------------------------

@pytest.mark.parametrize("va, vb, sa, sb, at, want", [
    (8, 16, (8,), (16,), (5,), 5),                   # a dimension
    (24, 48, (8,), (16,), (5,), 15),                 # times a constant
    (9, 17, (8,), (16,), (5,), 6),                   # plus a constant
    (80, 96, (8, 10), (8, 12), (3, 7), 56),          # one of two dims
    (80, 192, (8, 10), (16, 12), (3, 7), 21),        # their product (both changed)
    (8.0, 16.0, (8,), (16,), (5,), 5.0),             # a float count
    (1 / 8, 1 / 16, (8,), (16,), (5,), 1 / 5),       # a mean's reciprocal scale
    ((8, 3), (16, 3), (8,), (16,), (5,), (5, 3)),    # inside a shape
    ("x", "x", (8,), (16,), (5,), "x"),
])
def test_fit_reproduces_both_points_and_extends(va, vb, sa, sb, at, want):
    from ember._functorch.generic import _eval
    node = _fit(va, vb, sa, sb)
    assert _eval(node, sa) == va and _eval(node, sb) == vb
    got = _eval(node, at)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("va, vb", [
    (4, 5),          # n // 2 at 8 and 10: no integer slope
    (0.3, 0.7),      # no size expression
    ((8, 3), (8, 3, 1)),
    ("a", "b"),
    (8, 8.0),
])
def test_fit_refuses_what_sizes_cannot_give(va, vb):
    with pytest.raises(NoFit):
        _fit(va, vb, (8,), (10,))


def _region_at(fn, n, k=3):
    x = ember.randn(n, k, requires_grad=True)
    gm = make_fx(fn)(x)
    return _region(gm, [x]), x


def test_a_fit_a_third_size_refutes_is_not_trusted():
    # 2 * (n // 2) is n at 8 and 10 (the fit: n) but 8 at 9: the region built at 9 says so
    def f(x):
        m = 2 * (x.shape[0] // 2)
        return (x[:m] * 2).sum(0)
    a, _ = _region_at(f, 8)
    b, _ = _region_at(f, 10)
    c, _ = _region_at(f, 9)
    fit = GenericRegion(a, b, (8,), (10,))
    assert not fit.matches(c, (9,))
    d, _ = _region_at(f, 12)
    assert fit.matches(d, (12,))

    def g(x):
        return (x[:x.shape[0]] * 2).sum(0)
    fit = GenericRegion(_region_at(g, 8)[0], _region_at(g, 10)[0], (8,), (10,))
    assert fit.matches(_region_at(g, 9)[0], (9,))


def test_the_generic_region_at_a_size_computes_what_one_built_there_computes():
    def f(x):
        h = F.relu(x @ x.t()) * 0.5
        return h.reshape(-1).mean() + h.sum(1).pow(2).mean()
    a, _ = _region_at(f, 8)
    b, _ = _region_at(f, 16)
    fit = GenericRegion(a, b, (8,), (16,))
    c, xc = _region_at(f, 11)
    assert fit.matches(c, (11,))
    r = fit.at((11,))
    assert r.forward_src == c.forward_src
    x1 = xc.detach().clone().requires_grad_()
    x2 = xc.detach().clone().requires_grad_()
    y1, y2 = r(x1), c(x2)
    y1.backward()
    y2.backward()
    assert y1.item() == y2.item()
    np.testing.assert_array_equal(x1.grad.numpy(), x2.grad.numpy())


# ---- through ember.compile --------------------------------------------------------------

SIZES = [8, 16, 5, 33, 7, 12, 40, 3, 21, 16]


def _mlp(dropout):
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 4))


@pytest.mark.parametrize("dtype", [ember.float32, ember.float64])
def test_mlp_at_many_sizes_equals_eager_with_dropouts_stream(dtype):
    def run(compiled):
        ember.manual_seed(0)
        model = _mlp(0.25).to(dtype)

        def loss_fn(x, y):
            return F.cross_entropy(model(x), y)
        f = ember.compile(loss_fn) if compiled else loss_fn
        g = ember.Generator().manual_seed(1)
        out = []
        for n in SIZES:
            x = ember.randn(n, 6, generator=g, dtype=dtype).requires_grad_()
            y = ember.randint(0, 4, (n,), generator=g)
            model.zero_grad()
            loss = f(x, y)
            loss.backward()
            out.append([loss.item(), x.grad.numpy().copy()] +
                       [p.grad.numpy().copy() for p in model.parameters()])
        return out
    got = run(True)
    # sizes 8 and 16 captured and fitted, 5 replayed and checked, the rest from the one region
    assert _stats("generic_regions") == 1 and _stats("dynamic_instances") == 1
    assert _stats("generic_instances") == len(set(SIZES)) - 3
    want = run(False)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == ember.float32 else dict(rtol=1e-12)
    for a, b in zip(got, want):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, **tol)


def test_mlp_equals_torch_at_many_sizes():
    ember.manual_seed(0)
    model = _mlp(0.0).double()
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                 torch.nn.Linear(16, 4)).double()
    with torch.no_grad():
        for (_, p), tp in zip(model.named_parameters(), tmodel.parameters()):
            tp.copy_(torch.from_numpy(p.detach().numpy()))
    f = ember.compile(lambda x: model(x).tanh().sum())
    rng = np.random.default_rng(0)
    for n in SIZES:
        xa = rng.standard_normal((n, 6))
        x = ember.tensor(xa, requires_grad=True)
        tx = torch.tensor(xa, requires_grad=True)
        f(x).backward()
        tmodel(tx).tanh().sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert _stats("generic_regions") == 1


class GPT(nn.Module):
    def __init__(self, dropout=0.1):
        super().__init__()
        self.tok = nn.Embedding(11, 16)
        self.pos = nn.Embedding(6, 16)
        self.block = nn.TransformerEncoderLayer(16, 2, 32, dropout=dropout, batch_first=True,
                                                norm_first=True)
        self.head = nn.Linear(16, 11)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(6),
                             persistent=False)
        self.register_buffer("positions", ember.arange(6), persistent=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(self.positions)
        return self.head(self.block(x, src_mask=self.mask, is_causal=True)).reshape(-1, 11)


class Block(nn.Module):
    """A ResNet basic block: conv-bn-relu-conv-bn + identity, relu."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(3)
        self.c2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(3)

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(h)) + x).mean((2, 3))


def _tokens(g, n, t, vocab):
    return ember.randint(0, vocab, (n, t), generator=g)


# (model, a batch of inputs and targets, whole training step): each trains several steps at
# varying batch sizes compiled and eagerly; losses and parameters must agree
@pytest.mark.parametrize("make, data, whole", [
    (GPT, lambda g, n: (_tokens(g, n, 6, 11), _tokens(g, n, 6, 11).reshape(-1)), False),
    (GPT, lambda g, n: (_tokens(g, n, 6, 11), _tokens(g, n, 6, 11).reshape(-1)), True),
    (LM, lambda g, n: (_tokens(g, n, 5, 9), _tokens(g, n, 5, 9).reshape(-1)), False),
    (Block, lambda g, n: (ember.randn(n, 3, 5, 5, generator=g),
                          ember.randint(0, 3, (n,), generator=g)), False),
], ids=["gpt", "gpt-whole-step", "lstm", "resnet-block"])
def test_models_train_at_many_batch_sizes_as_eager(make, data, whole):
    sizes = [4, 6, 3, 5, 8, 2, 7, 6]

    def run(compiled):
        ember.manual_seed(0)
        model = make()
        opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def loss_fn(x, y):
            return F.cross_entropy(model(x), y)

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            opt.step()
            return loss
        f = ember.compile(step if whole else loss_fn) if compiled else None
        g = ember.Generator().manual_seed(1)
        losses = []
        for n in sizes:
            x, y = data(g, n)
            if whole:
                loss = (f or step)(x, y)
            else:
                opt.zero_grad()
                loss = (f or loss_fn)(x, y)
                loss.backward()
                opt.step()
            losses.append(loss.item())
        return losses, [t.detach().numpy().copy() for t in
                        list(model.parameters()) + list(model.buffers())]
    got, gp = run(True)
    assert _stats("generic_regions") == 1 and _stats("generic_instances") >= 1
    want, wp = run(False)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gp, wp):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_per_size_path_when_generic_regions_are_off(monkeypatch):
    monkeypatch.setattr(dynamic, "GENERIC", False)
    f = ember.compile(lambda x: (x * 3).sum(1).mean())
    for n in (4, 6, 9, 11, 13):
        x = ember.randn(n, 2)
        np.testing.assert_allclose(f(x).numpy(), (x * 3).sum(1).mean().numpy(), rtol=1e-6)
    assert _stats("generic_regions") == 0 and _stats("dynamic_instances") == 3


def test_create_graph_through_a_generic_instance_recomputes_at_its_size():
    f = ember.compile(lambda x: (x.tanh() * x).sum())
    for n in (4, 6, 9, 11):
        x = ember.randn(n, 3, dtype=ember.float64, requires_grad=True)
        (gx,) = ember.autograd.grad(f(x), x, create_graph=True)
        gx.sum().backward()
        tx = torch.tensor(x.detach().numpy(), requires_grad=True)
        (tg,) = torch.autograd.grad((tx.tanh() * tx).sum(), tx, create_graph=True)
        tg.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
    assert _stats("generic_instances") == 1


def test_refuted_fits_keep_the_per_size_path_with_eagers_numbers(monkeypatch):
    from ember._functorch import generic
    monkeypatch.setattr(generic.GenericRegion, "matches", lambda self, r, s: False)
    head = nn.Linear(3, 2)
    f = ember.compile(lambda x: F.relu(head(x)).mean(0))
    sizes = (4, 6, 9, 11, 13, 15, 17, 19)
    for n in sizes:
        x = ember.randn(n, 3)
        np.testing.assert_allclose(f(x).detach().numpy(),
                                   F.relu(head(x)).mean(0).detach().numpy(), rtol=1e-6)
    # each size after the two captures replayed; fitting stopped after three misfits
    assert _stats("generic_regions") == 0 and _stats("generic_instances") == 0
    assert _stats("dynamic_instances") == len(sizes) - 2
