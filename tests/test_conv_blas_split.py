"""Convolution's batches of BLAS products split over the ops threads by product, each on one
BLAS thread (NOTE [ Threads ], ``conv._bmm``; by default only on a loaded machine, NOTE [ BLAS
under load ]): the same bits on 1, 2 and 3 threads and as the unsplit call, torch's numbers,
and the BLAS thread count restored after every split."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads, conv



def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# (a shape, b shape): batched on both sides, a shared left or right operand, a batch of one
# broadcast against a batch, a grouped 4-d batch, and a batch of two
BMM = [((36, 5, 7), (36, 7, 3)), ((6, 7), (9, 7, 4)), ((9, 5, 7), (7, 4)),
       ((1, 5, 7), (6, 7, 4)), ((4, 2, 3, 5), (2, 5, 6)), ((2, 3, 4), (2, 4, 5))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", BMM)
def test_bmm_same_bits_as_one_call(threaded, monkeypatch, dtype, sa, sb):
    a, b = _rand(sa, dtype, 1), _rand(sb, dtype, 2)
    want = np.matmul(a, b)
    for split in (False, True):
        monkeypatch.setattr(conv, "_BMM_SPLIT", split)
        for k in (1, 2, 3):
            threaded(k)
            got = conv._matmul(np, a, b)
            assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("algo", ["winograd4", "winograd", "im2col", "fold"])
def test_conv_split_products_same_bits_and_torch(threaded, monkeypatch, dtype, algo):
    # batches of products in F (per-sample im2col GEMMs), T and W, on 1-3 threads, and
    # against torch with each split switched off and on
    monkeypatch.setattr(conv, "_FORCE", algo)
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 4096)  # im2col in blocks of samples too
    x, w = _rand((5, 6, 8, 8), dtype, 3), _rand((7, 6, 3, 3), dtype, 4) * 0.3
    g0 = _rand((5, 7, 8, 8), dtype, 5)

    def run(mod):
        xt, wt = mod.tensor(x, requires_grad=True), mod.tensor(w, requires_grad=True)
        y = mod.nn.functional.conv2d(xt, wt, padding=1)
        y.backward(mod.tensor(g0))
        return [t.detach().numpy().copy() for t in (y, xt.grad, wt.grad)]
    ref = None
    for split in (False, True):
        monkeypatch.setattr(conv, "_BMM_SPLIT", split)
        for k in (1, 2, 3):
            threaded(k)
            got = run(ember)
            if ref is None:
                ref = got
            for a, b in zip(got, ref):
                assert np.array_equal(a, b)
    tol = 1e-4 if dtype == "float32" else 1e-10
    for a, b in zip(ref, run(torch)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_rows_runs_blas_on_one_thread_and_restores_it(threaded):
    blas = _threads._blas_threads()
    if blas is None:
        pytest.skip("NumPy is not linked against its bundled OpenBLAS")  # another BLAS
    get, put = blas
    before = get()
    put(2)
    try:
        seen = []
        threaded(2)
        _threads.rows(lambda lo, hi: seen.append(get()), 8, 1 << 30, blas1=True)
        assert seen and set(seen) == {1}
        assert get() == 2
        seen.clear()  # not asked for: the process's count is left alone (a user's may change it)
        _threads.rows(lambda lo, hi: seen.append(get()), 8, 1 << 30)
        assert seen and set(seen) == {2}

        def boom(lo, hi):
            raise ValueError("part failed")
        with pytest.raises(ValueError, match="part failed"):
            _threads.rows(boom, 8, 1 << 30, blas1=True)
        assert get() == 2
        threaded(1)  # one thread: no split, BLAS left as it is
        seen.clear()
        _threads.rows(lambda lo, hi: seen.append(get()), 8, 1 << 30, blas1=True)
        assert seen == [2]
    finally:
        put(before)
