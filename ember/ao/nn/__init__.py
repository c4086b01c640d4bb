"""``torch.ao.nn``: quantized, dynamic, fused (intrinsic) and QAT modules."""
