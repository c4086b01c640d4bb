"""``spawn``/``start_processes``: run ``fn(i, *args)`` in ``nprocs`` processes and raise the
first failure in the parent with the child's traceback (PyTorch's
``torch.multiprocessing.spawn``)."""
from __future__ import annotations

import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings

__all__ = ["spawn", "start_processes", "ProcessContext", "ProcessException",
           "ProcessRaisedException", "ProcessExitedException"]


class ProcessException(Exception):
    __slots__ = ["error_index", "error_pid"]

    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.pid = pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """A child process raised: the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """A child process died of a signal or exited with a non-zero code."""

    __slots__ = ["exit_code"]

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int,
                 signal_name=None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return (type(self), (self.msg, self.error_index, self.pid, self.exit_code,
                             self.signal_name))


def _wrap(fn, i, args, error_file):
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass  # the parent stopped us
    except Exception:
        import traceback
        with open(error_file, "wb") as fh:
            pickle.dump(traceback.format_exc(), fh)
        sys.exit(1)


class ProcessContext:
    """The started processes; ``join()`` waits and raises the first failure."""

    def __init__(self, processes, error_files):
        self.error_files = error_files
        self.processes = processes
        self.sentinels = {p.sentinel: i for i, p in enumerate(processes)}

    def pids(self):
        return [int(p.pid) for p in self.processes]

    def _join_all(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for p in self.processes:
            p.join(max(0.0, end - time.monotonic()))

    def join(self, timeout=None, grace_period=None) -> bool:
        """True once every process has exited cleanly; on the first failure the others are
        terminated and ``ProcessRaisedException``/``ProcessExitedException`` is raised."""
        if not self.sentinels:
            return True
        ready = multiprocessing.connection.wait(list(self.sentinels), timeout=timeout)
        failed = None
        for sentinel in ready:
            i = self.sentinels.pop(sentinel)
            self.processes[i].join()
            if self.processes[i].exitcode != 0:
                failed = i
                break
        if failed is None:
            return not self.sentinels
        if grace_period is not None:
            self._join_all(grace_period)
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        self._join_all(30 if grace_period is None else grace_period)
        for p in self.processes:
            if p.is_alive():
                p.kill()
            p.join()
        proc = self.processes[failed]
        if not os.access(self.error_files[failed], os.R_OK):
            code = proc.exitcode
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"<Unknown signal {-code}>"
                raise ProcessExitedException(f"process {failed:d} terminated with signal {name}",
                                             failed, proc.pid, code, name)
            raise ProcessExitedException(f"process {failed:d} terminated with exit code "
                                         f"{code:d}", failed, proc.pid, code)
        with open(self.error_files[failed], "rb") as fh:
            trace = pickle.load(fh)
        raise ProcessRaisedException(
            f"\n\n-- Process {failed:d} terminated with the following error:\n{trace}",
            failed, proc.pid)


# NOTE [ spawn over MPI ]: PyTorch programs start their ranks with
# ``mp.spawn(fn, args, nprocs)`` and call ``init_process_group`` with ``MASTER_ADDR``/
# ``MASTER_PORT`` inside ``fn``. Processes started by ``multiprocessing`` are MPI singletons,
# which MPICH cannot connect to one another (MPI_Comm_accept/connect between singletons fails
# in MPICH 5.0, pmodels/mpich#7805), and children made by ``MPI.COMM_SELF.Spawn`` share their
# fate with the parent (MPICH's process manager kills the parent when a child fails). So when
# the program uses ember.distributed (it has imported it, or MASTER_ADDR/MASTER_PORT are set),
# MPI's launcher is installed and the arguments travel by plain pickle (no shared-memory
# tensors, locks or queues), ``spawn`` runs the ``nprocs`` processes as one MPI job under
# ``mpiexec`` in its own session: ``init_process_group`` in ``fn`` finds its ranks in that job
# and talks over MPI's transport. The parent writes its preparation data (as
# multiprocessing's spawn does: sys.path, cwd, main module), environment and ``(fn, args)``
# to a job folder; each rank records its pid there and, when ``fn`` fails, its traceback or
# exit code, and mpiexec ends the other ranks. ``EMBER_SPAWN_BACKEND=multiprocessing`` turns
# the MPI path off.


class _Unshareable(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    """Pickles what can travel to an MPI rank; tensors (which ``spawn`` would share, not
    copy) refuse."""

    def persistent_id(self, obj):
        from .._tensor import Tensor
        if isinstance(obj, Tensor):
            raise _Unshareable("a tensor argument is shared in memory by multiprocessing")
        return None


def _mpi_payload(fn, args, nprocs, start_method):
    """``(fn, args)`` pickled for the MPI path, or None when spawn should use multiprocessing."""
    if start_method != "spawn" or nprocs < 2:
        return None
    if os.environ.get("EMBER_SPAWN_BACKEND", "") == "multiprocessing":
        return None
    wants = ("ember.distributed" in sys.modules or "MASTER_ADDR" in os.environ
             or "MASTER_PORT" in os.environ)
    if not wants or importlib.util.find_spec("mpi4py") is None or _mpiexec() is None:
        return None
    import io
    buf = io.BytesIO()
    try:
        _PlainPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump((fn, tuple(args)))
    except Exception:
        return None  # locks, queues, shared tensors: they need multiprocessing
    return buf.getvalue()


def _mpiexec():
    import shutil
    return shutil.which(os.environ.get("EMBER_MPIEXEC", "mpiexec"))


class _MPIContext(ProcessContext):
    """The ranks of one ``mpiexec`` job; ``join`` as ``ProcessContext.join``."""

    def __init__(self, proc, folder, nprocs):
        self.proc = proc
        self.folder = folder
        self.nprocs = nprocs
        self.processes = []
        self.error_files = [os.path.join(folder, f"error.{i}") for i in range(nprocs)]

    def pids(self):
        """The ranks' pids (waits until each has started)."""
        out = []
        for i in range(self.nprocs):
            path = os.path.join(self.folder, f"pid.{i}")
            while not os.path.exists(path) and self.proc.poll() is None:
                time.sleep(0.01)
            with open(path) as fh:
                out.append(int(fh.read() or -1))
        return out

    def join(self, timeout=None, grace_period=None) -> bool:
        import shutil
        import subprocess
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        try:
            if code != 0:
                self._raise(code)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
        return True

    def _raise(self, code):
        pid = -1
        for i in range(self.nprocs):
            if os.path.exists(self.error_files[i]):
                with open(self.error_files[i], "rb") as fh:
                    trace = pickle.load(fh)
                raise ProcessRaisedException(
                    f"\n\n-- Process {i:d} terminated with the following error:\n{trace}", i,
                    pid)
        for i in range(self.nprocs):
            path = os.path.join(self.folder, f"exit.{i}")
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    rc = pickle.load(fh)
                raise ProcessExitedException(f"process {i:d} terminated with exit code {rc:d}",
                                             i, pid, rc)
        raise ProcessExitedException(f"a process terminated without reporting (killed by a "
                                     f"signal or crashed); mpiexec exited with code {code}",
                                     0, pid, code)


