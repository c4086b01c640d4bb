"""Views made with grad off (``inference_mode``, ``inference_mode`` + ``enable_grad``,
``no_grad``), as PyTorch makes them (its ``creation_meta``; NOTE [ Views ]): a view of a normal
tensor is a normal tensor, one of a tensor that requires grad requires grad but is a leaf with
no ``grad_fn`` whose gradient goes nowhere, and writing it in place where autograd would record
the write raises PyTorch's RuntimeError.  Every row is run on ember and on torch and the
observations compared."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import ember

# (name, view op): each takes a (2, 3) tensor; several make views of views
VIEWS = [
    ("index", lambda x: x[0]),
    ("slice", lambda x: x[:, 1:]),
    ("view", lambda x: x.view(6)),
    ("reshape", lambda x: x.reshape(3, 2)),
    ("t", lambda x: x.t()),
    ("transpose", lambda x: x.transpose(0, 1)),
    ("permute", lambda x: x.permute(1, 0)),
    ("narrow", lambda x: x.narrow(1, 0, 2)),
    ("expand", lambda x: x[:1].expand(3, 3)),
    ("unbind", lambda x: x.unbind(0)[1]),
    ("split", lambda x: x.split(1, 0)[0]),
    ("chunk", lambda x: x.chunk(3, 1)[2]),
    ("select", lambda x: x.select(1, 2)),
    ("unsqueeze", lambda x: x.unsqueeze(0)),
    ("diagonal", lambda x: x.diagonal()),
    ("view_of_view", lambda x: x[1].view(3)[1:]),
]
BASES = ["plain", "leaf", "nonleaf"]
MODES = ["inference_mode", "inference_mode+enable_grad", "no_grad"]


def _mode(mod, mode):
    stack = contextlib.ExitStack()
    if mode.startswith("inference_mode"):
        stack.enter_context(mod.inference_mode())
    else:
        stack.enter_context(mod.no_grad())
    if mode.endswith("enable_grad"):
        stack.enter_context(mod.enable_grad())
    return stack


def _base(mod, kind):
    """``(leaf, base)``: a (2, 3) float64 leaf and the tensor the views are taken of."""
    leaf = mod.tensor(np.arange(6.0).reshape(2, 3) + 1, requires_grad=kind != "plain")
    return leaf, leaf * 2 if kind == "nonleaf" else leaf


def _try(fn):
    """``fn()``, or ``(type name, message)`` of what it raises."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 (the type is part of what is compared)
        return type(e).__name__, str(e)


