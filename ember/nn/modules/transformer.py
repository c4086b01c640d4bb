"""nn layers: transformer family (as torch/nn/modules/transformer.py).

``TransformerEncoderLayer``, ``TransformerDecoderLayer``, ``TransformerEncoder``,
``TransformerDecoder`` and ``Transformer`` use PyTorch's submodule names, so state dicts
interchange.  ``SinusoidalPositionalEncoding`` and ``LearnedPositionalEmbedding`` are ember
additions (PyTorch has no positional-encoding module).

PyTorch's inference fast paths (``_transformer_encoder_layer_fwd``, nested tensors) compute
the same numbers as the plain path, with one visible difference that ember reproduces: an
encoder in eval mode without autograd and with a left-aligned ``src_key_padding_mask``
(``enable_nested_tensor``) returns zeros at the padded positions (before its final norm).
"""
from __future__ import annotations

import copy
import math

from ... import _creation
from ..._dtype import float64, get_default_dtype
from ...autograd.grad_mode import state as _grad_state
from ...ops import attention as _mha_ops
from .. import functional as F
from ..init import xavier_uniform_
from .activation import MultiheadAttention, ReLU, GELU
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm
from .sparse import Embedding

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
           "TransformerDecoderLayer", "SinusoidalPositionalEncoding",
           "LearnedPositionalEmbedding"]


def _generate_square_subsequent_mask(sz: int, device=None, dtype=None):
    """``(sz, sz)`` float mask: -inf above the diagonal, 0 elsewhere."""
    return _creation.full((sz, sz), float("-inf"), dtype=dtype, device=device).triu(1)


def _get_seq_len(src, batch_first: bool):
    shape = src.shape
    if len(shape) == 2:
        return shape[0]
    return shape[1 if batch_first else 0]


_INT_NAMES = {"int64": "int64_t", "int32": "int", "int16": "int16_t", "int8": "int8_t",
              "uint8": "uint8_t"}


def _detect_is_causal_mask(mask, is_causal=None, size=None) -> bool:
    """``is_causal`` if given, else whether ``mask`` equals the square subsequent mask."""
    make_causal = is_causal is True
    if is_causal is None and mask is not None:
        sz = size if size is not None else mask.shape[-2]
        kind = mask._data.dtype
        if kind.kind in "iu":  # PyTorch fails to build a -inf mask of an integer dtype
            raise RuntimeError(f"value cannot be converted to type "
                               f"{_INT_NAMES.get(kind.name, kind.name)} without overflow")
        causal = _generate_square_subsequent_mask(sz, dtype=mask.dtype)
        if tuple(mask.shape) == tuple(causal.shape):
            make_causal = bool((mask == causal).all())
        else:
            make_causal = False
    return make_causal


def _get_clones(module, n: int) -> ModuleList:
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _get_activation_fn(activation: str):
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


def _canonical(mask, name, dtype, other=None, other_name=""):
    return _mha_ops._canonical_mask(mask, name, dtype, other, other_name)


