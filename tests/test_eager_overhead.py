"""The fast paths that cut eager overhead keep PyTorch's semantics (issue 15, eager overhead).

Covers: the fused tanh/sigmoid gradient nodes (values, half-precision rounding, node names,
double backward), full reductions whose NumPy result is a scalar, gradients of broadcast
operands summed back without re-validation, and the float operators' promotion shortcut.
"""
from __future__ import annotations

import operator
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6),
       "float16": dict(rtol=1e-3, atol=1e-3), "bfloat16": dict(rtol=1e-2, atol=1e-2)}


def _pair(arr, dtype, requires_grad=True):
    """The same values as an ember and a torch tensor of ``dtype``."""
    t = torch.from_numpy(arr.copy()).to(getattr(torch, dtype)).requires_grad_(requires_grad)
    e = ember.from_numpy(arr.copy()).to(getattr(ember, dtype)).requires_grad_(requires_grad)
    return e, t


def _np(t):
    return np.asarray(t.detach().to(torch.float64).numpy() if isinstance(t, torch.Tensor)
                      else t.detach().to(ember.float64).numpy())


def _close(e, t, dtype):
    np.testing.assert_allclose(_np(e), _np(t), **TOL[dtype])


# ---- fused tanh / sigmoid gradients ---------------------------------------------------------

@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_fused_activation_grad_matches_torch(name, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)) * 2
    g = rng.standard_normal((7, 5))
    xe, xt = _pair(x, dtype)
    ge, gt = _pair(g, dtype, requires_grad=False)
    (gxe,) = ember.autograd.grad(getattr(xe, name)(), xe, ge)
    (gxt,) = torch.autograd.grad(getattr(xt, name)(), xt, gt)
    assert gxe.dtype == getattr(ember, dtype)
    _close(gxe, gxt, dtype)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_fused_activation_grad_rounds_once_in_half(name, dtype):
    """PyTorch computes tanh_backward/sigmoid_backward in float32 and rounds once."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(512) * 2
    g = rng.standard_normal(512)
    xe, xt = _pair(x, dtype)
    ge, gt = _pair(g, dtype, requires_grad=False)
    (gxe,) = ember.autograd.grad(getattr(xe, name)(), xe, ge)
    (gxt,) = torch.autograd.grad(getattr(xt, name)(), xt, gt)
    mismatch = np.mean(_np(gxe) != _np(gxt))
    assert mismatch < 0.01, f"{mismatch:.1%} of {dtype} gradients differ from PyTorch's"


@pytest.mark.parametrize("name, node", [("tanh", "TanhBackwardBackward0"),
                                        ("sigmoid", "SigmoidBackwardBackward0")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fused_activation_double_backward(name, node, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 3))
    xe, xt = _pair(x, dtype)
    ge, gt = _pair(g, dtype)  # the upstream gradient requires grad too: both edges used
    (gxe,) = ember.autograd.grad(getattr(xe, name)(), xe, ge, create_graph=True)
    (gxt,) = torch.autograd.grad(getattr(xt, name)(), xt, gt, create_graph=True)
    assert gxe.grad_fn.name() == gxt.grad_fn.name() == node
    w = rng.standard_normal((4, 3))
    we, wt = _pair(w, dtype, requires_grad=False)
    dxe, dge = ember.autograd.grad((gxe * we).sum(), (xe, ge))
    dxt, dgt = torch.autograd.grad((gxt * wt).sum(), (xt, gt))
    _close(dxe, dxt, dtype)
    _close(dge, dgt, dtype)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_fused_activation_gradgradcheck(name):
    x = ember.tensor(np.random.default_rng(3).standard_normal((3, 2)), requires_grad=True)
    fn = getattr(ember, name)
    assert ember.autograd.gradcheck(fn, (x,))
    assert ember.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_fused_activation_complex_grad_matches_torch(name):
    rng = np.random.default_rng(4)
    z = (rng.standard_normal(6) + 1j * rng.standard_normal(6)) * 0.5
    ze = ember.tensor(z, requires_grad=True)
    zt = torch.tensor(z, requires_grad=True)
    (ge,) = ember.autograd.grad(getattr(ze, name)().abs().sum(), ze)
    (gt,) = torch.autograd.grad(getattr(zt, name)().abs().sum(), zt)
    np.testing.assert_allclose(ge.detach().numpy(), gt.detach().numpy(), rtol=1e-10)


def test_fused_activation_grad_sees_inplace_change_of_output():
    """The fused node reads tanh's saved output: changing it in place fails backward."""
    x = ember.randn(3, requires_grad=True)
    y = x.tanh()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


