"""ember.fft against torch.fft: values, dtypes and gradients of every transform with torch's
``n``/``s``, ``dim`` and ``norm`` arguments, in double and single precision; the helpers;
Hypothesis over sizes; second derivatives; torch's errors for bad arguments."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
from complexcheck import ccheck, crand, rrand, same

NORMS = [None, "backward", "ortho", "forward"]
Z2, X2 = crand(4, 6, seed=1), rrand(4, 6, seed=2)
Z3, X3 = crand(2, 3, 5, seed=3), rrand(2, 5, 4, seed=4)

ROWS = {
    # complex to complex
    "fft": (lambda m, x, nm: m.fft.fft(x, norm=nm), Z2),
    "fft_real_input": (lambda m, x, nm: m.fft.fft(x, norm=nm), X2),
    "fft_pad": (lambda m, x, nm: m.fft.fft(x, n=9, dim=0, norm=nm), Z2),
    "fft_trim": (lambda m, x, nm: m.fft.fft(x, n=4, norm=nm), Z2),
    "ifft": (lambda m, x, nm: m.fft.ifft(x, norm=nm), Z2),
    "ifft_pad_real": (lambda m, x, nm: m.fft.ifft(x, n=8, norm=nm), X2),
    "fft2": (lambda m, x, nm: m.fft.fft2(x, norm=nm), Z3),
    "ifft2_s": (lambda m, x, nm: m.fft.ifft2(x, s=(2, 7), norm=nm), Z3),
    "fftn": (lambda m, x, nm: m.fft.fftn(x, norm=nm), Z3),
    "fftn_s_only": (lambda m, x, nm: m.fft.fftn(x, s=(4, 3), norm=nm), Z3),
    "fftn_s_dim": (lambda m, x, nm: m.fft.fftn(x, s=(-1, 6), dim=(0, 2), norm=nm), Z3),
    "ifftn_dim": (lambda m, x, nm: m.fft.ifftn(x, dim=(2, 0), norm=nm), Z3),
    # real to one-sided
    "rfft": (lambda m, x, nm: m.fft.rfft(x, norm=nm), X2),
    "rfft_odd": (lambda m, x, nm: m.fft.rfft(x, n=7, norm=nm), X2),
    "rfft_trim_dim0": (lambda m, x, nm: m.fft.rfft(x, n=3, dim=0, norm=nm), X2),
    "rfft2": (lambda m, x, nm: m.fft.rfft2(x, norm=nm), X3),
    "rfftn_s": (lambda m, x, nm: m.fft.rfftn(x, s=(3, 6), norm=nm), X3),
    "rfftn_dim": (lambda m, x, nm: m.fft.rfftn(x, dim=(2, 0), norm=nm), X3),
    # one-sided to real
    "irfft": (lambda m, x, nm: m.fft.irfft(x, norm=nm), Z2),
    "irfft_odd": (lambda m, x, nm: m.fft.irfft(x, n=9, norm=nm), Z2),
    "irfft_short": (lambda m, x, nm: m.fft.irfft(x, n=4, norm=nm), Z2),
    "irfft_long": (lambda m, x, nm: m.fft.irfft(x, n=16, dim=0, norm=nm), Z2),
    "irfft_real_input": (lambda m, x, nm: m.fft.irfft(x, norm=nm), X2),
    "irfft2": (lambda m, x, nm: m.fft.irfft2(x, norm=nm), Z3),
    "irfftn_s": (lambda m, x, nm: m.fft.irfftn(x, s=(3, 7), norm=nm), Z3),
    "irfftn_all": (lambda m, x, nm: m.fft.irfftn(x, norm=nm), Z3),
    # Hermitian
    "hfft": (lambda m, x, nm: m.fft.hfft(x, norm=nm), Z2),
    "hfft_n": (lambda m, x, nm: m.fft.hfft(x, n=7, dim=0, norm=nm), Z2),
    "ihfft": (lambda m, x, nm: m.fft.ihfft(x, norm=nm), X2),
    "hfft2": (lambda m, x, nm: m.fft.hfft2(x, norm=nm), Z3),
    "ihfft2": (lambda m, x, nm: m.fft.ihfft2(x, norm=nm), X3),
    "hfftn_s": (lambda m, x, nm: m.fft.hfftn(x, s=(2, 6), norm=nm), Z3),
    "ihfftn": (lambda m, x, nm: m.fft.ihfftn(x, norm=nm), X3),
    # round trips and compositions
    "irfft_of_rfft": (lambda m, x, nm: m.fft.irfft(m.fft.rfft(x, norm=nm), n=6, norm=nm), X2),
    "spectral_product": (lambda m, x, w, nm: m.fft.irfft2(m.fft.rfft2(x, norm=nm) * w,
                                                          s=(5, 4), norm=nm), X3,
                         crand(5, 3, seed=5)),
}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(ROWS))
def test_transform_against_torch(name, norm):
    fn, *inputs = ROWS[name]
    ccheck(lambda m, *xs: fn(m, *xs, norm), *inputs)


@pytest.mark.parametrize("name,dims", [("fftshift", None), ("fftshift", 1), ("ifftshift", None),
                                       ("ifftshift", (0, 2)), ("fftshift", (-1,))])
def test_shifts(name, dims):
    ccheck(lambda m, x: getattr(m.fft, name)(x, dim=dims), Z3)
    a = np.arange(30).reshape(2, 3, 5)
    assert getattr(ember.fft, name)(ember.tensor(a), dims).tolist() == \
        getattr(torch.fft, name)(torch.tensor(a), dims).tolist()


@pytest.mark.parametrize("n", [1, 2, 5, 8])
@pytest.mark.parametrize("d", [1.0, 0.25])
@pytest.mark.parametrize("dtype", [None, "float64"])
def test_frequencies(n, d, dtype):
    for fn in ("fftfreq", "rfftfreq"):
        kw = {} if dtype is None else {"dtype": getattr(ember, dtype)}
        kt = {} if dtype is None else {"dtype": getattr(torch, dtype)}
        same(getattr(ember.fft, fn)(n, d, **kw), getattr(torch.fft, fn)(n, d, **kt),
             dtype or "float32", fn)


@pytest.mark.parametrize("src,dst", [("int64", "complex64"), ("bool", "complex64"),
                                     ("float32", "complex64"), ("float64", "complex128"),
                                     ("complex64", "complex64")])
def test_result_dtypes(src, dst):
    e = ember.fft.fft(ember.ones(4, dtype=getattr(ember, src)))
    t = torch.fft.fft(torch.ones(4, dtype=getattr(torch, src)))
    assert e.dtype.name == dst == str(t.dtype).split(".")[1]
    if src.startswith("float"):
        r = ember.fft.irfft(ember.fft.rfft(ember.ones(4, dtype=getattr(ember, src))))
        assert r.dtype.name == src


def test_grad_fn_names():
    x = ember.ones(4, requires_grad=True)
    assert ember.fft.rfft(x).grad_fn.name() == "FftR2CBackward0"
    assert ember.fft.irfft(ember.fft.rfft(x)).grad_fn.name() == "FftC2RBackward0"
    assert ember.fft.ifft(x.to(ember.complex64)).grad_fn.name() == "FftC2CBackward0"


@pytest.mark.parametrize("fn", ["rfft", "irfft", "fft", "hfft", "rfft2"])
def test_second_derivatives(fn):
    rng = np.random.default_rng(0)
    real_in = fn in ("rfft", "rfft2")
    a = rng.standard_normal((3, 4)) if real_in else \
        rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    x = ember.tensor(a, requires_grad=True)

    def f(x):
        y = getattr(ember.fft, fn)(x, norm="ortho")
        return y * y  # non-linear, so the second derivative is not zero
    assert ember.autograd.gradcheck(f, (x,))
    assert ember.autograd.gradgradcheck(f, (x,))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(0, 2),
       st.sampled_from(NORMS), st.one_of(st.none(), st.integers(1, 9)), st.integers(0, 10 ** 6))
def test_sizes_hypothesis(shape, dim_pick, norm, n, seed):
    dim = dim_pick % len(shape)
    x, z = rrand(*shape, seed=seed), crand(*shape, seed=seed + 1)
    one = (("complex128", "float64"),)
    ccheck(lambda m, x: m.fft.rfft(x, n=n, dim=dim, norm=norm), x, precisions=one)
    ccheck(lambda m, z: m.fft.fft(z, n=n, dim=dim, norm=norm), z, precisions=one)
    if n is not None or shape[dim] > 1:  # irfft's default length 2 * (m - 1) needs m > 1
        ccheck(lambda m, z: m.fft.irfft(z, n=n, dim=dim, norm=norm), z, precisions=one)
    ccheck(lambda m, z: m.fft.fftn(z, norm=norm), z, precisions=one)


BAD = {
    "norm": lambda m: m.fft.fft(m.ones(4), norm="bad"),
    "n_zero": lambda m: m.fft.fft(m.ones(4), n=0),
    "n_negative": lambda m: m.fft.rfft(m.ones(4), n=-1),
    "dim_range": lambda m: m.fft.fft(m.ones(4, 6), dim=2),
    "s_dim_length": lambda m: m.fft.fftn(m.ones(4, 6), s=(2, 3), dim=(0,)),
    "s_too_long": lambda m: m.fft.fftn(m.ones(4), s=(2, 3)),
    "dims_unique": lambda m: m.fft.fftn(m.ones(4, 6), dim=(0, 0)),
    "s_zero": lambda m: m.fft.fftn(m.ones(4, 6), s=(0, 3)),
    "rfft_complex": lambda m: m.fft.rfft(m.ones(4, dtype=m.complex64)),
    "rfftn_complex": lambda m: m.fft.rfftn(m.ones(4, dtype=m.complex64)),
    "ihfft_complex": lambda m: m.fft.ihfft(m.ones(4, dtype=m.complex64)),
    "irfft_one_bin": lambda m: m.fft.irfft(m.ones(1, dtype=m.complex64)),
    "half": lambda m: m.fft.fft(m.ones(4, dtype=m.float16)),
    "zero_dim": lambda m: m.fft.fft(m.tensor(1.0)),
    "fft2_1d": lambda m: m.fft.fft2(m.ones(3)),
    "not_tensor": lambda m: m.fft.fft("a"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_arguments_like_torch(name):
    errs = []
    for m in (torch, ember):
        with pytest.raises(Exception) as info:
            BAD[name](m)
        errs.append(info.value)
    t, e = errs
    assert type(e) is type(t), f"{type(e).__name__}: {e} vs {type(t).__name__}: {t}"
    assert str(e) == str(t)
