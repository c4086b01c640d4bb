"""Large elementwise passes split over threads (NOTE [ Threads ]).

NOTE [ Threads ]
PyTorch spreads elementwise and normalisation work over its intra-op threads; a NumPy ufunc
runs on one core.  NumPy's ufunc loops release the GIL, so the rows of a large array can be
processed by several threads at once: ``rows(fn, n, numel)`` calls ``fn(lo, hi)`` on
contiguous row ranges that split ``range(n)`` (``PARTS`` per thread) and returns when all are
done.  The calling thread and pre-started workers claim parts one at a time: a worker that
wakes late (on a loaded machine the wake-up measured 3-4 ms, against ~10-20 us when a core is
free) finds its share already done by the caller, so a split pass is never much slower than
one thread's, and the caller waits only for parts a worker has started.

- When: only when more than one thread is set (``num_threads``: ``set_num_threads``, else
  the BLAS environment variables, else the CPU count, as PyTorch's intra-op pool) and the
  pass touches at least ``MIN_NUMEL`` elements; below that the hand-off (~10-20 us: a queue
  put and a futex wake-up per worker) costs more than half a pass saves.  One thread runs
  ``fn(0, n)`` directly.
- Results: each range is computed by the same NumPy loop as the whole array would be (cuts at
  multiples of ``align`` rows when a kernel groups rows), so results are bit-identical to the
  unthreaded call (tests/test_threads.py); callers thread only passes where that holds
  (elementwise arithmetic and copies, per-row dot products), never a reduction whose order a
  split would change.
- BLAS inside a split (``rows(..., blas1=True)``): while the parts run, the OpenBLAS NumPy's
  wheel bundles is set to one thread (``_blas_threads``: its own ``openblas_set_num_threads``
  through ctypes, ~1 us a call; restored afterwards, also on an exception; nothing is done
  where NumPy has another BLAS), so a part's product never asks OpenBLAS's pool for threads
  the other parts hold.  That count is the process's: a user's own threadpoolctl limit set
  and restored in another thread meanwhile can interleave with it and leave OpenBLAS on one
  thread (found in review), so only the switched-off split below asks for it; batch norm's
  channel sums in blocks (``normalization._chan_sum``) run their blocks on the calling
  thread, each GEMV threaded by OpenBLAS itself as before.  The split: batches of products
  split by product (``conv._bmm``, ``_BMM_SPLIT``): OpenBLAS threads each product of a batch
  on its own, one hand-off and
  join per product, and at load 5.5-6.7 every join waited whenever its worker was
  descheduled (resnet18_step at 2 threads, best 1.22 -> 0.80x torch, median 1.02 -> 0.59x),
  but at load 2.5-3.5 its spinning workers were quicker than a woken ops worker (best 1.44 ->
  1.54x, median 1.17 -> 1.21x), so the split is not the default.  Winograd's kernel
  transform ``U`` in column blocks split likewise (one BLAS call by OpenBLAS's two threads
  before and after): at 2 threads and load ~3 its 256-channel ``U`` took best 1.90 ms
  against 1.19 (median 5.3 against 28), and the step's best went 267 -> 281 ms (median
  311 -> 317): not kept.  Measured with the guard on and off in one process (load 2-3),
  the step was within noise (best 272 -> 281 ms, median 344 -> 317).  On an oversubscribed
  machine the split is on, and convolution runs on one BLAS thread (NOTE [ BLAS under load ]
  below: there OpenBLAS's joins stall).
- Safety: a worker that calls ``rows`` again runs its range serially (no nested hand-off);
  after ``fork`` the child starts its own workers (threads do not survive a fork); an exception
  in any range is re-raised in the caller after every range has finished.
Users: batch norm's forward and backward passes (``ops/normalization.py``); convolution's
im2col, Winograd's cache blocks of samples (``ops/conv.py``: each block's gather, transforms
and products, counted by their work, ``_wino_work``; measured before those blocks), its
padded copies, col2im and transposes; max pooling's windows and gradient scatter
(``ops/pooling.py``).  Measured (``python -m
bench.thread_cpu NAMES 8 --ab`` at 2 BLAS threads, wall clock, best of 8, ember/torch; the
machine loaded by others, load 2.7-3.4, so each figure +-15%): split against one thread,
resnet_block 0.87-1.11 vs 0.99-1.12, conv_gflops (time) 0.72-1.02 vs 0.82-1.15,
resnet18_step 1.13-1.18 vs 1.15-1.22; never slower in a pair of runs, not measured on a
quiet machine.  The activations' blocked kernels split too (``ops/_pointwise.py``: relu,
leaky_relu, GELU, sigmoid, tanh's and sigmoid's backward), and SGD's update in blocks
(NOTE [ Blocked SGD ] in ``optim/sgd.py``); add, mul and the other optimizers' updates do
not yet.  2-D products (fold's GEMM, the weight transform's adjoint, linear layers) are still
threaded by OpenBLAS itself: one hand-off a call.
"""
from __future__ import annotations

