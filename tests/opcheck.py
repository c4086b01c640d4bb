"""The table-driven op harness: run one call in ember and in torch and compare.

``check(fn_ember, fn_torch, *inputs)`` builds ember and torch tensors from the
same NumPy arrays (float inputs require grad), compares outputs, then
back-propagates the same random upstream gradient through both and compares
every input's gradient.  ``fn_torch`` defaults to ``fn_ember`` when the call is
written against a module argument (``lambda m, x: m.exp(x)``).
"""
from __future__ import annotations

import numpy as np
import torch

import ember

TOL = {"float64": dict(rtol=1e-7, atol=1e-9), "float32": dict(rtol=2e-4, atol=2e-5),
       "float16": dict(rtol=2e-2, atol=2e-2)}


def to_ember(a, requires_grad=False):
    t = ember.tensor(a) if not isinstance(a, np.ndarray) else ember.from_numpy(a.copy())
    return t.requires_grad_() if requires_grad else t


def to_torch(a, requires_grad=False):
    t = torch.tensor(a) if not isinstance(a, np.ndarray) else torch.from_numpy(a.copy())
    return t.requires_grad_() if requires_grad else t


def as_np(t):
    if isinstance(t, ember.Tensor):
        return t.detach().numpy()
    return t.detach().numpy(force=True)  # force: torch returns ZeroTensors for some grads


def assert_close(e, t, dtype="float64", msg=""):
    """Compare an ember result with a torch result (tensors, numbers or nested tuples)."""
    if isinstance(t, (tuple, list)):
        assert isinstance(e, (tuple, list)) and len(e) == len(t), f"{msg}: {e!r} vs {t!r}"
        for a, b in zip(e, t):
            assert_close(a, b, dtype, msg)
        return
    if isinstance(t, torch.Tensor):
        assert isinstance(e, ember.Tensor), f"{msg}: expected a Tensor, got {type(e)}"
        assert tuple(e.shape) == tuple(t.shape), f"{msg}: shape {tuple(e.shape)} vs {tuple(t.shape)}"
        assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1], \
            f"{msg}: dtype {e.dtype} vs {t.dtype}"
        a, b = as_np(e), as_np(t)
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64),
                                       equal_nan=True, err_msg=msg, **TOL.get(dtype, TOL["float32"]))
        else:
            np.testing.assert_array_equal(a, b, err_msg=msg)
        return
    assert e == t or (e != e and t != t), f"{msg}: {e!r} vs {t!r}"


def _outputs(r):
    if isinstance(r, (tuple, list)):
        return [x for x in r if isinstance(x, (ember.Tensor, torch.Tensor))]
    return [r]


def check(fn_e, fn_t=None, *inputs, dtypes=("float64", "float32"), grad=True, kwargs=None,
          grad_inputs=None, seed=0):
    """Compare forward and backward of ``fn_e(*inputs)`` against ``fn_t(*inputs)``.

    ``inputs`` are NumPy arrays (cast to each dtype in ``dtypes`` when floating),
    or anything else passed through unchanged.  ``grad_inputs`` picks which float
    inputs require grad (default: all floating arrays).
    """
    fn_t = fn_t or fn_e
    kwargs = kwargs or {}
    rng = np.random.default_rng(seed)
    for dt in dtypes:
        e_in, t_in, diff = [], [], []
        for i, a in enumerate(inputs):
            if isinstance(a, np.ndarray):
                if a.dtype.kind == "f":
                    a = a.astype(dt)
                rg = a.dtype.kind == "f" and grad and (grad_inputs is None or i in grad_inputs)
                e_in.append(to_ember(a, rg))
                t_in.append(to_torch(a, rg))
                if rg:
                    diff.append(i)
            else:
                e_in.append(a)
                t_in.append(a)
        re = fn_e(*e_in, **kwargs) if fn_t is not fn_e else fn_e(ember, *e_in, **kwargs)
        rt = fn_t(*t_in, **kwargs) if fn_t is not fn_e else fn_t(torch, *t_in, **kwargs)
        assert_close(re, rt, dt, f"forward [{dt}]")
        if not diff:
            continue
        oe = [o for o in _outputs(re) if o.requires_grad]
        ot = [o for o in _outputs(rt) if o.requires_grad]
        assert len(oe) == len(ot), f"[{dt}] {len(oe)} outputs need grad in ember, {len(ot)} in torch"
        if not ot:
            continue
        gs = [rng.standard_normal(tuple(o.shape)).astype(str(o.dtype).split(".")[1]) for o in ot]
        ge = ember.autograd.grad(oe, [e_in[i] for i in diff],
                                 [ember.from_numpy(g.copy()) for g in gs], allow_unused=True)
        gt = torch.autograd.grad(ot, [t_in[i] for i in diff],
                                 [torch.from_numpy(g.copy()) for g in gs], allow_unused=True)
        for i, a, b in zip(diff, ge, gt):
            if b is None:
                assert a is None or not as_np(a).any(), f"[{dt}] input {i}: torch grad is None"
                continue
            assert a is not None, f"[{dt}] input {i}: ember grad is None"
            assert_close(a, b, dt, f"grad of input {i} [{dt}]")
    return True


def rand(*shape, low=-2.0, high=2.0, seed=None):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, shape)


def positive(*shape, seed=None):
    return np.random.default_rng(seed).uniform(0.1, 3.0, shape)


def gradcheck(fn, *arrays, **kw):
    """ember's own float64 gradcheck on ``fn(*tensors)``."""
    ts = [ember.from_numpy(np.asarray(a, dtype=np.float64).copy()).requires_grad_()
          for a in arrays]
    return ember.autograd.gradcheck(fn, ts, **kw)
