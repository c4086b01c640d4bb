"""Loose names from the corpus (issue 14), each against torch: Tensor.new/resize_/resize_as_/
resize/record_stream/get_device and the device-kind predicates, copysign, linalg.pinv, vmap."""
import warnings

import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand


def _both(fn):
    return fn(torch), fn(ember)


# ---- Tensor.new -----------------------------------------------------------------------------
NEW = [  # calls whose result (shape, dtype, and values unless uninitialised) must match
    (lambda m: m.ones(2, dtype=m.float64).new(), False),
    (lambda m: m.ones(2, dtype=m.float64).new(2, 3), False),
    (lambda m: m.ones(2, dtype=m.float64).new(m.Size([2, 3])), False),
    (lambda m: m.ones(2, dtype=m.float64).new(()), False),
    (lambda m: m.ones(2, dtype=m.float64).new([1, 2]), True),
    (lambda m: m.ones(2, dtype=m.float64).new((1, 2)), True),  # a tuple is data, not a size
    (lambda m: m.ones(2, dtype=m.int64).new([1.7, 2]), True),
    (lambda m: m.ones(2).new(2, device="cpu"), False),
    (lambda m: m.ones(2).new(m.arange(3.0)), True),
]


@pytest.mark.parametrize("i", range(len(NEW)))
def test_new(i):
    call, values = NEW[i]
    t, e = _both(call)
    assert tuple(e.shape) == tuple(t.shape) and str(e.dtype)[6:] == str(t.dtype)[6:]
    if values:
        assert e.tolist() == t.tolist()


def test_new_aliases_a_tensor():
    for m in (torch, ember):
        x = m.ones(2, requires_grad=True)
        y = x.new(x)
        assert y.requires_grad
        with m.no_grad():
            y.mul_(3)
        assert x.tolist() == [3.0, 3.0]


NEW_BAD = [
    (lambda m: m.ones(2).new(2, dtype=m.int32), TypeError, "invalid combination"),
    (lambda m: m.ones(2).new(2.5), TypeError, "new(): data must be a sequence (got float)"),
    (lambda m: m.ones(2).new("a"), TypeError, "new(): invalid data type 'str'"),
    (lambda m: m.ones(2).new([1, 2], 3), TypeError, "invalid combination"),
    (lambda m: m.ones(2).new(2, 3, requires_grad=True), TypeError, "invalid combination"),
    (lambda m: m.ones(2, dtype=m.float64).new(m.ones(2)), TypeError, "expected TensorOptions"),
    (lambda m: m.ones(2).new(-1), RuntimeError, "negative dimension -1"),
]


