"""ember.onnx.export: a zoo of models checked by onnx's checker and run in onnxruntime.

Each model is exported, checked with ``onnx.checker.check_model(full_check=True)``, run in
onnxruntime and compared with ember eager (1e-5 relative to the output's scale); models with
``dynamic_axes`` are run again at another batch size / sequence length.
"""
import io

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-5


def _flat(out):
    if isinstance(out, (tuple, list)):
        for o in out:
            yield from _flat(o)
    else:
        yield out


def export_and_run(model, args, alt_args=(), opset=None, **kw):
    """Export, check, run in onnxruntime on ``args`` and each of ``alt_args``; the proto."""
    model.eval()
    f = io.BytesIO()
    ember.onnx.export(model, args, f, opset_version=opset, **kw)
    proto = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    for a in (args,) + tuple(alt_args):
        with ember.no_grad():
            want = [t.numpy() for t in _flat(model(*a))]
        got = sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), a)})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            scale = max(float(np.abs(w).max()), 1e-6) if w.size else 1.0
            if w.dtype == np.bool_ or w.dtype.kind in "iu":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=0, atol=RTOL * scale)
    return proto


# ---- the zoo -----------------------------------------------------------------------------------

class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(torch_sigmoid(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.fc3(F.relu(self.fc2(F.relu(self.fc1(x))))), dim=1)


def torch_sigmoid(x):
    return ember.sigmoid(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y += idt
        return self.relu(y)


class ResNet18ish(nn.Module):
    """ResNet-18's layout (stem, 4 stages of 2 basic blocks, pool, fc) at 1/8 width."""

    def __init__(self, w=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(ember.flatten(self.pool(self.layers(self.stem(x))), 1))


class MobileNetish(nn.Module):
    """Depthwise-separable blocks (MobileNet v1/v2 style) with ReLU6 and Hardswish."""

    def __init__(self):
        super().__init__()

        def dw(cin, cout, stride, act):
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                act(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), act())
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), dw(8, 16, 1, nn.ReLU6),
            dw(16, 24, 2, nn.Hardswish), dw(24, 24, 1, nn.Hardswish))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                  nn.Linear(24, 5))

    def forward(self, x):
        return self.head(self.features(x))


class RNNLM(nn.Module):
    def __init__(self, kind, bidirectional=False, vocab=20, dim=8, hidden=12, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = getattr(nn, kind)(dim, hidden, num_layers=layers, batch_first=True,
                                     bidirectional=bidirectional, dropout=0.1)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), vocab)

    def forward(self, tokens):
        y, _ = self.rnn(self.emb(tokens))
        return self.out(y)


class ElmanStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.RNN(6, 10, num_layers=2, nonlinearity="relu")
        self.b = nn.RNN(10, 5, bidirectional=True)

    def forward(self, x, h0):
        y, h = self.a(x, h0)
        z, hb = self.b(y)
        return z, h, hb


class GPTMini(nn.Module):
    """A two-block decoder-only transformer: causal attention via scaled_dot_product_attention."""

    def __init__(self, vocab=32, dim=16, heads=2, blocks=2, ctx=16):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(ctx, dim)
        self.heads = heads
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict({
                "ln1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim),
                "proj": nn.Linear(dim, dim), "ln2": nn.LayerNorm(dim),
                "mlp": nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                     nn.Linear(4 * dim, dim))}))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx):
        B, T = idx.shape
        x = self.tok(idx) + self.pos(ember.arange(T))
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["ln1"](x)).split(x.shape[-1], dim=2)
            q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + blk["proj"](y.transpose(1, 2).contiguous().view(B, T, -1))
            x = x + blk["mlp"](blk["ln2"](x))
        return self.head(self.ln(x))


