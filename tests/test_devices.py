"""Device plumbing (issue 13): ``ember.device``, the default device, ``Tensor.to``/``cpu``/
``cuda``, pinning, memory formats, ``Module.to``, and, end to end on the tests' fake device
(``tests/fake_device.py``, registered per test), factories, ops, gradients, optimizers,
checkpoints and the mixed-device error.  Compared against torch wherever torch has the
behaviour on a CPU-only build."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.nn as enn
import ember.nn.functional as eF
import fake_device
from ember import _backend

M = {"e": ember, "t": torch}


def both(fn):
    return fn(ember), fn(torch)


def raises_both(fn, exc, match=None):
    """``fn(m)`` raises ``exc`` in torch and in ember (ember's message matches ``match``)."""
    with pytest.raises(exc):
        fn(torch)
    with pytest.raises(exc, match=match):
        fn(ember)


@pytest.fixture
def fake():
    dev = fake_device.register()
    yield dev
    fake_device.unregister()
    ember.set_default_device(None)


def host(t) -> np.ndarray:
    return t.detach().cpu().numpy()


# ---- ember.device -----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("cpu",), ("cpu:0",), ("cpu", 0), ("cuda",), ("cuda:1",),
                                  ("cuda", 2), ("meta",), ("mps",), ("xla:3",)])
def test_device_parsing_matches_torch(args):
    e, t = ember.device(*args), torch.device(*args)
    assert (e.type, e.index) == (t.type, t.index)
    assert str(e) == str(t) and repr(e) == repr(t)
    assert e == str(t) and hash(e) == hash(ember.device(str(t)))


@pytest.mark.parametrize("arg, exc", [("foo", RuntimeError), ("cuda:x", RuntimeError),
                                      (0, RuntimeError), (1.5, TypeError)])
def test_bad_device_strings_raise_as_torch(arg, exc):
    with pytest.raises(exc) as te:
        torch.device(arg)
    with pytest.raises(exc) as ee:
        ember.device(arg)
    if arg == "foo":  # the same list of device types
        assert str(ee.value) == str(te.value)


def test_default_device_is_cpu_and_set_default_device_checks_its_argument():
    assert str(ember.get_default_device()) == str(torch.get_default_device()) == "cpu"
    raises_both(lambda m: m.set_default_device("foo"), RuntimeError, "Expected one of cpu")
    assert ember.get_default_device() == ember.device("cpu")


def test_unregistered_device_type_is_refused():
    with pytest.raises(RuntimeError, match="device type at start of device string: fake"):
        ember.device("fake")


# ---- Tensor.to: overloads, identity, errors ----------------------------------------------------

TO_CALLS = [
    lambda m, x: x.to(m.float64),
    lambda m, x: x.to("cpu"),
    lambda m, x: x.to(m.device("cpu")),
    lambda m, x: x.to("cpu", m.float64),
    lambda m, x: x.to("cpu", m.float64, True, True),
    lambda m, x: x.to(m.float64, True, True),
    lambda m, x: x.to(m.ones(1, dtype=m.float16)),
    lambda m, x: x.to(device="cpu", dtype=m.int64),
    lambda m, x: x.to(dtype=m.float32, copy=True),
    lambda m, x: x.to(None),
    lambda m, x: x.to(m.float32),
    lambda m, x: x.to(),
    lambda m, x: x.to("cpu", non_blocking=True),
    lambda m, x: x.to(x, copy=True),
    lambda m, x: x.type(m.float64),
    lambda m, x: x.type_as(m.ones(1, dtype=m.int32)),
    lambda m, x: x.double(),
    lambda m, x: x.half(memory_format=m.preserve_format),
    lambda m, x: x.cpu(),
]


@pytest.mark.parametrize("i", range(len(TO_CALLS)))
def test_to_overloads_match_torch(i):
    f = TO_CALLS[i]
    xe, xt = ember.tensor([[1.5, -2.0, 3.0]]), torch.tensor([[1.5, -2.0, 3.0]])
    e, t = f(ember, xe), f(torch, xt)
    assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1]
    assert str(e.device) == str(t.device)
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    assert (e is xe) == (t is xt)  # a no-op returns self, copy=True never does


