"""Compiled kernels an op may run instead of its NumPy passes (NOTE [ Kernel tables ]).

NOTE [ Kernel tables ]
``(op, array module, dtype) -> kernels``: an op whose NumPy passes have a one-pass compiled
form (numba, the ``numba`` extra) looks itself up here; with the table empty, the default,
every op runs its NumPy passes.  ``ember.compile(fn, options={"numba": True})`` sets the
table for the duration of each call (``use``; ``_WithKernels`` in ``_dynamo/eval_frame.py``);
an op that records keeps its choice on its ``ctx``, so that its backward, which runs after
the compiled call has returned, uses the same.  The table is the process's, not a thread's:
an eager op that runs in another thread during a compiled call may use the kernels too (the
same numbers to float32 rounding).  The fused LSTM keeps a table of its own (NOTE [ Step
kernels ] in ``rnn.py``).  Entries (the modules are imported only by ``numba_table``, so
``import ember`` and the default path never import numba):

    "layer_norm"      normalization.py  _numba_norm.py       NOTE [ numba layer-norm kernels ]
    "softmax_by_key"  attention.py      _numba_attention.py  NOTE [ numba softmax kernels ]
"""
from __future__ import annotations

__all__: list = []

_table: dict = {}


def get(op: str, xp, dtype):
    """The kernels for ``op`` on ``xp`` arrays of ``dtype`` in the current table, or None."""
    return _table.get((op, xp, dtype)) if _table else None


class use:
    """``with use(table):`` ops look their kernels up in ``table``."""

    __slots__ = ("table", "prev")

    def __init__(self, table: dict):
        self.table = table

    def __enter__(self):
        global _table
        self.prev, _table = _table, self.table

    def __exit__(self, *exc):
        global _table
        _table = self.prev


def numba_table() -> dict:
    """The numba kernels' table (imports numba; compiles the kernels or loads them from its
    cache): ``ImportError`` naming the ``numba`` extra when numba is missing."""
    try:
        from . import _numba_norm, _numba_attention
    except ImportError as e:
        raise ImportError("ember.compile(..., options={'numba': True}) needs numba, the "
                          "'numba' extra: pip install 'ember[numba]'") from e
    table = {}
    for op, mod in (("layer_norm", _numba_norm), ("softmax_by_key", _numba_attention)):
        for (xp, dt), kern in mod.KERNELS.items():
            table[(op, xp, dt)] = kern
    return table
