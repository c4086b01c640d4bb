"""QAT modules' state dicts against torch.ao (x86 engine): after fuse_modules_qat and
prepare_qat of the same float model, the keys, their order, shapes and dtypes equal torch's
(fused conv-bn / linear-bn modules hold their BN as the child ``bn``, fake-quant buffers
included); a QAT checkpoint trained in one loads strictly into the other and gives the same
outputs; convert then matches torch's quantized model.  Also nn.qat.Embedding/EmbeddingBag."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

torch.backends.quantized.engine = "x86"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def _np(t):
    """A copy of ``t``'s values (a torch tensor's own ``.numpy()`` would make its storage
    unresizable, and the fused fake quant resizes its per-channel buffers)."""
    if isinstance(t, torch.Tensor):
        return t.detach().clone().numpy()
    return np.array(t.detach().numpy())


def _to_ember(sd):
    return {k: ember.from_numpy(_np(v)) for k, v in sd.items()}


def _to_torch(sd):
    return {k: torch.from_numpy(_np(v)) for k, v in sd.items()}


class _Net:
    """Float models (one per conv dimension) built the same way in torch and ember, with the
    fusion groups that give every fused QAT class."""

    @staticmethod
    def net2d(m):
        nn, q = m.nn, m.ao.quantization
        return nn.Sequential(q.QuantStub(),
                             nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4),
                             nn.Conv2d(4, 4, 1), nn.ReLU(),
                             nn.Conv2d(4, 3, 1),
                             nn.Flatten(), nn.Linear(48, 5), nn.BatchNorm1d(5),
                             nn.Linear(5, 6, bias=False), nn.BatchNorm1d(6),
                             nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3), q.DeQuantStub())

    FUSE2D = [["1", "2", "3"], ["4", "5"], ["6", "7"], ["10", "11"], ["12", "13"],
              ["14", "15"]]
    X2D = (8, 2, 6, 6)

    @staticmethod
    def net1d(m):
        nn, q = m.nn, m.ao.quantization
        return nn.Sequential(q.QuantStub(),
                             nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(),
                             nn.Conv1d(4, 3, 3, bias=False, padding=1), nn.BatchNorm1d(3),
                             q.DeQuantStub())

    FUSE1D = [["1", "2", "3"], ["4", "5"]]
    X1D = (6, 2, 9)

    @staticmethod
    def net3d(m):
        nn, q = m.nn, m.ao.quantization
        return nn.Sequential(q.QuantStub(),
                             nn.Conv3d(2, 3, 2), nn.BatchNorm3d(3), nn.ReLU(),
                             nn.Conv3d(3, 3, 1, bias=False), nn.BatchNorm3d(3),
                             nn.Conv3d(3, 2, 1), nn.ReLU(), q.DeQuantStub())

    FUSE3D = [["1", "2", "3"], ["4", "5"], ["6", "7"]]
    X3D = (4, 2, 3, 3, 3)


CASES = {"2d": (_Net.net2d, _Net.FUSE2D, _Net.X2D),
         "1d": (_Net.net1d, _Net.FUSE1D, _Net.X1D),
         "3d": (_Net.net3d, _Net.FUSE3D, _Net.X3D)}

QAT_TYPES = {"2d": ["ConvBnReLU2d", "ConvBn2d", "ConvReLU2d", "Conv2d", "LinearBn1d",
                    "LinearBn1d", "LinearReLU", "Linear"],
             "1d": ["ConvBnReLU1d", "ConvBn1d"],
             "3d": ["ConvBnReLU3d", "ConvBn3d", "ConvReLU3d"]}


def _prepared(case, qconfig="x86"):
    """torch's and ember's prepare_qat of the same float model (ember's loaded from torch);
    ``qconfig`` a backend's QAT qconfig or "default" (``default_qat_qconfig``)."""
    build, fuse, _ = CASES[case]
    torch.manual_seed(0)
    tm = build(torch).train()
    for mod in tm.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.copy_(torch.randn(mod.num_features) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features) * 0.1)
    em = build(ember).train()
    em.load_state_dict(_to_ember(tm.state_dict()))
    out = []
    for m, mod in ((torch, tm), (ember, em)):
        q = m.ao.quantization
        mod.qconfig = (q.default_qat_qconfig if qconfig == "default"
                       else q.get_default_qat_qconfig(qconfig))
        out.append(q.prepare_qat(q.fuse_modules_qat(mod, fuse)))
    return out


