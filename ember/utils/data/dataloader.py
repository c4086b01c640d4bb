"""``DataLoader``: batches from a dataset, in the main process or in worker processes.

Mirrors ``torch/utils/data/dataloader.py``. With ``num_workers > 0`` each worker has its own
index pipe and result pipe; tasks go round-robin to the workers, at most
``prefetch_factor * num_workers`` in flight, and results are handed back in sampler order
(or as they come with ``in_order=False``). Large arrays travel through shared memory (see
``_utils/transport.py``). A worker's exception is re-raised with its traceback; a worker that
dies is noticed through its process sentinel; workers are shut down when the iterator is
exhausted, deleted or garbage-collected, and at interpreter exit.
"""
from __future__ import annotations

import atexit
import itertools
import math
import os
import sys
import threading
import time
import warnings
import weakref

from . import _utils
from ._utils import transport as _transport
from ._utils.collate import default_collate, default_convert
from ._utils.worker import ExceptionWrapper, get_worker_info
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, _random_seed

__all__ = ["DataLoader", "get_worker_info", "default_collate", "default_convert"]


class _DatasetKind:
    Map = 0
    Iterable = 1

    @staticmethod
    def create_fetcher(kind, dataset, auto_collation, collate_fn, drop_last):
        if kind == _DatasetKind.Map:
            return _utils.fetch._MapDatasetFetcher(dataset, auto_collation, collate_fn,
                                                   drop_last)
        return _utils.fetch._IterableDatasetFetcher(dataset, auto_collation, collate_fn,
                                                    drop_last)


class _InfiniteConstantSampler(Sampler):
    """``itertools.repeat(None)``: the sampler of an IterableDataset."""

    def __iter__(self):
        while True:
            yield None


def _cpu_count():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _default_context():
    """fork on Linux, as PyTorch gets there (fast start, no pickling of the dataset);
    elsewhere the platform's default start method."""
    import multiprocessing
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class DataLoader:
    """Iterate over ``dataset`` in (shuffled, collated) batches; see ``torch.utils.data``.

    ``batch_size=None`` turns auto-batching off (each sample goes through ``default_convert``);
    ``num_workers > 0`` loads in worker processes; ``generator`` drives ``RandomSampler`` and
    the workers' base seed.
    """

    __initialized = False

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None,
                 persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True):
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; "
                             "use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        elif num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = _DatasetKind.Iterable
            if shuffle not in {False, None}:
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle "
                                 f"option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            elif batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = _DatasetKind.Map

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")

        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive "
                                 "with batch_size, shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None:
            if drop_last:
                raise ValueError("batch_size=None option disables auto-batching "
                                 "and is mutually exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == _DatasetKind.Iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)

        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator

        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers

        self.__initialized = True
        self._IterableDataset_len_called = None
        self._iterator = None
        self.check_worker_number_rationality()

    @property
    def multiprocessing_context(self):
        return self.__multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, multiprocessing_context):
        if multiprocessing_context is not None:
            import multiprocessing
            if self.num_workers > 0:
                if isinstance(multiprocessing_context, str):
                    valid_start_methods = multiprocessing.get_all_start_methods()
                    if multiprocessing_context not in valid_start_methods:
                        raise ValueError(
                            "multiprocessing_context option should specify a valid start "
                            f"method in {valid_start_methods!r}, but got "
                            f"multiprocessing_context={multiprocessing_context!r}")
                    multiprocessing_context = multiprocessing.get_context(
                        multiprocessing_context)
                if not isinstance(multiprocessing_context,
                                  multiprocessing.context.BaseContext):
                    raise TypeError("multiprocessing_context option should be a valid context "
                                    "object or a string specifying the start method, but got "
                                    f"multiprocessing_context={multiprocessing_context}")
            else:
                raise ValueError("multiprocessing_context can only be used with multi-process "
                                 "loading (num_workers > 0), but got "
                                 f"num_workers={self.num_workers}")
        self.__multiprocessing_context = multiprocessing_context

    def __setattr__(self, attr, val):
        if self.__initialized and attr in ("batch_size", "batch_sampler", "sampler",
                                           "drop_last", "dataset", "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after "
                             f"{self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    def _get_iterator(self):
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        self.check_worker_number_rationality()
        return _MultiProcessingDataLoaderIter(self)

    def __iter__(self):
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None or self._iterator._shutdown:  # none yet, or it failed
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self):
        if self._dataset_kind == _DatasetKind.Iterable:
            # An estimate from len(dataset): workers that shard badly can yield more or fewer.
            length = self._IterableDataset_len_called = len(self.dataset)
            if self.batch_size is not None:
                if self.drop_last:
                    length = length // self.batch_size
                else:
                    length = math.ceil(length / self.batch_size)
            return length
        return len(self._index_sampler)

    def check_worker_number_rationality(self):
        """Warn, as PyTorch, when more workers are asked for than there are usable CPUs."""
        if not self.num_workers:
            return
        suggest = _cpu_count()
        if suggest is None or self.num_workers > suggest:
            if suggest is None:
                detail = ("DataLoader is not able to compute a suggested max number of worker "
                          "in current system.")
            else:
                cpuset = "" if hasattr(os, "sched_getaffinity") else \
                    " (`cpuset` is not taken into account)"
                detail = (f"Our suggested max number of worker in current system is {suggest}"
                          f"{cpuset}, which is smaller than what this DataLoader is going to "
                          "create.")
            warnings.warn(f"This DataLoader will create {self.num_workers} worker processes in "
                          f"total. {detail} Please be aware that excessive worker creation might "
                          "get DataLoader running slow or even freeze, lower the worker number "
                          "to avoid potential slowness/freeze if necessary.", stacklevel=2)


