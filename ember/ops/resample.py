"""Resampling ops: interpolate, pixel_shuffle, channel_shuffle, grid_sample, affine_grid.

``interpolate`` is separable: every mode (nearest, linear, cubic, area, antialiased
filters) is one small matrix per spatial axis, ``out = M_d @ x`` along axis ``d``, built
with PyTorch's index and weight formulas (``aten/src/ATen/native/UpSample.h``) in the
input's precision.  Small axes apply the dense matrix with BLAS (bilinear x2 of a 32-pixel
axis: 3.6 ms against 8.7 ms for gathering the two taps, and the adjoint 2 ms against 50 ms
for a segment-sum scatter); long axes gather the few taps per output (and per input for the
adjoint).  The op is linear in its input, so the backward is the transposed op, a second
Function whose own backward is the forward again: gradients of any order.

``grid_sample`` gathers its taps (4 for bilinear, 1 for nearest, 16 for bicubic) from the
flattened input with ``take``, by chunks of channels.  Its plain backward is NumPy on arrays
(a ``bincount`` scatter-add for the input, the weights' derivatives for the grid); under
``create_graph`` the same backward is written with ember ops (a scatter-add Function pair
and elementwise weight polynomials), so it is differentiable again, as PyTorch's
``GridSampler2DBackward`` is.
"""
from __future__ import annotations

import functools
import math
import numbers
import warnings

from ..autograd.function import Function
from ..autograd.grad_mode import state
from .._backend import xp_of
from .._tensor import Tensor, _make
from ._util import need_tensor, scalar_name, is_float
from .movement import stack

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle",
           "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "grid_sample",
           "affine_grid"]

# An axis contracts with the dense (out x in) matrix while its length is at most this many
# times its taps per output (measured crossover, float32, one thread: ~128 for linear x2 and
# ~256 for cubic); longer axes gather the taps.
_DENSE_PER_TAP = 64


def _need_int(fn: str, name: str, pos: int, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be int, not "
                        f"{type(v).__name__}")
    return int(v)


# ----------------------------------------------------------------------------------------------
# one axis of a separable resampling: an (out x in) matrix


