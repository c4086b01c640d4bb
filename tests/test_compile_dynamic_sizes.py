"""A size-generic graph never replays a Python decision made on a size (NOTE [ Size
decisions ] in ember/_dynamo/dynamic.py; review rv1 B1, B11): branches, min/max, floor
division and modulo on a size in the user's code or inside an op, over sizes in every order,
compiled == eager (and torch where it is the spec)."""
import math

import hypothesis as hyp
import hypothesis.strategies as st
import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember._dynamo import dynamic
from ember._dynamo.utils import counters

# sequences with adjacent sizes (a floor division equal at both) and far ones
SEQS = [(8, 16, 9, 11, 12, 24, 13), (8, 10, 12, 7, 9, 11), (8, 7, 9, 6, 13, 5, 10)]


def _x(n, lib=ember):
    return (lib.arange(float(2 * n)).reshape(1, 2, n) / 3).sin()


def _same(a, b):
    return a.shape == b.shape and bool(((a - b).abs() <= 1e-5 * (1 + b.abs())).all())


def _run(fn, seq, x=_x):
    """Compiled and eager at each size of ``seq``; returns the sizes that differ."""
    ember.compiler.reset()
    cf = ember.compile(fn)
    bad = []
    for n in seq:
        a, b = cf(x(n)), fn(x(n))
        if not _same(a, b):
            bad.append(n)
    return bad


# B1: decisions in the user's Python
def _branch(x):
    if x.shape[0] > 4:
        return x * 2
    return x * 3


def _min(x):
    n = min(x.shape[0], 6)
    return x[:n].sum(0)


@pytest.mark.parametrize("fn", [_branch, _min])
@pytest.mark.parametrize("seq", [(8, 16, 3, 2, 5, 30, 4, 10, 12), (3, 4, 10, 12, 2, 7)])
def test_b1_size_decisions_match_eager_and_torch(fn, seq):
    import torch
    ember.compiler.reset()
    cf = ember.compile(fn)
    for n in seq:
        x = ember.arange(float(n * 2)).reshape(n, 2)
        got = cf(x)
        want = fn(torch.arange(float(n * 2)).reshape(n, 2))
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_b1_branch_guards_and_recompiles_on_the_other_side():
    """As torch's automatic dynamic: one graph for sizes > 4 (guard ``s0 > 4``), a capture
    on the other side, and no recompile for a new size on the side already seen."""
    ember.compiler.reset()
    counters.clear()
    cf = ember.compile(_branch)
    for n in (8, 16, 30):
        np.testing.assert_array_equal(cf(ember.ones(n, 2)).numpy(), np.full((n, 2), 2.0))
    assert counters["frames"]["total"] == 2      # 8, 16: dynamic from then on
    np.testing.assert_array_equal(cf(ember.ones(3, 2)).numpy(), np.full((3, 2), 3.0))
    assert counters["frames"]["total"] == 3      # the guard failed: captured
    np.testing.assert_array_equal(cf(ember.ones(40, 2)).numpy(), np.full((40, 2), 2.0))
    assert counters["frames"]["total"] == 3


def _b11(fn, n):
    x = ember.arange(float(n * 2)).reshape(n, 2)
    return fn(x)


