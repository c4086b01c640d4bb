"""Compiled workloads for ``python -m bench --compile``: the issue-17 targets.

Each workload is its eager namesake with the forward and loss wrapped in ``compile``: for
ember ``ember.compile`` (the default backend), for the ``torch`` column nothing (PyTorch eager,
what the targets compare against) and for the ``torch.compile`` column (``--torch-compile``)
``torch.compile``.  ``backward()`` runs eagerly around the compiled call, as in a usual
``torch.compile`` training loop; the Adam steps are compiled too (``compile(opt.step)``).
``COMPILE_TIMES`` records each backend's first (capturing) call and a recompile at a new batch
size where the workload has one.
"""
from __future__ import annotations

import time

import numpy as np

from .harness import Workload
from .workloads import (_rng, _leaf, _Snapshot, _mlp_model, _mlp_data, MLP_LR, N_CHAIN,
                        MLP_SIZES)
from . import wl_conv, wl_rnn, wl_attention

COMPILED = {}       # name -> Workload (backends ember, torch[, torch.compile])
COMPILE_TIMES = {}  # (name, backend) -> (first call s, recompile s or None)


class EmberEager:
    """The ember module, marked so that a workload runs uncompiled (the ``ember eager``
    column: the speed-up of compiling, measured in the same run)."""

    def __init__(self, ember):
        self._ember = ember
        self.__name__ = "ember eager"

    def __getattr__(self, name):
        return getattr(self._ember, name)


class TorchCompiled:
    """The torch module, marked so that a workload compiles with ``torch.compile``."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)


def _backend(mod) -> str:
    if isinstance(mod, TorchCompiled):
        return "torch.compile"
    return mod.__name__


def _compile(mod, fn):
    """``fn`` compiled as this backend's column wants (torch eager: unchanged)."""
    b = _backend(mod)
    if b == "ember":
        return mod.compile(fn)
    if b == "torch.compile":
        return mod._torch.compile(fn)
    return fn


def _timed_first(name, mod, fn, *args):
    """Call ``fn`` once (the capture/compile call) and record how long it took."""
    t0 = time.perf_counter()
    out = fn(*args)
    COMPILE_TIMES[(name, _backend(mod))] = [time.perf_counter() - t0, None]
    return out


def compiled_workload(name, unit):
    def register(fn):
        COMPILED[name] = Workload(name, fn, unit, False, ("ember", "torch", "ember eager"))
        return fn
    return register


@compiled_workload("op_overhead", "µs/op fwd+bwd")
def op_overhead(mod):
    """``op_overhead``'s 20-op chain and sum, compiled; backward eager."""
    rng = _rng()
    x = _leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.1, True)
    b = _leaf(mod, rng.standard_normal((32, 64), dtype=np.float32) * 0.1)
    c = _leaf(mod, rng.uniform(1.5, 2.0, (32, 64)).astype(np.float32))

    def chain(x, b, c):
        h = x
        for i in range(N_CHAIN // 5):
            h = h * 0.9
            h = h + b
            h = h - 0.1
            h = h / c
            h = h.exp() if i % 2 == 0 else h.neg()
        return h.sum()
    f = _compile(mod, chain)
    _timed_first("op_overhead", mod, f, x, b, c)

    def step():
        x.grad = None
        y = f(x, b, c)
        y.backward()
        return y
    return step, lambda s: s * 1e6 / (N_CHAIN + 1)


@compiled_workload("mlp_step_nn", "ms/step")
def mlp_step_nn(mod):
    """``mlp_step_nn`` with model + loss compiled; backward and the SGD update eager."""
    rng = _rng()
    model = _mlp_model(mod, rng)
    loss_fn = mod.nn.CrossEntropyLoss()
    x, target = _mlp_data(mod, rng)
    f = _compile(mod, lambda x, t: loss_fn(model(x), t))
    _timed_first("mlp_step_nn", mod, f, x, target)
    t0 = time.perf_counter()
    f(x[:64], target[:64])  # a new batch size: a recompile
    COMPILE_TIMES[("mlp_step_nn", _backend(mod))][1] = time.perf_counter() - t0
    model.zero_grad()

    def step():
        loss = f(x, target)
        loss.backward()
        with mod.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-MLP_LR)
        model.zero_grad()
        return loss
    return step, lambda s: s * 1e3


