"""Recurrent ops: fused RNN/LSTM/GRU layers (one node per layer and direction) and cells.

NOTE [ Fused recurrent layer ]
``_rnn_layer`` runs one layer in one direction over a *packed* input: ``x`` of shape
``(N, input_size)`` holds the rows of every time step one after the other, step ``t`` having
``batch_sizes[t]`` rows (non-increasing, as PyTorch's PackedSequence); an ordinary
``(T, B, I)`` input is the packed case with ``batch_sizes = (B,) * T``.  One ``Function``
node (``_FusedLayer``) does the whole layer:

* forward: the input-to-hidden products of all steps are one GEMM (GRU, Elman); the loop
  over steps does the hidden-to-hidden GEMM and the gate update in place on preallocated
  arrays.  The hidden states live in ``ext = [h0; y]`` (``B + N`` rows), so the previous state
  of step ``t`` is a slice of ``ext`` (an index array only where the batch grows, in the
  reverse direction of a packed input) and the final states are one gather (``fin``: each
  row's last step).  The LSTM goes one further: beside each state row it keeps the input of
  the step that reads it and a one, so a step's single GEMM ``[h | x | 1] @ W`` gives its
  gates, input and bias included, with ``out=`` (measured on the LM step, hidden 128, input 64:
  the separate input GEMM, bias pass and per-step add cost more than the wider step GEMM).
* backward: the BPTT loop keeps the gradient in ``dext`` (same layout), so a step's
  ``dh_prev`` is added to the rows its previous state came from, and the final-state gradient
  is just added to the rows ``fin`` names.  What does not depend on the carried gradient
  (the gate derivatives times the other factors of each product) is stored by the forward
  loop while each step's values are in cache (LSTM ``P``, GRU ``Q``), so a backward step is a
  few multiplies and one GEMM (the LSTM's also gives the step's input gradient); the weight
  gradients are one GEMM each over all steps after the loop (the LSTM's one GEMM gives
  ``W_hh``'s, ``W_ih``'s and the bias's).
* NumPy calls per LSTM step: forward 9 (the GEMM into the gates with ``out=``, one ``tanh``
  over the four gates, two for the sigmoids' ``0.5 t + 0.5``, three for ``c = f c' + i g``,
  ``tanh(c)``, ``h = o tanh(c)``) plus the factors, 12 calls per 8 steps over their rows;
  backward 7 (a multiply gives dh's two products, an add ``dc``, one multiply by ``dc`` the
  i, f, g gradients and ``dc_prev``, written into ``dcext``, the slot after ``dG``'s, where
  the previous state is the step's own row range, as in every step of a forward direction
  over equal batch sizes, else a fourth multiply; the GEMM, its pairwise sum over gates, two
  adds into ``dZ``).  The views a step needs of the forward's chunk buffer and of the
  backward's GEMM buffer are made once per call (fixed cost at B=1, H=4 forward ~12.2 ->
  ~11.2 us a step, backward ~10 -> ~8-9, 1 thread, loaded machine).  At hidden 128, batch 32 a
  call costs ~1-2 us beside the GEMM's ~58 us, so what is left is the GEMMs (at BLAS peak)
  and the two ``tanh`` passes.  ``_STEP_OUT``: the backward's GEMM writes into a buffer made
  once per call and is summed into ``dZ`` pairwise in place (no fresh product and sum a
  step): backward -1%, forward's direct GEMM call -0.4% (thread CPU, A/B alternating order,
  one thread; an A/B in a fixed order showed 3-7% that was the order).  GRU: forward 11 (12
  with biases) plus 9 calls per 8 steps for the factors (was 22 a step: the factors were
  computed step by step), backward 6 (was 9: the gates are ordered so that dh's two products
  and dn's two are one multiply each).
* LSTM time (``lstm_lm_step``'s layer, one thread, py-spy): forward ~6.5 ms, of which the
  step GEMMs 56% (~58 us a step, 107 GFLOP/s, above a 1024^3 GEMM's 93), the four-gate
  ``tanh`` 7%, the factors 10-12%; backward ~11 ms, the weight GEMM 45% (84 GFLOP/s), the
  step GEMMs 35%.  Torch's whole layer forward is ~5.7 ms, so the gap is the ~20 us a step
  of separate NumPy passes and ~10 us of fixed cost per step (the loop at B=1, H=4).
  ``ember.compile`` calls this node's forward and backward as they are (an opaque node of
  the region: no copies around it beyond eager's; zeros for unused h_n/c_n gradients, B x H).
* LSTM, measured and not taken (one thread, B=32, H=128, K=193, float32): padding ``Z``'s
  rows to a 64-byte multiple (step GEMM 1-4% slower, weight GEMM within 1%); the wide
  ``(N, 4H)`` layout for the backward's GEMMs (step GEMM 58 -> 75 us; the weight GEMM 5-10%
  faster, but the gate multiplies into its column blocks 1.5-2x slower); the weight GEMM as
  ``Z^T @ dG`` with a contiguous ``Z^T`` (no faster); SciPy's ``expit`` for the sigmoid gates
  (41.6 us against 6.4 us for the one ``tanh`` over all four gates); numexpr (2.14, one
  thread) for the cell update (26 us) and ``h = o tanh(c)`` (63 us), against ~2 us per NumPy
  call here; folding ``dy`` into the backward's per-step sum instead of copying it into
  ``dZ`` first (the copy and zeroing cost 54 us a call, the extra per-step add 2 us a step:
  +140 us).  The sigmoids' affine ``0.5 t + 0.5`` cannot fold into a neighbour: ``o``'s 0.5
  could go into ``W``'s state rows (the states kept doubled, exact in binary), but
  ``c = f c' + i g`` needs ``tanh(c)`` of the true ``c``, so a halving call stays; pairing
  ``f c'`` and ``i g`` in one multiply needs ``c'`` in the gates' buffer (a sixth slot, the
  cell carried chunk to chunk): one call a step (~1.5 us of ~100), not done.
* numba step kernels (opt-in, ``ember.compile(fn, options={"numba": True})``, the ``numba``
  extra; NOTE [ Step kernels ] below, NOTE [ numba step kernels ] in ``_numba_rnn.py``): a
  float32 LSTM step's elementwise work as one compiled pass each way after its GEMM
  (B=32, H=128, one thread: forward ~12 us with the factors against ~20 us of NumPy calls,
  backward ~5 us against ~15).  The layer's forward + backward went from 1.16-1.28 to
  0.98 of torch's, the compiled ``lstm_lm_step`` from 1.09-1.13 to 0.94-0.96 (thread time,
  one thread, interleaved, loaded machine; before FMA contraction in the kernels 1.01-1.03
  and 0.97-1.00).  ``import numba`` and
  loading the cached kernels cost 1.4-1.9 s once per process (4.5-5.1 s compiling them on a
  cold cache), so it stays opt-in.
* an embedding read only by the layer (``ember.compile``; NOTE [ Embedding into LSTM ] in
  ``_functorch/rnn_fold.py``): ``_FusedEmbLstm`` looks the inputs' gate pre-activations up in
  ``E W_ih^T + b`` (``V`` rows, one ``take`` into ``xg``; a step adds its rows after a GEMM of
  ``K = H``), and its backward sums the gate gradients per index instead of the step GEMMs'
  input columns and the weight GEMM's ``W_ih`` block: ``lstm_lm_step``'s layer fwd + bwd
  ~19.3 -> ~15.4 ms (one thread).  The 2 us a step of the add is less than the 18 us the
  narrower GEMM saves.
* input products of a bidirectional GRU/Elman layer: both directions' input GEMM as one
  batched product (``x @ (6, I, H)``) measured no faster than two (within 1%, 1 thread,
  T=64, B=32, I=64/256, H=128/256), and both directions' weight and input gradients as one
  0-2%; only a flat ``(N, 2 * 3H)`` layout was faster (3-4% forward, 10-15% backward on
  those GEMMs, ~2% of a layer's step), but it puts every step's gate updates on column
  blocks (``tanh`` 1.7x, ``add`` 3x slower at B=32, H=128: ~20 us a step, more than the
  GEMMs gain) and would join the two directions in one node; not done.
* memory: the layer's multi-megabyte arrays (gates, states, saved factors, the backward's
  gradient buffers and the input-gradient product) are views of blocks reused from call to
  call (``_workspace``, NOTE [ Workspace ]): fresh ones cost a page fault per 4 KiB, which was
  half of an LSTM language-model step.

LSTM and GRU keep their gates gate-major, ``(gates, N, H)``: a gate of one step (or of a run
of steps) is then one contiguous block, on which NumPy's elementwise ops run 3-4x faster than
on the column blocks of an ``(N, gates * H)`` array, and the hidden-to-hidden product is one
batched matmul of per-gate GEMMs (faster than the one wide GEMM).  The gates are reordered
so that the sigmoid gates are adjacent (LSTM o,i,f,g; GRU n,r,z on the input side), and the
sigmoid gates' weights are pre-scaled by 0.5 so that one ``tanh`` over all gates gives the
sigmoids as ``0.5 * tanh(a / 2) + 0.5``.  (Scaling by 0.5 is exact in binary floating point.)

Under ``create_graph=True`` the backward recomputes the layer with the unfused cell
composition (``_layer_unfused``: ``F.linear``, ``sigmoid``, ``tanh`` ... on tensors) and
differentiates that with ``create_graph``, so higher derivatives are exact.
"""
from __future__ import annotations

