"""cross_entropy's shift before exp (NOTE [ Fused cross-entropy ]): the one largest logit when
all logits lie within ``_SHIFT_RANGE`` of each other, each row's largest otherwise; both give
torch's loss and gradient."""
import numpy as np
import pytest
import torch

import ember
from ember.ops import loss as L

# (name, logits maker): within the range (global shift), just past it, rows far apart (a
# global shift would underflow whole rows), a large common offset, non-finite logits
CASES = [
    ("narrow", lambda r: r.standard_normal((2048, 65))),
    ("at_range", lambda r: np.concatenate([np.zeros((1, 65)), np.full((1, 65), 19.5),
                                           r.uniform(0, 19.5, (30, 65))])),
    ("past_range", lambda r: np.concatenate([np.zeros((1, 65)), np.full((1, 65), 20.5),
                                             r.uniform(0, 20.5, (30, 65))])),
    ("rows_apart", lambda r: r.standard_normal((64, 10)) + 200.0 * np.arange(64)[:, None]),
    ("offset", lambda r: r.standard_normal((64, 10)) + 1000.0),
    ("one_row", lambda r: r.standard_normal((1, 7)) * 5),
    ("inf", lambda r: np.where(np.arange(70).reshape(7, 10) == 3, np.inf,
                               r.standard_normal((7, 10)))),
]


@pytest.mark.filterwarnings("ignore:invalid value")  # inf - inf in the "inf" case, as before
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_ce_shift_matches_torch(name, make, reduction, dtype):
    r = np.random.default_rng(0)
    x = make(r).astype(dtype)
    t = r.integers(0, x.shape[1], x.shape[0])
    xe = ember.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    le = ember.nn.functional.cross_entropy(xe, ember.tensor(t), reduction=reduction)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(t), reduction=reduction)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(le.detach().numpy(), lt.detach().numpy(), **tol)
    if np.isfinite(x).all():
        g = r.standard_normal(lt.shape).astype(dtype)
        le.backward(ember.tensor(g))
        lt.backward(torch.tensor(g))
        np.testing.assert_allclose(xe.grad.numpy(), xt.grad.numpy(), **tol)


@pytest.mark.parametrize("x,per_row", [
    (np.array([[0.0, 20.0], [1.0, 2.0]]), False),
    (np.array([[0.0, 20.5], [1.0, 2.0]]), True),
    (np.array([[np.nan, 1.0]]), True),
    (np.array([[np.inf, 1.0]]), True),
    (np.zeros((0, 3)), True),
])
def test_logit_shift_path(x, per_row):
    s = L._logit_shift(x)
    assert (np.ndim(s) == 2) == per_row
