"""ember.compile: compiled training equals eager ember; guards, breaks, errors as PyTorch's."""
import copy
import re
import warnings

import numpy as np
import pytest
import torch

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo import config, exc
from ember._functorch import CompiledRegion


@pytest.fixture(autouse=True)
def _fresh_cache():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


# ---- models: (build, inputs, loss) ------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 5))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class GPT(nn.Module):
    def __init__(self, vocab=11, d=16, seq=6):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.block = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.1, batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))
        self.register_buffer("positions", ember.arange(seq))

    def forward(self, idx):
        x = self.tok(idx) + self.pos(self.positions)
        x = self.block(x, src_mask=self.mask, is_causal=True)
        return self.head(self.norm(x)).reshape(-1, 11)


class ResBlock(nn.Module):
    def __init__(self, c=4):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)) + x)
        return self.head(out.mean((2, 3)))


class LSTMLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(9, 8)
        self.lstm = nn.LSTM(8, 12)
        self.head = nn.Linear(12, 9)

    def forward(self, x):
        out, _ = self.lstm(self.emb(x))
        return self.head(out).reshape(-1, 9)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.enc(x).mean(1))


def _data(name):
    g = ember.Generator().manual_seed(1)
    if name == "mlp":
        return ember.randn(8, 12, generator=g), ember.randint(0, 5, (8,), generator=g)
    if name == "lenet":
        return ember.randn(4, 1, 10, 10, generator=g), ember.randint(0, 5, (4,), generator=g)
    if name == "gpt":
        return ember.randint(0, 11, (3, 6), generator=g), ember.randint(0, 11, (18,),
                                                                         generator=g)
    if name == "resnet":
        return ember.randn(4, 4, 5, 5, generator=g), ember.randint(0, 3, (4,), generator=g)
    if name == "lstm":
        return ember.randint(0, 9, (5, 3), generator=g), ember.randint(0, 9, (15,),
                                                                        generator=g)
    return ember.randn(3, 5, 8, generator=g), ember.randint(0, 4, (3,), generator=g)


MODELS = {"mlp": MLP, "lenet": LeNet, "gpt": GPT, "resnet": ResBlock, "lstm": LSTMLM,
          "encoder": Encoder}


