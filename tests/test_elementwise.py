"""Elementwise ops against torch: values, dtypes, gradients, operators, in-place forms, errors."""
import itertools
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

import ember
from ember.ops import elementwise as ew
from opcheck import check, rand, positive, gradcheck, assert_close, to_ember, to_torch

# ember hides NumPy's floating-point RuntimeWarnings with a module filter (NOTE [ Floating-point
# warnings ] in ops/elementwise.py), but pytest drops filters added while it collects tests;
# test_floating_point_edge_cases_are_silent checks the filter in a fresh interpreter instead.
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def between(lo, hi, *shape, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(*shape, seed=0):
    x = rand(*shape, seed=seed)
    return np.where(np.abs(x) < 0.2, 0.7, x)


def same_error(fe, ft):
    """Both raise, with the same exception type; returns ember's exception."""
    with pytest.raises(Exception) as et:
        ft()
    with pytest.raises(Exception) as ee:
        fe()
    assert type(ee.value) is type(et.value), f"ember {ee.value!r} vs torch {et.value!r}"
    return ee.value


LAYOUTS = {
    "contiguous": lambda x: x,
    "transposed": lambda x: x.transpose(0, 1),
    "strided": lambda x: x[:, ::2],
}

# (name, f(m, x), input): m is ember or torch
UNARY = [
    ("exp", lambda m, x: m.exp(x), rand(4, 6)),
    ("exp2", lambda m, x: x.exp2(), rand(4, 6)),
    ("expm1", lambda m, x: m.expm1(x), rand(4, 6)),
    ("log", lambda m, x: m.log(x), positive(4, 6)),
    ("log2", lambda m, x: x.log2(), positive(4, 6)),
    ("log10", lambda m, x: m.log10(x), positive(4, 6)),
    ("log1p", lambda m, x: m.log1p(x), between(-0.9, 3, 4, 6)),
    ("sqrt", lambda m, x: x.sqrt(), positive(4, 6)),
    ("rsqrt", lambda m, x: m.rsqrt(x), positive(4, 6)),
    ("sin", lambda m, x: m.sin(x), rand(4, 6)),
    ("cos", lambda m, x: x.cos(), rand(4, 6)),
    ("tan", lambda m, x: m.tan(x), between(-1.3, 1.3, 4, 6)),
    ("asin", lambda m, x: m.asin(x), between(-0.9, 0.9, 4, 6)),
    ("arcsin", lambda m, x: m.arcsin(x), between(-0.9, 0.9, 4, 6)),
    ("acos", lambda m, x: x.acos(), between(-0.9, 0.9, 4, 6)),
    ("atan", lambda m, x: m.atan(x), rand(4, 6)),
    ("sinh", lambda m, x: m.sinh(x), rand(4, 6)),
    ("cosh", lambda m, x: x.cosh(), rand(4, 6)),
    ("tanh", lambda m, x: m.tanh(x), rand(4, 6)),
    ("asinh", lambda m, x: m.asinh(x), rand(4, 6)),
    ("acosh", lambda m, x: m.acosh(x), between(1.1, 4, 4, 6)),
    ("atanh", lambda m, x: x.atanh(), between(-0.9, 0.9, 4, 6)),
    ("erf", lambda m, x: m.erf(x), rand(4, 6)),
    ("erfc", lambda m, x: x.erfc(), rand(4, 6)),
    ("erfinv", lambda m, x: m.erfinv(x), between(-0.95, 0.95, 4, 6)),
    ("sigmoid", lambda m, x: m.sigmoid(x), rand(4, 6) * 4),
    ("logit", lambda m, x: m.logit(x), between(0.05, 0.95, 4, 6)),
    ("logit_eps", lambda m, x: x.logit(eps=0.2), between(0.05, 0.95, 4, 6)),
    ("relu", lambda m, x: m.relu(x), rand(4, 6)),
    ("abs", lambda m, x: m.abs(x), rand(4, 6)),
    ("absolute", lambda m, x: abs(x), rand(4, 6)),
    ("sign", lambda m, x: m.sign(x), rand(4, 6)),
    ("sgn", lambda m, x: x.sgn() * x, rand(4, 6)),  # torch's own grad is a ZeroTensor
    ("neg", lambda m, x: -x, rand(4, 6)),
    ("negative", lambda m, x: m.negative(x), rand(4, 6)),
    ("positive", lambda m, x: m.positive(x) * 2, rand(4, 6)),
    ("reciprocal", lambda m, x: m.reciprocal(x), away_from_zero(4, 6)),
    ("square", lambda m, x: m.square(x), rand(4, 6)),
    ("deg2rad", lambda m, x: m.deg2rad(x), rand(4, 6) * 90),
    ("rad2deg", lambda m, x: x.rad2deg(), rand(4, 6)),
    ("floor", lambda m, x: m.floor(x), rand(4, 6) * 3),
    ("ceil", lambda m, x: x.ceil(), rand(4, 6) * 3),
    ("round", lambda m, x: m.round(x), rand(4, 6) * 3),
    ("round_decimals", lambda m, x: m.round(x, decimals=2), rand(4, 6) * 3),
    ("round_negative_decimals", lambda m, x: x.round(decimals=-1), rand(4, 6) * 300),
    ("trunc", lambda m, x: m.trunc(x), rand(4, 6) * 3),
    ("fix", lambda m, x: m.fix(x), rand(4, 6) * 3),
    ("frac", lambda m, x: m.frac(x), rand(4, 6) * 3),
    ("nan_to_num", lambda m, x: m.nan_to_num(x * 1e300 * 1e300), rand(4, 6)),
    ("clamp", lambda m, x: m.clamp(x, -0.5, 0.7), rand(4, 6)),
    ("clip_min_only", lambda m, x: m.clip(x, min=-0.5), rand(4, 6)),
    ("clamp_max_only", lambda m, x: x.clamp(max=0.3), rand(4, 6)),
    ("clamp_min", lambda m, x: m.clamp_min(x, 0.1), rand(4, 6)),
    ("clamp_max", lambda m, x: x.clamp_max(0.1), rand(4, 6)),
    ("pow_scalar", lambda m, x: x ** 3.5, positive(4, 6)),
    ("pow_2", lambda m, x: m.pow(x, 2), rand(4, 6)),
    ("pow_half", lambda m, x: x ** 0.5, positive(4, 6)),
    ("pow_minus_half", lambda m, x: x.pow(-0.5), positive(4, 6)),
    ("pow_minus_one", lambda m, x: x ** -1, away_from_zero(4, 6)),
    ("pow_minus_two", lambda m, x: x ** -2, away_from_zero(4, 6)),
    ("pow_zero", lambda m, x: x ** 0, rand(4, 6)),
    ("rpow", lambda m, x: 2.5 ** x, rand(4, 6)),
    ("pow_number_base", lambda m, x: m.pow(3, x), rand(4, 6)),
    ("float_power", lambda m, x: m.float_power(x, 2), rand(4, 6)),
    ("rsub_number", lambda m, x: 2 - x, rand(4, 6)),
    ("rdiv_number", lambda m, x: 2 / x, away_from_zero(4, 6)),
    ("radd_number", lambda m, x: 2 + x, rand(4, 6)),
    ("rmul_number", lambda m, x: 2 * x, rand(4, 6)),
    ("add_number", lambda m, x: x + 1.5, rand(4, 6)),
    ("sub_number_alpha", lambda m, x: m.sub(x, 2, alpha=3), rand(4, 6)),
    ("mul_number", lambda m, x: x * -3, rand(4, 6)),
    ("div_number", lambda m, x: x / 3, rand(4, 6)),
    ("remainder_number", lambda m, x: x % 1.5, rand(4, 6) * 3),
    ("fmod_number", lambda m, x: m.fmod(x, -1.5), rand(4, 6) * 3),
    ("div_floor_number", lambda m, x: m.div(x, 0.7, rounding_mode="floor"), rand(4, 6)),
    ("div_trunc_number", lambda m, x: x.div(0.7, rounding_mode="trunc"), rand(4, 6)),
    ("lerp_number_weight", lambda m, x: m.lerp(x, x * 2 + 1, 0.3), rand(4, 6)),
    ("lerp_big_weight", lambda m, x: x.lerp(x * 2 + 1, 0.8), rand(4, 6)),
    ("where_numbers", lambda m, x: m.where(x > 0, x, 0.5), rand(4, 6)),
    ("where_number_first", lambda m, x: m.where(x > 0, -1.0, x), rand(4, 6)),
]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name,fn,x", UNARY, ids=[r[0] for r in UNARY])
def test_unary_matches_torch(name, fn, x, layout):
    view = LAYOUTS[layout]
    check(lambda m, a: fn(m, view(a)), None, x)


@pytest.mark.parametrize("shape", [(), (1,), (0,), (2, 0, 3), (1, 1)])
@pytest.mark.parametrize("name,fn,x", [r for r in UNARY if r[0] in (
    "exp", "log", "sigmoid", "relu", "floor", "clamp", "pow_scalar", "erfinv", "abs", "rpow")],
    ids=lambda r: r if isinstance(r, str) else "")
def test_unary_odd_shapes(name, fn, x, shape):
    n = int(np.prod(shape))
    data = np.resize(x.ravel(), n).reshape(shape)
    check(lambda m, a: fn(m, a), None, data)


# (name, f(m, x, y), x, y)
BINARY = [
    ("add", lambda m, x, y: x + y, rand(3, 4), rand(4)),
    ("add_alpha", lambda m, x, y: m.add(x, y, alpha=2.5), rand(3, 4), rand(3, 1)),
    ("sub", lambda m, x, y: x - y, rand(2, 1, 3), rand(4, 1)),
    ("subtract_alpha", lambda m, x, y: m.subtract(x, y, alpha=-2), rand(3, 4), rand(4)),
    ("rsub", lambda m, x, y: m.rsub(x, y), rand(3, 4), rand(4)),
    ("rsub_alpha", lambda m, x, y: m.rsub(x, y, alpha=3), rand(3, 4), rand(3, 1)),
    ("mul", lambda m, x, y: x * y, rand(3, 4), rand(4)),
    ("multiply", lambda m, x, y: m.multiply(x, y), rand(2, 1, 3), rand(4, 1)),
    ("div", lambda m, x, y: x / y, rand(3, 4), away_from_zero(4)),
    ("divide", lambda m, x, y: m.divide(x, y), rand(3, 4), away_from_zero(3, 1)),
    ("true_divide", lambda m, x, y: m.true_divide(x, y), rand(3, 4), away_from_zero(4)),
    ("div_trunc", lambda m, x, y: m.div(x, y, rounding_mode="trunc"), rand(3, 4) * 3,
     away_from_zero(4)),
    ("div_floor", lambda m, x, y: x.div(y, rounding_mode="floor"), rand(3, 4) * 3,
     away_from_zero(4)),
    ("remainder", lambda m, x, y: x % y, rand(3, 4) * 3, away_from_zero(4)),
    ("remainder_fn", lambda m, x, y: m.remainder(x, y), rand(3, 4) * 3, away_from_zero(3, 1)),
    ("fmod", lambda m, x, y: m.fmod(x, y), rand(3, 4) * 3, away_from_zero(4)),
    ("pow", lambda m, x, y: x ** y, positive(3, 4), rand(4)),
    ("pow_fn", lambda m, x, y: m.pow(x, y), positive(3, 1), rand(4)),
    ("float_power", lambda m, x, y: m.float_power(x, y), positive(3, 4), rand(4)),
    ("atan2", lambda m, x, y: m.atan2(x, y), rand(3, 4), rand(4)),
    ("arctan2", lambda m, x, y: m.arctan2(x, y), rand(3, 4), rand(3, 1)),
    ("hypot", lambda m, x, y: m.hypot(x, y), rand(3, 4), rand(4)),
    ("maximum", lambda m, x, y: m.maximum(x, y), rand(3, 4), rand(4, seed=1)),
    ("minimum", lambda m, x, y: m.minimum(x, y), rand(3, 4), rand(3, 1, seed=1)),
    ("fmax", lambda m, x, y: m.fmax(x, y), rand(3, 4), rand(4, seed=1)),
    ("fmin", lambda m, x, y: m.fmin(x, y), rand(3, 4), rand(4, seed=1)),
    ("clamp_tensor_min", lambda m, x, y: m.clamp(x, min=y), rand(3, 4), rand(4, seed=1)),
    ("clamp_tensor_max", lambda m, x, y: x.clamp(max=y), rand(3, 4), rand(4, seed=1)),
    ("clamp_min_tensor", lambda m, x, y: m.clamp_min(x, y), rand(3, 4), rand(4, seed=1)),
    ("clamp_max_tensor", lambda m, x, y: x.clamp_max(y), rand(3, 4), rand(3, 1, seed=1)),
    ("where", lambda m, x, y: m.where(x > y, x, y), rand(3, 4), rand(4, seed=1)),
    ("where_method", lambda m, x, y: x.where(y > 0, y), rand(3, 4), rand(4, seed=1)),
    ("lerp", lambda m, x, y: m.lerp(x, y, 0.25), rand(3, 4), rand(4, seed=1)),
    ("lerp_weight_tensor", lambda m, x, y: m.lerp(x, y, (y - 0.5) / 2), rand(3, 4),
     rand(4, seed=1)),
    ("addcmul", lambda m, x, y: m.addcmul(x, x, y, value=0.5), rand(3, 4), rand(4, seed=1)),
    ("addcdiv", lambda m, x, y: m.addcdiv(y, x, y, value=-2), rand(3, 4), away_from_zero(4)),
    ("logical_mix", lambda m, x, y: m.where(m.logical_and(x > 0, y < 0), x * y, x + y),
     rand(3, 4), rand(4, seed=1)),
    ("nan_to_num", lambda m, x, y: m.nan_to_num(x / (y > 0), nan=1.0, posinf=5.0, neginf=-5.0),
     rand(3, 4), rand(4, seed=1)),
]


@pytest.mark.parametrize("name,fn,x,y", BINARY, ids=[r[0] for r in BINARY])
def test_binary_matches_torch(name, fn, x, y):
    check(fn, None, x, y)


@pytest.mark.parametrize("name,fn,x,y", BINARY, ids=[r[0] for r in BINARY])
def test_binary_non_contiguous(name, fn, x, y):
    # the same ops on transposed / strided views of larger arrays
    xs = np.repeat(x, 2, axis=-1) if x.ndim else x
    check(lambda m, a, b: fn(m, a[..., ::2], b), None, xs, y)
    if x.ndim == 2:
        check(lambda m, a, b: fn(m, a.transpose(0, 1).transpose(0, 1), b), None, x, y)


def test_three_tensor_ops_match_torch():
    x, lo, hi = rand(3, 4), rand(4, seed=1), rand(3, 1, seed=2)
    check(lambda m, a, b, c: m.clamp(a, b, c), None, x, lo, hi)  # includes lo > hi entries
    check(lambda m, a, b, c: m.clip(a, min=b, max=c), None, x, lo, hi)
    check(lambda m, a, b, c: m.addcmul(a, b, c), None, x, lo, hi)
    check(lambda m, a, b, c: a.addcdiv(b, c, value=0.3), None, x, lo, away_from_zero(3, 1))
    check(lambda m, a, b, c: m.lerp(a, b, c), None, x, lo, hi)
    check(lambda m, a, b, c: m.where(c > 0, a, b), None, x, lo, hi)


def _grad_fn_name(fn, m, *arrays):
    ts = [(to_ember if m is ember else to_torch)(a, a.dtype.kind == "f") for a in arrays]
    out = fn(m, *ts)
    return out.grad_fn.name() if out.grad_fn is not None else None


@pytest.mark.parametrize("row", UNARY + BINARY, ids=[r[0] for r in UNARY + BINARY])
def test_grad_fn_names_match_torch(row):
    fn, arrays = row[1], row[2:]
    assert _grad_fn_name(fn, ember, *arrays) == _grad_fn_name(fn, torch, *arrays)


@pytest.mark.parametrize("fn", [
    lambda m, x: x // 2, lambda m, x: 2 // x, lambda m, x: m.floor_divide(x, x + 5),
    lambda m, x: 2 % x, lambda m, x: m.remainder(3, x)])
def test_not_differentiable_ops_raise_in_backward(fn):
    x = positive(3)
    check(fn, None, x, grad=False)
    assert _grad_fn_name(fn, ember, x) == _grad_fn_name(fn, torch, x)
    ye = fn(ember, to_ember(x, True))
    yt = fn(torch, to_torch(x, True))
    same_error(lambda: ye.sum().backward(), lambda: yt.sum().backward())


# ---- special points of gradients ------------------------------------------------------------

def test_pow_gradients_at_zero_base():
    base = np.array([0.0, 0.0, 0.0, 2.0, -1.5, 0.0])
    expo = np.array([0.0, 2.0, -1.0, 0.0, 2.0, 0.5])
    check(lambda m, a, b: a ** b, None, base, expo)
    check(lambda m, b: 0.0 ** b, None, expo)
    check(lambda m, b: 0 ** b, None, expo)
    check(lambda m, b: 2 ** b, None, expo)
    check(lambda m, b: (-2.0) ** b, None, np.array([1.0, 2.0, 3.0]))
    check(lambda m, b: 1 ** b, None, np.array([np.nan, 2.0]))
    check(lambda m, a: a ** 0, None, base)
    check(lambda m, a: a ** 2, None, base)


def test_ties_and_boundaries_split_like_torch():
    x = np.array([1.0, 2.0, 3.0, np.nan, 0.5, -1.0])
    y = np.array([1.0, 1.0, 4.0, 1.0, np.nan, -1.0])
    for op in ("maximum", "minimum", "fmax", "fmin"):
        check(lambda m, a, b: getattr(m, op)(a, b), None, x, y)
    # clamp gradient passes at the bounds themselves
    check(lambda m, a: m.clamp(a, 1.0, 3.0), None, x)
    check(lambda m, a, b: m.clamp(a, b, 3.0 * b.detach().abs() + 1), None, x,
          np.nan_to_num(y))
    check(lambda m, a: m.clamp(a, 2.0, 1.0), None, x)  # min > max gives max
    check(lambda m, a: m.relu(a), None, np.array([-1.0, 0.0, 2.0]))
    check(lambda m, a: m.abs(a), None, np.array([-1.0, 0.0, 2.0, np.nan]))
    check(lambda m, a: m.sign(a) + a, None, np.array([-1.0, 0.0, np.nan]))
    check(lambda m, a: m.logit(a), None, np.array([0.0, 1.0, 0.5, 2.0, -1.0]))
    check(lambda m, a: m.logit(a, 0.2), None, np.array([0.1, 0.2, 0.5, 0.8, 0.9]))
    check(lambda m, a: m.nan_to_num(a), None, np.array([np.nan, np.inf, -np.inf, 1.0]))
    check(lambda m, a: m.round(a), None, np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 2.675]))
    check(lambda m, a: m.round(a, decimals=2), None, np.array([0.125, 2.675, -1.005, 1e10]))


