"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3): train for a few hundred steps while the learning rate grows from tiny
to huge, and read a good rate off the loss-vs-rate curve.

As in fastai and torch-lr-finder the rate grows exponentially, the loss is smoothed with a
bias-corrected exponential moving average, the test stops once the smoothed loss passes
``diverge`` times its minimum, and the suggested rate is where the smoothed loss falls fastest
against log(lr) (the steepest descent). The model and optimizer are put back as they were.
Framework-agnostic: it uses only ``state_dict``, ``param_groups`` and ``.item()``, so the
same call runs on ``torch`` (the tests compare the two).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["lr_find", "LRFinderResult", "suggest_lr"]


def suggest_lr(lrs, smoothed, skip_start: int = 10, skip_end: int = 5) -> float:
    """The rate where ``smoothed`` falls fastest against ``log(lr)``, ignoring the first
    ``skip_start`` and last ``skip_end`` points (noisy start, diverging end)."""
    lrs, smoothed = np.asarray(lrs, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    lo, hi = skip_start, len(lrs) - skip_end
    if hi - lo < 3:  # too short a curve to skip the ends: use all of it
        lo, hi = 0, len(lrs)
    if hi - lo < 2:
        raise ValueError(f"the range test needs at least 2 points to suggest a rate, got "
                         f"{len(lrs)}")
    slope = np.gradient(smoothed[lo:hi], np.log(lrs[lo:hi]))
    return float(lrs[lo + int(np.argmin(slope))])


@dataclass
class LRFinderResult:
    """The curve of a range test: rates, raw and smoothed losses, and the suggested rate."""

    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    suggestion: float | None = None
    diverged: bool = False

    def plot(self, path: str, title: str = "learning-rate range test") -> str:
        """Loss against learning rate (log scale) with the suggestion marked, as a PNG."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("the lr-find plot needs matplotlib: "
                              "pip install 'ember[train]'") from None
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        lrs = np.asarray(self.lrs)
        raw = np.asarray(self.losses)
        ok = np.isfinite(raw)
        ax.plot(lrs[ok], raw[ok], lw=0.6, alpha=0.4, label="loss per step")
        ax.plot(lrs, self.smoothed, lw=1.8, label="smoothed loss")
        if self.suggestion is not None:
            i = int(np.argmin(np.abs(np.log(lrs) - math.log(self.suggestion))))
            ax.plot([self.suggestion], [self.smoothed[i]], "o", color="red", ms=8)
            ax.annotate(f"steepest descent: lr {self.suggestion:.2e}",
                        xy=(self.suggestion, self.smoothed[i]), xytext=(10, 15),
                        textcoords="offset points", color="red")
        low = float(min(raw[ok].min(), min(self.smoothed)))
        top = float(self.smoothed[0]) * 1.5  # keep the blow-up off the scale
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss", title=title,
               ylim=(low * 0.9 if low > 0 else None, top))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(path, dpi=100)
        return path


def lr_find(model, optimizer, loss_fn, loader, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_iter: int = 100, beta: float = 0.95, diverge: float = 4.0,
            restore: bool = True) -> LRFinderResult:
    """Run the range test: ``num_iter`` steps, lr from ``start_lr`` to ``end_lr``
    exponentially, ``loss_fn(model(x), y)`` on batches ``(x, y)`` of ``loader`` (cycled).

    ``beta``: the smoothing of the loss (0.95: torch-lr-finder's ``smooth_f=0.05``);
    ``diverge``: stop when the smoothed loss exceeds this multiple of its minimum;
    ``restore``: put the model's and optimizer's state back afterwards.
    """
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise ValueError(f"expected 0 < start_lr < end_lr, got start_lr={start_lr}, "
                         f"end_lr={end_lr}")
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    result = LRFinderResult()
    ratio = end_lr / start_lr
    avg, best = 0.0, math.inf
    batches = iter(loader)
    model.train()
    try:
        for i in range(num_iter):
            lr = start_lr * ratio ** (i / (num_iter - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                x, y = next(batches)
            except StopIteration:  # the data ran out: start it again
                batches = iter(loader)
                x, y = next(batches)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = loss.item()
            avg = beta * avg + (1 - beta) * value
            smoothed = avg / (1 - beta ** (i + 1))  # the EMA without its bias towards 0
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            if not math.isfinite(smoothed) or smoothed > diverge * best:
                result.diverged = True
                break
            best = min(best, smoothed)
    finally:
        if restore:
            model.load_state_dict(saved_model)
            optimizer.load_state_dict(saved_opt)
        model.train(was_training)
    finite = [(lr, s) for lr, s in zip(result.lrs, result.smoothed) if math.isfinite(s)]
    if result.diverged and len(finite) > 1:
        finite = finite[:-1]  # the point that tripped the stop is past the usable range
    if len(finite) >= 2:
        result.suggestion = suggest_lr([f[0] for f in finite], [f[1] for f in finite])
    return result
