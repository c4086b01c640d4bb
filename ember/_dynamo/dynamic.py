"""Dynamic shapes: one captured graph for every size of a dimension that varies.

NOTE [ Dynamic compiled graphs ]
ember's ops keep sizes as Python ints in their arguments (``view(x, (4, 5))``), so one capture
cannot tell a batch size from a constant.  When a call at a new size recompiles, the two
captures of the same code differ only in those ints; ``DynamicGraph`` turns each one into an
expression over the inputs' sizes (``symbolize``, NOTE [ Sizes from two captures ]: a
dimension, a product, a dimension times or plus a constant; anything else keeps the graph
static) and keeps that size-generic graph.  At a size not seen before it does not run the
user's Python again: it replays the graph op by op under the recorder (``_replay``: eager
autograd, so this call's numbers and gradients are eager's, random ops draw from the same
stream), and hands the recording to the backend, so the generated code, whose buffers are
planned for static shapes (NOTE [ Planned buffers ]), is made for that size and cached
(``counters["stats"]["dynamic_instances"]``).  No Python re-capture, no new guard entry: a
varying batch size or sequence length stops recompiling.

That replay and the formulas' trace cost a GPT-mini step 70-120 ms at each new size, so the
regions are made size-generic too (NOTE [ Size-generic regions ] in ``_functorch/generic.py``):
the captures' two regions (``seed``; a training step's capture region calls formulas that a
replay lowers, so there the first two replays) give a fit of every size-dependent constant as
an expression over the dynamic sizes (``sizes``), trusted once the next region built the
normal way is exactly what the fit gives at its size (``_learn``;
``counters["stats"]["generic_regions"]``).  From then on a new size gets that one region with
its constants evaluated (``GenericRegion.at``, ~0.2 ms for GPT-mini; ``generic_instances``):
no replay, no trace, no code generation; planned buffers come from the one pool by the spec
for the call's sizes.  A fit the check refutes is dropped and the next two regions are
fitted (three misfits: per size for good); ``GENERIC = False`` turns it off (A/B).

Guards (what the two captures assumed, checked before an instance runs): the rank, dtype and
layout of every input, the static dimensions' sizes (the general key), each dynamic dimension
>= 2 (sizes 0 and 1 are specialised, as PyTorch's: broadcasting and squeezes depend on them),
and dynamic dimensions that were equal in both captures still equal.  A replay runs each op
under the grad mode it was captured in and passes an argument detached where the capture's
did not require grad (``x.detach()`` leaves no node: its array is ``x``'s).  A region fit
holds only where the sizes its two regions shared keep that value (they tell the fit
nothing about themselves); elsewhere the size gets a region of its own.  Limit: relations are
read from two points, so a size that is a non-linear function of a dimension and happened to
be the same at both sizes (``n // 4`` at n = 2 and 3) stays baked.
"""
from __future__ import annotations

import sys

from .._tensor import Tensor, _version_counter
from ..autograd.grad_mode import set_grad_enabled
from ..autograd.modes import Op, dispatch
from ..fx.experimental.proxy_tensor import COPY_, OpRecorder, record
from ..fx.experimental.symbolic_shapes import SYM_SIZE, symbolize
from ..fx.node import map_arg
from . import config
from .utils import counters

__all__ = ["ATTEMPTS", "DynamicGraph", "general_leaf", "NotDynamic", "Snapshot", "size_maps",
           "resize"]

# second captures dynamic=True may try (NOTE [ dynamic=True ]): all sizes grown, shrunk, then
# one size at a time
ATTEMPTS = 4
GENERIC = True  # False: a region per size, as before NOTE [ Size-generic regions ] (A/B, tests)


class NotDynamic(Exception):
    """The two compiled versions differ in something sizes cannot explain."""


def _contiguous(shape, strides, itemsize) -> bool:
    want = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != want:
            return False
        want *= n
    return True


def general_leaf(k, dims):
    """A leaf's guard key with the sizes of ``dims`` left out (``_leaf_key``'s form)."""
    if not dims or k[0] in ("id",) or len(k) != 5:
        return k
    typ, shape, strides, dtype, rg = k
    lay = "C" if _contiguous(shape, strides, dtype.itemsize) else strides
    return (typ, tuple(None if i in dims else n for i, n in enumerate(shape)), lay, dtype, rg)