def _error(fn):
    """``(type name, message)`` of what ``fn()`` raises, or None."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return type(e).__name__, str(e)
    return None


def _flags(v, x):
    """What a user can read of view ``v`` of ``x`` (each read may raise)."""
    return tuple(_try(f) for f in (v.is_inference, lambda: v.requires_grad,
                                   lambda: v.grad_fn is None, lambda: v.is_leaf,
                                   lambda: v._base is x))


def _use(mod, v, leaf):
    """Use ``v`` in autograd outside the mode: an op on it, backward, the gradients."""
    out = _try(lambda: (v * 2).sum())
    if isinstance(out, tuple):
        return out
    return out.requires_grad, out.grad_fn is None, _error(out.backward), leaf.grad, v.grad


def _observe(mod, view, kind, mode):
    """What a user sees of a view made in ``mode``: inside it, outside it, used in autograd
    and written in place outside; then of one written in place inside the mode."""
    leaf, x = _base(mod, kind)
    with _mode(mod, mode):
        v = view(x)
        inside = _flags(v, x)
    fresh = _flags(v, x), _use(mod, v, leaf)
    write = _error(lambda: v.mul_(2.0))  # outside: recorded when v requires grad
    leaf, x = _base(mod, kind)
    with _mode(mod, mode):  # a write inside the mode is allowed, and not recorded ...
        w = view(x)
        written = _error(lambda: w.add_(1.0))
    # ... but afterwards autograd refuses a view of a tensor that requires grad
    stale = _flags(w, x), _use(mod, w, leaf), _error(lambda: w.mul_(2.0))
    with mod.no_grad():
        under_no_grad = _try(lambda: (w * 2).requires_grad)
    return inside, fresh, write, written, stale, under_no_grad, x.grad_fn is None, x._version


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", BASES)
@pytest.mark.parametrize("name,view", VIEWS, ids=[v[0] for v in VIEWS])
def test_view_made_with_grad_off_matches_torch(name, view, kind, mode):
    e, t = _observe(ember, view, kind, mode), _observe(torch, view, kind, mode)
    assert e == t


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
@pytest.mark.parametrize("key", [0, slice(0, 1), None, Ellipsis, (slice(None), 0)],
                         ids=["select", "slice", "unsqueeze", "ellipsis", "tuple"])
def test_setitem_on_a_view_made_with_grad_off(key, mode):
    """``v[key] = 5`` outside the mode: the error names the view op the key goes through."""
    msgs = []
    for mod in (ember, torch):
        x = mod.ones(2, 2, requires_grad=True)
        with _mode(mod, mode):
            v = x.view(2, 2)

        def write():
            v[key] = 5.0
        msgs.append(_error(write))
    assert msgs[0] == msgs[1]
    assert msgs[0][0] == "RuntimeError"


@pytest.mark.parametrize("mode", MODES[:2])
def test_write_with_an_operand_that_requires_grad(mode):
    """A view of a plain tensor made in inference mode is a normal tensor, but writing into it
    in place with an operand that requires grad is refused as for one that requires grad.
    (Not for views made in no_grad: ember marks only those of tensors that require grad, as
    marking every one would read the grad mode on the view path.)"""
    res = []
    for mod in (ember, torch):
        x = mod.ones(2, 3)
        q = mod.ones(3, requires_grad=True)
        with _mode(mod, mode):
            v = x[0]
        res.append((v.is_inference(), v.requires_grad, _error(lambda: v.mul_(q))))
    assert res[0] == res[1]


def test_views_of_views_inherit_how_they_were_made():
    """A view made outside of a view made with grad off records a node but its write still
    raises (``Output 0 of T is a view of a view ...``); inference mode wins over no_grad."""
    res = []
    for mod in (ember, torch):
        x = mod.ones(2, 2, requires_grad=True)
        with mod.no_grad():
            a = x.view(4)
        with mod.inference_mode():
            b = x.view(4)
            ab = a.view(2, 2)
        with mod.no_grad():
            ba = b.view(2, 2)
        at = a.view(2, 2).t()  # recorded: a requires grad
        seen = (at.requires_grad, at.grad_fn is None, [f is None for f, _ in
                                                       at.grad_fn.next_functions][:1])
        res.append((seen, [_error(lambda v=v: v.mul_(2.0)) for v in (ab, ba, at)]))
    assert res[0] == res[1]


def test_views_of_inference_tensors_are_inference_tensors():
    res = []
    for mod in (ember, torch):
        with mod.inference_mode():
            it = mod.ones(2, 3)
        vs = (it[0], it.t(), it.view(6), it.unbind(0)[0], it.narrow(1, 0, 2))
        res.append(([v.is_inference() for v in vs], _error(lambda: vs[0].mul_(2.0))))
    assert res[0] == res[1]
    assert res[0][0] == [True] * 5


def test_gradient_of_a_view_made_with_grad_off_goes_nowhere():
    """Backward through such a view reaches no leaf: ``autograd.grad`` finds the view and its
    base unused, and the view as the root of ``backward`` has no edge."""
    res = []
    for mod in (ember, torch):
        x = mod.ones(3, requires_grad=True)
        with mod.no_grad():
            v = x[1:]
        y = (v * v).sum()
        res.append((_error(lambda: mod.autograd.grad(y, x, retain_graph=True)),
                    _error(lambda: mod.autograd.grad(y, v, retain_graph=True)),
                    mod.autograd.grad(y, x, allow_unused=True, retain_graph=True),
                    _error(lambda: v.backward(mod.ones(2))),
                    _error(lambda: v.sum().backward()), x.grad, v.grad))
    assert res[0] == res[1]


def test_copy_keeps_no_mark():
    """``deepcopy`` of such a view is a leaf of its own: writing it in place is the leaf's
    error, not the view's."""
    import copy
    res = []
    for mod in (ember, torch):
        x = mod.ones(3, requires_grad=True)
        with mod.no_grad():
            c = copy.deepcopy(x[1:])
        res.append((c.requires_grad, c.is_leaf, _error(lambda: c.mul_(2.0))))
    assert res[0] == res[1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", ["reshape", "view", "slice", "unbind"])
def test_leaf_that_is_a_view_of_a_plain_tensor(make, mode):
    """A leaf made to require grad over a view of a plain tensor: a view of it made with grad
    off takes its root base's flag (False), as PyTorch's, so it is an ordinary tensor after
    the mode: in-place writes allowed, backward through it refused (found in review)."""
    res = []
    for mod in (ember, torch):
        plain = mod.tensor(np.arange(6.0) + 1)
        x = {"reshape": lambda: plain.reshape(2, 3), "view": lambda: plain.view(2, 3),
             "slice": lambda: plain[:4].view(2, 2),
             "unbind": lambda: plain.view(2, 3).unbind(0)[0]}[make]().requires_grad_()
        with _mode(mod, mode):
            v = x[0]
        row = [v.requires_grad, v.grad_fn is None, v.is_leaf]
        row.append(_error(lambda: v.add_(1)))
        row.append(_error(lambda: (v * 2).sum().backward()))
        res.append(row)
    assert res[0] == res[1]
