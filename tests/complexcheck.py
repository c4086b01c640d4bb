"""The complex twin of opcheck.check: one call in ember and in torch, values and gradients.

``ccheck(fn, *inputs)`` runs ``fn(module, *tensors)`` for ``module`` in (ember, torch) in
double (complex128 / float64) and single (complex64 / float32) precision: complex NumPy
inputs take the complex dtype, real ones the matching real dtype, and every one of them
requires grad.  Outputs are compared (shape, dtype, values); then the same random upstream
gradients (complex for complex outputs) go back through both and every input's gradient is
compared, so the conjugate-Wirtinger convention is checked against torch's own.
"""
from __future__ import annotations

import numpy as np
import torch

import ember

PRECISIONS = (("complex128", "float64"), ("complex64", "float32"))
TOL = {"float64": dict(rtol=1e-7, atol=1e-9), "float32": dict(rtol=2e-4, atol=2e-5)}


def crand(*shape, seed=0, scale=1.0):
    """Random complex128 values, real and imaginary parts uniform in [-scale, scale]."""
    r = np.random.default_rng(seed)
    return scale * (r.uniform(-1, 1, shape) + 1j * r.uniform(-1, 1, shape))


def rrand(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


def np_of(t):
    """A tensor's values as NumPy (torch's lazy conj/neg bits resolved first)."""
    if isinstance(t, ember.Tensor):
        return t.detach().numpy()
    return t.detach().resolve_conj().resolve_neg().numpy(force=True)


def name_of(dt) -> str:
    return str(dt).split(".")[1]


def same(e, t, real_dt: str, msg: str = ""):
    """Assert ember result ``e`` equals torch result ``t`` (tensors or tuples of them)."""
    if isinstance(t, (tuple, list)):
        assert len(e) == len(t), msg
        for a, b in zip(e, t):
            same(a, b, real_dt, msg)
        return
    if not isinstance(t, torch.Tensor):
        assert e == t or np.isclose(e, t, **TOL[real_dt]), f"{msg}: {e!r} vs {t!r}"
        return
    assert isinstance(e, ember.Tensor), f"{msg}: {type(e)}"
    assert tuple(e.shape) == tuple(t.shape), f"{msg}: shape {tuple(e.shape)} vs {tuple(t.shape)}"
    assert name_of(e.dtype) == name_of(t.dtype), f"{msg}: dtype {e.dtype} vs {t.dtype}"
    a, b = np_of(e), np_of(t)
    if a.dtype.kind in "fc":
        np.testing.assert_allclose(a, b, equal_nan=True, err_msg=msg, **TOL[real_dt])
    else:
        np.testing.assert_array_equal(a, b, err_msg=msg)


def _outs(r):
    return [x for x in (r if isinstance(r, (tuple, list)) else [r])
            if isinstance(x, (ember.Tensor, torch.Tensor))]


def ccheck(fn, *inputs, precisions=PRECISIONS, grad=True, seed=1):
    for cdt, rdt in precisions:
        e_in, t_in = [], []
        for a in inputs:
            if isinstance(a, np.ndarray) and a.dtype.kind in "fc":
                a = a.astype(cdt if a.dtype.kind == "c" else rdt)
                e_in.append(ember.from_numpy(a.copy()).requires_grad_(grad))
                t_in.append(torch.from_numpy(a.copy()).requires_grad_(grad))
            else:
                e_in.append(a)
                t_in.append(a)
        re, rt = fn(ember, *e_in), fn(torch, *t_in)
        same(re, rt, rdt, f"forward [{cdt}]")
        diff = [i for i, x in enumerate(t_in) if isinstance(x, torch.Tensor) and x.requires_grad]
        ot = [o for o in _outs(rt) if o.requires_grad]
        oe = [o for o in _outs(re) if o.requires_grad]
        assert len(oe) == len(ot), f"[{cdt}] outputs needing grad: {len(oe)} vs {len(ot)}"
        if not grad or not ot:
            continue
        rng = np.random.default_rng(seed)
        gs = []
        for o in ot:
            g = rng.standard_normal(tuple(o.shape))
            if o.is_complex():
                g = g + 1j * rng.standard_normal(tuple(o.shape))
            gs.append(np.asarray(g).astype(name_of(o.dtype)))  # 0-d: an array, not a scalar
        ge = ember.autograd.grad(oe, [e_in[i] for i in diff],
                                 [ember.from_numpy(g.copy()) for g in gs], allow_unused=True)
        gt = torch.autograd.grad(ot, [t_in[i] for i in diff],
                                 [torch.from_numpy(g.copy()) for g in gs], allow_unused=True)
        for i, a, b in zip(diff, ge, gt):
            if b is None:
                assert a is None or not np_of(a).any(), f"[{cdt}] input {i}: torch grad None"
                continue
            assert a is not None, f"[{cdt}] input {i}: ember grad is None"
            same(a, b, rdt, f"grad of input {i} [{cdt}]")
    return True
