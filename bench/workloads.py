"""The workloads, each written once against a module argument (``ember`` or ``torch``).

Add one with ``@workload(name, unit)`` on a function ``fn(mod) -> (step, convert)``;
inputs come from NumPy so every backend starts from the same numbers.
"""
from __future__ import annotations

import numpy as np

from .harness import workload


def _rng():
    """A fresh seeded generator, so every backend of a workload gets the same inputs."""
    return np.random.default_rng(0)


def _leaf(mod, arr, requires_grad=False):
    """A fresh tensor of ``mod`` holding a copy of ``arr``."""
    return mod.from_numpy(arr.copy()).requires_grad_(requires_grad)


N_CHAIN = 20


@workload("op_overhead", "µs/op fwd+bwd")
def op_overhead(mod):
    """20 small elementwise ops on a (32, 64) float32 leaf, then ``sum().backward()``.

    Per-op cost on tiny tensors is Python/dispatch overhead, not arithmetic.
    Reported per op, counting the 20 chain ops and the sum.
    """
    rng = _rng()
    x = _leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.1, True)
    b = _leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.1)
    c = _leaf(mod, rng.uniform(1.5, 2.0, (32, 64)).astype(np.float32))

    def step():
        x.grad = None
        h = x
        for i in range(N_CHAIN // 5):
            h = h * 0.9        # tensor * scalar
            h = h + b          # tensor + tensor
            h = h - 0.1        # tensor - scalar
            h = h / c          # tensor / tensor
            h = h.exp() if i % 2 == 0 else h.neg()
        y = h.sum()
        y.backward()
        return y

    return step, lambda s: s * 1e6 / (N_CHAIN + 1)


@workload("op_overhead_leaves", "µs/op fwd+bwd")
def op_overhead_leaves(mod):
    """20 small ops over four (32, 64) float32 leaves that all require grad, with unary
    activations (relu, tanh, sigmoid, exp) between them, then ``mean().backward()``.

    Every binary op here records two edges, and four AccumulateGrad nodes run; per op as
    ``op_overhead`` (20 chain ops and the mean).
    """
    rng = _rng()
    a, b, c, d = (_leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.5, True)
                  for _ in range(4))

    def step():
        for w in (a, b, c, d):
            w.grad = None
        h = a
        for _ in range(N_CHAIN // 10):
            h = (h * b).relu()
            h = (h + c).tanh()
            h = (h - d).sigmoid()
            h = h * a
            h = (h / 2.0).exp().neg()
        y = h.mean()
        y.backward()
        return y

    return step, lambda s: s * 1e6 / (N_CHAIN + 1)


@workload("op_overhead_bcast", "µs/op fwd+bwd")
def op_overhead_bcast(mod):
    """20 small broadcasting ops: a (32, 64) leaf against a (64,) bias and a (32, 1) scale,
    all requiring grad (their gradients are summed back to shape), then ``sum(1).mean()``.

    Per op, counting the 20 chain ops and the two reductions.
    """
    rng = _rng()
    x = _leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.5, True)
    bias = _leaf(mod, rng.standard_normal(64, dtype=np.float32) * 0.1, True)
    scale = _leaf(mod, rng.uniform(0.5, 1.5, (32, 1)).astype(np.float32), True)

    def step():
        for w in (x, bias, scale):
            w.grad = None
        h = x
        for _ in range(N_CHAIN // 5):
            h = (h + bias) * scale
            h = (h.relu() - 0.05).tanh()
        y = h.sum(1).mean()
        y.backward()
        return y

    return step, lambda s: s * 1e6 / (N_CHAIN + 2)


MATMUL_N = 2048


@workload("matmul_2048", "GFLOP/s", higher_is_better=True, backends=("ember", "torch", "numpy"))
def matmul_2048(mod):
    """A 2048x2048 float32 matmul; ember should stay within 10% of raw NumPy."""
    rng = _rng()
    a = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    b = rng.standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32)
    if mod is np:
        def step():
            return np.matmul(a, b)
    else:
        ta = mod.from_numpy(a)
        tb = mod.from_numpy(b)

        def step():
            return ta @ tb
    return step, lambda s: 2 * MATMUL_N ** 3 / s / 1e9


