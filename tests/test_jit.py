"""ember.jit: the compatibility markers, script (PYTORCH_JIT=0 behaviour), trace and
save/load, compared with eager ember and with torch.jit on the same model."""
import io
import os
import subprocess
import sys
import typing
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn as nn
from ember import jit

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


# ---- models written once, built in both frameworks -------------------------------------------
def mlp(m):
    return m.nn.Sequential(m.nn.Linear(6, 8), m.nn.Tanh(), m.nn.Linear(8, 3))


def cnn(m):
    return m.nn.Sequential(m.nn.Conv2d(2, 4, 3, padding=1), m.nn.BatchNorm2d(4), m.nn.ReLU(),
                           m.nn.MaxPool2d(2), m.nn.Flatten(), m.nn.Linear(4 * 4 * 4, 5))


def twin(build, dtype):
    """The same model in torch and ember, same weights."""
    tm = build(torch).to(getattr(torch, dtype))
    em = build(ember).to(getattr(ember, dtype))
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in
                        tm.state_dict().items()})
    return tm, em


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("build,shape", [(mlp, (5, 6)), (cnn, (3, 2, 8, 8))])
def test_trace_matches_eager_and_torch_jit_trace(build, shape, dtype):
    tm, em = twin(build, dtype)
    tm.eval()
    em.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    tt = torch.jit.trace(tm, torch.tensor(x))
    et = jit.trace(em, ember.tensor(x))
    assert isinstance(et, jit.ScriptModule) and isinstance(et, nn.Module)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    x2 = np.random.default_rng(1).standard_normal(shape).astype(dtype)  # new values
    for inp in (x, x2):
        np.testing.assert_allclose(_np(et(ember.tensor(inp))), _np(em(ember.tensor(inp))), **tol)
        np.testing.assert_allclose(_np(et(ember.tensor(inp))), _np(tt(torch.tensor(inp))), **tol)
    # gradients flow through the replay to the (shared) parameters, as torch's
    xe, xt = ember.tensor(x2, requires_grad=True), torch.tensor(x2, requires_grad=True)
    et(xe).sum().backward()
    tt(xt).sum().backward()
    np.testing.assert_allclose(_np(xe.grad), _np(xt.grad), **tol)
    for (n, p), (_, q) in zip(em.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(_np(p.grad), _np(q.grad), **tol, err_msg=n)
    assert list(et.state_dict()) == list(tt.state_dict())
    assert repr(et) == repr(tt)


def test_trace_replays_other_batch_sizes_and_sees_new_weights():
    m = mlp(ember)
    t = jit.trace(m, ember.randn(4, 6))
    x = ember.randn(9, 6)
    np.testing.assert_allclose(_np(t(x)), _np(m(x)), rtol=1e-6)
    other = mlp(ember)
    t.load_state_dict(other.state_dict())  # after tracing: the replay reads them live
    np.testing.assert_allclose(_np(t(x)), _np(other(x)), rtol=1e-6)
    assert t[0].weight is m[0].weight and isinstance(t[0], jit.TracedModule)
    assert "addmm" in t.code and "addmm" in str(t.graph)


def test_trace_function_and_structured_inputs():
    def f(pair, scale):
        a, b = pair
        return a * scale + b.sin(), (a - b).sum(0)

    x, y, s = ember.randn(3, 4), ember.randn(3, 4), ember.randn(4)
    tf = jit.trace(f, ((x, y), s))
    assert isinstance(tf, jit.ScriptFunction)
    x2, y2, s2 = ember.randn(3, 4), ember.randn(3, 4), ember.randn(4)
    got, want = tf((x2, y2), s2), f((x2, y2), s2)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(_np(g_), _np(w_), rtol=1e-6)
    with pytest.raises(RuntimeError, match="expected inputs shaped as the example"):
        tf(x2, s2)


def test_trace_module_with_methods_and_kwarg_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x).relu()

        def other(self, x):
            return self.fc(x) * 2 + ember.ones(3)  # a constant of its own

    m = Two()
    x = ember.randn(2, 3)
    t = jit.trace_module(m, {"forward": x, "other": (x,)})
    np.testing.assert_allclose(_np(t(x)), _np(m(x)), rtol=1e-6)
    np.testing.assert_allclose(_np(t.other(x)), _np(m.other(x)), rtol=1e-6)
    buf = io.BytesIO()  # the other methods are saved beside forward
    t.save(buf)
    buf.seek(0)
    loaded = jit.load(buf)
    x5 = ember.randn(5, 3)
    for a in (x, x5):
        np.testing.assert_allclose(_np(loaded(a)), _np(m(a)), rtol=1e-6)
        np.testing.assert_allclose(_np(loaded.other(a)), _np(m.other(a)), rtol=1e-6)
    t2 = jit.trace(m, example_kwarg_inputs={"x": x})
    np.testing.assert_allclose(_np(t2(x)), _np(m(x)), rtol=1e-6)
    t3 = jit.trace(m.other, x)  # a bound method reads the module's weights live
    m.fc.weight.data.mul_(2)
    np.testing.assert_allclose(_np(t3(x)), _np(m.other(x)), rtol=1e-6)


