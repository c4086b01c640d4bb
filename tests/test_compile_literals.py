"""Tensors made from Python data inside a compiled function (``torch.tensor([1., 2.])``,
``torch.tensor(0.5)``, ``torch.as_tensor(list)``, ``torch.tensor(python_float)``,
``torch.from_numpy``, ``x.new_tensor``): one graph, no break, numbers equal eager ember's and
torch's (forward and gradients), literals folded (NOTE [ Constant folding ]), and a Python
value they came from guarded: a changed value recompiles, never a stale graph (NOTE [ Python
values ] in ember/_dynamo/eval_frame.py)."""
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember._dynamo.utils import counters
from test_compile_fold import _compile  # ember.compile keeping its compiled regions

_A = np.array([1.5, -2.0, 0.25])
_X = np.random.default_rng(0).standard_normal((4, 3))

# name -> fn(lib, x): literals of each form, in the forward of something with a gradient
CASES = {
    "tensor-list": lambda L, x: x * L.tensor([1.0, 2.0, 3.0], dtype=x.dtype),
    "tensor-scalar": lambda L, x: x * L.tensor(0.5, dtype=x.dtype),
    "tensor-nested": lambda L, x: x @ L.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0],
                                               [0.0, 0.0, 1.0]], dtype=x.dtype),
    "as_tensor-list": lambda L, x: x + L.as_tensor([0.5, -1.0, 2.0], dtype=x.dtype),
    "as_tensor-comprehension": lambda L, x: x - L.as_tensor([i / 4 for i in range(3)],
                                                            dtype=x.dtype),
    "tensor-of-shape": lambda L, x: x / L.tensor(x.shape[0], dtype=x.dtype),
    "tensor-long-index": lambda L, x: x[:, L.tensor([2, 0])].tanh(),
    "tensor-bool-mask": lambda L, x: L.where(L.tensor([True, False, True]), x, -x),
    "tensor-int-promotes": lambda L, x: x * L.tensor([1, 2, 3]),
    "tensor-of-numpy": lambda L, x: x * L.tensor(_A, dtype=x.dtype),
    "from_numpy": lambda L, x: x * L.from_numpy(_A).to(x.dtype),
    "new_tensor": lambda L, x: x * x.new_tensor([1.0, -1.0, 0.5]),
    "tensor-to": lambda L, x: x * L.tensor([1, 2, 3]).to(x),
    "tensor-device": lambda L, x: x * L.tensor(0.25, device=x.device, dtype=x.dtype),
    "literal-loss": lambda L, x: ((x.sum(0) - L.tensor([0.5, 0.25, 1.0], dtype=x.dtype)) ** 2)
    .mean() * L.tensor(0.5, dtype=x.dtype),
}


def _run(lib, name, dtype, fn=None):
    x = lib.tensor(_X, dtype=getattr(lib, dtype), requires_grad=True)
    out = (fn or CASES[name])(lib, x)
    g, = lib.autograd.grad(out.sum(), x)
    return out.detach().numpy(), g.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(CASES))
