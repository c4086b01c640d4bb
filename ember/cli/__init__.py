"""The ``ember`` command: ``ember train digits``, ``ember eval CHECKPOINT``, ``ember info``,
``ember run script.py [args]``."""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "CLIError"]


class CLIError(Exception):
    """A user error the CLI reports as one line (``ember <cmd>: error: ...``), no traceback."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


_EPILOG = """examples:
  ember train digits                       train the digits CNN (~98% test accuracy)
  ember train digits --resume runs/digits/last.pt
  ember eval runs/digits/best.pt           test accuracy and confusion matrix
  ember info                               versions, BLAS, threads, optional extras
  ember run train.py --epochs 3            run a PyTorch script unchanged on ember
"""


# Further commands, one module each in ember/cli/: ``add_parser(sub)`` adds its sub-parser
# (named as the module, dashes for underscores) and ``run(args)`` runs it, returning the exit
# code.  A new command is one file and one name here.
_COMMANDS: tuple = ("docs", "export", "diagnose", "tune", "lr_find", "quantize")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ember`` command (one sub-parser per command)."""
    from .. import __version__, recipes
    from . import digits

    p = argparse.ArgumentParser(
        prog="ember", description="ember: PyTorch's API rebuilt from first principles on NumPy.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"ember {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "train", help="train a model on a bundled dataset",
        description="Train a model on a dataset shipped with ember (no network needed).")
    t.add_argument("task", choices=sorted({*digits.TASKS, *recipes.RECIPES}), metavar="TASK",
                   help="what to train: 'digits' = a small CNN on the 8x8 handwritten digits "
                        "(1,797 images, bundled); the others are recipes with their own flags "
                        "(ember train TASK --help)")
    digits.add_train_arguments(t)

    e = sub.add_parser(
        "eval", help="evaluate a checkpoint on its task's held-out test set",
        description="Report test accuracy and the confusion matrix of a training checkpoint.")
    e.add_argument("checkpoint", help="a checkpoint written by `ember train` (last.pt/best.pt)")
    e.add_argument("--batch-size", type=int, default=512,
                   help="evaluation batch size (default 512)")
    digits.add_threads_argument(e)

    sub.add_parser("info", help="show versions, BLAS, threads and optional extras",
                   description="Show ember's version, array backend, BLAS, threads and which "
                               "optional extras are installed.")

    r = sub.add_parser(
        "run", help="run a PyTorch program unchanged on ember (import torch gives ember)",
        description="Run SCRIPT as __main__ with `import torch` resolving to ember, as "
                    "`python SCRIPT ARGS` would (also `python -m ember.run SCRIPT ARGS`).")
    r.add_argument("script", help="the Python file to run")
    r.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run the ``ember`` command line with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from .. import recipes
    if len(argv) > 1 and argv[0] == "train" and argv[1] in recipes.RECIPES:
        # a recipe parses and validates its own flags (ember/recipes/__init__.py)
        return recipes.run(argv[1], argv[2:])
    parser = build_parser()
    args = parser.parse_args(argv)  # bad usage: argparse prints usage + error, exits 2
    try:
        if args.command == "train":
            from . import digits
            return digits.TASKS[args.task](args)
        if args.command == "eval":
            from . import digits
            return digits.evaluate(args)
        if args.command == "run":
            from .. import run
            return run.main([args.script, *args.args])
        if args.command.replace("-", "_") in _COMMANDS:
            mod = importlib.import_module(f"{__name__}.{args.command.replace('-', '_')}")
            return mod.run(args)
        from . import info
        return info.run(args)
    except CLIError as err:
        print(f"ember {args.command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"\nember {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`ember info | head`): stop quietly, as Python's docs advise,
        # pointing stdout at devnull so the interpreter's final flush cannot fail again
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
