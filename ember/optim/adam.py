"""Adam (Kingma & Ba, 2014) with L2 or decoupled weight decay and AMSGrad."""
from __future__ import annotations

from itertools import repeat
from operator import attrgetter, is_, is_not

from .._tensor import Tensor, _make
from .._backend import xp_of
from .. import _dtype, _shared
from ..autograd.function import _version_counter
from .optimizer import Optimizer

__all__ = ["Adam"]


def step_tensor(xp, value: float = 0.0) -> Tensor:
    """PyTorch's 0-d ``step`` state: float32, or float64 when that is the default dtype."""
    dt = xp.float64 if _dtype.get_default_dtype() is _dtype.float64 else xp.float32
    return _make(xp.asarray(value, dtype=dt))


def lerp_(a, b, w: float, tmp, xp) -> None:
    """``a ← a + w(b - a)`` in place (``tmp`` is scratch), with PyTorch's two-sided formula."""
    xp.subtract(b, a, out=tmp)
    if w < 0.5:
        tmp *= w
        a += tmp
    else:
        # PyTorch's CPU lerp uses b - (b - a)(1 - w) for large weights
        tmp *= w - 1
        xp.add(b, tmp, out=a)


def decayed_grad(p, g, wd: float, xp):
    """``g + wd·p`` as a new array (PyTorch's ``grad.add(param, alpha=wd)``)."""
    out = xp.multiply(p, wd, out=xp.empty_like(p))
    out += g
    return out


# NOTE [ Adam's passes ]
# The update below is 12 in-place NumPy operations over the parameters (plus, on the flat
# path and in ``ember.compile(opt.step)``'s generated update, one concatenation of the
# gradients): ~34 passes over arrays of the group's size, each operation reading one or two
# arrays and writing one.  PyTorch's CPU Adam (single-tensor, its default without CUDA)
# makes ~18 per parameter with fused kernels (lerp_, mul_ + addcmul_, sqrt / div + add_,
# addcdiv_) but dispatches ~7 operations per parameter.  GPT-mini (421,697 parameters, one
# 1.7 MB flat group, larger than L2): the compiled update 1.0-1.1 ms against PyTorch's
# 1.8-2.1 (thread time, one thread, loaded machine).  Tried and not kept (issue 17): the
# update run by chunks of 8-64 K elements, so that each chunk's arrays stay in L2 across its
# 12 operations (the same bits): 0.94 ms whole against 1.01-1.44 ms chunked in isolation
# with the caches flushed, since the whole-array passes stream from L3 and each chunk pays
# 12 calls.
def adam_step(xp, p, g, m, v, vmax, tmp, t: float, group, g_scratch: bool = False) -> None:
    """One Adam step at step count ``t`` over arrays: ``p``, ``m``, ``v`` (and ``vmax`` with
    AMSGrad) in place, as ``Adam``'s docstring writes it; ``tmp`` is scratch shaped like ``p``.

    The loop path calls it per parameter, the flat path once on a whole group's buffers;
    ``g_scratch`` says ``g`` may be overwritten (the flat path's concatenated gradient).
    """
    beta1, beta2 = group["betas"]
    if not isinstance(beta1, float):  # 0-d Tensor betas
        beta1, beta2 = float(beta1), float(beta2)
    lr, wd = float(group["lr"]), group["weight_decay"]
    if wd != 0:
        if group["decoupled_weight_decay"]:
            p *= 1 - lr * wd
        else:
            # g + wd·p (PyTorch's ``grad.add(param, alpha=wd)``), never into the user's grad
            xp.multiply(p, wd, out=tmp)
            g = xp.add(g, tmp, out=g if g_scratch else xp.empty_like(g))
    lerp_(m, g, 1 - beta1, tmp, xp)
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - beta2
    v *= beta2
    v += tmp
    if vmax is not None:
        xp.maximum(vmax, v, out=vmax)
        v = vmax
    # denom = √v / √(1-β₂ᵗ) + ε;  θ ← θ - γ/(1-β₁ᵗ) · m / denom
    xp.sqrt(v, out=tmp)
    tmp /= (1 - beta2 ** t) ** 0.5
    tmp += group["eps"]
    xp.divide(m, tmp, out=tmp)
    tmp *= -(lr / (1 - beta1 ** t))
    p += tmp


def check_betas(lr, eps, betas, weight_decay) -> None:
    """PyTorch's argument checks shared by the Adam family."""
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


