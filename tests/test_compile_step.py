"""ember.compile on whole training steps (zero_grad, forward, backward, optimizer step, item):
one compiled program whose trajectories, gradients and optimizer state equal eager's."""
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo import exc
from ember._dynamo.utils import counters
from test_compile import GPT, LSTMLM, MLP, ResBlock, _data


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


class LeNetBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


MODELS = {"mlp": MLP, "lenet": LeNetBN, "lstm": LSTMLM, "gpt": GPT}
OPTS = {"sgd": lambda ps: ember.optim.SGD(ps, lr=0.05, momentum=0.9),
        "adam": lambda ps: ember.optim.Adam(ps, lr=1e-2)}


def _trajectory(name, opt_name, compiled, steps=20, returns_item=True):
    ember.manual_seed(0)
    model = MODELS[name]()
    opt = OPTS[opt_name](model.parameters())
    x, y = _data(name)

    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item() if returns_item else loss
    f = ember.compile(train_step) if compiled else train_step
    losses = [float(f(x, y)) for _ in range(steps)]
    state = [v.numpy().copy() for s in opt.state.values() for v in s.values()
             if isinstance(v, ember.Tensor)]
    return (losses, [p.detach().numpy().copy() for p in model.parameters()],
            [b.numpy().copy() for b in model.buffers()], state, train_step)


@pytest.mark.parametrize("opt_name", list(OPTS))
@pytest.mark.parametrize("name", list(MODELS))
def test_twenty_whole_step_compiled_steps_equal_eager(name, opt_name):
    got = _trajectory(name, opt_name, True)
    assert counters["frames"]["ok"] == 1 and not counters["graph_break"]
    want = _trajectory(name, opt_name, False)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for g, w in zip(got[1:4], want[1:4]):  # parameters, buffers (BN stats), optimizer state
        assert len(g) == len(w)
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    report = ember.compiler.explain(got[4])(*_data(name))
    assert report.graph_break_count == 0 and report.graph_count == 1
    assert report.program == ["zero_grad", "graph", "backward", "step", "item"]


def _lin_setup():
    ember.manual_seed(0)
    lin = nn.Linear(3, 2)
    unused = nn.Linear(3, 2)
    opt = ember.optim.SGD(list(lin.parameters()) + list(unused.parameters()), lr=0.1)
    return lin, unused, opt


def _grads(mods):
    return [None if p.grad is None else p.grad.numpy().copy() for m in mods
            for p in m.parameters()]


@pytest.mark.parametrize("set_to_none", [True, False])
def test_grads_accumulate_as_eager_and_unreached_params_get_none(set_to_none):
    x = ember.randn(4, 3)
    out = []
    for compiled in (True, False):
        lin, unused, opt = _lin_setup()

        def step(x):
            loss = lin(x).pow(2).sum()
            loss.backward()  # no zero_grad: grads accumulate over calls
            return loss
        f = ember.compile(step) if compiled else step
        record = []
        for i in range(3):
            f(x)
            record.append(_grads([lin, unused]))
            if i == 1:
                opt.zero_grad(set_to_none=set_to_none)
        out.append(record)
    assert out[1][0][2] is None  # the unused layer never gets a gradient
    for a, b in zip(out[0], out[1]):
        for u, v in zip(a, b):
            assert (u is None) == (v is None)
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=1e-6)
    assert counters["frames"]["ok"] == 1


def test_zero_grad_set_to_none_false_inside_the_step():
    x = ember.randn(4, 3)
    res = []
    for compiled in (True, False):
        lin, unused, opt = _lin_setup()

        def step(x):
            opt.zero_grad(set_to_none=False)
            loss = lin(x).pow(2).sum()
            loss.backward()
            opt.step()
            return loss
        f = ember.compile(step) if compiled else step
        res.append([float(f(x)) for _ in range(4)] + _grads([lin])[0].ravel().tolist())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-6)
    assert counters["frames"]["ok"] == 1


def test_backward_with_a_recorded_gradient_tensor():
    x = ember.randn(4, 3, requires_grad=True)
    w = ember.randn(3, 2, requires_grad=True)

    def f(x, w):
        y = (x @ w).tanh()
        y.backward(y.detach() * 2)
        return y
    cf = ember.compile(f)
    for _ in range(2):
        x.grad = w.grad = None
        cf(x, w)
    got = (x.grad.numpy().copy(), w.grad.numpy().copy())
    x.grad = w.grad = None
    f(x, w)
    for a, b in zip(got, (x.grad, w.grad)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-6)
    assert counters["frames"]["ok"] == 1 and not counters["graph_break"]


