"""The compiled inference call path (a region's result wrapped inline, the last entry's guard
and run called in one go): results are eager's tensors, flags included, and parameters are
read at each call."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_results_are_eagers_tensors(mode):
    ember.manual_seed(0)
    lin = ember.nn.Linear(4, 3).eval()
    fns = {"vector": lambda x: lin(x).relu(), "scalar": lambda x: lin(x).sum()}
    x = ember.randn(2, 4)
    for name, fn in fns.items():
        cf = ember.compile(fn)
        for _ in range(3):  # capture, first guarded call, the fast path
            with getattr(ember, mode)():
                got, ref = cf(x), fn(x)
            assert type(got) is type(ref) and got.shape == ref.shape and got.dtype == ref.dtype
            assert got.is_inference() == ref.is_inference() == (mode == "inference_mode")
            assert not got.requires_grad and got.grad_fn is None
            np.testing.assert_array_equal(got.numpy(), ref.numpy())
    # against torch too
    tl = torch.nn.Linear(4, 3)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.detach().numpy()))
        tl.bias.copy_(torch.from_numpy(lin.bias.detach().numpy()))
        np.testing.assert_allclose(tl(torch.from_numpy(x.numpy())).sum().numpy(),
                                   cf(x).detach().numpy(), rtol=1e-6)


def test_parameters_are_read_at_each_inference_call():
    ember.manual_seed(0)
    lin = ember.nn.Linear(4, 3).eval()
    cf = ember.compile(lin)
    x = ember.randn(2, 4)
    with ember.inference_mode():
        for k in range(4):
            if k == 2:
                lin.weight.data = ember.randn(3, 4)  # re-pointed, same shape
            if k == 3:
                with ember.no_grad():
                    lin.bias.mul_(2.0)  # in place
            np.testing.assert_array_equal(cf(x).numpy(), lin(x).numpy())
