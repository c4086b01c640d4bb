"""Compiled optimizer steps: ``ember.compile(opt.step)``, and ``opt.step()`` inside a compiled
function, as ONE generated function over the parameter, gradient and state arrays.

NOTE [ Compiled optimizer steps ]
What it compiles: the update of every parameter of every group of an ``SGD`` (momentum,
dampening, Nesterov, weight decay, maximize), ``Adam`` or ``AdamW`` (L2 or decoupled decay,
AMSGrad, maximize), written out parameter by parameter as straight-line array calls with
``out=`` into scratch buffers allocated once per compiled version (PyTorch's ``_foreach``
semantics: the same formulas, so eager's numbers; see ``ember/optim/sgd.py`` and ``adam_step``
in ``ember/optim/adam.py``).  An Adam group whose parameters Adam's eager first step moved into
flat buffers (``_FlatGroup``) is one unit instead: a dozen calls per cache-sized block of the
whole group, each gradient read where it is (per-parameter code was slower; NOTE [ Blocked
flat Adam ]).  What it guards on: the optimizer's
class, each group's parameters (identity, shape, dtype, which have gradients) and the structural
flags the code branches on (momentum/weight decay zero or not, nesterov, maximize, amsgrad,
decoupled decay, lerp's side); a changed guard regenerates the code.  What it reads at call
time: the hyper-parameters (``lr``, ``momentum``, ``dampening``, ``weight_decay``, ``betas``,
``eps``) from ``param_groups``, so a scheduler's new ``lr`` is seen, and the arrays themselves
(Adam's flat path may re-point them).  The state tensors are the optimizer's own (``state_dict``
is eager's).  Eager runs instead: the first step of a parameter (it creates the state), hooks,
complex or sparse gradients, other optimizers, a Tensor ``lr`` for SGD.

The other stock optimizers with a foreach form in PyTorch (RMSprop, Adagrad, Adamax, NAdam,
RAdam, Adadelta, ASGD, Rprop) and Adafactor (kind ``"called"``) are one generated function
too, but it calls
each parameter's update as the optimizer writes it (``_update`` over arrays, bound to the
parameter, gradient and state arrays in the plan) rather than a second spelling of its formula,
so the numbers are eager's by construction; eager ``_step_group``'s per-parameter lookups, the
dispatch through ``_step_group`` and the negated gradient under ``maximize`` (into scratch) are
what is generated away.  Their updates allocate their own temporaries, so on large parameters
the array work dominates and the step costs what eager's does (measured within noise on a
784-512-256-10 MLP); the gain is that ``opt.step()`` inside a compiled training step is part of
the program.  A subclass overriding ``_update``/``_init_state``/``_step_group``, or another
optimizer, runs its eager step.  SparseAdam and LBFGS are not compiled, as PyTorch's
``torch.compile`` leaves them out (their ``step`` is ``torch.compiler.disable``d: "optimizer
... step not supported"): SparseAdam's gradients are sparse (indices and values whose count
depends on the data), and LBFGS's ``step(closure)`` re-runs the closure and its line search
branches on loss values.  Inside a compiled function their step is a graph break whose reason
says so (``eager_reason``; ``fullgraph=True`` raises it), and they run eagerly.
"""
from __future__ import annotations

import functools
import weakref

from .._backend import xp_of
from .._tensor import Tensor, _version_counter
from ..autograd.grad_mode import enable_grad, no_grad
from ..optim import optimizer as _optmod
from ..optim.optimizer import Optimizer
from ..optim.sgd import SGD
from ..optim.adam import Adam
from .utils import stance
from ..optim._adafactor import Adafactor
from ..optim.adadelta import Adadelta
from ..optim.adagrad import Adagrad
from ..optim.adamax import Adamax
from ..optim.asgd import ASGD
from ..optim.nadam import NAdam
from ..optim.radam import RAdam
from ..optim.rmsprop import RMSprop
from ..optim.rprop import Rprop

__all__ = ["CompiledStep", "compiled_step_for", "routed_steps", "eager_reason"]

