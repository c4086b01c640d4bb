"""Constructs of public programs that call ``torch.compile`` (nanoGPT's train.py and sample.py,
timm's benchmark.py), reproduced without their sources: each compiled run equals ember
eager and real torch, and each construct that once broke under ``ember run`` works."""
import typing

import numpy as np
import pytest
import torch

import ember
import ember.jit.annotations
from ember._dynamo.utils import counters


pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _gpt(t):
    """nanoGPT's model.py in miniature, written once over ``t`` (torch or ember): LayerNorm
    without bias, fused qkv, causal scaled_dot_product_attention, GELU MLP, tied lm_head,
    cross_entropy with ignore_index=-1, and the last position only when there are no targets."""
    nn, F = t.nn, t.nn.functional

    class Block(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.ln_1 = nn.LayerNorm(d, bias=False)
            self.c_attn = nn.Linear(d, 3 * d, bias=False)
            self.c_proj = nn.Linear(d, d, bias=False)
            self.ln_2 = nn.LayerNorm(d, bias=False)
            self.fc = nn.Linear(d, 4 * d, bias=False)
            self.gelu = nn.GELU()
            self.proj = nn.Linear(4 * d, d, bias=False)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (z.view(B, T, self.h, C // self.h).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0,
                                               is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.proj(self.gelu(self.fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self, vocab=11, block=8, d=16, h=2, layers=2):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab, d), wpe=nn.Embedding(block, d),
                h=nn.ModuleList([Block(d, h) for _ in range(layers)]),
                ln_f=nn.LayerNorm(d, bias=False)))
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets=None):
            b, t_ = idx.size()
            pos = t.arange(0, t_, dtype=t.long, device=idx.device)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                       ignore_index=-1)
            else:
                logits = self.lm_head(x[:, [-1], :])
                loss = None
            return logits, loss

        @t.no_grad()
        def generate(self, idx, new_tokens):
            for _ in range(new_tokens):
                logits, _ = self(idx[:, -8:])
                idx = t.cat((idx, logits[:, -1, :].argmax(-1, keepdim=True)), dim=1)
            return idx

    return GPT


def _nanogpt_run(t, compiled, steps=6):
    """train.py's loop: AdamW over decay / no-decay groups, the lr set in each group every
    iteration, clip_grad_norm_, zero_grad(set_to_none=True), loss.item(); an eval-mode,
    no-grad estimate_loss at iterations 0 and 3; then generate() on the returned model."""
    rs = np.random.RandomState(0)
    model = _gpt(t)()
    with t.no_grad():
        for p in model.parameters():
            p.copy_(t.from_numpy(rs.normal(0, 0.2, tuple(p.shape)).astype(np.float32)))
    params = [p for p in model.parameters()]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = t.optim.AdamW(groups, lr=1e-2, betas=(0.9, 0.99))
    if compiled:
        model = t.compile(model)
    data = rs.randint(0, 11, 400)

    def batch():
        ix = rs.randint(0, len(data) - 9, 4)
        x = t.stack([t.from_numpy(data[i:i + 8].astype(np.int64)) for i in ix])
        y = t.stack([t.from_numpy(data[i + 1:i + 9].astype(np.int64)) for i in ix])
        return x, y

    losses, evals = [], []
    for it in range(steps):
        if it % 3 == 0:
            model.eval()
            with t.no_grad():
                evals.append(model(*batch())[1].item())
            model.train()
        for group in opt.param_groups:
            group["lr"] = 1e-2 * (it + 1) / steps
        x, y = batch()
        _, loss = model(x, y)
        loss.backward()
        t.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    sample = model.generate(t.zeros((1, 1), dtype=t.long), 10)[0].tolist()
    keys = list(model.state_dict())[:2]
    return np.array(losses), np.array(evals), sample, keys


