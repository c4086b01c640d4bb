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


def check_call(em, ee, tm, f, x, modes, grads: bool) -> None:
    """One call of ``f`` (``em`` compiled) against ``ee`` run eagerly (``em`` itself or an
    ember copy) and torch's ``tm``, under ``modes`` = (ember mode, torch mode): values, and with
    ``grads`` the parameters' gradients of ``square().sum()`` (present in all three or none)."""
    import numpy as np
    import torch
    emode, tmode = modes
    xt = torch.from_numpy(x.numpy().copy())
    with emode():
        got = f(x)
        want = ee(x)
    with tmode():
        ref = tm(xt)
    # (a batch-1 linear is one GEMV compiled: within rounding of eager, not bit for bit)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    if not grads:
        return
    em.zero_grad()
    f(x).square().sum().backward()
    gc = {k: p.grad.numpy().copy() for k, p in em.named_parameters() if p.grad is not None}
    ee.zero_grad()
    ee(x).square().sum().backward()
    tm.zero_grad()
    tm(xt).square().sum().backward()
    tg = dict(tm.named_parameters())
    for k, p in ee.named_parameters():
        assert (k in gc) == (p.grad is not None) == (tg[k].grad is not None), k
        if k in gc:
            np.testing.assert_allclose(gc[k], p.grad.numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(gc[k], tg[k].grad.numpy(), rtol=1e-5, atol=1e-6)
