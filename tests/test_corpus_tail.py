"""More corpus names (issue 14) against torch: dist, searchsorted, bucketize, cartesian_prod,
Tensor.triu_/tril_ (values, gradients, bad input)."""
import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, assert_close


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), 0])
def test_dist(p):
    a, b = rand(2, 3, seed=1), rand(3, seed=2)
    grad = p != 0  # the 0-"norm" counts nonzeros: no gradient
    check(lambda m, x, y: m.dist(x, y, p), None, a, b, grad=grad)
    check(lambda m, x, y: x.dist(y, p=p), None, a, b, grad=grad)


def test_dist_default_and_promotion():
    check(lambda m, x, y: m.dist(x, y), None, rand(4, seed=3), rand(4, seed=4))
    check(lambda m, x, y: m.dist(x, y.double()), None, rand(4, seed=3), rand(4, seed=4),
          dtypes=("float32",))


SEARCH = [
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([[0.0, 3, 6], [7, 8, 1]])),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([3.0, 7]), right=True),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([3.0, 7]), side="right"),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5]), 4),
    lambda m: m.searchsorted(m.tensor([1, 3, 5]), m.tensor([1.0, 4])),
    lambda m: m.searchsorted(m.tensor([[1, 3, 5], [2, 4, 6]]), m.tensor([[3], [3]]), right=True),
    lambda m: m.searchsorted(m.tensor([5, 1, 3]), m.tensor([2, 4]), sorter=m.tensor([1, 2, 0])),
    lambda m: m.searchsorted(m.tensor([1.0, 2]), m.tensor([1.5]), out_int32=True),
    lambda m: m.bucketize(m.tensor([1.0, 5, 9]), m.tensor([1.0, 5])),
    lambda m: m.bucketize(m.tensor([1.0, 5, 9]), m.tensor([1.0, 5]), out_int32=True, right=True),
    lambda m: m.bucketize(3, m.tensor([1, 3, 5])),
    lambda m: m.bucketize(m.tensor([[0.5, 2.5], [9.0, 1.0]]), m.tensor([1.0, 2, 3])),
]


@pytest.mark.parametrize("i", range(len(SEARCH)))
def test_searchsorted_bucketize(i):
    assert_close(SEARCH[i](ember), SEARCH[i](torch))


def test_search_out():
    for m in (ember, torch):
        out = m.zeros(3, dtype=m.int64)
        r = m.bucketize(m.tensor([0.0, 1.5, 9]), m.tensor([1.0, 2]), out=out)
        assert r is out and out.tolist() == [0, 1, 2]


def test_cartesian_prod():
    for call in (lambda m: m.cartesian_prod(m.arange(2), m.arange(3)),
                 lambda m: m.cartesian_prod(m.arange(2), m.arange(3), m.tensor([5, 6])),
                 lambda m: m.cartesian_prod(m.arange(2))):
        assert_close(call(ember), call(torch))
    check(lambda m, a, b: m.cartesian_prod(a, b), None, rand(2, seed=5), rand(3, seed=6))


@pytest.mark.parametrize("name", ["triu_", "tril_"])
@pytest.mark.parametrize("diagonal", [0, 1, -1])
def test_triangle_inplace(name, diagonal):
    def call(m, a):
        b = a * 1
        assert getattr(b, name)(diagonal) is b
        return b
    check(call, None, rand(2, 3, 4, seed=7))
    for m in (ember, torch):  # the causal-mask idiom from whisper and timm
        mask = m.empty(3, 3).fill_(-np.inf).triu_(1)
        assert mask.tolist()[0] == [0.0, -np.inf, -np.inf]


BAD = [
    (lambda m: m.dist(m.ones(3, dtype=m.long), m.zeros(3, dtype=m.long)), RuntimeError,
     "norm(): input dtype should be either floating point or complex. Got Long instead."),
    (lambda m: m.dist(m.ones(3), m.zeros(2)), RuntimeError, "must match the size"),
    (lambda m: m.ones(3).dist(m.ones(3), p="fro"), TypeError, "must be Number, not str"),
    (lambda m: m.bucketize(m.tensor([1.0, 5]), m.tensor([[1.0, 2]])), RuntimeError,
     "boundaries tensor must be 1 dimension, but got dim(2)"),
    (lambda m: m.searchsorted(m.ones(2, 3), m.ones(3, 2)), RuntimeError,
     "first N-1 dimensions of boundaries tensor and input value tensor must match, but we got "
     "boundaries tensor [2, 3] and input value tensor [3, 2]"),
    (lambda m: m.searchsorted(m.ones(3), m.ones(2), side="left", right=True), RuntimeError,
     "side and right can't be set to opposites"),
    (lambda m: m.searchsorted(m.ones(3), m.ones(2), side="mid"), RuntimeError,
     "side can only be 'left' or 'right' but got mid"),
    (lambda m: m.searchsorted(m.tensor([5, 1, 3]), m.tensor([2]), sorter=m.tensor([1, 2])),
     RuntimeError, "boundary and sorter must have the same size"),
    (lambda m: m.cartesian_prod(m.ones(2, 2)), RuntimeError,
     "Expect a 1D vector, but got shape [2, 2]"),
    (lambda m: m.cartesian_prod(), RuntimeError, "meshgrid expects a non-empty TensorList"),
    (lambda m: m.cartesian_prod(m.arange(2), m.arange(2.0)), RuntimeError,
     "meshgrid expects all tensors to have the same dtype"),
    (lambda m: m.ones(3).triu_(), RuntimeError, "triu: input tensor must have at least 2 dim"),
    (lambda m: m.ones(3, 3, requires_grad=True).tril_(), RuntimeError,
     "a leaf Variable that requires grad is being used in an in-place operation."),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input(i):
    call, exc, msg = BAD[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"