# ---- full reductions: NumPy returns a scalar ----------------------------------------------

@pytest.mark.parametrize("op", ["sum", "mean", "prod", "amax", "norm", "logsumexp"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_full_reduction_result_and_grad(op, dtype):
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, (3, 4))
    xe, xt = _pair(x, dtype)
    args = (tuple(range(2)),) if op == "logsumexp" else ()
    ye, yt = getattr(xe, op)(*args), getattr(xt, op)(*args)
    assert isinstance(ye, ember.Tensor) and ye.dim() == 0 and ye.dtype == getattr(ember, dtype)
    assert ye.grad_fn.name() == yt.grad_fn.name()
    _close(ye, yt, dtype)
    ye.backward()
    yt.backward()
    _close(xe.grad, xt.grad, dtype)


def test_full_sum_backward_graph_as_torch():
    """PyTorch's sum_backward expands a 0-d gradient directly (no reshape node first)."""
    xe, xt = ember.ones(2, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)
    we, wt = ember.tensor(2.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    (ge,) = ember.autograd.grad(xe.sum(), xe, we, create_graph=True)
    (gt,) = torch.autograd.grad(xt.sum(), xt, wt, create_graph=True)
    assert ge.grad_fn.name() == gt.grad_fn.name() == "ExpandBackward0"
    _close(ge, gt, "float64")
    (ge * ge).sum().backward()
    (gt * gt).sum().backward()
    _close(we.grad, wt.grad, "float64")


@pytest.mark.parametrize("dim, keepdim", [(0, False), (1, True), ((0, 1), False), (-1, False)])
def test_partial_reduction_grad(dim, keepdim):
    x = np.random.default_rng(6).standard_normal((3, 4))
    xe, xt = _pair(x, "float64")
    (xe.sum(dim, keepdim=keepdim) * 2).sum().backward()
    (xt.sum(dim, keepdim=keepdim) * 2).sum().backward()
    _close(xe.grad, xt.grad, "float64")


# ---- broadcast operands: gradients summed back to shape ---------------------------------

_dims = st.integers(1, 4)


@st.composite
def _broadcast_pair(draw):
    """Two shapes that broadcast: each dim of ``b`` is ``a``'s or 1; ``b`` may be shorter."""
    a = draw(st.lists(_dims, min_size=1, max_size=3))
    keep = draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a)))
    b = [n if k else 1 for n, k in zip(a, keep)][draw(st.integers(0, len(a) - 1)):]
    return tuple(a), tuple(b)


@settings(max_examples=25, deadline=None)
@given(shapes=_broadcast_pair(), op=st.sampled_from(["add", "sub", "mul", "div"]),
       swap=st.booleans(), dtype=st.sampled_from(["float64", "float32"]))
def test_broadcast_grads_match_torch(shapes, op, swap, dtype):
    sa, sb = shapes[::-1] if swap else shapes
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.5, 2, sa), rng.uniform(0.5, 2, sb)
    ae, at = _pair(a, dtype)
    be, bt = _pair(b, dtype)
    getattr(ember, op)(ae, be).tanh().sum().backward()
    getattr(torch, op)(at, bt).tanh().sum().backward()
    assert tuple(ae.grad.shape) == sa and tuple(be.grad.shape) == sb
    _close(ae.grad, at.grad, dtype)
    _close(be.grad, bt.grad, dtype)


