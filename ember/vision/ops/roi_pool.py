"""RoIPool (Girshick, Fast R-CNN): max over each bin of each quantised region."""
from __future__ import annotations

import math

import ember
from ember import _backend
from ember._tensor import Tensor, _make
from ember.nn import Module

from ._utils import pair, rois_of

__all__ = ["roi_pool", "RoIPool"]


def _round(v: float) -> int:
    """C's round(): halves away from zero (Python's round is to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def roi_pool(input: Tensor, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """(K, C, out_h, out_w) max over each bin of each RoI, coordinates rounded to pixels; an
    empty bin gives 0 (torchvision.ops.roi_pool).  The gradient goes to each bin's argmax."""
    rois = rois_of(input, boxes)
    out_h, out_w = pair(output_size)
    xp = _backend.xp_of(input._data)
    x, r = input._data, rois._data.astype(xp.float64)
    n, c, height, width = input.shape
    k = r.shape[0]
    index = xp.zeros((k, c, out_h, out_w), dtype=xp.int64)
    valid = xp.zeros((k, 1, out_h, out_w), dtype=bool)
    for i in range(k):
        b = int(r[i, 0])
        x1, y1, x2, y2 = (_round(r[i, j] * spatial_scale) for j in range(1, 5))
        bin_h = max(y2 - y1 + 1, 1) / out_h
        bin_w = max(x2 - x1 + 1, 1) / out_w
        for ph in range(out_h):
            hs = min(max(math.floor(ph * bin_h) + y1, 0), height)
            he = min(max(math.ceil((ph + 1) * bin_h) + y1, 0), height)
            for pw in range(out_w):
                ws = min(max(math.floor(pw * bin_w) + x1, 0), width)
                we = min(max(math.ceil((pw + 1) * bin_w) + x1, 0), width)
                if he <= hs or we <= ws:
                    continue
                # argmax takes the first maximum in row-major order, as the kernel's ">"
                arg = x[b, :, hs:he, ws:we].reshape(c, -1).argmax(axis=1)
                index[i, :, ph, pw] = (hs + arg // (we - ws)) * width + ws + arg % (we - ws)
                valid[i, 0, ph, pw] = True
    # flat positions in the whole input, so nothing is copied per RoI
    batch = r[:, 0].astype(xp.int64)
    plane = (batch[:, None] * c + xp.arange(c)[None, :]) * (height * width)
    flat = index + plane[:, :, None, None]
    picked = input.reshape(-1)[_make(flat)]
    return ember.where(_make(valid), picked, picked.new_zeros(()))


class RoIPool(Module):
    """Module form of ``roi_pool``."""

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale})")
