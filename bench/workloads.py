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
