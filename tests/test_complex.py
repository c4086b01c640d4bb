"""Complex dtypes against torch: dtype facts and promotion, printing, views, elementwise maths,
reductions, matmul, autograd's conjugate-Wirtinger gradients, and the ops that refuse complex."""
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from complexcheck import ccheck, crand, rrand, same, np_of

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
         "float64", "complex64", "complex128"]


def dt(m, name):
    return getattr(m, name)


# ---- dtypes and promotion ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["complex64", "complex128", "float32", "float64", "int64"])
def test_dtype_facts(name):
    e, t = dt(ember, name), dt(torch, name)
    assert e.is_complex == t.is_complex
    assert e.is_floating_point == t.is_floating_point
    assert e.itemsize == t.itemsize
    assert e.is_signed == t.is_signed
    assert e.to_real().name == str(t.to_real()).split(".")[1]
    if t.is_floating_point or t.is_complex:
        assert e.to_complex().name == str(t.to_complex()).split(".")[1]


def test_aliases_and_to_complex_error():
    assert ember.cfloat is ember.complex64 and ember.cdouble is ember.complex128
    with pytest.raises(RuntimeError, match="Unknown Complex ScalarType for Long"):
        ember.int64.to_complex()
    with pytest.raises(RuntimeError, match="Unknown Complex ScalarType for Long"):
        torch.int64.to_complex()


@pytest.mark.parametrize("a,b", [p for p in itertools.product(NAMES, NAMES)
                                 if "complex" in p[0] + p[1]
                                 and not {"float16", "bfloat16"} & set(p)])
def test_promote_types_and_can_cast(a, b):
    assert ember.promote_types(dt(ember, a), dt(ember, b)).name == \
        str(torch.promote_types(dt(torch, a), dt(torch, b))).split(".")[1]
    assert ember.can_cast(dt(ember, a), dt(ember, b)) == \
        torch.can_cast(dt(torch, a), dt(torch, b))


@pytest.mark.parametrize("tensor_dt", ["bool", "int64", "float32", "float64", "complex64",
                                       "complex128"])
@pytest.mark.parametrize("other", [1j, 2.5, 3, "c64_0d", "c128_0d", "f64_0d"])
def test_result_type_with_scalars_and_zero_dim(tensor_dt, other):
    def build(m):
        x = m.ones(2, dtype=dt(m, tensor_dt))
        if isinstance(other, str):
            o = m.ones((), dtype=dt(m, {"c64_0d": "complex64", "c128_0d": "complex128",
                                        "f64_0d": "float64"}[other]))
        else:
            o = other
        return m.result_type(x, o), (x * o).dtype
    (e1, e2), (t1, t2) = build(ember), build(torch)
    assert e1.name == e2.name == str(t1).split(".")[1] == str(t2).split(".")[1]


def test_default_complex_dtype_follows_default_float():
    assert ember.tensor([1 + 2j]).dtype is ember.complex64
    assert ember.full((2,), 1j).dtype is ember.complex64
    ember.set_default_dtype(ember.float64)
    try:
        assert ember.tensor([1 + 2j, 3]).dtype is ember.complex128
        assert (ember.ones(2, dtype=ember.int64) * 1j).dtype is ember.complex128
    finally:
        ember.set_default_dtype(ember.float32)


def test_numpy_round_trip_and_predicates():
    a = crand(3).astype(np.complex64)
    z = ember.from_numpy(a)
    assert z.dtype is ember.complex64 and z.is_complex() and ember.is_complex(z)
    assert not z.is_floating_point() and not ember.ones(2).is_complex()
    assert z.numpy() is a
    assert z.tolist() == a.tolist() and complex(z[1]) == complex(a[1])
    assert z.type() == torch.from_numpy(a).type() == "torch.ComplexFloatTensor"


# ---- printing ------------------------------------------------------------------------------

PRINT_CASES = ["[1+2j, -3.5-1e-3j]", "[[1+2j, 3j], [1e5j, 2]]", "1j", "[-0.0-0.0j, 1.5+0j]",
               "[complex('nan'), complex('inf'), 1+1j]", "[0.1+0.25j, 123.5-7j]", "[]"]


