"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from .._backend import xp_of
from .._tensor import _make
from ..autograd.function import _version_counter
from ..ops import _threads
from .optimizer import Optimizer, required

# NOTE [ Blocked SGD ]
# ``_step_group`` runs a large group's update (``_sgd``, the one formula) block by block of
# ``_BLOCK`` elements over all its parameters, split over threads (NOTE [ Threads ]): per
# parameter over whole arrays it made two array-sized temporaries (fresh pages each step) and
# ran ~12 passes at memory speed on one core; a block's five arrays stay in L2 between the
# passes.  ResNet-18's 11.2M parameters, momentum 0.9, one thread, thread CPU, min of 25
# interleaved (loaded machine): 13.7-14.3 -> 11.4-12.2 ms; at two threads the wall-clock
# difference was lost in the load's noise.  Each element goes through the same ufuncs either
# way, so the bits equal the per-parameter loop's (tests/test_sgd_blocked.py).  Blocks of
# 16K-64K elements measured slower (the NumPy calls a block cost more than the cache saves).
_BLOCK = 1 << 18


class SGD(Optimizer):
    r"""SGD as PyTorch documents it.

    g ← g + λθ;  b ← μb + (1-τ)g  (b₁ = g);  g ← g + μb if nesterov else b;  θ ← θ - γg
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _update(self, p, g, state, group, xp):
        if type(g) is not type(p):  # a sparse gradient (embedding's sparse=True): its zeros
            g = g.to_dense()        # leave p and the momentum buffer as PyTorch's sparse add
        buf = None
        if group["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step's buffer is the (decayed) gradient itself
                buf = state["momentum_buffer"] = _make(xp.empty_like(p))
                _sgd(xp, p, g, buf._data, group, xp.empty_like(p), xp.empty_like(p), True)
                return
        _sgd(xp, p, g, None if buf is None else buf._data, group, xp.empty_like(p),
             xp.empty_like(p))

    def _step_group(self, group: dict) -> None:
        """A large group's update in blocks over threads (NOTE [ Blocked SGD ]) when every
        parameter allows it, else the base class's per-parameter loop."""
        work = _blocked_work(self, group)
        if work is None:
            super()._step_group(group)
            return
        segs, total = work
        dtypes = {a[0].dtype for a in segs}

        def part(lo, hi):
            xp = segs[lo][4]
            scratch = {dt: (xp.empty(_BLOCK, dt), xp.empty(_BLOCK, dt)) for dt in dtypes}
            for p, g, b, (a, z), _ in segs[lo:hi]:
                t1, t2 = scratch[p.dtype]
                _sgd(xp, p[a:z], g[a:z], None if b is None else b[a:z], group, t1[:z - a],
                     t2[:z - a])

        _threads.rows(part, len(segs), 5 * total)
        for p in group["params"]:
            if p.grad is not None:
                _version_counter(p)[0] += 1


def _sgd(xp, p, g, b, group, t1, t2, first: bool = False) -> None:
    """One SGD step on arrays, in place: ``g + λp`` into ``t1``, momentum buffer ``b`` (None:
    no momentum; ``first``: set to that gradient) ``μb + (1-τ)g``, ``p -= γ(g + μb)`` with
    Nesterov else ``p -= γb``; ``t1``, ``t2`` scratch shaped as ``p``."""
    wd, mom = group["weight_decay"], group["momentum"]
    if wd != 0:
        g = xp.add(g, xp.multiply(p, wd, out=t2), out=t1)
    if b is not None:
        if first:
            xp.copyto(b, g)
        else:
            b *= mom
            b += xp.multiply(g, 1 - group["dampening"], out=t2)
        g = xp.add(g, xp.multiply(b, mom, out=t2), out=t1) if group["nesterov"] else b
    p -= xp.multiply(g, group["lr"], out=t2)


def _blocked_work(opt, group):
    """``(segments, elements)`` of ``group``'s blocked update, or None where the
    per-parameter loop must run: a small group, a first step (buffers made there), maximize,
    a parameter listed twice, a tensor hyper-parameter, a complex, non-contiguous, sparse or
    mixed-dtype parameter or gradient, or a subclass's own ``_update``.  A segment is
    ``(p, g, b, (lo, hi), xp)`` over flat views."""
    if type(opt)._update is not SGD._update or group["maximize"] or \
            not all(type(group[k]) in (int, float) for k in
                    ("lr", "momentum", "dampening", "weight_decay")):
        return None
    if len({id(p) for p in group["params"]}) != len(group["params"]):
        return None  # a parameter listed twice: two threads would update one block at once
    mom = group["momentum"] != 0
    arrays = []
    total = 0
    for p in group["params"]:
        g = p.grad
        if g is None:
            continue
        pa, ga = p._data, g._data
        state = opt.state.get(p) if mom else None
        buf = state.get("momentum_buffer") if state else None
        if mom and buf is None:
            return None
        ba = buf._data if mom else None
        for a in (pa, ga) if ba is None else (pa, ga, ba):
            flags = getattr(a, "flags", None)
            if flags is None or type(a) is not type(pa) or not flags.c_contiguous or \
                    a.dtype != pa.dtype or a.shape != pa.shape or a.dtype.kind != "f":
                return None
        arrays.append((pa, ga, ba))
        total += pa.size
    if total < _BLOCK:
        return None
    segs = []
    for pa, ga, ba in arrays:
        xp = xp_of(pa)
        pf, gf = pa.reshape(-1), ga.reshape(-1)
        bf = None if ba is None else ba.reshape(-1)
        for lo in range(0, pa.size, _BLOCK):
            segs.append((pf, gf, bf, (lo, min(lo + _BLOCK, pa.size)), xp))
    return segs, total
