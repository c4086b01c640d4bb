"""Quantization pieces added after the eager workflow (issue 19): dynamic LSTM/GRU in training
mode and with proj_size, fixed-qparams and recording observers, quantized Embedding and
EmbeddingBag, 3-d QAT modules and packed quint4x2, each against torch.ao (x86 engine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

torch.backends.quantized.engine = "x86"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _twins(build):
    """The same float module in torch and ember (torch's initial weights copied over)."""
    torch.manual_seed(0)
    tm = build(torch)
    em = build(ember)
    em.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in tm.state_dict().items()})
    return tm, em


def _dyn(m, mod, kind):
    return m.ao.quantization.quantize_dynamic(mod, {getattr(m.nn, kind)}, dtype=m.qint8)


# ---- dynamic LSTM/GRU: dropout in training mode, proj_size ----------------------------------
X_RNN = np.random.default_rng(1).standard_normal((5, 3, 6)).astype(np.float32)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_dynamic_rnn_drops_between_layers_in_training_mode(kind):
    # torch's mask comes from its own generator, so p = 1 (every value dropped: the second
    # layer sees zeros, a deterministic output) is compared against torch, and p = 0.5 is
    # checked to draw a mask per call only in training mode
    outs = []
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            getattr(m.nn, kind)(6, 8, num_layers=2, dropout=1.0)))):
        q = _dyn(m, mod, kind).train()
        assert q[0].training and q[0].dropout == 1.0
        train = q(m.from_numpy(X_RNN))[0].detach().numpy()
        evald = q.eval()(m.from_numpy(X_RNN))[0].detach().numpy()
        assert np.abs(train - evald).max() > 1e-3
        outs.append((train, evald))
    np.testing.assert_allclose(outs[1][0], outs[0][0], atol=1e-6)
    np.testing.assert_allclose(outs[1][1], outs[0][1], atol=1e-6)
    q = _dyn(ember, ember.nn.Sequential(getattr(ember.nn, kind)(6, 8, num_layers=2,
                                                                 dropout=0.5)), kind)
    x = ember.from_numpy(X_RNN)
    a, b = q(x)[0].numpy(), q(x)[0].numpy()
    assert np.abs(a - b).max() > 1e-3  # a fresh mask per call
    ember.manual_seed(5)
    c = q(x)[0].numpy()
    ember.manual_seed(5)
    np.testing.assert_array_equal(q(x)[0].numpy(), c)
    q.eval()
    np.testing.assert_array_equal(q(x)[0].numpy(), q(x)[0].numpy())


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2), dict(bidirectional=True)])
def test_dynamic_lstm_with_proj_size_as_torch(kw):
    # torch's dynamic LSTM has no projection: convert drops proj_size (and weight_hr), and
    # the first forward fails on the h-wide state against the proj-wide w_hh
    for m in (torch, ember):
        q = _dyn(m, m.nn.Sequential(m.nn.LSTM(6, 8, proj_size=3, **kw)), "LSTM")
        assert getattr(q[0], "proj_size", 0) == 0
        n = len(q.state_dict())
        assert n == (2 if kw else 1)
        with pytest.raises(RuntimeError, match="number of rows in the packB should be equal "
                                               "to K: 8"):
            q(m.from_numpy(X_RNN))


def test_dynamic_linear_wrong_width_as_torch():
    for m in (torch, ember):
        q = m.ao.nn.quantized.dynamic.Linear(4, 3)
        with pytest.raises(RuntimeError, match="packB should be equal to K: 5"):
            q(m.zeros(2, 5))


# ---- fixed-qparams and recording observers ---------------------------------------------------
@pytest.mark.parametrize("name", ["default_fixed_qparams_range_0to1_fake_quant",
                                  "default_fixed_qparams_range_neg1to1_fake_quant"])
