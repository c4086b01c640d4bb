"""Compiled reads and writes with one integer index tensor, 0-d or 1-d, at every dimension
position (``t[:, pos] = v``, ``t[pos]``, ``t[..., idx]``): spelt as index_select /
index_copy_ / index_fill_ without a graph break (NOTE [ Tensor indices ]); values and
gradients equal eager's and torch's, float32 and float64, for changing index values (issue 17,
B1: a 0-d index at a position after the first used to raise)."""
import numpy as np
import pytest
import torch

import ember
from ember._dynamo.utils import counters

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters

SHAPE = (3, 4, 5)


def _key(lib_idx, d, ellipsis):
    """The key selecting with ``lib_idx`` at dim ``d`` of a 3-D tensor."""
    if ellipsis and d == 2:
        return (Ellipsis, lib_idx)
    return (slice(None),) * d + (lib_idx,)


def _target(d, zero_d, n):
    """The shape ``t[key]`` has: dim ``d`` dropped (0-d index) or of the index's length."""
    s = list(SHAPE)
    if zero_d:
        del s[d]
    else:
        s[d] = n
    return tuple(s)


# (index values per call, 0-d?) : three calls with other values, negatives included
INDICES = {"0-d": ([1, -1, 0], True), "1-d": ([[2, 0], [-1, 1], [0, 0]], False)}


def _fn(T, d, ellipsis, value_kind):
    def fn(t, v, w, idx):
        key = _key(idx, d, ellipsis)
        c = t * 1.0
        if value_kind == "scalar":
            c[key] = 2.5
        else:
            c[key] = v * 2.0
        got = t[key] * 3.0  # a read at the same position
        return (c * w).sum() + got.sum() * 0.5, c, got
    return fn


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("value_kind", ["full", "broadcast", "scalar"])
@pytest.mark.parametrize("d,ellipsis", [(0, False), (1, False), (2, False), (2, True)],
                         ids=["t[i]", "t[:, i]", "t[:, :, i]", "t[..., i]"])
@pytest.mark.parametrize("kind", list(INDICES))
def test_one_index_tensor_at_each_position(kind, d, ellipsis, value_kind, dt):
    values, zero_d = INDICES[kind]
    rng = np.random.default_rng(d)
    t0 = rng.standard_normal(SHAPE)
    w0 = rng.standard_normal(SHAPE)
    n = 1 if zero_d else len(values[0])
    target = _target(d, zero_d, n)
    vshape = target if value_kind == "full" else target[-1:]
    v0 = rng.standard_normal(vshape)
    f = ember.compile(_fn(ember, d, ellipsis, value_kind))
    eager = _fn(ember, d, ellipsis, value_kind)
    tfn = _fn(torch, d, ellipsis, value_kind)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == "float32" else dict(rtol=1e-12, atol=1e-12)
    for ix in values:
        outs = []
        for lib, fn in ((ember, f), (ember, eager), (torch, tfn)):
            t = lib.tensor(t0, dtype=getattr(lib, dt), requires_grad=True)
            v = lib.tensor(v0, dtype=getattr(lib, dt), requires_grad=True)
            w = lib.tensor(w0, dtype=getattr(lib, dt))
            loss, c, got = fn(t, v, w, lib.tensor(ix))
            loss.backward()
            outs.append([np.asarray(a.detach().numpy()) for a in (loss, c, got)] +
                        [t.grad.numpy(), None if value_kind == "scalar" else v.grad.numpy()])
        for other in outs[1:]:
            for a, b in zip(outs[0], other):
                if a is not None:
                    assert a.shape == b.shape
                    np.testing.assert_allclose(a, b, **tol)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["frames"]["total"] == 1  # the index is a graph input: one capture


def test_a_zero_d_index_value_with_more_dims_than_its_target_stays_eager():
    """``t[:, pos] = v`` where ``v`` has a leading 1 beyond the target's dims (which torch
    accepts): the plain path, eager's numbers."""
    def fn(t, v, pos):
        c = t * 1.0
        c[:, pos] = v
        return c

    f = ember.compile(fn)
    t, v = ember.zeros(3, 4), ember.ones(1, 3)
    for p in (2, 0):
        want = torch.zeros(3, 4)
        want[:, torch.tensor(p)] = torch.ones(1, 3)
        np.testing.assert_array_equal(f(t, v, ember.tensor(p)).numpy(), want.numpy())
