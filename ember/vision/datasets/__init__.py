"""torchvision.datasets: datasets read from the files torchvision itself writes under ``root``.

Each dataset reads exactly the on-disk layout torchvision leaves (so a folder a user already
filled with torchvision works as it is), downloads from the same URLs with the same md5
checks when ``download=True`` (a failed fetch raises RuntimeError naming the URL), and
returns ``(PIL image, int)`` items before ``transform``/``target_transform``.
"""
from __future__ import annotations

from .cifar import CIFAR10, CIFAR100
from .fakedata import FakeData
from .folder import DatasetFolder, ImageFolder
from .mnist import EMNIST, KMNIST, MNIST, FashionMNIST
from .svhn import SVHN
from .vision import VisionDataset

__all__ = ["MNIST", "FashionMNIST", "KMNIST", "EMNIST", "CIFAR10", "CIFAR100", "SVHN",
           "DatasetFolder", "ImageFolder", "FakeData", "VisionDataset"]
