"""In-place writes with PyTorch's autograd semantics: version counters, checks, rebasing.

NOTE [ In-place ops ]
``x.op_(...)`` runs the out-of-place op, writes the result into ``x``'s storage
(so every view sees it) and bumps the version counter that ``x`` shares with
its views; a node that saved ``x`` earlier then refuses to run (see NOTE
[ Saved tensors ] in autograd/function.py).  When the graph is recorded the op
reads a snapshot of ``x``'s old values, and ``x`` takes the result's history
("rebase").  If ``x`` is a view, its base's history is rebased too through a
``CopySlices`` node: the base's old gradient is masked where the view lies, and
the view's new values get the base's gradient in that region.
"""
from __future__ import annotations

from .function import Function, AccumulateGrad
from .grad_mode import state, no_grad
from .views import check_view_mode, replay_view
from .._tensor import Tensor, _make, _version_counter
from .._dtype import from_np
from .._backend import xp_of, has_internal_overlap, writable_alias


class CopySlices(Function):
    """The base of a view after an in-place op on the view."""

    raw = True
    backward_name = "torch::autograd::CopySlices"

    @staticmethod
    def forward(ctx, base, src, chain):
        ctx.chain = chain
        return base  # the storage already holds the new values

    @staticmethod
    def backward(ctx, g):
        gsrc = replay_view(g, ctx.chain) if ctx.needs_input_grad[1] else None
        gbase = None
        if ctx.needs_input_grad[0]:
            # The base's old values under the view were overwritten: zero gradient there.
            # Overwriting (not multiplying by a mask) keeps an inf gradient from becoming nan.
            cplx = g._data.dtype.kind == "c"
            # create_graph: a differentiable 0/1 mask (1+1j for complex: a view of the real
            # or imaginary parts zeroes only that part, so each part keeps its own mask)
            fill = (1 + 1j if cplx else 1) if state.grad else g._data
            with no_grad():
                kept = _make(xp_of(g._data).empty_like(g._data))
                kept._data[...] = fill
                replay_view(kept, ctx.chain)._data[...] = 0
            if not state.grad:
                gbase = kept
            elif cplx:
                gbase = g.real * kept.real + (g.imag * kept.imag) * 1j
            else:
                gbase = g * kept
        return gbase, gsrc, None


def _check_inplace(t: Tensor):
    if t._inference and not state.inference:
        raise RuntimeError("Inplace update to inference tensor outside InferenceMode is not "
                           "allowed.You can make a clone to get a normal tensor before doing "
                           "inplace update.See https://github.com/pytorch/rfcs/pull/17 for "
                           "more details.")


def inplace(t: Tensor, fn, *args, **kwargs) -> Tensor:
    """Run ``fn(t, *args)`` out of place and write the result into ``t`` (NOTE [ In-place ops ])."""
    _check_inplace(t)
    record = state.grad and not state.inference and (t._requires_grad or any(
        isinstance(a, Tensor) and a._requires_grad for a in args))
    if record:
        check_view_mode(t)
        if t._grad_fn is None and t._requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        base = t._base
        if base is not None and (base._grad_fn is None and base._requires_grad
                                 or _views_leaf(t)):
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in "
                               "an in-place operation.")
        src = _make(t._data.copy(), t._requires_grad, t._grad_fn, t._output_nr)
    else:
        src = t
    result = fn(src, *args, **kwargs)
    _write(t, result, getattr(fn, "overlap_ok", False))
    if record and result._grad_fn is not None:
        _rebase(t, result)
    return t


def _write(t: Tensor, result: Tensor, overlap_ok: bool = False) -> None:
    """Store ``result`` into ``t``'s memory with PyTorch's cast and shape checks
    (``overlap_ok``: the op writes one value everywhere, so an expanded ``t`` is fine)."""
    rd, td = result._data.dtype, t._data.dtype
    if rd != td:
        r, d = from_np(rd), from_np(td)
        if r._cat > d._cat:
            raise RuntimeError(f"result type {r.scalar_name} can't be cast to the desired "
                               f"output type {d.scalar_name}")
    if result._data.shape != t._data.shape:
        rs, ts = result._data.shape, t._data.shape
        if len(rs) > len(ts) or any(a != b and a != 1 for a, b in zip(rs[::-1], ts[::-1])):
            raise RuntimeError(f"output with shape {list(ts)} doesn't match the broadcast shape "
                               f"{list(rs)}")
    if result._data is not t._data:
        arr = t._data
        if not arr.flags.writeable:  # an expanded view: NumPy marks it read-only
            if has_internal_overlap(arr) and not overlap_ok:
                raise RuntimeError(OVERLAP_MESSAGE)
            arr = writable_alias(arr)
        arr[...] = result._data
    _version_counter(t)[0] += 1


OVERLAP_MESSAGE = ("unsupported operation: more than one element of the written-to tensor "
                   "refers to a single memory location. Please clone() the tensor before "
                   "performing the operation.")


def _views_leaf(t: Tensor) -> bool:
    """Whether view ``t`` reaches a leaf that requires grad through view nodes only.

    ``x = a.view(2, 3).requires_grad_()`` is a leaf whose storage base ``a`` is not, so the
    storage base alone cannot tell that ``x.view(-1).mul_(2)`` would modify a leaf.
    """
    fn = t._grad_fn
    while fn is not None and getattr(type(fn), "view", False):
        fn = fn.next_functions[0][0]
        if isinstance(fn, AccumulateGrad):
            return True
    return False


def _set_history(t: Tensor, fn, nr: int) -> None:
    """Give ``t`` a new ``grad_fn``; a ``retain_grad`` hook follows it, as in PyTorch."""
    old_fn, old_nr = t._grad_fn, t._output_nr
    t._grad_fn = fn
    t._output_nr = nr
    t._requires_grad = True
    if t._retains_grad and old_fn is not None:
        t._move_retain_hook(old_fn, old_nr)


def _refresh_views(base: Tensor, skip) -> None:
    """Re-derive the history of every live view of ``base`` from its new history."""
    views = base._views
    if not views:
        return
    live = []
    for ref in list(views):  # replaying registers temporaries: iterate over a snapshot
        v = ref()
        if v is None:
            continue
        live.append(ref)
        if v is not skip:
            r = replay_view(base, v._view_chain)
            _set_history(v, r._grad_fn, r._output_nr)
    base._views = live


def _rebase(t: Tensor, result: Tensor) -> None:
    base = t._base
    if base is None:
        _set_history(t, result._grad_fn, result._output_nr)
        _refresh_views(t, None)
        return
    alias = _make(base._data, base._requires_grad, base._grad_fn, base._output_nr)
    new_base = CopySlices.apply(alias, result, t._view_chain)
    _set_history(base, new_base._grad_fn, 0)
    v = replay_view(base, t._view_chain)
    _set_history(t, v._grad_fn, v._output_nr)
    _refresh_views(base, t)


def make_inplace(fn):
    """The in-place method ``x.fn_(...)`` built from out-of-place ``fn``."""
    def method(self, *args, **kwargs):
        return inplace(self, fn, *args, **kwargs)
    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place ``{fn.__name__}`` (see NOTE [ In-place ops ])."
    return method


def copy_into_out(out: Tensor, result: Tensor) -> Tensor:
    """Write an op's result into a user's ``out=`` tensor (no autograd, as in PyTorch)."""
    if state.grad and (result._requires_grad or out._requires_grad):
        raise RuntimeError("functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    if out._data.shape != result._data.shape:
        out._data = result._data.astype(out._data.dtype)  # PyTorch resizes ``out``
        _version_counter(out)[0] += 1
        return out
    _write(out, result)
    return out
