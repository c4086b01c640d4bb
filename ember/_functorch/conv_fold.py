"""A graph pass: in an inference graph, a convolution followed by an eval-mode batch norm (and
a residual add, and a ReLU) becomes one node.

NOTE [ Batch norm into convolution ]
What: ``convolution(x, w, b)`` read only by ``native_batch_norm`` with running statistics
(eval mode), itself optionally read only by an ``add`` of a residual of its own shape and
dtype, itself optionally read only by ``relu``, is replaced by ``conv_bn_eval(x, w, b, geom,
bn_w, bn_b, running_mean, running_var, eps, residual, relu)`` (``_ConvBnEval`` below).
Why: eval batch norm is a per-channel affine map ``y s + t`` with ``s = bn_w / sqrt(var +
eps)`` and ``t = bn_b - mean s``.  Eager runs it as two passes into a fresh array, then the
add and the ReLU as one pass each into another; here the scale goes into the convolution's
weights (``w s``, one pass over the weights, made at each call from the parameters and
statistics as they are then, so nothing is cached and no guard is needed) or, where the
weights are larger than the output (ResNet's last stage on small maps), onto the output,
and the shift, the residual and the ReLU run in place on the convolution's own output,
cache block by cache block of rows, split over threads as batch norm's passes are.  This is
PyTorch inductor's conv-bn folding without ``freezing``: the fold is recomputed per call.
When: only where nothing in the graph asks for gradients (the conv's captured value does
not require grad: ``no_grad``/``inference_mode`` capture), so the node never needs a backward;
float32 or float64 throughout (no mixed half input); a dense 1-d/2-d/3-d convolution of any
geometry (``_conv_fwd``, eager's algorithm choice).  The numbers are eager's to float32
rounding: ``(x * (w s)) + t`` against ``(x * w) s + t`` (the same products, the scale applied
before the sum instead of after).
Where: ``passes.optimize_graph`` runs it after ``functionalize`` (so ``ReLU(inplace=True)`` and
``x += shortcut`` are plain dataflow), before CSE.

NOTE [ Convolution work kept for backward ]
Eager's convolution keeps its work array for the weight gradient: the im2col matrix ('fold',
'im2col', 'bl') or Winograd's transformed input tiles ``V`` (``_Cols`` on its ``ctx``, when
the batch fits one block).  A compiled region lowers the convolution's formula to array calls
on a scratch ``ctx`` that saves nothing (NOTE [ Compiled regions ]), so the weight gradient
made both again: ResNet-18's compiled training step (batch 8, 64 px) ran 110 im2cols and 35
Winograd input transforms a step where eager runs 55 and none, ~8% of the step.  In a graph
that wants a convolution's weight gradient its node is pointed at ``_ConvKeep`` (the same
op, a class of its own that the capture never recorded, so its formula is not lowered but
called on the ``ctx`` the compiled forward records, as eager does): the forward keeps its
work array and the backward takes it.  The numbers are eager's, bit for bit.

NOTE [ Frozen Winograd weights ]
A Winograd layer (``_conv._algo``'s choice, as eager makes it) transforms its weights into
``U`` (36 per weight for F(4x4, 3x3)) at every call: ResNet-18 at 224 px spent 13% of an
inference forward there (512 -> 512: 19 ms a call, one thread).  In an inference graph the
weights rarely change between calls, so each node keeps the ``U`` of ``w * s`` with a copy of
the bits of ``w`` and ``s`` it came from (``Frozen``, a constant argument of the node) and
reuses it while both are bit for bit the same: the check reads the weights twice (0.7 ms
for 512 -> 512) and sees every write, also those that bypass the version counter
(``p.data.mul_``, ``p.numpy()[...] = ...``, a running statistic written through NumPy),
which a version check would not.  ``CACHE_BYTES`` bounds what all nodes hold together (a
node past it recomputes ``U`` at each call, as eager); the memory is freed with the graph.
"""
from __future__ import annotations

import threading

from ..autograd.function import Function
from ..autograd.modes import Op, op_for
from .._tensor import Tensor
from ..ops import conv as _conv
from ..ops import normalization as _norm
from ..ops import _threads
from ..ops._util import const

__all__ = ["fold_conv_bn", "keep_conv_work", "Frozen", "BLOCK_BYTES", "CACHE_BYTES"]

BLOCK_BYTES = 256 << 10  # rows of the epilogue per pass: its three or four passes stay in L2
CACHE_BYTES = 256 << 20  # frozen Winograd weights held at most, all nodes together
_UINT = {4: "uint32", 8: "uint64"}
_lock = threading.Lock()
_held = [0]  # bytes of frozen weights held now