class _AxisOp:
    """The (O x I) matrix of one axis, kept as taps: ``out[o] = sum_k w[o, k] * in[idx[o, k]]``.

    ``w`` is None for a pure gather (nearest).  The dense matrix and the transposed taps
    (for the adjoint of a long axis) are built on first use and kept: ops are cached per
    (mode, sizes, scale, dtype), so a training loop builds each once.
    """

    def __init__(self, xp, n_in: int, idx, w=None):
        self.xp = xp
        self.n_in = n_in
        self.n_out = idx.shape[0]
        self.idx = idx            # (O, K) int64
        self.w = w                # (O, K) float or None
        self.identity = False
        self.repeat = 0           # nearest upsampling by an integer factor: in.repeat(k)
        if w is None and idx.shape[1] == 1:
            col = idx[:, 0]
            if self.n_out == n_in and bool((col == xp.arange(n_in)).all()):
                self.identity = True
            elif self.n_out % n_in == 0 and bool(
                    (col == xp.arange(self.n_out) // (self.n_out // n_in)).all()):
                self.repeat = self.n_out // n_in
        self._dense = None
        self._taps_t = None

    def dense(self, dt):
        """The (O, I) matrix in dtype ``dt``."""
        if self._dense is None or self._dense.dtype != dt:
            xp = self.xp
            m = xp.zeros((self.n_out, self.n_in), dt)
            rows = xp.broadcast_to(xp.arange(self.n_out)[:, None], self.idx.shape)
            vals = 1 if self.w is None else self.w
            xp.add.at(m, (rows, self.idx), vals)
            self._dense = m
        return self._dense

    def taps_t(self):
        """Taps of the transposed matrix: ``(idx, w)`` of shape (I, K_T), zero padded."""
        if self._taps_t is None:
            xp = self.xp
            cols = self.idx.reshape(-1)
            rows = xp.repeat(xp.arange(self.n_out), self.idx.shape[1])
            vals = (xp.ones(cols.shape, "float64") if self.w is None
                    else self.w.reshape(-1))
            order = xp.argsort(cols, kind="stable")
            cols, rows, vals = cols[order], rows[order], vals[order]
            counts = xp.bincount(cols, minlength=self.n_in)
            starts = xp.concatenate([xp.zeros(1, "int64"), xp.cumsum(counts)[:-1]])
            slot = xp.arange(cols.size) - starts[cols]
            kt = max(int(counts.max()) if counts.size else 1, 1)
            idx = xp.zeros((self.n_in, kt), "int64")
            w = xp.zeros((self.n_in, kt), vals.dtype)
            idx[cols, slot] = rows
            w[cols, slot] = vals
            self._taps_t = (idx, w)
        return self._taps_t

    def apply(self, x, axis: int):
        """``M`` along ``axis`` of ``x``."""
        if self.identity:
            return x
        if self.repeat:
            return x.repeat(self.repeat, axis=axis)
        if self.w is None:
            return x.take(self.idx[:, 0], axis=axis)
        if self.n_in <= _DENSE_PER_TAP * self.idx.shape[1]:
            return _matrix_along(self.xp, x, axis, self.dense(x.dtype))
        return _taps_along(x, axis, self.idx, self.w)

    def apply_t(self, g, axis: int):
        """``M.T`` along ``axis`` of ``g`` (the adjoint of ``apply``)."""
        if self.identity:
            return g
        if self.repeat:
            # adding k strided views beats .sum over a length-k axis (~8x for k = 2)
            s = g.shape
            r = g.reshape(s[:axis] + (self.n_in, self.repeat) + s[axis + 1:])
            lead = (slice(None),) * (axis + 1)
            out = r[lead + (0,)] + r[lead + (1,)] if self.repeat > 1 else r[lead + (0,)].copy()
            for k in range(2, self.repeat):
                out += r[lead + (k,)]
            return out
        idx, w = self.taps_t()
        if self.n_out <= _DENSE_PER_TAP * idx.shape[1]:
            return _matrix_along(self.xp, g, axis, self.dense(g.dtype).T)
        return _taps_along(g, axis, idx, w)


def _matrix_along(xp, x, axis: int, m):
    s = x.shape
    pre = math.prod(s[:axis])
    post = math.prod(s[axis + 1:])
    if post == 1:
        y = x.reshape(pre, s[axis]) @ m.T
    else:
        y = xp.matmul(m, x.reshape(pre, s[axis], post))
    return y.reshape(s[:axis] + (m.shape[0],) + s[axis + 1:])


def _taps_along(x, axis: int, idx, w):
    tail = (1,) * (x.ndim - axis - 1)
    out = None
    for k in range(idx.shape[1]):
        t = x.take(idx[:, k], axis=axis)
        t *= w[:, k].astype(x.dtype, copy=False).reshape((-1,) + tail)
        if out is None:
            out = t
        else:
            out += t
    return out


# ---- per-axis coefficients, as PyTorch computes them (UpSample.h, UpSampleKernel.cpp) ------


def _scales_value(np_, dt, scale, n_in: int, n_out: int):
    """``compute_scales_value<T>``: ``1/scale`` when a scale factor is used, else ``in/out``."""
    if scale is not None and scale > 0:
        return dt.type(1.0 / scale)
    return dt.type(n_in) / dt.type(n_out)


def _area_scale(np_, dt, n_in, n_out, align, scale):
    """``area_pixel_compute_scale<T>``."""
    if align:
        return dt.type(n_in - 1) / dt.type(n_out - 1) if n_out > 1 else dt.type(0)
    return _scales_value(np_, dt, scale, n_in, n_out)


def _source_index(np_, dt, scale, n_out: int, align: bool, cubic: bool):
    """``area_pixel_compute_source_index<T>`` for every output index."""
    o = np_.arange(n_out).astype(dt)
    if align:
        return scale * o
    src = scale * (o + dt.type(0.5)) - dt.type(0.5)
    return src if cubic else np_.maximum(src, dt.type(0))


def _guard(np_, dt, real, n_in: int):
    """``guard_index_and_lambda``: index (floorf, so through float32) and its fraction."""
    i0 = np_.minimum(np_.floor(real.astype("float32")).astype("int64"), n_in - 1)
    lam = np_.minimum(np_.maximum(real - i0.astype(dt), dt.type(0)), dt.type(1))
    return i0, lam


def _cubic_coeffs(np_, t, a: float):
    """Keys cubic convolution weights of the 4 taps around fraction ``t``."""
    a = t.dtype.type(a)
    one = t.dtype.type(1)

    def c1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def c2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np_.stack([c2(t + one), c1(t), c1(one - t), c2((one - t) + one)], axis=1)


@functools.lru_cache(maxsize=512)
def _axis_op(xp, mode: str, n_in: int, n_out: int, align: bool, scale, dtname: str,
             nearest_shortcut: bool = True):
    dt = xp.dtype(dtname)
    if mode in ("nearest", "nearest-exact"):
        f32 = xp.dtype("float32")
        if mode == "nearest" and nearest_shortcut and n_out == n_in:
            idx = xp.arange(n_out)
        elif mode == "nearest" and nearest_shortcut and n_out == 2 * n_in:
            idx = xp.arange(n_out) >> 1
        else:
            s = _scales_value(xp, f32, scale, n_in, n_out)
            if mode == "nearest":  # floorf(dst_index * scale) in float
                src = xp.arange(n_out).astype(f32) * s
            else:  # floorf((dst_index + 0.5) * scale): the product in double, then float
                src = ((xp.arange(n_out) + 0.5) * float(s)).astype(f32)
            idx = xp.minimum(xp.floor(src).astype("int64"), n_in - 1)
        return _AxisOp(xp, n_in, idx[:, None])
    if mode == "linear":
        if n_out == n_in:
            return _AxisOp(xp, n_in, xp.arange(n_out)[:, None])
        s = _area_scale(xp, dt, n_in, n_out, align, scale)
        i0, lam1 = _guard(xp, dt, _source_index(xp, dt, s, n_out, align, False), n_in)
        i1 = i0 + (i0 < n_in - 1)
        return _AxisOp(xp, n_in, xp.stack([i0, i1], 1),
                       xp.stack([dt.type(1) - lam1, lam1], 1))
    if mode == "cubic":
        s = _area_scale(xp, dt, n_in, n_out, align, scale)
        i0, t = _guard(xp, dt, _source_index(xp, dt, s, n_out, align, True), n_in)
        idx = xp.clip(i0[:, None] + xp.arange(-1, 3), 0, n_in - 1)
        return _AxisOp(xp, n_in, idx, _cubic_coeffs(xp, t, -0.75))
    if mode == "area":  # adaptive average pooling windows
        o = xp.arange(n_out)
        start = (o * n_in) // n_out
        end = ((o + 1) * n_in + n_out - 1) // n_out
        k = int((end - start).max())
        idx = xp.minimum(start[:, None] + xp.arange(k), n_in - 1)
        w = ((start[:, None] + xp.arange(k)) < end[:, None]) / (end - start)[:, None]
        return _AxisOp(xp, n_in, idx, w.astype(dt))
    return _aa_axis_op(xp, mode, n_in, n_out, align, scale, dt)


def _aa_filter(xp, mode: str, x):
    x = xp.abs(x)
    one = x.dtype.type(1)
    if mode == "aa_linear":
        return xp.where(x < one, one - x, x.dtype.type(0))
    if mode == "aa_cubic":  # a = -0.5 to match PIL, as PyTorch's antialiased bicubic
        a = x.dtype.type(-0.5)
        c1 = ((a + 2) * x - (a + 3)) * x * x + 1
        c2 = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return xp.where(x < one, c1, xp.where(x < 2 * one, c2, x.dtype.type(0)))
    # lanczos-3: sinc(x) * sinc(x / 3) on |x| < 3
    with xp.errstate(invalid="ignore", divide="ignore"):
        px = x * x.dtype.type(math.pi)
        v = xp.sin(px) * xp.sin(px / 3) / (px * px / 3)
    v = xp.where(x == 0, one, v)
    return xp.where(x < 3 * one, v, x.dtype.type(0)).astype(x.dtype)


_AA_SIZE = {"aa_linear": 2, "aa_cubic": 4, "aa_lanczos": 6}


def _aa_axis_op(xp, mode, n_in, n_out, align, scale, dt):
    """``_compute_index_ranges_weights`` with ``antialias=True``: a filter widened by the scale."""
    s = _area_scale(xp, dt, n_in, n_out, align, scale)
    size = _AA_SIZE[mode]
    support = dt.type(size * 0.5) * s if s >= 1.0 else dt.type(size * 0.5)
    kmax = int(math.ceil(support)) * 2 + 1
    invscale = dt.type(1.0) / s if s >= 1.0 else dt.type(1.0)
    center = s * (xp.arange(n_out).astype(dt) + dt.type(0.5))
    xmin = xp.maximum((center - support + dt.type(0.5)).astype("int64"), 0)
    xsize = xp.minimum((center + support + dt.type(0.5)).astype("int64"), n_in) - xmin
    xsize = xp.clip(xsize, 0, kmax)
    j = xp.arange(kmax)
    w = _aa_filter(xp, mode, ((j + xmin[:, None]).astype(dt) - center[:, None] + dt.type(0.5))
                   * invscale)
    w = xp.where(j < xsize[:, None], w, dt.type(0))
    total = w.sum(1, keepdims=True)
    w = xp.where(total != 0, w / xp.where(total != 0, total, dt.type(1)), w).astype(dt)
    idx = xp.minimum(xmin[:, None] + j, n_in - 1)
    return _AxisOp(xp, n_in, idx, w)


# ---- the Function pair: resample and its adjoint ------------------------------------------


class _Resample(Function):
    """``x`` resampled by one ``_AxisOp`` per spatial axis (``None`` leaves an axis)."""

    raw = True
    backward_name = "UpsampleNearest2DBackward0"
    adjoint = None  # the matching _ResampleT subclass

    @staticmethod
    def forward(ctx, x, ops, cdt):
        ctx.meta = (ops, cdt)
        return _along_axes(x, ops, cdt, adjoint=False)

    @classmethod
    def backward(cls, ctx, g):
        ops, cdt = ctx.meta
        return cls.adjoint.apply(g, ops, cdt), None, None


class _ResampleT(Function):
    """The adjoint of ``_Resample``: ``M_d.T`` along each axis; its backward is ``_Resample``."""

    raw = True
    forward_op = None

    @staticmethod
    def forward(ctx, g, ops, cdt):
        ctx.meta = (ops, cdt)
        return _along_axes(g, ops, cdt, adjoint=True)

    @classmethod
    def backward(cls, ctx, gg):
        ops, cdt = ctx.meta
        return cls.forward_op.apply(gg, ops, cdt), None, None


def _along_axes(x, ops, cdt, adjoint: bool):
    """Each axis's ``M_d`` (``M_d.T`` when ``adjoint``) applied to ``x``, computed in ``cdt``
    (None: ``x``'s dtype); always a new array."""
    y = x if cdt is None else x.astype(cdt)
    for axis in _order(ops, shrinking_first=not adjoint):
        op = ops[axis]
        y = op.apply_t(y, axis + 2) if adjoint else op.apply(y, axis + 2)
    if cdt is not None:
        y = y.astype(x.dtype)
    elif y is x:
        y = x.copy()
    return y


def _order(ops, shrinking_first: bool):
    """Axis order that keeps intermediates small: shrinking axes first, growing ones last."""
    axes = [a for a, op in enumerate(ops) if op is not None and not op.identity]
    key = (lambda a: ops[a].n_out / ops[a].n_in) if shrinking_first else (
        lambda a: ops[a].n_in / ops[a].n_out)
    return sorted(axes, key=key)


def _pair(name: str):
    fwd = type("_Resample_" + name, (_Resample,), {"backward_name": name})
    adj = type("_ResampleT_" + name, (_ResampleT,),
               {"backward_name": name.replace("Backward0", "BackwardBackward0")})
    fwd.adjoint = adj
    adj.forward_op = fwd
    return fwd


_NODES: dict = {}


def _node(name: str):
    cls = _NODES.get(name)
    if cls is None:
        cls = _NODES[name] = _pair(name)
    return cls


# ---- interpolate -----------------------------------------------------------------------------


_MODES = "nearest | linear | bilinear | bicubic | trilinear | lanczos | area | nearest-exact"
_NEEDS = {"linear": 3, "bilinear": 4, "trilinear": 5, "bicubic": 4, "lanczos": 4}
_AXIS_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


def _is_integer(x) -> bool:
    if isinstance(x, Tensor):
        return x._data.dtype.kind in "iu" and x._data.ndim == 0
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _node_name(mode: str, nd: int, antialias: bool) -> str:
    if mode == "area":
        return "SqueezeBackward1" if nd == 1 else f"AdaptiveAvgPool{nd}DBackward0"
    base = {"nearest": "UpsampleNearest", "nearest-exact": "UpsampleNearestExact",
            "linear": "UpsampleLinear", "bilinear": "UpsampleBilinear",
            "trilinear": "UpsampleTrilinear", "bicubic": "UpsampleBicubic",
            "lanczos": "UpsampleLanczos"}[mode]
    return f"{base}{nd}D{'Aa' if antialias else ''}Backward0"


def _check_sizes(x, in_sp, out_sp) -> None:
    nd = len(in_sp)
    if min(in_sp) <= 0 or min(out_sp) <= 0:
        names = _AXIS_NAMES[nd]
        i = ", ".join(f"{n}: {v}" for n, v in zip(names, in_sp))
        o = ", ".join(f"{n}: {v}" for n, v in zip(names, out_sp))
        sep = " and output" if nd == 1 else " output"
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"({i}){sep} ({o})")
    if x.size == 0 and x.shape[1] == 0:
        raise RuntimeError(f"Non-empty {x.ndim}D data tensor expected but got a tensor with "
                           f"sizes {list(x.shape)}")


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Down/up-sample ``input`` (N, C, *spatial) to ``size`` or by ``scale_factor``.

    As ``torch.nn.functional.interpolate``: modes nearest, nearest-exact, linear (3-D),
    bilinear / bicubic (4-D), trilinear (5-D), area, and with ``antialias=True`` bilinear,
    bicubic and lanczos (4-D).  When ``scale_factor`` is given (and
    ``recompute_scale_factor`` is not True) the source coordinate uses ``1 / scale_factor``,
    not ``in / out``, as PyTorch does.
    """
    need_tensor(input, "interpolate")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    x = input._data
    dim = x.ndim - 2
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        scale_factors = None
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but "
                    f"got input with spatial dimensions of {list(x.shape[2:])} and output size "
                    f"of {size}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                    "and output size in (o1, o2, ...,oK) format.")
            if not all(_is_integer(s) for s in size):
                raise TypeError(
                    "expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                    f"Tuple[int, int, int], but got size with types {[type(s) for s in size]}")
            output_size = [int(s) for s in size]
        else:
            if not _is_integer(size):
                raise TypeError(f"expected size to be an int or a tuple of ints, but got "
                                f"{type(size).__name__}")
            output_size = [int(size)] * max(dim, 0)
    elif scale_factor is not None:
        output_size = None
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError(
                    "Input and scale_factor must have the same number of spatial dimensions, "
                    f"but got input with spatial dimensions of {list(x.shape[2:])} and "
                    f"scale_factor of shape {scale_factor}. Please provide input tensor in "
                    "(N, C, d1, d2, ...,dK) format and scale_factor in (s1, s2, ...,sK) "
                    "format.")
            scale_factors = [float(s) for s in scale_factor]
        else:
            scale_factors = [float(scale_factor)] * max(dim, 0)
    else:
        raise ValueError("either size or scale_factor should be defined")
    if recompute_scale_factor and size is not None:
        raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
    if mode == "area" and output_size is None:
        recompute_scale_factor = True
    if recompute_scale_factor:
        output_size = [int(math.floor(x.shape[i + 2] * scale_factors[i])) for i in range(dim)]
        scale_factors = None
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and x.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos "
                         "modes and requires a 4-D tensor as input")
    if mode in ("linear", "bilinear", "trilinear") and x.ndim in (3, 4, 5) and \
            x.ndim != _NEEDS[mode]:
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs "
                                  f"{_NEEDS[mode]}D input")
    known = mode in ("nearest", "nearest-exact", "area") and x.ndim in (3, 4, 5)
    if not known and not (mode in _NEEDS and x.ndim == _NEEDS[mode]):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            f"modes: {_MODES} (got {mode})")
    if mode == "lanczos":
        if align_corners:
            raise ValueError("Lanczos mode does not support align_corners=True")
        if not antialias:
            raise ValueError("Lanczos mode requires antialias=True")
    in_sp = tuple(x.shape[2:])
    if output_size is None:
        output_size = [int(math.floor(in_sp[i] * scale_factors[i])) for i in range(dim)]
    out_sp = tuple(output_size)
    _check_sizes(x, in_sp, out_sp)
    return _resample(input, mode, in_sp, out_sp, bool(align_corners), scale_factors, antialias)


def _resample(input, mode, in_sp, out_sp, align, scale_factors, antialias):
    x = input._data
    xp = xp_of(x)
    dt = x.dtype
    nd = len(in_sp)
    if not is_float(dt):
        if not (dt.name == "uint8" and mode in ("nearest", "nearest-exact")):
            if dt.name == "uint8":
                raise NotImplementedError(f"interpolate(): mode '{mode}' on uint8 input is not "
                                          "implemented in ember (only nearest modes are)")
            kernel = {"area": f"adaptive_avg_pool{nd}d", "bicubic": "compute_indices_weights_"
                      "cubic"}.get(mode, f"upsample_{mode.replace('-', '_')}{nd}d")
            raise NotImplementedError(f"\"{kernel}\" not implemented for '{scalar_name(dt)}'")
    cdt = None
    if dt.name in ("float16", "bfloat16"):
        cdt = xp.dtype("float32")
    wdt = (cdt or dt).name if dt.kind == "f" or cdt is not None else "float32"
    if antialias:
        axis_mode = {"bilinear": "aa_linear", "bicubic": "aa_cubic", "lanczos": "aa_lanczos"}[mode]
    else:
        axis_mode = {"bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}.get(mode,
                                                                                          mode)
    # PyTorch's 2-D nearest kernel copies (out == in) or halves indices (out == 2 in) whatever
    # the scale factor; its 1-D and 3-D kernels apply the scale factor (e.g. 1.1 on 5 -> 5
    # picks 0, 0, 1, 2, 3).  The forward matches each; the backward stays the exact adjoint
    # (PyTorch's nearest backward takes the shortcut in every dimension).
    ops = tuple(_axis_op(xp, axis_mode, in_sp[i], out_sp[i], align,
                         None if scale_factors is None else scale_factors[i], wdt, nd == 2)
                for i in range(nd))
    return _node(_node_name(mode, nd, antialias)).apply(input, ops, cdt)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated alias of ``interpolate`` (warns, as PyTorch)."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` "
                  "instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(input, size, scale_factor, mode='nearest')``."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: ``interpolate(..., mode='bilinear', align_corners=True)``."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ----------------------------------------------------------------------------------------------
# pixel shuffle / channel shuffle: one copy each, the backward is the inverse shuffle


class _PixelShuffle(Function):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""

    raw = True
    backward_name = "PixelShuffleBackward0"

    @staticmethod
    def forward(ctx, x, r):
        ctx.r = r
        *lead, c, h, w = x.shape
        oc = c // (r * r)
        y = x.reshape(tuple(lead) + (oc, r, r, h, w))
        n = len(lead)
        y = y.transpose(tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))
        return y.reshape(tuple(lead) + (oc, h * r, w * r))

    @staticmethod
    def backward(ctx, g):
        return _PixelUnshuffle.apply(g, ctx.r), None


class _PixelUnshuffle(Function):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""

    raw = True
    backward_name = "PixelUnshuffleBackward0"

    @staticmethod
    def forward(ctx, x, r):
        ctx.r = r
        *lead, c, h, w = x.shape
        oh, ow = h // r, w // r
        y = x.reshape(tuple(lead) + (c, oh, r, ow, r))
        n = len(lead)
        y = y.transpose(tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3))
        return y.reshape(tuple(lead) + (c * r * r, oh, ow))

    @staticmethod
    def backward(ctx, g):
        return _PixelShuffle.apply(g, ctx.r), None


def _shuffle_args(fn: str, input, name: str, factor) -> tuple:
    """PyTorch's checks shared by ``pixel_shuffle`` and ``pixel_unshuffle``: ``(array, r)``."""
    need_tensor(input, fn)
    r = _need_int(fn, name, 2, factor)
    x = input._data
    if x.ndim < 3:
        raise RuntimeError(f"{fn} expects input to have at least 3 dimensions, but got input "
                           f"with {x.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{fn} expects a positive {name}, but got {r}")
    return x, r


def pixel_shuffle(input, upscale_factor):
    """Rearrange (*, C r^2, H, W) into (*, C, H r, W r) (``torch.nn.functional.pixel_shuffle``)."""
    x, r = _shuffle_args("pixel_shuffle", input, "upscale_factor", upscale_factor)
    c = x.shape[-3]
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                           f"divisible by the square of upscale_factor, but input.size(-3)={c} "
                           f"is not divisible by {r * r}")
    return _PixelShuffle.apply(input, r)


