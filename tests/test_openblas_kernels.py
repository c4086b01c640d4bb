"""ember's own OpenBLAS for large float32 GEMMs (NOTE [ BLAS kernels ] in ember/ops/_openblas.py):
the loader (missing wheel, EMBER_BLAS, the CPU table, the core type, the environment left as it
was, the thread count), the GEMM wrapper against np.matmul on odd shapes, strides, layouts and
dtypes, and linear/matmul/compiled training through it against eager and torch."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember
from ember.ops import _blas, _openblas, _threads

HAVE_WHEEL = _openblas.library_path() is not None
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL, reason="the blas extra (scipy-openblas32) "
                                 "is not installed")


@pytest.fixture
def fresh(monkeypatch):
    """A fresh decision, one thread, ``EMBER_BLAS`` as the test sets it; restored after."""
    monkeypatch.delenv(_openblas.ENV, raising=False)
    _openblas.reset()
    _threads.set_count(1)
    yield monkeypatch
    _threads.set_count(None)
    _openblas.reset()


@pytest.fixture
def own(fresh):
    """The wheel's GEMM, on whatever this CPU is (``EMBER_BLAS=openblas``)."""
    if not HAVE_WHEEL:
        pytest.skip("the blas extra (scipy-openblas32) is not installed")
    fresh.setenv(_openblas.ENV, "openblas")
    f = _openblas.sgemm()
    assert f is not None
    return f


def _f64(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


def _close(r, a, b):
    """float32 rounding of a K-term sum: within K ulps of |a| |b|, as any BLAS's order."""
    bound = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    k = a.shape[1]
    assert r.dtype == np.float32
    assert np.all(np.abs(r - _f64(a, b)) <= 2 * k * np.finfo(np.float32).eps * bound + 1e-30)


def _layout(x, kind):
    if kind == "F":
        return np.asfortranarray(x)
    if kind == "rows":  # every other row of a larger array: a leading dimension > the width
        big = np.zeros((2 * x.shape[0], x.shape[1] + 3), x.dtype)
        big[::2, :x.shape[1]] = x
        return big[::2, :x.shape[1]]
    if kind == "T":  # the transpose of a padded C array: unit stride down the columns
        big = np.zeros((x.shape[1], x.shape[0] + 5), x.dtype)
        big[:, :x.shape[0]] = x.T
        return big[:, :x.shape[0]].T
    return np.ascontiguousarray(x)


SHAPES = [(2, 2, 2), (2, 3, 2), (7, 13, 5), (64, 1, 3), (1, 30, 40), (40, 30, 1), (129, 257, 65)]
LAYOUTS = ["C", "F", "rows", "T"]


@needs_wheel
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
def test_wrapper_equals_matmul_on_layouts(own, m, k, n, la, lb):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a0 = rng.standard_normal((m, k), dtype=np.float32)
    b0 = rng.standard_normal((k, n), dtype=np.float32)
    a, b = _layout(a0, la), _layout(b0, lb)
    for out in (None, np.full((m, n), np.nan, np.float32),
                np.full((m, n), np.nan, np.float32, order="F"),
                np.full((m, n + 4), np.nan, np.float32)[:, :n]):
        r = own(a, b, out)
        if min(m, k, n) < 2:  # a GEMV or an outer product: NumPy's
            assert r is None
            continue
        assert r is not None and (out is None or r is out)
        assert r.flags.c_contiguous or out is not None
        _close(r, a0, b0)
        # the routed entry point returns the same array
        got = _blas.matmul_into(np, a, b, None if out is None else out)
        _close(got, a0, b0)


@needs_wheel
def test_wrapper_declines_what_blas_cannot_take(own):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 6), dtype=np.float32)
    b = rng.standard_normal((6, 4), dtype=np.float32)
    out = np.empty((8, 4), np.float32)
    assert own(a, b, out) is out
    declined = [
        (a[:, ::2], b[::2], out),                              # no unit stride
        (a[::-1], b, out),                                     # negative stride
        (a.astype(np.float64), b.astype(np.float64), None),    # float64: NumPy's DGEMM
        (a.astype(">f4"), b, None),                            # byte-swapped
        (a, b, np.empty((8, 4), np.float64)),                  # out of another dtype
        (a, b, np.empty((4, 8), np.float32)),                  # out of another shape
        (a, b, np.empty((8, 8), np.float32)[:, ::2]),          # out without unit stride
        (a, b[:5], None),                                      # inner sizes differ
        (a.astype(np.int32), b.astype(np.int32), None),
        (ember.tensor(a), b, None),                            # not an ndarray
        (a[None], b, None),                                    # 3-d
    ]
    ro = np.empty((8, 4), np.float32)
    ro.flags.writeable = False
    declined.append((a, b, ro))
    mis = np.frombuffer(bytearray(a.nbytes + 1), np.uint8)[1:].view(np.float32).reshape(8, 6)
    mis[...] = a
    declined.append((mis, b, None))                          # not float-aligned
    for x, y, o in declined:
        assert own(x, y, o) is None
    # an out that overlaps an operand: BLAS would read what it wrote
    sq = rng.standard_normal((6, 6), dtype=np.float32)
    assert own(sq, sq, sq) is None
    want = sq @ sq
    np.testing.assert_array_equal(_blas.matmul_into(np, sq, sq, sq), want)