import functools

from ..autograd.function import Function
from ..autograd.grad_mode import state, enable_grad
from .._tensor import _make
from .elementwise import relu, sigmoid, tanh
from .layers import linear as _lin, _scatter_rows
from .movement import cat
from . import _workspace as ws

__all__: list = []

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}

# NOTE [ Step kernels ]
# ``(array module, dtype) -> kernels`` for the LSTM step's elementwise work compiled into one
# pass each way (``_numba_rnn``, NOTE [ numba step kernels ]); empty, the NumPy passes.
# ``ember.compile(fn, options={"numba": True})`` sets it for the duration of each call
# (``step_kernels``); the fused node's forward reads it once and keeps its choice on
# ``ctx.kern``, so that its backward, which runs after the compiled call has returned, uses
# the same.  The saved factors have one layout either way.  The table is the process's, not
# a thread's: an eager LSTM that runs in another thread during a compiled call may use the
# kernels too (the same numbers to float32 rounding).
_kernels: dict = {}


class step_kernels:
    """``with step_kernels(table):`` the fused LSTM's step kernels are ``table``'s."""

    __slots__ = ("table", "prev")

    def __init__(self, table: dict):
        self.table = table

    def __enter__(self):
        global _kernels
        self.prev, _kernels = _kernels, self.table

    def __exit__(self, *exc):
        global _kernels
        _kernels = self.prev


def numba_kernels() -> dict:
    """The numba kernel table (imports numba; compiles the kernels or loads them from its
    cache): ``ImportError`` naming the ``numba`` extra when numba is missing."""
    try:
        from . import _numba_rnn
    except ImportError as e:
        raise ImportError("ember.compile(..., options={'numba': True}) needs numba, the "
                          "'numba' extra: pip install 'ember[numba]'") from e
    return _numba_rnn.KERNELS


# ----------------------------------------------------------------------------------------------
# cells, written with ember ops: the unfused composition (reference and create_graph path)