class Seq2Seq(nn.Module):
    def __init__(self, vocab=24, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.tr = nn.Transformer(dim, 2, 2, 2, 32, dropout=0.1, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, src, tgt):
        T = tgt.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        return self.out(self.tr(self.emb(src), self.emb(tgt), tgt_mask=mask))


class MHAModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.mha2 = nn.MultiheadAttention(8, 4, kdim=6, vdim=5)

    def forward(self, x, kv, pad):
        a, w = self.mha(x, x, x, key_padding_mask=pad)
        mem_k = kv[..., :6].transpose(0, 1)
        mem_v = kv[..., 1:6].transpose(0, 1)
        b, _ = self.mha2(a.transpose(0, 1), mem_k, mem_v, need_weights=False)
        return a + b.transpose(0, 1), w


class AutoEncoder(nn.Module):
    """Strided conv down, transposed conv / bilinear up, a skip cat, GroupNorm."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 4, 2, 1)
        self.gn = nn.GroupNorm(2, 8)
        self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(8, 4, 3, groups=2, dilation=2, padding=2)
        self.mix = nn.Conv2d(4 + 3 + 4, 3, 1)

    def forward(self, x):
        h = F.silu(self.gn(self.down(x)))
        a = self.up(h)
        b = F.interpolate(self.up2(h), scale_factor=2, mode="bilinear", align_corners=False)
        return ember.tanh(self.mix(ember.cat([a, x, b], dim=1)))


class Conv1d3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 3, dilation=2, padding=2, padding_mode="reflect")
        self.c1b = nn.Conv1d(6, 6, 3, padding="same", padding_mode="replicate", groups=3)
        self.inorm = nn.InstanceNorm1d(6, affine=True)
        self.ct1 = nn.ConvTranspose1d(6, 4, 4, stride=2)
        self.c3 = nn.Conv3d(2, 4, 3, padding=1)
        self.bn3 = nn.BatchNorm3d(4)
        self.ct3 = nn.ConvTranspose3d(4, 2, 2, stride=2)

    def forward(self, x, v):
        y = F.avg_pool1d(self.ct1(self.inorm(self.c1b(self.c1(x)))), 3, 2, 1,
                         count_include_pad=False)
        w = F.max_pool3d(F.elu(self.bn3(self.c3(v))), 2, ceil_mode=True)
        w = F.adaptive_avg_pool3d(self.ct3(w), (1, 2, 3))
        return y, w


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.acts = nn.ModuleList([
            nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.SELU(), nn.CELU(1.3),
            nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Mish(), nn.Softplus(2.0, 5.0),
            nn.Sigmoid(), nn.Tanh(), nn.Hardtanh(-0.5, 0.7), nn.Hardsigmoid(), nn.Hardswish(),
            nn.LogSigmoid(), nn.Softshrink(0.3), nn.Hardshrink(0.4), nn.Tanhshrink(),
            nn.Softsign(), nn.Threshold(0.1, -2.0), nn.PReLU(4), nn.RReLU(), nn.GLU(1),
            nn.Softmax(1), nn.LogSoftmax(-1), nn.Softmin(1), nn.Softmax2d()])

    def forward(self, x):
        return tuple(a(x) for a in self.acts)


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(6)
        self.ln = nn.LayerNorm([6, 5], elementwise_affine=False)
        self.ln2 = nn.LayerNorm(5, bias=False)
        self.gn = nn.GroupNorm(3, 6)
        self.inorm = nn.InstanceNorm1d(6)

    def forward(self, x):
        return self.bn1(x) + self.ln(x) + self.gn(x) + self.inorm(x) + self.ln2(x)


class Shapes(nn.Module):
    """Reshape/transpose/index/gather/cat/split, reductions, where, comparisons, pads."""

    def forward(self, x, idx):
        a, b = x.split([2, 3], dim=1)
        c = ember.cat([b, a], 1).permute(0, 2, 1).reshape(x.shape[0], -1)
        g = ember.gather(x, 1, idx)
        s = x.sum(2) + x.mean(dim=(1, 2)).unsqueeze(-1) - x.amax(2).sum(-1, keepdim=True)
        m = ember.where(x > 0.1, x, x * -2).max(dim=2).values
        v = x.var(dim=2, unbiased=True) + x.std(2, correction=0) + x.prod(2)
        lse = ember.logsumexp(x, 2) + ember.cumsum(x, 2)[..., -1] + x.abs().min(2)[0]
        flags = ((x >= 0) & (x != 0.5) | (x < -1)).float().sum(2) + (x == x).all(2).float()
        p = F.pad(x, (1, 2, 0, 1), value=0.5)[:, 1:, ::2].flip(1)
        q = x.unbind(1)[2].t().matmul(x[:, 0, :2]).clamp(-1, 1) + x.argmax(2).float().sum()
        r = ember.stack([x[:, 0], x[:, -1]], 0).transpose(0, 1).expand(2, 2, 4).clone()
        sel = x.index_select(2, ember.tensor([3, 0])).masked_fill(x[..., :2] > 0, -1.0)
        return c, g, s + m + v + lse + flags, p, q, r.tril(), sel.triu(1).exp()


class Resample(nn.Module):
    def forward(self, x):
        a = F.interpolate(x, size=(7, 9), mode="nearest")
        b = F.interpolate(x, scale_factor=1.5, mode="bicubic", align_corners=True)
        c = F.interpolate(x, size=(5, 5), mode="area")
        d = F.adaptive_avg_pool2d(x, (3, 4))
        e = F.pad(x, (1, 2, 2, 1), mode="reflect") + 0
        f = F.pad(x, (2, 0, 1, 1), mode="replicate")
        g = F.adaptive_max_pool2d(x, 1)
        return a, b, c, d, e, f, g


class EncoderClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 16, padding_idx=0)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True,
                                           activation="gelu", norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(16, 3)

    def forward(self, tokens):
        h = self.enc(self.emb(tokens), src_key_padding_mask=tokens == 0)
        return self.fc(h.mean(1))


class MadeInForward(nn.Module):
    """Tensors made inside forward (sizes from the input's shape) and index tensors."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", ember.arange(80.0).reshape(16, 5) / 80)

    def forward(self, x, idx):
        B, T = x.shape[:2]
        x = x + self.table[:T]  # a buffer sliced to the sequence length (GPT's mask/positions)
        pad = ember.zeros(B, 2, x.shape[2])
        pos = ember.arange(T).float().unsqueeze(-1) * ember.ones_like(x)
        y = ember.cat([x + pos, pad], 1) * ember.full((B, 1, 1), 2.0)
        picked = y[idx].sum(0, keepdim=True) + y[:, ember.tensor([0, 1])].sum(1, keepdim=True)
        return picked, ember.triu(ember.ones(T, T), 1) @ x


class Losses(nn.Module):
    """The losses a model may compute at inference (a score against a reference)."""

    def forward(self, x, y, cls):
        p = ember.sigmoid(x)
        w = ember.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
        return (F.mse_loss(x, y), F.l1_loss(x, y, reduction="none"),
                F.smooth_l1_loss(x, y, beta=0.5, reduction="sum"), F.huber_loss(x, y, delta=0.7),
                F.binary_cross_entropy(p, ember.sigmoid(y)),
                F.binary_cross_entropy_with_logits(x, (y > 0).float(), pos_weight=w),
                F.cross_entropy(x, cls), F.cross_entropy(x, cls, weight=w, reduction="none"),
                F.nll_loss(F.log_softmax(x, 1), cls, ignore_index=2, reduction="sum"))


def _digits():
    from ember.cli.digits import build_model
    return build_model(ember)


def _tokens(b, t, vocab, seed=0):
    g = np.random.default_rng(seed)
    return ember.tensor(g.integers(1, vocab, (b, t)))


def _randn(*shape, seed=0):
    return ember.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# name -> (model factory, args, dynamic_axes as {input index: {axis: name}}, other args: at
# other sizes along the dynamic axes, else other values, so nothing input-dependent is baked)
ZOO = {
    "mlp": (lambda: nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(32, 4), nn.Softmax(-1)),
            lambda: (_randn(3, 10),), {0: {0: "batch"}}, lambda: (_randn(7, 10, seed=1),)),
    "lenet": (LeNet, lambda: (_randn(2, 1, 28, 28),), {0: {0: "batch"}},
              lambda: (_randn(1, 1, 28, 28, seed=1),)),
    "resnet18ish": (ResNet18ish, lambda: (_randn(2, 3, 32, 32),), {0: {0: "batch"}},
                    lambda: (_randn(3, 3, 32, 32, seed=1),)),
    "mobilenetish": (MobileNetish, lambda: (_randn(2, 3, 16, 16),), None,
                     lambda: (_randn(2, 3, 16, 16, seed=1),)),
    "digits_cnn": (_digits, lambda: (_randn(4, 1, 8, 8),), {0: {0: "batch"}},
                   lambda: (_randn(64, 1, 8, 8, seed=1),)),
    "lstm_lm": (lambda: RNNLM("LSTM", True), lambda: (_tokens(2, 5, 20),),
                {0: {0: "batch", 1: "seq"}}, lambda: (_tokens(3, 9, 20, 1),)),
    "gru_lm": (lambda: RNNLM("GRU"), lambda: (_tokens(2, 6, 20),),
               {0: {0: "batch", 1: "seq"}}, lambda: (_tokens(4, 3, 20, 1),)),
    "elman": (ElmanStack, lambda: (_randn(5, 3, 6), _randn(2, 3, 10, seed=1)), None,
              lambda: (_randn(5, 3, 6, seed=2), _randn(2, 3, 10, seed=3))),
    "gpt_mini": (GPTMini, lambda: (_tokens(2, 7, 32),), {0: {0: "batch", 1: "seq"}},
                 lambda: (_tokens(1, 11, 32, 1),)),
    "seq2seq": (Seq2Seq, lambda: (_tokens(2, 6, 24), _tokens(2, 5, 24, 1)), None,
                lambda: (_tokens(2, 6, 24, 2), _tokens(2, 5, 24, 3))),
    "mha": (MHAModel, lambda: (_randn(2, 5, 8), _randn(2, 4, 7, seed=1),
                               ember.tensor([[False] * 4 + [True], [False] * 5])), None,
            lambda: (_randn(2, 5, 8, seed=2), _randn(2, 4, 7, seed=3),
                     ember.tensor([[False] * 5, [False, True, False, True, True]]))),
    "autoencoder": (AutoEncoder, lambda: (_randn(2, 3, 8, 8),), {0: {0: "batch"}},
                    lambda: (_randn(1, 3, 8, 8, seed=1),)),
    "conv1d3d": (Conv1d3d, lambda: (_randn(2, 4, 12), _randn(1, 2, 4, 5, 6, seed=1)), None,
                 lambda: (_randn(2, 4, 12, seed=2), _randn(1, 2, 4, 5, 6, seed=3))),
    "activations": (Activations, lambda: (_randn(2, 4, 3, 6),), None,
                    lambda: (_randn(2, 4, 3, 6, seed=1),)),
    "norms": (Norms, lambda: (_randn(4, 6, 5),), None, lambda: (_randn(4, 6, 5, seed=1),)),
    "shapes": (Shapes, lambda: (_randn(2, 5, 4), ember.tensor(np.random.default_rng(3)
                                                              .integers(0, 5, (2, 3, 4)))),
               None, lambda: (_randn(2, 5, 4, seed=1), ember.tensor(
                   np.random.default_rng(4).integers(0, 5, (2, 3, 4))))),
    "made_in_forward": (MadeInForward, lambda: (_randn(3, 4, 5), ember.tensor([2, 0, -1, 1])),
                        {0: {0: "batch", 1: "seq"}},
                        lambda: (_randn(4, 6, 5, seed=1), ember.tensor([3, 3, 0, -2]))),
    "losses": (Losses, lambda: (_randn(4, 5), _randn(4, 5, seed=1), ember.tensor([0, 2, 4, 1])),
               None, lambda: (_randn(4, 5, seed=2), _randn(4, 5, seed=3),
                              ember.tensor([3, 2, 2, 0]))),
    "resample": (Resample, lambda: (_randn(2, 3, 6, 6),), None,
                 lambda: (_randn(2, 3, 6, 6, seed=1),)),
    "encoder_classifier": (EncoderClassifier,
                           lambda: (ember.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11]]),),
                           {0: {0: "batch", 1: "seq"}},
                           lambda: (ember.tensor([[3, 4, 5, 6, 1, 2, 0, 0]]),)),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo(name):
    make, args, dyn, alt = ZOO[name]
    ember.manual_seed(0)
    model = make()
    a = args()
    names = [f"in{i}" for i in range(len(a))]
    axes = None if dyn is None else {names[i]: ax for i, ax in dyn.items()}
    proto = export_and_run(model, a, (alt(),), input_names=names,
                           dynamic_axes=axes)
    if axes:
        for i, ax in dyn.items():
            dims = proto.graph.input[i].type.tensor_type.shape.dim
            for k, dn in ax.items():
                assert dims[k].dim_param == dn


