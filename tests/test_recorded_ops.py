"""Recorded ops without ``Function.apply`` (``_recorded``/``_recorded1`` in ops/elementwise.py,
NOTE [ Recorded without apply ], issue 15).

``x + y``, ``x - y``, ``x * y``, ``x / y`` (a float32/64 tensor and a tensor of its dtype or a
Python float) and the unary ops that declare ``saves`` (relu, neg, tanh, exp, log, sigmoid ...)
build their node directly when recording.  Checked: the node equals the one ``cls.apply``
builds (class, edges, ``needs_input_grad``, ``meta``, saved entries with their versions), the
values and gradients are bit for bit the general path's and close to torch's, in-place changes
of saved tensors fail backward as in torch, and every case the path leaves to ``apply`` still
behaves: anomaly mode, inference tensors, saved-tensor hooks, modes (``make_fx``), shapes that
do not broadcast, warnings made errors, scalars the cache refuses, 0-d tensors.
"""
from __future__ import annotations

import operator
import warnings

import numpy as np
import pytest
import torch

import ember
from ember.ops import elementwise as ew
from ember.autograd.function import _IN, _OUT, _CONST

DTYPES = ["float32", "float64"]
BINARY = {"add": (operator.add, ew.Add), "sub": (operator.sub, ew.Sub),
          "mul": (operator.mul, ew.Mul), "div": (operator.truediv, ew.Div)}
SHAPES = [((3, 5), (3, 5)), ((3, 5), (5,)), ((3, 5), (3, 1)), ((2, 3, 5), (3, 5)), ((5,), ()),
          ((5,), (3, 5)), ((3, 1), (1, 4)), ((), (2, 3))]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (x / 1e-40 overflows)
UNARY = ["relu", "neg", "tanh", "exp", "sigmoid", "log", "sqrt", "sin", "deg2rad", "erf",
         "special_i0e"]


def _arr(shape, dtype, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(dtype)
    return np.abs(a) + 0.5 if positive else a


def _bits(t):
    return t.detach().numpy().tobytes()


def _entries(node):
    """A node's saved entries as comparable tuples (tensors by identity, arrays by bits)."""
    out = []
    for e in node._saved or ():
        if e[0] == _IN:
            out.append((_IN, id(e[1]), e[2][0], e[3]))
        elif e[0] == _OUT:
            out.append((_OUT, e[1].tobytes(), e[2], e[3][0], e[4]))
        else:
            out.append((_CONST, e[1]))
    return out


def _same_node(fast, general):
    """``fast`` (the operator's node) is built as ``general`` (``cls.apply``'s)."""
    assert type(fast) is type(general)
    assert fast.next_functions == general.next_functions
    assert fast.needs_input_grad == general.needs_input_grad
    assert getattr(fast, "meta", None) == getattr(general, "meta", None)
    fe, ge = _entries(fast), _entries(general)
    assert [e[0] for e in fe] == [e[0] for e in ge]
    for a, b in zip(fe, ge):  # (an output entry holds each call's own array and counter)
        assert a == b or a[0] == _OUT and a[1] == b[1] and a[2:] == b[2:]
    assert fast._record and fast._to_save is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_binary_node_values_and_grads_equal_the_general_path_and_torch(dtype, name, shapes,
                                                                         grads):
    op, cls = BINARY[name]
    a, b = _arr(shapes[0], dtype, 1), _arr(shapes[1], dtype, 2, positive=name == "div")
    x, y = ember.tensor(a, requires_grad=grads[0]), ember.tensor(b, requires_grad=grads[1])
    h = x * 1.5 if grads[0] else x  # (a non-leaf operand too)
    fast, general = op(h, y), cls.apply(h, y, h._data.dtype)  # (as the operator calls it)
    assert fast.grad_fn is not general.grad_fn
    _same_node(fast.grad_fn, general.grad_fn)
    assert fast.dtype == general.dtype and _bits(fast) == _bits(general)
    gf = ember.autograd.grad(fast.sum(), [t for t in (x, y) if t.requires_grad],
                             retain_graph=True)
    gg = ember.autograd.grad(general.sum(), [t for t in (x, y) if t.requires_grad])
    for p, q in zip(gf, gg):
        assert p.numpy().tobytes() == q.numpy().tobytes()
    xt, yt = torch.tensor(a, requires_grad=grads[0]), torch.tensor(b, requires_grad=grads[1])
    ht = xt * 1.5 if grads[0] else xt
    rt = op(ht, yt)
    gt = torch.autograd.grad(rt.sum(), [t for t in (xt, yt) if t.requires_grad])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.detach().numpy(), rt.detach().numpy(), **tol)
    for p, q in zip(gf, gt):
        np.testing.assert_allclose(p.numpy(), q.numpy(), **tol)
    assert fast.grad_fn.name() == rt.grad_fn.name()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("v", [0.05, -3.0, 2.0, 1e-40])
