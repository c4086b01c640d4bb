"""``ember tune digits --trials N``: hyper-parameter search for the digits CNN with Optuna.

The search follows the recommended order, one Optuna study per stage, each stage starting from
the best values of the ones before: (1) the learning rate alone, on a log scale; (2) batch
size, weight decay and warm-up; (3) the architecture (conv widths, hidden units). Each trial
trains on 80% of the training split and reports the accuracy on the other 20% after every
epoch, so a ``MedianPruner`` stops trials that fall behind the median of earlier ones (the
test split is never looked at). Prints a results table, writes ``results.csv`` and Optuna's
own plots (``optuna.visualization.matplotlib``) as PNG files. Optuna is the ``tune`` extra.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from . import CLIError

__all__ = ["add_parser", "run", "STAGES", "search_space", "train_trial"]

# stage name -> what it searches (every other value: the default, or an earlier stage's best)
STAGES = ("lr", "optimization", "architecture")
BASE = {"lr": 3e-3, "batch_size": 64, "weight_decay": 0.0, "warmup_epochs": 0,
        "channels1": 32, "channels2": 64, "hidden": 128}


def search_space(trial, stage: str) -> dict:
    """The values ``trial`` suggests in ``stage`` (Optuna's ``suggest_*``)."""
    if stage == "lr":
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}
    if stage == "optimization":
        return {"batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128]),
                "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
                "warmup_epochs": trial.suggest_int("warmup_epochs", 0, 2)}
    return {"channels1": trial.suggest_categorical("channels1", [8, 16, 32]),
            "channels2": trial.suggest_categorical("channels2", [16, 32, 64]),
            "hidden": trial.suggest_categorical("hidden", [32, 64, 128, 256])}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tune", help="search hyper-parameters with Optuna (learning rate first)",
        description="Search the digits CNN's hyper-parameters with Optuna (needs the tune "
                    "extra: pip install 'ember[tune]') in the recommended order: learning "
                    "rate on a log scale, then batch size / weight decay / warm-up, then the "
                    "architecture; bad trials are pruned (MedianPruner).")
    p.add_argument("task", choices=["digits"], metavar="TASK", help="what to tune: 'digits'")
    p.add_argument("--trials", type=int, default=20,
                   help="trials in all, about 40%% / 30%% / 30%% over the three stages "
                        "(default 20; at least 3)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per trial (default 5)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images (quick searches)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the sampler and of every trial's weights (default 0)")
    p.add_argument("--out", default=os.path.join("runs", "tune"),
                   help="where results.csv and the plots go (default runs/tune)")
    p.add_argument("--no-plots", action="store_true", help="skip Optuna's PNG plots")
    from .digits import add_threads_argument
    add_threads_argument(p)


def _stage_sizes(trials: int) -> list:
    """Trials per stage: about 40% for the learning rate, the rest split evenly."""
    first = min(math.ceil(0.4 * trials), trials - 2)  # every stage gets at least one
    second = math.ceil((trials - first) / 2)
    return [first, second, trials - first - second]


def _split(mod, limit):
    """(x_train, y_train, x_val, y_val): the training split, its last 20% held out."""
    from .digits import _tensors
    x, y = _tensors(mod, "train", limit)
    n_val = max(1, len(y) // 5)
    return x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]


def train_trial(cfg: dict, data, epochs: int, seed: int, report=None) -> float:
    """Train the digits CNN with ``cfg``; the final validation accuracy.

    ``report(accuracy, epoch)`` is called after each epoch (Optuna's ``trial.report`` plus its
    prune check); it may raise to stop the trial.
    """
    import ember as mod
    from .digits import _predict, build_model
    x, y, xv, yv = data
    mod.manual_seed(seed)
    loader = mod.utils.data.DataLoader(mod.utils.data.TensorDataset(x, y),
                                       batch_size=cfg["batch_size"], shuffle=True)
    model = build_model(mod, (cfg["channels1"], cfg["channels2"]), cfg["hidden"])
    opt = mod.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    total, warm = epochs * len(loader), cfg["warmup_epochs"] * len(loader)

    def factor(step):  # linear warm-up, then cosine to 0 (per optimizer step)
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    sched = mod.optim.lr_scheduler.LambdaLR(opt, factor)
    loss_fn = mod.nn.CrossEntropyLoss(label_smoothing=0.1)
    yv_np, acc = yv.numpy(), 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = float((_predict(mod, model, xv) == yv_np).mean())
        if not math.isfinite(loss.item()):
            acc = 0.0  # a diverged trial scores nothing
        if report is not None:
            report(acc, epoch)
    return acc


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise CLIError("ember tune needs Optuna: pip install 'ember[tune]'") from None
    return optuna


def run(args, stdout=None) -> int:
    """Run ``ember tune digits``: the staged search, the table, results.csv and the plots."""
    from .digits import blas_threads
    with blas_threads(args.threads):
        return _run(args, stdout if stdout is not None else sys.stdout)