class _BaseDataLoaderIter:
    def __init__(self, loader):
        self._dataset = loader.dataset
        self._dataset_kind = loader._dataset_kind
        self._IterableDataset_len_called = loader._IterableDataset_len_called
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        if loader.pin_memory and loader.pin_memory_device:
            warnings.warn("pin_memory_device is deprecated, the current accelerator will be used "
                          "as the device,ignore pin_memory_device="
                          f"'{loader.pin_memory_device}'.", stacklevel=3)
        if loader.pin_memory:
            # As PyTorch without an accelerator: pinning is a no-op on CPU.
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, "
                          "then device pinned memory won't be used.", stacklevel=3)
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._sampler_iter = iter(self._index_sampler)
        # Drawn for every iterator, workers or not, as torch does (it advances the generator).
        self._base_seed = _random_seed(loader.generator)
        self._persistent_workers = loader.persistent_workers
        self._num_yielded = 0

    def __iter__(self):
        return self

    def _reset(self, loader, first_iter=False):
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._IterableDataset_len_called = loader._IterableDataset_len_called

    def _next_index(self):
        return next(self._sampler_iter)  # may raise StopIteration

    def _next_data(self):
        raise NotImplementedError

    def __next__(self):
        data = self._next_data()
        self._num_yielded += 1
        if self._dataset_kind == _DatasetKind.Iterable \
                and self._IterableDataset_len_called is not None \
                and self._num_yielded > self._IterableDataset_len_called:
            msg = (f"Length of IterableDataset {self._dataset} was reported to be "
                   f"{self._IterableDataset_len_called}(when accessing len(dataloader)), but "
                   f"{self._num_yielded} samples have been fetched. ")
            if self._num_workers > 0:
                msg += ("For multiprocessing data-loading, this could be caused by not properly "
                        "configuring the IterableDataset replica at each worker.")
            warnings.warn(msg, stacklevel=2)
        return data

    def __len__(self):
        return len(self._index_sampler)

    def __getstate__(self):
        raise NotImplementedError(f"{self.__class__.__name__} cannot be pickled")


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader):
        super().__init__(loader)
        assert self._timeout == 0 and self._num_workers == 0
        self._dataset_fetcher = _DatasetKind.create_fetcher(
            self._dataset_kind, self._dataset, self._auto_collation, self._collate_fn,
            self._drop_last)

    def _next_data(self):
        index = self._next_index()  # may raise StopIteration
        return self._dataset_fetcher.fetch(index)  # may raise StopIteration


# Iterators with live workers, shut down at interpreter exit before multiprocessing's own
# handler terminates daemonic children (so shared-memory files are removed too).
_live_iterators = weakref.WeakSet()
_live_lock = threading.Lock()
_iter_counter = itertools.count()


