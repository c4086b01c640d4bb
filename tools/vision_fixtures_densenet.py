"""Write tests/fixtures/vision_densenet.npz: torchvision's DenseNets on deterministic weights.

As tools/vision_fixtures.py (run where torchvision imports, from the repository root:
``python tools/vision_fixtures_densenet.py``), kept apart so the DenseNets' fixture is made
without re-running the other models: the state-dict keys and shapes of densenet121/161/169/
201, and densenet121's eval-mode float64 output on a (2, 3, 32, 32) input.
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

NAMES = ("densenet121", "densenet161", "densenet169", "densenet201")


def main() -> None:
    out, manifest = {}, {}
    for name in NAMES:
        model = getattr(torchvision.models, name)(weights=None).eval()
        sd = model.state_dict()
        manifest[name] = [[k, list(v.shape)] for k, v in sd.items()]
    model = torchvision.models.densenet121(weights=None).eval()
    model.load_state_dict({k: torch.from_numpy(vw.value(k, tuple(v.shape)))
                           for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), np.float32)
    with torch.no_grad():
        out["densenet121"] = model.double()(torch.from_numpy(x).double()).numpy()
    out["manifest"] = np.array(json.dumps(manifest))
    out["versions"] = np.array(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    np.savez_compressed("tests/fixtures/vision_densenet.npz", **out)


if __name__ == "__main__":
    main()
