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

__all__: list = []

MIN_SIZE = 8192
_NAMES = ("scipy_cblas_{}axpy64_", "cblas_{}axpy64_")  # NumPy 2's and NumPy 1's bundles
_found: dict = {}


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


def _load(dtype_char: str):
    import ctypes
    import glob
    import os
    import numpy
    here = os.path.dirname(numpy.__file__)
    paths = sorted(glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")) +
                   glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
    real = ctypes.c_float if dtype_char == "f" else ctypes.c_double
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _NAMES:
            f = getattr(lib, name.format("s" if dtype_char == "f" else "d"), None)
            if f is None:
                continue
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
    return None
