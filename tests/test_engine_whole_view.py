"""A leaf's first gradient that is a whole view of a base nothing else holds (a convolution's
weight gradient: a GEMM result reshaped) becomes ``.grad`` without a copy; any other view is
copied, so a later in-place accumulation never reaches memory someone else sees."""
import numpy as np
import torch

import ember

KEPT = []


class _ViewGrad(ember.autograd.Function):
    """Identity whose gradient is handed back as a reshaped view of a fresh (O, C*k) block."""

    @staticmethod
    def forward(ctx, w, keep):
        ctx.keep = keep
        return w.clone()

    @staticmethod
    def backward(ctx, g):
        block = np.ascontiguousarray(g.numpy().reshape(g.shape[0], -1)) * 2.0
        if ctx.keep:
            KEPT.append(block)  # someone else holds the base: the engine must copy
        return ember.from_numpy(block.reshape(g.shape)), None


def _run(keep):
    w = ember.ones(4, 3, 2, requires_grad=True)
    _ViewGrad.apply(w, keep).sum().backward()
    first = w.grad.numpy()
    _ViewGrad.apply(w, keep).sum().backward()  # accumulates in place into .grad
    return w, first


def test_whole_view_of_an_unshared_base_is_taken_and_accumulates():
    w, first = _run(False)
    assert first.base is not None  # stolen: still the view of the backward's block
    np.testing.assert_array_equal(w.grad.numpy(), np.full((4, 3, 2), 4.0))
    tw = torch.ones(4, 3, 2, requires_grad=True)
    (tw * 2).sum().backward()
    (tw * 2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), tw.grad.numpy())


def test_view_of_a_base_held_elsewhere_is_copied():
    KEPT.clear()
    w, _ = _run(True)
    np.testing.assert_array_equal(w.grad.numpy(), np.full((4, 3, 2), 4.0))
    # the kept block of the first backward was never written by the second accumulation
    np.testing.assert_array_equal(KEPT[0], np.full((4, 6), 2.0))
    assert not np.shares_memory(KEPT[0], w.grad.numpy())