def _train(m, p, x, steps=3):
    """A few SGD steps on ``sum(out ** 2)``; the last one with observers off and BN frozen."""
    q = m.ao.quantization
    opt = m.optim.SGD(p.parameters(), lr=0.01)
    for step in range(steps):
        if step == steps - 1:
            p.apply(q.disable_observer)
            p.apply(m.ao.nn.intrinsic.qat.freeze_bn_stats)
        loss = (p(x) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _x(case, seed=1):
    return np.random.default_rng(seed).standard_normal(CASES[case][2]).astype(np.float32)


def _assert_state_equal(tsd, esd, rtol=0.0, atol=0.0):
    assert list(esd) == list(tsd)
    # torch reads old layouts by each module's saved version (observers at 3, conv-bn at 2)
    assert {k: v.get("version") for k, v in esd._metadata.items()} == \
        {k: v.get("version") for k, v in tsd._metadata.items()}
    for k in tsd:
        a, b = _np(tsd[k]), _np(esd[k])
        assert a.shape == b.shape and a.dtype == b.dtype, k
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("qconfig", ["x86", "qnnpack", "default"])
@pytest.mark.parametrize("case", list(CASES))
def test_prepare_qat_state_dict_keys_order_shapes_dtypes_match_torch(case, qconfig):
    tp, ep = _prepared(case, qconfig)
    qat = [type(mod).__name__ for _, mod in ep.named_children()
           if hasattr(mod, "weight_fake_quant")]
    assert qat == QAT_TYPES[case]
    assert [type(mod).__name__ for mod in tp.children()] == \
        [type(mod).__name__ for mod in ep.children()]
    _assert_state_equal(tp.state_dict(), ep.state_dict())
    # the fused conv-bn is the conv itself with the BN as a child, as torch's
    assert isinstance(ep[1], ember.nn.Conv2d if case == "2d" else ember.nn.Module)
    assert ep[1].bn.num_features == tp[1].bn.num_features


@pytest.mark.parametrize("case", list(CASES))
def test_torch_qat_checkpoint_loads_strictly_into_ember_and_back(case):
    tp, ep = _prepared(case)
    x = _x(case)
    _train(torch, tp, torch.from_numpy(x))
    ep.load_state_dict(_to_ember(tp.state_dict()), strict=True)
    # the loaded modes: frozen BNs stay in eval mode through train()
    ep.apply(ember.ao.nn.intrinsic.qat.freeze_bn_stats)
    assert not ep[1].bn.training and ep[1].training
    for mode in ("train", "eval"):
        getattr(tp, mode)()
        getattr(ep, mode)()
        x2 = _x(case, 2)
        ty = tp(torch.from_numpy(x2))
        ey = ep(ember.from_numpy(x2))
        np.testing.assert_allclose(_np(ey), _np(ty), rtol=1e-4, atol=1e-4)
    # the reverse: ember trains on, torch loads ember's checkpoint strictly
    ep.train()
    tp.train()
    ep.apply(ember.ao.quantization.enable_observer)
    _train(ember, ep, ember.from_numpy(x))
    tp.load_state_dict(_to_torch(ep.state_dict()), strict=True)
    _assert_state_equal(tp.state_dict(), ep.state_dict())
    tp.eval()
    ep.eval()
    np.testing.assert_allclose(_np(ep(ember.from_numpy(x))), _np(tp(torch.from_numpy(x))),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case,qconfig", [(c, "x86") for c in CASES] + [("2d", "default")])
def test_qat_training_then_convert_matches_torch(case, qconfig):
    tp, ep = _prepared(case, qconfig)
    x = _x(case)
    _train(torch, tp, torch.from_numpy(x))
    _train(ember, ep, ember.from_numpy(x))
    _assert_state_equal(tp.state_dict(), ep.state_dict(), rtol=1e-4, atol=1e-5)
    # from here on the same checkpoint, so convert sees identical statistics
    ep.load_state_dict(_to_ember(tp.state_dict()))
    tp.eval()
    ep.eval()
    tc = torch.ao.quantization.convert(tp)
    ec = ember.ao.quantization.convert(ep)
    assert [type(mod).__name__ for mod in ec.children()] == \
        [type(mod).__name__ for mod in tc.children()]
    for tmod, emod in zip(tc.children(), ec.children()):
        if callable(getattr(tmod, "weight", None)):
            tw, ew = tmod.weight(), emod.weight()
            np.testing.assert_array_equal(_np(ew.int_repr()), _np(tw.int_repr()))
            if tw.qscheme() == torch.per_channel_affine:
                np.testing.assert_allclose(_np(ew.q_per_channel_scales()),
                                           _np(tw.q_per_channel_scales()), rtol=1e-6)
            else:
                assert ew.q_scale() == pytest.approx(tw.q_scale(), rel=1e-6)
            assert emod.scale == pytest.approx(tmod.scale, rel=1e-6)
            assert emod.zero_point == tmod.zero_point
    ty = _np(tc(torch.from_numpy(x)))
    ey = _np(ec(ember.from_numpy(x)))
    step = [mod.scale for mod in tc.children() if hasattr(mod, "scale")][-1]
    assert np.abs(ey - ty).max() <= step + 1e-6  # within one step of the output's


def test_conv_bn_weights_are_shared_and_keys_are_torch_names():
    q = ember.ao.quantization
    conv, bn = ember.nn.Conv2d(2, 3, 3), ember.nn.BatchNorm2d(3)
    fused = ember.ao.nn.intrinsic.ConvBn2d(conv, bn)
    fused.qconfig = q.get_default_qat_qconfig("x86")
    m = ember.ao.nn.intrinsic.qat.ConvBn2d.from_float(fused)
    assert m.weight is conv.weight and m.bias is conv.bias
    assert m.bn.weight is bn.weight and m.bn.running_var is bn.running_var
    t = torch.ao.nn.intrinsic.qat.ConvBn2d(2, 3, 3, bias=True,
                                           qconfig=torch.ao.quantization.get_default_qat_qconfig())
    assert list(m.state_dict()) == list(t.state_dict())


@pytest.mark.parametrize("relu", [False, True])
def test_conv_bn_slow_path_and_to_float_match_torch(relu):
    name = "ConvBnReLU2d" if relu else "ConvBn2d"
    torch.manual_seed(3)
    tq = torch.ao.quantization
    t = getattr(torch.ao.nn.intrinsic.qat, name)(2, 3, 3, bias=True,
                                                 qconfig=tq.get_default_qat_qconfig("x86"))
    with torch.no_grad():
        t.bn.running_var.copy_(torch.rand(3) + 0.5)
        t.bn.running_mean.copy_(torch.randn(3) * 0.1)
    e = getattr(ember.ao.nn.intrinsic.qat, name)(
        2, 3, 3, bias=True, qconfig=ember.ao.quantization.get_default_qat_qconfig("x86"))
    e.load_state_dict(_to_ember(t.state_dict()))
    t._enable_slow_path_for_better_numerical_stability = True
    e._enable_slow_path_for_better_numerical_stability = True
    x = np.random.default_rng(4).standard_normal((4, 2, 5, 5)).astype(np.float32)
    for mode in ("train", "eval"):
        getattr(t, mode)()
        getattr(e, mode)()
        tx = torch.from_numpy(x).requires_grad_()
        ex = ember.from_numpy(x.copy()).requires_grad_()
        ty, ey = t(tx), e(ex)
        np.testing.assert_allclose(_np(ey), _np(ty), rtol=1e-4, atol=1e-5)
        ty.sum().backward()
        ey.sum().backward()
        np.testing.assert_allclose(_np(ex.grad), _np(tx.grad), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_np(e.weight.grad), _np(t.weight.grad), rtol=1e-3,
                                   atol=1e-4)
        _assert_state_equal(t.state_dict(), e.state_dict(), rtol=1e-5, atol=1e-6)
    tf, ef = t.to_float(), e.to_float()
    assert type(ef).__name__ == type(tf).__name__
    np.testing.assert_allclose(_np(ef(ember.from_numpy(x))), _np(tf(torch.from_numpy(x))),
                               rtol=1e-5, atol=1e-5)


def test_linear_bn_forward_gradients_and_to_float_match_torch():
    tq, eq = torch.ao.quantization, ember.ao.quantization
    torch.manual_seed(5)
    t = torch.ao.nn.intrinsic.qat.LinearBn1d(4, 3, qconfig=tq.get_default_qat_qconfig("x86"))
    with torch.no_grad():  # torch leaves this bias as torch.empty made it
        t.bias.uniform_(-0.5, 0.5)
    e = ember.ao.nn.intrinsic.qat.LinearBn1d(4, 3, qconfig=eq.get_default_qat_qconfig("x86"))
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict(_to_ember(t.state_dict()))
    x = np.random.default_rng(6).standard_normal((5, 4)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ex = ember.from_numpy(x.copy()).requires_grad_()
    ty, ey = t(tx), e(ex)
    np.testing.assert_allclose(_np(ey), _np(ty), rtol=1e-4, atol=1e-5)
    (ty ** 2).sum().backward()
    (ey ** 2).sum().backward()
    for a, b in ((ex.grad, tx.grad), (e.weight.grad, t.weight.grad),
                 (e.bn.weight.grad, t.bn.weight.grad)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-3, atol=1e-4)
    _assert_state_equal(t.state_dict(), e.state_dict(), rtol=1e-5, atol=1e-6)
    t.freeze_bn_stats()
    e.freeze_bn_stats()
    t.train()
    e.train()
    assert e.freeze_bn and not e.bn.training and e.training
    tf, ef = t.to_float().eval(), e.to_float().eval()
    np.testing.assert_allclose(_np(ef(ember.from_numpy(x))), _np(tf(torch.from_numpy(x))),
                               rtol=1e-5, atol=1e-5)


def test_fuse_linear_bn_eval_folds_as_torch():
    torch.manual_seed(7)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).eval()
    with torch.no_grad():
        tm[1].running_var.copy_(torch.rand(3) + 0.5)
        tm[1].running_mean.copy_(torch.randn(3))
    em = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.BatchNorm1d(3)).eval()
    em.load_state_dict(_to_ember(tm.state_dict()))
    tf = torch.ao.quantization.fuse_modules(tm, ["0", "1"])
    ef = ember.ao.quantization.fuse_modules(em, ["0", "1"])
    assert type(ef[0]) is ember.nn.Linear and type(ef[1]) is ember.nn.Identity
    _assert_state_equal(tf.state_dict(), ef.state_dict(), rtol=1e-6, atol=1e-6)


def _emb_model(m):
    nn, q = m.nn, m.ao.quantization

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4, padding_idx=0)
            self.bag = nn.EmbeddingBag(10, 4, mode="sum")
            self.quant = q.QuantStub()
            self.fc = nn.Linear(4, 3)
            self.dequant = q.DeQuantStub()

        def forward(self, i, o):
            x = self.emb(i).sum(1) + self.bag(i.reshape(-1), o)
            return self.dequant(self.fc(self.quant(x)))

    return M()


