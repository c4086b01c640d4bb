"""ember.export: ExportedProgram, graph signature, module(), Dim, save/load and the
data-dependent control-flow error, compared with torch.export on the same model."""
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn as nn
from ember import export as E


def _np(t):
    return t.detach().numpy()


def net(m):
    class Net(m.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = m.nn.Linear(3, 4)
            self.bn = m.nn.BatchNorm1d(4)
            self.register_buffer("scale", m.ones(4))
            self.register_buffer("tmp", m.zeros(4), persistent=False)

        def forward(self, x, y):
            return self.bn(self.fc(x)).relu() * self.scale + y + self.tmp

    return Net()


def twin(dtype="float32"):
    tm, em = net(torch).to(getattr(torch, dtype)).eval(), net(ember).to(getattr(ember, dtype))
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    return tm, em.eval()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exported_program_matches_torch_export(dtype):
    tm, em = twin(dtype)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    tep = torch.export.export(tm, (torch.tensor(x), torch.tensor(y)))
    eep = E.export(em, (ember.tensor(x), ember.tensor(y)))
    assert isinstance(eep, E.ExportedProgram)
    # the same signature: parameters and buffers lifted before the user inputs
    assert [str(s) for s in eep.graph_signature.input_specs] == \
        [str(s) for s in tep.graph_signature.input_specs]
    sig, tsig = eep.graph_signature, tep.graph_signature
    assert sig.parameters == tsig.parameters and sig.buffers == tsig.buffers
    assert sig.user_inputs == tsig.user_inputs
    assert sig.inputs_to_parameters == tsig.inputs_to_parameters
    assert sig.inputs_to_buffers == tsig.inputs_to_buffers
    assert sig.non_persistent_buffers == tsig.non_persistent_buffers == ("tmp",)
    assert list(eep.state_dict) == list(tep.state_dict)
    assert list(eep.constants) == list(tep.constants)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    x2, y2 = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(4).astype(dtype)
    got = eep.module()(ember.tensor(x2), ember.tensor(y2))
    want = tep.module()(torch.tensor(x2), torch.tensor(y2))
    np.testing.assert_allclose(_np(got), want.detach().numpy(), **tol)
    np.testing.assert_allclose(_np(got), _np(em(ember.tensor(x2), ember.tensor(y2))), **tol)
    # the graph module takes the lifted tensors first, as torch's
    flat = [eep.state_dict.get(s.target, eep.constants.get(s.target))
            for s in sig.input_specs if s.target is not None]
    out = eep.graph_module(*flat, ember.tensor(x2), ember.tensor(y2))
    assert isinstance(out, tuple) and len(out) == 1
    np.testing.assert_allclose(_np(out[0]), _np(got), **tol)
    assert "ExportedProgram:" in str(eep) and "Graph signature" in str(eep)
    assert eep.graph is eep.graph_module.graph
    assert [n for n, _ in eep.named_parameters()] == list(sig.parameters)


def test_module_guards_shapes_and_call_errors_as_torch():
    _, em = twin()
    ep = E.export(em, (ember.randn(5, 3), ember.randn(4)))
    with pytest.raises(AssertionError, match=r"Guard failed: x.size\(\)\[0\] == 5"):
        ep.module()(ember.randn(6, 3), ember.randn(4))
    with pytest.raises(AssertionError, match=r"Guard failed: x.dim\(\) == 2"):
        ep.module()(ember.randn(5), ember.randn(4))
    with pytest.raises(RuntimeError, match="Unable to call ExportedProgram directly"):
        ep(ember.randn(5, 3), ember.randn(4))
    with pytest.raises(TypeError):
        ep.module()(ember.randn(5, 3))


@pytest.mark.parametrize("mod,args,exc,match", [
    (lambda x: x, (ember.ones(2),), ValueError, "Expected `mod` to be an instance of"),
    (nn.ReLU(), [ember.ones(2)], E.UserError, "Expecting `args` to be a tuple"),
])
def test_export_bad_arguments(mod, args, exc, match):
    with pytest.raises(exc, match=match):
        E.export(mod, args)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


class ItemUser(nn.Module):
    def forward(self, x):
        return x * x.max().item()


@pytest.mark.parametrize("mod,what", [(Branchy(), "bool()"), (ItemUser(), ".item()")])
def test_data_dependent_control_flow_names_the_line(mod, what):
    with pytest.raises(E.GuardOnDataDependentSymNode) as info:
        E.export(mod, (ember.randn(3),))
    msg = str(info.value)
    assert f"data-dependent expression: {what}" in msg
    assert __file__ in msg and ("if x.sum() > 0" in msg or "x.max().item()" in msg)
    # torch raises its error of the same name (a RuntimeError) for the branch
    if isinstance(mod, Branchy):
        class TB(torch.nn.Module):
            def forward(self, x):
                if x.sum() > 0:
                    return x * 2
                return x
        with pytest.raises(RuntimeError) as theirs:
            torch.export.export(TB(), (torch.randn(3),))
        assert type(theirs.value).__name__ == "GuardOnDataDependentSymNode"
    assert isinstance(info.value, RuntimeError)


def test_constant_tensor_condition_is_not_data_dependent():
    class Flag(nn.Module):
        def forward(self, x):
            return x * 2 if ember.tensor(True) else x  # not computed from the inputs

    ep = E.export(Flag(), (ember.ones(2),))
    assert ep.module()(ember.ones(2)).tolist() == [2.0, 2.0]


def test_dim_lets_the_batch_vary_within_its_range():
    m = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.Linear(8, 2))
    batch = E.Dim("batch", min=2, max=64)
    assert repr(batch) == repr(torch.export.Dim("batch", min=2, max=64))
    ep = E.export(m, (ember.randn(4, 3),), dynamic_shapes={"input": {0: batch}})
    assert ep.range_constraints == {"batch": (2, 64)}
    for n in (2, 9, 64):
        x = ember.randn(n, 3)
        np.testing.assert_allclose(_np(ep.module()(x)), _np(m(x)), rtol=1e-6, atol=1e-6)
    with pytest.raises(AssertionError, match=r"size\(\)\[0\] <= 64"):
        ep.module()(ember.randn(65, 3))
    with pytest.raises(AssertionError, match=r"size\(\)\[0\] >= 2"):
        ep.module()(ember.randn(1, 3))
    # the tuple form and dims()
    a, b = E.dims("a", "b", min=1, max=10)
    assert (a.__name__, b.max) == ("a", 10)
    ep2 = E.export(m, (ember.randn(4, 3),), dynamic_shapes=({0: a},))
    assert ep2.module()(ember.randn(7, 3)).shape == (7, 2)


