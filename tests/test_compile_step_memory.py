"""The compiled training step's array traffic (issue 17, ``mlp_step_nn``): an F-ordered relu's
gradient takes its mask from the relu's own result, read there for the last time
(``aot_autograd._relu_grad_y``), bit for bit what the workspace-mask path and eager give."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember._functorch import aot_autograd
from ember._functorch.aot_autograd import _relu_grad, _relu_grad_y
from ember.ops.elementwise import _ReluGrad
from ember.ops.loss import CrossEntropyLoss
from compilecheck import region_backend


@pytest.fixture(autouse=True)
def _fresh_cache():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


def _bits(a):
    return a.view(f"uint{8 * a.itemsize}")


def _case(dtype, shape=(48, 80), seed=0):
    """An F-ordered relu result (with NaN, and zeros from -0.0) and a gradient with inf/NaN."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape[::-1]).astype(dtype)
    x.flat[::7] = -0.0
    x.flat[3] = np.nan
    y = np.maximum(x, np.zeros_like(x)).T
    g = rng.standard_normal(shape[::-1]).astype(dtype)
    g.flat[::11] = np.inf
    g.flat[5::13] = -np.inf
    g.flat[2::17] = np.nan
    return g.T, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", ["over_g", "given"])
def test_relu_grad_y_bits(dtype, where):
    g, y = _case(dtype)
    want = _ReluGrad.formula(np, np.ascontiguousarray(g), np.ascontiguousarray(y))
    ref = torch.ops.aten.threshold_backward(torch.from_numpy(g.copy()),
                                            torch.from_numpy(y.copy()), 0).numpy()
    out = g if where == "over_g" else np.empty(g.shape[::-1], dtype).T
    got = _relu_grad_y(np, g, y.copy(order="F"), out)
    assert got is out
    np.testing.assert_array_equal(_bits(got), _bits(want))
    np.testing.assert_array_equal(_bits(got), _bits(ref))


@pytest.mark.parametrize("order", ["C", "mixed"])
def test_relu_grad_y_other_layouts_fall_back(order):
    """Operands that are not all F-ordered take ``_relu_grad``'s path: the same values."""
    g, y = _case(np.float32, seed=1)
    g = np.ascontiguousarray(g)
    if order == "C":
        y = np.ascontiguousarray(y)
    want = _relu_grad(np, g.copy(), y.copy(), None)
    got = _relu_grad_y(np, g, y, g)
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _mlp(sizes, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        lin = ember.nn.Linear(k, n)
        with ember.no_grad():
            lin.weight.copy_(ember.from_numpy(rng.uniform(-1, 1, (n, k)).astype("f4") / k ** .5))
            lin.bias.copy_(ember.from_numpy(rng.uniform(-.1, .1, n).astype("f4")))
        layers.append(lin)
        if i + 2 < len(sizes):
            layers.append(ember.nn.ReLU())
    return ember.nn.Sequential(*layers)


def _grads(model, x, gout, backend=None):
    """The parameters' gradients of ``model(x)`` backpropagated from ``gout``, the model
    compiled (called twice: the second call runs the generated code) or eager."""
    f = ember.compile(model, backend=backend) if backend is not None else model
    for _ in range(2):
        model.zero_grad()
        f(ember.from_numpy(x)).backward(ember.from_numpy(gout))
    return [p.grad.numpy().copy() for p in model.parameters()]


_recording_backend = region_backend


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # eager's inf/NaN products
@pytest.mark.parametrize("rows", [2, 64, 128])
def test_compiled_chain_uses_relu_result_as_mask(rows, monkeypatch):
    """Both relus of a 784-512-256-10 chain take the mask from their results; gradients (with
    infinite and NaN incoming values) equal the workspace-mask path's bit for bit, and eager's
    within float32 rounding (the chain's products are F-ordered)."""
    sizes = (96, 80, 72, 10)
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, sizes[0])).astype("f4")
    gout = rng.standard_normal((rows, sizes[-1])).astype("f4")
    gout[0, 1] = np.inf
    gout[-1, 2] = np.nan
    made = []
    new = _grads(_mlp(sizes), x, gout, _recording_backend(made))
    src = made[-1].backward_src
    assert src.count("_relu_grad_y(") >= 2 and "_relu_grad(" not in src
    ember.compiler.reset()
    monkeypatch.setattr(aot_autograd, "_relu_grad_y",
                        lambda xp, g, y, out: _relu_grad(xp, g, y, out))
    old = _grads(_mlp(sizes), x, gout, _recording_backend([]))
    for a, b in zip(new, old):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    eager = _grads(_mlp(sizes), x, gout)
    for a, b in zip(new, eager):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_relu_read_elsewhere_keeps_its_result():
    """A relu whose result the region returns is not F-ordered and keeps ``_relu_grad``: the
    caller's tensor is never overwritten by the mask."""
    lin = _mlp((16, 32))
    made = []

    def fn(x):
        h = ember.relu(lin(x))
        return h, h.sum()
    f = ember.compile(fn, backend=_recording_backend(made))
    x = ember.from_numpy(np.random.default_rng(3).standard_normal((8, 16)).astype("f4"))
    for _ in range(2):
        h, s = f(x)
        before = h.detach().numpy().copy()
        s.backward()
        np.testing.assert_array_equal(h.detach().numpy(), before)
    assert "_relu_grad_y(" not in made[-1].backward_src


