"""The eager workflow (``torch.ao.quantization.quantize``): stubs, ``fuse_modules``,
``prepare`` (observers after each quantizable module), ``convert`` (swap each observed module
for its quantized twin), ``quantize_dynamic``, ``prepare_qat``."""
from __future__ import annotations

import copy
import functools
import warnings

from ..._dtype import qint8, quint8, quint4x2
from ...nn.modules.module import Module, _tree_changed
from ...nn import modules as _nn
from ..nn import intrinsic as nni
from ..nn import quantized as nnq
from ..nn import qat as nnqat
from ..nn.intrinsic import quantized as nniq, qat as nniqat
from ..nn.quantized import dynamic as nnqd
from .qconfig import default_dynamic_qconfig

__all__ = ["QuantStub", "DeQuantStub", "QuantWrapper", "fuse_modules", "fuse_modules_qat",
           "propagate_qconfig_", "prepare", "convert", "quantize", "quantize_dynamic",
           "prepare_qat", "quantize_qat", "add_quant_dequant",
           "get_default_static_quant_module_mappings", "get_default_qat_module_mappings",
           "get_default_dynamic_quant_module_mappings", "get_embedding_qat_module_mappings",
           "get_embedding_static_quant_module_mappings", "DEPRECATION_WARNING"]

DEPRECATION_WARNING = (
    "torch.ao.quantization is deprecated and will be removed in 2.10. \n"
    "For migrations of users: \n"
    "1. Eager mode quantization (torch.ao.quantization.quantize, "
    "torch.ao.quantization.quantize_dynamic), please migrate to use torchao eager mode "
    "quantize_ API instead \n"
    "2. FX graph mode quantization (torch.ao.quantization.quantize_fx.prepare_fx,"
    "torch.ao.quantization.quantize_fx.convert_fx, please migrate to use torchao pt2e "
    "quantization API instead (prepare_pt2e, convert_pt2e) \n"
    "3. pt2e quantization has been migrated to torchao "
    "(https://github.com/pytorch/ao/tree/main/torchao/quantization/pt2e) \n"
    "see https://github.com/pytorch/ao/issues/2259 for more details")