_EAGER_STEP = Optimizer.step
# NOTE [ Blocked flat Adam ]
# The flat update is a dozen elementwise passes; over a whole group (ResNet-18's 11.7M, the
# compiling_optimizer recipe's 10.5M elements) each pass streams ~40 MB from memory.  Run
# block by block instead, each block's dozen passes stay in cache: 1 MB blocks (256K float32
# elements; 64K-1M measured, 1 MB best) take a 10.5M-element float32 Adam step from 36-37 to
# 19-20 ms on one core (thread time).  The blocks walk each gradient as it is, so the
# concatenated copy of all gradients (two more passes) goes too.  Elementwise formulas in the
# same order: the same bits as the eager step.
_BLOCK_BYTES = 1 << 20
# optimizers whose update the generic path calls as it is (NOTE [ Compiled optimizer steps ])
_CALLED = (RMSprop, Adagrad, Adamax, NAdam, RAdam, Adadelta, ASGD, Rprop, Adafactor)
_STEPS = weakref.WeakKeyDictionary()  # optimizer -> its CompiledStep (opt.step inside fns)


def _kind(opt):
    """``"sgd"``/``"adam"`` when ``opt``'s update is the stock one, else ``None``."""
    cls = type(opt)
    if cls.step is not _EAGER_STEP and cls.step is not _routed:
        return None
    if cls._update is SGD._update and cls._step_group in (SGD._step_group,
                                                           Optimizer._step_group):
        return "sgd"
    if cls._update is Adam._update and cls._init_state is Adam._init_state and \
            cls._step_group is Adam._step_group:
        return "adam"
    if cls._step_group is Optimizer._step_group and \
            any(cls._update is k._update and cls._init_state is k._init_state for k in _CALLED):
        return "called"
    return None


def _gen_sgd(gi, group, n):
    """Source lines of group ``gi``'s SGD update over ``n`` parameters (eager's formulas)."""
    wd, mom = group["weight_decay"] != 0, group["momentum"] != 0
    lines = [f"    gr = groups[{gi}]", "    lr = gr['lr']", "    wd = gr['weight_decay']",
             "    mom = gr['momentum']", "    damp1 = 1 - gr['dampening']"]
    for i in range(n):
        j = f"{gi}_{i}"
        lines.append(f"    p = P{j}[0]; g = P{j}[1]; t1 = T{j}[0]; t2 = T{j}[1]")
        if group["maximize"]:
            lines.append("    g = xp.negative(g, out=t1)")
        if wd:  # g + wd·p, never into the user's gradient
            lines.append("    g = xp.add(g, xp.multiply(p, wd, out=t2), out=t1)")
        if mom:
            lines.append(f"    b = P{j}[2]; b *= mom; b += xp.multiply(g, damp1, out=t2)")
            if group["nesterov"]:
                lines.append("    g = xp.add(g, xp.multiply(b, mom, out=t2), out=t1)")
            else:
                lines.append("    g = b")
        lines.append("    p -= xp.multiply(g, lr, out=t2)")
    return lines