@pytest.mark.parametrize("opset", [13, 14, 18, 21])
@pytest.mark.parametrize("name", ["gpt_mini", "activations", "norms", "shapes", "resample",
                                  "encoder_classifier", "lstm_lm"])
def test_opsets(name, opset):
    make, args, dyn, alt = ZOO[name]
    ember.manual_seed(0)
    model = make()
    a = args()
    names = [f"in{i}" for i in range(len(a))]
    axes = None if dyn is None else {names[i]: ax for i, ax in dyn.items()}
    proto = export_and_run(model, a, (alt(),), opset=opset, input_names=names,
                           dynamic_axes=axes)
    assert proto.opset_import[0].version == opset


# ---- the API around export ---------------------------------------------------------------------

class _Inv(nn.Module):
    def forward(self, x):
        return ember.linalg.inv(x) + 1


def test_unsupported_op_names_itself_and_opset():
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError,
                       match=r"'aten::linalg_inv_ex' to ONNX opset version 15"):
        ember.onnx.export(_Inv(), (_randn(3, 3),), io.BytesIO(), opset_version=15)
    assert issubclass(ember.onnx.errors.UnsupportedOperatorError, ember.onnx.OnnxExporterError)
    assert issubclass(ember.onnx.OnnxExporterError, RuntimeError)


