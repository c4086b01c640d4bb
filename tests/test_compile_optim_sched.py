"""``scheduler.step()`` inside a compiled training step (NOTE [ Compiled training steps ]): an
event the program replays after the compiled optimizer step, no graph break (PyTorch's dynamo
traces it too); trajectories and learning rates equal eager ember's and torch's.  A
scheduler whose own ``step`` reads a metric is replayed with the graph's metric
(tests/test_compile_after_backward_sched.py), with eager's numbers."""
import numpy as np
import pytest
import torch

import ember

_X = np.random.default_rng(0).standard_normal((6, 4))
_Y = np.random.default_rng(1).integers(0, 3, 6)
_W = np.random.default_rng(2).standard_normal((3, 4)) * 0.5

SCHEDS = {
    "StepLR": lambda L, o: L.optim.lr_scheduler.StepLR(o, 2, 0.5),
    "CosineAnnealingLR": lambda L, o: L.optim.lr_scheduler.CosineAnnealingLR(o, 5),
    "OneCycleLR": lambda L, o: L.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=12),
    "LambdaLR": lambda L, o: L.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
}


def _run(L, sched, compiled, steps=10):
    lin = L.nn.Linear(4, 3).double()
    with L.no_grad():
        lin.weight.copy_(L.tensor(_W))
        lin.bias.zero_()
    opt = L.optim.AdamW(lin.parameters(), lr=0.05)
    sch = SCHEDS[sched](L, opt)
    x, y = L.tensor(_X), L.tensor(_Y)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = L.nn.functional.cross_entropy(lin(x), y)
        loss.backward()
        opt.step()
        sch.step()
        return loss
    f = ember.compile(step) if compiled else step
    losses, lrs = [], []
    for _ in range(steps):
        losses.append(f(x, y).item())
        lrs.append(sch.get_last_lr()[0])
    return losses, lrs, lin.weight.detach().numpy(), (step, x, y)


@pytest.mark.parametrize("sched", list(SCHEDS))
def test_a_scheduler_step_inside_a_compiled_step_is_replayed(sched):
    ember.compiler.reset()
    lc, rc, wc, (step, x, y) = _run(ember, sched, True)
    le, re_, we, _ = _run(ember, sched, False)
    lt, rt, wt, _ = _run(torch, sched, False)
    np.testing.assert_allclose(lc, le, rtol=1e-12)
    np.testing.assert_allclose(rc, re_, rtol=1e-15)
    np.testing.assert_allclose(wc, we, rtol=1e-12)
    np.testing.assert_allclose(lc, lt, rtol=1e-10)
    np.testing.assert_allclose(rc, rt, rtol=1e-12)
    np.testing.assert_allclose(wc, wt, rtol=1e-10)
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 0
    assert out.program == ["zero_grad", "graph", "backward", "step", "sched"]


def test_fullgraph_holds_a_scheduler_step():
    ember.compiler.reset()
    lin = ember.nn.Linear(4, 3)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1)
    sch = ember.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    x = ember.tensor(_X, dtype=ember.float32)

    @ember.compile(fullgraph=True)
    def step(x):
        opt.zero_grad()
        lin(x).pow(2).mean().backward()
        opt.step()
        sch.step()
    for k in range(4):
        step(x)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** (k + 1))
    assert sch.last_epoch == 4


def test_a_scheduler_step_before_the_forward_breaks_one_with_a_metric_does_not():
    ember.compiler.reset()
    lin = ember.nn.Linear(4, 3)
    opt = ember.optim.SGD(lin.parameters(), lr=0.1)
    plateau = ember.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    step_lr = ember.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    x = ember.tensor(_X, dtype=ember.float32)

    def metric(x):
        opt.zero_grad()
        loss = lin(x).pow(2).mean()
        loss.backward()
        opt.step()
        plateau.step(loss)  # a metric: float(loss) and its own step
        return loss

    def early(x):
        step_lr.step()  # before the forward: the compiled forward would run first
        return lin(x).sum()
    assert ember.compiler.explain(metric)(x).break_reasons == []
    assert any("lr_scheduler.step() before ops" in b.reason
               for b in ember.compiler.explain(early)(x).break_reasons)


def test_a_metric_scheduler_in_a_compiled_step_has_eagers_numbers():
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        lin = ember.nn.Linear(4, 3).double()
        with ember.no_grad():
            lin.weight.copy_(ember.tensor(_W))
            lin.bias.zero_()
        opt = ember.optim.SGD(lin.parameters(), lr=0.5)
        plateau = ember.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
        x = ember.tensor(_X)

        def step(x):
            opt.zero_grad()
            loss = lin(x).sin().mean()
            loss.backward()
            opt.step()
            plateau.step(loss)
            return loss
        f = ember.compile(step) if compiled else step
        runs.append(([f(x).item() for _ in range(8)], opt.param_groups[0]["lr"]))
    assert runs[0] == runs[1]
