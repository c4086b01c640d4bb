"""Observers: modules that watch the float values passing through and choose a scale and zero
point from them (``torch.ao.quantization.observer``).  Statistics are kept as float32 buffers,
as PyTorch's, so ``calculate_qparams`` gives PyTorch's numbers; the arithmetic is NumPy on the
buffers' arrays (observers are not differentiable ops)."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from ... import _dtype
from ..._dtype import qint8, quint8, qint32, quint4x2, int8, uint8, int32
from ..._tensor import Tensor
from ...nn.modules.module import Module
from ...ops.quantized import (per_tensor_affine, per_tensor_symmetric, per_channel_affine,
                              per_channel_symmetric, per_channel_affine_float_qparams)

__all__ = ["ObserverBase", "MinMaxObserver", "MovingAverageMinMaxObserver",
           "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
           "HistogramObserver", "PlaceholderObserver", "NoopObserver", "default_observer",
           "default_weight_observer", "default_per_channel_weight_observer",
           "default_histogram_observer", "default_dynamic_quant_observer",
           "default_placeholder_observer", "default_float_qparams_observer",
           "default_float_qparams_observer_4bit",
           "weight_observer_range_neg_127_to_127",
           "per_channel_weight_observer_range_neg_127_to_127", "FixedQParamsObserver",
           "RecordingObserver", "default_fixed_qparams_range_0to1_observer",
           "default_fixed_qparams_range_neg1to1_observer",
           "default_affine_fixed_qparams_observer", "default_symmetric_fixed_qparams_observer"]

_EPS = float(np.finfo(np.float32).eps)


class _PartialWrapper:
    """A constructor with some arguments bound, printable and re-bindable (PyTorch's)."""

    def __init__(self, p):
        self.p = p

    def __call__(self, *args, **kwargs):
        return self.p(*args, **kwargs)

    def __repr__(self):
        return self.p.__repr__()

    def with_args(self, **kwargs):
        return _PartialWrapper(functools.partial(self.p, **kwargs))


def _with_args(cls_or_self, **kwargs):
    """``Observer.with_args(...)``: a factory of observers with these arguments."""
    return _PartialWrapper(functools.partial(cls_or_self, **kwargs))


def _t(a) -> Tensor:
    from ..._creation import from_numpy
    return from_numpy(np.array(a))  # a copy that keeps 0-d buffers 0-d


def calculate_qmin_qmax(quant_min, quant_max, custom: bool, dtype, reduce_range: bool):
    """The integer range an observer quantizes to (PyTorch's ``calculate_qmin_qmax``)."""
    if custom:
        if dtype in (qint32, int32):
            lo, hi = 0, 2 ** 32 - 1
        else:
            lo, hi = 0, 255
        lo, hi = quant_min, quant_max
        n = hi - lo + 1
        if dtype in (qint8, int8) and not 0 < n <= 256:
            raise AssertionError("quantization range should be positive and not exceed the "
                                 "maximum bit range (=256).")
        if reduce_range:
            lo, hi = lo // 2, hi // 2
        return lo, hi
    if dtype in (qint8, int8):
        return (-64, 63) if reduce_range else (-128, 127)
    if dtype in (quint8, uint8):
        return (0, 127) if reduce_range else (0, 255)
    if dtype in (qint32, int32):
        return -2 ** 31, 2 ** 31 - 1
    if dtype is quint4x2:
        return 0, 15
    return 0, 15


class ObserverBase(Module):
    """The base of observers: ``forward`` records and returns its input unchanged."""

    with_args = classmethod(_with_args)

    def __init__(self, dtype, is_dynamic: bool = False):
        super().__init__()
        self.dtype = dtype
        self.is_dynamic = is_dynamic

    def calculate_qparams(self, **kwargs):
        raise NotImplementedError


class UniformQuantizationObserverBase(ObserverBase):
    """Common parts of the affine/symmetric observers: range, scheme and ``_calculate_qparams``."""

    # PyTorch's state-dict version: at < 3 torch reads per-channel ``min_vals``/``max_vals``
    _version = 3

    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, reduce_range=False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps=_EPS,
                 is_dynamic=False, **kwargs):
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        self.qscheme = qscheme
        if reduce_range:
            warnings.warn("Please use quant_min and quant_max to specify the range for "
                          "observers.                     reduce_range will be deprecated in "
                          "a future release of PyTorch.", stacklevel=2)
        self.reduce_range = reduce_range
        self.register_buffer("eps", _t(np.array([eps], np.float32)))
        if qscheme not in (per_tensor_affine, per_tensor_symmetric, per_channel_affine,
                           per_channel_symmetric, per_channel_affine_float_qparams):
            raise AssertionError("Default Observer only works for per_tensor_affine, "
                                 "per_tensor_symmetric, per_channel_affine, "
                                 "per_channel_symmetric and per_channel_float_qparams "
                                 "quantization scheme")
        if dtype not in (qint8, quint8, quint4x2, qint32, int8, uint8, int32):
            raise AssertionError("Default Observer only works for qint8, quint8, quint4x2, "
                                 "qint32, int8, uint8, int32 data type")
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        if self.has_customized_qrange and not quant_min <= 0 <= quant_max:
            raise AssertionError("Used-specified quantization range must include 0.")
        self.quant_min, self.quant_max = calculate_qmin_qmax(
            quant_min, quant_max, self.has_customized_qrange, dtype, reduce_range)

    def _calculate_qparams(self, min_val: np.ndarray, max_val: np.ndarray):
        """Scale (float32; float64 for float64 statistics, as PyTorch's arithmetic in the
        buffers' dtype) and zero point (int64) tensors of shape (1,) or (channels,)."""
        dt = np.float64 if np.asarray(min_val).dtype == np.float64 else np.float32
        min_val = np.asarray(min_val, dt)
        max_val = np.asarray(max_val, dt)
        if min_val.size == 0 or max_val.size == 0 or \
                (min_val.size == 1 and min_val.item() == np.inf and max_val.item() == -np.inf):
            warnings.warn("must run observer before calling calculate_qparams. Returning "
                          "default values.", stacklevel=3)
            return _t(np.array([1.0], np.float32)), _t(np.array([0], np.int64))
        if np.any(min_val > max_val):
            raise AssertionError(f"min {min_val} should be less than max {max_val}")
        qmin, qmax = self.quant_min, self.quant_max
        lo = np.minimum(min_val, dt(0))
        hi = np.maximum(max_val, dt(0))
        eps = self.eps._data
        zp = np.zeros(lo.shape, np.int64)
        if self.qscheme in (per_tensor_symmetric, per_channel_symmetric):
            hi = np.maximum(-lo, hi)
            scale = np.maximum(hi / dt((qmax - qmin) / 2), eps).astype(dt)
            if self.dtype in (quint8, uint8):
                zp[...] = (qmin + qmax) // 2 if self.has_customized_qrange else 128
        elif self.qscheme is per_channel_affine_float_qparams:
            scale = ((max_val - min_val) / dt(qmax - qmin)).astype(dt)
            scale = np.where(scale > eps, scale, dt(1))
            zp = (-1 * min_val / scale).astype(dt)
        else:
            scale = np.maximum((hi - lo) / dt(qmax - qmin), eps).astype(dt)
            # int32, as PyTorch's ``.to(torch.int)`` (the symmetric ones stay int64)
            zp = np.clip(qmin - np.rint(lo / scale).astype(np.int32), qmin, qmax)
            zp = zp.astype(np.int32)
        return _t(np.atleast_1d(scale)), _t(np.atleast_1d(zp))

    def reset_min_max_vals(self):
        self.min_val._data[...] = np.inf
        self.max_val._data[...] = -np.inf


