"""Transformer layers, stacks and nn.Transformer against PyTorch; positional encodings; the
gpt_step workload."""
import math
import re

import numpy as np
import pytest
import torch

import ember
from opcheck import rand, assert_close
from test_attention import compare_module, load, to_e, to_t

from bench import workloads  # noqa: F401  (registers the workloads)
from bench.harness import REGISTRY, _as_array
from bench.wl_attention import _gpt_model

D, NH, FF = 8, 2, 16
S, T, N = 5, 4, 3


def pair(cls_name, *args, dtype="float64", **kw):
    mt = getattr(torch.nn, cls_name)(*args, **kw).to(getattr(torch, dtype))
    me = getattr(ember.nn, cls_name)(*args, **kw).to(getattr(ember, dtype))
    assert list(me.state_dict()) == list(mt.state_dict())
    load(me, mt)
    return me, mt


def pad_mask(n, s, seed=0):
    m = np.random.default_rng(seed).random((n, s)) < 0.3
    m[:, 0] = False
    return m


def causal(n):
    return np.triu(np.full((n, n), -np.inf), 1)


def seq(shape_sf, batch_first, seed):
    x = rand(*shape_sf, seed=seed)
    return x.transpose(1, 0, 2).copy() if batch_first else x


ENC_CASES = [
    dict(),
    dict(mask="causal"),
    dict(mask="bool", kpm=True),
    dict(kpm=True, is_causal=False),
    dict(mask="causal", is_causal=True),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("case", range(len(ENC_CASES)))
def test_encoder_layer_matches_torch(case, train, norm_first, dtype):
    fw = ENC_CASES[case]
    batch_first = case % 2 == 1
    act = ["relu", "gelu", torch.nn.functional.gelu][case % 3]
    me, mt = pair("TransformerEncoderLayer", D, NH, FF, dropout=0.0, batch_first=batch_first,
                  norm_first=norm_first, dtype=dtype, activation=act if isinstance(act, str)
                  else "gelu")
    if not isinstance(act, str):  # a callable activation
        me.activation, mt.activation = ember.nn.functional.gelu, torch.nn.functional.gelu
    me.train(train)
    mt.train(train)
    x = seq((S, N, D), batch_first, 1)
    mask = {"causal": causal(S), "bool": pad_mask(S, S, seed=3), None: None}[fw.get("mask")]
    kpm = pad_mask(N, S) if fw.get("kpm") else None
    kw = {"is_causal": fw["is_causal"]} if "is_causal" in fw else {}
    compare_module(me, mt, [x, mask, kpm], dtype,
                   lambda m, x, a, k: m(x, src_mask=a, src_key_padding_mask=k, **kw))


DEC_CASES = [
    dict(),
    dict(tgt_mask="causal", tgt_is_causal=True),
    dict(tgt_mask="causal", memory_kpm=True, tgt_kpm=True),
    dict(memory_mask=True, tgt_mask="causal"),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("case", range(len(DEC_CASES)))
def test_decoder_layer_matches_torch(case, train, norm_first, dtype):
    fw = DEC_CASES[case]
    batch_first = case % 2 == 0
    me, mt = pair("TransformerDecoderLayer", D, NH, FF, dropout=0.0, batch_first=batch_first,
                  norm_first=norm_first, dtype=dtype, activation="gelu" if case else "relu")
    me.train(train)
    mt.train(train)
    tgt = seq((T, N, D), batch_first, 1)
    mem = seq((S, N, D), batch_first, 2)
    tm = causal(T) if fw.get("tgt_mask") else None
    mm = np.random.default_rng(5).uniform(-1, 1, (T, S)) if fw.get("memory_mask") else None
    tk = pad_mask(N, T, seed=6) if fw.get("tgt_kpm") else None
    mk = pad_mask(N, S, seed=7) if fw.get("memory_kpm") else None
    kw = {"tgt_is_causal": fw["tgt_is_causal"]} if "tgt_is_causal" in fw else {}
    compare_module(me, mt, [tgt, mem, tm, mm, tk, mk], dtype,
                   lambda m, t, s, a, b, c, d: m(t, s, tgt_mask=a, memory_mask=b,
                                                 tgt_key_padding_mask=c,
                                                 memory_key_padding_mask=d, **kw))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_transformer_end_to_end(batch_first, norm_first, dtype):
    torch.manual_seed(0)
    me, mt = pair("Transformer", D, NH, 2, 2, FF, dropout=0.0, batch_first=batch_first,
                  norm_first=norm_first, dtype=dtype)
    src = seq((S, N, D), batch_first, 1)
    tgt = seq((T, N, D), batch_first, 2)
    tm = torch.nn.Transformer.generate_square_subsequent_mask(T).numpy()
    sk = pad_mask(N, S)
    compare_module(me, mt, [src, tgt, tm, sk, sk], dtype,
                   lambda m, s, t, a, k, mk: m(s, t, tgt_mask=a, src_key_padding_mask=k,
                                                memory_key_padding_mask=mk))


def test_transformer_unbatched_and_eval():
    me, mt = pair("Transformer", D, NH, 1, 1, FF, dropout=0.1)
    me.eval()
    mt.eval()
    compare_module(me, mt, [rand(S, D, seed=1), rand(T, D, seed=2), causal(T)], "float64",
                   lambda m, s, t, a: m(s, t, tgt_mask=a))


def test_encoder_eval_no_grad_zeroes_padding_as_torch():
    # torch's nested-tensor path (eval, no autograd, left-aligned padding) returns zeros at the
    # padded positions before the final norm
    layer_t = torch.nn.TransformerEncoderLayer(D, NH, FF, batch_first=True)
    layer_e = ember.nn.TransformerEncoderLayer(D, NH, FF, batch_first=True)
    mt = torch.nn.TransformerEncoder(layer_t, 2, norm=torch.nn.LayerNorm(D)).eval()
    me = ember.nn.TransformerEncoder(layer_e, 2, norm=ember.nn.LayerNorm(D)).eval()
    load(me, mt)
    assert me.use_nested_tensor == mt.use_nested_tensor is True
    x = rand(N, S, D, seed=1).astype(np.float32)
    kpm = np.zeros((N, S), bool)
    kpm[0, 3:] = True
    kpm[2, 4:] = True
    with torch.no_grad():
        ot = mt(to_t(x), src_key_padding_mask=to_t(kpm))
    with ember.no_grad():
        oe = me(to_e(x), src_key_padding_mask=to_e(kpm))
    assert_close(oe, ot, "float32")
    # not left aligned: the plain path (no zeroing) in both
    kpm2 = np.zeros((N, S), bool)
    kpm2[1, 1] = True
    with torch.no_grad():
        ot = mt(to_t(x), src_key_padding_mask=to_t(kpm2))
    with ember.no_grad():
        oe = me(to_e(x), src_key_padding_mask=to_e(kpm2))
    assert_close(oe, ot, "float32")
    norm_first = ember.nn.TransformerEncoder(
        ember.nn.TransformerEncoderLayer(D, NH, FF, norm_first=True), 2)
    assert norm_first.use_nested_tensor is False


def test_state_dict_keys_and_module_names():
    for name, args in (("TransformerEncoderLayer", (D, NH)), ("TransformerDecoderLayer", (D, NH)),
                       ("Transformer", (D, NH, 2, 2, FF))):
        me = getattr(ember.nn, name)(*args)
        mt = getattr(torch.nn, name)(*args)
        assert list(me.state_dict()) == list(mt.state_dict())
        assert [n for n, _ in me.named_modules()] == [n for n, _ in mt.named_modules()]
    assert repr(ember.nn.TransformerEncoderLayer(D, NH, FF)) == repr(
        torch.nn.TransformerEncoderLayer(D, NH, FF))
    enc = ember.nn.TransformerEncoder(ember.nn.TransformerEncoderLayer(D, NH, bias=False), 3,
                                      enable_nested_tensor=False, mask_check=False)
    assert list(enc.state_dict()) == list(torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(D, NH, bias=False), 3,
        enable_nested_tensor=False).state_dict())


def test_encoder_clones_are_independent_deep_copies():
    layer = ember.nn.TransformerEncoderLayer(D, NH, FF)
    enc = ember.nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a is not layer and a.self_attn.in_proj_weight is not b.self_attn.in_proj_weight
    assert (a.linear1.weight == b.linear1.weight).all()  # copies of one layer
    with ember.no_grad():
        a.linear1.weight.add_(1.0)
    assert not (a.linear1.weight == b.linear1.weight).any()
    assert not (layer.linear1.weight == a.linear1.weight).any()


def test_transformer_init_and_square_subsequent_mask():
    m = ember.nn.Transformer.generate_square_subsequent_mask(4)
    t = torch.nn.Transformer.generate_square_subsequent_mask(4)
    assert_close(m, t)
    assert m.dtype == ember.float32
    assert ember.nn.Transformer.generate_square_subsequent_mask(3, dtype=ember.float64).dtype \
        == ember.float64
    ember.manual_seed(0)
    tr = ember.nn.Transformer(16, 2, 1, 1, 32)
    w = tr.encoder.layers[0].linear1.weight.detach().numpy()  # xavier-uniform on every matrix
    bound = math.sqrt(6 / (16 + 32))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_bad_input_raises_like_torch():
    def raises(fn, exc):
        with pytest.raises(exc) as et:
            fn(torch)
        with pytest.raises(exc, match=re.escape(str(et.value))):
            fn(ember)
    raises(lambda m: m.nn.TransformerEncoderLayer(D, NH, activation="tanh"), RuntimeError)
    raises(lambda m: m.nn.TransformerDecoderLayer(D, NH, activation="swish"), RuntimeError)
    raises(lambda m: m.nn.TransformerEncoderLayer(10, 3), AssertionError)
    mods = {}
    for m in (torch, ember):
        m.manual_seed(0)
        mods[m] = m.nn.Transformer(D, NH, 1, 1, FF)
    x = rand(S, N, D).astype(np.float32)
    y = rand(T, N, D).astype(np.float32)
    raises(lambda m: mods[m](m.from_numpy(x[..., :6].copy()), m.from_numpy(y[..., :6].copy())),
           RuntimeError)
    raises(lambda m: mods[m](m.from_numpy(x), m.from_numpy(y[:, :2].copy())), RuntimeError)
    raises(lambda m: mods[m](m.from_numpy(x), m.from_numpy(y),
                             src_mask=m.from_numpy(np.zeros((S + 1, S), np.float32))),
           RuntimeError)
    raises(lambda m: mods[m](m.from_numpy(x), m.from_numpy(y),
                             src_key_padding_mask=m.from_numpy(np.zeros((N, S + 2), bool))),
           AssertionError)
    raises(lambda m: mods[m](m.from_numpy(x), m.from_numpy(y),
                             tgt_mask=m.from_numpy(np.zeros((T, T), np.int32))),
           RuntimeError)  # the causal-mask detection fails first, as in PyTorch
    layer = {m: m.nn.TransformerEncoderLayer(D, NH, FF) for m in (torch, ember)}
    raises(lambda m: layer[m](m.from_numpy(x), src_mask=m.from_numpy(np.zeros((S, S),
                                                                              np.int64))),
           AssertionError)


# ---- positional encodings (ember additions) --------------------------------------------------

def test_sinusoidal_positional_encoding():
    d, L = 6, 7
    pe = ember.nn.SinusoidalPositionalEncoding(d, max_len=50)
    assert list(pe.state_dict()) == []  # non-persistent buffer
    x = rand(L, 2, d).astype(np.float32)
    out = pe(to_e(x)).numpy()
    pos = np.arange(L)[:, None]
    i = np.arange(0, d, 2)
    ref = np.zeros((L, d))
    ref[:, 0::2] = np.sin(pos / 10000 ** (i / d))
    ref[:, 1::2] = np.cos(pos / 10000 ** (i / d))
    np.testing.assert_allclose(out, x + ref[:, None].astype(np.float32), rtol=1e-6, atol=1e-6)
    bf = ember.nn.SinusoidalPositionalEncoding(d, batch_first=True)
    np.testing.assert_allclose(bf(to_e(x.transpose(1, 0, 2).copy())).numpy(),
                               out.transpose(1, 0, 2), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pe(to_e(x[:, 0].copy())).numpy(), out[:, 0], rtol=1e-6)
    odd = ember.nn.SinusoidalPositionalEncoding(5, max_len=4, dtype=ember.float64)
    assert odd.pe.shape == (4, 5) and odd.pe.dtype == ember.float64
    # the encoding carries the gradient through unchanged
    t = to_e(x, True)
    pe(t).sum().backward()
    assert (t.grad == 1).all()
    with pytest.raises(RuntimeError, match="sequence length 51 exceeds max_len 50"):
        pe(ember.zeros(51, 1, d))


def test_learned_positional_embedding():
    ember.manual_seed(0)
    lp = ember.nn.LearnedPositionalEmbedding(10, 4)
    assert list(lp.state_dict()) == ["embedding.weight"]
    ids = ember.zeros(2, 6, dtype=ember.int64)
    out = lp(ids)
    assert out.shape == (6, 4)
    np.testing.assert_array_equal(out.detach().numpy(), lp.embedding.weight[:6].detach().numpy())
    np.testing.assert_array_equal(lp(ids, offset=3).detach().numpy(),
                                  lp.embedding.weight[3:9].detach().numpy())
    out.sum().backward()
    g = lp.embedding.weight.grad.numpy()
    assert (g[:6] == 1).all() and (g[6:] == 0).all()
    with pytest.raises(RuntimeError, match="exceed max_len 10"):
        lp(ember.zeros(1, 11, dtype=ember.int64))


# ---- the gpt_step workload -------------------------------------------------------------------

def test_gpt_step_workload_matches_torch():
    # Three steps: the later ones depend on the first step's gradients through AdamW.
    outs = {}
    for mod in (ember, torch):
        step, convert = REGISTRY["gpt_step"].fn(mod)
        outs[mod] = [_as_array(step()) for _ in range(3)]
        assert convert(1.0) > 0
    lr = 1e-3
    # The key bias (the middle third of each in_proj_bias) has a zero gradient in theory:
    # softmax ignores the per-row constant q.b_k, so its AdamW steps are pure rounding noise.
    named = list(_gpt_model(torch, np.random.default_rng(0)).named_parameters())
    key_bias = np.zeros(sum(p.numel() for _, p in named), bool)
    start = 0
    for name, p in named:
        if name.endswith("in_proj_bias"):
            d = p.numel() // 3
            key_bias[start + d:start + 2 * d] = True
        start += p.numel()
    for i, (e, t) in enumerate(zip(outs[ember], outs[torch])):
        # the snapshot is [loss, parameters...]
        np.testing.assert_allclose(e[0], t[0], rtol=1e-5)
        # Adam's first steps are about lr * sign(grad).  A few gradients are exactly 0 in
        # theory (the key bias: softmax ignores the per-row constant q.b_k) or tiny, so their
        # computed values are rounding noise whose sign either library may get: those few
        # elements may differ by up to 2 lr a step; every other one must agree closely.
        diff = np.abs(e[1:] - t[1:])
        off = (diff > 1e-5 + 1e-4 * np.abs(t[1:]))[~key_bias]
        assert off.mean() < 1e-3, f"step {i + 1}: {off.sum()} of {off.size} parameters differ"
        assert diff.max() <= 2 * lr * (i + 1) + 1e-5
    # each step moves the parameters by about lr: far above the tolerance
    moved = np.abs(outs[ember][1] - outs[ember][0])[1:]
    assert np.median(moved) > 5e-4
