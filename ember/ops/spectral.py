"""Spectral ops: the window functions and the short-time Fourier transform (``torch.stft``).

The windows are creation functions (no inputs to differentiate): the textbook formulas over
``n = 0 .. N-1`` with denominator ``N - 1``, or ``N`` when ``periodic`` (the window of length
``N + 1`` with its last sample dropped, as PyTorch builds it).  ``stft`` is a composite of
differentiable ops: reflect-padding (``F.pad``), framing (``Tensor.unfold``), the window
product and ``fft.rfft``/``fft.fft``, so its gradient is theirs.
"""
from __future__ import annotations

import math
import warnings

from .._tensor import Tensor
from .. import _dtype

__all__ = ["hann_window", "hamming_window", "blackman_window", "bartlett_window",
           "kaiser_window", "stft"]


def _window(name: str, window_length, periodic, dtype, device, requires_grad, fn) -> Tensor:
    """``fn(xp, n, denominator)`` over the sample indices, as a tensor of ``dtype``."""
    from .._creation import tensor, _xp
    dt = dtype or _dtype.get_default_dtype()
    if not dt.is_floating_point:
        raise RuntimeError(f"{name} expects floating point dtypes, got: {dt}")
    if window_length < 0:
        raise RuntimeError(f"{name} requires non-negative window_length, got "
                           f"window_length={window_length}")
    xp = _xp(device)
    if window_length <= 1:
        values = xp.ones(window_length, dtype="float64")
    else:
        denom = window_length if periodic else window_length - 1
        values = fn(xp, xp.arange(window_length, dtype="float64"), denom)
    return tensor(values, dtype=dt, device=device, requires_grad=requires_grad)


def hann_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None,
                device=None, requires_grad: bool = False) -> Tensor:
    """``0.5 - 0.5 cos(2 pi n / D)``."""
    return _window("hann_window", window_length, periodic, dtype, device, requires_grad,
                   lambda xp, n, d: 0.5 - 0.5 * xp.cos(2 * math.pi * n / d))


def hamming_window(window_length: int, periodic: bool = True, alpha: float = 0.54,
                   beta: float = 0.46, *, dtype=None, layout=None, device=None,
                   requires_grad: bool = False) -> Tensor:
    """``alpha - beta cos(2 pi n / D)``."""
    return _window("hamming_window", window_length, periodic, dtype, device, requires_grad,
                   lambda xp, n, d: alpha - beta * xp.cos(2 * math.pi * n / d))


def blackman_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None,
                    device=None, requires_grad: bool = False) -> Tensor:
    """``0.42 - 0.5 cos(2 pi n / D) + 0.08 cos(4 pi n / D)``."""
    return _window("blackman_window", window_length, periodic, dtype, device, requires_grad,
                   lambda xp, n, d: (0.42 - 0.5 * xp.cos(2 * math.pi * n / d)
                                     + 0.08 * xp.cos(4 * math.pi * n / d)))


def bartlett_window(window_length: int, periodic: bool = True, *, dtype=None, layout=None,
                    device=None, requires_grad: bool = False) -> Tensor:
    """``1 - |2 n / D - 1|``."""
    return _window("bartlett_window", window_length, periodic, dtype, device, requires_grad,
                   lambda xp, n, d: 1 - xp.abs(2 * n / d - 1))


