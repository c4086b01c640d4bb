"""ember.amp.GradScaler against torch.amp.GradScaler("cpu"): the same scale trajectory, skipped
steps and parameters on runs whose gradients overflow, and torch's errors for misuse."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

FRAMEWORKS = [ember, torch]


def make_model(m, dtype="float32"):
    """Linear(3, 6) -> Tanh -> Linear(6, 1), weights from a fixed NumPy stream."""
    rng = np.random.default_rng(7)
    model = m.nn.Sequential(m.nn.Linear(3, 6), m.nn.Tanh(), m.nn.Linear(6, 1))
    with m.no_grad():
        for p in model.parameters():
            p.copy_(m.tensor(rng.normal(0, 0.5, tuple(p.shape)), dtype=p.dtype))
    return model.to(getattr(m, dtype))


def data(m, dtype="float32"):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 3))
    y = np.sin(x.sum(1, keepdims=True))
    return m.tensor(x, dtype=getattr(m, dtype)), m.tensor(y, dtype=getattr(m, dtype))


def train(m, *, steps=14, blowups=(2, 5, 6, 11), nan_at=(8,), clip=None, opt="sgd",
          dtype="float32", **scaler_kw):
    """Run ``steps`` scaled steps; at ``blowups`` the loss is huge (scaled, it overflows), at
    ``nan_at`` it is NaN.  Returns per-step (scale, growth tracker, stepped?) and the params."""
    model = make_model(m, dtype)
    x, y = data(m, dtype)
    if opt == "sgd":
        optimizer = m.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        optimizer = m.optim.Adam(model.parameters(), lr=0.01)
    scaler = m.amp.GradScaler("cpu", **scaler_kw)
    trace = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        if step in blowups:
            loss = loss * (1e35 if dtype == "float32" else 1e304)
        if step in nan_at:
            loss = loss * float("nan")
        before = [p.detach().clone() for p in model.parameters()]
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(optimizer)
            m.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(optimizer)
        stepped = any(not m.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
        scaler.update()
        trace.append((scaler.get_scale(), scaler._get_growth_tracker(), stepped))
    params = [p.detach().double().numpy() for p in model.parameters()]
    return trace, params, scaler


@pytest.mark.parametrize("kw", [
    dict(growth_interval=3),
    dict(growth_interval=2, clip=0.5),
    dict(growth_interval=1, init_scale=1024.0, growth_factor=3.0, backoff_factor=0.25),
    dict(growth_interval=4, opt="adam", clip=1.0),
    dict(growth_interval=2, dtype="float64"),
    dict(growth_interval=2000, blowups=(0, 1, 2)),
])
def test_overflowing_run_matches_torch(kw):
    (te, pe, se), (tt, pt, st) = (train(m, **kw) for m in FRAMEWORKS)
    assert te == tt
    assert [s for _, _, s in te].count(False) >= 3  # the overflows really skipped steps
    for a, b in zip(pe, pt):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert se.state_dict() == st.state_dict()
    assert se._scale.dtype == ember.float32 and se._scale.shape == ()
    assert se._growth_tracker.dtype == ember.int32 and se._growth_tracker.shape == ()


def test_scale_does_not_grow_past_float32_max():
    for m in FRAMEWORKS:
        scaler = m.amp.GradScaler("cpu", init_scale=2.0**127, growth_interval=1)
        p = m.zeros(2, requires_grad=True)
        opt = m.optim.SGD([p], lr=0.1)
        scaler.scale((p * 1.0).sum()).backward()
        scaler.step(opt)
        scaler.update()
        assert scaler.get_scale() == 2.0**127 and scaler._get_growth_tracker() == 0, m


def test_unscale_gives_true_gradients_before_clipping():
    grads = {}
    for m in FRAMEWORKS:
        p = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
        opt = m.optim.SGD([p], lr=1.0)
        scaler = m.amp.GradScaler("cpu", init_scale=3.0)  # 1/3 is inexact in float32
        scaler.scale((p * p).sum()).backward()
        scaler.unscale_(opt)
        grads[m.__name__] = p.grad.numpy().copy()
    np.testing.assert_array_equal(grads["ember"], grads["torch"])


def test_scale_nested_outputs():
    for m in FRAMEWORKS:
        scaler = m.amp.GradScaler("cpu", init_scale=4.0)
        out = scaler.scale([m.ones(2), (m.ones(1), [m.full((1,), 2.0)])])
        assert type(out) is list and type(out[1]) is tuple and type(out[1][1]) is list
        assert out[0].tolist() == [4.0, 4.0] and out[1][1][0].tolist() == [8.0]
        gen = scaler.scale(iter([m.ones(1)]))
        assert [t.tolist() for t in gen] == [[4.0]]
        half = scaler.scale(m.ones(2, dtype=m.float16))
        assert half.dtype == m.float16


def test_update_with_new_scale():
    for m in FRAMEWORKS:
        scaler = m.amp.GradScaler("cpu")
        scaler.scale(m.ones(1))
        scaler.update(3.0)
        assert scaler.get_scale() == 3.0
        scaler.update(m.tensor(5.0))
        assert scaler.get_scale() == 5.0


def test_disabled_scaler_is_a_pass_through():
    class Opt:
        param_groups = []

        def step(self, *args, **kwargs):
            return ("stepped", args, kwargs)

    for m in FRAMEWORKS:
        scaler = m.amp.GradScaler("cpu", enabled=False)
        t = m.ones(2)
        assert scaler.scale(t) is t and scaler.scale(5) == 5
        assert scaler.get_scale() == 1.0 and not scaler.is_enabled()
        assert scaler.step(Opt(), 1, k=2) == ("stepped", (1,), {"k": 2})
        assert scaler.unscale_(Opt()) is None and scaler.update() is None
        assert scaler.state_dict() == {}
        scaler.load_state_dict({})  # a no-op when disabled


def test_step_forwards_arguments_and_return_value():
    for m in FRAMEWORKS:
        p = m.zeros(1, requires_grad=True)

        class Opt:
            param_groups = [{"params": [p]}]

            def step(self, *args, **kwargs):
                return ("stepped", args, kwargs)

        scaler = m.amp.GradScaler("cpu")
        scaler.scale(p.sum()).backward()
        assert scaler.step(Opt(), 1, k=2) == ("stepped", (1,), {"k": 2})


def test_getters_setters_and_state_dict_round_trip():
    _, _, se = train(ember, growth_interval=3)
    _, _, st = train(torch, growth_interval=3)
    for s in (se, st):
        assert (s.get_growth_factor(), s.get_backoff_factor(), s.get_growth_interval()) == (
            2.0, 0.5, 3)
        s.set_growth_factor(4.0)
        s.set_backoff_factor(0.125)
        s.set_growth_interval(9)
    assert se.state_dict() == st.state_dict()
    assert list(se.state_dict()) == ["scale", "growth_factor", "backoff_factor",
                                     "growth_interval", "_growth_tracker"]
    for m, src in ((ember, se), (torch, st)):
        fresh = m.amp.GradScaler("cpu")
        fresh.load_state_dict(src.state_dict())
        assert fresh.state_dict() == src.state_dict() and fresh._scale is None
        fresh.scale(m.ones(1))  # the tensors are made from the loaded values
        assert fresh._scale.item() == src.get_scale()
        used = m.amp.GradScaler("cpu")
        used.scale(m.ones(1))
        used.load_state_dict(src.state_dict())
        assert used._scale.item() == src.get_scale()
        assert used._growth_tracker.item() == src._get_growth_tracker()


def test_pickle_only_between_iterations():
    for m in FRAMEWORKS:
        scaler = m.amp.GradScaler("cpu", init_scale=8.0)
        p = m.zeros(1, requires_grad=True)
        opt = m.optim.SGD([p], lr=0.1)
        scaler.scale(p.sum() * 2).backward()
        scaler.unscale_(opt)
        with pytest.raises(AssertionError, match="may only be pickled at the beginning"):
            pickle.dumps(scaler)
        scaler.step(opt)
        scaler.update()
        copy = pickle.loads(pickle.dumps(scaler))
        assert copy._scale is None and copy.get_scale() == scaler.get_scale()


def test_cuda_device_without_gpu_warns_and_disables():
    for m in FRAMEWORKS:
        with pytest.warns(UserWarning, match="GradScaler is enabled, but CUDA is not available"):
            scaler = m.amp.GradScaler("cuda")
        assert not scaler.is_enabled()
        with pytest.warns(UserWarning):
            scaler = m.amp.GradScaler()  # device defaults to "cuda"
        assert not scaler.is_enabled()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not m.amp.GradScaler("cuda", enabled=False).is_enabled()


def test_deprecated_cuda_amp_alias_warns_as_torch():
    for m in FRAMEWORKS:
        with pytest.warns(FutureWarning, match=r"cuda.amp.GradScaler\(args...\)` is deprecated"):
            with pytest.warns(UserWarning, match="CUDA is not available"):
                scaler = m.cuda.amp.GradScaler(init_scale=8.0)
        assert isinstance(scaler, m.amp.GradScaler) and not scaler.is_enabled()


def _fp16_grads(m):
    p = m.ones(2, dtype=m.float16, requires_grad=True)
    opt = m.optim.SGD([p], lr=0.1)
    scaler = m.amp.GradScaler("cpu")
    scaler.scale((p * 2).sum()).backward()
    scaler.unscale_(opt)


def _scaled(m, *calls):
    p = m.ones(2, requires_grad=True)
    opt = m.optim.SGD([p], lr=0.1)
    scaler = m.amp.GradScaler("cpu")
    scaler.scale(p.sum()).backward()
    for call in calls:
        call(scaler, opt)


BAD = {
    "fp16 grads": (_fp16_grads, ValueError, "Attempting to unscale FP16 gradients."),
    "unscale_ twice": (lambda m: _scaled(m, lambda s, o: s.unscale_(o),
                                         lambda s, o: s.unscale_(o)),
                       RuntimeError, "unscale_() has already been called on this optimizer "
                                     "since the last update()."),
    "unscale_ after step": (lambda m: _scaled(m, lambda s, o: s.step(o),
                                              lambda s, o: s.unscale_(o)),
                            RuntimeError, "unscale_() is being called after step()."),
    "step twice": (lambda m: _scaled(m, lambda s, o: s.step(o), lambda s, o: s.step(o)),
                   RuntimeError, "step() has already been called since the last update()."),
    "closure": (lambda m: _scaled(m, lambda s, o: s.step(o, closure=lambda: 0)),
                RuntimeError, "Closure use is not currently supported"),
    "update without step": (lambda m: _scaled(m, lambda s, o: s.update()),
                            AssertionError, "No inf checks were recorded prior to update."),
    "update(2-element)": (lambda m: _scaled(m, lambda s, o: s.update(m.tensor([4.0, 5.0]))),
                          AssertionError, "new_scale should be a float or a 1-element"),
    "update(int)": (lambda m: _scaled(m, lambda s, o: s.update(4)), AttributeError, "device"),
    "update before scale": (lambda m: m.amp.GradScaler("cpu").update(), AssertionError,
                            "Attempted update but _scale is None."),
    "unscale_ before scale": (lambda m: m.amp.GradScaler("cpu").unscale_(None), AssertionError,
                              "Attempted unscale_ but _scale is None."),
    "step before scale": (lambda m: m.amp.GradScaler("cpu").step(None), AssertionError,
                          "Attempted step but _scale is None."),
    "step, no grads": (lambda m: _step_without_grads(m), AssertionError,
                       "No inf checks were recorded for this optimizer."),
    "scale(5)": (lambda m: m.amp.GradScaler("cpu").scale(5), ValueError,
                 "outputs must be a Tensor or an iterable of Tensors"),
    "scale([1])": (lambda m: m.amp.GradScaler("cpu").scale([1]), ValueError,
                   "outputs must be a Tensor or an iterable of Tensors"),
    "growth_factor 1": (lambda m: m.amp.GradScaler("cpu", growth_factor=1.0), AssertionError,
                        "The growth factor must be > 1.0."),
    "backoff_factor 1": (lambda m: m.amp.GradScaler("cpu", backoff_factor=1.0), AssertionError,
                         "The backoff factor must be < 1.0."),
    "load empty": (lambda m: m.amp.GradScaler("cpu").load_state_dict({}), RuntimeError,
                   "The source state dict is empty"),
}


def _step_without_grads(m):
    p = m.ones(2, requires_grad=True)
    scaler = m.amp.GradScaler("cpu")
    scaler.scale(m.ones(1))
    scaler.step(m.optim.SGD([p], lr=0.1))


@pytest.mark.parametrize("name", list(BAD))
def test_misuse_raises_torchs_error(name):
    fn, exc, message = BAD[name]
    for m in FRAMEWORKS:
        with pytest.raises(exc) as info:
            fn(m)
        assert message in str(info.value), (m, str(info.value))


def test_bfloat16_and_float64_gradients_are_unscaled():
    for dtype in ("bfloat16", "float64"):
        got = []
        for m in FRAMEWORKS:
            p = m.tensor([1.5, -3.0, 0.1], dtype=getattr(m, dtype), requires_grad=True)
            opt = m.optim.SGD([p], lr=1.0)
            scaler = m.amp.GradScaler("cpu", init_scale=3.0)
            scaler.scale((p * p).sum()).backward()
            scaler.unscale_(opt)
            got.append(p.grad.double().numpy())
        np.testing.assert_array_equal(*got)


@settings(max_examples=25, deadline=None)
@given(overflows=st.lists(st.booleans(), min_size=1, max_size=12),
       init_exp=st.integers(-4, 127), growth=st.sampled_from([1.5, 2.0, 3.0, 1e30]),
       backoff=st.sampled_from([0.5, 0.1, 0.999, 1e-30]), interval=st.integers(1, 4))
def test_scale_trajectory_matches_torch_for_any_overflow_pattern(overflows, init_exp, growth,
                                                                 backoff, interval):
    """Backoff, growth, the float32 rounding of the scale and the cap at float32's max."""
    traces = []
    for m in FRAMEWORKS:
        p = m.zeros(1, requires_grad=True)
        # lr 1: p moves by exactly -grad, even when the unscaled gradient is subnormal (a
        # scale near float32's max): with lr 0.5, torch's fused a + alpha * b rounds once
        # where ember's rounds alpha * b first, one subnormal ulp apart (Hypothesis found it)
        opt = m.optim.SGD([p], lr=1.0)
        scaler = m.amp.GradScaler("cpu", init_scale=2.0**init_exp, growth_factor=growth,
                                  backoff_factor=backoff, growth_interval=interval)
        trace = []
        for bad in overflows:
            scaler.scale(m.ones(1))
            p.grad = m.tensor([float("inf") if bad else 1.0])
            scaler.step(opt)
            scaler.update()
            trace.append((scaler.get_scale(), scaler._get_growth_tracker(), p.item()))
        traces.append(trace)
    assert traces[0] == traces[1]