import os
import threading

from .. import _runtime

__all__: list = []

MIN_NUMEL = 1 << 20     # elements a pass must touch before it is split (see the note)
PARTS = 4               # parts per thread: a worker that wakes late finds fewer left to do

_local = threading.local()   # .worker is True on worker threads
_pool = {"pid": None, "workers": []}
_lock = threading.Lock()
_count = {"n": None}


def num_threads() -> int:
    """The thread count to split over: ``set_num_threads``'s value, else
    ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (read once), else the CPUs
    this process may use -- the counts NumPy's BLAS starts with.  (A limit set through
    threadpoolctl directly is not seen: asking it costs milliseconds a call.)"""
    if _runtime.state.num_threads is not None:
        return _runtime.state.num_threads
    if _count["n"] is None:
        _count["n"] = _default_count()
    return _count["n"]


def _default_count() -> int:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_count(n) -> None:
    """Use ``n`` threads (None: read the defaults again); tests and benchmarks."""
    _count["n"] = n


class _Job:
    """One ``rows`` call: its parts, claimed one at a time by whichever thread is free."""

    __slots__ = ("fn", "bounds", "next", "left", "lock", "done", "err")

    def __init__(self, fn, bounds):
        self.fn, self.bounds = fn, bounds
        self.next = 0
        self.left = len(bounds)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.err = None

    def work(self) -> None:
        """Run parts until none is left to claim."""
        while True:
            with self.lock:
                i = self.next
                if i >= len(self.bounds):
                    return
                self.next = i + 1
            try:
                self.fn(*self.bounds[i])
            except BaseException as e:  # handed to the caller
                self.err = self.err or e
            with self.lock:
                self.left -= 1
                last = not self.left
            if last:
                self.done.set()


def _worker(inbox):
    _local.worker = True
    while True:
        inbox.get().work()


def _workers(k: int):
    """``k`` started workers' inboxes; restarted in a forked child."""
    from _queue import SimpleQueue  # the C queue (queue.py is not needed), at first use
    with _lock:
        if _pool["pid"] != os.getpid():
            _pool["pid"] = os.getpid()
            _pool["workers"] = []
        ws = _pool["workers"]
        while len(ws) < k:
            inbox = SimpleQueue()
            threading.Thread(target=_worker, args=(inbox,), daemon=True,
                             name=f"ember-ops-{len(ws)}").start()
            ws.append(inbox)
        return ws[:k]