def test_is_tracing_true_only_while_tracing():
    seen = []

    def f(x):
        seen.append(jit.is_tracing())
        return x + 1

    assert not jit.is_tracing()
    jit.trace(f, ember.ones(2), check_trace=False)
    # twice: once more with dimension 0 grown, to find the sizes that follow it (PyTorch
    # runs it once and records x.size(0) instead)
    assert seen == [True, True] and not jit.is_tracing() and not jit.is_scripting()


@pytest.mark.parametrize("body,what", [
    (lambda x: x * 2 if x.sum() > 0 else x, "a Python boolean"),
    (lambda x: x * x.sum().item(), "a Python number"),
    (lambda x: x + int(x[0]), "a Python integer"),
    (lambda x: x * len(x.tolist()), "a Python list"),
    (lambda x: x + float(x.numpy().sum()), "a NumPy array"),
])
def test_tracer_warning_where_a_python_value_is_baked_in(body, what):
    # the same warning torch gives for the same code, pointing at the user's line
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        jit.trace(body, ember.ones(3), check_trace=False)
        torch.jit.trace(body, torch.ones(3), check_trace=False)
    ours = [w for w in rec if w.category is jit.TracerWarning]
    theirs = [w for w in rec if w.category is torch.jit.TracerWarning]
    assert ours and theirs
    assert str(ours[0].message) == str(theirs[0].message)
    assert f"Converting a tensor to {what}" in str(ours[0].message)
    assert ours[0].filename == __file__


def test_no_warning_from_embers_own_conversions():
    m = cnn(ember).eval()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        jit.trace(m, ember.randn(2, 2, 8, 8))
    assert not [w for w in rec if "Converting a tensor" in str(w.message)]


# ---- sizes that follow the batch (NOTE [ Sizes from two captures ]) ---------------------------
class FlatCNN:
    """Conv + BatchNorm + pool, then ``Flatten`` or ``x.view(x.size(0), -1)``, in either
    framework: ember keeps the batch size in BatchNorm's and view's arguments."""

    @staticmethod
    def build(m, view):
        class Net(m.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = m.nn.Conv2d(2, 4, 3, padding=1)
                self.bn = m.nn.BatchNorm2d(4)
                self.pool = m.nn.MaxPool2d(2)
                self.flat = m.nn.Flatten()
                self.fc = m.nn.Linear(4 * 4 * 4, 5)

            def forward(self, x):
                x = self.pool(self.bn(self.conv(x)).relu())
                x = x.view(x.size(0), -1) if view else self.flat(x)
                return self.fc(x)
        return Net()


def _twin_cnn(view, dtype="float32"):
    tm = FlatCNN.build(torch, view).to(getattr(torch, dtype))
    em = FlatCNN.build(ember, view).to(getattr(ember, dtype))
    with torch.no_grad():  # running statistics that are not the defaults
        tm.bn.running_mean.uniform_(-1, 1)
        tm.bn.running_var.uniform_(0.5, 2)
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in
                        tm.state_dict().items()})
    return tm.eval(), em.eval()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("view", [False, True], ids=["Flatten", "view(x.size(0), -1)"])
