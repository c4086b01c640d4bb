"""Views: tensors that share another tensor's storage, and how autograd keeps track of them.

NOTE [ Views ]
A view op (``Function`` with ``view = True``: ``view``, ``t[1:]``, ``transpose`` ...) links its
result to the storage's base tensor: ``out._base`` is the base, and ``out._view_chain`` lists
the view steps ``(Function, args, kwargs)`` from the base to ``out``, so the view can be
derived again from the base (``replay_view``).  A view shares its base's version counter
(``_tensor._version_counter``), so an in-place write through either is seen by every node
that saved the other.  When an in-place op changes a view or its base, autograd/inplace.py
rebases the histories of the base and of its other live differentiable views, which is why
the base keeps weak references to them (``_views``).

A view made with grad off records how in ``_view_mode`` (PyTorch's ``creation_meta``; views of
it inherit it, inference mode winning): in inference mode a view of a normal tensor is normal,
and a view of a tensor that requires grad requires grad but is a leaf whose gradient goes
nowhere (``accumulate_node``: no edge).  An in-place write to it that autograd would record
raises (``check_view_mode``), and so does autograd reading it once its storage was written
(``check_view_fresh``).  A view of a plain tensor made in no_grad is marked too (its own
flag stays False), so an in-place write to it that autograd would record raises as well.
Two more marks forbid recorded in-place writes whatever the grad mode: the views a
multi-output op returns (``unbind``, ``split``, ``chunk``: made in grad mode) and the views a
custom ``Function`` returns (``_wrap_outputs``), each with PyTorch's message.
"""
from __future__ import annotations

import weakref

from .._state import state

MULTI = "multi-output"  # _view_mode of the views unbind/split return (PyTorch's MULTI_OUTPUT_NODE)
CUSTOM = "custom Function"  # of a custom Function's output that is a view (IN_CUSTOM_FUNCTION)


def link_view(out, inp, cls, args, kwargs, grad=None, multi=False) -> None:
    """Record that ``out`` views ``inp``'s storage: its base, and the steps to replay it
    (``grad``: whether grad mode is on, None to read it; ``multi``: one of a multi-output op's
    views)."""
    base = inp._base
    if base is None:
        base = inp
    out._base = base
    chain = inp._view_chain
    out._view_chain = chain + ((cls, args, kwargs),) if chain else ((cls, args, kwargs),)
    # (no grad-mode reads: a thread-local's attribute costs ~60 ns, and this is the view path)
    if out._grad_fn is None:  # not recorded: inference mode, grad off, or nothing requires grad
        inf = inp._inference
        if out._inference is not inf:  # a view is an inference tensor iff its base is
            out._inference = inf
            if not inf:  # made in inference mode (which told the caller to mark ``out``)
                out._view_mode = "inference mode"
                if base._requires_grad:  # the root's flag, as PyTorch (a leaf view may differ)
                    _no_history(out, base)
                return
        elif base._requires_grad:  # made with grad off
            out._view_mode = inp._view_mode or "no_grad mode"
            _no_history(out, base)
            return
        elif not inf and not (state.grad if grad is None else grad):  # of a plain tensor
            out._view_mode = inp._view_mode or "no_grad mode"
            out._view_version = (base._version_ctr or (0,))[0]
            return
    if chain and inp._view_mode is not None:
        out._view_mode = inp._view_mode
    elif multi:
        out._view_mode = MULTI
    # An in-place op on a non-leaf base (or a sibling view) must re-derive ``out``'s history
    # (inplace.refresh_views).  Views of leaves are never rebased, so they are not listed.
    if out._grad_fn is not None and base._grad_fn is not None:
        views = base._views
        if views is None:
            base._views = [weakref.ref(out)]
        else:
            views.append(weakref.ref(out))


def _no_history(out, base) -> None:
    """``out`` requires grad with no history, which holds until its storage is written."""
    out._requires_grad = True
    out._view_version = (base._version_ctr or (0,))[0]  # (no counter: never written yet)


def replay_view(base, chain):
    """Re-apply the view steps of ``chain`` to ``base`` (to rebase views after in-place ops)."""
    t = base
    for cls, args, kwargs in chain:
        t = cls.apply(t, *args, **kwargs)
    return t


def check_view_fresh(t) -> None:
    """PyTorch's error for autograd reading a view made with grad off of a tensor that requires
    grad once its storage has been written in place (its version moved on)."""
    version = t.__dict__.get("_view_version")  # (set for views made with grad off only)
    if version is not None and t._grad_fn is None and t._base._requires_grad and \
            (t._base._version_ctr or (0,))[0] != version:
        check_view_mode(t, indirect=True)


def check_view_mode(t, name=None, indirect=False) -> None:
    """PyTorch's error for an in-place write, recorded by autograd, to a view made with grad
    off (or to a view of one), to a multi-output op's view or to a custom Function's;
    ``name``: the view op that the write goes through."""
    mode = t._view_mode
    if mode is None:
        return
    fn = t._grad_fn
    nr = t._output_nr if fn is not None and name is None else 0  # (a named view op: output 0)
    # (a view that does not require grad has no node to name, whatever op the write goes through)
    name = t._requires_grad and (
        name or fn is not None and fn.name().rstrip("0123456789").removesuffix("Backward"))
    what = "its base or another view of its base has been" if indirect else "is being"
    if mode == "no_grad mode" or mode == "inference mode":
        how = "in normal mode" if mode == "inference mode" else "with grad mode enabled"
        head = f"Output {nr} of {name} is a view of a view which was" if name else "A view was"
        msg = f"{head} created in {mode} and {what} modified inplace {how}."
    elif name:
        msg = f"Output {nr} of {name} is a view and {what} modified inplace."
    else:
        msg = f"A view was created in no_grad mode and {what} modified inplace with grad mode " \
            "enabled."
    if mode == MULTI:
        msg += (" This view is the output of a function that returns multiple views. Such "
                "functions do not allow the output views to be modified inplace. You should "
                "replace the inplace operation by an out-of-place one.")
    elif mode == CUSTOM:
        msg += (" This view was created inside a custom Function (or because an input was "
                "returned as-is) and the autograd logic to handle view+inplace would override "
                "the custom backward associated with the custom Function, leading to incorrect "
                "gradients. This behavior is forbidden. You can fix this by cloning the output "
                "of the custom Function.")
    else:
        block = "inference_mode" if mode == "inference mode" else "no_grad"
        msg += (" Given that this use case is ambiguous and error-prone, it is forbidden. You "
                "can clarify your code by moving both the view and the inplace either both "
                f"inside the {block} block (if you don't want the inplace to be tracked) or both "
                "outside (if you want the inplace to be tracked).")
    raise RuntimeError(msg)
