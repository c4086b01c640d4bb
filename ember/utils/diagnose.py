"""Training-run logging and loss-curve diagnosis (``ember diagnose RUN_DIR``).

What it captures: a run's scalars, written by ``TrainingLog`` as it trains (per optimizer step:
loss, learning rate, gradient norm of each layer; per epoch: train/validation loss and
accuracy, the fraction of dead ReLU units of each ``nn.ReLU``). What it produces: a
``scalars.csv`` (``tag,step,value``, one line per value) or TensorBoard event files with the
same tags, and from them a ``Diagnosis``: named findings, each with its evidence, and an
annotated ``diagnosis.png``. Where it hooks into the core: nowhere but forward hooks on ReLU
modules; values leave as Python floats.

Tags (the contract between the writer, ``ember train digits --log`` and ``diagnose``):
``train/loss``, ``train/lr``, ``grad_norm/total`` and ``grad_norm/<module>`` at each optimizer
step; ``epoch/train_loss``, ``epoch/train_acc``, ``epoch/val_loss``, ``epoch/val_acc``,
``epoch/lr`` and ``dead_relu/<module>`` at each epoch (the step is the epoch number).
Optional ``hparams.json`` holds the run's hyper-parameters (batch size for the noise check).

The life of one diagnosis: ``read_run`` -> ``{tag: (steps, values)}`` -> one check per failure
mode (``_CHECKS``), each returning ``Finding``s with numbers -> ``Diagnosis`` (printable;
``plot`` draws the curves with each finding marked where it happened).
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrainingLog", "layer_grad_norms", "read_run", "diagnose", "Diagnosis", "Finding",
           "smooth"]

CSV_NAME = "scalars.csv"
EXPECTED = (f"a {CSV_NAME} or TensorBoard event files (events.out.tfevents.*) with a "
            f"'train/loss' curve, as `ember train digits --log csv|tensorboard` or "
            f"ember.utils.diagnose.TrainingLog write")


# --- writing a run -------------------------------------------------------------------------

def layer_grad_norms(model) -> dict:
    """The L2 norm of each module's parameter gradients, and of all of them (``"total"``)."""
    sq: dict = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        layer = name.rpartition(".")[0] or name
        g = p.grad.detach().float().numpy().astype(np.float64)
        sq[layer] = sq.get(layer, 0.0) + float(np.sum(g * g))
    norms = {k: math.sqrt(v) for k, v in sq.items()}
    norms["total"] = math.sqrt(sum(sq.values()))
    return norms