def test_trace_at_batch_2_runs_at_other_batch_sizes_as_torch(view, dtype, tmp_path):
    tm, em = _twin_cnn(view, dtype)
    x = ember.randn(2, 2, 8, 8, dtype=getattr(ember, dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jit.TracerWarning)  # nothing is baked in
        et = jit.trace(em, x)
    tt = torch.jit.trace(tm, torch.tensor(x.numpy()))
    # torch records x.size(0) (Flatten is one aten::flatten); ember computes sym_size
    assert "sym_size" in et.code and ("aten::size" in str(tt.graph)) == view
    path = str(tmp_path / "cnn.pt")
    et.save(path)
    loaded = jit.load(path)
    real = torch.jit.load(path)  # PyTorch's own reader runs ember's archive at any batch
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for n in (1, 5, 64):
        xn = np.random.default_rng(n).standard_normal((n, 2, 8, 8)).astype(dtype)
        want = _np(em(ember.tensor(xn)))
        for got in (et(ember.tensor(xn)), loaded(ember.tensor(xn))):
            assert got.shape == (n, 5)
            np.testing.assert_allclose(_np(got), want, **tol)
        np.testing.assert_allclose(_np(tt(torch.tensor(xn))), want, **tol)
        np.testing.assert_allclose(_np(real(torch.tensor(xn))), want, **tol)
    # gradients at another batch size, as torch's trace
    xn = np.random.default_rng(7).standard_normal((3, 2, 8, 8)).astype(dtype)
    xe, xt = ember.tensor(xn, requires_grad=True), torch.tensor(xn, requires_grad=True)
    et(xe).square().sum().backward()
    tt(xt).square().sum().backward()
    np.testing.assert_allclose(_np(xe.grad), _np(xt.grad), **tol)


_TM, _EM = _twin_cnn(True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    _TRACED = jit.trace(_EM, ember.randn(2, 2, 8, 8))


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 40))
def test_traced_cnn_runs_at_any_batch_size(n):
    x = np.random.default_rng(n).standard_normal((n, 2, 8, 8)).astype("float32")
    np.testing.assert_allclose(_np(_TRACED(ember.tensor(x))), _np(_TM(torch.tensor(x))),
                               rtol=1e-5, atol=1e-5)


def test_trace_in_training_mode_follows_the_batch_and_keeps_running_stats():
    tm, em = _twin_cnn(False)
    tm.train()
    em.train()
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype("float32")
    et = jit.trace(em, ember.tensor(x), check_trace=False)
    with warnings.catch_warnings():  # torch's own batch-norm size check warns in training
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        tt = torch.jit.trace(tm, torch.tensor(x), check_trace=False)
    # the second capture (at a grown batch) does not update the running statistics again
    for k in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(_np(getattr(em.bn, k)), _np(getattr(tm.bn, k)), rtol=1e-5,
                                   atol=1e-6, err_msg=k)
    x5 = np.random.default_rng(1).standard_normal((5, 2, 8, 8)).astype("float32")
    np.testing.assert_allclose(_np(et(ember.tensor(x5))), _np(tt(torch.tensor(x5))),
                               rtol=1e-4, atol=1e-5)  # batch statistics of 5 samples


def test_size_arithmetic_follows_the_batch_and_check_inputs_of_other_sizes():
    def f(x, y):
        b = x.shape[0]
        z = ember.zeros(b, 2) + x.reshape(b * 3, 2)[:b]  # a tensor made, a product, a slice
        return z.flatten(0) + y.reshape(-1)[: 2 * b] + ember.ones(b + 1, 2)[1:].flatten()

    def g(x, y):
        return x.reshape(2 * x.shape[0], 3)

    args = (ember.randn(4, 6), ember.randn(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jit.TracerWarning)
        t = jit.trace(f, args, check_inputs=[(ember.randn(7, 6), ember.randn(7, 2))])
        tg = jit.trace(g, args)
    for n in (1, 9):
        a = (ember.randn(n, 6), ember.randn(n, 2))
        np.testing.assert_allclose(_np(t(*a)), _np(f(*a)), rtol=1e-6)
        assert tg(*a).shape == (2 * n, 3)
    assert "mul" in t.code and "add" in t.code
    # a size used first by a view, then by BatchNorm's layout: computed once, before both
    seq = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12), nn.Linear(12, 2)).eval()
    ts = jit.trace(seq, ember.randn(2, 3, 4))
    assert ts.code.count("sym_size(") == 1
    buf = io.BytesIO()
    ts.save(buf)
    buf.seek(0)
    for n in (1, 6):
        a = ember.randn(n, 3, 4)
        np.testing.assert_allclose(_np(ts(a)), _np(seq(a)), rtol=1e-6, atol=1e-7)
        buf.seek(0)
        np.testing.assert_allclose(_np(torch.jit.load(buf)(torch.tensor(a.numpy()))),
                                   _np(seq(a)), rtol=1e-5, atol=1e-6)


