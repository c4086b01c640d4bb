"""What runs inside a DataLoader worker process: seeding, ``get_worker_info`` and the loop
that fetches the batches whose indices the main process sends.

Mirrors ``torch/utils/data/_utils/worker.py``: worker ``i`` seeds Python's ``random`` and
ember with ``base_seed + i`` and NumPy's global RNG with ``_generate_state(base_seed, i)``.
"""
from __future__ import annotations

import os
import pickle
import random
import sys
import traceback
from dataclasses import dataclass

import numpy as np

__all__ = ["WorkerInfo", "get_worker_info"]

_worker_info = None


@dataclass(frozen=True)
class WorkerInfo:
    """The current worker: ``id``, ``num_workers``, ``seed`` and this process's ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info():
    """Information about the current DataLoader worker; ``None`` in the main process."""
    return _worker_info


@dataclass(frozen=True)
class _IterableDatasetStopIteration:
    """A worker's IterableDataset is exhausted."""

    worker_id: int


@dataclass(frozen=True)
class _ResumeIteration:
    """Persistent workers: start a new epoch (recreate the fetcher)."""


class KeyErrorMessage(str):
    """A str whose repr is itself, so a re-raised KeyError shows the traceback text."""

    __slots__ = ()

    def __repr__(self):
        return self


class ExceptionWrapper:
    """An exception's type and formatted traceback, to re-raise in another process.

    ``reraise`` raises ``"Caught X in DataLoader worker process N.\\nOriginal Traceback ..."``
    as torch's ``torch._utils.ExceptionWrapper`` does.
    """

    def __init__(self, exc_info=None, where="in background", detail=None):
        if exc_info is None:
            exc_info = sys.exc_info()
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        self.where = where
        self.detail = detail  # a line after the first, e.g. the dataset index that failed

    def __getstate__(self):
        state = dict(self.__dict__)
        try:
            pickle.dumps(self.exc_type)
        except Exception:  # e.g. a class local to a function: raise it as a RuntimeError
            state["exc_type"] = RuntimeError
            state["type_name"] = self.exc_type.__name__
        return state

    def reraise(self):
        name = getattr(self, "type_name", None) or self.exc_type.__name__
        msg = f"Caught {name} {self.where}.\nOriginal {self.exc_msg}"
        detail = getattr(self, "detail", None)
        if detail:  # after the traceback, next to the error line a reader looks at first
            msg = f"{msg.rstrip()}\n{detail}"
        if self.exc_type is KeyError:
            # KeyError reprs its argument, which would make the traceback unreadable.
            msg = KeyErrorMessage(msg)
        elif getattr(self.exc_type, "message", None):
            raise self.exc_type(message=msg)
        try:
            exception = self.exc_type(msg)
        except Exception:
            # An exception that cannot be built from one message: say what it was instead.
            raise RuntimeError(msg) from None
        try:
            raise exception
        finally:
            # Break the exception -> traceback -> this frame -> exception cycle, so the
            # DataLoader iterator in the traceback is freed (and its workers stopped) without
            # waiting for the garbage collector.
            del exception


def _generate_state(base_seed, worker_id):
    """NumPy's seed for a worker: torch's port of NumPy's SeedSequence hashing of
    ``[worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32, 0]`` into four 32-bit words."""
    INIT_A = 0x43B0D7E5
    MULT_A = 0x931E8875
    INIT_B = 0x8B51F9DD
    MULT_B = 0x58F38DED
    MIX_MULT_L = 0xCA01F9DD
    MIX_MULT_R = 0x4973F715
    XSHIFT = 4 * 8 // 2
    MASK32 = 0xFFFFFFFF

    entropy = [worker_id, base_seed & MASK32, base_seed >> 32, 0]
    pool = [0] * 4
    hash_const_A = INIT_A

    def hash(value):
        nonlocal hash_const_A
        value = (value ^ hash_const_A) & MASK32
        hash_const_A = (hash_const_A * MULT_A) & MASK32
        value = (value * hash_const_A) & MASK32
        value = (value ^ (value >> XSHIFT)) & MASK32
        return value

    def mix(x, y):
        result_x = (MIX_MULT_L * x) & MASK32
        result_y = (MIX_MULT_R * y) & MASK32
        result = (result_x - result_y) & MASK32
        result = (result ^ (result >> XSHIFT)) & MASK32
        return result

    for i in range(len(pool)):
        pool[i] = hash(entropy[i])
    for i_src in range(len(pool)):
        for i_dst in range(len(pool)):
            if i_src != i_dst:
                pool[i_dst] = mix(pool[i_dst], hash(pool[i_src]))

    hash_const_B = INIT_B
    state = []
    for i_dst in range(4):
        data_val = pool[i_dst]
        data_val = (data_val ^ hash_const_B) & MASK32
        hash_const_B = (hash_const_B * MULT_B) & MASK32
        data_val = (data_val * hash_const_B) & MASK32
        data_val = (data_val ^ (data_val >> XSHIFT)) & MASK32
        state.append(data_val)
    return state