def _emb_prepared():
    torch.manual_seed(8)
    tm = _emb_model(torch).train()
    em = _emb_model(ember).train()
    em.load_state_dict(_to_ember(tm.state_dict()))
    out = []
    for m, mod in ((torch, tm), (ember, em)):
        q = m.ao.quantization
        mod.emb.qconfig = mod.bag.qconfig = q.default_embedding_qat_qconfig
        mod.quant.qconfig = mod.fc.qconfig = mod.dequant.qconfig = \
            q.get_default_qat_qconfig("x86")
        out.append(q.prepare_qat(mod, mapping=q.get_embedding_qat_module_mappings()))
    return out


IDX = np.array([[1, 2, 0], [4, 9, 9], [3, 3, 7], [0, 5, 6]])
OFFSETS = np.array([0, 2, 5, 9])


def test_qat_embeddings_state_forward_grad_and_convert_match_torch():
    tp, ep = _emb_prepared()
    assert type(ep.emb) is ember.ao.nn.qat.Embedding
    assert type(ep.bag) is ember.ao.nn.qat.EmbeddingBag
    _assert_state_equal(tp.state_dict(), ep.state_dict())
    args_t = (torch.from_numpy(IDX), torch.from_numpy(OFFSETS))
    args_e = (ember.from_numpy(IDX), ember.from_numpy(OFFSETS))
    ty, ey = tp(*args_t), ep(*args_e)
    np.testing.assert_allclose(_np(ey), _np(ty), rtol=1e-5, atol=1e-6)
    ty.sum().backward()
    ey.sum().backward()
    for name in ("emb", "bag"):
        np.testing.assert_allclose(_np(getattr(ep, name).weight.grad),
                                   _np(getattr(tp, name).weight.grad), rtol=1e-5, atol=1e-6)
    _assert_state_equal(tp.state_dict(), ep.state_dict(), rtol=1e-6, atol=1e-7)
    ep.load_state_dict(_to_ember(tp.state_dict()), strict=True)
    tp.eval()
    ep.eval()
    tc = torch.ao.quantization.convert(
        tp, mapping=torch.ao.quantization.get_embedding_static_quant_module_mappings())
    ec = ember.ao.quantization.convert(
        ep, mapping=ember.ao.quantization.get_embedding_static_quant_module_mappings())
    assert type(ec.emb) is ember.ao.nn.quantized.Embedding
    assert type(ec.bag) is ember.ao.nn.quantized.EmbeddingBag
    for name in ("emb", "bag"):
        tw, ew = getattr(tc, name).weight(), getattr(ec, name).weight()
        np.testing.assert_array_equal(_np(ew.int_repr()), _np(tw.int_repr()))
    np.testing.assert_allclose(_np(ec(*args_e)), _np(tc(*args_t)), atol=2 * tc.fc.scale)


