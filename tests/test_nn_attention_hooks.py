"""ember.nn.attention (sdpa_kernel, SDPBackend) and ember.utils.hooks against torch."""
import numpy as np
import pytest
import torch
import torch.nn.attention as tattn
import torch.utils.hooks as thooks

import ember
import ember.nn.attention as eattn
import ember.utils.hooks as ehooks


def test_backend_enum_as_torch():
    assert {b.name: int(b.value) for b in eattn.SDPBackend} == \
        {name: int(b.value) for name, b in tattn.SDPBackend.__members__.items()}
    assert repr(eattn.SDPBackend.MATH) == repr(tattn.SDPBackend.MATH)


@pytest.mark.parametrize("backends", [["MATH"], ["FLASH_ATTENTION"],
                                      ["EFFICIENT_ATTENTION", "CUDNN_ATTENTION"], "MATH"])
def test_sdpa_kernel_sets_and_restores_switches_as_torch(backends):
    seen = {}
    for m, mod in ((ember, eattn), (torch, tattn)):
        arg = [getattr(mod.SDPBackend, b) for b in backends] if isinstance(backends, list) \
            else getattr(mod.SDPBackend, backends)
        cuda = m.backends.cuda
        flags = lambda: (cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(),
                         cuda.math_sdp_enabled(), cuda.cudnn_sdp_enabled())
        before = flags()
        q = m.tensor(np.random.default_rng(0).normal(size=(1, 2, 3, 4)))
        with mod.sdpa_kernel(arg):
            inside = flags()
            if m is ember or inside[0] or inside[2]:  # torch's cpu runs only math and flash
                out = m.nn.functional.scaled_dot_product_attention(q, q, q).numpy()
        seen[m] = (inside, flags() == before, out)
    assert seen[ember][:2] == seen[torch][:2]
    if seen[torch][0][0] or seen[torch][0][2]:
        np.testing.assert_allclose(seen[ember][2], seen[torch][2])  # cpu: unaffected


def test_sdpa_kernel_bad_argument_raises_assertion_as_torch():
    for mod in (eattn, tattn):
        with pytest.raises(AssertionError, match="Backend must be an instance of SDPBackend"):
            with mod.sdpa_kernel("math"):
                pass


def test_hooks_names_and_handles():
    assert set(ehooks.__all__) >= set(thooks.__all__) - {"BackwardHook"}
    lin = ember.nn.Linear(2, 2)
    h = lin.register_forward_hook(lambda *a: None)
    assert isinstance(h, ehooks.RemovableHandle)
    h.remove()
    assert not lin._forward_hooks

    @ehooks.unserializable_hook
    def quiet(g):
        return g
    x = ember.ones(2, requires_grad=True)
    x.register_hook(quiet)
    ehooks.warn_if_has_hooks(x)  # marked: no warning
    x.register_hook(lambda g: g)
    with pytest.warns(UserWarning, match="will not be serialized"):
        ehooks.warn_if_has_hooks(x)
