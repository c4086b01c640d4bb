"""What every recipe shares: its seven flags, their validation, matplotlib and figure saving.

Plain Python (argparse, os; matplotlib imported only when a figure is drawn) and no ember
import, so a recipe with ``import ember as torch`` swapped for ``import torch`` still runs on
PyTorch. Each recipe keeps its own name, defaults, help text and extra checks and passes them in.
"""
import argparse
import math
import os
import tempfile

NO_MATPLOTLIB = "matplotlib is not installed (pip install 'ember[train]'): no figures"


def recipe_args(argv, prog, doc, name, defaults, epochs_help="passes over the training data",
                check=None):
    """Parse ``--epochs --lr --batch-size --out --seed --smoke --threads``; exit 2 on a bad one.

    ``check(parser, args)``, if given, adds the recipe's own refusals. Every refusal happens
    before any work, the run directory included, which is created (and tested writable) last.
    """
    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--epochs", type=int, default=defaults["epochs"],
                   help=f"{epochs_help} (default {defaults['epochs']})")
    p.add_argument("--lr", type=float, default=defaults["lr"],
                   help=f"learning rate (default {defaults['lr']:g})")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"],
                   help=f"training batch size (default {defaults['batch_size']})")
    p.add_argument("--out", default=os.path.join("runs", name),
                   help=f"run directory for checkpoints and figures (default runs/{name})")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and batches (default 0)")
    p.add_argument("--smoke", action="store_true", help="a few batches (seconds), for CI")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op (BLAS) threads; 1 by default: these matrices are small")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    if not args.lr > 0 or math.isinf(args.lr):  # `not > 0` also refuses nan
        p.error(f"--lr must be a positive finite number, got {args.lr}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if check is not None:
        check(p, args)
    try:
        os.makedirs(args.out, exist_ok=True)
        tempfile.TemporaryFile(dir=args.out).close()
    except OSError as err:
        p.error(f"--out {args.out!r} is not a writable directory: {err.strerror}")
    return args


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (with a note) when it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print(NO_MATPLOTLIB)
        return None
    return plt


def save_figure(fig, path, dpi=90, tight=True):
    """Write ``fig`` to ``path`` (``tight_layout`` first unless ``tight=False``) and close it."""
    import matplotlib.pyplot as plt  # already imported by pyplot(): the figure exists
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)  # pyplot keeps every open figure alive otherwise