@pytest.mark.parametrize("case", PRINT_CASES)
@pytest.mark.parametrize("name", ["complex64", "complex128"])
def test_repr_matches_torch(case, name):
    e = repr(ember.tensor(eval(case), dtype=dt(ember, name)))
    assert e.replace("ember", "torch") == repr(torch.tensor(eval(case), dtype=dt(torch, name)))


def test_repr_large_and_with_grad_matches_torch():
    a = crand(40, 30, seed=3) * 50
    assert repr(ember.tensor(a)).replace("ember", "torch") == repr(torch.tensor(a))
    e = repr(ember.tensor([1 + 1j], requires_grad=True) * 2)
    t = repr(torch.tensor([1 + 1j], requires_grad=True) * 2)
    assert e == t.replace("torch", "ember")


# ---- views: real, imag, view_as_real, view_as_complex --------------------------------------

def test_real_imag_are_writable_views():
    for m in (ember, torch):
        z = m.tensor([1 + 2j, 3 - 4j])
        z.real[0] = 10
        z.imag.mul_(2)
        z.real = m.tensor([5.0, 6.0])
        assert z.tolist() == [5 + 4j, 6 - 8j]


def test_view_as_real_and_complex_share_memory():
    for m in (ember, torch):
        z = m.tensor([[1 + 2j, 3 - 4j]], dtype=m.complex128)
        r = m.view_as_real(z)
        assert tuple(r.shape) == (1, 2, 2) and r.dtype is m.float64
        r[0, 1, 1] = 9.0
        assert z[0, 1].item() == 3 + 9j
        back = m.view_as_complex(r)
        back[0, 0] = 7j
        assert z[0, 0].item() == 7j
        t = m.view_as_real(z.t())  # non-contiguous complex input
        assert t.tolist() == [[[0.0, 7.0]], [[3.0, 9.0]]]


def test_in_place_through_real_and_imag_views_keeps_gradients():
    a = np.array([1 + 2j, -0.5 + 1j, 2 - 1j])
    grads = []
    for m in (ember, torch):
        z = m.tensor(a, requires_grad=True)
        w = z * (1 + 1j)
        w.real.mul_(3)
        w.imag.add_(w.real * 2)
        (w * w.conj()).real.sum().backward()
        grads.append(z.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1])
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        ember.tensor(a, requires_grad=True).real.mul_(2)


def test_real_of_real_is_itself_and_conj_of_real_too():
    x = ember.ones(2)
    assert ember.real(x) is x and x.real is x and ember.conj(x) is x
    t = torch.ones(2)
    assert torch.real(t) is t and t.real is t and torch.conj(t) is t


def test_conj_is_materialised_consistently():
    """ember's conj is never lazy (ops/complex.py): is_conj False, resolve_conj a no-op."""
    z = ember.tensor([1 + 2j])
    c = z.conj()
    assert not c.is_conj() and not ember.is_conj(c) and not c.is_neg()
    assert c.resolve_conj() is c and ember.resolve_neg(c) is c
    assert c.tolist() == [1 - 2j] == z.conj_physical().tolist()
    assert ember.view_as_real(c).tolist() == [[1.0, -2.0]]  # torch asks for resolve_conj here
    z.conj_physical_()
    assert z.tolist() == [1 - 2j]


# ---- values and gradients against torch ----------------------------------------------------

