"""Atomic saves leave nothing behind (issue 16): a save interrupted by any exception removes
its temp file, and the next save to a path removes the temp files of saves killed outright
(SIGKILL) whose process is gone, and nothing else (NOTE [ Save temp files ])."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ember

TEMP = re.compile(r"\.model\.pt\.ember-tmp-(\d+)-[0-9a-f]{16}")


def temps(folder):
    return sorted(n for n in os.listdir(folder) if TEMP.fullmatch(n))


class _Interrupt:
    def __init__(self, exc):
        self.exc = exc

    def __reduce__(self):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), MemoryError(), RuntimeError("disk"),
                                 SystemExit(3)])
def test_every_exception_removes_the_temp_file(tmp_path, exc):
    path = tmp_path / "model.pt"
    ember.save({"w": ember.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(type(exc)):
        ember.save({"w": ember.zeros(3), "boom": _Interrupt(exc)}, path)
    assert os.listdir(tmp_path) == ["model.pt"]
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert ember.load(path)["w"].tolist() == [1, 1, 1]


_SLOW_SAVE = r"""
import sys, time, numpy as np, ember

class Stall:  # pickled after the temp file is open: the parent kills us here
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(120)

ember.save({"w": ember.from_numpy(np.ones(1 << 22, np.float32)), "stall": Stall()},
           sys.argv[1])
"""


def _killed_save(path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ember.__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return proc.pid


def test_sigkill_mid_save_leftover_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.pt"
    ember.save({"w": ember.ones(2)}, path)
    first = _killed_save(path)
    assert [int(TEMP.fullmatch(n).group(1)) for n in temps(tmp_path)] == [first]
    second = _killed_save(path)  # its start removed the first crash's leftover
    assert [int(TEMP.fullmatch(n).group(1)) for n in temps(tmp_path)] == [second]
    dead = [first, second]
    assert ember.load(path)["w"].tolist() == [1, 1]  # the kill never tore the checkpoint
    # what must survive: a live process's temp file, other programs' and other paths' files
    live = f".model.pt.ember-tmp-{os.getpid()}-{'0' * 16}"
    keep = [live, ".model.pt.tmp", ".model.pt.ember-tmp-1x-0123456789abcdef",
            f".other.pt.ember-tmp-{dead[0]}-{'1' * 16}", "model.pt.ember-tmp-1-0000000000000000"]
    for n in keep:
        (tmp_path / n).write_bytes(b"x")
    ember.save({"w": ember.full((2,), 5.0)}, path)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["model.pt"])
    assert ember.load(path)["w"].tolist() == [5, 5]


def test_temp_names_are_emberish_and_private(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.basename(src), os.stat(src).st_mode & 0o777))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    ember.save(ember.ones(1), tmp_path / "model.pt")
    (name, _), = seen
    assert TEMP.fullmatch(name) and int(TEMP.fullmatch(name).group(1)) == os.getpid()


def test_a_dead_pid_really_is_dead():
    """The harness's premise: a reaped child's pid is not alive (unless reused at once)."""
    from ember.serialization import _pid_alive
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    time.sleep(0.01)
    assert _pid_alive(os.getpid())
    assert not _pid_alive(proc.pid) or proc.pid in (os.getpid(),)
    assert not _pid_alive(2 ** 22 + 12345)  # above Linux's pid_max
    np.testing.assert_equal(_pid_alive(1), True)  # init: alive, owned by someone else