def test_broadcast_grad_to_other_dtype():
    """A float32 (64,) bias added to a float64 (2, 64) input gets a float32 gradient."""
    xe = ember.randn(2, 64, dtype=ember.float64, requires_grad=True)
    be = ember.randn(64, dtype=ember.float32, requires_grad=True)
    (xe + be).sum().backward()
    assert be.grad.dtype == ember.float32 and tuple(be.grad.shape) == (64,)
    np.testing.assert_allclose(be.grad.numpy(), 2.0)


def test_broadcast_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match the size of "
                                           r"tensor b \(4\) at non-singleton dimension 1"):
        ember.ones(2, 3) + ember.ones(2, 4)


# ---- the float operators' promotion shortcut ----------------------------------------------

_OPERANDS = [
    ("float32", 2.5), ("float64", 2.5), ("float16", 2.5), ("bfloat16", 2.5),
    ("float32", 3), ("int64", 2.5), ("int32", 3), ("bool", 2.5), ("float32", True),
    ("float32", ("float32", (2, 3))), ("float32", ("float64", (2, 3))),
    ("float32", ("float64", ())), ("float16", ("float32", ())), ("int64", ("float32", (2, 3))),
    ("float32", ("int64", (2, 3))), ("float64", ("float32", (2, 3))),
    ("float32", 1 + 2j), ("float32", ("complex64", (2, 3))),
]


def _operand(spec, mod):
    if not isinstance(spec, tuple):
        return spec
    dtype, shape = spec
    return mod.ones(shape, dtype=getattr(mod, dtype)) * 2


@pytest.mark.parametrize("dtype, other", _OPERANDS)
@pytest.mark.parametrize("op", ["__add__", "__radd__", "__sub__", "__mul__", "__rmul__",
                                "__truediv__"])
def test_operator_promotion_matches_torch(dtype, other, op):
    xe = ember.ones(2, 3, dtype=getattr(ember, dtype)) * 3
    xt = torch.ones(2, 3, dtype=getattr(torch, dtype)) * 3
    oe, ot = _operand(other, ember), _operand(other, torch)
    try:
        rt = getattr(xt, op)(ot)
    except RuntimeError as err:
        with pytest.raises(RuntimeError, match=re.escape(str(err)[:40])):
            getattr(xe, op)(oe)
        return
    res = getattr(xe, op)(oe)
    assert res.dtype.name == str(rt.dtype).split(".")[-1]
    np.testing.assert_allclose(res.to(ember.complex128).numpy(),
                               rt.to(torch.complex128).numpy(), rtol=1e-2)


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv])
@pytest.mark.parametrize("other", ["a", None, [1.0], object()])
def test_operator_bad_operand_is_type_error(op, other):
    with pytest.raises(TypeError):
        op(torch.ones(2), other)
    with pytest.raises(TypeError):
        op(ember.ones(2), other)


def test_numpy_scalar_operand_promotes_as_python_number():
    res, rt = ember.ones(2) * np.float64(2.0), torch.ones(2) * np.float64(2.0)
    assert res.dtype == ember.float32 and rt.dtype == torch.float32


def test_inference_mode_result_of_fast_path():
    with ember.inference_mode():
        y = ember.ones(3) * 2.0
    assert y.is_inference() and not y.requires_grad