Z, W, X = crand(3, 4, seed=1), crand(3, 4, seed=2), rrand(3, 4, seed=3)
ZV = crand(4, seed=4)
CASES = {
    # arithmetic, complex with complex, real and Python numbers
    "add": (lambda m, z, w: z + w * 2, Z, W),
    "sub_alpha": (lambda m, z, w: m.sub(z, w, alpha=3), Z, W),
    "mul": (lambda m, z, w: z * w, Z, W),
    "mul_real": (lambda m, z, x: z * x, Z, X),
    "mul_scalar": (lambda m, z: z * (2 - 1j), Z),
    "real_times_complex_scalar": (lambda m, x: x * 1j + 1, X),
    "div": (lambda m, z, w: z / w, Z, W),
    "rdiv": (lambda m, z: (1 + 1j) / z, Z),
    "div_real": (lambda m, x, z: x / z, X, Z),
    "neg": (lambda m, z: -z, Z),
    "pow_int": (lambda m, z: z ** 3, Z),
    "pow_half": (lambda m, z: z ** 0.5, Z),
    "pow_complex_scalar": (lambda m, z: z ** (1 + 0.5j), Z),
    "real_pow_complex_scalar": (lambda m, x: (x.abs() + 0.5) ** (1 + 0.5j), X),
    "pow_tensor": (lambda m, z, w: z ** w, Z, W),
    "square": (lambda m, z: z.square(), Z),
    "reciprocal": (lambda m, z: z.reciprocal(), Z),
    # holomorphic maths
    "exp": (lambda m, z: z.exp(), Z),
    "log": (lambda m, z: z.log(), Z),
    "sqrt": (lambda m, z: z.sqrt(), Z),
    "rsqrt": (lambda m, z: z.rsqrt(), Z),
    "sin": (lambda m, z: z.sin(), Z),
    "cos": (lambda m, z: z.cos(), Z),
    "tan": (lambda m, z: z.tan(), Z),
    "sinh": (lambda m, z: z.sinh(), Z),
    "tanh": (lambda m, z: z.tanh(), Z),
    "sigmoid": (lambda m, z: z.sigmoid(), Z),
    "expm1": (lambda m, z: z.expm1(), Z),
    "acosh": (lambda m, z: z.acosh(), Z),
    "asin": (lambda m, z: z.asin(), Z),
    "atanh": (lambda m, z: z.atanh(), Z),
    "float_power": (lambda m, z: m.float_power(z, 2), Z),
    "float_power_complex_exponent": (lambda m, x: m.float_power(x.abs() + 0.5, 1j), X),
    "cross": (lambda m, a, b: m.linalg.cross(a, b), crand(2, 3, seed=23), crand(2, 3, seed=24)),
    "log1p": (lambda m, z: z.log1p(), Z),
    # non-holomorphic: real results and conjugation
    "abs": (lambda m, z: z.abs(), Z),
    "angle": (lambda m, z: z.angle(), Z),
    "angle_real": (lambda m, x: m.angle(x), X),
    "sgn": (lambda m, z: z.sgn(), Z),
    "conj": (lambda m, z: z.conj() * z, Z),
    "conj_physical": (lambda m, z: m.conj_physical(z), Z),
    "real": (lambda m, z: z.real * 2, Z),
    "imag": (lambda m, z: z.imag * 2, Z),
    "view_as_real": (lambda m, z: m.view_as_real(z) * 3, Z),
    "view_as_complex": (lambda m, x: m.view_as_complex(x.reshape(3, 2, 2)), X),
    "polar": (lambda m, a, b: m.polar(a, b), rrand(3, 4, seed=5, low=0.1, high=2), X),
    "polar_broadcast": (lambda m, a, b: m.polar(a, b), rrand(4, seed=6, low=0.1), X),
    "complex": (lambda m, a, b: m.complex(a, b), X, rrand(3, 4, seed=7)),
    "complex_broadcast": (lambda m, a, b: m.complex(a, b), rrand(3, 1, seed=8), rrand(4)),
    "to_complex": (lambda m, x: x.to(m.complex128) * (1 + 2j), X),
    "where": (lambda m, z, w: m.where(z.real > 0, z, w), Z, W),
    "eq_ne": (lambda m, z: (z == z[0:1], z != 1j), Z),
    # reductions
    "sum": (lambda m, z: z.sum(), Z),
    "sum_dim": (lambda m, z: z.sum(1, keepdim=True), Z),
    "mean": (lambda m, z: z.mean(0), Z),
    "prod": (lambda m, z: z.prod(1), Z),
    "prod_all": (lambda m, z: z.prod(), Z),
    "cumsum": (lambda m, z: z.cumsum(1), Z),
    "var": (lambda m, z: z.var(1), Z),
    "std": (lambda m, z: z.std(), Z),
    "norm": (lambda m, z: z.norm(), Z),
    "vector_norm_1": (lambda m, z: m.linalg.vector_norm(z, 1, dim=0), Z),
    "vector_norm_inf": (lambda m, z: m.linalg.vector_norm(z, math.inf, dim=1), Z),
    "vector_norm_3": (lambda m, z: m.linalg.vector_norm(z, 3), Z),
    # products
    "matmul": (lambda m, z, w: z @ w.mT, Z, W),
    "mm": (lambda m, z, w: m.mm(z.t(), w), Z, W),
    "bmm": (lambda m, a, b: m.bmm(a, b), crand(2, 3, 4, seed=9), crand(2, 4, 2, seed=10)),
    "matmul_batched": (lambda m, a, b: a @ b, crand(2, 3, 4, seed=11), crand(4, 5, seed=12)),
    "mv": (lambda m, z, v: z @ v, Z, ZV),
    "dot": (lambda m, v, u: m.dot(v, u), ZV, crand(4, seed=13)),
    "vdot": (lambda m, v, u: m.vdot(v, u), ZV, crand(4, seed=13)),
    "addmm": (lambda m, c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2), crand(3, 2, seed=14),
              Z, crand(4, 2, seed=15)),
    "einsum": (lambda m, a, b: m.einsum("ij,kj->ik", a, b), Z, W),
    "adjoint": (lambda m, z: z.mH @ z, Z),
    "linear": (lambda m, x, w, b: m.nn.functional.linear(x, w, b), Z, crand(5, 4, seed=16),
               crand(5, seed=17)),
    "linear_3d": (lambda m, x, w: m.nn.functional.linear(x, w), crand(2, 3, 4, seed=18),
                  crand(5, 4, seed=16)),
    "cumprod": (lambda m, z: z.cumprod(1), Z),
    "addcmul": (lambda m, a, b, c: m.addcmul(a, b, c, value=2), Z, W, crand(3, 4, seed=19)),
    "addcdiv": (lambda m, a, b, c: m.addcdiv(a, b, c, value=2), Z, W, crand(3, 4, seed=19)),
    "trace": (lambda m, a: m.trace(a), crand(3, 3, seed=20)),
    "outer": (lambda m, a, b: m.outer(a, b), ZV, crand(3, seed=21)),
    "lerp": (lambda m, a, b: m.lerp(a, b, 0.3), Z, W),
    # movement and indexing pass complex through
    "masked_fill": (lambda m, z: z.masked_fill(z.real > 0, 1j), Z),
    "index": (lambda m, z: z[1:, ::2].reshape(-1).flip(0), Z),
    "cat": (lambda m, z, w: m.cat([z, w], 1).t(), Z, W),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_against_torch(name):
    fn, *inputs = CASES[name]
    ccheck(fn, *inputs)