def test_qat_embedding_from_float_and_to_float():
    eq, tq = ember.ao.quantization, torch.ao.quantization
    for m, q in ((torch, tq), (ember, eq)):
        f = m.nn.Embedding(6, 3)
        f.qconfig = q.default_embedding_qat_qconfig_4bit
        qat = m.ao.nn.qat.Embedding.from_float(f)
        assert qat.weight_fake_quant.dtype is m.quint4x2
        back = qat.to_float()
        assert type(back) is m.nn.Embedding
        np.testing.assert_array_equal(_np(back.weight), _np(f.weight))


# bad input: PyTorch's exception types (and messages) for each QAT constructor / fusion
def _bad_cases(m):
    nn, q = m.nn, m.ao.quantization
    qat, nniqat = m.ao.nn.qat, m.ao.nn.intrinsic.qat
    qc = q.get_default_qat_qconfig("x86")

    def wrong_float(cls, mod):
        mod.qconfig = qc
        return cls.from_float(mod)

    def fuse(mods, names):
        return q.fuse_modules_qat(nn.Sequential(*mods), names)

    return {
        "ConvBn2d without qconfig": (lambda: nniqat.ConvBn2d(2, 3, 3), "qconfig must be"),
        "LinearBn1d without qconfig": (lambda: nniqat.LinearBn1d(2, 3), "qconfig must be"),
        "Embedding without qconfig": (lambda: qat.Embedding(4, 2), "qconfig must be"),
        "Embedding with affine weights": (lambda: qat.Embedding(4, 2, qconfig=qc),
                                          "per_channel_affine_float_qparams"),
        "EmbeddingBag with affine weights": (lambda: qat.EmbeddingBag(4, 2, qconfig=qc),
                                             "per_channel_affine_float_qparams"),
        "ConvBn2d.from_float of a Conv2d": (lambda: wrong_float(nniqat.ConvBn2d,
                                                                nn.Conv2d(2, 3, 3)),
                                            "from_float only works for ConvBn2d"),
        "LinearBn1d.from_float of a Linear": (lambda: wrong_float(nniqat.LinearBn1d,
                                                                  nn.Linear(2, 3)),
                                              "from_float only works for LinearBn1d"),
        "Embedding.from_float of a Linear": (lambda: wrong_float(qat.Embedding,
                                                                 nn.Linear(2, 3)),
                                             "from_float only works for Embedding"),
        "linear-bn features differ": (lambda: fuse([nn.Linear(2, 3), nn.BatchNorm1d(4)],
                                                   ["0", "1"]),
                                      "Output features of Linear must match"),
        "linear-bn without affine": (lambda: fuse([nn.Linear(2, 3),
                                                   nn.BatchNorm1d(3, affine=False)],
                                                  ["0", "1"]), "affine set to True"),
        "linear-bn modes differ": (lambda: fuse([nn.Linear(2, 3), nn.BatchNorm1d(3).eval()],
                                                ["0", "1"]), "same mode"),
        "conv-bn channels differ": (lambda: fuse([nn.Conv2d(2, 3, 3), nn.BatchNorm2d(4)],
                                                 ["0", "1"]), "Output channel of Conv2d"),
    }


