"""dtypes: names, attributes, default dtype, promotion and casting rules against torch."""
import copy
import itertools
import pickle
import sys

import numpy as np
import pytest
import torch

import ember
from opcheck import assert_close

NAMES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
         "float64"]
PAIRS = list(itertools.product(NAMES, NAMES))


def ename(d):
    return str(d).split(".")[1]


@pytest.fixture
def default_float64():
    ember.set_default_dtype(ember.float64)
    torch.set_default_dtype(torch.float64)
    yield
    ember.set_default_dtype(ember.float32)
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_dtype_attributes_match_torch(name):
    e, t = getattr(ember, name), getattr(torch, name)
    assert repr(e) == repr(t).replace("torch.", "ember.")
    assert str(e) == str(t).replace("torch.", "ember.")
    assert e.itemsize == t.itemsize
    assert e.is_floating_point == t.is_floating_point
    assert e.is_signed == t.is_signed
    assert e.is_complex is False


@pytest.mark.parametrize("alias,name", [("half", "float16"), ("float", "float32"),
                                        ("double", "float64"), ("short", "int16"),
                                        ("int", "int32"), ("long", "int64")])
def test_aliases(alias, name):
    assert getattr(ember, alias) is getattr(ember, name)
    assert ename(getattr(torch, alias)) == name


@pytest.mark.parametrize("name", NAMES)
def test_dtype_pickle_and_copy_keep_identity(name):
    d = getattr(ember, name)
    assert pickle.loads(pickle.dumps(d)) is d
    assert copy.deepcopy(d) is d
    assert copy.copy(d) is d


@pytest.mark.parametrize("name", NAMES)
def test_tensor_reports_its_dtype(name):
    d = getattr(ember, name)
    t = ember.zeros(2, 3, dtype=d)
    assert t.dtype is d
    assert t.is_floating_point() == d.is_floating_point
    assert t.element_size() == d.itemsize == t.itemsize
    assert t.nbytes == 6 * d.itemsize


def test_default_dtype_is_float32():
    assert ember.get_default_dtype() is ember.float32
    assert ember.tensor([1.5]).dtype is ember.float32
    assert ember.zeros(1).dtype is ember.float32


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float64"])
def test_set_default_dtype_changes_float_creation(name):
    d, td = getattr(ember, name), getattr(torch, name)
    ember.set_default_dtype(d)
    torch.set_default_dtype(td)
    try:
        cases = [(lambda m: m.tensor([1.5])), (lambda m: m.arange(0.5, 2)),
                 (lambda m: m.zeros(2)), (lambda m: m.ones(2)), (lambda m: m.full((1,), 2.5)),
                 (lambda m: m.linspace(0, 1, 3)), (lambda m: m.rand(2)), (lambda m: m.randn(2)),
                 (lambda m: m.tensor([1])), (lambda m: m.arange(3)), (lambda m: m.tensor(1) * 2.5),
                 (lambda m: m.tensor([1, 2]) / 2), (lambda m: m.eye(2)),
                 (lambda m: m.ones(2, dtype=m.float64) * 2.5)]
        for f in cases:
            assert ename(f(ember).dtype) == ename(f(torch).dtype)
        assert ember.get_default_dtype() is d
        # a tensor of the default dtype prints without a dtype suffix
        assert repr(ember.tensor([1.5])) == repr(torch.tensor([1.5]))
    finally:
        ember.set_default_dtype(ember.float32)
        torch.set_default_dtype(torch.float32)
    assert ember.get_default_dtype() is ember.float32


@pytest.mark.parametrize("name", ["bool", "uint8", "int32", "int64"])
def test_set_default_dtype_rejects_non_float(name):
    with pytest.raises(TypeError):
        torch.set_default_dtype(getattr(torch, name))
    with pytest.raises(TypeError, match="only floating-point types"):
        ember.set_default_dtype(getattr(ember, name))
    assert ember.get_default_dtype() is ember.float32


