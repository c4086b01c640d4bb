"""Layer norm's numba kernels (``ember.compile(options={"numba": True})``, NOTE [ Layer-norm
kernels ] in ``ops/normalization.py``, NOTE [ numba layer-norm kernels ] in
``ops/_numba_norm.py``) against PyTorch and the NumPy passes: forward, dx, dweight, dbias for
float32/float64, odd shapes, no affine, bias-less, inputs without grad, create_graph; the
cases that keep the NumPy path; and a compiled GPT-style training run equal to the default
compile.  numba is the ``numba`` extra, in the ``test`` one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import kernelcheck
from ember.ops import _kernels
from opcheck import assert_close

numba = pytest.importorskip("numba", reason="the numba extra is not installed")


@pytest.fixture(scope="module")
def table():
    return _kernels.numba_table()


@pytest.fixture
def spy(table, monkeypatch):
    """Counts of the kernels' calls."""
    kern = table[("layer_norm", np, np.dtype(np.float32))]
    return kernelcheck.spy_calls(monkeypatch, kern, ("fwd", "bwd"))


def _case(rng, shape, ns, dtype, affine, bias, mean=0.0, scale=1.0):
    x = (rng.standard_normal(shape) * scale + mean).astype(dtype)
    w = rng.standard_normal(ns).astype(dtype) if affine else None
    b = rng.standard_normal(ns).astype(dtype) if affine and bias else None
    g = rng.standard_normal(shape).astype(dtype)
    return x, w, b, g


def _run(lib, x, w, b, g, ns, eps, need=(True, True, True), kern=None):
    """(y, dx, dw, db) of layer norm in ``lib`` (ember under ``kern`` when given)."""
    def leaf(a, req):
        if a is None:
            return None
        t = lib.from_numpy(a.copy())
        return t.requires_grad_(req)
    tx, tw, tb = leaf(x, need[0]), leaf(w, need[1]), leaf(b, need[2])
    if kern is not None:
        with _kernels.use(kern):
            y = lib.nn.functional.layer_norm(tx, ns, tw, tb, eps)
    else:
        y = lib.nn.functional.layer_norm(tx, ns, tw, tb, eps)
    if any(t is not None and t.requires_grad for t in (tx, tw, tb)):
        y.backward(lib.from_numpy(g.copy()))
    return (y,) + tuple(None if t is None or not t.requires_grad else t.grad
                        for t in (tx, tw, tb))


