"""Ops after ``backward()``/``opt.step()`` in a compiled training step (NOTE [ Compiled training
steps ]): metrics of the forward's values (``(out.argmax(1) == y).sum()``, ``loss * 2``) read
arrays neither backward nor the step changes, so the compiled forward computes them (no
break, as PyTorch's dynamo traces them); ops that read a parameter (or a view of one) after the
step run after it, as a compiled tail (NOTE [ Ops after backward ]), and a ``zero_grad`` after
the step stays there; numbers equal eager's."""
import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

_X = np.random.default_rng(0).standard_normal((10, 4))
_Y = np.random.default_rng(1).integers(0, 3, 10)


def _setup():
    ember.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 3)).double()
    return m, ember.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)


def _metrics(m, opt):
    def step(x, y):
        opt.zero_grad()
        out = m(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        with ember.no_grad():
            acc = (out.argmax(1) == y).float().mean()
        return loss.detach() * 2, acc, out.detach().softmax(-1).max(-1).values
    return step


def _zero_after(m, opt):
    def step(x, y):
        out = m(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad()  # after the step: the next call's grads start from None
        return loss.detach(), (out.argmax(1) == y).sum()
    return step


def _param_after(m, opt):
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss.detach(), m[0].weight.t()[0].sum().detach()  # the stepped weight, a view
    return step


def _run(make, compiled, steps=5):
    m, opt = _setup()
    step = make(m, opt)
    f = ember.compile(step) if compiled else step
    x, y = ember.tensor(_X), ember.tensor(_Y)
    outs = [[v.numpy().copy() for v in f(x, y)] for _ in range(steps)]
    grads = [None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]
    return outs, [p.detach().numpy() for p in m.parameters()], grads, (step, x, y)


@pytest.mark.parametrize("make, breaks", [(_metrics, False), (_zero_after, False),
                                          (_param_after, False)],
                         ids=["metrics", "zero-grad-after", "param-after"])
def test_ops_after_the_step(make, breaks):
    ember.compiler.reset()
    oc, pc, gc, (step, x, y) = _run(make, True)
    oe, pe, ge, _ = _run(make, False)  # the same dropout masks: one seed, one stream
    for a, b in zip(oc, oe):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-12)
    for a, b in zip(pc, pe):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(gc, ge):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12)
    reasons = [b.reason for b in ember.compiler.explain(step)(x, y).break_reasons]
    if breaks:
        assert reasons == ["backward() before ops the function runs after it (the "
                           "compiled forward runs first)"]
    else:
        assert reasons == []


def test_a_returned_detach_is_detached_as_in_eager():
    # detach is no op: the graph returned the value it detached, requiring grad
    ember.compiler.reset()
    x = ember.tensor(_X, requires_grad=True)
    fns = [lambda x: (x * 2).detach(),
           lambda x: ((x * 2).detach(), x * 3),
           lambda x: ((y := (x * 2).sum()), y.detach()),
           lambda x: ((y := x * 2), y.detach())]
    for fn in fns:
        cf = ember.compile(fn)
        want = fn(x)
        want = want if isinstance(want, tuple) else (want,)
        for _ in range(3):
            got = cf(x)
            got = got if isinstance(got, tuple) else (got,)
            assert [t.requires_grad for t in got] == [t.requires_grad for t in want]
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    y, yd = cf(x)  # the gradient still flows through the result returned with it
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(_X.shape, 2.0))
    assert np.shares_memory(yd.numpy(), y.detach().numpy())  # one storage, as detach's
