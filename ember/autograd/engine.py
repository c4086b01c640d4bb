"""The backward engine: walks the recorded DAG from the outputs with the chain rule.

Iterative throughout (no recursion), so a 10,000-op chain is fine.  Each node
runs once, after every node that feeds it a gradient has run (dependency
counting over ``next_functions``); gradients reaching the same node output are
summed.  Saved tensors are freed after a node runs unless ``retain_graph``.
"""
from __future__ import annotations

import sys

from .grad_mode import state
from .anomaly_mode import check_nan
from .function import AccumulateGrad, accumulate_node, _raise_freed
from .._backend import asarray
from .._tensor import Tensor, _make


def _add(a, b):
    """Sum two gradients; through the graph only when building a differentiable one."""
    if state.grad:
        return a + b
    s = a._data + b._data
    if type(s) is not type(a._data):  # NumPy gives a scalar for 0-d arrays
        s = asarray(s)
    return _make(s)


def run_backward(roots, root_grads, retain_graph: bool, create_graph: bool,
                 inputs=None, capture: bool = False, allow_unused: bool = False):
    """Propagate ``root_grads`` from ``roots`` (tensors) back through the graph.

    With ``capture`` the gradients of ``inputs`` are returned instead of accumulated
    (``autograd.grad``); with ``inputs`` and no capture, only those accumulate.
    """
    # Where each requested input's gradient arrives: its AccumulateGrad, or its node output.
    targets = None
    if inputs is not None:
        targets = {}
        for k, t in enumerate(inputs):
            if t._grad_fn is None:
                if not t._requires_grad:
                    raise RuntimeError("One of the differentiated Tensors does not require grad")
                key = (accumulate_node(t), 0)
            else:
                key = (t._grad_fn, t._output_nr)
            targets.setdefault(key, []).append(k)

    # Per reachable node a slot [dependencies left, gradient buffer, node] (no dict lookups per
    # edge); a one-output node's buffer is the gradient, a multi-output node's a list of them.
    slots = {}
    stack = []
    for t, g in zip(roots, root_grads):
        if g._data.dtype != t._data.dtype:  # PyTorch's validate_outputs casts it
            g = g.to(t.dtype)
        node = t._grad_fn or accumulate_node(t)
        if node is None:  # a view made with grad off has no edge (NOTE [ Views ])
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        s = slots.get(node)
        if s is None:
            s = slots[node] = [0, None, node]
            stack.append(s)
        _put(s, t._output_nr if t._grad_fn is not None else 0, g)
    order_stack = list(stack)
    while order_stack:
        for child, _ in order_stack.pop()[2].next_functions:
            if child is not None:
                s = slots.get(child)
                if s is None:
                    s = slots[child] = [1, None, child]
                    order_stack.append(s)
                else:
                    s[0] += 1

    needed = None
    if targets is not None:
        needed = _needed_nodes(slots, {k[0] for k in targets})
        if capture:
            captured = [None] * len(inputs)

    ready = [s for s in stack if s[0] == 0]
    cap = capture and targets is not None
    # the lean path: no inputs to capture, no anomaly checks, and (per node) a built-in
    # op with one output and no hooks, or a leaf without node hooks
    lean = targets is None and not state.anomaly
    prev_grad, prev_bw = state.grad, state.in_backward
    state.grad = create_graph
    state.in_backward = True  # the modes tell forward ops from backward ones (NOTE [ Modes ])
    try:
        while ready:
            s = ready.pop()
            _, g, node = s
            s[1] = None  # (the gradient is this node's alone now)
            if lean and node._lean:
                if g is None:  # nothing flows through this node (e.g. below a fill_)
                    out = (None,) * len(node.next_functions)
                else:
                    if node._saved is None and node._freed:
                        _raise_freed()
                    out = type(node).backward(node, g)
                    if type(out) is not tuple:  # (too few gradients: IndexError below)
                        out = (out,)
            elif lean and type(node) is AccumulateGrad and not node._hooked:
                _accumulate(node.variable, g)  # (nothing when ``g`` is None)
                continue
            else:
                n = node._n_out
                grads = [g] if n == 1 else [None] * n if g is None else g
                if targets is not None:
                    for nr, gi in enumerate(grads):
                        for k in targets.get((node, nr), ()):
                            if capture:
                                captured[k] = gi
                            elif not (isinstance(node, AccumulateGrad) or  # (a leaf's: below;
                                      inputs[k]._retains_grad):  # retain_grad's hook stores it)
                                _store_nonleaf_grad(inputs[k], gi)
                out = _call_node(node, grads, cap) if needed is None or node in needed else None
                if out is None:
                    out = (None,) * len(node.next_functions)
            if node._saved is not None and not retain_graph:
                node._free()
            i = -1  # (a built-in op may return more gradients than edges: trailing Nones)
            for child, nr in node.next_functions:
                i += 1
                if child is None:
                    continue
                s = slots[child]
                gi = out[i]
                if gi is not None:
                    if child._n_out == 1:
                        prev = s[1]
                        s[1] = gi if prev is None else _add(prev, gi)
                    else:
                        _put(s, nr, gi)
                d = s[0] - 1
                s[0] = d
                if d == 0:
                    ready.append(s)
    finally:
        state.grad, state.in_backward = prev_grad, prev_bw

    if capture:
        for k, g in enumerate(captured):
            if g is None and not allow_unused:
                raise RuntimeError(
                    f"The differentiated Tensor at index {k} appears to not have been used in "
                    "the graph. Set allow_unused=True if this is the desired behavior.")
        return captured
    return None