# ---- relu's forward against a zero array ----------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "transposed", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "float16"])
def test_relu_values_and_layout_match_torch(layout, dtype):
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 5)) * 3
    x[0, 0, 0, :3] = [np.nan, -np.inf, np.inf] if dtype != "int64" else [1, -1, 0]
    xe, xt = _pair(x, dtype, requires_grad=False)
    if layout == "transposed":
        xe, xt = xe.transpose(1, 3), xt.transpose(1, 3)
    elif layout == "channels_last":
        xe = xe.contiguous(memory_format=ember.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        xe, xt = xe[:, ::2], xt[:, ::2]
    ye, yt = xe.relu(), xt.relu()
    assert ye.stride() == yt.stride() and ye.dtype.name == str(yt.dtype).split(".")[-1]
    np.testing.assert_array_equal(_np(ye), _np(yt))


def test_sparse_full_sum_keeps_the_backend_path():
    """The fast paths stay xp-generic: a sparse COO array has no ``.sum`` method."""
    dense = [[1.0, -2.0], [0.0, 3.0]]
    se, st = ember.tensor(dense).to_sparse(), torch.tensor(dense).to_sparse()
    assert se.sum().item() == st.sum().item() == 2.0


# ---- no-node paths: nothing to record and no mode (second pass) ------------------------------
# Arithmetic operators whose operands need no gradient (or under no_grad), and backward
# formulas run without create_graph, call their array formula without building a node.

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@pytest.mark.parametrize("grad_mode", ["no_grad", "no_requires_grad"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((), ())])
@pytest.mark.parametrize("op", list(_OPS))
def test_operator_without_node_matches_torch(op, shapes, dtype, grad_mode):
    rng = np.random.default_rng(2)
    a, b = (rng.uniform(0.5, 2.0, s) for s in shapes)
    ae, at = _pair(a, dtype, requires_grad=grad_mode == "no_grad")
    be, bt = _pair(b, dtype, requires_grad=False)
    fn = _OPS[op]
    for x, y in ((ae, be), (be, ae), (ae, 1.5), (1.5, ae)):  # tensor-tensor, reflected
        with ember.no_grad():
            e = fn(x, y)
        with torch.no_grad():
            t = fn(*(at if v is ae else bt if v is be else v for v in (x, y)))
        assert e.dtype == getattr(ember, dtype) and tuple(e.shape) == tuple(t.shape)
        assert e.grad_fn is None and not e.requires_grad and e.is_leaf
        np.testing.assert_array_equal(_np(e), _np(t))  # the same single rounding as torch


def test_operator_without_node_keeps_errors_and_modes():
    x, y = ember.ones(2, 3), ember.ones(4)
    with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match the size of "
                                           r"tensor b \(4\) at non-singleton dimension 1"):
        x + y
    with ember.no_grad(), pytest.raises(RuntimeError, match="must match the size"):
        x * y
    with np.errstate(all="raise"), ember.no_grad():  # errors made of warnings: the quiet path
        r = ember.tensor([1.0, -1.0, 0.0]) / ember.tensor([0.0, 0.0, 0.0])
    assert np.isinf(r.numpy()[:2]).all() and np.isnan(r.numpy()[2])
    with ember.inference_mode():
        assert (x * 2.0).is_inference() and (x + x).is_inference()
    from ember.utils._python_dispatch import TorchDispatchMode

    class Names(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.__name__)
            return func(*args, **(kwargs or {}))
    seen = []
    with ember.no_grad(), Names():
        x * 2.0 + x
    assert seen == ["mul", "add"]  # a mode still sees each operator


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backward_without_graph_matches_torch(dtype):
    """relu/tanh/sigmoid/neg/sub/mul backward formulas and broadcast sums, without a node."""
    rng = np.random.default_rng(3)
    vals = [rng.standard_normal((5, 6)), rng.standard_normal(6), rng.uniform(0.5, 1.5, (5, 1))]
    grads = {}
    for m in (ember, torch):
        x, bias, scale = (m.from_numpy(v.copy()).to(getattr(m, dtype)).requires_grad_()
                          for v in vals)
        h = ((x + bias) * scale).relu() - bias
        h = (-(h.tanh() - scale)).sigmoid() * x
        h = 0.5 - h * 2.0
        h.sum(1).mean().backward()
        grads[m.__name__] = [_np(p.grad) for p in (x, bias, scale)]
        assert all(p.grad.dtype == getattr(m, dtype) for p in (x, bias, scale))
    for ge, gt in zip(grads["ember"], grads["torch"]):
        np.testing.assert_allclose(ge, gt, **TOL[dtype])


