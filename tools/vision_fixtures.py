"""Write tests/fixtures/vision_models.npz: torchvision's outputs on deterministic weights.

Run with a Python where torchvision imports (it cannot beside the test oracle torch 2.13:
``pip install torch==2.14.1 torchvision==0.29.1`` in a separate venv), from the repository
root: ``python tools/vision_fixtures.py``.  For each model it stores the state dict's keys and
shapes, and the eval-mode outputs in float64 on the input ``tests.vision_weights.image``.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vision_weights as vw  # noqa: E402


def main() -> None:
    out = {}
    manifest = {}
    for name in vw.MODELS:
        model = getattr(torchvision.models, name)(weights=None).eval()
        sd = model.state_dict()
        manifest[name] = [[k, list(v.shape)] for k, v in sd.items()]
        model.load_state_dict({k: torch.from_numpy(vw.value(k, tuple(v.shape)))
                               for k, v in sd.items()})
        with torch.no_grad():
            y = model.double()(torch.from_numpy(vw.image(name)).double())
        out[name] = y.numpy()
        print(name, tuple(y.shape), float(y.abs().max()), flush=True)
    out["manifest"] = np.array(json.dumps(manifest))
    out["versions"] = np.array(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    np.savez_compressed("tests/fixtures/vision_models.npz", **out)


if __name__ == "__main__":
    main()
