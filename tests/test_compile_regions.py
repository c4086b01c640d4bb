"""ember.compile around graph breaks (NOTE [ Regions around a break ]): a step that breaks
runs eagerly with its outermost clean module calls compiled as regions of their own; numbers,
gradients, optimizer state and the dropout RNG stream equal eager's."""
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember._dynamo import eval_frame, exc, optim_step
from ember._dynamo.utils import counters


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _model():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.25), nn.Linear(16, 3))


def _print_item(loss, model, seen):
    print("loss", loss.item())


def _use_item(loss, model, seen):
    seen.append(loss.item() * 2.0)  # the value is used in Python


def _clip(loss, model, seen):
    # a hand-written clip that branches on the norm in Python (without the branch it compiles
    # as a tail: tests/test_compile_after_backward.py)
    norm = ember.stack([p.grad.norm() for p in model.parameters()]).norm()
    if norm > 0.5:
        for p in model.parameters():
            p.grad.mul_(0.5 / (norm + 1e-6))


def _to_numpy(loss, model, seen):
    seen.append(float(loss.detach().numpy()))


BREAKS = {"print": (_print_item, "after_step"), "item": (_use_item, "after_step"),
          "clip": (_clip, "before_step"), "numpy": (_to_numpy, "after_step")}


def _run(kind, compiled, steps=5):
    ember.manual_seed(0)
    model = _model()
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    brk, where = BREAKS[kind]
    seen = []
    x, y = ember.randn(12, 6), ember.randint(0, 3, (12,))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if where == "before_step":
            brk(loss, model, seen)
        opt.step()
        if where == "after_step":
            brk(loss, model, seen)
        return loss
    f = ember.compile(step) if compiled else step
    losses = [float(f(x, y)) for _ in range(steps)]
    return losses, [p.detach().numpy().copy() for p in model.parameters()], seen, f, model


def _region_runs(f, model):
    """Count how often ``model``'s compiled region runs its compiled code from now on."""
    region = f._pieces[id(model)]
    entries = [e for e in eval_frame._CACHE[region.code].entries.values() if e.run is not None]
    assert entries, "the model's region was not compiled"
    calls = [0]
    for e in entries:
        run = e.run

        def counted(*a, run=run):
            calls[0] += 1
            return run(*a)
        e.run = counted
    return calls


@pytest.mark.parametrize("kind", list(BREAKS))
def test_a_step_that_breaks_compiles_the_model_around_it(kind, capsys, monkeypatch):
    got = _run(kind, True)
    assert counters["graph_break"], "the step was expected to break"
    want = _run(kind, False)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)  # dropout draws as eager's
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5)
    f, model = got[3], got[4]
    assert counters["stats"]["regions"] == 1
    graphs = counters["stats"]["unique_graphs"]
    runs = _region_runs(f, model)
    steps = [0]
    orig = optim_step.CompiledStep.__call__

    def counted(self, closure=None):
        steps[0] += 1
        return orig(self, closure)
    monkeypatch.setattr(optim_step.CompiledStep, "__call__", counted)
    x, y = ember.randn(12, 6), ember.randint(0, 3, (12,))
    for _ in range(3):
        f(x, y)
    assert runs[0] == 3 and counters["stats"]["unique_graphs"] == graphs  # reused, no capture
    assert steps[0] == 3  # opt.step() ran the generated update


