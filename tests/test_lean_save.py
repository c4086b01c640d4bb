"""The lean save path of raw ops keeps PyTorch's semantics (issue 15, eager overhead).

``save_for_backward``'s item k is taken as input k when it is that input's array (no scan,
no type test; NOTE [ Saved tensors ]), else matched by identity as before; ``saves_inputs``
ops (Mul, Div, DivMode) skip the matching.  This checks what
is saved against torch's ``_saved_*`` attributes, and the behaviours that read saved tensors:
in-place after save, saved_tensors_hooks, inference tensors, retain_graph, double backward.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

OPS = [("mul", lambda a, b: a * b), ("div", lambda a, b: a / b),
       ("floor_div", lambda a, b: a.div(b, rounding_mode="floor"))]
# (a requires grad, b: "t" tensor requiring grad, "c" constant tensor, "s" Python scalar,
# "same" a itself, "detached" a.detach(): one array at two positions, only one requires grad)
CASES = [(True, "t"), (False, "t"), (True, "c"), (True, "s"), (True, "same"),
         (True, "detached")]


def _operands(mod, ra, kind, dtype="float64"):
    rng = np.random.default_rng(0)
    a = mod.from_numpy(rng.uniform(1, 2, (3, 4))).to(getattr(mod, dtype)).requires_grad_(ra)
    if kind == "s":
        return a, 1.5
    if kind == "same":
        return a, a
    if kind == "detached":
        return a, a.detach()
    b = mod.from_numpy(rng.uniform(1, 2, (3, 4))).to(getattr(mod, dtype))
    return a, b.requires_grad_(kind == "t")


def _describe(x, a, b):
    """What a saved slot holds: None, a scalar, or which operand (and its requires_grad)."""
    if x is None or not hasattr(x, "requires_grad"):
        return None if x is None else "scalar"
    return ("a" if x is a else "b" if x is b else "other", x.requires_grad)


@pytest.mark.parametrize("name, fn", OPS)
@pytest.mark.parametrize("ra, kind", CASES)
def test_saved_tensors_are_torchs(name, fn, ra, kind):
    got = []
    for mod in (ember, torch):
        a, b = _operands(mod, ra, kind)
        node = fn(a, b).grad_fn
        if mod is ember:
            saved = node.saved_tensors
        else:
            saved = (node._saved_self, node._saved_other)
            if kind == "s" and saved[1] is not None:
                saved = (saved[0], 1.5)  # torch keeps the scalar as a wrapped tensor
        got.append([_describe(x, a, b) for x in saved])
    assert got[0] == got[1]


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "relu", "log", "sin"])
def test_unary_saves_input_or_result_as_torch(name):
    for mod in (ember, torch):
        x = mod.linspace(0.5, 2.0, 6, dtype=mod.float64).requires_grad_()
        y = getattr(x, name)()
        with mod.no_grad():
            (x if name in ("log", "sin") else y).mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.parametrize("name, fn", OPS[:2])
@pytest.mark.parametrize("ra, kind", CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grads_and_double_backward_match_torch(name, fn, ra, kind, dtype):
    res = []
    for mod in (ember, torch):
        a, b = _operands(mod, ra, kind, dtype)
        inputs = [x for x in (a, b) if isinstance(x, mod.Tensor) and x.requires_grad]
        inputs = list({id(x): x for x in inputs}.values())
        y = fn(a, b)
        gs = mod.autograd.grad((y * y).sum(), inputs, create_graph=True)
        gg = mod.autograd.grad(sum(g.sum() for g in gs), inputs)
        res.append([np.asarray(g.detach().to(mod.float64).numpy()) for g in gs + gg])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for x, y in zip(*res):
        np.testing.assert_allclose(x, y, **tol)


@pytest.mark.parametrize("name, fn", OPS)
@pytest.mark.parametrize("which", [0, 1])
def test_inplace_after_save_raises_as_torch(name, fn, which):
    errs = []
    for mod in (ember, torch):
        a, b = _operands(mod, True, "t")
        y = fn(a, b)
        with mod.no_grad():
            (a, b)[which].add_(1.0)
        with pytest.raises(RuntimeError) as e:
            y.sum().backward()
        errs.append(str(e.value).split("Hint")[0])
    assert errs[0] == errs[1]


@pytest.mark.parametrize("name, fn", OPS[:2])
def test_saved_tensors_hooks_see_lean_saves(name, fn):
    seen = {}
    for mod in (ember, torch):
        packed = []

        def pack(t):
            packed.append(tuple(t.shape))
            return t

        a, b = _operands(mod, True, "t")
        with mod.autograd.graph.saved_tensors_hooks(pack, lambda t: t * 1):
            y = fn(a, b)
        y.sum().backward()
        seen[mod] = (sorted(packed), a.grad.detach().to(mod.float64).numpy())
    assert seen[ember][0] == seen[torch][0]
    np.testing.assert_allclose(seen[ember][1], seen[torch][1], rtol=1e-12)


def test_inference_tensor_saved_raises():
    for mod in (ember, torch):
        with mod.inference_mode():
            b = mod.ones(3)
        a = mod.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
            a * b


@pytest.mark.parametrize("name, fn", OPS[:2])
def test_second_backward_without_retain_graph_raises(name, fn):
    for mod in (ember, torch):
        a, b = _operands(mod, True, "t")
        y = fn(a, b).sum()
        y.backward()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.backward()


# ---- input shapes recorded only where a gradient must be reduced or cast (_meta's _SAME) ----

BINARY = [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("rsub", lambda a, b: b - a),
          ("add_alpha", lambda a, b: a.add(b, alpha=2.0)), ("mul", lambda a, b: a * b),
          ("div", lambda a, b: a / b)]
# (shape and dtype of a, of b: None means a Python scalar 1.5, "c" a complex scalar)
OPERANDS = [((3, 4), "float32", (3, 4), "float32"), ((3, 4), "float32", (4,), "float32"),
            ((3, 1), "float64", (1, 4), "float64"), ((3, 4), "float32", (3, 4), "float64"),
            ((3, 4), "float32", None, None), ((3, 4), "float64", None, "c"),
            ((3, 4), "float32", (), "float32")]


def _make_operand(mod, shape, dtype, seed):
    if shape is None:
        return 1.5 + 0.5j if dtype == "c" else 1.5
    arr = np.random.default_rng(seed).uniform(1, 2, shape)
    return mod.from_numpy(arr).to(getattr(mod, dtype)).requires_grad_()


@pytest.mark.parametrize("name, fn", BINARY)
@pytest.mark.parametrize("sa, da, sb, db", OPERANDS)
def test_binary_grads_shapes_dtypes_match_torch(name, fn, sa, da, sb, db):
    res = []
    for mod in (ember, torch):
        a, b = _make_operand(mod, sa, da, 1), _make_operand(mod, sb, db, 2)
        inputs = [x for x in (a, b) if isinstance(x, mod.Tensor)]
        y = fn(a, b)
        g = mod.ones_like(y) if not y.is_complex() else mod.ones_like(y) * (1 - 1j)
        gs = mod.autograd.grad(y, inputs, g)
        res.append([(tuple(x.shape), str(x.dtype).split(".")[1],
                     x.detach().to(mod.float64).numpy()) for x in gs])
    for (se, de, ve), (st, dt, vt) in zip(*res):
        assert (se, de) == (st, dt)
        np.testing.assert_allclose(ve, vt, rtol=1e-6)


@pytest.mark.parametrize("name, fn", BINARY)
def test_root_gradient_cast_to_output_dtype(name, fn):
    """A float64 gradient for a float32 result arrives cast, as PyTorch's validate_outputs."""
    got = []
    for mod in (ember, torch):
        a = mod.ones(2, 3, requires_grad=True)
        y = fn(a, 1.5)
        (g,) = mod.autograd.grad(y, a, mod.ones(2, 3, dtype=mod.float64))
        got.append(str(g.dtype).split(".")[1])
    assert got[0] == got[1] == "float32"


