"""``python -m ember.run script.py [args]``: run a PyTorch program on ember, unchanged.

The script runs as ``__main__`` exactly as ``python script.py [args]`` would run it (its own
``sys.argv``, its folder first on ``sys.path``), with ``import torch`` resolving to ember
(``ember.compat.install()``). ``-m module [args]`` runs a module as ``python -m`` does.
"""
from __future__ import annotations

import os
import runpy
import sys

__all__ = ["run_path", "run_module", "main"]

_USAGE = "usage: python -m ember.run [-m module | script.py] [args ...]"


def run_path(script: str, args=()) -> None:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]`` under the alias."""
    from . import compat
    compat.install()
    sys.argv = [script, *args]
    # as `python script.py`: the script's folder (not ember's caller's) heads sys.path
    # (python -m ember.run put the cwd there, the `ember` console script its bin folder);
    # a folder or zip with a __main__.py is itself the entry, as for `python folder`
    path = os.path.abspath(script)
    sys.path[:1] = [path if not os.path.isfile(path) or not path.endswith(".py")
                    and _is_zip(path) else os.path.dirname(path)]
    runpy.run_path(script, run_name="__main__")


def _is_zip(path: str) -> bool:
    import zipfile
    return zipfile.is_zipfile(path)


def run_module(module: str, args=()) -> None:
    """Run ``module`` as ``python -m module [args]`` would, under the alias."""
    from . import compat
    compat.install()
    sys.argv = [module, *args]  # runpy replaces argv[0] with the module's file
    if not sys.path or sys.path[0] != os.getcwd():
        sys.path.insert(0, os.getcwd())
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv=None) -> int:
    """Entry point of ``python -m ember.run``; the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    if argv[0] == "-m":
        if len(argv) < 2:
            print(_USAGE + "\nerror: -m needs a module name", file=sys.stderr)
            return 2
        run_module(argv[1], argv[2:])
        return 0
    if not os.path.exists(argv[0]):
        print(f"ember run: error: can't open file {os.path.abspath(argv[0])!r}: "
              "No such file", file=sys.stderr)
        return 2
    run_path(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