def test_wirtinger_convention_examples():
    """The gradient of a real loss is conj(dL/dz): |z|^2 gives 2z, Re(z) gives 1, Im(z) 1j."""
    z0 = np.array([1 + 2j, -3 + 0.5j])
    z = ember.tensor(z0, requires_grad=True)
    (z * z.conj()).real.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), 2 * z0)
    z.grad = None
    z.imag.sum().backward()
    assert z.grad.tolist() == [1j, 1j]
    with pytest.raises(RuntimeError, match="real scalar outputs"):
        z.sum().backward()


def test_requires_grad_allowed_on_complex_and_grad_dtype():
    z = ember.zeros(2, dtype=ember.complex64, requires_grad=True)
    (z.abs() + z.real).sum().backward()
    assert z.grad.dtype is ember.complex64


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=3),
       st.lists(st.integers(1, 4), min_size=0, max_size=3), st.integers(0, 10 ** 6))
def test_broadcast_mul_div_hypothesis(sa, sb, seed):
    sa, sb = tuple(sa), tuple(sb)
    # make the two shapes broadcastable: where they clash, the second takes a 1
    n = min(len(sa), len(sb))
    sb = list(sb)
    for i in range(1, n + 1):
        if sa[-i] != sb[-i]:
            sb[-i] = 1
    a, b = crand(*sa, seed=seed), crand(*tuple(sb), seed=seed + 1) + 2
    ccheck(lambda m, x, y: (x * y, x / y), a, b, precisions=(("complex128", "float64"),))


def test_gradcheck_on_complex():
    rng = np.random.default_rng(0)
    z = ember.tensor(rng.standard_normal(3) + 1j * rng.standard_normal(3), requires_grad=True)
    w = ember.tensor(rng.standard_normal(3), dtype=ember.float64, requires_grad=True)
    for fn in (lambda z, w: (z * w).exp(), lambda z, w: z.abs() * w, lambda z, w: z.angle(),
               lambda z, w: ember.view_as_real(z.sigmoid()), lambda z, w: z.conj() * z.real,
               lambda z, w: ember.polar(w.abs() + 0.1, w) @ z):
        assert ember.autograd.gradcheck(fn, (z, w))
        assert ember.autograd.gradgradcheck(fn, (z, w))