def test_nanogpt_train_loop_compiled_equals_eager_and_torch():
    compiled = _nanogpt_run(ember, True)
    eager = _nanogpt_run(ember, False)
    ref = _nanogpt_run(torch, False)
    np.testing.assert_array_equal(compiled[0], eager[0])
    np.testing.assert_array_equal(compiled[1], eager[1])
    np.testing.assert_allclose(compiled[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(compiled[1], ref[1], rtol=1e-5)
    assert compiled[2] == eager[2] == ref[2]
    # train.py saves the compiled model's state_dict; sample.py strips this prefix
    assert compiled[3] == ["_orig_mod.transformer.wte.weight",
                           "_orig_mod.transformer.wpe.weight"]
    assert counters["stats"]["unique_graphs"] >= 2  # train and eval graphs were compiled


# ---- torch.jit.annotations (timm's densenet imports List from it) -----------------------------

def test_jit_annotations_names_are_typings_and_torchs():
    for name in ("List", "Tuple", "Dict", "Optional", "Any", "Union"):
        assert getattr(ember.jit.annotations, name) is getattr(typing, name)
        assert getattr(torch.jit.annotations, name) is getattr(typing, name)
    for n in range(1, 7):
        marker = getattr(ember.jit.annotations, f"BroadcastingList{n}")
        assert marker is ember.jit.annotations.BroadcastingList1
        assert marker[int] is None and torch.jit.annotations.BroadcastingList2[int] is None


def test_jit_annotations_resolves_under_the_torch_alias():
    import ember.compat
    ember.compat.install()
    try:
        from torch.jit.annotations import List  # noqa: F811 (the alias's module)
        import torch.jit.annotations as aliased
        assert aliased is ember.jit.annotations and List is typing.List
    finally:
        ember.compat.uninstall()


def test_dense_layer_annotated_with_list_compiles_as_eager():
    """timm's DenseLayer: a forward taking ``List[Tensor]`` and concatenating it."""
    from ember.jit.annotations import List
    nn = ember.nn

    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm2d(6)
            self.conv = nn.Conv2d(6, 4, 1)

        def forward(self, inputs: List[ember.Tensor]) -> ember.Tensor:
            return self.conv(ember.relu(self.norm(ember.cat(inputs, 1))))

    ember.manual_seed(0)
    m = Dense()
    xs = [ember.randn(2, 3, 5, 5, requires_grad=True) for _ in range(2)]
    out_c = ember.compile(m)(xs)
    out_c.sum().backward()
    grads_c = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    out_e = m(xs)
    out_e.sum().backward()
    np.testing.assert_allclose(out_c.detach().numpy(), out_e.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    assert counters["stats"]["unique_graphs"] == 1
    for gc, x in zip(grads_c, xs):
        np.testing.assert_allclose(gc.numpy(), x.grad.numpy(), rtol=1e-6, atol=1e-6)


# ---- in-place ops inside a compiled training step (timm's MobileNetV3 / EfficientNet) -------

def _se_net(t, act):
    """A conv, an in-place activation, a squeeze-excite gate multiplied in place, a head."""
    nn = t.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, padding=1)
            self.act = act(t)
            self.se = nn.Conv2d(6, 6, 1)
            self.pw = nn.Conv2d(6, 6, 1)
            self.head = nn.Linear(6, 4)

        def forward(self, x):
            x = self.act(self.conv(x))
            gate = self.se(x.mean((2, 3), keepdim=True)).sigmoid()
            x = self.pw(x)
            x.mul_(gate)  # mul saves its input (for the gate's gradient), then writes it
            return self.head(x.mean((2, 3)))

    return Net()


ACTS = {"silu": lambda t: t.nn.SiLU(inplace=True),
        "hardswish": lambda t: t.nn.Hardswish(inplace=True),
        "hardsigmoid": lambda t: t.nn.Hardsigmoid(inplace=True),
        "mish": lambda t: t.nn.Mish(inplace=True),
        "relu": lambda t: t.nn.ReLU(inplace=True),
        "elu": lambda t: t.nn.ELU(inplace=True)}


def _se_run(t, act, compiled, dtype):
    rs = np.random.RandomState(0)
    model = _se_net(t, ACTS[act]).to(getattr(t, dtype))
    with t.no_grad():
        for p in model.parameters():
            p.copy_(t.from_numpy(rs.normal(0, 0.5, tuple(p.shape)).astype(dtype)))
    opt = t.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step_model = t.compile(model) if compiled else model
    losses = []
    for _ in range(4):
        x = t.from_numpy(rs.normal(size=(2, 3, 5, 5)).astype(dtype))
        y = t.from_numpy(rs.randint(0, 4, 2).astype(np.int64))
        loss = t.nn.functional.cross_entropy(step_model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), model.conv.weight.detach().numpy().copy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", sorted(ACTS))
def test_inplace_activation_and_gate_train_compiled_as_eager_and_torch(act, dtype):
    compiled = _se_run(ember, act, True, dtype)
    eager = _se_run(ember, act, False, dtype)
    ref = _se_run(torch, act, False, dtype)
    tol = 1e-5 if dtype == "float32" else 1e-10
    for c, e, r in zip(compiled, eager, ref):
        np.testing.assert_allclose(c, e, rtol=tol, atol=tol)
        np.testing.assert_allclose(c, r, rtol=tol * 10, atol=tol * 10)


# ---- in-place writes into intermediates become dataflow (timm's ReLU(inplace=True)) --------

def _w(t, rs, *shape):
    return t.from_numpy(rs.normal(0, 0.5, shape).astype(np.float64)).requires_grad_()


def _twice(t, x, w):
    h = x @ w
    t.nn.functional.silu(h, inplace=True)
    h.mul_(2.0)
    return (h * w.sum(0)).sum(1)  # mul saves h, after both writes


def _view_before(t, x, w):
    h = x @ w
    v = h[:, :2]  # a view taken before the write sees it: stays a copy_
    h.sigmoid_()
    return v * 3 + h[:, 1:3]


def _gate(t, x, w):
    h = x @ w
    h.add_(x[:, :4])
    h.mul_(t.sigmoid(h.sum(1, keepdim=True)))
    return t.nn.functional.silu(h, inplace=True)


def _into_input(t, x, w):
    y = (x * 1.5) @ w
    x2 = x.clone()
    x2.tanh_()
    return y + x2 @ w


def _scaled_positions(t, x, w):
    m = t.arange(4, dtype=t.float64)
    m.mul_(2.0)  # no autograd: a write that is never folded with its first values
    return (x @ w) * m


def _ones_times(t, x, w):
    m = t.ones(3, 4, dtype=t.float64)
    m.mul_(x @ w)
    return m * 2


INPLACE = {"twice": _twice, "view_before": _view_before, "gate": _gate,
           "into_clone": _into_input, "scaled_positions": _scaled_positions,
           "ones_times": _ones_times}


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_writes_compiled_equal_eager_and_torch(name):
    fn = INPLACE[name]

    def run(t, compiled):
        rs = np.random.RandomState(3)
        x, w = _w(t, rs, 3, 5), _w(t, rs, 5, 4)
        f = t.compile(lambda a, b: fn(t, a, b)) if compiled else (lambda a, b: fn(t, a, b))
        outs = []
        for _ in range(2):
            y = f(x, w)
            y.sum().backward()
            outs += [y.detach().numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy()]
            x.grad = w.grad = None
        return outs

    compiled, eager, ref = run(ember, True), run(ember, False), run(torch, False)
    for c, e, r in zip(compiled, eager, ref):
        np.testing.assert_allclose(c, e, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c, r, rtol=1e-10, atol=1e-12)


def test_inplace_relu_block_compiles_as_one_region_without_copy():
    """timm's BasicBlock: bn, ReLU(inplace=True), ``x += shortcut``, ReLU(inplace=True): one
    compiled region (not the op-by-op replay a copy_ forces), numbers as eager's."""
    from ember._dynamo.backends import lookup_backend
    from ember._functorch import CompiledRegion
    from ember.fx.experimental.proxy_tensor import COPY_
    nn = ember.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            shortcut = x
            x = self.act(self.bn(self.conv(x)))
            x += shortcut
            return self.act(x)

    got = []

    def backend(gm, example_inputs):
        got.append(lookup_backend("inductor")(gm, example_inputs))
        return got[-1]

    ember.manual_seed(0)
    m = Block()
    x = ember.randn(2, 4, 5, 5)
    cm = ember.compile(m, backend=backend)
    y = cm(x)
    y.square().sum().backward()
    gc = m.conv.weight.grad.clone()
    m.conv.weight.grad = None
    assert len(got) == 1 and isinstance(got[0], CompiledRegion)
    assert not any(n.target is COPY_ for n in got[0].gm.graph.nodes)
    assert got[0].gm.meta_functionalized == 3
    ye = m(x)
    ye.square().sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ye.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gc.numpy(), m.conv.weight.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_writes_without_grad_compiled_equal_eager(name):
    """Without autograd an in-place op reads no snapshot: the write stays a copy_."""
    fn = INPLACE[name]
    x, w = ember.randn(3, 5, dtype=ember.float64), ember.randn(5, 4, dtype=ember.float64)
    f = ember.compile(lambda a, b: fn(ember, a, b))
    with ember.no_grad():
        for _ in range(2):
            np.testing.assert_array_equal(f(x, w).numpy(), fn(ember, x, w).numpy())


def test_inplace_relu_block_without_grad_compiles_without_copy():
    """Inference (timm's benchmark under no_grad): the writes go too, numbers as eager's."""
    from ember._dynamo.backends import lookup_backend
    from ember._functorch import CompiledRegion
    from ember.fx.experimental.proxy_tensor import COPY_
    nn = ember.nn
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                      nn.Conv2d(4, 4, 1), nn.Hardswish(inplace=True)).eval()
    got = []

    def backend(gm, example_inputs):
        got.append(lookup_backend("inductor")(gm, example_inputs))
        return got[-1]

    cm = ember.compile(m, backend=backend)
    with ember.no_grad():
        for _ in range(2):
            x = ember.randn(2, 3, 6, 6)
            np.testing.assert_allclose(cm(x).numpy(), m(x).numpy(), rtol=1e-6, atol=1e-6)
    assert len(got) == 1 and isinstance(got[0], CompiledRegion)
    assert not any(n.target is COPY_ for n in got[0].gm.graph.nodes)