class TrainingLog:
    """Logs a run's scalars to ``run_dir`` as ``scalars.csv`` or TensorBoard event files.

    ``append=True`` continues an existing ``scalars.csv`` (a resumed run); TensorBoard runs
    always add a new event file beside the old ones.
    """

    def __init__(self, run_dir: str, backend: str = "csv", hparams: dict | None = None,
                 append: bool = False):
        if backend not in ("csv", "tensorboard"):
            raise ValueError(f"backend must be 'csv' or 'tensorboard', got {backend!r}")
        os.makedirs(run_dir, exist_ok=True)
        self.run_dir, self.backend = run_dir, backend
        self._relu: dict = {}
        self._handles: list = []
        if backend == "csv":
            path = os.path.join(run_dir, CSV_NAME)
            fresh = not (append and os.path.isfile(path) and os.path.getsize(path) > 0)
            self._file = open(path, "w" if fresh else "a", newline="")
            self._csv = csv.writer(self._file)
            if fresh:
                self._csv.writerow(["tag", "step", "value"])
        else:
            from .tensorboard import SummaryWriter
            self._writer = SummaryWriter(run_dir)
        if hparams is not None:
            with open(os.path.join(run_dir, "hparams.json"), "w") as f:
                json.dump(hparams, f, indent=1, default=str)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One value of the curve ``tag`` at ``step``."""
        value = float(value)
        if self.backend == "csv":
            self._csv.writerow([tag, int(step), repr(value)])
        else:
            self._writer.add_scalar(tag, value, int(step))

    def watch(self, model) -> None:
        """Track, per epoch of training forwards, which units of every ``nn.ReLU`` ever fire."""
        for name, m in model.named_modules():
            # by class name: the same loop also watches a torch model (the CLI's tests)
            if type(m).__name__ == "ReLU":
                self._handles.append(m.register_forward_hook(self._relu_hook(name or "relu")))

    def _relu_hook(self, name: str):
        def hook(module, inputs, output):
            if not module.training:
                return
            # a unit (channel x position) is alive if it is positive for some example
            fired = np.asarray(output.detach().float().numpy() > 0).any(axis=0)
            prev = self._relu.get(name)
            self._relu[name] = fired if prev is None or prev.shape != fired.shape else prev | fired
        return hook

    def log_step(self, step: int, loss: float, lr: float, model=None, grad_norms=None) -> None:
        """Loss, learning rate and per-layer gradient norms (of ``model``, or given) at a step."""
        self.scalar("train/loss", loss, step)
        self.scalar("train/lr", lr, step)
        if grad_norms is None and model is not None:
            grad_norms = layer_grad_norms(model)
        for layer, norm in (grad_norms or {}).items():
            self.scalar(f"grad_norm/{layer}", norm, step)

    def log_epoch(self, epoch: int, **scalars) -> None:
        """Per-epoch scalars (``train_loss=``, ``val_loss=``, ``val_acc=``, ...) and dead ReLUs."""
        for k, v in scalars.items():
            if v is not None:
                self.scalar(f"epoch/{k}", v, epoch)
        for name, fired in self._relu.items():
            self.scalar(f"dead_relu/{name}", 1.0 - float(fired.mean()), epoch)
        self._relu = {}
        self.flush()

    def flush(self) -> None:
        if self.backend == "csv":
            self._file.flush()
        else:
            self._writer.flush()

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.backend == "csv":
            self._file.close()
        else:
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- reading a run -------------------------------------------------------------------------

def read_run(run_dir: str) -> dict:
    """``{tag: (steps, values)}`` (float64 arrays, in step order) of a logged run."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a directory; expected a run directory "
                                f"holding {EXPECTED}")
    raw: dict = {}
    path = os.path.join(run_dir, CSV_NAME)
    events = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    if os.path.isfile(path):
        with open(path, newline="") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header != ["tag", "step", "value"]:
                raise ValueError(f"{path}: expected the header 'tag,step,value', got {header}")
            for tag, step, value in rows:
                raw.setdefault(tag, []).append((int(step), float(value)))
    elif events:
        try:
            from tensorboard.backend.event_processing.event_accumulator import (
                EventAccumulator)
        except ImportError:
            raise ImportError("reading TensorBoard event files needs the tensorboard package: "
                              "pip install 'ember[tensorboard]'") from None
        acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            raw[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    if "train/loss" not in raw:
        raise FileNotFoundError(f"no logged run in {run_dir}: expected {EXPECTED}")
    out = {}
    for tag, pairs in raw.items():
        pairs.sort(key=lambda sv: sv[0])
        out[tag] = (np.array([s for s, _ in pairs], dtype=np.float64),
                    np.array([v for _, v in pairs], dtype=np.float64))
    return out


def smooth(values, window: int | None = None) -> np.ndarray:
    """Trailing moving average over ``window`` points (default: 1/20 of the curve, at least 5)."""
    v = np.asarray(values, dtype=np.float64)
    if window is None:
        window = max(5, len(v) // 20)
    window = max(1, min(window, len(v)))
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    n = np.arange(1, len(v) + 1)
    lo = np.maximum(n - window, 0)
    out[:] = (c[n] - c[lo]) / (n - lo)
    return out


# --- diagnosing ------------------------------------------------------------------------------

@dataclass
class Finding:
    """One named problem: ``kind`` (e.g. ``"diverging loss"``), what shows it, where."""

    kind: str
    message: str
    evidence: dict = field(default_factory=dict)
    step: float | None = None
    layer: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _layers(run: dict, prefix: str) -> list:
    """Tags under ``prefix`` in the order logged (first layer first), without ``total``."""
    return [t for t in run if t.startswith(prefix) and t != prefix + "total"]


def _check_diverging(run, hp):
    steps, loss = run["train/loss"]
    lrs = run.get("train/lr")

    def lr_at(step):
        if lrs is None or not len(lrs[0]):
            return None
        return float(lrs[1][min(np.searchsorted(lrs[0], step), len(lrs[0]) - 1)])

    finite = np.isfinite(loss)
    if not finite.all():
        i = int(np.argmin(finite))
        lr = lr_at(steps[i])
        last_ok = float(loss[finite][-1]) if finite[:i].any() else None
        msg = (f"the loss became {loss[i]} at step {int(steps[i])}"
               + (f" (lr {lr:.3g})" if lr is not None else "")
               + (f", last finite value {last_ok:.4g}" if last_ok is not None else ""))
        # the rise before the overflow, if any, is where it started
        onset = int(steps[i])
        if i > 2:
            j = int(np.argmin(smooth(loss[:i])))
            if j < i - 1:
                onset = int(steps[j])
        lr0 = lr_at(onset)
        msg += (f"; it started rising at step {onset}" + (f" (lr {lr0:.3g})" if lr0 else "")
                + ": lower the learning rate")
        return [Finding("diverging loss", msg, {"nonfinite_step": int(steps[i]),
                                                 "onset_step": onset, "onset_lr": lr0},
                        step=onset)]
    if len(loss) < 10:
        return []
    window = max(5, len(loss) // 20)
    s = smooth(loss, window)
    j = int(np.argmin(s))
    end, low, first = float(s[-1]), float(s[j]), float(loss[:window].mean())
    # the standard error of the average before the turn: a rise must stand well out of it
    # (the lowest of many noisy averages is itself low by a few errors: batch-1 runs dip)
    noise = float(np.std(loss[: j + 1] - s[: j + 1])) / math.sqrt(window) if j > 1 else 0.0
    # risen by 20% and given back over half of what it had gained (or risen from the start)
    if (j < len(s) - len(s) // 10 and end > 1.2 * low and end - low > 0.5 * (first - low)
            and end - low > 6 * noise):
        # the trailing average lags: the lowest single loss in its window is the turn
        j = max(0, j - window + 1) + int(np.argmin(loss[max(0, j - window + 1): j + 1]))
        lr0 = lr_at(steps[j])
        msg = (f"the loss turned at step {int(steps[j])}: its moving average fell from "
               f"{first:.4g} to {low:.4g} and then rose to {end:.4g}"
               + (f"; it started rising at lr {lr0:.3g}" if lr0 is not None else "")
               + ": lower the learning rate")
        return [Finding("diverging loss", msg, {"onset_step": int(steps[j]), "onset_lr": lr0,
                                                 "min_loss": low, "final_loss": end},
                        step=float(steps[j]))]
    return []


def _check_gradients(run, hp):
    layers = _layers(run, "grad_norm/")
    if not layers:
        return []
    exploding, vanishing, med = [], [], {}
    for t in layers:
        steps, g = run[t]
        name = t[len("grad_norm/"):]
        early = float(np.median(g[: max(1, len(g) // 10)]))
        bad = ~np.isfinite(g)
        if bad.any():
            i = int(np.argmax(bad))
            exploding.append((name, f"{name}: {g[i]} at step {int(steps[i])} (early median "
                                    f"{early:.3g})", float(steps[i])))
            continue
        med[name] = float(np.median(g))
        i = int(np.argmax(g))
        if g[i] > 1e3 * max(early, 1e-12) or g[i] > 1e4:
            exploding.append((name, f"{name}: {g[i]:.3g} at step {int(steps[i])}, "
                                    f"{g[i] / max(early, 1e-30):.3g}x its early median "
                                    f"{early:.3g}", float(steps[i])))
    out = []
    if exploding:
        out.append(Finding("exploding gradients",
                           "gradient norm blew up in layer " + "; ".join(e[1] for e in exploding)
                           + ": clip gradients (--clip) or lower the learning rate",
                           {e[0]: e[1] for e in exploding}, step=min(e[2] for e in exploding),
                           layer=", ".join(e[0] for e in exploding)))
        return out  # after a blow-up the other layers' medians say nothing about vanishing
    top_name = max(med, key=med.get, default=None)
    if top_name is None or med[top_name] <= 0:
        return out
    top = med[top_name]
    for name, m in med.items():
        if m < 1e-3 * top:
            vanishing.append((name, f"{name}: {m:.3g}" if m > 0 else f"{name}: 0 (no gradient)"))
    if vanishing:
        out.append(Finding("vanishing gradients",
                           "median gradient norm of layer "
                           + ", ".join(v[1] for v in vanishing)
                           + f", under 1/1000 of layer {top_name}'s {top:.3g}: these weights "
                             f"barely learn (normalisation, ReLU or residual connections help)",
                           {name: med[name] for name, _ in vanishing} | {"largest": top},
                           layer=", ".join(v[0] for v in vanishing)))
    return out


def _check_dead_relu(run, hp):
    out = []
    for t in _layers(run, "dead_relu/"):
        steps, frac = run[t]
        name = t[len("dead_relu/"):]
        if frac[-1] >= 0.5:
            out.append(Finding("dead ReLUs",
                               f"layer {name}: {frac[-1]:.0%} of its units output 0 for every "
                               f"training example in epoch {int(steps[-1])} (first epoch "
                               f"{frac[0]:.0%}): lower the learning rate, or use LeakyReLU / "
                               f"a better initialisation",
                               {"layer": name, "fraction": float(frac[-1]),
                                "first": float(frac[0])}, step=float(steps[-1]), layer=name))
    return out


def _check_overfitting(run, hp):
    if "epoch/val_loss" not in run or "epoch/train_loss" not in run:
        return []
    ep, val = run["epoch/val_loss"]
    _, tr = run["epoch/train_loss"]
    n = min(len(val), len(tr))
    if n < 4:
        return []
    ep, val, tr = ep[:n], val[:n], tr[:n]
    j = int(np.argmin(val))
    gap = val - tr
    # the gap's trend over the epochs since the best validation loss
    slope = float(np.polyfit(ep[j:], gap[j:], 1)[0]) if n - j >= 2 else 0.0
    if j < n - 2 and val[-1] > 1.1 * val[j] and tr[-1] <= tr[j] and slope > 0:
        return [Finding("overfitting",
                        f"validation loss was lowest ({val[j]:.4g}) at epoch {int(ep[j])} and "
                        f"rose to {val[-1]:.4g} by epoch {int(ep[-1])} while the training loss "
                        f"fell from {tr[j]:.4g} to {tr[-1]:.4g}; the train/val gap grew "
                        f"{slope:+.3g} per epoch (from {gap[j]:.3g} to {gap[-1]:.3g}): more "
                        f"data, augmentation, weight decay, or early stopping (--patience)",
                        {"best_epoch": int(ep[j]), "best_val": float(val[j]),
                         "final_val": float(val[-1]), "gap_slope": slope},
                        step=float(ep[j]))]
    # memorising without a rising validation loss (label smoothing, batch norm and a
    # decaying rate can hold it flat): a wide gap that opened during training
    slope = float(np.polyfit(ep, gap, 1)[0])
    acc_gap = None
    if "epoch/train_acc" in run and "epoch/val_acc" in run:
        acc_gap = float(run["epoch/train_acc"][1][-1] - run["epoch/val_acc"][1][-1])
    if (tr[-1] > 0 and val[-1] > 1.5 * tr[-1] and slope > 0 and gap[-1] > gap[0]
            and (acc_gap is None or acc_gap > 0.1)):
        accs = ("" if acc_gap is None else
                f" (accuracy: train {run['epoch/train_acc'][1][-1]:.1%}, validation "
                f"{run['epoch/val_acc'][1][-1]:.1%})")
        return [Finding("overfitting",
                        f"the validation loss ends {val[-1] / tr[-1]:.2g}x the training loss "
                        f"({val[-1]:.4g} vs {tr[-1]:.4g}){accs}; the gap opened from "
                        f"{gap[0]:.3g} at epoch {int(ep[0])} to {gap[-1]:.3g}: more data, "
                        f"augmentation or weight decay",
                        {"final_val": float(val[-1]), "final_train": float(tr[-1]),
                         "gap_slope": slope, "acc_gap": acc_gap}, step=float(ep[-1]))]
    return []


def _check_plateau(run, hp):
    steps, loss = run["train/loss"]
    if len(loss) < 20 or not np.isfinite(loss).all():
        return []
    s = smooth(loss)
    half = len(s) // 2
    first = float(np.mean(loss[: max(1, len(s) // 20)]))
    mid, end = float(s[half]), float(s[-1])
    rel = (mid - end) / max(abs(mid), 1e-12)
    if abs(rel) < 0.02 and end > 0.5 * first:
        return [Finding("plateau",
                        f"the smoothed loss changed {rel:.1%} over the second half of training "
                        f"(step {int(steps[half])}: {mid:.4g}, end: {end:.4g}) and is still "
                        f"{end / max(first, 1e-12):.0%} of where it started ({first:.4g}): raise "
                        f"the learning rate, or look for vanishing gradients",
                        {"from_step": int(steps[half]), "mid": mid, "end": end,
                         "start": first}, step=float(steps[half]))]
    return []


def _check_noise(run, hp):
    steps, loss = run["train/loss"]
    if len(loss) < 20 or not np.isfinite(loss).all() or (loss <= 0).any():
        return []
    half = len(loss) // 2
    tail = loss[half:]
    trend = smooth(tail, max(5, len(tail) // 5))
    start = float(np.median(loss[: max(5, len(loss) // 20)]))
    # spread of each step's loss around the trend, relative to the loss at the start
    noise = float(np.std(tail - trend)) / max(start, 1e-12)
    if noise > 0.2:
        bs = hp.get("batch_size")
        return [Finding("noisy loss (small batch)",
                        f"over the second half of training the loss of single steps strays "
                        f"from its moving average by {noise:.0%} of the initial loss "
                        f"({start:.4g}) (standard deviation)"
                        + (f" with batch size {bs}" if bs is not None else "")
                        + ": a larger batch (or --accumulate) or a lower learning rate "
                          "averages the gradient noise",
                        {"relative_std": noise, "batch_size": bs}, step=float(steps[half]))]
    return []


_CHECKS = (_check_diverging, _check_gradients, _check_dead_relu, _check_overfitting,
           _check_plateau, _check_noise)


class Diagnosis:
    """The findings of ``diagnose(run_dir)``; ``str()`` lists them, ``plot`` draws them."""

    def __init__(self, run_dir: str, run: dict, findings: list, hparams: dict):
        self.run_dir, self.run, self.findings, self.hparams = run_dir, run, findings, hparams

    @property
    def kinds(self) -> set:
        """The names of the problems found (``{"overfitting", ...}``)."""
        return {f.kind for f in self.findings}

    def __str__(self) -> str:
        steps = self.run["train/loss"][0]
        head = f"{self.run_dir}: {len(steps)} logged steps"
        if "epoch/val_loss" in self.run or "epoch/train_loss" in self.run:
            ep = self.run.get("epoch/train_loss", self.run.get("epoch/val_loss"))[0]
            head += f", {len(ep)} epochs"
        if not self.findings:
            return head + "\nno problem found: the loss fell steadily and the gradients stayed " \
                          "in range"
        return head + "\n" + "\n".join(f"- {f}" for f in self.findings)

    def plot(self, path: str) -> str:
        """Draw the curves with each finding annotated to ``path`` (PNG; needs matplotlib)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("drawing diagnosis.png needs matplotlib: "
                              "pip install 'ember[train]'") from None
        run = self.run
        fig = Figure(figsize=(12, 8), layout="constrained")
        FigureCanvasAgg(fig)
        (ax_loss, ax_grad), (ax_ep, ax_dead) = fig.subplots(2, 2)
        steps, loss = run["train/loss"]
        ok = np.isfinite(loss)
        ax_loss.plot(steps[ok], loss[ok], lw=0.6, alpha=0.5, label="loss per step")
        if ok.all() and len(loss) > 1:
            ax_loss.plot(steps, smooth(loss), lw=1.5, label="moving average")
        if (loss[ok] > 0).all() and loss[ok].max() > 10 * loss[ok].min():
            ax_loss.set_yscale("log")
        ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
        for layer_tag in _layers(run, "grad_norm/"):
            s, g = run[layer_tag]
            ax_grad.plot(s, np.where(np.isfinite(g) & (g > 0), g, np.nan), lw=0.8,
                         label=layer_tag[len("grad_norm/"):])
        ax_grad.set(xlabel="step", ylabel="gradient norm", title="gradient norm by layer",
                    yscale="log")
        for tag, style in (("epoch/train_loss", "o-"), ("epoch/val_loss", "s-")):
            if tag in run:
                ax_ep.plot(*run[tag], style, label=tag[len("epoch/"):])
        ax_ep.set(xlabel="epoch", ylabel="loss", title="loss per epoch")
        for tag in _layers(run, "dead_relu/"):
            ax_dead.plot(run[tag][0], 100 * run[tag][1], "o-", label=tag[len("dead_relu/"):])
        ax_dead.set(xlabel="epoch", ylabel="dead units (%)", title="dead ReLU units",
                    ylim=(-5, 105))
        if not _layers(run, "dead_relu/"):
            ax_dead.text(0.5, 0.5, "no nn.ReLU layers logged", ha="center",
                         transform=ax_dead.transAxes, color="gray")
        colors = {"diverging loss": "red", "plateau": "orange",
                  "noisy loss (small batch)": "purple", "exploding gradients": "red",
                  "vanishing gradients": "blue", "overfitting": "red", "dead ReLUs": "black"}
        panel = {"exploding gradients": ax_grad, "vanishing gradients": ax_grad,
                 "overfitting": ax_ep, "dead ReLUs": ax_dead}
        placed: dict = {}
        for f in self.findings:
            c = colors.get(f.kind, "red")
            ax = panel.get(f.kind, ax_loss)
            if f.step is not None:
                ax.axvline(f.step, color=c, ls="--", lw=1)
            row = placed[id(ax)] = placed.get(id(ax), -1) + 1
            ax.annotate(f.kind + (f" ({f.layer})" if f.layer else ""),
                        xy=(0.02, 0.95 - 0.08 * row), xycoords="axes fraction", color=c,
                        fontsize=9, va="top",
                        bbox=dict(boxstyle="round", fc="white", ec=c, alpha=0.8))
        for ax in (ax_loss, ax_grad, ax_ep, ax_dead):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper right")
        names = sorted(self.kinds) or ["no problem found"]
        fig.suptitle(f"ember diagnose {self.run_dir}: " + ", ".join(names))
        fig.savefig(path, dpi=90)
        return path


def diagnose(run_dir: str) -> Diagnosis:
    """Read the run logged in ``run_dir`` and name what went wrong, with the evidence."""
    run = read_run(run_dir)
    hp = {}
    hp_path = os.path.join(run_dir, "hparams.json")
    if os.path.isfile(hp_path):
        with open(hp_path) as f:
            hp = json.load(f)
    findings = []
    for check in _CHECKS:
        findings.extend(check(run, hp))
    if any(f.kind == "diverging loss" for f in findings):
        # a diverging loss swings wildly and drags the validation loss up: that is the
        # divergence, not batch noise or overfitting
        findings = [f for f in findings
                    if f.kind not in ("noisy loss (small batch)", "overfitting")]
    return Diagnosis(run_dir, run, findings, hp)