BAD_TO = [
    (lambda m, x: x.to(m.float64, "cpu"), TypeError, "invalid combination of arguments - got "
     r"\(torch.dtype, str\)"),
    (lambda m, x: x.to("cpu", "cpu"), TypeError, r"got \(str, str\)"),
    (lambda m, x: x.to(x, m.float64), TypeError, r"got \(Tensor, torch.dtype\)"),
    (lambda m, x: x.to(device="cpu", foo=1), TypeError, "invalid combination"),
    (lambda m, x: x.to(dtype=3), TypeError, "invalid combination"),
    (lambda m, x: x.to(1, 2, 3, 4, 5), TypeError, "takes from 0 to 4 positional arguments"),
    (lambda m, x: x.to("foo"), RuntimeError, "Expected one of cpu"),
    (lambda m, x: x.to(0), RuntimeError, "Cannot access accelerator"),
    (lambda m, x: x.cuda(0), RuntimeError, "Cannot access accelerator"),
    (lambda m, x: x.cuda("cpu"), RuntimeError, "Invalid device, must be cuda device"),
    (lambda m, x: x.contiguous(memory_format=3), TypeError, "must be torch.memory_format"),
    (lambda m, x: x.is_contiguous(memory_format="x"), TypeError, "must be torch.memory_format"),
]


@pytest.mark.parametrize("i", range(len(BAD_TO)))
def test_to_bad_arguments_raise_as_torch(i):
    f, exc, match = BAD_TO[i]
    raises_both(lambda m: f(m, m.ones(2, 3)), exc, match)


def test_to_invalid_combination_message_lists_torchs_signatures():
    with pytest.raises(TypeError) as te:
        torch.ones(1).to(torch.float64, "cpu")
    with pytest.raises(TypeError) as ee:
        ember.ones(1).to(ember.float64, "cpu")
    assert str(ee.value) == str(te.value)


def test_to_gradient_flows_back_to_the_input_dtype():
    xe = ember.tensor([1.0, 2.0], dtype=ember.float32, requires_grad=True)
    xt = torch.tensor([1.0, 2.0], dtype=torch.float32, requires_grad=True)
    for m, x in ((ember, xe), (torch, xt)):
        (x.to(m.float64) * m.tensor([3.0, 4.0], dtype=m.float64)).sum().backward()
    assert xe.grad.dtype == ember.float32 and xe.grad.tolist() == xt.grad.tolist()
    assert xe.to(ember.float64).grad_fn.name() == "ToCopyBackward0"


# ---- cuda without a GPU backend, pinning ------------------------------------------------------

NO_CUDA = [
    lambda m: m.ones(2).cuda(),
    lambda m: m.ones(2).to("cuda"),
    lambda m: m.ones(2).to("cuda:0", m.float64),
    lambda m: m.zeros(2, device="cuda"),
    lambda m: m.tensor([1.0], device="cuda"),
    lambda m: m.randn(2, device="cuda"),
    lambda m: m.nn.Linear(2, 2).cuda(),
    lambda m: m.nn.Linear(2, 2).to("cuda"),
]


@pytest.mark.parametrize("i", range(len(NO_CUDA)))
def test_cuda_without_a_gpu_backend_raises_torchs_assertion(i):
    raises_both(NO_CUDA[i], AssertionError, "Torch not compiled with CUDA enabled: ember has no "
                "GPU backend")


def test_pin_memory_as_torchs_cpu_build():
    raises_both(lambda m: m.ones(2).pin_memory(), RuntimeError,
                "Cannot access accelerator device when none is available")
    assert ember.ones(2).is_pinned() is torch.ones(2).is_pinned() is False
    with pytest.warns(DeprecationWarning, match="argument 'device' of Tensor.is_pinned"):
        assert ember.ones(2).is_pinned("cuda") is False


@pytest.mark.parametrize("make", [
    lambda m: m.empty(2, pin_memory=True), lambda m: m.zeros(2, pin_memory=True),
    lambda m: m.ones(2, pin_memory=True), lambda m: m.tensor([1.0], pin_memory=True),
    lambda m: m.full((2,), 1.0, pin_memory=True), lambda m: m.arange(3, pin_memory=True),
    lambda m: m.rand(2, pin_memory=True), lambda m: m.randn(2, pin_memory=True),
    lambda m: m.randint(3, (2,), pin_memory=True), lambda m: m.randperm(3, pin_memory=True),
    lambda m: m.empty_like(m.ones(2), pin_memory=True),
    lambda m: m.zeros_like(m.ones(2), pin_memory=True)])
def test_factories_with_pin_memory_raise_torchs_error(make):
    with pytest.raises(RuntimeError) as te:
        make(torch)
    with pytest.raises(RuntimeError) as ee:
        make(ember)
    assert str(ee.value) == str(te.value)


def test_dataloader_pin_memory_warns_as_torch():
    def messages(m, **kw):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            out = list(m.utils.data.DataLoader([1, 2, 3], batch_size=2, **kw))
        return [str(x.message) for x in w], [b.tolist() for b in out]
    for kw in (dict(pin_memory=True), dict(pin_memory=True, pin_memory_device="cuda"),
               dict(pin_memory=False, pin_memory_device="cuda")):
        assert messages(ember, **kw) == messages(torch, **kw)


# ---- memory formats ---------------------------------------------------------------------------

FORMAT_CALLS = [
    lambda m, x: x.to(memory_format=m.channels_last),
    lambda m, x: x.to(m.float64, memory_format=m.channels_last),
    lambda m, x: x.to("cpu", memory_format=m.channels_last),
    lambda m, x: x.contiguous(memory_format=m.channels_last),
    lambda m, x: x.clone(memory_format=m.channels_last),
    lambda m, x: x.to(memory_format=m.channels_last).contiguous(),
    lambda m, x: x.to(memory_format=m.channels_last).to(memory_format=m.contiguous_format),
    lambda m, x: x.to(memory_format=m.channels_last).clone(),
    lambda m, x: x.to(memory_format=m.channels_last).to(m.float64),
    lambda m, x: x.to(memory_format=m.channels_last) + 1,
    lambda m, x: m.empty_like(x.to(memory_format=m.channels_last)),
    lambda m, x: m.zeros_like(x.to(memory_format=m.channels_last)),
    lambda m, x: m.ones_like(x.to(memory_format=m.channels_last), dtype=m.float64),
    lambda m, x: m.full_like(x.to(memory_format=m.channels_last), 2.0),
    lambda m, x: m.randn_like(x.to(memory_format=m.channels_last)),
    lambda m, x: m.zeros_like(x.to(memory_format=m.channels_last),
                              memory_format=m.contiguous_format),
    lambda m, x: m.zeros_like(x, memory_format=m.channels_last),
    lambda m, x: m.zeros_like(x.transpose(1, 3)),
    lambda m, x: m.empty(2, 3, 4, 5, memory_format=m.channels_last),
    lambda m, x: m.empty(2, 3, 4, 5, memory_format=m.contiguous_format),
    lambda m, x: x.transpose(0, 2).to(copy=True),
    lambda m, x: x.transpose(0, 2).to(m.float64),
    lambda m, x: x.transpose(0, 2).contiguous(),
]


@pytest.mark.parametrize("i", range(len(FORMAT_CALLS)))
def test_memory_formats_give_torchs_strides(i):
    f = FORMAT_CALLS[i]
    a = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5)
    e, t = f(ember, ember.tensor(a)), f(torch, torch.tensor(a))
    assert e.stride() == t.stride()
    for fmt in ("contiguous_format", "channels_last", "preserve_format"):
        assert e.is_contiguous(memory_format=getattr(ember, fmt)) == \
            t.is_contiguous(memory_format=getattr(torch, fmt))
    if i not in (10, 18, 19, 14):  # uninitialised or random values
        np.testing.assert_array_equal(e.numpy(), t.numpy())


@given(st.lists(st.integers(1, 3), min_size=4, max_size=4),
       st.permutations(range(4)), st.sampled_from(["channels_last", "contiguous_format"]))
@settings(max_examples=60, deadline=None)
def test_is_contiguous_for_any_4d_layout_matches_torch(shape, perm, fmt):
    # a tensor laid out in memory in dimension order ``perm``, asked about each format
    base = np.zeros([shape[p] for p in perm], np.float32)
    inv = np.argsort(perm)
    e = ember.from_numpy(base).permute(*inv)
    t = torch.from_numpy(base).permute(*inv)
    assert e.stride() == t.stride()
    assert e.is_contiguous(memory_format=getattr(ember, fmt)) == \
        t.is_contiguous(memory_format=getattr(torch, fmt))
    assert e.contiguous(memory_format=getattr(ember, fmt)).stride() == \
        t.contiguous(memory_format=getattr(torch, fmt)).stride()


BAD_FORMATS = [
    (lambda m: m.ones(2, 3).to(memory_format=m.channels_last), "required rank 4 tensor"),
    (lambda m: m.ones(2, 3).contiguous(memory_format=m.channels_last), "required rank 4"),
    (lambda m: m.ones(2, 3).clone(memory_format=m.channels_last), "required rank 4"),
    (lambda m: m.ones(2, 3, 4, 5).to(memory_format=m.channels_last_3d), "required rank 5"),
    (lambda m: m.empty(2, 3, 4, memory_format=m.channels_last), "required rank 4"),
    (lambda m: m.empty(2, 3, memory_format=m.preserve_format), "unsupported memory format"),
    (lambda m: m.zeros_like(m.ones(2, 3), memory_format=m.channels_last), "required rank 4"),
    (lambda m: m.ones(2, 3).t().contiguous(memory_format=m.preserve_format),
     "preserve memory format is unsupported by the contiguous operator"),
]


@pytest.mark.parametrize("i", range(len(BAD_FORMATS)))
def test_bad_memory_formats_raise_as_torch(i):
    f, match = BAD_FORMATS[i]
    raises_both(f, RuntimeError, match)


def test_channels_last_3d_and_gradients_through_a_layout_change():
    e, t = both(lambda m: m.ones(2, 3, 4, 5, 6).to(memory_format=m.channels_last_3d))
    assert e.stride() == t.stride()
    a = np.random.rand(2, 3, 4, 5)
    xe = ember.tensor(a, requires_grad=True)
    xt = torch.tensor(a, requires_grad=True)
    for m, x in ((ember, xe), (torch, xt)):
        y = x.contiguous(memory_format=m.channels_last)
        (y * m.arange(120.0, dtype=m.float64).reshape(2, 3, 4, 5)).sum().backward()
    np.testing.assert_array_equal(xe.grad.numpy(), xt.grad.numpy())
    assert ember.ones(2, 3).contiguous(memory_format=ember.preserve_format).is_contiguous()


# ---- Module.to and friends ----------------------------------------------------------------------

def _net(m):
    m.manual_seed(0)
    return m.nn.Sequential(m.nn.Conv2d(2, 3, 3), m.nn.BatchNorm2d(3), m.nn.Flatten(),
                           m.nn.Linear(3, 2))


MODULE_CALLS = [
    lambda m, net: net.to(m.float64),
    lambda m, net: net.to("cpu", m.float64),
    lambda m, net: net.to(m.ones(1, dtype=m.float16)),
    lambda m, net: net.to(dtype=m.bfloat16),
    lambda m, net: net.to(memory_format=m.channels_last),
    lambda m, net: net.to("cpu", memory_format=m.channels_last),
    lambda m, net: net.half(),
    lambda m, net: net.bfloat16(),
    lambda m, net: net.double().float(),
    lambda m, net: net.type(m.float64),
    lambda m, net: net.cpu(),
    lambda m, net: net.to_empty(device="cpu"),
]


@pytest.mark.parametrize("i", range(len(MODULE_CALLS)))
def test_module_conversions_match_torch(i):
    f = MODULE_CALLS[i]
    ne, nt = _net(ember), _net(torch)
    ne.load_state_dict({k: ember.tensor(v.numpy()) for k, v in nt.state_dict().items()})
    pe = {k: v for k, v in ne.named_parameters()}
    assert f(ember, ne) is ne and f(torch, nt) is nt
    se, stt = ne.state_dict(), nt.state_dict()
    for k in stt:
        assert str(se[k].dtype).split(".")[1] == str(stt[k].dtype).split(".")[1], k
        assert se[k].stride() == stt[k].stride(), k
        if i != 11:  # to_empty: uninitialised
            np.testing.assert_array_equal(se[k].float().numpy(), stt[k].float().numpy())
    assert all(p is pe[k] for k, p in ne.named_parameters())  # parameters keep identity


def test_module_to_rejects_integer_dtypes_as_torch():
    raises_both(lambda m: m.nn.Linear(2, 2).to(m.int64), TypeError,
                "nn.Module.to only accepts floating point or complex dtypes, but got desired "
                r"dtype=(torch|ember)\.int64")


# ---- the fake device: registration --------------------------------------------------------------

def test_registered_device_is_accepted_and_unregistered_refused(fake):
    assert fake == ember.device("fake:0") == ember.device("fake", 0)
    assert repr(fake) == "device(type='fake', index=0)"
    with pytest.raises(RuntimeError, match="already registered"):
        fake_device.register()
    fake_device.unregister()
    with pytest.raises(RuntimeError, match="device string: fake"):
        ember.device("fake")
    fake_device.register()


# ---- factories, the default device and the context manager --------------------------------------

FACTORIES = [
    lambda m, **d: m.zeros(2, 3, **d), lambda m, **d: m.ones(2, **d),
    lambda m, **d: m.empty(2, **d), lambda m, **d: m.full((2,), 1.5, **d),
    lambda m, **d: m.arange(5, **d), lambda m, **d: m.arange(0.0, 1.0, 0.25, **d),
    lambda m, **d: m.linspace(0, 1, 5, **d), lambda m, **d: m.logspace(0, 1, 3, **d),
    lambda m, **d: m.eye(3, **d), lambda m, **d: m.tensor([[1, 2], [3, 4]], **d),
    lambda m, **d: m.tensor(3.5, **d), lambda m, **d: m.as_tensor(np.ones(3), **d),
    lambda m, **d: m.rand(2, **d), lambda m, **d: m.randn(2, 2, **d),
    lambda m, **d: m.randint(0, 5, (3,), **d), lambda m, **d: m.randperm(4, **d),
    lambda m, **d: m.empty(2, 3, 4, 5, memory_format=m.channels_last, **d),
]


@pytest.mark.parametrize("i", range(len(FACTORIES)))
def test_factories_take_device_and_follow_the_default_device(fake, i):
    make = FACTORIES[i]
    ref = make(ember)
    assert ref.device == ember.device("cpu")
    for t in (make(ember, device="fake"), make(ember, device=fake)):
        assert t.device == fake and type(t._data) is fake_device.FakeArray
        assert t.dtype == ref.dtype and t.shape == ref.shape and t.stride() == ref.stride()
    with ember.device("fake"):
        assert make(ember).device == fake
        with ember.device("cpu"):  # nested blocks: the innermost wins, as torch's
            assert make(ember).device.type == "cpu"
        assert ember.get_default_device() == ember.device("fake")
    assert make(ember).device.type == "cpu"
    ember.set_default_device("fake")
    try:
        assert make(ember).device == fake
    finally:
        ember.set_default_device(None)
    assert ember.get_default_device() == ember.device("cpu")


def test_like_and_new_factories_follow_their_input_not_the_default(fake):
    x = ember.ones(2, 3, device=fake)
    for t in (ember.zeros_like(x), ember.ones_like(x), ember.empty_like(x),
              ember.full_like(x, 2.0), ember.rand_like(x), ember.randn_like(x),
              ember.randint_like(x, 3), x.new_zeros(2), x.new_ones(2), x.new_empty(2),
              x.new_full((2,), 1.0), x.new_tensor([1.0])):
        assert t.device == fake
    assert ember.zeros_like(x, device="cpu").device.type == "cpu"
    # tensor(t) copies onto t's device unless a default device is set (torch's device mode)
    assert ember.tensor(x).device == fake and ember.as_tensor(x) is x
    with ember.device("cpu"):
        assert ember.tensor(x).device.type == "cpu" and ember.as_tensor(x) is x
    with ember.device("fake"):
        assert ember.zeros_like(ember.ones(2, device="cpu")).device.type == "cpu"
        assert ember.from_numpy(np.ones(2)).device.type == "cpu"  # not a factory in torch


# ---- moving, ops, gradients --------------------------------------------------------------------

def test_to_moves_both_ways_and_gradients_come_back(fake):
    a = np.random.rand(3, 4)
    x = ember.tensor(a, requires_grad=True)
    y = x.to("fake")
    assert y.device == fake and y.grad_fn.name() == "ToCopyBackward0"
    assert y.to(fake) is y and y.to("fake:0") is y and y.cpu().device.type == "cpu"
    z = (y * y).sum()
    assert z.device == fake
    z.backward()
    assert x.grad.device.type == "cpu"  # back through ToCopy to the cpu leaf
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    w = ember.tensor(a, device="fake")
    assert host(w).tolist() == a.tolist() and host(w.to("cpu", ember.float32)).dtype == np.float32
    assert w.to(ember.float32).device == fake
    with pytest.raises(TypeError, match="can't convert fake:0 device type tensor to numpy"):
        w.numpy()
    with pytest.raises(RuntimeError, match="out of range"):
        w.cpu().to("fake:1")
    assert "device='fake:0'" in repr(w)


def test_moves_copy_and_keep_the_layout(fake):
    x = ember.ones(2, 3, 4, 5)
    y = x.to("fake")
    y.add_(1)
    assert x.sum().item() == 120  # a move never shares memory
    cl = x.to(fake, memory_format=ember.channels_last)
    assert cl.device == fake and cl.is_contiguous(memory_format=ember.channels_last)


MIXED = [
    lambda c, f: c + f,
    lambda c, f: f * c,
    lambda c, f: c @ f.t(),
    lambda c, f: ember.cat([f, c]),
    lambda c, f: ember.where(c > 0, f, c),
    lambda c, f: eF.linear(f, c),
    lambda c, f: eF.mse_loss(f, c),
    lambda c, f: f.add_(c),
    lambda c, f: c > f,
    lambda c, f: f == c,
    lambda c, f: ember.equal(c, f),
    lambda c, f: ember.allclose(f, c),
    lambda c, f: ember.logical_and(c, f),
    lambda c, f: c.long() & f.long(),
]


@pytest.mark.parametrize("i", range(len(MIXED)))
def test_mixing_devices_raises_torchs_error_naming_both(fake, i):
    c, f = ember.ones(3, 3), ember.ones(3, 3, device="fake")
    with pytest.raises(RuntimeError, match=r"^Expected all tensors to be on the same device, but "
                       r"found at least two devices, (cpu and fake:0|fake:0 and cpu)!$"):
        MIXED[i](c, f)


def test_mixing_message_is_torchs_common_one():
    # what torch says for cpu + meta through TensorIterator; ember's names the devices the same
    with pytest.raises(RuntimeError, match="device"):
        torch.ones(2, device="meta") + torch.ones(2)
    msg = "Expected all tensors to be on the same device, but found at least two devices, "
    with pytest.raises(RuntimeError, match=msg + "cpu and fake:0!"):
        try:
            fake_device.register()
            ember.ones(2) + ember.ones(2, device="fake")
        finally:
            fake_device.unregister()


