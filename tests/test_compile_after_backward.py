"""Ops after ``backward()`` that read the gradients the compiled backward made, or parameters
the step changed, inside a compiled training step (NOTE [ Ops after backward ]): a hand-written
SGD update, a hand-written clip, ``p.grad.data.clamp_``, a weight EMA after ``opt.step()``,
``clip_grad_norm_`` reached by a bare name.  They run as a compiled tail after their event, no
graph break (PyTorch's dynamo traces them too); 20-step trajectories, gradients and returned
values equal eager ember's and torch's, in float32 and float64; what a tail cannot hold (a
``bool`` of a tail value, ops that build an autograd graph) breaks naming the line."""
import copy

import numpy as np
import pytest
import torch

import ember

_X = np.random.default_rng(0).standard_normal((12, 5))
_Y = np.random.default_rng(1).integers(0, 3, 12)


def _setup(L, dtype):
    rng = np.random.default_rng(2)
    m = L.nn.Sequential(L.nn.Linear(5, 8), L.nn.Tanh(), L.nn.Linear(8, 3)).to(dtype)
    with L.no_grad():
        for p in m.parameters():
            p.copy_(L.tensor(rng.standard_normal(tuple(p.shape)) * 0.5))
    x = L.tensor(_X).to(dtype)
    return m, x, L.tensor(_Y)


def _sgd_by_hand(L, m):
    def step(x, y):
        m.zero_grad()
        loss = L.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        with L.no_grad():
            for p in m.parameters():
                p -= 0.1 * p.grad
        return loss.detach()
    return step


def _clip_by_hand(L, m):
    opt = L.optim.SGD(m.parameters(), lr=0.2, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        total = sum(p.grad.norm() ** 2 for p in m.parameters()) ** 0.5
        coef = (0.3 / (total + 1e-6)).clamp(max=1.0)
        for p in m.parameters():
            p.grad.mul_(coef)
        opt.step()
        return loss.detach(), total
    return step


def _grad_data_clamp(L, m):
    opt = L.optim.Adam(m.parameters(), lr=0.05)

    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        for p in m.parameters():
            p.grad.data.clamp_(-0.02, 0.02)
        opt.step()
        return loss.detach()
    return step


def _ema(L, m):
    opt = L.optim.SGD(m.parameters(), lr=0.3)
    ema = copy.deepcopy(m)
    d = 0.9

    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        with L.no_grad():
            for e, p in zip(ema.parameters(), m.parameters()):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        return loss.detach(), ema[0].weight
    return step


def _bare_clip(L, m):
    opt = L.optim.SGD(m.parameters(), lr=0.2)
    clip_grad_norm_ = L.nn.utils.clip_grad_norm_  # as `from torch.nn.utils import ...`

    def step(x, y):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        norm = clip_grad_norm_(m.parameters(), 0.4)
        opt.step()
        return loss.detach(), norm
    return step


def _run(L, make, dtype, compiled, steps=20):
    m, x, y = _setup(L, dtype)
    step = make(L, m)
    f = ember.compile(step) if compiled else step
    outs = []
    for _ in range(steps):
        r = f(x, y)
        r = r if isinstance(r, tuple) else (r,)
        outs.append([v.detach().numpy().copy() for v in r])
    params = [p.detach().numpy().copy() for p in m.parameters()]
    grads = [p.grad.numpy().copy() for p in m.parameters()]
    return outs, params, grads, (step, x, y)


CASES = [(_sgd_by_hand, ["zero_grad", "graph", "backward", "ops"]),
         (_clip_by_hand, ["zero_grad", "graph", "backward", "ops", "step"]),
         (_grad_data_clamp, ["zero_grad", "graph", "backward", "ops", "step"]),
         (_ema, ["zero_grad", "graph", "backward", "step", "ops"]),
         (_bare_clip, None)]


@pytest.mark.parametrize("make, program", CASES, ids=["sgd-by-hand", "clip-by-hand",
                                                      "grad-data-clamp", "ema", "bare-clip"])
@pytest.mark.parametrize("dt", ["float64", "float32"])
def test_ops_after_backward_compile_with_eagers_numbers(make, program, dt):
    ember.compiler.reset()
    oc, pc, gc, (step, x, y) = _run(ember, make, getattr(ember, dt), True)
    oe, pe, ge, _ = _run(ember, make, getattr(ember, dt), False)
    ot, pt, gt, _ = _run(torch, make, getattr(torch, dt), False)
    rtol = 1e-5 if dt == "float32" else 1e-10
    for c, e, t in zip(oc, oe, ot):
        for u, v, w in zip(c, e, t):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=1e-7)
            np.testing.assert_allclose(u, w, rtol=rtol, atol=1e-6)
    for c, e, t in zip(pc + gc, pe + ge, pt + gt):
        np.testing.assert_allclose(c, e, rtol=rtol, atol=1e-7)
        np.testing.assert_allclose(c, t, rtol=rtol, atol=1e-6)
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 0
    if program is not None:
        assert out.program == program
    ember.compile(step, fullgraph=True)(x, y)  # PyTorch's dynamo traces these whole too


