"""Adam step: per-parameter loop vs one flat buffer per group vs PyTorch.

``python bench/optim_flat.py [--repeat N] [--threads N]`` from the repository root.

(a) ``ember.optim.Adam``: the base class's loop, a handful of NumPy ops per parameter.
(b) flat: every parameter, gradient and state of the group is a view into one contiguous
    buffer, so a step is ~13 NumPy ops over the whole group.  (b1) assumes the gradients
    already live in the flat gradient buffer (backward accumulating into views); (b2) adds
    the realistic gather of separately allocated gradients into it (one ``concatenate``).
(c) ``torch.optim.Adam`` with its default (on CPU: the single-tensor loop) and with
    ``foreach=True`` (the multi-tensor path that is the default on GPUs).
Prints the median time per step and the ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

import ember

BETAS, EPS, LR = (0.9, 0.999), 1e-8, 1e-3


class FlatAdam:
    """Adam over a group whose parameters are views into one flat buffer (same numbers)."""

    def __init__(self, params):
        self.params = list(params)
        sizes = [p._data.size for p in self.params]
        self.offsets = np.cumsum([0] + sizes)
        n, dt = self.offsets[-1], self.params[0]._data.dtype
        self.flat = np.empty(n, dtype=dt)
        self.flat_grad = np.zeros(n, dtype=dt)
        for p, a, b in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            # re-seat each parameter's array as a view into the flat buffer
            self.flat[a:b] = p._data.reshape(-1)
            p._data = self.flat[a:b].reshape(p._data.shape)
        self.m = np.zeros(n, dtype=dt)
        self.v = np.zeros(n, dtype=dt)
        self.tmp = np.empty(n, dtype=dt)
        self.t = 0

    def grad_views(self):
        return [self.flat_grad[a:b].reshape(p._data.shape)
                for p, a, b in zip(self.params, self.offsets[:-1], self.offsets[1:])]

    def gather(self):
        """Copy separately allocated gradients into the flat gradient buffer."""
        np.concatenate([p.grad._data.reshape(-1) for p in self.params], out=self.flat_grad)

    def step(self):
        b1, b2 = BETAS
        self.t += 1
        g, m, v, tmp = self.flat_grad, self.m, self.v, self.tmp
        np.subtract(g, m, out=tmp)       # m ← m + (1-β₁)(g - m)
        tmp *= 1 - b1
        m += tmp
        np.multiply(g, g, out=tmp)       # v ← β₂v + (1-β₂)g²
        tmp *= 1 - b2
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)              # denom = √v/√(1-β₂ᵗ) + ε
        tmp /= (1 - b2 ** self.t) ** 0.5
        tmp += EPS
        np.divide(m, tmp, out=tmp)
        tmp *= -(LR / (1 - b1 ** self.t))
        self.flat += tmp


def shapes_mlp():
    return [(512, 784), (512,), (256, 512), (256,), (10, 256), (10,)]


def shapes_small():
    return [(1000,)] * 100


def median_time(fn, repeat, min_s=0.05):
    fn()
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    number = max(1, int(min_s / max(once, 1e-9)))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples)


def setup(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal(s).astype(dtype) for s in shapes]
    g = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return w, g


def ember_params(w, g):
    ps = [ember.nn.Parameter(ember.from_numpy(a.copy())) for a in w]
    for p, gi in zip(ps, g):
        p.grad = ember.from_numpy(gi.copy())
    return ps


def torch_params(w, g):
    ps = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in w]
    for p, gi in zip(ps, g):
        p.grad = torch.from_numpy(gi.copy())
    return ps


def check_same(shapes, steps=5):
    """All variants give the same parameters after a few steps (float64)."""
    w, g = setup(shapes, np.float64, seed=1)
    pa = ember_params(w, g)
    oa = ember.optim.Adam(pa, lr=LR)
    pb = ember_params(w, g)
    fb = FlatAdam(pb)
    pc = torch_params(w, g)
    oc = torch.optim.Adam(pc, lr=LR, foreach=True)
    for _ in range(steps):
        oa.step()
        fb.gather()
        fb.step()
        oc.step()
    for a, b, c in zip(pa, pb, pc):
        np.testing.assert_allclose(a._data, c.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b._data, c.detach().numpy(), rtol=1e-10, atol=1e-12)


def bench(name, shapes, repeat):
    w, g = setup(shapes)
    n = sum(int(np.prod(s)) for s in shapes)
    pa = ember_params(w, g)
    oa = ember.optim.Adam(pa, lr=LR)
    pb = ember_params(w, g)
    fb = FlatAdam(pb)
    for gv, gi in zip(fb.grad_views(), g):
        gv[...] = gi

    def flat_with_gather():
        fb.gather()
        fb.step()

    pc = torch_params(w, g)
    oc = torch.optim.Adam(pc, lr=LR)
    pd = torch_params(w, g)
    od = torch.optim.Adam(pd, lr=LR, foreach=True)
    times = {
        "(a) ember Adam, per-parameter loop": median_time(oa.step, repeat),
        "(b1) flat buffer, grads in place": median_time(fb.step, repeat),
        "(b2) flat buffer + gather grads": median_time(flat_with_gather, repeat),
        "(c) torch Adam default": median_time(oc.step, repeat),
        "(c') torch Adam foreach=True": median_time(od.step, repeat),
    }
    ref = times["(c) torch Adam default"]
    ref_fe = times["(c') torch Adam foreach=True"]
    loop = times["(a) ember Adam, per-parameter loop"]
    print(f"\n{name}: {len(shapes)} parameters, {n:,} elements (float32)")
    print(f"  {'variant':38s} {'median':>10s} {'/torch':>8s} {'/foreach':>9s} {'/loop':>7s}")
    for k, t in times.items():
        print(f"  {k:38s} {t * 1e6:8.1f}us {t / ref:8.2f} {t / ref_fe:9.2f} {t / loop:7.2f}")
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (NumPy's elementwise ops use one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# numpy {np.__version__} | torch {torch.__version__} | torch threads "
          f"{torch.get_num_threads()} | median of {args.repeat} samples")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5:
        print(f"# WARNING: load average {os.getloadavg()[0]:.2f}: timings are unreliable")
    for shapes in (shapes_mlp(), shapes_small()):
        check_same(shapes)
    print("# check: ember Adam, flat Adam and torch Adam agree after 5 float64 steps")
    bench("MLP 784-512-256-10", shapes_mlp(), args.repeat)
    bench("100 x 1,000", shapes_small(), args.repeat)


if __name__ == "__main__":
    main()
