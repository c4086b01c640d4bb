"""``FakeData``: random images, the same for an index on every read, as torchvision's."""
from __future__ import annotations

from typing import Any, Callable

from ... import random as _random
from ..._creation import randint, randn
from ..._dtype import int64
from .vision import VisionDataset

__all__ = ["FakeData"]


class FakeData(VisionDataset):
    """``size`` images of ``image_size`` (C, H, W) as PIL images and int labels below
    ``num_classes``; image ``i`` is drawn from seed ``i + random_offset``."""

    def __init__(self, size: int = 1000, image_size: tuple[int, int, int] = (3, 224, 224),
                 num_classes: int = 10, transform: Callable | None = None,
                 target_transform: Callable | None = None, random_offset: int = 0) -> None:
        super().__init__(None, transform=transform, target_transform=target_transform)
        self.size = size
        self.num_classes = num_classes
        self.image_size = image_size
        self.random_offset = random_offset

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if index >= len(self):
            raise IndexError(f"{self.__class__.__name__} index out of range")
        # seeded per index, and the global RNG put back, so reads do not disturb training
        rng_state = _random.get_rng_state()
        _random.manual_seed(index + self.random_offset)
        img = randn(*self.image_size)
        target = randint(0, self.num_classes, size=(1,), dtype=int64)[0]
        _random.set_rng_state(rng_state)
        from ..transforms import functional as F
        img = F.to_pil_image(img)
        target = target.item()
        return self._apply_transforms(img, target)

    def __len__(self) -> int:
        return self.size