def size_branch(fw):
    class M(fw.nn.Module):
        def forward(self, x):
            return x * 2 if x.shape[0] == 4 else x + 1
    return M()


class Half(nn.Module):
    def forward(self, x):
        return x[: x.shape[0] // 2] * 2


def flat_cnn(m, view):
    """Conv + BatchNorm + pool + Flatten (or ``x.view(x.size(0), -1)``) + Linear: ember keeps
    the batch size in BatchNorm's and view's arguments, made symbolic for a Dim."""
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
            return self.fc(x.view(x.size(0), -1) if view else self.flat(x))
    return Net()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("view", [False, True], ids=["Flatten", "view(x.size(0), -1)"])
def test_dim_batch_on_batchnorm_flatten_cnn_matches_torch_export(view, dtype, tmp_path):
    tm = flat_cnn(torch, view).to(getattr(torch, dtype))
    with torch.no_grad():
        tm.bn.running_mean.uniform_(-1, 1)
        tm.bn.running_var.uniform_(0.5, 2)
    em = flat_cnn(ember, view).to(getattr(ember, dtype))
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    tm.eval()
    em.eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(dtype)
    ep = E.export(em, (ember.tensor(x),), dynamic_shapes={"x": {0: E.Dim("batch", max=64)}})
    tep = torch.export.export(tm, (torch.tensor(x),),
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", max=64)}})
    assert "sym_size" in ep.graph_module.code
    assert ep.range_constraints == {"batch": (0, 64)}
    buf = io.BytesIO()
    E.save(ep, buf)
    buf.seek(0)
    loaded = E.load(buf)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for n in (1, 5, 64):
        xn = np.random.default_rng(n).standard_normal((n, 2, 8, 8)).astype(dtype)
        want = _np(em(ember.tensor(xn)))
        np.testing.assert_allclose(_np(tep.module()(torch.tensor(xn))), want, **tol)
        for prog in (ep, loaded):
            got = prog.module()(ember.tensor(xn))
            assert got.shape == (n, 5)
            np.testing.assert_allclose(_np(got), want, **tol)
    with pytest.raises(AssertionError, match=r"size\(\)\[0\] <= 64"):
        ep.module()(ember.randn(65, 2, 8, 8, dtype=getattr(ember, dtype)))


def test_dim_errors():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    with pytest.raises(E.ConstraintViolationError, match=r"2 not in range \[4, 8\]"):
        E.export(m, (ember.randn(2, 3),), dynamic_shapes={"input": {0: E.Dim("b", min=4,
                                                                                max=8)}})
    # code that branches on the size specialises it, in torch too (its UserError)
    for fw, err in ((ember, E.ConstraintViolationError), (torch, RuntimeError)):
        with pytest.raises(err, match="inferred to be a constant|specialized it"):
            fw.export.export(size_branch(fw), (fw.randn(4, 3),),
                             dynamic_shapes={"x": {0: fw.export.Dim("b")}})
    with pytest.raises(E.ConstraintViolationError, match=r"(?s)b = x.size\(\)\[0\].*ops"):
        E.export(size_branch(ember), (ember.randn(4, 3),), dynamic_shapes={"x": {0: E.Dim("b")}})
    # ember only: a size that is no product or sum of the inputs' sizes names its op
    with pytest.raises(E.ConstraintViolationError, match="slice.*not a product or sum"):
        E.export(Half(), (ember.randn(4, 3),), dynamic_shapes={"x": {0: E.Dim("b")}})
    with pytest.raises(E.UserError, match="not an input of forward"):
        E.export(m, (ember.randn(4, 3),), dynamic_shapes={"nope": {0: E.Dim("b")}})


def test_kwargs_are_user_inputs():
    class K(nn.Module):
        def forward(self, x, *, scale=None, bias=None):
            return x * scale + bias

    x, s, b = ember.randn(3), ember.randn(3), ember.randn(3)
    ep = E.export(K(), (x,), {"scale": s, "bias": b})
    assert ep.graph_signature.user_inputs == ("x", "scale", "bias")
    x2, s2, b2 = ember.randn(3), ember.randn(3), ember.randn(3)
    np.testing.assert_allclose(_np(ep.module()(x2, scale=s2, bias=b2)), _np(x2 * s2 + b2))


def test_run_decompositions_and_state_dict_live():
    _, em = twin()
    ep = E.export(em, (ember.randn(5, 3), ember.randn(4)))
    dep = ep.run_decompositions()
    assert isinstance(dep, E.ExportedProgram) and dep.graph is not ep.graph
    x, y = ember.randn(5, 3), ember.randn(4)
    np.testing.assert_allclose(_np(dep.module()(x, y)), _np(ep.module()(x, y)), rtol=1e-6)
    assert E.default_decompositions() == {}


def test_save_load_round_trip(tmp_path):
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    x = ember.randn(2, 1, 8, 8)
    ep = E.export(m, (x,))
    path = tmp_path / "m.pt2"
    E.save(ep, str(path), extra_files={"note.txt": "hello"})
    extra = {"note.txt": ""}
    ep2 = E.load(str(path), extra_files=extra)
    assert extra["note.txt"] == "hello"
    assert [str(s) for s in ep2.graph_signature.input_specs] == \
        [str(s) for s in ep.graph_signature.input_specs]
    assert list(ep2.state_dict) == list(ep.state_dict)
    x2 = ember.randn(2, 1, 8, 8)
    np.testing.assert_allclose(_np(ep2.module()(x2)), _np(m(x2)), rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError, match="Guard failed"):
        ep2.module()(ember.randn(3, 1, 8, 8))
    buf = io.BytesIO()
    E.save(ep, buf)
    buf.seek(0)
    assert E.load(buf).example_inputs[0][0].shape == x.shape


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(RuntimeError, match="not an ember.export archive"):
        E.load(io.BytesIO(b"plain bytes"))
    ember.save({"w": ember.ones(1)}, tmp_path / "c.pt")
    with pytest.raises(RuntimeError, match="not an ember.export archive"):
        E.load(str(tmp_path / "c.pt"))

    class M(torch.nn.Module):
        def forward(self, x):
            return x * 2

    torch.export.save(torch.export.export(M(), (torch.ones(2),)), str(tmp_path / "t.pt2"))
    with pytest.raises(RuntimeError, match="written by PyTorch's torch.export.save"):
        E.load(str(tmp_path / "t.pt2"))
    with pytest.raises(TypeError, match="must be an instance of 'ExportedProgram'"):
        E.save(nn.ReLU(), io.BytesIO())


_MLP = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))
_MLP_EP = E.export(_MLP, (ember.randn(4, 5),), dynamic_shapes=({0: E.Dim("n", max=32)},))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2 ** 16))
def test_dynamic_batch_replays_any_size_in_range(n, seed):
    x = ember.tensor(np.random.default_rng(seed).standard_normal((n, 5)).astype("float32"))
    if n > 32:
        with pytest.raises(AssertionError, match="Guard failed"):
            _MLP_EP.module()(x)
        return
    np.testing.assert_allclose(_np(_MLP_EP.module()(x)), _np(_MLP(x)), rtol=1e-5, atol=1e-6)
