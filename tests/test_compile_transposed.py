"""F-ordered linear chains in compiled training regions (NOTE [ Transposed activations ] in
ember/ops/linalg.py): which chains the generated code transposes, their numbers against the
same region without them, eager ember and torch (forward, gradients, 20-step trajectories),
and that nothing a caller receives is F-ordered or a reused buffer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember._functorch import aot_autograd
from ember.ops.linalg import mm_t
from compilecheck import region_backend

LR = 0.05


@pytest.fixture(autouse=True)
def _fresh_cache():
    ember.compiler.reset()
    yield
    ember.compiler.reset()


def _mlp(lib, sizes, dtype, seed=0):
    """``Sequential(Linear, ReLU, ..., Linear)`` with the same weights in ember and torch."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        lin = lib.nn.Linear(k, n, dtype=getattr(lib, dtype))
        with lib.no_grad():
            lin.weight.copy_(lib.from_numpy(rng.uniform(-1, 1, (n, k)).astype(dtype) / k ** .5))
            lin.bias.copy_(lib.from_numpy(rng.uniform(-0.1, 0.1, n).astype(dtype)))
        layers.append(lin)
        if i + 2 < len(sizes):
            layers.append(lib.nn.ReLU())
    return lib.nn.Sequential(*layers)


_recording_backend = region_backend


def _data(m, sizes, seed=1, dtype="float32"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, sizes[0])).astype(dtype)
    t = rng.integers(0, sizes[-1], m)
    return x, t


def _train(lib, model, step_fn, x, t, steps):
    """``steps`` SGD steps (``p.add_(p.grad, alpha=-LR)``, grads set to None): the losses."""
    losses = []
    params = list(model.parameters())
    for _ in range(steps):
        loss = step_fn(x, t)
        loss.backward()
        with lib.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        losses.append(float(loss.detach()))
    return losses, [p.detach().numpy().copy() for p in params]