class Snapshot:
    """What running a function again may change, put back afterwards (NOTE [ dynamic=True ]):
    each tensor's array (the object and its values) and version counter, its ``.grad`` (the
    object and values), each optimizer's per-parameter state and flat buffers."""

    def __init__(self, tensors, optimizers):
        self.arrays = []    # (tensor, array, copy of its values, version, grad)
        self.grads = []     # (grad tensor, array, copy)
        self.flat = []      # (array, copy): Adam's flat group buffers
        self.opts = []      # (optimizer, {param: its state dict's items}, _flat dict)
        seen = set()
        for o in optimizers:
            st = {p: dict(s) for p, s in o.state.items()}
            self.opts.append((o, st, dict(getattr(o, "_flat", {}))))
            tensors = list(tensors) + [v for s in st.values() for v in s.values()
                                       if isinstance(v, Tensor)]
            for fg in getattr(o, "_flat", {}).values():
                for a in (fg.flat, fg.m, fg.v, fg.vmax, fg.steps):
                    if a is not None:
                        self.flat.append((a, a.copy()))
            for g in o.param_groups:
                tensors = tensors + list(g["params"])
        for t in tensors:
            if not isinstance(t, Tensor) or id(t) in seen:
                continue
            seen.add(id(t))
            g = t._grad
            self.arrays.append((t, t._data, t._data.copy(), _version_counter(t)[0], g))
            if g is not None and id(g) not in seen:
                seen.add(id(g))
                self.grads.append((g, g._data, g._data.copy()))

    def restore(self) -> None:
        for o, st, flat in self.opts:
            for p in [p for p in o.state if p not in st]:
                del o.state[p]
            for p, items in st.items():
                o.state[p].clear()
                o.state[p].update(items)
            if hasattr(o, "_flat"):
                o._flat = flat
        for a, c in self.flat:
            a[...] = c
        for t, a, c in self.grads:
            t._data = a
            a[...] = c
        for t, a, c, v, g in self.arrays:
            t._data = a
            if getattr(getattr(a, "flags", None), "writeable", True):
                a[...] = c
            _version_counter(t)[0] = v
            t._grad = g


def size_maps(shapes, static):
    """Candidate size changes for a second capture (NOTE [ dynamic=True ]): dicts old size ->
    new size, most dimensions first.  ``shapes``: the tensor inputs' shapes; ``static``: per
    input the dimensions marked static.  A size that is the product of a run of adjacent
    dimensions of another input (a flattened target) follows them."""
    derived = {}
    for sh in shapes:
        for i in range(len(sh)):
            for j in range(i + 2, len(sh) + 1):
                run = sh[i:j]
                prod = 1
                for n in run:
                    prod *= n
                if all(n >= 2 for n in run) and prod not in sh:
                    derived.setdefault(prod, run)
    free = sorted({n for sh, st in zip(shapes, static) for d, n in enumerate(sh)
                   if n >= 2 and d not in st and n not in derived})
    lead = [n for n in free if any(len(sh) and sh[0] == n for sh in shapes)]
    grow = {n: n + 3 + 2 * j for j, n in enumerate(free)}  # order (so distinctness) kept
    # equal sizes move equally (PyTorch's duck shaping: one symbol per distinct size); n // 2
    # moves too (a step of 1 would let n // 2 pass for n - c)
    shrink = {n: n - 2 for n in free if n >= 4}
    plans = [grow, shrink]
    plans += [{n: grow[n]} for n in lead] + [{n: grow[n]} for n in free if n not in lead]
    out = []
    for plan in plans:
        if not plan:
            continue
        full = dict(plan)
        for prod, run in derived.items():
            if any(n in plan for n in run):
                v = 1
                for n in run:
                    v *= plan.get(n, n)
                full[prod] = v
        if full not in out:
            out.append(full)
    return out


def resize(t, sizes: dict, static=()):
    """``t`` with each dimension's size ``n`` made ``sizes[n]`` (its own entries repeated or
    cut), detached, ``requires_grad`` as ``t``'s."""
    from .. import arange
    out = t.detach()
    for d, n in enumerate(t.shape):
        m = sizes.get(n)
        if m is not None and d not in static:
            out = out.index_select(d, arange(m) % n)
    return out.requires_grad_(t.requires_grad) if out is not t else t


