"""Dynamically quantized modules (``torch.ao.nn.quantized.dynamic``): float in, float out,
int8 weights; each call quantizes its input with qparams chosen from that batch's range."""
from __future__ import annotations

from ..... import _backend
from ....._tensor import _make
from ....._dtype import qint8
from .....ops import quantized as _q
from .....ops.layers import dropout as _dropout
from .. import modules as _m

__all__ = ["Linear"]


def _dynamic_linear(xp, a, pack, bias, reduce_range=True):
    """fbgemm's dynamic linear on float32 rows ``a``: quantize ``a`` to quint8 with qparams
    from its own range (7 bits when ``reduce_range``), exact int32 product with the int8
    weight, ``acc * (a_scale * w_scale) + bias`` in float32."""
    if a.shape[-1] != pack.k:
        raise RuntimeError(f"The number of rows in the packB should be equal to K: "
                           f"{a.shape[-1]}")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    qmax = 127 if reduce_range else 255
    scale, zp = _q.choose_qparams(lo, hi, 0, qmax)
    # the zero-point-shifted integers q - zp directly: rint(x / scale) clamped to
    # [-zp, qmax - zp], three in-place float32 passes (fbgemm adds zp before rounding, so
    # an input within a float32 ulp of a tie may land one step apart)
    af = a * (xp.float32(1) / xp.float32(scale))
    xp.rint(af, out=af)
    xp.clip(af, -zp, qmax - zp, out=af)
    acc = _q.int_matmul(xp, af, pack.wt(xp), max(zp, qmax - zp), pack.wmax)
    mult = xp.float32(scale) * pack.scales
    # in place on the GEMM's fresh float32 output (a float64 one, past 2^24, is cast first)
    y = xp.multiply(acc, mult, out=acc) if acc.dtype == xp.float32 else \
        acc.astype(xp.float32) * mult
    if bias is not None:
        y += bias.astype(xp.float32, copy=False)
    return y


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
        b = self.bias()
        y = _dynamic_linear(xp, a.reshape(-1, a.shape[-1]), self._packed_params.pack,
                            None if b is None else b._data, self.reduce_range)
        lead = a.shape[:-1]
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


class _CellParams:
    """One layer and direction's weights (PyTorch's ``CellParamsBase``, "quantized_dynamic"):
    int8 ``w_ih``/``w_hh`` (per-tensor symmetric, as ``default_dynamic_qconfig``), float
    biases, and the packs ``int_matmul`` multiplies with."""

    def __init__(self, w_ih, w_hh, b_ih, b_hh, reduce_range=True):
        w_ih, w_hh = _m.k_major(w_ih), _m.k_major(w_hh)
        self.w_ih, self.w_hh, self.b_ih, self.b_hh = w_ih, w_hh, b_ih, b_hh
        self.reduce_range = reduce_range
        self.pack_ih = _m._WeightPack(w_ih)
        self.pack_hh = _m._WeightPack(w_hh)

    def _torch_reduce(self, storages):
        """``ember.save``'s record: PyTorch's pickled ``CellParamsBase`` (a TorchScript
        object: ``copyreg.__newobj__(torch.ScriptObject)`` then its state), so
        ``torch.load(f, weights_only=False)`` reads it; neither loads it with weights_only."""
        ih, hh = (_LinearRecord(w, b) for w, b in ((self.w_ih, self.b_ih),
                                                    (self.w_hh, self.b_hh)))
        state = ("quantized_dynamic", [self.b_ih, self.b_hh], [], [int(self.reduce_range)],
                 [ih, hh])
        return _script_object_record(state, "__torch__.torch.classes.rnn.CellParamsBase")

    def linear_ih(self, xp, a):
        return _dynamic_linear(xp, a, self.pack_ih, _arr(self.b_ih), self.reduce_range)

    def linear_hh(self, xp, a):
        return _dynamic_linear(xp, a, self.pack_hh, _arr(self.b_hh), self.reduce_range)


def _script_object_record(state, qualname):
    from .....serialization import _TorchRef
    return (_TorchRef("copyreg", "__newobj__"), (_TorchRef("torch", "ScriptObject"),),
            (state, qualname))


class _LinearRecord:
    """A ``LinearPackedParamsBase`` inside a saved ``CellParamsBase``: (int8 weight, bias)."""

    def __init__(self, w, b):
        self.w, self.b = w, b

    def _torch_reduce(self, storages):
        return _script_object_record(
            (self.w, self.b), "__torch__.torch.classes.quantized.LinearPackedParamsBase")


class _ScriptObject:
    """What ``ember.load(f, weights_only=False)`` makes of a pickled ``torch.ScriptObject``:
    the state of a quantized RNN's ``CellParamsBase`` or ``LinearPackedParamsBase``
    (PyTorch's dynamic LSTM/GRU state dicts hold these); ``cell()`` builds ember's weights."""

    def __setstate__(self, st):
        self.state, self.qualname = st

    def cell(self) -> _CellParams:
        if not self.qualname.endswith("CellParamsBase") or self.state[0] != "quantized_dynamic":
            raise RuntimeError(f"ember reads the 'quantized_dynamic' CellParamsBase of dynamic "
                               f"LSTM/GRU state dicts only, not {self.qualname} "
                               f"{self.state[0]!r}")
        _, biases, _, longs, (ih, hh) = self.state
        (w_ih, b_ih), (w_hh, b_hh) = ih.state, hh.state
        return _CellParams(w_ih, w_hh, b_ih.detach(), b_hh.detach(), bool(longs[0]))


def _arr(t):
    return None if t is None else t._data