def test_binary_with_a_number_equals_the_general_path_and_torch(dtype, name, v):
    op, cls = BINARY[name]
    a = _arr((4, 6), dtype, 3)
    x = ember.tensor(a, requires_grad=True)
    fast, general = op(x, v), cls.apply(x, v, x._data.dtype)
    _same_node(fast.grad_fn, general.grad_fn)
    assert _bits(fast) == _bits(general)
    (g1,), (g2,) = ember.autograd.grad(fast.sum(), [x]), ember.autograd.grad(general.sum(), [x])
    assert g1.numpy().tobytes() == g2.numpy().tobytes()
    xt = torch.tensor(a, requires_grad=True)
    rt = op(xt, v)
    (gt,) = torch.autograd.grad(rt.sum(), [xt])
    np.testing.assert_array_equal(fast.detach().numpy(), rt.detach().numpy())
    np.testing.assert_allclose(g1.numpy(), gt.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary_node_values_and_grads_equal_the_general_path_and_torch(dtype, name):
    fn = getattr(ember, name) if hasattr(ember, name) else getattr(ember.special, name[8:])
    cls = {"special_i0e": "I0e"}.get(name, name.capitalize())
    cls = getattr(ew, cls, None) or getattr(ember.ops.special, cls)
    a = _arr((4, 6), dtype, 4, positive=name in ("log", "sqrt"))
    a[0, :3] = [0.0, -0.0, 2.0] if name not in ("log", "sqrt") else [1.0, 0.5, 2.0]
    x = ember.tensor(a, requires_grad=True)
    h = x * 1.0
    fast, general = fn(h), cls.apply(h)
    _same_node(fast.grad_fn, general.grad_fn)
    assert _bits(fast) == _bits(general)
    gout = ember.tensor(_arr((4, 6), dtype, 5))
    (g1,), (g2,) = (ember.autograd.grad(r, [x], gout, retain_graph=True)
                    for r in (fast, general))
    assert g1.numpy().tobytes() == g2.numpy().tobytes()
    tfn = getattr(torch, name) if hasattr(torch, name) else getattr(torch.special, name[8:])
    xt = torch.tensor(a, requires_grad=True)
    rt = tfn(xt * 1.0)
    (gt,) = torch.autograd.grad(rt, [xt], torch.tensor(gout.numpy()))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.detach().numpy(), rt.detach().numpy(), **tol)
    np.testing.assert_allclose(g1.numpy(), gt.numpy(), **tol)
    assert fast.grad_fn.name() == rt.grad_fn.name()


@pytest.mark.parametrize("mod", [ember, torch])
def test_in_place_change_of_a_saved_tensor_fails_backward_as_torch(mod):
    x = mod.ones(3, 4, requires_grad=True)
    w = mod.full((4,), 2.0, requires_grad=True)
    h = x * 1.0
    y = h * w
    with mod.no_grad():
        w.add_(1)
    with pytest.raises(RuntimeError, match="is at version 1; expected version 0"):
        y.sum().backward()
    t = (x * 1.0).tanh()  # a saved output
    r = t * 1.0
    with mod.no_grad():
        t.mul_(2)
    with pytest.raises(RuntimeError, match="output 0 of Tanh, is at version 1"):
        r.sum().backward()
    z = (x * 1.0).relu()  # relu's saved result, changed in place by the user
    u = z + 0.0
    z.add_(1.0)
    with pytest.raises(RuntimeError, match="output 0 of Relu, is at version 1"):
        u.sum().backward()