def _gen_adam(gi, group, n, flat=False):
    """Source lines of group ``gi``'s Adam/AdamW update (``adam_step``'s formulas); ``flat``:
    over the one buffer Adam's flat path keeps per group (``_FlatGroup``), else per parameter.
    The flat update runs block by block (NOTE [ Blocked flat Adam ]).
    """
    beta1, _ = group["betas"]
    wd, dec = group["weight_decay"] != 0, group["decoupled_weight_decay"]
    lines = [f"    gr = groups[{gi}]", "    b1, b2 = gr['betas']", "    b1 = float(b1)",
             "    b2 = float(b2)", "    lr = float(gr['lr'])", "    wd = gr['weight_decay']",
             "    eps = gr['eps']", "    w1 = 1 - b1", "    c2 = 1 - b2"]
    if wd and dec:
        lines.append("    shrink = 1 - lr * wd")
    for i in range(n):
        j = f"{gi}_{i}"
        if flat:  # (flat params, grads, m, v, steps, g, tmp[, vmax]): g and tmp are scratch
            lines.append(f"    P, gl, M, V, s, G, TMP = P{j}[:7]")
            if group["amsgrad"]:
                lines.append(f"    VX = P{j}[7]")
            lines.append("    s += 1; t = float(s[0])")
            lines.append("    o = 0")
            lines.append("    for ga in gl:")
            lines.append("        ga = ga.reshape(-1); n = ga.shape[0]")
            lines.append("        for lo in range(0, n, BLK):")
            lines.append("            hi = lo + BLK; k = min(hi, n) - lo; a = o + lo; b = a + k")
            lines.append("            g = ga[lo:hi]; p = P[a:b]; m = M[a:b]; v = V[a:b]")
            lines.append("            tmp = TMP[:k]; gs = G[:k]")
            if group["amsgrad"]:
                lines.append("            vx = VX[a:b]")
            body, gout, pad = [], "gs", "            "
        else:
            lines.append(f"    p, g, m, v, s = P{j}[:5]; tmp = T{j}[0]")
            if group["amsgrad"]:
                lines.append(f"    vx = P{j}[5]")
            lines.append("    s += 1; t = float(s)")
            body, gout, pad = [], f"T{j}[1]", "    "
        if group["maximize"]:
            body.append(f"g = xp.negative(g, out={gout})")
        if wd and dec:
            body.append("p *= shrink")
        elif wd:
            body.append(f"g = xp.add(g, xp.multiply(p, wd, out=tmp), out={gout})")
        # m ← lerp(m, g, 1-β₁), PyTorch's two-sided formula (the side is guarded)
        body.append("xp.subtract(g, m, out=tmp)")
        if 1 - float(beta1) < 0.5:
            body.append("tmp *= w1; m += tmp")
        else:
            body.append("tmp *= w1 - 1; xp.add(g, tmp, out=m)")
        body.append("xp.multiply(g, g, out=tmp); tmp *= c2; v *= b2; v += tmp")
        if group["amsgrad"]:
            body.append("v = xp.maximum(vx, v, out=vx)")
        body.append("xp.sqrt(v, out=tmp); tmp /= (1 - b2 ** t) ** 0.5; tmp += eps")
        body.append("xp.divide(m, tmp, out=tmp); tmp *= -(lr / (1 - b1 ** t)); p += tmp")
        lines += [pad + b for b in body]
        if flat:
            lines.append("        o += n")
    return lines


def _gen_called(gi, group, n):
    """Source lines of group ``gi``'s update over ``n`` parameters as calls of the optimizer's
    own array-level ``_update`` (its formula, written once), with eager ``_step_group``'s
    negated gradient under ``maximize`` written into scratch."""
    lines = [f"    gr = groups[{gi}]"]
    for i in range(n):
        j = f"{gi}_{i}"
        g = f"P{j}[1]"
        if group.get("maximize", False):
            lines.append(f"    g = xp.negative({g}, out=T{j}[0])")
            g = "g"
        lines.append(f"    _update(opt, P{j}[0], {g}, P{j}[2], gr, xp)")
    return lines


class _Version:
    """One generated update, valid for the guard ``key``."""

    __slots__ = ("key", "fn", "scratch", "src")