def pixel_unshuffle(input, downscale_factor):
    """Rearrange (*, C, H r, W r) into (*, C r^2, H, W), the inverse of ``pixel_shuffle``."""
    x, r = _shuffle_args("pixel_unshuffle", input, "downscale_factor", downscale_factor)
    h, w = x.shape[-2:]
    if h % r:
        raise RuntimeError(f"pixel_unshuffle expects height to be divisible by downscale_factor, "
                           f"but input.size(-2)={h} is not divisible by {r}")
    if w % r:
        raise RuntimeError(f"pixel_unshuffle expects width to be divisible by downscale_factor, "
                           f"but input.size(-1)={w} is not divisible by {r}")
    return _PixelUnshuffle.apply(input, r)


class _ChannelShuffle(Function):
    """(N, g * k, *) -> (N, k * g, *): channel ``i * k + j`` moves to ``j * g + i``."""

    raw = True
    backward_name = "ChannelShuffleBackward0"

    @staticmethod
    def forward(ctx, x, groups):
        n, c = x.shape[:2]
        ctx.meta = c // groups
        y = x.reshape((n, groups, c // groups) + x.shape[2:]).swapaxes(1, 2)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        return _ChannelShuffle.apply(g, ctx.meta), None


def channel_shuffle(input, groups):
    """Interleave ``groups`` channel groups (ShuffleNet): (N, C, *) -> (N, C, *)."""
    need_tensor(input, "channel_shuffle")
    groups = _need_int("channel_shuffle", "groups", 2, groups)
    x = input._data
    if x.ndim <= 2:
        raise RuntimeError(f"channel_shuffle expects input with > 2 dims, but got input with "
                           f"sizes {list(x.shape)}")
    if groups <= 0:
        raise RuntimeError(f"Number of groups to divide channels in must be positive. Value of "
                           f"groups:{groups}")
    c = x.shape[1]
    if c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels "
                           f"and {groups} groups.")
    return _ChannelShuffle.apply(input, groups)


native_channel_shuffle = channel_shuffle


# ----------------------------------------------------------------------------------------------
# grid_sample / affine_grid


class _GsTake(Function):
    """``flat(x)[index]``: the sampled taps, ``index`` into the flattened input."""

    raw = True
    backward_name = "GridSampler2DBackwardBackward0"

    @staticmethod
    def forward(ctx, x, index):
        ctx.meta = (index, x.shape)
        return x.reshape(-1).take(index)

    @staticmethod
    def backward(ctx, g):
        index, shape = ctx.meta
        return _GsPut.apply(g, index, shape), None


class _GsPut(Function):
    """The adjoint of ``_GsTake``: ``src`` summed into a zero array of ``shape`` at ``index``."""

    raw = True
    backward_name = "GridSampler2DBackwardBackward0"

    @staticmethod
    def forward(ctx, src, index, shape):
        ctx.meta = index
        xp = ctx.xp
        out = xp.bincount(index.reshape(-1), weights=src.reshape(-1), minlength=math.prod(shape))
        return out.astype(src.dtype, copy=False).reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return _GsTake.apply(g, ctx.meta), None, None


def _lin_w(t):
    return [1 - t, t]


def _lin_dw(t):
    return [-1.0, 1.0]


_A = -0.75


def _cub_w(t):
    def c1(x):
        return ((_A + 2) * x - (_A + 3)) * x * x + 1

    def c2(x):
        return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A

    return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]


