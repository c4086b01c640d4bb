"""DataLoader workers leave nothing behind and do not outlive their parent (issue 16).

Each scenario runs a loader in a child process (its own session, so the test can kill the
whole group) and checks, from outside, /dev/shm and the worker pids.
"""
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

import ember
import ember.utils.data as eud

ROOT = os.path.dirname(os.path.dirname(ember.__file__))


@pytest.fixture(autouse=True)
def no_leftover_workers():
    yield
    assert multiprocessing.active_children() == []


def _spawn(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)


def _gone(pid):
    """Dead, or a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _shm_files(pid):
    try:
        return [n for n in os.listdir("/dev/shm") if n.startswith(f"ember_dl_{pid}_")]
    except FileNotFoundError:
        return []


_BIG_SAMPLES = r"""
import sys, time, numpy as np, ember, ember.utils.data as eud

class Big(eud.Dataset):  # 4 MB samples: every batch goes through shared memory
    def __len__(self):
        return 64
    def __getitem__(self, i):
        return ember.from_numpy(np.full(1 << 20, i, np.float32))

it = iter(eud.DataLoader(Big(), batch_size=2, num_workers=2, prefetch_factor=4))
first = next(it)
print(" ".join(str(w.pid) for w in it._workers), flush=True)
time.sleep(1.0)  # the workers fill every prefetch slot: batches in flight, unread
print("go", flush=True)
time.sleep(600)
"""


def test_sigkill_of_the_whole_group_leaves_no_shared_memory():
    proc = _spawn(_BIG_SAMPLES)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert proc.stdout.readline().strip() == "go"
        assert _shm_files(proc.pid) == []  # batches travel as unnamed memfds
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert _wait_gone(workers, 10)
    assert _shm_files(proc.pid) == []


_STUCK = r"""
import sys, threading, time, ember.utils.data as eud

class Stuck(eud.Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        time.sleep(1000)  # no timeout on the loader: only the parent's death ends this

def run():
    it = iter(eud.DataLoader(Stuck(), batch_size=None, num_workers=2))
    print(" ".join(str(w.pid) for w in it._workers), flush=True)
    next(it)

if sys.argv[1] == "thread":  # the parent-death signal is not used: the watchdog is
    t = threading.Thread(target=run)
    t.start()
    t.join()
else:
    run()
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_workers_stuck_in_getitem_exit_when_the_parent_is_terminated(where):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", _STUCK, where], env=env,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        assert _wait_gone(workers, 10), "a worker outlived its parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


class _FailsAt(eud.Dataset):
    def __init__(self, bad):
        self.bad = bad

    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i == self.bad:
            raise ValueError(f"sample {i} is corrupt")
        return i


class _FailsInBatch(_FailsAt):
    def __getitems__(self, indices):
        raise ValueError("the whole batch is corrupt")


@pytest.mark.parametrize("dataset,kw,detail", [
    (_FailsAt(5), {"batch_size": 4}, "It failed on dataset index 5 (in the batch of indices "
                                     "[4, 5, 6, 7])."),
    (_FailsAt(5), {"batch_size": None}, "It failed on dataset index 5."),
    (_FailsInBatch(5), {"batch_size": 4}, "It failed fetching the batch of dataset indices "
                                          "[0, 1, 2, 3]."),
])
def test_worker_errors_name_the_failing_dataset_index(dataset, kw, detail):
    it = iter(eud.DataLoader(dataset, num_workers=1, **kw))
    with pytest.raises(ValueError) as info:
        for _ in it:
            pass
    it._shutdown_workers()  # the traceback in ``info`` keeps the iterator (and workers) alive
    msg = str(info.value)
    assert msg.startswith("Caught ValueError in DataLoader worker process 0.\nOriginal ")
    assert msg.rstrip().endswith(detail), msg


@pytest.mark.parametrize("duplex", [True, False])
def test_transport_by_descriptor_and_by_named_file(duplex):
    """A socket pair carries the data as a memfd (never named); a plain pipe falls back to
    a /dev/shm file that the receiver unlinks as it opens it."""
    import numpy as np

    from ember.utils.data._utils import transport

    r, w = multiprocessing.Pipe(duplex=duplex)
    prefix = f"ember_dl_{os.getpid()}_test_"
    sender = transport.Sender(w, prefix)
    assert sender.fds == duplex
    big = np.arange(1 << 18, dtype=np.float64)
    sender.send({"x": big, "small": 3})
    named = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
    assert len(named) == (0 if duplex else 1)
    out = transport.decode(r.recv_bytes(), r)
    np.testing.assert_array_equal(out["x"], big)
    assert out["small"] == 3
    assert [n for n in os.listdir("/dev/shm") if n.startswith(prefix)] == []
    r.close()
    w.close()