@pytest.mark.parametrize("m", [128, 64, 16])
def test_mlp_trajectory_equals_eager_and_torch(m):
    """20 SGD steps of a 784-512-256-10 MLP (the bench's mlp_step_nn shape) compiled with
    F-ordered chains: losses and weights within float32 rounding of eager ember and torch."""
    sizes = (784, 512, 256, 10)
    xa, ta = _data(m, sizes)
    made = []
    res = {}
    for kind in ("compiled", "eager", "torch"):
        lib = torch if kind == "torch" else ember
        model = _mlp(lib, sizes, "float32")
        lf = lib.nn.CrossEntropyLoss()
        fn = lambda x, t: lf(model(x), t)  # noqa: E731
        if kind == "compiled":
            fn = ember.compile(fn, backend=_recording_backend(made))
        x, t = lib.from_numpy(xa), lib.from_numpy(ta)
        res[kind] = _train(lib, model, fn, x, t, 20)
    fsrc, bsrc = made[0].forward_src, made[0].backward_src
    # the two hidden layers' products; the second and third layers' input gradients, in each
    # of the backward's two bodies (every gradient given, or tested for None)
    assert fsrc.count("_fresh_mm_t(") == 2 and bsrc.count("_fresh_mm_t(") == 4, fsrc + bsrc
    assert fsrc.count(".T, out=") == 2  # relu against zeros of its own layout
    np.testing.assert_allclose(res["compiled"][0], res["eager"][0], rtol=1e-5)
    for a, b in zip(res["compiled"][1], res["eager"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # torch: its losses within rounding; its weights as close as eager ember's are (20 steps
    # at this rate amplify a unit's float differences to ~6e-6 on both)
    np.testing.assert_allclose(res["compiled"][0], res["torch"][0], rtol=1e-5)
    for c, e, t in zip(res["compiled"][1], res["eager"][1], res["torch"][1]):
        assert np.abs(c - t).max() <= np.abs(e - t).max() + 1e-6
        np.testing.assert_allclose(c, t, rtol=1e-4, atol=2e-5)


def test_off_switch_and_row_limit():
    """``_T_ROWS`` bounds the rows (a batch dim) that get F-ordered chains: 0 turns them off,
    and a batch above it keeps C order (OpenBLAS's transposed product is slower there)."""
    sizes = (96, 80, 64, 10)
    for m, rows, want in ((32, 128, True), (32, 0, False), (200, 128, False), (1, 128, False)):
        ember.compiler.reset()
        old = aot_autograd._T_ROWS
        aot_autograd._T_ROWS = rows
        try:
            made = []
            model = _mlp(ember, sizes, "float32")
            lf = ember.nn.CrossEntropyLoss()
            f = ember.compile(lambda x, t: lf(model(x), t), backend=_recording_backend(made))
            xa, ta = _data(m, sizes)
            f(ember.from_numpy(xa), ember.from_numpy(ta)).backward()
        finally:
            aot_autograd._T_ROWS = old
        assert ("_fresh_mm_t" in made[0].forward_src) == want, (m, rows)


def test_float64_keeps_c_order():
    """DGEMM has no such gap (NOTE [ GEMM layouts ]): float64 chains stay C-ordered."""
    made = []
    model = _mlp(ember, (96, 80, 64, 10), "float64")
    lf = ember.nn.CrossEntropyLoss()
    f = ember.compile(lambda x, t: lf(model(x), t), backend=_recording_backend(made))
    xa, ta = _data(32, (96, 80, 64, 10), dtype="float64")
    f(ember.from_numpy(xa), ember.from_numpy(ta)).backward()
    assert "_fresh_mm_t" not in made[0].forward_src


def _grads_vs_torch(build, m, sizes, want_t, outs=1, seed=0):
    """Compile ``build(lib, model)`` (a function of ``x`` returning ``outs`` tensors), run
    forward and a backward of the first output's sum; compare outputs, the input's and the
    parameters' gradients with torch; return the ember outputs and the region."""
    rng = np.random.default_rng(seed)
    xa = rng.standard_normal((m, sizes[0])).astype(np.float32)
    made = []
    got = {}
    for lib in (ember, torch):
        model = _mlp(lib, sizes, "float32", seed)
        fn = build(lib, model)
        if lib is ember:
            fn = ember.compile(fn, backend=_recording_backend(made))
        x = lib.from_numpy(xa.copy()).requires_grad_(True)
        for _ in range(2):  # the second call runs the generated code
            for p in model.parameters():
                p.grad = None
            x.grad = None
            out = fn(x)
            out = out if isinstance(out, tuple) else (out,)
            assert len(out) == outs
            out[0].sum().backward()
        got[lib.__name__] = (out, x.grad, [p.grad for p in model.parameters()])
    (eo, ex, ep), (to, tx, tp) = got["ember"], got["torch"]
    assert ("_fresh_mm_t" in made[0].forward_src) == want_t
    for a, b in zip(eo, to):
        assert a.is_contiguous() and tuple(a.stride()) == tuple(b.stride())
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=2e-5,
                                   atol=2e-6)
    assert ex.is_contiguous()
    np.testing.assert_allclose(ex.numpy(), tx.numpy(), rtol=2e-5, atol=2e-6)
    for a, b in zip(ep, tp):
        assert a.is_contiguous()
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6)
    return eo, made[0]


def test_input_gradient_and_outputs_are_c_contiguous():
    """An input that needs a gradient: its gradient (the first layer's dX, read from an
    F-ordered chain's gradient) and the region's output are C-contiguous, as torch's."""
    _grads_vs_torch(lambda lib, model: model, 48, (70, 96, 72, 12), True)


def test_returned_hidden_value_is_not_transposed():
    """A relu output the region returns is not F-ordered (nor the linear under it); the
    chain after it still may be."""
    def build(lib, model):
        def fn(x):
            h = model[1](model[0](x))
            return model[4](model[3](model[2](h))), h
        return fn
    _grads_vs_torch(build, 40, (70, 96, 72, 12), True, outs=2)