def _fused_like(m, *, kwarg: bool, unscale_first: bool, bad: bool):
    """What an optimizer with ``_step_supports_amp_scaling`` is given by ``scaler.step``."""
    p = m.zeros(2, requires_grad=True)
    seen = {}

    class Fused:
        _step_supports_amp_scaling = True
        param_groups = [{"params": [p]}]

        if kwarg:
            def step(self, grad_scaler=None):
                seen["scaler"] = grad_scaler is scaler
                return "stepped"
        else:
            def step(self):
                seen["grad_scale"] = getattr(self, "grad_scale", "absent")
                seen["found_inf"] = self.found_inf.item()
                return "stepped"

    opt = Fused()
    scaler = m.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(p.sum() * (float("inf") if bad else 1.0)).backward()
    if unscale_first:
        scaler.unscale_(opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = scaler.step(opt)
    try:  # a kwarg optimizer must record its own inf checks, or update() has none
        scaler.update()
    except AssertionError as e:
        result = (result, str(e))
    gs = seen.get("grad_scale")
    seen["grad_scale"] = gs.item() if hasattr(gs, "item") else gs
    return (result, seen, p.grad.tolist(), scaler.get_scale(), hasattr(opt, "found_inf"),
            [w.category.__name__ for w in caught])


@pytest.mark.parametrize("kwarg", [False, True])
@pytest.mark.parametrize("unscale_first", [False, True])
@pytest.mark.parametrize("bad", [False, True])
def test_optimizers_that_unscale_themselves(kwarg, unscale_first, bad):
    got = [_fused_like(m, kwarg=kwarg, unscale_first=unscale_first, bad=bad)
           for m in FRAMEWORKS]
    assert got[0] == got[1]
