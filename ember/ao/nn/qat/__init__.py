"""QAT modules (``torch.ao.nn.qat``): float Linear/Conv/Embedding/EmbeddingBag whose weight
passes its fake-quant on every forward; each is a subclass of its float module with the child
``weight_fake_quant``, so state-dict keys are PyTorch's."""
from __future__ import annotations

from ....nn.modules.linear import Linear as _Linear
from ....nn.modules.conv import Conv1d as _Conv1d, Conv2d as _Conv2d, Conv3d as _Conv3d
from ....nn.modules.sparse import Embedding as _Embedding, EmbeddingBag as _EmbeddingBag
from ....nn import functional as F
from ....nn.parameter import Parameter
from ....ops.layers import linear
from ....ops.quantized import per_channel_affine_float_qparams

__all__ = ["Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "EmbeddingBag"]


def _need_qconfig(qconfig):
    if not qconfig:
        raise AssertionError("qconfig must be provided for QAT module")


class Linear(_Linear):
    """``linear(x, weight_fake_quant(W), b)``."""

    def __init__(self, in_features, out_features, bias=True, qconfig=None, device=None,
                 dtype=None):
        super().__init__(in_features, out_features, bias)
        _need_qconfig(qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input):
        return linear(input, self.weight_fake_quant(self.weight), self.bias)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        float_mod = mod[0] if hasattr(mod, "_modules") and "0" in mod._modules else mod
        q = cls(float_mod.in_features, float_mod.out_features, float_mod.bias is not None,
                qconfig=mod.qconfig)
        q.weight = float_mod.weight
        q.bias = float_mod.bias
        return q


class _ConvNd:
    """``convNd(x, weight_fake_quant(W), b)``: the float conv with its weight fake-quantized
    (mixed in before the float ConvNd class)."""

    def __init__(self, *args, qconfig=None, **kwargs):
        super().__init__(*args, **kwargs)
        _need_qconfig(qconfig)
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input):
        return self._conv_forward(input, self.weight_fake_quant(self.weight), self.bias)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        c = mod[0] if hasattr(mod, "_modules") and "0" in mod._modules else mod
        q = cls(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride,
                padding=c.padding, dilation=c.dilation, groups=c.groups,
                bias=c.bias is not None, padding_mode=c.padding_mode, qconfig=mod.qconfig)
        q.weight = c.weight
        q.bias = c.bias
        return q


class Conv1d(_ConvNd, _Conv1d):
    """``torch.ao.nn.qat.Conv1d``."""


class Conv2d(_ConvNd, _Conv2d):
    """``torch.ao.nn.qat.Conv2d``."""


class Conv3d(_ConvNd, _Conv3d):
    """``torch.ao.nn.qat.Conv3d``."""


def _check_float_qparams(qconfig, what: str):
    """Embeddings take only float-qparams weight fake quants (PyTorch's check)."""
    qscheme = qconfig.weight().qscheme
    if qscheme is not per_channel_affine_float_qparams:
        raise AssertionError(f"{what} weights requires a qscheme of "
                             f"torch.per_channel_affine_float_qparams Got {qscheme}")


def _check_float_embedding(cls, mod, what: str):
    if type(mod) is not cls._FLOAT_MODULE:
        raise AssertionError(f" qat.{cls.__name__}.from_float only works for "
                             f"{cls._FLOAT_MODULE.__name__}")
    if not hasattr(mod, "qconfig"):
        raise AssertionError("Input float module must have qconfig defined")
    if not mod.qconfig:
        raise AssertionError("Input float module must have a valid qconfig")
    _check_float_qparams(mod.qconfig, what)


class Embedding(_Embedding):
    """``embedding(idx, weight_fake_quant(W))`` (``torch.ao.nn.qat.Embedding``)."""

    _FLOAT_MODULE = _Embedding

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 device=None, dtype=None, qconfig=None):
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                         scale_grad_by_freq, sparse, _weight, device=device, dtype=dtype)
        _need_qconfig(qconfig)
        _check_float_qparams(qconfig, "Embedding")
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input):
        return F.embedding(input, self.weight_fake_quant(self.weight), self.padding_idx,
                           self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        """The QAT embedding of a float ``nn.Embedding`` (sharing its table)."""
        _check_float_embedding(cls, mod, "Embedding")
        return cls(mod.num_embeddings, mod.embedding_dim, mod.padding_idx, mod.max_norm,
                   mod.norm_type, mod.scale_grad_by_freq, mod.sparse, mod.weight,
                   qconfig=mod.qconfig)

    def to_float(self):
        e = _Embedding(self.num_embeddings, self.embedding_dim, self.padding_idx,
                       self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)
        e.weight = Parameter(self.weight.detach())
        e.train(self.training)
        return e


class EmbeddingBag(_EmbeddingBag):
    """``embedding_bag(idx, weight_fake_quant(W), offsets, ...)``
    (``torch.ao.nn.qat.EmbeddingBag``)."""

    _FLOAT_MODULE = _EmbeddingBag

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, qconfig=None, device=None,
                 dtype=None):
        super().__init__(num_embeddings, embedding_dim, max_norm, norm_type, scale_grad_by_freq,
                         mode, sparse, _weight, include_last_offset, padding_idx,
                         device=device, dtype=dtype)
        _need_qconfig(qconfig)
        _check_float_qparams(qconfig, "Embedding Bag")
        self.qconfig = qconfig
        self.weight_fake_quant = qconfig.weight()

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight_fake_quant(self.weight), offsets,
                               self.max_norm, self.norm_type, self.scale_grad_by_freq,
                               self.mode, self.sparse, per_sample_weights,
                               self.include_last_offset, self.padding_idx)

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        """The QAT bag of a float ``nn.EmbeddingBag`` (sharing its table)."""
        _check_float_embedding(cls, mod, "Embedding Bag")
        return cls(mod.num_embeddings, mod.embedding_dim, mod.max_norm, mod.norm_type,
                   mod.scale_grad_by_freq, mod.mode, mod.sparse, mod.weight,
                   mod.include_last_offset, mod.padding_idx, qconfig=mod.qconfig)

    def to_float(self):
        e = _EmbeddingBag(self.num_embeddings, self.embedding_dim, self.max_norm,
                          self.norm_type, self.scale_grad_by_freq, self.mode, self.sparse,
                          None, self.include_last_offset, self.padding_idx)
        e.weight = Parameter(self.weight.detach())
        e.train(self.training)
        return e
