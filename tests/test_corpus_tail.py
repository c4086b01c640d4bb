"""More corpus names (issue 14) against torch: dist, searchsorted, bucketize, cartesian_prod,
Tensor.triu_/tril_ (values, gradients, bad input)."""
import numpy as np
import pytest
import torch

import ember
from opcheck import check, rand, assert_close


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf"), 0])
def test_dist(p):
    a, b = rand(2, 3, seed=1), rand(3, seed=2)
    grad = p != 0  # the 0-"norm" counts nonzeros: no gradient
    check(lambda m, x, y: m.dist(x, y, p), None, a, b, grad=grad)
    check(lambda m, x, y: x.dist(y, p=p), None, a, b, grad=grad)


def test_dist_default_and_promotion():
    check(lambda m, x, y: m.dist(x, y), None, rand(4, seed=3), rand(4, seed=4))
    check(lambda m, x, y: m.dist(x, y.double()), None, rand(4, seed=3), rand(4, seed=4),
          dtypes=("float32",))


SEARCH = [
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([[0.0, 3, 6], [7, 8, 1]])),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([3.0, 7]), right=True),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5, 7]), m.tensor([3.0, 7]), side="right"),
    lambda m: m.searchsorted(m.tensor([1.0, 3, 5]), 4),
    lambda m: m.searchsorted(m.tensor([1, 3, 5]), m.tensor([1.0, 4])),
    lambda m: m.searchsorted(m.tensor([[1, 3, 5], [2, 4, 6]]), m.tensor([[3], [3]]), right=True),
    lambda m: m.searchsorted(m.tensor([5, 1, 3]), m.tensor([2, 4]), sorter=m.tensor([1, 2, 0])),
    lambda m: m.searchsorted(m.tensor([1.0, 2]), m.tensor([1.5]), out_int32=True),
    lambda m: m.bucketize(m.tensor([1.0, 5, 9]), m.tensor([1.0, 5])),
    lambda m: m.bucketize(m.tensor([1.0, 5, 9]), m.tensor([1.0, 5]), out_int32=True, right=True),
    lambda m: m.bucketize(3, m.tensor([1, 3, 5])),
    lambda m: m.bucketize(m.tensor([[0.5, 2.5], [9.0, 1.0]]), m.tensor([1.0, 2, 3])),
]


@pytest.mark.parametrize("i", range(len(SEARCH)))
def test_searchsorted_bucketize(i):
    assert_close(SEARCH[i](ember), SEARCH[i](torch))


def test_search_out():
    for m in (ember, torch):
        out = m.zeros(3, dtype=m.int64)
        r = m.bucketize(m.tensor([0.0, 1.5, 9]), m.tensor([1.0, 2]), out=out)
        assert r is out and out.tolist() == [0, 1, 2]


def test_cartesian_prod():
    for call in (lambda m: m.cartesian_prod(m.arange(2), m.arange(3)),
                 lambda m: m.cartesian_prod(m.arange(2), m.arange(3), m.tensor([5, 6])),
                 lambda m: m.cartesian_prod(m.arange(2))):
        assert_close(call(ember), call(torch))
    check(lambda m, a, b: m.cartesian_prod(a, b), None, rand(2, seed=5), rand(3, seed=6))


@pytest.mark.parametrize("name", ["triu_", "tril_"])
@pytest.mark.parametrize("diagonal", [0, 1, -1])
def test_triangle_inplace(name, diagonal):
    def call(m, a):
        b = a * 1
        assert getattr(b, name)(diagonal) is b
        return b
    check(call, None, rand(2, 3, 4, seed=7))
    for m in (ember, torch):  # the causal-mask idiom from whisper and timm
        mask = m.empty(3, 3).fill_(-np.inf).triu_(1)
        assert mask.tolist()[0] == [0.0, -np.inf, -np.inf]