def test_double_backward_matches_torch():
    x = rand(5)
    for fn in (lambda m, a: m.tanh(a), lambda m, a: m.sigmoid(a), lambda m, a: a ** 3,
               lambda m, a: m.erf(a), lambda m, a: m.atan(a), lambda m, a: 2.0 ** a,
               lambda m, a: m.logit(m.sigmoid(a)), lambda m, a: m.clamp(a, -1, 1) * a,
               lambda m, a: m.maximum(a, a * 0.5) ** 2, lambda m, a: a / (a * a + 1)):
        grads = []
        for m, conv in ((ember, to_ember), (torch, to_torch)):
            t = conv(x, True)
            g, = m.autograd.grad(fn(m, t).sum(), t, create_graph=True)
            gg, = m.autograd.grad(g.sum(), t)
            grads.append((g, gg))
        assert_close(grads[0][0], grads[1][0])
        assert_close(grads[0][1], grads[1][1])


GRADCHECK = [
    (lambda a, b: a ** b, positive(3), rand(3)),
    (lambda a, b: ember.atan2(a, b), rand(3), rand(3, seed=1)),
    (lambda a, b: ember.hypot(a, b), rand(3), rand(3, seed=1)),
    (lambda a, b: ember.clamp(a, min=b), rand(3), rand(3, seed=1)),
    (lambda a, b: ember.lerp(a, b, b), rand(3), rand(3, seed=1)),
    (lambda a, b: ember.addcdiv(a, a, b), rand(3), positive(3, seed=1)),
    (lambda a, b: ember.maximum(a, b), rand(2, 3), rand(3, seed=1)),
    (lambda a, b: ember.where(a > 0, a, b), rand(3), rand(3, seed=1)),
    (lambda a, b: ember.erfinv(a.tanh() * 0.9) * b, rand(3), rand(3, seed=1)),
    (lambda a, b: ember.logit(a.sigmoid()) + b.sigmoid() + b.tanh() + b.erfc(), rand(3),
     rand(3, seed=1)),
    (lambda a, b: (a.sinh() + b.asinh() + a.atan() + b.cosh()), rand(3), rand(3, seed=1)),
    (lambda a, b: a % b + ember.fmod(a, b), rand(3) * 3, positive(3, seed=1)),
]