SHAPES = [  # (input shape, normalized_shape)
    ((16, 64, 128), (128,)),    # GPT-mini's
    ((7, 5), (5,)),
    ((1, 1), (1,)),             # one element per row: var 0
    ((3, 4, 5), (4, 5)),        # two normalised axes
    ((33, 1000), (1000,)),
    ((2, 3, 17), (17,)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,ns", SHAPES)
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_kernels_match_torch(table, spy, dtype, shape, ns, affine, bias):
    # float32 against torch on the same numbers in float64: the kernels sum the weight and
    # bias gradients (1024 rows, much cancellation) in float64, more exactly than float32 sums
    rng = np.random.default_rng(len(shape) * 31 + shape[-1])
    x, w, b, g = _case(rng, shape, ns, dtype, affine, bias, mean=0.5, scale=2.0)
    up = [None if a is None else a.astype(np.float64) for a in (x, w, b, g)]
    ref = _run(torch, *up, ns, 1e-5)
    got = _run(ember, x, w, b, g, ns, 1e-5, kern=table)
    plain = _run(ember, x, w, b, g, ns, 1e-5)
    assert _kernels._table == {}
    assert spy == {"fwd": 1, "bwd": 1}
    for k, (e, t, p) in enumerate(zip(got, ref, plain)):
        assert (e is None) == (t is None) == (p is None)
        if e is None:
            continue
        assert e.dtype == p.dtype and e.shape == p.shape
        e, t, p = e.detach().numpy(), t.detach().numpy(), p.detach().numpy()
        if dtype == "float32":  # the plain path's float32 column sums err by up to ~1e-4
            np.testing.assert_allclose(e, t, rtol=2e-5, atol=2e-5, err_msg=f"vs torch {k}")
            np.testing.assert_allclose(e, p, rtol=1e-5, atol=1e-5 if k < 2 else 2e-4,
                                       err_msg=f"vs NumPy {k}")
        else:
            np.testing.assert_allclose(e, t, rtol=1e-12, atol=1e-12, err_msg=f"vs torch {k}")
            np.testing.assert_allclose(e, p, rtol=1e-12, atol=1e-12, err_msg=f"vs NumPy {k}")


@pytest.mark.parametrize("need", [(False, True, True), (True, False, False),
                                  (False, True, False), (False, False, True)])
def test_some_gradients(table, need):
    rng = np.random.default_rng(5)
    x, w, b, g = _case(rng, (6, 9), (9,), "float64", True, True)
    ref = _run(torch, x, w, b, g, (9,), 1e-5, need)
    got = _run(ember, x, w, b, g, (9,), 1e-5, need, kern=table)
    assert_close(tuple(a for a in got if a is not None), tuple(a for a in ref if a is not None))


def test_large_mean_and_eps(table):
    # rows whose mean is far beyond their spread (float32 holds x to ~1% of the spread): the
    # kernels' two-pass variance is as close to the exact result (torch in float64 on the
    # same numbers) as the NumPy path, which is closer than torch's float32
    rng = np.random.default_rng(2)
    for eps in (1e-5, 0.1):
        x, w, b, g = _case(rng, (8, 64), (64,), "float32", True, True, mean=1e4, scale=0.1)
        exact = _run(torch, *(a.astype(np.float64) for a in (x, w, b, g)), (64,), eps)
        got = _run(ember, x, w, b, g, (64,), eps, kern=table)
        plain = _run(ember, x, w, b, g, (64,), eps)
        for k in range(4):
            t = exact[k].detach().numpy()
            err = np.abs(got[k].detach().numpy() - t).max()
            assert err <= 1.5 * np.abs(plain[k].detach().numpy() - t).max() + 1e-4 * \
                np.abs(t).max(), k


def test_nan_and_inf_go_through(table):
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
    w = np.ones(3, np.float32)
    b = np.zeros(3, np.float32)
    g = np.ones((3, 3), np.float32)
    ref = _run(torch, x, w, b, g, (3,), 1e-5)
    got = _run(ember, x, w, b, g, (3,), 1e-5, kern=table)
    for e, t in zip(got, ref):
        np.testing.assert_array_equal(np.isnan(e.detach().numpy()), np.isnan(t.detach().numpy()))
    np.testing.assert_allclose(got[0].detach().numpy()[2], ref[0].detach().numpy()[2], rtol=1e-5)


def test_create_graph_after_kernel_forward(table):
    # create_graph takes the graph formula on the kernels' saved statistics: second
    # derivatives as torch's
    rng = np.random.default_rng(4)
    x, w, b, _ = _case(rng, (4, 6), (6,), "float64", True, True)
    outs = []
    for lib, kern in ((torch, None), (ember, table)):
        tx = lib.from_numpy(x.copy()).requires_grad_()
        tw = lib.from_numpy(w.copy()).requires_grad_()
        tb = lib.from_numpy(b.copy())
        if kern is not None:
            with _kernels.use(kern):
                y = lib.nn.functional.layer_norm(tx, (6,), tw, tb)
        else:
            y = lib.nn.functional.layer_norm(tx, (6,), tw, tb)
        gx, gw = lib.autograd.grad((y ** 3).sum(), (tx, tw), create_graph=True)
        outs.append((gx, gw) + lib.autograd.grad((gx * gx).sum() + gw.sum(), (tx, tw)))
    assert_close(outs[1], outs[0])


@pytest.mark.parametrize("why", ["half", "strided", "mixed dtype", "group norm"])
def test_other_inputs_keep_the_numpy_path(table, spy, why):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    with _kernels.use(table):
        if why == "half":
            y = ember.nn.functional.layer_norm(ember.from_numpy(x).half().requires_grad_(),
                                               (8,))
        elif why == "strided":
            y = ember.nn.functional.layer_norm(ember.from_numpy(x).t().requires_grad_(), (6,))
        elif why == "mixed dtype":
            y = ember.nn.functional.layer_norm(  # bfloat16 input, float32 parameters
                ember.from_numpy(x).bfloat16().requires_grad_(), (8,),
                ember.ones(8, requires_grad=True), ember.zeros(8, requires_grad=True))
        else:
            y = ember.nn.functional.group_norm(
                ember.from_numpy(x.reshape(2, 4, 6)).requires_grad_(), 2)
    y.float().sum().backward()
    assert spy == {"fwd": 0, "bwd": 0}


def test_no_grad_forward(table, spy):
    x = ember.randn(5, 7)
    with ember.no_grad(), _kernels.use(table):
        y = ember.nn.functional.layer_norm(x, (7,))
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x.numpy()), (7,))
    assert_close(y, ref, "float32")
    assert spy["fwd"] == 1