BAD = [
    (lambda m: m.dist(m.ones(3, dtype=m.long), m.zeros(3, dtype=m.long)), RuntimeError,
     "norm(): input dtype should be either floating point or complex. Got Long instead."),
    (lambda m: m.dist(m.ones(3), m.zeros(2)), RuntimeError, "must match the size"),
    (lambda m: m.ones(3).dist(m.ones(3), p="fro"), TypeError, "must be Number, not str"),
    (lambda m: m.bucketize(m.tensor([1.0, 5]), m.tensor([[1.0, 2]])), RuntimeError,
     "boundaries tensor must be 1 dimension, but got dim(2)"),
    (lambda m: m.searchsorted(m.ones(2, 3), m.ones(3, 2)), RuntimeError,
     "first N-1 dimensions of boundaries tensor and input value tensor must match, but we got "
     "boundaries tensor [2, 3] and input value tensor [3, 2]"),
    (lambda m: m.searchsorted(m.ones(3), m.ones(2), side="left", right=True), RuntimeError,
     "side and right can't be set to opposites"),
    (lambda m: m.searchsorted(m.ones(3), m.ones(2), side="mid"), RuntimeError,
     "side can only be 'left' or 'right' but got mid"),
    (lambda m: m.searchsorted(m.tensor([5, 1, 3]), m.tensor([2]), sorter=m.tensor([1, 2])),
     RuntimeError, "boundary and sorter must have the same size"),
    (lambda m: m.cartesian_prod(m.ones(2, 2)), RuntimeError,
     "Expect a 1D vector, but got shape [2, 2]"),
    (lambda m: m.cartesian_prod(), RuntimeError, "meshgrid expects a non-empty TensorList"),
    (lambda m: m.cartesian_prod(m.arange(2), m.arange(2.0)), RuntimeError,
     "meshgrid expects all tensors to have the same dtype"),
    (lambda m: m.ones(3).triu_(), RuntimeError, "triu: input tensor must have at least 2 dim"),
    (lambda m: m.ones(3, 3, requires_grad=True).tril_(), RuntimeError,
     "a leaf Variable that requires grad is being used in an in-place operation."),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input(i):
    call, exc, msg = BAD[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"


# ---- diff, trapezoid, expand_copy, linalg.solve_triangular, windows, stft --------------------
@pytest.mark.parametrize("call", [
    lambda m, y, x: m.diff(y),
    lambda m, y, x: m.diff(y, n=2, dim=0),
    lambda m, y, x: y.diff(dim=1, prepend=x[:, :1], append=x[:, :2]),
    lambda m, y, x: m.diff(y, n=0),
    lambda m, y, x: m.trapezoid(y),
    lambda m, y, x: m.trapezoid(y, dx=0.5, dim=0),
    lambda m, y, x: m.trapezoid(y, x),
    lambda m, y, x: m.trapezoid(y, x[0].sort().values),
    lambda m, y, x: m.trapz(y, x),
    lambda m, y, x: m.cumulative_trapezoid(y, x),
    lambda m, y, x: m.cumulative_trapezoid(y, dim=0),
    lambda m, y, x: m.expand_copy(y[:1], (3, 4)),
])
def test_diff_trapezoid_expand_copy(call):
    check(call, None, rand(3, 4, seed=8), rand(3, 4, seed=9))


def test_diff_trapezoid_integers():
    for call in (lambda m: m.diff(m.tensor([True, False, False])),
                 lambda m: m.diff(m.tensor([1, 5, 2]), n=5),
                 lambda m: m.trapezoid(m.tensor([1, 2, 3])),
                 lambda m: m.trapezoid(m.ones(0))):
        assert_close(call(ember), call(torch))


TRI = rand(2, 3, 3, seed=10) + 3 * np.eye(3)


@pytest.mark.parametrize("kw, b_shape", [
    (dict(upper=True), (2, 3, 2)), (dict(upper=False), (2, 3, 2)),
    (dict(upper=True, left=False), (2, 4, 3)), (dict(upper=False, unitriangular=True), (3, 1)),
])
def test_solve_triangular(kw, b_shape):
    check(lambda m, a, b: m.linalg.solve_triangular(a, b, **kw), None, TRI, rand(*b_shape))


@pytest.mark.parametrize("name", ["hann_window", "hamming_window", "blackman_window",
                                  "bartlett_window", "kaiser_window"])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 16])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows(name, n, periodic):
    for dt in ("float64", "float32"):
        e = getattr(ember, name)(n, periodic, dtype=getattr(ember, dt))
        t = getattr(torch, name)(n, periodic, dtype=getattr(torch, dt))
        assert_close(e, t, dt)
    assert getattr(ember, name)(3, requires_grad=True).requires_grad