def _name(n) -> str:
    t = n.target if n.op == "call_function" else None
    return t.__name__ if isinstance(t, Op) else ""


def _cls(n):
    t = n.target if n.op == "call_function" else None
    return getattr(t._fn, "__self__", None) if isinstance(t, Op) else None


def _val(n):
    return n.meta.get("val") if hasattr(n, "meta") else None


def _arr(v):
    return v._data if isinstance(v, Tensor) else None


class _ConvBnEval(Function):
    """``relu(conv(x, w, b) * s + t + residual)`` with eval batch norm's ``s``, ``t`` (NOTE
    [ Batch norm into convolution ]); only in graphs that need no gradient."""

    raw = True
    backward_name = "ConvBnEvalBackward"

    @staticmethod
    def forward(ctx, x, w, b, g, bn_w, bn_b, mean, var, eps, res, relu, frozen):
        xp = ctx.xp
        inv = 1.0 / xp.sqrt(var + eps)  # as _BatchNormEval's forward
        s = inv if bn_w is None else inv * bn_w
        t = -mean * s
        if bn_b is not None:
            t += bn_b
        if b is not None:  # the convolution's bias goes through the affine map too
            t += b * s
        n, c = x.shape[:2]
        o = w.shape[0]
        L = 1
        for d in g.out:
            L *= d
        algo = _conv._algo(c, o, g, x.dtype, n)
        if n and not c == g.groups == o > 1 and algo in _conv._WINO:  # as _conv_fwd chooses
            m = _conv._WINO[algo]
            y = xp.empty((n, o) + g.out, x.dtype)
            _conv._wino_fwd(xp, x, frozen.u(xp, w, s, m), g, m, y, False)
            on_w = True
        else:
            on_w = w.size <= n * o * L  # scale the smaller of the weights and the output
            if on_w:
                w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
            y, cols = _conv._conv_fwd(xp, x, w, g, keep=False)
            del cols, w
            if not y.flags.c_contiguous:  # (the epilogue writes through a flat view of it)
                y = xp.ascontiguousarray(y)
        _epilogue(xp, y.reshape(n * o, L), None if on_w else s, t, n,
                  None if res is None else res.reshape(n * o, L), relu)
        return y

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("conv_bn_eval is made only in graphs that need no gradient")


class Frozen:
    """Winograd's transformed weights ``U`` of one ``conv_bn_eval`` node, reused while the
    weights and the batch-norm scale are bit for bit those it was made from (NOTE [ Frozen
    Winograd weights ])."""

    __slots__ = ("state", "nbytes", "__weakref__")

    def __init__(self):
        self.state = None  # (weight bits, scale bits, U, m): replaced as one tuple
        self.nbytes = 0

    def __repr__(self):  # (the generated code's constant; its text never parsed)
        return "Frozen()"

    def __eq__(self, other):  # two captures' caches are the same kind of thing (dynamic.py)
        return type(other) is Frozen

    __hash__ = object.__hash__

    def u(self, xp, w, s, m: int):
        """``U`` of ``w * s`` (``s`` per output channel) for F(m x m, 3x3)."""
        st = self.state
        if st is not None and st[3] == m and _same(xp, st[0], w) and _same(xp, st[1], s):
            return st[2]
        u = _conv._wino_u(xp, w * s.reshape(-1, 1, 1, 1), m)
        nbytes = u.nbytes + w.nbytes + s.nbytes
        with _lock:
            _held[0] -= self.nbytes
            keep = _held[0] + nbytes <= CACHE_BYTES
            self.nbytes = nbytes if keep else 0
            _held[0] += self.nbytes
        self.state = (w.copy(), s.copy(), u, m) if keep else None
        return u

    def __del__(self):
        try:
            with _lock:
                _held[0] -= self.nbytes
        except TypeError:  # (at interpreter exit the module's globals may be gone)
            pass


