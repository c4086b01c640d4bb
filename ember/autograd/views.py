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
    # An in-place op on a non-leaf base (or a sibling view) must re-derive ``out``'s history
    # (inplace.refresh_views).  Views of leaves are never rebased, so they are not listed.
    if out._grad_fn is not None and base._grad_fn is not None:
        views = base._views
        if views is None:
            base._views = [weakref.ref(out)]
        else:
            views.append(weakref.ref(out))


def replay_view(base, chain):
    """Re-apply the view steps of ``chain`` to ``base`` (to rebase views after in-place ops)."""
    t = base
    for cls, args, kwargs in chain:
        t = cls.apply(t, *args, **kwargs)
    return t
