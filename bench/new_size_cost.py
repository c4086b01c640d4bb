"""First-call cost of a new batch size for a compiled training step, with the size-generic
region (NOTE [ Size-generic regions ]) and without (a region per size, replayed and traced),
and the steady per-call cost of both: ``python -m bench.new_size_cost``.  Thread CPU time,
both variants built in one process, ember only."""
from __future__ import annotations

import sys
import time

import numpy as np

import ember
from ember._dynamo import dynamic
from . import workloads  # noqa: F401 (loads the workload modules in their order)
from . import wl_attention
from .workloads import MLP_SIZES, _mlp_model

# a whole step: the first two sizes capture, the next two fit (a capture's region of a step
# calls the formulas a replay lowers), the fifth checks the fit; sizes 6-8 are new sizes then
SIZES = (48, 64, 40, 56, 24, 72, 36, 80)
GPT_SIZES = (16, 12, 20, 8, 14, 10, 18, 6)  # around the bench's batch of 16


def _mlp(rng):
    model = _mlp_model(ember, rng)
    opt = ember.optim.SGD(model.parameters(), lr=0.01)
    x = ember.from_numpy(rng.standard_normal((128, MLP_SIZES[0]), dtype=np.float32))
    t = ember.from_numpy(rng.integers(0, MLP_SIZES[-1], 128))
    return model, opt, lambda x, t: ember.nn.functional.cross_entropy(model(x), t), x, t


def _gpt(rng):
    model = wl_attention._gpt_model(ember, rng)
    c = wl_attention.GPT
    data = rng.integers(0, c["vocab"], (96, c["seq"] + 1))
    x = ember.from_numpy(data[:, :-1].copy())
    t = ember.from_numpy(data[:, 1:].copy())
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    F = ember.nn.functional
    return model, opt, lambda i, t: F.cross_entropy(model(i).reshape(-1, c["vocab"]),
                                                     t.reshape(-1)), x, t


def _step(make, generic, sizes, steady=15):
    dynamic.GENERIC = generic
    ember._dynamo.reset()
    model, opt, loss, x, t = make(np.random.default_rng(0))

    def train(x, t):
        opt.zero_grad()
        out = loss(x, t)
        out.backward()
        opt.step()
        return out
    f = ember.compile(train)
    firsts = []
    for n in sizes:
        t0 = time.thread_time()
        f(x[:n], t[:n])
        firsts.append(time.thread_time() - t0)
    best = []
    for _ in range(steady):
        t0 = time.thread_time()
        f(x[:sizes[-1]], t[:sizes[-1]])
        best.append(time.thread_time() - t0)
    dynamic.GENERIC = True
    return firsts, min(best)


def main() -> int:
    for name, make, sizes in (("mlp_step_whole", _mlp, SIZES),
                              ("gpt_step_whole", _gpt, GPT_SIZES)):
        res = {}
        for rnd in range(2):
            for generic in (False, True):
                firsts, steady = _step(make, generic, sizes)
                prev = res.get(generic)
                if prev is not None:
                    firsts = [min(a, b) for a, b in zip(prev[0], firsts)]
                    steady = min(steady, prev[1])
                res[generic] = (firsts, steady)
        for generic in (False, True):
            firsts, steady = res[generic]
            label = "generic" if generic else "per size"
            print(f"{name} {label:9s} first calls (ms): "
                  + " ".join(f"{1e3 * v:.1f}" for v in firsts)
                  + f" | sizes 6-8: mean {1e3 * np.mean(firsts[5:]):.1f} ms"
                  + f" | steady {1e3 * steady:.2f} ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
