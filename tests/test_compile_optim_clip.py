"""Gradient clipping inside a compiled training step (NOTE [ Compiled training steps ]):
``nn.utils.clip_grad_norm_``/``clip_grad_value_`` between ``backward()`` and ``opt.step()``
are events the program replays on the gradients the compiled backward made, no graph break
(PyTorch's dynamo traces them too); trajectories, the returned norm and the gradients equal
eager ember's and torch's; ops on the norm are a break, with eager's numbers."""
import numpy as np
import pytest
import torch

import ember

_X = np.random.default_rng(0).standard_normal((6, 4)) * 3
_Y = np.random.default_rng(1).integers(0, 3, 6)
_W = np.random.default_rng(2).standard_normal((3, 4))


def _setup(L):
    lin = L.nn.Linear(4, 3).double()
    with L.no_grad():
        lin.weight.copy_(L.tensor(_W))
        lin.bias.fill_(0.1)
    return lin, L.optim.AdamW(lin.parameters(), lr=0.05), L.tensor(_X), L.tensor(_Y)


def _norm_step(L, lin, opt):
    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        norm = L.nn.utils.clip_grad_norm_(lin.parameters(), 0.5)
        opt.step()
        return loss, norm
    return step


def _value_step(L, lin, opt):
    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        L.nn.utils.clip_grad_value_(lin.parameters(), 0.05)
        opt.step()
        return loss, loss.detach()
    return step


def _run(L, make, compiled, steps=8):
    lin, opt, x, y = _setup(L)
    step = make(L, lin, opt)
    f = ember.compile(step) if compiled else step
    out = [tuple(v.item() for v in f(x, y)) for _ in range(steps)]
    return out, lin.weight.detach().numpy(), lin.weight.grad.numpy(), (step, x, y)


@pytest.mark.parametrize("make", [_norm_step, _value_step], ids=["norm", "value"])
def test_clipping_inside_a_compiled_step_is_replayed(make):
    ember.compiler.reset()
    oc, wc, gc, (step, x, y) = _run(ember, make, True)
    oe, we, ge, _ = _run(ember, make, False)
    ot, wt, gt, _ = _run(torch, make, False)
    np.testing.assert_allclose(oc, oe, rtol=1e-12)  # losses and the norms returned
    np.testing.assert_allclose(oc, ot, rtol=1e-10)
    for c, e, t in ((wc, we, wt), (gc, ge, gt)):
        np.testing.assert_allclose(c, e, rtol=1e-12)
        np.testing.assert_allclose(c, t, rtol=1e-10)
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 0
    assert out.program == ["zero_grad", "graph", "backward", "clip", "step"]
    ember.compile(step, fullgraph=True)(x, y)


def test_the_norm_returned_is_each_calls_own():
    ember.compiler.reset()
    lin, opt, x, y = _setup(ember)
    f = ember.compile(_norm_step(ember, lin, opt))
    norms = [float(f(x, y)[1]) for _ in range(4)]
    assert len(set(norms)) == 4  # the weights move: a baked norm would repeat


def test_ops_on_the_norm_break_with_eagers_numbers():
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        lin, opt, x, y = _setup(ember)

        def step(x, y):
            opt.zero_grad()
            loss = ember.nn.functional.cross_entropy(lin(x), y)
            loss.backward()
            norm = ember.nn.utils.clip_grad_norm_(lin.parameters(), 0.5)
            opt.step()
            return loss + 0 * norm
        f = ember.compile(step) if compiled else step
        runs.append([float(f(x, y)) for _ in range(4)])
    assert runs[0] == runs[1]
    reasons = [b.reason for b in ember.compiler.explain(step)(x, y).break_reasons]
    assert reasons == ["ops on the norm clip_grad_norm_() returned (the compiled forward runs "
                       "first)"]