def _cub_dw(t):
    def d1(x):
        return (3 * (_A + 2) * x - 2 * (_A + 3)) * x

    def d2(x):
        return (3 * _A * x - 10 * _A) * x + 8 * _A

    return [d2(t + 1), d1(t), -d1(1 - t), -d2(2 - t)]


def _clip_grad(xp, c, size):
    """``clip_coordinates_set_grad``: the borders themselves count as clipped (gradient 0)."""
    hi = c.dtype.type(size - 1)
    return xp.clip(c, 0, hi), (c > 0) & (c < hi)


def _reflect_grad(xp, c, twice_low, twice_high):
    """``reflect_coordinates_set_grad``: fold ``c`` into [low, high]; slope +-1."""
    if twice_low == twice_high:
        return xp.zeros_like(c), xp.zeros(c.shape, bool)
    dt = c.dtype.type
    lo = dt(twice_low / 2)
    span = dt((twice_high - twice_low) / 2)
    d = c - lo
    neg = d < 0
    d = xp.abs(d)
    with xp.errstate(invalid="ignore"):  # inf / nan coordinates: _safe turns them to -100
        extra = xp.fmod(d, span)
        even = xp.floor(d / span) % 2 == 0
    out = xp.where(even, extra + lo, span - extra + lo)
    return out, xp.where(even != neg, 1, -1)


