"""Benchmark workloads: ember.vision models (registered when bench.workloads is imported)."""
from __future__ import annotations

import numpy as np

from .harness import workload
from .wl_conv import _load
from .workloads import _rng, _leaf, _Snapshot

INFER_HW, INFER_CLASSES = 224, 1000


def _torch_resnet18(nn):
    """torchvision's resnet18 from torch.nn layers, its module names and registration order (so
    its parameters come in ember.vision.models.resnet18's order); torchvision itself cannot be
    installed beside the torch the bench compares with."""

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                             BasicBlock(cout, cout, 1)))
                cin = cout
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, INFER_CLASSES)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


@workload("resnet18_infer_b1", "ms/image")
def resnet18_infer_b1(mod):
    """Batch-1 inference of ResNet-18 (ember: ``ember.vision.models.resnet18()``; torch: the
    same layers from torch.nn) on one (1, 3, 224, 224) float32 image, 1000 classes, eval mode
    under ``no_grad``.  Returns the logits."""
    rng = _rng()
    if mod.__name__ == "ember":
        from ember.vision.models import resnet18
        model = resnet18()
    else:
        model = _torch_resnet18(mod.nn)
    _load(mod, model, rng)
    model.eval()
    x = _leaf(mod, rng.standard_normal((1, 3, INFER_HW, INFER_HW), dtype=np.float32))

    def step():
        with mod.no_grad():
            return _Snapshot(model(x))

    return step, lambda s: s * 1e3
