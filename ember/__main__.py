"""``python -m ember`` / the ``ember`` console script (see ``ember.cli``)."""
import sys

from ember.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