@pytest.mark.parametrize("name", ["relu", "neg", "sub"])
def test_backward_with_create_graph_still_builds_nodes(name):
    """With create_graph the same formulas record nodes, so second derivatives match."""
    out = {}
    for m in (ember, torch):
        x = m.tensor([0.5, -1.0, 2.0], dtype=m.float64, requires_grad=True)
        w = m.tensor([1.5, 2.0, -0.5], dtype=m.float64, requires_grad=True)
        f = {"relu": lambda: (x * w).relu() * x, "neg": lambda: -(x * x * w),
             "sub": lambda: w - x * x * w}[name]()
        (g,) = m.autograd.grad(f.sum(), x, create_graph=True)
        assert g.grad_fn is not None
        (gg,) = m.autograd.grad(g.sum(), w)
        out[m.__name__] = (_np(g), _np(gg))
    for e, t in zip(out["ember"], out["torch"]):
        np.testing.assert_allclose(e, t, rtol=1e-12)


def test_backward_without_graph_dispatch_mode_sees_its_ops():
    """A dispatch mode (make_fx, the profiler) still sees each backward op as a node."""
    from ember.utils._python_dispatch import TorchDispatchMode

    class Names(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.__name__)
            return func(*args, **(kwargs or {}))
    x = ember.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    b = ember.tensor([0.5, -1.0], requires_grad=True)
    seen = []
    with Names():
        (-((x + b).relu().tanh())).sum().backward()
    assert {"threshold_backward", "tanh_backward", "neg", "sum_to_size"} <= set(seen)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_relu_grad_of_huge_finite_values_and_infinities(dtype):
    """The finiteness test of relu's gradient: huge finite terms, and inf * 0 masked to 0."""
    big = float(np.finfo(dtype).max) / 2
    cases = [([big, big, big, -1.0], [1.0, 1.0, 1.0, 2.0]),       # their sum would overflow
             ([np.inf, -np.inf, np.nan, 1.0], [-1.0, 0.0, -2.0, 3.0])]  # masked inf/nan -> 0
    for g, y in cases:
        ge, gt = _pair(np.array(g), dtype, requires_grad=False)
        xe, xt = _pair(np.array(y), dtype)
        with np.errstate(invalid="ignore"):  # (pytest resets ember's module warning filter)
            (re,) = ember.autograd.grad(xe.relu(), xe, ge)
        (rt,) = torch.autograd.grad(xt.relu(), xt, gt)
        np.testing.assert_array_equal(_np(re), _np(rt))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("shape, dim", [((4097,), None), ((3, 2049), 1), ((5, 6, 7), (0, 2)),
                                        ((4, 5), 0), ((), None)])
def test_sum_and_mean_by_ufunc_reduce(shape, dim, dtype):
    """Sum/mean through the add ufunc's reduce: NumPy's sum/mean numbers, torch's dtypes."""
    a = np.random.default_rng(4).standard_normal(shape).astype(dtype)
    e, t = ember.from_numpy(a.copy()), torch.from_numpy(a.copy())
    axis = tuple(range(a.ndim)) if dim is None else dim
    for name, ref in (("sum", np.sum), ("mean", np.mean)):
        re = getattr(e, name)() if dim is None else getattr(e, name)(dim)
        rt = getattr(t, name)() if dim is None else getattr(t, name)(dim)
        assert re.dtype == getattr(ember, dtype) and tuple(re.shape) == tuple(rt.shape)
        np.testing.assert_array_equal(re.numpy(), ref(a, axis=axis, dtype=a.dtype))
        tol = {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
        np.testing.assert_allclose(_np(re), _np(rt), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_integer_sum_by_ufunc_reduce_promotes_as_torch(dtype):
    a = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    for dim in (None, 0, (0, 1)):
        re = ember.from_numpy(a.copy()).sum(dim)
        rt = torch.from_numpy(a.copy()).sum(dim)
        assert str(re.dtype) == str(rt.dtype).replace("torch", "ember")
        np.testing.assert_array_equal(re.numpy(), rt.numpy())


def test_reductions_and_grad_stay_on_another_device():
    """The ufunc paths keep a device array's type (tests/fake_device.py, CuPy-like)."""
    import fake_device
    dev = fake_device.register()
    try:
        x = ember.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], device=dev, requires_grad=True)
        b = ember.tensor([1.0, 2.0, 3.0], device=dev, requires_grad=True)
        y = ((x + b).relu().tanh() * 2.0 - b)
        for r in (y.sum(), y.mean(), y.sum(0), y.mean(1, keepdim=True)):
            assert r.device == dev
        with ember.no_grad():
            assert (x * 2.0 + x).device == dev
        (-y.sigmoid()).mean().backward()
        assert x.grad.device == dev and b.grad.device == dev
        xt = torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], requires_grad=True)
        bt = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        (-(((xt + bt).relu().tanh() * 2.0 - bt).sigmoid())).mean().backward()
        np.testing.assert_allclose(x.grad.cpu().numpy(), xt.grad.numpy(), **TOL["float32"])
        np.testing.assert_allclose(b.grad.cpu().numpy(), bt.grad.numpy(), **TOL["float32"])
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            with ember.no_grad():
                x * ember.ones(3)
    finally:
        fake_device.unregister()