# ---- NOTE [ Compiled cross-entropy ] ----------------------------------------------------------

def _ce_run(fn, x, t, compiled, made=None):
    """``fn(x, t)``'s loss and ``x``'s gradient, eager or compiled (the second call runs the
    generated code)."""
    f = ember.compile(fn, backend=_recording_backend([] if made is None else made)) \
        if compiled else fn
    for _ in range(2):
        xe = ember.from_numpy(x.copy()).requires_grad_()
        loss = f(xe, ember.from_numpy(t))
        loss.backward(ember.ones_like(loss))
    return loss.detach().numpy().copy(), xe.grad.numpy().copy()


def _logits(dtype, rows=32, classes=10, seed=0, spread=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, classes)) * spread).astype(dtype)
    return x, rng.integers(0, classes, rows)


CE_CASES = {  # name -> (cross_entropy keywords, whether the compiled code takes the plain path)
    "plain": ({}, True),
    "ignore_index_unused": ({"ignore_index": -1}, True),
    "ignore_index_class": ({"ignore_index": 3}, False),
    "weight": ({"weight": "w"}, False),
    "smoothing": ({"label_smoothing": 0.1}, False),
    "sum": ({"reduction": "sum"}, False),
    "none": ({"reduction": "none"}, False),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", list(CE_CASES))
def test_compiled_cross_entropy_equals_eager_bits(dtype, case):
    """The compiled loss and gradient are eager's bits, in the plain case and in each case the
    op runs itself (weights, smoothing, reductions, an ignore_index some target equals); and
    torch's within rounding."""
    kw, plain = CE_CASES[case]
    x, t = _logits(dtype)
    w = np.linspace(0.5, 1.5, 10).astype(dtype)
    kw_e = {k: ember.from_numpy(w) if v == "w" else v for k, v in kw.items()}
    kw_t = {k: torch.from_numpy(w) if v == "w" else v for k, v in kw.items()}

    def fn(x, t):
        return ember.nn.functional.cross_entropy(x, t, **kw_e)
    made = []
    calls = []
    op = CrossEntropyLoss.forward
    with pytest.MonkeyPatch.context() as mp:  # the op's own forward, counted
        mp.setattr(CrossEntropyLoss, "forward",
                   staticmethod(lambda *a: calls.append(1) or op(*a)))
        got = _ce_run(fn, x, t, True, made)
    want = _ce_run(fn, x, t, False)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(_bits(np.asarray(a)), _bits(np.asarray(b)))
    # (smoothing is the op's subclass, called as any op)
    assert ("_ce_f(" in made[-1].forward_src) == (case != "smoothing")
    assert len(calls) == (1 if plain else 2)  # the capture's call, then the generated one's
    xt = torch.from_numpy(x.copy()).requires_grad_()
    lt = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t), **kw_t)
    lt.backward(torch.ones_like(lt))
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 0}
    np.testing.assert_allclose(got[0], lt.detach().numpy(), **tol)
    np.testing.assert_allclose(got[1], xt.grad.numpy(), **tol)


