"""``ember.nn.utils`` against ``torch.nn.utils``: gradient clipping and vector conversion."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from ember.nn import utils as EU
from torch.nn import utils as TU

from opcheck import assert_close


def _params(shapes, dtype="float64", seed=0, scale=1.0, none_at=()):
    """Matching ember and torch parameter lists whose grads hold the same random values."""
    rng = np.random.default_rng(seed)
    pe, pt = [], []
    for i, s in enumerate(shapes):
        w = np.asarray(rng.standard_normal(s)).astype(dtype)
        g = np.asarray(rng.standard_normal(s) * scale).astype(dtype)
        e = ember.nn.Parameter(ember.from_numpy(w.copy()))
        t = torch.nn.Parameter(torch.from_numpy(w.copy()))
        if i not in none_at:
            e.grad = ember.from_numpy(g.copy())
            t.grad = torch.from_numpy(g.copy())
        pe.append(e)
        pt.append(t)
    return pe, pt


def _same_grads(pe, pt, dtype):
    for e, t in zip(pe, pt):
        if t.grad is None:
            assert e.grad is None
        else:
            assert_close(e.grad, t.grad, dtype)


SHAPES = [(3, 4), (5,), (), (2, 3, 2)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_type", [1, 2, 2.0, 3, 0.5, float("inf"), "inf", -float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    pe, pt = _params(SHAPES, dtype)
    ne = EU.clip_grad_norm_(pe, max_norm, norm_type)
    nt = TU.clip_grad_norm_(pt, max_norm, norm_type)
    assert_close(ne, nt, dtype, "total norm")
    _same_grads(pe, pt, dtype)


def test_clip_grad_norm_keeps_grad_objects_and_returns_norm_before_clipping():
    pe, pt = _params(SHAPES, scale=10.0)
    before = [p.grad for p in pe]
    ne = EU.clip_grad_norm_(pe, 1.0)
    assert all(p.grad is g for p, g in zip(pe, before))
    assert ne.item() > 1.0
    after = EU.get_total_norm([p.grad for p in pe])
    np.testing.assert_allclose(after.item(), 1.0, rtol=1e-5)
    assert ne.grad_fn is None and not ne.requires_grad


def test_clip_grad_norm_under_grad_mode_records_nothing():
    pe, _ = _params(SHAPES)
    with ember.enable_grad():
        n = EU.clip_grad_norm_(pe, 0.1)
    assert n.grad_fn is None
    assert all(p.grad.grad_fn is None for p in pe)


def test_grad_none_is_skipped():
    pe, pt = _params(SHAPES, none_at=(0, 2))
    ne = EU.clip_grad_norm_(pe, 0.3)
    nt = TU.clip_grad_norm_(pt, 0.3)
    assert_close(ne, nt)
    _same_grads(pe, pt, "float64")


def test_all_grads_none_and_empty():
    pe, pt = _params(SHAPES, none_at=(0, 1, 2, 3))
    assert_close(EU.clip_grad_norm_(pe, 1.0), TU.clip_grad_norm_(pt, 1.0))
    assert_close(EU.clip_grad_norm_([], 1.0), TU.clip_grad_norm_([], 1.0))
    with pytest.warns(UserWarning) as rt:
        TU.clip_grad_norm_((p for p in []), 1.0)
    with pytest.warns(UserWarning) as re:
        EU.clip_grad_norm_((p for p in []), 1.0)
    assert str(re[0].message) == str(rt[0].message)


def test_single_tensor_and_generator_inputs():
    pe, pt = _params([(4, 3)])
    assert_close(EU.clip_grad_norm_(pe[0], 0.5), TU.clip_grad_norm_(pt[0], 0.5))
    _same_grads(pe, pt, "float64")
    pe, pt = _params(SHAPES, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ne = EU.clip_grad_norm_((p for p in pe), 0.5, norm_type=1)
    assert_close(ne, TU.clip_grad_norm_((p for p in pt), 0.5, norm_type=1))
    _same_grads(pe, pt, "float64")


def test_module_parameters():
    class Net(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = ember.nn.Parameter(ember.randn(4, 3))
            self.b = ember.nn.Parameter(ember.randn(3))

        def forward(self, x):
            return x @ self.w + self.b
    net = Net()
    (net(ember.randn(5, 4)) ** 2).sum().backward()
    g = ember.cat([net.w.grad.reshape(-1), net.b.grad]).numpy().copy()
    n = EU.clip_grad_norm_(net.parameters(), 1.0)
    np.testing.assert_allclose(n.item(), np.linalg.norm(g), rtol=1e-6)
    new = ember.cat([net.w.grad.reshape(-1), net.b.grad]).numpy()
    np.testing.assert_allclose(new, g * (1.0 / (np.linalg.norm(g) + 1e-6)), rtol=1e-6)


# NumPy's inf * 0 warning escapes ember's elementwise filter when pytest resets filters
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -float("inf")])
@pytest.mark.parametrize("norm_type", [2.0, 1, float("inf")])
def test_nonfinite(bad, norm_type):
    pe, pt = _params(SHAPES)
    pe[1].grad[2] = bad
    pt[1].grad[2] = bad
    with pytest.raises(RuntimeError) as rt:
        TU.clip_grad_norm_(pt, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as re:
        EU.clip_grad_norm_(pe, 1.0, norm_type, error_if_nonfinite=True)
    assert str(re.value) == str(rt.value)
    _same_grads(pe, pt, "float64")  # nothing was scaled
    # without the flag the (non-finite) norm is returned and used, as in torch
    assert_close(EU.clip_grad_norm_(pe, 1.0, norm_type), TU.clip_grad_norm_(pt, 1.0, norm_type))
    _same_grads(pe, pt, "float64")


def test_mixed_dtypes():
    pe, pt = _params([(3, 2)], "float32")
    qe, qt = _params([(4,)], "float64", seed=3)
    ne = EU.clip_grad_norm_(pe + qe, 0.2)
    nt = TU.clip_grad_norm_(pt + qt, 0.2)
    assert_close(ne, nt, "float32")
    _same_grads(pe, pt, "float32")
    _same_grads(qe, qt, "float64")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 4), max_size=3), min_size=1, max_size=4),
       st.sampled_from([1.0, 2.0, 3.0, float("inf")]), st.floats(0.01, 20.0),
       st.integers(0, 1000))
def test_clip_grad_norm_hypothesis(shapes, norm_type, max_norm, seed):
    pe, pt = _params([tuple(s) for s in shapes], seed=seed)
    assert_close(EU.clip_grad_norm_(pe, max_norm, norm_type),
                 TU.clip_grad_norm_(pt, max_norm, norm_type))
    _same_grads(pe, pt, "float64")


@pytest.mark.parametrize("norm_type", [1, 2, float("inf")])
def test_get_total_norm_and_clip_grads_with_norm(norm_type):
    pe, pt = _params(SHAPES, seed=4)
    ne = EU.get_total_norm([p.grad for p in pe], norm_type)
    nt = TU.get_total_norm([p.grad for p in pt], norm_type)
    assert_close(ne, nt)
    assert_close(EU.get_total_norm(pe[0].grad, norm_type), TU.get_total_norm(pt[0].grad,
                                                                             norm_type))
    assert EU.clip_grads_with_norm_(pe, 0.7, ne) is None
    TU.clip_grads_with_norm_(pt, 0.7, nt)
    _same_grads(pe, pt, "float64")


def test_deprecated_clip_grad_norm():
    pe, pt = _params(SHAPES)
    with pytest.warns(FutureWarning):
        ne = EU.clip_grad_norm(pe, 0.5)
    with pytest.warns(FutureWarning):
        nt = TU.clip_grad_norm(pt, 0.5)
    assert_close(ne, nt)
    _same_grads(pe, pt, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("clip_value", [0.1, 1, 5.0])
def test_clip_grad_value(clip_value, dtype):
    pe, pt = _params(SHAPES, dtype, scale=2.0, none_at=(1,))
    before = [p.grad for p in pe]
    assert EU.clip_grad_value_(pe, clip_value) is None
    TU.clip_grad_value_(pt, clip_value)
    _same_grads(pe, pt, dtype)
    assert all(p.grad is g for p, g in zip(pe, before))
    pe, pt = _params([(3, 3)], dtype, scale=3.0)
    EU.clip_grad_value_(pe[0], clip_value)
    TU.clip_grad_value_(pt[0], clip_value)
    _same_grads(pe, pt, dtype)


# ---- parameters_to_vector / vector_to_parameters ------------------------------------------

def test_parameters_to_vector_matches_torch_and_is_differentiable():
    pe, pt = _params([(3, 4), (5,), (), (2, 1, 2)])
    ve, vt = EU.parameters_to_vector(pe), TU.parameters_to_vector(pt)
    assert_close(ve, vt)
    w = np.arange(ve.shape[0], dtype=np.float64)
    (ve * ember.from_numpy(w)).sum().backward()
    (vt * torch.from_numpy(w)).sum().backward()
    _same_grads(pe, pt, "float64")


def test_vector_to_parameters_matches_torch():
    pe, pt = _params([(3, 4), (5,), (2, 1, 2)])
    vec = np.linspace(-1, 1, 12 + 5 + 4 + 3)
    ve, vt = ember.from_numpy(vec.copy()), torch.from_numpy(vec.copy())
    assert EU.vector_to_parameters(ve, pe) is None
    TU.vector_to_parameters(vt, pt)
    for e, t in zip(pe, pt):
        assert isinstance(e, ember.nn.Parameter) and e.requires_grad
        assert tuple(e.shape) == tuple(t.shape)
        np.testing.assert_array_equal(e.detach().numpy(), t.detach().numpy())
    # the parameters now view the vector's memory, as in torch
    ve[0] = 42.0
    vt[0] = 42.0
    assert pe[0][0, 0].item() == pt[0][0, 0].item() == 42.0
    # round trip (a longer vector's tail is ignored, as in torch)
    np.testing.assert_array_equal(EU.parameters_to_vector(pe).detach().numpy(),
                                  ve.numpy()[:21])
    np.testing.assert_array_equal(TU.parameters_to_vector(pt).detach().numpy(),
                                  ve.numpy()[:21])


def test_vector_to_parameters_errors():
    pe, pt = _params([(3, 4)])
    for bad in ([1.0] * 12, np.zeros(12), 3):
        with pytest.raises(TypeError) as rt:
            TU.vector_to_parameters(bad, pt)
        with pytest.raises(TypeError) as re:
            EU.vector_to_parameters(bad, pe)
        assert str(re.value) == str(rt.value)
    # too short: the view of the remaining slice fails in both
    with pytest.raises(RuntimeError):
        TU.vector_to_parameters(torch.zeros(5, dtype=torch.float64), pt)
    with pytest.raises(RuntimeError):
        EU.vector_to_parameters(ember.zeros(5, dtype=ember.float64), pe)


def test_parameters_to_vector_empty_raises_like_torch():
    with pytest.raises(ValueError) as rt:
        TU.parameters_to_vector([])
    with pytest.raises(ValueError) as re:
        EU.parameters_to_vector([])
    assert str(re.value) == str(rt.value)


# ---- weight norm, spectral norm, parametrize ----------------------------------------------

from opcheck import check, rand  # noqa: E402
from ember.nn.utils import parametrize as EPz, parametrizations as EP  # noqa: E402
from ember.nn.utils.weight_norm import _weight_norm, norm_except_dim  # noqa: E402
from torch.nn.utils import parametrize as TPz, parametrizations as TP  # noqa: E402


@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 1),
                                       ((2, 3, 4), 2), ((2, 3, 4), -2), ((5,), 0),
                                       ((4, 1, 3, 2), 0)])
def test_norm_except_dim_and_weight_norm_match_torch(shape, dim):
    g_shape = () if dim == -1 else tuple(s if i == dim % len(shape) else 1
                                         for i, s in enumerate(shape))
    check(lambda v: norm_except_dim(v, 2, dim), lambda v: torch.norm_except_dim(v, 2, dim),
          rand(*shape, seed=1))
    check(lambda v, g: _weight_norm(v, g, dim), lambda v, g: torch._weight_norm(v, g, dim),
          rand(*shape, seed=2), rand(*g_shape, seed=3))


def _linear_pair(n_in=4, n_out=3, seed=0):
    torch.manual_seed(seed)
    lt = torch.nn.Linear(n_in, n_out).double()
    le = ember.nn.Linear(n_in, n_out).double()
    le.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in lt.state_dict().items()})
    return le, lt


def _compare_forward_backward(le, lt, shape=(5, 4), train=True):
    le.train(train)
    lt.train(train)
    x = np.random.default_rng(0).standard_normal(shape)
    oe, ot = le(ember.tensor(x)), lt(torch.tensor(x))
    assert_close(oe, ot)
    (oe ** 2).sum().backward()
    (ot ** 2).sum().backward()
    pe, pt = dict(le.named_parameters()), dict(lt.named_parameters())
    assert list(pe) == list(pt)
    for k in pt:
        assert_close(pe[k].grad, pt[k].grad, "float64", k)
    for (k, a), (_, b) in zip(le.state_dict().items(), lt.state_dict().items()):
        assert_close(a, b, "float64", k)


@pytest.mark.parametrize("dim", [0, 1, None])
def test_parametrized_weight_norm_matches_torch(dim):
    le, lt = _linear_pair()
    assert EP.weight_norm(le, dim=dim) is le
    TP.weight_norm(lt, dim=dim)
    assert list(le.state_dict()) == list(lt.state_dict())
    assert repr(le) == repr(lt) and type(le).__name__ == "ParametrizedLinear"
    assert isinstance(le, ember.nn.Linear)
    assert EPz.type_before_parametrizations(le) is ember.nn.Linear
    assert EPz.is_parametrized(le) and EPz.is_parametrized(le, "weight")
    assert not EPz.is_parametrized(le, "bias")
    assert_close(le.weight, lt.weight)
    _compare_forward_backward(le, lt)
    # removal keeps the current (parametrized) value as a plain parameter
    EPz.remove_parametrizations(le, "weight")
    TPz.remove_parametrizations(lt, "weight")
    assert type(le) is ember.nn.Linear and not hasattr(le, "parametrizations")
    assert list(le.state_dict()) == list(lt.state_dict()) == ["bias", "weight"]
    assert isinstance(le.weight, ember.nn.Parameter)
    assert_close(le.weight, lt.weight)


def test_weight_norm_loads_legacy_checkpoint():
    le, lt = _linear_pair()
    with pytest.warns(FutureWarning):
        legacy = torch.nn.utils.weight_norm(torch.nn.Linear(4, 3).double())
    EP.weight_norm(le)
    TP.weight_norm(lt)
    sd = legacy.state_dict()
    assert list(sd) == ["bias", "weight_g", "weight_v"]
    lt.load_state_dict(sd)
    le.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in sd.items()})
    assert_close(le.weight, lt.weight)


@pytest.mark.parametrize("dim", [0, 1])
def test_legacy_weight_norm_matches_torch(dim):
    le, lt = _linear_pair()
    with pytest.warns(FutureWarning):
        ember.nn.utils.weight_norm(le, dim=dim)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(lt, dim=dim)
    assert list(le.state_dict()) == list(lt.state_dict()) == ["bias", "weight_g", "weight_v"]
    _compare_forward_backward(le, lt)
    with pytest.raises(RuntimeError), pytest.warns(FutureWarning):
        ember.nn.utils.weight_norm(le, dim=dim)
    ember.nn.utils.remove_weight_norm(le)
    torch.nn.utils.remove_weight_norm(lt)
    assert list(le.state_dict()) == list(lt.state_dict())
    assert_close(le.weight, lt.weight)
    with pytest.raises(ValueError):
        torch.nn.utils.remove_weight_norm(lt)
    with pytest.raises(ValueError):
        ember.nn.utils.remove_weight_norm(le)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape,dim", [((3, 4), None), ((5, 4), 1)])
def test_parametrized_spectral_norm_matches_torch(train, shape, dim):
    le, lt = _linear_pair(shape[1], shape[0])
    EP.spectral_norm(le, dim=dim)
    TP.spectral_norm(lt, dim=dim)
    assert list(le.state_dict()) == list(lt.state_dict())
    assert repr(le) == repr(lt)
    # power iteration starts from random vectors: take torch's
    le.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in lt.state_dict().items()})
    for _ in range(2):  # the second call sees the in-place updated u, v
        le.zero_grad()
        lt.zero_grad()
        _compare_forward_backward(le, lt, (2, shape[1]), train)
    s = np.linalg.svd(lt.parametrizations.weight.original.detach().numpy(), compute_uv=False)
    np.testing.assert_allclose(np.linalg.svd(le.weight.detach().numpy(), compute_uv=False)[0],
                               1.0, rtol=1e-3 if s[0] / s[1] < 1.5 else 1e-6)


def test_spectral_norm_errors():
    with pytest.raises(ValueError):
        TP.spectral_norm(torch.nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError):
        EP.spectral_norm(ember.nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(IndexError):
        TP.spectral_norm(torch.nn.Linear(2, 2), dim=2)
    with pytest.raises(IndexError):
        EP.spectral_norm(ember.nn.Linear(2, 2), dim=2)
    with pytest.raises(ValueError):
        TP.spectral_norm(torch.nn.Linear(2, 2), name="nothing")
    with pytest.raises(ValueError):
        EP.spectral_norm(ember.nn.Linear(2, 2), name="nothing")


@pytest.mark.parametrize("train", [True, False])
def test_legacy_spectral_norm_matches_torch(train):
    le, lt = _linear_pair(4, 3)
    ember.nn.utils.spectral_norm(le)
    torch.nn.utils.spectral_norm(lt)
    assert list(le.state_dict()) == list(lt.state_dict()) == \
        ["bias", "weight_orig", "weight_u", "weight_v"]
    assert le.state_dict()._metadata == lt.state_dict()._metadata
    le.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in lt.state_dict().items()})
    for _ in range(2):
        le.zero_grad()
        lt.zero_grad()
        _compare_forward_backward(le, lt, (2, 4), train)
    ember.nn.utils.remove_spectral_norm(le)
    torch.nn.utils.remove_spectral_norm(lt)
    assert list(le.state_dict()) == list(lt.state_dict())
    assert_close(le.weight, lt.weight)
    with pytest.raises(ValueError):
        ember.nn.utils.remove_spectral_norm(le)


def _symmetric(m):
    class Symmetric(m.nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).transpose(0, 1)

        def right_inverse(self, a):
            return a.triu()
    return Symmetric


def _scaled(m):
    class Scaled(m.nn.Module):
        def forward(self, x):
            return x * 2

        def right_inverse(self, a):
            return a / 2
    return Scaled


def test_custom_parametrization_matches_torch():
    le, lt = _linear_pair(3, 3)
    EPz.register_parametrization(le, "weight", _symmetric(ember)())
    TPz.register_parametrization(lt, "weight", _symmetric(torch)())
    EPz.register_parametrization(le, "weight", _scaled(ember)())
    TPz.register_parametrization(lt, "weight", _scaled(torch)())
    assert list(le.state_dict()) == list(lt.state_dict())
    assert repr(le) == repr(lt)
    w = le.weight.detach().numpy()
    np.testing.assert_allclose(w, w.T)
    _compare_forward_backward(le, lt, (2, 3))
    # assignment goes through right_inverse into the stored original (same object)
    orig = le.parametrizations.weight.original
    v = np.arange(9.0).reshape(3, 3)
    le.weight = ember.tensor(v)
    lt.weight = torch.tensor(v)
    assert le.parametrizations.weight.original is orig
    assert_close(le.weight, lt.weight)
    assert_close(le.parametrizations.weight.original, lt.parametrizations.weight.original)
    # caching computes once inside the context
    with EPz.cached():
        assert le.weight is le.weight
    assert le.weight is not le.weight
    EPz.remove_parametrizations(le, "weight", leave_parametrized=False)
    TPz.remove_parametrizations(lt, "weight", leave_parametrized=False)
    assert_close(le.weight, lt.weight)
    assert type(le) is ember.nn.Linear


def test_parametrized_module_copy_and_pickle():
    import copy
    import pickle
    le, _ = _linear_pair(3, 3)
    EPz.register_parametrization(le, "weight", _scaled(ember)())
    c = copy.deepcopy(le)
    assert type(c).__name__ == "ParametrizedLinear"
    assert c.parametrizations.weight.original is not le.parametrizations.weight.original
    np.testing.assert_array_equal(c.weight.detach().numpy(), le.weight.detach().numpy())
    with pytest.raises(RuntimeError, match="state_dict"):
        pickle.dumps(le)


PARAMETRIZE_ERRORS = [
    ("missing_name", ValueError,
     lambda m, l: m.nn.utils.parametrize.register_parametrization(l, "nothing",
                                                                  _scaled(m)())),
    ("remove_unparametrized", ValueError,
     lambda m, l: m.nn.utils.parametrize.remove_parametrizations(l, "weight")),
    ("shape_change", ValueError,
     lambda m, l: m.nn.utils.parametrize.register_parametrization(
         l, "weight", type("Wide", (m.nn.Module,), {"forward": lambda s, x: m.cat([x, x])})())),
    ("dtype_change", ValueError,
     lambda m, l: m.nn.utils.parametrize.register_parametrization(
         l, "weight", type("F", (m.nn.Module,), {"forward": lambda s, x: x.float()})())),
    ("set_without_right_inverse", RuntimeError,
     lambda m, l: setattr(m.nn.utils.parametrize.register_parametrization(
         l, "weight", type("P", (m.nn.Module,), {"forward": lambda s, x: x * 3})()),
         "weight", m.ones(3, 3, dtype=m.float64))),
    ("leave_unparametrized_tuple", ValueError,
     lambda m, l: m.nn.utils.parametrize.remove_parametrizations(
         m.nn.utils.parametrizations.weight_norm(l), "weight", leave_parametrized=False)),
]


@pytest.mark.parametrize("name,exc,fn", PARAMETRIZE_ERRORS, ids=[p[0] for p in PARAMETRIZE_ERRORS])
def test_parametrize_errors_match_torch(name, exc, fn):
    le, lt = _linear_pair(3, 3)
    with pytest.raises(exc):
        fn(torch, lt)
    with pytest.raises(exc):
        fn(ember, le)