def _train(name, compiled, steps, train=True, dtype=ember.float32):
    ember.manual_seed(0)
    model = MODELS[name]().to(dtype)
    model.train(train)
    x, y = _data(name)
    if x.dtype.is_floating_point:
        x = x.to(dtype)
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn(x, y):
        return F.cross_entropy(model(x), y)
    f = ember.compile(loss_fn) if compiled else loss_fn
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = f(x, y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses, [p.detach().numpy().copy() for p in model.parameters()], \
        [b.numpy().copy() for b in model.buffers()], f


@pytest.mark.parametrize("name", list(MODELS))
def test_twenty_training_steps_equal_eager(name):
    eager = _train(name, False, 20)
    comp = _train(name, True, 20)
    np.testing.assert_allclose(comp[0], eager[0], rtol=1e-5)
    for a, b in zip(comp[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(comp[2], eager[2]):  # batch norm running stats (and its counter)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    entry = comp[3].explained
    assert entry.breaks == [] and isinstance(entry.compiled, CompiledRegion)


@pytest.mark.parametrize("name", ["mlp", "resnet", "encoder", "gpt"])
def test_eval_mode_and_float64_equal_eager(name):
    eager = _train(name, False, 3, train=False, dtype=ember.float64)
    comp = _train(name, True, 3, train=False, dtype=ember.float64)
    np.testing.assert_allclose(comp[0], eager[0], rtol=1e-10)
    for a, b in zip(comp[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_outputs_and_gradients_match_torch():
    xs = np.random.default_rng(0).standard_normal((4, 3))
    ws = np.random.default_rng(1).standard_normal((3, 2))

    def body(m):
        def f(x, w):
            return (m.tanh(x @ w) * 2).exp().sum(0)
        return f
    ex, ew = ember.tensor(xs, requires_grad=True), ember.tensor(ws, requires_grad=True)
    tx, tw = torch.tensor(xs, requires_grad=True), torch.tensor(ws, requires_grad=True)
    cf = ember.compile(body(ember))
    for _ in range(2):  # the capture call, then the compiled one
        ex.grad = ew.grad = None
        out = cf(ex, ew)
        out.sum().backward()
    ref = body(torch)(tx, tw)
    ref.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-12)
    assert out.grad_fn.name() == "CompiledFunctionBackward"


def test_inference_mode_batch_one():
    ember.manual_seed(0)
    model = MLP().eval()
    cm = ember.compile(model)
    x = ember.randn(1, 12)
    with ember.inference_mode():
        for _ in range(2):
            out = cm(x)
    np.testing.assert_array_equal(out.numpy(), model(x).detach().numpy())
    assert not out.requires_grad


def test_module_compile_method_and_optimized_module():
    ember.manual_seed(0)
    m = MLP()
    ref = copy.deepcopy(m)
    m.compile()
    x = ember.randn(2, 12)
    m.eval()
    ref.eval()
    for _ in range(2):
        np.testing.assert_array_equal(m(x).detach().numpy(), ref(x).detach().numpy())
    om = ember.compile(ref)
    assert list(om.state_dict())[0] == "_orig_mod.net.0.weight"  # PyTorch's prefix
    assert om._orig_mod is ref and om.net is ref.net


# ---- guards and recompiles ------------------------------------------------------------------

def _entries():
    from ember._dynamo.eval_frame import _CACHE
    return sum(len(c.entries) for c in _CACHE.values())


def test_guards_recompile_on_shape_grad_mode_and_training():
    ember.manual_seed(0)
    m = MLP()
    cf = ember.compile(lambda x: m(x).sum())
    x = ember.randn(4, 12)
    cf(x)
    cf(x)
    assert _entries() == 1
    cf(ember.randn(6, 12))                       # new batch size
    with ember.no_grad():                        # grad mode
        cf(x)
    m.eval()                                      # training flag
    a = cf(x)
    assert _entries() == 4
    np.testing.assert_allclose(a.detach().numpy(), m(x).sum().detach().numpy(), rtol=1e-6)
    cg = ember.compile(lambda t: t * 2)
    cg(ember.ones(2))
    assert cg(ember.ones(2, dtype=ember.float64)).dtype == ember.float64  # dtype
    assert cg(ember.ones(2, 4).t()[0]).tolist() == [2.0, 2.0]            # strides


def test_reassigned_parameter_recompiles_and_is_never_stale():
    ember.manual_seed(0)
    lin = nn.Linear(3, 2)
    cf = ember.compile(lambda x: lin(x))
    x = ember.randn(4, 3)
    cf(x)
    cf(x)
    lin.weight = nn.Parameter(ember.ones(2, 3))
    np.testing.assert_allclose(cf(x).detach().numpy(), lin(x).detach().numpy(), rtol=1e-6)
    with ember.no_grad():  # an in-place update is seen (parameters are read at each call)
        lin.bias.add_(1.0)
    np.testing.assert_allclose(cf(x).detach().numpy(), lin(x).detach().numpy(), rtol=1e-6)
    lin.bias.data = ember.zeros(1)  # a captured tensor's shape changed: recompiles
    np.testing.assert_allclose(cf(x).detach().numpy(), lin(x).detach().numpy(), rtol=1e-6)


def test_cache_size_limit_warns_once_then_runs_eagerly(monkeypatch):
    monkeypatch.setattr(config, "cache_size_limit", 2)

    def f(x):
        return x * 2
    cf = ember.compile(f)
    cf(ember.ones(1))
    cf(ember.ones(2))
    with pytest.warns(UserWarning, match="cache_size_limit"):
        out = cf(ember.ones(3))
    np.testing.assert_array_equal(out.numpy(), [2.0, 2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf(ember.ones(4))  # warned once


# ---- graph breaks ---------------------------------------------------------------------------

def _item(x):
    return x * x.sum().item()


def _int(x):
    return x * int(x.sum() > 0)


def _tolist(x):
    return x * len(x.tolist())


def _numpy(x):
    return x + float(x.detach().numpy().sum())


def _nonzero(x):
    # (not x[nonzero(...)]: a tensor index is a break of its own, NOTE [ Tensor indices ])
    return x.sum() * ember.nonzero(x > 0).float().sum()


def _printing(x):
    print("value", x.shape)
    return x + 1


def _backward_inside(x):
    y = (x * 2).sum()
    return y + ember.autograd.grad(y, x)[0].sum()


BREAKS = [(_item, "Tensor.item()"), (_int, "int(tensor)"), (_tolist, "Tensor.tolist()"),
          (_numpy, "Tensor.numpy()"), (_nonzero, "nonzero"), (_printing, "print()"),
          (_backward_inside, "autograd.grad")]


@pytest.mark.parametrize("fn,what", BREAKS, ids=[b[1] for b in BREAKS])
def test_graph_breaks_fall_back_to_eager_and_fullgraph_raises(fn, what, capsys):
    x = ember.randn(5, requires_grad=fn is _backward_inside)
    cf = ember.compile(fn)
    for _ in range(3):
        out = cf(x)
    x2 = ember.randn(5, requires_grad=fn is _backward_inside) + 3
    np.testing.assert_allclose(cf(x2).detach().numpy(), fn(x2).detach().numpy(), rtol=1e-6)
    report = ember.compiler.explain(fn)(x)
    assert report.graph_break_count == 1 and what in report.break_reasons[0].reason
    assert "test_compile.py" in report.break_reasons[0].user_stack[-1]
    ember.compiler.reset()
    with pytest.raises(exc.Unsupported, match="fullgraph") as e:
        ember.compile(fn, fullgraph=True)(x)
    assert what in str(e.value) and "test_compile.py" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    del out


def test_optimizer_step_inside_is_part_of_the_compiled_program():
    ember.manual_seed(0)
    lin = nn.Linear(3, 1)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1)
    x = ember.randn(4, 3)

    def step(x):
        opt.zero_grad()
        loss = lin(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss
    cf = ember.compile(step)
    losses = [float(cf(x)) for _ in range(4)]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) == 4
    assert ember.compiler.explain(step)(x).graph_break_count == 0  # one compiled program


def test_random_functions_replay_eagers_stream_and_other_draws_break():
    def f(x):
        return x + ember.randn(3) * ember.rand(3)
    cf = ember.compile(f)
    for seed in range(3):
        ember.manual_seed(seed)
        a = cf(ember.zeros(3))
        ember.manual_seed(seed)
        np.testing.assert_array_equal(a.numpy(), f(ember.zeros(3)).numpy())
    assert cf.explained.breaks == []

    def g(x):
        return x + ember.poisson(ember.ones(3))  # a draw outside any op
    report = ember.compiler.explain(g)(ember.zeros(3))
    assert "random" in report.break_reasons[0].reason
    cg = ember.compile(g)
    a = [cg(ember.zeros(3)) for _ in range(3)]
    assert not np.array_equal(a[1].numpy(), a[2].numpy())  # never a baked random tensor


def test_disable_and_is_compiling():
    seen = []

    @ember.compiler.disable
    def helper(x):
        seen.append(ember.compiler.is_compiling())
        return x + 1
    cf = ember.compile(lambda x: helper(x) * 2)
    cf(ember.ones(2))
    assert seen == [True]
    assert not ember.compiler.is_compiling()
    reasons = [b.reason for b in ember.compiler.explain(lambda x: helper(x) * 2)(
        ember.ones(2)).break_reasons]
    # helper's append to ``seen`` is a Python side effect too
    assert any("compiler.disable" in r for r in reasons) and len(reasons) <= 2


def test_create_graph_through_a_region_recomputes_eagers_graph():
    x = ember.randn(3, requires_grad=True, dtype=ember.float64)
    w = ember.randn(3, requires_grad=True, dtype=ember.float64)
    cf = ember.compile(lambda x: (x * x * w).sin().sum())
    cf(x)
    (g,) = ember.autograd.grad(cf(x), x, create_graph=True)
    (gg,) = ember.autograd.grad(g.sum(), x)
    xt, wt = [torch.tensor(t.detach().numpy(), requires_grad=True) for t in (x, w)]
    (tg,) = torch.autograd.grad((xt * xt * wt).sin().sum(), xt, create_graph=True)
    (tgg,) = torch.autograd.grad(tg.sum(), xt)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-12)
    # with dropout the forward's masks cannot be drawn again: it raises, never a wrong number
    cd = ember.compile(lambda x: F.dropout(x * x, 0.5).sum())
    cd(x)
    with pytest.raises(RuntimeError, match="random"):
        ember.autograd.grad(cd(x), x, create_graph=True)


def test_an_input_changed_in_place_before_backward_raises_as_eager():
    x = ember.randn(3, requires_grad=True)
    cf = ember.compile(lambda x: (x * 2).exp().sum())
    cf(x.clone())
    y0 = x.clone()
    out = cf(y0)
    with ember.no_grad():
        y0.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


# ---- backends and bad arguments -------------------------------------------------------------

def test_callable_backend_receives_graph_module_and_example_inputs():
    seen = []

    def my_backend(gm, example_inputs):
        seen.append((gm, example_inputs))
        return gm.forward
    cf = ember.compile(lambda x, y: x * y + 1, backend=my_backend)
    x, y = ember.ones(2), ember.full((2,), 3.0)
    cf(x, y)
    out = cf(x, y)
    gm, ex = seen[0]
    assert isinstance(gm, ember.fx.GraphModule) and ex[0] is x and ex[1] is y
    assert [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"] == \
        ["mul", "add"]
    np.testing.assert_array_equal(out.numpy(), [4.0, 4.0])


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_named_backends_agree(backend):
    ember.manual_seed(0)
    m = MLP().eval()
    cf = ember.compile(m, backend=backend)
    x = ember.randn(3, 12)
    cf(x)
    np.testing.assert_allclose(cf(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(backend="nope"), exc.InvalidBackend, "Invalid backend: 'nope'"),
    (dict(mode="bogus"), RuntimeError, "Unrecognized mode=bogus"),
    (dict(mode="default", options={}), RuntimeError, "Either mode or options"),
])
def test_bad_arguments_raise_as_torch(kwargs, err, match):
    with pytest.raises(err, match=match):
        ember.compile(lambda x: x, **kwargs)
    with pytest.raises(RuntimeError, match=match.split(":")[0]):
        torch.compile(lambda x: x, **kwargs)


def test_decorator_forms_and_logs(monkeypatch, capsys):
    @ember.compile
    def f(x):
        return x.sin() + 1

    @ember.compile(backend="eager", fullgraph=True)
    def g(x):
        return x.cos()
    x = ember.randn(3)
    monkeypatch.setenv("EMBER_LOGS", "graph,code,recompiles")
    f(x)
    f(ember.randn(4))
    g(x)
    err = capsys.readouterr().err
    assert "captured graph" in err and "def forward" in err and "recompiling" in err
    np.testing.assert_allclose(f(x).numpy(), (x.sin() + 1).numpy(), rtol=1e-6)


def test_second_backward_through_a_region_raises():
    x = ember.randn(3, requires_grad=True)
    cf = ember.compile(lambda x: (x.exp() * 2).sum())
    cf(x)
    y = cf(x)
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), (2 * x.exp()).detach().numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


SCALE = 2.0


def _scaled(x):
    return x * SCALE


def test_plain_attributes_and_globals_python_reads_are_guarded(monkeypatch):
    class Flag(nn.Module):
        def __init__(self):
            super().__init__()
            self.double = True

        def forward(self, x):
            return x * 2 if self.double else x
    m = Flag()
    cm = ember.compile(m)
    x = ember.ones(2)
    cm(x)
    assert cm(x).tolist() == [2.0, 2.0]
    m.double = False  # Python branched on it: a changed value recompiles
    assert cm(x).tolist() == [1.0, 1.0]
    cf = ember.compile(_scaled)
    cf(x)
    monkeypatch.setitem(globals(), "SCALE", 3.0)
    assert cf(x).tolist() == [3.0, 3.0]


def test_python_side_effects_break():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls
    m = Counter()
    cm = ember.compile(m)
    outs = [cm(ember.ones(1)).item() for _ in range(3)]
    assert outs == [1.0, 2.0, 3.0] and m.calls == 3
    assert "side effect" in ember.compiler.explain(Counter())(ember.ones(1)).break_reasons[0].reason


def test_autocast_and_default_dtype_are_guarded():
    ember.manual_seed(0)
    m = MLP().eval()
    cf = ember.compile(lambda x: m(x))
    x = ember.randn(3, 12)
    for _ in range(2):
        with ember.autocast("cpu", dtype=ember.bfloat16):
            a = cf(x)
        with ember.autocast("cpu", dtype=ember.bfloat16):
            b = m(x)
        assert a.dtype == b.dtype == ember.bfloat16
        np.testing.assert_array_equal(a.float().detach().numpy(), b.float().detach().numpy())
        assert cf(x).dtype == ember.float32
    g = ember.compile(lambda: ember.zeros(2) + 1)
    g()
    old = ember.get_default_dtype()
    try:
        ember.set_default_dtype(ember.float64)
        assert g().dtype == ember.float64
    finally:
        ember.set_default_dtype(old)


def test_two_closures_of_one_code_object_never_share_a_graph():
    def make(model):
        return ember.compile(lambda x: model(x))
    ember.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    fa, fb = make(a), make(b)
    x = ember.randn(4, 3)
    for _ in range(2):
        np.testing.assert_allclose(fa(x).detach().numpy(), a(x).detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(fb(x).detach().numpy(), b(x).detach().numpy(), rtol=1e-6)


TORCH_PROGRAM = '''
import torch
import torch.nn as nn
import torch._dynamo
torch._dynamo.config.suppress_errors = True
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
cmodel = torch.compile(model)


@torch.compile(mode="reduce-overhead")
def loss_fn(out, y):
    return nn.functional.cross_entropy(out, y)


torch.manual_seed(0)
x = torch.randn(64, 10)
y = (x[:, 0] > 0).long()
first = None
for i in range(30):
    opt.zero_grad()
    loss = loss_fn(cmodel(x), y)
    loss.backward()
    opt.step()
    first = first if first is not None else loss.item()
print(type(cmodel).__name__, loss.grad_fn.name(), loss.item() < first)
'''


def test_an_unmodified_torch_compile_program_runs_under_ember_run(tmp_path):
    import os
    import subprocess
    import sys
    script = tmp_path / "train.py"
    script.write_text(TORCH_PROGRAM)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    r = subprocess.run([sys.executable, "-m", "ember.run", str(script)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["OptimizedModule", "CompiledFunctionBackward", "True"]


class _Cube(ember.autograd.Function):
    """A raw op whose backward reads an intermediate its forward saved (x * x)."""

    raw = True

    @staticmethod
    def forward(ctx, x):
        sq = ctx.xp.multiply(x, x)
        ctx.save_for_backward(sq)
        return sq * x

    @staticmethod
    def backward(ctx, g):
        (sq,) = ctx.saved_tensors
        return g * sq * 3


def test_a_formula_reading_a_saved_intermediate_is_lowered():
    def f(x):
        return _Cube.apply(x.sin()).sum()
    x = ember.randn(6, requires_grad=True)
    cf = ember.compile(f)
    for _ in range(3):
        x.grad = None
        cf(x).backward()
    region = cf.explained.compiled
    assert "_cube" in region.lowered and "sv__cube" in region.forward_src
    np.testing.assert_allclose(x.grad.numpy(), (3 * x.sin() ** 2 * x.cos()).detach().numpy(),
                               rtol=1e-6)


# ---- compiled optimizer steps (NOTE [ Compiled optimizer steps ]) ---------------------------

_OPTS = {
    "sgd": lambda p: ember.optim.SGD(p, lr=0.1),
    "sgd_momentum_wd": lambda p: ember.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "sgd_nesterov": lambda p: ember.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True,
                                              weight_decay=1e-3),
    "sgd_dampening_maximize": lambda p: ember.optim.SGD(p, lr=0.05, momentum=0.9,
                                                        dampening=0.3, maximize=True),
    "adam": lambda p: ember.optim.Adam(p, lr=1e-2),
    "adam_l2_amsgrad": lambda p: ember.optim.Adam(p, lr=1e-2, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda p: ember.optim.AdamW(p, lr=1e-2, betas=(0.3, 0.99)),
    # one group per parameter: no flat buffers, the per-parameter code, four groups
    "adamw_maximize_groups": lambda p: ember.optim.AdamW(
        [{"params": [q], "lr": 1e-2 * (i + 1)} for i, q in enumerate(p)], maximize=True),
}


def _opt_model(dtype):
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys()
        for n, v in sa["state"][k].items():
            w = sb["state"][k][n]
            assert v.dtype == w.dtype and v.shape == w.shape
            np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [ember.float32, ember.float64])
@pytest.mark.parametrize("name", list(_OPTS))
def test_compiled_optimizer_step_equals_eager_over_twenty_steps(name, dtype):
    models = [_opt_model(dtype), _opt_model(dtype)]
    opts = [_OPTS[name](m.parameters()) for m in models]
    # a scheduler changes lr every 3 steps: the compiled step reads lr at call time
    scheds = [ember.optim.lr_scheduler.StepLR(o, 3, 0.5) for o in opts]
    step = ember.compile(opts[1].step)  # the scheduler's wrapper of opt.step
    x, y = ember.randn(16, 5, dtype=dtype), ember.randn(16, 3, dtype=dtype)
    for _ in range(20):
        for k, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            o.step() if k == 0 else step()
            scheds[k].step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5,
                                   atol=1e-7)
    _state_equal(opts[0], opts[1])
    assert step.version is not None and step.recompiles == 0  # one generated function
    assert step.code.startswith("def forward(groups,")
    units = set(re.findall(r"= P\d_\d\[", step.code))
    if isinstance(opts[1], ember.optim.Adam) and "groups" not in name:
        # Adam's flat buffers (from its eager first step): one unit over all four parameters,
        # walked block by block over each gradient (NOTE [ Blocked flat Adam ])
        assert len(units) == 1 and "for ga in gl:" in step.code
    else:
        assert len(units) == 4  # every parameter, in one function


def test_compiled_step_regenerates_on_a_changed_flag_and_skips_params_without_grad():
    m = _opt_model(ember.float32)
    opt = ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    step = ember.compile(opt.step)
    x = ember.randn(4, 5)
    for i in range(3):
        opt.zero_grad()
        m(x).sum().backward()
        if i == 2:
            m[0].bias.grad = None  # a parameter without a gradient is not updated
            opt.param_groups[0]["nesterov"] = True
        before = m[0].bias.detach().clone()
        step()
    assert step.recompiles == 1 and "xp.add(g, xp.multiply(b, mom" in step.code
    assert ember.equal(before, m[0].bias)


def test_compiled_step_with_hooks_or_closure_runs_as_eager():
    m = _opt_model(ember.float32)
    opt = ember.optim.Adam(m.parameters())
    step = ember.compile(opt.step)
    x = ember.randn(4, 5)
    seen = []
    h = opt.register_step_pre_hook(lambda o, a, k: seen.append(1))

    def closure():
        opt.zero_grad()
        loss = m(x).sum()
        loss.backward()
        return loss
    loss = step(closure)
    assert seen == [1] and isinstance(loss, ember.Tensor)
    h.remove()
    assert step(closure) is not None and step.version is not None  # closure, no hook


def test_optimizer_step_inside_a_compiled_function_runs_compiled_and_equals_eager():
    from ember._dynamo.optim_step import _STEPS
    models = [_opt_model(ember.float32), _opt_model(ember.float32)]
    opts = [ember.optim.AdamW(m.parameters(), lr=1e-2) for m in models]
    x, y = ember.randn(16, 5), ember.randn(16, 3)

    def train_step(m, opt):
        opt.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    cf = ember.compile(train_step)
    for _ in range(20):
        a = train_step(models[0], opts[0])
        b = cf(models[1], opts[1])
        assert float(a) == pytest.approx(float(b), rel=1e-5)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5)
    _state_equal(opts[0], opts[1])
    assert _STEPS[opts[1]].version is not None and opts[0] not in _STEPS
    assert ember.compiler.explain(train_step)(models[1], opts[1]).graph_break_count == 0
    ember.compile(lambda: opts[1].step(), fullgraph=True)()  # a program of one step


def test_a_scheduler_wrapped_step_inside_a_function_runs_compiled_never_stale():
    from ember._dynamo.optim_step import _STEPS
    ember.manual_seed(0)
    lin = nn.Linear(2, 1)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1, momentum=0.5)
    ember.optim.lr_scheduler.StepLR(opt, 3)
    cf = ember.compile(lambda: opt.step())  # the scheduler's wrapper of opt.step
    ws = []
    for _ in range(3):
        opt.zero_grad()
        lin(ember.ones(4, 2)).sum().backward()
        cf()
        ws.append(lin.weight.detach().clone())
    assert not ember.equal(ws[1], ws[2])  # every call stepped
    assert _STEPS[opt].version is not None and opt._opt_called


def test_an_unroutable_step_inside_a_capture_breaks_never_stale():
    ember.manual_seed(0)
    lin = nn.Linear(2, 1)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1)
    eager_step = ember.optim.Optimizer.step
    cf = ember.compile(lambda: eager_step(opt))  # the class's function, called directly
    ws = []
    for _ in range(3):
        opt.zero_grad()
        lin(ember.ones(4, 2)).sum().backward()
        cf()
        ws.append(lin.weight.detach().clone())
    assert not ember.equal(ws[1], ws[2])  # every call stepped
    reasons = [b.reason for b in ember.compiler.explain(lambda: eager_step(opt))().break_reasons]
    assert reasons[0] == "SGD.step() inside the function (runs eagerly)"


# ---- graph passes: CSE and DCE of pure ops (ember/_functorch/passes.py) ----------------------

def _entry(cf):
    from ember._dynamo.eval_frame import _CACHE
    entries = [e for c in _CACHE.values() for e in c.entries.values()]
    return entries[-1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cse_and_dce_shrink_the_code_and_keep_eagers_numbers(dtype):
    def f(x, w):
        a = (x * 2).sin() + (x * 2).sin()
        x.exp()  # dead
        return (a @ w).tanh().sum() + (a @ w).tanh().mean()

    def run(fn, lib, backend=None):
        torch_dt = dtype if lib is torch else getattr(ember, str(dtype).split(".")[1])
        rng = np.random.default_rng(0)
        x = lib.tensor(rng.standard_normal((3, 4)), dtype=torch_dt, requires_grad=True)
        w = lib.tensor(rng.standard_normal((4, 4)), dtype=torch_dt, requires_grad=True)
        if backend:
            fn = ember.compile(fn, backend=backend)
            fn(x, w)
        out = fn(x, w)
        out.backward()
        return [t.detach().numpy() for t in (out, x.grad, w.grad)]
    want = run(f, torch)
    got = run(f, ember, "inductor")
    region = _entry(None).compiled
    assert _entry(None).gm.meta_passes == {"cse": 4, "dce": 1, "fold": 0}
    ember.compiler.reset()
    got_eager = run(f, ember, "eager")  # no passes: the graph as captured
    n_ops = len([n for n in _entry(None).gm.graph.nodes if n.op == "call_function"])
    assert n_ops == 13 and len(region.forward_ops) == 8
    assert "exp" not in " ".join(region.forward_ops) and not region.called  # all lowered
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for a, b, c in zip(got, got_eager, want):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol)
        np.testing.assert_allclose(b, c, rtol=tol, atol=tol)


def test_passes_never_merge_random_ops_batch_norm_writes_or_returned_tensors():
    from ember._functorch.passes import cse, dce, pure
    bn = nn.BatchNorm1d(4)

    def f(x):
        d = F.dropout(x, 0.5) + F.dropout(x, 0.5)  # two masks, two draws
        r = ember.randn(3, 4) + ember.randn(3, 4)
        bn(x)  # dead, but it updates the running statistics
        bn(x)
        return d + r, x * 3, x * 3  # two returned tensors stay two arrays
    ember.manual_seed(0)
    x = ember.randn(3, 4)
    cf = ember.compile(f)
    cf(x)
    ember.manual_seed(1)
    stats = bn.running_mean.clone()
    got = cf(x)
    ember.manual_seed(1)
    bn.running_mean.copy_(stats)
    bn.num_batches_tracked -= 2
    want = f(x)
    for a, b in zip(got, want):
        assert ember.equal(a, b)
    assert got[1]._data is not got[2]._data
    gm = _entry(None).gm
    names = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]
    assert names.count("dropout_mask") == 2 and names.count("native_batch_norm") == 2
    assert names.count("mul") >= 4  # two dropout products and two returned x * 3
    assert cse(gm.graph) == 0 and dce(gm.graph) == 0  # a fixed point
    assert not any(pure(n) for n in gm.graph.nodes
                   if n.op == "call_function" and n.target.__name__ in
                   ("dropout_mask", "native_batch_norm", "randn"))


def test_cse_skips_graphs_with_in_place_writes():
    def f(x):
        a = x * 2
        b = x * 2
        v = a.view(3)  # viewed before the write: it stays a copy_ (passes.functionalize)
        a.add_(1)  # a write: merging a and b would let it reach b
        return a + b + v
    x = ember.randn(3)
    cf = ember.compile(f)
    cf(x)
    assert ember.equal(cf(x), f(x))
    assert _entry(None).gm.meta_passes["cse"] == 0


def test_an_optimizer_stepped_inside_a_compiled_function_is_not_kept_alive():
    import gc
    import weakref
    lin = nn.Linear(2, 1)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1)

    def train(x):
        opt.zero_grad()
        lin(x).sum().backward()
        opt.step()
    ember.compile(train)(ember.ones(3, 2))
    ref = weakref.ref(opt)
    del opt, train
    gc.collect()
    assert ref() is None