@pytest.mark.parametrize("name", list(_bad_cases(torch)))
def test_bad_input_raises_torch_exception(name):
    for m in (torch, ember):
        fn, match = _bad_cases(m)[name]
        with pytest.raises(AssertionError, match=match):
            fn()


@pytest.mark.parametrize("zp", [[2.5, 3.4, 0.5], [-127.5, 382.5, 1000.0], [0.0, 255.7, -0.5]])
def test_fake_quantize_per_channel_float_zero_points_match_torch(zp):
    """Float zero points (embeddings' float qparams) are added before rounding, and any
    value is accepted, as torch's kernel does; the gradient passes where in range."""
    x = np.random.default_rng(9).standard_normal((3, 5)).astype(np.float32)
    s = np.array([0.1, 0.02, 0.05], np.float32)
    z = np.array(zp, np.float32)
    outs = []
    for m in (torch, ember):
        xi = m.from_numpy(x.copy()).requires_grad_()
        y = m.fake_quantize_per_channel_affine(xi, m.from_numpy(s.copy()),
                                               m.from_numpy(z.copy()), 0, 0, 255)
        y.sum().backward()
        outs.append((_np(y), _np(xi.grad)))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(outs[1][1], outs[0][1])


def test_qat_checkpoint_files_cross_load(tmp_path):
    """``torch.save`` of a trained QAT model's state dict loads strictly into ember through
    ``ember.load`` and the converted models agree; ``ember.save``'s file loads into torch."""
    tp, ep = _prepared("2d")
    x = _x("2d")
    _train(torch, tp, torch.from_numpy(x))
    torch.save(tp.state_dict(), tmp_path / "qat.pt")
    ep.load_state_dict(ember.load(tmp_path / "qat.pt"), strict=True)
    _assert_state_equal(tp.state_dict(), ep.state_dict())
    ember.save(ep.state_dict(), tmp_path / "qat_ember.pt")
    tp.load_state_dict(torch.load(tmp_path / "qat_ember.pt", weights_only=True), strict=True)
    tp.eval()
    ep.eval()
    ty = _np(torch.ao.quantization.convert(tp)(torch.from_numpy(x)))
    ey = _np(ember.ao.quantization.convert(ep)(ember.from_numpy(x)))
    np.testing.assert_array_equal(ey, ty)


