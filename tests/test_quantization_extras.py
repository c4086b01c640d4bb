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
    from bench import harness, wl_quant  # noqa: F401  (importing registers the workloads)
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


# ---- quantized Embedding / EmbeddingBag --------------------------------------------------------
def _emb_twins():
    def build(m):
        return m.nn.Sequential(m.nn.Embedding(60, 12), m.nn.EmbeddingBag(60, 12, mode="sum"),
                               m.nn.EmbeddingBag(60, 12, mode="mean", include_last_offset=True))
    tm, em = _twins(build)
    return tm, em


def _emb_calls(m, q):
    idx2 = m.tensor([[1, 2, 59], [0, 0, 7]])
    ind = m.tensor([3, 4, 5, 6, 7, 1, 9])
    off = m.tensor([0, 2, 2, 6])
    psw = m.tensor([1.0, 2.0, 0.5, 0.25, 3.0, 1.0, -1.5])
    return [q[0](idx2), q[1](ind, off), q[1](ind, off, per_sample_weights=psw),
            q[1](idx2), q[2](ind, m.tensor([0, 2, 5, 7]))]


@pytest.mark.parametrize("how", ["dynamic", "dynamic_set", "static"])
def test_quantized_embeddings_match_torch_bit_for_bit(how):
    # rows read as fbgemm's fma(scale, q, -zp * scale), bags summed in index order (every mode
    # sums, as PyTorch's module passes mode 0)
    res = []
    for m, mod in zip((torch, ember), _emb_twins()):
        aq = m.ao.quantization
        if how == "dynamic":
            q = aq.quantize_dynamic(mod, dtype=m.quint8)
        elif how == "dynamic_set":
            q = aq.quantize_dynamic(mod, {m.nn.Embedding, m.nn.EmbeddingBag}, dtype=m.quint8)
        else:
            for sub in mod:
                sub.qconfig = aq.float_qparams_weight_only_qconfig
            q = aq.convert(aq.prepare(mod))
        assert [type(s).__name__ for s in q] == ["Embedding", "EmbeddingBag", "EmbeddingBag"]
        assert repr(q[0]).startswith("QuantizedEmbedding(num_embeddings=60, embedding_dim=12")
        w = q[0].weight()
        assert w.qscheme() == m.per_channel_affine_float_qparams and w.dtype == m.quint8
        assert list(q.state_dict()) == [f"{i}._packed_params.{k}" for i in range(3)
                                        for k in ("dtype", "_packed_weight")]
        # (torch's q_per_channel_scales() of an unpacked embedding weight can read freed
        # memory, so the qparams are compared through dequantize)
        res.append(([o.numpy() for o in _emb_calls(m, q)], w.int_repr().numpy(),
                    w.dequantize().numpy()))
    for a, b in zip(res[1][0], res[0][0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(res[1][1:], res[0][1:]):
        np.testing.assert_array_equal(a, b)


def test_quantized_embedding_state_dict_interchanges_with_torch(tmp_path):
    qs = [m.ao.quantization.quantize_dynamic(mod, dtype=m.quint8)
          for m, mod in zip((torch, ember), _emb_twins())]
    torch.save(qs[0].state_dict(), tmp_path / "t.pt")
    ember.save(qs[1].state_dict(), tmp_path / "e.pt")
    fresh_t = torch.ao.quantization.quantize_dynamic(_emb_twins()[0], dtype=torch.quint8)
    fresh_e = ember.ao.quantization.quantize_dynamic(
        ember.nn.Sequential(ember.nn.Embedding(60, 12), ember.nn.EmbeddingBag(60, 12),
                            ember.nn.EmbeddingBag(60, 12, include_last_offset=True)),
        dtype=ember.quint8)
    fresh_t.load_state_dict(torch.load(tmp_path / "e.pt", weights_only=False))
    fresh_e.load_state_dict(ember.load(tmp_path / "t.pt", weights_only=False))
    for a, b in zip(_emb_calls(ember, fresh_e), _emb_calls(torch, fresh_t)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_quantized_embedding_bad_input_as_torch():
    for m in (torch, ember):
        e = m.ao.nn.quantized.Embedding(10, 4)
        eb = m.ao.nn.quantized.EmbeddingBag(10, 4)
        with pytest.raises(RuntimeError, match="Expect 32 or 64 bit indices, but found Float"):
            e(m.tensor([1.0]))
        with pytest.raises(RuntimeError, match="Index 1 is out of bounds: 20, range 0 to 10"):
            eb(m.tensor([1, 20]), m.tensor([0]))
        with pytest.raises(RuntimeError, match="expects offsets to be set for 1D indices"):
            eb(m.tensor([1, 2]))
        with pytest.raises(RuntimeError, match="input is 2D, then offsets has to be None"):
            eb(m.tensor([[1, 2]]), m.tensor([0]))
        mod = m.nn.Sequential(m.nn.Embedding(10, 4))
        with pytest.raises(AssertionError, match="only supported with "
                                                 "float_qparams_weight_only_qconfig"):
            m.ao.quantization.quantize_dynamic(mod, {m.nn.Embedding}, dtype=m.qint8)


# ---- quint4x2: two values a byte --------------------------------------------------------------
X4 = np.array([[0.0, 1, 2, 3, 4], [5, 6, 7, 15, 20]], np.float32)


def test_quint4x2_packed_two_to_a_byte_as_torch(tmp_path):
    got = []
    for m in (torch, ember):
        q = m.quantize_per_tensor(m.from_numpy(X4), 1.0, 0, m.quint4x2)
        assert tuple(q.shape) == (2, 5) and q.dtype == m.quint4x2 and q.numel() == 10
        assert q.stride() == (5, 1) and q.element_size() == 1
        got.append((q.int_repr().numpy(), q.dequantize().numpy(),
                    q.view(10).int_repr().numpy(), q.reshape(5, 2).dequantize().numpy()))
        m.save(q, tmp_path / f"{m.__name__}.pt")
    for a, b in zip(*got):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(got[1][0], [16, 50, 84, 118, 255])  # low nibble first
    for m, other in ((torch, "ember"), (ember, "torch")):
        r = m.load(tmp_path / f"{other}.pt", weights_only=False)
        assert r.dtype == m.quint4x2 and tuple(r.shape) == (2, 5)
        np.testing.assert_array_equal(r.int_repr().numpy(), got[0][0])
        np.testing.assert_array_equal(r.dequantize().numpy(), got[0][1])
    import pickle
    e = ember.quantize_per_tensor(ember.from_numpy(X4), 1.0, 0, ember.quint4x2)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(e)).int_repr().numpy(), got[0][0])
    assert e._data.nbytes == 5  # the storage itself is packed
    with pytest.raises(NotImplementedError):
        ember.relu(e)  # no 4-bit arithmetic kernels (torch: "qrelu" not implemented)


def test_quint4x2_per_channel_and_embedding_bag_match_torch():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 9)).astype(np.float32)
    s = (rng.random(7) * 0.5 + 0.1).astype(np.float32)
    z = (rng.random(7) * 6).astype(np.float32)
    qs = [m.quantize_per_channel(m.from_numpy(x), m.from_numpy(s), m.from_numpy(z), 0,
                                 m.quint4x2) for m in (torch, ember)]
    np.testing.assert_array_equal(qs[1].int_repr().numpy(), qs[0].int_repr().numpy())
    np.testing.assert_array_equal(qs[1].dequantize().numpy(), qs[0].dequantize().numpy())
    # 4-bit bags: fbgemm keeps each row's scale and bias in float16
    outs = []
    for m, mod in zip((torch, ember), _twins(lambda m: m.nn.Sequential(
            m.nn.EmbeddingBag(40, 8)))):
        q = m.ao.quantization.quantize_dynamic(mod, dtype=m.quint4x2)
        assert q[0].weight().dtype == m.quint4x2
        outs.append((q[0].weight().int_repr().numpy(),
                     q[0](m.tensor([3, 4, 5, 6, 7, 1]), m.tensor([0, 2, 2, 5]),
                          per_sample_weights=m.tensor([1.0, 2.0, 0.5, 0.25, 3.0, 1.0])).numpy(),
                     q[0](m.tensor([[3, 4], [5, 39]])).numpy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(b, a)


def test_new_names_in_every_namespace_torch_has_them():
    import ember.nn.qat as nnqat
    import ember.nn.quantized as nnq
    import ember.nn.intrinsic.qat as nniqat
    assert nnqat is ember.ao.nn.qat and nnqat.Conv3d is ember.ao.nn.qat.Conv3d
    assert nnq.Embedding is ember.ao.nn.quantized.Embedding
    assert nniqat.ConvBnReLU3d is ember.ao.nn.intrinsic.qat.ConvBnReLU3d
    for name in ("FixedQParamsObserver", "RecordingObserver", "FixedQParamsFakeQuantize",
                 "default_fixed_qparams_range_0to1_fake_quant",
                 "default_fixed_qparams_range_neg1to1_fake_quant",
                 "float_qparams_weight_only_qconfig_4bit"):
        assert hasattr(torch.ao.quantization, name)
        assert getattr(ember.quantization, name) is getattr(ember.ao.quantization, name)
    for name in ("Embedding", "EmbeddingBag"):
        assert hasattr(torch.ao.nn.quantized, name) and hasattr(ember.ao.nn.quantized, name)
    for name in ("ConvBn3d", "ConvBnReLU3d", "ConvReLU3d", "ConvReLU1d"):
        assert hasattr(torch.ao.nn.intrinsic.qat, name)
        assert hasattr(ember.ao.nn.intrinsic.qat, name)


@pytest.mark.parametrize("dtype", ["quint8", "qint8", "quint4x2"])
def test_zero_dim_quantize_as_torch(dtype):
    got = []
    for m in (torch, ember):
        q = m.quantize_per_tensor(m.tensor(1.37), 0.1, 3, getattr(m, dtype))
        assert q.dim() == 0 and q.numel() == 1
        with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
            len(q)
        got.append((q.int_repr().numpy(), q.dequantize().numpy()))
    for a, b in zip(*got):
        np.testing.assert_array_equal(b, a)