def _opt_step(name, mod, model, loss, x, target):
    """``zero_grad, compiled loss, backward, step`` for an Adam-trained model."""
    params = tuple(model.parameters())
    opt = mod.optim.Adam(params, lr=1e-3)
    f = _compile(mod, loss)
    _timed_first(name, mod, f, x, target)
    model.zero_grad()
    # compiled columns compile the update too (ember: one generated function over the arrays)
    opt_step = _compile(mod, opt.step)

    def step():
        opt.zero_grad()
        out = f(x, target)
        out.backward()
        opt_step()
        return _Snapshot(out.detach().reshape(1), *params)
    return step


@compiled_workload("lenet_step", "ms/step")
def lenet_step(mod):
    """``lenet_step`` with forward + cross-entropy compiled."""
    rng = _rng()
    model = wl_conv._lenet(mod)
    wl_conv._load(mod, model, rng)
    x = _leaf(mod, rng.standard_normal((wl_conv.LENET_BATCH, 1, 28, 28), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, 10, wl_conv.LENET_BATCH))
    F = mod.nn.functional
    return _opt_step("lenet_step", mod, model, lambda x, t: F.cross_entropy(model(x), t), x,
                     target), lambda s: s * 1e3


@compiled_workload("lstm_lm_step", "ms/step")
def lstm_lm_step(mod):
    """``lstm_lm_step`` with embedding + LSTM + head + cross-entropy compiled."""
    rng = _rng()
    model = wl_rnn._lm_model(mod, rng)
    tokens = rng.integers(0, wl_rnn.LM_VOCAB, (wl_rnn.LM_SEQ + 1, wl_rnn.LM_BATCH))
    x = mod.from_numpy(tokens[:-1].copy())
    y = mod.from_numpy(tokens[1:].reshape(-1).copy())
    F = mod.nn.functional
    emb, lstm, head = model["emb"], model["lstm"], model["head"]

    def loss(x, y):
        out, _ = lstm(emb(x))
        return F.cross_entropy(head(out).reshape(-1, wl_rnn.LM_VOCAB), y)
    return _opt_step("lstm_lm_step", mod, model, loss, x, y), lambda s: s * 1e3


@compiled_workload("gpt_step", "ms/step")
def gpt_step(mod):
    """``gpt_step`` with the model + cross-entropy and the Adam step compiled."""
    rng = _rng()
    model = wl_attention._gpt_model(mod, rng)
    c = wl_attention.GPT
    data = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1))
    idx = _leaf(mod, data[:, :-1])
    target = _leaf(mod, data[:, 1:].reshape(-1))
    F = mod.nn.functional
    return _opt_step("gpt_step", mod, model, lambda i, t: F.cross_entropy(
        model(i).reshape(-1, c["vocab"]), t), idx, target), lambda s: s * 1e3


@compiled_workload("mlp_infer_b1", "µs/call")
def mlp_infer_b1(mod):
    """Batch-1 latency of the 784-512-256-10 MLP in ``eval()`` under ``inference_mode``."""
    rng = _rng()
    model = _mlp_model(mod, rng).eval()
    x = _leaf(mod, rng.standard_normal((1, MLP_SIZES[0]), dtype=np.float32))
    f = _compile(mod, model)
    with mod.inference_mode():
        _timed_first("mlp_infer_b1", mod, f, x)

    def step():
        with mod.inference_mode():
            return f(x)
    return step, lambda s: s * 1e6


