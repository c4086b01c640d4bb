"""Compiled code keeps 0-d values as arrays (issue 17, review rv2 C11, C12; NOTE [ 0-d values
are arrays ] in ember/_functorch/aot_autograd.py): NumPy gives scalars from full reductions,
integer indexing and ufuncs of 0-d operands, and the generated forward and backward fed them on
to a cast (a crash on the first replay: ``(a > 2).sum().float() / n``) or made gradient tensors
over them.  Each case runs one function written for both libraries through ``ember.compile``
(three calls: the capture and two replays) and in torch, and compares values, dtypes and
gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


@pytest.fixture(autouse=True)
def _fresh():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


CASTS = {
    "float": lambda L, t: t.float(),
    "double": lambda L, t: t.double(),
    "half": lambda L, t: t.half(),
    "bfloat16": lambda L, t: t.bfloat16(),
    "long": lambda L, t: t.long(),
    "int": lambda L, t: t.int(),
    "bool": lambda L, t: t.bool(),
    "to(float64)": lambda L, t: t.to(L.float64),
    "to(dtype=int32)": lambda L, t: t.to(dtype=L.int32),
    "type(float32)": lambda L, t: t.type(L.float32),
}

# ops whose result is 0-d (NumPy: a scalar)
PRODUCERS = {
    "sum": lambda L, a: a.sum(),
    "mean": lambda L, a: a.mean(),
    "max": lambda L, a: a.max(),
    "argmax": lambda L, a: a.argmax(),
    "max(dim) of a row": lambda L, a: a[0].max(0).values,
    "index a[1, 2]": lambda L, a: a[1, 2],
    "comparison": lambda L, a: a.sum() > 0.5,
    "count (a > 0).sum()": lambda L, a: (a > 0).sum(),
    "norm": lambda L, a: a.norm(),
    "0-d product": lambda L, a: a.sum() * a.mean(),
}


def _body(L, a, prod, cast):
    p = prod(L, a)
    c = cast(L, p)
    # the cast's result fed on (the crash) and returned (its dtype compared)
    return c, (a * c.to(a.dtype)).sum() + p.to(a.dtype) * 2


def _run(f, L, x, train):
    a = L.tensor(x, requires_grad=train)
    if train:
        outs = f(a)
        outs[1].backward()
        return [o.detach() for o in outs], a.grad
    with L.no_grad():
        return list(f(a)), None


def _same(e, t, rtol=1e-6):
    assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1]
    assert e.shape == tuple(t.shape)
    assert type(e._data) is np.ndarray  # a 0-d array, never a NumPy scalar
    np.testing.assert_allclose(e.double().numpy(), t.double().numpy(), rtol=rtol, atol=1e-6)


def _check(body, x, train, rtol=1e-6):
    cf = ember.compile(lambda a: body(ember, a))
    for call in range(3):  # the capture, then replays
        xs = x * (1 + call)
        got, g = _run(cf, ember, xs, train)
        want, tg = _run(lambda a: body(torch, a), torch, xs, train)
        for e, t in zip(got, want):
            _same(e, t, rtol)
        if train:
            _same(g, tg, rtol)


X32 = np.random.RandomState(0).randn(3, 4).astype(np.float32)


@pytest.mark.parametrize("train", [False, True], ids=["no_grad", "backward"])
@pytest.mark.parametrize("prod", list(PRODUCERS))
@pytest.mark.parametrize("cast", list(CASTS))
def test_cast_of_a_0d_value(cast, prod, train):
    _check(lambda L, a: _body(L, a, PRODUCERS[prod], CASTS[cast]), X32, train)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("train", [False, True], ids=["no_grad", "backward"])
@pytest.mark.parametrize("prod", list(PRODUCERS))
def test_0d_values_both_float_dtypes(prod, train, dtype):
    x = X32.astype(dtype)
    _check(lambda L, a: _body(L, a, PRODUCERS[prod], CASTS["double"]), x, train)


# metrics and losses as written in training loops (review rv2 c20/c24)
PROGRAMS = {
    "accuracy (a > 0).sum().float() / n": lambda L, a: (a > 0).sum().float() / a.numel(),
    "accuracy (argmax == y).float().mean()":
        lambda L, a: (a.argmax(1) == L.tensor([2, 1, 0])).float().mean(),
    "masked mean loss": lambda L, a: (
        (L.nn.functional.cross_entropy(a, L.tensor([0, 2, 0]), reduction="none") *
         (L.tensor([0, 2, 0]) != 0)).sum() / (L.tensor([0, 2, 0]) != 0).sum().float()),
    "x.sum().long() + 1": lambda L, a: a.sum().long() + 1,
    "mean().half()": lambda L, a: a.mean().half(),
    "tuple with a cast 0-d": lambda L, a: ((a > 0).sum().double(), a * 2),
    "0-d through exp/log/abs/sqrt": lambda L, a: a.sum().abs().sqrt().exp().log(),
}


@pytest.mark.parametrize("train", [False, True], ids=["no_grad", "backward"])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_training_loop_0d_forms(name, train):
    f = PROGRAMS[name]

    def body(L, a):
        r = f(L, a)
        r = r if isinstance(r, tuple) else (r,)
        loss = sum(o.to(a.dtype).sum() for o in r) + (a * a).sum()
        return (*r, loss)

    cf = ember.compile(lambda a: body(ember, a))
    for call in range(3):
        xs = X32 * (1 + call)
        a, ta = ember.tensor(xs, requires_grad=train), torch.tensor(xs, requires_grad=train)
        with ember.set_grad_enabled(train):
            got = cf(a)
        with torch.set_grad_enabled(train):
            want = body(torch, ta)
        if train:
            got[-1].backward()
            want[-1].backward()
            _same(a.grad, ta.grad, 1e-5)
        for e, t in zip(got, want):
            _same(e.detach(), t.detach(), 1e-5)


# ---- gradients of 0-d inputs: the backward's 0-d values ------------------------------------
GRAD_0D = {
    "(a * w).mean() * w": lambda L, a, w: (a * w).mean() * w,
    "(a.sum() * w) ** 2": lambda L, a, w: (a.sum() * w).pow(2),
    "a.max() * w + a.sum()": lambda L, a, w: a.max() * w + a.sum(),
    "a[0, 1] * w": lambda L, a, w: a[0, 1] * w,
    "(w.exp() * a).sum().exp()": lambda L, a, w: (w.exp() * a).sum().exp() / 100,
    "(a[0, 1] * w).double()": lambda L, a, w: (a[0, 1] * w).double(),
    "a.sum().double().float() * w": lambda L, a, w: a.sum().double().float() * w,
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(GRAD_0D))
def test_gradient_of_a_0d_input(name, dtype):
    f = GRAD_0D[name]
    cf = ember.compile(lambda a, w: f(ember, a, w))
    for call in range(3):
        xs = X32.astype(dtype) * (1 + call)
        ws = np.array(1.5 - call, dtype)
        res = []
        for L, fn in ((ember, cf), (torch, lambda a, w: f(torch, a, w))):
            a = L.tensor(xs, requires_grad=True)
            w = L.tensor(ws, requires_grad=True)
            o = fn(a, w)
            o.backward()
            res.append((o.detach(), a.grad, w.grad))
        for e, t in zip(*res):
            _same(e, t, 1e-5)


# ---- C11: a 0-d counter buffer re-assigned in forward, then cast ---------------------------
def _counter(L):
    class Counter(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", L.tensor(0))
            self.lin = L.nn.Linear(4, 2)

        def forward(self, x):
            self.count = self.count + 1
            return self.lin(x) * self.count.float() + self.count.to(x.dtype)
    return Counter()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_counter_buffer_reassigned_and_cast(mode):
    torch.manual_seed(0)
    tm = _counter(torch)
    em = _counter(ember)
    em.load_state_dict({k: ember.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    getattr(tm, mode)()
    getattr(em, mode)()
    cm = ember.compile(em)
    for call in range(4):
        xs = X32 * (1 + call)
        a, ta = ember.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
        o, to = cm(a), tm(ta)
        o.sum().backward()
        to.sum().backward()
        _same(o.detach(), to.detach(), 1e-5)
        _same(a.grad, ta.grad, 1e-5)
        _same(em.lin.weight.grad, tm.lin.weight.grad, 1e-5)
        assert int(em.count) == int(tm.count) == call + 1
        assert type(em.count._data) is np.ndarray
