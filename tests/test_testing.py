"""ember.testing.assert_close / assert_allclose / make_tensor against torch.testing."""
import math
import warnings

import numpy as np
import pytest
import torch

import ember

NAN, INF = math.nan, math.inf

# (actual, expected, kwargs): built with m.tensor for both modules; "T(...)" marks tensors
CASES = [
    ("close_f32", ([1., 2., 3.], "float32"), ([1., 2.5, 3.1], "float32"), {}),
    ("equal_f32", ([1., 2.], "float32"), ([1., 2.], "float32"), {}),
    ("tiny_f32", ([1., 2.], "float32"), ([1., 2.000001], "float32"), {}),
    ("f64", ([1., 2.], "float64"), ([1., 2.0000003], "float64"), {}),
    ("f16", ([1.], "float16"), ([1.001], "float16"), {}),
    ("ints", ([1, 2, 3], "int64"), ([1, 2, 4], "int64"), {}),
    ("bools", ([True], "bool"), ([False], "bool"), {}),
    ("uint8_2d", ([[1, 2]], "uint8"), ([[3, 2]], "uint8"), {}),
    ("bf16", ([1., 2., 3.], "bfloat16"), ([1., 2.1, 3.], "bfloat16"), {}),
    ("dtype", ([1., 2.], "float32"), ([1., 2.], "float64"), {}),
    ("no_dtype_check", ([1., 2.], "float32"), ([1., 2.], "float64"), {"check_dtype": False}),
    ("promoted", ([1., 3.], "float32"), ([1, 2], "int32"), {"check_dtype": False}),
    ("shape", ([1., 2.], "float32"), ([1., 2., 3.], "float32"), {}),
    ("nan", ([NAN], "float32"), ([NAN], "float32"), {}),
    ("equal_nan", ([NAN, 1.], "float32"), ([NAN, 1.], "float32"), {"equal_nan": True}),
    ("inf_same", ([1., INF], "float32"), ([1., INF], "float32"), {}),
    ("inf_vs_finite", ([1., INF], "float32"), ([1., 5.], "float32"), {}),
    ("neg_zero", ([0.], "float32"), ([-0.], "float32"), {}),
    ("2d", ([[1., 2.], [3., 4.]], "float32"), ([[1., 2.], [3., 5.]], "float32"), {}),
    ("zero_dim", (1., "float32"), (2., "float32"), {}),
    ("rtol_atol", ([1.], "float32"), ([1.1], "float32"), {"rtol": 0.2, "atol": 0}),
    ("atol_only", ([1.], "float32"), ([1.1], "float32"), {"atol": 0.2, "rtol": 0}),
    ("msg_str", ([1., 2.], "float32"), ([1., 3.], "float32"), {"msg": "custom"}),
    ("msg_fn", ([1., 2.], "float32"), ([1., 3.], "float32"), {"msg": lambda m: "X" + m}),
    ("empty", ([], "float32"), ([], "float32"), {}),
]


def _build(m, spec):
    data, dt = spec
    return m.tensor(data, dtype=getattr(m, dt))