class PackedParameter(_m.Module):
    """Holds one ``_CellParams`` as ``param`` (PyTorch's state-dict key
    ``_all_weight_values.N.param``)."""

    def __init__(self, param):
        super().__init__()
        self.param = param

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "param"] = self.param

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        param = state_dict.pop(prefix + "param")
        self.param = param.cell() if isinstance(param, _ScriptObject) else param
        super()._load_from_state_dict(state_dict, prefix, local_metadata, False, missing_keys,
                                      unexpected_keys, error_msgs)


def _sigmoid(xp, v):
    return 1 / (1 + xp.exp(-v))


def _run_direction(xp, x, h0, c0, cell, mode, reverse, bs):
    """One layer and direction over packed rows ``x`` as PyTorch's quantized RNN cells: each
    gate GEMM is a dynamic linear (its input quantized from its own range): ``linear_ih`` once
    over all the layer's rows (aten's cpu layers precompute it, so one scale serves the whole
    sequence, packed or not, either direction), ``linear_hh`` once per step."""
    offsets = [0]
    for b in bs:
        offsets.append(offsets[-1] + b)
    gi_all = cell.linear_ih(xp, x)
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    ys = [None] * len(bs)
    steps = range(len(bs) - 1, -1, -1) if reverse else range(len(bs))
    for t in steps:
        b = bs[t]
        rows = slice(offsets[t], offsets[t + 1])
        gi = gi_all[rows]
        gh = cell.linear_hh(xp, h[:b])
        if mode == "LSTM":
            gates = gh + gi
            i, f, g, o = xp.split(gates, 4, axis=1)
            i, f, o = _sigmoid(xp, i), _sigmoid(xp, f), _sigmoid(xp, o)
            cy = f * c[:b] + i * xp.tanh(g)
            c[:b] = cy
            h[:b] = o * xp.tanh(cy)
        else:
            ir, iz, in_ = xp.split(gi, 3, axis=1)
            hr, hz, hn = xp.split(gh, 3, axis=1)
            r = _sigmoid(xp, hr + ir)
            z = _sigmoid(xp, hz + iz)
            n = xp.tanh(in_ + hn * r)
            h[:b] = (h[:b] - n) * z + n
        ys[t] = h[:b].copy()
    return xp.concatenate(ys, axis=0), h, c


class _DynamicRNN:
    """A recurrent layer whose gate GEMMs are fbgemm's dynamic linears, as PyTorch's
    ``quantized_lstm``/``quantized_gru`` with ``use_dynamic=True``: int8 weight matrices,
    and every step's input and hidden state quantized to 7-bit quint8 from their own range
    (``reduce_range``); the gate nonlinearities in float32.  Inference only."""

    def check_input(self, input, batch_sizes) -> None:
        expected = 2 if batch_sizes is not None else 3
        if input.dim() != expected:
            raise RuntimeError(f"input must have {expected} dimensions, got {input.dim()}")
        if self.input_size != input.size(-1):
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.size(-1)}")

    def _layers(self, x, h_all, c_all, bs, packed=True):
        """Every layer and direction on backend arrays (no autograd: PyTorch's dynamic RNNs
        have no backward either); the output rows as ``(T, B, H)`` unless ``packed``."""
        xp = _backend.xp_of(x._data)
        a = x._data.astype(xp.float32, copy=False)
        d = 2 if self.bidirectional else 1
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                k = layer * d + direction
                cell = self._all_weight_values[k].param
                h0 = h_all[k]._data.astype(xp.float32)
                c0 = None if c_all is None else c_all[k]._data.astype(xp.float32)
                y, h, c = _run_direction(xp, a, h0, c0, cell, self.mode, direction == 1, bs)
                outs.append(y)
                hs.append(_make(h))
                cs.append(None if c is None else _make(c))
            a = outs[0] if d == 1 else xp.concatenate(outs, axis=1)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                # aten's quantized LSTM/GRU drop between layers in training mode too
                a = _dropout(_make(a), self.dropout, True)._data
        if not packed:
            a = a.reshape(len(bs), bs[0], a.shape[-1])
        return _make(a), hs, cs

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        from ....quantization.qconfig import default_dynamic_qconfig
        qconfig = getattr(mod, "qconfig", None) or default_dynamic_qconfig
        if not mod.bias:
            raise AssertionError("mod.bias must be True")
        q = cls.__new__(cls)
        q.__dict__.update(mod.__dict__)
        # PyTorch's dynamic LSTM has no projection: proj_size is dropped (and weight_hr with
        # it), so the (4h, proj) w_hh then fails on an h-wide state at the first forward
        q.__dict__["proj_size"] = 0
        # the float weights are not kept: only the int8 matrices and float biases below
        q.__dict__["_parameters"] = {}
        q.__dict__["_modules"] = dict(mod._modules)
        cells = []
        for names in mod._all_weights:
            ws = [getattr(mod, n) for n in names]
            qs = []
            for w in ws[:2]:
                obs = qconfig.weight()
                obs(w)
                if obs.dtype is not qint8:
                    raise RuntimeError(f"Unsupported dtype for dynamic RNN quantization: "
                                       f"{obs.dtype}")
                qs.append(_m.quantize_weight(w, obs))
            b_ih, b_hh = ((ws[2].detach().float(), ws[3].detach().float()) if mod.bias
                          else (None, None))
            cells.append(PackedParameter(_CellParams(qs[0], qs[1], b_ih, b_hh)))
        from .....nn.modules.container import ModuleList
        q._all_weight_values = ModuleList(cells)
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
