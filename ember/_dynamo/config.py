"""Knobs of ``ember.compile`` (PyTorch's ``torch._dynamo.config``)."""

# Compiled entries kept per code object (one per distinct set of guards); past it the
# function runs eagerly with a warning.  ``recompile_limit`` is the newer name of the same
# limit: the smaller of the two applies.
cache_size_limit = 8
recompile_limit = 8
# Ignored (accepted for scripts that set them): ember never raises on a graph break unless
# ``fullgraph=True``.
suppress_errors = False
verbose = False
# Sizes a dynamic graph keeps generated code for (NOTE [ Dynamic compiled graphs ]); past it
# the oldest size's code is dropped (made again, from the graph, if that size comes back).
dynamic_instance_limit = 64
