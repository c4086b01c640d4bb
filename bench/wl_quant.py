"""Benchmark workloads: int8 inference (issue 19; registered when bench.workloads is imported).

``qlinear_b64``: the 784-512-256-10 MLP dynamically quantized (int8 weights, activations
quantized per call), batch 64.  ``qconv_digits``: the digits CNN (``ember train digits``'s
model) statically quantized (conv-bn-relu fused, x86 qconfig, calibrated on 256 images),
batch 64.  Each prints its time over the float32 twin (``*_fp32``: the same model unquantized,
eval mode, no grad) for both frameworks; torch runs with ``torch.backends.quantized.engine =
"x86"``.  ember's quantized modules keep only the int8 weights and form the GEMM's float32
operand per call; ``ember.ao.nn.quantized.modules._WeightPack.keep_float32 = True`` (set
before quantizing) caches it instead, to compare the two.
"""
from __future__ import annotations

import warnings

from .harness import workload
from .workloads import _rng, _leaf, _mlp_model

BATCH = 64


def _no_grad_step(mod, model, x):
    def step():
        with mod.no_grad():
            return model(x)
    return step, lambda s: s * 1e3


def _mlp(mod):
    rng = _rng()
    model = _mlp_model(mod, rng).eval()
    return model, _leaf(mod, rng.standard_normal((BATCH, 784)).astype("float32"))


def _quiet(mod):
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, message=".*(quantiz|reduce_range).*")
    if mod.__name__ == "torch":
        mod.backends.quantized.engine = "x86"


@workload("qlinear_b64_fp32", "ms/batch")
def qlinear_b64_fp32(mod):
    """The float32 MLP of ``qlinear_b64``, eval forward, batch 64."""
    return _no_grad_step(mod, *_mlp(mod))


@workload("qlinear_b64", "ms/batch", ratio_to=("qlinear_b64_fp32", "int8/fp32"))
def qlinear_b64(mod):
    """784-512-256-10 MLP after ``quantize_dynamic(model, {nn.Linear}, dtype=qint8)``."""
    _quiet(mod)
    model, x = _mlp(mod)
    q = mod.ao.quantization.quantize_dynamic(model, {mod.nn.Linear}, dtype=mod.qint8)
    return _no_grad_step(mod, q, x)


def _digits(mod):
    from ember.cli.digits import build_model
    rng = _rng()
    model = build_model(mod)
    with mod.no_grad():
        for p in model.parameters():
            p.copy_(mod.from_numpy(rng.standard_normal(tuple(p.shape)).astype("float32")
                                   * 0.2))
    model.eval()
    x = _leaf(mod, rng.random((BATCH, 1, 8, 8)).astype("float32"))
    calib = _leaf(mod, rng.random((256, 1, 8, 8)).astype("float32"))
    return model, x, calib


@workload("qconv_digits_fp32", "ms/batch")
def qconv_digits_fp32(mod):
    """The digits CNN in float32, eval forward, batch 64."""
    model, x, _ = _digits(mod)
    return _no_grad_step(mod, model, x)


@workload("qconv_digits", "ms/batch", ratio_to=("qconv_digits_fp32", "int8/fp32"))
def qconv_digits(mod):
    """The digits CNN statically quantized (fuse conv-bn-relu and linear-relu, x86 qconfig,
    prepare, calibrate, convert), batch 64."""
    _quiet(mod)
    model, x, calib = _digits(mod)
    from ember.cli.quantize import quantize_model
    return _no_grad_step(mod, quantize_model(mod, model, "static", "x86", calib), x)
