"""A compiled batch-1 inference call as one generated function (NOTE [ Batch-1 inference ] in
ember/_functorch/aot_autograd.py): eager's numbers, every way a weight can change seen at the
next call, the frames a call runs, and no reference cycle keeping a dropped region alive."""
import copy
import gc
import sys
import weakref

import numpy as np
import pytest
import torch

import ember
from ember.ops import _blas as B

needs_blas = pytest.mark.skipif(B.gemv_fn("f") is None,
                                reason="NumPy without its bundled OpenBLAS")


def _mlp(lib, dt, rng, sizes=(784, 512, 256, 10)):
    layers = []
    for i in range(len(sizes) - 1):
        layers += [lib.nn.Linear(sizes[i], sizes[i + 1]), lib.nn.ReLU()]
    model = lib.nn.Sequential(*layers[:-1]).to(getattr(lib, dt))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)) * 0.05,
                               dtype=getattr(lib, dt)))
    return model.eval()


def _region(cm):
    """The compiled region the last call of ``cm`` (an ``OptimizedModule``) ran."""
    return cm._compiled._last[2].run


def _close(got, want, dt):
    tol = 1e-6 if dt == "float32" else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@needs_blas
@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_infer_equals_eager_and_torch(dt):
    ember.compiler.reset()
    rng = np.random.default_rng(0)
    model = _mlp(ember, dt, rng)
    tmodel = _mlp(torch, dt, np.random.default_rng(0))
    cm = ember.compile(model)
    kept = []
    with ember.inference_mode():
        for step in range(4):
            xa = rng.standard_normal((1, 784))
            x = ember.tensor(xa, dtype=getattr(ember, dt))
            got = cm(x)
            assert got.is_inference() and not got.requires_grad
            _close(got.numpy(), model(x).numpy(), dt)
            if dt == "float32":  # the same kernel and bias update: the same bits here
                np.testing.assert_array_equal(got.numpy(), model(x).numpy())
            with torch.inference_mode():
                want = tmodel(torch.tensor(xa, dtype=getattr(torch, dt))).numpy()
            tol = 1e-5 if dt == "float32" else 1e-12
            np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol)
            kept.append((got, got.numpy().copy()))
    assert "_gemv0(*G0)" in _region(cm).infer_src
    for t, v in kept:  # a result never aliases a buffer a later call writes
        np.testing.assert_array_equal(t.numpy(), v)
    with ember.no_grad():  # no grad without inference mode: the same function, no flag
        y = cm(x)
    assert not y.is_inference()
    np.testing.assert_array_equal(y.numpy(), got.numpy())


def _frames(fn) -> list:
    """The Python functions one call of ``fn`` enters (C functions not counted)."""
    names = []

    def prof(frame, event, arg):
        if event == "call":
            names.append(frame.f_code.co_name)
    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return names[1:]  # fn itself


@needs_blas
def test_a_call_runs_three_python_frames(monkeypatch):
    """OptimizedModule.__call__ (which runs the wrapper's fast path itself), the guard with
    the generated inference function's body after its checks, and ``_make``."""
    # Once any Tensor subclass with __torch_function__ has been defined in the process (the
    # book's quantization page defines one), every op checks for subclass arguments and the
    # guard takes the general path; this test is about the path taken without one.
    from ember._state import _State
    monkeypatch.setattr(_State, "intercept", False)
    ember.compiler.reset()
    model = _mlp(ember, "float32", np.random.default_rng(1))
    cm = ember.compile(model)
    x = ember.randn(1, 784)
    with ember.inference_mode():
        cm(x)
        cm(x)
        cm(x)  # (the input's own GEMV arguments are made at its second inference call)
        names = _frames(lambda: cm(x))
    assert names == ["__call__", "fast", "_make"], names


@needs_blas
def test_every_kind_of_weight_change_is_seen():
    """In-place writes with and without a version bump (through ``.data`` and ``.numpy()``),
    a re-pointed ``.data`` of the same and of another layout, ``load_state_dict``: the next
    call computes eager's numbers from the new weights (no copy of a weight is kept)."""
    ember.compiler.reset()
    rng = np.random.default_rng(2)
    model = _mlp(ember, "float32", rng)
    cm = ember.compile(model)
    x = ember.tensor(rng.standard_normal((1, 784)), dtype=ember.float32)
    w0, w2 = model[0].weight, model[2].weight

    def scaled_in_place():
        with ember.no_grad():
            w2.mul_(1.5)  # a version bump
    changes = [
        lambda: w0.data.mul_(0.5),  # no version bump (``.data`` counts its own)
        lambda: w0.detach().numpy().__imul__(-1.0),  # nor a write through NumPy
        scaled_in_place,
        lambda: setattr(w2, "data", ember.randn(256, 512) * 0.05),  # a new array
        lambda: setattr(w2, "data", (ember.randn(512, 256) * 0.05).t()),  # strided
        lambda: setattr(w2, "data", ember.randn(256, 512) * 0.05),  # contiguous again
        lambda: model.load_state_dict({k: v * 0.9 for k, v in model.state_dict().items()}),
        lambda: model[4].bias.data.add_(1.0),
    ]
    with ember.inference_mode():
        before = cm(x).numpy().copy()
        for k, change in enumerate(changes):
            change()
            got = cm(x).numpy()
            _close(got, model(x).numpy(), "float32")
            assert not np.array_equal(got, before), k
            before = got.copy()


@needs_blas
def test_a_copy_of_a_region_does_not_run_its_infer():
    ember.compiler.reset()
    model = _mlp(ember, "float32", np.random.default_rng(3), (8, 6, 4))
    cm = ember.compile(model)
    with ember.inference_mode():
        cm(ember.randn(1, 8))
        cm(ember.randn(1, 8))
    region = _region(cm)
    assert region._infer is not None
    assert copy.copy(region)._infer is None


@needs_blas
@pytest.mark.parametrize("train", [False, True])
def test_a_dropped_region_goes_without_the_collector(train):
    """A region, its buffer sets and GEMV arguments are freed when the cache lets go of it,
    with the garbage collector off (CI once found workspace blocks held by such cycles)."""
    ember.compiler.reset()
    gc.collect()
    gc.disable()
    try:
        rng = np.random.default_rng(4)
        model = _mlp(ember, "float32", rng)
        cm = ember.compile(model)
        for _ in range(3):
            x = ember.tensor(rng.standard_normal((1, 784)), dtype=ember.float32)
            if train:
                model.train()
                cm(x).sum().backward()
            else:
                with ember.inference_mode():
                    cm(x)
        r = _region(cm)
        sets = [s for sets in r._env["_fpool"].by_spec.values() for s in sets]
        if not train:
            sets += r._infer.__globals__["_L"]  # the inference function's buffer sets
        params = {id(p._data) for p in model.parameters()}  # a set ends with the weights
        bufs = [weakref.ref(b) for s in sets for b in s
                if isinstance(b, np.ndarray) and id(b) not in params]
        assert bufs
        region = weakref.ref(r)
        del r, sets
        ember.compiler.reset()
        del cm
        assert region() is None
        assert all(b() is None for b in bufs)
    finally:
        gc.enable()