def _clip(lin, opt, x):
    opt.zero_grad()
    loss = lin(x).pow(2).sum()
    loss.backward()
    # a hand-written clip compiles as a tail (tests/test_compile_after_backward.py); one that
    # branches on the norm in Python is a break
    norm = ember.stack([p.grad.norm() for p in lin.parameters()]).norm()
    if norm > 0.5:
        for p in lin.parameters():
            p.grad.mul_(0.5 / (norm + 1e-6))
    opt.step()
    return loss


def _item_used(lin, opt, x):
    opt.zero_grad()
    loss = lin(x).pow(2).sum()
    loss.backward()
    opt.step()
    return loss.item() * 2


def _hooked(lin, opt, x):
    opt.zero_grad()
    h = lin(x)
    h.register_hook(lambda g: g * 3)
    loss = h.pow(2).sum()
    loss.backward()
    opt.step()
    return loss


def _grad_assigned(lin, opt, x):
    for p in lin.parameters():
        p.grad = None
    loss = lin(x).pow(2).sum()
    loss.backward()
    opt.step()
    return loss


def _twice(lin, opt, x):
    opt.zero_grad()
    lin(x).sum().backward()
    loss = lin(x).pow(2).sum()
    loss.backward()
    opt.step()
    return loss


def _step_then_forward(lin, opt, x):
    opt.zero_grad()
    lin(x).sum().backward()
    opt.step()
    return lin(x).sum()


def _retain(lin, opt, x):
    opt.zero_grad()
    loss = lin(x).pow(2).sum()
    loss.backward(retain_graph=True)
    opt.step()
    return loss


STEP_BREAKS = [(_clip, "bool(tensor)"), (_item_used, "Tensor.item()"),
               (_hooked, "register_hook"), (_grad_assigned, ".grad assigned"),
               (_twice, "more than once"), (_step_then_forward, "before ops"),
               (_retain, "retain_graph")]


@pytest.mark.parametrize("fn, what", STEP_BREAKS, ids=[f[0].__name__ for f in STEP_BREAKS])
def test_steps_the_program_cannot_hold_break_and_stay_eager(fn, what):
    x = ember.randn(4, 3)
    res = []
    for compiled in (True, False):
        lin, _, opt = _lin_setup()
        f = ember.compile(fn) if compiled else fn
        res.append([float(f(lin, opt, x)) for _ in range(3)] +
                   [p.detach().numpy().ravel().tolist() for p in lin.parameters()])
    assert res[0] == res[1]
    lin, _, opt = _lin_setup()
    report = ember.compiler.explain(fn)(lin, opt, x)
    assert report.graph_break_count >= 1
    assert any(what in b.reason for b in report.break_reasons), report.break_reasons
    with pytest.raises(exc.Unsupported, match="fullgraph"):
        ember.compile(fn, fullgraph=True)(lin, opt, x)


def _branch(x):
    if x.sum() > 0:
        return F.dropout(x, 0.5) * 2
    return x - 1


def test_a_branch_on_a_value_is_guarded_and_a_mismatch_runs_eagerly():
    cf = ember.compile(_branch, fullgraph=True)  # no break: a guard
    signs = [1, 1, -1, 1, -1, -1, 1, -1, 1]
    got, want = [], []
    for compiled in (True, False):
        ember.manual_seed(0)
        for i, sg in enumerate(signs):
            x = ember.full((6,), float(sg)) + ember.arange(6) * 0.01 * sg
            (got if compiled else want).append((cf if compiled else _branch)(x).numpy())
    for a, b in zip(got, want):  # the dropout stream too: a mismatch puts its draws back
        np.testing.assert_array_equal(a, b)
    assert counters["frames"]["total"] == 1
    report = ember.compiler.explain(_branch)(ember.ones(3))
    assert report.graph_break_count == 0 and "bool guard" in report.program
    from ember._dynamo.eval_frame import _CACHE
    entry = next(iter(next(iter(_CACHE.values())).entries.values()))
    # four mismatches: past the limit the entry runs eagerly, with the reason
    assert entry.run is None and "bool(tensor)" in entry.breaks[0].reason


def test_a_branch_in_a_training_step_is_guarded():
    def run(compiled):
        lin, _, opt = _lin_setup()

        def step(x):
            opt.zero_grad()
            loss = lin(x).pow(2).mean()
            if loss > 0.05:  # true at first, false once trained
                loss = loss * 2
            loss.backward()
            opt.step()
            return loss.item()
        f = ember.compile(step) if compiled else step
        return [f(ember.ones(4, 3)) for _ in range(30)]
    got = run(True)
    assert got == run(False) and got[0] > 0.1 and got[-1] < 0.05


