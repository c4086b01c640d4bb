"""What the batch-1 call's guard path reads (NOTE [ Guard cost ], NOTE [ Batch-1 inference ]):
a plain attribute compared by identity first still accepts an equal value that is another
object (``==``, as the general guard), and still fails on another value; ``OptimizedModule``
runs the compiled function's fast path itself, but not around a wrapper with its own call."""
import numpy as np
import pytest
import torch

import compilecheck
import ember
import ember.nn as nn
from ember._dynamo import eval_frame
from ember._dynamo.utils import counters
from ember.ops import _blas


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


class Scaled(nn.Module):
    def __init__(self, scale, shift=0):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.scale = scale
        self.shift = shift

    def forward(self, x):
        return self.lin(x) * self.scale + self.shift


def _other_object(v):
    """``v`` as a new object of the same type and value (not ``v`` itself)."""
    w = type(v)(str(v))
    assert w == v and w is not v
    return w


# (attribute, its value, an equal value made afresh, another value)
VALUES = [("scale", 2.5, lambda: _other_object(2.5), 3.5),
          ("shift", 1000, lambda: _other_object(1000), 3)]


@pytest.mark.parametrize("name,value,same,other", VALUES, ids=[v[0] for v in VALUES])
@pytest.mark.parametrize("infer", [False, True])
def test_plain_attributes_by_identity_then_equality(name, value, same, other, infer,
                                                    monkeypatch):
    # a Tensor subclass with __torch_function__ defined earlier in the process (other test
    # files) sends every call down the general path: this test is about the fast one
    from ember._state import _State
    monkeypatch.setattr(_State, "intercept", False)
    ember.manual_seed(0)
    m = Scaled(2.5)
    setattr(m, name, value)
    x = ember.randn(1, 4)
    tm = torch.nn.Linear(4, 3)
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(m.lin.weight.detach().numpy()))
        tm.bias.copy_(torch.from_numpy(m.lin.bias.detach().numpy()))
    f = ember.compile(m)
    mode = ember.inference_mode if infer else ember.enable_grad
    with mode():
        f(x)
        f(x)
        c = f._compiled
        assert c._last is not None
        setattr(m, name, same())  # equal, another object: no capture, the fast path runs
        assert c._last[1](c, (x,)) is not False
        got = f(x)
        assert counters["frames"]["total"] == 1
        setattr(m, name, other)  # another value: a new capture with eager's numbers
        got = f(x)
        assert counters["frames"]["total"] == 2
    want = tm(torch.from_numpy(x.numpy())) * m.scale + m.shift
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)


def test_a_missing_global_that_appears_fails_the_guard():
    """A global the forward names and did not find is guarded absent (``not in``): when it
    appears, the call captures again and reads it."""
    class Offset(nn.Module):
        def forward(self, x):
            try:
                off = _OFFSET  # noqa: F821 (set by the test)
            except NameError:
                off = None
            return x + 1.0 if off is None else x + off

    m = Offset()
    f = ember.compile(m)
    x = ember.randn(2, 3)
    f(x)
    f(x)
    np.testing.assert_allclose(f(x).numpy(), x.numpy() + 1.0)
    globals()["_OFFSET"] = 5.0
    try:
        np.testing.assert_allclose(f(x).numpy(), x.numpy() + 5.0)
    finally:
        del globals()["_OFFSET"]
    assert counters["frames"]["total"] == 2


class _Counting(eval_frame._Compiled):
    """A compiled function with a call of its own (as ``_WithKernels`` wraps its calls)."""
    calls = 0

    def __call__(self, *args, **kwargs):
        _Counting.calls += 1
        return super().__call__(*args, **kwargs)


def test_optimized_module_calls_a_wrapper_with_its_own_call():
    m = Scaled(2.0)
    c = _Counting(m, "inductor", False, None, eval_frame._code_of(m))
    f = eval_frame.OptimizedModule(m, c)
    x = ember.randn(1, 4)
    with ember.inference_mode():
        for _ in range(3):
            np.testing.assert_allclose(f(x).numpy(), m(x).numpy(), rtol=1e-6)
    assert _Counting.calls == 3 and c._last is not None


def test_optimized_module_fast_path_runs_training_entries():
    """A guard that passes for an entry without an inference function (grad on) runs the
    entry from ``OptimizedModule.__call__``: eager's gradients, one capture."""
    ember.manual_seed(0)
    m = Scaled(2.0)
    f = ember.compile(m)
    x = ember.randn(5, 4)
    for _ in range(3):
        m.zero_grad()
        f(x).sum().backward()
    g = m.lin.weight.grad.numpy().copy()
    m.zero_grad()
    m(x).sum().backward()
    np.testing.assert_allclose(g, m.lin.weight.grad.numpy(), rtol=1e-6)
    assert counters["frames"]["total"] == 1


