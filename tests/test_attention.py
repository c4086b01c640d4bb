"""scaled_dot_product_attention and MultiheadAttention against PyTorch (outputs and gradients)."""
import copy
import re

import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, gradcheck, assert_close

EF = ember.nn.functional
TF = torch.nn.functional


def sdpa(m, q, k, v, mask=None, **kw):
    return m.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)


def bool_mask(*shape, seed=0, p=0.35):
    m = np.random.default_rng(seed).random(shape) > p
    m[..., 0] = True  # at least one key per query (fully masked rows are tested apart)
    return m


# ---- scaled_dot_product_attention ------------------------------------------------------------

@pytest.mark.parametrize("qs,ks,vs,mask,kw", [
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), None, {}),
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), bool_mask(4, 5), {}),           # bool 2-D
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), bool_mask(2, 1, 4, 5), {}),     # bool 4-D bcast
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), bool_mask(2, 3, 4, 5), {}),     # bool 4-D full
    ((2, 3, 6, 8), (2, 3, 4, 8), (2, 3, 4, 8), None, dict(is_causal=True)),    # L > S
    ((2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), None, dict(is_causal=True)),    # L < S
    ((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6), None, dict(scale=0.37)),
    ((2, 4, 4, 8), (2, 2, 5, 8), (2, 1, 5, 6), None, dict(enable_gqa=True)),
    ((2, 4, 4, 8), (2, 2, 5, 8), (2, 2, 5, 6), bool_mask(4, 5),
     dict(enable_gqa=True, scale=0.5)),
    ((2, 4, 6, 8), (2, 2, 6, 8), (2, 2, 6, 6), None, dict(enable_gqa=True, is_causal=True)),
    ((4, 8), (5, 8), (5, 6), None, {}),                                         # 2-D inputs
    ((3, 4, 8), (1, 5, 8), (1, 5, 6), bool_mask(3, 4, 5), {}),                  # batch bcast
    ((2, 1, 4, 8), (1, 3, 5, 8), (2, 3, 5, 6), None, {}),
])
def test_sdpa_matches_torch(qs, ks, vs, mask, kw):
    args = [rand(*qs, seed=1), rand(*ks, seed=2), rand(*vs, seed=3)]
    if mask is not None:
        args.append(mask)
    check(lambda m, *a: sdpa(m, *a, **kw), None, *args)


def test_sdpa_float_mask_gets_gradient():
    # an additive float mask is differentiable (dS summed over its broadcast dims)
    check(lambda m, q, k, v, a: sdpa(m, q, k, v, a), None, rand(2, 3, 4, 8, seed=1),
          rand(2, 3, 5, 8, seed=2), rand(2, 3, 5, 6, seed=3), rand(3, 1, 5, seed=4))
    check(lambda m, q, k, v, a: sdpa(m, q, k, v, a), None, rand(2, 3, 4, 8, seed=1),
          rand(2, 3, 5, 8, seed=2), rand(2, 3, 5, 6, seed=3), rand(4, 5, seed=4),
          grad_inputs=(0, 1, 2))


def test_sdpa_large_logits_are_stable():
    q = rand(2, 2, 4, 8, seed=1) * 40  # logits in the hundreds: exp overflows unless shifted
    check(lambda m, q, k, v: sdpa(m, q, k, v), None, q, rand(2, 2, 5, 8, seed=2),
          rand(2, 2, 5, 8, seed=3))


def test_sdpa_fully_masked_rows_are_zero_as_torch():
    # PyTorch 2.13 (CPU) returns 0 output and 0 gradients for a query that sees no key
    m = bool_mask(4, 5)
    m[1] = False
    fm = np.where(m, 0.0, -np.inf)
    for mask in (m, fm):
        check(lambda mo, q, k, v, a: sdpa(mo, q, k, v, a), None, rand(2, 3, 4, 8, seed=1),
              rand(2, 3, 5, 8, seed=2), rand(2, 3, 5, 6, seed=3), mask, grad_inputs=(0, 1, 2))
    q = ember.randn(1, 1, 4, 8, requires_grad=True)
    out = EF.scaled_dot_product_attention(q, ember.randn(1, 1, 5, 8), ember.randn(1, 1, 5, 8),
                                          attn_mask=ember.from_numpy(m))
    out.sum().backward()
    assert (out[0, 0, 1] == 0).all() and (q.grad[0, 0, 1] == 0).all()
    assert not out.isnan().any()