def _put(slot, nr, g):
    """Add ``g`` to the gradient buffer of output ``nr`` of ``slot``'s node."""
    buf = slot[1]
    if slot[2]._n_out == 1:
        slot[1] = g if buf is None else _add(buf, g)
        return
    if buf is None:
        buf = slot[1] = [None] * slot[2]._n_out
    buf[nr] = g if buf[nr] is None else _add(buf[nr], g)


def _needed_nodes(deps, target_nodes):
    """Nodes from which some target node is reachable (the only ones worth running)."""
    parents = {}
    for node in deps:
        for child, _ in node.next_functions:
            if child is not None:
                parents.setdefault(child, []).append(node)
    needed = {t for t in target_nodes if t in deps}
    stack = list(needed)
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in needed:
                needed.add(p)
                stack.append(p)
    return needed


def _store_nonleaf_grad(t, g):
    """``backward(inputs=[non_leaf])`` accumulates into that tensor's ``.grad``."""
    if g is None:
        return
    if t._grad is None:
        t._grad = g if state.grad else _make(g._data.copy())
    else:
        t._grad = _add(t._grad, g)


def _call_node(node, grads, capture):
    """Run one node's backward (with hooks) and return its input gradients."""
    hooks = node._pre_hooks
    if hooks:
        for nr, hs in list(hooks.items()):
            g = grads[nr]
            if g is None:
                continue
            for h in list(hs.values()):
                new = h(g)
                if new is not None:
                    g = new
            grads[nr] = g
    if node._node_pre_hooks:
        for h in list(node._node_pre_hooks.values()):
            new = h(tuple(grads))
            if new is not None:
                grads = list(new)

    if isinstance(node, AccumulateGrad):
        if not capture:
            _accumulate(node.variable, grads[0])
        return None
    if grads[0] is None and (node._n_out == 1 or all(g is None for g in grads)):
        return None  # nothing flows through this node (e.g. below a fill_)

    if node._saved is None and node._freed:
        _raise_freed()
    cls = type(node)
    if node._n_out > 1:
        meta = node._out_meta
        for i, g in enumerate(grads):
            if g is None and node.materialize_grads and meta[i] is not None:
                shape, dt, xp = meta[i]
                grads[i] = _make(xp.zeros(shape, dt))
    out = cls.backward(node, *grads)
    if type(out) is not tuple:
        out = (out,)
    n_in = len(node.next_functions)
    if len(out) != n_in:
        # a raw op returns a gradient per argument: its edges' (Function.edges), Nones around
        k = (cls._edges.start or 0) if cls.raw and cls._edges is not None else 0
        if len(out) > n_in and all(o is None for o in out[:k] + out[k + n_in:]):
            out = out[k:k + n_in]
        else:
            raise RuntimeError(f"function {node.name()} returned an incorrect number of "
                               f"gradients (expected {n_in}, got {len(out)})")
    if not cls.raw:
        out = _validate_custom(node, out)
    if node._node_hooks:
        for h in list(node._node_hooks.values()):
            new = h(out, tuple(grads))
            if new is not None:
                out = tuple(new)
        out = (out + (None,) * n_in)[:n_in]
    if state.anomaly:
        check_nan(node, out)
    return out


def _validate_custom(node, out):
    """Check a custom Function's gradients against its inputs, as PyTorch does."""
    fixed = []
    for i, g in enumerate(out):
        meta = node._in_meta[i]
        if g is not None and meta is not None and node.needs_input_grad[i]:
            if not isinstance(g, Tensor):
                raise TypeError(f"function {node.name()} returned a gradient of type "
                                f"{type(g).__name__} at index {i}, expected a Tensor")
            shape = meta[0]
            if tuple(g._data.shape) != shape:
                try:
                    g = g.sum_to_size(shape)
                except RuntimeError:
                    raise RuntimeError(
                        f"Function {node.name()} returned an invalid gradient at index {i} - "
                        f"got {list(g.shape)} but expected shape compatible with "
                        f"{list(shape)}") from None
            if g.dtype != meta[1]:  # PyTorch casts it to the input's dtype (validate_outputs)
                g = g.to(meta[1])
        elif meta is None or not node.needs_input_grad[i]:
            g = None
        fixed.append(g)
    return tuple(fixed)


_getrefcount = sys.getrefcount
# References to a gradient array that only the engine holds: the tensor's slot, the local
# name in _accumulate and getrefcount's own argument.  More means someone else can see it.
_SOLE_OWNER = 3


def _whole_view(a, like) -> bool:
    """Whether view ``a`` spans all of a base only it refers to, in ``like``'s layout (a
    convolution's weight gradient, a GEMM result reshaped): stealing it copies nothing."""
    b = a.base  # referenced by a, by this name and by getrefcount's argument
    return _getrefcount(b) == 3 and getattr(b, "nbytes", -1) == a.nbytes and \
        a.flags.writeable and a.strides == like.strides


def _accumulate(t, g):
    """``t.grad += g`` with PyTorch's rules: tensor hooks first, copy on first write."""
    if g is None:
        return
    if t._hooks:
        for h in list(t._hooks.values()):
            new = h(g)
            if new is not None:
                g = new
    if t._grad is None:
        if state.grad:
            t._grad = g
        else:
            a = g._data
            if a.dtype != t._data.dtype:
                a = a.astype(t._data.dtype)
            elif a.base is not None and not _whole_view(a, t._data) or t._hooks or \
                    _getrefcount(a) > _SOLE_OWNER:
                # shared with a view, or with a tensor a hook may have kept (PyTorch's
                # AccumulateGrad steals only a gradient no one else refers to)
                a = a.copy()
            t._grad = _make(a)
    elif state.grad:
        t._grad = t._grad + g
    else:
        t._grad._data += g._data
    if t._post_acc_hooks:
        for h in list(t._post_acc_hooks.values()):
            h(t)