def test_the_tail_reads_each_calls_gradients():
    # set_to_none makes each step's .grad a new tensor: the tail must not keep the first
    ember.compiler.reset()
    m, x, y = _setup(ember, ember.float64)
    f = ember.compile(_clip_by_hand(ember, m))
    totals = [float(f(x, y)[1]) for _ in range(4)]
    assert len(set(totals)) == 4


def _bool_on_tail(m):
    def step(x, y):
        m.zero_grad()
        loss = ember.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        total = sum(p.grad.norm() for p in m.parameters())
        if total > 1.0:  # data-dependent control flow on a gradient
            for p in m.parameters():
                p.grad.div_(total)
        return loss.detach()
    return step


def _graph_after_backward(m):
    def step(x, y):
        m.zero_grad()
        loss = ember.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        reg = sum((p.grad * p).sum() for p in m.parameters())  # grad mode on: a graph
        return loss.detach(), reg
    return step


@pytest.mark.parametrize("make, reason, line", [
    (_bool_on_tail, "bool(tensor)", "if total > 1.0:"),
    (_graph_after_backward, "backward() before ops that build an autograd graph",
     "loss.backward()")], ids=["bool", "autograd-graph"])
def test_what_a_tail_cannot_hold_breaks_naming_the_line(make, reason, line):
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        m, x, y = _setup(ember, ember.float64)
        step = make(m)
        f = ember.compile(step) if compiled else step
        runs.append([[v.detach().numpy().copy() for v in (r if isinstance(r, tuple) else (r,))]
                     for r in (f(x, y) for _ in range(3))])
    for a, b in zip(*runs):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 1
    assert out.break_reasons[0].reason.startswith(reason)
    assert line in out.break_reasons[0].user_stack[-1]
    with pytest.raises(ember._dynamo.exc.Unsupported, match=line.replace("(", r"\(")
                       .replace(")", r"\)")):
        ember.compile(step, fullgraph=True)(x, y)


def test_a_grad_read_before_backward_still_breaks():
    ember.compiler.reset()
    m, x, y = _setup(ember, ember.float64)
    m(x).sum().backward()

    def step(x, y):
        prev = sum(p.grad.sum() for p in m.parameters())  # last call's gradients
        m.zero_grad()
        loss = ember.nn.functional.cross_entropy(m(x), y) + 0 * prev
        loss.backward()
        return loss.detach()
    out = ember.compiler.explain(step)(x, y)
    assert out.graph_break_count == 1
    assert out.break_reasons[0].reason.startswith("a parameter's .grad read")


def test_a_tail_reading_forward_values_recompiles_per_batch_size():
    # its code may spell a forward value's sizes: no size-generic graph, one entry a size
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        m, _, _ = _setup(ember, ember.float64)
        opt = ember.optim.SGD(m.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            out = m(x)
            loss = ember.nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()
            with ember.no_grad():
                m[0].bias.add_(0.001)  # a parameter written after the step: a tail
                score = out.view(x.shape[0] * 3)[::3].sum()  # reads a forward value
            return loss.detach(), score
        f = ember.compile(step) if compiled else step
        got = []
        for n in (12, 7, 9, 7, 12):
            x, y = ember.tensor(_X[:n]), ember.tensor(_Y[:n])
            got.append([v.numpy().copy() for v in f(x, y)])
        runs.append(got)
    for a, b in zip(*runs):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-12)


