"""What the compile tests share: ``ember.compile`` with a backend that keeps the regions it
makes, so a test can look inside them (their graphs, generated code, planned buffers), and the
source of a compiled function's fast guard."""
from __future__ import annotations

import contextlib
import io

import ember
from ember._dynamo import eval_frame
from ember._dynamo.backends import lookup_backend
from ember._functorch.aot_autograd import CompiledRegion


def recording_backend():
    """``(regions, backend)``: ember's default backend, appending each region it makes."""
    regions = []

    def backend(gm, example_inputs):
        r = lookup_backend("inductor")(gm, example_inputs)
        regions.append(r)
        return r
    return regions, backend


def compile_keeping(fn):
    """``ember.compile(fn)`` with the default backend, and the list of regions it makes."""
    regions, backend = recording_backend()
    return ember.compile(fn, backend=backend), regions


def region_backend(made: list):
    """A backend that builds a bare ``CompiledRegion`` over the captured graph (default
    options) and appends it to ``made``."""
    def compile_region(gm, example_inputs):
        consts = {n.target: getattr(gm, n.target) for n in gm.graph.nodes
                  if n.op == "get_attr"}
        made.append(CompiledRegion(gm.graph, consts))
        return made[-1]
    return compile_region


def guard_source(c) -> str:
    """The fast guard the compiled function ``c`` makes for its last entry, as
    ``EMBER_LOGS=guards`` prints it."""
    entry = c._last[2]
    buf = io.StringIO()
    old = eval_frame._log_on
    eval_frame._log_on = lambda k: k == "guards"
    try:
        with contextlib.redirect_stderr(buf):
            eval_frame._fast_guard(entry, entry.key, c._disc, (None,) * entry.key[1][0])
    finally:
        eval_frame._log_on = old
    return buf.getvalue()
