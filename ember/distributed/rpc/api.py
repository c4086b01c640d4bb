"""The RPC agent over MPI (see the design note in ``__init__.py``)."""
from __future__ import annotations

import enum
import itertools
import pickle
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from ...futures import Future

__all__ = ["BackendType", "RRef", "TensorPipeRpcBackendOptions", "WorkerInfo",
           "get_worker_info", "init_rpc", "is_available", "remote", "rpc_async", "rpc_sync",
           "shutdown"]

_REQUEST, _REPLY = 71, 72
_DEFAULT_RPC_TIMEOUT_SEC = 60.0
_UNSET_RPC_TIMEOUT = -1.0


def is_available() -> bool:
    return True


class BackendType(enum.Enum):
    TENSORPIPE = "TENSORPIPE"


class TensorPipeRpcBackendOptions:
    """Accepted for PyTorch code; MPI is the transport, ``rpc_timeout`` is honoured."""

    def __init__(self, *, num_worker_threads: int = 16,
                 rpc_timeout: float = _DEFAULT_RPC_TIMEOUT_SEC, init_method: str = "env://",
                 device_maps=None, devices=None, _transports=None, _channels=None) -> None:
        self.num_worker_threads = num_worker_threads
        self.rpc_timeout = rpc_timeout
        self.init_method = init_method
        self.device_maps = device_maps or {}
        self.devices = devices or []

    def set_device_map(self, to: str, device_map) -> None:
        self.device_maps[to] = device_map


class WorkerInfo:
    """A worker's ``name`` and ``id`` (its rank in the job)."""

    __slots__ = ("name", "id")

    def __init__(self, name: str, id: int) -> None:
        self.name = name
        self.id = id

    def __eq__(self, other):
        return isinstance(other, WorkerInfo) and (self.name, self.id) == (other.name, other.id)

    def __hash__(self):
        return hash((self.name, self.id))

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, name={self.name})"

    def __reduce__(self):
        return WorkerInfo, (self.name, self.id)


class _Agent:
    """This worker's end of the job: the communicator, the service thread, the futures."""

    def __init__(self, name: str, options) -> None:
        from ..distributed_c10d import _mpi
        MPI = self.MPI = _mpi()
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        names = self.comm.allgather(name)
        if len(set(names)) != len(names):
            raise RuntimeError(f"every RPC worker needs its own name, got {names}")
        self.workers = [WorkerInfo(n, i) for i, n in enumerate(names)]
        self.by_name = {w.name: w for w in self.workers}
        self.me = self.workers[self.rank]
        self.timeout = options.rpc_timeout
        self.pool = ThreadPoolExecutor(max(2, options.num_worker_threads),
                                       thread_name_prefix=f"rpc-{name}")
        self.pending = {}          # call id -> (Future, dist-autograd receive info)
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.owned = {}            # rref id -> _Owned, the values this worker holds for RRefs
        self.running = True
        self.thread = threading.Thread(target=self._serve, name=f"rpc-serve-{name}",
                                       daemon=True)
        self.thread.start()

    # ---- transport ----------------------------------------------------------------------
    def send(self, dest: int, tag: int, payload: bytes) -> None:
        with self.send_lock:
            self.comm.send(payload, dest=dest, tag=tag)

    def _serve(self) -> None:
        MPI = self.MPI
        status = MPI.Status()
        idle = 0.0
        while self.running:
            if not self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
                # back off to 1 ms while idle: the ranks share the cores
                idle = min(1e-3, idle * 2 + 2e-5)
                time.sleep(idle)
                continue
            idle = 0.0
            src, tag = status.Get_source(), status.Get_tag()
            data = self.comm.recv(source=src, tag=tag)
            if tag == _REQUEST:
                self.pool.submit(self._handle, src, data)
            elif tag == _REPLY:
                self._reply(src, data)

    def _handle(self, src: int, data: bytes) -> None:
        from .. import autograd as dist_autograd
        call_id = cid = None
        try:
            cid, _, (call_id, fn, args, kwargs) = dist_autograd._loads(data, src)
            with dist_autograd._use_context(cid):
                result = fn(*args, **(kwargs or {}))
            ok = True
        except BaseException as e:  # sent back and raised on the caller
            ok, result, cid = False, _RemoteException(e, traceback.format_exc()), None
        try:
            payload = dist_autograd._dumps((call_id, ok, result), cid, src)
        except Exception as e:
            payload = dist_autograd._dumps(
                (call_id, False, _RemoteException(e, traceback.format_exc())), None, src)
        self.send(src, _REPLY, payload)

    def _reply(self, src: int, data: bytes) -> None:
        from .. import autograd as dist_autograd
        call_id, ok, result = dist_autograd._loads(data, src)[2]
        with self.lock:
            fut = self.pending.pop(call_id, None)
        if fut is None:
            return
        if ok:
            fut.set_result(result)
        else:
            fut.set_exception(result.rebuild())

    # ---- calls --------------------------------------------------------------------------
    def call(self, to, fn, args, kwargs, timeout, plain: bool = False) -> Future:
        """Send the request; ``plain`` ones (RRef counts) never join a dist-autograd
        context."""
        from .. import autograd as dist_autograd
        dest = self.info(to).id
        fut = Future()
        call_id = next(self.ids)
        with self.lock:
            self.pending[call_id] = fut
        cid = None if plain else dist_autograd._current()
        payload = dist_autograd._dumps((call_id, fn, tuple(args or ()), kwargs or {}),
                                       cid, dest, request=True)
        self.send(dest, _REQUEST, payload)
        if timeout is None or timeout == _UNSET_RPC_TIMEOUT:
            timeout = self.timeout
        if timeout and timeout > 0:
            _expire(fut, timeout, self, call_id)
        return fut

    def info(self, to) -> WorkerInfo:
        if isinstance(to, WorkerInfo):
            return to
        if isinstance(to, int):
            return self.workers[to]
        try:
            return self.by_name[to]
        except KeyError:
            raise RuntimeError(f"Unknown destination worker {to}") from None

    def stop(self) -> None:
        req = self.comm.Ibarrier()
        while not req.Test():
            time.sleep(1e-3)
        self.pool.shutdown(wait=True)  # handlers still running finish (and reply) first
        self.running = False
        self.thread.join()
        self.comm.Free()