# ---- whole training steps: zero_grad, forward, loss, backward and the update in ONE compiled
# function (ember: one program, NOTE [ Compiled training steps ]; torch eager: the same
# function uncompiled; torch.compile: the function compiled, breaking at backward) ---------

def _whole(name, mod, model, loss, x, target, opt):
    """``train(x, t)`` = zero_grad, loss, backward, step; compiled as the column wants; its
    first call timed and a recompile at a new batch size where ``x`` has one to cut."""
    params = tuple(model.parameters())

    def train(x, t):
        opt.zero_grad()
        out = loss(x, t)
        out.backward()
        opt.step()
        return out
    f = _compile(mod, train)
    _timed_first(name, mod, f, x, target)
    if name == "mlp_step_whole":  # a new batch size (ember: makes the batch dim dynamic)
        t0 = time.perf_counter()
        f(x[:64], target[:64])
        COMPILE_TIMES[(name, _backend(mod))][1] = time.perf_counter() - t0

    def step():
        out = f(x, target)
        return _Snapshot(out.detach().reshape(1), *params)
    return step


@compiled_workload("mlp_step_whole", "ms/step")
def mlp_step_whole(mod):
    """``mlp_step_nn`` as one compiled training step (SGD, the same update)."""
    rng = _rng()
    model = _mlp_model(mod, rng)
    loss_fn = mod.nn.CrossEntropyLoss()
    x, target = _mlp_data(mod, rng)
    opt = mod.optim.SGD(model.parameters(), lr=MLP_LR)
    step = _whole("mlp_step_whole", mod, model, lambda x, t: loss_fn(model(x), t), x, target,
                  opt)
    return step, lambda s: s * 1e3


@compiled_workload("lenet_step_whole", "ms/step")
def lenet_step_whole(mod):
    """``lenet_step`` (Adam) as one compiled training step."""
    rng = _rng()
    model = wl_conv._lenet(mod)
    wl_conv._load(mod, model, rng)
    x = _leaf(mod, rng.standard_normal((wl_conv.LENET_BATCH, 1, 28, 28), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, 10, wl_conv.LENET_BATCH))
    F = mod.nn.functional
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    return _whole("lenet_step_whole", mod, model, lambda x, t: F.cross_entropy(model(x), t),
                  x, target, opt), lambda s: s * 1e3


@compiled_workload("lstm_lm_step_whole", "ms/step")
def lstm_lm_step_whole(mod):
    """``lstm_lm_step`` (Adam) as one compiled training step."""
    rng = _rng()
    model = wl_rnn._lm_model(mod, rng)
    tokens = rng.integers(0, wl_rnn.LM_VOCAB, (wl_rnn.LM_SEQ + 1, wl_rnn.LM_BATCH))
    x = mod.from_numpy(tokens[:-1].copy())
    y = mod.from_numpy(tokens[1:].reshape(-1).copy())
    F = mod.nn.functional
    emb, lstm, head = model["emb"], model["lstm"], model["head"]

    def loss(x, y):
        out, _ = lstm(emb(x))
        return F.cross_entropy(head(out).reshape(-1, wl_rnn.LM_VOCAB), y)
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    return _whole("lstm_lm_step_whole", mod, model, loss, x, y, opt), lambda s: s * 1e3


@compiled_workload("gpt_step_whole", "ms/step")
def gpt_step_whole(mod):
    """``gpt_step`` (Adam) as one compiled training step."""
    rng = _rng()
    model = wl_attention._gpt_model(mod, rng)
    c = wl_attention.GPT
    data = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1))
    idx = _leaf(mod, data[:, :-1])
    target = _leaf(mod, data[:, 1:].reshape(-1))
    F = mod.nn.functional
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    return _whole("gpt_step_whole", mod, model, lambda i, t: F.cross_entropy(
        model(i).reshape(-1, c["vocab"]), t), idx, target, opt), lambda s: s * 1e3
