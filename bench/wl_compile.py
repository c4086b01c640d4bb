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
                        MLP_SIZES, MLP_BATCH, _linear_weights)
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


def _compile(mod, fn, options=None):
    """``fn`` compiled as this backend's column wants (torch eager: unchanged); ``options``
    for ember's."""
    b = _backend(mod)
    if b == "ember":
        return mod.compile(fn, options=options) if options else mod.compile(fn)
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


def _opt_step(name, mod, model, loss, x, target, options=None):
    """``zero_grad, compiled loss, backward, step`` for an Adam-trained model."""
    params = tuple(model.parameters())
    opt = mod.optim.Adam(params, lr=1e-3)
    f = _compile(mod, loss, options)
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


def _lenet(mod):
    """LeNet, its cross-entropy and a batch: ``(model, loss, x, target)``."""
    rng = _rng()
    model = wl_conv._lenet(mod)
    wl_conv._load(mod, model, rng)
    x = _leaf(mod, rng.standard_normal((wl_conv.LENET_BATCH, 1, 28, 28), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, 10, wl_conv.LENET_BATCH))
    F = mod.nn.functional
    return model, lambda x, t: F.cross_entropy(model(x), t), x, target


def _lstm_lm(mod):
    """The LSTM language model (embedding, LSTM, head), its loss and a batch."""
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
    return model, loss, x, y


def _gpt(mod):
    """GPT-mini, its next-token cross-entropy and a batch."""
    rng = _rng()
    model = wl_attention._gpt_model(mod, rng)
    c = wl_attention.GPT
    data = rng.integers(0, c["vocab"], (c["batch"], c["seq"] + 1))
    idx = _leaf(mod, data[:, :-1])
    target = _leaf(mod, data[:, 1:].reshape(-1))
    F = mod.nn.functional
    return model, lambda i, t: F.cross_entropy(model(i).reshape(-1, c["vocab"]), t), idx, target


@compiled_workload("lenet_step", "ms/step")
def lenet_step(mod):
    """``lenet_step`` with forward + cross-entropy compiled."""
    return _opt_step("lenet_step", mod, *_lenet(mod)), lambda s: s * 1e3


@compiled_workload("lstm_lm_step", "ms/step")
def lstm_lm_step(mod):
    """``lstm_lm_step`` with embedding + LSTM + head + cross-entropy compiled."""
    return _opt_step("lstm_lm_step", mod, *_lstm_lm(mod)), lambda s: s * 1e3


@compiled_workload("lstm_lm_step_numba", "ms/step")
def lstm_lm_step_numba(mod):
    """``lstm_lm_step`` with ember's region compiled with ``options={"numba": True}`` (the
    ``numba`` extra: the LSTM's per-step elementwise work as numba kernels); the torch column
    is the same eager step as ``lstm_lm_step``'s."""
    return _opt_step("lstm_lm_step_numba", mod, *_lstm_lm(mod), options={"numba": True}), \
        lambda s: s * 1e3


@compiled_workload("gpt_step", "ms/step")
def gpt_step(mod):
    """``gpt_step`` with the model + cross-entropy and the Adam step compiled."""
    return _opt_step("gpt_step", mod, *_gpt(mod)), lambda s: s * 1e3


@compiled_workload("gpt_step_numba", "ms/step")
def gpt_step_numba(mod):
    """``gpt_step`` with ember's region compiled with ``options={"numba": True}`` (the ``numba``
    extra: layer norm's forward and backward as one-pass kernels); the torch column is the same
    eager step as ``gpt_step``'s."""
    return _opt_step("gpt_step_numba", mod, *_gpt(mod), options={"numba": True}), \
        lambda s: s * 1e3


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


def _adam_whole(name, mod, setup):
    """``setup``'s model and loss as one compiled Adam training step."""
    model, loss, x, target = setup(mod)
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    return _whole(name, mod, model, loss, x, target, opt), lambda s: s * 1e3


@compiled_workload("lenet_step_whole", "ms/step")
def lenet_step_whole(mod):
    """``lenet_step`` (Adam) as one compiled training step."""
    return _adam_whole("lenet_step_whole", mod, _lenet)


@compiled_workload("lstm_lm_step_whole", "ms/step")
def lstm_lm_step_whole(mod):
    """``lstm_lm_step`` (Adam) as one compiled training step."""
    return _adam_whole("lstm_lm_step_whole", mod, _lstm_lm)


