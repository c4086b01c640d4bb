"""BLAS level-1 ``axpy`` (``y += a * x``) from the OpenBLAS that NumPy's wheel bundles.

NOTE [ axpy ]
NumPy has no fused ``y += a * x``: it takes two passes (the product, then the sum) and rounds
twice, where PyTorch's CPU kernel makes one pass of fused multiply-adds.  The OpenBLAS that
NumPy's wheels ship (``numpy.libs``/``.dylibs``, the ``scipy_openblas64_`` build, 64-bit
integers) exports ``cblas_saxpy``/``cblas_daxpy``; on a CPU with FMA its kernels are one
fused pass, bit for bit PyTorch's ``add_(x, alpha=a)``, in PyTorch's time ((512, 784) float32:
43 us vs 73 for the two NumPy passes, torch 39; one thread).  It is found once, lazily, with
``ctypes``; where NumPy was built against another BLAS (a system or MKL build) nothing is
found and ``add_`` keeps its two NumPy passes.  Only contiguous float32/float64 arrays of at
least ``MIN_SIZE`` elements use it (a ctypes call costs ~2 us).  Users: ``add_``/``sub_``'s
fast path, and ``add``/``sub``/``rsub`` with ``alpha`` (a copy, then axpy), so that every
path rounds alike (ops/elementwise.py).
"""
from __future__ import annotations

from . import _openblas

__all__: list = []

MIN_SIZE = 8192
_NAMES = ("scipy_cblas_{}axpy64_", "cblas_{}axpy64_")  # NumPy 2's and NumPy 1's bundles
_found: dict = {}
_lib: dict = {}  # "lib": the bundled OpenBLAS (a ctypes CDLL) or None, once looked for


def axpy(dtype_char: str):
    """``f(y, x, alpha) -> bool`` doing ``y += alpha * x`` in place (float32 ``"f"`` or
    float64 ``"d"`` arrays), or None where NumPy's bundled OpenBLAS is absent."""
    try:
        return _found[dtype_char]
    except KeyError:
        pass
    fn = None
    try:
        fn = _load(dtype_char)
    except (OSError, AttributeError, ImportError):
        fn = None
    _found[dtype_char] = fn
    return fn