def test_data_dependent_shape_outside_the_model():
    out = []
    for compiled in (True, False):
        ember.manual_seed(0)
        model = _model()

        def fn(x):
            h = model(x)
            return h[(h > 0).nonzero()[:, 0]].sum()  # nonzero: a break outside the model
        f = ember.compile(fn) if compiled else fn
        x = ember.randn(12, 6, requires_grad=True)
        vals = []
        for _ in range(4):
            v = f(x)
            v.backward()
            vals.append((v.item(), x.grad.numpy().copy()))
            x.grad = None
        out.append((vals, f))
    for (a, ga), (b, gb) in zip(out[0][0], out[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5)
        np.testing.assert_allclose(ga, gb, rtol=1e-5)
    assert "nonzero (its output shape depends on the data)" in counters["graph_break"]
    assert counters["stats"]["regions"] == 1 and counters["frames"]["ok"] == 1


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = self.inner(x)
        print("norm", float(h.norm()))  # this module's own call breaks
        return self.out(h)


def test_a_module_whose_own_call_breaks_stays_eager_and_its_children_compile():
    ember.manual_seed(0)
    m = Noisy()
    f = ember.compile(lambda x: m(x).sum())
    x = ember.randn(3, 4)
    want = m(x).sum().item()
    for _ in range(3):
        assert abs(f(x).item() - want) < 1e-6
    assert set(f._pieces) == {id(m.inner), id(m.out)}
    report = ember.compiler.explain(lambda x: m(x).sum())(x)
    assert report.graph_count == 2 and report.pieces == ["Linear", "Linear"]
    assert [[o.__name__ for o in ops] for ops in report.ops_per_graph] == [["addmm"], ["addmm"]]
    assert all("addmm" in g.code for g in report.graphs)
    np.testing.assert_allclose(report.graphs[0](x).detach().numpy(),
                               m.inner(x).detach().numpy(), rtol=1e-6)  # runs as the call


def test_explain_counts_the_pieces_of_a_broken_step(capsys):
    *_, f, model = _run("print", True, steps=1)
    report = ember.compiler.explain(f.fn)(ember.randn(12, 6), ember.randint(0, 3, (12,)))
    assert report.graph_count == 1 and report.pieces == ["Sequential"]
    assert [o.__name__ for o in report.ops_per_graph[0]] == \
        ["addmm", "relu", "dropout_mask", "mul", "addmm"]
    gm = report.graphs[0]  # the piece as a graph: the input a placeholder, parameters attrs
    assert [n.op for n in gm.graph.nodes].count("placeholder") == 1
    assert len([n for n in gm.graph.nodes if n.op == "get_attr"]) == 4
    assert "print()" in str(report) and "Compiled around the breaks: Sequential" in str(report)


def test_fullgraph_still_raises_on_the_break():
    model = _model()

    def fn(x):
        h = model(x)
        print(h.sum().item())
        return h
    with pytest.raises(exc.Unsupported, match="print|item"):
        ember.compile(fn, fullgraph=True)(ember.randn(2, 6))


def test_a_compiled_function_called_by_a_broken_one_is_a_piece(capsys):
    lin = nn.Linear(3, 3)
    inner = ember.compile(lambda x: lin(x).relu())

    def outer(x):
        h = inner(x)
        print("h")
        return h * 2
    f = ember.compile(outer)
    x = ember.randn(2, 3)
    for _ in range(3):
        np.testing.assert_allclose(f(x).detach().numpy(), (lin(x).relu() * 2).detach().numpy(),
                                   rtol=1e-6)
    report = ember.compiler.explain(outer)(x)
    assert report.graph_count == 1
    assert [o.__name__ for o in report.ops_per_graph[0]] == ["addmm", "relu"]
    assert counters["stats"]["unique_graphs"] == 1  # inner's own graph, compiled once


@pytest.mark.parametrize("name", ["lenet", "gpt", "lstm"])
def test_clipped_steps_of_larger_models_equal_eager(name):
    from test_compile import _data
    from test_compile_step import MODELS
    out = []
    for compiled in (True, False):
        ember.manual_seed(0)
        model = MODELS[name]()
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)
        x, y = _data(name)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            return loss
        f = ember.compile(step) if compiled else step
        losses = [float(f(x, y)) for _ in range(6)]
        out.append((losses, [t.detach().numpy().copy() for t in
                             (*model.parameters(), *model.buffers())]))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-5)
    for a, b in zip(out[0][1], out[1][1]):  # batch norm statistics too
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the clip is an event of the compiled program: no break, no regions
    assert not counters["graph_break"] and counters["stats"]["regions"] == 0
    assert counters["frames"]["ok"] == 1


def test_routing_is_installed_once_and_reset_removes_it(capsys):
    impl = nn.Module.__dict__["__call__"]
    _run("print", True, steps=3)
    assert nn.Module.__dict__["__call__"] is eval_frame._route_call
    assert eval_frame._routed_modules.table is None  # no routes outside a broken call
    m = nn.Linear(2, 2)
    x = ember.randn(3, 2)
    np.testing.assert_allclose(m(x).detach().numpy(), (x @ m.weight.T + m.bias).detach().numpy(),
                               rtol=1e-6)
    ember.compiler.reset()
    assert nn.Module.__dict__["__call__"] is impl


def test_the_breaks_log_names_the_pieces(monkeypatch, capsys):
    monkeypatch.setenv("EMBER_LOGS", "breaks")
    _run("print", True, steps=1)
    err = capsys.readouterr().err
    assert "graph break: print()" in err and "compiled around the breaks: Sequential" in err


def test_a_module_with_hooks_stays_eager_around_a_break(capsys):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    model[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))

    def fn(x):
        h = model(x)
        print("h")
        return h
    f = ember.compile(fn)
    for _ in range(3):
        f(ember.randn(2, 3))
    assert len(seen) == 3  # the hook ran every call, as eager
    assert not f._pieces
    late = nn.Linear(3, 2)

    def fn2(x):
        print("x")
        return late(x)
    g = ember.compile(fn2)
    g(ember.randn(2, 3))
    g(ember.randn(2, 3))
    calls = []
    late.register_forward_pre_hook(lambda mod, inp: calls.append(1))
    g(ember.randn(2, 3))
    assert calls == [1]  # a hook added after the region was made: the call runs eagerly
