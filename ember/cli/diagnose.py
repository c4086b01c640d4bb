"""``ember diagnose RUN_DIR``: name what went wrong in a logged training run, with evidence.

Reads the curves ``ember train digits --log csv|tensorboard`` (or
``ember.utils.diagnose.TrainingLog`` in a user's own loop) wrote, prints one line per finding
(diverging loss and the learning rate where it began, exploding/vanishing gradients by layer,
dead ReLUs, overfitting, plateau, a noisy loss from a small batch) and draws an annotated
``diagnosis.png``. The checks live in ``ember/utils/diagnose.py``.
"""
from __future__ import annotations

import os
import sys

from . import CLIError

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diagnose", help="diagnose a logged training run from its curves and gradient norms",
        description="Read the scalars a run logged (scalars.csv or TensorBoard event files, "
                    "from `ember train digits --log csv|tensorboard` or "
                    "ember.utils.diagnose.TrainingLog) and name what went wrong, with the "
                    "evidence; draw an annotated diagnosis.png (needs matplotlib).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory, e.g. runs/digits")
    p.add_argument("--plot", metavar="PATH", default=None,
                   help="where to draw the annotated curves (default RUN_DIR/diagnosis.png)")
    p.add_argument("--no-plot", action="store_true", help="print the findings only")


def run(args, stdout=None) -> int:
    """Run ``ember diagnose``: print the findings and draw diagnosis.png; exit code 0."""
    from ..utils.diagnose import diagnose
    out = stdout if stdout is not None else sys.stdout
    try:
        result = diagnose(args.run_dir)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None
    except (ValueError, ImportError) as e:  # a foreign CSV, or event files without tensorboard
        raise CLIError(str(e), 1) from None
    print(result, file=out)
    if not args.no_plot:
        path = args.plot or os.path.join(args.run_dir, "diagnosis.png")
        try:
            result.plot(path)
        except ImportError as e:
            print(f"(no plot: {e})", file=out)
        else:
            print(f"saved {path}", file=out)
    return 0
