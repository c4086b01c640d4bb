"""Convolution on one OpenBLAS thread, batch norm's GEMVs under OpenBLAS's threading bound,
while the machine is loaded (NOTE [ BLAS under load ] in ember/ops/_threads.py): when
``loaded()`` says so, the count set inside and restored after (also on an exception; never on
one thread, in a worker or nested; another thread's limit set meanwhile kept), and the same
bits as the threaded BLAS path for every algorithm, float32 and float64, and torch's numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads, conv


@pytest.fixture(autouse=True)
def fresh_load(monkeypatch):
    """Every ``loaded()`` reads the average again: an answer cached by an earlier test (within
    ``_LOAD_EVERY`` of it, under the real bound) would override the bound a test sets."""
    monkeypatch.setattr(_threads, "_load", {"t": None, "on": False})
    monkeypatch.setattr(_threads, "_LOAD_EVERY", 0.0)


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture
def blas2(threaded):
    """NumPy's OpenBLAS on two threads and ember's ops on two (restored afterwards)."""
    fns = _threads._blas_threads()
    if fns is None:
        pytest.skip("NumPy is not linked against its bundled OpenBLAS")  # another BLAS
    before = fns[0]()
    fns[1](2)
    threaded(2)
    yield fns
    fns[1](before)


@pytest.fixture
def load(monkeypatch):
    """Set the load average ``loaded()`` reads (per CPU: the fixture's value times the CPUs)."""
    box = {"avg": 0.0}
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (box["avg"], 0.0, 0.0))
    monkeypatch.setattr(_threads, "_load", {"t": None, "on": False})

    def set_avg(per_cpu):
        box["avg"] = per_cpu * _threads._cpus()
        _threads._load["t"] = None  # read again at the next call
    return set_avg


def test_loaded_bound_and_switches(monkeypatch, load):
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 2.0)
    load(1.9)
    assert not _threads.loaded()
    load(2.0)
    assert _threads.loaded()
    load(0.5)
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", None)  # never
    assert not _threads.loaded()
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)  # always (tests)
    load(0.0)
    assert _threads.loaded()


def test_loaded_reads_the_average_at_most_every_interval(monkeypatch, load):
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 2.0)
    monkeypatch.setattr(_threads, "_LOAD_EVERY", 3600.0)
    load(3.0)
    assert _threads.loaded()
    monkeypatch.setattr(_threads.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert _threads.loaded()  # the cached answer until the interval has passed
    monkeypatch.setattr(_threads, "_LOAD_EVERY", 0.0)
    assert not _threads.loaded()


def test_loaded_without_getloadavg(monkeypatch, load):
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 2.0)

    def missing():
        raise OSError("no load average")
    monkeypatch.setattr(_threads.os, "getloadavg", missing)
    assert not _threads.loaded()


def test_blas_one_sets_and_restores(blas2, monkeypatch, threaded):
    get, put = blas2
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
    with _threads.blas_one():
        assert get() == 1
        with _threads.blas_one():  # nested: leaves the outer one's setting alone
            assert get() == 1
        assert get() == 1
    assert get() == 2
    with _threads.blas_one():
        blas2[1](3)  # a limit another thread sets meanwhile is not overwritten
    assert get() == 3
    blas2[1](2)
    with pytest.raises(ValueError, match="inside"):
        with _threads.blas_one():
            raise ValueError("inside")
    assert get() == 2
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", None)  # not loaded: nothing set
    with _threads.blas_one():
        assert get() == 2
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
    threaded(1)  # one ops thread (set_num_threads(1)): the BLAS count is the user's
    with _threads.blas_one():
        assert get() == 2
    threaded(2)
    monkeypatch.setattr(_threads._local, "worker", True, raising=False)  # an ops worker's part
    with _threads.blas_one():
        assert get() == 2
    monkeypatch.setattr(_threads._local, "worker", False)
    with _threads.blas_one():
        assert get() == 1
    assert get() == 2


def test_conv_and_batch_norm_run_on_one_blas_thread_when_loaded(blas2, monkeypatch):
    get = blas2[0]
    seen = {}
    for name in ("_conv_fwd", "_conv_tr", "_conv_wgrad"):
        fn = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *a, _f=fn, _n=name, **k: (
            seen.setdefault(_n, get()), _f(*a, **k))[1])
    from ember.ops import normalization as norm
    for name in ("_normalized", "_normalize_grads"):
        fn = getattr(norm, name)
        monkeypatch.setattr(norm, name, lambda *a, _f=fn, _n=name, **k: (
            seen.setdefault(_n, get()), _f(*a, **k))[1])
    calls = []
    sum_ = norm._chan_sum
    monkeypatch.setattr(norm, "_chan_sum", lambda *a: (calls.append(get()), sum_(*a))[1])
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
    x = ember.tensor(_rand((4, 8, 6, 6), "float32"), requires_grad=True)
    w = ember.tensor(_rand((8, 8, 3, 3), "float32"), requires_grad=True)
    bn = ember.nn.BatchNorm2d(8)
    bn(ember.nn.functional.conv2d(x, w, padding=1)).sum().backward()
    # batch norm leaves the count alone (a user's limit set meanwhile in another thread: the
    # review of 3540742); its GEMVs are cut under OpenBLAS's threading bound instead
    assert seen == {"_conv_fwd": 1, "_conv_tr": 1, "_conv_wgrad": 1, "_normalized": 2,
                    "_normalize_grads": 2}
    assert calls and set(calls) == {2}
    assert get() == 2


