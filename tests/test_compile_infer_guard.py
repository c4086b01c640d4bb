"""The batch-1 inference call's guard with the inference function's body inside it (NOTE
[ Batch-1 inference ] in ember/_functorch/aot_autograd.py, NOTE [ Guard cost ] in
ember/_dynamo/eval_frame.py): training flags read from the module dicts and still seen when
flipped any way, a class-level ``training`` property read as an attribute, the separate call
kept where the two functions' names collide; each call equals eager and torch."""
import numpy as np
import pytest
import torch

import compilecheck
import ember
from ember._dynamo import eval_frame
from ember._state import _State
from ember.ops import _blas

needs_blas = pytest.mark.skipif(_blas.gemv_fn("f") is None,
                                reason="NumPy without its bundled OpenBLAS")


@pytest.fixture(autouse=True)
def _no_subclass_dispatch(monkeypatch):
    # a Tensor subclass defined elsewhere in the process turns every op's (and the guard's)
    # general path on; these tests are about the path taken without one
    monkeypatch.setattr(_State, "intercept", False)
    ember.compiler.reset()


def _twice_in_training(lib):
    """A module doubling its input in training mode only (Python branching on the flag)."""
    class Twice(lib.nn.Module):
        def forward(self, x):
            return x * 2 if self.training else x
    return Twice()


def _model(lib, sizes=(8, 6, 4)):
    rng = np.random.default_rng(3)
    layers = [lib.nn.Linear(sizes[0], sizes[1]), lib.nn.ReLU(),
              lib.nn.Linear(sizes[1], sizes[2]), _twice_in_training(lib)]
    model = lib.nn.Sequential(*layers)
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)), dtype=lib.float32))
    return model.eval()


_guard_src = compilecheck.guard_source


def _warm(cm, x):
    with ember.inference_mode():
        for _ in range(3):
            cm(x)


@needs_blas
def test_the_guard_runs_the_inference_body_and_reads_training_from_module_dicts():
    model = _model(ember)
    cm = ember.compile(model)
    x = ember.randn(1, 8)
    _warm(cm, x)
    src = _guard_src(cm._compiled)
    assert "S = _L.pop()" in src and "INFER" not in src
    assert "['training'] is False" in src and ".training is" not in src
    tm = _model(torch)
    with ember.inference_mode():
        got = cm(x)
    with torch.inference_mode():
        want = tm(torch.from_numpy(x.numpy()))
    assert got.is_inference()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


FLIPS = [  # how the last module's flag is flipped to training and back
    ("train()/eval()", lambda m: m.train(), lambda m: m.eval()),
    ("attribute", lambda m: setattr(m, "training", True), lambda m: setattr(m, "training", False)),
    ("__dict__", lambda m: m.__dict__.__setitem__("training", True),
     lambda m: m.__dict__.__setitem__("training", False)),
]


@needs_blas
@pytest.mark.parametrize("name,on,off", FLIPS, ids=[f[0] for f in FLIPS])
def test_a_flipped_training_flag_is_seen_at_the_next_call(name, on, off):
    model = _model(ember)
    cm = ember.compile(model)
    x = ember.randn(1, 8)
    _warm(cm, x)
    with ember.inference_mode():
        base = cm(x).numpy().copy()
        want = model(x).numpy()
    np.testing.assert_array_equal(base, want)
    on(model[3])
    with ember.inference_mode():
        got = cm(x).numpy()
        got2 = cm(x).numpy()
    np.testing.assert_array_equal(got, base * 2)
    np.testing.assert_array_equal(got2, base * 2)
    off(model[3])
    with ember.inference_mode():
        got = cm(x).numpy()
    np.testing.assert_array_equal(got, base)


def _prop_model(lib):
    """``_model`` whose last module keeps its flag behind a class-level property."""
    class Flagged(lib.nn.Module):
        def __init__(self):
            super().__init__()
            object.__setattr__(self, "_mode", True)
            self.__dict__.pop("training", None)

        @property
        def training(self):
            return self._mode

        @training.setter
        def training(self, v):
            object.__setattr__(self, "_mode", v)

        def forward(self, x):
            return x * 2 if self.training else x
    model = _model(lib)
    model[3] = Flagged()
    return model.eval()


@needs_blas
def test_a_training_property_is_read_as_an_attribute():
    model = _prop_model(ember)
    assert not eval_frame._in_dict(model[3], "training")
    assert eval_frame._in_dict(model[0], "training")
    cm = ember.compile(model)
    x = ember.randn(1, 8)
    _warm(cm, x)
    src = _guard_src(cm._compiled)
    assert src.count(".training is False") == 1 and src.count("['training'] is False") == 4
    with ember.inference_mode():
        base = cm(x).numpy().copy()
    object.__setattr__(model[3], "_mode", True)  # (the dict has no 'training' to change)
    with ember.inference_mode():
        got = cm(x).numpy()
    np.testing.assert_array_equal(got, base * 2)


def test_in_dict_follows_python_attribute_lookup():
    class Plain:
        def method(self):
            return 1

    class Custom:
        def __getattribute__(self, name):
            return object.__getattribute__(self, name)

    class Slots:
        __slots__ = ("training",)

    p = Plain()
    p.training = True
    p.method = 2  # an instance value shadows a function (a non-data descriptor)
    c = Custom()
    c.training = True
    s = Slots()
    s.training = True
    assert eval_frame._in_dict(p, "training") and eval_frame._in_dict(p, "method")
    assert not eval_frame._in_dict(p, "absent")
    assert not eval_frame._in_dict(c, "training")  # its own __getattribute__
    assert not eval_frame._in_dict(s, "training")  # a slot: no __dict__


@needs_blas
def test_names_in_both_functions_keep_the_inference_call_separate():
    model = _model(ember)
    cm = ember.compile(model)
    x = ember.randn(1, 8)
    _warm(cm, x)
    infer = cm._compiled._last[2].run._infer
    infer.__globals__["DISC"] = "a name the guard binds too"
    try:
        src = _guard_src(cm._compiled)
        assert "return INFER(args)" in src and "_L.pop()" not in src
        entry = cm._compiled._last[2]
        fast = eval_frame._fast_guard(entry, entry.key, cm._compiled._disc, (x,))
        with ember.inference_mode():
            got = fast(cm._compiled, (x,))
            want = model(x)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    finally:
        del infer.__globals__["DISC"]


@needs_blas
def test_a_constant_of_another_shape_leaves_the_fused_guard_for_a_capture():
    """The inference body's 'another constant' failure is the guard's: the general path
    recaptures and gives eager's numbers (a re-pointed bias that broadcasts)."""
    model = _model(ember)
    cm = ember.compile(model)
    x = ember.randn(1, 8)
    _warm(cm, x)
    model[2].bias.data = ember.randn(1, 4)
    with ember.inference_mode():
        got = cm(x)
        got2 = cm(x)
        want = model(x)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(got2.numpy(), want.numpy())
