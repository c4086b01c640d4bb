"""Benchmark workloads: int8 inference (issue 19; registered when bench.workloads is imported).

``qlinear_b64``: the 784-512-256-10 MLP dynamically quantized (int8 weights, activations
quantized per call), batch 64.  ``qconv_digits``: the digits CNN (``ember train digits``'s
model) statically quantized (conv-bn-relu fused, x86 qconfig, calibrated on 256 images),
batch 64.  Each prints its time over the float32 twin (``*_fp32``: the same model unquantized,
eval mode, no grad) for both frameworks; torch runs with ``torch.backends.quantized.engine =
"x86"``.  ember's quantized modules keep only the int8 weights and form the GEMM's float32
operand per call; ``ember.ao.nn.quantized.modules._WeightPack.keep_float32 = True`` (set
before quantizing) caches it instead, to compare the two.

The ``numpy`` column of both int8 workloads is NumPy's float32 GEMM floor: the same model's
GEMMs alone (float32, the weights already ``(K, O)``-contiguous, the conv's im2col columns
already made; no quantization, bias, pooling or Python), the least any exact int8 path
through NumPy's sgemm can take, since NumPy has no int8 GEMM.  ``numpy / torch`` on that line
is how far from PyTorch's int8 (fbgemm's VNNI kernels) NumPy alone can get; ``ember/numpy``
is what ember spends beyond the floor.
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


def _gemm_floor(shapes):
    """NumPy's float32 GEMM floor of a model: one sgemm per ``(rows, K, O)``, operands made
    once (integer values, as the exact int8 path multiplies), C-contiguous."""
    import numpy as np
    rng = np.random.default_rng(0)
    ops = [(np.rint(rng.standard_normal((n, k), dtype=np.float32) * 20),
            np.rint(rng.standard_normal((k, o), dtype=np.float32) * 40)) for n, k, o in shapes]

    def step():
        for a, w in ops:
            np.matmul(a, w)
    return step, lambda s: s * 1e3


@workload("qlinear_b64", "ms/batch", ratio_to=("qlinear_b64_fp32", "int8/fp32"),
          backends=("ember", "torch", "numpy"))
def qlinear_b64(mod):
    """784-512-256-10 MLP after ``quantize_dynamic(model, {nn.Linear}, dtype=qint8)``;
    the numpy column is the MLP's three float32 GEMMs alone."""
    if mod.__name__ == "numpy":
        return _gemm_floor([(BATCH, 784, 512), (BATCH, 512, 256), (BATCH, 256, 10)])
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


@workload("qconv_digits", "ms/batch", ratio_to=("qconv_digits_fp32", "int8/fp32"),
          backends=("ember", "torch", "numpy"))
def qconv_digits(mod):
    """The digits CNN statically quantized (fuse conv-bn-relu and linear-relu, x86 qconfig,
    prepare, calibrate, convert), batch 64; the numpy column is its four float32 GEMMs
    alone (the convs on ready-made im2col columns: 8x8x64 rows by 3x3x1, 4x4x64 by 3x3x32)."""
    if mod.__name__ == "numpy":
        return _gemm_floor([(BATCH * 64, 9, 32), (BATCH * 16, 288, 64), (BATCH, 256, 128),
                            (BATCH, 128, 10)])
    _quiet(mod)
    model, x, calib = _digits(mod)
    from ember.cli.quantize import quantize_model
    return _no_grad_step(mod, quantize_model(mod, model, "static", "x86", calib), x)
