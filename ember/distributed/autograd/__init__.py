"""``ember.distributed.autograd``: gradients through RPC calls (``torch.distributed.autograd``).

NOTE [ Distributed autograd ]: inside ``with context() as context_id:`` every RPC message
(request or reply) is pickled with a hook: each tensor in it that requires grad is sent
detached and recorded on the sender under the context and a message id (the "send" side);
the receiver rebuilds it as a fresh leaf that requires grad and records it, with the sender
and the message id, as a "receive" of the context. ``backward(context_id, roots)`` runs
``ember.autograd.grad`` from the roots to every leaf they reach on this worker: gradients of
ordinary leaves (parameters) are added to the context, never to ``.grad``
(``get_gradients`` returns them), and gradients of received tensors go back to their
sender by RPC, which continues the same way from the tensors it sent in that message. The
call returns when every worker's part of the graph is done. The remote parts run with
``retain_graph=True`` (one forward may be reached by several gradient messages).
"""
from __future__ import annotations

import contextlib
import io
import itertools
import pickle
import threading

__all__ = ["context", "backward", "get_gradients"]

_LOCK = threading.Lock()
_CONTEXTS = {}
_IDS = itertools.count()
_LOCAL = threading.local()


class _Context:
    def __init__(self, cid: int) -> None:
        self.cid = cid
        self.lock = threading.Lock()
        self.grads = {}      # id(leaf) -> [leaf, accumulated gradient]
        self.sends = {}      # message id -> tensors sent in it
        self.recvs = {}      # id(received tensor) -> (sender rank, message id, position)
        self.msg_ids = itertools.count()


def _rank() -> int:
    from ..rpc.api import _agent
    return _agent().rank


def _get(cid: int, create: bool = False) -> _Context:
    with _LOCK:
        ctx = _CONTEXTS.get(cid)
        if ctx is None:
            if not create:
                raise RuntimeError(f"Could not find autograd context with id: {cid}")
            ctx = _CONTEXTS[cid] = _Context(cid)
        return ctx


def _current():
    return getattr(_LOCAL, "cid", None)


@contextlib.contextmanager
def _use_context(cid):
    """Run a handler inside the caller's context (None: outside any)."""
    old = _current()
    _LOCAL.cid = cid
    if cid is not None:
        _get(cid, create=True)
    try:
        yield
    finally:
        _LOCAL.cid = old


class context:  # noqa: N801 - torch.distributed.autograd.context
    """``with context() as context_id:`` records the RPCs made inside for ``backward``."""

    def __enter__(self) -> int:
        if _current() is not None:
            raise RuntimeError("Already have an autograd context id for this thread.")
        cid = (_rank() << 40) + next(_IDS)
        _get(cid, create=True)
        _LOCAL.cid = cid
        self.cid = cid
        return cid

    def __exit__(self, *exc) -> None:
        _LOCAL.cid = None
        with _LOCK:
            _CONTEXTS.pop(self.cid, None)


# ---- the wire: tensors that require grad become send/receive records -------------------
def _dumps(obj, cid, dest: int, request: bool = False) -> bytes:
    """``obj`` pickled as ``(cid, message id, obj)``, recording sent tensors under ``cid``."""
    from ..._tensor import Tensor
    buf = io.BytesIO()
    if cid is None:
        pickle.dump((None, None, obj), buf, protocol=pickle.HIGHEST_PROTOCOL)
        return buf.getvalue()
    ctx = _get(cid, create=True)
    msg_id = (_rank(), next(ctx.msg_ids))
    sent = []

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Tensor) and o.requires_grad:
                sent.append(o)
                return ("ember.grad", o.detach())
            return None

    Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump((cid, msg_id, obj))
    if sent:
        with ctx.lock:
            ctx.sends[msg_id] = sent
    return buf.getvalue()


def _loads(data: bytes, src: int):
    """``(cid, message id, obj)``; received tensors that required grad become leaves."""
    got = []

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid):
            t = pid[1].requires_grad_()
            got.append(t)
            return t

    cid, msg_id, obj = Unpickler(io.BytesIO(data)).load()
    if got:
        ctx = _get(cid, create=True)
        with ctx.lock:
            for pos, t in enumerate(got):
                ctx.recvs[id(t)] = (src, msg_id, pos, t)
    return cid, msg_id, obj


# ---- backward ----------------------------------------------------------------------------
def _leaves(roots) -> list:
    """The leaf tensors requiring grad that the graphs of ``roots`` reach."""
    from ...autograd.function import AccumulateGrad
    out, seen, stack = {}, set(), []
    for r in roots:
        if r.grad_fn is not None:
            stack.append(r.grad_fn)
        elif r.requires_grad:
            out[id(r)] = r
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            out[id(node.variable)] = node.variable
            continue
        for nxt, _ in node.next_functions or ():
            if nxt is not None:
                stack.append(nxt)
    return list(out.values())


def _run(ctx: _Context, roots, grad_outputs, retain_graph: bool) -> None:
    from ... import autograd
    from ..rpc.api import rpc_sync
    leaves = _leaves(roots)
    if not leaves:
        return
    grads = autograd.grad(roots, leaves, grad_outputs, retain_graph=retain_graph,
                          allow_unused=True)
    back = {}  # (sender, message id) -> {position: gradient}
    with ctx.lock:
        for leaf, g in zip(leaves, grads):
            if g is None:
                continue
            rec = ctx.recvs.get(id(leaf))
            if rec is not None and rec[3] is leaf:
                back.setdefault((rec[0], rec[1]), {})[rec[2]] = g
            elif id(leaf) in ctx.grads:
                ctx.grads[id(leaf)][1] = ctx.grads[id(leaf)][1] + g
            else:
                ctx.grads[id(leaf)] = [leaf, g]
    with _use_context(None):  # gradients travel as plain values
        for (src, msg_id), by_pos in back.items():
            rpc_sync(src, _backward_from_send, args=(ctx.cid, msg_id, by_pos))


def _backward_from_send(cid, msg_id, by_pos) -> None:
    """On a sender: continue backward from the tensors it sent in message ``msg_id``."""
    ctx = _get(cid, create=True)
    sent = ctx.sends.get(tuple(msg_id))
    if sent is None:
        raise RuntimeError(f"distributed autograd: no tensors sent in message {msg_id} of "
                           f"context {cid}")
    pos = sorted(by_pos)
    _run(ctx, [sent[p] for p in pos], [by_pos[p] for p in pos], retain_graph=True)


def backward(context_id: int, roots, retain_graph: bool = False) -> None:
    """Backward from scalar ``roots`` through every worker the context's RPCs reached."""
    from ..._tensor import Tensor
    ctx = _get(context_id)
    roots = list(roots)
    for r in roots:
        if not isinstance(r, Tensor) or not r.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have "
                               "a grad_fn")
    _run(ctx, roots, None, retain_graph)


def get_gradients(context_id: int) -> dict:
    """``{tensor: gradient}`` accumulated on this worker in the context."""
    ctx = _get(context_id)
    with ctx.lock:
        return {leaf: g for leaf, g in ctx.grads.values()}