@pytest.mark.parametrize("reduce, dim, keepdim", [("sum", None, False), ("mean", None, False),
                                                  ("sum", 1, False), ("mean", 0, True),
                                                  ("sum", (0, 2), False)])
def test_reduction_backward_without_graph_is_torchs_expanded_view(reduce, dim, keepdim):
    """Sum/mean's backward without nodes: a hook sees torch's gradient (sum's an expanded,
    stride-0 view; mean's dense, ``expand / numel``), and ``.grad`` is writable memory."""
    a = np.random.default_rng(5).standard_normal((2, 3, 4))
    seen = {}
    for m in (ember, torch):
        x = m.from_numpy(a.copy()).requires_grad_()
        x.register_hook(lambda g, m=m: seen.update({m.__name__: (g.stride(), _np(g).copy())}))
        r = getattr(x, reduce)() if dim is None else getattr(x, reduce)(dim, keepdim=keepdim)
        r.sum().backward()
        x.grad.add_(1.0)  # its own memory, not the broadcast view
        seen[m.__name__ + ".grad"] = (x.grad.stride(), _np(x.grad))
    for key in ("ember", "ember.grad"):
        other = seen[key.replace("ember", "torch")]
        assert seen[key][0] == other[0]
        np.testing.assert_allclose(seen[key][1], other[1], rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_relu_grad_passes_nan_inputs(dtype, create_graph):
    """PyTorch's threshold_backward passes ``g`` where not (y <= 0): a NaN input's gradient is
    ``g``, also in the double backward (ThresholdBackwardBackward0)."""
    x = np.array([np.nan, 1.5, -1.0, 0.0, -0.0, np.inf, -np.inf])
    g = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    xe, xt = _pair(x, dtype)
    ge, gt = _pair(g, dtype, requires_grad=create_graph)
    (re,) = ember.autograd.grad(xe.relu(), xe, ge, create_graph=create_graph)
    (rt,) = torch.autograd.grad(xt.relu(), xt, gt, create_graph=create_graph)
    np.testing.assert_array_equal(_np(re), _np(rt))
    assert np.isnan(_np(xe.relu())[0]) and _np(re)[0] == 2.0
    if create_graph:
        (gge,) = ember.autograd.grad(re.sum(), ge)
        (ggt,) = torch.autograd.grad(rt.sum(), gt)
        np.testing.assert_array_equal(_np(gge), _np(ggt))


def test_relu_grad_passes_nan_inputs_compiled():
    """The compiled backward's relu gradient (codegen's ``relu_grad_into``) is eager's."""
    from ember._dynamo.eval_frame import _CACHE
    x = np.array([[np.nan, 1.5, -1.0, 0.0], [2.0, np.nan, -3.0, 0.5]], dtype=np.float32)
    w = np.random.default_rng(5).standard_normal((2, 4)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    wt = torch.from_numpy(w.copy())
    ((torch.relu(xt) * wt).relu() - wt).sum().backward()
    ember.compiler.reset()
    try:
        fn = ember.compile(lambda x, w: ((x.relu() * w).relu() - w).sum(), backend="inductor")
        for _ in range(3):
            xe = ember.from_numpy(x.copy()).requires_grad_()
            with np.errstate(invalid="ignore"):
                fn(xe, ember.from_numpy(w.copy())).backward()
            np.testing.assert_array_equal(_np(xe.grad), _np(xt.grad))
        src = [e for c in _CACHE.values() for e in c.entries.values()][-1].compiled.backward_src
        assert "_relu_grad(" in src
    finally:
        ember.compiler.reset()


# ---- the forward's lean saving and edges (function.py) ---------------------------------------

def _modified_error(lib, case):
    """The RuntimeError of a backward through a saved tensor changed in place, or None."""
    x = lib.ones(3, requires_grad=True)
    if case == "input":            # a saved non-leaf input
        y = x * 1.0
        z = y * y
        y.add_(1)
    elif case == "view_of_input":  # a view saved; its base changed in place
        y = x * 1.0
        v = y[:2]
        z = v * v
        y.add_(1)
    elif case == "output":         # exp saves its result
        z = (x * 1.0).exp()
        z.mul_(2)
    else:                          # a leaf saved (mul by it), the leaf changed under no_grad
        w = lib.ones(3, requires_grad=True)
        z = x * w
        with lib.no_grad():
            w.add_(1)
    try:
        z.sum().backward()
    except RuntimeError as e:
        return str(e)
    return None


@pytest.mark.parametrize("case", ["input", "view_of_input", "output", "leaf"])
def test_saved_tensor_version_checks_match_torch(case):
    """Saved inputs (leaves, views) and outputs keep their version: in-place changes fail."""
    me, mt = _modified_error(ember, case), _modified_error(torch, case)
    assert me is not None and mt is not None
    pat = r"modified by an inplace operation: \[.*\[(\d+)\]\].* is at version (\d+); expected " \
          r"version (\d+) instead"
    assert re.search(pat, me).groups() == re.search(pat, mt).groups()


def test_saved_tensors_hooks_and_inference_tensors_still_apply():
    """The lean saving still hands saved tensors to saved_tensors_hooks, and refuses an
    inference tensor with PyTorch's error."""
    packed = []
    x = ember.ones(3, requires_grad=True)
    with ember.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t,
                                                  lambda t: t):
        y = (x * 2.0).tanh()
    assert len(packed) == 1  # tanh's result
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (1 - np.tanh(2.0) ** 2), rtol=1e-6)
    with ember.inference_mode():
        c = ember.ones(3)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        x * c


