"""``ember lr-find digits``: the learning-rate range test (Smith 2017) on the digits CNN.

Runs ``ember.utils.lr_finder.lr_find`` with the model, Adam and loss of ``ember train digits``,
prints the suggested rate (the steepest descent of the smoothed loss) and the rate of the
lowest loss, and saves the loss-vs-rate curve as ``lr_find.png`` and ``lr_find.csv``.
"""
from __future__ import annotations

import csv
import math
import os
import sys

from . import CLIError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "lr-find", help="learning-rate range test: loss vs rate and a suggested rate",
        description="Train the digits CNN (Adam, as `ember train digits`) while the learning "
                    "rate grows exponentially from --start-lr to --end-lr, stop once the loss "
                    "diverges, and suggest the rate where the smoothed loss falls fastest "
                    "(Smith 2017). The model's weights are not kept.")
    p.add_argument("task", choices=["digits"], metavar="TASK", help="what to test: 'digits'")
    p.add_argument("--start-lr", type=float, default=1e-6, help="first rate (default 1e-6)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last rate (default 10)")
    p.add_argument("--num-iter", type=int, default=100,
                   help="steps of the sweep (default 100; fewer if the loss diverges)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training images")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and shuffling")
    p.add_argument("--out", default=os.path.join("runs", "lr_find"),
                   help="where lr_find.png and lr_find.csv go (default runs/lr_find)")
    from .digits import add_threads_argument
    add_threads_argument(p)


def run(args, stdout=None) -> int:
    """Run ``ember lr-find``: the sweep, the suggestion, the plot and the CSV."""
    from .digits import blas_threads
    with blas_threads(args.threads):
        return _run(args, stdout if stdout is not None else sys.stdout)


def _run(args, out) -> int:
    if not (0 < args.start_lr < args.end_lr and math.isfinite(args.end_lr)):
        raise CLIError(f"expected 0 < --start-lr < --end-lr, got --start-lr {args.start_lr:g} "
                       f"--end-lr {args.end_lr:g}")
    if args.num_iter < 5:
        raise CLIError(f"--num-iter must be at least 5, got {args.num_iter}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be at least 1, got {args.limit}")
    import ember
    from ..utils.lr_finder import lr_find
    from .digits import _tensors, build_model
    ember.manual_seed(args.seed)
    x, y = _tensors(ember, "train", args.limit)
    data = ember.utils.data
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=args.batch_size,
                             shuffle=True)
    model = build_model(ember)
    opt = ember.optim.Adam(model.parameters(), lr=args.start_lr)
    loss_fn = ember.nn.CrossEntropyLoss(label_smoothing=0.1)
    res = lr_find(model, opt, loss_fn, loader, args.start_lr, args.end_lr, args.num_iter)
    os.makedirs(args.out, exist_ok=True)
    path_csv = os.path.join(args.out, "lr_find.csv")
    with open(path_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["lr", "loss", "smoothed_loss"])
        w.writerows(zip(res.lrs, res.losses, res.smoothed))
    finite = [(s, lr) for lr, s in zip(res.lrs, res.smoothed) if math.isfinite(s)]
    low_loss, low_lr = min(finite)
    stop = (f"stopped at lr {res.lrs[-1]:.2e} (step {len(res.lrs)}): the loss diverged"
            if res.diverged else f"swept {len(res.lrs)} steps to lr {res.lrs[-1]:.2e}")
    print(f"range test of the digits CNN (Adam, batch {args.batch_size}): {stop}", file=out)
    print(f"lowest smoothed loss {low_loss:.4f} at lr {low_lr:.2e}", file=out)
    if res.suggestion is None:
        raise CLIError("the loss diverged at once: no rate to suggest (lower --start-lr)", 1)
    print(f"suggested lr {res.suggestion:.2e} (steepest descent of the smoothed loss); try: "
          f"ember train digits --lr {res.suggestion:.2g}", file=out)
    wrote = [path_csv]
    try:
        wrote.append(res.plot(os.path.join(args.out, "lr_find.png"),
                              title="ember lr-find digits (Adam)"))
    except ImportError as e:
        print(f"(no plot: {e})", file=out)
    print("saved " + ", ".join(wrote), file=out)
    return 0