def test_literals_are_one_graph_with_eagers_and_torchs_numbers(name, dtype):
    ember.compiler.reset()
    fn = CASES[name]
    x = ember.tensor(_X, dtype=getattr(ember, dtype), requires_grad=True)
    out = ember.compiler.explain(lambda x: fn(ember, x))(x)
    assert out.graph_break_count == 0 and out.graph_count == 1
    cf = ember.compile(lambda L, x: fn(L, x), fullgraph=True)
    eager, ref = _run(ember, name, dtype), _run(torch, name, dtype)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for _ in range(3):  # the capture, then the compiled code
        comp = _run(ember, name, dtype, cf)
        for c, e, t in zip(comp, eager, ref):
            np.testing.assert_allclose(c, e, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(c, t, **tol)


def test_a_literal_is_folded_and_an_array_read_at_each_call():
    ember.compiler.reset()
    arr = np.array([1.0, 2.0, 3.0])

    def f(x):
        return x * ember.tensor([1.0, -2.0, 0.5], dtype=x.dtype) + ember.as_tensor(arr)
    cf, regions = _compile(f)
    x = ember.tensor(_X, requires_grad=True)
    np.testing.assert_array_equal(cf(x).detach().numpy(), f(x).detach().numpy())
    src = regions[0].forward_src
    assert "F_tensor" not in src  # made once, at compile time
    assert "F_as_tensor" in src   # an array may change: read at each call, as eager does
    arr[1] = 10.0
    np.testing.assert_array_equal(cf(x).detach().numpy(), f(x).detach().numpy())
    _A_saved = _A.copy()
    try:  # from_numpy shares the array: a write between calls is seen
        g = ember.compile(lambda x: x * ember.from_numpy(_A))
        g(x)
        _A[0] = -7.0
        np.testing.assert_array_equal(g(x).detach().numpy(), (x * ember.from_numpy(_A))
                                      .detach().numpy())
    finally:
        _A[:] = _A_saved


class _Cfg:
    pass


_G = {"s": 0.5}
_OBJ = _Cfg()
_OBJ.s = 0.5
_OBJ.inner = types.SimpleNamespace(s=0.5)
_LIST = [0.5, 2.0]
_SCALE = 0.5
_CONFIG = types.ModuleType("config")  # a user's config.py
_CONFIG.SCALE = 0.5


class _Scaled(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = {"s": 0.5}

    def forward(self, x):
        return x * ember.tensor(self.cfg["s"])


class _Trainer:
    def __init__(self):
        self.s = 0.5

    def run(self, x):
        return x * ember.tensor([self.s, 1.0, 1.0])


def _frames():
    return counters["frames"]["total"]


# (the function, a change to what it read, how the change is undone)
_MOD = _Scaled()
_TR = _Trainer()
VALUES = {
    "global": (lambda x: x * ember.tensor(_SCALE),
               lambda v: globals().__setitem__("_SCALE", v)),
    "dict-item": (lambda x: x * ember.tensor(_G["s"]), lambda v: _G.__setitem__("s", v)),
    "attribute": (lambda x: x * ember.tensor([_OBJ.s, 1.0, 1.0]),
                  lambda v: setattr(_OBJ, "s", v)),
    "nested-attribute": (lambda x: x * ember.tensor(_OBJ.inner.s),
                         lambda v: setattr(_OBJ.inner, "s", v)),
    "list-element": (lambda x: x * ember.as_tensor([_LIST[0], 1.0, 1.0]),
                     lambda v: _LIST.__setitem__(0, v)),
    "list-length": (lambda x: x * ember.tensor(float(len(_LIST))),
                    lambda v: _LIST.append(v) if v != 0.5 else _LIST.pop()),
    "plain-scalar": (lambda x: x * _G["s"], lambda v: _G.__setitem__("s", v)),
    "module-dict": (_MOD, lambda v: _MOD.cfg.__setitem__("s", v)),
    "method-self": (_TR.run, lambda v: setattr(_TR, "s", v)),
    "module-attribute": (lambda x: x * ember.tensor(_CONFIG.SCALE),
                         lambda v: setattr(_CONFIG, "SCALE", v)),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_a_python_value_a_literal_came_from_is_guarded(name):
    ember.compiler.reset()
    fn, change = VALUES[name]
    cf = ember.compile(fn)
    x = ember.tensor(_X)
    try:
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())
        n = _frames()
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())
        assert _frames() == n  # the same value: the compiled code runs
        change(0.75)
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())  # never stale
        assert _frames() == n + 1  # a recompile, as PyTorch's guard on the value
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())
        assert _frames() == n + 1
        change(0.5)  # back (the entry of a failed value guard was replaced: one more)
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())
        np.testing.assert_array_equal(cf(x).numpy(), fn(x).numpy())
        assert _frames() == n + 2
    finally:
        change(0.5)


def test_a_float_argument_recompiles_per_value():
    ember.compiler.reset()

    def f(x, s):
        return x * ember.tensor(s)
    cf = ember.compile(f)
    x = ember.tensor(_X)
    for s in (0.5, 0.25, 0.5, -3.0):
        np.testing.assert_array_equal(cf(x, s).numpy(), f(x, s).numpy())
    assert ember.compiler.explain(f)(x, 0.5).graph_break_count == 0


def test_a_value_the_function_changes_is_a_side_effect_break():
    ember.compiler.reset()
    stats = {"inner": {"n": 0}}

    def f(x):
        stats["inner"]["n"] += 1  # two levels down: a replay would not count
        return x * ember.tensor(2.0)
    cf = ember.compile(f)
    x = ember.tensor(_X)
    for _ in range(3):
        np.testing.assert_array_equal(cf(x).numpy(), 2 * _X)
    assert stats["inner"]["n"] == 3
    reasons = [b.reason for b in ember.compiler.explain(f)(x).break_reasons]
    assert reasons and all("Python side effect" in r for r in reasons)
    with pytest.raises(ember._dynamo.Unsupported, match="Python side effect"):
        ember.compile(f, fullgraph=True)(x)