@pytest.mark.parametrize("i", range(len(GRADCHECK)))
def test_gradcheck(i):
    fn, *arrays = GRADCHECK[i]
    assert gradcheck(fn, *arrays)


# ---- broadcasting ---------------------------------------------------------------------------

HYPO_OPS = [
    lambda m, x, y: x + y, lambda m, x, y: x - 2 * y, lambda m, x, y: x * y,
    lambda m, x, y: x / (y * y + 1), lambda m, x, y: m.maximum(x, y),
    lambda m, x, y: m.atan2(x, y), lambda m, x, y: x.abs() ** y, lambda m, x, y: m.where(
        x > y, x, y), lambda m, x, y: m.lerp(x, y, 0.3), lambda m, x, y: m.clamp(x, max=y),
]


@settings(max_examples=25, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                 max_side=3))
def test_broadcasting_hypothesis(shapes):
    sx, sy = shapes.input_shapes
    x, y = rand(*sx, seed=1), rand(*sy, seed=2)
    for fn in HYPO_OPS:
        check(fn, None, x, y, dtypes=("float64",))


@pytest.mark.parametrize("op", ["add", "mul", "sub", "div", "maximum", "atan2", "eq", "lt",
                                "logical_and", "where", "pow", "remainder", "hypot"])
def test_shapes_that_do_not_broadcast(op):
    def call(m):
        a, b = m.ones(3, 4), m.ones(2, 1, 5)
        if op == "where":
            return m.where(a > 0, a, b)
        return getattr(m, op)(a, b)
    err = same_error(lambda: call(ember), lambda: call(torch))
    assert "(4)" in str(err) and "(5)" in str(err), str(err)


# ---- dtypes ---------------------------------------------------------------------------------

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
VALUES = {"bool": [True, False, True]}


def _operand(m, kind, name):
    if kind in ("tensor", "zero_dim"):
        vals = VALUES.get(name, [1, 2, 3])
        t = m.tensor(vals if kind == "tensor" else vals[0], dtype=getattr(m, name))
        return t
    return {"int": 2, "float": 2.5, "bool": True}[kind]


KINDS = [("tensor", d) for d in DTYPES] + [("zero_dim", d) for d in DTYPES] + \
    [("int", None), ("float", None), ("bool", None)]


@pytest.mark.parametrize("op", ["add", "mul", "div"])
@pytest.mark.parametrize("left", DTYPES)
def test_promotion_table_matches_torch(op, left):
    fn = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op]
    for lkind in ("tensor", "zero_dim"):
        for rkind, rname in KINDS:
            for swap in (False, True):
                res = []
                for m in (ember, torch):
                    a, b = _operand(m, lkind, left), _operand(m, rkind, rname)
                    res.append(fn(b, a) if swap else fn(a, b))
                assert_close(res[0], res[1], "float16",
                             f"{op} {lkind}:{left} {rkind}:{rname} swap={swap}")