def test_random_and_mask_index_refused():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + ember.randn(x.shape)

    class Masked(nn.Module):
        def forward(self, x):
            return x[x > 0].sum()
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError, match="'aten::randn'"):
        ember.onnx.export(Noisy(), (_randn(2, 3),), io.BytesIO())
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError, match="boolean mask"):
        ember.onnx.export(Masked(), (_randn(2, 3),), io.BytesIO())


def test_input_dependent_constant_refused():
    """A value computed from the inputs outside any op would be baked in: refused by name."""
    class XorMask(nn.Module):
        def forward(self, x):
            return ((x > 0) ^ (x < 0.5)).float() * x  # bool ^ has no Function

    class NumpyTrip(nn.Module):
        def forward(self, x):
            return x + ember.from_numpy(x.numpy() ** 2)

    for m in (XorMask(), NumpyTrip()):
        with pytest.raises(RuntimeError, match="outside any recorded op"):
            ember.onnx.export(m, (_randn(3, 4),), io.BytesIO())


def test_unsupported_form_names_op():
    m = nn.AdaptiveMaxPool2d((2, 3))
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError, match="adaptive_max_pool2"):
        ember.onnx.export(m, (_randn(1, 2, 5, 7),), io.BytesIO())


def test_custom_op_symbolic():
    """A user's symbolic for an op ember has no converter for (PyTorch's g.op interface)."""
    calls = []

    def inv_symbolic(g, x):
        calls.append(x.sizes())
        # not a real inverse: an ONNX op chain, enough to check it is the one used
        return g.op("Mul", x, g.op("Constant", value_t=np.array(2.0, np.float32)))

    ember.onnx.register_custom_op_symbolic("aten::linalg_inv_ex", inv_symbolic, 13)
    try:
        x = _randn(3, 3)
        f = io.BytesIO()
        ember.onnx.export(_Inv(), (x,), f)
        sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
        got, = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        np.testing.assert_allclose(got, x.numpy() * 2 + 1, rtol=1e-6)
        assert calls == [[3, 3]]
        with pytest.raises(ember.onnx.errors.UnsupportedOperatorError):  # not below its opset
            ember.onnx.unregister_custom_op_symbolic("aten::linalg_inv_ex", 13)
            ember.onnx.register_custom_op_symbolic("aten::linalg_inv_ex", inv_symbolic, 18)
            ember.onnx.export(_Inv(), (x,), io.BytesIO(), opset_version=17)
    finally:
        ember.onnx.unregister_custom_op_symbolic("aten::linalg_inv_ex", 18)
    with pytest.raises(ValueError, match="domain::name"):
        ember.onnx.register_custom_op_symbolic("linalg_inv", inv_symbolic, 13)