def _deprecated(fn):
    """PyTorch's ``typing_extensions.deprecated(DEPRECATION_WARNING)`` on the entry points."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.warn(DEPRECATION_WARNING, DeprecationWarning, stacklevel=2)
        return fn(*args, **kwargs)
    return wrapper


class QuantStub(Module):
    """Marks where float values become quantized; an observer before ``convert``, a
    ``Quantize`` after."""

    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class DeQuantStub(Module):
    """Marks where quantized values become float again (``DeQuantize`` after convert)."""

    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class QuantWrapper(Module):
    """``dequant(module(quant(x)))``: wraps a float module between stubs."""

    def __init__(self, module):
        super().__init__()
        qconfig = getattr(module, "qconfig", None)
        self.add_module("quant", QuantStub(qconfig))
        self.add_module("dequant", DeQuantStub(qconfig))
        self.add_module("module", module)
        self.train(module.training)

    def forward(self, X):
        return self.dequant(self.module(self.quant(X)))


# ---- mappings ---------------------------------------------------------------------------------
def get_default_static_quant_module_mappings() -> dict:
    return {QuantStub: nnq.Quantize, DeQuantStub: nnq.DeQuantize, _nn.Linear: nnq.Linear,
            _nn.Conv1d: nnq.Conv1d, _nn.Conv2d: nnq.Conv2d, _nn.Conv3d: nnq.Conv3d,
            _nn.BatchNorm2d: nnq.BatchNorm2d, _nn.BatchNorm3d: nnq.BatchNorm3d,
            _nn.ReLU6: nnq.ReLU6, nnq.FloatFunctional: nnq.QFunctional,
            nni.LinearReLU: nniq.LinearReLU, nni.ConvReLU1d: nniq.ConvReLU1d,
            nni.ConvReLU2d: nniq.ConvReLU2d, nni.ConvReLU3d: nniq.ConvReLU3d,
            nni.BNReLU2d: nniq.BNReLU2d, nni.BNReLU3d: nniq.BNReLU3d,
            nnqat.Linear: nnq.Linear, nnqat.Conv2d: nnq.Conv2d,
            nniqat.LinearReLU: nniq.LinearReLU, nniqat.ConvReLU2d: nniq.ConvReLU2d,
            nniqat.ConvBn2d: nnq.Conv2d, nniqat.ConvBnReLU2d: nniq.ConvReLU2d,
            nniqat.ConvBn1d: nnq.Conv1d, nniqat.ConvBnReLU1d: nniq.ConvReLU1d,
            nnqat.Conv3d: nnq.Conv3d, nniqat.ConvReLU3d: nniq.ConvReLU3d,
            nniqat.ConvBn3d: nnq.Conv3d, nniqat.ConvBnReLU3d: nniq.ConvReLU3d,
            nniqat.LinearBn1d: nnq.Linear, _nn.Embedding: nnq.Embedding,
            _nn.EmbeddingBag: nnq.EmbeddingBag}


def get_default_qat_module_mappings() -> dict:
    return {_nn.Linear: nnqat.Linear, _nn.Conv2d: nnqat.Conv2d,
            nni.LinearReLU: nniqat.LinearReLU, nni.ConvReLU2d: nniqat.ConvReLU2d,
            nni.ConvBn2d: nniqat.ConvBn2d, nni.ConvBnReLU2d: nniqat.ConvBnReLU2d,
            nni.ConvBn1d: nniqat.ConvBn1d, nni.ConvBnReLU1d: nniqat.ConvBnReLU1d,
            _nn.Conv3d: nnqat.Conv3d, nni.ConvReLU3d: nniqat.ConvReLU3d,
            nni.ConvBn3d: nniqat.ConvBn3d, nni.ConvBnReLU3d: nniqat.ConvBnReLU3d,
            nni.LinearBn1d: nniqat.LinearBn1d}


def get_embedding_qat_module_mappings() -> dict:
    """The QAT mappings plus ``nn.Embedding``/``EmbeddingBag`` -> their QAT modules."""
    mapping = get_default_qat_module_mappings()
    mapping[_nn.EmbeddingBag] = nnqat.EmbeddingBag
    mapping[_nn.Embedding] = nnqat.Embedding
    return mapping


def get_embedding_static_quant_module_mappings() -> dict:
    """The static mappings plus the QAT embeddings -> their quantized modules."""
    mapping = get_default_static_quant_module_mappings()
    mapping[nnqat.EmbeddingBag] = nnq.EmbeddingBag
    mapping[nnqat.Embedding] = nnq.Embedding
    return mapping


def get_default_dynamic_quant_module_mappings() -> dict:
    return {_nn.Linear: nnqd.Linear, nni.LinearReLU: nnqd.Linear, _nn.LSTM: nnqd.LSTM,
            _nn.GRU: nnqd.GRU, _nn.Embedding: nnq.Embedding,
            _nn.EmbeddingBag: nnq.EmbeddingBag}


# ---- fusion -----------------------------------------------------------------------------------
def _get(model, name):
    for part in name.split("."):
        model = getattr(model, part)
    return model


def _set(model, name, mod):
    *parent, last = name.split(".")
    for part in parent:
        model = getattr(model, part)
    setattr(model, last, mod)


def _fold_bn(conv, bn):
    from ..nn.intrinsic.qat import fold_conv_bn
    fused = copy.deepcopy(conv)
    w, b = fold_conv_bn(conv, bn)
    from ...nn.parameter import Parameter
    fused.weight = Parameter(w, conv.weight.requires_grad)
    fused.bias = Parameter(b, conv.weight.requires_grad)
    return fused


_CONV_ND = {_nn.Conv1d: 1, _nn.Conv2d: 2, _nn.Conv3d: 3}
_BN = (_nn.BatchNorm1d, _nn.BatchNorm2d, _nn.BatchNorm3d)


def _check_qat_bn(bn, out, mismatch: str, name: str):
    """PyTorch's checks before a QAT conv/linear + BN fusion."""
    if bn.num_features != out:
        raise AssertionError(mismatch)
    if not bn.affine:
        raise AssertionError(f"Only support fusing {name} with affine set to True")
    if not bn.track_running_stats:
        raise AssertionError(f"Only support fusing {name} with tracking_running_stats set to "
                             "True")


