"""ember.utils.data.DataLoader with worker processes: order, seeding, sharding, transport,
faults and shutdown (no process or shared-memory file may be left behind)."""
import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch.utils.data as tud

import ember
import ember.utils.data as eud
from ember.utils.data._utils import transport
from ember.utils.data._utils.worker import _generate_state

from test_data import Mixed, same

HERE = os.path.dirname(os.path.abspath(__file__))


def shm_files():
    return {n for n in os.listdir(transport.SHM_DIR) if n.startswith(f"ember_dl_{os.getpid()}_")}


@pytest.fixture(autouse=True)
def no_leftovers():
    before = shm_files()
    yield
    # every worker reaped and every shared-memory file removed
    assert multiprocessing.active_children() == []
    assert shm_files() - before == set()


class Seeds(eud.Dataset):
    """Reports which worker served each index and what its RNGs gave."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = eud.get_worker_info()
        return {"i": i, "wid": info.id, "nw": info.num_workers, "seed": info.seed,
                "pid": os.getpid(), "py": random.random(), "np": float(np.random.rand()),
                "em": float(ember.rand(1).item()), "same_ds": info.dataset is not None}


class Faulty(eud.Dataset):
    def __init__(self, mode, at=5):
        self.mode, self.at = mode, at

    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i == self.at:
            if self.mode == "value":
                raise ValueError(f"boom at {i}")
            if self.mode == "key":
                raise KeyError("missing")
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.mode == "sleep":
                time.sleep(3)
        return i


class Sharded(eud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = eud.get_worker_info()
        lo, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(lo, self.n, step))


def as_torch(x):
    """``x`` with every ember tensor replaced by torch's, to compare two ember results."""
    import torch
    if isinstance(x, ember.Tensor):
        return torch.from_numpy(x.numpy().copy())
    if isinstance(x, dict):
        return type(x)((k, as_torch(v)) for k, v in x.items())
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*map(as_torch, x))
    if isinstance(x, (list, tuple)):
        return type(x)(map(as_torch, x))
    return x


def flat(batches):
    return [i for b in batches for i in b.tolist()]


def test_two_workers_give_the_same_batches_as_none_and_as_torch():
    w2 = list(eud.DataLoader(Mixed(ember), batch_size=3, num_workers=2))
    w0 = list(eud.DataLoader(Mixed(ember), batch_size=3))
    same(w2, as_torch(w0))
    import torch
    same(w2, list(tud.DataLoader(Mixed(torch), batch_size=3)))


def test_shuffled_workers_follow_the_seeded_sampler_and_large_batches_use_shm():
    x = np.random.default_rng(0).standard_normal((64, 600), dtype=np.float32)  # 4 rows > 64 KiB
    ds = eud.TensorDataset(ember.from_numpy(x), ember.arange(64))

    def run(nw, **kw):
        g = ember.Generator().manual_seed(4)
        return list(eud.DataLoader(ds, batch_size=16, shuffle=True, num_workers=nw,
                                   generator=g, **kw))
    w0, w2 = run(0), run(2)
    for (a, ia), (b, ib) in zip(w2, w0):
        assert ia.tolist() == ib.tolist()
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sorted(flat(ib for _, ib in w2)) == list(range(64))
    a = w2[0][0].numpy()
    assert a.flags.writeable and not a.flags.owndata  # built on the shared mapping
    a[0, 0] = 1.0  # and private to this process
    unordered = run(2, in_order=False)
    assert sorted(flat(i for _, i in unordered)) == list(range(64))