@compiled_workload("gpt_step_whole", "ms/step")
def gpt_step_whole(mod):
    """``gpt_step`` (Adam) as one compiled training step."""
    return _adam_whole("gpt_step_whole", mod, _gpt)


def thread_times(names, rounds: int = 15, columns=("ember", "torch")) -> dict:
    """``{name: {column: seconds per step}}``: each step timed with ``time.thread_time`` (CPU
    time of this thread, so other processes on a loaded machine count less than on the wall
    clock), best of ``rounds`` samples taken in turn over the columns (ember compiled, torch
    eager, and ``ember eager``/``torch.compile`` when asked)."""
    import gc
    from .harness import load_module
    mods = {"ember": load_module("ember"), "torch": load_module("torch")}
    mods["ember eager"] = EmberEager(mods["ember"])
    mods["torch.compile"] = TorchCompiled(mods["torch"])
    out = {}
    for name in names:
        steps, convert = {}, None
        for col in columns:
            step, convert = COMPILED[name].fn(mods[col])
            step()
            step()
            steps[col] = step
        t0 = time.thread_time()
        steps["torch"]()
        number = max(1, int(0.03 / max(time.thread_time() - t0, 1e-6)))
        best = dict.fromkeys(steps, float("inf"))
        gc.disable()  # a collection inside one column's sample is noise
        try:
            for _ in range(rounds):
                for col, step in steps.items():
                    t0 = time.thread_time()
                    for _ in range(number):
                        step()
                    best[col] = min(best[col], (time.thread_time() - t0) / number)
        finally:
            gc.enable()
        out[name] = {col: convert(s) for col, s in best.items()}
    return out


def step_memory(name: str, compiled: bool) -> tuple:
    """``(MiB a step allocates at its peak above what it holds between steps, MiB of resident
    memory grown since before the workload was built)`` of ``name`` under ember, compiled or
    eager (tracemalloc sees NumPy's allocations; run it in a fresh process per column)."""
    import gc
    import tracemalloc
    from .harness import load_module

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        return float("nan")
    ember = load_module("ember")
    r0 = rss()
    step, _ = COMPILED[name].fn(ember if compiled else EmberEager(ember))
    for _ in range(5):
        step()
    gc.collect()
    grown = rss() - r0
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2 ** 20, grown