def test_tracer_warning_when_a_size_is_truly_baked():
    def half(x):
        return x[: x.shape[0] // 2] * 2  # n // 2 is no product or sum of the batch size

    with pytest.warns(jit.TracerWarning, match="keeps the size of dimension 0") as rec:
        t = jit.trace(half, ember.randn(4, 3))
    ours = [str(w.message) for w in rec if w.category is jit.TracerWarning]
    assert len(ours) == 1 and "slice" in ours[0]
    assert t(ember.randn(8, 3)).shape == (2, 3)  # baked: the example's 2 rows
    with warnings.catch_warnings():
        warnings.simplefilter("error", jit.TracerWarning)
        jit.trace(mlp(ember), ember.randn(2, 6))  # addmm/tanh: nothing to make symbolic
        flat = nn.Sequential(nn.Linear(3, 4), nn.Flatten(0))  # reshapes to (batch * 4,)
        t = jit.trace(flat, ember.randn(2, 3))
    x = ember.randn(6, 3)
    np.testing.assert_allclose(_np(t(x)), _np(flat(x)), rtol=1e-6)


def test_check_trace_finds_data_dependent_control_flow():
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x * 3

    with pytest.warns(jit.TracerWarning):
        with pytest.raises(jit.TracingCheckError, match="Graphs differed across invocations"):
            jit.trace(f, ember.ones(3), check_inputs=[(-ember.ones(3),)])


def test_check_trace_warns_on_random_nodes_and_baked_constants():
    def f(x):
        return x + ember.randn(3)  # a node: drawn again on each replay, as in torch

    with pytest.warns(jit.TracerWarning) as rec:
        tf = jit.trace(f, ember.ones(3))
    msgs = [str(w.message) for w in rec]
    assert any(m.startswith("Trace had nondeterministic nodes") for m in msgs)
    assert any("Output nr 1. of the traced function does not match" in m for m in msgs)
    assert not ember.equal(tf(ember.ones(3)), tf(ember.ones(3)))

    def g(x):
        return x + ember.from_numpy(np.ones(3))  # made outside any op: a constant

    with pytest.warns(jit.TracerWarning, match="made outside its ops") as rec:
        jit.trace(g, ember.ones(3))
    assert rec[0].filename == __file__  # pointed at the caller's line, not ember's


@pytest.mark.parametrize("fn,args,match", [
    (lambda x, n: x * n, (ember.ones(2), 3), r"Type 'Tuple\[Tensor, int\]' cannot be traced"),
    (lambda x: {"a": x}, (ember.ones(2),), "Encountering a dict at the output"),
    (lambda x: 3, (ember.ones(2),), "Only tensors, lists, tuples of tensors"),
])
def test_trace_bad_input_raises_like_torch(fn, args, match):
    with pytest.raises(RuntimeError, match=match):
        jit.trace(fn, args, check_trace=False)
    tfn = fn  # torch raises the same type for the same mistake
    targs = tuple(torch.ones(2) if isinstance(a, ember.Tensor) else a for a in args)
    with pytest.raises(RuntimeError):
        torch.jit.trace(tfn, targs, check_trace=False)


def test_trace_list_output_warns_unless_not_strict_and_no_inputs_raises():
    with pytest.warns(jit.TracerWarning, match="Encountering a list at the output"):
        jit.trace(lambda x: [x * 2], ember.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", jit.TracerWarning)
        out = jit.trace(lambda x: [x * 2], ember.ones(2), strict=False)(ember.ones(2))
        d = jit.trace(lambda x: {"a": x}, ember.ones(2), strict=False)(ember.ones(2))
    assert isinstance(out, list) and out[0].tolist() == [2.0, 2.0] and list(d) == ["a"]
    with pytest.raises(RuntimeError, match="example_kwarg_inputs or example_inputs"):
        jit.trace(lambda x: x)
    with pytest.raises(TypeError):
        jit.trace(lambda x: x, 3)


def test_trace_of_script_module_is_a_no_op():
    t = jit.trace(mlp(ember), ember.randn(2, 6))
    with pytest.warns(UserWarning, match="already a ScriptModule"):
        assert jit.trace(t, ember.randn(2, 6)) is t
    s = jit.script(mlp(ember))
    with pytest.warns(UserWarning, match="already a ScriptModule"):
        assert jit.trace(s, ember.randn(2, 6)) is s


def test_traced_module_train_eval_and_keyword_call():
    m = cnn(ember)
    t = jit.trace(m.eval(), ember.randn(2, 2, 8, 8))
    t.train()  # as torch's: the traced module's flags, not the original's
    assert all(c.training for c in t.modules()) and not any(c.training for c in m.modules())
    t.eval()
    assert not any(c.training for c in t.modules())
    with pytest.raises(RuntimeError, match="unexpected keyword"):
        t(x=ember.randn(2, 2, 8, 8))


# ---- script: PyTorch's PYTORCH_JIT=0 behaviour ----------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.seq = nn.Sequential(nn.ReLU(), nn.Linear(3, 1))

    def forward(self, x):
        return self.seq(self.fc(x))

    @jit.export
    def scaled(self, x):
        return self.forward(x) * 2


def test_script_module_runs_python_and_shares_tensors():
    m = Net()
    s = jit.script(m)
    assert isinstance(s, jit.ScriptModule) and isinstance(s, jit.RecursiveScriptModule)
    assert not isinstance(s, Net) and s.original_name == "Net"
    x = ember.randn(4, 2)
    np.testing.assert_allclose(_np(s(x)), _np(m(x)))
    np.testing.assert_allclose(_np(s.scaled(x)), _np(m(x) * 2))
    assert s.fc.weight is m.fc.weight and s.seq[1].bias is m.seq[1].bias
    assert len(s.seq) == 2 and isinstance(s.seq[0], jit.RecursiveScriptModule)
    opt = ember.optim.SGD(s.parameters(), lr=0.1)
    s(x).sum().backward()
    before = m.fc.weight.detach().clone()
    opt.step()
    assert not ember.equal(before, m.fc.weight)
    s.eval()
    assert not m.training and not m.seq.training
    # the repr and state_dict keys torch's scripted module has
    ts = torch.jit.script(_TorchNet())
    assert repr(s) == repr(ts).replace("_TorchNet", "Net")
    assert list(s.state_dict()) == list(ts.state_dict())


class _TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)
        self.seq = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 1))

    def forward(self, x):
        return self.seq(self.fc(x))