def _fuse(mods, is_qat: bool):
    """The fused module of one pattern (PyTorch's ``fuse_known_modules``' table)."""
    types = tuple(type(m) for m in mods)
    relu = len(mods) > 1 and isinstance(mods[-1], _nn.ReLU)
    first = mods[0]
    if type(first) in _CONV_ND and len(mods) >= 2 and isinstance(mods[1], _BN):
        if first.training != mods[1].training:
            raise AssertionError("Conv and BN both must be in the same mode (train or eval).")
        d = _CONV_ND[type(first)]
        if is_qat:
            _check_qat_bn(mods[1], first.out_channels, f"Output channel of Conv{d}d must match "
                          f"num_features of BatchNorm{d}d.", f"BatchNorm{d}d")
            cls = getattr(nni, f"ConvBnReLU{d}d" if relu else f"ConvBn{d}d")
            return cls(*mods)
        conv = _fold_bn(first, mods[1])
        return getattr(nni, f"ConvReLU{d}d")(conv, mods[2]) if relu else conv
    if isinstance(first, _nn.Linear) and len(mods) == 2 and isinstance(mods[1],
                                                                       _nn.BatchNorm1d):
        if first.training != mods[1].training:
            raise AssertionError("Linear and BN both must be in the same mode (train or eval).")
        if is_qat:
            _check_qat_bn(mods[1], first.out_features, "Output features of Linear must match "
                          "num_features of BatchNorm1d", "BatchNorm1d")
            return nni.LinearBn1d(*mods)
        return _fold_bn(first, mods[1])
    if type(first) in _CONV_ND and relu and len(mods) == 2:
        return getattr(nni, f"ConvReLU{_CONV_ND[type(first)]}d")(*mods)
    if isinstance(first, _nn.Linear) and relu and len(mods) == 2:
        return nni.LinearReLU(*mods)
    if isinstance(first, (_nn.BatchNorm2d, _nn.BatchNorm3d)) and relu and len(mods) == 2:
        return (nni.BNReLU2d if isinstance(first, _nn.BatchNorm2d) else nni.BNReLU3d)(*mods)
    raise NotImplementedError(f"Cannot fuse modules: {types}")


def _fuse_list(model, names, is_qat):
    mods = [_get(model, n) for n in names]
    fused = _fuse(mods, is_qat)
    _set(model, names[0], fused)
    for n in names[1:]:
        _set(model, n, _nn.Identity())


def fuse_modules(model, modules_to_fuse, inplace=False, fuser_func=None,
                 fuse_custom_config_dict=None):
    """Fuse each list of module names (conv-bn, conv-bn-relu, conv-relu, linear-relu,
    bn-relu) into one module: the first becomes the fused module, the rest ``Identity``."""
    if not inplace:
        model = copy.deepcopy(model)
    groups = modules_to_fuse
    if all(isinstance(n, str) for n in groups):
        groups = [groups]
    for names in groups:
        _fuse_list(model, list(names), False)
    return model


def fuse_modules_qat(model, modules_to_fuse, inplace=False, fuser_func=None,
                     fuse_custom_config_dict=None):
    """``fuse_modules`` for QAT: conv-bn stays a ``ConvBn*d`` so training keeps the BN."""
    if not inplace:
        model = copy.deepcopy(model)
    groups = modules_to_fuse
    if all(isinstance(n, str) for n in groups):
        groups = [groups]
    for names in groups:
        _fuse_list(model, list(names), True)
    return model


# ---- prepare / convert ------------------------------------------------------------------------
def propagate_qconfig_(module, qconfig_dict=None, prepare_custom_config_dict=None):
    """Give every submodule its parent's ``qconfig`` unless it has its own."""
    qconfig_dict = qconfig_dict or {}

    def walk(mod, parent_qconfig, prefix):
        qc = qconfig_dict.get(type(mod), qconfig_dict.get(prefix, parent_qconfig))
        qc = getattr(mod, "qconfig", qc)
        mod.qconfig = qc
        for name, child in mod.named_children():
            walk(child, qc, prefix + ("." if prefix else "") + name)
    walk(module, qconfig_dict.get("", None), "")


def _observer_forward_hook(m, inputs, output):
    """The hook ``prepare`` adds: the output passes the module's observer."""
    return m.activation_post_process(output)


def _observe_output(mod, hook_obs):
    mod.add_module("activation_post_process", hook_obs)
    mod.register_forward_hook(_observer_forward_hook)


def _remove_activation_post_process(mod):
    """Drop the observer and its hook from a module convert left float (PyTorch's)."""
    from .observer import ObserverBase
    from .fake_quantize import FakeQuantizeBase
    apo = mod._modules.get("activation_post_process")
    if isinstance(apo, (ObserverBase, FakeQuantizeBase)):
        del mod._modules["activation_post_process"]
        _tree_changed(mod)  # (compiled code guards on it)
    for hid in [h for h, fn in mod._forward_hooks.items() if fn is _observer_forward_hook]:
        del mod._forward_hooks[hid]