@pytest.mark.parametrize("opset", [12, 22])
def test_bad_opset(opset):
    with pytest.raises(RuntimeError, match=f"Unsupported onnx_opset_version: {opset}"):
        ember.onnx.export(nn.Linear(2, 2), (_randn(1, 2),), io.BytesIO(), opset_version=opset)


def test_bad_arguments():
    m = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="input_names"):
        ember.onnx.export(m, (_randn(1, 2),), io.BytesIO(), input_names=["a", "b"])
    with pytest.raises(ValueError, match="out of range"):
        ember.onnx.export(m, (_randn(1, 2),), io.BytesIO(), input_names=["a"],
                          dynamic_axes={"a": {3: "batch"}})
    with pytest.warns(UserWarning, match="Provided key y for dynamic axes"):
        ember.onnx.export(m, (_randn(1, 2),), io.BytesIO(), input_names=["x"],
                          dynamic_axes={"y": {0: "batch"}})
    with pytest.raises(TypeError, match="args must be tensors"):
        ember.onnx.export(m, ([1.0, 2.0],), io.BytesIO())
    with pytest.raises(ValueError, match="operator_export_type"):
        ember.onnx.export(m, (_randn(1, 2),), io.BytesIO(),
                          operator_export_type=ember.onnx.OperatorExportTypes.ONNX_ATEN)
    with pytest.raises(TypeError, match="path or a binary file"):
        ember.onnx.export(m, (_randn(1, 2),), 42)


def test_signature_options(tmp_path):
    """Path output, dynamo=False returns None, names, export_params, initializers as inputs."""
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    x = _randn(2, 3)
    path = tmp_path / "m.onnx"
    assert ember.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"],
                             output_names=["y"]) is None
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["y"]
    assert {t.name for t in proto.graph.initializer} == {"0.weight", "0.bias"}
    prog = ember.onnx.export(m, x, None, export_params=False)
    names = [i.name for i in prog.model_proto.graph.input]
    assert names[1:] == ["0.weight", "0.bias"] and not prog.model_proto.graph.initializer
    prog = ember.onnx.export(m, (x,), keep_initializers_as_inputs=True)
    assert len(prog.model_proto.graph.input) == 3 and len(prog.model_proto.graph.initializer) == 2
    np.testing.assert_allclose(prog(x)[0].numpy(), m(x).detach().numpy(), rtol=1e-6)
    buf = io.BytesIO()
    prog.save(buf)
    assert onnx.load_from_string(buf.getvalue()).graph.node


def test_training_mode_and_is_in_onnx_export():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            seen.append((ember.onnx.is_in_onnx_export(), self.training))
            return self.drop(x) * 2

    m = Probe()
    m.train()
    prog = ember.onnx.export(m, (_randn(3, 4),))
    assert seen and all(s == (True, False) for s in seen)  # captured in eval mode
    assert m.training and not ember.onnx.is_in_onnx_export()  # mode given back
    x = _randn(3, 4, seed=2)
    np.testing.assert_allclose(prog(x)[0].numpy(), x.numpy() * 2, rtol=1e-6)
    m.eval()
    seen.clear()
    ember.onnx.export(m, (_randn(3, 4),), training=ember.onnx.TrainingMode.PRESERVE)
    assert all(s == (True, False) for s in seen)
    assert list(ember.onnx.TrainingMode.__members__) == ["EVAL", "PRESERVE", "TRAINING"]
    assert "ONNX_FALLTHROUGH" in ember.onnx.OperatorExportTypes.__members__


