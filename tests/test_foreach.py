"""torch._foreach_*: every op and overload against torch (values, dtypes, gradients), the
in-place forms (results, returned list, grads through them) and the bad inputs."""
import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, positive, assert_close, gradcheck

A, B = rand(2, 3, seed=1), rand(4, seed=2)
C, D = rand(2, 3, seed=3), rand(4, seed=4)
E, F = rand(2, 3, seed=5), rand(4, seed=6)
PA, PB = positive(2, 3, seed=7), positive(4, seed=8)
UA, UB = rand(2, 3, low=-0.9, high=0.9, seed=9), rand(4, low=-0.9, high=0.9, seed=10)
DOMAIN = {"log": (PA, PB), "log10": (PA, PB), "log2": (PA, PB), "log1p": (PA, PB),
          "sqrt": (PA, PB), "rsqrt": (PA, PB), "reciprocal": (PA, PB), "lgamma": (PA, PB),
          "acos": (UA, UB), "asin": (UA, UB)}
UNARY = ["abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1",
         "floor", "frac", "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal",
         "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "trunc"]


def _inplace(m, name, tensors, *args, **kw):
    """Run ``_foreach_<name>_`` on non-leaf copies; check it returns the list it was given."""
    copies = [t * 1 for t in tensors]
    assert getattr(m, f"_foreach_{name}_")(copies, *args, **kw) is copies
    return tuple(copies)


@pytest.mark.parametrize("name", UNARY)
def test_unary(name):
    x, y = DOMAIN.get(name, (A, B))
    check(lambda m, a, b: getattr(m, f"_foreach_{name}")([a, b]), None, x, y)
    check(lambda m, a, b: _inplace(m, name, [a, b]), None, x, y)


BINARY = [  # (name, the arguments after the list, made from tensors c and d: (args, kwargs))
    ("add", lambda m, c, d: ((1.5,), {})),
    ("add", lambda m, c, d: (([2, -0.5],), {})),
    ("add", lambda m, c, d: (([c, d],), {})),
    ("add", lambda m, c, d: (([c, d],), {"alpha": -2})),
    # the 0-d tensor overload (a constant: torch's backward to it fails for add, "inconsistent
    # range for TensorList output")
    ("add", lambda m, c, d: ((m.tensor(0.7, dtype=c.dtype),), {"alpha": 3})),
    ("sub", lambda m, c, d: ((2,), {})),
    ("sub", lambda m, c, d: (([c, d],), {"alpha": 0.5})),
    ("sub", lambda m, c, d: (([1.0, 3],), {})),
    ("mul", lambda m, c, d: ((-3.0,), {})),
    ("mul", lambda m, c, d: (([c, d],), {})),
    ("mul", lambda m, c, d: (([0.5, 2],), {})),
    ("mul", lambda m, c, d: ((m.tensor(-1.5, dtype=c.dtype),), {})),
    ("div", lambda m, c, d: ((4.0,), {})),
    ("div", lambda m, c, d: (([c.exp(), d.exp()],), {})),
    ("div", lambda m, c, d: (([2, 0.25],), {})),
    ("div", lambda m, c, d: ((m.tensor(2.5, dtype=c.dtype),), {})),
    ("maximum", lambda m, c, d: ((0.1,), {})),
    ("maximum", lambda m, c, d: (([c, d],), {})),
    ("maximum", lambda m, c, d: (([0.0, -0.5],), {})),
    ("minimum", lambda m, c, d: ((0.1,), {})),
    ("minimum", lambda m, c, d: (([c, d],), {})),
    ("minimum", lambda m, c, d: (([0.0, -0.5],), {})),
    ("clamp_min", lambda m, c, d: ((-0.3,), {})),
    ("clamp_min", lambda m, c, d: (([c, d],), {})),
    ("clamp_min", lambda m, c, d: (([0.2, 1],), {})),
    ("clamp_max", lambda m, c, d: ((0.3,), {})),
    ("clamp_max", lambda m, c, d: (([c, d],), {})),
    ("clamp_max", lambda m, c, d: (([0.2, 1],), {})),
    ("pow", lambda m, c, d: ((2.5,), {})),
    ("pow", lambda m, c, d: (([c, d],), {})),
    ("pow", lambda m, c, d: (([3, -0.5],), {})),
]


@pytest.mark.parametrize("i", range(len(BINARY)))
def test_binary(i):
    name, arguments = BINARY[i]

    def bases(a, b):  # pow's bases kept positive
        return [a.abs() + 0.5, b.abs() + 0.5] if name == "pow" else [a, b]

    def out_of_place(m, a, b, c, d):
        args, kw = arguments(m, c, d)
        return getattr(m, f"_foreach_{name}")(bases(a, b), *args, **kw)

    def in_place(m, a, b, c, d):
        args, kw = arguments(m, c, d)
        return _inplace(m, name, bases(a, b), *args, **kw)
    check(out_of_place, None, A, B, C, D)
    if name in ("maximum", "minimum") and i % 3 != 2:
        # torch has no derivative for _foreach_maximum_/minimum_ with scalars: values against
        # torch, ember's gradient by finite differences
        check(in_place, None, A, B, C, D, grad=False)
        assert gradcheck(lambda a, b: in_place(ember, a, b, C, D), A, B)
    else:
        check(in_place, None, A, B, C, D)


def test_pow_forms():
    check(lambda m, a, b: m._foreach_pow(2.0, [a, b]), None, A, B)
    check(lambda m, a, b, c, d: _inplace(m, "pow", [a.abs() + 1, b.abs() + 1], [c, d]),
          None, A, B, C, D)
    check(lambda m, a, b: _inplace(m, "pow", [a, b], 2), None, A, B)


@pytest.mark.parametrize("name", ["addcmul", "addcdiv"])
def test_addcmul_addcdiv(name):
    def run(m, suffix, l, t1, t2, *args):
        return getattr(m, f"_foreach_{name}{suffix}")(l, t1, t2, *args)
    for value in ((), (0.5,), ([2, -1.5],)):
        check(lambda m, a, b, c, d, e, f: run(m, "", [a, b], [c, d], [e.exp(), f.exp()], *value),
              None, A, B, C, D, E, F)
        check(lambda m, a, b, c, d, e, f: _inplace(m, name, [a, b], [c, d], [e.exp(), f.exp()],
                                                   *value), None, A, B, C, D, E, F)
    # the packed 1-d tensor of values: torch has no derivative for it, so values against torch
    # and ember's gradient by finite differences
    def packed(m, a, b, c, d, e, f):
        return run(m, "", [a, b], [c, d], [e.exp(), f.exp()], m.tensor([3.0, -1.0], dtype=a.dtype))
    check(packed, None, A, B, C, D, E, F, grad=False)
    assert gradcheck(lambda *ts: packed(ember, *ts), A, B, C, D, E, F)


def test_lerp():
    check(lambda m, a, b, c, d: m._foreach_lerp([a, b], [c, d], 0.3), None, A, B, C, D)
    check(lambda m, a, b, c, d: m._foreach_lerp([a, b], [c, d], [0.3, 1.5]), None, A, B, C, D)
    check(lambda m, a, b, c, d, e, f: m._foreach_lerp([a, b], [c, d], [e, f]), None,
          A, B, C, D, E, F)
    check(lambda m, a, b, c, d: _inplace(m, "lerp", [a, b], [c, d], 0.75), None, A, B, C, D)
    check(lambda m, a, b, c, d, e, f: _inplace(m, "lerp", [a, b], [c, d], [e, f]), None,
          A, B, C, D, E, F)


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, float("inf"), 0])
def test_norm_powsum(ord):
    check(lambda m, a, b: m._foreach_norm([a, b], ord), None, A, B)
    # torch has no derivative for _foreach_powsum: values against torch, ember's gradient
    # against torch's sum(|t| ** ord)
    check(lambda m, a, b: m._foreach_powsum([a, b], ord), None, A, B, grad=False)
    if ord not in (0, float("inf")):
        check(lambda a, b: ember._foreach_powsum([a, b], ord),
              lambda a, b: tuple(t.abs().pow(ord).sum() for t in (a, b)), A, B)


