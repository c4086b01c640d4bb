"""SVHN from the ``{split}_32x32.mat`` files torchvision leaves in ``root`` (read with SciPy,
an optional dependency: ``pip install scipy``)."""
from __future__ import annotations

import os
import urllib.error
from typing import Any, Callable

import numpy as np

from .utils import check_local_integrity, download_url, verify_str_arg
from .vision import VisionDataset

__all__ = ["SVHN"]


class SVHN(VisionDataset):
    """Street View House Numbers: ``data`` uint8 NumPy (N, 3, 32, 32), ``labels`` int64 with
    the digit 0 stored as 0 (the .mat files say 10)."""

    split_list = {
        "train": ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                  "e26dedcc434d2e4c54c9b2d4a06d0373"],
        "test": ["http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                 "eb5a983be6a315427106f1b164d9cef3"],
        "extra": ["http://ufldl.stanford.edu/housenumbers/extra_32x32.mat", "extra_32x32.mat",
                  "a93ce644f1a588dc4d68dda5feec44a7"],
    }

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False) -> None:
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.split = verify_str_arg(split, "split", tuple(self.split_list.keys()))
        self.url, self.filename, self.file_md5 = self.split_list[split]
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to "
                               "download it")
        try:
            import scipy.io as sio
        except ImportError as err:
            raise ImportError("SVHN needs SciPy to read its .mat files: pip install scipy") \
                from err
        loaded = sio.loadmat(os.path.join(self.root, self.filename))
        self.data = loaded["X"]
        self.labels = loaded["y"].astype(np.int64).squeeze()
        # the files label the digit 0 as 10
        np.place(self.labels, self.labels == 10, 0)
        self.data = np.transpose(self.data, (3, 2, 0, 1))

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = self.data[index], int(self.labels[index])
        from .._pil import pil_image
        img = pil_image().fromarray(np.transpose(img, (1, 2, 0)))
        return self._apply_transforms(img, target)

    def __len__(self) -> int:
        return len(self.data)

    def _check_integrity(self) -> bool:
        return check_local_integrity(os.path.join(self.root, self.filename), self.file_md5)

    def download(self) -> None:
        try:
            download_url(self.url, self.root, self.filename, self.file_md5)
        except (urllib.error.URLError, OSError) as error:
            raise RuntimeError(f"Error downloading {self.url}: {error}") from error

    def extra_repr(self) -> str:
        return "Split: {split}".format(**self.__dict__)