needs_blas = pytest.mark.skipif(_blas.gemv_fn("f") is None,
                                reason="NumPy without its bundled OpenBLAS")


def _mlp(seed, sizes=(8, 6, 4)):
    ember.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


@needs_blas
def test_the_inference_guard_leaves_constant_shapes_to_the_inference_call():
    """The batch-1 inference call checks its constants' arrays (their shapes when one is
    another array), so its guard reads no parameter's shape; a training entry's guard does."""
    m = _mlp(0)
    f = ember.compile(m)
    x = ember.randn(1, 8)
    with ember.inference_mode():
        f(x)
        f(x)
    c = f._compiled
    run = c._last[2].run
    assert run._infer is not None and len(run._infer_consts) == 4
    src = _guard_src(c)
    # the inference function's body runs inside the guard, after its checks
    assert "_data.shape" not in src and "S = _L.pop()" in src and "INFER" not in src
    m.train()
    f(x).sum().backward()
    f(x).sum().backward()
    assert "_data.shape ==" in _guard_src(c) and "_L.pop()" not in _guard_src(c)


_guard_src = compilecheck.guard_source


# a parameter's array replaced (``.data =``): the same shape runs compiled without a capture;
# another shape captures again (eager's numbers, or eager's error)
REPOINTS = [("weight of the same shape", 0, "weight", (6, 8), None, 1),
            ("bias of the same shape", 2, "bias", (4,), None, 1),
            ("bias that broadcasts", 2, "bias", (1, 4), None, 2),
            ("bias of another size", 0, "bias", (5,), RuntimeError, None),
            ("weight of another shape", 0, "weight", (5, 8), RuntimeError, None)]


@needs_blas
@pytest.mark.parametrize("what,layer,name,shape,error,frames", REPOINTS,
                         ids=[r[0] for r in REPOINTS])
def test_a_repointed_parameter_of_another_shape_captures_again(what, layer, name, shape,
                                                                error, frames):
    m = _mlp(1)
    f = ember.compile(m)
    x = ember.randn(1, 8)
    with ember.inference_mode():
        f(x)
        f(x)
        getattr(m[layer], name).data = ember.randn(*shape)
        if error is not None:
            with pytest.raises(error):
                m(x)
            with pytest.raises(error):
                f(x)
        else:
            for _ in range(2):
                got, want = f(x), m(x)
                assert got.shape == want.shape
                np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)
    if frames is not None:  # (a capture that raises is not counted)
        assert counters["frames"]["total"] == frames


@needs_blas
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_a_refilled_input_is_read_in_place(dt, monkeypatch):
    """An input array seen by two calls in a row gets its own GEMV arguments (no copy into
    the x buffer): refilled in place, alternated with another array, made read-only or
    re-pointed, every call equals eager and torch."""
    from ember._state import _State
    monkeypatch.setattr(_State, "intercept", False)  # (see the test above)
    rng = np.random.default_rng(5)
    m = _mlp(3, (8, 6, 4)).to(getattr(ember, dt))
    tm = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4))
    tm = tm.to(getattr(torch, dt))
    with torch.no_grad():
        for p, q in zip(tm.parameters(), m.parameters()):
            p.copy_(torch.from_numpy(q.detach().numpy()))
    f = ember.compile(m)
    x = ember.tensor(rng.standard_normal((1, 8)), dtype=getattr(ember, dt))
    other = ember.tensor(rng.standard_normal((1, 8)), dtype=getattr(ember, dt))
    frozen = ember.tensor(rng.standard_normal((1, 8)), dtype=getattr(ember, dt))
    frozen._data.flags.writeable = False
    tol = 1e-6 if dt == "float32" else 1e-13

    def check(inp):
        got = f(inp)
        if dt == "float32":  # (float64's bias is added inside the GEMV: within rounding)
            np.testing.assert_array_equal(got.numpy(), m(inp).numpy())
        np.testing.assert_allclose(got.numpy(), m(inp).numpy(), rtol=tol, atol=tol)
        with torch.inference_mode():
            want = tm(torch.from_numpy(inp.numpy().copy())).numpy()
        np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)

    with ember.inference_mode():
        for step in range(12):
            if step == 8:
                x.data = ember.tensor(rng.standard_normal((1, 8)), dtype=getattr(ember, dt))
            x.copy_(ember.tensor(rng.standard_normal((1, 8)), dtype=getattr(ember, dt)))
            check(x)
            if step in (3, 4):
                check(other)
            if step in (5, 6, 7):  # (twice in a row while x's arguments are kept)
                check(frozen)
                check(frozen)
        cache = [e for e in f._compiled._last[2].run._infer.__globals__["_L"][-1]
                 if type(e) is list]
    assert len(cache) == 1 and cache[0][0] is x._data
    assert counters["frames"]["total"] == 1
