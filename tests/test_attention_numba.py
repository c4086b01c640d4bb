"""Attention's softmax as numba kernels (``ember.compile(options={"numba": True})``, NOTE
[ numba softmax kernels ] in ``ops/_numba_attention.py``): forward and gradients against
PyTorch and the NumPy passes, causal or not, odd and unequal lengths, sharp softmaxes,
NaN/inf scores, dropout; the cases that keep the NumPy path (float64, a user mask, the
scores laid out by query); the kernels' exp; a compiled Transformer LM whose attention runs
them, equal to the default compile.  numba is the ``numba`` extra, in the ``test`` one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import kernelcheck
from ember.ops import _kernels, attention

numba = pytest.importorskip("numba", reason="the numba extra is not installed")


@pytest.fixture(scope="module")
def table():
    return _kernels.numba_table()


@pytest.fixture
def spy(table, monkeypatch):
    """Counts of the kernels' calls."""
    kern = table[("softmax_by_key", np, np.dtype(np.float32))]
    return kernelcheck.spy_calls(monkeypatch, kern, ("fwd", "bwd"))


def _qkv(shape_q, shape_kv, dt, spread, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * spread).astype(dt) for s in (shape_q, shape_kv, shape_kv)]


def _run(mod, arrs, table=None, **kw):
    """(out, dq, dk, dv) of scaled_dot_product_attention in ``mod`` (under ``table``)."""
    ts = [mod.tensor(a, requires_grad=True) for a in arrs]
    if table is not None:
        with _kernels.use(table):
            out = mod.nn.functional.scaled_dot_product_attention(*ts, **kw)
    else:
        out = mod.nn.functional.scaled_dot_product_attention(*ts, **kw)
    g = np.random.default_rng(9).standard_normal(tuple(out.shape)).astype(arrs[0].dtype)
    out.backward(mod.tensor(g))
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts]


def _close(a, b, tol=2e-5):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())),
                               equal_nan=True)


CASES = [  # (query shape, key/value shape)
    ((2, 4, 64, 32), (2, 4, 64, 32)),   # GPT-mini's heads
    ((3, 2, 5, 8), (3, 2, 7, 8)),       # more keys than queries
    ((3, 2, 7, 8), (3, 2, 5, 8)),       # fewer keys than queries
    ((1, 1, 1, 4), (1, 1, 1, 4)),
    ((5, 9, 16), (5, 9, 16)),           # 3-d
]


@pytest.mark.parametrize("shapes", CASES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spread", [1.0, 4.0])  # 4.0: scores ~100 apart, sharp softmaxes
def test_kernels_match_torch_and_numpy_path(table, spy, shapes, causal, spread):
    arrs = _qkv(*shapes, np.float32, spread)
    got = _run(ember, arrs, table, is_causal=causal)
    assert _kernels._table == {}
    assert spy == {"fwd": 1, "bwd": 1}
    ref = _run(torch, [a.astype(np.float64) for a in arrs], is_causal=causal)
    plain = _run(ember, arrs, is_causal=causal)
    for k, (e, t, p) in enumerate(zip(got, ref, plain)):
        assert e.dtype == p.dtype == np.float32 and e.shape == p.shape
        _close(e, t)
        _close(e, p)


def test_dropout_draws_as_the_numpy_path(table, spy):
    # the mask is drawn from the probabilities' shape after the softmax either way
    arrs = _qkv((2, 2, 6, 4), (2, 2, 6, 4), np.float32, 1.0)
    ember.manual_seed(3)
    got = _run(ember, arrs, table, dropout_p=0.3, is_causal=True)
    ember.manual_seed(3)
    plain = _run(ember, arrs, dropout_p=0.3, is_causal=True)
    assert spy == {"fwd": 1, "bwd": 1}
    for e, p in zip(got, plain):
        _close(e, p)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("causal", [False, True])
def test_nan_and_inf_scores_as_the_numpy_path(table, causal):
    # a NaN or +inf score makes its query's probabilities NaN; -inf scores are 0; a NaN
    # under the causal mask is never seen.  (PyTorch's flash kernel gives a NaN query 0
    # instead; ember's NumPy path gives NaN, and the kernels keep ember's behaviour.)
    q, k, v = _qkv((1, 1, 4, 2), (1, 1, 4, 2), np.float32, 1.0)
    q[0, 0, 1, 0] = np.nan      # query 1: NaN scores
    k[0, 0, 3, 1] = np.inf      # key 3: +-inf scores (masked for queries < 3 when causal)
    q[0, 0, 2] = [1.0, 0.0]
    t = [ember.tensor(a) for a in (q, k, v)]
    plain = ember.nn.functional.scaled_dot_product_attention(*t, is_causal=causal).numpy()
    with _kernels.use(table):
        got = ember.nn.functional.scaled_dot_product_attention(*t, is_causal=causal).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(plain))
    assert np.isnan(got[0, 0, 1]).all() and not np.isnan(got[0, 0, 0]).any()
    assert np.isnan(got[0, 0, 2]).all() != causal  # key 3's inf is masked for query 2
    _close(got, plain)
    ref = torch.nn.functional.scaled_dot_product_attention(
        *map(torch.tensor, (q, k, v)), is_causal=causal).numpy()
    fine = ~np.isnan(got).any(-1)
    _close(got[fine], ref[fine])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_all_minus_inf_query_is_nan(table):
    # every visible score -inf: softmax's -inf - -inf is NaN (the NumPy path's result)
    q = np.zeros((1, 1, 2, 2), np.float32)
    q[0, 0, 0] = [-np.inf, 0.0]
    k = np.ones((1, 1, 3, 2), np.float32)
    v = np.ones((1, 1, 3, 2), np.float32)
    t = [ember.tensor(a) for a in (q, k, v)]
    plain = ember.nn.functional.scaled_dot_product_attention(*t).numpy()
    with _kernels.use(table):
        got = ember.nn.functional.scaled_dot_product_attention(*t).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(plain))
    assert np.isnan(got[0, 0, 0]).all() and (got[0, 0, 1] == 1).all()