# every QAT class, built directly with the same arguments: torch's keys, order, shapes, dtypes
_CTOR = {
    "ConvBn1d": (2, 3, 3), "ConvBnReLU1d": (2, 3, 3), "ConvReLU1d": (2, 3, 3),
    "ConvBn2d": (2, 3, 3), "ConvBnReLU2d": (2, 3, 3), "ConvReLU2d": (2, 3, 3),
    "ConvBn3d": (2, 3, 2), "ConvBnReLU3d": (2, 3, 2), "ConvReLU3d": (2, 3, 2),
    "LinearBn1d": (4, 3), "LinearReLU": (4, 3),
}
_QAT_CTOR = {"Linear": (4, 3), "Conv1d": (2, 3, 3), "Conv2d": (2, 3, 3), "Conv3d": (2, 3, 2)}


def _ctor_cases():
    cases = [("intrinsic", n, a, b) for n, a in _CTOR.items() for b in (True, False)]
    cases += [("qat", n, a, b) for n, a in _QAT_CTOR.items() for b in (True, False)]
    cases += [("qat", "Embedding", (6, 3), None), ("qat", "EmbeddingBag", (6, 3), None)]
    return cases


@pytest.mark.parametrize("ns,name,args,bias", _ctor_cases())
def test_each_qat_class_state_dict_matches_torch(ns, name, args, bias):
    sds = []
    for m in (torch, ember):
        q = m.ao.quantization
        mod = getattr(m.ao.nn.intrinsic.qat if ns == "intrinsic" else m.ao.nn.qat, name)
        if bias is None:
            obj = mod(*args, qconfig=q.default_embedding_qat_qconfig)
        else:
            obj = mod(*args, bias=bias, qconfig=q.get_default_qat_qconfig("x86"))
        sds.append(obj.state_dict())
    tsd, esd = sds
    # fused QAT modules are fused modules, as torch's; the plain QAT ones are not
    assert isinstance(obj, ember.ao.nn.intrinsic._FusedModule) == \
        issubclass(getattr(torch.ao.nn.intrinsic.qat if ns == "intrinsic" else torch.ao.nn.qat,
                           name), torch.ao.nn.intrinsic._FusedModule)
    assert [(k, tuple(v.shape), str(v.dtype).split(".")[-1]) for k, v in esd.items()] == \
        [(k, tuple(v.shape), str(v.dtype).split(".")[-1]) for k, v in tsd.items()]
    assert {k: v.get("version") for k, v in esd._metadata.items()} == \
        {k: v.get("version") for k, v in tsd._metadata.items()}