class Transformer(Module):
    """Encoder-decoder transformer ("Attention Is All You Need"), as ``torch.nn.Transformer``:
    ``decoder(tgt, encoder(src))`` with a final LayerNorm on each stack."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation=F.relu, custom_encoder=None,
                 custom_decoder=None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, **kw)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, **kw)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        """Encode ``src``, decode ``tgt`` against it; shapes ``(S, N, E)`` / ``(T, N, E)``
        (batch first when ``batch_first``) or unbatched."""
        is_batched = src.dim() == 3
        if not self.batch_first and src.size(1) != tgt.size(1) and is_batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if self.batch_first and src.size(0) != tgt.size(0) and is_batched:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.size(-1) != self.d_model or tgt.size(-1) != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None):
        """``(sz, sz)`` float mask: -inf above the diagonal (future positions), 0 elsewhere."""
        return _generate_square_subsequent_mask(sz, device=device, dtype=dtype)

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                xavier_uniform_(p)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` deep copies of ``encoder_layer``, then ``norm`` if given."""

    __constants__ = ["norm"]

    def __init__(self, encoder_layer, num_layers: int, norm=None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        # PyTorch's conditions for its nested-tensor path (it warns when they fail; ember
        # records the outcome only, for the padded-output behaviour in the module docstring)
        layer = encoder_layer
        self.use_nested_tensor = bool(
            enable_nested_tensor and isinstance(layer, TransformerEncoderLayer)
            and not layer.norm_first and layer.self_attn.batch_first
            and layer.self_attn._qkv_same_embed_dim and layer.self_attn.in_proj_bias is not None
            and layer.activation_relu_or_gelu and layer.norm1.eps == layer.norm2.eps
            and layer.self_attn.num_heads % 2 == 0)
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """Pass ``src`` through every layer (masks as ``TransformerEncoderLayer``'s)."""
        dt = src._data.dtype
        src_key_padding_mask = _canonical(src_key_padding_mask, "src_key_padding_mask", dt,
                                          mask, "mask")
        mask = _canonical(mask, "mask", dt)
        first = self.layers[0]
        batch_first = first.self_attn.batch_first
        padded = None
        if (getattr(self, "use_nested_tensor", False) and not first.training
                and src.dim() == 3 and src_key_padding_mask is not None and mask is None
                and not (_grad_state.grad and _needs_grad(src, first))):
            valid = src_key_padding_mask._data == 0
            # left aligned: every row's valid positions come first
            if not getattr(self, "mask_check", True) or _left_aligned(valid):
                padded = valid
        seq_len = _get_seq_len(src, batch_first)
        is_causal = _detect_is_causal_mask(mask, is_causal, seq_len)
        output = src
        for mod in self.layers:
            output = mod(output, src_mask=mask, is_causal=is_causal,
                         src_key_padding_mask=src_key_padding_mask)
        if padded is not None:  # PyTorch's nested tensors pad the dropped positions with 0
            output = output * _creation.tensor(padded[..., None]).to(output.dtype)
        if self.norm is not None:
            output = self.norm(output)
        return output


def _needs_grad(src, layer) -> bool:
    return src.requires_grad or any(p.requires_grad for p in layer.parameters())


def _left_aligned(valid) -> bool:
    """Whether each row of the boolean ``valid`` is True then False, never True after False."""
    if valid.shape[-1] < 2:
        return True
    return not (valid[:, 1:] & ~valid[:, :-1]).any()


class TransformerDecoder(Module):
    """A stack of ``num_layers`` deep copies of ``decoder_layer``, then ``norm`` if given."""

    __constants__ = ["norm"]

    def __init__(self, decoder_layer, num_layers: int, norm=None) -> None:
        super().__init__()
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        """Pass ``tgt`` through every layer, each attending to ``memory``."""
        output = tgt
        seq_len = _get_seq_len(tgt, self.layers[0].self_attn.batch_first)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal, seq_len)
        for mod in self.layers:
            output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                         tgt_key_padding_mask=tgt_key_padding_mask,
                         memory_key_padding_mask=memory_key_padding_mask,
                         tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            output = self.norm(output)
        return output


