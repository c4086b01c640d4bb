"""Quantized embeddings (``torch.ao.nn.quantized.Embedding`` / ``EmbeddingBag``): 8-bit (or
packed 4-bit) rows with a float scale and a float zero point each
(``per_channel_affine_float_qparams``, what ``float_qparams_weight_only_qconfig`` observes);
float indices in, float rows out.  A row reads as fbgemm's ``EmbeddingSpMDM`` reads it:
``fma(scale, q, bias)`` with ``bias = -zero_point * scale`` in float32, a bag summing its rows
one fma at a time in index order (``fma(scale * w, q, acc + bias * w)`` with per-sample
weights)."""
from __future__ import annotations

import numpy as np

from .... import _backend
from ...._dtype import quint8, quint4x2
from ...._tensor import Tensor, _make
from ....nn.modules.module import Module
from ....ops import quantized as _q
from ....ops.quantized import per_channel_affine_float_qparams

__all__ = ["EmbeddingPackedParams", "Embedding", "EmbeddingBag"]


def _row_scale_bias(w):
    """Per-row float32 ``(scale, bias)`` of the packed weight: ``bias = -zp * scale``; 4-bit
    rows keep both in float16, as fbgemm's 4-bit prepack stores them."""
    s = w._scale.astype(np.float32)
    b = (w._zp.astype(np.float32) * s) * np.float32(-1)
    if w._qdtype is quint4x2:
        s = s.astype(np.float16).astype(np.float32)
        b = b.astype(np.float16).astype(np.float32)
    return s, b


def _fma32(xp, a, b, c):
    """``a * b + c`` rounded once to float32 (the product of a float32 and an 8-bit integer is
    exact in float64, so only the sum rounds, twice: as fbgemm's fma in every case seen)."""
    return (a.astype(xp.float64) * b + c).astype(xp.float32)


class EmbeddingPackedParams(Module):
    """Holds the quantized weight (PyTorch's keys ``dtype`` and ``_packed_weight``)."""

    _version = 1

    def __init__(self, num_embeddings, embedding_dim, dtype=quint8):
        super().__init__()
        self.dtype = dtype
        if dtype not in (quint8, quint4x2):
            raise NotImplementedError(f"Unsupported dtype on quantized embedding! Supports "
                                      f"quint8 and quint4x2. Got dtype: {dtype}")
        zeros = _make(np.zeros((num_embeddings, embedding_dim), np.float32))
        self.set_weight(_q.quantize_per_channel(
            zeros, _make(np.ones(num_embeddings, np.float32)),
            _make(np.zeros(num_embeddings, np.float32)), 0, dtype))

    def set_weight(self, weight):
        if weight._qscheme is not per_channel_affine_float_qparams:
            raise RuntimeError("Expect embedding_bag weights to be quantized using "
                               "kPerChannelAffineFloatQParams")
        self._weight_q = weight
        self._rows = weight._unpacked() if weight._qdtype is quint4x2 else weight._data
        self._scale_bias = _row_scale_bias(weight)

    def _weight(self):
        return self._weight_q

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "dtype"] = self.dtype
        destination[prefix + "_packed_weight"] = self._weight_q

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        self.dtype = state_dict.pop(prefix + "dtype")
        self.set_weight(state_dict.pop(prefix + "_packed_weight"))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, False, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x):
        return x


def _indices(t, n: int, what: str):
    """The index array, checked as fbgemm checks it."""
    if not isinstance(t, Tensor) or t._data.dtype.kind not in "iu":
        name = t.dtype.scalar_name if isinstance(t, Tensor) else type(t).__name__
        raise RuntimeError(f"Expect 32 or 64 bit indices, but found {name} instead.")
    idx = t._data.astype(np.int64, copy=False)
    bad = np.flatnonzero((idx.reshape(-1) < 0) | (idx.reshape(-1) >= n))
    if bad.size:
        i = int(bad[0])
        raise RuntimeError(f"Index {i} is out of bounds: {int(idx.reshape(-1)[i])}, range 0 "
                           f"to {n}")
    return idx


class _QuantizedEmbedding(Module):
    """Shared parts: the packed weight, ``weight()``, ``set_weight``, ``from_float``."""

    _FLOAT = None  # the float module's class name

    def weight(self):
        return self._packed_params._weight()

    def set_weight(self, w):
        self._packed_params.set_weight(w)

    def extra_repr(self):
        return (f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
                f"dtype={self._packed_params.dtype}, qscheme={self.weight().qscheme()}")

    def __repr__(self):  # PyTorch hides the packed params child
        return f"{self._get_name()}({self.extra_repr()})"

    @classmethod
    def _observed_weight(cls, mod):
        """The quantized weight of the float (or QAT) module ``mod``, as PyTorch's
        ``from_float``: only float-qparams observers, quint8 or quint4x2."""
        name = cls._FLOAT
        if hasattr(mod, "weight_fake_quant"):
            wobs = mod.weight_fake_quant
        else:
            if type(mod).__name__ != name:
                raise AssertionError(f"nnq.{cls.__name__}.from_float only works for {name}")
            if not hasattr(mod, "qconfig"):
                raise AssertionError(f"{name} input float module must have qconfig defined")
            from ...quantization.qconfig import float_qparams_weight_only_qconfig
            qc = mod.qconfig
            wobs = (qc.weight() if qc is not None and qc.weight is not None
                    else float_qparams_weight_only_qconfig.weight())
        if wobs.qscheme is not per_channel_affine_float_qparams:
            raise AssertionError(f"{name} quantization is only supported with "
                                 "float_qparams_weight_only_qconfig.")
        if wobs.dtype not in (quint8, quint4x2):
            raise AssertionError(f"The only supported dtype for nnq.{cls.__name__} is "
                                 f"torch.quint8 and torch.quint4x2, got {wobs.dtype}")
        from .modules import quantize_weight
        wobs(mod.weight)
        return quantize_weight(mod.weight.float(), wobs), wobs.dtype