@settings(max_examples=15, deadline=None)
@given(cin=st.integers(1, 3), cout=st.integers(1, 4), k=st.integers(1, 3),
       stride=st.integers(1, 2), pad=st.integers(0, 1), bias=st.booleans(),
       relu=st.booleans(), n=st.integers(2, 3), hw=st.integers(3, 6),
       dtype=st.sampled_from(["float32", "float64"]))
def test_conv_bn_train_forward_and_gradients_match_torch_over_shapes(cin, cout, k, stride,
                                                                      pad, bias, relu, n,
                                                                      hw, dtype):
    """Training-mode ConvBn2d / ConvBnReLU2d (BN batch statistics): output, input / weight /
    BN gradients and the updated buffers equal torch's; float32 with the x86 QAT qconfig
    (fused fake quant), float64 with ``default_qat_qconfig`` (torch's fused kernel is
    float32 only)."""
    name = "ConvBnReLU2d" if relu else "ConvBn2d"
    f64 = dtype == "float64"
    torch.manual_seed(cin * 100 + cout * 10 + k)
    mods = []
    for m in (torch, ember):
        q = m.ao.quantization
        qc = q.default_qat_qconfig if f64 else q.get_default_qat_qconfig("x86")
        mod = getattr(m.ao.nn.intrinsic.qat, name)(cin, cout, k, stride=stride, padding=pad,
                                                   bias=bias, qconfig=qc)
        mods.append(mod.double() if f64 else mod)
    t, e = mods
    if bias:
        with torch.no_grad():
            t.bias.uniform_(-0.5, 0.5)
    e.load_state_dict(_to_ember(t.state_dict()))
    x = np.random.default_rng(n * hw).standard_normal((n, cin, hw, hw)).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ex = ember.from_numpy(x.copy()).requires_grad_()
    ty, ey = t(tx), e(ex)
    assert ey.dtype == getattr(ember, dtype)
    np.testing.assert_allclose(_np(ey), _np(ty), rtol=1e-4, atol=1e-4)
    (ty * ty).sum().backward()
    (ey * ey).sum().backward()
    for a, b in ((ex.grad, tx.grad), (e.weight.grad, t.weight.grad),
                 (e.bn.weight.grad, t.bn.weight.grad), (e.bn.bias.grad, t.bn.bias.grad)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-3, atol=1e-3)
    # a .double() module's observers keep float64 statistics and scales, as torch's: the
    # weight's largest element sits on the range boundary (w / scale = 127.5), and the side
    # it rounds to (its gradient passes or not) follows the scale's last bit
    _assert_state_equal(t.state_dict(), e.state_dict(), rtol=1e-5, atol=1e-6)


