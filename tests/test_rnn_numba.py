"""The fused LSTM's numba step kernels (``ember.compile(options={"numba": True})``, NOTE [ Step
kernels ] in ``ops/rnn.py``) against the NumPy passes on the same inputs and against PyTorch:
outputs, h_n/c_n and the gradients of the input, weights, biases, h0 and c0; bidirectional, two
layers, proj_size, packed (sorted and unsorted lengths), batch_first; float32 (the kernels)
and float64 (which keeps the NumPy path).  numba is the ``numba`` extra, in the ``test`` one."""
from __future__ import annotations

import copy
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

import ember
import kernelcheck
from ember.ops import rnn
from opcheck import assert_close
from test_rnn import build
from test_rnn_step_out import _run, lstm_case, I, H, P, B, T

numba = pytest.importorskip("numba", reason="the numba extra is not installed")

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


@pytest.fixture(scope="module")
def table():
    return rnn.numba_kernels()


@pytest.fixture
def spy(table, monkeypatch):
    """Counts of the kernels' calls."""
    kern = table[(np, np.dtype(np.float32))]
    return kernelcheck.spy_calls(monkeypatch, kern, ("fwd", "bwd", "acc"))


# bidirectional x layers x proj x packed; batch_first and h0/c0 alternate over the rows
GRID = [(bd, nl, pj, pk, (i % 2 == 0), (i % 3 != 0)) for i, (bd, nl, pj, pk) in enumerate(
    itertools.product((False, True), (1, 2), (0, P), (None, "sorted", "unsorted")))]


@pytest.mark.parametrize("bidir,layers,proj,packed,batch_first,with_h0", GRID)
def test_kernels_match_numpy_path_and_torch(table, spy, bidir, layers, proj, packed,
                                            batch_first, with_h0):
    rng = np.random.default_rng(layers * 7 + proj)
    d = 2 if bidir else 1
    for dtype in ("float32", "float64"):
        tm, em, x, h0c0 = lstm_case(rng, dtype, bidir, layers, proj, batch_first, with_h0)
        ref, plain = _run(tm, em, x, packed, batch_first, h0c0)
        before = dict(spy)
        with rnn.step_kernels(table):  # the forward reads the table; its backward follows it
            _, kern = _run(tm, em, x, packed, batch_first, h0c0)
        assert rnn._kernels == {}
        ran = spy["fwd"] - before["fwd"], spy["bwd"] - before["bwd"]
        if dtype == "float64":  # no float64 kernels: the NumPy path, bit for bit
            assert ran == (0, 0)
            for a, b in zip(kern, plain):
                np.testing.assert_array_equal(a, b)
            continue
        assert ran[0] == ran[1] == layers * d * T  # one call per step, each way
        assert len(kern) == len(plain) == len(ref)
        for k, (a, b, r) in enumerate(zip(kern, plain, ref)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"vs NumPy {k}")
            assert_close(ember.from_numpy(a), torch.from_numpy(r), dtype, f"vs torch {k}")


def test_forward_factors_and_backward_alone(table):
    # Either backward after either forward: the kernels' forward writes the NumPy path's
    # factors, and the kernels' backward on the NumPy forward's factors gives its gradients
    kern = table[(np, np.dtype(np.float32))]
    steps, hp_all, fin = rnn._plan(np, (B,) * T, False)
    rng = np.random.default_rng(3)

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)
    x, w_ih, w_hh, b_ih, b_hh = f32(T * B, I), f32(4 * H, I), f32(4 * H, H), f32(4 * H), \
        f32(4 * H)
    h0, c0 = f32(B, H), f32(B, H)
    args = (np, x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, steps, hp_all, fin, True)
    outs_n, keep_n = rnn._lstm_forward(*args)
    outs_n = [a.copy() for a in outs_n]
    keep_n = [a.copy() for a in keep_n if a is not None]
    outs_k, keep_k = rnn._lstm_forward(*args, kern)
    for a, b in zip(outs_k, outs_n):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keep_k[1], keep_n[1], rtol=1e-5, atol=1e-6)  # P
    arrs = [x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, outs_n[0]] + keep_n + [None]
    dy, dhN, dcN = f32(T * B, H), f32(B, H), f32(B, H)
    need = (True,) * 7 + (False,)
    g_n = rnn._lstm_backward(np, need, arrs, dy, dhN, dcN, steps, hp_all, fin)
    g_n = [None if g is None else g._data.copy() for g in g_n]
    g_k = rnn._lstm_backward(np, need, arrs, dy, dhN, dcN, steps, hp_all, fin, kern)
    for a, b in zip(g_k, g_n):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a._data, b, rtol=1e-5, atol=1e-5)