def _outcome(fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
        return None
    except (AssertionError, TypeError, ValueError) as err:
        # the same text up to the module names in reprs (torch.float32 / ember.float32)
        text = str(err).replace("<class 'ember._tensor.Tensor'>", "<class 'torch.Tensor'>")
        return type(err), text.replace("ember.", "torch.")


@pytest.mark.parametrize("name,a,e,kw", CASES, ids=[c[0] for c in CASES])
def test_assert_close_tensors(name, a, e, kw):
    got = _outcome(lambda: ember.testing.assert_close(_build(ember, a), _build(ember, e), **kw))
    want = _outcome(lambda: torch.testing.assert_close(_build(torch, a), _build(torch, e), **kw))
    assert got == want


def _swap(x, m):
    """Rebuild a nested container with m's tensors (ember <-> torch)."""
    if isinstance(x, (list, tuple)):
        return type(x)(_swap(v, m) for v in x)
    if isinstance(x, dict):
        return {k: _swap(v, m) for k, v in x.items()}
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x
    if isinstance(x, ember.Tensor):
        return m.tensor(x.tolist(), dtype=getattr(m, x.dtype.name))
    return x


CONTAINERS = [
    ("list", [ember.tensor(1.)], [ember.tensor(1.5)], {}),
    ("dict", {"a": ember.tensor(1.)}, {"a": ember.tensor(1.5)}, {}),
    ("nested_ok", {"a": [ember.ones(2), 1.0]}, {"a": (ember.ones(2), 1.0)}, {}),
    ("seq_len", [1., 2.], [1., 2., 3.], {}),
    ("keys", {"a": 1.}, {"b": 1.}, {}),
    ("floats", 1.0, 1.5, {}),
    ("ints", 1, 2, {}),
    ("bools", True, False, {}),
    ("int_float", 1, 1.0, {}),
    ("int_float_nodtype", 1, 1.0, {"check_dtype": False}),
    ("strings", "a", "a", {}),
    ("numpy", np.array([1.]), np.array([1.5]), {}),
    ("nested_msg", [ember.tensor([1., 2.])], [ember.tensor([1., 3.])], {"msg": "m"}),
    ("rtol_no_atol", ember.ones(1), ember.ones(1), {"rtol": 1e-3}),
    ("atol_no_rtol", ember.ones(1), ember.ones(1), {"atol": 1e-3}),
]


@pytest.mark.parametrize("name,a,e,kw", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_assert_close_containers(name, a, e, kw):
    got = _outcome(lambda: ember.testing.assert_close(a, e, **kw))
    want = _outcome(lambda: torch.testing.assert_close(_swap(a, torch), _swap(e, torch), **kw))
    assert got == want


def test_assert_close_type_errors():
    with pytest.raises(TypeError, match="No comparison pair was able to handle inputs"):
        ember.testing.assert_close(ember.ones(1), [1.0])
    with pytest.raises(TypeError, match="No comparison pair"):
        ember.testing.assert_close(np.ones(1), ember.ones(1))
    p = ember.nn.Parameter(ember.ones(2))
    ember.testing.assert_close(ember.ones(2), p)
    with pytest.raises(TypeError):
        ember.testing.assert_close(ember.ones(2), p, allow_subclasses=False)


def test_assert_close_stride():
    x = ember.ones(2, 3)
    ember.testing.assert_close(x, x.t().contiguous().t())
    with pytest.raises(AssertionError, match=r"attribute 'stride\(\)' do not match"):
        ember.testing.assert_close(x, x.t().contiguous().t(), check_stride=True)


@pytest.mark.parametrize("a,e,dt", [([1., 2.], [1., 2.5], "float32"),
                                    ([1., 2.], [1., 2.00001], "float32"),
                                    ([1., NAN], [1., NAN], "float64"),
                                    ([1., 2.], [1., 2.001], "float16")])
def test_assert_allclose(a, e, dt):
    got = _outcome(lambda: ember.testing.assert_allclose(
        ember.tensor(a, dtype=getattr(ember, dt)), e))
    want = _outcome(lambda: torch.testing.assert_allclose(
        torch.tensor(a, dtype=getattr(torch, dt)), e))
    assert got == want
    with pytest.warns(FutureWarning):
        ember.testing.assert_allclose(ember.ones(1), ember.ones(1))


@pytest.mark.parametrize("dt", ["float32", "float64", "int64", "uint8", "bool", "int8"])
def test_make_tensor(dt):
    d = getattr(ember, dt)
    x = ember.testing.make_tensor(3, 4, dtype=d, device="cpu")
    assert x.shape == (3, 4) and x.dtype is d
    assert ember.testing.make_tensor((2, 3), dtype=d, device="cpu").shape == (2, 3)
    assert ember.testing.make_tensor([2, 3], dtype=d, device="cpu").shape == (2, 3)
    if dt != "bool":
        v = x.double()
        low = 0 if dt == "uint8" else -9
        assert bool((v >= low).all()) and bool((v <= 10).all())
        y = ember.testing.make_tensor(50, dtype=d, device="cpu", low=1, high=3)
        assert bool((y.double() >= 1).all()) and bool((y.double() <= 3).all())
        z = ember.testing.make_tensor(200, dtype=d, device="cpu", exclude_zero=True)
        assert bool((z != 0).all())
    nc = ember.testing.make_tensor(4, 4, dtype=d, device="cpu", noncontiguous=True)
    assert nc.shape == (4, 4) and not nc.is_contiguous()
    assert ember.testing.make_tensor(dtype=d, device="cpu").shape == ()


def test_make_tensor_grad_and_errors():
    x = ember.testing.make_tensor(2, dtype=ember.float32, device="cpu", requires_grad=True)
    assert x.requires_grad
    for m in (ember, torch):
        with pytest.raises(ValueError, match="must be less than"):
            m.testing.make_tensor(2, dtype=m.float32, device="cpu", low=3, high=1)
        with pytest.raises(ValueError, match="must be less than"):
            m.testing.make_tensor(2, dtype=m.int64, device="cpu", low=1, high=1)
        with pytest.raises(ValueError, match="cannot be NaN"):
            m.testing.make_tensor(2, dtype=m.float32, device="cpu", low=NAN)
        with pytest.raises(TypeError):
            m.testing.make_tensor(2, dtype=m.float32)
