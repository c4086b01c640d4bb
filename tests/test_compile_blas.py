"""Batch-1 linears of compiled code as one BLAS GEMV (NOTE [ Batch-1 linear by GEMV ] in
ember/ops/_blas.py): the kernel against NumPy's product, and compiled batch-1 models against
eager ember (the same GEMV with the bias as its update: within an ulp, and at the MLP's
float32 shapes the same bits on this machine's kernels) and torch."""
import numpy as np
import pytest
import torch

import ember
from ember.ops import _blas as B

HAVE = B.gemv_fn("f") is not None
needs_blas = pytest.mark.skipif(not HAVE, reason="NumPy without its bundled OpenBLAS")
SIZES = [(512, 784), (256, 512), (10, 256), (3, 5), (7, 2)]


def _eager(x, w, b):
    """Eager linear's numbers: NumPy's product, then the bias."""
    y = np.matmul(x, w.T)
    return y if b is None else y + b


def _close(got, want):
    """Within a rounding or two of eager's product-then-bias (the kernel's update may round
    the bias in before the dot's last term)."""
    tol = 1e-6 if got.dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def _fallback(calls):
    def fb(x, w, b, out):
        calls.append(1)
        if out.flags.writeable:
            out[...] = _eager(x, w, b)
        return out
    return fb


@needs_blas
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("n,k", SIZES)
@pytest.mark.parametrize("bias", [True, False])
def test_row_equals_numpys_product_and_bias(dt, n, k, bias):
    rng = np.random.default_rng(n * k)
    w = rng.standard_normal((n, k)).astype(dt)
    b = rng.standard_normal(n).astype(dt) if bias else None
    calls = []
    f = B.linear_row(np.dtype(dt).char, _fallback(calls))
    out = np.full((1, n), np.nan, dt)
    for step in range(3):  # new inputs each call, the same weight and destination
        x = rng.standard_normal((1, k)).astype(dt)
        assert f(x, w, b, out) is out
        _close(out, _eager(x, w, b))
    assert not calls


@needs_blas
def test_row_sees_new_arrays_and_in_place_writes():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((6, 4)), rng.standard_normal(6)
    x, out = rng.standard_normal((1, 4)), np.empty((1, 6))
    f = B.linear_row("d", _fallback([]))
    f(x, w, b, out)
    w *= 2.0  # in place: same pointer, new values
    x[0, 1] = 5.0
    _close(f(x, w, b, out), _eager(x, w, b))
    w2 = rng.standard_normal((6, 4))  # a new array: its own pointer
    _close(f(x, w2, b, out), _eager(x, w2, b))
    out2 = np.empty((1, 6))
    f(x, w2, None, out2)
    _close(out2, _eager(x, w2, None))
    _close(out, _eager(x, w2, b))  # the old destination untouched


@needs_blas
def test_row_strided_and_read_only_operands():
    rng = np.random.default_rng(1)
    calls = []
    f = B.linear_row("f", _fallback(calls))
    big = rng.standard_normal((8, 12)).astype(np.float32)
    w = big[:5, :6]  # row stride 12, unit column stride: a GEMV with lda = 12
    xs = rng.standard_normal((1, 12)).astype(np.float32)[:, ::2]  # incx = 2
    ro = rng.standard_normal((1, 6)).astype(np.float32)
    ro.flags.writeable = False  # not a writable buffer: its pointer read another way
    for x in (xs, ro):
        out = np.empty((1, 5), np.float32)
        _close(f(x, w, None, out), _eager(x, w, None))
    assert not calls
    # what one GEMV cannot take goes to the fallback: a transposed weight, the wrong dtype,
    # a strided or read-only destination, a destination over the input, inner size 1
    x = rng.standard_normal((1, 6)).astype(np.float32)
    wt = np.asfortranarray(rng.standard_normal((5, 6)).astype(np.float32))
    f(x, wt, None, np.empty((1, 5), np.float32))
    f(x, w.astype(np.float64), None, np.empty((1, 5), np.float32))
    f(x, w, None, np.empty((1, 10), np.float32)[:, ::2])
    frozen = np.empty((1, 5), np.float32)
    frozen.flags.writeable = False
    f(x, w, None, frozen)
    both = np.empty((1, 6), np.float32)
    f(both, rng.standard_normal((6, 6)).astype(np.float32), None, both)
    f(x[:, :1], w[:, :1], None, np.empty((1, 5), np.float32))
    assert len(calls) == 6


def test_without_the_bundled_blas_nothing_is_made(monkeypatch):
    monkeypatch.setattr(B, "_gemv_found", {"f": None, "d": None})
    assert B.linear_row("f", None) is None


