"""torchao's ``quantize_(model, config, filter_fn=None)``, the API PyTorch now points users to
(``torchao.quantization``; ``ember run`` maps that name here).  Each config replaces every
``nn.Linear`` that ``filter_fn(module, fqn)`` accepts, in place, by a module holding integer
weights: int8 per output channel (symmetric, ``scale = max|w| / 127.5``), optionally with
int8 per-token dynamic activations, or int4 per group of ``group_size`` input columns
(asymmetric, two values packed per byte)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._tensor import _make
from ...nn.modules.linear import Linear
from ...nn.modules.module import Module, _tree_changed

__all__ = ["quantize_", "Int8WeightOnlyConfig", "Int8DynamicActivationInt8WeightConfig",
           "Int4WeightOnlyConfig"]


@dataclass
class Int8WeightOnlyConfig:
    """int8 weights, one scale per output channel; activations stay float."""
    group_size: int | None = None


@dataclass
class Int8DynamicActivationInt8WeightConfig:
    """int8 weights per channel and int8 activations per token, quantized at each call."""


@dataclass
class Int4WeightOnlyConfig:
    """int4 weights with a scale and zero point per group of ``group_size`` inputs."""
    group_size: int = 128


def _int8_rows(w: np.ndarray):
    """Symmetric int8 per row: ``q = round(w / s)``, ``s = max|w| / 127.5`` (torchao's)."""
    s = np.maximum(np.abs(w).max(1) / np.float32(127.5), np.float32(np.finfo(np.float32).eps))
    q = np.clip(np.rint(w / s[:, None]), -128, 127).astype(np.int8)
    return q, s.astype(np.float32)


class _QuantizedLinearBase(Module):
    def __init__(self, lin: Linear):
        super().__init__()
        self.in_features, self.out_features = lin.in_features, lin.out_features
        b = lin.bias
        self.bias = None if b is None else _make(b.detach()._data.astype(np.float32))

    def _finish(self, y, lead):
        if self.bias is not None:
            y += self.bias._data
        return _make(y.reshape(*lead, self.out_features))


class Int8WeightOnlyLinear(_QuantizedLinearBase):
    """``x @ (q * s)^T + b`` computed as ``(x @ q^T) * s`` (the scale after the GEMM)."""

    def __init__(self, lin: Linear):
        super().__init__(lin)
        q, s = _int8_rows(lin.weight.detach()._data.astype(np.float32))
        self.register_buffer("weight_int8", _make(q))
        self.register_buffer("scale", _make(s))
        self._wt = np.ascontiguousarray(q.T.astype(np.float32))

    def forward(self, x):
        a = x._data.astype(np.float32, copy=False)
        lead = a.shape[:-1]
        y = a.reshape(-1, self.in_features) @ self._wt
        y *= self.scale._data
        return self._finish(y, lead)


class Int8DynActInt8WeightLinear(Int8WeightOnlyLinear):
    """Activations quantized per token (symmetric int8) at each call, exact int32 products."""

    def forward(self, x):
        from ...ops.quantized import int_matmul
        a = x._data.astype(np.float32, copy=False)
        lead = a.shape[:-1]
        a = a.reshape(-1, self.in_features)
        qa, sa = _int8_rows(a)
        acc = int_matmul(np, qa.astype(np.float32), self._wt, 128, 128)
        y = acc.astype(np.float32) * sa[:, None] * self.scale._data
        return self._finish(y, lead)


class Int4WeightOnlyLinear(_QuantizedLinearBase):
    """int4 weights per group: ``w = (q - z) * s`` for each ``group_size`` columns."""

    def __init__(self, lin: Linear, group_size: int):
        super().__init__(lin)
        w = lin.weight.detach()._data.astype(np.float32)
        o, k = w.shape
        if k % group_size:
            raise ValueError(f"in_features {k} is not a multiple of group_size {group_size}")
        g = w.reshape(o, k // group_size, group_size)
        lo, hi = np.minimum(g.min(2), 0), np.maximum(g.max(2), 0)
        s = np.maximum((hi - lo) / np.float32(15), np.float32(1e-6)).astype(np.float32)
        z = np.clip(np.rint(-lo / s), 0, 15).astype(np.float32)
        q = np.clip(np.rint(g / s[..., None]) + z[..., None], 0, 15).astype(np.uint8)
        q = q.reshape(o, k)
        self.group_size = group_size
        self.register_buffer("weight_int4_packed", _make(q[:, 0::2] | (q[:, 1::2] << 4)))
        self.register_buffer("scale", _make(s))
        self.register_buffer("zero_point", _make(z))
        self._w = None

    def _dequantized(self):
        if self._w is None:  # unpacked once, kept for the GEMM
            p = self.weight_int4_packed._data
            q = np.empty((p.shape[0], p.shape[1] * 2), np.float32)
            q[:, 0::2], q[:, 1::2] = p & 15, p >> 4
            o, k = q.shape
            g = q.reshape(o, k // self.group_size, self.group_size)
            w = (g - self.zero_point._data[..., None]) * self.scale._data[..., None]
            self._w = np.ascontiguousarray(w.reshape(o, k).T)
        return self._w

    def forward(self, x):
        a = x._data.astype(np.float32, copy=False)
        lead = a.shape[:-1]
        return self._finish(a.reshape(-1, self.in_features) @ self._dequantized(), lead)


def _replacement(lin, config):
    if isinstance(config, Int8WeightOnlyConfig):
        return Int8WeightOnlyLinear(lin)
    if isinstance(config, Int8DynamicActivationInt8WeightConfig):
        return Int8DynActInt8WeightLinear(lin)
    if isinstance(config, Int4WeightOnlyConfig):
        return Int4WeightOnlyLinear(lin, config.group_size)
    raise NotImplementedError(f"quantize_: unsupported config {type(config).__name__}")


def quantize_(model, config, filter_fn=None, device=None):
    """Quantize ``model``'s Linear layers in place (torchao's ``quantize_``); ``filter_fn(mod,
    fqn)`` picks which (default: every ``nn.Linear``)."""
    if filter_fn is None:
        def filter_fn(mod, fqn):
            return isinstance(mod, Linear)
    if filter_fn(model, "") and isinstance(model, Linear):
        raise ValueError("quantize_ replaces submodules: wrap a lone Linear in a container")

    def walk(mod, prefix):
        for name, child in list(mod.named_children()):
            fqn = prefix + ("." if prefix else "") + name
            if isinstance(child, Linear) and filter_fn(child, fqn):
                mod._modules[name] = _replacement(child, config)
                _tree_changed(mod)  # (compiled code guards on it)
            else:
                walk(child, fqn)
    walk(model, "")
    return model