def test_script_code_and_graph_say_not_compiled():
    s = jit.script(Net())
    assert "not compiled" in s.code and "PYTORCH_JIT=0" in s.code
    assert "not compiled" in str(s.graph)
    with pytest.raises(RuntimeError, match="not compiled"):
        s.graph.nodes()

    @jit.script
    def f(x, y: int = 2):
        return x * y

    assert isinstance(f, jit.ScriptFunction) and f.name == "f"

    class WithMethod:
        @jit.script
        def twice(self, x):
            return x * 2

    assert WithMethod().twice(ember.ones(1)).tolist() == [2.0]
    assert f(ember.ones(2)).tolist() == [2.0, 2.0]
    assert "not compiled" in f.code and f.qualified_name == "__torch__.f"
    with pytest.raises(RuntimeError, match="not compiled"):
        f.save(io.BytesIO())


def test_script_bad_inputs():
    with pytest.raises(RuntimeError, match="cannot be compiled since it inherits from nn.Module"):
        jit.script(nn.Linear)
    with pytest.raises(TypeError, match="is a built-in class"):
        jit.script(3)

    class Plain:
        pass
    assert jit.script(Plain) is Plain
    s = jit.script(Net())
    assert jit.script(s) is s


def test_freeze_and_optimize_for_inference_as_torch():
    s = jit.script(Net())
    with pytest.raises(RuntimeError, match="only implemented for modules in eval mode"):
        jit.freeze(s)
    with pytest.raises(RuntimeError, match="Freezing expects a ScriptModule"):
        jit.freeze(Net())
    with pytest.raises(RuntimeError, match="optimize_for_inference expects a ScriptModule"):
        jit.optimize_for_inference(Net())
    assert jit.freeze(s.eval()) is s
    o = jit.optimize_for_inference(jit.script(Net()))
    assert not o.training