def _pad_coord(xp, c, size, padding, align):
    if padding == "border":
        return xp.clip(c, 0, size - 1)
    if padding == "reflection":
        if align:
            c, _ = _reflect_grad(xp, c, 0, 2 * (size - 1))
        else:
            c, _ = _reflect_grad(xp, c, -1, 2 * size - 1)
        return xp.clip(c, 0, size - 1)
    return c


def _safe(xp, c):
    """``safe_downgrade_to_int_range``: non-finite or huge coordinates become -100."""
    # |nan| < x and |inf| < x are False: one test covers both
    return xp.where(xp.abs(c) < 2.0 ** 31, c, c.dtype.type(-100))


def _in_range(xp, i, size: int):
    """``0 <= i < size`` in one comparison: negative int64 read as uint64 are huge."""
    return i.view("uint64") < size


def _gs_axis(xp, coord, size: int, mode: str, padding: str, align: bool):
    """Taps of one axis: ``(idx list, in-range list, t, slope)``, ``slope = d coord_px / d g``.

    Out-of-range indices are replaced by 0: their taps are masked out of every weight.
    ``slope`` is a scalar unless border / reflection padding clips some coordinates.
    """
    dt = coord.dtype.type
    if align:
        sf = dt(size - 1) / dt(2)
        c = (coord + dt(1)) * sf
    else:
        sf = dt(size) / dt(2)
        c = (coord + dt(1)) * sf - dt(0.5)
    slope = sf
    if mode == "bicubic":
        c0 = xp.floor(c)
        with xp.errstate(invalid="ignore"):  # inf - inf: out of range, masked out below
            t = c - c0
        idx, valid = [], []
        for j in (-1, 0, 1, 2):
            ii = _safe(xp, _pad_coord(xp, c0 + dt(j), size, padding, align)).astype("int64")
            ok = _in_range(xp, ii, size)
            valid.append(ok)
            idx.append(xp.where(ok, ii, 0))
        return idx, valid, t, slope
    if padding == "border":
        c, gm = _clip_grad(xp, c, size)
        slope = gm * sf
    elif padding == "reflection":
        if align:
            c, gm = _reflect_grad(xp, c, 0, 2 * (size - 1))
        else:
            c, gm = _reflect_grad(xp, c, -1, 2 * size - 1)
        c, gm2 = _clip_grad(xp, c, size)
        slope = (gm * gm2).astype(c.dtype) * sf
    c = _safe(xp, c)
    if mode == "nearest":
        ii = xp.rint(c).astype("int64")
        ok = _in_range(xp, ii, size)
        return [xp.where(ok, ii, 0)], [ok], None, None
    c0 = xp.floor(c)
    t = c - c0
    i0 = c0.astype("int64")
    i1 = i0 + 1
    ok0, ok1 = _in_range(xp, i0, size), _in_range(xp, i1, size)
    return [xp.where(ok0, i0, 0), xp.where(ok1, i1, 0)], [ok0, ok1], t, slope


