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
``y <= 0``) is exact in two passes over integer views: ``m = clip(bits(y), 0, 1)`` is 1 for
a positive or NaN ``y`` and 0 for ``+0``, and ``bits(g) * m`` is ``g``'s bits or ``+0``, so
an infinite or NaN ``g`` where ``y`` is 0 gives 0 with no ``inf * 0`` to repair (the float
product of ``g`` and a bool mask cast the mask in buffered chunks and needed a third pass to
find those).  It relies on the forward never leaving ``-0.0`` (whose bits are not 0):
NumPy's SIMD maximum against ``+0`` returns ``+0`` for ``-0.0``, which ``_plus_zero`` checks
once per dtype on every path relu's forward takes; where it does not, the general formula
runs.  relu blocks only from ``RELU_BYTES`` (512 KiB): below, its whole-array passes (in L2
already) were as fast or faster, and an MLP's relus slowed 1.2-1.5x blocked.  leaky_relu: ``maximum(x, x * slope)`` (``minimum`` above a slope of 1), and ``g * k``
with ``k`` 1 or ``slope`` built on integer bits, where ``where``'s per-element branch was
6-10x slower on random signs.  Tanh's and sigmoid's backward, silu's
forward and backward and GELU's forward (NOTE [ Fused GELU ]) run their former ufunc steps
on blocks; GELU's backward product is split over threads.
Measured at (32, 64, 32, 32) float32 against torch (thread CPU, one thread, best of 12,
interleaved in one process, the machine loaded by others, load 5-7; ember/torch before ->
after, two runs each, noisy): relu forward 0.94-1.02 -> 1.00-1.07, backward 1.41 -> 0.96-1.01;
leaky_relu forward 11.5-11.9 -> 1.18-1.23, backward 8.0 -> 1.4-1.6; tanh backward 1.15 ->
0.85-0.89; sigmoid backward 1.02-1.07 -> 1.03-1.05 (sigmoid's forward was blocked too and
is no longer: NumPy's exp is compute-bound, and the blocks measured 6-26% slower); GELU forward 6.1 -> 4.5-4.9 (erf form;
17 compute-bound passes), tanh form 1.54-1.67 -> 1.23-1.32; silu forward 2.8 -> 2.2,
backward (its six ember ops were as many fresh arrays) 3.5 -> 1.9-2.3.
In bench workloads the change is within the noise (resnet_block, gpt_step and resnet18_step
have two to a dozen relus of 2-8 MB, ~1% of a step).
"""
from __future__ import annotations

import warnings

from . import _threads
from . import _workspace as _ws

__all__: list = []

# IEEE edge cases (inf * 0 ...) compute silently, as in PyTorch: NOTE [ Floating-point
# warnings ] in elementwise.py (the callers rerun under ``_quiet`` where the user made them
# errors)
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)

BLOCK_BYTES = 1 << 20   # per block of each operand: two or three of them fit a 2 MB L2
# relu's kernels block from here: below, the whole-array passes measured as fast or faster
# (thread CPU, 1 thread, float32: forward 7.0 vs 9.0 us at 128 KiB, 23.6 vs 24.4 at 512 KiB,
# 48 vs 45 at 1 MiB; backward's mask formula 14.5 vs 19.1 us at 128 KiB, 26.8 vs 29.3 at
# 256 KiB, 51 vs 44 at 512 KiB): an MLP's (128, 256) relu step was 38 -> 45-57 us blocked
RELU_BYTES = 512 << 10
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


def same_layout(a, *others) -> bool:
    """Whether ``others`` are arrays of ``a``'s type, dtype, shape and strides (so their
    flat views line up element for element)."""
    for b in others:
        if type(b) is not type(a) or b.dtype != a.dtype or b.shape != a.shape or \
                b.strides != a.strides:
            return False
    return True


def blocks(xp, fn, ins, n_out: int = 1, block_bytes: int = 0):
    """``n_out`` workspace arrays laid out as ``ins[0]``, filled by ``fn(*in_blocks,
    *out_blocks)`` on each run of at most ``block_bytes`` (``BLOCK_BYTES``) of each flat
    operand, on several threads for a large pass.  ``ins`` are dense and of one layout
    (``dense_float(ins[0])`` and ``same_layout(*ins)``)."""
    a = ins[0]
    flats = [_flat(x) for x in ins]
    outs = [_like(xp, a) for _ in range(n_out)]
    flats += [_flat(o) for o in outs]
    step = max((block_bytes or BLOCK_BYTES) // a.dtype.itemsize, 1)

    def part(lo, hi):
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            fn(*[f[s:e] for f in flats])
    n = a.size
    _threads.rows(part, n, n * len(flats), 4096)
    return outs[0] if n_out == 1 else outs


def scratch(xp, like, dtype=None):
    """A workspace array of ``like``'s length (a block's temporary: the same few are reused
    for every block, so they stay in cache)."""
    return _ws.empty(xp, like.shape, like.dtype if dtype is None else dtype)


# ---- relu -----------------------------------------------------------------------------------

def relu(xp, a):
    """``maximum(a, 0)`` against a shared zero block (``a`` passes ``dense_float``)."""
    z = _zeros(xp, a.dtype, BLOCK_BYTES // a.dtype.itemsize)

    def fn(x, y):
        xp.maximum(x, z[:x.size], out=y)
    return blocks(xp, fn, (a,))


def relu_grad(xp, g, y):
    """``g`` where ``y`` (relu's result) is not 0, else 0: the bits of ``g`` times
    ``clip(bits(y), 0, 1)`` (``g`` passes ``dense_float``); None where ``y``'s layout
    differs or ``-0.0`` may be in ``y`` (see the note)."""
    if not same_layout(g, y) or not _plus_zero(xp, g.dtype):
        return None
    ut = _UINT[g.dtype.itemsize]
    zero, one = xp.dtype(ut).type(0), xp.dtype(ut).type(1)

    def fn(gb, yb, ob):
        m = scratch(xp, gb, ut)
        xp.clip(yb.view(ut), zero, one, out=m)  # (clip: 1.5-2x faster than minimum here)
        xp.multiply(gb.view(ut), m, out=ob.view(ut))
    return blocks(xp, fn, (g, y))


# ---- leaky_relu -----------------------------------------------------------------------------

def leaky_relu(xp, a, slope):
    """``a`` where positive, else ``a * slope``, as ``maximum(a, a * slope)`` (``minimum``
    for a slope above 1): the same numbers, NaN included, without ``where``'s per-element
    branch (6-10x slower on random signs); None for a slope <= 0 (``0 * inf`` would be
    NaN where ``a`` is kept) or NaN."""
    if not slope > 0:
        return None
    s = a.dtype.type(slope)
    pick = xp.maximum if slope <= 1 else xp.minimum

    def fn(x, y):
        xp.multiply(x, s, out=y)
        pick(x, y, out=y)
    return blocks(xp, fn, (a,))


def leaky_relu_grad(xp, g, x, slope):
    """``g`` where ``x > 0``, else ``g * slope``, as ``g * k`` with ``k`` 1 or ``slope``
    (exact: ``g * 1`` is ``g``), ``k`` built on integer bits: ``bits(slope) + (x > 0) *
    (bits(1) - bits(slope))``, wrapping; None where ``x``'s layout differs."""
    if not same_layout(g, x):
        return None
    dt = g.dtype
    ut = xp.dtype(_UINT[dt.itemsize])
    bits = xp.asarray([slope, 1], dt).view(ut)
    sb, d = bits[0], (bits[1:] - bits[:1])[0]  # (an array difference wraps without a warning)
    zero = dt.type(0)

    def fn(gb, xb, ob):
        k = scratch(xp, gb, ut)
        m = scratch(xp, gb, bool)
        xp.greater(xb, zero, out=m)
        xp.multiply(m, d, out=k)
        xp.add(k, sb, out=k)
        xp.multiply(gb, k.view(dt), out=ob)
    return blocks(xp, fn, (g, x))


# ---- sigmoid and tanh -----------------------------------------------------------------------

def tanh_grad(xp, g, y):
    """``g * (1 - y * y)`` (PyTorch's ``tanh_backward``), the temporary in cache; None where
    the layouts differ."""
    if not same_layout(g, y):
        return None
    one = g.dtype.type(1)

    def fn(gb, yb, ob):
        t = scratch(xp, gb)
        xp.multiply(yb, yb, out=t)
        xp.subtract(one, t, out=t)
        xp.multiply(gb, t, out=ob)
    return blocks(xp, fn, (g, y))


def sigmoid_grad(xp, g, y):
    """``(g * (1 - y)) * y`` (PyTorch's ``sigmoid_backward``); None where the layouts
    differ."""
    if not same_layout(g, y):
        return None
    one = g.dtype.type(1)

    def fn(gb, yb, ob):
        t = scratch(xp, gb)
        xp.subtract(one, yb, out=t)
        xp.multiply(gb, t, out=ob)
        xp.multiply(ob, yb, out=ob)
    return blocks(xp, fn, (g, y))


def silu(xp, a):
    """``x / (1 + exp(-x))``: the steps of ``activation.silu``'s forward, on blocks."""
    one = a.dtype.type(1)

    def fn(x, y):
        xp.negative(x, out=y)
        xp.exp(y, out=y)
        xp.add(y, one, out=y)
        xp.true_divide(x, y, out=y)
    return blocks(xp, fn, (a,))


def silu_grad(xp, g, x):
    """``g * (s * (x * (1 - s) + 1))`` with ``s = sigmoid(x)``: the steps of
    ``activation._silu_grad``'s ember ops; None where the layouts differ."""
    if not same_layout(g, x):
        return None
    one = g.dtype.type(1)

    def fn(gb, xb, ob):
        s = scratch(xp, gb)
        xp.negative(xb, out=s)
        xp.exp(s, out=s)
        xp.add(s, one, out=s)
        xp.true_divide(one, s, out=s)
        xp.subtract(one, s, out=ob)
        xp.multiply(xb, ob, out=ob)
        xp.add(ob, one, out=ob)
        xp.multiply(s, ob, out=ob)
        xp.multiply(gb, ob, out=ob)
    return blocks(xp, fn, (g, x))


def mul(xp, a, b):
    """``a * b`` of one layout (a saved derivative times the gradient), split over threads;
    None where the layouts differ."""
    if not same_layout(a, b):
        return None

    def fn(x, y, o):
        xp.multiply(x, y, out=o)
    return blocks(xp, fn, (a, b))