def test_fixed_qparams_fake_quantize_matches_torch(name):
    x = np.linspace(-1.5, 1.5, 301, dtype=np.float32)
    outs = []
    for m in (torch, ember):
        fq = getattr(m.ao.quantization, name)()
        assert type(fq.activation_post_process).__name__ == "FixedQParamsObserver"
        xt = m.from_numpy(x.copy()).requires_grad_()
        y = fq(xt)
        y.sum().backward()
        s, z = fq.calculate_qparams()
        assert fq.scale is s and s.dtype == m.float32 and z.dtype == m.int32
        outs.append((y.detach().numpy(), xt.grad.numpy(), s.numpy(), z.numpy()))
    for t, e in zip(*outs):
        np.testing.assert_array_equal(e, t)


def test_fixed_qparams_observer_and_recording_observer_as_torch():
    for m in (torch, ember):
        o = m.ao.quantization.FixedQParamsObserver(scale=0.5, zero_point=3, dtype=m.qint8,
                                                    quant_min=-128, quant_max=127)
        x = m.ones(3)
        assert o(x) is x
        s, z = o.calculate_qparams()
        assert float(s[0]) == 0.5 and int(z[0]) == 3 and o.dtype == m.qint8
        assert sorted(o.state_dict()) == ["scale", "zero_point"]
        with pytest.raises(NotImplementedError, match="doesn't support dynamic"):
            m.ao.quantization.FixedQParamsObserver(0.5, 3, is_dynamic=True)
        with pytest.raises(AssertionError, match="observer must be a FixedQParamsObserver"):
            m.ao.quantization.FixedQParamsFakeQuantize(m.ao.quantization.MinMaxObserver)
        r = m.ao.quantization.RecordingObserver()
        r(x)
        r(x * 2)
        vals = r.get_tensor_value()
        assert len(vals) == 2 and vals[0] is not x and float(vals[1].sum()) == 6
        with pytest.raises(Exception, match="should not be called for RecordingObserver"):
            r.calculate_qparams()


def _act_net(m):
    q = m.ao.quantization
    return m.nn.Sequential(q.QuantStub(), m.nn.Linear(6, 8), m.nn.Sigmoid(), m.nn.Linear(8, 8),
                           m.nn.Tanh(), m.nn.Linear(8, 4), m.nn.Hardsigmoid(), q.DeQuantStub())


@pytest.mark.parametrize("qat", [False, True])
def test_sigmoid_tanh_get_fixed_qparams_in_prepare_and_convert_as_torch(qat):
    # in training mode only (prepare of a train-mode model too), as PyTorch's
    x = np.random.default_rng(2).standard_normal((32, 6)).astype(np.float32) * 2
    outs = []
    for m, mod in zip((torch, ember), _twins(_act_net)):
        q = m.ao.quantization
        if qat:
            mod.train()
            mod.qconfig = q.get_default_qat_qconfig("x86")
            p = q.prepare_qat(mod)
        else:
            mod.qconfig = q.get_default_qconfig("x86")
            assert not hasattr(q.prepare(mod.eval())[2], "activation_post_process")
            p = q.prepare(mod.train())
        for i, kind in ((2, "0to1"), (4, "neg1to1"), (6, "0to1")):
            apo = p[i].activation_post_process
            assert type(apo).__name__ == "FixedQParamsFakeQuantize"
            assert float(apo.scale[0]) == (1 / 256 if kind == "0to1" else 2 / 256)
        fq = p(m.from_numpy(x)).detach().numpy()
        c = q.convert(p.eval())
        assert not hasattr(c[2], "activation_post_process") and not c[2]._forward_hooks
        inner = m.nn.Sequential(*list(c)[:-1])(m.from_numpy(x))  # the last quantized output
        outs.append((fq, inner.q_scale(), inner.q_zero_point(), inner.int_repr().numpy()))
    np.testing.assert_allclose(outs[1][0], outs[0][0], atol=2 / 256)
    assert outs[1][1:3] == outs[0][1:3] == (1 / 256, 0)
    assert np.abs(outs[1][3].astype(int) - outs[0][3].astype(int)).max() <= 1


