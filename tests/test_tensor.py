"""The Tensor class: metadata, conversions, memory sharing, autograd attributes and repr."""
import copy
import pickle

import numpy as np
import pytest
import torch

import ember
from opcheck import assert_close


def both(f):
    """``f`` run with ember and with torch."""
    return f(ember), f(torch)


def same_error(f, exc=RuntimeError, match=None):
    """``f(ember)`` and ``f(torch)`` both raise ``exc`` (ember's message matching ``match``)."""
    with pytest.raises(exc):
        f(torch)
    with pytest.raises(exc, match=match):
        f(ember)


# ---- metadata -----------------------------------------------------------------------------

def test_size_is_a_tuple_printed_like_torch():
    e, t = both(lambda m: m.zeros(32, 1).size())
    assert isinstance(e, ember.Size) and isinstance(e, tuple)
    assert repr(e) == "ember.Size([32, 1])" == repr(t).replace("torch.", "ember.")
    assert str(e) == "ember.Size([32, 1])"
    assert e == (32, 1) and hash(e) == hash((32, 1))
    assert repr(ember.zeros(()).shape) == "ember.Size([])"
    assert isinstance(ember.zeros(2, 3, 4).shape[1:], ember.Size)
    assert ember.zeros(2, 3, 4).shape[1:] == (3, 4)
    assert ember.Size([2, 3]) + (4,) == (2, 3, 4)
    assert isinstance(ember.Size([2, 3]) + (4,), ember.Size)
    assert ember.Size([2, 3, 4]).numel() == 24 == torch.Size([2, 3, 4]).numel()
    assert pickle.loads(pickle.dumps(ember.Size([2, 3]))) == ember.Size([2, 3])


@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 3), (2, 1, 4), (3, 0, 2)])
def test_shape_metadata_matches_torch(shape):
    e, t = both(lambda m: m.zeros(shape))
    assert tuple(e.shape) == tuple(t.shape) == shape
    assert e.size() == t.size()
    assert e.dim() == e.ndim == e.ndimension() == t.dim()
    assert e.numel() == e.nelement() == t.numel()
    for d in range(-len(shape), len(shape)):
        assert e.size(d) == t.size(d)
        assert e.shape[d] == t.shape[d]
    if shape:
        assert len(e) == len(t)
    assert e.stride() == t.stride()


@pytest.mark.parametrize("dim", [2, -3, 5])
def test_size_dim_out_of_range_raises_index_error(dim):
    same_error(lambda m: m.zeros(2, 3).size(dim), IndexError, "Dimension out of range")


def test_size_with_non_int_dim_raises_type_error():
    same_error(lambda m: m.zeros(2, 3).size(1.0), TypeError)


def test_device_and_dtype_attributes():
    x = ember.zeros(2)
    assert x.device == ember.device("cpu") == "cpu"
    assert str(x.device) == "cpu"
    assert repr(x.device) == repr(torch.zeros(2).device)
    assert x.is_cpu and not x.is_cuda
    assert x.dtype is ember.float32
    assert ember.device("cuda", 1) == "cuda:1"
    assert repr(ember.device("cuda:0")) == repr(torch.device("cuda:0"))


def test_bad_device_string_raises():
    same_error(lambda m: m.device("gpu"), RuntimeError)


# ---- conversion to Python / NumPy ---------------------------------------------------------

@pytest.mark.parametrize("make", [lambda m: m.tensor(2.5), lambda m: m.tensor([7]),
                                  lambda m: m.tensor([[True]]), lambda m: m.tensor(3),
                                  lambda m: m.tensor(1.5, dtype=m.float16)])
def test_item_matches_torch(make):
    e, t = both(make)
    assert e.item() == t.item()
    assert type(e.item()) is type(t.item())


def test_item_on_many_elements_raises():
    same_error(lambda m: m.arange(6.).reshape(2, 3).item(), RuntimeError,
               "a Tensor with 6 elements cannot be converted to Scalar")


@pytest.mark.parametrize("make", [lambda m: m.arange(6.).reshape(2, 3), lambda m: m.tensor(3.5),
                                  lambda m: m.tensor([[1, 2]], dtype=m.int32),
                                  lambda m: m.tensor([True, False]), lambda m: m.zeros(0, 2)])
def test_tolist_matches_torch(make):
    e, t = both(make)
    assert e.tolist() == t.tolist()


def test_python_number_conversions():
    for conv in (float, int, bool):
        for make in (lambda m: m.tensor(2.7), lambda m: m.tensor([-3]), lambda m: m.tensor(0.)):
            e, t = both(make)
            assert conv(e) == conv(t)
    assert f"{ember.tensor(3.25):.1f}" == f"{torch.tensor(3.25):.1f}"
    assert [1, 2, 3][ember.tensor(1)] == 2