def _one_blas_thread():
    """One BLAS thread per worker, as torch's ``torch.set_num_threads(1)`` in its workers, so
    ``num_workers`` processes do not oversubscribe the cores (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def _seed_worker(base_seed, worker_id):
    """Seed every RNG a dataset may use, as torch does; returns ``base_seed + worker_id``."""
    import ember
    seed = base_seed + worker_id
    random.seed(seed)
    ember.manual_seed(seed)
    np.random.seed(_generate_state(base_seed, worker_id))
    return seed


_PR_SET_PDEATHSIG = 1


def _die_with_parent(use_pdeathsig, interval, shm_prefix):
    """Make this worker end when its parent does, even while stuck in user code: the kernel's
    parent-death signal (Linux ``prctl``, only when the parent's main thread started us: the
    signal follows the thread), and a watchdog thread on ``os.getppid()`` everywhere (it
    cannot help a C call that holds the GIL; the signal can)."""
    import threading
    import time
    parent = os.getppid()
    if use_pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    def watch():
        while True:
            time.sleep(min(interval, 1.0))  # a sleeping thread costs nothing
            if os.getppid() != parent:  # orphaned: remove what nobody will map, then go
                if shm_prefix is not None:
                    from .transport import unlink_prefix
                    unlink_prefix(shm_prefix)
                os._exit(1)

    threading.Thread(target=watch, name="ember-dl-parent-watchdog", daemon=True).start()


def _failure_detail(fetcher, index):
    """Which dataset index made the fetch fail (torch names only the worker)."""
    bad = getattr(fetcher, "failed_index", None)
    if bad is not None:
        batch = "" if bad is index else f" (in the batch of indices {_short_list(index)})"
        return f"It failed on dataset index {bad!r}{batch}."
    if index is not None and not isinstance(index, (int, str)) and hasattr(index, "__len__"):
        return f"It failed fetching the batch of dataset indices {_short_list(index)}."
    return None


def _short_list(index):
    items = list(index)
    return repr(items) if len(items) <= 32 else repr(items[:32])[:-1] + ", ...]"


def _worker_loop(dataset_kind, dataset, index_conn, result_conn, auto_collation, collate_fn,
                 drop_last, base_seed, init_fn, worker_id, num_workers, shm_prefix,
                 manager_pid, status_interval, pdeathsig=False):
    """Fetch ``(task_idx, index)`` requests from ``index_conn`` until ``None`` arrives.

    Each answer is ``(task_idx, data)`` where data is the batch, an ``ExceptionWrapper`` or
    ``_IterableDatasetStopIteration``. The worker also leaves when its parent dies, even
    from inside ``__getitem__`` (``_die_with_parent``).
    """
    from ..dataloader import _DatasetKind
    from .transport import Sender, unlink_prefix

    global _worker_info
    _die_with_parent(pdeathsig, status_interval, shm_prefix)
    sender = Sender(result_conn, shm_prefix)
    fetcher = None
    try:
        _one_blas_thread()
        seed = _seed_worker(base_seed, worker_id)
        _worker_info = WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed,
                                  dataset=dataset)
        init_exception = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                  collate_fn, drop_last)
        except Exception:
            init_exception = ExceptionWrapper(where=f"in DataLoader worker process {worker_id}")

        iteration_end = False
        while True:
            if not index_conn.poll(status_interval):
                if os.getppid() != manager_pid:  # orphaned: the main process is gone
                    break
                continue
            try:
                r = index_conn.recv()
            except EOFError:
                break
            if r is None:
                break
            if isinstance(r, _ResumeIteration):
                sender.send((r, None))
                iteration_end = False
                if init_exception is None:
                    fetcher = _DatasetKind.create_fetcher(dataset_kind, dataset, auto_collation,
                                                          collate_fn, drop_last)
                continue
            if iteration_end:
                continue
            idx, index = r
            if init_exception is not None:
                data = init_exception
                init_exception = None
            else:
                try:
                    data = fetcher.fetch(index)
                except Exception as e:
                    if isinstance(e, StopIteration) and dataset_kind == _DatasetKind.Iterable:
                        data = _IterableDatasetStopIteration(worker_id)
                        iteration_end = True
                    else:
                        data = ExceptionWrapper(
                            where=f"in DataLoader worker process {worker_id}",
                            detail=_failure_detail(fetcher, index))
            try:
                sender.send((idx, data))
            except (BrokenPipeError, ConnectionResetError):
                break  # the main process stopped listening
            except Exception:  # e.g. the batch cannot be pickled: report it instead
                sender.send((idx, ExceptionWrapper(
                    where=f"in DataLoader worker process {worker_id}")))
            del data, idx, index, r
    except KeyboardInterrupt:
        pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        if shm_prefix is not None and os.getppid() != manager_pid:
            unlink_prefix(shm_prefix)  # nobody is left to map what this worker wrote
