"""The backward formulas' array paths with no graph to build (issue 15, eager overhead).

Mul's and Div's gradients (``_times``), tanh's, sigmoid's and exp's (``_lean_backward``) and
mean's run on arrays when grad mode is off during backward and no mode is on: each is checked
bit for bit against the general path (the same backward under ``create_graph=True``, which
goes through ember ops) and against torch, with broadcasting, Python scalars, other dtypes,
0-d tensors, layouts, large arrays, a dispatch mode and an in-place change of a saved tensor.
The small relu gradient's bit path and ``_sum_to``'s GEMV are checked against their formulas.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

TOL = {"float64": dict(rtol=1e-12, atol=1e-12),
       "float32": dict(rtol=1e-4, atol=1e-4),  # (gradients summed over 64 rows)
       "float16": dict(rtol=1e-3, atol=1e-3)}


def _grads(lib, fn, arrays, dtypes, create_graph=False):
    """Gradients of ``sum(fn(*leaves) * w)`` for leaves made from ``arrays``."""
    leaves = [lib.tensor(a, dtype=getattr(lib, d), requires_grad=True)
              for a, d in zip(arrays, dtypes)]
    y = fn(*leaves)
    w = lib.tensor(np.linspace(-2, 2, max(y.numel(), 1)).reshape(tuple(y.shape)),
                   dtype=y.dtype)
    return lib.autograd.grad((y * w).sum(), leaves, create_graph=create_graph)


def _bits(t):
    return t.detach().numpy().tobytes()


_RNG = np.random.default_rng(0)
_MUL_CASES = {
    "same": (lambda a, b: a * b, [(4, 5), (4, 5)], ["float32", "float32"]),
    "row": (lambda a, b: a * b, [(4, 5), (5,)], ["float32", "float32"]),
    "col": (lambda a, b: a * b, [(4, 1), (4, 5)], ["float64", "float64"]),
    "outer": (lambda a, b: a * b, [(4, 1), (1, 5)], ["float32", "float32"]),
    "lead": (lambda a, b: a * b, [(2, 4, 5), (5,)], ["float64", "float64"]),
    "zero_d": (lambda a, b: a * b, [(), ()], ["float32", "float32"]),
    "zero_d_other_dtype": (lambda a, b: a * b, [(4, 5), ()], ["float32", "float64"]),
    "zero_d_leaf": (lambda a, b: a * b, [(), (4, 5)], ["float32", "float32"]),
    "relu_expanded_grad": (lambda a, b: (a * b).relu().sum(), [(6, 5), (5,)],
                           ["float32", "float32"]),
    "relu_bias": (lambda a, b: (a + b).relu(), [(6, 5), (5,)], ["float64", "float64"]),
    "mixed_dtypes": (lambda a, b: a * b, [(4, 5), (4, 5)], ["float32", "float64"]),
    "half": (lambda a, b: a * b, [(4, 5), (5,)], ["float16", "float16"]),
    "float_scalar": (lambda a, b: a * 0.3 * b, [(4, 5), (4, 5)], ["float32", "float32"]),
    "int_scalar": (lambda a, b: 3 * a * b, [(4, 5), (1, 5)], ["float64", "float64"]),
    "transposed": (lambda a, b: a.t() * b, [(5, 4), (4, 5)], ["float32", "float32"]),
    "div_scalar": (lambda a, b: a / 2.0 * b, [(4, 5), (4, 5)], ["float32", "float32"]),
    "div_int": (lambda a, b: a / 3 * b, [(4, 5), (5,)], ["float64", "float64"]),
    "div_col": (lambda a, b: a / b.detach() * b, [(4, 5), (4, 1)], ["float32", "float32"]),
    "div_both": (lambda a, b: a / b, [(4, 5), (4, 1)], ["float64", "float64"]),
    "div_other_dtype": (lambda a, b: a / b.detach() * b, [(4, 5), ()], ["float32", "float64"]),
    "exp": (lambda a, b: (a * b).exp(), [(4, 5), (4, 5)], ["float32", "float32"]),
    "exp_0d": (lambda a, b: (a * b).exp(), [(), ()], ["float64", "float64"]),
    "exp_big": (lambda a, b: (a + b).exp(), [(64, 300), (300,)], ["float32", "float32"]),
    "exp_half": (lambda a, b: (a + b).exp(), [(4, 5), (4, 5)], ["float16", "float16"]),
    "mean_all": (lambda a, b: (a * b).mean(), [(4, 5), (4, 5)], ["float32", "float32"]),
    "mean_dim": (lambda a, b: (a + b).mean(1), [(4, 5), (5,)], ["float64", "float64"]),
    "mean_keep": (lambda a, b: (a + b).mean((0, 2), keepdim=True), [(3, 4, 5), (5,)],
                  ["float32", "float32"]),
    "mean_0d": (lambda a, b: (a * b).mean(), [(), ()], ["float64", "float64"]),
    "mean_half": (lambda a, b: (a * b).mean(0), [(4, 5), (4, 5)], ["float16", "float16"]),
    "mean_dtype": (lambda a, b: (a * b).mean(1, dtype=torch.float64 if isinstance(
        a, torch.Tensor) else ember.float64), [(4, 5), (4, 5)], ["float32", "float32"]),
    "tanh": (lambda a, b: (a * b).tanh(), [(4, 5), (4, 5)], ["float32", "float32"]),
    "sigmoid": (lambda a, b: (a * b).sigmoid(), [(4, 5), (4, 5)], ["float64", "float64"]),
    "tanh_0d": (lambda a, b: (a * b).tanh(), [(), ()], ["float32", "float32"]),
    "sigmoid_0d": (lambda a, b: (a + b).sigmoid(), [(), ()], ["float64", "float64"]),
    "tanh_big": (lambda a, b: (a + b).tanh(), [(64, 300), (300,)], ["float32", "float32"]),
    "sigmoid_big": (lambda a, b: (a + b).sigmoid(), [(64, 300), (300,)],
                    ["float64", "float64"]),
    "tanh_half": (lambda a, b: (a + b).tanh(), [(4, 5), (4, 5)], ["float16", "float16"]),
    "sigmoid_strided_grad": (lambda a, b: (a + b).sigmoid().t(), [(6, 5), (5,)],
                             ["float32", "float32"]),
    "tanh_expanded_grad": (lambda a, b: (a * b).tanh().sum(), [(6, 5), (5,)],
                           ["float32", "float32"]),
}


@pytest.mark.parametrize("case", list(_MUL_CASES))
def test_array_path_bit_identical_to_general_and_close_to_torch(case):
    fn, shapes, dtypes = _MUL_CASES[case]
    arrays = [_RNG.standard_normal(s) * 1.5 for s in shapes]
    lean = _grads(ember, fn, arrays, dtypes)
    general = _grads(ember, fn, arrays, dtypes, create_graph=True)
    ref = _grads(torch, fn, arrays, dtypes)
    # (computed in the operands' common dtype: the loosest one's tolerance)
    tol = TOL[next(d for d in ("float16", "float32", "float64") if d in dtypes)]
    for le, ge, t, d in zip(lean, general, ref, dtypes):
        assert le.grad_fn is None
        assert le.dtype == ge.dtype == getattr(ember, d)
        assert tuple(le.shape) == tuple(ge.shape) == tuple(t.shape)
        assert _bits(le) == _bits(ge)
        np.testing.assert_allclose(le.detach().numpy().astype(np.float64),
                                   t.detach().double().numpy(), **tol)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_activation_special_values_match_torch(name):
    x = np.array([0.0, -0.0, 1e-30, -30.0, 30.0, 100.0, np.inf, -np.inf, np.nan], np.float32)
    g = np.array([1.0, -2.0, np.inf, 3.0, -np.inf, np.nan, 1.0, 2.0, 1.0], np.float32)
    xe = ember.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    (ge,) = ember.autograd.grad(getattr(xe, name)(), xe, ember.tensor(g))
    (gt,) = torch.autograd.grad(getattr(xt, name)(), xt, torch.tensor(g))
    np.testing.assert_allclose(ge.numpy(), gt.numpy(), rtol=1e-6, atol=1e-7, equal_nan=True)


def test_mul_grad_inf_times_zero_is_nan_as_torch():
    a = np.array([np.inf, 1.0, 0.0], np.float32)
    b = np.array([0.0, np.inf, 2.0], np.float32)
    ea, eb = (ember.tensor(v, requires_grad=True) for v in (a, b))
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    (ea * eb).sum().backward()
    (ta * tb).sum().backward()
    for e, t in ((ea, ta), (eb, tb)):
        np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())


def test_mul_grad_overflow_under_warnings_as_errors():
    """``-W error``: the array path's overflow warning falls back, numbers as torch's."""
    big = np.float32(3e38)
    ea, eb = (ember.tensor([big, 1.0], requires_grad=True) for _ in range(2))
    with np.errstate(all="raise"):
        (ea * eb).backward(ember.tensor([big, 1.0]))
    ta, tb = (torch.tensor([big, 1.0], requires_grad=True) for _ in range(2))
    (ta * tb).backward(torch.tensor([big, 1.0]))
    np.testing.assert_array_equal(ea.grad.numpy(), ta.grad.numpy())


@pytest.mark.parametrize("name", ["mul", "tanh", "sigmoid"])
def test_saved_tensor_changed_in_place_still_raises(name):
    a = ember.ones(3, 4, requires_grad=True)
    if name == "mul":
        x = a + 0
        y = a * x  # saves ``x`` for a's gradient
    else:
        x = getattr(a * 1, name)()  # saves its result ``x``
        y = x * 2
    x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_dispatch_mode_still_sees_backward_mul_tanh_sigmoid():
    from ember.utils._python_dispatch import TorchDispatchMode

    class Names(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.__name__)
            return func(*args, **(kwargs or {}))
    x = ember.randn(3, 4, requires_grad=True)
    s = ember.randn(3, 1, requires_grad=True)
    seen = []
    with Names():
        ((x * s).tanh().sigmoid()).sum().backward()
    assert {"mul", "tanh_backward", "sigmoid_backward", "sum_to_size"} <= set(seen)


def test_create_graph_second_derivative_matches_torch():
    x = np.linspace(-1.5, 1.5, 12).reshape(3, 4)
    s = np.linspace(0.5, 1.0, 3).reshape(3, 1)
    out = {}
    for lib in (ember, torch):
        xe = lib.tensor(x, requires_grad=True)
        se = lib.tensor(s, requires_grad=True)
        y = ((xe * se).tanh() * se).sigmoid().sum()
        gx, gs = lib.autograd.grad(y, (xe, se), create_graph=True)
        (ggx,) = lib.autograd.grad((gx * gx).sum() + gs.sum(), xe)
        out[lib.__name__] = [t.detach().numpy() for t in (gx, gs, ggx)]
    for e, t in zip(out["ember"], out["torch"]):
        np.testing.assert_allclose(e, t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed_grad", "strided_input"])
def test_small_relu_grad_bits_path_exact(dtype, layout):
    """Small relu gradients as bits(g) * min(bits(y), 1): ``g`` where ``y != 0`` else 0,
    bit for bit, NaN (either sign) passing its gradient, inf/NaN gradients where y is 0."""
    vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 1e-300, -3.0,
                     2.5, 0.0], dtype)
    grads = np.array([np.inf, np.nan, -np.inf, np.inf, np.nan, 2.0, -1.0, 3.0, 4.0, -np.inf,
                      -0.0, np.nan], dtype)
    x = np.tile(vals, 12).reshape(12, 12)
    g = np.tile(grads, 12).reshape(12, 12)
    if layout == "strided_input":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    xe = ember.from_numpy(x).requires_grad_()
    xt = torch.from_numpy(x.copy()).requires_grad_()
    ge = ember.from_numpy(g.T.copy()).t() if layout == "transposed_grad" else \
        ember.from_numpy(g)
    (gxe,) = ember.autograd.grad(xe.relu(), xe, ge)
    (gxt,) = torch.autograd.grad(xt.relu(), xt, torch.from_numpy(g))
    expect = np.where(np.maximum(x, 0) != 0, g, 0).astype(dtype)
    assert np.ascontiguousarray(gxe.numpy()).tobytes() == np.ascontiguousarray(expect).tobytes()
    np.testing.assert_array_equal(gxe.numpy(), gxt.numpy())


_SUM_CASES = [  # (array shape, target shape, layout)
    ((32, 64), (64,), "c"), ((32, 64), (32, 1), "c"), ((32, 64), (1, 64), "c"),
    ((4, 8, 16), (16,), "c"), ((4, 8, 16), (8, 16), "c"), ((4, 8, 16), (4, 1, 1), "c"),
    ((4, 8, 16), (1, 8, 1), "c"), ((4, 8, 16), (4, 1, 16), "c"), ((1, 5, 7), (5, 7), "c"),
    ((32, 64), (64,), "t"), ((6, 5), (5,), "strided"), ((0, 5), (5,), "c"),
    ((300, 64), (64,), "c"), ((64, 300), (64, 1), "c"),  # (above the GEMV size: add.reduce)
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64"])
@pytest.mark.parametrize("shape, to, layout", _SUM_CASES)
def test_sum_to_gemv_matches_add_reduce(shape, to, layout, dtype):
    from ember.ops._util import _sum_to
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    if layout == "t":
        a = np.ascontiguousarray(a.T).T
    elif layout == "strided":
        a = np.repeat(a, 2, axis=0)[::2]
    lead = a.ndim - len(to)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(to)
                                      if s == 1 and a.shape[lead + i] != 1)
    want = np.add.reduce(a, axis=dims, keepdims=True).reshape(to)
    got = _sum_to(np, a, to)
    assert got.shape == to and got.dtype == a.dtype
    tol = {"float32": 1e-5, "float64": 1e-12, "float16": 0, "int64": 0}[dtype]
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 100)


def test_sum_to_gemv_propagates_inf_and_nan():
    from ember.ops._util import _sum_to
    a = np.ones((8, 4), np.float32)
    a[1, 0], a[2, 1], a[3, 1], a[4, 2] = np.inf, np.inf, -np.inf, np.nan
    for to, ax in (((4,), 0), ((8, 1), 1)):
        np.testing.assert_array_equal(_sum_to(np, a, to),
                                      np.add.reduce(a, axis=ax, keepdims=ax == 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bias_and_scale_gradients_match_torch(dtype):
    rng = np.random.default_rng(5)
    x, b, s = rng.standard_normal((16, 24)), rng.standard_normal(24), rng.standard_normal((16, 1))
    out = {}
    for lib in (ember, torch):
        ts = [lib.tensor(v, dtype=getattr(lib, dtype), requires_grad=True) for v in (x, b, s)]
        ((ts[0] + ts[1]) * ts[2]).tanh().sum(1).mean().backward()
        out[lib.__name__] = [t.grad.numpy() for t in ts]
    for e, t in zip(out["ember"], out["torch"]):
        np.testing.assert_allclose(e, t, **TOL[dtype])