def test_transport_roundtrip_inline_and_shared(tmp_path):
    r, w = multiprocessing.Pipe(duplex=False)
    big = np.arange(40000, dtype=np.float64).reshape(200, 200)
    obj = {"big": ember.from_numpy(big), "small": np.arange(5), "s": "x", "f": big[:4, ::2]}
    prefix = f"ember_dl_{os.getpid()}_test_"
    try:
        transport.Sender(w, prefix).send(obj)
        assert len(shm_files()) == 1
        out = transport.decode(r.recv_bytes())
    finally:
        transport.unlink_prefix(prefix)
    assert shm_files() == set()  # unlinked as soon as it is mapped
    np.testing.assert_array_equal(out["big"].numpy(), big)
    np.testing.assert_array_equal(out["f"], big[:4, ::2])  # non-contiguous: in the pickle
    assert out["s"] == "x" and out["small"].tolist() == [0, 1, 2, 3, 4]
    # No shared memory: everything through the pipe (sent from a thread: it exceeds the pipe's
    # buffer, so it needs a concurrent reader).
    import threading
    th = threading.Thread(target=transport.Sender(w, None).send, args=(obj,))
    th.start()
    np.testing.assert_array_equal(transport.decode(r.recv_bytes())["big"].numpy(), big)
    th.join()
    r.close()
    w.close()


def test_worker_seeding_and_info():
    g = ember.Generator().manual_seed(123)
    loader = eud.DataLoader(Seeds(), batch_size=None, num_workers=2, generator=g)
    out = list(loader)
    base = eud.sampler._random_seed(ember.Generator().manual_seed(123))  # the first draw
    for k, d in enumerate(out):
        wid = k % 2
        assert d["i"] == k and d["wid"] == wid and d["nw"] == 2 and d["seed"] == base + wid
        assert d["same_ds"] and d["pid"] != os.getpid()
    for wid in (0, 1):
        first = [d for d in out if d["wid"] == wid][0]
        assert first["py"] == random.Random(base + wid).random()
        assert first["np"] == np.random.RandomState(_generate_state(base, wid)).rand()
        assert first["em"] == ember.rand(1, generator=ember.Generator().manual_seed(
            base + wid)).item()
    from torch.utils.data._utils.worker import _generate_state as torch_state
    for s, wid in [(base, 0), (2 ** 63 - 1, 3), (12345, 7)]:
        assert _generate_state(s, wid) == torch_state(s, wid)