STFT = [
    lambda m, a: m.stft(a, 16, window=m.hann_window(16, dtype=a.dtype), return_complex=True).abs(),
    lambda m, a: m.view_as_real(a.stft(16, 5, 10, window=m.hann_window(10, dtype=a.dtype),
                                       center=False, return_complex=True)),
    lambda m, a: m.stft(a, 16, window=m.ones(16, dtype=a.dtype), normalized=True,
                        onesided=False, return_complex=True).imag,
    lambda m, a: m.stft(a, 8, 3, pad_mode="constant", window=m.hamming_window(8, dtype=a.dtype),
                        return_complex=True).real,
]


@pytest.mark.parametrize("i", range(len(STFT)))
@pytest.mark.parametrize("shape", [(100,), (2, 60)])
def test_stft(i, shape):
    check(STFT[i], None, rand(*shape, seed=11))


def test_stft_warnings():
    for m in (ember, torch):
        with pytest.warns(UserWarning, match="A window was not provided"):
            m.stft(m.ones(64), 16, return_complex=True)
        with pytest.warns(UserWarning, match="return_complex=False is deprecated"):
            r = m.stft(m.ones(64), 16, window=m.ones(16), return_complex=False)
        assert tuple(r.shape) == (9, 17, 2)


BAD_TAIL = [
    (lambda m: m.diff(m.tensor(3.0)), RuntimeError, "at least one-dimensional"),
    (lambda m: m.diff(m.ones(3), n=-1), RuntimeError, "order must be non-negative but got -1"),
    (lambda m: m.diff(m.ones(2, 3), dim=0, prepend=m.zeros(3)), RuntimeError,
     "same dimension as input"),
    (lambda m: m.trapezoid(m.ones(4), m.ones(2)), RuntimeError,
     "There must be one `x` value for each sample point"),
    (lambda m: m.linalg.solve_triangular(m.eye(2), m.ones(2), upper=True), RuntimeError,
     "The input tensor B must have at least 2 dimensions."),
    (lambda m: m.linalg.solve_triangular(m.ones(2), m.ones(2, 2), upper=True), RuntimeError,
     "The input tensor A must have at least 2 dimensions."),
    (lambda m: m.linalg.solve_triangular(m.eye(2), m.ones(3, 1), upper=True), RuntimeError,
     "Incompatible shapes of A and B for the equation AX = B (2x2 and 3x1)"),
    (lambda m: m.linalg.solve_triangular(m.eye(2), m.ones(2, 1), upper=True, left=False),
     RuntimeError, "Incompatible shapes of A and B for the equation XA = B (2x2 and 2x1)"),
    (lambda m: m.linalg.solve_triangular(m.ones(2, 3), m.ones(2, 1), upper=True),
     RuntimeError, "A must be batches of square matrices, but they are 2 by 3 matrices"),
    (lambda m: m.linalg.solve_triangular(m.eye(2, dtype=m.long), m.ones(2, 1, dtype=m.long),
                                         upper=True), NotImplementedError,
     '"triangular_solve_cpu" not implemented for \'Long\''),
    (lambda m: m.hann_window(-1), RuntimeError,
     "hann_window requires non-negative window_length, got window_length=-1"),
    (lambda m: m.hann_window(3, dtype=m.long), RuntimeError,
     "hann_window expects floating point dtypes"),
    (lambda m: m.stft(m.ones(100), 16), RuntimeError,
     "stft requires the return_complex parameter be given for real inputs"),
    (lambda m: m.stft(m.ones(2, 2, 100), 16, window=m.ones(16), return_complex=True),
     RuntimeError, ": expected a 1D or 2D tensor"),
    (lambda m: m.stft(m.ones(100), 16, window=m.ones(5), return_complex=True), RuntimeError,
     "expected a 1D window tensor of size equal to win_length=16"),
    (lambda m: m.stft(m.ones(100), 16, hop_length=0, window=m.ones(16), return_complex=True),
     RuntimeError, "expected hop_length > 0, but got hop_length=0"),
    (lambda m: m.stft(m.ones(100), 16, win_length=20, window=m.ones(20), return_complex=True),
     RuntimeError, "expected 0 < win_length <= n_fft, but got win_length=20"),
]