# (x shape, w shape, stride, padding, algorithm): Winograd F(4x4)/F(2x2), im2col, fold (batch
# folded, small map), a strided layer, ResNet-18's stem
CASES = [((4, 16, 8, 8), (16, 16, 3, 3), 1, 1, "winograd4"),
         ((4, 16, 8, 8), (16, 16, 3, 3), 1, 1, "winograd"),
         ((4, 16, 8, 8), (24, 16, 3, 3), 1, 1, "im2col"),
         ((6, 64, 2, 2), (64, 64, 3, 3), 1, 1, "fold"),
         ((4, 16, 8, 8), (32, 16, 3, 3), 2, 1, None),
         ((2, 3, 32, 32), (16, 3, 7, 7), 2, 3, None)]


@pytest.mark.parametrize("shape", [(32, 64, 32, 32), (32, 64, 16, 16), (4, 128, 8, 8),
                                   (1, 640, 24, 24)])
def test_batch_norm_gemvs_unthreaded_when_loaded(blas2, monkeypatch, shape):
    # every channel-sum GEMV below OpenBLAS's threading bound (M * N < 460,800) when loaded,
    # the same bits as the blocks it takes otherwise; ResNet-18's stem and first stage sat just
    # above it (32 * 16384 = 524,288)
    from ember.ops import normalization as norm
    n, c = shape[:2]
    s = shape[2] * shape[3]
    for dtype in ("float32", "float64"):
        a = _rand((n, c * s), dtype, 4)
        ones = np.ones(s, dtype)
        sizes = []
        real = np.matmul
        monkeypatch.setattr(np, "matmul", lambda p, q, *r, **k: (
            sizes.append(p.size * (q.shape[-1] if q.ndim > 1 else 1)), real(p, q, *r, **k))[1])
        monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
        got = norm._chan_sum(np, a, c, s, ones)
        assert sizes and max(sizes) < norm._GEMV_THREADED
        del sizes[:]
        monkeypatch.setattr(_threads, "LOADED_PER_CPU", None)
        want = norm._chan_sum(np, a, c, s, ones)
        monkeypatch.setattr(np, "matmul", real)
        assert np.array_equal(got, want)
        np.testing.assert_allclose(got, a.reshape(n, c, s).astype("float64").sum((0, 2)),
                                   rtol=1e-4 if dtype == "float32" else 1e-12)


def _step(mod, x, w, stride, padding):
    """conv -> batch norm -> relu -> sum, backward: output, both input grads, BN's grads."""
    xt = mod.tensor(x, requires_grad=True)
    wt = mod.tensor(w, requires_grad=True)
    bn = mod.nn.BatchNorm2d(w.shape[0]).to(getattr(mod, x.dtype.name))
    y = mod.relu(bn(mod.nn.functional.conv2d(xt, wt, stride=stride, padding=padding)))
    (y * mod.tensor(_rand(tuple(y.shape), x.dtype.name, 9))).sum().backward()
    return [t.detach().numpy().copy() for t in (y, xt.grad, wt.grad, bn.weight.grad,
                                                bn.bias.grad, bn.running_var)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs,ws,stride,padding,algo", CASES)
def test_loaded_path_same_bits_and_torch(blas2, monkeypatch, dtype, xs, ws, stride, padding,
                                         algo):
    monkeypatch.setattr(conv, "_FORCE", algo)
    x, w = _rand(xs, dtype, 1), _rand(ws, dtype, 2) * 0.2
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", None)
    ref = _step(ember, x, w, stride, padding)
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
    got = _step(ember, x, w, stride, padding)
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    tol = 2e-4 if dtype == "float32" else 1e-10
    for a, b in zip(got, _step(torch, x, w, stride, padding)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_products_split_only_when_loaded(blas2, monkeypatch):
    # conv._bmm with _BMM_SPLIT = None (the default) splits by product exactly when loaded
    calls = []
    real = _threads.rows
    monkeypatch.setattr(_threads, "rows", lambda *a, **k: (calls.append(k.get("blas1")),
                                                          real(*a, **k))[1])
    monkeypatch.setattr(conv, "_BMM_SPLIT", None)
    a, b = _rand((36, 5, 7), "float32", 1), _rand((36, 7, 3), "float32", 2)
    want = np.matmul(a, b)
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", None)
    assert np.array_equal(conv._matmul(np, a, b), want) and calls == []
    monkeypatch.setattr(_threads, "LOADED_PER_CPU", 0.0)
    assert np.array_equal(conv._matmul(np, a, b), want) and calls == [True]