@needs_wheel
def test_matmul_into_keeps_numpys_errors_and_small_products(own, monkeypatch):
    a = np.ones((3, 4), np.float32)
    calls = []
    monkeypatch.setattr(_openblas, "sgemm", lambda: calls.append(1) or own)
    with pytest.raises(ValueError):
        _blas.matmul_into(np, a, np.ones((5, 2), np.float32))
    np.testing.assert_array_equal(_blas.matmul_into(np, a, a.T), a @ a.T)
    assert calls == []  # below OWN_MIN_MACS the wheel is not asked
    big = np.ones((256, 256), np.float32)
    _blas.matmul_into(np, big, big)
    assert calls == [1]


def test_missing_wheel_is_numpys_path_silently(fresh):
    fresh.setattr(_openblas, "library_path", lambda: None)
    fresh.setenv(_openblas.ENV, "openblas")
    assert _openblas.load() is None and _openblas.sgemm() is None
    rng = np.random.default_rng(2)
    a = rng.standard_normal((256, 200), dtype=np.float32)
    b = rng.standard_normal((200, 300), dtype=np.float32)
    np.testing.assert_array_equal(_blas.matmul_into(np, a, b), np.matmul(a, b))


def test_library_path_without_the_package(fresh):
    import importlib.util
    real = importlib.util.find_spec
    fresh.setattr(importlib.util, "find_spec",
                  lambda name, *a: None if name == "scipy_openblas32" else real(name, *a))
    assert _openblas.library_path() is None


@needs_wheel
def test_env_var_turns_it_on_and_off(fresh):
    # unset: the default, NumPy's (NOTE [ BLAS kernels ]: why), even with the wheel installed
    assert _openblas.DEFAULT == "numpy"
    assert _openblas.load() is None and _openblas.sgemm() is None
    for mode in ("numpy", "NumPy ", "", "bogus"):
        _openblas.reset()
        fresh.setenv(_openblas.ENV, mode)
        assert _openblas.load() is None and _openblas.sgemm() is None
    _openblas.reset()
    fresh.setenv(_openblas.ENV, "openblas")
    assert _openblas.load() is not None and _openblas.sgemm() is not None
    _openblas.reset()
    fresh.setenv(_openblas.ENV, "own")  # only where the table names this CPU, with its core;
    lib = _openblas.load()  # one library per process: its core is the first load's (above)
    assert lib is None or _openblas.corename(lib) == _openblas._core_for_cpu()