def _same(xp, a, b) -> bool:
    """``a`` and ``b`` hold the same bits (NaN and the sign of zero included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    ut = _UINT[a.dtype.itemsize]
    return bool(xp.array_equal(a.view(ut), xp.ascontiguousarray(b).view(ut)))


def _epilogue(xp, y2, s, t, n, r2, relu) -> None:
    """``y2 = max(y2 * s + t + r2, 0)`` in place over ``(N*O, L)`` rows, per-channel ``s``,
    ``t`` (``s`` None: 1); split over threads by samples, each part in cache blocks of rows."""
    rows, L = y2.shape
    o = rows // max(n, 1)
    dt = y2.dtype
    st = None if s is None else xp.tile(s.astype(dt, copy=False), n).reshape(rows, 1)
    tt = xp.tile(t.astype(dt, copy=False), n).reshape(rows, 1)
    per = max(1, BLOCK_BYTES // max(1, L * dt.itemsize))
    z = const(xp, (min(per, rows), L), dt, 0) if relu else None

    def part(lo, hi):
        for a in range(lo * o, hi * o, per):
            e = min(a + per, hi * o)
            yb = y2[a:e]
            if st is not None:
                xp.multiply(yb, st[a:e], out=yb)
            xp.add(yb, tt[a:e], out=yb)
            if r2 is not None:
                xp.add(yb, r2[a:e], out=yb)
            if z is not None:
                xp.maximum(yb, z[:e - a], out=yb)

    _threads.rows(part, n, y2.size * (2 + (s is not None) + (r2 is not None)))


def _one_user(n) -> bool:
    return len(n.users) == 1


def fold_conv_bn(graph) -> int:
    """Replace each convolution + eval batch norm (+ add) (+ relu) chain of ``graph`` that
    needs no gradient by one ``conv_bn_eval`` node (NOTE above); returns how many."""
    done = 0
    for bn in list(graph.nodes):
        if _cls(bn) is not _norm._BatchNormEval or bn.kwargs or len(bn.args) != 7:
            continue
        cv, bw, bb, rm, rv, lay, eps = bn.args
        if _cls(cv) is not _conv._Conv or cv.kwargs or len(cv.args) != 4 or \
                not _one_user(cv):
            continue
        x, w, b, g = cv.args
        xv, wv, yv = _val(x), _val(w), _val(cv)
        if not all(isinstance(v, Tensor) for v in (xv, wv, yv)) or yv.requires_grad or \
                _val(bn) is None or getattr(_val(bn), "requires_grad", True):
            continue
        dt = yv._data.dtype
        params = [_val(p) for p in (b, bw, bb, rm, rv) if p is not None]
        if dt.name not in ("float32", "float64") or xv._data.dtype != dt or \
                wv._data.dtype != dt or not all(isinstance(p, Tensor) and p._data.dtype == dt
                                                for p in params) or rm is None or rv is None:
            continue
        chain = [bn, cv]  # the nodes the new one replaces, last first
        res, relu = None, False
        if _one_user(bn):
            (u,) = bn.users
            if _name(u) == "add" and not u.kwargs and len(u.args) in (3, 4) and \
                    u.args[3:] in ((), (1,)) and (u.args[0] is bn) != (u.args[1] is bn):
                other = u.args[1] if u.args[0] is bn else u.args[0]
                ov, uv = _val(other), _val(u)
                if isinstance(ov, Tensor) and isinstance(uv, Tensor) and \
                        ov._data.shape == yv._data.shape and ov._data.dtype == dt and \
                        uv._data.dtype == dt and not uv.requires_grad:
                    chain.insert(0, u)
                    res = other
        if _one_user(chain[0]):
            (u,) = chain[0].users
            if _name(u) == "relu" and not u.kwargs and len(u.args) == 1:
                chain.insert(0, u)
                relu = True
        last = chain[0]
        with graph.inserting_before(last):
            new = graph.call_function(op_for(_ConvBnEval),
                                      (x, w, b, g, bw, bb, rm, rv, eps, res, relu,
                                       Frozen()))
        # (not the replaced node's per-argument facts: "arg_rg" lines up with its arguments)
        new.meta = {k: v for k, v in last.meta.items() if k != "arg_rg"}
        last.replace_all_uses_with(new)
        for dead in chain:
            graph.erase_node(dead)
        done += 1
    return done


class _ConvKeep(_conv._Conv):
    """Eager's convolution, as a node whose backward formula the compiled region calls with
    the forward's own ``ctx`` (NOTE [ Convolution work kept for backward ])."""


def keep_conv_work(graph) -> int:
    """Point each convolution of ``graph`` whose weight gradient is wanted at ``_ConvKeep``
    (NOTE [ Convolution work kept for backward ]); returns how many."""
    done = 0
    for n in graph.nodes:
        if _cls(n) is not _conv._Conv or n.kwargs or len(n.args) != 4:
            continue
        yv, wv = _val(n), _val(n.args[1])
        if isinstance(yv, Tensor) and yv.requires_grad and isinstance(wv, Tensor) and \
                wv.requires_grad:
            n.target = op_for(_ConvKeep)
            done += 1
    return done
