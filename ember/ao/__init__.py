"""``ember.ao``: quantization (issue 19), PyTorch's ``torch.ao`` namespace.

Design.  What it captures: float modules and the value ranges that flow through them
(observers, ``quantization/observer.py``).  What it produces: modules over quantized tensors
(``nn/quantized``: int8 weights, quantized activations), dynamically quantized ones
(``nn/quantized/dynamic``: float in and out, int8 weights) and torchao-style weight-only /
dynamic int8 / int4 Linear replacements (``quantization/quantize_api.py``).  Where it hooks
into the core: nowhere in the autograd path.  A quantized tensor is ``ops/quantized.py``'s
``QTensor`` (NOTE [ Quantized tensors ]), a Tensor subclass whose ``__torch_function__`` lets
the element-moving ops (views, max pooling, ReLU ...) run on its integers and refuses the
others; the int8 kernels (NOTE [ Exact int8 GEMM ]) are plain functions on arrays.
Embeddings are weight-only (``nn/quantized/embedding_ops.py``: 8-bit or packed 4-bit rows with
float scale and zero point); quint4x2 tensors store two values a byte (NOTE [ Packed
quint4x2 ]).  Modules with a known output range (sigmoid, tanh ...) get fixed qparams, not an
observer (``FixedQParamsFakeQuantize``).  QAT modules (``nn/qat``, ``nn/intrinsic/qat``) are
subclasses of their float module with the child ``weight_fake_quant`` (conv-bn / linear-bn also
hold ``bn``), so their state-dict keys, order and versions are PyTorch's and QAT checkpoints
load either way.
The life of one static call: ``QuantStub`` -> ``nnq.Quantize`` (float -> quint8 with the
calibrated scale) -> ``nnq.Conv2d`` (integers as float32 columns, one exact sgemm,
requantized to its output scale) -> ``MaxPool2d`` (runs on the integers) -> ... ->
``nnq.DeQuantize`` -> float logits.
"""
from __future__ import annotations

from . import nn, quantization  # noqa: F401
