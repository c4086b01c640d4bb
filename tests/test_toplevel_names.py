"""The long tail of top-level names, each checked against torch: finfo/iinfo, predicates,
constants, the legacy tensor types, Tensor.type, nn.DataParallel."""
import warnings
from typing import Optional

import numpy as np
import pytest
import torch

import ember

FLOATS = ["float16", "bfloat16", "float32", "float64"]
INTS = ["uint8", "int8", "int16", "int32", "int64"]


@pytest.mark.parametrize("name", FLOATS)
def test_finfo(name):
    e, t = ember.finfo(getattr(ember, name)), torch.finfo(getattr(torch, name))
    for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(e, attr) == getattr(t, attr), attr
        assert type(getattr(e, attr)) is type(getattr(t, attr)), attr
    assert repr(e) == repr(t)


def test_finfo_default_and_equality():
    assert ember.finfo().dtype == "float32"
    assert ember.finfo(ember.float32) == ember.finfo(ember.float32)
    assert ember.finfo(ember.float32) != ember.finfo(ember.float64)


@pytest.mark.parametrize("name", INTS)
def test_iinfo(name):
    e, t = ember.iinfo(getattr(ember, name)), torch.iinfo(getattr(torch, name))
    for attr in ("bits", "max", "min", "dtype"):
        assert getattr(e, attr) == getattr(t, attr), attr
    assert repr(e) == repr(t)


@pytest.mark.parametrize("fn,arg", [("finfo", "int32"), ("finfo", "bool"), ("iinfo", "float32"),
                                    ("iinfo", "bool"), ("finfo", "str"), ("iinfo", "int"),
                                    ("iinfo", "none")])
def test_info_bad_input(fn, arg):
    def value(mod):
        return {"str": "float32", "int": 3, "none": None}.get(arg) if arg in (
            "str", "int", "none") else getattr(mod, arg)
    with pytest.raises(TypeError) as t_err:
        getattr(torch, fn)(value(torch))
    with pytest.raises(TypeError) as e_err:
        getattr(ember, fn)(value(ember))
    if arg != "none" or fn == "finfo":
        assert str(e_err.value) == str(t_err.value)


def test_constants():
    for name in ("pi", "e", "inf"):
        assert getattr(ember, name) == getattr(torch, name)
    assert np.isnan(ember.nan) and ember.newaxis is None is torch.newaxis


PREDICATE_INPUTS = [
    ("float", lambda m: m.ones(2, 3)), ("long", lambda m: m.tensor([1, 2])),
    ("scalar", lambda m: m.tensor(0.0)), ("one", lambda m: m.tensor([[2.5]])),
    ("bool", lambda m: m.tensor([True])), ("empty", lambda m: m.tensor([])),
    ("param", lambda m: m.nn.Parameter(m.ones(2))), ("int", lambda m: 3),
    ("list", lambda m: [1.0]), ("nan", lambda m: m.tensor(float("nan"))),
]


@pytest.mark.parametrize("fn", ["is_tensor", "is_storage", "is_complex", "is_floating_point",
                                "is_nonzero", "numel"])
@pytest.mark.parametrize("case,make", PREDICATE_INPUTS, ids=[c for c, _ in PREDICATE_INPUTS])
def test_predicates(fn, case, make):
    def call(m):
        try:
            return getattr(m, fn)(make(m))
        except (TypeError, RuntimeError) as err:
            return type(err), str(err)
    assert call(ember) == call(torch)


def test_tensor_is_nonzero_method():
    assert ember.tensor([3]).is_nonzero() and not ember.tensor(0.0).is_nonzero()


LEGACY = ["FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
          "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor"]


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_type_constructors(name):
    E, T = getattr(ember, name), getattr(torch, name)
    assert E.dtype is getattr(ember, str(T.dtype).split(".")[1])
    assert E(2, 3).shape == T(2, 3).shape and E(2, 3).dtype == E.dtype
    assert E().shape == T().shape == (0,)
    assert E(ember.Size([4, 1])).shape == (4, 1)
    data = [[1, 0], [3, 4]]
    np.testing.assert_array_equal(E(data).float().numpy(), T(data).float().numpy())
    assert isinstance(E(data), E) and not isinstance(E(data), ember.Tensor.__class__)
    assert repr(E) == f"<class 'ember.{name}'>" and E.__name__ == T.__name__


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_isinstance(name):
    E, T = getattr(ember, name), getattr(torch, name)
    for dt in ("float32", "float64", "float16", "int64", "int32", "uint8", "bool"):
        e, t = ember.zeros(2, dtype=getattr(ember, dt)), torch.zeros(2, dtype=getattr(torch, dt))
        assert isinstance(e, E) == isinstance(t, T), dt
    assert not isinstance(3, E) and not isinstance(np.zeros(2), E)