def test_norm_dtype_max_mm_clone():
    check(lambda m, a, b: m._foreach_norm([a, b], 2, dtype=m.float64), None, A, B)
    check(lambda m, a, b: m._foreach_max([a, b]), None, A, B)
    check(lambda m, a, c: m._foreach_mm([a, a], [c.T, c.T]), None, A, C)
    check(lambda m, a, b: m._foreach_clone([a, b]), None, A, B)


def test_copy_zero_and_dtypes():
    for m in (ember, torch):
        x = [m.ones(2), m.ones(3, dtype=m.int64)]
        assert m._foreach_copy_(x, [m.tensor([2.0, 3.0]), m.tensor([7])]) is x
        assert x[0].tolist() == [2.0, 3.0] and x[1].tolist() == [7, 7, 7]
        assert m._foreach_zero_(x) is x
        assert x[0].tolist() == [0.0, 0.0] and x[1].tolist() == [0, 0, 0]
    for m in (ember, torch):  # the tuple comes back when a tuple goes in
        t = (m.ones(2),)
        assert m._foreach_add_(t, 1) is t and type(m._foreach_add(t, 1)) is tuple
    # integer lists promote as the single-tensor ops do
    for call in (lambda m, x: m._foreach_div(x, 2), lambda m, x: m._foreach_sqrt(x),
                 lambda m, x: m._foreach_mul(x, [1.5]), lambda m, x: m._foreach_add(x, 1),
                 lambda m, x: m._foreach_maximum(x, 1.5),
                 lambda m, x: m._foreach_add([x[0].double()], [x[0].float()])):
        assert_close(call(ember, [ember.tensor([1, 4])]), call(torch, [torch.tensor([1, 4])]))


