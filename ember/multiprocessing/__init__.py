"""``ember.multiprocessing``: Python's ``multiprocessing`` with tensors shared, not copied
(PyTorch's ``torch.multiprocessing``).

Design note.  What it adds to the standard module (whose whole API is re-exported, so
``Process``, ``Queue``, ``Pool``, ``get_context``... are the standard ones): a
``ForkingPickler`` reducer for ``Tensor`` and ``Parameter`` (``reductions.py``) and
``spawn``/``start_processes`` (``spawn.py``; a program that uses ``ember.distributed`` gets
its processes as one MPI job there, NOTE [ spawn over MPI ]).  Where it hooks in: ``ForkingPickler`` is
what queues, pipes and spawned processes' arguments pickle with, so registering the reducer
(done on import, as PyTorch does) is the whole hook; ``pickle.dumps``/``ember.save`` still
copy.  Life of one tensor put on a queue: the reducer moves its array into shared memory
(``Tensor.share_memory_()``, ``ember/_shared.py``: an anonymous ``memfd`` mapped
``MAP_SHARED``) and sends a duplicate of the fd (``DupFd``: passed with the process on
spawn, through the resource sharer otherwise) with the array's offset, shape, dtype and
strides; the receiver maps the same memory, so in-place writes on either side are seen by
both.  ``model.share_memory()`` before starting workers is Hogwild: each worker's
optimizer updates the one copy of the parameters.  Both of PyTorch's sharing-strategy
names are accepted; both share through a file descriptor.  ``ember.utils.data``'s worker
transport is separate: it ships a finished batch once (one ``/dev/shm`` file per batch,
unlinked on receipt), which a long-lived shared parameter cannot use.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing import *  # noqa: F401,F403

from .reductions import init_reductions
from .spawn import (spawn, start_processes, ProcessContext, ProcessException,  # noqa: F401
                    ProcessRaisedException, ProcessExitedException)

__all__ = ["set_sharing_strategy", "get_sharing_strategy", "get_all_sharing_strategies",
           "spawn", "start_processes", "ProcessContext", "ProcessRaisedException",
           "ProcessExitedException"] + list(multiprocessing.__all__)

# both of PyTorch's names are accepted; each shares through a file descriptor here
_STRATEGIES = ("file_descriptor", "file_system")
_strategy = ["file_descriptor"]


def get_all_sharing_strategies() -> set:
    return set(_STRATEGIES)


def get_sharing_strategy() -> str:
    return _strategy[0]


def set_sharing_strategy(new_strategy: str) -> None:
    """Record the sharing strategy (ember shares every tensor through a file descriptor)."""
    if new_strategy not in _STRATEGIES:
        raise AssertionError(f"invalid sharing strategy {new_strategy!r}, expected one of "
                             f"{set(_STRATEGIES)}")
    _strategy[0] = new_strategy


init_reductions()
