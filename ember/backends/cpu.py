"""``ember.backends.cpu``: the vector instruction level of the machine."""
from __future__ import annotations

__all__ = ["get_cpu_capability"]


def get_cpu_capability() -> str:
    """PyTorch's name for the widest SIMD level this CPU has and NumPy was built to use:
    "AVX512", "AVX2", "VSX", "Z VECTOR", "SVE256" or "DEFAULT"."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return "DEFAULT"
    # PyTorch's AVX512 kernels need F, BW, VL and DQ
    if all(feats.get(f) for f in ("AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ")):
        return "AVX512"
    if feats.get("AVX2") and feats.get("FMA3"):
        return "AVX2"
    if feats.get("VSX"):
        return "VSX"
    if feats.get("VX"):
        return "Z VECTOR"
    if feats.get("SVE"):
        return "SVE256"
    return "DEFAULT"
