"""The quantization methods every ``Tensor`` has (``is_quantized``, ``dequantize``, ``q_scale``
...), as PyTorch gives them to unquantized tensors: ``dequantize`` returns the tensor itself,
the qparam getters raise PyTorch's NotImplementedError.  ``QTensor`` (ops/quantized.py, loaded on
first use) overrides each of them; this small table is what ``import ember`` binds."""
from __future__ import annotations


def _not_on_cpu(op: str):
    def method(self, *args, **kwargs):
        raise NotImplementedError(
            f"Could not run 'aten::{op}' with arguments from the 'CPU' backend. This could be "
            "because the operator doesn't exist for this backend, or was omitted during the "
            "selective/custom build process (if using custom build).")
    method.__name__ = op
    method.__doc__ = f"Quantized tensors only (``Tensor.{op}``)."
    return method


def dequantize(self):
    """A float tensor is already dequantized: itself (``Tensor.dequantize``)."""
    return self


METHODS = {"is_quantized": property(lambda self: False), "dequantize": dequantize}
METHODS.update({n: _not_on_cpu(n) for n in (
    "int_repr", "q_scale", "q_zero_point", "q_per_channel_scales", "q_per_channel_zero_points",
    "q_per_channel_axis", "qscheme")})