# ---- the compatibility markers ---------------------------------------------------------------
def test_markers_set_torchs_modifier_and_return_the_function():
    def f():
        return 1

    assert jit.ignore(f) is f and f._torchscript_modifier is jit.FunctionModifiers.IGNORE
    assert jit.unused(f) is f and f._torchscript_modifier is jit.FunctionModifiers.UNUSED
    assert jit.export(f) is f and f._torchscript_modifier is jit.FunctionModifiers.EXPORT
    assert jit.ignore(drop=False)(f) is f
    with pytest.warns(FutureWarning, match="ignore\\(True\\) has been deprecated"):
        jit.ignore(True)(f)
    assert f._torchscript_modifier is jit.FunctionModifiers.UNUSED
    with pytest.raises(RuntimeError, match="must be a bool or a function but got 3"):
        jit.ignore(3)
    with pytest.raises(RuntimeError, match="must be a bool or a function but got 3"):
        torch.jit.ignore(3)
    assert jit.script_if_tracing(f) is f and jit._script_if_tracing(f) is f
    assert jit.annotate(typing.List[int], [1]) == [1]
    assert jit.Final is typing.Final is torch.jit.Final
    assert jit.interface(Net) is Net
    assert jit._overload_method(f) is f
    assert issubclass(jit.TracerWarning, Warning) and issubclass(jit.Error, Exception)
    assert jit.Attribute(1, int) == (1, int) and jit.Attribute(1, int).value == 1


@pytest.mark.parametrize("obj,tp", [
    ([1, 2], typing.List[int]), ([1, "a"], typing.List[int]), ((1, 2), typing.Tuple[int, int]),
    ({"a": 1}, typing.Dict[str, int]),
    ({"a": "b"}, typing.Dict[str, int]), (None, typing.Optional[int]), (3, typing.Optional[int]),
    ("x", typing.Union[int, str]), ([], typing.List[str]), ((1,), typing.Tuple[str]),
])
def test_jit_isinstance_matches_torch(obj, tp):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert jit.isinstance(obj, tp) == torch.jit.isinstance(obj, tp)
    assert len(rec) in (0, 2)  # an empty container warns in both


@pytest.mark.parametrize("tp", [list, typing.Dict, tuple])
def test_jit_isinstance_bare_container_raises_as_torch(tp):
    with pytest.raises(RuntimeError) as theirs:
        torch.jit.isinstance([], tp)
    with pytest.raises(RuntimeError, match=str(theirs.value).replace("[", r"\[")):
        jit.isinstance([], tp)


def test_fork_wait_and_attribute_in_a_script_module():
    fut = jit.fork(lambda a, b=1: a + b, 2, b=3)
    assert isinstance(fut, jit.Future) and jit.wait(fut) == 5

    def bad():
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        jit.fork(bad)

    class Legacy(jit.ScriptModule):
        def __init__(self):
            super().__init__()
            self.count = jit.Attribute(0, int)

        @jit.script_method
        def forward(self, x):
            return x + self.count

    m = Legacy()
    assert m.count == 0 and m(ember.ones(1)).tolist() == [1.0]


TIMM_STYLE = '''
import torch
import torch.nn as nn
from typing import List


class Block(nn.Module):
    fused: torch.jit.Final[bool]

    def __init__(self):
        super().__init__()
        self.fused = False
        self.fc = nn.Linear(4, 4)
        self.grad_checkpointing = False

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable=True):
        self.grad_checkpointing = enable

    @torch.jit.unused
    def debug(self):
        return 0

    def forward(self, x):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return x
        if torch.jit.is_tracing():
            pass
        return self.fc(x).relu()


@torch.jit.script
def act(x):
    return x * torch.sigmoid(x)


torch.manual_seed(0)
m = Block()
m.set_grad_checkpointing(False)
x = torch.randn(2, 4)
traced = torch.jit.trace(m, x)
traced.save("block.pt")
loaded = torch.jit.load("block.pt")
print(round(float((loaded(x) - m(x)).abs().max()), 6), round(float(act(x).sum()), 4),
      type(torch.jit.script(m)).__name__, torch.jit.isinstance([x], List[torch.Tensor]))

# the deployment tutorial's torch.export path
from torch.export import Dim, export
ep = export(m.eval(), (x,), dynamic_shapes={"x": {0: Dim("batch", max=32)}})
torch.export.save(ep, "block.pt2")
ep2 = torch.export.load("block.pt2")
y = torch.randn(5, 4)
print(ep2.graph_signature.parameters, bool(torch.allclose(ep2.module()(y), m(y))))
'''


def test_unmodified_torch_code_runs_under_ember_run(tmp_path):
    script = tmp_path / "timm_style.py"
    script.write_text(TIMM_STYLE)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "ember.run", str(script)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    # what real torch prints for the script's checks (the middle value depends on the RNG)
    ours = out.stdout.splitlines()[0].split()
    assert ours[0] == "0.0" and ours[2:] == ["RecursiveScriptModule", "True"]
    assert out.stdout.splitlines()[1] == "('fc.weight', 'fc.bias') True"
    assert (tmp_path / "block.pt").exists()


