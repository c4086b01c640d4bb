"""``ember.nn.Module`` and the containers against ``torch.nn``: the same model is built in both
libraries (from one definition parameterised by the library) and compared."""
import copy
import pickle
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ember
from opcheck import assert_close


def make(m):
    """The test models, written once against library ``m`` (ember or torch)."""
    nn = m.nn

    class Affine(nn.Module):
        def __init__(self, n_in, n_out, bias=True):
            super().__init__()
            self.n_in, self.n_out = n_in, n_out
            self.weight = nn.Parameter(m.linspace(-1, 1, n_in * n_out).reshape(n_in, n_out))
            if bias:
                self.bias = nn.Parameter(m.linspace(0.5, -0.5, n_out))
            else:
                self.register_parameter("bias", None)
            self.register_buffer("scale", m.ones(n_out))
            self.register_buffer("cache", m.zeros(n_out), persistent=False)

        def forward(self, x):
            y = x @ self.weight
            if self.bias is not None:
                y = y + self.bias
            return y * self.scale

        def extra_repr(self):
            return (f"in_features={self.n_in}, out_features={self.n_out}, "
                    f"bias={self.bias is not None}")

    class Act(nn.Module):
        def forward(self, x):
            return x.tanh()

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", m.zeros((), dtype=m.int64))
            self.register_buffer("running", m.zeros(2))

        def extra_repr(self):
            return "tracks=count\nmode=sum"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = Affine(5, 4)
            self.body = nn.Sequential(OrderedDict(fc1=Affine(4, 4, bias=False), act=Act(),
                                                  fc2=Affine(4, 4)))
            self.heads = nn.ModuleList([Affine(4, 2), Affine(4, 2)])
            self.counter = Counter()
            self.alias = self.inp  # the same module under a second name
            self.register_module("absent", None)
            self.gain = nn.Parameter(m.tensor(1.5))
            self.register_buffer("steps", m.zeros((), dtype=m.int64))

        def forward(self, x):
            h = self.body(self.inp(x))
            return (self.heads[0](h) + self.heads[1](h)) * self.gain

    class Shared(nn.Module):
        """One Parameter registered in two submodules."""

        def __init__(self):
            super().__init__()
            self.a = Affine(3, 3)
            self.b = Affine(3, 3)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    class Scale(nn.Module):
        """``x * w * k`` (and a second output with ``y``): for backward hooks."""

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(m.linspace(0.5, 2.0, 3))

        def forward(self, x, y=None, k=2):
            out = x * self.w * k
            if y is not None:
                return out + y, out * y
            return out

    class WithExtra(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Affine(2, 2)
            self.note = {"epoch": 0}

        def get_extra_state(self):
            return dict(self.note)

        def set_extra_state(self, state):
            self.note = dict(state)

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


E, T = make(ember), make(torch)


def both(fn):
    """``fn(ember, E)`` and ``fn(torch, T)``."""
    return fn(ember, E), fn(torch, T)


def _norm(msg):
    """Messages name ember's classes and dtypes where torch names its own."""
    return msg.replace("ember._tensor.Tensor", "torch.Tensor").replace("ember.", "torch.")


def same_error(exc, fn, match=True):
    """``fn(lib, classes)`` raises ``exc`` in both libraries, with the same message."""
    with pytest.raises(exc) as te:
        fn(torch, T)
    with pytest.raises(exc) as ee:
        fn(ember, E)
    if match:
        assert _norm(str(ee.value)) == _norm(str(te.value))
    return ee.value


def npy(t):
    return None if t is None else t.detach().numpy()


def transfer(mod_e, mod_t):
    """Copy torch weights into the ember module through load_state_dict."""
    return mod_e.load_state_dict({k: ember.tensor(v.detach().numpy())
                                  for k, v in mod_t.state_dict().items()})


# ---- registration and iteration ---------------------------------------------------------

def names(pairs):
    return [k for k, _ in pairs]


ITERATIONS = [
    ("named_parameters", lambda n: names(n.named_parameters())),
    ("named_parameters_prefix", lambda n: names(n.named_parameters(prefix="model"))),
    ("named_parameters_no_recurse", lambda n: names(n.named_parameters(recurse=False))),
    ("named_parameters_dups", lambda n: names(n.named_parameters(remove_duplicate=False))),
    ("named_buffers", lambda n: names(n.named_buffers())),
    ("named_buffers_prefix_no_recurse",
     lambda n: names(n.named_buffers(prefix="x", recurse=False))),
    ("named_buffers_dups", lambda n: names(n.named_buffers(remove_duplicate=False))),
    ("named_children", lambda n: names(n.named_children())),
    ("children", lambda n: [type(c).__name__ for c in n.children()]),
    ("named_modules", lambda n: names(n.named_modules())),
    ("named_modules_prefix", lambda n: names(n.named_modules(prefix="root"))),
    ("named_modules_dups", lambda n: names(n.named_modules(remove_duplicate=False))),
    ("modules", lambda n: [type(c).__name__ for c in n.modules()]),
    ("modules_dups", lambda n: [type(c).__name__ for c in n.modules(remove_duplicate=False)]),
    ("parameters_shapes", lambda n: [tuple(p.shape) for p in n.parameters()]),
    ("buffers_shapes", lambda n: [tuple(b.shape) for b in n.buffers()]),
    ("state_dict_keys", lambda n: list(n.state_dict().keys())),
    ("state_dict_prefix", lambda n: list(n.state_dict(prefix="net.").keys())),
    ("metadata", lambda n: list(n.state_dict()._metadata.items())),
    ("parameters_dict", lambda n: list(n._parameters)),
    ("buffers_dict", lambda n: list(n._buffers)),
    ("modules_dict", lambda n: list(n._modules)),
    ("non_persistent", lambda n: [sorted(c._non_persistent_buffers_set) for c in n.modules()]),
    ("dir", lambda n: [k for k in dir(n) if k in ("inp", "gain", "steps", "heads")]),
]


@pytest.mark.parametrize("model", ["Net", "Shared"])
@pytest.mark.parametrize("name,fn", ITERATIONS, ids=[i[0] for i in ITERATIONS])
def test_iteration_matches_torch(name, fn, model):
    e, t = getattr(E, model)(), getattr(T, model)()
    assert fn(e) == fn(t)


def test_shared_parameter_appears_once_but_is_saved_twice():
    e = E.Shared()
    assert sum(1 for p in e.parameters() if p is e.a.weight) == 1
    sd = e.state_dict()
    assert "a.weight" in sd and "b.weight" in sd
    assert e.get_parameter("b.weight") is e.a.weight


def test_registration_routes_values():
    e = E.Net()
    assert isinstance(e.gain, ember.nn.Parameter) and "gain" in e._parameters
    assert e.steps.dtype == ember.int64 and "steps" in e._buffers
    assert e.absent is None and "absent" in e._modules
    # a Parameter assigned where a buffer was moves it; deleting removes it everywhere
    e.counter.running = ember.nn.Parameter(ember.ones(2))
    assert "running" in e.counter._parameters and "running" not in e.counter._buffers
    del e.counter.running
    assert not hasattr(e.counter, "running")
    # assigning None keeps the slot; a plain tensor to a buffer name replaces the buffer
    e.inp.bias = None
    assert "bias" in e.inp._parameters and e.inp.bias is None
    e.inp.scale = ember.full((4,), 2.0)
    assert e.inp._buffers["scale"][0].item() == 2.0
    e.inp.cache = ember.ones(4)  # stays non-persistent
    assert "inp.cache" not in e.state_dict()
    # nn.Buffer marks a buffer when assigned
    e.extra = ember.nn.Buffer(ember.ones(3), persistent=False)
    e.kept = ember.nn.Buffer(ember.ones(3))
    assert "extra" in e._buffers and "extra" not in e.state_dict() and "kept" in e.state_dict()
    assert type(e.kept) is ember.Tensor
    e.plain = 3
    assert e.__dict__["plain"] == 3


def test_buffer_and_parameter_semantics_match_torch():
    def build(m, C):
        n = C.Counter()
        n.register_buffer("none_buf", None)
        n.register_parameter("none_param", None)
        n.add_module("sub", C.Act())
        n.register_module("sub2", C.Act())
        n.extra = m.nn.Buffer(m.ones(2), persistent=False)
        n.w = m.nn.Parameter(m.ones(2))
        return n
    e, t = both(build)
    for fn in (lambda n: names(n.named_buffers()), lambda n: list(n.state_dict()),
               lambda n: names(n.named_parameters()), lambda n: list(n._parameters),
               lambda n: list(n._buffers), lambda n: names(n.named_modules())):
        assert fn(e) == fn(t)


def _before_init(kind):
    def run(m, C):
        class Early(m.nn.Module):
            def __init__(self):
                if kind == "param":
                    self.w = m.nn.Parameter(m.ones(1))
                elif kind == "module":
                    self.sub = C.Act()
                elif kind == "buffer":
                    self.register_buffer("b", m.ones(1))
                else:
                    self.register_parameter("p", None)
                super().__init__()
        Early()
    return run


REG_ERRORS = [
    ("tensor_to_param", TypeError, lambda m, C: setattr(C.Affine(2, 2), "weight", m.ones(2, 2))),
    ("int_to_param", TypeError, lambda m, C: setattr(C.Affine(2, 2), "bias", 3)),
    ("module_to_param", TypeError, lambda m, C: setattr(C.Affine(2, 2), "bias", C.Act())),
    ("tensor_to_module", TypeError, lambda m, C: setattr(C.Net(), "inp", m.ones(2))),
    ("int_to_buffer", TypeError, lambda m, C: setattr(C.Affine(2, 2), "scale", 3)),
    ("list_to_buffer", TypeError, lambda m, C: setattr(C.Affine(2, 2), "scale", [1.0])),
    ("param_dotted", KeyError,
     lambda m, C: C.Act().register_parameter("a.b", m.nn.Parameter(m.ones(1)))),
    ("param_empty", KeyError, lambda m, C: C.Act().register_parameter("", None)),
    ("param_not_str", TypeError, lambda m, C: C.Act().register_parameter(1, None)),
    ("param_plain_tensor", TypeError, lambda m, C: C.Act().register_parameter("p", m.ones(1))),
    ("param_exists", KeyError,
     lambda m, C: C.Affine(2, 2).register_parameter("scale", m.nn.Parameter(m.ones(1)))),
    ("param_over_attribute", KeyError,
     lambda m, C: C.Affine(2, 2).register_parameter("n_in", None)),
    ("buffer_dotted", KeyError, lambda m, C: C.Act().register_buffer("a.b", m.ones(1))),
    ("buffer_empty", KeyError, lambda m, C: C.Act().register_buffer("", m.ones(1))),
    ("buffer_not_str", TypeError, lambda m, C: C.Act().register_buffer(2.0, m.ones(1))),
    ("buffer_not_tensor", TypeError, lambda m, C: C.Act().register_buffer("b", [1, 2])),
    ("buffer_numpy", TypeError, lambda m, C: C.Act().register_buffer("b", np.ones(2))),
    ("buffer_exists_as_param", KeyError,
     lambda m, C: C.Affine(2, 2).register_buffer("weight", m.ones(1))),
    ("buffer_over_attribute", KeyError,
     lambda m, C: setattr(C.Affine(2, 2), "n_in", m.nn.Buffer(m.ones(1)))),
    ("module_dotted", KeyError, lambda m, C: C.Act().add_module("a.b", C.Act())),
    ("module_empty", KeyError, lambda m, C: C.Act().add_module("", C.Act())),
    ("module_not_module", TypeError, lambda m, C: C.Act().add_module("x", 3)),
    ("module_not_module_tensor", TypeError, lambda m, C: C.Act().add_module("x", m.ones(1))),
    ("module_name_not_str", TypeError, lambda m, C: C.Act().register_module(5, C.Act())),
    ("module_exists", KeyError, lambda m, C: C.Affine(2, 2).add_module("weight", C.Act())),
    ("param_before_init", AttributeError, _before_init("param")),
    ("module_before_init", AttributeError, _before_init("module")),
    ("buffer_before_init", AttributeError, _before_init("buffer")),
    ("register_param_before_init", AttributeError, _before_init("register")),
    ("missing_attribute", AttributeError, lambda m, C: C.Net().nothing),
    ("init_kwargs", TypeError, lambda m, C: m.nn.Module(foo=1)),
    ("init_args", TypeError, lambda m, C: m.nn.Module(1, 2)),
    ("int_parameter", RuntimeError, lambda m, C: m.nn.Parameter(m.ones(2, dtype=m.int64))),
    ("train_not_bool", ValueError, lambda m, C: C.Net().train("yes")),
    ("to_int_dtype", TypeError, lambda m, C: C.Net().to(m.int64)),
    ("forward_missing", NotImplementedError, lambda m, C: m.nn.Module()(m.ones(1))),
]


@pytest.mark.parametrize("name,exc,fn", REG_ERRORS, ids=[r[0] for r in REG_ERRORS])
def test_registration_errors_match_torch(name, exc, fn):
    same_error(exc, fn)


SUBMODULE_ACCESS = [
    ("get_submodule", lambda n: n.get_submodule("body.fc1")),
    ("get_submodule_root", lambda n: n.get_submodule("")),
    ("get_submodule_list", lambda n: n.get_submodule("heads.1")),
    ("get_parameter", lambda n: n.get_parameter("inp.weight")),
    ("get_parameter_root", lambda n: n.get_parameter("gain")),
    ("get_buffer", lambda n: n.get_buffer("counter.count")),
    ("get_buffer_root", lambda n: n.get_buffer("steps")),
]


@pytest.mark.parametrize("name,fn", SUBMODULE_ACCESS, ids=[s[0] for s in SUBMODULE_ACCESS])
def test_submodule_access(name, fn):
    e, t = E.Net(), T.Net()
    re, rt = fn(e), fn(t)
    name_e = next(k for k, v in list(e.named_modules()) + list(e.named_parameters()) +
                  list(e.named_buffers()) if v is re)
    name_t = next(k for k, v in list(t.named_modules()) + list(t.named_parameters()) +
                  list(t.named_buffers()) if v is rt)
    assert name_e == name_t


ACCESS_ERRORS = [
    ("submodule_missing", lambda m, C: C.Net().get_submodule("body.zz")),
    ("submodule_not_module", lambda m, C: C.Net().get_submodule("inp.weight")),
    ("submodule_deep_missing", lambda m, C: C.Net().get_submodule("inp.weight.x")),
    ("parameter_missing", lambda m, C: C.Net().get_parameter("inp.nothing")),
    ("parameter_is_buffer", lambda m, C: C.Net().get_parameter("inp.scale")),
    ("parameter_bad_path", lambda m, C: C.Net().get_parameter("zz.weight")),
    ("buffer_missing", lambda m, C: C.Net().get_buffer("counter.nothing")),
    ("buffer_is_param", lambda m, C: C.Net().get_buffer("inp.weight")),
    ("set_submodule_missing_strict", lambda m, C: C.Net().set_submodule("body.zz", C.Act(),
                                                                          strict=True)),
    ("set_submodule_over_param", lambda m, C: C.Net().set_submodule("inp.weight", C.Act())),
]


@pytest.mark.parametrize("name,fn", ACCESS_ERRORS, ids=[a[0] for a in ACCESS_ERRORS])
def test_access_errors_match_torch(name, fn):
    same_error(AttributeError, fn)


def test_set_submodule():
    def run(m, C):
        n = C.Net()
        n.set_submodule("body.act", C.Counter())
        n.set_submodule("body.new", C.Act())
        return list(n.state_dict()), names(n.named_modules())
    e, t = both(run)
    assert e == t
    same_error(ValueError, lambda m, C: C.Net().set_submodule("", C.Act()))
    same_error(ValueError, lambda m, C: C.Net().set_submodule("inp", m.ones(1)))


# ---- apply, modes, grads, dtypes --------------------------------------------------------------

def test_apply_order_and_return():
    def run(m, C):
        seen = []
        n = C.Net()
        assert n.apply(lambda mod: seen.append(type(mod).__name__)) is n
        return seen
    e, t = both(run)
    assert e == t


def test_train_eval_propagate():
    def run(m, C):
        n = C.Net()
        states = [[mod.training for mod in n.modules()]]
        assert n.eval() is n
        states.append([mod.training for mod in n.modules()])
        n.body.train()
        states.append([mod.training for _, mod in n.named_modules()])
        assert n.train(False) is n
        states.append([mod.training for mod in n.modules()])
        n.train()
        states.append([mod.training for mod in n.modules()])
        return states
    e, t = both(run)
    assert e == t


def _backward(m, n, x):
    out = n(m.tensor(x))
    (out * out).sum().backward()
    return out


X = np.linspace(-1, 1, 15, dtype=np.float32).reshape(3, 5)


def test_forward_backward_match_torch():
    e, t = E.Net(), T.Net()
    oe, ot = _backward(ember, e, X), _backward(torch, t, X)
    assert_close(oe, ot, "float32")
    for (ke, pe), (kt, pt) in zip(e.named_parameters(), t.named_parameters()):
        assert ke == kt
        assert_close(pe.grad, pt.grad, "float32", ke)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    def run(m, C):
        n = C.Net()
        _backward(m, n, X)
        before = {k: p.grad for k, p in n.named_parameters()}
        n.zero_grad(set_to_none=set_to_none)
        after = {k: p.grad for k, p in n.named_parameters()}
        same = {k: after[k] is before[k] for k in before}
        vals = {k: None if g is None else float(g.abs().sum()) for k, g in after.items()}
        return same, vals
    e, t = both(run)
    assert e == t
    # accumulation restarts from zero
    n = E.Net()
    _backward(ember, n, X)
    g1 = n.inp.weight.grad.numpy().copy()
    n.zero_grad(set_to_none)
    _backward(ember, n, X)
    np.testing.assert_allclose(n.inp.weight.grad.numpy(), g1)


def test_zero_grad_default_sets_none():
    n = E.Net()
    _backward(ember, n, X)
    n.zero_grad()
    assert all(p.grad is None for p in n.parameters())


def test_zero_grad_on_grad_with_history():
    def run(m, C):
        n = C.Affine(2, 2)
        n.weight.grad = (m.ones(2, 2, requires_grad=True) * 2)
        g = n.weight.grad
        n.zero_grad(set_to_none=False)
        return n.weight.grad is g, g.requires_grad, g.grad_fn is None, float(g.sum())
    e, t = both(run)
    assert e == t


def test_requires_grad_():
    def run(m, C):
        n = C.Net()
        assert n.requires_grad_(False) is n
        flags = [p.requires_grad for p in n.parameters()]
        n.heads.requires_grad_()
        flags2 = [p.requires_grad for _, p in n.named_parameters()]
        out = n(m.tensor(X))
        return flags, flags2, out.requires_grad
    e, t = both(run)
    assert e == t


CONVERSIONS = [
    ("double", lambda m, n: n.double()),
    ("float", lambda m, n: n.double().float()),
    ("half", lambda m, n: n.half()),
    ("bfloat16", lambda m, n: n.bfloat16()),
    ("to_dtype", lambda m, n: n.to(m.float64)),
    ("to_dtype_kw", lambda m, n: n.to(dtype=m.float64)),
    ("to_device", lambda m, n: n.to("cpu")),
    ("to_device_dtype", lambda m, n: n.to("cpu", m.float64)),
    ("to_tensor", lambda m, n: n.to(m.zeros(1, dtype=m.float64))),
    ("cpu", lambda m, n: n.cpu()),
]


@pytest.mark.parametrize("name,fn", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_dtype_conversions(name, fn):
    def run(m, C):
        n = C.Net()
        _backward(m, n, X)
        params = {k: p for k, p in n.named_parameters()}
        grads = {k: p.grad for k, p in n.named_parameters()}
        assert fn(m, n) is n
        kept = {k: p is params[k] for k, p in n.named_parameters()}
        kept_grads = {k: p.grad is grads[k] for k, p in n.named_parameters()}
        dts = [str(v.dtype).split(".")[1] for v in n.state_dict().values()]
        gdts = [str(p.grad.dtype).split(".")[1] for p in n.parameters()]
        flags = [(p.requires_grad, p.is_leaf, type(p).__name__) for p in n.parameters()]
        return kept, kept_grads, dts, gdts, flags
    e, t = both(run)
    assert e == t
    assert all(e[0].values())


def test_conversion_values_and_forward():
    e, t = E.Net().double(), T.Net().double()
    assert_close(e(ember.tensor(X.astype(np.float64))), t(torch.tensor(X.astype(np.float64))))


# ---- state_dict / load_state_dict -------------------------------------------------------

def test_state_dict_values_and_sharing():
    e, t = E.Net(), T.Net()
    se, st_ = e.state_dict(), t.state_dict()
    assert list(se) == list(st_)
    for k in se:
        assert_close(se[k], st_[k], "float32", k)
        assert not isinstance(se[k], ember.nn.Parameter) and not se[k].requires_grad
    # detached values share memory with the module, as in torch
    se["inp.weight"][0, 0] = 42.0
    assert e.inp.weight[0, 0].item() == 42.0
    kv = e.state_dict(keep_vars=True)
    assert kv["inp.weight"] is e.inp.weight and kv["steps"] is e.steps


def test_state_dict_destination_and_positional_args():
    e, t = E.Net(), T.Net()
    dest_e, dest_t = OrderedDict(), OrderedDict()
    assert e.state_dict(destination=dest_e, prefix="m.") is dest_e
    t.state_dict(destination=dest_t, prefix="m.")
    assert list(dest_e) == list(dest_t)
    with pytest.warns(FutureWarning):
        r = e.state_dict(None, "p.")
    with pytest.warns(FutureWarning):
        assert list(r) == list(t.state_dict(None, "p."))


def test_load_state_dict_from_torch():
    e, t = E.Net(), T.Net()
    with torch.no_grad():
        for p in t.parameters():
            p.mul_(-0.7).add_(0.1)
        t.steps.fill_(7)
    res = transfer(e, t)
    assert repr(res) == repr(t.load_state_dict(t.state_dict())) == \
        "<All keys matched successfully>"
    assert res.missing_keys == [] and res.unexpected_keys == []
    for (k, a), (_, b) in zip(e.state_dict().items(), t.state_dict().items()):
        assert_close(a, b, "float32", k)
    assert e.steps.dtype == ember.int64 and e.steps.item() == 7
    assert_close(e(ember.tensor(X)), t(torch.tensor(X)), "float32")


def test_load_copies_and_keeps_parameters():
    e = E.Net()
    w = e.body.fc2.weight
    src = {k: v.clone() for k, v in E.Net().state_dict().items()}
    src["body.fc2.weight"] = ember.full((4, 4), 3.0, dtype=ember.float64)  # cast on copy
    e.load_state_dict(src)
    assert e.body.fc2.weight is w and w.dtype == ember.float32
    assert w.requires_grad and w.is_leaf
    src["body.fc2.weight"][0, 0] = -1.0
    assert w[0, 0].item() == 3.0


def _load(sd_edit, strict=True, model="Net"):
    def run(m, C):
        n = getattr(C, model)()
        sd = getattr(C, model)().state_dict()
        sd_edit(m, sd)
        return n.load_state_dict(sd, strict=strict)
    return run


def _drop(*keys):
    def edit(m, sd):
        for k in keys:
            del sd[k]
    return edit


def _add(**kv):
    def edit(m, sd):
        for k, v in kv.items():
            sd[k.replace("__", ".")] = m.zeros(v)
    return edit


def _chain(*edits):
    def edit(m, sd):
        for f in edits:
            f(m, sd)
    return edit


LOAD_CASES = [
    ("missing", _drop("inp.bias", "counter.count")),
    ("unexpected", _add(extra=2, heads__0__nothing=1, nowhere__deep__key=3)),
    ("both", _chain(_drop("gain"), _add(body__fc1__bias=4))),
    ("missing_child", _drop(*[k for k in T.Net().state_dict() if k.startswith("body.")])),
    ("alias_missing", _drop("alias.weight")),
]


@pytest.mark.parametrize("name,edit", LOAD_CASES, ids=[c[0] for c in LOAD_CASES])
def test_load_state_dict_keys_match_torch(name, edit):
    e, t = both(_load(edit, strict=False))
    assert e.missing_keys == t.missing_keys and e.unexpected_keys == t.unexpected_keys
    assert repr(e) == repr(t)
    err = same_error(RuntimeError, _load(edit))
    assert str(err).startswith("Error(s) in loading state_dict for Net:\n\t")


LOAD_ERRORS = [
    ("size_mismatch", lambda m, sd: sd.__setitem__("inp.weight", m.zeros(4, 5))),
    ("size_mismatch_buffer", lambda m, sd: sd.__setitem__("counter.running", m.zeros(3))),
    ("not_a_tensor", lambda m, sd: sd.__setitem__("gain", 1.5)),
    ("mismatch_and_missing", _chain(_drop("heads.1.bias"),
                                    lambda m, sd: sd.__setitem__("gain", m.zeros(2)))),
]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("name,edit", LOAD_ERRORS, ids=[c[0] for c in LOAD_ERRORS])
def test_load_state_dict_errors_match_torch(name, edit, strict):
    err = same_error(RuntimeError, _load(edit, strict=strict))
    assert "for Net:" in str(err)


def test_load_state_dict_scalar_from_shape_1_and_bad_type():
    def run(m, C):
        n = C.Net()
        sd = n.state_dict()
        sd["gain"] = m.tensor([2.5])
        n.load_state_dict(sd)
        return n.gain.item(), tuple(n.gain.shape)
    assert both(run)[0] == both(run)[1]
    same_error(TypeError, lambda m, C: C.Net().load_state_dict([("gain", m.ones(()))]))


@pytest.mark.parametrize("freeze", [False, True])
def test_load_state_dict_assign(freeze):
    def run(m, C):
        n = C.Net()
        if freeze:
            n.inp.requires_grad_(False)
        old = n.inp.weight
        sd = {k: v.clone() * 2 for k, v in C.Net().state_dict().items()}
        sd["heads.0.weight"] = m.nn.Parameter(sd["heads.0.weight"], requires_grad=False)
        given = sd["inp.weight"]
        n.load_state_dict(sd, assign=True)
        w = n.inp.weight
        given[0, 0] = 99.0  # the module holds the given storage
        return (w is not old, type(w).__name__, w.requires_grad, w[0, 0].item(),
                n.heads[0].weight.requires_grad, n.heads[0].weight is sd["heads.0.weight"],
                n.counter.running is sd["counter.running"],
                [k for k, _ in n.named_parameters()])
    e, t = both(run)
    assert e == t


def test_load_state_dict_hooks():
    def run(m, C):
        log = []
        n = C.Net()

        def pre(module, sd, prefix, meta, strict, missing, unexpected, errors):
            log.append(("pre", type(module).__name__, prefix, strict, sorted(sd)[:2]))

        def post(module, keys):
            log.append(("post", type(module).__name__, list(keys.missing_keys)))

        n.body.register_load_state_dict_pre_hook(pre)
        h = n.register_load_state_dict_post_hook(post)
        n.body.register_load_state_dict_post_hook(post)
        sd = n.state_dict()
        del sd["inp.bias"]
        n.load_state_dict(sd, strict=False)
        h.remove()
        n.load_state_dict(sd, strict=False)
        return log
    e, t = both(run)
    assert e == t

    def bad(m, C):
        n = C.Net()
        n.register_load_state_dict_post_hook(lambda mod, keys: keys)
        n.load_state_dict(n.state_dict())
    same_error(AssertionError, bad)


def test_state_dict_hooks():
    def run(m, C):
        log = []
        n = C.Net()
        n.register_state_dict_pre_hook(lambda mod, prefix, kv: log.append(("pre", prefix, kv)))

        def post(mod, sd, prefix, meta):
            log.append(("post", prefix, len(sd), meta))
            sd[prefix + "added"] = m.ones(1)
        n.heads.register_state_dict_post_hook(post)
        keys = list(n.state_dict(prefix="x."))
        return log, keys
    e, t = both(run)
    assert e == t

    def returning(m, C):
        n = C.Net()
        n.register_state_dict_post_hook(lambda mod, sd, prefix, meta: sd)
        n.state_dict()
    same_error(RuntimeError, returning)


def test_extra_state():
    def run(m, C):
        n = C.WithExtra()
        n.note["epoch"] = 3
        sd = n.state_dict()
        other = C.WithExtra()
        other.load_state_dict(sd)
        missing = C.WithExtra().load_state_dict(n.inner.state_dict(prefix="inner."),
                                                strict=False)
        return list(sd), sd["_extra_state"], other.note, missing.missing_keys
    e, t = both(run)
    assert e == t
    # a module without extra state reports the key as unexpected
    e = E.Net().load_state_dict(dict(E.Net().state_dict(), _extra_state=1), strict=False)
    t = T.Net().load_state_dict(dict(T.Net().state_dict(), _extra_state=1), strict=False)
    assert e.unexpected_keys == t.unexpected_keys == ["_extra_state"]


def test_state_dict_round_trip_between_ember_models():
    a, b = E.Net(), E.Net()
    with ember.no_grad():
        for p in a.parameters():
            p.mul_(3.0)
    b.load_state_dict(a.state_dict())
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=k)


# ---- forward hooks ----------------------------------------------------------------------

def test_forward_pre_hook_modifies_args():
    def run(m, C):
        n = C.Affine(3, 2)
        h = n.register_forward_pre_hook(lambda mod, args: args[0] * 2)  # non-tuple: wrapped
        a = n(m.ones(1, 3))
        h.remove()
        b = n(m.ones(1, 3))
        n.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
        c = n(m.ones(1, 3))
        return [x.detach().numpy().tolist() for x in (a, b, c)]
    e, t = both(run)
    np.testing.assert_allclose(e, t, rtol=1e-6)


def test_forward_pre_hook_with_kwargs():
    def run(m, C):
        n = C.Scale()
        seen = []

        def hook(mod, args, kwargs):
            seen.append((len(args), sorted(kwargs)))
            return (args[0] + 1,), dict(kwargs, k=5)
        n.register_forward_pre_hook(hook, with_kwargs=True)
        out = n(m.ones(3), k=1)
        return seen, out.detach().numpy().tolist()
    e, t = both(run)
    assert e[0] == t[0]
    np.testing.assert_allclose(e[1], t[1], rtol=1e-6)

    def bad(m, C):
        n = C.Scale()
        n.register_forward_pre_hook(lambda mod, args, kwargs: args, with_kwargs=True)
        n(m.ones(3))
    same_error(RuntimeError, bad, match=False)


def test_forward_hooks_order_output_and_kwargs():
    def run(m, C):
        log = []
        n = C.Scale()
        n.register_forward_hook(lambda mod, args, out: log.append("a"))
        n.register_forward_hook(lambda mod, args, out: (log.append("b"), out * 10)[1])
        n.register_forward_hook(lambda mod, args, out: log.append("first"), prepend=True)
        n.register_forward_pre_hook(lambda mod, args: log.append("pre1"))
        n.register_forward_pre_hook(lambda mod, args: log.append("pre0"), prepend=True)

        def kw(mod, args, kwargs, out):
            log.append(("kw", len(args), sorted(kwargs)))
            return out + 1
        n.register_forward_hook(kw, with_kwargs=True)
        out = n(m.ones(3), k=3)
        return log, out.detach().numpy().tolist()
    e, t = both(run)
    assert e[0] == t[0]
    np.testing.assert_allclose(e[1], t[1], rtol=1e-6)


def test_forward_hook_always_call():
    def run(m, C):
        log = []

        class Boom(m.nn.Module):
            def forward(self, x, **kw):
                raise ValueError("boom")
        b = Boom()
        b.register_forward_hook(lambda mod, args, out: log.append(("always", out)),
                                always_call=True)
        b.register_forward_hook(lambda mod, args, out: log.append("normal"))
        b.register_forward_hook(lambda mod, args, kwargs, out: log.append(("kw", kwargs)),
                                always_call=True, with_kwargs=True)
        with pytest.raises(ValueError, match="boom"):
            b(m.ones(1), flag=True)
        return log
    e, t = both(run)
    assert e == t == [("always", None), ("kw", {"flag": True})]


def test_hook_handles():
    def run(m, C):
        log = []
        n = C.Act()
        h1 = n.register_forward_hook(lambda *a: log.append(1))
        with n.register_forward_hook(lambda *a: log.append(2)):
            n(m.ones(1))
        n(m.ones(1))
        h1.remove()
        h1.remove()  # removing twice is harmless
        n(m.ones(1))
        h3 = n.register_forward_hook(lambda *a: log.append(3), with_kwargs=False,
                                     always_call=True)
        h3.remove()
        n(m.ones(1))
        return log, len(n._forward_hooks), len(n._forward_hooks_always_called)
    e, t = both(run)
    assert e == t
    assert isinstance(E.Act().register_forward_hook(lambda *a: None).id, int)


def test_global_forward_hooks():
    def run(m, C):
        log = []
        reg = m.nn.modules.module.register_module_forward_hook
        pre = m.nn.modules.module.register_module_forward_pre_hook
        h = reg(lambda mod, args, out: log.append(type(mod).__name__))
        h2 = pre(lambda mod, args: log.append("pre-" + type(mod).__name__))
        try:
            C.Net()(m.tensor(X))
        finally:
            h.remove()
            h2.remove()
        C.Net()(m.tensor(X))
        return log
    e, t = both(run)
    assert e == t and len(e) > 0


# ---- backward hooks ---------------------------------------------------------------------

def _grads(ts):
    return [None if g is None else np.asarray(g.detach().numpy(), np.float64).tolist()
            for g in ts]


def _hook_case(call, *, full=None, pre=None, x_grad=True, y=None):
    """Run ``call(module, x, y)`` with backward hooks; record everything the hooks see."""
    def run(m, C):
        rec = []
        n = C.Scale()
        x = m.tensor([1.0, -2.0, 3.0], requires_grad=x_grad)
        yy = None if y is None else m.tensor([0.5, 0.25, -1.0], requires_grad=y)

        def full_hook(mod, gin, gout):
            rec.append(("full", _grads(gin), _grads(gout)))
            return None if full is None else full(gin)

        def pre_hook(mod, gout):
            rec.append(("pre", _grads(gout)))
            return None if pre is None else pre(gout)
        n.register_full_backward_hook(full_hook)
        n.register_full_backward_pre_hook(pre_hook)
        out = call(n, x, yy)
        if isinstance(out, tuple):
            loss = sum((o * (i + 2)).sum() for i, o in enumerate(out) if o is not None)
        else:
            loss = (out * out).sum()
        loss.backward()
        leaves = [x.grad, n.w.grad, None if yy is None else yy.grad]
        return rec, _grads(leaves)
    return run


def _assert_records(e, t):
    (re, le), (rt, lt) = e, t
    assert len(re) == len(rt) and len(re) > 0
    for a, b in zip(re, rt):
        assert a[0] == b[0]
        for ga, gb in zip(a[1:], b[1:]):
            assert len(ga) == len(gb)
            for u, v in zip(ga, gb):
                assert (u is None) == (v is None)
                if u is not None:
                    np.testing.assert_allclose(u, v, rtol=1e-6)
    for u, v in zip(le, lt):
        assert (u is None) == (v is None)
        if u is not None:
            np.testing.assert_allclose(u, v, rtol=1e-6)


def _double(gs):
    return tuple(None if g is None else g * 2 for g in gs)


def _triple(gs):
    return tuple(None if g is None else g * 3 for g in gs)


BACKWARD_HOOKS = [
    ("single", dict(call=lambda n, x, y: n(x))),
    ("two_inputs_tuple_out", dict(call=lambda n, x, y: n(x, y), y=True)),
    ("unused_output", dict(call=lambda n, x, y: (n(x, y)[0],), y=True)),
    ("second_input_no_grad", dict(call=lambda n, x, y: n(x, y), y=False)),
    ("first_input_no_grad", dict(call=lambda n, x, y: n(x, y), y=True, x_grad=False)),
    ("non_tensor_args", dict(call=lambda n, x, y: n(x, None, 3))),
    ("kwargs_not_in_grad_input", dict(call=lambda n, x, y: n(x, y=y, k=3), y=True)),
    ("modified_grad_input", dict(call=lambda n, x, y: n(x), full=_double)),
    ("modified_grad_input_two", dict(call=lambda n, x, y: n(x, y), y=True, full=_double)),
    ("modified_grad_output", dict(call=lambda n, x, y: n(x), pre=_triple)),
    ("modified_both", dict(call=lambda n, x, y: n(x, y), y=True, pre=_triple, full=_double)),
]


@pytest.mark.parametrize("name,kw", BACKWARD_HOOKS, ids=[b[0] for b in BACKWARD_HOOKS])
def test_full_backward_hooks_match_torch(name, kw):
    e, t = both(_hook_case(**kw))
    _assert_records(e, t)


def test_full_backward_hook_when_no_input_needs_grad():
    with pytest.warns(UserWarning) as wt:
        t = _hook_case(call=lambda n, x, y: n(x), x_grad=False)(torch, T)
    with pytest.warns(UserWarning) as we:
        e = _hook_case(call=lambda n, x, y: n(x), x_grad=False)(ember, E)
    _assert_records(e, t)
    assert e[0][1] == ("full", [None], e[0][1][2])
    assert str(we[0].message) == str(wt[0].message)


def test_full_backward_hook_wrong_length_and_removal():
    def bad(m, C):
        n = C.Scale()
        n.register_full_backward_hook(lambda mod, gin, gout: (gin[0], gin[0]))
        n(m.ones(3, requires_grad=True)).sum().backward()
    same_error(RuntimeError, bad)

    def bad_pre(m, C):
        n = C.Scale()
        n.register_full_backward_pre_hook(lambda mod, gout: ())
        n(m.ones(3, requires_grad=True)).sum().backward()
    same_error(RuntimeError, bad_pre)

    def removed(m, C):
        log = []
        n = C.Scale()
        h = n.register_full_backward_hook(lambda *a: log.append("full"))
        h2 = n.register_full_backward_pre_hook(lambda *a: log.append("pre"))
        x = m.ones(3, requires_grad=True)
        n(x).sum().backward()
        h.remove()
        h2.remove()
        n(x).sum().backward()
        return log, x.grad.numpy().tolist()
    e, t = both(removed)
    assert e == t


def test_backward_hook_kinds_cannot_mix():
    def run(m, C):
        n = C.Scale()
        n.register_backward_hook(lambda *a: None)
        n.register_full_backward_hook(lambda *a: None)
    same_error(RuntimeError, run)

    def run2(m, C):
        n = C.Scale()
        n.register_full_backward_hook(lambda *a: None)
        n.register_backward_hook(lambda *a: None)
    same_error(RuntimeError, run2)


def test_backward_hooks_in_sequential_order():
    def run(m, C):
        log = []
        seq = m.nn.Sequential(C.Scale(), C.Scale())
        for i, mod in enumerate(seq):
            mod.register_full_backward_hook(lambda mod, gin, gout, i=i: log.append(i))
            mod.register_full_backward_pre_hook(lambda mod, gout, i=i: log.append(f"pre{i}"))
        seq(m.ones(3, requires_grad=True)).sum().backward()
        return log
    e, t = both(run)
    assert e == t == ["pre1", 1, "pre0", 0]


def test_global_backward_hooks():
    def run(m, C):
        log = []
        mm = m.nn.modules.module
        h = mm.register_module_full_backward_hook(
            lambda mod, gin, gout: log.append((type(mod).__name__, len(gin), len(gout))))
        h2 = mm.register_module_full_backward_pre_hook(
            lambda mod, gout: log.append(("pre", type(mod).__name__)))
        try:
            seq = m.nn.Sequential(C.Scale(), C.Scale())
            seq(m.ones(3, requires_grad=True)).sum().backward()
        finally:
            h.remove()
            h2.remove()
        seq(m.ones(3, requires_grad=True)).sum().backward()
        return log
    e, t = both(run)
    assert e == t and len(e) == 6


def test_no_backward_hook_work_under_no_grad():
    def run(m, C):
        log = []
        n = C.Scale()
        n.register_full_backward_hook(lambda *a: log.append(1))
        with m.no_grad():
            out = n(m.ones(3, requires_grad=True))
        return out.requires_grad, log
    e, t = both(run)
    assert e == t


# ---- containers -------------------------------------------------------------------------

def kinds(mod):
    return [(k, type(v).__name__, getattr(v, "n_in", None)) for k, v in mod._modules.items()]


SEQ_OPS = [
    ("construct", lambda m, C, s: None),
    ("ordered_dict", lambda m, C, s: m.nn.Sequential(OrderedDict(a=C.Act(), b=C.Counter()))),
    ("getitem", lambda m, C, s: (s[0], s[-1], s[1])),
    ("slice", lambda m, C, s: s[1:]),
    ("slice_step", lambda m, C, s: s[::-2]),
    ("slice_named", lambda m, C, s: m.nn.Sequential(OrderedDict(a=C.Act(), b=C.Counter(),
                                                                 c=C.Act()))[1:]),
    ("setitem", lambda m, C, s: s.__setitem__(-1, C.Affine(7, 7))),
    ("delitem", lambda m, C, s: s.__delitem__(1)),
    ("delitem_negative", lambda m, C, s: s.__delitem__(-3)),
    ("delitem_slice", lambda m, C, s: s.__delitem__(slice(0, 2))),
    ("append", lambda m, C, s: s.append(C.Counter())),
    ("insert", lambda m, C, s: s.insert(1, C.Counter())),
    ("insert_end", lambda m, C, s: s.insert(3, C.Counter())),
    ("insert_negative", lambda m, C, s: s.insert(-1, C.Counter())),
    ("extend", lambda m, C, s: s.extend([C.Counter(), C.Act()])),
    ("pop", lambda m, C, s: s.pop(1)),
    ("pop_negative", lambda m, C, s: s.pop(-1)),
    ("add", lambda m, C, s: s + m.nn.Sequential(C.Counter())),
    ("iadd", lambda m, C, s: s.__iadd__(m.nn.Sequential(C.Counter()))),
    ("mul", lambda m, C, s: s * 2),
    ("rmul", lambda m, C, s: 2 * s),
    ("imul", lambda m, C, s: s.__imul__(3)),
    ("len_iter", lambda m, C, s: (len(s), [type(x).__name__ for x in s])),
]


def _describe(m, x):
    if isinstance(x, m.nn.Module):
        return type(x).__name__, kinds(x)
    if isinstance(x, tuple):
        return tuple(_describe(m, y) for y in x)
    return x


@pytest.mark.parametrize("name,op", SEQ_OPS, ids=[s[0] for s in SEQ_OPS])
def test_sequential_ops_match_torch(name, op):
    def run(m, C):
        s = m.nn.Sequential(C.Affine(3, 4), C.Act(), C.Affine(4, 2))
        res = op(m, C, s)
        return _describe(m, res), kinds(s), repr(s), list(s.state_dict())
    e, t = both(run)
    assert e == t


def test_sequential_identity_of_children():
    a, b, c = E.Affine(3, 4), E.Act(), E.Affine(4, 2)
    s = ember.nn.Sequential(a, b, c)
    assert s[0] is a and s[-1] is c and s[1:][0] is b
    assert isinstance(s[1:], ember.nn.Sequential)
    d = s * 2
    assert d[0] is d[3] is a
    assert s.pop(0) is a and s[0] is b


def test_sequential_forward_matches_torch():
    def run(m, C):
        s = m.nn.Sequential(C.Affine(5, 4), C.Act(), C.Affine(4, 3))
        x = m.tensor(X, requires_grad=True)
        out = s(x)
        (out ** 2).sum().backward()
        return out, x.grad, s[0].weight.grad
    e, t = both(run)
    for a, b in zip(e, t):
        assert_close(a, b, "float32")


SEQ_ERRORS = [
    ("index", IndexError, lambda m, C, s: s[3]),
    ("index_negative", IndexError, lambda m, C, s: s[-4]),
    ("index_float", TypeError, lambda m, C, s: s[1.0]),
    ("set_index", IndexError, lambda m, C, s: s.__setitem__(5, C.Act())),
    ("del_index", IndexError, lambda m, C, s: s.__delitem__(3)),
    ("insert_range", IndexError, lambda m, C, s: s.insert(5, C.Act())),
    ("insert_not_module", AssertionError, lambda m, C, s: s.insert(0, 3)),
    ("add_list", ValueError, lambda m, C, s: s + [C.Act()]),
    ("iadd_list", ValueError, lambda m, C, s: s.__iadd__([C.Act()])),
    ("mul_float", TypeError, lambda m, C, s: s * 1.5),
    ("mul_zero", ValueError, lambda m, C, s: s * 0),
    ("imul_negative", ValueError, lambda m, C, s: s.__imul__(-1)),
    ("append_not_module", TypeError, lambda m, C, s: s.append(3)),
    ("construct_not_module", TypeError, lambda m, C, s: m.nn.Sequential(C.Act(), 3)),
    ("set_not_module", TypeError, lambda m, C, s: s.__setitem__(0, 3)),
]


@pytest.mark.parametrize("name,exc,op", SEQ_ERRORS, ids=[s[0] for s in SEQ_ERRORS])
def test_sequential_errors_match_torch(name, exc, op):
    same_error(exc, lambda m, C: op(m, C, m.nn.Sequential(C.Affine(3, 4), C.Act(),
                                                          C.Affine(4, 2))),
               match=exc is not AssertionError)


LIST_OPS = [
    ("construct", lambda m, C, s: None),
    ("empty", lambda m, C, s: m.nn.ModuleList()),
    ("getitem", lambda m, C, s: (s[0], s[-1])),
    ("slice", lambda m, C, s: s[1:]),
    ("setitem", lambda m, C, s: s.__setitem__(-2, C.Counter())),
    ("delitem", lambda m, C, s: s.__delitem__(0)),
    ("delitem_slice", lambda m, C, s: s.__delitem__(slice(None, None, 2))),
    ("append", lambda m, C, s: s.append(C.Counter())),
    ("insert", lambda m, C, s: s.insert(1, C.Counter())),
    ("insert_end", lambda m, C, s: s.insert(4, C.Counter())),
    ("extend", lambda m, C, s: s.extend((C.Act() for _ in range(2)))),
    ("iadd", lambda m, C, s: s.__iadd__([C.Counter()])),
    ("add", lambda m, C, s: s + [C.Counter()]),
    ("pop", lambda m, C, s: s.pop(-1)),
    ("len_iter", lambda m, C, s: (len(s), [type(x).__name__ for x in s])),
]


@pytest.mark.parametrize("name,op", LIST_OPS, ids=[s[0] for s in LIST_OPS])
def test_module_list_ops_match_torch(name, op):
    def run(m, C):
        s = m.nn.ModuleList([C.Affine(3, 4), C.Act(), C.Act(), C.Affine(4, 2)])
        res = op(m, C, s)
        return _describe(m, res), kinds(s), repr(s), list(s.state_dict())
    e, t = both(run)
    assert e == t


MODULE_LIST_ERRORS = [
    ("index", IndexError, lambda m, C, s: s[4]),
    ("set_index", IndexError, lambda m, C, s: s.__setitem__(-5, C.Act())),
    ("del_index", IndexError, lambda m, C, s: s.__delitem__(9)),
    ("extend_not_iterable", TypeError, lambda m, C, s: s.extend(C.Act())),
    ("append_not_module", TypeError, lambda m, C, s: s.append("x")),
    ("construct_not_iterable", TypeError, lambda m, C, s: m.nn.ModuleList(3)),
]


@pytest.mark.parametrize("name,exc,op", MODULE_LIST_ERRORS,
                         ids=[s[0] for s in MODULE_LIST_ERRORS])
def test_module_list_errors_match_torch(name, exc, op):
    same_error(exc, lambda m, C: op(m, C, m.nn.ModuleList([C.Affine(3, 4), C.Act(), C.Act(),
                                                           C.Affine(4, 2)])))


def test_module_list_repr_folds_repeats():
    def run(m, C):
        ml = m.nn.ModuleList([C.Act(), C.Act(), C.Act(), C.Affine(2, 2), C.Affine(2, 2),
                              C.Affine(2, 3), C.Act(), m.nn.Sequential(C.Act(), C.Act())])
        return repr(ml)
    e, t = both(run)
    assert e == t


DICT_OPS = [
    ("construct_dict", lambda m, C, d: m.nn.ModuleDict({"z": C.Act(), "a": C.Counter()})),
    ("construct_pairs", lambda m, C, d: m.nn.ModuleDict([("z", C.Act()), ["a", C.Counter()]])),
    ("construct_moduledict", lambda m, C, d: m.nn.ModuleDict(d)),
    ("getitem", lambda m, C, d: d["act"]),
    ("setitem_new", lambda m, C, d: d.__setitem__("new", C.Counter())),
    ("setitem_replace", lambda m, C, d: d.__setitem__("act", C.Counter())),
    ("delitem", lambda m, C, d: d.__delitem__("fc")),
    ("pop", lambda m, C, d: d.pop("act")),
    ("clear", lambda m, C, d: d.clear()),
    ("update_ordered", lambda m, C, d: d.update(OrderedDict(b=C.Act(), a=C.Act()))),
    ("update_pairs", lambda m, C, d: d.update([("fc", C.Act()), ("q", C.Counter())])),
    ("views", lambda m, C, d: (list(d.keys()), [type(v).__name__ for v in d.values()],
                               [k for k, _ in d.items()], list(d), len(d), "fc" in d,
                               "zz" in d)),
]


@pytest.mark.parametrize("name,op", DICT_OPS, ids=[s[0] for s in DICT_OPS])
def test_module_dict_ops_match_torch(name, op):
    def run(m, C):
        d = m.nn.ModuleDict({"fc": C.Affine(2, 3), "act": C.Act()})
        res = op(m, C, d)
        return _describe(m, res), kinds(d), repr(d), list(d.state_dict())
    e, t = both(run)
    assert e == t


MODULE_DICT_ERRORS = [
    ("missing", KeyError, lambda m, C, d: d["zz"]),
    ("update_not_iterable", TypeError, lambda m, C, d: d.update(3)),
    ("update_bad_element", TypeError, lambda m, C, d: d.update([3])),
    ("update_bad_length", ValueError, lambda m, C, d: d.update([("a", C.Act(), 1)])),
    ("not_module", TypeError, lambda m, C, d: d.__setitem__("x", 3)),
    ("dotted_key", KeyError, lambda m, C, d: d.__setitem__("a.b", C.Act())),
]


@pytest.mark.parametrize("name,exc,op", MODULE_DICT_ERRORS,
                         ids=[s[0] for s in MODULE_DICT_ERRORS])
def test_module_dict_errors_match_torch(name, exc, op):
    same_error(exc, lambda m, C: op(m, C, m.nn.ModuleDict({"fc": C.Affine(2, 3),
                                                           "act": C.Act()})))


def _prepr(s):
    """torch prints dtypes as torch.*, ember as ember.*."""
    return s.replace("torch.float", "ember.float").replace("torch.int", "ember.int")


PLIST_OPS = [
    ("construct", lambda m, pl: None),
    ("append_tensor", lambda m, pl: pl.append(m.zeros(2, 2, dtype=m.float64))),
    ("append_object", lambda m, pl: pl.append("hello")),
    ("extend", lambda m, pl: pl.extend([m.ones(1), m.nn.Parameter(m.ones(3))])),
    ("iadd", lambda m, pl: pl.__iadd__([m.ones(2)])),
    ("setitem", lambda m, pl: pl.__setitem__(-1, m.zeros(5))),
    ("getitem", lambda m, pl: tuple(pl[-1].shape)),
    ("slice", lambda m, pl: [tuple(p.shape) for p in pl[::-1]]),
    ("iter", lambda m, pl: [(type(p).__name__, p.requires_grad) for p in pl]),
    ("len", lambda m, pl: len(pl)),
]


@pytest.mark.parametrize("name,op", PLIST_OPS, ids=[s[0] for s in PLIST_OPS])
def test_parameter_list_ops_match_torch(name, op):
    def run(m, C):
        pl = m.nn.ParameterList([m.nn.Parameter(m.ones(2, 3)), m.zeros(4)])
        res = op(m, pl)
        if isinstance(res, m.nn.Module):
            res = _prepr(repr(res))
        return (res, _prepr(repr(pl)), names(pl.named_parameters()),
                [type(p).__name__ for p in pl], len(pl))
    e, t = both(run)
    assert e == t


def test_parameter_list_keeps_parameter_identity_and_grads():
    p = ember.nn.Parameter(ember.ones(3))
    pl = ember.nn.ParameterList([p, ember.ones(2)])
    assert pl[0] is p and isinstance(pl[1], ember.nn.Parameter)
    assert isinstance(pl[:1], ember.nn.ParameterList) and pl[:1][0] is p
    (pl[0].sum() * 2 + pl[1].sum()).backward()
    assert pl[0].grad.tolist() == [2.0, 2.0, 2.0] and pl[1].grad.tolist() == [1.0, 1.0]


PLIST_ERRORS = [
    ("index", IndexError, lambda m, pl: pl[2]),
    ("set_index", IndexError, lambda m, pl: pl.__setitem__(-3, m.ones(1))),
    ("extend_tensor", TypeError, lambda m, pl: pl.extend(m.ones(3))),
    ("extend_not_iterable", TypeError, lambda m, pl: pl.extend(5)),
    ("call", RuntimeError, lambda m, pl: pl(m.ones(1))),
]


@pytest.mark.parametrize("name,exc,op", PLIST_ERRORS, ids=[s[0] for s in PLIST_ERRORS])
def test_parameter_list_errors_match_torch(name, exc, op):
    same_error(exc, lambda m, C: op(m, m.nn.ParameterList([m.ones(2), m.ones(3)])))


PDICT_OPS = [
    ("construct_sorted", lambda m, d: None),
    ("ordered", lambda m, d: repr(m.nn.ParameterDict(OrderedDict(z=m.ones(1), a=m.ones(2))))),
    ("pairs", lambda m, d: repr(m.nn.ParameterDict([("z", m.ones(1)), ("a", m.ones(2))]))),
    ("setitem", lambda m, d: d.__setitem__("new", m.zeros(3, dtype=m.float64))),
    ("setitem_object", lambda m, d: d.__setitem__("obj", 7)),
    ("getitem", lambda m, d: tuple(d["w"].shape)),
    ("delitem", lambda m, d: d.__delitem__("b")),
    ("pop", lambda m, d: tuple(d.pop("w").shape)),
    ("popitem", lambda m, d: d.popitem()[0]),
    ("get", lambda m, d: (d.get("zz", 3), tuple(d.get("b").shape))),
    ("setdefault", lambda m, d: (tuple(d.setdefault("q", m.ones(6)).shape),
                                 tuple(d.setdefault("w").shape))),
    ("update_dict_sorted", lambda m, d: d.update({"y": m.ones(1), "c": m.ones(1)})),
    ("update_pdict", lambda m, d: d.update(m.nn.ParameterDict(OrderedDict(y=m.ones(1))))),
    ("copy", lambda m, d: (_prepr(repr(d.copy())), d.copy()["w"] is d["w"])),
    ("fromkeys", lambda m, d: list(d.fromkeys(["x", "y"], m.ones(2)).keys())),
    ("or", lambda m, d: list((d | m.nn.ParameterDict({"zz": m.ones(1)})).keys())),
    ("ior", lambda m, d: d.__ior__(m.nn.ParameterDict({"zz": m.ones(1)})) is d),
    ("reversed", lambda m, d: list(reversed(d))),
    ("clear", lambda m, d: d.clear()),
    ("views", lambda m, d: (list(d.keys()), [k for k, _ in d.items()], len(d), "w" in d,
                            [type(v).__name__ for v in d.values()])),
]


@pytest.mark.parametrize("name,op", PDICT_OPS, ids=[s[0] for s in PDICT_OPS])
def test_parameter_dict_ops_match_torch(name, op):
    def run(m, C):
        d = m.nn.ParameterDict({"w": m.ones(2, 2), "b": m.nn.Parameter(m.zeros(2)),
                                "a": m.ones(1)})
        res = op(m, d)
        if isinstance(res, str):
            res = _prepr(res)
        return res, _prepr(repr(d)), names(d.named_parameters()), list(d.state_dict())
    e, t = both(run)
    assert e == t


PDICT_ERRORS = [
    ("missing", AttributeError, lambda m, d: d["zz"]),
    ("non_str_key", TypeError, lambda m, d: d[3]),
    ("update_not_iterable", TypeError, lambda m, d: d.update(3)),
    ("update_bad_length", ValueError, lambda m, d: d.update([("a",)])),
    ("update_bad_element", TypeError, lambda m, d: d.update([5])),
    ("call", RuntimeError, lambda m, d: d(m.ones(1))),
]


@pytest.mark.parametrize("name,exc,op", PDICT_ERRORS, ids=[s[0] for s in PDICT_ERRORS])
def test_parameter_dict_errors_match_torch(name, exc, op):
    same_error(exc, lambda m, C: op(m, m.nn.ParameterDict({"w": m.ones(2)})))


# ---- repr, copying, pickling ------------------------------------------------------------

def test_nested_repr_matches_torch():
    def run(m, C):
        n = C.Net()
        n.params = m.nn.ParameterList([m.ones(2), m.ones(3, dtype=m.float64)])
        n.pdict = m.nn.ParameterDict({"k": m.ones(1)})
        n.moddict = m.nn.ModuleDict({"x": C.Act(), "y": C.Counter()})
        n.empty_seq = m.nn.Sequential()
        n.empty_list = m.nn.ModuleList()
        return _prepr(repr(n)), repr(C.Affine(2, 3)), repr(C.Act()), repr(C.Counter())
    e, t = both(run)
    for a, b in zip(e, t):
        assert a == b


def test_repr_with_linear_and_relu():
    def run(m, C):
        nn = m.nn
        model = nn.Sequential(OrderedDict(
            fc1=nn.Linear(784, 512), act=nn.ReLU(),
            block=nn.Sequential(nn.Linear(512, 256, bias=False), nn.ReLU(inplace=True)),
            heads=nn.ModuleList([nn.Linear(256, 10) for _ in range(3)]),
            custom=C.Affine(3, 3)))
        return repr(model), list(model.state_dict())
    e, t = both(run)
    assert e == t


def test_deepcopy():
    def run(m, C):
        n = C.Shared()
        (n(m.ones(1, 3)) ** 2).sum().backward()
        n.eval()
        c = copy.deepcopy(n)
        info = (c.training, c.b.weight is c.a.weight, c.a.weight is not n.a.weight,
                type(c.a.weight).__name__, c.a.weight.requires_grad,
                c.a.weight.grad is None, c.a.scale is not n.a.scale,
                list(c.state_dict()) == list(n.state_dict()))
        with m.no_grad():
            c.a.weight.add_(1.0)
        return info, (n.a.weight - c.a.weight).abs().max().item()
    e, t = both(run)
    assert e == t and e[1] == 1.0


class PickleNet(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = ember.nn.Sequential(ember.nn.Module(), ember.nn.ModuleList())
        self.w = ember.nn.Parameter(ember.linspace(0, 1, 6).reshape(2, 3))
        self.frozen = ember.nn.Parameter(ember.ones(2), requires_grad=False)
        self.register_buffer("count", ember.tensor(3))
        self.register_buffer("tmp", ember.ones(1), persistent=False)
        self.plist = ember.nn.ParameterList([ember.ones(2)])

    def forward(self, x):
        return x @ self.w


def test_pickle_round_trip():
    n = PickleNet().eval()
    r = pickle.loads(pickle.dumps(n))
    assert type(r) is PickleNet and not r.training and not r.seq.training
    assert list(r.state_dict()) == list(n.state_dict())
    for (k, a), (_, b) in zip(r.state_dict().items(), n.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
        assert a.dtype == b.dtype
    assert isinstance(r.w, ember.nn.Parameter) and r.w.requires_grad
    assert not r.frozen.requires_grad and "tmp" in r._buffers
    assert r.tmp.numpy().tolist() == [1.0]
    out = r(ember.ones(1, 2))
    out.sum().backward()
    assert r.w.grad.tolist() == [[1.0] * 3] * 2 and n.w.grad is None
    assert repr(r) == repr(n)


def test_call_passes_kwargs_and_fast_path():
    e = E.Scale()
    out = e(ember.ones(3), k=4)
    np.testing.assert_allclose(out.detach().numpy(), np.linspace(0.5, 2.0, 3) * 4, rtol=1e-6)
    out2 = e(x=ember.ones(3), y=ember.ones(3))
    assert isinstance(out2, tuple) and len(out2) == 2
