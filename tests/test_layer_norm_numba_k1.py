"""Layer norm's numba backward over one element per row (normalized size 1): ``dx`` is exactly
0 (torch's on the same numbers in float64; torch's and the NumPy path's float32 are within
rounding of it), not the product's rounding error that "contract" makes of ``g w - mean(g w)``
(NOTE [ numba layer-norm kernels ]); non-finite rows give torch's NaNs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import kernelcheck
from ember.ops import _kernels

numba = pytest.importorskip("numba", reason="the numba extra is not installed")


@pytest.fixture(scope="module")
def table():
    return _kernels.numba_table()


def _grads(lib, x, w, g, kern=None):
    tx = lib.from_numpy(x.copy()).requires_grad_()
    tw = None if w is None else lib.from_numpy(w.copy()).requires_grad_()
    with _kernels.use(kern or {}):
        y = lib.nn.functional.layer_norm(tx, (1,), tw, None, 1e-5)
    y.backward(lib.from_numpy(g.copy()))
    return [t.grad.detach().numpy() for t in (tx, tw) if t is not None]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(300, 1), (4, 25, 1)])
@pytest.mark.parametrize("affine", [True, False])
def test_one_element_rows_give_exact_zero_dx(table, monkeypatch, dtype, shape, affine):
    rng = np.random.default_rng(shape[0])
    x = (rng.standard_normal(shape) * 50 + 100).astype(dtype)
    w = (rng.standard_normal(1) + 0.3).astype(dtype) if affine else None
    g = rng.standard_normal(shape).astype(dtype)
    kern = table[("layer_norm", np, np.dtype(dtype))]
    spy = kernelcheck.spy_calls(monkeypatch, kern, ("fwd", "bwd"))
    got = _grads(ember, x, w, g, table)
    assert spy == {"fwd": 1, "bwd": 1}
    np.testing.assert_array_equal(got[0], np.zeros(shape, dtype))
    # torch's float32 mean of one element can be off by an ulp, times 1/sqrt(eps): its dx is
    # then off by up to ~4e-3 on these numbers; on the same numbers in float64 it is ~0
    up = [None if a is None else a.astype(np.float64) for a in (x, w, g)]
    np.testing.assert_allclose(got[0], _grads(torch, *up)[0], rtol=0, atol=1e-9)
    # the NumPy path's float32 is within rounding of 0 too (its sums are float64)
    np.testing.assert_allclose(got[0], _grads(ember, x, w, g)[0], rtol=0,
                               atol=1e-3 if dtype == "float32" else 1e-9)
    if affine:  # xhat is 0: so is sum(g xhat)
        np.testing.assert_array_equal(got[1], _grads(ember, x, w, g)[1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_element_rows_non_finite_as_torch(table, dtype):
    x = np.array([[1.5], [np.inf], [np.nan], [2.0], [-np.inf]], dtype)
    g = np.array([[1.0], [1.0], [1.0], [np.inf], [2.0]], dtype)
    w = np.array([0.7], dtype)
    got = _grads(ember, x, w, g, table)[0]
    want = _grads(torch, x, w, g)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])