def _floor_steps() -> dict:
    """``{name: (numpy step, torch eager step)}`` for ``numpy_floor``.  The NumPy step is what
    generated code could at best run: forward, cross-entropy, backward without the input's
    gradient and the SGD update, every array written with ``out=`` into buffers made once,
    relu's mask as a float multiply; it returns the loss (the inference step its output).
    ``mlp_step_gemms`` is its eight GEMMs alone, ``mlp_step_gemms_f`` the same with the hidden
    layers F-ordered (as ember's compiled step runs them) and ``mlp_step_gemms_sgd`` the
    GEMMs plus the SGD update, each against torch's whole step: the floor under any
    NumPy/OpenBLAS step."""
    import torch
    rng = _rng()
    weights = _linear_weights(rng, MLP_SIZES)
    x = rng.standard_normal((MLP_BATCH, MLP_SIZES[0]), dtype=np.float32)
    target = rng.integers(0, MLP_SIZES[-1], MLP_BATCH)
    ws = [(w.copy(), b.copy()) for w, b in weights]
    n = MLP_BATCH
    rows = np.arange(n)
    hs = [np.empty((n, w.shape[0]), np.float32) for w, _ in ws]
    gh = [np.empty((n, w.shape[0]), np.float32) for w, _ in ws]
    masks = [np.empty((n, w.shape[0]), np.float32) for w, _ in ws[:-1]]
    gws = [np.empty_like(w) for w, _ in ws]
    gbs = [np.empty_like(b) for _, b in ws]
    zero = np.zeros((), np.float32)

    def np_step():
        h = x
        for i, (w, b) in enumerate(ws):
            np.matmul(h, w.T, out=hs[i])
            hs[i] += b
            if i + 1 < len(ws):
                np.maximum(hs[i], zero, out=hs[i])
            h = hs[i]
        z = hs[-1]
        m = z.max(1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[rows, target]))
        g = np.divide(e, s * n, out=gh[-1])
        g[rows, target] -= 1.0 / n
        for i in range(len(ws) - 1, -1, -1):
            inp = x if i == 0 else hs[i - 1]
            np.matmul(g.T, inp, out=gws[i])
            np.add.reduce(g, axis=0, out=gbs[i])
            if i:
                gp = np.matmul(g, ws[i][0], out=gh[i - 1])
                np.not_equal(hs[i - 1], 0, out=masks[i - 1])
                gp *= masks[i - 1]
                g = gp
        for (w, b), gw, gb in zip(ws, gws, gbs):
            gw *= -MLP_LR
            w += gw
            gb *= -MLP_LR
            b += gb
        return loss

    tmodel = _mlp_model(torch, _rng())
    tx, tt = torch.from_numpy(x), torch.from_numpy(target)
    loss_fn = torch.nn.CrossEntropyLoss()

    def torch_step():
        loss = loss_fn(tmodel(tx), tt)
        loss.backward()
        with torch.no_grad():
            for p in tmodel.parameters():
                p.add_(p.grad, alpha=-MLP_LR)
        tmodel.zero_grad()
        return loss

    def np_gemms():
        """``np_step``'s eight products alone (forward, weight and input gradients)."""
        h = x
        for i, (w, _) in enumerate(ws):
            np.matmul(h, w.T, out=hs[i])
            h = hs[i]
        for i in range(len(ws) - 1, -1, -1):
            np.matmul(gh[i].T, x if i == 0 else hs[i - 1], out=gws[i])
            if i:
                np.matmul(gh[i], ws[i][0], out=gh[i - 1])
        return hs[-1]

    # the hidden layers' values and gradients F-ordered, as ember's compiled training regions
    # keep them (NOTE [ Transposed activations ] in ember/ops/linalg.py): (N, M) C arrays
    hts = [np.empty((w.shape[0], n), np.float32) for w, _ in ws[:-1]]
    ghts = [np.empty((w.shape[0], n), np.float32) for w, _ in ws[:-1]]

    def np_gemms_f():
        """``np_gemms`` with the hidden layers' products F-ordered (``w @ h.T``)."""
        h = x
        for i, (w, _) in enumerate(ws):
            if i + 1 < len(ws):
                np.matmul(w, h.T, out=hts[i])
                h = hts[i].T
            else:
                np.matmul(h, w.T, out=hs[i])
        for i in range(len(ws) - 1, -1, -1):
            g = gh[i] if i + 1 == len(ws) else ghts[i].T
            np.matmul(g.T, x if i == 0 else hts[i - 1].T, out=gws[i])
            if i:
                np.matmul(ws[i][0].T, g.T, out=ghts[i - 1])
        return hs[-1]

    from ember.ops import _blas
    axpys = {k: _blas.axpy(k) for k in "f"}

    def np_gemms_sgd():
        """The products and the SGD update (one fused axpy per weight, as ember's ``add_``):
        what no step can skip."""
        np_gemms()
        for (w, b), gw, gb in zip(ws, gws, gbs):
            for p, g in ((w, gw), (b, gb)):
                if not (axpys["f"] and axpys["f"](p, g, -MLP_LR)):
                    p -= MLP_LR * g
        return hs[-1]

    x1 = x[:1].copy()
    ws1 = [(w.copy(), b.copy()) for w, b in weights]  # the step above updates ``ws``
    bufs1 = [np.empty((1, w.shape[0]), np.float32) for w, _ in ws1]

    def np_infer():
        h = x1
        for i, (w, b) in enumerate(ws1):
            np.matmul(h, w.T, out=bufs1[i])
            bufs1[i] += b
            if i + 1 < len(ws1):
                np.maximum(bufs1[i], zero, out=bufs1[i])
            h = bufs1[i]
        return h.copy()  # the caller's own result, as a model call returns
    imodel = _mlp_model(torch, _rng()).eval()
    tx1 = torch.from_numpy(x1)

    def torch_infer():
        with torch.inference_mode():
            return imodel(tx1)
    return {"mlp_step_nn": (np_step, torch_step), "mlp_step_gemms": (np_gemms, torch_step),
            "mlp_step_gemms_f": (np_gemms_f, torch_step),
            "mlp_step_gemms_sgd": (np_gemms_sgd, torch_step),
            "mlp_infer_b1": (np_infer, torch_infer)}