def test_no_grad_forward(table, spy):
    # Without recording the kernels skip the factors (P is a placeholder)
    tm, em = build("LSTM", "float32", input_size=I, hidden_size=H, num_layers=2)
    x = ember.from_numpy(np.random.default_rng(0).standard_normal((T, B, I)).astype("f4"))
    with ember.no_grad():
        y0, (h0, c0) = em(x)
        with rnn.step_kernels(table):
            y1, (h1, c1) = em(x)
    assert spy["fwd"] == 2 * T and spy["bwd"] == 0
    for a, b in ((y1, y0), (h1, h0), (c1, c0)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def _lm(seed=0):
    """An LSTM language model's loss (embedding, 2-layer LSTM, head, cross-entropy)."""
    ember.manual_seed(seed)
    nn = ember.nn
    model = nn.ModuleDict({"emb": nn.Embedding(11, 6), "lstm": nn.LSTM(6, 8, num_layers=2),
                           "head": nn.Linear(8, 11)})
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 11, (T + 1, B))
    x = ember.from_numpy(tokens[:-1].copy())
    y = ember.from_numpy(tokens[1:].reshape(-1).copy())

    def loss(x, y):
        out, _ = model["lstm"](model["emb"](x))
        return ember.nn.functional.cross_entropy(model["head"](out).reshape(-1, 11), y)
    return model, loss, x, y


@pytest.mark.parametrize("whole", [False, True])
def test_compile_option_trains_as_numpy_path(spy, whole):
    # ember.compile(options={"numba": True}): the compiled region's LSTM node runs the kernels
    # (forward in the call, backward after it or, compiling the whole step, inside it) and
    # trains as the default compile
    runs = []
    for options in (None, {"numba": True}):
        model, loss, x, y = _lm()
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)

        def train(x, y):
            opt.zero_grad()
            out = loss(x, y)
            out.backward()
            opt.step()
            return out
        f = ember.compile(train if whole else loss, options=options)
        losses = kernelcheck.train(f, opt, x, y, 4, whole)
        assert rnn._kernels == {}  # the switch is off again between calls
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    assert spy["fwd"] == spy["bwd"] == 4 * 2 * T
    (l0, p0), (l1, p1) = runs
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_copy_keeps_the_option(spy):
    lstm = ember.nn.LSTM(I, H)
    f = copy.deepcopy(ember.compile(lambda x: lstm(x)[0].sum(), options={"numba": True}))
    f(ember.randn(T, B, I, requires_grad=True)).backward()
    assert spy["fwd"] == spy["bwd"] == T


def test_switch_restored_when_the_call_raises(spy):
    lstm = ember.nn.LSTM(I, H)

    def bad(x):
        y, _ = lstm(x)
        return y + ember.ones(3)  # (T, B, H) + (3,): a shape error after the LSTM ran
    f = ember.compile(bad, options={"numba": True})
    x = ember.randn(T, B, I)
    with pytest.raises(RuntimeError):
        f(x)
    assert rnn._kernels == {} and spy["fwd"] == T


def test_float32_tanh_accuracy():
    # the kernels' tanh (a rational function): within 6 ulp of the exact value, |tanh| <= 1
    from ember.ops import _numba_rnn as K

    @numba.njit(error_model="numpy", fastmath=K._OPTS["fastmath"])  # as the kernels compile it
    def apply(a, out):
        for k in range(a.shape[0]):
            out[k] = K._tanh(a[k])
    x = np.concatenate([np.linspace(-12, 12, 400_001, dtype=np.float32),
                        np.float32([0, -0.0, 1e-30, 1e-8, 5e-4, 9.0, 20, -20, np.inf, -np.inf,
                                    np.nan])])
    got = np.empty_like(x)
    apply(x, got)
    assert np.isnan(got[-1])  # NaN goes through, as NumPy's
    x, got = x[:-1], got[:-1]
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    err = np.abs(got - exact) / ulp
    assert err.max() <= 6 and err.mean() < 1
    assert np.all(np.abs(got) <= 1)


def test_missing_numba_names_the_extra(monkeypatch):
    # without numba the option fails at ember.compile with the extra's name
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "ember.ops._numba_rnn", raising=False)
    monkeypatch.delattr(ember.ops, "_numba_rnn", raising=False)
    with pytest.raises(ImportError, match=r"ember\[numba\]"):
        ember.compile(lambda x: x * 2, options={"numba": True})
    with pytest.raises(ImportError, match="numba"):
        rnn.numba_kernels()


def test_numba_not_imported_by_default():
    # import ember, and compiling and running an LSTM without the option, never import numba
    code = ("import sys, ember\n"
            "m = ember.nn.LSTM(3, 4)\n"
            "f = ember.compile(lambda x: m(x)[0].sum())\n"
            "x = ember.randn(5, 2, 3, requires_grad=True)\n"
            "for _ in range(2): f(x).backward()\n"
            "assert 'numba' not in sys.modules, 'numba imported'\n"
            "assert 'ember.ops._numba_rnn' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
