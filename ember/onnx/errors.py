"""``ember.onnx.errors``: the exporter's exception types (``torch.onnx.errors``)."""
from __future__ import annotations

__all__ = ["OnnxExporterError", "UnsupportedOperatorError"]


class OnnxExporterError(RuntimeError):
    """Errors raised by the ONNX exporter."""


class UnsupportedOperatorError(OnnxExporterError):
    """An op (or a form of it) the exporter cannot express at the requested opset."""