def test_gradcheck_catches_a_wrong_complex_gradient():
    class Square(ember.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 2 * x  # the conj is missing: torch's convention wants g * conj(2x)

    z = ember.tensor([1 + 2j, 0.5 - 1j], dtype=ember.complex128, requires_grad=True)
    with pytest.raises(RuntimeError, match="Jacobian mismatch"):  # GradcheckError
        ember.autograd.gradcheck(Square.apply, (z,))


# ---- ops that refuse complex: torch's exception type and message ---------------------------

REFUSED = {
    "lt": lambda m, z: z < z, "le": lambda m, z: z <= 1, "gt": lambda m, z: m.gt(z, z),
    "ge": lambda m, z: z >= z, "max": lambda m, z: z.max(), "min": lambda m, z: m.min(z),
    "max_dim": lambda m, z: z.max(0), "min_dim": lambda m, z: z.min(1),
    "amax": lambda m, z: z.amax(), "amin": lambda m, z: z.amin(0),
    "argmax": lambda m, z: z.argmax(), "argmin": lambda m, z: z.argmin(0),
    "aminmax": lambda m, z: m.aminmax(z), "cummax": lambda m, z: z.cummax(0),
    "cummin": lambda m, z: z.cummin(1),
    "clamp": lambda m, z: z.clamp(0, 1), "clamp_min": lambda m, z: m.clamp_min(z, 0),
    "clamp_tensor": lambda m, z: z.clamp(m.zeros(4), m.ones(4)),
    "relu": lambda m, z: m.relu(z), "maximum": lambda m, z: m.maximum(z, z),
    "minimum": lambda m, z: m.minimum(z, z), "fmax": lambda m, z: m.fmax(z, z),
    "floor": lambda m, z: z.floor(), "ceil": lambda m, z: z.ceil(),
    "trunc": lambda m, z: z.trunc(), "round": lambda m, z: z.round(),
    "frac": lambda m, z: z.frac(), "remainder": lambda m, z: z % 2,
    "fmod": lambda m, z: m.fmod(z, 2), "floor_divide": lambda m, z: z // 2,
    "sign": lambda m, z: z.sign(), "atan2": lambda m, z: m.atan2(z, z),
    "hypot": lambda m, z: m.hypot(z, z), "copysign": lambda m, z: m.copysign(z, z),
    "imag_of_real": lambda m, z: z.real.imag,
    "view_as_real_of_real": lambda m, z: m.view_as_real(z.real),
    "view_as_complex_int": lambda m, z: m.view_as_complex(m.ones(2, 2, dtype=m.int64)),
    "view_as_complex_size": lambda m, z: m.view_as_complex(m.ones(2, 3)),
    "view_as_complex_stride": lambda m, z: m.view_as_complex(m.ones(3, 3)[:, 1:]),
    "view_as_complex_last_stride": lambda m, z: m.view_as_complex(m.ones(2, 3).t()),
    "polar_int": lambda m, z: m.polar(m.ones(2, dtype=m.int64), m.ones(2, dtype=m.int64)),
    "polar_mixed": lambda m, z: m.polar(m.ones(2), m.ones(2, dtype=m.float64)),
    "complex_shapes": lambda m, z: m.complex(m.ones(2), m.ones(3)),
    "complex_mixed": lambda m, z: m.complex(m.ones(2), m.ones(2, dtype=m.float64)),
    "sort": lambda m, z: z.sort(), "argsort": lambda m, z: z.argsort(),
    "topk": lambda m, z: z.topk(1), "median": lambda m, z: z.median(),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refuses_complex_like_torch(name):
    fn = REFUSED[name]
    errors = []
    for m in (torch, ember):
        z = m.tensor([[1 + 2j, 3j, -1 + 0j, 2 - 2j]] * 2, dtype=m.complex64)
        with pytest.raises(Exception) as info:
            fn(m, z)
        errors.append(info.value)
    t, e = errors
    assert type(e) is type(t), f"{type(e).__name__}: {e} vs {type(t).__name__}: {t}"
    assert str(e).replace("ember", "torch") == str(t)


def test_same_helper_compares_conj_views():
    z = torch.tensor([1 + 1j])
    same(ember.tensor([1 - 1j]), z.conj(), "float64")
    assert np_of(z.conj()).tolist() == [1 - 1j]


# ---- optimizers and sampling on complex parameters -----------------------------------------

@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
                                     ("Adam", dict(lr=0.1)), ("Adam", dict(lr=0.1, amsgrad=True)),
                                     ("AdamW", dict(lr=0.1, weight_decay=0.1)),
                                     ("RMSprop", dict(lr=0.01)), ("Adagrad", dict(lr=0.1))])
