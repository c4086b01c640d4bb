"""``ember.fft``: PyTorch's discrete Fourier transforms (``torch.fft``).

Design note.  Every transform here is one of three differentiable primitives in
``ember/ops/fft.py`` (complex-to-complex, real-to-one-sided, one-sided-to-real, over a set of
dims; NOTE [ FFT gradients ] there), run by the backend's ``xp.fft`` (NumPy's pocketfft on
cpu).  This module only turns PyTorch's arguments into (sizes ``s``, dims, norm):

- ``n``/``s`` zero-pad or trim the input along each transformed dim before the transform
  (``-1`` in ``s`` keeps that dim's size); for the ``irfft``/``hfft`` family the last size is
  the real output length, ``2 * (m - 1)`` by default;
- ``dim`` picks the dims: ``-1`` for the 1-D transforms, ``(-2, -1)`` for the 2-D ones, all
  dims (or the last ``len(s)``) for the n-D ones;
- ``norm``: "backward" (default: no scale forward, 1/n inverse), "ortho" (1/sqrt(n) both
  ways) or "forward" (1/n forward, none inverse).

Dtypes as PyTorch: float32 gives complex64 and float64 complex128; integer and bool inputs
compute in the default float dtype; float16/bfloat16 inputs are refused (PyTorch's CPU
kernels refuse half too).  ``hfft``/``ihfft`` are the ``irfft``/``rfft`` of the conjugate
with the dual norm, composed from the primitives.  The life of ``fft.rfft(x)``: ``_real_input``
checks the dtype, ``_dims_1d`` resolves ``n`` and ``dim``, ``ops.fft.r2c`` applies
``FftR2C`` (``xp.fft.rfftn`` forward, its adjoint in backward).
"""
from __future__ import annotations

import builtins

from . import _dtype
from ._tensor import Tensor, _wrap_dim
from .ops import fft as _ops
from .ops._util import need_tensor, scalar_name
from .ops.complex import conj
from .ops.movement import roll

__all__ = ["fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
           "rfftn", "irfftn", "hfft", "ihfft", "hfft2", "ihfft2", "hfftn", "ihfftn", "fftfreq",
           "rfftfreq", "fftshift", "ifftshift"]

_NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _norm(norm) -> str:
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise RuntimeError(f'Invalid normalization mode: "{norm}"')
    return norm


def _input(x, name: str) -> Tensor:
    """``x`` in a dtype the transforms take: ints and bool go to the default float dtype."""
    x = need_tensor(x, "fft_" + name, wrap_arrays=True)
    dt = x._data.dtype
    if dt.kind in "biu":
        return x.to(_dtype.get_default_dtype())
    if dt.kind != "c" and (dt.itemsize == 2 or dt.kind != "f"):
        raise RuntimeError(f"Unsupported dtype {scalar_name(dt)}")
    return x


def _real_input(x, name: str, nd: bool) -> Tensor:
    x = _input(x, name)
    if x._data.dtype.kind == "c":
        what = "a real-valued input tensor" if nd else "a real input tensor"
        raise RuntimeError(f"{name} expects {what}, but got {scalar_name(x._data.dtype)}")
    return x


def _check_n(n) -> None:
    if n < 1:
        raise RuntimeError(f"Invalid number of data points ({n}) specified")


def _dims_1d(x: Tensor, n, dim):
    """(sizes, dims) of a 1-D transform: ``n`` points along ``dim``."""
    if x._data.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = _wrap_dim(dim, x._data.ndim)
    if n is None:
        return None, (d,)
    _check_n(n)
    return (n,), (d,)


