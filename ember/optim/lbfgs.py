"""L-BFGS: limited-memory quasi-Newton steps over all parameters as one flat vector.

The algorithm follows PyTorch's ``torch.optim.LBFGS`` (itself after minFunc): a two-loop
recursion over the last ``history_size`` curvature pairs gives the direction, and the step
length is either ``lr`` (fixed) or found by a strong-Wolfe line search that brackets the
step and zooms with safeguarded cubic interpolation.  Everything is computed on flat
backend arrays; scalars keep the parameters' dtype so float32 runs round like PyTorch's.
"""
from __future__ import annotations

from itertools import chain

from .._tensor import Tensor, _make
from .._backend import xp_of
from ..autograd.grad_mode import no_grad, enable_grad
from ..autograd.function import _version_counter
from .optimizer import Optimizer, _global_pre_hooks, _global_post_hooks

__all__ = ["LBFGS"]

_SMALL = 2  # PyTorch's (MKL's) summation order is known here only


def _dot(a, b):
    """Dot product; 1-2 element vectors add plain products (no FMA), as PyTorch's ``dot``
    does, so that such tiny problems follow PyTorch's trajectory to the last bit."""
    if a.size <= _SMALL:
        return (a * b).sum()
    return a.dot(b)


def _axpy_(y, a, x) -> None:
    """``y ← y + a·x`` rounded once, as PyTorch's fused (FMA) ``add_(x, alpha=a)``.

    L-BFGS amplifies last-bit differences over iterations, so the single rounding matters.
    float64 uses an error-free product (Veltkamp split) and sum (TwoSum); narrower types
    are exact in float64 before the final rounding.
    """
    xp = xp_of(y)
    if y.dtype != xp.float64:
        a = float(xp.asarray(a, dtype=y.dtype))
        y[...] = (y.astype(xp.float64) + a * x.astype(xp.float64)).astype(y.dtype)
        return
    a = float(a)
    p = a * x
    split = 134217729.0  # 2**27 + 1
    c = split * a
    a_hi = c - (c - a)
    a_lo = a - a_hi
    cx = split * x
    x_hi = cx - (cx - x)
    x_lo = x - x_hi
    prod_err = ((a_hi * x_hi - p) + a_hi * x_lo + a_lo * x_hi) + a_lo * x_lo
    s = y + p
    bb = s - y
    sum_err = (y - (s - bb)) + (p - bb)
    y[...] = s + (sum_err + prod_err)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1), (x2, f2, g2), clamped to ``bounds``.

    Falls back to the bounds' midpoint when the cubic has no real minimiser.
    """
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = d2_square ** 0.5
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, lo), hi)


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """Step length ``t`` along ``d`` meeting the strong Wolfe conditions.

    ``obj_func(x, t, d)`` returns (loss, flat gradient) at ``x + t·d``.  Returns
    ``(f_new, g_new, t, evaluations)``.
    """
    d_norm = abs(d).max()
    f_new, g_new = obj_func(x, t, d)
    evals = 1
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    # phase 1: grow the step until an interval containing a Wolfe point is bracketed
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate, staying between 1.01t and 10t
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                    bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # phase 2: zoom into the bracket until the conditions hold or it becomes too small
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # a point too close to an end makes little progress: move it inward (by 10%)
        b_max, b_min = max(bracket), min(bracket)
        eps = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < eps:
            if insuf_progress or t >= b_max or t <= b_min:
                t = b_max - eps if abs(t - b_max) < abs(t - b_min) else b_min + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            # not enough decrease: t becomes the high end
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                # the minimum lies on the other side of t: the old low end becomes high
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


def _arr(v):
    return v._data if isinstance(v, Tensor) else v


class LBFGS(Optimizer):
    """L-BFGS as PyTorch implements it; one parameter group only; ``step`` needs a closure."""

    # why ``ember.compile`` runs ``step`` eagerly (a graph break's reason; PyTorch's compile
    # skips LBFGS.step too: "optimizer ... step not supported")
    _compile_reason = ("its step re-runs the closure (forward and backward) up to max_eval "
                       "times and stops or line-searches on loss and gradient values, "
                       "data-dependent control flow")

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    # ---- the parameters as one flat vector ------------------------------------------------
    def _gather_flat_grad(self):
        xp = xp_of(self._params[0]._data)
        # a parameter without a gradient counts as a zero gradient
        views = [xp.zeros(p._data.size, dtype=p._data.dtype) if p.grad is None
                 else p.grad._data.reshape(-1) for p in self._params]
        return xp.concatenate(views)

    def _add_grad(self, step_size, update) -> None:
        offset = 0
        for p in self._params:
            n = p._data.size
            _axpy_(p._data, step_size, update[offset:offset + n].reshape(p._data.shape))
            _version_counter(p)[0] += 1
            offset += n

    def _clone_param(self):
        return [p._data.copy() for p in self._params]

    def _set_param(self, arrays) -> None:
        for p, a in zip(self._params, arrays):
            p._data[...] = a
            _version_counter(p)[0] += 1

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        with enable_grad():
            loss = float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ---- one optimisation step (up to max_iter iterations) --------------------------------
    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations; returns the first ``closure()`` loss."""
        if len(self.param_groups) != 1:
            raise AssertionError(f"Expected exactly one param_group, but got "
                                 f"{len(self.param_groups)}")
        args, kwargs = (closure,), {}
        for hook in chain(_global_pre_hooks.values(), self._optimizer_step_pre_hooks.values()):
            res = hook(self, args, kwargs)
            if res is not None:
                args, kwargs = res
        with no_grad():
            loss = self._run(*args, **kwargs)
        for hook in chain(self._optimizer_step_post_hooks.values(), _global_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _run(self, closure):
        group = self.param_groups[0]
        lr = group["lr"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if abs(flat_grad).max() <= tolerance_grad:
            return orig_loss

        d = _arr(state.get("d"))
        t = state.get("t")
        old_dirs = [_arr(v) for v in state.get("old_dirs") or []]
        old_stps = [_arr(v) for v in state.get("old_stps") or []]
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = _arr(state.get("prev_flat_grad"))
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                # new curvature pair (y, s), kept only when y·s is safely positive
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / _dot(y, y)
                # two-loop recursion: d = -H·g with H the L-BFGS inverse-Hessian estimate
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    _axpy_(q, -al[i], old_dirs[i])
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    _axpy_(r, al[i] - be_i, old_stps[i])

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # the first step is scaled down by |g|₁ since no curvature is known yet
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:
                break  # not a descent direction

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    # re-evaluate unless this is the last iteration (the next step will)
                    with enable_grad():
                        loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if abs(d * t).max() <= tolerance_change:
                break  # the parameters barely moved
            if abs(loss - prev_loss) < tolerance_change:
                break  # the loss barely changed

        state["d"] = _make(d)
        state["t"] = t
        state["old_dirs"] = [_make(v) for v in old_dirs]
        state["old_stps"] = [_make(v) for v in old_stps]
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = _make(prev_flat_grad)
        state["prev_loss"] = prev_loss
        return orig_loss
