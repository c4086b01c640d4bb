"""Tensor creation and random sampling against torch (values, dtypes, errors, statistics)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from opcheck import assert_close


def same(f, dtype="float64"):
    """``f(ember)`` equals ``f(torch)`` (tensors compared by shape, dtype and values)."""
    assert_close(f(ember), f(torch), dtype)


def same_error(f, exc, match=None):
    with pytest.raises(exc):
        f(torch)
    with pytest.raises(exc, match=match):
        f(ember)


# ---- tensor / as_tensor / from_numpy -----------------------------------------------------

TENSOR_DATA = {
    "float": [1.5, 2],
    "int": [1, 2],
    "bool": [True, False],
    "bool_and_int": [True, 2],
    "int_and_float": [1, 2.5],
    "nested": [[1, 2], [3, 4]],
    "nested3": [[[1.0], [2.0]], [[3.0], [4.0]]],
    "scalar_int": 3,
    "scalar_float": 3.0,
    "scalar_bool": False,
    "negative": [-1, -2 ** 63],
    "int64_max": [2 ** 63 - 1],
    "empty": [],
    "empty_nested": [[], []],
    "tuple": (1, 2),
    "range": range(3),
    "inf_nan": [float("inf"), float("nan")],
    "np_float64_array": np.array([1.5, 2.0]),
    "np_float32_array": np.array([1.5], dtype=np.float32),
    "np_int32_array": np.array([1, 2], dtype=np.int32),
    "np_uint8_array": np.array([1, 2], dtype=np.uint8),
    "np_bool_array": np.array([True]),
    "np_noncontig": np.arange(12.0).reshape(3, 4)[:, ::2],
    "np_scalar_f64": np.float64(1.5),
    "np_scalar_i32": np.int32(3),
    "np_scalar_bool": np.bool_(True),
    "list_of_np_f64": [np.float64(1.5), np.float64(2)],
    "list_of_np_i32": [np.int32(1), np.int32(2)],
    "list_of_np_f16_and_int": [np.float16(1), 2],
    "list_of_np_f32_and_float": [np.float32(1), 2.5],
    "nested_np": [[np.float64(1)], [2.0]],
}


@pytest.mark.parametrize("name", sorted(TENSOR_DATA))
def test_tensor_infers_dtype_like_torch(name):
    data = TENSOR_DATA[name]
    same(lambda m: m.tensor(data))


@pytest.mark.parametrize("dt", ["float64", "float16", "int32", "bool", "uint8", "int64"])
def test_tensor_with_dtype(dt):
    same(lambda m: m.tensor([[1.7, -1.2], [0.0, 3.0]], dtype=getattr(m, dt))
         if dt != "uint8" else m.tensor([1.7, 0.0, 3.0], dtype=m.uint8), "float16")


def test_tensor_from_tensors():
    same(lambda m: m.tensor([m.tensor(1.5), m.tensor(2.0)]))
    same(lambda m: m.tensor([m.tensor(1), m.tensor(2)]))
    src = ember.ones(2, requires_grad=True)
    t = ember.tensor(src.detach())
    assert t.is_leaf and not t.requires_grad
    t.add_(1)
    assert src.tolist() == [1.0, 1.0]  # a copy


def test_tensor_copies_numpy_data():
    a = np.zeros(3)
    t = ember.tensor(a)
    a[0] = 5
    assert t.tolist() == [0.0, 0.0, 0.0]
    assert t.is_contiguous()


def test_tensor_requires_grad():
    t = ember.tensor([1.0, 2.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf
    same_error(lambda m: m.tensor([1, 2], requires_grad=True), RuntimeError, "floating point")


@pytest.mark.parametrize("data,exc,match", [
    ([[1, 2], [3]], ValueError, r"expected sequence of length 2 at dim 1 \(got 1\)"),
    ([[[1, 2]], [[1]]], ValueError, r"expected sequence of length 2 at dim 2 \(got 1\)"),
    ([[1, 2], []], ValueError, "expected sequence of length 2 at dim 1"),
    ([[1, 2], 3], TypeError, "not a sequence"),
    ([1, [2]], TypeError, None),
    (None, RuntimeError, "Could not infer dtype of NoneType"),
    ({1: 2}, RuntimeError, "Could not infer dtype of dict"),
    ([1, None], RuntimeError, "Could not infer dtype"),
    (["a"], ValueError, "too many dimensions 'str'"),
    ("a", TypeError, None),
    ([1.5, "a"], TypeError, None),
    ([2 ** 63], ValueError, "Overflow"),
    ([2 ** 64], ValueError, "Overflow"),
    ([-2 ** 63 - 1], ValueError, "Overflow"),
])
def test_tensor_bad_data_raises_like_torch(data, exc, match):
    same_error(lambda m: m.tensor(data), exc, match)


def test_as_tensor_shares_memory_when_possible():
    a = np.arange(3.0)
    t = ember.as_tensor(a)
    a[0] = 7
    assert t[0].item() == 7.0
    c = ember.as_tensor(a, dtype=ember.float32)  # a cast must copy
    a[1] = 9
    assert c.tolist() == [7.0, 1.0, 2.0]
    x = ember.ones(2)
    assert ember.as_tensor(x) is x
    assert ember.as_tensor(x, dtype=ember.float64).dtype is ember.float64
    same(lambda m: m.as_tensor([1, 2]))
    same(lambda m: m.as_tensor([1, 2], dtype=m.float16))
    same(lambda m: m.asarray([[1.5], [2.5]]))


def test_from_numpy_shares_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = ember.from_numpy(a)
    a[0, 0] = 10
    assert t[0, 0].item() == 10.0
    t.mul_(2)
    assert a[0, 0] == 20.0
    assert t.dtype is ember.float64
    assert ember.from_numpy(a[:, ::2]).tolist() == a[:, ::2].tolist()
    same_error(lambda m: m.from_numpy([1, 2]), TypeError)


# ---- constant fills -----------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["zeros", "ones", "empty"])
@pytest.mark.parametrize("size", [(2, 3), ((2, 3),), ([2, 3],), ((),), (0,), (2, 0), (4,)])
def test_fill_shape_forms(fn, size):
    e = getattr(ember, fn)(*size)
    t = getattr(torch, fn)(*size)
    assert tuple(e.shape) == tuple(t.shape)
    assert e.dtype is ember.float32
    if fn != "empty":
        assert_close(e, t)


@pytest.mark.parametrize("dt", ["float64", "float16", "bfloat16", "int32", "int64", "bool",
                                "uint8"])
def test_fill_dtypes(dt):
    for fn in ("zeros", "ones"):
        same(lambda m: getattr(m, fn)(2, 3, dtype=getattr(m, dt)).float())
        assert getattr(ember, fn)(2, dtype=getattr(ember, dt)).dtype is getattr(ember, dt)


def test_fill_size_from_size_object():
    same(lambda m: m.zeros(m.Size([2, 3])))
    same(lambda m: m.ones(m.ones(4, 5).shape))


def test_full_infers_dtype_from_value():
    same(lambda m: m.full((2,), 3))
    same(lambda m: m.full((2,), 3.5))
    same(lambda m: m.full((2,), True))
    same(lambda m: m.full([2, 1], 2, dtype=m.float64))
    same(lambda m: m.full((), 1.0))
    same(lambda m: m.full((2,), m.tensor(2.5)))
    same(lambda m: m.full((2, 2), float("inf")))


@pytest.mark.parametrize("f,exc", [
    (lambda m: m.zeros(-1, 2), RuntimeError),
    (lambda m: m.empty(2, -3), RuntimeError),
    (lambda m: m.ones((-2,)), RuntimeError),
    (lambda m: m.full((-1,), 2.0), RuntimeError),
    (lambda m: m.zeros(2.5), TypeError),
    (lambda m: m.ones("a"), TypeError),
    (lambda m: m.full(2, 3.0), TypeError),
    (lambda m: m.zeros(2, dtype="float32"), TypeError),
    (lambda m: m.zeros_like([1, 2]), TypeError),
])
def test_fill_bad_inputs_raise(f, exc):
    same_error(f, exc)


LIKE = [
    lambda m: m.zeros_like(m.ones(2, 3, dtype=m.int32)),
    lambda m: m.ones_like(m.ones(2)),
    lambda m: m.ones_like(m.ones(2, 2), dtype=m.float64),
    lambda m: m.zeros_like(m.ones(2), dtype=m.bool),
    lambda m: m.full_like(m.ones(2, dtype=m.int64), 2.7),
    lambda m: m.full_like(m.ones(2, 3), 7),
    lambda m: m.empty_like(m.ones(2, 3, dtype=m.float16)).zero_(),
    lambda m: m.zeros_like(m.ones(2, requires_grad=True)),
    lambda m: m.ones_like(m.ones(3), requires_grad=True),
]


@pytest.mark.parametrize("f", LIKE)
def test_like_functions(f):
    e, t = f(ember), f(torch)
    assert_close(e, t, "float16")
    assert e.requires_grad == t.requires_grad


def test_like_of_non_contiguous_is_a_fresh_tensor():
    # preserve_format, PyTorch's default: a dense input's strides are kept
    x, tx = ember.ones(3, 4).t(), torch.ones(3, 4).t()
    z, tz = ember.zeros_like(x), torch.zeros_like(tx)
    assert tuple(z.shape) == (4, 3) and z.stride() == tz.stride()
    assert z.is_contiguous() == tz.is_contiguous()
    assert z._data is not x._data and not (z._data.base is x._data)


# ---- ranges -------------------------------------------------------------------------------

ARANGE = [
    lambda m: m.arange(5), lambda m: m.arange(1, 5), lambda m: m.arange(1, 10, 3),
    lambda m: m.arange(0, 1, 0.25), lambda m: m.arange(5.0), lambda m: m.arange(5, 0, -1),
    lambda m: m.arange(1.0, 0, -0.3), lambda m: m.arange(0, 5, dtype=m.float32),
    lambda m: m.arange(0.5, 3, dtype=m.int64), lambda m: m.arange(0), lambda m: m.arange(3, 3),
    lambda m: m.arange(-1, 1, 0.1), lambda m: m.arange(0, 0.3, 0.1), lambda m: m.arange(-5, -1),
    lambda m: m.arange(10, 1, -3), lambda m: m.arange(np.int64(3)), lambda m: m.arange(m.tensor(3)),
    lambda m: m.arange(m.tensor(3.0)), lambda m: m.arange(0, 10, 2, dtype=m.float64),
    lambda m: m.arange(0, 5, dtype=m.int32), lambda m: m.arange(0, 2, 0.5, dtype=m.float16),
    lambda m: m.arange(1e6, 1e6 + 5), lambda m: m.arange(5, requires_grad=False),
]


@pytest.mark.parametrize("f", ARANGE)
def test_arange_matches_torch(f):
    same(f, "float32")


@given(start=st.integers(-50, 50), length=st.integers(0, 40), step=st.integers(-7, 7),
       scale=st.sampled_from([1, 0.1, 0.25, 1.5]))
@settings(max_examples=25, deadline=None)
def test_arange_length_and_values_hypothesis(start, length, step, scale):
    if step == 0:
        return
    end = start + step * length
    s, e, k = start * scale, end * scale, step * scale
    assert_close(ember.arange(s, e, k), torch.arange(s, e, k), "float32")


@pytest.mark.parametrize("f", [lambda m: m.arange(0, 5, -1), lambda m: m.arange(0, 5, 0),
                               lambda m: m.arange(5, 0, 1)])
def test_arange_bad_step_raises(f):
    same_error(f, RuntimeError)


def test_arange_requires_grad():
    x = ember.arange(3.0, requires_grad=True)
    assert x.requires_grad and x.is_leaf


SPACES = [
    lambda m: m.linspace(0, 1, 5), lambda m: m.linspace(-2, 2, 1), lambda m: m.linspace(0, 1, 0),
    lambda m: m.linspace(0, 10, 4, dtype=m.int64), lambda m: m.linspace(1, 0, 3),
    lambda m: m.linspace(m.tensor(0.0), m.tensor(1.0), 3), lambda m: m.linspace(0, 1, 7,
                                                                                dtype=m.float64),
    lambda m: m.logspace(0, 2, 3), lambda m: m.logspace(0, 3, 4, base=2),
    lambda m: m.logspace(0, 1, 2, dtype=m.float64), lambda m: m.logspace(-2, 2, 5),
]


@pytest.mark.parametrize("f", SPACES)
def test_linspace_logspace_match_torch(f):
    same(f, "float32")


@pytest.mark.parametrize("fn", ["linspace", "logspace"])
def test_spaces_negative_steps_raise(fn):
    same_error(lambda m: getattr(m, fn)(0, 1, -1), RuntimeError, "number of steps")


EYES = [lambda m: m.eye(3), lambda m: m.eye(2, 3), lambda m: m.eye(3, 2, dtype=m.int64),
        lambda m: m.eye(0), lambda m: m.eye(2, dtype=m.bool), lambda m: m.eye(1, 0)]


@pytest.mark.parametrize("f", EYES)
def test_eye_matches_torch(f):
    same(f)


@pytest.mark.parametrize("f", [lambda m: m.eye(-1), lambda m: m.eye(2, -1)])
def test_eye_negative_raises(f):
    same_error(f, RuntimeError, "must be greater or equal to 0")


# ---- random sampling ----------------------------------------------------------------------

SAMPLERS = {
    "rand": lambda m, **k: m.rand(3, 4, **k),
    "randn": lambda m, **k: m.randn(3, 4, **k),
    "randint": lambda m, **k: m.randint(0, 10, (3, 4), **k),
    "randperm": lambda m, **k: m.randperm(12, **k),
    "normal": lambda m, **k: m.normal(2.0, 3.0, (3, 4), **k),
    "normal_tensor": lambda m, **k: m.normal(m.zeros(3, 4), 1.0, **k),
    "bernoulli": lambda m, **k: m.bernoulli(m.full((3, 4), 0.5), **k),
    "multinomial": lambda m, **k: m.multinomial(m.ones(3, 5), 4, **k),
    "multinomial_repl": lambda m, **k: m.multinomial(m.ones(5), 9, replacement=True, **k),
    "rand_like": lambda m, **k: m.rand_like(m.ones(3, 4), **k),
    "randn_like": lambda m, **k: m.randn_like(m.ones(3, 4, dtype=m.float64), **k),
    "randint_like": lambda m, **k: m.randint_like(m.ones(3, 4), 5, **k),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_shape_and_dtype_match_torch(name):
    e = SAMPLERS[name](ember)
    t = SAMPLERS[name](torch)
    assert tuple(e.shape) == tuple(t.shape)
    assert e.dtype.name == str(t.dtype).split(".")[1]
    assert not e.requires_grad


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_reproducible_under_manual_seed(name):
    ember.manual_seed(1234)
    a = SAMPLERS[name](ember).tolist()
    b = SAMPLERS[name](ember).tolist()
    ember.manual_seed(1234)
    assert SAMPLERS[name](ember).tolist() == a
    assert SAMPLERS[name](ember).tolist() == b
    if name not in ("bernoulli",):
        assert a != b  # the stream moves on


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_reproducible_with_generator(name):
    g = ember.Generator().manual_seed(7)
    a = SAMPLERS[name](ember, generator=g).tolist()
    ember.manual_seed(0)  # the default stream does not affect a private generator
    SAMPLERS[name](ember)
    g.manual_seed(7)
    assert SAMPLERS[name](ember, generator=g).tolist() == a
    g2 = ember.Generator()
    assert g2.manual_seed(7) is g2
    assert SAMPLERS[name](ember, generator=g2).tolist() == a


def test_rng_state_round_trip():
    ember.manual_seed(5)
    ember.rand(3)
    state = ember.get_rng_state()
    assert state.dtype is ember.uint8 and state.dim() == 1
    a = [ember.randn(4).tolist(), ember.randint(0, 100, (3,)).tolist(), ember.randperm(5).tolist()]
    ember.set_rng_state(state)
    assert [ember.randn(4).tolist(), ember.randint(0, 100, (3,)).tolist(),
            ember.randperm(5).tolist()] == a
    g = ember.Generator().manual_seed(3)
    s = g.get_state()
    x = ember.rand(5, generator=g).tolist()
    g.set_state(s)
    assert ember.rand(5, generator=g).tolist() == x


def test_seeds():
    ember.manual_seed(42)
    assert ember.initial_seed() == 42
    assert ember.Generator().manual_seed(9).initial_seed() == 9
    s = ember.seed()
    assert ember.initial_seed() == s
    with pytest.raises(RuntimeError):
        ember.manual_seed(2 ** 70)


def test_bad_rng_state_raises():
    same_error(lambda m: m.set_rng_state(m.zeros(3)), TypeError)
    same_error(lambda m: m.set_rng_state(m.zeros(3, dtype=m.uint8)), RuntimeError)
    same_error(lambda m: m.rand(2, generator=5), TypeError)


N = 200_000


@pytest.mark.parametrize("dt", ["float32", "float64", "float16", "bfloat16"])
def test_rand_statistics_and_range(dt):
    x = ember.rand(N, dtype=getattr(ember, dt)).float().numpy()
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.01
    assert abs(x.std() - (1 / 12) ** 0.5) < 0.01


@pytest.mark.parametrize("dt", ["float32", "float64", "float16"])
def test_randn_statistics(dt):
    x = ember.randn(N, dtype=getattr(ember, dt)).double().numpy()
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01


def test_normal_statistics():
    x = ember.normal(2.0, 3.0, (N,)).numpy()
    assert abs(x.mean() - 2) < 0.05 and abs(x.std() - 3) < 0.05
    mean = ember.tensor([[-5.0], [5.0]])
    std = ember.tensor([0.5, 2.0, 4.0])
    y = ember.normal(mean.expand(2, 3).contiguous().unsqueeze(-1).expand(2, 3, 20000),
                     std.reshape(1, 3, 1).expand(2, 3, 20000)).numpy()
    np.testing.assert_allclose(y.mean(-1), [[-5] * 3, [5] * 3], atol=0.1)
    np.testing.assert_allclose(y.std(-1), [[0.5, 2, 4]] * 2, rtol=0.05)
    same(lambda m: m.normal(m.zeros(3), m.ones(2, 1)).shape)
    assert ember.normal(ember.zeros(3, dtype=ember.float64), 1.0).dtype is ember.float64


def test_randint_statistics_and_range():
    x = ember.randint(-3, 4, (N,)).numpy()
    assert x.min() == -3 and x.max() == 3
    counts = np.bincount(x + 3)
    assert np.all(np.abs(counts / N - 1 / 7) < 0.01)
    same(lambda m: m.randint(5, (3,)).shape)
    assert ember.randint(0, 5, (2,), dtype=ember.float32).dtype is ember.float32
    assert ember.randint_like(ember.ones(2, dtype=ember.int32), 2, 5).dtype is ember.int32


def test_randperm_is_a_permutation():
    for n in (0, 1, 7, 100):
        p = ember.randperm(n)
        assert p.dtype is ember.int64
        assert sorted(p.tolist()) == list(range(n))
    assert ember.randperm(5, dtype=ember.float32).dtype is ember.float32


def test_bernoulli_statistics():
    p = ember.tensor([0.0, 0.2, 0.9, 1.0]).expand(N // 4, 4).contiguous()
    x = ember.bernoulli(p).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_allclose(x.mean(0), [0.0, 0.2, 0.9, 1.0], atol=0.01)
    same(lambda m: m.bernoulli(m.zeros(3)))
    same(lambda m: m.bernoulli(m.ones(3, dtype=m.float64)))
    assert abs(ember.ones(N).bernoulli(0.3).mean().item() - 0.3) < 0.01


def test_multinomial_statistics():
    w = ember.tensor([1.0, 0.0, 3.0, 6.0])
    x = ember.multinomial(w, N, replacement=True).numpy()
    np.testing.assert_allclose(np.bincount(x, minlength=4) / N, [0.1, 0.0, 0.3, 0.6], atol=0.01)
    # without replacement: every row is a set of distinct categories, weighted draws first
    rows = ember.multinomial(ember.tensor([[1.0, 1.0, 1.0, 100.0]]).expand(2000, 4), 2).numpy()
    assert all(len(set(r)) == 2 for r in rows.tolist())
    assert (rows == 3).any(axis=1).mean() > 0.95
    # zero-weight categories are drawn only when nothing else is left (as torch's cpu kernel)
    same(lambda m: m.multinomial(m.tensor([1.0, 0.0, 0.0]), 1))
    assert sorted(ember.multinomial(ember.tensor([1.0, 2.0, 0.0]), 2).tolist()) == [0, 1]


@pytest.mark.parametrize("f,exc", [
    (lambda m: m.randint(5, 5, (2,)), RuntimeError),
    (lambda m: m.randint(5, 3, (2,)), RuntimeError),
    (lambda m: m.randperm(-1), RuntimeError),
    (lambda m: m.rand(-2), RuntimeError),
    (lambda m: m.randn(2, -1), RuntimeError),
    (lambda m: m.rand(2, dtype=m.int64), NotImplementedError),
    (lambda m: m.randn(2, dtype=m.int32), NotImplementedError),
    (lambda m: m.rand_like(m.ones(2, dtype=m.int64)), NotImplementedError),
    (lambda m: m.normal(0.0, -1.0, (2,)), RuntimeError),
    (lambda m: m.normal(m.zeros(2), -m.ones(2)), RuntimeError),
    (lambda m: m.bernoulli(m.full((3,), 1.5)), RuntimeError),
    (lambda m: m.bernoulli(m.full((3,), -0.5)), RuntimeError),
    (lambda m: m.multinomial(m.tensor([0.5, -0.1]), 1), RuntimeError),
    (lambda m: m.multinomial(m.tensor([0.5, float("nan")]), 1), RuntimeError),
    (lambda m: m.multinomial(m.tensor([0.5, 0.5]), 3), RuntimeError),
    (lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1), RuntimeError),
    (lambda m: m.multinomial(m.tensor([0.5, 0.5]), 0), RuntimeError),
    (lambda m: m.multinomial(m.ones(2, 2, 2), 1), RuntimeError),
    (lambda m: m.multinomial(m.tensor([1, 2]), 1), RuntimeError),
])
def test_random_bad_inputs_raise_like_torch(f, exc):
    same_error(f, exc)


@pytest.mark.parametrize("value,dt", [
    (float("-inf"), "int32"), (float("nan"), "int64"), (1e10, "int32"), (300, "uint8"),
    (-1, "uint8"), (-255, "uint8"), (-256, "uint8"), (2 ** 40, "int32"), (3.7, "int64"),
    (1e300, "float32"), (float("inf"), "float32"), (True, "int8"), (float("inf"), "bool"),
    (1e5, "float16"), (1e39, "bfloat16"), (3e38, "bfloat16"), (1e300, "float64")])
def test_full_checks_the_fill_value_fits_like_torch(value, dt):
    try:
        want = torch.full((2,), value, dtype=getattr(torch, dt))
    except RuntimeError as err:
        with pytest.raises(RuntimeError, match=str(err).split(" without")[0]):
            ember.full((2,), value, dtype=getattr(ember, dt))
        return
    got = ember.full((2,), value, dtype=getattr(ember, dt))
    assert got.tolist() == want.tolist()


def test_from_numpy_takes_ndarray_subclasses_sharing_memory(tmp_path):
    """``np.memmap`` and other ndarray subclasses are accepted (and shared) as by PyTorch."""
    m = np.memmap(tmp_path / "m.bin", dtype="float32", mode="w+", shape=(4,))
    t, tt = ember.from_numpy(m), torch.from_numpy(m)
    t[0] = 7.0
    assert m[0] == 7.0 and tt[0].item() == 7.0
    assert (t + 1).tolist() == [8.0, 1.0, 1.0, 1.0]

    class Sub(np.ndarray):
        pass
    s = np.arange(3.0).view(Sub)
    assert ember.from_numpy(s).tolist() == torch.from_numpy(s).tolist()
    for bad in (np.float32(1.0), [1.0, 2.0]):
        with pytest.raises(TypeError, match="expected np.ndarray"):
            ember.from_numpy(bad)
        with pytest.raises(TypeError, match="expected np.ndarray"):
            torch.from_numpy(bad)


def test_each_process_starts_from_a_fresh_seed_as_torch():
    import subprocess
    import sys
    code = "import {m}; print({m}.initial_seed(), {m}.rand(1).item())"
    for m in ("ember", "torch"):
        outs = {subprocess.run([sys.executable, "-c", code.format(m=m)], capture_output=True,
                               text=True, check=True).stdout for _ in range(2)}
        assert len(outs) == 2, m


def test_numpy_random_loads_at_the_first_draw_not_at_import():
    """``numpy.random`` costs ~8 ms to import: ember's default generator makes its NumPy
    stream on the first draw, from the seed it chose at import."""
    import subprocess
    import sys
    code = ("import sys, ember\n"
            "before = 'numpy.random' in sys.modules\n"
            "seed = ember.initial_seed()\n"
            "a = ember.rand(3).tolist()\n"
            "ember.manual_seed(seed)\n"
            "print(before, 'numpy.random' in sys.modules, a == ember.rand(3).tolist())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["False", "True", "True"], out.stderr


# ---- scalar_tensor -----------------------------------------------------------------------

@pytest.mark.parametrize("s,kw", [
    (3, {}), (True, {}), (2, {"dtype": "int64"}), (-1, {"dtype": "uint8"}), (2.5, {}),
    (float("inf"), {}), (float("nan"), {"dtype": "float64"}), (2, {"dtype": "complex64"}),
    (1 + 0j, {}), (np.float32(2.5), {}), (np.int64(3), {"dtype": "int32"}),
    ("tensor5", {}), (3.5, {"requires_grad": True})], ids=str)
def test_scalar_tensor_as_torch(s, kw):
    def f(m):
        kw2 = {k: getattr(m, v) if k == "dtype" else v for k, v in kw.items()}
        v = m.tensor(5) if isinstance(s, str) else s
        r = m.scalar_tensor(v, **kw2)
        assert r.shape == () and r.requires_grad == kw.get("requires_grad", False)
        return r.detach()
    same(f, kw.get("dtype", "float32"))


@pytest.mark.parametrize("s,kw,exc,match", [
    ("x", {}, TypeError, r"argument 's' \(position 1\) must be Number, not str"),
    (None, {}, TypeError, "must be Number, not NoneType"),
    ("vec", {}, TypeError, "must be Number, not Tensor"),
    (1 + 2j, {}, RuntimeError, "cannot be converted to type float without overflow"),
    (300, {"dtype": "uint8"}, RuntimeError, "type uint8_t without overflow"),
    (1e40, {}, RuntimeError, "type float without overflow")], ids=str)
def test_scalar_tensor_bad_input(s, kw, exc, match):
    def f(m):
        v = m.tensor([1.0, 2.0]) if s == "vec" else s
        return m.scalar_tensor(v, **{k: getattr(m, v) for k, v in kw.items()})
    same_error(f, exc, match)


def test_scalar_tensor_is_an_op_of_compiled_graphs():
    """Offered to the modes as torch's aten::scalar_tensor, so a compiled graph computes it."""
    def f(x):
        return x * ember.scalar_tensor(2.0)
    out = ember.compiler.explain(f)(ember.ones(3))
    assert out.graph_count == 1 and out.graph_break_count == 0
    assert [n.target.__name__ for n in out.graphs[0].graph.nodes
            if n.op == "call_function"] == ["scalar_tensor", "mul"]
    assert ember.compile(f)(ember.ones(3)).tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("value", [np.int64(3), np.int32(-2), np.uint8(7), np.int8(2),
                                   np.uint64(3), np.float64(1.5), np.float32(2.5),
                                   np.float16(0.5), np.bool_(True), np.complex128(1 + 2j)])
def test_full_infers_dtype_of_numpy_scalars_as_torch(value):
    """``full``'s dtype from a NumPy scalar: its ints are ints (int64), as PyTorch reads them
    through ``__index__``; floats and bools take the default dtype, complex128 the complex one."""
    e = ember.full((2,), value)
    t = torch.full((2,), value)
    assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1]
    np.testing.assert_array_equal(e.numpy(), t.numpy())