def _special_act_post_process():
    """Modules whose output range is known get fixed qparams instead of an observer, in
    prepare and prepare_qat alike, when the module is in training mode (PyTorch's
    ``DEFAULT_MODULE_TO_ACT_POST_PROCESS``, ``_has_special_act_post_process``)."""
    from . import fake_quantize as fq
    return {_nn.Hardsigmoid: fq.default_fixed_qparams_range_0to1_fake_quant,
            _nn.Sigmoid: fq.default_fixed_qparams_range_0to1_fake_quant,
            _nn.Softmax: fq.default_fixed_qparams_range_0to1_fake_quant,
            _nn.Tanh: fq.default_fixed_qparams_range_neg1to1_fake_quant}


def _add_observers(module, mapping, is_qat=False):
    for name, child in list(module.named_children()):
        qc = getattr(child, "qconfig", None)
        if isinstance(child, nnq.FloatFunctional):
            if qc is not None:
                child.activation_post_process = qc.activation()
            continue
        if isinstance(child, DeQuantStub) or qc is None:
            _add_observers(child, mapping, is_qat)
            continue
        special = _special_act_post_process().get(type(child)) if child.training else None
        if special is not None:
            if not hasattr(child, "activation_post_process"):
                _observe_output(child, special())
        elif type(child) in mapping or isinstance(child, (nni._FusedModule, QuantStub)) or \
                type(child) in _QAT_TYPES:
            if not hasattr(child, "activation_post_process"):
                _observe_output(child, qc.activation())
        else:
            _add_observers(child, mapping, is_qat)


_QAT_TYPES = (nnqat.Linear, nnqat.Conv2d, nniqat.LinearReLU, nniqat.ConvReLU2d,
              nniqat.ConvBn2d, nniqat.ConvBnReLU2d, nniqat.ConvBn1d, nniqat.ConvBnReLU1d,
              nnqat.Conv3d, nniqat.ConvReLU3d, nniqat.ConvBn3d, nniqat.ConvBnReLU3d,
              nniqat.LinearBn1d, nnqat.Embedding, nnqat.EmbeddingBag)


def _prepare(model, inplace, mapping):
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model)
    if not any(getattr(m, "qconfig", None) for m in model.modules()):
        warnings.warn("None of the submodule got qconfig applied. Make sure you passed correct "
                      "configuration through `qconfig_dict` or by assigning the `.qconfig` "
                      "attribute directly on submodules", stacklevel=3)
    _add_observers(model, mapping)
    return model


@_deprecated
def prepare(model, inplace=False, allow_list=None, observer_non_leaf_module_list=None,
            prepare_custom_config_dict=None):
    """A copy of ``model`` with an observer after every module it will quantize (run it on
    calibration data, then ``convert``)."""
    return _prepare(model, inplace, get_default_static_quant_module_mappings())


def _swap(mod, mapping):
    cls = mapping.get(type(mod))
    if cls is None or getattr(mod, "qconfig", None) is None:
        return mod
    if isinstance(mod, nnq.FloatFunctional) and not hasattr(mod.activation_post_process,
                                                            "calculate_qparams"):
        return mod
    return cls.from_float(mod)


def _convert(module, mapping):
    for name, child in list(module.named_children()):
        if not isinstance(child, nni._FusedModule) and type(child) not in mapping:
            _convert(child, mapping)
        new = _swap(child, mapping)
        if new is not child:
            new.train(False) if not child.training else None
            module._modules[name] = new
            _tree_changed(module)  # (compiled code guards on it)
    return module


@_deprecated
def convert(module, mapping=None, inplace=False, remove_qconfig=True,
            is_reference=False, convert_custom_config_dict=None,
            use_precomputed_fake_quant=False):
    """Swap every observed module for its quantized twin (weights quantized with their
    observer's qparams, outputs with the activation observer's)."""
    if not inplace:
        module = copy.deepcopy(module)
    _convert(module, mapping or get_default_static_quant_module_mappings())
    if remove_qconfig:
        for m in module.modules():
            _remove_activation_post_process(m)
            if hasattr(m, "qconfig"):
                del m.qconfig
    return module


