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