@pytest.mark.parametrize("f,exc", [(lambda m: bool(m.tensor([1, 2])), RuntimeError),
                                   (lambda m: len(m.tensor(1)), TypeError),
                                   (lambda m: [1, 2][m.tensor(1.0)], TypeError),
                                   (lambda m: float(m.ones(2)), ValueError),
                                   (lambda m: int(m.ones(2)), ValueError)])
def test_bad_python_conversions_raise_like_torch(f, exc):
    same_error(f, exc)


def test_numpy_shares_memory():
    x = ember.zeros(2, 3)
    a = x.numpy()
    a[0, 0] = 5
    assert x[0, 0].item() == 5.0
    x.add_(1)
    assert a[0, 0] == 6.0 and a[1, 2] == 1.0
    assert np.shares_memory(ember.ones(3).detach().numpy(), ember.ones(3).numpy()) is False


def test_numpy_of_tensor_requiring_grad_raises():
    same_error(lambda m: m.ones(2, requires_grad=True).numpy(), RuntimeError,
               r"Can't call numpy\(\) on Tensor that requires grad")
    x = ember.ones(2, requires_grad=True)
    np.testing.assert_array_equal(x.detach().numpy(), [1, 1])
    np.testing.assert_array_equal(x.numpy(force=True), [1, 1])


def test_np_asarray_of_tensor():
    x = ember.arange(4.)
    np.testing.assert_array_equal(np.asarray(x), [0, 1, 2, 3])
    assert np.asarray(x, dtype=np.float64).dtype == np.float64


# ---- casts and copies ---------------------------------------------------------------------

CASTS = [
    lambda m, x: x.to(m.float64), lambda m, x: x.to(m.int32), lambda m, x: x.to(m.bool),
    lambda m, x: x.to("cpu", m.float16), lambda m, x: x.to(device="cpu", dtype=m.int64),
    lambda m, x: x.to(m.ones(1, dtype=m.float64)), lambda m, x: x.type_as(m.ones(1, dtype=m.int8)),
    lambda m, x: x.float(), lambda m, x: x.double(), lambda m, x: x.half(), lambda m, x: x.long(),
    lambda m, x: x.int(), lambda m, x: x.bool(), lambda m, x: x.short(), lambda m, x: x.byte(),
    lambda m, x: x.char(), lambda m, x: x.bfloat16().float(),
    lambda m, x: x.to(m.uint8),
]


@pytest.mark.parametrize("cast", CASTS)
def test_casts_match_torch(cast):
    data = np.array([[1.7, -1.7, 0.0], [2.5, 300.0, -0.4]], dtype=np.float32)
    e = cast(ember, ember.from_numpy(data.copy()))
    t = cast(torch, torch.from_numpy(data.copy()))
    if "uint8" in str(t.dtype):  # out-of-range float -> uint8 is undefined behaviour in C
        e, t = e[:, [0, 2]], t[:, [0, 2]]
    assert_close(e, t, "float16")


def test_int_casts_match_torch():
    data = np.array([300, -1, 0, 7])
    for cast in (lambda m, x: x.to(m.uint8), lambda m, x: x.to(m.int8), lambda m, x: x.bool(),
                 lambda m, x: x.float(), lambda m, x: x.half()):
        assert_close(cast(ember, ember.tensor(data)), cast(torch, torch.tensor(data)))


def test_to_returns_self_when_nothing_changes():
    x = ember.ones(2)
    assert x.to(ember.float32) is x
    assert x.to("cpu") is x
    assert x.to(x) is x
    assert x.float() is x
    assert x.to(ember.float32, copy=True) is not x
    assert x.contiguous() is x


def test_to_gradient_flows_back_in_the_input_dtype():
    e = ember.tensor([1.0, 2.0], requires_grad=True)
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    ye, yt = e.double() * 3, t.double() * 3
    assert repr(ye) == repr(yt).replace("torch.", "ember.")
    ye.sum().backward()
    yt.sum().backward()
    assert_close(e.grad, t.grad)
    assert e.to(ember.int64).requires_grad is False


@pytest.mark.parametrize("bad", [5, [1], "float32"])
def test_to_with_bad_argument_raises_type_error(bad):
    same_error(lambda m: m.ones(2).to(bad), (TypeError, RuntimeError))


def test_to_unavailable_device_raises():
    # torch's CPU build: AssertionError from torch.cuda's lazy initialisation
    with pytest.raises(AssertionError, match="CUDA.*no GPU backend"):
        ember.ones(2).to("cuda")
    with pytest.raises(AssertionError, match="CUDA"):
        ember.ones(2).cuda()