def test_constant_folding_and_dynamic_output_names():
    """Weights transposed at export time; output dims named after the input's dynamic dims."""
    m = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    x = _randn(2, 5, 4)
    folded = ember.onnx.export(m, (x,), input_names=["x"], dynamic_axes={"x": [0, 1]})
    plain = ember.onnx.export(m, (x,), do_constant_folding=False, input_names=["x"],
                              dynamic_axes={"x": {0: "b", 1: "t"}})
    assert "Transpose" not in [n.op_type for n in folded.model_proto.graph.node]
    assert "Transpose" in [n.op_type for n in plain.model_proto.graph.node]
    dims = [d.dim_param for d in plain.model_proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["b", "t"]
    dims = [d.dim_param for d in folded.model_proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["x_dynamic_axes_1", "x_dynamic_axes_2"]
    for prog in (folded, plain):
        y = _randn(3, 7, 4, seed=1)
        np.testing.assert_allclose(prog(y)[0].numpy(), m(y).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def _lm(mod):
    nn_ = mod.nn

    class LM(nn_.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn_.Embedding(20, 8)
            self.rnn = nn_.LSTM(8, 12, num_layers=2, batch_first=True, bidirectional=True)
            self.out = nn_.Linear(24, 20)

        def forward(self, tokens):
            return self.out(self.rnn(self.emb(tokens))[0])
    return LM()


def _encoder(mod):
    nn_ = mod.nn
    layer = nn_.TransformerEncoderLayer(16, 4, 32, batch_first=True, activation="gelu")
    return nn_.Sequential(nn_.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                          nn_.LayerNorm(16))


def _digits_for(mod):
    from ember.cli.digits import build_model
    return build_model(mod)


@pytest.mark.parametrize("build,make_input", [
    (_digits_for, lambda: _randn(5, 1, 8, 8)),
    (_lm, lambda: _tokens(2, 6, 20)),
    (_encoder, lambda: _randn(2, 5, 16)),
], ids=["digits_cnn", "lstm_lm", "transformer_encoder"])
def test_matches_pytorchs_own_export(build, make_input):
    """Same weights: ember's export and PyTorch's (dynamo=False), both run in onnxruntime."""
    import torch
    ember.manual_seed(0)
    em = build(ember).eval()
    tm = build(torch).eval()
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in
                        em.state_dict().items()})
    x = make_input()
    f_ember, f_torch = io.BytesIO(), io.BytesIO()
    ember.onnx.export(em, (x,), f_ember, input_names=["x"])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tm, (torch.from_numpy(x.numpy()),), f_torch, input_names=["x"],
                          dynamo=False, opset_version=17)
    outs = []
    for f in (f_ember, f_torch):
        sess = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
        outs.append(sess.run(None, {"x": x.numpy()})[0])
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-5 * np.abs(outs[1]).max())


def test_missing_onnx_names_the_extra(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("no onnx")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib
    monkeypatch.setattr(importlib, "import_module", lambda n, *a: fake(n))
    with pytest.raises(ImportError, match=r"ember\[onnx\]"):
        ember.onnx.export(nn.Linear(2, 2), (_randn(1, 2),), io.BytesIO())


# ---- ember export CHECKPOINT OUT.onnx ----------------------------------------------------------

def _cli(argv):
    import contextlib
    from ember.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    rc, _, err = _cli(["train", "digits", "--epochs", "1", "--limit", "64", "--no-progress",
                       "--out", str(d)])
    assert rc == 0, err
    return d / "best.pt"


def test_cli_export(digits_checkpoint, tmp_path):
    out = tmp_path / "digits.onnx"
    rc, stdout, err = _cli(["export", str(digits_checkpoint), str(out)])
    assert rc == 0, err
    assert "input 'input' (batch, 1, 8, 8)" in stdout and "359 test digits" in stdout
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    # the file holds the checkpoint's weights: onnxruntime gives ember's logits at any batch
    ckpt = ember.load(str(digits_checkpoint))
    from ember.cli.digits import build_model
    model = build_model(ember)
    model.load_state_dict(ckpt["model"])
    model.eval()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = _randn(n, 1, 8, 8, seed=n)
        got, = sess.run(["logits"], {"input": x.numpy()})
        np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    rc, stdout, _ = _cli(["export", str(digits_checkpoint), str(tmp_path / "s.onnx"),
                          "--static-batch", "3", "--opset", "13", "--no-check"])
    assert rc == 0 and "(3, 1, 8, 8)" in stdout and "onnxruntime" not in stdout


@pytest.mark.parametrize("argv,msg", [
    (["{tmp}/missing.pt", "{tmp}/a.onnx"], "no such checkpoint file"),
    (["{ckpt}", "{tmp}/nodir/a.onnx"], "no such directory"),
    (["{ckpt}", "{tmp}/a.onnx", "--opset", "9"], "--opset must be between 13 and 21"),
    (["{ckpt}", "{tmp}/a.onnx", "--static-batch", "0"], "--static-batch must be at least 1"),
    (["{notckpt}", "{tmp}/a.onnx"], "is not a checkpoint written by"),
])
def test_cli_export_bad_input(digits_checkpoint, tmp_path, argv, msg):
    notckpt = tmp_path / "other.pt"
    ember.save({"weights": ember.zeros(2)}, str(notckpt))
    argv = [a.format(tmp=tmp_path, ckpt=digits_checkpoint, notckpt=notckpt) for a in argv]
    rc, _, err = _cli(["export"] + argv)
    assert rc != 0 and msg in err and "Traceback" not in err


def test_bench_workloads_agree_with_torch():
    """bench/wl_onnx.py: onnxruntime on ember's export and ember eager give torch's logits."""
    import torch
    from bench import wl_onnx
    for name in ("onnx_infer_b1", "onnx_ort_b64"):
        fn = getattr(wl_onnx, name)
        want = fn(torch)[0]().detach().numpy()
        got = np.asarray(fn(ember)[0]() if name.startswith("onnx_ort") else
                         fn(ember)[0]().numpy())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    step, convert = wl_onnx.onnx_export(ember)
    assert step() is None and convert(1.0) == 1e3


def test_circular_padding_needs_opset_19():
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
                      nn.ConstantPad1d((1, 2), 0.25))
    x = _randn(1, 2, 5, 6)
    export_and_run(m, (x,), ((_randn(1, 2, 5, 6, seed=1),),), opset=19)
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError,
                       match="circular padding.*opset version 17"):
        ember.onnx.export(m, (x,), io.BytesIO())