def _gpt(seed=0):
    """A small pre-norm Transformer LM (layer norms, causal attention, FF) and its loss."""
    ember.manual_seed(seed)
    nn = ember.nn
    model = nn.ModuleDict({
        "emb": nn.Embedding(13, 16),
        "enc": nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                          norm_first=True),
        "norm": nn.LayerNorm(16), "head": nn.Linear(16, 13)})
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 13, (4, 9))
    x = ember.from_numpy(tokens[:, :-1].copy())
    y = ember.from_numpy(tokens[:, 1:].reshape(-1).copy())
    mask = nn.Transformer.generate_square_subsequent_mask(8)

    def loss(x, y):
        h = model["enc"](model["emb"](x), src_mask=mask, is_causal=True)
        return ember.nn.functional.cross_entropy(model["head"](model["norm"](h)).reshape(-1, 13),
                                                 y)
    return model, loss, x, y


@pytest.mark.parametrize("whole", [False, True])
def test_compile_option_trains_as_default_compile(spy, whole):
    # the compiled region's layer norms run the kernels (forward in the call, backward after
    # it or, compiling the whole step, inside it); 20 steps within float32 rounding of the
    # default compile and of eager
    runs = []
    for options in ("eager", None, {"numba": True}):
        model, loss, x, y = _gpt()
        # SGD: Adam would scale the key bias's gradient, zero up to rounding (softmax does not
        # see it), to unit steps, so each run's rounding noise would move it differently
        opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def train(x, y):
            opt.zero_grad()
            out = loss(x, y)
            out.backward()
            opt.step()
            return out
        fn = train if whole else loss
        f = fn if options == "eager" else ember.compile(fn, options=options)
        losses = kernelcheck.train(f, opt, x, y, 20, whole)
        assert _kernels._table == {}  # the switch is off again between calls
        runs.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    # norm1, norm2 and the final norm each call; compiling may run a backward once more
    assert spy["fwd"] == 20 * 3 and 20 * 3 <= spy["bwd"] <= 21 * 3
    (l0, p0), (l1, p1), (l2, p2) = runs
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    np.testing.assert_allclose(l2, l0, rtol=1e-5)
    for a, b, c in zip(p2, p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


def test_missing_numba_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    for mod in ("_numba_norm", "_numba_attention"):
        monkeypatch.delitem(sys.modules, "ember.ops." + mod, raising=False)
        monkeypatch.delattr(ember.ops, mod, raising=False)
    with pytest.raises(ImportError, match=r"ember\[numba\]"):
        _kernels.numba_table()
    with pytest.raises(ImportError, match=r"ember\[numba\]"):
        ember.compile(lambda x: x * 2, options={"numba": True})


def test_numba_not_imported_by_default():
    import subprocess
    import sys
    code = ("import sys, ember\n"
            "m = ember.nn.LayerNorm(4)\n"
            "f = ember.compile(lambda x: m(x).sum())\n"
            "x = ember.randn(5, 4, requires_grad=True)\n"
            "for _ in range(2): f(x).backward()\n"
            "assert 'numba' not in sys.modules, 'numba imported'\n"
            "assert 'ember.ops._numba_norm' not in sys.modules\n"
            "assert 'ember.ops._numba_attention' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_read_only_arrays(table, spy):
    # the kernels take read-only inputs and parameters (a tensor over a read-only array)
    rng = np.random.default_rng(8)
    x, w, b, g = _case(rng, (5, 6), (6,), "float32", True, True)
    for a in (x, w, b):
        a.flags.writeable = False
    tx, tw, tb = (ember.from_numpy(a) for a in (x, w, b))
    with _kernels.use(table):
        y = ember.nn.functional.layer_norm(tx, (6,), tw, tb)
    ref = torch.nn.functional.layer_norm(*(torch.tensor(a) for a in (x,)), (6,),
                                         torch.tensor(w), torch.tensor(b))
    assert spy["fwd"] == 1
    assert_close(y, ref, "float32")
