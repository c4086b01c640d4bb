"""Recipes: ``ember train NAME``, one complete training run per technique (issue 23).

Design note. A recipe is one file, ``ember/recipes/NAME.py`` (underscores for the dashes of
its name), written as ordinary PyTorch code: its only framework line is ``import ember as
torch``, so the same file runs on real PyTorch with that line swapped (the tests do so for a
few batches). Each file is runnable alone (``python ember/recipes/NAME.py --smoke``) and
exposes ``main(argv=None) -> int``; it parses and validates its own flags (``--epochs``,
``--lr``, ``--batch-size``, ``--out``, ``--seed``, ``--smoke``, ``--threads``; the shared
parser, checks and run-folder test live in ``_common.py``, plain Python with no ember
import, so the swapped file still runs on PyTorch) before any work, trains on
data that ships with ember or is generated, prints progress, saves PyTorch-format
checkpoints, ``curves.png`` and its own figures under ``--out`` (``runs/NAME``), and prints
``final <metric> <value>`` as its last line.

``RECIPES`` maps each name to its module; ``ember train NAME ARGS`` (ember/cli/__init__.py)
hands ``ARGS`` to ``run(NAME, ARGS)``. Modules are imported only when their recipe runs, so
listing the names costs nothing. A new recipe is one file and one entry here.
"""
from __future__ import annotations

import importlib

__all__ = ["RECIPES", "run"]

RECIPES: dict = {
    "mlp-scratch": "ember.recipes.mlp_scratch",
    "char-gpt": "ember.recipes.char_gpt",
    "char-lstm": "ember.recipes.char_lstm",
    "autoencoder": "ember.recipes.autoencoder",
    "vae": "ember.recipes.vae",
    "gan": "ember.recipes.gan",
    "seq2seq": "ember.recipes.seq2seq",
    "distill": "ember.recipes.distill",
    "simclr": "ember.recipes.simclr",
    "finetune": "ember.recipes.finetune",
}


def run(name: str, argv=None) -> int:
    """Run recipe ``name`` with command-line arguments ``argv``; its exit code."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; recipes: {', '.join(sorted(RECIPES))}")
    return importlib.import_module(RECIPES[name]).main(argv, prog=f"ember train {name}")