@pytest.mark.parametrize("i", range(len(NEW_BAD)))
def test_new_bad(i):
    call, exc, msg = NEW_BAD[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"


# ---- resize_ / resize_as_ / resize ---------------------------------------------------------
def _resize_steps(m):
    """A sequence of resizes; every element read back is one torch defines (no fresh memory)."""
    x = m.arange(6.0)
    v = x.view(2, 3)
    out = [x.resize_(2).tolist(), v.tolist()]       # shrinking keeps the storage prefix
    x.fill_(7)
    out.append(v.tolist())                          # ...and still shares it
    out.append(x.resize_(2, 3).tolist())            # back to the same storage, values kept
    out.append(x.resize_(3, 4)[:1, :].tolist() + [x.shape[0], x.shape[1]])  # grown: old first
    out.append(x.resize_(5).tolist())               # and shrunk again over the larger storage
    y = m.arange(6.0).view(2, 3).t()                # not contiguous: read from its storage
    out.append(y.resize_(3, 2).tolist())            # same shape: nothing changes
    out.append(y.resize_(4).tolist())
    z = m.arange(6.0)
    out.append(z.resize_as_(m.ones(3, 2)).tolist())
    out.append(z.resize_((1, 2)).tolist() + list(z.resize_(m.Size([2])).shape))
    z.resize_(0)
    out.append(z.resize_(3).tolist())
    w = m.arange(12.0).view(3, 4)[1]                # a row: its storage starts at element 4
    out.append(w.resize_(2, 2).tolist())
    return out


def test_resize_():
    t, e = _both(_resize_steps)
    assert e == t
    # growing past the storage: the old values first (the rest is uninitialised in torch)
    for m in (torch, ember):
        x = m.arange(4, dtype=m.int64)
        assert x.resize_(2, 5)[0].tolist()[:4] == [0, 1, 2, 3] and x.dtype == m.int64


def test_resize_out_of_place():
    for m in (torch, ember):
        with pytest.warns(UserWarning, match="non-inplace resize is deprecated"):
            y = m.arange(6.0).resize(2, 3)
        assert y.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(lambda m, a: a.resize(3, 2), None, rand(2, 3))
        check(lambda m, a: a.resize(6), None, rand(2, 3))


RESIZE_BAD = [
    (lambda m: m.ones(2, requires_grad=True).resize_(3), RuntimeError,
     "cannot resize variables that require grad"),
    (lambda m: m.ones(2, requires_grad=True).resize_as_(m.ones(3)), RuntimeError,
     "cannot resize variables that require grad"),
    (lambda m: m.ones(2).resize_(-1), RuntimeError, "numel: integer multiplication overflow"),
    (lambda m: m.ones(2).resize_(2.5), TypeError,
     "resize_(): argument 'size' (position 1) must be tuple of ints, not float"),
    (lambda m: m.ones(6).resize(4), RuntimeError,
     "requested resize to 4 (4 elements in total), but the given tensor has a size of 6 "
     "(6 elements). autograd's resize can only change the shape"),
]


@pytest.mark.parametrize("i", range(len(RESIZE_BAD)))
def test_resize_bad(i):
    call, exc, msg = RESIZE_BAD[i]
    for m in (torch, ember):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(exc) as info:
                call(m)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"


# ---- predicates, get_device, record_stream --------------------------------------------------
PREDICATES = ["is_xpu", "is_mps", "is_meta", "is_quantized", "is_mkldnn", "is_nested",
              "is_vulkan", "is_ipu", "is_maia", "is_mtia", "is_cpu", "is_cuda", "is_sparse"]


@pytest.mark.parametrize("name", PREDICATES)
def test_predicates(name):
    t, e = _both(lambda m: getattr(m.ones(2), name))
    assert e is t  # an attribute in both, not a method


def test_get_device():
    assert ember.ones(2).get_device() == torch.ones(2).get_device() == -1


@pytest.mark.parametrize("arg", [1, None, "cpu"])
def test_record_stream(arg):
    for m in (torch, ember):
        with pytest.raises(RuntimeError, match="unknown parameter type"):
            m.ones(2).record_stream(arg)


def test_record_stream_on_a_stream():
    with pytest.raises(NotImplementedError, match="record_stream' with arguments from the 'CPU'"):
        torch.ones(2).record_stream(torch.Stream())
    with pytest.raises(NotImplementedError, match="record_stream' with arguments from the 'CPU'"):
        # ember.cuda.Stream cannot be made without a GPU backend; an instance made bare
        ember.ones(2).record_stream(object.__new__(ember.cuda.Stream))


# ---- copysign -------------------------------------------------------------------------------
A = rand(3, 4, seed=1)
A[0, 0] = 0.0  # the gradient at 0 is PyTorch's 0
B = rand(4, seed=2)


@pytest.mark.parametrize("call", [
    lambda m, a, b: m.copysign(a, b),
    lambda m, a, b: a.copysign(b),
    lambda m, a, b: m.copysign(a, -0.0),
    lambda m, a, b: m.copysign(a, 2),
    lambda m, a, b: (a * 1).copysign_(b),
    lambda m, a, b: m.copysign(b, a),  # broadcast: other's gradient is zeros of its shape
])
def test_copysign(call):
    check(call, None, A, B)


def test_copysign_dtypes():
    for call in (lambda m: m.copysign(m.tensor([1, -2]), m.tensor([-1, 1])),
                 lambda m: m.copysign(m.tensor([1.0, 2]), m.tensor([-1.0], dtype=m.float64)),
                 lambda m: m.copysign(m.tensor([1.0, -2], dtype=m.float16), -1),
                 lambda m: m.copysign(m.tensor([True, False]), m.tensor(-1))):
        t, e = _both(call)
        assert e.tolist() == t.tolist() and str(e.dtype)[6:] == str(t.dtype)[6:]


@pytest.mark.parametrize("call, exc", [
    (lambda m: m.copysign(1.0, m.ones(2)), TypeError),
    (lambda m: m.copysign(m.ones(2), "a"), TypeError),
    (lambda m: m.tensor([1, 2]).copysign_(m.tensor([-1, 1])), RuntimeError),
    (lambda m: m.copysign(m.ones(2), m.ones(3)), RuntimeError),
    (lambda m: m.ones(2, requires_grad=True).copysign_(m.ones(2)), RuntimeError),
])
def test_copysign_bad(call, exc):
    for m in (torch, ember):
        with pytest.raises(exc):
            call(m)


# ---- linalg.pinv ----------------------------------------------------------------------------
SYM = rand(3, 3, seed=3)


@pytest.mark.parametrize("call, arrays", [
    (lambda m, a: m.linalg.pinv(a), (rand(4, 3, seed=1),)),
    (lambda m, a: m.linalg.pinv(a), (rand(3, 5, seed=1),)),
    (lambda m, a: m.linalg.pinv(a), (rand(2, 3, 5, seed=2),)),
    (lambda m, a: m.linalg.pinv(a, rtol=0.3), (rand(2, 3, 5, seed=2),)),
    (lambda m, a: m.linalg.pinv(a @ a.mT), (rand(4, 1, seed=4),)),  # rank 1: cut-off values
    (lambda m, a: m.linalg.pinv(a + a.mT, hermitian=True), (SYM,)),
    (lambda m, a: m.linalg.pinv(a, atol=m.tensor([0.5, 3.0], dtype=a.dtype)),
     (rand(2, 3, 3, seed=5),)),
])
def test_pinv(call, arrays):
    check(call, None, *arrays)


def test_pinv_atol_values_and_empty():
    a = rand(4, 3, seed=1)
    check(lambda m, x: m.linalg.pinv(x, atol=1.0), None, a, grad=False)
    check(lambda m, x: m.linalg.pinv(x, atol=1.0, rtol=0.5), None, a, grad=False)
    t, e = _both(lambda m: m.linalg.pinv(m.zeros(0, 3)))
    assert tuple(e.shape) == tuple(t.shape) == (3, 0)


@pytest.mark.parametrize("call", [
    lambda m: m.linalg.pinv(m.ones(3)),
    lambda m: m.linalg.pinv(m.ones(3, 3, dtype=m.long)),
])
def test_pinv_bad(call):
    msgs = []
    for m in (torch, ember):
        with pytest.raises(RuntimeError) as info:
            call(m)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


# ---- top-level vmap -------------------------------------------------------------------------
def test_vmap_top_level():
    # once ember.fx has traced, the top-level functions are wrapped (``__wrapped__``)
    assert getattr(ember.vmap, "__wrapped__", ember.vmap) is ember.func.vmap
    x = rand(5, 3, seed=6)
    t = torch.vmap(lambda r: (r * r).sum())(torch.tensor(x))
    e = ember.vmap(lambda r: (r * r).sum())(ember.tensor(x))
    np.testing.assert_allclose(e.numpy(), t.numpy())