@atexit.register
def _shutdown_live_iterators():
    with _live_lock:
        iterators = list(_live_iterators)
    for it in iterators:
        it._shutdown_workers()


class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """Loads batches in ``num_workers`` processes; see the module docstring for the protocol.

    Task ``k`` (the k-th batch of indices) goes to the next worker round-robin (skipping
    exhausted IterableDataset workers; with ``in_order=False`` the next one with room);
    ``_task_info[k]`` is ``(worker,)`` while pending and ``(worker, data)`` once received
    out of order.
    """

    def __init__(self, loader):
        super().__init__(loader)
        self._prefetch_factor = loader.prefetch_factor
        self._in_order = loader.in_order
        assert self._num_workers > 0 and self._prefetch_factor > 0
        ctx = loader.multiprocessing_context or _default_context()
        self._owner_pid = os.getpid()
        self._shutdown = False
        self._workers = []
        self._index_conns = []
        self._result_conns = []
        self._shm_prefix = (f"ember_dl_{os.getpid()}_{next(_iter_counter)}_"
                            if _transport.shm_available() else None)
        with _live_lock:
            _live_iterators.add(self)
        try:
            for i in range(self._num_workers):
                index_r, index_w = ctx.Pipe(duplex=False)
                # a socket pair: shared-memory batches follow their message as descriptors
                result_r, result_w = ctx.Pipe(duplex=True)
                w = ctx.Process(
                    target=_utils.worker._worker_loop,
                    args=(self._dataset_kind, self._dataset, index_r, result_w,
                          self._auto_collation, self._collate_fn, self._drop_last,
                          self._base_seed, loader.worker_init_fn, i, self._num_workers,
                          None if self._shm_prefix is None else f"{self._shm_prefix}{i}_",
                          self._owner_pid, _utils.MP_STATUS_CHECK_INTERVAL),
                    kwargs={"pdeathsig": threading.current_thread() is threading.main_thread()},
                    daemon=True)
                # Registered before start so a failed start still closes them.
                self._index_conns.append(index_w)
                self._result_conns.append(result_r)
                try:
                    w.start()
                finally:
                    index_r.close()  # the child's ends: only the child keeps them open
                    result_w.close()
                self._workers.append(w)
        except BaseException:
            self._shutdown_workers()
            raise
        self._reset(loader, first_iter=True)

    def _reset(self, loader, first_iter=False):
        super()._reset(loader, first_iter)
        self._send_idx = 0   # index of the next task to send
        self._rcvd_idx = 0   # index of the next task to return
        self._task_info = {}
        self._workers_status = [True] * self._num_workers
        self._workers_num_tasks = [0] * self._num_workers
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            # Persistent workers: drop what an unfinished epoch left in flight, then restart.
            for conn in self._index_conns:
                conn.send(_utils.worker._ResumeIteration())
            for w in range(self._num_workers):
                while True:
                    idx, _ = self._recv(w)
                    if isinstance(idx, _utils.worker._ResumeIteration):
                        break
        for _ in range(self._prefetch_factor * self._num_workers):
            self._try_put_index()

    # ---- receiving --------------------------------------------------------------------------
    def _worker_died(self, ids):
        """Shut everything down and raise the error for the dead workers ``ids``."""
        import signal
        parts = []
        for i in ids:
            w = self._workers[i]
            w.join(0.1)
            code = w.exitcode
            if code is not None and code < 0:
                try:
                    how = f"killed by signal: {signal.Signals(-code).name}"
                except ValueError:
                    how = f"killed by signal {-code}"
            else:
                how = f"exit code {code}"
            parts.append(f"{w.pid} ({how})")
        self._shutdown_workers()
        raise RuntimeError(f"DataLoader worker (pid(s) {', '.join(parts)}) exited unexpectedly")

    def _recv(self, worker_ids):
        """The next message ``(task_idx, data)`` from one of ``worker_ids`` (an int or list)."""
        from multiprocessing.connection import wait
        ids = [worker_ids] if isinstance(worker_ids, int) else worker_ids
        conns = {self._result_conns[i]: i for i in ids}
        sentinels = {self._workers[i].sentinel: i for i in ids}
        timeout = self._timeout if self._timeout > 0 else None
        while True:
            ready = wait(list(conns) + list(sentinels), timeout)
            if not ready:
                raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
            for r in ready:
                if r in conns:
                    try:
                        message = r.recv_bytes()
                    except (EOFError, OSError):
                        self._worker_died([conns[r]])
                    return _transport.decode(message, r)
            # Only sentinels: a worker ended. Data it sent before dying is read first.
            dead = [sentinels[s] for s in ready if s in sentinels]
            if not any(self._result_conns[i].poll() for i in dead):
                self._worker_died(dead)

    def _next_data(self):
        if self._shutdown:  # after a worker failure or an exhausted non-persistent epoch
            raise StopIteration
        while True:
            # Skip tasks that will never be answered: their worker's IterableDataset ended.
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None:
                    if len(info) == 2 or self._workers_status[info[0]]:
                        break
                    del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration

            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                worker_id, data = self._task_info.pop(self._rcvd_idx)
                self._rcvd_idx += 1
                return self._process_data(data, worker_id)

            # In order, the awaited task's worker answers its tasks first-in first-out, so
            # only its pipe needs watching.
            wanted = info[0] if self._in_order else [
                i for i in range(self._num_workers) if self._workers_status[i]]
            idx, data = self._recv(wanted)
            if self._dataset_kind == _DatasetKind.Iterable \
                    and isinstance(data, _utils.worker._IterableDatasetStopIteration):
                self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue
            if idx != self._rcvd_idx:
                if not self._in_order:
                    worker_id = self._task_info.pop(idx)[0]
                    return self._process_data(data, worker_id)
                self._task_info[idx] += (data,)
            else:
                worker_id = self._task_info.pop(idx)[0]
                self._rcvd_idx += 1
                return self._process_data(data, worker_id)

    def _process_data(self, data, worker_id):
        self._workers_num_tasks[worker_id] -= 1
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    # ---- sending ----------------------------------------------------------------------------
    def _try_put_index(self):
        max_tasks = self._prefetch_factor * self._num_workers
        active = [i for i in range(self._num_workers) if self._workers_status[i]]
        if not active or sum(self._workers_num_tasks[i] for i in active) >= max_tasks:
            return
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):  # the next active worker, if any
            worker_queue_idx = next(self._worker_queue_idx_cycle)
            if self._workers_status[worker_queue_idx]:
                if self._in_order:
                    break
                if self._workers_num_tasks[worker_queue_idx] < max_tasks // len(active):
                    break
        else:
            return
        self._index_conns[worker_queue_idx].send((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_queue_idx,)
        self._workers_num_tasks[worker_queue_idx] += 1
        self._send_idx += 1

    def _mark_worker_as_unavailable(self, worker_id):
        """An IterableDataset worker is exhausted: no more tasks for it this epoch."""
        self._workers_status[worker_id] = False
        self._workers_num_tasks[worker_id] = 0
        if not self._persistent_workers:
            try:
                self._index_conns[worker_id].send(None)
            except OSError:
                pass

    # ---- shutdown ---------------------------------------------------------------------------
    def _shutdown_workers(self):
        """Stop every worker (politely, then by signal), reap it and remove its files."""
        if self._shutdown or os.getpid() != getattr(self, "_owner_pid", None):
            return  # done already, or a forked copy of this object in a child
        self._shutdown = True
        try:
            for conn in self._index_conns:
                try:
                    conn.send(None)
                except OSError:
                    pass
            # Read what is in flight, so no worker stays blocked writing to a full pipe.
            for conn in self._result_conns:
                try:
                    while conn.poll():
                        _transport.decode(conn.recv_bytes(), conn)
                except Exception:
                    pass
            deadline = time.monotonic() + 1.0  # then a worker stuck in user code is signalled
            for w in self._workers:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            for w in self._workers:
                if w.is_alive():
                    w.terminate()
                    w.join(timeout=1.0)
                if w.is_alive():
                    w.kill()
                    w.join()
            for conn in self._index_conns + self._result_conns:
                conn.close()
            if self._shm_prefix is not None:
                _transport.unlink_prefix(self._shm_prefix)
            with _live_lock:
                _live_iterators.discard(self)

    def __del__(self):
        try:
            self._shutdown_workers()
        except Exception:
            pass  # interpreter teardown: modules may already be gone
