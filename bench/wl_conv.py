"""Benchmark workloads: conv family (registered when bench.workloads is imported)."""
from __future__ import annotations

import numpy as np

from .harness import workload
from .workloads import _rng, _leaf, _Snapshot


def _uniform(rng, shape, fan_in):
    """PyTorch's default layer init U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from NumPy."""
    bound = fan_in ** -0.5
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def _load(mod, model, rng):
    """Replace every parameter of ``model`` (in order) by ``_uniform`` draws of its shape."""
    state = model.state_dict()
    for name, p in model.named_parameters():
        shape = tuple(p.shape)
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        state[name] = mod.from_numpy(_uniform(rng, shape, fan_in))
    model.load_state_dict(state)


LENET_BATCH = 64


def _lenet(mod):
    nn, F = mod.nn, mod.nn.functional

    class LeNet5(nn.Module):
        """LeNet-5 on 1x28x28: conv 6@5x5 (padding 2), pool, conv 16@5x5, pool, 120-84-10."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.flatten(1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    return LeNet5()


@workload("lenet_step", "ms/step")
def lenet_step(mod):
    """One Adam training step of LeNet-5 on a (64, 1, 28, 28) float32 batch: ``zero_grad()``,
    forward, cross-entropy, ``backward()``, ``step()``.  Returns the loss and the updated
    parameters."""
    rng = _rng()
    model = _lenet(mod)
    _load(mod, model, rng)
    x = _leaf(mod, rng.standard_normal((LENET_BATCH, 1, 28, 28), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, 10, LENET_BATCH))
    opt = mod.optim.Adam(model.parameters(), lr=1e-3)
    params = tuple(model.parameters())

    def step():
        opt.zero_grad()
        loss = mod.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        return _Snapshot(loss.detach().reshape(1), *params)

    return step, lambda s: s * 1e3


RES_C, RES_HW, RES_BATCH = 64, 32, 32


def _basic_block(mod):
    nn, F = mod.nn, mod.nn.functional

    class BasicBlock(nn.Module):
        """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the identity, then ReLU."""

        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + x)

    return BasicBlock(RES_C)


@workload("resnet_block", "ms/step", relu_ties=True)
def resnet_block(mod):
    """A ResNet basic block (64 channels, 32x32, batch 32, float32, training-mode BN): forward
    and backward of a fixed upstream gradient.  Returns the input's and the convolutions'
    gradients."""
    rng = _rng()
    block = _basic_block(mod)
    state = block.state_dict()
    for name in ("conv1.weight", "conv2.weight"):
        state[name] = mod.from_numpy(_uniform(rng, (RES_C, RES_C, 3, 3), RES_C * 9))
    block.load_state_dict(state)
    shape = (RES_BATCH, RES_C, RES_HW, RES_HW)
    x = _leaf(mod, rng.standard_normal(shape, dtype=np.float32), True)
    g = _leaf(mod, rng.standard_normal(shape, dtype=np.float32))

    def step():
        block.zero_grad()
        x.grad = None
        block(x).backward(g)
        return _Snapshot(x.grad, block.conv1.weight.grad, block.conv2.weight.grad)

    return step, lambda s: s * 1e3


CONV_FLOP = 2 * RES_BATCH * RES_HW * RES_HW * RES_C * RES_C * 9  # one 3x3 conv's GEMM


@workload("conv_gflops", "GFLOP/s (3x3 conv fwd+bwd)", higher_is_better=True,
          ratio_to=("matmul_2048", "conv/matmul"))
def conv_gflops(mod):
    """The ResNet block's convolution alone: 3x3, 64 -> 64 channels, padding 1, on
    (32, 64, 32, 32) float32, forward and backward (input and weight gradients): three GEMMs of
    ``2 * N * H * W * C_out * C_in * 9`` FLOPs each, compared with ``matmul_2048``'s GFLOP/s."""
    rng = _rng()
    shape = (RES_BATCH, RES_C, RES_HW, RES_HW)
    x = _leaf(mod, rng.standard_normal(shape, dtype=np.float32), True)
    w = _leaf(mod, _uniform(rng, (RES_C, RES_C, 3, 3), RES_C * 9), True)
    g = _leaf(mod, rng.standard_normal(shape, dtype=np.float32))

    def step():
        x.grad = w.grad = None
        mod.nn.functional.conv2d(x, w, padding=1).backward(g)
        return _Snapshot(x.grad, w.grad)

    return step, lambda s: 3 * CONV_FLOP / s / 1e9


R18_BATCH, R18_HW, R18_CLASSES = 32, 64, 10


def _resnet18(mod):
    nn = mod.nn

    class Block(nn.Module):
        """Basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the (projected) skip, ReLU."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        """torchvision's resnet18 layout: 7x7/2 stem, max-pool, 4 stages of 2 blocks."""

        def __init__(self, classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            layers, cin = [], 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))

    return ResNet18(R18_CLASSES)


@workload("resnet18_step", "ms/step")
def resnet18_step(mod):
    """One SGD (momentum 0.9) training step of a ResNet-18 built from nn layers on a
    (32, 3, 64, 64) float32 batch, 10 classes: ``zero_grad()``, forward, cross-entropy,
    ``backward()``, ``step()``.  Returns the loss and the updated parameters."""
    rng = _rng()
    model = _resnet18(mod)
    _load(mod, model, rng)
    x = _leaf(mod, rng.standard_normal((R18_BATCH, 3, R18_HW, R18_HW), dtype=np.float32))
    target = mod.from_numpy(rng.integers(0, R18_CLASSES, R18_BATCH))
    opt = mod.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    params = tuple(model.parameters())

    def step():
        opt.zero_grad()
        loss = mod.nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        return _Snapshot(loss.detach().reshape(1), *params)

    return step, lambda s: s * 1e3


SMALL_C, SMALL_HW = 512, 2


@workload("conv512_small", "ms/step")
def conv512_small(mod):
    """ResNet-18's last stage on small images: a 3x3 512 -> 512 convolution, padding 1, on
    (32, 512, 2, 2) float32, forward and backward (input and weight gradients)."""
    rng = _rng()
    shape = (R18_BATCH, SMALL_C, SMALL_HW, SMALL_HW)
    x = _leaf(mod, rng.standard_normal(shape, dtype=np.float32), True)
    w = _leaf(mod, _uniform(rng, (SMALL_C, SMALL_C, 3, 3), SMALL_C * 9), True)
    g = _leaf(mod, rng.standard_normal(shape, dtype=np.float32))

    def step():
        x.grad = w.grad = None
        mod.nn.functional.conv2d(x, w, padding=1).backward(g)
        return _Snapshot(x.grad, w.grad)

    return step, lambda s: s * 1e3