def test_relu_read_by_two_linears():
    """A relu read by two linears: both input gradients F-ordered, summed in one layout."""
    def build(lib, model):
        extra = lib.nn.Linear(96, 12)
        with lib.no_grad():
            extra.weight.copy_(lib.from_numpy(
                np.random.default_rng(5).uniform(-.1, .1, (12, 96)).astype(np.float32)))
            extra.bias.zero_()

        def fn(x):
            h = model[1](model[0](x))
            return model[4](model[3](model[2](h))) + extra(h)
        return fn
    _grads_vs_torch(build, 40, (70, 96, 72, 12), True)


def test_partial_backward_takes_the_other_body():
    """Two outputs, backward through one: the backward's body that tests for None gradients
    (its relu gradient into a fresh workspace array of the chain's layout)."""
    def build(lib, model):
        def fn(x):
            y = model(x)
            return y.sum(1), y * 2
        return fn
    _grads_vs_torch(build, 64, (70, 256, 128, 12), True, outs=2)


def test_results_never_alias_a_later_call():
    """Values and gradients handed out stay as they were after later calls (the F-ordered
    products come from the workspace; a block is reused only once nothing refers to it)."""
    sizes = (70, 96, 72, 12)
    model = _mlp(ember, sizes, "float32")
    f = ember.compile(model)
    rng = np.random.default_rng(3)
    kept = []
    for _ in range(4):
        x = ember.from_numpy(rng.standard_normal((32, 70)).astype(np.float32))
        y = f(x)
        y.sum().backward()
        g = model[0].weight.grad
        kept.append((y, y.detach().numpy().copy(), g, g.numpy().copy()))
        for p in model.parameters():
            p.grad = None
    for y, yv, g, gv in kept:
        np.testing.assert_array_equal(y.detach().numpy(), yv)
        np.testing.assert_array_equal(g.numpy(), gv)


def test_new_batch_size_recompiles_with_right_numbers():
    """A second batch size (a dynamic region) gives eager's numbers at both sizes."""
    sizes = (70, 96, 72, 12)
    cm, em = _mlp(ember, sizes, "float32"), _mlp(ember, sizes, "float32")
    f = ember.compile(cm)
    rng = np.random.default_rng(4)
    for m in (32, 16, 32, 8):
        xa = rng.standard_normal((m, 70)).astype(np.float32)
        got, want = f(ember.from_numpy(xa)), em(ember.from_numpy(xa))
        got.sum().backward()
        want.sum().backward()
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
        for a, b in zip(cm.parameters(), em.parameters()):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)
            a.grad = b.grad = None


@settings(max_examples=12, deadline=None)
@given(m=st.integers(2, 128), h1=st.integers(64, 160), h2=st.integers(1, 140),
       k=st.integers(1, 90))
def test_hypothesis_shapes(m, h1, h2, k):
    """Any batch within the limit and hidden sizes on either side of 64: torch's numbers."""
    ember.compiler.reset()
    _grads_vs_torch(lambda lib, model: model, m, (k, h1, h2, 7), True, seed=m + h1 + h2 + k)


