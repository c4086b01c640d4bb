"""A NumPy array operand, 0-d or not, is no Python number and no tensor to PyTorch's binary ops:
the operators leave it to NumPy, which computes on the tensor's values with its own promotion
(``float32_tensor ** np.array(2.0)`` is float64) and hands back a tensor with no history;
``array op tensor`` and the functions refuse it (TypeError); ``==`` compares values.  Against
torch: dtype, shape, values, errors."""
from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest
import torch

import ember

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
       "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "&": operator.and_,
       "|": operator.or_, "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
       "==": operator.eq}
TENSOR_DTYPES = ["float32", "float64", "float16", "int64", "int32", "uint8", "bool"]
ARRAY_DTYPES = ["float64", "float32", "int64", "int32", "int8", "uint8", "bool", "complex128"]
SHAPES = [(), (2,), (3, 1)]


def outcome(lib, fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fn(lib)
    except Exception as e:  # noqa: BLE001 (the type is what is compared)
        return type(e).__name__
    if isinstance(r, (torch.Tensor, ember.Tensor)):
        return str(r.dtype).split(".")[-1], tuple(r.shape), r.requires_grad, \
            np.asarray(r.detach().numpy(), dtype=complex).round(5).tolist()
    return type(r).__name__


@pytest.mark.parametrize("tdt", TENSOR_DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_tensor_op_array_as_torch(op, tdt):
    for adt in ARRAY_DTYPES:
        for shape in SHAPES:
            def f(L):
                t = L.tensor([3, 2], dtype=getattr(L, tdt))
                return OPS[op](t, np.full(shape, 2, dtype=adt))
            assert outcome(ember, f) == outcome(torch, f), (adt, shape)


@pytest.mark.parametrize("op", list(OPS))
def test_array_op_tensor_as_torch(op):
    for tdt in ("float32", "int64"):
        for shape in ((), (2,)):
            def f(L):
                return OPS[op](np.full(shape, 2.0), L.tensor([3, 2], dtype=getattr(L, tdt)))
            assert outcome(ember, f) == outcome(torch, f), (tdt, shape)


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("op", ["+", "*", "**", "/"])
def test_array_operand_of_a_tensor_that_requires_grad(op, grad):
    def f(L):
        t = L.tensor([3.0, 2.0], requires_grad=True)
        with L.set_grad_enabled(grad):
            return OPS[op](t, np.array(2.0))
    got = outcome(ember, f)
    assert got == outcome(torch, f)
    assert (got == "RuntimeError") == grad


FUNCTIONS = {
    "add": lambda L, t, a: L.add(t, a), "t.add": lambda L, t, a: t.add(a),
    "sub": lambda L, t, a: L.sub(t, a), "mul": lambda L, t, a: L.mul(t, a),
    "t.mul": lambda L, t, a: t.mul(a), "div": lambda L, t, a: L.div(t, a),
    "true_divide": lambda L, t, a: L.true_divide(t, a),
    "floor_divide": lambda L, t, a: L.floor_divide(t, a),
    "remainder": lambda L, t, a: L.remainder(t, a), "fmod": lambda L, t, a: L.fmod(t, a),
    "pow": lambda L, t, a: L.pow(t, a), "t.pow": lambda L, t, a: t.pow(a),
    "float_power": lambda L, t, a: L.float_power(t, a),
    "copysign": lambda L, t, a: L.copysign(t, a), "xlogy": lambda L, t, a: L.xlogy(t, a),
    "eq": lambda L, t, a: L.eq(t, a), "lt": lambda L, t, a: L.lt(t, a),
    "bitwise_and": lambda L, t, a: L.bitwise_and(t.long(), a),
    "where": lambda L, t, a: L.where(t > 2, t, a),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("shape", [(), (2,)])
def test_functions_refuse_an_array(name, shape):
    def f(L):
        return FUNCTIONS[name](L, L.tensor([3.0, 2.0]), np.full(shape, 2.0))
    assert outcome(ember, f) == outcome(torch, f) == "TypeError"


def test_numpy_scalars_stay_numbers():
    """(The scalars, unlike 0-d arrays, are Python numbers to PyTorch: float32 stays.)"""
    for s in (np.float64(2), np.int64(2), 2.0):
        def f(L):
            return L.tensor([3.0, 2.0]) ** s
        assert outcome(ember, f) == outcome(torch, f)
        assert outcome(ember, f)[0] == "float32"
