"""ember.utils.checkpoint against torch.utils.checkpoint: gradients of a checkpointed run equal
the plain run's (dropout masks replayed), ember equals torch where the RNG allows, activations
are really dropped and recomputed, and the bad-input errors and warnings are PyTorch's."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import torch
import torch.utils.checkpoint as tckpt

import ember
import ember.utils.checkpoint as eckpt
from opcheck import TOL, as_np

MODS = [(ember, eckpt), (torch, tckpt)]
SIZES = (6, 16, 16, 4)


def mlp(mod, dtype, dropout=0.0):
    """Linear-Tanh(-Dropout) blocks with the same NumPy weights in either framework."""
    rng = np.random.default_rng(0)
    nn = mod.nn
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        lin = nn.Linear(a, b).to(getattr(mod, dtype))
        with mod.no_grad():
            lin.weight.copy_(mod.from_numpy(rng.uniform(-0.5, 0.5, (b, a)).astype(dtype)))
            lin.bias.copy_(mod.from_numpy(rng.uniform(-0.5, 0.5, b).astype(dtype)))
        layers.append(lin)
        if i < len(SIZES) - 2:
            layers.append(nn.Tanh())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers).train()


def data(mod, dtype):
    x = np.random.default_rng(1).standard_normal((5, SIZES[0])).astype(dtype)
    return mod.from_numpy(x).requires_grad_()


RUNS = {  # name -> run(mod, ckpt_module, model, x)
    "plain": lambda m, c, model, x: model(x),
    "nonreentrant": lambda m, c, model, x: c.checkpoint(model, x, use_reentrant=False),
    "reentrant": lambda m, c, model, x: c.checkpoint(model, x, use_reentrant=True),
    "sequential": lambda m, c, model, x: c.checkpoint_sequential(model, 2, x,
                                                                 use_reentrant=False),
    "sequential_reentrant": lambda m, c, model, x: c.checkpoint_sequential(
        model, 3, x, use_reentrant=True),
    "no_rng_preserve": lambda m, c, model, x: c.checkpoint(model, x, use_reentrant=False,
                                                          preserve_rng_state=False),
}


def loss_and_grads(mod, ck, run, dtype, dropout=0.0, seed=3):
    model = mlp(mod, dtype, dropout)
    x = data(mod, dtype)
    mod.manual_seed(seed)
    loss = (RUNS[run](mod, ck, model, x) ** 2).sum()
    loss.backward()
    return [as_np(loss), as_np(x.grad)] + [as_np(p.grad) for p in model.parameters()]


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
@pytest.mark.parametrize("run", ["nonreentrant", "reentrant", "sequential",
                                 "sequential_reentrant"])
def test_dropout_replayed_grads_equal_plain(mod, ck, run):
    # the recomputation draws the same dropout masks, so gradients are bit for bit the plain
    # run's, in ember as in torch
    plain = loss_and_grads(mod, ck, "plain", "float64", dropout=0.5)
    ckpt = loss_and_grads(mod, ck, run, "float64", dropout=0.5)
    for a, b in zip(plain, ckpt):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_without_rng_preservation_masks_differ(mod, ck):
    # preserve_rng_state=False recomputes with fresh masks: the gradients no longer match
    plain = loss_and_grads(mod, ck, "plain", "float64", dropout=0.5)
    ckpt = loss_and_grads(mod, ck, "no_rng_preserve", "float64", dropout=0.5)
    np.testing.assert_array_equal(plain[0], ckpt[0])  # the forward is the plain one
    assert any(not np.array_equal(a, b) for a, b in zip(plain[1:], ckpt[1:]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_ember_matches_torch(run, dtype):
    e = loss_and_grads(ember, eckpt, run, dtype)
    t = loss_and_grads(torch, tckpt, run, dtype)
    for a, b in zip(e, t):
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
@pytest.mark.parametrize("reentrant", [False, True])
def test_forward_runs_again_in_backward(mod, ck, reentrant):
    calls = []

    def fn(x):
        calls.append(1)
        return (x.sin() * x).exp()

    x = mod.ones(3, dtype=mod.float64, requires_grad=True)
    y = ck.checkpoint(fn, x, use_reentrant=reentrant)
    assert len(calls) == 1
    y.sum().backward()
    assert len(calls) == 2
    np.testing.assert_allclose(as_np(x.grad), as_np(
        ((x.sin() * x).exp() * (x.cos() * x + x.sin())).detach()))


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
@pytest.mark.parametrize("reentrant", [False, True])
def test_nested_checkpoints_several_outputs_and_constants(reentrant):
    # a checkpoint inside a checkpointed function, two outputs, and a non-tensor argument (the
    # inner reentrant checkpoint runs under the outer one's no_grad forward: both warn there)
    grads = []
    for mod, ck in MODS:
        x = mod.tensor([0.3, 0.7, 1.1], dtype=mod.float64, requires_grad=True)

        def outer(a, k):
            b = ck.checkpoint(lambda c: c.sin() * c, a.exp(), use_reentrant=reentrant)
            return b.cos() * k, b * 2

        y1, y2 = ck.checkpoint(outer, x, 3, use_reentrant=reentrant)
        (y1.sum() + (y2 ** 2).sum()).backward()
        grads.append(as_np(x.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_rng_state_after_backward_is_untouched():
    # the recomputation replays the forward's RNG state and then restores the outer one
    model = mlp(ember, "float64", dropout=0.5)
    ember.manual_seed(0)
    y = eckpt.checkpoint(model, data(ember, "float64"), use_reentrant=False)
    before = ember.get_rng_state()
    y.sum().backward()
    assert np.array_equal(as_np(ember.get_rng_state()), as_np(before))


def test_autograd_grad_and_kwargs_non_reentrant():
    for mod, ck in MODS:
        x = mod.tensor([0.5, 1.5], dtype=mod.float64, requires_grad=True)
        y = ck.checkpoint(lambda a, scale: (a * scale).sin(), x, use_reentrant=False,
                          scale=3.0)
        (g,) = mod.autograd.grad(y.sum(), x)
        np.testing.assert_allclose(as_np(g), 3 * np.cos(3 * np.array([0.5, 1.5])))


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_retain_graph_second_backward_recomputes(mod, ck):
    x = mod.tensor([0.5, 1.5], dtype=mod.float64, requires_grad=True)
    y = ck.checkpoint(lambda a: a.exp() * a, x, use_reentrant=False).sum()
    y.backward(retain_graph=True)
    first = as_np(x.grad).copy()
    y.backward()
    np.testing.assert_allclose(as_np(x.grad), 2 * first)


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_use_reentrant_not_passed_warns(mod, ck):
    x = mod.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        ck.checkpoint(lambda a: a * 2, x)
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        ck.checkpoint_sequential([mod.nn.Identity(), mod.nn.Identity()], 2, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ck.checkpoint(lambda a: a * 2, x, use_reentrant=False)


BAD = [  # name, call(ck, mod), exception, message
    ("kwargs_reentrant", lambda ck, m, x: ck.checkpoint(lambda a, s: a * s, x, s=2,
                                                        use_reentrant=True),
     ValueError, "Unexpected keyword arguments: s"),
    ("context_fn_reentrant", lambda ck, m, x: ck.checkpoint(
        lambda a: a, x, use_reentrant=True, context_fn=lambda: (None, None)),
     ValueError, "only supported when use_reentrant=False"),
    ("debug_reentrant", lambda ck, m, x: ck.checkpoint(lambda a: a, x, use_reentrant=True,
                                                       debug=True),
     ValueError, "only supported when use_reentrant=False"),
    ("determinism_check", lambda ck, m, x: ck.checkpoint(lambda a: a, x, use_reentrant=False,
                                                         determinism_check="bitwise"),
     ValueError, "determinism_check should be one of"),
    ("sequential_kwargs", lambda ck, m, x: ck.checkpoint_sequential(
        [m.nn.Identity()], 1, x, use_reentrant=False, foo=1),
     ValueError, "Unexpected keyword arguments: foo"),
]


@pytest.mark.parametrize("name,call,exc,msg", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_bad_input(mod, ck, name, call, exc, msg):
    x = mod.ones(2, requires_grad=True)
    with pytest.raises(exc, match=msg):
        call(ck, mod, x)


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_recompute_that_saves_differently_raises_checkpoint_error(mod, ck):
    calls = []

    def fn(a):  # a function that saves less on its second run
        calls.append(1)
        return a.exp().exp() if len(calls) % 2 == 1 else a.exp()

    x = mod.ones(2, dtype=mod.float64, requires_grad=True)
    y = ck.checkpoint(fn, x, use_reentrant=False)
    with pytest.raises(ck.CheckpointError, match="different number of tensors was saved"):
        y.sum().backward()
    assert issubclass(ck.CheckpointError, RuntimeError)


@pytest.mark.parametrize("mod,ck", MODS, ids=["ember", "torch"])
def test_recompute_that_saves_more(mod, ck):
    # early_stop (the default) stops the recomputation once it has every saved tensor, so
    # extra work after that is never run; without it the extra saves are an error
    calls = []

    def fn(a):
        calls.append(1)
        return a.exp() if len(calls) % 2 == 1 else a.exp().exp()

    x = mod.ones(2, dtype=mod.float64, requires_grad=True)
    ck.checkpoint(fn, x, use_reentrant=False).sum().backward()
    np.testing.assert_allclose(as_np(x.grad), np.exp(np.ones(2)))
    calls.clear()
    y = ck.checkpoint(fn, x, use_reentrant=False, early_stop=False)
    with pytest.raises(ck.CheckpointError, match="trying to save more tensors"):
        y.sum().backward()
    calls.clear()
    with ck.set_checkpoint_early_stop(False):
        y = ck.checkpoint(fn, x, use_reentrant=False)
    with pytest.raises(ck.CheckpointError, match="trying to save more tensors"):
        y.sum().backward()


def test_recompute_with_other_shapes_raises_metadata_error():
    calls = []

    def fn(a):
        calls.append(1)
        return (a if len(calls) == 1 else a[:1]).exp()

    x = ember.ones(2, dtype=ember.float64, requires_grad=True)
    y = eckpt.checkpoint(fn, x, use_reentrant=False)
    with pytest.raises(eckpt.CheckpointError, match="different metadata"):
        y.sum().backward()
    # determinism_check="none" skips the metadata comparison (then the gradient is wrong,
    # which is what the check is there to catch)
    calls.clear()
    y = eckpt.checkpoint(fn, x, use_reentrant=False, determinism_check="none")
    y.sum().backward()


def test_reentrant_without_grad_inputs_warns():
    for mod, ck in MODS:
        w = mod.nn.Linear(2, 2)
        with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
            ck.checkpoint(w, mod.ones(1, 2), use_reentrant=True)


def test_activations_are_not_kept():
    # a 12-layer MLP whose activations (1 MiB each) outweigh its weights: the forward of the
    # checkpointed model holds only the segments' inputs (and the last segment) until backward
    nn = ember.nn
    model = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.ReLU())])
    x = ember.randn(4096, 64, requires_grad=True)

    def held(run):
        # pooled workspace blocks (Linear's and ReLU's results) would be reused unseen by
        # tracemalloc, and free ones stay pooled: start from an empty pool so every block held
        # is allocated here, and drop the free ones before counting what is held
        from ember.ops import _workspace
        _workspace.clear()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            y = run()
            _workspace.clear()
            kept = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        y.sum().backward()
        return kept

    plain = held(lambda: model(x))
    ckpt = held(lambda: eckpt.checkpoint_sequential(model, 4, x, use_reentrant=False))
    assert plain > 12 * 2**20  # 12 activations (each ReLU's output is the next Linear's input)
    # 4 segments of 3 layers: the inputs of segments 2-4 and the last segment's 3 activations
    assert ckpt < 6.5 * 2**20


def test_bench_workloads_match_torch():
    # bench/wl_checkpoint.py: the plain and checkpointed steps give torch's loss and input grad
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bench.workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY
    outs = {}
    for name in ("mlp12_step", "mlp12_ckpt_step"):
        for mod in (ember, torch):
            step, convert = REGISTRY[name].fn(mod)
            outs[name, mod] = as_np(step())
            assert convert(1.0) > 0
        np.testing.assert_allclose(outs[name, ember], outs[name, torch], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(outs["mlp12_step", ember], outs["mlp12_ckpt_step", ember])
