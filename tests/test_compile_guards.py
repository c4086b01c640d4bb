"""The generated fast guard of ember.compile (NOTE [ Guard cost ]): a call whose form matches
the entry the last call ran is checked in one generated function; every change the general
guards see must make it fail (recompile or another entry), never run a stale entry."""
import numpy as np
import pytest

import ember
import ember.nn as nn
from ember._dynamo import eval_frame
from ember._dynamo.utils import counters


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.scale = 2.0
        self.act = True

    def forward(self, x):
        h = self.lin(x) * self.scale
        return h.relu() if self.act else h


def _reassign_weight(m, x):
    m.lin.weight = nn.Parameter(ember.randn(3, 4))


def _weight_requires_grad(m, x):
    m.lin.weight.requires_grad_(False)


def _plain_attr(m, x):
    m.scale = 3.0


def _bool_attr(m, x):
    m.act = False


def _eval(m, x):
    m.eval()


def _no_grad(m, x):
    return ember.no_grad()


def _transposed(m, x):
    return ember.randn(4, 5).t()


def _dtype(m, x):
    return x.double()


def _shape(m, x):
    return ember.randn(7, 4)


def _input_requires_grad(m, x):
    return x.clone().requires_grad_()


def _reset(m, x):
    ember.compiler.reset()


CHANGES = [_reassign_weight, _weight_requires_grad, _plain_attr, _bool_attr, _eval, _no_grad,
           _transposed, _dtype, _shape, _input_requires_grad, _reset]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__[1:])
def test_every_guarded_change_fails_the_fast_guard(change):
    ember.manual_seed(0)
    m = Scaled()
    f = ember.compile(m)
    x = ember.randn(5, 4)
    f(x)
    f(x)
    assert f._compiled._last is not None  # the fast guard is in use
    out = change(m, x)
    ctx = out if hasattr(out, "__enter__") else None
    if isinstance(out, ember.Tensor):
        x = out
    if m.lin.weight.dtype != x.dtype:
        m.double()
    frames = counters["frames"]["total"]
    for _ in range(2):
        if ctx is not None:
            with ember.no_grad():
                got, want = f(x), m(x)
        else:
            got, want = f(x), m(x)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
    assert counters["frames"]["total"] == frames + 1  # one capture for the new guards


def test_alternating_entries_each_run_compiled():
    ember.manual_seed(0)
    m = Scaled()
    f = ember.compile(m, dynamic=False)
    a, b = ember.randn(5, 4), ember.randn(3, 4)
    for i in range(3):
        for x in (a, b):
            np.testing.assert_allclose(f(x).detach().numpy(), m(x).detach().numpy(),
                                       rtol=1e-6)
            if i:  # a capture is not remembered: later calls checked their entry's guard
                assert f._compiled._last[2].key[1][6][0][1] == tuple(x.shape)
    assert counters["frames"]["total"] == 2


def test_the_fast_guard_is_generated_code():
    m = Scaled()
    f = ember.compile(m)
    x = ember.randn(2, 4)
    f(x)
    f(x)
    epoch, fast, entry = f._compiled._last
    assert fast.__code__.co_filename == "<ember.compile guard>"
    assert fast(f._compiled, (x,)) and not fast(f._compiled, (ember.randn(3, 4),))
    assert not fast(f._compiled, (x, x)) and not fast(f._compiled, (1.0,))
    assert epoch == eval_frame._epoch[0]


def test_a_recapture_elsewhere_regenerates_the_guard_it_invalidates():
    m = Scaled()
    f = ember.compile(m, dynamic=False)
    c = f._compiled
    a, b = ember.randn(5, 4), ember.randn(3, 4)
    f(a)
    f(a)
    f(b)  # a capture: what the function reaches is discovered again
    f(a)
    assert c._last[1](c, (a,))  # the guard made against the new discovery passes
    frames = counters["frames"]["total"]
    f(a)
    assert counters["frames"]["total"] == frames == 2


SCALE = 2.0


@pytest.mark.parametrize("path", ["fast", "general"])
def test_a_global_equal_in_value_but_not_in_type_recompiles(path, monkeypatch):
    """``2 == 2.0``, but ``x * 2`` of an integer tensor is integer and ``x * 2.0`` float: a
    global or attribute changed from one to the other must not run the float graph (the same
    dtypes as eager and PyTorch: int64, then float32)."""
    if path == "general":  # no generated guard: every call checks entry.ok()
        monkeypatch.setattr(eval_frame, "_fast_guard", lambda *a: None)
    m = Scaled()
    x = ember.tensor([1, 2, 3])

    def f(x):
        return x * SCALE * m.scale
    cf = ember.compile(f)
    me = __import__(__name__)
    got = []
    for scale, attr in [(2.0, 2.0), (2, 2.0), (2, 2), (2.0, 2), (2, 2)]:
        monkeypatch.setattr(me, "SCALE", scale)
        m.scale = attr
        got.append(cf(x))
    floats, ints = [4.0, 8.0, 12.0], [4, 8, 12]
    assert [str(t.dtype)[6:] for t in got] == ["float32", "float32", "int64", "float32",
                                               "int64"]
    assert [t.tolist() for t in got] == [floats, floats, ints, floats, ints]