def test_type_strings():
    for make in (lambda m: m.ones(1), lambda m: m.ones(1, dtype=m.int64),
                 lambda m: m.ones(1, dtype=m.bool), lambda m: m.ones(1, dtype=m.float16)):
        e, t = both(make)
        assert e.type() == t.type()
    assert ember.ones(1).type("torch.DoubleTensor").dtype is ember.float64
    assert ember.ones(1).type(ember.int32).dtype is ember.int32


def test_clone_owns_memory_and_stays_in_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    assert y.grad_fn.name() == torch.ones(1, requires_grad=True).clone().grad_fn.name()
    assert not np.shares_memory(y.detach().numpy(), x.detach().numpy())
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    z = ember.ones(3)
    c = z.clone()
    c.add_(1)
    assert z.tolist() == [1.0, 1.0, 1.0]


def test_detach_shares_memory_and_version_but_not_graph():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.requires_grad is False and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    v = y._version
    d.add_(1)
    assert y._version == v + 1 == d._version
    assert y.tolist() == [3.0, 5.0]


def test_detach_in_place():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert y.detach_() is y
    assert y.grad_fn is None and y.requires_grad is False and y.is_leaf
    same_error(lambda m: (m.ones(4, requires_grad=True) * 1).view(2, 2).detach_(),
               RuntimeError, "Can't detach views in-place")


def test_contiguous():
    for m in (ember, torch):
        x = m.arange(6.).reshape(2, 3)
        assert x.is_contiguous()
        xt = x.t()
        assert not xt.is_contiguous()
        c = xt.contiguous()
        assert c.is_contiguous() and c.tolist() == xt.tolist()
    e = ember.arange(6.).reshape(2, 3).requires_grad_()
    c = e.t().contiguous()
    assert c.grad_fn is not None
    c.sum().backward()
    assert e.grad.tolist() == [[1.0] * 3] * 2


def test_deepcopy_and_pickle_of_leaf():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    c = copy.deepcopy(x)
    assert c is not x and c.requires_grad and c.grad.tolist() == [3.0, 3.0]
    assert not np.shares_memory(c.detach().numpy(), x.detach().numpy())
    p = pickle.loads(pickle.dumps(ember.arange(3.)))
    assert p.tolist() == [0.0, 1.0, 2.0]
    same_error(lambda m: copy.deepcopy(m.ones(2, requires_grad=True) * 2), RuntimeError)


# ---- autograd attributes ------------------------------------------------------------------

def test_requires_grad_and_is_leaf():
    for m in (ember, torch):
        x = m.ones(2)
        assert not x.requires_grad and x.is_leaf and x.grad_fn is None and x.grad is None
        assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
        y = x * 2
        assert y.requires_grad and not y.is_leaf
        x.requires_grad = False
        assert not x.requires_grad


@pytest.mark.parametrize("dt", ["int64", "int32", "bool", "uint8"])
def test_requires_grad_on_integer_tensor_raises(dt):
    same_error(lambda m: m.ones(2, dtype=getattr(m, dt)).requires_grad_(), RuntimeError,
               "floating point")
    same_error(lambda m: m.zeros(2, dtype=getattr(m, dt), requires_grad=True), RuntimeError,
               "floating point")


def test_requires_grad_false_on_non_leaf_raises():
    same_error(lambda m: (m.ones(2, requires_grad=True) * 2).requires_grad_(False),
               RuntimeError, "only change requires_grad flags of leaf variables")


@pytest.mark.parametrize("op,name", [
    (lambda x: x + 1, "AddBackward0"), (lambda x: x * 2, "MulBackward0"),
    (lambda x: x - x, "SubBackward0"), (lambda x: x / 2, "DivBackward0"),
    (lambda x: -x, "NegBackward0"), (lambda x: x.exp(), "ExpBackward0"),
    (lambda x: x.clone(), "CloneBackward0"), (lambda x: x.view(6), "ViewBackward0"),
    (lambda x: x.reshape(3, 2), "ViewBackward0"), (lambda x: x.permute(1, 0), "PermuteBackward0"),
    (lambda x: x.transpose(0, 1), "TransposeBackward0"),
    (lambda x: x.expand(4, 2, 3), "ExpandBackward0"), (lambda x: x.double(), "ToCopyBackward0"),
    (lambda x: x.sum(), "SumBackward0"), (lambda x: x.mean(), "MeanBackward0"),
    (lambda x: x.sum(0), "SumBackward1"), (lambda x: x @ x.t(), "MmBackward0"),
])
def test_grad_fn_names_match_torch(op, name):
    e = op(ember.ones(2, 3, requires_grad=True))
    t = op(torch.ones(2, 3, requires_grad=True))
    assert t.grad_fn.name() == name
    assert e.grad_fn.name() == name
    assert f"grad_fn=<{name}>" in repr(e)
    assert repr(e) == repr(t).replace("torch.", "ember.")