@pytest.mark.parametrize("why", ["float64", "mask", "by query"])
def test_other_calls_keep_the_numpy_path(table, spy, why, monkeypatch):
    dt = np.float64 if why == "float64" else np.float32
    arrs = _qkv((2, 2, 5, 4), (2, 2, 5, 4), dt, 1.0)
    kw = {}
    if why == "mask":
        kw["attn_mask"] = torch.ones(5, 5, dtype=torch.bool).tril()
    if why == "by query":
        monkeypatch.setattr(attention, "_BY_KEY", False)
    ref = _run(torch, arrs, **kw)
    if "attn_mask" in kw:
        kw["attn_mask"] = ember.tensor(kw["attn_mask"].numpy())
    got = _run(ember, arrs, table, **kw)
    assert spy == {"fwd": 0, "bwd": 0}
    for e, t in zip(got, ref):
        _close(e, t, 2e-5 if dt == np.float32 else 1e-12)


def test_exp_accuracy():
    # the kernels' exp on [-90, 0] and -inf: within 1 ulp of the exact value where float32
    # is normal, 0 below, 1 at 0
    from ember.ops import _numba_attention as K

    @numba.njit(error_model="numpy", fastmath=K._OPTS["fastmath"])  # as the kernels compile it
    def apply(a, out):
        for i in range(a.shape[0]):
            out[i] = K._exp0(a[i])
    x = np.concatenate([-np.linspace(0, 90, 1_000_001, dtype=np.float32),
                        np.float32([-0.0, -1e-30, -np.inf])])
    got = np.empty_like(x)
    apply(x, got)
    exact = np.exp(x.astype(np.float64))
    normal = exact >= np.finfo(np.float32).tiny * 1.0001
    ulp = np.spacing(exact[normal].astype(np.float32)).astype(np.float64)
    assert (np.abs(got[normal] - exact[normal]) / ulp).max() <= 1.0
    assert np.all(got[x < -87.34] == 0) and got[0] == 1 and got[-1] == 0


def test_compiled_lm_uses_kernels_and_trains_as_default(spy):
    # a causal Transformer LM compiled with options={"numba": True}: its attention's softmax
    # runs the kernels each way; 10 steps within float32 rounding of the default compile
    runs = []
    for options in (None, {"numba": True}):
        ember.manual_seed(0)
        nn = ember.nn
        model = nn.ModuleDict({
            "emb": nn.Embedding(13, 16),
            "enc": nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True),
            "head": nn.Linear(16, 13)})
        rng = np.random.default_rng(0)
        tokens = rng.integers(0, 13, (4, 9))
        x = ember.from_numpy(tokens[:, :-1].copy())
        y = ember.from_numpy(tokens[:, 1:].reshape(-1).copy())
        mask = nn.Transformer.generate_square_subsequent_mask(8)
        opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def loss(x, y):
            h = model["enc"](model["emb"](x), src_mask=mask, is_causal=True)
            return ember.nn.functional.cross_entropy(model["head"](h).reshape(-1, 13), y)
        f = ember.compile(loss, options=options)
        losses = kernelcheck.train(f, opt, x, y, 10)
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    assert spy["fwd"] == 10 and 10 <= spy["bwd"] <= 11
    (l0, p0), (l1, p1) = runs
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_create_graph_after_kernel_forward(table):
    # create_graph takes the graph formula on the kernels' probabilities: second derivatives
    # as torch's math formula (its flash kernel has no double backward) and as the NumPy path
    arrs = _qkv((2, 2, 5, 4), (2, 2, 5, 4), np.float64, 1.0)

    def torch_math(q, k, v):
        s = q @ k.transpose(-1, -2) / 2.0  # scale 1/sqrt(4)
        s = s.masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
        return torch.softmax(s, -1) @ v
    outs = []
    for mod, tb in ((torch, None), (ember, None), (ember, table)):
        q, k, v = (mod.tensor(a.astype(np.float32), requires_grad=True) for a in arrs)
        if mod is torch:
            y = torch_math(q, k, v)
        elif tb is not None:
            with _kernels.use(tb):
                y = mod.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = mod.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        gq, gk = mod.autograd.grad((y ** 3).sum(), (q, k), create_graph=True)
        second = mod.autograd.grad((gq * gq).sum() + gk.sum(), (q, k, v))
        outs.append([t.detach().numpy() for t in (gq, gk) + second])
    for e, t, p in zip(outs[2], outs[0], outs[1]):
        _close(e, t, 1e-4)
        _close(e, p, 1e-4)