@pytest.mark.parametrize("bias", [True, False])
def test_mm_t(bias):
    """``mm_t``: ``a @ b (+ add)`` F-ordered, into a given array in its layout."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 30)).astype(np.float32)
    w = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32) if bias else None
    want = a @ w.T + (b if bias else 0)
    r = mm_t(np, a, w.T, b)
    assert r.flags.f_contiguous and not r.flags.c_contiguous
    np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-5)
    out = np.empty((20, 40), np.float32)
    assert mm_t(np, a, w.T, b, out) is out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_create_graph_through_a_transposed_region():
    """``create_graph=True`` recomputes the region eagerly: second derivatives as eager's."""
    sizes = (30, 96, 72, 5)
    xa, ta = _data(16, sizes)
    res = []
    for comp in (True, False):
        ember.compiler.reset()
        model = _mlp(ember, sizes, "float32")
        lf = ember.nn.CrossEntropyLoss()
        fn = lambda x, t: lf(model(x), t)  # noqa: E731
        if comp:
            aot_autograd._CODE.clear()
            fn = ember.compile(fn)
        x, t = ember.from_numpy(xa), ember.from_numpy(ta)
        fn(x, t)  # capture
        loss = fn(x, t)
        if comp:
            assert any("_fresh_mm_t" in src for src in aot_autograd._CODE)
        w = model[2].weight
        (g,) = ember.autograd.grad(loss, (w,), create_graph=True)
        (gg,) = ember.autograd.grad((g * g).sum(), (w,))
        res.append((g.detach().numpy(), gg.numpy()))
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_whole_training_step_lowers_and_matches_eager_and_torch():
    """A compiled step that runs backward() and the SGD step itself: the capture's backward
    freed the nodes' saved tensors, which are saved again to trace the formulas
    (``CompiledRegion._resave``), so the region's ops are lowered (no linear called through
    its ctx) and its chains F-ordered; 20 steps equal eager ember's and torch's."""
    sizes = (96, 128, 80, 10)
    xa, ta = _data(64, sizes)
    res = {}
    for kind in ("compiled", "eager", "torch"):
        lib = torch if kind == "torch" else ember
        model = _mlp(lib, sizes, "float32")
        lf = lib.nn.CrossEntropyLoss()
        opt = lib.optim.SGD(model.parameters(), lr=LR)

        def train(x, t, model=model, lf=lf, opt=opt):
            opt.zero_grad()
            loss = lf(model(x), t)
            loss.backward()
            opt.step()
            return loss
        if kind == "compiled":
            aot_autograd._CODE.clear()
            train = ember.compile(train)
        x, t = lib.from_numpy(xa), lib.from_numpy(ta)
        losses = [float(train(x, t).detach()) for _ in range(20)]
        res[kind] = losses, [p.detach().numpy().copy() for p in model.parameters()]
    srcs = list(aot_autograd._CODE)
    assert any("_fresh_mm_t(" in s for s in srcs), srcs
    assert not any("C_addmm" in s or "C_relu" in s for s in srcs), srcs
    np.testing.assert_allclose(res["compiled"][0], res["eager"][0], rtol=1e-5)
    np.testing.assert_allclose(res["compiled"][0], res["torch"][0], rtol=1e-5)
    for c, e, t in zip(res["compiled"][1], res["eager"][1], res["torch"][1]):
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-6)
        assert np.abs(c - t).max() <= np.abs(e - t).max() + 1e-6


def test_whole_training_step_with_dropout_keeps_called_ops():
    """A step that draws random numbers is not run again to be saved (its draws would
    differ): its ops stay called through their contexts, with eager's numbers."""
    sizes = (40, 96, 72, 6)
    xa, ta = _data(32, sizes)
    res = []
    for comp in (True, False):
        ember.manual_seed(3)
        model = _mlp(ember, sizes, "float32")
        drop = ember.nn.Dropout(0.25)
        lf = ember.nn.CrossEntropyLoss()
        opt = ember.optim.SGD(model.parameters(), lr=LR)

        def train(x, t, model=model, lf=lf, opt=opt, drop=drop):
            opt.zero_grad()
            loss = lf(model(drop(x)), t)
            loss.backward()
            opt.step()
            return loss
        if comp:
            aot_autograd._CODE.clear()
            train = ember.compile(train)
        ember.manual_seed(4)
        x, t = ember.from_numpy(xa), ember.from_numpy(ta)
        losses = [float(train(x, t).detach()) for _ in range(5)]
        res.append((losses, [p.detach().numpy().copy() for p in model.parameters()]))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-5)
    for a, b in zip(res[0][1], res[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