@pytest.mark.parametrize("name, fn", OPS)
@pytest.mark.parametrize("ra, kind", CASES)
def test_saves_inputs_entries_equal_matched_ones(name, fn, ra, kind, monkeypatch):
    """The declared path saves what the identity matching would (kinds, tensors, versions)."""
    from ember.ops.elementwise import Div, DivMode, Mul
    a, b = _operands(ember, ra, kind)
    lean = fn(a, b).grad_fn._saved
    for cls in (Mul, Div, DivMode):
        monkeypatch.setattr(cls, "saves_inputs", False)
    matched = fn(a, b).grad_fn._saved
    assert [(e[0], e[2:]) for e in lean] == [(e[0], e[2:]) for e in matched]
    assert all(x[1] is y[1] or x[1] == y[1] for x, y in zip(lean, matched))


UNARY = ["exp", "tanh", "sigmoid", "relu", "log", "sin", "sqrt"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_unary_declared_entries_equal_matched_ones(name, dtype, monkeypatch):
    """Unary ops save their input or result as declared: the same entries as the matching."""
    from ember.ops.elementwise import Relu, _Unary
    x = ember.linspace(0.5, 2.0, 6, dtype=getattr(ember, dtype)).requires_grad_()
    lean = getattr(x, name)().grad_fn._saved
    for cls in (_Unary, Relu):
        monkeypatch.setattr(cls, "saves_inputs", False)
    matched = getattr(x, name)().grad_fn._saved
    assert [(e[0], e[2:]) for e in lean] == [(e[0], e[2:]) for e in matched]
    for e, m in zip(lean, matched):
        assert e[1] is x if e[0] == 0 else e[1].shape == m[1].shape


@pytest.mark.parametrize("name", UNARY)
def test_unary_saved_result_through_hooks_and_double_backward(name):
    res = []
    for mod in (ember, torch):
        packed = []
        x = mod.linspace(0.5, 2.0, 6, dtype=mod.float64).requires_grad_()
        with mod.autograd.graph.saved_tensors_hooks(lambda t: packed.append(1) or t,
                                                    lambda t: t):
            y = getattr(x, name)()
        (g,) = mod.autograd.grad(y.sum(), x, create_graph=True)
        (gg,) = mod.autograd.grad(g.sum(), x, allow_unused=True)  # relu's: None
        gg = np.zeros(6) if gg is None else gg.numpy()
        res.append((len(packed), g.detach().numpy(), gg))
    assert res[0][0] == res[1][0]
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)
    np.testing.assert_allclose(res[0][2], res[1][2], rtol=1e-10, atol=1e-12)