# ---- save / load -----------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    m = cnn(ember).eval()
    x = ember.randn(2, 2, 8, 8)
    t = jit.trace(m, x)
    path = tmp_path / "cnn.pt"
    extra = {"meta.json": '{"classes": 5}'}
    t.save(str(path), _extra_files=extra)
    files = {"meta.json": ""}
    loaded = jit.load(str(path), map_location="cpu", _extra_files=files)
    assert files["meta.json"] == b'{"classes": 5}'
    assert isinstance(loaded, jit.ScriptModule) and loaded.original_name == "Sequential"
    np.testing.assert_allclose(_np(loaded(x)), _np(m(x)), rtol=1e-6)
    assert list(loaded.state_dict()) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert ember.equal(loaded.state_dict()[k], v)
    assert not loaded.training and loaded[1].original_name == "BatchNorm2d"
    # the loaded module is a module: new weights are seen
    other = cnn(ember).eval()
    loaded.load_state_dict(other.state_dict())
    np.testing.assert_allclose(_np(loaded(x)), _np(other(x)), rtol=1e-6)
    assert "convolution" in loaded.code
    # the archive is a zip with PyTorch's tensor records
    import zipfile
    names = zipfile.ZipFile(path).namelist()
    assert {"cnn/ember_jit.pkl", "cnn/ember_jit", "cnn/code/forward.py"} <= set(names)
    assert any(n.startswith("cnn/data/") for n in names)


def test_save_load_shared_parameters_and_functions():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    x = ember.randn(2, 3)
    buf = io.BytesIO()
    jit.save(jit.trace(m, x), buf)
    buf.seek(0)
    loaded = jit.load(buf)
    assert loaded[0].weight is loaded[2].weight
    np.testing.assert_allclose(_np(loaded(x)), _np(m(x)), rtol=1e-6)

    def f(a, b):
        return (a @ b).softmax(-1), a.transpose(0, 1)[1:, ...]
    a, b = ember.randn(3, 4), ember.randn(4, 2)
    buf = io.BytesIO()
    jit.trace(f, (a, b)).save(buf)
    buf.seek(0)
    g = jit.load(buf)
    for got, want in zip(g(a, b), f(a, b)):
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-6)


def test_scripted_module_saves_state_but_cannot_run_after_load():
    m = Net()
    buf = io.BytesIO(jit.script(m).save_to_buffer())
    loaded = jit.load(buf)
    assert ember.equal(loaded.fc.weight, m.fc.weight)
    with pytest.raises(RuntimeError, match="saved from ember.jit.script, which does not compile"):
        loaded(ember.randn(1, 2))
    with pytest.raises(TypeError, match="expected a ScriptModule"):
        jit.save(m, io.BytesIO())


@pytest.mark.parametrize("content,match", [
    (b"not a zip at all", "not an ember.jit archive"),
    (b"", "not an ember.jit archive"),
])
def test_load_refuses_what_is_not_an_archive(content, match):
    with pytest.raises(RuntimeError, match=match):
        jit.load(io.BytesIO(content))
    with pytest.raises(ValueError, match="does not exist"):
        jit.load("/nonexistent/model.pt")


def test_load_refuses_torch_checkpoints_and_torchscript(tmp_path):
    ckpt = tmp_path / "sd.pt"
    ember.save({"w": ember.ones(2)}, ckpt)
    with pytest.raises(RuntimeError, match="not an ember.jit archive"):
        jit.load(str(ckpt))
    ts = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.ones(1, 2)), str(ts))
    with pytest.raises(RuntimeError, match="TorchScript archive written by PyTorch"):
        jit.load(str(ts))


def test_ember_load_of_a_jit_archive_hands_off_to_jit_load_as_torch_load(tmp_path):
    m = mlp(ember).eval()
    path = str(tmp_path / "m.pt")
    jit.trace(m, ember.randn(2, 6)).save(path)
    torch.jit.save(torch.jit.trace(mlp(torch), torch.ones(1, 6)), str(tmp_path / "ts.pt"))
    for fw, p in ((ember, path), (torch, str(tmp_path / "ts.pt"))):
        with pytest.warns(UserWarning, match="looks like a TorchScript archive"):
            with pytest.raises(RuntimeError, match="Cannot use ``weights_only=True`` with "
                                                   "TorchScript archives"):
                fw.load(p)  # weights_only=True by default, in both
    with pytest.warns(UserWarning, match="dispatching to 'torch.jit.load'"):
        loaded = ember.load(path, weights_only=False)
    x = ember.randn(3, 6)
    assert isinstance(loaded, jit.ScriptModule)
    np.testing.assert_allclose(_np(loaded(x)), _np(m(x)), rtol=1e-6)


