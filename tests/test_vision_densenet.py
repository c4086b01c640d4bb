"""ember.vision's DenseNets against torchvision's (a fixture tools/vision_fixtures_densenet.py
writes where torchvision imports): state-dict keys and shapes, densenet121's eval output on
the same deterministic weights, the published files' legacy key names, training through it."""
import json
import os

import numpy as np
import pytest

import ember
import ember.vision.models as models
from ember.vision.models import densenet as dn

import vision_weights as vw

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "vision_densenet.npz"))
MANIFEST = json.loads(str(FIXTURE["manifest"]))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_state_dict_keys_and_shapes_equal_torchvision(name):
    model = getattr(models, name)()
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert got == MANIFEST[name]
    assert sum(p.numel() for p in model.parameters()) == \
        getattr(models, f"DenseNet{name[8:]}_Weights").DEFAULT.meta["num_params"]


def test_densenet121_forward_equals_torchvision():
    model = models.densenet121().eval()
    model.load_state_dict({k: ember.tensor(vw.value(k, tuple(v.shape)))
                           for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), np.float32)
    with ember.no_grad():
        y = model.double()(ember.tensor(x).double())
    np.testing.assert_allclose(y.numpy(), FIXTURE["densenet121"], rtol=1e-9, atol=1e-10)


def test_legacy_keys_of_published_files_are_renamed(monkeypatch):
    model = dn.DenseNet(8, (2, 2), 16, num_classes=5)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    # the published files: 'norm.1.weight' ... (the counter, newer than them, keeps its name)
    legacy = {k if k.endswith("num_batches_tracked") else
              k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v.clone() + 1
              for k, v in sd.items()}
    assert any(".norm.1." in k for k in legacy) and any(".conv.2." in k for k in legacy)

    class W:
        meta = {"num_classes": 5}

        def get_state_dict(self, progress, check_hash):
            return dict(legacy)
    dn._load_state_dict(model, W(), progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k].numpy() + 1)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_small_densenet_trains_and_checkpointing_gives_same_gradients(memory_efficient):
    ember.manual_seed(0)
    ref = dn.DenseNet(8, (2, 2), 16, num_classes=3, drop_rate=0.0)
    model = dn.DenseNet(8, (2, 2), 16, num_classes=3, memory_efficient=memory_efficient)
    model.load_state_dict(ref.state_dict())
    x, y = ember.randn(2, 3, 32, 32), ember.tensor([0, 2])
    for m in (ref, model):
        ember.nn.functional.cross_entropy(m(x), y).backward()
    for (k, a), b in zip(ref.named_parameters(), model.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


def test_builders_take_torchvision_arguments():
    m = models.densenet121(num_classes=7, drop_rate=0.2)
    assert m.classifier.out_features == 7 and m.features.denseblock1.denselayer1.drop_rate == 0.2
    assert models.get_model("densenet169", num_classes=3).classifier.out_features == 3
    with pytest.raises(KeyError):  # torchvision's WeightsEnum.verify: cls[name]
        models.densenet121(weights="NOPE")