def test_a_branch_with_an_in_place_write_breaks():
    bn = nn.BatchNorm1d(3)

    def f(x):
        y = bn(x)  # writes the running statistics in place: a mismatch could not undo it
        return y * 2 if y.sum() > 0 else y
    cf = ember.compile(f)
    x = ember.randn(4, 3)
    cf(x)
    assert any("bool(tensor)" in r for r in counters["graph_break"])


def test_whole_step_with_a_varying_batch_size_is_dynamic():
    def run(compiled):
        ember.manual_seed(0)
        model = MLP()
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        f = ember.compile(step) if compiled else step
        g = ember.Generator().manual_seed(2)
        out = []
        for b in (8, 8, 5, 8, 7, 3, 8, 5):
            out.append(f(ember.randn(b, 12, generator=g), ember.randint(0, 5, (b,), generator=g)))
        return out, [p.detach().numpy().copy() for p in model.parameters()]
    got, gp = run(True)
    assert counters["frames"]["total"] == 2 and counters["stats"]["dynamic_graphs"] == 1
    want, wp = run(False)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gp, wp):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_scheduler_stepped_inside_is_replayed_and_the_lr_follows_eager():
    def run(compiled):
        lin, _, opt = _lin_setup()
        sched = ember.optim.lr_scheduler.StepLR(opt, 1, 0.5)

        def step(x):
            opt.zero_grad()
            loss = lin(x).pow(2).sum()
            loss.backward()
            opt.step()
            sched.step()  # changes the optimizer's lr in Python: an event the program replays
            return loss
        f = ember.compile(step) if compiled else step
        x = ember.ones(4, 3)
        return [float(f(x)) for _ in range(5)], opt.param_groups[0]["lr"], step
    *compiled, step = run(True)
    assert tuple(compiled) == run(False)[:2]
    assert ember.compiler.explain(step)(ember.ones(4, 3)).graph_break_count == 0


def test_a_gradient_scaler_step_is_eagers():
    def run(compiled):
        lin, _, opt = _lin_setup()
        scaler = ember.amp.GradScaler("cpu", init_scale=2.0 ** 4)

        def step(x):
            opt.zero_grad()
            loss = lin(x).pow(2).sum()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return loss
        f = ember.compile(step) if compiled else step
        x = ember.ones(4, 3)
        return [float(f(x)) for _ in range(4)] + \
            [p.detach().numpy().ravel().tolist() for p in lin.parameters()]
    assert run(True) == run(False)


def test_a_loss_history_appended_inside_breaks_and_is_kept():
    history = []
    lin, _, opt = _lin_setup()

    def step(x):
        opt.zero_grad()
        loss = lin(x).pow(2).sum()
        loss.backward()
        opt.step()
        history.append(v := loss.item())
        return v
    f = ember.compile(step)
    got = [f(ember.ones(4, 3)) for _ in range(3)]
    assert history == got and len(set(got)) == 3
    assert any("side effect" in r for r in counters["graph_break"])


BATCHED = {  # model, inputs of batch b
    "gpt": (GPT, lambda b, g: (ember.randint(0, 11, (b, 6), generator=g),
                               ember.randint(0, 11, (b * 6,), generator=g))),
    "resnet": (ResBlock, lambda b, g: (ember.randn(b, 4, 5, 5, generator=g),
                                       ember.randint(0, 3, (b,), generator=g))),
}


@pytest.mark.parametrize("name", list(BATCHED))
def test_whole_steps_of_attention_and_batch_norm_models_with_varying_batch(name):
    model_cls, inputs = BATCHED[name]

    def run(compiled):
        ember.manual_seed(0)
        m = model_cls()
        opt = ember.optim.Adam(m.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        f = ember.compile(step) if compiled else step
        g = ember.Generator().manual_seed(1)
        return [f(*inputs(b, g)) for b in (3, 5, 3, 7, 2, 5)], \
            [b.numpy().copy() for b in m.buffers()]
    got, gb = run(True)
    assert counters["frames"]["total"] == 2 and counters["stats"]["dynamic_graphs"] == 1
    want, wb = run(False)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for a, b in zip(gb, wb):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_backward_on_one_result_of_a_multi_result_op():
    def g(x, w):
        v, i = (x @ w).max(1)
        v.backward(ember.ones_like(v))
        return i
    cf = ember.compile(g, fullgraph=True)
    x, w = ember.randn(4, 3), ember.randn(3, 5, requires_grad=True)
    for _ in range(2):
        w.grad = None
        idx = cf(x, w)
    got = w.grad.numpy().copy()
    w.grad = None
    np.testing.assert_array_equal(idx.numpy(), g(x, w).numpy())
    np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-6)