B11 = {
    "x[: n // 2]": lambda x: x[: x.shape[0] // 2].sum(0),
    "x[: int(n * 0.5)]": lambda x: x[: int(x.shape[0] * 0.5)].sum(0),
    "reshape(n // 2, -1)": lambda x: x.reshape(x.shape[0] // 2, -1).sum(1),
    "x[: n - n % 4]": lambda x: x[: x.shape[0] - x.shape[0] % 4].sum(0),
    "chunk(2)[0]": lambda x: x.chunk(2)[0].sum(0),
    "x[: (n + 1) // 2]": lambda x: x[: (x.shape[0] + 1) // 2].sum(0),
    "split(4)[-1]": lambda x: x.split(4)[-1].sum(0),
    "unfold(0, 2, 2)": lambda x: x.unfold(0, 2, 2).sum((0, 2)),
    "max_pool1d k2": lambda x: F.max_pool1d(x.t().unsqueeze(0), 2).sum(),
    "interpolate x0.5": lambda x: F.interpolate(x.t().unsqueeze(0), scale_factor=0.5).sum(),
}


@pytest.mark.parametrize("name", sorted(B11))
def test_b11_floor_division_sizes_match_eager(name):
    fn = B11[name]
    ember.compiler.reset()
    cf = ember.compile(fn)
    for n in (8, 16, 9, 11, 12, 24, 13):
        x = ember.arange(float(n * 2)).reshape(n, 2)
        try:
            want = fn(x)
        except RuntimeError:  # reshape(n // 2, -1) of an odd n: eager's error, compiled too
            with pytest.raises(RuntimeError):
                cf(x)
            continue
        assert _same(cf(x), want), n


@pytest.mark.parametrize("seq", [(8, 16, 11), (8, 16, 9, 11, 12), (8, 10, 12, 7, 9)])
def test_b11_pool_and_chunk_over_a_varying_length(seq):
    for fn in (lambda x: F.max_pool1d(x, 2).sum(), lambda x: x.chunk(2, dim=2)[0].sum()):
        assert _run(fn, seq, lambda n: ember.arange(float(n)).reshape(1, 1, n)) == []


E = ember
# one row per op family that derives sizes (by floor division or otherwise) from a length
FAMILIES = {
    "chunk": lambda x: x.chunk(2, dim=2)[0].sum() + x.chunk(3, dim=2)[-1].sum(),
    "split": lambda x: x.split(3, dim=2)[-1].sum(),
    "tensor_split": lambda x: x.tensor_split(3, dim=2)[1].sum(),
    "tensor_split_idx": lambda x: x.tensor_split([2, 5], dim=2)[2].sum(),
    "max_pool1d": lambda x: F.max_pool1d(x, 2).sum(),
    "max_pool1d_ceil": lambda x: F.max_pool1d(x, 3, 2, ceil_mode=True).sum(),
    "avg_pool1d": lambda x: F.avg_pool1d(x, 2).sum(),
    "max_pool2d": lambda x: F.max_pool2d(x.unsqueeze(2).expand(1, 2, 3, x.shape[2]), 2).sum(),
    "adaptive_avg": lambda x: F.adaptive_avg_pool1d(x, 3).sum(),
    "adaptive_max": lambda x: F.adaptive_max_pool1d(x, 3).sum(),
    "lp_pool": lambda x: F.lp_pool1d(x, 2, 2).sum(),
    "conv1d_stride2": lambda x: F.conv1d(x, E.ones(1, 2, 3), stride=2).sum(),
    "conv1d_pad": lambda x: F.conv1d(x, E.ones(1, 2, 3), padding=1).sum(),
    "conv2d_stride2": lambda x: F.conv2d(x.unsqueeze(2).expand(1, 2, 3, x.shape[2]),
                                         E.ones(1, 2, 3, 3), stride=2).sum(),
    "conv_transpose1d": lambda x: F.conv_transpose1d(x, E.ones(2, 1, 3), stride=2).sum(),
    "interp_nearest": lambda x: F.interpolate(x, scale_factor=0.5).sum(),
    "interp_linear": lambda x: F.interpolate(x, scale_factor=0.5, mode="linear").sum(),
    "unfold": lambda x: x.unfold(2, 3, 2).sum(),
    "F.unfold": lambda x: F.unfold(x.unsqueeze(2), (1, 3), stride=(1, 2)).sum(),
    "strided_slice": lambda x: x[..., ::2].sum(),
    "negative_slice": lambda x: x[..., -3:].sum() + x[..., :-1].sum(),
    "topk": lambda x: x.topk(2, dim=2)[0].sum(),
    "view(-1)": lambda x: x.view(2, -1).sum(0),
    "arange(n // 2)": lambda x: (x[..., : x.shape[2] // 2] * E.arange(x.shape[2] // 2)).sum(),
    "loop over n": lambda x: sum(x[..., i].sum() * i for i in range(x.shape[2])),
    "len() // 2": lambda x: x[0, 0][: len(x[0, 0]) // 2].sum(),
    "min/max clamp": lambda x: x[..., : max(2, min(x.shape[2], 9))].sum(),
    "numel branch": lambda x: x.sum() * (2 if x.numel() > 30 else 3),
    "size == c": lambda x: x.sum() * (2 if x.size(2) == 12 else 3),
    "dict lookup": lambda x: x.sum() * {8: 2, 12: 5}.get(x.shape[2], 3),
    "bool(n - 9)": lambda x: x.sum() * (1 if x.shape[2] - 9 else 7),
    "n / 4 > 2": lambda x: x.sum() * (2 if x.shape[2] / 4 > 2 else 3),
    "sqrt(n)": lambda x: x.sum() / math.sqrt(x.shape[2]),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_op_families_over_sizes_match_eager(name):
    for seq in SEQS:
        assert _run(FAMILIES[name], seq) == [], seq


def test_training_step_with_a_pool_over_a_varying_length():
    """The backward formulas of a pooled, chunked step over lengths: gradients too."""
    w = ember.ones(2, 1, requires_grad=True)

    def step(x):
        h = F.max_pool1d(x * w, 2)
        a, b = h.chunk(2, dim=2)
        loss = a.sum() * 2 + b.square().sum()
        loss.backward()
        return loss.detach()
    ember.compiler.reset()
    cf = ember.compile(step)
    for n in SEQS[1]:
        w.grad = None
        got = cf(_x(n))
        g1 = w.grad.clone()
        w.grad = None
        want = step(_x(n))
        assert _same(got, want), n
        assert _same(g1, w.grad), n


def test_batch_size_stays_dynamic_for_linear_uses():
    """Flatten by the batch size, a view from size(), a mean over it: no recompile after the
    second size (the common MLP/CNN case keeps its one size-generic graph)."""
    lin = ember.nn.Linear(12, 3)

    def f(x):
        b = x.size(0)
        h = lin(x.view(b, -1))
        return h.reshape(b * 3).sum() / x.shape[0] + h[: b - 1].sum()
    ember.compiler.reset()
    counters.clear()
    cf = ember.compile(f)
    for n in (8, 5, 13, 2, 21, 7):
        x = ember.randn(n, 3, 4)
        assert _same(cf(x), f(x)), n
    assert counters["frames"]["total"] == 2
    assert counters["stats"]["dynamic_graphs"] == 1


def test_size_int_rules():
    """What a size read during a probe capture records (NOTE [ Size decisions ])."""
    x = ember.ones(6, 3)
    with dynamic.track_sizes([x], {0: {0}}) as ts:
        n = x.shape[0]
        assert isinstance(n, dynamic.SizeInt) and int(n) == 6 and type(x.shape[1]) is int
        m = n * 2 - 1
        assert isinstance(m, dynamic.SizeInt) and int(m) == 11
        assert n > 1 and n >= 2 and n != 0 and not n < 2 and bool(n)  # fixed by n >= 2
        assert m > n and n == n and (2 * n) // 2 - n == 0 and (4 * n) % 2 == 0  # exact
        assert ts.audit.guards == [] and ts.audit.opaque == []
        assert n > 4
        assert len(ts.audit.guards) == 1
        assert n // 4 == 1
        assert ts.audit.opaque
        assert int(x.numel()) == 18 and isinstance(x.numel(), dynamic.SizeInt)
    assert ts.audit.holds([5]) and not ts.audit.holds([4])
    assert type(x.shape[0]) is int  # after the capture: plain sizes


def test_static_sizes_at_dynamic_false():
    ember.compiler.reset()
    counters.clear()
    cf = ember.compile(_branch, dynamic=False)
    for n in (8, 16, 3):
        cf(ember.ones(n, 2))
    assert counters["frames"]["total"] == 3


@pytest.mark.parametrize("fn", [_branch, _min, B11["chunk(2)[0]"], B11["x[: n // 2]"]])
def test_dynamic_true_keeps_decisions(fn):
    """dynamic=True's second capture at grown sizes is a probe too."""
    ember.compiler.reset()
    cf = ember.compile(fn, dynamic=True)
    for n in (8, 3, 16, 9, 2, 11, 6):
        x = ember.arange(float(n * 2)).reshape(n, 2)
        assert _same(cf(x), fn(x)), n


# random Python size expressions: each step one of linear, floor division, modulo, min, max
# or a comparison that picks a branch
_STEP = st.tuples(st.sampled_from(["add", "sub", "mul", "floordiv", "mod", "min", "max",
                                   "branch"]), st.integers(1, 7))


def _program(steps):
    def f(x):
        n = x.shape[0]
        v, scale = n, 1.0
        for op, c in steps:
            if op == "add":
                v = v + c
            elif op == "sub":
                v = v - c
            elif op == "mul":
                v = v * c
            elif op == "floordiv":
                v = v // c
            elif op == "mod":
                v = v % c + n
            elif op == "min":
                v = min(v, c + 2)
            elif op == "max":
                v = max(v, c)
            elif v > c + 3:
                scale = scale * 2 + c
        k = max(1, min(v, n))  # a row count the slice can take
        return x[:k].sum(0) * scale + v
    return f


@hyp.settings(max_examples=25, deadline=None)
@hyp.given(st.lists(_STEP, min_size=1, max_size=4),
           st.lists(st.integers(2, 14), min_size=3, max_size=7))
def test_random_size_expressions_compiled_equal_eager(steps, sizes):
    fn = _program(steps)
    ember.compiler.reset()
    cf = ember.compile(fn)
    for n in sizes:
        x = ember.arange(float(2 * n)).reshape(n, 2)
        got, want = cf(x), fn(x)
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=f"{steps} {n}")


@pytest.mark.parametrize("name", ["adaptive_max", "topk", "softmax"])
def test_op_bodies_decide_again_in_the_one_generic_region(name):
    """An op that decides from the size inside its own call (adaptive windows, top-k, softmax)
    stays dynamic and reaches the one generic region (NOTE [ Size-generic regions ]): its
    values and gradients equal eager's at every size."""
    op = {"adaptive_max": lambda h: F.adaptive_max_pool1d(h, 3),
          "topk": lambda h: h.topk(2, dim=2)[0],
          "softmax": lambda h: h.softmax(2)[..., :1]}[name]
    w = ember.ones(2, 1, requires_grad=True)

    def step(x):
        loss = (op(x * w) ** 2).sum()
        loss.backward()
        return loss.detach()
    ember.compiler.reset()
    counters.clear()
    cf = ember.compile(step)
    for n in (8, 10, 12, 7, 9, 11, 13, 17, 6, 23, 5):
        w.grad = None
        got = cf(_x(n))
        g1 = w.grad.clone()
        w.grad = None
        assert _same(got, step(_x(n))) and _same(g1, w.grad), n
    assert counters["frames"]["total"] == 2 and counters["stats"]["generic_instances"] > 0