def test_set_default_dtype_rejects_non_dtype():
    with pytest.raises(TypeError):
        ember.set_default_dtype("float64")


@pytest.mark.parametrize("a,b", PAIRS)
def test_promote_types_matches_torch(a, b):
    e = ember.promote_types(getattr(ember, a), getattr(ember, b))
    t = torch.promote_types(getattr(torch, a), getattr(torch, b))
    assert e.name == ename(t)


@pytest.mark.parametrize("a,b", PAIRS)
def test_can_cast_matches_torch(a, b):
    assert ember.can_cast(getattr(ember, a), getattr(ember, b)) == \
        torch.can_cast(getattr(torch, a), getattr(torch, b))


def _mk(m, name, zero_dim):
    return m.zeros(() if zero_dim else (2,), dtype=getattr(m, name))


@pytest.mark.parametrize("a,b", PAIRS)
def test_result_type_tensor_pairs_match_torch(a, b):
    # dimensioned tensors outrank zero-dim ones, whatever the order
    for za, zb in itertools.product((False, True), repeat=2):
        e = ember.result_type(_mk(ember, a, za), _mk(ember, b, zb))
        t = torch.result_type(_mk(torch, a, za), _mk(torch, b, zb))
        assert e.name == ename(t), (za, zb)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scalar", [True, 3, -2, 2.5])
def test_result_type_with_python_scalars_matches_torch(name, scalar):
    for zd in (False, True):
        assert ember.result_type(_mk(ember, name, zd), scalar).name == \
            ename(torch.result_type(_mk(torch, name, zd), scalar))
        assert ember.result_type(scalar, _mk(ember, name, zd)).name == \
            ename(torch.result_type(scalar, _mk(torch, name, zd)))


@pytest.mark.parametrize("a,b", [(1, 2.5), (True, 2), (True, False), (2.5, True)])
def test_result_type_of_two_scalars(a, b):
    assert ember.result_type(a, b).name == ename(torch.result_type(a, b))


def test_result_type_follows_default_dtype(default_float64):
    assert ember.result_type(ember.tensor([1]), 2.5) is ember.float64
    assert ember.result_type(ember.tensor([1], dtype=ember.float16), 2.5) is ember.float16


@pytest.mark.parametrize("a,b", [("int32", "float16"), ("uint8", "int8"), ("bool", "int16"),
                                 ("float16", "bfloat16"), ("int64", "float32"),
                                 ("uint8", "bool"), ("int8", "float64")])
def test_binary_op_result_dtype_matches_torch(a, b):
    def f(m):
        x = m.ones(2, 3, dtype=getattr(m, a))
        y = m.ones(3, dtype=getattr(m, b))
        return x + y, x * y, y - x if "bool" not in (a, b) else x * y
    for e, t in zip(f(ember), f(torch)):
        assert_close(e, t, "float16")


def test_float16_arithmetic_matches_torch():
    rng = np.random.default_rng(0)
    a = rng.uniform(-3, 3, (4, 5)).astype(np.float16)
    b = rng.uniform(0.5, 3, (5,)).astype(np.float16)

    def f(m, x, y):
        return [x + y, x - y, x * y, x / y, (x * y).sum(), x.mean(), -x, (x / 3).exp()]
    re = f(ember, ember.from_numpy(a), ember.from_numpy(b))
    rt = f(torch, torch.from_numpy(a), torch.from_numpy(b))
    for e, t in zip(re, rt):
        assert e.dtype is ember.float16
        assert_close(e, t, "float16")


def test_float16_autograd():
    a = np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)
    xe = ember.from_numpy(a.copy()).requires_grad_()
    xt = torch.from_numpy(a.copy()).requires_grad_()
    (xe * xe * 3).sum().backward()
    (xt * xt * 3).sum().backward()
    assert xe.grad.dtype is ember.float16
    assert_close(xe.grad, xt.grad, "float16")


