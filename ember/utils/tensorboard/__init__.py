"""``ember.utils.tensorboard``: TensorBoard logging (``torch.utils.tensorboard``).

What it captures: scalars, histograms, images, matplotlib figures, text, hyper-parameters and
an ``ember.fx`` graph, each turned into a ``Summary`` protocol buffer (``summary.py``; the
graph in ``_graph.py``).  What it produces: event files that TensorBoard reads, written by the
``tensorboard`` package's own ``EventFileWriter`` (a queue flushed every ``flush_secs`` or
``max_queue`` events).  Where it hooks into the core: nowhere; values arrive as tensors and
leave as NumPy arrays.  ``tensorboard`` is an optional extra (``pip install
'ember[tensorboard]'``), imported when the first ``SummaryWriter`` is made, so this package
imports without it; matplotlib is imported only by ``add_figure``.

The life of one call: ``writer.add_scalar("loss", t, 3)`` -> ``summary.scalar`` builds a
``Summary`` -> ``FileWriter.add_summary`` wraps it in an ``Event`` with the step and wall time
-> the ``EventFileWriter`` queues it and appends it to ``events.out.tfevents.*``.
"""
from .writer import SummaryWriter, FileWriter

__all__ = ["SummaryWriter", "FileWriter"]