@pytest.mark.parametrize("cpu,numpy_core,want", [
    (("AuthenticAMD", 25, True), "SkylakeX", "Haswell"),      # Zen 4, measured
    (("AuthenticAMD", 25, True), "Cooperlake", "Haswell"),
    (("AuthenticAMD", 25, False), "Zen", None),               # Zen 3: NumPy's AVX2 already
    (("AuthenticAMD", 26, True), "SkylakeX", None),           # Zen 5: not measured
    (("GenuineIntel", 6, True), "SkylakeX", None),            # Intel: its own kernels
    (("AuthenticAMD", 25, True), None, None),                 # NumPy on another BLAS
    (None, "SkylakeX", None),                                 # no /proc/cpuinfo
])
def test_cpu_table(fresh, cpu, numpy_core, want):
    fresh.setattr(_openblas, "cpu", lambda: cpu)
    fresh.setattr(_openblas, "numpy_corename", lambda: numpy_core)
    assert _openblas._core_for_cpu() == want
    if want is None:  # "own" on a CPU the table does not name: nothing loaded
        fresh.setenv(_openblas.ENV, "own")
        opened = []
        fresh.setattr(_openblas, "_open", lambda core: opened.append(core))
        assert _openblas.load() is None and opened == []


def test_cpu_reads_this_machine():
    c = _openblas.cpu()
    if sys.platform.startswith("linux"):
        vendor, family, avx512 = c
        assert isinstance(vendor, str) and family > 0 and isinstance(avx512, bool)


@needs_wheel
def test_not_loaded_or_used_at_two_threads(fresh):
    fresh.setenv(_openblas.ENV, "openblas")
    _threads.set_count(2)
    assert _openblas.sgemm() is None and "lib" not in _openblas._state  # undecided, unloaded
    _threads.set_count(1)
    f = _openblas.sgemm()
    a = np.ones((300, 300), np.float32)
    assert f(a, a) is not None
    _threads.set_count(2)  # decided on, but two pools would fight: NumPy's
    assert f(a, a) is None
    _threads.set_count(1)
    lib = _openblas.load()
    lib.scipy_openblas_set_num_threads(2)  # as threadpoolctl would
    try:
        assert lib.scipy_openblas_get_num_threads() == 2 and f(a, a) is None
    finally:
        lib.scipy_openblas_set_num_threads(1)
    assert f(a, a) is not None


CHILD = r"""
import os, numpy as np
from ember.ops import _openblas, _threads
lib = _openblas.load()
print(lib is not None and _openblas.corename(lib), _openblas.numpy_corename(),
      os.environ.get("OPENBLAS_CORETYPE"), os.environ.get("OPENBLAS_NUM_THREADS"),
      lib is not None and lib.scipy_openblas_get_num_threads(), _openblas._core_for_cpu())
"""


def _child(env):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "EMBER_BLAS"))}
    e.update(env)
    r = subprocess.run([sys.executable, "-c", CHILD], env=e, capture_output=True, text=True,
                       check=True, timeout=60)
    return r.stdout.split()


@needs_wheel
def test_load_picks_the_core_and_restores_the_environment():
    # unset: NumPy's, nothing loaded
    assert _child({})[0] == "False"
    # own: the table's core on a CPU it names, nothing elsewhere; the variables as they were
    got, numpy_core, coretype, threads, own_threads, table = _child(
        {"EMBER_BLAS": "own", "OPENBLAS_NUM_THREADS": "2"})
    assert coretype == "None" and threads == "2"
    if table == "None":
        assert got == "False"
    else:
        assert got == table and own_threads == "1"  # loaded with one thread whatever was set
        assert numpy_core != table  # NumPy's own choice is untouched
    # EMBER_BLAS=openblas: loaded on any CPU with its own choice; a user's core type is kept
    got, numpy_core, coretype, threads, own_threads, _ = _child(
        {"EMBER_BLAS": "openblas", "OPENBLAS_CORETYPE": "Haswell"})
    assert got == "Haswell" and numpy_core == "Haswell" and coretype == "Haswell"
    assert threads == "None" and own_threads == "1"