def test_legacy_types_misc():
    assert isinstance(ember.nn.Parameter(ember.ones(2)), ember.FloatTensor)
    assert Optional[ember.LongTensor] == Optional[ember.LongTensor]
    t = ember.tensor([1.0, 2.0])
    assert ember.FloatTensor(t) is t
    assert not issubclass(ember.FloatTensor, ember.Tensor)
    assert ember.LongTensor([1.7, 2]).tolist() == torch.LongTensor([1.7, 2]).tolist()


@pytest.mark.parametrize("args,exc", [((ember.tensor([1]),), TypeError), (("a",), TypeError),
                                      ((2, 3.0), TypeError), ((-1,), RuntimeError)])
def test_legacy_bad_input(args, exc):
    targs = tuple(torch.tensor(a.tolist()) if isinstance(a, ember.Tensor) else a for a in args)
    with pytest.raises(exc):
        torch.FloatTensor(*targs)
    with pytest.raises(exc):
        ember.FloatTensor(*args)


@pytest.mark.parametrize("target", ["LongTensor", "IntTensor", "DoubleTensor", "BoolTensor"])
def test_tensor_type_with_legacy_types(target):
    e = ember.tensor([1.5, 0.0]).type(getattr(ember, target))
    t = torch.tensor([1.5, 0.0]).type(getattr(torch, target))
    assert e.tolist() == t.tolist() and e.type() == t.type()
    assert ember.tensor([1.5]).type(f"torch.{target}").type() == f"torch.{target}"
    assert ember.ones(2).type() == "torch.FloatTensor"


def test_data_parallel_pass_through():
    m = ember.nn.Linear(3, 2)
    dp = ember.nn.DataParallel(m)
    assert dp.module is m and dp.device_ids == [] and ember.nn.parallel.DataParallel is type(dp)
    x = ember.randn(4, 3)
    np.testing.assert_array_equal(dp(x).detach().numpy(), m(x).detach().numpy())
    assert list(dp.state_dict()) == list(torch.nn.DataParallel(torch.nn.Linear(3, 2))
                                         .state_dict())
    np.testing.assert_array_equal(ember.nn.parallel.data_parallel(m, x).detach().numpy(),
                                  m(x).detach().numpy())


def test_typename_same_size_assert_version():
    assert ember.typename(ember.ones(2)) == "torch.FloatTensor" == torch.typename(torch.ones(2))
    assert ember.typename(3) == torch.typename(3) == "int"
    assert ember.typename(ember.nn.Linear(1, 1)) == "ember.nn.modules.linear.Linear"
    assert ember.typename(ember.nn.Parameter) == "ember.nn.parameter.Parameter"
    assert ember.is_same_size(ember.ones(2), ember.ones(2))
    assert not ember.ones(2).is_same_size(ember.ones(3))
    with pytest.raises(TypeError, match="argument 'other' \\(position 2\\) must be Tensor"):
        ember.is_same_size(ember.ones(2), [1, 2])
    ember._assert(ember.tensor(True), "fine")
    with pytest.raises(AssertionError, match="boom"):
        ember._assert(False, "boom")
    assert ember.version.__version__ == ember.__version__ and ember.version.cuda is None


@pytest.mark.parametrize("t,exc", [("LongTensor", TypeError), ("str:torch.IntTensor", TypeError),
                                   (3, TypeError), ("float64", TypeError),
                                   ("str:torch.Foo", AttributeError)])
def test_set_default_tensor_type_bad_input(t, exc):
    def arg(m):
        if isinstance(t, str) and t.startswith("str:"):
            return t[4:]
        return getattr(m, t) if isinstance(t, str) else t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns once per process
        with pytest.raises(exc):
            torch.set_default_tensor_type(arg(torch))
    with pytest.warns(UserWarning, match="deprecated"), pytest.raises(exc):
        ember.set_default_tensor_type(arg(ember))
    assert ember.get_default_dtype() is ember.float32


def test_set_default_tensor_type():
    try:
        with pytest.warns(UserWarning, match="set_default_tensor_type\\(\\) is deprecated"):
            ember.set_default_tensor_type(ember.DoubleTensor)
        assert ember.get_default_dtype() is ember.float64
        assert ember.tensor([1.5]).dtype is ember.float64
        with pytest.warns(UserWarning):
            ember.set_default_tensor_type("torch.FloatTensor")
        assert ember.get_default_dtype() is ember.float32
    finally:
        ember.set_default_dtype(ember.float32)


def test_info_every_dtype():
    # every dtype ember has (complex ones too, once they exist) against torch: values or error
    from ember import _dtype
    for d in _dtype.ALL:
        for fn in ("finfo", "iinfo"):
            got = want = None
            try:
                got = repr(getattr(ember, fn)(d))
            except TypeError as err:
                got = ("TypeError", str(err))
            try:
                want = repr(getattr(torch, fn)(getattr(torch, d.name)))
            except TypeError as err:
                want = ("TypeError", str(err))
            assert got == want, (fn, d)