def _start_mpi(payload, nprocs, join):
    """Run ``nprocs`` ranks as one ``mpiexec`` job (NOTE [ spawn over MPI ])."""
    import subprocess
    import multiprocessing.spawn as mp_spawn
    folder = tempfile.mkdtemp(prefix="ember-spawn-")
    prep = mp_spawn.get_preparation_data("ember-spawn")
    prep.pop("authkey", None)  # the ranks talk over MPI, not over a multiprocessing Connection
    with open(os.path.join(folder, "job.pickle"), "wb") as fh:
        pickle.dump((prep, dict(os.environ), payload), fh)
    proc = subprocess.Popen([_mpiexec(), "-n", str(nprocs), sys.executable, "-m",
                             "ember.multiprocessing._mpi_child", folder, str(os.getpid())],
                            start_new_session=True)
    context = _MPIContext(proc, folder, nprocs)
    if not join:
        return context
    while not context.join():
        pass
    return None


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Start ``nprocs`` processes running ``fn(i, *args)`` with ``start_method``; join them
    unless ``join=False`` (then the ``ProcessContext`` is returned). A program that uses
    ember.distributed gets its processes from MPI (NOTE [ spawn over MPI ])."""
    payload = _mpi_payload(fn, args, nprocs, start_method)
    if payload is not None:
        return _start_mpi(payload, nprocs, join)
    ctx = multiprocessing.get_context(start_method)
    processes, error_files = [], []
    for i in range(nprocs):
        # a name that does not exist yet: the child creates it only when it fails
        tf = tempfile.NamedTemporaryFile(prefix="ember-errorfile-", suffix=".pickle",
                                         delete=False)
        tf.close()
        os.unlink(tf.name)
        p = ctx.Process(target=_wrap, args=(fn, i, args, tf.name), daemon=daemon)
        p.start()
        processes.append(p)
        error_files.append(tf.name)
    context = ProcessContext(processes, error_files)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """``start_processes`` with the ``spawn`` start method (PyTorch's
    ``torch.multiprocessing.spawn``)."""
    if start_method != "spawn":
        warnings.warn(f"This method only supports start_method=spawn (got: {start_method}).\n"
                      "To use a different start_method use:\n\t\t "
                      "torch.multiprocessing.start_processes(...)", FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