def test_optimizers_update_complex_parameters_as_real_pairs(name, kw):
    """PyTorch's optimizers step a complex parameter on view_as_real of it and its state."""
    a = crand(3, 4, seed=20).astype(np.complex64)
    r = rrand(5, seed=21).astype(np.float32)
    g = crand(4, 3, seed=22).astype(np.complex64)
    results = []
    for m in (ember, torch):
        p, q = m.nn.Parameter(m.from_numpy(a.copy())), m.nn.Parameter(m.from_numpy(r.copy()))
        opt = getattr(m.optim, name)([q, p], **kw)
        for k in range(3):
            p.grad = m.from_numpy(g.copy() * (k + 1)).t()  # a non-contiguous gradient too
            q.grad = m.from_numpy(r.copy() + k)
            opt.step()
        results.append((np_of(p), np_of(q)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn", ["rand", "randn"])
@pytest.mark.parametrize("name", ["complex64", "complex128"])
def test_random_complex_sampling(fn, name):
    z = getattr(ember, fn)(4000, dtype=getattr(ember, name))
    assert z.dtype is getattr(ember, name) and z.shape == (4000,)
    if fn == "randn":  # each part has variance 1/2, so E|z|^2 = 1 (as PyTorch's)
        assert abs(z.real.var().item() - 0.5) < 0.05 and abs(z.imag.var().item() - 0.5) < 0.05
    else:
        assert 0 <= z.real.min().item() and z.imag.max().item() < 1


def test_module_to_complex_like_torch():
    results = []
    for m in (ember, torch):
        lin = m.nn.Linear(3, 2)
        with m.no_grad():
            lin.weight.copy_(m.from_numpy(rrand(2, 3, seed=30).astype(np.float32)))
            lin.bias.copy_(m.from_numpy(rrand(2, seed=31).astype(np.float32)))
        with pytest.warns(UserWarning, match="Complex modules are a new feature"):
            lin.to(m.complex64)
        x = m.from_numpy(crand(4, 3, seed=32).astype(np.complex64))
        lin(x).abs().sum().backward()
        results.append((lin.weight.dtype.is_complex, np_of(lin.weight.grad), np_of(lin.bias.grad)))
    assert results[0][0] and results[1][0]
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="only accepts floating point or complex"):
        ember.nn.Linear(1, 1).to(ember.int64)


@pytest.mark.parametrize("view", ["real", "imag", "slice"])
def test_create_graph_through_in_place_view_writes(view):
    """CopySlices masks the real and imaginary parts apart when the graph is differentiable."""
    a = np.array([1 + 2j, -0.5 + 1j, 2 - 1j])
    out = []
    for m in (ember, torch):
        z = m.tensor(a, requires_grad=True)
        w = z * (1 + 1j)
        v = getattr(w, view) if view != "slice" else w[1:]
        v.mul_(3)
        g, = m.autograd.grad((w * w.conj()).real.sum(), z, create_graph=True)
        gg, = m.autograd.grad((g * g.conj()).real.sum(), z)
        out.append((np_of(g), np_of(gg)))
    for x, y in zip(*out):
        np.testing.assert_allclose(x, y)


@pytest.mark.parametrize("fn", ["inv", "det", "cholesky", "eigh", "svdvals", "qr"])
def test_linalg_decompositions_say_complex_is_not_supported_yet(fn):
    """A documented gap: torch.linalg decomposes complex matrices, ember refuses clearly."""
    with pytest.raises(NotImplementedError, match="complex inputs are not supported"):
        getattr(ember.linalg, fn)(ember.eye(2, dtype=ember.complex64))