def _activation(activation):
    return _get_activation_fn(activation) if isinstance(activation, str) else activation


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with residual, dropout and LayerNorm:

    ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``, or with ``norm_first``
    ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``;
    ``ff(x) = linear2(dropout(activation(linear1(x))))``.
    """

    __constants__ = ["norm_first"]

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation=F.relu, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        activation = _activation(activation)
        if activation == F.relu or isinstance(activation, ReLU):  # == : fx may wrap F.relu
            self.activation_relu_or_gelu = 1
        elif activation == F.gelu or isinstance(activation, GELU):
            self.activation_relu_or_gelu = 2
        else:
            self.activation_relu_or_gelu = 0
        self.activation = activation

    def __setstate__(self, state):
        super().__setstate__(state)
        if not hasattr(self, "activation"):
            self.activation = F.relu

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        """``src`` ``(S, N, E)`` (``(N, S, E)`` when batch first) or unbatched ``(S, E)``."""
        dt = src._data.dtype
        src_key_padding_mask = _canonical(src_key_padding_mask, "src_key_padding_mask", dt,
                                          src_mask, "src_mask")
        src_mask = _canonical(src_mask, "src_mask", dt)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask,
                                   is_causal=is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask,
                                              is_causal=is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal: bool = False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerDecoderLayer(Module):
    """Self-attention, attention over ``memory``, then a feed-forward block, each with
    residual, dropout and LayerNorm (post-norm, or pre-norm with ``norm_first``)."""

    __constants__ = ["norm_first"]

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation=F.relu, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                            batch_first=batch_first, bias=bias, **kw)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout,
                                                 batch_first=batch_first, bias=bias, **kw)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def __setstate__(self, state):
        if "activation" not in state:
            state["activation"] = F.relu
        super().__setstate__(state)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False):
        """``tgt`` ``(T, N, E)`` attends to itself and to ``memory`` ``(S, N, E)``."""
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask,
                                   tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask,
                                              tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal: bool = False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal: bool = False):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)


# ---- positional encodings (ember additions) --------------------------------------------------

class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position code of "Attention Is All You Need" (an ember
    addition, not a PyTorch module), then dropout:

    ``PE(pos, 2i) = sin(pos / 10000^(2i / d_model))``,
    ``PE(pos, 2i + 1) = cos(pos / 10000^(2i / d_model))``.

    Input ``(S, N, d_model)``, or ``(N, S, d_model)`` with ``batch_first``, or unbatched
    ``(S, d_model)``.  The table ``pe`` ``(max_len, d_model)`` is a non-persistent buffer (not
    in the state dict).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0,
                 batch_first: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.batch_first = batch_first
        self.dropout = Dropout(dropout)
        # the table in float64, rounded once to the module's dtype
        pos = _creation.arange(max_len, dtype=float64).unsqueeze(1)
        div = (_creation.arange(0, d_model, 2, dtype=float64)
               * (-math.log(10000.0) / d_model)).exp()
        pe = _creation.zeros((max_len, d_model), dtype=float64)
        pe[:, 0::2] = (pos * div).sin()
        pe[:, 1::2] = (pos * div[: d_model // 2]).cos()
        self.register_buffer("pe", pe.to(dtype or get_default_dtype()), persistent=False)

    def forward(self, x):
        seq = x.shape[1] if self.batch_first and x.dim() == 3 else x.shape[0]
        if seq > self.max_len:
            raise RuntimeError(f"sequence length {seq} exceeds max_len {self.max_len}")
        pe = self.pe[:seq].to(x.dtype)
        if x.dim() == 3 and not self.batch_first:
            pe = pe.unsqueeze(1)
        return self.dropout(x + pe)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(Module):
    """A trained position table (an ember addition, not a PyTorch module), GPT-style:
    ``forward(x, offset=0)`` returns ``E[offset : offset + S]`` of shape ``(S, d_model)``, to be
    added to the token embeddings, where ``E`` is ``embedding.weight`` ``(max_len, d_model)``
    (initialised ``N(0, 1)`` as ``nn.Embedding``) and ``S = x.shape[1]`` (``x`` batch-first
    token ids ``(N, S)`` or embeddings ``(N, S, d_model)``).  ``embed(positions)`` looks up an
    integer tensor of positions of any shape.
    """

    def __init__(self, max_len: int, d_model: int, device=None, dtype=None) -> None:
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        self.embedding = Embedding(max_len, d_model, device=device, dtype=dtype)

    def forward(self, x, offset: int = 0):
        seq = x.shape[1]
        if offset + seq > self.max_len:
            raise RuntimeError(f"positions up to {offset + seq - 1} exceed max_len "
                               f"{self.max_len}")
        return self.embedding(_creation.arange(offset, offset + seq))

    def embed(self, positions):
        """The embeddings of the integer tensor ``positions``."""
        return self.embedding(positions)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"