class MinMaxObserver(UniformQuantizationObserverBase):
    """Quantization parameters from the running min and max of everything observed."""

    def __init__(self, dtype=quint8, qscheme=per_tensor_affine, reduce_range=False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps=_EPS,
                 is_dynamic=False, **kwargs):
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.register_buffer("min_val", _t(np.array(np.inf, np.float32)))
        self.register_buffer("max_val", _t(np.array(-np.inf, np.float32)))
        if qscheme is per_tensor_symmetric and reduce_range and dtype is quint8:
            raise NotImplementedError("Cannot reduce range for symmetric quantization for "
                                      "quint8")

    def forward(self, x_orig):
        dt = self.min_val._data.dtype
        x = _values(x_orig, dt)
        if x.size:
            # asarray: a 0-d ufunc result is a NumPy scalar, which is no tensor storage
            self.min_val._data = np.asarray(np.minimum(x.min(), self.min_val._data), dt)
            self.max_val._data = np.asarray(np.maximum(x.max(), self.max_val._data), dt)
        return x_orig

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._data, self.max_val._data)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


def _values(x, dtype=np.float32) -> np.ndarray:
    """The values of an observed tensor in the statistics' dtype (float32 unless the observer
    was made float64, as PyTorch casts to its buffers' dtype)."""
    a = x.detach()._data
    return a if a.dtype == dtype else a.astype(dtype)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Min and max as exponential moving averages: ``m += c * (m_batch - m)``."""

    def __init__(self, averaging_constant=0.01, dtype=quint8, qscheme=per_tensor_affine,
                 reduce_range=False, quant_min=None, quant_max=None, eps=_EPS,
                 is_dynamic=False, **kwargs):
        self.averaging_constant = averaging_constant
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range,
                         quant_min=quant_min, quant_max=quant_max, eps=eps,
                         is_dynamic=is_dynamic, **kwargs)

    def forward(self, x_orig):
        dt = self.min_val._data.dtype
        x = _values(x_orig, dt)
        if not x.size:
            return x_orig
        lo, hi = self.min_val._data, self.max_val._data
        if lo == np.inf and hi == -np.inf:
            lo, hi = x.min(), x.max()
        else:
            c = dt.type(self.averaging_constant)
            lo = lo + c * (x.min() - lo)
            hi = hi + c * (x.max() - hi)
        self.min_val._data = np.asarray(lo, dt)
        self.max_val._data = np.asarray(hi, dt)
        return x_orig


class PerChannelMinMaxObserver(UniformQuantizationObserverBase):
    """Min and max per slice along ``ch_axis`` (weights: one scale per output channel)."""

    def __init__(self, ch_axis=0, dtype=quint8, qscheme=per_channel_affine, reduce_range=False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps=_EPS,
                 is_dynamic=False, **kwargs):
        if qscheme not in (per_channel_affine, per_channel_symmetric,
                           per_channel_affine_float_qparams):
            raise NotImplementedError("PerChannelMinMaxObserver's qscheme only support "
                                      "torch.per_channel_symmetric, torch.per_channel_affine "
                                      "and torch.per_channel_affine_float_qparams.")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", _t(np.zeros(0, np.float32)))
        self.register_buffer("max_val", _t(np.zeros(0, np.float32)))

    def _update(self, lo, hi):
        if self.min_val._data.size == 0:
            return lo, hi
        return np.minimum(lo, self.min_val._data), np.maximum(hi, self.max_val._data)

    def forward(self, x_orig):
        dt = self.min_val._data.dtype
        x = _values(x_orig, dt)
        if not x.size:
            return x_orig
        y = np.moveaxis(x, self.ch_axis, 0).reshape(x.shape[self.ch_axis], -1)
        lo, hi = self._update(y.min(1), y.max(1))
        self.min_val._data = np.asarray(lo, dt)
        self.max_val._data = np.asarray(hi, dt)
        return x_orig

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._data, self.max_val._data)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("min_val", "max_val"):  # the buffers take the saved channel count
            v = state_dict.get(prefix + name)
            if v is not None:
                getattr(self, name)._data = np.array(v._data, getattr(self, name)._data.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reset_min_max_vals(self):
        self.min_val._data = np.zeros(0, self.min_val._data.dtype)
        self.max_val._data = np.zeros(0, self.max_val._data.dtype)


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel min and max as exponential moving averages."""

    def __init__(self, averaging_constant=0.01, ch_axis=0, dtype=quint8,
                 qscheme=per_channel_affine, reduce_range=False, quant_min=None,
                 quant_max=None, eps=_EPS, is_dynamic=False, **kwargs):
        super().__init__(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme,
                         reduce_range=reduce_range, quant_min=quant_min, quant_max=quant_max,
                         eps=eps, is_dynamic=is_dynamic, **kwargs)
        self.averaging_constant = averaging_constant

    def _update(self, lo, hi):
        if self.min_val._data.size == 0:
            return lo, hi
        m, n = self.min_val._data, self.max_val._data
        c = m.dtype.type(self.averaging_constant)
        return m + c * (lo - m), n + c * (hi - n)