@pytest.mark.parametrize("i", range(len(BAD_TAIL)))
def test_bad_input_tail(i):
    call, exc, msg = BAD_TAIL[i]
    for m in (torch, ember):
        with pytest.raises(exc) as info:
            call(m)
        assert msg in str(info.value), f"{m.__name__}: {info.value}"


# ---- nn.SyncBatchNorm (one process) and torch.optim.optimizer's helpers ---------------------
def test_sync_batchnorm_one_process():
    x = rand(4, 3, 5, seed=12).astype(np.float32)
    outs = {}
    for m in (ember, torch):
        bn = m.nn.SyncBatchNorm(3, momentum=None)
        assert m.nn.modules.batchnorm.SyncBatchNorm is m.nn.SyncBatchNorm
        y = bn(m.tensor(x))
        bn.eval()
        outs[m.__name__] = (y, bn(m.tensor(x)), bn.running_mean, bn.running_var,
                            bn.num_batches_tracked, repr(bn))
    for e, t in zip(outs["ember"][:5], outs["torch"][:5]):
        assert_close(e, t, "float32")
    assert outs["ember"][5] == outs["torch"][5]


def test_convert_sync_batchnorm():
    for m in (ember, torch):
        net = m.nn.Sequential(m.nn.Conv2d(3, 4, 3), m.nn.BatchNorm2d(4),
                              m.nn.Sequential(m.nn.BatchNorm1d(2, affine=False)))
        net[1].eval()
        conv = m.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        assert [type(c).__name__ for c in conv.modules()] == [
            "Sequential", "Conv2d", "SyncBatchNorm", "Sequential", "SyncBatchNorm"]
        assert conv[1].weight is net[1].weight and conv[1].running_mean is net[1].running_mean
        assert not conv[1].training and conv[2][0].weight is None


@pytest.mark.parametrize("call, exc, msg", [
    (lambda m: m.nn.SyncBatchNorm(4)(m.ones(4)), ValueError, "expected at least 2D input"),
    (lambda m: m.nn.SyncBatchNorm(0)(m.ones(4, 0)), ValueError,
     "SyncBatchNorm number of input channels should be non-zero"),
])
def test_sync_batchnorm_bad(call, exc, msg):
    for m in (torch, ember):
        with pytest.raises(exc, match=msg):
            call(m)


def test_optimizer_helpers():
    import torch.optim.optimizer as to
    import ember.optim.optimizer as eo
    assert eo._get_capturable_supported_devices() == to._get_capturable_supported_devices()
    assert (eo._get_capturable_supported_devices(False)
            == to._get_capturable_supported_devices(False))
    assert eo.ParamsT is not None
    groups = {}
    for m, mod in ((ember, eo), (torch, to)):
        a = [m.ones(2), m.ones(2, dtype=m.float64), m.ones(3)]
        b = [m.zeros(2), m.zeros(2, dtype=m.float64), None]
        flags = [mod._default_to_fused_or_foreach(a, d, f) for d in (False, True)
                 for f in (False, True)]
        got = mod.Optimizer._group_tensors_by_device_and_dtype([a, b], with_indices=True)
        got0 = mod.Optimizer._group_tensors_by_device_and_dtype([a, b])
        groups[m.__name__] = (flags, {str(k[1])[6:]: ([[None if t is None else t.tolist()
                                                       for t in lst] for lst in v[0]], v[1])
                                      for k, v in got.items()},
                              sorted(len(v[1]) for v in got0.values()))
    assert groups["ember"] == groups["torch"]


def test_use_grad_for_differentiable():
    import ember.optim.optimizer as eo

    class Probe(eo.Optimizer):
        @eo._use_grad_for_differentiable
        def step(self, closure=None):
            """probe"""
            return ember.is_grad_enabled()
    p = [ember.ones(2, requires_grad=True)]
    assert Probe(p, {"differentiable": False}).step() is False
    assert Probe(p, {"differentiable": True}).step() is True
    assert Probe.step.__doc__ == "probe"