def rows(fn, n: int, numel: int, align: int = 1, blas1: bool = False) -> None:
    """``fn(lo, hi)`` over ranges covering ``range(n)``, cut at multiples of ``align``: on
    several threads when ``numel`` (the elements the pass touches) is at least ``MIN_NUMEL``
    and more than one thread is set; ``blas1``: NumPy's OpenBLAS on one thread meanwhile."""
    if numel < MIN_NUMEL or getattr(_local, "worker", False):
        fn(0, n)
        return
    k = min(num_threads(), n // align)
    if k <= 1:
        fn(0, n)
        return
    step = -(-n // min(n // align, PARTS * k))
    step = -(-step // align) * align
    job = _Job(fn, [(lo, min(lo + step, n)) for lo in range(0, n, step)])
    blas = _blas_threads() if blas1 else None
    prev = blas[0]() if blas else 1
    if prev > 1:  # the parts' own BLAS calls on one thread each (see the note)
        blas[1](1)
    try:
        for inbox in _workers(k - 1):
            inbox.put(job)
        job.work()
        if job.left:  # parts a worker is still running
            job.done.wait()
    finally:
        if prev > 1:
            blas[1](prev)
    if job.err is not None:
        raise job.err


# NOTE [ BLAS under load ]
# OpenBLAS threads a large product by handing parts to its own workers and joining them; on an
# oversubscribed machine a worker is often descheduled, and every join then waits for it.  In
# ResNet-18's step (resnet18_step, 2 threads, 2-core machine at load 5.6-6.9 from others) the
# products' wall time was 3-5x their CPU time: the 36 products of Winograd's weight gradient
# 1,289 ms wall against 241 ms CPU a step, batch norm's channel-sum GEMVs 344 against 87.  So
# while the 1-minute load average is at least ``LOADED_PER_CPU`` per CPU this process may use:
# convolution's F, T and W run their BLAS calls on one OpenBLAS thread (``blas_one``), batches
# of products split by product over the ops threads (``conv._bmm``), and batch norm cuts its
# channel sums into GEMVs OpenBLAS does not thread (``normalization._chan_sum``; it sets no
# count, see below); elementwise passes still split (their caller claims the parts a late
# worker has not).  The same bits either way (tests/test_blas_under_load.py; resnet18_step's
# loss and parameters after two steps too).  resnet18_step in one process, alternating with
# torch (torch at 2 threads, medians of 6): load 6.6-6.9 ember 5,358 -> 629-722 ms against
# torch's 3,284 (1.63 -> 0.19-0.22x); load 5.7-6.3, products split only, 6,260 -> 1,951
# against 2,617.  Below the bound nothing changes: with a core to spare OpenBLAS's spinning
# workers take each part at once (NOTE [ Threads ]: products split by product lost, 1.17 ->
# 1.21x torch median at load 2.5-3.5).  The load average is read at most every
# ``_LOAD_EVERY`` seconds (``os.getloadavg``, ~2 us); it counts this process's own threads
# (about 2-3 on the 2 cores while a step runs), hence 2 per CPU.  The count ``blas_one`` sets
# is the process's, as ``rows(..., blas1=True)``'s: a user's threadpoolctl limit entered in
# another thread while a convolution runs reads 1 and restores 1 (BLAS then stays on one
# thread: slower, the same numbers); a limit set meanwhile is kept (the exit restores only a
# count still at 1).  Batch norm, the reviewed case, sets none.  Nothing is set on one thread
# (``set_num_threads(1)``), inside an ops worker or inside another ``blas_one``.
LOADED_PER_CPU = 2.0  # None: never (tests set 0.0 to force it)
_LOAD_EVERY = 1.0
_load = {"t": None, "on": False}


def loaded() -> bool:
    """Whether the machine is oversubscribed (NOTE [ BLAS under load ]): the 1-minute load
    average at least ``LOADED_PER_CPU`` per usable CPU, read at most every ``_LOAD_EVERY`` s."""
    if LOADED_PER_CPU is None:
        return False
    import time
    now = time.monotonic()
    t = _load["t"]
    if t is None or now - t >= _LOAD_EVERY:
        _load["t"] = now
        try:
            avg = os.getloadavg()[0]
        except (OSError, AttributeError):  # not available on this platform
            avg = 0.0
        _load["on"] = avg >= LOADED_PER_CPU * _cpus()
    return _load["on"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class blas_one:
    """``with blas_one():`` NumPy's OpenBLAS on one thread inside, when more than one thread
    is set and the machine is ``loaded()`` (NOTE [ BLAS under load ]); restored on leaving."""

    __slots__ = ("prev",)

    def __enter__(self):
        self.prev = 1
        if num_threads() > 1 and not getattr(_local, "worker", False) and loaded():
            fns = _blas_threads()
            if fns is not None:
                self.prev = fns[0]()
                if self.prev > 1:
                    fns[1](1)
        return self

    def __exit__(self, *exc):
        if self.prev > 1:
            get, put = _blas_threads()
            if get() == 1:  # another thread's limit set meanwhile is left as it is
                put(self.prev)
        return False


_BLAS_NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
               ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
               ("openblas_get_num_threads", "openblas_set_num_threads"))
_blas: dict = {}


def _blas_threads():
    """``(get, set)`` of the thread count of the OpenBLAS NumPy's wheel bundles (ctypes, ~1 us
    a call), or None where there is none (looked for once)."""
    if "fns" in _blas:
        return _blas["fns"]
    fns = None
    try:
        from . import _blas as blas_lib
        lib = blas_lib._library()
        for get, put in _BLAS_NAMES if lib is not None else ():
            g, s = getattr(lib, get, None), getattr(lib, put, None)
            if g is not None and s is not None:
                import ctypes
                g.argtypes, g.restype = [], ctypes.c_int
                s.argtypes, s.restype = [ctypes.c_int], None
                fns = (g, s)
                break
    except (OSError, AttributeError, ImportError):
        fns = None
    _blas["fns"] = fns
    return fns
