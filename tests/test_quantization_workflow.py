"""The eager quantization workflow against torch.ao.quantization (x86 engine): static
post-training quantization of the digits CNN, dynamic Linear, observers, QAT, and the
torchao-style quantize_."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import ember

torch.backends.quantized.engine = "x86"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _cnn(m):
    nn, q = m.nn, m.ao.quantization
    return nn.Sequential(q.QuantStub(),
                         nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10), q.DeQuantStub())


def _twins(build):
    torch.manual_seed(0)
    tm = build(torch)
    for mod in tm.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features) + 0.5)
    em = build(ember)
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    return tm, em


X = np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32)
FUSE = [["1", "2", "3"], ["5", "6", "7"], ["10", "11"]]


@pytest.mark.parametrize("backend", ["x86", "qnnpack"])
def test_static_digits_cnn_matches_torch(backend):
    torch.backends.quantized.engine = backend if backend != "qnnpack" else "qnnpack"
    try:
        models = {}
        for m, mod in zip((torch, ember), _twins(_cnn)):
            mod.eval()
            mod.qconfig = m.ao.quantization.get_default_qconfig(backend)
            p = m.ao.quantization.prepare(m.ao.quantization.fuse_modules(mod, FUSE))
            for i in range(0, 64, 16):
                p(m.from_numpy(X[i:i + 16].copy()))
            c = m.ao.quantization.convert(p)
            models[m.__name__] = (c, c(m.from_numpy(X.copy())))
    finally:
        torch.backends.quantized.engine = "x86"
    (tc, ty), (ec, ey) = models["torch"], models["ember"]
    assert type(ec[1]).__name__ == "ConvReLU2d" and type(ec[12]).__name__ == "Linear"
    np.testing.assert_allclose(ec[0].scale.numpy(), tc[0].scale.numpy(), rtol=1e-6)
    for name in ("1", "5", "10", "12"):
        a, b = getattr(tc, name), getattr(ec, name)
        assert b.zero_point == a.zero_point
        assert abs(b.scale - a.scale) <= 1e-6 * a.scale
        np.testing.assert_array_equal(b.weight().int_repr().numpy(),
                                      a.weight().int_repr().numpy())
        np.testing.assert_array_equal(b.weight().q_per_channel_scales().numpy()
                                      if backend == "x86" else b.weight().q_scale(),
                                      a.weight().q_per_channel_scales().numpy()
                                      if backend == "x86" else a.weight().q_scale())
    # outputs within one quantization step of the last layer
    assert np.abs(ey.numpy() - ty.numpy()).max() <= tc[12].scale * 1.01


def test_quantized_conv_and_linear_kernels_exact_vs_integer_path():
    # the float32-carried GEMM against a plain int64 computation (K = 784 > one block)
    from ember.ops.quantized import int_matmul
    rng = np.random.default_rng(1)
    a = rng.integers(-255, 256, (64, 784)).astype(np.float32)
    w = rng.integers(-128, 128, (784, 512)).astype(np.float32)
    exact = a.astype(np.int64) @ w.astype(np.int64)
    np.testing.assert_array_equal(int_matmul(np, a, w, 255, 128), exact)


def test_dynamic_linear_matches_torch():
    outs = []
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            m.nn.Linear(784, 512), m.nn.ReLU(), m.nn.Linear(512, 256), m.nn.ReLU(),
            m.nn.Linear(256, 10)))):
        q = m.ao.quantization.quantize_dynamic(mod, {m.nn.Linear}, dtype=m.qint8)
        x = np.random.default_rng(2).standard_normal((64, 784)).astype(np.float32)
        outs.append((q, q(m.from_numpy(x)).detach().numpy()))
    (tq, ty), (eq, ey) = outs
    assert type(eq[0]).__name__ == "Linear" and eq[0].__module__.endswith("dynamic")
    np.testing.assert_array_equal(eq[0].weight().int_repr().numpy(),
                                  tq[0].weight().int_repr().numpy())
    np.testing.assert_allclose(ey, ty, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name,kwargs", [
    ("MinMaxObserver", {}), ("MinMaxObserver", dict(dtype="qint8",
                                                   qscheme="per_tensor_symmetric")),
    ("MovingAverageMinMaxObserver", {}), ("HistogramObserver", {}),
    ("HistogramObserver", dict(reduce_range=True)),
    ("PerChannelMinMaxObserver", dict(dtype="qint8", qscheme="per_channel_symmetric")),
    ("PerChannelMinMaxObserver", dict(ch_axis=1)),
    ("MovingAveragePerChannelMinMaxObserver", {})])
def test_observers_match_torch(name, kwargs):
    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((8, 6)) * (1 + i) + i * 0.3).astype(np.float32)
               for i in range(3)]
    res = []
    for m in (torch, ember):
        kw = {k: getattr(m, v) for k, v in kwargs.items() if isinstance(v, str)}
        kw.update({k: v for k, v in kwargs.items() if not isinstance(v, str)})
        obs = getattr(m.ao.quantization, name)(**kw)
        for b in batches:
            obs(m.from_numpy(b.copy()))
        s, z = obs.calculate_qparams()
        res.append((s.numpy(), z.numpy()))
    np.testing.assert_allclose(res[1][0], res[0][0], rtol=1e-6)
    np.testing.assert_array_equal(res[1][1], res[0][1])


def test_observer_without_data_warns_and_returns_defaults():
    for m in (torch, ember):
        with pytest.warns(UserWarning, match="must run observer"):
            s, z = m.ao.quantization.MinMaxObserver().calculate_qparams()
        assert float(s[0]) == 1.0 and int(z[0]) == 0


def test_qat_digits_cnn_trains_and_converts():
    _, em = _twins(_cnn)
    q = ember.ao.quantization
    em.train()
    em.qconfig = q.get_default_qat_qconfig("x86")
    f = q.fuse_modules_qat(em, FUSE)
    p = q.prepare_qat(f)
    assert type(p[1]).__name__ == "ConvBnReLU2d" and hasattr(p[1], "weight_fake_quant")
    opt = ember.optim.SGD(p.parameters(), lr=0.01)
    y = ember.from_numpy(np.random.default_rng(4).integers(0, 10, 64))
    x = ember.from_numpy(X.copy())
    for step in range(3):
        loss = ember.nn.functional.cross_entropy(p(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1:
            p.apply(q.disable_observer)
            p.apply(q.freeze_bn_stats)
    p.eval()
    ref = p(x)
    c = q.convert(p)
    out = c(x)
    assert type(c[1]).__name__ == "ConvReLU2d"
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() > 0.8


def test_fake_quantize_module_matches_torch():
    x = np.random.default_rng(5).standard_normal((4, 5)).astype(np.float32)
    outs = []
    for m in (torch, ember):
        fq = m.ao.quantization.default_fake_quant()
        xi = m.from_numpy(x.copy()).requires_grad_()
        y = fq(xi)
        y.sum().backward()
        outs.append((y.detach().numpy(), xi.grad.numpy(), fq.scale.numpy(),
                     fq.zero_point.numpy()))
    for a, b in zip(*outs):
        np.testing.assert_allclose(b, a, rtol=1e-6)


def test_float_into_quantized_and_quantized_into_float():
    for m in (torch, ember):
        with pytest.raises(NotImplementedError):
            m.ao.nn.quantized.Linear(4, 3)(m.randn(2, 4))
        with pytest.raises(NotImplementedError):
            m.ao.nn.quantized.Conv2d(1, 2, 3)(m.randn(1, 1, 5, 5))
        qx = m.quantize_per_tensor(m.randn(2, 4), 0.1, 0, m.quint8)
        with pytest.raises(NotImplementedError):
            m.nn.functional.linear(qx, m.ones(3, 4))


def _q(m, *shape, dtype="quint8"):
    return m.quantize_per_tensor(m.randn(*shape), 0.1, 0, getattr(m, dtype))


# quantized tensors into float ops: the exception type and message PyTorch 2.13 gives
_QUANTIZED_INTO_FLOAT = {
    "nn.Linear 2-D": lambda m: m.nn.Linear(3, 2)(_q(m, 2, 3)),
    "nn.Linear 3-D qint8": lambda m: m.nn.Linear(3, 2)(_q(m, 4, 2, 3, dtype="qint8")),
    "nn.Linear 1-D": lambda m: m.nn.Linear(3, 2)(_q(m, 3)),
    "nn.Linear no bias": lambda m: m.nn.Linear(3, 2, bias=False)(_q(m, 4, 2, 3)),
    "linear quantized weight": lambda m: m.nn.functional.linear(
        m.randn(2, 3), _q(m, 2, 3, dtype="qint8"), m.zeros(2)),
    "mm": lambda m: m.mm(_q(m, 2, 3), m.randn(3, 2)),
    "matmul": lambda m: _q(m, 2, 3) @ m.randn(3, 2),
    "q + 1": lambda m: _q(m, 2, 3) + 1,
    "1 + q": lambda m: 1 + _q(m, 2, 3),
    "q - 1": lambda m: _q(m, 2, 3) - 1,
    "q * 2": lambda m: _q(m, 2, 3) * 2,
    "q / 2": lambda m: _q(m, 2, 3) / 2,
    "q + True": lambda m: _q(m, 2, 3) + True,
    "q.add_(1)": lambda m: _q(m, 2, 3).add_(1),
    "add(q, 1)": lambda m: m.add(_q(m, 2, 3), 1),
    "q + 1.5": lambda m: _q(m, 2, 3) + 1.5,
    "1.5 * q": lambda m: 1.5 * _q(m, 2, 3),
    "q + float tensor": lambda m: _q(m, 2, 3) + m.randn(2, 3),
    "long tensor + q": lambda m: m.ones(2, 3, dtype=m.long) + _q(m, 2, 3),
    "q + q": lambda m: _q(m, 2, 3) + _q(m, 2, 3),
    "q * q": lambda m: _q(m, 2, 3) * _q(m, 2, 3),
    "q - q": lambda m: _q(m, 2, 3) - _q(m, 2, 3),
    "quint8 + qint8": lambda m: _q(m, 2, 3) + _q(m, 2, 3, dtype="qint8"),
    "float Conv2d": lambda m: m.nn.Conv2d(1, 1, 1)(_q(m, 1, 1, 2, 2)),
}


@pytest.mark.parametrize("case", list(_QUANTIZED_INTO_FLOAT))
def test_quantized_into_float_ops_raise_as_torch(case):
    fn = _QUANTIZED_INTO_FLOAT[case]
    with pytest.raises(Exception) as expected:
        fn(torch)
    with pytest.raises(type(expected.value)) as got:
        fn(ember)
    # the message's first line, PyTorch's dispatcher boilerplate aside
    head = str(expected.value).split(". This could be")[0].split("\n")[0]
    assert str(got.value).startswith(head)


def test_deprecation_warnings_as_torch():
    for m in (torch, ember):
        with pytest.warns(DeprecationWarning, match="torch.ao.quantization is deprecated"):
            m.ao.quantization.quantize_dynamic(m.nn.Sequential(m.nn.Linear(3, 3)))


def test_namespace_aliases():
    assert ember.quantization is ember.ao.quantization
    import ember.nn.quantized as nnq
    import ember.nn.intrinsic as nni
    assert nnq.Linear is ember.ao.nn.quantized.Linear and nni.LinearReLU is \
        ember.ao.nn.intrinsic.LinearReLU
    assert nnq.dynamic.Linear is ember.ao.nn.quantized.dynamic.Linear
    import ember.nn.quantized.dynamic as nnqd
    import ember.nn.intrinsic.qat as nniqat
    import ember.quantization.observer as obs
    assert nnqd is ember.ao.nn.quantized.dynamic and nniqat is ember.ao.nn.intrinsic.qat
    assert obs is ember.ao.quantization.observer


@pytest.mark.parametrize("config,tol", [("Int8WeightOnlyConfig()", 0.02),
                                        ("Int8DynamicActivationInt8WeightConfig()", 0.05),
                                        ("Int4WeightOnlyConfig(group_size=32)", 0.3)])
def test_quantize_torchao_style(config, tol):
    q = ember.ao.quantization
    torch.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Linear(64, 32), ember.nn.ReLU(),
                                ember.nn.Linear(32, 8))
    x = ember.randn(16, 64)
    ref = model(x).detach().numpy()
    q.quantize_(model, eval("q." + config),
                filter_fn=lambda mod, fqn: isinstance(mod, ember.nn.Linear))
    assert "Linear" in type(model[0]).__name__ and type(model[0]) is not ember.nn.Linear
    out = model(x).numpy()
    assert np.abs(out - ref).max() <= tol * np.abs(ref).max() + 1e-3


def test_torchao_quantization_under_ember_run(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "s.py"
    script.write_text("import torch\nfrom torchao.quantization import quantize_, "
                      "Int8WeightOnlyConfig\nm = torch.nn.Sequential(torch.nn.Linear(8, 4))\n"
                      "quantize_(m, Int8WeightOnlyConfig())\nprint(type(m[0]).__name__)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-m", "ember.run", str(script)],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "Int8WeightOnlyLinear", out.stderr


def _qin(m, x, scale=0.05, zp=64):
    return m.quantize_per_tensor(m.from_numpy(x.copy()), scale, zp, m.quint8)


@pytest.mark.parametrize("nd,kw", [(1, dict(stride=2, padding=1)), (2, dict(groups=2)),
                                   (2, dict(dilation=2, padding=2)), (3, dict(padding=1))])
def test_quantized_conv_modules_match_torch(nd, kw):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4) + (6,) * nd).astype(np.float32)
    w = (rng.standard_normal((6, 4 // kw.get("groups", 1)) + (3,) * nd) * 0.3).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    sc = rng.uniform(0.005, 0.02, 6)
    outs = []
    for m in (torch, ember):
        conv = getattr(m.ao.nn.quantized, f"Conv{nd}d")(4, 6, 3, **kw)
        wq = m.quantize_per_channel(m.from_numpy(w.copy()), m.from_numpy(sc.copy()),
                                    m.zeros(6, dtype=m.long), 0, m.qint8)
        conv.set_weight_bias(wq, m.from_numpy(b.copy()))
        conv.scale, conv.zero_point = 0.07, 60
        outs.append(conv(_qin(m, x)).int_repr().numpy())
    assert outs[1].shape == outs[0].shape
    assert np.abs(outs[1].astype(int) - outs[0].astype(int)).max() <= 1


def test_qfunctional_batchnorm_relu6_match_torch():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    res = []
    for m in (torch, ember):
        qf = m.ao.nn.quantized.QFunctional()
        qf.scale, qf.zero_point = 0.1, 70
        a, c = _qin(m, x), _qin(m, y, 0.04, 50)
        bn = m.ao.nn.quantized.BatchNorm2d(3)
        if m is torch:  # PyTorch keeps them as buffers
            bn.scale, bn.zero_point = torch.tensor(0.08), torch.tensor(64)
        else:
            bn.scale, bn.zero_point = 0.08, 64
        outs = [qf.add(a, c), qf.mul(a, c), qf.add_relu(a, c), qf.cat([a, a], 1),
                qf.add_scalar(a, 0.5), qf.add_scalar(a, -4.0), qf.mul_scalar(a, 2.0),
                qf.mul_scalar(a, -0.5), m.ao.nn.quantized.ReLU6()(a)]
        if m is torch:
            bn.weight.data = torch.ones(3) * 2
            bn.running_mean = torch.ones(3) * 0.1
        else:
            bn._float.weight.data = ember.ones(3) * 2
            bn._float.running_mean = ember.ones(3) * 0.1
        outs.append(bn(a))
        res.append([(o.int_repr().numpy(), o.q_scale(), o.q_zero_point()) for o in outs])
    for (ti, ts, tz), (ei, es, ez) in zip(*res):
        assert es == pytest.approx(ts) and ez == tz
        assert np.abs(ei.astype(int) - ti.astype(int)).max() <= 1


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("kw,packed", [(dict(num_layers=2, batch_first=True), False),
                                       (dict(num_layers=2, bidirectional=True), False),
                                       (dict(bidirectional=True), True)])
def test_dynamic_rnn_matches_torch(kind, kw, packed):
    # every gate GEMM quantizes its input per call (7-bit quint8) as fbgemm does, so the
    # outputs agree to float32 rounding, far inside one activation quantization step (~1e-2)
    outs = []
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 4, 16)).astype(np.float32)
    h0 = rng.standard_normal((2 if packed else 2 * 2, 4, 32)).astype(np.float32)
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            getattr(m.nn, kind)(16, 32, **kw)))):
        q = m.ao.quantization.quantize_dynamic(mod, {getattr(m.nn, kind)}, dtype=m.qint8)
        assert type(q[0]).__name__ == kind and "dynamic" in type(q[0]).__module__
        assert list(q.state_dict()) == [f"0._all_weight_values.{i}.param"
                                        for i in range(len(mod[0]._all_weights))]
        inp = m.from_numpy(x)
        hx = None
        if packed:
            inp = m.nn.utils.rnn.pack_padded_sequence(inp, [6, 5, 5, 2])
            hx = m.from_numpy(h0)
            hx = (hx, hx * 0.5) if kind == "LSTM" else hx
        y, h = q[0](inp, hx)
        y = y.data if packed else y
        h = h[0] if kind == "LSTM" else h
        outs.append((y.detach().numpy(), h.detach().numpy()))
    for t, e in zip(*outs):
        np.testing.assert_allclose(e, t, atol=1e-6)


def test_dynamic_rnn_bad_input_as_torch():
    for m in (torch, ember):
        with pytest.raises(AssertionError, match="mod.bias must be True"):
            m.ao.quantization.quantize_dynamic(m.nn.Sequential(m.nn.LSTM(4, 3, bias=False)),
                                               {m.nn.LSTM}, dtype=m.qint8)
        q = m.ao.quantization.quantize_dynamic(m.nn.Sequential(m.nn.GRU(4, 3)), {m.nn.GRU},
                                               dtype=m.qint8)
        with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal"):
            q(m.zeros(2, 1, 5))
        with pytest.raises(RuntimeError, match="input must have 3 dimensions"):
            q[0].check_input(m.zeros(2, 1, 1, 4), None)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dynamic_rnn_state_dicts_interchange_with_torch(kind, tmp_path):
    # PyTorch's state dict holds TorchScript CellParamsBase objects, which torch.load reads
    # only with weights_only=False: ember writes and reads the same records
    def build(m):
        return m.nn.Sequential(getattr(m.nn, kind)(5, 4, num_layers=2, bidirectional=True))
    qs = [m.ao.quantization.quantize_dynamic(mod, {getattr(m.nn, kind)}, dtype=m.qint8)
          for m, mod in zip((torch, ember), _twins(build))]
    torch.save(qs[0].state_dict(), tmp_path / "t.pt")
    ember.save(qs[1].state_dict(), tmp_path / "e.pt")
    fresh = [m.ao.quantization.quantize_dynamic(build(m), {getattr(m.nn, kind)}, dtype=m.qint8)
             for m in (torch, ember)]
    fresh[0].load_state_dict(torch.load(tmp_path / "e.pt", weights_only=False))
    fresh[1].load_state_dict(ember.load(tmp_path / "t.pt", weights_only=False))
    x = np.random.default_rng(0).standard_normal((3, 2, 5)).astype(np.float32)
    ref = qs[0](torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_array_equal(fresh[0](torch.from_numpy(x))[0].detach().numpy(), ref)
    np.testing.assert_allclose(fresh[1](ember.from_numpy(x))[0].numpy(), ref, atol=1e-6)
    for m, other in ((torch, "e.pt"), (ember, "t.pt")):  # as PyTorch: not with weights_only
        with pytest.raises(pickle.UnpicklingError):
            m.load(tmp_path / other)


def test_unsupported_module_stays_float_and_says_so():
    model = ember.nn.Sequential(ember.nn.Conv2d(1, 2, 3), ember.nn.Flatten(),
                                ember.nn.Linear(2, 3))
    with pytest.warns(UserWarning, match="Conv2d has no dynamically quantized version"):
        q = ember.ao.quantization.quantize_dynamic(model, {ember.nn.Conv2d, ember.nn.Linear})
    assert type(q[0]) is ember.nn.Conv2d and type(q[2]).__name__ == "Linear" and \
        type(q[2]) is not ember.nn.Linear
    assert q(ember.randn(4, 1, 3, 3)).shape == (4, 3)


def test_quantized_state_dicts_interchange_with_torch(tmp_path):
    models = []
    for m, mod in zip((torch, ember), _twins(_cnn)):
        mod.eval()
        mod.qconfig = m.ao.quantization.get_default_qconfig("x86")
        p = m.ao.quantization.prepare(m.ao.quantization.fuse_modules(mod, FUSE))
        p(m.from_numpy(X[:32].copy()))
        models.append(m.ao.quantization.convert(p))
    tc, ec = models
    assert list(ec.state_dict()) == list(tc.state_dict())  # PyTorch's keys, in its order
    ember.save(ec.state_dict(), tmp_path / "e.pt")
    tc.load_state_dict(torch.load(tmp_path / "e.pt", weights_only=True))
    torch.save(tc.state_dict(), tmp_path / "t.pt")
    ec.load_state_dict(ember.load(tmp_path / "t.pt"))
    np.testing.assert_array_equal(ec(ember.from_numpy(X.copy())).numpy(),
                                  tc(torch.from_numpy(X.copy())).numpy())


def test_bn_relu_fused_static_matches_torch():
    outs = []
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            m.ao.quantization.QuantStub(), m.nn.BatchNorm2d(1), m.nn.ReLU(),
            m.ao.quantization.DeQuantStub()))):
        mod.eval()
        mod.qconfig = m.ao.quantization.get_default_qconfig("x86")
        p = m.ao.quantization.prepare(m.ao.quantization.fuse_modules(mod, [["1", "2"]]))
        p(m.from_numpy(X.copy()))
        c = m.ao.quantization.convert(p)
        assert type(c[1]).__name__ == "BNReLU2d"
        outs.append((c(m.from_numpy(X.copy())).numpy(), float(c[1].scale)))
    (t, step), (e, _) = outs
    assert np.abs(e - t).max() <= step * 1.01


def test_int8_weights_held_without_float32_copy(monkeypatch):
    # weight memory a quarter of float32's: the packs view the int8 weights, and the float32
    # GEMM operand made per call gives the same outputs as the cached copy (keep_float32)
    from ember.ao.nn.quantized import modules as qm
    from ember.cli.digits import build_model
    from ember.cli.quantize import quantize_model
    ember.manual_seed(0)
    cnn = build_model(ember).eval()
    mlp = ember.nn.Sequential(ember.nn.Linear(600, 40), ember.nn.ReLU(), ember.nn.Linear(40, 3))
    x, xm = ember.rand(8, 1, 8, 8), ember.randn(5, 600)
    outs = []
    for keep in (False, True):
        monkeypatch.setattr(qm._WeightPack, "keep_float32", keep)
        qc = quantize_model(ember, cnn, "static", "x86", x)
        ql = ember.ao.quantization.quantize_dynamic(mlp, {ember.nn.Linear}, dtype=ember.qint8)
        held = []
        for mod in list(qc.modules()) + list(ql.modules()):
            if isinstance(mod, qm.LinearPackedParams):
                held.append((mod._weight_bias[0], [mod.pack]))
            elif isinstance(mod, qm._ConvNd):
                held.append((mod._weight, mod._packs))
        assert len(held) == 6
        for w, packs in held:
            for p in packs:
                assert np.shares_memory(p._wt, w._data) and p._wt.dtype == np.int8
                assert (p._f32 is None) != keep
        outs.append((qc(x).numpy(), ql(xm).numpy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