def test_bfloat16_tensors_via_ml_dtypes():
    import ml_dtypes
    x = ember.tensor([1.5, 2.25, -3.0], dtype=ember.bfloat16)
    t = torch.tensor([1.5, 2.25, -3.0], dtype=torch.bfloat16)
    assert x.dtype is ember.bfloat16
    assert x.numpy().dtype == np.dtype(ml_dtypes.bfloat16)
    assert x.tolist() == t.tolist()
    assert x.sum().item() == t.sum().item()
    for e, tt in [(x + x, t + t), (x * 2, t * 2), (x / 3, t / 3), (x.float(), t.float())]:
        assert ename(e.dtype) == ename(tt.dtype)
        np.testing.assert_allclose(e.float().numpy(), tt.float().numpy(), rtol=1e-2)
    # a NumPy bfloat16 array keeps its dtype
    arr = np.array([1, 2], dtype=ml_dtypes.bfloat16)
    assert ember.from_numpy(arr).dtype is ember.bfloat16
    assert ember.tensor(arr).dtype is ember.bfloat16
    assert repr(x) == repr(t).replace("torch.", "ember.")


def test_bfloat16_mixed_with_float16_promotes_to_float32():
    x = ember.ones(2, dtype=ember.bfloat16) + ember.ones(2, dtype=ember.float16)
    t = torch.ones(2, dtype=torch.bfloat16) + torch.ones(2, dtype=torch.float16)
    assert ename(t.dtype) == "float32"
    assert x.dtype is ember.float32


def test_bfloat16_without_ml_dtypes_raises_clear_error(monkeypatch):
    monkeypatch.setattr(ember.bfloat16, "_np", None)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # makes ``import ml_dtypes`` fail
    with pytest.raises(RuntimeError, match="ml_dtypes"):
        ember.zeros(2, dtype=ember.bfloat16)
    with pytest.raises(RuntimeError, match="ml_dtypes"):
        ember.tensor([1.0]).to(ember.bfloat16)
    # other dtypes are unaffected
    assert ember.zeros(2, dtype=ember.float16).dtype is ember.float16


@pytest.mark.parametrize("arr_dtype,name", [(np.float64, "float64"), (np.float32, "float32"),
                                            (np.float16, "float16"), (np.int64, "int64"),
                                            (np.int32, "int32"), (np.int16, "int16"),
                                            (np.int8, "int8"), (np.uint8, "uint8"),
                                            (np.bool_, "bool")])
def test_numpy_dtypes_map_like_torch(arr_dtype, name):
    a = np.zeros(3, dtype=arr_dtype)
    assert ember.from_numpy(a).dtype.name == name == ename(torch.from_numpy(a).dtype)


def test_unsupported_numpy_dtypes_raise_type_error():
    with pytest.raises(TypeError):
        torch.from_numpy(np.array(["a", "b"]))
    with pytest.raises(TypeError):
        ember.from_numpy(np.array(["a", "b"]))
    # complex64/128 are supported (tests/test_complex.py); long-double complex is not
    with pytest.raises(TypeError):
        torch.from_numpy(np.array([1 + 2j], dtype=np.clongdouble))
    with pytest.raises(TypeError):
        ember.from_numpy(np.array([1 + 2j], dtype=np.clongdouble))


@pytest.mark.parametrize("src, dst", [("float32", "float16"), ("float64", "float32"),
                                      ("float64", "float16"), ("float32", "bfloat16")])
def test_narrowing_cast_overflows_to_inf_silently(src, dst):
    """As PyTorch: out-of-range values become inf, with no NumPy overflow warning."""
    import warnings
    big = [1e39 if src == "float64" else 3e38, -7e4, 1.0]
    t = ember.tensor(big, dtype=getattr(ember, src))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = t.to(getattr(ember, dst)).float()
    want = torch.tensor(big, dtype=getattr(torch, src)).to(getattr(torch, dst)).float()
    assert got.tolist() == want.tolist()