def _dims_nd(x: Tensor, s, dim, default_dim=None):
    """(sizes, dims) of an n-D transform, as PyTorch's canonicalize_fft_shape_and_dim_args."""
    ndim = x._data.ndim
    if dim is None:
        dim = default_dim
    if dim is not None:
        if isinstance(dim, builtins.int):
            dim = (dim,)
        dims = tuple(_wrap_dim(d, ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError("FFT dims must be unique")
    if s is not None:
        if isinstance(s, builtins.int):
            s = (s,)
        s = tuple(s)
        if dim is not None:
            if len(s) != len(dims):
                raise RuntimeError("When given, dim and shape arguments must have the same "
                                   "length")
        else:
            if len(s) > ndim:
                raise RuntimeError(f"Got shape with {len(s)} values but input tensor only has "
                                   f"{ndim} dimensions.")
            dims = tuple(range(ndim - len(s), ndim))
        sizes = []
        for n, d in zip(s, dims):
            if n == -1:
                n = x._data.shape[d]
            else:
                _check_n(n)
            sizes.append(n)
        return tuple(sizes), dims
    if dim is None:
        dims = tuple(range(ndim))
    return None, dims


def _c2r_sizes(x: Tensor, s, dims, n_last=None):
    """Sizes of a one-sided-to-real transform: the last is the real output length."""
    shape = x._data.shape
    sizes = list(s) if s is not None else [shape[d] for d in dims]
    last = n_last if n_last is not None else (
        s[-1] if s is not None else 2 * (shape[dims[-1]] - 1))
    _check_n(last)
    sizes[-1] = last
    return tuple(sizes)


# ---- complex to complex ------------------------------------------------------------------

def fft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """One-dimensional discrete Fourier transform (``torch.fft.fft``)."""
    x = _input(input, "fft")
    s, dims = _dims_1d(x, n, dim)
    return _out(_ops.c2c(x, s, dims, _norm(norm), False), out)


def ifft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """One-dimensional inverse discrete Fourier transform."""
    x = _input(input, "ifft")
    s, dims = _dims_1d(x, n, dim)
    return _out(_ops.c2c(x, s, dims, _norm(norm), True), out)


def fft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional discrete Fourier transform."""
    return fftn(input, s, dim, norm, out=out)


def ifft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional inverse discrete Fourier transform."""
    return ifftn(input, s, dim, norm, out=out)


def fftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """N-dimensional discrete Fourier transform (all dims, or the last ``len(s)``)."""
    x = _input(input, "fftn")
    s, dims = _dims_nd(x, s, dim)
    return _out(_ops.c2c(x, s, dims, _norm(norm), False), out)


def ifftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """N-dimensional inverse discrete Fourier transform."""
    x = _input(input, "ifftn")
    s, dims = _dims_nd(x, s, dim)
    return _out(_ops.c2c(x, s, dims, _norm(norm), True), out)


# ---- real input, one-sided output ----------------------------------------------------------

def rfft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """The ``n // 2 + 1`` non-negative frequency bins of a real signal's DFT."""
    x = _real_input(input, "rfft", False)
    s, dims = _dims_1d(x, n, dim)
    return _out(_ops.r2c(x, s, dims, _norm(norm)), out)


def irfft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """The real signal (length ``n``, default ``2 * (m - 1)``) of a one-sided spectrum."""
    x = _input(input, "irfft")
    s, dims = _dims_1d(x, n, dim)
    return _out(_ops.c2r(x, _c2r_sizes(x, s, dims), dims, _norm(norm)), out)


def rfft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional ``rfftn``."""
    return rfftn(input, s, dim, norm, out=out)


def irfft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional ``irfftn``."""
    return irfftn(input, s, dim, norm, out=out)


def rfftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """N-dimensional DFT of a real signal, one-sided along the last transformed dim."""
    x = _real_input(input, "rfftn", True)
    s, dims = _dims_nd(x, s, dim)
    return _out(_ops.r2c(x, s, dims, _norm(norm)), out)


def irfftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """The real n-D signal of a spectrum one-sided along the last transformed dim."""
    x = _input(input, "irfftn")
    s, dims = _dims_nd(x, s, dim)
    return _out(_ops.c2r(x, _c2r_sizes(x, s, dims), dims, _norm(norm)), out)


# ---- Hermitian input: the conjugate's real transforms with the dual norm -------------------

def hfft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """The real DFT of a one-sided Hermitian signal: ``irfft(conj(input))``, dual norm."""
    x = _input(input, "hfft")
    s, dims = _dims_1d(x, n, dim)
    return _out(_ops.c2r(conj(x), _c2r_sizes(x, s, dims), dims, _DUAL[_norm(norm)]), out)


def ihfft(input, n=None, dim=-1, norm=None, *, out=None) -> Tensor:
    """The inverse of ``hfft``: ``conj(rfft(input))``, dual norm."""
    x = _real_input(input, "ihfft", False)
    s, dims = _dims_1d(x, n, dim)
    return _out(conj(_ops.r2c(x, s, dims, _DUAL[_norm(norm)])), out)


def hfft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional ``hfftn``."""
    return hfftn(input, s, dim, norm, out=out)


def ihfft2(input, s=None, dim=(-2, -1), norm=None, *, out=None) -> Tensor:
    """Two-dimensional ``ihfftn``."""
    return ihfftn(input, s, dim, norm, out=out)


def hfftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """N-dimensional ``hfft``: ``irfftn(conj(input))`` with the dual norm."""
    x = _input(input, "hfftn")
    s, dims = _dims_nd(x, s, dim)
    return _out(_ops.c2r(conj(x), _c2r_sizes(x, s, dims), dims, _DUAL[_norm(norm)]), out)


def ihfftn(input, s=None, dim=None, norm=None, *, out=None) -> Tensor:
    """N-dimensional ``ihfft``: ``conj(rfftn(input))`` with the dual norm."""
    x = _real_input(input, "ihfftn", True)
    s, dims = _dims_nd(x, s, dim)
    return _out(conj(_ops.r2c(x, s, dims, _DUAL[_norm(norm)])), out)


# ---- helpers: sample frequencies and shifts ------------------------------------------------

def _bins(k: Tensor, n, d, dtype, device, requires_grad) -> Tensor:
    """Integer bins ``k`` as frequencies ``k / (n * d)``; PyTorch multiplies by ``1 / (n * d)``
    in the result dtype."""
    dt = dtype if dtype is not None else _dtype.get_default_dtype()
    r = k.to(dt) * (1.0 / (n * d))
    if device is not None:
        r = r.to(device)
    return r.requires_grad_() if requires_grad else r


def fftfreq(n, d=1.0, *, out=None, dtype=None, layout=None, device=None,
            requires_grad=False) -> Tensor:
    """Sample frequencies of ``fft(n points)``: ``[0, 1, ..., -2, -1] / (n * d)``."""
    from ._creation import arange
    k = arange(n, dtype=_dtype.int64)
    k = k - (k >= (n + 1) // 2).to(_dtype.int64) * n  # the upper half are negative bins
    return _out(_bins(k, n, d, dtype, device, requires_grad), out)


def rfftfreq(n, d=1.0, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False) -> Tensor:
    """Sample frequencies of ``rfft(n points)``: ``[0, 1, ..., n // 2] / (n * d)``."""
    from ._creation import arange
    k = arange(n // 2 + 1, dtype=_dtype.int64)
    return _out(_bins(k, n, d, dtype, device, requires_grad), out)


def _shift_dims(x: Tensor, dim):
    if dim is None:
        return tuple(range(x._data.ndim))
    if isinstance(dim, builtins.int):
        return (dim,)
    return tuple(dim)


def fftshift(input, dim=None) -> Tensor:
    """Move the zero-frequency bin to the centre: roll each dim by ``size // 2``."""
    x = need_tensor(input, "fft_fftshift", wrap_arrays=True)
    dims = _shift_dims(x, dim)
    if not dims:
        return x
    return roll(x, [x._data.shape[_wrap_dim(d, x._data.ndim)] // 2 for d in dims], dims)


def ifftshift(input, dim=None) -> Tensor:
    """The inverse of ``fftshift``: roll each dim by ``(size + 1) // 2``."""
    x = need_tensor(input, "fft_ifftshift", wrap_arrays=True)
    dims = _shift_dims(x, dim)
    if not dims:
        return x
    return roll(x, [(x._data.shape[_wrap_dim(d, x._data.ndim)] + 1) // 2 for d in dims], dims)


def _out(result: Tensor, out) -> Tensor:
    if out is None:
        return result
    from .autograd.inplace import copy_into_out
    return copy_into_out(out, result)