@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "hardsigmoid"])
def test_quantized_sigmoid_tanh_hardsigmoid_as_torch(op, dtype):
    x = np.random.default_rng(3).standard_normal(2000).astype(np.float32) * 4
    outs = []
    for m in (torch, ember):
        qx = m.quantize_per_tensor(m.from_numpy(x), 0.04, 7, getattr(m, dtype))
        f = m.nn.functional.hardsigmoid if op == "hardsigmoid" else getattr(m, op)
        y = f(qx)
        outs.append((y.q_scale(), y.q_zero_point(), y.int_repr().numpy()))
    assert outs[1][:2] == outs[0][:2]
    np.testing.assert_array_equal(outs[1][2], outs[0][2])


# ---- the benchmark's NumPy floor --------------------------------------------------------------
def test_bench_int8_workloads_report_the_numpy_gemm_floor():
    from bench import harness, wl_quant
    for name in ("qlinear_b64", "qconv_digits"):
        w = harness.REGISTRY[name]
        assert w.backends == ("ember", "torch", "numpy")
        step, convert = w.fn(np)
        assert step() is None and convert(1e-3) == 1.0  # no result: not compared with torch


def test_conv_zero_point_before_or_after_the_gemm_is_exact():
    # a quantized conv takes the input zero point off before the GEMM (few input values) or
    # as acc -= za * colsum(w) after it (few output values): both give torch's integers
    rng = np.random.default_rng(4)
    for c, o in ((1, 16), (24, 4)):  # the first shifts first, the second corrects after
        x = rng.standard_normal((3, c, 7, 6)).astype(np.float32)
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32) * 0.3
        outs = []
        for m in (torch, ember):
            conv = m.ao.nn.quantized.Conv2d(c, o, 3, padding=1, stride=(1, 2))
            wq = m.quantize_per_channel(m.from_numpy(w), m.from_numpy(
                np.abs(w).reshape(o, -1).max(1) / 127.0).double(), m.zeros(o, dtype=m.long),
                0, m.qint8)
            conv.set_weight_bias(wq, m.from_numpy(rng.standard_normal(o).astype(np.float32))
                                 if m is torch else m.from_numpy(outs[0][1]))
            conv.scale, conv.zero_point = 0.07, 100
            y = conv(m.quantize_per_tensor(m.from_numpy(x), 0.02, 77, m.quint8))
            outs.append((y.int_repr().numpy(), conv.bias().detach().numpy()))
        np.testing.assert_array_equal(outs[1][0], outs[0][0])


# ---- 3-d QAT modules -------------------------------------------------------------------------
def _net3d(m):
    q = m.ao.quantization
    return m.nn.Sequential(q.QuantStub(), m.nn.Conv3d(2, 4, 3, padding=1), m.nn.BatchNorm3d(4),
                           m.nn.ReLU(), m.nn.Conv3d(4, 4, 3), m.nn.BatchNorm3d(4),
                           m.nn.Conv3d(4, 3, 1), m.nn.ReLU(), m.nn.Conv3d(3, 2, 1),
                           q.DeQuantStub())