def test_conv_bn_version_1_checkpoint_loads_as_torch():
    """A version-1 ConvBn2d state dict (BN entries as gamma/beta/... on the module) loads
    into the bn child, in torch and ember alike."""
    loaded = []
    for m in (torch, ember):
        qc = m.ao.quantization.get_default_qat_qconfig("x86")
        src = m.ao.nn.intrinsic.qat.ConvBn2d(2, 3, 3, qconfig=qc)
        sd = src.state_dict()
        for new, old in (("bn.weight", "gamma"), ("bn.bias", "beta"),
                         ("bn.running_mean", "running_mean"), ("bn.running_var", "running_var"),
                         ("bn.num_batches_tracked", "num_batches_tracked")):
            sd[old] = sd.pop(new) + 1 if new != "bn.num_batches_tracked" else sd.pop(new)
        sd._metadata[""]["version"] = 1
        dst = m.ao.nn.intrinsic.qat.ConvBn2d(2, 3, 3, qconfig=qc)
        dst.load_state_dict(sd, strict=True)
        loaded.append(_np(dst.bn.running_var) - _np(src.bn.running_var))
        del sd["gamma"]
        with pytest.raises(RuntimeError, match="bn.weight"):
            dst.load_state_dict(sd, strict=True)
    for diff in loaded:
        np.testing.assert_allclose(diff, 1.0)


_OBSERVERS = {
    "MinMaxObserver": {},
    "MovingAverageMinMaxObserver": {},
    "PerChannelMinMaxObserver": {"qscheme": "per_channel_symmetric", "dtype": "qint8"},
    "MovingAveragePerChannelMinMaxObserver": {"qscheme": "per_channel_affine"},
}


@pytest.mark.parametrize("name", list(_OBSERVERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_observer_statistics_follow_their_buffers_dtype_as_torch(name, dtype):
    """A ``.double()`` observer keeps float64 statistics and answers float64 scales (a float32
    one casts what it sees to float32), bit for bit as torch's."""
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal((3, 7)).astype(dtype) for _ in range(3)]
    res = []
    for m in (torch, ember):
        kw = {k: getattr(m, v) for k, v in _OBSERVERS[name].items()}
        obs = getattr(m.ao.quantization, name)(**kw)
        obs = obs.double() if dtype == "float64" else obs
        for x in xs:
            obs(m.from_numpy(x.copy()))
        scale, zp = obs.calculate_qparams()
        res.append((_np(obs.min_val), _np(obs.max_val), _np(scale), _np(zp)))
    for a, b in zip(*res):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(b, a)