def numpy_floor(rounds: int = 40) -> dict:
    """The hand-written NumPy floor of ``mlp_step_nn`` and ``mlp_infer_b1`` against torch eager
    (issue 17): ``{name: (numpy s, torch s)}``, thread time, best of ``rounds`` samples taken
    in turn (``_floor_steps``); the NumPy steps that share a torch step are timed in one
    round-robin with it, so their ratios share its samples (on a loaded machine the best of
    separate runs of one torch step differ by 10-15%)."""
    import gc
    groups = {}  # torch step -> [(name, numpy step)]
    for name, (np_f, torch_f) in _floor_steps().items():
        groups.setdefault(torch_f, []).append((name, np_f))
    out = {}
    for torch_f, members in groups.items():
        fns = [torch_f] + [f for _, f in members]
        for f in fns:
            f()
            f()
        t0 = time.thread_time()
        torch_f()
        number = max(1, int(0.03 / max(time.thread_time() - t0, 1e-6)))
        best = [float("inf")] * len(fns)
        gc.disable()
        try:
            for _ in range(rounds):
                for k, f in enumerate(fns):
                    t0 = time.thread_time()
                    for _ in range(number):
                        f()
                    best[k] = min(best[k], (time.thread_time() - t0) / number)
        finally:
            gc.enable()
        for k, (name, _) in enumerate(members):
            out[name] = (best[k + 1], best[0])
    return out


def main(argv=None) -> int:
    """``python -m bench.wl_compile [--only NAME] [--rounds N] [--eager] [--torch-compile]
    [--memory]``: the thread-time ratios of the issue-17 targets, or with ``--memory`` a step's
    peak allocation and resident growth, compiled and eager, each in its own process.  Run it
    at ``OPENBLAS_NUM_THREADS=1``: thread time does not count BLAS's or torch's worker threads,
    so at more threads compare wall clock (``python -m bench --compile``) instead."""
    import argparse
    import json
    import os
    import subprocess
    import sys
    ap = argparse.ArgumentParser(prog="python -m bench.wl_compile")
    ap.add_argument("--only", action="append", metavar="NAME")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--eager", action="store_true", help="add the ember eager column")
    ap.add_argument("--torch-compile", action="store_true", help="add torch.compile")
    ap.add_argument("--memory", action="store_true", help="step memory (gpt_step by default)")
    ap.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--floor", action="store_true",
                    help="hand-written NumPy mlp_step_nn / mlp_infer_b1 vs torch eager")
    args = ap.parse_args(argv)
    if args.memory_child:
        print(json.dumps(step_memory(args.memory_child[0], args.memory_child[1] == "1")))
        return 0
    if args.memory:
        for name in args.only or ["gpt_step"]:
            for compiled in (False, True):
                r = subprocess.run([sys.executable, "-m", "bench.wl_compile", "--memory-child",
                                    name, str(int(compiled))], capture_output=True, text=True,
                                   check=True)
                peak, grown = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"{name:<14} {'compiled' if compiled else 'eager':<9} step peak "
                      f"{peak:6.2f} MiB   resident growth {grown:6.1f} MiB")
        return 0
    import torch
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    if threads != 1:
        print("# WARNING: thread time misses worker threads; set OPENBLAS_NUM_THREADS=1")
    if args.floor:
        print(f"# hand-written NumPy floor, thread time, best of {args.rounds}; load "
              f"{os.getloadavg()[0]:.2f}")
        for name, (a, b) in numpy_floor(args.rounds).items():
            print(f"{name:<18} numpy/torch {a / b:5.2f}   numpy {a * 1e3:.4g} ms   torch "
                  f"{b * 1e3:.4g} ms")
        return 0
    cols = ("ember", "torch") + (("ember eager",) if args.eager else ()) + \
        (("torch.compile",) if args.torch_compile else ())
    print(f"# thread time, best of {args.rounds}; OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, torch threads "
          f"{torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    for name, vals in thread_times(args.only or list(COMPILED), args.rounds, cols).items():
        line = f"{name:<14} ember/torch {vals['ember'] / vals['torch']:5.2f}"
        line += "".join(f"   {c} {v:.4g}" for c, v in vals.items())
        if "torch.compile" in vals:
            line += f"   ember/torch.compile {vals['ember'] / vals['torch.compile']:.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
