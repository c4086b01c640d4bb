"""``torch.ao.quantization.stubs``: the stubs live in quantize.py (one home)."""
from .quantize import QuantStub, DeQuantStub, QuantWrapper  # noqa: F401

__all__ = ["QuantStub", "DeQuantStub", "QuantWrapper"]
