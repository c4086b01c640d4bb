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
(``check_view_fresh``).  Views of plain tensors made in no_grad are not marked (that would
read the grad mode on the view path), so only PyTorch's error for those is missing.
"""
from __future__ import annotations

import weakref


def link_view(out, inp, cls, args, kwargs) -> None:
    """Record that ``out`` views ``inp``'s storage: its base, and the steps to replay it."""
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
    if chain and inp._view_mode is not None:
        out._view_mode = inp._view_mode
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
    version = t.__dict__.get("_view_version")  # (set by _no_history only)
    if version is not None and t._grad_fn is None and (t._base._version_ctr or (0,))[0] != version:
        check_view_mode(t, indirect=True)


def check_view_mode(t, name=None, indirect=False) -> None:
    """PyTorch's error for an in-place write, recorded by autograd, to a view made with grad
    off (or to a view of one); ``name``: the view op that the write goes through."""
    mode = t._view_mode
    if mode is None:
        return
    fn = t._grad_fn
    name = name or fn is not None and fn.name().rstrip("0123456789").removesuffix("Backward")
    what = f"Output {t._output_nr if fn else 0} of {name} is a view of a view which was" \
        if name else "A view was"
    block, how = ("inference_mode", "in normal mode") if mode == "inference mode" else (
        "no_grad", "with grad mode enabled")
    raise RuntimeError(
        f"{what} created in {mode} and "
        f"{'its base or another view of its base has been' if indirect else 'is being'} "
        f"modified inplace {how}. Given that this use case is ambiguous and error-prone, it is "
        "forbidden. You can clarify your code by moving both the view and the inplace either "
        f"both inside the {block} block (if you don't want the inplace to be tracked) or both "
        "outside (if you want the inplace to be tracked).")
