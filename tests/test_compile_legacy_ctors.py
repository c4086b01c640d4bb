"""Legacy constructors inside a compiled function (``torch.Tensor([...])``,
``torch.FloatTensor(...)``, ``torch.LongTensor(...)``, ``x.new(...)``): they make their tensors
with the factories the capture offers to the modes, so their literals are graph nodes (as
``torch.tensor([...])``'s are), no "tensor computed outside ops" break; values equal eager's and
torch's; a literal from a Python value recompiles when the value changes."""
import numpy as np
import pytest
import torch

import ember

_X = np.random.default_rng(0).standard_normal((3, 4))


def _tensor(L, x):
    return x * L.Tensor([1., 2., 3., 4.])


def _float(L, x):
    return x + L.FloatTensor([1, 2, 3, 4])


def _long(L, x):
    return x[:, L.LongTensor([3, 0])]


def _double(L, x):
    return x.double() * L.DoubleTensor([[0.5], [1.5], [2.5]])


def _new_data(L, x):
    return x - x.new([1, 1, 2, 2])


def _new_sizes(L, x):
    return x + x.new(3, 4).fill_(2) + L.Tensor(4).zero_() + x.new(L.Size([1, 4])).fill_(1)


CASES = [_tensor, _float, _long, _double, _new_data, _new_sizes]


@pytest.mark.parametrize("fn", CASES, ids=[f.__name__ for f in CASES])
def test_legacy_constructors_compile_without_a_break(fn):
    ember.compiler.reset()
    x = ember.tensor(_X, dtype=ember.float32)
    f = ember.compile(lambda x: fn(ember, x))
    want = fn(torch, torch.tensor(_X, dtype=torch.float32)).numpy()
    for _ in range(3):
        got = f(x)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
        assert got.dtype == fn(ember, x).dtype
    out = ember.compiler.explain(lambda x: fn(ember, x))(x)
    assert out.graph_break_count == 0, out.break_reasons
    ember.compile(lambda x: fn(ember, x), fullgraph=True)(x)


def test_a_legacy_literal_from_a_python_value_is_guarded():
    ember.compiler.reset()
    cfg = {"w": 2.0}
    f = ember.compile(lambda x: x * ember.FloatTensor([cfg["w"], 1.0, 1.0, 1.0]))
    x = ember.ones(2, 4)
    assert f(x)[0, 0].item() == 2.0
    cfg["w"] = 5.0
    assert f(x)[0, 0].item() == 5.0  # recompiled, not the baked 2.0


def test_legacy_constructor_errors_are_eagers_under_compile():
    ember.compiler.reset()
    x = ember.ones(2)
    with pytest.raises(TypeError, match="new"):
        ember.compile(lambda x: x + ember.FloatTensor("ab"))(x)
    with pytest.raises(TypeError):
        ember.compile(lambda x: x + x.new(1.5))(x)
    with pytest.raises(TypeError):
        torch.ones(2).new(1.5)