MLP_SIZES = (784, 512, 256, 10)
MLP_BATCH = 128


@workload("mlp_step_ops", "ms/step")
def mlp_step_ops(mod):
    """One SGD step of a 784-512-256-10 MLP built from ops, batch 128, cross-entropy loss."""
    rng = _rng()
    params = []
    for fan_in, fan_out in zip(MLP_SIZES[:-1], MLP_SIZES[1:]):
        w = rng.standard_normal((fan_in, fan_out), dtype=np.float32) * (2 / fan_in) ** 0.5
        params += [_leaf(mod, w, True), _leaf(mod, np.zeros(fan_out, np.float32), True)]
    x = _leaf(mod, rng.standard_normal((MLP_BATCH, MLP_SIZES[0]), dtype=np.float32))
    target = rng.integers(0, MLP_SIZES[-1], MLP_BATCH)
    one_hot = _leaf(mod, np.eye(MLP_SIZES[-1], dtype=np.float32)[target])
    lr = 0.01

    def step():
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = mod.relu(h)
        # log-softmax by max subtraction, then the target's log-probability via the one-hot
        shifted = h - h.max(dim=1, keepdim=True)[0].detach()
        log_p = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
        loss = -(log_p * one_hot).sum(dim=1).mean()
        loss.backward()
        with mod.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        return loss

    return step, lambda s: s * 1e3


def _linear_weights(rng, sizes):
    """``[(W, b), ...]`` for Linear layers ``sizes[i] -> sizes[i+1]``: PyTorch's default
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from NumPy so every backend gets the same."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = fan_in ** -0.5
        w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        layers.append((w, b))
    return layers


def _load_linears(mod, model, weights):
    """Copy ``weights`` (from ``_linear_weights``) into ``model``'s Linear layers, in order."""
    names = [name for name, m in model.named_modules() if isinstance(m, mod.nn.Linear)]
    assert len(names) == len(weights), (names, len(weights))
    state = model.state_dict()  # the other layers (LayerNorm) keep their deterministic init
    for name, (w, b) in zip(names, weights):
        state[f"{name}.weight"] = mod.from_numpy(w)
        state[f"{name}.bias"] = mod.from_numpy(b)
    model.load_state_dict(state)


def _mlp_data(mod, rng):
    x = mod.from_numpy(rng.standard_normal((MLP_BATCH, MLP_SIZES[0]), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, MLP_SIZES[-1], MLP_BATCH))  # int64 class indices
    return x, target


MLP_LR = 0.01


class _Snapshot:
    """Tensors a step ends with, gathered into one flat array only when the sanity check
    reads it (``detach().numpy()``), so the timed step pays nothing for it."""

    def __init__(self, *tensors):
        self.tensors = tensors

    def detach(self):
        return self

    def numpy(self):
        return np.concatenate([t.detach().numpy().reshape(-1) for t in self.tensors])


def _mlp_model(mod, rng):
    """``nn.Sequential`` 784-512-256-10 (Linear, ReLU) holding ``_linear_weights(rng)``."""
    nn = mod.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    _load_linears(mod, model, _linear_weights(rng, MLP_SIZES))
    return model


@workload("mlp_step_raw", "ms/step")
def mlp_step_raw(mod):
    """``mlp_step_nn``'s computation with raw ops: leaf weights, ``F.linear``, ``F.relu``,
    ``F.cross_entropy`` and the same hand-written SGD update."""
    F = mod.nn.functional
    rng = _rng()
    layers = [(_leaf(mod, w, True), _leaf(mod, b, True))
              for w, b in _linear_weights(rng, MLP_SIZES)]
    params = [p for layer in layers for p in layer]
    x, target = _mlp_data(mod, rng)

    def step():
        h = x
        for i, (w, b) in enumerate(layers):
            h = F.linear(h, w, b)
            if i + 1 < len(layers):
                h = F.relu(h)
        loss = F.cross_entropy(h, target)
        loss.backward()
        with mod.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-MLP_LR)
                p.grad = None
        return loss

    return step, lambda s: s * 1e3


