"""ember/ops/_threads.py (NOTE [ Threads ]): row ranges split over worker threads; the ops
that use it (batch norm's passes, convolution's gathers) give the same bits threaded and not,
and the same numbers as torch."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

import ember
from ember.ops import _threads, conv
from opcheck import check, rand

_MIN_NUMEL = _threads.MIN_NUMEL  # the real threshold (the fixture sets it to 0)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("n,align", [(1, 1), (5, 1), (32, 1), (33, 16), (100, 16), (7, 16)])
def test_rows_cover_the_range_once(threaded, k, n, align):
    threaded(k)
    seen = np.zeros(n, int)
    names = set()
    lock = threading.Lock()

    def fn(lo, hi):
        assert lo % align == 0 and lo < hi
        with lock:
            seen[lo:hi] += 1
            names.add(threading.current_thread().name)

    _threads.rows(fn, n, 1 << 30, align)
    assert (seen == 1).all()
    assert len(names) <= k


def test_parts_go_to_whichever_thread_is_free(threaded):
    # the caller's first part is slow: the worker claims the rest, and the caller returns
    # only after every part has run
    threaded(2)
    names = []
    lock = threading.Lock()
    main = threading.current_thread()
    slept = []

    def fn(lo, hi):
        if threading.current_thread() is main and not slept:
            slept.append(lo)
            # wait (not a fixed sleep: a loaded machine may take long to wake the worker)
            # until the worker has claimed every other part; a static split never would
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with lock:
                    if sum(name != "MainThread" for _, name in names) == 7:
                        break
                time.sleep(0.005)
        with lock:
            names.append((lo, threading.current_thread().name))

    _threads.rows(fn, 32, 1 << 30)
    assert sorted(lo for lo, _ in names) == list(range(0, 32, 4))  # 2 threads x 4 parts
    assert {name for _, name in names} == {"MainThread", "ember-ops-0"}
    assert sum(name != "MainThread" for _, name in names) == 7


def test_serial_below_threshold_or_one_thread(threaded, monkeypatch):
    calls = []
    threaded(1)
    _threads.rows(lambda lo, hi: calls.append((lo, hi)), 64, 1 << 30)
    threaded(2)
    monkeypatch.setattr(_threads, "MIN_NUMEL", 100)
    _threads.rows(lambda lo, hi: calls.append((lo, hi)), 64, 99)
    assert calls == [(0, 64), (0, 64)]


def test_worker_exception_reaches_the_caller_after_all_ranges(threaded):
    threaded(2)
    done = []

    def fn(lo, hi):
        done.append(lo)
        if lo > 0:
            raise ValueError("bad range")

    with pytest.raises(ValueError, match="bad range"):
        _threads.rows(fn, 10, 1 << 30)
    assert sorted(done) == list(range(0, 10, 2))  # every part ran
    # the pool still works afterwards
    out = np.zeros(10)
    _threads.rows(lambda lo, hi: out.__setitem__(slice(lo, hi), 1), 10, 1 << 30)
    assert out.sum() == 10


def test_nested_calls_finish(threaded):
    # a part that splits again: on the worker it runs serially, on the caller it may hand
    # parts out again; every inner range is covered once and nothing waits on itself
    threaded(2)
    inner = []
    lock = threading.Lock()

    def fn(lo, hi):
        def part(a, b):
            with lock:
                inner.append((lo, a, b))
        _threads.rows(part, 8, 1 << 30)

    _threads.rows(fn, 16, 1 << 30)
    for lo in range(0, 16, 2):
        covered = sorted((a, b) for l0, a, b in inner if l0 == lo)
        assert covered[0][0] == 0 and covered[-1][1] == 8
        assert all(p[1] == q[0] for p, q in zip(covered, covered[1:]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_child_starts_its_own_workers(threaded):
    threaded(2)
    _threads.rows(lambda lo, hi: None, 4, 1 << 30)  # workers exist in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker threads are gone
        out = np.zeros(8)
        try:
            _threads.rows(lambda lo, hi: out.__setitem__(slice(lo, hi), 1), 8, 1 << 30)
            os.write(w, b"ok" if out.sum() == 8 else b"bad")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 8) == b"ok"
    os.close(r)


def test_count_follows_set_num_threads(monkeypatch):
    from ember import _runtime
    monkeypatch.setattr(_runtime.state, "num_threads", 3)
    assert _threads.num_threads() == 3
    monkeypatch.setattr(_runtime.state, "num_threads", None)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "5")
    _threads.set_count(None)
    assert _threads.num_threads() == 5
    _threads.set_count(None)


# ---- the users give the same bits threaded and not -------------------------------------------

def _bn_step(x0, g0, affine, training):
    ember.manual_seed(0)
    bn = (ember.nn.BatchNorm2d if x0.ndim == 4 else ember.nn.BatchNorm1d)(x0.shape[1],
                                                                       affine=affine)
    bn.to(ember.float64 if x0.dtype == np.float64 else ember.float32)
    if affine:
        with ember.no_grad():
            bn.weight.uniform_()
            bn.bias.uniform_()
    bn.train(training)
    x = ember.tensor(x0, requires_grad=True)
    y = bn(x)
    y.backward(ember.tensor(g0))
    out = [y, x.grad, bn.running_mean, bn.running_var]
    if affine:
        out += [bn.weight.grad, bn.bias.grad]
    return [a.detach().numpy().copy() for a in out]


@pytest.mark.parametrize("shape", [(8, 3, 5, 4), (33, 4, 3, 3), (2, 5, 6)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_bit_identical(threaded, shape, dtype, affine):
    rng = np.random.default_rng(1)
    x0 = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    g0 = rng.standard_normal(shape).astype(dtype)
    threaded(1)
    ref = _bn_step(x0, g0, affine, True)
    for k in (2, 3):
        threaded(k)
        got = _bn_step(x0, g0, affine, True)
        for a, b in zip(got, ref):
            assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_threaded_matches_torch(threaded, dtype):
    threaded(2)
    check(lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, training=True),
          None, rand(6, 3, 4, 5), rand(3), rand(3), dtypes=(dtype,))


def _conv_step(x0, w0, g0, **kw):
    x = ember.tensor(x0, requires_grad=True)
    w = ember.tensor(w0, requires_grad=True)
    y = ember.nn.functional.conv2d(x, w, **kw)
    y.backward(ember.tensor(g0))
    return [a.detach().numpy().copy() for a in (y, x.grad, w.grad)]


@pytest.mark.parametrize("algo", ["im2col", "fold", "winograd", "winograd4"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_bit_identical(threaded, monkeypatch, algo, dtype):
    monkeypatch.setattr(conv, "_FORCE", algo)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((5, 4, 9, 7)).astype(dtype)
    w0 = rng.standard_normal((6, 4, 3, 3)).astype(dtype)
    g0 = rng.standard_normal((5, 6, 9, 7)).astype(dtype)
    threaded(1)
    ref = _conv_step(x0, w0, g0, padding=1)
    threaded(2)
    got = _conv_step(x0, w0, g0, padding=1)
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)
    check(lambda m, x, w: m.nn.functional.conv2d(x, w, padding=1), None, x0, w0,
          dtypes=(dtype,))


def test_bench_block_bit_identical(threaded):
    # the sizes the threshold lets through in the benchmarks: a ResNet block's 2M-element
    # passes, threaded at the real threshold
    _threads.MIN_NUMEL = _MIN_NUMEL
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    w0 = (rng.standard_normal((64, 64, 3, 3)) / 24).astype(np.float32)
    g0 = rng.standard_normal((32, 64, 32, 32)).astype(np.float32)
    assert x0.size >= _MIN_NUMEL
    res = []
    for k in (1, 2):
        threaded(k)
        res.append(_conv_step(x0, w0, g0, padding=1) + _bn_step(x0, g0, True, True))
    for a, b in zip(*res):
        assert np.array_equal(a, b)
    t = torch.nn.functional.conv2d(torch.from_numpy(x0), torch.from_numpy(w0), padding=1)
    np.testing.assert_allclose(res[1][0], t.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fn,shape,args", [
    ("group_norm", (6, 8, 5, 7), (4,)),
    ("layer_norm", (6, 9, 40), ((9, 40),)),
])
def test_other_norms_bit_identical(threaded, fn, shape, args):
    # their weighted row sums go through the same threaded per-row dot products
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal(shape).astype(np.float32)
    g0 = rng.standard_normal(shape).astype(np.float32)
    res = []
    for k in (1, 2):
        threaded(k)
        x = ember.tensor(x0, requires_grad=True)
        getattr(ember.nn.functional, fn)(x, *args).backward(ember.tensor(g0))
        res.append(x.grad.numpy().copy())
    assert np.array_equal(*res)