def test_a_leaf_used_twice_has_one_accumulate_grad():
    """Both edges to a leaf are its one cached AccumulateGrad node, as in PyTorch."""
    for lib in (ember, torch):
        x = lib.ones(3, requires_grad=True)
        y, z = x * 2.0, x.exp()
        assert y.grad_fn.next_functions[0][0] is z.grad_fn.next_functions[0][0]
        (y + z).sum().backward()
        np.testing.assert_allclose(np.asarray(x.grad.detach().numpy(), float),
                                   2 + np.e, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int64", "int8", "bool", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "sqrt"])
def test_unary_dtypes_match_torch(name, dtype):
    """_Unary's one dtype test: ints and bool compute in the default float dtype, half
    precision in float32 rounded once, as PyTorch."""
    a = np.array([0, 1, 3, 2, 1])
    xe = ember.tensor(a).to(getattr(ember, dtype))
    xt = torch.tensor(a).to(getattr(torch, dtype))
    re_, rt = getattr(xe, name)(), getattr(xt, name)()
    out = str(rt.dtype).split(".")[1]
    assert str(re_.dtype).split(".")[1] == out
    _close(re_, rt, out)  # (float32 exp may differ from torch's in the last bit)


def test_checked_unary_functions_take_arrays_and_refuse_others():
    a = np.array([1.0, -2.0])
    np.testing.assert_array_equal(ember.neg(a).numpy(), -a)
    np.testing.assert_array_equal(ember.relu(a).numpy(), np.maximum(a, 0))
    for fn in ("neg", "abs", "relu"):
        with pytest.raises(TypeError) as ee:
            getattr(ember, fn)("x")
        with pytest.raises(TypeError) as et:
            getattr(torch, fn)("x")
        assert str(ee.value) == str(et.value)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4), data=st.data())