def _outer(factors, op=None):
    """``op`` (default multiply) over all combinations of (N|1, K, P|1) factors: (N, T, P)."""
    out = None
    for f in factors:
        if out is None:
            out = f
        else:
            o = out[:, :, None] * f[:, None] if op is None else op(out[:, :, None], f[:, None])
            out = o.reshape(o.shape[0], o.shape[1] * o.shape[2], o.shape[3])
    return out


def _gs_index(xp, tap, n: int, c: int, hw: int, bstride=None):
    """Flat indices (n, c, ntap * p) of every tap's value: ``i * bstride + j * hw + tap``."""
    bstride = c * hw if bstride is None else bstride
    base = (xp.arange(n, dtype="int64") * bstride)[:, None] + xp.arange(0, c * hw, hw)
    return base[:, :, None] + tap.reshape(n, 1, math.prod(tap.shape[1:]))


# Elements per chunk of channels in the gather and the grad_input scatter.  Temporaries of
# a few MB come back from the OS page by page on every call: one bincount over all
# (8, 16, 4, 1024) products and their 4 MB index took 3.6 ms (5 ms with the products),
# chunks of 2^16 products 1.0 ms; the small index also stays in cache for every chunk.
_CHUNK = 1 << 16


def _chunk(c: int, per_channel: int) -> int:
    return max(1, min(c, _CHUNK // max(per_channel, 1)))


def _gs_chunks(xp, x, tap):
    """The taps' values of ``x`` (n, c, *sp) by chunks of channels: ``(c0, (n, k, ntap, p))``.

    Every chunk has the same flat index, read from ``x`` offset to the chunk's first channel.
    """
    n, c = x.shape[:2]
    hw = math.prod(x.shape[2:])
    k = _chunk(c, tap.size)
    index = _gs_index(xp, tap, n, k, hw, c * hw)
    xf = x.reshape(-1)
    for c0 in range(0, c, k):
        kk = min(k, c - c0)
        yield c0, xf[c0 * hw:].take(index[:, :kk]).reshape((n, kk) + tap.shape[1:])


def _gs_scatter(xp, g, w, tap, xshape, dt):
    """grad_input: ``g`` (n, c, p) times the weights ``w`` (n, ntap, p) summed at ``tap``.

    One ``bincount`` (float64 sums) per chunk of channels: ~10x ``add.at``.
    """
    n, c = xshape[:2]
    hw = math.prod(xshape[2:])
    k = _chunk(c, tap.size)
    index = _gs_index(xp, tap, n, k, hw)
    out = xp.empty((n, c, hw), dt)
    for c0 in range(0, c, k):
        kk = min(k, c - c0)
        src = g[:, c0:c0 + kk, None, :] * w[:, None]
        acc = xp.bincount(index[:, :kk].reshape(-1), weights=src.reshape(-1),
                          minlength=n * k * hw)
        out[:, c0:c0 + kk] = acc.reshape(n, k, hw)[:, :kk]
    return out.reshape(xshape)


class _GridSampler(Function):
    """``grid_sample``: taps gathered from the flattened input, weighted and summed.

    Each axis's in-range mask is folded into its weights, so a tap's weight is the product
    of masked per-axis factors.  The plain backward is NumPy on arrays (a ``bincount``
    scatter for the input; for the grid, the per-axis weight derivatives against the taps
    kept from the forward); under ``create_graph`` it is written with ember ops instead.
    """

    raw = True
    backward_name = "GridSampler2DBackward0"

    @staticmethod
    def forward(ctx, x, grid, mode, padding, align):
        # dtype checks here, after the modes: autocast runs grid_sample in float32 first
        if x.dtype.kind != "f":
            raise NotImplementedError(f"\"grid_sampler_{x.ndim - 2}d_cpu_kernel_impl\" not "
                                      f"implemented for '{scalar_name(x.dtype)}'")
        if grid.dtype != x.dtype:
            raise RuntimeError(f"expected scalar type {scalar_name(x.dtype)} but found "
                               f"{scalar_name(grid.dtype)}")
        xp = ctx.xp
        n, c = x.shape[:2]
        sp = x.shape[2:]
        nd = len(sp)
        osp = grid.shape[1:-1]
        p = math.prod(osp)
        hw = math.prod(sp)
        dt = x.dtype
        g2 = grid.reshape(n, p, nd)
        axes = [_gs_axis(xp, g2[:, :, nd - 1 - a], sp[a], mode, padding, align)
                for a in range(nd)]
        strides = [math.prod(sp[a + 1:]) for a in range(nd)]
        tap = _outer((xp.stack([i * strides[a] for i in axes[a][0]], 1)
                      for a in range(nd)), xp.add)
        ntap = tap.shape[1]
        facs = None
        if mode == "nearest":
            w = _outer(xp.stack(ax[1], 1) for ax in axes).astype(dt)
        else:
            wfun = _cub_w if mode == "bicubic" else _lin_w
            facs = [xp.stack([f * m for f, m in zip(wfun(ax[2].astype(dt, copy=False)),
                                                      ax[1])], 1) for ax in axes]
            w = _outer(facs).astype(dt, copy=False)
        # bilinear keeps the taps' values for the grid's gradient; bicubic's are 16 times the
        # output: the backward gathers them again
        keep = mode == "bilinear" and ctx._record
        out = xp.empty((n, c, p), dt)
        v = xp.empty((n, c, ntap, p), dt) if keep else None
        for c0, vc in _gs_chunks(xp, x, tap):
            cs = slice(c0, c0 + vc.shape[1])
            if mode == "nearest":
                xp.multiply(vc[:, :, 0], w, out=out[:, cs])
            else:
                xp.einsum("nctp,ntp->ncp", vc, w, out=out[:, cs])
            if keep:
                v[:, cs] = vc
        ctx.meta = (mode, axes, tap, w, facs, v, (n, c, ntap, p), x.shape, grid.shape)
        ctx.save_for_backward(x, grid)
        return out.reshape((n, c) + osp)

    @staticmethod
    def backward(ctx, g):
        if state.grad:
            return _grid_sample_grads_graph(ctx, g)
        mode, axes, tap, w, facs, v, (n, c, ntap, p), xshape, gshape = ctx.meta
        x, _ = ctx.saved_tensors
        need_x, need_g = ctx.needs_input_grad[:2]
        xp = ctx.xp
        xa = x._data
        dt = xa.dtype
        gd = g._data.reshape(n, c, p)
        gx = gg = None
        if need_x:
            gx = _make(_gs_scatter(xp, gd, w, tap, xshape, dt))
        if need_g:
            if mode == "nearest":  # piecewise constant in the grid, as PyTorch: zeros
                gg = _make(xp.zeros(gshape, dt))
            else:
                nd = len(axes)
                if v is not None:
                    gv = xp.einsum("nctp,ncp->ntp", v, gd)
                else:
                    gv = xp.zeros((n, ntap, p), dt)
                    for c0, vc in _gs_chunks(xp, xa, tap):
                        gv += xp.einsum("nctp,ncp->ntp", vc, gd[:, c0:c0 + vc.shape[1]])
                dwfun = _cub_dw if mode == "bicubic" else _lin_dw
                comps = []
                for a, (_, ok, t, slope) in enumerate(axes):
                    d = dwfun(t.astype(dt, copy=False))
                    da = xp.stack([xp.where(m, f, dt.type(0)) for f, m in zip(d, ok)], 1)
                    dw = _outer(da if b == a else facs[b] for b in range(nd))
                    ga = xp.einsum("ntp,ntp->np", gv, dw)
                    ga *= slope
                    comps.append(ga)
                gg = _make(xp.stack(comps[::-1], -1).reshape(gshape).astype(dt, copy=False))
        return gx, gg, None, None, None


def _grid_sample_grads_graph(ctx, g):
    """The backward of ``_GridSampler`` in ember ops: differentiable again (create_graph)."""
    mode, axes, tap, _, _, _, (n, c, ntap, p), xshape, gshape = ctx.meta
    x, grid = ctx.saved_tensors
    need_x, need_g = ctx.needs_input_grad[:2]
    nd = len(axes)
    xp = ctx.xp
    dt = x._data.dtype
    index = _gs_index(xp, tap, n, c, math.prod(xshape[2:]))
    validf = _make(_outer(xp.stack(ax[1], 1) for ax in axes).astype(dt))
    g4 = g.reshape(n, c, 1, p)
    gx = gg = None
    if mode == "nearest":
        if need_x:
            gx = _GsPut.apply((g4 * validf.reshape(n, 1, ntap, p)).reshape(n, c, ntap * p),
                              index, xshape)
        if need_g:
            gg = _make(xp.zeros(gshape, dt))
        return gx, gg, None, None, None
    wfun, dwfun = (_cub_w, _cub_dw) if mode == "bicubic" else (_lin_w, _lin_dw)
    # t as a function of the grid: exact value, slope d t / d grid (piecewise constant)
    g2 = grid.reshape(n, p, nd) if grid.requires_grad else None
    ts = []
    for a, (_, _, t, slope) in enumerate(axes):
        if g2 is None:
            ts.append(_make(t))
        else:
            comp = g2[:, :, nd - 1 - a]
            ts.append(comp * _make(xp.asarray(slope, dt)) + _make(t - comp._data * slope))
    ws = [wfun(t) for t in ts]

    def combine(factors):
        out = None
        for f in factors:
            fs = [k if isinstance(k, Tensor) else _make(xp.full((n, p), k, dt)) for k in f]
            a = stack(fs, 1)
            out = a if out is None else (out.unsqueeze(2) * a.unsqueeze(1)).reshape(
                n, out.shape[1] * a.shape[1], p)
        return out * validf

    if need_x:
        w = combine(ws)
        gx = _GsPut.apply((g4 * w.reshape(n, 1, ntap, p)).reshape(n, c, ntap * p), index,
                          xshape)
    if need_g:
        v = _GsTake.apply(x, index).reshape(n, c, ntap, p)
        gv = (g4 * v).sum(1)  # (n, ntap, p)
        comps = []
        for a in range(nd):
            dws = [dwfun(ts[a]) if b == a else ws[b] for b in range(nd)]
            ga = (gv * combine(dws)).sum(1) * _make(xp.asarray(axes[a][3], dt))
            comps.append(ga)
        gg = stack(comps[::-1], -1).reshape(gshape)
    return gx, gg, None, None, None


class _GridSampler3D(_GridSampler):
    backward_name = "GridSampler3DBackward0"


def _align_default(align_corners):
    """``align_corners``; None is False, with PyTorch's warning (grid_sample, affine_grid)."""
    if align_corners is None:
        warnings.warn("Default grid_sample and affine_grid behavior has changed to "
                      "align_corners=False since 1.3.0. Please specify align_corners=True if "
                      "the old behavior is desired. See the documentation of grid_sample for "
                      "details.", stacklevel=3)
        return False
    return align_corners


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """Sample ``input`` (N, C, [D,] H, W) at ``grid`` (N, [Do,] Ho, Wo, 2|3) points in [-1, 1].

    As ``torch.nn.functional.grid_sample``: modes bilinear, nearest (round half to even) and
    bicubic (4-D only); padding zeros, border or reflection.
    """
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', "
                         f"'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError("nn.functional.grid_sample(): expected padding_mode to be 'zeros', "
                         f"'border', or 'reflection', but got: '{padding_mode}'")
    align_corners = _align_default(align_corners)
    need_tensor(input, "grid_sampler")
    need_tensor(grid, "grid_sampler", "grid", 2)
    x, gr = input._data, grid._data
    if x.ndim == 0 or gr.ndim == 0 or x.shape[0] != gr.shape[0]:
        raise RuntimeError(f"grid_sampler(): expected grid and input to have same batch size, "
                           f"but got input with sizes {list(x.shape)} and grid with sizes "
                           f"{list(gr.shape)}")
    if gr.shape[-1] != x.ndim - 2:
        raise RuntimeError(f"grid_sampler(): expected grid to have size {x.ndim - 2} in last "
                           f"dimension, but got grid with sizes {list(gr.shape)}")
    for i in range(2, x.ndim):
        if x.shape[i] <= 0:
            raise RuntimeError(f"grid_sampler(): expected input to have non-empty spatial "
                               f"dimensions, but input has sizes {list(x.shape)} with "
                               f"dimension {i} being empty")
    if x.ndim == 4:
        if gr.ndim != 4:
            raise RuntimeError(f"grid_sampler(): expected 4D input and grid with same number of "
                               f"dimensions, but got input with sizes {list(x.shape)} and grid "
                               f"with sizes {list(gr.shape)}")
    else:
        if x.ndim != 5 or gr.ndim != 5:
            raise RuntimeError(f"grid_sampler(): expected 5D input and grid with same number of "
                               f"dimensions, but got input with sizes {list(x.shape)} and grid "
                               f"with sizes {list(gr.shape)}")
        if mode == "bicubic":
            raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    fn = _GridSampler if x.ndim == 4 else _GridSampler3D
    return fn.apply(input, grid, mode, padding_mode, bool(align_corners))


def _linspace_neg_one(xp, n: int, align: bool):
    if n <= 1:
        return xp.zeros(1)
    r = xp.linspace(-1.0, 1.0, n)
    return r if align else r * (n - 1) / n


def affine_grid(theta, size, align_corners=None):
    """Sampling grid (N, H, W, 2) (or (N, D, H, W, 3)) of the affine maps ``theta``.

    ``grid[n, h, w] = theta[n] @ [x_w, y_h, 1]`` with ``x, y`` evenly spaced in [-1, 1]
    (pixel centres unless ``align_corners``); composed from ``matmul``, so ``theta`` gets
    its gradient from matmul's backward.
    """
    align_corners = _align_default(align_corners)
    need_tensor(theta, "affine_grid", "theta", 1)
    th = theta._data
    if not is_float(th.dtype):
        raise ValueError(f"Expected theta to have floating point type, but got "
                         f"{theta.dtype}")
    shown = size
    size = list(size)
    if len(size) == 4:
        if th.ndim != 3 or th.shape[-2] != 2 or th.shape[-1] != 3:
            raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size "
                             f"{shown}. Got {theta.shape}.")
        spatial = size[-2:]
    elif len(size) == 5:
        if th.ndim != 3 or th.shape[-2] != 3 or th.shape[-1] != 4:
            raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for size "
                             f"{shown}. Got {theta.shape}.")
        spatial = size[-3:]
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D "
                                  f"affine transforms, respectively. Got size "
                                  f"{shown}.")
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size "
                      "grids when align_corners=True. This is not an intended use case of "
                      "affine_grid. See the documentation of affine_grid for details.",
                      stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {shown}")
    n = size[0]
    if th.shape[0] != n:
        k = len(spatial) + 1
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{n}, {k}] but got: [{th.shape[0]}, {k}].")
    xp = xp_of(th)
    axes = [_linspace_neg_one(xp, s, bool(align_corners)) for s in spatial]
    mesh = xp.meshgrid(*axes, indexing="ij")  # (D,) H, W
    # base point [x, y, (z,) 1]: x runs along the last spatial axis
    base = xp.stack([m.reshape(-1) for m in mesh[::-1]] + [xp.ones(mesh[0].size)], 1)
    base = _make(base.astype(th.dtype))
    grid = base @ theta.transpose(1, 2)  # (N, P, nd)
    return grid.reshape([n] + list(spatial) + [len(spatial)])
