"""Schedulers with a ``step`` of their own inside a compiled training step (NOTE [ Compiled
training steps ]): ``ReduceLROnPlateau.step(loss)`` (a tensor metric, or ``loss.item()``),
``SequentialLR`` and ``ChainedScheduler`` are events the program replays as they are after the
compiled update, no graph break (PyTorch 2.13's dynamo breaks at every scheduler ``step``; a
replay is what eager runs, without the break); 20-step trajectories and learning rates equal
eager ember's and torch's; a deprecated ``epoch`` argument stays a break."""
import numpy as np
import pytest
import torch

import ember

_X = np.random.default_rng(0).standard_normal((12, 5))
_Y = np.random.default_rng(1).integers(0, 3, 12)
_W = np.random.default_rng(2).standard_normal((3, 5))


def _setup(L):
    lin = L.nn.Linear(5, 3).double()
    with L.no_grad():
        lin.weight.copy_(L.tensor(_W))
        lin.bias.fill_(0.1)
    return lin, L.optim.SGD(lin.parameters(), lr=0.8, momentum=0.5), L.tensor(_X), L.tensor(_Y)


def _plateau(L, opt, item):
    s = L.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5, threshold=0.2)
    return (lambda loss: s.step(loss.item())) if item else (lambda loss: s.step(loss))


def _sequential(L, opt):
    warm = L.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=4)
    decay = L.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    s = L.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[5])
    return lambda loss: s.step()


def _chained(L, opt):
    s = L.optim.lr_scheduler.ChainedScheduler([
        L.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),
        L.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 9], gamma=0.3)])
    return lambda loss: s.step()


def _swalr(L, opt):
    s = L.optim.swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=6)
    return lambda loss: s.step()


SCHEDS = {"swalr": _swalr, "plateau-tensor": lambda L, o: _plateau(L, o, False),
          "plateau-item": lambda L, o: _plateau(L, o, True),
          "sequential": _sequential, "chained": _chained}


def _run(L, name, compiled, steps=20):
    lin, opt, x, y = _setup(L)
    sched = SCHEDS[name](L, opt)

    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        opt.step()
        sched(loss)
        return loss.detach()
    f = ember.compile(step) if compiled else step
    out = [(f(x, y).item(), opt.param_groups[0]["lr"]) for _ in range(steps)]
    return out, lin.weight.detach().numpy().copy(), (step, x, y)


@pytest.mark.parametrize("name", list(SCHEDS))
def test_scheduler_steps_replay_inside_a_compiled_step(name):
    ember.compiler.reset()
    oc, wc, (step, x, y) = _run(ember, name, True)
    oe, we, _ = _run(ember, name, False)
    ot, wt, _ = _run(torch, name, False)
    assert len({lr for _, lr in oe}) > 2  # the schedule really moves
    np.testing.assert_allclose(oc, oe, rtol=1e-12)
    np.testing.assert_allclose(oc, ot, rtol=1e-10)
    np.testing.assert_allclose(wc, we, rtol=1e-12)
    np.testing.assert_allclose(wc, wt, rtol=1e-10)
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 0, out.break_reasons
    assert out.program[-2:] == ["step", "sched"]
    ember.compile(step, fullgraph=True)(x, y)


def test_a_scheduler_epoch_argument_still_breaks_naming_the_line():
    ember.compiler.reset()
    lin, opt, x, y = _setup(ember)
    s = ember.optim.lr_scheduler.ReduceLROnPlateau(opt)

    def step(x, y):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        opt.step()
        s.step(loss, 3)  # the deprecated epoch
        return loss.detach()
    with pytest.warns(UserWarning):
        out = ember.compiler.explain(step)(x, y)
    assert out.break_reasons[0].reason == "float(tensor)"  # the metric read in Python
    assert "s.step(loss, 3)" in out.break_reasons[0].user_stack[-1]
    with pytest.raises(ember._dynamo.exc.Unsupported, match="float"):
        ember.compile(step, fullgraph=True)(x, y)


def test_a_metric_the_graph_does_not_compute_breaks():
    ember.compiler.reset()
    lin, opt, x, y = _setup(ember)
    s = ember.optim.lr_scheduler.ReduceLROnPlateau(opt)
    held = ember.tensor(1.0)  # not computed by the step

    def step(x, y):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        opt.step()
        s.step(held)
        return loss.detach()
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 1
    assert out.break_reasons[0].reason.startswith("lr_scheduler.step(metric)")
    assert "s.step(held)" in out.break_reasons[0].user_stack[-1]