def test_averaged_model_update_breaks_at_its_first_call_check():
    # update_parameters reads bool(n_averaged == 0): data-dependent control flow, a break in
    # PyTorch 2.13's dynamo too; the model's forward/backward still run as a compiled region
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        m, x, y = _setup(ember, ember.float64)
        opt = ember.optim.SGD(m.parameters(), lr=0.2)
        ema = ember.optim.swa_utils.AveragedModel(
            m, multi_avg_fn=ember.optim.swa_utils.get_ema_multi_avg_fn(0.9))

        def step(x, y):
            opt.zero_grad()
            loss = ember.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            ema.update_parameters(m)
            return loss.detach()
        f = ember.compile(step) if compiled else step
        losses = [f(x, y).item() for _ in range(5)]
        runs.append((losses, [p.detach().numpy().copy() for p in ema.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    out = ember.compiler.explain(step)(x, y)
    assert out.break_reasons[0].reason.startswith("bool(tensor)")
    assert "ema.update_parameters(m)" in out.break_reasons[0].user_stack[-1]
    assert out.pieces == ["Sequential"]
    with pytest.raises(ember._dynamo.exc.Unsupported, match="update_parameters"):
        ember.compile(step, fullgraph=True)(x, y)


def _wgan_clamp(m, opt):
    opt.step()
    for p in m.parameters():
        p.data.clamp_(-0.05, 0.05)  # WGAN's weight clipping


def _noise(m, opt):
    opt.step()
    for p in m.parameters():
        p.add_(ember.randn_like(p) * 0.01)  # draws after the step, in eager's order


def _grads_as_vector(m, opt):
    v = ember.nn.utils.parameters_to_vector([p.grad for p in m.parameters()])
    ember._foreach_mul_([p.grad for p in m.parameters()], (0.5 / v.norm()).clamp(max=1.0))
    opt.step()


def _stepped_weight_read(m, opt):
    opt.step()
    return m[0].weight.detach().sum()  # the stepped weight, through a detach


def _data_assigned(m, opt):
    opt.step()
    for p in m.parameters():
        p.data = p.data * 0.5  # re-points the parameter: a replay would not


TAILS = [(_wgan_clamp, None), (_noise, None), (_grads_as_vector, None),
         (_stepped_weight_read, None), (_data_assigned, "a tensor's .data assigned")]


@pytest.mark.parametrize("tail, brk", TAILS, ids=[t[0].__name__ for t in TAILS])
def test_more_tails_equal_eager(tail, brk):
    ember.compiler.reset()
    runs = []
    for compiled in (False, True):
        ember.manual_seed(0)
        m, x, y = _setup(ember, ember.float64)
        opt = ember.optim.SGD(m.parameters(), lr=0.2, momentum=0.9)

        def step(x, y):
            opt.zero_grad()
            loss = ember.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            with ember.no_grad():
                extra = tail(m, opt)
            return loss.detach(), extra if extra is not None else loss.detach()
        f = ember.compile(step) if compiled else step
        outs = [[v.numpy().copy() for v in f(x, y)] for _ in range(6)]
        runs.append((outs, [p.detach().numpy().copy() for p in m.parameters()]))
    for a, b in zip(runs[0][0], runs[1][0]):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-12)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    out = ember.compiler.explain(step)(x, y)
    if brk is None:
        assert out.graph_break_count == 0, out.break_reasons
        assert "ops" in out.program
    else:
        assert out.break_reasons[0].reason.startswith(brk)
        assert "p.data = p.data * 0.5" in out.break_reasons[0].user_stack[-1]


@pytest.mark.parametrize("make", [_sgd_by_hand, _ema], ids=["sgd-by-hand", "ema"])
def test_in_place_updates_written_into_their_target_are_eagers_bits(make):
    # ``p -= lr * g`` and ``e.mul_(d)`` run as one NumPy call with out= the parameter
    ember.compiler.reset()
    oc, pc, gc, (step, x, y) = _run(ember, make, ember.float32, True, steps=8)
    oe, pe, ge, _ = _run(ember, make, ember.float32, False, steps=8)
    for a, b in zip(pc + gc, pe + ge):
        np.testing.assert_array_equal(a, b)
    f = ember.compile(step)
    f(x, y)
    f(x, y)
    assert "out=" in "".join(f.explained.run.tail.src)


@pytest.mark.parametrize("dynamic", [None, True], ids=["automatic", "dynamic-true"])
@pytest.mark.parametrize("make", [_sgd_by_hand, _clip_by_hand], ids=["sgd-by-hand", "clip"])
def test_a_tail_of_gradients_and_parameters_follows_a_dynamic_batch(make, dynamic):
    # it reads no forward value, so the program becomes size-generic as any step does
    ember.compiler.reset()
    ember._dynamo.utils.counters.clear()
    runs = []
    for compiled in (False, True):
        m, _, _ = _setup(ember, ember.float64)
        step = make(ember, m)
        f = ember.compile(step, dynamic=dynamic) if compiled else step
        got = []
        for n in (12, 7, 9, 5, 12, 8):
            r = f(ember.tensor(_X[:n]), ember.tensor(_Y[:n]))
            got += [v.detach().numpy().copy() for v in (r if isinstance(r, tuple) else (r,))]
        runs.append(got + [p.detach().numpy().copy() for p in m.parameters()])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    assert ember._dynamo.utils.counters["stats"]["dynamic_graphs"] >= 1