def key_shapes(leaves) -> list:
    return [t._data.shape if isinstance(t, Tensor) else () for t in leaves]


class _Replayer:
    """A generic instance's ``gm``: the size-generic graph run with eager autograd."""

    def __init__(self, dg):
        self.dg = dg

    def __call__(self, *flat):
        return self.dg._replay(flat)


class DynamicGraph:
    """A size-generic graph from two captures (NOTE [ Dynamic compiled graphs ]).

    ``graph(*leaves)`` runs the compiled instance for the leaves' sizes (made on first use);
    ``ok(leaves)`` checks the guards the two captures assumed."""

    def __init__(self, gm_a, gm_b, compiler, dims: dict):
        from ..fx.graph import Graph
        self.dims = dims              # leaf index -> dynamic dimensions
        g = Graph()
        out = g.graph_copy(gm_a.graph, {})
        g.output(out)
        consts = {n.target: getattr(gm_a, n.target) for n in gm_a.graph.nodes
                  if n.op == "get_attr"}
        consts_b = {n.target: getattr(gm_b, n.target) for n in gm_b.graph.nodes
                    if n.op == "get_attr"}
        problems = symbolize(g, gm_b.graph, consts, consts_b, fill_constants=True)
        if problems:
            raise NotDynamic(problems[0])
        self.graph, self.consts, self.compiler = g, consts, compiler
        self.known = [v for v in consts.values() if isinstance(v, Tensor)]
        vals = [[n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
                for gm in (gm_a, gm_b)]
        groups = {}  # dynamic dims equal in both captures: the graph may rely on it
        for i, ds in dims.items():
            for d in ds:
                groups.setdefault((vals[0][i].shape[d], vals[1][i].shape[d]), []).append((i, d))
        self.equal = [grp for grp in groups.values() if len(grp) > 1]
        self.instances = {}
        self.generic = None   # a trusted GenericRegion (NOTE [ Size-generic regions ])
        self._fit = None      # a fit from two regions, not yet checked at a third size
        self._built = []      # (dynamic sizes, region) of the last two regions built by replay
        self._misfits = 0
        self.fixed = None     # a user backend's callable for every size (NOTE [ Custom
        # backends and sizes ] in eval_frame.py)

    def sizes(self, shapes) -> tuple:
        """The dynamic sizes of inputs with these shapes, in ``dims`` order."""
        return tuple(shapes[i][d] for i in sorted(self.dims) for d in sorted(self.dims[i]))

    def seed(self, *runs) -> None:
        """Learn from the regions the captures compiled (a training step's program holds its
        region as ``run``): two make the fit that the next size's region checks."""
        from .._functorch.aot_autograd import CompiledRegion
        for r in runs:
            if not isinstance(r, CompiledRegion):
                r = getattr(r, "run", None)
            if isinstance(r, CompiledRegion) and r._ph_vals and \
                    all(isinstance(r._ph_vals[i], Tensor) for i in self.dims):
                self._learn(self.sizes([t._data.shape if isinstance(t, Tensor) else ()
                                        for t in r._ph_vals]), r)
        if self._fit is None and len(self._built) == 2:
            # a training step's capture ran its backward before lowering, so its region calls
            # the formulas that a replay's lowers: no fit with those; the replays make one
            self._built, self._misfits = [], 0

    def _learn(self, s, region) -> None:
        """NOTE [ Size-generic regions ]: check the pending fit against ``region``, built the
        normal way at sizes ``s`` (trusted if it reproduces it), else fit the last two."""
        from .._functorch.generic import GenericRegion, NoFit
        from .eval_frame import _log_on
        if self.generic is not None or self._misfits >= 3 or not GENERIC:
            return
        if self._fit is not None:
            if self._fit.matches(region, s):
                self.generic = self._fit
                self._built = []
                counters["stats"]["generic_regions"] += 1
                if _log_on("dynamic"):
                    print(f"[ember.compile] one region for every size of dims {self.dims}: "
                          f"{len(self.generic.env) + len(self.generic.slots)} constants "
                          "are size expressions", file=sys.stderr)
                return
            self._fit = None
            self._misfits += 1
        if self._built and self._built[-1][0] == s:
            return
        self._built = (self._built + [(s, region)])[-2:]
        if len(self._built) == 2:
            (sa, a), (sb, b) = self._built
            try:
                self._fit = GenericRegion(a, b, sa, sb)
                # a size the two regions share tells the fit nothing about itself: the fit
                # holds only where it keeps that value (else a region per size)
                self._fit.fixed = [(j, n) for j, (n, m) in enumerate(zip(sa, sb)) if n == m]
            except NoFit as e:
                self._misfits += 1
                if _log_on("dynamic"):
                    print(f"[ember.compile] the region stays per size: {e}", file=sys.stderr)

    def ok(self, leaves) -> bool:
        for i, ds in self.dims.items():
            shape = leaves[i]._data.shape
            for d in ds:
                if shape[d] < 2:  # 0 and 1 are specialised
                    return False
        for grp in self.equal:
            i0, d0 = grp[0]
            n = leaves[i0]._data.shape[d0]
            if any(leaves[i]._data.shape[d] != n for i, d in grp[1:]):
                return False
        return True

    def __call__(self, *leaves):
        key = tuple(leaves[i]._data.shape for i in self.dims)
        inst = self.instances.get(key)
        if inst is not None:
            return inst(*leaves)
        if self.fixed is not None:
            self._keep(key, self.fixed)
            return self.fixed(*leaves)
        s = self.sizes(key_shapes(leaves))
        if self.generic is not None and all(s[j] == n for j, n in self.generic.fixed):
            inst = self.generic.at(s)  # the one region, its constants at these sizes
            inst.gm = _Replayer(self)  # create_graph recomputes with this size's graph
            self._keep(key, inst)
            counters["stats"]["generic_instances"] += 1
            return inst(*leaves)
        rec = OpRecorder(forward_only=True)
        recording = record(lambda *a: self._replay(a), leaves, known=self.known, recorder=rec)
        gm = recording.graph_module()
        gm.meta_no_fold = True  # a generic region needs the same constants at every size
        inst = self.compiler(gm, list(leaves))
        self._keep(key, inst)
        counters["stats"]["dynamic_instances"] += 1
        self._learn(s, inst)
        return recording.result

    def _keep(self, key, inst) -> None:
        if len(self.instances) >= config.dynamic_instance_limit:
            self.instances.pop(next(iter(self.instances)))  # the oldest size's code
        self.instances[key] = inst

    def _replay(self, leaves):
        """Run the graph's ops on ``leaves`` with eager autograd, each offered to the modes."""
        env = {}
        it = iter(leaves)
        for n in self.graph.nodes:
            if n.op == "placeholder":
                env[n] = next(it)
                continue
            if n.op == "get_attr":
                env[n] = self.consts[n.target]
                continue
            args = map_arg(n.args, env.__getitem__)
            if n.op == "output":
                return args[0]
            kwargs = map_arg(n.kwargs, env.__getitem__)
            rg = n.meta.get("arg_rg")
            if rg is not None:
                args = tuple(_detached(a, r) for a, r in zip(args, rg))
            f = n.target
            with set_grad_enabled(n.meta.get("grad_mode", True)):  # a no_grad() block's ops
                if isinstance(f, Op) and f is not SYM_SIZE and f is not COPY_ and \
                        not isinstance(getattr(f._fn, "__self__", None), type):
                    # an offered function or a dropout mask: a node of the recording, not a
                    # constant (the recorder sees Function ops and in-place writes by itself)
                    env[n] = dispatch(f, args, kwargs, f._fn)
                else:
                    env[n] = f(*args, **kwargs)
        return None


def _detached(a, rg):
    """Argument ``a`` as the capture passed it: detached where it did not require grad then
    (``x.detach()`` leaves no node: its array is ``x``'s, so the graph names ``x``)."""
    if rg is False and isinstance(a, Tensor) and a._requires_grad:
        return a.detach()
    if isinstance(rg, tuple) and isinstance(a, (list, tuple)):
        return type(a)(_detached(e, r) for e, r in zip(a, rg))
    return a