def test_grad_is_validated_on_assignment():
    x = ember.ones(2, 3, requires_grad=True)
    x.grad = ember.full((2, 3), 2.0)
    (x * 1).sum().backward()
    assert x.grad.tolist() == [[3.0] * 3] * 2
    x.grad = None
    assert x.grad is None
    same_error(lambda m: setattr(m.ones(2, 3, requires_grad=True), "grad", m.ones(3)),
               RuntimeError, "attempting to assign a gradient of size")
    same_error(lambda m: setattr(m.ones(2, requires_grad=True), "grad",
                                 m.ones(2, dtype=m.float64)), RuntimeError, "dtype")
    same_error(lambda m: setattr(m.ones(2, requires_grad=True), "grad", 5), TypeError)


def test_retain_grad_and_hooks_basic():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    assert not y.retains_grad
    y.retain_grad()
    assert y.retains_grad
    x.retain_grad()  # no-op on a leaf
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])
    np.testing.assert_allclose(x.grad.numpy(), [18.0, 36.0])
    same_error(lambda m: m.ones(2).retain_grad(), RuntimeError, "can't retain_grad")
    same_error(lambda m: m.ones(2).register_hook(lambda g: g), RuntimeError,
               "cannot register a hook")


def test_data_attribute_shares_memory_with_own_version():
    for m in (ember, torch):
        x = m.ones(3, requires_grad=True)
        d = x.data
        assert not d.requires_grad
        v = x._version
        d.mul_(2)
        assert x.tolist() == [2.0, 2.0, 2.0]
        assert x._version == v  # PyTorch: changes through .data are invisible to autograd
    x = ember.ones(3)
    x.data = ember.zeros(3)
    assert x.tolist() == [0.0, 0.0, 0.0]


# ---- printing -----------------------------------------------------------------------------

REPRS = {
    "scalar_float": lambda m: m.tensor(3.5),
    "scalar_intvalued": lambda m: m.tensor(3.0),
    "scalar_int": lambda m: m.tensor(3),
    "scalar_bool": lambda m: m.tensor(True),
    "scalar_small": lambda m: m.tensor(-0.001234),
    "1d": lambda m: m.tensor([1.5, -2.25, 3.0]),
    "1d_intvalued": lambda m: m.tensor([1.0, 2.0, -3.0]),
    "2d": lambda m: m.tensor([[1.5, 2.0], [3.25, -4.0]]),
    "3d": lambda m: m.arange(24.0).reshape(2, 3, 4) / 7,
    "4d": lambda m: m.ones(2, 1, 2, 2),
    "column": lambda m: m.ones(3, 1),
    "ints": lambda m: m.tensor([[1, -20], [300, 4]]),
    "big_ints": lambda m: m.tensor([2 ** 40, -3]),
    "bools": lambda m: m.tensor([[True, False], [False, True]]),
    "summarised_2d": lambda m: m.arange(2000.0).reshape(40, 50),
    "summarised_1d_int": lambda m: m.arange(5000),
    "summarised_1d_float": lambda m: m.arange(1001.0) / 3,
    "summarised_3d": lambda m: m.arange(3000.0).reshape(10, 10, 30),
    "summarised_bool": lambda m: m.arange(2000).reshape(40, 50) > 1000,
    "sci_big": lambda m: m.tensor([1e10, 1.0]),
    "sci_small": lambda m: m.tensor([1e-5, 1.0]),
    "sci_ratio": lambda m: m.tensor([0.5, 2000.5]),
    "sci_intvalued": lambda m: m.tensor([1e9, 2.0]),
    "sci_ratio_intvalued": lambda m: m.tensor([1.0, 2000.0]),
    "nan_inf": lambda m: m.tensor([float("nan"), float("inf"), -float("inf"), 1.5]),
    "nan_inf_intvalued": lambda m: m.tensor([float("nan"), float("inf"), 2.0]),
    "all_nan": lambda m: m.tensor([float("nan"), float("nan")]),
    "negative_zero": lambda m: m.tensor([-0.0, 1.0]),
    "zeros": lambda m: m.zeros(2, 3),
    "zeros_and_value": lambda m: m.tensor([0.0, 0.0, 5.5]),
    "wide_rows": lambda m: m.arange(30.0) / 7 + 100,
    "wide_ints": lambda m: m.arange(40) * 1000,
    "wide_2d": lambda m: (m.arange(60.0) / 7).reshape(3, 20),
    "empty": lambda m: m.zeros(0),
    "empty_2d": lambda m: m.zeros(2, 0),
    "empty_int": lambda m: m.zeros(0, dtype=m.int64),
    "empty_int32_2d": lambda m: m.zeros(3, 0, dtype=m.int32),
    "empty_bool": lambda m: m.zeros(0, dtype=m.bool),
    "float64": lambda m: m.tensor([1.5, 2.5], dtype=m.float64),
    "float16": lambda m: m.tensor([1.5, 2.5], dtype=m.float16),
    "float16_sci": lambda m: m.tensor([1e-5, 1.0], dtype=m.float16),
    "bfloat16": lambda m: m.tensor([1.5, 2.5], dtype=m.bfloat16),
    "int32": lambda m: m.tensor([1, 2], dtype=m.int32),
    "int8_extremes": lambda m: m.tensor([-128, 127], dtype=m.int8),
    "uint8": lambda m: m.tensor([1, 2], dtype=m.uint8),
    "int32_scalar": lambda m: m.tensor(5, dtype=m.int32),
    "requires_grad": lambda m: m.tensor([1.5, 2.5], requires_grad=True),
    "requires_grad_f64": lambda m: m.tensor([1.5, 2.5], dtype=m.float64, requires_grad=True),
    "grad_fn": lambda m: m.tensor([1.5, 2.5], requires_grad=True) + 1,
    "grad_fn_f64": lambda m: m.tensor([1.5, 2.5], dtype=m.float64, requires_grad=True) * 2,
    "grad_fn_long_row_wraps_suffix": lambda m: m.arange(7.0).requires_grad_() * 1.123,
    "grad_fn_2d_wraps_suffix": lambda m: (m.arange(12.0).reshape(2, 6) / 7).requires_grad_()
    .double() * 3,
    "grad_fn_big": lambda m: m.arange(2000.0).reshape(40, 50).requires_grad_() * 1,
}