class HistogramObserver(UniformQuantizationObserverBase):
    """A histogram of the values; ``calculate_qparams`` picks the clipping range that
    minimises the L2 quantization error (PyTorch's non-linear search over the bins)."""

    def __init__(self, bins: int = 2048, dtype=quint8, qscheme=per_tensor_affine,
                 reduce_range=False, quant_min=None, quant_max=None, factory_kwargs=None,
                 eps=_EPS, is_dynamic=False, **kwargs):
        if qscheme not in (per_tensor_affine, per_tensor_symmetric):
            raise NotImplementedError("HistogramObserver's qscheme only support "
                                      "torch.per_tensor_symmetric and torch.per_tensor_affine.")
        if is_dynamic:
            raise NotImplementedError("HistogramObserver doesn't support dynamic quantization")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.bins = bins
        self.register_buffer("histogram", _t(np.zeros(bins, np.float32)))
        self.register_buffer("min_val", _t(np.array(np.inf, np.float32)))
        self.register_buffer("max_val", _t(np.array(-np.inf, np.float32)))
        self.dst_nbins = 2 ** (8 if dtype in (qint8, quint8, int8, uint8) else 32)
        self.upsample_rate = 16

    def _histc(self, x, lo, hi):
        """``torch.histc``: equal float32 bins over [lo, hi], the top edge in the last bin."""
        if lo == hi:
            lo, hi = lo - np.float32(1), hi + np.float32(1)
        idx = ((x - lo) * np.float32(self.bins) / (hi - lo)).astype(np.int64)
        idx = idx[(x >= lo) & (x <= hi)]
        idx = np.minimum(idx, self.bins - 1)
        return np.bincount(idx, minlength=self.bins).astype(np.float32)

    def forward(self, x_orig):
        x = _values(x_orig)
        if not x.size:
            return x_orig
        if not np.isfinite(x).all():
            warnings.warn("torch.inf detected in input tensor, ignoring input", stacklevel=2)
            x = x[np.abs(x) != np.inf]
            if not x.size:
                return x_orig
        x_min, x_max = x.min(), x.max()
        cur_min, cur_max = self.min_val._data, self.max_val._data
        if cur_min == np.inf or cur_max == -np.inf:
            self.min_val._data, self.max_val._data = np.float32(x_min)[()], np.float32(x_max)
            self.min_val._data = np.asarray(x_min, np.float32)
            self.max_val._data = np.asarray(x_max, np.float32)
            self.histogram._data = self._histc(x, x_min, x_max)
            return x_orig
        new_min = np.minimum(cur_min, x_min).astype(np.float32)
        new_max = np.maximum(cur_max, x_max).astype(np.float32)
        update = self._histc(x, new_min, new_max)
        if new_min == cur_min and new_max == cur_max:
            self.histogram._data = self.histogram._data + update
        else:
            self.histogram._data = (update + self._upscale(self.histogram._data, cur_min,
                                                           cur_max, new_min, new_max)
                                    ).astype(np.float32)
            self.min_val._data = np.asarray(new_min, np.float32)
            self.max_val._data = np.asarray(new_max, np.float32)
        return x_orig

    def _upscale(self, hist, omin, omax, nmin, nmax):
        """Spread the old histogram's mass over the new, wider bins (at 16 points a bin)."""
        if omin == omax:
            return self._histc(np.array([omin], np.float32), nmin, nmax) * hist.sum()
        r = self.upsample_rate
        h = np.repeat(hist, r) / np.float32(r)
        size = (omax - omin) / np.float32(self.bins * r)
        mids = np.linspace(omin, omax, self.bins * r + 1, dtype=np.float32)[:-1] + \
            np.float32(0.5) * size
        edges = np.linspace(nmin, nmax, self.bins + 1, dtype=np.float32)
        b = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, self.bins - 1)
        return np.bincount(b, weights=h, minlength=self.bins).astype(np.float32)

    def _error(self, start: int, end: int, bin_width: float) -> float:
        """The L2 quantization error of clipping to bins start..end."""
        dst_w = bin_width * (end - start + 1) / self.dst_nbins
        if dst_w == 0.0:
            return 0.0
        src = np.arange(self.bins, dtype=np.float64)
        begin = (src - start) * bin_width
        finish = begin + bin_width
        db = np.clip(np.floor(begin / dst_w), 0, self.dst_nbins - 1)
        de = np.clip(np.floor(finish / dst_w), 0, self.dst_nbins - 1)
        density = self.histogram._data.astype(np.float64) / bin_width

        def norm(a, b):
            return density * (b * b * b - a * a * a) / 3
        total = norm(begin - (db + 0.5) * dst_w, np.full(self.bins, dst_w / 2))
        total = total + (de - db - 1) * norm(-dst_w / 2, dst_w / 2)
        total = total + norm(-dst_w / 2, finish - (de * dst_w + dst_w / 2))
        return float(total.sum())

    def _search(self):
        """PyTorch's (caffe2's) non-linear search: shrink the range from the sparser end while
        the error falls."""
        lo, hi = float(self.min_val._data), float(self.max_val._data)
        bin_width = (hi - lo) / self.bins
        hist = self.histogram._data
        total = float(hist.sum())
        csum = np.cumsum(hist)
        alpha, beta, step = 0.0, 1.0, 1e-5
        start, end = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta:
            na, nb = alpha + step, beta - step
            left, right = start, end
            while left < end and csum[left] < na * total:
                left += 1
            while right > start and csum[right] > nb * total:
                right -= 1
            ns, ne = start, end
            if left - start > end - right:
                ns, alpha = left, na
            else:
                ne, beta = right, nb
            if ns == start and ne == end:
                continue
            err = self._error(ns, ne, bin_width)
            if err > norm_min:
                break
            norm_min, start, end = err, ns, ne
        w = (self.max_val._data - self.min_val._data) / np.float32(self.bins)
        return (self.min_val._data + w * np.float32(start),
                self.min_val._data + w * np.float32(end + 1))

    def calculate_qparams(self):
        if self.min_val._data == np.inf and self.max_val._data == -np.inf:
            warnings.warn("must run observer before calling calculate_qparams.            "
                          "                        Returning default scale and zero point ",
                          stacklevel=2)
            return _t(np.array([1.0], np.float32)), _t(np.array([0], np.int64))
        new_min, new_max = self._search()
        return self._calculate_qparams(new_min, new_max)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class PlaceholderObserver(ObserverBase):
    """Records nothing; carries the dtype (and scheme) a later step quantizes to."""

    def __init__(self, dtype=_dtype.float32, custom_op_name="", compute_dtype=None,
                 quant_min=None, quant_max=None, qscheme=None, eps=None, is_dynamic=False):
        super().__init__(dtype=dtype, is_dynamic=is_dynamic)
        self.qscheme = per_tensor_affine if qscheme is None else qscheme
        self.quant_min, self.quant_max, self.eps = quant_min, quant_max, eps
        self.custom_op = custom_op_name

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise Exception("calculate_qparams should not be called for PlaceholderObserver")