def _step_run(lib, compiled: bool, steps=6):
    """A training step whose loss mixes literals and a Python weight, with AdamW; returns the
    losses and final weights."""
    lib.manual_seed(0)
    m = lib.nn.Linear(3, 2).double()
    with lib.no_grad():
        m.weight.copy_(lib.tensor(_X[:2]))
        m.bias.zero_()
    opt = lib.optim.AdamW(m.parameters(), lr=1e-2)
    w = {"a": 0.5}
    x = lib.tensor(_X)

    def step(x):
        opt.zero_grad()
        out = m(x) * lib.tensor([1.0, w["a"]], dtype=x.dtype)
        loss = ((out - lib.as_tensor([0.5, -0.5], dtype=x.dtype)) ** 2).mean() * \
            lib.tensor(0.5, dtype=x.dtype)
        loss.backward()
        opt.step()
        return loss
    f = ember.compile(step) if compiled else step
    losses = []
    for i in range(steps):
        if i == steps // 2:
            w["a"] = 2.0
        losses.append(float(f(x).detach()))
    return losses, m.weight.detach().numpy()


def test_a_training_step_with_literals_equals_eager_and_torch():
    ember.compiler.reset()
    lc, wc = _step_run(ember, True)
    le, we = _step_run(ember, False)
    lt, wt = _step_run(torch, False)
    np.testing.assert_allclose(lc, le, rtol=1e-12)
    np.testing.assert_allclose(lc, lt, rtol=1e-10)
    np.testing.assert_allclose(wc, we, rtol=1e-12)
    np.testing.assert_allclose(wc, wt, rtol=1e-10)


def test_a_zero_dim_loss_scaled_by_a_literal_and_returned():
    # the returned loss is also backward()'s: its two incoming gradients are 0-d arrays, whose
    # sum NumPy makes a scalar; the compiled backward must keep it an array
    ember.compiler.reset()
    m = ember.nn.Linear(3, 1)
    opt = ember.optim.SGD(m.parameters(), lr=0.1)
    half = ember.tensor(0.5)

    def step(x):
        opt.zero_grad()
        loss = m(x).pow(2).mean() * half
        loss.backward()
        opt.step()
        return loss
    cf = ember.compile(step)
    x = ember.tensor(_X, dtype=ember.float32)
    losses = [float(cf(x).detach()) for _ in range(4)]
    assert losses == sorted(losses, reverse=True)
    assert ember.compiler.explain(step)(x).graph_break_count == 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=3, max_size=3),
       st.sampled_from(["float32", "float64"]))
def test_literal_values_equal_torch(values, dtype):
    ember.compiler.reset()

    def f(L, x):
        return (x * L.tensor(values, dtype=x.dtype)).sin().sum(1)
    cf = ember.compile(f)
    comp = _run(ember, "", dtype, cf)
    ref = _run(torch, "", dtype, f)
    for c, t in zip(comp, ref):
        np.testing.assert_allclose(c, t, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   atol=1e-6 if dtype == "float32" else 1e-12)


_MODEL = ember.nn.Linear(3, 2)


def _global_model(x):
    return _MODEL(x) * 2


def test_a_re_assigned_module_recompiles():
    # the names a function reaches a module by are guarded on the module (PyTorch's ID_MATCH)
    global _MODEL
    ember.compiler.reset()
    x = ember.tensor(_X)
    trainer = _Trainer()
    trainer.model = ember.nn.Linear(3, 2).double()
    trainer.run = types.MethodType(lambda self, x: self.model(x) * self.s, trainer)

    def closure():
        m = ember.nn.Linear(3, 2).double()

        def f(x):
            return m(x)

        def swap():
            nonlocal m
            m = ember.nn.Linear(3, 2).double()
        return f, swap
    f, swap = closure()
    saved = _MODEL
    _MODEL = ember.nn.Linear(3, 2).double()
    try:
        cases = [(_global_model, lambda: globals().__setitem__("_MODEL",
                                                               ember.nn.Linear(3, 2).double())),
                 (trainer.run, lambda: setattr(trainer, "model", ember.nn.Linear(3, 2).double())),
                 (f, swap)]
        for fn, change in cases:
            cf = ember.compile(fn)
            for _ in range(2):
                np.testing.assert_array_equal(cf(x).detach().numpy(), fn(x).detach().numpy())
            change()
            for _ in range(2):
                np.testing.assert_array_equal(cf(x).detach().numpy(), fn(x).detach().numpy())
            assert ember.compiler.explain(fn)(x).graph_break_count == 0
    finally:
        _MODEL = saved
