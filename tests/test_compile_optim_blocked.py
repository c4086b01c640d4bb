"""The compiled flat Adam/AdamW update runs block by block (NOTE [ Blocked flat Adam ] in
ember/_dynamo/optim_step.py): the same bits as eager ember's step, and torch's numbers, with
parameters that end inside a block, span several blocks and are smaller than one."""
import numpy as np
import pytest
import torch

import ember
from ember._dynamo import optim_step

CASES = [
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, maximize=True, betas=(0.3, 0.9))),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)),
]
IDS = ["-".join([n, *kw]) for n, kw in CASES]
SHAPES = [(5, 7), (16,), (3,), (2, 9, 2)]  # 35, 16, 3, 36 elements: blocks of 8 or 16


def _params(lib, dtype):
    rng = np.random.default_rng(0)
    return [lib.tensor(rng.standard_normal(s), dtype=getattr(lib, dtype), requires_grad=True)
            for s in SHAPES]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def _run(lib, name, kw, dtype, compiled, steps=6):
    ps = _params(lib, dtype)
    opt = getattr(lib.optim, name)(ps, **kw)
    step = ember.compile(opt.step) if compiled else opt.step
    for i in range(steps):
        for p, g in zip(ps, _grads(i)):
            p.grad = lib.tensor(g, dtype=getattr(lib, dtype))
        step()
    return [p.detach().numpy().copy() for p in ps], step


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_blocked_flat_adam_equals_eager_and_torch(monkeypatch, name, kw, dtype):
    monkeypatch.setattr(optim_step, "_BLOCK_BYTES", 64)  # 16 float32 or 8 float64 elements
    eager, _ = _run(ember, name, kw, dtype, compiled=False)
    comp, step = _run(ember, name, kw, dtype, compiled=True)
    assert "for lo in range(0, n, BLK)" in step.code  # the flat, blocked update ran
    for a, b in zip(comp, eager):
        np.testing.assert_array_equal(a, b)
    ref, _ = _run(torch, name, kw, dtype, compiled=False)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(comp, ref):
        np.testing.assert_allclose(a, b, **tol)


def test_blocked_flat_adam_default_block_size():
    """One parameter of 300k float32 elements: two 1 MB blocks, the second partial."""
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal(300_000).astype(np.float32)
    out = []
    for compiled in (False, True):
        w = ember.tensor(w0, requires_grad=True)
        b = ember.zeros(4, requires_grad=True)
        opt = ember.optim.Adam([w, b], lr=1e-3)
        step = ember.compile(opt.step) if compiled else opt.step
        for i in range(3):
            w.grad = ember.tensor(np.sin(w0 * (i + 1)))
            b.grad = ember.ones(4)
            step()
        out.append((w.detach().numpy().copy(), b.detach().numpy().copy()))
    assert "for lo in range(0, n, BLK)" in step.code
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