class BlasThreads(eud.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        from threadpoolctl import threadpool_info
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_workers_use_one_blas_thread_as_torch_workers_use_one_thread():
    pytest.importorskip("threadpoolctl")
    out = list(eud.DataLoader(BlasThreads(), batch_size=None, num_workers=2))
    assert len(out) == 2 and all(out) and all(n == 1 for counts in out for n in counts)


def test_worker_init_fn_and_persistent_workers():
    calls = multiprocessing.get_context("fork").Queue()

    def init(wid):
        calls.put((wid, eud.get_worker_info().id))

    loader = eud.DataLoader(Seeds(), batch_size=4, num_workers=2, worker_init_fn=init,
                            persistent_workers=True)
    e1 = list(loader)
    it = iter(loader)
    next(it)  # leave the second epoch unfinished: the third must still be complete
    e3 = list(loader)
    assert sorted([calls.get(timeout=5), calls.get(timeout=5)]) == [(0, 0), (1, 1)]
    assert [b["i"].tolist() for b in e3] == [b["i"].tolist() for b in e1] == [[0, 1, 2, 3],
                                                                            [4, 5, 6, 7]]
    pids = {p for b in e1 + e3 for p in b["pid"].tolist()}
    assert len(pids) == 2  # the same two processes served every epoch
    del it, loader


def test_iterable_dataset_sharded_across_workers_yields_each_element_once():
    got = flat(eud.DataLoader(Sharded(23), batch_size=4, num_workers=2))
    assert sorted(got) == list(range(23))
    got = list(eud.DataLoader(Sharded(7), batch_size=None, num_workers=2))
    assert sorted(got) == list(range(7))
    loader = eud.DataLoader(Sharded(9), batch_size=2, num_workers=2, persistent_workers=True)
    assert sorted(flat(loader)) == sorted(flat(loader)) == list(range(9))
    del loader


@pytest.mark.parametrize("mode,exc", [("value", ValueError), ("key", KeyError)])
def test_worker_exception_is_reraised_with_its_traceback(mode, exc):
    loader = eud.DataLoader(Faulty(mode), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).tolist() == [0, 1] and next(it).tolist() == [2, 3]
    with pytest.raises(exc) as info:
        next(it)  # indices 4, 5: the third task, worker 0's
    msg = str(info.value)
    assert f"Caught {exc.__name__} in DataLoader worker process 0." in msg
    assert "Original Traceback (most recent call last):" in msg
    assert "__getitem__" in msg and ("boom at 5" in msg or "missing" in msg)
    assert next(it).tolist() == [6, 7]  # the loader goes on, as torch's does
    del it, info  # the traceback's frames hold the iterator too


def test_unpicklable_exception_or_batch_is_still_reported():
    class LocalError(Exception):
        pass

    class Bad(eud.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            if i == 0:
                raise LocalError("local trouble")
            return lambda: i  # a batch that cannot be pickled

    it = iter(eud.DataLoader(Bad(), batch_size=None, num_workers=1))
    with pytest.raises(RuntimeError, match=r"Caught LocalError in DataLoader worker process 0"
                                           r"\.\nOriginal Traceback(.|\n)*local trouble"):
        next(it)
    with pytest.raises(Exception, match=r"in DataLoader worker process 0(.|\n)*pickle"):
        next(it)
    del it


def test_killed_worker_raises_instead_of_hanging():
    it = iter(eud.DataLoader(Faulty("kill"), batch_size=2, num_workers=2))
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+ \(killed by "
                                           r"signal: SIGKILL\)\) exited unexpectedly"):
        list(it)
    assert multiprocessing.active_children() == []  # the other worker is stopped at once


def test_timeout():
    it = iter(eud.DataLoader(Faulty("sleep", at=0), batch_size=2, num_workers=1, timeout=0.3))
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0.3 seconds") as info:
        next(it)
    del info
    t0 = time.perf_counter()
    del it  # the sleeping worker is terminated, not waited for
    assert time.perf_counter() - t0 < 3


def test_break_and_del_shut_workers_down():
    x = ember.zeros(200, 1000)  # 800 KB batches travel through shared memory
    loader = eud.DataLoader(eud.TensorDataset(x), batch_size=50, num_workers=2)
    for _ in loader:
        break
    assert multiprocessing.active_children() == []
    it = iter(loader)
    next(it)
    assert len(multiprocessing.active_children()) == 2
    del it
    assert multiprocessing.active_children() == []


def test_spawn_context():
    ds = eud.TensorDataset(ember.arange(6))
    out = list(eud.DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn"))
    assert [b.tolist() for (b,) in out] == [[0, 1, 2, 3], [4, 5]]


def test_interpreter_exit_leaves_no_worker_or_file():
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.path.dirname(HERE)!r})
        import os, ember, ember.utils.data as eud
        it = iter(eud.DataLoader(eud.TensorDataset(ember.zeros(64, 5000)), batch_size=16,
                                 num_workers=2))
        next(it)
        print(os.getpid(), *[w.pid for w in it._workers], flush=True)
        # exit with the iterator and its workers alive
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    main, *workers = map(int, out.stdout.split())
    assert len(workers) == 2
    for pid in workers:  # terminated and reaped by the exiting interpreter, not orphaned
        assert not os.path.exists(f"/proc/{pid}")
    assert not [n for n in os.listdir(transport.SHM_DIR) if n.startswith(f"ember_dl_{main}_")]


def test_pickled_ember_tensor_keeps_its_array_out_of_band():
    t = ember.arange(100000, dtype=ember.float32)
    bufs = []
    head = pickle.dumps(t, protocol=5, buffer_callback=bufs.append)
    assert len(head) < 1000 and len(bufs) == 1
    assert pickle.loads(head, buffers=bufs).tolist()[-1] == 99999.0