def _rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with act tanh or relu."""
    pre = _lin(x, w_ih, b_ih) + _lin(h, w_hh, b_hh)
    return tanh(pre) if nonlinearity == "tanh" else relu(pre)


def _lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None):
    """One LSTM step, gates i,f,g,o as PyTorch: ``c' = f*c + i*g``, ``h' = o*tanh(c')``
    (then ``h' W_hr^T`` with a projection)."""
    gates = _lin(x, w_ih, b_ih) + _lin(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, 1)
    c2 = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h2 = sigmoid(o) * tanh(c2)
    if w_hr is not None:
        h2 = _lin(h2, w_hr, None)
    return h2, c2


def _gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step, gates r,z,n as PyTorch: ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``,
    ``h' = n + z * (h - n)``."""
    gi = _lin(x, w_ih, b_ih)
    gh = _lin(h, w_hh, b_hh)
    ir, iz, in_ = gi.chunk(3, 1)
    hr, hz, hn = gh.chunk(3, 1)
    r = sigmoid(ir + hr)
    z = sigmoid(iz + hz)
    n = tanh(in_ + r * hn)
    return n + z * (h - n)


def _layer_unfused(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs):
    """``_rnn_layer`` as a composition of cells on tensors (the reference and the
    create_graph path).  Returns ``(y, h_n, c_n)`` (``c_n`` None unless LSTM)."""
    offs = _offsets(bs)
    order = range(len(bs) - 1, -1, -1) if reverse else range(len(bs))
    h, c = None, None
    ys = [None] * len(bs)
    fins_h, fins_c = [], []  # (first row, states) of rows whose sequence ended
    for t in order:
        n = bs[t]
        if h is None:
            h = h0[:n]
            c = c0[:n] if c0 is not None else None
        elif n < h.shape[0]:
            fins_h.append((n, h[n:]))
            h = h[:n]
            if c is not None:
                fins_c.append((n, c[n:]))
                c = c[:n]
        elif n > h.shape[0]:
            m = h.shape[0]
            h = cat([h, h0[m:n]])
            if c is not None:
                c = cat([c, c0[m:n]])
        xt = x[offs[t]:offs[t] + n]
        if mode == "LSTM":
            h, c = _lstm_cell(xt, h, c, w_ih, w_hh, b_ih, b_hh, w_hr)
        elif mode == "GRU":
            h = _gru_cell(xt, h, w_ih, w_hh, b_ih, b_hh)
        else:
            h = _rnn_cell(xt, h, w_ih, w_hh, b_ih, b_hh,
                          "tanh" if mode == "RNN_TANH" else "relu")
        ys[t] = h
    fins_h.append((0, h))
    hn = cat([p for _, p in sorted(fins_h, key=lambda q: q[0])])
    cn = None
    if c is not None:
        fins_c.append((0, c))
        cn = cat([p for _, p in sorted(fins_c, key=lambda q: q[0])])
    return cat(ys), hn, cn


# ----------------------------------------------------------------------------------------------
# the fused layer (NOTE [ Fused recurrent layer ])


def _offsets(bs):
    offs = [0]
    for n in bs:
        offs.append(offs[-1] + n)
    return offs


@functools.lru_cache(maxsize=256)
def _plan(np, bs: tuple, reverse: bool):
    """Steps in processing order ``(s, e, prev)`` (``prev``: rows of ``ext = [h0; y]``
    holding the previous state, a slice or an index array), the previous-state rows of all
    steps in row order (``hp_all``) and each sequence's final row of ``y`` (``fin``).
    ``np`` is the array module."""
    T, B = len(bs), bs[0]
    offs = _offsets(bs)
    N = offs[-1]
    steps = []
    hp_all = np.empty(N, np.intp)
    order = range(T - 1, -1, -1) if reverse else range(T)
    for k, t in enumerate(order):
        s, n = offs[t], bs[t]
        if k == 0:
            prev = slice(0, n)
            idx = np.arange(n)
        elif not reverse:  # the batch only shrinks: a prefix of the previous step's rows
            p = B + offs[t - 1]
            prev = slice(p, p + n)
            idx = np.arange(p, p + n)
        else:
            p, m = B + offs[t + 1], bs[t + 1]
            if m == n:
                prev = slice(p, p + n)
                idx = np.arange(p, p + n)
            else:  # sequences starting at this step take their state from h0
                idx = np.concatenate([np.arange(p, p + m), np.arange(m, n)])
                prev = idx
        hp_all[s:s + n] = idx
        steps.append((s, s + n, prev))
    # final rows: forward, the last step of each sequence; reverse, the first step
    if reverse:
        fin = np.arange(B)
    else:
        fin = np.empty(B, np.intp)
        for t in range(T):
            n_next = bs[t + 1] if t + 1 < T else 0
            fin[n_next:bs[t]] = offs[t] + np.arange(n_next, bs[t])
    if not reverse and all(n == B for n in bs):
        hp_all = slice(0, N)  # [h0; y[:-B]]: a plain slice of ext
    return tuple(steps), hp_all, fin


def _mm(xp, a, b, shape):
    """``a @ b`` (result ``shape``, ``a``'s dtype) into a workspace array (NOTE [ Workspace ])."""
    dt = a.dtype
    if dt.kind == "f" and dt.itemsize >= 4 and b.dtype == dt:
        return xp.matmul(a, b, out=ws.empty(xp, shape, dt))
    out = xp.matmul(a, b)  # half precision: whatever the backend's matmul gives, cast back
    return out if out.dtype == dt else out.astype(dt)


def _set_rows(dst, src):
    """``dst[...] = src`` for ``dst`` of shape ``(N, H)`` and ``src`` of that shape or
    ``(T, B, H)`` with any strides (splitting ``dst``'s rows is always a view): a transposed
    batch-first gradient is read where it lies instead of copied by a reshape."""
    if src.ndim == 3:
        dst = dst.reshape(src.shape)
    dst[...] = src


def _grad_ext(xp, dy, dhN, B, fin):
    """The backward's ``dext = [0; dy]`` with the final-state gradient added at ``fin``."""
    dext = ws.empty(xp, (B + dy.size // dy.shape[-1], dy.shape[-1]), dy.dtype)
    dext[:B] = 0
    _set_rows(dext[B:], dy)
    dext[B + fin] += dhN
    return dext


class _FusedLayer(Function):
    """One recurrent layer in one direction over a packed input (NOTE above)."""

    raw = True
    backward_name = "FusedRnnLayerBackward"
    kern = None  # the step kernels the forward used (NOTE [ Step kernels ])

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs, y_shape):
        # y_shape: the output as (T, B, H) (a view), so that its gradient comes back in that
        # shape, however strided, instead of through a reshape's copy
        xp = ctx.xp
        steps, hp_all, fin = _plan(xp, bs, reverse)
        ctx.meta = (mode, reverse, bs, w_hh.shape[0] // _GATES[mode])
        if mode == "LSTM":
            kern = ctx.kern = _kernels.get((xp, x.dtype)) if _kernels else None
            outs, keep = _lstm_forward(xp, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, steps,
                                       hp_all, fin, ctx._record, kern)
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, outs[0], *keep)
            if y_shape is None:
                return outs
            return (outs[0].reshape(y_shape),) + tuple(outs[1:])
        if mode == "GRU":
            outs, keep = _gru_forward(xp, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, steps,
                                      hp_all, fin, ctx._record)
            ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, outs[0], *keep)
            if y_shape is None:
                return outs
            return (outs[0].reshape(y_shape),) + tuple(outs[1:])
        # Elman RNN: one gate
        B, N = bs[0], x.shape[0]
        A = _mm(xp, x, w_ih.T, (N, w_ih.shape[0]))
        if b_ih is not None:
            A += b_ih + b_hh
        whT = xp.ascontiguousarray(w_hh.T)  # ~1.5x faster per-step GEMMs than the view
        ext = ws.empty(xp, (B + N, h0.shape[1]), x.dtype)
        ext[:B] = h0
        act = xp.tanh if mode == "RNN_TANH" else None
        for s, e, prev in steps:
            h = ext[B + s:B + e]
            xp.add(A[s:e], ext[prev] @ whT, out=h)
            if act is None:
                xp.maximum(h, 0, out=h)
            else:
                act(h, out=h)
        y = ext[B:]
        ctx.save_for_backward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, y, ext)
        return y if y_shape is None else y.reshape(y_shape), ext[B + fin]

    @staticmethod
    def backward(ctx, dy, dhN, dcN=None):
        saved = ctx.saved_tensors
        if state.grad:
            return _backward_graph(ctx, saved[:8], (dy, dhN, dcN))
        mode, reverse, bs, H = ctx.meta
        xp = ctx.xp
        steps, hp_all, fin = _plan(xp, bs, reverse)
        arrs = [None if s is None else s._data for s in saved]
        need = ctx.needs_input_grad
        dcN = None if dcN is None else dcN._data
        if mode == "LSTM":
            return _lstm_backward(xp, need, arrs, dy._data, dhN._data, dcN, steps, hp_all,
                                  fin, ctx.kern)
        if mode == "GRU":
            return _gru_backward(xp, need, arrs, dy._data, dhN._data, dcN, steps, hp_all, fin)
        x, h0, _, w_ih, w_hh, _, _, _, y, ext = arrs
        B, N = bs[0], x.shape[0]
        dext = _grad_ext(xp, dy._data, dhN._data, B, fin)
        Q = 1 - y * y if mode == "RNN_TANH" else (y > 0).astype(x.dtype)
        dG = ws.empty(xp, (N, H), x.dtype)
        mul = xp.multiply
        for s, e, prev in reversed(steps):
            mul(dext[B + s:B + e], Q[s:e], out=dG[s:e])
            dext[prev] += dG[s:e] @ w_hh
        gx = gh0 = gwi = gwh = gb = None
        if need[0]:
            gx = _make(dG @ w_ih)
        if need[1]:
            gh0 = _make(dext[:B].copy())
        if need[3]:
            gwi = _make(dG.T @ x)
        if need[4]:
            gwh = _make(dG.T @ ext[hp_all])
        if need[5] or need[6]:
            gb = dG.sum(0)
        return (gx, gh0, None, gwi, gwh, _make(gb) if need[5] else None,
                _make(gb.copy()) if need[6] else None, None, None, None, None, None)


# LSTM gates: (4, N, H), gate-major (NOTE above), ordered o,i,f,g: the sigmoid gates (o,i,f)
# are adjacent for the forward's one tanh, the gates whose gradient is a multiple of dc (i,f,g)
# for the backward's one multiply.
_LSTM_ORDER = (3, 0, 1, 2)  # PyTorch's i,f,g,o -> o,i,f,g
_LSTM_BACK = (1, 2, 3, 0)   # and back
_CHUNK = 8  # steps whose gates the forward keeps at once (NOTE above: the factors' cadence)
# The LSTM step loops' BLAS calls written with out= on buffers made once per call: the
# forward's GEMM called directly (not through ``_mm_into``), the backward's per-gate products
# into one (4, B, Hout [+ I]) buffer added into ``dZ`` pairwise, instead of a fresh product,
# its ``.sum(0)`` and an add (NOTE [ Fused recurrent layer ]); False keeps the old loops
# (the tests run both).
_STEP_OUT = True


def _mm_into(xp, a, b, out):
    """``out[...] = a @ b``, written by BLAS when the dtype allows it."""
    dt = out.dtype
    if dt.kind == "f" and dt.itemsize >= 4 and a.dtype == dt and b.dtype == dt:
        xp.matmul(a, b, out=out)
    else:
        out[...] = xp.matmul(a, b)
    return out


def _lstm_weights(xp, w_ih, w_hh, b_ih, b_hh):
    """The forward's per-gate weights ``(4, Hout + I [+ 1], H)``, gates o,i,f,g: for each gate
    ``W_hh^T`` over ``W_ih^T`` over ``b_ih + b_hh``, the sigmoid gates' scaled by 0.5 (NOTE
    above), so that ``[h_prev | x_t | 1] @ W`` is a step's pre-activations."""
    H, Hout = w_hh.shape[0] // 4, w_hh.shape[1]
    I = 0 if w_ih is None else w_ih.shape[1]  # None: the state rows only (``_FusedEmbLstm``)
    order = list(_LSTM_ORDER)
    W = ws.empty(xp, (4, Hout + I + (b_ih is not None), H), w_hh.dtype)
    W[:, :Hout] = w_hh.reshape(4, H, Hout)[order].transpose(0, 2, 1)
    if I:
        W[:, Hout:Hout + I] = w_ih.reshape(4, H, I)[order].transpose(0, 2, 1)
    if b_ih is not None:
        W[:, Hout + I] = (b_ih + b_hh).reshape(4, H)[order]
    W[:3] *= 0.5
    return W


def _lstm_forward(xp, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, steps, hp_all, fin, record,
                  kern=None, xg=None):
    """One LSTM layer-direction over packed rows: ``((y, h_n, c_n), saved arrays)``.

    The input-to-hidden product is folded into each step's GEMM: row ``r`` of ``Z`` holds
    ``[h | x | 1]``, the state of ``ext`` row ``r`` beside the input of the step whose previous
    state it is (rows ``hp_all``) and a one for the bias, so a step is one batched GEMM
    ``Z[prev] @ W`` written straight into its gates (K = Hout + I + 1: as fast per FLOP as
    the whole-sequence input GEMM, and no separate input product, bias pass or per-step add).

    When recording, it also stores what the backward needs per unit of the incoming
    gradients, ``P`` (6, N, H): dc per unit of dh, then d(pre-activation) per unit of dh for o
    and per unit of dc for i, f, g (the two per unit of dh adjacent, so that a backward step
    gets both from one multiply), then the forget gate (dc_prev per unit of dc).  They are
    computed every ``_CHUNK`` steps over those steps' rows (``_lstm_factors``), while the
    values are still in cache.  With ``kern`` (NOTE [ Step kernels ]) a step is its GEMM and
    one kernel call that also writes the step's factors.

    With ``xg`` (4, N, H), the inputs' gate pre-activations with the biases, gates o,i,f,g,
    the sigmoid gates' halved (``_FusedEmbLstm``), ``x``, ``w_ih`` and the biases are None:
    ``Z`` holds the states only and a step adds its rows of ``xg`` after its GEMM.
    """
    B = h0.shape[0]
    N, I, dt = (x.shape[0], x.shape[1], x.dtype) if xg is None else \
        (xg.shape[1], 0, xg.dtype)
    H, Hout = w_hh.shape[0] // 4, w_hh.shape[1]
    W = _lstm_weights(xp, w_ih, w_hh, b_ih, b_hh)
    Z = ws.empty(xp, (B + N, W.shape[1]), dt)
    Z[:B, :Hout] = h0
    if I:
        Z[hp_all, Hout:Hout + I] = x  # each row is the previous state of at most one step
    if b_ih is not None:
        Z[:, Hout + I] = 1
    if kern is not None:
        cext = ws.empty(xp, (B + N, H), dt)
        cext[:B] = c0
        P = ws.empty(xp, (6, N, H), dt) if record else None
        hpre = ws.empty(xp, (N, H), dt) if w_hr is not None else None
        _lstm_forward_kernel(xp, kern, Z, W, cext, P, hpre, w_hr, steps, B, Hout, xg)
        y = ws.empty(xp, (N, Hout), dt)
        y[...] = Z[B:, :Hout]
        return (y, Z[B + fin, :Hout], cext[B + fin]), (Z, P, hpre)
    # The gates live in a small buffer that stays in cache (writing each step's gates into a
    # whole-sequence array cost ~5 us a step more): rows of one chunk of steps, whose factors
    # are stored when the chunk ends; without recording, one step's rows.
    nc = min(_CHUNK, len(steps)) if record else 1
    A = ws.empty(xp, (4, nc * B, H), dt)
    cext = ws.empty(xp, (B + N, H), dt)
    cext[:B] = c0
    proj = w_hr is not None
    hpre = ws.empty(xp, (N, H), dt) if proj else None
    whrT = xp.ascontiguousarray(w_hr.T) if proj else None
    P = ws.empty(xp, (6, N, H), dt) if record else None
    tc_all = ws.empty(xp, (N, H), dt)
    tmp = xp.empty((B, H), dt)
    tanh, mul = xp.tanh, xp.multiply
    # BLAS writes the gates itself for float32/64 (half precision goes through _mm_into)
    gemm = xp.matmul if _STEP_OUT and dt.kind == "f" and dt.itemsize >= 4 and W.dtype == dt \
        else None
    o_, i_, f_, g_ = A[0], A[1], A[2], A[3]
    sig = A[:3]
    # the chunk buffer's views for rows a:b, made once per call rather than once per step:
    # a chunk's steps reuse the same rows of A (NOTE [ Fused recurrent layer ]: fixed cost)
    slots = {}
    lo = hi = 0  # rows of the current chunk (consecutive steps: consecutive rows)
    last = len(steps) - 1
    for j, (s, e, prev) in enumerate(steps):
        if record and j % nc == 0:
            lo, hi = min(q[0] for q in steps[j:j + nc]), max(q[1] for q in steps[j:j + nc])
        a = s - lo if record else 0
        b = a + e - s
        v = slots.get((a, b))
        if v is None:
            v = slots[a, b] = (A[:, a:b], sig[:, a:b], o_[a:b], i_[a:b], f_[a:b], g_[a:b],
                               tmp[:b - a])
        g, sg, og, ig, fg, gg, t = v
        if gemm is not None:
            gemm(Z[prev], W, out=g)
        else:
            _mm_into(xp, Z[prev], W, g)
        if xg is not None:
            g += xg[:, s:e]
        tanh(g, out=g)
        sg *= 0.5
        sg += 0.5
        c = cext[B + s:B + e]
        mul(fg, cext[prev], out=c)
        mul(ig, gg, out=t)
        c += t
        tc = tc_all[s:e]
        tanh(c, out=tc)
        if proj:
            mul(og, tc, out=hpre[s:e])
            _mm_into(xp, hpre[s:e], whrT, Z[B + s:B + e, :Hout])
        else:
            mul(og, tc, out=Z[B + s:B + e, :Hout])
        if record and (j % nc == nc - 1 or j == last):
            _lstm_factors(xp, A[:, :hi - lo], cext, tc_all, P, hp_all, lo, hi)
    y = ws.empty(xp, (N, Hout), dt)  # contiguous, as PyTorch's output (views of it reshape)
    y[...] = Z[B:, :Hout]
    outs = (y, Z[B + fin, :Hout], cext[B + fin])
    return outs, (Z, P, hpre)


def _lstm_forward_kernel(xp, kern, Z, W, cext, P, hpre, w_hr, steps, B, Hout, xg=None):
    """``_lstm_forward``'s step loop with compiled kernels: per step the GEMM into the gates
    and one kernel call (gates, cell, ``h``, the factors ``P`` when given; NOTE [ numba step
    kernels ]); with a projection, ``h`` goes to ``hpre`` and through ``W_hr`` into ``Z``."""
    A = ws.empty(xp, (4, B, W.shape[2]), Z.dtype)  # one step's gates (rows b < n of a step)
    record = P is not None
    Pk = P if record else kern.no_factors
    whrT = xp.ascontiguousarray(w_hr.T) if hpre is not None else None
    fwd, matmul = kern.fwd, xp.matmul
    for s, e, prev in steps:
        matmul(Z[prev], W, out=A[:, :e - s])
        if xg is not None:
            A[:, :e - s] += xg[:, s:e]
        if hpre is None:
            fwd(A, cext[prev], cext, B + s, Z, B + s, Pk, s, record)
        else:
            fwd(A, cext[prev], cext, B + s, hpre, s, Pk, s, record)
            _mm_into(xp, hpre[s:e], whrT, Z[B + s:B + e, :Hout])


def _lstm_factors(xp, A, cext, tc_all, P, hp_all, lo, hi):
    """Rows ``lo:hi`` of ``P`` (see ``_lstm_forward``) from their gates ``A`` (4, hi - lo, H)."""
    mul, sub = xp.multiply, xp.subtract
    sg, o, i, gg = A[:3], A[0], A[1], A[3]
    P[5, lo:hi] = A[2]
    tc = tc_all[lo:hi]
    cp = cext[lo:hi] if isinstance(hp_all, slice) else cext[hp_all[lo:hi]]
    ps = P[1:4, lo:hi]  # o, i, f
    mul(sg, sg, out=ps)  # sigmoid' = s - s^2
    sub(sg, ps, out=ps)
    P[1, lo:hi] *= tc
    P[2, lo:hi] *= gg
    P[3, lo:hi] *= cp
    pg = P[4, lo:hi]  # i * (1 - g^2)
    mul(gg, gg, out=pg)
    pg *= i
    sub(i, pg, out=pg)
    k = P[0, lo:hi]  # o * (1 - tanh(c)^2)
    mul(tc, tc, out=k)
    k *= o
    sub(o, k, out=k)


def _lstm_backward(xp, need, arrs, dy, dhN, dcN, steps, hp_all, fin, kern=None, emb=None):
    """The LSTM BPTT loop and the weight gradients.

    As the forward, a step's GEMM covers the input too: ``dZ[prev] += sum_g dG_g @ [W_hh_g |
    W_ih_g]`` gives the previous state's gradient and, in the columns beside it, the step's
    input gradient (each row is some step's previous state at most once).  The weight and
    bias gradients are one batched GEMM over all steps, ``dG^T @ Z[hp_all]``, whose column
    blocks are ``W_hh``'s, ``W_ih``'s and the bias's.

    ``emb`` (``_FusedEmbLstm``: ``Z`` holds the states only; ``x``, ``w_ih`` and the biases
    are None in ``arrs``): ``(table, flat indices, w_ih, has biases, needs)``; the gradients of
    the table, ``w_ih`` and the biases come from the gate gradients summed per index
    (``_lstm_table_grads``) and are returned in place of ``x``'s, ``w_ih``'s and the biases'.
    """
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, _, Z, P, hpre = arrs
    B, N = h0.shape[0], Z.shape[0] - h0.shape[0]
    H, Hout = w_hh.shape[0] // 4, w_hh.shape[1]
    I = Z.shape[1] - Hout - (b_ih is not None)  # 0 with ``emb``
    dt = Z.dtype
    order, back = list(_LSTM_ORDER), list(_LSTM_BACK)
    wide = Hout + I if need[0] else Hout  # dx only when asked for
    Wb = ws.empty(xp, (4, H, wide), dt)
    Wb[:, :, :Hout] = w_hh.reshape(4, H, Hout)[order]
    if need[0]:
        Wb[:, :, Hout:] = w_ih.reshape(4, H, I)[order]
    dZ = ws.empty(xp, (B + N, wide), dt)
    dZ[:B, :Hout] = 0
    _set_rows(dZ[B:, :Hout], dy)
    dZ[B + fin, :Hout] += dhN
    if need[0]:
        dZ[:, Hout:] = 0
    # Every row of dcext but the final states' is written (not added to) exactly once, as the
    # previous state of one step, before the step of that row reads it: only ``fin`` is set.
    # dcext follows dG's five slots in one block (dcext's row r is G6's slot 5, row r), so that
    # where a step's previous state is its own row range of ext (every step of a forward
    # direction over equal batch sizes) one multiply by dc, P[2:6] (i, f, g's factors and f),
    # writes the three gates' gradients and dc_prev: at B=32, H=128 one call of 7.5-7.9 us
    # against two of 8.8-9.2 (one thread); dG's slots stay contiguous for the GEMMs and kernels
    blk = ws.empty(xp, ((6 * N + B) * H,), dt)
    G6 = blk[:6 * N * H].reshape(6, N, H)
    dG = G6[:5]  # dh * K, then o,i,f,g (P stays intact: retain_graph)
    dcext = blk[5 * N * H:].reshape(B + N, H)
    dcext[B + fin] = 0 if dcN is None else dcN
    mul, matmul = xp.multiply, xp.matmul
    dgates = dG[1:]
    f_ = P[5]
    add = xp.add
    # the step's per-gate products (_STEP_OUT): written by BLAS, then summed into dZ's rows
    # in place, two gates at a time (dZ[prev] is a view only when prev is a slice)
    M = xp.empty((4, B, wide), dt) if _STEP_OUT and dt.kind == "f" and dt.itemsize >= 4 \
        and Wb.dtype == dt else None
    if kern is not None:
        M = ws.empty(xp, (4, B, wide), dt)
        _lstm_backward_kernel(xp, kern, dZ, dcext, xp.ascontiguousarray(P), dG, M, Wb, w_hr,
                              steps, B, Hout)
        steps = ()  # done
    mviews = {}  # n -> views of M for a step of n rows, made once per call (fixed cost)
    for s, e, prev in reversed(steps):
        dh = dZ[B + s:B + e, :Hout]
        if w_hr is not None:
            dh = dh @ w_hr
        dc = dcext[B + s:B + e]
        mul(P[:2, s:e], dh, out=dG[:2, s:e])
        dc += dG[0, s:e]
        sliced = type(prev) is slice
        if sliced and prev.start == s:  # dcext[prev] is G6[5, s:e]
            mul(P[2:6, s:e], dc, out=G6[2:6, s:e])
        else:
            mul(P[2:5, s:e], dc, out=dG[2:, s:e])
            if sliced:
                mul(dc, f_[s:e], out=dcext[prev])
            else:
                dcext[prev] = dc * f_[s:e]
        if M is not None and sliced:
            mv = mviews.get(e - s)
            if mv is None:
                m = M[:, :e - s]
                mv = mviews[e - s] = (m, m[:2], m[2:], m[0], m[1])
            m, m01, m23, m0, m1 = mv
            matmul(dgates[:, s:e], Wb, out=m)
            add(m01, m23, out=m01)
            d = dZ[prev]
            d += m0
            d += m1
        else:
            dZ[prev] += matmul(dgates[:, s:e], Wb).sum(0)
    gx = gh0 = gc0 = gwi = gwh = gbi = gbh = gwr = None
    if need[0]:
        gx = _make(dZ[hp_all, Hout:])  # a strided view (regular input) rather than a copy
    if need[1]:
        gh0 = _make(dZ[:B, :Hout].copy())
    if need[2]:
        gc0 = _make(dcext[:B].copy())
    if any(need[3:7]):
        gW = matmul(dgates.transpose(0, 2, 1), Z[hp_all])[back]  # (4, H, Hout + I [+ 1])
        if need[3]:
            gwi = _make(gW[:, :, Hout:Hout + I].reshape(4 * H, I))
        if need[4]:
            gwh = _make(gW[:, :, :Hout].reshape(4 * H, Hout))
        if need[5] or need[6]:
            gb = gW[:, :, Hout + I].reshape(4 * H)
            gbi = _make(gb) if need[5] else None
            gbh = _make(gb.copy()) if need[6] else None
    if need[7]:
        gwr = _make(dZ[B:, :Hout].T @ hpre)
    if emb is not None:
        gx, gwi, gbi, gbh = _lstm_table_grads(xp, dgates, *emb)
    return gx, gh0, gc0, gwi, gwh, gbi, gbh, gwr, None, None, None, None


def _lstm_backward_kernel(xp, kern, dZ, dcext, P, dG, M, Wb, w_hr, steps, B, Hout):
    """``_lstm_backward``'s BPTT loop with compiled kernels: per step one kernel call for the
    gates' gradients and ``dc_prev``, the GEMM into ``M`` and one call that sums its four
    products into ``dZ``'s rows (NOTE [ numba step kernels ])."""
    bwd, acc, matmul = kern.bwd, kern.acc, xp.matmul
    dgates = dG[1:]
    for s, e, prev in reversed(steps):
        if w_hr is None:
            dsrc, drow = dZ, B + s
        else:
            dsrc, drow = dZ[B + s:B + e, :Hout] @ w_hr, 0
        n = e - s
        if type(prev) is slice:
            bwd(dsrc, drow, dcext, B + s, P, s, dG, dcext[prev])
        else:  # rows gathered from h0 too (reverse direction, packed): written back
            dcp = xp.empty((n, dcext.shape[1]), dcext.dtype)
            bwd(dsrc, drow, dcext, B + s, P, s, dG, dcp)
            dcext[prev] = dcp
        m = matmul(dgates[:, s:e], Wb, out=M[:, :n])
        if type(prev) is slice:
            acc(M, dZ[prev])
        else:
            dZ[prev] += m.sum(0)


class _FusedEmbLstm(Function):
    """An LSTM layer-direction over an embedding's rows, ``LSTM(weight[idx])``, with the
    input's gate pre-activations looked up in ``weight @ W_ih^T + b`` (NOTE [ Embedding into
    LSTM ]).  ``ember.compile`` puts it in place of an ``embedding`` whose rows only a fused
    LSTM layer reads (``_functorch/rnn_fold.py``); its values are those of that pair.  With
    ``idx_t`` the indices are batch-first, ``(B, T)``: the layer reads them transposed."""

    raw = True
    backward_name = "FusedRnnEmbLayerBackward"
    kern = None  # the step kernels the forward used (NOTE [ Step kernels ])

    @staticmethod
    def forward(ctx, emb, idx, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse, bs, y_shape,
                idx_t=False):
        xp = ctx.xp
        flat = (idx.T if idx_t else idx).reshape(-1)
        ctx.idx_t = idx_t
        if flat.size and (flat.min() < 0 or flat.max() >= emb.shape[0]):
            raise IndexError("index out of range in self")  # as the embedding's forward
        steps, hp_all, fin = _plan(xp, bs, reverse)
        ctx.meta = ("LSTM", reverse, bs, w_hh.shape[0] // 4)
        kern = ctx.kern = _kernels.get((xp, emb.dtype)) if _kernels else None
        xg = _lstm_table_rows(xp, emb, flat, w_ih, b_ih, b_hh)
        outs, keep = _lstm_forward(xp, None, h0, c0, None, w_hh, None, None, None, steps,
                                   hp_all, fin, ctx._record, kern, xg)
        ctx.save_for_backward(emb, idx, h0, c0, w_ih, w_hh, b_ih, b_hh, *keep)
        if y_shape is None:
            return outs
        return (outs[0].reshape(y_shape),) + tuple(outs[1:])

    @staticmethod
    def backward(ctx, dy, dhN, dcN=None):
        saved = ctx.saved_tensors
        emb, idx, h0, c0, w_ih, w_hh, b_ih, b_hh = saved[:8]
        if state.grad:  # create_graph: the unfused pair, recomputed and differentiated
            return _emb_backward_graph(ctx, saved[:8], (dy, dhN, dcN))
        _, reverse, bs, _ = ctx.meta
        xp = ctx.xp
        steps, hp_all, fin = _plan(xp, bs, reverse)
        need = ctx.needs_input_grad
        arrs = [None, h0._data, None if c0 is None else c0._data, None, w_hh._data, None, None,
                None, None] + [None if s is None else s._data for s in saved[8:]]
        flat = (idx._data.T if ctx.idx_t else idx._data).reshape(-1)
        tab = (emb._data, flat, w_ih._data, b_ih is not None,
               (need[0], need[4], need[6], need[7]))
        dcN = None if dcN is None else dcN._data
        g = _lstm_backward(xp, (False,) + need[2:4] + (False, need[5]) + (False,) * 3, arrs,
                           dy._data, dhN._data, dcN, steps, hp_all, fin, ctx.kern, tab)
        return (g[0], None, g[1], g[2], g[3], g[4], g[5], g[6], None, None, None, None)


def _emb_backward_graph(ctx, inputs, grads):
    """create_graph for ``_FusedEmbLstm``: the embedding and the unfused layer recomputed
    from the inputs and differentiated with ``create_graph`` (as ``_backward_graph``)."""
    from ..autograd import grad as _grad
    from .layers import embedding
    _, reverse, bs, _ = ctx.meta
    emb, idx, h0, c0, w_ih, w_hh, b_ih, b_hh = inputs
    need = ctx.needs_input_grad
    wrt = [t for t, nd in zip(inputs, need) if nd]
    with enable_grad():
        x = embedding(idx, emb)
        x = (x.transpose(0, 1) if ctx.idx_t else x).reshape(-1, emb.shape[1])
        y, hn, cn = _layer_unfused(x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, "LSTM", reverse, bs)
        gouts = list(grads)
        if gouts[0] is not None:
            gouts[0] = gouts[0].reshape(y.shape)
        got = _grad([y, hn, cn], wrt, gouts, retain_graph=True, create_graph=True,
                    allow_unused=True)
    it = iter(got)
    return tuple(next(it) if nd else None for nd in need[:8]) + (None,) * 4


def _lstm_table_rows(xp, emb, flat, w_ih, b_ih, b_hh):
    """``(emb @ W_ih^T + b_ih + b_hh)[flat]`` as ``(4, N, H)``, gates o,i,f,g, the sigmoid
    gates' halved as in ``_lstm_weights``: the table is ``V`` rows, the lookup one ``take``."""
    H, I = w_ih.shape[0] // 4, w_ih.shape[1]
    order = list(_LSTM_ORDER)
    tab = _mm(xp, emb, w_ih.reshape(4, H, I)[order].transpose(0, 2, 1), (4, emb.shape[0], H))
    if b_ih is not None:
        tab += (b_ih + b_hh).reshape(4, 1, H)[order]
    tab[:3] *= 0.5
    # "clip": the indices were checked, and "raise" copies through a temporary (~3x slower)
    return xp.take(tab, flat, axis=1, out=ws.empty(xp, (4, flat.size, H), tab.dtype),
                   mode="clip")


def _lstm_table_grads(xp, dgates, emb, flat, w_ih, bias, need):
    """The gradients of the table, ``w_ih`` and the two biases (``need``: which) from the gate
    gradients ``dgates`` (4, N, H), gates o,i,f,g: their rows summed per index, ``dT``
    (4, V, H), give ``dT @ W_ih`` (the table's), ``dT^T @ table`` (``W_ih``'s) and the sum of
    ``dT``'s rows (each bias's)."""
    V, I = emb.shape
    N, H = dgates.shape[1:]
    back = list(_LSTM_BACK)
    # the four gates' rows as one scatter: gate k's row n goes to row k V + flat[n]
    rows = (flat + V * xp.arange(4).reshape(4, 1)).reshape(-1)
    dT = _scatter_rows(xp, 4 * V, rows, dgates.reshape(4 * N, H)).reshape(4, V, H)
    dT = dT[back]  # i,f,g,o as PyTorch's rows
    ge = gwi = gbi = gbh = None
    if need[0]:
        ge = _make(dT.transpose(1, 0, 2).reshape(V, 4 * H) @ w_ih)
    if need[1]:
        gwi = _make(xp.matmul(dT.transpose(0, 2, 1), emb).reshape(4 * H, I))
    if bias and (need[2] or need[3]):
        gb = dT.sum(1).reshape(4 * H)
        gbi = _make(gb) if need[2] else None
        gbh = _make(gb.copy()) if need[3] else None
    return ge, gwi, gbi, gbh


# GRU gates, gate-major (NOTE above): input side ``A`` (3, N, H) in the order n,z,r, hidden
# side products (3, n, H) in the order z,r,n.  Its gradients live in one (4, N, H) array ordered
# n (input side), z, r, n (hidden side): the input-side ones are ``dG[:3]`` and the
# hidden-side ones ``dG[1:]``, both contiguous, and the two products of a backward step's
# incoming dh (n, z) and of dn (r, hidden n) are each adjacent, one multiply apiece.
_GRU_IN = (2, 1, 0)   # PyTorch's r,z,n -> n,z,r (its own inverse)
_GRU_HID = (1, 0, 2)  # PyTorch's r,z,n -> z,r,n (likewise)


def _gru_forward(xp, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, steps, hp_all, fin, record):
    """One GRU layer-direction over packed rows: ``((y, h_n), saved arrays)``.

    A step is 11 NumPy calls (12 with biases): the hidden GEMM into a buffer with ``out=``,
    four for the sigmoids (add, one ``tanh`` over z and r, ``0.5 t + 0.5``), ``hn *= r`` and
    ``n += hn``, ``tanh(n)``, and ``h = n + z * (h_prev - n)`` as three.  When recording, the
    backward's factors ``Q`` (4, N, H) are computed every ``_CHUNK`` steps over those steps'
    rows while they are in cache (as the LSTM's, ``_gru_factors``): d(pre-activation of n)
    and of z per unit of dh, d(pre-activation of r) per unit of dn, and r.
    """
    B, N = h0.shape[0], x.shape[0]
    H, Hout = w_hh.shape[0] // 3, w_hh.shape[1]
    dt = x.dtype
    # z and r pre-scaled by 0.5: tanh gives them as 0.5 * tanh(a / 2) + 0.5
    wi = w_ih.reshape(3, H, -1)[list(_GRU_IN)]
    wi[1:] *= 0.5
    A = _mm(xp, x, xp.ascontiguousarray(wi.transpose(0, 2, 1)), (3, N, H))
    bhn = None
    if b_ih is not None:
        b = b_ih.reshape(3, 1, H)[list(_GRU_IN)]
        b[1:] += b_hh.reshape(3, 1, H)[[1, 0]]
        b[1:] *= 0.5
        A += b
        bhn = b_hh[2 * H:]
    wh = w_hh.reshape(3, H, Hout)[list(_GRU_HID)]
    wh[:2] *= 0.5
    whT = xp.ascontiguousarray(wh.transpose(0, 2, 1))  # (3, Hout, H)
    ext = ws.empty(xp, (B + N, Hout), dt)
    ext[:B] = h0
    # a chunk of steps' hidden products and h_prev - n, kept for the factors (NOTE above)
    nc = min(_CHUNK, len(steps)) if record else 1
    GH = ws.empty(xp, (3, nc * B, H), dt)
    D = ws.empty(xp, (nc * B, H), dt)
    Q = ws.empty(xp, (4, N, H), dt) if record else None
    tanh, mul, sub = xp.tanh, xp.multiply, xp.subtract
    n_, z_ = A[0], A[1]
    zr_ = A[1:]
    lo = hi = 0  # rows of the current chunk (consecutive steps: consecutive rows)
    last = len(steps) - 1
    for j, (s, e, prev) in enumerate(steps):
        if record and j % nc == 0:
            lo, hi = min(q[0] for q in steps[j:j + nc]), max(q[1] for q in steps[j:j + nc])
        a = s - lo if record else 0
        b = a + e - s
        hp = ext[prev]
        gh = GH[:, a:b]
        _mm_into(xp, hp, whT, gh)
        zr = zr_[:, s:e]
        zr += gh[:2]
        tanh(zr, out=zr)
        zr *= 0.5
        zr += 0.5
        hn = gh[2]
        if bhn is not None:
            hn += bhn
        hn *= A[2, s:e]  # r * (W_hn h + b_hn), kept for r's factor
        n = n_[s:e]
        n += hn
        tanh(n, out=n)
        d = D[a:b]
        sub(hp, n, out=d)
        h = ext[B + s:B + e]
        mul(z_[s:e], d, out=h)
        h += n
        if record and (j % nc == nc - 1 or j == last):
            _gru_factors(xp, A, GH[2, :hi - lo], D[:hi - lo], Q, lo, hi)
    return (ext[B:], ext[B + fin]), (ext, A, Q)


def _gru_factors(xp, A, rhn, d, Q, lo, hi):
    """Rows ``lo:hi`` of ``Q`` (see ``_gru_forward``) from the gates ``A`` and the chunk's
    ``r * hn`` and ``h_prev - n``."""
    mul, sub = xp.multiply, xp.subtract
    n, z, r = A[0, lo:hi], A[1, lo:hi], A[2, lo:hi]
    qn, qz, qr = Q[0, lo:hi], Q[1, lo:hi], Q[2, lo:hi]
    sub(1, z, out=qz)
    mul(n, n, out=qn)  # (1 - n^2) * (1 - z)
    sub(1, qn, out=qn)
    qn *= qz
    qz *= z  # z * (1 - z) * (h_prev - n)
    qz *= d
    mul(r, rhn, out=qr)  # r * (1 - r) * hn = r*hn - r * (r*hn)
    sub(rhn, qr, out=qr)
    Q[3, lo:hi] = r


def _gru_backward(xp, need, arrs, dy, dhN, dcN, steps, hp_all, fin):
    """The GRU BPTT loop (6 NumPy calls a step: two multiplies give the four gate gradients,
    one more ``dh * z``; the hidden GEMM with ``out=``, its sum, the add into ``dext``) and the
    weight gradients (one batched GEMM each, all steps)."""
    x, h0, _, w_ih, w_hh, b_ih, b_hh, _, _, ext, A, Q = arrs
    B, N = h0.shape[0], x.shape[0]
    H, Hout = w_hh.shape[0] // 3, w_hh.shape[1]
    dt = x.dtype
    wh = w_hh.reshape(3, H, Hout)[list(_GRU_HID)]
    dext = _grad_ext(xp, dy, dhN, B, fin)
    mul, matmul = xp.multiply, xp.matmul
    dG = ws.empty(xp, (4, N, H), dt)
    dgh = dG[1:]
    qnz, qr_r = Q[:2], Q[2:]
    z_ = A[1]
    M = xp.empty((4, B, Hout), dt)  # a step's three hidden products and dh * z, summed
    for s, e, prev in reversed(steps):
        dh = dext[B + s:B + e]
        m = M[:, :e - s]
        mul(qnz[:, s:e], dh, out=dG[:2, s:e])  # dn, dz
        mul(qr_r[:, s:e], dG[0, s:e], out=dG[2:, s:e])  # dr, d(hidden n)
        mul(dh, z_[s:e], out=m[3])
        _mm_into(xp, dgh[:, s:e], wh, m[:3])
        dext[prev] += m.sum(0)
    dgi = dG[:3]
    gx = gh0 = gwi = gwh = gbi = gbh = None
    if need[0]:
        wi = w_ih.reshape(3, H, -1)[list(_GRU_IN)]
        gx = _make(_mm(xp, dgi, wi, (3, N, wi.shape[2])).sum(0))
    if need[1]:
        gh0 = _make(dext[:B].copy())
    if need[3]:
        gwi = _make(matmul(dgi.transpose(0, 2, 1), x)[list(_GRU_IN)].reshape(3 * H, -1))
    if need[4]:
        gwh = matmul(dgh.transpose(0, 2, 1), ext[hp_all])[list(_GRU_HID)]
        gwh = _make(gwh.reshape(3 * H, Hout))
    if need[5]:
        gbi = _make(dgi.sum(1)[list(_GRU_IN)].reshape(3 * H))
    if need[6]:
        gbh = _make(dgh.sum(1)[list(_GRU_HID)].reshape(3 * H))
    return gx, gh0, None, gwi, gwh, gbi, gbh, None, None, None, None, None


def _backward_graph(ctx, inputs, grads):
    """create_graph: differentiate the unfused composition, recomputed from the inputs."""
    from ..autograd import grad as _grad
    mode, reverse, bs, _ = ctx.meta
    need = ctx.needs_input_grad
    wrt = [t for t, nd in zip(inputs, need) if nd]
    with enable_grad():
        y, hn, cn = _layer_unfused(*inputs, mode, reverse, bs)
        outs = [y, hn] + ([cn] if cn is not None else [])
        gouts = [g for g in grads[:len(outs)]]
        if gouts[0] is not None:  # (T, B, H) when the forward gave that view
            gouts[0] = gouts[0].reshape(y.shape)
        got = _grad(outs, wrt, gouts, retain_graph=True, create_graph=True, allow_unused=True)
    it = iter(got)
    res = [next(it) if nd else None for nd in need[:8]]
    return tuple(res) + (None, None, None, None)


def _rnn_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs, fused=True,
               y_shape=None):
    """One layer, one direction, over packed rows ``x`` (NOTE [ Fused recurrent layer ]).

    Returns ``(y, h_n, c_n)``; ``c_n`` is None unless ``mode == "LSTM"``; ``y`` is
    ``(N, H)``, or ``y_shape`` (``(T, B, H)`` of equal batch sizes) when given.
    """
    bs = tuple(int(b) for b in bs)
    if not fused:
        y, hn, cn = _layer_unfused(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs)
        return (y if y_shape is None else y.reshape(y_shape)), hn, cn
    out = _FusedLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mode, reverse, bs,
                            y_shape)
    if mode == "LSTM":
        return out
    return out[0], out[1], None
