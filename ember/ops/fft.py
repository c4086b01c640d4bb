"""Discrete Fourier transforms: the three kinds PyTorch's ``torch.fft`` is built from.

``FftC2C`` (complex to complex, forward or inverse), ``FftR2C`` (real to the one-sided
complex half, ``rfftn``) and ``FftC2R`` (the one-sided half back to real, ``irfftn``); each
runs ``ctx.xp.fft`` over a set of dims with the output sizes ``s`` already resolved and a
``norm`` of "backward", "ortho" or "forward".  Argument handling lives in ``ember/fft.py``.

NOTE [ FFT gradients ]
A transform is linear, so its gradient is its adjoint (PyTorch's fft_*_backward):
- c2c: the transform the other way with the same scale factor, i.e. the inverse with the
  dual ``norm`` ("backward" <-> "forward", "ortho" stays); a real input keeps the real part.
- r2c: the one-sided gradient zero-padded to the full length, then the inverse c2c with the
  dual norm, real part.
- c2r: the r2c of the gradient with the dual norm, the bins that stand for two conjugate
  bins (all but DC and, for even length, Nyquist) doubled.
Each then gives back the input's own sizes: trimmed where ``s`` zero-padded the input,
zero-padded where ``s`` trimmed it.  Backward calls the same Functions, so create_graph
differentiates again.
"""
from __future__ import annotations

from ..autograd.function import Function
from .._tensor import Tensor, _make

_DUAL = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _zeros_like_shape(t: Tensor, shape) -> Tensor:
    from .._backend import xp_of
    return _make(xp_of(t._data).zeros(shape, t._data.dtype))


def _pad_to(t: Tensor, d: int, want: int) -> Tensor:
    """``t`` zero-padded (or trimmed) along dim ``d`` to length ``want``."""
    from .movement import cat
    have = t._data.shape[d]
    if have > want:
        return t.narrow(d, 0, want)
    if have < want:
        zshape = list(t._data.shape)
        zshape[d] = want - have
        return cat([t, _zeros_like_shape(t, tuple(zshape))], d)
    return t


def _fit(t: Tensor, dims, shape) -> Tensor:
    for d in dims:
        t = _pad_to(t, d, shape[d])
    return t


class FftC2C(Function):
    """``fftn`` (or ``ifftn`` when ``inverse``) over ``dims`` with output sizes ``s``."""

    raw = True
    backward_name = "FftC2CBackward0"

    @staticmethod
    def forward(ctx, x, s, dims, norm, inverse):
        ctx.meta = (x.shape, x.dtype.kind == "c", s, dims, norm, inverse)
        fn = ctx.xp.fft.ifftn if inverse else ctx.xp.fft.fftn
        return fn(x, s=s, axes=dims, norm=norm)

    @staticmethod
    def backward(ctx, g):
        shape, was_complex, s, dims, norm, inverse = ctx.meta
        gx = c2c(g, None, dims, _DUAL[norm], not inverse)
        gx = _fit(gx, dims, shape)
        return (gx if was_complex else gx.real), None, None, None, None


class FftR2C(Function):
    """``rfftn``: real input, the last of ``dims`` kept one-sided (``s[-1] // 2 + 1`` bins)."""

    raw = True
    backward_name = "FftR2CBackward0"

    @staticmethod
    def forward(ctx, x, s, dims, norm):
        ctx.meta = (x.shape, s, dims, norm)
        return ctx.xp.fft.rfftn(x, s=s, axes=dims, norm=norm)

    @staticmethod
    def backward(ctx, g):
        shape, s, dims, norm = ctx.meta
        full = _pad_to(g, dims[-1], s[-1])  # the missing conjugate half contributes nothing
        gx = c2c(full, None, dims, _DUAL[norm], True).real
        return _fit(gx, dims, shape), None, None, None


class FftC2R(Function):
    """``irfftn``: one-sided complex input (``s[-1] // 2 + 1`` bins used), real output."""

    raw = True
    backward_name = "FftC2RBackward0"

    @staticmethod
    def forward(ctx, y, s, dims, norm):
        ctx.meta = (y.shape, y.dtype.kind == "c", s, dims, norm)
        return ctx.xp.fft.irfftn(y, s=s, axes=dims, norm=norm)

    @staticmethod
    def backward(ctx, g):
        shape, was_complex, s, dims, norm = ctx.meta
        gy = r2c(g, None, dims, _DUAL[norm])
        n = s[-1]
        doubled = n - (n // 2 + 1)  # bins 1..doubled stand for themselves and their mirror
        if doubled > 0:
            from .._backend import xp_of
            xp = xp_of(g._data)
            d = dims[-1]
            w = xp.ones(n // 2 + 1, dtype=g._data.dtype)
            w[1:1 + doubled] = 2
            w = w.reshape((-1,) + (1,) * (g._data.ndim - 1 - d))
            gy = gy * _make(w)
        gy = _fit(gy, dims, shape)
        return (gy if was_complex else gy.real), None, None, None


def _sizes(x: Tensor, s, dims) -> tuple:
    return tuple(s) if s is not None else tuple(x._data.shape[d] for d in dims)


def c2c(x: Tensor, s, dims, norm: str, inverse: bool) -> Tensor:
    """The complex transform of ``x`` over ``dims`` (sizes ``s``, None: the input's)."""
    return FftC2C.apply(x, _sizes(x, s, dims), tuple(dims), norm, inverse)


def r2c(x: Tensor, s, dims, norm: str) -> Tensor:
    """The one-sided transform of real ``x`` over ``dims``."""
    return FftR2C.apply(x, _sizes(x, s, dims), tuple(dims), norm)


def c2r(x: Tensor, s, dims, norm: str) -> Tensor:
    """The real signal of one-sided ``x`` (``s[-1]`` defaults to ``2 * (m - 1)``)."""
    if s is None:
        s = _sizes(x, None, dims)[:-1] + (2 * (x._data.shape[dims[-1]] - 1),)
    return FftC2R.apply(x, tuple(s), tuple(dims), norm)
