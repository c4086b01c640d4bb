"""Activations' array kernels on large arrays: cache-sized blocks, split over threads
(NOTE [ Blocked pointwise passes ]).

NOTE [ Blocked pointwise passes ]
A NumPy ufunc makes one pass over whole arrays, so an activation written as k ufunc calls
moves every temporary through memory k times; at (32, 64, 32, 32) float32 (8 MB an array)
each pass costs ~0.4 ms, where PyTorch's kernels make one pass with every step in
registers.  The kernels here run the same ufunc calls on blocks of ``BLOCK_BYTES`` (an L2
cache's share), so temporaries stay in cache and only the operands and the result travel,
and hand the blocks to ``_threads.rows`` (NOTE [ Threads ]), which splits them over
threads at more than one thread.  A block computes exactly what the whole-array call
computes for its elements (the same ufunc loops, elementwise), so results are bit-identical
blocked or not, threaded or not.

Each kernel returns ``None`` where it does not apply (not float32/float64, operands of
different layouts, or smaller than ``_ws.MIN_BYTES``, where the whole-array call is as
fast and has no per-block cost); the caller then runs its general formula.  Operands are
dense arrays viewed flat in memory order (C order, or channels_last and other permuted
layouts), and a result has its input's layout.

relu: the forward is ``maximum(x, 0)`` against a zero block (NumPy's SIMD loop wants an
array operand: 1.5-3x faster than against a scalar), read-only and shared, so there is no
zero-fill pass.  The backward (PyTorch's ``threshold_backward``: ``g`` where not
``y <= 0``) is exact in two passes over integer views: ``m = min(bits(y), 1)`` is 1 for a
positive or NaN ``y`` and 0 for ``+0``, and ``bits(g) * m`` is ``g``'s bits or ``+0``, so an
infinite or NaN ``g`` where ``y`` is 0 gives 0 with no ``inf * 0`` to repair (the float
product of ``g`` and a mask needed a third pass to find those).  It relies on the forward
never leaving ``-0.0`` (whose bits are not 0): NumPy's SIMD maximum against a ``+0``
array returns ``+0`` for ``-0.0``, which ``_plus_zero`` checks once per dtype; where it
does not, or ``y`` did not come from a blocked forward, the general formula runs.
Measured (thread CPU, one thread, (32, 64, 32, 32) float32, interleaved, loaded machine):
see ``relu_grad``.
"""
from __future__ import annotations

from . import _threads
from . import _workspace as _ws

__all__: list = []

BLOCK_BYTES = 1 << 20   # per block of each operand: two or three of them fit a 2 MB L2
_ZEROS: dict = {}       # (xp, dtype) -> a read-only block of zeros
_PLUS_ZERO: dict = {}   # (xp, dtype) -> whether maximum(-0.0, zeros) gives +0.0
_UINT = {4: "uint32", 8: "uint64"}


def _flat(a):
    """``a``'s elements as a 1-d view in memory order, or None when ``a`` is not dense."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    perm = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    t = a.transpose(perm)
    return t.reshape(-1) if t.flags.c_contiguous else None


def _like(xp, a):
    """A workspace array of ``a``'s shape, dtype and (dense) layout."""
    if a.flags.c_contiguous:
        return _ws.empty(xp, a.shape, a.dtype)
    perm = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    inv = [0] * a.ndim
    for i, p in enumerate(perm):
        inv[p] = i
    return _ws.empty(xp, tuple(a.shape[p] for p in perm), a.dtype).transpose(inv)


def dense_float(a) -> bool:
    """Whether ``a`` is a dense float32/float64 array large enough for blocks to pay: the
    kernels' condition on their first operand."""
    return getattr(a, "flags", None) is not None and a.dtype.kind == "f" and \
        a.dtype.itemsize in (4, 8) and a.nbytes >= _ws.MIN_BYTES and a.ndim > 0 and \
        (a.flags.c_contiguous or _flat(a) is not None)


def _block(a) -> int:
    return BLOCK_BYTES // a.dtype.itemsize


def _zeros(xp, dtype, n: int):
    """A read-only array of at least ``n`` zeros, shared by every call."""
    key = (xp, dtype)
    z = _ZEROS.get(key)
    if z is None or z.size < n:
        z = xp.zeros(n, dtype)
        z.flags.writeable = False
        _ZEROS[key] = z
    return z


def _plus_zero(xp, dtype) -> bool:
    """Whether ``maximum(x, zeros)`` turns every ``-0.0`` of ``x`` into ``+0.0`` (every
    offset of the SIMD loop's head and tail)."""
    key = (xp, dtype)
    ok = _PLUS_ZERO.get(key)
    if ok is None:
        ok = True
        for n in (1, 3, 7, 8, 15, 16, 17, 33, 64, 100, 1000):
            x = xp.full(n, -0.0, dtype)
            y = xp.maximum(x, xp.zeros(n, dtype))
            ok = ok and not y.view(_UINT[dtype.itemsize]).any()
            ok = ok and not xp.maximum(x[1:], xp.zeros(n, dtype)[1:]).view(
                _UINT[dtype.itemsize]).any()
        # relu's other paths: against a scalar 0, strided (a slice of a larger array)
        x = xp.full((64, 3), -0.0, dtype)
        for y in (xp.maximum(x, 0), xp.maximum(x[::2, 1], 0), xp.maximum(x.T, 0)):
            ok = ok and not y.view(_UINT[dtype.itemsize]).any()
        _PLUS_ZERO[key] = ok
    return ok


def _run(part, n: int, touched: int) -> None:
    """``part(lo, hi)`` over ``range(n)``, on several threads for a large pass."""
    _threads.rows(part, n, touched, 4096)


def relu(xp, a):
    """``maximum(a, 0)`` in blocks, in a workspace array of ``a``'s layout (``a`` passes
    ``dense_float``)."""
    af = _flat(a)
    y = _like(xp, a)
    yf = _flat(y)
    step = _block(a)
    z = _zeros(xp, a.dtype, step)

    def part(lo, hi):
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            xp.maximum(af[s:e], z[:e - s], out=yf[s:e])
    _run(part, af.size, 2 * af.size)
    return y


def relu_grad(xp, g, y):
    """``g`` where ``y`` (relu's result) is not 0, else 0, in blocks: the bits of ``g`` times
    ``min(bits(y), 1)`` (``g`` passes ``dense_float``); None where ``y``'s dtype or layout
    differs or ``-0.0`` may be in ``y`` (see the note)."""
    if type(g) is not type(y) or g.dtype != y.dtype or g.shape != y.shape or \
            g.strides != y.strides or not _plus_zero(xp, g.dtype):
        return None
    gf, yf = _flat(g), _flat(y)
    out = _like(xp, g)
    ut = _UINT[g.dtype.itemsize]
    gu, yu, ou = gf.view(ut), yf.view(ut), _flat(out).view(ut)
    step = _block(g)

    def part(lo, hi):
        m = _ws.empty(xp, (min(step, hi - lo),), ut)
        zero, one = m.dtype.type(0), m.dtype.type(1)
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            mm = m[:e - s]
            xp.clip(yu[s:e], zero, one, out=mm)
            xp.multiply(gu[s:e], mm, out=ou[s:e])
    _run(part, gf.size, 3 * gf.size)
    return out