def test_qat_3d_modules_match_torch():
    fuse = [["1", "2", "3"], ["4", "5"], ["6", "7"]]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 5, 5, 5)).astype(np.float32)
    res = []
    for m, mod in zip((torch, ember), _twins(_net3d)):
        q = m.ao.quantization
        mod.train()
        mod.qconfig = q.get_default_qat_qconfig("x86")
        p = q.prepare_qat(q.fuse_modules_qat(mod, fuse))
        names = [type(p[i]).__name__ for i in (1, 4, 6, 8)]
        assert names == ["ConvBnReLU3d", "ConvBn3d", "ConvReLU3d", "Conv3d"]
        assert all("qat" in type(p[i]).__module__ for i in (1, 4, 6, 8))
        xt = m.from_numpy(x.copy()).requires_grad_()
        y = p(xt)
        y.sum().backward()
        c = q.convert(p.eval())
        assert [type(c[i]).__name__ for i in (1, 4, 6, 8)] == ["ConvReLU3d", "Conv3d",
                                                                "ConvReLU3d", "Conv3d"]
        assert all(type(c[i]).__module__.startswith(("torch.ao.nn", "ember.ao.nn"))
                   and ".qat" not in type(c[i]).__module__ for i in (1, 4, 6, 8))
        inner = m.nn.Sequential(*list(c)[:-1])(m.from_numpy(x))
        res.append((y.detach().numpy(), xt.grad.numpy(), inner.q_scale(),
                    inner.q_zero_point(), inner.int_repr().numpy(),
                    [c[i].weight().int_repr().numpy() for i in (1, 4, 6, 8)]))
    (ty, tg, ts, tz, ti, tw), (ey, eg, es, ez, ei, ew) = res
    np.testing.assert_allclose(ey, ty, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(eg, tg, rtol=1e-4, atol=1e-4)
    assert ez == tz and es == pytest.approx(ts, rel=1e-5)
    for a, b in zip(ew, tw):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.abs(ei.astype(int) - ti.astype(int)).max() <= 1


def test_qat_conv1d_conv3d_modules_as_torch():
    for m in (torch, ember):
        qc = m.ao.quantization.get_default_qat_qconfig("x86")
        for cls, shape in ((m.ao.nn.qat.Conv1d, (2, 3, 9)), (m.ao.nn.qat.Conv3d, (2, 3, 4, 4, 4))):
            mod = cls(3, 4, 3, qconfig=qc)
            assert type(mod.weight_fake_quant).__name__ == "FusedMovingAvgObsFakeQuantize"
            assert mod(m.zeros(shape)).shape[1] == 4
        for make in (lambda: m.ao.nn.qat.Conv3d(3, 4, 3), lambda: m.ao.nn.qat.Linear(3, 4)):
            with pytest.raises(AssertionError, match="qconfig must be provided"):
                make()


@pytest.mark.parametrize("vals", [[-0.001, 0.002], [0.0, 0.001, 0.002], [-0.003, 0.0],
                                  [-0.5, 2.0], [1e-8, 3e-8]])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_dynamic_qparams_small_scale_cutoff_as_fbgemm(vals, reduce_range):
    # fbgemm raises a scale below 6.1e-5 to it and stretches the range alike
    got = []
    for m in (torch, ember):
        q = m.quantize_per_tensor_dynamic(m.tensor(vals), m.quint8, reduce_range)
        got.append((q.q_scale(), q.q_zero_point(), q.int_repr().numpy()))
    assert got[1][:2] == got[0][:2]
    np.testing.assert_array_equal(got[1][2], got[0][2])


@pytest.mark.parametrize("name", ["default_fused_per_channel_wt_fake_quant",
                                  "default_fused_wt_fake_quant",
                                  "default_fused_act_fake_quant"])
def test_fused_fake_quant_forward_qparams_as_torch(name):
    # the fused kernel's symmetric qparams are max(|min| / 128, max / 127), not the
    # observer's / 127.5; calculate_qparams (what convert uses) stays the observer's
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((6, 3, 3)).astype(np.float32) * s for s in (1.0, 0.5, 2.0)]
    got = []
    for m in (torch, ember):
        fq = getattr(m.ao.quantization, name)()
        ys = [fq(m.from_numpy(x)).detach().numpy() for x in xs]
        got.append((fq.scale.numpy(), fq.zero_point.numpy(), ys,
                    [t.numpy() for t in fq.calculate_qparams()]))
    np.testing.assert_array_equal(got[1][0], got[0][0])
    np.testing.assert_array_equal(got[1][1], got[0][1])
    for a, b in zip(got[1][2], got[0][2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got[1][3][0], got[0][3][0], rtol=1e-7)
    np.testing.assert_array_equal(got[1][3][1], got[0][3][1])