class _Deadlines:
    """One daemon thread failing the calls whose ``rpc_timeout`` passed (not one timer
    thread per call)."""

    def __init__(self) -> None:
        self.heap = []
        self.cond = threading.Condition()
        self.thread = None

    def add(self, when: float, fut, agent, call_id, timeout: float) -> None:
        import heapq
        import weakref
        with self.cond:
            # by weak reference: a future kept here until its deadline would keep its result
            # alive, and with it any RRef in it (NOTE [ RRef reference counting ])
            heapq.heappush(self.heap, (when, call_id, id(agent), weakref.ref(fut), agent,
                                       timeout))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rpc-deadlines",
                                               daemon=True)
                self.thread.start()
            self.cond.notify()

    def _run(self) -> None:
        import heapq
        while True:
            with self.cond:
                while not self.heap:
                    self.cond.wait()
                when, call_id, _, ref, agent, timeout = self.heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self.cond.wait(min(delay, 1.0))
                    continue
                heapq.heappop(self.heap)
            fut = ref()
            if fut is None or fut.done():
                continue
            with agent.lock:
                gone = agent.pending.pop(call_id, None)
            if gone is not None:
                gone.set_exception(RuntimeError(
                    f"RPC ran for more than set timeout ({timeout:g} seconds) and will now be "
                    f"marked with an error"))


_DEADLINES = _Deadlines()


def _expire(fut, timeout, agent, call_id) -> None:
    """Fail ``fut`` with PyTorch's timeout error if no reply came within ``timeout`` s."""
    _DEADLINES.add(time.monotonic() + timeout, fut, agent, call_id, timeout)


class _RemoteException:
    """An exception raised by a remote call, sent back with its traceback."""

    def __init__(self, exc: BaseException, tb: str) -> None:
        self.tb = tb
        try:
            pickle.dumps(exc)
            self.exc = exc
        except Exception:
            self.exc = RuntimeError(repr(exc))

    def rebuild(self) -> BaseException:
        kind = type(self.exc)
        try:
            return kind(f"{self.exc}\n\nOn the remote worker:\n{self.tb}")
        except Exception:
            return self.exc


_STATE = {"agent": None}


def _agent() -> _Agent:
    agent = _STATE["agent"]
    if agent is None:
        raise RuntimeError("RPC has not been initialized. Call torch.distributed.rpc.init_rpc "
                           "first.")
    return agent