def _library():
    """The OpenBLAS NumPy's wheel bundles as a ctypes ``CDLL``, or None (looked for once;
    NOTE [ axpy ])."""
    if "lib" in _lib:
        return _lib["lib"]
    import ctypes
    import glob
    import os
    import numpy
    here = os.path.dirname(numpy.__file__)
    paths = sorted(glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")) +
                   glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
    found = None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if any(getattr(lib, n.format("s"), None) is not None for n in _NAMES):
            found = lib
            break
    _lib["lib"] = found
    return found


def _symbol(lib, names, dtype_char: str):
    """The first of ``names`` (``{}`` the BLAS type letter) ``lib`` exports, or None."""
    for name in names:
        f = getattr(lib, name.format("s" if dtype_char == "f" else "d"), None)
        if f is not None:
            return f
    return None


def _load(dtype_char: str):
    import ctypes
    import numpy
    lib = _library()
    f = None if lib is None else _symbol(lib, _NAMES, dtype_char)
    if f is None:
        return None
    real = ctypes.c_float if dtype_char == "f" else ctypes.c_double
    f.restype = None
    f.argtypes = [ctypes.c_int64, real, ctypes.c_void_p, ctypes.c_int64,
                  ctypes.c_void_p, ctypes.c_int64]

    def call(y, x, alpha, f=f, nd=numpy.ndarray, errors=(
            OverflowError, TypeError, ctypes.ArgumentError)):
        """``y += alpha * x`` for C-contiguous NumPy arrays of one shape; False
        when it did nothing (other arrays, an alpha the C type cannot take)."""
        if not (isinstance(y, nd) and isinstance(x, nd) and y.flags.c_contiguous and
                x.flags.c_contiguous):
            return False
        try:
            f(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
        except errors:
            return False
        return True
    return call


# NOTE [ Batch-1 linear by GEMV ]
# A compiled batch-1 ``linear`` (``x @ w.T + b`` with one row) is a matrix-vector product that
# streams the weight once; at (1, 784) x (512, 784) float32 the GEMV is ~21 us and NumPy's
# ``matmul`` plus the bias pass add ~1.5 us of calls around it.  ``linear_row`` makes, for one
# call site of the generated code, ``f(x, w, b, out)`` that fills ``out`` with the bias and
# runs one ``cblas_?gemv`` with ``beta = 1`` (``y = W x + y``: the bias folded into the
# product's write, so ``out`` is written once more only by the fill).  The pointers are read
# (``.ctypes``, ~1 us each) only when an array's identity changes; the arrays are held while
# their pointers are, so a pointer never outlives its memory (an ndarray's data pointer is
# fixed for its life).  The compiled code passes planned buffers only: the caller's input (or
# a fresh value) is first copied into one (a (1, K) copy, ~0.2 us, against ~2.5 us for a new
# array's pointer), so at each call every pointer is one already read.
# The product is the one NumPy's ``matmul`` makes for one row: the same GEMV kernel on the
# same layout (row-major ``w``, NoTrans).  A transposed copy of ``w`` (OpenBLAS's other
# kernel) is 1.02-1.06x faster at the MLP's sizes (20.4 against 21.7 us, 7.0 against 7.4; 1.9
# against 1.6 at (10, 256)) but would go stale on an in-place update, so it is not kept.  The
# bias is the kernel's update of ``y``: eager's numbers (``x @ w.T`` then ``+ b``) at the
# MLP's float32 shapes on this machine, within an ulp in general (a kernel may add ``y`` in
# before the dot's last term).  An array that does not fit (a strided weight, another dtype,
# an output of one element or an inner size of one, where NumPy's product is a dot or a loop)
# takes the caller's ``fallback``.
# Threads: neither OpenBLAS (this call and NumPy's) nor PyTorch threads a GEMV of the MLP's
# sizes at 2 threads (process CPU time equals the calling thread's); OpenBLAS does from
# between 0.4M and 0.6M elements ((784, 784) took 64 us of thread time plus a worker's
# against 36 us on one thread, machine loaded), so larger layers may want one thread.
# Splitting a GEMV's rows over two threads (a persistent worker woken by a lock; ctypes drops
# the GIL) gives the same bits but is slower: the first layer 51 us of wall time against 30.5
# (load 11 on 2 cores), the worker's wake-up costing more than its half saves, so it is not
# made.  Nor are row blocks of one GEMV in alternating order, to find the last call's tail of
# the weights in L2 (2 or 4 blocks: 31.8-33.6 us against 31.1 for one GEMV; same bits).
# Where the time goes: the three GEMVs of the 784-512-256-10 MLP take ~30.5 us back to back
# (the weights, 2.1 MB, twice L2, come from L3 each call); bias fills ~1 us, the two relus
# ~2.3, the result's copy and wrapping ~1.1, the guard ~2.6 (its module attribute checks
# ~1.4), most of it cache misses after the weights streamed through.  The compiled call is
# one generated function after the guard (NOTE [ Batch-1 inference ] in
# _functorch/aot_autograd.py): A/B in one process (thread time, 1 thread, load 13-15 on 2
# cores) 41.8-42.5 us against 43.0-46.9 through the region's general call, torch 76-80,
# hand-written NumPy 37-38 (0.49-0.50 of torch).
# Measured since (1 thread, thread time, loaded machine): (1) weight alignment: the three
# GEMVs take 29.6-30.1 us on 64-byte aligned weights (torch's allocator aligns to 64) against
# 32.0-33.6 on NumPy's 16-mod-32 ones (32-byte loads split across lines), the same bits at
# every offset; in the interleaved bench 39.0-40.7 us a call against 42.0-42.7 (one of three
# pairs the other way).  A parameter's array is not re-pointed to an aligned copy at compile
# time (a view or ``.numpy()`` array taken before would stop aliasing it): ``nn.Linear``
# allocates its weight aligned instead (NOTE [ Aligned weights ] below); a weight assigned
# later (``.data =``, ``.to(dtype)``) is whatever its maker allocated.  Not made:
# (2) OpenBLAS's other x86 kernels for this call (``sgemv_t_HASWELL`` for
# the ``SKYLAKEX`` one it picks on this Zen 4): the same time and bits; ``cblas_sgemm`` with
# M=1: slower (35.4 against 31.2 us) and other bits; NumPy's ``dot``/``matvec``/``vecdot``/
# ``einsum``: no faster.  (3) The kernel is not bound by L3: layer 0 alone (1.6 MB, from L3)
# runs at ~13 us/MB, layer 1 alone (in L2) ~10.6; back to back the three lose ~4 us to L3
# (layer 1 no longer in L2).  (4) 2 MB huge pages for the weights: 0.3-1 us, within noise.
# (5) ctypes argument objects shared between the three calls (15 objects, not 36), a 0-d
# zero for relu: within +-0.5 us, not kept.  A GEMV reading the caller's input array in
# place when the last calls had that array (no copy into the x buffer, ~0.4 us) is kept
# (``_infer_row``): a caller that refills one input tensor pays no copy.
# Measured since (thread time, 1 thread, load 3-8 on the 2 cores, so sub-us differences are
# paired in one process): (6) the binding's fixed cost per call (hot, 2x2 and 10x256 float32):
# this ctypes call 0.57/0.71 us, the same through ``ctypes.PyDLL`` (GIL kept) 0.54/0.68,
# ``np.dot(x, w.T, out=)`` 0.50/0.63 (the same kernel and bits), ``np.matmul(out=)``
# 0.94/1.08; ``dot`` would need its own bias pass (a (1, N) add, 0.34, as the bias copy
# here), so no binding is cheaper per layer.  (7) A returned row as the GEMV without the bias
# and one add into a fresh array (one call fewer than copy, GEMV, copy out; same bits): 0.0 us
# paired median over 40 rounds (20 of 40 faster), not kept; NumPy's broadcasting costs more
# than a call here (a (1, N) + (N,) add 0.78-0.84 us against 0.27-0.34 on a (1, N) view).
# (8) Threads: OpenBLAS threads a GEMV from M * N >= 460,800 (0.3.31's 115200 *
# GEMM_MULTITHREAD_THRESHOLD 4), so at 2 threads none of the MLP's three is threaded (process
# time = thread time): (512, 784) 19.5-20.5 us at 1 and at 2, (256, 512) 5.5-6.3, (10, 256)
# 0.74; PyTorch does not thread its batch-1 call either (process = thread time at 2).  Larger
# ones are, and lose on this loaded machine: (784, 784) 31-38 us wall at 1 thread against
# 50-71 at 2 (thread 22-23 + a worker's 13-27), (1024, 784) 42-64 against 52-144; nothing
# is chosen per shape for the MLP, whose GEMVs never reach the threshold.  (9) Cache: back to
# back the GEMVs take 19.6-20.6 + 7.5-7.8 + 1.05-1.25 us; layer 1 alone (its 0.5 MB left in
# L2) 5.75-6.2, so ~1.7 us is layer 0's 1.6 MB stream evicting layer 1 from the 1 MB L2 (an
# LRU over a cyclic 2.1 MB sweep keeps nothing; only a whole-GEMV reversal of layer 0 on
# alternate calls would, which cblas cannot express, and more GEMV calls cost more than the
# blocks they find in L2, (2)-(3) above).  Interleaving with torch's steps (the bench's blocks
# of ~400 calls) costs ember 0-1 us a call (36.8-37.6 alone, 37.9-38.1 interleaved at load 3;
# no difference at load 6): torch's block evicts ember's weights once per block.
_GEMV = ("scipy_cblas_{}gemv64_", "cblas_{}gemv64_")
_gemv_found: dict = {}
_ROW_MAJOR, _NO_TRANS = 101, 111


def gemv_fn(dtype_char: str):
    """The bundled OpenBLAS's ``cblas_?gemv`` (64-bit integers) as a ctypes function without
    argument conversion (callers pass ctypes values), or None where it is absent."""
    if dtype_char in _gemv_found:
        return _gemv_found[dtype_char]
    f = None
    try:
        lib = _library()
        f = None if lib is None else _symbol(lib, _GEMV, dtype_char)
    except (OSError, AttributeError, ImportError):
        f = None
    if f is not None:
        f.restype = None
    _gemv_found[dtype_char] = f
    return f


def row_args(w, x, out, bias: bool):
    """The argument tuple of one ``cblas_?gemv`` computing ``out = x @ w.T (+ out)`` for a
    (N, K) ``w`` with unit column stride (N, K >= 2), a C-contiguous (1, K) ``x`` and (1, N)
    ``out`` of ``w``'s float dtype (``bias``: beta 1, so ``out``'s prior value, the bias, is
    added), or None where one GEMV cannot do it (NOTE [ Batch-1 linear by GEMV ]).  The
    tuple holds pointers: the caller keeps the three arrays alive while it keeps the tuple."""
    import ctypes
    import numpy
    nd = numpy.ndarray
    if type(w) is not nd or w.dtype.char not in "fd" or gemv_fn(w.dtype.char) is None:
        return None
    dt, size = w.dtype, w.dtype.itemsize
    if w.ndim != 2 or w.strides[1] != size or w.strides[0] % size or \
            w.strides[0] < size * w.shape[1] or w.shape[0] < 2 or w.shape[1] < 2:
        return None  # one output: NumPy's dot; inner size 1: its loop (as eager computes)
    n, k = w.shape
    for a, shape in ((x, (1, k)), (out, (1, n))):
        if type(a) is not nd or a.dtype != dt or a.shape != shape or \
                not a.flags.c_contiguous or not a.flags.writeable:
            return None
    if numpy.may_share_memory(out, w) or numpy.may_share_memory(out, x):
        return None
    real = ctypes.c_float if dt.char == "f" else ctypes.c_double
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    return (ctypes.c_int(_ROW_MAJOR), ctypes.c_int(_NO_TRANS), i64(n), i64(k), real(1.0),
            ptr(w.ctypes.data), i64(w.strides[0] // size), ptr(x.ctypes.data), i64(1),
            real(1.0 if bias else 0.0), ptr(out.ctypes.data), i64(1))


def linear_row(dtype_char: str, fallback):
    """``f(x, w, b, out) -> out``: ``out = x @ w.T + b`` for a (1, K) ``x``, a (N, K) ``w``
    (N, K >= 2) with unit column stride, a (N,) ``b`` or None and a C-contiguous (1, N)
    ``out`` that overlaps neither, by one GEMV (NOTE [ Batch-1 linear by GEMV ]); other arrays go to
    ``fallback(x, w, b, out)``.  None where the bundled OpenBLAS is absent."""
    f = gemv_fn(dtype_char)
    if f is None:
        return None
    import ctypes
    import numpy
    real = ctypes.c_float if dtype_char == "f" else ctypes.c_double
    dt = numpy.dtype(dtype_char)
    size = dt.itemsize
    order, trans = ctypes.c_int(_ROW_MAJOR), ctypes.c_int(_NO_TRANS)
    one, zero, inc1 = real(1.0), real(0.0), ctypes.c_int64(1)
    buf = ctypes.c_char * 1
    ptr = ctypes.c_void_p
    nd = numpy.ndarray
    overlap = numpy.may_share_memory

    def pointer(a):
        try:
            return buf.from_buffer(a)  # a writable contiguous array (half ``.ctypes``'s cost)
        except (TypeError, ValueError):
            return ptr(a.ctypes.data)

    def fixed(w, out):
        """What the GEMV's arguments take from ``w`` and ``out``: ``(head, tail with the bias,
        tail without, K)``, or None where one GEMV cannot do it."""
        if type(w) is not nd or w.dtype != dt or w.ndim != 2 or w.strides[1] != size or \
                w.strides[0] % size or w.strides[0] < size * w.shape[1] or \
                w.shape[0] < 2 or w.shape[1] < 2:
            return None  # one output: NumPy's dot; inner size 1: its loop (as eager computes)
        if type(out) is not nd or out.dtype != dt or out.shape != (1, w.shape[0]) or \
                not out.flags.c_contiguous or not out.flags.writeable or overlap(out, w):
            return None
        n, k = w.shape
        head = (order, trans, ctypes.c_int64(n), ctypes.c_int64(k), one, pointer(w),
                ctypes.c_int64(w.strides[0] // size))
        po = pointer(out)
        return head, (one, po, inc1), (zero, po, inc1), k

    def plan(x, w, out, c):
        """The call's record ``(x, w, out, (arguments with the bias, without) or None, the
        fixed part)``; the fixed part of the last record is kept when only ``x`` changed (a
        new input each call: its pointer and checks, ~1 us)."""
        fx = c[4] if c[1] is w and c[2] is out else fixed(w, out)
        if fx is None or type(x) is not nd or x.dtype != dt:
            return x, w, out, None, fx
        shape, st = x.shape, x.strides
        if len(shape) != 2 or shape[0] != 1 or shape[1] != fx[3] or st[1] <= 0 or \
                st[1] % size or overlap(out, x):
            return x, w, out, None, fx
        mid = (pointer(x), inc1 if st[1] == size else ctypes.c_int64(st[1] // size))
        head = fx[0] + mid
        return x, w, out, (head + fx[1], head + fx[2]), fx

    # the last call's record, one tuple (a concurrent call reads a consistent one)
    last = [(None, None, None, None, None)]

    def call(x, w, b, out):
        """``out = x @ w.T + b`` by one GEMV (NOTE [ Batch-1 linear by GEMV ])."""
        c = last[0]
        if c[0] is not x or c[1] is not w or c[2] is not out:
            c = last[0] = plan(x, w, out, c)
        a = c[3]
        if a is None:
            return fallback(x, w, b, out)
        if b is None:
            f(*a[1])
        else:
            out[...] = b
            f(*a[0])
        return out
    return call


# NOTE [ Aligned weights ]
# BLAS kernels load 32 or 64 bytes at a time; a weight whose rows start 16 bytes off such a
# boundary (NumPy's allocations are 16-byte aligned: large ones sit 16 bytes into their
# pages) splits every load across two cache lines.  The batch-1 MLP's three GEMVs take
# 29.6-30.1 us on 64-byte aligned weights against 32.0-33.6 on NumPy's (same bits at every
# offset; PyTorch's allocator aligns to 64).  A layer's weight is made aligned when the layer
# makes it (``nn.Linear``): nothing refers to its array yet, and in-place loads
# (``load_state_dict``, ``copy_``) keep it.  The array is a view of a padded ``bytearray``, so
# the last ndarray down its ``.base`` chain is the weight's own memory (``_storage``, the
# serializer and ``share_memory_`` see exactly its elements, offset 0).
ALIGN = 64
MIN_ALIGNED = 4096  # bytes: a smaller array is one or two cache lines' worth of rows


def aligned(t):
    """``t`` (a tensor just made by ``empty``, referred to by nothing else) with its array
    replaced by an uninitialised C-contiguous one of the same shape and dtype at a 64-byte
    aligned address (NOTE [ Aligned weights ]); other tensors are returned as they are."""
    import numpy
    a = t._data
    if type(a) is not numpy.ndarray or a.nbytes < MIN_ALIGNED or \
            a.ctypes.data % ALIGN == 0 or a.dtype.hasobject:
        return t
    buf = bytearray(a.nbytes + ALIGN - 1)
    off = -numpy.frombuffer(buf, numpy.uint8, 1).ctypes.data % ALIGN
    t._data = numpy.frombuffer(buf, a.dtype, a.size, off).reshape(a.shape)
    return t


OWN_MIN_MACS = 1 << 23  # M * K * N below this stays on NumPy's (NOTE [ BLAS kernels ])


def matmul_into(xp, a, b, out=None):
    """``xp.matmul(a, b, out=out)`` for 2-d arrays: a large float32 product by ember's own
    OpenBLAS where it was measured faster (NOTE [ BLAS kernels ] in ``ops/_openblas.py``),
    anything else by ``xp.matmul``; returns the product (``out`` where given)."""
    if a.dtype.char == "f" and a.shape[0] * a.shape[1] * b.shape[-1] >= OWN_MIN_MACS:
        f = _openblas.sgemm()
        res = None if f is None else f(a, b, out)
        if res is not None:
            return res
    return xp.matmul(a, b, out=out)
