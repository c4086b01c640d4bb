"""Only the globals a captured function loads are guarded (issue 17, review rv2 C6): a
module-level loop variable named like an attribute the captured code uses (``for step in
range(N)`` with ``opt.step()``, ``self.step``) must not recompile every iteration, while a
global the code does read still recompiles when it changes."""
import textwrap

import ember
from ember._dynamo.eval_frame import _global_names
from ember._dynamo.utils import counters

_SCRIPT = textwrap.dedent('''
    import ember as torch
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 8)
    y = torch.tensor([0, 1, 0, 1])

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.step = 1.0

        def forward(self, h):
            return self.lin(h) * self.step * SCALE

    head = Head()
    SCALE = 1.0

    def loss_fn(a, b):
        return nn.functional.cross_entropy(head(model(a)), b)

    def train_step(a, b):
        opt.zero_grad()
        loss = loss_fn(a, b)
        loss.backward()
        opt.step()
        return loss

    losses = {"loss_fn": [], "train_step": []}
    for name in ("loss_fn", "train_step"):
        f = torch.compile(globals()[name])
        for step in range(6):
            losses[name].append(float(f(x, y)))
''')


def _run(loop_var="step"):
    counters.clear()
    ns = {"__name__": "ember_c6_case"}
    exec(compile(_SCRIPT.replace("for step in", f"for {loop_var} in"), "<c6>", "exec"), ns)
    return ns


def test_global_names_are_loads_not_attributes():
    def f(opt, x):
        opt.step()
        return [SCALE * v for v in x] + [len(x)]  # noqa: F821 (a global read in a comprehension)
    names = _global_names(f.__code__)
    assert "SCALE" in names and "len" in names
    assert "step" not in names  # an attribute name in co_names, not a global load
    assert "step" in f.__code__.co_names


def test_module_level_step_loop_does_not_recompile():
    ns = _run("it")  # the control: a loop variable no code names
    control = dict(counters["frames"])
    ns2 = _run("step")
    # the same captures as the control (6 iterations, 2 functions): no recompile per step
    assert dict(counters["frames"]) == control and control["total"] < 6, (control, counters)
    assert ns["losses"] == ns2["losses"]


def test_a_global_the_code_reads_still_recompiles():
    ns = _run()
    f = ember.compile(ns["loss_fn"])
    x, y = ns["x"], ns["y"]
    before = float(f(x, y))
    ns["SCALE"] = 3.0  # read by Head.forward: a new value must be seen
    after = float(f(x, y))
    ns["SCALE"] = 3.0
    eager = float(ns["loss_fn"](x, y))
    assert after == eager and after != before