def init_rpc(name, backend=None, rank=-1, world_size=None, rpc_backend_options=None) -> None:
    """Join the job's RPC group as ``name`` (collective: every rank calls it)."""
    if _STATE["agent"] is not None:
        raise RuntimeError("RPC is already initialized")
    if not isinstance(name, str) or not name:
        raise ValueError("Worker name must be a non-empty string")
    if backend is not None and not isinstance(backend, BackendType):
        raise TypeError(f"Argument backend must be a member of BackendType, got {backend!r}")
    options = rpc_backend_options or TensorPipeRpcBackendOptions()
    from ..distributed_c10d import _mpi
    size, me = _mpi().COMM_WORLD.Get_size(), _mpi().COMM_WORLD.Get_rank()
    if world_size is not None and world_size != size:
        raise RuntimeError(f"init_rpc: world_size={world_size} but the MPI job has {size} "
                           f"processes; start the workers with mpiexec, embrun or "
                           f"ember.multiprocessing.spawn")
    if rank not in (-1, None) and rank != me:
        raise RuntimeError(f"init_rpc: rank={rank} but this process is MPI rank {me}")
    _STATE["agent"] = _Agent(name, options)


def shutdown(graceful: bool = True, timeout: float = 0) -> None:
    """Wait for every worker to reach ``shutdown`` (and finish its calls), then stop."""
    agent = _agent()
    agent.stop()
    _STATE["agent"] = None
    with _RREF_LOCK:
        _OWNED.clear()


def get_worker_info(worker_name=None) -> WorkerInfo:
    agent = _agent()
    return agent.me if worker_name is None else agent.info(worker_name)


def rpc_async(to, func, args=None, kwargs=None, timeout: float = _UNSET_RPC_TIMEOUT) -> Future:
    """Run ``func(*args, **kwargs)`` on worker ``to``; a ``Future`` of its result."""
    return _agent().call(to, func, args, kwargs, timeout)


def rpc_sync(to, func, args=None, kwargs=None, timeout: float = _UNSET_RPC_TIMEOUT):
    """Run ``func(*args, **kwargs)`` on worker ``to`` and return its result."""
    return rpc_async(to, func, args, kwargs, timeout).wait()


# ---- remote references -------------------------------------------------------------------
# NOTE [ RRef reference counting ]: the owner keeps a value while any RRef to it lives, on any
# worker, as PyTorch's RRef protocol (docs/rpc/rref.html): its slot counts the live RRef
# objects and the RRefs in flight. ``RRef(value)`` counts its own; ``remote()`` counts the
# caller's when the owner creates the value. Pickling an RRef (sending it in a call or a
# reply) counts the copy before the message leaves: the owner counts it locally, a user asks
# the owner and waits for the answer, so the count cannot reach 0 while a copy is in flight
# (PyTorch's fork acknowledgement); unpickling takes that count over. A deleted RRef takes
# its count back, locally on the owner or by a message from a user. At 0 the owner drops the
# value. Counts may go below 0 until the value exists (a user's delete can overtake the
# ``remote()`` that creates it), so the owner drops a value only once it is created.
_RREF_LOCK = threading.Lock()
_OWNED = {}  # rref id -> _Owned on the owner
_RREF_IDS = itertools.count()


class _Owned:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value = None
        self.error = None
        self.refs = 0  # live RRefs to it anywhere, plus copies in flight


def _owned(rid) -> _Owned:
    with _RREF_LOCK:
        slot = _OWNED.get(rid)
        if slot is None:
            slot = _OWNED[rid] = _Owned()
        return slot


def _add_refs(rid, n: int) -> None:
    """On the owner: ``n`` more (or fewer) RRefs to ``rid``; the value goes at 0."""
    with _RREF_LOCK:
        slot = _OWNED.get(rid)
        if slot is None:
            slot = _OWNED[rid] = _Owned()
        slot.refs += n
        if slot.refs <= 0 and slot.ready.is_set():
            del _OWNED[rid]


def _create_owned(rid, fn, args, kwargs):
    """On the owner: run ``fn`` and keep its result for the RRef ``rid`` (the caller's)."""
    _add_refs(rid, 1)
    slot = _owned(rid)
    try:
        slot.value = fn(*args, **(kwargs or {}))
    except BaseException as e:
        slot.error = e
        raise
    finally:
        with _RREF_LOCK:
            slot.ready.set()
            if slot.refs <= 0:  # every RRef to it was deleted while fn ran
                _OWNED.pop(rid, None)


def _release(agent, owner, rid) -> None:
    agent.call(owner, _add_refs, (rid, -1), None, _UNSET_RPC_TIMEOUT, plain=True)


def _fetch(rid):
    slot = _owned(rid)
    slot.ready.wait()
    if slot.error is not None:
        raise slot.error
    return slot.value


def _call_method(rid, method, args, kwargs):
    return getattr(_fetch(rid), method)(*args, **(kwargs or {}))


