"""Deterministic weights for a state dict's (key, shape) list, in NumPy only.

torchvision and ember.vision build the same model; both fill it from this rule, so a
fixture of torchvision's outputs (tools/vision_fixtures.py, run where torchvision imports)
checks ember's forward without shipping megabytes of weights.
"""
from __future__ import annotations

import zlib

import numpy as np

MODELS = {  # name: input height/width (ViT-B/16 takes only 224)
    "resnet18": 64, "resnet34": 64, "resnet50": 64, "vgg11": 32, "vgg11_bn": 32, "vgg16": 32,
    "vgg16_bn": 32, "alexnet": 64, "squeezenet1_0": 64, "squeezenet1_1": 64,
    "mobilenet_v2": 64, "mobilenet_v3_small": 64, "efficientnet_b0": 64,
    "convnext_tiny": 64, "vit_b_16": 224,
}


def value(key: str, shape: tuple) -> np.ndarray:
    """The float32 array for ``key``: He-scaled normal weights, positive running variances."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.zeros(shape, np.int64)
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    if len(shape) >= 2 and leaf not in ("class_token", "pos_embedding"):
        fan_in = int(np.prod(shape[1:]))
        # past 2^20 values, one block of draws tiled: VGG's 100M-value classifier costs a
        # copy instead of a draw per value
        n = int(np.prod(shape))
        draws = rng.standard_normal(min(n, 1 << 20), np.float32)
        w = draws if n <= 1 << 20 else np.resize(draws, n)
        return w.reshape(shape) * np.float32((2.0 / fan_in) ** 0.5)
    scale = 1.0 if leaf == "weight" else 0.1
    base = 1.0 if leaf == "weight" and len(shape) == 1 else 0.0
    return (base + 0.1 * scale * rng.standard_normal(shape, np.float32)).astype(np.float32)


def image(name: str) -> np.ndarray:
    """The fixed (2, 3, H, W) input of ``name``."""
    s = MODELS[name]
    return np.random.default_rng(0).standard_normal((2, 3, s, s), np.float32)