def _run(args, out) -> int:
    if args.trials < 3:
        raise CLIError(f"--trials must be at least 3 (one per stage), got {args.trials}")
    if args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    if args.limit is not None and args.limit < 10:
        raise CLIError(f"--limit must be at least 10, got {args.limit}")
    optuna = _import_optuna()
    import ember
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    data = _split(ember, args.limit)
    best, best_acc = dict(BASE), -1.0
    rows, studies = [], []
    t_run = time.perf_counter()
    print(f"tuning the digits CNN: {args.trials} trials of {args.epochs} epochs on "
          f"{len(data[1])} images, validated on {len(data[3])}", file=out)
    for stage, n in zip(STAGES, _stage_sizes(args.trials)):
        if n == 0:
            continue
        study = optuna.create_study(
            study_name=f"digits-{stage}", direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=args.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
        base = dict(best)

        def objective(trial, stage=stage, base=base):
            cfg = base | search_space(trial, stage)

            def report(acc, epoch):
                trial.report(acc, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return train_trial(cfg, data, args.epochs, args.seed, report)
        for _ in range(n):
            t0 = time.perf_counter()
            study.optimize(objective, n_trials=1)
            t = study.trials[-1]
            cfg = base | t.params
            acc = t.value if t.value is not None else max(t.intermediate_values.values(),
                                                          default=float("nan"))
            rows.append({"trial": len(rows) + 1, "stage": stage, "state": t.state.name.lower(),
                         "epochs": len(t.intermediate_values), "val_acc": acc, **cfg})
            print(_row(rows[-1], time.perf_counter() - t0), file=out, flush=True)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        # a stage's values are kept only if they beat the stages before (else its base stays)
        if done and study.best_value > best_acc:
            best, best_acc = base | study.best_params, study.best_value
        studies.append(study)
    print(_table(rows), file=out)
    path = os.path.join(args.out, "results.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    wrote = [path]
    if not args.no_plots:
        wrote += _plots(optuna, studies, args.out)
    print(f"best (val acc {100 * best_acc:.2f}%): "
          + "  ".join(f"{k} {_fmt(v)}" for k, v in best.items())
          + f"; {time.perf_counter() - t_run:.1f}s", file=out)
    print(f"try it: ember train digits --lr {best['lr']:.3g} --batch-size {best['batch_size']}",
          file=out)
    print("saved " + ", ".join(wrote), file=out)
    return 0


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


_COLS = ("trial", "stage", "state", "epochs", "val_acc", *BASE)


def _row(r: dict, seconds: float | None = None) -> str:
    cells = [f"{r['trial']:>5}", f"{r['stage']:<12}", f"{r['state']:<8}", f"{r['epochs']:>6}",
             f"{100 * r['val_acc']:>6.2f}%", f"{r['lr']:>9.3g}", f"{r['batch_size']:>5}",
             f"{r['weight_decay']:>8.2g}", f"{r['warmup_epochs']:>6}",
             f"{r['channels1']:>3}/{r['channels2']:<3}", f"{r['hidden']:>6}"]
    return "  ".join(cells) + ("" if seconds is None else f"  {seconds:.1f}s")


def _table(rows: list) -> str:
    head = "  ".join(["trial", "stage       ", "state   ", "epochs", "val acc", "       lr",
                      "batch", "  w.decay", "warmup", "conv   ", "hidden"])
    return "\n".join(["results (val acc: accuracy on the held-out 20% of the training split)",
                      head, *(_row(r) for r in rows)])


def _plots(optuna, studies, out_dir) -> list:
    """Optuna's matplotlib plots of each stage's study as PNG files; the paths written."""
    from optuna.visualization import matplotlib as ovm
    import matplotlib
    matplotlib.use("Agg", force=False)  # optuna draws through pyplot: no window
    import matplotlib.pyplot as plt
    wrote = []
    for i, study in enumerate(studies, 1):
        stage = study.study_name.split("-", 1)[1]
        plots = [("history", ovm.plot_optimization_history),
                 ("intermediate", ovm.plot_intermediate_values), ("slice", ovm.plot_slice)]
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        if len(complete) >= 2 and len(complete[0].params) > 1:  # else nothing to rank
            plots.append(("importances", ovm.plot_param_importances))
        for name, fn in plots:
            path = os.path.join(out_dir, f"stage{i}_{stage}_{name}.png")
            with warnings.catch_warnings(), contextlib.suppress(ValueError, RuntimeError):
                warnings.simplefilter("ignore")  # ExperimentalWarning: the API is stable enough
                ax = fn(study)
                fig = (ax.flat[0] if isinstance(ax, np.ndarray) else ax).figure
                fig.savefig(path, dpi=90, bbox_inches="tight")
                plt.close(fig)
                wrote.append(path)
    return wrote