# ---- the stretch: real torch.jit.load reads ember's archive ---------------------------------
def ln_mlp(m):
    return m.nn.Sequential(m.nn.Linear(6, 8), m.nn.LayerNorm(8), m.nn.GELU(),
                           m.nn.Linear(8, 3), m.nn.LogSoftmax(-1))


@pytest.mark.parametrize("build,shape", [(mlp, (4, 6)), (cnn, (2, 2, 8, 8)),
                                         (ln_mlp, (2, 5, 6))])
def test_real_torch_jit_load_reads_embers_archive(tmp_path, build, shape):
    m = build(ember).eval()
    x = ember.randn(*shape)
    path = str(tmp_path / "model.pt")
    jit.trace(m, x).save(path)
    loaded = torch.jit.load(path)  # PyTorch's own TorchScript reader
    assert isinstance(loaded, torch.jit.ScriptModule) and loaded.original_name == "Sequential"
    want = _np(m(x))
    np.testing.assert_allclose(loaded(torch.tensor(x.numpy())).detach().numpy(), want,
                               rtol=1e-5, atol=1e-6)
    assert list(loaded.state_dict()) == list(m.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k].numpy(), v.numpy())
    assert "torch.linear" in loaded.code
    # the same file still loads in ember, which reads only its own records
    np.testing.assert_allclose(_np(jit.load(path)(x)), want, rtol=1e-6)


def test_archive_without_a_torchscript_spelling_is_embers_only(tmp_path):
    def f(x):
        return x.sin().cumsum(0)  # ops with no TorchScript spelling in ember's writer

    path = str(tmp_path / "f.pt")
    jit.trace(f, ember.randn(3)).save(path)
    import zipfile
    names = zipfile.ZipFile(path).namelist()
    assert "f/ember_jit.pkl" in names and "f/constants.pkl" not in names
    x = ember.randn(3)
    np.testing.assert_allclose(_np(jit.load(path)(x)), _np(f(x)), rtol=1e-6)
    with pytest.raises(RuntimeError):
        torch.jit.load(path)


class Residual(nn.Module):
    """A ResNet basic block in miniature: in-place ReLUs and an in-place residual add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        out = self.relu(self.bn(self.conv(x)))
        out += x
        return self.fc(self.pool(self.relu(out)).flatten(1))


def test_in_place_ops_on_results_that_require_grad_replay(tmp_path):
    # an in-place op on a tensor that requires grad runs on a snapshot of it: the trace must
    # still read the op's input from the graph, not bake the example's activations
    m = Residual().eval()
    x = ember.randn(2, 3, 6, 6)
    t = jit.trace(m, x)
    x2 = ember.randn(2, 3, 6, 6)
    np.testing.assert_allclose(_np(t(x2)), _np(m(x2)), rtol=1e-5, atol=1e-6)
    ep = ember.export.export(m, (x,))
    np.testing.assert_allclose(_np(ep.module()(x2)), _np(m(x2)), rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "res.pt")
    t.save(path)
    got = torch.jit.load(path)(torch.tensor(x2.numpy())).detach().numpy()
    np.testing.assert_allclose(got, _np(m(x2)), rtol=1e-5, atol=1e-6)


def test_deepcopy_of_traced_scripted_and_exported_modules():
    import copy
    m = mlp(ember)
    x = ember.randn(3, 6)
    t = jit.trace(m, x)
    c = copy.deepcopy(t)
    assert c[0].weight is not m[0].weight
    np.testing.assert_allclose(_np(c(x)), _np(m(x)), rtol=1e-6)
    c[0].weight.data.zero_()  # the copy's tensors are its own
    assert not ember.equal(c(x), t(x))
    np.testing.assert_allclose(_np(copy.deepcopy(jit.script(m))(x)), _np(m(x)), rtol=1e-6)
    em = copy.deepcopy(ember.export.export(m, (x,)).module())
    np.testing.assert_allclose(_np(em(x)), _np(m(x)), rtol=1e-6)
    # the trace keeps no activation of the example alive
    assert all("val" not in n.meta for n in t.graph.nodes)