# the devices PyTorch's fused optimizers name in their error
_FUSED_DEVICES = ["mps", "cuda", "xpu", "hpu", "cpu", "mtia", "privateuseone"]


def check_fused(fused, foreach, differentiable) -> None:
    """PyTorch's checks of the (here ignored) ``fused`` flag."""
    if fused:
        if differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


class Adam(Optimizer):
    r"""Adam as PyTorch implements it (single-tensor path).

    g ← g + λθ (or θ ← θ(1 - γλ) if decoupled);  m ← lerp(m, g, 1-β₁);  v ← β₂v + (1-β₂)g²;
    v̂ ← max(v̂, v) if amsgrad;  θ ← θ - γ/(1-β₁ᵗ) · m / (√v̂ / √(1-β₂ᵗ) + ε)

    A group of 2+ same-dtype float parameters that all have gradients is stepped on one
    flat buffer (parameters and moments become views into it; see ``_FlatGroup``).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        check_betas(lr, eps, betas, weight_decay)
        if not (isinstance(betas[0], float) and isinstance(betas[1], float)
                or isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor)):
            raise ValueError("betas must be either both floats or both Tensors")
        for i, b in enumerate(betas):
            if isinstance(b, Tensor) and b.numel() != 1:
                raise ValueError(f"Tensor betas[{i}] must be 1-element")
        betas = tuple(b.reshape(()) if isinstance(b, Tensor) else b for b in betas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        self._flat = {}
        super().__init__(params, defaults)
        check_fused(fused, foreach, differentiable)

    def __setstate__(self, state):
        super().__setstate__(state)
        # loaded state replaces the state tensors: flat buffers are rebuilt on the next step
        self._flat = {}
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)

    def _init_state(self, p, state, group):
        if group["fused"] and not p.dtype.is_floating_point:  # PyTorch's check, at the step
            raise RuntimeError("`fused=True` requires all the params to be floating point "
                               f"Tensors of supported devices: {_FUSED_DEVICES} but {p.dtype} "
                               f"and {p.device.type}")
        xp = xp_of(p._data)
        state["step"] = step_tensor(xp)
        state["exp_avg"] = _make(xp.zeros_like(p._data))
        state["exp_avg_sq"] = _make(xp.zeros_like(p._data))
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _make(xp.zeros_like(p._data))

    def _update(self, p, g, state, group, xp):
        step = state["step"]._data
        step += 1
        vmax = state["max_exp_avg_sq"]._data if group["amsgrad"] else None
        adam_step(xp, p, g, state["exp_avg"]._data, state["exp_avg_sq"]._data, vmax,
                  xp.empty_like(p), float(step), group)

    # ---- flat fast path: one buffer per group, a dozen NumPy ops per step ----------------------
    def _step_group(self, group):
        """The flat path when the group allows it, else the base class's per-parameter loop."""
        cls = type(self)
        if cls._update is Adam._update and cls._init_state is Adam._init_state:
            if self._flat_step(group):
                return
            # the loop may advance some steps only: rebuild (and re-check) next time
            self._flat.pop(id(group), None)
        super()._step_group(group)

    def _flat_step(self, group) -> bool:
        """Update ``group`` through its flat buffers; False (nothing done) if not eligible."""
        params = group["params"]
        grads = list(map(_grad_of, params))
        if not all(map(is_not, grads, repeat(None))):
            return False
        fg = self._flat.get(id(group))
        if fg is None or not fg.valid(self, group):
            fg = _FlatGroup.build(self, group)
            if fg is None:
                return False
            self._flat[id(group)] = fg
        garrs = list(map(_data_of, grads))
        dt = fg.dtype
        if not all(a.dtype == dt for a in garrs):
            return False
        xp = fg.xp
        g = fg.g
        xp.concatenate([a.reshape(-1) for a in garrs], out=g)
        if group["maximize"]:
            xp.negative(g, out=g)
        # the same formula as ``_update``, on the whole group at once
        fg.steps += 1
        adam_step(xp, fg.flat, g, fg.m, fg.v, fg.vmax, fg.tmp, float(fg.steps[0]), group,
                  g_scratch=True)
        for vc in fg.vcs:
            vc[0] += 1
        return True


_grad_of = attrgetter("_grad")
_data_of = attrgetter("_data")
_STATE_KEYS = ("exp_avg", "exp_avg_sq")