ACTIVATIONS = [("gelu", lambda F, x: F.gelu(x)), ("silu", lambda F, x: F.silu(x)),
               ("leaky_relu", lambda F, x: F.leaky_relu(x, 0.1)),
               ("softmax", lambda F, x: F.softmax(x, -1)),
               ("log_softmax", lambda F, x: F.log_softmax(x, -1))]


@pytest.mark.parametrize("name, fn", ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_activation_declared_saves(name, fn, dtype, monkeypatch):
    """Entries equal the matched ones; an in-place change of what is saved fails as in torch."""
    from ember.ops.activation import LogSoftmax, Softmax, _Activation
    x = ember.linspace(-2.0, 2.0, 12, dtype=getattr(ember, dtype)).reshape(3, 4)
    x.requires_grad_()
    lean = fn(ember.nn.functional, x).grad_fn._saved
    for cls in (_Activation, Softmax, LogSoftmax):
        monkeypatch.setattr(cls, "saves_inputs", False)
    matched = fn(ember.nn.functional, x).grad_fn._saved
    assert [(e[0], e[2:]) for e in lean] == [(e[0], e[2:]) for e in matched]
    monkeypatch.undo()
    for mod in (ember, torch):
        x = mod.linspace(-2.0, 2.0, 12, dtype=getattr(mod, dtype)).reshape(3, 4)
        x.requires_grad_()
        y = fn(mod.nn.functional, x)
        with mod.no_grad():
            (y if "softmax" in name else x).mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