class Embedding(_QuantizedEmbedding):
    """Rows of an 8-bit (or 4-bit) quantized table, read as float32
    (``torch.ao.nn.quantized.Embedding``)."""

    _FLOAT = "Embedding"

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 dtype=quint8):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.dtype = dtype
        self._packed_params = EmbeddingPackedParams(num_embeddings, embedding_dim, dtype)
        if _weight is not None:
            if list(_weight.shape) != [num_embeddings, embedding_dim]:
                raise AssertionError("Shape of weight does not match num_embeddings and "
                                     "embedding_dim")
            self._packed_params.set_weight(_weight)

    def forward(self, indices):
        pp = self._packed_params
        idx = _indices(indices, self.num_embeddings, "embedding")
        xp = _backend.xp_of(pp._rows)
        s, b = pp._scale_bias
        flat = idx.reshape(-1)
        out = _fma32(xp, s[flat, None], pp._rows[flat], b[flat, None])
        return _make(out.reshape(idx.shape + (self.embedding_dim,)))

    def _get_name(self):
        return "QuantizedEmbedding"

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        qw, dtype = cls._observed_weight(mod)
        q = cls(mod.num_embeddings, mod.embedding_dim, dtype=dtype)
        q.set_weight(qw)
        return q


class EmbeddingBag(_QuantizedEmbedding):
    """Sums of quantized rows per bag (``torch.ao.nn.quantized.EmbeddingBag``).  As PyTorch's,
    every ``mode`` sums: the module passes fbgemm mode 0 whatever it was built with."""

    _FLOAT = "EmbeddingBag"

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="sum", sparse=False, _weight=None,
                 include_last_offset=False, dtype=quint8):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.mode = mode
        self.include_last_offset = include_last_offset
        self.pruned_weights = False
        self.dtype = dtype
        self._packed_params = EmbeddingPackedParams(num_embeddings, embedding_dim, dtype)
        if _weight is not None:
            self._packed_params.set_weight(_weight)

    def forward(self, indices, offsets=None, per_sample_weights=None,
                compressed_indices_mapping=None):
        pp = self._packed_params
        op = "embedding_bag_4bit" if pp.dtype is quint4x2 else "embedding_bag_byte"
        idx = _indices(indices, self.num_embeddings, op)
        if idx.ndim == 2:
            if offsets is not None:
                raise RuntimeError(f"{op} operator: input is 2D, then offsets has to be None, "
                                   "as input is treated is a mini-batch of fixed length "
                                   "sequences.")
            n_bags, length = idx.shape
            starts = np.arange(0, n_bags * length, length, dtype=np.int64)
            idx = idx.reshape(-1)
        else:
            if offsets is None:
                raise RuntimeError(f"{op} expects offsets to be set for 1D indices.")
            starts = offsets._data.astype(np.int64)
            if self.include_last_offset:
                starts = starts[:-1]
            n_bags = starts.shape[0]
        xp = _backend.xp_of(pp._rows)
        s, b = pp._scale_bias
        s, b = s[idx], b[idx]
        if per_sample_weights is not None:
            w = per_sample_weights._data.astype(np.float32).reshape(-1)
            s, b = s * w, b * w
        ends = np.append(starts[1:], idx.shape[0]) if n_bags else starts
        lengths = np.maximum(ends - starts, 0)
        bag = np.repeat(np.arange(n_bags), lengths)
        pos = np.arange(idx.shape[0]) - np.repeat(starts, lengths)
        acc = xp.zeros((n_bags, self.embedding_dim), xp.float32)
        # position j of every bag at once: each bag appears at most once per step, so the
        # fbgemm order (one fma per row, in index order) is kept
        for j in range(int(lengths.max(initial=0))):
            sel = np.flatnonzero(pos == j)
            rows = bag[sel]
            acc[rows] = _fma32(xp, s[sel, None], pp._rows[idx[sel]],
                               acc[rows] + b[sel, None])
        return _make(acc)

    def _get_name(self):
        return "QuantizedEmbeddingBag"

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        qw, dtype = cls._observed_weight(mod)
        q = cls(mod.num_embeddings, mod.embedding_dim, max_norm=mod.max_norm,
                norm_type=mod.norm_type, scale_grad_by_freq=mod.scale_grad_by_freq,
                mode=mod.mode, sparse=mod.sparse, include_last_offset=mod.include_last_offset,
                dtype=dtype)
        q.set_weight(qw)
        return q