@pytest.mark.parametrize("name", DTYPES)
def test_int_and_bool_inputs_to_float_ops(name):
    vals = np.array(VALUES.get(name, [1, 2, 3]))
    for fn in (lambda m, x: m.exp(x), lambda m, x: m.sqrt(x), lambda m, x: m.sigmoid(x),
               lambda m, x: m.erf(x), lambda m, x: x / x, lambda m, x: m.reciprocal(x),
               lambda m, x: m.atan2(x, x), lambda m, x: m.log1p(x), lambda m, x: x ** 2,
               lambda m, x: x * 2.5, lambda m, x: m.clamp(x, 0.5), lambda m, x: m.sign(x),
               lambda m, x: m.where(x > 1, x, 1.5), lambda m, x: x + True):
        check(fn, None, vals.astype(name), grad=False)


def test_integer_arithmetic_matches_torch():
    a = np.array([-7, -3, 0, 3, 7, 8])
    b = np.array([2, -2, 3, -3, 5, 8])
    for fn in (lambda m, x, y: x // y, lambda m, x, y: x % y, lambda m, x, y: m.fmod(x, y),
               lambda m, x, y: m.div(x, y, rounding_mode="trunc"),
               lambda m, x, y: m.div(x, y, rounding_mode="floor"), lambda m, x, y: x / y,
               lambda m, x, y: x ** m.abs(y), lambda m, x, y: x ** (y - 3),
               lambda m, x, y: m.tensor([1, -1, 2, -1, 0, 1]) ** (y - 3),
               lambda m, x, y: 2 ** (y - 3), lambda m, x, y: x - 2 * y, lambda m, x, y: -x,
               lambda m, x, y: abs(x), lambda m, x, y: m.maximum(x, y), lambda m, x, y: x // 3,
               lambda m, x, y: -7 // y, lambda m, x, y: 7 % y, lambda m, x, y: m.relu(x),
               lambda m, x, y: m.floor(x), lambda m, x, y: m.round(x), lambda m, x, y: x ** 2,
               lambda m, x, y: m.square(x), lambda m, x, y: m.clamp(x, -2, 2),
               lambda m, x, y: m.addcmul(x, x, y, value=0.5), lambda m, x, y: m.sign(x),
               lambda m, x, y: m.nan_to_num(x), lambda m, x, y: m.trunc(x),
               lambda m, x, y: m.add(x, y, alpha=3), lambda m, x, y: m.rsub(x, y, alpha=2)):
        check(fn, None, a, b)


