"""Dynamically quantized modules (``torch.ao.nn.quantized.dynamic``): float in, float out,
int8 weights; each call quantizes its input with qparams chosen from that batch's range."""
from __future__ import annotations

from ..... import _backend
from ....._tensor import _make
from ....._dtype import qint8
from .....ops import quantized as _q
from .. import modules as _m

__all__ = ["Linear"]


class Linear(_m.Linear):
    """``y = x W^T + b`` with the input quantized per call to quint8 (range halved, as fbgemm's
    16-bit accumulation wants), exact int32 products, float output."""

    _NAME = "quantized::linear_dynamic"

    def __init__(self, in_features, out_features, bias_=True, dtype=qint8):
        super().__init__(in_features, out_features, bias_, dtype)
        self.reduce_range = True

    def forward(self, x):
        if isinstance(x, _q.QTensor):
            raise NotImplementedError(
                "Could not run 'quantized::linear_dynamic' with arguments from the "
                "'QuantizedCPU' backend.")
        xp = _backend.xp_of(x._data)
        a = x._data if x._data.dtype == xp.float32 else x._data.astype(xp.float32)
        lead = a.shape[:-1]
        a = a.reshape(-1, a.shape[-1])
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        qmax = 127 if self.reduce_range else 255
        scale, zp = _q.choose_qparams(lo, hi, 0, qmax)
        # the zero-point-shifted integers q - zp directly: rint(x / scale) clamped to
        # [-zp, qmax - zp], three in-place float32 passes (fbgemm adds zp before rounding, so
        # an input within a float32 ulp of a tie may land one step apart)
        af = a * (xp.float32(1) / xp.float32(scale))
        xp.rint(af, out=af)
        xp.clip(af, -zp, qmax - zp, out=af)
        pack = self._packed_params.pack
        acc = _q.int_matmul(xp, af, pack.wt, max(zp, qmax - zp), pack.wmax)
        y = acc.astype(xp.float32, copy=False) * (xp.float32(scale) * pack.scales)
        b = self.bias()
        if b is not None:
            y += b._data.astype(xp.float32)
        return _make(y.reshape(*lead, -1))

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from ....quantization.qconfig import default_dynamic_qconfig
        float_mod = mod[0] if _m._is_fused(mod) else mod
        qconfig = getattr(mod, "qconfig", None) or default_dynamic_qconfig
        wobs = qconfig.weight()
        wobs(float_mod.weight)
        if wobs.dtype is not qint8:
            raise AssertionError("The only supported dtypes for dynamic quantized linear are "
                                 "qint8 and float16")
        q = cls(float_mod.in_features, float_mod.out_features, dtype=qint8)
        b = float_mod.bias
        q.set_weight_bias(_m.quantize_weight(float_mod.weight, wobs),
                          None if b is None else b.detach().float())
        return q

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"dtype={self._packed_params.dtype}, qscheme={self.weight().qscheme()}")


class _DynamicRNN:
    """A recurrent layer with int8 weight matrices (one symmetric per-tensor scale each, as
    ``default_dynamic_qconfig``'s weight observer gives): the recurrence runs on the
    dequantized int8 weights in float32, so the weight quantization error is PyTorch's; PyTorch
    also quantizes each step's activations (fbgemm's dynamic linear), which this does not."""

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        import copy
        from ....quantization.qconfig import default_dynamic_qconfig
        from .....nn.parameter import Parameter
        qconfig = getattr(mod, "qconfig", None) or default_dynamic_qconfig
        q = copy.deepcopy(mod)
        q.__class__ = cls
        q._packed_weights = {}
        for name in mod._flat_weights_names:
            if not name.startswith("weight"):
                continue
            obs = qconfig.weight()
            w = getattr(mod, name)
            obs(w)
            wq = _m.quantize_weight(w, obs)
            q._packed_weights[name] = wq
            setattr(q, name, Parameter(wq.dequantize(), requires_grad=False))
        return q


def _rnn_class(name, base):
    return type(name, (_DynamicRNN, base), {"__doc__": f"Dynamically quantized {name} "
                                             f"(``torch.ao.nn.quantized.dynamic.{name}``)."})


def __getattr__(name):
    # LSTM/GRU subclass ember.nn's layers: built on first use (rnn modules load lazily)
    if name in ("LSTM", "GRU"):
        from .....nn.modules import rnn
        cls = _rnn_class(name, getattr(rnn, name))
        cls.__module__ = __name__
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ += ["LSTM", "GRU"]
