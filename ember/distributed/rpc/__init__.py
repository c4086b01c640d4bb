"""``ember.distributed.rpc``: remote calls, remote references and distributed autograd between
the ranks of one MPI job (``torch.distributed.rpc``).

Design note. What it provides: ``init_rpc``/``shutdown``, ``rpc_sync``/``rpc_async``/
``remote``, ``RRef`` (``to_here``, ``owner``, ``local_value``, the ``rpc_sync()``/
``rpc_async()``/``remote()`` proxies) and ``WorkerInfo``, enough for the parameter-server
and agent/observer patterns of PyTorch's examples, plus ``ember.distributed.autograd`` and
``ember.distributed.optim.DistributedOptimizer`` on top. What it runs on: the job's MPI
ranks (``mpiexec``, ``embrun`` or ``ember.multiprocessing.spawn``), over a duplicate of
``MPI.COMM_WORLD``; functions and values are pickled, and only ever sent to and unpickled
by the job's own ranks. ``backend``/``TensorPipeRpcBackendOptions`` are accepted; MPI is the
transport. Where it hooks into the core: nowhere; distributed autograd uses
``ember.autograd.grad`` on each worker's part of the graph (NOTE [ Distributed autograd ] in
``ember/distributed/autograd/__init__.py``).

The life of one ``rpc_sync(to, fn, args)``: the caller pickles ``(call id, fn, args)`` and
sends it with tag REQUEST to ``to``'s rank; each worker runs one service thread that polls
its communicator and hands requests to a thread pool (so a handler may itself make RPCs
and nested calls cannot deadlock) and replies to the futures waiting on this worker; the
handler runs ``fn(*args)`` and sends ``(call id, result or exception)`` back with tag
REPLY, which completes the caller's ``Future``. ``remote`` runs ``fn`` the same way but
keeps the result on ``to`` under a fresh id and returns an ``RRef`` to it at once; the owner
keeps it while any RRef to it lives on any worker (NOTE [ RRef reference counting ] in
``api.py``).
``shutdown()`` waits until every worker has reached it (a non-blocking barrier, while the
service thread keeps answering), then stops the service thread.
"""
from .api import (BackendType, RRef, TensorPipeRpcBackendOptions, WorkerInfo,
                  get_worker_info, init_rpc, is_available, remote, rpc_async, rpc_sync,
                  shutdown)

__all__ = ["BackendType", "RRef", "TensorPipeRpcBackendOptions", "WorkerInfo",
           "get_worker_info", "init_rpc", "is_available", "remote", "rpc_async", "rpc_sync",
           "shutdown"]
