"""Counters of what ``ember.compile`` did (PyTorch's ``torch._dynamo.utils.counters``).

``counters["frames"]["total"]``: captures run (a first call and each recompile);
``counters["frames"]["ok"]``: those that gave a graph; ``counters["stats"]["unique_graphs"]``:
graphs handed to a backend; ``counters["stats"]["calls_captured"]``: ops in them;
``counters["stats"]["dynamic_graphs"]``: graphs made size-generic (``dynamic.py``);
``counters["graph_break"][reason]``: breaks by reason.  Like PyTorch's, ``reset()`` leaves
them alone: clear them with ``counters.clear()``.
"""
import collections

__all__ = ["counters"]

counters = collections.defaultdict(collections.Counter)
# torch.compiler.set_stance's stance, None for "default" (NOTE [ Stances ] in eval_frame.py):
# here, a leaf module, so that optim_step.py reads it too
stance = [None]
