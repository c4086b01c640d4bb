"""ember's own OpenBLAS for large float32 GEMMs, where it has faster kernels than NumPy's.

NOTE [ BLAS kernels ]
PyTorch ships its own BLAS and picks kernels per CPU; ember's products run on the OpenBLAS
NumPy bundles, whose runtime dispatch (DYNAMIC_ARCH) gives an AMD Zen 4 its SkylakeX
(AVX-512) kernels.  Its Haswell (AVX2) kernels are faster there for float32 GEMMs, but the
core type is read once, when NumPy loads the library, and changing it would change the user's
NumPy results.  So with the ``blas`` extra (``pip install 'ember[blas]'``: the
``scipy-openblas32`` wheel) ember loads a second, separate OpenBLAS with ``ctypes``, with
``OPENBLAS_CORETYPE`` set in the environment only around the load (the library reads it in
its load-time constructor; the variable is restored at once) and checks the core type it got
(``openblas_get_corename``).  Measured (thread CPU, best of 40-60 calls taken in warm blocks
of 4, the two libraries' blocks alternated: a library called right after the other finds the
operands in cache, which biased a first one-call-each table by 5-10%; one thread, the machine
loaded by others; NumPy 2.4's OpenBLAS 0.3.31 SkylakeX against the wheel's 0.3.34 Haswell;
(M, K, N) and the operands' layouts):

    float32 mlp_step_nn's: (512, 784, 128) CF 1,077 -> 1,005 us; (128, 784, 512) CF 1,148 ->
              1,010 (eager's x @ w.T); (256, 128, 512) CF 360 -> 322; (256, 512, 128) CC
              328 -> 321; (512, 128, 784) CC 967 -> 942; (128, 784, 512)'s eight layouts
              (operands, result) 959-999 us on the wheel against 996-1,165 on NumPy's
            gpt_step's: (1024, 128, 512) CF 1,347 -> 1,287; (1024, 512, 128) CF 1,386 ->
              1,296; (128, 1024, 512) FC 1,424 -> 1,419 (0.93-1.0)
            conv im2col: (64, 576, 3136) 2,874 -> 2,591; (256, 2304, 196) 2,630 -> 2,578
              (0.90-0.98)
            LeNet's ~3 M MACs: 0.94-1.03; (6, 25, 784) 4.2 -> 12 us: a small product pays the
              ctypes call (~7-10 us), so only products of at least ``_blas.OWN_MIN_MACS``
              (M K N) go to the wheel
    float64 0.90-1.07 on the same shapes (one-call table): no gain, DGEMM stays on NumPy's
    the wheel with its own choice (SkylakeX): 0.91-1.07 (one-call table), NumPy's times: it
    is the kernels, not the library's version

mlp_step_nn compiled (one process, the step with NumPy's and the wheel's GEMMs alternated with
torch's in shuffled order, thread time, one thread, load 4-5.5): ember/torch medians
0.920/0.893/0.906 -> 0.895/0.857/0.858 with the F-ordered chains, and in the shipped form
(chains off, below) 0.907/0.906/0.898 -> 0.891/0.878/0.896 (chains on 0.881/0.869/0.883);
``python -m bench.wl_compile --only mlp_step_nn`` 0.91-0.92 -> 0.87-0.90 (3 process pairs; at
load 6, 0.89-0.95 against 0.90-0.96).  gpt_step, lenet_step compiled: within noise (0.82 ->
0.84, 0.89 -> 0.88 medians); resnet18_step eager 0.857 -> 0.832.  So ~2-4% of the MLP step:
the issue's 0.85 is not reached this way.

Threads: the wheel runs with one thread and is used only while ember's thread count
(``ops/_threads.num_threads``: ``set_num_threads``, else ``OPENBLAS_NUM_THREADS``...) is 1 and
its own pool is 1 (threadpoolctl may raise it).  At two threads two OpenBLAS pools fight over
the two cores: a worker of one library spins after its call while the other's run, and
mlp_step_nn with the wheel's GEMMs measured 1.13-1.69x torch against NumPy's 0.88-0.91 (wall
clock, loaded machine); one (256, 512, 128) product took 3,954 us against 211.  So at more
than one thread every product stays on NumPy's pool.

Numbers, and why it is not the default: each product is as accurate (max error against
float64 equal or lower), but its bits are other than NumPy's, and NumPy's SkylakeX products
are torch's bits on mlp_step_nn's weight gradients (K = batch = 128).  20 SGD steps of the
784-512-256-10 MLP (tests/test_compile_transposed.py) then leave torch by up to 7e-5 at batch
64 (a ReLU unit flips; NumPy's kernels 2e-8) against that test's atol 2e-5.  So
``EMBER_BLAS=own`` turns it on, and the default (``DEFAULT``) stays NumPy's until the
trajectory tests allow another BLAS's rounding.  The Haswell kernel also makes ``w @ x.T``
other bits than ``(x @ w.T).T`` (SkylakeX's are the same), so the compiled F-ordered chains
(NOTE [ Transposed activations ]) left eager by 1.6e-5 at batch 128; no layout is faster on
these kernels (every one within 1-3%; the compiled step with and without the chains
0.887/0.908 against 0.896/0.910 of torch, medians), so while the wheel is ``active()`` a
compiled region makes none (``_transposed_chains``) and equals eager bit for bit.

Where: ``_blas.matmul_into`` (the 2-d products of ``ops/linalg.py``'s ``mm_into``/``mm_t``,
so eager and compiled regions alike).  When: ``EMBER_BLAS=own``, float32, a CPU in ``_WINS``
(vendor, family, NumPy's core type: only what was measured), the wheel installed, one thread.
``EMBER_BLAS=openblas`` uses the wheel on any CPU with its own kernel choice (tests);
``numpy`` or unset: NumPy's.  A missing wheel, another BLAS under NumPy or a CPU not in the
table: NumPy's path, silently.
"""
from __future__ import annotations