class NoopObserver(ObserverBase):
    """Observes nothing (float16 dynamic quantization's weight observer)."""

    def __init__(self, dtype=_dtype.float16, custom_op_name=""):
        super().__init__(dtype=dtype)
        self.custom_op = custom_op_name

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise Exception("calculate_qparams should not be called for NoopObserver")


class FixedQParamsObserver(ObserverBase):
    """Always answers the scale and zero point it was built with: the output qparams of ops
    whose range is known (sigmoid's [0, 1], tanh's [-1, 1]); per tensor only."""

    def __init__(self, scale, zero_point, dtype=quint8, qscheme=per_tensor_affine,
                 quant_min=0, quant_max=255, is_dynamic=False, **kwargs):
        if is_dynamic:
            raise NotImplementedError("FixedQParamsObserver doesn't support dynamic "
                                      "quantization")
        super().__init__(dtype=dtype, is_dynamic=is_dynamic, **kwargs)
        self.quant_min = quant_min
        self.quant_max = quant_max
        self.register_buffer("scale", _t(np.array([scale], np.float32)))
        self.register_buffer("zero_point", _t(np.array([zero_point], np.int32)))
        self.qscheme = qscheme

    def forward(self, X):
        return X

    def calculate_qparams(self):
        return self.scale, self.zero_point


