"""Tune your own model with Optuna, in the recommended order (what ``ember tune digits`` does).

An MLP regressor on y = sin(3x) + noise, tuned in three stages, each starting from the best
values of the stages before: (1) the learning rate alone, on a log scale -- the value that
matters most; (2) batch size, weight decay and warm-up; (3) the architecture (width, depth).
Each trial reports its validation loss after every epoch, so Optuna's ``MedianPruner`` stops
trials that fall behind the median of the earlier ones. Prints a results table and saves
Optuna's plots (optuna.visualization.matplotlib) as PNG files. Ordinary PyTorch code: swap
``import ember as torch`` for ``import torch`` and it runs unchanged.

    pip install -e '.[tune]'
    python examples/tune_mlp.py [--trials 20] [--epochs 20] [--out runs/tune_mlp]
"""
from __future__ import annotations

import argparse
import math
import os
import warnings

import matplotlib.pyplot as plt
import optuna

import ember as torch
import ember.nn as nn


def make_data(n: int, seed: int):
    """``n`` points of y = sin(3x) + 0.1 noise, x in [-2, 2]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 4 - 2
    return x, torch.sin(3 * x) + 0.1 * torch.randn(n, 1, generator=g)


def build_mlp(width: int, depth: int) -> nn.Module:
    layers, d = [], 1
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.Tanh()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 1))


BASE = {"lr": 1e-2, "batch_size": 32, "weight_decay": 0.0, "warmup_epochs": 0, "width": 32,
        "depth": 2}


def suggest(trial: optuna.Trial, stage: str) -> dict:
    """Stage 1: the learning rate; 2: batch size / weight decay / warm-up; 3: architecture."""
    if stage == "lr":
        return {"lr": trial.suggest_float("lr", 1e-4, 1.0, log=True)}
    if stage == "optimization":
        return {"batch_size": trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128]),
                "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
                "warmup_epochs": trial.suggest_int("warmup_epochs", 0, 3)}
    return {"width": trial.suggest_categorical("width", [8, 16, 32, 64, 128]),
            "depth": trial.suggest_int("depth", 1, 4)}


def fit(cfg: dict, epochs: int, trial: optuna.Trial | None = None) -> float:
    """Train with ``cfg``; the validation MSE (reported each epoch so bad trials are pruned)."""
    torch.manual_seed(0)
    x, y = make_data(512, seed=1)
    xv, yv = make_data(256, seed=2)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=cfg["batch_size"], shuffle=True)
    model = build_mlp(cfg["width"], cfg["depth"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    total, warm = epochs * len(loader), cfg["warmup_epochs"] * len(loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    loss_fn = nn.MSELoss()
    val = math.inf
    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            val = loss_fn(model(xv), yv).item()
        if not math.isfinite(val):
            val = 1e9  # a diverged trial: the worst score, not a crash
        if trial is not None:
            trial.report(val, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return val


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials in all (default 20)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs per trial (default 20)")
    ap.add_argument("--out", default="runs/tune_mlp", help="where the plots go")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.makedirs(args.out, exist_ok=True)

    # about 40% of the trials for the learning rate, the rest split between the other stages
    n1 = max(1, min(math.ceil(0.4 * args.trials), args.trials - 2))
    n2 = math.ceil((args.trials - n1) / 2)
    best, best_val, rows = dict(BASE), math.inf, []
    for i, (stage, n) in enumerate(zip(("lr", "optimization", "architecture"),
                                       (n1, n2, args.trials - n1 - n2)), 1):
        if n == 0:
            continue
        base = dict(best)
        study = optuna.create_study(direction="minimize",
                                    sampler=optuna.samplers.TPESampler(seed=0),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2,
                                                                       n_warmup_steps=2))
        study.optimize(lambda t: fit(base | suggest(t, stage), args.epochs, t), n_trials=n)
        for t in study.trials:
            last = t.value if t.value is not None else list(t.intermediate_values.values())[-1]
            rows.append((stage, t.state.name.lower(), len(t.intermediate_values), last,
                         base | t.params))
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        if complete and study.best_value < best_val:  # keep a stage only if it helped
            best, best_val = base | study.best_params, study.best_value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            ax = optuna.visualization.matplotlib.plot_optimization_history(study)
            ax.figure.savefig(os.path.join(args.out, f"stage{i}_{stage}_history.png"))
            ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
            ax.figure.savefig(os.path.join(args.out, f"stage{i}_{stage}_intermediate.png"))
        plt.close("all")

    print(f"{'stage':<13}{'state':<10}{'epochs':>6}  {'val MSE':>9}  config")
    for stage, state, epochs, val, cfg in rows:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in cfg.items())
        print(f"{stage:<13}{state:<10}{epochs:>6}  {val:>9.4f}  {shown}")
    print(f"best val MSE {best_val:.4f} with {best}")


if __name__ == "__main__":
    main()
