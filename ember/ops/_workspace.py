"""Scratch arrays of fused ops, reused across calls (NOTE [ Workspace ]).

NOTE [ Workspace ]
A fused op that allocates megabytes per call (an LSTM layer's gates, states and saved
factors) pays for them a second time on Linux: glibc serves large blocks with fresh pages
(``mmap``, or heap growth after the heap top was trimmed) and the first write to each 4 KiB
page is a page fault, about 2.7 us on the test machine.  An LSTM language-model step made
3,900 of them, a third of its CPU time (31 -> 23 ms without them); PyTorch's step almost
none.
Users: the fused recurrent layers (``ops/rnn.py``), 2-D float products (``lowp_matmul`` in
``ops/linalg.py``: ``matmul``, ``linear`` and their backward GEMMs), cross-entropy's saved
softmax and its gradient (``ops/loss.py``) and embedding's rows (``ops/layers.py``); together
they removed ~500 faults per LM step.
``empty(xp, shape, dtype)`` hands out a view of a block kept here and reuses the block once
nothing refers to it any more: every view of a block, and every tensor over such a view,
holds a reference to the block through ``.base``, so a block whose reference count is the
pool's own is free (the check and the hand-out happen under one lock).  Blocks are keyed by
array module, dtype and size, since a training loop asks for the same shapes every step.
At most ``_KEEP`` bytes are pooled; past that, free blocks are dropped first and then
``empty`` falls back to a plain allocation.  A gradient from here that reaches a leaf is
copied: the engine copies a ``.grad`` that is a view (``autograd/engine.py``).
Convolution's work arrays (``ops/conv.py``) come from here too: its former pool of
explicitly given-back arrays (24 MB) was below Winograd's working set and faulted ~2,000
pages per resnet_block step; one pool also lets an im2col saved for backward be reused.
The 96 MB against peak memory (``python -m bench.mem_peak resnet18_step``, issue 15; load
1.2-2.2): ResNet-18's step, peak RSS less RSS once built, ember/torch 0.99-1.07x at one BLAS
thread and 1.10-1.22x at two, the pool holding 82-86 MB of it.  A smaller cap lowers that
(64 MB: 0.99x at two threads, 48 MB: 0.91x) but re-faults what no longer fits: ResNet-18
went from 5 page faults a step to ~3,500 (64-80 MB) and ~7,500 (48 MB) at one thread, 10-20
ms of a ~330 ms step, below what thread-CPU timing resolved on the loaded machine; so the cap
stays.  Not keeping the forward's im2col/``V`` for the weight gradient (it is 44 of ember's
98 MB saved by ResNet-18's forward; PyTorch keeps only ``x``) cut the live bytes of a step
from 1.9x PyTorch's to 1.2x but not its RSS (the pool still held ~80 MB), and cost ~8% of
resnet_block and conv_gflops (recomputed in ``W``): not kept either.
"""
from __future__ import annotations

import sys
import threading

__all__: list = []

_KEEP = 96 << 20        # bytes held at most (LSTM LM step: 20 MB; resnet_block: ~90 MB)
MIN_BYTES = 64 << 10    # smaller arrays come from malloc's free lists without faults
_REFS_WHEN_FREE = 3     # the pool's list, the loop variable and getrefcount's argument

_lock = threading.Lock()
_blocks: dict = {}      # (xp, dtype, size) -> [1-d arrays]
_held = [0]             # bytes in _blocks


def empty(xp, shape, dtype):
    """``xp.empty(shape, dtype)``, from a reused block when one is free."""
    size = 1
    for n in shape:
        size *= n
    nbytes = size * xp.dtype(dtype).itemsize
    if nbytes < MIN_BYTES:
        return xp.empty(shape, dtype)
    key = (xp, xp.dtype(dtype), size)
    with _lock:
        for blk in _blocks.get(key, ()):
            if sys.getrefcount(blk) == _REFS_WHEN_FREE:
                return blk.reshape(shape)
        if _held[0] + nbytes > _KEEP:
            _evict()
            if _held[0] + nbytes > _KEEP:
                return xp.empty(shape, dtype)
        blk = xp.empty(size, dtype)
        _blocks.setdefault(key, []).append(blk)  # eviction may have dropped the key's list
        _held[0] += nbytes
        return blk.reshape(shape)


def zeros(xp, shape, dtype):
    """``xp.zeros(shape, dtype)`` over a reused block."""
    a = empty(xp, shape, dtype)
    a.fill(0)
    return a


def _evict() -> None:
    """Drop every free block (under the lock)."""
    for key in list(_blocks):
        keep = []
        for blk in _blocks[key]:
            if sys.getrefcount(blk) == _REFS_WHEN_FREE:
                _held[0] -= blk.nbytes
            else:
                keep.append(blk)
        if keep:
            _blocks[key] = keep
        else:
            del _blocks[key]


def clear() -> None:
    """Forget every free block (tests; memory measurements)."""
    with _lock:
        _evict()