@workload("mlp_step_nn", "ms/step", ratio_to=("mlp_step_raw", "nn/raw"))
def mlp_step_nn(mod):
    """One SGD step of ``nn.Sequential`` 784-512-256-10 (Linear, ReLU), batch 128,
    ``nn.CrossEntropyLoss``; the same numbers as ``mlp_step_raw``, so their ratio is the
    cost of the ``nn.Module`` layer."""
    rng = _rng()
    model = _mlp_model(mod, rng)
    loss_fn = mod.nn.CrossEntropyLoss()
    x, target = _mlp_data(mod, rng)

    def step():
        loss = loss_fn(model(x), target)
        loss.backward()
        with mod.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-MLP_LR)
        model.zero_grad()
        return loss

    return step, lambda s: s * 1e3


@workload("mlp_step_adam", "ms/step")
def mlp_step_adam(mod):
    """A full training step of ``mlp_step_nn``'s model with ``optim.Adam(lr=1e-3)``:
    ``zero_grad()``, forward, ``nn.CrossEntropyLoss``, ``backward()``, ``step()``.  The step
    returns the updated parameters, so the sanity check covers forward, backward and the
    update (each element moves by about lr; the check's tolerance is well below that)."""
    rng = _rng()
    model = _mlp_model(mod, rng)
    x, target = _mlp_data(mod, rng)
    loss_fn = mod.nn.CrossEntropyLoss()
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    params = tuple(model.parameters())

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
        return _Snapshot(*params)

    return step, lambda s: s * 1e3


ADAM_PARAMS, ADAM_NUMEL = 100, 1000


@workload("adam_step_100", "µs/step, torch: Adam default (cpu: single-tensor)")
def adam_step_100(mod):
    """``optim.Adam.step()`` alone over 100 float32 parameters of 1,000 elements each, their
    gradients set once: the optimizer's per-parameter overhead.  torch runs its default
    (no ``foreach`` argument), which on CPU tensors is the single-tensor loop.  The step
    returns every parameter after the update."""
    rng = _rng()
    # weight-sized values (~0.01), so a step of lr=1e-3 is far above the check's tolerance
    params = [_leaf(mod, rng.standard_normal(ADAM_NUMEL, dtype=np.float32) * 0.01, True)
              for _ in range(ADAM_PARAMS)]
    for p in params:
        p.grad = _leaf(mod, rng.standard_normal(ADAM_NUMEL, dtype=np.float32))
    opt = mod.optim.Adam(params, lr=1e-3)

    def step():
        opt.step()
        return _Snapshot(*params)

    return step, lambda s: s * 1e6


BLOCK_DIM, BLOCK_HIDDEN, BLOCK_BATCH, BLOCK_DEPTH = 256, 1024, 64, 2


@workload("ln_gelu_block", "ms/step")
def ln_gelu_block(mod):
    """Two residual blocks ``x + Linear(GELU(Linear(LayerNorm(x))))`` (256 -> 1024 -> 256),
    batch (64, 256) float32: forward and ``sum().backward()``.  The step returns the input's
    gradient, so the sanity check covers the backward pass."""
    nn = mod.nn
    rng = _rng()
    blocks = nn.ModuleList(
        nn.Sequential(nn.LayerNorm(BLOCK_DIM), nn.Linear(BLOCK_DIM, BLOCK_HIDDEN), nn.GELU(),
                      nn.Linear(BLOCK_HIDDEN, BLOCK_DIM))
        for _ in range(BLOCK_DEPTH))
    sizes = (BLOCK_DIM, BLOCK_HIDDEN, BLOCK_DIM)
    _load_linears(mod, blocks, [wb for _ in range(BLOCK_DEPTH)
                                for wb in _linear_weights(rng, sizes)])
    x = _leaf(mod, rng.standard_normal((BLOCK_BATCH, BLOCK_DIM), dtype=np.float32), True)

    def step():
        blocks.zero_grad()
        x.grad = None
        h = x
        for block in blocks:
            h = h + block(h)
        h.sum().backward()
        return x.grad

    return step, lambda s: s * 1e3


# Later families keep their workloads in their own files; importing them registers them.
from . import wl_data, wl_conv, wl_rnn, wl_attention, wl_amp, wl_vision  # noqa: E402,F401
from . import wl_checkpoint  # noqa: E402,F401
from . import wl_onnx  # noqa: E402,F401
from . import wl_quant  # noqa: E402,F401