def _mlp(lib, dt, rng):
    model = lib.nn.Sequential(lib.nn.Linear(784, 512), lib.nn.ReLU(), lib.nn.Linear(512, 256),
                              lib.nn.ReLU(), lib.nn.Linear(256, 10)).to(getattr(lib, dt))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)) * 0.05,
                               dtype=getattr(lib, dt)))
    return model


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("blas", [True, False])
def test_compiled_batch_one_mlp_is_eagers_bits(dt, blas, monkeypatch):
    if not blas:
        monkeypatch.setattr(B, "_gemv_found", {"f": None, "d": None})
    ember.compiler.reset()
    rng = np.random.default_rng(3)
    model = _mlp(ember, dt, rng).eval()
    tmodel = _mlp(torch, dt, np.random.default_rng(3)).eval()
    cm = ember.compile(model)
    from ember._functorch.aot_autograd import CompiledRegion
    made = []
    init = CompiledRegion.__init__

    def spy(self, *a, **k):
        init(self, *a, **k)
        made.append(self)
    monkeypatch.setattr(CompiledRegion, "__init__", spy)
    kept = []
    with ember.inference_mode():
        for step in range(4):
            xa = rng.standard_normal((1, 784))
            x = ember.tensor(xa, dtype=getattr(ember, dt))
            got, ref = cm(x), model(x)
            _close(got.numpy(), ref.numpy())
            if dt == "float32" and blas:  # the same bits here (not promised on every CPU)
                np.testing.assert_array_equal(got.numpy(), ref.numpy())
            kept.append((got, got.numpy().copy()))
            with torch.inference_mode():
                want = tmodel(torch.tensor(xa, dtype=getattr(torch, dt)))
            tol = 1e-5 if dt == "float32" else 1e-12
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=tol, atol=tol)
    for t, v in kept:  # a returned tensor never aliases a buffer a later call writes
        np.testing.assert_array_equal(t.numpy(), v)
    assert len(made) == 1
    src = made[0].forward_src
    assert (src.count("_row_addmm") == 3) == blas, src
    assert ".copy()" in src if blas else "_fresh_mm" in src
    # the caller's input is copied into a buffer (its pointer read once, not per call)
    assert ("_put(" in src) == blas


@needs_blas
def test_compiled_rows_take_strided_and_fresh_inputs():
    """A strided batch-1 input (a column slice) and an input that is a fresh value each call
    (relu's output kept for backward) are copied into a buffer before the GEMV."""
    ember.compiler.reset()
    rng = np.random.default_rng(8)
    model = _mlp(ember, "float32", rng)
    cm = ember.compile(model)
    for step in range(3):
        wide = ember.tensor(rng.standard_normal((1, 1568)), dtype=ember.float32)
        x = wide[:, ::2]  # strides (6272, 8)
        for p in model.parameters():
            p.grad = None
        cm(x).sum().backward()
        got = [p.grad.numpy().copy() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        ref = model(x)
        ref.sum().backward()
        _close(cm(x).detach().numpy(), ref.detach().numpy())
        for g, p in zip(got, model.parameters()):
            _close(g, p.grad.numpy())


@needs_blas
def test_compiled_rows_read_parameters_at_each_call():
    ember.compiler.reset()
    rng = np.random.default_rng(4)
    model = _mlp(ember, "float32", rng).eval()
    cm = ember.compile(model)
    x = ember.tensor(rng.standard_normal((1, 784)), dtype=ember.float32)
    with ember.inference_mode():
        for k in range(6):
            if k == 2:
                with ember.no_grad():
                    model[0].weight.mul_(0.5)  # in place
            if k == 3:
                model[2].weight.data = ember.randn(256, 512) * 0.05  # re-pointed
            if k == 4:  # a transposed layout (strides (4, 1024)): the product's general path
                model[2].weight.data = (ember.randn(512, 256) * 0.05).t()
            if k == 5:
                model[4].bias.data = ember.randn(10)
            _close(cm(x).numpy(), model(x).numpy())


@needs_blas
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_compiled_batch_one_training_equals_eager(dt):
    """A batch-1 training step: the forward's rows by GEMV, gradients and a 5-step trajectory
    equal eager ember's (rtol 1e-5) and torch's."""
    ember.compiler.reset()
    out = {}
    for name in ("eager", "compiled", "torch"):
        lib = torch if name == "torch" else ember
        rng = np.random.default_rng(5)
        model = _mlp(lib, dt, rng)
        data = [(lib.tensor(rng.standard_normal((1, 784)), dtype=getattr(lib, dt)),
                 lib.tensor([int(rng.integers(10))])) for _ in range(5)]
        loss_fn = lib.nn.CrossEntropyLoss()
        f = (lambda x, t: loss_fn(model(x), t))
        if name == "compiled":
            f = ember.compile(f)
        opt = lib.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for x, t in data:
            opt.zero_grad()
            loss = f(x, t)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out[name] = losses, [p.detach().numpy().copy() for p in model.parameters()]
    tol = 1e-5 if dt == "float32" else 1e-10
    for name in ("compiled", "torch"):
        np.testing.assert_allclose(out[name][0], out["eager"][0], rtol=tol)
        for a, b in zip(out[name][1], out["eager"][1]):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@needs_blas
@pytest.mark.parametrize("dynamic", [None, True])
def test_batch_one_among_other_batch_sizes(dynamic):
    """A graph seen at batch 1 and at other sizes (automatic dynamic, dynamic=True): every
    size computes eager's numbers, whichever region (GEMV rows or GEMMs) runs it."""
    ember.compiler.reset()
    rng = np.random.default_rng(6)
    model = _mlp(ember, "float32", rng).eval()
    cm = ember.compile(model, dynamic=dynamic)
    with ember.no_grad():
        for n in (1, 3, 1, 5, 2, 1):
            x = ember.tensor(rng.standard_normal((n, 784)), dtype=ember.float32)
            _close(cm(x).numpy(), model(x).numpy())


@needs_blas
def test_rows_from_two_threads():
    """Two threads calling one compiled batch-1 model: each call takes its own buffer set
    and the row functions' remembered pointers stay consistent."""
    import threading
    ember.compiler.reset()
    rng = np.random.default_rng(7)
    model = _mlp(ember, "float32", rng).eval()
    cm = ember.compile(model)
    xs = [ember.tensor(rng.standard_normal((1, 784)), dtype=ember.float32) for _ in range(4)]
    with ember.inference_mode():
        want = [model(x).numpy() for x in xs]
        cm(xs[0])
    bad = []

    def work(k):
        with ember.inference_mode():
            for i in range(200):
                j = (i + k) % 4
                got = cm(xs[j]).numpy()
                if not np.allclose(got, want[j], rtol=1e-6, atol=1e-6):
                    bad.append((k, i))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad
