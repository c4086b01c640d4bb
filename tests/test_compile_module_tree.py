"""A compiled module whose tree changes after compile (NOTE [ Module tree guard ]): a child
replaced, added, inserted or deleted, a parameter or buffer re-assigned, set to None or
registered recompiles (or raises eager's error), never replays the old weights; on the general
guard, the generated fast guard, the batch-1 inference guard and a whole compiled training
step; vs eager and torch (issue 17, P1)."""
import numpy as np
import pytest
import torch

import compilecheck
import ember
from ember._dynamo.utils import counters

pytestmark = pytest.mark.usefixtures("fresh_compile")  # conftest: empty caches and counters


def _net(T):
    class Net(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = T.nn.Linear(6, 5)
            self.head = T.nn.Linear(5, 3, bias=False)

        def forward(self, x):
            y = self.head(self.fc(x).relu())
            off = getattr(self, "offset", None)  # a buffer registered later is read
            return y if off is None else y + off
    return Net()


def _seq(T):
    return T.nn.Sequential(T.nn.Linear(6, 5), T.nn.ReLU(), T.nn.Linear(5, 3))


def _dict(T):
    class Heads(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = T.nn.ModuleDict({"a": T.nn.Linear(6, 3), "b": T.nn.Linear(6, 3)})

        def forward(self, x):
            return sum(h(x) for h in self.heads.values())
    return Heads()


def _list(T):
    class Stack(T.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = T.nn.ModuleList([T.nn.Linear(6, 6), T.nn.Linear(6, 3)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    return Stack()


def _offset(T):
    return T.nn.Parameter(T.randn(3))


# name -> (build(T), mutate(T, model)); each mutation changes what the forward computes
CASES = {
    "Sequential m[2] = Linear": (_seq, lambda T, m: m.__setitem__(2, T.nn.Linear(5, 3))),
    "m.fc = Linear": (_net, lambda T, m: setattr(m, "fc", T.nn.Linear(6, 5))),
    "setattr(m, 'fc', ...) via add_module": (
        _net, lambda T, m: m.add_module("fc", T.nn.Linear(6, 5))),
    "Sequential append": (_seq, lambda T, m: m.append(T.nn.Tanh())),
    "Sequential insert (writes _modules)": (_seq, lambda T, m: m.insert(1, T.nn.Tanh())),
    "del Sequential m[1]": (_seq, lambda T, m: m.__delitem__(1)),
    "ModuleList insert": (_list, lambda T, m: m.layers.insert(1, T.nn.Linear(6, 6))),
    "del ModuleDict entry": (_dict, lambda T, m: m.heads.__delitem__("b")),
    "ModuleDict clear + add": (
        _dict, lambda T, m: (m.heads.clear(), m.heads.update({"c": T.nn.Linear(6, 3)}))),
    "bias set to None": (_net, lambda T, m: setattr(m.fc, "bias", None)),
    "register_parameter bias on a bias-less Linear": (
        _net, lambda T, m: m.head.register_parameter("bias", T.nn.Parameter(T.randn(3)))),
    "weight re-assigned": (
        _net, lambda T, m: setattr(m.fc, "weight", T.nn.Parameter(T.randn(5, 6)))),
    "register_buffer read by getattr": (
        _net, lambda T, m: m.register_buffer("offset", T.randn(3))),
    "parameter assigned as an attribute": (_net, lambda T, m: setattr(m, "offset", _offset(T))),
    "buffer re-assigned": (
        _net, lambda T, m: (m.register_buffer("offset", T.randn(3)), m(T.randn(1, 6)),
                            setattr(m, "offset", T.randn(3)))),
}


def _sync(em, tm):
    """Copy ember's parameters and buffers into the torch model of the same structure."""
    want = dict(em.named_parameters())
    want.update(em.named_buffers())
    got = dict(tm.named_parameters())
    got.update(tm.named_buffers())
    assert sorted(want) == sorted(got)
    with torch.no_grad():
        for k, t in got.items():
            t.copy_(torch.from_numpy(want[k].detach().numpy().copy()))


MODES = {"grad": (ember.enable_grad, torch.enable_grad),
         "no_grad": (ember.no_grad, torch.no_grad),
         "inference_mode": (ember.inference_mode, torch.inference_mode)}


def _check(em, tm, f, x, mode, train):
    """One compiled call against ember eager and torch eager: values, and gradients with
    grad on in training."""
    compilecheck.check_call(em, em, tm, f, x, MODES[mode], mode == "grad" and train)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch", [1, 4])
def test_a_changed_module_tree_recompiles(case, train, mode, batch):
    build, mutate = CASES[case]
    ember.manual_seed(0)
    em = build(ember).train(train)
    tm = build(torch).train(train)
    _sync(em, tm)
    f = ember.compile(em)
    x = ember.randn(batch, 6)
    for _ in range(3):  # the last two calls pass the generated fast guard
        _check(em, tm, f, x, mode, train)
    frames = counters["frames"]["total"]
    mutate(ember, em)
    mutate(torch, tm)
    _sync(em, tm)
    for _ in range(3):
        _check(em, tm, f, x, mode, train)
    # one capture for the new tree, then its guard holds (no second capture for a stale key)
    assert counters["frames"]["total"] == frames + 1


def test_a_deleted_child_raises_eagers_error():
    m = _net(ember)
    f = ember.compile(m)
    x = ember.randn(1, 6)
    for mode in (ember.enable_grad, ember.inference_mode):
        with mode():
            f(x)
            f(x)
    del m.fc
    for mode in (ember.enable_grad, ember.inference_mode):
        with mode():
            with pytest.raises(AttributeError, match="'Net' object has no attribute 'fc'"):
                f(x)


def test_the_fast_guards_read_each_modules_count_from_its_dict():
    """The batch-1 inference guard checks each module's tree count where it reads ``training``
    (its ``__dict__``): no other object touched; a module never changed is guarded absent."""
    m = _seq(ember).eval()
    f = ember.compile(m)
    x = ember.randn(1, 6)
    with ember.inference_mode():
        f(x)
        f(x)
    src = compilecheck.guard_source(f._compiled)
    assert src.count("['_tree_version'] == ") == 3  # the Sequential and its two Linears
    assert src.count("'_tree_version' not in") == 1  # ReLU: never changed
    for line in src.splitlines():  # the same bound dict as the training flag
        if "['_tree_version']" in line:
            name = line.split("and ")[-1].split("[")[0]
            assert f"{name}['training'] is False" in src


def test_a_whole_training_step_sees_a_replaced_child():
    """A compiled step (zero_grad, forward, backward, step) after ``model.fc`` is replaced
    trains what eager trains: the new child gets gradients, the optimizer (still holding the
    old parameters) updates those; vs ember eager and torch."""
    def run(T, compiled):
        T.manual_seed(0)
        m = _net(T)
        if T is torch:
            ember.manual_seed(0)
            _sync(_net(ember), m)
        opt = T.optim.SGD(m.parameters(), lr=0.1)
        x, y = T.ones(4, 6), T.zeros(4, 3)

        def step(x, y):
            opt.zero_grad()
            loss = (m(x) - y).square().mean()
            loss.backward()
            opt.step()
            return loss

        fn = ember.compile(step) if compiled else step
        losses = [fn(x, y).item() for _ in range(3)]
        new = T.nn.Linear(6, 5)
        if T is torch:  # (not in the optimizer: ember's new child keeps its first values)
            with torch.no_grad():
                new.weight.copy_(torch.from_numpy(ref_new.weight.detach().numpy()))
                new.bias.copy_(torch.from_numpy(ref_new.bias.detach().numpy()))
        m.fc = new
        losses += [fn(x, y).item() for _ in range(3)]
        return m, losses, new

    ref_m, ember_losses, ref_new = run(ember, False)
    cm, closses, cnew = run(ember, True)
    tm, tlosses, _ = run(torch, False)
    assert closses == ember_losses
    np.testing.assert_allclose(closses, tlosses, rtol=1e-5)
    np.testing.assert_array_equal(cnew.weight.grad.numpy(), ref_new.weight.grad.numpy())
    for (k, p), q in zip(cm.named_parameters(), ref_m.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=k)
    assert counters["frames"]["total"] == 2


def test_a_quantized_swap_after_compile_recompiles():
    """``quantize_`` swaps children by writing ``_modules`` directly: it counts the change."""
    from ember.ao.quantization.quantize_api import quantize_, Int8WeightOnlyConfig
    m = _seq(ember).eval()
    f = ember.compile(m)
    x = ember.randn(1, 6)
    with ember.inference_mode():
        f(x)
        f(x)
        quantize_(m, Int8WeightOnlyConfig())
        np.testing.assert_array_equal(f(x).numpy(), m(x).numpy())


@pytest.mark.parametrize("case", list(CASES))
def test_the_general_guard_sees_a_changed_tree(case):
    """A call with a keyword argument has no generated guard: ``entry.ok()`` alone decides."""
    build, mutate = CASES[case]
    ember.manual_seed(0)
    em, tm = build(ember), build(torch)
    _sync(em, tm)

    def fn(x, *, scale):
        return em(x) * scale

    f = ember.compile(fn)
    x = ember.randn(2, 6)
    for _ in range(2):
        f(x, scale=2.0)
    assert f._last is None  # (no fast guard for this call's form)
    mutate(ember, em)
    mutate(torch, tm)
    _sync(em, tm)
    for _ in range(2):
        got = f(x, scale=2.0)
    np.testing.assert_allclose(got.detach().numpy(), em(x).detach().numpy() * 2.0, rtol=1e-6,
                               atol=1e-7)
    ref = tm(torch.from_numpy(x.numpy().copy())) * 2.0
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-5,
                               atol=1e-6)


SWAPS = {"child replaced": lambda m: m.__setitem__(2, ember.nn.Linear(5, 3)),
         "weight re-assigned": lambda m: setattr(m[2], "weight",
                                                 ember.nn.Parameter(ember.randn(3, 5)))}


@pytest.mark.parametrize("swap", list(SWAPS))
def test_a_size_generic_graph_sees_a_changed_tree(swap):
    """After a second batch size made the graph size-generic, a changed child (or weight)
    recompiles at other sizes too: the new size-generic graph is made from the new capture
    and an entry whose guards hold now, never from an older size's capture of the old tree
    (that made a batch of 5 replay the old weights, also for a re-assigned weight)."""
    m = _seq(ember)
    f = ember.compile(m)
    for b in (4, 8, 6):
        f(ember.randn(b, 6))
    SWAPS[swap](m)
    for b in (6, 5, 8):
        x = ember.randn(b, 6)
        np.testing.assert_allclose(f(x).detach().numpy(), m(x).detach().numpy(), rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_closure_tensor_of_another_shape_recompiles(mode):
    """A tensor captured from a closure cell that changes shape (``.data =``, ``resize_``)
    recompiles, as a parameter does: another shape that broadcasts gives eager's numbers, one
    that does not raises eager's RuntimeError (the replay raised NumPy's ValueError)."""
    w = ember.ones(1, 4)

    def fn(x):
        return (x * w).sum(1)

    f = ember.compile(fn)
    x = ember.ones(3, 4)
    emode = MODES[mode][0]
    with emode():
        for _ in range(3):
            f(x)
        w.data = ember.full((3, 4), 2.0)
        for _ in range(2):
            np.testing.assert_array_equal(f(x).numpy(), fn(x).numpy())
        assert counters["frames"]["total"] == 2
    w.resize_(1, 2)
    with emode():
        with pytest.raises(RuntimeError, match="must match the size of tensor b"):
            f(x)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch", [1, 4])
def test_parameters_cast_in_place_recompile(mode, batch):
    """``model.double()`` keeps each parameter object and swaps its array: a float32 input
    then raises eager's dtype error, a float64 one gives eager's float64 numbers (the replay
    returned float32 or promoted silently)."""
    m = _seq(ember).eval()
    tm = _seq(torch).eval()
    _sync(m, tm)
    f = ember.compile(m)
    x = ember.randn(batch, 6)
    emode = MODES[mode][0]
    with emode():
        for _ in range(3):
            f(x)
        m.double()
        tm.double()
        with pytest.raises(RuntimeError, match="same dtype"):
            m(x)
        with pytest.raises(RuntimeError, match="same dtype"):
            f(x)
        x64 = x.double()
        for _ in range(2):
            got = f(x64)
            assert got.dtype == ember.float64
            np.testing.assert_allclose(got.detach().numpy(), m(x64).detach().numpy(),
                                       rtol=1e-12, atol=1e-12)
    ref = tm(torch.from_numpy(x64.numpy().copy())).detach().numpy()
    np.testing.assert_allclose(got.detach().numpy(), ref, rtol=1e-12, atol=1e-12)


def test_a_step_with_a_break_sees_a_replaced_child():
    """A step that breaks (``loss.item()`` read in Python) runs its module call as a compiled
    region of its own (NOTE [ Regions around a break ]): after ``model[2]`` is replaced its
    losses equal an eager replica's (they were the old child's)."""
    import copy

    def make(m):
        opt = ember.optim.SGD(m.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = m(x).square().mean()
            v = loss.item()
            if v > 1e9:  # Python reads the value: a break
                return v
            loss.backward()
            opt.step()
            return v
        return step

    ember.manual_seed(0)
    m = _seq(ember)
    me = copy.deepcopy(m)
    f, g = ember.compile(make(m)), make(me)
    x = ember.randn(4, 6)
    got = [f(x) for _ in range(3)]
    want = [g(x) for _ in range(3)]
    new = ember.nn.Linear(5, 3)
    m[2] = new
    me[2] = copy.deepcopy(new)
    got += [f(x) for _ in range(3)]
    want += [g(x) for _ in range(3)]
    assert got == want