def _train(device, steps=3, opt="adam"):
    """A conv + linear classifier trained on ``device``; returns losses, parameters, opt."""
    ember.manual_seed(0)
    model = enn.Sequential(enn.Conv2d(2, 4, 3), enn.ReLU(), enn.MaxPool2d(2), enn.Flatten(),
                           enn.Dropout(0.2), enn.Linear(16, 5), enn.LogSoftmax(1))
    model.to(device)
    if opt == "adam":
        optim = ember.optim.Adam(model.parameters(), lr=1e-2)
    elif opt == "adamw":
        optim = ember.optim.AdamW(model.parameters(), lr=1e-2, amsgrad=True)
    else:
        optim = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = ember.randn(6, 2, 6, 6).to(device)
    y = ember.tensor([0, 1, 2, 3, 4, 0], device=device)
    losses = []
    for _ in range(steps):
        optim.zero_grad()
        out = model(x)
        loss = eF.nll_loss(out, y) + eF.cross_entropy(out, y, label_smoothing=0.1)
        loss = loss + eF.softmax(out, 1).max() * 0
        loss.backward()
        assert all(p.grad.device.type == device for p in model.parameters())
        enn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        losses.append(loss)
    return losses, model, optim


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd"])
def test_training_on_the_fake_device_matches_cpu_bit_for_bit(fake, opt):
    lc, mc, oc = _train("cpu", opt=opt)
    lf, mf, of = _train("fake", opt=opt)
    assert all(loss.device == fake for loss in lf)
    assert [loss.item() for loss in lf] == [loss.item() for loss in lc]
    for (name, pc), pf in zip(mc.named_parameters(), mf.parameters()):
        assert pf.device == fake and type(pf._data) is fake_device.FakeArray, name
        np.testing.assert_array_equal(host(pf), pc.detach().numpy(), err_msg=name)
    for pf in mf.parameters():  # optimizer state follows its parameter
        for key, v in of.state[pf].items():
            if isinstance(v, ember.Tensor) and key != "step":
                assert v.device == fake, key


def test_module_to_and_back_keeps_parameters_and_buffers(fake):
    net = enn.Sequential(enn.Linear(3, 3), enn.BatchNorm1d(3))
    params = list(net.parameters())
    net.to("fake")
    assert [p for p in net.parameters()] == params
    assert all(t.device == fake for t in net.state_dict().values())
    assert net[1].num_batches_tracked.dtype == ember.int64
    net(ember.randn(4, 3, device="fake")).sum().backward()
    assert all(p.grad.device == fake for p in params)
    net.cpu()
    assert all(t.device.type == "cpu" for t in net.state_dict().values())
    assert all(p.grad.device.type == "cpu" for p in params)  # gradients move with them


# ---- checkpoints: state_dict, map_location, optimizer state -------------------------------------

def _saved(obj) -> io.BytesIO:
    buf = io.BytesIO()
    ember.save(obj, buf)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("ml, where", [
    (None, "fake"), ("cpu", "cpu"), (ember.device("cpu"), "cpu"), (torch.device("cpu"), "cpu"),
    ({"fake:0": "cpu"}, "cpu"), ({"cuda:0": "cpu"}, "fake"), (lambda s, loc: s, "cpu"),
    (lambda s, loc: None, "fake"), ("fake", "fake")])
def test_map_location_on_a_fake_device_checkpoint(fake, ml, where):
    net = enn.Linear(3, 2).to("fake")
    sd = ember.load(_saved(net.state_dict()), map_location=ml)
    assert all(t.device.type == where for t in sd.values())
    ref = net.state_dict()
    for k in sd:
        np.testing.assert_array_equal(host(sd[k]), host(ref[k]))
    fresh = enn.Linear(3, 2)
    fresh.load_state_dict(sd)  # copies into the module's own (cpu) parameters
    assert fresh.weight.device.type == "cpu"


def test_cpu_checkpoint_mapped_onto_the_fake_device(fake, tmp_path):
    torch.save({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "t.pt")
    sd = ember.load(tmp_path / "t.pt", map_location="fake")
    assert sd["w"].device == fake and host(sd["w"]).tolist() == [[0, 1, 2], [3, 4, 5]]
    sd = ember.load(tmp_path / "t.pt", map_location={"cpu": "fake:0"})
    assert sd["w"].device == fake


def test_checkpoint_for_a_missing_backend_raises_as_torch():
    fake_device.register()
    try:
        buf = _saved({"w": ember.ones(2, device="fake")})
    finally:
        fake_device.unregister()
    with pytest.raises(RuntimeError, match=r"don't know how to restore data location of "
                       r".*\(tagged with fake:0\)"):
        ember.load(buf)
    buf.seek(0)
    assert ember.load(buf, map_location="cpu")["w"].tolist() == [1.0, 1.0]
    from ember.serialization import _restore_location
    with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device "
                       r"but torch.cuda.is_available\(\) is False"):
        _restore_location("cuda:0", ember.float32)


