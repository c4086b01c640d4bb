"""Convolution + eval batch norm (+ residual add) (+ ReLU) as one node in compiled inference
graphs (NOTE [ Batch norm into convolution ] in ``_functorch/conv_fold.py``): equal to eager
and to PyTorch to float32 rounding, on every shape of chain (bias or not, affine or not,
residual on either side, with and without ReLU, 1-d and 2-d, Winograd and GEMM layers),
Winograd's frozen weights recomputed after every kind of write into the weights or the
statistics, and nothing folded where gradients are wanted or batch norm trains."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from compilecheck import compile_keeping
from ember._functorch import conv_fold

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _net(t, dim=2, conv_bias=False, affine=True, c=64):
    """A small ResNet stage over ``t`` (torch or ember): conv-bn-relu, conv-bn + shortcut
    -relu, a 1x1 conv-bn shortcut read first by the add (``shortcut + bn``), a conv-bn with
    neither; ``c`` channels on 16-wide maps (Winograd from 64 channels, GEMMs below)."""
    nn = t.nn
    Conv, BN = (nn.Conv1d, nn.BatchNorm1d) if dim == 1 else (nn.Conv2d, nn.BatchNorm2d)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = Conv(3, c, 3, padding=1, bias=conv_bias), BN(c, affine=affine)
            self.c2, self.b2 = Conv(c, c, 3, padding=1, bias=conv_bias), BN(c, affine=affine)
            self.c3, self.b3 = Conv(c, c, 3, padding=1, bias=conv_bias), BN(c, affine=affine)
            self.d, self.bd = Conv(c, c, 1, bias=conv_bias), BN(c, affine=affine)
            self.c4, self.b4 = Conv(c, c, 3, padding=1, bias=conv_bias), BN(c, affine=affine)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            a = self.relu(self.b1(self.c1(x)))
            b = self.b2(self.c2(a))
            b += a                            # in place: dataflow after functionalize
            b = self.relu(b)
            e = self.relu(self.bd(self.d(b)) + self.b3(self.c3(b)))  # shortcut first
            return self.b4(self.c4(e))        # no add, no relu

    return Net()


def _pair(dim=2, **kw):
    """The same network in torch and ember, with random batch-norm statistics and affine
    parameters (eval batch norm on fresh statistics would be nearly the identity)."""
    torch.manual_seed(0)
    tm = _net(torch, dim, **kw)
    g = np.random.default_rng(1)
    with torch.no_grad():
        for mod in tm.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.copy_(torch.from_numpy(g.uniform(-0.5, 0.5, mod.num_features)))
                mod.running_var.copy_(torch.from_numpy(g.uniform(0.5, 2.0, mod.num_features)))
                if mod.affine:
                    mod.weight.copy_(torch.from_numpy(g.uniform(0.5, 1.5, mod.num_features)))
                    mod.bias.copy_(torch.from_numpy(g.uniform(-0.3, 0.3, mod.num_features)))
    em = _net(ember, dim, **kw)
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    return tm.eval(), em.eval()


_compiled = compile_keeping


def _folded(regions) -> list:
    return [n for r in regions for n in r.gm.graph.nodes
            if getattr(n.target, "__name__", "") == "conv_bn_eval"]


def _close(got, want, rel):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.abs(got - want).max() <= rel * np.abs(want).max()


def _x(dim, dtype="float32", n=2):
    shape = (n, 3, 16) if dim == 1 else (n, 3, 16, 16)
    return np.random.default_rng(2).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dim, kw", [
    (2, {}),
    (2, {"conv_bias": True}),
    (2, {"affine": False}),
    (2, {"c": 16}),                    # below Winograd's channels: GEMMs, scale on the weights
    (1, {"conv_bias": True}),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_folded_inference_equals_eager_and_torch(dim, kw, dtype):
    tm, em = _pair(dim, **kw)
    if dtype == "float64":
        tm, em = tm.double(), em.double()
    x = _x(dim, dtype)
    f, regions = _compiled(em)
    with ember.no_grad():
        want = em(ember.from_numpy(x)).numpy()
        f(ember.from_numpy(x))
        got = f(ember.from_numpy(x)).numpy()
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    nodes = _folded(regions)
    assert len(nodes) == 5
    # relu after bn, add + relu, add (shortcut first) + relu, the shortcut's bn alone, bn alone
    assert sorted((n.args[9] is not None, n.args[10]) for n in nodes) == \
        [(False, False), (False, False), (False, True), (True, True), (True, True)]
    names = {getattr(n.target, "__name__", "") for r in regions for n in r.gm.graph.nodes}
    assert not names & {"native_batch_norm", "relu", "convolution"}
    rel = 1e-12 if dtype == "float64" else 1e-5  # (Winograd F(4x4): ~5e-6 a layer)
    _close(got, want, rel)
    _close(got, ref, rel if dtype == "float64" else 5e-5)  # (eager's own Winograd error)


def test_inference_mode_folds_too():
    _, em = _pair()
    x = ember.from_numpy(_x(2))
    f, regions = _compiled(em)
    with ember.inference_mode():
        want = em(x).numpy()
        f(x)
        got = f(x).numpy()
    assert len(_folded(regions)) == 5
    _close(got, want, 1e-5)


def _frozen(regions):
    return [n.args[-1] for n in _folded(regions)]


def test_winograd_weights_are_frozen_across_calls():
    _, em = _pair()
    x = ember.from_numpy(_x(2))
    f, regions = _compiled(em)
    with ember.no_grad():
        f(x)
        f(x)
        us = [fr.state[2] for fr in _frozen(regions) if fr.state is not None]
        f(x)
        again = [fr.state[2] for fr in _frozen(regions) if fr.state is not None]
    assert len(us) == 3  # c2, c3, c4: 64 -> 64 3x3 on 16x16 (c1 reads 3 channels)
    assert all(a is b for a, b in zip(us, again))


def _write_numpy(em):
    em.c2.weight.detach().numpy()[0] *= 1.5  # no version bump


def _write_data(em):
    em.c3.weight.data.mul_(0.5)


def _write_stats(em):
    em.b4.running_var.numpy()[:] *= 2.0  # a buffer written under the graph's feet


def _write_bn_weight(em):
    with ember.no_grad():
        em.b2.weight.mul_(-1.0)


def _assign(em):
    em.c4.weight = ember.nn.Parameter(em.c4.weight.detach() * 0.25)


@pytest.mark.parametrize("write", [_write_numpy, _write_data, _write_stats, _write_bn_weight,
                                   _assign])
def test_writes_into_weights_or_statistics_are_seen(write):
    _, em = _pair()
    x = ember.from_numpy(_x(2))
    f, regions = _compiled(em)
    with ember.no_grad():
        f(x)
        f(x)
        write(em)
        got = f(x).numpy()
        want = em(x).numpy()
    _close(got, want, 1e-5)


def test_no_frozen_weights_past_the_budget(monkeypatch):
    monkeypatch.setattr(conv_fold, "CACHE_BYTES", 0)
    _, em = _pair()
    x = ember.from_numpy(_x(2))
    f, regions = _compiled(em)
    with ember.no_grad():
        f(x)
        got = f(x).numpy()
        want = em(x).numpy()
    assert all(fr.state is None for fr in _frozen(regions))
    _close(got, want, 1e-5)


def test_eval_with_gradients_is_not_folded():
    tm, em = _pair()
    x = _x(2)
    f, regions = _compiled(em)
    xe = ember.from_numpy(x).requires_grad_()
    f(xe)
    out = f(xe)
    out.sum().backward()
    assert not _folded(regions)
    xt = torch.from_numpy(x).requires_grad_()
    tm(xt).sum().backward()
    _close(xe.grad.numpy(), xt.grad.numpy(), 5e-5)
    _close(em.c2.weight.grad.numpy(), tm.c2.weight.grad.numpy(), 5e-5)


def test_training_batch_norm_is_not_folded():
    _, em = _pair()
    em.train()
    x = ember.from_numpy(_x(2))
    f, regions = _compiled(em)
    with ember.no_grad():
        f(x)
    assert not _folded(regions)


def test_a_half_input_is_not_folded():
    _, em = _pair()
    em = em.to(ember.bfloat16)
    x = ember.from_numpy(_x(2)).to(ember.bfloat16)
    f, regions = _compiled(em)
    with ember.no_grad():
        got = f(x).float().numpy()
        want = em(x).float().numpy()
    assert not _folded(regions)
    _close(got, want, 1e-2)


def test_the_folded_node_has_no_backward():
    with pytest.raises(RuntimeError, match="need no gradient"):
        conv_fold._ConvBnEval.backward(None, None)


@pytest.mark.parametrize("dynamic", [None, True])
def test_new_batch_sizes_fold_and_equal_eager(dynamic):
    _, em = _pair()
    f = ember.compile(em, dynamic=dynamic)
    with ember.no_grad():
        for n in (2, 3, 5, 2):
            x = ember.from_numpy(_x(2, n=n))
            _close(f(x).numpy(), em(x).numpy(), 1e-5)


def _train(em, f, x, y, steps=3):
    opt = ember.optim.SGD(em.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ember.nn.functional.mse_loss(f(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().numpy().copy() for p in em.parameters()]


@pytest.mark.parametrize("c", [64, 16])  # Winograd's tiles, im2col/fold matrices
def test_training_keeps_the_convolution_work_for_the_weight_gradient(c, monkeypatch):
    from ember.ops import conv as _conv
    made = {"n": 0}
    for name in ("_fold_cols", "_im2col", "_wino_in", "_bl_cols"):
        fn = getattr(_conv, name)

        def counted(*a, _fn=fn, **k):
            made["n"] += 1
            return _fn(*a, **k)
        monkeypatch.setattr(_conv, name, counted)
    x = ember.from_numpy(_x(2))
    y = ember.from_numpy(np.random.default_rng(3).standard_normal((2, c, 16, 16)).astype(
        "float32"))
    runs = []
    for compiled in (False, True):
        _, em = _pair(c=c)
        em.train()
        f, regions = _compiled(em) if compiled else (em, [])
        _train(em, f, x, y, steps=2)  # (the capture, and the first compiled call)
        made["n"] = 0
        runs.append(_train(em, f, x, y) + (made["n"],))
    (le, pe, ne), (lc, pc, nc) = runs
    keep = [n for r in regions for n in r.gm.graph.nodes if
            getattr(getattr(n.target, "_fn", None), "__self__", None) is conv_fold._ConvKeep]
    assert nc == ne  # no work array made twice
    assert len(keep) == 5
    np.testing.assert_allclose(lc, le, rtol=1e-6)
    for a, b in zip(pc, pe):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_frozen_input_convolution_is_lowered():
    _, em = _pair()
    for p in em.parameters():
        p.requires_grad_(False)
    x = ember.from_numpy(_x(2)).requires_grad_()
    f, regions = _compiled(em.train())
    f(x).sum().backward()
    want = x.grad.numpy().copy()
    x.grad = None
    f(x).sum().backward()
    assert not any(getattr(getattr(n.target, "_fn", None), "__self__", None) is
                   conv_fold._ConvKeep for r in regions for n in r.gm.graph.nodes)
    _close(x.grad.numpy(), want, 1e-6)


@pytest.mark.parametrize("groups", [1, 8, 32])  # dense, grouped, depthwise (MobileNet's)
def test_grouped_and_strided_convolutions_fold(groups):
    def net(t):
        nn = t.nn
        return nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=groups,
                                       bias=False), nn.BatchNorm2d(32), nn.ReLU6(),
                             nn.Conv2d(32, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
    torch.manual_seed(0)
    tm = net(torch)
    with torch.no_grad():
        for mod in tm.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.5, 2.0)
                mod.running_mean.uniform_(-0.5, 0.5)
    em = net(ember)
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    tm.eval()
    em.eval()
    x = np.random.default_rng(5).standard_normal((2, 32, 12, 12)).astype("float32")
    f, regions = _compiled(em)
    with ember.no_grad():
        f(ember.from_numpy(x))
        got = f(ember.from_numpy(x)).numpy()
        want = em(ember.from_numpy(x)).numpy()
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    nodes = _folded(regions)
    assert [n.args[10] for n in nodes] == [False, True]  # ReLU6 is not folded, ReLU is
    _close(got, want, 1e-5)
    _close(got, ref, 1e-5)