class RecordingObserver(ObserverBase):
    """Keeps a copy of every tensor it sees (for debugging); chooses no qparams."""

    def __init__(self, dtype=quint8):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.tensor_val = []

    def forward(self, x):
        self.tensor_val.append(x.clone())
        return x

    def calculate_qparams(self):
        raise Exception("calculate_qparams should not be called for RecordingObserver")

    def get_tensor_value(self):
        return self.tensor_val


default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
default_placeholder_observer = PlaceholderObserver
default_weight_observer = MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)
weight_observer_range_neg_127_to_127 = MinMaxObserver.with_args(
    dtype=qint8, qscheme=per_tensor_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12)
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric)
per_channel_weight_observer_range_neg_127_to_127 = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric, quant_min=-127, quant_max=127, eps=2 ** -12)
default_dynamic_quant_observer = PlaceholderObserver.with_args(
    dtype=quint8, quant_min=0, quant_max=255, is_dynamic=True)
default_float_qparams_observer = PerChannelMinMaxObserver.with_args(
    dtype=quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0)
default_float_qparams_observer_4bit = PerChannelMinMaxObserver.with_args(
    dtype=quint4x2, qscheme=per_channel_affine_float_qparams, ch_axis=0)
# the fixed output ranges PyTorch gives sigmoid/hardsigmoid/softmax ([0, 1]) and tanh ([-1, 1])
default_fixed_qparams_range_0to1_observer = FixedQParamsObserver.with_args(
    scale=1.0 / 256.0, zero_point=0, dtype=quint8, quant_min=0, quant_max=255)
default_fixed_qparams_range_neg1to1_observer = FixedQParamsObserver.with_args(
    scale=2.0 / 256.0, zero_point=128, dtype=quint8, quant_min=0, quant_max=255)
default_affine_fixed_qparams_observer = default_fixed_qparams_range_0to1_observer
default_symmetric_fixed_qparams_observer = default_fixed_qparams_range_neg1to1_observer