def kaiser_window(window_length: int, periodic: bool = True, beta: float = 12.0, *,
                  dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
    """``I0(beta sqrt(1 - (2 n / D - 1)^2)) / I0(beta)``."""
    return _window("kaiser_window", window_length, periodic, dtype, device, requires_grad,
                   lambda xp, n, d: (xp.i0(beta * xp.sqrt(xp.clip(1 - (2 * n / d - 1) ** 2, 0,
                                                                   None))) / xp.i0(beta)))


def _stft_call(input, n_fft, hop, win, window, normalized, onesided, return_complex) -> str:
    """How PyTorch names the call in stft's errors."""
    w = "None" if window is None else (f"torch.{window.dtype.legacy_name}"
                                        f"{{{list(window.shape)}}}")
    return (f"stft(torch.{input.dtype.legacy_name}{list(input.shape)}, n_fft={n_fft}, "
            f"hop_length={hop}, win_length={win}, window={w}, normalized={int(normalized)}, "
            f"onesided={onesided}, return_complex={int(bool(return_complex))}, "
            f"align_to_window=None)")


def stft(input: Tensor, n_fft: int, hop_length=None, win_length=None, window=None,
         center: bool = True, pad_mode: str = "reflect", normalized: bool = False,
         onesided=None, return_complex=None) -> Tensor:
    """Short-time Fourier transform: ``X[..., f, t] = sum_k w[k] x[t * hop + k]
    exp(-2 pi i f k / n_fft)`` over frames of ``n_fft`` samples (``torch.stft``)."""
    from .. import fft
    from ..nn import functional as F
    from .complex import view_as_real
    if return_complex is None and not input.is_complex() and not (
            window is not None and window.is_complex()):
        raise RuntimeError("stft requires the return_complex parameter be given for real "
                           "inputs, and will further require that return_complex=True in a "
                           "future PyTorch release.")
    if return_complex is False:
        warnings.warn("stft with return_complex=False is deprecated. In a future pytorch "
                      "release, stft will return complex tensors for all inputs, and "
                      "return_complex=False will raise an error.\nNote: you can still call "
                      "torch.view_as_real on the complex output to recover the old return "
                      "format.", UserWarning, stacklevel=2)
    hop = n_fft // 4 if hop_length is None else hop_length
    win = n_fft if win_length is None else win_length
    if window is None:
        warnings.warn("A window was not provided. A rectangular window will be applied,which is "
                      "known to cause spectral leakage. Other windows such as torch.hann_window "
                      "or torch.hamming_window are recommended to reduce spectral leakage.To "
                      "suppress this warning and use a rectangular window, explicitly set "
                      "`window=torch.ones(n_fft, device=<device>)`.", UserWarning, stacklevel=2)
    x = input
    if center:
        pad = n_fft // 2
        extra = 3 - x.dim()  # F.pad's reflect mode pads the last dim of a 3-D input
        x = F.pad(x.reshape((1,) * max(extra, 0) + tuple(x.shape)), (pad, pad),
                  mode=pad_mode)
        x = x.reshape(tuple(x.shape[max(extra, 0):]))

    def fail(what):
        call = _stft_call(x, n_fft, hop, win, window, normalized, onesided, return_complex)
        return RuntimeError(f"{call} : {what}")
    if x.dim() not in (1, 2):
        raise fail("expected a 1D or 2D tensor")
    length = x.shape[-1]
    if not 0 < n_fft <= length:
        raise fail(f"expected 0 < n_fft < {length}, but got n_fft={n_fft}")
    if hop <= 0:
        raise fail(f"expected hop_length > 0, but got hop_length={hop}")
    if not 0 < win <= n_fft:
        raise fail(f"expected 0 < win_length <= n_fft, but got win_length={win}")
    if window is not None and (window.dim() != 1 or window.shape[0] != win):
        raise fail(f"expected a 1D window tensor of size equal to win_length={win}, but got "
                   f"window with size {list(window.shape)}")
    frames = x.unfold(-1, n_fft, hop)  # (..., n_frames, n_fft)
    if window is not None:
        if win < n_fft:  # centred in the frame
            left = (n_fft - win) // 2
            window = F.pad(window, (left, n_fft - win - left))
        frames = frames * window
    complex_in = x.is_complex() or (window is not None and window.is_complex())
    one = (not complex_in) if onesided is None else onesided
    spec = fft.rfft(frames, dim=-1) if one else fft.fft(frames, dim=-1)
    if normalized:
        spec = spec * (n_fft ** -0.5)
    spec = spec.transpose(-1, -2)
    return spec if return_complex or return_complex is None else view_as_real(spec)


METHODS = {"stft": stft}