@pytest.mark.parametrize("name", sorted(REPRS))
def test_repr_matches_torch(name):
    make = REPRS[name]
    e, t = repr(make(ember)), repr(make(torch)).replace("torch.", "ember.")
    assert e == t
    assert str(make(ember)) == e


@pytest.mark.parametrize("opts", [dict(precision=2), dict(threshold=5),
                                  dict(edgeitems=1, threshold=10), dict(linewidth=40),
                                  dict(sci_mode=True), dict(sci_mode=False),
                                  dict(profile="short"), dict(profile="full")])
def test_repr_under_print_options_matches_torch(opts):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((5, 7)).astype(np.float32), rng.standard_normal((50, 40)),
              rng.integers(-1000, 1000, (12, 9)), np.arange(100, dtype=np.float32) / 3,
              rng.standard_normal((2, 3, 4)) * 1000, np.array([1e-8, 2e-8])]
    ember.set_printoptions(**opts)
    torch.set_printoptions(**opts)
    try:
        for a in arrays:
            assert repr(ember.from_numpy(a.copy())) == \
                repr(torch.from_numpy(a.copy())).replace("torch.", "ember.")
    finally:
        ember.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
    assert repr(ember.tensor([1.123456])) == "tensor([1.1235])"


def test_repr_of_random_values_matches_torch():
    rng = np.random.default_rng(1)
    for shape in [(3,), (4, 5), (2, 3, 2), (1, 1, 1), (0, 3)]:
        for scale in (1e-6, 1.0, 1e3, 1e9):
            a = (rng.standard_normal(shape) * scale).astype(np.float32)
            assert repr(ember.from_numpy(a.copy())) == \
                repr(torch.from_numpy(a.copy())).replace("torch.", "ember.")


def test_repr_with_non_default_dtype_default():
    ember.set_default_dtype(ember.float64)
    torch.set_default_dtype(torch.float64)
    try:
        for make in (lambda m: m.tensor([1.5]), lambda m: m.tensor([1.5], dtype=m.float32),
                     lambda m: m.zeros(0), lambda m: m.zeros(0, dtype=m.float32)):
            assert repr(make(ember)) == repr(make(torch)).replace("torch.", "ember.")
    finally:
        ember.set_default_dtype(ember.float32)
        torch.set_default_dtype(torch.float32)


def test_repr_of_large_tensor_is_fast():
    import time
    x = ember.zeros(1000, 1000)
    start = time.perf_counter()
    r = repr(x)
    assert time.perf_counter() - start < 0.5
    assert "..." in r
