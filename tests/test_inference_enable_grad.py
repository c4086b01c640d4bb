"""Grad mode turned on inside inference mode records nothing, as in PyTorch (issue 15):
``is_grad_enabled()`` is True there, but results of ops on tensors that require grad have
``requires_grad=False``, no ``grad_fn`` and are inference tensors; in-place ops on tensors
that require grad are allowed and not recorded.  Each case against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

MODS = [ember, torch]


def _grad_on(mod, how):
    return {"enable_grad": mod.enable_grad,
            "set_grad_enabled": lambda: mod.set_grad_enabled(True)}[how]


class _Double:
    """A custom autograd.Function of ``mod`` (made per module)."""

    def __new__(cls, mod):
        class Double(mod.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                assert not mod.is_grad_enabled()
                ctx.save_for_backward(x)
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * ctx.saved_tensors[0] * 0 + g * 2

        return Double


def _ops(mod, w, b):
    """One result per path a built-in op can take: operators (tensor, number), unary ops,
    reductions, a product, a multi-output op."""
    return {"w*b": w * b, "w+0.5": w + 0.5, "w/2": w / 2.0, "w-b": w - b, "relu": w.relu(),
            "tanh": mod.tanh(w), "sigmoid": w.sigmoid(), "sum": w.sum(), "mean": w.mean(1),
            "matmul": w @ b.unsqueeze(1), "max": w.max(1)[0],
            "add(alpha)": mod.add(w, b, alpha=2), "pow": w ** 2, "exp": w.exp()}


@pytest.mark.parametrize("how", ["enable_grad", "set_grad_enabled"])
@pytest.mark.parametrize("mod", MODS)
def test_ops_record_nothing_and_make_inference_tensors(mod, how):
    w = mod.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    b = mod.tensor(np.linspace(0.5, 1, 4), requires_grad=True)
    h = w * 1.5  # a non-leaf made outside
    with mod.inference_mode():
        with _grad_on(mod, how)():
            assert mod.is_grad_enabled() and mod.is_inference_mode_enabled()
            for name, r in {**_ops(mod, w, b), "non-leaf": h * b}.items():
                assert not r.requires_grad and r.grad_fn is None and r.is_leaf, name
                assert r.is_inference(), name
            leaf = mod.ones(3, requires_grad=True)  # a new leaf still requires grad
            assert leaf.requires_grad and leaf.is_inference()
            assert not (leaf * 2).requires_grad
            for v in (w[0:2], w.view(12), h.t()):  # views: no history either
                assert v.grad_fn is None
            with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad "
                                                   "and does not have a grad_fn"):
                (w * b).sum().backward()
        assert not mod.is_grad_enabled()
    assert mod.is_grad_enabled()
    y = w * b  # recording again outside
    assert y.grad_fn is not None and not y.is_inference()


@pytest.mark.parametrize("mod", MODS)
def test_a_custom_function_records_as_in_torch(mod):
    w = mod.ones(3, requires_grad=True)
    with mod.inference_mode(), mod.enable_grad():
        r = _Double(mod).apply(w)  # PyTorch's custom Functions follow grad mode alone
        assert r.requires_grad and r.grad_fn is not None and r.is_inference()
        s = r.sum()
        assert not s.requires_grad and s.grad_fn is None
    (r * 1).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("mod", MODS)
def test_in_place_ops_are_allowed_and_not_recorded(mod):
    w = mod.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = w * 2
    leaf = mod.ones(3, requires_grad=True)
    with mod.inference_mode(), mod.enable_grad():
        assert h.add_(1) is h and h.relu_() is h
        leaf.add_(1)  # (no "leaf Variable ... in-place" error: nothing is recorded)
        assert leaf.requires_grad and leaf.grad_fn is None
    assert h.grad_fn.name() == "MulBackward0" and h._version == 2
    assert leaf.tolist() == [2.0, 2.0, 2.0] and leaf._version == 1
    h.sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("mod", MODS)
def test_nested_modes_restore_recording(mod):
    w = mod.ones(2, requires_grad=True)
    with mod.inference_mode():
        with mod.enable_grad():
            with mod.inference_mode(False):  # inference off, grad on: records
                r = w * 2
                assert r.grad_fn is not None and not r.is_inference()
            assert (w * 2).grad_fn is None
            with mod.no_grad():
                assert not mod.is_grad_enabled() and (w * 2).grad_fn is None
            assert mod.is_grad_enabled()

    @mod.enable_grad()
    def inside():
        return w * 3

    with mod.inference_mode():
        r = inside()
        assert r.grad_fn is None and r.is_inference()
    assert inside().grad_fn is not None