def test_optimizer_update_matches_torch():
    """The Adam-like multi-tensor update timm writes, step for step."""
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,), ())]
    gs = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
    out = {}
    for m in (ember, torch):
        p = [m.tensor(a) for a in ps]
        g = [m.tensor(a) for a in gs]
        e1 = [m.zeros_like(t) for t in p]
        e2 = [m.zeros_like(t) for t in p]
        for step in range(1, 4):
            m._foreach_lerp_(e1, g, 0.1)
            m._foreach_mul_(e2, 0.999)
            m._foreach_addcmul_(e2, g, g, 0.001)
            denom = m._foreach_sqrt(e2)
            m._foreach_div_(denom, 1 - 0.999 ** step)
            m._foreach_add_(denom, 1e-8)
            m._foreach_addcdiv_(p, e1, denom, -1e-2 / (1 - 0.9 ** step))
            m._foreach_maximum_(p, -0.5)
        out[m.__name__] = [t.tolist() for t in p]
    np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in out["ember"]]),
                               np.concatenate([np.ravel(x) for x in out["torch"]]), rtol=1e-5)


BAD = [  # (call, exception type, message fragment)
    (lambda m, a: m._foreach_add([], 1), RuntimeError, "at least one tensor"),
    (lambda m, a: m._foreach_sqrt([]), RuntimeError, "at least one tensor"),
    (lambda m, a: m._foreach_add(a, [m.ones(2)]), RuntimeError,
     "same number of tensors, got 2 and 1"),
    (lambda m, a: m._foreach_add(a, [1.0]), RuntimeError, "same number of elements as scalar"),
    (lambda m, a: m._foreach_add(a, [m.ones(3), m.ones(3)]), RuntimeError,
     "must match the size"),
    (lambda m, a: m._foreach_add(m.ones(2), 1), TypeError, "_foreach_add"),
    (lambda m, a: m._foreach_sqrt(m.ones(2)), TypeError, "must be tuple of Tensors, not Tensor"),
    (lambda m, a: m._foreach_sqrt([1.0]), TypeError, "expected Tensor as element 0"),
    (lambda m, a: m._foreach_add(a, m.ones(2)), RuntimeError, "expected to be 0 dim"),
    (lambda m, a: m._foreach_sub(a, m.ones(2)), TypeError, "invalid combination"),
    (lambda m, a: m._foreach_add(a, 1, alpha=2), TypeError, "invalid combination"),
    (lambda m, a: m._foreach_mul(a, None), TypeError, "invalid combination"),
    (lambda m, a: m._foreach_add(a, "x"), TypeError, "invalid combination"),
    (lambda m, a: m._foreach_add(a, [m.ones(2), 1]), TypeError, "expected Tensor as element 1"),
    (lambda m, a: m._foreach_add_([m.ones(2, dtype=m.long)], 1.5), RuntimeError,
     "can't be cast to the desired output type Long"),
    (lambda m, a: m._foreach_sqrt_([m.ones(2, dtype=m.long)]), RuntimeError,
     "can't be cast to the desired output type Long"),
    (lambda m, a: m._foreach_add_([m.ones(2, requires_grad=True)], 1), RuntimeError,
     "a leaf Variable that requires grad"),
    (lambda m, a: m._foreach_norm([m.ones(2, dtype=m.long)]), RuntimeError,
     "Expected a floating point or complex tensor"),
    (lambda m, a: m._foreach_norm(a, [2]), TypeError, "argument 'ord' (position 2) must be"),
    (lambda m, a: m._foreach_max([m.ones(0)]), RuntimeError, "maximum of an empty tensor"),
    (lambda m, a: m._foreach_addcmul(a, a, a, m.tensor(2.0)), RuntimeError,
     "packed scalar Tensor to be of dimension 1. Got 0"),
    (lambda m, a: m._foreach_addcmul(a, a, a, m.tensor([1.0, 2, 3])), RuntimeError,
     "match input of length 2 but got 3"),
    (lambda m, a: m._foreach_addcmul(a, a, a, [1]), RuntimeError, "same number of elements"),
    (lambda m, a: m._foreach_addcdiv(a, a[:1], a), RuntimeError, "got 2 and 1"),
    (lambda m, a: m._foreach_lerp(a, a, [0.5]), RuntimeError, "same number of elements"),
    (lambda m, a: m._foreach_lerp(a, a, [m.ones(2)]), RuntimeError, "got 2 and 1"),
    (lambda m, a: m._foreach_copy_(a, [m.ones(2)]), RuntimeError, "got 2 and 1"),
    (lambda m, a: m._foreach_sub([m.ones(2, dtype=m.bool)], 1), RuntimeError,
     "Subtraction, the `-` operator, with a bool tensor"),
    (lambda m, a: m._foreach_neg([m.ones(2, dtype=m.bool)]), RuntimeError,
     "Negation, the `-` operator, on a bool tensor"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input(i):
    call, exc, msg = BAD[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m, [m.ones(2), m.ones(3)])
        assert msg in str(info.value), f"{m.__name__}: {info.value}"