import os

__all__: list = []

ENV = "EMBER_BLAS"   # "numpy" (NumPy's), "own" (the table's kernels), "openblas" (any CPU)
DEFAULT = "numpy"    # not "own" while other rounding fails the trajectory tests (the note)
# (cpuinfo vendor, cpu family, NumPy's OpenBLAS core types) -> the core type to load the wheel
# with: AMD Zen 4 (family 25 with AVX-512), where NumPy's OpenBLAS picks SkylakeX's kernels
_WINS = {("AuthenticAMD", 25, ("SkylakeX", "Cooperlake")): "Haswell"}
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_state: dict = {}    # "sgemm": the routed caller or None, decided once (``reset`` forgets)


def reset() -> None:
    """Forget the decision (tests): the next large GEMM reads ``EMBER_BLAS`` again."""
    _state.clear()


def sgemm():
    """``f(a, b, out=None)`` returning ``a @ b`` (in ``out`` where given) for float32 arrays by
    the wheel's kernels, or None where NOTE [ BLAS kernels ] keeps NumPy's (decided once)."""
    try:
        return _state["sgemm"]
    except KeyError:
        pass
    if _mode() not in ("own", "openblas"):
        _state["sgemm"] = None
        return None
    from . import _threads
    if _threads.num_threads() != 1:
        return None  # undecided: the wheel is loaded only once it could be used
    f = None
    lib = load()
    if lib is not None:
        f = _caller(lib)
    _state["sgemm"] = f
    return f


def active() -> bool:
    """Whether large float32 products go to the wheel now (decided, and one thread)."""
    if sgemm() is None:
        return False
    from . import _threads
    return _threads.num_threads() == 1


def load():
    """The wheel's library (a ctypes ``CDLL``) loaded as ``EMBER_BLAS`` and the CPU table say,
    or None (loaded once per process; a second load returns the same library)."""
    if "lib" in _state:
        return _state["lib"]
    mode = _mode()
    lib = None
    if mode in ("own", "openblas"):
        core = None if mode == "openblas" else _core_for_cpu()
        if mode == "openblas" or core is not None:
            lib = _open(core)
            if lib is not None and core is not None and corename(lib) != core:
                lib = None  # the wheel could not run the kernels that won: keep NumPy's
    _state["lib"] = lib
    return lib


def _mode() -> str:
    return os.environ.get(ENV, "").strip().lower() or DEFAULT


