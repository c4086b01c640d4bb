"""RoIAlign (He et al., Mask R-CNN): bilinear sampling of each region into a fixed grid."""
from __future__ import annotations

import math

import ember
from ember import _backend
from ember._tensor import Tensor, _make
from ember.nn import Module

from ._utils import pair, rois_of

__all__ = ["roi_align", "RoIAlign"]

# NOTE [ RoIAlign as two matmuls ]
# torchvision's kernel averages, over a grid_h x grid_w set of points per output bin, the
# bilinear interpolation of the features at (y, x).  A point is zero outside
# [-1, H] x [-1, W], is clamped to >= 0, and on the last row/column both neighbours are that
# row/column.  Each of those rules depends on y alone or x alone, and the bilinear weight is
# wy * wx, so the sum over points factorises:
#     out[c, ph, pw] = sum_{h, w} Wy[ph, h] * x[c, h, w] * Wx[pw, w] / count
# with Wy[ph, h] the summed y-weights of bin ph's points that land on row h (zero for points
# out of range), likewise Wx.  So each RoI is Wy @ x[b] @ Wx^T, and autograd's matmul gives the
# gradient to the features that the kernel's scatter gives.


def _axis_weights(xp, start, bin_size, pooled, grid, size, dtype):
    """(pooled, size) summed interpolation weights of one axis' sampling points."""
    offsets = (xp.arange(grid, dtype=xp.float64) + 0.5) * bin_size / grid
    pos = start + xp.arange(pooled, dtype=xp.float64)[:, None] * bin_size + offsets[None, :]
    valid = (pos >= -1.0) & (pos <= size)
    pos = xp.maximum(pos, 0.0)
    low = xp.floor(pos).astype(xp.int64)
    edge = low >= size - 1
    low = xp.where(edge, size - 1, low)
    high = xp.where(edge, size - 1, low + 1)
    pos = xp.where(edge, low.astype(xp.float64), pos)
    frac = (pos - low) * valid
    weights = xp.zeros((pooled, size), dtype=xp.float64)
    rows = xp.broadcast_to(xp.arange(pooled)[:, None], pos.shape)
    xp.add.at(weights, (rows, low), valid - frac)
    xp.add.at(weights, (rows, high), frac)
    return weights.astype(dtype)


def roi_align(input: Tensor, boxes, output_size, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """(K, C, out_h, out_w) average of bilinear samples over each bin of each RoI; ``boxes``
    is Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of per-image Tensor[L, 4];
    ``sampling_ratio`` points per bin side (adaptive ``ceil(roi / out)`` when <= 0);
    ``aligned`` shifts coordinates by -0.5 pixel (torchvision.ops.roi_align)."""
    rois = rois_of(input, boxes)
    out_h, out_w = pair(output_size)
    xp = _backend.xp_of(input._data)
    r = rois._data.astype(xp.float64)
    n, c, height, width = input.shape
    k = r.shape[0]
    if k == 0:
        return input.new_zeros((0, c, out_h, out_w))
    offset = 0.5 if aligned else 0.0
    wy = xp.empty((k, out_h, height), dtype=input._data.dtype)
    wx = xp.empty((k, out_w, width), dtype=input._data.dtype)
    for i in range(k):
        x1, y1, x2, y2 = (r[i, j] * spatial_scale - offset for j in range(1, 5))
        roi_w, roi_h = x2 - x1, y2 - y1
        if not aligned:  # the legacy op forces a region of at least one pixel
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        wy[i] = _axis_weights(xp, y1, bin_h, out_h, grid_h, height, xp.float64) / count
        wx[i] = _axis_weights(xp, x1, bin_w, out_w, grid_w, width, xp.float64)
    # RoIs of one image at a time: (k_b, 1, out_h, H) @ (C, H, W) keeps the intermediate at
    # k_b * C * out_h * W instead of copying the feature map once per RoI
    batch = r[:, 0].astype(xp.int64)
    parts, order = [], []
    for b in xp.unique(batch):
        sel = xp.nonzero(batch == b)[0]
        order.append(sel)
        parts.append(_make(wy[sel])[:, None] @ input[int(b)]
                     @ _make(wx[sel])[:, None].transpose(-1, -2))
    out = ember.cat(parts) if len(parts) > 1 else parts[0]
    return out[_make(xp.argsort(xp.concatenate(order), kind="stable"))]


class RoIAlign(Module):
    """Module form of ``roi_align``."""

    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois) -> Tensor:
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(output_size={self.output_size}, "
                f"spatial_scale={self.spatial_scale}, sampling_ratio={self.sampling_ratio}, "
                f"aligned={self.aligned})")
