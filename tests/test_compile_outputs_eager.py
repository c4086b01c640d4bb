"""Compiled results equal eager's (issue 17, review rv1 B3, B7, B10, B12, B14, B16): each case
runs one function written for both libraries in ember eagerly, through ``ember.compile`` (three
or more calls, so that replays are checked, not only the capture) and in torch, and compares
numbers, gradients and result types."""
from __future__ import annotations

import collections
import dataclasses
import types

import numpy as np
import pytest
import torch

import ember
from ember.utils.checkpoint import checkpoint as ember_checkpoint
from torch.utils.checkpoint import checkpoint as torch_checkpoint


@pytest.fixture(autouse=True)
def _fresh():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


def _np(t):
    return None if t is None else t.detach().numpy().copy()


def _close(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


DATA = [np.random.RandomState(i).randn(3, 4) for i in range(4)]


# ---- B3: enable_grad() inside a function called under no_grad -------------------------------
def _grad_inside(L, x):
    with L.enable_grad():
        y = (x * x).sum()
    z = y * 3  # grad is off again: no history
    return y, z


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_enable_grad_inside_a_no_grad_call(dtype):
    cf = ember.compile(lambda x: _grad_inside(ember, x))
    for i in range(4):
        got = []
        for L, f in ((ember, cf), (ember, lambda x: _grad_inside(ember, x)),
                     (torch, lambda x: _grad_inside(torch, x))):
            x = L.tensor(DATA[i], dtype=getattr(L, dtype), requires_grad=True)
            with L.no_grad():
                y, z = f(x)
            assert y.requires_grad and not z.requires_grad
            y.backward()
            got.append((_np(y), _np(z), _np(x.grad)))
        for g in got[1:]:
            for a, b in zip(got[0], g):
                _close(a, b)


# ---- B7: @compile on a method and on Module.forward ------------------------------------------
def _classes(L):
    # torch's side runs eagerly (torch.compile binds the same way, /tmp/rv1/t18; ~16 s here)
    deco = ember.compile if L is ember else (lambda f: f)

    class Scaler:
        def __init__(self, k):
            self.k = k

        @deco
        def go(self, x):
            return x * self.k + 1

    class Net(L.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.lin = L.nn.Linear(4, 2)
            self.k = k

        @deco
        def forward(self, x):
            return (self.lin(x) * self.k).tanh()
    return Scaler, Net


def test_compiled_method_binds_self_per_instance():
    ES, EN = _classes(ember)
    TS, TN = _classes(torch)
    assert isinstance(ES.__dict__["go"], type(ember.compile(lambda x: x)))  # on the class
    es, ts = [ES(2.0), ES(5.0)], [TS(2.0), TS(5.0)]
    en, tn = [EN(2.0), EN(3.0)], [TN(2.0), TN(3.0)]
    for e, t in zip(en, tn):
        with torch.no_grad():
            t.lin.weight.copy_(torch.tensor(_np(e.lin.weight)))
            t.lin.bias.copy_(torch.tensor(_np(e.lin.bias)))
    for i in range(3):
        for e, t in zip(es, ts):
            _close(_np(e.go(ember.tensor(DATA[i]))), _np(t.go(torch.tensor(DATA[i]))))
        for e, t in zip(en, tn):
            xe = ember.tensor(DATA[i], dtype=ember.float32, requires_grad=True)
            xt = torch.tensor(DATA[i], dtype=torch.float32, requires_grad=True)
            ye, yt = e(xe), t(xt)
            _close(_np(ye), _np(yt))
            ye.sum().backward()
            yt.sum().backward()
            _close(_np(xe.grad), _np(xt.grad))
            _close(_np(e.lin.weight.grad), _np(t.lin.weight.grad))
        # each instance's own state is read at each call
        es[0].k += 1
        ts[0].k += 1
        en[1].k = en[1].k * 2
        tn[1].k = tn[1].k * 2


# ---- B10: a Size argument --------------------------------------------------------------------
def test_size_argument_and_size_result():
    def f(L, x, size):
        return x.reshape(size) * 2, x.shape
    cf = ember.compile(lambda x, s: f(ember, x, s))
    for size in ([3, 4], [12], [4, 3], [3, 4]):
        got = cf(ember.tensor(DATA[0]), ember.Size(size))
        eager = f(ember, ember.tensor(DATA[0]), ember.Size(size))
        ref = f(torch, torch.tensor(DATA[0]), torch.Size(size))
        assert tuple(got[0].shape) == tuple(eager[0].shape) == tuple(ref[0].shape)
        _close(_np(got[0]), _np(ref[0]))
        assert type(got[1]) is ember.Size and tuple(got[1]) == tuple(ref[1])


# ---- B12: outputs that view other outputs, written in place ----------------------------------
VIEW_CASES = {
    "select": lambda y: y[0],
    "slice of select": lambda y: y[1][1:],
    "transpose": lambda y: y.t(),
    "view": lambda y: y.view(-1),
}


@pytest.mark.parametrize("name", list(VIEW_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_view_of_output_written_in_place(name, dtype):
    view = VIEW_CASES[name]

    def fn(x):
        y = x * 2
        return y, view(y)
    cf = ember.compile(fn)
    for i in range(3):
        got = []
        for L, f in ((ember, cf), (ember, fn), (torch, fn)):
            x = L.tensor(DATA[i], dtype=getattr(L, dtype), requires_grad=True)
            y, v = f(x)
            v.mul_(3)
            (y * L.tensor(DATA[3], dtype=getattr(L, dtype))).sum().backward()
            got.append((_np(y), _np(x.grad), type(y.grad_fn).__name__))
        for g in got[1:]:
            _close(got[0][0], g[0])
            _close(got[0][1], g[1])
        assert got[0][2] == got[1][2]  # CopySlices (or the view's rebase) in both


# ---- B14: output containers made again at each call ------------------------------------------
NT = collections.namedtuple("NT", ["a", "b"])


@dataclasses.dataclass
class DC:
    a: object
    b: object
    tag: str = "dc"


@dataclasses.dataclass
class ModelOutputLike(collections.OrderedDict):
    """HuggingFace's ModelOutput's shape: a dataclass and an OrderedDict of its set fields."""
    logits: object = None
    loss: object = None
    hidden: object = None

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                self[f.name] = v


CONTAINERS = {
    "namedtuple": lambda a, b: NT(a, b),
    "dataclass": lambda a, b: DC(a, b),
    "OrderedDict": lambda a, b: collections.OrderedDict(a=a, b=b),
    "defaultdict": lambda a, b: collections.defaultdict(list, {"a": a, "b": b}),
    "ModelOutput-like": lambda a, b: ModelOutputLike(logits=a, loss=b),
    "nested": lambda a, b: [NT(a, {"b": DC(b, a)})],
}


def _leaves(r):
    """(type name, value) pairs of a result, walked the same way for both libraries."""
    if dataclasses.is_dataclass(r):
        return [type(r).__name__] + [x for f in dataclasses.fields(r)
                                     for x in _leaves(getattr(r, f.name))]
    if isinstance(r, dict):
        return [type(r).__name__] + [x for k, v in r.items() for x in [k, *_leaves(v)]]
    if isinstance(r, (tuple, list)):
        return [type(r).__name__] + [x for v in r for x in _leaves(v)]
    if hasattr(r, "detach"):
        return [_np(r)]
    return [r]


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_output_containers_rebuilt_each_call(name):
    make = CONTAINERS[name]

    def fn(x):
        return make(x * 2, x.sum())
    cf = ember.compile(fn)
    for i in range(4):
        got = cf(ember.tensor(DATA[i], requires_grad=True))
        eager = fn(ember.tensor(DATA[i], requires_grad=True))
        ref = fn(torch.tensor(DATA[i], requires_grad=True))
        a, b, c = _leaves(got), _leaves(eager), _leaves(ref)
        assert len(a) == len(b) == len(c)
        for x, y, z in zip(a, b, c):
            if isinstance(x, np.ndarray):
                _close(x, y)
                _close(x, z)
            else:
                assert x == y == z
    if name == "ModelOutput-like":
        assert list(got.keys()) == ["logits", "loss"] and got["loss"] is got.loss


def test_object_holding_tensors_breaks_the_graph():
    def fn(x):
        return types.SimpleNamespace(y=x * 2)
    cf = ember.compile(fn)
    for i in range(3):
        _close(_np(cf(ember.tensor(DATA[i])).y), DATA[i] * 2)
    reasons = [b.reason for b in ember._dynamo.explain(fn)(ember.tensor(DATA[0])).break_reasons]
    assert any("SimpleNamespace" in r for r in reasons)


# ---- B16: a custom autograd.Function and reentrant checkpoint --------------------------------
def _clip(L):
    class Clip(L.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x.clamp(-k, k)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * (x.abs() <= ctx.k) * 10, None  # not clamp's own gradient
    return Clip


def _body(L, lin):
    return lambda x: (lin(x) * 2).tanh()


CUSTOM = {
    "Function": lambda L, lin, x: _clip(L).apply(lin(x), 0.5).sum(),
    "checkpoint reentrant": lambda L, lin, x: (
        ember_checkpoint if L is ember else torch_checkpoint)(
            _body(L, lin), x, use_reentrant=True).sum(),
}


@pytest.mark.parametrize("name", list(CUSTOM))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_function_gradients_on_every_call(name, dtype):
    body = CUSTOM[name]
    elin = ember.nn.Linear(4, 3).to(getattr(ember, dtype))
    tlin = torch.nn.Linear(4, 3).to(getattr(torch, dtype))
    with torch.no_grad():
        tlin.weight.copy_(torch.tensor(_np(elin.weight)))
        tlin.bias.copy_(torch.tensor(_np(elin.bias)))
    cf = ember.compile(lambda x: body(ember, elin, x))
    for i in range(3):
        got = []
        for L, lin, f in ((ember, elin, cf), (ember, elin, lambda x: body(ember, elin, x)),
                          (torch, tlin, lambda x: body(torch, tlin, x))):
            lin.zero_grad()
            x = L.tensor(DATA[i], dtype=getattr(L, dtype), requires_grad=True)
            y = f(x)
            y.backward()
            got.append((_np(y), _np(x.grad), _np(lin.weight.grad)))
        for g in got[1:]:
            for a, b in zip(got[0], g):
                _close(a, b)
    report = ember._dynamo.explain(lambda x: body(ember, elin, x))(
        ember.tensor(DATA[0], dtype=getattr(ember, dtype), requires_grad=True))
    assert any("custom autograd.Function" in b.reason for b in report.break_reasons)


def test_custom_function_without_grad_stays_in_the_graph():
    Clip = _clip(ember)

    def fn(x):
        return Clip.apply(x * 2, 0.5) + 1
    cf = ember.compile(fn)
    with ember.no_grad():
        for i in range(3):
            _close(_np(cf(ember.tensor(DATA[i]))), np.clip(DATA[i] * 2, -0.5, 0.5) + 1)
        report = ember._dynamo.explain(fn)(ember.tensor(DATA[0]))
    assert not report.break_reasons and report.graph_count == 1