@_deprecated
def quantize(model, run_fn, run_args, mapping=None, inplace=False):
    """Post-training static quantization in one call: prepare, ``run_fn(model, *run_args)``,
    convert."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    _prepare(model, True, get_default_static_quant_module_mappings())
    run_fn(model, *run_args)
    return convert.__wrapped__(model, mapping, inplace=True)


@_deprecated
def quantize_dynamic(model, qconfig_spec=None, dtype=qint8, mapping=None, inplace=False):
    """Swap the Linear layers named by ``qconfig_spec`` (types, names or a dict) for
    dynamically quantized ones (int8 weights, activations quantized per call)."""
    from . import qconfig as _qc
    # PyTorch's defaults per dtype: int8 GEMMs for qint8, float-qparams rows for the
    # embeddings (quint8, quint4x2)
    defaults = {qint8: _qc.default_dynamic_qconfig,
                quint8: _qc.float_qparams_weight_only_qconfig,
                quint4x2: _qc.float_qparams_weight_only_qconfig_4bit}
    if qconfig_spec is None:
        if dtype is qint8:
            qconfig_spec = {_nn.Linear: default_dynamic_qconfig,
                            _nn.LSTM: default_dynamic_qconfig,
                            _nn.GRU: default_dynamic_qconfig}
        elif dtype is quint8:
            qconfig_spec = {_nn.EmbeddingBag: defaults[quint8], _nn.Embedding: defaults[quint8]}
        elif dtype is quint4x2:
            qconfig_spec = {_nn.EmbeddingBag: defaults[quint4x2]}
        else:
            raise ValueError(f"Don't know how to quantize with default settings for {dtype}. "
                             "Provide full qconfig please")
    elif isinstance(qconfig_spec, (set, list, tuple)):
        if dtype not in defaults:
            raise RuntimeError("Unknown dtype specified for quantize_dynamic: ", str(dtype))
        qconfig_spec = dict.fromkeys(qconfig_spec, defaults[dtype])
    if not inplace:
        model = copy.deepcopy(model)
    mapping = mapping or get_default_dynamic_quant_module_mappings()

    def assign(mod, prefix):
        qc = qconfig_spec.get(type(mod), qconfig_spec.get(prefix))
        if qc is not None:
            mod.qconfig = qc
        for name, child in mod.named_children():
            assign(child, prefix + ("." if prefix else "") + name)
    assign(model, "")
    for t in qconfig_spec:
        if isinstance(t, type) and t not in mapping:
            warnings.warn(f"{t.__name__} has no dynamically quantized version here; it stays "
                          "float", stacklevel=2)
    _convert(model, mapping)
    for m in model.modules():
        if hasattr(m, "qconfig"):
            del m.qconfig
    return model


@_deprecated
def prepare_qat(model, mapping=None, inplace=False):
    """Swap modules for their QAT versions (fake-quantized weights) and add fake-quant
    observers on outputs; train, then ``convert``."""
    if not model.training:
        raise AssertionError("prepare_qat only works on models in training mode")
    if not inplace:
        model = copy.deepcopy(model)
    propagate_qconfig_(model)
    qmap = mapping or get_default_qat_module_mappings()

    def swap(module):
        for name, child in list(module.named_children()):
            cls = qmap.get(type(child))
            if cls is not None and getattr(child, "qconfig", None) is not None:
                new = cls.from_float(child)
                new.qconfig = child.qconfig
                module._modules[name] = new
                _tree_changed(module)  # (compiled code guards on it)
            else:
                swap(child)
    swap(model)
    _add_observers(model, get_default_static_quant_module_mappings(), True)
    return model


@_deprecated
def quantize_qat(model, run_fn, run_args, inplace=False):
    """QAT in one call: prepare_qat, ``run_fn(model, *run_args)``, convert."""
    if not inplace:
        model = copy.deepcopy(model)
    model.train()
    prepare_qat.__wrapped__(model, inplace=True)
    run_fn(model, *run_args)
    return convert.__wrapped__(model, inplace=True)


def add_quant_dequant(module):
    """Wrap every leaf module that has a qconfig in a ``QuantWrapper``."""
    if len(module._modules) == 0 and getattr(module, "qconfig", None):
        return QuantWrapper(module)
    for name, child in module.named_children():
        module._modules[name] = add_quant_dequant(child)
        _tree_changed(module)  # (compiled code guards on it)
    return module