def test_dynamic_shapes_and_verbose(capsys):
    """``dynamic_shapes`` (the dynamo exporter's spelling) names the same symbolic dims."""
    m = RNNLM("GRU", bidirectional=True)
    prog = ember.onnx.export(m.eval(), (_tokens(2, 5, 20),), verbose=True,
                             dynamic_shapes={"tokens": {0: "batch", 1: "seq"}})
    assert "GRU" in capsys.readouterr().out
    dims = [d.dim_param for d in prog.model_proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq"]
    t = _tokens(3, 8, 20, seed=4)
    np.testing.assert_allclose(prog(t)[0].numpy(), m(t).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_training_mode_export_refuses_what_it_cannot_express():
    """TrainingMode.TRAINING: batch statistics updates and dropout's random mask are named."""
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError, match="training mode"):
        ember.onnx.export(bn, (_randn(5, 3),), io.BytesIO(),
                          training=ember.onnx.TrainingMode.TRAINING)
    assert not bn.training  # given back as it was
    drop = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    with pytest.raises(ember.onnx.errors.UnsupportedOperatorError, match="dropout_mask"):
        ember.onnx.export(drop, (_randn(5, 3),), io.BytesIO(),
                          training=ember.onnx.TrainingMode.TRAINING)


# ---- one op at a time --------------------------------------------------------------------------

def _x4(seed=0):
    return _randn(2, 4, 6, 6, seed=seed)


def _v(seed=0):
    return _randn(3, 5, seed=seed)


def _t(seed=0):
    return _randn(2, 8, 5, seed=seed)


# name -> (function of one tensor, input maker taking a seed)
OPS = {
    "pixel_shuffle": (lambda x: F.pixel_shuffle(x, 2), _x4),
    "pixel_unshuffle": (lambda x: F.pixel_unshuffle(x, 2), _x4),
    "channel_shuffle": (lambda x: F.channel_shuffle(x, 2), _x4),
    "normalize": (lambda v: F.normalize(v, dim=1), _v),
    "cosine_similarity": (lambda v: F.cosine_similarity(v, v.flip(0)), _v),
    "vector_norms": (lambda v: v.norm(dim=1) + ember.linalg.vector_norm(v, 3, 0).sum() +
                     ember.linalg.vector_norm(v, float("inf")), _v),
    "einsum": (lambda t: ember.einsum("bij,bkj->bik", t, t), _t),
    "interpolate_linear": (lambda t: F.interpolate(t, scale_factor=2, mode="linear"), _t),
    "interpolate_trilinear": (lambda x: F.interpolate(x.unsqueeze(2), size=(2, 8, 8),
                                                      mode="trilinear"), _x4),
    "avg_pool_ceil": (lambda x: F.avg_pool2d(x, 4, 4, ceil_mode=True), _x4),
    "max_pool1d": (lambda t: F.max_pool1d(t, 2) + F.max_pool1d(t, 3, 1, 1).sum(-1, True), _t),
    "adaptive_avg_pool1d": (lambda t: F.adaptive_avg_pool1d(t, 3), _t),
    "adaptive_max_pool_even": (lambda x: F.adaptive_max_pool2d(x, 3), _x4),
    "lp_pool": (lambda x: F.lp_pool2d(x, 2, 2), _x4),
    "topk_sort": (lambda v: v.topk(2, dim=1).values.sum(1) + v.sort(dim=0, descending=True)
                  .values[0].sum(), _v),
    "var_std_mean": (lambda v: ember.std_mean(v, 1)[0] + ember.var_mean(v, 1, keepdim=True)[1]
                     .squeeze(1), _v),
    "powers": (lambda v: v ** 2 + v.pow(3) + 2 ** v + v.abs().rsqrt() + v.exp2(), _v),
    "logs": (lambda v: v.abs().log2() + v.abs().log10() + v.abs().log1p() + v.expm1(), _v),
    "chunk_narrow": (lambda v: v.chunk(2, 1)[1] + v.narrow(1, 1, 2), _v),
    "roll": (lambda v: v.roll(1, 1) + v.roll((2, -1), (0, 1)) + v.roll(4), _v),
    "repeat_interleave": (lambda v: v.repeat_interleave(2, dim=0), _v),
    "bmm_baddbmm": (lambda t: ember.baddbmm(t[..., :1], t, t.transpose(1, 2), alpha=0.5,
                                            beta=2.0) + ember.bmm(t, t.transpose(1, 2)), _t),
    "addmm": (lambda v: ember.addmm(v[:, :3], v, v.t(), beta=0.5), _v),
    "softsign_tanhshrink": (lambda t: F.softsign(t) + F.tanhshrink(t), _t),
    "clamp_tensor": (lambda t: t.clamp(min=t[:, :1]) + t.clamp(max=0.3), _t),
    "div_modes": (lambda v: v // 0.5 + v % 0.7 + ember.div(v, 0.3, rounding_mode="trunc"), _v),
    "rounding": (lambda v: v.sign() * v.round() + v.floor() + v.ceil() + v.trunc(), _v),
    "trig": (lambda v: v.sin() + v.cos() + v.tanh().atan() + (v.tanh() * 0.9).asin() +
             v.sinh() + v.cosh().acosh() + v.asinh() + (v.tanh() * 0.9).atanh(), _v),
    "unflatten_movedim": (lambda t: t.unflatten(1, (2, 4)).movedim(0, -1), _t),
    "squeeze_expand": (lambda t: t[:1].squeeze() + t[:, :1].expand_as(t).sum(0), _t),
    "where_scalar": (lambda t: ember.where(t > 0, t, 0.0) + ember.maximum(t, t.flip(0)), _t),
    "nan_to_num": (lambda t: ember.nan_to_num(t.log()) + ember.nan_to_num(1 / (t * 0)), _t),
    "comparisons": (lambda t: ember.logical_xor(t > 0, t <= 0.5).float() +
                    (~(t >= 0)).float() + ((t > 0) & (t < 1) | (t == 0)).float() +
                    t.isnan().float() + t.isfinite().float() - (t < t.flip(0)).float(), _t),
    "argmax_argmin": (lambda t: t.argmax(-1).unsqueeze(-1) * 10 + t.argmin(1, keepdim=True) +
                      t.argmax(), _t),
    "cast_dtypes": (lambda t: (t * 4).long().float() + (t > 0).to(ember.float64).float(), _t),
    "logsumexp_softmin": (lambda t: ember.logsumexp(t, -1, keepdim=True) + F.softmin(t, 1) +
                          F.log_softmax(t, 0), _t),
    "glu_prelu": (lambda t: F.glu(t, 1) + F.prelu(t[:, :4], ember.tensor([0.1, 0.2, 0.3, 0.4]))
                  .sum(), _t),
    "tril_triu_diag": (lambda v: v.tril(-1) + v.triu(2) + ember.tril(v, 1), _v),
    "flip_repeat": (lambda v: v.flip(0, 1).repeat(2, 1, 1).sum(0), _v),
    "index_ops": (lambda v: v[:, ::2][:, None, -1] + v[[2, 0]].sum() + v[..., 1:3].sum(-1,
                                                                                keepdim=True),
                  _v),
    "pad_modes": (lambda t: F.pad(t, (1, 1), mode="reflect").sum() + F.pad(t, (2, 0, 1, 0),
                                                                          value=-1.0).sum(), _t),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log of negatives in nan_to_num's row
@pytest.mark.parametrize("name", sorted(OPS))
def test_op(name):
    fn, make = OPS[name]

    class M(nn.Module):
        def forward(self, a):
            return fn(a)
    export_and_run(M(), (make(),), ((make(1),),))


def test_data_dependent_branch_warns_as_pytorch_does():
    """A branch on a tensor's value is baked into the file: PyTorch's exporter warns with a
    TracerWarning (its tracer's), and so does ember's."""
    import warnings
    import torch

    class Branchy(ember.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x - 1

    class TBranchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x - 1

    for mod, framework, x in ((Branchy(), ember, ember.ones(2, 3)),
                              (TBranchy(), torch, torch.ones(2, 3))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            framework.onnx.export(mod, (x,), io.BytesIO(), dynamo=False)
        names = [type(w.message).__name__ for w in caught]
        assert "TracerWarning" in names, (framework.__name__, names)
