"""The one sliding-window helper behind convolution, pooling and unfold/fold.

``windows`` turns ``x`` of shape ``(N, C, *spatial)`` into a strided view
``(N, C, *out, *kernel)`` without copying (im2col is then one reshape of it);
``add_windows`` is its adjoint (col2im): it adds a ``(N, C, *out, *kernel)``
array back onto the positions each window read, with one vectorised
slice-add per kernel offset instead of a Python loop over output pixels.
"""
from __future__ import annotations

import itertools
import math


def out_size(size: int, k: int, stride: int, pad: int, dilation: int,
             ceil_mode: bool = False) -> int:
    """Windows along one dim: ``floor((size + 2p - d(k-1) - 1) / s) + 1``.

    With ``ceil_mode`` the division rounds up, but (as PyTorch's pooling) the last
    window must start inside the input or the left padding, never in the right padding.
    """
    span = size + 2 * pad - dilation * (k - 1) - 1
    if ceil_mode:
        n = -(-span // stride) + 1
        if (n - 1) * stride >= size + pad:
            n -= 1
        return n
    return span // stride + 1


def windows(xp, x, kernel, stride, dilation=None):
    """Strided read-only view ``(N, C, *out, *kernel)`` of ``x`` ``(N, C, *spatial)``."""
    nd = len(kernel)
    dilation = dilation or (1,) * nd
    sp = x.shape[-nd:]
    lead = x.shape[:-nd]
    out = tuple((sp[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd))
    st = x.strides
    lst = st[:-nd]
    sst = st[-nd:]
    shape = lead + out + tuple(kernel)
    strides = lst + tuple(sst[i] * stride[i] for i in range(nd)) + \
        tuple(sst[i] * dilation[i] for i in range(nd))
    return xp.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


def add_windows(xp, cols, spatial, kernel, stride, dilation=None, out=None):
    """Adjoint of ``windows``: sum ``cols`` ``(N, C, *out, *kernel)`` into ``(N, C, *spatial)``.

    One strided slice-add per kernel offset (``prod(kernel)`` vectorised adds).
    """
    nd = len(kernel)
    dilation = dilation or (1,) * nd
    lead = cols.shape[:-2 * nd]
    osz = cols.shape[-2 * nd:-nd]
    if out is None:
        out = xp.zeros(lead + tuple(spatial), dtype=cols.dtype)
    if any(o == 0 for o in osz):
        return out
    pre = (slice(None),) * len(lead)
    for offs in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(offs[i] * dilation[i],
                         offs[i] * dilation[i] + stride[i] * (osz[i] - 1) + 1, stride[i])
                   for i in range(nd))
        out[pre + sl] += cols[(Ellipsis,) + offs]
    return out


def n_windows(kernel) -> int:
    return math.prod(kernel)