def test_optimizer_state_loads_onto_its_parameters_device(fake):
    _, mc, oc = _train("cpu", steps=2)
    sd = ember.load(_saved(oc.state_dict()))
    _, mf, of = _train("fake", steps=1)
    of.load_state_dict(sd)
    for p in mf.parameters():
        st = of.state[p]
        assert st["exp_avg"].device == fake and st["exp_avg_sq"].device == fake
        assert st["step"].device.type == "cpu"  # torch keeps the step count where it was
    p0 = next(iter(mf.parameters()))
    np.testing.assert_array_equal(host(of.state[p0]["exp_avg"]),
                                  oc.state[next(iter(mc.parameters()))]["exp_avg"].numpy())


SAMPLERS = [
    lambda x: ember.bernoulli(x.sigmoid()),
    lambda x: ember.multinomial(x.abs() + 0.1, 2),
    lambda x: ember.multinomial(x.abs() + 0.1, 3, replacement=True),
    lambda x: ember.poisson(x.abs()),
    lambda x: ember.normal(x, x.abs()),
    lambda x: ember.normal(0.0, x.abs()),
    lambda x: x.clone().uniform_(-1, 1),
    lambda x: x.clone().normal_(),
    lambda x: x.clone().bernoulli_(x.sigmoid()),
    lambda x: x.clone().exponential_(),
    lambda x: x.clone().random_(0, 5),
    lambda x: enn.init.kaiming_uniform_(x.clone()),
    lambda x: enn.init.trunc_normal_(x.clone()),
    lambda x: enn.init.orthogonal_(x.clone()),
    lambda x: enn.init.xavier_normal_(x.clone()),
    lambda x: eF.dropout(x, 0.5),
    lambda x: eF.rrelu(x, training=True),
]


@pytest.mark.parametrize("i", range(len(SAMPLERS)))
def test_random_draws_land_on_their_inputs_device_with_cpus_values(fake, i):
    # the generator draws on the host; the same seed gives the same values on either device
    a = np.random.rand(3, 4) - 0.5
    ember.manual_seed(1)
    ref = SAMPLERS[i](ember.tensor(a))
    ember.manual_seed(1)
    got = SAMPLERS[i](ember.tensor(a, device="fake"))
    assert got.device == fake and got.dtype == ref.dtype
    # to the last bits: erfinv (trunc_normal_) takes a device-generic path off NumPy
    np.testing.assert_allclose(host(got), host(ref), rtol=1e-12, atol=0)


def test_modules_built_under_the_fake_default_device_train_there(fake):
    with ember.device("fake"):
        net = enn.Sequential(enn.Linear(3, 4), enn.GELU(), enn.LayerNorm(4), enn.Linear(4, 1))
        x = ember.randn(5, 3)
    assert all(t.device == fake for t in net.state_dict().values()) and x.device == fake
    opt = ember.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    assert all(p.device == fake and p.grad.device == fake for p in net.parameters())


def test_higher_derivatives_stay_on_the_device(fake):
    x = ember.tensor([0.5, -1.0, 2.0], device="fake", requires_grad=True)
    (g,) = ember.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (h,) = ember.autograd.grad(g.sum(), x)
    assert g.device == h.device == fake
    np.testing.assert_allclose(host(h), 6 * np.array([0.5, -1.0, 2.0]))


def test_indexing_takes_cpu_indices_on_any_device_and_no_others(fake):
    f = ember.arange(4.0, device="fake")
    idx = ember.tensor([0, 2])
    assert f[idx].device == fake and host(f[idx]).tolist() == [0.0, 2.0]
    assert f[f > 1].device == fake and f[ember.tensor([True, False, True, False])].device == fake
    f[idx] = 7.0
    assert host(f).tolist() == [7.0, 1.0, 7.0, 3.0]
    with pytest.raises(RuntimeError, match=r"indices should be either on cpu or on the same "
                       r"device as the indexed tensor \(cpu\)"):
        ember.ones(4)[idx.to("fake")]