def test_add_and_sub_save_nothing_and_survive_changes_of_their_operands():
    x = ember.ones(3, 4, requires_grad=True)
    b = ember.ones(4, requires_grad=True)
    h = x * 1.0
    y = (h + b) - 2.0
    assert y.grad_fn._saved is None and y.grad_fn.next_functions[0][0]._saved is None
    with ember.no_grad():
        b.mul_(5)
    y.sum().backward()
    assert x.grad.tolist() == [[1.0] * 4] * 3 and b.grad.tolist() == [3.0] * 4


def test_anomaly_mode_records_the_forward_trace():
    x = ember.ones(2, 3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ember.autograd.detect_anomaly():
            for y in (x * 2.0, x + x, x.relu(), x.tanh()):
                assert y.grad_fn._trace and "test_recorded_ops" in y.grad_fn._trace
    assert (x * 2.0).grad_fn._trace is None


@pytest.mark.parametrize("mod", [ember, torch])
def test_inference_tensors_cannot_be_saved_as_torch(mod):
    with mod.inference_mode():
        c = mod.ones(3)
    x = mod.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        x * c
    y = x + c  # (add saves nothing: allowed)
    assert y.requires_grad
    with mod.inference_mode():
        ci = mod.ones(3).requires_grad_(False)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        (x * 1.0) / ci


@pytest.mark.parametrize("mod", [ember, torch])
def test_saved_tensor_hooks_see_every_saved_tensor(mod):
    packed = []

    def pack(t):
        packed.append(tuple(t.shape))
        return t

    x = mod.ones(2, 3, requires_grad=True)
    w = mod.ones(3, requires_grad=True)
    with mod.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = ((x * w) / 2.0).tanh().relu()
    # x and w (mul), tanh's and relu's results (torch packs w before x)
    assert sorted(packed) == [(2, 3), (2, 3), (2, 3), (3,)]
    y.sum().backward()
    assert x.grad is not None


def test_make_fx_sees_every_op():
    from ember.fx.experimental.proxy_tensor import make_fx

    def f(x, b):
        return ((x + b) * 2.0 - x / b).relu().tanh().neg()

    x = ember.ones(2, 3, requires_grad=True)
    b = ember.full((3,), 2.0, requires_grad=True)
    gm = make_fx(f)(x, b)
    names = [str(n.target).split(".")[-1] for n in gm.graph.nodes if n.op == "call_function"]
    assert names == ["add", "mul", "div", "sub", "relu", "tanh", "neg"]


@pytest.mark.parametrize("mod", [ember, torch])
def test_shapes_that_do_not_broadcast_raise_torchs_error(mod):
    x = mod.ones(3, 4, requires_grad=True)
    for op in (operator.add, operator.sub, operator.mul, operator.truediv):
        with pytest.raises(RuntimeError, match=r"The size of tensor a \(4\) must match the size "
                                                r"of tensor b \(3\) at non-singleton dimension 1"):
            op(x, mod.ones(3))


@pytest.mark.parametrize("name", list(BINARY))
def test_warnings_made_errors_give_the_ieee_result(name):
    op = BINARY[name][0]
    x = ember.tensor([1e30, -1e30, 0.0], dtype=ember.float32, requires_grad=True)
    y = ember.tensor([1e30, 1e30, 0.0], dtype=ember.float32, requires_grad=True)
    xt = torch.tensor(x.tolist(), requires_grad=True)
    yt = torch.tensor(y.tolist(), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            r = op(x * 1e10, y)
            rs = op(x, 1e30)
    np.testing.assert_array_equal(r.detach().numpy(), op(xt * 1e10, yt).detach().numpy())
    np.testing.assert_array_equal(rs.detach().numpy(), op(xt, 1e30).detach().numpy())
    assert r.grad_fn.name() == op(xt, yt).grad_fn.name()


@pytest.mark.parametrize("v", [0.0, -0.0, float("inf"), float("nan"), 1e300])
@pytest.mark.parametrize("name", list(BINARY))
def test_scalars_the_cache_refuses_equal_torch(name, v):
    op = BINARY[name][0]
    a = np.array([[1.5, -2.0, 0.0], [3.0, -0.0, 1e-3]], np.float32)
    x, xt = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    r, rt = op(x, v), op(xt, v)
    np.testing.assert_array_equal(r.detach().numpy(), rt.detach().numpy())
    (g,), (gt,) = ember.autograd.grad(r.sum(), [x]), torch.autograd.grad(rt.sum(), [xt])
    np.testing.assert_array_equal(g.numpy(), gt.numpy())


def test_zero_dim_and_other_dtype_operands():
    x = ember.tensor(2.0, requires_grad=True)
    y = ember.tensor(3.0, requires_grad=True)
    r = x * y + x / 2.0
    assert type(r._data) is np.ndarray and r.shape == ()
    r.backward()
    assert x.grad.item() == 3.5 and y.grad.item() == 2.0
    h = ember.ones(2, dtype=ember.float64, requires_grad=True)
    assert (h * ember.ones(2, dtype=ember.float32)).dtype == ember.float64
    assert (h.float() * 2).dtype == ember.float32  # (an int: the general path)
    assert (2.0 * h).grad_fn.name() == "MulBackward0"  # (reflected: the general path)
    assert ember.relu(ember.tensor([-1.0, 2.0], requires_grad=True)).grad_fn.name() == \
        "ReluBackward0"


def test_the_direct_paths_are_taken_where_they_apply():
    x = ember.ones(2, 3, requires_grad=True)
    w = ember.ones(3, requires_grad=True)
    d = x._data
    for cls, ufunc in ((ew.Add, "add"), (ew.Sub, "subtract"), (ew.Mul, "multiply"),
                       (ew.Div, "true_divide")):
        for other in (w, 0.5):
            r = ew._recorded(cls, ufunc, x, other, d, d.dtype)
            assert r is not None and type(r.grad_fn) is cls
    for cls in (ew.Relu, ew.Neg, ew.Tanh, ew.Exp, ew.Log):
        assert type(ew._recorded1(cls, x).grad_fn) is cls
    assert ew._recorded(ew.Mul, "multiply", x, 0.0, d, d.dtype) is None  # (not cached)
    with ember.inference_mode():
        assert ew._recorded1(ew.Relu, x) is None


@pytest.mark.parametrize("mod", [ember, torch])
def test_views_and_non_contiguous_operands_as_torch(mod):
    a = np.arange(12.0).reshape(3, 4) / 7
    x = mod.tensor(a, requires_grad=True)
    base = x * 1.0
    v = base.t()  # a non-contiguous view saved by mul
    w = mod.tensor(a.T.copy(), requires_grad=True)
    y = (v * w / (v + 2.0)).tanh()
    y.sum().backward(retain_graph=True)
    g = x.grad.numpy().copy()
    x.grad = None
    with mod.no_grad():
        base.add_(1)  # bumps the view's shared version counter
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    ref = torch.tensor(a, requires_grad=True)
    rv = (ref * 1.0).t()
    ((rv * torch.tensor(a.T.copy()) / (rv + 2.0)).tanh()).sum().backward()
    np.testing.assert_allclose(g, ref.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "exp"])
def test_lean_backwards_read_what_the_unpack_hook_gives_as_torch(name):
    grads = []
    for mod in (ember, torch):
        x = mod.tensor([-1.0, 0.5, 2.0], requires_grad=True)
        with mod.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t * 0 + 0.5):
            y = getattr(mod, name)(x * 1.0)
        y.backward(mod.ones(3, dtype=mod.float32), retain_graph=True)
        grads.append(x.grad.tolist())
        y.backward(mod.ones(3, dtype=mod.float32))  # (hooks keep no freed state)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.backward(mod.ones(3, dtype=mod.float32))
    assert grads[0] == grads[1]