@pytest.mark.parametrize("dt", ["uint8", "int8", "int16", "int32", "float16", "float32"])
def test_small_dtypes_keep_their_type(dt):
    a = np.array([1, 2, 3, 100]).astype(dt)
    for fn in (lambda m, x: x + 1, lambda m, x: x * 2, lambda m, x: x - 1, lambda m, x: x // 2,
               lambda m, x: x % 3, lambda m, x: x ** 2, lambda m, x: 3 - x,
               lambda m, x: m.maximum(x, x // 3 * 5), lambda m, x: m.where(x > 2, x, 7)):
        check(fn, None, a, grad=False, dtypes=(dt,))


@pytest.mark.parametrize("name,fn,x", [r for r in UNARY if r[0] in (
    "exp", "sigmoid", "rsqrt", "erf", "erfinv", "tanh", "logit", "log1p", "pow_scalar", "rpow",
    "reciprocal", "clamp", "round_decimals", "lerp_number_weight", "remainder_number")],
    ids=lambda r: r if isinstance(r, str) else "")
def test_float16_unary(name, fn, x):
    check(fn, None, x, dtypes=("float16",))


def _sweep_tensor(m, name):
    vals = {"bool": [True, False, True, True], "uint8": [0, 3, 200, 7]}.get(
        name, [-3, 0, 2.5, 7] if "float" in name else [-3, 0, 2, 7])
    return m.tensor(vals, dtype=getattr(m, name))


def _same_outcome(fe, ft, tag):
    """Both raise the same exception type, or both give the same result."""
    try:
        rt, et = ft(), None
    except Exception as e:  # noqa: BLE001 - any torch error must be mirrored
        rt, et = None, e
    try:
        re, ee = fe(), None
    except Exception as e:  # noqa: BLE001
        re, ee = None, e
    assert type(ee) is type(et), f"{tag}: ember {ee!r} vs torch {et!r}"
    if et is None:
        assert_close(re, rt, "float16", tag)


SWEEP_UNARY = [
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
    "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc",
    "erfinv", "sigmoid", "logit", "relu", "abs", "sign", "sgn", "neg", "reciprocal", "square",
    "deg2rad", "rad2deg", "floor", "ceil", "round", "trunc", "frac", "nan_to_num", "isnan",
    "isinf", "isfinite", "isposinf", "isneginf", "signbit", "logical_not", "bitwise_not",
    "positive"]


@pytest.mark.parametrize("op", SWEEP_UNARY)
def test_dtype_sweep_unary(op):
    for name in DTYPES:
        _same_outcome(lambda: getattr(ember, op)(_sweep_tensor(ember, name)),
                      lambda: getattr(torch, op)(_sweep_tensor(torch, name)), f"{op}({name})")


SWEEP_BINARY = {
    name: (lambda n: lambda m, a, b: getattr(m, n)(a, b))(name) for name in (
        "add", "sub", "mul", "div", "floor_divide", "remainder", "fmod", "pow", "atan2", "hypot",
        "maximum", "minimum", "fmax", "fmin", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
        "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
        "bitwise_left_shift", "bitwise_right_shift", "float_power", "equal", "isclose",
        "allclose", "rsub")}
SWEEP_BINARY.update({
    "radd": lambda m, a, b: b + a, "rsub_op": lambda m, a, b: b - a, "rmul": lambda m, a, b: b * a,
    "rdiv": lambda m, a, b: b / a, "rfloordiv": lambda m, a, b: b // a,
    "rmod": lambda m, a, b: b % a, "rpow": lambda m, a, b: b ** a, "rand": lambda m, a, b: b & a,
    "rlshift": lambda m, a, b: b << a, "div_trunc": lambda m, a, b: a.div(b, rounding_mode="trunc"),
    "div_floor": lambda m, a, b: a.div(b, rounding_mode="floor"),
    "clamp": lambda m, a, b: a.clamp(b), "clamp_max": lambda m, a, b: a.clamp(max=b),
    "addcmul": lambda m, a, b: a.addcmul(a, a, value=b) if not isinstance(b, m.Tensor) else
    a.addcmul(a, b), "addcdiv": lambda m, a, b: a.addcdiv(a, a + 10, value=b)
    if not isinstance(b, m.Tensor) else a.addcdiv(b, b + 10),
    "where": lambda m, a, b: m.where(a > 1, a, b), "lerp": lambda m, a, b: m.lerp(a, b, 0.3),
    "add_": lambda m, a, b: a.add_(b), "mul_": lambda m, a, b: a.mul_(b),
    "div_": lambda m, a, b: a.div_(b), "sub_": lambda m, a, b: a.sub_(b),
    "pow_": lambda m, a, b: a.pow_(b), "clamp_": lambda m, a, b: a.clamp_(b),
    "eq_": lambda m, a, b: a.eq_(b), "floor_divide_": lambda m, a, b: a.floor_divide_(b),
})


@pytest.mark.parametrize("op", list(SWEEP_BINARY))
def test_dtype_sweep_binary(op):
    # every dtype pair and Python scalar: the same result, or the same exception type, as torch
    fn = SWEEP_BINARY[op]
    for left in DTYPES:
        for right in DTYPES + [2, 2.5, True, -1, 0, 300]:
            def run(m):
                b = _sweep_tensor(m, right) if isinstance(right, str) else right
                return fn(m, _sweep_tensor(m, left), b)
            _same_outcome(lambda: run(ember), lambda: run(torch), f"{op}({left}, {right!r})")


def test_python_ints_out_of_range_wrap_like_torch():
    for dt in ("uint8", "int8"):
        a = np.array([1, 2, 3]).astype(dt)
        for fn in (lambda m, x: x + (-1), lambda m, x: x + 1000, lambda m, x: x * 300,
                   lambda m, x: x - 5):
            check(fn, None, a, grad=False)


def test_bfloat16_arithmetic():
    x = ember.tensor([1.0, 2.5, -3.0], dtype=ember.bfloat16)
    t = torch.tensor([1.0, 2.5, -3.0], dtype=torch.bfloat16)
    for fn in (lambda a: a + 1.5, lambda a: a * a, lambda a: 2 / a, lambda a: a.exp(),
               lambda a: a > 1.0, lambda a: a.clamp(0, 2), lambda a: a ** 2):
        e, r = fn(x), fn(t)
        assert str(e.dtype) == str(r.dtype).replace("torch", "ember")
        np.testing.assert_allclose(e.float().numpy(), r.float().numpy(), rtol=1e-2)


def test_default_dtype_float64_for_int_division():
    ember.set_default_dtype(ember.float64)
    torch.set_default_dtype(torch.float64)
    try:
        check(lambda m, x: x / 2 + m.exp(x), None, np.array([1, 2, 3]), grad=False)
    finally:
        ember.set_default_dtype(ember.float32)
        torch.set_default_dtype(torch.float32)


# ---- comparisons, logic, bits ---------------------------------------------------------------

CMP = ["eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal",
       "not_equal"]


@pytest.mark.parametrize("op", CMP)
def test_comparisons_match_torch(op):
    x = np.array([[1.0, 2.0, np.nan], [3.0, -1.0, 2.0]])
    y = np.array([2.0, 2.0, np.nan])
    i = np.array([1, 2, 3])
    b = np.array([True, False, True])
    check(lambda m, a, c: getattr(m, op)(a, c), None, x, y, grad=False)
    check(lambda m, a, c: getattr(a, op)(c), None, x, i, grad=False)
    check(lambda m, a: getattr(m, op)(a, 2), None, x, grad=False)
    check(lambda m, a: getattr(m, op)(a, 1.5), None, i, grad=False)
    check(lambda m, a, c: getattr(m, op)(a, c), None, b, i, grad=False)
    check(lambda m, a: getattr(m, op)(a, True), None, b, grad=False)


def test_comparison_operators_and_hash():
    x = np.array([1.0, 2.0, 3.0])
    for fn in (lambda m, a: a == 2, lambda m, a: a != 2, lambda m, a: a < 2, lambda m, a: a <= 2,
               lambda m, a: a > 2, lambda m, a: a >= 2, lambda m, a: 2 < a, lambda m, a: 2 == a,
               lambda m, a: a == a.flip(0), lambda m, a: a.detach() >= a.detach()[:1]):
        check(fn, None, x, grad=False)
    t = ember.tensor(x)
    assert isinstance(t == t, ember.Tensor)
    assert (t == None) is False and (t != None) is True  # noqa: E711
    assert (t == "a") is False
    d = {t: 1, ember.tensor(x): 2}
    assert len(d) == 2 and d[t] == 1
    assert hash(t) == object.__hash__(t)
    assert t in {t} and len({t, ember.tensor(x)}) == 2


def test_equal_allclose_isclose_match_torch():
    a = np.array([1.0, 2.0, np.nan, np.inf, -np.inf])
    b = np.array([1.0 + 1e-9, 2.001, np.nan, np.inf, np.inf])
    for m_fn in (lambda m, x, y: m.equal(x, y), lambda m, x, y: m.equal(x, x),
                 lambda m, x, y: m.allclose(x, y), lambda m, x, y: m.allclose(x[:2], y[:2]),
                 lambda m, x, y: m.allclose(x, y, equal_nan=True),
                 lambda m, x, y: m.isclose(x, y), lambda m, x, y: m.isclose(x, y, equal_nan=True),
                 lambda m, x, y: x.isclose(y, rtol=1e-2, atol=0),
                 lambda m, x, y: x.isclose(y, rtol=0, atol=0),
                 lambda m, x, y: x[:2].allclose(y[:2], rtol=1e-2),
                 lambda m, x, y: m.equal(x[:2], y[:1]),
                 lambda m, x, y: m.equal(x[:2], x[:2].float())):
        e = m_fn(ember, to_ember(a), to_ember(b))
        t = m_fn(torch, to_torch(a), to_torch(b))
        assert_close(e, t)
    ints = np.array([1, 2, 3])
    check(lambda m, x: m.isclose(x, x + 1, atol=1), None, ints, grad=False)
    check(lambda m, x: m.isclose(x, x), None, np.array([True, False]), grad=False)
    assert ember.equal(ember.tensor([1, 2]), ember.tensor([1.0, 2.0]))
    same_error(lambda: ember.allclose(ember.tensor([1]), ember.tensor([1.0])),
               lambda: torch.allclose(torch.tensor([1]), torch.tensor([1.0])))
    same_error(lambda: ember.isclose(ember.ones(1), ember.ones(1), rtol=-1),
               lambda: torch.isclose(torch.ones(1), torch.ones(1), rtol=-1))
    same_error(lambda: ember.isclose(ember.ones(1), ember.ones(1), atol=-1),
               lambda: torch.isclose(torch.ones(1), torch.ones(1), atol=-1))
    same_error(lambda: ember.allclose(ember.ones(5), ember.ones(2)),
               lambda: torch.allclose(torch.ones(5), torch.ones(2)))


LOGIC = [
    lambda m, a, b: m.logical_and(a, b), lambda m, a, b: m.logical_or(a, b),
    lambda m, a, b: m.logical_xor(a, b), lambda m, a, b: m.logical_not(a),
    lambda m, a, b: a.logical_and(b.float()),
    lambda m, a, b: a & b, lambda m, a, b: a | b, lambda m, a, b: a ^ b, lambda m, a, b: ~a,
    lambda m, a, b: a & True, lambda m, a, b: 1 | b, lambda m, a, b: b ^ 3,
    lambda m, a, b: m.bitwise_and(a, b), lambda m, a, b: m.bitwise_or(b, 6),
    lambda m, a, b: m.bitwise_xor(a, b), lambda m, a, b: m.bitwise_not(b),
    lambda m, a, b: b << 2, lambda m, a, b: b >> 1, lambda m, a, b: 1 << m.abs(b),
    lambda m, a, b: m.bitwise_left_shift(b, 1), lambda m, a, b: m.bitwise_right_shift(b, a),
    lambda m, a, b: m.isnan(b), lambda m, a, b: m.isinf(a), lambda m, a, b: m.isfinite(b),
    lambda m, a, b: m.signbit(b), lambda m, a, b: m.signbit(a), lambda m, a, b: m.isposinf(b),
]


@pytest.mark.parametrize("i", range(len(LOGIC)))
def test_logical_and_bitwise_match_torch(i):
    a = np.array([True, False, True, False])
    b = np.array([3, -2, 0, 5])
    check(LOGIC[i], None, a, b, grad=False)
    check(LOGIC[i], None, a, b.astype("uint8") if i != 18 else b, grad=False)


def test_float_tests_match_torch():
    x = np.array([0.0, -0.0, 1.5, -2.0, np.nan, np.inf, -np.inf])
    for fn in (lambda m, a: m.isnan(a), lambda m, a: m.isinf(a), lambda m, a: m.isfinite(a),
               lambda m, a: m.isposinf(a), lambda m, a: m.isneginf(a), lambda m, a: m.signbit(a),
               lambda m, a: a.isnan(), lambda m, a: m.logical_not(a), lambda m, a: a == a,
               lambda m, a: m.nan_to_num(a), lambda m, a: m.nan_to_num(a, 1.0, 2.0, -3.0)):
        check(fn, None, x)
    for fn in (lambda m, a: m.sign(a), lambda m, a: m.sgn(a)):  # torch's grad: a ZeroTensor
        check(fn, None, x, grad=False)
    check(lambda m, a: m.nan_to_num(a), None, x.astype("float16"), dtypes=("float16",),
          grad=False)


# ---- floating-point edge cases stay silent, as in PyTorch -----------------------------------

EDGE = [
    lambda m, x: m.log(x), lambda m, x: 1 / x, lambda m, x: x / x, lambda m, x: m.exp(x * 1000),
    lambda m, x: m.sigmoid(x * -1000), lambda m, x: x ** -1, lambda m, x: x ** -0.5,
    lambda m, x: m.sqrt(x - 1), lambda m, x: m.logit(x), lambda m, x: m.frac(x / 0),
    lambda m, x: m.round(x * 1e308, decimals=300), lambda m, x: m.lerp(x / 0, x, 0.7),
    lambda m, x: m.addcdiv(x, x, x), lambda m, x: x % 0.0, lambda m, x: m.fmod(x, x),
    lambda m, x: x // 0.0, lambda m, x: m.isclose(x / 0, -x / 0), lambda m, x: m.atanh(x + 1),
    lambda m, x: m.pow(x, x - 1), lambda m, x: m.erfinv(x + 1), lambda m, x: m.acos(x + 2),
    lambda m, x: (x * 1e30) * (x * 1e30) * 1e300, lambda m, x: m.div(x, 0.0, rounding_mode="trunc"),
]


def test_floating_point_edge_cases_with_warnings_as_errors():
    x = np.array([0.0, 1.0, 2.0])
    with np.errstate(all="raise"):
        for fn in EDGE:
            check(fn, None, x, grad=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in EDGE:
            check(fn, None, x, grad=False)


def test_floating_point_edge_cases_are_silent():
    code = ("import numpy as np, ember; x = ember.tensor([0.0, 1.0]); "
            "ember.log(x); x / 0; ember.sqrt(x - 1); x ** -1; (x * 1e30) * 1e300; "
            "ember.logit(x); ember.erfinv(x + 1); ember.isclose(x / 0, -x / 0)")
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


# ---- erf family: SciPy and the pure-array fallback -------------------------------------------

ERF_X = np.concatenate([np.linspace(-6, 6, 241), [0.0, -0.0, 1e-10, 2.4999, 2.5, 2.5001, 27,
                                                  -30, np.inf, -np.inf, np.nan]])
ERFINV_P = np.concatenate([np.linspace(-0.999, 0.999, 201),
                           [0.0, 1e-12, 0.5, 0.50001, 1 - 1e-12, -1 + 1e-15, 1.0, -1.0,
                            1.5, -2.0, np.nan]])


@pytest.fixture(params=["scipy", "fallback"])
def erf_path(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.setitem(sys.modules, "scipy.special", None)  # import raises ImportError
        monkeypatch.setattr(ew, "_scipy_special", None)
        assert ew._special(np) is None
    else:
        monkeypatch.setattr(ew, "_scipy_special", None)
        assert ew._special(np) is not None
    return request.param


@pytest.mark.parametrize("op,x", [("erf", ERF_X), ("erfc", ERF_X), ("erfinv", ERFINV_P)])
def test_erf_family_both_paths(erf_path, op, x):
    for dt in ("float64", "float32"):
        e = getattr(ember, op)(ember.tensor(x.astype(dt)))
        t = getattr(torch, op)(torch.tensor(x.astype(dt)))
        a, b = e.numpy(), t.numpy()
        assert e.dtype == getattr(ember, dt)
        rtol = 1e-12 if dt == "float64" else 1e-6
        if op == "erfinv":  # torch's own float64 erfinv is good to ~1e-12 near the ends
            rtol = 1e-10 if dt == "float64" else 2e-6
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300, equal_nan=True,
                                   err_msg=f"{op} {dt} via {erf_path}")
    check(lambda m, a: getattr(m, op)(a), None, x[np.isfinite(x) & (np.abs(x) < 0.99)][::7])


def test_erf_fallback_float16_and_gradient():
    xp = np
    x = np.linspace(-3, 3, 13).astype("float16")
    assert ew._erf_fallback(xp, x).dtype == np.float64
    e = ember.erf(ember.tensor(x))
    assert e.dtype == ember.float16


def test_import_does_not_load_scipy():
    code = "import sys, ember; ember.exp(ember.ones(2)); assert 'scipy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- in-place forms -------------------------------------------------------------------------

# (method, args(m) -> tuple of extra args, input)
INPLACE = [
    ("add_", lambda m, y: (y,), rand(3, 4)), ("add_", lambda m, y: (y, ), rand(4)),
    ("sub_", lambda m, y: (2.0,), rand(3, 4)), ("mul_", lambda m, y: (y,), rand(3, 4)),
    ("div_", lambda m, y: (y * y + 1,), rand(3, 4)), ("pow_", lambda m, y: (2,), rand(3, 4)),
    ("clamp_", lambda m, y: (-0.5, 0.5), rand(3, 4)), ("clamp_", lambda m, y: (y,), rand(3, 4)),
    ("clip_", lambda m, y: (None, 0.3), rand(3, 4)), ("clamp_min_", lambda m, y: (0.1,),
                                                       rand(3, 4)),
    ("clamp_max_", lambda m, y: (0.1,), rand(3, 4)), ("exp_", lambda m, y: (), rand(3, 4)),
    ("sigmoid_", lambda m, y: (), rand(3, 4)), ("relu_", lambda m, y: (), rand(3, 4)),
    ("abs_", lambda m, y: (), rand(3, 4)), ("sqrt_", lambda m, y: (), positive(3, 4)),
    ("neg_", lambda m, y: (), rand(3, 4)), ("floor_", lambda m, y: (), rand(3, 4)),
    ("lerp_", lambda m, y: (y, 0.3), rand(3, 4)), ("addcmul_", lambda m, y: (y, y),
                                                    rand(3, 4)),
    ("addcdiv_", lambda m, y: (y, y * y + 1), rand(3, 4)), ("tanh_", lambda m, y: (),
                                                            rand(3, 4)),
    ("log_", lambda m, y: (), positive(3, 4)), ("reciprocal_", lambda m, y: (), positive(3, 4)),
    ("square_", lambda m, y: (), rand(3, 4)), ("sin_", lambda m, y: (), rand(3, 4)),
    ("erf_", lambda m, y: (), rand(3, 4)), ("erfinv_", lambda m, y: (), rand(3, 4) / 3),
    ("logit_", lambda m, y: (0.1,), positive(3, 4) / 3.2), ("round_", lambda m, y: (),
                                                            rand(3, 4)),
    ("frac_", lambda m, y: (), rand(3, 4)), ("remainder_", lambda m, y: (1.5,), rand(3, 4)),
    ("fmod_", lambda m, y: (y.abs() + 1,), rand(3, 4)),
    ("nan_to_num_", lambda m, y: (), rand(3, 4)), ("atan2_", lambda m, y: (y,), rand(3, 4)),
    ("hypot_", lambda m, y: (y,), rand(3, 4)), ("float_power_", lambda m, y: (2,), rand(3, 4)),
    ("eq_", lambda m, y: (y,), rand(3, 4)), ("lt_", lambda m, y: (0.0,), rand(3, 4)),
    ("greater_equal_", lambda m, y: (y,), rand(3, 4)), ("ne_", lambda m, y: (0.5,), rand(3, 4)),
    ("logical_and_", lambda m, y: (y,), rand(3, 4)),
    ("logical_not_", lambda m, y: (), rand(3, 4)), ("sign_", lambda m, y: (), rand(3, 4)),
    ("sub_", lambda m, y: (y,), rand(3, 4)), ("trunc_", lambda m, y: (), rand(3, 4)),
    ("where", lambda m, y: (y > 0, 0.0), rand(3, 4)),
]


@pytest.mark.parametrize("method,args,x", INPLACE, ids=[r[0] for r in INPLACE])
def test_inplace_matches_torch(method, args, x):
    y = rand(4, seed=3)

    def fn(m, a, b):
        c = a * 1  # a non-leaf, so in-place is allowed under autograd
        r = getattr(c, method)(*args(m, b))
        assert r is c or method == "where"
        return c if method != "where" else r
    if method == "float_power_":
        check(lambda m, a, b: fn(m, a.double(), b), None, x, y, dtypes=("float64",))
        return
    check(fn, None, x, y)


def test_inplace_operators_match_torch():
    a = np.array([5, -3, 7, 12])
    b = np.array([2, 3, -2, 5])

    def run(m, op):
        x, y = m.tensor(a), m.tensor(b)
        v = x._version
        x0 = x
        if op == "**=":
            x **= 2
        elif op == "//=":
            x //= y
        elif op == "%=":
            x %= y
        elif op == "&=":
            x &= y
        elif op == "|=":
            x |= 6
        elif op == "^=":
            x ^= y
        elif op == "<<=":
            x <<= 2
        elif op == ">>=":
            x >>= 1
        elif op == "+=":
            x += y
        elif op == "-=":
            x -= 1
        elif op == "*=":
            x *= y
        assert x is x0 and x._version > v
        return x
    for op in ("**=", "//=", "%=", "&=", "|=", "^=", "<<=", ">>=", "+=", "-=", "*="):
        assert_close(run(ember, op), run(torch, op), msg=op)
    fe, ft = ember.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    fe /= 4
    ft /= 4
    assert_close(fe, ft)


def test_inplace_errors_match_torch():
    def leaf(m):
        return m.ones(3, requires_grad=True)
    for op in (lambda x: x.add_(1), lambda x: x.exp_(), lambda x: x.clamp_(0, 1),
               lambda x: x.mul_(2), lambda x: x.sigmoid_()):
        same_error(lambda: op(leaf(ember)), lambda: op(leaf(torch)))
        same_error(lambda: op(leaf(ember)[:2]), lambda: op(leaf(torch)[:2]))

    def iadd(x):
        x += 1
    same_error(lambda: iadd(leaf(ember)), lambda: iadd(leaf(torch)))
    # integer tensors cannot hold float results
    for op in (lambda m: m.tensor([1, 2]).div_(2), lambda m: m.tensor([1, 2]).exp_(),
               lambda m: m.tensor([1, 2]).add_(1.5), lambda m: m.tensor([1, 2]).sqrt_(),
               lambda m: m.ones(2).float_power_(2)):
        same_error(lambda: op(ember), lambda: op(torch))
    # broadcasting may not grow self
    same_error(lambda: ember.ones(3).add_(ember.ones(2, 3)),
               lambda: torch.ones(3).add_(torch.ones(2, 3)))


@pytest.mark.parametrize("op", ["exp", "sigmoid", "tanh", "sqrt", "relu", "pow2", "mul"])
def test_saved_tensor_modified_in_place(op):
    def run(m):
        x = m.ones(3, requires_grad=True)
        a = x * 1.5
        y = {"exp": a.exp, "sigmoid": a.sigmoid, "tanh": a.tanh, "sqrt": a.sqrt, "relu": a.relu,
             "pow2": lambda: a ** 2, "mul": lambda: a * a}[op]()
        y.add_(1)   # what was saved: the result (exp, sigmoid, tanh, sqrt, relu)
        a.add_(1)   # or the input (pow, mul)
        y.sum().backward()
    same_error(lambda: run(ember), lambda: run(torch))



# Ops with several differentiable inputs, as ``(fn(m, *inputs), kinds)``: 'f' a float input
# (each may require grad), 'b' a bool condition.  PyTorch keeps an operand that only another
# input's gradient reads only when that input needs a gradient (the should_compute_output
# guards of its generated code), so in-place changes of the rest leave backward working.
MULTI_INPUT = {
    "mul": (lambda m, a, b: a * b, "ff"),
    "mul_number": (lambda m, a: a * 2.0, "f"),
    "rmul_number": (lambda m, a: 2.0 * a, "f"),
    "div": (lambda m, a, b: a / b, "ff"),
    "div_number": (lambda m, a: a / 2.0, "f"),
    "rdiv_number": (lambda m, a: 2.0 / a, "f"),
    "div_floor": (lambda m, a, b: a.div(b, rounding_mode="floor"), "ff"),
    "div_trunc": (lambda m, a, b: m.div(a, b, rounding_mode="trunc"), "ff"),
    "remainder": (lambda m, a, b: a % b, "ff"),
    "remainder_number": (lambda m, a: a % 0.7, "f"),
    "fmod": (lambda m, a, b: m.fmod(a, b), "ff"),
    "fmod_number": (lambda m, a: m.fmod(a, 0.7), "f"),
    "pow": (lambda m, a, b: a ** b, "ff"),
    "pow_number": (lambda m, a: a ** 3.0, "f"),
    "rpow_number": (lambda m, a: 2.0 ** a, "f"),
    "atan2": (lambda m, a, b: m.atan2(a, b), "ff"),
    "hypot": (lambda m, a, b: m.hypot(a, b), "ff"),
    "maximum": (lambda m, a, b: m.maximum(a, b), "ff"),
    "fmin": (lambda m, a, b: m.fmin(a, b), "ff"),
    "clamp_tensors": (lambda m, a, b, c: m.clamp(a, b, c), "fff"),
    "clamp_min_tensor": (lambda m, a, b: m.clamp_min(a, b), "ff"),
    "where": (lambda m, c, a, b: m.where(c, a, b), "bff"),
    "lerp_number": (lambda m, a, b: m.lerp(a, b, 0.3), "ff"),
    "lerp_tensor": (lambda m, a, b, w: m.lerp(a, b, w), "fff"),
    "addcmul": (lambda m, a, b, c: m.addcmul(a, b, c, value=0.5), "fff"),
    "addcdiv": (lambda m, a, b, c: m.addcdiv(a, b, c, value=0.5), "fff"),
    "sub": (lambda m, a, b: a - b, "ff"),
}


def _inplace_after_op(m, name, need, target):
    """Run op ``name`` with inputs that require grad per ``need``, modify ``target`` (an input
    index or "out") in place, back-propagate; the leaves' gradients, or the error raised."""
    fn, kinds = MULTI_INPUT[name]
    leaves, ins = [], []
    for i, k in enumerate(kinds):
        if k == "b":
            ins.append(m.tensor([True, False, True]))
            continue
        leaf = m.from_numpy(between(0.5, 1.5, 3, seed=i)).requires_grad_(need[i])
        leaves.append(leaf)
        ins.append(leaf.clone() if need[i] else leaf)  # a non-leaf may change in place
    y = fn(m, *ins)
    if target == "out":
        y.mul_(1.0)
    elif kinds[target] == "b":
        ins[target].logical_not_()
    else:
        ins[target].add_(1.0)
    try:
        y.sum().backward()
    except RuntimeError as e:
        return e
    return [leaf.grad for leaf in leaves if leaf.requires_grad]


@pytest.mark.parametrize("name", MULTI_INPUT)
def test_inplace_change_of_an_input_fails_backward_only_where_torch_does(name):
    kinds = MULTI_INPUT[name][1]
    floats = [i for i, k in enumerate(kinds) if k == "f"]
    for mask in itertools.product((False, True), repeat=len(floats)):
        if not any(mask):
            continue
        need = dict(zip(floats, mask))
        for target in [*range(len(kinds)), "out"]:
            case = f"{name} requires_grad={mask} in-place on {target}"
            t = _inplace_after_op(torch, name, need, target)
            e = _inplace_after_op(ember, name, need, target)
            if isinstance(t, RuntimeError):
                assert isinstance(e, RuntimeError), f"{case}: torch raised {t}, ember did not"
                assert "modified by an inplace operation" in str(e), case
            else:
                assert not isinstance(e, Exception), f"{case}: ember raised {e}, torch did not"
                assert_close(e, t, msg=case)


def test_inplace_change_of_operand_unused_by_needed_gradient():
    """The case that motivated the guards: ``h * c`` with only ``h`` requiring grad."""
    def run(m, change):
        c = m.from_numpy(between(0.5, 1.5, 3))
        x = m.from_numpy(between(0.5, 1.5, 3, seed=1)).requires_grad_()
        h = x.clone()
        y = h * c
        change(h, c).add_(1)
        y.sum().backward()
        return x.grad
    # d(h*c)/dh = c: the node keeps c, not h
    assert_close(run(ember, lambda h, c: h), run(torch, lambda h, c: h))
    err = same_error(lambda: run(ember, lambda h, c: c), lambda: run(torch, lambda h, c: c))
    assert "modified by an inplace operation" in str(err)
    assert "is at version 1; expected version 0" in str(err)


@pytest.mark.parametrize("name", ["mul_number", "div", "remainder", "remainder_number",
                                  "hypot", "lerp_number", "addcmul", "addcdiv", "div_floor"])
def test_second_backward_fails_only_where_torch_keeps_a_tensor(name):
    """A node that kept no tensor frees nothing, so a second backward through it works."""
    fn, kinds = MULTI_INPUT[name]

    def run(m):
        x = m.ones(3, dtype=m.float64, requires_grad=True)
        others = [m.full((3,), 2.0, dtype=m.float64) for _ in kinds[1:]]
        y = fn(m, x, *others).sum()
        y.backward()
        try:
            y.backward()
        except RuntimeError as e:
            assert "backward through the graph a second time" in str(e)
            return "raised"
        return x.grad
    e, t = run(ember), run(torch)
    if t == "raised":
        assert e == "raised"
    else:
        assert_close(e, t)

def test_version_counter_and_views():
    x = ember.zeros(2, 3)
    v = x[0]
    before = x._version
    v.add_(1)
    assert x._version == before + 1
    assert x.tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    check(lambda m, a: (lambda c: (c[:, 1].mul_(3), c)[1])(a * 1), None, rand(3, 4))
    check(lambda m, a, b: (lambda c: (c.transpose(0, 1).clamp_(-0.5, 0.5).mul_(b), c)[1])(
        a * 1), None, rand(3, 4), rand(3))


# ---- operands, operators and bad inputs -----------------------------------------------------

def test_numpy_operands():
    t = ember.tensor([1.0, 2.0])
    r = np.float32(2.0) * t
    assert isinstance(r, ember.Tensor) and r.tolist() == [2.0, 4.0]
    assert isinstance(np.float64(1.0) + t, ember.Tensor)
    assert (t + np.int64(3)).tolist() == [4.0, 5.0]
    assert (t * np.ones(2)).dtype == ember.float64
    assert (ember.tensor([1, 2]) + np.float32(0.5)).dtype == ember.float32


BAD = [
    lambda m: m.ones(2) + "a", lambda m: "a" + m.ones(2), lambda m: m.ones(2) + None,
    lambda m: m.ones(2) - [1, 2], lambda m: (1, 2) * m.ones(2), lambda m: m.ones(2) < "a",
    lambda m: m.ones(2) ** "a", lambda m: m.ones(2) // None, lambda m: m.ones(2) % "b",
    lambda m: m.add(m.ones(2), "a"), lambda m: m.mul(m.ones(2), None),
    lambda m: m.exp(3.0), lambda m: m.sin([1.0]), lambda m: m.eq(m.ones(2), "a"),
    lambda m: m.tensor([True]) - m.tensor([True]), lambda m: -m.tensor([True]),
    lambda m: m.rsub(m.tensor([True]), m.tensor([True])), lambda m: +m.tensor([True]),
    lambda m: m.sub(m.ones(2), m.ones(2), alpha=True),
    lambda m: m.add(m.tensor([1]), m.tensor([1]), alpha=2.5),
    lambda m: m.div(m.ones(2), 2, rounding_mode="round"),
    lambda m: m.tensor([1, 2]) // 0, lambda m: m.tensor([1, 2]) % 0,
    lambda m: m.fmod(m.tensor([1, 2]), 0), lambda m: m.div(m.tensor([1]), 0, rounding_mode="trunc"),
    lambda m: m.tensor([1, 2]) ** -1, lambda m: m.tensor([True]) ** m.tensor([True]),
    lambda m: m.tensor([True]) // m.tensor([True]), lambda m: m.tensor([True]) % True,
    lambda m: m.abs(m.tensor([True])), lambda m: m.relu(m.tensor([True])),
    lambda m: m.floor(m.tensor([True])), lambda m: m.frac(m.tensor([1])),
    lambda m: m.round(m.tensor([1]), decimals=1), lambda m: m.hypot(m.tensor([1]), m.tensor([1])),
    lambda m: m.clamp(m.ones(2)), lambda m: m.clamp(m.ones(2), min=m.ones(2), max=1.0),
    lambda m: m.where(m.ones(2), m.ones(2), m.ones(2)),
    lambda m: m.lerp(m.ones(2), m.ones(2).double(), 0.5),
    lambda m: m.lerp(m.ones(2), m.ones(2), m.ones(2).double()),
    lambda m: m.lerp(m.tensor([1]), m.tensor([1]), 0.5),
    lambda m: m.addcdiv(m.tensor([1]), m.tensor([1]), m.tensor([1])),
    lambda m: m.maximum(m.ones(2), 1.0), lambda m: m.ones(2) & m.ones(2),
    lambda m: ~m.ones(2), lambda m: m.bitwise_not(m.ones(2)), lambda m: m.ones(2) << 1,
    lambda m: m.logical_and(m.ones(2), 2.0), lambda m: m.atan2(m.ones(2), 1.0),
    lambda m: m.tensor([1], dtype=m.int8) + 2 ** 70,
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_inputs_raise_like_torch(i):
    same_error(lambda: BAD[i](ember), lambda: BAD[i](torch))


def test_bool_subtraction_message():
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool"):
        ember.tensor([True]) - ember.tensor([False])
    with pytest.raises(TypeError, match="unsupported operand"):
        ember.ones(2) + "a"


def test_where_uint8_condition_warns():
    c = np.array([1, 0, 1], dtype=np.uint8)
    with pytest.warns(UserWarning, match="uint8 condition"):
        r = ember.where(ember.tensor(c), ember.ones(3), ember.zeros(3))
    assert r.tolist() == [1.0, 0.0, 1.0]


def test_where_scalars_and_promotion():
    c = np.array([True, False, True])
    for fn in (lambda m, a: m.where(a, 1.0, 0), lambda m, a: m.where(a, 1, 0),
               lambda m, a: m.where(a, True, False), lambda m, a: m.where(a, m.tensor([1, 2, 3]),
                                                                         2.5),
               lambda m, a: m.where(a, m.ones(3, dtype=m.float64), m.zeros(2, 1))):
        check(fn, None, c, grad=False)


def test_out_argument():
    x = ember.tensor([1.0, 4.0])
    out = ember.empty(2)
    r = ember.sqrt(x, out=out)
    assert r is out and out.tolist() == [1.0, 2.0]
    ember.add(x, 1, out=out)
    assert out.tolist() == [2.0, 5.0]
    b = ember.empty(2, dtype=ember.bool)
    ember.lt(x, 2, out=b)
    assert b.tolist() == [True, False]


def test_inference_mode_results():
    with ember.inference_mode():
        x = ember.ones(2)
        assert (x + 1).is_inference() and (x > 0).is_inference()


def test_hot_path_is_lean():
    # the same-dtype float path must not reach the explicit-cast fallback
    calls = []
    orig = ew._operands

    def spy(*a):
        calls.append(a)
        return orig(*a)
    ew._operands = spy
    try:
        a, b = ember.randn(4), ember.randn(4)
        a * b, a + 1.0, a - b, a / b, a * 2, 1.5 * a, a + b * 0.5
        assert not calls
    finally:
        ew._operands = orig


def test_methods_are_bound():
    x = ember.ones(2)
    for name in ew.__all__:
        if name == "rsub":  # torch.rsub has no Tensor method
            assert not hasattr(x, name)
            continue
        assert callable(getattr(x, name)), name
    for name in ("add_", "eq_", "greater_", "mul_", "clamp_", "exp_", "sigmoid_", "relu_",
                 "pow_", "abs_", "sqrt_", "neg_", "floor_", "lerp_", "addcmul_", "addcdiv_",
                 "__ipow__", "__ifloordiv__", "__imod__", "__iand__", "__ior__", "__ixor__",
                 "__ilshift__", "__irshift__"):
        assert callable(getattr(x, name)), name
    assert ember.Tensor.__hash__ is object.__hash__


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "mul_", "add_"])
def test_half_arithmetic_rounds_once_as_torch_opmath(dt, op):
    """A half tensor with a float32 0-d tensor or a Python float: computed in float32 and
    rounded once, as PyTorch's CPU kernels do (no rounding of the other operand first)."""
    vals = np.array([0.2001953125, 1.7, -2.2, 3e-3, 65.5], dtype=np.float32)
    for other in (0.1, np.float32(0.999)):
        res = []
        for m in (ember, torch):
            a = m.tensor(vals).to(getattr(m, dt))
            b = other if isinstance(other, float) else m.tensor(other)
            r = getattr(a, op)(b)
            res.append(np.asarray(r.float().tolist()))
        np.testing.assert_array_equal(res[0], res[1])
