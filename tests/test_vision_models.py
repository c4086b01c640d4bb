"""ember.vision.models: torchvision's state-dict layout (parameter counts from torchvision's
documented ``num_params``, key names and shapes from its model definitions), forward numerics
against the same architectures built from torch.nn (resnet18, mobilenet_v3_small) with the
same weights, and the weights API (enums, the hub cache, legacy ``pretrained=``)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn

import ember
import ember.hub
from ember.vision import models
from ember.vision.transforms._presets import ImageClassification

# torchvision's documented parameter counts (weights meta "num_params")
NUM_PARAMS = {
    "resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032, "vgg11": 132863336,
    "vgg11_bn": 132868840, "vgg16": 138357544, "vgg16_bn": 138365992, "alexnet": 61100840,
    "squeezenet1_0": 1248424, "squeezenet1_1": 1235496, "mobilenet_v2": 3504872,
    "mobilenet_v3_small": 2542856, "efficientnet_b0": 5288548, "convnext_tiny": 28589128,
    "vit_b_16": 86567656,
}

# keys and shapes read off torchvision's definitions (module names, Sequential indices)
SPOT_KEYS = {
    "resnet34": {"layer3.5.bn2.running_var": (256,), "layer2.0.downsample.1.weight": (128,),
                 "layer4.2.conv2.weight": (512, 512, 3, 3)},
    "resnet50": {"layer1.0.downsample.0.weight": (256, 64, 1, 1),
                 "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048),
                 "layer2.3.bn3.num_batches_tracked": ()},
    "vgg11": {"features.0.weight": (64, 3, 3, 3), "features.18.weight": (512, 512, 3, 3),
              "classifier.0.weight": (4096, 25088), "classifier.6.weight": (1000, 4096)},
    "vgg11_bn": {"features.1.running_mean": (64,), "features.25.weight": (512, 512, 3, 3),
                 "features.26.running_var": (512,)},
    "vgg16": {"features.28.weight": (512, 512, 3, 3), "classifier.3.bias": (4096,)},
    "vgg16_bn": {"features.40.weight": (512, 512, 3, 3), "features.41.running_mean": (512,)},
    "alexnet": {"features.10.weight": (256, 256, 3, 3), "classifier.1.weight": (4096, 9216),
                "classifier.6.weight": (1000, 4096)},
    "squeezenet1_0": {"features.0.weight": (96, 3, 7, 7),
                      "features.12.expand3x3.weight": (256, 64, 3, 3),
                      "classifier.1.weight": (1000, 512, 1, 1)},
    "squeezenet1_1": {"features.0.weight": (64, 3, 3, 3),
                      "features.12.expand1x1.weight": (256, 64, 1, 1)},
    "mobilenet_v2": {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight":
                     (32, 1, 3, 3), "features.1.conv.1.weight": (16, 32, 1, 1),
                     "features.2.conv.0.0.weight": (96, 16, 1, 1),
                     "features.17.conv.2.weight": (320, 960, 1, 1),
                     "features.18.0.weight": (1280, 320, 1, 1),
                     "classifier.1.weight": (1000, 1280)},
    "efficientnet_b0": {"features.0.0.weight": (32, 3, 3, 3),
                        "features.1.0.block.1.fc1.weight": (8, 32, 1, 1),
                        "features.2.0.block.0.0.weight": (96, 16, 1, 1),
                        "features.6.3.block.1.0.weight": (1152, 1, 5, 5),
                        "features.7.0.block.3.0.weight": (320, 1152, 1, 1),
                        "features.8.0.weight": (1280, 320, 1, 1),
                        "classifier.1.weight": (1000, 1280)},
    "convnext_tiny": {"features.0.0.weight": (96, 3, 4, 4), "features.0.1.weight": (96,),
                      "features.1.0.layer_scale": (96, 1, 1),
                      "features.1.0.block.0.weight": (96, 1, 7, 7),
                      "features.1.0.block.2.weight": (96,),
                      "features.1.0.block.3.weight": (384, 96),
                      "features.2.1.weight": (192, 96, 2, 2),
                      "features.5.8.block.5.weight": (384, 1536),
                      "classifier.0.weight": (768,), "classifier.2.weight": (1000, 768)},
    "vit_b_16": {"class_token": (1, 1, 768), "conv_proj.weight": (768, 3, 16, 16),
                 "encoder.pos_embedding": (1, 197, 768),
                 "encoder.layers.encoder_layer_11.self_attention.in_proj_weight": (2304, 768),
                 "encoder.layers.encoder_layer_0.self_attention.out_proj.weight": (768, 768),
                 "encoder.layers.encoder_layer_0.mlp.0.weight": (3072, 768),
                 "encoder.layers.encoder_layer_0.mlp.3.weight": (768, 3072),
                 "encoder.layers.encoder_layer_5.ln_2.bias": (768,),
                 "encoder.ln.weight": (768,), "heads.head.weight": (1000, 768)},
}

# state-dict entries torchvision's models hold (parameters + buffers)
NUM_ENTRIES = {"resnet34": 218, "resnet50": 320, "vgg11": 22, "vgg11_bn": 62, "vgg16": 32,
               "vgg16_bn": 97, "alexnet": 16, "squeezenet1_0": 52, "squeezenet1_1": 52,
               "mobilenet_v2": 314, "efficientnet_b0": 360, "convnext_tiny": 182,
               "vit_b_16": 152}


@pytest.fixture
def no_init(monkeypatch):
    """Skip weight initialisation (the layout does not depend on it; VGG's 100M-parameter
    classifier takes seconds to draw)."""
    from ember.nn.modules.conv import _ConvNd
    monkeypatch.setattr(ember.nn.Linear, "reset_parameters", lambda self: None)
    monkeypatch.setattr(_ConvNd, "reset_parameters", lambda self: None)
    for fn in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "trunc_normal_",
               "xavier_uniform_", "constant_", "zeros_", "ones_"):
        monkeypatch.setattr(ember.nn.init, fn, lambda t, *a, **k: t)


@pytest.mark.parametrize("name", sorted(SPOT_KEYS))
def test_state_dict_layout(name, no_init):
    model = models.get_model(name)
    sd = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    assert len(sd) == NUM_ENTRIES[name]
    for key, shape in SPOT_KEYS[name].items():
        assert tuple(sd[key].shape) == shape, key
    weights = models.get_model_weights(name)
    assert weights.DEFAULT.meta["num_params"] == NUM_PARAMS[name]


# ---- the same architectures in torch.nn, named as torchvision names them ----

class TBasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                             tnn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TResNet18(tnn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            setattr(self, f"layer{i + 1}", tnn.Sequential(TBasicBlock(cin, cout, stride),
                                                          TBasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def t_cna(cin, cout, k, stride=1, groups=1, act=None):
    layers = [tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              tnn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    return tnn.Sequential(*layers, *([act()] if act else []))


class TSE(tnn.Module):
    def __init__(self, c, s):
        super().__init__()
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.fc1 = tnn.Conv2d(c, s, 1)
        self.fc2 = tnn.Conv2d(s, c, 1)
        self.activation = tnn.ReLU()
        self.scale_activation = tnn.Hardsigmoid()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


# MobileNetV3-Small's blocks: in, kernel, expanded, out, SE, hard-swish, stride
V3_SMALL = [(16, 3, 16, 16, 1, 0, 2), (16, 3, 72, 24, 0, 0, 2), (24, 3, 88, 24, 0, 0, 1),
            (24, 5, 96, 40, 1, 1, 2), (40, 5, 240, 40, 1, 1, 1), (40, 5, 240, 40, 1, 1, 1),
            (40, 5, 120, 48, 1, 1, 1), (48, 5, 144, 48, 1, 1, 1), (48, 5, 288, 96, 1, 1, 2),
            (96, 5, 576, 96, 1, 1, 1), (96, 5, 576, 96, 1, 1, 1)]


class TBlockV3(tnn.Module):
    def __init__(self, cin, k, exp, cout, se, hs, stride):
        super().__init__()
        act = tnn.Hardswish if hs else tnn.ReLU
        layers = [t_cna(cin, exp, 1, act=act)] if exp != cin else []
        layers.append(t_cna(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(TSE(exp, max(8, (exp // 4 + 4) // 8 * 8)))
        layers.append(t_cna(exp, cout, 1))
        self.block = tnn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.res else self.block(x)


class TMobileNetV3Small(tnn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = tnn.Sequential(t_cna(3, 16, 3, 2, act=tnn.Hardswish),
                                       *[TBlockV3(*c) for c in V3_SMALL],
                                       t_cna(96, 576, 1, act=tnn.Hardswish))
        self.avgpool = tnn.AdaptiveAvgPool2d(1)
        self.classifier = tnn.Sequential(tnn.Linear(576, 1024), tnn.Hardswish(),
                                         tnn.Dropout(0.2), tnn.Linear(1024, num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def to_torch_state(model):
    return {k: torch.from_numpy(v.detach().numpy().copy()) for k, v in model.state_dict().items()}


def randomize_bn(model, seed):
    """Non-trivial running statistics and affine parameters, so eval mode tests them."""
    rng = np.random.default_rng(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith(("running_mean", "bias")):
            sd[k] = ember.from_numpy(rng.standard_normal(v.shape).astype(np.float32) * 0.1)
        elif k.endswith("running_var"):
            sd[k] = ember.from_numpy(rng.uniform(0.5, 1.5, v.shape).astype(np.float32))
    model.load_state_dict(sd)


@pytest.mark.parametrize("builder,tmodel", [(models.resnet18, TResNet18),
                                            (models.mobilenet_v3_small, TMobileNetV3Small)])
def test_forward_matches_torch_built_model(builder, tmodel):
    ember.manual_seed(0)
    model = builder(num_classes=10)
    randomize_bn(model, 1)
    ref = tmodel(num_classes=10)
    e_sd, t_sd = model.state_dict(), ref.state_dict()
    assert list(e_sd) == list(t_sd)  # torchvision's names, in its registration order
    assert [tuple(v.shape) for v in e_sd.values()] == [tuple(v.shape) for v in t_sd.values()]
    ref.load_state_dict(to_torch_state(model))
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    model.eval()
    ref.eval()
    with ember.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(ember.from_numpy(x)).numpy(),
                                   ref(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    # training mode: batch statistics, and the gradient of the first convolution
    model.train()
    ref.train()
    if hasattr(ref, "classifier"):  # no dropout, so both see the same activations
        model.classifier[2].p = ref.classifier[2].p = 0.0
    out_e, out_t = model(ember.from_numpy(x)), ref(torch.from_numpy(x))
    np.testing.assert_allclose(out_e.detach().numpy(), out_t.detach().numpy(), rtol=1e-3,
                               atol=1e-4)
    out_e.square().sum().backward()
    out_t.square().sum().backward()
    first_e = next(iter(model.parameters())).grad.numpy()
    first_t = next(iter(ref.parameters())).grad.numpy()
    np.testing.assert_allclose(first_e, first_t, rtol=1e-3, atol=1e-3 * np.abs(first_t).max())


def test_resnet18_state_dict_from_torch_and_shape_checks():
    ref = TResNet18()
    model = models.resnet18()
    model.load_state_dict({k: ember.from_numpy(v.numpy().copy())
                           for k, v in ref.state_dict().items()})  # strict
    bad = {k: ember.from_numpy(v.numpy().copy()) for k, v in TResNet18(5).state_dict().items()}
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        model.load_state_dict(bad)


@pytest.mark.parametrize("name,shape", [("vit_b_16", (1, 3, 224, 224))])
def test_vit_rejects_other_sizes_and_small_vit_runs(name, shape):
    vit = models.VisionTransformer(32, 16, 2, 2, 16, 32, num_classes=5)
    assert vit(ember.randn(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(AssertionError, match="Wrong image height! Expected 32 but got 48!"):
        vit(ember.randn(1, 3, 48, 32))
    with pytest.raises(AssertionError, match="Input shape indivisible by patch size!"):
        models.VisionTransformer(30, 16, 1, 1, 8, 8)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v2", "efficientnet_b0",
                                  "alexnet", "convnext_tiny"])
def test_small_input_forward_shapes(name):
    model = models.get_model(name, num_classes=7).eval()
    size = 64 if name == "alexnet" else 32
    with ember.no_grad():
        out = model(ember.randn(1, 3, size, size))
    assert out.shape == (1, 7) and bool(ember.isfinite(out).all())


# ---- the weights API ----

def test_weights_enum():
    w = models.ResNet18_Weights.IMAGENET1K_V1
    assert models.ResNet18_Weights.DEFAULT is w
    assert w.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert repr(w) == "ResNet18_Weights.IMAGENET1K_V1"
    t = w.transforms()
    assert isinstance(t, ImageClassification) and t.crop_size == [224]
    assert t.resize_size == [256]
    assert models.ResNet50_Weights.DEFAULT.transforms().resize_size == [232]
    assert models.ResNet18_Weights.verify("IMAGENET1K_V1") is w
    assert models.ResNet18_Weights.verify("ResNet18_Weights.IMAGENET1K_V1") is w
    assert models.ResNet18_Weights.verify(None) is None
    assert models.get_weight("ResNet50_Weights.IMAGENET1K_V2").url.endswith("11ad3fa6.pth")
    with pytest.raises(TypeError, match="expected ResNet18_Weights but received"):
        models.resnet18(weights=models.ResNet34_Weights.IMAGENET1K_V1)
    with pytest.raises(KeyError):
        models.ResNet18_Weights.verify("IMAGENET1K_V9")
    with pytest.raises(ValueError, match="Unknown model"):
        models.get_model("resnet1000")
    assert {"resnet18", "vit_b_16", "convnext_tiny"} <= set(models.list_models())
    assert models.list_models(include="vgg1*") == ["vgg11", "vgg11_bn", "vgg16", "vgg16_bn"]
    img = ember.randint(0, 256, (3, 300, 280), dtype=ember.uint8)
    out = t(img)
    assert out.shape == (3, 224, 224) and out.dtype == ember.float32


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(ember.hub, "_hub_dir", str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    return tmp_path


def test_weights_load_from_hub_cache(hub_dir):
    """A .pth that torch itself wrote, in the cache torchvision uses, loads without network."""
    ref = TResNet18()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1)
    torch.save(ref.state_dict(), hub_dir / "checkpoints" / "resnet18-f37072fd.pth")
    w = models.ResNet18_Weights.IMAGENET1K_V1
    model = models.resnet18(weights=w).eval()
    ref.eval()
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with ember.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(ember.from_numpy(x)).numpy(),
                                   ref(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="The parameter 'num_classes' expected value 1000 but "
                                         "got 10 instead."):
        models.resnet18(weights=w, num_classes=10)
    with pytest.warns(UserWarning) as rec:
        legacy = models.resnet18(pretrained=True)
    msgs = [str(r.message) for r in rec]
    assert any("The parameter 'pretrained' is deprecated since 0.13" in m for m in msgs)
    assert any("`weights=ResNet18_Weights.IMAGENET1K_V1`" in m for m in msgs)
    np.testing.assert_array_equal(legacy.fc.weight.detach().numpy(), ref.fc.weight.detach().numpy())
    with pytest.warns(UserWarning, match="'pretrained' is deprecated"):
        fresh = models.resnet18(pretrained=False)
    assert not np.array_equal(fresh.fc.weight.detach().numpy(), ref.fc.weight.detach().numpy())


def test_weights_missing_offline_errors(hub_dir, monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")
    monkeypatch.setattr(ember.hub, "download_url_to_file", offline)
    with pytest.raises(OSError, match="network unreachable"):
        models.squeezenet1_1(weights="DEFAULT")


def test_no_warning_without_pretrained():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        models.squeezenet1_1(weights=None)


def test_bench_resnet18_infer_b1_matches_torch():
    """The bench's batch-1 inference workload computes torch's logits (ember's model is
    ember.vision.models.resnet18, torch's the same layers from torch.nn)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import bench.workloads  # noqa: F401  (registers the workloads)
    from bench.harness import REGISTRY, _as_array
    outs = [_as_array(REGISTRY["resnet18_infer_b1"].fn(mod)[0]()) for mod in (ember, torch)]
    assert outs[0].shape == outs[1].shape == (1000,)  # _as_array flattens the logits
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5 * np.abs(outs[1]).max())


def test_siamese_pattern_under_ember_run(tmp_path):
    """pytorch/examples' siamese_network reshapes torchvision's resnet18 (a 1-channel conv1,
    the children but the fc as a Sequential, apply(init)); the same moves under `ember run`."""
    import subprocess
    import sys
    import textwrap
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent("""
        import torch, torchvision
        from torchvision.ops import nms
        torch.manual_seed(0)
        resnet = torchvision.models.resnet18(weights=None)
        resnet.conv1 = torch.nn.Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2),
                                       padding=(3, 3), bias=False)
        features = resnet.fc.in_features
        body = torch.nn.Sequential(*(list(resnet.children())[:-1]))
        def init(m):
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(m.weight)
        body.apply(init)
        out = body(torch.randn(2, 1, 28, 28)).view(2, -1)
        keep = nms(torch.tensor([[0., 0, 4, 4], [0, 0, 4, 5]]), torch.tensor([.9, .8]), 0.5)
        print(features, tuple(out.shape), keep.tolist(), type(resnet).__module__)
    """))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "ember.run", "main.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=repo))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "512 (2, 512) [0] ember.vision.models.resnet"