def test_broadcast_view_is_broadcast_to(shape, data):
    """sum/mean's backward view (ndarray over the gradient's buffer, stride 0 on reduced dims)
    equals NumPy's broadcast_to: shape, strides, values, read-only; non-contiguous falls back."""
    from ember.ops.reduce import _broadcast_view
    keep = [data.draw(st.booleans()) for _ in shape]
    dshape = tuple(s if k else 1 for s, k in zip(shape, keep))
    full = data.draw(st.booleans())
    d = np.arange(int(np.prod(dshape)), dtype=np.float32).reshape(dshape) if full or not shape \
        else np.asarray(np.float32(3.5))
    if data.draw(st.booleans()) and d.ndim and d.shape[-1] > 1:
        d = np.asfortranarray(np.repeat(d, 2, axis=-1))[..., ::2]  # non-contiguous: fallback
    v, ref = _broadcast_view(np, d, tuple(shape)), np.broadcast_to(d, tuple(shape))
    assert v.shape == ref.shape and not v.flags.writeable
    if v.size:  # (strides of an empty array, or along a dim of size 1, mean nothing)
        assert [a for a, n in zip(v.strides, shape) if n > 1] == \
            [b for b, n in zip(ref.strides, shape) if n > 1]
    np.testing.assert_array_equal(v, ref)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sum_dim_and_mean_backward_match_torch(dtype):
    """``sum(1).mean()`` backward without a graph (the stride-0 view path) gives torch's."""
    xe, xt = _pair(np.random.default_rng(6).standard_normal((5, 7)), dtype)
    for x, lib in ((xe, ember), (xt, torch)):
        (x * 2.0).sum(1).mean().backward()
        (x * 3.0).sum().backward()
        x.sum(0, keepdim=True).mean().backward()
    _close(xe.grad, xt.grad, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_full_mean_divides_as_torch(dtype):
    """A full mean is its sum divided by numel as torch's ``sum.div_(numel)`` divides (float32
    in float32, not a float64 quotient rounded): compared on torch's division of ember's sum,
    so summation order does not enter; sizes up to 2**17, scales over 12 decades."""
    rng = np.random.default_rng(9)
    for _ in range(300):
        n = int(rng.integers(1, 1 << 17)) if rng.random() < 0.1 else int(rng.integers(1, 3000))
        x = ember.tensor(rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6), dtype=getattr(
            ember, dtype)) if dtype != "float16" else ember.tensor(rng.standard_normal(n),
                                                                  dtype=ember.float16)
        want = torch.from_numpy(ember.sum(x).numpy()).div(n).numpy()
        got = ember.mean(x).numpy()
        assert got.dtype == want.dtype and got == want, (n, got, want)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("n", [0, 7, 2048, 40000])  # 40000: workspace blocks (>= 64 KB)
def test_relu_grad_nan_test_at_every_size(n, dtype):
    """relu's gradient fixes exactly the NaN products (inf or NaN times a masked 0) and never
    raises where a sum of huge terms would overflow (np.errstate over='raise')."""
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n)
    g = rng.standard_normal(n) * float(np.finfo(dtype).max) / 4
    if n:
        k = rng.integers(0, n, size=max(1, n // 50))
        g[k[::3]], g[k[1::3]], g[k[2::3]] = np.inf, -np.inf, np.nan
    ge, gt = _pair(g, dtype, requires_grad=False)
    xe, xt = _pair(y, dtype)
    with np.errstate(over="raise", invalid="ignore"):
        (re,) = ember.autograd.grad(xe.relu(), xe, ge)
    (rt,) = torch.autograd.grad(xt.relu(), xt, gt)
    np.testing.assert_array_equal(_np(re), _np(rt))
