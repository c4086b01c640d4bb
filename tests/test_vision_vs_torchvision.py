"""ember.vision.models against torchvision's own outputs: every model's state-dict keys and
shapes, and its eval-mode forward on deterministic weights, equal torchvision 0.29's.

torchvision cannot import beside the oracle torch 2.13, so its numbers come from a fixture
that ``tools/vision_fixtures.py`` writes where it can (see that script); the weights are
regenerated here from the same NumPy rule (``vision_weights.py``), so only outputs are stored.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import ember
from ember.vision import models

import vision_weights as vw

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "vision_models.npz"))
MANIFEST = json.loads(str(FIXTURE["manifest"]))
# float64 end to end where the weights are small; the VGG/AlexNet classifiers (100M+
# parameters) run in float32 to keep the test's memory modest
FLOAT32 = {"vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "alexnet", "vit_b_16", "resnet50",
           "convnext_tiny"}


class _Zeros:
    """A generator stand-in whose draws are free (calloc'd zeros): every weight is
    overwritten from ``vision_weights`` anyway, and drawing VGG's 120M initial values would
    be most of the test's time."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: np.zeros(args[-1] if args else kwargs["size"])


@pytest.mark.parametrize("name", list(vw.MODELS))
def test_forward_equals_torchvision(name, monkeypatch):
    import ember._creation
    monkeypatch.setattr(ember._creation, "_gen", lambda generator=None: _Zeros())
    model = getattr(models, name)(weights=None).eval()
    monkeypatch.undo()
    sd = model.state_dict()
    assert [[k, list(v.shape)] for k, v in sd.items()] == MANIFEST[name]
    dtype = ember.float32 if name in FLOAT32 else ember.float64
    model.load_state_dict({k: ember.from_numpy(vw.value(k, tuple(v.shape)))
                           for k, v in sd.items()})
    model.to(dtype)
    with ember.no_grad():
        y = model(ember.from_numpy(vw.image(name)).to(dtype)).numpy()
    ref = FIXTURE[name]
    scale = np.abs(ref).max()
    tol = 2e-4 if dtype is ember.float32 else 1e-9
    np.testing.assert_allclose(y / scale, ref / scale, rtol=0, atol=tol)