def library_path():
    """The ``scipy-openblas32`` wheel's shared library, or None where it is not installed
    (found without importing the package: its ``__init__`` imports more than we need)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("scipy_openblas32")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    libdir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    try:
        names = sorted(n for n in os.listdir(libdir) if n.startswith("libscipy_openblas") and
                       (n.endswith(".so") or ".so." in n or n.endswith(".dylib")))
    except OSError:
        return None
    return os.path.join(libdir, names[0]) if names else None


def _open(core):
    """The wheel loaded with ``OPENBLAS_CORETYPE=core`` (None: the library's own choice) and
    one thread, the environment restored after; None if absent or unloadable."""
    import ctypes
    path = library_path()
    if path is None:
        return None
    want = {"OPENBLAS_NUM_THREADS": "1"}
    if core is not None:
        want["OPENBLAS_CORETYPE"] = core
    old = {k: os.environ.get(k) for k in want}
    try:
        os.environ.update(want)
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if getattr(lib, "scipy_cblas_sgemm", None) is None:
        return None
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    return lib


def corename(lib) -> str:
    """The core type an OpenBLAS library runs (``openblas_get_corename``)."""
    return lib.scipy_openblas_get_corename().decode()


def numpy_corename():
    """The core type of the OpenBLAS NumPy bundles, or None (NumPy on another BLAS)."""
    import ctypes
    from . import _blas
    lib = _blas._library()
    if lib is None:
        return None
    for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_",
                 "openblas_get_corename"):
        f = getattr(lib, name, None)
        if f is not None:
            f.restype = ctypes.c_char_p
            return f().decode()
    return None


def cpu():
    """``(vendor, family, has AVX-512F)`` from ``/proc/cpuinfo``, or None (not Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read(1 << 16)
    except OSError:
        return None
    info = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    try:
        family = int(info.get("cpu family", ""))
    except ValueError:
        return None
    return info.get("vendor_id", ""), family, "avx512f" in info.get("flags", "").split()


def _core_for_cpu():
    """The core type NOTE [ BLAS kernels ]'s table loads the wheel with on this CPU, or None."""
    c = cpu()
    if c is None or not c[2]:
        return None
    numpy_core = numpy_corename()
    for (vendor, family, cores), core in _WINS.items():
        if c[0] == vendor and c[1] == family and numpy_core in cores:
            return core
    return None


def _caller(lib):
    """``f(a, b, out=None)``: ``a @ b`` by ``cblas_sgemm`` into ``out`` (a new C-contiguous
    array if None) for 2-d float32 arrays whose rows or columns are unit-stride, at one
    thread; None (nothing written) for anything else, which the caller then gives to NumPy."""
    import ctypes
    import numpy
    from . import _threads
    f = lib.scipy_cblas_sgemm
    i32, ptr = ctypes.c_int, ctypes.c_void_p
    f.argtypes = [i32, i32, i32, i32, i32, i32, ctypes.c_float, ptr, i32, ptr, i32,
                  ctypes.c_float, ptr, i32]
    f.restype = None
    own_threads = lib.scipy_openblas_get_num_threads
    f32 = numpy.dtype(numpy.float32)
    nd = numpy.ndarray
    big = 1 << 31
    byte = ctypes.c_char * 1

    def operand(a, rows, cols):
        """(transpose flag, leading dimension) of a row-major ``a``, or None."""
        s0, s1 = a.strides
        if s1 == 4 and s0 % 4 == 0 and cols <= s0 // 4 < big:
            return _NO_TRANS, s0 // 4
        if s0 == 4 and s1 % 4 == 0 and rows <= s1 // 4 < big:
            return _TRANS, s1 // 4
        return None

    def ptr(x):
        """``x``'s address as a ctypes argument: a one-byte view of a writable contiguous
        array (half ``.ctypes.data``'s ~2 us), else ``.ctypes.data``."""
        if x.flags.writeable:
            if x.flags.c_contiguous:
                return byte.from_buffer(x)
            if x.flags.f_contiguous:
                return byte.from_buffer(x.T)
        return x.ctypes.data

    def flip(t):
        """The (flag, leading dimension) of the transpose of an operand."""
        return _TRANS + _NO_TRANS - t[0], t[1]

    def call(a, b, out=None):
        if not (type(a) is nd and type(b) is nd and a.dtype == f32 and b.dtype == f32 and
                a.ndim == 2 and b.ndim == 2 and a.flags.aligned and b.flags.aligned):
            return None
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or min(m, n, k) < 2 or max(m, n, k) >= big:
            return None
        if _threads.num_threads() != 1 or own_threads() != 1:
            return None  # two OpenBLAS pools would fight (NOTE [ BLAS kernels ])
        ta, tb = operand(a, m, k), operand(b, k, n)
        if ta is None or tb is None:
            return None
        if out is None:
            res = c = numpy.empty((m, n), f32)
        else:
            if not (type(out) is nd and out.dtype == f32 and out.shape == (m, n) and
                    out.flags.writeable and out.flags.aligned):
                return None
            if numpy.may_share_memory(out, a) or numpy.may_share_memory(out, b):
                return None
            res = c = out
            if c.strides[0] == 4 and c.strides[1] != 4:  # F-ordered: c.T = b.T @ a.T
                a, b, c, ta, tb = b, a, c.T, flip(tb), flip(ta)
                m, n = n, m
            if c.strides[1] != 4 or c.strides[0] % 4 != 0 or not n <= c.strides[0] // 4 < big:
                return None
        f(_ROW_MAJOR, ta[0], tb[0], m, n, k, 1.0, ptr(a), ta[1], ptr(b), tb[1], 0.0, ptr(c),
          c.strides[0] // 4)
        return res
    return call