class _FlatGroup:
    """A group's parameters, moments and step counts as views into contiguous buffers.

    ``p._data`` of each parameter is re-pointed once to a view of ``flat``; state tensors
    (same Tensor objects as the loop path's) are re-pointed to views of ``m``/``v``/``vmax``
    and ``steps``.  ``valid`` detects when a user replaced ``p.data`` or the state.
    """

    def __init__(self, group, params, views, states, xp, dtype, flat, m, v, vmax, steps):
        self.group = group
        self.params = params
        self.views = views
        self.states = states
        self.xp = xp
        self.dtype = dtype
        self.flat, self.m, self.v, self.vmax, self.steps = flat, m, v, vmax, steps
        self.g = xp.empty_like(flat)
        self.tmp = xp.empty_like(flat)
        self.amsgrad = vmax is not None
        self.vcs = [_version_counter(p) for p in params]

    def valid(self, opt, group) -> bool:
        """Whether the installed views are still what the parameters and state hold."""
        params = group["params"]
        return (self.group is group and len(params) == len(self.params)
                and bool(group["amsgrad"]) == self.amsgrad
                and all(map(is_, params, self.params))
                and all(map(is_, map(_data_of, params), self.views))
                and all(map(is_, map(opt.state.get, params), self.states)))

    @staticmethod
    def build(opt, group):
        """Move ``group`` into fresh flat buffers from its current values; None if ineligible."""
        params = list(group["params"])
        # one parameter gains nothing from a copy: it keeps its own storage on the loop
        if len(params) < 2 or len(set(map(id, params))) != len(params):
            return None
        arrs = list(map(_data_of, params))
        xp = xp_of(arrs[0])
        dt = arrs[0].dtype
        for p, a in zip(params, arrs):
            # plain float leaves that nothing else views (a view would not follow the move),
            # not in shared memory (Hogwild workers must keep updating the one shared copy)
            if (not isinstance(a, xp.ndarray) or a.dtype != dt or p._base is not None
                    or any(r() is not None for r in (p._views or ()))
                    or _shared.shared_info(a) is not None):
                return None
        if dt.kind != "f":
            return None
        amsgrad = bool(group["amsgrad"])
        keys = _STATE_KEYS + (("max_exp_avg_sq",) if amsgrad else ())
        states = [opt.state.get(p) for p in params]
        fresh = not any(states)
        if not fresh:
            step0 = None
            for p, st in zip(params, states):
                if not st or "step" not in st:
                    return None
                step = st["step"]
                if not isinstance(step, Tensor) or step._data.shape != ():
                    return None
                for k in keys:
                    s = st.get(k)
                    if (not isinstance(s, Tensor) or s._data.dtype != dt
                            or s._data.shape != p._data.shape):
                        return None
                if step0 is None:
                    step0 = step._data
                elif step._data.dtype != step0.dtype or step._data != step0:
                    return None  # different step counts: the loop handles them
        sizes = [a.size for a in arrs]
        n = sum(sizes)
        flat = xp.concatenate([a.reshape(-1) for a in arrs]) if n else xp.empty(0, dtype=dt)
        bufs = {k: xp.zeros(n, dtype=dt) for k in keys}
        if fresh:
            step_dt = step_tensor(xp)._data.dtype
            steps = xp.zeros(len(params), dtype=step_dt)
            states = [{} for _ in params]
        else:
            steps = xp.asarray([st["step"]._data for st in states], dtype=step0.dtype)
        views = []
        start = 0
        for i, (p, st, size) in enumerate(zip(params, states, sizes)):
            shape = p._data.shape
            sl = slice(start, start + size)
            start += size
            p._data = view = flat[sl].reshape(shape)
            views.append(view)
            if fresh:
                st["step"] = _make(steps[i:i + 1].reshape(()))
                for k in keys:
                    st[k] = _make(bufs[k][sl].reshape(shape))
                opt.state[p] = st
            else:
                st["step"]._data = steps[i:i + 1].reshape(())
                for k in keys:
                    buf = bufs[k]
                    buf[sl] = st[k]._data.reshape(-1)
                    st[k]._data = buf[sl].reshape(shape)
        return _FlatGroup(group, params, views, states, xp, dt, flat, bufs["exp_avg"],
                          bufs["exp_avg_sq"], bufs.get("max_exp_avg_sq"), steps)