# ---- through ember's ops: eager and compiled, against torch

def _pair(shape, rng, grad=True):
    a = rng.standard_normal(shape, dtype=np.float32)
    return ember.tensor(a, requires_grad=grad), torch.tensor(a, requires_grad=grad)


@needs_wheel
@pytest.mark.parametrize("on", [False, True])
def test_linear_and_matmul_equal_torch(fresh, on):
    fresh.setenv(_openblas.ENV, "openblas" if on else "numpy")
    rng = np.random.default_rng(3)
    x, tx = _pair((128, 784), rng)
    w, tw = _pair((512, 784), rng)
    b, tb = _pair((512,), rng)
    m, tm = _pair((512, 300), rng)
    y = ember.nn.functional.linear(x, w, b) @ m
    ty = torch.nn.functional.linear(tx, tw, tb) @ tm
    g = rng.standard_normal(ty.shape, dtype=np.float32)
    y.backward(ember.tensor(g))
    ty.backward(torch.tensor(g))
    assert (_openblas._state.get("sgemm") is not None) == on
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-3)
    for e, t in ((x, tx), (w, tw), (b, tb), (m, tm)):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-3)


@needs_wheel
def test_compiled_mlp_training_equals_eager_and_torch(fresh):
    fresh.setenv(_openblas.ENV, "openblas")
    rng = np.random.default_rng(4)
    sizes = [(784, 512), (512, 256), (256, 10)]
    ws = [(rng.standard_normal((o, i), dtype=np.float32) * i ** -0.5,
           rng.standard_normal(o, dtype=np.float32) * 0.1) for i, o in sizes]
    x = rng.standard_normal((128, 784), dtype=np.float32)
    t = rng.integers(0, 10, 128)

    def model(mod):
        layers = []
        for (i, o), (w, b) in zip(sizes, ws):
            lin = mod.nn.Linear(i, o)
            with mod.no_grad():
                lin.weight.copy_(mod.tensor(w))
                lin.bias.copy_(mod.tensor(b))
            layers += [lin, mod.nn.ReLU()]
        return mod.nn.Sequential(*layers[:-1])

    def train(mod, compiled):
        net = model(mod)
        loss_fn = mod.nn.CrossEntropyLoss()
        f = lambda a, b: loss_fn(net(a), b)  # noqa: E731
        if compiled:
            f = mod.compile(f)
        xs, ts = mod.tensor(x), mod.tensor(t)
        for _ in range(5):
            loss = f(xs, ts)
            loss.backward()
            with mod.no_grad():
                for p in net.parameters():
                    p.add_(p.grad, alpha=-0.05)
            net.zero_grad()
        return [p.detach().numpy().copy() for p in net.parameters()]

    ember.compiler.reset()
    routed = []
    real = _openblas._caller

    def counting(lib):
        f = real(lib)
        return lambda a, b, out=None: routed.append(1) or f(a, b, out)
    fresh.setattr(_openblas, "_caller", counting)
    compiled = train(ember, True)
    assert len(routed) >= 25  # the five large products of each step went to the wheel
    eager = train(ember, False)
    ref = train(torch, False)
    for c, e, r in zip(compiled, eager, ref):
        # no F-ordered chains while the wheel routes (its w @ x.T is not (x @ w.T).T's bits):
        # the compiled products are eager's, so the trajectory is eager's bit for bit
        np.testing.assert_array_equal(c, e)
        np.testing.assert_allclose(c, r, rtol=1e-4, atol=1e-5)


@needs_wheel
def test_active_follows_mode_and_threads(fresh):
    assert not _openblas.active()  # the default: NumPy's
    _openblas.reset()
    fresh.setenv(_openblas.ENV, "openblas")
    assert _openblas.active()
    _threads.set_count(2)
    assert not _openblas.active()