class CompiledStep:
    """``ember.compile(opt.step)``: the optimizer's update as one generated function."""

    def __init__(self, opt: Optimizer, scheduled: bool = False, weak: bool = False):
        # weak: the one ``compiled_step_for`` keeps per optimizer must not keep it alive
        self._opt = weakref.ref(opt) if weak else opt
        self.scheduled = scheduled
        self.kind = _kind(opt)
        self.version = None
        self.recompiles = 0
        functools.update_wrapper(self, type(opt).step, updated=())

    @property
    def opt(self) -> Optimizer:
        o = self._opt
        return o() if isinstance(o, weakref.ref) else o

    @property
    def code(self) -> str:
        """The generated source of the current version (``""`` before the first compile)."""
        return self.version.src if self.version is not None else ""

    def _eager(self, closure):
        opt = self.opt
        step = type(opt).step  # an optimizer's own step (LBFGS's), else Optimizer's
        if step is _routed:
            step = _EAGER_STEP
        return step(opt) if closure is None else step(opt, closure)

    def __call__(self, closure=None):
        opt = self.opt
        if self.scheduled:
            opt._opt_called = True  # what the lr scheduler's wrapper of opt.step records
        if self.kind is None or stance[0] == "force_eager" or \
                opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks or \
                _optmod._global_post_hooks or \
                any(h is not capture_hook for h in _optmod._global_pre_hooks.values()):
            return self._eager(closure)
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        plan = self._plan()
        if plan is None:  # a first step (state made here), or something only eager handles
            with no_grad():
                for group in opt.param_groups:
                    opt._step_group(group)
            self._mark()
            return loss
        key, arrays, vcs = plan
        ver = self.version
        if ver is None or ver.key != key:
            ver = self._build(key, arrays)
        with no_grad():
            if self.kind == "called":
                ver.fn(opt.param_groups, opt, *arrays, *ver.scratch)
            else:
                ver.fn(opt.param_groups, *arrays, *ver.scratch)
        for vc in vcs:
            vc[0] += 1
        self._mark()
        return loss

    def _mark(self) -> None:
        """Tell a running capture which parameters this step wrote (not a stray write) and
        that the step is part of the program (NOTE [ Compiled training steps ])."""
        from .eval_frame import _capturing
        if _capturing:
            cap = _capturing[-1]
            cap.stepped.update(id(p) for g in self.opt.param_groups for p in g["params"])
            cap.event("step", self.opt)

    def _plan(self):
        """``(guard key, per-parameter array tuples, version counters)`` or ``None``."""
        opt = self.opt
        adam = self.kind == "adam"
        called = self.kind == "called"
        key = [type(opt)]
        arrays = []
        vcs = []
        for group in opt.param_groups:
            if called:  # the update reads every option itself; only maximize is outside it
                flags = (bool(group.get("maximize", False)),)
            elif adam:
                b1 = float(group["betas"][0])
                flags = (group["weight_decay"] != 0, bool(group["decoupled_weight_decay"]),
                         bool(group["maximize"]), bool(group["amsgrad"]), 1 - b1 < 0.5)
            else:
                if isinstance(group["lr"], Tensor):
                    return None
                flags = (group["weight_decay"] != 0, group["momentum"] != 0,
                         bool(group["nesterov"]), bool(group["maximize"]))
            gkey = [flags]
            if adam:
                unit = self._flat_unit(group)
                if unit is not None:
                    fg, grads = unit
                    key.append((flags, "flat", id(fg)))
                    arrays.append((fg.flat, grads, fg.m, fg.v, fg.steps, fg.g, fg.tmp) +
                                  ((fg.vmax,) if fg.vmax is not None else ()))
                    vcs += fg.vcs
                    continue
            for p in group["params"]:
                g = p._grad
                if g is None:
                    gkey.append(None)
                    continue
                a, ga = p._data, g._data
                if ga.dtype.kind not in "f" or a.dtype != ga.dtype or a.shape != ga.shape \
                        or not isinstance(ga, type(a)):
                    return None
                st = opt.state.get(p)
                if called:
                    if not st:  # a first step: eager creates the state
                        return None
                    tup = (a, ga, st)
                elif adam:
                    if not st or not isinstance(st.get("step"), Tensor):
                        return None
                    names = ("exp_avg", "exp_avg_sq") + \
                        (("max_exp_avg_sq",) if group["amsgrad"] else ())
                    tup = (a, ga) + tuple(st[k]._data for k in names[:2]) + \
                        (st["step"]._data,) + tuple(st[k]._data for k in names[2:])
                elif group["momentum"] != 0:
                    buf = st.get("momentum_buffer") if st else None
                    if buf is None:
                        return None
                    tup = (a, ga, buf._data)
                else:
                    tup = (a, ga)
                gkey.append((id(p), a.shape, a.dtype))
                arrays.append(tup)
                vcs.append(_version_counter(p))
            key.append(tuple(gkey))
        return tuple(key), arrays, vcs

    def _flat_unit(self, group):
        """``(flat group, gradient arrays)`` when Adam's flat buffers hold ``group`` (made by
        its eager first step) and every gradient matches them, else ``None``."""
        fg = getattr(self.opt, "_flat", {}).get(id(group))
        if fg is None or not fg.valid(self.opt, group):
            return None
        grads = []
        for p in group["params"]:
            g = p._grad
            if g is None or g._data.dtype != fg.dtype or not isinstance(g._data, fg.xp.ndarray):
                return None
            grads.append(g._data)
        return fg, grads

    def _build(self, key, arrays) -> _Version:
        """Generate, compile and allocate the scratch of the update for guard ``key``."""
        from ..fx.graph_module import _exec
        opt = self.opt
        gen = {"adam": _gen_adam, "sgd": _gen_sgd, "called": _gen_called}[self.kind]
        lines = []
        pnames, tnames, scratch = [], [], []
        k = 0
        for gi, group in enumerate(opt.param_groups):
            flat = key[1 + gi][1:2] == ("flat",)
            n = 1 if flat else sum(1 for p in group["params"] if p._grad is not None)
            lines += gen(gi, group, n, flat) if flat else gen(gi, group, n)
            for i in range(n):
                a = arrays[k][0]
                k += 1
                xp = xp_of(a)
                pnames.append(f"P{gi}_{i}")
                tnames.append(f"T{gi}_{i}")
                # the flat buffers bring their own scratch; the called updates make theirs
                if flat or self.kind == "called" and not group.get("maximize", False):
                    scratch.append(())
                else:
                    scratch.append((xp.empty_like(a), xp.empty_like(a)))
        head = ["groups", "opt"] if self.kind == "called" else ["groups"]
        args = ", ".join(head + pnames + tnames)
        src = f"def forward({args}):\n" + "\n".join(lines) + "\n"
        env = {"xp": xp_of(arrays[0][0]) if arrays else None,
               "_update": type(opt)._update,
               "BLK": _BLOCK_BYTES // arrays[0][0].itemsize if arrays else 1}
        _exec(src, env)
        ver = _Version()
        ver.key, ver.fn, ver.scratch, ver.src = key, env["forward"], tuple(scratch), src
        if self.version is not None:
            self.recompiles += 1
        self.version = ver
        return ver


def eager_reason(opt) -> str:
    """A graph break's reason for an optimizer step that runs eagerly inside a compiled
    function: PyTorch's words for the optimizers its compile leaves out, and why."""
    name = type(opt).__name__
    why = getattr(type(opt), "_compile_reason", None)
    if why is None:
        return f"{name}.step() inside the function (runs eagerly)"
    return f"{name}.step() inside the function: optimizer {name} step not supported ({why}); " \
        "it runs eagerly"


def capture_hook(opt, args, kwargs):
    """A global pre-hook while a capture runs: an eager optimizer step (one a scheduler
    wrapped, or another optimizer's) writes parameters the graph cannot replay: a break."""
    from .eval_frame import _capturing
    if _capturing:
        cap = _capturing[-1]
        cap.brk(eager_reason(opt))
        # its writes to the parameters are this break's, not another one
        cap.stepped.update(id(p) for g in opt.param_groups for p in g["params"])


def optimizer_of(fn):
    """The optimizer whose step ``fn`` is (a bound ``step``, or an lr scheduler's wrapper of
    it), else ``None``."""
    import inspect
    if inspect.ismethod(fn) and isinstance(fn.__self__, Optimizer) and fn.__name__ == "step":
        return fn.__self__
    if getattr(fn, "_wrapped_by_lr_sched", False):
        for cell in fn.__closure__ or ():
            v = cell.cell_contents
            if isinstance(v, weakref.ref) and isinstance(v(), Optimizer):
                return v()
    return None


def compiled_step_for(opt: Optimizer):
    """The ``CompiledStep`` an ``opt.step()`` inside a compiled function runs (made once)."""
    cs = _STEPS.get(opt)
    if cs is None:
        cs = _STEPS[opt] = CompiledStep(opt, weak=True)
    return cs


def _routed(self, closure=None):
    from .eval_frame import _capturing
    if _capturing:  # inside a capture: the update is not recorded as ops (arrays only, and
        # a first step's eager state creation runs with the recorder off)
        cap = _capturing[-1]
        if closure is not None:
            cap.brk("optimizer.step(closure) inside the function (the closure's ops)")
        with cap.suspended():
            return compiled_step_for(self)(closure)
    return compiled_step_for(self)(closure)


class routed_steps:
    """While active, ``opt.step()`` of the stock optimizers runs its compiled update."""

    depth = 0

    def __enter__(self):
        if routed_steps.depth == 0:
            Optimizer.step = _routed
        routed_steps.depth += 1
        return self

    def __exit__(self, *exc):
        routed_steps.depth -= 1
        if routed_steps.depth == 0:
            Optimizer.step = _EAGER_STEP