class RRef:
    """A reference to a value held by one worker, its owner (``torch.distributed.rpc.RRef``).

    ``RRef(value)`` makes this worker the owner; ``remote()`` returns one owned by another."""

    def __init__(self, value=None, type_hint=None, *, _owner=None, _rid=None) -> None:
        agent = _agent()
        self._creation = None  # the future of a remote() call still creating the value
        if _owner is None:
            self._owner = agent.rank
            self._rid = (agent.rank, next(_RREF_IDS))
            slot = _owned(self._rid)
            slot.value = value
            slot.ready.set()
            _add_refs(self._rid, 1)
        else:
            self._owner, self._rid = _owner, _rid
        self._counted = True  # NOTE [ RRef reference counting ]

    def __del__(self):
        agent = _STATE["agent"]
        if not getattr(self, "_counted", False) or agent is None or not agent.running:
            return
        if self._owner == agent.rank:
            _add_refs(self._rid, -1)
            return
        try:  # never block in __del__: a pool thread tells the owner
            agent.pool.submit(_release, agent, self._owner, self._rid)
        except RuntimeError:
            pass  # RPC is shutting down: the owner drops everything then

    def is_owner(self) -> bool:
        return self._owner == _agent().rank

    def owner(self) -> WorkerInfo:
        return _agent().workers[self._owner]

    def owner_name(self) -> str:
        return self.owner().name

    def confirmed_by_owner(self) -> bool:
        return self._creation is None or self._creation.done()

    def local_value(self):
        """The value, on its owner; a RuntimeError elsewhere, as PyTorch."""
        if not self.is_owner():
            raise RuntimeError(f"Call it on owner {self.owner()}: RRef.local_value() can only "
                               f"be called on the owner of the RRef")
        return _fetch(self._rid)

    def to_here(self, timeout: float = _UNSET_RPC_TIMEOUT):
        """A copy of the value (the value itself on the owner)."""
        if self.is_owner():
            return _fetch(self._rid)
        return rpc_sync(self._owner, _fetch, args=(self._rid,), timeout=timeout)

    def rpc_sync(self, timeout: float = _UNSET_RPC_TIMEOUT):
        return _Proxy(self, rpc_sync, timeout)

    def rpc_async(self, timeout: float = _UNSET_RPC_TIMEOUT):
        return _Proxy(self, rpc_async, timeout)

    def remote(self, timeout: float = _UNSET_RPC_TIMEOUT):
        return _Proxy(self, remote, timeout)

    def __reduce__(self):
        # the copy is counted before the message carrying it leaves (NOTE [ RRef reference
        # counting ]); the RRef made from it on the other side takes the count over
        agent = _agent()
        if self._owner == agent.rank:
            _add_refs(self._rid, 1)
        else:
            agent.call(self._owner, _add_refs, (self._rid, 1), None, _UNSET_RPC_TIMEOUT,
                       plain=True).wait()
        return _rref_from_wire, (self._owner, self._rid)

    def __repr__(self):
        kind = "OwnerRRef" if self.is_owner() else "UserRRef"
        return f"{kind}(RRefId = {self._rid}, owner = {self.owner()})"


def _rref_from_wire(owner, rid) -> RRef:
    return RRef(_owner=owner, _rid=rid)


class _Proxy:
    """``rref.rpc_sync().method(*args)``: the method run on the owner, on its value."""

    def __init__(self, rref, how, timeout) -> None:
        self._rref, self._how, self._timeout = rref, how, timeout

    def __getattr__(self, method):
        rref, how, timeout = self._rref, self._how, self._timeout

        def call(*args, **kwargs):
            # the call names the value by id, not by a counted copy of the RRef; the RRef
            # stays alive until the call has run, so the owner keeps the value meanwhile
            out = how(rref._owner, _call_method, args=(rref._rid, method, args, kwargs),
                      timeout=timeout)
            if how is not rpc_sync:  # the call's future holds the RRef until it completes
                (out if how is rpc_async else out._creation).add_done_callback(
                    lambda _, keep=rref: None)
            return out

        return call


def remote(to, func, args=None, kwargs=None, timeout: float = _UNSET_RPC_TIMEOUT) -> RRef:
    """Run ``func`` on ``to`` and keep the result there; an ``RRef`` to it, at once."""
    agent = _agent()
    owner = agent.info(to).id
    rid = (agent.rank, next(_RREF_IDS))
    rref = RRef(_owner=owner, _rid=rid)
    rref._creation = agent.call(owner, _create_owned, (rid, func, tuple(args or ()),
                                                       kwargs or {}), None, timeout)
    return rref