def unfused(q, k, v, mask=None, is_causal=False, scale=None):
    """The composition the fused node replaces: matmul -> softmax -> matmul."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.mT) * scale
    if is_causal:
        L, S = s.shape[-2:]
        s = s.masked_fill(ember.ones(L, S, dtype=ember.bool).triu(1), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == ember.bool else s + mask
    return ember.softmax(s, -1) @ v


@pytest.mark.parametrize("kw", [{}, dict(is_causal=True), dict(scale=0.2), "bool", "float"])
def test_sdpa_matches_unfused_composition(kw):
    q, k, v = (ember.from_numpy(rand(2, 3, 5, 4, seed=s)).requires_grad_() for s in (1, 2, 3))
    if kw == "bool":
        kw = dict(mask=ember.from_numpy(bool_mask(5, 5)))
    elif kw == "float":
        kw = dict(mask=ember.from_numpy(rand(2, 1, 5, 5, seed=4)))
    mask = kw.pop("mask", None)
    fused = EF.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
    ref = unfused(q, k, v, mask, **kw)
    assert fused.grad_fn.name() == "ScaledDotProductFlashAttentionForCpuBackward0"
    g = ember.from_numpy(rand(*fused.shape, seed=5))
    ga = ember.autograd.grad(fused, (q, k, v), g)
    gb = ember.autograd.grad(ref, (q, k, v), g)
    np.testing.assert_allclose(fused.detach().numpy(), ref.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, dict(is_causal=True), dict(enable_gqa=True), "mask"])
def test_sdpa_double_backward(kw):
    # create_graph: the backward is written with ember ops, so it differentiates again
    m = None
    if kw == "mask":
        m, kw = ember.from_numpy(bool_mask(3, 4)), {}
    shapes = ((1, 2, 3, 4), (1, 1, 4, 4), (1, 1, 4, 3)) if kw.get("enable_gqa") else \
        ((1, 2, 3, 4), (1, 2, 4, 4), (1, 2, 4, 3))
    if kw.get("is_causal"):
        shapes = tuple(s[:2] + (4,) + s[3:] for s in shapes)
    arrays = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    fn = lambda q, k, v: EF.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)  # noqa
    assert gradcheck(fn, *arrays)
    ts = [ember.from_numpy(a.copy()).requires_grad_() for a in arrays]
    assert ember.autograd.gradgradcheck(fn, ts)


def test_sdpa_dropout():
    q, k, v = (ember.from_numpy(rand(2, 2, 5, 4, seed=s)) for s in (1, 2, 3))
    ember.manual_seed(3)
    a = EF.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    ember.manual_seed(3)
    b = EF.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    c = EF.scaled_dot_product_attention(q, k, v, dropout_p=0.4)
    assert (a == b).all() and not (a == c).all()  # from ember's generator
    assert (EF.scaled_dot_product_attention(q, k, v, dropout_p=1.0) == 0).all()
    # unbiased: the average over many masks approaches the dropout-free output
    big = [x[:1].expand(4000, 2, 5, 4) for x in (q, k, v)]
    mean = EF.scaled_dot_product_attention(*big, dropout_p=0.4).mean(0)
    ref = EF.scaled_dot_product_attention(q[:1], k[:1], v[:1])[0]
    assert np.abs((mean - ref).numpy()).max() < 0.1
    # the backward uses the forward's mask: finite differences with the mask held fixed

    def fn(q, k, v):
        ember.manual_seed(7)
        return EF.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    assert gradcheck(fn, rand(1, 2, 3, 4, seed=1), rand(1, 2, 5, 4, seed=2),
                     rand(1, 2, 5, 3, seed=3))


def test_sdpa_half_precision_runs_in_float32():
    check(lambda m, q, k, v: sdpa(m, q, k, v, is_causal=True), None, rand(2, 2, 4, 8, seed=1),
          rand(2, 2, 4, 8, seed=2), rand(2, 2, 4, 8, seed=3), dtypes=("float16",), grad=False)


@pytest.mark.parametrize("args,kw,exc", [
    (((4,), (5, 4), (5, 6)), {}, RuntimeError),
    (((2, 4, 8), (2, 5, 7), (2, 5, 6)), {}, RuntimeError),
    (((2, 4, 8), (2, 5, 8), (2, 6, 6)), {}, RuntimeError),
    (((2, 4, 3, 8), (2, 3, 5, 8), (2, 3, 5, 8)), dict(enable_gqa=True), RuntimeError),
    (((2, 4, 3, 8), (2, 2, 5, 8), (2, 2, 5, 8)), {}, RuntimeError),
    (((3, 8), (5, 8), (5, 8)), dict(enable_gqa=True), IndexError),
    (((2, 2, 3, 8), (2, 2, 5, 8), (2, 2, 5, 8)), dict(dropout_p=1.5), RuntimeError),
])
def test_sdpa_bad_shapes_raise_like_torch(args, kw, exc):
    arrays = [rand(*s, seed=i) for i, s in enumerate(args)]
    with pytest.raises(exc) as et:
        sdpa(torch, *(torch.from_numpy(a) for a in arrays), **kw)
    with pytest.raises(exc, match=re.escape(str(et.value))):
        sdpa(ember, *(ember.from_numpy(a) for a in arrays), **kw)


def test_sdpa_bad_masks_raise_like_torch():
    q = rand(1, 2, 3, 4)
    for mask, kw in ((np.ones((3, 3), np.int64), {}), (np.zeros((3, 3), np.float64), {}),
                     (np.ones((4, 3), bool), {})):
        a = q.astype(np.float32)
        with pytest.raises(RuntimeError) as et:
            sdpa(torch, *(torch.from_numpy(a),) * 3, torch.from_numpy(mask), **kw)
        with pytest.raises(RuntimeError, match=re.escape(str(et.value))):
            sdpa(ember, *(ember.from_numpy(a),) * 3, ember.from_numpy(mask), **kw)
    # both an explicit mask and is_causal: the documented error (PyTorch's math kernel's)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when "
                                           "is_causal=True"):
        sdpa(ember, *(ember.from_numpy(q),) * 3, ember.ones(3, 3, dtype=ember.bool),
             is_causal=True)
    with pytest.raises(RuntimeError, match="expected scalar type Float but found Long"):
        sdpa(ember, *(ember.ones(2, 3, 4, dtype=ember.int64),) * 3)


# ---- MultiheadAttention ----------------------------------------------------------------------

def to_e(a, rg=False):
    t = ember.from_numpy(np.ascontiguousarray(a).copy())
    return t.requires_grad_() if rg else t


def to_t(a, rg=False):
    t = torch.from_numpy(np.ascontiguousarray(a).copy())
    return t.requires_grad_() if rg else t


def load(me, mt):
    me.load_state_dict({k: ember.from_numpy(v.detach().numpy().copy())
                        for k, v in mt.state_dict().items()})


def pair(cls_name, *args, dtype="float64", **kw):
    """A torch module and an ember module holding the same weights."""
    mt = getattr(torch.nn, cls_name)(*args, **kw).to(getattr(torch, dtype))
    me = getattr(ember.nn, cls_name)(*args, **kw).to(getattr(ember, dtype))
    load(me, mt)
    assert list(me.state_dict()) == list(mt.state_dict())
    return me, mt


def compare_module(me, mt, inputs, dtype, call=None, grad_idx=None, seed=0):
    """Run both modules on ``inputs`` (NumPy arrays or None/other values), compare every
    output, then back-propagate one random cotangent through all float outputs and compare
    every parameter's and every float input's gradient."""
    call = call or (lambda m, *a: m(*a))
    me.zero_grad()
    mt.zero_grad()
    rng = np.random.default_rng(seed)
    ie, it, diff = [], [], []
    seen = {}
    for i, a in enumerate(inputs):
        if isinstance(a, np.ndarray):
            if id(a) in seen:  # the same array twice: the same tensor (self-attention)
                j = seen[id(a)]
                ie.append(ie[j])
                it.append(it[j])
                continue
            seen[id(a)] = i
            if a.dtype.kind == "f":
                a = a.astype(dtype)
            rg = a.dtype.kind == "f" and (grad_idx is None or i in grad_idx)
            ie.append(to_e(a, rg))
            it.append(to_t(a, rg))
            if rg:
                diff.append(i)
        else:
            ie.append(a)
            it.append(a)
    oe, ot = call(me, *ie), call(mt, *it)
    oe = oe if isinstance(oe, tuple) else (oe,)
    ot = ot if isinstance(ot, tuple) else (ot,)
    assert len(oe) == len(ot)
    for a, b in zip(oe, ot):
        if b is None:
            assert a is None
            continue
        assert_close(a, b, dtype, "forward")
    pairs = [(a, b) for a, b in zip(oe, ot) if b is not None and b.requires_grad]
    le = sum(((a * to_e(g)).sum() for a, b in pairs
              for g in [rng.standard_normal(tuple(b.shape)).astype(dtype)]), ember.zeros(()))
    rng = np.random.default_rng(seed)
    lt = sum(((b * to_t(g)).sum() for a, b in pairs
              for g in [rng.standard_normal(tuple(b.shape)).astype(dtype)]), torch.zeros(()))
    le.backward()
    lt.backward()
    for (n, pe), (_, pt) in zip(me.named_parameters(), mt.named_parameters()):
        if pt.grad is None:
            assert pe.grad is None or not pe.grad.numpy().any(), n
        else:
            assert_close(pe.grad, pt.grad, dtype, f"grad of {n}")
    for i in diff:
        assert_close(ie[i].grad, it[i].grad, dtype, f"grad of input {i}")
    return oe


L, S, N, E, H = 4, 5, 3, 8, 2


def kpm_mask(n, s, seed=0, kind="bool"):
    m = np.random.default_rng(seed).random((n, s)) < 0.3
    m[..., 0] = False
    return m if kind == "bool" else np.where(m, -np.inf, 0.0)


def attn_mask(shape, seed=1, kind="bool"):
    m = np.random.default_rng(seed).random(shape) < 0.3
    m[..., 0] = False
    return m if kind == "bool" else np.where(m, -np.inf, 0.0) + np.random.default_rng(
        seed).uniform(-1, 1, shape)


MHA_CASES = {
    "plain": ({}, {}),
    "kpm_bool": ({}, dict(kpm="bool")),
    "kpm_float": ({}, dict(kpm="float")),
    "mask2d_bool": ({}, dict(am=2, kind="bool")),
    "mask2d_float": ({}, dict(am=2, kind="float")),
    "mask3d_bool": ({}, dict(am=3, kind="bool")),
    "mask3d_float_kpm": ({}, dict(am=3, kind="float", kpm="float")),
    "per_head_weights": ({}, dict(am=2, kind="float", average_attn_weights=False)),
    "no_weights": ({}, dict(am=2, kind="bool", kpm="bool", need_weights=False)),
    "bias_kv": (dict(add_bias_kv=True), dict(am=2, kind="float", kpm="float")),
    "zero_attn": (dict(add_zero_attn=True), dict(am=3, kind="bool", kpm="bool")),
    "bias_kv_zero_attn": (dict(add_bias_kv=True, add_zero_attn=True),
                          dict(need_weights=False, am=2, kind="float")),
    "kdim_vdim": (dict(kdim=5, vdim=3), dict(kpm="bool", am=2, kind="bool")),
    "kdim_vdim_no_weights": (dict(kdim=5, vdim=3), dict(need_weights=False)),
    "batch_first": (dict(batch_first=True), dict(kpm="float", am=2, kind="float")),
    "batch_first_no_weights": (dict(batch_first=True), dict(am=3, kind="bool",
                                                            need_weights=False)),
    "no_bias": (dict(bias=False), dict(am=2, kind="float")),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case,attn", [
    (case, attn) for case in MHA_CASES for attn in ("cross", "self", "kv_same")
    if attn == "cross" or "kdim" not in MHA_CASES[case][0]])  # kdim != E: cross attention only
def test_multihead_attention_matches_torch(case, attn, dtype):
    ctor, fw = MHA_CASES[case]
    me, mt = pair("MultiheadAttention", E, H, dtype=dtype, **ctor)
    kd, vd = ctor.get("kdim", E), ctor.get("vdim", E)
    src = L if attn == "self" else S
    q = rand(L, N, E, seed=1)
    k = q if attn == "self" else rand(S, N, kd, seed=2)
    v = k if attn != "cross" else rand(S, N, vd, seed=3)
    if ctor.get("batch_first"):
        q = q.transpose(1, 0, 2).copy()
        k = q if attn == "self" else k.transpose(1, 0, 2).copy()
        v = k if attn != "cross" else v.transpose(1, 0, 2).copy()
    kind = fw.get("kind", "bool")
    kpm = kpm_mask(N, src, kind=fw["kpm"]) if "kpm" in fw else None
    am = None
    if fw.get("am") == 2:
        am = attn_mask((L, src), kind=kind)
    elif fw.get("am") == 3:
        am = attn_mask((N * H, L, src), kind=kind)
    opts = {k2: fw[k2] for k2 in ("need_weights", "average_attn_weights") if k2 in fw}

    def call(m, q, k, v, kpm, am):
        return m(q, k, v, key_padding_mask=kpm, attn_mask=am, **opts)
    compare_module(me, mt, [q, k, v, kpm, am], dtype, call)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_unbatched(need_weights):
    me, mt = pair("MultiheadAttention", E, H, add_bias_kv=True, batch_first=True)
    q, k = rand(L, E, seed=1), rand(S, E, seed=2)
    kpm = kpm_mask(1, S, kind="float")[0]
    am = attn_mask((H, L, S), kind="float")
    for dtype in ("float64", "float32"):
        me2, mt2 = copy.deepcopy(me).to(getattr(ember, dtype)), mt.to(getattr(torch, dtype))
        compare_module(me2, mt2, [q, k, k, kpm, am], dtype,
                       lambda m, q, k, v, kp, a: m(q, k, v, key_padding_mask=kp, attn_mask=a,
                                                  need_weights=need_weights))


def test_multihead_attention_is_causal_hint():
    me, mt = pair("MultiheadAttention", E, H, batch_first=True)
    x = rand(N, L, E, seed=1)
    causal = np.triu(np.full((L, L), -np.inf), 1)
    for need in (True, False):
        compare_module(me, mt, [x, x, x, causal], "float64",
                       lambda m, q, k, v, a: m(q, k, v, attn_mask=a, is_causal=True,
                                              need_weights=need))
        me.zero_grad()
        mt.zero_grad()
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        me(to_e(x), to_e(x), to_e(x), is_causal=True)


def test_multi_head_attention_forward_functional():
    mt = torch.nn.MultiheadAttention(E, H, kdim=5, vdim=3).double()
    me = ember.nn.MultiheadAttention(E, H, kdim=5, vdim=3).double()
    load(me, mt)

    def call(m, q, k, v, kpm):
        mod = me if m is ember else mt
        return m.nn.functional.multi_head_attention_forward(
            q, k, v, E, H, None, mod.in_proj_bias, None, None, False, 0.0,
            mod.out_proj.weight, mod.out_proj.bias, training=True, key_padding_mask=kpm,
            use_separate_proj_weight=True, q_proj_weight=mod.q_proj_weight,
            k_proj_weight=mod.k_proj_weight, v_proj_weight=mod.v_proj_weight,
            average_attn_weights=False)
    check(call, None, rand(L, N, E, seed=1), rand(S, N, 5, seed=2), rand(S, N, 3, seed=3),
          kpm_mask(N, S), dtypes=("float64",))


def test_multihead_attention_init_and_repr():
    ember.manual_seed(0)
    m = ember.nn.MultiheadAttention(16, 4, add_bias_kv=True)
    t = torch.nn.MultiheadAttention(16, 4, add_bias_kv=True)
    assert repr(m) == repr(t)
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(m.out_proj, ember.nn.Linear)
    assert (m.in_proj_bias == 0).all() and (m.out_proj.bias == 0).all()
    bound = np.sqrt(6 / (16 + 48))  # xavier-uniform of the packed (3E, E) weight
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert m.bias_k.shape == (1, 1, 16) and m.bias_k.abs().sum() > 0
    sep = ember.nn.MultiheadAttention(16, 4, kdim=6, vdim=7, bias=False)
    assert [n for n, _ in sep.named_parameters()] == [
        n for n, _ in torch.nn.MultiheadAttention(16, 4, kdim=6, vdim=7, bias=False)
        .named_parameters()]
    assert sep.in_proj_weight is None and sep.k_proj_weight.shape == (16, 6)
    # deepcopy gives independent parameters
    c = copy.deepcopy(m)
    with ember.no_grad():
        c.in_proj_weight.add_(1.0)
    assert not (c.in_proj_weight == m.in_proj_weight).any()


def raises_like_torch(fn, exc=None):
    """``fn(torch)`` and ``fn(ember)`` raise the same exception type with the same message."""
    with pytest.raises(Exception) as et:
        fn(torch)
    if exc is not None:
        assert et.type is exc
    with pytest.raises(et.type, match=re.escape(str(et.value))):
        fn(ember)


def test_multihead_attention_bad_input():
    raises_like_torch(lambda m: m.nn.MultiheadAttention(10, 3), AssertionError)
    raises_like_torch(lambda m: m.nn.MultiheadAttention(0, 3), ValueError)
    mods = {}
    for m in (torch, ember):
        m.manual_seed(0)
        mods[m] = m.nn.MultiheadAttention(E, H)
    x = rand(L, N, E, seed=1)
    kv = rand(S, N, E, seed=2)

    def run(m, q=x, k=kv, **kw):
        q, k = q.astype(np.float32), k.astype(np.float32)
        return mods[m](m.from_numpy(q), m.from_numpy(k), m.from_numpy(k.copy()), **kw)
    bad_2d = np.zeros((L + 1, S), bool)
    raises_like_torch(lambda m: run(m, attn_mask=m.from_numpy(bad_2d)), RuntimeError)
    raises_like_torch(lambda m: run(m, attn_mask=m.from_numpy(np.zeros((N, L, S)))),
                      RuntimeError)
    raises_like_torch(lambda m: run(m, attn_mask=m.from_numpy(np.zeros((1, 1, L, S)))),
                      AssertionError)
    raises_like_torch(lambda m: run(m, attn_mask=m.from_numpy(np.zeros((L, S), np.int64))),
                      AssertionError)
    raises_like_torch(lambda m: run(m, key_padding_mask=m.from_numpy(np.zeros((N, S + 1),
                                                                              bool))),
                      AssertionError)
    raises_like_torch(lambda m: run(m, key_padding_mask=m.from_numpy(np.zeros((N + 1, S),
                                                                              bool))),
                      AssertionError)
    raises_like_torch(lambda m: run(m, key_padding_mask=m.from_numpy(np.zeros(S, bool))),
                      AssertionError)
    raises_like_torch(lambda m: run(m, q=rand(L, N, E + 2)), AssertionError)
    raises_like_torch(lambda m: run(m, q=rand(N, E)), AssertionError)
    raises_like_torch(lambda m: run(m, q=rand(2, L, N, E)), AssertionError)


def test_mismatched_mask_types_warn_like_torch():
    me, mt = pair("MultiheadAttention", E, H)
    x = rand(L, N, E, seed=1)
    for m, mod in ((torch, mt), (ember, me)):
        t = m.from_numpy(x.copy())
        with pytest.warns(UserWarning, match="Support for mismatched key_padding_mask and "
                                             "attn_mask is deprecated"):
            mod(t, t, t, key_padding_mask=m.from_numpy(kpm_mask(N, L)),
                attn_mask=m.from_numpy(attn_mask((L, L), kind="float")))


def test_multi_head_attention_forward_static_kv():
    mt = torch.nn.MultiheadAttention(E, H).double()
    me = ember.nn.MultiheadAttention(E, H).double()
    load(me, mt)

    def call(m, q, sk, sv, am):
        mod = me if m is ember else mt
        return m.nn.functional.multi_head_attention_forward(
            q, q, q, E, H, mod.in_proj_weight, mod.in_proj_bias, None, None, False, 0.0,
            mod.out_proj.weight, mod.out_proj.bias, attn_mask=am, static_k=sk, static_v=sv)
    # PyTorch checks the mask against key's length, so the static keys have that length
    check(call, None, rand(L, N, E, seed=1), rand(N * H, L, E // H, seed=2),
          rand(N * H, L, E // H, seed=3), attn_mask((L, L), kind="float"), dtypes=("float64",))
    with pytest.raises(AssertionError, match="expecting static_k.size\\(0\\) of 6, but got 5"):
        call(ember, *(to_e(a) for a in (rand(L, N, E), rand(5, L, E // H),
                                         rand(N * H, L, E // H))), None)


def test_merge_masks_as_torch():
    me, mt = pair("MultiheadAttention", E, H, batch_first=True)
    x = rand(N, L, E)
    am, kpm = attn_mask((L, L), kind="float"), kpm_mask(N, L, kind="float")
    re_, te = me.merge_masks(to_e(am), to_e(kpm), to_e(x)), mt.merge_masks(to_t(am), to_t(kpm),
                                                                           to_t(x))
    assert re_[1] == te[1] == 2
    assert_close(re_[0], te[0])
    assert me.merge_masks(None, to_e(kpm), to_e(x))[1] == 1