@pytest.mark.parametrize("what", ["ignored_row", "wide_logits", "nan", "inf"])
def test_compiled_cross_entropy_edge_values(what):
    """Targets equal to the default ignore_index (the op's path), logits spread wider than the
    shared shift's range (row maxima), NaN and infinite logits: eager's bits, no warning."""
    x, t = _logits("float32", spread=30.0 if what == "wide_logits" else 3.0, seed=4)
    if what == "ignored_row":
        t[[2, 5]] = -100
    elif what == "nan":
        x[3, 1] = np.nan
    elif what == "inf":
        x[1, 4] = np.inf
        x[6, 2] = -np.inf

    def fn(x, t):
        return ember.nn.functional.cross_entropy(x, t)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _ce_run(fn, x, t, True)
        want = _ce_run(fn, x, t, False)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(_bits(np.asarray(a)), _bits(np.asarray(b)))


def test_compiled_cross_entropy_target_out_of_range_raises():
    """A target past the classes raises the op's IndexError at the compiled call too."""
    x, t = _logits("float32")

    def fn(x, t):
        return ember.nn.functional.cross_entropy(x, t)
    f = ember.compile(fn)
    f(ember.from_numpy(x).requires_grad_(), ember.from_numpy(t))
    bad = t.copy()
    bad[7] = 10
    with pytest.raises(IndexError, match="Target 10 is out of bounds"):
        f(ember.from_numpy(x).requires_grad_(), ember.from_numpy(bad))
    with pytest.raises(IndexError):
        torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(bad))


def test_compiled_cross_entropy_under_seterr_raise():
    """``np.seterr(all="raise")`` with NaN logits: the compiled step, like the op, computes
    quietly and gives eager's bits."""
    x, t = _logits("float32", seed=5)
    x[0, 0] = np.inf
    x[1, 1] = np.nan

    def fn(x, t):
        return ember.nn.functional.cross_entropy(x, t)
    old = np.seterr(all="raise")
    try:
        got = _ce_run(fn, x, t, True)
        want = _ce_run(fn, x, t, False)
    finally:
        np.seterr(**old)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(_bits(np.asarray(a)), _bits(np.asarray(b)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_formula_permutes_are_views_inline(dtype):
    """A backward formula's transposes and permutes are the arrays' own ``transpose`` views in
    the generated code (no op frame, no scratch context); gradients equal eager's bit for
    bit, through a 2-d transpose (linear's weight gradient) and a 3-d permute."""
    rng = np.random.default_rng(7)
    w = ember.from_numpy(rng.standard_normal((6, 5)).astype(dtype)).requires_grad_()
    lin = ember.nn.Linear(5, 4, dtype=getattr(ember, dtype))

    def fn(x):  # x (2, 6, 3): (2, 3, 6) @ (6, 5), a linear to (2, 3, 4), then (2, 4, 3)
        return lin(x.permute(0, 2, 1) @ w).transpose(1, 2) * 1.5

    def grads(compiled, made=None):
        f = ember.compile(fn, backend=_recording_backend(made)) if compiled else fn
        x0 = rng_x.copy()
        for _ in range(2):
            for p in (w, *lin.parameters()):
                p.grad = None
            x = ember.from_numpy(x0).requires_grad_()
            f(x).sum().backward()
        return [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in (w, *lin.parameters())]
    rng_x = rng.standard_normal((2, 6, 3)).astype(dtype)
    made = []
    got = grads(True, made)
    want = grads(False)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    src = made[-1].backward_src
    assert ".transpose(" in src and "S_Transpose" not in src and "S_Permute" not in src, src
